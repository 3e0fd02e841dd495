//! The `comod` command line: parses arguments, calls the library, prints.

mod cli;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};

use cli::{
    BenchArgs, Cli, Command, EvalArgs, MergeArgs, PretrainArgs, ReproduceArgs, SummaryArgs,
    SweepArgs, TraceArgs, resolve_arch,
};
use comod::analysis::plots::write_plots;
use comod::analysis::summary::{csv, markdown, summarize};
use comod::bench::{PEAK_SIDE, median_seconds, sgemm_peak_gflops};
use comod::data::{Digits, Task, parse_task_list};
use comod::io::tensors::{check_writable, write_atomic};
use comod::io::trace::{read_trace_inputs, write_trace_outputs};
use comod::io::{load_checkpoint, save_checkpoint};
use comod::kernel::Body;
use comod::kernel::workload::{self, WORKLOADS};
use comod::net::{Arch, Model};
use comod::sweep::plan::{FULL_REPEATS, REPRODUCTION_REPEATS, Shard, reproduction_tasks};
use comod::sweep::record::SweepConfig;
use comod::sweep::store::{merge, read_results};
use comod::sweep::{SweepReport, SweepSpec, run_sweep};
use comod::train::trace::trace;
use comod::train::{PretrainOptions, general_accuracy, pair_accuracy, pretrain};

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
        config: SweepConfig::new(
            &args.checkpoint,
            &checkpoint.model,
            &digits,
            args.run.finetune_config()?,
            args.run.seed,
        )?,
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
    let repeats = if args.full {
        FULL_REPEATS
    } else {
        REPRODUCTION_REPEATS
    };
    let results = args.out.join("results.jsonl");
    let spec = SweepSpec {
        tasks,
        methods: args.run.methods.clone(),
        repeats,
        shard: Shard::default(),
        config: SweepConfig::new(
            &checkpoint_path,
            &model,
            &digits,
            args.run.finetune_config()?,
            args.run.seed,
        )?,
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
