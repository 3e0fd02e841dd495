//! The results file (§6): JSON lines appended one whole record at a
//! time, resumed by skipping the runs it holds, a torn last line reported
//! and dropped, configurations never mixed, and a canonical order
//! (task, method, repeat) once a sweep or a merge completes. The same for
//! the records of both networks.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use crate::error::{Error, Result};
use crate::io::atomic::{check_not_input, check_output, write_atomic};
use crate::io::lock::FileLock;
use crate::io::read::{MAX_RESULTS_BYTES, read_bounded};
use crate::net::Arch;
use crate::net::arch::{ARCH_FORMAT, CONV_ARCH_FORMAT};
use crate::sweep::completeness::{Completeness, as_unsharded, completeness};
use crate::sweep::plan::RunKey;
use crate::sweep::record::{Architecture, Record, SweepConfig};

/// The records of a results file, by run, and what was wrong with its end.
#[derive(Debug)]
pub struct Contents<A = Arch> {
    /// Every record, by run.
    pub records: BTreeMap<RunKey, Record<A>>,
    /// Bytes of whole lines (where a torn last line begins).
    pub whole_len: usize,
    /// The torn last line, if any (without its missing newline).
    pub torn: Option<String>,
    /// The last line is a whole record without its final newline (a file
    /// edited by hand): kept, and the newline is added before appending.
    pub needs_newline: bool,
}

impl<A> Default for Contents<A> {
    fn default() -> Self {
        Contents {
            records: BTreeMap::new(),
            whole_len: 0,
            torn: None,
            needs_newline: false,
        }
    }
}

/// Parses a results file: every line a record (older formats are
/// upgraded, [`Record::from_line`]); a last line without its newline is
/// torn unless it is a whole record. Duplicated runs are an error. A file
/// that does not exist holds no records.
pub fn read_results<A: Architecture>(path: &Path) -> Result<Contents<A>> {
    if !path.exists() {
        return Ok(Contents::default());
    }
    parse_results(path, &read_bounded(path, MAX_RESULTS_BYTES)?)
}

/// Parses the bytes of a results file (see [`read_results`]); `path`
/// names it in errors.
pub fn parse_results<A: Architecture>(path: &Path, text: &[u8]) -> Result<Contents<A>> {
    let mut contents = Contents::default();
    let mut start = 0;
    for (number, line) in text.split_inclusive(|&b| b == b'\n').enumerate() {
        let fail = |why: String| Error::data(path, format!("line {}: {why}", number + 1));
        let record = if line.ends_with(b"\n") {
            Record::<A>::from_line(line).map_err(fail)?
        } else {
            match Record::<A>::from_line(line) {
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

/// Checks that every record of the results file `path` was made with
/// `config`.
pub fn check_config<A: Architecture>(
    path: &Path,
    records: &BTreeMap<RunKey, Record<A>>,
    config: &SweepConfig<A>,
) -> Result<()> {
    if let Some(other) = records.values().find(|r| &r.config != config) {
        return Err(Error::data(
            path,
            format!(
                "holds runs of another configuration ({} differs, e.g. in {}): configurations are never mixed",
                first_difference(&other.config, config),
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
    pub fn open<A>(path: &Path, contents: &Contents<A>) -> Result<Appender> {
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
    pub fn append<A: Architecture>(&self, record: &Record<A>) -> Result<()> {
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
pub fn write_canonical<A: Architecture>(
    path: &Path,
    records: &BTreeMap<RunKey, Record<A>>,
) -> Result<()> {
    let mut text = String::new();
    for record in records.values() {
        text.push_str(&record.to_line());
        text.push('\n');
    }
    write_atomic(path, text.as_bytes())
}

/// The records of `input`, a file to join into another (a merge's input,
/// a report's shard): it must exist and end with a whole record; `torn`
/// says what to do about a torn last line.
pub fn read_whole<A: Architecture>(
    input: &Path,
    torn: &str,
) -> Result<BTreeMap<RunKey, Record<A>>> {
    if !input.exists() {
        return Err(Error::io(
            input,
            std::io::Error::from(std::io::ErrorKind::NotFound),
        ));
    }
    let contents = read_results::<A>(input)?;
    if contents.torn.is_some() {
        return Err(Error::data(input, format!("ends with a torn line: {torn}")));
    }
    Ok(contents.records)
}

/// Joins shard files into `out` (§6): every input must be whole (no
/// torn line) and of one configuration, and no run may appear twice;
/// `out` may not be an input, and is locked while it is written. Runs
/// missing from the records' plans refuse the merge (nothing is written)
/// unless `partial` accepts them. Returns the runs merged and how
/// complete they are.
pub fn merge<A: Architecture>(
    out: &Path,
    inputs: &[&Path],
    partial: bool,
) -> Result<(usize, Completeness)> {
    check_output(out)?;
    let named: Vec<(&str, &Path)> = inputs.iter().map(|&p| ("input", p)).collect();
    check_not_input(out, &named)?;
    let _lock = FileLock::acquire(out)?;
    let mut all: BTreeMap<RunKey, Record<A>> = BTreeMap::new();
    let mut config: Option<(SweepConfig<A>, &Path)> = None;
    for &input in inputs {
        for (key, record) in read_whole::<A>(input, "resume that sweep first")? {
            match &config {
                None => config = Some((record.config.clone(), input)),
                Some((first, first_path)) if first != &record.config => {
                    return Err(Error::data(
                        input,
                        format!(
                            "configuration differs from {} ({} differs)",
                            first_path.display(),
                            first_difference(first, &record.config)
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
    let whole = completeness(&all);
    whole.require(out, "merge", partial)?;
    as_unsharded(&mut all, &whole);
    write_canonical(out, &all)?;
    Ok((all.len(), whole))
}

/// Which network's records a results file holds (§7: the architecture
/// JSON's `format`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordKind {
    /// The MLP of §2 (architecture format 1).
    Mlp,
    /// The convolutional network of §8 (architecture format 2).
    Conv,
}

impl RecordKind {
    /// The kind of the records in the text of a results file, from its
    /// first line; `None` for a file without a whole first line.
    pub fn of_text(path: &Path, text: &[u8]) -> Result<Option<RecordKind>> {
        let Some(first) = text.split(|&b| b == b'\n').next().filter(|l| !l.is_empty()) else {
            return Ok(None);
        };
        let Ok(value) = serde_json::from_slice::<serde_json::Value>(first) else {
            return Ok(None);
        };
        match value["config"]["architecture"]["format"].as_u64() {
            Some(f) if f == u64::from(ARCH_FORMAT) => Ok(Some(RecordKind::Mlp)),
            Some(f) if f == u64::from(CONV_ARCH_FORMAT) => Ok(Some(RecordKind::Conv)),
            _ => Err(Error::data(
                path,
                "line 1: not a result record (no architecture format 1 or 2 in its configuration)",
            )),
        }
    }

    /// The kind of the records of the results file at `path`.
    pub fn of_file(path: &Path) -> Result<Option<RecordKind>> {
        if !path.exists() {
            return Err(Error::data(path, "no such file"));
        }
        RecordKind::of_text(path, &read_bounded(path, MAX_RESULTS_BYTES)?)
    }

    /// What the records are of, for messages.
    pub fn network(self) -> &'static str {
        match self {
            RecordKind::Mlp => "the MLP (digit tasks)",
            RecordKind::Conv => "a convolutional network (multi-task)",
        }
    }
}

/// What [`merge_files`] did.
#[derive(Clone, Debug)]
pub struct Merged {
    /// Runs written.
    pub runs: usize,
    /// Which network's records they are.
    pub kind: RecordKind,
    /// How complete they are (partial only when accepted).
    pub completeness: Completeness,
}

/// [`merge`] of results files of either network: the kind is the first
/// input's, and every input must be of it.
pub fn merge_files(out: &Path, inputs: &[&Path], partial: bool) -> Result<Merged> {
    let mut kind = None;
    for &input in inputs {
        match (kind, RecordKind::of_file(input)?) {
            (_, None) => {}
            (None, found) => kind = found,
            (Some(first), Some(found)) if first != found => {
                return Err(Error::data(
                    input,
                    format!(
                        "holds records of {}, the other inputs of {}: they never mix",
                        found.network(),
                        first.network()
                    ),
                ));
            }
            _ => {}
        }
    }
    let kind = kind.unwrap_or(RecordKind::Mlp);
    let (runs, completeness) = match kind {
        RecordKind::Mlp => merge::<Arch>(out, inputs, partial)?,
        RecordKind::Conv => merge::<crate::conv::ConvArch>(out, inputs, partial)?,
    };
    Ok(Merged {
        runs,
        kind,
        completeness,
    })
}
