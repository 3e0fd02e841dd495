//! Data (§1, §8): IDX files, digit pools, composites and tasks; the
//! multi-task benchmarks and their loaders.

pub mod benchmark;
pub mod celeba;
pub mod cifar;
pub mod composite;
pub mod digits;
pub mod idx;
pub mod images;
pub mod noise;
pub mod shape;
pub mod task;

pub use composite::{CANVAS_PIXELS, CompositeKind, CompositeSet, NOISE_STD};
pub use digits::{Digits, Pool};
pub use shape::Shape;
pub use task::{Task, TaskId, parse_task_list};

/// The folder of the shipped data, relative to the project (§1).
pub const SHIPPED_DATA_DIR: &str = "data";

/// The default `--data` of every command: `./data` when the working
/// folder has one, else the shipped data of the clone comod was built
/// from, so that a command (or a cluster job) started in any folder finds
/// the shipped digits.
pub fn shipped_data_dir() -> std::path::PathBuf {
    let here = std::path::Path::new(SHIPPED_DATA_DIR);
    let built_from = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(SHIPPED_DATA_DIR);
    if here.is_dir() || !built_from.is_dir() {
        here.to_path_buf()
    } else {
        built_from
    }
}
