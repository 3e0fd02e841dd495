//! The convolutional workloads of `comod bench` (§8), each with its FLOP
//! count (2 per multiply-add of its products), on a freshly initialised
//! `conv-mnist` network (conv 3×3 8 → pool → conv 3×3 16 → pool → dense
//! 128 → 8 heads): the second conv stage (8 → 16 channels on 14×14 maps,
//! a batch of 256) forward by the direct kernel and by im2col + GEMM, its
//! backward pass, and trials of the stochastic method's gain (T = 200),
//! counted as the fused trial computes them ([`trial_flops`]: fewer than a
//! stage-by-stage pass over the T scaled maps).

use rand::RngExt;
use rand_distr::{Distribution, Normal};
use rayon::prelude::*;

use crate::conv::direct::{ConvWeights, conv_input_grad, conv_relu, pad_input};
use crate::conv::ops::{bias_grad, conv_backward, conv_forward, im2col};
use crate::conv::trial::{
    TrialScratch, trial_activity, trial_flops, trial_gain, unmodulated_features,
};
use crate::conv::weight_grad::{Geometry, try_weight_grad};
use crate::conv::workspace::ConvWorkspace;
use crate::conv::{ConvArch, ConvNet, Evaluation, EvaluationPlan};
use crate::data::Shape;
use crate::kernel::{Body, MODULATOR_MEAN, MODULATOR_VARIANCE, SAMPLES};
use crate::net::GainRule;
use crate::net::linalg::serial_products;
use crate::net::simd::Isa;
use crate::rng::rng_for;

/// The names `comod bench` knows.
pub const CONV_WORKLOADS: [&str; 6] = [
    "conv_forward_direct",
    "conv_forward_im2col",
    "conv_backward",
    "conv_trial_B2",
    "conv_trial_products_B2",
    "conv_trial_B256",
];

/// Images in the conv stage workloads.
pub const CONV_BATCH: usize = 256;

/// A prepared convolutional workload.
pub enum ConvWorkload {
    /// The second conv stage forward (direct kernel or im2col + GEMM) or backward.
    Stage {
        /// Which.
        kind: StageKind,
        /// Input maps `[B, 14, 14, 8]`.
        x: Vec<f32>,
        /// Weights `[16, 3, 3, 8]` and bias.
        weights: Vec<f32>,
        /// Bias.
        bias: Vec<f32>,
        /// The output gradient of the backward pass, `[B, 14, 14, 16]`.
        dy: Vec<f32>,
        /// Scratch.
        buffers: [Vec<f32>; 3],
        /// The direct kernel's weights.
        packed: ConvWeights,
    },
    /// Trials of the gain estimate.
    Trials {
        /// The network.
        net: ConvNet<f32>,
        /// Its dense stages packed, as a frozen network keeps them.
        plan: EvaluationPlan,
        /// Stimuli `[B, 28, 28, 1]`.
        images: Vec<f32>,
        /// Samples `[B, T]`.
        m: Vec<f32>,
        /// Coupling.
        coupling: Vec<f32>,
        /// Fold the covariance (else only the products).
        fold: bool,
    },
}

/// What a stage workload runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StageKind {
    /// The direct SIMD kernel (with ReLU).
    Direct,
    /// im2col + GEMM (then ReLU).
    Im2col,
    /// im2col, dW and db by GEMM, dx by the direct kernel.
    Backward,
}

const STAGE_SHAPE: Shape = Shape {
    channels: 8,
    height: 14,
    width: 14,
};
const STAGE_OUT: usize = 16;
const KERNEL: usize = 3;

impl ConvWorkload {
    /// Prepares workload `name` (one of [`CONV_WORKLOADS`]).
    pub fn prepare(name: &str) -> ConvWorkload {
        let mut rng = rng_for(7, &[name.into()]);
        let mut stage = |kind| {
            let mut r =
                |n: usize| -> Vec<f32> { (0..n).map(|_| rng.random_range(-1.0..1.0)).collect() };
            ConvWorkload::Stage {
                kind,
                x: r(CONV_BATCH * STAGE_SHAPE.len()),
                weights: r(STAGE_OUT * KERNEL * KERNEL * STAGE_SHAPE.channels),
                bias: r(STAGE_OUT),
                dy: r(CONV_BATCH * STAGE_SHAPE.pixels() * STAGE_OUT),
                buffers: Default::default(),
                packed: ConvWeights::default(),
            }
        };
        match name {
            "conv_forward_direct" => stage(StageKind::Direct),
            "conv_forward_im2col" => stage(StageKind::Im2col),
            "conv_backward" => stage(StageKind::Backward),
            _ => {
                let trials = if name == "conv_trial_B256" { 256 } else { 2 };
                let arch = ConvArch::preset("conv-mnist", 8).expect("a preset");
                let net = ConvNet::<f32>::init(&arch, 1);
                let normal = Normal::new(MODULATOR_MEAN, MODULATOR_VARIANCE.sqrt()).expect("valid");
                ConvWorkload::Trials {
                    images: (0..trials * arch.input.len())
                        .map(|_| rng.random_range(0.0..1.0))
                        .collect(),
                    m: (0..trials * SAMPLES)
                        .map(|_| normal.sample(&mut rng))
                        .collect(),
                    coupling: (0..arch.modulated_channels())
                        .map(|_| rng.random_range(0.9..1.1))
                        .collect(),
                    fold: name != "conv_trial_products_B2",
                    plan: EvaluationPlan::new(&net, Body::detect()),
                    net,
                }
            }
        }
    }

    /// Floating-point operations of one run.
    pub fn flops(&self) -> f64 {
        match self {
            ConvWorkload::Stage { kind, .. } => {
                let macs = (CONV_BATCH
                    * STAGE_SHAPE.pixels()
                    * STAGE_OUT
                    * KERNEL
                    * KERNEL
                    * STAGE_SHAPE.channels) as f64;
                if *kind == StageKind::Backward {
                    4.0 * macs
                } else {
                    2.0 * macs
                }
            }
            ConvWorkload::Trials { net, m, .. } => {
                (m.len() / SAMPLES) as f64 * trial_flops(net.arch(), SAMPLES)
            }
        }
    }

    /// One run.
    pub fn run(&mut self) {
        match self {
            ConvWorkload::Stage {
                kind,
                x,
                weights,
                bias,
                dy,
                buffers,
                packed,
            } => {
                let [a, b, c] = buffers;
                let (rows, patch) = (
                    CONV_BATCH * STAGE_SHAPE.pixels(),
                    KERNEL * KERNEL * STAGE_SHAPE.channels,
                );
                match kind {
                    StageKind::Direct => {
                        packed.repack(weights, bias, KERNEL, STAGE_SHAPE.channels);
                        pad_input(x, CONV_BATCH, STAGE_SHAPE, KERNEL, a);
                        b.resize(rows * STAGE_OUT, 0.0);
                        conv_relu(Isa::selected(), a, CONV_BATCH, STAGE_SHAPE, packed, b);
                    }
                    StageKind::Im2col => {
                        a.resize(rows * patch, 0.0);
                        im2col(x, CONV_BATCH, STAGE_SHAPE, KERNEL, a);
                        b.resize(rows * STAGE_OUT, 0.0);
                        conv_forward(a, weights, bias, b);
                        b.iter_mut().for_each(|v| *v = v.max(0.0));
                    }
                    StageKind::Backward => {
                        // As a network's f32 backward pass: dW from the
                        // bordered map (on a SIMD body; else im2col + GEMM),
                        // db, and dx by the direct kernel.
                        let (mut dw, mut db) = (vec![0.0; weights.len()], vec![0.0; STAGE_OUT]);
                        pad_input(x, CONV_BATCH, STAGE_SHAPE, KERNEL, a);
                        let geometry = Geometry {
                            batch: CONV_BATCH,
                            shape: STAGE_SHAPE,
                            kernel: KERNEL,
                            c_out: STAGE_OUT,
                        };
                        if try_weight_grad(Isa::selected(), geometry, a, dy, &mut dw) {
                            bias_grad(dy, &mut db);
                        } else {
                            a.resize(rows * patch, 0.0);
                            im2col(x, CONV_BATCH, STAGE_SHAPE, KERNEL, a);
                            conv_backward(a, weights, dy, &mut dw, &mut db, None);
                        }
                        c.resize(x.len(), 0.0);
                        conv_input_grad(
                            Isa::selected(),
                            dy,
                            CONV_BATCH,
                            STAGE_SHAPE,
                            weights,
                            KERNEL,
                            STAGE_OUT,
                            (packed, b),
                            c,
                        );
                    }
                }
            }
            ConvWorkload::Trials {
                net,
                plan,
                images,
                m,
                coupling,
                fold,
            } => {
                let len = net.arch().input.len();
                let trials = m.len() / SAMPLES;
                let (net, fold, coupling) = (&*net, *fold, &*coupling);
                let pass = &Evaluation::planned(net, plan);
                (0..trials).into_par_iter().for_each_init(
                    || {
                        (
                            TrialScratch::new(net),
                            net.workspace(),
                            vec![0.0f64; net.arch().gated_size()],
                        )
                    },
                    |(scratch, ws, out): &mut (TrialScratch, ConvWorkspace<f32>, Vec<f64>), k| {
                        serial_products(|| {
                            let u =
                                unmodulated_features(net, ws, &images[k * len..(k + 1) * len], 1);
                            let samples = &m[k * SAMPLES..(k + 1) * SAMPLES];
                            if fold {
                                trial_gain(
                                    pass,
                                    &u,
                                    samples,
                                    coupling,
                                    0.0,
                                    GainRule::Covariance,
                                    scratch,
                                    out,
                                );
                            } else {
                                trial_activity(pass, &u, samples, coupling, 0.0, scratch);
                            }
                        })
                    },
                );
            }
        }
    }
}
