//! One trial of the stochastic method on a convolutional network (§3,
//! §8), fused from the modulated conv stage to the gated layer:
//!
//! 1. the stimulus runs once up to the modulated stage and through the
//!    max-pools right after it (a positive per-channel factor commutes with
//!    them, bit for bit), giving the map v;
//! 2. the next stage (conv or dense) is linear in each channel of its input
//!    before its ReLU, so its pre-activation for sample t is
//!    b + Σ_k f_tk·P_k, with f_tk = exp(m_t·c_k − σ²c_k²/2 − β) and P_k the
//!    stage's output for channel k of v alone: the C partials are computed
//!    once per trial, and each sample costs C multiply-adds per output
//!    instead of the stage's products (for `conv-mnist`, 8 instead of 72);
//!    the T scaled maps are never formed, and the mix, its ReLU and the
//!    max-pool after it run as one pass ([`crate::conv::mix`]);
//! 3. the mixed pre-activations of the T samples run as one batch through
//!    the stages above to the gated layer, whose covariance with m is folded
//!    in f64.
//!
//! The gated activity `[T, N]` is materialised once per trial: T·N values
//! (200 × 128 for `conv-mnist`) against the products that make it (about 25
//! million multiply-adds per trial), and `comod bench` measures no
//! difference beyond the noise between `conv_trial_B2` and
//! `conv_trial_products_B2` (the same trials without the fold), so fusing
//! it into the last product would save nothing measurable. The result equals the stage-by-stage computation up
//! to rounding (the sums run in another order); [`trial_gain_reference`] is
//! the literal, per-sample, two-pass f64 formula it is tested against.

use crate::conv::arch::{ConvArch, Stage};
use crate::conv::direct::{ConvWeights, conv_relu, pad_input};
use crate::conv::evaluation::Evaluation;
use crate::conv::mix::{Mix, mix_partials};
use crate::conv::modulator::Modulator;
use crate::conv::modulator::channel_factors;
use crate::conv::net::ConvNet;
use crate::conv::workspace::ConvWorkspace;
use crate::kernel::reference::ReferenceGain;
use crate::net::GainRule;
use crate::net::linalg::{Mat, MatMut, gemm};
use crate::net::simd::Isa;

/// Buffers of [`trial_gain`], reused across trials.
#[derive(Clone, Debug, Default)]
pub struct TrialScratch {
    ws: ConvWorkspace<f32>,
    factors: Vec<f32>,
    pooled: Vec<f32>,
    masked: Vec<f32>,
    packed: ConvWeights,
    padded: Vec<f32>,
    partials: Vec<f32>,
    gated: Vec<f32>,
}

impl TrialScratch {
    /// Buffers for `net`.
    pub fn new(net: &ConvNet<f32>) -> TrialScratch {
        TrialScratch {
            ws: net.workspace(),
            ..TrialScratch::default()
        }
    }
}

/// The modulated stage's output before its factor for `rows` images:
/// what a trial computes once (§3).
pub fn unmodulated_features(
    net: &ConvNet<f32>,
    ws: &mut ConvWorkspace<f32>,
    images: &[f32],
    rows: usize,
) -> Vec<f32> {
    let modulated = net.arch().modulated_stage;
    net.forward_stages(ws, images, rows, 0..modulated, None, None);
    ws.activation(modulated).to_vec()
}

/// The gated activity z (`[T, N]`, before the gain) of one stimulus whose
/// modulated-stage output (before the factor) is `u`, for the samples
/// `m`: the products of a trial, without the covariance fold. `variance`
/// is the σ² of the compensated factor exp(m·c − σ²c²/2 − β) (§3; 0: none).
pub fn trial_activity<'s>(
    pass: &Evaluation<'_, f32>,
    u: &[f32],
    m: &[f32],
    coupling: &[f32],
    variance: f32,
    scratch: &'s mut TrialScratch,
) -> &'s [f32] {
    let net = pass.net();
    let arch = net.arch();
    let t_count = m.len();
    let modulator = Modulator {
        m,
        coupling,
        beta: arch.beta,
        variance,
    };
    channel_factors(&modulator, t_count, &mut scratch.factors);
    // Max-pools that follow the modulated stage run once, on u: the factor
    // commutes with them (`ConvArch::scaling_stage`).
    let start = arch.scaling_stage();
    net.forward_stages(
        &mut scratch.ws,
        u,
        1,
        arch.modulated_stage..start,
        None,
        None,
    );
    scratch.pooled.clear();
    scratch
        .pooled
        .extend_from_slice(scratch.ws.activation(start));
    // The stage at `start` is linear in each input channel before its
    // ReLU: its pre-activation for sample t is b + Σ_k f_tk·P_k, with P_k
    // its output (without bias) for channel k of the map alone, computed
    // once per trial. Each sample then costs C·(its outputs) multiply-adds
    // instead of the stage's products.
    channel_partials(net, start, scratch);
    let n = arch.stages.len();
    let bias = &net.params[net.stage_params(start).expect("conv or dense").bias.clone()];
    // A conv stage's max-pool runs in the mix, on each sample's values
    // as they are made (`mix_partials`).
    let pool = matches!(arch.stages[start], Stage::Conv { .. })
        && matches!(arch.stages.get(start + 1), Some(Stage::Maxpool {}));
    let mix = Mix {
        factors: &scratch.factors,
        partials: &scratch.partials,
        bias,
        map: net.shapes()[start + 1],
        pool,
    };
    let next = start + 1 + usize::from(pool);
    let rows = if next == n {
        &mut scratch.gated
    } else {
        scratch.ws.stage_input_mut(next)
    };
    rows.resize(t_count * mix.out_shape().len(), 0.0);
    mix_partials(Isa::selected(), &mix, rows);
    if next == n {
        return &scratch.gated;
    }
    // The stages above on the plan's packed dense weights (no backward
    // pass follows).
    pass.run_stages(&mut scratch.ws, t_count, next..n, None);
    scratch.ws.gated()
}

/// Fills `scratch.partials` (`[C, outputs]`) with the outputs of stage `s`
/// (conv or dense, no bias, no ReLU) for each channel k of
/// `scratch.pooled` alone (the other channels zero).
fn channel_partials(net: &ConvNet<f32>, s: usize, scratch: &mut TrialScratch) {
    let shape = net.shapes()[s];
    let (channels, len) = (shape.channels, shape.len());
    let masked = &mut scratch.masked;
    masked.clear();
    masked.resize(channels * len, 0.0);
    for (k, row) in masked.chunks_exact_mut(len).enumerate() {
        for (pixel, source) in row
            .chunks_exact_mut(channels)
            .zip(scratch.pooled.chunks_exact(channels))
        {
            pixel[k] = source[k];
        }
    }
    let r = net.stage_params(s).expect("a conv or dense stage");
    let weights = &net.params[r.weights.clone()];
    let outputs = r.bias.len();
    match net.arch().stages[s] {
        Stage::Conv { kernel, .. } => {
            scratch
                .packed
                .repack_linear(weights, outputs, kernel, channels);
            pad_input(masked, channels, shape, kernel, &mut scratch.padded);
            scratch
                .partials
                .resize(channels * shape.pixels() * outputs, 0.0);
            conv_relu(
                Isa::selected(),
                &scratch.padded,
                channels,
                shape,
                &scratch.packed,
                &mut scratch.partials,
            );
        }
        Stage::Dense { .. } => {
            scratch.partials.resize(channels * outputs, 0.0);
            gemm(
                Mat::row_major(masked, channels, len),
                Mat::row_major(weights, outputs, len).t(),
                false,
                MatMut::row_major(&mut scratch.partials, channels, outputs),
            );
        }
        Stage::Maxpool {} => unreachable!("the scaling stage is not a max-pool"),
    }
}

/// Floating-point operations of one trial of T samples on `arch` as
/// [`trial_gain`] computes it (2 per multiply-add): the stages up to the
/// modulated one once, the per-channel partials of the stage after it,
/// then per sample the mix of the partials and the stages above.
pub fn trial_flops(arch: &ConvArch, samples: usize) -> f64 {
    let start = arch.scaling_stage();
    let shapes = arch.shapes();
    let channels = shapes[start].channels as f64;
    let below = (arch.forward_macs() - arch.macs_from(arch.modulated_stage)) as f64;
    let partials = channels * (arch.macs_from(start) - arch.macs_from(start + 1)) as f64;
    let mix = channels * shapes[start + 1].len() as f64;
    let above = arch.macs_from(start + 1) as f64;
    2.0 * (below + partials + samples as f64 * (mix + above))
}

/// The per-trial gain (§3) of one stimulus whose modulated-stage output
/// (before the factor) is `u`, for the samples `m`, into `out` (`[N]`):
/// covariance (1/T)Σ_t (m_t − m̄) z_tj, or the correlation.
/// `variance`: the σ² of the compensated factor (§3; 0: none).
#[allow(clippy::too_many_arguments)]
pub fn trial_gain(
    pass: &Evaluation<'_, f32>,
    u: &[f32],
    m: &[f32],
    coupling: &[f32],
    variance: f32,
    rule: GainRule,
    scratch: &mut TrialScratch,
    out: &mut [f64],
) {
    let z = trial_activity(pass, u, m, coupling, variance, scratch);
    fold_gain(z, m, rule, out);
}

/// g_j from the gated activity `z` (`[T, N]`) and the samples `m` (§3), in
/// f64: the means first, then the centred sums, so that a neuron that does
/// not vary with m (c = 0, or a dead path) gets exactly 0.
pub fn fold_gain(z: &[f32], m: &[f32], rule: GainRule, out: &mut [f64]) {
    let t_count = m.len() as f64;
    let n = out.len();
    let mean_m = m.iter().map(|&v| v as f64).sum::<f64>() / t_count;
    let mut mean_z = vec![0.0f64; n];
    for row in z.chunks_exact(n) {
        for (s, &zj) in mean_z.iter_mut().zip(row) {
            *s += zj as f64;
        }
    }
    mean_z.iter_mut().for_each(|s| *s /= t_count);
    out.fill(0.0);
    let mut var_z = vec![0.0f64; n];
    for (row, &mt) in z.chunks_exact(n).zip(m) {
        let centred = mt as f64 - mean_m;
        for ((o, v), (&zj, &mz)) in out
            .iter_mut()
            .zip(var_z.iter_mut())
            .zip(row.iter().zip(&mean_z))
        {
            let dz = zj as f64 - mz;
            *o += centred * dz;
            *v += dz * dz;
        }
    }
    for o in out.iter_mut() {
        *o /= t_count;
    }
    if rule == GainRule::Correlation {
        let std_m = (m.iter().map(|&v| (v as f64 - mean_m).powi(2)).sum::<f64>() / t_count).sqrt();
        for (o, v) in out.iter_mut().zip(&var_z) {
            let std_z = (v / t_count).sqrt();
            *o = if std_z == 0.0 || std_m == 0.0 {
                0.0
            } else {
                *o / (std_m * std_z)
            };
        }
    }
}

/// The reference of [`trial_gain`]: each sample's whole forward pass in
/// f64 on its own, then §3's formula literally (means first, then the
/// centred sums), with the magnitudes that bound the rounding error of an
/// f32 computation of it: A, the gated activity of the network whose
/// weights and biases are |W| and |b|, from |x| under the same (positive)
/// modulation factors, as [`crate::kernel::reference::ReferenceGain`]
/// defines them for the MLP.
pub fn trial_gain_reference(
    net: &ConvNet<f64>,
    image: &[f64],
    m: &[f64],
    coupling: &[f64],
    variance: f64,
    rule: GainRule,
) -> ReferenceGain {
    let magnitude_net = net.magnitudes();
    let image_magnitude: Vec<f64> = image.iter().map(|v| v.abs()).collect();
    let mut ws = net.workspace();
    let mut gated = |net: &ConvNet<f64>, image: &[f64], mt: f64| {
        let modulator = Modulator {
            m: &[mt],
            coupling,
            beta: net.arch().beta as f64,
            variance,
        };
        net.forward(&mut ws, image, 1, Some(&modulator), None);
        ws.gated().to_vec()
    };
    let z: Vec<Vec<f64>> = m.iter().map(|&mt| gated(net, image, mt)).collect();
    let magnitude: Vec<Vec<f64>> = m
        .iter()
        .map(|&mt| gated(&magnitude_net, &image_magnitude, mt))
        .collect();
    ReferenceGain::from_samples(&z, &magnitude, m, rule)
}
