//! Every gradient of the hand-written backward pass (§2) against
//! central finite differences in f64, on random small architectures: all
//! layer kinds, both encoder nonlinearities, modulation at any hidden layer
//! (w.r.t. W, b and c), the gated layer with a non-trivial gain, and both
//! readouts.

mod common;

use common::arch_strategy;
use comod::data::CANVAS_PIXELS;
use comod::net::{Arch, Depth, Model, Modulation, Nonlinearity, Readout, Workspace};
use proptest::prelude::*;
use rand::{RngExt, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

struct Case {
    model: Model<f64>,
    modulation: Modulation<f64>,
    canvases: Vec<f64>,
    labels: Vec<u8>,
    readout: Readout,
    m: f64,
}

fn loss(
    case: &Case,
    model: &Model<f64>,
    modulation: &Modulation<f64>,
    ws: &mut Workspace<f64>,
) -> f64 {
    model.forward(ws, modulation, &case.canvases, case.m);
    model.loss(ws, &case.labels, case.readout)
}

fn build_case(arch: &Arch, seed: u64, batch: usize, pair: bool) -> Case {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let mut model = Model::<f64>::init(arch, seed);
    // Non-zero biases, coupling of both signs and a non-trivial gain.
    for l in 1..=arch.depth() {
        for k in model.layer(l).bias.clone() {
            model.params[k] = rng.random_range(-0.3..0.3);
        }
    }
    let mut modulation = Modulation::off(arch);
    for c in &mut modulation.coupling {
        *c = rng.random_range(-1.0..1.0);
    }
    for g in &mut modulation.gain {
        *g = rng.random_range(0.2..1.8);
    }
    let canvases = (0..batch * CANVAS_PIXELS)
        .map(|_| rng.random_range(-0.1..1.0))
        .collect();
    let (readout, labels) = if pair {
        let a = rng.random_range(0..9u8);
        let b = rng.random_range(a + 1..10);
        (
            Readout::Pair(a, b),
            (0..batch).map(|_| rng.random_range(0..2)).collect(),
        )
    } else {
        (
            Readout::All,
            (0..batch).map(|_| rng.random_range(0..10)).collect(),
        )
    };
    Case {
        model,
        modulation,
        canvases,
        labels,
        readout,
        m: rng.random_range(0.5..1.5),
    }
}

/// Central difference of the loss w.r.t. one entry of the network or its
/// modulation, picked by `select`.
fn finite_difference(
    case: &Case,
    ws: &mut Workspace<f64>,
    select: impl for<'a> Fn(&'a mut Model<f64>, &'a mut Modulation<f64>) -> &'a mut f64,
) -> f64 {
    const H: f64 = 1e-6;
    let shifted = |step: f64, ws: &mut Workspace<f64>| {
        let (mut model, mut modulation) = (case.model.clone(), case.modulation.clone());
        *select(&mut model, &mut modulation) += step;
        loss(case, &model, &modulation, ws)
    };
    (shifted(H, ws) - shifted(-H, ws)) / (2.0 * H)
}

fn assert_close(what: &str, analytic: f64, numeric: f64) {
    let err = (analytic - numeric).abs() / (1e-4 + analytic.abs().max(numeric.abs()));
    assert!(
        err < 1e-4,
        "{what}: backward {analytic:e}, finite difference {numeric:e} (rel. error {err:e})"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn backward_matches_finite_differences(arch in arch_strategy(3, 2), seed in any::<u64>(), batch in 1usize..4, pair in prop::bool::ANY) {
        let case = build_case(&arch, seed, batch, pair);
        let model = &case.model;
        let mut ws = model.workspace(batch);
        let mut grads = model.zero_grads();
        loss(&case, model, &case.modulation, &mut ws);
        // Finite differences are meaningless across a ReLU kink: keep only
        // cases where every ReLU pre-activation is far from 0 compared with
        // how far a step of the parameters can move it.
        let far_from_kinks = (1..arch.depth()).filter(|&l| model.layer(l).activation == Some(Nonlinearity::Relu))
            .all(|l| model.pre_activations(&ws, l).iter().all(|a| a.abs() > 1e-4));
        prop_assume!(far_from_kinks);
        model.backward(&mut ws, Depth::All, &mut grads);

        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed ^ 1);
        for l in 1..=arch.depth() {
            let layer = model.layer(l).clone();
            let mut picks: Vec<usize> = (0..6).map(|_| rng.random_range(layer.weights.clone())).collect();
            picks.extend((0..3).map(|_| rng.random_range(layer.bias.clone())));
            for k in picks {
                let numeric = finite_difference(&case, &mut ws, |m, _| &mut m.params[k]);
                assert_close(&format!("layer {l} parameter {k}"), grads.params[k], numeric);
            }
        }
        for j in 0..case.modulation.coupling.len() {
            let numeric = finite_difference(&case, &mut ws, |_, c| &mut c.coupling[j]);
            assert_close(&format!("coupling {j}"), grads.coupling[j], numeric);
        }
    }

    #[test]
    fn partial_backward_equals_full(arch in arch_strategy(3, 2), seed in any::<u64>()) {
        let case = build_case(&arch, seed, 3, false);
        let model = &case.model;
        let mut ws = model.workspace(3);
        let mut full = model.zero_grads();
        loss(&case, model, &case.modulation, &mut ws);
        model.backward(&mut ws, Depth::All, &mut full);
        for targets in [Depth::Coupling, Depth::All, Depth::Readout, Depth::CouplingAndReadout] {
            let mut part = model.zero_grads();
            loss(&case, model, &case.modulation, &mut ws);
            model.backward(&mut ws, targets, &mut part);
            if targets != Depth::Readout {
                prop_assert_eq!(&part.coupling, &full.coupling);
            } else {
                prop_assert!(part.coupling.iter().all(|&g| g == 0.0), "coupling untouched");
            }
            let weights_from = match targets {
                Depth::Readout | Depth::CouplingAndReadout => Some(arch.depth()),
                Depth::Coupling => None,
                Depth::All => Some(1),
            };
            if let Some(from) = weights_from {
                let start = model.layer(from).weights.start;
                prop_assert_eq!(&part.params[start..], &full.params[start..]);
                prop_assert!(part.params[..start].iter().all(|&g| g == 0.0));
            } else {
                prop_assert!(part.params[..].iter().all(|&g| g == 0.0), "weights untouched");
            }
        }
    }
}
