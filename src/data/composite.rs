//! Composite stimuli (§1): downscaled digits placed in the quadrants of
//! a 28×28 canvas with additive N(0, 0.1²) background noise.
//!
//! Example `i` of a set draws from its own generator, seeded from the set's
//! seed and `i`, so sets are generated in parallel and do not depend on the
//! thread count.

use rand::RngExt;
use rayon::prelude::*;

use crate::data::digits::{CLASSES, Digits, Pool, SMALL_SIDE};
use crate::data::noise::{LANES, add_noise};
use crate::data::task::{QUADRANTS, Task};
use crate::net::linalg::split_min_len;
use crate::net::simd::Isa;
use crate::rng::{Rng, rng_for};

/// Side of the canvas in pixels.
pub const CANVAS_SIDE: usize = 28;
/// Pixels of the canvas; pixel index p = row·28 + col.
pub const CANVAS_PIXELS: usize = CANVAS_SIDE * CANVAS_SIDE;
/// Standard deviation of the background noise (§1).
pub const NOISE_STD: f32 = 0.1;
/// Marks an empty quadrant in [`CompositeSet::sources`].
pub const EMPTY: u32 = u32::MAX;

/// What a composite shows and how it is labelled (§1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompositeKind {
    /// One digit in a random quadrant, the rest empty; label = its class.
    General,
    /// Target digit of class a (label 0) or b (label 1) in the task's
    /// quadrant; with `distractors`, a random digit in each other quadrant,
    /// else the other quadrants empty (the no-distractor pair test).
    Specific {
        /// The task.
        task: Task,
        /// Fill the other quadrants with distractor digits.
        distractors: bool,
    },
    /// A digit of a uniformly drawn class in every quadrant (the
    /// `mnist-attributes` benchmark, §8); label and target are 0, the
    /// attributes are read from the sources.
    Filled,
}

/// A set of composites with their labels, as flat buffers.
#[derive(Clone, Debug, Default)]
pub struct CompositeSet {
    /// Canvases, `[n, 784]` row-major.
    pub images: Vec<f32>,
    /// Training labels: the class (general task) or 0/1 (specific task).
    pub labels: Vec<u8>,
    /// Class of the target digit (equals the label for the general task).
    pub targets: Vec<u8>,
    /// Digit index shown in each quadrant, or [`EMPTY`].
    pub sources: Vec<[u32; QUADRANTS]>,
}

/// Row and column of the top-left pixel of quadrant `q`.
pub fn quadrant_origin(q: usize) -> (usize, usize) {
    ((q / 2) * SMALL_SIDE, (q % 2) * SMALL_SIDE)
}

/// Canvas pixel index of pixel `k` (row-major) of quadrant `q`.
pub fn quadrant_pixel(q: usize, k: usize) -> usize {
    let (r0, c0) = quadrant_origin(q);
    (r0 + k / SMALL_SIDE) * CANVAS_SIDE + c0 + k % SMALL_SIDE
}

/// Copies a 14×14 digit into quadrant `q` of `canvas`.
fn place(canvas: &mut [f32], q: usize, small: &[f32]) {
    let (r0, c0) = quadrant_origin(q);
    for (r, row) in small.chunks_exact(SMALL_SIDE).enumerate() {
        let start = (r0 + r) * CANVAS_SIDE + c0;
        canvas[start..start + SMALL_SIDE].copy_from_slice(row);
    }
}

/// A uniformly drawn digit of `class` from `pool`.
fn draw_of_class(rng: &mut Rng, digits: &Digits, pool: Pool, class: usize) -> u32 {
    let candidates = digits.of_class(pool, class);
    candidates[rng.random_range(0..candidates.len())]
}

/// Draws one composite's digits into `canvas`, without its background
/// noise, which its generator draws next ([`add_noise`]); returns (label,
/// target class, sources).
fn draw(
    rng: &mut Rng,
    digits: &Digits,
    pool: Pool,
    kind: CompositeKind,
    canvas: &mut [f32],
) -> (u8, u8, [u32; QUADRANTS]) {
    canvas.fill(0.0);
    let mut sources = [EMPTY; QUADRANTS];
    let (label, target) = match kind {
        CompositeKind::General => {
            let (lo, hi) = match pool {
                Pool::Train => (0, digits.test_start()),
                Pool::Test => (digits.test_start(), digits.len()),
            };
            let index = rng.random_range(lo..hi) as u32;
            let q = rng.random_range(0..QUADRANTS);
            sources[q] = index;
            let class = digits.label(index);
            (class, class)
        }
        CompositeKind::Specific { task, distractors } => {
            let label = rng.random_range(0..2u8);
            let class = task.class_of(label);
            sources[task.quadrant as usize] = draw_of_class(rng, digits, pool, class as usize);
            if distractors {
                for (q, source) in sources.iter_mut().enumerate() {
                    if q != task.quadrant as usize {
                        let distractor = rng.random_range(0..CLASSES);
                        *source = draw_of_class(rng, digits, pool, distractor);
                    }
                }
            }
            (label, class)
        }
        CompositeKind::Filled => {
            for source in sources.iter_mut() {
                let class = rng.random_range(0..CLASSES);
                *source = draw_of_class(rng, digits, pool, class);
            }
            (0, 0)
        }
    };
    for (q, &source) in sources.iter().enumerate() {
        if source != EMPTY {
            place(canvas, q, digits.small(source));
        }
    }
    (label, target, sources)
}

impl CompositeSet {
    /// `n` composites of `kind` from `pool`, with background noise of
    /// standard deviation `noise_std` (§1 uses [`NOISE_STD`]).
    pub fn generate(
        digits: &Digits,
        kind: CompositeKind,
        pool: Pool,
        n: usize,
        seed: u64,
        noise_std: f32,
    ) -> CompositeSet {
        let mut set = CompositeSet::default();
        set.regenerate(digits, kind, pool, 0..n, seed, noise_std);
        set
    }

    /// Examples `range` of the set that [`CompositeSet::generate`] would
    /// make with `range.end` examples, reusing this set's buffers: a large
    /// set can be drawn piece by piece with the same result.
    pub fn regenerate(
        &mut self,
        digits: &Digits,
        kind: CompositeKind,
        pool: Pool,
        range: std::ops::Range<usize>,
        seed: u64,
        noise_std: f32,
    ) {
        let (first, n) = (range.start, range.len());
        self.images.resize(n * CANVAS_PIXELS, 0.0);
        self.labels.resize(n, 0);
        self.targets.resize(n, 0);
        self.sources.resize(n, [EMPTY; QUADRANTS]);
        let isa = Isa::selected();
        // Groups of LANES composites, whose noise is drawn at once.
        self.images
            .par_chunks_mut(LANES * CANVAS_PIXELS)
            .zip(self.labels.par_chunks_mut(LANES))
            .zip(self.targets.par_chunks_mut(LANES))
            .zip(self.sources.par_chunks_mut(LANES))
            .enumerate()
            // A run inside a sweep draws its composites on its thread.
            .with_min_len(split_min_len())
            .for_each(|(g, (((canvases, labels), targets), sources))| {
                let mut rngs = Vec::with_capacity(LANES);
                let examples = canvases
                    .chunks_exact_mut(CANVAS_PIXELS)
                    .zip(labels)
                    .zip(targets);
                for (j, (((canvas, label), target), sources)) in examples.zip(sources).enumerate() {
                    let mut rng = rng_for(seed, &[(first + g * LANES + j).into()]);
                    (*label, *target, *sources) = draw(&mut rng, digits, pool, kind, canvas);
                    rngs.push(rng);
                }
                if noise_std > 0.0 {
                    add_noise(isa, &mut rngs, canvases, noise_std);
                }
            });
    }

    /// Number of composites.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when the set holds no composites.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Canvas of composite `i`.
    pub fn image(&self, i: usize) -> &[f32] {
        &self.images[i * CANVAS_PIXELS..(i + 1) * CANVAS_PIXELS]
    }
}
