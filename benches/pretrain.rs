//! Pretraining throughput (SPEC §4) beside the machine's SGEMM peak.
//!
//! Throughput is declared in floating-point operations, so criterion's
//! "elem/s" reads as FLOP/s: compare `pretrain_epoch/paper3` with
//! `sgemm_peak/2_threads` for the fraction of peak. Run: `cargo bench --bench pretrain`.

use std::path::Path;

use comod::data::Digits;
use comod::net::Arch;
use comod::net::linalg::{Mat, MatMut, gemm};
use comod::train::{PretrainOptions, Pretrainer};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

/// Side of the square matrices of the peak measurement.
const PEAK_SIDE: usize = 1024;

fn sgemm_peak(c: &mut Criterion) {
    let n = PEAK_SIDE;
    let a: Vec<f32> = (0..n * n).map(|i| (i % 17) as f32 * 0.1).collect();
    let mut out = vec![0.0f32; n * n];
    let mut group = c.benchmark_group("sgemm_peak");
    group.throughput(Throughput::Elements(2 * (n * n * n) as u64));
    group.sample_size(20);
    for threads in [1, 2] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        group.bench_function(format!("{threads}_threads"), |b| {
            b.iter(|| {
                pool.install(|| {
                    gemm(
                        Mat::row_major(&a, n, n),
                        Mat::row_major(&a, n, n),
                        false,
                        MatMut::row_major(&mut out, n, n),
                    )
                })
            })
        });
    }
    group.finish();
}

/// One epoch on the global thread pool (`RAYON_NUM_THREADS`, default: all cores).
fn pretrain_epoch(c: &mut Criterion) {
    let digits =
        Digits::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("data")).expect("shipped digits");
    let mut group = c.benchmark_group("pretrain_epoch");
    group.sample_size(20);
    for name in ["paper3", "deep4"] {
        let arch = Arch::preset(name, 1).unwrap();
        let mut trainer = Pretrainer::new(&arch, &digits, &PretrainOptions::default());
        group.throughput(Throughput::Elements(trainer.flops_per_epoch() as u64));
        group.bench_function(name, |b| b.iter(|| trainer.run_epoch()));
    }
    group.finish();
}

criterion_group!(benches, sgemm_peak, pretrain_epoch);
criterion_main!(benches);
