//! Throughput beside the machine's FMA peak: the trial-kernel workloads
//! (§3), the convolutional workloads (§8) and a pretraining epoch (§4), with the FMA chains of every
//! instruction set this CPU runs and `matrixmultiply`'s SGEMM as yardsticks.
//!
//! Throughput is declared in floating-point operations, so criterion's
//! "elem/s" reads as FLOP/s: compare each group with `fma_peak/{isa}`
//! (one thread) and `sgemm/2_threads`. Run: `cargo bench --bench throughput`.
//! `comod bench` prints every workload with its ratio to the peak of its
//! thread count, and the whole fine-tuning runs.

use std::path::Path;

use comod::bench::SgemmProblem;
use comod::bench::conv::{CONV_WORKLOADS, ConvWorkload};
use comod::bench::peak::{chain_flops, chains};
use comod::data::Digits;
use comod::kernel::workload::WORKLOADS;
use comod::net::Arch;
use comod::net::simd::Isa;
use comod::train::{PretrainOptions, Pretrainer};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

/// The FMA chains of each instruction set on one thread.
fn fma_peak(c: &mut Criterion) {
    const ITERATIONS: u64 = 1_000_000;
    let mut group = c.benchmark_group("fma_peak");
    for isa in Isa::available() {
        group.throughput(Throughput::Elements(chain_flops(isa, ITERATIONS) as u64));
        group.bench_function(isa.name(), |b| {
            b.iter(|| chains(isa, std::hint::black_box(ITERATIONS)))
        });
    }
    group.finish();
}

fn sgemm(c: &mut Criterion) {
    let mut problem = SgemmProblem::new();
    let mut group = c.benchmark_group("sgemm");
    group.throughput(Throughput::Elements(problem.flops() as u64));
    group.sample_size(20);
    for threads in [1, 2] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        group.bench_function(format!("{threads}_threads"), |b| {
            b.iter(|| pool.install(|| problem.run()))
        });
    }
    group.finish();
}

/// The kernel workloads on the global pool (`RAYON_NUM_THREADS`, default: all cores).
fn trial_kernel(c: &mut Criterion) {
    let mut group = c.benchmark_group("trial_kernel");
    for workload in WORKLOADS {
        let mut prepared = workload.prepare();
        group.throughput(Throughput::Elements(prepared.flops() as u64));
        group.sample_size(if workload.trials > 2 { 20 } else { 100 });
        group.bench_function(workload.name, |b| {
            b.iter(|| {
                prepared.run();
            })
        });
    }
    group.finish();
}

/// The convolutional workloads (§8): the second conv stage of
/// `conv-mnist` forward (direct kernel, im2col + GEMM) and backward, and
/// trials of the gain with and without the covariance fold.
fn conv(c: &mut Criterion) {
    let mut group = c.benchmark_group("conv");
    for name in CONV_WORKLOADS {
        let mut prepared = ConvWorkload::prepare(name);
        group.throughput(Throughput::Elements(prepared.flops() as u64));
        group.sample_size(if name == "conv_trial_B256" { 10 } else { 50 });
        group.bench_function(name, |b| b.iter(|| prepared.run()));
    }
    group.finish();
}

/// One pretraining epoch on the global pool.
fn pretrain_epoch(c: &mut Criterion) {
    let digits =
        Digits::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("data")).expect("shipped digits");
    let mut group = c.benchmark_group("pretrain_epoch");
    group.sample_size(20);
    for name in ["paper3", "deep4"] {
        let arch = Arch::preset(name, 1).unwrap();
        let mut trainer = Pretrainer::new(&arch, &digits, &PretrainOptions::DEFAULT).unwrap();
        group.throughput(Throughput::Elements(trainer.flops_per_epoch() as u64));
        group.bench_function(name, |b| b.iter(|| trainer.run_epoch()));
    }
    group.finish();
}

criterion_group!(benches, fma_peak, sgemm, trial_kernel, conv, pretrain_epoch);
criterion_main!(benches);
