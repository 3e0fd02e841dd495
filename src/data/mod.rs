//! Data (SPEC §1): IDX files, digit pools, composites and tasks.

pub mod composite;
pub mod digits;
pub mod idx;
pub mod task;

pub use composite::{CANVAS_PIXELS, CompositeKind, CompositeSet, NOISE_STD};
pub use digits::{Digits, Pool};
pub use task::{Task, parse_task_list};
