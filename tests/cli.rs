//! The `comod` binary: reproducibility across thread counts (§6) and
//! one-line errors with a non-zero exit and no output file on bad input.

use std::path::Path;
mod common;

use std::process::Output;

use common::{assert_one_line_error, comod};
use comod::io::load_checkpoint;

fn pretrain(out: &Path, threads: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "pretrain",
        "--epochs",
        "2",
        "--seed",
        "5",
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    comod(&args, threads)
}

#[test]
fn same_seed_gives_bit_identical_checkpoints_at_one_and_two_threads() {
    let dir = tempfile::tempdir().unwrap();
    for arch in ["paper3", "local2"] {
        let (one, two) = (
            dir.path().join("one.safetensors"),
            dir.path().join("two.safetensors"),
        );
        for (path, threads) in [(&one, "1"), (&two, "2")] {
            let output = pretrain(path, threads, &["--arch", arch]);
            assert!(
                output.status.success(),
                "{}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        assert!(
            std::fs::read(&one).unwrap() == std::fs::read(&two).unwrap(),
            "{arch}: checkpoints differ"
        );
        let other = dir.path().join("other.safetensors");
        let output = comod(
            &[
                "pretrain",
                "--epochs",
                "2",
                "--seed",
                "6",
                "--arch",
                arch,
                "--out",
                other.to_str().unwrap(),
            ],
            "2",
        );
        assert!(output.status.success());
        let (a, b) = (
            load_checkpoint(&one).unwrap().model,
            load_checkpoint(&other).unwrap().model,
        );
        let differing = a
            .params
            .iter()
            .zip(&b.params)
            .filter(|(x, y)| x.to_bits() != y.to_bits())
            .count();
        assert!(
            differing > a.params.len() / 2,
            "{arch}: the seed changes the weights ({differing} of {} differ)",
            a.params.len()
        );
    }
}

#[test]
fn eval_prints_general_and_pair_accuracy() {
    let dir = tempfile::tempdir().unwrap();
    let ck = dir.path().join("ck.safetensors");
    assert!(pretrain(&ck, "2", &[]).status.success());
    let output = comod(
        &[
            "eval",
            "--checkpoint",
            ck.to_str().unwrap(),
            "--tasks",
            "1-7@0,2-3@3",
        ],
        "2",
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("held-out 10-way accuracy"), "{stdout}");
    assert!(
        stdout.contains("| 1-7@0 |")
            && stdout.contains("| 2-3@3 |")
            && stdout.contains("mean of 2"),
        "{stdout}"
    );
}

#[test]
fn bad_input_gives_one_line_and_no_output_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.safetensors");
    let out_str = out.to_str().unwrap();

    assert_one_line_error(
        &pretrain(&out, "2", &["--arch", "paper5"]),
        &["paper5", "paper3"],
    );
    assert_one_line_error(
        &pretrain(&out, "2", &["--data", "no-such-dir"]),
        &["no-such-dir"],
    );
    let corrupt = dir.path().join("corrupt");
    std::fs::create_dir(&corrupt).unwrap();
    let images = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("data/mnist10k-images-idx3-ubyte.gz"),
    )
    .unwrap();
    std::fs::write(
        corrupt.join("mnist10k-images-idx3-ubyte.gz"),
        &images[..images.len() / 2],
    )
    .unwrap();
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("data/mnist10k-labels-idx1-ubyte.gz"),
        corrupt.join("mnist10k-labels-idx1-ubyte.gz"),
    )
    .unwrap();
    assert_one_line_error(
        &pretrain(&out, "2", &["--data", corrupt.to_str().unwrap()]),
        &["mnist10k-images-idx3-ubyte.gz"],
    );
    assert!(!out.exists());

    // A missing output folder is made; one that cannot be (a file stands
    // in its place) is named.
    let blocker = dir.path().join("not-a-dir");
    std::fs::write(&blocker, b"x").unwrap();
    assert_one_line_error(
        &pretrain(&blocker.join("out.safetensors"), "2", &[]),
        &["not-a-dir"],
    );
    std::fs::remove_file(&blocker).unwrap();
    assert_one_line_error(
        &comod(&["eval", "--checkpoint", out_str], "2"),
        &["out.safetensors"],
    );
    assert_one_line_error(
        &comod(&["eval", "--checkpoint", out_str, "--tasks", "7-1@0"], "2"),
        &["--tasks", "7-1@0", "a < b"],
    );
    let json = dir.path().join("arch.json");
    std::fs::write(&json, r#"{"format":1,"input":784,"layers":[{"kind":"dense","size":4}],"modulated_layer":1,"beta":0.0}"#).unwrap();
    assert_one_line_error(
        &pretrain(&out, "2", &["--arch", json.to_str().unwrap()]),
        &["arch.json", "layers"],
    );
    assert!(!out.exists());
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        leftovers.len(),
        2,
        "only the files the test made: {leftovers:?}"
    );
}

#[test]
fn help_documents_every_flag_with_its_default() {
    let output = comod(&["pretrain", "--help"], "1");
    let help = String::from_utf8_lossy(&output.stdout);
    for flag in [
        "--data",
        "--arch",
        "--modulated-layer",
        "--seed",
        "--epochs",
        "--out",
    ] {
        assert!(help.contains(flag), "{flag} in {help}");
    }
    for default in [
        "[default: data]",
        "[default: paper3]",
        "[default: 0]",
        "[default: 200]",
    ] {
        assert!(help.contains(default), "{default} in {help}");
    }
    let output = comod(&["eval", "--help"], "1");
    assert!(String::from_utf8_lossy(&output.stdout).contains("--tasks"));
}

#[test]
fn bench_prints_json_lines_with_the_stated_keys() {
    let output = comod(
        &[
            "bench",
            "--json",
            "--seconds",
            "0.01",
            "--only",
            "trial_B2,deep4_mod2_trial_B2",
        ],
        "2",
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let records: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    let names: Vec<&str> = records
        .iter()
        .map(|r| r["workload"].as_str().unwrap())
        .collect();
    let mut expected: Vec<String> = comod::net::simd::Isa::available()
        .into_iter()
        .flat_map(|isa| {
            [
                format!("fma_{}_1_thread", isa.name()),
                format!("fma_{}_2_threads", isa.name()),
            ]
        })
        .collect();
    expected.extend(
        [
            "sgemm_1024_1_thread",
            "sgemm_1024_2_threads",
            "trial_B2",
            "deep4_mod2_trial_B2",
        ]
        .map(String::from),
    );
    assert_eq!(names, expected);
    let body_isa = comod::kernel::Body::detect().isa().name();
    // An SGEMM or workload line's peak: the highest reading so far of its
    // instruction set and thread count, one more per line.
    let mut last: std::collections::HashMap<(String, u64), (f64, u64)> = records
        .iter()
        .filter(|r| r["kind"] == "FmaPeak")
        .map(|r| {
            let key = (
                r["isa"].as_str().unwrap().to_string(),
                r["threads"].as_u64().unwrap(),
            );
            (key, (r["gflops"].as_f64().unwrap(), 1))
        })
        .collect();
    for r in &records {
        let (gflops, peak, readings) = (
            r["gflops"].as_f64().unwrap(),
            r["peak_gflops"].as_f64().unwrap(),
            r["peak_readings"].as_u64().unwrap(),
        );
        let (sgemm, sgemm_ratio) = (
            r["sgemm_gflops"].as_f64().unwrap(),
            r["sgemm_ratio"].as_f64().unwrap(),
        );
        assert!(r["seconds"].as_f64().unwrap() > 0.0 && gflops > 0.0);
        // No ratio above the peak: null there.
        match r["ratio"].as_f64() {
            Some(ratio) => assert!((ratio - gflops / peak).abs() < 1e-9 && ratio <= 1.0),
            None => assert!(r["ratio"].is_null() && gflops > peak, "{r}"),
        }
        assert!((sgemm_ratio - gflops / sgemm).abs() < 1e-9);
        // The fastest run: no slower than the median, its rate from its time.
        let (seconds, fastest) = (
            r["seconds"].as_f64().unwrap(),
            r["fastest_seconds"].as_f64().unwrap(),
        );
        let fastest_gflops = r["fastest_gflops"].as_f64().unwrap();
        assert!(0.0 < fastest && fastest <= seconds, "{r}");
        assert!((fastest_gflops - gflops * seconds / fastest).abs() < 1e-9 * fastest_gflops);
        match r["fastest_ratio"].as_f64() {
            Some(ratio) => assert!((ratio - fastest_gflops / peak).abs() < 1e-9 && ratio <= 1.0),
            None => assert!(r["fastest_ratio"].is_null() && fastest_gflops > peak, "{r}"),
        }
        let workload = r["workload"].as_str().unwrap();
        if workload.starts_with("fma_") {
            assert_eq!(r["ratio"], 1.0, "{workload} is its own peak");
            assert_eq!(fastest, seconds, "{workload}: its fastest burst");
            assert_eq!(readings, 1, "{workload}");
            continue;
        }
        if workload.starts_with("trial") || workload.starts_with("deep4") {
            // A workload is quoted against the peak of the body that ran it.
            assert_eq!(r["isa"], body_isa, "{workload}");
            assert_eq!(r["threads"], 2);
        }
        let key = (
            r["isa"].as_str().unwrap().to_string(),
            r["threads"].as_u64().unwrap(),
        );
        let (last_peak, last_readings) = last[&key];
        assert_eq!(readings, last_readings + 1, "{workload}");
        assert!(peak >= last_peak, "{workload}: {peak} below {last_peak}");
        last.insert(key, (peak, readings));
    }
    // The start's, one after each workload and, where matrixmultiply's
    // instruction set is the body's, one after the 2-thread SGEMM line.
    let best = comod::net::simd::Isa::available().last().unwrap().name();
    let expected = 3 + u64::from(best == body_isa);
    assert_eq!(last[&(body_isa.to_string(), 2)].1, expected);
    assert_one_line_error(
        &comod(&["bench", "--only", "nothing"], "2"),
        &["--only", "invalid value 'nothing'", "trial_B2"],
    );
}

#[test]
fn the_model_document_lists_the_defaults_help_shows() {
    let doc = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/model.md"))
        .unwrap();
    let index = &doc[doc.find("## Option index").expect("an option index")..];
    let help = String::from_utf8(comod(&["sweep", "--help"], "1").stdout).unwrap();
    // A flag's entry: its line and the description lines below it.
    let help_line = |flag: &str| {
        let lines: Vec<&str> = help.lines().collect();
        let start = lines
            .iter()
            .position(|l| l.trim() == flag || l.trim_start().starts_with(&format!("{flag} ")))
            .unwrap_or_else(|| panic!("{flag} not in sweep --help"));
        let end = lines[start + 1..]
            .iter()
            .position(|l| l.trim_start().starts_with("--") || l.trim_start().starts_with("-h,"))
            .map_or(lines.len(), |i| start + 1 + i);
        lines[start..end].join(" ")
    };
    let mut checked = 0;
    for row in index.lines().filter(|l| l.starts_with("| `--")) {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let default = cells[2].trim_matches('`');
        for flag in cells[1].split(", ") {
            let flag = flag.split_whitespace().next().unwrap().trim_matches('`');
            let line = help_line(flag);
            if default == "off" {
                assert!(!line.contains("[default:"), "{flag} is a switch: {line}");
            } else {
                // A flag that a --reading preset sets lists the presets after
                // its own default: `[default: D; … under --reading R]`.
                assert!(
                    line.contains(&format!("[default: {default}]"))
                        || line.contains(&format!("[default: {default};")),
                    "docs/model.md gives {flag} the default {default}; help says {line}"
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 18, "{checked} flags checked");
}

#[test]
fn dataset_and_tune_options_out_of_range_are_refused_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("results.jsonl");
    let out_str = out.to_str().unwrap();
    let sweep = |extra: &[&str]| {
        let mut args = vec![
            "sweep",
            "--checkpoint",
            "no-such.safetensors",
            "--out",
            out_str,
            "--protocol",
            "dataset",
        ];
        args.extend_from_slice(extra);
        comod(&args, "1")
    };
    assert_one_line_error(&sweep(&["--patience", "0"]), &["--patience 0", "none"]);
    assert_one_line_error(&sweep(&["--patience", "soon"]), &["--patience", "none"]);
    assert_one_line_error(&sweep(&["--size-step", "1"]), &["--size-step 1"]);
    assert_one_line_error(&sweep(&["--max-epochs", "0"]), &["--max-epochs 0"]);
    assert_one_line_error(
        &sweep(&["--sizes", "100000", "--size-step", "100"]),
        &["--sizes 100000", "10000000 examples"],
    );
    // The options are checked before the checkpoint is read.
    assert_one_line_error(&sweep(&[]), &["no-such.safetensors"]);
    assert!(!out.exists());

    let table = dir.path().join("tune.md");
    let tune = |extra: &[&str]| {
        let mut args = vec![
            "tune",
            "--checkpoint",
            "no-such.safetensors",
            "--out",
            table.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        comod(&args, "1")
    };
    assert_one_line_error(&tune(&["--lr-retrain", "0.1"]), &["--lr-retrain", "--grid"]);
    assert_one_line_error(&tune(&["--grid", "0.1,-1"]), &["--grid -1"]);
    assert_one_line_error(&tune(&["--tasks", "9-1@0"]), &["--tasks", "9-1@0"]);
    assert!(!table.exists() && !dir.path().join("tune.runs").exists());
}

/// A closed standard output (`comod … | head -1`) ends the process as
/// SIGPIPE ends Unix tools, without a panic or an error line.
#[test]
fn a_closed_stdout_ends_quietly() {
    use std::os::unix::process::ExitStatusExt;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_comod"))
        .args(["bench", "--only", "trial_B2", "--seconds", "0.05"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("panicked") && !stderr.contains("Broken pipe"),
        "{stderr}"
    );
    assert_eq!(
        out.status.signal(),
        Some(13),
        "ended by SIGPIPE: {:?}",
        out.status
    );
}
