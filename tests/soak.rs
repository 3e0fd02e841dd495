//! Crash-safety soak (§6), behind a flag: `cargo test --release --test
//! soak -- --ignored --test-threads 1` (or `bash .ci/run --soak`). A sweep,
//! a multi-task sweep, a merge and a report are each killed with SIGKILL at
//! 20 random moments while they run, then run to the end; every run must
//! appear exactly once with the records of an uninterrupted run, and every
//! output must be whole.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{Quiet, comod, pretrained_checkpoint, start_comod, without_wall_time};
use comod::report::plan::Scale;
use comod::report::{ReportOptions, report};
use comod::sweep::store::read_results;

/// Kills that must land on a running process.
const KILLS: usize = 20;

/// A fixed sequence of kill moments (a 64-bit LCG), so that a failure can
/// be replayed.
struct Moments(u64);

impl Moments {
    /// The next moment, uniform in `range` milliseconds.
    fn next(&mut self, range: std::ops::Range<u64>) -> Duration {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        Duration::from_millis(range.start + (self.0 >> 33) % (range.end - range.start))
    }
}

/// Starts `child` again and again, killing it at `moments` in `window`,
/// until it has been killed [`KILLS`] times while running; `check` runs
/// after every kill. Returns how many starts it took. Fails if the work
/// finishes before that many kills.
fn kill_repeatedly(
    mut child: impl FnMut() -> Child,
    moments: &mut Moments,
    window: std::ops::Range<u64>,
    mut check: impl FnMut(),
) -> usize {
    let (mut kills, mut starts) = (0, 0);
    while kills < KILLS {
        let mut process = child();
        starts += 1;
        std::thread::sleep(moments.next(window.clone()));
        if let Some(status) = process.try_wait().unwrap() {
            let mut stderr = String::new();
            if let Some(mut pipe) = process.stderr.take() {
                std::io::Read::read_to_string(&mut pipe, &mut stderr).unwrap();
            }
            assert!(
                status.success(),
                "exited with {status} before the kill: {stderr}"
            );
            assert!(
                starts < 10 * KILLS,
                "the work keeps finishing before the kill"
            );
            continue;
        }
        process.kill().unwrap(); // SIGKILL
        process.wait().unwrap();
        kills += 1;
        check();
    }
    starts
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// Sixteen tasks × 16 repeats: 1024 short runs, about 30 s of work on 2 cores (enough that 20 kills land before the end on an idle machine).
const SOAK_TASKS: &str = "1-7@0,3-8@2,0-9@1,2-5@3,0-1@0,2-3@1,4-5@2,6-7@3,8-9@0,1-2@1,3-4@2,5-6@3,7-8@0,0-2@1,1-3@2,4-6@3";

fn sweep_args(ck: &Path, out: &Path) -> Vec<String> {
    strings(&[
        "sweep",
        "--checkpoint",
        ck.to_str().unwrap(),
        "--tasks",
        SOAK_TASKS,
        "--repeats",
        "16",
        "--batches",
        "60",
        "--test-composites",
        "200",
        "--samples",
        "40",
        "--record-coupling",
        "--out",
        out.to_str().unwrap(),
    ])
}

/// Hidden files (temporaries) in `dir`.
fn hidden(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect()
}

/// Runs the sweep `args(ck, out)` of the network `A` uninterrupted, then
/// again into another file while killing it [`KILLS`] times at moments
/// from `seed`, and resumes it to the end: the file must hold every run
/// exactly once, with the uninterrupted records, and no temporary file.
fn soak_sweep<A: comod::sweep::record::Architecture>(
    what: &str,
    dir: &Path,
    ck: &Path,
    args: fn(&Path, &Path) -> Vec<String>,
    seed: u64,
) {
    let reference = dir.join("reference.jsonl");
    assert!(comod(&args(ck, &reference), "2").status.success());
    let planned = std::fs::read_to_string(&reference).unwrap().lines().count();

    let soaked = dir.join("soaked.jsonl");
    let mut moments = Moments(seed);
    let mut progress = Vec::new();
    let starts = kill_repeatedly(
        || start_comod(&args(ck, &soaked)),
        &mut moments,
        200..900,
        || {
            // Whatever the moment, the file holds whole, distinct runs
            // (read_results refuses a run recorded twice).
            let contents = read_results::<A>(&soaked).unwrap();
            progress.push(contents.records.len());
        },
    );
    let out = comod(&args(ck, &soaked), "2");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let records = read_results::<A>(&soaked).unwrap().records;
    assert_eq!(records.len(), planned, "every run exactly once");
    assert_eq!(without_wall_time(&soaked), without_wall_time(&reference));
    assert!(
        progress.last() < Some(&planned),
        "the last kill hit a sweep with runs to go"
    );
    assert!(
        hidden(dir).is_empty(),
        "temporaries left: {:?}",
        hidden(dir)
    );
    eprintln!(
        "{what} soak: {KILLS} SIGKILLs over {starts} starts survived; runs recorded after each kill {progress:?} of {planned}; 0 lost, 0 duplicated"
    );
}

#[test]
#[ignore = "soak: run with --ignored"]
fn soak_a_sweep_killed_20_times_resumes_to_the_uninterrupted_file() {
    let dir = tempfile::tempdir().unwrap();
    let ck = pretrained_checkpoint(dir.path(), "2");
    soak_sweep::<comod::net::Arch>("sweep", dir.path(), &ck, sweep_args, 1);
}

fn multitask_sweep_args(ck: &Path, out: &Path) -> Vec<String> {
    strings(&[
        "multitask",
        "sweep",
        "--checkpoint",
        ck.to_str().unwrap(),
        "--repeats",
        "12",
        "--batches",
        "60",
        "--test-composites",
        "200",
        "--samples",
        "16",
        "--record-coupling",
        "--out",
        out.to_str().unwrap(),
    ])
}

#[test]
#[ignore = "soak: run with --ignored"]
fn soak_a_multitask_sweep_killed_20_times_resumes_to_the_uninterrupted_file() {
    let dir = tempfile::tempdir().unwrap();
    let ck = dir.path().join("conv.safetensors");
    let pretrain = strings(&[
        "multitask",
        "pretrain",
        "--epochs",
        "1",
        "--examples",
        "400",
        "--out",
        ck.to_str().unwrap(),
    ]);
    assert!(comod(&pretrain, "2").status.success());
    soak_sweep::<comod::conv::ConvArch>(
        "multitask sweep",
        dir.path(),
        &ck,
        multitask_sweep_args,
        3,
    );
}

#[test]
#[ignore = "soak: run with --ignored"]
fn soak_a_merge_killed_20_times_leaves_no_partial_output() {
    let dir = tempfile::tempdir().unwrap();
    let ck = pretrained_checkpoint(dir.path(), "2");
    let shards: Vec<PathBuf> = (0..3)
        .map(|i| {
            let shard = dir.path().join(format!("shard{i}.jsonl"));
            let mut args = sweep_args(&ck, &shard);
            args.extend(strings(&["--shard", &format!("{i}/3")]));
            assert!(comod(&args, "2").status.success());
            shard
        })
        .collect();
    let merge_args = |out: &Path| {
        let mut args = strings(&["merge", out.to_str().unwrap()]);
        args.extend(shards.iter().map(|s| s.to_str().unwrap().to_string()));
        args
    };
    let reference = dir.path().join("reference.jsonl");
    assert!(comod(&merge_args(&reference), "2").status.success());
    let whole = std::fs::read(&reference).unwrap();

    let out_dir = dir.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    let merged = out_dir.join("merged.jsonl");
    let mut moments = Moments(2);
    let mut seen_whole = 0;
    let starts = kill_repeatedly(
        || {
            let _ = std::fs::remove_file(&merged);
            start_comod(&merge_args(&merged))
        },
        &mut moments,
        1..60,
        || {
            // Absent or whole, never partial.
            if let Ok(bytes) = std::fs::read(&merged) {
                assert_eq!(bytes, whole, "a partial merge output");
                seen_whole += 1;
            }
        },
    );
    let out = comod(&merge_args(&merged), "2");
    assert!(out.status.success());
    assert_eq!(std::fs::read(&merged).unwrap(), whole);
    assert_eq!(
        hidden(&out_dir),
        Vec::<String>::new(),
        "temporaries of killed merges removed"
    );
    eprintln!(
        "merge soak: {KILLS} SIGKILLs over {starts} starts survived; output absent or whole after each ({seen_whole} whole); 0 partial"
    );
}

/// Environment variable naming the folder of [`soak_report_child`].
const CHILD_DIR: &str = "COMOD_SOAK_REPORT_DIR";

fn smoke_report(out: &Path) {
    let options = ReportOptions {
        out: out.to_path_buf(),
        data: Path::new(env!("CARGO_MANIFEST_DIR")).join("data"),
        fashion: Path::new(env!("CARGO_MANIFEST_DIR")).join("data/fashion"),
        scale: Scale::Smoke,
        shard: comod::sweep::plan::Shard::default(),
        seed: 0,
        partial: false,
        also: Vec::new(),
    };
    report(&options, &Quiet).unwrap();
}

/// The process the report soak kills: a smoke-scale report into the
/// folder named by [`CHILD_DIR`] (does nothing without it).
#[test]
#[ignore = "soak: started by soak_a_report_killed_20_times…"]
fn soak_report_child() {
    if let Ok(dir) = std::env::var(CHILD_DIR) {
        smoke_report(Path::new(&dir));
    }
}

/// Every file under `dir`, relative, with the text compared: results
/// without wall times, the report without its wall-time line.
fn report_files(dir: &Path) -> Vec<(PathBuf, Vec<String>)> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(folder) = stack.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            let relative = path.strip_prefix(dir).unwrap().to_path_buf();
            if path.is_dir() {
                stack.push(path);
            } else if relative.extension().is_some_and(|e| e == "jsonl") {
                files.push((relative, without_wall_time(&path)));
            } else if relative.extension().is_some_and(|e| e == "md") {
                let text = std::fs::read_to_string(&path).unwrap();
                let lines = text
                    .lines()
                    .filter(|l| !l.contains("wall time"))
                    .map(String::from);
                files.push((relative, lines.collect()));
            } else {
                files.push((relative, Vec::new()));
            }
        }
    }
    files.sort();
    files
}

#[test]
#[ignore = "soak: run with --ignored"]
fn soak_a_report_killed_20_times_completes_to_the_uninterrupted_report() {
    let reference = tempfile::tempdir().unwrap();
    smoke_report(reference.path());
    let soaked = tempfile::tempdir().unwrap();
    let mut moments = Moments(3);
    let child = || {
        Command::new(std::env::current_exe().unwrap())
            .args(["--ignored", "--exact", "soak_report_child", "--nocapture"])
            .env(CHILD_DIR, soaked.path())
            .env("RAYON_NUM_THREADS", "2")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let starts = kill_repeatedly(child, &mut moments, 300..2500, || {
        for entry in std::fs::read_dir(soaked.path().join("runs/smoke"))
            .into_iter()
            .flatten()
        {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "jsonl") {
                read_results::<comod::net::Arch>(&path).unwrap();
            }
        }
    });
    let mut last = child();
    assert!(last.wait().unwrap().success());
    assert_eq!(report_files(soaked.path()), report_files(reference.path()));
    eprintln!(
        "report soak: {KILLS} SIGKILLs over {starts} starts survived; every runs file, figure and report.md as uninterrupted"
    );
}
