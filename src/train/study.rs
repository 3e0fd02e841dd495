//! What a sweep fine-tunes (§4, §6, §8): a pretrained network and the
//! tasks of its data. A [`Study`] names its tasks, builds each task's
//! fixed test set once, and draws each run's training examples; the runs
//! themselves are [`finetune`], the same for both networks.
//!
//! - [`DigitTasks`]: the first paper's MLP on the specific digit tasks
//!   `a-b@q` (§1): a task's test set is seeded by the master seed and the
//!   task, a run's training composites by the run's own seed.
//! - [`BenchmarkTasks`]: the second paper's convolutional network on the
//!   tasks of a multi-task benchmark (§8), one head each: a task's test set
//!   is seeded by the master seed and the task, the training examples of a
//!   (task, repeat) by those and the repeat, shared by its methods.

use crate::conv::ConvNet;
use crate::data::benchmark::BenchmarkData;
use crate::data::images::Images;
use crate::data::{CompositeKind, CompositeSet, Digits, NOISE_STD, Pool, Task, TaskId};
use crate::error::Result;
use crate::net::Model;
use crate::rng::derive_seed;
use crate::train::config::FinetuneConfig;
use crate::train::evaluate::task_test_set;
use crate::train::method::Method;
use crate::train::network::{EvalSet, Examples, Frozen, Network};
use crate::train::run::{RunOutcome, TaskData, finetune};

/// A pretrained network and the tasks it is fine-tuned on.
pub trait Study: Sync {
    /// The network.
    type Net: Network;
    /// A task as the study knows it.
    type Task: Copy + Send + Sync;

    /// The frozen network every run starts from.
    fn frozen(&self) -> &Frozen<Self::Net>;

    /// The task's name in records and seeds.
    fn task_id(&self, task: Self::Task) -> TaskId;

    /// The task's fixed test set and readout (the same for every method
    /// and repeat).
    fn task_data(
        &self,
        task: Self::Task,
        config: &FinetuneConfig,
        master_seed: u64,
    ) -> Result<TaskData<Self::Net>>;

    /// The training examples of the run of `task`, `repeat` with `seed`,
    /// in the order it sees them: `config`'s training examples (§4).
    fn training(
        &self,
        task: Self::Task,
        repeat: usize,
        seed: u64,
        config: &FinetuneConfig,
        master_seed: u64,
    ) -> Result<Examples>;

    /// The network the runs of `task`, `repeat` start from when it is not
    /// the frozen one: a fresh readout under `config` (§8, `held-out`).
    /// The test set's cache holds the activity below the readout only, so
    /// it serves such a start too.
    fn fresh_start(
        &self,
        _task: Self::Task,
        _repeat: usize,
        _config: &FinetuneConfig,
        _master_seed: u64,
    ) -> Option<Self::Net> {
        None
    }

    /// One run: its training examples and start, then [`finetune`].
    fn run(
        &self,
        task: Self::Task,
        data: &TaskData<Self::Net>,
        (method, repeat, seed): (Method, usize, u64),
        config: &FinetuneConfig,
        master_seed: u64,
    ) -> Result<RunOutcome> {
        config.validate()?;
        let train = self.training(task, repeat, seed, config, master_seed)?;
        match self.fresh_start(task, repeat, config, master_seed) {
            Some(net) => finetune(&Frozen::new(net), data, train, method, config, seed),
            None => finetune(self.frozen(), data, train, method, config, seed),
        }
    }
}

/// The MLP of §2 on the specific digit tasks (§1, §4).
pub struct DigitTasks<'a> {
    /// The pretrained network.
    pub frozen: &'a Frozen<Model<f32>>,
    /// The digits.
    pub digits: &'a Digits,
}

impl Study for DigitTasks<'_> {
    type Net = Model<f32>;
    type Task = Task;

    fn frozen(&self) -> &Frozen<Model<f32>> {
        self.frozen
    }

    fn task_id(&self, task: Task) -> TaskId {
        task.into()
    }

    fn task_data(
        &self,
        task: Task,
        config: &FinetuneConfig,
        master_seed: u64,
    ) -> Result<TaskData<Model<f32>>> {
        Ok(digit_task_data(
            self.frozen,
            self.digits,
            task,
            config,
            master_seed,
        ))
    }

    fn training(
        &self,
        task: Task,
        _repeat: usize,
        seed: u64,
        config: &FinetuneConfig,
        _master_seed: u64,
    ) -> Result<Examples> {
        let set = training_composites(self.digits, task, config, seed);
        Ok(Examples {
            labels: config.readout.labels(&set).to_vec(),
            inputs: set.images,
        })
    }
}

/// The test set of the digit task `task` (with distractors, from the test
/// pool, seeded by `master_seed` and the task) and its readout (§1, §4).
pub fn digit_task_data(
    frozen: &Frozen<Model<f32>>,
    digits: &Digits,
    task: Task,
    config: &FinetuneConfig,
    master_seed: u64,
) -> TaskData<Model<f32>> {
    let set = task_test_set(digits, task, true, config.test_composites, master_seed);
    let examples = Examples {
        labels: config.readout.labels(&set).to_vec(),
        inputs: set.images,
    };
    TaskData {
        test: EvalSet::new(frozen, examples, config.modulator_mean),
        readout: config.readout.of(task),
    }
}

/// The training composites of the run with `seed` on `task` (§4, §6):
/// `config`'s training examples, with distractors, from the train pool,
/// drawn from the run's own seed so each run sees its own sequence (and a
/// longer sequence extends a shorter one).
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

/// The convolutional network of §8 on the tasks of a multi-task
/// benchmark, one head each; a task is its head's index.
pub struct BenchmarkTasks<'a> {
    /// The pretrained network.
    pub frozen: &'a Frozen<ConvNet<f32>>,
    /// The benchmark's data.
    pub data: &'a BenchmarkData,
}

impl BenchmarkTasks<'_> {
    /// The labels of head `t` of `images`.
    fn examples(&self, images: Images, t: usize) -> Examples {
        let tasks = self.data.task_count();
        Examples {
            labels: images
                .labels
                .iter()
                .skip(t)
                .step_by(tasks)
                .copied()
                .collect(),
            inputs: images.images,
        }
    }

    /// The name of task `t`.
    fn name(&self, t: usize) -> &str {
        &self.data.tasks[t]
    }

    /// The pretrained network with a fresh head for task `t`, as the runs
    /// of `t`, `repeat` start from it under a fresh readout (§8,
    /// `held-out`): seeded by the master seed, the task and the repeat, so
    /// every method starts from the same head.
    pub fn fresh_head(&self, t: usize, repeat: usize, master_seed: u64) -> ConvNet<f32> {
        let mut net = self.frozen.net.clone();
        let seed = derive_seed(
            master_seed,
            &[self.name(t).into(), repeat.into(), "head".into()],
        );
        net.fresh_head(t, seed);
        net
    }
}

impl Study for BenchmarkTasks<'_> {
    type Net = ConvNet<f32>;
    type Task = usize;

    fn frozen(&self) -> &Frozen<ConvNet<f32>> {
        self.frozen
    }

    fn task_id(&self, t: usize) -> TaskId {
        TaskId::try_from(self.name(t).to_string())
            .expect("a benchmark's task names are identifiers (checked when loaded)")
    }

    fn task_data(
        &self,
        t: usize,
        config: &FinetuneConfig,
        master_seed: u64,
    ) -> Result<TaskData<ConvNet<f32>>> {
        let seed = derive_seed(master_seed, &[self.name(t).into(), "test".into()]);
        let images = self
            .data
            .draw_task(t, Pool::Test, config.test_composites, seed)?;
        Ok(TaskData {
            test: EvalSet::new(self.frozen, self.examples(images, t), config.modulator_mean),
            readout: t,
        })
    }

    fn training(
        &self,
        t: usize,
        repeat: usize,
        _seed: u64,
        config: &FinetuneConfig,
        master_seed: u64,
    ) -> Result<Examples> {
        let seed = derive_seed(
            master_seed,
            &[self.name(t).into(), repeat.into(), "train".into()],
        );
        let images = self
            .data
            .draw_task(t, Pool::Train, config.training_examples(), seed)?;
        Ok(self.examples(images, t))
    }

    fn fresh_start(
        &self,
        t: usize,
        repeat: usize,
        config: &FinetuneConfig,
        master_seed: u64,
    ) -> Option<ConvNet<f32>> {
        config
            .fresh_readout
            .then(|| self.fresh_head(t, repeat, master_seed))
    }
}
