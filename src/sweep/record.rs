//! Result records (§6, §7): one JSON line per run, carrying its learning
//! curve with its x axis, optionally its fine-tuned coupling, and the full
//! configuration that produced it. One family for both networks: a record
//! of the MLP carries its architecture as §7's format 1 JSON, a record of
//! the convolutional network (§8) the format 2 JSON and its benchmark.
//! Metrics are not stored: they are computed from the curve by
//! [`crate::analysis::metrics`].

use std::fmt::Debug;
use std::path::Path;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::conv::ConvArch;
use crate::data::TaskId;
use crate::data::benchmark::Benchmark;
use crate::digest::sha256_hex;
use crate::error::Result;
use crate::io::read::{MAX_TENSOR_FILE_BYTES, read_bounded};
use crate::net::Arch;
use crate::sweep::plan::{Plan, RunKey};
use crate::train::fault::Failure;
use crate::train::protocol::EpochCounts;
use crate::train::{FinetuneConfig, Method};

/// A network's architecture as its records carry it: what tells the two
/// networks' records apart, and which record formats each has had.
pub trait Architecture:
    Clone + PartialEq + Debug + Serialize + DeserializeOwned + Send + Sync + 'static
{
    /// The record format this version writes for the network.
    const RECORD_FORMAT: u32;
    /// Whether its records name the benchmark they ran on (§8).
    const BENCHMARK: bool;

    /// Checks the architecture's rules.
    fn validate(&self) -> Result<()>;

    /// Brings a record of an older `format` up to [`Self::RECORD_FORMAT`],
    /// or says why it cannot be read.
    fn upgrade(record: &mut Record<Self>) -> std::result::Result<(), String>;
}

/// The MLP's records: format 5 (the sweep's `plan`; 4: a run may have
/// ended in a numerical `failure`; 3: the `dataset` protocol and its
/// `epochs`). Formats 2 to 4 read as they are (format 2's protocol is
/// `online`; no plan); format 1 (no `format` key, no `examples`) is read
/// and upgraded: its x axis is derived from the batch size, its stored
/// metrics are ignored.
impl Architecture for Arch {
    const RECORD_FORMAT: u32 = 5;
    const BENCHMARK: bool = false;

    fn validate(&self) -> Result<()> {
        Arch::validate(self)
    }

    fn upgrade(record: &mut Record<Arch>) -> std::result::Result<(), String> {
        match record.format {
            1 => {
                let batch = record.config.finetune.batch_size;
                record.examples = (0..record.curve.len()).map(|n| n * batch).collect();
            }
            2..=4 => {}
            other => return Err(format!("record format {other} is not one comod wrote")),
        }
        record.format = Self::RECORD_FORMAT;
        Ok(())
    }
}

/// The convolutional network's records (§8): format 2 (the sweep's
/// `plan`); format 1 reads as it is, without a plan.
impl Architecture for ConvArch {
    const RECORD_FORMAT: u32 = 2;
    const BENCHMARK: bool = true;

    fn validate(&self) -> Result<()> {
        ConvArch::validate(self)
    }

    fn upgrade(record: &mut Record<ConvArch>) -> std::result::Result<(), String> {
        match record.format {
            1 => {
                record.format = Self::RECORD_FORMAT;
                Ok(())
            }
            other => Err(format!(
                "multi-task record format {other} (expected {})",
                Self::RECORD_FORMAT
            )),
        }
    }
}

/// Everything that produced a record besides its task, method and repeat;
/// records of different configurations never mix.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(bound = "A: Architecture")]
pub struct SweepConfig<A = Arch> {
    /// Fine-tuning settings (protocol, readout, gain options, rates, λ, T, μ_m, σ_m², …).
    #[serde(flatten)]
    pub finetune: FinetuneConfig,
    /// The benchmark of a multi-task network (§8); none for the MLP's digit tasks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub benchmark: Option<Benchmark>,
    /// The master seed.
    pub master_seed: u64,
    /// The network's architecture (§7 JSON).
    pub architecture: A,
    /// sha256 of the checkpoint file.
    pub checkpoint_sha256: String,
    /// sha256 of the data.
    pub data_sha256: String,
    /// comod's version.
    pub comod_version: String,
}

impl<A: Architecture> SweepConfig<A> {
    /// The configuration of a sweep with `finetune` and `master_seed` of
    /// the network `architecture`, stored at `checkpoint` (hashed as
    /// stored), on data whose sha256 is `data_sha256`, of `benchmark`.
    pub fn new(
        checkpoint: &Path,
        architecture: A,
        (data_sha256, benchmark): (&str, Option<Benchmark>),
        finetune: FinetuneConfig,
        master_seed: u64,
    ) -> Result<SweepConfig<A>> {
        let bytes = read_bounded(checkpoint, MAX_TENSOR_FILE_BYTES)?;
        Ok(SweepConfig {
            finetune,
            benchmark,
            master_seed,
            architecture,
            checkpoint_sha256: sha256_hex(&[&bytes]),
            data_sha256: data_sha256.to_string(),
            comod_version: env!("CARGO_PKG_VERSION").to_string(),
        })
    }
}

/// One run's record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(bound = "A: Architecture")]
pub struct Record<A = Arch> {
    /// Record format ([`Architecture::RECORD_FORMAT`]); absent in the
    /// MLP's format 1.
    #[serde(default = "format_one")]
    pub format: u32,
    /// Task, e.g. `"1-7@0"` or `"even@2"`.
    pub task: TaskId,
    /// Method name.
    pub method: Method,
    /// Repeat, from 0.
    pub repeat: usize,
    /// The run's seed.
    pub seed: u64,
    /// Training examples seen at each measurement: the curve's x axis.
    #[serde(default)]
    pub examples: Vec<usize>,
    /// Test accuracy at each measurement, measurement 0 (before any update) first.
    pub curve: Vec<f32>,
    /// The fine-tuned coupling c (one value per modulated neuron or
    /// channel), when the sweep was asked to keep it (modulation methods
    /// only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coupling: Option<Vec<f32>>,
    /// Epochs trained and kept per data-set size (`dataset` protocol).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epochs: Option<EpochCounts>,
    /// The numerical fault that ended the run (§6): its curve then holds
    /// the measurements before it, and analyses leave the run out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
    /// Wall time of the run in seconds.
    pub wall_s: f64,
    /// The whole plan of the sweep that ran it (absent in records of the
    /// MLP's formats 1 to 4 and the multi-task format 1): what tells a
    /// partial set of records from a complete one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<Plan>,
    /// The configuration.
    pub config: SweepConfig<A>,
}

fn format_one() -> u32 {
    1
}

impl<A: Architecture> Record<A> {
    /// The run this record is of.
    pub fn key(&self) -> RunKey {
        RunKey {
            task: self.task.clone(),
            method: self.method,
            repeat: self.repeat,
        }
    }

    /// Parses one line of a results file, upgrading older formats; the
    /// error says what is wrong with the line.
    pub fn from_line(line: &[u8]) -> std::result::Result<Record<A>, String> {
        let mut record: Record<A> =
            serde_json::from_slice(line).map_err(|e| format!("not a result record ({e})"))?;
        if record.format > A::RECORD_FORMAT {
            return Err(format!(
                "record format {} is newer than this comod reads ({}): use a newer comod",
                record.format,
                A::RECORD_FORMAT
            ));
        }
        if record.format < A::RECORD_FORMAT {
            A::upgrade(&mut record)?;
        }
        if record.examples.len() != record.curve.len() {
            return Err(format!(
                "{} examples for {} measurements",
                record.examples.len(),
                record.curve.len()
            ));
        }
        record.check_values()?;
        if let Some(i) = record.curve.iter().position(|a| !(0.0..=1.0).contains(a)) {
            return Err(format!(
                "accuracy {} at measurement {i} is not in [0, 1]",
                record.curve[i]
            ));
        }
        if let Some(epochs) = &record.epochs
            && (epochs.trained.len() != record.curve.len()
                || epochs.kept.len() != record.curve.len())
        {
            return Err(format!(
                "epochs of {} sizes for {} measurements",
                epochs.trained.len(),
                record.curve.len()
            ));
        }
        Ok(record)
    }

    /// Checks the values a record must hold to be written back as it was
    /// read: a number too large for f32 reads as infinite and would be
    /// written as `null` (§6). The configuration must pass its own checks,
    /// the architecture its rules, the benchmark be named where the
    /// network has one, and the wall time and coupling must be finite.
    fn check_values(&self) -> std::result::Result<(), String> {
        self.config
            .finetune
            .validate()
            .map_err(|e| format!("configuration: {e}"))?;
        self.config
            .architecture
            .validate()
            .map_err(|e| format!("configuration: {e}"))?;
        if self.config.benchmark.is_some() != A::BENCHMARK {
            return Err(if A::BENCHMARK {
                "configuration: a multi-task record must name its benchmark".into()
            } else {
                "configuration: a benchmark with a format 1 architecture".into()
            });
        }
        if !(self.wall_s.is_finite() && self.wall_s >= 0.0) {
            return Err(format!("wall_s {} is not a time", self.wall_s));
        }
        if let Some(c) = &self.coupling
            && let Some(i) = c.iter().position(|v| !v.is_finite())
        {
            return Err(format!("coupling {} at index {i} is not finite", c[i]));
        }
        if let Some(plan) = &self.plan {
            self.check_plan(plan)?;
        }
        Ok(())
    }

    /// Checks that the record's run belongs to its `plan` and the plan
    /// is one a sweep can have.
    fn check_plan(&self, plan: &Plan) -> std::result::Result<(), String> {
        let runs = plan
            .tasks
            .len()
            .checked_mul(plan.methods.len())
            .and_then(|n| n.checked_mul(plan.repeats));
        if plan.shards == 0 || runs.is_none_or(|n| n > crate::sweep::MAX_PLAN_RUNS) {
            return Err("plan: not one a sweep can have (no shard, or too many runs)".into());
        }
        let inside = plan.tasks.contains(&self.task)
            && plan.methods.contains(&self.method)
            && self.repeat < plan.repeats;
        if !inside {
            return Err(format!(
                "plan: does not hold the record's own run {}",
                self.key()
            ));
        }
        Ok(())
    }

    /// Whether the run ended in a numerical fault (§6).
    pub fn failed(&self) -> bool {
        self.failure.is_some()
    }

    /// The record as one line of JSON, without the newline.
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).expect("a record always serialises")
    }
}
