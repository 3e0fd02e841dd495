//! The forward passes of an evaluation (§8): the cache of a set, the
//! held-out accuracies, the measurements of a run, and a trial's stages
//! above its mixed partials. No backward pass follows them, so
//! - a conv stage followed by a max-pool runs as one pass that writes
//!   only the pooled map ([`crate::conv::direct::conv_relu_pool`]);
//! - a conv stage's input is written once, bordered as the direct kernel
//!   reads it: by the pooled conv stage before it or by the caller's
//!   copy, or read where the caller holds it (the modulated network's
//!   cached maps, their channels' factors folded into the stage's
//!   weights: [`Evaluation::run_scaled`]);
//! - the dense stages run on the kernel's dense tiles
//!   ([`crate::kernel::dense::dense_rows`]), their weights packed once
//!   ([`EvaluationPlan`]: per evaluation, or once for a frozen network),
//!   where `matrixmultiply` packs them again for every pass of
//!   [`EVAL_ROWS`](crate::conv::net::EVAL_ROWS) rows.
//!
//! Both give the bits of the network's plain forward pass, and the same
//! fault (§6) when a value is not finite; the folded factors agree with
//! it to rounding.

use std::borrow::Cow;
use std::ops::Range;

use crate::conv::arch::Stage;
use crate::conv::direct;
use crate::conv::modulator::scaled_channels;
use crate::conv::net::{ConvNet, EvaluationPass, ScaledInput, as_f32};
use crate::conv::workspace::ConvWorkspace;
use crate::data::Shape;
use crate::kernel::Body;
use crate::kernel::dense::has_dense_tiles;
use crate::kernel::plan::PackedLayer;
use crate::net::linalg::Real;

/// The dense stages' weights packed for the kernel's tiles, and the body
/// that runs them: what an evaluation pass adds to a plain one. A frozen
/// network keeps one for all of its evaluations and trials (§4).
#[derive(Clone, Debug)]
pub struct EvaluationPlan {
    /// The body of the dense tiles.
    pub(super) body: Body,
    /// Per stage: a dense stage's packed weights (f32 networks on a SIMD
    /// body), else none (the stage runs as in a plain pass).
    pub(super) dense: Vec<Option<PackedLayer>>,
}

impl EvaluationPlan {
    /// Packs the dense stages of `net` for `body` (on a body without
    /// dense tiles, they run as in a plain pass).
    pub fn new<T: Real>(net: &ConvNet<T>, body: Body) -> EvaluationPlan {
        let arch = net.arch();
        let dense = (0..arch.stages.len())
            .map(|s| {
                let Stage::Dense { size } = arch.stages[s] else {
                    return None;
                };
                if !has_dense_tiles(body) {
                    return None;
                }
                let range = net.stage_params(s).expect("dense has parameters");
                let weights = as_f32(&net.params[range.weights.clone()])?;
                let bias = as_f32(&net.params[range.bias.clone()])?;
                Some(PackedLayer::dense(
                    weights,
                    bias,
                    net.shapes()[s].len(),
                    size,
                ))
            })
            .collect();
        EvaluationPlan { body, dense }
    }
}

/// Forward passes of one evaluation of `net`. It borrows the network, so
/// its parameters cannot change while the packed weights are in use:
/// create one for each evaluation, or keep the plan beside a network
/// that does not change (a frozen network's).
pub struct Evaluation<'n, T> {
    net: &'n ConvNet<T>,
    plan: Cow<'n, EvaluationPlan>,
}

impl<'n, T: Real> Evaluation<'n, T> {
    /// Packs the dense stages of `net` for the fastest body this process
    /// may use ([`Body::detect`]).
    pub fn new(net: &'n ConvNet<T>) -> Evaluation<'n, T> {
        Evaluation::on(net, Body::detect())
    }

    /// Packs the dense stages of `net` for `body` (on a body without
    /// dense tiles, they run as in a plain pass).
    pub fn on(net: &'n ConvNet<T>, body: Body) -> Evaluation<'n, T> {
        Evaluation {
            net,
            plan: Cow::Owned(EvaluationPlan::new(net, body)),
        }
    }

    /// The passes of `net` on `plan`, which must have been made for it
    /// and it not changed since: a frozen network's, kept beside it.
    pub(crate) fn planned(net: &'n ConvNet<T>, plan: &'n EvaluationPlan) -> Evaluation<'n, T> {
        Evaluation {
            net,
            plan: Cow::Borrowed(plan),
        }
    }

    /// The network.
    pub fn net(&self) -> &'n ConvNet<T> {
        self.net
    }

    /// The whole forward pass of `rows` images (`[rows, H, W, C]`), the
    /// modulation off and the gain 1 ([`ConvNet::forward`]).
    pub fn forward(&self, ws: &mut ConvWorkspace<T>, images: &[T], rows: usize) {
        self.forward_stages(ws, images, rows, 0..self.net.arch().stages.len());
    }

    /// Stages `stages` on `input` ([`ConvNet::forward_stages`]), the
    /// modulation off and the gain 1.
    pub fn forward_stages(
        &self,
        ws: &mut ConvWorkspace<T>,
        input: &[T],
        rows: usize,
        stages: Range<usize>,
    ) {
        match self.bordered_conv(stages.start) {
            Some((shape, kernel)) => {
                let input = as_f32(input).expect("an f32 network");
                let bordered = ws.bordered_input_mut(stages.start);
                direct::pad_input(input, rows, shape, kernel, bordered);
            }
            None => ws.set_stage_input(stages.start, input),
        }
        self.run_stages(ws, rows, stages, None);
    }

    /// The input shape and kernel of stage `s` when it is a conv stage
    /// that reads its input bordered (an f32 network), else none.
    fn bordered_conv(&self, s: usize) -> Option<(Shape, usize)> {
        let Stage::Conv { kernel, .. } = self.net.arch().stages.get(s)? else {
            return None;
        };
        let f32_network = as_f32(&self.net.params).is_some();
        f32_network.then(|| (self.net.shapes()[s], *kernel))
    }

    /// Stages `stages` on the input already in
    /// [`ConvWorkspace::stage_input_mut`] ([`ConvNet::run_stages`]), the
    /// modulation off, with the gain g (none: 1).
    pub fn run_stages(
        &self,
        ws: &mut ConvWorkspace<T>,
        rows: usize,
        stages: Range<usize>,
        gain: Option<&[T]>,
    ) {
        let pass = EvaluationPass {
            plan: &self.plan,
            scaled_input: None,
        };
        self.net.pass(ws, rows, stages, None, gain, Some(pass));
    }
}

impl Evaluation<'_, f32> {
    /// The input of stage `s` in the last pass on `ws`, as
    /// [`Evaluation::run_scaled`] takes it (a test set's cache, §4, §8): bordered as the direct kernel
    /// reads it for a conv stage (`[rows, H+2p, W+2p, C]`, p = k/2), else
    /// the maps `[rows, H, W, C]`. A pass that ran stage `s` on an input
    /// of its own holds it (not one that read [`Evaluation::run_scaled`]'s
    /// input there).
    pub fn stage_input<'w>(&self, ws: &'w ConvWorkspace<f32>, s: usize) -> &'w [f32] {
        match self.bordered_conv(s) {
            Some(_) => &ws.padded[s],
            None => ws.activation(s),
        }
    }

    /// Stages `stages` on `input` (the first stage's input for `rows`
    /// rows, laid out as [`Evaluation::stage_input`] gives it) with
    /// channel c of every row multiplied by `factor[c]`, the modulation
    /// off, with the gain g (none: 1): the modulated network's evaluation
    /// (§8, the factor exp(m·c − β) at m = μ_m). A conv stage folds the factors
    /// into its weights ((x ⊙ f) ∗ W = x ∗ (W·diag(f)), one rounding per
    /// weight instead of one per value of the maps: the results agree
    /// with the scaled maps' pass to rounding, not bit for bit) and reads
    /// the maps where they lie; other stages run on the maps scaled as
    /// [`scaled_channels`] writes them, with their bits.
    pub fn run_scaled(
        &self,
        ws: &mut ConvWorkspace<f32>,
        (input, factor): (&[f32], &[f32]),
        rows: usize,
        stages: Range<usize>,
        gain: Option<&[f32]>,
    ) {
        let shape = self.net.shapes()[stages.start];
        assert_eq!(factor.len(), shape.channels, "one factor per channel");
        let Some((_, kernel)) = self.bordered_conv(stages.start) else {
            scaled_channels(
                input,
                factor,
                shape.channels,
                ws.stage_input_mut(stages.start),
            );
            return self.run_stages(ws, rows, stages, gain);
        };
        let bordered = shape.bordered(kernel / 2).len();
        assert_eq!(input.len(), rows * bordered, "bordered input maps");
        let pass = EvaluationPass {
            plan: &self.plan,
            scaled_input: Some(ScaledInput {
                bordered: input,
                factor,
            }),
        };
        self.net.pass(ws, rows, stages, None, gain, Some(pass));
    }
}
