//! The benchmark workloads of the trial kernel (§3), each with its
//! FLOP count: one batch of B trials of T = 200 modulator samples through
//! [`batch_gain`], on a freshly initialised network.

use rand::RngExt;
use rand_distr::{Distribution, Normal};

use crate::data::CANVAS_PIXELS;
use crate::kernel::{
    BatchScratch, KernelPlan, MODULATOR_MEAN, MODULATOR_VARIANCE, Trials, batch_gain,
};
use crate::net::GainRule;
use crate::net::{Arch, Model, Modulation};
use crate::rng::rng_for;

pub use crate::kernel::SAMPLES;

/// One benchmark workload.
#[derive(Clone, Copy, Debug)]
pub struct Workload {
    /// Name used by `comod bench` and the criterion benches.
    pub name: &'static str,
    /// Architecture preset.
    pub arch: &'static str,
    /// Modulated layer ℓ.
    pub modulated_layer: usize,
    /// Trials in the batch.
    pub trials: usize,
}

/// Every workload: the paper network (400 → 200), `deep4` (400 → 200 → 200)
/// and `deep4` modulated at layer 2 (200 → 200), each with B = 2 and 256.
pub const WORKLOADS: [Workload; 6] = [
    Workload {
        name: "trial_B2",
        arch: "paper3",
        modulated_layer: 1,
        trials: 2,
    },
    Workload {
        name: "trial_B256",
        arch: "paper3",
        modulated_layer: 1,
        trials: 256,
    },
    Workload {
        name: "deep4_trial_B2",
        arch: "deep4",
        modulated_layer: 1,
        trials: 2,
    },
    Workload {
        name: "deep4_trial_B256",
        arch: "deep4",
        modulated_layer: 1,
        trials: 256,
    },
    Workload {
        name: "deep4_mod2_trial_B2",
        arch: "deep4",
        modulated_layer: 2,
        trials: 2,
    },
    Workload {
        name: "deep4_mod2_trial_B256",
        arch: "deep4",
        modulated_layer: 2,
        trials: 256,
    },
];

/// A workload ready to run: network, packed plan, inputs and buffers.
pub struct PreparedWorkload {
    model: Model<f32>,
    plan: KernelPlan,
    coupling: Vec<f32>,
    canvases: Vec<f32>,
    modulator: Vec<f32>,
    scratch: BatchScratch,
}

impl Workload {
    /// Builds the network (seeded), coupling U[0.9, 1.1], random canvases
    /// and modulator samples N(μ_m, σ_m²) at the §3 defaults.
    pub fn prepare(&self) -> PreparedWorkload {
        let arch = Arch::preset(self.arch, self.modulated_layer).expect("workloads use presets");
        let model = Model::<f32>::init(&arch, 1);
        let mut rng = rng_for(2, &[self.name.into()]);
        let mut coupling = Modulation::<f32>::off(&arch).coupling;
        coupling
            .iter_mut()
            .for_each(|c| *c = rng.random_range(0.9..1.1));
        let canvases = (0..self.trials * CANVAS_PIXELS)
            .map(|_| rng.random_range(0.0..1.0))
            .collect();
        let normal = Normal::new(MODULATOR_MEAN, MODULATOR_VARIANCE.sqrt()).expect("valid normal");
        let modulator = (0..self.trials * SAMPLES)
            .map(|_| normal.sample(&mut rng))
            .collect();
        let plan = KernelPlan::new(&model);
        PreparedWorkload {
            scratch: BatchScratch::new(&model, self.trials),
            model,
            plan,
            coupling,
            canvases,
            modulator,
        }
    }
}

impl PreparedWorkload {
    /// Floating-point operations of one run: B trials of
    /// 2·T·(multiply-adds between ℓ and L−1).
    pub fn flops(&self) -> f64 {
        let trials = self.canvases.len() / CANVAS_PIXELS;
        trials as f64 * self.plan.flops_per_trial(SAMPLES)
    }

    /// One batch gain (covariance rule).
    pub fn run(&mut self) -> &[f32] {
        batch_gain(
            &self.model,
            &self.plan,
            &self.coupling,
            Trials::Canvases(&self.canvases),
            &self.modulator,
            GainRule::Covariance,
            &mut self.scratch,
        )
    }
}
