//! The plain reference of the per-trial gain (§3): the formula taken
//! literally, in f64, with two passes over a materialised [T, N_{L−1}]
//! activity. Slow and obviously correct; the fast bodies are tested
//! against it.

use crate::net::GainRule;
use crate::net::{LayerKind, Model};

/// The reference gain of one trial, with the magnitudes that bound the
/// rounding error of an f32 computation of it.
#[derive(Clone, Debug)]
pub struct ReferenceGain {
    /// g_j per gated neuron.
    pub gain: Vec<f64>,
    /// (1/T)·Σ_t |m_t − m̄|·A_{t,j}, where A is the activity computed with
    /// |W|, |b| and |x|: an f32 covariance errs by a small multiple of
    /// ε·this.
    pub covariance_scale: Vec<f64>,
    /// (1/T)·Σ_t |z_{t,j} − z̄_j|·A_{t,j}: the same for the variance of z_j.
    pub variance_scale: Vec<f64>,
    /// std_t z_j.
    pub std_activity: Vec<f64>,
    /// std_t m.
    pub std_modulator: f64,
}

impl ReferenceGain {
    /// Pass 2 of the reference from pass 1's materialised samples: the
    /// gated activity `z[t]` and its magnitude `magnitude[t]` (the same
    /// activity computed with |W|, |b| and |x|) for each modulator value
    /// `modulator[t]`; means first, then the centred sums (§3).
    pub fn from_samples(
        z: &[Vec<f64>],
        magnitude: &[Vec<f64>],
        modulator: &[f64],
        rule: GainRule,
    ) -> ReferenceGain {
        let n = z.first().map_or(0, Vec::len);
        let t_count = modulator.len() as f64;
        let m_mean = modulator.iter().sum::<f64>() / t_count;
        let centred_m: Vec<f64> = modulator.iter().map(|&m| m - m_mean).collect();
        let std_modulator = (centred_m.iter().map(|d| d * d).sum::<f64>() / t_count).sqrt();
        let mut out = ReferenceGain {
            gain: vec![0.0; n],
            covariance_scale: vec![0.0; n],
            variance_scale: vec![0.0; n],
            std_activity: vec![0.0; n],
            std_modulator,
        };
        for j in 0..n {
            let z_mean = z.iter().map(|zt| zt[j]).sum::<f64>() / t_count;
            let mut covariance = 0.0;
            let mut variance = 0.0;
            for t in 0..modulator.len() {
                let dz = z[t][j] - z_mean;
                covariance += centred_m[t] * dz;
                variance += dz * dz;
                out.covariance_scale[j] += centred_m[t].abs() * magnitude[t][j];
                out.variance_scale[j] += dz.abs() * magnitude[t][j];
            }
            covariance /= t_count;
            out.std_activity[j] = (variance / t_count).sqrt();
            out.covariance_scale[j] /= t_count;
            out.variance_scale[j] /= t_count;
            out.gain[j] = match rule {
                GainRule::Covariance => covariance,
                GainRule::Correlation if out.std_activity[j] > 0.0 && std_modulator > 0.0 => {
                    covariance / (std_modulator * out.std_activity[j])
                }
                GainRule::Correlation => 0.0,
            };
        }
        out
    }

    /// The error an f32 computation of gain j may make under `rule`, for a
    /// relative `tolerance`: `tolerance`·S_j for the covariance, that
    /// propagated through the division by std m · std z_j for the
    /// correlation (the error of the covariance over the product of the
    /// stds, plus |g_j| times the relative error of the variance of z_j),
    /// so that a neuron whose activity barely varies is allowed the error
    /// its ill-conditioning brings. Where a std is 0 the gain must be 0.
    pub fn allowed_error(&self, j: usize, rule: GainRule, tolerance: f64) -> f64 {
        let bound = match rule {
            GainRule::Covariance => tolerance * self.covariance_scale[j],
            GainRule::Correlation => {
                let (sm, sz) = (self.std_modulator, self.std_activity[j]);
                if sm == 0.0 || sz == 0.0 {
                    0.0
                } else {
                    tolerance
                        * (self.covariance_scale[j] / (sm * sz)
                            + self.gain[j].abs() * self.variance_scale[j] / (sz * sz))
                }
            }
        };
        bound + 1e-30
    }
}

/// One layer y = ReLU(W x + b) in f64, block by block, and its magnitude
/// |W|·|x| + |b| alongside.
fn relu_layer(model: &Model<f32>, l: usize, x: &[f64], x_abs: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let layout = model.layer(l);
    let (ni, no) = (layout.shape.group_inputs(), layout.shape.group_outputs());
    let (w, b) = (model.weights(l), model.bias(l));
    let mut y = vec![0.0; layout.shape.outputs];
    let mut y_abs = vec![0.0; layout.shape.outputs];
    for j in 0..layout.shape.outputs {
        let g = j / no;
        let mut sum = b[j] as f64;
        let mut magnitude = (b[j] as f64).abs();
        for k in 0..ni {
            let wk = w[j * ni + k] as f64;
            sum += wk * x[g * ni + k];
            magnitude += wk.abs() * x_abs[g * ni + k];
        }
        y[j] = sum.max(0.0);
        y_abs[j] = magnitude;
    }
    debug_assert!(matches!(layout.kind, LayerKind::Dense | LayerKind::Local));
    (y, y_abs)
}

/// g_j = (1/T) Σ_t (m_t − m̄)(z_{t,j} − z̄_j), or that divided by
/// std_t m · std_t z_j (0 where std_t z_j = 0) for the correlation rule,
/// where z_t is the gated layer's pre-gain activity when the modulated
/// layer's activity `activity` (F(a_ℓ), unmodulated) is multiplied by
/// exp(m_t·c − β).
pub fn reference_trial_gain(
    model: &Model<f32>,
    coupling: &[f32],
    activity: &[f32],
    modulator: &[f32],
    rule: GainRule,
) -> ReferenceGain {
    let arch = model.arch();
    let beta = arch.beta as f64;
    let samples = modulator.len();
    // Pass 1: every z_t, materialised.
    let mut z = Vec::with_capacity(samples);
    let mut magnitude = Vec::with_capacity(samples);
    for &m in modulator {
        let mut x: Vec<f64> = activity
            .iter()
            .zip(coupling)
            .map(|(&u, &c)| u as f64 * (m as f64 * c as f64 - beta).exp())
            .collect();
        let mut x_abs: Vec<f64> = x.iter().map(|v| v.abs()).collect();
        for l in arch.modulated_layer + 1..=arch.gated_layer() {
            (x, x_abs) = relu_layer(model, l, &x, &x_abs);
        }
        z.push(x);
        magnitude.push(x_abs);
    }
    let modulator: Vec<f64> = modulator.iter().map(|&m| m as f64).collect();
    ReferenceGain::from_samples(&z, &magnitude, &modulator, rule)
}
