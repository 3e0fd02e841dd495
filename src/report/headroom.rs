//! The headroom of the `joint` protocol (§8): the jointly pretrained
//! network's accuracy on each fine-tuned task beside a single-task
//! network's (the same architecture pretrained on that task alone, to
//! convergence), and the rule that makes a protocol's claims `not
//! applicable` when no method gains more than twice the §5 margin over
//! the start: the pretrained network's accuracy on the task, as the
//! unmodulated methods measure it first (a method that lowers its own
//! start, as the stochastic gain's first estimate does, creates no room by
//! recovering from it).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{Mutex, PoisonError};

use serde::{Deserialize, Serialize};

use crate::analysis::metrics::{Stat, TaskMetrics, per_task};
use crate::analysis::verdict::{ACCURACY_MARGIN, Margin};
use crate::conv::{ConvArch, ConvNet};
use crate::data::benchmark::BenchmarkData;
use crate::data::{Pool, TaskId};
use crate::error::Result;
use crate::io::atomic::write_atomic;
use crate::net::linalg::one_job_per_thread;
use crate::observer::Observer;
use crate::report::claims::ClaimRow;
use crate::report::multitask::{pretrain_options, task_id};
use crate::report::{ReportOptions, checkpoint_path};
use crate::rng::derive_seed;
use crate::sweep::record::{Architecture, Record};
use crate::train::joint::{pretrain_on, task_accuracies};
use crate::train::{Method, Transfer};

/// Held-out examples both networks are measured on.
pub const HEADROOM_EXAMPLES: usize = 2000;

/// One task's headroom.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HeadroomRow {
    /// The task.
    pub task: TaskId,
    /// The jointly pretrained network's accuracy on it.
    pub joint: f64,
    /// The single-task network's.
    pub single: f64,
    /// The single-task network's pretraining epochs.
    pub epochs: usize,
}

/// The headroom table of one benchmark (§8).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Headroom {
    /// What it was computed from: the seed, the data and the epoch cap.
    key: (u64, String, usize),
    /// One row per fine-tuned task.
    pub rows: Vec<HeadroomRow>,
}

/// The best gain of a protocol's methods over their start (§8).
#[derive(Clone, Debug, PartialEq)]
pub struct Gain {
    /// Per method, the mean over tasks of its final accuracy minus the
    /// task's start ([`pretrained_start`]).
    pub by_method: Vec<(Method, f64)>,
    /// Some method gains more than twice the margin.
    pub room: bool,
}

/// A task's start for the headroom rule: the accuracy at measurement 0 of
/// `retrain` (else `retrain-last`): the pretrained network with the
/// modulation off, where every method would start without modulation.
pub fn pretrained_start(by: &BTreeMap<Method, TaskMetrics>) -> Option<f64> {
    (by.get(&Method::Retrain)
        .or_else(|| by.get(&Method::RetrainLast)))
    .map(|t| t.start)
}

/// Twice the §5 accuracy margin: the least gain over the start that
/// leaves a protocol's claims something to measure.
pub fn headroom_threshold() -> f64 {
    match ACCURACY_MARGIN {
        Margin::Absolute(m) | Margin::Relative(m) => 2.0 * m,
    }
}

impl Gain {
    /// The gain of each method in `records` and whether any has room.
    pub fn of<A: Architecture>(records: &[Record<A>]) -> Gain {
        Gain::of_table(&per_task(records))
    }

    /// The gain of each method in a per-task table of metrics.
    pub fn of_table(table: &BTreeMap<TaskId, BTreeMap<Method, TaskMetrics>>) -> Gain {
        let by_method: Vec<(Method, f64)> = Method::ALL
            .iter()
            .map(|&m| {
                let gains = table.values().filter_map(|by| {
                    let t = by.get(&m)?;
                    Some(t.final_accuracy - pretrained_start(by).unwrap_or(t.start))
                });
                (m, Stat::of(gains).mean)
            })
            .collect();
        // Beyond rounding: a gain of exactly twice the margin, computed
        // from accuracies, has no room.
        let room = by_method
            .iter()
            .any(|&(_, g)| g.is_finite() && g > headroom_threshold() + 1e-9);
        Gain { by_method, room }
    }

    /// Makes `rows` (the protocol's claims) `not applicable` when no
    /// method has room, taking them out of their Holm family.
    pub fn apply(&self, rows: &mut [ClaimRow]) {
        if self.room {
            return;
        }
        for row in rows {
            row.family = None;
            row.judgement = row.judgement.clone().without_headroom();
        }
    }

    /// The sentence the report prints under the protocol's table.
    pub fn sentence(&self) -> String {
        let gains: Vec<String> = (self.by_method.iter())
            .map(|(m, g)| format!("{} {g:+.3}", m.name()))
            .collect();
        format!(
            "\nHeadroom rule (§8): mean final accuracy minus the pretrained start (`retrain`'s measurement 0) per method: {}. {}\n",
            gains.join(", "),
            if self.room {
                format!(
                    "Some method gains more than {:.2} (twice the §5 margin): the claims are judged.",
                    headroom_threshold()
                )
            } else {
                format!(
                    "No method gains more than {:.2} (twice the §5 margin): the claims of this protocol are `not applicable`.",
                    headroom_threshold()
                )
            }
        )
    }
}

impl Headroom {
    /// The single-task network's accuracy on `task`, if measured.
    pub fn single_task(&self, task: &TaskId) -> Option<f64> {
        self.rows.iter().find(|r| &r.task == task).map(|r| r.single)
    }

    /// The headroom table in Markdown.
    pub fn table(&self, data: &BenchmarkData) -> String {
        let mut md = String::new();
        let _ = writeln!(
            md,
            "\n**{} `joint` headroom.** Held-out accuracy ({HEADROOM_EXAMPLES} examples) of the jointly pretrained network and of a single-task network (the same architecture pretrained on the task alone, to convergence), per fine-tuned task.\n",
            data.benchmark.name()
        );
        let _ = writeln!(
            md,
            "| task | joint | single-task | joint − single | single-task epochs |"
        );
        let _ = writeln!(md, "|---|---|---|---|---|");
        for r in &self.rows {
            let _ = writeln!(
                md,
                "| {} | {:.3} | {:.3} | {:+.3} | {} |",
                r.task,
                r.joint,
                r.single,
                r.joint - r.single,
                r.epochs
            );
        }
        let joint = Stat::of(self.rows.iter().map(|r| r.joint));
        let single = Stat::of(self.rows.iter().map(|r| r.single));
        let _ = writeln!(
            md,
            "| **mean** | **{:.3}** | **{:.3}** | **{:+.3}** | |",
            joint.mean,
            single.mean,
            joint.mean - single.mean
        );
        md
    }
}

/// The headroom of `tasks` of `data`: the joint network `joint` of `arch`
/// beside a single-task network per task, each pretrained now (or read
/// from the report folder's `headroom-<benchmark>.json` when it holds the
/// same seed, data and cap).
pub fn headroom(
    options: &ReportOptions,
    data: &BenchmarkData,
    (arch, joint): (&ConvArch, &ConvNet<f32>),
    tasks: &[usize],
    observer: &dyn Observer,
) -> Result<Headroom> {
    let pretrain = pretrain_options(options, Transfer::Joint);
    let key = (options.seed, data.sha256().to_string(), pretrain.max_epochs);
    let file = format!("headroom-{}.json", data.benchmark.name());
    let path = checkpoint_path(&options.out, options.scale, &file);
    let wanted: Vec<TaskId> = tasks.iter().map(|&t| task_id(data, t)).collect();
    if let Some(found) = std::fs::read(&path)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<Headroom>(&bytes).ok())
        .filter(|h| h.key == key && h.rows.iter().map(|r| &r.task).eq(wanted.iter()))
    {
        observer.reused(&path);
        return Ok(found);
    }
    observer.stage(&format!(
        "single-task networks of {} ({} tasks)",
        data.benchmark.name(),
        tasks.len()
    ));
    let set = data.draw(
        Pool::Test,
        HEADROOM_EXAMPLES,
        derive_seed(options.seed, &["headroom".into()]),
    );
    let joint_accuracy = task_accuracies(joint, &set, data.task_count());
    // One network per thread at once, as `pretrain_all` pretrains: each
    // is the network it would be alone (§6). The networks finished are
    // counted under a lock, so that the bar never steps back.
    let done = Mutex::new(0);
    observer.sweep_progress(0, tasks.len());
    let singles: BTreeMap<usize, (f64, usize)> =
        one_job_per_thread::<_, _, Result<_>>(tasks, |&t| {
            let (net, epochs) = pretrain_on(data, arch, &[t], &pretrain, &mut |_| {})?;
            let accuracy = task_accuracies(&net, &set, data.task_count())[t];
            let mut done = done.lock().unwrap_or_else(PoisonError::into_inner);
            *done += 1;
            observer.sweep_progress(*done, tasks.len());
            Ok((t, (accuracy, epochs.len())))
        })?;
    let rows = tasks
        .iter()
        .map(|&t| HeadroomRow {
            task: task_id(data, t),
            joint: joint_accuracy[t],
            single: singles[&t].0,
            epochs: singles[&t].1,
        })
        .collect();
    let headroom = Headroom { key, rows };
    crate::io::atomic::create_parent(&path)?;
    write_atomic(
        &path,
        &serde_json::to_vec_pretty(&headroom).expect("serialises"),
    )?;
    Ok(headroom)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::metrics::Criterion;
    use crate::analysis::verdict::{Direction, Sample, Verdict, judge};

    /// A table of 8 tasks where `method` goes from 0.60 to 0.60 + `gain`
    /// on every task.
    fn table(gains: &[(Method, f64)]) -> BTreeMap<TaskId, BTreeMap<Method, TaskMetrics>> {
        table_from(0.60, gains)
    }

    /// The same, `method` starting at `start` for the stochastic method.
    fn table_from(
        stochastic_start: f64,
        gains: &[(Method, f64)],
    ) -> BTreeMap<TaskId, BTreeMap<Method, TaskMetrics>> {
        (0..8)
            .map(|t| {
                let task = TaskId::try_from(format!("task{t}")).unwrap();
                let by = gains
                    .iter()
                    .map(|&(m, gain)| {
                        let metrics = TaskMetrics {
                            repeats: 1,
                            start: if m == Method::Stochastic {
                                stochastic_start
                            } else {
                                0.60
                            },
                            slope: 0.0,
                            criterion: Criterion::Reached(0.0),
                            // Task-to-task spread so that the mean is not
                            // a constant by construction.
                            final_accuracy: 0.60 + gain + 0.001 * (t as f64 - 3.5),
                        };
                        (m, metrics)
                    })
                    .collect();
                (task, by)
            })
            .collect()
    }

    fn row() -> ClaimRow {
        let pairs = (0..10).map(|i| (0.9 + 0.001 * i as f64, 0.5)).collect();
        ClaimRow {
            claim: "headline".into(),
            statement: "x > y".into(),
            setting: "joint".into(),
            repeats: 1,
            starts: None,
            family: Some("§8 joint".into()),
            judgement: judge(&Sample::of(pairs), Direction::Greater, ACCURACY_MARGIN),
        }
    }

    /// The rule of §8 on constructed cases: a best gain of twice the
    /// margin (0.02) or less leaves no room, and the protocol's claims —
    /// even one whose numbers alone would say `reproduced` — become `not
    /// applicable`, out of their Holm family; a gain above it keeps them.
    #[test]
    fn claims_without_headroom_are_not_applicable() {
        assert_eq!(headroom_threshold(), 0.02);
        let none = Gain::of_table(&table(&[
            (Method::Stochastic, 0.015),
            (Method::Deterministic, 0.02),
            (Method::Retrain, -0.01),
            (Method::RetrainLast, 0.0),
        ]));
        assert!(!none.room, "{none:?}");
        assert!(
            (none.by_method[1].1 - 0.02).abs() < 1e-12,
            "the mean gain over tasks"
        );
        let mut rows = vec![row()];
        assert_eq!(rows[0].judgement.verdict, Verdict::Reproduced);
        none.apply(&mut rows);
        assert_eq!(rows[0].judgement.verdict, Verdict::NotApplicable);
        assert_eq!(rows[0].family, None);
        assert!(none.sentence().contains("`not applicable`"));

        let some = Gain::of_table(&table(&[
            (Method::Stochastic, 0.021),
            (Method::Deterministic, 0.0),
        ]));
        assert!(some.room, "{some:?}");
        let mut rows = vec![row()];
        some.apply(&mut rows);
        assert_eq!(rows[0].judgement.verdict, Verdict::Reproduced);
        assert_eq!(rows[0].family.as_deref(), Some("§8 joint"));
        assert!(some.sentence().contains("judged"));

        // A method that lowers its own start (the stochastic gain's first
        // estimate) and recovers to the pretrained accuracy creates no
        // room: the gain is measured from retrain's start.
        let recovery = Gain::of_table(&table_from(
            0.40,
            &[
                (Method::Stochastic, 0.01),
                (Method::Deterministic, 0.0),
                (Method::Retrain, 0.0),
            ],
        ));
        assert!(!recovery.room, "{recovery:?}");
        assert!((recovery.by_method[0].1 - 0.01).abs() < 1e-12);
    }

    /// The headroom table shows each task's joint and single-task accuracy
    /// and their difference, and the means.
    #[test]
    fn the_headroom_table_shows_joint_beside_single_task() {
        let rows = [("prime@0", 0.95, 0.97, 9), ("loop@1", 0.90, 0.86, 12)]
            .into_iter()
            .map(|(task, joint, single, epochs)| HeadroomRow {
                task: TaskId::try_from(task.to_string()).unwrap(),
                joint,
                single,
                epochs,
            })
            .collect();
        let headroom = Headroom {
            key: (0, "sha".into(), 30),
            rows,
        };
        let data = crate::data::benchmark::BenchmarkData::mnist_attributes(
            crate::data::Digits::load(&crate::data::shipped_data_dir()).unwrap(),
        );
        let md = headroom.table(&data);
        assert!(
            md.contains("| prime@0 | 0.950 | 0.970 | -0.020 | 9 |"),
            "{md}"
        );
        assert!(
            md.contains("| loop@1 | 0.900 | 0.860 | +0.040 | 12 |"),
            "{md}"
        );
        assert!(
            md.contains("| **mean** | **0.925** | **0.915** | **+0.010** | |"),
            "{md}"
        );
        let task = TaskId::try_from("loop@1".to_string()).unwrap();
        assert_eq!(headroom.single_task(&task), Some(0.86));
    }
}
