//! Advisory locks on results files (§6): two processes that append to one
//! results file would both run the same runs and leave duplicates, so a
//! writer takes an exclusive lock on `FILE.lock` first; a second writer is
//! refused with the holder's process, host, command and age.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::io::atomic::{create_parent, host_name, identity, same_inode};

/// An exclusive lock on a file, held until dropped (the lock file is then
/// removed). The lock is released by the OS if the process dies.
#[derive(Debug)]
pub struct FileLock {
    file: File,
    path: PathBuf,
}

/// The lock file of `target`: its name with `.lock` appended.
pub fn lock_path(target: &Path) -> PathBuf {
    let mut name = target.file_name().unwrap_or_default().to_os_string();
    name.push(".lock");
    target.with_file_name(name)
}

/// Who this process is, as the lock file records it.
fn holder() -> String {
    let command: Vec<String> = std::env::args().collect();
    format!(
        "pid {} on {} ({})",
        std::process::id(),
        host_name(),
        command.join(" ")
    )
}

impl FileLock {
    /// Takes the lock of `target` without waiting; fails, naming the
    /// holder, when another process holds it.
    pub fn acquire(target: &Path) -> Result<FileLock> {
        FileLock::take(target, false)
    }

    /// Takes the lock of `target`, waiting while another process holds
    /// it: for work that many processes may start at once and one should
    /// do, e.g. the shards of a report pretraining one checkpoint.
    pub fn wait(target: &Path) -> Result<FileLock> {
        FileLock::take(target, true)
    }

    fn take(target: &Path, wait: bool) -> Result<FileLock> {
        create_parent(target)?;
        // One lock per file, however it is spelt (a link, `./`, `..`).
        let path = lock_path(&identity(target));
        loop {
            let mut file = OpenOptions::new()
                .create(true)
                .truncate(false)
                .read(true)
                .write(true)
                .open(&path)
                .map_err(|e| Error::io(&path, e))?;
            let taken = match wait {
                true => file.lock().map_err(std::fs::TryLockError::Error),
                false => file.try_lock(),
            };
            match taken {
                Ok(()) => {}
                Err(std::fs::TryLockError::WouldBlock) => {
                    let mut who = String::new();
                    let _ = file.read_to_string(&mut who);
                    let age = file
                        .metadata()
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| t.elapsed().ok())
                        .map_or(String::new(), |d| format!(", for {} s", d.as_secs()));
                    let who = match who.trim() {
                        "" => "another process".to_string(),
                        w => w.to_string(),
                    };
                    return Err(Error::io(
                        target,
                        std::io::Error::other(format!(
                            "in use by {who}{age} (lock {}): wait for it to finish, or write elsewhere",
                            path.display()
                        )),
                    ));
                }
                Err(std::fs::TryLockError::Error(e)) => return Err(Error::io(&path, e)),
            }
            // The holder we waited on may have removed the file we opened:
            // the lock counts only on the file that is at `path` now.
            let current = (file.metadata(), std::fs::metadata(&path));
            if !matches!(current, (Ok(a), Ok(b)) if same_inode(&a, &b)) {
                continue;
            }
            file.set_len(0)
                .and_then(|()| file.rewind())
                .and_then(|()| file.write_all(holder().as_bytes()))
                .and_then(|()| file.flush())
                .map_err(|e| Error::io(&path, e))?;
            return Ok(FileLock { file, path });
        }
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        // Removed while still held, so a waiting process re-opens a new one.
        let _ = std::fs::remove_file(&self.path);
        let _ = self.file.unlock();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_naming_the_holder_and_freed_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("results.jsonl");
        let held = FileLock::acquire(&target).unwrap();
        let err = FileLock::acquire(&target).unwrap_err().to_string();
        let pid = format!("pid {}", std::process::id());
        assert!(err.contains(&pid) && err.contains("results.jsonl"), "{err}");
        drop(held);
        assert!(!lock_path(&target).exists());
        let again = FileLock::acquire(&target).unwrap();
        assert!(
            std::fs::read_to_string(lock_path(&target))
                .unwrap()
                .contains(&pid)
        );
        drop(again);
    }

    #[test]
    fn a_waiting_lock_is_taken_once_the_holder_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("ck.safetensors");
        let held = FileLock::acquire(&target).unwrap();
        let waiter = {
            let target = target.clone();
            std::thread::spawn(move || FileLock::wait(&target).map(|_| ()))
        };
        std::thread::sleep(std::time::Duration::from_millis(100));
        assert!(!waiter.is_finished(), "waits while the lock is held");
        drop(held);
        waiter.join().unwrap().unwrap();
    }

    #[test]
    fn a_link_to_a_locked_file_is_locked() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("r.jsonl");
        std::fs::write(&target, b"").unwrap();
        let link = dir.path().join("link.jsonl");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let _held = FileLock::acquire(&target).unwrap();
        assert!(FileLock::acquire(&link).is_err());
        assert!(FileLock::acquire(&dir.path().join(".").join("r.jsonl")).is_err());
    }
}
