//! The second paper's system (§8): convolutional networks as stages,
//! per-channel modulation of a conv stage, one binary head per task.

pub mod arch;
pub mod checkpoint;
pub mod direct;
pub mod evaluation;
pub mod heads;
pub mod mix;
pub mod modulator;
pub mod net;
pub mod ops;
pub mod trial;
pub mod weight_grad;
pub mod workspace;

pub use arch::{ConvArch, Stage};
pub use evaluation::{Evaluation, EvaluationPlan};
pub use heads::Heads;
pub use modulator::Modulator;
pub use net::ConvNet;
pub use workspace::ConvWorkspace;
