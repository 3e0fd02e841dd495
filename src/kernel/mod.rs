//! The fused trial kernel (§3): for one trial, the gated layer's
//! activity under all T modulator samples and its covariance with the
//! modulator, in one pass over blocks of samples, never materialising the
//! [T, N_{L−1}] activity.
//!
//! For each block of [`BLOCK`] samples the modulated activity
//! x_t = u ⊙ exp(m_t·c − β) is generated, the layers ℓ+1..L−1 run tile by
//! tile (a tile: 6 or 12 samples × 16 neurons), and the gated layer's
//! tiles are folded into Σ_t (m_t − m̄)·d_t (and, for the correlation rule,
//! Σ d_t and Σ d_t²) in f64 as soon as they leave the micro-kernel, where
//! d_t = z_t − z_1 is the activity relative to the trial's first sample.
//! Since Σ_t (m_t − m̄) = 0, g = (1/T)·Σ_t (m_t − m̄)·d_t needs no second
//! pass; the shift by z_1 keeps the sums free of cancellation, so a neuron
//! that does not vary gets exactly g = 0.
//!
//! Three bodies implement the tiles behind one signature ([`Body`]): plain
//! scalar code, AVX2+FMA and AVX-512F intrinsics, chosen once at run time
//! ([`Body::detect`]). The two SIMD bodies give the same bits. The kernel
//! never knows about tasks, sweeps or files.

/// `$tile::<O>$args` (or `$tile::<O, M>$args`, written `$tile::<_, M>`)
/// for O = `$outputs`, one of the listed counts: the SIMD bodies' tiles
/// that keep one accumulator per output in registers, instantiated for
/// each output count they take.
#[cfg(target_arch = "x86_64")]
macro_rules! for_outputs {
    ($outputs:expr, [$($count:literal)*], $tile:ident $args:tt) => {
        match $outputs {
            $($count => $tile::<$count> $args,)*
            outputs => unreachable!("a tile of {outputs} outputs"),
        }
    };
    ($outputs:expr, [$($count:literal)*], $tile:ident::<_, $more:tt> $args:tt) => {
        match $outputs {
            $($count => $tile::<$count, $more> $args,)*
            outputs => unreachable!("a tile of {outputs} outputs"),
        }
    };
}

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
pub mod batch;
pub mod dense;
pub mod packed;
pub mod plan;
pub mod reference;
mod scalar;
pub mod workload;

pub use batch::{BatchScratch, Trials, batch_gain, trial_gains};
pub use packed::{PACK, PackedRows};

use packed::{packed_index, unpack_row};
pub use plan::KernelPlan;
use plan::PackedLayer;

use crate::net::GainRule;
use crate::net::layers::scale_rows;
use crate::net::simd::{Isa, with_avx2};
use crate::net::vexp::exp_in_place;

/// Default mean μ_m of the modulator (§3).
pub const MODULATOR_MEAN: f32 = 1.0;
/// Default variance σ_m² of the modulator (§3).
pub const MODULATOR_VARIANCE: f32 = 0.1;
/// Default number T of modulator samples per trial (§3).
pub const SAMPLES: usize = 200;

/// Samples per block: a multiple of every body's tile height, small
/// enough that a block's activity stays in the L2 cache.
pub const BLOCK: usize = 48;

/// Which implementation of the tiles runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Body {
    /// Portable scalar code.
    Scalar,
    /// AVX2 + FMA intrinsics (x86-64 only).
    Avx2Fma,
    /// AVX-512F intrinsics (x86-64 only); the same bits as [`Body::Avx2Fma`].
    Avx512,
}

impl Body {
    /// The fastest body this process may use: the best instruction set of
    /// the CPU, capped by `COMOD_ISA` ([`Isa::selected`]).
    pub fn detect() -> Body {
        Body::for_isa(Isa::selected())
    }

    /// The body that runs on instruction set `isa`.
    pub fn for_isa(isa: Isa) -> Body {
        match isa {
            Isa::Scalar => Body::Scalar,
            Isa::Avx2Fma => Body::Avx2Fma,
            Isa::Avx512 => Body::Avx512,
        }
    }

    /// The instruction set this body needs.
    pub fn isa(self) -> Isa {
        match self {
            Body::Scalar => Isa::Scalar,
            Body::Avx2Fma => Isa::Avx2Fma,
            Body::Avx512 => Isa::Avx512,
        }
    }

    /// Every body this CPU can run, slowest first.
    pub fn available() -> Vec<Body> {
        Isa::available().into_iter().map(Body::for_isa).collect()
    }

    /// Samples per tile: the body's micro-kernel height.
    fn rows(self) -> usize {
        match self {
            Body::Scalar => scalar::Scalar::ROWS,
            #[cfg(target_arch = "x86_64")]
            Body::Avx2Fma => avx2::Avx2Fma::ROWS,
            #[cfg(target_arch = "x86_64")]
            Body::Avx512 => avx512::Avx512::ROWS,
            #[cfg(not(target_arch = "x86_64"))]
            _ => unreachable!("only the scalar body runs here"),
        }
    }

    /// Panics unless this CPU runs the body.
    fn assert_supported(self) {
        assert!(
            self.isa().supported(),
            "the {self:?} body needs a CPU with {}",
            self.isa()
        );
    }

    /// [`run_block`] with this body's tiles.
    fn run_block(
        self,
        plan: &KernelPlan,
        source: Source<'_>,
        scratch: &mut KernelScratch,
        rows: usize,
        sink: Sink,
    ) {
        match self {
            Body::Scalar => run_block::<scalar::Scalar>(plan, source, scratch, rows, sink),
            #[cfg(target_arch = "x86_64")]
            Body::Avx2Fma => run_block::<avx2::Avx2Fma>(plan, source, scratch, rows, sink),
            #[cfg(target_arch = "x86_64")]
            Body::Avx512 => run_block::<avx512::Avx512>(plan, source, scratch, rows, sink),
            #[cfg(not(target_arch = "x86_64"))]
            _ => unreachable!("only the scalar body runs here"),
        }
    }
}

/// Buffers of one trial computation, reused across trials: allocating
/// happens only when a trial needs larger buffers than the last.
#[derive(Clone, Debug, Default)]
pub struct KernelScratch {
    /// Modulated activity of a block, `[BLOCK, N_ℓ]`, packed ([`PACK`]).
    activity: Vec<f32>,
    /// Layer ℓ+1 with its weights scaled by exp(m·c − β) of its inputs
    /// ([`forward_rows`]).
    scaled: PackedLayer,
    /// Outputs of the layers between ℓ and L−1, `[BLOCK, N_l]`, packed
    /// (the last one only when rows are stored rather than folded into the gain).
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

/// The operands of one tile of `rows` rows: the tile's inputs lie in the
/// packed layout ([`PACK`]), input k of row r at `a[k·PACK + r]`, for `k`
/// inputs; `panel` holds the packed weights of one or more panels of 16
/// neurons over those inputs, one after the other, and `bias` their
/// biases; `width` of the neurons exist. A tall tile ([`Tiles::TALL`])
/// holds `groups` groups of [`PACK`] rows, each `step` values after the
/// one before in `a`.
#[derive(Clone, Copy)]
struct Tile<'a> {
    k: usize,
    a: &'a [f32],
    panel: &'a [f32],
    bias: &'a [f32],
    width: usize,
    /// Rows of the tile (of each group): the body's [`Tiles::ROWS`], or
    /// [`PACK`] for a narrow panel of a body that takes a whole packed
    /// group at once there ([`Tiles::NARROW`]).
    rows: usize,
    groups: usize,
    step: usize,
}

impl<'a> Tile<'a> {
    /// Panics unless the tile is one group whose reads of `rows` rows and
    /// `panels` panels stay inside its slices (the SIMD bodies rely on it).
    fn check(&self, rows: usize, panels: usize) {
        assert_eq!(self.rows, rows, "the tile's rows");
        assert!(
            self.groups == 1
                && self.k > 0
                && rows <= PACK
                && (self.k - 1) * PACK + rows <= self.a.len(),
            "tile rows out of bounds"
        );
        assert!(
            panels * self.k * plan::PANEL <= self.panel.len()
                && self.bias.len() >= panels * plan::PANEL,
            "panel out of bounds"
        );
        assert!(
            self.width <= panels * plan::PANEL,
            "a tile has at most 16 neurons per panel"
        );
    }

    /// The number of panels the tile holds.
    fn panels(&self) -> usize {
        self.bias.len() / plan::PANEL
    }

    /// Group `g` of a tall tile's rows, as a tile of its own.
    fn group(&self, g: usize) -> Tile<'a> {
        assert!(g < self.groups, "a group of the tile");
        Tile {
            a: &self.a[g * self.step..],
            groups: 1,
            ..*self
        }
    }
}

/// How a tile writes its output rows.
#[derive(Clone, Copy, Debug)]
enum Output {
    /// Neuron c of row r at `out[c·PACK + r]`: the packed input of the next layer.
    Packed,
    /// Neuron c of row r at `out[r·stride + c]`: rows for the caller.
    Rows(usize),
}

impl Output {
    /// Where row r of the output starts.
    fn row(self, r: usize) -> usize {
        match self {
            Output::Packed => r,
            Output::Rows(stride) => r * stride,
        }
    }

    /// Writes `rows` (ReLU applied), `width` neurons of each, to `out`;
    /// panics unless `out` has room for them.
    fn write<const N: usize>(self, rows: &[[f32; N]], width: usize, out: &mut [f32]) {
        assert!(width >= 1 && width <= N, "a tile has at most {N} neurons");
        match self {
            Output::Packed => {
                assert!(
                    (width - 1) * PACK + rows.len() <= out.len(),
                    "output out of bounds"
                );
                for c in 0..width {
                    for (r, row) in rows.iter().enumerate() {
                        out[c * PACK + r] = row[c];
                    }
                }
            }
            Output::Rows(stride) => {
                assert!(
                    (rows.len() - 1) * stride + width <= out.len(),
                    "output out of bounds"
                );
                for (r, row) in rows.iter().enumerate() {
                    out[r * stride..r * stride + width].copy_from_slice(&row[..width]);
                }
            }
        }
    }
}

/// Neurons of a narrow panel at most that the AVX-512 body runs as one
/// tall tile of every row of a block, several groups of [`PACK`] rows at
/// once: the kernel's hidden tiles ([`Tiles::TALL`]) and the dense tiles
/// of packed rows (`dense::tall_tile`). 12 rows × at most 8 neurons fill
/// only 3 or 6 vectors, too few chains to hide the FMA's latency where two
/// 16-lane FMAs issue per cycle.
const TALL_WIDTH: usize = plan::PANEL / 2;

/// The two tile operations a body provides, on tiles of [`Tiles::ROWS`]
/// rows and up to [`Tiles::PANELS`] panels.
trait Tiles {
    /// Rows (samples) per tile, a divisor of [`PACK`].
    const ROWS: usize;
    /// Panels per tile at most (the last tile of a block may have fewer).
    const PANELS: usize;
    /// Neurons of a panel at most that [`Tiles::hidden`] takes as one tall
    /// tile of every row of a block, when it writes them as rows (0: none).
    const TALL: usize = 0;
    /// Neurons of a panel at most that [`Tiles::hidden`] and
    /// [`Tiles::gated`] take [`PACK`] rows at a time, a whole packed group,
    /// where the block has them (0: none; only for a body whose tiles
    /// hold fewer rows).
    const NARROW: usize = 0;

    /// ReLU(Σ_k a[r, k]·W[c, k] + b[c]) for c < width into `out`, laid out
    /// as `layout` says.
    fn hidden(tile: Tile<'_>, out: &mut [f32], layout: Output);

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
    body.assert_supported();
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
        let rows = block.len().next_multiple_of(body.rows());
        modulated_activity(
            body,
            plan,
            coupling,
            activity,
            block,
            rows,
            &mut scratch.activity,
        );
        for r in 0..rows {
            let inside = r < block.len();
            scratch.weight[r] = if inside {
                (modulator[start + r] as f64 - m_mean) as f32
            } else {
                0.0
            };
            scratch.valid[r] = if inside { 1.0 } else { 0.0 };
        }
        body.run_block(plan, Source::Modulated, scratch, rows, sink(start == 0));
    }
    let std_modulator = (modulator
        .iter()
        .map(|&m| (m as f64 - m_mean).powi(2))
        .sum::<f64>()
        / samples as f64)
        .sqrt();
    finish(&scratch.sums, samples, std_modulator, rule, out);
}

/// The rows of `x` (the modulated layer's activity F(a_ℓ)), each scaled
/// by `factor` (exp(m·c − β) per neuron), through the layers ℓ+1..L−1
/// (ReLU, before the gain), computed by `body`: the same tiles as the
/// trial kernel (§4 evaluation of the modulation methods). The scaling is
/// folded into layer ℓ+1's packed weights, (x ⊙ f)·W = x·(diag(f)·W), so
/// that the tiles read the rows of `x` where they are; the product of
/// each weight and factor is rounded once, where scaling each row rounded
/// every x·f. (When the modulated layer is the gated one, the rows are
/// scaled.) Hands each block of rows to `each_block` as it is done, with
/// the index of its first row and its outputs `[rows, N_{L−1}]` row-major,
/// while they are still in cache: the caller reads them out there instead
/// of from a whole set's buffer.
pub fn forward_rows(
    body: Body,
    plan: &KernelPlan,
    x: &PackedRows,
    factor: &[f32],
    scratch: &mut KernelScratch,
    mut each_block: impl FnMut(usize, &[f32]),
) {
    let (n, g) = (plan.modulated_size, plan.gated_size);
    assert_eq!(x.width(), n, "rows of the modulated layer");
    assert_eq!(x.group(), PACK, "rows packed for the tiles");
    assert_eq!(factor.len(), n, "one factor per modulated neuron");
    body.assert_supported();
    scratch.fit(plan);
    if plan.layers.is_empty() {
        // The modulated layer is the gated one: its scaled rows are the output.
        for start in (0..x.rows()).step_by(BLOCK) {
            let real = BLOCK.min(x.rows() - start);
            let rows = &mut scratch.activity[..real * n];
            for (r, row) in rows.chunks_exact_mut(n).enumerate() {
                unpack_row(x.data(), start + r, row);
            }
            scale_rows(rows, factor);
            each_block(start, rows);
        }
        return;
    }
    // x ⊙ f through W is x through W·diag(f): the weights are scaled once
    // per call, and the tiles read the set's rows where they are.
    scratch.scaled.scale_inputs(&plan.layers[0], factor);
    for start in (0..x.rows()).step_by(BLOCK) {
        let real = BLOCK.min(x.rows() - start);
        let rows = real.next_multiple_of(body.rows());
        let source = Source::Scaled(&x.data()[start * n..]);
        body.run_block(plan, source, scratch, rows, Sink::Store);
        each_block(start, &scratch.hidden[plan.layers.len() - 1][..real * g]);
    }
}

/// Rows 0..block.len() of the packed `x` ← activity ⊙ exp(m_t·c − β),
/// computed group by group in the packed order (each step vectorised
/// over a contiguous run); padding rows up to `rows` ← 0.
fn modulated_activity(
    body: Body,
    plan: &KernelPlan,
    coupling: &[f32],
    activity: &[f32],
    block: &[f32],
    rows: usize,
    x: &mut [f32],
) {
    let n = plan.modulated_size;
    let beta = plan.beta;
    for (group, x) in x[..rows.next_multiple_of(PACK) * n]
        .chunks_exact_mut(PACK * n)
        .enumerate()
    {
        let first = group * PACK;
        let real = block.len().saturating_sub(first).min(PACK);
        let mut m = [0.0f32; PACK];
        m[..real].copy_from_slice(&block[first..first + real]);
        let valid: [f32; PACK] = std::array::from_fn(|r| if r < real { 1.0 } else { 0.0 });
        #[cfg(target_arch = "x86_64")]
        if body == Body::Avx512 {
            // SAFETY: the caller checked that the CPU runs the AVX-512 body.
            unsafe { avx512::modulated_group(&m, &valid, coupling, activity, beta, x) };
            continue;
        }
        #[cfg(target_arch = "x86_64")]
        if body == Body::Avx2Fma {
            // SAFETY: the caller checked that the CPU runs the AVX2 body.
            unsafe { avx2::modulated_group(&m, &valid, coupling, activity, beta, x) };
            continue;
        }
        with_avx2(
            #[inline(always)]
            || {
                for (xk, &c) in x.as_chunks_mut::<PACK>().0.iter_mut().zip(coupling) {
                    for (v, &m) in xk.iter_mut().zip(&m) {
                        *v = m * c - beta;
                    }
                }
            },
        );
        exp_in_place(x);
        // ×u on the real rows, 0 on padding rows (× 1 and × 0 are exact).
        with_avx2(
            #[inline(always)]
            || {
                for (xk, &u) in x.as_chunks_mut::<PACK>().0.iter_mut().zip(activity) {
                    for (v, &keep) in xk.iter_mut().zip(&valid) {
                        *v = *v * u * keep;
                    }
                }
            },
        );
    }
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
    /// Store them, ReLU applied, in the last hidden buffer, row-major ([`forward_rows`]).
    Store,
}

/// Where a block's first layer (ℓ+1) finds its input and its weights.
#[derive(Clone, Copy)]
enum Source<'a> {
    /// The modulated activity in the scratch, through the plan's weights
    /// (the trial kernel).
    Modulated,
    /// The packed rows from the block's first one on, through the
    /// scratch's scaled weights ([`forward_rows`]).
    Scaled(&'a [f32]),
}

/// One block through the layers between ℓ and L−1, tile by tile.
fn run_block<B: Tiles>(
    plan: &KernelPlan,
    source: Source<'_>,
    scratch: &mut KernelScratch,
    rows: usize,
    sink: Sink,
) {
    let KernelScratch {
        activity,
        scaled,
        hidden,
        weight,
        valid,
        sums,
        ..
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
        let (input, n_in, layer): (&[f32], usize, &PackedLayer) = match (li, source) {
            (0, Source::Modulated) => (activity, plan.modulated_size, layer),
            (0, Source::Scaled(rows)) => (rows, plan.modulated_size, scaled),
            _ => (&before[li - 1], plan.layers[li - 1].outputs, layer),
        };
        let (ni, no) = (layer.group_inputs(), layer.group_outputs());
        // Row tiles outside, panels inside: a tile's rows stay in L1 while
        // the panels stream past them. Each neuron still sees its tiles in
        // row order, so the sums do not depend on the loop order.
        let stored = li == last && matches!(sink, Sink::Store);
        for g in 0..layer.groups {
            for q in (0..rows).step_by(B::ROWS) {
                for p in (0..layer.panels_per_group()).step_by(B::PANELS) {
                    let count = B::PANELS.min(layer.panels_per_group() - p);
                    let (panel, bias, width) = (
                        layer.panels(g, p, count),
                        layer.panels_bias(g, p, count),
                        layer.panels_width(p, count),
                    );
                    // The tile's first row, its rows and its groups of rows.
                    let (q, height, groups) = if stored && width <= B::TALL {
                        if q + B::ROWS < rows {
                            continue;
                        }
                        // Every row at once, with the last row tile.
                        (0, B::ROWS, rows / PACK)
                    } else if width <= B::NARROW {
                        // A packed group the block holds whole, at once with its first tile.
                        let group_start = q - q % PACK;
                        match (q == group_start, group_start + PACK <= rows) {
                            (true, true) => (q, PACK, 1),
                            (false, true) => continue,
                            (_, false) => (q, B::ROWS, 1),
                        }
                    } else {
                        (q, B::ROWS, 1)
                    };
                    let column = g * no + p * plan::PANEL;
                    let tile = Tile {
                        k: ni,
                        a: &input[packed_index(q, g * ni, n_in)..],
                        panel,
                        bias,
                        width,
                        rows: height,
                        groups,
                        step: PACK * n_in,
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
                        let (w, v) = (&weight[q..q + height], &valid[q..q + height]);
                        B::gated(tile, w, v, correlation, sums);
                    } else {
                        let (out, layout) = if li == last {
                            // Only a `Store` sink gets here: rows for the caller.
                            let at = q * layer.outputs + column;
                            (&mut after[0][at..], Output::Rows(layer.outputs))
                        } else {
                            let at = packed_index(q, column, layer.outputs);
                            (&mut after[0][at..], Output::Packed)
                        };
                        B::hidden(tile, out, layout);
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
        unpack_row(x, 0, &mut sums.shift);
    }
    for (r, (&w, &v)) in weight[..rows].iter().zip(valid).enumerate() {
        for j in 0..n {
            let d = (x[packed_index(r, j, n)] - sums.shift[j]) as f64;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_written_from_their_row_land_where_the_whole_tile_puts_them() {
        // A tile written as two halves, the second at `Output::row(6)`,
        // fills what the whole tile fills (as the AVX2 dense tiles do).
        let rows: Vec<[f32; 3]> = (0..PACK)
            .map(|r| std::array::from_fn(|c| (100 * c + r) as f32))
            .collect();
        for layout in [Output::Packed, Output::Rows(5)] {
            let (mut whole, mut halves) = (vec![f32::NAN; 80], vec![f32::NAN; 80]);
            layout.write(&rows, 3, &mut whole);
            layout.write(&rows[..6], 3, &mut halves);
            layout.write(&rows[6..], 3, &mut halves[layout.row(6)..]);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&whole), bits(&halves), "{layout:?}");
        }
    }
}
