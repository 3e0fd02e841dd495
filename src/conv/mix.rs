//! The per-sample mix of a convolutional trial (§3, §8): for each
//! modulator sample t, the scaling stage's output
//! ReLU(b + Σ_k f_tk·P_k) from its per-channel partials P_k, with the
//! 2×2 max-pool that follows it taken in the same pass. Neither T copies
//! of the bias nor the T maps before the pool are written: for
//! `conv-mnist` those are 2.5 MB per trial, more than L2 holds, and
//! writing them, mixing into them and pooling them had cost more than the
//! mix's multiply-adds.
//!
//! Each output is one chain: +0, one fused multiply-add per channel k in
//! order, then b + the chain, then the ReLU (max with +0, which also maps
//! NaN to 0), then the maximum over the pool's window. Those are the bits
//! of [`mix_partials_reference`], the bias rows mixed through
//! `matrixmultiply` (one chain per output from zero, fewer than 256 terms,
//! added to the output), the ReLU and [`maxpool_forward`], on every body:
//! after the ReLU no value is NaN or −0 (a chain from +0 never ends at
//! −0, nor does b + the chain), so the window's maximum has the same bits
//! in any order.

use crate::data::Shape;
use crate::net::linalg::{Mat, MatMut, gemm};
use crate::net::simd::{Isa, with_avx2};

use crate::conv::ops::maxpool_forward;

/// The operands of one trial's mix.
#[derive(Clone, Copy, Debug)]
pub struct Mix<'a> {
    /// f_tk, `[T, C]`: the samples' channel factors.
    pub factors: &'a [f32],
    /// P_k, `[C, H, W, C_out]`: the stage's output (no bias, no ReLU) for
    /// channel k of its input alone; a dense stage is a 1×1 map.
    pub partials: &'a [f32],
    /// b, `[C_out]`.
    pub bias: &'a [f32],
    /// The stage's output map (H, W, C_out).
    pub map: Shape,
    /// Whether a 2×2 max-pool follows (the output is then the pooled map).
    pub pool: bool,
}

impl Mix<'_> {
    /// C, the channels of the stage's input.
    fn channels(&self) -> usize {
        self.partials.len() / self.map.len()
    }

    /// T, the samples.
    fn samples(&self) -> usize {
        self.factors.len() / self.channels()
    }

    /// The map each sample's output fills.
    pub fn out_shape(&self) -> Shape {
        if self.pool {
            self.map.pooled()
        } else {
            self.map
        }
    }

    /// Panics unless the operands and `out` fit together.
    fn check(&self, out: &[f32]) {
        let len = self.map.len();
        assert!(len > 0, "an empty map");
        assert_eq!(self.partials.len() % len, 0, "partials [C, H, W, C_out]");
        assert!(self.channels() > 0, "no channel");
        assert_eq!(self.factors.len() % self.channels(), 0, "factors [T, C]");
        assert_eq!(
            self.bias.len(),
            self.map.channels,
            "one bias per output channel"
        );
        assert_eq!(
            out.len(),
            self.samples() * self.out_shape().len(),
            "output [T, map]"
        );
    }

    /// The stage's output pixels that output pixel `o` (row-major) takes
    /// the maximum of, in [`maxpool_forward`]'s order, and how many.
    fn window(&self, o: usize) -> ([usize; 4], usize) {
        let w = self.map.width;
        if !self.pool {
            return ([o, 0, 0, 0], 1);
        }
        let pooled_w = w / 2;
        let (y, x) = (2 * (o / pooled_w), 2 * (o % pooled_w));
        let at = |dy: usize, dx: usize| (y + dy) * w + x + dx;
        ([at(0, 0), at(0, 1), at(1, 0), at(1, 1)], 4)
    }
}

/// out (`[T, out_shape]`) ← for each sample t, ReLU(b + Σ_k f_tk·P_k),
/// 2×2 max-pooled when `mix.pool`, on the body of `isa` (every body gives
/// the module's bits).
pub fn mix_partials(isa: Isa, mix: &Mix<'_>, out: &mut [f32]) {
    mix.check(out);
    assert!(isa.supported(), "this CPU does not run {}", isa.name());
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: the CPU runs `isa` (asserted); sizes checked.
        match isa {
            Isa::Avx512 => return unsafe { x86::mix_avx512(mix, out) },
            Isa::Avx2Fma => return unsafe { x86::mix_avx2(mix, out) },
            Isa::Scalar => {}
        }
    }
    mix_scalar(mix, out);
}

/// The scalar body: [`f32::mul_add`] is the fused multiply-add (in
/// software where the CPU has none, with the same bits).
fn mix_scalar(mix: &Mix<'_>, out: &mut [f32]) {
    let (c, len, c_out) = (mix.channels(), mix.map.len(), mix.map.channels);
    let out_len = mix.out_shape().len();
    for o in 0..out_len / c_out {
        let (window, count) = mix.window(o);
        for j in 0..c_out {
            for (f, row) in mix
                .factors
                .chunks_exact(c)
                .zip(out.chunks_exact_mut(out_len))
            {
                let value = |p: usize| {
                    let chain = (f.iter().enumerate()).fold(0.0f32, |acc, (k, &fk)| {
                        fk.mul_add(mix.partials[k * len + p * c_out + j], acc)
                    });
                    (mix.bias[j] + chain).max(0.0)
                };
                row[o * c_out + j] = window[..count]
                    .iter()
                    .map(|&p| value(p))
                    .fold(0.0, f32::max);
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::Mix;
    use std::arch::x86_64::*;

    /// The AVX-512F body: 16 output channels per register, masked at the
    /// last block, four samples at a time.
    ///
    /// # Safety
    /// AVX-512F must be available; `mix.check(out)` must hold.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn mix_avx512(mix: &Mix<'_>, out: &mut [f32]) {
        let (c, c_out) = (mix.channels(), mix.map.channels);
        let out_len = mix.out_shape().len();
        let whole = mix.samples() / SAMPLES * SAMPLES;
        let out = out.as_mut_ptr();
        for pixel in 0..out_len / c_out {
            let (window, count) = mix.window(pixel);
            let window = &window[..count];
            for block in (0..c_out).step_by(16) {
                let mask = (u32::MAX >> (32 - (c_out - block).min(16))) as __mmask16;
                // SAFETY (the calls and the stores): the masked lanes are
                // channels block.. < c_out of pixels inside the map; the
                // samples' rows are inside `out` (`mix.check`).
                unsafe {
                    let at = |t: usize| out.add(t * out_len + pixel * c_out + block);
                    for t in (0..whole).step_by(SAMPLES) {
                        let f = &mix.factors[t * c..(t + SAMPLES) * c];
                        let v = samples512::<SAMPLES>(mix, f, window, block, mask);
                        for (s, v) in v.into_iter().enumerate() {
                            _mm512_mask_storeu_ps(at(t + s), mask, v);
                        }
                    }
                    for t in whole..mix.samples() {
                        let f = &mix.factors[t * c..(t + 1) * c];
                        let [v] = samples512::<1>(mix, f, window, block, mask);
                        _mm512_mask_storeu_ps(at(t), mask, v);
                    }
                }
            }
        }
    }

    /// Samples mixed at once by [`mix_avx512`]: each partial loaded serves
    /// as many multiply-adds.
    const SAMPLES: usize = 4;

    /// The outputs of `S` samples (factors `f`, `[S, C]`) at the lanes of
    /// `mask` from channel `block`, the maximum over the stage's pixels
    /// `window`.
    ///
    /// # Safety
    /// AVX-512F must be available; the pixels and lanes inside the map.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn samples512<const S: usize>(
        mix: &Mix<'_>,
        f: &[f32],
        window: &[usize],
        block: usize,
        mask: __mmask16,
    ) -> [__m512; S] {
        let (c, len, c_out) = (mix.channels(), mix.map.len(), mix.map.channels);
        assert_eq!(f.len(), S * c, "factors of S samples");
        let zero = _mm512_setzero_ps();
        let mut best = [zero; S];
        // SAFETY: the masked lanes are channels < c_out of pixels inside
        // the map, of channels k < c of the partials (the caller's contract).
        unsafe {
            let bias = _mm512_maskz_loadu_ps(mask, mix.bias.as_ptr().add(block));
            for (w, &p) in window.iter().enumerate() {
                let at = mix.partials.as_ptr().add(p * c_out + block);
                let mut acc = [zero; S];
                for k in 0..c {
                    let pk = _mm512_maskz_loadu_ps(mask, at.add(k * len));
                    for (s, acc) in acc.iter_mut().enumerate() {
                        *acc = _mm512_fmadd_ps(_mm512_set1_ps(f[s * c + k]), pk, *acc);
                    }
                }
                for (best, acc) in best.iter_mut().zip(acc) {
                    let v = _mm512_max_ps(_mm512_add_ps(bias, acc), zero);
                    *best = if w == 0 { v } else { _mm512_max_ps(v, *best) };
                }
            }
        }
        best
    }

    /// The AVX2+FMA body: 8 output channels per register, masked at the
    /// last block, four samples at a time.
    ///
    /// # Safety
    /// AVX2 and FMA must be available; `mix.check(out)` must hold.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn mix_avx2(mix: &Mix<'_>, out: &mut [f32]) {
        let (c, c_out) = (mix.channels(), mix.map.channels);
        let out_len = mix.out_shape().len();
        let whole = mix.samples() / SAMPLES * SAMPLES;
        let out = out.as_mut_ptr();
        for pixel in 0..out_len / c_out {
            let (window, count) = mix.window(pixel);
            let window = &window[..count];
            for block in (0..c_out).step_by(8) {
                let valid = _mm256_set1_epi32((c_out - block).min(8) as i32);
                let mask = _mm256_cmpgt_epi32(valid, _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
                // SAFETY: as in `mix_avx512`, for 8 lanes.
                unsafe {
                    let at = |t: usize| out.add(t * out_len + pixel * c_out + block);
                    for t in (0..whole).step_by(SAMPLES) {
                        let f = &mix.factors[t * c..(t + SAMPLES) * c];
                        let v = samples_avx2::<SAMPLES>(mix, f, window, block, mask);
                        for (s, v) in v.into_iter().enumerate() {
                            _mm256_maskstore_ps(at(t + s), mask, v);
                        }
                    }
                    for t in whole..mix.samples() {
                        let f = &mix.factors[t * c..(t + 1) * c];
                        let [v] = samples_avx2::<1>(mix, f, window, block, mask);
                        _mm256_maskstore_ps(at(t), mask, v);
                    }
                }
            }
        }
    }

    /// [`samples512`] on 8 lanes.
    ///
    /// # Safety
    /// AVX2 and FMA must be available; the pixels and lanes inside the map.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn samples_avx2<const S: usize>(
        mix: &Mix<'_>,
        f: &[f32],
        window: &[usize],
        block: usize,
        mask: __m256i,
    ) -> [__m256; S] {
        let (c, len, c_out) = (mix.channels(), mix.map.len(), mix.map.channels);
        assert_eq!(f.len(), S * c, "factors of S samples");
        let zero = _mm256_setzero_ps();
        let mut best = [zero; S];
        // SAFETY: as in `samples512`, for 8 lanes.
        unsafe {
            let bias = _mm256_maskload_ps(mix.bias.as_ptr().add(block), mask);
            for (w, &p) in window.iter().enumerate() {
                let at = mix.partials.as_ptr().add(p * c_out + block);
                let mut acc = [zero; S];
                for k in 0..c {
                    let pk = _mm256_maskload_ps(at.add(k * len), mask);
                    for (s, acc) in acc.iter_mut().enumerate() {
                        *acc = _mm256_fmadd_ps(_mm256_set1_ps(f[s * c + k]), pk, *acc);
                    }
                }
                for (best, acc) in best.iter_mut().zip(acc) {
                    let v = _mm256_max_ps(_mm256_add_ps(bias, acc), zero);
                    *best = if w == 0 { v } else { _mm256_max_ps(v, *best) };
                }
            }
        }
        best
    }
}

/// The reference of [`mix_partials`], the computation it replaces: T rows
/// of the bias, plus the factors times the partials through
/// `matrixmultiply`, the ReLU, then the max-pool when one follows.
pub fn mix_partials_reference(mix: &Mix<'_>, out: &mut [f32]) {
    mix.check(out);
    let (c, t_count, len) = (mix.channels(), mix.samples(), mix.map.len());
    let mut rows: Vec<f32> = (0..t_count * len / mix.bias.len())
        .flat_map(|_| mix.bias.iter().copied())
        .collect();
    gemm(
        Mat::row_major(mix.factors, t_count, c),
        Mat::row_major(mix.partials, c, len),
        true,
        MatMut::row_major(&mut rows, t_count, len),
    );
    with_avx2(|| rows.iter_mut().for_each(|v| *v = v.max(0.0)));
    if mix.pool {
        maxpool_forward(&rows, t_count, mix.map, out);
    } else {
        out.copy_from_slice(&rows);
    }
}
