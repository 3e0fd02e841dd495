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
//! bodies to [`reference()`] and to the product form bit for bit.
//!
//! A tile is one vector of output channels × up to 24 (AVX-512; 12 on
//! AVX2) (tap, input channel) columns in registers: per pixel, one load
//! of dy and one broadcast per column. Each chunk runs through every tile
//! while its pixels are in cache. Across threads, the pixels are split
//! (each thread its own run of chunks, the sums of the later runs kept
//! and added in chunk order), so each thread reads its part of the maps
//! once; only where those sums would take too much memory do the threads
//! split the tiles instead.

use crate::data::Shape;
use crate::kernel::dense::CHUNK;
use crate::net::simd::Isa;
#[cfg(target_arch = "x86_64")]
use crate::net::simd::lanes::{first8, first16};

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

/// Bytes of chunk sums a split of the pixels over threads may keep for
/// the chunks past the first thread's (beyond it, the threads split the
/// tiles instead).
const KEPT_SUMS_MAX: usize = 8 << 20;

/// One SIMD body: `$lanes` output channels per vector, `$columns` columns
/// per tile.
#[cfg(target_arch = "x86_64")]
macro_rules! weight_grad_body {
    ($name:ident, $features:literal, $lanes:literal, $columns:literal, $vector:ty, $zero:path,
     $set1:path, $fma:path, $load_lanes:path, $loadu:path, $storeu:path, $add:path) => {
        mod $name {
            use std::arch::x86_64::*;
            use std::ops::Range;

            use rayon::prelude::*;

            use super::{CHUNK, Geometry, KEPT_SUMS_MAX, $load_lanes};
            use crate::net::linalg::products_serial;

            /// Output channels per vector.
            const LANES: usize = $lanes;
            /// (tap, input channel) columns per tile.
            const COLUMNS: usize = $columns;
            /// Floats of one tile: a vector of output channels per column.
            const TILE: usize = LANES * COLUMNS;

            /// # Safety
            /// The CPU must have the body's features; the sizes are
            /// checked by the caller ([`Geometry::check`]).
            #[target_feature(enable = $features)]
            pub unsafe fn weight_grad(g: Geometry, padded: &[f32], dy: &[f32], dw: &mut [f32]) {
                let threads = if products_serial() {
                    1
                } else {
                    rayon::current_num_threads()
                };
                // SAFETY: as this function's.
                unsafe { split_weight_grad(g, padded, dy, dw, threads, KEPT_SUMS_MAX) }
            }

            /// [`weight_grad`] on up to `threads` threads: split over the
            /// pixels while the sums kept take at most `kept_max` bytes,
            /// else over the tiles.
            ///
            /// # Safety
            /// As [`weight_grad`].
            #[target_feature(enable = $features)]
            pub(in crate::conv::weight_grad) unsafe fn split_weight_grad(
                g: Geometry,
                padded: &[f32],
                dy: &[f32],
                dw: &mut [f32],
                threads: usize,
                kept_max: usize,
            ) {
                let columns = g.columns();
                let column_tiles = columns.div_ceil(COLUMNS);
                let corners: Vec<(usize, usize)> = (0..g.c_out.div_ceil(LANES) * column_tiles)
                    .map(|t| (t / column_tiles * LANES, t % column_tiles * COLUMNS))
                    .collect();
                // dW in tile layout (per tile, per column, a vector of
                // output channels); lanes and columns past dW's stay 0.
                let to_dw = |at: usize| {
                    let (t, j, l) = (at / TILE, at % TILE / LANES, at % LANES);
                    let (o, col) = (corners[t].0 + l, corners[t].1 + j);
                    (o < g.c_out && col < columns).then_some(o * columns + col)
                };
                let mut values: Vec<f32> = (0..corners.len() * TILE)
                    .map(|at| to_dw(at).map_or(0.0, |w| dw[w]))
                    .collect();
                let chunks = g.pixels().div_ceil(CHUNK);
                let threads = threads.min(chunks).max(1);
                let kept = (chunks - chunks / threads) * values.len() * size_of::<f32>();
                let part = |k: usize, parts: usize, n: usize| k * n / parts..(k + 1) * n / parts;
                if threads == 1 {
                    // SAFETY (here and below): the body's features are
                    // those the caller checked.
                    unsafe { chunk_sums(g, padded, dy, &corners, 0..chunks, &mut values, false) };
                } else if kept <= kept_max {
                    // The threads take consecutive chunks: the first adds
                    // its sums to dW as it goes, the others keep theirs,
                    // added after it in chunk order, so every weight's
                    // chain is the one-thread chain (§6).
                    let parts: Vec<Vec<f32>> = (0..threads)
                        .into_par_iter()
                        .map(|k| {
                            let range = part(k, threads, chunks);
                            let mut out = if k == 0 {
                                values.clone()
                            } else {
                                vec![0.0; range.len() * values.len()]
                            };
                            unsafe { chunk_sums(g, padded, dy, &corners, range, &mut out, k > 0) };
                            out
                        })
                        .collect();
                    let mut parts = parts.into_iter();
                    values = parts.next().expect("a first part");
                    for kept in parts {
                        for sums in kept.chunks_exact(values.len()) {
                            values.iter_mut().zip(sums).for_each(|(v, s)| *v += s);
                        }
                    }
                } else {
                    // Each thread takes some tiles through every chunk.
                    let tiles = corners.len();
                    let groups = threads.min(tiles);
                    let mut rest = values.as_mut_slice();
                    let mut jobs = Vec::with_capacity(groups);
                    for k in 0..groups {
                        let range = part(k, groups, tiles);
                        let (mine, others) = rest.split_at_mut(range.len() * TILE);
                        jobs.push((range, mine));
                        rest = others;
                    }
                    jobs.into_par_iter().for_each(|(range, mine)| unsafe {
                        chunk_sums(g, padded, dy, &corners[range], 0..chunks, mine, false)
                    });
                }
                for (at, &value) in values.iter().enumerate() {
                    if let Some(w) = to_dw(at) {
                        dw[w] = value;
                    }
                }
            }

            /// Each chunk of `chunks`, in order, through the tiles with
            /// top-left `corners`: its sums added to the tiles' values in
            /// `out` (`keep` false; one tile after another), or stored
            /// (`keep` true; one set of tiles per chunk).
            ///
            /// # Safety
            /// As [`weight_grad`].
            #[target_feature(enable = $features)]
            unsafe fn chunk_sums(
                g: Geometry,
                padded: &[f32],
                dy: &[f32],
                corners: &[(usize, usize)],
                chunks: Range<usize>,
                out: &mut [f32],
                keep: bool,
            ) {
                let columns = g.columns();
                // Per tile: its columns' offsets, and whether they lie side
                // by side in the bordered map (the columns of one tap
                // row): then they are read at fixed distances from the
                // first (no offset held in a register each).
                let tiles: Vec<TileColumns> = corners
                    .iter()
                    .map(|&(_, col0)| {
                        let width = (columns - col0).min(COLUMNS);
                        let offsets: [usize; COLUMNS] =
                            std::array::from_fn(|j| g.column_offset(col0 + j.min(width - 1)));
                        // Only for whole vectors of 4 columns: then N is the
                        // width, and no read passes the tile's last column.
                        let side_by_side = width % 4 == 0
                            && (0..width).all(|j| offsets[j] == offsets[0] + j);
                        TileColumns {
                            offsets,
                            side_by_side,
                            width,
                        }
                    })
                    .collect();
                // The chunk's window starts, walked once per chunk so that
                // the pixel loops only read them.
                let mut starts = [0usize; CHUNK];
                for (n, chunk) in chunks.enumerate() {
                    let first = chunk * CHUNK;
                    let len = (g.pixels() - first).min(CHUNK);
                    for (slot, start) in starts[..len].iter_mut().zip(g.windows_from(first)) {
                        *slot = start;
                    }
                    for (t, (&(o0, _), tile)) in corners.iter().zip(&tiles).enumerate() {
                        let slot = if keep { (n * corners.len() + t) * TILE } else { t * TILE };
                        let pixels = Pixels {
                            g: &g,
                            padded,
                            dy,
                            starts: &starts[..len],
                            first,
                            o0,
                        };
                        let slot = &mut out[slot..slot + TILE];
                        // Whole vectors of 4 columns: a last tile of fewer
                        // columns (9 for a first stage's 3×3 taps) computes
                        // the next multiple of 4, not COLUMNS.
                        // SAFETY: the body's features are those the caller
                        // checked.
                        unsafe {
                            match tile.width.div_ceil(4) {
                                1 => pixels.sums::<4>(tile, slot, keep),
                                2 => pixels.sums::<8>(tile, slot, keep),
                                3 => pixels.sums::<12>(tile, slot, keep),
                                4 => pixels.sums::<16>(tile, slot, keep),
                                5 => pixels.sums::<20>(tile, slot, keep),
                                _ => pixels.sums::<COLUMNS>(tile, slot, keep),
                            }
                        }
                    }
                }
            }

            /// A tile's columns: each one's offset in a window of the
            /// bordered map (columns past `width` repeat the last), and
            /// whether they lie side by side there.
            struct TileColumns {
                offsets: [usize; COLUMNS],
                side_by_side: bool,
                width: usize,
            }

            /// One chunk's pixels for one tile: the tile's first output
            /// channel `o0`, the pixels from `first` with their windows'
            /// `starts`.
            struct Pixels<'a> {
                g: &'a Geometry,
                padded: &'a [f32],
                dy: &'a [f32],
                starts: &'a [usize],
                first: usize,
                o0: usize,
            }

            impl Pixels<'_> {
                /// The chunk's sums of the tile's first N columns (N at
                /// most COLUMNS, at least the tile's width; the columns
                /// past the width repeat its last, computed and never read
                /// back), added to `slot` (`keep` false) or stored in it.
                ///
                /// # Safety
                /// As [`weight_grad`].
                #[target_feature(enable = $features)]
                #[inline]
                unsafe fn sums<const N: usize>(
                    &self,
                    tile: &TileColumns,
                    slot: &mut [f32],
                    keep: bool,
                ) {
                    debug_assert!(tile.width <= N && N <= COLUMNS, "N covers the tile");
                    let (g, offsets, side_by_side) = (self.g, tile.offsets, tile.side_by_side);
                    let lanes = (g.c_out - self.o0).min(LANES);
                    let mut acc: [$vector; N] = [$zero(); N];
                    for (q, &start) in self.starts.iter().enumerate() {
                        let at = (self.first + q) * g.c_out + self.o0;
                        // SAFETY: dy[at..at + lanes] is in bounds (its size
                        // checked by the caller), the other lanes masked
                        // off; every window + offset is inside the
                        // bordered map.
                        unsafe {
                            let gv = $load_lanes(self.dy.as_ptr().add(at), lanes);
                            let x = self.padded.as_ptr().add(start);
                            if side_by_side {
                                let x = x.add(offsets[0]);
                                for (j, acc) in acc.iter_mut().enumerate() {
                                    *acc = $fma(gv, $set1(*x.add(j)), *acc);
                                }
                            } else {
                                for (acc, &offset) in acc.iter_mut().zip(&offsets) {
                                    *acc = $fma(gv, $set1(*x.add(offset)), *acc);
                                }
                            }
                        }
                    }
                    for (acc, at) in acc.iter().zip(slot.chunks_exact_mut(LANES)) {
                        // SAFETY: `at` holds a vector.
                        unsafe {
                            let sum = if keep { *acc } else { $add($loadu(at.as_ptr()), *acc) };
                            $storeu(at.as_mut_ptr(), sum);
                        }
                    }
                }
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
    // SAFETY: only the masked lanes are read, in bounds by the contract.
    unsafe { std::arch::x86_64::_mm256_maskload_ps(p, first8(lanes)) }
}

/// The first `lanes` (≤ 16) floats at `p`, zero above.
///
/// # Safety
/// AVX-512F must be available and the `lanes` floats readable.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn load_lanes_avx512(p: *const f32, lanes: usize) -> std::arch::x86_64::__m512 {
    // SAFETY: only the masked lanes are read, in bounds by the contract.
    unsafe { std::arch::x86_64::_mm512_maskz_loadu_ps(first16(lanes), p) }
}

#[cfg(target_arch = "x86_64")]
weight_grad_body!(
    avx2,
    "avx2,fma",
    8,
    12,
    __m256,
    _mm256_setzero_ps,
    _mm256_set1_ps,
    _mm256_fmadd_ps,
    load_lanes_avx2,
    _mm256_loadu_ps,
    _mm256_storeu_ps,
    _mm256_add_ps
);
#[cfg(target_arch = "x86_64")]
weight_grad_body!(
    avx512,
    "avx512f",
    16,
    24,
    __m512,
    _mm512_setzero_ps,
    _mm512_set1_ps,
    _mm512_fmadd_ps,
    load_lanes_avx512,
    _mm512_loadu_ps,
    _mm512_storeu_ps,
    _mm512_add_ps
);

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;
    use crate::conv::direct::pad_input;
    use proptest::prelude::*;
    use rand::{RngExt, SeedableRng};
    use rand_xoshiro::Xoshiro256PlusPlus;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// Every way of splitting the work over threads (one thread; the
        /// pixels, the later runs' sums kept; the tiles, where the sums
        /// would take too much memory) gives the statement's bits, on
        /// every SIMD body this CPU runs.
        #[test]
        fn every_split_gives_the_statements_bits(
            batch in 1usize..9, c_in in prop_oneof![1usize..4, Just(8), Just(16)],
            side in 5usize..13, c_out in 1usize..34, half in 0usize..3,
            threads in 1usize..5, seed in any::<u64>(),
        ) {
            let shape = Shape { channels: c_in, height: side, width: side + 1 };
            let g = Geometry { batch, shape, kernel: 2 * half + 1, c_out };
            let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
            let mut values = |len: usize| -> Vec<f32> {
                (0..len).map(|_| rng.random_range(-1.0f32..1.0)).collect()
            };
            let x = values(batch * shape.len());
            let dy = values(g.pixels() * c_out);
            let start = values(c_out * g.columns());
            let mut padded = Vec::new();
            pad_input(&x, batch, shape, g.kernel, &mut padded);
            let mut expected = start.clone();
            reference(g, &padded, &dy, &mut expected);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            for kept_max in [usize::MAX, 0] {
                let mut dw = start.clone();
                if Isa::Avx512.supported() {
                    // SAFETY: AVX-512F is available.
                    unsafe { avx512::split_weight_grad(g, &padded, &dy, &mut dw, threads, kept_max) };
                    prop_assert_eq!(bits(&dw), bits(&expected), "AVX-512, {} threads, {}", threads, kept_max);
                }
                if Isa::Avx2Fma.supported() {
                    let mut dw = start.clone();
                    // SAFETY: AVX2 and FMA are available.
                    unsafe { avx2::split_weight_grad(g, &padded, &dy, &mut dw, threads, kept_max) };
                    prop_assert_eq!(bits(&dw), bits(&expected), "AVX2, {} threads, {}", threads, kept_max);
                }
            }
        }
    }
}
