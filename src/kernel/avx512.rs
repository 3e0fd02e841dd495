//! The AVX-512F body of the kernel's tiles (§3): a 12×32 register tile (24
//! accumulators of 16 lanes; per input, two panel loads and twelve
//! embedded broadcasts feed 24 FMAs), or 12×16 for a block's last odd
//! panel, with the epilogues of the AVX2 body.
//!
//! Every output runs the same chain as in the AVX2 body (bias, then one
//! FMA per input in order), and the gated epilogue folds the tile's rows
//! into the f64 sums in the AVX2 body's groups of six, skipping a group
//! made only of padding rows. So both bodies give the same bits: which
//! one a machine picks never changes a result.

use std::arch::x86_64::*;

use crate::kernel::dense::{
    CHUNK, DenseTile, LANE_GROUPS, LaneCount, LaneTile, RowLayout, check_lane_rows,
};
use crate::kernel::packed::LANE_ROWS;
use crate::kernel::plan::PANEL;
use crate::kernel::{GatedSlices, Output, PACK, TALL_WIDTH, Tile, Tiles};
use crate::net::Nonlinearity;
use crate::net::simd::lanes::first16;
use crate::net::vexp::exp16;

/// Rows of a tile of this body.
const ROWS: usize = 12;
/// Rows of one group of the gated epilogue (the AVX2 body's tile height).
const GROUP: usize = 6;

/// How many inputs ahead [`chain`] asks for its panels' next lines: a
/// layer's panels stream from L2 (a pair of 400-input panels is 51 KB,
/// more than L1 holds), and the hardware fetches them too late; in a
/// throwaway timing of the 12×32 tile (k = 400, six panel pairs, one
/// thread, Xeon AVX-512) the hint took it from 166–170 to 179–185 GFLOP/s.
const PREFETCH_INPUTS: usize = 8;

/// AVX-512F intrinsics; reached only after `has_avx512f()` (asserted at
/// the kernel's entry points).
pub struct Avx512;

/// acc[r][h] += Σ_{k in inputs} a[r, k]·panel h[k, ..16], one FMA per
/// input in order, for rows r < 12 and the `P` panels (panel h at
/// `panel + h·stride`); input k of row r at `a[r·row_step + k·input_step]`
/// (the packed rows: 1 and [`PACK`]).
///
/// # Safety
/// AVX-512F must be available; inputs `inputs` of rows 0..12 of `a` and
/// of the P panels must be in bounds.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn chain<const P: usize>(
    (a, row_step, input_step): (*const f32, usize, usize),
    panel: *const f32,
    stride: usize,
    inputs: std::ops::Range<usize>,
    acc: &mut [[__m512; P]; ROWS],
) {
    for kk in inputs {
        for h in 0..P {
            // A hint, never a read: an address past the panel does no harm
            // (`wrapping_add` keeps it a plain address computation).
            let ahead = panel.wrapping_add(h * stride + (kk + PREFETCH_INPUTS) * PANEL);
            _mm_prefetch::<_MM_HINT_T0>(ahead.cast());
        }
        // SAFETY: in bounds by the caller's contract.
        unsafe {
            let w: [__m512; P] =
                std::array::from_fn(|h| _mm512_loadu_ps(panel.add(h * stride + kk * PANEL)));
            let x = a.add(kk * input_step);
            for (r, acc) in acc.iter_mut().enumerate() {
                let x = _mm512_set1_ps(*x.add(r * row_step));
                for h in 0..P {
                    acc[h] = _mm512_fmadd_ps(x, w[h], acc[h]);
                }
            }
        }
    }
}

/// acc[r][h] holds row r, neurons 16h..16h+16, of a·panels + bias, for
/// the `P` panels of the tile.
///
/// # Safety
/// AVX-512F must be available.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn product<const P: usize>(tile: Tile<'_>) -> [[__m512; P]; ROWS] {
    tile.check(ROWS, P);
    // SAFETY: `tile.check` ensured that inputs 0..k of rows 0..12 of `a`,
    // inputs 0..k × 16 neurons of the P panels and their 16·P biases are
    // in bounds.
    unsafe {
        let b: [__m512; P] =
            std::array::from_fn(|h| _mm512_loadu_ps(tile.bias.as_ptr().add(16 * h)));
        let mut acc = [b; ROWS];
        let stride = tile.k * PANEL;
        chain::<P>(
            (tile.a.as_ptr(), 1, PACK),
            tile.panel.as_ptr(),
            stride,
            0..tile.k,
            &mut acc,
        );
        acc
    }
}

/// The vector whose lane l holds `of(l)`: a permutation, a scatter's
/// offsets.
///
/// # Safety
/// AVX-512F must be available.
#[target_feature(enable = "avx512f")]
#[inline]
fn index16(of: impl Fn(usize) -> usize) -> __m512i {
    let index: [i32; PANEL] = std::array::from_fn(|l| of(l) as i32);
    // SAFETY: `index` holds 16 values.
    unsafe { _mm512_loadu_si512(index.as_ptr().cast()) }
}

/// A dense tile's last step on one vector of sums: the layer's
/// nonlinearity, then its factor if any.
///
/// # Safety
/// AVX-512F must be available.
#[target_feature(enable = "avx512f")]
#[inline]
fn finish_dense(c: __m512, activation: Option<Nonlinearity>, scale: Option<__m512>) -> __m512 {
    let v = match activation {
        Some(Nonlinearity::Exp) => exp16(c),
        Some(Nonlinearity::Relu) => _mm512_max_ps(c, _mm512_setzero_ps()),
        None => c,
    };
    scale.map_or(v, |s| _mm512_mul_ps(v, s))
}

/// The lanes of half `h` below `width` neurons of the tile.
fn lane_mask(width: usize, h: usize) -> __mmask16 {
    first16(width.saturating_sub(PANEL * h))
}

/// sums[c] += lanes[c] in f64 for c < width.
///
/// # Safety
/// AVX-512F must be available; `sums` must hold `width` ≤ 16 values.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn add_f64(x: __m512, width: usize, sums: &mut [f64]) {
    assert!(width <= PANEL && sums.len() >= width);
    let halves = [
        _mm512_cvtps_pd(_mm512_castps512_ps256(x)),
        _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(
            _mm512_castps_pd(x),
        ))),
    ];
    for (h, half) in halves.into_iter().enumerate() {
        let lanes = width.saturating_sub(8 * h).min(8);
        let mask = ((1u32 << lanes) - 1) as __mmask8;
        // SAFETY: the mask covers only lanes 8h..8h+lanes < width ≤ sums.len().
        unsafe {
            let p = sums.as_mut_ptr().add(8 * h);
            let old = _mm512_maskz_loadu_pd(mask, p);
            _mm512_mask_storeu_pd(p, mask, _mm512_add_pd(old, half));
        }
    }
}

/// Writes lanes c < `width` (≤ 16) of the tile's rows `v[r]` (§3's tile
/// outputs) straight from the registers, as `layout` lays them out: masked stores of each
/// row for [`Output::Rows`], and for [`Output::Packed`] (lane c of row r
/// at `out[c·PACK + r]`) one masked scatter per row, where a transposition
/// through memory took a load and a store per value.
///
/// # Safety
/// AVX-512F must be available.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn store_lanes(v: &[__m512; ROWS], width: usize, out: &mut [f32], layout: Output) {
    assert!((1..=PANEL).contains(&width), "1 to 16 lanes");
    let mask = lane_mask(width, 0);
    match layout {
        Output::Rows(stride) => {
            assert!(
                (ROWS - 1) * stride + width <= out.len(),
                "output out of bounds"
            );
            for (r, &v) in v.iter().enumerate() {
                // SAFETY: the masked lanes c < width of row r are inside
                // `out` (asserted).
                unsafe { _mm512_mask_storeu_ps(out.as_mut_ptr().add(r * stride), mask, v) };
            }
        }
        Output::Packed => {
            assert!(
                (width - 1) * PACK + ROWS <= out.len(),
                "output out of bounds"
            );
            let index = _mm512_mullo_epi32(
                _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                _mm512_set1_epi32(PACK as i32),
            );
            for (r, &v) in v.iter().enumerate() {
                // SAFETY: the masked lanes c < width land on c·PACK + r <
                // (width − 1)·PACK + ROWS ≤ out.len() (asserted).
                unsafe { _mm512_mask_i32scatter_ps::<4>(out.as_mut_ptr().add(r), mask, index, v) };
            }
        }
    }
}

/// The offset in a tile's output of panel `h`'s first neuron.
fn panel_offset(layout: Output, h: usize) -> usize {
    match layout {
        Output::Packed => h * PANEL * PACK,
        Output::Rows(_) => h * PANEL,
    }
}

/// # Safety
/// AVX-512F must be available.
#[target_feature(enable = "avx512f")]
unsafe fn hidden_tile<const P: usize>(tile: Tile<'_>, out: &mut [f32], layout: Output) {
    // SAFETY: AVX-512F guaranteed by the caller.
    let acc = unsafe { product::<P>(tile) };
    let zero = _mm512_setzero_ps();
    for h in 0..P.min(tile.width.div_ceil(PANEL)) {
        let v = std::array::from_fn(|r| _mm512_max_ps(acc[r][h], zero));
        let width = (tile.width - h * PANEL).min(PANEL);
        // SAFETY: AVX-512F guaranteed by the caller.
        unsafe { store_lanes(&v, width, &mut out[panel_offset(layout, h)..], layout) };
    }
}

/// # Safety
/// AVX-512F must be available.
#[target_feature(enable = "avx512f")]
unsafe fn gated_tile<const P: usize>(
    tile: Tile<'_>,
    weight: &[f32],
    valid: &[f32],
    correlation: bool,
    sums: GatedSlices<'_>,
) {
    let width = tile.width;
    assert!(weight.len() >= ROWS && valid.len() >= ROWS);
    assert!(sums.shift.len() == width && sums.covariance.len() == width);
    assert!(sums.sum.len() == width && sums.sum_squares.len() == width);
    // SAFETY: AVX-512F guaranteed by the caller.
    let acc = unsafe { product::<P>(tile) };
    let zero = _mm512_setzero_ps();
    // h indexes the register of every row, acc[r][h]: a range reads best.
    #[allow(clippy::needless_range_loop)]
    for h in 0..P {
        let (mask, lanes) = (
            lane_mask(width, h),
            width.saturating_sub(PANEL * h).min(PANEL),
        );
        let columns = PANEL * h..PANEL * h + lanes;
        if columns.is_empty() {
            continue;
        }
        let shift = &mut sums.shift[columns.clone()];
        if sums.first {
            // SAFETY: the masked lanes c < lanes are in `shift`.
            unsafe {
                _mm512_mask_storeu_ps(shift.as_mut_ptr(), mask, _mm512_max_ps(acc[0][h], zero))
            };
        }
        // SAFETY: the masked lanes c < lanes are in `shift`.
        let shift = unsafe { _mm512_maskz_loadu_ps(mask, shift.as_ptr()) };
        let (covariance, sum, sum_squares) = (
            &mut sums.covariance[columns.clone()],
            &mut sums.sum[columns.clone()],
            &mut sums.sum_squares[columns],
        );
        for group in 0..ROWS / GROUP {
            let rows = group * GROUP..(group + 1) * GROUP;
            if valid[rows.start] == 0.0 {
                // Padding rows only: the AVX2 body has no tile here.
                break;
            }
            let mut cov = zero;
            for r in rows {
                let d = _mm512_sub_ps(_mm512_max_ps(acc[r][h], zero), shift);
                cov = _mm512_fmadd_ps(_mm512_set1_ps(weight[r]), d, cov);
                if correlation {
                    // Per row into f64 at once: Σd² must not lose the variance to rounding.
                    let vd = _mm512_mul_ps(_mm512_set1_ps(valid[r]), d);
                    // SAFETY: AVX-512F guaranteed by the caller; slices hold `lanes` values.
                    unsafe {
                        add_f64(vd, lanes, sum);
                        add_squares_f64(vd, d, lanes, sum_squares);
                    }
                }
            }
            // SAFETY: AVX-512F guaranteed by the caller; the slice holds `lanes` values.
            unsafe { add_f64(cov, lanes, covariance) };
        }
    }
}

/// sums[c] += (vz·z)[c] in f64, the product taken in f64.
///
/// # Safety
/// AVX-512F must be available; `sums` must hold `width` ≤ 16 values.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn add_squares_f64(vz: __m512, z: __m512, width: usize, sums: &mut [f64]) {
    let widen = |x: __m512| {
        [
            _mm512_cvtps_pd(_mm512_castps512_ps256(x)),
            _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(
                _mm512_castps_pd(x),
            ))),
        ]
    };
    let (a, b) = (widen(vz), widen(z));
    let mut lanes = [0.0f64; PANEL];
    for h in 0..2 {
        // SAFETY: `lanes` has 16 elements.
        unsafe { _mm512_storeu_pd(lanes.as_mut_ptr().add(8 * h), _mm512_mul_pd(a[h], b[h])) };
    }
    for (s, l) in sums[..width].iter_mut().zip(lanes) {
        *s += l;
    }
}

/// One packed group of the modulated activity (§3):
/// x[k·PACK + r] = exp(m[r]·c[k] − β)·u[k]·keep[r] for every input k, in
/// one pass with the operations, in order, of the portable version (so
/// the same bits). Four inputs' 48 values fill three whole registers
/// (lane l of register i: row (16i + l) mod 12 of input 4q + (16i + l)
/// div 12), so no exp is spent on empty lanes; the last quad may be short,
/// its missing inputs' lanes neither read nor stored.
///
/// # Safety
/// AVX-512F must be available.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn modulated_group(
    m: &[f32; PACK],
    keep: &[f32; PACK],
    coupling: &[f32],
    activity: &[f32],
    beta: f32,
    x: &mut [f32],
) {
    const QUAD: usize = 4;
    const REGISTERS: usize = QUAD * PACK / PANEL;
    let n = coupling.len();
    assert!(
        activity.len() == n && x.len() >= n * PACK,
        "a whole packed group"
    );
    let lanes = |i: usize, of: fn(usize) -> usize| index16(|l| of(PANEL * i + l));
    // SAFETY: the masked lanes r < 12 are inside `m` and `keep`; a quad's
    // `inputs` ≤ 4 inputs are inside `coupling` and `activity`, and its
    // 12·inputs values inside `x` (asserted).
    unsafe {
        let (m, keep) = (
            _mm512_maskz_loadu_ps(first16(PACK), m.as_ptr()),
            _mm512_maskz_loadu_ps(first16(PACK), keep.as_ptr()),
        );
        let beta = _mm512_set1_ps(beta);
        let rows: [__m512i; REGISTERS] = std::array::from_fn(|i| lanes(i, |f| f % PACK));
        let of_input: [__m512i; REGISTERS] = std::array::from_fn(|i| lanes(i, |f| f / PACK));
        let m_of = rows.map(|i| _mm512_permutexvar_ps(i, m));
        let keep_of = rows.map(|i| _mm512_permutexvar_ps(i, keep));
        for first in (0..n).step_by(QUAD) {
            let inputs = (n - first).min(QUAD);
            let (c, u) = (
                _mm512_maskz_loadu_ps(first16(inputs), coupling.as_ptr().add(first)),
                _mm512_maskz_loadu_ps(first16(inputs), activity.as_ptr().add(first)),
            );
            let values = inputs * PACK;
            for i in 0..values.div_ceil(PANEL) {
                let (c, u) = (
                    _mm512_permutexvar_ps(of_input[i], c),
                    _mm512_permutexvar_ps(of_input[i], u),
                );
                let e = exp16(_mm512_sub_ps(_mm512_mul_ps(m_of[i], c), beta));
                let v = _mm512_mul_ps(_mm512_mul_ps(e, u), keep_of[i]);
                let stored = first16(values - PANEL * i);
                _mm512_mask_storeu_ps(x.as_mut_ptr().add(first * PACK + PANEL * i), stored, v);
            }
        }
    }
}

/// [`super::plan`]'s panel fill, up to the last multiple of 16 inputs:
/// for each of those inputs k, lanes c < `width` of `panel[k·16..]` from
/// `rows[c·inputs + k]`, the other lanes 0; returns how many inputs it
/// filled (the caller fills the rest). Sixteen inputs at a time by a
/// 16 × 16 transposition in registers (sixteen loads, 64 shuffles and
/// sixteen stores), where it took a gather per input, which a Zen 4 runs
/// far slower than a load: the retraining methods pack their layers for
/// every evaluation (`paper3`'s layers 1 and 2, 158k weights:
/// `DensePlan::repack` took 62.8–63.0 µs with a gather per input, 19.1–21.5
/// µs with the transpositions; throwaway timings on one thread of an AMD
/// EPYC Zen 4, alternating, median of 31 × 100 calls; 251 evaluations of
/// a run save about 11 ms).
///
/// # Safety
/// AVX-512F must be available.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn fill_panel(
    rows: &[f32],
    inputs: usize,
    width: usize,
    panel: &mut [f32],
) -> usize {
    assert!(width <= PANEL && rows.len() == width * inputs && panel.len() == inputs * PANEL);
    let whole = inputs - inputs % PANEL;
    for first in (0..whole).step_by(PANEL) {
        let neurons: [__m512; PANEL] = std::array::from_fn(|c| {
            if c < width {
                // SAFETY: inputs first..first + 16 ≤ inputs of neuron c < width.
                unsafe { _mm512_loadu_ps(rows.as_ptr().add(c * inputs + first)) }
            } else {
                _mm512_setzero_ps()
            }
        });
        for (k, lanes) in transpose16(neurons).into_iter().enumerate() {
            // SAFETY: input first + k < inputs, 16 lanes (asserted).
            unsafe { _mm512_storeu_ps(panel.as_mut_ptr().add((first + k) * PANEL), lanes) };
        }
    }
    whole
}

/// out[k·16..k·16 + 16] ← from[k·16..k·16 + 16]·factor[k], one vector
/// per input (`plan::scale_panel`).
///
/// # Safety
/// AVX-512F must be available.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn scale_panel(from: &[f32], factor: &[f32], out: &mut [f32]) {
    assert!(from.len() == factor.len() * PANEL && out.len() == from.len());
    for (k, &f) in factor.iter().enumerate() {
        // SAFETY: input k's 16 lanes are in bounds of both (asserted).
        unsafe {
            let v = _mm512_loadu_ps(from.as_ptr().add(k * PANEL));
            _mm512_storeu_ps(
                out.as_mut_ptr().add(k * PANEL),
                _mm512_mul_ps(v, _mm512_set1_ps(f)),
            );
        }
    }
}

/// The transpose of a 16 × 16 block: lane i of vector j of the result is
/// lane j of vector i of `r`. Pairs of rows interleaved, then 2 × 2 blocks
/// of them, then the 128-bit quarters of four vectors transposed as a
/// 4 × 4 block.
#[target_feature(enable = "avx512f")]
#[inline]
fn transpose16(r: [__m512; PANEL]) -> [__m512; PANEL] {
    // t[2p], t[2p + 1]: rows 2p and 2p + 1 interleaved, lanes 4q..4q + 2
    // and 4q + 2..4q + 4 of each quarter q.
    let t: [__m512; PANEL] = std::array::from_fn(|i| {
        let (a, b) = (r[i & !1], r[i | 1]);
        if i % 2 == 0 {
            _mm512_unpacklo_ps(a, b)
        } else {
            _mm512_unpackhi_ps(a, b)
        }
    });
    // u[4g + m], quarter q: rows 4g..4g + 4 of column 4q + m.
    let u: [__m512; PANEL] = std::array::from_fn(|i| {
        let (g, m) = (i / 4, i % 4);
        let (a, b) = (t[4 * g + m / 2], t[4 * g + 2 + m / 2]);
        if m % 2 == 0 {
            _mm512_shuffle_ps::<0x44>(a, b)
        } else {
            _mm512_shuffle_ps::<0xEE>(a, b)
        }
    });
    // Column 4q + m, quarter g: u[4g + m], quarter q.
    let mut out = [_mm512_setzero_ps(); PANEL];
    for m in 0..4 {
        let (a, b, c, d) = (u[m], u[4 + m], u[8 + m], u[12 + m]);
        let (even_ab, odd_ab) = (
            _mm512_shuffle_f32x4::<0x88>(a, b),
            _mm512_shuffle_f32x4::<0xDD>(a, b),
        );
        let (even_cd, odd_cd) = (
            _mm512_shuffle_f32x4::<0x88>(c, d),
            _mm512_shuffle_f32x4::<0xDD>(c, d),
        );
        out[m] = _mm512_shuffle_f32x4::<0x88>(even_ab, even_cd);
        out[8 + m] = _mm512_shuffle_f32x4::<0xDD>(even_ab, even_cd);
        out[4 + m] = _mm512_shuffle_f32x4::<0x88>(odd_ab, odd_cd);
        out[12 + m] = _mm512_shuffle_f32x4::<0xDD>(odd_ab, odd_cd);
    }
    out
}

/// One tile of [`super::dense::dense_forward`]: 12 rows × 16 neurons per
/// panel (one or two panels), out = F(b + Σ_chunks Σ_{k in chunk} a·w)·scale, each chunk's sum one
/// chain of FMAs from zero, as `matrixmultiply` computes it (see there).
///
/// # Safety
/// AVX-512F must be available.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn dense_tile(tile: DenseTile<'_>, out: &mut [f32], layout: Output) {
    // SAFETY: AVX-512F guaranteed by the caller.
    unsafe {
        match (tile.panels, tile.rows) {
            (1, RowLayout::Packed(_)) if tile.width <= 4 => Narrow::<4>::dense(tile, out, layout),
            (1, RowLayout::Packed(_)) if tile.width <= 8 => Narrow::<2>::dense(tile, out, layout),
            (1, RowLayout::Strided(_)) if tile.width <= 8 => {
                super::avx2::dense_tile_half::<ROWS>(tile, out, layout)
            }
            (2, RowLayout::Packed(_)) => dense_tile_panels::<2, false>(tile, out, layout),
            (2, RowLayout::Strided(_)) => dense_tile_panels::<2, true>(tile, out, layout),
            (_, RowLayout::Packed(_)) => dense_tile_panels::<1, false>(tile, out, layout),
            (_, RowLayout::Strided(_)) => dense_tile_panels::<1, true>(tile, out, layout),
        }
    }
}

/// [`dense_tile`] on `P` panels: 12 rows × 16·P neurons, the sums of the
/// chunks kept in memory between chunks (the registers hold one chunk's
/// 12·P chains). `STRIDED`: the rows are [`RowLayout::Strided`] (a
/// constant, so that the packed rows' offsets are too).
///
/// # Safety
/// AVX-512F must be available.
#[target_feature(enable = "avx512f")]
unsafe fn dense_tile_panels<const P: usize, const STRIDED: bool>(
    tile: DenseTile<'_>,
    out: &mut [f32],
    layout: Output,
) {
    let k = tile.k;
    tile.check(ROWS);
    assert_eq!(tile.panels, P, "the tile's panel count");
    assert_eq!(
        STRIDED,
        matches!(tile.rows, RowLayout::Strided(_)),
        "the tile's rows"
    );
    let (a, panel) = (tile.a.as_ptr(), tile.panel.as_ptr());
    let a = if STRIDED {
        (a, tile.rows.step(), 1)
    } else {
        (a, 1, PACK)
    };
    let mut c = [[[0.0f32; PANEL]; P]; ROWS];
    for row in c.iter_mut() {
        for (h, lanes) in row.iter_mut().enumerate() {
            lanes.copy_from_slice(&tile.bias[h * PANEL..(h + 1) * PANEL]);
        }
    }
    for start in (0..k).step_by(CHUNK) {
        let mut acc = [[_mm512_setzero_ps(); P]; ROWS];
        // SAFETY: inputs start..end < k of the 12 rows and of the P panels
        // (each k·16 apart) are in bounds (checked).
        unsafe { chain::<P>(a, panel, k * PANEL, start..k.min(start + CHUNK), &mut acc) };
        for (row, acc) in c.iter_mut().zip(&acc) {
            for (lanes, &acc) in row.iter_mut().zip(acc) {
                // SAFETY: `lanes` holds 16 floats.
                unsafe {
                    let p = lanes.as_mut_ptr();
                    _mm512_storeu_ps(p, _mm512_add_ps(_mm512_loadu_ps(p), acc));
                }
            }
        }
    }
    for h in 0..P {
        // SAFETY: 16·P factors checked above.
        let scale = tile
            .scale
            .map(|s| unsafe { _mm512_loadu_ps(s.as_ptr().add(h * PANEL)) });
        // A loop, not `array::from_fn`: its closure went out of line, a
        // call per vector with the vectors passed through memory.
        let mut v = [_mm512_setzero_ps(); ROWS];
        for (vector, row) in v.iter_mut().zip(&c) {
            // SAFETY: `row[h]` holds 16 floats.
            let sums = unsafe { _mm512_loadu_ps(row[h].as_ptr()) };
            *vector = finish_dense(sums, tile.activation, scale);
        }
        let width = (tile.width - h * PANEL).min(PANEL);
        // SAFETY: AVX-512F guaranteed by the caller.
        unsafe { store_lanes(&v, width, &mut out[panel_offset(layout, h)..], layout) };
    }
}

/// One tile of [`super::dense::dense_lanes`]: vector o of `sums[g]`
/// holds output o of the 16 rows of group g, F(b_o + Σ_chunks Σ_{k in
/// chunk} a_k·w_ok), each chunk's sum one chain of FMAs from zero, as
/// `matrixmultiply` computes it; outputs past the panel's width are left
/// as they were. Two groups of a panel of at most [`PAIRED_OUTPUTS`] run
/// at once, each broadcast weight feeding both.
///
/// # Safety
/// AVX-512F must be available.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn lanes_tile(
    tile: LaneTile<'_>,
    sums: &mut [[[f32; LANE_ROWS]; PANEL]; LANE_GROUPS],
) {
    tile.check();
    // SAFETY: AVX-512F guaranteed by the caller.
    unsafe {
        if tile.groups == 2 && tile.width <= PAIRED_OUTPUTS {
            return for_outputs!(tile.width, [1 2 3 4 5 6 7 8 9 10 11 12], lanes_outputs::<_, 2>(&tile, sums));
        }
        for (g, sums) in sums.iter_mut().enumerate().take(tile.groups) {
            let (tile, sums) = (tile.group(g), std::slice::from_mut(sums));
            for_outputs!(tile.width, [1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16], lanes_outputs::<_, 1>(&tile, sums))
        }
    }
}

/// Outputs of a panel that [`lanes_tile`] runs on two groups at once at
/// most: 24 accumulators.
const PAIRED_OUTPUTS: usize = 12;

/// Row r < `real` of `out` (rows `stride` apart) gets outputs 0..`width`
/// of `sums` (vector o: output o of [`LANE_ROWS`] rows): one 16 × 16
/// transpose in registers and a masked store per row, where a copy value
/// by value took 3.0 of `dense_lanes`' 37.7 µs (`retrain-last`'s readout,
/// 1000 rows, one thread of a Zen 4; throwaway timings): 36.3–37.5 µs
/// against 37.6–38.4 µs, alternating.
///
/// # Safety
/// AVX-512F must be available.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn lanes_to_rows(
    sums: &[[f32; LANE_ROWS]; PANEL],
    (width, real): (usize, usize),
    out: &mut [f32],
    stride: usize,
) {
    check_lane_rows((width, real), out.len(), stride);
    // SAFETY: each of `sums` holds 16 floats.
    let lanes = std::array::from_fn(|o| unsafe { _mm512_loadu_ps(sums[o].as_ptr()) });
    let mask = first16(width);
    for (r, row) in transpose16(lanes).into_iter().take(real).enumerate() {
        // SAFETY: the row's `width` values are in bounds (asserted).
        unsafe { _mm512_mask_storeu_ps(out.as_mut_ptr().add(r * stride), mask, row) };
    }
}

/// [`super::dense::lane_block_correct`]: each row's best readout column
/// chosen by masked blends, its label compared as a 32-bit lane; a logit
/// is not finite where 0·x is NaN. The finite tests are independent of
/// each other (a mask OR per logit), off the blends' chain.
///
/// # Safety
/// AVX-512F must be available.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn lanes_correct(
    sums: &[[f32; LANE_ROWS]; PANEL],
    count: LaneCount<'_>,
) -> Option<usize> {
    count.check();
    let real = first16(count.labels.len());
    // SAFETY: each of `sums` holds 16 floats.
    let load = |o: usize| unsafe { _mm512_loadu_ps(sums[o].as_ptr()) };
    let zero = _mm512_setzero_ps();
    let not_finite = (0..count.width).fold(0, |any, o| {
        let product = _mm512_mul_ps(load(o), zero);
        any | _mm512_mask_cmp_ps_mask::<_CMP_UNORD_Q>(real, product, product)
    });
    if not_finite != 0 {
        return None;
    }
    let (mut best_value, mut best) = (load(count.cols[0]), _mm512_setzero_si512());
    for (k, &c) in count.cols.iter().enumerate().skip(1) {
        let value = load(c);
        let better = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(value, best_value);
        best_value = _mm512_mask_blend_ps(better, best_value, value);
        best = _mm512_mask_blend_epi32(better, best, _mm512_set1_epi32(k as i32));
    }
    let bytes = count.label_lanes();
    // SAFETY: `bytes` holds 16 bytes.
    let wanted = _mm512_cvtepu8_epi32(unsafe { _mm_loadu_si128(bytes.as_ptr().cast()) });
    Some(_mm512_mask_cmpeq_epi32_mask(real, best, wanted).count_ones() as usize)
}

/// [`lanes_tile`] for a panel of `O` neurons on `G` groups of rows:
/// `G`·`O` accumulators; `sums` holds the groups' outputs.
///
/// # Safety
/// AVX-512F must be available.
#[target_feature(enable = "avx512f")]
unsafe fn lanes_outputs<const O: usize, const G: usize>(
    tile: &LaneTile<'_>,
    sums: &mut [[[f32; LANE_ROWS]; PANEL]],
) {
    assert!(tile.groups == G && sums.len() >= G, "the tile's groups");
    let (a, panel) = (tile.a.as_ptr(), tile.panel.as_ptr());
    let group_step = tile.k * LANE_ROWS;
    let mut c = [std::array::from_fn::<__m512, O, _>(|o| _mm512_set1_ps(tile.bias[o])); G];
    for start in (0..tile.k).step_by(CHUNK) {
        let mut acc = [[_mm512_setzero_ps(); O]; G];
        for kk in start..tile.k.min(start + CHUNK) {
            // SAFETY: input kk < k of the groups' 16 rows and of the
            // panel's first O ≤ 16 neurons is in bounds (checked).
            unsafe {
                let x: [__m512; G] = std::array::from_fn(|g| {
                    _mm512_loadu_ps(a.add(g * group_step + kk * LANE_ROWS))
                });
                let w = panel.add(kk * PANEL);
                for o in 0..O {
                    let w = _mm512_set1_ps(*w.add(o));
                    for (acc, &x) in acc.iter_mut().zip(&x) {
                        acc[o] = _mm512_fmadd_ps(x, w, acc[o]);
                    }
                }
            }
        }
        for (c, acc) in c.iter_mut().zip(acc) {
            for (c, acc) in c.iter_mut().zip(acc) {
                *c = _mm512_add_ps(*c, acc);
            }
        }
    }
    for (sums, c) in sums.iter_mut().zip(c) {
        for (lanes, c) in sums.iter_mut().zip(c) {
            let v = finish_dense(c, tile.activation, None);
            // SAFETY: `lanes` holds 16 floats.
            unsafe { _mm512_storeu_ps(lanes.as_mut_ptr(), v) };
        }
    }
}

/// The kernel's hidden tiles (§3) and the dense tiles (§4) on a narrow
/// panel: at most 16 / `R` neurons (`R` = 2 or 4) over groups of 12
/// packed rows (several at once in a tall tile, [`Narrow::tall`]),
/// each vector holding `R` rows × those neurons (lane j: row j mod R, neuron j / R),
/// so that the tile takes 12 / R fused multiply-adds per input where a
/// whole panel's tile takes 12 mostly idle ones. A vector's rows are one
/// broadcast of `R` adjacent packed values and the panel's neurons are
/// spread over the lanes by one permutation per input; each output is
/// still one chain per input in order, so the bits are a whole panel's.
/// The last panel of a block of 100 neurons (the encoder's quadrants: 4)
/// or of 200 (the paper's gated layer: 8) is narrow. In throwaway
/// timings on one thread (Xeon AVX-512) it took the retraining methods'
/// evaluation (`dense_forward`, `paper3`, 1000 rows) from 1.79–1.80 to
/// 1.74 ms, and in `comod bench --seconds 3` `online_deterministic`
/// from 111.2–112.9 to 107.6–109.5 ms, `online_retrain` from 270.1–271.2
/// to 260.5–262.3 ms.
#[derive(Clone, Copy)]
struct Narrow<const R: usize>;

impl<const R: usize> Narrow<R> {
    /// Vectors of a tile of 12 rows.
    const VECTORS: usize = ROWS / R;

    /// The 16 values at `at` spread over the lanes as the tile's
    /// neurons (lane j: value j / R).
    ///
    /// # Safety
    /// AVX-512F must be available; 16 values at `at` must be readable.
    #[target_feature(enable = "avx512f")]
    unsafe fn spread_load(at: *const f32) -> __m512 {
        // SAFETY: by the caller's contract.
        unsafe { _mm512_permutexvar_ps(index16(|j| j / R), _mm512_loadu_ps(at)) }
    }

    /// The vectors' sums over inputs `inputs` of `G` groups of 12 packed
    /// rows (the first at `a`, the next `group_step` values on) and the
    /// panel, each a chain of one FMA per input in order from `acc`.
    ///
    /// # Safety
    /// AVX-512F must be available; the inputs of the groups' rows and of
    /// the panel must be in bounds.
    #[target_feature(enable = "avx512f")]
    unsafe fn chain<const G: usize>(
        (a, group_step): (*const f32, usize),
        panel: *const f32,
        inputs: std::ops::Range<usize>,
        acc: &mut [[__m512; ROWS / 2]; G],
    ) {
        for kk in inputs {
            // SAFETY: in bounds by the caller's contract.
            unsafe {
                let w = Self::spread_load(panel.add(kk * PANEL));
                for (group, acc) in acc.iter_mut().enumerate() {
                    let x = a.add(group * group_step + kk * PACK);
                    for (v, acc) in acc.iter_mut().enumerate().take(Self::VECTORS) {
                        // Lane j: row v·R + j mod R.
                        let rows = if R == 2 {
                            _mm512_castpd_ps(_mm512_set1_pd(
                                x.add(v * R).cast::<f64>().read_unaligned(),
                            ))
                        } else {
                            _mm512_broadcast_f32x4(_mm_loadu_ps(x.add(v * R)))
                        };
                        *acc = _mm512_fmadd_ps(rows, w, *acc);
                    }
                }
            }
        }
    }

    /// Writes the neurons below `width` of the vectors `v` as `layout`
    /// lays out 12 rows, one masked scatter per vector.
    ///
    /// # Safety
    /// AVX-512F must be available.
    #[target_feature(enable = "avx512f")]
    unsafe fn store(v: &[__m512; ROWS / 2], width: usize, out: &mut [f32], layout: Output) {
        assert!((1..=PANEL / R).contains(&width), "a narrow panel's neurons");
        // Offsets of lane j (row j mod R, neuron j / R) and between vectors.
        let (row, neuron, step) = match layout {
            Output::Rows(stride) => (stride, 1, R * stride),
            Output::Packed => (1, PACK, R),
        };
        assert!(
            (ROWS - 1) * row + (width - 1) * neuron < out.len() && ROWS * row * neuron < 1 << 31,
            "output out of bounds"
        );
        let offsets = index16(|j| (j % R) * row + (j / R) * neuron);
        let mask = first16(width * R);
        for (i, &v) in v.iter().enumerate().take(Self::VECTORS) {
            // SAFETY: the masked lanes (neuron j / R < width of row
            // i·R + j mod R < 12) land inside `out` (asserted).
            unsafe {
                let at = out.as_mut_ptr().add(i * step);
                _mm512_mask_i32scatter_ps::<4>(at.cast(), mask, offsets, v);
            }
        }
    }

    /// [`dense_tile`] on a narrow panel from packed rows, every group of
    /// 12 of the tile's rows ([`super::dense::tall_tile`]) in
    /// [`Narrow::tall`]: each output the chunks' chains from zero added to
    /// the bias, as [`dense_tile_panels`] forms it.
    ///
    /// # Safety
    /// AVX-512F must be available.
    #[target_feature(enable = "avx512f")]
    unsafe fn dense(tile: DenseTile<'_>, out: &mut [f32], layout: Output) {
        let RowLayout::Packed(inputs) = tile.rows else {
            panic!("a narrow panel of packed rows")
        };
        tile.check(tile.height);
        assert!(
            tile.panels == 1 && tile.height.is_multiple_of(ROWS),
            "whole groups"
        );
        let sums = Sums::Dense {
            activation: tile.activation,
            // SAFETY: 16 factors checked.
            scale: tile.scale.map(|s| unsafe { Self::spread_load(s.as_ptr()) }),
        };
        let rows = (tile.a.as_ptr(), PACK * inputs, tile.height / ROWS);
        let panel = NarrowPanel {
            k: tile.k,
            panel: tile.panel,
            bias: tile.bias,
            width: tile.width,
        };
        // SAFETY: the groups' rows, the panel and 16 biases are in bounds
        // (checked); AVX-512F guaranteed by the caller.
        unsafe { Self::tall(rows, &panel, sums, out, layout) }
    }

    /// [`hidden_tile`] on a narrow panel, every group of 12 of a tall
    /// tile's rows ([`Tiles::TALL`]) in [`Narrow::tall`]: each output one
    /// chain from its bias, then the ReLU.
    ///
    /// # Safety
    /// AVX-512F must be available.
    #[target_feature(enable = "avx512f")]
    unsafe fn hidden(tile: Tile<'_>, out: &mut [f32], layout: Output) {
        for g in 0..tile.groups {
            tile.group(g).check(ROWS, 1);
        }
        let rows = (tile.a.as_ptr(), tile.step, tile.groups);
        let panel = NarrowPanel {
            k: tile.k,
            panel: tile.panel,
            bias: tile.bias,
            width: tile.width,
        };
        // SAFETY: each group's rows and the panel checked; AVX-512F
        // guaranteed by the caller.
        unsafe { Self::tall(rows, &panel, Sums::Hidden, out, layout) }
    }

    /// The `rows.2` groups of 12 packed rows from `rows.0` on, each
    /// `rows.1` values after the one before, through `panel`, up to 4
    /// groups at once (12 or 24 chains, where one group's 3 or 6 waited on
    /// the FMA's latency); `out` holds the groups' rows one after the
    /// other as `layout` says (rows, when there are several).
    ///
    /// # Safety
    /// AVX-512F must be available; the groups' rows, the panel's k inputs
    /// and its 16 biases must be in bounds.
    #[target_feature(enable = "avx512f")]
    unsafe fn tall(
        (a, step, groups): (*const f32, usize, usize),
        panel: &NarrowPanel<'_>,
        sums: Sums,
        out: &mut [f32],
        layout: Output,
    ) {
        const AT_ONCE: usize = 4;
        assert!(
            groups == 1 || matches!(layout, Output::Rows(_)),
            "several groups written as rows"
        );
        for first in (0..groups).step_by(AT_ONCE) {
            let a = (a.wrapping_add(first * step), step);
            let out = &mut out[layout.row(first * ROWS)..];
            // SAFETY: by the caller's contract.
            unsafe {
                match groups - first {
                    1 => Self::groups::<1>(a, panel, sums, out, layout),
                    2 => Self::groups::<2>(a, panel, sums, out, layout),
                    3 => Self::groups::<3>(a, panel, sums, out, layout),
                    _ => Self::groups::<AT_ONCE>(a, panel, sums, out, layout),
                }
            }
        }
    }

    /// [`Narrow::tall`] on `G` groups.
    ///
    /// # Safety
    /// As [`Narrow::tall`].
    #[target_feature(enable = "avx512f")]
    unsafe fn groups<const G: usize>(
        a: (*const f32, usize),
        panel: &NarrowPanel<'_>,
        sums: Sums,
        out: &mut [f32],
        layout: Output,
    ) {
        // SAFETY: by the caller's contract.
        unsafe {
            let bias = Self::spread_load(panel.bias.as_ptr());
            let mut c = [[bias; ROWS / 2]; G];
            let w = panel.panel.as_ptr();
            match sums {
                Sums::Dense { .. } => {
                    for start in (0..panel.k).step_by(CHUNK) {
                        let mut acc = [[_mm512_setzero_ps(); ROWS / 2]; G];
                        Self::chain(a, w, start..panel.k.min(start + CHUNK), &mut acc);
                        for (c, acc) in c.iter_mut().zip(&acc) {
                            for (c, &acc) in c.iter_mut().zip(acc).take(Self::VECTORS) {
                                *c = _mm512_add_ps(*c, acc);
                            }
                        }
                    }
                }
                Sums::Hidden => Self::chain(a, w, 0..panel.k, &mut c),
            }
            for (group, c) in c.iter_mut().enumerate() {
                for c in c.iter_mut().take(Self::VECTORS) {
                    *c = match sums {
                        Sums::Dense { activation, scale } => finish_dense(*c, activation, scale),
                        Sums::Hidden => _mm512_max_ps(*c, _mm512_setzero_ps()),
                    };
                }
                let out = &mut out[layout.row(group * ROWS)..];
                Self::store(c, panel.width, out, layout);
            }
        }
    }
}

/// How [`Narrow::tall`] sums and finishes: as the dense tiles (§4; each
/// chunk's chain from zero added to the bias, then F and the factor) or
/// as the kernel's hidden tiles (§3; one chain from the bias, then the
/// ReLU).
#[derive(Clone, Copy)]
enum Sums {
    Dense {
        activation: Option<Nonlinearity>,
        scale: Option<__m512>,
    },
    Hidden,
}

/// A narrow panel's weights for [`Narrow::tall`]: `[k][16]`, its 16
/// biases and the neurons that exist.
struct NarrowPanel<'a> {
    k: usize,
    panel: &'a [f32],
    bias: &'a [f32],
    width: usize,
}

impl Tiles for Avx512 {
    const ROWS: usize = ROWS;
    const PANELS: usize = 2;
    /// The last 8 neurons of the paper's 200-neuron gated layer in the
    /// modulation methods' evaluations: in profiles of
    /// `online_deterministic` on an AMD EPYC Zen 5 (AVX-512F at full
    /// width) their share of a run went from 5.7 % to 4.2 %, for 4 % of
    /// its multiply-adds.
    const TALL: usize = TALL_WIDTH;

    fn hidden(tile: Tile<'_>, out: &mut [f32], layout: Output) {
        // SAFETY: this body is only selected on CPUs with AVX-512F.
        unsafe {
            match (tile.panels(), tile.width) {
                (2, _) => hidden_tile::<2>(tile, out, layout),
                (_, ..=4) => Narrow::<4>::hidden(tile, out, layout),
                (_, ..=8) => Narrow::<2>::hidden(tile, out, layout),
                _ => hidden_tile::<1>(tile, out, layout),
            }
        }
    }

    fn gated(
        tile: Tile<'_>,
        weight: &[f32],
        valid: &[f32],
        correlation: bool,
        sums: GatedSlices<'_>,
    ) {
        // SAFETY: this body is only selected on CPUs with AVX-512F.
        unsafe {
            match tile.panels() {
                2 => gated_tile::<2>(tile, weight, valid, correlation, sums),
                _ => gated_tile::<1>(tile, weight, valid, correlation, sums),
            }
        }
    }
}
