//! The direct convolution kernel (§8): k×k, stride 1, zero padding k/2,
//! bias and ReLU, on channel-last f32 maps, with AVX-512F, AVX2+FMA and
//! scalar bodies that give the same bits.
//!
//! The input is first copied into a zero-bordered map, so that every tap
//! is in bounds. A tile holds up to [`PIXELS_512`] (or [`PIXELS_256`])
//! adjacent output pixels × one vector of output channels in registers:
//! per tap and input channel it loads one weight vector and broadcasts
//! each pixel's input value into a fused multiply-add. Where more than 8
//! output channels remain, an AVX2 tile holds 6 pixels × two vectors of
//! channels, each broadcast feeding two multiply-adds (`tile256_wide`).
//! With at most 8 output channels, an AVX-512 tile holds pairs of pixels
//! instead (`pair512`): with one input channel straight from the bordered
//! map, and for the input gradient of a stage with at most 8 input
//! channels from a copy of each image laid out in pairs
//! (`pair_up_image`). Each output is the bias, then one FMA per (dy, dx,
//! c_in) in that order: the zero border adds exact zeros, so the result
//! does not depend on the body or the tile shape. The bodies test
//! what they store for infinities and NaNs, so that the fault checks of
//! §6 need not read a map again. im2col + GEMM ([`super::ops`]) is
//! measured against it in `comod bench` and stays for f64 networks and
//! the scalar body's weight gradient.

use rayon::prelude::*;

use crate::conv::ops::maxpool_row;
use crate::data::Shape;
use crate::net::linalg::{stays_on_this_thread, whole_if};
use crate::net::simd::{Isa, with_avx2};

#[cfg(target_arch = "x86_64")]
use crate::net::simd::lanes::{first8, first16, store_first8};
#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// Output pixels per AVX-512 tile.
pub const PIXELS_512: usize = 14;
/// Output pixels per AVX2 tile.
pub const PIXELS_256: usize = 12;
/// Output pixels per AVX2 tile of 16 channels ([`tile256_wide`]): 12
/// accumulators, two weight vectors and a broadcast in the 16 registers.
const PIXELS_256_WIDE: usize = 6;
const _: () = assert!(PIXELS_256_WIDE == 6, "pixels! lists 1..=6 for it");

/// Most pixels per [`tile256_wide`] for `c_in` input channels:
/// [`PIXELS_256_WIDE`], except 5 for 8 channels. The compiler builds the
/// 6-pixel tile of 8 input channels (its channel loop unrolled) with an
/// accumulator and a weight vector on the stack, a store and a reload in
/// every step of a chain; the tiles of 3, 16 or 32 channels keep theirs in
/// registers. Only rows whose tiles would hold 6 pixels change (12, 18 or
/// 24 wide; a 14-pixel row is 5 + 5 + 4 either way), and every output's
/// chain is the same, so the same bits. `cargo bench --bench throughput
/// -- conv_widths` (one thread of an AMD EPYC Zen 3, FMA peak 91.7–93.4
/// GFLOP/s in the same runs): 12-pixel maps from 37.2 to 57.9 GFLOP/s,
/// 18 from 40.0 to 73.3, 24 from 41.3 to 73.2; 14 (unchanged tiles) 67.1
/// and 67.9.
fn wide_tile_pixels(c_in: usize) -> usize {
    if c_in == 8 {
        PIXELS_256_WIDE - 1
    } else {
        PIXELS_256_WIDE
    }
}
/// Pairs of pixels per AVX-512 pooled tile ([`pooled512`]): two rows of
/// 14 pixels, 28 accumulators of the 32 vector registers.
const PAIRS_512: usize = 7;
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
    /// The weights and bias of the channels of [`ConvWeights::pair_block`]
    /// (8 per tap and input channel, then the bias), each value twice in
    /// a row for [`pair512`]'s lanes (2o + q: channel o of the pair's
    /// pixel q); empty when no block runs on pairs.
    paired_weights: Vec<f32>,
    paired_bias: Vec<f32>,
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
        self.repack_scaled(weights, bias, kernel, c_in, None);
    }

    /// [`ConvWeights::repack`] with, given `input_scale` (one factor per
    /// input channel), every weight of input channel c multiplied by
    /// `input_scale[c]` (each product rounded once), the bias as it is:
    /// the stage's weights for an input whose channels are scaled, so
    /// that the scaled input need not be formed pixel by pixel (the
    /// modulated network's evaluation, §8, as §4's folds its factor into
    /// layer ℓ+1).
    pub fn repack_scaled(
        &mut self,
        weights: &[f32],
        bias: &[f32],
        kernel: usize,
        c_in: usize,
        input_scale: Option<&[f32]>,
    ) {
        self.fill(weights, bias.len(), kernel, c_in);
        if let Some(factor) = input_scale {
            assert_eq!(factor.len(), c_in, "one factor per input channel");
            // Tap row t reads input channel t mod C_in.
            let rows = self.weights.chunks_exact_mut(self.stride);
            for (row, &f) in rows.zip(factor.iter().cycle()) {
                row.iter_mut().for_each(|w| *w *= f);
            }
        }
        self.bias[..bias.len()].copy_from_slice(bias);
        self.relu = true;
        self.pair_up();
    }

    /// The linear map of `weights` (`[c_out, k, k, C_in]`): no bias, no
    /// ReLU (a per-channel partial, an input gradient), into this value's
    /// buffers.
    pub fn repack_linear(&mut self, weights: &[f32], c_out: usize, kernel: usize, c_in: usize) {
        self.fill(weights, c_out, kernel, c_in);
        self.relu = false;
        self.pair_up();
    }

    /// The first channel of the last block of output channels, when the
    /// AVX-512 body runs it on pixel pairs: blocks of 16 channels cover
    /// the outputs until at most 8 are left.
    fn pair_block(&self) -> Option<usize> {
        let block = self.c_out.saturating_sub(1) / 16 * 16;
        (self.c_out - block <= 8).then_some(block)
    }

    /// Fills the paired copies of the pair block's weights and bias.
    fn pair_up(&mut self) {
        self.paired_weights.clear();
        self.paired_bias.clear();
        let Some(block) = self.pair_block() else {
            return;
        };
        let twice = |from: &[f32], to: &mut Vec<f32>| {
            to.extend(from[block..block + 8].iter().flat_map(|&v| [v, v]));
        };
        for row in self.weights.chunks_exact(self.stride) {
            twice(row, &mut self.paired_weights);
        }
        twice(&self.bias, &mut self.paired_bias);
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
    let bordered = shape.bordered(pad);
    assert_eq!(x.len(), batch * shape.len(), "input maps [B, H, W, C]");
    // Every value is written below (border zeros, interior copied), so a
    // reused buffer is not cleared first.
    padded.resize(batch * bordered.len(), 0.0);
    let (row, side) = (bordered.width * c, pad * c);
    let one_map = |(map, src): (&mut [f32], &[f32])| {
        let (top, rest) = map.split_at_mut(pad * row);
        let (inner, bottom) = rest.split_at_mut(h * row);
        zero_short(top);
        zero_short(bottom);
        let lines = inner
            .chunks_exact_mut(row)
            .zip(src.chunks_exact((w * c).max(1)));
        for (line, src) in lines {
            copy_short(interior(line, side), src);
        }
    };
    let (map_len, src_len) = (bordered.len().max(1), shape.len().max(1));
    // Large batches are split over maps (pure copies: no bit depends on
    // the thread count, §6).
    let whole = stays_on_this_thread() || padded.len() < PARALLEL_MIN_COPY;
    let maps = padded.par_chunks_exact_mut(map_len);
    maps.zip(x.par_chunks_exact(src_len))
        .with_min_len(whole_if(whole))
        .for_each(one_map);
}

/// The interior of a bordered map's line, its `side` values at each end
/// zeroed.
#[inline(always)]
fn interior(line: &mut [f32], side: usize) -> &mut [f32] {
    let end = line.len() - side;
    zero_short(&mut line[..side]);
    zero_short(&mut line[end..]);
    &mut line[side..end]
}

/// Values of a bordered batch below which [`pad_input`] stays on the
/// calling thread.
const PARALLEL_MIN_COPY: usize = 1 << 17;

/// `dst` ← `src` for the short rows of a map: whole groups of 8 values
/// as fixed-size moves, inlined (a call to `memcpy` for each row of a
/// 14-pixel map cost as much as the copy).
fn copy_short(dst: &mut [f32], src: &[f32]) {
    let (mut to, mut from) = (dst.chunks_exact_mut(8), src.chunks_exact(8));
    for (to, from) in (&mut to).zip(&mut from) {
        let (to, from): (&mut [f32; 8], &[f32; 8]) = (
            to.try_into().expect("8 values"),
            from.try_into().expect("8 values"),
        );
        *to = *from;
    }
    to.into_remainder().copy_from_slice(from.remainder());
}

/// `dst` ← 0, as [`copy_short`] copies.
fn zero_short(dst: &mut [f32]) {
    let mut to = dst.chunks_exact_mut(8);
    for to in &mut to {
        let to: &mut [f32; 8] = to.try_into().expect("8 values");
        *to = [0.0; 8];
    }
    to.into_remainder().fill(0.0);
}

/// `out` (`[B, H, W, C_out]`) = ReLU(conv(x) + b) from the padded input
/// ([`pad_input`]), with the body of `isa`. Returns whether every output
/// written is finite: the bodies test their outputs as they store them,
/// so the fault checks of §6 need not read the map again.
pub fn conv_relu(
    isa: Isa,
    padded: &[f32],
    batch: usize,
    shape: Shape,
    weights: &ConvWeights,
    out: &mut [f32],
) -> bool {
    let (h, w) = (shape.height, shape.width);
    assert_eq!(out.len(), batch * h * w * weights.c_out, "output size");
    let rows = Rows::checked(isa, padded, batch, shape, weights);
    let row_len = w * weights.c_out;
    let run = |(i, out_row): (usize, &mut [f32])| rows.row(isa, i / h, i % h, out_row);
    // Each output row is computed alone, so splitting the rows over
    // threads changes no bit (§6).
    // Every row runs: the flags are and-ed, never short-circuited.
    if rows.serial(batch) {
        out.chunks_exact_mut(row_len.max(1))
            .enumerate()
            .map(run)
            .fold(true, |a, b| a & b)
    } else {
        out.par_chunks_exact_mut(row_len.max(1))
            .enumerate()
            .map(run)
            .reduce(|| true, |a, b| a & b)
    }
}

/// [`conv_relu`] of the unbordered maps `x` on the AVX-512 body, for at
/// most 8 output channels and more than one input channel (the input
/// gradient of a stage with at most 8 input channels): image by image,
/// the map is laid out bordered and in pairs of adjacent pixels
/// ([`pair_up_image`]), so that [`pair512`] fills the 16 lanes, two
/// output rows to a tile (a last odd row alone). Every output's chain is
/// the other bodies'. Whether every output is finite.
///
/// # Safety
/// AVX-512F must be available.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn conv_relu_paired(
    x: &[f32],
    batch: usize,
    shape: Shape,
    weights: &ConvWeights,
    out: &mut [f32],
) -> bool {
    let (h, w, c_out) = (shape.height, shape.width, weights.c_out);
    assert!(
        weights.pair_block() == Some(0) && weights.c_in > 1 && weights.c_in == shape.channels,
        "paired conv shapes"
    );
    assert_eq!(x.len(), batch * shape.len(), "input maps [B, H, W, C]");
    assert_eq!(out.len(), batch * h * w * c_out, "output size");
    let (image_len, row_len) = ((h * w * c_out).max(1), (w * c_out).max(1));
    let run = |pairs: &mut Vec<f32>, (b, image): (usize, &mut [f32])| {
        // SAFETY: AVX-512F is available (the caller's contract); every
        // tile reads pairs of the image's bordered rows (one pair past
        // the map's last pixel) and writes its own pixels of `image`.
        unsafe {
            let source = pair_up_image(
                &x[b * shape.len()..][..shape.len()],
                shape,
                weights.kernel,
                pairs,
            );
            let (mut finite, c_in) = (true, shape.channels);
            // The tiles of `$rows`, $r whole output rows from `$y`.
            macro_rules! row_tiles {
                ($r:literal, $y:expr, $rows:expr) => {
                    for (pair, p) in tiles(w.div_ceil(2), PIXELS_512) {
                        finite &= pair_dispatch!(
                            pair512[$r],
                            c_in,
                            p,
                            weights,
                            &source,
                            0,
                            $y,
                            2 * pair,
                            0,
                            $rows
                        );
                    }
                };
            }
            let mut two_rows = image.chunks_exact_mut(2 * row_len);
            for (i, rows) in (&mut two_rows).enumerate() {
                row_tiles!(2, 2 * i, rows);
            }
            let last = two_rows.into_remainder();
            if !last.is_empty() {
                row_tiles!(1, h - 1, last);
            }
            finite
        }
    };
    all_parts(out, image_len, serial_conv(batch, shape, weights), run)
}

/// Calls `run` on every part of `len` values of `out` (with its index and
/// a scratch buffer per thread), on the calling thread if `serial`, else
/// split over threads; whether every call returned true (every part
/// runs: the results are and-ed, never short-circuited).
fn all_parts(
    out: &mut [f32],
    len: usize,
    serial: bool,
    run: impl Fn(&mut Vec<f32>, (usize, &mut [f32])) -> bool + Sync + Send,
) -> bool {
    out.par_chunks_exact_mut(len)
        .enumerate()
        .with_min_len(whole_if(serial))
        .map_init(Vec::new, run)
        .reduce(|| true, |a, b| a & b)
}

/// Where [`pair512`] reads pairs: the pair of pixels (x, x + 1) of row r
/// of image b, input channel i, is the two floats at `b·image + r·row +
/// x·pixel(C) + 2i`.
struct PairSource<'a> {
    data: &'a [f32],
    image: usize,
    row: usize,
}

impl PairSource<'_> {
    /// Floats from one pixel's pairs to the next's for C input channels:
    /// with one channel the bordered map holds the pairs as they are,
    /// otherwise [`pair_up_image`] lays them out, two floats per channel.
    #[inline(always)]
    fn pixel(c_in: usize) -> usize {
        if c_in == 1 { 1 } else { 2 * c_in }
    }

    /// The first float of pixel pair (x, x + 1) of row r of image b, for
    /// C input channels.
    #[inline(always)]
    fn at(&self, b: usize, r: usize, x: usize, c_in: usize) -> usize {
        b * self.image + r * self.row + x * Self::pixel(c_in)
    }
}

/// One unbordered map `x` (`[H, W, C]`), bordered with k/2 zeros, laid
/// out in pairs into `pairs`: for each bordered row and pixel x of it,
/// channel i holds the values of pixels x and x + 1 side by side (zero
/// outside the map, and past the bordered row: the partner of an odd
/// last pixel's last tap). The source reads it as image 0.
///
/// # Safety
/// AVX-512F must be available.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn pair_up_image<'a>(
    x: &[f32],
    shape: Shape,
    kernel: usize,
    pairs: &'a mut Vec<f32>,
) -> PairSource<'a> {
    let (h, w, c) = (shape.height, shape.width, shape.channels);
    let pad = kernel / 2;
    let Shape {
        height: hp,
        width: wp,
        ..
    } = shape.bordered(pad);
    let row = wp * 2 * c;
    // The pairs, then C zeros that pixels outside the map (the border,
    // and past the bordered row: the partner of an odd last pixel's last
    // tap) read; a reused buffer's tail is cleared.
    pairs.resize(hp * row + c, 0.0);
    let (pairs, zeros) = pairs.split_at_mut(hp * row);
    zeros.fill(0.0);
    let zeros: &[f32] = zeros;
    let interleave = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    let groups = c / 8;
    for (r, target) in pairs.chunks_exact_mut(row).enumerate() {
        if r < pad || r >= h + pad {
            target.fill(0.0);
            continue;
        }
        let line = &x[(r - pad) * w * c..][..w * c];
        let pixel = |p: usize| {
            if (pad..pad + w).contains(&p) {
                // SAFETY: pixel p − pad < W of the row.
                unsafe { line.as_ptr().add((p - pad) * c) }
            } else {
                zeros.as_ptr()
            }
        };
        for p in 0..wp {
            let (left, right) = (pixel(p), pixel(p + 1));
            // SAFETY: C values at `left` and at `right`, 2C in the
            // target's pixel p (of wp).
            unsafe {
                let to = target.as_mut_ptr().add(2 * p * c);
                for g in 0..groups {
                    let l = _mm512_castps256_ps512(_mm256_loadu_ps(left.add(8 * g)));
                    let r = _mm512_castps256_ps512(_mm256_loadu_ps(right.add(8 * g)));
                    let v = _mm512_permutex2var_ps(l, interleave, r);
                    _mm512_storeu_ps(to.add(16 * g), v);
                }
                for i in 8 * groups..c {
                    *to.add(2 * i) = *left.add(i);
                    *to.add(2 * i + 1) = *right.add(i);
                }
            }
        }
    }
    PairSource {
        data: pairs,
        image: 0,
        row,
    }
}

/// `out` (`[B, H/2, W/2, C_out]`) = the 2×2 max-pool of [`conv_relu`]'s
/// output, without writing that map: on the AVX-512 body, each pair of
/// output rows is pooled in registers where its tiles allow (two conv
/// rows per tile); else it goes to a scratch pair of rows and is pooled
/// while it is in the cache, with [`maxpool_row`]. So `out` is bit for
/// bit [`conv_relu`] then [`crate::conv::ops::maxpool_forward`]. H and W must be even (every
/// output is in a window). With `border` > 0, `out` is the pooled map
/// with a zero border of that width, as [`pad_input`] lays out the input
/// of a k×k convolution with k/2 = `border`: a next conv stage reads it
/// as it is. Returns whether every conv output was finite.
pub fn conv_relu_pool(
    isa: Isa,
    padded: &[f32],
    batch: usize,
    shape: Shape,
    weights: &ConvWeights,
    border: usize,
    out: &mut [f32],
) -> bool {
    let (h, w, c_out) = (shape.height, shape.width, weights.c_out);
    assert!(h % 2 == 0 && w % 2 == 0, "pooled conv of odd size {h}×{w}");
    let (lines, line_len) = (h / 2 + 2 * border, (w / 2 + 2 * border) * c_out);
    assert_eq!(out.len(), batch * lines * line_len, "pooled output size");
    let rows = Rows::checked(isa, padded, batch, shape, weights);
    let row_len = w * c_out;
    let run = |pair: &mut Vec<f32>, (i, line): (usize, &mut [f32])| {
        let (b, r) = (i / lines, i % lines);
        if r < border || r >= lines - border {
            zero_short(line);
            return true;
        }
        let (out_row, y) = (interior(line, border * c_out), 2 * (r - border));
        #[cfg(target_arch = "x86_64")]
        if isa == Isa::Avx512 && rows.pools_in_registers() {
            // SAFETY: the CPU runs AVX-512F (checked by `Rows::checked`).
            return unsafe { rows.pooled_avx512(b, y, out_row) };
        }
        pair.resize(2 * row_len, 0.0);
        let (top, bottom) = pair.split_at_mut(row_len);
        let finite = rows.row(isa, b, y, top) & rows.row(isa, b, y + 1, bottom);
        match isa {
            // SAFETY: a SIMD body runs on this CPU, so AVX2 is there.
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 | Isa::Avx2Fma if c_out % 8 == 0 => unsafe {
                pool_row_avx2(top, bottom, c_out, out_row)
            },
            _ => with_avx2(
                #[inline(always)]
                || maxpool_row(top, bottom, c_out, out_row),
            ),
        }
        finite
    };
    all_parts(out, line_len.max(1), rows.serial(batch), run)
}

/// [`maxpool_row`] for a multiple of 8 channels, one AVX vector per 8
/// channels of a window: `_mm256_max_ps(q, p)` is q where q > p, else p,
/// which is `larger(p, q)`, so the bits are [`maxpool_row`]'s (whose
/// compiled form interleaves pixels and is several times slower here).
///
/// # Safety
/// AVX2 must be available.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn pool_row_avx2(top: &[f32], bottom: &[f32], c: usize, out: &mut [f32]) {
    assert!(c.is_multiple_of(8) && top.len() >= 2 * out.len() && bottom.len() >= 2 * out.len());
    for (xx, o) in out.chunks_exact_mut(c).enumerate() {
        let at = 2 * xx * c;
        for g in (0..c).step_by(8) {
            // SAFETY: at + c + g + 8 ≤ 2·(xx + 1)·c ≤ 2·out.len(), asserted
            // in bounds of both rows; o holds c values.
            unsafe {
                let load = |row: &[f32], i: usize| _mm256_loadu_ps(row.as_ptr().add(i));
                let (a, b) = (load(top, at + g), load(top, at + c + g));
                let (cc, d) = (load(bottom, at + g), load(bottom, at + c + g));
                let v = _mm256_max_ps(_mm256_max_ps(d, cc), _mm256_max_ps(b, a));
                _mm256_storeu_ps(o.as_mut_ptr().add(g), v);
            }
        }
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
    #[cfg(target_arch = "x86_64")]
    if isa == Isa::Avx512 && packed.pair_block() == Some(0) && c_out > 1 {
        assert!(isa.supported(), "{} does not run on this CPU", isa.name());
        // SAFETY: AVX-512F is available (asserted).
        unsafe { conv_relu_paired(dy, batch, out_shape, packed, dx) };
        return;
    }
    pad_input(dy, batch, out_shape, kernel, padded);
    conv_relu(isa, padded, batch, out_shape, packed, dx);
}

/// Multiply-adds below which a convolution stays on the calling thread.
const PARALLEL_MIN_MACS: usize = 1 << 20;

/// Whether a convolution by `weights` of `batch` maps of `shape` stays on
/// the calling thread (too small to split, or products kept serial).
fn serial_conv(batch: usize, shape: Shape, weights: &ConvWeights) -> bool {
    let wt = weights;
    let macs = batch * shape.pixels() * wt.c_out * wt.kernel * wt.kernel * wt.c_in;
    stays_on_this_thread() || macs < PARALLEL_MIN_MACS
}

/// One output row's operands.
struct Rows<'a> {
    padded: &'a [f32],
    shape: Shape,
    weights: &'a ConvWeights,
}

impl<'a> Rows<'a> {
    /// The operands of a convolution of `batch` maps of `shape` on the
    /// body of `isa`, checked: the CPU runs `isa`, and the bordered input
    /// and the weights fit the shape (the SIMD bodies rely on it).
    fn checked(
        isa: Isa,
        padded: &'a [f32],
        batch: usize,
        shape: Shape,
        weights: &'a ConvWeights,
    ) -> Rows<'a> {
        let k = weights.kernel;
        assert!(isa.supported(), "{} does not run on this CPU", isa.name());
        assert_eq!(shape.channels, weights.c_in, "input channels");
        assert_eq!(
            padded.len(),
            batch * (shape.height + k - 1) * (shape.width + k - 1) * weights.c_in,
            "padded input size"
        );
        Rows {
            padded,
            shape,
            weights,
        }
    }

    /// Whether a convolution of `batch` maps stays on the calling thread.
    fn serial(&self, batch: usize) -> bool {
        serial_conv(batch, self.shape, self.weights)
    }

    /// Output row y of image b by the body of `isa` (which the caller has
    /// checked the CPU runs); whether every output is finite.
    fn row(&self, isa: Isa, b: usize, y: usize, out: &mut [f32]) -> bool {
        match isa {
            // SAFETY: the CPU runs the instruction set `isa` names.
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => unsafe { self.avx512(b, y, out) },
            // SAFETY: as above.
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2Fma => unsafe { self.avx2(b, y, out) },
            _ => self.scalar(b, y, out),
        }
    }

    /// Index in the padded input of pixel (b, y + dy, x + dx), channel 0.
    fn input_at(&self, b: usize, y: usize, x: usize) -> usize {
        let k = self.weights.kernel;
        let (hp, wp) = (self.shape.height + k - 1, self.shape.width + k - 1);
        ((b * hp + y) * wp + x) * self.weights.c_in
    }

    /// The scalar body: the same FMA chain per output as the SIMD bodies.
    /// Returns whether every output it wrote is finite (as all bodies).
    fn scalar(&self, b: usize, y: usize, out: &mut [f32]) -> bool {
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
        out.iter().all(|v| v.is_finite())
    }

    /// # Safety
    /// AVX-512F must be available.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx2,fma")]
    unsafe fn avx512(&self, b: usize, y: usize, out: &mut [f32]) -> bool {
        let (c_in, c_out, w) = (self.weights.c_in, self.weights.c_out, self.shape.width);
        let k = self.weights.kernel;
        let mut finite = true;
        let mut block = 0;
        // SAFETY (every tile below): AVX-512F is available; the tile stays
        // in bounds (asserted by `conv_relu`, lanes past C_out masked).
        while block < c_out {
            if self.weights.pair_block() != Some(block) {
                for (x0, p) in tiles(w, PIXELS_512) {
                    finite &= unsafe {
                        dispatch!(c_in, p, PIXELS_512, tile512, self, b, y, x0, block, out)
                    };
                }
                block += 16;
                continue;
            }
            if c_in == 1 {
                // Pixel pairs fill the 16 lanes: with one input channel,
                // adjacent pixels are adjacent in the bordered map.
                let (hp, wp) = (self.shape.height + k - 1, self.shape.width + k - 1);
                let source = PairSource {
                    data: self.padded,
                    image: hp * wp,
                    row: wp,
                };
                for (pair, p) in tiles(w / 2, PIXELS_512) {
                    finite &= unsafe {
                        pair_dispatch!(
                            pair512[1],
                            c_in,
                            p,
                            self.weights,
                            &source,
                            b,
                            y,
                            2 * pair,
                            block,
                            out
                        )
                    };
                }
                // An odd last pixel alone: its partner would be past the
                // bordered row.
                if w % 2 == 1 {
                    finite &= unsafe { tile256::<1, 1>(self, b, y, w - 1, block, out) };
                }
            } else {
                // 8-lane tiles hold PIXELS_256 pixels here too: with AVX2
                // encodings there are 16 vector registers, and 14 pixels
                // spill (conv-mnist's second input gradient: 54 against 93
                // GFLOP/s on one thread).
                for (x0, p) in tiles(w, PIXELS_256) {
                    finite &= unsafe {
                        dispatch!(c_in, p, PIXELS_256, tile256, self, b, y, x0, block, out)
                    };
                }
            }
            block += 8;
        }
        finite
    }

    /// Whether [`Rows::pooled_avx512`] takes this convolution: its blocks
    /// are of 16 channels, or its pair block reads one input channel and
    /// a ReLU follows ([`pooled_pair512`]).
    fn pools_in_registers(&self) -> bool {
        let wt = self.weights;
        wt.pair_block().is_none() || (wt.c_in == 1 && wt.relu)
    }

    /// Output rows y and y + 1 of image b, 2×2 max-pooled into `out` (a
    /// pooled row, `[W/2, C_out]`), by [`pooled512`] tiles, and
    /// [`pooled_pair512`] tiles for a pair block on one input channel.
    /// Whether every conv output is finite.
    ///
    /// # Safety
    /// AVX-512F must be available.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn pooled_avx512(&self, b: usize, y: usize, out: &mut [f32]) -> bool {
        let (c_in, c_out, w) = (self.weights.c_in, self.weights.c_out, self.shape.width);
        let k = self.weights.kernel;
        assert!(
            self.pools_in_registers(),
            "blocks of 16 channels, or one input channel"
        );
        assert!(
            y + 2 <= self.shape.height && out.len() == w / 2 * c_out,
            "a pooled row"
        );
        let mut finite = true;
        for block in (0..c_out).step_by(16) {
            if self.weights.pair_block() == Some(block) {
                // One input channel: the bordered map holds the pairs.
                let (hp, wp) = (self.shape.height + k - 1, self.shape.width + k - 1);
                let source = PairSource {
                    data: self.padded,
                    image: hp * wp,
                    row: wp,
                };
                for (pair, p) in tiles(w / 2, PIXELS_512) {
                    // SAFETY: as below; the pairs of a map with one input
                    // channel are its adjacent values.
                    finite &= unsafe {
                        pair_count!(
                            p,
                            pooled_pair512,
                            1,
                            self.weights,
                            &source,
                            b,
                            y,
                            2 * pair,
                            block,
                            out
                        )
                    };
                }
                continue;
            }
            for (first, pairs) in tiles(w / 2, PAIRS_512) {
                // SAFETY: AVX-512F is available; rows y, y + 1 and the
                // tile's pixels are in bounds (asserted here and by
                // `conv_relu_pool`), lanes past C_out masked.
                finite &=
                    unsafe { pooled_dispatch!(c_in, pairs, self, b, y, 2 * first, block, out) };
            }
        }
        finite
    }

    /// # Safety
    /// AVX2 and FMA must be available.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn avx2(&self, b: usize, y: usize, out: &mut [f32]) -> bool {
        let (c_in, c_out, w) = (self.weights.c_in, self.weights.c_out, self.shape.width);
        let (mut finite, mut block) = (true, 0);
        // SAFETY (every tile below): AVX2+FMA are available; in bounds as
        // above (lanes past C_out masked).
        while block < c_out {
            if c_out - block > 8 {
                for (x0, p) in tiles(w, wide_tile_pixels(c_in)) {
                    finite &= unsafe {
                        dispatch!(
                            c_in,
                            p,
                            PIXELS_256_WIDE,
                            tile256_wide,
                            self,
                            b,
                            y,
                            x0,
                            block,
                            out
                        )
                    };
                }
                block += 16;
            } else {
                for (x0, p) in tiles(w, PIXELS_256) {
                    finite &= unsafe {
                        dispatch!(c_in, p, PIXELS_256, tile256, self, b, y, x0, block, out)
                    };
                }
                block += 8;
            }
        }
        finite
    }
}

/// The tiles of an output row of `width` pixels, as (first pixel, pixels):
/// as few as `max` pixels per tile allow, their sizes differing by at most
/// one (a 32-pixel row is 11 + 11 + 10, not 14 + 14 + 4).
fn tiles(width: usize, max: usize) -> impl Iterator<Item = (usize, usize)> {
    let count = width.div_ceil(max);
    (0..count).map(move |i| {
        let (base, extra) = (width / count, width % count);
        (i * base + i.min(extra), base + usize::from(i < extra))
    })
}

/// Calls `$tile::<P, C>` for the run-time pixel count `$p` (1..=`$max`)
/// and input channel count `$c`: C is `$c` for the common counts, so that
/// every input read is a fixed offset from the tap's first pixel, and 0
/// (read at run time) for the others.
#[cfg(not(fuzzing))]
macro_rules! dispatch {
    ($c:expr, $p:expr, $max:tt, $tile:ident, $($arg:expr),*) => {
        match $c {
            1 => pixels!($p, $max, $tile, 1, $($arg),*),
            3 => pixels!($p, $max, $tile, 3, $($arg),*),
            8 => pixels!($p, $max, $tile, 8, $($arg),*),
            16 => pixels!($p, $max, $tile, 16, $($arg),*),
            32 => pixels!($p, $max, $tile, 32, $($arg),*),
            _ => pixels!($p, $max, $tile, 0, $($arg),*),
        }
    };
}

/// Fuzz builds (`cargo fuzz`, which exercises the parsers) read the input
/// channel count at run time only: the sanitizers' instrumentation of
/// the specialised tiles took most of their build time.
#[cfg(fuzzing)]
macro_rules! dispatch {
    ($c:expr, $p:expr, $max:tt, $tile:ident, $($arg:expr),*) => {{
        let _ = $c;
        pixels!($p, $max, $tile, 0, $($arg),*)
    }};
}

/// The pixel count's half of [`dispatch`]; tiles of at most
/// [`PIXELS_256_WIDE`] pixels list no more.
macro_rules! pixels {
    ($p:expr, PIXELS_256_WIDE, $tile:ident, $c:literal, $($arg:expr),*) => {
        match $p {
            1 => $tile::<1, $c>($($arg),*),
            2 => $tile::<2, $c>($($arg),*),
            3 => $tile::<3, $c>($($arg),*),
            4 => $tile::<4, $c>($($arg),*),
            5 => $tile::<5, $c>($($arg),*),
            6 => $tile::<6, $c>($($arg),*),
            _ => unreachable!("at most {} pixels per tile", PIXELS_256_WIDE),
        }
    };
    ($p:expr, $max:expr, $tile:ident, $c:literal, $($arg:expr),*) => {
        match $p {
            1 => $tile::<1, $c>($($arg),*),
            2 => $tile::<2, $c>($($arg),*),
            3 => $tile::<3, $c>($($arg),*),
            4 => $tile::<4, $c>($($arg),*),
            5 => $tile::<5, $c>($($arg),*),
            6 => $tile::<6, $c>($($arg),*),
            7 => $tile::<7, $c>($($arg),*),
            8 => $tile::<8, $c>($($arg),*),
            9 => $tile::<9, $c>($($arg),*),
            10 => $tile::<10, $c>($($arg),*),
            11 => $tile::<11, $c>($($arg),*),
            12 => $tile::<12, $c>($($arg),*),
            13 if $max >= 13 => $tile::<13, $c>($($arg),*),
            14 if $max >= 14 => $tile::<14, $c>($($arg),*),
            _ => unreachable!("at most {} pixels per tile", $max),
        }
    };
}
/// Calls `$tile::<R, P, C>` (`$tile[R]`: [`pair512`] on R rows) for the
/// run-time pair count `$p` (1..=14) and input channel count `$c`, as
/// [`dispatch`].
#[cfg(not(fuzzing))]
macro_rules! pair_dispatch {
    ($tile:ident $([$r:literal])?, $c:expr, $p:expr, $($arg:expr),*) => {
        match $c {
            1 => pair_count!($p, $tile $([$r])?, 1, $($arg),*),
            16 => pair_count!($p, $tile $([$r])?, 16, $($arg),*),
            32 => pair_count!($p, $tile $([$r])?, 32, $($arg),*),
            _ => pair_count!($p, $tile $([$r])?, 0, $($arg),*),
        }
    };
}

/// Fuzz builds: as [`dispatch`]'s.
#[cfg(fuzzing)]
macro_rules! pair_dispatch {
    ($tile:ident $([$r:literal])?, $c:expr, $p:expr, $($arg:expr),*) => {{
        let _ = $c;
        pair_count!($p, $tile $([$r])?, 0, $($arg),*)
    }};
}

/// The pair count's half of [`pair_dispatch`]: calls `$tile::<P, C>`, or
/// `$tile::<R, P, C>` for `$tile[R]` (P = `$p`, 1..=14).
macro_rules! pair_count {
    ($p:expr, $tile:ident $([$r:literal])?, $c:literal, $($arg:expr),*) => {
        match $p {
            1 => $tile::<$($r,)? 1, $c>($($arg),*),
            2 => $tile::<$($r,)? 2, $c>($($arg),*),
            3 => $tile::<$($r,)? 3, $c>($($arg),*),
            4 => $tile::<$($r,)? 4, $c>($($arg),*),
            5 => $tile::<$($r,)? 5, $c>($($arg),*),
            6 => $tile::<$($r,)? 6, $c>($($arg),*),
            7 => $tile::<$($r,)? 7, $c>($($arg),*),
            8 => $tile::<$($r,)? 8, $c>($($arg),*),
            9 => $tile::<$($r,)? 9, $c>($($arg),*),
            10 => $tile::<$($r,)? 10, $c>($($arg),*),
            11 => $tile::<$($r,)? 11, $c>($($arg),*),
            12 => $tile::<$($r,)? 12, $c>($($arg),*),
            13 => $tile::<$($r,)? 13, $c>($($arg),*),
            14 => $tile::<$($r,)? 14, $c>($($arg),*),
            _ => unreachable!("at most {} pairs per tile", PIXELS_512),
        }
    };
}

/// Calls `pooled512::<P, C>` for P = 2 × the run-time pair count `$q`
/// (1..=[`PAIRS_512`]) and input channel count `$c`, as [`dispatch`].
#[cfg(not(fuzzing))]
macro_rules! pooled_dispatch {
    ($c:expr, $q:expr, $($arg:expr),*) => {
        match $c {
            1 => pooled_pairs!($q, 1, $($arg),*),
            3 => pooled_pairs!($q, 3, $($arg),*),
            8 => pooled_pairs!($q, 8, $($arg),*),
            16 => pooled_pairs!($q, 16, $($arg),*),
            32 => pooled_pairs!($q, 32, $($arg),*),
            _ => pooled_pairs!($q, 0, $($arg),*),
        }
    };
}

/// [`pooled_dispatch`] of fuzz builds, as theirs of [`dispatch`].
#[cfg(fuzzing)]
macro_rules! pooled_dispatch {
    ($c:expr, $q:expr, $($arg:expr),*) => {{
        let _ = $c;
        pooled_pairs!($q, 0, $($arg),*)
    }};
}

/// The pair count's half of [`pooled_dispatch`].
macro_rules! pooled_pairs {
    ($q:expr, $c:literal, $($arg:expr),*) => {
        match $q {
            1 => pooled512::<2, $c>($($arg),*),
            2 => pooled512::<4, $c>($($arg),*),
            3 => pooled512::<6, $c>($($arg),*),
            4 => pooled512::<8, $c>($($arg),*),
            5 => pooled512::<10, $c>($($arg),*),
            6 => pooled512::<12, $c>($($arg),*),
            7 => pooled512::<14, $c>($($arg),*),
            _ => unreachable!("at most {} pairs per pooled tile", PAIRS_512),
        }
    };
}
use {dispatch, pair_count, pair_dispatch, pixels, pooled_dispatch, pooled_pairs};

/// P pixels (an even count) from `x0` in output rows y and y + 1 × 16
/// output channels from `block`, 2×2 max-pooled in registers: P/2
/// pooled pixels from x0 / 2 of the pooled row `out`. Each conv output's
/// chain is [`tile512`]'s ([`tile_chains`]), and the pool is
/// [`pool_row_avx2`]'s max(max(d, c), max(b', a)) of a window's top
/// pixels a, b' and bottom pixels c, d, so the bits are [`tile512`]'s
/// then the max-pool's. Two rows of 14 pixels read each weight vector
/// for 28 multiply-adds, and no conv map is stored. C as [`tile512`].
/// Whether every conv output is finite.
///
/// # Safety
/// AVX-512F must be available; pixels x0..x0+P of rows y, y + 1 and the
/// padded input they read must be in bounds.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn pooled512<const P: usize, const C: usize>(
    rows: &Rows<'_>,
    b: usize,
    y: usize,
    x0: usize,
    block: usize,
    out: &mut [f32],
) -> bool {
    let (wt, c_out) = (rows.weights, rows.weights.c_out);
    // SAFETY: in bounds by the caller's contract.
    unsafe {
        let [top, bottom] = tile_chains::<2, P, C>(rows, b, y, x0, block);
        let mask = first16(c_out - block);
        let mut non_finite: __mmask16 = 0;
        let pairs = top.chunks_exact(2).zip(bottom.chunks_exact(2));
        for (j, (top, bottom)) in pairs.enumerate() {
            let [a, b_, c, d] = [top[0], top[1], bottom[0], bottom[1]]
                .map(|v| finish512(v, wt.relu, mask, &mut non_finite));
            let v = _mm512_max_ps(_mm512_max_ps(d, c), _mm512_max_ps(b_, a));
            let at = out.as_mut_ptr().add((x0 / 2 + j) * c_out + block);
            if mask == 0xffff {
                _mm512_storeu_ps(at, v);
            } else {
                _mm512_mask_storeu_ps(at, mask, v);
            }
        }
        non_finite == 0
    }
}

/// The lanes of a pair block ([`pair512`]'s layout: lane 2o + q holds
/// channel o of a pair's pixel q).
#[cfg(target_arch = "x86_64")]
struct PairLanes {
    /// The lanes of the block's channels, both pixels.
    valid: __mmask16,
    /// The first lanes of one pixel's channels, once separated.
    half: __mmask16,
    /// The permutation that separates them: [pixel 0's channels |
    /// pixel 1's].
    separate: __m512i,
}

#[cfg(target_arch = "x86_64")]
impl PairLanes {
    /// The lanes of the pair block from `block` of C_out channels.
    ///
    /// # Safety
    /// AVX-512F must be available.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn of(c_out: usize, block: usize) -> PairLanes {
        let lanes = (c_out - block).min(8);
        PairLanes {
            valid: ((1u32 << (2 * lanes)) - 1) as __mmask16,
            half: ((1u32 << lanes) - 1) as __mmask16,
            separate: _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15),
        }
    }
}

/// The AVX-512 tiles' last step on a vector of conv outputs: the ReLU if
/// the stage has one, and those of the lanes `mask` that are infinite or
/// NaN marked in `non_finite` (v − v is NaN exactly there), so that the
/// fault check of §6 reads no map again.
///
/// # Safety
/// AVX-512F must be available.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn finish512(v: __m512, relu: bool, mask: __mmask16, non_finite: &mut __mmask16) -> __m512 {
    let zero = _mm512_setzero_ps();
    let v = if relu { _mm512_max_ps(v, zero) } else { v };
    *non_finite |= _mm512_mask_cmp_ps_mask::<_CMP_UNORD_Q>(mask, _mm512_sub_ps(v, v), zero);
    v
}

/// The chains of [`tile512`] for R rows from y: `acc[r][j]` holds pixel
/// x0 + j of row y + r × 16 output channels from `block`, each the bias,
/// then one fused multiply-add per (dy, dx, c_in) in that order.
///
/// # Safety
/// AVX-512F must be available; in bounds as [`tile512`] asks, for each
/// of the rows.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn tile_chains<const R: usize, const P: usize, const C: usize>(
    rows: &Rows<'_>,
    b: usize,
    y: usize,
    x0: usize,
    block: usize,
) -> [[__m512; P]; R] {
    let wt = rows.weights;
    let k = wt.kernel;
    let c_in = if C == 0 { wt.c_in } else { C };
    // SAFETY: in bounds by the caller's contract.
    unsafe {
        let mut acc = [[_mm512_loadu_ps(wt.bias.as_ptr().add(block)); P]; R];
        for dy in 0..k {
            for dx in 0..k {
                let inputs: [*const f32; R] = std::array::from_fn(|r| {
                    rows.padded
                        .as_ptr()
                        .add(rows.input_at(b, y + r + dy, x0 + dx))
                });
                let weights = wt
                    .weights
                    .as_ptr()
                    .add((dy * k + dx) * c_in * wt.stride + block);
                for ci in 0..c_in {
                    let wv = _mm512_loadu_ps(weights.add(ci * wt.stride));
                    for (input, acc) in inputs.into_iter().zip(&mut acc) {
                        for (j, acc) in acc.iter_mut().enumerate() {
                            let x = _mm512_set1_ps(*input.add(j * c_in + ci));
                            *acc = _mm512_fmadd_ps(x, wv, *acc);
                        }
                    }
                }
            }
        }
        acc
    }
}

/// P pixels × 16 output channels from `block`; C input channels (0: the
/// weights' count).
///
/// # Safety
/// AVX-512F must be available; pixels x0..x0+P of row y and the padded
/// input they read must be in bounds.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn tile512<const P: usize, const C: usize>(
    rows: &Rows<'_>,
    b: usize,
    y: usize,
    x0: usize,
    block: usize,
    out: &mut [f32],
) -> bool {
    let (wt, c_out) = (rows.weights, rows.weights.c_out);
    // SAFETY: in bounds by the caller's contract.
    unsafe {
        let [acc] = tile_chains::<1, P, C>(rows, b, y, x0, block);
        let mask = first16(c_out - block);
        let mut non_finite: __mmask16 = 0;
        for (j, &acc) in acc.iter().enumerate() {
            let v = finish512(acc, wt.relu, mask, &mut non_finite);
            // A plain store where it can (a load of it right after, as
            // the pooling does, is forwarded; a masked store's is not).
            let at = out.as_mut_ptr().add((x0 + j) * c_out + block);
            if mask == 0xffff {
                _mm512_storeu_ps(at, v);
            } else {
                _mm512_mask_storeu_ps(at, mask, v);
            }
        }
        non_finite == 0
    }
}

/// The chains of [`pair512`] for R rows from y: `acc[r][j]` holds pixels
/// x0 + 2j and x0 + 2j + 1 of row y + r (lane 2o + q: channel o of the
/// second if q = 1), each the paired bias, then one fused multiply-add
/// per (dy, dx, c_in) in that order.
///
/// # Safety
/// AVX-512F must be available; in bounds as [`pair512`] asks, for each
/// of the rows.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn pair_chains<const R: usize, const P: usize, const C: usize>(
    wt: &ConvWeights,
    source: &PairSource<'_>,
    b: usize,
    y: usize,
    x0: usize,
) -> [[__m512; P]; R] {
    let k = wt.kernel;
    let c_in = if C == 0 { wt.c_in } else { C };
    // A constant for the specialised channel counts, so that every read
    // is a fixed offset from the tap's first pair.
    let pixel = PairSource::pixel(c_in);
    // SAFETY: in bounds by the caller's contract.
    unsafe {
        let mut acc = [[_mm512_loadu_ps(wt.paired_bias.as_ptr()); P]; R];
        for dy in 0..k {
            for dx in 0..k {
                let rows: [*const f32; R] = std::array::from_fn(|r| {
                    let at = source.at(b, y + r + dy, x0 + dx, c_in);
                    source.data.as_ptr().add(at)
                });
                let weights = wt.paired_weights.as_ptr().add(16 * (dy * k + dx) * c_in);
                for ci in 0..c_in {
                    let wv = _mm512_loadu_ps(weights.add(16 * ci));
                    for (input, acc) in rows.into_iter().zip(&mut acc) {
                        for (j, acc) in acc.iter_mut().enumerate() {
                            let at = input.add(2 * j * pixel + 2 * ci);
                            let x = _mm512_castsi512_ps(_mm512_set1_epi64(
                                (at as *const i64).read_unaligned(),
                            ));
                            *acc = _mm512_fmadd_ps(x, wv, *acc);
                        }
                    }
                }
            }
        }
        acc
    }
}

/// P pairs of adjacent pixels from `x0` × up to 8 output channels from
/// `block`, in R output rows from y (`out`: those R whole rows), read
/// from `source`; C input channels (0: the weights' count): lane 2o + q
/// holds channel o of pixel x0 + 2j + q, so both halves of the vector
/// work. Per tap and input channel, the paired weights (each twice in a
/// row) are loaded once for the R rows, and each pair's two input values
/// are one 64-bit broadcast. The chain per output is [`tile512`]'s.
///
/// Two rows give 2P chains where one row's P ≤ 7 pairs (a 14-pixel map)
/// leave the two FMA units short of their eight. On the input gradient
/// of `conv-mnist`'s second stage (256 images of 14 × 14 × 16 → 8
/// channels, one thread of a Xeon with AVX-512, throwaway timings, the
/// fastest of 41 × 10 calls) two rows took [`conv_input_grad`] from
/// 900–942 µs to 798–808 µs, in five alternating runs.
///
/// # Safety
/// AVX-512F must be available; pixels x0..x0+2P of rows y..y+R and the
/// pairs they read must be in bounds.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn pair512<const R: usize, const P: usize, const C: usize>(
    wt: &ConvWeights,
    source: &PairSource<'_>,
    b: usize,
    y: usize,
    x0: usize,
    block: usize,
    out: &mut [f32],
) -> bool {
    let c_out = wt.c_out;
    // SAFETY: in bounds by the caller's contract; `block` is the pair
    // block, whose paired weights hold 16 values per tap and input
    // channel, and its paired bias 16.
    unsafe {
        debug_assert_eq!(wt.pair_block(), Some(block), "the paired block");
        let rows = pair_chains::<R, P, C>(wt, source, b, y, x0);
        let PairLanes {
            valid,
            half,
            separate,
        } = PairLanes::of(c_out, block);
        let width = out.len() / (R * c_out);
        let mut non_finite: __mmask16 = 0;
        for (r, acc) in rows.iter().enumerate() {
            let row = out.as_mut_ptr().add(r * width * c_out);
            for (j, &acc) in acc.iter().enumerate() {
                // An odd last pixel's partner is past the row: computed
                // (from the zeros a paired map holds there), not stored.
                let alone = x0 + 2 * j + 1 == width;
                let valid = if alone { valid & 0x5555 } else { valid };
                let v = finish512(acc, wt.relu, valid, &mut non_finite);
                // [pixel 2j: channels 0..8 | pixel 2j + 1: channels 0..8].
                let v = _mm512_permutexvar_ps(separate, v);
                let first = row.add((x0 + 2 * j) * c_out + block);
                if c_out == 8 && !alone {
                    _mm512_storeu_ps(first, v);
                } else {
                    _mm512_mask_storeu_ps(first, half, v);
                    if !alone {
                        let second = _mm512_shuffle_f32x4::<0x4E>(v, v);
                        _mm512_mask_storeu_ps(first.add(c_out), half, second);
                    }
                }
            }
        }
        non_finite == 0
    }
}

/// P pairs of adjacent pixels from `x0` in output rows y and y + 1 × up
/// to 8 output channels from `block` ([`pair512`]'s lanes and chains),
/// 2×2 max-pooled in registers into P pooled pixels from x0 / 2 of the
/// pooled row `out`: the larger of the two rows, then of each lane pair.
/// After the ReLU no value is NaN or −0, so the order of the maxima does
/// not change a bit: the bits of [`pair512`] then the max-pool. Whether
/// every conv output is finite.
///
/// # Safety
/// AVX-512F must be available; x0 even, and pixels x0..x0+2P of rows y,
/// y + 1 and the pairs they read must be in bounds.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn pooled_pair512<const P: usize, const C: usize>(
    wt: &ConvWeights,
    source: &PairSource<'_>,
    b: usize,
    y: usize,
    x0: usize,
    block: usize,
    out: &mut [f32],
) -> bool {
    let c_out = wt.c_out;
    // SAFETY: in bounds by the caller's contract; `block` is the pair
    // block (paired weights: 16 values per tap and input channel).
    unsafe {
        debug_assert!(
            wt.relu && x0.is_multiple_of(2),
            "a ReLU stage, windows from x0"
        );
        debug_assert_eq!(wt.pair_block(), Some(block), "the paired block");
        let acc = pair_chains::<2, P, C>(wt, source, b, y, x0);
        let PairLanes {
            valid,
            half,
            separate,
        } = PairLanes::of(c_out, block);
        let mut non_finite: __mmask16 = 0;
        let [top, bottom] = acc;
        for (j, rows) in top.into_iter().zip(bottom).enumerate() {
            let [top, bottom] =
                <[__m512; 2]>::from(rows).map(|v| finish512(v, true, valid, &mut non_finite));
            let v = _mm512_max_ps(bottom, top);
            // Within each lane pair: pixels x0 + 2j and x0 + 2j + 1.
            let v = _mm512_max_ps(_mm512_permute_ps::<0b1011_0001>(v), v);
            // Lane 2o (channel o) to lane o.
            let v = _mm512_permutexvar_ps(separate, v);
            let at = out.as_mut_ptr().add((x0 / 2 + j) * c_out + block);
            _mm512_mask_storeu_ps(at, half, v);
        }
        non_finite == 0
    }
}

/// P pixels × 8 output channels from `block`; C as [`tile512`].
///
/// # Safety
/// AVX2 and FMA must be available; in bounds as [`tile512`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn tile256<const P: usize, const C: usize>(
    rows: &Rows<'_>,
    b: usize,
    y: usize,
    x0: usize,
    block: usize,
    out: &mut [f32],
) -> bool {
    // SAFETY: the caller's contract.
    unsafe { tile256_vectors::<P, C, 1>(rows, b, y, x0, block, out) }
}

/// P pixels (at most [`PIXELS_256_WIDE`]) × the 16 output channels from
/// `block` (of which more than 8 exist; the weights are padded to a
/// multiple of 8): [`tile256`] on two vectors of channels at once, so
/// that each broadcast input feeds two multiply-adds where it fed one,
/// and the loads per multiply-add, which bound [`tile256`] on a core of
/// two FMA units, halve. Each output's chain is [`tile256`]'s, so the
/// same bits. C as [`tile512`]. On a Zen 4 (`COMOD_ISA=avx2`, alternating
/// runs), `comod bench --only conv_forward_direct` went from 1.08 to
/// 0.66 ms (46 to 76 % of the FMA peak) and the default multi-task sweep
/// from 36.7–37.8 to 26.2–27.2 s, with the same records. Seven pixels
/// (14 accumulators) spill: 1.18 ms.
///
/// # Safety
/// AVX2 and FMA must be available; in bounds as [`tile512`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn tile256_wide<const P: usize, const C: usize>(
    rows: &Rows<'_>,
    b: usize,
    y: usize,
    x0: usize,
    block: usize,
    out: &mut [f32],
) -> bool {
    let wt = rows.weights;
    assert!(
        wt.c_out > block + 8 && wt.stride >= block + 16,
        "two vectors of channels"
    );
    // SAFETY: the caller's contract; the weights and bias hold channels
    // block..block + 16 (asserted).
    unsafe { tile256_vectors::<P, C, 2>(rows, b, y, x0, block, out) }
}

/// P pixels × V vectors of 8 output channels from `block` (whose weights
/// and bias exist): per tap and input channel, V weight vectors loaded
/// and one broadcast per pixel into V fused multiply-adds. Lanes past
/// C_out are not stored. Whether every stored output is finite.
///
/// # Safety
/// AVX2 and FMA must be available; in bounds as [`tile512`], for the V
/// vectors.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn tile256_vectors<const P: usize, const C: usize, const V: usize>(
    rows: &Rows<'_>,
    b: usize,
    y: usize,
    x0: usize,
    block: usize,
    out: &mut [f32],
) -> bool {
    let wt = rows.weights;
    let (k, c_out) = (wt.kernel, wt.c_out);
    let c_in = if C == 0 { wt.c_in } else { C };
    // SAFETY: in bounds by the caller's contract.
    unsafe {
        let bias: [__m256; V] =
            std::array::from_fn(|v| _mm256_loadu_ps(wt.bias.as_ptr().add(block + 8 * v)));
        let mut acc = [bias; P];
        for dy in 0..k {
            for dx in 0..k {
                let input = rows.padded.as_ptr().add(rows.input_at(b, y + dy, x0 + dx));
                let weights = wt
                    .weights
                    .as_ptr()
                    .add((dy * k + dx) * c_in * wt.stride + block);
                for ci in 0..c_in {
                    let w = weights.add(ci * wt.stride);
                    let w: [__m256; V] = std::array::from_fn(|v| _mm256_loadu_ps(w.add(8 * v)));
                    for (j, acc) in acc.iter_mut().enumerate() {
                        let x = _mm256_broadcast_ss(&*input.add(j * c_in + ci));
                        for (acc, w) in acc.iter_mut().zip(w) {
                            *acc = _mm256_fmadd_ps(x, w, *acc);
                        }
                    }
                }
            }
        }
        let mut non_finite = _mm256_setzero_ps();
        for (j, acc) in acc.into_iter().enumerate() {
            let at = out.as_mut_ptr().add((x0 + j) * c_out + block);
            for (v, acc) in acc.into_iter().enumerate() {
                let lanes = c_out - block - 8 * v;
                store256(acc, wt.relu, at.add(8 * v), lanes, &mut non_finite);
            }
        }
        _mm256_movemask_ps(non_finite) == 0
    }
}

/// Stores the first `lanes` (at most 8) of `acc`, after the ReLU if
/// `relu`, at `at`, and marks in `non_finite` the stored lanes that are
/// infinite or NaN.
///
/// # Safety
/// AVX2 must be available; `lanes.min(8)` values at `at` must be writable.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn store256(acc: __m256, relu: bool, at: *mut f32, lanes: usize, non_finite: &mut __m256) {
    let zero = _mm256_setzero_ps();
    let v = if relu { _mm256_max_ps(acc, zero) } else { acc };
    // SAFETY: the caller's contract.
    unsafe { store_first8(at, v, lanes) };
    let mask = first8(lanes);
    // v − v is NaN exactly where v is infinite or NaN.
    let bad = _mm256_cmp_ps::<_CMP_UNORD_Q>(_mm256_sub_ps(v, v), zero);
    *non_finite = _mm256_or_ps(*non_finite, _mm256_and_ps(bad, _mm256_castsi256_ps(mask)));
}
