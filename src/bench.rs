//! Timing for `comod bench` and the criterion benches: medians of repeated
//! runs, and the machine's SGEMM peak measured in the same process
//! (matrixmultiply sgemm on large square matrices, 1 and 2 threads), so
//! that every speed is quoted as a fraction of what this machine can do.

use std::time::Instant;

use crate::net::linalg::{Mat, MatMut, gemm};

/// Side of the square matrices of the SGEMM peak.
pub const PEAK_SIDE: usize = 1024;

/// Median wall time in seconds of `run` over at least `min_runs` runs and
/// at least `min_seconds` of running, after one warm-up run.
pub fn median_seconds(min_runs: usize, min_seconds: f64, mut run: impl FnMut()) -> f64 {
    run();
    let mut times = Vec::new();
    let start = Instant::now();
    while times.len() < min_runs || start.elapsed().as_secs_f64() < min_seconds {
        let t = Instant::now();
        run();
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// The peak problem: C = A·A for square [`PEAK_SIDE`]² matrices.
pub struct SgemmProblem {
    a: Vec<f32>,
    c: Vec<f32>,
}

impl SgemmProblem {
    /// Fills A with small values.
    pub fn new() -> SgemmProblem {
        let n = PEAK_SIDE;
        SgemmProblem {
            a: (0..n * n).map(|i| (i % 17) as f32 * 0.1).collect(),
            c: vec![0.0; n * n],
        }
    }

    /// Floating-point operations of one product, 2n³.
    pub fn flops(&self) -> f64 {
        2.0 * (PEAK_SIDE as f64).powi(3)
    }

    /// One product on the current rayon pool.
    pub fn run(&mut self) {
        let n = PEAK_SIDE;
        gemm(
            Mat::row_major(&self.a, n, n),
            Mat::row_major(&self.a, n, n),
            false,
            MatMut::row_major(&mut self.c, n, n),
        );
    }
}

impl Default for SgemmProblem {
    fn default() -> Self {
        SgemmProblem::new()
    }
}

/// GFLOP/s of matrixmultiply's sgemm on [`PEAK_SIDE`]² matrices with
/// `threads` threads (median of repeated products).
pub fn sgemm_peak_gflops(threads: usize) -> f64 {
    let mut problem = SgemmProblem::new();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("a thread pool");
    let seconds = median_seconds(7, 0.5, || pool.install(|| problem.run()));
    problem.flops() / seconds / 1e9
}
