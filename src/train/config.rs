//! The settings of a fine-tuning run (§2–§4): every default once, here,
//! and the checks a configuration passes before any run starts. The
//! command line shows these defaults; it does not repeat them.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::kernel::{MODULATOR_MEAN, MODULATOR_VARIANCE, SAMPLES};
use crate::named::Named;
use crate::train::method::LearningRates;
use crate::train::options::{
    Compensation, CouplingParam, GainOptions, Protocol, Reading, ReadoutKind,
};

/// Composites in a specific task's fixed test set (§4).
pub const TASK_TEST_COMPOSITES: usize = 1000;

/// The most training composites an `online` run may draw (3 GB of canvases).
pub const MAX_ONLINE_EXAMPLES: usize = 1_000_000;
/// The most test composites of a task (each task keeps them and their
/// activities in memory).
pub const MAX_TEST_COMPOSITES: usize = 100_000;
/// The most modulator samples per trial.
pub const MAX_SAMPLES: usize = 1 << 16;

/// Everything that defines a fine-tuning run besides task, method and seed.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct FinetuneConfig {
    /// Training protocol (§4).
    pub protocol: Protocol,
    /// Readout of the binary task (§2).
    pub readout: ReadoutKind,
    /// Gain options (§3).
    pub gain: GainOptions,
    /// Learning rates (§4).
    pub lr: LearningRates,
    /// λ of the L1 term on what is trained (§2).
    pub lambda: f32,
    /// Batches in the one online pass (§4).
    pub batches: usize,
    /// Examples per batch (§4).
    pub batch_size: usize,
    /// Modulator samples per trial, T (§3).
    pub samples: usize,
    /// μ_m, the modulator's mean; training and evaluation run at m = μ_m (§3, §4).
    pub modulator_mean: f32,
    /// σ_m², the variance of the stochastic method's modulator samples (§3).
    pub modulator_variance: f32,
    /// Composites of the fixed test set (§4).
    pub test_composites: usize,
    /// The named reading these settings started from (§3, `--reading`).
    #[serde(default)]
    pub reading: Reading,
    /// Mean of the modulator samples drawn for the gain estimate only;
    /// `None`: μ_m (§3).
    #[serde(default)]
    pub gain_modulator_mean: Option<f32>,
    /// Variance compensation of the modulated layer's factor (§3).
    #[serde(default)]
    pub compensation: Compensation,
    /// What is learned for the coupling (§3).
    #[serde(default)]
    pub coupling_param: CouplingParam,
    /// Every run starts from a fresh readout that every method trains (§8,
    /// `held-out`; the multi-task benchmarks only): the modulation methods
    /// train it beside c, at `retrain-last`'s rate.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fresh_readout: bool,
}

impl FinetuneConfig {
    /// The defaults of §2–§4.
    pub const DEFAULT: FinetuneConfig = FinetuneConfig {
        protocol: Protocol::Online,
        readout: ReadoutKind::All,
        gain: GainOptions::DEFAULT,
        lr: LearningRates::ONLINE,
        lambda: 0.1,
        batches: 250,
        batch_size: 2,
        samples: SAMPLES,
        modulator_mean: MODULATOR_MEAN,
        modulator_variance: MODULATOR_VARIANCE,
        test_composites: TASK_TEST_COMPOSITES,
        reading: Reading::Spec,
        gain_modulator_mean: None,
        compensation: Compensation::None,
        coupling_param: CouplingParam::Linear,
        fresh_readout: false,
    };

    /// μ of the samples drawn for a gain estimate (§3).
    pub fn gain_sample_mean(&self) -> f32 {
        self.gain_modulator_mean.unwrap_or(self.modulator_mean)
    }

    /// Checks every setting; the error names the first one out of range.
    pub fn validate(&self) -> Result<()> {
        for (flag, lr) in self.lr.by_flag() {
            if !(lr.is_finite() && lr > 0.0) {
                return Err(Error::option(flag, lr, "a learning rate must be positive"));
            }
        }
        if !(self.lambda.is_finite() && self.lambda >= 0.0) {
            return Err(Error::option("--lambda", self.lambda, "must be ≥ 0"));
        }
        if !self.modulator_mean.is_finite() {
            return Err(Error::option(
                "--modulator-mean",
                self.modulator_mean,
                "must be finite",
            ));
        }
        if let Some(mean) = self.gain_modulator_mean
            && !mean.is_finite()
        {
            return Err(Error::option(
                "--gain-modulator-mean",
                mean,
                "must be finite",
            ));
        }
        if !(self.modulator_variance.is_finite() && self.modulator_variance >= 0.0) {
            return Err(Error::option(
                "--modulator-var",
                self.modulator_variance,
                "a variance must be ≥ 0",
            ));
        }
        if let Protocol::Dataset(options) = &self.protocol {
            options.validate()?;
        }
        for (flag, count) in [
            ("--samples", self.samples),
            ("--batches", self.batches),
            ("--batch-size", self.batch_size),
            ("--test-composites", self.test_composites),
        ] {
            if count == 0 {
                return Err(Error::option(flag, count, "must be at least 1"));
            }
        }
        if self.protocol == Protocol::Online && self.training_examples() > MAX_ONLINE_EXAMPLES {
            return Err(Error::option(
                "--batches",
                self.batches,
                format!(
                    "with --batch-size {} a run draws {} training composites; at most {MAX_ONLINE_EXAMPLES}",
                    self.batch_size,
                    self.training_examples()
                ),
            ));
        }
        for (flag, count, most) in [
            (
                "--test-composites",
                self.test_composites,
                MAX_TEST_COMPOSITES,
            ),
            ("--samples", self.samples, MAX_SAMPLES),
            ("--batch-size", self.batch_size, MAX_ONLINE_EXAMPLES),
        ] {
            if count > most {
                return Err(Error::option(flag, count, format!("at most {most}")));
            }
        }
        Ok(())
    }

    /// The x axis of a complete run's curve (§5): the examples seen at
    /// each measurement, 0 first (`online`), or the data-set sizes
    /// (`dataset`).
    pub fn expected_examples(&self) -> Vec<usize> {
        match self.protocol {
            Protocol::Online => (0..=self.batches).map(|k| k * self.batch_size).collect(),
            Protocol::Dataset(options) => options.sizes().collect(),
        }
    }

    /// Every setting as the command line spells it, `(flag, value)`, in
    /// help order: for help texts, report headers and comparing readings.
    pub fn flags(&self) -> Vec<(&'static str, String)> {
        fn name(value: impl Named) -> String {
            value.name().to_string()
        }
        let mut flags = vec![
            ("--reading", self.reading.name().to_string()),
            ("--protocol", self.protocol.name().to_string()),
        ];
        if let Protocol::Dataset(options) = self.protocol {
            flags.extend([
                ("--size-step", options.size_step.to_string()),
                ("--sizes", options.sizes.to_string()),
                ("--max-epochs", options.max_epochs.to_string()),
                (
                    "--patience",
                    options
                        .patience
                        .map_or_else(|| "none".to_string(), |p| p.to_string()),
                ),
            ]);
        } else {
            flags.push(("--batches", self.batches.to_string()));
        }
        flags.extend([
            ("--readout", self.readout.name().to_string()),
            ("--gain-rule", name(self.gain.rule)),
            ("--gain-norm", name(self.gain.norm)),
            ("--gain-smoothing", name(self.gain.smoothing)),
            ("--gain-input", name(self.gain.input)),
        ]);
        flags.extend(self.lr.by_flag().map(|(flag, lr)| (flag, lr.to_string())));
        flags.extend([
            ("--lambda", self.lambda.to_string()),
            ("--samples", self.samples.to_string()),
            ("--modulator-mean", self.modulator_mean.to_string()),
            ("--modulator-var", self.modulator_variance.to_string()),
            ("--gain-modulator-mean", self.gain_sample_mean().to_string()),
            ("--modulation-compensation", name(self.compensation)),
            ("--coupling-param", name(self.coupling_param)),
            ("--batch-size", self.batch_size.to_string()),
            ("--test-composites", self.test_composites.to_string()),
        ]);
        flags
    }

    /// The value of `flag` in [`FinetuneConfig::flags`].
    pub fn flag(&self, flag: &str) -> Option<String> {
        self.flags()
            .into_iter()
            .find_map(|(f, v)| (f == flag).then_some(v))
    }

    /// Training composites one run draws: `batches × batch_size` for
    /// `online`, the largest data set for `dataset` (§4).
    pub fn training_examples(&self) -> usize {
        match self.protocol {
            Protocol::Online => self.batches.saturating_mul(self.batch_size),
            Protocol::Dataset(options) => options.largest(),
        }
    }
}

impl Default for FinetuneConfig {
    fn default() -> Self {
        FinetuneConfig::DEFAULT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_pass_and_each_bad_setting_is_named() {
        FinetuneConfig::DEFAULT.validate().unwrap();
        let cases: [(FinetuneConfig, &str); 6] = [
            (
                FinetuneConfig {
                    samples: 0,
                    ..FinetuneConfig::DEFAULT
                },
                "--samples 0: must be at least 1",
            ),
            (
                FinetuneConfig {
                    lambda: -1.0,
                    ..FinetuneConfig::DEFAULT
                },
                "--lambda -1",
            ),
            (
                FinetuneConfig {
                    lr: LearningRates {
                        retrain: 0.0,
                        ..LearningRates::ONLINE
                    },
                    ..FinetuneConfig::DEFAULT
                },
                "--lr-retrain 0: a learning rate must be positive",
            ),
            (
                FinetuneConfig {
                    modulator_variance: f32::NAN,
                    ..FinetuneConfig::DEFAULT
                },
                "--modulator-var NaN",
            ),
            (
                FinetuneConfig {
                    batch_size: 0,
                    ..FinetuneConfig::DEFAULT
                },
                "--batch-size 0",
            ),
            (
                FinetuneConfig {
                    test_composites: 0,
                    ..FinetuneConfig::DEFAULT
                },
                "--test-composites 0",
            ),
        ];
        for (config, needle) in cases {
            let err = config.validate().unwrap_err().to_string();
            assert!(err.starts_with(needle), "{needle:?} vs {err:?}");
        }
    }
}
