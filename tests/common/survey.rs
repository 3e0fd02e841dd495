//! The bad-input survey's harness (§6, §7): each case runs `comod` on a
//! copy of the fixtures and must end (within a minute: an input that
//! hangs is a failure) with the expected exit code, one line on stderr
//! naming the culprit, and the case's folder byte for byte as it was.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// One malformed invocation.
pub struct Case {
    /// What is malformed.
    pub name: &'static str,
    /// Prepares the case's folder (a copy of the fixtures).
    pub setup: fn(&Path),
    /// Arguments; `@` starts a path in the case's folder.
    pub args: &'static [&'static str],
    /// Expected exit code (2: a usage error, 1: a failure).
    pub code: i32,
    /// Words the one-line message must contain.
    pub needles: &'static [&'static str],
}

/// Settings that keep a sweep of a fixture's tiny network short.
pub const QUICK: [&str; 6] = [
    "--batches",
    "3",
    "--test-composites",
    "20",
    "--samples",
    "8",
];

/// A case's set-up that changes nothing.
pub fn nothing(_: &Path) {}

/// Makes a FIFO at `path`.
pub fn mkfifo(path: &Path) {
    let status = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(status.success());
}

/// Runs `comod args` on 2 threads for a fixture; it must succeed.
pub fn run_ok(args: &[&str]) {
    let out = super::comod(args, "2");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Rewrites the first record of the results file `path` with `edit` of
/// its JSON.
pub fn edit_first_record(path: &Path, edit: fn(&mut serde_json::Value)) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let mut record: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    edit(&mut record);
    lines[0] = record.to_string();
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
}

/// Every file under `dir` with its bytes (FIFOs and devices by kind).
pub fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        if meta.is_dir() {
            files.extend(snapshot(&path));
            files.insert(path, b"<dir>".to_vec());
        } else if meta.is_file() && meta.len() > 1 << 26 {
            // A large (sparse) file: its size and modification time.
            let stamp = format!("{} {:?}", meta.len(), meta.modified().unwrap());
            files.insert(path, stamp.into_bytes());
        } else if meta.is_file() {
            files.insert(path.clone(), std::fs::read(&path).unwrap());
        } else {
            files.insert(path, b"<special>".to_vec());
        }
    }
    files
}

/// Runs `comod args` from the crate folder on 2 threads; `None` when it
/// has not ended after a minute (it is then killed).
fn comod_within_a_minute(args: &[&str]) -> Option<(Option<i32>, String)> {
    let mut child = super::start_comod(args);
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            let out = child.wait_with_output().unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr).trim_end().to_string();
            return Some((out.status.code(), stderr));
        }
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs every case on a fresh copy of the files `names` of `fixtures`
/// and fails listing every case that went wrong and how.
pub fn run_survey(cases: &[Case], fixtures: &Path, names: &[&str]) {
    let mut failures = Vec::new();
    for case in cases {
        let dir = tempfile::tempdir().unwrap();
        for name in names {
            let from = fixtures.join(name);
            if from.is_dir() {
                copy_dir(&from, &dir.path().join(name));
            } else {
                std::fs::copy(&from, dir.path().join(name)).unwrap();
            }
        }
        (case.setup)(dir.path());
        let before = snapshot(dir.path());
        let args: Vec<String> = case
            .args
            .iter()
            .map(|a| match a.strip_prefix('@') {
                Some(name) => dir.path().join(name).to_str().unwrap().to_string(),
                None => a.to_string(),
            })
            .collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let Some((code, stderr)) = comod_within_a_minute(&args) else {
            failures.push(format!("{}: still running after a minute", case.name));
            continue;
        };
        let mut problems = Vec::new();
        if code != Some(case.code) {
            problems.push(format!("exit {code:?}, expected {}", case.code));
        }
        if stderr.lines().count() != 1 {
            problems.push("not one line".to_string());
        }
        for needle in case.needles {
            if !stderr.contains(needle) {
                problems.push(format!("{needle:?} not named"));
            }
        }
        if snapshot(dir.path()) != before {
            problems.push("the folder changed".to_string());
        }
        if !problems.is_empty() {
            failures.push(format!(
                "{}: {} — stderr: {stderr}",
                case.name,
                problems.join(", ")
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

/// Copies the folder `from` (files and folders) to `to`.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_dir(&path, &target);
        } else {
            std::fs::copy(&path, &target).unwrap();
        }
    }
}
