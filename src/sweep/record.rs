//! Result records (SPEC §6): one JSON line per run, carrying the full
//! configuration that produced it.

use serde::{Deserialize, Serialize};

use std::path::Path;

use crate::data::{Digits, Task};
use crate::digest::sha256_hex;
use crate::error::{Error, Result};
use crate::net::{Arch, Model};
use crate::sweep::plan::RunKey;
use crate::train::finetune::{FinetuneConfig, Method};

/// Everything that produced a record besides its task, method and repeat;
/// records of different configurations never mix.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SweepConfig {
    /// Fine-tuning settings (protocol, readout, gain options, rates, λ, T, μ_m, σ_m², …).
    #[serde(flatten)]
    pub finetune: FinetuneConfig,
    /// The master seed.
    pub master_seed: u64,
    /// The network's architecture (SPEC §7 JSON).
    pub architecture: Arch,
    /// sha256 of the checkpoint file.
    pub checkpoint_sha256: String,
    /// sha256 of the digits (IDX contents).
    pub data_sha256: String,
    /// comod's version.
    pub comod_version: String,
}

impl SweepConfig {
    /// The configuration of a sweep of the checkpoint at `checkpoint`
    /// (hashed as stored) holding `model`, on `digits`.
    pub fn new(
        checkpoint: &Path,
        model: &Model<f32>,
        digits: &Digits,
        finetune: FinetuneConfig,
        master_seed: u64,
    ) -> Result<SweepConfig> {
        let bytes = std::fs::read(checkpoint).map_err(|e| Error::io(checkpoint, e))?;
        Ok(SweepConfig {
            finetune,
            master_seed,
            architecture: model.arch().clone(),
            checkpoint_sha256: sha256_hex(&[&bytes]),
            data_sha256: digits.sha256().to_string(),
            comod_version: env!("CARGO_PKG_VERSION").to_string(),
        })
    }
}

/// One run's record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Task, e.g. `"1-7@0"`.
    pub task: String,
    /// Method name.
    pub method: Method,
    /// Repeat, from 0.
    pub repeat: usize,
    /// The run's seed.
    pub seed: u64,
    /// Accuracy per measurement, measurement 0 (before any update) first.
    pub curve: Vec<f32>,
    /// Initial slope, accuracy per example (SPEC §5).
    pub slope: f64,
    /// slope / slope of `retrain` on the same task and repeat; null when
    /// retrain was not run (or its slope is 0).
    pub slope_ratio_retrain: Option<f64>,
    /// Examples to criterion; null when censored.
    pub examples_to_criterion: Option<usize>,
    /// Wall time of the run in seconds.
    pub wall_s: f64,
    /// The configuration.
    pub config: SweepConfig,
}

impl Record {
    /// The run this record is of; `None` if its task does not parse.
    pub fn key(&self) -> Option<RunKey> {
        let task: Task = self.task.parse().ok()?;
        Some(RunKey {
            task,
            method: self.method,
            repeat: self.repeat,
        })
    }

    /// The record as one line of JSON, without the newline.
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).expect("a record always serialises")
    }
}
