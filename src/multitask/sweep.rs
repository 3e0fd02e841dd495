//! Multi-task sweeps (§6, §8): tasks × methods × repeats from one
//! pretrained convolutional network, in parallel, each record appended as
//! it completes; resumed by skipping the runs a results file holds,
//! split into shards by (task, repeat), written in canonical order.

use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use rayon::prelude::*;

use crate::conv::ConvNet;
use crate::data::{Pool, TaskId};
use crate::error::{Error, Result};
use crate::io::atomic::check_output;
use crate::io::lock::FileLock;
use crate::multitask::data::MultitaskData;
use crate::multitask::finetune::{TaskSets, finetune_task};
use crate::multitask::record::{MULTITASK_RECORD_FORMAT, MultitaskConfig, MultitaskRecord};
use crate::net::Depth;
use crate::net::linalg::serial_products;
use crate::rng::derive_seed;
use crate::sweep::plan::{RunKey, Shard};
use crate::sweep::store::{Appender, Stored, check_config, read_records, write_canonical};
use crate::train::Method;

/// What a multi-task sweep covers.
#[derive(Clone, Debug)]
pub struct MultitaskSweepSpec {
    /// Task indices (heads), in plan order.
    pub tasks: Vec<usize>,
    /// Methods.
    pub methods: Vec<Method>,
    /// Repeats.
    pub repeats: usize,
    /// The part of the plan this process runs.
    pub shard: Shard,
    /// Keep the fine-tuned coupling in the records.
    pub record_coupling: bool,
    /// The configuration every record carries.
    pub config: MultitaskConfig,
}

/// What a multi-task sweep did.
#[derive(Clone, Debug, Default)]
pub struct MultitaskSweepReport {
    /// Runs of this shard's plan.
    pub planned: usize,
    /// Of which already in the file.
    pub resumed: usize,
    /// Run now.
    pub run: usize,
    /// Runs that ended in a numerical fault.
    pub failed: Vec<String>,
    /// Wall seconds.
    pub seconds: f64,
    /// Floating-point operations of the runs run now.
    pub flops: f64,
}

/// The examples of task `t`, repeat `r` (shared by the methods).
pub fn task_sets(
    data: &MultitaskData,
    t: usize,
    repeat: usize,
    config: &MultitaskConfig,
) -> Result<TaskSets> {
    let f = &config.finetune;
    let name = data.tasks[t].as_str();
    let seed = |what: &str| {
        derive_seed(
            config.master_seed,
            &[name.into(), repeat.into(), what.into()],
        )
    };
    Ok(TaskSets {
        train: data.draw_task(t, Pool::Train, f.batches * f.batch_size, seed("train"))?,
        test: data.draw_task(
            t,
            Pool::Test,
            f.test_composites,
            derive_seed(config.master_seed, &[name.into(), "test".into()]),
        )?,
    })
}

/// Runs `spec` on `frozen` and `data` into `out` (created or resumed);
/// `on_run(done, total)` after each run.
pub fn run_multitask_sweep(
    frozen: &ConvNet<f32>,
    data: &MultitaskData,
    spec: &MultitaskSweepSpec,
    out: &Path,
    on_run: impl Fn(usize, usize) + Sync,
) -> Result<MultitaskSweepReport> {
    if spec.tasks.is_empty() || spec.methods.is_empty() || spec.repeats == 0 {
        return Err(Error::option(
            "--tasks/--methods/--repeats",
            "(empty)",
            "a sweep needs at least one task, method and repeat",
        ));
    }
    check_output(out)?;
    let _lock = FileLock::acquire(out)?;
    let contents = read_records::<MultitaskRecord>(out)?;
    check_config(out, &contents, &spec.config)?;
    let key = |t: usize, method: Method, repeat: usize| RunKey {
        task: TaskId::try_from(data.tasks[t].clone()).expect("task names are identifiers"),
        method,
        repeat,
    };
    let groups: Vec<(usize, usize)> = spec
        .tasks
        .iter()
        .flat_map(|&t| (0..spec.repeats).map(move |r| (t, r)))
        .enumerate()
        .filter(|(i, _)| i % spec.shard.count == spec.shard.index)
        .map(|(_, g)| g)
        .collect();
    let planned = groups.len() * spec.methods.len();
    for (t, r) in &groups {
        for &method in &spec.methods {
            let k = key(*t, method, *r);
            if let Some(record) = contents.records.get(&k)
                && record.seed != k.seed(spec.config.master_seed)
            {
                return Err(Error::data(
                    out,
                    format!(
                        "{k} has seed {} where this sweep uses {}: not a run of this sweep",
                        record.seed,
                        k.seed(spec.config.master_seed)
                    ),
                ));
            }
        }
    }
    let resumed = groups
        .iter()
        .map(|&(t, r)| {
            spec.methods
                .iter()
                .filter(|&&m| contents.records.contains_key(&key(t, m, r)))
                .count()
        })
        .sum();
    let appender = Appender::open(out, &contents)?;
    let done = AtomicUsize::new(resumed);
    let fresh: Mutex<Vec<(MultitaskRecord, f64)>> = Mutex::new(Vec::new());
    let failed = Mutex::new(Vec::new());
    let start = Instant::now();
    groups
        .par_iter()
        .try_for_each(|&(t, repeat)| -> Result<()> {
            let todo: Vec<Method> = spec
                .methods
                .iter()
                .copied()
                .filter(|&m| !contents.records.contains_key(&key(t, m, repeat)))
                .collect();
            if todo.is_empty() {
                return Ok(());
            }
            let sets = task_sets(data, t, repeat, &spec.config)?;
            todo.par_iter().try_for_each(|&method| -> Result<()> {
                let k = key(t, method, repeat);
                let seed = k.seed(spec.config.master_seed);
                let run_start = Instant::now();
                let outcome = serial_products(|| {
                    finetune_task(frozen, t, method, &spec.config.finetune, &sets, seed)
                });
                if let Some(failure) = &outcome.failure {
                    failed
                        .lock()
                        .expect("no panic while holding the lock")
                        .push(format!("{k}: {failure}"));
                }
                let coupling = (spec.record_coupling && method.trains() == Depth::Coupling)
                    .then(|| outcome.modulation.as_ref().map(|m| m.coupling.clone()))
                    .flatten();
                let record = MultitaskRecord {
                    format: MULTITASK_RECORD_FORMAT,
                    task: k.task.clone(),
                    method,
                    repeat,
                    seed,
                    examples: outcome.curve.examples,
                    curve: outcome.curve.accuracy,
                    coupling,
                    failure: outcome.failure,
                    wall_s: run_start.elapsed().as_secs_f64(),
                    config: spec.config.clone(),
                };
                appender.append(&record)?;
                fresh
                    .lock()
                    .expect("no panic while holding the lock")
                    .push((record, outcome.flops));
                on_run(done.fetch_add(1, Ordering::Relaxed) + 1, planned);
                Ok(())
            })
        })?;
    let fresh = fresh.into_inner().expect("no panic while holding the lock");
    let report = MultitaskSweepReport {
        planned,
        resumed,
        run: fresh.len(),
        failed: failed
            .into_inner()
            .expect("no panic while holding the lock"),
        seconds: start.elapsed().as_secs_f64(),
        flops: fresh.iter().fold(0.0, |s, (_, f)| s + f),
    };
    let mut all = contents.records;
    for (record, _) in fresh {
        all.insert(record.key(), record);
    }
    write_canonical(out, &all)?;
    Ok(report)
}
