//! Sweeps (§6) through the `comod` binary: reproducible whatever the
//! thread count or sharding, resumable after SIGKILL, and bad input
//! rejected in one line without touching an existing results file.

use std::path::{Path, PathBuf};
mod common;

use std::process::{Command, Output};

use common::{comod, without_wall_time};
use std::sync::OnceLock;

/// A small pretrained checkpoint shared by the tests of this file.
fn checkpoint() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let dir = common::shared_folder("comod-sweep-test-").to_path_buf();
        let path = dir.join("ck.safetensors");
        let out = comod(
            &["pretrain", "--epochs", "3", "--out", path.to_str().unwrap()],
            "2",
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        path
    })
}

/// Small, fast run settings (and `--batches 12` unless a test sets it).
const SMALL: [&str; 4] = ["--test-composites", "100", "--samples", "40"];

fn sweep(out: &Path, tasks: &str, repeats: &str, threads: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "sweep",
        "--checkpoint",
        checkpoint().to_str().unwrap(),
        "--tasks",
        tasks,
        "--repeats",
        repeats,
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(&SMALL);
    if !extra.contains(&"--batches") && !extra.contains(&"dataset") {
        args.extend(["--batches", "12"]);
    }
    args.extend_from_slice(extra);
    comod(&args, threads)
}

/// The closing lines say what share of `threads` × the sweep's time its
/// runs took: some, and at most all (each run keeps its work on its
/// thread). `tests/reproduce.rs` holds the share to the records' times.
fn assert_runs_share(output: &Output, threads: usize) {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("the runs took "))
        .unwrap_or_else(|| panic!("no share line in:\n{stdout}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(
        words[1..6],
        ["%", "of", &threads.to_string(), "threads", "×"]
    );
    let share: f64 = words[0].parse().unwrap();
    assert!(share > 0.0 && share <= 100.0, "{line}");
}

fn assert_ok(output: &Output) {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn same_seed_gives_identical_results_at_any_thread_count_and_sharding() {
    let dir = tempfile::tempdir().unwrap();
    let tasks = "1-7@0,3-8@2,0-9@1";
    let (one, two) = (dir.path().join("one.jsonl"), dir.path().join("two.jsonl"));
    assert_ok(&sweep(&one, tasks, "2", "1", &[]));
    let two_threads = sweep(&two, tasks, "2", "2", &[]);
    assert_ok(&two_threads);
    assert_runs_share(&two_threads, 2);
    let reference = without_wall_time(&one);
    assert_eq!(reference.len(), 3 * 4 * 2);
    assert_eq!(reference, without_wall_time(&two), "1 vs 2 threads");

    let shards: Vec<PathBuf> = (0..3)
        .map(|i| dir.path().join(format!("shard{i}.jsonl")))
        .collect();
    for (i, shard) in shards.iter().enumerate() {
        assert_ok(&sweep(
            shard,
            tasks,
            "2",
            "2",
            &["--shard", &format!("{i}/3")],
        ));
    }
    let merged = dir.path().join("merged.jsonl");
    let mut args = vec!["merge", merged.to_str().unwrap()];
    args.extend(shards.iter().map(|p| p.to_str().unwrap()));
    assert_ok(&comod(&args, "2"));
    assert_eq!(
        reference,
        without_wall_time(&merged),
        "whole sweep vs merged shards"
    );

    // A SLURM array element takes its shard from its task id; a 1-based
    // array's last id is shard 0, and an id outside the plan is refused.
    let from_array = |id: &str, out: &Path| {
        let mut args: Vec<String> = [
            "sweep",
            "--checkpoint",
            checkpoint().to_str().unwrap(),
            "--tasks",
            tasks,
            "--repeats",
            "2",
            "--out",
            out.to_str().unwrap(),
            "--batches",
            "12",
            "--shards",
            "3",
        ]
        .map(String::from)
        .to_vec();
        args.extend(SMALL.map(String::from));
        Command::new(env!("CARGO_BIN_EXE_comod"))
            .args(&args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("RAYON_NUM_THREADS", "2")
            .env("SLURM_ARRAY_TASK_ID", id)
            .output()
            .unwrap()
    };
    let one_based = dir.path().join("array-3.jsonl");
    assert_ok(&from_array("3", &one_based));
    assert_eq!(without_wall_time(&one_based), without_wall_time(&shards[0]));
    let refused = from_array("4", &dir.path().join("array-4.jsonl"));
    common::assert_one_line_error(
        &refused,
        &["--shards 3", "array task id 4", "outside the plan"],
    );

    // Without shard 1, a merge and a summary are refused, naming it,
    // unless --partial accepts the partial result.
    let partial = dir.path().join("partial.jsonl");
    let (first, last) = (shards[0].to_str().unwrap(), shards[2].to_str().unwrap());
    let out = comod(&["merge", partial.to_str().unwrap(), first, last], "2");
    common::assert_one_line_error(
        &out,
        &[
            "partial result",
            "8 runs of the plan's 24",
            "shard 1 of 3 holds none",
            "--partial",
        ],
    );
    assert!(!partial.exists(), "a refused merge writes nothing");
    let out = comod(
        &["merge", "--partial", partial.to_str().unwrap(), first, last],
        "2",
    );
    assert_ok(&out);
    assert!(String::from_utf8_lossy(&out.stderr).contains("warning"));
    let summary = dir.path().join("summary");
    let summarise = |extra: &[&str]| {
        let mut args = vec![
            "summary",
            partial.to_str().unwrap(),
            "--out-dir",
            summary.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        comod(&args, "2")
    };
    common::assert_one_line_error(
        &summarise(&[]),
        &["partial result", "shard 1 of 3 holds none"],
    );
    assert_ok(&summarise(&["--partial"]));
    // Its merge with the missing shard is whole again: the single-process file.
    let whole = dir.path().join("whole.jsonl");
    assert_ok(&comod(
        &[
            "merge",
            whole.to_str().unwrap(),
            partial.to_str().unwrap(),
            shards[1].to_str().unwrap(),
        ],
        "2",
    ));
    assert_eq!(reference, without_wall_time(&whole));

    // Merge rejects a run given twice and a mixed configuration, writing nothing.
    let twice = dir.path().join("twice.jsonl");
    let out = comod(
        &[
            "merge",
            twice.to_str().unwrap(),
            shards[0].to_str().unwrap(),
            shards[0].to_str().unwrap(),
        ],
        "2",
    );
    assert!(
        !out.status.success()
            && String::from_utf8_lossy(&out.stderr).contains("also in another input")
    );
    let other = dir.path().join("other.jsonl");
    assert_ok(&sweep(&other, "2-3@1", "1", "2", &["--seed", "9"]));
    let out = comod(
        &[
            "merge",
            twice.to_str().unwrap(),
            shards[0].to_str().unwrap(),
            other.to_str().unwrap(),
        ],
        "2",
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("master_seed differs"),
        "{stderr}"
    );
    assert!(!twice.exists());
}

/// Runs a sweep of `tasks` × 4 methods × 3 repeats with `extra`, kills it
/// with SIGKILL after a third of its runs, tears its last line, resumes
/// it, and checks the file against an uninterrupted sweep.
fn resume_after_sigkill(tasks: &str, extra: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let reference = dir.path().join("reference.jsonl");
    assert_ok(&sweep(&reference, tasks, "3", "2", extra));

    let killed = dir.path().join("killed.jsonl");
    let mut args: Vec<String> = vec![
        "sweep".into(),
        "--checkpoint".into(),
        checkpoint().to_str().unwrap().into(),
    ];
    for a in [
        "--tasks",
        tasks,
        "--repeats",
        "3",
        "--out",
        killed.to_str().unwrap(),
    ] {
        args.push(a.into());
    }
    args.extend(SMALL.iter().map(|s| s.to_string()));
    if !extra.contains(&"--batches") && !extra.contains(&"dataset") {
        args.extend(["--batches".into(), "12".into()]);
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    let mut child = Command::new(env!("CARGO_BIN_EXE_comod"))
        .args(&args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("RAYON_NUM_THREADS", "2")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let total = tasks.split(',').count() * 4 * 3;
    let lines = |p: &Path| {
        std::fs::read_to_string(p)
            .map(|t| t.lines().count())
            .unwrap_or(0)
    };
    while lines(&killed) < total / 3 {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let partial = lines(&killed);
    assert!(
        partial < total,
        "killed before the end ({partial} of {total})"
    );
    // A torn last line, as a write cut short would leave.
    let mut text = std::fs::read_to_string(&killed).unwrap();
    text.push_str("{\"task\":\"1-7@0\",\"method\":\"sto");
    std::fs::write(&killed, text).unwrap();

    let resumed = sweep(&killed, tasks, "3", "2", extra);
    assert_ok(&resumed);
    let stderr = String::from_utf8_lossy(&resumed.stderr);
    assert!(stderr.contains("torn last line"), "reported: {stderr}");
    assert_eq!(without_wall_time(&killed), without_wall_time(&reference));
}

#[test]
fn resume_after_sigkill_completes_every_run_once_with_identical_curves() {
    resume_after_sigkill("1-7@0,3-8@2,0-9@1,2-5@3", &["--batches", "60"]);
}

/// A small `dataset` protocol: sizes 4, 8, 12; at most 12 epochs, patience 3.
const DATASET: [&str; 10] = [
    "--protocol",
    "dataset",
    "--size-step",
    "4",
    "--sizes",
    "3",
    "--max-epochs",
    "12",
    "--patience",
    "3",
];

#[test]
fn dataset_sweeps_resume_after_sigkill_to_the_uninterrupted_file() {
    resume_after_sigkill("1-7@0,3-8@2", &DATASET);
}

#[test]
fn dataset_sweeps_are_the_same_at_any_thread_count_and_sharding() {
    let dir = tempfile::tempdir().unwrap();
    let tasks = "1-7@0,0-9@1";
    let (one, two) = (dir.path().join("one.jsonl"), dir.path().join("two.jsonl"));
    assert_ok(&sweep(&one, tasks, "1", "1", &DATASET));
    let two_threads = sweep(&two, tasks, "1", "2", &DATASET);
    assert_ok(&two_threads);
    // A run's sizes spread over the threads: no share of them is quoted.
    assert!(!String::from_utf8_lossy(&two_threads.stdout).contains("the runs took"));
    let reference = without_wall_time(&one);
    assert_eq!(reference.len(), 2 * 4);
    assert_eq!(reference, without_wall_time(&two), "1 vs 2 threads");
    let shards: Vec<PathBuf> = (0..2)
        .map(|i| dir.path().join(format!("shard{i}.jsonl")))
        .collect();
    for (i, shard) in shards.iter().enumerate() {
        let mut extra = DATASET.to_vec();
        let shard_flag = format!("{i}/2");
        extra.extend(["--shard", &shard_flag]);
        assert_ok(&sweep(shard, tasks, "1", "2", &extra));
    }
    let merged = dir.path().join("merged.jsonl");
    assert_ok(&comod(
        &[
            "merge",
            merged.to_str().unwrap(),
            shards[0].to_str().unwrap(),
            shards[1].to_str().unwrap(),
        ],
        "2",
    ));
    assert_eq!(reference, without_wall_time(&merged), "whole vs shards");
    // One point per size at x = n, with the epochs of each size.
    for line in std::fs::read_to_string(&one).unwrap().lines() {
        let r: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(r["examples"], serde_json::json!([4, 8, 12]));
        assert_eq!(r["config"]["protocol"]["dataset"]["patience"], 3);
        let trained = r["epochs"]["trained"].as_array().unwrap();
        let kept = r["epochs"]["kept"].as_array().unwrap();
        assert_eq!((trained.len(), kept.len()), (3, 3));
        for (t, k) in trained.iter().zip(kept) {
            let (t, k) = (t.as_u64().unwrap(), k.as_u64().unwrap());
            assert!(k <= t && t <= 12, "kept {k} of {t}");
            assert!(
                t == 12 || t >= k + 3,
                "stopped at {t} with patience 3, kept {k}"
            );
        }
    }
}

#[test]
fn bad_input_is_one_line_and_leaves_results_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results.jsonl");
    assert_ok(&sweep(
        &results,
        "1-7@0",
        "1",
        "2",
        &["--methods", "retrain-last"],
    ));
    let before = std::fs::read(&results).unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--tasks", "1-7@9"], "quadrant must be 0..3"),
        (vec!["--tasks", "3-3@0"], "a < b"),
        (vec!["--tasks", "one"], "expected a-b@q"),
        (vec!["--methods", "annealing"], "annealing"),
        (vec!["--shard", "3/2"], "0 ≤ i < n"),
        (vec!["--arch", "deep4"], "is not --arch deep4"),
        (
            vec!["--arch", "paper3", "--modulated-layer", "2"],
            "--modulated-layer 2",
        ),
        (
            vec!["--methods", "retrain-last", "--lambda", "0.2"],
            "another configuration (lambda differs",
        ),
        (
            vec!["--methods", "retrain-last", "--readout", "pair"],
            "another configuration (readout differs",
        ),
        (
            vec!["--lr-retrain", "0"],
            "--lr-retrain 0: a learning rate must be positive",
        ),
        (vec!["--samples", "0"], "--samples 0: must be at least 1"),
        (vec!["--repeats", "0"], "--repeats 0: must be at least 1"),
        (vec!["--modulator-var", "-1"], "--modulator-var -1"),
    ];
    for (flags, needle) in cases {
        let mut args = vec![
            "sweep",
            "--checkpoint",
            checkpoint().to_str().unwrap(),
            "--out",
            results.to_str().unwrap(),
        ];
        // The settings of the file, unless the case sets them itself.
        let defaults = [
            ["--tasks", "1-7@0"],
            ["--repeats", "1"],
            ["--batches", "12"],
            [SMALL[0], SMALL[1]],
            [SMALL[2], SMALL[3]],
        ];
        for [flag, value] in defaults {
            if !flags.contains(&flag) {
                args.extend([flag, value]);
            }
        }
        args.extend(flags.iter().copied());
        let out = comod(&args, "2");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{flags:?} must fail");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{flags:?}: {stderr}");
        assert!(
            stderr.contains(needle),
            "{flags:?}: {needle:?} not in {stderr}"
        );
        assert_eq!(
            std::fs::read(&results).unwrap(),
            before,
            "{flags:?}: results file untouched"
        );
    }
}

#[test]
fn summary_writes_tables_and_plots() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results.jsonl");
    assert_ok(&sweep(&results, "1-7@0,3-8@2", "2", "2", &[]));
    let plots = dir.path().join("plots");
    let out = comod(
        &[
            "summary",
            results.to_str().unwrap(),
            "--plots",
            plots.to_str().unwrap(),
        ],
        "2",
    );
    assert_ok(&out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    for method in ["stochastic", "deterministic", "retrain", "retrain-last"] {
        assert!(
            stdout.contains(&format!("| {method} | 2 | 4 |")),
            "{stdout}"
        );
    }
    let csv = std::fs::read_to_string(dir.path().join("summary.csv")).unwrap();
    assert_eq!(csv.lines().count(), 5);
    for png in [
        "learning_curves.png",
        "fig2c_slope_ratio.png",
        "fig2d_examples_to_criterion.png",
    ] {
        let bytes = std::fs::read(plots.join(png)).unwrap();
        assert!(bytes.starts_with(b"\x89PNG"), "{png}");
    }
}

#[test]
fn records_carry_their_x_axis_and_on_request_the_coupling() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results.jsonl");
    assert_ok(&sweep(
        &results,
        "1-7@0",
        "1",
        "2",
        &["--record-coupling", "--batch-size", "3"],
    ));
    let records: Vec<serde_json::Value> = std::fs::read_to_string(&results)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 4);
    for r in &records {
        assert_eq!(r["format"], 5);
        let examples: Vec<u64> = serde_json::from_value(r["examples"].clone()).unwrap();
        assert_eq!(examples, (0..=12).map(|n| 3 * n).collect::<Vec<u64>>());
        assert_eq!(r["curve"].as_array().unwrap().len(), 13);
        let coupling = r.get("coupling").and_then(|c| c.as_array());
        match r["method"].as_str().unwrap() {
            "stochastic" | "deterministic" => assert_eq!(coupling.unwrap().len(), 400),
            _ => assert!(coupling.is_none(), "{}", r["method"]),
        }
    }
}

/// Writes the records of `from` to `to`, each with `edit` applied to its
/// JSON object (to make the files older formats wrote).
fn rewrite_records(
    from: &Path,
    to: &Path,
    edit: impl Fn(&mut serde_json::Map<String, serde_json::Value>),
) {
    let text: String = std::fs::read_to_string(from)
        .unwrap()
        .lines()
        .map(|line| {
            let mut record: serde_json::Value = serde_json::from_str(line).unwrap();
            edit(record.as_object_mut().unwrap());
            format!("{record}\n")
        })
        .collect();
    std::fs::write(to, text).unwrap();
}

#[test]
fn format_one_files_are_read_and_upgraded_and_newer_formats_refused() {
    let dir = tempfile::tempdir().unwrap();
    let current = dir.path().join("current.jsonl");
    assert_ok(&sweep(&current, "1-7@0,3-8@2", "1", "2", &[]));
    // The same records as format 1 wrote them: no format or x axis, and
    // the per-run metrics of that format.
    let legacy = dir.path().join("legacy.jsonl");
    rewrite_records(&current, &legacy, |o| {
        o.remove("format");
        o.remove("examples");
        o.remove("plan");
        o.insert("slope".into(), 0.001.into());
        o.insert("slope_ratio_retrain".into(), serde_json::Value::Null);
        o.insert("examples_to_criterion".into(), 4.into());
    });
    let out = comod(
        &[
            "summary",
            legacy.to_str().unwrap(),
            "--out-dir",
            dir.path().join("s").to_str().unwrap(),
        ],
        "2",
    );
    assert_ok(&out);
    let upgraded = dir.path().join("upgraded.jsonl");
    assert_ok(&comod(
        &[
            "merge",
            upgraded.to_str().unwrap(),
            legacy.to_str().unwrap(),
        ],
        "2",
    ));
    // Older formats carry no plan: the upgrade writes none.
    let current_without_plan = common::without_keys(&current, &["wall_s", "plan"]);
    assert_eq!(without_wall_time(&upgraded), current_without_plan);

    let newer = dir.path().join("newer.jsonl");
    std::fs::write(
        &newer,
        std::fs::read_to_string(&current)
            .unwrap()
            .replacen("\"format\":5", "\"format\":6", 1),
    )
    .unwrap();
    let out = comod(&["summary", newer.to_str().unwrap()], "2");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("line 1: record format 6 is newer"),
        "{stderr}"
    );

    // Formats 2 (online only), 3 and 4 (no plan) read as they are and
    // are rewritten as format 5; a summary notes that their completeness
    // is not checked.
    for format in [2, 3, 4] {
        let old = dir.path().join(format!("format{format}.jsonl"));
        rewrite_records(&current, &old, |o| {
            o.remove("plan");
            o.insert("format".into(), format.into());
        });
        std::fs::remove_file(&upgraded).unwrap();
        assert_ok(&comod(
            &["merge", upgraded.to_str().unwrap(), old.to_str().unwrap()],
            "2",
        ));
        assert_eq!(without_wall_time(&upgraded), current_without_plan);
    }
    let out = comod(
        &[
            "summary",
            upgraded.to_str().unwrap(),
            "--out-dir",
            dir.path().join("s").to_str().unwrap(),
        ],
        "2",
    );
    assert_ok(&out);
    assert!(String::from_utf8_lossy(&out.stderr).contains("carry no plan"));
}

#[test]
fn tune_writes_its_table_plot_and_runs_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("tune.md");
    let args = [
        "tune",
        "--checkpoint",
        checkpoint().to_str().unwrap(),
        "--tasks",
        "1-7@0,2-5@3",
        "--repeats",
        "2",
        "--grid",
        "1e-3,1e-1",
        "--batches",
        "12",
        "--test-composites",
        "100",
        "--samples",
        "40",
        "--out",
        table.to_str().unwrap(),
    ];
    let first = comod(&args, "2");
    assert_ok(&first);
    let stdout = String::from_utf8_lossy(&first.stdout);
    assert!(
        stdout.contains("32 runs over 2 rates (32 run now"),
        "{stdout}"
    );
    let flags = stdout
        .lines()
        .skip_while(|l| !l.starts_with("chosen rates"))
        .nth(1)
        .unwrap()
        .trim()
        .to_string();
    for method in ["stochastic", "deterministic", "retrain", "retrain-last"] {
        assert!(flags.contains(&format!("--lr-{method} ")), "{flags}");
    }
    let text = std::fs::read_to_string(&table).unwrap();
    assert!(text.contains(&flags) && text.contains("| 1e-3 |") && text.contains("**"));
    let png = std::fs::read(dir.path().join("tune.png")).unwrap();
    assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000);
    for rate in ["1e-3", "1e-1"] {
        let runs = dir.path().join(format!("tune.runs/lr-{rate}.jsonl"));
        assert_eq!(without_wall_time(&runs).len(), 2 * 4 * 2, "{rate}");
    }
    // Run again: everything is resumed, the choice is the same.
    let again = comod(&args, "2");
    assert_ok(&again);
    let stdout = String::from_utf8_lossy(&again.stdout);
    assert!(
        stdout.contains("(0 run now") && stdout.contains(&flags),
        "{stdout}"
    );
}

#[test]
fn a_reading_preset_sets_its_options_and_explicit_flags_win() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results.jsonl");
    assert_ok(&sweep(
        &results,
        "1-7@0",
        "1",
        "2",
        &[
            "--methods",
            "stochastic",
            "--record-coupling",
            "--reading",
            "companion-code",
            "--protocol",
            "online",
            "--readout",
            "pair",
        ],
    ));
    let text = std::fs::read_to_string(&results).unwrap();
    let record: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    let config = &record["config"];
    // From the preset.
    assert_eq!(config["reading"], "companion-code");
    assert_eq!(config["coupling_param"], "square");
    assert_eq!(config["compensation"], "variance");
    assert_eq!(config["gain_modulator_mean"], 0.0);
    assert_eq!(config["gain"]["input"], "blank");
    assert_eq!(config["lambda"], 0.0);
    assert!((config["lr"]["stochastic"].as_f64().unwrap() - 1e-3).abs() < 1e-9);
    assert!((config["modulator_variance"].as_f64().unwrap() - 0.01).abs() < 1e-9);
    // Given explicitly: the flags win (--samples 40 from the small settings).
    assert_eq!(config["protocol"], "online");
    assert_eq!(config["readout"], "pair");
    assert_eq!(config["samples"], 40);
    // A square coupling is never negative.
    let coupling = record["coupling"].as_array().unwrap();
    assert!(coupling.iter().all(|c| c.as_f64().unwrap() >= 0.0));
    // The default reading is `spec`, with the 10-way readout.
    let spec = dir.path().join("spec.jsonl");
    assert_ok(&sweep(
        &spec,
        "1-7@0",
        "1",
        "2",
        &["--methods", "retrain-last"],
    ));
    let text = std::fs::read_to_string(&spec).unwrap();
    let record: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(record["config"]["reading"], "spec");
    assert_eq!(record["config"]["readout"], "all");
    assert_eq!(record["config"]["coupling_param"], "linear");
}

#[test]
fn stored_numbers_survive_resume_and_merge_byte_for_byte_and_an_unended_last_record_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let full = dir.path().join("full.jsonl");
    assert_ok(&sweep(&full, "1-7@0,2-5@3", "2", "2", &[]));
    let original = std::fs::read(&full).unwrap();
    // Resuming with nothing left to run rewrites the file: byte for byte.
    let again = sweep(&full, "1-7@0,2-5@3", "2", "2", &[]);
    assert_ok(&again);
    assert!(String::from_utf8_lossy(&again.stdout).contains("nothing to run"));
    assert_eq!(
        std::fs::read(&full).unwrap(),
        original,
        "resume changed stored numbers"
    );
    // So does a merge of the file alone.
    let merged = dir.path().join("merged.jsonl");
    assert_ok(&comod(
        &["merge", merged.to_str().unwrap(), full.to_str().unwrap()],
        "2",
    ));
    assert_eq!(
        std::fs::read(&merged).unwrap(),
        original,
        "merge changed stored numbers"
    );
    // A whole last record without its newline (a hand-edited file) is kept.
    let text = String::from_utf8(original).unwrap();
    let kept: Vec<&str> = text.lines().take(5).collect();
    let part = dir.path().join("part.jsonl");
    std::fs::write(&part, kept.join("\n")).unwrap();
    let resumed = sweep(&part, "1-7@0,2-5@3", "2", "2", &[]);
    assert_ok(&resumed);
    let stderr = String::from_utf8_lossy(&resumed.stderr);
    assert!(!stderr.contains("torn"), "{stderr}");
    assert!(
        String::from_utf8_lossy(&resumed.stdout).contains("(5 already in the file, 11 run now)")
    );
    let after = std::fs::read_to_string(&part).unwrap();
    for line in kept {
        assert!(
            after.lines().any(|l| l == line),
            "a kept record changed: {line}"
        );
    }
    assert_eq!(without_wall_time(&part), without_wall_time(&full));
    // Runs of the file outside a smaller plan are counted and kept.
    let smaller = sweep(&part, "1-7@0", "2", "2", &[]);
    assert_ok(&smaller);
    let stderr = String::from_utf8_lossy(&smaller.stderr);
    assert!(stderr.contains("8 runs outside this plan"), "{stderr}");
    assert_eq!(without_wall_time(&part), without_wall_time(&full));
}
