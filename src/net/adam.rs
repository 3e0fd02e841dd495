//! Adam (§4): β1 0.9, β2 0.999, ε 1e-8, in PyTorch's form so that a
//! framework implementation can be compared step by step.

use std::ops::Range;

use rayon::prelude::*;

use crate::net::linalg::split_min_len;
use crate::net::simd::with_widest;

/// Adam state for one parameter vector.
#[derive(Clone, Debug)]
pub struct Adam {
    /// Learning rate.
    pub lr: f32,
    first: Vec<f32>,
    second: Vec<f32>,
    steps: i32,
}

/// β1 of §4.
pub const BETA1: f32 = 0.9;
/// β2 of §4.
pub const BETA2: f32 = 0.999;
/// ε of §4.
pub const EPSILON: f32 = 1e-8;

impl Adam {
    /// Fresh state for `len` parameters.
    pub fn new(len: usize, lr: f32) -> Adam {
        Adam {
            lr,
            first: vec![0.0; len],
            second: vec![0.0; len],
            steps: 0,
        }
    }

    /// One update: m ← β1·m + (1−β1)·g, v ← β2·v + (1−β2)·g²,
    /// θ ← θ − lr/(1−β1^t) · m / (√v/√(1−β2^t) + ε).
    /// Element-wise, so splitting it across threads changes no result.
    pub fn step(&mut self, params: &mut [f32], grads: &[f32]) {
        assert_eq!(params.len(), self.first.len());
        assert_eq!(grads.len(), self.first.len());
        self.steps += 1;
        update(
            (self.lr, self.steps),
            params,
            grads,
            (&mut self.first, &mut self.second),
        );
    }
}

impl Adam {
    /// One update of the parameters in `ranges` of `params` (with their
    /// gradients at the same places of `grads`): the state holds the
    /// ranges one after the other. Element-wise, so the same as
    /// [`Adam::step`] on the ranges' values gathered.
    pub fn step_ranges(&mut self, params: &mut [f32], grads: &[f32], ranges: &[Range<usize>]) {
        assert_eq!(
            ranges.iter().map(|r| r.len()).sum::<usize>(),
            self.first.len()
        );
        self.steps += 1;
        let mut at = 0;
        for range in ranges {
            let state = at..at + range.len();
            at = state.end;
            update(
                (self.lr, self.steps),
                &mut params[range.clone()],
                &grads[range.clone()],
                (&mut self.first[state.clone()], &mut self.second[state]),
            );
        }
    }
}

/// A chunk of an update: parameters and gradients, first and second moments.
type Chunk<'a> = ((&'a mut [f32], &'a [f32]), (&'a mut [f32], &'a mut [f32]));

/// The Adam update of `params` with `grads` and its moments, at step
/// `steps` with learning rate `lr`, in parallel chunks.
fn update(
    (lr, steps): (f32, i32),
    params: &mut [f32],
    grads: &[f32],
    (first, second): (&mut [f32], &mut [f32]),
) {
    let step_size = lr / (1.0 - BETA1.powi(steps));
    let root_correction = (1.0 - BETA2.powi(steps)).sqrt();
    let chunk = |((p, g), (m, v)): Chunk<'_>| {
        with_widest(
            #[inline(always)]
            || {
                let n = p.len();
                let (g, m, v) = (&g[..n], &mut m[..n], &mut v[..n]);
                for i in 0..n {
                    m[i] = BETA1 * m[i] + (1.0 - BETA1) * g[i];
                    v[i] = BETA2 * v[i] + (1.0 - BETA2) * g[i] * g[i];
                    p[i] -= step_size * m[i] / (v[i].sqrt() / root_correction + EPSILON);
                }
            },
        )
    };
    // One chunk needs no threads (most steps of fine-tuning: a coupling,
    // a readout, a bias).
    if params.len() <= PARALLEL_CHUNK {
        return chunk(((params, grads), (first, second)));
    }
    params
        .par_chunks_mut(PARALLEL_CHUNK)
        .zip(grads.par_chunks(PARALLEL_CHUNK))
        .zip(
            first
                .par_chunks_mut(PARALLEL_CHUNK)
                .zip(second.par_chunks_mut(PARALLEL_CHUNK)),
        )
        // A run inside a sweep keeps its update on its thread, as its
        // products (§6: the bits are the same either way).
        .with_min_len(split_min_len())
        .for_each(chunk);
}

/// Parameters per parallel task of [`Adam::step`].
const PARALLEL_CHUNK: usize = 1 << 14;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimises_a_quadratic_and_first_step_is_lr_sized() {
        let mut adam = Adam::new(2, 0.1);
        let mut x = [3.0f32, -2.0];
        adam.step(&mut x, &[6.0, -4.0]);
        // First step moves each coordinate by lr·sign(g) (up to ε).
        assert!((x[0] - 2.9).abs() < 1e-6 && (x[1] + 1.9).abs() < 1e-6);
        for _ in 0..500 {
            let g = [2.0 * x[0], 2.0 * x[1]];
            adam.step(&mut x, &g);
        }
        assert!(x[0].abs() < 1e-2 && x[1].abs() < 1e-2, "{x:?}");
    }

    /// The update runs at the selected instruction set's width
    /// (`with_widest`), over parallel chunks: the same bits as the
    /// statement of [`Adam::step`] in plain code, value by value.
    #[test]
    fn each_update_has_the_bits_of_its_statement() {
        let len = 2 * PARALLEL_CHUNK + 37;
        let mut params: Vec<f32> = (0..len).map(|i| (i as f32 * 0.37).sin()).collect();
        let mut want = params.clone();
        let (mut m, mut v) = (vec![0.0f32; len], vec![0.0f32; len]);
        let lr = 3e-3;
        let mut adam = Adam::new(len, lr);
        for t in 1..=4 {
            let grads: Vec<f32> = (0..len)
                .map(|i| ((i * 7 + t) as f32 * 0.013).cos() * 10f32.powi(t as i32 % 3 - 1))
                .collect();
            adam.step(&mut params, &grads);
            let step_size = lr / (1.0 - BETA1.powi(t as i32));
            let root_correction = (1.0 - BETA2.powi(t as i32)).sqrt();
            for i in 0..len {
                let g = grads[i];
                m[i] = BETA1 * m[i] + (1.0 - BETA1) * g;
                v[i] = BETA2 * v[i] + (1.0 - BETA2) * g * g;
                want[i] -= step_size * m[i] / (v[i].sqrt() / root_correction + EPSILON);
            }
            for (i, (got, want)) in params.iter().zip(&want).enumerate() {
                assert_eq!(got.to_bits(), want.to_bits(), "step {t}, value {i}");
            }
        }
    }

    #[test]
    fn stepping_ranges_equals_stepping_their_values_gathered() {
        let params: Vec<f32> = (0..40_000).map(|i| (i as f32 * 0.37).sin()).collect();
        let ranges = [3..9, 20..20_000, 30_000..39_999];
        let gathered = |p: &[f32]| -> Vec<f32> {
            ranges
                .iter()
                .flat_map(|r| p[r.clone()].iter().copied())
                .collect()
        };
        let len = ranges.iter().map(|r| r.len()).sum();
        let (mut by_ranges, mut alone) = (Adam::new(len, 1e-2), Adam::new(len, 1e-2));
        let mut in_place = params.clone();
        let mut compact = gathered(&params);
        for step in 0..3 {
            let grads: Vec<f32> = (0..params.len())
                .map(|i| ((i + step) as f32 * 0.11).cos())
                .collect();
            by_ranges.step_ranges(&mut in_place, &grads, &ranges);
            alone.step(&mut compact, &gathered(&grads));
        }
        assert_eq!(gathered(&in_place), compact, "the same bits");
        let untouched = |p: &[f32]| (p[..3].to_vec(), p[9..20].to_vec());
        assert_eq!(
            untouched(&in_place),
            untouched(&params),
            "outside the ranges"
        );
    }
}
