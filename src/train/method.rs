//! The four fine-tuning methods (§4): what each trains, its learning rate,
//! and whether the readout gates by the §3 gain. How each is trained and
//! evaluated is its learner's ([`crate::train::learner`]).

use serde::{Deserialize, Serialize};

use crate::named;
use crate::net::Depth;

/// A fine-tuning method (§4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// Train c; the readout gates by the covariance gain.
    Stochastic,
    /// Train c with σ_m = 0 (attention); g = 1.
    Deterministic,
    /// Train every weight and bias (c = 0).
    Retrain,
    /// Train the readout's weights and bias (c = 0).
    RetrainLast,
}

named!(Method {
    Method::Stochastic => "stochastic",
    Method::Deterministic => "deterministic",
    Method::Retrain => "retrain",
    Method::RetrainLast => "retrain-last",
});

impl Method {
    /// What the method trains: the coupling, every weight and bias, or
    /// the readout's; the backward pass goes that far (§4).
    pub fn trains(self) -> Depth {
        match self {
            Method::Stochastic | Method::Deterministic => Depth::Coupling,
            Method::Retrain => Depth::All,
            Method::RetrainLast => Depth::Readout,
        }
    }

    /// True when the readout gates by the gain of §3, re-estimated after
    /// every update (the stochastic method); the others keep g = 1.
    pub fn gates(self) -> bool {
        self == Method::Stochastic
    }

    /// The method's learning rate among `rates`.
    pub fn learning_rate(self, rates: &LearningRates) -> f32 {
        match self {
            Method::Stochastic => rates.stochastic,
            Method::Deterministic => rates.deterministic,
            Method::Retrain => rates.retrain,
            Method::RetrainLast => rates.retrain_last,
        }
    }
}

/// Learning rates per method (§4).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct LearningRates {
    /// `stochastic`.
    pub stochastic: f32,
    /// `deterministic`.
    pub deterministic: f32,
    /// `retrain`.
    pub retrain: f32,
    /// `retrain-last`.
    pub retrain_last: f32,
}

impl LearningRates {
    /// The rates of the `online` protocol (§4), chosen on a log grid so
    /// that the curves move within its 500 examples.
    pub const ONLINE: LearningRates = LearningRates {
        stochastic: 1e-2,
        deterministic: 1e-2,
        retrain: 1e-4,
        retrain_last: 1e-3,
    };

    /// The paper's rates (supplement), for the `dataset` protocol (§4),
    /// which trains each data-set size to its lowest validation loss.
    pub const DATASET: LearningRates = LearningRates {
        stochastic: 1e-4,
        deterministic: 1e-4,
        retrain: 1e-6,
        retrain_last: 1e-4,
    };

    /// The rates of the authors' companion code (§3, `--reading
    /// companion-code`): 1e-3 for the coupling, 1e-4 for retraining.
    pub const COMPANION_CODE: LearningRates = LearningRates {
        stochastic: 1e-3,
        deterministic: 1e-3,
        retrain: 1e-4,
        retrain_last: 1e-4,
    };

    /// Each rate with the flag that sets it, in method order.
    pub fn by_flag(&self) -> [(&'static str, f32); 4] {
        [
            ("--lr-stochastic", self.stochastic),
            ("--lr-deterministic", self.deterministic),
            ("--lr-retrain", self.retrain),
            ("--lr-retrain-last", self.retrain_last),
        ]
    }
}

impl Default for LearningRates {
    fn default() -> Self {
        LearningRates::ONLINE
    }
}
