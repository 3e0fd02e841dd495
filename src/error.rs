//! The library's error type: every failure names the file, tensor, flag or
//! value it is about, so the CLI can print it as one line.

use std::path::{Path, PathBuf};

/// Every way a comod operation can fail, each carrying what it is about.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An operating-system error while reading or writing a file.
    #[error("{}: {cause}", path.display())]
    Io {
        /// The file or folder involved.
        path: PathBuf,
        /// The underlying error (shown in the message, not chained, so
        /// that it is printed once).
        cause: std::io::Error,
    },
    /// A data file (IDX) that is malformed or inconsistent (§1).
    #[error("{}: {message}", path.display())]
    Data {
        /// The offending file or folder.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// A safetensors file whose contents break §7.
    #[error("{}: {message}", path.display())]
    Tensor {
        /// The offending file.
        path: PathBuf,
        /// What is wrong, naming the tensor or metadata key.
        message: String,
    },
    /// An architecture description that breaks §2.
    #[error("architecture: {0}")]
    Arch(String),
    /// A setting out of its range, named as on the command line (e.g.
    /// `--samples`), or by its field where it has no flag (§4, §6).
    #[error("{option} {value}: {problem}")]
    Option {
        /// The flag (or field) at fault.
        option: &'static str,
        /// The value given, as text.
        value: String,
        /// What is wrong with it.
        problem: String,
    },
    /// A numerical fault that ends work which cannot record a failed run
    /// (§6), e.g. a task-switching run of the report.
    #[error("{run}: numerical fault at {failure}")]
    Numerical {
        /// The run, e.g. `switching 1-7@0 stochastic`.
        run: String,
        /// Where and in which tensor.
        failure: String,
    },
    /// Work stopped on request (Ctrl-C in the Python package) before it
    /// was done; every run completed before is recorded (§6).
    #[error("interrupted: {done} of {total} runs recorded; run again to resume")]
    Interrupted {
        /// Runs recorded, those resumed included.
        done: usize,
        /// Runs of the plan.
        total: usize,
    },
    /// A task specification that breaks §1 (`a-b@q`, a < b, q ∈ 0..4).
    #[error("task {spec:?}: {message}")]
    Task {
        /// The text as given.
        spec: String,
        /// What is wrong with it.
        message: String,
    },
}

impl Error {
    /// An I/O error about `path`.
    pub fn io(path: &Path, cause: std::io::Error) -> Self {
        Error::Io {
            path: path.to_path_buf(),
            cause,
        }
    }

    /// A data-format error about `path`.
    pub fn data(path: &Path, message: impl Into<String>) -> Self {
        Error::Data {
            path: path.to_path_buf(),
            message: message.into(),
        }
    }

    /// A setting `option` whose `value` is out of range because of `problem`.
    pub fn option(option: &'static str, value: impl ToString, problem: impl Into<String>) -> Self {
        Error::Option {
            option,
            value: value.to_string(),
            problem: problem.into(),
        }
    }

    /// A tensor-file error about `path`.
    pub fn tensor(path: &Path, message: impl Into<String>) -> Self {
        Error::Tensor {
            path: path.to_path_buf(),
            message: message.into(),
        }
    }
}

/// Result with the library's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
