//! The second paper's system (§8): convolutional networks as stages,
//! per-channel modulation of a conv stage, one binary head per task.

pub mod arch;
pub mod checkpoint;
pub mod direct;
pub mod net;
pub mod ops;
pub mod trial;

pub use arch::{ConvArch, Stage};
pub use net::{ConvNet, ConvWorkspace, Heads, Modulator};
pub use ops::Shape;
