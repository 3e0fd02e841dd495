//! The frozen layers between the modulated layer ℓ and the gated layer
//! L−1, with their weights packed once for the micro-kernels (§3).
//!
//! A layer's block g (all of it for dense layers) is stored as panels of
//! [`PANEL`] consecutive neurons: for each input k, the panel's 16 weights
//! W[j, k] side by side (zero past the block's last neuron), so a
//! micro-kernel reads one panel front to back.

use crate::net::Model;
use crate::net::simd::Isa;

/// Neurons per weight panel: the width of a micro-kernel tile.
pub const PANEL: usize = 16;

/// One packed layer (dense: one group; local: four).
#[derive(Clone, Debug, Default)]
pub struct PackedLayer {
    /// Number of blocks.
    pub groups: usize,
    /// Inputs of the whole layer.
    pub inputs: usize,
    /// Neurons of the whole layer.
    pub outputs: usize,
    /// For each group, for each panel: `group_inputs × PANEL` weights.
    panels: Vec<f32>,
    /// For each group, for each panel: `PANEL` biases (zero past the block).
    bias: Vec<f32>,
}

impl PackedLayer {
    /// Layer `l` of `model`, its blocks packed into panels.
    pub fn pack(model: &Model<f32>, l: usize) -> PackedLayer {
        let mut packed = PackedLayer::default();
        packed.repack(model, l);
        packed
    }

    /// Packs layer `l` of `model` into this layer's buffers, reusing their
    /// allocations (weights that change at every update are packed again
    /// for each evaluation).
    pub fn repack(&mut self, model: &Model<f32>, l: usize) {
        let shape = model.layer(l).shape;
        self.fill(
            shape.groups,
            shape.inputs,
            shape.outputs,
            model.weights(l),
            model.bias(l),
        );
    }

    /// A dense layer of `outputs` neurons given by its weights `[outputs,
    /// inputs]` (row-major) and biases, packed into one group of panels:
    /// a layer that is not part of a [`Model`] (the dense stages of §8).
    pub fn dense(weights: &[f32], bias: &[f32], inputs: usize, outputs: usize) -> PackedLayer {
        let mut packed = PackedLayer::default();
        packed.fill(1, inputs, outputs, weights, bias);
        packed
    }

    /// Packs `groups` blocks of `weights` (`[outputs, inputs / groups]`,
    /// block-diagonal) and `biases`.
    fn fill(
        &mut self,
        groups: usize,
        inputs: usize,
        outputs: usize,
        weights: &[f32],
        biases: &[f32],
    ) {
        let (ni, no) = (inputs / groups, outputs / groups);
        assert_eq!(
            weights.len(),
            outputs * ni,
            "weights [outputs, group inputs]"
        );
        assert_eq!(biases.len(), outputs, "one bias per neuron");
        let panels_per_group = no.div_ceil(PANEL);
        // Every lane is written below (zero past a block's last neuron):
        // no need to clear the buffers first.
        self.panels
            .resize(groups * panels_per_group * ni * PANEL, 0.0);
        self.bias.resize(groups * panels_per_group * PANEL, 0.0);
        // Panel by panel, input by input: the writes run front to back
        // (neuron by neuron, each write landed on another cache line).
        for g in 0..groups {
            for p in 0..panels_per_group {
                let first = g * no + p * PANEL;
                let width = (no - p * PANEL).min(PANEL);
                let at = (g * panels_per_group + p) * ni * PANEL;
                let panel = &mut self.panels[at..at + ni * PANEL];
                let rows = &weights[first * ni..(first + width) * ni];
                fill_panel(Isa::selected(), rows, ni, width, panel);
                let at = (g * panels_per_group + p) * PANEL;
                let bias = &mut self.bias[at..at + PANEL];
                bias[..width].copy_from_slice(&biases[first..first + width]);
                bias[width..].fill(0.0);
            }
        }
        (self.groups, self.inputs, self.outputs) = (groups, inputs, outputs);
    }

    /// Inputs seen by one neuron.
    pub fn group_inputs(&self) -> usize {
        self.inputs / self.groups
    }

    /// Neurons per block.
    pub fn group_outputs(&self) -> usize {
        self.outputs / self.groups
    }

    /// Panels per block.
    pub fn panels_per_group(&self) -> usize {
        self.group_outputs().div_ceil(PANEL)
    }

    /// The weights of panels `p..p + count` of group `g`, one after the
    /// other, each `[group_inputs][PANEL]`.
    pub fn panels(&self, g: usize, p: usize, count: usize) -> &[f32] {
        assert!(
            p + count <= self.panels_per_group(),
            "panels past the block"
        );
        let len = self.group_inputs() * PANEL;
        let start = (g * self.panels_per_group() + p) * len;
        &self.panels[start..start + count * len]
    }

    /// The biases of panels `p..p + count` of group `g`.
    pub fn panels_bias(&self, g: usize, p: usize, count: usize) -> &[f32] {
        assert!(
            p + count <= self.panels_per_group(),
            "panels past the block"
        );
        let start = (g * self.panels_per_group() + p) * PANEL;
        &self.bias[start..start + count * PANEL]
    }

    /// Neurons of panels `p..p + count` that exist (the last panel of a
    /// block may be short).
    pub fn panels_width(&self, p: usize, count: usize) -> usize {
        (self.group_outputs() - p * PANEL).min(count * PANEL)
    }

    /// This layer ← `source` with the weights of input k multiplied by
    /// `factor[k]` (each product rounded once), biases as they are: W·diag(f)
    /// for an input scaled by f, so that x ⊙ f need not be formed row by
    /// row (§4's modulated evaluation: f = exp(m·c − β)). Reuses this
    /// layer's allocations.
    pub fn scale_inputs(&mut self, source: &PackedLayer, factor: &[f32]) {
        assert_eq!(factor.len(), source.inputs, "one factor per input");
        let ni = source.group_inputs();
        (self.groups, self.inputs, self.outputs) = (source.groups, source.inputs, source.outputs);
        self.bias.clone_from(&source.bias);
        self.panels.resize(source.panels.len(), 0.0);
        let panel_len = ni * PANEL;
        let per_group = source.panels_per_group();
        let isa = Isa::selected();
        let panels = self.panels.chunks_exact_mut(panel_len);
        for (p, (panel, from)) in panels
            .zip(source.panels.chunks_exact(panel_len))
            .enumerate()
        {
            let group = p / per_group;
            scale_panel(isa, from, &factor[group * ni..(group + 1) * ni], panel);
        }
    }
}

/// out[k·16 + c] ← from[k·16 + c]·factor\[k\] for every input k of a panel
/// (each product rounded once, so every body gives the same bits), by the
/// code of `isa` (which the CPU must run): one vector per input, where the
/// compiler, left to itself, ran the products one by one or scattered
/// them 16 inputs at a time. `PackedLayer::scale_inputs` of `paper3`'s
/// 400 → 200 layer (one thread of an Intel Xeon, Emerald Rapids; median of
/// 41 × 200 calls, three alternations) took 8.8–9.5 µs (8.5–11.1 µs with
/// AVX2) against 20.6–30.2 µs; `cargo bench --bench throughput --
/// weight_scaling` reads 9.4 µs (11.2 µs with `COMOD_ISA=avx2`). Bodies of
/// their own because the compiler's choice moves with the context: this
/// plain loop as a function of its own ran at 9.6 µs, the same loop written
/// inside `scale_inputs` at 26.4 µs.
pub fn scale_panel(isa: Isa, from: &[f32], factor: &[f32], out: &mut [f32]) {
    assert!(from.len() == factor.len() * PANEL && out.len() == from.len());
    assert!(isa.supported(), "this CPU has no {isa}");
    // SAFETY (both bodies): the CPU runs them, and the sizes are those
    // their contract asks for (asserted).
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { super::avx512::scale_panel(from, factor, out) },
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2Fma => unsafe { super::avx2::scale_panel(from, factor, out) },
        _ => {
            let pairs = out.chunks_exact_mut(PANEL).zip(from.chunks_exact(PANEL));
            for ((lanes, from), &f) in pairs.zip(factor) {
                for (w, &v) in lanes.iter_mut().zip(from) {
                    *w = v * f;
                }
            }
        }
    }
}

/// panel[k·16 + c] ← rows[c·inputs + k] for the `width` ≤ 16 neurons c
/// of `rows` (`[width, inputs]`) and every input k, and 0 in the lanes
/// past `width`: one panel (§3's packed weights), the transpose of its
/// weights, by the code of `isa` (which the CPU must run): with AVX-512F
/// sixteen inputs at a time transposed in registers, with AVX2 eight, and
/// the inputs past the last whole block one value at a time.
pub fn fill_panel(isa: Isa, rows: &[f32], inputs: usize, width: usize, panel: &mut [f32]) {
    assert!(width <= PANEL && rows.len() == width * inputs && panel.len() == inputs * PANEL);
    assert!(isa.supported(), "this CPU has no {isa}");
    // SAFETY (both bodies): the CPU runs them (asserted), and the sizes
    // are those their contract asks for (asserted).
    let transposed = match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { super::avx512::fill_panel(rows, inputs, width, panel) },
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2Fma => unsafe { super::avx2::fill_panel(rows, inputs, width, panel) },
        _ => 0,
    };
    for (k, lanes) in panel.chunks_exact_mut(PANEL).enumerate().skip(transposed) {
        for (c, lane) in lanes.iter_mut().enumerate() {
            *lane = if c < width { rows[c * inputs + k] } else { 0.0 };
        }
    }
}

/// Everything of the network the kernel needs besides the coupling, packed once.
#[derive(Clone, Debug)]
pub struct KernelPlan {
    /// N_ℓ: neurons of the modulated layer.
    pub modulated_size: usize,
    /// N_{L−1}: neurons of the gated layer.
    pub gated_size: usize,
    /// β of the modulation exp(m·c − β).
    pub beta: f32,
    /// Layers ℓ+1 ..= L−1 (empty when the modulated layer is the gated one).
    pub layers: Vec<PackedLayer>,
}

impl KernelPlan {
    /// Packs the layers between ℓ and L−1 of `model` (their weights are
    /// frozen during stochastic fine-tuning, so this is done once).
    pub fn new(model: &Model<f32>) -> KernelPlan {
        let arch = model.arch();
        let layers = (arch.modulated_layer + 1..=arch.gated_layer())
            .map(|l| PackedLayer::pack(model, l))
            .collect();
        KernelPlan {
            modulated_size: arch.size(arch.modulated_layer),
            gated_size: arch.size(arch.gated_layer()),
            beta: arch.beta,
            layers,
        }
    }

    /// Floating-point operations of one trial of `samples` modulator
    /// samples: 2·T·(multiply-adds of the layers between ℓ and L−1), e.g.
    /// 2·T·N_ℓ·N_{ℓ+1} for the paper's network.
    pub fn flops_per_trial(&self, samples: usize) -> f64 {
        let macs: usize = self
            .layers
            .iter()
            .map(|l| l.outputs * l.group_inputs())
            .sum();
        2.0 * samples as f64 * macs as f64
    }
}
