//! The weight gradient of a conv stage (§8) straight from the zero-bordered
//! input map, without the im2col matrix: dW[o, t, i] += Σ_p dy[p, o]·
//! x[p + t, i] over the batch's output pixels p, for tap t and input
//! channel i, with `matrixmultiply`'s bits.
//!
//! The product form (`ops::conv_backward`: dW += dyᵀ·cols) runs, per
//! weight, one chain of fused multiply-adds from zero over each chunk of
//! [`CHUNK`] consecutive pixels and adds each chunk's sum to dW. The
//! bodies here do exactly that (a tap outside the map reads the border's
//! zero, as im2col's zero entry), so a training step's results do not
//! depend on which code ran; `tests/conv_weight_grad.rs` holds both
//! bodies to [`reference`] and to the product form bit for bit. A tile is
//! one vector of output channels × [`COLUMNS`] (tap, input channel)
//! columns in registers: per pixel, one load of dy and one broadcast per
//! column.

use crate::data::Shape;
use crate::kernel::dense::CHUNK;
use crate::net::simd::Isa;

/// (tap, input channel) columns of dW per tile.
pub const COLUMNS: usize = 12;

/// The shapes of one weight gradient: `batch` maps of `shape` (the
/// stage's input), a k×k kernel, `c_out` output channels.
#[derive(Clone, Copy, Debug)]
pub struct Geometry {
    /// Images.
    pub batch: usize,
    /// The stage's input maps.
    pub shape: Shape,
    /// k.
    pub kernel: usize,
    /// Output channels.
    pub c_out: usize,
}

impl Geometry {
    /// Output pixels of the batch.
    fn pixels(&self) -> usize {
        self.batch * self.shape.height * self.shape.width
    }

    /// Columns of dW: k·k·C_in.
    fn columns(&self) -> usize {
        self.kernel * self.kernel * self.shape.channels
    }

    /// Width of the bordered map.
    fn padded_width(&self) -> usize {
        self.shape.width + 2 * (self.kernel / 2)
    }

    /// Offset in the bordered map of column `col`'s input, from the
    /// window's top-left corner.
    fn column_offset(&self, col: usize) -> usize {
        let c_in = self.shape.channels;
        let (tap, i) = (col / c_in, col % c_in);
        let (dy, dx) = (tap / self.kernel, tap % self.kernel);
        (dy * self.padded_width() + dx) * c_in + i
    }

    /// The starts in the bordered map of the windows of output pixels p,
    /// p + 1, … (pixel order b, y, x), stepped without a division per
    /// pixel.
    fn windows_from(&self, p: usize) -> Windows {
        let (h, w, c_in) = (self.shape.height, self.shape.width, self.shape.channels);
        let border = 2 * (self.kernel / 2);
        let (hp, wp) = (h + border, self.padded_width());
        let (b, y, x) = (p / (h * w), (p / w) % h, p % w);
        Windows {
            start: ((b * hp + y) * wp + x) * c_in,
            x,
            y,
            width: w,
            height: h,
            c_in,
            row_skip: border * c_in,
            image_skip: border * wp * c_in,
        }
    }

    /// Panics unless the buffers have the geometry's sizes.
    fn check(&self, padded: &[f32], dy: &[f32], dw: &[f32]) {
        let (hp, wp) = (
            self.shape.height + 2 * (self.kernel / 2),
            self.padded_width(),
        );
        assert!(self.kernel % 2 == 1, "odd kernels only");
        assert_eq!(
            padded.len(),
            self.batch * hp * wp * self.shape.channels,
            "bordered input size"
        );
        assert_eq!(dy.len(), self.pixels() * self.c_out, "output gradient size");
        assert_eq!(
            dw.len(),
            self.c_out * self.columns(),
            "weight gradient size"
        );
    }
}

/// [`Geometry::windows_from`]: an endless walk over the output pixels.
struct Windows {
    start: usize,
    x: usize,
    y: usize,
    width: usize,
    height: usize,
    c_in: usize,
    /// The border between two rows of the bordered map.
    row_skip: usize,
    /// The border rows between two images.
    image_skip: usize,
}

impl Iterator for Windows {
    type Item = usize;

    #[inline(always)]
    fn next(&mut self) -> Option<usize> {
        let start = self.start;
        self.start += self.c_in;
        self.x += 1;
        if self.x == self.width {
            (self.x, self.start) = (0, self.start + self.row_skip);
            self.y += 1;
            if self.y == self.height {
                (self.y, self.start) = (0, self.start + self.image_skip);
            }
        }
        Some(start)
    }
}

/// dW (`[C_out, k, k, C_in]`) += the stage's weight gradient for the
/// output gradient `dy` (`[B, H, W, C_out]`, after the ReLU) and the input
/// map bordered by `direct::pad_input`, with the body of `isa` (which this
/// CPU must run), and returns true; on `Isa::Scalar` returns false and
/// leaves dW alone (the caller takes the product form, whose
/// `matrixmultiply` picks its own kernel).
pub fn try_weight_grad(isa: Isa, g: Geometry, padded: &[f32], dy: &[f32], dw: &mut [f32]) -> bool {
    g.check(padded, dy, dw);
    assert!(isa.supported(), "{} does not run on this CPU", isa.name());
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => {
            // SAFETY: AVX-512F is available (asserted).
            unsafe { avx512::weight_grad(g, padded, dy, dw) };
            true
        }
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2Fma => {
            // SAFETY: AVX2+FMA are available (asserted).
            unsafe { avx2::weight_grad(g, padded, dy, dw) };
            true
        }
        _ => false,
    }
}

/// The plain statement of the order: per weight and chunk of [`CHUNK`]
/// pixels, a chain of fused multiply-adds from zero, added to dW.
pub fn reference(g: Geometry, padded: &[f32], dy: &[f32], dw: &mut [f32]) {
    g.check(padded, dy, dw);
    for o in 0..g.c_out {
        for col in 0..g.columns() {
            let offset = g.column_offset(col);
            for first in (0..g.pixels()).step_by(CHUNK) {
                let mut chain = 0.0f32;
                let pixels = first..g.pixels().min(first + CHUNK);
                for (p, start) in pixels.zip(g.windows_from(first)) {
                    chain = dy[p * g.c_out + o].mul_add(padded[start + offset], chain);
                }
                dw[o * g.columns() + col] += chain;
            }
        }
    }
}

/// One SIMD body: `$lanes` output channels per vector.
#[cfg(target_arch = "x86_64")]
macro_rules! weight_grad_body {
    ($name:ident, $features:literal, $lanes:literal, $vector:ty, $zero:path, $set1:path,
     $fma:path, $load_lanes:path, $store:path) => {
        mod $name {
            use std::arch::x86_64::*;

            use rayon::prelude::*;

            use super::{CHUNK, COLUMNS, Geometry, $load_lanes};
            use crate::net::linalg::products_serial;

            /// # Safety
            /// The CPU must have the body's features; the sizes are
            /// checked by the caller ([`Geometry::check`]).
            #[target_feature(enable = $features)]
            pub unsafe fn weight_grad(g: Geometry, padded: &[f32], dy: &[f32], dw: &mut [f32]) {
                let columns = g.columns();
                // Tiles (a vector of output channels × COLUMNS columns) are
                // independent: each runs every chunk in order from its
                // weights' current values, on its own thread unless the
                // caller keeps every core busy.
                let column_tiles = columns.div_ceil(COLUMNS);
                let corner = |t: usize| (t / column_tiles * $lanes, t % column_tiles * COLUMNS);
                let tiles = g.c_out.div_ceil($lanes) * column_tiles;
                let dw_now: &[f32] = dw;
                let tile = |t: usize| -> Vec<f32> {
                    // SAFETY: the body's features are those the caller checked.
                    unsafe { weight_tile(g, padded, dy, corner(t), dw_now) }
                };
                let results: Vec<Vec<f32>> = if products_serial() {
                    (0..tiles).map(tile).collect()
                } else {
                    (0..tiles).into_par_iter().map(tile).collect()
                };
                for (t, values) in results.into_iter().enumerate() {
                    let (o0, col0) = corner(t);
                    let width = (columns - col0).min(COLUMNS);
                    for (i, value) in values.into_iter().enumerate() {
                        dw[(o0 + i / width) * columns + col0 + i % width] = value;
                    }
                }
            }

            /// One tile's weights (row by row: output channel, then
            /// column) after adding every chunk's sum to their values in
            /// `dw`, in chunk order.
            ///
            /// # Safety
            /// As [`weight_grad`].
            #[target_feature(enable = $features)]
            unsafe fn weight_tile(
                g: Geometry,
                padded: &[f32],
                dy: &[f32],
                (o0, col0): (usize, usize),
                dw: &[f32],
            ) -> Vec<f32> {
                let columns = g.columns();
                let lanes = (g.c_out - o0).min($lanes);
                let width = (columns - col0).min(COLUMNS);
                let mut values: Vec<f32> = (0..lanes * width)
                    .map(|i| dw[(o0 + i / width) * columns + col0 + i % width])
                    .collect();
                // Columns past `width` repeat the first: computed, not stored.
                let offsets: [usize; COLUMNS] =
                    std::array::from_fn(|j| g.column_offset(col0 + if j < width { j } else { 0 }));
                // The chunk's window starts, walked once per chunk so that
                // the pixel loop only reads them.
                let mut starts = [0usize; CHUNK];
                for first in (0..g.pixels()).step_by(CHUNK) {
                    let len = (g.pixels() - first).min(CHUNK);
                    for (slot, start) in starts[..len].iter_mut().zip(g.windows_from(first)) {
                        *slot = start;
                    }
                    let mut acc: [$vector; COLUMNS] = [$zero(); COLUMNS];
                    for (q, &start) in starts[..len].iter().enumerate() {
                        let at = (first + q) * g.c_out + o0;
                        // SAFETY: dy[at..at + lanes] is in bounds (its size
                        // checked by the caller), the other lanes masked
                        // off; every window + offset is inside the
                        // bordered map.
                        unsafe {
                            let gv = $load_lanes(dy.as_ptr().add(at), lanes);
                            let x = padded.as_ptr().add(start);
                            for (acc, &offset) in acc.iter_mut().zip(&offsets) {
                                *acc = $fma(gv, $set1(*x.add(offset)), *acc);
                            }
                        }
                    }
                    for (j, acc) in acc.iter().enumerate().take(width) {
                        let mut sums = [0.0f32; $lanes];
                        // SAFETY: `sums` holds a vector.
                        unsafe { $store(sums.as_mut_ptr(), *acc) };
                        for (l, &sum) in sums.iter().enumerate().take(lanes) {
                            values[l * width + j] += sum;
                        }
                    }
                }
                values
            }
        }
    };
}

/// The first `lanes` (≤ 8) floats at `p`, zero above.
///
/// # Safety
/// AVX2 must be available and the `lanes` floats readable.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn load_lanes_avx2(p: *const f32, lanes: usize) -> std::arch::x86_64::__m256 {
    use std::arch::x86_64::*;
    let index = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    let mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(lanes as i32), index);
    // SAFETY: only the masked lanes are read, in bounds by the contract.
    unsafe { _mm256_maskload_ps(p, mask) }
}

/// The first `lanes` (≤ 16) floats at `p`, zero above.
///
/// # Safety
/// AVX-512F must be available and the `lanes` floats readable.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn load_lanes_avx512(p: *const f32, lanes: usize) -> std::arch::x86_64::__m512 {
    use std::arch::x86_64::*;
    let mask = ((1u32 << lanes) - 1) as __mmask16;
    // SAFETY: only the masked lanes are read, in bounds by the contract.
    unsafe { _mm512_maskz_loadu_ps(mask, p) }
}

#[cfg(target_arch = "x86_64")]
weight_grad_body!(
    avx2,
    "avx2,fma",
    8,
    __m256,
    _mm256_setzero_ps,
    _mm256_set1_ps,
    _mm256_fmadd_ps,
    load_lanes_avx2,
    _mm256_storeu_ps
);
#[cfg(target_arch = "x86_64")]
weight_grad_body!(
    avx512,
    "avx512f",
    16,
    __m512,
    _mm512_setzero_ps,
    _mm512_set1_ps,
    _mm512_fmadd_ps,
    load_lanes_avx512,
    _mm512_storeu_ps
);
