//! Fine-tuning a specific task (SPEC §4), online protocol: one pass over
//! fresh batches of 2, the four methods, Adam with an L1 term on what is
//! trained, and the accuracy on a fixed test set before the first update
//! and after every batch.

use rand::RngExt;
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};

use crate::data::{CANVAS_PIXELS, CompositeKind, CompositeSet, Digits, NOISE_STD, Pool, Task};
use crate::kernel::{
    BatchScratch, KernelPlan, KernelScratch, MODULATOR_MEAN, MODULATOR_VARIANCE, SAMPLES,
    batch_gain, forward_rows,
};
use crate::net::arch::LOGITS;
use crate::net::layers::{correct_count, l1_backward, modulation_factor, readout_columns};
use crate::net::{Adam, GradTargets, Model, Readout, Workspace};
use crate::rng::{derive_seed, rng_for};
use crate::train::evaluate::{EVAL_CHUNK, TASK_TEST_COMPOSITES, task_test_set};
use crate::train::gain::{GainInput, GainOptions, GainState};

/// A fine-tuning method (SPEC §4).
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// Train c; the readout gates by the covariance gain.
    Stochastic,
    /// Train c with σ_m = 0 (attention); g = 1.
    Deterministic,
    /// Train every weight and bias (c = 0).
    Retrain,
    /// Train the readout's weights and bias (c = 0).
    RetrainLast,
}

impl Method {
    /// The four methods, in report order.
    pub const ALL: [Method; 4] = [
        Method::Stochastic,
        Method::Deterministic,
        Method::Retrain,
        Method::RetrainLast,
    ];

    /// The name used on the command line and in records.
    pub fn name(self) -> &'static str {
        match self {
            Method::Stochastic => "stochastic",
            Method::Deterministic => "deterministic",
            Method::Retrain => "retrain",
            Method::RetrainLast => "retrain-last",
        }
    }

    /// True for the methods that train the coupling.
    pub fn modulates(self) -> bool {
        matches!(self, Method::Stochastic | Method::Deterministic)
    }
}

/// Learning rates per method (SPEC §4, online protocol).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct LearningRates {
    /// `stochastic` (default 1e-2).
    pub stochastic: f32,
    /// `deterministic` (default 1e-2).
    pub deterministic: f32,
    /// `retrain` (default 1e-4).
    pub retrain: f32,
    /// `retrain-last` (default 1e-3).
    pub retrain_last: f32,
}

impl Default for LearningRates {
    fn default() -> Self {
        LearningRates {
            stochastic: 1e-2,
            deterministic: 1e-2,
            retrain: 1e-4,
            retrain_last: 1e-3,
        }
    }
}

impl LearningRates {
    /// The rate of `method`.
    pub fn of(&self, method: Method) -> f32 {
        match method {
            Method::Stochastic => self.stochastic,
            Method::Deterministic => self.deterministic,
            Method::Retrain => self.retrain,
            Method::RetrainLast => self.retrain_last,
        }
    }
}

/// Which logits a binary task reads (SPEC §2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ReadoutKind {
    /// Softmax over the logits of a and b; labels 0/1.
    Pair,
    /// 10-way softmax; label = the target digit's class.
    All,
}

/// Everything that defines a fine-tuning run besides task, method and seed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FinetuneConfig {
    /// Training protocol (SPEC §4); only `online` is implemented.
    pub protocol: String,
    /// Readout of the binary task.
    pub readout: ReadoutKind,
    /// Gain options (SPEC §3).
    pub gain: GainOptions,
    /// Learning rates.
    pub lr: LearningRates,
    /// λ of the L1 term.
    pub lambda: f32,
    /// Batches in the one online pass.
    pub batches: usize,
    /// Examples per batch.
    pub batch_size: usize,
    /// Modulator samples per trial, T.
    pub samples: usize,
    /// μ_m.
    pub modulator_mean: f32,
    /// σ_m².
    pub modulator_variance: f32,
    /// Composites of the fixed test set.
    pub test_composites: usize,
}

impl Default for FinetuneConfig {
    fn default() -> Self {
        FinetuneConfig {
            protocol: "online".into(),
            readout: ReadoutKind::Pair,
            gain: GainOptions::default(),
            lr: LearningRates::default(),
            lambda: 0.1,
            batches: 250,
            batch_size: 2,
            samples: SAMPLES,
            modulator_mean: MODULATOR_MEAN,
            modulator_variance: MODULATOR_VARIANCE,
            test_composites: TASK_TEST_COMPOSITES,
        }
    }
}

impl FinetuneConfig {
    /// The readout of `task`.
    pub fn readout_of(&self, task: Task) -> Readout {
        match self.readout {
            ReadoutKind::Pair => Readout::Pair(task.a, task.b),
            ReadoutKind::All => Readout::All,
        }
    }

    /// The labels `set` is read with under this readout.
    pub fn labels<'s>(&self, set: &'s CompositeSet) -> &'s [u8] {
        match self.readout {
            ReadoutKind::Pair => &set.labels,
            ReadoutKind::All => &set.targets,
        }
    }
}

/// A task's fixed test set and what the frozen parts of the pretrained
/// network make of it, computed once and shared by the task's runs.
pub struct TaskData {
    /// The task.
    pub task: Task,
    /// Test composites (test pool, with distractors).
    pub test: CompositeSet,
    /// F(a_ℓ) of the test set: the modulation methods evaluate from here.
    modulated_activity: Vec<f32>,
    /// F(a_{L−1}) of the test set at c = 0: `retrain-last` evaluates from here.
    gated_activity: Vec<f32>,
}

impl TaskData {
    /// Builds the test set of `task` (seeded by `master_seed` and the task,
    /// the same for every method and repeat) and its frozen activities.
    pub fn new(
        pretrained: &Model<f32>,
        digits: &Digits,
        task: Task,
        config: &FinetuneConfig,
        master_seed: u64,
    ) -> TaskData {
        let test = task_test_set(digits, task, true, config.test_composites, master_seed);
        let mut frozen = pretrained.clone();
        frozen.coupling.fill(0.0);
        frozen.gain.fill(1.0);
        let arch = frozen.arch().clone();
        let mut ws = frozen.workspace(EVAL_CHUNK);
        let mut modulated_activity = Vec::new();
        let mut gated_activity = Vec::new();
        for images in test.images.chunks(EVAL_CHUNK * CANVAS_PIXELS) {
            let m = config.modulator_mean;
            modulated_activity.extend_from_slice(frozen.activity_at(
                &mut ws,
                images,
                arch.modulated_layer,
                m,
            ));
            gated_activity.extend_from_slice(frozen.activity_at(
                &mut ws,
                images,
                arch.gated_layer(),
                m,
            ));
        }
        TaskData {
            task,
            test,
            modulated_activity,
            gated_activity,
        }
    }
}

/// Evaluates a run on its task's fixed test set (SPEC §4): forward at
/// m = μ_m with the current c and g, starting from the deepest activity the
/// method leaves frozen; buffers allocated once per run.
struct Evaluator {
    /// exp(μ_m·c − β) per modulated neuron.
    factor: Vec<f32>,
    /// Modulated activity of the test set, `[test, N_ℓ]`.
    modulated: Vec<f32>,
    /// Gated activity of the test set, `[test, N_{L−1}]`.
    gated: Vec<f32>,
    /// Logits, `[test, 10]`.
    logits: Vec<f32>,
    /// Readout weights with the gain folded in, `[10, N_{L−1}]`.
    readout: Vec<f32>,
    scratch: KernelScratch,
    ws: Workspace<f32>,
}

impl Evaluator {
    fn new(model: &Model<f32>, config: &FinetuneConfig) -> Evaluator {
        let arch = model.arch();
        let test = config.test_composites;
        Evaluator {
            factor: vec![0.0; arch.size(arch.modulated_layer)],
            modulated: vec![0.0; test * arch.size(arch.modulated_layer)],
            gated: vec![0.0; test * arch.size(arch.gated_layer())],
            logits: vec![0.0; test * LOGITS],
            readout: model.weights(arch.depth()).to_vec(),
            scratch: KernelScratch::default(),
            ws: model.workspace(EVAL_CHUNK.max(config.batch_size)),
        }
    }

    /// Test accuracy of `model` after training by `method`.
    fn accuracy(
        &mut self,
        model: &Model<f32>,
        plan: &KernelPlan,
        method: Method,
        data: &TaskData,
        config: &FinetuneConfig,
    ) -> f32 {
        let arch = model.arch();
        let readout = config.readout_of(data.task);
        let labels = config.labels(&data.test);
        let m = config.modulator_mean;
        let correct = match method {
            Method::Stochastic | Method::Deterministic => {
                // The modulated activity through the frozen layers on the
                // kernel's packed weights, then the gain and the readout.
                modulation_factor(m, &model.coupling, arch.beta, &mut self.factor);
                let n = self.factor.len();
                for (x, u) in self
                    .modulated
                    .chunks_exact_mut(n)
                    .zip(data.modulated_activity.chunks_exact(n))
                {
                    for ((x, &u), &f) in x.iter_mut().zip(u).zip(&self.factor) {
                        *x = u * f;
                    }
                }
                forward_rows(plan, &self.modulated, &mut self.gated, &mut self.scratch);
                // logits = (g ⊙ z)·Wᵀ + b = z·(W ⊙ g)ᵀ + b: fold g into the readout.
                let n_gated = model.gain.len();
                self.readout.copy_from_slice(model.weights(arch.depth()));
                for row in self.readout.chunks_exact_mut(n_gated) {
                    for (w, &g) in row.iter_mut().zip(&model.gain) {
                        *w *= g;
                    }
                }
                let columns = readout.columns();
                let bias = model.bias(arch.depth());
                readout_columns(
                    &self.gated,
                    n_gated,
                    &self.readout,
                    bias,
                    &columns,
                    &mut self.logits,
                );
                correct_count(&self.logits, LOGITS, labels, readout)
            }
            Method::RetrainLast | Method::Retrain => {
                let mut correct = 0;
                for (chunk, labels) in labels
                    .chunks(EVAL_CHUNK)
                    .enumerate()
                    .map(|(i, l)| (i * EVAL_CHUNK, l))
                {
                    let rows = chunk..chunk + labels.len();
                    if method == Method::RetrainLast {
                        let n = arch.size(arch.gated_layer());
                        let activity = &data.gated_activity[rows.start * n..rows.end * n];
                        model.forward_from(&mut self.ws, arch.gated_layer(), activity, m);
                    } else {
                        model.forward(
                            &mut self.ws,
                            &data.test.images[rows.start * CANVAS_PIXELS..rows.end * CANVAS_PIXELS],
                            m,
                        );
                    }
                    correct += model.correct(&self.ws, labels, readout);
                }
                correct
            }
        };
        correct as f32 / labels.len() as f32
    }
}

/// One fine-tuning run (SPEC §4): returns the fine-tuned network and the
/// learning curve (measurement 0 before the first update, then one per batch).
pub fn finetune(
    pretrained: &Model<f32>,
    plan: &KernelPlan,
    digits: &Digits,
    data: &TaskData,
    method: Method,
    config: &FinetuneConfig,
    seed: u64,
) -> (Model<f32>, Vec<f32>) {
    let task = data.task;
    let mut model = pretrained.clone();
    model.gain.fill(1.0);
    model.coupling.fill(0.0);
    if method.modulates() {
        let mut rng = rng_for(seed, &["coupling".into()]);
        model
            .coupling
            .iter_mut()
            .for_each(|c| *c = rng.random_range(0.9..1.1));
    }
    let bs = config.batch_size;
    let kind = CompositeKind::Specific {
        task,
        distractors: true,
    };
    let train_seed = derive_seed(seed, &["train".into()]);
    let train = CompositeSet::generate(
        digits,
        kind,
        Pool::Train,
        config.batches * bs,
        train_seed,
        NOISE_STD,
    );
    let train_labels = config.labels(&train);
    let readout = config.readout_of(task);
    let lr = config.lr.of(method);
    let last = model.arch().depth();
    let readout_range = model.layer(last).weights.start..model.layer(last).bias.end;
    let weight_ranges: Vec<_> = (1..=last).map(|l| model.layer(l).weights.clone()).collect();
    let mut adam = match method {
        Method::Stochastic | Method::Deterministic => Adam::new(model.coupling.len(), lr),
        Method::Retrain => Adam::new(model.params.len(), lr),
        Method::RetrainLast => Adam::new(readout_range.len(), lr),
    };
    let mut evaluator = Evaluator::new(&model, config);
    let mut ws = model.workspace(bs);
    let mut grads = model.zero_grads();
    let mut gain = GainEstimator::new(&model, config, seed);
    let batch = |k: usize| &train.images[k * bs * CANVAS_PIXELS..(k + 1) * bs * CANVAS_PIXELS];
    if method == Method::Stochastic {
        gain.estimate(&mut model, plan, batch(0));
    }
    let mut curve = Vec::with_capacity(config.batches + 1);
    curve.push(evaluator.accuracy(&model, plan, method, data, config));
    for k in 0..config.batches {
        model.forward(&mut ws, batch(k), config.modulator_mean);
        model.loss(&mut ws, &train_labels[k * bs..(k + 1) * bs], readout);
        match method {
            Method::Stochastic | Method::Deterministic => {
                model.backward(&mut ws, GradTargets::COUPLING, &mut grads);
                l1_backward(&model.coupling, config.lambda, &mut grads.coupling);
                adam.step(&mut model.coupling, &grads.coupling);
            }
            Method::Retrain => {
                model.backward(&mut ws, GradTargets::WEIGHTS, &mut grads);
                for range in &weight_ranges {
                    l1_backward(
                        &model.params[range.clone()],
                        config.lambda,
                        &mut grads.params[range.clone()],
                    );
                }
                adam.step(&mut model.params, &grads.params);
            }
            Method::RetrainLast => {
                let targets = GradTargets {
                    weights_from: Some(last),
                    coupling: false,
                };
                model.backward(&mut ws, targets, &mut grads);
                let weights = weight_ranges[last - 1].clone();
                l1_backward(
                    &model.params[weights.clone()],
                    config.lambda,
                    &mut grads.params[weights],
                );
                adam.step(
                    &mut model.params[readout_range.clone()],
                    &grads.params[readout_range.clone()],
                );
            }
        }
        if method == Method::Stochastic {
            gain.estimate(&mut model, plan, batch(k));
        }
        curve.push(evaluator.accuracy(&model, plan, method, data, config));
    }
    (model, curve)
}

/// The stochastic method's gain (SPEC §3): fresh modulator samples for each
/// estimate, the batch (or a blank trial), and the running state.
struct GainEstimator {
    state: GainState,
    options: GainOptions,
    samples: usize,
    rng: crate::rng::Rng,
    normal: Normal<f32>,
    modulator: Vec<f32>,
    fresh: Vec<f32>,
    blank: Vec<f32>,
    scratch: BatchScratch,
}

impl GainEstimator {
    fn new(model: &Model<f32>, config: &FinetuneConfig, seed: u64) -> GainEstimator {
        GainEstimator {
            state: GainState::new(config.gain),
            options: config.gain,
            samples: config.samples,
            rng: rng_for(seed, &["modulator".into()]),
            normal: Normal::new(config.modulator_mean, config.modulator_variance.sqrt())
                .expect("σ_m² ≥ 0"),
            modulator: Vec::new(),
            fresh: vec![0.0; model.gain.len()],
            blank: vec![0.0; CANVAS_PIXELS],
            scratch: BatchScratch::new(model, config.batch_size.max(1)),
        }
    }

    /// Re-estimates g on `batch` with the current c (SPEC §3, §4).
    fn estimate(&mut self, model: &mut Model<f32>, plan: &KernelPlan, batch: &[f32]) {
        let canvases = match self.options.input {
            GainInput::Batch => batch,
            GainInput::Blank => &self.blank[..],
        };
        let trials = canvases.len() / CANVAS_PIXELS;
        self.modulator.clear();
        let (rng, normal) = (&mut self.rng, &self.normal);
        self.modulator
            .extend((0..trials * self.samples).map(|_| normal.sample(rng)));
        batch_gain(
            model,
            plan,
            canvases,
            &self.modulator,
            self.options.rule,
            &mut self.scratch,
            &mut self.fresh,
        );
        self.state.update(&mut model.gain, &mut self.fresh);
    }
}

/// Floating-point operations of one run of `method` (for throughput
/// reports): each of the batches + 1 evaluations from the deepest frozen
/// activity on the test set; the stochastic method's batches + 1 gain
/// estimates (2·T·multiply-adds per trial); and the training steps
/// (forward, weight and input gradients of a batch).
pub fn run_flops(
    model: &Model<f32>,
    plan: &KernelPlan,
    method: Method,
    config: &FinetuneConfig,
) -> f64 {
    let arch = model.arch();
    let macs = |from: usize| {
        (from..=arch.depth())
            .map(|l| model.layer(l).shape.macs())
            .sum::<usize>() as f64
    };
    let evaluated_from = match method {
        Method::Stochastic | Method::Deterministic => arch.modulated_layer + 1,
        Method::Retrain => 1,
        Method::RetrainLast => arch.depth(),
    };
    let measurements = (config.batches + 1) as f64;
    let evaluation = measurements * 2.0 * config.test_composites as f64 * macs(evaluated_from);
    let trials = match config.gain.input {
        GainInput::Batch => config.batch_size,
        GainInput::Blank => 1,
    };
    let gain = match method {
        Method::Stochastic => measurements * trials as f64 * plan.flops_per_trial(config.samples),
        _ => 0.0,
    };
    let training = config.batches as f64 * config.batch_size as f64 * 2.0 * 3.0 * macs(1);
    evaluation + gain + training
}
