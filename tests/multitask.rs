//! Multi-task fine-tuning (§8): the conv trial's gain against its literal
//! f64 reference, task switching by swapping (c, g), and the
//! `comod multitask` commands (resume, shards, merge, summary, threads).

mod common;

use common::{comod, comod_owned};
use comod::conv::trial::{TrialScratch, trial_gain, trial_gain_reference, unmodulated_features};
use comod::conv::workspace::ConvWorkspace;
use comod::conv::{ConvArch, ConvNet, Stage};
use comod::data::Shape;
use comod::data::benchmark::BenchmarkData;
use comod::net::{GainRule, Modulation};
use comod::train::learner::learner;
use comod::train::protocol::online;
use comod::train::{BenchmarkTasks, FinetuneConfig, Frozen, Method, Network, Study, TaskData};
use proptest::prelude::*;
use rand::{RngExt, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

fn random_arch(rng: &mut Xoshiro256PlusPlus) -> ConvArch {
    let side = rng.random_range(2..9usize);
    let mut stages = vec![Stage::Conv {
        channels: rng.random_range(1..20),
        kernel: 2 * rng.random_range(0..3usize) + 1,
    }];
    if rng.random_range(0..2) == 1 {
        stages.push(Stage::Maxpool);
    }
    if rng.random_range(0..2) == 1 {
        stages.push(Stage::Conv {
            channels: rng.random_range(1..20),
            kernel: 3,
        });
    }
    stages.push(Stage::Dense {
        size: rng.random_range(1..40),
    });
    let arch = ConvArch {
        format: 2,
        input: Shape {
            channels: rng.random_range(1..4),
            height: side,
            width: side,
        },
        stages,
        tasks: 2,
        modulated_stage: 1,
        beta: rng.random_range(-0.3..0.3),
    };
    arch.validate().unwrap();
    arch
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// The two-stage f32 trial (features once, the T scaled maps as one
    /// batch, the covariance folded in f64) equals the literal f64
    /// formula over per-sample forward passes.
    #[test]
    fn conv_trial_gain_matches_the_literal_reference(seed in any::<u64>(), samples in 2usize..60, compensate in any::<bool>(), correlation in any::<bool>()) {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        let arch = random_arch(&mut rng);
        let net64 = ConvNet::<f64>::init(&arch, seed);
        let mut net32 = ConvNet::<f32>::zeros(&arch);
        // Biases too are non-zero (init sets them to 0).
        for (a, &b) in net32.params.iter_mut().zip(&net64.params) {
            *a = b as f32 + rng.random_range(-0.1..0.1);
        }
        let mut net64 = net64;
        for (a, &b) in net64.params.iter_mut().zip(&net32.params) {
            *a = b as f64;
        }
        let image: Vec<f32> = (0..arch.input.len()).map(|_| rng.random_range(0.0..1.0)).collect();
        let m: Vec<f32> = (0..samples).map(|_| rng.random_range(0.4..1.6)).collect();
        let c: Vec<f32> = (0..arch.modulated_channels()).map(|_| rng.random_range(-1.0..1.5)).collect();
        let rule = if correlation { GainRule::Correlation } else { GainRule::Covariance };
        let mut ws: ConvWorkspace<f32> = net32.workspace();
        let u = unmodulated_features(&net32, &mut ws, &image, 1);
        let mut scratch = TrialScratch::new(&net32);
        let mut fast = vec![0.0; arch.gated_size()];
        let variance = if compensate { rng.random_range(0.01..0.3) } else { 0.0 };
        trial_gain(&net32, &u, &m, &c, variance, rule, &mut scratch, &mut fast);
        let wide = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<f64>>();
        let reference = trial_gain_reference(&net64, &wide(&image), &wide(&m), &wide(&c), variance as f64, rule);
        let scale = reference.iter().fold(1e-3f64, |s, g| s.max(g.abs()));
        for (j, (f, r)) in fast.iter().zip(&reference).enumerate() {
            // A correlation of a neuron that barely varies is ill-conditioned.
            if correlation && r.abs() < 1e-3 { continue; }
            prop_assert!((f - r).abs() <= 2e-4 * scale, "neuron {j}: {f} vs {r} (scale {scale})");
        }
    }
}

fn small_config() -> FinetuneConfig {
    FinetuneConfig {
        batches: 6,
        samples: 24,
        test_composites: 120,
        ..FinetuneConfig::DEFAULT
    }
}

/// The accuracy of `data`'s head under `modulation` on the frozen network.
fn accuracy(
    frozen: &Frozen<ConvNet<f32>>,
    data: &TaskData<ConvNet<f32>>,
    modulation: &Modulation<f32>,
    m: f32,
) -> f32 {
    let mut evaluator = frozen.net.evaluator();
    let logits = ConvNet::evaluate_modulated(
        frozen,
        &mut evaluator,
        &data.test,
        modulation,
        data.readout,
        m,
    )
    .unwrap();
    let correct = frozen
        .net
        .count_correct(logits, data.test.labels(), data.readout);
    correct as f32 / data.test.len() as f32
}

/// Switching task swaps (c, g) only: after fine-tuning another task, the
/// first task's modulation on the untouched backbone gives its accuracy
/// back, bit for bit; retraining changes the shared backbone instead.
#[test]
fn switching_back_reproduces_a_modulated_task_exactly() {
    let data = BenchmarkData::mnist_attributes(common::shipped_digits().clone());
    let arch = ConvArch::preset("conv-mnist", data.task_count()).unwrap();
    let frozen = Frozen::new(ConvNet::<f32>::init(&arch, 5));
    let study = BenchmarkTasks {
        frozen: &frozen,
        data: &data,
    };
    let config = small_config();
    let m = config.modulator_mean;
    let (first, second) = (
        study.task_data(0, &config, 7).unwrap(),
        study.task_data(5, &config, 7).unwrap(),
    );
    for method in [Method::Stochastic, Method::Deterministic] {
        let run = study.run(0, &first, (method, 0, 1), &config, 7).unwrap();
        assert!(run.failure.is_none(), "{:?}", run.failure);
        let modulation = run.modulation;
        assert_eq!(
            modulation.gain.iter().any(|&g| g != 1.0),
            method == Method::Stochastic
        );
        let before = accuracy(&frozen, &first, &modulation, m);
        assert_eq!(
            before,
            *run.curve.accuracy.last().unwrap(),
            "{}: the run's last measurement",
            method.name()
        );
        let other = study
            .run(5, &second, (method, 0, 2), &config, 7)
            .unwrap()
            .modulation;
        assert_ne!(other.coupling, modulation.coupling);
        let _ = accuracy(&frozen, &second, &other, m);
        let after = accuracy(&frozen, &first, &modulation, m);
        assert_eq!(
            after.to_bits(),
            before.to_bits(),
            "{}: switching back",
            method.name()
        );
    }
    let mut retrain = learner(Method::Retrain, &frozen, &config, 5, 3);
    let train = study.training(5, 0, 3, &config, 7).unwrap();
    let (_, failure) = online(retrain.as_mut(), &train, config.batch_size, &second.test);
    assert!(failure.is_none(), "{failure:?}");
    let backbone = frozen.net.head_params().weights.start;
    assert_ne!(
        &retrain.network().params[..backbone],
        &frozen.net.params[..backbone],
        "retrain changes the shared backbone"
    );
}

fn run_ok(args: &[String], threads: &str) -> String {
    let out = comod_owned(args, threads);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// pretrain, then sweep: the same records on 1 and 2 threads; a sweep
/// resumed over a larger plan runs only what is missing; shards merge into
/// the whole; the summary covers every method.
#[test]
fn multitask_commands_resume_shard_merge_and_summarise() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let ck = path("ck.safetensors");
    let printed = run_ok(
        &strings(&[
            "multitask",
            "pretrain",
            "--epochs",
            "1",
            "--examples",
            "200",
            "--out",
            &ck,
        ]),
        "2",
    );
    assert!(
        printed.contains("held-out mean accuracy over 8 tasks"),
        "{printed}"
    );
    let sweep = |tasks: &str, out: &str, extra: &[&str], threads: &str| {
        let mut args = strings(&[
            "multitask",
            "sweep",
            "--checkpoint",
            &ck,
            "--tasks",
            tasks,
            "--batches",
            "4",
            "--samples",
            "16",
            "--test-composites",
            "60",
            "--out",
            out,
        ]);
        args.extend(strings(extra));
        run_ok(&args, threads)
    };
    let (one, two) = (path("one.jsonl"), path("two.jsonl"));
    sweep("even@1,ge5@2", &one, &[], "1");
    sweep("even@1,ge5@2", &two, &[], "2");
    let (a, b) = (
        common::without_wall_time(std::path::Path::new(&one)),
        common::without_wall_time(std::path::Path::new(&two)),
    );
    assert_eq!(a.len(), 8);
    assert_eq!(a, b, "records do not depend on the thread count");
    let resumed = sweep("even@1,ge5@2,ge5@3", &one, &[], "2");
    assert!(
        resumed.contains("12 runs (8 already in the file, 4 run now)"),
        "{resumed}"
    );
    let shards: Vec<String> = (0..2).map(|i| path(&format!("shard{i}.jsonl"))).collect();
    for (i, shard) in shards.iter().enumerate() {
        sweep(
            "even@1,ge5@2,ge5@3",
            shard,
            &["--shard", &format!("{i}/2")],
            "2",
        );
    }
    let merged = path("merged.jsonl");
    run_ok(
        &strings(&["multitask", "merge", &merged, &shards[0], &shards[1]]),
        "2",
    );
    assert_eq!(
        common::without_wall_time(std::path::Path::new(&merged)),
        common::without_wall_time(std::path::Path::new(&one))
    );
    let summary = run_ok(&strings(&["multitask", "summary", &merged]), "2");
    for method in ["stochastic", "deterministic", "retrain", "retrain-last"] {
        assert!(summary.contains(method), "{summary}");
    }
    // A record of another configuration is refused, naming the file.
    let out = comod(
        &[
            "multitask",
            "sweep",
            "--checkpoint",
            &ck,
            "--tasks",
            "even@1",
            "--batches",
            "5",
            "--out",
            &one,
        ],
        "2",
    );
    common::assert_one_line_error(&out, &["one.jsonl", "another configuration"]);
    let out = comod(
        &[
            "multitask",
            "sweep",
            "--checkpoint",
            &ck,
            "--tasks",
            "odd@1",
            "--out",
            &path("x.jsonl"),
        ],
        "2",
    );
    common::assert_one_line_error(&out, &["--tasks", "odd@1", "even@0"]);
    let out = comod(
        &[
            "multitask",
            "sweep",
            "--benchmark",
            "cifar100",
            "--checkpoint",
            &ck,
            "--out",
            &path("x.jsonl"),
        ],
        "2",
    );
    common::assert_one_line_error(&out, &["--data", "cifar100"]);
}
