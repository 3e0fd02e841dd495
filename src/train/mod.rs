//! Training (SPEC §4): pretraining on the general task, evaluation, and the
//! loss-and-gradient trace of SPEC §7.

pub mod evaluate;
pub mod finetune;
pub mod gain;
pub mod metrics;
pub mod pretrain;
pub mod trace;

pub use evaluate::{PairAccuracy, general_accuracy, pair_accuracy};
pub use pretrain::{EpochStats, PretrainOptions, PretrainReport, Pretrainer, pretrain};
