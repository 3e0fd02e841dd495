//! `comod multitask …` (§8): parses nothing itself (see `cli`), loads,
//! calls the library, prints.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Result, bail};

use crate::cli::{
    BenchmarkArgs, MergeArgs, MultitaskCommand, MultitaskPretrainArgs, MultitaskSweepArgs,
    SummaryArgs,
};
use crate::{bar, print_rate, show_runs, sweep_bar};
use comod::analysis::write_summary;
use comod::conv::ConvArch;
use comod::conv::checkpoint::{ConvProvenance, load_conv_checkpoint, save_conv_checkpoint};
use comod::data::SHIPPED_DATA_DIR;
use comod::digest::sha256_hex;
use comod::io::read::{MAX_TENSOR_FILE_BYTES, read_bounded};
use comod::io::{check_not_input, check_writable};
use comod::multitask::data::{Benchmark, MultitaskData};
use comod::multitask::finetune::check_config as check_finetune;
use comod::multitask::pretrain::{MultitaskPretrainOptions, pretrain_multitask};
use comod::multitask::record::{MultitaskConfig, MultitaskRecord};
use comod::multitask::sweep::{MultitaskSweepSpec, run_multitask_sweep};
use comod::sweep::store::{check_config, merge_records, read_records};

/// Runs one `comod multitask` command.
pub fn run_multitask(command: MultitaskCommand) -> Result<()> {
    match command {
        MultitaskCommand::Pretrain(args) => run_pretrain(args),
        MultitaskCommand::Sweep(args) => run_sweep(args),
        MultitaskCommand::Merge(args) => run_merge(args),
        MultitaskCommand::Summary(args) => run_summary(args),
    }
}

/// The benchmark's folder: `--data`, or the shipped digits for mnist-attributes.
fn data_dir(args: &BenchmarkArgs) -> Result<PathBuf> {
    match (&args.data, args.benchmark) {
        (Some(dir), _) => Ok(dir.clone()),
        (None, Benchmark::MnistAttributes) => Ok(PathBuf::from(SHIPPED_DATA_DIR)),
        (None, other) => bail!(
            "--data: {} does not ship with comod; point --data at its folder ({})",
            other.name(),
            match other {
                Benchmark::Cifar100 => "train.bin and test.bin of the binary version",
                _ => "list_attr_celeba.txt, list_eval_partition.txt and img_align_celeba/",
            }
        ),
    }
}

fn load_data(args: &BenchmarkArgs) -> Result<MultitaskData> {
    if args.limit == Some(0) {
        bail!("--limit 0: keep at least one image of each split");
    }
    Ok(MultitaskData::load(
        args.benchmark,
        &data_dir(args)?,
        args.limit,
    )?)
}

fn run_pretrain(args: MultitaskPretrainArgs) -> Result<()> {
    let options = MultitaskPretrainOptions {
        max_epochs: args.epochs,
        examples: args.examples,
        batch: args.batch_size,
        lr: args.lr,
        target: args.target,
        heldout: args.heldout,
        seed: args.seed,
    };
    options.validate()?;
    check_writable(&args.out)?;
    let dir = data_dir(&args.benchmark)?;
    check_not_input(&args.out, &[("--data", dir.as_path())])?;
    let data = load_data(&args.benchmark)?;
    let arch_name = args
        .arch
        .clone()
        .unwrap_or_else(|| args.benchmark.benchmark.default_arch().to_string());
    let arch = ConvArch::resolve(&arch_name, data.task_count())?;
    let progress =
        bar("pretrain {bar:30} epoch {pos}/{len} {msg} [{elapsed_precise}, ETA at the cap {eta}]");
    progress.set_length(options.max_epochs as u64);
    let start = Instant::now();
    let (net, epochs) = pretrain_multitask(&data, &arch, &options, &mut |e| {
        progress.set_position(e.epoch as u64);
        progress.set_message(format!(
            "loss {:.4} held-out mean accuracy {:.4}",
            e.loss,
            e.mean_accuracy()
        ));
    })?;
    progress.finish_and_clear();
    let last = epochs.last().expect("at least one epoch");
    let provenance = ConvProvenance {
        benchmark: data.benchmark.name().to_string(),
        tasks: data.tasks.clone(),
        seed: options.seed,
        epochs: epochs.len(),
        heldout_accuracy: last.mean_accuracy(),
        data_sha256: data.sha256().to_string(),
    };
    save_conv_checkpoint(&args.out, &net, &provenance)?;
    let missed = if last.mean_accuracy() >= options.target {
        String::new()
    } else {
        format!(
            " (target {:.2} not reached at the epoch cap)",
            options.target
        )
    };
    println!(
        "pretrained {} on {} in {} epochs ({:.1} s): held-out mean accuracy over {} tasks {:.4}{missed}",
        arch_name,
        data.benchmark.name(),
        epochs.len(),
        start.elapsed().as_secs_f64(),
        data.task_count(),
        last.mean_accuracy()
    );
    let per_task: Vec<String> = data
        .tasks
        .iter()
        .zip(&last.accuracy)
        .map(|(t, a)| format!("{t} {a:.3}"))
        .collect();
    println!("per task: {}", per_task.join(", "));
    println!("wrote {}", args.out.display());
    Ok(())
}

fn run_sweep(args: MultitaskSweepArgs) -> Result<()> {
    if args.run.readout.is_some() {
        bail!("--readout: every multi-task head is binary (2 logits); the flag does not apply");
    }
    let finetune = args.run.finetune_config();
    check_finetune(&finetune)?;
    let dir = data_dir(&args.benchmark)?;
    check_not_input(
        &args.out,
        &[
            ("--checkpoint", args.checkpoint.as_path()),
            ("--data", dir.as_path()),
        ],
    )?;
    let checkpoint = load_conv_checkpoint(&args.checkpoint)?;
    let data = load_data(&args.benchmark)?;
    let provenance = &checkpoint.provenance;
    if provenance.benchmark != data.benchmark.name() || provenance.tasks != data.tasks {
        bail!(
            "{}: pretrained on {} ({} tasks), not on --benchmark {} ({} tasks)",
            args.checkpoint.display(),
            provenance.benchmark,
            provenance.tasks.len(),
            data.benchmark.name(),
            data.task_count()
        );
    }
    let tasks = if args.tasks == "all" {
        (0..data.task_count()).collect()
    } else {
        args.tasks
            .split(',')
            .map(|name| data.task_index(name.trim()))
            .collect::<comod::Result<Vec<_>>>()?
    };
    let bytes = read_bounded(&args.checkpoint, MAX_TENSOR_FILE_BYTES)?;
    let spec = MultitaskSweepSpec {
        tasks,
        methods: args.run.methods.clone(),
        repeats: args.repeats,
        shard: args.shard,
        record_coupling: args.run.record_coupling,
        config: MultitaskConfig {
            finetune,
            benchmark: data.benchmark,
            master_seed: args.run.seed,
            architecture: checkpoint.net.arch().clone(),
            checkpoint_sha256: sha256_hex(&[&bytes]),
            data_sha256: data.sha256().to_string(),
            comod_version: env!("CARGO_PKG_VERSION").to_string(),
        },
    };
    let progress = sweep_bar();
    let report = run_multitask_sweep(
        &checkpoint.net,
        &data,
        &spec,
        &args.out,
        show_runs(&progress),
    )?;
    progress.finish_and_clear();
    for failure in &report.failed {
        eprintln!("warning: run {failure}: recorded as failed, left out of the analyses");
    }
    if report.run == 0 {
        println!(
            "{} runs, all already in the file: nothing to run",
            report.planned
        );
    } else {
        print_rate(
            (report.planned, report.resumed, report.run),
            report.seconds,
            report.flops,
        );
    }
    println!("wrote {}", args.out.display());
    Ok(())
}

fn run_merge(args: MergeArgs) -> Result<()> {
    let inputs: Vec<&Path> = args.inputs.iter().map(PathBuf::as_path).collect();
    let runs = merge_records::<MultitaskRecord>(&args.out, &inputs)?;
    println!(
        "merged {runs} runs from {} files into {}",
        inputs.len(),
        args.out.display()
    );
    Ok(())
}

fn run_summary(args: SummaryArgs) -> Result<()> {
    if !args.results.exists() {
        bail!("{}: no such file", args.results.display());
    }
    let contents = read_records::<MultitaskRecord>(&args.results)?;
    if let Some(first) = contents.records.values().next() {
        check_config(&args.results, &contents, &first.config.clone())?;
    }
    if contents.torn.is_some() {
        eprintln!(
            "warning: {}: ignoring a torn last line",
            args.results.display()
        );
    }
    let records: Vec<MultitaskRecord> = contents.records.into_values().collect();
    if records.is_empty() {
        bail!("{}: no runs to summarise", args.results.display());
    }
    let out_dir = args.out_dir.clone().unwrap_or_else(|| {
        args.results
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default()
    });
    let files = write_summary(&records, &args.results, &out_dir, args.plots.as_deref())?;
    println!("{}", files.table);
    for path in files.written {
        println!("wrote {}", path.display());
    }
    Ok(())
}
