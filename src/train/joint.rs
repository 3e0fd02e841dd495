//! Pretraining of a multi-task network's shared backbone and heads (§8):
//! mean cross-entropy over the heads of the pretraining tasks (every task
//! under `joint`, the ones not held out under `held-out`), fresh training
//! examples every epoch, until the held-out mean accuracy over those tasks
//! reaches a target, or (no target) stops improving, or the epochs run
//! out; and the heads' accuracies.

use crate::conv::heads::{head_correct, subset_loss};
use crate::conv::net::EVAL_ROWS;
use crate::conv::workspace::ConvWorkspace;
use crate::conv::{ConvArch, ConvNet};
use crate::data::Pool;
use crate::data::benchmark::BenchmarkData;
use crate::data::images::Images;
use crate::error::{Error, Result};
use crate::net::{Adam, Depth, Grads};
use crate::rng::derive_seed;
use crate::train::transfer::Transfer;

/// Settings of a multi-task pretraining.
#[derive(Clone, Debug, PartialEq)]
pub struct MultitaskPretrainOptions {
    /// Most epochs.
    pub max_epochs: usize,
    /// Fresh training examples per epoch.
    pub examples: usize,
    /// Batch size.
    pub batch: usize,
    /// Adam's learning rate.
    pub lr: f32,
    /// Stop once the held-out mean accuracy over the pretraining tasks
    /// reaches this; `None`: train to convergence ([`PLATEAU_EPOCHS`]).
    pub target: Option<f64>,
    /// Held-out examples.
    pub heldout: usize,
    /// Seed of the initialisation and the data.
    pub seed: u64,
    /// Which tasks are pretrained (§8).
    pub transfer: Transfer,
}

/// Convergence without a target (§8, `joint`): training stops once the
/// held-out mean accuracy has not exceeded its best by [`PLATEAU_GAIN`]
/// for this many epochs.
pub const PLATEAU_EPOCHS: usize = 3;
/// The smallest gain in held-out mean accuracy that counts as progress.
pub const PLATEAU_GAIN: f64 = 0.002;

/// Most examples per epoch, and most held-out examples, of joint
/// pretraining: a CIFAR-sized set of 32×32×3 images is 3 KiB each, so a
/// million is 3 GiB.
pub const MAX_EXAMPLES: usize = 1_000_000;

impl MultitaskPretrainOptions {
    /// The defaults: `held-out`, to convergence ([`PLATEAU_EPOCHS`]) on
    /// 1000 held-out examples, up to 30 epochs of 4000 examples in batches
    /// of 50 at learning rate 1e-3.
    pub const DEFAULT: MultitaskPretrainOptions = MultitaskPretrainOptions {
        max_epochs: 30,
        examples: 4000,
        batch: 50,
        lr: 1e-3,
        target: None,
        heldout: 1000,
        seed: 0,
        transfer: Transfer::HeldOut,
    };

    /// Checks the settings, naming the flag at fault.
    pub fn validate(&self) -> Result<()> {
        let positive = [
            ("--epochs", self.max_epochs),
            ("--examples", self.examples),
            ("--batch-size", self.batch),
            ("--heldout", self.heldout),
        ];
        for (flag, value) in positive {
            if value == 0 {
                return Err(Error::option(flag, value, "must be at least 1"));
            }
        }
        // Examples of an epoch and the held-out set are held in memory.
        for (flag, value) in [("--examples", self.examples), ("--heldout", self.heldout)] {
            if value > MAX_EXAMPLES {
                return Err(Error::option(
                    flag,
                    value,
                    format!("is more than {MAX_EXAMPLES} examples (they are held in memory)"),
                ));
            }
        }
        if self.batch > self.examples {
            return Err(Error::option(
                "--batch-size",
                self.batch,
                "is larger than --examples",
            ));
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(Error::option("--lr", self.lr, "must be a positive number"));
        }
        if let Some(target) = self.target
            && !(0.0..=1.0).contains(&target)
        {
            return Err(Error::option("--target", target, "must lie in [0, 1]"));
        }
        Ok(())
    }
}

/// One epoch's numbers.
#[derive(Clone, Debug, PartialEq)]
pub struct MultitaskEpoch {
    /// Epoch, from 1.
    pub epoch: usize,
    /// Mean training loss.
    pub loss: f64,
    /// Held-out accuracy per task (every head, trained or not).
    pub accuracy: Vec<f64>,
    /// Mean held-out accuracy over the pretraining tasks.
    pub mean: f64,
}

impl MultitaskEpoch {
    /// Mean held-out accuracy over the pretraining tasks.
    pub fn mean_accuracy(&self) -> f64 {
        self.mean
    }
}

/// Pretrains a fresh network of `arch` on `data`'s pretraining tasks of
/// `options.transfer` (§8): the loss reads only their labels, so a
/// held-out task's labels never reach the network. `on_epoch` sees each
/// epoch as it ends. Same seed, same network, on any number of threads
/// (§6).
pub fn pretrain_multitask(
    data: &BenchmarkData,
    arch: &ConvArch,
    options: &MultitaskPretrainOptions,
    on_epoch: &mut dyn FnMut(&MultitaskEpoch),
) -> Result<(ConvNet<f32>, Vec<MultitaskEpoch>)> {
    let tasks = options.transfer.pretraining_tasks(data);
    pretrain_on(data, arch, &tasks, options, on_epoch)
}

/// Pretrains a fresh network of `arch` on `data`'s tasks `pretrained`
/// only (their labels alone reach the loss; a single task: the
/// single-task network of the `joint` headroom, §8), stopping by the
/// mean held-out accuracy over them as `options` says.
pub fn pretrain_on(
    data: &BenchmarkData,
    arch: &ConvArch,
    pretrained: &[usize],
    options: &MultitaskPretrainOptions,
    on_epoch: &mut dyn FnMut(&MultitaskEpoch),
) -> Result<(ConvNet<f32>, Vec<MultitaskEpoch>)> {
    options.validate()?;
    assert!(!pretrained.is_empty(), "at least one task is pretrained");
    arch.check_fits(data.benchmark.name(), data.shape, data.task_count())?;
    let mut net = ConvNet::<f32>::init(arch, options.seed);
    let heldout = data.draw(
        Pool::Test,
        options.heldout,
        derive_seed(options.seed, &["heldout".into()]),
    );
    let mut adam = Adam::new(net.params.len(), options.lr);
    let mut ws = net.workspace();
    let mut grads = net.zero_grads();
    let mut dlogits = Vec::new();
    let (tasks, len) = (arch.tasks, arch.input.len());
    let mut epochs: Vec<MultitaskEpoch> = Vec::new();
    for epoch in 1..=options.max_epochs {
        let set = data.draw(
            Pool::Train,
            options.examples,
            derive_seed(options.seed, &["epoch".into(), epoch.into()]),
        );
        let mut total = 0.0;
        let batches = options.examples / options.batch;
        for b in 0..batches {
            let rows = b * options.batch..(b + 1) * options.batch;
            let images = &set.images[rows.start * len..rows.end * len];
            let labels = &set.labels[rows.start * tasks..rows.end * tasks];
            let loss = pretraining_gradient(
                &net,
                &mut ws,
                (images, labels, options.batch),
                pretrained,
                &mut dlogits,
                &mut grads,
            );
            if !loss.is_finite() {
                return Err(Error::option(
                    "--lr",
                    options.lr,
                    format!(
                        "pretraining diverged at epoch {epoch}, batch {}: the loss is {loss}; lower it",
                        b + 1
                    ),
                ));
            }
            total += loss as f64;
            adam.step(&mut net.params, &grads.params);
        }
        let accuracy = task_accuracies(&net, &heldout, tasks);
        let mean = pretrained.iter().map(|&t| accuracy[t]).sum::<f64>() / pretrained.len() as f64;
        let stats = MultitaskEpoch {
            epoch,
            loss: total / batches as f64,
            accuracy,
            mean,
        };
        on_epoch(&stats);
        let done = match options.target {
            Some(target) => mean >= target,
            None => plateaued(&epochs, mean),
        };
        epochs.push(stats);
        if done {
            break;
        }
    }
    Ok((net, epochs))
}

/// One step's gradient of a multi-task pretraining (§8) into `grads`:
/// the forward pass of `rows` images, the mean cross-entropy of the heads
/// `pretrained` reads (labels `[rows, tasks]`) and the backward pass
/// through every stage. Returns the loss (not finite when the step
/// diverged; the gradient is then meaningless).
pub fn pretraining_gradient(
    net: &ConvNet<f32>,
    ws: &mut ConvWorkspace<f32>,
    (images, labels, rows): (&[f32], &[u8], usize),
    pretrained: &[usize],
    dlogits: &mut Vec<f32>,
    grads: &mut Grads<f32>,
) -> f32 {
    net.forward(ws, images, rows, None, None);
    dlogits.resize(ws.logits().len(), 0.0);
    let loss = subset_loss(ws.logits(), net.arch().tasks, labels, pretrained, dlogits);
    grads.params.fill(0.0);
    net.backward(ws, dlogits, Depth::All, grads);
    loss
}

/// Whether an epoch reaching `mean` ends a pretraining without a target:
/// the best of the last [`PLATEAU_EPOCHS`] epochs (this one included)
/// gains less than [`PLATEAU_GAIN`] over the best before them.
fn plateaued(before: &[MultitaskEpoch], mean: f64) -> bool {
    let recent = PLATEAU_EPOCHS - 1;
    if before.len() < PLATEAU_EPOCHS {
        return false;
    }
    let (earlier, last) = before.split_at(before.len() - recent);
    let best_before = earlier.iter().map(|e| e.mean).fold(f64::MIN, f64::max);
    let best_recent = last.iter().map(|e| e.mean).fold(mean, f64::max);
    best_recent < best_before + PLATEAU_GAIN
}

/// The held-out accuracy of every head of `net` on `set` (modulation
/// off), in passes of [`EVAL_ROWS`] rows.
pub fn task_accuracies(net: &ConvNet<f32>, set: &Images, tasks: usize) -> Vec<f64> {
    let len = net.arch().input.len();
    let n = set.len(tasks);
    let (mut ws, pass): (ConvWorkspace<f32>, _) = (net.workspace(), net.evaluation());
    let mut logits = Vec::with_capacity(n * net.arch().logits());
    for start in (0..n).step_by(EVAL_ROWS) {
        let rows = EVAL_ROWS.min(n - start);
        pass.forward(
            &mut ws,
            &set.images[start * len..(start + rows) * len],
            rows,
        );
        logits.extend_from_slice(ws.logits());
    }
    (0..tasks)
        .map(|t| head_correct(&logits, tasks, &set.labels, t) as f64 / n as f64)
        .collect()
}
