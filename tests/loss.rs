//! The MLP's cross-entropy (§2, §4) in f32 against the same function in
//! f64 on the same logits, entry by entry: a confident example's small
//! loss and gradient keep their precision (`comod trace` exports both,
//! §7), where p_y − 1 computed as it reads loses every digit once p_y
//! rounds to 1. The f64 function itself is held to finite differences by
//! the gradient tests.

use comod::net::arch::LOGITS;
use comod::net::layers::{Readout, cross_entropy, mean_cross_entropy};
use proptest::prelude::*;
use rand::{RngExt, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

/// Relative error allowed per entry: the f32 rounding of a logit
/// difference of up to 60 passes into e^x as an absolute error of about
/// 60 · 2^-24 ≈ 4e-6.
const TOLERANCE: f64 = 2e-5;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn confident_examples_keep_the_precision_of_their_loss_and_gradient(
        seed in any::<u64>(),
        batch in 1usize..6,
        pair in any::<bool>(),
        margin in 0.0f32..30.0,
    ) {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        let readout = if pair { Readout::Pair(3, 8) } else { Readout::All };
        let classes = if pair { 2 } else { LOGITS };
        let labels: Vec<u8> = (0..batch).map(|_| rng.random_range(0..classes as u8)).collect();
        let columns = readout.columns();
        // Random logits; the label's raised by `margin` in most rows, so
        // that p_y is within e^-margin of 1.
        let mut logits: Vec<f32> = (0..batch * LOGITS).map(|_| rng.random_range(-3.0..3.0)).collect();
        for (row, &y) in logits.chunks_exact_mut(LOGITS).zip(&labels) {
            if rng.random_range(0..4) > 0 {
                row[columns[y as usize]] += margin;
            }
        }
        let wide: Vec<f64> = logits.iter().map(|&z| z as f64).collect();
        let mut d32 = vec![0.0f32; logits.len()];
        let mut d64 = vec![0.0f64; logits.len()];
        let loss32 = cross_entropy(&logits, LOGITS, &labels, readout, &mut d32);
        let loss64 = cross_entropy(&wide, LOGITS, &labels, readout, &mut d64);
        prop_assert!(
            (loss32 as f64 - loss64).abs() <= TOLERANCE * loss64.abs() + 1e-30,
            "loss {loss32:e} against {loss64:e}"
        );
        let mean = mean_cross_entropy(&logits, LOGITS, &labels, readout);
        prop_assert!(
            (mean - loss64).abs() <= TOLERANCE * loss64.abs() + 1e-30,
            "mean_cross_entropy {mean:e} against {loss64:e}"
        );
        for (i, (&g, &w)) in d32.iter().zip(&d64).enumerate() {
            prop_assert!(
                (g as f64 - w).abs() <= TOLERANCE * w.abs(),
                "dlogits[{i}] {g:e} against {w:e}"
            );
        }
    }
}
