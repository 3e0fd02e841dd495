//! The main job, `comod reproduce` (§4–§6): pretrain the paper's network
//! on the digits (or reuse the folder's checkpoint when it was pretrained
//! with the same seed on the same digits), sweep tasks × methods × repeats,
//! write the summary and plots, then (unless asked not to) the quick
//! reproduction report, all in one folder.

use std::path::PathBuf;

use crate::analysis::{SummaryFiles, write_summary};
use crate::data::{Digits, Task};
use crate::error::{Error, Result};
use crate::net::Arch;
use crate::net::arch::DEFAULT_PRESET;
use crate::observer::Observer;
use crate::pretrained::pretrained;
use crate::report::plan::Scale;
use crate::report::{ReportOptions, ReportOutcome, report};
use crate::sweep::plan::{FULL_REPEATS, REPRODUCTION_REPEATS, Shard, reproduction_tasks};
use crate::sweep::record::{Record, SweepConfig};
use crate::sweep::store::read_results;
use crate::sweep::{SweepReport, SweepSpec, check_plan, run_sweep};
use crate::train::{DigitTasks, FinetuneConfig, Frozen, Method, PretrainOptions};

/// The output folder when none is given.
pub const DEFAULT_OUT: &str = "reproduction";

/// What a reproduction runs.
#[derive(Clone, Debug)]
pub struct ReproduceOptions {
    /// Output folder (checkpoint, results, summary, plots).
    pub out: PathBuf,
    /// The digits.
    pub data: PathBuf,
    /// Tasks ([`plan`] gives the default and the full study's).
    pub tasks: Vec<Task>,
    /// Repeats per task and method.
    pub repeats: usize,
    /// Methods.
    pub methods: Vec<Method>,
    /// Master seed of pretraining and sweep.
    pub seed: u64,
    /// Fine-tuning settings.
    pub config: FinetuneConfig,
    /// Keep each modulation run's coupling in its record.
    pub record_coupling: bool,
    /// Write the quick report (`comod report --quick`) into the same
    /// folder after the summary, judging its claims on this sweep too.
    pub report: bool,
}

/// What a reproduction produced.
#[derive(Clone, Debug)]
pub struct Reproduction {
    /// The sweep.
    pub sweep: SweepReport,
    /// Its results file.
    pub results: PathBuf,
    /// The summary table and every file written after the sweep.
    pub summary: SummaryFiles,
    /// The quick report, when it was asked for.
    pub report: Option<ReportOutcome>,
}

/// The tasks and repeats of the reproduction: with `full`, all 180 tasks ×
/// [`FULL_REPEATS`]; else the 45 digit pairs once each, quadrants in turn,
/// × [`REPRODUCTION_REPEATS`].
pub fn plan(full: bool) -> (Vec<Task>, usize) {
    if full {
        (Task::all(), FULL_REPEATS)
    } else {
        (reproduction_tasks(), REPRODUCTION_REPEATS)
    }
}

/// Runs the reproduction of `options`, reporting to `observer`.
pub fn reproduce(options: &ReproduceOptions, observer: &dyn Observer) -> Result<Reproduction> {
    check_plan(options.tasks.len(), &options.methods, options.repeats)?;
    options.config.validate()?;
    let digits = Digits::load(&options.data)?;
    std::fs::create_dir_all(&options.out).map_err(|e| Error::io(&options.out, e))?;
    let checkpoint = options.out.join("pretrained.safetensors");
    let arch = Arch::preset(DEFAULT_PRESET, 1)?;
    let pretrain_options = PretrainOptions {
        seed: options.seed,
        ..PretrainOptions::DEFAULT
    };
    let model = pretrained(&checkpoint, &arch, &pretrain_options, &digits, observer)?;
    let spec = SweepSpec {
        tasks: options.tasks.clone(),
        methods: options.methods.clone(),
        repeats: options.repeats,
        shard: Shard::default(),
        record_coupling: options.record_coupling,
        config: SweepConfig::new(
            &checkpoint,
            model.arch().clone(),
            (digits.sha256(), None),
            options.config,
            options.seed,
        )?,
    };
    let results = options.out.join("results.jsonl");
    let frozen = Frozen::new(model);
    let study = DigitTasks {
        frozen: &frozen,
        digits: &digits,
    };
    let sweep = run_sweep(&study, &spec, &results, |done, total| {
        observer.sweep_progress(done, total)
    })?;
    observer.sweep_done(&sweep, &results);
    let records: Vec<Record> = read_results(&results)?.records.into_values().collect();
    let summary = write_summary(
        &records,
        &results,
        &options.out,
        Some(&options.out.join("plots")),
    )?;
    observer.summary(&summary);
    let report = options
        .report
        .then(|| {
            observer.stage(&format!(
                "the quick report (comod report --quick) in {}",
                options.out.display()
            ));
            report(
                &ReportOptions {
                    out: options.out.clone(),
                    data: options.data.clone(),
                    fashion: crate::data::shipped_data_dir().join("fashion"),
                    scale: Scale::Quick,
                    shard: Shard::default(),
                    seed: options.seed,
                    partial: false,
                    also: vec![results.clone()],
                },
                observer,
            )
        })
        .transpose()?;
    Ok(Reproduction {
        sweep,
        summary,
        results,
        report,
    })
}
