//! The `comod` command line: parses arguments, calls the library, prints.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use comod::bench::{PEAK_SIDE, median_seconds, sgemm_peak_gflops};
use comod::data::{Digits, parse_task_list};
use comod::io::trace::{read_trace_inputs, write_trace_outputs};
use comod::io::{load_checkpoint, save_checkpoint, tensors::check_writable};
use comod::kernel::Body;
use comod::kernel::workload::{self, WORKLOADS};
use comod::net::Arch;
use comod::net::arch::PRESETS;
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
    /// Verification interface (SPEC §7): per-trial gains, logits, loss and
    /// every gradient for the inputs of a safetensors file.
    Trace(TraceArgs),
    /// Time the fused trial kernel (SPEC §3) on its workloads beside the
    /// machine's SGEMM peak measured in the same run.
    Bench(BenchArgs),
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
    let bar = ProgressBar::new(options.max_epochs as u64).with_style(
        ProgressStyle::with_template(
            "pretrain {bar:30} epoch {pos}/{len} {msg} [{elapsed_precise}, ETA at the cap {eta}]",
        )
        .expect("valid template"),
    );
    let start = Instant::now();
    let (model, report) = pretrain(&arch, &digits, &options, |stats| {
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
        "version": env!("CARGO_PKG_VERSION"),
    });
    save_checkpoint(&args.out, &model, &[("pretraining", info.to_string())])?;
    println!(
        "pretrained {} in {} epochs ({seconds:.1} s): held-out 10-way accuracy {:.4}{}",
        args.arch,
        report.epochs,
        report.heldout_accuracy,
        if report.reached_target {
            ""
        } else {
            " (target 0.90 not reached at the epoch cap)"
        }
    );
    println!("wrote {}", args.out.display());
    Ok(())
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

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Pretrain(args) => run_pretrain(args),
        Command::Eval(args) => run_eval(args),
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
