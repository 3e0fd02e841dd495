//! Joint pretraining of a multi-task network's shared backbone and all
//! its heads (§8): mean cross-entropy over the heads, fresh training
//! examples every epoch, until the held-out mean accuracy over tasks
//! reaches a target or the epochs run out; and the heads' accuracies.

use crate::conv::heads::Heads;
use crate::conv::heads::head_correct;
use crate::conv::heads::heads_loss;
use crate::conv::net::EVAL_ROWS;
use crate::conv::workspace::ConvWorkspace;
use crate::conv::{ConvArch, ConvNet};
use crate::data::Pool;
use crate::data::benchmark::BenchmarkData;
use crate::data::images::Images;
use crate::error::{Error, Result};
use crate::net::{Adam, Depth};
use crate::rng::derive_seed;

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
    /// Stop once the held-out mean accuracy over tasks reaches this.
    pub target: f64,
    /// Held-out examples.
    pub heldout: usize,
    /// Seed of the initialisation and the data.
    pub seed: u64,
}

/// Most examples per epoch, and most held-out examples, of joint
/// pretraining: a CIFAR-sized set of 32×32×3 images is 3 KiB each, so a
/// million is 3 GiB.
pub const MAX_EXAMPLES: usize = 1_000_000;

impl MultitaskPretrainOptions {
    /// The defaults: up to 30 epochs of 4000 examples in batches of 50 at
    /// learning rate 1e-3, stopping at a held-out mean accuracy of 0.9
    /// on 1000 examples.
    pub const DEFAULT: MultitaskPretrainOptions = MultitaskPretrainOptions {
        max_epochs: 30,
        examples: 4000,
        batch: 50,
        lr: 1e-3,
        target: 0.9,
        heldout: 1000,
        seed: 0,
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
        if !(0.0..=1.0).contains(&self.target) {
            return Err(Error::option("--target", self.target, "must lie in [0, 1]"));
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
    /// Held-out accuracy per task.
    pub accuracy: Vec<f64>,
}

impl MultitaskEpoch {
    /// Mean held-out accuracy over tasks.
    pub fn mean_accuracy(&self) -> f64 {
        self.accuracy.iter().sum::<f64>() / self.accuracy.len() as f64
    }
}

/// Pretrains a fresh network of `arch` on all of `data`'s tasks jointly;
/// `on_epoch` sees each epoch as it ends. Same seed, same network, on any
/// number of threads (§6).
pub fn pretrain_multitask(
    data: &BenchmarkData,
    arch: &ConvArch,
    options: &MultitaskPretrainOptions,
    on_epoch: &mut dyn FnMut(&MultitaskEpoch),
) -> Result<(ConvNet<f32>, Vec<MultitaskEpoch>)> {
    options.validate()?;
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
    let mut epochs = Vec::new();
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
            net.forward(&mut ws, images, options.batch, None, None);
            dlogits.resize(ws.logits().len(), 0.0);
            let loss = heads_loss(ws.logits(), tasks, labels, Heads::All, &mut dlogits);
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
            grads.params.fill(0.0);
            net.backward(&mut ws, &dlogits, Depth::All, &mut grads);
            adam.step(&mut net.params, &grads.params);
        }
        let accuracy = task_accuracies(&net, &heldout, tasks);
        let stats = MultitaskEpoch {
            epoch,
            loss: total / batches as f64,
            accuracy,
        };
        on_epoch(&stats);
        let done = stats.mean_accuracy() >= options.target;
        epochs.push(stats);
        if done {
            break;
        }
    }
    Ok((net, epochs))
}

/// The held-out accuracy of every head of `net` on `set` (modulation
/// off), in passes of [`EVAL_ROWS`] rows.
pub fn task_accuracies(net: &ConvNet<f32>, set: &Images, tasks: usize) -> Vec<f64> {
    let len = net.arch().input.len();
    let n = set.len(tasks);
    let mut ws: ConvWorkspace<f32> = net.workspace();
    let mut logits = Vec::with_capacity(n * net.arch().logits());
    for start in (0..n).step_by(EVAL_ROWS) {
        let rows = EVAL_ROWS.min(n - start);
        net.forward(
            &mut ws,
            &set.images[start * len..(start + rows) * len],
            rows,
            None,
            None,
        );
        logits.extend_from_slice(ws.logits());
    }
    (0..tasks)
        .map(|t| head_correct(&logits, tasks, &set.labels, t) as f64 / n as f64)
        .collect()
}
