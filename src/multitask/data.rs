//! The multi-task benchmarks of §8 and their loaders: `mnist-attributes`
//! on the shipped digits, CIFAR-100 (binary version) and CelebA (aligned
//! JPEGs, attribute and partition lists).
//!
//! Images are channel-last `[n, H, W, C]` in [0, 1]; labels are `[n, tasks]`
//! bytes, 0 or 1. The two external data sets are held as bytes and turned
//! into f32 only for the examples a run draws.

use std::path::{Path, PathBuf};

use rand::RngExt;
use rand::seq::SliceRandom;
use rayon::prelude::*;

use crate::conv::Shape;
use crate::data::composite::{CANVAS_SIDE, CompositeKind, CompositeSet, NOISE_STD};
use crate::data::digits::idx_files;
use crate::data::task::QUADRANTS;
use crate::data::{Digits, Pool, SHIPPED_DATA_DIR};
use crate::digest::sha256_hex;
use crate::error::{Error, Result};
use crate::io::read::{MAX_IDX_BYTES, read_bounded};
use crate::rng::rng_for;

/// The multi-task benchmarks (§8).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Benchmark {
    /// Composites of four digits, 8 tasks: the digit in quadrant q is
    /// even (tasks 0–3), is ≥ 5 (tasks 4–7).
    MnistAttributes,
    /// CIFAR-100, 20 tasks: the image is of coarse class k.
    Cifar100,
    /// CelebA, 40 tasks: its 40 binary attributes.
    Celeba,
}

crate::named!(Benchmark {
    Benchmark::MnistAttributes => "mnist-attributes",
    Benchmark::Cifar100 => "cifar100",
    Benchmark::Celeba => "celeba",
});

impl Benchmark {
    /// The built-in architecture that fits its images.
    pub fn default_arch(self) -> &'static str {
        match self {
            Benchmark::MnistAttributes => "conv-mnist",
            Benchmark::Cifar100 => "conv-cifar",
            Benchmark::Celeba => "conv-celeba",
        }
    }
}

/// Where a benchmark's data come from (§8).
#[derive(Clone, Debug, PartialEq)]
pub struct BenchmarkSource {
    /// The benchmark.
    pub benchmark: Benchmark,
    /// Its folder; `None`: the shipped data, for the benchmarks built on them.
    pub data: Option<PathBuf>,
    /// Only the first images of each split (external data sets).
    pub limit: Option<usize>,
}

impl BenchmarkSource {
    /// The benchmark's folder: the one given, or the shipped digits for
    /// `mnist-attributes`; the others do not ship with comod.
    pub fn dir(&self) -> Result<PathBuf> {
        match (&self.data, self.benchmark) {
            (Some(dir), _) => Ok(dir.clone()),
            (None, Benchmark::MnistAttributes) => Ok(PathBuf::from(SHIPPED_DATA_DIR)),
            (None, other) => Err(Error::option(
                "--data",
                "(none)",
                format!(
                    "{} does not ship with comod; point --data at its folder ({})",
                    other.name(),
                    match other {
                        Benchmark::Cifar100 => "train.bin and test.bin of the binary version",
                        _ => "list_attr_celeba.txt, list_eval_partition.txt and img_align_celeba/",
                    }
                ),
            )),
        }
    }

    /// Loads the benchmark.
    pub fn load(&self) -> Result<MultitaskData> {
        if self.limit == Some(0) {
            return Err(Error::option(
                "--limit",
                0,
                "keep at least one image of each split",
            ));
        }
        MultitaskData::load(self.benchmark, &self.dir()?, self.limit)
    }
}

/// Side of a CIFAR-100 image.
pub const CIFAR_SIDE: usize = 32;
/// Bytes of one CIFAR-100 record: coarse label, fine label, 3×32×32 pixels.
pub const CIFAR_RECORD: usize = 2 + 3 * CIFAR_SIDE * CIFAR_SIDE;
/// Coarse classes of CIFAR-100: its tasks.
pub const CIFAR_COARSE: usize = 20;
/// Fine classes of CIFAR-100.
pub const CIFAR_FINE: usize = 100;
/// Side CelebA's aligned images are resized to (§8).
pub const CELEBA_SIDE: usize = 64;
/// Attributes of CelebA: its tasks.
pub const CELEBA_ATTRIBUTES: usize = 40;
/// Largest CelebA text file read.
const MAX_LIST_BYTES: u64 = 64 << 20;

/// Labelled images in f32, ready for a network.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Images {
    /// `[n, H, W, C]` in [0, 1] (plus noise for composites).
    pub images: Vec<f32>,
    /// `[n, tasks]`, 0 or 1.
    pub labels: Vec<u8>,
}

impl Images {
    /// Number of examples.
    pub fn len(&self, tasks: usize) -> usize {
        self.labels.len() / tasks
    }
}

/// Labelled images held as bytes (the external data sets).
#[derive(Clone, Debug, Default)]
struct Stored {
    pixels: Vec<u8>,
    labels: Vec<u8>,
}

#[derive(Debug)]
enum Source {
    Digits(Box<Digits>),
    Fixed { train: Stored, test: Stored },
}

/// A benchmark's data: where examples come from, their shape, the tasks.
#[derive(Debug)]
pub struct MultitaskData {
    /// Which benchmark.
    pub benchmark: Benchmark,
    /// Shape of one image.
    pub shape: Shape,
    /// Task names, in head order.
    pub tasks: Vec<String>,
    source: Source,
    sha256: String,
}

impl MultitaskData {
    /// Loads `benchmark` from `dir` (§8): the IDX digits for
    /// `mnist-attributes`, `train.bin`/`test.bin` for CIFAR-100,
    /// `list_attr_celeba.txt`, `list_eval_partition.txt` and the aligned
    /// JPEGs (in `img_align_celeba/` or `dir` itself) for CelebA.
    /// `limit` keeps the first `limit` images of each split.
    pub fn load(benchmark: Benchmark, dir: &Path, limit: Option<usize>) -> Result<MultitaskData> {
        match benchmark {
            Benchmark::MnistAttributes => Ok(MultitaskData::mnist_attributes(Digits::load(dir)?)),
            Benchmark::Cifar100 => {
                let train = load_cifar(&dir.join("train.bin"), limit)?;
                let test = load_cifar(&dir.join("test.bin"), limit)?;
                let tasks = (0..CIFAR_COARSE).map(|k| format!("coarse{k:02}")).collect();
                Ok(MultitaskData::fixed(
                    benchmark, CIFAR_SIDE, tasks, train, test,
                ))
            }
            Benchmark::Celeba => {
                let (tasks, train, test) = load_celeba(dir, limit)?;
                Ok(MultitaskData::fixed(
                    benchmark,
                    CELEBA_SIDE,
                    tasks,
                    train,
                    test,
                ))
            }
        }
    }

    /// The files `benchmark` reads from `dir` (the CelebA images aside):
    /// what a command writing beside them must not overwrite.
    pub fn files(benchmark: Benchmark, dir: &Path) -> Vec<PathBuf> {
        match benchmark {
            Benchmark::MnistAttributes => idx_files(dir),
            Benchmark::Cifar100 => vec![dir.join("train.bin"), dir.join("test.bin")],
            Benchmark::Celeba => vec![
                dir.join("list_attr_celeba.txt"),
                dir.join("list_eval_partition.txt"),
            ],
        }
    }

    /// The `mnist-attributes` benchmark on `digits`.
    pub fn mnist_attributes(digits: Digits) -> MultitaskData {
        let tasks = (0..QUADRANTS)
            .map(|q| format!("even@{q}"))
            .chain((0..QUADRANTS).map(|q| format!("ge5@{q}")))
            .collect();
        MultitaskData {
            benchmark: Benchmark::MnistAttributes,
            shape: Shape {
                channels: 1,
                height: CANVAS_SIDE,
                width: CANVAS_SIDE,
            },
            tasks,
            sha256: digits.sha256().to_string(),
            source: Source::Digits(Box::new(digits)),
        }
    }

    fn fixed(
        benchmark: Benchmark,
        side: usize,
        tasks: Vec<String>,
        train: Stored,
        test: Stored,
    ) -> MultitaskData {
        let sha256 = sha256_hex(&[&train.pixels, &train.labels, &test.pixels, &test.labels]);
        MultitaskData {
            benchmark,
            shape: Shape {
                channels: 3,
                height: side,
                width: side,
            },
            tasks,
            source: Source::Fixed { train, test },
            sha256,
        }
    }

    /// sha256 of the data as loaded (recorded with every result).
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// Number of tasks.
    pub fn task_count(&self) -> usize {
        self.tasks.len()
    }

    /// The index of the task named `name`.
    pub fn task_index(&self, name: &str) -> Result<usize> {
        self.tasks.iter().position(|t| t == name).ok_or_else(|| {
            Error::option(
                "--tasks",
                name,
                format!(
                    "is not a task of {} (tasks: {})",
                    self.benchmark.name(),
                    self.tasks.join(", ")
                ),
            )
        })
    }

    /// `n` examples for all tasks from `pool`, drawn afresh for `seed`:
    /// new composites of the digits, or a seeded draw of the stored split.
    pub fn draw(&self, pool: Pool, n: usize, seed: u64) -> Images {
        match &self.source {
            Source::Digits(digits) => composites(digits, pool, n, seed),
            Source::Fixed { train, test } => {
                let stored = if pool == Pool::Train { train } else { test };
                let count = stored.labels.len() / self.tasks.len();
                let mut rng = rng_for(seed, &["draw".into()]);
                let rows: Vec<usize> = (0..n).map(|_| rng.random_range(0..count)).collect();
                self.gather(stored, &rows)
            }
        }
    }

    /// `n` examples for task `t` from `pool`: composites for the digits;
    /// for a stored split, positives and negatives in turn (balanced), so
    /// that chance is 0.5 whatever the attribute's frequency.
    pub fn draw_task(&self, t: usize, pool: Pool, n: usize, seed: u64) -> Result<Images> {
        let (train, test) = match &self.source {
            Source::Digits(_) => return Ok(self.draw(pool, n, seed)),
            Source::Fixed { train, test } => (train, test),
        };
        let stored = if pool == Pool::Train { train } else { test };
        let tasks = self.tasks.len();
        let (mut positives, mut negatives) = (Vec::new(), Vec::new());
        for (i, labels) in stored.labels.chunks_exact(tasks).enumerate() {
            if labels[t] == 1 {
                positives.push(i)
            } else {
                negatives.push(i)
            }
        }
        if positives.is_empty() || negatives.is_empty() {
            return Err(Error::Data {
                path: PathBuf::from(self.benchmark.name()),
                message: format!(
                    "task {} has {} positive and {} negative examples in the {} split: both are needed",
                    self.tasks[t],
                    positives.len(),
                    negatives.len(),
                    if pool == Pool::Train {
                        "training"
                    } else {
                        "test"
                    }
                ),
            });
        }
        let mut rng = rng_for(seed, &["draw-task".into(), t.into()]);
        positives.shuffle(&mut rng);
        negatives.shuffle(&mut rng);
        let rows: Vec<usize> = (0..n)
            .map(|i| {
                let side = if i % 2 == 0 { &positives } else { &negatives };
                side[(i / 2) % side.len()]
            })
            .collect();
        Ok(self.gather(stored, &rows))
    }

    fn gather(&self, stored: &Stored, rows: &[usize]) -> Images {
        let (len, tasks) = (self.shape.len(), self.tasks.len());
        let mut images = vec![0.0f32; rows.len() * len];
        images
            .par_chunks_mut(len)
            .zip(rows.par_iter())
            .for_each(|(out, &r)| {
                for (o, &p) in out.iter_mut().zip(&stored.pixels[r * len..(r + 1) * len]) {
                    *o = f32::from(p) / 255.0;
                }
            });
        let labels = rows
            .iter()
            .flat_map(|&r| stored.labels[r * tasks..(r + 1) * tasks].iter().copied())
            .collect();
        Images { images, labels }
    }
}

/// `n` `mnist-attributes` composites: a digit in every quadrant, with
/// the background noise of §1; labels even@q then ≥5@q.
fn composites(digits: &Digits, pool: Pool, n: usize, seed: u64) -> Images {
    let set = CompositeSet::generate(digits, CompositeKind::Filled, pool, n, seed, NOISE_STD);
    let labels = set
        .sources
        .iter()
        .flat_map(|sources| {
            let classes: Vec<u8> = sources.iter().map(|&s| digits.label(s)).collect();
            let even = classes
                .iter()
                .map(|c| u8::from(c % 2 == 0))
                .collect::<Vec<_>>();
            let high = classes
                .iter()
                .map(|&c| u8::from(c >= 5))
                .collect::<Vec<_>>();
            even.into_iter().chain(high)
        })
        .collect();
    Images {
        images: set.images,
        labels,
    }
}

/// Reads a CIFAR-100 binary file (§8): records of a coarse-label byte
/// (< 20), a fine-label byte (< 100) and 3072 channel-major pixel bytes;
/// pixels are stored channel-last, labels as the 20 one-vs-rest tasks.
fn load_cifar(path: &Path, limit: Option<usize>) -> Result<Stored> {
    let bytes = read_bounded(path, MAX_IDX_BYTES)?;
    parse_cifar(&bytes, limit).map_err(|m| Error::data(path, m))
}

/// The parser of [`load_cifar`], on the file's bytes.
pub fn parse_cifar_records(bytes: &[u8]) -> std::result::Result<(Vec<u8>, Vec<u8>), String> {
    let stored = parse_cifar(bytes, None)?;
    Ok((stored.pixels, stored.labels))
}

fn parse_cifar(bytes: &[u8], limit: Option<usize>) -> std::result::Result<Stored, String> {
    if bytes.is_empty() || !bytes.len().is_multiple_of(CIFAR_RECORD) {
        return Err(format!(
            "{} bytes is not a whole number of {CIFAR_RECORD}-byte CIFAR-100 records",
            bytes.len()
        ));
    }
    let count = (bytes.len() / CIFAR_RECORD).min(limit.unwrap_or(usize::MAX));
    let plane = CIFAR_SIDE * CIFAR_SIDE;
    let mut stored = Stored {
        pixels: vec![0; count * 3 * plane],
        labels: vec![0; count * CIFAR_COARSE],
    };
    for (i, record) in bytes.chunks_exact(CIFAR_RECORD).take(count).enumerate() {
        let (coarse, fine) = (record[0] as usize, record[1] as usize);
        if coarse >= CIFAR_COARSE || fine >= CIFAR_FINE {
            return Err(format!(
                "record {i}: labels coarse {coarse} fine {fine} (need < {CIFAR_COARSE} and < {CIFAR_FINE})"
            ));
        }
        stored.labels[i * CIFAR_COARSE + coarse] = 1;
        let out = &mut stored.pixels[i * 3 * plane..(i + 1) * 3 * plane];
        for p in 0..plane {
            for c in 0..3 {
                out[p * 3 + c] = record[2 + c * plane + p];
            }
        }
    }
    Ok(stored)
}

/// CelebA's attribute list: the names, then per image its file name and
/// 40 values ±1 (as 0/1).
pub type Attributes = (Vec<String>, Vec<(String, [u8; CELEBA_ATTRIBUTES])>);

/// Parses `list_attr_celeba.txt`: a count line, a line of 40 names, then
/// one line per image, `<file> ±1 × 40`.
pub fn parse_celeba_attributes(text: &str) -> std::result::Result<Attributes, String> {
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let (_, count) = lines.next().ok_or("is empty")?;
    let count: usize = count
        .trim()
        .parse()
        .map_err(|_| format!("line 1: {:?} is not the number of images", count.trim()))?;
    let (_, names) = lines
        .next()
        .ok_or("line 2: the attribute names are missing")?;
    let names: Vec<String> = names.split_whitespace().map(str::to_string).collect();
    if names.len() != CELEBA_ATTRIBUTES {
        return Err(format!(
            "line 2: {} attribute names, expected {CELEBA_ATTRIBUTES}",
            names.len()
        ));
    }
    let mut rows = Vec::with_capacity(count.min(1 << 20));
    for (number, line) in lines {
        let mut fields = line.split_whitespace();
        let file = fields.next().expect("non-empty line").to_string();
        let mut values = [0u8; CELEBA_ATTRIBUTES];
        let mut seen = 0;
        for field in fields {
            if seen == CELEBA_ATTRIBUTES {
                return Err(format!(
                    "line {}: more than {CELEBA_ATTRIBUTES} values",
                    number + 1
                ));
            }
            values[seen] = match field {
                "1" => 1,
                "-1" => 0,
                other => {
                    return Err(format!(
                        "line {}: value {other:?} is not 1 or -1",
                        number + 1
                    ));
                }
            };
            seen += 1;
        }
        if seen != CELEBA_ATTRIBUTES {
            return Err(format!(
                "line {}: {seen} values, expected {CELEBA_ATTRIBUTES}",
                number + 1
            ));
        }
        rows.push((file, values));
    }
    if rows.len() != count {
        return Err(format!(
            "line 1 announces {count} images, the file lists {}",
            rows.len()
        ));
    }
    Ok((names, rows))
}

/// Parses `list_eval_partition.txt`: `<file> 0|1|2` (train, validation, test).
pub fn parse_celeba_partition(text: &str) -> std::result::Result<Vec<(String, u8)>, String> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(number, line)| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            match fields.as_slice() {
                [file, split @ ("0" | "1" | "2")] => {
                    Ok((file.to_string(), split.as_bytes()[0] - b'0'))
                }
                _ => Err(format!(
                    "line {}: {line:?} is not `<file> 0|1|2`",
                    number + 1
                )),
            }
        })
        .collect()
}

fn read_text(path: &Path) -> Result<String> {
    let bytes = read_bounded(path, MAX_LIST_BYTES)?;
    String::from_utf8(bytes).map_err(|_| Error::data(path, "is not UTF-8 text"))
}

/// Decodes one aligned CelebA JPEG and resizes it to 64×64 RGB bytes.
pub fn decode_celeba_image(bytes: &[u8]) -> std::result::Result<Vec<u8>, String> {
    let image = image::load_from_memory_with_format(bytes, image::ImageFormat::Jpeg)
        .map_err(|e| format!("not a readable JPEG: {e}"))?;
    let side = CELEBA_SIDE as u32;
    let resized = image::imageops::resize(
        &image.to_rgb8(),
        side,
        side,
        image::imageops::FilterType::Triangle,
    );
    Ok(resized.into_raw())
}

fn load_celeba(dir: &Path, limit: Option<usize>) -> Result<(Vec<String>, Stored, Stored)> {
    let attr_path = dir.join("list_attr_celeba.txt");
    let part_path = dir.join("list_eval_partition.txt");
    let (names, rows) =
        parse_celeba_attributes(&read_text(&attr_path)?).map_err(|m| Error::data(&attr_path, m))?;
    let partition =
        parse_celeba_partition(&read_text(&part_path)?).map_err(|m| Error::data(&part_path, m))?;
    if partition.len() != rows.len() {
        return Err(Error::data(
            &part_path,
            format!(
                "lists {} images, {} lists {}",
                partition.len(),
                attr_path.display(),
                rows.len()
            ),
        ));
    }
    let images_dir = if dir.join("img_align_celeba").is_dir() {
        dir.join("img_align_celeba")
    } else {
        dir.to_path_buf()
    };
    let mut splits = [Vec::new(), Vec::new()];
    for (i, ((file, values), (part_file, split))) in rows.iter().zip(&partition).enumerate() {
        if file != part_file {
            return Err(Error::data(
                &part_path,
                format!(
                    "line {}: {part_file:?} where the attribute list has {file:?}",
                    i + 1
                ),
            ));
        }
        // Partition 0 trains, 2 tests; the validation partition (1) is not used.
        let which = match split {
            0 => 0,
            2 => 1,
            _ => continue,
        };
        if splits[which].len() < limit.unwrap_or(usize::MAX) {
            splits[which].push((file.clone(), *values));
        }
    }
    let load = |entries: &Vec<(String, [u8; CELEBA_ATTRIBUTES])>| -> Result<Stored> {
        let pixels: Vec<Vec<u8>> = entries
            .par_iter()
            .map(|(file, _)| {
                let path = images_dir.join(file);
                let bytes = read_bounded(&path, MAX_LIST_BYTES)?;
                decode_celeba_image(&bytes).map_err(|m| Error::data(&path, m))
            })
            .collect::<Result<_>>()?;
        Ok(Stored {
            pixels: pixels.concat(),
            labels: entries
                .iter()
                .flat_map(|(_, v)| v.iter().copied())
                .collect(),
        })
    };
    let (train, test) = (load(&splits[0])?, load(&splits[1])?);
    for (stored, name) in [(&train, "training (0)"), (&test, "test (2)")] {
        if stored.labels.is_empty() {
            return Err(Error::data(
                &part_path,
                format!("no image in the {name} partition"),
            ));
        }
    }
    Ok((names, train, test))
}
