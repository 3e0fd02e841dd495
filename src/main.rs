//! The `comod` command line: parses arguments, calls the library, prints.

mod cli;
mod output;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};

use cli::{
    BenchArgs, Command, EvalArgs, MergeArgs, MultitaskCommand, MultitaskPretrainArgs,
    MultitaskSweepArgs, PretrainArgs, ReportArgs, ReproduceArgs, SummaryArgs, SweepArgs, TraceArgs,
    TuneArgs,
};
use comod::analysis::summarize_file;
use comod::bench::run_bench;
use comod::data::{Digits, parse_task_list};
use comod::io::load_checkpoint;
use comod::net::simd::Isa;
use comod::pretrained::{pretrain_conv_file, pretrain_file};
use comod::report::report;
use comod::reproduce::reproduce;
use comod::sweep::record::Architecture;
use comod::sweep::setup::{BenchmarkSweep, DigitSweep};
use comod::sweep::store::merge_files;
use comod::sweep::{SweepSpec, run_sweep};
use comod::train::trace::trace_file;
use comod::train::{ReadoutKind, Study, general_accuracy, pair_accuracy};
use comod::tune::{TuneSpec, check_grid, check_overrides, run_grid, write_tuning};
use output::{Progress, print_report, print_summary, print_sweep, show_runs};

fn run_pretrain(args: PretrainArgs) -> Result<()> {
    let options = args.options();
    let progress = output::pretraining_bar();
    let start = Instant::now();
    let arch = (args.arch.as_str(), args.modulated_layer);
    let report = pretrain_file(arch, &args.data, &args.out, &options, |stats| {
        let message = output::epoch_message(stats);
        output::show_epoch(&progress, stats.epoch, options.max_epochs, message)
    })?;
    progress.finish_and_clear();
    let seconds = start.elapsed().as_secs_f64();
    output::print_pretrained(&report, seconds, options.target_accuracy, &args.out);
    Ok(())
}

fn run_multitask_pretrain(args: MultitaskPretrainArgs) -> Result<()> {
    let options = args.options();
    let progress = output::pretraining_bar();
    let start = Instant::now();
    let source = args.benchmark.source();
    let done = pretrain_conv_file(
        &source,
        args.arch.as_deref(),
        (args.width, args.modulated_conv),
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
    let seconds = start.elapsed().as_secs_f64();
    output::print_conv_pretrained(&done, seconds, &args.out);
    Ok(())
}

fn run_eval(args: EvalArgs) -> Result<()> {
    let tasks = (args.tasks.as_deref().map(parse_task_list).transpose()).context("--tasks")?;
    let model = load_checkpoint(&args.checkpoint)?.model;
    let digits = Digits::load(&args.data)?;
    let general = general_accuracy(&model, &digits, args.seed);
    println!("general task, held-out 10-way accuracy: {general:.4}");
    if let Some(tasks) = tasks {
        let pair = |&task| pair_accuracy(&model, &digits, task, ReadoutKind::Pair, args.seed);
        output::print_pair_table(&tasks.iter().map(pair).collect::<Vec<_>>());
    }
    Ok(())
}

/// Runs `spec` of `study` into `out` with a progress bar, then prints how it went.
fn sweep<S: Study, A: Architecture>(
    study: &S,
    spec: &SweepSpec<S::Task, A>,
    out: &Path,
) -> Result<()> {
    let progress = output::sweep_bar();
    let report = run_sweep(study, spec, out, show_runs(&progress))?;
    progress.finish_and_clear();
    print_sweep(&report, out);
    Ok(())
}

fn run_sweep_command(args: SweepArgs) -> Result<()> {
    let tasks = parse_task_list(&args.tasks).context("--tasks")?;
    let shard = args.shard.shard()?;
    let out = shard.fill(&args.out);
    let expected = args.expected_arch()?;
    let expected = expected.as_ref().map(|(name, arch)| (name.as_str(), arch));
    let inputs = (args.checkpoint.as_path(), args.data.as_path());
    let config = args.run.finetune_config()?;
    let setup = DigitSweep::open(inputs, &out, expected, config, args.run.seed)?;
    let spec = args
        .run
        .spec(tasks, args.repeats, shard, setup.config.clone());
    sweep(&setup.study(), &spec, &out)
}

fn run_multitask_sweep(args: Box<MultitaskSweepArgs>) -> Result<()> {
    BenchmarkSweep::check_overrides(&args.run.overrides())?;
    let shard = args.shard.shard()?;
    let out = shard.fill(&args.out);
    let (config, source) = (args.run.finetune_config()?, args.benchmark.source());
    let seeds = (args.run.seed, args.transfer);
    let setup = BenchmarkSweep::open(&args.checkpoint, &source, &out, config, seeds)?;
    let tasks = setup.tasks(&args.tasks)?;
    let spec = args
        .run
        .spec(tasks, args.repeats, shard, setup.config.clone());
    sweep(&setup.study(), &spec, &out)
}

fn run_tune(args: TuneArgs) -> Result<()> {
    check_overrides(&args.run.overrides())?;
    check_grid(&args.grid)?;
    let tasks = args.tasks().context("--tasks")?;
    let inputs = (args.checkpoint.as_path(), args.data.as_path());
    let config = args.run.finetune_config()?;
    let setup = DigitSweep::open(inputs, &args.out, None, config, args.run.seed)?;
    let (methods, grid) = (args.run.methods.clone(), args.grid.clone());
    let (repeats, config) = (args.repeats, setup.config.clone());
    let spec = TuneSpec {
        tasks,
        methods,
        repeats,
        grid,
        config,
    };
    let progress = output::sweep_bar();
    let (frozen, digits) = (&setup.frozen, &setup.digits);
    let (reports, records) = run_grid(frozen, digits, &spec, &args.out, show_runs(&progress))?;
    progress.finish_and_clear();
    output::print_tuning(&reports, &records, spec.grid.len());
    let tuning = write_tuning(&records, &args.out)?;
    output::print_tuned(&tuning);
    Ok(())
}

fn run_merge(args: MergeArgs) -> Result<()> {
    let inputs: Vec<&Path> = args.inputs.iter().map(PathBuf::as_path).collect();
    let merged = merge_files(&args.out, &inputs, args.partial)?;
    let (runs, files, out) = (merged.runs, inputs.len(), args.out.display());
    println!("merged {runs} runs from {files} files into {out}");
    output::print_completeness(&merged.completeness, &args.out);
    Ok(())
}

fn run_summary(args: SummaryArgs) -> Result<()> {
    let summary = summarize_file(
        &args.results,
        args.out_dir.as_deref(),
        args.plots.as_deref(),
        args.partial,
    )?;
    print_summary(&summary, &args.results);
    Ok(())
}

fn run_reproduce(args: ReproduceArgs) -> Result<()> {
    let options = args.options()?;
    let reproduction = reproduce(&options, &Progress::new())?;
    match &reproduction.report {
        Some(outcome) => print_report(outcome),
        None => println!("reproduction in {}", options.out.display()),
    }
    Ok(())
}

fn run_report(args: ReportArgs) -> Result<()> {
    print_report(&report(&args.options()?, &Progress::new())?);
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
        output::print_bench_header();
    }
    run_bench(&args.only, args.seconds, &args.data, |line| {
        match args.json {
            true => println!("{}", line.to_json()),
            false => output::print_bench_line(line),
        }
    })?;
    Ok(())
}

fn main() -> ExitCode {
    output::end_quietly_on_closed_stdout();
    let cli = match cli::parse() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    if let Err(message) = Isa::requested() {
        eprintln!("error: {message}");
        return ExitCode::from(2);
    }
    comod::threads::configure_threads();
    let result = match cli.command {
        Command::Pretrain(args) => run_pretrain(args),
        Command::Eval(args) => run_eval(args),
        Command::Sweep(args) => run_sweep_command(args),
        Command::Merge(args) | Command::Multitask(MultitaskCommand::Merge(args)) => run_merge(args),
        Command::Summary(args) | Command::Multitask(MultitaskCommand::Summary(args)) => {
            run_summary(args)
        }
        Command::Reproduce(args) => run_reproduce(args),
        Command::Tune(args) => run_tune(args),
        Command::Report(args) => run_report(args),
        Command::Trace(args) => run_trace(args),
        Command::Bench(args) => run_bench_command(args),
        Command::Multitask(MultitaskCommand::Pretrain(args)) => run_multitask_pretrain(args),
        Command::Multitask(MultitaskCommand::Sweep(args)) => run_multitask_sweep(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", format!("{e:#}").replace('\n', " "));
            ExitCode::FAILURE
        }
    }
}
