//! The gain the readout uses (§3): how the per-trial covariance estimates
//! become g. One type owns every option; [`GainState`] carries the running
//! average across batches, and [`GainEstimator`] draws the modulator
//! samples and runs the fused kernel for each estimate.

use rand_distr::{Distribution, Normal};

use crate::data::CANVAS_PIXELS;
use crate::kernel::{BatchScratch, Trials, batch_gain};
use crate::net::{Model, Modulation, Workspace};
use crate::rng::{Rng, rng_for};
use crate::train::config::FinetuneConfig;
use crate::train::frozen::FrozenNetwork;
use crate::train::learner::Batch;
use crate::train::options::{Compensation, GainInput, GainNorm, GainOptions, GainSmoothing};

/// Maximum weight τ of the old estimate in the running average (§3).
pub const TAU_MAX: f32 = 100.0;

/// Rectifies and scales `g` to mean 1; all zero → all 1.
pub fn normalise_mean1(g: &mut [f32]) {
    g.iter_mut().for_each(|v| *v = v.max(0.0));
    let mean = g.iter().map(|&v| v as f64).sum::<f64>() / g.len() as f64;
    if mean > 0.0 {
        g.iter_mut().for_each(|v| *v = (*v as f64 / mean) as f32);
    } else {
        g.fill(1.0);
    }
}

/// The gain across batches: the current g and the running weight τ.
#[derive(Clone, Debug, PartialEq)]
pub struct GainState {
    options: GainOptions,
    tau: f32,
    started: bool,
}

impl GainState {
    /// No estimate yet.
    pub fn new(options: GainOptions) -> GainState {
        GainState {
            options,
            tau: 1.0,
            started: false,
        }
    }

    /// Folds a new batch estimate `fresh` into `gain` (§3): normalise,
    /// average with the old gain when smoothing, normalise again.
    pub fn update(&mut self, gain: &mut [f32], fresh: &mut [f32]) {
        let mean1 = self.options.norm == GainNorm::Mean1;
        if mean1 {
            normalise_mean1(fresh);
        }
        if !self.started || self.options.smoothing == GainSmoothing::None {
            gain.copy_from_slice(fresh);
            self.started = true;
            self.tau = 1.0;
            return;
        }
        let tau = self.tau;
        for (g, &f) in gain.iter_mut().zip(fresh.iter()) {
            *g = (tau * *g + f) / (tau + 1.0);
        }
        if mean1 {
            normalise_mean1(gain);
        }
        self.tau = (self.tau + 1.0).min(TAU_MAX);
    }
}

/// The stochastic method's gain estimates (§3, §4): fresh modulator
/// samples N(μ_m, σ_m²) for each estimate, drawn from the run's own
/// generator, the batch (or a blank trial) through the fused kernel, and
/// the running state. Buffers are allocated once.
pub struct GainEstimator {
    state: GainState,
    options: GainOptions,
    samples: usize,
    rng: Rng,
    normal: Normal<f32>,
    modulator: Vec<f32>,
    fresh: Vec<f32>,
    /// F(a_ℓ) of the blank canvas, computed once (`--gain-input blank` only).
    blank: Vec<f32>,
    /// Set when the modulated layer's factor is variance-compensated (§3)
    /// and the samples' σ² > 0.
    compensation: Option<Compensator>,
    scratch: BatchScratch,
}

/// The variance compensation of §3 for the gain samples:
/// exp(m·c − σ²c²/2) = exp(m·c) · exp(−σ²c²/2), so each neuron's F(a_ℓ) is
/// scaled by its constant factor before the kernel, which stays unchanged.
struct Compensator {
    /// σ² of the gain samples.
    variance: f32,
    /// exp(−σ²c²/2) per neuron of the current coupling.
    factors: Vec<f32>,
    /// The trials' F(a_ℓ) ⊙ factors.
    activity: Vec<f32>,
    /// Computes F(a_ℓ) from canvases.
    workspace: Workspace<f32>,
}

impl Compensator {
    /// The compensated activity of `trials` with `coupling`.
    fn scale<'s>(
        &'s mut self,
        model: &Model<f32>,
        coupling: &[f32],
        trials: Trials<'_>,
    ) -> Trials<'s> {
        let activity = match trials {
            Trials::Canvases(canvases) => model.unmodulated_activity(&mut self.workspace, canvases),
            Trials::Activity(activity) => activity,
        };
        let variance = self.variance;
        self.factors.clear();
        self.factors
            .extend(coupling.iter().map(|&c| (-0.5 * variance * c * c).exp()));
        self.activity.clear();
        for row in activity.chunks_exact(self.factors.len()) {
            self.activity
                .extend(row.iter().zip(&self.factors).map(|(&u, &f)| u * f));
        }
        Trials::Activity(&self.activity)
    }
}

impl GainEstimator {
    /// The estimator of a run of `frozen` with `config` (its gain options,
    /// T, the gain samples' mean and σ_m², the compensation and batch
    /// size), drawing from the run's `seed`.
    pub fn new(frozen: &FrozenNetwork, config: &FinetuneConfig, seed: u64) -> GainEstimator {
        let options = config.gain;
        let trials = match options.input {
            GainInput::Batch => config.batch_size,
            GainInput::Blank => 1,
        };
        let std = config.modulator_variance.sqrt();
        let model = &frozen.model;
        let blank = match options.input {
            GainInput::Blank => model
                .unmodulated_activity(&mut model.workspace(1), &[0.0; CANVAS_PIXELS])
                .to_vec(),
            GainInput::Batch => Vec::new(),
        };
        let compensation = (config.compensation == Compensation::Variance
            && config.modulator_variance > 0.0)
            .then(|| Compensator {
                variance: config.modulator_variance,
                factors: Vec::new(),
                activity: Vec::new(),
                workspace: model.workspace(trials),
            });
        GainEstimator {
            state: GainState::new(options),
            options,
            samples: config.samples,
            rng: rng_for(seed, &["modulator".into()]),
            normal: Normal::new(config.gain_sample_mean(), std).expect("a validated variance ≥ 0"),
            modulator: Vec::new(),
            fresh: vec![0.0; frozen.plan.gated_size],
            blank,
            compensation,
            scratch: BatchScratch::new(&frozen.model, trials),
        }
    }

    /// Re-estimates the gain of `modulation` on `batch` with its current
    /// coupling (§3, §4); returns the floating-point operations spent in
    /// the kernel.
    pub fn estimate(
        &mut self,
        frozen: &FrozenNetwork,
        modulation: &mut Modulation<f32>,
        batch: Batch<'_>,
    ) -> f64 {
        let mut trials = match self.options.input {
            GainInput::Batch => match batch.activity {
                Some(activity) => Trials::Activity(activity),
                None => Trials::Canvases(batch.images),
            },
            GainInput::Blank => Trials::Activity(&self.blank),
        };
        if let Some(compensator) = &mut self.compensation {
            trials = compensator.scale(&frozen.model, &modulation.coupling, trials);
        }
        let count = trials.count(frozen.plan.modulated_size);
        self.modulator.clear();
        let (rng, normal) = (&mut self.rng, &self.normal);
        self.modulator
            .extend((0..count * self.samples).map(|_| normal.sample(rng)));
        let estimate = batch_gain(
            &frozen.model,
            &frozen.plan,
            &modulation.coupling,
            trials,
            &self.modulator,
            self.options.rule,
            &mut self.scratch,
        );
        self.fresh.copy_from_slice(estimate);
        self.state.update(&mut modulation.gain, &mut self.fresh);
        count as f64 * frozen.plan.flops_per_trial(self.samples)
    }

    /// The running state (for snapshots).
    pub fn state(&self) -> &GainState {
        &self.state
    }

    /// Replaces the running state (restoring a snapshot).
    pub fn set_state(&mut self, state: GainState) {
        self.state = state;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean1_rectifies_and_scales() {
        let mut g = [2.0, -1.0, 0.0, 6.0];
        normalise_mean1(&mut g);
        assert_eq!(g, [1.0, 0.0, 0.0, 3.0]);
        let mut zero = [0.0, -3.0];
        normalise_mean1(&mut zero);
        assert_eq!(zero, [1.0, 1.0]);
    }

    #[test]
    fn running_average_weights_old_estimates_by_tau() {
        let options = GainOptions {
            norm: GainNorm::None,
            ..GainOptions::default()
        };
        let mut state = GainState::new(options);
        let mut g = [0.0f32; 1];
        state.update(&mut g, &mut [4.0]);
        assert_eq!(g, [4.0]);
        state.update(&mut g, &mut [1.0]); // τ = 1: (4 + 1)/2
        assert_eq!(g, [2.5]);
        state.update(&mut g, &mut [5.5]); // τ = 2: (2·2.5 + 5.5)/3
        assert_eq!(g, [3.5]);
        let literal = GainOptions {
            norm: GainNorm::None,
            smoothing: GainSmoothing::None,
            ..GainOptions::default()
        };
        let mut state = GainState::new(literal);
        state.update(&mut g, &mut [-7.0]);
        state.update(&mut g, &mut [-9.0]);
        assert_eq!(g, [-9.0], "the literal Eq. 3 keeps the raw last estimate");
    }

    #[test]
    fn tau_stops_at_its_maximum() {
        let options = GainOptions {
            norm: GainNorm::None,
            ..GainOptions::default()
        };
        let mut state = GainState::new(options);
        let mut g = [0.0f32; 1];
        for _ in 0..150 {
            state.update(&mut g, &mut [1.0]);
        }
        assert_eq!(state.tau, TAU_MAX);
    }
}
