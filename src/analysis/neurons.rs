//! What single neurons carry (§5, Fig. 2E–H and 3): the informativeness
//! |d′| of a layer's neurons for a task, and the coupling map, c z-scored
//! and projected through the encoder's weights to a 28×28 image.

use crate::data::composite::{CANVAS_SIDE, quadrant_origin};
use crate::data::{CANVAS_PIXELS, Digits, Task};
use crate::net::Model;
use crate::train::evaluate::task_test_set;

/// Composites the |d′| of a task is measured on.
pub const D_PRIME_COMPOSITES: usize = 1000;

/// |d′| of each of `neurons` columns of `responses` (`[K, neurons]`) for
/// the two classes of `labels` (0/1): |μ₀ − μ₁| / √((σ₀² + σ₁²)/2), with
/// population variances; 0 where both classes give one constant response.
pub fn d_prime(responses: &[f32], neurons: usize, labels: &[u8]) -> Vec<f64> {
    let mut sum = [vec![0.0f64; neurons], vec![0.0f64; neurons]];
    let mut squares = [vec![0.0f64; neurons], vec![0.0f64; neurons]];
    let mut count = [0usize; 2];
    for (row, &label) in responses.chunks_exact(neurons).zip(labels) {
        let class = usize::from(label != 0);
        count[class] += 1;
        for (i, &r) in row.iter().enumerate() {
            sum[class][i] += r as f64;
            squares[class][i] += (r as f64).powi(2);
        }
    }
    (0..neurons)
        .map(|i| {
            let moments = |c: usize| {
                let n = count[c].max(1) as f64;
                let mean = sum[c][i] / n;
                (mean, (squares[c][i] / n - mean * mean).max(0.0))
            };
            let ((m0, v0), (m1, v1)) = (moments(0), moments(1));
            let spread = ((v0 + v1) / 2.0).sqrt();
            if spread > 0.0 {
                (m0 - m1).abs() / spread
            } else {
                0.0
            }
        })
        .collect()
}

/// |d′| for `task` of every neuron of hidden layer `layer` of `model`,
/// modulation off, over [`D_PRIME_COMPOSITES`] test composites of the
/// task with distractors (the setting of fine-tuning), seeded by `seed`.
pub fn task_d_prime(
    model: &Model<f32>,
    digits: &Digits,
    task: Task,
    layer: usize,
    seed: u64,
) -> Vec<f64> {
    let set = task_test_set(digits, task, true, D_PRIME_COMPOSITES, seed);
    let responses = model.frozen_activity(&set.images, layer, 0.0);
    d_prime(&responses, model.arch().size(layer), &set.labels)
}

/// The coupling map (§5): ẑ(c) projected through the encoder's weights,
/// map_p = Σ_i ẑ(c_i) W1[i, p], a 28×28 image row-major. `None` unless
/// `coupling` belongs to layer 1 of `model`.
pub fn coupling_map(model: &Model<f32>, coupling: &[f64]) -> Option<Vec<f64>> {
    let n = model.arch().size(1);
    if coupling.len() != n || model.arch().modulated_layer != 1 {
        return None;
    }
    let mean = coupling.iter().sum::<f64>() / n as f64;
    let std = (coupling.iter().map(|c| (c - mean).powi(2)).sum::<f64>() / n as f64).sqrt();
    let mut map = vec![0.0f64; CANVAS_PIXELS];
    if std == 0.0 {
        return Some(map);
    }
    // The encoder stores its quadrant blocks; `dense_index` places each
    // weight in the dense [N1, 784] matrix of §7.
    let layout = model.layer(1);
    for (k, &w) in model.weights(1).iter().enumerate() {
        let dense = layout.dense_index(k);
        let (neuron, pixel) = (dense / CANVAS_PIXELS, dense % CANVAS_PIXELS);
        map[pixel] += (coupling[neuron] - mean) / std * w as f64;
    }
    Some(map)
}

/// The mean over quadrant `q`'s 14×14 pixels of `map` (28×28).
pub fn quadrant_mean(map: &[f64], q: usize) -> f64 {
    let (r0, c0) = quadrant_origin(q);
    let side = CANVAS_SIDE / 2;
    let mut total = 0.0;
    for r in r0..r0 + side {
        for c in c0..c0 + side {
            total += map[r * CANVAS_SIDE + c];
        }
    }
    total / (side * side) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn d_prime_of_a_neuron_that_is_a_known_function_of_the_label() {
        // Neuron 0: label + alternating ±0.5 (σ = 0.5 in each class) → |d′| = 2.
        // Neuron 1: constant → 0. Neuron 2: −3·label without noise: each
        // class constant, so 0 by definition.
        let mut responses = Vec::new();
        let mut labels = Vec::new();
        for k in 0..40 {
            let label = (k % 2) as u8;
            let noise = if (k / 2) % 2 == 0 { 0.5 } else { -0.5 };
            responses.extend([label as f32 + noise, 7.0, -3.0 * label as f32]);
            labels.push(label);
        }
        let d = d_prime(&responses, 3, &labels);
        assert!((d[0] - 2.0).abs() < 1e-9, "{d:?}");
        assert_eq!(d[1], 0.0);
        assert_eq!(d[2], 0.0);
    }

    #[test]
    fn a_coupling_concentrated_on_one_quadrant_projects_there() {
        use crate::net::Arch;
        let arch = Arch::preset("paper3", 1).unwrap();
        let mut model = Model::<f32>::init(&arch, 1);
        let range = model.layer(1).weights.clone();
        // Every weight inside a receptive field 0.01, outside still 0.
        for w in &mut model.params[range] {
            if *w != 0.0 {
                *w = 0.01;
            }
        }
        for q in 0..4 {
            let coupling: Vec<f64> = (0..400).map(|i| f64::from(i / 100 == q)).collect();
            let map = coupling_map(&model, &coupling).unwrap();
            for other in 0..4 {
                let mean = quadrant_mean(&map, other);
                assert_eq!(
                    mean > 0.0,
                    other == q,
                    "coupling on {q}, quadrant {other}: {mean}"
                );
            }
        }
        assert!(coupling_map(&model, &[1.0; 3]).is_none());
    }
}
