//! Files at the edges (SPEC §7): safetensors reading and writing, checkpoints.

pub mod checkpoint;
pub mod tensors;

pub use checkpoint::{Checkpoint, load_checkpoint, save_checkpoint};
