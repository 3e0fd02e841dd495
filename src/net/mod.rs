//! The network (§2) and its optimiser (§4): architecture, flat parameters,
//! layer forward/backward pairs, the modulation of a task, Adam.

pub mod adam;
pub mod arch;
pub mod few_rows;
pub mod gradients;
pub mod layers;
pub mod linalg;
pub mod model;
pub mod modulation;
pub mod readout;
pub mod simd;
pub mod vexp;

pub use adam::Adam;
pub use arch::{Arch, LayerKind, LayerSpec, Nonlinearity};
pub use gradients::{Depth, Grads};
pub use layers::Readout;
pub use linalg::Real;
pub use model::{BackwardReach, Model, Workspace};
pub use modulation::{GainRule, Modulated, Modulation};
