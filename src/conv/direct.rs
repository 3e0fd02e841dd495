//! The direct convolution kernel (§8): k×k, stride 1, zero padding k/2,
//! bias and ReLU, on channel-last f32 maps, with AVX-512F, AVX2+FMA and
//! scalar bodies that give the same bits.
//!
//! The input is first copied into a zero-bordered map, so that every tap
//! is in bounds. A tile holds up to [`PIXELS_512`] (or [`PIXELS_256`])
//! adjacent output pixels × one vector of output channels in registers:
//! per tap and input channel it loads one weight vector and broadcasts
//! each pixel's input value into a fused multiply-add. Each output is
//! the bias, then one FMA per (dy, dx, c_in) in that order: the zero
//! border adds exact zeros, so the result does not depend on the body or
//! the tile shape. im2col + GEMM ([`super::ops`]) is measured against it
//! in `comod bench` and stays for the backward pass and f64.

use rayon::prelude::*;

use crate::data::Shape;
use crate::net::linalg::products_serial;
use crate::net::simd::Isa;

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// Output pixels per AVX-512 tile.
pub const PIXELS_512: usize = 14;
/// Output pixels per AVX2 tile.
pub const PIXELS_256: usize = 12;
/// Output channels are padded to a multiple of this in [`ConvWeights`].
const CHANNEL_PAD: usize = 8;

/// A conv stage's weights laid out for the kernel: `[k·k·C_in, C_out']`
/// with C_out' the channels padded to a multiple of 8 (zeros), and the
/// padded bias.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ConvWeights {
    kernel: usize,
    c_in: usize,
    c_out: usize,
    stride: usize,
    weights: Vec<f32>,
    bias: Vec<f32>,
    /// ReLU on the outputs (a conv stage); off for a linear partial.
    relu: bool,
}

impl ConvWeights {
    /// Rearranges `weights` (`[C_out, k, k, C_in]`) and `bias`.
    pub fn new(weights: &[f32], bias: &[f32], kernel: usize, c_in: usize) -> ConvWeights {
        let mut packed = ConvWeights::default();
        packed.repack(weights, bias, kernel, c_in);
        packed
    }

    /// [`ConvWeights::new`] into this value's buffers.
    pub fn repack(&mut self, weights: &[f32], bias: &[f32], kernel: usize, c_in: usize) {
        self.fill(weights, bias.len(), kernel, c_in);
        self.bias[..bias.len()].copy_from_slice(bias);
        self.relu = true;
    }

    /// The linear map of `weights` (`[c_out, k, k, C_in]`): no bias, no
    /// ReLU (a per-channel partial, an input gradient), into this value's
    /// buffers.
    pub fn repack_linear(&mut self, weights: &[f32], c_out: usize, kernel: usize, c_in: usize) {
        self.fill(weights, c_out, kernel, c_in);
        self.relu = false;
    }

    /// Lays out `weights` and zeroes the padded bias.
    fn fill(&mut self, weights: &[f32], c_out: usize, kernel: usize, c_in: usize) {
        let taps = kernel * kernel * c_in;
        assert_eq!(
            weights.len(),
            c_out * taps,
            "conv weights [C_out, k, k, C_in]"
        );
        let stride = c_out.next_multiple_of(CHANNEL_PAD);
        self.weights.clear();
        self.weights.resize(taps * stride, 0.0);
        for (o, row) in weights.chunks_exact(taps).enumerate() {
            for (t, &w) in row.iter().enumerate() {
                self.weights[t * stride + o] = w;
            }
        }
        self.bias.clear();
        self.bias.resize(stride, 0.0);
        (self.kernel, self.c_in, self.c_out, self.stride) = (kernel, c_in, c_out, stride);
    }
}

/// Copies `x` (`[B, H, W, C]`) into `padded` with a zero border of k/2.
pub fn pad_input(x: &[f32], batch: usize, shape: Shape, kernel: usize, padded: &mut Vec<f32>) {
    let pad = kernel / 2;
    let (h, w, c) = (shape.height, shape.width, shape.channels);
    let (hp, wp) = (h + 2 * pad, w + 2 * pad);
    padded.clear();
    padded.resize(batch * hp * wp * c, 0.0);
    for b in 0..batch {
        for y in 0..h {
            let src = &x[((b * h + y) * w) * c..((b * h + y) * w + w) * c];
            let at = ((b * hp + y + pad) * wp + pad) * c;
            padded[at..at + w * c].copy_from_slice(src);
        }
    }
}

/// `out` (`[B, H, W, C_out]`) = ReLU(conv(x) + b) from the padded input
/// ([`pad_input`]), with the body of `isa`.
pub fn conv_relu(
    isa: Isa,
    padded: &[f32],
    batch: usize,
    shape: Shape,
    weights: &ConvWeights,
    out: &mut [f32],
) {
    let (h, w) = (shape.height, shape.width);
    let k = weights.kernel;
    assert!(isa.supported(), "{} does not run on this CPU", isa.name());
    assert_eq!(shape.channels, weights.c_in, "input channels");
    assert_eq!(
        padded.len(),
        batch * (h + k - 1) * (w + k - 1) * weights.c_in,
        "padded input size"
    );
    assert_eq!(out.len(), batch * h * w * weights.c_out, "output size");
    let rows = Rows {
        padded,
        shape,
        weights,
    };
    let row_len = w * weights.c_out;
    let run = |(i, out_row): (usize, &mut [f32])| {
        let (b, y) = (i / h, i % h);
        match isa {
            // SAFETY: the CPU runs the instruction set `isa` names
            // (`Isa::selected` or a test's `Isa::available`).
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => unsafe { rows.avx512(b, y, out_row) },
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2Fma => unsafe { rows.avx2(b, y, out_row) },
            _ => rows.scalar(b, y, out_row),
        }
    };
    // Each output row is computed alone, so splitting the rows over
    // threads changes no bit (§6).
    if products_serial()
        || rayon::current_num_threads() == 1
        || batch * h * row_len * weights.kernel * weights.kernel * weights.c_in < PARALLEL_MIN_MACS
    {
        out.chunks_exact_mut(row_len.max(1))
            .enumerate()
            .for_each(run);
    } else {
        out.par_chunks_exact_mut(row_len.max(1))
            .enumerate()
            .for_each(run);
    }
}

/// The input gradient of a conv stage by the same kernel (§8): with stride
/// 1 and padding k/2, dx is the convolution of the output gradient `dy`
/// (`[B, H, W, C_out]`) with the weights rotated by 180° and their channels
/// swapped, no bias, no ReLU. `weights` are the stage's (`[C_out, k, k,
/// C_in]`); `packed` and `padded` are reused buffers; `dx` is overwritten.
#[allow(clippy::too_many_arguments)]
pub fn conv_input_grad(
    isa: Isa,
    dy: &[f32],
    batch: usize,
    shape: Shape,
    weights: &[f32],
    kernel: usize,
    c_out: usize,
    (packed, padded): (&mut ConvWeights, &mut Vec<f32>),
    dx: &mut [f32],
) {
    let c_in = shape.channels;
    let taps = kernel * kernel;
    let mut rotated = vec![0.0f32; weights.len()];
    for o in 0..c_out {
        for t in 0..taps {
            for i in 0..c_in {
                rotated[(i * taps + (taps - 1 - t)) * c_out + o] =
                    weights[(o * taps + t) * c_in + i];
            }
        }
    }
    packed.repack_linear(&rotated, c_in, kernel, c_out);
    let out_shape = Shape {
        channels: c_out,
        ..shape
    };
    pad_input(dy, batch, out_shape, kernel, padded);
    conv_relu(isa, padded, batch, out_shape, packed, dx);
}

/// Multiply-adds below which a convolution stays on the calling thread.
const PARALLEL_MIN_MACS: usize = 1 << 20;

/// One output row's operands.
struct Rows<'a> {
    padded: &'a [f32],
    shape: Shape,
    weights: &'a ConvWeights,
}

impl Rows<'_> {
    /// Index in the padded input of pixel (b, y + dy, x + dx), channel 0.
    fn input_at(&self, b: usize, y: usize, x: usize) -> usize {
        let k = self.weights.kernel;
        let (hp, wp) = (self.shape.height + k - 1, self.shape.width + k - 1);
        ((b * hp + y) * wp + x) * self.weights.c_in
    }

    /// The scalar body: the same FMA chain per output as the SIMD bodies.
    fn scalar(&self, b: usize, y: usize, out: &mut [f32]) {
        let wt = self.weights;
        let (k, c_in, c_out) = (wt.kernel, wt.c_in, wt.c_out);
        for x in 0..self.shape.width {
            for o in 0..c_out {
                let mut acc = wt.bias[o];
                for dy in 0..k {
                    for dx in 0..k {
                        let at = self.input_at(b, y + dy, x + dx);
                        for ci in 0..c_in {
                            let wv = wt.weights[((dy * k + dx) * c_in + ci) * wt.stride + o];
                            acc = self.padded[at + ci].mul_add(wv, acc);
                        }
                    }
                }
                out[x * c_out + o] = if wt.relu { acc.max(0.0) } else { acc };
            }
        }
    }

    /// # Safety
    /// AVX-512F must be available.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx2,fma")]
    unsafe fn avx512(&self, b: usize, y: usize, out: &mut [f32]) {
        let w = self.shape.width;
        let mut x0 = 0;
        while x0 < w {
            let p = PIXELS_512.min(w - x0);
            let mut block = 0;
            while block < self.weights.c_out {
                let lanes = self.weights.c_out - block;
                // SAFETY: AVX-512F is available; the tile stays in bounds
                // (asserted by `conv_relu`, lanes past C_out masked).
                unsafe {
                    if lanes > 8 {
                        dispatch!(p, PIXELS_512, tile512, self, b, y, x0, block, out);
                        block += 16;
                    } else {
                        dispatch!(p, PIXELS_512, tile256, self, b, y, x0, block, out);
                        block += 8;
                    }
                }
            }
            x0 += p;
        }
    }

    /// # Safety
    /// AVX2 and FMA must be available.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn avx2(&self, b: usize, y: usize, out: &mut [f32]) {
        let w = self.shape.width;
        let mut x0 = 0;
        while x0 < w {
            let p = PIXELS_256.min(w - x0);
            let mut block = 0;
            while block < self.weights.c_out {
                // SAFETY: AVX2+FMA are available; in bounds as above.
                unsafe { dispatch!(p, PIXELS_256, tile256, self, b, y, x0, block, out) };
                block += 8;
            }
            x0 += p;
        }
    }
}

/// Calls `$tile::<P>` for the run-time pixel count `$p` (1..=`$max`).
macro_rules! dispatch {
    ($p:expr, $max:expr, $tile:ident, $($arg:expr),*) => {
        match $p {
            1 => $tile::<1>($($arg),*),
            2 => $tile::<2>($($arg),*),
            3 => $tile::<3>($($arg),*),
            4 => $tile::<4>($($arg),*),
            5 => $tile::<5>($($arg),*),
            6 => $tile::<6>($($arg),*),
            7 => $tile::<7>($($arg),*),
            8 => $tile::<8>($($arg),*),
            9 => $tile::<9>($($arg),*),
            10 => $tile::<10>($($arg),*),
            11 => $tile::<11>($($arg),*),
            12 => $tile::<12>($($arg),*),
            13 if $max >= 13 => $tile::<13>($($arg),*),
            14 if $max >= 14 => $tile::<14>($($arg),*),
            _ => unreachable!("at most {} pixels per tile", $max),
        }
    };
}
use dispatch;

/// P pixels × 16 output channels from `block`.
///
/// # Safety
/// AVX-512F must be available; pixels x0..x0+P of row y and the padded
/// input they read must be in bounds.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn tile512<const P: usize>(
    rows: &Rows<'_>,
    b: usize,
    y: usize,
    x0: usize,
    block: usize,
    out: &mut [f32],
) {
    let wt = rows.weights;
    let (k, c_in, c_out) = (wt.kernel, wt.c_in, wt.c_out);
    // SAFETY: in bounds by the caller's contract.
    unsafe {
        let mut acc = [_mm512_loadu_ps(wt.bias.as_ptr().add(block)); P];
        for dy in 0..k {
            for dx in 0..k {
                let input = rows.padded.as_ptr().add(rows.input_at(b, y + dy, x0 + dx));
                let weights = wt
                    .weights
                    .as_ptr()
                    .add((dy * k + dx) * c_in * wt.stride + block);
                for ci in 0..c_in {
                    let wv = _mm512_loadu_ps(weights.add(ci * wt.stride));
                    for (j, acc) in acc.iter_mut().enumerate() {
                        *acc = _mm512_fmadd_ps(_mm512_set1_ps(*input.add(j * c_in + ci)), wv, *acc);
                    }
                }
            }
        }
        let mask: __mmask16 = if c_out - block >= 16 {
            0xffff
        } else {
            (1u16 << (c_out - block)) - 1
        };
        let zero = _mm512_setzero_ps();
        for (j, acc) in acc.iter().enumerate() {
            _mm512_mask_storeu_ps(
                out.as_mut_ptr().add((x0 + j) * c_out + block),
                mask,
                if wt.relu {
                    _mm512_max_ps(*acc, zero)
                } else {
                    *acc
                },
            );
        }
    }
}

/// P pixels × 8 output channels from `block`.
///
/// # Safety
/// AVX2 and FMA must be available; in bounds as [`tile512`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn tile256<const P: usize>(
    rows: &Rows<'_>,
    b: usize,
    y: usize,
    x0: usize,
    block: usize,
    out: &mut [f32],
) {
    let wt = rows.weights;
    let (k, c_in, c_out) = (wt.kernel, wt.c_in, wt.c_out);
    // SAFETY: in bounds by the caller's contract.
    unsafe {
        let mut acc = [_mm256_loadu_ps(wt.bias.as_ptr().add(block)); P];
        for dy in 0..k {
            for dx in 0..k {
                let input = rows.padded.as_ptr().add(rows.input_at(b, y + dy, x0 + dx));
                let weights = wt
                    .weights
                    .as_ptr()
                    .add((dy * k + dx) * c_in * wt.stride + block);
                for ci in 0..c_in {
                    let wv = _mm256_loadu_ps(weights.add(ci * wt.stride));
                    for (j, acc) in acc.iter_mut().enumerate() {
                        *acc = _mm256_fmadd_ps(
                            _mm256_broadcast_ss(&*input.add(j * c_in + ci)),
                            wv,
                            *acc,
                        );
                    }
                }
            }
        }
        let lanes = (c_out - block).min(8) as i32;
        let mask = _mm256_cmpgt_epi32(
            _mm256_set1_epi32(lanes),
            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
        );
        let zero = _mm256_setzero_ps();
        for (j, acc) in acc.iter().enumerate() {
            _mm256_maskstore_ps(
                out.as_mut_ptr().add((x0 + j) * c_out + block),
                mask,
                if wt.relu {
                    _mm256_max_ps(*acc, zero)
                } else {
                    *acc
                },
            );
        }
    }
}
