//! The MLP of §2 behind the fine-tuning seam ([`Network`]): its training
//! passes on [`Model`], its frozen caches of a set (F(a_ℓ) and the gated
//! activity, packed for the kernels), its evaluations on the fused
//! kernel's tiles (§3, §4) and its batch gain through the trial kernel.

use std::ops::Range;

use crate::data::CANVAS_PIXELS;
use crate::kernel::dense::{
    DensePlan, DenseScratch, LaneCount, RowsScratch, dense_blocks, dense_forward, dense_lanes,
    dense_lanes_blocks, dense_rows, has_dense_tiles, lane_block_correct,
};
use crate::kernel::plan::{PANEL, PackedLayer};
use crate::kernel::{
    BatchScratch, Body, KernelPlan, KernelScratch, PackedRows, Trials, forward_rows,
};
use crate::net::arch::LOGITS;
use crate::net::layers::{correct_count, mean_cross_entropy, modulation_factor, scale_rows};
use crate::net::linalg::first_non_finite;
use crate::net::model::EVAL_ROWS;
use crate::net::readout::PairedReadout;
use crate::net::{Depth, GainRule, Grads, Model, Modulated, Modulation, Readout, Workspace};
use crate::train::fault::{Fault, check_finite, check_scalar, forward_fault};
use crate::train::network::{
    Batch, EvalSet, Frozen, Network, ParamRange, StepActivity, gather_rows,
};

/// What the frozen MLP makes of a set (§4): the modulated layer's
/// activity F(a_ℓ), from which the modulation methods step and evaluate,
/// and the gated layer's activity with the modulation off, from which
/// `retrain-last` evaluates; both packed for the kernel's tiles where
/// they read them.
#[derive(Clone, Debug)]
pub struct MlpCache {
    modulated_activity: Vec<f32>,
    /// The same, in the kernel's packed layout (for [`forward_rows`]).
    packed_activity: PackedRows,
    /// The canvases as layer 1 reads them, packed (for [`dense_forward`]).
    packed_input: PackedRows,
    gated_activity: Vec<f32>,
    /// The same, rows along the lanes (for [`dense_lanes`]).
    packed_gated: PackedRows,
    /// Neurons of the modulated and the gated layer.
    widths: (usize, usize),
}

/// The buffers of the MLP's training passes.
pub struct MlpTrainer {
    ws: Workspace<f32>,
    grads: Grads<f32>,
    off: Modulation<f32>,
}

/// The buffers of the MLP's gain estimates: the kernel's batch buffers,
/// and those of the variance compensation.
pub struct MlpGainScratch {
    batch: BatchScratch,
    workspace: Workspace<f32>,
    activity: Vec<f32>,
}

impl Network for Model<f32> {
    type Readout = Readout;
    type Plan = KernelPlan;
    type Cache = MlpCache;
    type Trainer = MlpTrainer;
    type Evaluator = MlpEvaluator;
    type GainScratch = MlpGainScratch;

    fn plan(&self) -> KernelPlan {
        KernelPlan::new(self)
    }

    fn input_len(&self) -> usize {
        CANVAS_PIXELS
    }

    fn params(&self) -> &[f32] {
        &self.params
    }

    fn params_mut(&mut self) -> &mut [f32] {
        &mut self.params
    }

    fn trained_params(&self, depth: Depth, _readout: Readout) -> Vec<ParamRange> {
        let last = self.arch().depth();
        let first = if depth == Depth::Readout { last } else { 1 };
        (first..=last)
            .flat_map(|l| {
                let layer = self.layer(l);
                [
                    ParamRange {
                        range: layer.weights.clone(),
                        weights: true,
                    },
                    ParamRange {
                        range: layer.bias.clone(),
                        weights: false,
                    },
                ]
            })
            .collect()
    }

    fn trainer(&self, batch: usize) -> MlpTrainer {
        MlpTrainer {
            ws: self.workspace(batch),
            grads: self.zero_grads(),
            off: Modulation::off(self.arch()),
        }
    }

    fn gradients<'t>(
        &self,
        trainer: &'t mut MlpTrainer,
        batch: Batch<'_>,
        modulation: Option<&Modulation<f32>>,
        m: f32,
        readout: Readout,
        depth: Depth,
    ) -> Result<&'t mut Grads<f32>, Fault> {
        let ws = &mut trainer.ws;
        let modulation = modulation.unwrap_or(&trainer.off);
        match (step_start(self, depth), batch.activity) {
            (Some(l), Some(activity)) => self.forward_from(ws, modulation, l, activity, m),
            _ => self.forward(ws, modulation, batch.inputs, m),
        }
        let loss = self.loss(ws, batch.labels, readout);
        if let Some(fault) = forward_fault(self, ws) {
            return Err(fault);
        }
        check_scalar("training loss", loss as f64)?;
        self.backward(ws, depth, &mut trainer.grads);
        Ok(&mut trainer.grads)
    }

    fn step_flops(&self, batch: Batch<'_>, depth: Depth) -> f64 {
        let start = batch.activity.and(step_start(self, depth));
        2.0 * batch.labels.len() as f64 * step_macs(self, start, depth)
    }

    fn cache(frozen: &Frozen<Self>, inputs: &[f32], m: f32) -> MlpCache {
        let model = &frozen.net;
        let arch = model.arch();
        let packed_input = PackedRows::reordered(inputs, CANVAS_PIXELS, model.input_order());
        let activity = |l| set_activity(model, inputs, Some(&packed_input), l, m);
        let modulated_activity = activity(arch.modulated_layer);
        let gated_activity = activity(arch.gated_layer());
        let widths = (arch.coupling_len(), arch.gain_len());
        MlpCache {
            packed_input,
            packed_activity: PackedRows::new(&modulated_activity, widths.0),
            packed_gated: PackedRows::along_lanes(&gated_activity, widths.1),
            modulated_activity,
            gated_activity,
            widths,
        }
    }

    fn select(cache: &MlpCache, rows: &[usize]) -> MlpCache {
        MlpCache {
            modulated_activity: gather_rows(&cache.modulated_activity, cache.widths.0, rows),
            packed_activity: cache.packed_activity.select(rows),
            packed_input: cache.packed_input.select(rows),
            gated_activity: gather_rows(&cache.gated_activity, cache.widths.1, rows),
            packed_gated: cache.packed_gated.select(rows),
            widths: cache.widths,
        }
    }

    fn cached_activity(cache: &MlpCache, rows: Range<usize>, depth: Depth) -> Option<&[f32]> {
        let (activity, width) = match Start::of(depth)? {
            Start::Modulated => (&cache.modulated_activity, cache.widths.0),
            Start::Gated => (&cache.gated_activity, cache.widths.1),
        };
        Some(&activity[rows.start * width..rows.end * width])
    }

    fn step_activity(&self, inputs: &[f32], depth: Depth, m: f32) -> Option<StepActivity> {
        let l = step_start(self, depth)?;
        let rows = inputs.len() / CANVAS_PIXELS;
        Some(StepActivity {
            values: set_activity(self, inputs, None, l, m),
            flops: 2.0 * rows as f64 * (macs_from(self, 1) - macs_from(self, l + 1)),
        })
    }

    fn evaluator(&self) -> MlpEvaluator {
        MlpEvaluator::new(self, Body::detect())
    }

    fn evaluate_modulated<'e>(
        frozen: &Frozen<Self>,
        evaluator: &'e mut MlpEvaluator,
        set: &EvalSet<Self>,
        modulation: &Modulation<f32>,
        readout: Readout,
        m: f32,
    ) -> Result<&'e [f32], Fault> {
        evaluator.modulated(frozen, modulation, set, readout, m);
        evaluator.checked_logits()
    }

    fn evaluate_retrained<'e>(
        &self,
        evaluator: &'e mut MlpEvaluator,
        set: &EvalSet<Self>,
        depth: Depth,
        _readout: Readout,
        m: f32,
    ) -> Result<&'e [f32], Fault> {
        evaluator.unmodulated(self, set, depth, m);
        evaluator.checked_logits()
    }

    fn evaluation_flops(&self, depth: Depth) -> f64 {
        let from = match depth {
            Depth::Coupling | Depth::CouplingAndReadout => self.arch().modulated_layer + 1,
            Depth::All => 1,
            Depth::Readout => self.arch().depth(),
        };
        2.0 * macs_from(self, from)
    }

    fn count_correct(&self, logits: &[f32], labels: &[u8], readout: Readout) -> usize {
        correct_count(logits, labels, readout)
    }

    fn readout_correct(
        &self,
        evaluator: &mut MlpEvaluator,
        set: &EvalSet<Self>,
        readout: Readout,
        m: f32,
    ) -> Option<usize> {
        evaluator.readout_correct(self, set, readout, m)
    }

    fn mean_loss(&self, logits: &[f32], labels: &[u8], readout: Readout) -> f64 {
        mean_cross_entropy(logits, LOGITS, labels, readout)
    }

    fn gain_scratch(&self, trials: usize) -> MlpGainScratch {
        MlpGainScratch {
            batch: BatchScratch::new(self, trials),
            workspace: self.workspace(trials),
            activity: Vec::new(),
        }
    }

    fn batch_gain<'s>(
        frozen: &Frozen<Self>,
        scratch: &'s mut MlpGainScratch,
        coupling: &[f32],
        trials: Batch<'_>,
        modulator: &[f32],
        variance: f32,
        rule: GainRule,
    ) -> &'s [f32] {
        let model = &frozen.net;
        let mut start = match trials.activity {
            Some(activity) => Trials::Activity(activity),
            None => Trials::Canvases(trials.inputs),
        };
        if variance > 0.0 {
            let activity = match start {
                Trials::Canvases(canvases) => {
                    model.unmodulated_activity(&mut scratch.workspace, canvases)
                }
                Trials::Activity(activity) => activity,
            };
            compensate(activity, coupling, variance, &mut scratch.activity);
            start = Trials::Activity(&scratch.activity);
        }
        crate::kernel::batch_gain(
            model,
            &frozen.plan,
            coupling,
            start,
            modulator,
            rule,
            &mut scratch.batch,
        )
    }

    fn trial_flops(frozen: &Frozen<Self>, samples: usize) -> f64 {
        frozen.plan.flops_per_trial(samples)
    }
}

/// The variance compensation of §3 for the MLP's trials: exp(m·c −
/// σ²c²/2) = exp(m·c)·exp(−σ²c²/2), so each neuron's F(a_ℓ) (rows of
/// `activity`) is scaled by its constant factor before the kernel, which
/// stays unchanged; exact, since the factor does not depend on the sample.
pub fn compensate(activity: &[f32], coupling: &[f32], variance: f32, out: &mut Vec<f32>) {
    out.clear();
    for row in activity.chunks_exact(coupling.len()) {
        out.extend(
            row.iter()
                .zip(coupling)
                .map(|(&u, &c)| u * (-0.5 * variance * c * c).exp()),
        );
    }
}

/// F(a_l) of every canvas of `inputs` with the modulation off at `m`
/// ([`Model::frozen_activity`]): for the gated layer on a body with dense
/// tiles, through [`dense_forward`] (the same bits, §4) from `packed`, the
/// canvases reordered and packed (packed here when not given). For
/// `retrain-last`'s sequence pass (500 canvases) in `comod bench` (AMD
/// EPYC Zen 4, AVX-512F) the tiles moved `online_retrain-last` from
/// 8.41–8.42 to 8.15–8.32 ms.
fn set_activity(
    model: &Model<f32>,
    inputs: &[f32],
    packed: Option<&PackedRows>,
    l: usize,
    m: f32,
) -> Vec<f32> {
    let body = Body::detect();
    if l != model.arch().gated_layer() || !has_dense_tiles(body) {
        return model.frozen_activity(inputs, l, m);
    }
    let packed_here;
    let packed = match packed {
        Some(packed) => packed,
        None => {
            packed_here = PackedRows::reordered(inputs, CANVAS_PIXELS, model.input_order());
            &packed_here
        }
    };
    let mut activity = vec![0.0; packed.rows() * model.arch().size(l)];
    let plan = DensePlan::new(model, m);
    let mut scratch = DenseScratch::default();
    dense_forward(body, &plan, packed, &mut activity, &mut scratch);
    activity
}

/// Multiply-adds of one example through layers `from..=L` (blocks only).
fn macs_from(model: &Model<f32>, from: usize) -> f64 {
    (from..=model.arch().depth())
        .map(|l| model.layer(l).shape.macs())
        .sum::<usize>() as f64
}

/// Where the steps of a method that trains to `depth` may start (§4):
/// every layer below what it trains is frozen.
#[derive(Clone, Copy)]
enum Start {
    /// From the modulated layer's F(a_ℓ): the coupling (and a readout).
    Modulated,
    /// From the gated layer's F(a_{L−1}): the readout alone.
    Gated,
}

impl Start {
    /// Where steps to `depth` start; none when every layer is trained.
    fn of(depth: Depth) -> Option<Start> {
        match depth {
            Depth::Coupling | Depth::CouplingAndReadout => Some(Start::Modulated),
            Depth::Readout => Some(Start::Gated),
            Depth::All => None,
        }
    }
}

/// The layer whose frozen activity F(a_l) the steps to `depth` start
/// from ([`Start`]).
fn step_start(model: &Model<f32>, depth: Depth) -> Option<usize> {
    Start::of(depth).map(|start| match start {
        Start::Modulated => model.arch().modulated_layer,
        Start::Gated => model.arch().gated_layer(),
    })
}

/// Multiply-adds of one example's training step to `depth` (§4), from
/// the frozen activity of layer `start` (else from the canvases): the
/// forward pass through the layers above it, then what
/// [`Model::backward`] multiplies ([`Model::backward_reach`]): each
/// trained layer's dW, and dX = dA_l·W_l of every layer whose input's
/// gradient dH_{l−1} is needed.
fn step_macs(model: &Model<f32>, start: Option<usize>, depth: Depth) -> f64 {
    let last = model.arch().depth();
    let macs = |l: usize| model.layer(l).shape.macs() as f64;
    let forward = macs_from(model, start.map_or(1, |l| l + 1));
    let reach = model.backward_reach(depth);
    // Layer 1's input is the canvas, whose gradient is never needed.
    let lowest_dx = (reach.lowest_dh + 1).max(2);
    let weights: f64 = (reach.lowest_weight..=last).map(macs).sum();
    let inputs: f64 = (lowest_dx..=last).map(macs).sum();
    forward + weights + inputs
}

/// Evaluates MLPs on [`EvalSet`]s with buffers reused across calls (§4):
/// forward at m = μ_m with the current coupling and gain, starting from
/// the deepest activity the method leaves frozen, into logits.
pub struct MlpEvaluator {
    body: Body,
    /// exp(m·c − β) per modulated neuron.
    factor: Vec<f32>,
    /// A set's packed gated activity times the gated layer's factor,
    /// where it is not 1.
    packed_gated: PackedRows,
    /// Logits, `[n, 10]` (only the readout's columns are written).
    logits: Vec<f32>,
    /// The readout's columns with the gain folded in.
    readout: PairedReadout,
    off: Modulation<f32>,
    scratch: KernelScratch,
    /// The retrained network's layers 1..L−1, packed at each evaluation.
    dense: DensePlan,
    dense_scratch: DenseScratch,
    /// The gated layer's factor with the modulation off, `[N_{L−1}]`.
    gated_factor: Vec<f32>,
    /// The retrained network's readout, packed at each evaluation.
    readout_layer: PackedLayer,
    rows_scratch: RowsScratch,
    /// The network's own forward pass of a chunk of rows, made at its first
    /// use (a body without dense tiles, or a fault's search), so that a
    /// run's evaluator does not zero one it never reads.
    ws: Option<Workspace<f32>>,
    /// The first non-finite tensor of the last unmodulated evaluation,
    /// searched for when a chunk's logits are not finite.
    fault: Option<Fault>,
}

impl MlpEvaluator {
    /// An evaluator for networks of `model`'s architecture whose modulated
    /// path runs on the kernel's `body` ([`Body::detect`] for the fastest).
    pub fn new(model: &Model<f32>, body: Body) -> MlpEvaluator {
        let arch = model.arch();
        MlpEvaluator {
            body,
            factor: vec![0.0; arch.coupling_len()],
            packed_gated: PackedRows::default(),
            logits: Vec::new(),
            readout: PairedReadout::default(),
            off: Modulation::off(arch),
            scratch: KernelScratch::default(),
            dense: DensePlan::default(),
            dense_scratch: DenseScratch::default(),
            gated_factor: Vec::new(),
            readout_layer: PackedLayer::default(),
            rows_scratch: RowsScratch::default(),
            ws: None,
            fault: None,
        }
    }

    /// The frozen network under `modulation` on `set` (the modulation
    /// methods): the set's packed F(a_ℓ) times exp(m·c − β), through the
    /// layers ℓ+1..L−1 on the kernel's packed weights, then the readout
    /// with the gain folded into its weights, for the readout's logits only.
    pub fn modulated(
        &mut self,
        frozen: &Frozen<Model<f32>>,
        modulation: &Modulation<f32>,
        set: &EvalSet<Model<f32>>,
        readout: Readout,
        m: f32,
    ) {
        let model = &frozen.net;
        let arch = model.arch();
        let n_gated = modulation.gain.len();
        self.logits.resize(set.len() * LOGITS, 0.0);
        modulation_factor(m, &modulation.coupling, arch.beta, &mut self.factor);
        let depth = arch.depth();
        let columns = readout.columns();
        let (weights, bias) = (model.weights(depth), model.bias(depth));
        self.readout.pack(weights, &modulation.gain, bias, &columns);
        let (readout, isa, logits) = (&self.readout, self.body.isa(), &mut self.logits);
        forward_rows(
            self.body,
            &frozen.plan,
            &set.cache().packed_activity,
            &self.factor,
            &mut self.scratch,
            |start, gated| {
                let rows = start..start + gated.len() / n_gated;
                let logits = &mut logits[rows.start * LOGITS..rows.end * LOGITS];
                readout.logits(isa, gated, logits);
            },
        );
    }

    /// `model` with the modulation off on `set`, retrained to `depth`, at
    /// modulator value `m`: from the set's frozen gated activity when only
    /// the readout changed, else from the canvases. On a SIMD body the
    /// layers run on the kernel's dense tiles ([`dense_blocks`] for
    /// layers 1..L−1, then [`dense_rows`] for the readout of each block, or
    /// [`dense_lanes`] from the set's gated activity along the lanes; all
    /// with the forward pass's bits), elsewhere on the network's forward
    /// pass.
    pub fn unmodulated(
        &mut self,
        model: &Model<f32>,
        set: &EvalSet<Model<f32>>,
        depth: Depth,
        m: f32,
    ) {
        let from_canvases = depth != Depth::Readout;
        self.logits.resize(set.len() * LOGITS, 0.0);
        self.fault = None;
        if has_dense_tiles(self.body) {
            self.unmodulated_on_tiles(model, set, from_canvases, m);
        } else {
            let ws = forward_workspace(&mut self.ws, model);
            for (chunk, logits) in self.logits.chunks_mut(EVAL_ROWS * LOGITS).enumerate() {
                let rows = chunk_rows(chunk, logits);
                unmodulated_pass(model, &self.off, ws, set, from_canvases, rows, m);
                logits.copy_from_slice(model.logits(ws));
            }
        }
        // Only the logits are scanned; the layers below are searched for
        // the first culprit, by the network's own forward pass of the
        // chunk of rows, once a logit is not finite.
        let chunks = self.logits.chunks(EVAL_ROWS * LOGITS).enumerate();
        let faulty = chunks
            .filter(|(_, logits)| first_non_finite(logits).is_some())
            .map(|(chunk, logits)| chunk_rows(chunk, logits))
            .next();
        if let Some(rows) = faulty {
            let start = rows.start;
            let ws = forward_workspace(&mut self.ws, model);
            unmodulated_pass(model, &self.off, ws, set, from_canvases, rows, m);
            self.fault = forward_fault(model, ws).map(|mut fault| {
                fault.tensor += &format!(" (evaluation rows from {start})");
                fault
            });
        }
    }

    /// [`MlpEvaluator::unmodulated`] on the dense tiles: the gated
    /// activity F(a_{L−1}) (from the canvases, a block of rows at a time,
    /// or the set's cache), times the gated layer's factor with the
    /// modulation off where it is not 1 (exp(−β) when the gated layer is
    /// the modulated one), through the readout. From the canvases, each
    /// block goes through the readout while it is in cache, where the whole
    /// set's gated activity was written, copied and read back:
    /// `online_retrain` in `comod bench` (AMD EPYC Zen 4, alternating runs)
    /// went from 443.6–445.4 to 428.0–429.5 ms per run with AVX-512F, from
    /// 510–539 to 484–488 ms with AVX2.
    fn unmodulated_on_tiles(
        &mut self,
        model: &Model<f32>,
        set: &EvalSet<Model<f32>>,
        from_canvases: bool,
        m: f32,
    ) {
        let cache = set.cache();
        let unscaled = self.prepare_readout(model, m);
        let (body, readout) = (self.body, &self.readout_layer);
        if from_canvases {
            self.dense.repack(model, m);
            let (logits, scratch) = (&mut self.logits, &mut self.rows_scratch);
            let factor = &self.gated_factor;
            let input = &cache.packed_input;
            dense_blocks(
                body,
                &self.dense,
                input,
                &mut self.dense_scratch,
                |start, gated| {
                    if !unscaled {
                        scale_rows(gated, factor);
                    }
                    let rows = gated.len() / factor.len();
                    let logits = &mut logits[start * LOGITS..(start + rows) * LOGITS];
                    dense_rows(body, readout, None, gated, rows, logits, scratch);
                },
            );
        } else {
            let gated = scaled_gated(cache, unscaled, &self.gated_factor, &mut self.packed_gated);
            dense_lanes(body, readout, None, gated, &mut self.logits);
        }
    }

    /// The gated layer's factor with the modulation off at `m` and the
    /// readout packed, for an evaluation on the tiles; true when the
    /// factor is 1 everywhere.
    fn prepare_readout(&mut self, model: &Model<f32>, m: f32) -> bool {
        let arch = model.arch();
        self.gated_factor.resize(arch.gain_len(), 0.0);
        model.layer_factor(arch.gated_layer(), &self.off, m, &mut self.gated_factor);
        self.readout_layer.repack(model, arch.depth());
        self.gated_factor.iter().all(|&s| s == 1.0)
    }

    /// The rows of `set` whose `readout` logits pick their label, for
    /// `model` retrained to its readout only, modulation off at `m` (the
    /// accuracy of `retrain-last`'s evaluations, §2, §4): counted from the
    /// readout's tiles as they leave the registers ([`lane_block_correct`]),
    /// where [`MlpEvaluator::unmodulated`] wrote the logits as rows, scanned
    /// them and [`correct_count`] read them back. The same logits and
    /// comparisons, so the same count. `None` on a body without dense
    /// tiles, or when a factor or a logit is not finite: the caller then
    /// evaluates through [`MlpEvaluator::unmodulated`], which names the
    /// fault (§6).
    pub fn readout_correct(
        &mut self,
        model: &Model<f32>,
        set: &EvalSet<Model<f32>>,
        readout: Readout,
        m: f32,
    ) -> Option<usize> {
        if !has_dense_tiles(self.body) || first_non_finite(&self.factor).is_some() {
            return None;
        }
        let unscaled = self.prepare_readout(model, m);
        let gated = scaled_gated(
            set.cache(),
            unscaled,
            &self.gated_factor,
            &mut self.packed_gated,
        );
        let (cols, labels) = (readout.columns(), set.labels());
        assert!(
            self.readout_layer.outputs <= PANEL,
            "the readout's logits are one panel"
        );
        let mut correct = Some(0);
        dense_lanes_blocks(
            self.body,
            &self.readout_layer,
            None,
            gated,
            |block, sums| {
                let rows = block.first_row..block.first_row + block.rows;
                let count = LaneCount {
                    width: block.width,
                    labels: &labels[rows],
                    cols: &cols,
                };
                let count = lane_block_correct(self.body, sums, count);
                correct = correct.zip(count).map(|(sum, count)| sum + count);
            },
        );
        correct
    }

    /// The logits of the last evaluation, finite or not (the network's
    /// forward pass would give the same): `[n, 10]`, after
    /// [`MlpEvaluator::modulated`] only the readout's columns meaningful.
    pub fn logits(&self) -> &[f32] {
        &self.logits
    }

    /// The logits of the last evaluation, `[n, 10]` (after
    /// [`MlpEvaluator::modulated`] only the readout's columns are
    /// meaningful), or the first tensor that turned non-finite in it
    /// (§6): the modulation factor, a layer of an unmodulated forward
    /// pass, or the logits.
    pub fn checked_logits(&self) -> Result<&[f32], Fault> {
        check_finite("modulation factor exp(m·c − β)", &self.factor)?;
        if let Some(fault) = &self.fault {
            return Err(fault.clone());
        }
        check_finite("logits", &self.logits)?;
        Ok(&self.logits)
    }
}

/// The set's gated activity along the lanes, times the gated layer's
/// `factor` (into `scaled`) unless it is 1 everywhere (`unscaled`).
fn scaled_gated<'a>(
    cache: &'a MlpCache,
    unscaled: bool,
    factor: &[f32],
    scaled: &'a mut PackedRows,
) -> &'a PackedRows {
    if unscaled {
        &cache.packed_gated
    } else {
        (cache.packed_gated).scale_inputs_into(factor, scaled);
        scaled
    }
}

/// The evaluator's workspace for the network's own forward pass of a
/// chunk of rows, made at its first use.
fn forward_workspace<'w>(
    ws: &'w mut Option<Workspace<f32>>,
    model: &Model<f32>,
) -> &'w mut Workspace<f32> {
    ws.get_or_insert_with(|| model.workspace(EVAL_ROWS))
}

/// The network's own forward pass, modulation `off`, of `rows` of `set`
/// into `ws`: from the canvases, or from the set's cached gated activity.
fn unmodulated_pass(
    model: &Model<f32>,
    off: &Modulation<f32>,
    ws: &mut Workspace<f32>,
    set: &EvalSet<Model<f32>>,
    from_canvases: bool,
    rows: Range<usize>,
    m: f32,
) {
    if from_canvases {
        let canvases = &set.inputs()[rows.start * CANVAS_PIXELS..rows.end * CANVAS_PIXELS];
        model.forward(ws, off, canvases, m);
    } else {
        let (gated, n) = (&set.cache().gated_activity, model.arch().gain_len());
        let layer = model.arch().gated_layer();
        model.forward_from(ws, off, layer, &gated[rows.start * n..rows.end * n], m);
    }
}

/// The rows of a set whose logits are `logits`, chunk `chunk` of
/// [`EVAL_ROWS`] rows.
fn chunk_rows(chunk: usize, logits: &[f32]) -> Range<usize> {
    chunk * EVAL_ROWS..chunk * EVAL_ROWS + logits.len() / LOGITS
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::Arch;

    /// Twice the multiply-adds of a step on two examples, written out from
    /// what each pass multiplies (forward from the start, each trained
    /// layer's dW, dX down to the lowest trained layer or to ℓ + 1).
    #[test]
    fn step_flops_count_what_each_step_multiplies() {
        let model = Model::<f32>::init(&Arch::preset("paper3", 1).unwrap(), 1);
        let [e, d, r] = [1, 2, 3].map(|l| model.layer(l).shape.macs() as f64);
        let (inputs, labels, activity) = (vec![0.0; 2 * CANVAS_PIXELS], [0u8; 2], [0.0; 1]);
        let batch = |cached: bool| Batch {
            inputs: &inputs,
            labels: &labels,
            activity: cached.then_some(&activity[..]),
        };
        let cases = [
            (Depth::All, false, 2.0 * e + 3.0 * d + 3.0 * r),
            (Depth::All, true, 2.0 * e + 3.0 * d + 3.0 * r),
            (Depth::Coupling, false, e + 2.0 * d + 2.0 * r),
            (Depth::Coupling, true, 2.0 * d + 2.0 * r),
            (Depth::CouplingAndReadout, true, 2.0 * d + 3.0 * r),
            (Depth::Readout, false, e + d + 2.0 * r),
            (Depth::Readout, true, 2.0 * r),
        ];
        for (depth, cached, macs) in cases {
            let flops = model.step_flops(batch(cached), depth);
            assert_eq!(flops, 2.0 * 2.0 * macs, "{depth:?}, cached {cached}");
        }
        // Modulated at layer 2 of four: the coupling's dX stops at layer 3.
        let model = Model::<f32>::init(&Arch::preset("deep4", 2).unwrap(), 1);
        let [e, d2, d3, r] = [1, 2, 3, 4].map(|l| model.layer(l).shape.macs() as f64);
        let flops = model.step_flops(batch(true), Depth::Coupling);
        assert_eq!(flops, 2.0 * 2.0 * (2.0 * d3 + 2.0 * r));
        let flops = model.step_flops(batch(false), Depth::Coupling);
        assert_eq!(flops, 2.0 * 2.0 * (e + d2 + 2.0 * d3 + 2.0 * r));
    }

    /// A sequence's activity is the layer each depth starts from, and its
    /// pass counts the layers below and at it.
    #[test]
    fn step_activity_starts_where_each_depth_does() {
        let model = Model::<f32>::init(&Arch::preset("deep4", 2).unwrap(), 1);
        let inputs: Vec<f32> = (0..3 * CANVAS_PIXELS)
            .map(|i| (i % 7) as f32 / 7.0)
            .collect();
        let [e, d2, d3] = [1, 2, 3].map(|l| model.layer(l).shape.macs() as f64);
        assert!(model.step_activity(&inputs, Depth::All, 1.0).is_none());
        for (depth, layer, macs) in [
            (Depth::Coupling, 2, e + d2),
            (Depth::CouplingAndReadout, 2, e + d2),
            (Depth::Readout, 3, e + d2 + d3),
        ] {
            let activity = model.step_activity(&inputs, depth, 1.0).unwrap();
            let mut ws = model.workspace(3);
            let off = Modulation::off(model.arch());
            let expected = model.activity_at(&mut ws, &off, &inputs, layer, 1.0);
            assert_eq!(activity.values, expected, "{depth:?}");
            assert_eq!(activity.flops, 2.0 * 3.0 * macs, "{depth:?}");
        }
    }
}
