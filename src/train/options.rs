//! The options of a fine-tuning run that take one of a few values, or a
//! small bundle of them (§2–§4): the protocol, the readout, the gain's
//! options, the modulator's compensation and parametrisation, and the
//! name of the reading a configuration started from. Each lists its
//! values once ([`crate::named::Named`]); [`crate::train::config`] puts them together.

use serde::{Deserialize, Serialize};

use crate::data::{CompositeSet, Task};
use crate::error::{Error, Result};
use crate::named;
use crate::net::{GainRule, Readout};
use crate::train::method::LearningRates;

/// The most examples the `dataset` protocol's largest size may hold (each
/// run keeps its activities in memory).
pub const MAX_DATASET_EXAMPLES: usize = 100_000;

/// How a run sees its training data (§4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// One pass over fresh batches, measured before the first update and
    /// after every batch.
    Online,
    /// Data sets of growing size, each trained from the pretrained network
    /// to its lowest validation loss; one measurement per size.
    Dataset(DatasetOptions),
}

impl Protocol {
    /// The `dataset` protocol with its §4 defaults.
    pub const DATASET: Protocol = Protocol::Dataset(DatasetOptions::DEFAULT);

    /// The name used on the command line (`--protocol`).
    pub fn name(&self) -> &'static str {
        self.kind().name()
    }

    /// Which of the two protocols this is.
    pub fn kind(&self) -> ProtocolKind {
        match self {
            Protocol::Online => ProtocolKind::Online,
            Protocol::Dataset(_) => ProtocolKind::Dataset,
        }
    }

    /// True when one run's work spreads over threads even inside a sweep:
    /// the `dataset` protocol's sizes run in parallel, for the sweep's
    /// balance at its end ([`crate::train::protocol::dataset`] gives the
    /// measurement), so a run's wall time is not one thread's.
    pub fn splits_runs(&self) -> bool {
        matches!(self, Protocol::Dataset(_))
    }

    /// The learning rates of this protocol (§4): chosen so that one pass
    /// moves the curves (`online`), or the paper's (`dataset`).
    pub fn learning_rates(&self) -> LearningRates {
        match self {
            Protocol::Online => LearningRates::ONLINE,
            Protocol::Dataset(_) => LearningRates::DATASET,
        }
    }
}

/// The protocol's name alone (`--protocol`), without its settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProtocolKind {
    /// [`Protocol::Online`].
    Online,
    /// [`Protocol::Dataset`].
    Dataset,
}

named!(ProtocolKind {
    ProtocolKind::Online => "online",
    ProtocolKind::Dataset => "dataset",
});

/// The settings of the `dataset` protocol (§4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetOptions {
    /// S: the sizes are S, 2S, …, N·S examples.
    pub size_step: usize,
    /// N: the number of sizes.
    pub sizes: usize,
    /// E_max: the most epochs one size trains.
    pub max_epochs: usize,
    /// P: stop after this many epochs without a lower validation loss;
    /// `None` trains all E_max epochs (still keeping the best state).
    pub patience: Option<usize>,
}

impl DatasetOptions {
    /// The defaults of §4: S = 10, N = 30, E_max = 1000, P = 20.
    pub const DEFAULT: DatasetOptions = DatasetOptions {
        size_step: 10,
        sizes: 30,
        max_epochs: 1000,
        patience: Some(20),
    };

    /// The data-set sizes n = S, 2S, …, N·S.
    pub fn sizes(&self) -> impl Iterator<Item = usize> + use<> {
        let step = self.size_step;
        (1..=self.sizes).map(move |k| k * step)
    }

    /// The largest size, N·S: the run's training sequence.
    pub fn largest(&self) -> usize {
        self.sizes.saturating_mul(self.size_step)
    }

    /// Checks every setting; the error names the first one out of range.
    pub fn validate(&self) -> Result<()> {
        if self.size_step < 2 {
            return Err(Error::option(
                "--size-step",
                self.size_step,
                "must be at least 2 (each size is split into training and validation halves)",
            ));
        }
        for (flag, count) in [("--sizes", self.sizes), ("--max-epochs", self.max_epochs)] {
            if count == 0 {
                return Err(Error::option(flag, count, "must be at least 1"));
            }
        }
        if self.patience == Some(0) {
            return Err(Error::option(
                "--patience",
                0,
                "must be at least 1 (or `none`: train all --max-epochs)",
            ));
        }
        if self.largest() > MAX_DATASET_EXAMPLES {
            return Err(Error::option(
                "--sizes",
                self.sizes,
                format!(
                    "with --size-step {} the largest data set has {} examples; at most {MAX_DATASET_EXAMPLES}",
                    self.size_step,
                    self.largest()
                ),
            ));
        }
        Ok(())
    }
}

/// Which logits a binary digit task reads (§2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReadoutKind {
    /// Softmax over the logits of a and b; labels 0/1.
    Pair,
    /// 10-way softmax; label = the target digit's class (the default).
    All,
}

named!(ReadoutKind {
    ReadoutKind::Pair => "pair",
    ReadoutKind::All => "all",
});

impl ReadoutKind {
    /// The logits the digit task `task` reads.
    pub fn of(self, task: Task) -> Readout {
        match self {
            ReadoutKind::Pair => Readout::Pair(task.a, task.b),
            ReadoutKind::All => Readout::All,
        }
    }

    /// The labels `set` is read with: 0/1 for the pair, the target
    /// digit's class for all ten.
    pub fn labels(self, set: &CompositeSet) -> &[u8] {
        match self {
            ReadoutKind::Pair => &set.labels,
            ReadoutKind::All => &set.targets,
        }
    }
}

/// How the modulated layer's factor treats the modulator's variance (§3).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compensation {
    /// exp(m·c − β).
    #[default]
    None,
    /// exp(m·c − σ²·c²/2 − β), σ² the variance of the trial's samples
    /// (0 at m = μ_m): the modulation leaves a neuron's mean gain unchanged.
    Variance,
}

named!(Compensation {
    Compensation::None => "none",
    Compensation::Variance => "variance",
});

/// What the modulation methods learn for the coupling (§3).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CouplingParam {
    /// c itself.
    #[default]
    Linear,
    /// w, with c = w² (a non-negative coupling).
    Square,
}

named!(CouplingParam {
    CouplingParam::Linear => "linear",
    CouplingParam::Square => "square",
});

/// Normalisation of a gain estimate (§3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GainNorm {
    /// Rectify, then scale to mean 1 over the neurons (all zero → g = 1).
    Mean1,
    /// The raw estimate.
    None,
}

named!(GainNorm {
    GainNorm::Mean1 => "mean1",
    GainNorm::None => "none",
});

/// Smoothing of the gain across batches (§3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GainSmoothing {
    /// g ← (τ·g_old + g_new)/(τ + 1), τ ← min(τ + 1, τ_max), τ = 1 after the first estimate.
    Running,
    /// Each batch's estimate replaces the last.
    None,
}

named!(GainSmoothing {
    GainSmoothing::Running => "running",
    GainSmoothing::None => "none",
});

/// What the gain is estimated on (§3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GainInput {
    /// The trials of the current batch.
    Batch,
    /// One stimulus-free trial (all-zero input).
    Blank,
}

named!(GainInput {
    GainInput::Batch => "batch",
    GainInput::Blank => "blank",
});

/// Every option of the gain (§3); the defaults are §3's reading,
/// `norm: None, smoothing: None` is the literal Eq. 3.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GainOptions {
    /// Covariance (Eq. 3) or correlation.
    pub rule: GainRule,
    /// Normalisation.
    pub norm: GainNorm,
    /// Smoothing across batches.
    pub smoothing: GainSmoothing,
    /// Estimation input.
    pub input: GainInput,
}

impl GainOptions {
    /// The reading of §3: covariance, rectified to mean 1, running
    /// average, on the batch.
    pub const DEFAULT: GainOptions = GainOptions {
        rule: GainRule::Covariance,
        norm: GainNorm::Mean1,
        smoothing: GainSmoothing::Running,
        input: GainInput::Batch,
    };
}

impl Default for GainOptions {
    fn default() -> Self {
        GainOptions::DEFAULT
    }
}

/// A named reading of the paper (§3, `--reading`): the bundle of options
/// it sets is [`Reading::config`](crate::train::presets).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
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

named!(Reading {
    Reading::Spec => "spec",
    Reading::Literal => "literal",
    Reading::CompanionCode => "companion-code",
});

impl std::fmt::Display for Reading {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::named::Named;

    /// Each value's name is its serde spelling, so that a record and the
    /// command line spell an option alike.
    fn names_match_serde<T: Named + Serialize>() {
        for &value in T::ALL {
            assert_eq!(
                serde_json::to_string(&value).unwrap(),
                format!("\"{}\"", value.name())
            );
            assert!(T::from_name(value.name()) == Some(value));
        }
    }

    #[test]
    fn names_are_the_serde_names() {
        names_match_serde::<ReadoutKind>();
        names_match_serde::<Compensation>();
        names_match_serde::<CouplingParam>();
        names_match_serde::<GainNorm>();
        names_match_serde::<GainSmoothing>();
        names_match_serde::<GainInput>();
        names_match_serde::<GainRule>();
        names_match_serde::<Reading>();
    }
}
