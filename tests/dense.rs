//! The dense forward of the retraining methods' evaluation (§4) against
//! the network's own forward pass: the same bits, on random architectures
//! (beside sizes above the 256-input chunk of the products), random
//! weights, any row count and any β. Skipped with a message on CPUs
//! without AVX-512F, the only body with dense tiles.

mod common;

use common::arch_strategy;
use comod::data::CANVAS_PIXELS;
use comod::kernel::dense::{DensePlan, DenseScratch, dense_forward};
use comod::kernel::{Body, PackedRows};
use comod::net::{Arch, Model, Modulation};
use proptest::prelude::*;
use rand::{RngExt, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

/// Checks one network on `rows` random canvases; `None` without AVX-512F.
fn agrees(arch: &Arch, seed: u64, rows: usize, m: f32) -> Option<()> {
    if !Body::available().contains(&Body::Avx512) {
        return None;
    }
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let mut model = Model::<f32>::init(arch, seed);
    // Random biases too (the initialisation zeroes them).
    for l in 1..=arch.depth() {
        for k in model.layer(l).bias.clone() {
            model.params[k] = rng.random_range(-0.3..0.3);
        }
    }
    let canvases: Vec<f32> = (0..rows * CANVAS_PIXELS)
        .map(|_| rng.random_range(0.0..1.0))
        .collect();
    let gated = arch.gated_layer();
    let mut ws = model.workspace(rows);
    let want = model
        .activity_at(&mut ws, &Modulation::off(arch), &canvases, gated, m)
        .to_vec();
    let input = PackedRows::new(&model.reorder_input(&canvases), CANVAS_PIXELS);
    let mut got = vec![f32::NAN; rows * arch.size(gated)];
    let plan = DensePlan::new(&model, m);
    dense_forward(
        Body::Avx512,
        &plan,
        &input,
        &mut got,
        &mut DenseScratch::default(),
    );
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(
            g.to_bits(),
            w.to_bits(),
            "value {i}: dense {g:e}, forward pass {w:e}"
        );
    }
    Some(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn dense_forward_gives_the_forward_pass_bits(
        arch in arch_strategy(30, 3),
        seed in any::<u64>(),
        rows in 1usize..110,
        m in 0.5f32..1.5,
    ) {
        if agrees(&arch, seed, rows, m).is_none() {
            eprintln!("this CPU has no AVX-512F: the dense tiles are not tested");
        }
    }
}

#[test]
fn presets_give_the_forward_pass_bits() {
    // 400 and 784-wide inputs: products of more than one 256-input chunk.
    for (name, layer) in [
        ("paper3", 1),
        ("deep4", 2),
        ("local2", 1),
        ("relu-deep4", 1),
    ] {
        let arch = Arch::preset(name, layer).unwrap();
        if agrees(&arch, 5, 101, 1.0).is_none() {
            eprintln!("this CPU has no AVX-512F: the dense tiles are not tested");
            return;
        }
    }
}
