//! Accuracy and loss of a network on labelled composite sets (§1, §2, §4):
//! the general task's held-out accuracy, the pair accuracy of Fig. 2A,
//! and the one evaluation path of fine-tuning runs ([`Evaluator`] on an
//! [`EvalSet`]), which starts from the deepest activity a method leaves
//! frozen.

use crate::data::{CANVAS_PIXELS, CompositeKind, CompositeSet, Digits, NOISE_STD, Pool, Task};
use crate::kernel::dense::{DensePlan, DenseScratch, dense_forward, has_dense_tiles};
use crate::kernel::{Body, KernelScratch, PackedRows, forward_rows};
use crate::net::arch::LOGITS;
use crate::net::layers::{correct_count, mean_cross_entropy, modulation_factor, readout_columns};
use crate::net::{Model, Modulation, Readout, Workspace};
use crate::rng::derive_seed;
use crate::train::config::{FinetuneConfig, TASK_TEST_COMPOSITES};
use crate::train::fault::{Fault, check_finite, forward_fault};
use crate::train::frozen::FrozenNetwork;
use crate::train::learner::Batch;
use crate::train::options::ReadoutKind;

/// Composites in the general task's held-out set.
pub const HELDOUT_COMPOSITES: usize = 2000;
/// Examples per forward pass during evaluation.
pub const EVAL_CHUNK: usize = 500;

/// Fraction of `set` answered correctly, with `labels` read by `readout`,
/// forward at modulator value `m` with `modulation`.
pub fn accuracy(
    model: &Model<f32>,
    modulation: &Modulation<f32>,
    ws: &mut Workspace<f32>,
    set: &CompositeSet,
    labels: &[u8],
    readout: Readout,
    m: f32,
) -> f64 {
    assert_eq!(labels.len(), set.len());
    let mut correct = 0;
    for (images, labels) in set
        .images
        .chunks(EVAL_CHUNK * CANVAS_PIXELS)
        .zip(labels.chunks(EVAL_CHUNK))
    {
        model.forward(ws, modulation, images, m);
        correct += model.correct(ws, labels, readout);
    }
    correct as f64 / set.len() as f64
}

/// The general task's held-out set: test-pool composites (§1).
pub fn heldout_set(digits: &Digits, seed: u64) -> CompositeSet {
    let seed = derive_seed(seed, &["heldout".into()]);
    CompositeSet::generate(
        digits,
        CompositeKind::General,
        Pool::Test,
        HELDOUT_COMPOSITES,
        seed,
        NOISE_STD,
    )
}

/// A specific task's test set from the test pool, with or without
/// distractors (§1, §4).
pub fn task_test_set(
    digits: &Digits,
    task: Task,
    distractors: bool,
    composites: usize,
    seed: u64,
) -> CompositeSet {
    let seed = derive_seed(
        seed,
        &[
            "task-test".into(),
            task.to_string().as_str().into(),
            u64::from(distractors).into(),
        ],
    );
    CompositeSet::generate(
        digits,
        CompositeKind::Specific { task, distractors },
        Pool::Test,
        composites,
        seed,
        NOISE_STD,
    )
}

/// Held-out 10-way accuracy on the general task, modulation off.
pub fn general_accuracy(model: &Model<f32>, digits: &Digits, seed: u64) -> f64 {
    let set = heldout_set(digits, seed);
    general_set_accuracy(model, &mut model.workspace(EVAL_CHUNK), &set)
}

/// 10-way accuracy of `model`, modulation off, on the general-task `set`
/// (a workspace of [`EVAL_CHUNK`] rows reused across calls).
pub fn general_set_accuracy(
    model: &Model<f32>,
    ws: &mut Workspace<f32>,
    set: &CompositeSet,
) -> f64 {
    let off = Modulation::off(model.arch());
    accuracy(model, &off, ws, set, &set.labels, Readout::All, 0.0)
}

/// Pair accuracy of `task` (pair readout, §2) with and without
/// distractors: the paper's Fig. 2A numbers.
#[derive(Clone, Copy, Debug)]
pub struct PairAccuracy {
    /// The task.
    pub task: Task,
    /// Accuracy with the other quadrants empty.
    pub without_distractors: f64,
    /// Accuracy with distractor digits in the other quadrants.
    pub with_distractors: f64,
}

/// [`PairAccuracy`] of `task` for the pretrained network, modulation off,
/// read by `readout` (§2; Fig. 2A runs both).
pub fn pair_accuracy(
    model: &Model<f32>,
    digits: &Digits,
    task: Task,
    readout: ReadoutKind,
    seed: u64,
) -> PairAccuracy {
    let mut ws = model.workspace(EVAL_CHUNK);
    let off = Modulation::off(model.arch());
    let config = FinetuneConfig {
        readout,
        ..FinetuneConfig::DEFAULT
    };
    let mut measure = |distractors| {
        let set = task_test_set(digits, task, distractors, TASK_TEST_COMPOSITES, seed);
        let labels = config.labels(&set);
        accuracy(
            model,
            &off,
            &mut ws,
            &set,
            labels,
            config.readout_of(task),
            0.0,
        )
    };
    PairAccuracy {
        task,
        without_distractors: measure(false),
        with_distractors: measure(true),
    }
}

/// A labelled set of canvases with what the frozen network makes of them,
/// computed once: the modulated layer's activity F(a_ℓ), from which the
/// modulation methods evaluate, and the gated layer's activity with the
/// modulation off, from which `retrain-last` evaluates (§4).
#[derive(Clone, Debug)]
pub struct EvalSet {
    images: Vec<f32>,
    labels: Vec<u8>,
    modulated_activity: Vec<f32>,
    /// The same, in the kernel's packed layout (for [`forward_rows`]).
    packed_activity: PackedRows,
    /// The canvases as layer 1 reads them, packed (for [`dense_forward`]).
    packed_input: PackedRows,
    gated_activity: Vec<f32>,
}

impl EvalSet {
    /// The set of `images` `[n, 784]` with `labels` (as the readout reads
    /// them), and the activities of the frozen `model` at modulator value `m`.
    pub fn new(model: &Model<f32>, images: Vec<f32>, labels: Vec<u8>, m: f32) -> EvalSet {
        assert_eq!(
            images.len(),
            labels.len() * CANVAS_PIXELS,
            "one label per canvas"
        );
        let arch = model.arch();
        let off = Modulation::off(arch);
        let mut ws = model.workspace(EVAL_CHUNK);
        let mut modulated_activity = Vec::new();
        let mut gated_activity = Vec::new();
        for chunk in images.chunks(EVAL_CHUNK * CANVAS_PIXELS) {
            modulated_activity.extend_from_slice(model.unmodulated_activity(&mut ws, chunk));
            gated_activity.extend_from_slice(model.activity_at(
                &mut ws,
                &off,
                chunk,
                arch.gated_layer(),
                m,
            ));
        }
        EvalSet {
            packed_input: PackedRows::new(&model.reorder_input(&images), CANVAS_PIXELS),
            images,
            labels,
            packed_activity: PackedRows::new(&modulated_activity, arch.size(arch.modulated_layer)),
            modulated_activity,
            gated_activity,
        }
    }

    /// The examples of this set at `rows`, in that order, with their
    /// activities (no forward pass: a data set's halves, §4).
    pub fn select(&self, rows: &[usize]) -> EvalSet {
        fn gather<T: Copy>(all: &[T], width: usize, rows: &[usize]) -> Vec<T> {
            rows.iter()
                .flat_map(|&r| &all[r * width..(r + 1) * width])
                .copied()
                .collect()
        }
        EvalSet {
            images: gather(&self.images, CANVAS_PIXELS, rows),
            labels: gather(&self.labels, 1, rows),
            modulated_activity: gather(&self.modulated_activity, self.width(true), rows),
            packed_activity: self.packed_activity.select(rows),
            packed_input: self.packed_input.select(rows),
            gated_activity: gather(&self.gated_activity, self.width(false), rows),
        }
    }

    /// Neurons per example of the cached modulated (or gated) activity.
    fn width(&self, modulated: bool) -> usize {
        let all = if modulated {
            &self.modulated_activity
        } else {
            &self.gated_activity
        };
        all.len().checked_div(self.len()).unwrap_or(0)
    }

    /// The set in training batches of `size` examples, in order (the last
    /// may be smaller), each with its cached F(a_ℓ) (§4, `dataset`).
    pub fn batches(&self, size: usize) -> impl Iterator<Item = Batch<'_>> {
        self.images
            .chunks(size * CANVAS_PIXELS)
            .zip(self.labels.chunks(size))
            .zip(
                self.modulated_activity
                    .chunks((size * self.width(true)).max(1)),
            )
            .map(|((images, labels), activity)| Batch {
                images,
                labels,
                activity: Some(activity),
            })
    }

    /// Number of examples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when the set has no examples.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The canvases, `[n, 784]`.
    pub fn images(&self) -> &[f32] {
        &self.images
    }

    /// The labels, as the readout reads them.
    pub fn labels(&self) -> &[u8] {
        &self.labels
    }
}

/// Where an evaluation of an unmodulated network starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// From the canvases: every layer may have changed (`retrain`).
    Canvases,
    /// From the gated layer's frozen activity: only the readout changed
    /// (`retrain-last`).
    GatedActivity,
}

/// Evaluates networks on [`EvalSet`]s with buffers reused across calls
/// (§4): forward at m = μ_m with the current coupling and gain, starting
/// from the deepest activity the method leaves frozen, into logits from
/// which [`Evaluator::accuracy`] and [`Evaluator::loss`] read.
pub struct Evaluator {
    body: Body,
    /// exp(m·c − β) per modulated neuron.
    factor: Vec<f32>,
    /// Gated activity of the set before the gain, `[n, N_{L−1}]`.
    gated: Vec<f32>,
    /// Logits, `[n, 10]` (only the readout's columns are written).
    logits: Vec<f32>,
    /// Readout weights with the gain folded in, `[10, N_{L−1}]`.
    readout: Vec<f32>,
    off: Modulation<f32>,
    scratch: KernelScratch,
    /// The retrained network's layers 1..L−1, packed at each evaluation.
    dense: DensePlan,
    dense_scratch: DenseScratch,
    ws: Workspace<f32>,
    /// The first non-finite tensor of the last unmodulated evaluation,
    /// searched for when a chunk's logits are not finite.
    fault: Option<Fault>,
}

impl Evaluator {
    /// An evaluator for networks of `model`'s architecture whose modulated
    /// path runs on the kernel's `body` ([`Body::detect`] for the fastest).
    pub fn new(model: &Model<f32>, body: Body) -> Evaluator {
        let arch = model.arch();
        Evaluator {
            body,
            factor: vec![0.0; arch.size(arch.modulated_layer)],
            gated: Vec::new(),
            logits: Vec::new(),
            readout: model.weights(arch.depth()).to_vec(),
            off: Modulation::off(arch),
            scratch: KernelScratch::default(),
            dense: DensePlan::default(),
            dense_scratch: DenseScratch::default(),
            ws: model.workspace(EVAL_CHUNK),
            fault: None,
        }
    }

    /// The frozen network under `modulation` on `set` (the modulation
    /// methods): the set's packed F(a_ℓ) times exp(m·c − β), through the
    /// layers ℓ+1..L−1 on the kernel's packed weights, then the readout with the
    /// gain folded into its weights, for the readout's logits only.
    pub fn modulated(
        &mut self,
        frozen: &FrozenNetwork,
        modulation: &Modulation<f32>,
        set: &EvalSet,
        readout: Readout,
        m: f32,
    ) {
        let model = &frozen.model;
        let arch = model.arch();
        let rows = set.len();
        let n_gated = modulation.gain.len();
        self.gated.resize(rows * n_gated, 0.0);
        self.logits.resize(rows * LOGITS, 0.0);
        modulation_factor(m, &modulation.coupling, arch.beta, &mut self.factor);
        forward_rows(
            self.body,
            &frozen.plan,
            &set.packed_activity,
            &self.factor,
            &mut self.gated,
            &mut self.scratch,
        );
        // logits = (g ⊙ z)·Wᵀ + b = z·(W ⊙ g)ᵀ + b: fold g into the readout.
        self.readout.copy_from_slice(model.weights(arch.depth()));
        for row in self.readout.chunks_exact_mut(n_gated) {
            for (w, &g) in row.iter_mut().zip(&modulation.gain) {
                *w *= g;
            }
        }
        readout_columns(
            &self.gated,
            n_gated,
            &self.readout,
            model.bias(arch.depth()),
            &readout.columns(),
            &mut self.logits,
        );
    }

    /// `model` with the modulation off on `set`, from `start` (the
    /// retraining methods), at modulator value `m`. From the canvases, on
    /// a SIMD body, layers 1..L−1 run on the kernel's dense tiles
    /// (the forward pass's bits, [`dense_forward`]) and the readout on the
    /// network's own code.
    pub fn unmodulated(&mut self, model: &Model<f32>, set: &EvalSet, start: Start, m: f32) {
        let arch = model.arch();
        let n_gated = arch.size(arch.gated_layer());
        self.logits.resize(set.len() * LOGITS, 0.0);
        self.fault = None;
        let dense = start == Start::Canvases && has_dense_tiles(self.body);
        if dense {
            self.dense.repack(model, m);
            self.gated.resize(set.len() * n_gated, 0.0);
            dense_forward(
                self.body,
                &self.dense,
                &set.packed_input,
                &mut self.gated,
                &mut self.dense_scratch,
            );
        }
        for (chunk, logits) in self.logits.chunks_mut(EVAL_CHUNK * LOGITS).enumerate() {
            let rows = chunk * EVAL_CHUNK..chunk * EVAL_CHUNK + logits.len() / LOGITS;
            let canvases = &set.images[rows.start * CANVAS_PIXELS..rows.end * CANVAS_PIXELS];
            let gated = match (start, dense) {
                (Start::Canvases, false) => None,
                (Start::Canvases, true) => Some(&self.gated),
                (Start::GatedActivity, _) => Some(&set.gated_activity),
            };
            match gated {
                None => model.forward(&mut self.ws, &self.off, canvases, m),
                Some(gated) => model.forward_from(
                    &mut self.ws,
                    &self.off,
                    arch.gated_layer(),
                    &gated[rows.start * n_gated..rows.end * n_gated],
                    m,
                ),
            }
            logits.copy_from_slice(model.logits(&self.ws));
            // Only the logits are scanned on every chunk; the layers below
            // are searched for the first culprit once a logit is not finite
            // (from the canvases, by the network's own forward pass).
            if self.fault.is_none() && logits.iter().any(|v| !v.is_finite()) {
                if start == Start::Canvases {
                    model.forward(&mut self.ws, &self.off, canvases, m);
                }
                self.fault = forward_fault(model, &self.ws).map(|mut fault| {
                    fault.tensor += &format!(" (evaluation rows from {})", rows.start);
                    fault
                });
            }
        }
    }

    /// The first tensor that turned non-finite in the last evaluation
    /// (§6): the modulation factor, a layer of an unmodulated forward pass
    /// or the logits.
    pub fn fault(&self) -> Option<Fault> {
        if let Err(fault) = check_finite("modulation factor exp(m·c − β)", &self.factor) {
            return Some(fault);
        }
        self.fault
            .clone()
            .or_else(|| check_finite("logits", &self.logits).err())
    }

    /// The logits of the last evaluation, `[n, 10]`; after
    /// [`Evaluator::modulated`] only the readout's columns are meaningful.
    pub fn logits(&self) -> &[f32] {
        &self.logits
    }

    /// Fraction of the last evaluated set whose readout argmax is its
    /// label in `labels`.
    pub fn accuracy(&self, labels: &[u8], readout: Readout) -> f32 {
        let correct = correct_count(&self.logits, LOGITS, labels, readout);
        correct as f32 / labels.len() as f32
    }

    /// Mean cross-entropy of the readout (§2) over the last evaluated set,
    /// with `labels`; no L1 term.
    pub fn loss(&self, labels: &[u8], readout: Readout) -> f64 {
        mean_cross_entropy(&self.logits, LOGITS, labels, readout)
    }
}
