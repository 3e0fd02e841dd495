//! The main job, `comod reproduce` (§4–§6): pretrain the paper's network
//! on the digits (or reuse the folder's checkpoint when it was pretrained
//! with the same seed on the same digits), sweep tasks × methods × repeats,
//! then write the summary and plots, all in one folder.

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::analysis::{SummaryFiles, write_summary};
use crate::data::{Digits, Task};
use crate::error::{Error, Result};
use crate::io::{load_checkpoint, save_pretrained};
use crate::net::arch::DEFAULT_PRESET;
use crate::net::{Arch, Model};
use crate::sweep::plan::{FULL_REPEATS, REPRODUCTION_REPEATS, Shard, reproduction_tasks};
use crate::sweep::record::SweepConfig;
use crate::sweep::store::read_results;
use crate::sweep::{SweepReport, SweepSpec, check_plan, run_sweep};
use crate::train::pretrain::Provenance;
use crate::train::{
    EpochStats, FinetuneConfig, FrozenNetwork, Method, PretrainOptions, PretrainReport, pretrain,
};

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
}

/// Where a reproduction reports its progress (a progress bar, a log).
pub trait Observer: Sync {
    /// The folder's checkpoint matches and is reused.
    fn reused(&self, checkpoint: &Path);
    /// A pretraining epoch finished.
    fn pretraining_epoch(&self, stats: &EpochStats, max_epochs: usize);
    /// Pretraining finished and its checkpoint was written.
    fn pretrained(&self, report: &PretrainReport, seconds: f64, checkpoint: &Path);
    /// `done` of `total` sweep runs are complete.
    fn sweep_progress(&self, done: usize, total: usize);
    /// The sweep finished and its results were written.
    fn sweep_done(&self, report: &SweepReport, results: &Path);
    /// A report stage begins (`comod report`).
    fn stage(&self, _what: &str) {}
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

/// The checkpoint at `path` if it holds `arch` pretrained with `seed` on
/// `digits`; none when there is no file or it was pretrained otherwise. A
/// file that is not a valid checkpoint is an error, never overwritten.
fn reusable(path: &Path, arch: &Arch, seed: u64, digits: &Digits) -> Result<Option<Model<f32>>> {
    if !path.exists() {
        return Ok(None);
    }
    let checkpoint = load_checkpoint(path).map_err(|e| {
        Error::data(
            path,
            format!("cannot be reused ({e}); remove it to pretrain again"),
        )
    })?;
    let same = checkpoint.model.arch() == arch
        && checkpoint
            .provenance()
            .is_some_and(|p| p.matches(seed, digits));
    Ok(same.then_some(checkpoint.model))
}

/// The network of `arch` pretrained with `options` on `digits`: the one
/// at `checkpoint` when it was pretrained with the same seed on the same
/// digits, else pretrained now and saved there.
pub fn pretrained(
    checkpoint: &Path,
    arch: &Arch,
    options: &PretrainOptions,
    digits: &Digits,
    observer: &dyn Observer,
) -> Result<Model<f32>> {
    if let Some(model) = reusable(checkpoint, arch, options.seed, digits)? {
        observer.reused(checkpoint);
        return Ok(model);
    }
    let start = Instant::now();
    let (model, report) = pretrain(arch, digits, options, |stats| {
        observer.pretraining_epoch(stats, options.max_epochs)
    })?;
    let provenance = Provenance::new(options, &report, digits);
    save_pretrained(checkpoint, &model, &provenance)?;
    observer.pretrained(&report, start.elapsed().as_secs_f64(), checkpoint);
    Ok(model)
}

/// Runs the reproduction of `options`, reporting to `observer`.
pub fn reproduce(options: &ReproduceOptions, observer: &dyn Observer) -> Result<Reproduction> {
    check_plan(&options.tasks, &options.methods, options.repeats)?;
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
        config: SweepConfig::new(&checkpoint, &model, &digits, options.config, options.seed)?,
    };
    let results = options.out.join("results.jsonl");
    let frozen = FrozenNetwork::new(model);
    let sweep = run_sweep(&frozen, &digits, &spec, &results, |done, total| {
        observer.sweep_progress(done, total)
    })?;
    observer.sweep_done(&sweep, &results);
    let records: Vec<_> = read_results(&results)?.records.into_values().collect();
    let summary = write_summary(
        &records,
        &results,
        &options.out,
        Some(&options.out.join("plots")),
    )?;
    Ok(Reproduction {
        sweep,
        summary,
        results,
    })
}
