//! e^x over f32 slices: sixteen lanes at a time with AVX-512F
//! ([`exp16`]) or eight with AVX2+FMA ([`exp8`]) when the selected
//! instruction set has them ([`Isa::selected`]), else the standard
//! library's `f32::exp`. The two vector versions run the same operations
//! lane by lane but for the last scaling, so they give the same bits.
//!
//! The vector version reduces x = n·ln2 + r with |r| ≤ ln2/2 (ln2 split in
//! two for an exact product), evaluates Cephes' degree-7 polynomial for
//! e^r with FMAs, and scales by 2^n: the AVX2 version as two powers of two
//! (so that n may reach 128; as one where every lane of a vector has
//! |x| ≤ 87), the AVX-512F one by `vscalefps`; either is exact until its
//! one rounding. Accuracy, measured by the tests against
//! f64 `exp` where e^x is a normal f32 (x ∈ [−87.33, 88.72]): relative error ≤
//! [`MAX_RELATIVE_ERROR`]. Above 88.72 the result is +∞, below −87.33 it is
//! 0 (subnormal results are flushed), NaN stays NaN.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

use crate::net::simd::Isa;

/// Bound on the relative error of [`exp_in_place`] where e^x is a normal f32.
pub const MAX_RELATIVE_ERROR: f64 = 1.5e-7;
/// Largest x whose e^x is finite in f32.
pub const EXP_MAX: f32 = 88.722_83;
/// Smallest x whose e^x is a normal f32.
pub const EXP_MIN: f32 = -87.336_55;

/// xs ← e^xs.
pub fn exp_in_place(xs: &mut [f32]) {
    exp_in_place_with(Isa::selected(), xs)
}

/// xs ← e^xs with the code of `isa`, which the CPU must run.
pub fn exp_in_place_with(isa: Isa, xs: &mut [f32]) {
    assert!(isa.supported(), "this CPU does not run {isa}");
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the CPU has AVX-512F, asserted above.
        Isa::Avx512 => unsafe { exp_in_place_avx512(xs) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the CPU has AVX2 and FMA, asserted above.
        Isa::Avx2Fma => unsafe { exp_in_place_avx2(xs) },
        _ => xs.iter_mut().for_each(|x| *x = x.exp()),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn exp_in_place_avx512(xs: &mut [f32]) {
    let mut chunks = xs.chunks_exact_mut(16);
    for chunk in &mut chunks {
        // SAFETY: `chunk` holds exactly 16 floats.
        unsafe {
            let v = _mm512_loadu_ps(chunk.as_ptr());
            _mm512_storeu_ps(chunk.as_mut_ptr(), exp16(v));
        }
    }
    let rest = chunks.into_remainder();
    if !rest.is_empty() {
        let mask = ((1u32 << rest.len()) - 1) as __mmask16;
        // SAFETY: the mask covers exactly the `rest.len()` floats of `rest`.
        unsafe {
            let v = exp16(_mm512_maskz_loadu_ps(mask, rest.as_ptr()));
            _mm512_mask_storeu_ps(rest.as_mut_ptr(), mask, v);
        }
    }
}

/// e^x of sixteen lanes: [`exp8`]'s operations at twice the width, but
/// for the scaling by 2^n, one `vscalefps` (a product by a power of two
/// is exact until its one rounding, so the bits are the same). As in
/// [`exp8`], a vector whose every |x| ≤ 87 skips the clamping and the
/// edge cases' blends, which change no lane there (`exp16_inside`): e^x
/// of 102 400 values in [−5, 5] on one thread of a Xeon (Emerald Rapids;
/// a throwaway timing, fastest of 101, three alternating runs) took 2.73
/// ns per vector against 3.50–3.61 (the `exp` group of `cargo bench`:
/// 1.28–1.72 against 1.63–1.90 µs, noisy). The encoder's epilogues and
/// the modulator's e^x in the trial kernel (§3) take this path.
///
/// # Safety
/// The CPU must support AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
pub fn exp16(x: __m512) -> __m512 {
    let magnitude = _mm512_castsi512_ps(_mm512_and_si512(
        _mm512_castps_si512(x),
        _mm512_set1_epi32(i32::MAX),
    ));
    if _mm512_cmp_ps_mask::<_CMP_LE_OQ>(magnitude, _mm512_set1_ps(INSIDE)) == u16::MAX {
        exp16_inside(x)
    } else {
        exp16_anywhere(x)
    }
}

/// [`exp16`] where every lane's |x| ≤ [`INSIDE`].
///
/// # Safety
/// The CPU must support AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
fn exp16_inside(x: __m512) -> __m512 {
    let (n, y) = reduce16(x);
    _mm512_scalef_ps(y, n)
}

/// [`exp16`] for any lanes: clamped to [`EXP_MIN`, `EXP_MAX`], then +∞
/// above, 0 below, NaN kept.
///
/// # Safety
/// The CPU must support AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
fn exp16_anywhere(x: __m512) -> __m512 {
    let clamped = _mm512_min_ps(
        _mm512_max_ps(x, _mm512_set1_ps(EXP_MIN)),
        _mm512_set1_ps(EXP_MAX),
    );
    let (n, y) = reduce16(clamped);
    let y = _mm512_scalef_ps(y, n);
    let above = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(x, _mm512_set1_ps(EXP_MAX));
    let y = _mm512_mask_blend_ps(above, y, _mm512_set1_ps(f32::INFINITY));
    let below = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(x, _mm512_set1_ps(EXP_MIN));
    let y = _mm512_mask_blend_ps(below, y, _mm512_setzero_ps());
    _mm512_mask_blend_ps(_mm512_cmp_ps_mask::<_CMP_UNORD_Q>(x, x), y, x)
}

/// (n, e^r) of x = n·ln2 + r, |r| ≤ ln2/2: [`reduce8`] on sixteen lanes,
/// n kept as a float for `vscalefps`.
///
/// # Safety
/// The CPU must support AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
fn reduce16(x: __m512) -> (__m512, __m512) {
    let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
        _mm512_mul_ps(x, _mm512_set1_ps(std::f32::consts::LOG2_E)),
    );
    let r = _mm512_fmadd_ps(n, _mm512_set1_ps(-0.693_359_4), x);
    let r = _mm512_fmadd_ps(n, _mm512_set1_ps(2.121_944_4e-4), r);
    let mut p = _mm512_set1_ps(1.987_569_1e-4);
    for c in [
        1.398_199_9e-3,
        8.333_452e-3,
        4.166_579_6e-2,
        1.666_666_5e-1,
        0.5,
    ] {
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(c));
    }
    let y = _mm512_fmadd_ps(
        p,
        _mm512_mul_ps(r, r),
        _mm512_add_ps(r, _mm512_set1_ps(1.0)),
    );
    (n, y)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn exp_in_place_avx2(xs: &mut [f32]) {
    let mut chunks = xs.chunks_exact_mut(8);
    for chunk in &mut chunks {
        // SAFETY: `chunk` holds exactly 8 floats.
        unsafe {
            let v = _mm256_loadu_ps(chunk.as_ptr());
            _mm256_storeu_ps(chunk.as_mut_ptr(), exp8(v));
        }
    }
    let rest = chunks.into_remainder();
    if !rest.is_empty() {
        let mut lanes = [0.0f32; 8];
        lanes[..rest.len()].copy_from_slice(rest);
        // SAFETY: `lanes` holds exactly 8 floats.
        unsafe {
            let v = exp8(_mm256_loadu_ps(lanes.as_ptr()));
            _mm256_storeu_ps(lanes.as_mut_ptr(), v);
        }
        rest.copy_from_slice(&lanes[..rest.len()]);
    }
}

/// e^x of eight lanes (see the module documentation for its accuracy).
/// When every lane lies in [−87, 87] (the usual case: the
/// encoder's and the modulation's arguments are small), e^x is a normal
/// float and needs neither the clamping nor the blends of the edge cases,
/// and 2^n is one normal float: `exp8_inside`, the same bits with a
/// third fewer operations (for its effect on the encoder, see the AVX2
/// body's `dense_tile_rows`).
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
pub fn exp8(x: __m256) -> __m256 {
    let magnitude = _mm256_andnot_ps(_mm256_set1_ps(-0.0), x);
    let inside = _mm256_cmp_ps::<_CMP_LE_OQ>(magnitude, _mm256_set1_ps(INSIDE));
    if _mm256_movemask_ps(inside) == 0xFF {
        exp8_inside(x)
    } else {
        exp8_anywhere(x)
    }
}

/// Bound on |x| of every lane for [`exp8_inside`]: n = round(x·log2 e)
/// stays in [−126, 126], so 2^n is a normal float, and e^x ≥ e^−87 is too.
#[cfg(target_arch = "x86_64")]
const INSIDE: f32 = 87.0;

/// (n, e^r) of x = n·ln2 + r, |r| ≤ ln2/2: the reduction and the
/// polynomial of [`exp8`], for x in [`EXP_MIN`, `EXP_MAX`].
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
fn reduce8(x: __m256) -> (__m256i, __m256) {
    let n = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(_mm256_mul_ps(
        x,
        _mm256_set1_ps(std::f32::consts::LOG2_E),
    ));
    let r = _mm256_fmadd_ps(n, _mm256_set1_ps(-0.693_359_4), x);
    let r = _mm256_fmadd_ps(n, _mm256_set1_ps(2.121_944_4e-4), r);
    let mut p = _mm256_set1_ps(1.987_569_1e-4);
    for c in [
        1.398_199_9e-3,
        8.333_452e-3,
        4.166_579_6e-2,
        1.666_666_5e-1,
        0.5,
    ] {
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(c));
    }
    let y = _mm256_fmadd_ps(
        p,
        _mm256_mul_ps(r, r),
        _mm256_add_ps(r, _mm256_set1_ps(1.0)),
    );
    (_mm256_cvtps_epi32(n), y)
}

/// 2^e of eight lanes, for e in [−126, 127].
///
/// # Safety
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
fn pow2(e: __m256i) -> __m256 {
    _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(
        e,
        _mm256_set1_epi32(127),
    )))
}

/// [`exp8`] where every lane's |x| ≤ [`INSIDE`]: y·2^n in one product,
/// rounded once as the two products of [`exp8_anywhere`] round it (the
/// first of those is exact).
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
fn exp8_inside(x: __m256) -> __m256 {
    let (n, y) = reduce8(x);
    _mm256_mul_ps(y, pow2(n))
}

/// [`exp8`] for any lanes: clamped to [`EXP_MIN`, `EXP_MAX`], then +∞
/// above, 0 below, NaN kept.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
fn exp8_anywhere(x: __m256) -> __m256 {
    let clamped = _mm256_min_ps(
        _mm256_max_ps(x, _mm256_set1_ps(EXP_MIN)),
        _mm256_set1_ps(EXP_MAX),
    );
    let (n, y) = reduce8(clamped);
    // 2^n as 2^(n/2)·2^(n − n/2): each factor stays a normal float for n ∈ [−126, 128].
    let half = _mm256_srai_epi32::<1>(n);
    let y = _mm256_mul_ps(
        _mm256_mul_ps(y, pow2(half)),
        pow2(_mm256_sub_epi32(n, half)),
    );
    let y = _mm256_blendv_ps(
        y,
        _mm256_set1_ps(f32::INFINITY),
        _mm256_cmp_ps::<_CMP_GT_OQ>(x, _mm256_set1_ps(EXP_MAX)),
    );
    let y = _mm256_blendv_ps(
        y,
        _mm256_setzero_ps(),
        _mm256_cmp_ps::<_CMP_LT_OQ>(x, _mm256_set1_ps(EXP_MIN)),
    );
    _mm256_blendv_ps(y, x, _mm256_cmp_ps::<_CMP_UNORD_Q>(x, x))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn worst_relative_error(xs: &[f32]) -> f64 {
        let mut ys = xs.to_vec();
        exp_in_place(&mut ys);
        xs.iter()
            .zip(&ys)
            .map(|(&x, &y)| {
                let want = (x as f64).exp();
                (y as f64 - want).abs() / want
            })
            .fold(0.0, f64::max)
    }

    #[test]
    fn relative_error_is_within_the_stated_bound() {
        let n = 4_000_037;
        let mut xs: Vec<f32> = (0..n)
            .map(|i| EXP_MIN + (EXP_MAX - EXP_MIN) * i as f32 / n as f32)
            .collect();
        xs.extend([
            0.0, -0.0, 1e-30, -1e-30, 1.0, -1.0, 0.5, EXP_MAX, EXP_MIN, 88.0, -87.0,
        ]);
        let worst = worst_relative_error(&xs);
        assert!(worst <= MAX_RELATIVE_ERROR, "max relative error {worst:e}");
    }

    #[test]
    fn every_float_in_the_modulation_range_is_accurate() {
        // Every f32 in [−4, 4], the range exp(m·c − β) sees at default settings.
        let (lo, hi) = ((-4.0f32).to_bits(), 4.0f32.to_bits());
        let negatives: Vec<f32> = (0x8000_0000u32..=lo)
            .step_by(101)
            .map(f32::from_bits)
            .collect();
        let positives: Vec<f32> = (0..=hi).step_by(101).map(f32::from_bits).collect();
        assert!(worst_relative_error(&negatives) <= MAX_RELATIVE_ERROR);
        assert!(worst_relative_error(&positives) <= MAX_RELATIVE_ERROR);
    }

    #[test]
    fn every_vector_version_gives_the_same_bits() {
        // Every 97th float (all signs, magnitudes, infinities and NaNs),
        // at lengths that leave every remainder; and every float within 1
        // of the range's ends, where 2^n is scaled to its extremes (the
        // AVX-512F version scales by `vscalefps`, the AVX2 one by two
        // powers of two).
        let every_float = |from: f32, to: f32| (from.to_bits()..=to.to_bits()).map(f32::from_bits);
        let xs: Vec<f32> = (0..=u32::MAX)
            .step_by(97)
            .map(f32::from_bits)
            .chain(every_float(EXP_MAX - 1.0, EXP_MAX + 1.0))
            .chain(every_float(-(EXP_MIN + 1.0), -(EXP_MIN - 1.0)).map(|x| -x))
            .collect();
        let vector: Vec<Isa> = Isa::available()
            .into_iter()
            .filter(|&isa| isa != Isa::Scalar)
            .collect();
        if vector.len() < 2 {
            eprintln!("this CPU runs fewer than two vector versions: nothing to compare");
            return;
        }
        for len in [xs.len(), 1, 7, 15, 17, 33] {
            let results: Vec<Vec<u32>> = vector
                .iter()
                .map(|&isa| {
                    let mut ys = xs[..len].to_vec();
                    exp_in_place_with(isa, &mut ys);
                    ys.iter().map(|y| y.to_bits()).collect()
                })
                .collect();
            assert!(results.windows(2).all(|w| w[0] == w[1]), "length {len}");
        }
    }

    /// Every 13th float of [−87, 87], and every float within 1 of its
    /// ends, where n reaches ±126 and e^x nears the smallest normal.
    #[cfg(target_arch = "x86_64")]
    fn inside_sample() -> Vec<f32> {
        let every_float = |from: f32, to: f32| (from.to_bits()..=to.to_bits()).map(f32::from_bits);
        every_float(0.0, INSIDE)
            .step_by(13)
            .chain(every_float(INSIDE - 1.0, INSIDE))
            .flat_map(|x| [x, -x])
            .collect()
    }

    /// `run(lanes, short, whole)` writes the bits of a short path and of
    /// its whole path on `width` lanes of the sample; they must agree.
    #[cfg(target_arch = "x86_64")]
    fn short_path_matches_whole(width: usize, run: impl Fn(&[f32], &mut [u32], &mut [u32])) {
        let (mut short, mut whole) = (vec![0u32; width], vec![0u32; width]);
        for lanes in inside_sample().chunks_exact(width) {
            run(lanes, &mut short, &mut whole);
            assert_eq!(short, whole, "{lanes:?}");
        }
    }

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn the_short_paths_give_the_bits_of_the_whole_ones() {
        for isa in [Isa::Avx2Fma, Isa::Avx512]
            .into_iter()
            .filter(|isa| !isa.supported())
        {
            eprintln!("this CPU does not run {isa}: its short path is not compared");
        }
        if Isa::Avx2Fma.supported() {
            // SAFETY: AVX2 and FMA checked; each slice holds 8 values.
            short_path_matches_whole(8, |lanes, short, whole| unsafe {
                let x = _mm256_loadu_ps(lanes.as_ptr());
                _mm256_storeu_ps(short.as_mut_ptr().cast(), exp8_inside(x));
                _mm256_storeu_ps(whole.as_mut_ptr().cast(), exp8_anywhere(x));
            });
        }
        if Isa::Avx512.supported() {
            // SAFETY: AVX-512F checked; each slice holds 16 values.
            short_path_matches_whole(16, |lanes, short, whole| unsafe {
                let x = _mm512_loadu_ps(lanes.as_ptr());
                _mm512_storeu_ps(short.as_mut_ptr().cast(), exp16_inside(x));
                _mm512_storeu_ps(whole.as_mut_ptr().cast(), exp16_anywhere(x));
            });
        }
    }

    #[test]
    fn edges_follow_f32_exp() {
        let mut xs = [
            f32::NEG_INFINITY,
            -200.0,
            100.0,
            f32::INFINITY,
            f32::NAN,
            0.0,
            -0.0,
            89.0,
            -88.0,
        ];
        exp_in_place(&mut xs);
        assert_eq!(&xs[..4], &[0.0, 0.0, f32::INFINITY, f32::INFINITY]);
        assert!(xs[4].is_nan());
        assert_eq!((xs[5], xs[6], xs[7], xs[8]), (1.0, 1.0, f32::INFINITY, 0.0));
    }
}
