//! Training (§3, §4): pretraining on the general task; for fine-tuning,
//! the configuration, the methods, their learners, the protocols that
//! drive them, one run, evaluation and the gain; and the
//! loss-and-gradient trace of §7.

pub mod config;
pub mod evaluate;
pub mod fault;
pub mod frozen;
pub mod gain;
pub mod learner;
pub mod method;
pub mod options;
pub mod presets;
pub mod pretrain;
pub mod protocol;
pub mod run;
pub mod switching;
pub mod trace;

pub use config::FinetuneConfig;
pub use evaluate::{PairAccuracy, general_accuracy, pair_accuracy};
pub use frozen::FrozenNetwork;
pub use method::Method;
pub use options::{Reading, ReadoutKind};
pub use pretrain::{EpochStats, PretrainOptions, PretrainReport, Pretrainer, pretrain};
pub use run::{RunOutcome, TaskData, finetune};
