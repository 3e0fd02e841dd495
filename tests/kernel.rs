//! The fused trial kernel (§3) against its f64 reference, on random
//! architectures and values, for every body and both rules; the two SIMD
//! bodies against each other, bit for bit; and the batch gain's
//! independence from the thread count.
//!
//! Stated bound (f32 kernel vs f64 reference, per gated neuron j):
//! covariance: |g − g_ref| ≤ 1e-5 · S_j, with S_j = (1/T)·Σ_t |m_t − m̄|·A_{t,j}
//! the covariance of magnitudes (A = activity computed with |W|, |b|, |x|):
//! the natural scale of rounding errors of an f32 computation of g.
//! correlation: the same propagated through the division by std m · std z.

mod common;

use common::{arch_strategy, bodies};
use comod::data::CANVAS_PIXELS;
use comod::kernel::reference::reference_trial_gain;
use comod::kernel::{Body, KernelPlan, KernelScratch, trial_gain};
use comod::net::GainRule;
use comod::net::{Arch, Model};
use proptest::prelude::*;
use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, Normal};
use rand_xoshiro::Xoshiro256PlusPlus;

/// Relative tolerance of the stated bound.
const TOLERANCE: f64 = 1e-5;
/// The fraction of the bound the preset networks may use.
const MARGIN: f64 = 0.1;

/// The gain of `trial` computed by `body` with `scratch`.
fn gain_of(trial: &Trial, body: Body, rule: GainRule, scratch: &mut KernelScratch) -> Vec<f32> {
    let plan = KernelPlan::new(&trial.model);
    let mut gain = vec![f32::NAN; plan.gated_size];
    let c = &trial.coupling;
    trial_gain(
        body,
        &plan,
        c,
        &trial.activity,
        &trial.modulator,
        rule,
        scratch,
        &mut gain,
    );
    gain
}

struct Trial {
    model: Model<f32>,
    coupling: Vec<f32>,
    activity: Vec<f32>,
    modulator: Vec<f32>,
}

fn build_trial(arch: &Arch, seed: u64, samples: usize, coupling_scale: f32) -> Trial {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let mut model = Model::<f32>::init(arch, seed);
    for l in 1..=arch.depth() {
        for k in model.layer(l).bias.clone() {
            model.params[k] = rng.random_range(-0.3..0.3);
        }
    }
    let n = arch.size(arch.modulated_layer);
    let coupling = (0..n)
        .map(|_| rng.random_range(-coupling_scale..coupling_scale))
        .collect();
    let activity = (0..n).map(|_| rng.random_range(0.0..2.0)).collect();
    let normal = Normal::new(1.0f32, 0.1f32.sqrt()).unwrap();
    let modulator = (0..samples).map(|_| normal.sample(&mut rng)).collect();
    Trial {
        model,
        coupling,
        activity,
        modulator,
    }
}

/// Runs every body and checks it against the reference; returns the worst
/// error as a fraction of the allowed error.
fn check(trial: &Trial, rule: GainRule) -> f64 {
    let model = &trial.model;
    let reference = reference_trial_gain(
        model,
        &trial.coupling,
        &trial.activity,
        &trial.modulator,
        rule,
    );
    let mut worst: f64 = 0.0;
    for body in bodies() {
        let gain = gain_of(trial, body, rule, &mut KernelScratch::default());
        for (j, (&fast, &want)) in gain.iter().zip(&reference.gain).enumerate() {
            let allowed = reference.allowed_error(j, rule, TOLERANCE);
            let error = (fast as f64 - want).abs();
            assert!(
                error <= allowed,
                "{body:?} {rule:?} neuron {j}: kernel {fast:e}, reference {want:e}, error {error:e} > allowed {allowed:e}"
            );
            worst = worst.max(error / allowed);
        }
    }
    worst
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn fast_bodies_match_the_reference(
        arch in arch_strategy(30, 3),
        seed in any::<u64>(),
        samples in prop_oneof![Just(1usize), 2usize..60, 60usize..=600],
        coupling_scale in prop_oneof![Just(1.0f32), Just(4.0f32), Just(10.0f32)],
        correlation in prop::bool::ANY,
    ) {
        let trial = build_trial(&arch, seed, samples, coupling_scale);
        let rule = if correlation { GainRule::Correlation } else { GainRule::Covariance };
        check(&trial, rule);
    }
}

/// The AVX-512F and AVX2+FMA bodies on the same inputs: the same bits,
/// for the gain (both rules, any T, so any padding) and for
/// [`forward_rows`] (any row count); `None` when the CPU lacks AVX-512F.
fn simd_bodies_agree(trial: &Trial, rows: usize) -> Option<()> {
    use comod::kernel::{PackedRows, forward_rows};
    if !Body::available().contains(&Body::Avx512) {
        return None;
    }
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    for rule in [GainRule::Covariance, GainRule::Correlation] {
        let wide = gain_of(trial, Body::Avx512, rule, &mut KernelScratch::default());
        let narrow = gain_of(trial, Body::Avx2Fma, rule, &mut KernelScratch::default());
        assert_eq!(bits(&wide), bits(&narrow), "{rule:?}");
    }
    let plan = KernelPlan::new(&trial.model);
    let x: Vec<f32> = (0..rows * plan.modulated_size)
        .map(|i| trial.activity[i % plan.modulated_size] * (1.0 + (i % 7) as f32 * 0.1))
        .collect();
    let x = PackedRows::new(&x, plan.modulated_size);
    let factor: Vec<f32> = trial.coupling.iter().map(|c| (0.5 * c).exp()).collect();
    let run = |body| {
        let mut out = Vec::new();
        forward_rows(
            body,
            &plan,
            &x,
            &factor,
            &mut KernelScratch::default(),
            |start, block| {
                assert_eq!(start * plan.gated_size, out.len(), "blocks in row order");
                out.extend_from_slice(block);
            },
        );
        assert_eq!(out.len(), rows * plan.gated_size, "every row handed out");
        out
    };
    assert_eq!(
        bits(&run(Body::Avx512)),
        bits(&run(Body::Avx2Fma)),
        "forward_rows"
    );
    Some(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn avx512_body_gives_the_avx2_bits(
        arch in arch_strategy(40, 3),
        seed in any::<u64>(),
        samples in prop_oneof![Just(1usize), 2usize..60, 60usize..=300],
        rows in 1usize..130,
    ) {
        let trial = build_trial(&arch, seed, samples, 4.0);
        if simd_bodies_agree(&trial, rows).is_none() {
            eprintln!("this CPU has no AVX-512F: the AVX-512 body is not compared");
        }
    }
}

#[test]
fn paper_network_meets_the_bound_with_margin() {
    let mut worst: f64 = 0.0;
    for (name, layer) in [
        ("paper3", 1),
        ("paper3", 2),
        ("deep4", 1),
        ("deep4", 2),
        ("local2", 1),
        ("local2", 2),
    ] {
        let arch = Arch::preset(name, layer).unwrap();
        for rule in [GainRule::Covariance, GainRule::Correlation] {
            worst = worst.max(check(&build_trial(&arch, 7, 200, 1.0), rule));
        }
    }
    eprintln!("worst kernel error on the presets: {worst:.3} of the allowed error");
    // The presets are the networks sweeps run: they must stay well inside
    // the bound (10× below it), not merely pass it.
    assert!(
        worst < MARGIN,
        "worst error {worst:.3} of the allowed error, above the margin {MARGIN}"
    );
}

#[test]
fn one_sample_gives_zero_covariance() {
    let arch = Arch::preset("deep4", 1).unwrap();
    let trial = build_trial(&arch, 3, 1, 1.0);
    for body in bodies() {
        for rule in [GainRule::Covariance, GainRule::Correlation] {
            let gain = gain_of(&trial, body, rule, &mut KernelScratch::default());
            assert!(gain.iter().all(|&g| g == 0.0), "{body:?} {rule:?}");
        }
    }
}

#[test]
fn scratch_is_reusable_across_shapes() {
    let mut scratch = KernelScratch::default();
    for (name, layer, samples) in [
        ("deep4", 1, 300),
        ("paper3", 2, 7),
        ("local2", 1, 49),
        ("paper3", 1, 200),
    ] {
        let arch = Arch::preset(name, layer).unwrap();
        let trial = build_trial(&arch, 11, samples, 1.0);
        let reused = gain_of(&trial, Body::detect(), GainRule::Covariance, &mut scratch);
        let fresh = gain_of(
            &trial,
            Body::detect(),
            GainRule::Covariance,
            &mut KernelScratch::default(),
        );
        assert_eq!(reused, fresh, "{name} at layer {layer}");
    }
}

/// Random canvases and modulator rows for a batch.
fn batch_inputs(trials: usize, samples: usize, seed: u64) -> (Vec<f32>, Vec<f32>) {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let canvases = (0..trials * CANVAS_PIXELS)
        .map(|_| rng.random_range(0.0..1.0))
        .collect();
    let normal = Normal::new(1.0f32, 0.1f32.sqrt()).unwrap();
    let modulator = (0..trials * samples)
        .map(|_| normal.sample(&mut rng))
        .collect();
    (canvases, modulator)
}

#[test]
fn batch_gain_is_the_mean_of_trial_gains_and_ignores_thread_count() {
    use comod::kernel::{BatchScratch, Trials, batch_gain};
    for (name, layer) in [("paper3", 1), ("local2", 2)] {
        let arch = Arch::preset(name, layer).unwrap();
        let model = Model::<f32>::init(&arch, 5);
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(9);
        let coupling: Vec<f32> = (0..arch.size(arch.modulated_layer))
            .map(|_| rng.random_range(0.9..1.1))
            .collect();
        let plan = KernelPlan::new(&model);
        let (trials, samples) = (37, 200);
        let (canvases, modulator) = batch_inputs(trials, samples, 21);
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let mut scratch = BatchScratch::new(&model, trials);
            pool.install(|| {
                batch_gain(
                    &model,
                    &plan,
                    &coupling,
                    Trials::Canvases(&canvases),
                    &modulator,
                    GainRule::Covariance,
                    &mut scratch,
                )
                .to_vec()
            })
        };
        let (one, two) = (run(1), run(2));
        assert!(
            one.iter()
                .zip(&two)
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "{name}: bit-identical at 1 and 2 threads"
        );

        let mut ws = model.workspace(trials);
        let activity = model.unmodulated_activity(&mut ws, &canvases).to_vec();
        let n = plan.modulated_size;
        let mut mean = vec![0.0f64; plan.gated_size];
        let mut scale = vec![0.0f64; plan.gated_size];
        for b in 0..trials {
            let u = &activity[b * n..(b + 1) * n];
            let m = &modulator[b * samples..(b + 1) * samples];
            let reference = reference_trial_gain(&model, &coupling, u, m, GainRule::Covariance);
            for j in 0..plan.gated_size {
                mean[j] += reference.gain[j] / trials as f64;
                scale[j] += reference.covariance_scale[j] / trials as f64;
            }
        }
        // From the cached activity (a fixed data set, §4): the same gain.
        let mut scratch = BatchScratch::new(&model, trials);
        let from_activity = batch_gain(
            &model,
            &plan,
            &coupling,
            Trials::Activity(&activity),
            &modulator,
            GainRule::Covariance,
            &mut scratch,
        );
        assert_eq!(
            from_activity,
            &one[..],
            "{name}: from F(a_ℓ) as from canvases"
        );
        for j in 0..plan.gated_size {
            let error = (one[j] as f64 - mean[j]).abs();
            assert!(
                error <= TOLERANCE * scale[j] + 1e-30,
                "{name} neuron {j}: {} vs {}",
                one[j],
                mean[j]
            );
        }
    }
}

#[test]
fn constant_activity_gives_exactly_zero_gain() {
    // With c = 0 every sample sees the same activity: g must be exactly 0.
    for (name, layer) in [("paper3", 1), ("paper3", 2), ("deep4", 1), ("local2", 2)] {
        let arch = Arch::preset(name, layer).unwrap();
        let mut trial = build_trial(&arch, 13, 211, 1.0);
        trial.coupling.fill(0.0);
        for body in bodies() {
            for rule in [GainRule::Covariance, GainRule::Correlation] {
                let gain = gain_of(&trial, body, rule, &mut KernelScratch::default());
                assert!(
                    gain.iter().all(|&g| g == 0.0),
                    "{name} at {layer}, {body:?} {rule:?}: {:?}",
                    &gain[..4]
                );
            }
        }
    }
}
