//! Timing for `comod bench`, the sweeps' closing line and the criterion
//! benches: medians of repeated runs (the fastest beside them), beside
//! the machine's FMA peak ([`peak`], per instruction set, measured in the
//! same process) and, as a second yardstick, `matrixmultiply`'s SGEMM on
//! large square matrices, so that every speed is quoted as a fraction of
//! what this machine can do.

pub mod conv;
pub mod online;
pub mod peak;

use std::path::Path;
use std::time::Instant;

use crate::error::{Error, Result};
use crate::kernel::Body;
use crate::kernel::workload::WORKLOADS;
use crate::net::linalg::{Mat, MatMut, gemm};
use crate::net::simd::Isa;
use crate::train::Method;
use peak::{PeakReading, fma_peak, peak_reading, record};
/// Side of the square matrices of the SGEMM peak.
pub const PEAK_SIDE: usize = 1024;
/// Floating-point operations of one SGEMM of the peak problem, 2n³.
pub const SGEMM_FLOPS: f64 = 2.0 * (PEAK_SIDE * PEAK_SIDE * PEAK_SIDE) as f64;
/// Most seconds of timed runs per workload `comod bench` accepts.
pub const MAX_BENCH_SECONDS: f64 = 3600.0;

/// Minimum seconds of timed runs per workload of `comod bench`.
pub const DEFAULT_SECONDS: f64 = 2.0;

/// The wall times of a workload's timed runs: the median, at which every
/// rate is quoted, and the fastest, the run least disturbed on a shared
/// machine (beside the median, it tells noise from the code's speed).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Timing {
    /// The median run, seconds (of an even count, the upper middle one).
    pub median: f64,
    /// The fastest run, seconds.
    pub fastest: f64,
}

impl Timing {
    /// The median and the fastest of `times` (at least one).
    fn of(mut times: Vec<f64>) -> Timing {
        assert!(!times.is_empty(), "at least one timed run");
        times.sort_by(f64::total_cmp);
        Timing {
            median: times[times.len() / 2],
            fastest: times[0],
        }
    }
}

/// The wall times of `run` over at least `min_runs` runs and at least
/// `min_seconds` of running, after one warm-up run.
pub fn time_runs(min_runs: usize, min_seconds: f64, mut run: impl FnMut()) -> Timing {
    run();
    let mut times = Vec::new();
    let start = Instant::now();
    while times.len() < min_runs || start.elapsed().as_secs_f64() < min_seconds {
        let t = Instant::now();
        run();
        times.push(t.elapsed().as_secs_f64());
    }
    Timing::of(times)
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

    /// Floating-point operations of one product ([`SGEMM_FLOPS`]).
    pub fn flops(&self) -> f64 {
        SGEMM_FLOPS
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

/// The times of matrixmultiply's sgemm on [`PEAK_SIDE`]² matrices with
/// `threads` threads (at least 7 products, [`SgemmProblem::flops`] each).
pub fn sgemm_timing(threads: usize) -> Timing {
    let mut problem = SgemmProblem::new();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("a thread pool");
    time_runs(7, 0.5, || pool.install(|| problem.run()))
}

/// What a line of `comod bench` measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LineKind {
    /// The FMA peak of an instruction set ([`peak::fma_peak`]).
    FmaPeak,
    /// `matrixmultiply`'s SGEMM on [`PEAK_SIDE`]² matrices.
    Sgemm,
    /// A kernel workload ([`WORKLOADS`]).
    Workload,
    /// A whole `online` run of a method ([`online`]), seconds per run; or
    /// the sweep workload, seconds per sweep.
    Run,
}

/// One line of `comod bench`: a median time and rate beside the FMA peak
/// of the instruction set and thread count it ran with, and beside the
/// SGEMM of the same thread count, all measured in the same run.
#[derive(Clone, Debug, PartialEq)]
pub struct BenchLine {
    /// What was measured.
    pub kind: LineKind,
    /// Name (`fma_{isa}_{t}_thread[s]`, `sgemm_1024_{t}_thread[s]` or the workload's).
    pub workload: String,
    /// The instruction set it ran with.
    pub isa: Isa,
    /// Threads it ran on.
    pub threads: usize,
    /// Median seconds per run (the sweep workload: per sweep).
    pub seconds: f64,
    /// The fastest timed run, in the unit of `seconds` (an FMA-peak
    /// line's own burst: `seconds`).
    pub fastest_seconds: f64,
    /// Rate at the median, GFLOP/s.
    pub gflops: f64,
    /// The FMA peak of `isa` at `threads` threads, GFLOP/s: for an SGEMM
    /// or workload line, the highest reading this process took, at the
    /// start and after each such line, so that a disturbed reading cannot
    /// lower it.
    pub peak_gflops: f64,
    /// Readings `peak_gflops` is the highest of (each the fastest of
    /// [`peak::BURSTS`] bursts).
    pub peak_readings: usize,
    /// The SGEMM rate at `threads` threads, GFLOP/s.
    pub sgemm_gflops: f64,
}

impl BenchLine {
    /// The rate as a fraction of the FMA peak, or `None` when it exceeds
    /// it: then every peak reading was disturbed, and no ratio is quoted
    /// (as [`Throughput::ratio`]).
    pub fn ratio(&self) -> Option<f64> {
        below_peak(self.gflops, self.peak_gflops)
    }

    /// The rate of the fastest timed run, GFLOP/s.
    pub fn fastest_gflops(&self) -> f64 {
        self.gflops * self.seconds / self.fastest_seconds
    }

    /// The fastest run's rate as a fraction of the FMA peak, or `None`
    /// above it (as [`BenchLine::ratio`]).
    pub fn fastest_ratio(&self) -> Option<f64> {
        below_peak(self.fastest_gflops(), self.peak_gflops)
    }

    /// The rate as a fraction of the SGEMM rate.
    pub fn sgemm_ratio(&self) -> f64 {
        self.gflops / self.sgemm_gflops
    }

    /// The line as `comod bench --json` prints it: one object with the
    /// keys `workload`, `kind`, `isa`, `threads`, `seconds`, `flops`,
    /// `gflops`, `peak_gflops`, `peak_readings`, `ratio` (null above the
    /// peak), `sgemm_gflops`, `sgemm_ratio`, and the fastest run's
    /// `fastest_seconds`, `fastest_gflops`, `fastest_ratio` (null above the
    /// peak).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "workload": self.workload,
            "kind": format!("{:?}", self.kind),
            "isa": self.isa.name(),
            "threads": self.threads,
            "seconds": self.seconds,
            "flops": self.gflops * 1e9 * self.seconds,
            "gflops": self.gflops,
            "peak_gflops": self.peak_gflops,
            "peak_readings": self.peak_readings,
            "ratio": self.ratio(),
            "sgemm_gflops": self.sgemm_gflops,
            "sgemm_ratio": self.sgemm_ratio(),
            "fastest_seconds": self.fastest_seconds,
            "fastest_gflops": self.fastest_gflops(),
            "fastest_ratio": self.fastest_ratio(),
        })
    }
}

/// `gflops` as a fraction of `peak`, or `None` when it exceeds it: then
/// every peak reading was disturbed, and no ratio is quoted.
fn below_peak(gflops: f64, peak: f64) -> Option<f64> {
    let ratio = gflops / peak;
    (ratio <= 1.0).then_some(ratio)
}

/// "1_thread" or "{t}_threads".
fn threads_name(threads: usize) -> String {
    format!("{threads}_thread{}", if threads == 1 { "" } else { "s" })
}

/// Every workload name `comod bench` knows: the kernel's, then the whole runs.
pub fn workload_names() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = WORKLOADS.iter().map(|w| w.name).collect();
    names.extend(conv::CONV_WORKLOADS);
    names.extend(online::workload_names());
    names
}

/// `comod bench`: the FMA peak of every instruction set this CPU runs and
/// the SGEMM rate, each at 1 thread and at the pool's thread count, then
/// each workload named in `only` (all when empty) on the body
/// [`Body::detect`] picks, timed for at least `seconds` each (the whole
/// runs on the digits in `data_dir`); `on_line` sees each line as it is
/// measured. Fails, naming the option, on an unknown workload, a time
/// outside 0 ..= [`MAX_BENCH_SECONDS`] or digits that do not load.
pub fn run_bench(
    only: &[String],
    seconds: f64,
    data_dir: &Path,
    mut on_line: impl FnMut(&BenchLine),
) -> Result<()> {
    if !(0.0..=MAX_BENCH_SECONDS).contains(&seconds) {
        return Err(Error::option(
            "--seconds",
            seconds,
            format!("must be from 0 to {MAX_BENCH_SECONDS}"),
        ));
    }
    let names = workload_names();
    if let Some(unknown) = only.iter().find(|name| !names.contains(&name.as_str())) {
        return Err(Error::option(
            "--only",
            unknown,
            format!("no workload named {unknown:?}"),
        ));
    }
    let selected = |name: &str| only.is_empty() || only.iter().any(|n| n == name);
    let runs = if online::workload_names().iter().any(|n| selected(n)) {
        Some(online::OnlineRuns::prepare(data_dir)?)
    } else {
        None
    };
    let pool_threads = rayon::current_num_threads();
    let mut thread_counts = vec![1, pool_threads];
    thread_counts.dedup();
    let body_isa = Body::detect().isa();
    let sgemm: Vec<(usize, Timing)> = thread_counts
        .iter()
        .map(|&threads| (threads, sgemm_timing(threads)))
        .collect();
    let peaks: Vec<peak::FmaPeak> = Isa::available()
        .into_iter()
        .flat_map(|isa| {
            thread_counts
                .iter()
                .map(move |&threads| fma_peak(isa, threads))
        })
        .collect();
    // The start's readings count towards the SGEMM and workload lines' peak.
    for peak in &peaks {
        record(peak);
    }
    let sgemm_at = |threads| {
        let (_, timing) = sgemm.iter().find(|(t, _)| *t == threads).expect("measured");
        SGEMM_FLOPS / timing.median / 1e9
    };
    for peak in &peaks {
        on_line(&BenchLine {
            kind: LineKind::FmaPeak,
            workload: format!("fma_{}_{}", peak.isa.name(), threads_name(peak.threads)),
            isa: peak.isa,
            threads: peak.threads,
            seconds: peak.seconds,
            fastest_seconds: peak.seconds,
            gflops: peak.gflops,
            peak_gflops: peak.gflops,
            peak_readings: 1,
            sgemm_gflops: sgemm_at(peak.threads),
        });
    }
    // matrixmultiply picks its own kernel: the best the CPU has. Its
    // lines, as the workloads', quote the highest reading so far, one
    // more taken now.
    let best = *Isa::available().last().expect("scalar always runs");
    for &(threads, timing) in &sgemm {
        let (peak, gflops) = (peak_reading(best, threads), sgemm_at(threads));
        on_line(&BenchLine {
            kind: LineKind::Sgemm,
            workload: format!("sgemm_{PEAK_SIDE}_{}", threads_name(threads)),
            isa: best,
            threads,
            seconds: timing.median,
            fastest_seconds: timing.fastest,
            gflops,
            peak_gflops: peak.gflops,
            peak_readings: peak.readings,
            sgemm_gflops: gflops,
        });
    }
    // One workload's line: the times of rounds of `runs` runs at once,
    // reported per run, and the rate of `flops` per round at the median,
    // beside the highest peak reading so far, one more taken now (a
    // machine disturbed while the peak was first read would quote rates
    // above it).
    let mut report = |kind, name: &str, timing: Timing, runs: usize, flops: f64| {
        let body_peak = peak_reading(body_isa, pool_threads);
        on_line(&BenchLine {
            kind,
            workload: name.to_string(),
            isa: body_isa,
            threads: pool_threads,
            seconds: timing.median / runs as f64,
            fastest_seconds: timing.fastest / runs as f64,
            gflops: flops / timing.median / 1e9,
            peak_gflops: body_peak.gflops,
            peak_readings: body_peak.readings,
            sgemm_gflops: sgemm_at(pool_threads),
        });
    };
    // A kernel workload: at least 5 timed runs.
    for workload in WORKLOADS.iter().filter(|w| selected(w.name)) {
        let mut prepared = workload.prepare();
        let flops = prepared.flops();
        let timing = time_runs(5, seconds, || {
            prepared.run();
        });
        report(LineKind::Workload, workload.name, timing, 1, flops);
    }
    for name in conv::CONV_WORKLOADS.into_iter().filter(|n| selected(n)) {
        let mut prepared = conv::ConvWorkload::prepare(name);
        let flops = prepared.flops();
        let timing = time_runs(5, seconds, || prepared.run());
        report(LineKind::Workload, name, timing, 1, flops);
    }
    // Whole runs: at least 3 timed rounds, and the floating-point
    // operations of a round.
    let time_rounds = |round: &mut dyn FnMut() -> f64| {
        let mut flops = 0.0;
        let timing = time_runs(3, seconds, || flops = round());
        (timing, flops)
    };
    let runs = || {
        runs.as_ref()
            .expect("prepared when a whole run is selected")
    };
    for method in Method::ALL
        .into_iter()
        .filter(|&m| selected(online::workload_name(m)))
    {
        let (timing, flops) = time_rounds(&mut || runs().run(method, pool_threads));
        let name = online::workload_name(method);
        report(LineKind::Run, name, timing, pool_threads, flops);
    }
    if selected(online::SWEEP_WORKLOAD) {
        let (timing, flops) = time_rounds(&mut || runs().sweep());
        report(LineKind::Run, online::SWEEP_WORKLOAD, timing, 1, flops);
    }
    Ok(())
}

/// A measured rate beside the FMA peak of the instruction set the kernel
/// runs, at the pool's thread count: the highest reading this process
/// took, at the sweep's start and end among them (for the closing line of
/// a sweep).
#[derive(Clone, Copy, Debug)]
pub struct Throughput {
    /// GFLOP/s achieved.
    pub gflops: f64,
    /// The FMA peak, GFLOP/s.
    pub peak_gflops: f64,
    /// Readings the peak is the highest of.
    pub readings: usize,
    /// The instruction set of the peak (the one the kernel runs).
    pub isa: Isa,
    /// Threads of the pool.
    pub threads: usize,
}

/// Takes an FMA-peak reading of the kernel's instruction set at the
/// pool's thread count (a sweep does when it starts; [`throughput`] when
/// it ends).
pub fn read_peak() -> PeakReading {
    peak_reading(Body::detect().isa(), rayon::current_num_threads())
}

/// The rate of `flops` done in `seconds` beside the FMA peak: one more
/// reading now, and the highest of this process's readings.
pub fn throughput(flops: f64, seconds: f64) -> Throughput {
    let peak = read_peak();
    Throughput {
        gflops: flops / seconds.max(1e-9) / 1e9,
        peak_gflops: peak.gflops,
        readings: peak.readings,
        isa: Body::detect().isa(),
        threads: rayon::current_num_threads(),
    }
}

impl Throughput {
    /// The rate as a fraction of the peak, or `None` when it exceeds it:
    /// then every peak reading was disturbed, and no ratio is quoted.
    pub fn ratio(&self) -> Option<f64> {
        below_peak(self.gflops, self.peak_gflops)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rate_above_the_peak_quotes_no_ratio() {
        let line = |gflops| BenchLine {
            kind: LineKind::Workload,
            workload: "trial_B2".into(),
            isa: Isa::Scalar,
            threads: 1,
            seconds: 1.0,
            fastest_seconds: 0.5,
            gflops,
            peak_gflops: 100.0,
            peak_readings: 2,
            sgemm_gflops: 50.0,
        };
        assert_eq!(line(80.0).ratio(), Some(0.8));
        assert_eq!(line(100.0).ratio(), Some(1.0));
        assert_eq!(line(100.5).ratio(), None);
        assert!(line(100.5).to_json()["ratio"].is_null());
        assert_eq!(line(80.0).to_json()["peak_readings"], 2);
        // The fastest run, in half the median's time, at twice its rate.
        assert_eq!(line(40.0).fastest_gflops(), 80.0);
        assert_eq!(line(40.0).fastest_ratio(), Some(0.8));
        assert_eq!(line(50.0).fastest_ratio(), Some(1.0));
        assert_eq!(line(50.5).fastest_ratio(), None);
        assert!(line(50.5).to_json()["fastest_ratio"].is_null());
        assert_eq!(line(40.0).to_json()["fastest_seconds"], 0.5);
    }

    #[test]
    fn a_timing_is_the_middle_and_the_least_of_its_times() {
        let of = |times: &[f64]| Timing::of(times.to_vec());
        assert_eq!(
            of(&[3.0, 1.0, 2.0]),
            Timing {
                median: 2.0,
                fastest: 1.0
            }
        );
        assert_eq!(
            of(&[4.0, 1.0, 3.0, 2.0]),
            Timing {
                median: 3.0,
                fastest: 1.0
            }
        );
        assert_eq!(
            of(&[5.0]),
            Timing {
                median: 5.0,
                fastest: 5.0
            }
        );
    }

    #[test]
    fn bad_requests_fail_before_measuring() {
        let never = |line: &BenchLine| panic!("measured {line:?}");
        let data = Path::new("no such folder");
        let err = run_bench(&["nothing".into()], 0.0, data, never).unwrap_err();
        assert_eq!(
            err.to_string(),
            "--only nothing: no workload named \"nothing\""
        );
        let err = run_bench(&[], -1.0, data, never).unwrap_err();
        assert!(err.to_string().starts_with("--seconds -1"), "{err}");
        // The digits of the whole runs are loaded before any measurement.
        let err = run_bench(&["online_stochastic".into()], 0.0, data, never).unwrap_err();
        assert!(err.to_string().contains("no such folder"), "{err}");
    }
}
