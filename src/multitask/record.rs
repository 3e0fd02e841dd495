//! Records of multi-task fine-tuning runs (§6, §8): one JSON line per
//! (task, method, repeat), kept by the same store as the first paper's
//! records ([`crate::sweep::store`]): resumable, shardable, mergeable.

use serde::{Deserialize, Serialize};

use crate::conv::ConvArch;
use crate::data::TaskId;
use crate::multitask::data::Benchmark;
use crate::sweep::plan::RunKey;
use crate::sweep::store::Stored;
use crate::train::fault::Failure;
use crate::train::{FinetuneConfig, Method};

/// The multi-task record format.
pub const MULTITASK_RECORD_FORMAT: u32 = 1;

/// Everything that produced a multi-task record besides its run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MultitaskConfig {
    /// Fine-tuning settings (§4; `online` protocol).
    #[serde(flatten)]
    pub finetune: FinetuneConfig,
    /// The benchmark.
    pub benchmark: Benchmark,
    /// The master seed.
    pub master_seed: u64,
    /// The network (§7, format 2).
    pub architecture: ConvArch,
    /// sha256 of the checkpoint file.
    pub checkpoint_sha256: String,
    /// sha256 of the data.
    pub data_sha256: String,
    /// comod's version.
    pub comod_version: String,
}

/// One multi-task fine-tuning run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MultitaskRecord {
    /// [`MULTITASK_RECORD_FORMAT`].
    pub format: u32,
    /// The task's name, e.g. `even@2`.
    pub task: TaskId,
    /// Method.
    pub method: Method,
    /// Repeat, from 0.
    pub repeat: usize,
    /// The run's seed.
    pub seed: u64,
    /// Examples seen at each measurement.
    pub examples: Vec<usize>,
    /// Test accuracy of the task's head at each measurement.
    pub curve: Vec<f32>,
    /// The fine-tuned per-channel coupling (modulation methods).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coupling: Option<Vec<f32>>,
    /// The numerical fault that ended the run, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
    /// Wall time in seconds.
    pub wall_s: f64,
    /// The configuration.
    pub config: MultitaskConfig,
}

impl Stored for MultitaskRecord {
    type Config = MultitaskConfig;

    fn key(&self) -> RunKey {
        RunKey {
            task: self.task.clone(),
            method: self.method,
            repeat: self.repeat,
        }
    }

    fn config(&self) -> &MultitaskConfig {
        &self.config
    }

    fn from_line(line: &[u8]) -> std::result::Result<Self, String> {
        let record: MultitaskRecord =
            serde_json::from_slice(line).map_err(|e| format!("not a multi-task record: {e}"))?;
        if record.format != MULTITASK_RECORD_FORMAT {
            return Err(format!(
                "record format {} (expected {MULTITASK_RECORD_FORMAT})",
                record.format
            ));
        }
        if record.curve.len() != record.examples.len() || record.curve.is_empty() {
            return Err(format!(
                "{} accuracies for {} measurements",
                record.curve.len(),
                record.examples.len()
            ));
        }
        if let Some(i) = record.curve.iter().position(|a| !(0.0..=1.0).contains(a)) {
            return Err(format!(
                "accuracy {} at measurement {i} is not in [0, 1]",
                record.curve[i]
            ));
        }
        record
            .config
            .architecture
            .validate()
            .map_err(|e| format!("architecture: {e}"))?;
        Ok(record)
    }

    fn to_line(&self) -> String {
        serde_json::to_string(self).expect("a record always serialises")
    }
}

impl MultitaskRecord {
    /// Whether the run ended in a numerical fault.
    pub fn failed(&self) -> bool {
        self.failure.is_some()
    }
}

impl crate::analysis::metrics::RunCurve for MultitaskRecord {
    fn task(&self) -> &TaskId {
        &self.task
    }
    fn method(&self) -> Method {
        self.method
    }
    fn examples(&self) -> &[usize] {
        &self.examples
    }
    fn curve(&self) -> &[f32] {
        &self.curve
    }
    fn failed(&self) -> bool {
        MultitaskRecord::failed(self)
    }
}
