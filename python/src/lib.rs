//! `comod._comod`: the extension module behind the `comod` Python package.
//! Tensors cross as safetensors bytes and records as JSON text, so every
//! check and every number is the library's; the Python layer turns them
//! into numpy arrays and dicts. Long work runs with the GIL released on a
//! worker thread while the calling thread watches for Ctrl-C.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use clap::Parser;
use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use comod::Error;
use comod::data::{parse_task_list, shipped_data_dir};
use comod::io::checkpoint::checkpoint_bytes;
use comod::io::tensors::TensorFile;
use comod::net::{Arch, Model, Modulation};
use comod::run_options::RunOptions;
use comod::sweep::plan::Shard;
use comod::sweep::run_sweep_until;
use comod::sweep::setup::DigitSweep;
use comod::sweep::store::read_results;
use comod::train::trace::trace_in_memory;

/// A library error as the Python exception of its kind, with the
/// library's one-line message: `OSError` for the operating system's,
/// `KeyboardInterrupt` for an interrupted sweep, `ValueError` otherwise.
fn to_py(error: Error) -> PyErr {
    match error {
        Error::Io { .. } => PyOSError::new_err(error.to_string()),
        Error::Interrupted { .. } => {
            pyo3::exceptions::PyKeyboardInterrupt::new_err(error.to_string())
        }
        other => PyValueError::new_err(other.to_string()),
    }
}

/// Runs `job` on a worker thread with the GIL released, in a thread pool
/// of `threads` (all cores when `None`), relaying progress to `progress`
/// and turning Ctrl-C into a stop request the job sees within 0.1 s.
fn supervised<T: Send>(
    py: Python<'_>,
    threads: Option<usize>,
    progress: Option<&Bound<'_, PyAny>>,
    job: impl FnOnce(&AtomicBool, &(dyn Fn(usize, usize) + Sync)) -> comod::Result<T> + Send,
) -> PyResult<T> {
    // Without a count, rayon's pool of all cores (made once, by rayon).
    let pool = match threads {
        Some(0) => return Err(PyValueError::new_err("threads 0: need at least 1")),
        Some(n) => Some(
            rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .build()
                .map_err(|e| PyOSError::new_err(format!("cannot start threads: {e}")))?,
        ),
        None => None,
    };
    let stop = AtomicBool::new(false);
    let (tx, rx) = mpsc::channel::<(usize, usize)>();
    // A `Receiver` is not `Sync`; the lock lets the detached wait borrow it.
    let rx = std::sync::Mutex::new(rx);
    let mut signal: Option<PyErr> = None;
    let outcome = std::thread::scope(|scope| {
        let worker = scope.spawn(|| {
            let tx = std::sync::Mutex::new(tx);
            let report = |done: usize, total: usize| {
                let _ = tx.lock().map(|tx| tx.send((done, total)));
            };
            match &pool {
                Some(pool) => pool.install(|| job(&stop, &report)),
                None => job(&stop, &report),
            }
        });
        loop {
            let message = py.detach(|| {
                let rx = rx.lock().expect("only this thread takes the lock");
                rx.recv_timeout(Duration::from_millis(100))
            });
            match message {
                Ok((done, total)) => {
                    if let Some(callback) = progress
                        && let Err(e) = callback.call1((done, total))
                    {
                        signal.get_or_insert(e);
                        stop.store(true, Ordering::SeqCst);
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
            if let Err(e) = py.check_signals() {
                signal.get_or_insert(e);
                stop.store(true, Ordering::SeqCst);
            }
        }
        worker.join()
    });
    let outcome =
        outcome.map_err(|_| PyValueError::new_err("internal error: a worker panicked"))?;
    match (signal, outcome) {
        (Some(e), _) => Err(e),
        (None, result) => result.map_err(to_py),
    }
}

/// The §7 trace of `inputs` (safetensors bytes) on `checkpoint`
/// (safetensors bytes of either network): the output tensors as
/// safetensors bytes, exactly those `comod trace` writes.
#[pyfunction]
#[pyo3(signature = (checkpoint, inputs, threads = None))]
fn trace<'py>(
    py: Python<'py>,
    checkpoint: &[u8],
    inputs: &[u8],
    threads: Option<usize>,
) -> PyResult<Bound<'py, PyBytes>> {
    let checkpoint =
        TensorFile::from_bytes(Path::new("checkpoint"), checkpoint.to_vec()).map_err(to_py)?;
    let inputs = TensorFile::from_bytes(Path::new("inputs"), inputs.to_vec()).map_err(to_py)?;
    let (bytes, _) = supervised(py, threads, None, |_, _| {
        trace_in_memory(&checkpoint, &inputs, Path::new("outputs"))
    })?;
    Ok(PyBytes::new(py, &bytes))
}

/// Checks `checkpoint` (safetensors bytes, from the file `name` when it
/// came from one) as `comod` loads one and returns `(kind, architecture
/// JSON)`, kind `"mlp"` or `"conv"`; errors name `name`.
#[pyfunction]
#[pyo3(signature = (checkpoint, name = None))]
fn inspect(checkpoint: &[u8], name: Option<PathBuf>) -> PyResult<(String, String)> {
    let name = name.unwrap_or_else(|| PathBuf::from("checkpoint"));
    let file = TensorFile::from_bytes(&name, checkpoint.to_vec()).map_err(to_py)?;
    if file.metadata("format") == Some(comod::conv::checkpoint::CONV_CHECKPOINT_FORMAT) {
        let net = comod::conv::checkpoint::conv_checkpoint_from(&file)
            .map_err(to_py)?
            .net;
        return Ok(("conv".into(), net.arch().to_json()));
    }
    let model = comod::io::checkpoint::checkpoint_from(&file)
        .map_err(to_py)?
        .model;
    Ok(("mlp".into(), model.arch().to_json()))
}

/// A freshly initialised MLP (§2) of `arch` (a preset name or an
/// architecture JSON file, as `--arch`), modulated at `modulated_layer`,
/// from `seed`: its checkpoint as safetensors bytes.
#[pyfunction]
#[pyo3(signature = (arch, seed, modulated_layer = None))]
fn initialise<'py>(
    py: Python<'py>,
    arch: &str,
    seed: u64,
    modulated_layer: Option<usize>,
) -> PyResult<Bound<'py, PyBytes>> {
    let arch = Arch::resolve(arch, modulated_layer).map_err(to_py)?;
    let model = Model::<f32>::init(&arch, seed);
    let off = Modulation::off(model.arch());
    let bytes = checkpoint_bytes(Path::new("network"), &model, &off, &[]).map_err(to_py)?;
    Ok(PyBytes::new(py, &bytes))
}

/// The run options (`--methods`, `--seed`, `--lr-stochastic`, …) parsed
/// from `flags` exactly as `comod sweep` parses them.
#[derive(Parser)]
#[command(name = "options", no_binary_name = true)]
struct Flags {
    #[command(flatten)]
    run: RunOptions,
}

/// Parses `flags`; a bad one is a `ValueError` with clap's first line.
fn parse_flags(flags: &[String]) -> PyResult<Flags> {
    Flags::try_parse_from(flags).map_err(|e| {
        let text = e.to_string();
        let first = text
            .lines()
            .next()
            .unwrap_or("bad option")
            .trim_start_matches("error: ");
        PyValueError::new_err(first.to_string())
    })
}

/// `comod sweep` (§6) into `out`: every task × method × repeat of the
/// digit tasks `tasks` fine-tuned from `checkpoint`, resumed when `out`
/// holds runs of the same configuration; `flags` are the run options as
/// the command line spells them. Returns (runs planned, runs resumed,
/// runs run now, wall seconds).
#[pyfunction]
#[pyo3(signature = (checkpoint, out, tasks, repeats, flags, data = None, shard = None, threads = None, progress = None))]
#[allow(clippy::too_many_arguments)]
fn sweep(
    py: Python<'_>,
    checkpoint: PathBuf,
    out: PathBuf,
    tasks: &str,
    repeats: usize,
    flags: Vec<String>,
    data: Option<PathBuf>,
    shard: Option<&str>,
    threads: Option<usize>,
    progress: Option<&Bound<'_, PyAny>>,
) -> PyResult<(usize, usize, usize, f64)> {
    let flags = parse_flags(&flags)?;
    let tasks = parse_task_list(tasks).map_err(|e| PyValueError::new_err(format!("tasks: {e}")))?;
    let shard: Shard = match shard {
        Some(text) => text
            .parse()
            .map_err(|e: String| PyValueError::new_err(format!("shard {e}")))?,
        None => Shard::default(),
    };
    let data = data.unwrap_or_else(shipped_data_dir);
    let report = supervised(py, threads, progress, |stop, on_run| {
        let config = flags.run.finetune_config()?;
        let setup = DigitSweep::open((&checkpoint, &data), &out, None, config, flags.run.seed)?;
        let spec = flags.run.spec(tasks, repeats, shard, setup.config.clone());
        run_sweep_until(&setup.study(), &spec, &out, on_run, stop)
    })?;
    Ok((report.planned, report.resumed, report.run, report.seconds))
}

/// The records of the results file `path` (MLP) as one JSON text each,
/// in canonical order; a torn last line is dropped as `comod` drops it.
#[pyfunction]
fn read_records(path: PathBuf) -> PyResult<Vec<String>> {
    let contents = read_results::<Arch>(&path).map_err(to_py)?;
    contents
        .records
        .values()
        .map(|r| serde_json::to_string(r).map_err(|e| PyValueError::new_err(e.to_string())))
        .collect()
}

/// The extension module.
#[pymodule]
fn _comod(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(trace, m)?)?;
    m.add_function(wrap_pyfunction!(inspect, m)?)?;
    m.add_function(wrap_pyfunction!(initialise, m)?)?;
    m.add_function(wrap_pyfunction!(sweep, m)?)?;
    m.add_function(wrap_pyfunction!(read_records, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
