//! Learners (§4): each method's training and evaluation in one place, for
//! any [`Network`]. A learner steps on batches, reports accuracy and loss
//! on a labelled set, and can snapshot and restore what it trains; a
//! protocol ([`crate::train::protocol`]) drives it without knowing the
//! method or the network.
//!
//! Two kinds cover the four methods: [`ModulationLearner`] trains the
//! coupling of the shared frozen network (with the §3 gain for
//! `stochastic`), [`RetrainLearner`] trains a copy of the network's weights
//! (all of them, or the readout's).

use std::ops::Range;

use rand::RngExt;

use crate::net::layers::l1_backward;
use crate::net::{Adam, Depth, Modulation};
use crate::rng::rng_for;
use crate::train::config::FinetuneConfig;
use crate::train::fault::{Fault, check_finite, check_scalar};
use crate::train::gain::{GainEstimator, GainState};
use crate::train::method::Method;
use crate::train::network::{Batch, EvalSet, Frozen, Network, ParamRange};
use crate::train::options::CouplingParam;

/// What a learner trains, copied out so that it can be put back (early
/// stopping keeps the best state; task switching restores a task's).
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    /// The trained values: c (or w), or the trained weights and biases.
    trained: Vec<f32>,
    /// The gain and its running state, for the stochastic method.
    gain: Option<(Vec<f32>, GainState)>,
}

/// One method's fine-tuning of one task (§4).
pub trait Learner<N: Network> {
    /// What the learner trains (its steps' backward pass reaches `depth`).
    fn trains(&self) -> Depth;

    /// The frozen activity from which this learner's steps start, for
    /// every example of a training sequence seen once (`inputs`), in one
    /// pass whose floating-point operations it counts
    /// ([`Network::step_activity`]); none when it trains every layer.
    fn sequence_activity(&mut self, inputs: &[f32]) -> Option<Vec<f32>>;

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

    /// Evaluates the current state on `set`; fails when the evaluation
    /// turned non-finite (§6).
    fn evaluate(&mut self, set: &EvalSet<N>) -> Result<Evaluation<'_, N>, Fault>;

    /// The network as the learner computes it now: the shared frozen one
    /// for the modulation methods, the learner's own copy for retraining.
    fn network(&self) -> &N;

    /// Accuracy on `set` in the current state; fails when the evaluation
    /// turned non-finite (§6).
    fn accuracy(&mut self, set: &EvalSet<N>) -> Result<f32, Fault> {
        let correct = match self.count_without_logits(set) {
            Some(correct) => correct,
            None => {
                let e = self.evaluate(set)?;
                e.network.count_correct(e.logits, set.labels(), e.readout)
            }
        };
        Ok(correct as f32 / set.labels().len() as f32)
    }

    /// The examples of `set` answered correctly, counted without writing
    /// the logits where the learner's network can ([`Network::readout_correct`]);
    /// `None` otherwise, and whenever a value is not finite, so that
    /// [`Learner::accuracy`] evaluates and names the fault.
    fn count_without_logits(&mut self, _set: &EvalSet<N>) -> Option<usize> {
        None
    }

    /// The validation loss on `set` in the current state (§4): the mean
    /// cross-entropy of the readout, without the L1 term, which is a
    /// penalty on the parameters and not a measure of fit (as the
    /// companion code validates).
    fn loss(&mut self, set: &EvalSet<N>) -> Result<f64, Fault> {
        let e = self.evaluate(set)?;
        let loss = e.network.mean_loss(e.logits, set.labels(), e.readout);
        check_scalar("validation loss", loss)?;
        Ok(loss)
    }

    /// The current trained state.
    fn snapshot(&self) -> Snapshot;

    /// Puts back a state taken by [`Learner::snapshot`] of this learner.
    fn restore(&mut self, snapshot: &Snapshot);

    /// The current coupling and gain (off for the retraining methods).
    fn modulation(&self) -> &Modulation<f32>;

    /// Floating-point operations done so far (for throughput reports).
    fn flops(&self) -> f64;
}

/// An evaluation's logits, with the network and readout that read them.
pub struct Evaluation<'a, N: Network> {
    /// The logits of every example.
    pub logits: &'a [f32],
    /// The network evaluated.
    pub network: &'a N,
    /// The logits the task reads.
    pub readout: N::Readout,
}

/// The learner of `method` for a task read by `readout`, on the shared
/// `frozen` network, seeded by the run's `seed` (§4, §6). The coupling
/// starts i.i.d. U[0.9, 1.1] for the modulation methods.
pub fn learner<'a, N: Network>(
    method: Method,
    frozen: &'a Frozen<N>,
    config: &FinetuneConfig,
    readout: N::Readout,
    seed: u64,
) -> Box<dyn Learner<N> + 'a> {
    match method.trains() {
        Depth::Coupling | Depth::CouplingAndReadout => Box::new(ModulationLearner::new(
            method, frozen, config, readout, seed,
        )),
        Depth::All | Depth::Readout => {
            Box::new(RetrainLearner::new(method, &frozen.net, config, readout))
        }
    }
}

/// What every learner holds: its optimiser, buffers and settings.
struct Common<N: Network> {
    adam: Adam,
    trainer: N::Trainer,
    evaluator: N::Evaluator,
    readout: N::Readout,
    lambda: f32,
    m: f32,
    /// Flops of one example's evaluation.
    evaluation_flops: f64,
    flops: f64,
}

impl<N: Network> Common<N> {
    /// For `method` training `trained` values of `net`.
    fn new(
        method: Method,
        net: &N,
        config: &FinetuneConfig,
        readout: N::Readout,
        trained: usize,
    ) -> Self {
        let depth = method.trains();
        Common {
            adam: Adam::new(trained, method.learning_rate(&config.lr)),
            trainer: net.trainer(config.batch_size),
            evaluator: net.evaluator(),
            readout,
            lambda: config.lambda,
            m: config.modulator_mean,
            evaluation_flops: net.evaluation_flops(depth),
            flops: 0.0,
        }
    }

    /// The frozen activity of `inputs` from which `net`'s steps to
    /// `depth` start, its floating-point operations counted.
    fn sequence_activity(&mut self, net: &N, inputs: &[f32], depth: Depth) -> Option<Vec<f32>> {
        let activity = net.step_activity(inputs, depth, self.m)?;
        self.flops += activity.flops;
        Some(activity.values)
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

/// `stochastic` and `deterministic`: train c of the shared frozen network
/// (and, for a task with a fresh head, that head, §8).
pub struct ModulationLearner<'a, N: Network> {
    frozen: &'a Frozen<N>,
    /// Under a fresh readout (§8, `held-out`): the readout trained beside c.
    readout: Option<ReadoutTraining<N>>,
    modulation: Modulation<f32>,
    /// Under `--coupling-param square` (§3): what is trained instead of c.
    root: Option<SquareCoupling>,
    /// The §3 gain (`stochastic` only).
    gain: Option<GainEstimator<N>>,
    /// L1 plus the cross-entropy's gradient of what is trained.
    grad: Vec<f32>,
    common: Common<N>,
}

/// What a learner trains of a network's flat parameters (§4): the ranges,
/// each marked when it holds weights (under the L1 term), with their
/// spans prepared once for Adam.
struct TrainedParams {
    ranges: Vec<ParamRange>,
    spans: Vec<Range<usize>>,
}

impl TrainedParams {
    fn new(ranges: Vec<ParamRange>) -> TrainedParams {
        let spans = ranges.iter().map(|p| p.range.clone()).collect();
        TrainedParams { ranges, spans }
    }

    /// Values trained.
    fn len(&self) -> usize {
        self.spans.iter().map(Range::len).sum()
    }

    /// λ‖w‖₁ on the weights, then one Adam step of every trained value.
    fn step(&self, adam: &mut Adam, params: &mut [f32], grads: &mut [f32], lambda: f32) {
        for p in self.ranges.iter().filter(|p| p.weights) {
            l1_backward(
                &params[p.range.clone()],
                lambda,
                &mut grads[p.range.clone()],
            );
        }
        adam.step_ranges(params, grads, &self.spans);
    }

    /// The trained values of `params`, in parameter order.
    fn values<'p>(&'p self, params: &'p [f32]) -> impl Iterator<Item = &'p f32> {
        self.spans
            .iter()
            .flat_map(move |r| params[r.clone()].iter())
    }

    /// Appends [`TrainedParams::values`] to `out`, copied a span at a time:
    /// a snapshot's part, which [`TrainedParams::restore`] puts back. The
    /// `dataset` protocol takes a snapshot after every epoch that is not
    /// worse (§4); element by element, `retrain`'s (161 010 values) took
    /// about 3 % of the report's `dataset` cell.
    fn append_values(&self, params: &[f32], out: &mut Vec<f32>) {
        out.reserve(self.len());
        for r in &self.spans {
            out.extend_from_slice(&params[r.clone()]);
        }
    }

    /// Puts back values taken by [`TrainedParams::append_values`].
    fn restore(&self, params: &mut [f32], values: &[f32]) {
        let mut at = 0;
        for r in &self.spans {
            params[r.clone()].copy_from_slice(&values[at..at + r.len()]);
            at += r.len();
        }
    }
}

/// The readout a modulation method trains beside c (§8, `held-out`): a
/// copy of the frozen network whose readout changes, and its own
/// optimiser at the readout's rate (`retrain-last`'s, so that every method
/// trains the head alike).
struct ReadoutTraining<N: Network> {
    frozen: Frozen<N>,
    trained: TrainedParams,
    adam: Adam,
}

impl<N: Network> ReadoutTraining<N> {
    fn new(frozen: &Frozen<N>, config: &FinetuneConfig, readout: N::Readout) -> Self {
        let trained = TrainedParams::new(frozen.net.trained_params(Depth::Readout, readout));
        ReadoutTraining {
            frozen: Frozen::new(frozen.net.clone()),
            adam: Adam::new(trained.len(), Method::RetrainLast.learning_rate(&config.lr)),
            trained,
        }
    }

    /// One step of the readout; its network's fast paths are prepared
    /// again (free for the convolutional network, whose plan is empty).
    fn step(&mut self, grads: &mut [f32], lambda: f32) {
        let params = self.frozen.net.params_mut();
        self.trained.step(&mut self.adam, params, grads, lambda);
        self.frozen.plan = self.frozen.net.plan();
    }

    /// Appends the readout's values to `out`, in parameter order.
    fn append_values(&self, out: &mut Vec<f32>) {
        self.trained.append_values(self.frozen.net.params(), out);
    }

    /// Puts back values taken by [`ReadoutTraining::append_values`].
    fn restore(&mut self, values: &[f32]) {
        self.trained.restore(self.frozen.net.params_mut(), values);
        self.frozen.plan = self.frozen.net.plan();
    }
}

/// The non-negative coupling c = w² (§3): w is trained.
struct SquareCoupling {
    w: Vec<f32>,
}

impl SquareCoupling {
    /// w = √c, so that c starts where the linear coupling does.
    fn new(coupling: &[f32]) -> SquareCoupling {
        SquareCoupling {
            w: coupling.iter().map(|c| c.sqrt()).collect(),
        }
    }

    /// c ← w².
    fn write_coupling(&self, coupling: &mut [f32]) {
        for (c, &w) in coupling.iter_mut().zip(&self.w) {
            *c = w * w;
        }
    }
}

impl<'a, N: Network> ModulationLearner<'a, N> {
    fn new(
        method: Method,
        frozen: &'a Frozen<N>,
        config: &FinetuneConfig,
        readout: N::Readout,
        seed: u64,
    ) -> Self {
        let net = &frozen.net;
        let common = Common::new(method, net, config, readout, net.coupling_len());
        let readout_training = config
            .fresh_readout
            .then(|| ReadoutTraining::new(frozen, config, readout));
        let mut rng = rng_for(seed, &["coupling".into()]);
        let modulation = Modulation {
            coupling: (0..net.coupling_len())
                .map(|_| rng.random_range(0.9..1.1))
                .collect(),
            gain: vec![1.0; net.gain_len()],
        };
        let root = (config.coupling_param == CouplingParam::Square)
            .then(|| SquareCoupling::new(&modulation.coupling));
        let gain = method
            .gates()
            .then(|| GainEstimator::new(frozen, config, seed));
        ModulationLearner {
            frozen,
            readout: readout_training,
            grad: vec![0.0; net.coupling_len()],
            modulation,
            root,
            gain,
            common,
        }
    }

    /// The network as evaluated ([`evaluated`]).
    fn evaluated(&self) -> &Frozen<N> {
        evaluated(self.frozen, self.readout.as_ref())
    }

    fn estimate_gain(&mut self, batch: Batch<'_>) -> Result<(), Fault> {
        if let Some(gain) = &mut self.gain {
            self.common.flops += gain.estimate(self.frozen, &mut self.modulation, batch);
            check_gain(&self.modulation.gain)?;
        }
        Ok(())
    }
}

/// The network a modulation learner evaluates and steps: the shared
/// `frozen` one, or its copy whose fresh readout is being trained (§8).
fn evaluated<'a, N: Network>(
    frozen: &'a Frozen<N>,
    readout: Option<&'a ReadoutTraining<N>>,
) -> &'a Frozen<N> {
    readout.map_or(frozen, |r| &r.frozen)
}

impl<N: Network> Learner<N> for ModulationLearner<'_, N> {
    fn trains(&self) -> Depth {
        match self.readout {
            None => Depth::Coupling,
            Some(_) => Depth::CouplingAndReadout,
        }
    }

    fn sequence_activity(&mut self, inputs: &[f32]) -> Option<Vec<f32>> {
        let depth = self.trains();
        let net = &evaluated(self.frozen, self.readout.as_ref()).net;
        (self.common).sequence_activity(net, inputs, depth)
    }

    fn begin(&mut self, first: Batch<'_>) -> Result<(), Fault> {
        self.estimate_gain(first)
    }

    fn step(&mut self, batch: Batch<'_>) -> Result<(), Fault> {
        let depth = self.trains();
        let c = &mut self.common;
        let net = &evaluated(self.frozen, self.readout.as_ref()).net;
        let step_flops = net.step_flops(batch, depth);
        let grads = net.gradients(
            &mut c.trainer,
            batch,
            Some(&self.modulation),
            c.m,
            c.readout,
            depth,
        )?;
        if let Some(readout) = &mut self.readout {
            readout.step(&mut grads.params, c.lambda);
        }
        match &mut self.root {
            None => {
                l1_backward(&self.modulation.coupling, c.lambda, &mut grads.coupling);
                c.adam.step(&mut self.modulation.coupling, &grads.coupling);
            }
            Some(root) => {
                // c = w²: dL/dw = 2w·dL/dc.
                for ((g, &w), &dc) in self.grad.iter_mut().zip(&root.w).zip(&grads.coupling) {
                    *g = 2.0 * w * dc;
                }
                l1_backward(&root.w, c.lambda, &mut self.grad);
                c.adam.step(&mut root.w, &self.grad);
                root.write_coupling(&mut self.modulation.coupling);
            }
        }
        c.flops += step_flops;
        check_finite("coupling c", &self.modulation.coupling)?;
        self.estimate_gain(batch)
    }

    fn evaluate(&mut self, set: &EvalSet<N>) -> Result<Evaluation<'_, N>, Fault> {
        let c = &mut self.common;
        c.flops += set.len() as f64 * c.evaluation_flops;
        let evaluated = evaluated(self.frozen, self.readout.as_ref());
        let logits = N::evaluate_modulated(
            evaluated,
            &mut c.evaluator,
            set,
            &self.modulation,
            c.readout,
            c.m,
        )?;
        Ok(Evaluation {
            logits,
            network: &evaluated.net,
            readout: c.readout,
        })
    }

    fn network(&self) -> &N {
        &self.evaluated().net
    }

    fn snapshot(&self) -> Snapshot {
        let coupling = self
            .root
            .as_ref()
            .map_or(&self.modulation.coupling, |root| &root.w);
        let mut trained = coupling.clone();
        if let Some(r) = &self.readout {
            r.append_values(&mut trained);
        }
        Snapshot {
            trained,
            gain: self
                .gain
                .as_ref()
                .map(|g| (self.modulation.gain.clone(), g.state().clone())),
        }
    }

    fn restore(&mut self, snapshot: &Snapshot) {
        let (coupling, readout) = snapshot.trained.split_at(self.modulation.coupling.len());
        if let Some(r) = &mut self.readout {
            r.restore(readout);
        }
        match &mut self.root {
            None => self.modulation.coupling.copy_from_slice(coupling),
            Some(root) => {
                root.w.copy_from_slice(coupling);
                root.write_coupling(&mut self.modulation.coupling);
            }
        }
        if let (Some(gain), Some((values, state))) = (&mut self.gain, &snapshot.gain) {
            self.modulation.gain.copy_from_slice(values);
            gain.set_state(state.clone());
        }
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
pub struct RetrainLearner<N: Network> {
    net: N,
    off: Modulation<f32>,
    /// What is trained, in parameter order.
    trained: TrainedParams,
    depth: Depth,
    common: Common<N>,
}

impl<N: Network> RetrainLearner<N> {
    fn new(method: Method, frozen: &N, config: &FinetuneConfig, readout: N::Readout) -> Self {
        let depth = method.trains();
        let trained = TrainedParams::new(frozen.trained_params(depth, readout));
        RetrainLearner {
            common: Common::new(method, frozen, config, readout, trained.len()),
            off: Modulation::off(frozen),
            net: frozen.clone(),
            trained,
            depth,
        }
    }

    /// The trained values, in parameter order.
    fn trained_values(&self) -> impl Iterator<Item = &f32> {
        self.trained.values(self.net.params())
    }
}

impl<N: Network> Learner<N> for RetrainLearner<N> {
    fn trains(&self) -> Depth {
        self.depth
    }

    fn sequence_activity(&mut self, inputs: &[f32]) -> Option<Vec<f32>> {
        (self.common).sequence_activity(&self.net, inputs, self.depth)
    }

    fn begin(&mut self, _first: Batch<'_>) -> Result<(), Fault> {
        Ok(())
    }

    fn step(&mut self, batch: Batch<'_>) -> Result<(), Fault> {
        let c = &mut self.common;
        let step_flops = self.net.step_flops(batch, self.depth);
        let grads =
            match self
                .net
                .gradients(&mut c.trainer, batch, None, c.m, c.readout, self.depth)
            {
                Ok(grads) => grads,
                Err(fault) => {
                    // A weight the last update made non-finite is the cause.
                    if let Some((i, &v)) = self
                        .trained_values()
                        .enumerate()
                        .find(|(_, v)| !v.is_finite())
                    {
                        return Err(Fault {
                            tensor: "trained weights and biases".into(),
                            problem: crate::train::fault::non_finite(v as f64, i),
                        });
                    }
                    return Err(fault);
                }
            };
        let params = self.net.params_mut();
        (self.trained).step(&mut c.adam, params, &mut grads.params, c.lambda);
        c.flops += step_flops;
        Ok(())
    }

    fn count_without_logits(&mut self, set: &EvalSet<N>) -> Option<usize> {
        if self.depth != Depth::Readout {
            return None;
        }
        let c = &mut self.common;
        let correct = (self.net).readout_correct(&mut c.evaluator, set, c.readout, c.m)?;
        c.flops += set.len() as f64 * c.evaluation_flops;
        Some(correct)
    }

    fn evaluate(&mut self, set: &EvalSet<N>) -> Result<Evaluation<'_, N>, Fault> {
        let c = &mut self.common;
        c.flops += set.len() as f64 * c.evaluation_flops;
        let logits =
            self.net
                .evaluate_retrained(&mut c.evaluator, set, self.depth, c.readout, c.m)?;
        Ok(Evaluation {
            logits,
            network: &self.net,
            readout: c.readout,
        })
    }

    fn network(&self) -> &N {
        &self.net
    }

    fn snapshot(&self) -> Snapshot {
        let mut trained = Vec::new();
        self.trained.append_values(self.net.params(), &mut trained);
        Snapshot {
            trained,
            gain: None,
        }
    }

    fn restore(&mut self, snapshot: &Snapshot) {
        (self.trained).restore(self.net.params_mut(), &snapshot.trained);
    }

    fn modulation(&self) -> &Modulation<f32> {
        &self.off
    }

    fn flops(&self) -> f64 {
        self.common.flops
    }
}
