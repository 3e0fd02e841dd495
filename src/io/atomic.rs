//! Writing files so that a failure never leaves a partial one (§6, §7):
//! every writer of comod goes through [`write_atomic_with`], which writes a
//! temporary file beside the target and renames it over the target only
//! once it is complete. Only regular files are ever replaced, and an
//! output is never one of the command's inputs.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};
use crate::io::read::irregular_kind;

/// Longest file name most file systems accept, in bytes.
const MAX_NAME_BYTES: usize = 255;

/// Checks that `path` may be replaced by a written file: it is absent or
/// a regular file, never a folder, device, FIFO or socket (which a rename
/// would replace, e.g. `/dev/null`).
pub fn check_output(path: &Path) -> Result<()> {
    let refuse = |what: &str| {
        Err(Error::io(
            path,
            std::io::Error::other(format!(
                "is {what}, not a regular file: refusing to replace it"
            )),
        ))
    };
    match std::fs::metadata(path)
        .ok()
        .as_ref()
        .and_then(irregular_kind)
    {
        Some(what) => refuse(what),
        None => Ok(()),
    }
}

/// Whether `a` and `b` describe one file (the same inode, so also
/// through links; elsewhere than Unix, the same size and times).
pub(crate) fn same_inode(a: &std::fs::Metadata, b: &std::fs::Metadata) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        a.dev() == b.dev() && a.ino() == b.ino()
    }
    #[cfg(not(unix))]
    {
        a.len() == b.len() && a.modified().ok() == b.modified().ok()
    }
}

/// Whether the paths `a` and `b` are one file; false when either does not
/// exist.
fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => same_inode(&x, &y),
        _ => false,
    }
}

/// Refuses an `output` that is one of the command's `inputs` (each named
/// by its flag), which writing would destroy.
pub fn check_not_input(output: &Path, inputs: &[(&str, &Path)]) -> Result<()> {
    match inputs.iter().find(|(_, input)| same_file(output, input)) {
        Some((flag, input)) => Err(Error::io(
            output,
            std::io::Error::other(format!(
                "is the same file as {flag} {}: refusing to overwrite an input",
                input.display()
            )),
        )),
        None => Ok(()),
    }
}

/// The file `path` names, whatever its spelling: the canonical path of
/// the file (or, when it does not exist yet, of its folder, joined with
/// its name); `path` itself when neither exists. Two spellings of one file
/// (a symbolic link, `./`, `..`) give one identity, as a lock needs.
pub(crate) fn identity(path: &Path) -> PathBuf {
    if let Ok(real) = std::fs::canonicalize(path) {
        return real;
    }
    match (path.parent(), path.file_name()) {
        (Some(dir), Some(name)) => {
            let dir = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            };
            std::fs::canonicalize(dir).map_or_else(|_| path.to_path_buf(), |d| d.join(name))
        }
        _ => path.to_path_buf(),
    }
}

/// The file a write to `path` must replace: the target of a symbolic
/// link (a rename onto the link would replace the link and leave its
/// target stale), else `path` as given.
fn write_target(path: &Path) -> PathBuf {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => identity(path),
        _ => path.to_path_buf(),
    }
}

/// Creates the folder `path` is to be written in, with its parents, when
/// it does not exist yet (a results file in a new folder, e.g. a cluster
/// job's `results/shard-3.jsonl`); the error names the folder.
pub fn create_parent(path: &Path) -> Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() && !dir.is_dir() => {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))
        }
        _ => Ok(()),
    }
}

/// Checks, before long work, that `path` can be written: it may be
/// replaced ([`check_output`]), its folder exists (created if need be)
/// and accepts a new file (the probe file is removed again).
pub fn check_writable(path: &Path) -> Result<()> {
    check_output(path)?;
    create_parent(path)?;
    let probe = hidden_sibling(path, "probe");
    std::fs::File::create(&probe)
        .and_then(|_| std::fs::remove_file(&probe))
        .map_err(|e| Error::io(path, e))
}

/// This machine's name (`/proc/sys/kernel/hostname`, else `$HOSTNAME`).
pub(crate) fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "this host".into())
}

/// A short tag of this machine in temporary file names: on a file system
/// that several nodes share, a process id means something only on the
/// node that wrote it.
fn host_tag() -> String {
    crate::digest::sha256_hex(&[host_name().as_bytes()])[..8].to_string()
}

/// A hidden file name beside `path`, unique to this process (on this
/// host) and call,
/// with the target's extension kept last (some writers choose the format
/// by it); the target's stem is left out where the name would grow past
/// what file systems accept.
fn hidden_sibling(path: &Path, tag: &str) -> PathBuf {
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let unique = format!(
        ".{tag}{}.{}-{}",
        std::process::id(),
        host_tag(),
        CALLS.fetch_add(1, Ordering::Relaxed)
    );
    let stem = path.file_stem().unwrap_or_default();
    let extension = path.extension().filter(|e| e.len() <= 16);
    let extension_len = extension.map_or(0, |e| e.len() + 1);
    let mut name = std::ffi::OsString::from(".");
    if 1 + stem.len() + unique.len() + extension_len <= MAX_NAME_BYTES {
        name.push(stem);
    } else {
        name.push("comod");
    }
    name.push(unique);
    if let Some(extension) = extension {
        name.push(".");
        name.push(extension);
    }
    path.with_file_name(name)
}

/// Removes the temporary files beside `path` that processes of this host
/// no longer running left behind when they were killed mid-write (where
/// `/proc` tells which processes run). Another host's temporaries, or
/// ones whose name does not say the host, are never touched: their
/// writer may be running on another node of a shared file system.
fn remove_stale_temporaries(path: &Path) {
    let (Some(dir), Some(stem)) = (path.parent(), path.file_stem()) else {
        return;
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    if !Path::new("/proc/self").exists() {
        return;
    }
    let prefixes = [
        format!(".{}.tmp", stem.to_string_lossy()),
        ".comod.tmp".to_string(),
    ];
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let this_host = host_tag();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = prefixes.iter().find_map(|p| name.strip_prefix(p.as_str())) else {
            continue;
        };
        let writer = rest.split('-').next().unwrap_or_default();
        let Some((pid, host)) = writer.split_once('.') else {
            continue;
        };
        if host == this_host && pid.parse::<u32>().is_ok() && !Path::new("/proc").join(pid).exists()
        {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Has `write` create a temporary file beside `path` (the path it is
/// given), then renames it over `path` (over the file a symbolic link
/// `path` points to); on any failure the temporary file
/// is removed and the error names `path`. Temporary files of killed
/// writers of the same target are removed first.
pub fn write_atomic_with(
    path: &Path,
    write: impl FnOnce(&Path) -> std::result::Result<(), String>,
) -> Result<()> {
    if path.file_name().is_none() {
        return Err(Error::io(path, std::io::Error::other("not a file path")));
    }
    check_output(path)?;
    create_parent(path)?;
    let target = write_target(path);
    remove_stale_temporaries(&target);
    let tmp = hidden_sibling(&target, "tmp");
    let result =
        write(&tmp).and_then(|()| std::fs::rename(&tmp, &target).map_err(|e| e.to_string()));
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

    #[test]
    fn temporaries_of_dead_writers_of_this_host_are_removed_and_others_kept() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("r.jsonl");
        // No process has a pid above the kernel's maximum (2^22).
        let host = host_tag();
        let dead = dir.path().join(format!(".r.tmp4294967.{host}-0.jsonl"));
        let live = dir
            .path()
            .join(format!(".r.tmp{}.{host}-99.jsonl", std::process::id()));
        let other = dir.path().join(format!(".q.tmp4294967.{host}-0.jsonl"));
        // Another node's writer, and one whose name does not say its host.
        let elsewhere = dir.path().join(".r.tmp4294967.0badc0de-0.jsonl");
        let unknown = dir.path().join(".r.tmp4294967-0.jsonl");
        for file in [&dead, &live, &other, &elsewhere, &unknown] {
            std::fs::write(file, b"half").unwrap();
        }
        write_atomic(&target, b"whole").unwrap();
        assert!(!dead.exists());
        assert!(live.exists() && other.exists() && elsewhere.exists() && unknown.exists());
    }

    #[test]
    fn devices_and_folders_are_never_replaced() {
        for path in [Path::new("/dev/null"), Path::new("/tmp")] {
            let err = write_atomic(path, b"x").unwrap_err().to_string();
            assert!(err.contains("not a regular file"), "{err}");
            assert!(check_writable(path).is_err());
        }
        assert!(Path::new("/dev/null").exists() && !Path::new("/dev/null").is_file());
    }

    #[test]
    fn a_missing_folder_is_created_and_one_that_cannot_be_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("results/deeper/r.jsonl");
        check_writable(&target).unwrap();
        write_atomic(&target, b"whole").unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"whole");
        let blocker = dir.path().join("file");
        std::fs::write(&blocker, b"x").unwrap();
        let err = write_atomic(&blocker.join("sub/r.jsonl"), b"x")
            .unwrap_err()
            .to_string();
        assert!(err.contains("file/sub"), "{err}");
    }

    #[test]
    fn a_write_through_a_link_replaces_its_target_and_keeps_the_link() {
        let dir = tempfile::tempdir().unwrap();
        let (target, link) = (dir.path().join("r.jsonl"), dir.path().join("link.jsonl"));
        std::fs::write(&target, b"old").unwrap();
        std::os::unix::fs::symlink(&target, &link).unwrap();
        write_atomic(&link, b"new").unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"new");
        assert!(
            std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(identity(&link), identity(&target));
        let fresh = dir.path().join("sub/../fresh.jsonl");
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        assert_eq!(identity(&fresh), identity(dir.path()).join("fresh.jsonl"));
    }

    #[test]
    fn a_name_of_the_longest_length_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir
            .path()
            .join(format!("{}.jsonl", "r".repeat(MAX_NAME_BYTES - 6)));
        check_writable(&target).unwrap();
        write_atomic(&target, b"whole").unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"whole");
    }

    #[test]
    fn an_input_is_recognised_through_another_path() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.json");
        std::fs::write(&input, b"{}").unwrap();
        let other = dir.path().join(".").join("in.json");
        let err = check_not_input(&other, &[("--arch", &input)])
            .unwrap_err()
            .to_string();
        assert!(err.contains("--arch") && err.contains("in.json"), "{err}");
        assert!(check_not_input(&dir.path().join("new"), &[("--arch", &input)]).is_ok());
    }
}
