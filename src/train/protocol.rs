//! Protocols (§4): how a learner sees its training data and when it is
//! measured. A protocol drives any [`Learner`] and knows nothing of
//! methods.

use crate::data::CANVAS_PIXELS;
use crate::train::evaluate::EvalSet;
use crate::train::learner::{Batch, Learner};

/// A learning curve (§5): test accuracy against the number of training
/// examples seen at each measurement.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Curve {
    /// Examples seen at each measurement (the x axis).
    pub examples: Vec<usize>,
    /// Test accuracy at each measurement.
    pub accuracy: Vec<f32>,
}

impl Curve {
    /// Appends a measurement.
    pub fn push(&mut self, examples: usize, accuracy: f32) {
        self.examples.push(examples);
        self.accuracy.push(accuracy);
    }
}

/// Labelled training examples in the order a run sees them: canvases
/// `[n, 784]` and their labels as the readout reads them.
#[derive(Clone, Copy, Debug)]
pub struct TrainingSet<'a> {
    /// Canvases.
    pub images: &'a [f32],
    /// Labels.
    pub labels: &'a [u8],
}

impl<'a> TrainingSet<'a> {
    /// Batch `k` of `size` examples.
    pub fn batch(&self, k: usize, size: usize) -> Batch<'a> {
        Batch {
            images: &self.images[k * size * CANVAS_PIXELS..(k + 1) * size * CANVAS_PIXELS],
            labels: &self.labels[k * size..(k + 1) * size],
        }
    }

    /// Number of examples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when there are no examples.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

/// The `online` protocol (§4): one pass over the whole batches of `train`,
/// each seen once, with the accuracy on `test` measured before the first
/// update (measurement 0) and after every batch.
pub fn online(
    learner: &mut dyn Learner,
    train: TrainingSet<'_>,
    batch_size: usize,
    test: &EvalSet,
) -> Curve {
    let batches = train.len() / batch_size;
    let mut curve = Curve::default();
    if batches > 0 {
        learner.begin(train.batch(0, batch_size));
    }
    curve.push(0, learner.accuracy(test));
    for k in 0..batches {
        learner.step(train.batch(k, batch_size));
        curve.push((k + 1) * batch_size, learner.accuracy(test));
    }
    curve
}
