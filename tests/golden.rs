//! Golden results (§6: results change only on purpose): small sweeps of
//! every method on each network kind and protocol, and under the other
//! readings and options, compared record by record and field by field
//! (all but `wall_s`) with the files committed in `tests/golden/`. A change that is meant to change numbers
//! regenerates them with
//!
//! ```sh
//! COMOD_BLESS=1 cargo test --release --test golden
//! ```
//!
//! and says in its commit why, and by how much, they changed.

mod common;

use std::path::{Path, PathBuf};

use common::comod_command;
use serde_json::Value;

/// One pinned sweep: the commands that make its checkpoint (in a
/// temporary folder, `{dir}` in the arguments) and the sweep itself,
/// whose results file is `{dir}/results.jsonl`.
struct Case {
    name: &'static str,
    pretrain: &'static [&'static str],
    sweep: &'static [&'static str],
}

const MLP_PRETRAIN: &[&str] = &["pretrain", "--epochs", "3", "--out", "{dir}/ck.safetensors"];

const CONV_PRETRAIN: &[&str] = &[
    "multitask",
    "pretrain",
    "--transfer",
    "joint",
    "--epochs",
    "2",
    "--examples",
    "400",
    "--heldout",
    "100",
    "--out",
    "{dir}/ck.safetensors",
];

/// The `held-out` protocol's network (§8): pretrained on the pretraining
/// tasks only; its held-out tasks start from a fresh head.
const CONV_HELD_OUT_PRETRAIN: &[&str] = &[
    "multitask",
    "pretrain",
    "--epochs",
    "2",
    "--examples",
    "400",
    "--heldout",
    "100",
    "--out",
    "{dir}/ck.safetensors",
];

const CASES: &[Case] = &[
    Case {
        name: "conv-held-out",
        pretrain: CONV_HELD_OUT_PRETRAIN,
        sweep: &[
            "multitask",
            "sweep",
            "--checkpoint",
            "{dir}/ck.safetensors",
            "--tasks",
            "prime@0,loop@2",
            "--repeats",
            "1",
            "--batches",
            "8",
            "--samples",
            "16",
            "--test-composites",
            "200",
            "--record-coupling",
            "--out",
            "{dir}/results.jsonl",
        ],
    },
    Case {
        name: "mlp-online",
        pretrain: MLP_PRETRAIN,
        sweep: &[
            "sweep",
            "--checkpoint",
            "{dir}/ck.safetensors",
            "--tasks",
            "1-7@0,2-5@3",
            "--repeats",
            "1",
            "--batches",
            "12",
            "--samples",
            "24",
            "--test-composites",
            "400",
            "--record-coupling",
            "--out",
            "{dir}/results.jsonl",
        ],
    },
    Case {
        name: "mlp-dataset",
        pretrain: MLP_PRETRAIN,
        sweep: &[
            "sweep",
            "--checkpoint",
            "{dir}/ck.safetensors",
            "--tasks",
            "1-7@0",
            "--repeats",
            "2",
            "--protocol",
            "dataset",
            "--size-step",
            "6",
            "--sizes",
            "3",
            "--max-epochs",
            "4",
            "--patience",
            "2",
            "--samples",
            "24",
            "--test-composites",
            "400",
            "--out",
            "{dir}/results.jsonl",
        ],
    },
    Case {
        name: "mlp-companion-code",
        pretrain: MLP_PRETRAIN,
        sweep: &[
            "sweep",
            "--checkpoint",
            "{dir}/ck.safetensors",
            "--tasks",
            "3-8@1",
            "--repeats",
            "1",
            "--reading",
            "companion-code",
            "--size-step",
            "6",
            "--sizes",
            "2",
            "--max-epochs",
            "3",
            "--samples",
            "24",
            "--test-composites",
            "400",
            "--record-coupling",
            "--out",
            "{dir}/results.jsonl",
        ],
    },
    Case {
        name: "mlp-deep4-literal-correlation",
        pretrain: &[
            "pretrain",
            "--arch",
            "deep4",
            "--modulated-layer",
            "2",
            "--epochs",
            "2",
            "--out",
            "{dir}/ck.safetensors",
        ],
        sweep: &[
            "sweep",
            "--checkpoint",
            "{dir}/ck.safetensors",
            "--tasks",
            "0-9@2",
            "--repeats",
            "1",
            "--reading",
            "literal",
            "--gain-rule",
            "correlation",
            "--batches",
            "10",
            "--samples",
            "24",
            "--test-composites",
            "400",
            "--out",
            "{dir}/results.jsonl",
        ],
    },
    Case {
        name: "conv-online",
        pretrain: CONV_PRETRAIN,
        sweep: &[
            "multitask",
            "sweep",
            "--checkpoint",
            "{dir}/ck.safetensors",
            "--tasks",
            "even@0,ge5@3",
            "--repeats",
            "1",
            "--batches",
            "8",
            "--samples",
            "16",
            "--test-composites",
            "200",
            "--record-coupling",
            "--out",
            "{dir}/results.jsonl",
        ],
    },
    Case {
        name: "conv-online-options",
        pretrain: CONV_PRETRAIN,
        sweep: &[
            "multitask",
            "sweep",
            "--checkpoint",
            "{dir}/ck.safetensors",
            "--tasks",
            "ge5@1",
            "--repeats",
            "1",
            "--coupling-param",
            "square",
            "--gain-rule",
            "correlation",
            "--gain-input",
            "blank",
            "--modulation-compensation",
            "variance",
            "--batches",
            "8",
            "--samples",
            "16",
            "--test-composites",
            "200",
            "--record-coupling",
            "--out",
            "{dir}/results.jsonl",
        ],
    },
    Case {
        name: "conv-dataset",
        pretrain: CONV_PRETRAIN,
        sweep: &[
            "multitask",
            "sweep",
            "--checkpoint",
            "{dir}/ck.safetensors",
            "--tasks",
            "ge5@2",
            "--repeats",
            "2",
            "--protocol",
            "dataset",
            "--size-step",
            "6",
            "--sizes",
            "3",
            "--max-epochs",
            "4",
            "--patience",
            "2",
            "--samples",
            "16",
            "--test-composites",
            "200",
            "--out",
            "{dir}/results.jsonl",
        ],
    },
    Case {
        name: "conv-companion-code",
        pretrain: CONV_PRETRAIN,
        sweep: &[
            "multitask",
            "sweep",
            "--checkpoint",
            "{dir}/ck.safetensors",
            "--tasks",
            "even@3",
            "--repeats",
            "1",
            "--reading",
            "companion-code",
            "--size-step",
            "6",
            "--sizes",
            "2",
            "--max-epochs",
            "3",
            "--samples",
            "16",
            "--test-composites",
            "200",
            "--record-coupling",
            "--out",
            "{dir}/results.jsonl",
        ],
    },
];

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

/// Runs `args` (with `{dir}` replaced) on 2 threads, capped at the SIMD
/// body `isa` when given (`COMOD_ISA`), and fails the test on an error.
fn run(args: &[&str], dir: &Path, isa: Option<&str>) {
    let args: Vec<String> = args
        .iter()
        .map(|a| a.replace("{dir}", dir.to_str().unwrap()))
        .collect();
    let mut command = comod_command(&args, "2");
    if let Some(isa) = isa {
        command.env("COMOD_ISA", isa);
    }
    let out = command.output().expect("comod runs");
    assert!(
        out.status.success(),
        "comod {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The records of a results file, each without its wall time.
fn records(text: &str) -> Vec<Value> {
    text.lines()
        .map(|line| {
            let mut record: Value = serde_json::from_str(line).expect("a JSON record");
            record
                .as_object_mut()
                .expect("a record is an object")
                .remove("wall_s");
            record
        })
        .collect()
}

/// The first place where `found` differs from `expected`, as a path of
/// keys and indices with both values.
fn first_difference(expected: &Value, found: &Value, path: &str) -> Option<String> {
    match (expected, found) {
        (Value::Object(e), Value::Object(f)) => {
            let mut keys: Vec<&String> = e.keys().chain(f.keys()).collect();
            keys.sort();
            keys.dedup();
            keys.into_iter().find_map(|k| match (e.get(k), f.get(k)) {
                (Some(a), Some(b)) => first_difference(a, b, &format!("{path}.{k}")),
                (a, b) => Some(format!("{path}.{k}: expected {a:?}, found {b:?}")),
            })
        }
        (Value::Array(e), Value::Array(f)) if e.len() == f.len() => e
            .iter()
            .zip(f)
            .enumerate()
            .find_map(|(i, (a, b))| first_difference(a, b, &format!("{path}[{i}]"))),
        _ if expected == found => None,
        _ => Some(format!("{path}: expected {expected}, found {found}")),
    }
}

/// Runs every case on the body `isa` (the best one when `None`) and
/// returns each record that differs from its golden file; with
/// `COMOD_BLESS` set, rewrites the files whose records changed instead.
fn check_cases(isa: Option<&str>) -> Vec<String> {
    let bless = isa.is_none() && std::env::var_os("COMOD_BLESS").is_some();
    let mut problems = Vec::new();
    for case in CASES {
        let dir = tempfile::tempdir().unwrap();
        run(case.pretrain, dir.path(), isa);
        run(case.sweep, dir.path(), isa);
        let made = std::fs::read_to_string(dir.path().join("results.jsonl")).unwrap();
        let golden = golden_dir().join(format!("{}.jsonl", case.name));
        let expected = std::fs::read_to_string(&golden);
        if bless {
            // Only files whose records changed are rewritten (the wall
            // times of the others would be noise in the diff).
            if expected.map(|e| records(&e)).ok() != Some(records(&made)) {
                std::fs::create_dir_all(golden_dir()).unwrap();
                std::fs::write(&golden, &made).unwrap();
            }
            continue;
        }
        let expected = expected.unwrap_or_else(|e| {
            panic!(
                "{}: {e}; make it with COMOD_BLESS=1 cargo test --release --test golden",
                golden.display()
            )
        });
        let (expected, found) = (records(&expected), records(&made));
        if expected.len() != found.len() {
            problems.push(format!(
                "{}: {} records, expected {}",
                case.name,
                found.len(),
                expected.len()
            ));
            continue;
        }
        for (e, f) in expected.iter().zip(&found) {
            let run = format!("{} {} repeat {}", e["task"], e["method"], e["repeat"]);
            if let Some(difference) = first_difference(e, f, "") {
                problems.push(format!("{}, {run}: {difference}", case.name));
            }
        }
    }
    problems
}

#[test]
fn sweeps_reproduce_the_golden_records_field_by_field() {
    let problems = check_cases(None);
    assert!(
        problems.is_empty(),
        "records differ from tests/golden (if on purpose, regenerate with COMOD_BLESS=1 cargo test --release --test golden and say why in the commit):\n{}",
        problems.join("\n")
    );
}

/// The AVX2+FMA body gives the AVX-512F body's records (§6), through
/// the shipped binary: on a CPU with AVX-512F the test above runs that
/// body only, and the AVX2 kernels' property tests run in test binaries,
/// compiled apart from `comod`. Without AVX-512F the test above already
/// ran the AVX2 body.
#[cfg(target_arch = "x86_64")]
#[test]
fn the_avx2_body_reproduces_the_golden_records() {
    if !std::is_x86_feature_detected!("avx512f") {
        eprintln!("no AVX-512F here: the golden test above ran the best body");
        return;
    }
    let problems = check_cases(Some("avx2"));
    assert!(
        problems.is_empty(),
        "with COMOD_ISA=avx2, records differ from tests/golden:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_comparison_names_the_first_differing_field() {
    let expected: Value = serde_json::json!({"curve": [0.5, 0.75], "config": {"lambda": 0.1}});
    let found: Value = serde_json::json!({"curve": [0.5, 0.8], "config": {"lambda": 0.1}});
    assert_eq!(
        first_difference(&expected, &found, "").as_deref(),
        Some(".curve[1]: expected 0.75, found 0.8")
    );
    let extra: Value = serde_json::json!({"curve": [0.5, 0.75], "config": {"lambda": 0.1}, "x": 1});
    assert!(
        first_difference(&expected, &extra, "")
            .unwrap()
            .starts_with(".x")
    );
    assert_eq!(first_difference(&expected, &expected.clone(), ""), None);
}
