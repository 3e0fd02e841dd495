//! The `comod` command line: parses arguments, calls the library, prints.

mod cli;
mod multitask_cmd;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};

use cli::{
    BenchArgs, Cli, Command, EvalArgs, MergeArgs, PretrainArgs, ReportArgs, ReproduceArgs,
    RunOptions, SummaryArgs, SweepArgs, TraceArgs, TuneArgs,
};
use comod::analysis::write_summary;
use comod::bench::{BenchLine, run_bench, throughput};
use comod::data::digits::idx_files;
use comod::data::{Digits, parse_task_list};
use comod::io::trace::{read_trace_inputs, write_trace_outputs};
use comod::io::{check_not_input, check_writable, load_checkpoint, save_pretrained};
use comod::kernel::Body;
use comod::kernel::workload::SAMPLES;
use comod::net::Arch;
use comod::net::simd::Isa;
use comod::report::plan::Scale;
use comod::report::{ReportOptions, report};
use comod::reproduce::{Observer, ReproduceOptions, plan, reproduce};
use comod::sweep::record::SweepConfig;
use comod::sweep::store::{check_config, merge, read_results};
use comod::sweep::{SweepReport, SweepSpec, run_sweep};
use comod::train::pretrain::Provenance;
use comod::train::trace::trace;
use comod::train::{
    EpochStats, FinetuneConfig, FrozenNetwork, PretrainOptions, PretrainReport, ReadoutKind,
    general_accuracy, pair_accuracy, pretrain,
};
use comod::tune::{TuneSpec, check_grid, run_grid, write_tuning};

/// A progress bar on stderr with `template`.
fn bar(template: &str) -> ProgressBar {
    ProgressBar::new(0).with_style(ProgressStyle::with_template(template).expect("valid template"))
}

fn pretraining_bar() -> ProgressBar {
    bar("pretrain {bar:30} epoch {pos}/{len} {msg} [{elapsed_precise}, ETA at the cap {eta}]")
}

fn sweep_bar() -> ProgressBar {
    bar("sweep {bar:30} {pos}/{len} runs, {per_sec}, ETA {eta} [{elapsed_precise}]")
}

/// A sweep's progress callback: `done` of `total` runs on `bar`.
fn show_runs(bar: &ProgressBar) -> impl Fn(usize, usize) + Sync + '_ {
    move |done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    }
}

fn show_epoch(bar: &ProgressBar, stats: &EpochStats, max_epochs: usize) {
    bar.set_length(max_epochs as u64);
    bar.set_position(stats.epoch as u64);
    bar.set_message(format!(
        "loss {:.4} held-out acc {:.4}",
        stats.loss, stats.heldout_accuracy
    ));
}

fn print_pretrained(report: &PretrainReport, seconds: f64, target: f64, out: &Path) {
    let missed = if report.reached_target {
        String::new()
    } else {
        format!(" (target {target:.2} not reached at the epoch cap)")
    };
    println!(
        "pretrained in {} epochs ({seconds:.1} s): held-out 10-way accuracy {:.4}{missed}",
        report.epochs, report.heldout_accuracy
    );
    println!("wrote {}", out.display());
}

fn print_sweep(report: &SweepReport, out: &Path) {
    if let Some(torn) = &report.dropped_torn_line {
        eprintln!(
            "warning: {}: dropped a torn last line ({} bytes) left by an interrupted sweep",
            out.display(),
            torn.len()
        );
    }
    if report.outside_plan > 0 {
        eprintln!(
            "note: {}: {} runs outside this plan (other tasks, methods, repeats or shards) are kept as they are",
            out.display(),
            report.outside_plan
        );
    }
    for failure in &report.failed {
        eprintln!("warning: run {failure}: recorded as failed, left out of the analyses");
    }
    if report.run == 0 {
        println!(
            "{} runs, all already in the file: nothing to run",
            report.planned
        );
        println!("wrote {}", out.display());
        return;
    }
    print_rate(
        (report.planned, report.resumed, report.run),
        report.seconds,
        report.flops,
    );
    println!("wrote {}", out.display());
}

/// A sweep's closing line: its runs (planned, resumed, run now), time and
/// rate beside the FMA peak measured now.
fn print_rate((planned, resumed, run): (usize, usize, usize), seconds: f64, flops: f64) {
    let rate = throughput(flops, seconds);
    println!(
        "{planned} runs ({resumed} already in the file, {run} run now) in {seconds:.1} s: {:.2} TFLOP, {:.1} GFLOP/s = {:.0} % of the FMA peak measured now ({} threads, {}: {:.1} GFLOP/s); {:.3} s per run",
        flops / 1e12,
        rate.gflops,
        100.0 * rate.gflops / rate.peak_gflops,
        rate.threads,
        rate.isa,
        rate.peak_gflops,
        seconds / run.max(1) as f64
    );
}

fn run_pretrain(args: PretrainArgs) -> Result<()> {
    let arch = Arch::resolve(&args.arch, args.modulated_layer)?;
    let options = PretrainOptions {
        seed: args.seed,
        max_epochs: args.epochs,
        ..PretrainOptions::DEFAULT
    };
    options.validate()?;
    check_writable(&args.out)?;
    let data = idx_files(&args.data);
    let mut inputs = vec![("--arch", Path::new(&args.arch))];
    inputs.extend(data.iter().map(|p| ("--data", p.as_path())));
    check_not_input(&args.out, &inputs)?;
    let digits = Digits::load(&args.data)?;
    let progress = pretraining_bar();
    let start = Instant::now();
    let (model, report) = pretrain(&arch, &digits, &options, |stats| {
        show_epoch(&progress, stats, options.max_epochs)
    })?;
    progress.finish_and_clear();
    save_pretrained(
        &args.out,
        &model,
        &Provenance::new(&options, &report, &digits),
    )?;
    let seconds = start.elapsed().as_secs_f64();
    print_pretrained(&report, seconds, options.target_accuracy, &args.out);
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
        let acc = pair_accuracy(model, &digits, task, ReadoutKind::Pair, args.seed);
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

/// The frozen network of `checkpoint`, the digits of `data`, and the
/// configuration of sweeps of them with `finetune` and the seed of `run`.
fn sweep_inputs(
    checkpoint: &Path,
    data: &Path,
    finetune: FinetuneConfig,
    run: &RunOptions,
) -> Result<(FrozenNetwork, Digits, SweepConfig)> {
    let model = load_checkpoint(checkpoint)?.model;
    let digits = Digits::load(data)?;
    let config = SweepConfig::new(checkpoint, &model, &digits, finetune, run.seed)?;
    Ok((FrozenNetwork::new(model), digits, config))
}

fn run_sweep_command(args: SweepArgs) -> Result<()> {
    let tasks = parse_task_list(&args.tasks).context("--tasks")?;
    let config = args.run.finetune_config();
    config.validate()?;
    let data = idx_files(&args.data);
    let mut inputs = vec![("--checkpoint", args.checkpoint.as_path())];
    inputs.extend(data.iter().map(|p| ("--data", p.as_path())));
    check_not_input(&args.out, &inputs)?;
    let (frozen, digits, config) = sweep_inputs(&args.checkpoint, &args.data, config, &args.run)?;
    args.check_architecture(frozen.model.arch())?;
    let spec = SweepSpec {
        tasks,
        methods: args.run.methods.clone(),
        repeats: args.repeats,
        shard: args.shard,
        record_coupling: args.run.record_coupling,
        config,
    };
    let progress = sweep_bar();
    let report = run_sweep(&frozen, &digits, &spec, &args.out, show_runs(&progress))?;
    progress.finish_and_clear();
    print_sweep(&report, &args.out);
    Ok(())
}

fn run_tune(args: TuneArgs) -> Result<()> {
    args.check_no_rates()?;
    check_grid(&args.grid)?;
    let tasks = args.tasks().context("--tasks")?;
    let config = args.run.finetune_config();
    config.validate()?;
    check_writable(&args.out)?;
    check_not_input(&args.out, &[("--checkpoint", &args.checkpoint)])?;
    let (frozen, digits, config) = sweep_inputs(&args.checkpoint, &args.data, config, &args.run)?;
    let spec = TuneSpec {
        tasks,
        methods: args.run.methods.clone(),
        repeats: args.repeats,
        grid: args.grid.clone(),
        config,
    };
    spec.validate()?;
    let progress = sweep_bar();
    let (reports, records) = run_grid(&frozen, &digits, &spec, &args.out, show_runs(&progress))?;
    progress.finish_and_clear();
    let run: usize = reports.iter().map(|r| r.run).sum();
    let seconds: f64 = reports.iter().map(|r| r.seconds).sum();
    println!(
        "{} runs over {} rates ({run} run now in {seconds:.1} s, the rest resumed)",
        records.len(),
        spec.grid.len()
    );
    let tuning = write_tuning(&records, &args.out)?;
    println!("{}", tuning.table);
    println!("chosen rates, for comod sweep:\n  {}", tuning.flags);
    for path in tuning.written {
        println!("wrote {}", path.display());
    }
    Ok(())
}

fn run_summary(args: SummaryArgs) -> Result<()> {
    if !args.results.exists() {
        anyhow::bail!("{}: no such file", args.results.display());
    }
    let contents = read_results(&args.results)?;
    if let Some(first) = contents.records.values().next() {
        check_config(&args.results, &contents, &first.config.clone())?;
    }
    if contents.torn.is_some() {
        eprintln!(
            "warning: {}: ignoring a torn last line",
            args.results.display()
        );
    }
    let records: Vec<_> = contents.records.into_values().collect();
    if records.is_empty() {
        anyhow::bail!("{}: no runs to summarise", args.results.display());
    }
    let out_dir = match &args.out_dir {
        Some(dir) => dir.clone(),
        None => args
            .results
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default(),
    };
    let files = write_summary(&records, &args.results, &out_dir, args.plots.as_deref())?;
    println!("{}", files.table);
    for path in files.written {
        println!("wrote {}", path.display());
    }
    Ok(())
}

/// Progress of `comod reproduce` as bars and lines.
struct ReproduceProgress {
    pretraining: ProgressBar,
    sweep: ProgressBar,
}

impl Observer for ReproduceProgress {
    fn reused(&self, checkpoint: &Path) {
        println!("reusing {} (same seed and data)", checkpoint.display());
    }

    fn pretraining_epoch(&self, stats: &EpochStats, max_epochs: usize) {
        show_epoch(&self.pretraining, stats, max_epochs);
    }

    fn pretrained(&self, report: &PretrainReport, seconds: f64, checkpoint: &Path) {
        self.pretraining.finish_and_clear();
        let target = PretrainOptions::DEFAULT.target_accuracy;
        print_pretrained(report, seconds, target, checkpoint);
    }

    fn sweep_progress(&self, done: usize, total: usize) {
        show_runs(&self.sweep)(done, total);
    }

    fn sweep_done(&self, report: &SweepReport, results: &Path) {
        self.sweep.finish_and_clear();
        print_sweep(report, results);
    }

    fn stage(&self, what: &str) {
        println!("== {what}");
    }
}

fn progress() -> ReproduceProgress {
    ReproduceProgress {
        pretraining: pretraining_bar(),
        sweep: sweep_bar(),
    }
}

fn run_report(args: ReportArgs) -> Result<()> {
    let options = ReportOptions {
        out: args.out,
        data: args.data,
        scale: if args.full { Scale::Full } else { Scale::Quick },
        shard: args.shard,
        seed: args.seed,
        also: args.also,
    };
    print_report(&report(&options, &progress())?);
    Ok(())
}

fn print_report(outcome: &comod::report::ReportOutcome) {
    let Some(path) = &outcome.report else {
        println!(
            "shard done in {:.0} s; run the report again without --shard once every shard is done",
            outcome.seconds
        );
        return;
    };
    for claim in &outcome.claims {
        println!(
            "{:<14} {:<62} {:<28} {}",
            claim.claim,
            claim.statement,
            claim.setting,
            claim.judgement.verdict.word()
        );
    }
    println!(
        "report in {:.0} s; wrote {}",
        outcome.seconds,
        path.display()
    );
}

fn run_reproduce(args: ReproduceArgs) -> Result<()> {
    let (tasks, repeats) = plan(args.full);
    let options = ReproduceOptions {
        out: args.out,
        data: args.data,
        tasks,
        repeats,
        methods: args.run.methods.clone(),
        seed: args.run.seed,
        config: args.run.finetune_config(),
        record_coupling: args.run.record_coupling,
    };
    let reproduction = reproduce(&options, &progress())?;
    println!("{}", reproduction.summary.table);
    for path in reproduction.summary.written {
        println!("wrote {}", path.display());
    }
    if args.no_report {
        println!("reproduction in {}", options.out.display());
        return Ok(());
    }
    println!(
        "== the quick report (comod report --quick) in {}",
        options.out.display()
    );
    let report_options = ReportOptions {
        out: options.out.clone(),
        data: options.data.clone(),
        scale: Scale::Quick,
        shard: comod::sweep::plan::Shard::default(),
        seed: options.seed,
        also: vec![reproduction.results.clone()],
    };
    print_report(&report(&report_options, &progress())?);
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
    check_not_input(
        &args.out,
        &[
            ("--inputs", &args.inputs),
            ("--checkpoint", &args.checkpoint),
        ],
    )?;
    let file = comod::io::tensors::TensorFile::read(&args.checkpoint)?;
    if file.metadata("format") == Some(comod::conv::checkpoint::CONV_CHECKPOINT_FORMAT) {
        let checkpoint = comod::conv::checkpoint::conv_checkpoint_from(&file)?;
        let inputs = comod::conv::trace::read_conv_trace_inputs(&args.inputs, &checkpoint.net)?;
        let loss = comod::conv::trace::conv_trace(&checkpoint.net, &inputs, &args.out)?;
        println!(
            "wrote {} ({} trials, loss {loss:.6})",
            args.out.display(),
            inputs.labels.len() / checkpoint.net.arch().tasks
        );
        return Ok(());
    }
    let checkpoint = load_checkpoint(&args.checkpoint)?;
    let inputs = read_trace_inputs(&args.inputs, checkpoint.model.arch())?;
    let outputs = trace(&checkpoint.model, &inputs);
    write_trace_outputs(&args.out, &checkpoint.model, &outputs)?;
    println!(
        "wrote {} ({} trials, loss {:.6})",
        args.out.display(),
        inputs.labels.len(),
        outputs.loss
    );
    Ok(())
}

fn run_bench_command(args: BenchArgs) -> Result<()> {
    if !args.json {
        println!(
            "{:?} body ({}), {} threads, T = {SAMPLES}; each rate beside the FMA peak of its instruction set and thread count, and beside SGEMM",
            Body::detect(),
            Body::detect().isa(),
            rayon::current_num_threads()
        );
        println!(
            "{:<24} {:>13} {:>16} {:>26} {:>10}",
            "workload", "median", "rate", "of FMA peak", "of SGEMM"
        );
    }
    run_bench(&args.only, args.seconds, &args.data, |line: &BenchLine| {
        if args.json {
            let record = serde_json::json!({
                "workload": line.workload, "kind": format!("{:?}", line.kind),
                "isa": line.isa.name(), "threads": line.threads,
                "seconds": line.seconds, "flops": line.gflops * 1e9 * line.seconds,
                "gflops": line.gflops,
                "peak_gflops": line.peak_gflops, "ratio": line.ratio(),
                "sgemm_gflops": line.sgemm_gflops, "sgemm_ratio": line.sgemm_ratio(),
            });
            println!("{record}");
        } else {
            println!(
                "{:<24} {:>10.3} ms {:>8.1} GFLOP/s {:>6.1} % of {:>6.1} ({:<8}) {:>8.1} %",
                line.workload,
                line.seconds * 1e3,
                line.gflops,
                100.0 * line.ratio(),
                line.peak_gflops,
                line.isa,
                100.0 * line.sgemm_ratio(),
            );
        }
    })?;
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
    if let Err(message) = Isa::requested() {
        eprintln!("error: {message}");
        return ExitCode::from(2);
    }
    let result = match cli.command {
        Command::Pretrain(args) => run_pretrain(args),
        Command::Eval(args) => run_eval(args),
        Command::Sweep(args) => run_sweep_command(args),
        Command::Merge(args) => run_merge(args),
        Command::Summary(args) => run_summary(args),
        Command::Reproduce(args) => run_reproduce(args),
        Command::Tune(args) => run_tune(args),
        Command::Report(args) => run_report(args),
        Command::Trace(args) => run_trace(args),
        Command::Bench(args) => run_bench_command(args),
        Command::Multitask(command) => multitask_cmd::run_multitask(command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", format!("{e:#}").replace('\n', " "));
            ExitCode::FAILURE
        }
    }
}
