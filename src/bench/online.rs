//! The whole-run workloads of `comod bench`: one `online` fine-tuning run
//! of each method (§4, the default configuration) on a freshly
//! initialised paper network and the digits, run as a sweep runs them:
//! one run per thread at once, each on its own thread. The time of a line
//! is the wall time divided by the number of runs, so it reads as seconds
//! per run of a sweep on this many threads.

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

/// The name of the whole-run workload of `method`: `online_` and its name.
pub fn workload_name(method: Method) -> &'static str {
    match method {
        Method::Stochastic => "online_stochastic",
        Method::Deterministic => "online_deterministic",
        Method::Retrain => "online_retrain",
        Method::RetrainLast => "online_retrain-last",
    }
}

/// Every whole-run workload name, in the order of [`Method::ALL`].
pub fn workload_names() -> Vec<&'static str> {
    Method::ALL.into_iter().map(workload_name).collect()
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
        let study = DigitTasks {
            frozen: &self.frozen,
            digits: &self.digits,
        };
        (0..runs)
            .into_par_iter()
            .map(|seed| {
                serial_products(|| {
                    study.run(
                        self.task,
                        &self.data,
                        (method, 0, seed as u64),
                        &self.config,
                        0,
                    )
                })
                .expect("the default configuration is valid")
                .flops
            })
            .collect::<Vec<f64>>()
            .into_iter()
            .fold(0.0, |sum, flops| sum + flops)
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
    }
}
