//! Throughput beside the machine's FMA peak: the trial-kernel workloads
//! (§3), the convolutional workloads (§8), a conv stage on maps of
//! several widths and a conv training step, the dense stage of a conv
//! evaluation on the dense tiles and on `matrixmultiply`, a pretraining
//! epoch (§4), drawing a run's composites (§1), the evaluations' products of 1000 rows (§4), e^x on every
//! instruction set, the modulated evaluation's weight scaling and a
//! training step's weight gradients, with the FMA chains of every
//! instruction set this CPU runs and `matrixmultiply`'s SGEMM as yardsticks.
//!
//! Throughput is declared in floating-point operations, so criterion's
//! "elem/s" reads as FLOP/s: compare each group with `fma_peak/{isa}`
//! (one thread) and `sgemm/2_threads`. The `exp` group alone counts
//! values (e^x per second), which are not FMAs. Run: `cargo bench --bench
//! throughput`.
//! `comod bench` prints every workload with its ratio to the peak of its
//! thread count, and the whole fine-tuning runs.

use std::path::Path;

use comod::bench::SgemmProblem;
use comod::bench::conv::{CONV_WORKLOADS, ConvWorkload};
use comod::bench::peak::{chain_flops, chains};
use comod::conv::direct::{ConvWeights, conv_relu, pad_input};
use comod::conv::net::EVAL_ROWS;
use comod::conv::{ConvArch, ConvNet};
use comod::data::noise::{LANES, add_noise};
use comod::data::{
    CANVAS_PIXELS, CompositeKind, CompositeSet, Digits, NOISE_STD, Pool, Shape, Task,
};
use comod::kernel::dense::{
    DensePlan, DenseScratch, RowsScratch, dense_forward, dense_rows, has_dense_tiles,
};
use comod::kernel::plan::PackedLayer;
use comod::kernel::workload::WORKLOADS;
use comod::kernel::{Body, KernelPlan, KernelScratch, PackedRows, forward_rows};
use comod::net::few_rows::{Product, View, try_product};
use comod::net::linalg::{Mat, MatMut, gemm};
use comod::net::simd::Isa;
use comod::net::vexp::exp_in_place_with;
use comod::net::{Arch, Model, Nonlinearity};
use comod::rng::rng_for;
use comod::train::joint::pretraining_gradient;
use comod::train::{PretrainOptions, Pretrainer};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rand::{RngExt, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

/// `n` values drawn uniformly from `range`: the benches' random operands.
fn uniform(rng: &mut Xoshiro256PlusPlus, n: usize, range: std::ops::Range<f32>) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(range.clone())).collect()
}

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

/// The direct kernel's 3 × 3 stage of 8 → 16 channels on one thread,
/// 64 maps 12, 14, 18 and 24 pixels wide: widths whose AVX2 tiles would
/// hold 6 pixels and one (14) whose tiles hold at most 5, the second
/// conv stage of `conv-mnist` (§8) on other map sizes. FLOPs as `conv`'s.
fn conv_widths(c: &mut Criterion) {
    const IMAGES: usize = 64;
    const KERNEL: usize = 3;
    let (c_in, c_out) = (8, 16);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("a thread pool");
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(3);
    let mut draw = |n: usize| uniform(&mut rng, n, -1.0..1.0);
    let weights = ConvWeights::new(
        &draw(c_out * KERNEL * KERNEL * c_in),
        &draw(c_out),
        KERNEL,
        c_in,
    );
    let mut group = c.benchmark_group("conv_widths");
    for side in [12, 14, 18, 24] {
        let shape = Shape {
            channels: c_in,
            height: side,
            width: side,
        };
        let mut padded = Vec::new();
        pad_input(
            &draw(IMAGES * shape.len()),
            IMAGES,
            shape,
            KERNEL,
            &mut padded,
        );
        let mut out = vec![0.0f32; IMAGES * shape.pixels() * c_out];
        let macs = IMAGES * shape.pixels() * c_out * KERNEL * KERNEL * c_in;
        group.throughput(Throughput::Elements(2 * macs as u64));
        group.bench_function(format!("8_to_16_side_{side}"), |b| {
            b.iter(|| {
                pool.install(|| {
                    conv_relu(Isa::selected(), &padded, IMAGES, shape, &weights, &mut out)
                })
            })
        });
    }
    group.finish();
}

/// One pretraining step's gradient of `conv-mnist` (§8,
/// [`pretraining_gradient`], every head read) on a batch of 50 random
/// images, on the threads rayon has; the Adam step after it is left out.
/// FLOPs as a run counts a step at full depth: 2 per multiply-add, the
/// backward pass twice the forward's multiply-adds.
fn conv_train_step(c: &mut Criterion) {
    const BATCH: usize = 50;
    let arch = ConvArch::preset("conv-mnist", 8).expect("a preset");
    let net = ConvNet::<f32>::init(&arch, 1);
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(5);
    let images = uniform(&mut rng, BATCH * arch.input.len(), 0.0..1.0);
    let labels: Vec<u8> = (0..BATCH * arch.tasks)
        .map(|_| rng.random_range(0..2))
        .collect();
    let (mut ws, mut grads) = (net.workspace(), net.zero_grads());
    let mut dlogits = Vec::new();
    let mut group = c.benchmark_group("conv_train_step");
    group.throughput(Throughput::Elements(
        (2 * BATCH * 3 * arch.forward_macs()) as u64,
    ));
    let every_task: Vec<usize> = (0..arch.tasks).collect();
    group.bench_function("conv_mnist_B50", |b| {
        b.iter(|| {
            pretraining_gradient(
                &net,
                &mut ws,
                (&images, &labels, BATCH),
                &every_task,
                &mut dlogits,
                &mut grads,
            )
        })
    });
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

/// Drawing a run's 500 training composites (§1) on one thread, with the
/// background noise and without it: the noise is N(0, 0.1²) per pixel,
/// 784 normal draws per composite. Throughput counts canvases.
fn composites(c: &mut Criterion) {
    let digits =
        Digits::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("data")).expect("shipped digits");
    let kind = CompositeKind::Specific {
        task: Task::new(3, 8, 1).unwrap(),
        distractors: true,
    };
    let mut group = c.benchmark_group("composites");
    group.throughput(Throughput::Elements(500));
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    for (name, noise_std) in [("noise", NOISE_STD), ("no_noise", 0.0)] {
        let mut set = CompositeSet::default();
        group.bench_function(name, |b| {
            b.iter(|| {
                pool.install(|| set.regenerate(&digits, kind, Pool::Train, 0..500, 7, noise_std))
            })
        });
    }
    // The noise alone, on every body: 125 groups of LANES canvases.
    for isa in Isa::available() {
        let mut canvases = vec![0.0f32; LANES * CANVAS_PIXELS];
        group.bench_function(format!("noise_only_{}", isa.name()), |b| {
            b.iter(|| {
                for g in 0..500 / LANES as u64 {
                    let mut rngs: Vec<_> =
                        (0..LANES as u64).map(|l| rng_for(g, &[l.into()])).collect();
                    add_noise(isa, &mut rngs, &mut canvases, NOISE_STD);
                }
            })
        });
    }
    group.finish();
}

/// The dense stage of conv-mnist's evaluations (§8), one pass of
/// [`EVAL_ROWS`] rows on one thread: the kernel's dense tiles on weights
/// packed once, against `matrixmultiply`, which packs them at every call
/// (the same bits).
fn conv_dense_stage(c: &mut Criterion) {
    let (rows, inputs, outputs) = (EVAL_ROWS, 7 * 7 * 16, 128);
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(1);
    let mut draw = |n: usize| uniform(&mut rng, n, -1.0..1.0);
    let (x, w, bias) = (draw(rows * inputs), draw(outputs * inputs), draw(outputs));
    let layer = PackedLayer::dense(&w, &bias, inputs, outputs);
    let mut out = vec![0.0f32; rows * outputs];
    let mut scratch = RowsScratch::default();
    let mut group = c.benchmark_group("conv_dense_stage");
    group.throughput(Throughput::Elements((2 * rows * inputs * outputs) as u64));
    for body in Body::available()
        .into_iter()
        .filter(|&b| has_dense_tiles(b))
    {
        group.bench_function(format!("tiles_{}", body.isa().name()), |b| {
            b.iter(|| {
                dense_rows(
                    body,
                    &layer,
                    Some(Nonlinearity::Relu),
                    &x,
                    rows,
                    &mut out,
                    &mut scratch,
                )
            })
        });
    }
    group.bench_function("matrixmultiply", |b| {
        b.iter(|| {
            for row in out.chunks_exact_mut(outputs) {
                row.copy_from_slice(&bias);
            }
            gemm(
                Mat::row_major(&x, rows, inputs),
                Mat::row_major(&w, outputs, inputs).t(),
                true,
                MatMut::row_major(&mut out, rows, outputs),
            );
            out.iter_mut().for_each(|v| *v = v.max(0.0));
        })
    });
    group.finish();
}

/// The two evaluations' products (§4) of 1000 rows on one thread, on
/// every SIMD body, `paper3`: the modulation methods' (the modulated
/// layer's activity through the 400 → 200 layer with its weights scaled by
/// the factors, [`forward_rows`]) and the retraining methods' (canvases
/// through the encoder and the 400 → 200 layer on the dense tiles,
/// [`dense_forward`]). Throughput in FLOPs: compare with `fma_peak/{isa}`
/// of the same run.
fn evaluation(c: &mut Criterion) {
    const ROWS: usize = 1000;
    let arch = Arch::preset("paper3", 1).expect("a preset");
    let model = Model::<f32>::init(&arch, 1);
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(1);
    let mut draw = |n: usize, low: f32, high: f32| uniform(&mut rng, n, low..high);
    let gated = arch.size(arch.gated_layer());
    let modulated = arch.size(arch.modulated_layer);
    let activity = PackedRows::new(&draw(ROWS * modulated, 0.0, 3.0), modulated);
    let factor = draw(modulated, 0.5, 2.0);
    let canvases = draw(ROWS * CANVAS_PIXELS, -0.3, 1.3);
    let input = PackedRows::reordered(&canvases, CANVAS_PIXELS, model.input_order());
    let kernel_plan = KernelPlan::new(&model);
    let dense_plan = DensePlan::new(&model, 1.0);
    let dense_macs: usize = (1..=arch.gated_layer())
        .map(|l| model.layer(l).shape.macs())
        .sum();
    let (mut kernel_scratch, mut dense_scratch) =
        (KernelScratch::default(), DenseScratch::default());
    let mut out = vec![0.0f32; ROWS * gated];
    let mut group = c.benchmark_group("evaluation");
    for body in Body::available()
        .into_iter()
        .filter(|&b| has_dense_tiles(b))
    {
        let isa = body.isa().name();
        group.throughput(Throughput::Elements(
            kernel_plan.flops_per_trial(ROWS) as u64
        ));
        group.bench_function(format!("modulated_{isa}"), |b| {
            b.iter(|| {
                forward_rows(
                    body,
                    &kernel_plan,
                    &activity,
                    &factor,
                    &mut kernel_scratch,
                    |_, block| {
                        std::hint::black_box(block);
                    },
                )
            })
        });
        group.throughput(Throughput::Elements((2 * ROWS * dense_macs) as u64));
        group.bench_function(format!("retrained_{isa}"), |b| {
            b.iter(|| dense_forward(body, &dense_plan, &input, &mut out, &mut dense_scratch))
        });
    }
    group.finish();
}

/// e^x of 16 rows of the encoder's outputs (§2: 400 exp neurons; in L1,
/// as a tile's are when its epilogue takes them), arguments in [−5, 5] as
/// the encoder's are, on every instruction set this CPU runs; throughput
/// in values (e^x per second), the copy of the arguments included.
fn exp(c: &mut Criterion) {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(1);
    let xs: Vec<f32> = (0..400 * 16).map(|_| rng.random_range(-5.0..5.0)).collect();
    let mut ys = xs.clone();
    let mut group = c.benchmark_group("exp");
    group.throughput(Throughput::Elements(xs.len() as u64));
    for isa in Isa::available() {
        group.bench_function(isa.name(), |b| {
            b.iter(|| {
                ys.copy_from_slice(&xs);
                exp_in_place_with(isa, &mut ys);
            })
        });
    }
    group.finish();
}

/// The modulated evaluation's W·diag(f) (§4) of `paper3`'s 400 → 200
/// layer, once per evaluation (`PackedLayer::scale_inputs`, one thread);
/// throughput in weights. Bound by memory: compare with `exp`, not the
/// FMA peak.
fn weight_scaling(c: &mut Criterion) {
    let arch = Arch::preset("paper3", 1).expect("a preset");
    let layer = PackedLayer::pack(&Model::<f32>::init(&arch, 1), 2);
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(1);
    let factor: Vec<f32> = (0..layer.inputs)
        .map(|_| rng.random_range(0.1..3.0))
        .collect();
    let mut scaled = PackedLayer::default();
    let mut group = c.benchmark_group("weight_scaling");
    group.throughput(Throughput::Elements((layer.inputs * layer.outputs) as u64));
    group.bench_function("scale_inputs", |b| {
        b.iter(|| scaled.scale_inputs(&layer, &factor))
    });
    group.finish();
}

/// One `retrain` step's weight gradients dW = dZᵀ·X of a batch of two
/// (§4, `paper3`: the encoder's 4 × 100 × 196, layer 2's 200 × 400, the
/// readout's 10 × 200) on the few-rows path, one thread; throughput in
/// FLOPs, as the other groups.
fn weight_gradients(c: &mut Criterion) {
    if Isa::selected() < Isa::Avx2Fma {
        return; // the path serves AVX2+FMA machines only
    }
    let shapes = [(100usize, 196usize, 4usize), (200, 400, 1), (10, 200, 1)];
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(1);
    let dz: Vec<f32> = (0..2 * 400).map(|_| rng.random_range(-1.0..1.0)).collect();
    let x: Vec<f32> = (0..2 * 400).map(|_| rng.random_range(-1.0..1.0)).collect();
    let mut dw = vec![0.0f32; 200 * 400];
    let flops: usize = shapes
        .iter()
        .map(|&(m, n, times)| 2 * 2 * m * n * times)
        .sum();
    let mut group = c.benchmark_group("weight_gradients");
    group.throughput(Throughput::Elements(flops as u64));
    group.bench_function("few_rows", |b| {
        b.iter(|| {
            for &(m, n, times) in &shapes {
                for _ in 0..times {
                    let product = Product {
                        m,
                        k: 2,
                        n,
                        a: View {
                            ptr: dz.as_ptr(),
                            rs: 1,
                            cs: m as isize,
                        },
                        b: View {
                            ptr: x.as_ptr(),
                            rs: n as isize,
                            cs: 1,
                        },
                        accumulate: false,
                        c: dw.as_mut_ptr(),
                        rsc: n,
                    };
                    // SAFETY: dZ holds 2 × m, X 2 × n and dW m × n values.
                    assert!(
                        unsafe { try_product(&product) },
                        "the few-rows path serves it"
                    );
                }
            }
        })
    });
    group.finish();
}

criterion_group!(
    benches,
    fma_peak,
    sgemm,
    trial_kernel,
    conv,
    conv_widths,
    conv_train_step,
    conv_dense_stage,
    pretrain_epoch,
    composites,
    evaluation,
    exp,
    weight_scaling,
    weight_gradients
);
criterion_main!(benches);
