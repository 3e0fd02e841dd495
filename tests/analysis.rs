//! The metrics of §5 as the summary and plots use them: per task first
//! (mean over repeats, median examples to criterion with censoring), then
//! over tasks, ratios taken between per-task values.

use comod::analysis::metrics::{Criterion, per_task, ratio_to_retrain};
use comod::analysis::summarize;
use comod::data::TaskId;
use comod::net::Arch;
use comod::sweep::record::{RECORD_FORMAT, Record, SweepConfig};
use comod::train::{FinetuneConfig, Method};

/// A record whose curve rises linearly with `slope` per example from 0.5
/// over 60 measurements of 2 examples, capped at 1.
fn record(task: &str, method: Method, repeat: usize, slope: f64) -> Record {
    let examples: Vec<usize> = (0..60).map(|n| 2 * n).collect();
    let curve = examples
        .iter()
        .map(|&x| (0.5 + slope * x as f64).min(1.0) as f32)
        .collect();
    Record {
        format: RECORD_FORMAT,
        task: TaskId::try_from(task.to_string()).unwrap(),
        method,
        repeat,
        seed: repeat as u64,
        examples,
        curve,
        coupling: None,
        wall_s: 0.0,
        config: SweepConfig {
            finetune: FinetuneConfig::DEFAULT,
            master_seed: 0,
            architecture: Arch::preset("paper3", 1).unwrap(),
            checkpoint_sha256: String::new(),
            data_sha256: String::new(),
            comod_version: String::new(),
        },
    }
}

#[test]
fn ratios_to_retrain_are_taken_per_task_not_per_run() {
    // Task A: retrain 1e-3 and 3e-3, stochastic 2e-3 twice: per task 1.0
    // (the mean of per-run ratios would be (2 + 2/3)/2 = 1.33).
    // Task B: retrain 1e-3 twice, stochastic 4e-3 twice: 4.0.
    let records = vec![
        record("0-1@0", Method::Retrain, 0, 1e-3),
        record("0-1@0", Method::Retrain, 1, 3e-3),
        record("0-1@0", Method::Stochastic, 0, 2e-3),
        record("0-1@0", Method::Stochastic, 1, 2e-3),
        record("2-3@1", Method::Retrain, 0, 1e-3),
        record("2-3@1", Method::Retrain, 1, 1e-3),
        record("2-3@1", Method::Stochastic, 0, 4e-3),
        record("2-3@1", Method::Stochastic, 1, 4e-3),
    ];
    let table = per_task(&records);
    let ratios = ratio_to_retrain(&table, Method::Stochastic, |t| Some(t.slope));
    let values: Vec<f64> = ratios.iter().map(|(_, r)| *r).collect();
    assert_eq!(values.len(), 2);
    assert!(
        (values[0] - 1.0).abs() < 1e-6 && (values[1] - 4.0).abs() < 1e-6,
        "{values:?}"
    );

    let rows = summarize(&records);
    let stochastic = rows
        .iter()
        .find(|r| r.method == Method::Stochastic)
        .unwrap();
    assert_eq!((stochastic.tasks, stochastic.runs), (2, 4));
    assert!(
        (stochastic.slope_ratio.mean - 2.5).abs() < 1e-6,
        "{:?}",
        stochastic.slope_ratio
    );
    assert_eq!(stochastic.slope_ratio.n, 2);
}

#[test]
fn examples_to_criterion_is_the_per_task_median_with_censoring() {
    // Slopes 0.01, 0.002 and 0 per example: criterion 0.70 reached at 20
    // and 100 examples, and never; the median is the middle run, 100.
    let records = vec![
        record("4-5@2", Method::Retrain, 0, 0.01),
        record("4-5@2", Method::Retrain, 1, 0.002),
        record("4-5@2", Method::Retrain, 2, 0.0),
        record("4-5@2", Method::Deterministic, 0, 0.0),
        record("4-5@2", Method::Deterministic, 1, 0.0),
        record("4-5@2", Method::Deterministic, 2, 0.01),
    ];
    let table = per_task(&records);
    let task = &table[&TaskId::try_from("4-5@2".to_string()).unwrap()];
    assert_eq!(task[&Method::Retrain].criterion, Criterion::Reached(100.0));
    assert_eq!(task[&Method::Deterministic].criterion, Criterion::Censored);
    let rows = summarize(&records);
    let deterministic = rows
        .iter()
        .find(|r| r.method == Method::Deterministic)
        .unwrap();
    assert_eq!(deterministic.censored_tasks, 1);
    assert_eq!(deterministic.examples_to_criterion.n, 0);
}
