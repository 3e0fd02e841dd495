//! Write errors (§6): a sweep whose results file's file system fills up
//! or turns read-only ends with one line naming the file, and every
//! complete record stays intact; once there is room, it resumes to the
//! file an uninterrupted sweep writes. Uses a small tmpfs mounted by the
//! test (needs root; skipped with a message otherwise).

mod common;

use std::path::Path;
use std::process::Command;

use common::{assert_one_line_error, comod, pretrained_checkpoint, without_wall_time};

/// A tmpfs of `size` mounted on a fresh folder, unmounted on drop.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> Option<SmallDisk> {
        let dir = tempfile::tempdir().unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("cannot mount a tmpfs here (needs root): write-error tests skipped");
            return None;
        }
        Some(SmallDisk { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn remount(&self, options: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,{options}")])
            .arg(self.path())
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

fn sweep_args(ck: &Path, out: &Path) -> Vec<String> {
    [
        "sweep",
        "--checkpoint",
        ck.to_str().unwrap(),
        "--tasks",
        "1-7@0,2-5@3,0-9@1",
        "--repeats",
        "4",
        "--batches",
        "6",
        "--test-composites",
        "40",
        "--samples",
        "16",
        "--record-coupling",
        "--out",
        out.to_str().unwrap(),
    ]
    .map(String::from)
    .to_vec()
}

/// Every line of `path` is a whole record.
fn whole_records(path: &Path) -> usize {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.is_empty() || text.ends_with('\n'), "a torn last line");
    for line in text.lines() {
        comod::sweep::record::Record::<comod::net::Arch>::from_line(line.as_bytes())
            .expect("a whole record");
    }
    text.lines().count()
}

#[test]
fn a_full_disk_ends_the_sweep_in_one_line_with_every_record_whole_and_it_resumes() {
    let Some(disk) = SmallDisk::mount("64k") else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let ck = pretrained_checkpoint(work.path(), "1");
    let reference = work.path().join("reference.jsonl");
    let out = comod(&sweep_args(&ck, &reference), "2");
    assert!(out.status.success());
    assert!(
        std::fs::metadata(&reference).unwrap().len() > 64 << 10,
        "the sweep must overflow the disk"
    );

    let results = disk.path().join("r.jsonl");
    let out = comod(&sweep_args(&ck, &results), "2");
    assert_eq!(out.status.code(), Some(1));
    assert_one_line_error(&out, &["r.jsonl", "No space left on device"]);
    let kept = whole_records(&results);
    assert!(kept > 0, "records written before the disk filled are kept");
    let names: Vec<_> = std::fs::read_dir(disk.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 1, "no temporary or lock file left: {names:?}");

    disk.remount("size=4m");
    let out = comod(&sweep_args(&ck, &results), "2");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("({kept} already in the file")));
    assert_eq!(without_wall_time(&results), without_wall_time(&reference));
}

#[test]
fn a_read_only_file_system_is_one_line_and_the_records_stay() {
    let Some(disk) = SmallDisk::mount("4m") else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let ck = pretrained_checkpoint(work.path(), "1");
    let results = disk.path().join("r.jsonl");
    let mut args = sweep_args(&ck, &results);
    let repeats = args.iter().position(|a| a == "--repeats").unwrap();
    args[repeats + 1] = "1".into();
    assert!(comod(&args, "2").status.success());
    let before = std::fs::read(&results).unwrap();
    disk.remount("ro");
    args[repeats + 1] = "2".into();
    let out = comod(&args, "2");
    assert_eq!(out.status.code(), Some(1));
    assert_one_line_error(&out, &["r.jsonl", "Read-only file system"]);
    assert_eq!(std::fs::read(&results).unwrap(), before);
    disk.remount("rw");
}
