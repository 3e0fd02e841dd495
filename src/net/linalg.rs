//! The scalar type of the network and its matrix product.
//!
//! The network code is generic over [`Real`] so that the very same layer
//! code runs in f32 (training, checkpoints) and in f64 (the gradient checks
//! against finite differences). Products go through `matrixmultiply`; large
//! ones are split over row blocks of the output, one per thread; f32
//! products of at most four rows (a training step's batch) take the
//! few-rows path ([`crate::net::few_rows`]), which gives `matrixmultiply`'s
//! bits without its packing. With α = 1 and β ∈ {0, 1} (the only forms
//! offered), `matrixmultiply` computes every output element by the same
//! sequence of operations whether it falls in a full or an edge tile, so
//! the split never changes a bit of the result and results do not depend
//! on the thread count (§6); a test checks it.

use std::fmt::Debug;
use std::ops::{Add, AddAssign, Div, Mul, MulAssign, Neg, Sub, SubAssign};

use rayon::prelude::*;

/// A floating-point type the network can run in: f32 or f64.
pub trait Real:
    bytemuck::Pod
    + Send
    + Sync
    + Default
    + Debug
    + PartialOrd
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
    + AddAssign
    + SubAssign
    + MulAssign
    + 'static
{
    /// Zero.
    const ZERO: Self;
    /// One.
    const ONE: Self;
    /// Conversion from f64 (rounding for f32).
    fn from_f64(x: f64) -> Self;
    /// Conversion to f64 (exact).
    fn to_f64(self) -> f64;
    /// e^self.
    fn exp(self) -> Self;
    /// xs ← e^xs (vectorised for f32, see [`crate::net::vexp`]).
    fn exp_in_place(xs: &mut [Self]);
    /// Natural logarithm.
    fn ln(self) -> Self;
    /// ln(1 + self), accurate for small values.
    fn ln_1p(self) -> Self;
    /// The larger of the two.
    fn max(self, other: Self) -> Self;
    /// |self|.
    fn abs(self) -> Self;
    /// C = α·A·B + β·C on raw strided buffers (`matrixmultiply` sgemm/dgemm).
    ///
    /// # Safety
    /// Every index the strides and sizes describe must lie inside the
    /// buffers, and `c` must not alias `a` or `b`.
    #[allow(clippy::too_many_arguments)]
    unsafe fn gemm_raw(
        m: usize,
        k: usize,
        n: usize,
        alpha: Self,
        a: *const Self,
        rsa: isize,
        csa: isize,
        b: *const Self,
        rsb: isize,
        csb: isize,
        beta: Self,
        c: *mut Self,
        rsc: isize,
        csc: isize,
    );
}

macro_rules! impl_real {
    ($t:ty, $gemm:path, $exp_in_place:expr) => {
        impl Real for $t {
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            fn from_f64(x: f64) -> Self {
                x as $t
            }
            fn to_f64(self) -> f64 {
                self as f64
            }
            fn exp(self) -> Self {
                <$t>::exp(self)
            }
            fn exp_in_place(xs: &mut [Self]) {
                $exp_in_place(xs)
            }
            fn ln(self) -> Self {
                <$t>::ln(self)
            }
            fn ln_1p(self) -> Self {
                <$t>::ln_1p(self)
            }
            fn max(self, other: Self) -> Self {
                <$t>::max(self, other)
            }
            fn abs(self) -> Self {
                <$t>::abs(self)
            }
            unsafe fn gemm_raw(
                m: usize,
                k: usize,
                n: usize,
                alpha: Self,
                a: *const Self,
                rsa: isize,
                csa: isize,
                b: *const Self,
                rsb: isize,
                csb: isize,
                beta: Self,
                c: *mut Self,
                rsc: isize,
                csc: isize,
            ) {
                // SAFETY: the caller guarantees the bounds and no aliasing.
                unsafe { $gemm(m, k, n, alpha, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc) }
            }
        }
    };
}

impl_real!(f32, matrixmultiply::sgemm, crate::net::vexp::exp_in_place);
impl_real!(f64, matrixmultiply::dgemm, |xs: &mut [f64]| xs
    .iter_mut()
    .for_each(|x| *x = x.exp()));

/// The index of the first non-finite value of `values`, for the fault
/// checks of §6. Blocks are tested branch-free (the test vectorises), and
/// only a block that holds one is searched, so a clean tensor costs one
/// streaming pass.
pub fn first_non_finite<T: Real>(values: &[T]) -> Option<usize> {
    const BLOCK: usize = 1024;
    let bad = |v: &T| !v.to_f64().is_finite();
    values.chunks(BLOCK).enumerate().find_map(|(b, block)| {
        let any = block.iter().fold(false, |any, v| any | bad(v));
        any.then(|| b * BLOCK + block.iter().position(bad).unwrap_or(0))
    })
}

/// A read-only strided matrix view into a slice.
#[derive(Clone, Copy, Debug)]
pub struct Mat<'a, T> {
    data: &'a [T],
    offset: usize,
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl<'a, T: Real> Mat<'a, T> {
    /// A row-major `[rows, cols]` matrix at the start of `data`.
    pub fn row_major(data: &'a [T], rows: usize, cols: usize) -> Self {
        Self::strided(data, 0, rows, cols, cols, 1)
    }

    /// A general strided view; panics if any element lies outside `data`.
    pub fn strided(
        data: &'a [T],
        offset: usize,
        rows: usize,
        cols: usize,
        row_stride: usize,
        col_stride: usize,
    ) -> Self {
        if rows > 0 && cols > 0 {
            let last = offset + (rows - 1) * row_stride + (cols - 1) * col_stride;
            assert!(last < data.len(), "matrix view out of bounds");
        }
        Mat {
            data,
            offset,
            rows,
            cols,
            row_stride,
            col_stride,
        }
    }

    /// The transposed view (no copy).
    pub fn t(self) -> Self {
        Mat {
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
            ..self
        }
    }

    /// Rows `r0..r0 + rows` of this view.
    fn row_block(self, r0: usize, rows: usize) -> Self {
        Mat {
            offset: self.offset + r0 * self.row_stride,
            rows,
            ..self
        }
    }
}

/// A writable row-major matrix view (unit column stride) into a slice.
#[derive(Debug)]
pub struct MatMut<'a, T> {
    data: &'a mut [T],
    offset: usize,
    rows: usize,
    cols: usize,
    row_stride: usize,
}

impl<'a, T: Real> MatMut<'a, T> {
    /// A row-major `[rows, cols]` matrix at the start of `data`.
    pub fn row_major(data: &'a mut [T], rows: usize, cols: usize) -> Self {
        Self::strided(data, 0, rows, cols, cols)
    }

    /// `rows × cols` elements at `offset + r·row_stride + c`; panics if any
    /// lies outside `data`.
    pub fn strided(
        data: &'a mut [T],
        offset: usize,
        rows: usize,
        cols: usize,
        row_stride: usize,
    ) -> Self {
        if rows > 0 && cols > 0 {
            assert!(cols <= row_stride || rows == 1, "rows overlap");
            assert!(
                offset + (rows - 1) * row_stride + cols <= data.len(),
                "matrix view out of bounds"
            );
        }
        MatMut {
            data,
            offset,
            rows,
            cols,
            row_stride,
        }
    }
}

thread_local! {
    /// Set while the caller parallelises above the products (a sweep runs
    /// many fine-tuning runs at once): products then stay on their thread.
    static SERIAL: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` with its work on the calling thread (no product split by rows
/// or groups, no trials or Adam update split over threads), for callers
/// that already keep every core busy. Each of those splits gives the same
/// bits either way (§6).
pub fn serial_products<R>(f: impl FnOnce() -> R) -> R {
    let before = SERIAL.with(|s| s.replace(true));
    let result = f();
    SERIAL.with(|s| s.set(before));
    result
}

/// `job` of every item at once, each whole on one thread of the pool
/// ([`serial_products`]), collected in the items' order: independent jobs
/// too small to gain from a split of their own (the report's pretrainings,
/// §8, its task-switching runs and pair accuracies, §5, the `dataset`
/// protocol's sizes, §4). Each result is the one the job gives alone (§6).
pub fn one_job_per_thread<T: Sync, R: Send, C: FromParallelIterator<R>>(
    items: &[T],
    job: impl Fn(&T) -> R + Sync + Send,
) -> C {
    items
        .par_iter()
        .with_max_len(1)
        .map(|item| serial_products(|| job(item)))
        .collect()
}

/// True inside [`serial_products`]: the caller keeps every core busy.
pub fn products_serial() -> bool {
    SERIAL.with(|s| s.get())
}

/// True when work split over threads would run on one anyway: inside
/// [`serial_products`], or in a pool of one thread. In the latter, a split
/// started outside the pool (a lone run on the main thread) would hand
/// each part to the pool's thread and wait for it. `online_retrain` on one
/// thread (`comod bench`, Intel Xeon, AVX-512F) took 497–533 ms per run
/// with its Adam update and encoder gradient kept on the thread, against
/// 610–671 ms when they were split.
pub fn stays_on_this_thread() -> bool {
    products_serial() || rayon::current_num_threads() == 1
}

/// The least items per part of a rayon split (its `with_min_len`): all of
/// them where the work stays on this thread ([`stays_on_this_thread`]),
/// so that the split runs whole on the calling thread without reaching
/// the pool, else one.
pub fn split_min_len() -> usize {
    whole_if(stays_on_this_thread())
}

/// The least items per part of a rayon split (its `with_min_len`): all of
/// them when `whole` (the split then runs whole on the calling thread,
/// without reaching the pool), else one. For splits that also stay whole
/// when their work is too small to share: `whole_if(stays_on_this_thread()
/// || small)`.
pub fn whole_if(whole: bool) -> usize {
    if whole { usize::MAX } else { 1 }
}

/// Multiply-adds (m·n·k) below which a product runs on one thread.
const PARALLEL_MIN_WORK: usize = 1 << 20;
/// Row blocks are multiples of this (the largest micro-kernel height).
const ROW_ALIGN: usize = 16;

/// C = A·B (`accumulate` false) or C += A·B (`accumulate` true), split
/// over row blocks of C on the rayon pool when large, else one block on
/// the calling thread.
pub fn gemm<T: Real>(a: Mat<'_, T>, b: Mat<'_, T>, accumulate: bool, c: MatMut<'_, T>) {
    assert_eq!(a.cols, b.rows, "inner dimensions differ");
    assert_eq!((a.rows, b.cols), (c.rows, c.cols), "output shape differs");
    let (m, k, n) = (a.rows, a.cols, b.cols);
    if m == 0 || n == 0 {
        return;
    }
    let beta = if accumulate { T::ONE } else { T::ZERO };
    let rs = c.row_stride;
    let body = &mut c.data[c.offset..];
    let whole = stays_on_this_thread() || m * n * k < PARALLEL_MIN_WORK || m < 2 * ROW_ALIGN;
    // One block of every row where the product stays on this thread.
    let parts = if whole {
        1
    } else {
        rayon::current_num_threads()
    };
    let block_rows = m.div_ceil(parts).next_multiple_of(ROW_ALIGN);
    body.par_chunks_mut(block_rows * rs)
        .enumerate()
        .with_min_len(whole_if(whole))
        .for_each(|(i, c_block)| {
            let r0 = i * block_rows;
            if r0 < m {
                let rows = block_rows.min(m - r0);
                gemm_serial(a.row_block(r0, rows), b, beta, c_block, rs, n);
            }
        });
}

/// For each group g: C[:, g·n .. (g+1)·n] = A_g·B_g (or += when
/// `accumulate`), where C is row-major with `row_stride`, starting at
/// offset 0; the groups run in parallel, each product on one thread.
/// This is how block-diagonal layers (the encoder's quadrants, `local`
/// layers) run without splitting, and so re-packing, each small product.
/// One group is a plain [`gemm`], split over rows.
pub fn gemm_groups<'a, T: Real>(
    groups: usize,
    operands: impl Fn(usize) -> (Mat<'a, T>, Mat<'a, T>) + Sync,
    accumulate: bool,
    c: &mut [T],
    row_stride: usize,
) {
    let beta = if accumulate { T::ONE } else { T::ZERO };
    let (a0, b0) = operands(0);
    let (m, n) = (a0.rows, b0.cols);
    if groups == 1 {
        gemm(a0, b0, accumulate, MatMut::strided(c, 0, m, n, row_stride));
        return;
    }
    assert!(groups * n <= row_stride, "column blocks exceed a row");
    if m == 0 || n == 0 {
        return;
    }
    assert!(
        (m - 1) * row_stride + groups * n <= c.len(),
        "output out of bounds"
    );
    let c_ptr = SendPtr(c.as_mut_ptr());
    let group = |g: usize| {
        let (a, b) = operands(g);
        assert_eq!(
            (a.rows, b.cols, a.cols),
            (m, n, b.rows),
            "groups differ in shape"
        );
        // Borrow the wrapper (not its field) so that the closure is Sync.
        let c_ptr = &c_ptr;
        // SAFETY: group g writes only columns g·n..(g+1)·n of the m rows,
        // which the assertions above place inside `c`; the column blocks of
        // different groups are disjoint, so no element is written twice.
        unsafe { product_raw(a, b, beta, c_ptr.0.add(g * n), row_stride) }
    };
    (0..groups)
        .into_par_iter()
        .with_min_len(split_min_len())
        .for_each(group);
}

/// C = A·B on the calling thread (for callers that parallelise above).
pub fn gemm_serial_into<T: Real>(a: Mat<'_, T>, b: Mat<'_, T>, c: MatMut<'_, T>) {
    assert_eq!(a.cols, b.rows, "inner dimensions differ");
    assert_eq!((a.rows, b.cols), (c.rows, c.cols), "output shape differs");
    if c.rows > 0 && c.cols > 0 {
        gemm_serial(a, b, T::ZERO, &mut c.data[c.offset..], c.row_stride, c.cols);
    }
}

/// A raw output pointer shared by threads that write disjoint elements.
struct SendPtr<T>(*mut T);
// SAFETY: only used by `gemm_groups`, whose threads write disjoint elements.
unsafe impl<T> Sync for SendPtr<T> {}

/// One `matrixmultiply` call; `c` starts at the first output element.
fn gemm_serial<T: Real>(a: Mat<'_, T>, b: Mat<'_, T>, beta: T, c: &mut [T], rsc: usize, n: usize) {
    let m = a.rows;
    if m == 0 {
        return;
    }
    assert!((m - 1) * rsc + n <= c.len());
    // SAFETY: `Mat::strided` checked that every element of `a` and `b` is in
    // bounds, the assertion above does so for `c`, and `c` is a unique borrow.
    unsafe { product_raw(a, b, beta, c.as_mut_ptr(), rsc) }
}

/// C = A·B + β·C through `matrixmultiply` (f32 products of a few rows:
/// [`few_rows_product`]), C row-major at `c` with row stride `rsc`.
///
/// # Safety
/// The `a.rows × b.cols` elements of C must be in bounds, writable and not
/// aliased by `a` or `b`.
unsafe fn product_raw<T: Real>(a: Mat<'_, T>, b: Mat<'_, T>, beta: T, c: *mut T, rsc: usize) {
    // SAFETY: `Mat::strided` checked the bounds of `a` and `b`; the caller those of `c`.
    if unsafe { few_rows_product(a, b, beta, c, rsc) } {
        return;
    }
    // SAFETY: as above.
    unsafe {
        T::gemm_raw(
            a.rows,
            a.cols,
            b.cols,
            T::ONE,
            a.data.as_ptr().add(a.offset),
            a.row_stride as isize,
            a.col_stride as isize,
            b.data.as_ptr().add(b.offset),
            b.row_stride as isize,
            b.col_stride as isize,
            beta,
            c,
            rsc as isize,
            1,
        )
    }
}

/// The product by [`crate::net::few_rows`] when T is f32, β ∈ {0, 1} and
/// that path serves it (with `matrixmultiply`'s bits); false otherwise
/// (f64, the gradient checks, always goes to `matrixmultiply`).
///
/// # Safety
/// As [`product_raw`].
unsafe fn few_rows_product<T: Real>(
    a: Mat<'_, T>,
    b: Mat<'_, T>,
    beta: T,
    c: *mut T,
    rsc: usize,
) -> bool {
    use crate::net::few_rows::{Product, View, try_product};
    let is_f32 = std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>();
    if !is_f32 || !(beta == T::ZERO || beta == T::ONE) {
        return false;
    }
    // T is f32: the casts below only rename the type.
    let view = |m: Mat<'_, T>| View {
        ptr: m.data.as_ptr().wrapping_add(m.offset).cast::<f32>(),
        rs: m.row_stride as isize,
        cs: m.col_stride as isize,
    };
    let product = Product {
        m: a.rows,
        k: a.cols,
        n: b.cols,
        a: view(a),
        b: view(b),
        accumulate: beta == T::ONE,
        c: c.cast::<f32>(),
        rsc,
    };
    // SAFETY: the caller guarantees the bounds and no aliasing.
    unsafe { try_product(&product) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The threads that ran the items of a split of 64 items.
    fn split_threads() -> std::collections::HashSet<std::thread::ThreadId> {
        let ids = std::sync::Mutex::new(std::collections::HashSet::new());
        (0..64)
            .into_par_iter()
            .with_min_len(split_min_len())
            .for_each(|_| {
                ids.lock().unwrap().insert(std::thread::current().id());
            });
        ids.into_inner().unwrap()
    }

    /// Inside `serial_products` a split runs whole on the calling thread
    /// (never handed to the pool); outside, with a pool of several
    /// threads, it runs on the pool's threads.
    #[test]
    fn a_serial_split_runs_on_the_calling_thread() {
        let here = std::thread::current().id();
        let inside = serial_products(split_threads);
        assert_eq!(inside.into_iter().collect::<Vec<_>>(), [here]);
        if rayon::current_num_threads() > 1 {
            assert!(!split_threads().contains(&here), "the pool's threads");
        }
    }

    #[test]
    fn matches_naive_product_on_strided_views() {
        let (m, k, n) = (37, 23, 29);
        let a: Vec<f64> = (0..m * k).map(|i| ((i * 7) % 11) as f64 - 5.0).collect();
        let b: Vec<f64> = (0..k * n).map(|i| ((i * 5) % 13) as f64 - 6.0).collect();
        // A·Bᵀ with B stored [n, k].
        let mut c = vec![1.0; m * (n + 3)];
        gemm(
            Mat::row_major(&a, m, k),
            Mat::row_major(&b, n, k).t(),
            true,
            MatMut::strided(&mut c, 3, m, n, n + 3),
        );
        for i in 0..m {
            for j in 0..n {
                let want: f64 = 1.0 + (0..k).map(|l| a[i * k + l] * b[j * k + l]).sum::<f64>();
                assert_eq!(c[3 + i * (n + 3) + j], want);
            }
        }
    }

    #[test]
    fn parallel_split_is_bit_identical_to_one_call() {
        let (m, k, n) = (301, 203, 99);
        let a: Vec<f32> = (0..m * k)
            .map(|i| ((i * 7919) % 1000) as f32 * 1e-3 - 0.5)
            .collect();
        let b: Vec<f32> = (0..k * n)
            .map(|i| ((i * 104729) % 997) as f32 * 1e-3 - 0.5)
            .collect();
        for accumulate in [false, true] {
            let mut whole = vec![0.25f32; m * n];
            gemm_serial(
                Mat::row_major(&a, m, k),
                Mat::row_major(&b, k, n),
                if accumulate { 1.0 } else { 0.0 },
                &mut whole,
                n,
                n,
            );
            for threads in [2, 3, 7] {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap();
                let mut split = vec![0.25f32; m * n];
                pool.install(|| {
                    gemm(
                        Mat::row_major(&a, m, k),
                        Mat::row_major(&b, k, n),
                        accumulate,
                        MatMut::row_major(&mut split, m, n),
                    )
                });
                assert!(
                    split
                        .iter()
                        .zip(&whole)
                        .all(|(x, y)| x.to_bits() == y.to_bits()),
                    "{threads} threads"
                );
            }
        }
    }
}
