//! One trial of the stochastic method on a convolutional network (§3,
//! §8): the stimulus runs once up to the modulated conv stage and through
//! the max-pools right after it (a positive per-channel factor commutes
//! with them, bit for bit); that map is then scaled per channel by
//! exp(m_t·c_k − σ²c_k²/2 − β) for each of the T modulator samples, and
//! the T scaled maps run as one batch through the stages above to the
//! gated layer; its covariance with m is folded in f64.
//!
//! This is a two-stage form: the gated activity of the T samples, `[T, N]`,
//! is materialised once per trial. It is `T·N` values (200 × 128 in the
//! default) against the `T·(MACs above the modulated stage)` of the
//! products that make it (about 65 M multiply-adds), so folding it
//! costs well under 1 % of a trial; `comod bench` measures the share
//! (`conv_trial_B2` against `conv_trial_products_B2`). [`trial_gain_reference`]
//! is the literal, per-sample, two-pass f64 formula the fast form is
//! tested against.

use crate::conv::net::{ConvNet, ConvWorkspace, Modulator, channel_factors, scale_channels};
use crate::kernel::GainRule;

/// Buffers of [`trial_gain`], reused across trials.
#[derive(Clone, Debug, Default)]
pub struct TrialScratch {
    ws: ConvWorkspace<f32>,
    factors: Vec<f32>,
    pooled: Vec<f32>,
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

/// The sample variance of `m` (divisor T), the σ² of the compensation (§3).
pub fn sample_variance(m: &[f32]) -> f64 {
    let mean = m.iter().map(|&v| v as f64).sum::<f64>() / m.len() as f64;
    m.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / m.len() as f64
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
/// `m`: the products of a trial, without the covariance fold.
pub fn trial_activity<'s>(
    net: &ConvNet<f32>,
    u: &[f32],
    m: &[f32],
    coupling: &[f32],
    compensate: bool,
    scratch: &'s mut TrialScratch,
) -> &'s [f32] {
    let arch = net.arch();
    let (t_count, channels) = (m.len(), coupling.len());
    let variance = if compensate {
        sample_variance(m) as f32
    } else {
        0.0
    };
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
    let rows = scratch.ws.stage_input_mut(start);
    rows.clear();
    for _ in 0..t_count {
        rows.extend_from_slice(&scratch.pooled);
    }
    scale_channels(rows, &scratch.factors, channels);
    net.run_stages(
        &mut scratch.ws,
        t_count,
        start..arch.stages.len(),
        None,
        None,
    );
    scratch.ws.gated()
}

/// The per-trial gain (§3) of one stimulus whose modulated-stage output
/// (before the factor) is `u`, for the samples `m`, into `out` (`[N]`):
/// covariance (1/T)Σ_t (m_t − m̄) z_tj, or the correlation.
/// `compensate`: the factor includes −σ²c²/2 with σ² the samples' variance.
#[allow(clippy::too_many_arguments)]
pub fn trial_gain(
    net: &ConvNet<f32>,
    u: &[f32],
    m: &[f32],
    coupling: &[f32],
    compensate: bool,
    rule: GainRule,
    scratch: &mut TrialScratch,
    out: &mut [f64],
) {
    let z = trial_activity(net, u, m, coupling, compensate, scratch);
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
/// centred sums).
pub fn trial_gain_reference(
    net: &ConvNet<f64>,
    image: &[f64],
    m: &[f64],
    coupling: &[f64],
    compensate: bool,
    rule: GainRule,
) -> Vec<f64> {
    let t_count = m.len() as f64;
    let mean_m = m.iter().sum::<f64>() / t_count;
    let variance = if compensate {
        m.iter().map(|v| (v - mean_m).powi(2)).sum::<f64>() / t_count
    } else {
        0.0
    };
    let mut ws = net.workspace();
    let z: Vec<Vec<f64>> = m
        .iter()
        .map(|&mt| {
            let modulator = Modulator {
                m: &[mt],
                coupling,
                beta: net.arch().beta as f64,
                variance,
            };
            net.forward(&mut ws, image, 1, Some(&modulator), None);
            ws.gated().to_vec()
        })
        .collect();
    let n = z[0].len();
    (0..n)
        .map(|j| {
            let mean_z = z.iter().map(|r| r[j]).sum::<f64>() / t_count;
            let cov = m
                .iter()
                .zip(&z)
                .map(|(mt, r)| (mt - mean_m) * (r[j] - mean_z))
                .sum::<f64>()
                / t_count;
            match rule {
                GainRule::Covariance => cov,
                GainRule::Correlation => {
                    let std_m =
                        (m.iter().map(|v| (v - mean_m).powi(2)).sum::<f64>() / t_count).sqrt();
                    let std_z =
                        (z.iter().map(|r| (r[j] - mean_z).powi(2)).sum::<f64>() / t_count).sqrt();
                    if std_z == 0.0 || std_m == 0.0 {
                        0.0
                    } else {
                        cov / (std_m * std_z)
                    }
                }
            }
        })
        .collect()
}
