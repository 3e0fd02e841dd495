//! What a report runs (§5 "Reproduction study"): its cells (reading ×
//! readout × protocol), the network variants of Fig. 3, and the tasks and
//! repeats of each scale.

use crate::data::Task;
use crate::data::benchmark::Benchmark;
use crate::sweep::plan::{FULL_REPEATS, reproduction_tasks};
use crate::train::PretrainOptions;
use crate::train::config::FinetuneConfig;
use crate::train::options::DatasetOptions;
use crate::train::options::Protocol;
use crate::train::options::Reading;
use crate::train::options::ReadoutKind;

/// How much a report runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scale {
    /// About 15 minutes on 2 cores with AVX-512 (24 without):
    /// [`QUICK_TASKS`] tasks ([`QUICK_PRIMARY_TASKS`] in the primary
    /// cell), few repeats, small `dataset` runs under `spec` only, §8's
    /// cells `online` only.
    Quick,
    /// The paper's scale: all 180 tasks × 10 repeats, every cell.
    Full,
    /// The plumbing of a report in well under a minute (the test suite's):
    /// the quick report's cells on runs cut to a few batches and samples.
    /// Its numbers measure nothing.
    Smoke,
}

/// Tasks of a quick report (the first of the reproduction's, two per
/// quadrant, every one a different digit pair).
pub const QUICK_TASKS: usize = 8;
/// Tasks of a quick report's primary cell (and the analyses run in it):
/// 16 different pairs. With 8 units the smallest exact two-sided p is
/// 2/2⁸ = 0.0078, which Holm's correction over the primary family's 15
/// tests lifts above 0.05: no claim of that family could be judged.
pub const QUICK_PRIMARY_TASKS: usize = 16;
/// Repeats of a quick report's `online` cells.
pub const QUICK_REPEATS: usize = 2;
/// Sizes of a quick report's `dataset` cell (S = 10: 10 … 50 examples).
pub const QUICK_SIZES: usize = 5;
/// Pretraining seeds of each Fig. 3 variant at full scale (§5 (e)).
pub const FULL_VARIANT_SEEDS: usize = 3;
/// Tasks of the task-switching experiment at full scale.
pub const FULL_SWITCHING_TASKS: usize = 24;
/// Tasks of the task-switching experiment in a quick report: more than
/// the cells' 8, since only the tasks `retrain` learns count (§5 (f)).
pub const QUICK_SWITCHING_TASKS: usize = 16;

impl Scale {
    /// The folder name of its runs.
    pub fn name(self) -> &'static str {
        match self {
            Scale::Quick => "quick",
            Scale::Full => "full",
            Scale::Smoke => "smoke",
        }
    }

    /// Tasks and repeats of its sweeps.
    pub fn tasks(self) -> (Vec<Task>, usize) {
        match self {
            Scale::Quick => (reproduction_tasks()[..QUICK_TASKS].to_vec(), QUICK_REPEATS),
            Scale::Full => (Task::all(), FULL_REPEATS),
            Scale::Smoke => (reproduction_tasks()[..QUICK_TASKS].to_vec(), 1),
        }
    }

    /// Tasks of the switching experiment (one repeat each).
    pub fn switching_tasks(self) -> Vec<Task> {
        match self {
            Scale::Quick => reproduction_tasks()[..QUICK_SWITCHING_TASKS].to_vec(),
            Scale::Full => reproduction_tasks()[..FULL_SWITCHING_TASKS].to_vec(),
            Scale::Smoke => reproduction_tasks()[..2].to_vec(),
        }
    }

    /// Pretraining epoch cap of the extra networks of a report (the Fig. 3
    /// variants, the Fashion-MNIST and §8 networks; `None`: the default,
    /// so that every variant reaches the same criterion, §5 (e); only the
    /// smoke check, whose numbers measure nothing, caps it).
    pub fn pretrain_cap(self) -> Option<usize> {
        match self {
            Scale::Quick | Scale::Full => None,
            Scale::Smoke => Some(2),
        }
    }

    /// Pretraining seeds of each Fig. 3 variant (§5 (e)).
    pub fn variant_seeds(self) -> usize {
        match self {
            Scale::Full => FULL_VARIANT_SEEDS,
            Scale::Quick | Scale::Smoke => 1,
        }
    }

    /// The protocols of the §8 cells: `online`, and at full scale
    /// `dataset` as well.
    pub fn multitask_protocols(self) -> Vec<Protocol> {
        match self {
            Scale::Full => vec![Protocol::Online, Protocol::Dataset(DatasetOptions::DEFAULT)],
            Scale::Quick | Scale::Smoke => vec![Protocol::Online],
        }
    }

    /// The benchmarks of the §8 architecture study: both shipped ones at
    /// full scale, `mnist-attributes` otherwise.
    pub fn architecture_benchmarks(self) -> &'static [Benchmark] {
        match self {
            Scale::Full => &crate::report::multitask::BENCHMARKS,
            Scale::Quick | Scale::Smoke => &[Benchmark::MnistAttributes],
        }
    }

    /// Repeats per task of each §8 architecture variant.
    pub fn architecture_repeats(self) -> usize {
        match self {
            Scale::Full => FULL_REPEATS,
            Scale::Quick | Scale::Smoke => 1,
        }
    }

    /// `config` as this scale runs it: unchanged, except for `Smoke`.
    pub fn trim(self, config: FinetuneConfig) -> FinetuneConfig {
        if self != Scale::Smoke {
            return config;
        }
        let protocol = match config.protocol {
            Protocol::Dataset(options) => Protocol::Dataset(DatasetOptions {
                sizes: 2,
                max_epochs: 3,
                ..options
            }),
            Protocol::Online => Protocol::Online,
        };
        FinetuneConfig {
            protocol,
            batches: 10,
            test_composites: 100,
            samples: config.samples.min(20),
            ..config
        }
    }
}

/// Whether runs of `reading`, `readout` and `protocol` are in the primary
/// setting (§5: `spec`, `all`, `online`, the paper's as the spec reads it).
pub fn is_primary(reading: Reading, readout: ReadoutKind, protocol: Protocol) -> bool {
    reading == Reading::Spec && readout == ReadoutKind::All && protocol == Protocol::Online
}

/// The pretraining of a report's extra networks at `scale` from `seed`
/// (the Fig. 3 variants, Fashion-MNIST's network): §4's, with the scale's
/// cap ([`Scale::pretrain_cap`]).
pub fn pretrain_options(scale: Scale, seed: u64) -> PretrainOptions {
    let defaults = PretrainOptions {
        seed,
        ..PretrainOptions::DEFAULT
    };
    PretrainOptions {
        max_epochs: scale.pretrain_cap().unwrap_or(defaults.max_epochs),
        ..defaults
    }
}

/// One configuration the method claims are judged under.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Cell {
    /// The reading (§3).
    pub reading: Reading,
    /// The readout (§2).
    pub readout: ReadoutKind,
    /// The protocol (§4).
    pub protocol: Protocol,
    /// Repeats per task.
    pub repeats: usize,
    /// The scale it runs at.
    pub scale: Scale,
}

impl Cell {
    /// `reading-readout-protocol`, the name of its results file.
    pub fn name(&self) -> String {
        format!(
            "{}-{}-{}",
            self.reading.name(),
            self.readout.name(),
            self.protocol.name()
        )
    }

    /// Whether it is the primary cell (§5: `spec`, `all`, `online`), whose
    /// claims form the Holm family `primary`.
    pub fn is_primary(&self) -> bool {
        is_primary(self.reading, self.readout, self.protocol)
    }

    /// The tasks it runs: its scale's, except that a quick report's
    /// primary cell runs [`QUICK_PRIMARY_TASKS`].
    pub fn tasks(&self) -> Vec<Task> {
        match (self.scale, self.is_primary()) {
            (Scale::Quick, true) => reproduction_tasks()[..QUICK_PRIMARY_TASKS].to_vec(),
            _ => self.scale.tasks().0,
        }
    }

    /// Its fine-tuning configuration.
    pub fn config(&self) -> FinetuneConfig {
        self.scale.trim(FinetuneConfig {
            readout: self.readout,
            ..self.reading.under(self.protocol)
        })
    }
}

/// The cells of `scale`: every reading × both readouts under `online`;
/// under `dataset`, every cell at full scale (the readings' own patience),
/// only `spec` × `all` with [`QUICK_SIZES`] sizes and one repeat in a
/// quick report.
pub fn cells(scale: Scale) -> Vec<Cell> {
    let (_, repeats) = scale.tasks();
    let mut cells = Vec::new();
    for reading in Reading::ALL {
        for readout in [ReadoutKind::All, ReadoutKind::Pair] {
            cells.push(Cell {
                reading,
                readout,
                protocol: Protocol::Online,
                repeats,
                scale,
            });
        }
    }
    match scale {
        Scale::Quick | Scale::Smoke => cells.push(Cell {
            reading: Reading::Spec,
            readout: ReadoutKind::All,
            protocol: Protocol::Dataset(DatasetOptions {
                sizes: QUICK_SIZES,
                ..DatasetOptions::DEFAULT
            }),
            repeats: 1,
            scale,
        }),
        Scale::Full => {
            for reading in Reading::ALL {
                let own = match reading.config().protocol {
                    Protocol::Dataset(options) => options,
                    Protocol::Online => DatasetOptions::DEFAULT,
                };
                for readout in [ReadoutKind::All, ReadoutKind::Pair] {
                    cells.push(Cell {
                        reading,
                        readout,
                        protocol: Protocol::Dataset(own),
                        repeats,
                        scale,
                    });
                }
            }
        }
    }
    cells
}

/// The networks of Fig. 3 (§2): preset and modulated layer. The first
/// two answer "4 layers slower than 3"; the ReLU pairs "early modulation
/// better with a dense layer 2, late with a local one".
pub const VARIANTS: [(&str, usize); 6] = [
    ("paper3", 1),
    ("deep4", 1),
    ("relu-deep4", 1),
    ("relu-deep4", 2),
    ("relu-local2", 1),
    ("relu-local2", 2),
];

/// A variant's name, e.g. `relu-local2-l2`.
pub fn variant_name((preset, layer): (&str, usize)) -> String {
    format!("{preset}-l{layer}")
}
