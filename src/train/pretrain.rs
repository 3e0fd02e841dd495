//! Pretraining on the general task (§4): Adam, batch 200, lr 1e-4, 4000
//! fresh composites per epoch from the train pool, until the held-out
//! 10-way accuracy reaches 0.90 or the epoch cap; and the provenance a
//! pretrained checkpoint carries.

use serde::{Deserialize, Serialize};

use crate::data::{CompositeKind, CompositeSet, Digits, NOISE_STD, Pool};
use crate::error::{Error, Result};
use crate::net::model::EVAL_ROWS;
use crate::net::{Adam, Arch, Depth, Grads, Model, Modulation, Readout, Workspace};
use crate::rng::{DEFAULT_SEED, derive_seed};
use crate::train::evaluate::{accuracy, heldout_set};

/// Settings of a pretraining run; defaults are §4's.
#[derive(Clone, Debug, PartialEq)]
pub struct PretrainOptions {
    /// Master seed (initialisation, composites, held-out set).
    pub seed: u64,
    /// Epoch cap.
    pub max_epochs: usize,
    /// Composites per epoch.
    pub examples_per_epoch: usize,
    /// Batch size.
    pub batch: usize,
    /// Adam learning rate.
    pub lr: f32,
    /// Stop once the held-out accuracy reaches this.
    pub target_accuracy: f64,
}

impl PretrainOptions {
    /// The settings of §4.
    pub const DEFAULT: PretrainOptions = PretrainOptions {
        seed: DEFAULT_SEED,
        max_epochs: 200,
        examples_per_epoch: 4000,
        batch: 200,
        lr: 1e-4,
        target_accuracy: 0.90,
    };

    /// Checks every setting; the error names the first one out of range
    /// (by its flag where it has one).
    pub fn validate(&self) -> Result<()> {
        for (option, count) in [
            ("--epochs", self.max_epochs),
            ("examples_per_epoch", self.examples_per_epoch),
            ("batch", self.batch),
        ] {
            if count == 0 {
                return Err(Error::option(option, count, "must be at least 1"));
            }
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(Error::option(
                "lr",
                self.lr,
                "a learning rate must be positive",
            ));
        }
        if !(self.target_accuracy > 0.0 && self.target_accuracy <= 1.0) {
            return Err(Error::option(
                "target_accuracy",
                self.target_accuracy,
                "must be in (0, 1]",
            ));
        }
        Ok(())
    }
}

impl Default for PretrainOptions {
    fn default() -> Self {
        PretrainOptions::DEFAULT
    }
}

/// What one epoch did.
#[derive(Clone, Copy, Debug)]
pub struct EpochStats {
    /// Epoch number, from 1.
    pub epoch: usize,
    /// Mean training loss over the epoch's batches.
    pub loss: f64,
    /// Held-out 10-way accuracy after the epoch.
    pub heldout_accuracy: f64,
}

/// Outcome of a pretraining run.
#[derive(Clone, Debug)]
pub struct PretrainReport {
    /// Epochs run.
    pub epochs: usize,
    /// Held-out accuracy after the last epoch.
    pub heldout_accuracy: f64,
    /// True if the target accuracy was reached before the cap.
    pub reached_target: bool,
}

/// A pretraining run in progress, one epoch at a time (§4): the
/// network, Adam state, buffers allocated once, and the held-out set.
pub struct Pretrainer<'d> {
    digits: &'d Digits,
    options: PretrainOptions,
    model: Model<f32>,
    /// c = 0, g = 1 throughout.
    off: Modulation<f32>,
    adam: Adam,
    grads: Grads<f32>,
    ws: Workspace<f32>,
    heldout: CompositeSet,
    /// The batch being trained on and the one being drawn meanwhile.
    current: CompositeSet,
    next: CompositeSet,
    epochs_done: usize,
}

impl<'d> Pretrainer<'d> {
    /// A freshly initialised network of `arch` and everything to train it;
    /// fails, naming the option, when `options` are out of range.
    pub fn new(
        arch: &Arch,
        digits: &'d Digits,
        options: &PretrainOptions,
    ) -> Result<Pretrainer<'d>> {
        options.validate()?;
        let model = Model::<f32>::init(arch, derive_seed(options.seed, &["pretrain".into()]));
        let mut trainer = Pretrainer {
            digits,
            options: options.clone(),
            adam: Adam::new(model.params.len(), options.lr),
            grads: model.zero_grads(),
            ws: model.workspace(options.batch.max(EVAL_ROWS)),
            heldout: heldout_set(digits, options.seed),
            off: Modulation::off(arch),
            model,
            current: CompositeSet::default(),
            next: CompositeSet::default(),
            epochs_done: 0,
        };
        draw_batch(digits, options, 1, 0, &mut trainer.next);
        Ok(trainer)
    }

    fn batches_per_epoch(&self) -> usize {
        self.options.examples_per_epoch.div_ceil(self.options.batch)
    }

    /// Trains one epoch and measures the held-out accuracy. The next batch
    /// is drawn while the current one trains, and only one batch is in
    /// memory at a time, so the model stays in cache.
    pub fn run_epoch(&mut self) -> EpochStats {
        let epoch = self.epochs_done + 1;
        let batches = self.batches_per_epoch();
        let mut loss_sum = 0.0;
        for k in 0..batches {
            std::mem::swap(&mut self.current, &mut self.next);
            let (next_epoch, next_k) = if k + 1 < batches {
                (epoch, k + 1)
            } else {
                (epoch + 1, 0)
            };
            let Pretrainer {
                digits,
                options,
                model,
                off,
                adam,
                grads,
                ws,
                current,
                next,
                ..
            } = self;
            let (loss, ()) = rayon::join(
                || {
                    model.forward(ws, off, &current.images, 0.0);
                    let loss = model.loss(ws, &current.labels, Readout::All);
                    model.backward(ws, Depth::All, grads);
                    adam.step(&mut model.params, &grads.params);
                    loss
                },
                || draw_batch(digits, options, next_epoch, next_k, next),
            );
            loss_sum += loss as f64;
        }
        self.epochs_done = epoch;
        let heldout = &self.heldout;
        let heldout_accuracy = accuracy(
            &self.model,
            &self.off,
            &mut self.ws,
            heldout,
            &heldout.labels,
            Readout::All,
            0.0,
        );
        EpochStats {
            epoch,
            loss: loss_sum / batches as f64,
            heldout_accuracy,
        }
    }

    /// The network as trained so far.
    pub fn model(&self) -> &Model<f32> {
        &self.model
    }

    /// Floating-point operations of one epoch: per training example the
    /// forward pass, the weight gradients (as many multiply-adds) and the
    /// input gradients of layers 2..L; per held-out example a forward pass.
    pub fn flops_per_epoch(&self) -> f64 {
        let forward = self.model.forward_macs() as f64;
        let input_grads = forward - self.model.layer(1).shape.macs() as f64;
        let train = self.options.examples_per_epoch as f64 * (2.0 * forward + input_grads);
        let eval = self.heldout.len() as f64 * forward;
        2.0 * (train + eval)
    }
}

/// Draws batch `k` of `epoch`: examples k·B.. of that epoch's composite set.
fn draw_batch(
    digits: &Digits,
    options: &PretrainOptions,
    epoch: usize,
    k: usize,
    set: &mut CompositeSet,
) {
    let (batch, total) = (options.batch, options.examples_per_epoch);
    let seed = derive_seed(options.seed, &["pretrain-epoch".into(), epoch.into()]);
    let range = k * batch..((k + 1) * batch).min(total);
    set.regenerate(
        digits,
        CompositeKind::General,
        Pool::Train,
        range,
        seed,
        NOISE_STD,
    );
}

/// Pretrains a fresh network of `arch`; `on_epoch` sees every epoch
/// (for progress display). Modulation is off (c = 0, g = 1) throughout.
/// Fails, naming the option, when `options` are out of range.
pub fn pretrain(
    arch: &Arch,
    digits: &Digits,
    options: &PretrainOptions,
    mut on_epoch: impl FnMut(&EpochStats),
) -> Result<(Model<f32>, PretrainReport)> {
    let mut trainer = Pretrainer::new(arch, digits, options)?;
    let mut report = PretrainReport {
        epochs: 0,
        heldout_accuracy: 0.0,
        reached_target: false,
    };
    for _ in 0..options.max_epochs {
        let stats = trainer.run_epoch();
        on_epoch(&stats);
        report = PretrainReport {
            epochs: stats.epoch,
            heldout_accuracy: stats.heldout_accuracy,
            reached_target: stats.heldout_accuracy >= options.target_accuracy,
        };
        if report.reached_target {
            break;
        }
    }
    Ok((trainer.model, report))
}

/// How a pretrained network was made, stored in its checkpoint (§7
/// metadata key [`Provenance::KEY`]) so that a run can tell whether a
/// checkpoint on disk is the one it would make.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    // Fields in alphabetical order: the JSON text, and so the checkpoint's
    // bytes, stay what they were when this record was a JSON map.
    /// sha256 of the digits trained on.
    pub data_sha256: String,
    /// Epochs run.
    pub epochs: usize,
    /// Held-out accuracy after the last epoch.
    pub heldout_accuracy: f64,
    /// True if the target accuracy was reached before the cap.
    pub reached_target: bool,
    /// Master seed of the pretraining.
    pub seed: u64,
    /// comod's version.
    pub version: String,
}

impl Provenance {
    /// The checkpoint metadata key that holds it.
    pub const KEY: &'static str = "pretraining";

    /// The provenance of a network pretrained with `options` on `digits`.
    pub fn new(options: &PretrainOptions, report: &PretrainReport, digits: &Digits) -> Provenance {
        Provenance {
            seed: options.seed,
            epochs: report.epochs,
            heldout_accuracy: report.heldout_accuracy,
            reached_target: report.reached_target,
            data_sha256: digits.sha256().to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
        }
    }

    /// True when the network was pretrained with `seed` on `digits`.
    pub fn matches(&self, seed: u64, digits: &Digits) -> bool {
        self.seed == seed && self.data_sha256 == digits.sha256()
    }
}
