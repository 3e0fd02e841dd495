//! The results file (§6): JSON lines appended one whole record at a
//! time, resumed by skipping the runs it holds, a torn last line reported
//! and dropped, configurations never mixed, and a canonical order
//! (task, method, repeat) once a sweep or a merge completes.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use crate::error::{Error, Result};
use crate::io::atomic::{check_not_input, check_output, write_atomic};
use crate::io::lock::FileLock;
use crate::io::read::{MAX_RESULTS_BYTES, read_bounded};
use crate::sweep::plan::RunKey;
use crate::sweep::record::Record;

/// A record a results file holds: one run, one JSON line, made under one
/// configuration. The first paper's [`Record`] and the multi-task record
/// ([`crate::multitask::record::MultitaskRecord`]) share this store.
pub trait Stored: Sized {
    /// Everything besides the run that produced the record.
    type Config: PartialEq + Clone + serde::Serialize;
    /// The run.
    fn key(&self) -> RunKey;
    /// The configuration.
    fn config(&self) -> &Self::Config;
    /// Parses one line (what is wrong with it on failure).
    fn from_line(line: &[u8]) -> std::result::Result<Self, String>;
    /// The record as one line of JSON, without the newline.
    fn to_line(&self) -> String;
}

impl Stored for Record {
    type Config = crate::sweep::record::SweepConfig;
    fn key(&self) -> RunKey {
        Record::key(self)
    }
    fn config(&self) -> &Self::Config {
        &self.config
    }
    fn from_line(line: &[u8]) -> std::result::Result<Self, String> {
        Record::from_line(line)
    }
    fn to_line(&self) -> String {
        Record::to_line(self)
    }
}

/// The records of a results file, by run, and what was wrong with its end.
#[derive(Debug)]
pub struct Contents<R = Record> {
    /// Every record, by run.
    pub records: BTreeMap<RunKey, R>,
    /// Bytes of whole lines (where a torn last line begins).
    pub whole_len: usize,
    /// The torn last line, if any (without its missing newline).
    pub torn: Option<String>,
    /// The last line is a whole record without its final newline (a file
    /// edited by hand): kept, and the newline is added before appending.
    pub needs_newline: bool,
}

/// Parses a results file: every line a record (format 1 records are
/// upgraded, [`Record::from_line`]); a last line without its newline is
/// torn unless it is a whole record. Duplicated runs are an error.
pub fn read_results(path: &Path) -> Result<Contents> {
    read_records(path)
}

impl<R> Default for Contents<R> {
    fn default() -> Self {
        Contents {
            records: BTreeMap::new(),
            whole_len: 0,
            torn: None,
            needs_newline: false,
        }
    }
}

/// [`read_results`] for any kind of record.
pub fn read_records<R: Stored>(path: &Path) -> Result<Contents<R>> {
    if !path.exists() {
        return Ok(Contents::default());
    }
    parse_results(path, &read_bounded(path, MAX_RESULTS_BYTES)?)
}

/// Parses the bytes of a results file (see [`read_results`]); `path`
/// names it in errors.
pub fn parse_results<R: Stored>(path: &Path, text: &[u8]) -> Result<Contents<R>> {
    let mut contents = Contents::default();
    let mut start = 0;
    for (number, line) in text.split_inclusive(|&b| b == b'\n').enumerate() {
        let fail = |why: String| Error::data(path, format!("line {}: {why}", number + 1));
        let record = if line.ends_with(b"\n") {
            R::from_line(line).map_err(fail)?
        } else {
            match R::from_line(line) {
                Ok(record) => {
                    contents.needs_newline = true;
                    record
                }
                Err(_) => {
                    contents.torn = Some(String::from_utf8_lossy(line).into_owned());
                    break;
                }
            }
        };
        if contents.records.insert(record.key(), record).is_some() {
            return Err(fail("the same run is recorded twice".into()));
        }
        start += line.len();
        contents.whole_len = start;
    }
    Ok(contents)
}

/// The first top-level configuration key where `a` and `b` differ.
fn first_difference<C: serde::Serialize>(a: &C, b: &C) -> String {
    let (a, b) = (
        serde_json::to_value(a).expect("serialises"),
        serde_json::to_value(b).expect("serialises"),
    );
    let (a, b) = (
        a.as_object().expect("an object"),
        b.as_object().expect("an object"),
    );
    a.keys()
        .chain(b.keys())
        .find(|k| a.get(*k) != b.get(*k))
        .cloned()
        .unwrap_or_else(|| "?".into())
}

/// Checks that every record was made with `config`.
pub fn check_config<R: Stored>(
    path: &Path,
    contents: &Contents<R>,
    config: &R::Config,
) -> Result<()> {
    if let Some(other) = contents.records.values().find(|r| r.config() != config) {
        return Err(Error::data(
            path,
            format!(
                "holds runs of another configuration ({} differs, e.g. in {}): configurations are never mixed",
                first_difference(other.config(), config),
                other.key()
            ),
        ));
    }
    Ok(())
}

/// Appends records to a results file, one whole line per write; a write
/// that fails (disk full) is cut back so that only whole records remain.
pub struct Appender {
    /// The file and its length after the last whole record.
    file: Mutex<(std::fs::File, u64)>,
    path: std::path::PathBuf,
}

impl Appender {
    /// Opens `path` for appending, first cutting a torn last line (where
    /// `contents.whole_len` ends) or ending a last record that lacks its
    /// newline.
    pub fn open<R>(path: &Path, contents: &Contents<R>) -> Result<Appender> {
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| Error::io(path, e))?;
        file.set_len(contents.whole_len as u64)
            .map_err(|e| Error::io(path, e))?;
        let mut len = contents.whole_len as u64;
        if contents.needs_newline {
            file.write_all(b"\n").map_err(|e| Error::io(path, e))?;
            len += 1;
        }
        Ok(Appender {
            file: Mutex::new((file, len)),
            path: path.to_path_buf(),
        })
    }

    /// Appends `record` as one line, in one write, flushed to the file; on
    /// failure the file is cut back to its whole records.
    pub fn append<R: Stored>(&self, record: &R) -> Result<()> {
        let mut line = record.to_line();
        line.push('\n');
        let mut guard = self.file.lock().expect("no panic while holding the lock");
        let (file, len) = &mut *guard;
        match file.write_all(line.as_bytes()).and_then(|()| file.flush()) {
            Ok(()) => {
                *len += line.len() as u64;
                Ok(())
            }
            Err(e) => {
                let _ = file.set_len(*len);
                Err(Error::io(&self.path, e))
            }
        }
    }
}

/// Writes `records` to `path` in canonical order (task, method, repeat), atomically.
pub fn write_canonical<R: Stored>(path: &Path, records: &BTreeMap<RunKey, R>) -> Result<()> {
    let mut text = String::new();
    for record in records.values() {
        text.push_str(&record.to_line());
        text.push('\n');
    }
    write_atomic(path, text.as_bytes())
}

/// Joins shard files into `out` (§6): every input must be whole (no
/// torn line) and of one configuration, and no run may appear twice;
/// `out` may not be an input, and is locked while it is written.
pub fn merge(out: &Path, inputs: &[&Path]) -> Result<usize> {
    merge_records::<Record>(out, inputs)
}

/// [`merge`] for any kind of record.
pub fn merge_records<R: Stored>(out: &Path, inputs: &[&Path]) -> Result<usize> {
    check_output(out)?;
    let named: Vec<(&str, &Path)> = inputs.iter().map(|&p| ("input", p)).collect();
    check_not_input(out, &named)?;
    let _lock = FileLock::acquire(out)?;
    let mut all: BTreeMap<RunKey, R> = BTreeMap::new();
    let mut config: Option<(R::Config, &Path)> = None;
    for &input in inputs {
        if !input.exists() {
            return Err(Error::io(
                input,
                std::io::Error::from(std::io::ErrorKind::NotFound),
            ));
        }
        let contents = read_records::<R>(input)?;
        if contents.torn.is_some() {
            return Err(Error::data(
                input,
                "ends with a torn line: resume that sweep first",
            ));
        }
        for (key, record) in contents.records {
            match &config {
                None => config = Some((record.config().clone(), input)),
                Some((first, first_path)) if first != record.config() => {
                    return Err(Error::data(
                        input,
                        format!(
                            "configuration differs from {} ({} differs)",
                            first_path.display(),
                            first_difference(first, record.config())
                        ),
                    ));
                }
                Some(_) => {}
            }
            if all.insert(key.clone(), record).is_some() {
                return Err(Error::data(
                    input,
                    format!("{key} is also in another input"),
                ));
            }
        }
    }
    write_canonical(out, &all)?;
    Ok(all.len())
}
