//! Files at the edges (SPEC §7): safetensors reading and writing,
//! checkpoints and trace files.

pub mod checkpoint;
pub mod tensors;
pub mod trace;

pub use checkpoint::{Checkpoint, load_checkpoint, save_checkpoint};
