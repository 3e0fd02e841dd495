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

use crate::conv::ops::maxpool_forward;
use crate::data::Shape;
use crate::net::linalg::{Mat, MatMut, gemm};
use crate::net::simd::{Isa, with_avx2};

/// The operands of one trial's mix (§3, §8).
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
/// the module's bits): a trial's per-sample stage (§3, §8).
pub fn mix_partials(isa: Isa, mix: &Mix<'_>, out: &mut [f32]) {
    mix.check(out);
    assert!(isa.supported(), "this CPU does not run {}", isa.name());
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: the CPU runs `isa` (asserted); sizes checked.
        match isa {
            Isa::Avx512 => return unsafe { avx512::mix(mix, out) },
            Isa::Avx2Fma => return unsafe { avx2::mix(mix, out) },
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

/// Samples mixed at once by the SIMD bodies: each partial loaded serves
/// as many multiply-adds (for `conv-mnist`'s trials, 52–53 ms against
/// 56.7–60.5 ms one sample at a time, `comod bench --only conv_trial_B256`).
#[cfg(target_arch = "x86_64")]
const SAMPLES: usize = 4;

/// A SIMD body of [`mix_partials`] in module `$name`: `$lanes` output
/// channels per `$vector`, up to `$vectors` (1 or 2) vectors of channels
/// per pass, so that each broadcast factor feeds as many multiply-adds;
/// the last vector's lanes masked by `$mask` (`$first` makes it from a
/// lane count, `$load` uses it) and stored by `$store` given the count.
/// Two vectors for the AVX2 body: `conv-mnist`'s 16 channels in one pass
/// took `conv_trial_B256` from 89.3–91.2 to 78.4–79.2 ms
/// (`COMOD_ISA=avx2 comod bench`, a Zen 4, alternating). The AVX2 store is
/// [`store_first8`](crate::net::simd::lanes::store_first8), not the masked
/// store (`vmaskmovps`, slow on a Zen 4): 74.5–74.7 against 78.0–78.4 ms.
#[cfg(target_arch = "x86_64")]
macro_rules! mix_body {
    ($name:ident, $features:literal, $lanes:literal, $vectors:literal, $vector:ty, $mask:ty,
     $first:path, $load:path, $store:path, $zero:path, $set1:path, $fma:path, $add:path,
     $max:path) => {
        mod $name {
            use std::arch::x86_64::*;

            use super::{Mix, SAMPLES};

            /// The body: each output pixel, its channels in passes of
            /// `$vectors` vectors while more than one vector's remain.
            ///
            /// # Safety
            /// The CPU must have the body's features; `mix.check(out)`
            /// must hold.
            #[target_feature(enable = $features)]
            pub(super) unsafe fn mix(mix: &Mix<'_>, out: &mut [f32]) {
                let c_out = mix.map.channels;
                let out_len = mix.out_shape().len();
                for pixel in 0..out_len / c_out {
                    let (window, count) = mix.window(pixel);
                    let window = &window[..count];
                    let mut block = 0;
                    while block < c_out {
                        // SAFETY: the contract, and `block` < c_out.
                        unsafe {
                            if $vectors == 2 && c_out - block > $lanes {
                                pass::<2>(mix, window, pixel, block, out);
                                block += 2 * $lanes;
                            } else {
                                pass::<1>(mix, window, pixel, block, out);
                                block += $lanes;
                            }
                        }
                    }
                }
            }

            /// Output pixel `pixel` (its stage pixels `window`), channels
            /// `block`.. in `V` vectors (the last one's lanes masked), of
            /// every sample: `SAMPLES` at a time, then one by one.
            ///
            /// # Safety
            /// The CPU must have the body's features; `mix.check(out)`
            /// must hold and `block` < C_out.
            #[target_feature(enable = $features)]
            #[inline]
            unsafe fn pass<const V: usize>(
                mix: &Mix<'_>,
                window: &[usize],
                pixel: usize,
                block: usize,
                out: &mut [f32],
            ) {
                let (c, c_out) = (mix.channels(), mix.map.channels);
                let out_len = mix.out_shape().len();
                let whole = mix.samples() / SAMPLES * SAMPLES;
                let lanes: [usize; V] =
                    std::array::from_fn(|v| (c_out - block).saturating_sub(v * $lanes).min($lanes));
                let masks: [$mask; V] = lanes.map(|count| $first(count));
                let out = out.as_mut_ptr();
                // SAFETY (the calls and the stores): the masked lanes are
                // channels block.. < c_out of pixels inside the map; the
                // samples' rows are inside `out` (`mix.check`).
                unsafe {
                    let at = |t: usize, v: usize| {
                        out.add(t * out_len + pixel * c_out + block + v * $lanes)
                    };
                    for t in (0..whole).step_by(SAMPLES) {
                        let f = &mix.factors[t * c..(t + SAMPLES) * c];
                        let v = samples::<SAMPLES, V>(mix, f, window, block, masks);
                        for (s, vectors) in v.into_iter().enumerate() {
                            for (j, (v, count)) in vectors.into_iter().zip(lanes).enumerate() {
                                $store(at(t + s, j), v, count);
                            }
                        }
                    }
                    for t in whole..mix.samples() {
                        let f = &mix.factors[t * c..(t + 1) * c];
                        let [vectors] = samples::<1, V>(mix, f, window, block, masks);
                        for (j, (v, count)) in vectors.into_iter().zip(lanes).enumerate() {
                            $store(at(t, j), v, count);
                        }
                    }
                }
            }

            /// The outputs of `S` samples (factors `f`, `[S, C]`) in `V`
            /// vectors from channel `block`, at the lanes of `masks`: the
            /// maximum over the stage's pixels `window` of ReLU(b + the
            /// chain).
            ///
            /// # Safety
            /// The CPU must have the body's features; the pixels and lanes
            /// inside the map.
            #[target_feature(enable = $features)]
            #[inline]
            unsafe fn samples<const S: usize, const V: usize>(
                mix: &Mix<'_>,
                f: &[f32],
                window: &[usize],
                block: usize,
                masks: [$mask; V],
            ) -> [[$vector; V]; S] {
                let (c, len, c_out) = (mix.channels(), mix.map.len(), mix.map.channels);
                assert_eq!(f.len(), S * c, "factors of S samples");
                let zero = $zero();
                let mut best = [[zero; V]; S];
                // SAFETY: the masked lanes are channels < c_out of pixels
                // inside the map, of channels k < c of the partials (the
                // caller's contract).
                unsafe {
                    let bias: [$vector; V] = std::array::from_fn(|v| {
                        $load(mix.bias.as_ptr().add(block + v * $lanes), masks[v])
                    });
                    for (w, &p) in window.iter().enumerate() {
                        let at = mix.partials.as_ptr().add(p * c_out + block);
                        let mut acc = [[zero; V]; S];
                        for k in 0..c {
                            let pk: [$vector; V] = std::array::from_fn(|v| {
                                $load(at.add(k * len + v * $lanes), masks[v])
                            });
                            for (s, acc) in acc.iter_mut().enumerate() {
                                let factor = $set1(f[s * c + k]);
                                for (acc, pk) in acc.iter_mut().zip(pk) {
                                    *acc = $fma(factor, pk, *acc);
                                }
                            }
                        }
                        for (best, acc) in best.iter_mut().zip(acc) {
                            for ((best, acc), bias) in best.iter_mut().zip(acc).zip(bias) {
                                let v = $max($add(bias, acc), zero);
                                *best = if w == 0 { v } else { $max(v, *best) };
                            }
                        }
                    }
                }
                best
            }
        }
    };
}

/// The masked lanes at `p`, zero elsewhere (the AVX-512F body's load).
///
/// # Safety
/// AVX-512F must be available and the masked lanes readable.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn load512(p: *const f32, mask: x86::__mmask16) -> x86::__m512 {
    // SAFETY: only the masked lanes are read (the contract).
    unsafe { x86::_mm512_maskz_loadu_ps(mask, p) }
}

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64 as x86;

/// The first `count` lanes of `v` at `p` (the AVX-512F body's store).
///
/// # Safety
/// AVX-512F must be available and `count.min(16)` floats at `p` writable.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn store512(p: *mut f32, v: x86::__m512, count: usize) {
    // SAFETY: only the first `count` lanes are written (the contract).
    unsafe { x86::_mm512_mask_storeu_ps(p, crate::net::simd::lanes::first16(count), v) }
}

#[cfg(target_arch = "x86_64")]
mix_body!(
    avx512,
    "avx512f",
    16,
    1,
    __m512,
    __mmask16,
    crate::net::simd::lanes::first16,
    super::load512,
    super::store512,
    _mm512_setzero_ps,
    _mm512_set1_ps,
    _mm512_fmadd_ps,
    _mm512_add_ps,
    _mm512_max_ps
);

#[cfg(target_arch = "x86_64")]
mix_body!(
    avx2,
    "avx2,fma",
    8,
    2,
    __m256,
    __m256i,
    crate::net::simd::lanes::first8,
    _mm256_maskload_ps,
    crate::net::simd::lanes::store_first8,
    _mm256_setzero_ps,
    _mm256_set1_ps,
    _mm256_fmadd_ps,
    _mm256_add_ps,
    _mm256_max_ps
);

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
    with_avx2(
        #[inline(always)]
        || {
            for v in rows.iter_mut() {
                *v = v.max(0.0);
            }
        },
    );
    if mix.pool {
        maxpool_forward(&rows, t_count, mix.map, out);
    } else {
        out.copy_from_slice(&rows);
    }
}
