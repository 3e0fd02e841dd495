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
use crate::io::atomic::check_output;
use crate::io::lock::FileLock;
use crate::net::Depth;
use crate::net::linalg::serial_products;
use crate::sweep::plan::{Group, RunKey, Shard, groups};
use crate::sweep::record::{RECORD_FORMAT, Record, SweepConfig};
use crate::sweep::store::{Appender, Contents, check_config, read_results, write_canonical};
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

/// The most runs one sweep may plan (its plan is held in memory).
pub const MAX_PLAN_RUNS: usize = 10_000_000;

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
    let runs = (tasks.len() * methods.len()).saturating_mul(repeats);
    if runs > MAX_PLAN_RUNS {
        return Err(Error::option(
            "--repeats",
            repeats,
            format!(
                "the plan has {runs} runs, more than {MAX_PLAN_RUNS}: split it into several sweeps"
            ),
        ));
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
    /// Runs in the file outside this plan (other tasks, methods, repeats
    /// or shards): kept as they are.
    pub outside_plan: usize,
    /// Runs run now that failed numerically (§6), each as
    /// `task method repeat N: where: tensor problem`.
    pub failed: Vec<String>,
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
    check_output(out)?;
    let _lock = FileLock::acquire(out)?;
    let contents = read_results(out)?;
    check_config(out, &contents, &spec.config)?;
    let is_done = |g: &Group, method: Method| contents.records.contains_key(&g.key(method));
    let plan_groups = groups(&spec.tasks, &spec.methods, spec.repeats, spec.shard);
    let outside_plan = check_resumed(out, &contents, &plan_groups, &spec.config)?;
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
    let appender = Appender::open(out, &contents)?;
    let config = &spec.config.finetune;
    let done = AtomicUsize::new(resumed);
    let new_records: Mutex<Vec<(Record, f64)>> = Mutex::new(Vec::new());
    let failed: Mutex<Vec<String>> = Mutex::new(Vec::new());
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
                    if let Some(failure) = &outcome.failure {
                        failed
                            .lock()
                            .expect("no panic while holding the lock")
                            .push(format!("{key}: {failure}"));
                    }
                    let coupling = (spec.record_coupling && method.trains() == Depth::Coupling)
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
                        failure: outcome.failure,
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
        outside_plan,
        failed: failed
            .into_inner()
            .expect("no panic while holding the lock"),
        seconds: start.elapsed().as_secs_f64(),
        // A fold from +0: an empty f64 sum is −0, printed as "-0.0".
        flops: new_records.iter().fold(0.0, |sum, (_, flops)| sum + flops),
    };
    let mut all = contents.records;
    for (record, _) in new_records {
        all.insert(record.key(), record);
    }
    write_canonical(out, &all)?;
    Ok(report)
}

/// Checks that every run of the file that this plan holds is what this
/// sweep would have written (its seed, its curve's x axis, the epochs of a
/// `dataset` run), so that no wrong record is taken as done; returns how
/// many runs of the file lie outside the plan.
fn check_resumed(
    out: &Path,
    contents: &Contents,
    plan: &[Group],
    config: &SweepConfig,
) -> Result<usize> {
    let planned: std::collections::BTreeSet<RunKey> = plan
        .iter()
        .flat_map(|g| g.methods.iter().map(|&m| g.key(m)))
        .collect();
    let expected = config.finetune.expected_examples();
    let dataset = config.finetune.protocol != crate::train::options::Protocol::Online;
    for (key, record) in contents.records.iter().filter(|(k, _)| planned.contains(k)) {
        let seed = key.seed(config.master_seed);
        let problem = if record.seed != seed {
            Some(format!("seed {} where this sweep uses {seed}", record.seed))
        } else if record.failed() && !expected.starts_with(&record.examples) {
            Some("a failed run whose measurements are not this sweep's".to_string())
        } else if !record.failed() && record.examples != expected {
            Some(format!(
                "{} measurements where this sweep makes {}",
                record.examples.len(),
                expected.len()
            ))
        } else if record.epochs.is_some() != dataset {
            Some("epoch counts that do not match the protocol".to_string())
        } else {
            None
        };
        if let Some(problem) = problem {
            return Err(Error::data(
                out,
                format!(
                    "{key} has {problem}: not a run of this sweep; remove its line or write elsewhere"
                ),
            ));
        }
    }
    Ok(contents
        .records
        .keys()
        .filter(|k| !planned.contains(k))
        .count())
}
