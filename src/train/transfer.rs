//! The two transfer protocols of the multi-task benchmarks (§8): which
//! tasks the backbone is pretrained on, when its pretraining stops, which
//! tasks are then fine-tuned, and whether each starts from a fresh head.

use serde::{Deserialize, Serialize};

use crate::data::benchmark::BenchmarkData;
use crate::train::config::FinetuneConfig;

/// How a multi-task network is pretrained and then fine-tuned (§8).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Transfer {
    /// Task adaptation: the backbone is pretrained on the benchmark's
    /// pretraining tasks only; each held-out task is learned with a fresh
    /// head that every method trains.
    #[default]
    HeldOut,
    /// Pretraining on every task jointly to convergence, then each task
    /// fine-tuned from it with its own pretrained head (§4).
    Joint,
}

crate::named!(Transfer {
    Transfer::HeldOut => "held-out",
    Transfer::Joint => "joint",
});

impl Transfer {
    /// The tasks the backbone is pretrained on, in head order.
    pub fn pretraining_tasks(self, data: &BenchmarkData) -> Vec<usize> {
        match self {
            Transfer::HeldOut => data.pretraining_tasks(),
            Transfer::Joint => (0..data.task_count()).collect(),
        }
    }

    /// The tasks that are fine-tuned, in head order.
    pub fn finetuned_tasks(self, data: &BenchmarkData) -> Vec<usize> {
        match self {
            Transfer::HeldOut => data.held_out.clone(),
            Transfer::Joint => (0..data.task_count()).collect(),
        }
    }

    /// Whether each run starts from a fresh head that every method trains.
    pub fn fresh_head(self) -> bool {
        self == Transfer::HeldOut
    }

    /// `config` as this protocol fine-tunes: with a fresh readout under
    /// `held-out`.
    pub fn finetune(self, config: FinetuneConfig) -> FinetuneConfig {
        FinetuneConfig {
            fresh_readout: self.fresh_head(),
            ..config
        }
    }
}
