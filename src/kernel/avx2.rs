//! The AVX2 + FMA body of the kernel's tiles: a 6×16 register tile
//! (12 accumulators of 8 lanes), one broadcast per sample row and two
//! panel loads per input, or 12×8 on a panel of at most 8 neurons; fused
//! epilogues.

use std::arch::x86_64::*;

use crate::kernel::dense::{
    CHUNK, DenseTile, LANE_GROUPS, LaneCount, LaneTile, RowLayout, check_lane_rows,
};
use crate::kernel::packed::LANE_ROWS;
use crate::kernel::plan::PANEL;
use crate::kernel::{GatedSlices, Output, PACK, Tile, Tiles};
use crate::net::Nonlinearity;
use crate::net::simd::lanes::{first8, store_first8};
use crate::net::vexp::exp8;

/// Rows of a tile of this body.
const ROWS: usize = 6;

/// How many inputs ahead [`chain`] asks for the panel's next line: a
/// layer's panels stream from L2 and the hardware fetches them late (the
/// AVX-512 body's `PREFETCH_INPUTS`). The encoder of `paper3` (1000 rows,
/// one thread of a Zen 4) went from 1862–1896 to 1839–1852 µs in
/// throwaway timings.
const PREFETCH_INPUTS: usize = 8;

/// AVX2 + FMA intrinsics; reached only after `has_avx2_fma()` (asserted
/// at the kernel's entry points).
pub struct Avx2Fma;

/// acc[2r + h] += Σ_{k in inputs} a[r, k]·panel[k, 8h..8h+8], one FMA
/// per input in order, for rows r < 6; input k of row r at
/// `a[r·row_step + k·input_step]` (the packed rows: 1 and [`PACK`]).
///
/// # Safety
/// AVX2 and FMA must be available; inputs `inputs` of rows 0..6 of `a`
/// and of `panel` must be in bounds.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn chain(
    (a, row_step, input_step): (*const f32, usize, usize),
    panel: *const f32,
    inputs: std::ops::Range<usize>,
    acc: &mut [__m256; 2 * ROWS],
) {
    for kk in inputs {
        // A hint, never a read: an address past the panel does no harm
        // (`wrapping_add` keeps it a plain address computation).
        let ahead = panel.wrapping_add((kk + PREFETCH_INPUTS) * PANEL);
        _mm_prefetch::<_MM_HINT_T0>(ahead.cast());
        // SAFETY: in bounds by the caller's contract.
        unsafe {
            let w0 = _mm256_loadu_ps(panel.add(kk * PANEL));
            let w1 = _mm256_loadu_ps(panel.add(kk * PANEL + 8));
            let x = a.add(kk * input_step);
            for r in 0..ROWS {
                let x = _mm256_broadcast_ss(&*x.add(r * row_step));
                acc[2 * r] = _mm256_fmadd_ps(x, w0, acc[2 * r]);
                acc[2 * r + 1] = _mm256_fmadd_ps(x, w1, acc[2 * r + 1]);
            }
        }
    }
}

/// [`chain`] on a panel's first 8 neurons and `R` rows: acc[r] +=
/// Σ_{k in inputs} a[r, k]·panel[k, ..8], one FMA per input in order, `R`
/// chains of 8-lane FMAs where a 16-lane tile would leave half of every
/// register empty ([`narrow_product`], [`dense_tile_half`]).
///
/// # Safety
/// AVX2 and FMA must be available; inputs `inputs` of rows 0..R of `a`
/// and of `panel` must be in bounds.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn half_chain<const R: usize>(
    (a, row_step, input_step): (*const f32, usize, usize),
    panel: *const f32,
    inputs: std::ops::Range<usize>,
    acc: &mut [__m256; R],
) {
    for kk in inputs {
        // A hint, as in [`chain`].
        let ahead = panel.wrapping_add((kk + PREFETCH_INPUTS) * PANEL);
        _mm_prefetch::<_MM_HINT_T0>(ahead.cast());
        // SAFETY: in bounds by the caller's contract.
        unsafe {
            let w = _mm256_loadu_ps(panel.add(kk * PANEL));
            let x = a.add(kk * input_step);
            for (r, acc) in acc.iter_mut().enumerate() {
                *acc = _mm256_fmadd_ps(_mm256_broadcast_ss(&*x.add(r * row_step)), w, *acc);
            }
        }
    }
}

/// acc[2r + h] holds row r, neurons 8h..8h+8, of a·panel + bias.
///
/// # Safety
/// AVX2 and FMA must be available.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn product(tile: Tile<'_>) -> [__m256; 2 * ROWS] {
    tile.check(ROWS, 1);
    let bias = tile.bias.as_ptr();
    // SAFETY: `tile.check` ensured that inputs 0..k of rows 0..6 of `a`,
    // inputs 0..k × 16 neurons of `panel` and 16 biases are in bounds.
    unsafe {
        let (b0, b1) = (_mm256_loadu_ps(bias), _mm256_loadu_ps(bias.add(8)));
        let mut acc = [b0, b1, b0, b1, b0, b1, b0, b1, b0, b1, b0, b1];
        chain(
            (tile.a.as_ptr(), 1, PACK),
            tile.panel.as_ptr(),
            0..tile.k,
            &mut acc,
        );
        acc
    }
}

/// The [`PACK`] = 12 rows of a packed group × a panel of at most 8
/// neurons (the last panel of the paper's 200-neuron layer): acc[r] holds
/// row r's 8 lanes of a·panel + bias, 12 chains of 8-lane FMAs, one per
/// row, where two 6-row tiles ran 12 each on half-empty registers. Each
/// output is the same chain (the bias, then one FMA per input in order),
/// so the same bits. One thread of an Emerald Rapids Xeon, old and new
/// at once on the two cores, fastest of 31 timings, eight pairs
/// (throwaway timings): `trial_B256` 0.93–0.98 of its time before in
/// every pair (91.4 against 95.1 ms at the fastest), the modulation
/// methods' evaluation of 1000 rows 1603.5 against 1673.9 µs at the
/// fastest.
///
/// # Safety
/// AVX2 and FMA must be available.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn narrow_product(tile: Tile<'_>) -> [__m256; PACK] {
    tile.check(PACK, 1);
    assert!(tile.width <= PANEL / 2, "a narrow panel");
    // SAFETY: `tile.check` ensured that inputs 0..k of rows 0..12 of `a`,
    // inputs 0..k × 16 neurons of `panel` and 16 biases are in bounds.
    unsafe {
        let mut acc = [_mm256_loadu_ps(tile.bias.as_ptr()); PACK];
        let a = (tile.a.as_ptr(), 1, PACK);
        half_chain(a, tile.panel.as_ptr(), 0..tile.k, &mut acc);
        acc
    }
}

/// Adds the 16 lanes of (lo, hi) as f64 to `sums[..width]` (fewer lanes
/// when `width` < 16); panics unless `width` ≤ 16 and `sums` holds `width`
/// values.
///
/// # Safety
/// AVX2 must be available.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn add_f64(lo: __m256, hi: __m256, width: usize, sums: &mut [f64]) {
    assert!(
        width <= PANEL && sums.len() >= width,
        "add_f64: {width} lanes into {} sums",
        sums.len()
    );
    let quarters = [
        _mm256_cvtps_pd(_mm256_castps256_ps128(lo)),
        _mm256_cvtps_pd(_mm256_extractf128_ps::<1>(lo)),
        _mm256_cvtps_pd(_mm256_castps256_ps128(hi)),
        _mm256_cvtps_pd(_mm256_extractf128_ps::<1>(hi)),
    ];
    if width == PANEL {
        for (i, q) in quarters.into_iter().enumerate() {
            // SAFETY: `sums` has at least 16 elements when width is 16 (asserted).
            unsafe {
                let p = sums.as_mut_ptr().add(4 * i);
                _mm256_storeu_pd(p, _mm256_add_pd(_mm256_loadu_pd(p), q));
            }
        }
    } else {
        let mut lanes = [0.0f64; PANEL];
        for (i, q) in quarters.into_iter().enumerate() {
            // SAFETY: `lanes` has 16 elements.
            unsafe { _mm256_storeu_pd(lanes.as_mut_ptr().add(4 * i), q) };
        }
        for (s, l) in sums[..width].iter_mut().zip(lanes) {
            *s += l;
        }
    }
}

/// # Safety
/// AVX2 and FMA must be available.
#[target_feature(enable = "avx2,fma")]
unsafe fn hidden_tile(tile: Tile<'_>, out: &mut [f32], layout: Output) {
    // SAFETY: AVX2 and FMA guaranteed by the caller.
    let mut v = unsafe { product(tile) };
    for vector in v.iter_mut() {
        *vector = _mm256_max_ps(*vector, _mm256_setzero_ps());
    }
    // SAFETY: AVX2 guaranteed by the caller.
    unsafe { store_rows(&v, tile.width, out, layout) };
}

/// [`hidden_tile`] of a whole packed group on a narrow panel
/// ([`narrow_product`]).
///
/// # Safety
/// AVX2 and FMA must be available.
#[target_feature(enable = "avx2,fma")]
unsafe fn hidden_narrow(tile: Tile<'_>, out: &mut [f32], layout: Output) {
    // SAFETY: AVX2 and FMA guaranteed by the caller.
    let acc = unsafe { narrow_product(tile) };
    let mut rows = [[0.0f32; PANEL / 2]; PACK];
    for (row, acc) in rows.iter_mut().zip(acc) {
        // SAFETY: `row` holds 8 floats.
        unsafe { _mm256_storeu_ps(row.as_mut_ptr(), _mm256_max_ps(acc, _mm256_setzero_ps())) };
    }
    layout.write(&rows, tile.width, out);
}

/// # Safety
/// AVX2 and FMA must be available.
#[target_feature(enable = "avx2,fma")]
unsafe fn gated_tile(
    tile: Tile<'_>,
    weight: &[f32],
    valid: &[f32],
    correlation: bool,
    sums: GatedSlices<'_>,
) {
    // SAFETY: AVX2 and FMA guaranteed by the caller.
    let acc = unsafe { product(tile) };
    // SAFETY: as above.
    unsafe { fold_rows(acc, weight, valid, correlation, sums) };
}

/// [`gated_tile`] of a whole packed group on a narrow panel
/// ([`narrow_product`]): its two halves folded as two 6-row tiles are,
/// the first before the second, so the same sums.
///
/// # Safety
/// AVX2 and FMA must be available.
#[target_feature(enable = "avx2,fma")]
unsafe fn gated_narrow(
    tile: Tile<'_>,
    weight: &[f32],
    valid: &[f32],
    correlation: bool,
    sums: GatedSlices<'_>,
) {
    assert!(weight.len() >= PACK && valid.len() >= PACK);
    // SAFETY: AVX2 and FMA guaranteed by the caller.
    let acc = unsafe { narrow_product(tile) };
    let zero = _mm256_setzero_ps();
    let GatedSlices {
        first,
        shift,
        covariance,
        sum,
        sum_squares,
    } = sums;
    for half in 0..PACK / ROWS {
        let rows = half * ROWS..(half + 1) * ROWS;
        // Row r's 8 lanes as the first half of a 6-row tile's row r.
        let mut halves = [zero; 2 * ROWS];
        for (r, &acc) in acc[rows.clone()].iter().enumerate() {
            halves[2 * r] = acc;
        }
        let sums = GatedSlices {
            first: first && half == 0,
            shift: &mut *shift,
            covariance: &mut *covariance,
            sum: &mut *sum,
            sum_squares: &mut *sum_squares,
        };
        // SAFETY: AVX2 and FMA guaranteed by the caller.
        unsafe {
            fold_rows(
                halves,
                &weight[rows.clone()],
                &valid[rows],
                correlation,
                sums,
            )
        };
    }
}

/// The gated epilogue of one 6-row tile (`acc[2r + h]`: row r, neurons
/// 8h..8h + 8, before the ReLU), [`Tiles::gated`]'s sums.
///
/// # Safety
/// AVX2 and FMA must be available.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn fold_rows(
    acc: [__m256; 2 * ROWS],
    weight: &[f32],
    valid: &[f32],
    correlation: bool,
    sums: GatedSlices<'_>,
) {
    let width = sums.shift.len();
    assert!(weight.len() >= ROWS && valid.len() >= ROWS);
    let zero = _mm256_setzero_ps();
    // The shift: row 0 of the trial's first tile, else what that tile stored.
    let mut shift = [0.0f32; PANEL];
    if sums.first {
        // SAFETY: `shift` holds 16 floats.
        unsafe {
            _mm256_storeu_ps(shift.as_mut_ptr(), _mm256_max_ps(acc[0], zero));
            _mm256_storeu_ps(shift.as_mut_ptr().add(8), _mm256_max_ps(acc[1], zero));
        }
        sums.shift.copy_from_slice(&shift[..width]);
    } else {
        shift[..width].copy_from_slice(sums.shift);
    }
    // SAFETY: `shift` holds 16 floats.
    let (s0, s1) = unsafe {
        (
            _mm256_loadu_ps(shift.as_ptr()),
            _mm256_loadu_ps(shift.as_ptr().add(8)),
        )
    };
    let (mut cov0, mut cov1) = (zero, zero);
    for r in 0..ROWS {
        let d0 = _mm256_sub_ps(_mm256_max_ps(acc[2 * r], zero), s0);
        let d1 = _mm256_sub_ps(_mm256_max_ps(acc[2 * r + 1], zero), s1);
        let w = _mm256_set1_ps(weight[r]);
        cov0 = _mm256_fmadd_ps(w, d0, cov0);
        cov1 = _mm256_fmadd_ps(w, d1, cov1);
        if correlation {
            // Per row into f64 at once: Σd² must not lose the variance to rounding.
            let v = _mm256_set1_ps(valid[r]);
            let (vd0, vd1) = (_mm256_mul_ps(v, d0), _mm256_mul_ps(v, d1));
            // SAFETY: AVX2 guaranteed by the caller; slices sized by `width`.
            unsafe {
                add_f64(vd0, vd1, width, sums.sum);
                add_squares_f64(vd0, d0, vd1, d1, width, sums.sum_squares);
            }
        }
    }
    // SAFETY: AVX2 guaranteed by the caller; slice sized by `width`.
    unsafe { add_f64(cov0, cov1, width, sums.covariance) };
}

/// sums[c] += (vz·z)[c] in f64 for the 16 lanes of (vz0·z0, vz1·z1).
///
/// # Safety
/// AVX2 and FMA must be available.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn add_squares_f64(
    vz0: __m256,
    z0: __m256,
    vz1: __m256,
    z1: __m256,
    width: usize,
    sums: &mut [f64],
) {
    let widen = |x: __m256| {
        [
            _mm256_cvtps_pd(_mm256_castps256_ps128(x)),
            _mm256_cvtps_pd(_mm256_extractf128_ps::<1>(x)),
        ]
    };
    let (a0, b0, a1, b1) = (widen(vz0), widen(z0), widen(vz1), widen(z1));
    let squares = [
        _mm256_mul_pd(a0[0], b0[0]),
        _mm256_mul_pd(a0[1], b0[1]),
        _mm256_mul_pd(a1[0], b1[0]),
        _mm256_mul_pd(a1[1], b1[1]),
    ];
    let mut lanes = [0.0f64; PANEL];
    for (i, q) in squares.into_iter().enumerate() {
        // SAFETY: `lanes` has 16 elements.
        unsafe { _mm256_storeu_pd(lanes.as_mut_ptr().add(4 * i), q) };
    }
    for (s, l) in sums[..width].iter_mut().zip(lanes) {
        *s += l;
    }
}

/// A dense tile's last step on one vector of sums: the layer's
/// nonlinearity, then its factor if any (the AVX-512 body's
/// `finish_dense`, 8 lanes).
///
/// # Safety
/// AVX2 and FMA must be available.
#[target_feature(enable = "avx2,fma")]
#[inline]
fn finish_dense(c: __m256, activation: Option<Nonlinearity>, scale: Option<__m256>) -> __m256 {
    let v = match activation {
        Some(Nonlinearity::Exp) => exp8(c),
        Some(Nonlinearity::Relu) => _mm256_max_ps(c, _mm256_setzero_ps()),
        None => c,
    };
    scale.map_or(v, |s| _mm256_mul_ps(v, s))
}

/// One tile of [`super::dense::dense_forward`]: the [`PACK`] = 12 rows of
/// a packed group (or 12 rows held as rows) × 16 neurons, out = F(b +
/// Σ_chunks Σ_{k in chunk} a·w)·scale, each chunk's sum one chain of FMAs
/// from zero, as `matrixmultiply`'s FMA kernel computes it: a narrow panel
/// at once ([`dense_tile_pairs`], [`dense_tile_half`]), a wider one as two
/// register tiles of 6 rows.
///
/// # Safety
/// AVX2 and FMA must be available.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn dense_tile(tile: DenseTile<'_>, out: &mut [f32], layout: Output) {
    // SAFETY: AVX2 and FMA guaranteed by the caller.
    unsafe {
        match tile.rows {
            RowLayout::Packed(_) if tile.width <= PAIRED_WIDTH && tile.k <= CHUNK => {
                dense_tile_pairs(tile, out, layout)
            }
            _ if tile.width <= PANEL / 2 => dense_tile_half::<PACK>(tile, out, layout),
            _ => {
                for first in [0, ROWS] {
                    let (part, out) = (tile.rows(first, ROWS), &mut out[layout.row(first)..]);
                    match tile.rows {
                        RowLayout::Packed(_) => dense_tile_rows::<false>(part, out, layout),
                        RowLayout::Strided(_) => dense_tile_rows::<true>(part, out, layout),
                    }
                }
            }
        }
    }
}

/// Neurons of a [`dense_tile_pairs`] panel at most: two rows × 4 neurons
/// fill a vector.
const PAIRED_WIDTH: usize = 4;

/// A dense tile (§4) of `R` rows (12 in either body) on a panel of at
/// most 8 neurons (the last panel of the paper's 200-neuron layer): `R`
/// chains of 8-lane
/// fused multiply-adds, where a whole panel's tile ran its chains on
/// half-empty registers. The same chains per output, so the same bits.
/// The AVX-512 body takes it for rows held as rows: a CPU that runs a
/// 512-bit FMA as two 256-bit halves (AMD Zen 4) does 8 lanes in half a
/// 16-lane FMA's time. The retraining methods' evaluation (`dense_forward`,
/// `paper3`, 1000 rows, one thread of a Zen 4; throwaway timings,
/// alternating, median of 31 × 20 calls) went from 3526–3561 to 3410 µs
/// (once 3611) with this body and from 3051–3094 to 3018–3062 µs with the
/// AVX-512 one.
///
/// # Safety
/// AVX2 and FMA must be available.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn dense_tile_half<const R: usize>(
    tile: DenseTile<'_>,
    out: &mut [f32],
    layout: Output,
) {
    const HALF: usize = PANEL / 2;
    let k = tile.k;
    tile.check(R);
    assert!(tile.panels == 1 && tile.width <= HALF, "a half panel");
    let a = match tile.rows {
        RowLayout::Packed(_) => (tile.a.as_ptr(), 1, PACK),
        RowLayout::Strided(stride) => (tile.a.as_ptr(), stride, 1),
    };
    // SAFETY: 16 biases checked.
    let bias = unsafe { _mm256_loadu_ps(tile.bias.as_ptr()) };
    let mut sums = [_mm256_setzero_ps(); R];
    for start in (0..k).step_by(CHUNK) {
        let mut acc = [_mm256_setzero_ps(); R];
        // SAFETY: inputs start..end < k of the R rows and the panel's
        // first 8 lanes at those inputs are in bounds (checked).
        unsafe {
            half_chain(
                a,
                tile.panel.as_ptr(),
                start..k.min(start + CHUNK),
                &mut acc,
            )
        };
        for (sum, acc) in sums.iter_mut().zip(acc) {
            *sum = _mm256_add_ps(if start == 0 { bias } else { *sum }, acc);
        }
    }
    // SAFETY: 16 factors checked.
    let scale = (tile.scale).map(|s| unsafe { _mm256_loadu_ps(s.as_ptr()) });
    let mut rows = [[0.0f32; HALF]; R];
    for (row, sum) in rows.iter_mut().zip(sums) {
        // SAFETY: `row` holds 8 floats.
        unsafe { _mm256_storeu_ps(row.as_mut_ptr(), finish_dense(sum, tile.activation, scale)) };
    }
    layout.write(&rows, tile.width, out);
}

/// A dense tile (§4) of the [`PACK`] = 12 rows of one packed group on a
/// panel of at most [`PAIRED_WIDTH`] neurons and at most [`CHUNK`] inputs
/// (the last panel of each 100-neuron quadrant of an encoder, 196
/// inputs): vector v holds rows 2v and 2v + 1 × the 4 neurons (lane j:
/// row 2v + j mod 2, neuron j / 2), one broadcast of the two adjacent
/// packed values and one spread of the panel's 4 weights per input. Six
/// chains of FMAs cover the 12 rows where [`dense_tile_half`] ran six per
/// 6 rows on half-empty registers, each bound by the FMA's latency. Each
/// output is still one chain per input in order, so the same bits. (Since
/// the AVX2 tiles hold 12 rows, [`dense_tile_half`] would run 12 chains at
/// the FMA's throughput, still 12 FMAs per input to these 6.) It took the
/// retraining methods' encoder (`paper3`, 1000 rows, one thread
/// of a Zen 4, median of 31 × 10 calls, alternating) from 1857–1877 to
/// 1751–1794 µs in throwaway timings.
///
/// # Safety
/// AVX2 and FMA must be available.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn dense_tile_pairs(tile: DenseTile<'_>, out: &mut [f32], layout: Output) {
    const VECTORS: usize = PACK / 2;
    let k = tile.k;
    tile.check(PACK);
    assert!(
        tile.panels == 1 && tile.width <= PAIRED_WIDTH && matches!(tile.rows, RowLayout::Packed(_)),
        "a narrow panel of packed rows"
    );
    assert!(k <= CHUNK, "one chunk of inputs");
    let (a, panel) = (tile.a.as_ptr(), tile.panel.as_ptr());
    let spread = _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3);
    // SAFETY: 4 of the 16 values at `at` are read; the caller ensures 16 are readable.
    let spread_load = |at: *const f32| unsafe {
        _mm256_permutevar8x32_ps(_mm256_castps128_ps256(_mm_loadu_ps(at)), spread)
    };
    let mut acc = [_mm256_setzero_ps(); VECTORS];
    for kk in 0..k {
        // SAFETY: input kk < k of the 12 rows and the panel's 16 lanes at
        // input kk are in bounds (checked).
        unsafe {
            let w = spread_load(panel.add(kk * PANEL));
            let x = a.add(kk * PACK);
            for (v, acc) in acc.iter_mut().enumerate() {
                // Two f32 as one f64, read unaligned (`x` is only f32-aligned).
                let pair = _mm256_set1_pd(x.add(2 * v).cast::<f64>().read_unaligned());
                *acc = _mm256_fmadd_ps(_mm256_castpd_ps(pair), w, *acc);
            }
        }
    }
    let bias = spread_load(tile.bias.as_ptr());
    let sums = acc.map(|acc| _mm256_add_ps(bias, acc));
    // SAFETY: 16 factors checked.
    let scale = (tile.scale).map(|s| spread_load(s.as_ptr()));
    let mut lanes = [[0.0f32; 8]; VECTORS];
    for (lanes, sum) in lanes.iter_mut().zip(sums) {
        // SAFETY: `lanes` holds 8 floats.
        unsafe {
            _mm256_storeu_ps(
                lanes.as_mut_ptr(),
                finish_dense(sum, tile.activation, scale),
            )
        };
    }
    let rows: [[f32; PAIRED_WIDTH]; PACK] =
        std::array::from_fn(|r| std::array::from_fn(|c| lanes[r / 2][2 * c + r % 2]));
    layout.write(&rows, tile.width, out);
}

/// [`dense_tile`]; `STRIDED`: the rows are [`RowLayout::Strided`] (a constant,
/// so that the packed rows' offsets are too). A layer of at most [`CHUNK`]
/// inputs (the encoder's quadrants) keeps its sums in registers from the
/// chain to the output rows; only a longer one parks them in memory
/// between chunks. The same additions in the same order, so the same
/// bits. With [`exp8`]'s short path, it took the retraining methods'
/// encoder (`paper3`, 1000 rows, one thread of a Zen 4) from 1987–1994 to
/// 1882–1883 µs, and `online_retrain` from 493–507 to 474–477 ms (`comod
/// bench --seconds 3`, alternating).
///
/// # Safety
/// AVX2 and FMA must be available.
#[target_feature(enable = "avx2,fma")]
unsafe fn dense_tile_rows<const STRIDED: bool>(
    tile: DenseTile<'_>,
    out: &mut [f32],
    layout: Output,
) {
    let k = tile.k;
    tile.check(ROWS);
    assert_eq!(tile.panels, 1, "the AVX2 body's dense tiles have one panel");
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
    // SAFETY: 16 biases checked.
    let bias = unsafe { [0, 8].map(|h| _mm256_loadu_ps(tile.bias.as_ptr().add(h))) };
    let mut acc = [_mm256_setzero_ps(); 2 * ROWS];
    // SAFETY: inputs 0..k (k ≤ CHUNK) or the first chunk's of the 6 rows
    // and of the panel are in bounds (checked).
    unsafe { chain(a, panel, 0..k.min(CHUNK), &mut acc) };
    let mut sums: [__m256; 2 * ROWS] = std::array::from_fn(|i| _mm256_add_ps(bias[i % 2], acc[i]));
    if k > CHUNK {
        let mut parked = [[0.0f32; 8]; 2 * ROWS];
        for (lanes, sum) in parked.iter_mut().zip(sums) {
            // SAFETY: `lanes` holds 8 floats.
            unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), sum) };
        }
        for start in (CHUNK..k).step_by(CHUNK) {
            let mut acc = [_mm256_setzero_ps(); 2 * ROWS];
            // SAFETY: inputs start..end < k of the 6 rows and of the panel are in bounds (checked).
            unsafe { chain(a, panel, start..k.min(start + CHUNK), &mut acc) };
            for (lanes, acc) in parked.iter_mut().zip(acc) {
                // SAFETY: `lanes` holds 8 floats.
                unsafe {
                    let p = lanes.as_mut_ptr();
                    _mm256_storeu_ps(p, _mm256_add_ps(_mm256_loadu_ps(p), acc));
                }
            }
        }
        // SAFETY: each of `parked` holds 8 floats.
        sums = std::array::from_fn(|i| unsafe { _mm256_loadu_ps(parked[i].as_ptr()) });
    }
    // SAFETY: 16 factors checked.
    let scale = (tile.scale).map(|s| unsafe { [0, 8].map(|h| _mm256_loadu_ps(s.as_ptr().add(h))) });
    // A loop, not `array::from_fn`: its closure went out of line, a call
    // per vector with the vectors passed through memory.
    let mut v = sums;
    for (i, vector) in v.iter_mut().enumerate() {
        *vector = finish_dense(*vector, tile.activation, scale.map(|s| s[i % 2]));
    }
    // SAFETY: AVX2 guaranteed by the caller.
    unsafe { store_rows(&v, tile.width, out, layout) };
}

/// Writes a 6-row tile's outputs (row r's 16 lanes in `v[2r]` and
/// `v[2r + 1]`), `width` neurons of each row, to `out` as `layout` lays
/// them out: whole rows ([`Output::Rows`] of 16 neurons) straight from
/// the registers, the rest through [`Output::write`], which copies each
/// row with a call. For the kernel's stored rows (the modulation
/// methods' evaluation of 1000 rows, one thread of an Emerald Rapids
/// Xeon, old and new at once on the two cores, fastest of 31; throwaway
/// timings) that took 0.93–0.95 of the time in 7 of 10 pairs (the other
/// three 1.01–1.24 in a disturbed minute), 1533.0 against 1618.5 µs at
/// the fastest.
///
/// # Safety
/// AVX2 must be available.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn store_rows(v: &[__m256; 2 * ROWS], width: usize, out: &mut [f32], layout: Output) {
    if let (Output::Rows(stride), PANEL) = (layout, width) {
        assert!(
            (ROWS - 1) * stride + PANEL <= out.len(),
            "output out of bounds"
        );
        for (r, pair) in v.chunks_exact(2).enumerate() {
            // SAFETY: row r's 16 outputs are in bounds (asserted).
            unsafe {
                let p = out.as_mut_ptr().add(r * stride);
                _mm256_storeu_ps(p, pair[0]);
                _mm256_storeu_ps(p.add(8), pair[1]);
            }
        }
        return;
    }
    let mut rows = [[0.0f32; PANEL]; ROWS];
    for (row, pair) in rows.iter_mut().zip(v.chunks_exact(2)) {
        // SAFETY: `row` holds 16 floats.
        unsafe {
            _mm256_storeu_ps(row.as_mut_ptr(), pair[0]);
            _mm256_storeu_ps(row.as_mut_ptr().add(8), pair[1]);
        }
    }
    layout.write(&rows, width, out);
}

/// Row r < `real` of `out` (rows `stride` apart) gets outputs 0..`width`
/// of `sums` (vector o: output o of [`LANE_ROWS`] rows): 8 × 8 transposes
/// in registers and a store per row and 8 outputs, as the AVX-512F body's
/// `lanes_to_rows`: `dense_lanes` (`retrain-last`'s readout, 1000 rows,
/// one thread of a Zen 4; throwaway timings, alternating) 40.0–40.4 µs
/// against 41.4–42.1 µs copying value by value.
///
/// # Safety
/// AVX2 and FMA must be available.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn lanes_to_rows(
    sums: &[[f32; LANE_ROWS]; PANEL],
    (width, real): (usize, usize),
    out: &mut [f32],
    stride: usize,
) {
    check_lane_rows((width, real), out.len(), stride);
    for part in (0..width).step_by(8) {
        let lanes = (width - part).min(8);
        for half in (0..real).step_by(8) {
            // SAFETY: each of `sums` holds 16 floats.
            let block = std::array::from_fn(|i| unsafe {
                _mm256_loadu_ps(sums[part + i].as_ptr().add(half))
            });
            for (j, row) in transpose8(block).into_iter().take(real - half).enumerate() {
                // SAFETY: outputs part..part + lanes of row half + j are in
                // bounds (asserted).
                unsafe {
                    store_first8(out.as_mut_ptr().add((half + j) * stride + part), row, lanes)
                };
            }
        }
    }
}

/// Neurons of one pass of [`lanes_outputs`] at most: two accumulators
/// each (the 16 rows), 12 of the 16 registers.
const LANE_OUTPUTS: usize = 6;
const _: () = assert!(LANE_OUTPUTS == 6, "lanes_tile's for_outputs! lists 1..=6");

/// One tile of [`super::dense::dense_lanes`]: vector o of `sums[g]`
/// holds output o of the 16 rows of group g (two vectors of 8), F(b_o +
/// Σ_chunks Σ_{k in chunk} a_k·w_ok), each chunk's sum one chain of FMAs
/// from zero, as `matrixmultiply` computes it; outputs past the panel's
/// width are left as they were. The groups run one after the other, the
/// panel in passes of at most [`LANE_OUTPUTS`] neurons, of nearly equal
/// sizes (10: 5 and 5).
///
/// # Safety
/// AVX2 and FMA must be available.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn lanes_tile(
    tile: LaneTile<'_>,
    sums: &mut [[[f32; LANE_ROWS]; PANEL]; LANE_GROUPS],
) {
    tile.check();
    for (g, sums) in sums.iter_mut().enumerate().take(tile.groups) {
        let tile = tile.group(g);
        let passes = tile.width.div_ceil(LANE_OUTPUTS);
        let mut first = 0;
        for pass in 0..passes {
            let width = (tile.width - first) / (passes - pass);
            let part = LaneTile {
                panel: &tile.panel[first..],
                bias: &tile.bias[first..],
                width,
                ..tile
            };
            // SAFETY: AVX2 and FMA guaranteed by the caller.
            unsafe { for_outputs!(width, [1 2 3 4 5 6], lanes_outputs(&part, &mut sums[first..])) }
            first += width;
        }
    }
}

/// [`super::dense::lane_block_correct`] on two halves of 8 rows: each
/// row's best readout column chosen by blends, its label compared as a
/// 32-bit lane; a logit is not finite where 0·x is NaN. The finite tests
/// are independent of each other (an OR per logit), off the blends' chain.
///
/// # Safety
/// AVX2 and FMA must be available.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn lanes_correct(
    sums: &[[f32; LANE_ROWS]; PANEL],
    count: LaneCount<'_>,
) -> Option<usize> {
    count.check();
    let bytes = count.label_lanes();
    let zero = _mm256_setzero_ps();
    let mut correct = 0;
    for half in 0..2 {
        let real = first8(count.labels.len().saturating_sub(8 * half));
        // SAFETY: each of `sums` holds 16 floats.
        let load = |o: usize| unsafe { _mm256_loadu_ps(sums[o].as_ptr().add(8 * half)) };
        let not_finite = (0..count.width).fold(zero, |any, o| {
            let product = _mm256_mul_ps(load(o), zero);
            _mm256_or_ps(any, _mm256_cmp_ps::<_CMP_UNORD_Q>(product, product))
        });
        if _mm256_testz_si256(_mm256_castps_si256(not_finite), real) == 0 {
            return None;
        }
        let (mut best_value, mut best) = (load(count.cols[0]), _mm256_setzero_si256());
        for (k, &c) in count.cols.iter().enumerate().skip(1) {
            let value = load(c);
            let better = _mm256_cmp_ps::<_CMP_GT_OQ>(value, best_value);
            best_value = _mm256_blendv_ps(best_value, value, better);
            let index = _mm256_set1_epi32(k as i32);
            best = _mm256_blendv_epi8(best, index, _mm256_castps_si256(better));
        }
        // SAFETY: `bytes` holds 16 bytes, 8 from `8 · half`.
        let wanted =
            _mm256_cvtepu8_epi32(unsafe { _mm_loadl_epi64(bytes.as_ptr().add(8 * half).cast()) });
        let hits = _mm256_and_si256(_mm256_cmpeq_epi32(best, wanted), real);
        correct += _mm256_movemask_ps(_mm256_castsi256_ps(hits)).count_ones() as usize;
    }
    Some(correct)
}

/// [`lanes_tile`] for the `O` neurons from the start of `tile.panel`:
/// 2·`O` accumulators.
///
/// # Safety
/// AVX2 and FMA must be available.
#[target_feature(enable = "avx2,fma")]
unsafe fn lanes_outputs<const O: usize>(tile: &LaneTile<'_>, sums: &mut [[f32; LANE_ROWS]]) {
    let (a, panel) = (tile.a.as_ptr(), tile.panel.as_ptr());
    let mut c: [[__m256; 2]; O] = std::array::from_fn(|o| [_mm256_set1_ps(tile.bias[o]); 2]);
    for start in (0..tile.k).step_by(CHUNK) {
        let mut acc = [[_mm256_setzero_ps(); 2]; O];
        for kk in start..tile.k.min(start + CHUNK) {
            // SAFETY: input kk < k of the 16 rows and of the panel's O
            // neurons (from an offset of at most 16 − O) is in bounds
            // (checked).
            unsafe {
                let x = a.add(kk * LANE_ROWS);
                let x = [_mm256_loadu_ps(x), _mm256_loadu_ps(x.add(8))];
                let w = panel.add(kk * PANEL);
                for (o, acc) in acc.iter_mut().enumerate() {
                    let w = _mm256_broadcast_ss(&*w.add(o));
                    for (acc, x) in acc.iter_mut().zip(x) {
                        *acc = _mm256_fmadd_ps(x, w, *acc);
                    }
                }
            }
        }
        for (c, acc) in c.iter_mut().zip(acc) {
            for (c, acc) in c.iter_mut().zip(acc) {
                *c = _mm256_add_ps(*c, acc);
            }
        }
    }
    for (lanes, c) in sums.iter_mut().zip(c) {
        for (half, c) in c.into_iter().enumerate() {
            let v = finish_dense(c, tile.activation, None);
            // SAFETY: `lanes` holds 16 floats.
            unsafe { _mm256_storeu_ps(lanes.as_mut_ptr().add(8 * half), v) };
        }
    }
}

/// One packed group of the modulated activity (§3), as the AVX-512F
/// body's `modulated_group`: x[k·PACK + r] = exp(m[r]·c[k] − β)·u[k]·keep[r]
/// for every input k, in one pass with the operations, in order, of the
/// portable version (so the same bits). Two inputs' 24 values fill three
/// whole registers (lane l of register i: row (8i + l) mod 12 of input
/// 2q + (8i + l) div 12), so no exp is spent on empty lanes; a last input
/// alone fills one register and a half, the other half neither stored nor
/// read. The portable version's three passes (the products, the
/// exponentials, the factors) took 4.8 % of a profile of `online_stochastic`
/// runs with this body, this one pass 2.9 % (one thread of an Intel Xeon,
/// Emerald Rapids).
///
/// # Safety
/// AVX2 and FMA must be available.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn modulated_group(
    m: &[f32; PACK],
    keep: &[f32; PACK],
    coupling: &[f32],
    activity: &[f32],
    beta: f32,
    x: &mut [f32],
) {
    const PAIR: usize = 2;
    const REGISTERS: usize = PAIR * PACK / 8;
    let n = coupling.len();
    assert!(
        activity.len() == n && x.len() >= n * PACK,
        "a whole packed group"
    );
    // Lane l of register i holds row (8i + l) mod 12.
    let spread = |of: &[f32; PACK]| -> [__m256; REGISTERS] {
        let mut values = [0.0f32; PAIR * PACK];
        for (f, value) in values.iter_mut().enumerate() {
            *value = of[f % PACK];
        }
        // SAFETY: register i reads values 8i..8i + 8 of 24.
        unsafe { [0, 8, 16].map(|at| _mm256_loadu_ps(values.as_ptr().add(at))) }
    };
    let (m_of, keep_of) = (spread(m), spread(keep));
    let beta = _mm256_set1_ps(beta);
    for first in (0..n).step_by(PAIR) {
        let second = (first + 1).min(n - 1);
        // Registers 0 and 2 hold one input each, register 1 the first
        // input's last 4 rows and the second's first 4.
        let of_pair = |v: &[f32]| {
            let (a, b) = (_mm256_set1_ps(v[first]), _mm256_set1_ps(v[second]));
            [a, _mm256_blend_ps::<0xF0>(a, b), b]
        };
        let (c, u) = (of_pair(coupling), of_pair(activity));
        let values = (n - first).min(PAIR) * PACK;
        for i in 0..values.div_ceil(8) {
            let e = exp8(_mm256_sub_ps(_mm256_mul_ps(m_of[i], c[i]), beta));
            let v = _mm256_mul_ps(_mm256_mul_ps(e, u[i]), keep_of[i]);
            // SAFETY: values first·12 + 8i.. of this pair's 12 or 24 lie
            // inside `x` (asserted); a lone input's second register
            // stores its first 4 lanes only.
            unsafe { store_first8(x.as_mut_ptr().add(first * PACK + 8 * i), v, values - 8 * i) };
        }
    }
}

/// [`super::plan`]'s panel fill up to the last multiple of 8 inputs (the
/// AVX-512F body's, 8 lanes): for each of those inputs k, lanes c <
/// `width` of `panel[k·16..]` from `rows[c·inputs + k]`, the other lanes 0;
/// returns how many inputs it filled (the caller fills the rest). Eight
/// inputs at a time, each half panel an 8 × 8 transposition in registers.
/// `DensePlan::repack` of `paper3`'s layers
/// 1 and 2 (158k weights), which the retraining methods run for every
/// evaluation: 19.9–20.5 µs, 83.4–94.3 µs one weight at a time (throwaway
/// timings on one thread of an AMD EPYC Zen 4).
///
/// # Safety
/// AVX2 must be available.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn fill_panel(
    rows: &[f32],
    inputs: usize,
    width: usize,
    panel: &mut [f32],
) -> usize {
    const HALF: usize = PANEL / 2;
    assert!(width <= PANEL && rows.len() == width * inputs && panel.len() == inputs * PANEL);
    let whole = inputs - inputs % HALF;
    for first in (0..whole).step_by(HALF) {
        for half in 0..2 {
            let neurons: [__m256; HALF] = std::array::from_fn(|c| {
                let c = half * HALF + c;
                if c < width {
                    // SAFETY: inputs first..first + 8 ≤ inputs of neuron c < width.
                    unsafe { _mm256_loadu_ps(rows.as_ptr().add(c * inputs + first)) }
                } else {
                    _mm256_setzero_ps()
                }
            });
            for (k, lanes) in transpose8(neurons).into_iter().enumerate() {
                // SAFETY: input first + k < inputs, lanes 8·half..8·half + 8 of 16 (asserted).
                unsafe {
                    let at = (first + k) * PANEL + half * HALF;
                    _mm256_storeu_ps(panel.as_mut_ptr().add(at), lanes);
                }
            }
        }
    }
    whole
}

/// out[k·16..k·16 + 16] ← from[k·16..k·16 + 16]·factor[k], two vectors
/// per input (`plan::scale_panel`).
///
/// # Safety
/// AVX2 must be available.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn scale_panel(from: &[f32], factor: &[f32], out: &mut [f32]) {
    assert!(from.len() == factor.len() * PANEL && out.len() == from.len());
    for (k, &f) in factor.iter().enumerate() {
        let f = _mm256_set1_ps(f);
        for half in [0, PANEL / 2] {
            let at = k * PANEL + half;
            // SAFETY: input k's 16 lanes are in bounds of both (asserted).
            unsafe {
                let v = _mm256_loadu_ps(from.as_ptr().add(at));
                _mm256_storeu_ps(out.as_mut_ptr().add(at), _mm256_mul_ps(v, f));
            }
        }
    }
}

/// The transpose of an 8 × 8 block: lane i of vector j of the result is
/// lane j of vector i of `r` (as the AVX-512F body's `transpose16`: pairs
/// of rows interleaved, then 2 × 2 blocks of them, then the 128-bit
/// halves of two vectors exchanged).
#[target_feature(enable = "avx2,fma")]
#[inline]
fn transpose8(r: [__m256; 8]) -> [__m256; 8] {
    let t: [__m256; 8] = std::array::from_fn(|i| {
        let (a, b) = (r[i & !1], r[i | 1]);
        if i % 2 == 0 {
            _mm256_unpacklo_ps(a, b)
        } else {
            _mm256_unpackhi_ps(a, b)
        }
    });
    // u[4g + m], half h: rows 4g..4g + 4 of column 4h + m.
    let u: [__m256; 8] = std::array::from_fn(|i| {
        let (g, m) = (i / 4, i % 4);
        let (a, b) = (t[4 * g + m / 2], t[4 * g + 2 + m / 2]);
        if m % 2 == 0 {
            _mm256_shuffle_ps::<0x44>(a, b)
        } else {
            _mm256_shuffle_ps::<0xEE>(a, b)
        }
    });
    std::array::from_fn(|j| {
        let (a, b) = (u[j % 4], u[4 + j % 4]);
        if j < 4 {
            _mm256_permute2f128_ps::<0x20>(a, b)
        } else {
            _mm256_permute2f128_ps::<0x31>(a, b)
        }
    })
}

impl Tiles for Avx2Fma {
    const ROWS: usize = ROWS;
    const PANELS: usize = 1;

    /// The last 8 neurons of the paper's 200-neuron layer
    /// ([`narrow_product`]).
    const NARROW: usize = PANEL / 2;

    fn hidden(tile: Tile<'_>, out: &mut [f32], layout: Output) {
        // SAFETY: this body is only selected on CPUs with AVX2 and FMA.
        unsafe {
            match tile.rows {
                PACK => hidden_narrow(tile, out, layout),
                _ => hidden_tile(tile, out, layout),
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
        // SAFETY: this body is only selected on CPUs with AVX2 and FMA.
        unsafe {
            match tile.rows {
                PACK => gated_narrow(tile, weight, valid, correlation, sums),
                _ => gated_tile(tile, weight, valid, correlation, sums),
            }
        }
    }
}
