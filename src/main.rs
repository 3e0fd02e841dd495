//! The `comod` command line: parses arguments, calls the library, prints.

mod cli;
mod output;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Parser;

use cli::{
    BenchArgs, Cli, Command, EvalArgs, MergeArgs, MultitaskCommand, MultitaskPretrainArgs,
    MultitaskSweepArgs, PretrainArgs, ReproduceArgs, SummaryArgs, SweepArgs, TraceArgs, TuneArgs,
};
use comod::bench::run_bench;
use comod::data::{Digits, parse_task_list};
use comod::io::load_checkpoint;
use comod::kernel::Body;
use comod::kernel::workload::SAMPLES;
use comod::net::Arch;
use comod::net::simd::Isa;
use comod::pretrained::{pretrain_conv_file, pretrain_file};
use comod::report::report;
use comod::reproduce::reproduce;
use comod::sweep::setup::{BenchmarkSweep, DigitSweep};
use comod::sweep::store::merge_files;
use comod::sweep::{SweepSpec, run_sweep};
use comod::train::trace::trace_file;
use comod::train::{ReadoutKind, general_accuracy, pair_accuracy};
use comod::tune::{TuneSpec, check_grid, check_overrides, run_grid, write_tuning};
use output::{Progress, print_pretrained, print_report, print_summary, print_sweep, show_runs};

fn run_pretrain(args: PretrainArgs) -> Result<()> {
    let options = args.options();
    let progress = output::pretraining_bar();
    let start = Instant::now();
    let report = pretrain_file(
        (&args.arch, args.modulated_layer),
        &args.data,
        &args.out,
        &options,
        |stats| {
            let message = output::epoch_message(stats);
            output::show_epoch(&progress, stats.epoch, options.max_epochs, message)
        },
    )?;
    progress.finish_and_clear();
    let seconds = start.elapsed().as_secs_f64();
    print_pretrained(&report, seconds, options.target_accuracy, &args.out);
    Ok(())
}

fn run_eval(args: EvalArgs) -> Result<()> {
    let tasks = (args.tasks.as_deref().map(parse_task_list).transpose()).context("--tasks")?;
    let model = load_checkpoint(&args.checkpoint)?.model;
    let digits = Digits::load(&args.data)?;
    let general = general_accuracy(&model, &digits, args.seed);
    println!("general task, held-out 10-way accuracy: {general:.4}");
    let Some(tasks) = tasks else { return Ok(()) };
    println!("\n| task | pair accuracy, no distractors | pair accuracy, with distractors |");
    println!("|---|---|---|");
    let (mut clean, mut cluttered) = (0.0, 0.0);
    for &task in &tasks {
        let acc = pair_accuracy(&model, &digits, task, ReadoutKind::Pair, args.seed);
        let (a, b) = (acc.without_distractors, acc.with_distractors);
        println!("| {task} | {a:.4} | {b:.4} |");
        (clean, cluttered) = (clean + a, cluttered + b);
    }
    let n = tasks.len() as f64;
    println!("| mean of {n} | {:.4} | {:.4} |", clean / n, cluttered / n);
    Ok(())
}

fn run_sweep_command(args: SweepArgs) -> Result<()> {
    let tasks = parse_task_list(&args.tasks).context("--tasks")?;
    let expected = (args.arch.as_deref())
        .map(|name| {
            let layer = args.modulated_layer;
            let given = format!(
                "{name}{}",
                layer
                    .map(|l| format!(" --modulated-layer {l}"))
                    .unwrap_or_default()
            );
            Arch::resolve(name, layer).map(|arch| (given, arch))
        })
        .transpose()?;
    let expected = expected.as_ref().map(|(name, arch)| (name.as_str(), arch));
    let checkpoint = (args.checkpoint.as_path(), args.data.as_path());
    let config = args.run.finetune_config();
    let setup = DigitSweep::open(checkpoint, &args.out, expected, config, args.run.seed)?;
    let spec = SweepSpec {
        tasks,
        methods: args.run.methods.clone(),
        repeats: args.repeats,
        shard: args.shard,
        record_coupling: args.run.record_coupling,
        config: setup.config.clone(),
    };
    let progress = output::sweep_bar();
    let report = run_sweep(&setup.study(), &spec, &args.out, show_runs(&progress))?;
    progress.finish_and_clear();
    print_sweep(&report, &args.out);
    Ok(())
}

fn run_multitask_sweep(args: Box<MultitaskSweepArgs>) -> Result<()> {
    BenchmarkSweep::check_overrides(&args.run.overrides())?;
    let config = args.run.finetune_config();
    let source = args.benchmark.source();
    let setup = BenchmarkSweep::open(&args.checkpoint, &source, &args.out, config, args.run.seed)?;
    let spec = SweepSpec {
        tasks: setup.tasks(&args.tasks)?,
        methods: args.run.methods.clone(),
        repeats: args.repeats,
        shard: args.shard,
        record_coupling: args.run.record_coupling,
        config: setup.config.clone(),
    };
    let progress = output::sweep_bar();
    let report = run_sweep(&setup.study(), &spec, &args.out, show_runs(&progress))?;
    progress.finish_and_clear();
    print_sweep(&report, &args.out);
    Ok(())
}

fn run_multitask_pretrain(args: MultitaskPretrainArgs) -> Result<()> {
    let options = args.options();
    let progress = output::pretraining_bar();
    let start = Instant::now();
    let done = pretrain_conv_file(
        &args.benchmark.source(),
        args.arch.as_deref(),
        &args.out,
        &options,
        &mut |e| {
            let message = format!(
                "loss {:.4} held-out mean accuracy {:.4}",
                e.loss,
                e.mean_accuracy()
            );
            output::show_epoch(&progress, e.epoch, options.max_epochs, message)
        },
    )?;
    progress.finish_and_clear();
    let p = &done.provenance;
    let missed = if p.heldout_accuracy >= options.target {
        String::new()
    } else {
        format!(
            " (target {:.2} not reached at the epoch cap)",
            options.target
        )
    };
    println!(
        "pretrained on {} in {} epochs ({:.1} s): held-out mean accuracy over {} tasks {:.4}{missed}",
        p.benchmark,
        p.epochs,
        start.elapsed().as_secs_f64(),
        p.tasks.len(),
        p.heldout_accuracy
    );
    let accuracy = &done.epochs.last().expect("at least one epoch").accuracy;
    let per_task: Vec<String> = (p.tasks.iter().zip(accuracy))
        .map(|(t, a)| format!("{t} {a:.3}"))
        .collect();
    println!("per task: {}", per_task.join(", "));
    println!("wrote {}", args.out.display());
    Ok(())
}

fn run_tune(args: TuneArgs) -> Result<()> {
    check_overrides(&args.run.overrides())?;
    check_grid(&args.grid)?;
    let tasks = args.tasks().context("--tasks")?;
    let config = args.run.finetune_config();
    let checkpoint = (args.checkpoint.as_path(), args.data.as_path());
    let setup = DigitSweep::open(checkpoint, &args.out, None, config, args.run.seed)?;
    let spec = TuneSpec {
        tasks,
        methods: args.run.methods.clone(),
        repeats: args.repeats,
        grid: args.grid.clone(),
        config: setup.config.clone(),
    };
    let progress = output::sweep_bar();
    let (frozen, digits) = (&setup.frozen, &setup.digits);
    let (reports, records) = run_grid(frozen, digits, &spec, &args.out, show_runs(&progress))?;
    progress.finish_and_clear();
    let run: usize = reports.iter().map(|r| r.run).sum();
    let seconds: f64 = reports.iter().map(|r| r.seconds).sum();
    let (count, rates) = (records.len(), spec.grid.len());
    println!("{count} runs over {rates} rates ({run} run now in {seconds:.1} s, the rest resumed)");
    let tuning = write_tuning(&records, &args.out)?;
    println!("{}", tuning.table);
    println!("chosen rates, for comod sweep:\n  {}", tuning.flags);
    for path in tuning.written {
        println!("wrote {}", path.display());
    }
    Ok(())
}

fn run_merge(args: MergeArgs) -> Result<()> {
    let inputs: Vec<&Path> = args.inputs.iter().map(PathBuf::as_path).collect();
    let (runs, _) = merge_files(&args.out, &inputs)?;
    let (files, out) = (inputs.len(), args.out.display());
    println!("merged {runs} runs from {files} files into {out}");
    Ok(())
}

fn run_summary(args: SummaryArgs) -> Result<()> {
    let plots = args.plots.as_deref();
    let summary = comod::analysis::summarize_file(&args.results, args.out_dir.as_deref(), plots)?;
    if summary.torn_line {
        eprintln!(
            "warning: {}: ignoring a torn last line",
            args.results.display()
        );
    }
    print_summary(&summary.files);
    Ok(())
}

fn run_reproduce(args: ReproduceArgs) -> Result<()> {
    let options = args.options();
    let reproduction = reproduce(&options, &Progress::new())?;
    match &reproduction.report {
        Some(outcome) => print_report(outcome),
        None => println!("reproduction in {}", options.out.display()),
    }
    Ok(())
}

fn run_trace(args: TraceArgs) -> Result<()> {
    let traced = trace_file(&args.checkpoint, &args.inputs, &args.out)?;
    let (out, trials, loss) = (args.out.display(), traced.trials, traced.loss);
    println!("wrote {out} ({trials} trials, loss {loss:.6})");
    Ok(())
}

fn run_bench_command(args: BenchArgs) -> Result<()> {
    if !args.json {
        let (body, threads) = (Body::detect(), rayon::current_num_threads());
        println!(
            "{body:?} body ({}), {threads} threads, T = {SAMPLES}; each rate beside the FMA peak of its instruction set and thread count, and beside SGEMM",
            body.isa()
        );
        let columns = ["workload", "median", "rate", "of FMA peak", "of SGEMM"];
        let [a, b, c, d, e] = columns;
        println!("{a:<24} {b:>13} {c:>16} {d:>26} {e:>10}");
    }
    run_bench(&args.only, args.seconds, &args.data, |line| {
        match args.json {
            true => println!("{}", line.to_json()),
            false => output::print_bench_line(line),
        }
    })?;
    Ok(())
}

/// Parses the command line; usage errors become one line and exit code 2.
fn parse_cli() -> Result<Cli, ExitCode> {
    Cli::try_parse().map_err(|e| {
        use clap::error::ErrorKind::{DisplayHelp, DisplayVersion};
        if matches!(e.kind(), DisplayHelp | DisplayVersion) {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        let rendered = e.render().to_string();
        let line: Vec<&str> = (rendered.lines().map(str::trim))
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
        Command::Report(args) => report(&args.options(), &Progress::new())
            .map(|o| print_report(&o))
            .map_err(Into::into),
        Command::Trace(args) => run_trace(args),
        Command::Bench(args) => run_bench_command(args),
        Command::Multitask(MultitaskCommand::Pretrain(args)) => run_multitask_pretrain(args),
        Command::Multitask(MultitaskCommand::Sweep(args)) => run_multitask_sweep(args),
        Command::Multitask(MultitaskCommand::Merge(args)) => run_merge(args),
        Command::Multitask(MultitaskCommand::Summary(args)) => run_summary(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", format!("{e:#}").replace('\n', " "));
            ExitCode::FAILURE
        }
    }
}
