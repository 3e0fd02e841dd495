//! The IDX loader (§1) reads raw and gzip files and rejects broken
//! ones with an error naming the file.

use std::io::Write;

use comod::data::Digits;
use tempfile::TempDir;

const IMAGES: &str = "x-images-idx3-ubyte";
const LABELS: &str = "x-labels-idx1-ubyte";
const N: usize = 50;

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

/// A valid image file of N digits.
fn images() -> Vec<u8> {
    let pixels: Vec<u8> = (0..N * 784).map(|i| (i % 251) as u8).collect();
    idx(0x803, &[N as u32, 28, 28], &pixels)
}

/// Labels i mod 10, so both pools hold every class.
fn labels_payload() -> Vec<u8> {
    (0..N).map(|i| (i % 10) as u8).collect()
}

fn labels() -> Vec<u8> {
    idx(0x801, &[N as u32], &labels_payload())
}

/// A folder holding the named files.
fn folder(files: &[(&str, Vec<u8>)]) -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes) in files {
        std::fs::write(dir.path().join(name), bytes).unwrap();
    }
    dir
}

/// Loads the folder, expects an error containing every needle.
fn assert_rejected(files: &[(&str, Vec<u8>)], needles: &[&str]) {
    let dir = folder(files);
    let err = Digits::load(dir.path())
        .expect_err("must be rejected")
        .to_string();
    for needle in needles {
        assert!(err.contains(needle), "{needle:?} not in {err}");
    }
}

#[test]
fn raw_and_gzip_pairs_load_alike() {
    let raw = folder(&[(IMAGES, images()), (LABELS, labels())]);
    let gz = folder(&[
        ("x-images-idx3-ubyte.gz", gzip(&images())),
        ("x-labels-idx1-ubyte.gz", gzip(&labels())),
    ]);
    let (a, b) = (
        Digits::load(raw.path()).unwrap(),
        Digits::load(gz.path()).unwrap(),
    );
    assert_eq!((a.len(), a.test_start()), (N, 40));
    for i in 0..N as u32 {
        assert_eq!(a.small(i), b.small(i));
        assert_eq!(a.label(i), (i % 10) as u8);
    }
}

#[test]
fn wrong_magic_is_rejected_naming_the_file() {
    let mut bad = images();
    bad[3] = 0x01;
    assert_rejected(
        &[(IMAGES, bad), (LABELS, labels())],
        &[IMAGES, "bad magic 0x00000801"],
    );
}

#[test]
fn truncated_file_is_rejected_naming_the_file() {
    let full = images();
    let cut = gzip(&full[..full.len() - 100]);
    assert_rejected(
        &[("x-images-idx3-ubyte.gz", cut), (LABELS, labels())],
        &["x-images-idx3-ubyte.gz", "truncated"],
    );
    assert_rejected(
        &[(IMAGES, full[..3].to_vec()), (LABELS, labels())],
        &[IMAGES, "truncated"],
    );
}

#[test]
fn count_mismatch_is_rejected_naming_the_file() {
    let short = idx(0x801, &[N as u32 - 1], &labels_payload()[..N - 1]);
    assert_rejected(
        &[(IMAGES, images()), (LABELS, short)],
        &[LABELS, "49 labels but 50 images"],
    );
}

#[test]
fn corrupt_gzip_is_rejected_naming_the_file() {
    let mut bad = gzip(&images());
    let middle = bad.len() / 2;
    for b in &mut bad[20..middle] {
        *b ^= 0x5a;
    }
    assert_rejected(
        &[("x-images-idx3-ubyte.gz", bad), (LABELS, labels())],
        &["x-images-idx3-ubyte.gz", "corrupt gzip"],
    );
}

#[test]
fn missing_files_and_bad_labels_are_reported() {
    assert_rejected(&[], &["no IDX digits found"]);
    assert_rejected(&[(IMAGES, images())], &[IMAGES, "no matching labels file"]);
    let mut payload = labels_payload();
    payload[3] = 12;
    let bad = idx(0x801, &[N as u32], &payload);
    assert_rejected(
        &[(IMAGES, images()), (LABELS, bad)],
        &[LABELS, "label 12 at index 3"],
    );
    let err = Digits::load(std::path::Path::new("/nonexistent/absent"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("/nonexistent/absent"), "{err}");
}

/// The shipped Fashion-MNIST (§1) loads as any IDX pair and is what its
/// PROVENANCE.md says: the files' sha256, the first 20 labels and every
/// class count of both pools, read from that file.
#[test]
fn the_shipped_fashion_mnist_matches_its_provenance() {
    use sha2::{Digest, Sha256};
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data/fashion");
    let provenance = std::fs::read_to_string(dir.join("PROVENANCE.md")).unwrap();
    for name in ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"] {
        let digest = Sha256::digest(std::fs::read(dir.join(name)).unwrap());
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        assert!(
            provenance.contains(&format!("{hex}  {name}")),
            "{name}: {hex}"
        );
    }
    let fashion = Digits::load(&dir).unwrap();
    assert_eq!((fashion.len(), fashion.test_start()), (10_000, 8_000));
    let first: Vec<u8> = provenance
        .split("The first 20 labels are ")
        .nth(1)
        .unwrap()
        .split('.')
        .next()
        .unwrap()
        .split_whitespace()
        .map(|l| l.parse().unwrap())
        .collect();
    let loaded: Vec<u8> = (0..20).map(|i| fashion.label(i)).collect();
    assert_eq!(loaded, first);
    for (pool, line) in [
        (comod::data::Pool::Train, "train pool class counts:"),
        (comod::data::Pool::Test, "test pool class counts:"),
    ] {
        let counts = provenance
            .split(line)
            .nth(1)
            .unwrap()
            .lines()
            .next()
            .unwrap();
        for entry in counts.split_whitespace() {
            let (class, count) = entry.split_once(':').unwrap();
            let class: usize = class.parse().unwrap();
            assert_eq!(
                fashion.of_class(pool, class).len(),
                count.parse::<usize>().unwrap(),
                "{line} {class}"
            );
        }
    }
}
