//! The multi-task benchmarks of §8: their tasks, where their data come
//! from, and the draws of examples a pretraining or a run makes.
//! `mnist-attributes` is built on the shipped digits, `fashion-attributes`
//! on the shipped Fashion-MNIST; CIFAR-100
//! ([`crate::data::cifar`]) and CelebA ([`crate::data::celeba`]) are read
//! from their own files.
//!
//! Images are channel-last `[n, H, W, C]` in [0, 1]; labels are `[n, tasks]`
//! bytes, 0 or 1. The two external data sets are held as bytes and turned
//! into f32 only for the examples a run draws.

use std::path::{Path, PathBuf};

use rand::RngExt;
use rand::seq::SliceRandom;
use rayon::prelude::*;

use crate::data::celeba::{CELEBA_SIDE, load_celeba};
use crate::data::cifar::{CIFAR_COARSE, CIFAR_SIDE, load_cifar};
use crate::data::composite::{CANVAS_SIDE, CompositeKind, CompositeSet, NOISE_STD};
use crate::data::digits::idx_files;
use crate::data::images::{ByteImages, Images};
use crate::data::shape::Shape;
use crate::data::task::QUADRANTS;
use crate::data::{Digits, Pool, shipped_data_dir};
use crate::digest::sha256_hex;
use crate::error::{Error, Result};
use crate::net::linalg::split_min_len;
use crate::rng::rng_for;

/// The multi-task benchmarks (§8).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Benchmark {
    /// Composites of four digits, 16 tasks: the digit in quadrant q is
    /// even, is ≥ 5, is prime (2, 3, 5, 7), has a loop (0, 6, 8, 9);
    /// `prime@q` and `loop@q` held out.
    MnistAttributes,
    /// Composites of four Fashion-MNIST items, 20 tasks: the item in
    /// quadrant q is footwear, a top, a bag, a trouser or dress, long
    /// sleeved; `bag@q` and `long-sleeve@q` held out.
    FashionAttributes,
    /// CIFAR-100, 20 tasks: the image is of coarse class k; the last 5
    /// held out.
    Cifar100,
    /// CelebA, 40 tasks: its 40 binary attributes; the last 10 of the
    /// file's header held out.
    Celeba,
}

crate::named!(Benchmark {
    Benchmark::MnistAttributes => "mnist-attributes",
    Benchmark::FashionAttributes => "fashion-attributes",
    Benchmark::Cifar100 => "cifar100",
    Benchmark::Celeba => "celeba",
});

impl Benchmark {
    /// The built-in architecture that fits its images.
    pub fn default_arch(self) -> &'static str {
        match self {
            Benchmark::MnistAttributes | Benchmark::FashionAttributes => "conv-mnist",
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
    /// `mnist-attributes` and Fashion-MNIST for `fashion-attributes`; the
    /// others do not ship with comod.
    pub fn dir(&self) -> Result<PathBuf> {
        match (&self.data, self.benchmark) {
            (Some(dir), _) => Ok(dir.clone()),
            (None, Benchmark::MnistAttributes) => Ok(shipped_data_dir()),
            (None, Benchmark::FashionAttributes) => Ok(shipped_data_dir().join("fashion")),
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
    pub fn load(&self) -> Result<BenchmarkData> {
        if self.limit == Some(0) {
            return Err(Error::option(
                "--limit",
                0,
                "keep at least one image of each split",
            ));
        }
        BenchmarkData::load(self.benchmark, &self.dir()?, self.limit)
    }
}

#[derive(Debug)]
enum Source {
    Digits(Box<Digits>),
    Fixed { train: ByteImages, test: ByteImages },
}

/// A benchmark's data: where examples come from, their shape, the tasks.
#[derive(Debug)]
pub struct BenchmarkData {
    /// Which benchmark.
    pub benchmark: Benchmark,
    /// Shape of one image.
    pub shape: Shape,
    /// Task names, in head order.
    pub tasks: Vec<String>,
    /// The held-out tasks of the `held-out` transfer protocol (§8), in
    /// head order; the others are the pretraining tasks.
    pub held_out: Vec<usize>,
    source: Source,
    sha256: String,
}

impl BenchmarkData {
    /// Loads `benchmark` from `dir` (§8): the IDX digits for
    /// `mnist-attributes`, `train.bin`/`test.bin` for CIFAR-100,
    /// `list_attr_celeba.txt`, `list_eval_partition.txt` and the aligned
    /// JPEGs (in `img_align_celeba/` or `dir` itself) for CelebA.
    /// `limit` keeps the first `limit` images of each split.
    pub fn load(benchmark: Benchmark, dir: &Path, limit: Option<usize>) -> Result<BenchmarkData> {
        match benchmark {
            Benchmark::MnistAttributes => Ok(BenchmarkData::mnist_attributes(Digits::load(dir)?)),
            Benchmark::FashionAttributes => {
                Ok(BenchmarkData::fashion_attributes(Digits::load(dir)?))
            }
            Benchmark::Cifar100 => {
                let train = load_cifar(&dir.join("train.bin"), limit)?;
                let test = load_cifar(&dir.join("test.bin"), limit)?;
                let tasks = (0..CIFAR_COARSE).map(|k| format!("coarse{k:02}")).collect();
                Ok(BenchmarkData::fixed(
                    benchmark, CIFAR_SIDE, tasks, train, test,
                ))
            }
            Benchmark::Celeba => {
                let (tasks, train, test) = load_celeba(dir, limit)?;
                Ok(BenchmarkData::fixed(
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
            Benchmark::MnistAttributes | Benchmark::FashionAttributes => idx_files(dir),
            Benchmark::Cifar100 => vec![dir.join("train.bin"), dir.join("test.bin")],
            Benchmark::Celeba => vec![
                dir.join("list_attr_celeba.txt"),
                dir.join("list_eval_partition.txt"),
            ],
        }
    }

    /// The `mnist-attributes` benchmark on `digits` (§8).
    pub fn mnist_attributes(digits: Digits) -> BenchmarkData {
        BenchmarkData::composite(Benchmark::MnistAttributes, digits)
    }

    /// The `fashion-attributes` benchmark on Fashion-MNIST (§8).
    pub fn fashion_attributes(items: Digits) -> BenchmarkData {
        BenchmarkData::composite(Benchmark::FashionAttributes, items)
    }

    /// A benchmark of composites of `items`, one attribute task per
    /// attribute and quadrant.
    fn composite(benchmark: Benchmark, items: Digits) -> BenchmarkData {
        let attributes = attributes(benchmark);
        let tasks = attributes
            .iter()
            .flat_map(|a| (0..QUADRANTS).map(move |q| format!("{}@{q}", a.name)))
            .collect();
        let held_out = attributes
            .iter()
            .enumerate()
            .filter(|(_, a)| a.held_out)
            .flat_map(|(i, _)| i * QUADRANTS..(i + 1) * QUADRANTS)
            .collect();
        BenchmarkData {
            benchmark,
            shape: Shape {
                channels: 1,
                height: CANVAS_SIDE,
                width: CANVAS_SIDE,
            },
            tasks,
            held_out,
            sha256: items.sha256().to_string(),
            source: Source::Digits(Box::new(items)),
        }
    }

    fn fixed(
        benchmark: Benchmark,
        side: usize,
        tasks: Vec<String>,
        train: ByteImages,
        test: ByteImages,
    ) -> BenchmarkData {
        let sha256 = sha256_hex(&[&train.pixels, &train.labels, &test.pixels, &test.labels]);
        let held = match benchmark {
            Benchmark::Cifar100 => CIFAR_HELD_OUT,
            _ => CELEBA_HELD_OUT,
        };
        BenchmarkData {
            benchmark,
            held_out: (tasks.len().saturating_sub(held)..tasks.len()).collect(),
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

    /// The pretraining tasks of the `held-out` protocol (§8): every task
    /// not held out, in head order.
    pub fn pretraining_tasks(&self) -> Vec<usize> {
        (0..self.tasks.len())
            .filter(|t| !self.held_out.contains(t))
            .collect()
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
            Source::Digits(digits) => composites(self.benchmark, digits, pool, n, seed),
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

    fn gather(&self, stored: &ByteImages, rows: &[usize]) -> Images {
        let (len, tasks) = (self.shape.len(), self.tasks.len());
        let mut images = vec![0.0f32; rows.len() * len];
        images
            .par_chunks_mut(len)
            .zip(rows.par_iter())
            // A run inside a sweep gathers its examples on its thread.
            .with_min_len(split_min_len())
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

/// CIFAR-100's held-out tasks: its last 5 coarse classes (§8).
pub const CIFAR_HELD_OUT: usize = 5;
/// CelebA's held-out tasks: the last 10 attributes of the file's header (§8).
pub const CELEBA_HELD_OUT: usize = 10;

/// One attribute of a composite benchmark's items (§8): a task per quadrant.
#[derive(Clone, Copy, Debug)]
pub struct Attribute {
    /// Its name, the task's before `@q`.
    pub name: &'static str,
    /// The item classes that have it.
    pub classes: &'static [u8],
    /// Held out of pretraining under `held-out`.
    pub held_out: bool,
}

const fn attribute(name: &'static str, classes: &'static [u8], held_out: bool) -> Attribute {
    Attribute {
        name,
        classes,
        held_out,
    }
}

/// The attributes of `mnist-attributes`, in task order (§8).
pub const MNIST_ATTRIBUTES: [Attribute; 4] = [
    attribute("even", &[0, 2, 4, 6, 8], false),
    attribute("ge5", &[5, 6, 7, 8, 9], false),
    attribute("prime", &[2, 3, 5, 7], true),
    attribute("loop", &[0, 6, 8, 9], true),
];

/// The attributes of `fashion-attributes`, in task order (§8). Classes:
/// 0 T-shirt/top, 1 trouser, 2 pullover, 3 dress, 4 coat, 5 sandal,
/// 6 shirt, 7 sneaker, 8 bag, 9 ankle boot.
pub const FASHION_ATTRIBUTES: [Attribute; 5] = [
    attribute("footwear", &[5, 7, 9], false),
    attribute("top", &[0, 2, 4, 6], false),
    attribute("bag", &[8], true),
    attribute("trouser-dress", &[1, 3], false),
    attribute("long-sleeve", &[2, 4, 6], true),
];

/// The attributes of a composite benchmark (none for the others).
pub fn attributes(benchmark: Benchmark) -> &'static [Attribute] {
    match benchmark {
        Benchmark::MnistAttributes => &MNIST_ATTRIBUTES,
        Benchmark::FashionAttributes => &FASHION_ATTRIBUTES,
        Benchmark::Cifar100 | Benchmark::Celeba => &[],
    }
}

/// `n` composites of `benchmark`'s items: an item in every quadrant, with
/// the background noise of §1; labels `[n, tasks]`, attribute-major (the
/// first attribute in quadrants 0–3, then the next).
fn composites(benchmark: Benchmark, items: &Digits, pool: Pool, n: usize, seed: u64) -> Images {
    let set = CompositeSet::generate(items, CompositeKind::Filled, pool, n, seed, NOISE_STD);
    let attributes = attributes(benchmark);
    let labels = set
        .sources
        .iter()
        .flat_map(|sources| {
            let classes: Vec<u8> = sources.iter().map(|&s| items.label(s)).collect();
            attributes.iter().flat_map(move |a| {
                classes
                    .clone()
                    .into_iter()
                    .map(move |c| u8::from(a.classes.contains(&c)))
            })
        })
        .collect();
    Images {
        images: set.images,
        labels,
    }
}
