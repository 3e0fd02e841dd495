//! Data (§1, §8): IDX files, digit pools, composites and tasks; the
//! multi-task benchmarks and their loaders.

pub mod benchmark;
pub mod celeba;
pub mod cifar;
pub mod composite;
pub mod digits;
pub mod idx;
pub mod images;
pub mod shape;
pub mod task;

pub use composite::{CANVAS_PIXELS, CompositeKind, CompositeSet, NOISE_STD};
pub use digits::{Digits, Pool};
pub use shape::Shape;
pub use task::{Task, TaskId, parse_task_list};

/// The folder of the shipped digits, relative to the project (§1): the
/// default `--data` of every command.
pub const SHIPPED_DATA_DIR: &str = "data";
