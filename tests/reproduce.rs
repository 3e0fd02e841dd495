//! The main job as a library call (§4–§6): pretrain and save with its
//! provenance, sweep, summary and plots; run again, the checkpoint is
//! reused and every run is found done; another seed pretrains afresh.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use comod::data::Digits;
use comod::io::load_checkpoint;
use comod::observer::Observer;
use comod::reproduce::{ReproduceOptions, reproduce};
use comod::sweep::SweepReport;
use comod::train::{EpochStats, FinetuneConfig, Method, PretrainReport};

/// Records what the pipeline reported, in order.
#[derive(Default)]
struct Log(Mutex<Vec<String>>);

impl Log {
    fn push(&self, event: String) {
        self.0.lock().unwrap().push(event);
    }

    fn take(&self) -> Vec<String> {
        std::mem::take(&mut self.0.lock().unwrap())
    }
}

impl Observer for Log {
    fn reused(&self, _: &Path) {
        self.push("reused".into());
    }

    fn pretraining_epoch(&self, _: &EpochStats, _: usize) {}

    fn pretrained(&self, report: &PretrainReport, _: f64, _: &Path) {
        self.push(format!("pretrained in {} epochs", report.epochs));
    }

    fn sweep_progress(&self, _: usize, _: usize) {}

    fn sweep_done(&self, report: &SweepReport, _: &Path) {
        self.push(format!("swept {} of {}", report.run, report.planned));
    }
}

#[test]
fn pretrains_once_then_reuses_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let data = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data");
    let mut options = ReproduceOptions {
        out: dir.path().join("run"),
        data: data.clone(),
        tasks: vec!["1-7@0".parse().unwrap(), "3-8@2".parse().unwrap()],
        repeats: 1,
        methods: vec![Method::Deterministic, Method::RetrainLast],
        seed: 3,
        config: FinetuneConfig {
            batches: 10,
            test_composites: 100,
            samples: 40,
            ..FinetuneConfig::DEFAULT
        },
        report: false,
        record_coupling: false,
    };
    let log = Log::default();
    let no_methods = ReproduceOptions {
        methods: vec![],
        ..options.clone()
    };
    let err = reproduce(&no_methods, &log).unwrap_err().to_string();
    assert!(err.starts_with("--methods"), "{err}");
    assert!(
        log.take().is_empty() && !options.out.exists(),
        "refused before any work"
    );
    let first = reproduce(&options, &log).unwrap();
    let events = log.take();
    assert!(events[0].starts_with("pretrained in"), "{events:?}");
    assert_eq!(events[1..], ["swept 4 of 4"]);
    assert!(first.summary.table.contains("| deterministic | 2 | 2 |"));
    // The sweep's runs' time is its records' wall times, and a share of
    // the threads' time.
    let records_seconds: f64 = std::fs::read_to_string(options.out.join("results.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["wall_s"]
                .as_f64()
                .unwrap()
        })
        .sum();
    let run_seconds = first
        .sweep
        .run_seconds
        .expect("online runs stay on their threads");
    assert!(
        run_seconds > 0.0 && (run_seconds - records_seconds).abs() <= 1e-12 * records_seconds,
        "{run_seconds} against the records' {records_seconds}"
    );
    let share = first.sweep.run_share(rayon::current_num_threads()).unwrap();
    assert!(share > 0.0 && share <= 1.0, "{share}");
    for name in [
        "results.jsonl",
        "summary.md",
        "summary.csv",
        "plots/learning_curves.png",
    ] {
        assert!(options.out.join(name).exists(), "{name}");
    }
    let checkpoint = load_checkpoint(&options.out.join("pretrained.safetensors")).unwrap();
    let provenance = checkpoint.provenance().unwrap();
    let digits = Digits::load(&data).unwrap();
    assert!(provenance.matches(3, &digits) && !provenance.matches(4, &digits));

    let results = std::fs::read(options.out.join("results.jsonl")).unwrap();
    reproduce(&options, &log).unwrap();
    assert_eq!(log.take(), ["reused", "swept 0 of 4"]);
    assert_eq!(
        std::fs::read(options.out.join("results.jsonl")).unwrap(),
        results
    );

    options.seed = 4;
    let err = reproduce(&options, &log).unwrap_err().to_string();
    let events = log.take();
    assert!(
        events.len() == 1 && events[0].starts_with("pretrained in"),
        "another seed pretrains afresh: {events:?}"
    );
    assert!(
        err.contains("results.jsonl") && err.contains("another configuration"),
        "the old results are not mixed with the new network's: {err}"
    );
}
