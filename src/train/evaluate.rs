//! Accuracy of the MLP on labelled composite sets (§1, §2): the general
//! task's held-out accuracy, the test sets of the specific tasks, and the
//! pair accuracy of Fig. 2A. (Fine-tuning runs evaluate through the seam,
//! [`crate::train::network`].)

use crate::data::{CANVAS_PIXELS, CompositeKind, CompositeSet, Digits, NOISE_STD, Pool, Task};
use crate::net::model::EVAL_ROWS;
use crate::net::{Model, Modulation, Readout, Workspace};
use crate::rng::derive_seed;
use crate::train::config::TASK_TEST_COMPOSITES;
use crate::train::options::ReadoutKind;

/// Composites in the general task's held-out set.
pub const HELDOUT_COMPOSITES: usize = 2000;

/// Fraction of `set` answered correctly, with `labels` read by `readout`,
/// forward at modulator value `m` with `modulation`.
pub fn accuracy(
    model: &Model<f32>,
    modulation: &Modulation<f32>,
    ws: &mut Workspace<f32>,
    set: &CompositeSet,
    labels: &[u8],
    readout: Readout,
    m: f32,
) -> f64 {
    assert_eq!(labels.len(), set.len());
    let mut correct = 0;
    for (images, labels) in set
        .images
        .chunks(EVAL_ROWS * CANVAS_PIXELS)
        .zip(labels.chunks(EVAL_ROWS))
    {
        model.forward(ws, modulation, images, m);
        correct += model.correct(ws, labels, readout);
    }
    correct as f64 / set.len() as f64
}

/// The general task's held-out set: test-pool composites (§1).
pub fn heldout_set(digits: &Digits, seed: u64) -> CompositeSet {
    let seed = derive_seed(seed, &["heldout".into()]);
    CompositeSet::generate(
        digits,
        CompositeKind::General,
        Pool::Test,
        HELDOUT_COMPOSITES,
        seed,
        NOISE_STD,
    )
}

/// A specific task's test set from the test pool, with or without
/// distractors (§1, §4).
pub fn task_test_set(
    digits: &Digits,
    task: Task,
    distractors: bool,
    composites: usize,
    seed: u64,
) -> CompositeSet {
    let seed = derive_seed(
        seed,
        &[
            "task-test".into(),
            task.to_string().as_str().into(),
            u64::from(distractors).into(),
        ],
    );
    CompositeSet::generate(
        digits,
        CompositeKind::Specific { task, distractors },
        Pool::Test,
        composites,
        seed,
        NOISE_STD,
    )
}

/// Held-out 10-way accuracy on the general task, modulation off.
pub fn general_accuracy(model: &Model<f32>, digits: &Digits, seed: u64) -> f64 {
    let set = heldout_set(digits, seed);
    general_set_accuracy(model, &mut model.workspace(EVAL_ROWS), &set)
}

/// 10-way accuracy of `model`, modulation off, on the general-task `set`
/// (a workspace of [`EVAL_ROWS`] rows reused across calls).
pub fn general_set_accuracy(
    model: &Model<f32>,
    ws: &mut Workspace<f32>,
    set: &CompositeSet,
) -> f64 {
    let off = Modulation::off(model.arch());
    accuracy(model, &off, ws, set, &set.labels, Readout::All, 0.0)
}

/// Pair accuracy of `task` (pair readout, §2) with and without
/// distractors: the paper's Fig. 2A numbers.
#[derive(Clone, Copy, Debug)]
pub struct PairAccuracy {
    /// The task.
    pub task: Task,
    /// Accuracy with the other quadrants empty.
    pub without_distractors: f64,
    /// Accuracy with distractor digits in the other quadrants.
    pub with_distractors: f64,
}

/// [`PairAccuracy`] of `task` for the pretrained network, modulation off,
/// read by `readout` (§2; Fig. 2A runs both).
pub fn pair_accuracy(
    model: &Model<f32>,
    digits: &Digits,
    task: Task,
    readout: ReadoutKind,
    seed: u64,
) -> PairAccuracy {
    let mut ws = model.workspace(EVAL_ROWS);
    let off = Modulation::off(model.arch());
    let mut measure = |distractors| {
        let set = task_test_set(digits, task, distractors, TASK_TEST_COMPOSITES, seed);
        let labels = readout.labels(&set);
        accuracy(model, &off, &mut ws, &set, labels, readout.of(task), 0.0)
    };
    PairAccuracy {
        task,
        without_distractors: measure(false),
        with_distractors: measure(true),
    }
}
