//! Multi-task fine-tuning (§8): the conv trial's gain against its literal
//! f64 reference, task switching by swapping (c, g), and the
//! `comod multitask` commands (resume, shards, merge, summary, threads).

mod common;

use common::comod;
use comod::conv::heads::{Heads, heads_loss};
use comod::conv::modulator::Modulator;
use comod::conv::trial::{TrialScratch, trial_gain, trial_gain_reference, unmodulated_features};
use comod::conv::workspace::ConvWorkspace;
use comod::conv::{ConvArch, ConvNet, Stage};
use comod::data::Shape;
use comod::data::benchmark::BenchmarkData;
use comod::net::{Depth, GainRule, Modulation};
use comod::report::ReportOptions;
use comod::report::multitask::{pretrain_all, pretrain_options};
use comod::report::plan::Scale;
use comod::sweep::plan::Shard;
use comod::train::joint::pretrain_multitask;
use comod::train::learner::learner;
use comod::train::protocol::online;
use comod::train::{
    BenchmarkTasks, EvalSet, Examples, FinetuneConfig, Frozen, Method, Network, Study, TaskData,
    Transfer,
};
use proptest::prelude::*;
use rand::{RngExt, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

/// Relative tolerance of the conv trial's bound against its reference
/// (`ReferenceGain::allowed_error`: a multiple of the magnitudes that bound
/// an f32 computation's rounding, so that a neuron whose activity barely
/// varies is held to what its conditioning allows). 16 000 random cases
/// erred by less than 1e-7 of those magnitudes (the largest seen, 5.6e-8,
/// is about one f32 unit roundoff): a margin of at least 20.
const TOLERANCE: f64 = 2e-6;

fn random_arch(rng: &mut Xoshiro256PlusPlus) -> ConvArch {
    let side = rng.random_range(2..9usize);
    let mut stages = vec![Stage::Conv {
        channels: rng.random_range(1..20),
        kernel: 2 * rng.random_range(0..3usize) + 1,
    }];
    if rng.random_range(0..2) == 1 {
        stages.push(Stage::Maxpool {});
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
    /// formula over per-sample forward passes, within the rounding bound
    /// of every neuron.
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
        trial_gain(&net32.evaluation(), &u, &m, &c, variance, rule, &mut scratch, &mut fast);
        let wide = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<f64>>();
        let reference = trial_gain_reference(&net64, &wide(&image), &wide(&m), &wide(&c), variance as f64, rule);
        for (j, (&f, &r)) in fast.iter().zip(&reference.gain).enumerate() {
            let (error, allowed) = ((f - r).abs(), reference.allowed_error(j, rule, TOLERANCE));
            prop_assert!(error <= allowed, "{rule:?} neuron {j}: {f:e} vs {r:e}, error {error:e} > allowed {allowed:e}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// The conv network behind the seam (§4, §8): its evaluation from the
    /// cached maps under a modulation equals the plain forward pass (a
    /// positive factor commutes with the max-pools): bit for bit, or to
    /// rounding (2e-6 of each logit's magnitude, its value in the network
    /// of |W| and |b|) where a conv stage takes the factors into its
    /// weights; the retrained
    /// network's from the images too, and from the frozen gated output its
    /// head's logits to rounding; the validation loss is the training loss.
    #[test]
    fn conv_evaluations_equal_the_forward_pass(seed in any::<u64>(), rows in 1usize..300) {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        let arch = random_arch(&mut rng);
        let mut net = ConvNet::<f32>::init(&arch, seed);
        for p in &mut net.params {
            *p += rng.random_range(-0.05..0.05);
        }
        let frozen = Frozen::new(net.clone());
        let head = rng.random_range(0..arch.tasks);
        let inputs: Vec<f32> = (0..rows * arch.input.len()).map(|_| rng.random_range(0.0..1.0)).collect();
        let labels: Vec<u8> = (0..rows).map(|_| rng.random_range(0..2)).collect();
        let m = rng.random_range(0.5..1.5);
        let set = EvalSet::new(&frozen, Examples { inputs: inputs.clone(), labels: labels.clone() }, m);
        let mut modulation = Modulation::off(&net);
        modulation.coupling.iter_mut().for_each(|c| *c = rng.random_range(-1.0..1.5));
        modulation.gain.iter_mut().for_each(|g| *g = rng.random_range(0.0..2.0));
        let mut ws = net.workspace();
        let ms = vec![m; rows];
        let modulator = Modulator { m: &ms, coupling: &modulation.coupling, beta: arch.beta, variance: 0.0 };
        net.forward(&mut ws, &inputs, rows, Some(&modulator), Some(&modulation.gain));
        let want = ws.logits().to_vec();
        let mut evaluator = net.evaluator();
        let got = ConvNet::evaluate_modulated(&frozen, &mut evaluator, &set, &modulation, head, m).unwrap().to_vec();
        if matches!(arch.stages[arch.scaling_stage()], Stage::Conv { .. }) {
            // Each logit's magnitude: the network of |W| and |b| (the inputs
            // and factors are positive), the scale of its rounding errors.
            // 9600 random cases stayed within 2e-7 of it: a margin of 10.
            net.magnitudes().forward(&mut ws, &inputs, rows, Some(&modulator), Some(&modulation.gain));
            let magnitude = ws.logits().to_vec();
            prop_assert_eq!(got.len(), want.len());
            for (i, ((g, w), a)) in got.iter().zip(&want).zip(&magnitude).enumerate() {
                prop_assert!((g - w).abs() <= 2e-6 * a, "logit {}: {} vs {} (magnitude {})", i, g, w, a);
            }
        } else {
            prop_assert_eq!(&got, &want);
        }
        let mut dlogits = vec![0.0; want.len()];
        let loss = heads_loss(&want, arch.tasks, &labels, Heads::One(head), &mut dlogits);
        let mean = net.mean_loss(&got, &labels, head);
        // The two losses agree to rounding, plus what the logits' own
        // differences move them: a cross-entropy's derivative by each
        // logit is at most 1 in absolute value, so at most the sum of the
        // head's two differences per row, averaged over the rows.
        let moved = got.chunks_exact(arch.logits()).zip(want.chunks_exact(arch.logits()))
            .map(|(g, w)| (2 * head..2 * head + 2).map(|c| (g[c] - w[c]).abs() as f64).sum::<f64>())
            .sum::<f64>() / rows as f64;
        prop_assert!((mean - loss as f64).abs() <= 1e-5 * (1.0 + mean) + moved, "{} vs {}", mean, loss);
        net.forward(&mut ws, &inputs, rows, None, None);
        let plain = ws.logits().to_vec();
        let all = net.evaluate_retrained(&mut evaluator, &set, Depth::All, head, m).unwrap().to_vec();
        prop_assert_eq!(&all, &plain);
        let readout = net.evaluate_retrained(&mut evaluator, &set, Depth::Readout, head, m).unwrap();
        for (r, (z, w)) in readout.chunks_exact(arch.logits()).zip(plain.chunks_exact(arch.logits())).enumerate() {
            for c in [2 * head, 2 * head + 1] {
                prop_assert!((z[c] - w[c]).abs() <= 1e-5 * (1.0 + w[c].abs()), "row {} logit {}: {} vs {}", r, c, z[c], w[c]);
            }
        }
        prop_assert_eq!(net.count_correct(&got, &labels, head), head_correct_of(&got, &labels, arch.tasks, head));
    }
}

/// Examples whose head `t` (of `tasks`) picks the label, counted plainly.
fn head_correct_of(logits: &[f32], labels: &[u8], tasks: usize, t: usize) -> usize {
    logits
        .chunks_exact(2 * tasks)
        .zip(labels)
        .filter(|(z, y)| (z[2 * t + 1] > z[2 * t]) == (**y == 1))
        .count()
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
    let out = comod(args, threads);
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

/// The arguments of a small `comod multitask sweep` of `tasks` from the
/// checkpoint `ck` into `out`, with `extra`.
fn small_sweep(ck: &str, tasks: &str, out: &str, extra: &[&str]) -> Vec<String> {
    let mut args = strings(&[
        "multitask",
        "sweep",
        "--checkpoint",
        ck,
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
    args
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
        printed.contains("(held-out)")
            && printed.contains("held-out mean accuracy over its 8 pretraining tasks"),
        "{printed}"
    );
    let sweep = |tasks: &str, out: &str, extra: &[&str], threads: &str| {
        run_ok(&small_sweep(&ck, tasks, out, extra), threads)
    };
    let (one, two) = (path("one.jsonl"), path("two.jsonl"));
    sweep("prime@1,loop@2", &one, &[], "1");
    sweep("prime@1,loop@2", &two, &[], "2");
    let (a, b) = (
        common::without_wall_time(std::path::Path::new(&one)),
        common::without_wall_time(std::path::Path::new(&two)),
    );
    assert_eq!(a.len(), 8);
    assert_eq!(a, b, "records do not depend on the thread count");
    let resumed = sweep("prime@1,loop@2,loop@3", &one, &[], "2");
    assert!(
        resumed.contains("12 runs (8 already in the file, 4 run now)"),
        "{resumed}"
    );
    let shards: Vec<String> = (0..2).map(|i| path(&format!("shard{i}.jsonl"))).collect();
    for (i, shard) in shards.iter().enumerate() {
        sweep(
            "prime@1,loop@2,loop@3",
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
    // The runs resumed into `one` keep the plan of the sweep that ran
    // them (two tasks); the shards ran every run under the three-task plan.
    let without_plan =
        |path: &str| common::without_keys(std::path::Path::new(path), &["wall_s", "plan"]);
    assert_eq!(without_plan(&merged), without_plan(&one));
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
            "prime@1",
            "--batches",
            "5",
            "--out",
            &one,
        ],
        "2",
    );
    common::assert_one_line_error(&out, &["one.jsonl", "another configuration"]);
    // A sweep of the checkpoint with `extra` fails in one line naming `needles`.
    let x = path("x.jsonl");
    let refused = |extra: &[&str], needles: &[&str]| {
        let mut args = vec!["multitask", "sweep", "--checkpoint", &ck, "--out", &x];
        args.extend_from_slice(extra);
        common::assert_one_line_error(&comod(&args, "2"), needles);
    };
    refused(&["--tasks", "odd@1"], &["--tasks", "odd@1", "even@0"]);
    // Under `held-out` only the held-out tasks are fine-tuned, and the
    // checkpoint's protocol is the sweep's.
    refused(
        &["--tasks", "even@1"],
        &["--tasks", "even@1", "pretraining task"],
    );
    refused(
        &["--transfer", "joint"],
        &["ck.safetensors", "held-out", "joint"],
    );
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

/// A multi-task results file is guarded as the MLP runner guards its own
/// (§6): a record with a wrong x axis, a duplicated run, a run of another
/// benchmark are refused in one line naming the file and leave it as it
/// was; a torn last line is dropped and the sweep completes to the file
/// an uninterrupted sweep writes; a method listed twice runs once; a plan
/// too large is refused before any work. The `dataset` protocol runs,
/// resumes and summarises.
#[test]
fn multitask_results_files_are_guarded_as_the_mlp_runner_guards_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let ck = path("ck.safetensors");
    let pretrain = [
        "multitask",
        "pretrain",
        "--epochs",
        "1",
        "--examples",
        "200",
    ];
    run_ok(&strings(&[&pretrain[..], &["--out", &ck]].concat()), "2");
    let sweep_args = |out: &str, extra: &[&str]| small_sweep(&ck, "prime@1,loop@2", out, extra);
    let whole = path("whole.jsonl");
    run_ok(&sweep_args(&whole, &[]), "2");
    let text = std::fs::read_to_string(&whole).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 8);
    // Each broken file is refused, naming it, and left as it was.
    let edit = |line: &str, f: &dyn Fn(&mut serde_json::Value)| {
        let mut record: serde_json::Value = serde_json::from_str(line).unwrap();
        f(&mut record);
        record.to_string()
    };
    let cut = edit(lines[0], &|r| {
        r["curve"] = serde_json::json!([0.5, 0.5, 0.5]);
        r["examples"] = serde_json::json!([0, 2, 4]);
    });
    let other_benchmark = edit(lines[1], &|r| r["config"]["benchmark"] = "cifar100".into());
    let cases: [(&str, String, &[&str]); 3] = [
        (
            "cut.jsonl",
            format!("{cut}\n{}\n", lines[1..].join("\n")),
            &["3 measurements where this sweep makes 5"],
        ),
        (
            "twice.jsonl",
            format!("{text}{}\n", lines[0]),
            &["line 9", "the same run is recorded twice"],
        ),
        (
            "other.jsonl",
            format!("{}\n{other_benchmark}\n", lines[0]),
            &["another configuration (benchmark differs"],
        ),
    ];
    for (name, contents, needles) in cases {
        let file = path(name);
        std::fs::write(&file, &contents).unwrap();
        let out = comod(&sweep_args(&file, &[]), "2");
        let mut expected = vec![name];
        expected.extend_from_slice(needles);
        common::assert_one_line_error(&out, &expected);
        assert_eq!(std::fs::read_to_string(&file).unwrap(), contents, "{name}");
        assert!(!std::path::Path::new(&format!("{file}.lock")).exists());
    }
    // The summary refuses a record cut short too.
    let out = comod(&["multitask", "summary", &path("cut.jsonl")], "2");
    common::assert_one_line_error(&out, &["cut.jsonl", "3 measurements"]);
    // A torn last line is dropped; the sweep completes it.
    let torn = path("torn.jsonl");
    let half = &lines[7][..lines[7].len() / 2];
    std::fs::write(&torn, format!("{}\n{half}", lines[..7].join("\n"))).unwrap();
    let out = comod(&sweep_args(&torn, &[]), "2");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("dropped a torn last line"));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("8 runs (7 already in the file, 1 run now)")
    );
    assert_eq!(
        common::without_wall_time(std::path::Path::new(&torn)),
        common::without_wall_time(std::path::Path::new(&whole))
    );
    // A method listed twice runs once.
    let twice = path("methods.jsonl");
    let printed = run_ok(
        &sweep_args(&twice, &["--methods", "stochastic,stochastic"]),
        "2",
    );
    assert!(
        printed.contains("2 runs (0 already in the file, 2 run now)"),
        "{printed}"
    );
    // A plan too large is refused before any work, leaving no lock.
    let huge = path("huge.jsonl");
    let out = comod(&sweep_args(&huge, &["--repeats", "100000000000"]), "2");
    common::assert_one_line_error(&out, &["--repeats 100000000000", "split it"]);
    assert!(!std::path::Path::new(&huge).exists());
    assert!(!std::path::Path::new(&format!("{huge}.lock")).exists());
    // The dataset protocol: its x axis is the sizes; it resumes and summarises.
    let dataset = path("dataset.jsonl");
    let sizes = [
        "--protocol",
        "dataset",
        "--size-step",
        "6",
        "--sizes",
        "2",
        "--max-epochs",
        "3",
    ];
    // `--batches` is the online protocol's: given with `dataset`, refused.
    let out = comod(&sweep_args(&dataset, &sizes), "2");
    common::assert_one_line_error(&out, &["--batches", "--protocol online only"]);
    let sweep_args = |out: &str, extra: &[&str]| {
        let mut args = sweep_args(out, extra);
        let at = args.iter().position(|a| a == "--batches").unwrap();
        args.drain(at..at + 2);
        args
    };
    run_ok(&sweep_args(&dataset, &sizes), "2");
    let record: serde_json::Value = serde_json::from_str(
        std::fs::read_to_string(&dataset)
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(record["examples"], serde_json::json!([6, 12]));
    assert_eq!(record["epochs"]["trained"].as_array().unwrap().len(), 2);
    let again = run_ok(&sweep_args(&dataset, &sizes), "2");
    assert!(again.contains("all already in the file"), "{again}");
    let summary = run_ok(&strings(&["multitask", "summary", &dataset]), "2");
    assert!(summary.contains("retrain-last"), "{summary}");
}

/// `merge` and `summary` read the records of either network, telling them
/// apart by their architecture (§7); the two never mix in one file.
#[test]
fn merge_and_summary_tell_the_networks_apart_and_never_mix_them() {
    use comod::analysis::summarize_file;
    use comod::sweep::store::{RecordKind, merge_files};
    let golden = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let (mlp, conv) = (
        golden.join("mlp-online.jsonl"),
        golden.join("conv-online.jsonl"),
    );
    assert_eq!(RecordKind::of_file(&mlp).unwrap(), Some(RecordKind::Mlp));
    assert_eq!(RecordKind::of_file(&conv).unwrap(), Some(RecordKind::Conv));
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("merged.jsonl");
    let err = merge_files(&out, &[&mlp, &conv], false)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("conv-online.jsonl") && err.contains("never mix"),
        "{err}"
    );
    assert!(!out.exists());
    let merged = merge_files(&out, &[&conv], false).unwrap();
    assert_eq!((merged.runs, merged.kind), (8, RecordKind::Conv));
    for (file, kind) in [(&mlp, RecordKind::Mlp), (&conv, RecordKind::Conv)] {
        let summary = summarize_file(file, Some(dir.path()), None, false).unwrap();
        assert_eq!(summary.kind, kind);
        assert!(summary.files.table.contains("retrain-last"));
    }
}

/// The report pretrains its §8 networks at once, one per thread
/// (`pretrain_all`): each is, bit for bit, the network pretrained alone on
/// both threads (§6), in the order asked for, and saved where the report
/// reads it.
#[test]
fn networks_pretrained_at_once_are_those_pretrained_alone() {
    let dir = tempfile::tempdir().unwrap();
    let options = ReportOptions {
        out: dir.path().to_path_buf(),
        data: "data".into(),
        fashion: "data/fashion".into(),
        scale: Scale::Smoke,
        shard: Shard::default(),
        seed: 3,
        partial: false,
        also: Vec::new(),
    };
    let data = BenchmarkData::mnist_attributes(common::shipped_digits().clone());
    let arch = ConvArch::preset("conv-mnist", data.task_count()).unwrap();
    let narrow = arch.variant(0.5, Some(2)).unwrap();
    let networks = [
        (&arch, "held-out".to_string(), Transfer::HeldOut),
        (&arch, "joint".to_string(), Transfer::Joint),
        (&narrow, "narrow".to_string(), Transfer::HeldOut),
    ];
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    let at_once = pool
        .install(|| pretrain_all(&options, &data, &networks, &common::Quiet))
        .unwrap();
    assert_eq!(at_once.len(), networks.len());
    let bits = |params: &[f32]| params.iter().map(|p| p.to_bits()).collect::<Vec<_>>();
    for ((arch, name, transfer), got) in networks.iter().zip(&at_once) {
        let settings = pretrain_options(&options, *transfer);
        let (alone, epochs) = pool
            .install(|| pretrain_multitask(&data, arch, &settings, &mut |_| {}))
            .unwrap();
        assert!(
            bits(&got.net.params) == bits(&alone.params),
            "{name}: the network pretrained at once differs from the one pretrained alone"
        );
        assert_eq!(got.provenance.epochs, epochs.len(), "{name}");
        assert!(got.checkpoint.exists(), "{name}: no checkpoint");
    }
}
