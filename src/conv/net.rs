//! The convolutional multi-task network (§8) on flat buffers, generic
//! over [`Real`] so that the same code runs in f32 and, for the gradient
//! checks, in f64.
//!
//! Parameters live in one flat vector (stage by stage, weights then bias,
//! the heads last), as in the MLP, so that Adam, checkpoints and traces
//! see one tensor per stage. Feature maps are channel-last ([`super::ops`]).

use std::ops::Range;

use rand::RngExt;

use crate::conv::arch::{ConvArch, HEAD_LOGITS, Stage};
use crate::conv::direct::{self, ConvWeights};
use crate::conv::evaluation::{Evaluation, EvaluationPlan};
use crate::conv::modulator::{Modulator, channel_factors, scale_channels};
use crate::conv::workspace::ConvWorkspace;
use crate::conv::{ops, weight_grad};
use crate::data::Shape;
use crate::kernel::dense::dense_rows;
use crate::net::linalg::{Mat, MatMut, Real, first_non_finite, gemm};
use crate::net::simd::Isa;
use crate::net::{Depth, Grads, Nonlinearity};
use crate::rng::rng_for;

/// Rows per forward pass of an evaluation (a cache of a set, a held-out
/// accuracy): small enough that a pass's maps stay in the caches (a
/// conv-mnist pass of 60 rows holds about 3 MB; 250 rows were slower),
/// and a multiple of the dense tiles' 12 rows (64 rows left a tile of 4,
/// as costly as a whole one). The results do not depend on it.
pub const EVAL_ROWS: usize = 60;

/// What an evaluation pass ([`Evaluation`], §8) brings to [`ConvNet::pass`].
#[derive(Clone, Copy)]
pub(super) struct EvaluationPass<'a> {
    /// The dense stages' packed weights and their body.
    pub(super) plan: &'a EvaluationPlan,
    /// The first stage's input as the caller holds it, when scaled.
    pub(super) scaled_input: Option<ScaledInput<'a>>,
}

/// A conv stage's input maps bordered as the direct kernel reads them
/// ([`direct::pad_input`]), each channel c to be multiplied by `factor[c]`
/// (the modulation factor of §8's evaluations):
/// the stage folds the factors into its weights
/// ([`ConvWeights::repack_scaled`]) and reads the maps where they lie.
#[derive(Clone, Copy)]
pub(super) struct ScaledInput<'a> {
    pub(super) bordered: &'a [f32],
    pub(super) factor: &'a [f32],
}

/// Where a conv stage of a pass reads its input.
#[derive(Clone, Copy)]
enum ConvInput<'a> {
    /// Its map `acts[s]`, bordered into `padded[s]` first.
    Map,
    /// `padded[s]`, laid out already.
    Bordered,
    /// The caller's scaled maps.
    Scaled(ScaledInput<'a>),
}

impl<'a> ConvInput<'a> {
    /// The factors to fold into the stage's weights, if any.
    fn scale(self) -> Option<&'a [f32]> {
        match self {
            ConvInput::Scaled(input) => Some(input.factor),
            _ => None,
        }
    }

    /// The bordered maps the stage reads: the caller's, else `padded`
    /// (`padded[s]`, laid out by then).
    fn bordered_or<'b>(self, padded: &'b [f32]) -> &'b [f32]
    where
        'a: 'b,
    {
        match self {
            ConvInput::Scaled(input) => input.bordered,
            _ => padded,
        }
    }
}

/// Where one stage's (or the heads') parameters sit in the flat vector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamRange {
    /// Weights: conv `[C_out, k, k, C_in]`, dense and heads `[out, in]`.
    pub weights: Range<usize>,
    /// Biases `[out]`.
    pub bias: Range<usize>,
}

/// A convolutional multi-task network: architecture and parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct ConvNet<T> {
    arch: ConvArch,
    shapes: Vec<Shape>,
    ranges: Vec<Option<ParamRange>>,
    heads: ParamRange,
    /// All parameters, flat.
    pub params: Vec<T>,
}

impl<T: Real> ConvNet<T> {
    /// The same network with every weight and bias replaced by its
    /// absolute value: its forward pass from |x| under positive factors
    /// gives each value's magnitude, the scale of its rounding errors,
    /// against which the references and tests judge f32 results (§3, §8).
    pub fn magnitudes(&self) -> ConvNet<T> {
        let mut net = self.clone();
        net.params.iter_mut().for_each(|p| *p = p.abs());
        net
    }

    /// This network described by `arch`, which pretraining trains as it
    /// trains the network's own ([`ConvArch::pretrains_as`]): the same
    /// parameters, modulated where `arch` says. Panics for any other
    /// architecture.
    pub fn into_arch(self, arch: &ConvArch) -> ConvNet<T> {
        assert!(
            self.arch.pretrains_as(arch),
            "pretraining trains a network of {arch:?} otherwise"
        );
        ConvNet {
            arch: arch.clone(),
            ..self
        }
    }

    /// All parameters 0.
    pub fn zeros(arch: &ConvArch) -> ConvNet<T> {
        let shapes = arch.shapes();
        let mut next = 0;
        let mut take = |weights: usize, bias: usize| {
            let r = ParamRange {
                weights: next..next + weights,
                bias: next + weights..next + weights + bias,
            };
            next += weights + bias;
            r
        };
        let ranges = arch
            .stages
            .iter()
            .enumerate()
            .map(|(s, stage)| match *stage {
                Stage::Conv { channels, kernel } => Some(take(
                    channels * kernel * kernel * shapes[s].channels,
                    channels,
                )),
                Stage::Maxpool {} => None,
                Stage::Dense { size } => Some(take(size * shapes[s].len(), size)),
            })
            .collect();
        let heads = take(arch.logits() * arch.gated_size(), arch.logits());
        ConvNet {
            arch: arch.clone(),
            shapes,
            ranges,
            heads,
            params: vec![T::ZERO; next],
        }
    }

    /// A fresh network (§4): He-uniform U(±√(6/fan_in)) for the ReLU
    /// stages, LeCun-uniform U(±√(3/fan_in)) for the linear heads, biases 0.
    pub fn init(arch: &ConvArch, seed: u64) -> ConvNet<T> {
        let mut net = ConvNet::zeros(arch);
        let mut rng = rng_for(seed, &["conv-init".into()]);
        let fans: Vec<(Range<usize>, f64)> = net
            .ranges
            .iter()
            .flatten()
            .map(|r| (r.weights.clone(), 6.0))
            .chain([(net.heads.weights.clone(), 3.0)])
            .collect();
        for (i, (weights, scale)) in fans.into_iter().enumerate() {
            let outs = net
                .ranges
                .iter()
                .flatten()
                .nth(i)
                .map_or(arch.logits(), |r| r.bias.len());
            let fan_in = (weights.len() / outs) as f64;
            let bound = (scale / fan_in).sqrt();
            for w in &mut net.params[weights] {
                *w = T::from_f64(rng.random_range(-bound..bound));
            }
        }
        net
    }

    /// Replaces head `t` by a fresh one drawn from `seed` as [`ConvNet::init`]
    /// draws the heads (weights U(±√(3/N)), biases 0): the start of a
    /// held-out task under `held-out` (§8), the same for every method.
    pub fn fresh_head(&mut self, t: usize, seed: u64) {
        let mut rng = rng_for(seed, &["fresh-head".into()]);
        let (weights, bias) = self.head_of(t);
        let bound = (3.0 / self.arch.gated_size() as f64).sqrt();
        for w in &mut self.params[weights] {
            *w = T::from_f64(rng.random_range(-bound..bound));
        }
        self.params[bias].fill(T::ZERO);
    }

    /// The architecture.
    pub fn arch(&self) -> &ConvArch {
        &self.arch
    }

    /// Shapes into and out of each stage ([`ConvArch::shapes`]).
    pub fn shapes(&self) -> &[Shape] {
        &self.shapes
    }

    /// Parameter ranges of stage `s` (0-based); `None` for a max-pool.
    pub fn stage_params(&self, s: usize) -> Option<&ParamRange> {
        self.ranges[s].as_ref()
    }

    /// Parameter ranges of the heads.
    pub fn head_params(&self) -> &ParamRange {
        &self.heads
    }

    /// The range of task `t`'s head (its 2 rows of weights and 2 biases),
    /// as (weights, bias).
    pub fn head_of(&self, t: usize) -> (Range<usize>, Range<usize>) {
        let n = self.arch.gated_size();
        let w0 = self.heads.weights.start + t * HEAD_LOGITS * n;
        let b0 = self.heads.bias.start + t * HEAD_LOGITS;
        (w0..w0 + HEAD_LOGITS * n, b0..b0 + HEAD_LOGITS)
    }

    /// Zero gradients.
    pub fn zero_grads(&self) -> Grads<T> {
        Grads {
            params: vec![T::ZERO; self.params.len()],
            coupling: vec![T::ZERO; self.arch.modulated_channels()],
        }
    }

    /// A workspace (buffers grow on demand).
    pub fn workspace(&self) -> ConvWorkspace<T> {
        let n = self.arch.stages.len();
        ConvWorkspace {
            acts: vec![Vec::new(); n + 1],
            cols: vec![Vec::new(); n],
            packed: vec![ConvWeights::default(); n],
            padded: vec![Vec::new(); n],
            ..ConvWorkspace::default()
        }
    }

    /// The forward passes of one evaluation, with the same bits as
    /// [`ConvNet::forward`] ([`Evaluation`]).
    pub fn evaluation(&self) -> Evaluation<'_, T> {
        Evaluation::new(self)
    }

    /// The whole forward pass of `rows` images (`[rows, H, W, C]`), with
    /// the modulator (none: factor 1) and the gain g (none: 1).
    pub fn forward(
        &self,
        ws: &mut ConvWorkspace<T>,
        images: &[T],
        rows: usize,
        modulator: Option<&Modulator<'_, T>>,
        gain: Option<&[T]>,
    ) {
        self.forward_stages(ws, images, rows, 0..self.arch.stages.len(), modulator, gain);
    }

    /// Runs stages `stages` (0-based) on `input`, the input of the first of
    /// them; when they reach the last stage, the gain and the heads too.
    /// A trial runs the stages up to the modulated one once, then the rest
    /// for all its modulator samples (§3).
    pub fn forward_stages(
        &self,
        ws: &mut ConvWorkspace<T>,
        input: &[T],
        rows: usize,
        stages: Range<usize>,
        modulator: Option<&Modulator<'_, T>>,
        gain: Option<&[T]>,
    ) {
        ws.set_stage_input(stages.start, input);
        self.run_stages(ws, rows, stages, modulator, gain);
    }

    /// [`ConvNet::forward_stages`] on the input already in
    /// [`ConvWorkspace::stage_input_mut`]`(stages.start)`.
    pub fn run_stages(
        &self,
        ws: &mut ConvWorkspace<T>,
        rows: usize,
        stages: Range<usize>,
        modulator: Option<&Modulator<'_, T>>,
        gain: Option<&[T]>,
    ) {
        self.pass(ws, rows, stages, modulator, gain, None);
    }

    /// [`ConvNet::run_stages`]; with `evaluation` (an [`Evaluation`]'s
    /// pass), a conv stage and the max-pool after it run as one and the
    /// dense stages on the packed weights, with the same bits, and the
    /// first stage may read the caller's scaled input.
    pub(super) fn pass(
        &self,
        ws: &mut ConvWorkspace<T>,
        rows: usize,
        stages: Range<usize>,
        modulator: Option<&Modulator<'_, T>>,
        gain: Option<&[T]>,
        evaluation: Option<EvaluationPass<'_>>,
    ) {
        let n = self.arch.stages.len();
        // Which conv stage's input is in its `ws.padded` already (laid out
        // by the caller, or by the pooled conv stage before it).
        let mut bordered = ws.bordered.take().filter(|&s| s == stages.start);
        let scaled_input = evaluation.and_then(|e| e.scaled_input);
        if scaled_input.is_some() {
            ws.acts[stages.start].clear();
        } else if bordered.is_none() {
            assert_eq!(
                ws.acts[stages.start].len(),
                rows * self.shapes[stages.start].len(),
                "input size"
            );
        }
        ws.rows = rows;
        let modulated = self.arch.modulated_stage - 1;
        ws.proven_finite.resize(n + 1, false);
        ws.proven_finite[stages.start] = false;
        let mut pooled_already = false;
        for s in stages.clone() {
            if std::mem::take(&mut pooled_already) {
                continue;
            }
            let pool_next = s + 1 < stages.end
                && matches!(self.arch.stages[s + 1], Stage::Maxpool {})
                && !(s == modulated && modulator.is_some());
            let input = match (scaled_input, bordered == Some(s)) {
                (Some(scaled), _) if s == stages.start => ConvInput::Scaled(scaled),
                (_, true) => ConvInput::Bordered,
                _ => ConvInput::Map,
            };
            if evaluation.is_some() && pool_next {
                // The next conv stage's input bordered as it reads it,
                // when the pooled map is its input.
                let next = s + 2;
                let border = match self.arch.stages.get(next) {
                    Some(&Stage::Conv { kernel, .. }) if next < stages.end => Some(kernel / 2),
                    _ => None,
                };
                if self.conv_pooled(ws, rows, s, input, border) {
                    if s == modulated {
                        // Unmodulated, as the pass below would record it.
                        ws.factors.clear();
                    }
                    bordered = border.map(|_| next);
                    pooled_already = true;
                    continue;
                }
            }
            let (inp, out) = (self.shapes[s], self.shapes[s + 1]);
            let (below, above) = ws.acts.split_at_mut(s + 1);
            let (x, y) = (&below[s], &mut above[0]);
            y.resize(rows * out.len(), T::ZERO);
            match self.arch.stages[s] {
                Stage::Conv { kernel, .. } => {
                    let r = self.ranges[s].as_ref().expect("conv has parameters");
                    let (weights, bias) = (
                        &self.params[r.weights.clone()],
                        &self.params[r.bias.clone()],
                    );
                    match (as_f32(x), as_f32(weights), as_f32(bias)) {
                        (Some(x), Some(weights), Some(bias)) => {
                            // f32: the direct SIMD kernel (ReLU included).
                            let packed = &mut ws.packed[s];
                            packed.repack_scaled(
                                weights,
                                bias,
                                kernel,
                                inp.channels,
                                input.scale(),
                            );
                            if let ConvInput::Map = input {
                                direct::pad_input(x, rows, inp, kernel, &mut ws.padded[s]);
                            }
                            ws.proven_finite[s + 1] = direct::conv_relu(
                                Isa::selected(),
                                input.bordered_or(&ws.padded[s]),
                                rows,
                                inp,
                                packed,
                                bytemuck::cast_slice_mut(y),
                            );
                        }
                        _ => {
                            ws.proven_finite[s + 1] = false;
                            let cols = &mut ws.cols[s];
                            cols.resize(
                                rows * inp.pixels() * kernel * kernel * inp.channels,
                                T::ZERO,
                            );
                            ops::im2col(x, rows, inp, kernel, cols);
                            ops::conv_forward(cols, weights, bias, y);
                            relu(y);
                        }
                    }
                    if s == modulated {
                        if let Some(modulator) = modulator {
                            ws.unmodulated.clone_from(y);
                            channel_factors(modulator, rows, &mut ws.factors);
                            ws.m.clear();
                            ws.m.extend_from_slice(modulator.m);
                            ws.coupling.clear();
                            ws.coupling.extend_from_slice(modulator.coupling);
                            ws.variance = modulator.variance;
                            scale_channels(y, &ws.factors, out.channels);
                            ws.proven_finite[s + 1] = false;
                        } else {
                            ws.factors.clear();
                        }
                    }
                }
                Stage::Maxpool {} => {
                    ops::maxpool_forward(x, rows, inp, y);
                    ws.proven_finite[s + 1] = ws.proven_finite[s];
                }
                Stage::Dense { size } => {
                    ws.proven_finite[s + 1] = false;
                    let packed =
                        evaluation.and_then(|e| Some((e.plan.body, e.plan.dense[s].as_ref()?)));
                    match (packed, as_f32(x), as_f32_mut(y)) {
                        (Some((body, layer)), Some(x), Some(y)) => {
                            dense_rows(
                                body,
                                layer,
                                Some(Nonlinearity::Relu),
                                x,
                                rows,
                                y,
                                &mut ws.dense_rows,
                            );
                        }
                        _ => {
                            let r = self.ranges[s].as_ref().expect("dense has parameters");
                            dense_stage_forward(
                                x,
                                &self.params[r.weights.clone()],
                                &self.params[r.bias.clone()],
                                rows,
                                inp.len(),
                                size,
                                y,
                            );
                            relu(y);
                        }
                    }
                    if s == n - 1 {
                        ws.gated.clone_from(y);
                        ws.gain.clear();
                        if let Some(g) = gain {
                            ws.gain.extend_from_slice(g);
                            for row in y.chunks_exact_mut(size) {
                                for (v, &gj) in row.iter_mut().zip(g) {
                                    *v *= gj;
                                }
                            }
                        }
                    }
                }
            }
        }
        if stages.end == n {
            let h = &ws.acts[n];
            ws.logits.resize(rows * self.arch.logits(), T::ZERO);
            dense_stage_forward(
                h,
                &self.params[self.heads.weights.clone()],
                &self.params[self.heads.bias.clone()],
                rows,
                self.arch.gated_size(),
                self.arch.logits(),
                &mut ws.logits,
            );
        }
    }

    /// Conv stage `s` and the max-pool after it in one pass that writes
    /// only the pooled map ([`direct::conv_relu_pool`]; the conv map is
    /// left empty), for an evaluation pass ([`Evaluation`]), on `input`. With `border`, the
    /// pooled map goes to `ws.padded[s + 2]` with that zero border, the
    /// input of the conv stage after the pool (`acts[s + 2]` is left
    /// empty).
    /// False, and nothing to use, when the stage does not qualify (not a
    /// conv stage, not f32, an odd map) or an output of the conv stage is
    /// not finite: the caller then runs both stages as usual, so that the
    /// fault search finds that output where it is (§6).
    fn conv_pooled(
        &self,
        ws: &mut ConvWorkspace<T>,
        rows: usize,
        s: usize,
        input: ConvInput<'_>,
        border: Option<usize>,
    ) -> bool {
        let (inp, out) = (self.shapes[s], self.shapes[s + 1]);
        let Stage::Conv { kernel, .. } = self.arch.stages[s] else {
            return false;
        };
        if out.height % 2 == 1 || out.width % 2 == 1 {
            return false;
        }
        let r = self.ranges[s].as_ref().expect("conv has parameters");
        let (weights, bias) = (
            &self.params[r.weights.clone()],
            &self.params[r.bias.clone()],
        );
        let (Some(x), Some(weights), Some(bias)) =
            (as_f32(&ws.acts[s]), as_f32(weights), as_f32(bias))
        else {
            return false;
        };
        ws.packed[s].repack_scaled(weights, bias, kernel, inp.channels, input.scale());
        if let ConvInput::Map = input {
            direct::pad_input(x, rows, inp, kernel, &mut ws.padded[s]);
        }
        let pooled = self.shapes[s + 2];
        let (input, out): (&[f32], &mut [f32]) = match border {
            Some(border) => {
                let (below, above) = ws.padded.split_at_mut(s + 2);
                above[0].resize(rows * pooled.bordered(border).len(), 0.0);
                (input.bordered_or(&below[s]), &mut above[0])
            }
            None => {
                let map = &mut ws.acts[s + 2];
                map.resize(rows * pooled.len(), T::ZERO);
                (
                    input.bordered_or(&ws.padded[s]),
                    bytemuck::cast_slice_mut(map),
                )
            }
        };
        let border = border.unwrap_or(0);
        let isa = Isa::selected();
        let finite = direct::conv_relu_pool(isa, input, rows, inp, &ws.packed[s], border, out);
        if finite && border > 0 {
            // The pooled map is only in the next stage's bordered input.
            ws.acts[s + 2].clear();
        }
        if finite {
            ws.acts[s + 1].clear();
            ws.proven_finite[s + 1] = true;
            ws.proven_finite[s + 2] = true;
        }
        finite
    }

    /// The first output of the last forward pass (stage by stage, then
    /// the logits) that holds a non-finite value, by name, with that
    /// value's index and value (§6).
    pub fn first_non_finite(&self, ws: &ConvWorkspace<T>) -> Option<(String, usize, f64)> {
        let n = self.arch.stages.len();
        let proven = |s: usize| ws.proven_finite.get(s).copied().unwrap_or(false);
        let outputs = (1..=n).map(|s| &ws.acts[s][..]).chain([&ws.logits[..]]);
        let (s, (values, i)) = (1..).zip(outputs).find_map(|(s, values)| {
            let found = (!proven(s)).then(|| first_non_finite(values)).flatten();
            found.map(|i| (s, (values, i)))
        })?;
        let name = match self.arch.stages.get(s - 1) {
            None => "logits".to_string(),
            Some(Stage::Conv { .. }) if s == self.arch.modulated_stage => {
                format!("output of stage {s} (conv, modulated)")
            }
            Some(Stage::Conv { .. }) => format!("output of stage {s} (conv)"),
            Some(Stage::Maxpool {}) => format!("output of stage {s} (maxpool)"),
            Some(Stage::Dense { .. }) if s == n => format!("output of stage {s} (dense, gated)"),
            Some(Stage::Dense { .. }) => format!("output of stage {s} (dense)"),
        };
        Some((name, i, values[i].to_f64()))
    }

    /// The backward pass of the last [`ConvNet::forward`] for `dlogits`
    /// (`[rows, 2·tasks]`), to `depth`; gradients are accumulated into
    /// `grads` (the coupling's is written).
    pub fn backward(
        &self,
        ws: &mut ConvWorkspace<T>,
        dlogits: &[T],
        depth: Depth,
        grads: &mut Grads<T>,
    ) {
        let n = self.arch.stages.len();
        let rows = ws.rows;
        let width = self.arch.gated_size();
        let logits = self.arch.logits();
        let h = &ws.acts[n];
        let (dw, db) = split_two(&mut grads.params, &self.heads.weights, &self.heads.bias);
        dense_stage_backward(
            h,
            &self.params[self.heads.weights.clone()],
            dlogits,
            rows,
            width,
            logits,
            dw,
            db,
            (depth != Depth::Readout).then_some(&mut ws.grad_a),
        );
        if depth == Depth::Readout {
            return;
        }
        let modulated = self.arch.modulated_stage - 1;
        let lowest = if depth == Depth::All { 0 } else { modulated };
        let weights_too = depth == Depth::All;
        // ws.grad_a holds d loss / d (output of stage s) on entry to each step.
        for s in (lowest..n).rev() {
            let (inp, out) = (self.shapes[s], self.shapes[s + 1]);
            let need_input_grad = s > lowest;
            let dy = &mut ws.grad_a;
            match self.arch.stages[s] {
                Stage::Dense { size } => {
                    let r = self.ranges[s].as_ref().expect("dense");
                    let z = if s == n - 1 {
                        &ws.gated
                    } else {
                        &ws.acts[s + 1]
                    };
                    for (i, d) in dy.iter_mut().enumerate() {
                        let gate = if s == n - 1 && !ws.gain.is_empty() {
                            ws.gain[i % size]
                        } else {
                            T::ONE
                        };
                        if z[i] <= T::ZERO {
                            *d = T::ZERO;
                        } else {
                            *d *= gate;
                        }
                    }
                    let x = &ws.acts[s];
                    if weights_too {
                        let (dw, db) = split_two(&mut grads.params, &r.weights, &r.bias);
                        dense_stage_backward(
                            x,
                            &self.params[r.weights.clone()],
                            dy,
                            rows,
                            inp.len(),
                            size,
                            dw,
                            db,
                            need_input_grad.then_some(&mut ws.grad_b),
                        );
                    } else if need_input_grad {
                        input_grad(
                            &self.params[r.weights.clone()],
                            dy,
                            rows,
                            inp.len(),
                            size,
                            &mut ws.grad_b,
                        );
                    }
                }
                Stage::Maxpool {} => {
                    ws.grad_b.resize(rows * inp.len(), T::ZERO);
                    ops::maxpool_backward(
                        &ws.acts[s],
                        &ws.acts[s + 1],
                        dy,
                        rows,
                        inp,
                        &mut ws.grad_b,
                    );
                }
                Stage::Conv { kernel, .. } => {
                    let r = self.ranges[s].as_ref().expect("conv");
                    let y = &ws.acts[s + 1];
                    if s == modulated && !ws.factors.is_empty() {
                        coupling_grad(ws, &mut grads.coupling, out.channels);
                        let dy = &mut ws.grad_a;
                        scale_channels(dy, &ws.factors, out.channels);
                    }
                    let dy = &mut ws.grad_a;
                    // A select, not a conditional store, so that it vectorises.
                    for (d, &v) in dy.iter_mut().zip(y.iter()) {
                        *d = if v <= T::ZERO { T::ZERO } else { *d };
                    }
                    if s == modulated && depth != Depth::All {
                        break;
                    }
                    let patch = kernel * kernel * inp.channels;
                    let weights = &self.params[r.weights.clone()];
                    // f32: the input gradient by the direct kernel; f64 (the
                    // gradient checks): dcols = dy·W, then col2im.
                    let direct = need_input_grad && as_f32(weights).is_some();
                    if direct {
                        ws.grad_b.resize(rows * inp.len(), T::ZERO);
                        direct::conv_input_grad(
                            Isa::selected(),
                            as_f32(dy).expect("f32"),
                            rows,
                            inp,
                            as_f32(weights).expect("f32"),
                            kernel,
                            out.channels,
                            (&mut ws.packed[s], &mut ws.padded[s]),
                            bytemuck::cast_slice_mut(&mut ws.grad_b),
                        );
                    }
                    let dcols = if need_input_grad && !direct {
                        ws.grad_cols.resize(rows * inp.pixels() * patch, T::ZERO);
                        Some(&mut ws.grad_cols[..])
                    } else {
                        None
                    };
                    let (dw, db) = split_two(&mut grads.params, &r.weights, &r.bias);
                    // f32 on a SIMD body: dW from the bordered map, no im2col
                    // (the same bits); else, and for f64, the product form.
                    let geometry = weight_grad::Geometry {
                        batch: rows,
                        shape: inp,
                        kernel,
                        c_out: out.channels,
                    };
                    let from_map = dcols.is_none()
                        && match (as_f32(&ws.acts[s]), as_f32(dy), as_f32_mut(dw)) {
                            (Some(x), Some(dy), Some(dw)) => {
                                direct::pad_input(x, rows, inp, kernel, &mut ws.padded[s]);
                                weight_grad::try_weight_grad(
                                    Isa::selected(),
                                    geometry,
                                    &ws.padded[s],
                                    dy,
                                    dw,
                                )
                            }
                            _ => false,
                        };
                    if from_map {
                        ops::bias_grad(dy, db);
                    } else {
                        let cols = &mut ws.cols[s];
                        cols.resize(rows * inp.pixels() * patch, T::ZERO);
                        ops::im2col(&ws.acts[s], rows, inp, kernel, cols);
                        let weights = &self.params[r.weights.clone()];
                        ops::conv_backward(cols, weights, dy, dw, db, dcols);
                    }
                    if need_input_grad && !direct {
                        ws.grad_b.resize(rows * inp.len(), T::ZERO);
                        ops::col2im(&ws.grad_cols, rows, inp, kernel, &mut ws.grad_b);
                    }
                }
            }
            std::mem::swap(&mut ws.grad_a, &mut ws.grad_b);
        }
    }
}

/// The coupling's gradient at the modulated stage: with factor
/// f_bk = exp(m_b c_k − σ² c_k²/2 − β), d f_bk / d c_k = (m_b − σ² c_k)·f_bk,
/// so dc_k = Σ_b (m_b − σ² c_k)·f_bk·Σ_p dy_bpk·u_bpk, u the stage's
/// output before the factor. Written, not accumulated.
fn coupling_grad<T: Real>(ws: &ConvWorkspace<T>, dc: &mut [T], channels: usize) {
    dc.fill(T::ZERO);
    let rows = ws.rows;
    let per_row = ws.unmodulated.len() / rows.max(1);
    for b in 0..rows {
        let mut sums = vec![T::ZERO; channels];
        let (u, d) = (
            &ws.unmodulated[b * per_row..(b + 1) * per_row],
            &ws.grad_a[b * per_row..(b + 1) * per_row],
        );
        for (up, dp) in u.chunks_exact(channels).zip(d.chunks_exact(channels)) {
            for k in 0..channels {
                sums[k] += up[k] * dp[k];
            }
        }
        for k in 0..channels {
            let f = ws.factors[b * channels + k];
            dc[k] += sums[k] * f * (ws.m[b] - ws.variance * ws.coupling[k]);
        }
    }
}

fn split_two<'a, T>(
    params: &'a mut [T],
    a: &Range<usize>,
    b: &Range<usize>,
) -> (&'a mut [T], &'a mut [T]) {
    assert_eq!(a.end, b.start, "bias follows weights");
    let (_, rest) = params.split_at_mut(a.start);
    let (w, rest) = rest.split_at_mut(a.len());
    (w, &mut rest[..b.len()])
}

/// `x` as f32 values when T is f32 (the direct kernel's type).
pub(super) fn as_f32<T: Real>(x: &[T]) -> Option<&[f32]> {
    (std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>()).then(|| bytemuck::cast_slice(x))
}

/// `x` as mutable f32 values when T is f32.
fn as_f32_mut<T: Real>(x: &mut [T]) -> Option<&mut [f32]> {
    (std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>())
        .then(|| bytemuck::cast_slice_mut(x))
}

fn relu<T: Real>(x: &mut [T]) {
    for v in x {
        *v = v.max(T::ZERO);
    }
}

/// y[rows, out] = x[rows, inp]·Wᵀ + b.
fn dense_stage_forward<T: Real>(
    x: &[T],
    w: &[T],
    b: &[T],
    rows: usize,
    inp: usize,
    out: usize,
    y: &mut [T],
) {
    for row in y.chunks_exact_mut(out) {
        row.copy_from_slice(b);
    }
    gemm(
        Mat::row_major(x, rows, inp),
        Mat::row_major(w, out, inp).t(),
        true,
        MatMut::row_major(y, rows, out),
    );
}

/// dW += dyᵀ·x, db += Σ_rows dy, and (when asked) dx = dy·W.
#[allow(clippy::too_many_arguments)]
fn dense_stage_backward<T: Real>(
    x: &[T],
    w: &[T],
    dy: &[T],
    rows: usize,
    inp: usize,
    out: usize,
    dw: &mut [T],
    db: &mut [T],
    dx: Option<&mut Vec<T>>,
) {
    gemm(
        Mat::row_major(dy, rows, out).t(),
        Mat::row_major(x, rows, inp),
        true,
        MatMut::row_major(dw, out, inp),
    );
    for row in dy.chunks_exact(out) {
        for (d, &g) in db.iter_mut().zip(row) {
            *d += g;
        }
    }
    if let Some(dx) = dx {
        input_grad(w, dy, rows, inp, out, dx);
    }
}

/// dx[rows, inp] = dy[rows, out]·W.
fn input_grad<T: Real>(w: &[T], dy: &[T], rows: usize, inp: usize, out: usize, dx: &mut Vec<T>) {
    dx.resize(rows * inp, T::ZERO);
    gemm(
        Mat::row_major(dy, rows, out),
        Mat::row_major(w, out, inp),
        false,
        MatMut::row_major(dx, rows, inp),
    );
}
