//! Learners (§4): each method's training and evaluation in one place. A
//! learner steps on batches, reports accuracy and loss on a labelled set,
//! and can snapshot and restore what it trains; a protocol
//! ([`crate::train::protocol`]) drives it without knowing the method.
//!
//! Two kinds cover the four methods: [`ModulationLearner`] trains the
//! coupling of the shared frozen network (with the §3 gain for
//! `stochastic`), [`RetrainLearner`] trains a copy of the network's weights
//! (all of them, or the readout's).

use std::ops::Range;

use rand::RngExt;

use crate::kernel::Body;
use crate::net::Depth;
use crate::net::layers::l1_backward;
use crate::net::{Adam, Grads, Model, Modulation, Readout, Workspace};
use crate::rng::rng_for;
use crate::train::config::FinetuneConfig;
use crate::train::evaluate::{EvalSet, Evaluator, Start};
use crate::train::fault::{Fault, check_finite, check_scalar, forward_fault};
use crate::train::frozen::FrozenNetwork;
use crate::train::gain::{GainEstimator, GainState};
use crate::train::method::Method;
use crate::train::options::CouplingParam;

/// A batch of training examples: canvases `[B, 784]` and their labels as
/// the readout reads them, with the frozen network's activity F(a_ℓ)
/// when it was computed once for a fixed data set (§4).
#[derive(Clone, Copy, Debug)]
pub struct Batch<'a> {
    /// Canvases.
    pub images: &'a [f32],
    /// Labels.
    pub labels: &'a [u8],
    /// F(a_ℓ) of the canvases, `[B, N_ℓ]`, if known: the modulation
    /// methods then start their steps and gain estimates there.
    pub activity: Option<&'a [f32]>,
}

/// What a learner trains, copied out so that it can be put back (early
/// stopping keeps the best state; task switching restores a task's).
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    /// The trained values: c, or the trained weights and biases.
    trained: Vec<f32>,
    /// The gain and its running state, for the stochastic method.
    gain: Option<(Vec<f32>, GainState)>,
}

/// One method's fine-tuning of one task (§4).
pub trait Learner {
    /// Prepares what depends on the first training batch, before the first
    /// measurement: the stochastic method estimates its first gain on it.
    /// Fails on a numerical fault of the gain.
    fn begin(&mut self, first: Batch<'_>) -> Result<(), Fault>;

    /// One update on `batch`: forward at m = μ_m, mean cross-entropy plus
    /// λ‖θ‖₁ of what is trained, backward, Adam (§4); the stochastic method
    /// then re-estimates its gain on the same batch with the new c. Fails,
    /// naming the tensor, when the forward pass, the loss or the gain turns
    /// non-finite or the gain is all zero (§6).
    fn step(&mut self, batch: Batch<'_>) -> Result<(), Fault>;

    /// Evaluates the current state on `set`: the logits are left in the
    /// returned evaluator, to be read with the returned readout.
    fn evaluate(&mut self, set: &EvalSet) -> (&Evaluator, Readout);

    /// Accuracy on `set` in the current state; fails when the evaluation
    /// turned non-finite (§6).
    fn accuracy(&mut self, set: &EvalSet) -> Result<f32, Fault> {
        let (evaluator, readout) = self.evaluate(set);
        if let Some(fault) = evaluator.fault() {
            return Err(fault);
        }
        Ok(evaluator.accuracy(set.labels(), readout))
    }

    /// The validation loss on `set` in the current state (§4): the mean
    /// cross-entropy of the readout, without the L1 term, which is a
    /// penalty on the parameters and not a measure of fit (as the
    /// companion code validates).
    fn loss(&mut self, set: &EvalSet) -> Result<f64, Fault> {
        let (evaluator, readout) = self.evaluate(set);
        if let Some(fault) = evaluator.fault() {
            return Err(fault);
        }
        let loss = evaluator.loss(set.labels(), readout);
        check_scalar("validation loss", loss)?;
        Ok(loss)
    }

    /// The current trained state.
    fn snapshot(&self) -> Snapshot;

    /// Puts back a state taken by [`Learner::snapshot`] of this learner.
    fn restore(&mut self, snapshot: &Snapshot);

    /// The network as the learner computes it now: the shared frozen one
    /// for the modulation methods, the learner's own copy for retraining.
    fn network(&self) -> &Model<f32>;

    /// The current coupling and gain (off for the retraining methods).
    fn modulation(&self) -> &Modulation<f32>;

    /// Floating-point operations done so far (for throughput reports).
    fn flops(&self) -> f64;
}

/// The learner of `method` for a task read by `readout`, on the shared
/// `frozen` network, seeded by the run's `seed` (§4, §6). The coupling
/// starts i.i.d. U[0.9, 1.1] for the modulation methods.
pub fn learner<'a>(
    method: Method,
    frozen: &'a FrozenNetwork,
    config: &FinetuneConfig,
    readout: Readout,
    seed: u64,
) -> Box<dyn Learner + 'a> {
    match method.trains() {
        Depth::Coupling => Box::new(ModulationLearner::new(
            method, frozen, config, readout, seed,
        )),
        Depth::All | Depth::Readout => {
            Box::new(RetrainLearner::new(method, frozen, config, readout))
        }
    }
}

/// What every learner holds: its optimiser, buffers and settings.
struct Common {
    adam: Adam,
    ws: Workspace<f32>,
    grads: Grads<f32>,
    evaluator: Evaluator,
    readout: Readout,
    lambda: f32,
    m: f32,
    /// Flops of one training step (forward, weight and input gradients).
    step_flops: f64,
    /// Flops of one example's evaluation, from the deepest frozen activity.
    evaluation_flops: f64,
    flops: f64,
}

impl Common {
    /// For `method` training `trained` values and evaluating from layer
    /// `evaluated_from` up.
    fn new(
        method: Method,
        frozen: &FrozenNetwork,
        config: &FinetuneConfig,
        readout: Readout,
        (trained, evaluated_from): (usize, usize),
    ) -> Self {
        let model = &frozen.model;
        Common {
            adam: Adam::new(trained, method.learning_rate(&config.lr)),
            ws: model.workspace(config.batch_size),
            grads: model.zero_grads(),
            evaluator: Evaluator::new(model, Body::detect()),
            readout,
            lambda: config.lambda,
            m: config.modulator_mean,
            step_flops: 6.0 * config.batch_size as f64 * frozen.macs_from(1),
            evaluation_flops: 2.0 * frozen.macs_from(evaluated_from),
            flops: 0.0,
        }
    }
}

/// The first non-finite tensor of the last forward pass in `ws`, or a
/// non-finite `loss` (§6).
fn check_forward(model: &Model<f32>, ws: &Workspace<f32>, loss: f32) -> Result<(), Fault> {
    match forward_fault(model, ws) {
        Some(fault) => Err(fault),
        None => check_scalar("training loss", loss as f64),
    }
}

/// Fails when the gain is not finite or is zero for every neuron (then
/// nothing reaches the readout, §3).
fn check_gain(gain: &[f32]) -> Result<(), Fault> {
    check_finite("gain g", gain)?;
    if gain.iter().all(|&g| g == 0.0) {
        return Err(Fault {
            tensor: "gain g".into(),
            problem: "is zero for every neuron (no neuron covaries with the modulator)".into(),
        });
    }
    Ok(())
}

/// The weights and biases of the readout layer in the parameter buffer.
fn readout_range(model: &Model<f32>) -> Range<usize> {
    let last = model.layer(model.arch().depth());
    last.weights.start..last.bias.end
}

/// `stochastic` and `deterministic`: train c of the shared frozen network.
pub struct ModulationLearner<'a> {
    frozen: &'a FrozenNetwork,
    modulation: Modulation<f32>,
    /// Under `--coupling-param square` (§3): what is trained instead of c.
    root: Option<SquareCoupling>,
    /// The §3 gain (`stochastic` only).
    gain: Option<GainEstimator>,
    common: Common,
}

/// The non-negative coupling c = w² (§3): w is trained, with its gradient.
struct SquareCoupling {
    w: Vec<f32>,
    grad: Vec<f32>,
}

impl SquareCoupling {
    /// w = √c, so that c starts where the linear coupling does.
    fn new(coupling: &[f32]) -> SquareCoupling {
        SquareCoupling {
            w: coupling.iter().map(|c| c.sqrt()).collect(),
            grad: vec![0.0; coupling.len()],
        }
    }

    /// c ← w².
    fn write_coupling(&self, coupling: &mut [f32]) {
        for (c, &w) in coupling.iter_mut().zip(&self.w) {
            *c = w * w;
        }
    }
}

impl<'a> ModulationLearner<'a> {
    fn new(
        method: Method,
        frozen: &'a FrozenNetwork,
        config: &FinetuneConfig,
        readout: Readout,
        seed: u64,
    ) -> Self {
        let arch = frozen.model.arch();
        // Trains c; evaluates from F(a_ℓ), cached per set.
        let sizes = (arch.size(arch.modulated_layer), arch.modulated_layer + 1);
        let common = Common::new(method, frozen, config, readout, sizes);
        let mut modulation = Modulation::off(arch);
        let mut rng = rng_for(seed, &["coupling".into()]);
        modulation
            .coupling
            .iter_mut()
            .for_each(|c| *c = rng.random_range(0.9..1.1));
        let root = (config.coupling_param == CouplingParam::Square)
            .then(|| SquareCoupling::new(&modulation.coupling));
        let gain = method
            .gates()
            .then(|| GainEstimator::new(frozen, config, seed));
        ModulationLearner {
            frozen,
            modulation,
            root,
            gain,
            common,
        }
    }

    fn estimate_gain(&mut self, batch: Batch<'_>) -> Result<(), Fault> {
        if let Some(gain) = &mut self.gain {
            self.common.flops += gain.estimate(self.frozen, &mut self.modulation, batch);
            check_gain(&self.modulation.gain)?;
        }
        Ok(())
    }
}

impl Learner for ModulationLearner<'_> {
    fn begin(&mut self, first: Batch<'_>) -> Result<(), Fault> {
        self.estimate_gain(first)
    }

    fn step(&mut self, batch: Batch<'_>) -> Result<(), Fault> {
        let c = &mut self.common;
        let model = &self.frozen.model;
        match batch.activity {
            Some(activity) => model.forward_from(
                &mut c.ws,
                &self.modulation,
                model.arch().modulated_layer,
                activity,
                c.m,
            ),
            None => model.forward(&mut c.ws, &self.modulation, batch.images, c.m),
        }
        let loss = model.loss(&mut c.ws, batch.labels, c.readout);
        check_forward(model, &c.ws, loss)?;
        model.backward(&mut c.ws, Depth::Coupling, &mut c.grads);
        match &mut self.root {
            None => {
                l1_backward(&self.modulation.coupling, c.lambda, &mut c.grads.coupling);
                c.adam
                    .step(&mut self.modulation.coupling, &c.grads.coupling);
            }
            Some(root) => {
                // c = w²: dL/dw = 2w·dL/dc.
                for ((g, &w), &dc) in root.grad.iter_mut().zip(&root.w).zip(&c.grads.coupling) {
                    *g = 2.0 * w * dc;
                }
                l1_backward(&root.w, c.lambda, &mut root.grad);
                c.adam.step(&mut root.w, &root.grad);
                root.write_coupling(&mut self.modulation.coupling);
            }
        }
        c.flops += c.step_flops;
        check_finite("coupling c", &self.modulation.coupling)?;
        self.estimate_gain(batch)
    }

    fn evaluate(&mut self, set: &EvalSet) -> (&Evaluator, Readout) {
        let c = &mut self.common;
        c.evaluator
            .modulated(self.frozen, &self.modulation, set, c.readout, c.m);
        c.flops += set.len() as f64 * c.evaluation_flops;
        (&c.evaluator, c.readout)
    }

    fn snapshot(&self) -> Snapshot {
        Snapshot {
            trained: self
                .root
                .as_ref()
                .map_or(&self.modulation.coupling, |root| &root.w)
                .clone(),
            gain: self
                .gain
                .as_ref()
                .map(|g| (self.modulation.gain.clone(), g.state().clone())),
        }
    }

    fn restore(&mut self, snapshot: &Snapshot) {
        match &mut self.root {
            None => self.modulation.coupling.copy_from_slice(&snapshot.trained),
            Some(root) => {
                root.w.copy_from_slice(&snapshot.trained);
                root.write_coupling(&mut self.modulation.coupling);
            }
        }
        if let (Some(gain), Some((values, state))) = (&mut self.gain, &snapshot.gain) {
            self.modulation.gain.copy_from_slice(values);
            gain.set_state(state.clone());
        }
    }

    fn network(&self) -> &Model<f32> {
        &self.frozen.model
    }

    fn modulation(&self) -> &Modulation<f32> {
        &self.modulation
    }

    fn flops(&self) -> f64 {
        self.common.flops
    }
}

/// `retrain` and `retrain-last`: train a copy of the network's weights
/// (c = 0, g = 1).
pub struct RetrainLearner {
    model: Model<f32>,
    off: Modulation<f32>,
    /// The trained part of the parameter buffer.
    trained: Range<usize>,
    /// The weights (not biases) under the L1 term, within `trained`.
    penalised: Vec<Range<usize>>,
    targets: Depth,
    start: Start,
    common: Common,
}

impl RetrainLearner {
    fn new(
        method: Method,
        frozen: &FrozenNetwork,
        config: &FinetuneConfig,
        readout: Readout,
    ) -> Self {
        let model = frozen.model.clone();
        let depth = model.arch().depth();
        // All layers from the canvases, or the readout from the gated
        // layer's frozen activity.
        let (first, trained, start) = match method.trains() {
            Depth::Readout => (depth, readout_range(&model), Start::GatedActivity),
            _ => (1, 0..model.params.len(), Start::Canvases),
        };
        let common = Common::new(method, frozen, config, readout, (trained.len(), first));
        RetrainLearner {
            penalised: (first..=depth)
                .map(|l| model.layer(l).weights.clone())
                .collect(),
            off: Modulation::off(model.arch()),
            targets: method.trains(),
            start,
            trained,
            model,
            common,
        }
    }
}

impl Learner for RetrainLearner {
    fn begin(&mut self, _first: Batch<'_>) -> Result<(), Fault> {
        Ok(())
    }

    fn step(&mut self, batch: Batch<'_>) -> Result<(), Fault> {
        let c = &mut self.common;
        self.model.forward(&mut c.ws, &self.off, batch.images, c.m);
        let loss = self.model.loss(&mut c.ws, batch.labels, c.readout);
        if let Err(fault) = check_forward(&self.model, &c.ws, loss) {
            // A weight the last update made non-finite is the cause.
            check_finite(
                "trained weights and biases",
                &self.model.params[self.trained.clone()],
            )?;
            return Err(fault);
        }
        self.model.backward(&mut c.ws, self.targets, &mut c.grads);
        for range in &self.penalised {
            l1_backward(
                &self.model.params[range.clone()],
                c.lambda,
                &mut c.grads.params[range.clone()],
            );
        }
        c.adam.step(
            &mut self.model.params[self.trained.clone()],
            &c.grads.params[self.trained.clone()],
        );
        c.flops += c.step_flops;
        Ok(())
    }

    fn evaluate(&mut self, set: &EvalSet) -> (&Evaluator, Readout) {
        let c = &mut self.common;
        c.evaluator.unmodulated(&self.model, set, self.start, c.m);
        c.flops += set.len() as f64 * c.evaluation_flops;
        (&c.evaluator, c.readout)
    }

    fn snapshot(&self) -> Snapshot {
        Snapshot {
            trained: self.model.params[self.trained.clone()].to_vec(),
            gain: None,
        }
    }

    fn restore(&mut self, snapshot: &Snapshot) {
        self.model.params[self.trained.clone()].copy_from_slice(&snapshot.trained);
    }

    fn network(&self) -> &Model<f32> {
        &self.model
    }

    fn modulation(&self) -> &Modulation<f32> {
        &self.off
    }

    fn flops(&self) -> f64 {
        self.common.flops
    }
}
