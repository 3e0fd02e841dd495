//! The one evaluation path of fine-tuning runs (§4) against the network's
//! plain forward pass, on random architectures, modulations and sets, for
//! every kernel body: every point of the learning curves comes from it.

mod common;

use common::{arch_strategy, bodies};
use comod::data::CANVAS_PIXELS;
use comod::kernel::dense::has_dense_tiles;
use comod::net::arch::LOGITS;
use comod::net::layers::{ARGMAX_ROWS, columns_correct, correct_count, mean_cross_entropy};
use comod::net::model::EVAL_ROWS;
use comod::net::{Arch, Depth, Model, Modulation, Readout};
use comod::train::evaluate::{general_set_accuracy, heldout_set};
use comod::train::mlp::MlpEvaluator;
use comod::train::switching::GeneralTest;
use comod::train::{EvalSet, Examples, Frozen, Network};
use proptest::prelude::*;
use rand::{RngExt, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

struct Case {
    frozen: Frozen<Model<f32>>,
    modulation: Modulation<f32>,
    set: EvalSet<Model<f32>>,
    readout: Readout,
    m: f32,
}

fn build_case(arch: &Arch, seed: u64, rows: usize, pair: bool) -> Case {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let mut model = Model::<f32>::init(arch, seed);
    for l in 1..=arch.depth() {
        for k in model.layer(l).bias.clone() {
            model.params[k] = rng.random_range(-0.3..0.3);
        }
    }
    let mut modulation = Modulation::off(arch);
    modulation
        .coupling
        .iter_mut()
        .for_each(|c| *c = rng.random_range(-1.5..1.5));
    modulation
        .gain
        .iter_mut()
        .for_each(|g| *g = rng.random_range(0.0..2.0));
    let images: Vec<f32> = (0..rows * CANVAS_PIXELS)
        .map(|_| rng.random_range(-0.1..1.0))
        .collect();
    let (readout, classes) = if pair {
        let a = rng.random_range(0..9u8);
        (Readout::Pair(a, rng.random_range(a + 1..10)), 2)
    } else {
        (Readout::All, 10)
    };
    let labels = (0..rows).map(|_| rng.random_range(0..classes)).collect();
    let m = rng.random_range(0.5..1.5);
    let frozen = Frozen::new(model);
    Case {
        set: EvalSet::new(
            &frozen,
            Examples {
                inputs: images,
                labels,
            },
            m,
        ),
        frozen,
        modulation,
        readout,
        m,
    }
}

/// The logits of the plain forward pass with `modulation`.
fn forward_logits(case: &Case, model: &Model<f32>, modulation: &Modulation<f32>) -> Vec<f32> {
    let mut ws = model.workspace(case.set.len());
    model.forward(&mut ws, modulation, case.set.inputs(), case.m);
    model.logits(&ws).to_vec()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// The count of right answers is the number of rows whose first
    /// largest readout logit (a NaN never larger, a NaN first column kept)
    /// sits at the label, counted row by row: any number of rows (whole
    /// blocks and a rest), ties, signed zeros, infinities and NaNs, both
    /// readouts, labels of every column.
    #[test]
    fn the_count_of_right_answers_is_each_rows_first_largest_logit(
        rows in 0usize..70,
        pair in prop::option::of((0u8..10, 0u8..10)),
        seed in any::<u64>(),
    ) {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        const VALUES: [f32; 8] = [-1.0, 0.0, -0.0, 0.5, 1.0, f32::NAN, f32::INFINITY, f32::NEG_INFINITY];
        let logits: Vec<f32> = (0..rows * LOGITS)
            .map(|_| VALUES[rng.random_range(0..VALUES.len())])
            .collect();
        let readout = pair.map_or(Readout::All, |(a, b)| Readout::Pair(a, b));
        let columns: Vec<usize> = match readout {
            Readout::All => (0..LOGITS).collect(),
            Readout::Pair(a, b) => vec![a.into(), b.into()],
        };
        let labels: Vec<u8> = (0..rows).map(|_| rng.random_range(0..columns.len() as u8)).collect();
        let mut want = 0;
        for (z, &y) in logits.chunks_exact(LOGITS).zip(&labels) {
            let mut best = 0;
            for k in 1..columns.len() {
                if z[columns[k]] > z[columns[best]] {
                    best = k;
                }
            }
            want += usize::from(best == usize::from(y));
        }
        prop_assert_eq!(correct_count(&logits, &labels, readout), want);
        let wide: Vec<f64> = logits.iter().map(|&v| f64::from(v)).collect();
        prop_assert_eq!(correct_count(&wide, &labels, readout), want);
        // The same blocks held as columns (logit c of row r at [c][r]), the
        // last one partial, its padding rows NaN.
        let mut by_columns = 0;
        for (z, y) in logits.chunks(ARGMAX_ROWS * LOGITS).zip(labels.chunks(ARGMAX_ROWS)) {
            let mut block = [[f32::NAN; ARGMAX_ROWS]; LOGITS];
            for (r, row) in z.chunks_exact(LOGITS).enumerate() {
                for (c, &v) in row.iter().enumerate() {
                    block[c][r] = v;
                }
            }
            by_columns += columns_correct(&block, y, &columns);
        }
        prop_assert_eq!(by_columns, want);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// `retrain-last`'s accuracy counted from the readout's tiles as they
    /// leave the registers is the count of the logits the evaluation
    /// writes, on every body with dense tiles (none on the others); and
    /// where a readout weight or bias is not finite it gives no count, so
    /// that the full evaluation names the fault.
    #[test]
    fn the_readout_tiles_count_what_the_written_logits_count(
        arch in arch_strategy(12, 3),
        seed in any::<u64>(),
        rows in 1usize..60,
        pair in prop::bool::ANY,
        poison in prop::option::of((any::<bool>(), 0usize..1000, prop::sample::select(vec![f32::NAN, f32::INFINITY, f32::NEG_INFINITY]))),
    ) {
        let case = build_case(&arch, seed, rows, pair);
        // The retrained readout: new weights, the frozen layers below.
        let mut model = case.frozen.net.clone();
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed ^ 1);
        let readout = model.layer(arch.depth()).clone();
        for k in readout.weights.clone().chain(readout.bias.clone()) {
            model.params[k] = rng.random_range(-1.0..1.0);
        }
        if let Some((bias, at, value)) = poison {
            let range = if bias { readout.bias.clone() } else { readout.weights.clone() };
            model.params[range.start + at % range.len()] = value;
        }
        for body in bodies() {
            let mut evaluator = MlpEvaluator::new(&model, body);
            evaluator.unmodulated(&model, &case.set, Depth::Readout, case.m);
            let want = evaluator
                .checked_logits()
                .ok()
                .map(|logits| correct_count(logits, case.set.labels(), case.readout));
            let mut fresh = MlpEvaluator::new(&model, body);
            let got = model.readout_correct(&mut fresh, &case.set, case.readout, case.m);
            if has_dense_tiles(body) {
                prop_assert_eq!(got, want, "{:?}", body);
            } else {
                prop_assert_eq!(got, None, "{:?}", body);
            }
            if poison.is_some() {
                prop_assert_eq!(want, None, "{:?}: a non-finite readout", body);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn modulated_evaluation_matches_the_forward_pass(
        arch in arch_strategy(12, 3),
        seed in any::<u64>(),
        rows in prop_oneof![1usize..8, 40usize..110],
        pair in prop::bool::ANY,
    ) {
        let case = build_case(&arch, seed, rows, pair);
        let want = forward_logits(&case, &case.frozen.net, &case.modulation);
        for body in bodies() {
            let mut evaluator = MlpEvaluator::new(&case.frozen.net, body);
            evaluator.modulated(&case.frozen, &case.modulation, &case.set, case.readout, case.m);
            let got = evaluator.checked_logits().unwrap();
            let scale = want.iter().fold(1.0f32, |s, z| s.max(z.abs()));
            for (r, (g_row, w_row)) in got.chunks_exact(LOGITS).zip(want.chunks_exact(LOGITS)).enumerate() {
                for &c in case.readout.columns().iter() {
                    let error = (g_row[c] - w_row[c]).abs();
                    prop_assert!(
                        error <= 1e-5 * scale,
                        "{:?} row {} logit {}: evaluator {} vs forward {} (scale {})",
                        body, r, c, g_row[c], w_row[c], scale
                    );
                }
            }
            let want_loss = mean_cross_entropy(&want, LOGITS, case.set.labels(), case.readout);
            let loss = case.frozen.net.mean_loss(got, case.set.labels(), case.readout);
            prop_assert!((loss - want_loss).abs() <= 1e-4 * (1.0 + want_loss.abs()), "{:?}: loss {} vs {}", body, loss, want_loss);
        }
    }

    #[test]
    fn unmodulated_evaluation_equals_the_forward_pass_bit_for_bit(
        arch in arch_strategy(12, 3),
        seed in any::<u64>(),
        rows in 1usize..60,
        pair in prop::bool::ANY,
    ) {
        let case = build_case(&arch, seed, rows, pair);
        let model = &case.frozen.net;
        let want = forward_logits(&case, model, &Modulation::off(&arch));
        for body in bodies() {
            let mut evaluator = MlpEvaluator::new(model, body);
            for depth in [Depth::All, Depth::Readout] {
                evaluator.unmodulated(model, &case.set, depth, case.m);
                let got = evaluator.checked_logits().unwrap();
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                prop_assert_eq!(bits(got), bits(&want), "{:?} {:?}", body, depth);
            }
        }
    }
}

#[test]
fn accuracy_counts_the_readout_argmax() {
    let arch = Arch::preset("paper3", 1).unwrap();
    let case = build_case(&arch, 3, 200, false);
    let mut evaluator = MlpEvaluator::new(&case.frozen.net, comod::kernel::Body::detect());
    evaluator.modulated(
        &case.frozen,
        &case.modulation,
        &case.set,
        case.readout,
        case.m,
    );
    let want = forward_logits(&case, &case.frozen.net, &case.modulation);
    let correct = want
        .chunks_exact(LOGITS)
        .zip(case.set.labels())
        .filter(|(z, y)| {
            let best = (0..LOGITS).fold(0, |b, c| if z[c] > z[b] { c } else { b });
            best == **y as usize
        })
        .count();
    let logits = evaluator.checked_logits().unwrap();
    let counted = case
        .frozen
        .net
        .count_correct(logits, case.set.labels(), case.readout);
    assert_eq!(counted, correct);
}

/// Task switching (§5 (f)) measures the general task through the
/// evaluator: on every body, the accuracy of the network's own forward
/// pass, for the pretrained network and for one whose every layer changed
/// (a return retrains them all).
#[test]
fn the_switching_measurement_is_the_forward_pass_accuracy() {
    let digits = common::shipped_digits();
    let arch = Arch::preset("paper3", 1).unwrap();
    let frozen = Frozen::new(Model::<f32>::init(&arch, 4));
    let general = GeneralTest::new(&frozen, digits, 7);
    let composites = heldout_set(digits, 7);
    let mut ws = frozen.net.workspace(EVAL_ROWS);
    let forward = general_set_accuracy(&frozen.net, &mut ws, &composites);
    assert_eq!(general.pretrained, forward, "the pretrained network");
    let mut changed = frozen.net.clone();
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(8);
    for p in &mut changed.params {
        *p = *p * rng.random_range(0.5..1.5) + rng.random_range(-0.05..0.05);
    }
    let forward = general_set_accuracy(&changed, &mut ws, &composites);
    assert!(
        forward > 0.0 && forward < 1.0,
        "a set with right and wrong rows"
    );
    for body in bodies() {
        let mut evaluator = MlpEvaluator::new(&changed, body);
        let measured = general.accuracy(&changed, &mut evaluator);
        assert_eq!(measured, forward, "{body:?}: the changed network");
    }
}
