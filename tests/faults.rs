//! Numerical faults (§6): a run whose tensors turn non-finite, or whose
//! gain is all zero, ends as failed with the step and the tensor named;
//! no curve ever holds a NaN, and analyses leave failed runs out.

mod common;

use std::sync::OnceLock;

use comod::data::Task;
use comod::net::{Arch, Model, Readout};
use comod::train::learner::learner;
use comod::train::network::Batch;
use comod::train::options::{DatasetOptions, GainNorm, Protocol};
use comod::train::study::digit_task_data;
use comod::train::{FinetuneConfig, Frozen, Method};

/// An initialised (not pretrained) network: faults do not need a good one.
fn frozen() -> &'static Frozen<Model<f32>> {
    static FROZEN: OnceLock<Frozen<Model<f32>>> = OnceLock::new();
    FROZEN.get_or_init(|| Frozen::new(Model::init(&Arch::preset("paper3", 1).unwrap(), 4)))
}

fn small(config: FinetuneConfig) -> FinetuneConfig {
    FinetuneConfig {
        batches: 6,
        test_composites: 50,
        samples: 16,
        ..config
    }
}

#[test]
fn a_diverging_learning_rate_ends_the_run_as_failed_never_as_a_nan_curve() {
    let task: Task = "1-7@0".parse().unwrap();
    let mut config = small(FinetuneConfig::DEFAULT);
    config.lr.stochastic = 1e30;
    config.lr.deterministic = 1e30;
    config.lr.retrain = 1e30;
    let data = digit_task_data(frozen(), common::shipped_digits(), task, &config, 0);
    let dataset = FinetuneConfig {
        protocol: Protocol::Dataset(DatasetOptions {
            size_step: 4,
            sizes: 2,
            max_epochs: 3,
            patience: None,
        }),
        ..config
    };
    for config in [config, dataset] {
        for method in [Method::Stochastic, Method::Deterministic, Method::Retrain] {
            let outcome = common::digit_run(frozen(), task, &data, method, &config, 3).unwrap();
            let failure = outcome
                .failure
                .unwrap_or_else(|| panic!("{method:?} {:?}: no failure", config.protocol));
            assert!(!failure.tensor.is_empty() && failure.problem.starts_with("is "));
            if method == Method::Retrain && config.protocol == Protocol::Online {
                // The encoder's exp overflows on weights of 1e30: named there.
                // The measurement after update 1 may miss it (a ReLU maps
                // NaN to 0); update 2's forward pass finds it.
                assert!(
                    ["the measurement after update 1", "update 2 of 6"]
                        .contains(&failure.at.as_str()),
                    "{failure}"
                );
                assert!(
                    failure.tensor.starts_with("activity of layer 1"),
                    "{failure}"
                );
            }
            let expected = config.expected_examples();
            assert!(outcome.curve.examples.len() < expected.len(), "{failure}");
            assert!(expected.starts_with(&outcome.curve.examples));
            assert!(outcome.curve.accuracy.iter().all(|a| a.is_finite()));
        }
    }
}

#[test]
fn exp_overflow_in_the_modulation_is_named_at_the_first_measurement() {
    let task: Task = "2-3@1".parse().unwrap();
    let config = FinetuneConfig {
        modulator_mean: 1e3,
        ..small(FinetuneConfig::DEFAULT)
    };
    let data = digit_task_data(frozen(), common::shipped_digits(), task, &config, 0);
    let outcome =
        common::digit_run(frozen(), task, &data, Method::Deterministic, &config, 1).unwrap();
    let failure = outcome.failure.expect("exp(1000·c) overflows");
    assert_eq!(failure.at, "the measurement before any update");
    assert_eq!(failure.tensor, "modulation factor exp(m·c − β)");
    assert!(failure.problem.starts_with("is infinite"), "{failure}");
    assert!(outcome.curve.accuracy.is_empty());
}

#[test]
fn a_gain_that_is_zero_for_every_neuron_is_a_fault() {
    // The raw gain (no mean-1 normalisation, which falls back to g = 1) of
    // a network whose gated layer is silent: nothing covaries with m.
    let mut model = frozen().net.clone();
    let gated = model.layer(2).bias.clone();
    model.params[gated].fill(-1e6);
    let silent = Frozen::new(model);
    let mut config = small(FinetuneConfig::DEFAULT);
    config.gain.norm = GainNorm::None;
    let images = vec![0.5f32; 2 * comod::data::CANVAS_PIXELS];
    let labels = [1u8, 7];
    let batch = Batch {
        inputs: &images,
        labels: &labels,
        activity: None,
    };
    let mut stochastic = learner(Method::Stochastic, &silent, &config, Readout::All, 0);
    let fault = stochastic.begin(batch).unwrap_err();
    assert_eq!(fault.tensor, "gain g");
    assert!(
        fault.problem.starts_with("is zero for every neuron"),
        "{}",
        fault.problem
    );
    // With the normalisation the gain falls back to 1: no fault.
    config.gain.norm = GainNorm::Mean1;
    let mut stochastic = learner(Method::Stochastic, &silent, &config, Readout::All, 0);
    assert!(stochastic.begin(batch).is_ok());
}

#[test]
fn a_sweep_records_failed_runs_warns_and_leaves_them_out_of_the_summary() {
    let dir = tempfile::tempdir().unwrap();
    let ck = common::pretrained_checkpoint(dir.path(), "1");
    let results = dir.path().join("r.jsonl");
    let sweep = [
        "sweep",
        "--checkpoint",
        ck.to_str().unwrap(),
        "--tasks",
        "1-7@0",
        "--repeats",
        "1",
        "--methods",
        "deterministic,retrain-last",
        "--lr-deterministic",
        "1e30",
        "--batches",
        "4",
        "--test-composites",
        "30",
        "--out",
        results.to_str().unwrap(),
    ];
    let out = common::comod(&sweep, "2");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("warning: run 1-7@0 deterministic repeat 0: the measurement after update 1: modulation factor")
            && stderr.contains("recorded as failed"),
        "{stderr}"
    );
    let text = std::fs::read_to_string(&results).unwrap();
    let records: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for r in &records {
        let curve = r["curve"].as_array().unwrap();
        assert!(
            curve.iter().all(|a| a.as_f64().is_some_and(f64::is_finite)),
            "{r}"
        );
    }
    let failed: Vec<&serde_json::Value> = records
        .iter()
        .filter(|r| r.get("failure").is_some())
        .collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["method"], "deterministic");
    // Resuming takes the failed run as done: it would fail the same way.
    let again = common::comod(&sweep, "2");
    assert!(String::from_utf8_lossy(&again.stdout).contains("nothing to run"));
    let out = common::comod(&["summary", results.to_str().unwrap()], "2");
    let table = String::from_utf8_lossy(&out.stdout);
    let row = table
        .lines()
        .find(|l| l.starts_with("| deterministic"))
        .unwrap();
    let cells: Vec<&str> = row.split('|').map(str::trim).collect();
    assert_eq!(
        &cells[2..5],
        ["0", "1", "1"],
        "tasks 0, runs 1, failed 1: {row}"
    );
}
