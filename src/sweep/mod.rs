//! Sweeps (SPEC §6): tasks × methods × repeats fine-tuning runs from one
//! pretrained network, in parallel, resumable, shardable, each run's record
//! appended as soon as it completes.

pub mod plan;
pub mod record;
pub mod store;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

use rayon::prelude::*;

use crate::data::{Digits, Task};
use crate::error::Result;
use crate::kernel::KernelPlan;
use crate::net::Model;
use crate::net::linalg::serial_products;
use crate::sweep::plan::{Group, RunKey, Shard, groups};
use crate::sweep::record::{Record, SweepConfig};
use crate::sweep::store::{Appender, check_config, read_results, write_canonical};
use crate::train::finetune::{Method, TaskData, finetune, run_flops};
use crate::train::metrics::{examples_to_criterion, initial_slope};

/// What a sweep covers.
#[derive(Clone, Debug)]
pub struct SweepSpec {
    /// Tasks, in plan order.
    pub tasks: Vec<Task>,
    /// Methods.
    pub methods: Vec<Method>,
    /// Repeats per (task, method).
    pub repeats: usize,
    /// The part of the plan this process runs.
    pub shard: Shard,
    /// The configuration every record carries.
    pub config: SweepConfig,
}

/// How a sweep went.
#[derive(Clone, Debug, Default)]
pub struct SweepReport {
    /// Runs in this shard's plan.
    pub planned: usize,
    /// Runs found in the results file and skipped.
    pub resumed: usize,
    /// Runs run now.
    pub run: usize,
    /// A torn last line that was dropped.
    pub dropped_torn_line: Option<String>,
    /// Wall seconds of the runs run now.
    pub seconds: f64,
    /// Floating-point operations of the runs run now.
    pub flops: f64,
}

/// Runs the sweep `spec` of `model` on `digits` into `out` (created or
/// resumed). `on_run` is called after each completed run with the runs
/// done so far and the total, for progress display.
pub fn run_sweep(
    model: &Model<f32>,
    digits: &Digits,
    spec: &SweepSpec,
    out: &Path,
    on_run: impl Fn(usize, usize) + Sync,
) -> Result<SweepReport> {
    let contents = read_results(out)?;
    check_config(out, &contents, &spec.config)?;
    let plan_groups = groups(&spec.tasks, &spec.methods, spec.repeats, spec.shard);
    let is_done = |g: &Group, method: Method| {
        contents.records.contains_key(&RunKey {
            task: g.task,
            method,
            repeat: g.repeat,
        })
    };
    let planned = plan_groups.iter().map(|g| g.methods.len()).sum();
    let resumed = plan_groups
        .iter()
        .map(|g| g.methods.iter().filter(|&&m| is_done(g, m)).count())
        .sum();
    let mut by_task: BTreeMap<Task, Vec<Group>> = BTreeMap::new();
    for group in plan_groups
        .into_iter()
        .filter(|g| g.methods.iter().any(|&m| !is_done(g, m)))
    {
        by_task.entry(group.task).or_default().push(group);
    }
    let appender = Appender::open(out, contents.whole_len)?;
    let kernel_plan = KernelPlan::new(model);
    let finetune_config = &spec.config.finetune;
    let flops: HashMap<Method, f64> = Method::ALL
        .iter()
        .map(|&m| (m, run_flops(model, &kernel_plan, m, finetune_config)))
        .collect();
    let done = std::sync::atomic::AtomicUsize::new(resumed);
    let new_records: Mutex<Vec<Record>> = Mutex::new(Vec::new());
    let start = Instant::now();
    let tasks: Vec<(Task, Vec<Group>)> = by_task.into_iter().collect();
    tasks
        .par_iter()
        .try_for_each(|(task, task_groups)| -> Result<()> {
            let data = TaskData::new(
                model,
                digits,
                *task,
                finetune_config,
                spec.config.master_seed,
            );
            task_groups.par_iter().try_for_each(|group| -> Result<()> {
                let mut retrain_slope = contents
                    .records
                    .get(&RunKey {
                        task: group.task,
                        method: Method::Retrain,
                        repeat: group.repeat,
                    })
                    .map(|r| r.slope);
                for &method in &group.methods {
                    let key = RunKey {
                        task: group.task,
                        method,
                        repeat: group.repeat,
                    };
                    if contents.records.contains_key(&key) {
                        continue;
                    }
                    let seed = key.seed(spec.config.master_seed);
                    let run_start = Instant::now();
                    let (_, curve) = serial_products(|| {
                        finetune(
                            model,
                            &kernel_plan,
                            digits,
                            &data,
                            method,
                            finetune_config,
                            seed,
                        )
                    });
                    let batch = finetune_config.batch_size;
                    let slope = initial_slope(&curve, batch);
                    if method == Method::Retrain {
                        retrain_slope = Some(slope);
                    }
                    let record = Record {
                        task: key.task.to_string(),
                        method,
                        repeat: key.repeat,
                        seed,
                        slope,
                        slope_ratio_retrain: retrain_slope.filter(|&r| r != 0.0).map(|r| slope / r),
                        examples_to_criterion: examples_to_criterion(&curve, batch),
                        curve,
                        wall_s: run_start.elapsed().as_secs_f64(),
                        config: spec.config.clone(),
                    };
                    appender.append(&record)?;
                    new_records
                        .lock()
                        .expect("no panic while holding the lock")
                        .push(record);
                    let finished = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                    on_run(finished, planned);
                }
                Ok(())
            })
        })?;
    let new_records = new_records
        .into_inner()
        .expect("no panic while holding the lock");
    let report = SweepReport {
        planned,
        resumed,
        run: new_records.len(),
        dropped_torn_line: contents.torn.clone(),
        seconds: start.elapsed().as_secs_f64(),
        flops: new_records.iter().map(|r| flops[&r.method]).sum(),
    };
    let mut all = contents.records;
    for record in new_records {
        let key = record.key().expect("records made here have valid tasks");
        all.insert(key, record);
    }
    write_canonical(out, &all)?;
    Ok(report)
}
