//! One fine-tuning run (§4, §6), for any network: a task's fixed test
//! set, the run's own training examples, the method's learner, and the
//! protocol that drives it.

use crate::error::Result;
use crate::net::Modulation;
use crate::train::config::FinetuneConfig;
use crate::train::fault::Failure;
use crate::train::learner::learner;
use crate::train::method::Method;
use crate::train::network::{EvalSet, Examples, Frozen, Network};
use crate::train::options::Protocol;
use crate::train::protocol::{Curve, EpochCounts, dataset, online};

/// A task's fixed test set, with what the frozen network makes of it, and
/// the logits the task reads: computed once and shared by every run of
/// the task.
pub struct TaskData<N: Network> {
    /// The test set, labelled as the readout reads it.
    pub test: EvalSet<N>,
    /// The task's readout.
    pub readout: N::Readout,
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
/// training examples `train` (in the order it sees them) drive its
/// learner under the configured protocol. Fails, naming the option, when
/// `config` is out of range.
pub fn finetune<N: Network>(
    frozen: &Frozen<N>,
    data: &TaskData<N>,
    train: Examples,
    method: Method,
    config: &FinetuneConfig,
    seed: u64,
) -> Result<RunOutcome> {
    config.validate()?;
    let readout = data.readout;
    match config.protocol {
        Protocol::Online => {
            let mut learner = learner(method, frozen, config, readout, seed);
            let (curve, failure) = online(learner.as_mut(), &train, config.batch_size, &data.test);
            Ok(RunOutcome {
                curve,
                modulation: learner.modulation().clone(),
                epochs: None,
                flops: learner.flops(),
                failure,
            })
        }
        Protocol::Dataset(options) => {
            let sequence = EvalSet::new(frozen, train, config.modulator_mean);
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
                || Modulation::off(&frozen.net),
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
