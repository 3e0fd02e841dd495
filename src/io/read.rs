//! Reading whole files with a size bound (§6, §7): a file larger than its
//! kind can sensibly be (a sparse multi-gigabyte file, a gzip bomb once
//! decompressed) is refused with one line before it is held in memory, and
//! so is an input that is not a regular file (`/dev/zero`, a FIFO).

use std::io::Read;
use std::path::Path;

use crate::error::{Error, Result};

/// Largest IDX file, raw or decompressed (the whole MNIST set is 55 MB).
pub const MAX_IDX_BYTES: u64 = 1 << 30;
/// Largest safetensors file (checkpoint or trace input).
pub const MAX_TENSOR_FILE_BYTES: u64 = 4 << 30;
/// Largest results file (a 7200-run study with couplings is about 70 MB).
pub const MAX_RESULTS_BYTES: u64 = 4 << 30;
/// Largest architecture JSON file.
pub const MAX_ARCH_JSON_BYTES: u64 = 16 << 20;

/// The contents of the regular file `path`, refused when it holds more
/// than `limit` bytes (checked from its size first, then while reading, in
/// case it grows).
pub fn read_bounded(path: &Path, limit: u64) -> Result<Vec<u8>> {
    // The type is checked before opening: opening a FIFO for reading
    // waits, forever, for a writer.
    check_regular(path)?;
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let meta = file.metadata().map_err(|e| Error::io(path, e))?;
    // Again on what was opened, in case the path was replaced meanwhile.
    refuse_irregular(path, &meta)?;
    let too_large = || Error::data(path, format!("larger than {}: refused", human_bytes(limit)));
    if meta.len() > limit {
        return Err(too_large());
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(path, e))?;
    if bytes.len() as u64 > limit {
        return Err(too_large());
    }
    Ok(bytes)
}

/// What a file that is not a regular one is, for messages: `None` for a
/// regular file.
pub(crate) fn irregular_kind(meta: &std::fs::Metadata) -> Option<&'static str> {
    match (meta.is_dir(), meta.is_file()) {
        (true, _) => Some("a directory"),
        (false, false) => Some("a device, FIFO or socket"),
        (false, true) => None,
    }
}

/// Refuses the input `path` whose metadata is `meta` unless it is a
/// regular file.
fn refuse_irregular(path: &Path, meta: &std::fs::Metadata) -> Result<()> {
    match irregular_kind(meta) {
        Some(what) => Err(Error::io(
            path,
            std::io::Error::other(format!("is {what}, expected a regular file")),
        )),
        None => Ok(()),
    }
}

/// Refuses a `path` that is not a regular file (a folder, device, FIFO or
/// socket), without opening it; a missing file is left to the caller's
/// open to report.
pub fn check_regular(path: &Path) -> Result<()> {
    match std::fs::metadata(path) {
        Ok(meta) => refuse_irregular(path, &meta),
        Err(_) => Ok(()),
    }
}

/// Reads at most `limit` bytes from `reader`; the error says it had more.
pub fn read_to_end_bounded(reader: impl Read, limit: u64) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    reader.take(limit + 1).read_to_end(&mut out)?;
    if out.len() as u64 > limit {
        return Err(std::io::Error::other(format!(
            "more than {} of data: refused",
            human_bytes(limit)
        )));
    }
    Ok(out)
}

/// `bytes` as a short human-readable size (binary units).
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["bytes", "KiB", "MiB", "GiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} bytes")
    } else {
        format!("{value:.0} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_files_and_streams_above_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, [7u8; 100]).unwrap();
        assert_eq!(read_bounded(&path, 100).unwrap().len(), 100);
        let err = read_bounded(&path, 99).unwrap_err().to_string();
        assert!(err.contains("larger than 99 bytes"), "{err}");
        let endless = std::io::repeat(0);
        let err = read_to_end_bounded(endless, 1 << 20).unwrap_err();
        assert!(err.to_string().contains("more than 1 MiB"), "{err}");
        // A device is refused before it is read.
        let err = read_bounded(Path::new("/dev/zero"), 4096)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("/dev/zero") && err.contains("expected a regular file"),
            "{err}"
        );
    }
}
