//! Timing for `comod bench`, the sweeps' closing line and the criterion
//! benches: medians of repeated runs, and the machine's SGEMM peak
//! measured in the same process (matrixmultiply sgemm on large square
//! matrices, 1 and 2 threads), so that every speed is quoted as a fraction
//! of what this machine can do.

use std::time::Instant;

use crate::error::{Error, Result};
use crate::kernel::workload::WORKLOADS;
use crate::net::linalg::{Mat, MatMut, gemm};

/// Side of the square matrices of the SGEMM peak.
pub const PEAK_SIDE: usize = 1024;
/// Most seconds of timed runs per workload `comod bench` accepts.
pub const MAX_BENCH_SECONDS: f64 = 3600.0;

/// Minimum seconds of timed runs per workload of `comod bench`.
pub const DEFAULT_SECONDS: f64 = 2.0;

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

/// One line of `comod bench`: a workload's median time and rate beside
/// the SGEMM peak of the same thread count, measured in the same run.
#[derive(Clone, Debug, PartialEq)]
pub struct BenchLine {
    /// Workload name (`sgemm_1024_{t}_thread[s]` for the peaks).
    pub workload: String,
    /// Median seconds per run.
    pub seconds: f64,
    /// Rate, GFLOP/s.
    pub gflops: f64,
    /// The SGEMM peak it is compared with, GFLOP/s.
    pub peak_gflops: f64,
}

impl BenchLine {
    /// The rate as a fraction of the peak.
    pub fn ratio(&self) -> f64 {
        self.gflops / self.peak_gflops
    }
}

/// `comod bench`: the SGEMM peak at 1 and 2 threads and at the pool's
/// thread count, then each kernel workload named in `only` (all when
/// empty), timed for at least `seconds` each; `on_line` sees each line as
/// it is measured. Fails, naming the option, on an unknown workload or a
/// time outside 0 ..= [`MAX_BENCH_SECONDS`].
pub fn run_bench(only: &[String], seconds: f64, mut on_line: impl FnMut(&BenchLine)) -> Result<()> {
    if !(0.0..=MAX_BENCH_SECONDS).contains(&seconds) {
        return Err(Error::option(
            "--seconds",
            seconds,
            format!("must be from 0 to {MAX_BENCH_SECONDS}"),
        ));
    }
    if let Some(unknown) = only
        .iter()
        .find(|name| !WORKLOADS.iter().any(|w| w.name == name.as_str()))
    {
        return Err(Error::option(
            "--only",
            unknown,
            format!("no workload named {unknown:?}"),
        ));
    }
    let threads = rayon::current_num_threads();
    let mut peak = 0.0;
    let mut measured = Vec::new();
    for t in [1, 2, threads] {
        if measured.contains(&t) {
            continue;
        }
        measured.push(t);
        let gflops = sgemm_peak_gflops(t);
        if t == threads {
            peak = gflops;
        }
        on_line(&BenchLine {
            workload: format!(
                "sgemm_{PEAK_SIDE}_{t}_thread{}",
                if t == 1 { "" } else { "s" }
            ),
            seconds: 2.0 * (PEAK_SIDE as f64).powi(3) / gflops / 1e9,
            gflops,
            peak_gflops: gflops,
        });
    }
    for workload in WORKLOADS
        .iter()
        .filter(|w| only.is_empty() || only.iter().any(|name| name == w.name))
    {
        let mut prepared = workload.prepare();
        let flops = prepared.flops();
        let median = median_seconds(5, seconds, || {
            prepared.run();
        });
        on_line(&BenchLine {
            workload: workload.name.to_string(),
            seconds: median,
            gflops: flops / median / 1e9,
            peak_gflops: peak,
        });
    }
    Ok(())
}

/// A measured rate beside the SGEMM peak of the pool's thread count,
/// measured now (for the closing line of a sweep).
#[derive(Clone, Copy, Debug)]
pub struct Throughput {
    /// GFLOP/s achieved.
    pub gflops: f64,
    /// The SGEMM peak, GFLOP/s.
    pub peak_gflops: f64,
    /// Threads of the pool.
    pub threads: usize,
}

/// The rate of `flops` done in `seconds` beside the SGEMM peak.
pub fn throughput(flops: f64, seconds: f64) -> Throughput {
    let threads = rayon::current_num_threads();
    Throughput {
        gflops: flops / seconds.max(1e-9) / 1e9,
        peak_gflops: sgemm_peak_gflops(threads),
        threads,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_requests_fail_before_measuring() {
        let never = |line: &BenchLine| panic!("measured {line:?}");
        let err = run_bench(&["nothing".into()], 0.0, never).unwrap_err();
        assert_eq!(
            err.to_string(),
            "--only nothing: no workload named \"nothing\""
        );
        let err = run_bench(&[], -1.0, never).unwrap_err();
        assert!(err.to_string().starts_with("--seconds -1"), "{err}");
    }
}
