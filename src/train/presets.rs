//! The named readings of the paper as configurations (§3 "Reading
//! presets"), and the one rule that puts explicit settings over them:
//! every option given explicitly wins over the preset (§3). The command
//! line, the report and library callers all build their configurations
//! here, so the rule and each preset's values live once.

use crate::error::{Error, Result};
use crate::net::GainRule;
use crate::train::config::FinetuneConfig;
use crate::train::method::{LearningRates, Method};
use crate::train::options::{
    Compensation, CouplingParam, DatasetOptions, GainInput, GainNorm, GainOptions, GainSmoothing,
    Protocol, ProtocolKind, Reading, ReadoutKind,
};

impl Reading {
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

    /// The `dataset` settings this reading starts from: its own when it
    /// runs that protocol, else §4's defaults.
    pub fn dataset_options(self) -> DatasetOptions {
        match self.config().protocol {
            Protocol::Dataset(options) => options,
            Protocol::Online => DatasetOptions::DEFAULT,
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

    /// This reading's configuration with every setting of `explicit` put
    /// over it (§3: an option given explicitly wins over the preset).
    pub fn with(self, explicit: &Overrides) -> FinetuneConfig {
        let preset = self.config();
        let kind = explicit.protocol.unwrap_or(preset.protocol.kind());
        let protocol = match kind {
            ProtocolKind::Online => Protocol::Online,
            ProtocolKind::Dataset => {
                let start = self.dataset_options();
                Protocol::Dataset(DatasetOptions {
                    size_step: explicit.size_step.unwrap_or(start.size_step),
                    sizes: explicit.sizes.unwrap_or(start.sizes),
                    max_epochs: explicit.max_epochs.unwrap_or(start.max_epochs),
                    patience: explicit.patience.unwrap_or(start.patience),
                })
            }
        };
        let rates = self.learning_rates(&protocol);
        let rate = |method: Method| {
            explicit
                .learning_rate(method)
                .unwrap_or(method.learning_rate(&rates))
        };
        FinetuneConfig {
            protocol,
            readout: explicit.readout.unwrap_or(preset.readout),
            gain: GainOptions {
                rule: explicit.gain_rule.unwrap_or(preset.gain.rule),
                norm: explicit.gain_norm.unwrap_or(preset.gain.norm),
                smoothing: explicit.gain_smoothing.unwrap_or(preset.gain.smoothing),
                input: explicit.gain_input.unwrap_or(preset.gain.input),
            },
            lr: LearningRates {
                stochastic: rate(Method::Stochastic),
                deterministic: rate(Method::Deterministic),
                retrain: rate(Method::Retrain),
                retrain_last: rate(Method::RetrainLast),
            },
            lambda: explicit.lambda.unwrap_or(preset.lambda),
            batches: explicit.batches.unwrap_or(preset.batches),
            batch_size: explicit.batch_size.unwrap_or(preset.batch_size),
            samples: explicit.samples.unwrap_or(preset.samples),
            modulator_mean: explicit.modulator_mean.unwrap_or(preset.modulator_mean),
            modulator_variance: explicit
                .modulator_variance
                .unwrap_or(preset.modulator_variance),
            test_composites: explicit.test_composites.unwrap_or(preset.test_composites),
            reading: self,
            gain_modulator_mean: explicit.gain_modulator_mean.or(preset.gain_modulator_mean),
            compensation: explicit.compensation.unwrap_or(preset.compensation),
            coupling_param: explicit.coupling_param.unwrap_or(preset.coupling_param),
            fresh_readout: preset.fresh_readout,
        }
    }
}

/// Settings given explicitly (on the command line, or by a library
/// caller), each `None` when not given: the preset's value then stands
/// ([`Reading::with`]). Named as the flags that set them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Overrides {
    /// `--protocol`.
    pub protocol: Option<ProtocolKind>,
    /// `--size-step` (`dataset`).
    pub size_step: Option<usize>,
    /// `--sizes` (`dataset`).
    pub sizes: Option<usize>,
    /// `--max-epochs` (`dataset`).
    pub max_epochs: Option<usize>,
    /// `--patience` (`dataset`): `Some(None)` is `none`.
    pub patience: Option<Option<usize>>,
    /// `--readout`.
    pub readout: Option<ReadoutKind>,
    /// `--gain-rule`.
    pub gain_rule: Option<GainRule>,
    /// `--gain-norm`.
    pub gain_norm: Option<GainNorm>,
    /// `--gain-smoothing`.
    pub gain_smoothing: Option<GainSmoothing>,
    /// `--gain-input`.
    pub gain_input: Option<GainInput>,
    /// `--lr-stochastic`.
    pub lr_stochastic: Option<f32>,
    /// `--lr-deterministic`.
    pub lr_deterministic: Option<f32>,
    /// `--lr-retrain`.
    pub lr_retrain: Option<f32>,
    /// `--lr-retrain-last`.
    pub lr_retrain_last: Option<f32>,
    /// `--lambda`.
    pub lambda: Option<f32>,
    /// `--batches` (`online`).
    pub batches: Option<usize>,
    /// `--batch-size`.
    pub batch_size: Option<usize>,
    /// `--samples`.
    pub samples: Option<usize>,
    /// `--modulator-mean`.
    pub modulator_mean: Option<f32>,
    /// `--modulator-var`.
    pub modulator_variance: Option<f32>,
    /// `--gain-modulator-mean`.
    pub gain_modulator_mean: Option<f32>,
    /// `--modulation-compensation`.
    pub compensation: Option<Compensation>,
    /// `--coupling-param`.
    pub coupling_param: Option<CouplingParam>,
    /// `--test-composites`.
    pub test_composites: Option<usize>,
}

impl Overrides {
    /// The learning rate given for `method`, if any.
    pub fn learning_rate(&self, method: Method) -> Option<f32> {
        match method {
            Method::Stochastic => self.lr_stochastic,
            Method::Deterministic => self.lr_deterministic,
            Method::Retrain => self.lr_retrain,
            Method::RetrainLast => self.lr_retrain_last,
        }
    }

    /// Refuses a setting that does not apply to the protocol `config`
    /// runs: the `dataset` protocol's sizes, epochs and patience under
    /// `online`, the `online` protocol's batches under `dataset` (given,
    /// it would be silently ignored).
    pub fn check_protocol(&self, config: &FinetuneConfig) -> Result<()> {
        let (given, protocol): (&[(&'static str, bool)], &str) = match config.protocol {
            Protocol::Online => (
                &[
                    ("--size-step", self.size_step.is_some()),
                    ("--sizes", self.sizes.is_some()),
                    ("--max-epochs", self.max_epochs.is_some()),
                    ("--patience", self.patience.is_some()),
                ],
                "dataset",
            ),
            Protocol::Dataset(_) => (&[("--batches", self.batches.is_some())], "online"),
        };
        match given.iter().find(|(_, given)| *given) {
            Some((flag, _)) => Err(Error::option(
                flag,
                "(given)",
                format!(
                    "applies to --protocol {protocol} only; this run's protocol is {}",
                    config.protocol.name()
                ),
            )),
            None => Ok(()),
        }
    }

    /// The flag of the first learning rate given, if any (`comod tune`
    /// sets the rates itself and refuses them).
    pub fn given_learning_rate(&self) -> Option<&'static str> {
        let flags = LearningRates::ONLINE.by_flag().map(|(flag, _)| flag);
        Method::ALL
            .iter()
            .zip(flags)
            .find_map(|(&m, flag)| self.learning_rate(m).map(|_| flag))
    }
}

/// The default of `flag` for help texts: its value under `spec`, under
/// each protocol where they differ, then under each other reading that
/// sets it otherwise, e.g. `0.01 (online), 0.0001 (dataset); 0.001 under
/// --reading companion-code`.
pub fn default_text(flag: &str) -> String {
    let value = |config: FinetuneConfig| config.flag(flag);
    // The value of `flag` under `spec` with each protocol (the protocol
    // itself is what the others vary with: only its own value counts).
    let spec = if flag == "--protocol" {
        (value(FinetuneConfig::DEFAULT), None)
    } else {
        (
            value(Reading::Spec.under(Protocol::Online)),
            value(Reading::Spec.under(Protocol::DATASET)),
        )
    };
    let mut parts = vec![match &spec {
        (Some(online), Some(dataset)) if online != dataset => {
            format!("{online} (online), {dataset} (dataset)")
        }
        (Some(value), _) | (None, Some(value)) => value.clone(),
        (None, None) => "none".to_string(),
    }];
    for reading in [Reading::Literal, Reading::CompanionCode] {
        let own = reading.config();
        let (value, spec_value) = match value(own) {
            Some(v) => (
                Some(v),
                match own.protocol {
                    Protocol::Dataset(_) if spec.1.is_some() => spec.1.clone(),
                    _ => spec.0.clone(),
                },
            ),
            None => (value(reading.under(Protocol::Online)), spec.0.clone()),
        };
        if let Some(v) = value
            && Some(&v) != spec_value.as_ref()
        {
            parts.push(format!("{v} under --reading {reading}"));
        }
    }
    parts.join("; ")
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

    #[test]
    fn explicit_settings_win_and_the_rest_is_the_preset() {
        for reading in Reading::ALL {
            assert_eq!(reading.with(&Overrides::default()), reading.config());
        }
        let explicit = Overrides {
            samples: Some(64),
            gain_norm: Some(GainNorm::Mean1),
            protocol: Some(ProtocolKind::Online),
            lr_retrain: Some(0.5),
            ..Overrides::default()
        };
        let config = Reading::CompanionCode.with(&explicit);
        assert_eq!(config.samples, 64);
        assert_eq!(config.protocol, Protocol::Online);
        assert_eq!(config.lr.retrain, 0.5);
        assert_eq!(
            config.lr.stochastic,
            LearningRates::COMPANION_CODE.stochastic
        );
        assert_eq!(config.coupling_param, CouplingParam::Square);
        assert_eq!(config.reading, Reading::CompanionCode);
        // A protocol given explicitly brings that protocol's rates, and the
        // reading's own `dataset` settings when it has them.
        let dataset = Overrides {
            protocol: Some(ProtocolKind::Dataset),
            ..Overrides::default()
        };
        assert_eq!(Reading::Spec.with(&dataset).lr, LearningRates::DATASET);
        assert_eq!(
            Reading::CompanionCode
                .with(&Overrides {
                    sizes: Some(3),
                    ..dataset
                })
                .protocol,
            Protocol::Dataset(DatasetOptions {
                sizes: 3,
                patience: None,
                ..DatasetOptions::DEFAULT
            })
        );
        assert_eq!(explicit.given_learning_rate(), Some("--lr-retrain"));
    }

    #[test]
    fn a_setting_of_the_other_protocol_is_refused() {
        let sizes = Overrides {
            sizes: Some(3),
            ..Overrides::default()
        };
        let err = sizes
            .check_protocol(&Reading::Spec.with(&sizes))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("--sizes"), "{err}");
        assert!(err.contains("protocol is online"), "{err}");
        let dataset = Overrides {
            protocol: Some(ProtocolKind::Dataset),
            ..sizes.clone()
        };
        dataset
            .check_protocol(&Reading::Spec.with(&dataset))
            .unwrap();
        let batches = Overrides {
            batches: Some(10),
            ..Overrides::default()
        };
        assert!(
            batches
                .check_protocol(&Reading::CompanionCode.with(&batches))
                .unwrap_err()
                .to_string()
                .starts_with("--batches")
        );
    }

    #[test]
    fn default_texts_name_each_reading_that_differs() {
        assert_eq!(
            default_text("--lr-stochastic"),
            "0.01 (online), 0.0001 (dataset); 0.001 under --reading companion-code"
        );
        assert_eq!(
            default_text("--patience"),
            "20; none under --reading companion-code"
        );
        assert_eq!(
            default_text("--gain-norm"),
            "mean1; none under --reading literal"
        );
        assert_eq!(default_text("--batches"), "250");
        assert_eq!(
            default_text("--protocol"),
            "online; dataset under --reading companion-code"
        );
    }
}
