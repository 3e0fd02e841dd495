//! Files at the edges (§6, §7): atomic writes, safetensors reading and
//! writing, checkpoints and trace files.

pub mod atomic;
pub mod checkpoint;
pub mod lock;
pub mod read;
pub mod tensors;
pub mod trace;

pub use atomic::{check_not_input, check_output, check_writable, write_atomic};
pub use checkpoint::{Checkpoint, load_checkpoint, save_checkpoint, save_pretrained};
