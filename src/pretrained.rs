//! Pretrained networks on disk (§4, §7, §8): a checkpoint pretrained and
//! written with its provenance, or the one already at its path reused
//! when it was pretrained the same way on the same data.

use std::path::Path;
use std::time::Instant;

use crate::conv::checkpoint::{ConvProvenance, load_conv_checkpoint, save_conv_checkpoint};
use crate::conv::{ConvArch, ConvNet};
use crate::data::Digits;
use crate::data::benchmark::{BenchmarkData, BenchmarkSource};
use crate::data::digits::idx_files;
use crate::error::{Error, Result};
use crate::io::lock::FileLock;
use crate::io::{check_not_input, check_writable, load_checkpoint, save_pretrained};
use crate::net::{Arch, Model};
use crate::observer::Observer;
use crate::train::joint::{MultitaskEpoch, MultitaskPretrainOptions, pretrain_multitask};

use crate::train::pretrain::Provenance;
use crate::train::{EpochStats, PretrainOptions, PretrainReport, pretrain};

/// The network at `path` and how it was pretrained, if it is a network
/// whose architecture `fits` pretrained as `options` ask on `digits`: the
/// same seed, and either the target reached or at least
/// `options.max_epochs` epochs run (a network stopped by a lower epoch cap
/// is pretrained again, §5 (e)); none when there is no file or it was
/// pretrained otherwise. A file that is not a valid checkpoint is an
/// error, never overwritten.
fn reusable(
    path: &Path,
    fits: impl Fn(&Arch) -> bool,
    options: &PretrainOptions,
    digits: &Digits,
) -> Result<Option<(Model<f32>, Provenance)>> {
    if !path.exists() {
        return Ok(None);
    }
    let checkpoint = load_checkpoint(path).map_err(|e| {
        Error::data(
            path,
            format!("cannot be reused ({e}); remove it to pretrain again"),
        )
    })?;
    let provenance = checkpoint.provenance().filter(|p| {
        p.matches(options.seed, digits) && (p.reached_target || p.epochs >= options.max_epochs)
    });
    Ok(provenance
        .filter(|_| fits(checkpoint.model.arch()))
        .map(|p| (checkpoint.model, p)))
}

/// The network of `arch` pretrained with `options` on `digits`: the one
/// at `checkpoint` when it was pretrained with the same seed on the same
/// digits, else pretrained now and saved there. The checkpoint is locked
/// meanwhile, so processes that need it at once (the shards of a report)
/// pretrain it once.
pub fn pretrained(
    checkpoint: &Path,
    arch: &Arch,
    options: &PretrainOptions,
    digits: &Digits,
    observer: &dyn Observer,
) -> Result<Model<f32>> {
    pretrained_like(checkpoint, arch, options, digits, observer, None)
}

/// [`pretrained`], where the checkpoint at `like` (when given) may hold a
/// network that pretraining trains as it would one of `arch`
/// ([`Arch::pretrains_as`]: the same layers modulated elsewhere, at
/// β = 0), pretrained as `options` ask on `digits`: that network is then
/// the one pretraining would give, bit for bit, so it is written to
/// `checkpoint` as `arch` describes it, with its provenance, instead of
/// being pretrained again.
pub fn pretrained_like(
    checkpoint: &Path,
    arch: &Arch,
    options: &PretrainOptions,
    digits: &Digits,
    observer: &dyn Observer,
    like: Option<&Path>,
) -> Result<Model<f32>> {
    // Shards of one report started at once pretrain it once: the others
    // wait, then reuse it.
    let _lock = FileLock::wait(checkpoint)?;
    if let Some((model, _)) = reusable(checkpoint, |a| a == arch, options, digits)? {
        observer.reused(checkpoint);
        return Ok(model);
    }
    if let Some(like) = like
        && let Some((model, provenance)) =
            reusable(like, |a| a.pretrains_as(arch), options, digits)?
    {
        let model = model.into_arch(arch);
        save_pretrained(checkpoint, &model, &provenance)?;
        observer.reused_as(like, checkpoint);
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

/// Pretrains a network of `arch` (resolved from `--arch` as given, a
/// preset or a JSON file, with `modulated_layer`) on the digits in `data`
/// with `options` and writes it to `out` with its provenance (§4, §7);
/// `out` must be writable and none of the inputs. `on_epoch` sees each
/// epoch as it ends.
pub fn pretrain_file(
    (arch, modulated_layer): (&str, Option<usize>),
    data: &Path,
    out: &Path,
    options: &PretrainOptions,
    on_epoch: impl FnMut(&EpochStats),
) -> Result<PretrainReport> {
    let resolved = Arch::resolve(arch, modulated_layer)?;
    options.validate()?;
    check_writable(out)?;
    let digit_files = idx_files(data);
    let mut inputs = vec![("--arch", Path::new(arch))];
    inputs.extend(digit_files.iter().map(|p| ("--data", p.as_path())));
    check_not_input(out, &inputs)?;
    let digits = Digits::load(data)?;
    let (model, report) = pretrain(&resolved, &digits, options, on_epoch)?;
    save_pretrained(out, &model, &Provenance::new(options, &report, &digits))?;
    Ok(report)
}

/// A convolutional network pretrained jointly on a benchmark's tasks and
/// written to its checkpoint (§8).
pub struct ConvPretrained {
    /// The network.
    pub net: ConvNet<f32>,
    /// How it was pretrained, as its checkpoint keeps it.
    pub provenance: ConvProvenance,
    /// Every epoch's numbers.
    pub epochs: Vec<MultitaskEpoch>,
    /// The names of the tasks it was pretrained on.
    pub pretraining_tasks: Vec<String>,
}

/// Pretrains a network of `arch` (a preset or a format 2 JSON file, as
/// `--arch` gives it; `None`: the benchmark's preset), made `width` times
/// as wide and modulated at its `modulated_conv`-th conv stage, on the
/// pretraining tasks of the benchmark of `source` with `options` and
/// writes it to `out` with its provenance (§8); `out` must be writable and
/// none of the inputs.
pub fn pretrain_conv_file(
    source: &BenchmarkSource,
    arch: Option<&str>,
    (width, modulated_conv): (f64, Option<usize>),
    out: &Path,
    options: &MultitaskPretrainOptions,
    on_epoch: &mut dyn FnMut(&MultitaskEpoch),
) -> Result<ConvPretrained> {
    options.validate()?;
    check_writable(out)?;
    let dir = source.dir()?;
    let files = BenchmarkData::files(source.benchmark, &dir);
    let mut inputs: Vec<(&str, &Path)> = files.iter().map(|p| ("--data", p.as_path())).collect();
    inputs.push(("--data", &dir));
    if let Some(arch) = arch {
        inputs.push(("--arch", Path::new(arch)));
    }
    check_not_input(out, &inputs)?;
    let data = source.load()?;
    let name = arch.unwrap_or(source.benchmark.default_arch());
    let arch = ConvArch::resolve(name, data.task_count())?.variant(width, modulated_conv)?;
    arch.check_fits(data.benchmark.name(), data.shape, data.task_count())
        .map_err(|e| Error::option("--arch", name, e.to_string()))?;
    let (net, epochs) = pretrain_multitask(&data, &arch, options, on_epoch)?;
    let provenance = conv_provenance(&data, options, &epochs);
    save_conv_checkpoint(out, &net, &provenance)?;
    let pretraining_tasks = (options.transfer.pretraining_tasks(&data).into_iter())
        .map(|t| data.tasks[t].clone())
        .collect();
    Ok(ConvPretrained {
        net,
        provenance,
        epochs,
        pretraining_tasks,
    })
}

/// A convolutional network pretrained elsewhere in the same job, and its
/// checkpoint: a source for [`pretrained_conv`].
pub type ConvSource<'a> = (&'a Path, &'a ConvNet<f32>, &'a ConvProvenance);

/// A network of `arch` pretrained on `data` with `options`: the one at
/// `checkpoint` when it was pretrained the same way (seed, data, protocol,
/// target, epoch cap, architecture); else `like`, when given and a network
/// that pretraining trains as it would one of `arch`
/// ([`ConvArch::pretrains_as`]: the same backbone modulated at another
/// stage) pretrained as `options` ask on `data`, written to `checkpoint`
/// as `arch` describes it, with its provenance (pretraining would give the
/// same bits); else pretrained now and saved there.
pub fn pretrained_conv(
    checkpoint: &Path,
    arch: &ConvArch,
    data: &BenchmarkData,
    options: &MultitaskPretrainOptions,
    observer: &dyn Observer,
    like: Option<ConvSource<'_>>,
) -> Result<(ConvNet<f32>, ConvProvenance)> {
    let _lock = FileLock::wait(checkpoint)?;
    let reusable = load_conv_checkpoint(checkpoint)
        .ok()
        .filter(|c| pretrained_as_asked(&c.provenance, data, options) && c.net.arch() == arch);
    if let Some(found) = reusable {
        observer.reused(checkpoint);
        return Ok((found.net, found.provenance));
    }
    if let Some((source, net, provenance)) = like
        && pretrained_as_asked(provenance, data, options)
        && net.arch().pretrains_as(arch)
    {
        let net = net.clone().into_arch(arch);
        save_conv_checkpoint(checkpoint, &net, provenance)?;
        observer.reused_as(source, checkpoint);
        return Ok((net, provenance.clone()));
    }
    observer.stage(&format!(
        "pretrain {} on {} ({})",
        checkpoint
            .file_stem()
            .map_or_else(|| "network".into(), |s| s.to_string_lossy()),
        data.benchmark.name(),
        options.transfer.name()
    ));
    let (net, epochs) = pretrain_multitask(data, arch, options, &mut |_| {})?;
    let provenance = conv_provenance(data, options, &epochs);
    save_conv_checkpoint(checkpoint, &net, &provenance)?;
    Ok((net, provenance))
}

/// Whether a network with `provenance` was pretrained on `data` as
/// `options` ask: the same seed, data, protocol, target and epoch cap.
fn pretrained_as_asked(
    provenance: &ConvProvenance,
    data: &BenchmarkData,
    options: &MultitaskPretrainOptions,
) -> bool {
    let p = provenance;
    p.seed == options.seed
        && p.epochs <= options.max_epochs
        && p.max_epochs == options.max_epochs
        && p.data_sha256 == data.sha256()
        && p.benchmark == data.benchmark.name()
        && p.transfer == options.transfer
        && p.target == options.target
}

/// How a network was pretrained on `data` with `options` in `epochs`.
fn conv_provenance(
    data: &BenchmarkData,
    options: &MultitaskPretrainOptions,
    epochs: &[MultitaskEpoch],
) -> ConvProvenance {
    ConvProvenance {
        benchmark: data.benchmark.name().to_string(),
        tasks: data.tasks.clone(),
        seed: options.seed,
        epochs: epochs.len(),
        heldout_accuracy: epochs.last().map_or(0.0, |e| e.mean_accuracy()),
        data_sha256: data.sha256().to_string(),
        transfer: options.transfer,
        target: options.target,
        max_epochs: options.max_epochs,
    }
}
