//! Fine-tuning one task of a multi-task network (§8) with one of the four
//! methods of §4, under the `online` protocol: the backbone is frozen
//! unless the method retrains it; the coupling c and the gain g belong to
//! the task ([`TaskModulation`]), so switching task swaps them alone.

use std::ops::Range;

use rand::RngExt;
use rand_distr::{Distribution, Normal};

use crate::conv::net::{
    ConvNet, ConvWorkspace, Heads, Modulator, channel_factors, heads_loss, scale_channels,
};
use crate::conv::trial::{TrialScratch, trial_flops, trial_gain, unmodulated_features};
use crate::error::{Error, Result};
use crate::multitask::data::Images;
use crate::multitask::evaluate::EVAL_CHUNK;
use crate::net::Adam;
use crate::net::Depth;
use crate::net::Grads;
use crate::net::layers::l1_backward;
use crate::rng::rng_for;
use crate::train::config::FinetuneConfig;
use crate::train::fault::{Failure, Fault, check_finite, check_scalar};
use crate::train::gain::GainState;
use crate::train::method::Method;
use crate::train::options::Compensation;
use crate::train::options::CouplingParam;
use crate::train::options::GainInput;
use crate::train::options::Protocol;
use crate::train::protocol::Curve;

/// A task's modulation (§8): coupling c of the modulated conv stage, one
/// value per channel, and gain g of the gated layer (`None`: g = 1).
#[derive(Clone, Debug, PartialEq)]
pub struct TaskModulation {
    /// c, `[channels]`.
    pub coupling: Vec<f32>,
    /// g, `[N]`, for the stochastic method.
    pub gain: Option<Vec<f32>>,
}

/// The examples of one fine-tuning run of task t: the training stream
/// (`batches × batch_size`, in order) and the fixed test set, shared by
/// the methods of one (task, repeat).
#[derive(Clone, Debug)]
pub struct TaskSets {
    /// Training examples in the order they are seen.
    pub train: Images,
    /// The test set.
    pub test: Images,
}

/// What a fine-tuning run gives.
#[derive(Clone, Debug)]
pub struct TaskOutcome {
    /// Test accuracy of the task's head after 0, 1, …, batches updates.
    pub curve: Curve,
    /// The fine-tuned modulation (modulation methods).
    pub modulation: Option<TaskModulation>,
    /// The retrained parameters (retraining methods).
    pub params: Option<Vec<f32>>,
    /// The numerical fault that ended the run early, if any (§6).
    pub failure: Option<Failure>,
    /// Floating-point operations of the products (2 per multiply-add).
    pub flops: f64,
}

/// Checks that `config` is one a multi-task run takes.
pub fn check_config(config: &FinetuneConfig) -> Result<()> {
    config.validate()?;
    if config.protocol != Protocol::Online {
        return Err(Error::option(
            "--protocol",
            config.protocol.name(),
            "multi-task fine-tuning runs the `online` protocol only",
        ));
    }
    Ok(())
}

/// The accuracy of task t's head on `test` under `modulation` (the frozen
/// backbone and heads of `net`): the computation a task switch repeats.
pub fn task_accuracy(
    net: &ConvNet<f32>,
    t: usize,
    m: f32,
    modulation: &TaskModulation,
    test: &Images,
) -> f64 {
    let tasks = net.arch().tasks;
    let accuracy = crate::multitask::evaluate::task_accuracies(
        net,
        test,
        tasks,
        Some(crate::multitask::evaluate::Evaluated {
            m,
            coupling: &modulation.coupling,
            gain: modulation.gain.as_deref(),
        }),
    );
    accuracy[t]
}

/// What a run trains: coupling, or ranges of the parameters.
enum Theta {
    Coupling {
        c: Vec<f32>,
        root: Option<Vec<f32>>,
    },
    Params {
        net: ConvNet<f32>,
        ranges: Vec<(Range<usize>, bool)>,
        depth: Depth,
    },
}

struct Run<'a> {
    frozen: &'a ConvNet<f32>,
    t: usize,
    config: &'a FinetuneConfig,
    theta: Theta,
    gain: Option<Vec<f32>>,
    gain_state: GainState,
    adam: Adam,
    ws: ConvWorkspace<f32>,
    trial: TrialScratch,
    buffers: Buffers,
    rng: crate::rng::Rng,
    normal: Normal<f32>,
    /// The test set's modulated-stage output (modulation methods) or
    /// gated output (`retrain-last`), computed once.
    cached: Vec<f32>,
    flops: f64,
}

/// Fine-tunes task `t` of `frozen` with `method` (§4, §8) on `sets`.
pub fn finetune_task(
    frozen: &ConvNet<f32>,
    t: usize,
    method: Method,
    config: &FinetuneConfig,
    sets: &TaskSets,
    seed: u64,
) -> TaskOutcome {
    let arch = frozen.arch();
    let mut rng = rng_for(seed, &["coupling".into()]);
    let theta = match method.trains() {
        Depth::Coupling => {
            let c: Vec<f32> = (0..arch.modulated_channels())
                .map(|_| rng.random_range(0.9..1.1))
                .collect();
            let root = (config.coupling_param == CouplingParam::Square)
                .then(|| c.iter().map(|v| v.sqrt()).collect());
            Theta::Coupling { c, root }
        }
        Depth::All | Depth::Readout => {
            let (w, b) = frozen.head_of(t);
            let mut ranges = vec![(w, true), (b, false)];
            if method.trains() == Depth::All {
                for s in 0..arch.stages.len() {
                    if let Some(r) = frozen.stage_params(s) {
                        ranges.push((r.weights.clone(), true));
                        ranges.push((r.bias.clone(), false));
                    }
                }
            }
            let depth = if method.trains() == Depth::All {
                Depth::All
            } else {
                Depth::Readout
            };
            Theta::Params {
                net: frozen.clone(),
                ranges,
                depth,
            }
        }
    };
    let trained = match &theta {
        Theta::Coupling { c, .. } => c.len(),
        Theta::Params { ranges, .. } => ranges.iter().map(|(r, _)| r.len()).sum(),
    };
    let std = config.modulator_variance.max(0.0).sqrt();
    let mut run = Run {
        frozen,
        t,
        config,
        theta,
        gain: method.gates().then(|| vec![1.0; arch.gated_size()]),
        gain_state: GainState::new(config.gain),
        adam: Adam::new(trained, method.learning_rate(&config.lr)),
        ws: frozen.workspace(),
        trial: TrialScratch::new(frozen),
        buffers: Buffers {
            grads: frozen.zero_grads(),
            theta: Vec::new(),
            grad: Vec::new(),
        },
        rng: rng_for(seed, &["modulator".into()]),
        normal: Normal::new(config.gain_sample_mean(), std).expect("a finite, non-negative spread"),
        cached: Vec::new(),
        flops: 0.0,
    };
    run.cache_test(&sets.test);
    let mut curve = Curve::default();
    let batch = config.batch_size;
    let tasks = arch.tasks;
    let len = arch.input.len();
    let slice = |k: usize| {
        let rows = k * batch..(k + 1) * batch;
        (
            &sets.train.images[rows.start * len..rows.end * len],
            &sets.train.labels[rows.start * tasks..rows.end * tasks],
        )
    };
    let mut failure = None;
    let fail = |at: String, fault: Fault| Some(Failure::new(at, fault));
    if let Err(fault) = run.estimate_gain(slice(0).0) {
        failure = fail("gain estimate before update 1".into(), fault);
    } else {
        curve.push(0, run.accuracy(&sets.test));
        for k in 0..config.batches {
            let (images, labels) = slice(k);
            if let Err(fault) = run.step(images, labels) {
                failure = fail(format!("update {} of {}", k + 1, config.batches), fault);
                break;
            }
            if let Err(fault) = run.estimate_gain(images) {
                failure = fail(format!("gain estimate after update {}", k + 1), fault);
                break;
            }
            curve.push((k + 1) * batch, run.accuracy(&sets.test));
        }
    }
    let (modulation, params) = match run.theta {
        Theta::Coupling { c, .. } => (
            Some(TaskModulation {
                coupling: c,
                gain: run.gain,
            }),
            None,
        ),
        Theta::Params { net, .. } => (None, Some(net.params)),
    };
    TaskOutcome {
        curve,
        modulation,
        params,
        failure,
        flops: run.flops,
    }
}

/// A run's per-step buffers, allocated once.
struct Buffers {
    grads: Grads<f32>,
    /// The trained parameters and their gradient, gathered (retraining).
    theta: Vec<f32>,
    grad: Vec<f32>,
}

/// One training pass of a batch: forward, the task head's cross-entropy,
/// backward to `depth`.
struct Pass<'a> {
    images: &'a [f32],
    labels: &'a [u8],
    modulator: Option<&'a Modulator<'a, f32>>,
    gain: Option<&'a [f32]>,
    task: usize,
    depth: Depth,
}

impl Pass<'_> {
    /// The gradients of the loss (without the L1 term) on `net`.
    /// `grads` is overwritten (its buffers reused across steps).
    fn gradients(
        &self,
        net: &ConvNet<f32>,
        ws: &mut ConvWorkspace<f32>,
        grads: &mut Grads<f32>,
    ) -> std::result::Result<(), Fault> {
        let tasks = net.arch().tasks;
        net.forward(
            ws,
            self.images,
            self.labels.len() / tasks,
            self.modulator,
            self.gain,
        );
        let mut dlogits = vec![0.0; ws.logits().len()];
        let loss = heads_loss(
            ws.logits(),
            tasks,
            self.labels,
            Heads::One(self.task),
            &mut dlogits,
        );
        check_scalar("training loss", loss as f64)?;
        grads.params.fill(0.0);
        net.backward(ws, &dlogits, self.depth, grads);
        Ok(())
    }
}

impl Run<'_> {
    fn m(&self) -> f32 {
        self.config.modulator_mean
    }

    fn cache_test(&mut self, test: &Images) {
        let arch = self.frozen.arch();
        let rows = test.len(arch.tasks);
        let len = arch.input.len();
        let n = arch.stages.len();
        let (stop, cache) = match &self.theta {
            Theta::Coupling { .. } => (arch.scaling_stage(), true),
            Theta::Params {
                depth: Depth::Readout,
                ..
            } => (n, true),
            Theta::Params { .. } => (0, false),
        };
        if !cache {
            return;
        }
        for start in (0..rows).step_by(EVAL_CHUNK) {
            let chunk = EVAL_CHUNK.min(rows - start);
            let images = &test.images[start * len..(start + chunk) * len];
            self.frozen
                .forward_stages(&mut self.ws, images, chunk, 0..stop, None, None);
            self.cached.extend_from_slice(self.ws.activation(stop));
        }
        self.flops += 2.0 * rows as f64 * (arch.forward_macs() - arch.macs_from(stop)) as f64;
    }

    /// Task t's test accuracy now.
    fn accuracy(&mut self, test: &Images) -> f32 {
        let arch = self.frozen.arch().clone();
        let tasks = arch.tasks;
        let rows = test.len(tasks);
        let n = arch.stages.len();
        let mut correct = 0;
        let t = self.t;
        let count = |logits: &[f32], labels: &[u8]| {
            crate::conv::net::head_correct(logits, tasks, labels, t)
        };
        match &self.theta {
            Theta::Coupling { c, .. } => {
                // The cache holds the maps where the factor applies.
                let modulated = arch.scaling_stage();
                let per_row = self.cached.len() / rows;
                let m = vec![self.m(); EVAL_CHUNK];
                let modulator = Modulator {
                    m: &m,
                    coupling: c,
                    beta: arch.beta,
                    variance: 0.0,
                };
                let mut factors = Vec::new();
                channel_factors(&modulator, EVAL_CHUNK, &mut factors);
                for start in (0..rows).step_by(EVAL_CHUNK) {
                    let chunk = EVAL_CHUNK.min(rows - start);
                    let input = self.ws.stage_input_mut(modulated);
                    input.clear();
                    input.extend_from_slice(
                        &self.cached[start * per_row..(start + chunk) * per_row],
                    );
                    scale_channels(input, &factors[..chunk * c.len()], c.len());
                    self.frozen.run_stages(
                        &mut self.ws,
                        chunk,
                        modulated..n,
                        None,
                        self.gain.as_deref(),
                    );
                    correct += count(
                        self.ws.logits(),
                        &test.labels[start * tasks..(start + chunk) * tasks],
                    );
                }
                self.flops += 2.0 * rows as f64 * arch.macs_from(modulated) as f64;
            }
            Theta::Params {
                net,
                depth: Depth::Readout,
                ..
            } => {
                let width = arch.gated_size();
                let (w, b) = net.head_of(t);
                let (w, b) = (&net.params[w], &net.params[b]);
                for (h, y) in self
                    .cached
                    .chunks_exact(width)
                    .zip(test.labels.chunks_exact(tasks))
                {
                    let z0 = b[0] + h.iter().zip(&w[..width]).map(|(a, b)| a * b).sum::<f32>();
                    let z1 = b[1] + h.iter().zip(&w[width..]).map(|(a, b)| a * b).sum::<f32>();
                    correct += usize::from(usize::from(z1 > z0) == y[t] as usize);
                }
                self.flops += 4.0 * rows as f64 * width as f64;
            }
            Theta::Params { net, .. } => {
                let len = arch.input.len();
                for start in (0..rows).step_by(EVAL_CHUNK) {
                    let chunk = EVAL_CHUNK.min(rows - start);
                    net.forward(
                        &mut self.ws,
                        &test.images[start * len..(start + chunk) * len],
                        chunk,
                        None,
                        None,
                    );
                    correct += count(
                        self.ws.logits(),
                        &test.labels[start * tasks..(start + chunk) * tasks],
                    );
                }
                self.flops += 2.0 * rows as f64 * arch.forward_macs() as f64;
            }
        }
        correct as f32 / rows as f32
    }

    /// One update on a batch (§4): forward at m = μ_m with the current g,
    /// the task head's cross-entropy plus λ‖θ‖₁, backward, Adam.
    fn step(&mut self, images: &[f32], labels: &[u8]) -> std::result::Result<(), Fault> {
        let arch = self.frozen.arch();
        let rows = self.config.batch_size;
        let lambda = self.config.lambda;
        let m = vec![self.m(); rows];
        match &mut self.theta {
            Theta::Coupling { c, root } => {
                let modulator = Modulator {
                    m: &m,
                    coupling: c,
                    beta: arch.beta,
                    variance: 0.0,
                };
                let pass = Pass {
                    images,
                    labels,
                    modulator: Some(&modulator),
                    gain: self.gain.as_deref(),
                    task: self.t,
                    depth: Depth::Coupling,
                };
                let grads = &mut self.buffers.grads;
                pass.gradients(self.frozen, &mut self.ws, grads)?;
                match root {
                    None => {
                        l1_backward(c, lambda, &mut grads.coupling);
                        self.adam.step(c, &grads.coupling);
                    }
                    Some(w) => {
                        let mut dw: Vec<f32> = w
                            .iter()
                            .zip(&grads.coupling)
                            .map(|(w, dc)| 2.0 * w * dc)
                            .collect();
                        l1_backward(w, lambda, &mut dw);
                        self.adam.step(w, &dw);
                        for (ci, wi) in c.iter_mut().zip(w.iter()) {
                            *ci = wi * wi;
                        }
                    }
                }
                check_finite("coupling c", c)?;
                self.flops += 2.0
                    * rows as f64
                    * (arch.forward_macs() + 2 * arch.macs_from(arch.modulated_stage)) as f64;
            }
            Theta::Params { net, ranges, depth } => {
                let pass = Pass {
                    images,
                    labels,
                    modulator: None,
                    gain: None,
                    task: self.t,
                    depth: *depth,
                };
                let Buffers { grads, theta, grad } = &mut self.buffers;
                pass.gradients(net, &mut self.ws, grads)?;
                theta.clear();
                grad.clear();
                for (r, weights) in ranges.iter() {
                    let start = grad.len();
                    theta.extend_from_slice(&net.params[r.clone()]);
                    grad.extend_from_slice(&grads.params[r.clone()]);
                    if *weights {
                        l1_backward(&net.params[r.clone()], lambda, &mut grad[start..]);
                    }
                }
                self.adam.step(theta, grad);
                let mut at = 0;
                for (r, _) in ranges.iter() {
                    net.params[r.clone()].copy_from_slice(&theta[at..at + r.len()]);
                    at += r.len();
                }
                check_finite("trained weights and biases", theta)?;
                let backward = if *depth == Depth::All {
                    2 * arch.forward_macs()
                } else {
                    2 * arch.logits() * arch.gated_size()
                };
                self.flops += 2.0 * rows as f64 * (arch.forward_macs() + backward) as f64;
            }
        }
        Ok(())
    }

    /// The stochastic method's gain estimate on `images` (§3, §4): one
    /// trial per example (or one blank trial), fresh samples each, the
    /// batch mean folded into the running gain.
    fn estimate_gain(&mut self, images: &[f32]) -> std::result::Result<(), Fault> {
        let Some(gain) = &mut self.gain else {
            return Ok(());
        };
        let arch = self.frozen.arch();
        let len = arch.input.len();
        let blank;
        let trials = match self.config.gain.input {
            GainInput::Batch => images,
            GainInput::Blank => {
                blank = vec![0.0; len];
                &blank[..]
            }
        };
        let count = trials.len() / len;
        let u = unmodulated_features(self.frozen, &mut self.ws, trials, count);
        let per_row = u.len() / count;
        let samples = self.config.samples;
        let n = arch.gated_size();
        let mut sum = vec![0.0f64; n];
        let mut one = vec![0.0f64; n];
        let c = match &self.theta {
            Theta::Coupling { c, .. } => &c[..],
            Theta::Params { .. } => unreachable!("only modulation methods gate"),
        };
        // The compensation's σ² is the variance the samples are drawn with (§3).
        let variance = match self.config.compensation {
            Compensation::Variance => self.config.modulator_variance,
            Compensation::None => 0.0,
        };
        let mut m = vec![0.0f32; samples];
        for row in u.chunks_exact(per_row) {
            for v in m.iter_mut() {
                *v = self.normal.sample(&mut self.rng);
            }
            trial_gain(
                self.frozen,
                row,
                &m,
                c,
                variance,
                self.config.gain.rule,
                &mut self.trial,
                &mut one,
            );
            for (s, &o) in sum.iter_mut().zip(&one) {
                *s += o;
            }
        }
        let mut fresh: Vec<f32> = sum.iter().map(|&s| (s / count as f64) as f32).collect();
        self.gain_state.update(gain, &mut fresh);
        check_finite("gain g", gain)?;
        if gain.iter().all(|&g| g == 0.0) {
            return Err(Fault {
                tensor: "gain g".into(),
                problem: "is zero for every neuron (no neuron covaries with the modulator)".into(),
            });
        }
        self.flops += count as f64 * trial_flops(arch, samples);
        Ok(())
    }
}
