//! Task switching (§5 (f), the paper's Fig. 4): general task → a specific
//! task (fine-tuned by a method, `online`) → the general task again. The
//! modulation methods return by removing c and g, with zero examples; the
//! retraining methods train their changed weights back on general
//! composites, with their own rate and batch, until they regain 90 % of
//! the accuracy the specific task cost or [`RETURN_EXAMPLES`] examples.

use serde::{Deserialize, Serialize};

use crate::data::{CompositeKind, CompositeSet, Digits, NOISE_STD, Pool, Task};
use crate::error::{Error, Result};
use crate::kernel::Body;
use crate::net::layers::correct_count;
use crate::net::{Depth, Model, Readout};
use crate::rng::derive_seed;
use crate::train::config::FinetuneConfig;
use crate::train::evaluate::heldout_set;
use crate::train::fault::Failure;
use crate::train::learner::learner;
use crate::train::method::Method;
use crate::train::mlp::MlpEvaluator;
use crate::train::network::{Batch, EvalSet, Examples, Frozen};
use crate::train::options::{Protocol, ReadoutKind};
use crate::train::protocol::online;
use crate::train::study::{digit_task_data, training_composites};

/// The most general examples a return trains on: the pretraining set's
/// size (§5 (f); the paper: retraining back "may take just as long as the
/// original pretraining").
pub const RETURN_EXAMPLES: usize = 4000;
/// The general-task accuracy is measured after every this many batches.
pub const SWITCH_EVERY: usize = 5;
/// Recovered: this fraction of the accuracy lost to the specific task
/// regained (§5 (f)).
pub const RECOVERED_FRACTION: f64 = 0.9;

/// One switch back to the general task.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SwitchRun {
    /// The specific task.
    pub task: String,
    /// The method that fine-tuned it.
    pub method: Method,
    /// The run's seed.
    pub seed: u64,
    /// General-task accuracy of the pretrained network.
    pub pretrained: f64,
    /// Accuracy on the specific task at the end of its run (a return
    /// counts only where a retrained network reached the criterion, §5).
    pub specific_accuracy: f64,
    /// General examples trained on since the switch, per measurement.
    pub examples: Vec<usize>,
    /// General-task accuracy at each measurement (the first: right after
    /// the specific task).
    pub accuracy: Vec<f64>,
}

impl SwitchRun {
    /// The general accuracy that counts as recovered: right after the
    /// task plus [`RECOVERED_FRACTION`] of what the task cost (§5 (f)).
    pub fn recovery_target(&self) -> f64 {
        let after = self.accuracy.first().copied().unwrap_or(f64::NAN);
        after + RECOVERED_FRACTION * (self.pretrained - after).max(0.0)
    }

    /// The general examples needed to recover; `None` (censored) if the
    /// run never does within [`RETURN_EXAMPLES`].
    pub fn recovered_at(&self) -> Option<usize> {
        let target = self.recovery_target();
        self.accuracy
            .iter()
            .position(|&a| a >= target)
            .map(|i| self.examples[i])
    }
}

/// The general task's held-out set and the pretrained network's accuracy
/// on it, shared by every switch of one network.
pub struct GeneralTest {
    /// Held-out general composites, packed as the evaluations read them.
    pub set: EvalSet<Model<f32>>,
    /// The pretrained network's 10-way accuracy on them.
    pub pretrained: f64,
}

impl GeneralTest {
    /// The held-out set of `seed` (as pretraining measures it) and the
    /// accuracy of `frozen` on it.
    pub fn new(frozen: &Frozen<Model<f32>>, digits: &Digits, seed: u64) -> GeneralTest {
        let composites = heldout_set(digits, seed);
        let examples = Examples {
            labels: composites.labels,
            inputs: composites.images,
        };
        let set = EvalSet::new(frozen, examples, 0.0);
        let mut evaluator = MlpEvaluator::new(&frozen.net, Body::detect());
        let pretrained = accuracy_on(&set, &frozen.net, &mut evaluator);
        GeneralTest { set, pretrained }
    }

    /// The 10-way accuracy of `model` on the set, modulation off, as the
    /// retraining methods' evaluations compute it ([`MlpEvaluator::unmodulated`]:
    /// the dense tiles, with the bits of the network's own forward pass,
    /// §4). A return measures the set up to 400 times; through the forward pass
    /// (`matrixmultiply`, packing every block of rows) these measurements
    /// took about three quarters of the report's switching runs.
    pub fn accuracy(&self, model: &Model<f32>, evaluator: &mut MlpEvaluator) -> f64 {
        accuracy_on(&self.set, model, evaluator)
    }
}

/// [`GeneralTest::accuracy`] on `set`.
fn accuracy_on(set: &EvalSet<Model<f32>>, model: &Model<f32>, evaluator: &mut MlpEvaluator) -> f64 {
    evaluator.unmodulated(model, set, Depth::All, 0.0);
    let correct = correct_count(evaluator.logits(), set.labels(), Readout::All);
    correct as f64 / set.len() as f64
}

/// Fine-tunes `task` with `method` under `config` (`online`, seeded by
/// `seed`), then returns to the general task, measured on `general`.
/// A numerical fault (§6) is an error naming the run.
pub fn switch_back(
    frozen: &Frozen<Model<f32>>,
    digits: &Digits,
    task: Task,
    method: Method,
    config: &FinetuneConfig,
    seed: u64,
    general: &GeneralTest,
) -> Result<SwitchRun> {
    let fault = |failure: Failure| Error::Numerical {
        run: format!("switching {task} {}", method.name()),
        failure: failure.to_string(),
    };
    let config = FinetuneConfig {
        protocol: Protocol::Online,
        ..*config
    };
    let mut evaluator = MlpEvaluator::new(&frozen.net, Body::detect());
    let mut measure = |model: &Model<f32>| general.accuracy(model, &mut evaluator);
    let pretrained = general.pretrained;
    let data = digit_task_data(frozen, digits, task, &config, seed);
    let set = training_composites(digits, task, &config, seed);
    let train = Examples {
        labels: config.readout.labels(&set).to_vec(),
        inputs: set.images,
    };
    let mut specific = learner(method, frozen, &config, data.readout, seed);
    let (curve, failure) = online(specific.as_mut(), &train, config.batch_size, &data.test);
    if let Some(failure) = failure {
        return Err(fault(failure));
    }
    let mut run = SwitchRun {
        task: task.to_string(),
        method,
        seed,
        pretrained,
        specific_accuracy: curve.accuracy.last().map_or(f64::NAN, |&a| a as f64),
        examples: vec![0],
        accuracy: Vec::new(),
    };
    if method.trains() == Depth::Coupling {
        // Removing c and g leaves the frozen network itself.
        run.accuracy.push(measure(specific.network()));
        return Ok(run);
    }
    // The retrained weights go back to the general task the way they left
    // it: the same method and rate, now on 10-way general composites.
    let back = Frozen::new(specific.network().clone());
    let general_config = FinetuneConfig {
        readout: ReadoutKind::All,
        ..config
    };
    let mut returning = learner(method, &back, &general_config, Readout::All, seed);
    run.accuracy.push(measure(returning.network()));
    let b = config.batch_size;
    let batches = RETURN_EXAMPLES / b;
    let composites = CompositeSet::generate(
        digits,
        CompositeKind::General,
        Pool::Train,
        batches * b,
        derive_seed(seed, &["switch".into()]),
        NOISE_STD,
    );
    let target = run.recovery_target();
    for k in 0..batches {
        let rows = k * b..(k + 1) * b;
        returning
            .step(Batch {
                inputs: &composites.images[rows.start * crate::data::CANVAS_PIXELS
                    ..rows.end * crate::data::CANVAS_PIXELS],
                labels: &composites.labels[rows],
                activity: None,
            })
            .map_err(|f| fault(Failure::new(format!("update {} back", k + 1), f)))?;
        if (k + 1) % SWITCH_EVERY == 0 || k + 1 == batches {
            run.examples.push((k + 1) * b);
            run.accuracy.push(measure(returning.network()));
            if run.accuracy.last() >= Some(&target) {
                break;
            }
        }
    }
    Ok(run)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovery_is_the_first_measurement_with_90_percent_of_the_loss_regained() {
        let run = |accuracy: Vec<f64>| SwitchRun {
            task: "1-7@0".into(),
            method: Method::Retrain,
            seed: 0,
            pretrained: 0.9,
            specific_accuracy: 0.8,
            examples: (0..accuracy.len()).map(|i| 10 * i).collect(),
            accuracy,
        };
        // Lost 0.4: recovered at 0.5 + 0.36 = 0.86.
        let back = run(vec![0.5, 0.85, 0.87, 0.91]);
        assert!((back.recovery_target() - 0.86).abs() < 1e-12);
        assert_eq!(back.recovered_at(), Some(20));
        assert_eq!(run(vec![0.95]).recovered_at(), Some(0));
        assert_eq!(run(vec![0.5, 0.6]).recovered_at(), None);
    }
}
