//! Training (SPEC §4): pretraining on the general task and evaluation.

pub mod evaluate;
pub mod pretrain;

pub use evaluate::{PairAccuracy, general_accuracy, pair_accuracy};
pub use pretrain::{EpochStats, PretrainOptions, PretrainReport, Pretrainer, pretrain};
