//! The gain the readout uses (§3): how the per-trial covariance estimates
//! become g. [`GainState`] carries the running average across batches,
//! and [`GainEstimator`] draws the modulator samples and runs the
//! network's fused trials for each estimate, for either network.

use rand_distr::{Distribution, Normal};

use crate::net::Modulation;
use crate::rng::{Rng, rng_for};
use crate::train::config::FinetuneConfig;
use crate::train::network::{Batch, Frozen, Network};
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

/// The stochastic method's gain estimates (§3, §4), for any network:
/// fresh modulator samples N(μ_g, σ_m²) for each estimate, drawn from the
/// run's own generator trial after trial, the batch (or a blank trial)
/// through the network's batch gain, and the running state. Buffers are
/// allocated once.
pub struct GainEstimator<N: Network> {
    state: GainState,
    options: GainOptions,
    samples: usize,
    rng: Rng,
    normal: Normal<f32>,
    modulator: Vec<f32>,
    fresh: Vec<f32>,
    /// The all-zero input of a blank trial (`--gain-input blank` only).
    blank: Vec<f32>,
    /// σ² of the compensated factor exp(m·c − σ²c²/2 − β): the variance
    /// the samples are drawn with, under `--modulation-compensation
    /// variance`; 0 without it (§3).
    variance: f32,
    scratch: N::GainScratch,
}

impl<N: Network> GainEstimator<N> {
    /// The estimator of a run of `frozen` with `config` (its gain options,
    /// T, the gain samples' mean and σ_m², the compensation and batch
    /// size), drawing from the run's `seed`.
    pub fn new(frozen: &Frozen<N>, config: &FinetuneConfig, seed: u64) -> GainEstimator<N> {
        let options = config.gain;
        let (trials, blank) = match options.input {
            GainInput::Batch => (config.batch_size, Vec::new()),
            GainInput::Blank => (1, vec![0.0; frozen.net.input_len()]),
        };
        let std = config.modulator_variance.sqrt();
        GainEstimator {
            state: GainState::new(options),
            options,
            samples: config.samples,
            rng: rng_for(seed, &["modulator".into()]),
            normal: Normal::new(config.gain_sample_mean(), std).expect("a validated variance ≥ 0"),
            modulator: Vec::new(),
            fresh: vec![0.0; frozen.net.gain_len()],
            blank,
            variance: match config.compensation {
                Compensation::Variance => config.modulator_variance,
                Compensation::None => 0.0,
            },
            scratch: frozen.net.gain_scratch(trials),
        }
    }

    /// Re-estimates the gain of `modulation` on `batch` with its current
    /// coupling (§3, §4); returns the floating-point operations spent.
    pub fn estimate(
        &mut self,
        frozen: &Frozen<N>,
        modulation: &mut Modulation<f32>,
        batch: Batch<'_>,
    ) -> f64 {
        let trials = match self.options.input {
            GainInput::Batch => batch,
            GainInput::Blank => Batch {
                inputs: &self.blank,
                labels: &[],
                activity: None,
            },
        };
        let count = trials.inputs.len() / frozen.net.input_len();
        self.modulator.clear();
        let (rng, normal) = (&mut self.rng, &self.normal);
        self.modulator
            .extend((0..count * self.samples).map(|_| normal.sample(rng)));
        let estimate = N::batch_gain(
            frozen,
            &mut self.scratch,
            &modulation.coupling,
            trials,
            &self.modulator,
            self.variance,
            self.options.rule,
        );
        self.fresh.copy_from_slice(estimate);
        self.state.update(&mut modulation.gain, &mut self.fresh);
        count as f64 * N::trial_flops(frozen, self.samples)
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
