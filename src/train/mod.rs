//! Training (§3, §4): pretraining; for fine-tuning, the configuration and
//! its presets, the methods, the seam that both networks implement
//! ([`network`]: the MLP in [`mlp`], the convolutional network in
//! [`conv`]), and above it, written once, the learners, the gain, the
//! protocols, one run and what a sweep fine-tunes ([`study`]); task
//! switching and the loss-and-gradient trace of §7.

pub mod config;
pub mod conv;
pub mod evaluate;
pub mod fault;
pub mod gain;
pub mod joint;
pub mod learner;
pub mod method;
pub mod mlp;
pub mod network;
pub mod options;
pub mod presets;
pub mod pretrain;
pub mod protocol;
pub mod run;
pub mod study;
pub mod switching;
pub mod trace;
pub mod transfer;

pub use config::FinetuneConfig;
pub use evaluate::{PairAccuracy, general_accuracy, pair_accuracy};
pub use method::Method;
pub use network::{EvalSet, Examples, Frozen, Network};
pub use options::{Reading, ReadoutKind};
pub use pretrain::{EpochStats, PretrainOptions, PretrainReport, Pretrainer, pretrain};
pub use run::{RunOutcome, TaskData, finetune};
pub use study::{BenchmarkTasks, DigitTasks, Study};
pub use transfer::Transfer;
