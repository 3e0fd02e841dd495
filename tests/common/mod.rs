//! Helpers shared by the integration tests: running the `comod` binary and
//! drawing random architectures. Each test file uses a part of them.
#![allow(dead_code)]

pub mod datasets;
pub mod survey;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use comod::data::{CANVAS_PIXELS, Digits};
use comod::kernel::Body;
use comod::net::{Arch, LayerKind, LayerSpec, Nonlinearity};
use proptest::prelude::*;

/// The folder for the files a test binary's tests share, one per process
/// (the first caller's `prefix`, then a random part, in the temporary
/// folder), made by that caller and removed when the process exits. A static is never dropped, so the
/// removal is registered with the C library's `atexit`, which runs when
/// the test harness returns from `main` or calls `exit`.
pub fn shared_folder(prefix: &str) -> &'static Path {
    static FOLDER: OnceLock<PathBuf> = OnceLock::new();
    extern "C" fn remove_folder() {
        if let Some(dir) = FOLDER.get() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
    unsafe extern "C" {
        fn atexit(callback: extern "C" fn()) -> std::ffi::c_int;
    }
    FOLDER.get_or_init(|| {
        let dir = tempfile::Builder::new().prefix(prefix).tempdir().unwrap();
        // SAFETY: `atexit` takes any function of no arguments; this one
        // reads only the folder's path, if it is set by then.
        assert_eq!(unsafe { atexit(remove_folder) }, 0, "atexit refused");
        dir.keep()
    })
}

/// `comod args`, to run from the crate folder with `RAYON_NUM_THREADS =
/// threads`: the command every helper here runs, for a caller to add to.
pub fn comod_command<S: AsRef<std::ffi::OsStr>>(args: &[S], threads: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_comod"));
    command
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("RAYON_NUM_THREADS", threads);
    command
}

/// Runs `comod args` from the crate folder with `RAYON_NUM_THREADS = threads`.
pub fn comod<S: AsRef<std::ffi::OsStr>>(args: &[S], threads: &str) -> Output {
    comod_command(args, threads).output().expect("comod runs")
}

/// Starts `comod args` from the crate folder on 2 threads, its output
/// discarded and its stderr piped, without waiting for it.
pub fn start_comod<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> std::process::Child {
    comod_command(args, "2")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("comod runs")
}

/// Asserts failure with one stderr line containing every `needle`.
pub fn assert_one_line_error(output: &Output, needles: &[&str]) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "must fail: {stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    for needle in needles {
        assert!(stderr.contains(needle), "{needle:?} not in {stderr}");
    }
}

/// Pretrains the default network for `epochs` into `dir/ck.safetensors`.
pub fn pretrained_checkpoint(dir: &Path, epochs: &str) -> PathBuf {
    let ck = dir.join("ck.safetensors");
    let out = comod(
        &[
            "pretrain",
            "--epochs",
            epochs,
            "--out",
            ck.to_str().unwrap(),
        ],
        "2",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    ck
}

/// The shipped digits, loaded once.
pub fn shipped_digits() -> &'static Digits {
    static DIGITS: OnceLock<Digits> = OnceLock::new();
    DIGITS
        .get_or_init(|| Digits::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("data")).unwrap())
}

/// A report observer that shows nothing.
pub struct Quiet;

impl comod::observer::Observer for Quiet {
    fn reused(&self, _: &Path) {}
    fn pretraining_epoch(&self, _: &comod::train::EpochStats, _: usize) {}
    fn pretrained(&self, _: &comod::train::PretrainReport, _: f64, _: &Path) {}
    fn sweep_progress(&self, _: usize, _: usize) {}
    fn sweep_done(&self, _: &comod::sweep::SweepReport, _: &Path) {}
}

/// The lines of a results file with each record's wall time removed (the
/// one field that differs between identical runs).
pub fn without_wall_time(path: &std::path::Path) -> Vec<String> {
    without_keys(path, &["wall_s"])
}

/// The lines of a results file with the top-level `keys` of each record
/// removed (e.g. the `plan` of records that older formats or another
/// sweep wrote).
pub fn without_keys(path: &std::path::Path, keys: &[&str]) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|line| {
            let mut v: serde_json::Value = serde_json::from_str(line).unwrap();
            let record = v.as_object_mut().unwrap();
            for key in keys {
                record.remove(*key);
            }
            v.to_string()
        })
        .collect()
}

/// Random valid architectures (§2): an encoder of 4·(1..=max_quarter)
/// neurons (exp or ReLU), 1..=max_hidden dense or local hidden layers of up
/// to 4·max_quarter neurons (dense sizes 3q + 1, so not multiples of 4 or 8),
/// the readout, any modulated layer and β in [−0.5, 0.5].
pub fn arch_strategy(max_quarter: usize, max_hidden: usize) -> impl Strategy<Value = Arch> {
    (
        1..=max_quarter,
        prop::bool::ANY,
        prop::collection::vec((prop::bool::ANY, 1..=max_quarter), 1..=max_hidden),
        0usize..4,
        -0.5f32..0.5,
    )
        .prop_map(|(quarter, exp, hidden, modulated, beta)| {
            let mut layers = vec![LayerSpec {
                kind: LayerKind::Encoder,
                size: 4 * quarter,
                nonlinearity: Some(if exp {
                    Nonlinearity::Exp
                } else {
                    Nonlinearity::Relu
                }),
            }];
            for (local, q) in hidden {
                let local = local && layers.last().unwrap().size % 4 == 0;
                layers.push(LayerSpec {
                    kind: if local {
                        LayerKind::Local
                    } else {
                        LayerKind::Dense
                    },
                    size: if local { 4 * q } else { 3 * q + 1 },
                    nonlinearity: None,
                });
            }
            layers.push(LayerSpec {
                kind: LayerKind::Readout,
                size: 10,
                nonlinearity: None,
            });
            let modulated_layer = 1 + modulated % (layers.len() - 1);
            let arch = Arch {
                format: 1,
                input: CANVAS_PIXELS,
                layers,
                modulated_layer,
                beta,
            };
            arch.validate()
                .expect("the strategy builds valid architectures");
            arch
        })
}

/// Every kernel body this CPU runs: scalar always, AVX2+FMA and AVX-512F
/// where present (a message names each one that cannot be tested here).
pub fn bodies() -> Vec<Body> {
    let bodies = Body::available();
    for missing in [Body::Avx2Fma, Body::Avx512] {
        if !bodies.contains(&missing) {
            eprintln!(
                "this CPU has no {}: the {missing:?} body is not tested",
                missing.isa()
            );
        }
    }
    bodies
}

/// One run of `method` on the digit task `task` of `data` with the
/// shipped digits, seeded by `seed` (master seed 0), as a sweep runs it.
pub fn digit_run(
    frozen: &comod::train::Frozen<comod::net::Model<f32>>,
    task: comod::data::Task,
    data: &comod::train::TaskData<comod::net::Model<f32>>,
    method: comod::train::Method,
    config: &comod::train::FinetuneConfig,
    seed: u64,
) -> comod::Result<comod::train::RunOutcome> {
    use comod::train::Study;
    let study = comod::train::DigitTasks {
        frozen,
        digits: shipped_digits(),
    };
    study.run(task, data, (method, 0, seed), config, 0)
}

/// The bits of each value, for equality bit for bit (−0 ≠ 0).
pub fn bits(values: &[f32]) -> Vec<u32> {
    values.iter().map(|v| v.to_bits()).collect()
}
