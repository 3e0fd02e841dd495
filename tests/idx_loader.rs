//! The IDX loader (SPEC §1) reads raw and gzip files and rejects broken
//! ones with an error naming the file.

use std::io::Write;
use std::path::Path;

use comod::data::Digits;

/// IDX bytes: magic, dimensions, payload.
fn idx(magic: u32, dims: &[u32], payload: &[u8]) -> Vec<u8> {
    let mut out = magic.to_be_bytes().to_vec();
    for d in dims {
        out.extend(d.to_be_bytes());
    }
    out.extend_from_slice(payload);
    out
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

/// 50 digits (labels i mod 10, so both pools hold every class).
fn images_and_labels(n: usize) -> (Vec<u8>, Vec<u8>) {
    let images = (0..n * 784).map(|i| (i % 251) as u8).collect();
    let labels = (0..n).map(|i| (i % 10) as u8).collect();
    (images, labels)
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::write(dir.join(name), bytes).unwrap();
}

fn load_error(dir: &Path) -> String {
    Digits::load(dir).expect_err("must be rejected").to_string()
}

#[test]
fn raw_and_gzip_pairs_load_alike() {
    let (images, labels) = images_and_labels(50);
    let raw = tempfile::tempdir().unwrap();
    write(
        raw.path(),
        "x-images-idx3-ubyte",
        &idx(0x803, &[50, 28, 28], &images),
    );
    write(
        raw.path(),
        "x-labels-idx1-ubyte",
        &idx(0x801, &[50], &labels),
    );
    let gz = tempfile::tempdir().unwrap();
    write(
        gz.path(),
        "x-images-idx3-ubyte.gz",
        &gzip(&idx(0x803, &[50, 28, 28], &images)),
    );
    write(
        gz.path(),
        "x-labels-idx1-ubyte.gz",
        &gzip(&idx(0x801, &[50], &labels)),
    );
    let (a, b) = (
        Digits::load(raw.path()).unwrap(),
        Digits::load(gz.path()).unwrap(),
    );
    assert_eq!((a.len(), a.test_start()), (50, 40));
    for i in 0..50 {
        assert_eq!(a.small(i), b.small(i));
        assert_eq!(a.label(i), (i % 10) as u8);
    }
}

#[test]
fn wrong_magic_is_rejected_naming_the_file() {
    let (images, labels) = images_and_labels(50);
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "x-images-idx3-ubyte",
        &idx(0x801, &[50, 28, 28], &images),
    );
    write(
        dir.path(),
        "x-labels-idx1-ubyte",
        &idx(0x801, &[50], &labels),
    );
    let err = load_error(dir.path());
    assert!(
        err.contains("x-images-idx3-ubyte") && err.contains("bad magic 0x00000801"),
        "{err}"
    );
}

#[test]
fn truncated_file_is_rejected_naming_the_file() {
    let (images, labels) = images_and_labels(50);
    let dir = tempfile::tempdir().unwrap();
    let full = idx(0x803, &[50, 28, 28], &images);
    write(
        dir.path(),
        "x-images-idx3-ubyte.gz",
        &gzip(&full[..full.len() - 100]),
    );
    write(
        dir.path(),
        "x-labels-idx1-ubyte",
        &idx(0x801, &[50], &labels),
    );
    let err = load_error(dir.path());
    assert!(
        err.contains("x-images-idx3-ubyte.gz") && err.contains("truncated"),
        "{err}"
    );
    write(dir.path(), "x-images-idx3-ubyte.gz", &full[..3]);
    let err = load_error(dir.path());
    assert!(err.contains("truncated"), "{err}");
}

#[test]
fn count_mismatch_is_rejected_naming_the_file() {
    let (images, labels) = images_and_labels(50);
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "x-images-idx3-ubyte",
        &idx(0x803, &[50, 28, 28], &images),
    );
    write(
        dir.path(),
        "x-labels-idx1-ubyte",
        &idx(0x801, &[49], &labels[..49]),
    );
    let err = load_error(dir.path());
    assert!(
        err.contains("x-labels-idx1-ubyte") && err.contains("49 labels but 50 images"),
        "{err}"
    );
}

#[test]
fn corrupt_gzip_is_rejected_naming_the_file() {
    let (images, labels) = images_and_labels(50);
    let dir = tempfile::tempdir().unwrap();
    let mut bad = gzip(&idx(0x803, &[50, 28, 28], &images));
    let middle = bad.len() / 2;
    for b in &mut bad[20..middle] {
        *b ^= 0x5a;
    }
    write(dir.path(), "x-images-idx3-ubyte.gz", &bad);
    write(
        dir.path(),
        "x-labels-idx1-ubyte",
        &idx(0x801, &[50], &labels),
    );
    let err = load_error(dir.path());
    assert!(
        err.contains("x-images-idx3-ubyte.gz") && err.contains("corrupt gzip"),
        "{err}"
    );
}

#[test]
fn missing_files_and_bad_labels_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    assert!(load_error(dir.path()).contains("no IDX digits found"));
    let (images, mut labels) = images_and_labels(50);
    labels[3] = 12;
    write(
        dir.path(),
        "x-images-idx3-ubyte",
        &idx(0x803, &[50, 28, 28], &images),
    );
    let err = load_error(dir.path());
    assert!(err.contains("no matching labels file"), "{err}");
    write(
        dir.path(),
        "x-labels-idx1-ubyte",
        &idx(0x801, &[50], &labels),
    );
    let err = load_error(dir.path());
    assert!(err.contains("label 12 at index 3"), "{err}");
    let err = load_error(&dir.path().join("absent"));
    assert!(err.contains("absent"), "{err}");
}
