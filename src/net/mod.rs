//! The network (SPEC §2) and its optimiser (SPEC §4): architecture, flat
//! parameters, layer forward/backward pairs, Adam.

pub mod adam;
pub mod arch;
pub mod layers;
pub mod linalg;
pub mod model;
pub mod simd;
pub mod vexp;

pub use adam::Adam;
pub use arch::{Arch, LayerKind, LayerSpec, Nonlinearity};
pub use layers::Readout;
pub use linalg::Real;
pub use model::{GradTargets, Grads, Model, Workspace};
