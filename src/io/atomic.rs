//! Writing files so that a failure never leaves a partial one (§6, §7):
//! every writer of comod goes through [`write_atomic_with`], which writes a
//! temporary file beside the target and renames it over the target only
//! once it is complete.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Checks, before long work, that `path` can be written: its folder exists
/// and accepts a new file (the probe file is removed again).
pub fn check_writable(path: &Path) -> Result<()> {
    if path.is_dir() {
        return Err(Error::io(
            path,
            std::io::Error::other("is a directory, expected a file path"),
        ));
    }
    let probe = hidden_sibling(path, "probe");
    std::fs::File::create(&probe)
        .and_then(|_| std::fs::remove_file(&probe))
        .map_err(|e| Error::io(path, e))
}

/// A hidden file name beside `path`, unique to this process, with the
/// target's extension kept last (some writers choose the format by it).
fn hidden_sibling(path: &Path, tag: &str) -> PathBuf {
    let mut name = std::ffi::OsString::from(".");
    name.push(path.file_stem().unwrap_or_default());
    name.push(format!(".{tag}{}", std::process::id()));
    if let Some(extension) = path.extension() {
        name.push(".");
        name.push(extension);
    }
    path.with_file_name(name)
}

/// Has `write` create a temporary file beside `path` (the path it is
/// given), then renames it over `path`; on any failure the temporary file
/// is removed and the error names `path`.
pub fn write_atomic_with(
    path: &Path,
    write: impl FnOnce(&Path) -> std::result::Result<(), String>,
) -> Result<()> {
    if path.file_name().is_none() {
        return Err(Error::io(path, std::io::Error::other("not a file path")));
    }
    let tmp = hidden_sibling(path, "tmp");
    let result = write(&tmp).and_then(|()| std::fs::rename(&tmp, path).map_err(|e| e.to_string()));
    result.map_err(|message| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(path, std::io::Error::other(message))
    })
}

/// Writes `bytes` to `path` atomically, synced to disk before the rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_with(path, |tmp| {
        let mut file = std::fs::File::create(tmp).map_err(|e| e.to_string())?;
        file.write_all(bytes)
            .and_then(|()| file.sync_all())
            .map_err(|e| e.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_write_leaves_neither_target_nor_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.png");
        let err = write_atomic_with(&target, |tmp| {
            std::fs::write(tmp, b"half").unwrap();
            Err("drawing failed".into())
        })
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("out.png") && err.contains("drawing failed"),
            "{err}"
        );
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        write_atomic(&target, b"whole").unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"whole");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
