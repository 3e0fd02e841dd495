//! The metrics of §5 as the summary and plots use them: per task first
//! (mean over repeats, median examples to criterion with censoring), then
//! over tasks, ratios taken between per-task values.

use comod::analysis::metrics::{Criterion, per_task, ratio_to_retrain};
use comod::analysis::summarize;
use comod::data::TaskId;
use comod::net::Arch;
use comod::sweep::completeness::completeness;
use comod::sweep::plan::Plan;
use comod::sweep::record::{Architecture, Record, SweepConfig};
use comod::train::method::LearningRates;
use comod::train::{FinetuneConfig, Method};
use comod::tune::{grid_points, select};

/// A record whose curve rises linearly with `slope` per example from 0.5
/// over 60 measurements of 2 examples, capped at 1.
fn record(task: &str, method: Method, repeat: usize, slope: f64) -> Record {
    let examples: Vec<usize> = (0..60).map(|n| 2 * n).collect();
    let curve = examples
        .iter()
        .map(|&x| (0.5 + slope * x as f64).min(1.0) as f32)
        .collect();
    Record {
        format: Arch::RECORD_FORMAT,
        task: TaskId::try_from(task.to_string()).unwrap(),
        method,
        repeat,
        seed: repeat as u64,
        examples,
        curve,
        coupling: None,
        epochs: None,
        failure: None,
        wall_s: 0.0,
        plan: None,
        config: SweepConfig {
            benchmark: None,
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
    // Two of three runs censored: the median is a censored run, at the
    // restricted value (the run's length plus one measurement step).
    let restricted = comod::analysis::metrics::restricted_examples(&records[3].examples);
    assert_eq!(
        restricted,
        (2 * records[3].examples.last().unwrap()
            - records[3].examples[records[3].examples.len() - 2]) as f64
    );
    assert_eq!(
        task[&Method::Deterministic].criterion,
        Criterion::Censored { restricted }
    );
    let rows = summarize(&records);
    let deterministic = rows
        .iter()
        .find(|r| r.method == Method::Deterministic)
        .unwrap();
    // The summary counts the censored task and averages it at its
    // restricted value, not over the uncensored tasks alone.
    assert_eq!(deterministic.censored_tasks, 1);
    assert_eq!(deterministic.examples_to_criterion.n, 1);
    assert_eq!(deterministic.examples_to_criterion.mean, restricted);
}

/// A grid run of `method` at `rate` whose last 25 measurements average
/// `score` (earlier ones are 0).
fn grid_record(method: Method, rate: f32, repeat: usize, score: f32) -> Record {
    let mut r = record("1-7@0", method, repeat, 0.0);
    r.curve = (0..60).map(|i| if i < 35 { 0.0 } else { score }).collect();
    r.config.finetune.lr = LearningRates {
        stochastic: rate,
        deterministic: rate,
        retrain: rate,
        retrain_last: rate,
    };
    r
}

#[test]
fn the_grid_chooses_the_best_mean_and_breaks_ties_by_the_lower_variance() {
    let mut records = Vec::new();
    for (rate, scores) in [
        // Retrain: 1e-4 is best by a clear margin.
        (1e-5, [0.70, 0.72, 0.74]),
        (1e-4, [0.80, 0.82, 0.84]),
        (1e-3, [0.60, 0.60, 0.60]),
    ] {
        for (repeat, &s) in scores.iter().enumerate() {
            records.push(grid_record(Method::Retrain, rate, repeat, s));
        }
    }
    for (rate, scores) in [
        // Stochastic: 1e-2 has the highest mean (0.8003), 1e-1 ties it
        // within 0.001 (0.7997) with a lower variance and wins.
        (1e-2, [0.70, 0.80, 0.901]),
        (1e-1, [0.79, 0.80, 0.8091]),
        (1e-3, [0.50, 0.50, 0.50]),
    ] {
        for (repeat, &s) in scores.iter().enumerate() {
            records.push(grid_record(Method::Stochastic, rate, repeat, s));
        }
    }
    let points = grid_points(&records);
    assert_eq!(points.len(), 6);
    let chosen = select(&points);
    assert_eq!(chosen[&Method::Retrain].rate, 1e-4);
    assert!((chosen[&Method::Retrain].score - 0.82).abs() < 1e-6);
    assert_eq!(chosen[&Method::Stochastic].rate, 1e-1);
    assert_eq!(chosen[&Method::Stochastic].runs, 3);
    // Without the tie rule the higher mean would have won.
    let best_mean = points
        .iter()
        .filter(|p| p.method == Method::Stochastic)
        .max_by(|a, b| a.score.total_cmp(&b.score))
        .unwrap();
    assert_eq!(best_mean.rate, 1e-2);
}

/// A run counts for every plan that holds it, whichever plan its own
/// record names (a larger sweep that resumed a smaller one's runs is
/// whole); a missing run is counted once, for the plans that hold it, with
/// the shards that hold none of their runs.
#[test]
fn completeness_counts_runs_for_every_plan_that_holds_them() {
    let id = |t: &str| TaskId::try_from(t.to_string()).unwrap();
    let methods = [Method::Stochastic, Method::Retrain];
    let small = Plan::new(vec![id("1-7@0")], &methods, 1, 1);
    let large = Plan::new(vec![id("1-7@0"), id("2-5@3")], &methods, 1, 2);
    let mut records = std::collections::BTreeMap::new();
    for (task, plan) in [("1-7@0", &small), ("2-5@3", &large)] {
        for method in methods {
            let mut r = record(task, method, 0, 0.001);
            r.plan = Some(plan.clone());
            records.insert(r.key(), r);
        }
    }
    let whole = completeness(&records);
    assert!(whole.is_complete() && whole.unplanned == 0, "{whole:?}");
    let dropped = records.keys().last().unwrap().clone();
    records.remove(&dropped);
    let partial = completeness(&records);
    assert_eq!(partial.gaps.len(), 1, "{partial:?}");
    assert_eq!(
        (partial.gaps[0].missing, partial.gaps[0].plan.tasks.len()),
        (1, 2)
    );
    assert!(partial.gaps[0].empty_shards.is_empty());
    records.retain(|k, _| k.task.as_str() == "1-7@0");
    let gap = &completeness(&records).gaps;
    assert!(gap.is_empty(), "only the small plan is named now: {gap:?}");
}
