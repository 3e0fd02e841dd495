//! The fused trial kernel (§3): for one trial, the gated layer's
//! activity under all T modulator samples and its covariance with the
//! modulator, in one pass over blocks of samples, never materialising the
//! [T, N_{L−1}] activity.
//!
//! For each block of [`BLOCK`] samples the modulated activity
//! x_t = u ⊙ exp(m_t·c − β) is generated, the layers ℓ+1..L−1 run tile by
//! tile (a tile: [`ROWS`] samples × 16 neurons), and the gated layer's
//! tiles are folded into Σ_t (m_t − m̄)·d_t (and, for the correlation rule,
//! Σ d_t and Σ d_t²) in f64 as soon as they leave the micro-kernel, where
//! d_t = z_t − z_1 is the activity relative to the trial's first sample.
//! Since Σ_t (m_t − m̄) = 0, g = (1/T)·Σ_t (m_t − m̄)·d_t needs no second
//! pass; the shift by z_1 keeps the sums free of cancellation, so a neuron
//! that does not vary gets exactly g = 0.
//!
//! Two bodies implement the tiles behind one signature ([`Body`]): plain
//! scalar code and AVX2+FMA intrinsics, chosen once at run time
//! ([`Body::detect`]). The kernel never knows about tasks, sweeps or files.

#[cfg(target_arch = "x86_64")]
mod avx2;
pub mod batch;
pub mod plan;
pub mod reference;
mod scalar;
pub mod workload;

pub use batch::{BatchScratch, Trials, batch_gain, trial_gains};
pub use plan::KernelPlan;

use crate::net::simd::has_avx2_fma;
use crate::net::vexp::exp_in_place;

/// Default mean μ_m of the modulator (§3).
pub const MODULATOR_MEAN: f32 = 1.0;
/// Default variance σ_m² of the modulator (§3).
pub const MODULATOR_VARIANCE: f32 = 0.1;
/// Default number T of modulator samples per trial (§3).
pub const SAMPLES: usize = 200;

/// Samples per tile: the micro-kernels' row count.
pub const ROWS: usize = 6;
/// Samples per block: multiple of [`ROWS`], small enough that a block's
/// activity stays in the L2 cache.
pub const BLOCK: usize = 48;

/// How the per-trial gain is read from the samples (§3).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum GainRule {
    /// g_j = cov_t(m, z_j) (paper Eq. 3, the default).
    Covariance,
    /// g_j = cov_t(m, z_j) / (std_t m · std_t z_j), 0 where std_t z_j = 0.
    Correlation,
}

/// Which implementation of the tiles runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Body {
    /// Portable scalar code.
    Scalar,
    /// AVX2 + FMA intrinsics (x86-64 only).
    Avx2Fma,
}

impl Body {
    /// The fastest body this CPU runs (detected once per process by std).
    pub fn detect() -> Body {
        if has_avx2_fma() {
            Body::Avx2Fma
        } else {
            Body::Scalar
        }
    }
}

/// Buffers of one trial computation, reused across trials: allocating
/// happens only when a trial needs larger buffers than the last.
#[derive(Clone, Debug, Default)]
pub struct KernelScratch {
    /// Modulated activity of a block, `[BLOCK, N_ℓ]`.
    activity: Vec<f32>,
    /// Outputs of the layers between ℓ and L−1, `[BLOCK, N_l]` (the last one
    /// only when rows are stored rather than folded into the gain).
    hidden: Vec<Vec<f32>>,
    /// m_t − m̄ of the block's samples, 0 on padding rows.
    weight: Vec<f32>,
    /// 1 for the block's samples, 0 on padding rows.
    valid: Vec<f32>,
    /// Σ_t (m_t − m̄)·d_t, Σ_t d_t and Σ_t d_t² per gated neuron.
    sums: GatedSums,
}

/// The running sums of the gated layer, in f64, of d_t = z_t − shift.
#[derive(Clone, Debug, Default)]
pub struct GatedSums {
    shift: Vec<f32>,
    covariance: Vec<f64>,
    sum: Vec<f64>,
    sum_squares: Vec<f64>,
}

impl KernelScratch {
    fn fit(&mut self, plan: &KernelPlan) {
        self.activity.resize(BLOCK * plan.modulated_size, 0.0);
        self.hidden.resize_with(plan.layers.len(), Vec::new);
        for (buffer, layer) in self.hidden.iter_mut().zip(&plan.layers) {
            buffer.resize(BLOCK * layer.outputs, 0.0);
        }
        self.weight.resize(BLOCK, 0.0);
        self.valid.resize(BLOCK, 0.0);
        self.sums.shift.resize(plan.gated_size, 0.0);
        for sums in [
            &mut self.sums.covariance,
            &mut self.sums.sum,
            &mut self.sums.sum_squares,
        ] {
            sums.clear();
            sums.resize(plan.gated_size, 0.0);
        }
    }
}

/// The operands of one tile: rows r = 0..6 of `a` start at r·`a_stride`
/// and hold `k` inputs; `panel` holds the packed weights of 16 neurons over
/// those inputs and `bias` their biases; `width` ≤ 16 of the neurons exist.
#[derive(Clone, Copy)]
struct Tile<'a> {
    k: usize,
    a: &'a [f32],
    a_stride: usize,
    panel: &'a [f32],
    bias: &'a [f32],
    width: usize,
}

impl Tile<'_> {
    /// Panics unless every read of the tile stays inside its slices (the
    /// SIMD body relies on it).
    fn check(&self) {
        assert!(
            self.k > 0 && (ROWS - 1) * self.a_stride + self.k <= self.a.len(),
            "tile rows out of bounds"
        );
        assert!(
            self.k * plan::PANEL <= self.panel.len() && self.bias.len() >= plan::PANEL,
            "panel out of bounds"
        );
        assert!(self.width <= plan::PANEL, "a tile has at most 16 neurons");
    }
}

/// The two tile operations a body provides.
trait Tiles {
    /// out[r·out_stride + c] = ReLU(Σ_k a[r, k]·W[c, k] + b[c]) for c < width.
    fn hidden(tile: Tile<'_>, out: &mut [f32], out_stride: usize);

    /// With z = ReLU(a·Wᵀ + b) of the tile, first shift[c] = z[0, c] when
    /// `sums.first` (the tile that holds the trial's first sample), then with
    /// d = z − shift: covariance[c] += Σ_r weight[r]·d[r, c], and with
    /// `correlation` also sum[c] += Σ_r valid[r]·d and
    /// sum_squares[c] += Σ_r valid[r]·d², for c < width.
    fn gated(
        tile: Tile<'_>,
        weight: &[f32],
        valid: &[f32],
        correlation: bool,
        sums: GatedSlices<'_>,
    );
}

/// The sums of one tile's neurons.
struct GatedSlices<'a> {
    first: bool,
    shift: &'a mut [f32],
    covariance: &'a mut [f64],
    sum: &'a mut [f64],
    sum_squares: &'a mut [f64],
}

/// The per-trial gain (§3) of the network in `plan` with coupling
/// `coupling`, computed by `body` ([`Body::detect`] for the fastest):
/// `activity` is the modulated layer's unmodulated activity F(a_ℓ) for this
/// trial's stimulus, `modulator` its T ≥ 1 samples. Writes g, `[N_{L−1}]`,
/// to `out`.
#[allow(clippy::too_many_arguments)]
pub fn trial_gain(
    body: Body,
    plan: &KernelPlan,
    coupling: &[f32],
    activity: &[f32],
    modulator: &[f32],
    rule: GainRule,
    scratch: &mut KernelScratch,
    out: &mut [f32],
) {
    assert!(
        !modulator.is_empty(),
        "a trial needs at least one modulator sample"
    );
    assert!(
        body == Body::Scalar || has_avx2_fma(),
        "the AVX2+FMA body needs a CPU with AVX2 and FMA"
    );
    assert_eq!(coupling.len(), plan.modulated_size);
    assert_eq!(activity.len(), plan.modulated_size);
    assert_eq!(out.len(), plan.gated_size);
    scratch.fit(plan);
    let samples = modulator.len();
    let m_mean = modulator.iter().map(|&m| m as f64).sum::<f64>() / samples as f64;
    let correlation = rule == GainRule::Correlation;
    let sink = |first_block| Sink::Gain {
        first_block,
        correlation,
    };
    for (start, block) in (0..samples).step_by(BLOCK).zip(modulator.chunks(BLOCK)) {
        let rows = block.len().next_multiple_of(ROWS);
        modulated_activity(plan, coupling, activity, block, rows, &mut scratch.activity);
        for r in 0..rows {
            let inside = r < block.len();
            scratch.weight[r] = if inside {
                (modulator[start + r] as f64 - m_mean) as f32
            } else {
                0.0
            };
            scratch.valid[r] = if inside { 1.0 } else { 0.0 };
        }
        match body {
            Body::Scalar => run_block::<scalar::Scalar>(plan, scratch, rows, sink(start == 0)),
            #[cfg(target_arch = "x86_64")]
            Body::Avx2Fma => run_block::<avx2::Avx2Fma>(plan, scratch, rows, sink(start == 0)),
            #[cfg(not(target_arch = "x86_64"))]
            Body::Avx2Fma => unreachable!("checked above"),
        }
    }
    let std_modulator = (modulator
        .iter()
        .map(|&m| (m as f64 - m_mean).powi(2))
        .sum::<f64>()
        / samples as f64)
        .sqrt();
    finish(&scratch.sums, samples, std_modulator, rule, out);
}

/// Rows of modulated activity `x`, `[R, N_ℓ]`, through the layers ℓ+1..L−1
/// (ReLU, before the gain) into `out`, `[R, N_{L−1}]`, computed by `body`:
/// the same tiles as the trial kernel, on the weights packed once, so that
/// evaluating a fixed test set needs no packing (§4 evaluation of the
/// modulation methods).
pub fn forward_rows(
    body: Body,
    plan: &KernelPlan,
    x: &[f32],
    out: &mut [f32],
    scratch: &mut KernelScratch,
) {
    let (n, g) = (plan.modulated_size, plan.gated_size);
    assert_eq!(x.len() / n, out.len() / g, "one output row per input row");
    assert!(
        body == Body::Scalar || has_avx2_fma(),
        "the AVX2+FMA body needs a CPU with AVX2 and FMA"
    );
    if plan.layers.is_empty() {
        out.copy_from_slice(x);
        return;
    }
    scratch.fit(plan);
    let last = plan.layers.len() - 1;
    for (x_block, out_block) in x.chunks(BLOCK * n).zip(out.chunks_mut(BLOCK * g)) {
        let real = x_block.len() / n;
        let rows = real.next_multiple_of(ROWS);
        scratch.activity[..real * n].copy_from_slice(x_block);
        scratch.activity[real * n..rows * n].fill(0.0);
        match body {
            Body::Scalar => run_block::<scalar::Scalar>(plan, scratch, rows, Sink::Store),
            #[cfg(target_arch = "x86_64")]
            Body::Avx2Fma => run_block::<avx2::Avx2Fma>(plan, scratch, rows, Sink::Store),
            #[cfg(not(target_arch = "x86_64"))]
            Body::Avx2Fma => unreachable!("checked above"),
        }
        out_block.copy_from_slice(&scratch.hidden[last][..real * g]);
    }
}

/// Rows 0..block.len() of `x` ← activity ⊙ exp(m_t·c − β); padding rows up to `rows` ← 0.
fn modulated_activity(
    plan: &KernelPlan,
    coupling: &[f32],
    activity: &[f32],
    block: &[f32],
    rows: usize,
    x: &mut [f32],
) {
    let n = plan.modulated_size;
    for (row, &m) in x.chunks_exact_mut(n).zip(block) {
        for (v, &c) in row.iter_mut().zip(coupling) {
            *v = m * c - plan.beta;
        }
        exp_in_place(row);
        for (v, &u) in row.iter_mut().zip(activity) {
            *v *= u;
        }
    }
    x[block.len() * n..rows * n].fill(0.0);
}

/// What the last layer of a block does with its tiles.
#[derive(Clone, Copy)]
enum Sink {
    /// Fold them into the gain sums (the trial kernel).
    Gain {
        /// The block holds the trial's first sample.
        first_block: bool,
        /// Also accumulate Σd and Σd².
        correlation: bool,
    },
    /// Store them, ReLU applied, in the last hidden buffer ([`forward_rows`]).
    Store,
}

/// One block through the layers between ℓ and L−1, tile by tile.
fn run_block<B: Tiles>(plan: &KernelPlan, scratch: &mut KernelScratch, rows: usize, sink: Sink) {
    let KernelScratch {
        activity,
        hidden,
        weight,
        valid,
        sums,
    } = scratch;
    if plan.layers.is_empty() {
        if let Sink::Gain {
            first_block,
            correlation,
        } = sink
        {
            direct_sums(
                plan,
                activity,
                weight,
                valid,
                rows,
                first_block,
                correlation,
                sums,
            );
        }
        return;
    }
    let last = plan.layers.len() - 1;
    for (li, layer) in plan.layers.iter().enumerate() {
        let (before, after) = hidden.split_at_mut(li);
        let (input, stride): (&[f32], usize) = if li == 0 {
            (activity, plan.modulated_size)
        } else {
            (&before[li - 1], plan.layers[li - 1].outputs)
        };
        let (ni, no) = (layer.group_inputs(), layer.group_outputs());
        for g in 0..layer.groups {
            for p in 0..layer.panels_per_group() {
                let (panel, bias, width) = (
                    layer.panel(g, p),
                    layer.panel_bias(g, p),
                    layer.panel_width(p),
                );
                let column = g * no + p * plan::PANEL;
                for q in (0..rows).step_by(ROWS) {
                    let tile = Tile {
                        k: ni,
                        a: &input[q * stride + g * ni..],
                        a_stride: stride,
                        panel,
                        bias,
                        width,
                    };
                    if let (
                        true,
                        Sink::Gain {
                            first_block,
                            correlation,
                        },
                    ) = (li == last, sink)
                    {
                        let sums = GatedSlices {
                            first: first_block && q == 0,
                            shift: &mut sums.shift[column..column + width],
                            covariance: &mut sums.covariance[column..column + width],
                            sum: &mut sums.sum[column..column + width],
                            sum_squares: &mut sums.sum_squares[column..column + width],
                        };
                        let (w, v) = (&weight[q..q + ROWS], &valid[q..q + ROWS]);
                        B::gated(tile, w, v, correlation, sums);
                    } else {
                        let out = &mut after[0][q * layer.outputs + column..];
                        B::hidden(tile, out, layer.outputs);
                    }
                }
            }
        }
    }
}

/// When the modulated layer is the gated one, z_t is the modulated activity itself.
#[allow(clippy::too_many_arguments)]
fn direct_sums(
    plan: &KernelPlan,
    x: &[f32],
    weight: &[f32],
    valid: &[f32],
    rows: usize,
    first_block: bool,
    correlation: bool,
    sums: &mut GatedSums,
) {
    let n = plan.modulated_size;
    if first_block {
        sums.shift.copy_from_slice(&x[..n]);
    }
    for ((row, &w), &v) in x[..rows * n].chunks_exact(n).zip(weight).zip(valid) {
        for (j, &z) in row.iter().enumerate() {
            let d = (z - sums.shift[j]) as f64;
            sums.covariance[j] += w as f64 * d;
            if correlation {
                sums.sum[j] += v as f64 * d;
                sums.sum_squares[j] += v as f64 * d * d;
            }
        }
    }
}

/// g from the sums: cov/T, or cov/(T·std m·std z) for the correlation rule.
fn finish(sums: &GatedSums, samples: usize, std_modulator: f64, rule: GainRule, out: &mut [f32]) {
    let t = samples as f64;
    for (j, g) in out.iter_mut().enumerate() {
        let covariance = sums.covariance[j] / t;
        *g = match rule {
            GainRule::Covariance => covariance as f32,
            GainRule::Correlation => {
                let mean = sums.sum[j] / t;
                let std_activity = (sums.sum_squares[j] / t - mean * mean).max(0.0).sqrt();
                if std_activity > 0.0 && std_modulator > 0.0 {
                    (covariance / (std_modulator * std_activity)) as f32
                } else {
                    0.0
                }
            }
        };
    }
}
