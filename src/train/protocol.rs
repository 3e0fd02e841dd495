//! Protocols (§4): how a learner sees its training data and when it is
//! measured. A protocol drives any [`Learner`] and knows nothing of
//! methods.

use crate::net::Modulation;
use crate::net::linalg::one_job_per_thread;
use crate::rng::derive_seed;
use crate::train::fault::Failure;
use crate::train::learner::Learner;
use crate::train::network::{Batch, EvalSet, Examples, Network};
use crate::train::options::DatasetOptions;

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

/// The `online` protocol (§4): one pass over the whole batches of `train`,
/// each seen once, with the accuracy on `test` measured before the first
/// update (measurement 0) and after every batch. The frozen layers below
/// what the learner trains run once for the whole sequence, before the
/// first update ([`Learner::sequence_activity`]). On a numerical fault
/// (§6) the run stops: the curve holds the measurements before it.
pub fn online<N: Network>(
    learner: &mut dyn Learner<N>,
    train: &Examples,
    batch_size: usize,
    test: &EvalSet<N>,
) -> (Curve, Option<Failure>) {
    let mut curve = Curve::default();
    let failure = online_into(learner, train, batch_size, test, &mut curve).err();
    (curve, failure)
}

/// [`online`], measuring into `curve`.
fn online_into<N: Network>(
    learner: &mut dyn Learner<N>,
    train: &Examples,
    batch_size: usize,
    test: &EvalSet<N>,
    curve: &mut Curve,
) -> Result<(), Failure> {
    let batches = train.len() / batch_size;
    // The frozen layers below what is trained run once for the sequence.
    let activity = learner.sequence_activity(&train.inputs);
    let batch = |k| train.batch(k, batch_size, activity.as_deref());
    if batches > 0 {
        learner
            .begin(batch(0))
            .map_err(|f| Failure::new("the first gain estimate, before any update", f))?;
    }
    let accuracy = learner
        .accuracy(test)
        .map_err(|f| Failure::new("the measurement before any update", f))?;
    curve.push(0, accuracy);
    for k in 0..batches {
        learner
            .step(batch(k))
            .map_err(|f| Failure::new(format!("update {} of {batches}", k + 1), f))?;
        let accuracy = learner
            .accuracy(test)
            .map_err(|f| Failure::new(format!("the measurement after update {}", k + 1), f))?;
        curve.push((k + 1) * batch_size, accuracy);
    }
    Ok(())
}

/// Early stopping on the validation loss (§4), as the companion code does
/// it: the state before training (epoch 0) is a candidate, an epoch whose
/// loss is lower than or equal to the best so far becomes the kept one,
/// and training stops once `patience` epochs in a row bring no strictly
/// lower loss (`None`: never before E_max).
#[derive(Clone, Debug)]
pub struct EarlyStopping {
    patience: Option<usize>,
    best: f64,
    kept_epoch: usize,
    without_lower: usize,
}

/// What [`EarlyStopping::observe`] says about an epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// The epoch's state is the best so far: keep it.
    pub keep: bool,
    /// The patience is used up: stop training.
    pub stop: bool,
}

impl EarlyStopping {
    /// Nothing observed yet.
    pub fn new(patience: Option<usize>) -> EarlyStopping {
        EarlyStopping {
            patience,
            best: f64::INFINITY,
            kept_epoch: 0,
            without_lower: 0,
        }
    }

    /// Observes the validation loss after `epoch` (0: before training).
    /// A NaN loss is never kept.
    pub fn observe(&mut self, epoch: usize, loss: f64) -> Verdict {
        let keep = loss <= self.best;
        if keep {
            self.kept_epoch = epoch;
        }
        if loss < self.best {
            self.best = loss;
            self.without_lower = 0;
        } else {
            self.without_lower += 1;
        }
        Verdict {
            keep,
            stop: self.patience.is_some_and(|p| self.without_lower >= p),
        }
    }

    /// The epoch whose state is kept.
    pub fn kept_epoch(&self) -> usize {
        self.kept_epoch
    }
}

/// The outcome of one data-set size of the `dataset` protocol.
#[derive(Clone, Debug, PartialEq)]
pub struct SizeOutcome {
    /// Examples in the data set (training and validation halves).
    pub size: usize,
    /// Test accuracy of the kept state.
    pub accuracy: f32,
    /// Epochs trained.
    pub epochs: usize,
    /// The epoch whose state was kept (0: the state before training).
    pub kept_epoch: usize,
    /// The kept coupling and gain.
    pub modulation: Modulation<f32>,
    /// Floating-point operations of this size.
    pub flops: f64,
}

/// The epochs of each size of a `dataset` run, stored in its record.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EpochCounts {
    /// Epochs trained per size.
    pub trained: Vec<usize>,
    /// The epoch whose state was kept per size (0: before training).
    pub kept: Vec<usize>,
}

impl EpochCounts {
    /// The learning curve and epoch counts of a `dataset` run's sizes.
    pub fn from_sizes(sizes: &[SizeOutcome]) -> (Curve, EpochCounts) {
        let mut curve = Curve::default();
        let mut epochs = EpochCounts::default();
        for s in sizes {
            curve.push(s.size, s.accuracy);
            epochs.trained.push(s.epochs);
            epochs.kept.push(s.kept_epoch);
        }
        (curve, epochs)
    }
}

/// The split of a data set of `size` examples (§4): training examples at
/// the even positions of the run's sequence, validation at the odd ones,
/// so that each half of a larger size extends the smaller size's half.
pub fn halves(size: usize) -> (Vec<usize>, Vec<usize>) {
    (
        (0..size).step_by(2).collect(),
        (1..size).step_by(2).collect(),
    )
}

/// The `dataset` protocol (§4): for each size n = S, 2S, …, N·S, a fresh
/// learner from `new_learner` (seeded by the run's `seed` and n, so a size
/// depends on nothing but itself) trains on the training half of the first
/// n examples of `sequence` in batches of `batch_size`, for up to E_max
/// epochs with [`EarlyStopping`] on the validation half's loss; the kept
/// state is measured once, on `test`. Sizes run in parallel, inside a
/// sweep too, unlike the rest of a run's work: there the last runs'
/// sizes fill threads that would otherwise be idle. The quick report's
/// `dataset` cell (32 runs of 5 sizes, 2 threads, Xeon Emerald Rapids,
/// three alternating sweeps) took 86.8–97.9 s, median 88.7, against
/// 88.4–95.3 s, median 92.7, with each run's sizes kept on its thread,
/// whose runs then took 92.0–92.5 % of the threads' time. So a run's wall
/// time is not one thread's ([`crate::train::options::Protocol::splits_runs`]).
/// The result does not depend on the thread count (§6). A size with a
/// numerical fault (§6) gives its failure instead.
pub fn dataset<'a, N: Network>(
    new_learner: &(dyn Fn(u64) -> Box<dyn Learner<N> + 'a> + Sync),
    sequence: &EvalSet<N>,
    options: &DatasetOptions,
    batch_size: usize,
    test: &EvalSet<N>,
    seed: u64,
) -> Vec<Result<SizeOutcome, Failure>> {
    let sizes: Vec<usize> = options.sizes().collect();
    one_job_per_thread(&sizes, |&size| {
        let size_seed = derive_seed(seed, &["size".into(), (size as u64).into()]);
        let mut learner = new_learner(size_seed);
        train_size(learner.as_mut(), sequence, size, options, batch_size, test)
    })
}

/// One size of the `dataset` protocol (see [`dataset`]).
fn train_size<N: Network>(
    learner: &mut dyn Learner<N>,
    sequence: &EvalSet<N>,
    size: usize,
    options: &DatasetOptions,
    batch_size: usize,
    test: &EvalSet<N>,
) -> Result<SizeOutcome, Failure> {
    let (train_rows, validation_rows) = halves(size);
    let train = sequence.select(&train_rows);
    let validation = sequence.select(&validation_rows);
    let batches: Vec<Batch<'_>> = train.batches(batch_size, learner.trains()).collect();
    let at = |what: String| format!("size {size}, {what}");
    learner
        .begin(batches[0])
        .map_err(|f| Failure::new(at("the first gain estimate".into()), f))?;
    let mut stopping = EarlyStopping::new(options.patience);
    let mut kept = learner.snapshot();
    let loss = learner
        .loss(&validation)
        .map_err(|f| Failure::new(at("validation before training".into()), f))?;
    stopping.observe(0, loss);
    let mut epochs = 0;
    while epochs < options.max_epochs {
        for (k, &batch) in batches.iter().enumerate() {
            learner.step(batch).map_err(|f| {
                Failure::new(at(format!("epoch {}, update {}", epochs + 1, k + 1)), f)
            })?;
        }
        epochs += 1;
        let loss = learner
            .loss(&validation)
            .map_err(|f| Failure::new(at(format!("validation after epoch {epochs}")), f))?;
        let verdict = stopping.observe(epochs, loss);
        if verdict.keep {
            kept = learner.snapshot();
        }
        if verdict.stop {
            break;
        }
    }
    learner.restore(&kept);
    let accuracy = learner
        .accuracy(test)
        .map_err(|f| Failure::new(at("the test measurement".into()), f))?;
    Ok(SizeOutcome {
        size,
        accuracy,
        epochs,
        kept_epoch: stopping.kept_epoch(),
        modulation: learner.modulation().clone(),
        flops: learner.flops(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `losses` (epoch 0 first) until a stop; returns the kept epoch
    /// and the epochs trained.
    fn run(losses: &[f64], patience: Option<usize>) -> (usize, usize) {
        let mut stopping = EarlyStopping::new(patience);
        stopping.observe(0, losses[0]);
        let mut epochs = 0;
        for (epoch, &loss) in losses.iter().enumerate().skip(1) {
            epochs = epoch;
            if stopping.observe(epoch, loss).stop {
                break;
            }
        }
        (stopping.kept_epoch(), epochs)
    }

    #[test]
    fn early_stopping_keeps_the_lowest_validation_loss_and_counts_patience() {
        // Lowest at epoch 3; patience 2 stops after epochs 4 and 5.
        let losses = [1.0, 0.9, 0.8, 0.5, 0.6, 0.7, 0.1, 0.1];
        assert_eq!(run(&losses, Some(2)), (3, 5));
        // Patience 3 reaches epoch 6, the new lowest, and runs to the end.
        assert_eq!(run(&losses, Some(3)), (7, 7));
        // An equal loss is kept (the later state) but does not renew patience.
        assert_eq!(run(&[1.0, 0.5, 0.5, 0.5, 0.4], Some(2)), (3, 3));
        // Training that only hurts keeps the state before training.
        assert_eq!(run(&[0.3, 0.4, 0.5, 0.2], Some(2)), (0, 2));
        // A NaN is never kept, and counts against the patience.
        assert_eq!(run(&[1.0, f64::NAN, 0.9, f64::NAN], Some(1)), (0, 1));
        assert_eq!(run(&[1.0, f64::NAN, 0.9, f64::NAN], None), (2, 3));
    }

    #[test]
    fn without_patience_every_epoch_runs() {
        let losses: Vec<f64> = (0..=50).map(|e| if e == 7 { 0.0 } else { 1.0 }).collect();
        assert_eq!(run(&losses, None), (7, 50));
        assert_eq!(run(&losses, Some(20)), (7, 27));
    }

    #[test]
    fn halves_of_a_larger_size_extend_those_of_a_smaller() {
        let (train, validation) = halves(7);
        assert_eq!(train, [0, 2, 4, 6]);
        assert_eq!(validation, [1, 3, 5]);
        let (larger_train, larger_validation) = halves(20);
        assert!(larger_train.starts_with(&train) && larger_validation.starts_with(&validation));
    }
}
