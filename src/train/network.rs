//! The seam between fine-tuning and the networks (§4, §8): what the
//! learners, the gain estimate and the protocols need of a network, once.
//! The MLP of §2 ([`crate::net::Model`]) and the convolutional network of
//! §8 ([`crate::conv::ConvNet`]) implement it, each with its own kernels
//! and its own order of summation (so each keeps its bits); everything
//! above it — learners, gain, protocols, runs, sweeps — is written once.

use std::fmt::Debug;
use std::ops::Range;

use crate::net::{Depth, GainRule, Grads, Modulated, Modulation};
use crate::train::fault::Fault;

/// A network that fine-tuning drives (§4).
pub trait Network: Modulated + Clone + Send + Sync + Sized {
    /// Which logits a task reads: the MLP's pair or 10-way readout (§2),
    /// the convolutional network's head of a task (§8).
    type Readout: Copy + Debug + Send + Sync;
    /// The frozen network's weights prepared once for its fast paths
    /// (the MLP's packed kernel layers, §3).
    type Plan: Send + Sync;
    /// What the frozen network makes of a fixed set of examples, computed
    /// once (§4): the activities evaluations and steps start from.
    type Cache: Send + Sync;
    /// The buffers of training steps (forward and backward passes).
    type Trainer: Send;
    /// The buffers of evaluations.
    type Evaluator: Send;
    /// The buffers of gain estimates.
    type GainScratch: Send;

    /// Prepares the frozen network's fast paths.
    fn plan(&self) -> Self::Plan;
    /// Values of one example's input.
    fn input_len(&self) -> usize;
    /// Every parameter, flat.
    fn params(&self) -> &[f32];
    /// Every parameter, flat, to be trained.
    fn params_mut(&mut self) -> &mut [f32];
    /// What retraining to `depth` (`Readout` or `All`) trains for
    /// `readout`, in parameter order: the ranges of the flat buffer, each
    /// marked when it holds weights (under the L1 term, §2) rather than
    /// biases.
    fn trained_params(&self, depth: Depth, readout: Self::Readout) -> Vec<ParamRange>;

    /// Buffers for training batches of up to `batch` examples.
    fn trainer(&self, batch: usize) -> Self::Trainer;
    /// One training pass on `batch`: forward at modulator value `m` with
    /// `modulation` (`None`: off), the mean cross-entropy of `readout`,
    /// backward to `depth` with g held constant. Fails, naming the tensor,
    /// when the forward pass or the loss is not finite (§6).
    fn gradients<'t>(
        &self,
        trainer: &'t mut Self::Trainer,
        batch: Batch<'_>,
        modulation: Option<&Modulation<f32>>,
        m: f32,
        readout: Self::Readout,
        depth: Depth,
    ) -> Result<&'t mut Grads<f32>, Fault>;
    /// Floating-point operations of that pass on `batch` (from its cached
    /// activity, if it carries one) backward to `depth`.
    fn step_flops(&self, batch: Batch<'_>, depth: Depth) -> f64;

    /// What the frozen network makes of `inputs` (`[n, input]`), at
    /// modulator value `m` with the modulation off.
    fn cache(frozen: &Frozen<Self>, inputs: &[f32], m: f32) -> Self::Cache;
    /// The cache of the examples at `rows`, in that order.
    fn select(cache: &Self::Cache, rows: &[usize]) -> Self::Cache;
    /// The frozen activity from which the training steps of a method
    /// that trains to `depth` start, for the examples `rows` of a cached
    /// set, if the network keeps one (the MLP's, §4): F(a_ℓ) for the
    /// coupling, F(a_{L−1}) with the modulation off for the readout alone,
    /// none when every layer is trained. The layers below what a method
    /// trains never change, so a step from their activity computes what a
    /// whole forward pass would, bit for bit.
    fn cached_activity(cache: &Self::Cache, rows: Range<usize>, depth: Depth) -> Option<&[f32]>;
    /// The same activity of every example of a training sequence
    /// (`inputs`, `[n, input]`) at modulator value `m`, in one pass before
    /// the first step: what the `online` protocol's steps start from,
    /// since they see each example once and would otherwise run the frozen
    /// layers per batch (§4).
    fn step_activity(&self, inputs: &[f32], depth: Depth, m: f32) -> Option<StepActivity>;

    /// Buffers for evaluations.
    fn evaluator(&self) -> Self::Evaluator;
    /// The logits of the frozen network under `modulation` at `m` on
    /// `set` (the modulation methods, §4); only `readout`'s are read.
    fn evaluate_modulated<'e>(
        frozen: &Frozen<Self>,
        evaluator: &'e mut Self::Evaluator,
        set: &EvalSet<Self>,
        modulation: &Modulation<f32>,
        readout: Self::Readout,
        m: f32,
    ) -> Result<&'e [f32], Fault>;
    /// The logits of this network, retrained to `depth`, with the
    /// modulation off at `m` on `set`: from the set's frozen gated
    /// activity when only the readout changed (§4).
    fn evaluate_retrained<'e>(
        &self,
        evaluator: &'e mut Self::Evaluator,
        set: &EvalSet<Self>,
        depth: Depth,
        readout: Self::Readout,
        m: f32,
    ) -> Result<&'e [f32], Fault>;
    /// Floating-point operations of evaluating one example for a method
    /// that trains to `depth`.
    fn evaluation_flops(&self, depth: Depth) -> f64;
    /// Examples whose `readout` logits pick their label.
    fn count_correct(&self, logits: &[f32], labels: &[u8], readout: Self::Readout) -> usize;
    /// The examples of `set` whose `readout` logits pick their label, for
    /// this network retrained to its readout only (`retrain-last`, §4),
    /// modulation off at `m`, where the network counts them without
    /// writing its logits; `None` where it does not (the caller then
    /// counts from [`Network::evaluate_retrained`], which also names any
    /// fault, §6).
    fn readout_correct(
        &self,
        _evaluator: &mut Self::Evaluator,
        _set: &EvalSet<Self>,
        _readout: Self::Readout,
        _m: f32,
    ) -> Option<usize> {
        None
    }
    /// The mean cross-entropy of `readout` over the examples, in f64.
    fn mean_loss(&self, logits: &[f32], labels: &[u8], readout: Self::Readout) -> f64;

    /// Buffers for gain estimates on up to `trials` trials.
    fn gain_scratch(&self, trials: usize) -> Self::GainScratch;
    /// The batch gain (§3): the mean over the `trials` of their per-trial
    /// gains with `coupling`, for the modulator samples `[trials, T]`,
    /// under `rule`; `variance` is the σ² of the compensated factor (0:
    /// none). Returns `[N_gain]`.
    #[allow(clippy::too_many_arguments)]
    fn batch_gain<'s>(
        frozen: &Frozen<Self>,
        scratch: &'s mut Self::GainScratch,
        coupling: &[f32],
        trials: Batch<'_>,
        modulator: &[f32],
        variance: f32,
        rule: GainRule,
    ) -> &'s [f32];
    /// Floating-point operations of one trial of `samples` samples.
    fn trial_flops(frozen: &Frozen<Self>, samples: usize) -> f64;
}

/// A range of the flat parameter buffer that a method trains.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamRange {
    /// Where it lies.
    pub range: Range<usize>,
    /// Weights (under the L1 term) rather than biases.
    pub weights: bool,
}

/// A pretrained network as every run of it shares it: read only, with
/// its fast paths prepared once.
pub struct Frozen<N: Network> {
    /// The network.
    pub net: N,
    /// Its prepared fast paths.
    pub plan: N::Plan,
}

impl<N: Network> Frozen<N> {
    /// Freezes `net`.
    pub fn new(net: N) -> Frozen<N> {
        let plan = net.plan();
        Frozen { net, plan }
    }
}

/// A batch of training examples: inputs `[B, input]` and their labels as
/// the readout reads them, with the frozen activity the steps start from
/// when it was computed beforehand ([`Network::cached_activity`],
/// [`Network::step_activity`]).
#[derive(Clone, Copy, Debug)]
pub struct Batch<'a> {
    /// Inputs.
    pub inputs: &'a [f32],
    /// Labels.
    pub labels: &'a [u8],
    /// The frozen activity of the examples from which the steps start,
    /// if any.
    pub activity: Option<&'a [f32]>,
}

/// The frozen activity of a whole training sequence from which its steps
/// start ([`Network::step_activity`], §4 `online`), with what computing it
/// cost.
#[derive(Clone, Debug)]
pub struct StepActivity {
    /// `[n, width]`, one row per example.
    pub values: Vec<f32>,
    /// Floating-point operations of the pass that computed it.
    pub flops: f64,
}

/// Labelled examples: inputs `[n, input]` (canvases, images) and one label
/// per example as the task's readout reads it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Examples {
    /// Inputs, `[n, input]`.
    pub inputs: Vec<f32>,
    /// Labels, `[n]`.
    pub labels: Vec<u8>,
}

impl Examples {
    /// Number of examples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Batch `k` of `size` examples, with its rows of the sequence's
    /// frozen `activity` (`[n, width]`) if there is one.
    pub fn batch<'a>(&'a self, k: usize, size: usize, activity: Option<&'a [f32]>) -> Batch<'a> {
        let width = self.inputs.len() / self.len().max(1);
        let rows = k * size..(k + 1) * size;
        Batch {
            inputs: &self.inputs[rows.start * width..rows.end * width],
            labels: &self.labels[rows.clone()],
            activity: activity.map(|all| {
                let width = all.len() / self.len();
                &all[rows.start * width..rows.end * width]
            }),
        }
    }
}

/// The rows `rows` of `all` (rows of `width` values), in that order.
pub fn gather_rows(all: &[f32], width: usize, rows: &[usize]) -> Vec<f32> {
    rows.iter()
        .flat_map(|&r| &all[r * width..(r + 1) * width])
        .copied()
        .collect()
}

/// A fixed labelled set with what the frozen network makes of it,
/// computed once and shared by every run that measures on it (§4).
pub struct EvalSet<N: Network> {
    examples: Examples,
    cache: N::Cache,
}

impl<N: Network> EvalSet<N> {
    /// The set of `examples` with the frozen network's activities at
    /// modulator value `m`.
    pub fn new(frozen: &Frozen<N>, examples: Examples, m: f32) -> EvalSet<N> {
        let cache = N::cache(frozen, &examples.inputs, m);
        EvalSet { examples, cache }
    }

    /// The examples at `rows`, in that order, with their activities (no
    /// forward pass: a data set's halves, §4).
    pub fn select(&self, rows: &[usize]) -> EvalSet<N> {
        EvalSet {
            examples: Examples {
                inputs: gather_rows(&self.examples.inputs, self.width(), rows),
                labels: rows.iter().map(|&r| self.examples.labels[r]).collect(),
            },
            cache: N::select(&self.cache, rows),
        }
    }

    /// Values per example's input.
    fn width(&self) -> usize {
        self.examples.inputs.len() / self.len().max(1)
    }

    /// The set in training batches of `size` examples, in order (the last
    /// may be smaller), each with the cached activity from which steps to
    /// `depth` start (§4, `dataset`).
    pub fn batches(&self, size: usize, depth: Depth) -> impl Iterator<Item = Batch<'_>> {
        let width = self.width();
        (0..self.len().div_ceil(size)).map(move |k| {
            let rows = k * size..((k + 1) * size).min(self.len());
            Batch {
                inputs: &self.examples.inputs[rows.start * width..rows.end * width],
                labels: &self.examples.labels[rows.clone()],
                activity: N::cached_activity(&self.cache, rows, depth),
            }
        })
    }

    /// Number of examples.
    pub fn len(&self) -> usize {
        self.examples.len()
    }

    /// True when the set has no examples.
    pub fn is_empty(&self) -> bool {
        self.examples.is_empty()
    }

    /// The inputs, `[n, input]`.
    pub fn inputs(&self) -> &[f32] {
        &self.examples.inputs
    }

    /// The labels, as the readout reads them.
    pub fn labels(&self) -> &[u8] {
        &self.examples.labels
    }

    /// What the frozen network made of the set.
    pub fn cache(&self) -> &N::Cache {
        &self.cache
    }
}
