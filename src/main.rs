//! The `comod` command line: parses arguments, calls the library, prints.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use comod::analysis::plots::write_plots;
use comod::analysis::summary::{csv, markdown, summarize};
use comod::bench::{PEAK_SIDE, median_seconds, sgemm_peak_gflops};
use comod::data::{Digits, Task, parse_task_list};
use comod::digest::sha256_hex;
use comod::io::tensors::write_atomic;
use comod::io::trace::{read_trace_inputs, write_trace_outputs};
use comod::io::{load_checkpoint, save_checkpoint, tensors::check_writable};
use comod::kernel::workload::{self, WORKLOADS};
use comod::kernel::{Body, GainRule, SAMPLES};
use comod::net::Arch;
use comod::net::Model;
use comod::net::arch::PRESETS;
use comod::sweep::plan::Shard;
use comod::sweep::record::SweepConfig;
use comod::sweep::store::merge;
use comod::sweep::store::read_results;
use comod::sweep::{SweepReport, SweepSpec, run_sweep};
use comod::train::finetune::{FinetuneConfig, LearningRates, Method, ReadoutKind};
use comod::train::gain::{GainInput, GainNorm, GainOptions, GainSmoothing};
use comod::train::trace::trace;
use comod::train::{PretrainOptions, general_accuracy, pair_accuracy, pretrain};

/// Learned stochastic co-modulation: fine-tune a frozen network by learning
/// how a random modulator couples into it (Haimerl, Simoncelli & Savin 2022).
#[derive(Parser)]
#[command(name = "comod", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Pretrain a network on the general 10-way task (SPEC §4) and save it.
    Pretrain(PretrainArgs),
    /// Held-out accuracy of a checkpoint on the general task, and the pair
    /// accuracy of specific tasks with and without distractors (Fig. 2A).
    Eval(EvalArgs),
    /// Fine-tune the pretrained network on tasks × methods × repeats
    /// (SPEC §4, §6), appending one JSON line per run; resumable, shardable.
    Sweep(SweepArgs),
    /// Join shard result files into one, rejecting duplicated runs and
    /// mixed configurations.
    Merge(MergeArgs),
    /// Summary of a results file per method (mean ± s.e.m.), printed and
    /// written as Markdown and CSV; with --plots, PNG figures.
    Summary(SummaryArgs),
    /// The main job: pretrain (or reuse a matching checkpoint), sweep, then
    /// summary and plots, all in one folder.
    Reproduce(ReproduceArgs),
    /// Verification interface (SPEC §7): per-trial gains, logits, loss and
    /// every gradient for the inputs of a safetensors file.
    Trace(TraceArgs),
    /// Time the fused trial kernel (SPEC §3) on its workloads beside the
    /// machine's SGEMM peak measured in the same run.
    Bench(BenchArgs),
}

/// The settings of fine-tuning runs (SPEC §3, §4), shared by `sweep` and `reproduce`.
#[derive(clap::Args, Clone)]
struct RunOptions {
    /// Methods, comma-separated.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "stochastic,deterministic,retrain,retrain-last"
    )]
    methods: Vec<Method>,
    /// Master seed; each run's seed is a hash of it with task, method and repeat.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Readout of the binary task: `pair` (softmax over the two logits) or
    /// `all` (10-way, label = target digit).
    #[arg(long, value_enum, default_value = "pair")]
    readout: ReadoutKind,
    /// Per-trial gain rule.
    #[arg(long, value_enum, default_value = "covariance")]
    gain_rule: GainRule,
    /// Gain normalisation (`none` with `--gain-smoothing none`: the literal Eq. 3).
    #[arg(long, value_enum, default_value = "mean1")]
    gain_norm: GainNorm,
    /// Gain smoothing across batches.
    #[arg(long, value_enum, default_value = "running")]
    gain_smoothing: GainSmoothing,
    /// What the gain is estimated on.
    #[arg(long, value_enum, default_value = "batch")]
    gain_input: GainInput,
    /// Learning rate of `stochastic`.
    #[arg(long, default_value_t = 1e-2)]
    lr_stochastic: f32,
    /// Learning rate of `deterministic`.
    #[arg(long, default_value_t = 1e-2)]
    lr_deterministic: f32,
    /// Learning rate of `retrain`.
    #[arg(long, default_value_t = 1e-4)]
    lr_retrain: f32,
    /// Learning rate of `retrain-last`.
    #[arg(long, default_value_t = 1e-3)]
    lr_retrain_last: f32,
    /// λ of the L1 term on what is trained.
    #[arg(long, default_value_t = 0.1)]
    lambda: f32,
    /// Modulator samples per trial, T.
    #[arg(long, default_value_t = SAMPLES)]
    samples: usize,
    /// Batches of 2 in the online pass (measurements: batches + 1).
    #[arg(long, default_value_t = 250)]
    batches: usize,
    /// Composites of each task's fixed test set.
    #[arg(long, default_value_t = 1000)]
    test_composites: usize,
}

impl RunOptions {
    /// The fine-tuning configuration these flags describe.
    fn finetune_config(&self) -> Result<FinetuneConfig> {
        for (flag, lr) in [
            ("--lr-stochastic", self.lr_stochastic),
            ("--lr-deterministic", self.lr_deterministic),
            ("--lr-retrain", self.lr_retrain),
            ("--lr-retrain-last", self.lr_retrain_last),
        ] {
            if !(lr.is_finite() && lr > 0.0) {
                anyhow::bail!("{flag} {lr}: a learning rate must be positive");
            }
        }
        if !(self.lambda.is_finite() && self.lambda >= 0.0) {
            anyhow::bail!("--lambda {}: must be ≥ 0", self.lambda);
        }
        for (flag, v) in [
            ("--samples", self.samples),
            ("--batches", self.batches),
            ("--test-composites", self.test_composites),
        ] {
            if v == 0 {
                anyhow::bail!("{flag} 0: must be at least 1");
            }
        }
        Ok(FinetuneConfig {
            readout: self.readout,
            gain: GainOptions {
                rule: self.gain_rule,
                norm: self.gain_norm,
                smoothing: self.gain_smoothing,
                input: self.gain_input,
            },
            lr: LearningRates {
                stochastic: self.lr_stochastic,
                deterministic: self.lr_deterministic,
                retrain: self.lr_retrain,
                retrain_last: self.lr_retrain_last,
            },
            lambda: self.lambda,
            samples: self.samples,
            batches: self.batches,
            test_composites: self.test_composites,
            ..FinetuneConfig::default()
        })
    }
}

#[derive(clap::Args)]
struct SweepArgs {
    /// Pretrained checkpoint (safetensors, SPEC §7).
    #[arg(long)]
    checkpoint: PathBuf,
    /// Folder with an IDX images/labels pair; default: the shipped digits.
    #[arg(long, default_value = "data")]
    data: PathBuf,
    /// Tasks: `all` (the 180) or a list like 1-7@0,3-8@2.
    #[arg(long, default_value = "all")]
    tasks: String,
    /// Repeats per task and method.
    #[arg(long, default_value_t = 10)]
    repeats: usize,
    /// Results file (JSON lines); runs it already holds are skipped.
    #[arg(long)]
    out: PathBuf,
    /// Run only shard i of n (0 ≤ i < n), e.g. $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT.
    #[arg(long, default_value = "0/1")]
    shard: Shard,
    /// If given, the checkpoint's architecture must be this preset (or JSON file).
    #[arg(long)]
    arch: Option<String>,
    /// With --arch: the modulated layer the checkpoint must have.
    #[arg(long)]
    modulated_layer: Option<usize>,
    #[command(flatten)]
    run: RunOptions,
}

#[derive(clap::Args)]
struct SummaryArgs {
    /// Results file (JSON lines).
    results: PathBuf,
    /// Where to write summary.md and summary.csv (default: the results file's folder).
    #[arg(long)]
    out_dir: Option<PathBuf>,
    /// Also write PNG plots into this folder.
    #[arg(long)]
    plots: Option<PathBuf>,
}

#[derive(clap::Args)]
struct ReproduceArgs {
    /// Output folder for checkpoint, results, summary and plots.
    #[arg(long, default_value = "reproduction")]
    out: PathBuf,
    /// Folder with an IDX images/labels pair; default: the shipped digits.
    #[arg(long, default_value = "data")]
    data: PathBuf,
    /// The full study: all 180 tasks × 10 repeats (default: the 45 pairs,
    /// quadrants in turn, × 6 repeats, about 7 minutes on 2 cores).
    #[arg(long)]
    full: bool,
    #[command(flatten)]
    run: RunOptions,
}

#[derive(clap::Args)]
struct MergeArgs {
    /// The merged results file (written atomically, runs in canonical order).
    out: PathBuf,
    /// Shard results files.
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
}

#[derive(clap::Args)]
struct TraceArgs {
    /// Checkpoint (safetensors, SPEC §7); its coupling and gain are ignored:
    /// the inputs give them (default c = 0, g = 1).
    #[arg(long)]
    checkpoint: PathBuf,
    /// Inputs (safetensors): stimuli [K, 784] f32, modulator [K, T] f32,
    /// labels [K] i64, optional pair [2] i64, coupling, gain; metadata m0
    /// (default 1), lambda (default 0), gain_rule (default covariance).
    #[arg(long)]
    inputs: PathBuf,
    /// Output (safetensors, written atomically): trial_gain, logits, loss,
    /// grad.coupling, grad.layers.{l}.weight, grad.layers.{l}.bias.
    #[arg(long)]
    out: PathBuf,
}

#[derive(clap::Args)]
struct BenchArgs {
    /// Print one JSON object per line (keys workload, seconds, gflops,
    /// peak_gflops, ratio) instead of a table.
    #[arg(long)]
    json: bool,
    /// Minimum seconds of timed runs per workload (the median is reported).
    #[arg(long, default_value_t = 2.0)]
    seconds: f64,
    /// Only these comma-separated workloads (default: all of trial_B2,
    /// trial_B256, deep4_trial_B2, deep4_trial_B256, deep4_mod2_trial_B2,
    /// deep4_mod2_trial_B256).
    #[arg(long)]
    only: Option<String>,
}

#[derive(clap::Args)]
struct PretrainArgs {
    /// Folder with an IDX images/labels pair (.gz or raw); default: the shipped digits.
    #[arg(long, default_value = "data")]
    data: PathBuf,
    /// Architecture: paper3, deep4, local2, relu-encoder, or a path to an
    /// architecture JSON file (SPEC §7).
    #[arg(long, default_value = "paper3")]
    arch: String,
    /// Modulated layer ℓ (1 or 2); default 1, or the JSON file's value.
    #[arg(long)]
    modulated_layer: Option<usize>,
    /// Master seed of initialisation and composites.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Epoch cap; training stops earlier at held-out accuracy ≥ 0.90.
    #[arg(long, default_value_t = 200)]
    epochs: usize,
    /// Output checkpoint (safetensors, written atomically).
    #[arg(long)]
    out: PathBuf,
}

#[derive(clap::Args)]
struct EvalArgs {
    /// Checkpoint to evaluate (safetensors, SPEC §7).
    #[arg(long)]
    checkpoint: PathBuf,
    /// Folder with an IDX images/labels pair; default: the shipped digits.
    #[arg(long, default_value = "data")]
    data: PathBuf,
    /// Tasks for the pair-accuracy table: `all` or a list like 1-7@0,3-8@2.
    #[arg(long)]
    tasks: Option<String>,
    /// Seed of the evaluation composites.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

/// The architecture named by `--arch` and `--modulated-layer`.
fn resolve_arch(name: &str, modulated_layer: Option<usize>) -> Result<Arch> {
    if PRESETS.contains(&name) {
        return Ok(Arch::preset(name, modulated_layer.unwrap_or(1))?);
    }
    let path = Path::new(name);
    if !path.exists() && !name.ends_with(".json") {
        return Ok(Arch::preset(name, 1)?);
    }
    let text = std::fs::read_to_string(path).with_context(|| format!("--arch {name}"))?;
    let mut arch = Arch::from_json(&text).with_context(|| format!("--arch {name}"))?;
    if let Some(l) = modulated_layer {
        arch.modulated_layer = l;
        arch.validate().context("--modulated-layer")?;
    }
    Ok(arch)
}

fn run_pretrain(args: PretrainArgs) -> Result<()> {
    let arch = resolve_arch(&args.arch, args.modulated_layer)?;
    check_writable(&args.out)?;
    let digits = Digits::load(&args.data)?;
    let options = PretrainOptions {
        seed: args.seed,
        max_epochs: args.epochs,
        ..PretrainOptions::default()
    };
    pretrain_to(&arch, &digits, &options, &args.out)?;
    Ok(())
}

/// Pretrains with a progress bar, saves the checkpoint (with how it was
/// made in its metadata) and prints the epochs and held-out accuracy.
fn pretrain_to(
    arch: &Arch,
    digits: &Digits,
    options: &PretrainOptions,
    out: &Path,
) -> Result<Model<f32>> {
    let bar = ProgressBar::new(options.max_epochs as u64).with_style(
        ProgressStyle::with_template(
            "pretrain {bar:30} epoch {pos}/{len} {msg} [{elapsed_precise}, ETA at the cap {eta}]",
        )
        .expect("valid template"),
    );
    let start = Instant::now();
    let (model, report) = pretrain(arch, digits, options, |stats| {
        bar.set_position(stats.epoch as u64);
        bar.set_message(format!(
            "loss {:.4} held-out acc {:.4}",
            stats.loss, stats.heldout_accuracy
        ));
    });
    bar.finish_and_clear();
    let seconds = start.elapsed().as_secs_f64();
    let info = serde_json::json!({
        "seed": options.seed,
        "epochs": report.epochs,
        "heldout_accuracy": report.heldout_accuracy,
        "reached_target": report.reached_target,
        "data_sha256": digits.sha256(),
        "version": env!("CARGO_PKG_VERSION"),
    });
    save_checkpoint(out, &model, &[("pretraining", info.to_string())])?;
    println!(
        "pretrained in {} epochs ({seconds:.1} s): held-out 10-way accuracy {:.4}{}",
        report.epochs,
        report.heldout_accuracy,
        if report.reached_target {
            ""
        } else {
            " (target 0.90 not reached at the epoch cap)"
        }
    );
    println!("wrote {}", out.display());
    Ok(model)
}

fn run_eval(args: EvalArgs) -> Result<()> {
    let tasks = args
        .tasks
        .as_deref()
        .map(parse_task_list)
        .transpose()
        .context("--tasks")?;
    let checkpoint = load_checkpoint(&args.checkpoint)?;
    let digits = Digits::load(&args.data)?;
    let model = &checkpoint.model;
    println!(
        "general task, held-out 10-way accuracy: {:.4}",
        general_accuracy(model, &digits, args.seed)
    );
    let Some(tasks) = tasks else { return Ok(()) };
    println!("\n| task | pair accuracy, no distractors | pair accuracy, with distractors |");
    println!("|---|---|---|");
    let (mut clean, mut cluttered) = (0.0, 0.0);
    for &task in &tasks {
        let acc = pair_accuracy(model, &digits, task, args.seed);
        println!(
            "| {task} | {:.4} | {:.4} |",
            acc.without_distractors, acc.with_distractors
        );
        clean += acc.without_distractors;
        cluttered += acc.with_distractors;
    }
    let n = tasks.len() as f64;
    println!(
        "| mean of {} | {:.4} | {:.4} |",
        tasks.len(),
        clean / n,
        cluttered / n
    );
    Ok(())
}

/// Runs a sweep with a progress bar and prints what it did; returns the report.
fn sweep_with_progress(
    model: &Model<f32>,
    digits: &Digits,
    spec: &SweepSpec,
    out: &Path,
) -> Result<SweepReport> {
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template(
            "sweep {bar:30} {pos}/{len} runs, {per_sec}, ETA {eta} [{elapsed_precise}]",
        )
        .expect("valid template"),
    );
    let report = run_sweep(model, digits, spec, out, |done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    })?;
    bar.finish_and_clear();
    if let Some(torn) = &report.dropped_torn_line {
        eprintln!(
            "warning: {}: dropped a torn last line ({} bytes) left by an interrupted sweep",
            out.display(),
            torn.len()
        );
    }
    let peak = sgemm_peak_gflops(rayon::current_num_threads());
    let rate = report.flops / report.seconds.max(1e-9) / 1e9;
    println!(
        "{} runs ({} already in the file, {} run now) in {:.1} s: {:.1} TFLOP, {:.1} GFLOP/s = {:.0} % of the {}-thread SGEMM peak ({peak:.1} GFLOP/s); {:.3} s per run",
        report.planned,
        report.resumed,
        report.run,
        report.seconds,
        report.flops / 1e12,
        rate,
        100.0 * rate / peak,
        rayon::current_num_threads(),
        report.seconds / report.run.max(1) as f64
    );
    Ok(report)
}

/// The configuration records carry for a sweep of `checkpoint`.
fn sweep_config(
    checkpoint: &Path,
    model: &Model<f32>,
    digits: &Digits,
    run: &RunOptions,
) -> Result<SweepConfig> {
    let bytes = std::fs::read(checkpoint).with_context(|| checkpoint.display().to_string())?;
    Ok(SweepConfig {
        finetune: run.finetune_config()?,
        master_seed: run.seed,
        architecture: model.arch().clone(),
        checkpoint_sha256: sha256_hex(&[&bytes]),
        data_sha256: digits.sha256().to_string(),
        comod_version: env!("CARGO_PKG_VERSION").to_string(),
    })
}

fn run_sweep_command(args: SweepArgs) -> Result<()> {
    let tasks = parse_task_list(&args.tasks).context("--tasks")?;
    if args.repeats == 0 {
        anyhow::bail!("--repeats 0: must be at least 1");
    }
    args.run.finetune_config()?;
    let checkpoint = load_checkpoint(&args.checkpoint)?;
    if let Some(name) = &args.arch {
        let expected = resolve_arch(name, args.modulated_layer)?;
        if &expected != checkpoint.model.arch() {
            anyhow::bail!(
                "{}: the checkpoint's architecture {} is not --arch {name}{}",
                args.checkpoint.display(),
                checkpoint.model.arch().to_json(),
                args.modulated_layer
                    .map(|l| format!(" --modulated-layer {l}"))
                    .unwrap_or_default()
            );
        }
    }
    let digits = Digits::load(&args.data)?;
    let spec = SweepSpec {
        tasks,
        methods: args.run.methods.clone(),
        repeats: args.repeats,
        shard: args.shard,
        config: sweep_config(&args.checkpoint, &checkpoint.model, &digits, &args.run)?,
    };
    sweep_with_progress(&checkpoint.model, &digits, &spec, &args.out)?;
    println!("wrote {}", args.out.display());
    Ok(())
}

/// Prints and writes the summary of `results`; writes plots when asked.
fn summarize_results(results: &Path, out_dir: &Path, plots: Option<&Path>) -> Result<()> {
    let contents = read_results(results)?;
    if contents.torn.is_some() {
        eprintln!("warning: {}: ignoring a torn last line", results.display());
    }
    let records: Vec<_> = contents.records.into_values().collect();
    if records.is_empty() {
        anyhow::bail!("{}: no runs to summarise", results.display());
    }
    let rows = summarize(&records);
    let table = markdown(&rows);
    println!("{table}");
    std::fs::create_dir_all(out_dir).with_context(|| out_dir.display().to_string())?;
    let (md, csv_path) = (out_dir.join("summary.md"), out_dir.join("summary.csv"));
    write_atomic(&md, table.as_bytes())?;
    write_atomic(&csv_path, csv(&rows).as_bytes())?;
    println!("wrote {} and {}", md.display(), csv_path.display());
    if let Some(dir) = plots {
        for path in write_plots(&records, dir)? {
            println!("wrote {}", path.display());
        }
    }
    Ok(())
}

fn run_summary(args: SummaryArgs) -> Result<()> {
    let out_dir = match &args.out_dir {
        Some(dir) => dir.clone(),
        None => args
            .results
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default(),
    };
    summarize_results(&args.results, &out_dir, args.plots.as_deref())
}

/// The default reproduction's tasks: each of the 45 pairs once, in the
/// quadrants in turn (every quadrant 11 or 12 times).
fn reproduction_tasks() -> Vec<Task> {
    let mut tasks = Vec::new();
    for a in 0..10u8 {
        for b in a + 1..10 {
            let quadrant = (tasks.len() % 4) as u8;
            tasks.push(Task::new(a, b, quadrant).expect("a < b, quadrant < 4"));
        }
    }
    tasks
}

/// Repeats of the default reproduction (the full study: 10).
const REPRODUCTION_REPEATS: usize = 6;

fn run_reproduce(args: ReproduceArgs) -> Result<()> {
    args.run.finetune_config()?;
    std::fs::create_dir_all(&args.out).with_context(|| args.out.display().to_string())?;
    let digits = Digits::load(&args.data)?;
    let checkpoint_path = args.out.join("pretrained.safetensors");
    let arch = Arch::preset("paper3", 1)?;
    let options = PretrainOptions {
        seed: args.run.seed,
        ..PretrainOptions::default()
    };
    let reusable = load_checkpoint(&checkpoint_path).ok().filter(|c| {
        c.model.arch() == &arch
            && c.metadata
                .get("pretraining")
                .and_then(|p| serde_json::from_str::<serde_json::Value>(p).ok())
                .is_some_and(|p| p["seed"] == options.seed && p["data_sha256"] == digits.sha256())
    });
    let model = match reusable {
        Some(c) => {
            println!("reusing {} (same seed and data)", checkpoint_path.display());
            c.model
        }
        None => pretrain_to(&arch, &digits, &options, &checkpoint_path)?,
    };
    let tasks = if args.full {
        Task::all()
    } else {
        reproduction_tasks()
    };
    let repeats = if args.full { 10 } else { REPRODUCTION_REPEATS };
    let results = args.out.join("results.jsonl");
    let spec = SweepSpec {
        tasks,
        methods: args.run.methods.clone(),
        repeats,
        shard: Shard::default(),
        config: sweep_config(&checkpoint_path, &model, &digits, &args.run)?,
    };
    sweep_with_progress(&model, &digits, &spec, &results)?;
    summarize_results(&results, &args.out, Some(&args.out.join("plots")))?;
    println!("reproduction in {}", args.out.display());
    Ok(())
}

fn run_merge(args: MergeArgs) -> Result<()> {
    let inputs: Vec<&Path> = args.inputs.iter().map(PathBuf::as_path).collect();
    let runs = merge(&args.out, &inputs)?;
    println!(
        "merged {runs} runs from {} files into {}",
        inputs.len(),
        args.out.display()
    );
    Ok(())
}

fn run_trace(args: TraceArgs) -> Result<()> {
    check_writable(&args.out)?;
    let checkpoint = load_checkpoint(&args.checkpoint)?;
    let inputs = read_trace_inputs(&args.inputs, checkpoint.model.arch())?;
    let (model, outputs) = trace(&checkpoint.model, &inputs);
    write_trace_outputs(&args.out, &model, &outputs)?;
    println!(
        "wrote {} ({} trials, loss {:.6})",
        args.out.display(),
        inputs.labels.len(),
        outputs.loss
    );
    Ok(())
}

fn run_bench(args: BenchArgs) -> Result<()> {
    let threads = rayon::current_num_threads();
    let filters: Vec<String> = args
        .only
        .iter()
        .flat_map(|s| s.split(','))
        .map(|s| s.trim().to_string())
        .collect();
    let workloads: Vec<_> = WORKLOADS
        .iter()
        .filter(|w| filters.is_empty() || filters.iter().any(|f| f == w.name))
        .collect();
    if let Some(unknown) = filters
        .iter()
        .find(|f| !WORKLOADS.iter().any(|w| &w.name == f))
    {
        anyhow::bail!("--only: no workload named {unknown:?}");
    }
    let mut peaks: Vec<(usize, f64)> = Vec::new();
    for t in [1, 2, threads] {
        if !peaks.iter().any(|&(known, _)| known == t) {
            peaks.push((t, sgemm_peak_gflops(t)));
        }
    }
    let peak = peaks
        .iter()
        .find(|&&(t, _)| t == threads)
        .map(|&(_, p)| p)
        .expect("measured");
    let line = |workload: &str, seconds: f64, gflops: f64, peak: f64| {
        if args.json {
            let record = serde_json::json!({
                "workload": workload, "seconds": seconds, "gflops": gflops,
                "peak_gflops": peak, "ratio": gflops / peak,
            });
            println!("{record}");
        } else {
            println!(
                "{workload:<24} {:>10.3} ms {gflops:>8.1} GFLOP/s {:>6.1} % of {peak:.1}",
                seconds * 1e3,
                100.0 * gflops / peak
            );
        }
    };
    if !args.json {
        println!(
            "{:?} body, {threads} threads, T = {}",
            Body::detect(),
            workload::SAMPLES
        );
        println!(
            "{:<24} {:>13} {:>16} {:>18}",
            "workload", "median", "rate", "of SGEMM peak"
        );
    }
    for &(t, gflops) in &peaks {
        line(
            &format!(
                "sgemm_{PEAK_SIDE}_{t}_thread{}",
                if t == 1 { "" } else { "s" }
            ),
            2.0 * (PEAK_SIDE as f64).powi(3) / gflops / 1e9,
            gflops,
            gflops,
        );
    }
    for w in workloads {
        let mut prepared = w.prepare();
        let flops = prepared.flops();
        let seconds = median_seconds(5, args.seconds, || {
            prepared.run();
        });
        line(w.name, seconds, flops / seconds / 1e9, peak);
    }
    Ok(())
}

/// Parses the command line; usage errors become one line and exit code 2.
fn parse_cli() -> Result<Cli, ExitCode> {
    Cli::try_parse().map_err(|e| {
        if matches!(
            e.kind(),
            clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion
        ) {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        let rendered = e.render().to_string();
        let line: Vec<&str> = rendered
            .lines()
            .map(str::trim)
            .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
            .filter(|l| !l.is_empty())
            .collect();
        eprintln!("{}", line.join(" "));
        ExitCode::from(2)
    })
}

fn main() -> ExitCode {
    let cli = match parse_cli() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    let result = match cli.command {
        Command::Pretrain(args) => run_pretrain(args),
        Command::Eval(args) => run_eval(args),
        Command::Sweep(args) => run_sweep_command(args),
        Command::Merge(args) => run_merge(args),
        Command::Summary(args) => run_summary(args),
        Command::Reproduce(args) => run_reproduce(args),
        Command::Trace(args) => run_trace(args),
        Command::Bench(args) => run_bench(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", format!("{e:#}").replace('\n', " "));
            ExitCode::FAILURE
        }
    }
}
