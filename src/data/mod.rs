//! Data (§1): IDX files, digit pools, composites and tasks.

pub mod composite;
pub mod digits;
pub mod idx;
pub mod task;

pub use composite::{CANVAS_PIXELS, CompositeKind, CompositeSet, NOISE_STD};
pub use digits::{Digits, Pool};
pub use task::{Task, TaskId, parse_task_list};

/// The folder of the shipped digits, relative to the project (§1): the
/// default `--data` of every command.
pub const SHIPPED_DATA_DIR: &str = "data";
