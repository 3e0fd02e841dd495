//! The per-channel modulation of a convolutional stage (§3, §8): the
//! factor exp(m·c_k − σ²c_k²/2 − β) of channel k in each row, applied to
//! the whole map of the channel.

use crate::net::linalg::Real;
use crate::net::simd::with_avx2;

/// The modulator of one forward pass (§3, §8): per row its m, the
/// coupling c (one per channel of the modulated stage), β, and the
/// variance σ² of the compensation (0 without it): the factor of channel
/// k in row b is exp(m_b·c_k − σ²·c_k²/2 − β).
#[derive(Clone, Copy, Debug)]
pub struct Modulator<'a, T> {
    /// m per row.
    pub m: &'a [T],
    /// Coupling c, `[channels]`.
    pub coupling: &'a [T],
    /// β.
    pub beta: T,
    /// σ² of the variance compensation, or 0.
    pub variance: T,
}

/// Per-(row, channel) factors exp(m_b·c_k − σ²c_k²/2 − β).
pub fn channel_factors<T: Real>(modulator: &Modulator<'_, T>, rows: usize, out: &mut Vec<T>) {
    let channels = modulator.coupling.len();
    assert_eq!(modulator.m.len(), rows, "one m per row");
    out.resize(rows * channels, T::ZERO);
    let half = T::from_f64(0.5);
    for (row, &m) in out.chunks_exact_mut(channels).zip(modulator.m) {
        for (o, &c) in row.iter_mut().zip(modulator.coupling) {
            *o = m * c - half * modulator.variance * c * c - modulator.beta;
        }
    }
    T::exp_in_place(out);
}

/// Multiplies every pixel's channel k of row b by `factors[b, k]`.
pub fn scale_channels<T: Real>(maps: &mut [T], factors: &[T], channels: usize) {
    let rows = factors.len() / channels;
    let per_row = maps.len() / rows.max(1);
    with_avx2(
        #[inline(always)]
        || {
            for (map, f) in maps
                .chunks_exact_mut(per_row)
                .zip(factors.chunks_exact(channels))
            {
                for pixel in map.chunks_exact_mut(channels) {
                    for (v, &fk) in pixel.iter_mut().zip(f) {
                        *v *= fk;
                    }
                }
            }
        },
    )
}

/// `out` = `maps` with every pixel's channel k of row b multiplied by
/// `factors[b, k]` (a single row of factors: the same for every row): a
/// copy and [`scale_channels`] in one pass, with the same products (one
/// row's factors repeated over whole vectors).
pub fn scaled_channels<T: Real>(maps: &[T], factors: &[T], channels: usize, out: &mut Vec<T>) {
    let rows = factors.len() / channels;
    let per_row = maps.len() / rows.max(1);
    out.resize(maps.len(), T::ZERO);
    with_avx2(
        #[inline(always)]
        || {
            let rows = (maps.chunks_exact(per_row))
                .zip(out.chunks_exact_mut(per_row))
                .zip(factors.chunks_exact(channels));
            for ((map, row), f) in rows {
                RowFactors::new(f).scale_pixels(row, map);
            }
        },
    )
}

/// One row's factors (one per channel) as [`RowFactors::scale_pixels`]
/// applies them: with a channel count that divides [`PERIOD`], also
/// repeated over [`PERIOD`] values, so that a run of whole pixels is a
/// flat loop of whole vectors. Made once per row, used for each run of
/// its pixels.
pub(crate) struct RowFactors<'a, T> {
    factors: &'a [T],
    repeated: Option<[T; PERIOD]>,
}

impl<'a, T: Real> RowFactors<'a, T> {
    /// The factors `f`, `[channels]`.
    pub(crate) fn new(f: &'a [T]) -> RowFactors<'a, T> {
        let channels = f.len();
        RowFactors {
            factors: f,
            repeated: PERIOD
                .is_multiple_of(channels)
                .then(|| std::array::from_fn(|i| f[i % channels])),
        }
    }

    /// `dst` = `src` (whole pixels) with every pixel's channel k
    /// multiplied by factor k. Inlined, so that it is vector code inside
    /// a caller's [`with_avx2`].
    #[inline(always)]
    pub(crate) fn scale_pixels(&self, dst: &mut [T], src: &[T]) {
        let (f, channels) = (self.factors, self.factors.len());
        let Some(repeated) = &self.repeated else {
            for (pixel, o) in src
                .chunks_exact(channels)
                .zip(dst.chunks_exact_mut(channels))
            {
                for ((o, &v), &fk) in o.iter_mut().zip(pixel).zip(f) {
                    *o = v * fk;
                }
            }
            return;
        };
        let mut blocks = dst.chunks_exact_mut(PERIOD);
        for (o, x) in (&mut blocks).zip(src.chunks_exact(PERIOD)) {
            for i in 0..PERIOD {
                o[i] = x[i] * repeated[i];
            }
        }
        let done = src.len() - blocks.into_remainder().len();
        // `done` is a multiple of PERIOD, so the pattern starts again.
        for ((o, &x), &fk) in dst[done..].iter_mut().zip(&src[done..]).zip(repeated) {
            *o = x * fk;
        }
    }
}

/// Values per block of [`RowFactors::scale_pixels`]' flat loop (two AVX-512
/// vectors of f32).
const PERIOD: usize = 32;
