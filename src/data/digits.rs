//! The digit collection: loading an IDX pair, the train and test pools, and
//! the 2×2-downscaled digits that composites are made of (§1).

use std::path::{Path, PathBuf};

use crate::data::idx::{IMAGES_MAGIC, LABELS_MAGIC, read_idx};
use crate::digest::sha256_hex;
use crate::error::{Error, Result};

/// Side of an MNIST digit in pixels.
pub const DIGIT_SIDE: usize = 28;
/// Side of a downscaled digit, which is also the side of a quadrant.
pub const SMALL_SIDE: usize = 14;
/// Pixels of a downscaled digit (one quadrant).
pub const SMALL_PIXELS: usize = SMALL_SIDE * SMALL_SIDE;
/// Number of digit classes.
pub const CLASSES: usize = 10;
/// Fraction of a single IDX pair that forms the train pool (8000 of the shipped 10,000).
pub const TRAIN_FRACTION: f64 = 0.8;

/// Which pool a composite's digits come from (§1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pool {
    /// Digits used for pretraining and fine-tuning batches.
    Train,
    /// Digits used only for evaluation sets.
    Test,
}

/// Loaded digits, downscaled, with their labels and pools.
#[derive(Debug, Clone)]
pub struct Digits {
    /// Downscaled digits, `[n, 196]`, values in [0, 1].
    small: Vec<f32>,
    /// Class of each digit.
    labels: Vec<u8>,
    /// Index of the first test-pool digit; earlier ones are the train pool.
    test_start: usize,
    /// Digit indices per pool and class.
    by_class: [[Vec<u32>; CLASSES]; 2],
    /// sha256 of the digits' pixels, labels and pool split.
    sha256: String,
}

/// The IDX files found in a data folder.
struct IdxPair {
    images: PathBuf,
    labels: PathBuf,
}

/// The IDX files that [`Digits::load`] reads from `dir` (none when it
/// cannot): inputs that no output may replace.
pub fn idx_files(dir: &Path) -> Vec<PathBuf> {
    find_pairs(dir)
        .map(|pairs| {
            pairs
                .into_iter()
                .flat_map(|(_, pair)| [pair.images, pair.labels])
                .collect()
        })
        .unwrap_or_default()
}

/// Finds `<prefix>-images-idx3-ubyte[.gz]` and its labels file in `dir`.
fn find_pairs(dir: &Path) -> Result<Vec<(String, IdxPair)>> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    let mut pairs = Vec::new();
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    for name in &names {
        let base = name.strip_suffix(".gz").unwrap_or(name);
        let Some(prefix) = base.strip_suffix("-images-idx3-ubyte") else {
            continue;
        };
        let labels = [".gz", ""]
            .iter()
            .map(|ext| format!("{prefix}-labels-idx1-ubyte{ext}"))
            .find(|candidate| names.contains(candidate))
            .ok_or_else(|| {
                Error::data(
                    &dir.join(name),
                    format!("no matching labels file {prefix}-labels-idx1-ubyte[.gz] beside it"),
                )
            })?;
        if pairs.iter().any(|(p, _)| p == prefix) {
            continue;
        }
        pairs.push((
            prefix.to_string(),
            IdxPair {
                images: dir.join(name),
                labels: dir.join(labels),
            },
        ));
    }
    Ok(pairs)
}

/// 2×2 average pooling of one 28×28 u8 digit into 14×14 f32 in [0, 1].
pub fn downscale(digit: &[u8], out: &mut [f32]) {
    assert_eq!(digit.len(), DIGIT_SIDE * DIGIT_SIDE);
    assert_eq!(out.len(), SMALL_PIXELS);
    for r in 0..SMALL_SIDE {
        for c in 0..SMALL_SIDE {
            let at = |dr: usize, dc: usize| digit[(2 * r + dr) * DIGIT_SIDE + 2 * c + dc] as f32;
            out[r * SMALL_SIDE + c] = (at(0, 0) + at(0, 1) + at(1, 0) + at(1, 1)) / (4.0 * 255.0);
        }
    }
}

/// Reads and validates one images/labels pair.
fn load_pair(pair: &IdxPair) -> Result<(Vec<u8>, Vec<u8>)> {
    let images = read_idx(&pair.images, IMAGES_MAGIC)?;
    let labels = read_idx(&pair.labels, LABELS_MAGIC)?;
    if images.dims.len() != 3 || images.dims[1] != DIGIT_SIDE || images.dims[2] != DIGIT_SIDE {
        return Err(Error::data(
            &pair.images,
            format!("images are {:?}, expected [n, 28, 28]", images.dims),
        ));
    }
    if labels.dims[0] != images.dims[0] {
        return Err(Error::data(
            &pair.labels,
            format!(
                "{} labels but {} images in {}",
                labels.dims[0],
                images.dims[0],
                pair.images.display()
            ),
        ));
    }
    if let Some(i) = labels.data.iter().position(|&l| l as usize >= CLASSES) {
        return Err(Error::data(
            &pair.labels,
            format!("label {} at index {i} is not a digit 0..9", labels.data[i]),
        ));
    }
    if images.dims[0] == 0 {
        return Err(Error::data(&pair.images, "holds no images"));
    }
    Ok((images.data, labels.data))
}

impl Digits {
    /// Loads the digits of `dir` (§1). One IDX pair is split in order
    /// into the train pool (first 80 %) and the test pool; the standard
    /// MNIST pair of pairs `train-*` and `t10k-*` is used as train and test.
    pub fn load(dir: &Path) -> Result<Digits> {
        let mut pairs = find_pairs(dir)?;
        let (train, test) = match pairs.len() {
            0 => {
                return Err(Error::data(
                    dir,
                    "no IDX digits found (expected <name>-images-idx3-ubyte[.gz] and <name>-labels-idx1-ubyte[.gz])",
                ));
            }
            1 => (pairs.remove(0).1, None),
            _ => {
                let take = |pairs: &mut Vec<(String, IdxPair)>, name: &str| {
                    pairs
                        .iter()
                        .position(|(p, _)| p == name)
                        .map(|i| pairs.remove(i).1)
                };
                match (take(&mut pairs, "train"), take(&mut pairs, "t10k")) {
                    (Some(train), Some(test)) if pairs.is_empty() => (train, Some(test)),
                    _ => {
                        return Err(Error::data(
                            dir,
                            "several IDX pairs found: keep one pair, or exactly train-* and t10k-*",
                        ));
                    }
                }
            }
        };
        let (mut images, mut labels) = load_pair(&train)?;
        let test_start = match test {
            None => (labels.len() as f64 * TRAIN_FRACTION).round() as usize,
            Some(test) => {
                let (test_images, test_labels) = load_pair(&test)?;
                let start = labels.len();
                images.extend_from_slice(&test_images);
                labels.extend_from_slice(&test_labels);
                start
            }
        };
        Digits::from_raw(&images, labels, test_start).map_err(|m| Error::data(dir, m))
    }

    /// Builds the collection from raw 28×28 u8 digits; `test_start` splits
    /// the pools. Every class must occur in both pools.
    pub fn from_raw(
        images: &[u8],
        labels: Vec<u8>,
        test_start: usize,
    ) -> std::result::Result<Digits, String> {
        let n = labels.len();
        assert_eq!(images.len(), n * DIGIT_SIDE * DIGIT_SIDE);
        let mut small = vec![0.0f32; n * SMALL_PIXELS];
        for (digit, out) in images
            .chunks_exact(DIGIT_SIDE * DIGIT_SIDE)
            .zip(small.chunks_exact_mut(SMALL_PIXELS))
        {
            downscale(digit, out);
        }
        let sha256 = sha256_hex(&[images, &labels, &(test_start as u64).to_le_bytes()]);
        let mut by_class: [[Vec<u32>; CLASSES]; 2] = Default::default();
        for (i, &label) in labels.iter().enumerate() {
            let pool = usize::from(i >= test_start);
            by_class[pool][label as usize].push(i as u32);
        }
        for (pool, name) in [(0, "train"), (1, "test")] {
            if let Some(class) = (0..CLASSES).find(|&c| by_class[pool][c].is_empty()) {
                return Err(format!("the {name} pool has no digit of class {class}"));
            }
        }
        Ok(Digits {
            small,
            labels,
            test_start,
            by_class,
            sha256,
        })
    }

    /// sha256 of the digits (pixels, labels, pool split), as hex: records
    /// carry it so that results of different data never mix (§6).
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// Number of digits in both pools.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when no digits are loaded (never, for a validated collection).
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Index of the first test-pool digit.
    pub fn test_start(&self) -> usize {
        self.test_start
    }

    /// The downscaled digit `index`, 196 values in [0, 1].
    pub fn small(&self, index: u32) -> &[f32] {
        let i = index as usize;
        &self.small[i * SMALL_PIXELS..(i + 1) * SMALL_PIXELS]
    }

    /// Class of digit `index`.
    pub fn label(&self, index: u32) -> u8 {
        self.labels[index as usize]
    }

    /// Indices of the digits of `class` in `pool`.
    pub fn of_class(&self, pool: Pool, class: usize) -> &[u32] {
        &self.by_class[pool as usize][class]
    }
}
