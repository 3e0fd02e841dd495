//! The network (§2): one flat parameter buffer with per-layer views, and
//! the forward and backward passes over a reusable [`Workspace`]. The
//! coupling c and gain g of a task are a [`Modulation`] passed beside it.

use std::ops::Range;

use rand::RngExt;

use crate::data::CANVAS_PIXELS;
use crate::data::composite::quadrant_pixel;
use crate::data::task::QUADRANTS;
use crate::net::arch::{Arch, LayerKind, Nonlinearity};
use crate::net::gradients::{Depth, Grads};
use crate::net::layers::{
    LinearShape, Readout, activation_backward, activation_forward, correct_count,
    coupling_backward, cross_entropy, linear_backward, linear_forward, modulation_factor,
    scale_rows,
};
use crate::net::linalg::{Real, first_non_finite};
use crate::net::modulation::Modulation;
use crate::rng::rng_for;

/// Rows per forward pass of an evaluation (a cache of a set, a held-out
/// accuracy).
pub const EVAL_ROWS: usize = 500;

/// Where one layer's weights and biases live in the flat buffer.
#[derive(Clone, Debug)]
pub struct LayerLayout {
    /// Connectivity and sizes.
    pub shape: LinearShape,
    /// Kind from the architecture.
    pub kind: LayerKind,
    /// Hidden nonlinearity; `None` for the linear readout.
    pub activation: Option<Nonlinearity>,
    /// Range of the stored (block) weights.
    pub weights: Range<usize>,
    /// Range of the biases.
    pub bias: Range<usize>,
}

impl LayerLayout {
    /// Index into the dense `[outputs, inputs]` matrix of §7 of stored
    /// weight `k`: stored blocks map to their rows and receptive fields.
    pub fn dense_index(&self, k: usize) -> usize {
        let ni = self.shape.group_inputs();
        let (row, i) = (k / ni, k % ni);
        let g = row / self.shape.group_outputs();
        let col = match self.kind {
            LayerKind::Encoder => quadrant_pixel(g, i),
            _ => g * ni + i,
        };
        row * self.shape.inputs + col
    }
}

/// Layout of every layer in the flat parameter buffer.
fn layout(arch: &Arch) -> (Vec<LayerLayout>, usize) {
    let mut offset = 0;
    let mut layers = Vec::with_capacity(arch.depth());
    for (i, spec) in arch.layers.iter().enumerate() {
        let groups = match spec.kind {
            LayerKind::Encoder | LayerKind::Local => QUADRANTS,
            LayerKind::Dense | LayerKind::Readout => 1,
        };
        let shape = LinearShape {
            inputs: arch.size(i),
            outputs: spec.size,
            groups,
        };
        let weights = offset..offset + shape.weight_len();
        let bias = weights.end..weights.end + spec.size;
        offset = bias.end;
        let activation = match spec.kind {
            LayerKind::Encoder => spec.nonlinearity,
            LayerKind::Dense | LayerKind::Local => Some(Nonlinearity::Relu),
            LayerKind::Readout => None,
        };
        layers.push(LayerLayout {
            shape,
            kind: spec.kind,
            activation,
            weights,
            bias,
        });
    }
    (layers, offset)
}

/// The network: architecture and parameters (§2). Its modulation for a
/// task is a separate [`Modulation`], so that one frozen network serves
/// every task and run.
#[derive(Clone, Debug)]
pub struct Model<T> {
    arch: Arch,
    layers: Vec<LayerLayout>,
    /// Canvas pixel of each encoder input slot (quadrant-major order).
    input_pixels: Vec<u16>,
    /// All weights (stored blocks only) and biases, layer after layer.
    pub params: Vec<T>,
}

/// The layers a backward pass to some [`Depth`] reaches (§2 gradients):
/// [`Model::backward`] computes dW of layers `lowest_weight..=L`, dA of
/// layers `lowest_da..=L`, dH (the input gradient) of layers
/// `max(lowest_dh, 1)..L`, and dc when `coupling`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackwardReach {
    /// The lowest layer whose weights get a gradient (L + 1: none).
    pub lowest_weight: usize,
    /// The lowest layer whose pre-activation gets a gradient.
    pub lowest_da: usize,
    /// The lowest layer whose activity gets a gradient.
    pub lowest_dh: usize,
    /// Whether dc of the modulated layer is computed.
    pub coupling: bool,
}

/// Activations of one batch, allocated once and reused across steps.
#[derive(Clone, Debug)]
pub struct Workspace<T> {
    batch: usize,
    /// Input reordered quadrant-major: slot q·196 + k is pixel k of quadrant q.
    input: Vec<T>,
    /// Pre-activations a_l of layers 1..=L (index l − 1); the last are the logits.
    pre: Vec<Vec<T>>,
    /// Outputs h_l of hidden layers 1..L (index l − 1).
    post: Vec<Vec<T>>,
    /// Per-neuron factor of each hidden layer (modulation, gain), empty if none.
    scale: Vec<Vec<T>>,
    /// ∂L/∂a of the layer being back-propagated.
    grad_a: Vec<T>,
    /// ∂L/∂h of the layer below it.
    grad_h: Vec<T>,
    /// The modulator value of the last forward pass.
    m: T,
}

impl<T: Real> Model<T> {
    /// A freshly initialised network (§4): He-uniform U(±√(6/fan_in))
    /// for ReLU layers; for the exp encoder U(±√(0.75/196)), which keeps the
    /// initial pre-activation std ≤ 0.5 for inputs of mean square ≤ 1;
    /// LeCun-uniform U(±√(3/fan_in)) for the linear readout; biases 0.
    pub fn init(arch: &Arch, seed: u64) -> Model<T> {
        let mut model = Model::zeros(arch);
        let mut rng = rng_for(seed, &["init".into()]);
        for layer in &model.layers {
            let fan_in = layer.shape.group_inputs() as f64;
            let bound = match layer.activation {
                Some(Nonlinearity::Exp) => (0.75 / fan_in).sqrt(),
                Some(Nonlinearity::Relu) => (6.0 / fan_in).sqrt(),
                None => (3.0 / fan_in).sqrt(),
            };
            for w in &mut model.params[layer.weights.clone()] {
                *w = T::from_f64(rng.random_range(-bound..bound));
            }
        }
        model
    }

    /// A network with all parameters 0.
    pub fn zeros(arch: &Arch) -> Model<T> {
        let (layers, len) = layout(arch);
        let slots_per_quadrant = CANVAS_PIXELS / QUADRANTS;
        Model {
            arch: arch.clone(),
            layers,
            input_pixels: (0..CANVAS_PIXELS)
                .map(|slot| {
                    quadrant_pixel(slot / slots_per_quadrant, slot % slots_per_quadrant) as u16
                })
                .collect(),
            params: vec![T::ZERO; len],
        }
    }

    /// The architecture.
    pub fn arch(&self) -> &Arch {
        &self.arch
    }

    /// This network described by `arch`, which pretraining trains as it
    /// trains the network's own ([`Arch::pretrains_as`]): the same
    /// parameters, modulated where `arch` says. Panics for any other
    /// architecture.
    pub fn into_arch(self, arch: &Arch) -> Model<T> {
        assert!(
            self.arch.pretrains_as(arch),
            "pretraining trains a network of {arch:?} otherwise"
        );
        Model {
            arch: arch.clone(),
            ..self
        }
    }

    /// Canvases `[B, 784]` in the order layer 1 reads its inputs
    /// (quadrant-major): the plain statement of what
    /// [`crate::kernel::PackedRows::reordered`] packs in one pass.
    pub fn reorder_input(&self, canvases: &[T]) -> Vec<T> {
        canvases
            .chunks_exact(CANVAS_PIXELS)
            .flat_map(|canvas| self.input_pixels.iter().map(|&p| canvas[p as usize]))
            .collect()
    }

    /// The canvas pixel layer 1 reads as each of its inputs, in order
    /// ([`Model::reorder_input`]).
    pub fn input_order(&self) -> &[u16] {
        &self.input_pixels
    }

    /// Layout of layer `l` (counted from 1).
    pub fn layer(&self, l: usize) -> &LayerLayout {
        &self.layers[l - 1]
    }

    /// Multiply-adds of one example's forward pass (blocks only).
    pub fn forward_macs(&self) -> usize {
        self.layers.iter().map(|l| l.shape.macs()).sum()
    }

    /// Stored weights of layer `l`.
    pub fn weights(&self, l: usize) -> &[T] {
        &self.params[self.layer(l).weights.clone()]
    }

    /// Biases of layer `l`.
    pub fn bias(&self, l: usize) -> &[T] {
        &self.params[self.layer(l).bias.clone()]
    }

    /// A zeroed gradient buffer.
    pub fn zero_grads(&self) -> Grads<T> {
        Grads {
            params: vec![T::ZERO; self.params.len()],
            coupling: vec![T::ZERO; self.arch.size(self.arch.modulated_layer)],
        }
    }

    /// A workspace for batches of up to `capacity` examples.
    pub fn workspace(&self, capacity: usize) -> Workspace<T> {
        let sizes: Vec<usize> = self.arch.layers.iter().map(|l| l.size).collect();
        let widest = sizes.iter().copied().max().unwrap_or(0);
        let hidden = sizes.len() - 1;
        Workspace {
            batch: 0,
            input: vec![T::ZERO; capacity * CANVAS_PIXELS],
            pre: sizes.iter().map(|&n| vec![T::ZERO; capacity * n]).collect(),
            post: sizes[..hidden]
                .iter()
                .map(|&n| vec![T::ZERO; capacity * n])
                .collect(),
            scale: (1..=hidden)
                .map(|l| {
                    let scaled = l == self.arch.modulated_layer || l == self.arch.gated_layer();
                    vec![T::ZERO; if scaled { sizes[l - 1] } else { 0 }]
                })
                .collect(),
            grad_a: vec![T::ZERO; capacity * widest],
            grad_h: vec![T::ZERO; capacity * widest],
            m: T::ZERO,
        }
    }

    /// Forward pass of a batch of canvases `[B, 784]` at modulator value `m`
    /// with the coupling and gain of `modulation` (§2):
    /// h_ℓ = F(a_ℓ) ⊙ exp(m·c − β), h_{L−1} = g ⊙ ReLU(a_{L−1}), logits = a_L.
    pub fn forward(&self, ws: &mut Workspace<T>, modulation: &Modulation<T>, canvases: &[T], m: T) {
        self.run_layers(ws, Some(modulation), canvases, m, self.arch.depth(), true);
    }

    /// The modulated layer's activity without modulation (and without gain),
    /// F(a_ℓ), `[B, N_ℓ]`: what the fused kernel modulates (§3). The layers
    /// below ℓ carry no modulation, so none is needed.
    pub fn unmodulated_activity<'w>(&self, ws: &'w mut Workspace<T>, canvases: &[T]) -> &'w [T] {
        let l = self.arch.modulated_layer;
        self.run_layers(ws, None, canvases, T::ZERO, l, false);
        &ws.post[l - 1][..ws.batch * self.arch.size(l)]
    }

    /// F(a_l), `[B, N_l]`: layer `l`'s activity before its own modulation
    /// and gain, with every layer below it run in full with `modulation` at
    /// modulator value `m`; [`Model::forward_from`] continues from here.
    pub fn activity_at<'w>(
        &self,
        ws: &'w mut Workspace<T>,
        modulation: &Modulation<T>,
        canvases: &[T],
        l: usize,
        m: T,
    ) -> &'w [T] {
        self.run_layers(ws, Some(modulation), canvases, m, l, false);
        &ws.post[l - 1][..ws.batch * self.arch.size(l)]
    }

    /// F(a_l) of every canvas of `canvases` (`[n, 784]`), `[n, N_l]`, with
    /// the modulation off at modulator value `m` ([`Model::activity_at`]),
    /// in passes of at most [`EVAL_ROWS`] rows: what a frozen network makes
    /// of a whole set (§4 caches, §5 d′); for l = ℓ, the unmodulated
    /// activity the fused kernel modulates (§3).
    pub fn frozen_activity(&self, canvases: &[T], l: usize, m: T) -> Vec<T> {
        let rows = canvases.len() / CANVAS_PIXELS;
        let off = Modulation::off(&self.arch);
        let mut ws = self.workspace(EVAL_ROWS.min(rows));
        let mut activity = Vec::with_capacity(rows * self.arch.size(l));
        for chunk in canvases.chunks(EVAL_ROWS * CANVAS_PIXELS) {
            activity.extend_from_slice(self.activity_at(&mut ws, &off, chunk, l, m));
        }
        activity
    }

    /// Layers 1..=`through` with their per-neuron factors (modulation,
    /// gain), except that of layer `through` unless `scaled`. Without a
    /// `modulation` no layer that carries one may be scaled.
    fn run_layers(
        &self,
        ws: &mut Workspace<T>,
        modulation: Option<&Modulation<T>>,
        canvases: &[T],
        m: T,
        through: usize,
        scaled: bool,
    ) {
        if let Some(modulation) = modulation {
            assert!(
                modulation.fits(&self.arch),
                "the modulation does not fit the architecture"
            );
        }
        let batch = canvases.len() / CANVAS_PIXELS;
        assert!(
            batch * self.arch.size(1) <= ws.pre[0].len(),
            "batch exceeds workspace capacity"
        );
        ws.batch = batch;
        ws.m = m;
        for (canvas, input) in canvases
            .chunks_exact(CANVAS_PIXELS)
            .zip(ws.input.chunks_exact_mut(CANVAS_PIXELS))
        {
            for (x, &pixel) in input.iter_mut().zip(&self.input_pixels) {
                *x = canvas[pixel as usize];
            }
        }
        for l in 1..=through {
            self.layer_forward(ws, l, modulation, m, scaled || l < through);
        }
    }

    /// Forward pass from layer `l`'s unmodulated activity F(a_l), `[B, N_l]`
    /// (e.g. cached for a fixed test set): applies layer `l`'s factor from
    /// `modulation` at modulator value `m`, then runs layers l+1..L. The
    /// same result as [`Model::forward`] on the canvases that gave the
    /// activity.
    pub fn forward_from(
        &self,
        ws: &mut Workspace<T>,
        modulation: &Modulation<T>,
        l: usize,
        activity: &[T],
        m: T,
    ) {
        assert!(
            modulation.fits(&self.arch),
            "the modulation does not fit the architecture"
        );
        let n = self.arch.size(l);
        let batch = activity.len() / n;
        assert!(
            batch * n <= ws.post[l - 1].len(),
            "batch exceeds workspace capacity"
        );
        ws.batch = batch;
        ws.m = m;
        let scaled = self.fill_scale(ws, l, Some(modulation), m);
        let post = &mut ws.post[l - 1][..batch * n];
        post.copy_from_slice(activity);
        if scaled {
            scale_rows(post, &ws.scale[l - 1]);
        }
        for above in l + 1..=self.arch.depth() {
            self.layer_forward(ws, above, Some(modulation), m, true);
        }
    }

    /// Sets layer `l`'s per-neuron factor from `modulation` (exp(m·c − β)
    /// at ℓ, g at L−1); false when the layer has none. A layer with a
    /// factor needs a modulation.
    fn fill_scale(
        &self,
        ws: &mut Workspace<T>,
        l: usize,
        modulation: Option<&Modulation<T>>,
        m: T,
    ) -> bool {
        let scale = &mut ws.scale[l - 1];
        if scale.is_empty() {
            return false;
        }
        let modulation =
            modulation.expect("a layer with a factor is scaled only with a modulation");
        self.layer_factor(l, modulation, m, scale);
        true
    }

    /// Layer `l`'s per-neuron factor under `modulation` at modulator value
    /// `m` into `scale` (`[N_l]`): exp(m·c − β) at ℓ, times g at L−1, 1 on
    /// other layers (§2). The forward pass multiplies F(a_l) by it.
    pub fn layer_factor(&self, l: usize, modulation: &Modulation<T>, m: T, scale: &mut [T]) {
        assert_eq!(scale.len(), self.arch.size(l), "one factor per neuron");
        scale.fill(T::ONE);
        if l == self.arch.modulated_layer {
            let beta = T::from_f64(self.arch.beta as f64);
            modulation_factor(m, &modulation.coupling, beta, scale);
        }
        if l == self.arch.gated_layer() {
            for (s, &g) in scale.iter_mut().zip(&modulation.gain) {
                *s *= g;
            }
        }
    }

    /// Layer `l` from the output of layer l−1 (or the reordered input):
    /// a_l, then h_l = F(a_l) ⊙ factor when `scaled` and the layer has a
    /// factor (which then comes from `modulation`).
    fn layer_forward(
        &self,
        ws: &mut Workspace<T>,
        l: usize,
        modulation: Option<&Modulation<T>>,
        m: T,
        scaled: bool,
    ) {
        let layer = &self.layers[l - 1];
        let batch = ws.batch;
        let n = layer.shape.outputs;
        {
            let x = if l == 1 {
                &ws.input[..]
            } else {
                &ws.post[l - 2][..]
            };
            linear_forward(
                layer.shape,
                batch,
                x,
                self.weights(l),
                self.bias(l),
                &mut ws.pre[l - 1][..batch * n],
            );
        }
        let Some(f) = layer.activation else { return };
        let scaled = scaled && self.fill_scale(ws, l, modulation, m);
        let scale = scaled.then_some(&ws.scale[l - 1][..]);
        activation_forward(
            f,
            n,
            &ws.pre[l - 1][..batch * n],
            scale,
            &mut ws.post[l - 1][..batch * n],
        );
    }

    /// The first tensor of the last forward pass (in the order computed:
    /// per layer its pre-activation, per-neuron factor and activity) that
    /// holds a non-finite value, by name, with that value's index and value.
    pub fn first_non_finite(&self, ws: &Workspace<T>) -> Option<(String, usize, f64)> {
        let depth = self.arch.depth();
        let find = |values: &[T]| first_non_finite(values).map(|i| (i, values[i].to_f64()));
        for l in 1..=depth {
            let n = ws.batch * self.arch.size(l);
            // 0: pre-activation, 1: per-neuron factor, 2: activity.
            let tensors: [&[T]; 3] = if l < depth {
                [&ws.pre[l - 1][..n], &ws.scale[l - 1], &ws.post[l - 1][..n]]
            } else {
                [&ws.pre[l - 1][..n], &[], &[]]
            };
            if let Some((kind, (i, v))) = tensors
                .iter()
                .enumerate()
                .find_map(|(kind, values)| find(values).map(|found| (kind, found)))
            {
                return Some((self.tensor_name(l, kind), i, v));
            }
        }
        None
    }

    /// The name of layer `l`'s pre-activation (`kind` 0), per-neuron
    /// factor (1) or activity (2), for fault messages (§6).
    fn tensor_name(&self, l: usize, kind: usize) -> String {
        let (modulated, gated) = (l == self.arch.modulated_layer, l == self.arch.gated_layer());
        match kind {
            0 if l == self.arch.depth() => "logits".to_string(),
            0 if l == 1 => "pre-activation of layer 1 (the encoder)".to_string(),
            0 => format!("pre-activation of layer {l}"),
            1 if modulated && gated => {
                format!("modulation factor exp(m·c − β) times gain of layer {l}")
            }
            1 if modulated => format!("modulation factor exp(m·c − β) of layer {l}"),
            1 => format!("gain of layer {l}"),
            _ => format!("activity of layer {l}"),
        }
    }

    /// Logits `[B, 10]` of the last forward pass.
    pub fn logits<'w>(&self, ws: &'w Workspace<T>) -> &'w [T] {
        self.pre_activations(ws, self.arch.depth())
    }

    /// Pre-activations a_l `[B, N_l]` of layer `l` in the last forward pass.
    pub fn pre_activations<'w>(&self, ws: &'w Workspace<T>, l: usize) -> &'w [T] {
        &ws.pre[l - 1][..ws.batch * self.arch.size(l)]
    }

    /// Mean cross-entropy of the last forward pass (§2); leaves
    /// ∂L/∂logits in the workspace for [`Model::backward`].
    pub fn loss(&self, ws: &mut Workspace<T>, labels: &[u8], readout: Readout) -> T {
        assert_eq!(labels.len(), ws.batch);
        let classes = self.arch.size(self.arch.depth());
        let logits = &ws.pre[self.arch.depth() - 1][..ws.batch * classes];
        cross_entropy(
            logits,
            classes,
            labels,
            readout,
            &mut ws.grad_a[..ws.batch * classes],
        )
    }

    /// Correct answers of the last forward pass.
    pub fn correct(&self, ws: &Workspace<T>, labels: &[u8], readout: Readout) -> usize {
        correct_count(self.logits(ws), labels, readout)
    }

    /// How far [`Model::backward`] reaches for `targets`: what it
    /// multiplies, which a step's FLOP count follows.
    pub fn backward_reach(&self, targets: Depth) -> BackwardReach {
        let (depth, modulated) = (self.arch.depth(), self.arch.modulated_layer);
        let (lowest_weight, coupling) = match targets {
            Depth::Readout => (depth, false),
            Depth::Coupling => (depth + 1, true),
            Depth::CouplingAndReadout => (depth, true),
            Depth::All => (1, true),
        };
        // dA_l is needed down to the lowest trained layer, or to ℓ + 1 for dc;
        // dH_l down to the lowest trained layer, or to ℓ itself for dc.
        let (lowest_da, lowest_dh) = if coupling {
            (
                lowest_weight.min(modulated + 1),
                lowest_weight.min(modulated),
            )
        } else {
            (lowest_weight, lowest_weight)
        };
        BackwardReach {
            lowest_weight,
            lowest_da,
            lowest_dh,
            coupling,
        }
    }

    /// Back-propagates the gradient left by [`Model::loss`] (g held
    /// constant), writing the requested gradients into `grads`; the others
    /// are left as they were.
    pub fn backward(&self, ws: &mut Workspace<T>, targets: Depth, grads: &mut Grads<T>) {
        let (depth, modulated) = (self.arch.depth(), self.arch.modulated_layer);
        let BackwardReach {
            lowest_weight,
            lowest_da,
            lowest_dh,
            coupling,
        } = self.backward_reach(targets);
        let batch = ws.batch;
        for l in (lowest_da..=depth).rev() {
            let layer = &self.layers[l - 1];
            let x = if l == 1 {
                &ws.input[..]
            } else {
                &ws.post[l - 2][..]
            };
            let da = &ws.grad_a[..batch * layer.shape.outputs];
            let dw_db = (l >= lowest_weight).then(|| {
                let (before, after) = grads.params.split_at_mut(layer.bias.start);
                (
                    &mut before[layer.weights.clone()],
                    &mut after[..layer.bias.len()],
                )
            });
            let below = l - 1;
            let need_dh = below >= 1 && below >= lowest_dh;
            let dx = need_dh.then(|| &mut ws.grad_h[..batch * layer.shape.inputs]);
            linear_backward(layer.shape, batch, x, self.weights(l), da, dw_db, dx);
            if !need_dh {
                break;
            }
            let n = layer.shape.inputs;
            let dh = &mut ws.grad_h[..batch * n];
            let h = &ws.post[below - 1][..batch * n];
            if coupling && below == modulated {
                coupling_backward(n, ws.m, h, dh, &mut grads.coupling);
            }
            if below < lowest_da {
                break;
            }
            let f = self.layers[below - 1]
                .activation
                .expect("hidden layers have a nonlinearity");
            let scale = &ws.scale[below - 1];
            let scale = (!scale.is_empty()).then_some(&scale[..]);
            activation_backward(f, n, &ws.pre[below - 1][..batch * n], h, scale, dh);
            std::mem::swap(&mut ws.grad_a, &mut ws.grad_h);
        }
    }
}
