//! What a sweep reads before it runs (§6, §7, §8): the pretrained network
//! and its data, each named as an input that the results file may not be,
//! checked against each other, and the configuration every record carries.
//! The command line, the report and library callers set sweeps up here.

use crate::train::Transfer;
use std::path::Path;

use crate::conv::ConvArch;
use crate::conv::ConvNet;
use crate::conv::checkpoint::load_conv_checkpoint;
use crate::data::Digits;
use crate::data::benchmark::{BenchmarkData, BenchmarkSource};
use crate::data::digits::idx_files;
use crate::error::{Error, Result};
use crate::io::{check_not_input, load_checkpoint};
use crate::net::{Arch, Model};
use crate::sweep::record::SweepConfig;
use crate::train::presets::Overrides;
use crate::train::{BenchmarkTasks, DigitTasks, FinetuneConfig, Frozen};

/// A sweep of the MLP on the digit tasks: the network, the digits and the
/// configuration of its records.
pub struct DigitSweep {
    /// The pretrained network.
    pub frozen: Frozen<Model<f32>>,
    /// The digits.
    pub digits: Digits,
    /// What every record carries.
    pub config: SweepConfig<Arch>,
}

impl DigitSweep {
    /// Reads the checkpoint at `checkpoint` and the digits in `data` for a
    /// sweep with `finetune` and `master_seed` into `out`, which may be
    /// neither; with `expected` (the `--arch` as given, and what it
    /// names), the checkpoint's architecture must be it.
    pub fn open(
        (checkpoint, data): (&Path, &Path),
        out: &Path,
        expected: Option<(&str, &Arch)>,
        finetune: FinetuneConfig,
        master_seed: u64,
    ) -> Result<DigitSweep> {
        finetune.validate()?;
        let digit_files = idx_files(data);
        let mut inputs = vec![("--checkpoint", checkpoint)];
        inputs.extend(digit_files.iter().map(|p| ("--data", p.as_path())));
        check_not_input(out, &inputs)?;
        let model = load_checkpoint(checkpoint)?.model;
        if let Some((name, expected)) = expected
            && expected != model.arch()
        {
            return Err(Error::data(
                checkpoint,
                format!(
                    "the checkpoint's architecture {} is not --arch {name} ({})",
                    model.arch().to_json(),
                    expected.to_json()
                ),
            ));
        }
        let digits = Digits::load(data)?;
        let config = SweepConfig::new(
            checkpoint,
            model.arch().clone(),
            (digits.sha256(), None),
            finetune,
            master_seed,
        )?;
        Ok(DigitSweep {
            frozen: Frozen::new(model),
            digits,
            config,
        })
    }

    /// The study its runs fine-tune.
    pub fn study(&self) -> DigitTasks<'_> {
        DigitTasks {
            frozen: &self.frozen,
            digits: &self.digits,
        }
    }
}

/// A sweep of a convolutional network on a multi-task benchmark's tasks
/// (§8): the network, the benchmark's data and the configuration of its
/// records.
pub struct BenchmarkSweep {
    /// The pretrained network.
    pub frozen: Frozen<ConvNet<f32>>,
    /// The benchmark's data.
    pub data: BenchmarkData,
    /// What every record carries.
    pub config: SweepConfig<ConvArch>,
    /// The protocol the checkpoint was pretrained for (§8).
    pub transfer: Transfer,
}

impl BenchmarkSweep {
    /// Refuses settings that do not apply to multi-task networks: every
    /// head is binary, so there is no readout to choose.
    pub fn check_overrides(overrides: &Overrides) -> Result<()> {
        if let Some(readout) = overrides.readout {
            return Err(Error::option(
                "--readout",
                readout.name(),
                "every multi-task head is binary (2 logits); the flag does not apply",
            ));
        }
        Ok(())
    }

    /// Reads the checkpoint at `checkpoint` (of `comod multitask
    /// pretrain`) and the benchmark of `source` for a sweep with
    /// `finetune` and `master_seed` into `out`, which may be neither; the
    /// checkpoint must have been pretrained on that benchmark's tasks, for
    /// `transfer` when given. Its protocol decides the runs (§8): under
    /// `held-out` each starts from a fresh head that every method trains.
    pub fn open(
        checkpoint: &Path,
        source: &BenchmarkSource,
        out: &Path,
        finetune: FinetuneConfig,
        (master_seed, transfer): (u64, Option<Transfer>),
    ) -> Result<BenchmarkSweep> {
        finetune.validate()?;
        let dir = source.dir()?;
        check_not_input(
            out,
            &[("--checkpoint", checkpoint), ("--data", dir.as_path())],
        )?;
        let loaded = load_conv_checkpoint(checkpoint)?;
        let data = source.load()?;
        let provenance = &loaded.provenance;
        if provenance.benchmark != data.benchmark.name() {
            return Err(Error::data(
                checkpoint,
                format!(
                    "pretrained on {}, not on --benchmark {}",
                    provenance.benchmark,
                    data.benchmark.name(),
                ),
            ));
        }
        if provenance.tasks != data.tasks {
            let differs = match provenance.tasks.len() == data.task_count() {
                true => {
                    let (i, (ours, theirs)) = (provenance.tasks.iter().zip(&data.tasks))
                        .enumerate()
                        .find(|(_, (a, b))| a != b)
                        .expect("equal lengths, different lists");
                    format!(
                        "task {} is {ours:?} in the checkpoint and {theirs:?} in the data",
                        i + 1
                    )
                }
                false => format!(
                    "the checkpoint has {} tasks, the data {}",
                    provenance.tasks.len(),
                    data.task_count()
                ),
            };
            return Err(Error::data(
                checkpoint,
                format!(
                    "pretrained on other tasks of {} than --data holds: {differs}",
                    data.benchmark.name()
                ),
            ));
        }
        if let Some(transfer) = transfer
            && transfer != provenance.transfer
        {
            return Err(Error::data(
                checkpoint,
                format!(
                    "was pretrained for --transfer {}, not {}",
                    provenance.transfer.name(),
                    transfer.name()
                ),
            ));
        }
        let transfer = provenance.transfer;
        let finetune = transfer.finetune(finetune);
        let frozen = Frozen::new(loaded.net);
        (frozen.net.arch())
            .check_fits(data.benchmark.name(), data.shape, data.task_count())
            .map_err(|e| Error::data(checkpoint, e.to_string()))?;
        let config = SweepConfig::new(
            checkpoint,
            frozen.net.arch().clone(),
            (data.sha256(), Some(data.benchmark)),
            finetune,
            master_seed,
        )?;
        Ok(BenchmarkSweep {
            frozen,
            data,
            config,
            transfer,
        })
    }

    /// The tasks `list` names: `all` (the tasks the protocol fine-tunes:
    /// the held-out ones under `held-out`), or comma-separated names of
    /// such tasks, each once.
    pub fn tasks(&self, list: &str) -> Result<Vec<usize>> {
        let finetuned = self.transfer.finetuned_tasks(&self.data);
        if list.trim() == "all" {
            return Ok(finetuned);
        }
        let mut tasks = Vec::new();
        for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let t = self.data.task_index(name)?;
            if tasks.contains(&t) {
                return Err(Error::option("--tasks", name, "is listed twice"));
            }
            if !finetuned.contains(&t) {
                return Err(Error::option(
                    "--tasks",
                    name,
                    "is a pretraining task of this held-out checkpoint; only the held-out tasks are fine-tuned",
                ));
            }
            tasks.push(t);
        }
        Ok(tasks)
    }

    /// The study its runs fine-tune.
    pub fn study(&self) -> BenchmarkTasks<'_> {
        BenchmarkTasks {
            frozen: &self.frozen,
            data: &self.data,
        }
    }
}
