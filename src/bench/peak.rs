//! The machine's FMA peak, measured: independent chains of fused
//! multiply-adds held in registers, per instruction set the kernel's
//! dispatcher can pick ([`Isa`]), on 1 thread and on several at once.
//! No real product can beat it, so every rate `comod bench` and the
//! sweeps print is quoted as a fraction of it (§3 speed claims).

use std::hint::black_box;
use std::time::Instant;

use rayon::prelude::*;

use crate::net::simd::Isa;

/// Independent accumulators of the scalar and AVX2 chain loops: as many
/// as the 16 registers of AVX2 hold beside the two operands.
const CHAINS: usize = 12;
/// Independent accumulators of the AVX-512 chain loop: AVX-512 has 32
/// registers, and 12 chains leave some cores latency-bound (measured: a
/// 24-accumulator loop ran 1.8× faster than a 12-accumulator one).
const WIDE_CHAINS: usize = 24;
/// Loop iterations per timed call (12 or 24 FMAs each).
const ITERATIONS: u64 = 4_000_000;
/// Timed bursts per measurement; the fastest is kept: another process
/// on the machine can only slow a burst down, so the fastest is the least
/// disturbed reading.
pub const BURSTS: usize = 5;

/// The FMA peak of one instruction set at one thread count.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FmaPeak {
    /// The instruction set of the chains.
    pub isa: Isa,
    /// Threads running the chains at once.
    pub threads: usize,
    /// Floating-point operations per second of all threads, in GFLOP/s
    /// (an FMA counts 2 per lane).
    pub gflops: f64,
    /// Wall time of the fastest timed burst.
    pub seconds: f64,
}

/// The highest FMA-peak reading this process has taken for one
/// instruction set and thread count, and of how many readings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PeakReading {
    /// GFLOP/s: the highest reading.
    pub gflops: f64,
    /// Readings taken so far (each the fastest of [`BURSTS`] bursts).
    pub readings: usize,
}

/// Every reading taken by [`peak_reading`]: (isa, threads) → the highest
/// and the count.
static READINGS: std::sync::Mutex<Vec<((Isa, usize), PeakReading)>> =
    std::sync::Mutex::new(Vec::new());

/// Takes one more FMA-peak reading of `isa` at `threads` threads and
/// returns the highest this process has taken (§3 speed claims): a sweep
/// reads the peak when it starts and when it ends, so that one disturbed
/// reading on a shared machine cannot lower the peak a rate is quoted
/// against.
pub fn peak_reading(isa: Isa, threads: usize) -> PeakReading {
    record(&fma_peak(isa, threads))
}

/// Adds a peak measured by [`fma_peak`] to this process's readings of its
/// instruction set and thread count, and returns the highest of them.
pub fn record(peak: &FmaPeak) -> PeakReading {
    let now = peak.gflops;
    let mut readings = READINGS.lock().expect("no panic while holding the lock");
    let key = (peak.isa, peak.threads);
    let entry = match readings.iter_mut().find(|(k, _)| *k == key) {
        Some((_, reading)) => reading,
        None => {
            readings.push((
                key,
                PeakReading {
                    gflops: 0.0,
                    readings: 0,
                },
            ));
            &mut readings.last_mut().expect("just pushed").1
        }
    };
    entry.gflops = entry.gflops.max(now);
    entry.readings += 1;
    *entry
}

/// Measures the FMA peak of `isa` (which this CPU must run) with
/// `threads` threads at once: each runs the chains for the same number
/// of iterations, and the fastest of [`BURSTS`] bursts of all of them
/// gives the rate.
pub fn fma_peak(isa: Isa, threads: usize) -> FmaPeak {
    assert!(isa.supported(), "this CPU does not run {isa}");
    assert!(threads >= 1);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("a thread pool");
    let run = || {
        pool.install(|| {
            (0..threads).into_par_iter().for_each(|_| {
                black_box(chains(isa, black_box(ITERATIONS)));
            })
        })
    };
    run();
    let times: Vec<f64> = (0..BURSTS)
        .map(|_| {
            let start = Instant::now();
            run();
            start.elapsed().as_secs_f64()
        })
        .collect();
    let flops = chain_flops(isa, ITERATIONS) * threads as f64;
    let seconds = super::Timing::of(times).fastest;
    FmaPeak {
        isa,
        threads,
        gflops: flops / seconds / 1e9,
        seconds,
    }
}

/// Floating-point operations of [`chains`] with `iterations`.
pub fn chain_flops(isa: Isa, iterations: u64) -> f64 {
    let chains = if isa == Isa::Avx512 {
        WIDE_CHAINS
    } else {
        CHAINS
    };
    2.0 * (chains * peak_lanes(isa)) as f64 * iterations as f64
}

/// Lanes of one chain of `isa`'s peak loop. The scalar body is plain
/// Rust, which the compiler turns into the x86-64 baseline's 4-lane SSE2
/// multiplies and adds where it can: its peak counts them, so that no
/// ratio to it can pass 100 %.
fn peak_lanes(isa: Isa) -> usize {
    match isa {
        Isa::Scalar if cfg!(target_arch = "x86_64") => 4,
        other => other.lanes(),
    }
}

/// `iterations` rounds of one FMA on each of `CHAINS` (AVX-512:
/// `WIDE_CHAINS`) accumulators of `isa`'s width, on this thread;
/// returns their sum so that nothing is optimised away. Panics unless the
/// CPU runs `isa`.
pub fn chains(isa: Isa, iterations: u64) -> f32 {
    assert!(isa.supported(), "this CPU does not run {isa}");
    match isa {
        Isa::Scalar => scalar_chains(iterations),
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `fma_peak` asserted that the CPU runs the instruction set.
        Isa::Avx2Fma => unsafe { x86::avx2_chains(iterations) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        Isa::Avx512 => unsafe { x86::avx512_chains(iterations) },
        #[cfg(not(target_arch = "x86_64"))]
        _ => unreachable!("only scalar code runs here"),
    }
}

/// A multiply and an add per chain, on the x86-64 baseline's 4-lane SSE2
/// registers (it has no FMA instruction), what the compiler makes of the
/// scalar body.
#[cfg(target_arch = "x86_64")]
fn scalar_chains(iterations: u64) -> f32 {
    use std::arch::x86_64::*;
    // SAFETY: SSE2 is part of the x86-64 baseline.
    unsafe {
        let (a, b) = (
            _mm_set1_ps(black_box(0.999_999)),
            _mm_set1_ps(black_box(1e-6)),
        );
        let mut acc = [_mm_set1_ps(1.0); CHAINS];
        for _ in 0..iterations {
            for x in acc.iter_mut() {
                *x = _mm_add_ps(_mm_mul_ps(*x, a), b);
            }
        }
        let mut total = _mm_setzero_ps();
        for x in acc {
            total = _mm_add_ps(total, x);
        }
        let mut lanes = [0.0f32; 4];
        _mm_storeu_ps(lanes.as_mut_ptr(), total);
        lanes.iter().sum()
    }
}

/// One lane per chain, a multiply and an add (what portable code can
/// count on).
#[cfg(not(target_arch = "x86_64"))]
fn scalar_chains(iterations: u64) -> f32 {
    let (a, b) = (black_box(0.999_999f32), black_box(1e-6f32));
    let mut acc = [1.0f32; CHAINS];
    for _ in 0..iterations {
        for x in acc.iter_mut() {
            *x = *x * a + b;
        }
    }
    acc.iter().sum()
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;
    use std::hint::black_box;

    use super::{CHAINS, WIDE_CHAINS};

    /// # Safety
    /// AVX2 and FMA must be available.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn avx2_chains(iterations: u64) -> f32 {
        let (a, b) = (
            _mm256_set1_ps(black_box(0.999_999)),
            _mm256_set1_ps(black_box(1e-6)),
        );
        let mut acc = [_mm256_set1_ps(1.0); CHAINS];
        for _ in 0..iterations {
            for x in acc.iter_mut() {
                *x = _mm256_fmadd_ps(*x, a, b);
            }
        }
        let mut total = _mm256_setzero_ps();
        for x in acc {
            total = _mm256_add_ps(total, x);
        }
        let mut lanes = [0.0f32; 8];
        // SAFETY: `lanes` holds 8 floats.
        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), total) };
        lanes.iter().sum()
    }

    /// # Safety
    /// AVX-512F must be available.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn avx512_chains(iterations: u64) -> f32 {
        let (a, b) = (
            _mm512_set1_ps(black_box(0.999_999)),
            _mm512_set1_ps(black_box(1e-6)),
        );
        let mut acc = [_mm512_set1_ps(1.0); WIDE_CHAINS];
        for _ in 0..iterations {
            for x in acc.iter_mut() {
                *x = _mm512_fmadd_ps(*x, a, b);
            }
        }
        let mut total = _mm512_setzero_ps();
        for x in acc {
            total = _mm512_add_ps(total, x);
        }
        _mm512_reduce_add_ps(total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wider_instruction_sets_are_not_slower_per_call() {
        // The chains must do the work they claim: a wider set runs the
        // same number of instructions with more lanes, so its rate is
        // not lower (a loop optimised away would read as absurdly fast,
        // lanes counted but not computed as half the rate). Equal is
        // allowed, with a margin for a shared machine's noise: an AMD Zen 4
        // runs a 512-bit FMA as two 256-bit halves, at AVX2's rate.
        let rates: Vec<f64> = Isa::available()
            .into_iter()
            .map(|isa| fma_peak(isa, 1).gflops)
            .collect();
        for pair in rates.windows(2) {
            assert!(
                pair[1] > 0.85 * pair[0],
                "rates by instruction set: {rates:?}"
            );
        }
        assert!(rates.iter().all(|&r| r > 0.1 && r < 1e4), "{rates:?}");
    }

    #[test]
    fn the_peak_reading_is_the_highest_so_far() {
        let isa = Isa::Scalar;
        let first = peak_reading(isa, 1);
        let second = peak_reading(isa, 1);
        assert_eq!(second.readings, first.readings + 1);
        assert!(second.gflops >= first.gflops, "{first:?} {second:?}");
        let third = peak_reading(isa, 1);
        assert!(third.gflops >= second.gflops);
    }
}
