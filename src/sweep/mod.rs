//! Sweeps (§6): tasks × methods × repeats fine-tuning runs from one
//! pretrained network, in parallel, resumable, shardable, each run's record
//! appended as soon as it completes.

pub mod plan;
pub mod record;
pub mod store;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use rayon::prelude::*;

use crate::data::{Digits, Task};
use crate::error::{Error, Result};
use crate::net::linalg::serial_products;
use crate::sweep::plan::{Group, Shard, groups};
use crate::sweep::record::{RECORD_FORMAT, Record, SweepConfig};
use crate::sweep::store::{Appender, check_config, read_results, write_canonical};
use crate::train::method::Trained;
use crate::train::{FrozenNetwork, Method, TaskData, finetune};

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
    /// Keep each modulation run's fine-tuned coupling in its record.
    pub record_coupling: bool,
    /// The configuration every record carries.
    pub config: SweepConfig,
}

/// Checks that a plan of `tasks` × `methods` × `repeats` has runs; the
/// error names the option.
pub fn check_plan(tasks: &[Task], methods: &[Method], repeats: usize) -> Result<()> {
    if tasks.is_empty() {
        return Err(Error::option("--tasks", "(none)", "a sweep needs a task"));
    }
    if methods.is_empty() {
        return Err(Error::option(
            "--methods",
            "(none)",
            "a sweep needs a method",
        ));
    }
    if repeats == 0 {
        return Err(Error::option("--repeats", 0, "must be at least 1"));
    }
    Ok(())
}

impl SweepSpec {
    /// Checks the plan and the configuration; the error names the option.
    pub fn validate(&self) -> Result<()> {
        check_plan(&self.tasks, &self.methods, self.repeats)?;
        self.config.finetune.validate()
    }
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

/// Runs the sweep `spec` of `frozen` on `digits` into `out` (created or
/// resumed). `on_run` is called after each completed run with the runs
/// done so far and the total, for progress display.
pub fn run_sweep(
    frozen: &FrozenNetwork,
    digits: &Digits,
    spec: &SweepSpec,
    out: &Path,
    on_run: impl Fn(usize, usize) + Sync,
) -> Result<SweepReport> {
    spec.validate()?;
    let contents = read_results(out)?;
    check_config(out, &contents, &spec.config)?;
    let is_done = |g: &Group, method: Method| contents.records.contains_key(&g.key(method));
    let plan_groups = groups(&spec.tasks, &spec.methods, spec.repeats, spec.shard);
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
    let config = &spec.config.finetune;
    let done = AtomicUsize::new(resumed);
    let new_records: Mutex<Vec<(Record, f64)>> = Mutex::new(Vec::new());
    let start = Instant::now();
    let tasks: Vec<(Task, Vec<Group>)> = by_task.into_iter().collect();
    tasks
        .par_iter()
        .try_for_each(|(task, task_groups)| -> Result<()> {
            let data = TaskData::new(frozen, digits, *task, config, spec.config.master_seed);
            task_groups.par_iter().try_for_each(|group| -> Result<()> {
                for &method in group.methods.iter().filter(|&&m| !is_done(group, m)) {
                    let key = group.key(method);
                    let seed = key.seed(spec.config.master_seed);
                    let run_start = Instant::now();
                    let outcome =
                        serial_products(|| finetune(frozen, digits, &data, method, config, seed))?;
                    let coupling = (spec.record_coupling && method.trains() == Trained::Coupling)
                        .then_some(outcome.modulation.coupling);
                    let record = Record {
                        format: RECORD_FORMAT,
                        task: key.task,
                        method,
                        repeat: key.repeat,
                        seed,
                        examples: outcome.curve.examples,
                        curve: outcome.curve.accuracy,
                        coupling,
                        epochs: outcome.epochs,
                        wall_s: run_start.elapsed().as_secs_f64(),
                        config: spec.config.clone(),
                    };
                    appender.append(&record)?;
                    new_records
                        .lock()
                        .expect("no panic while holding the lock")
                        .push((record, outcome.flops));
                    on_run(done.fetch_add(1, Ordering::Relaxed) + 1, planned);
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
        flops: new_records.iter().map(|(_, flops)| flops).sum(),
    };
    let mut all = contents.records;
    for (record, _) in new_records {
        all.insert(record.key(), record);
    }
    write_canonical(out, &all)?;
    Ok(report)
}
