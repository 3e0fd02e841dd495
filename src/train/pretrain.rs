//! Pretraining on the general task (SPEC §4): Adam, batch 200, lr 1e-4,
//! 4000 fresh composites per epoch from the train pool, until the held-out
//! 10-way accuracy reaches 0.90 or the epoch cap.

use crate::data::{CompositeKind, CompositeSet, Digits, NOISE_STD, Pool};
use crate::net::{Adam, Arch, GradTargets, Model, Readout};
use crate::rng::derive_seed;
use crate::train::evaluate::{EVAL_CHUNK, accuracy, heldout_set};

/// Settings of a pretraining run; defaults are SPEC §4's.
#[derive(Clone, Debug)]
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

impl Default for PretrainOptions {
    fn default() -> Self {
        PretrainOptions {
            seed: 0,
            max_epochs: 200,
            examples_per_epoch: 4000,
            batch: 200,
            lr: 1e-4,
            target_accuracy: 0.90,
        }
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

/// Pretrains a fresh network of `arch`; `on_epoch` sees every epoch
/// (for progress display). Modulation is off (c = 0, g = 1) throughout.
pub fn pretrain(
    arch: &Arch,
    digits: &Digits,
    options: &PretrainOptions,
    mut on_epoch: impl FnMut(&EpochStats),
) -> (Model<f32>, PretrainReport) {
    let mut model = Model::<f32>::init(arch, derive_seed(options.seed, &["pretrain".into()]));
    let mut adam = Adam::new(model.params.len(), options.lr);
    let mut grads = model.zero_grads();
    let mut ws = model.workspace(options.batch.max(EVAL_CHUNK));
    let heldout = heldout_set(digits, options.seed);
    let batches = options.examples_per_epoch.div_ceil(options.batch);
    // Batch k of epoch e holds examples k·B.. of that epoch's composite set.
    let draw_batch = |epoch: usize, k: usize, set: &mut CompositeSet| {
        let seed = derive_seed(options.seed, &["pretrain-epoch".into(), epoch.into()]);
        let range = k * options.batch..((k + 1) * options.batch).min(options.examples_per_epoch);
        set.regenerate(
            digits,
            CompositeKind::General,
            Pool::Train,
            range,
            seed,
            NOISE_STD,
        );
    };
    // Double buffer: the next batch is drawn while this one trains, and
    // only one batch is in memory, so the model stays in cache.
    let (mut current, mut next) = (CompositeSet::default(), CompositeSet::default());
    draw_batch(1, 0, &mut next);
    let mut report = PretrainReport {
        epochs: 0,
        heldout_accuracy: 0.0,
        reached_target: false,
    };
    for epoch in 1..=options.max_epochs {
        let mut loss_sum = 0.0;
        for k in 0..batches {
            std::mem::swap(&mut current, &mut next);
            let (loss, ()) = rayon::join(
                || {
                    model.forward(&mut ws, &current.images, 0.0);
                    let loss = model.loss(&mut ws, &current.labels, Readout::All);
                    model.backward(&mut ws, GradTargets::WEIGHTS, &mut grads);
                    adam.step(&mut model.params, &grads.params);
                    loss
                },
                || match (k + 1 < batches, epoch < options.max_epochs) {
                    (true, _) => draw_batch(epoch, k + 1, &mut next),
                    (false, true) => draw_batch(epoch + 1, 0, &mut next),
                    (false, false) => {}
                },
            );
            loss_sum += loss as f64;
        }
        let heldout_accuracy = accuracy(
            &model,
            &mut ws,
            &heldout,
            &heldout.labels,
            Readout::All,
            0.0,
        );
        on_epoch(&EpochStats {
            epoch,
            loss: loss_sum / batches as f64,
            heldout_accuracy,
        });
        report = PretrainReport {
            epochs: epoch,
            heldout_accuracy,
            reached_target: heldout_accuracy >= options.target_accuracy,
        };
        if report.reached_target {
            break;
        }
    }
    (model, report)
}
