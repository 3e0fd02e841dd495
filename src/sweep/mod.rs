//! Sweeps (§6): tasks × methods × repeats fine-tuning runs from one
//! pretrained network, in parallel, resumable, shardable, each run's record
//! appended as soon as it completes.

pub mod completeness;
pub mod plan;
pub mod record;
pub mod setup;
pub mod store;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

use rayon::prelude::*;

use crate::data::TaskId;
use crate::error::{Error, Result};
use crate::io::atomic::check_output;
use crate::io::lock::FileLock;
use crate::net::Depth;
use crate::net::linalg::serial_products;
use crate::sweep::plan::{Group, Plan, RunKey, Shard, groups};
use crate::sweep::record::{Architecture, Record, SweepConfig};
use crate::sweep::store::{Appender, Contents, check_config, read_results, write_canonical};
use crate::train::{Method, Study};

/// What a sweep covers: tasks of type `T` (a digit task, a benchmark's
/// head) × methods × repeats, with the configuration its records carry.
#[derive(Clone, Debug)]
pub struct SweepSpec<T, A: Architecture> {
    /// Tasks, in plan order.
    pub tasks: Vec<T>,
    /// Methods (each runs once, whatever the list repeats).
    pub methods: Vec<Method>,
    /// Repeats per (task, method).
    pub repeats: usize,
    /// The part of the plan this process runs.
    pub shard: Shard,
    /// Keep each modulation run's fine-tuned coupling in its record.
    pub record_coupling: bool,
    /// The configuration every record carries.
    pub config: SweepConfig<A>,
}

/// The most runs one sweep may plan (its plan is held in memory).
pub const MAX_PLAN_RUNS: usize = 10_000_000;

/// Checks that a plan of `tasks` tasks × `methods` × `repeats` has runs and
/// is not too large; the error names the option.
pub fn check_plan(tasks: usize, methods: &[Method], repeats: usize) -> Result<()> {
    if tasks == 0 {
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
    let runs = tasks.saturating_mul(methods.len()).saturating_mul(repeats);
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

impl<T, A: Architecture> SweepSpec<T, A> {
    /// Checks the plan and the configuration; the error names the option.
    pub fn validate(&self) -> Result<()> {
        check_plan(self.tasks.len(), &self.methods, self.repeats)?;
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
    /// Wall seconds the sweep took to run the runs run now.
    pub seconds: f64,
    /// Those runs' own wall seconds, each timed on its thread, summed:
    /// beside `seconds` × the threads, the share of the sweep spent in
    /// runs; the rest is the loop's own (each task's set-up, the records'
    /// writing, threads idle at the end). `None` when a run's work spreads
    /// over threads ([`crate::train::options::Protocol::splits_runs`]).
    pub run_seconds: Option<f64>,
    /// Floating-point operations of the runs run now.
    pub flops: f64,
}

impl SweepReport {
    /// The share of `threads` × the sweep's wall time that its runs took
    /// ([`SweepReport::run_seconds`]): what the sweep loop costs beside its
    /// runs, measured in the same process, so that a shared machine's
    /// noise, which slows runs and loop alike, does not hide it.
    pub fn run_share(&self, threads: usize) -> Option<f64> {
        let busy = (self.seconds * threads as f64).max(1e-9);
        self.run_seconds.map(|run_seconds| run_seconds / busy)
    }
}

/// Runs the sweep `spec` of `study` into `out` (created or resumed), for
/// either network (§6). `on_run` is called after each completed run with
/// the runs done so far and the total, for progress display.
pub fn run_sweep<S: Study, A: Architecture>(
    study: &S,
    spec: &SweepSpec<S::Task, A>,
    out: &Path,
    on_run: impl Fn(usize, usize) + Sync,
) -> Result<SweepReport> {
    run_sweep_until(study, spec, out, on_run, &AtomicBool::new(false))
}

/// [`run_sweep`] that stops starting runs once `stop` is set: the runs
/// under way finish and are recorded, then it fails with
/// [`Error::Interrupted`], leaving a file that resumes as after a kill
/// (§6).
pub fn run_sweep_until<S: Study, A: Architecture>(
    study: &S,
    spec: &SweepSpec<S::Task, A>,
    out: &Path,
    on_run: impl Fn(usize, usize) + Sync,
    stop: &AtomicBool,
) -> Result<SweepReport> {
    spec.validate()?;
    check_output(out)?;
    let _lock = FileLock::acquire(out)?;
    let contents = read_results::<A>(out)?;
    check_config(out, &contents.records, &spec.config)?;
    let is_done =
        |g: &Group<S::Task>, method: Method| contents.records.contains_key(&g.key(method));
    let plan_groups = groups(
        &spec.tasks,
        |t| study.task_id(t),
        &spec.methods,
        spec.repeats,
        spec.shard,
    );
    let planned_keys: BTreeSet<RunKey> = plan_groups
        .iter()
        .flat_map(|g| g.methods.iter().map(|&m| g.key(m)))
        .collect();
    let outside_plan = check_resumed(out, &contents, &planned_keys, &spec.config)?;
    let plan = Plan::new(
        spec.tasks.iter().map(|&t| study.task_id(t)).collect(),
        &spec.methods,
        spec.repeats,
        spec.shard.count,
    );
    let planned = plan_groups.iter().map(|g| g.methods.len()).sum();
    let resumed = plan_groups
        .iter()
        .map(|g| g.methods.iter().filter(|&&m| is_done(g, m)).count())
        .sum();
    let mut by_task: BTreeMap<TaskId, Vec<Group<S::Task>>> = BTreeMap::new();
    for group in plan_groups
        .into_iter()
        .filter(|g| g.methods.iter().any(|&m| !is_done(g, m)))
    {
        by_task.entry(group.id.clone()).or_default().push(group);
    }
    if !by_task.is_empty() {
        // The peak the closing line quotes is the highest reading of the
        // process, this one at the start among them.
        crate::bench::read_peak();
    }
    let existed = out.exists();
    let appender = Appender::open(out, &contents)?;
    let config = &spec.config.finetune;
    let master_seed = spec.config.master_seed;
    let done = AtomicUsize::new(resumed);
    let new_records: Mutex<Vec<(Record<A>, f64)>> = Mutex::new(Vec::new());
    let failed: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let start = Instant::now();
    let tasks: Vec<Vec<Group<S::Task>>> = by_task.into_values().collect();
    let interrupted = || Error::Interrupted {
        done: done.load(Ordering::SeqCst),
        total: planned,
    };
    let ran = tasks.par_iter().try_for_each(|task_groups| -> Result<()> {
        if stop.load(Ordering::SeqCst) {
            return Err(interrupted());
        }
        let data = study.task_data(task_groups[0].task, config, master_seed)?;
        task_groups.par_iter().try_for_each(|group| -> Result<()> {
            for &method in group.methods.iter().filter(|&&m| !is_done(group, m)) {
                if stop.load(Ordering::SeqCst) {
                    return Err(interrupted());
                }
                let key = group.key(method);
                let seed = key.seed(master_seed);
                let run_start = Instant::now();
                let outcome = serial_products(|| {
                    study.run(
                        group.task,
                        &data,
                        (method, group.repeat, seed),
                        config,
                        master_seed,
                    )
                })?;
                if let Some(failure) = &outcome.failure {
                    failed
                        .lock()
                        .expect("no panic while holding the lock")
                        .push(format!("{key}: {failure}"));
                }
                let coupling = (spec.record_coupling && method.trains() == Depth::Coupling)
                    .then_some(outcome.modulation.coupling);
                let record = Record {
                    format: A::RECORD_FORMAT,
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
                    plan: Some(plan.clone()),
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
    });
    let new_records = new_records
        .into_inner()
        .expect("no panic while holding the lock");
    if let Err(e) = ran {
        // A file this sweep created and wrote nothing to is not left behind.
        if !existed && new_records.is_empty() {
            let _ = std::fs::remove_file(out);
        }
        return Err(e);
    }
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
        // Folds from +0: an empty f64 sum is −0, printed as "-0.0".
        run_seconds: (!config.protocol.splits_runs()).then(|| {
            new_records
                .iter()
                .fold(0.0, |sum, (record, _)| sum + record.wall_s)
        }),
        flops: new_records.iter().fold(0.0, |sum, (_, flops)| sum + flops),
    };
    let mut all = contents.records;
    for (record, _) in new_records {
        all.insert(record.key(), record);
    }
    write_canonical(out, &all)?;
    Ok(report)
}

/// Checks that every run of the file that the `planned` runs hold is what this
/// sweep would have written (its seed, its curve's x axis, the epochs of a
/// `dataset` run), so that no wrong record is taken as done; returns how
/// many runs of the file lie outside the plan.
fn check_resumed<A: Architecture>(
    out: &Path,
    contents: &Contents<A>,
    planned: &BTreeSet<RunKey>,
    config: &SweepConfig<A>,
) -> Result<usize> {
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
