//! The whole-run workloads of `comod bench`: one `online` fine-tuning run
//! of each method (§4, the default configuration) on a freshly
//! initialised paper network and the digits, run as a sweep runs them:
//! one run per thread at once, each on its own thread. The time of a line
//! is the wall time divided by the number of runs, so it reads as seconds
//! per run of a sweep on this many threads. The sweep workload
//! ([`SWEEP_WORKLOAD`]) times a whole small sweep, [`SWEEP_REPEATS`]
//! repeats of every method, scheduled as `comod sweep` schedules it: the
//! repeats spread over the threads, each repeat's methods in turn.

use std::path::Path;

use rayon::prelude::*;

use crate::data::{Digits, Task};
use crate::error::Result;
use crate::net::linalg::serial_products;
use crate::net::{Arch, Model};
use crate::train::study::digit_task_data;
use crate::train::{DigitTasks, FinetuneConfig, Frozen, Method, Study, TaskData};

/// The task every whole-run workload fine-tunes for.
const TASK: &str = "1-7@0";

/// The name of the sweep workload: 32 runs (4 methods × 8 repeats).
pub const SWEEP_WORKLOAD: &str = "sweep32";
/// Repeats of every method in [`SWEEP_WORKLOAD`].
pub const SWEEP_REPEATS: usize = 8;

/// The name of the whole-run workload of `method`: `online_` and its name.
pub fn workload_name(method: Method) -> &'static str {
    match method {
        Method::Stochastic => "online_stochastic",
        Method::Deterministic => "online_deterministic",
        Method::Retrain => "online_retrain",
        Method::RetrainLast => "online_retrain-last",
    }
}

/// Every whole-run workload name, in the order of [`Method::ALL`], then
/// the sweep's.
pub fn workload_names() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = Method::ALL.into_iter().map(workload_name).collect();
    names.push(SWEEP_WORKLOAD);
    names
}

/// A network, the digits and a task's test set, ready for timed runs.
pub struct OnlineRuns {
    frozen: Frozen<Model<f32>>,
    digits: Digits,
    task: Task,
    data: TaskData<Model<f32>>,
    config: FinetuneConfig,
}

impl OnlineRuns {
    /// Loads the digits from `data_dir` (failing with the file named) and
    /// builds a seeded paper network and the task's test set.
    pub fn prepare(data_dir: &Path) -> Result<OnlineRuns> {
        let digits = Digits::load(data_dir)?;
        let arch = Arch::preset("paper3", 1).expect("a preset");
        let frozen = Frozen::new(Model::<f32>::init(&arch, 1));
        let config = FinetuneConfig::DEFAULT;
        let task: Task = TASK.parse().expect("a valid task");
        let data = digit_task_data(&frozen, &digits, task, &config, 0);
        Ok(OnlineRuns {
            frozen,
            digits,
            task,
            data,
            config,
        })
    }

    /// Runs `runs` runs of `method` at once on the rayon pool, one per
    /// thread, and returns their floating-point operations.
    pub fn run(&self, method: Method, runs: usize) -> f64 {
        let flops: Vec<f64> = (0..runs)
            .into_par_iter()
            .map(|repeat| self.one(method, repeat))
            .collect();
        flops.into_iter().fold(0.0, |sum, flops| sum + flops)
    }

    /// Runs the sweep workload: [`SWEEP_REPEATS`] repeats on the rayon
    /// pool, each repeat's methods in turn, and returns their
    /// floating-point operations.
    pub fn sweep(&self) -> f64 {
        let flops: Vec<f64> = (0..SWEEP_REPEATS)
            .into_par_iter()
            .map(|repeat| {
                Method::ALL
                    .into_iter()
                    .fold(0.0, |sum, method| sum + self.one(method, repeat))
            })
            .collect();
        flops.into_iter().fold(0.0, |sum, flops| sum + flops)
    }

    /// One run of `method` at `repeat` (its seed) on this thread: its
    /// floating-point operations.
    fn one(&self, method: Method, repeat: usize) -> f64 {
        let study = DigitTasks {
            frozen: &self.frozen,
            digits: &self.digits,
        };
        serial_products(|| {
            study.run(
                self.task,
                &self.data,
                (method, repeat, repeat as u64),
                &self.config,
                0,
            )
        })
        .expect("the default configuration is valid")
        .flops
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_methods_names() {
        for method in Method::ALL {
            assert_eq!(workload_name(method), format!("online_{}", method.name()));
        }
        assert_eq!(workload_names().last(), Some(&SWEEP_WORKLOAD));
    }
}
