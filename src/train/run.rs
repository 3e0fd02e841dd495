//! One fine-tuning run (§4, §6): a task's fixed test set, the run's own
//! training composites, the method's learner, and the protocol that
//! drives it.

use crate::data::{CompositeKind, CompositeSet, Digits, NOISE_STD, Pool, Task};
use crate::error::Result;
use crate::net::Modulation;
use crate::rng::derive_seed;
use crate::train::config::FinetuneConfig;
use crate::train::evaluate::{EvalSet, task_test_set};
use crate::train::fault::Failure;
use crate::train::frozen::FrozenNetwork;
use crate::train::learner::learner;
use crate::train::method::Method;
use crate::train::options::Protocol;
use crate::train::protocol::{Curve, EpochCounts, TrainingSet, dataset, online};

/// A task's fixed test set and what the frozen network makes of it,
/// computed once and shared by every run of the task.
pub struct TaskData {
    /// The task.
    pub task: Task,
    /// Test composites (test pool, with distractors), labelled as the
    /// configuration's readout reads them.
    pub test: EvalSet,
}

impl TaskData {
    /// Builds the test set of `task` (seeded by `master_seed` and the task,
    /// the same for every method and repeat) and its frozen activities.
    pub fn new(
        frozen: &FrozenNetwork,
        digits: &Digits,
        task: Task,
        config: &FinetuneConfig,
        master_seed: u64,
    ) -> TaskData {
        let set = task_test_set(digits, task, true, config.test_composites, master_seed);
        let labels = config.labels(&set).to_vec();
        TaskData {
            task,
            test: EvalSet::new(&frozen.model, set.images, labels, config.modulator_mean),
        }
    }
}

/// The training composites of the run with `seed` on `task` (§4, §6):
/// `batches × batch size` of them (`online`) or the largest data set's
/// (`dataset`), with distractors, from the train pool, drawn from the
/// run's own seed so each run sees its own sequence (and a longer
/// sequence extends a shorter one).
pub fn training_composites(
    digits: &Digits,
    task: Task,
    config: &FinetuneConfig,
    seed: u64,
) -> CompositeSet {
    CompositeSet::generate(
        digits,
        CompositeKind::Specific {
            task,
            distractors: true,
        },
        Pool::Train,
        config.training_examples(),
        derive_seed(seed, &["train".into()]),
        NOISE_STD,
    )
}

/// What a run produced.
#[derive(Clone, Debug)]
pub struct RunOutcome {
    /// The learning curve.
    pub curve: Curve,
    /// The fine-tuned coupling and gain (off for the retraining methods).
    pub modulation: Modulation<f32>,
    /// Epochs per data-set size (`dataset` protocol only).
    pub epochs: Option<EpochCounts>,
    /// Floating-point operations done.
    pub flops: f64,
    /// The numerical fault that ended the run early (§6); the curve then
    /// holds the measurements before it.
    pub failure: Option<Failure>,
}

/// One fine-tuning run of `method` on the task of `data` (§4): the run's
/// training composites are drawn from the train pool with its `seed`, and
/// its learner is driven by the configured protocol. Fails, naming the
/// option, when `config` is out of range.
pub fn finetune(
    frozen: &FrozenNetwork,
    digits: &Digits,
    data: &TaskData,
    method: Method,
    config: &FinetuneConfig,
    seed: u64,
) -> Result<RunOutcome> {
    config.validate()?;
    let train = training_composites(digits, data.task, config, seed);
    let readout = config.readout_of(data.task);
    match config.protocol {
        Protocol::Online => {
            let training = TrainingSet {
                images: &train.images,
                labels: config.labels(&train),
            };
            let mut learner = learner(method, frozen, config, readout, seed);
            let (curve, failure) =
                online(learner.as_mut(), training, config.batch_size, &data.test);
            Ok(RunOutcome {
                curve,
                modulation: learner.modulation().clone(),
                epochs: None,
                flops: learner.flops(),
                failure,
            })
        }
        Protocol::Dataset(options) => {
            let labels = config.labels(&train).to_vec();
            let sequence = EvalSet::new(&frozen.model, train.images, labels, config.modulator_mean);
            let new_learner = |seed| learner(method, frozen, config, readout, seed);
            let sizes = dataset(
                &new_learner,
                &sequence,
                &options,
                config.batch_size,
                &data.test,
                seed,
            );
            // The sizes before the first that failed, if any.
            let failure = sizes.iter().find_map(|s| s.as_ref().err()).cloned();
            let sizes: Vec<_> = sizes.into_iter().map_while(|s| s.ok()).collect();
            let (curve, epochs) = EpochCounts::from_sizes(&sizes);
            // The coupling of the largest size, the one trained on most data.
            let modulation = sizes.last().map_or_else(
                || Modulation::off(frozen.model.arch()),
                |last| last.modulation.clone(),
            );
            Ok(RunOutcome {
                curve,
                modulation,
                epochs: Some(epochs),
                flops: sizes.iter().fold(0.0, |sum, s| sum + s.flops),
                failure,
            })
        }
    }
}
