//! Products with a few rows: the training steps' C = A·B with A a batch of
//! two examples (§4), without `matrixmultiply`'s packing of B and its
//! 16-row micro-tiles (which pad two rows to sixteen), and with its bits;
//! and products with a few inputs, the steps' weight gradients dZᵀ·X over
//! a batch of two, where `matrixmultiply` packed both operands to run two
//! multiply-adds per output.
//!
//! `matrixmultiply` (on a CPU with FMA, which it detects on its own) splits
//! the inputs into chunks of [`CHUNK`], runs one chain of fused
//! multiply-adds per output and chunk from zero, and adds each chunk's sum
//! to C (the first one replaces C when β = 0). The AVX2+FMA body here does
//! exactly that (on AVX-512 machines too: no AVX-512 body was written for
//! these small products), so a step's results do not depend on which code
//! multiplied; the property test in `tests/few_rows.rs` holds it to the
//! scalar statement [`reference()`] and to `matrixmultiply` bit for bit.
//!
//! Two layouts of B are served: rows contiguous (B = W, the backward pass's
//! dX = dZ·W, and B = X of a weight gradient) and columns contiguous
//! (B = Wᵀ, the forward pass's X·Wᵀ), the second by transposing 8×8
//! blocks of W in registers.

use crate::kernel::dense::CHUNK;
use crate::net::simd::Isa;

/// The most rows of A this path takes with any number of inputs; larger
/// products go to `matrixmultiply` unless they have few inputs.
pub const MAX_ROWS: usize = 4;
/// The most inputs (columns of A) of a product of more rows that this
/// path takes.
pub const MAX_INPUTS: usize = 4;

/// A strided f32 matrix: element (i, j) at `ptr + i·rs + j·cs`.
#[derive(Clone, Copy, Debug)]
pub struct View {
    /// Element (0, 0).
    pub ptr: *const f32,
    /// Row stride, in elements.
    pub rs: isize,
    /// Column stride, in elements.
    pub cs: isize,
}

impl View {
    /// Element (i, j).
    ///
    /// # Safety
    /// The element must be in bounds.
    #[inline(always)]
    unsafe fn at(self, i: usize, j: usize) -> f32 {
        // SAFETY: by the caller's contract.
        unsafe { *self.ptr.offset(i as isize * self.rs + j as isize * self.cs) }
    }
}

/// The shape and operands of C[m×n] = A[m×k]·B[k×n] (+ C when
/// `accumulate`), C row-major at `c` with row stride `rsc`.
#[derive(Clone, Copy, Debug)]
pub struct Product {
    /// Rows of A and C.
    pub m: usize,
    /// Columns of A, rows of B.
    pub k: usize,
    /// Columns of B and C.
    pub n: usize,
    /// A.
    pub a: View,
    /// B.
    pub b: View,
    /// C ← C + A·B instead of C ← A·B.
    pub accumulate: bool,
    /// C's first element.
    pub c: *mut f32,
    /// C's row stride.
    pub rsc: usize,
}

/// Computes `p` when this path serves it and returns true; else returns
/// false and touches nothing. It serves, on a CPU with AVX2+FMA that
/// `COMOD_ISA` does not cap below it, products of at most [`MAX_ROWS`]
/// rows with one of B's strides 1, and products of any number of rows
/// with at most [`MAX_INPUTS`] inputs and B's rows contiguous (a weight
/// gradient dW = dZᵀ·X of a batch of a few examples), row by row.
///
/// # Safety
/// Every element the shape and strides describe must be in bounds, and C
/// must be writable and alias neither A nor B.
pub unsafe fn try_product(p: &Product) -> bool {
    if p.m == 0 || p.k == 0 || p.n == 0 || Isa::selected() < Isa::Avx2Fma {
        return false;
    }
    let few_inputs = p.k <= MAX_INPUTS && p.b.cs == 1;
    if p.m > MAX_ROWS && !few_inputs {
        return false;
    }
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: AVX2+FMA checked above; bounds by the caller's contract.
        unsafe {
            if p.m > MAX_ROWS {
                avx2::few_inputs(p);
                return true;
            }
            if p.b.cs == 1 {
                avx2::rows_contiguous(p);
                return true;
            }
            if p.b.rs == 1 {
                avx2::columns_contiguous(p);
                return true;
            }
        }
    }
    false
}

/// The plain statement of the order: per output and chunk of [`CHUNK`]
/// inputs, a chain of fused multiply-adds from zero, added to C.
///
/// # Safety
/// As [`try_product`].
pub unsafe fn reference(p: &Product) {
    for i in 0..p.m {
        for j in 0..p.n {
            // SAFETY: in bounds by the caller's contract.
            let c = unsafe { &mut *p.c.add(i * p.rsc + j) };
            for start in (0..p.k).step_by(CHUNK) {
                let mut chain = 0.0f32;
                for l in start..p.k.min(start + CHUNK) {
                    // SAFETY: in bounds by the caller's contract.
                    chain = unsafe { p.a.at(i, l).mul_add(p.b.at(l, j), chain) };
                }
                *c = if start == 0 && !p.accumulate {
                    chain
                } else {
                    *c + chain
                };
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use crate::net::simd::lanes::first8;

    use super::{CHUNK, MAX_ROWS, Product};

    /// f32 lanes of a register.
    const LANES: usize = 8;

    /// Calls `$body::<M>(p)` for M = `p.m` (1 to [`MAX_ROWS`]), so that
    /// each row count gets its own register allocation.
    macro_rules! for_rows {
        ($body:ident, $p:expr) => {
            match $p.m {
                1 => $body::<1>($p),
                2 => $body::<2>($p),
                3 => $body::<3>($p),
                _ => $body::<4>($p),
            }
        };
    }
    /// Registers of C per row in the row-contiguous body.
    const WIDE: usize = 4;

    /// C ← chain (the first chunk without `accumulate`) or C + chain, on
    /// `lanes` columns at `c`.
    ///
    /// # Safety
    /// `lanes` ≤ 8 elements at `c` must be writable.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn store(c: *mut f32, chain: __m256, replace: bool, lanes: usize) {
        // SAFETY: by the caller's contract (masked lanes only).
        unsafe {
            if lanes == LANES {
                let v = if replace {
                    chain
                } else {
                    _mm256_add_ps(_mm256_loadu_ps(c), chain)
                };
                _mm256_storeu_ps(c, v);
            } else {
                let m = first8(lanes);
                let v = if replace {
                    chain
                } else {
                    _mm256_add_ps(_mm256_maskload_ps(c, m), chain)
                };
                _mm256_maskstore_ps(c, m, v);
            }
        }
    }

    /// B with unit column stride: 8·[`WIDE`] columns of C per pass, one
    /// broadcast of A per row and input.
    ///
    /// # Safety
    /// AVX2+FMA; bounds as [`super::try_product`].
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn rows_contiguous(p: &Product) {
        // SAFETY: by the caller's contract.
        unsafe { for_rows!(rows_contiguous_m, p) }
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn rows_contiguous_m<const M: usize>(p: &Product) {
        debug_assert!(M <= MAX_ROWS && p.b.cs == 1);
        for j0 in (0..p.n).step_by(LANES * WIDE) {
            let width = (p.n - j0).min(LANES * WIDE);
            let vectors = width.div_ceil(LANES);
            let masks: [__m256i; WIDE] =
                std::array::from_fn(|v| first8(width.saturating_sub(v * LANES)));
            for start in (0..p.k).step_by(CHUNK) {
                let mut acc = [[_mm256_setzero_ps(); WIDE]; M];
                for l in start..p.k.min(start + CHUNK) {
                    // SAFETY: row l, columns j0..j0 + width of B are in
                    // bounds (masked past `width`); A's (i, l) too.
                    unsafe {
                        let row = p.b.ptr.offset(l as isize * p.b.rs).add(j0);
                        let w: [__m256; WIDE] = std::array::from_fn(|v| {
                            if v < vectors {
                                _mm256_maskload_ps(row.add(v * LANES), masks[v])
                            } else {
                                _mm256_setzero_ps()
                            }
                        });
                        for (i, acc) in acc.iter_mut().enumerate() {
                            let x = _mm256_set1_ps(p.a.at(i, l));
                            for v in 0..vectors {
                                acc[v] = _mm256_fmadd_ps(x, w[v], acc[v]);
                            }
                        }
                    }
                }
                let replace = start == 0 && !p.accumulate;
                for (i, acc) in acc.iter().enumerate() {
                    for (v, &chain) in acc.iter().enumerate().take(vectors) {
                        let lanes = (width - v * LANES).min(LANES);
                        // SAFETY: row i, columns j0 + 8v.. of C are in bounds.
                        unsafe {
                            store(p.c.add(i * p.rsc + j0 + v * LANES), chain, replace, lanes)
                        };
                    }
                }
            }
        }
    }

    /// At most [`super::MAX_INPUTS`] inputs and B's rows contiguous (a
    /// weight gradient dW = dZᵀ·X of a batch of a few examples): row by
    /// row of C, its inputs' values of A broadcast once, then each 8
    /// columns one chain of fused multiply-adds from zero. `retrain`'s
    /// steps had run them through [`rows_contiguous`] four rows at a time,
    /// a pass per 32 columns with its masks and branches rebuilt each time:
    /// the weight gradients of one `retrain` step of `paper3` took 13.8–16.0
    /// µs against 49.6–51.4 µs (one thread of an Intel Xeon, Emerald Rapids;
    /// medians of 41 × 200 steps' products, three alternations); `cargo
    /// bench --bench throughput -- weight_gradients` reads 14.1–18.2 µs.
    ///
    /// # Safety
    /// AVX2+FMA; bounds as [`super::try_product`].
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn few_inputs(p: &Product) {
        // SAFETY: by the caller's contract.
        unsafe {
            match p.k {
                1 => few_inputs_k::<1>(p),
                2 => few_inputs_k::<2>(p),
                3 => few_inputs_k::<3>(p),
                _ => few_inputs_k::<4>(p),
            }
        }
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn few_inputs_k<const K: usize>(p: &Product) {
        debug_assert!(K == p.k && K < CHUNK && p.b.cs == 1);
        // One chunk: its chain replaces C unless C accumulates.
        let replace = !p.accumulate;
        let whole = p.n / LANES * LANES;
        let (tail, mask) = (p.n - whole, first8(p.n - whole));
        let b = |l: usize| p.b.ptr.wrapping_offset(l as isize * p.b.rs);
        for i in 0..p.m {
            let mut x = [_mm256_setzero_ps(); K];
            for (l, x) in x.iter_mut().enumerate() {
                // SAFETY: A's (i, l) is in bounds.
                *x = _mm256_set1_ps(unsafe { p.a.at(i, l) });
            }
            let c = p.c.wrapping_add(i * p.rsc);
            for j in (0..whole).step_by(LANES) {
                let mut chain = _mm256_setzero_ps();
                for (l, &x) in x.iter().enumerate() {
                    // SAFETY: B's row l, columns j..j + 8 < n, are in bounds.
                    chain = _mm256_fmadd_ps(x, unsafe { _mm256_loadu_ps(b(l).add(j)) }, chain);
                }
                // SAFETY: C's row i, columns j..j + 8, are in bounds.
                unsafe { store(c.add(j), chain, replace, LANES) };
            }
            if tail > 0 {
                let mut chain = _mm256_setzero_ps();
                for (l, &x) in x.iter().enumerate() {
                    // SAFETY: the masked lanes, B's row l from column
                    // `whole` to n, are in bounds.
                    let w = unsafe { _mm256_maskload_ps(b(l).add(whole), mask) };
                    chain = _mm256_fmadd_ps(x, w, chain);
                }
                // SAFETY: C's row i, columns whole..n, are in bounds.
                unsafe { store(c.add(whole), chain, replace, tail) };
            }
        }
    }

    /// Rows r0..r7 (r_i: 8 consecutive inputs of output i) into columns:
    /// result kk holds input kk of the 8 outputs.
    #[target_feature(enable = "avx2")]
    #[inline]
    fn transpose8(r: [__m256; 8]) -> [__m256; 8] {
        let t0 = _mm256_unpacklo_ps(r[0], r[1]);
        let t1 = _mm256_unpackhi_ps(r[0], r[1]);
        let t2 = _mm256_unpacklo_ps(r[2], r[3]);
        let t3 = _mm256_unpackhi_ps(r[2], r[3]);
        let t4 = _mm256_unpacklo_ps(r[4], r[5]);
        let t5 = _mm256_unpackhi_ps(r[4], r[5]);
        let t6 = _mm256_unpacklo_ps(r[6], r[7]);
        let t7 = _mm256_unpackhi_ps(r[6], r[7]);
        let s0 = _mm256_shuffle_ps::<0x44>(t0, t2);
        let s1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
        let s2 = _mm256_shuffle_ps::<0x44>(t1, t3);
        let s3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
        let s4 = _mm256_shuffle_ps::<0x44>(t4, t6);
        let s5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
        let s6 = _mm256_shuffle_ps::<0x44>(t5, t7);
        let s7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
        [
            _mm256_permute2f128_ps::<0x20>(s0, s4),
            _mm256_permute2f128_ps::<0x20>(s1, s5),
            _mm256_permute2f128_ps::<0x20>(s2, s6),
            _mm256_permute2f128_ps::<0x20>(s3, s7),
            _mm256_permute2f128_ps::<0x31>(s0, s4),
            _mm256_permute2f128_ps::<0x31>(s1, s5),
            _mm256_permute2f128_ps::<0x31>(s2, s6),
            _mm256_permute2f128_ps::<0x31>(s3, s7),
        ]
    }

    /// B with unit row stride (B = Wᵀ, W's rows contiguous): 8 outputs per
    /// pass; 8 inputs of 8 rows of W are loaded and transposed in
    /// registers, the inputs past a multiple of 8 gathered one by one.
    ///
    /// # Safety
    /// AVX2+FMA; bounds as [`super::try_product`].
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn columns_contiguous(p: &Product) {
        // SAFETY: by the caller's contract.
        unsafe { for_rows!(columns_contiguous_m, p) }
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn columns_contiguous_m<const M: usize>(p: &Product) {
        debug_assert!(M <= MAX_ROWS && p.b.rs == 1);
        // Output j's inputs start at w(j); rows past n read as zero.
        let w = |j: usize| p.b.ptr.wrapping_offset(j as isize * p.b.cs);
        for j0 in (0..p.n).step_by(LANES) {
            let width = (p.n - j0).min(LANES);
            for start in (0..p.k).step_by(CHUNK) {
                let end = p.k.min(start + CHUNK);
                let mut acc = [_mm256_setzero_ps(); M];
                let whole = start + (end - start) / LANES * LANES;
                for l0 in (start..whole).step_by(LANES) {
                    // SAFETY: inputs l0..l0 + 8 of outputs j0..j0 + width are
                    // in bounds; A's (i, l) too.
                    unsafe {
                        let rows: [__m256; LANES] = std::array::from_fn(|o| {
                            if o < width {
                                _mm256_loadu_ps(w(j0 + o).add(l0))
                            } else {
                                _mm256_setzero_ps()
                            }
                        });
                        let columns = transpose8(rows);
                        for (kk, column) in columns.into_iter().enumerate() {
                            for (i, acc) in acc.iter_mut().enumerate() {
                                let x = _mm256_set1_ps(p.a.at(i, l0 + kk));
                                *acc = _mm256_fmadd_ps(x, column, *acc);
                            }
                        }
                    }
                }
                for l in whole..end {
                    // SAFETY: input l of outputs j0..j0 + width is in bounds.
                    unsafe {
                        let mut column = [0.0f32; LANES];
                        for (o, v) in column.iter_mut().enumerate().take(width) {
                            *v = *w(j0 + o).add(l);
                        }
                        let column = _mm256_loadu_ps(column.as_ptr());
                        for (i, acc) in acc.iter_mut().enumerate() {
                            *acc = _mm256_fmadd_ps(_mm256_set1_ps(p.a.at(i, l)), column, *acc);
                        }
                    }
                }
                let replace = start == 0 && !p.accumulate;
                for (i, &chain) in acc.iter().enumerate() {
                    // SAFETY: row i, columns j0..j0 + width of C are in bounds.
                    unsafe { store(p.c.add(i * p.rsc + j0), chain, replace, width) };
                }
            }
        }
    }
}
