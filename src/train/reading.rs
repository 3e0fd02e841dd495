//! The named readings of the paper (§3 "Reading presets"): each a bundle
//! of the options the paper leaves open, so that `comod report` can run
//! every claim under each and say which reading reproduces what.

use serde::{Deserialize, Serialize};

use crate::train::config::{
    Compensation, CouplingParam, DatasetOptions, FinetuneConfig, Protocol, ReadoutKind,
};
use crate::train::gain::{GainInput, GainNorm, GainOptions, GainSmoothing};
use crate::train::method::LearningRates;

/// A reading preset (§3, `--reading`).
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
pub enum Reading {
    /// As written in §2–§4.
    #[default]
    Spec,
    /// Eq. 3 as printed: the raw gain of each batch.
    Literal,
    /// As the authors' public code for the companion model.
    CompanionCode,
}

impl Reading {
    /// The three readings, in report order.
    pub const ALL: [Reading; 3] = [Reading::Spec, Reading::Literal, Reading::CompanionCode];

    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Reading::Spec => "spec",
            Reading::Literal => "literal",
            Reading::CompanionCode => "companion-code",
        }
    }

    /// The full configuration of this reading, with its own protocol and
    /// learning rates.
    pub fn config(self) -> FinetuneConfig {
        let spec = FinetuneConfig::DEFAULT;
        match self {
            Reading::Spec => spec,
            Reading::Literal => FinetuneConfig {
                reading: self,
                gain: GainOptions {
                    norm: GainNorm::None,
                    smoothing: GainSmoothing::None,
                    ..spec.gain
                },
                ..spec
            },
            Reading::CompanionCode => FinetuneConfig {
                reading: self,
                protocol: Protocol::Dataset(DatasetOptions {
                    patience: None,
                    ..DatasetOptions::DEFAULT
                }),
                readout: ReadoutKind::All,
                lambda: 0.0,
                lr: LearningRates::COMPANION_CODE,
                coupling_param: CouplingParam::Square,
                compensation: Compensation::Variance,
                gain_modulator_mean: Some(0.0),
                modulator_variance: 0.01,
                samples: 500,
                gain: GainOptions {
                    input: GainInput::Blank,
                    ..GainOptions::DEFAULT
                },
                ..spec
            },
        }
    }

    /// This reading's configuration under `protocol` instead of its own:
    /// the reading's learning rates if it fixes them (`companion-code`),
    /// else the protocol's (§4).
    pub fn under(self, protocol: Protocol) -> FinetuneConfig {
        FinetuneConfig {
            protocol,
            lr: self.learning_rates(&protocol),
            ..self.config()
        }
    }

    /// The learning rates of this reading under `protocol`.
    pub fn learning_rates(self, protocol: &Protocol) -> LearningRates {
        match self {
            Reading::CompanionCode => LearningRates::COMPANION_CODE,
            Reading::Spec | Reading::Literal => protocol.learning_rates(),
        }
    }

    /// The flags this reading sets differently from `spec`, as
    /// `--flag value` pairs.
    pub fn differences(self) -> Vec<(&'static str, String)> {
        let spec = FinetuneConfig::DEFAULT.flags();
        self.config()
            .flags()
            .into_iter()
            .filter(|pair| !spec.contains(pair) && pair.0 != "--reading")
            .collect()
    }
}

impl std::fmt::Display for Reading {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_differs_from_spec_only_in_the_gain() {
        let differences = Reading::Literal.differences();
        let flags: Vec<&str> = differences.iter().map(|(f, _)| *f).collect();
        assert_eq!(flags, ["--gain-norm", "--gain-smoothing"]);
        assert!(Reading::Spec.differences().is_empty());
    }

    #[test]
    fn companion_code_keeps_its_rates_under_either_protocol() {
        let online = Reading::CompanionCode.under(Protocol::Online);
        assert_eq!(online.lr, LearningRates::COMPANION_CODE);
        assert_eq!(online.coupling_param, CouplingParam::Square);
        assert_eq!(
            Reading::Spec.under(Protocol::DATASET).lr,
            LearningRates::DATASET
        );
        for reading in Reading::ALL {
            reading.config().validate().unwrap();
        }
    }
}
