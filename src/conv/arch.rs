//! Architectures of the convolutional, multi-task networks (§8) and their
//! JSON form (§7, format 2).
//!
//! A network is a list of stages with its shapes carried through: `conv`
//! and `maxpool` stages on feature maps, then `dense` stages on the
//! flattened map, then one binary head (2 logits) per task on the last
//! dense stage, the gated one. One conv stage is modulated per channel.
//! Format 1 files (the first paper's MLPs, [`crate::net::Arch`]) stay as
//! they are; a format 2 file is read here.

use serde::{Deserialize, Serialize};

use crate::data::Shape;
use crate::error::{Error, Result};
use crate::net::arch::CONV_ARCH_FORMAT;

/// Largest kernel side accepted.
pub const MAX_KERNEL: usize = 11;
/// Most channels or neurons of one stage.
pub const MAX_WIDTH: usize = 4096;
/// Most values of one feature map (a typo fails here, not in allocation).
pub const MAX_MAP: usize = 1 << 22;
/// Most stages.
pub const MAX_STAGES: usize = 32;
/// Most parameters of a whole network (64 MiB of f32; Adam and gradients
/// hold three more copies), and most activation values of one example
/// over all stages: a network too large to train fails here, not in
/// allocation.
pub const MAX_NETWORK_VALUES: usize = 1 << 24;
/// Most tasks (heads).
pub const MAX_TASKS: usize = 256;
/// Logits of one binary head.
pub const HEAD_LOGITS: usize = 2;

/// One stage of a convolutional network (§8).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum Stage {
    /// k×k convolution, stride 1, zero padding k/2, ReLU.
    Conv {
        /// Output channels.
        channels: usize,
        /// Kernel side k (odd).
        kernel: usize,
    },
    /// 2×2 max-pool, stride 2 (a struct variant, so that a field given
    /// to it, e.g. a kernel, is refused rather than ignored).
    Maxpool {},
    /// All-to-all on the flattened input, ReLU; the last one is gated.
    Dense {
        /// Neurons.
        size: usize,
    },
}

/// A whole convolutional multi-task network: the format 2 JSON of §7.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConvArch {
    /// Format version, 2.
    pub format: u32,
    /// Shape of one input image.
    pub input: Shape,
    /// The stages, input first.
    pub stages: Vec<Stage>,
    /// Number of tasks: one binary head each.
    pub tasks: usize,
    /// The modulated conv stage, counted from 1 over all stages.
    pub modulated_stage: usize,
    /// The constant β of the modulation exp(m·c_k − β).
    pub beta: f32,
}

/// Names of the built-in convolutional architectures.
pub const CONV_PRESETS: [&str; 3] = ["conv-mnist", "conv-cifar", "conv-celeba"];

impl ConvArch {
    /// A built-in architecture for `tasks` heads, modulated at its first conv stage:
    /// - `conv-mnist` (1×28×28): conv 3×3 8 → pool → conv 3×3 16 → pool → dense 128;
    /// - `conv-cifar` (3×32×32): conv 3×3 16 → pool → conv 3×3 32 → pool → dense 128;
    /// - `conv-celeba` (3×64×64): conv 3×3 16 → pool → conv 3×3 32 → pool →
    ///   conv 3×3 32 → pool → dense 128.
    pub fn preset(name: &str, tasks: usize) -> Result<ConvArch> {
        let conv = |channels| Stage::Conv {
            channels,
            kernel: 3,
        };
        let (input, stages) = match name {
            "conv-mnist" => (
                (1, 28),
                vec![
                    conv(8),
                    Stage::Maxpool {},
                    conv(16),
                    Stage::Maxpool {},
                    Stage::Dense { size: 128 },
                ],
            ),
            "conv-cifar" => (
                (3, 32),
                vec![
                    conv(16),
                    Stage::Maxpool {},
                    conv(32),
                    Stage::Maxpool {},
                    Stage::Dense { size: 128 },
                ],
            ),
            "conv-celeba" => (
                (3, 64),
                vec![
                    conv(16),
                    Stage::Maxpool {},
                    conv(32),
                    Stage::Maxpool {},
                    conv(32),
                    Stage::Maxpool {},
                    Stage::Dense { size: 128 },
                ],
            ),
            other => {
                return Err(Error::Arch(format!(
                    "unknown convolutional architecture {other:?}: use one of {} or a path to a format 2 JSON file",
                    CONV_PRESETS.join(", ")
                )));
            }
        };
        let arch = ConvArch {
            format: CONV_ARCH_FORMAT,
            input: Shape {
                channels: input.0,
                height: input.1,
                width: input.1,
            },
            stages,
            tasks,
            modulated_stage: 1,
            beta: 0.0,
        };
        arch.validate()?;
        Ok(arch)
    }

    /// A preset or a path to a format 2 JSON file, as `--arch` names it.
    pub fn resolve(name: &str, tasks: usize) -> Result<ConvArch> {
        if CONV_PRESETS.contains(&name) || !name.ends_with(".json") {
            return ConvArch::preset(name, tasks);
        }
        let path = std::path::Path::new(name);
        let bytes = crate::io::read::read_bounded(path, crate::io::read::MAX_ARCH_JSON_BYTES)
            .map_err(|e| Error::Arch(format!("--arch {e}")))?;
        let text = String::from_utf8(bytes)
            .map_err(|_| Error::Arch(format!("--arch {name}: not UTF-8 text")))?;
        ConvArch::from_json(&text).map_err(|e| Error::Arch(format!("--arch {name}: {e}")))
    }

    /// Parses and validates the format 2 JSON.
    pub fn from_json(text: &str) -> Result<ConvArch> {
        let arch: ConvArch =
            serde_json::from_str(text).map_err(|e| Error::Arch(format!("invalid JSON: {e}")))?;
        arch.validate()?;
        Ok(arch)
    }

    /// The architecture study's variant (§8): every conv stage's channels
    /// times `width` (rounded, at least 1), modulated at its
    /// `modulated_conv`-th conv stage (from 1; `None`: where it is).
    pub fn variant(&self, width: f64, modulated_conv: Option<usize>) -> Result<ConvArch> {
        if !(width.is_finite() && width > 0.0) {
            return Err(Error::option("--width", width, "must be a positive factor"));
        }
        let convs: Vec<usize> = (self.stages.iter().enumerate())
            .filter(|(_, s)| matches!(s, Stage::Conv { .. }))
            .map(|(i, _)| i + 1)
            .collect();
        let modulated_stage = match modulated_conv {
            None => Some(self.modulated_stage),
            Some(k) => k.checked_sub(1).and_then(|k| convs.get(k)).copied(),
        };
        let Some(modulated_stage) = modulated_stage else {
            return Err(Error::option(
                "--modulated-conv",
                modulated_conv.unwrap_or(0),
                format!(
                    "the network has {} conv stages (counted from 1)",
                    convs.len()
                ),
            ));
        };
        let stages = (self.stages.iter())
            .map(|&stage| match stage {
                Stage::Conv { channels, kernel } => Stage::Conv {
                    channels: ((channels as f64 * width).round() as usize).max(1),
                    kernel,
                },
                other => other,
            })
            .collect();
        let arch = ConvArch {
            stages,
            modulated_stage,
            ..self.clone()
        };
        arch.validate()?;
        Ok(arch)
    }

    /// The format 2 JSON, one line.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("an architecture always serialises")
    }

    /// The shape each stage receives, then the shape the last one gives
    /// (dense outputs as `size`×1×1): `stages.len() + 1` shapes.
    pub fn shapes(&self) -> Vec<Shape> {
        let mut shapes = vec![self.input];
        for stage in &self.stages {
            let last = *shapes.last().expect("starts with the input");
            shapes.push(match *stage {
                Stage::Conv { channels, .. } => Shape { channels, ..last },
                Stage::Maxpool {} => last.pooled(),
                Stage::Dense { size } => Shape {
                    channels: size,
                    height: 1,
                    width: 1,
                },
            });
        }
        shapes
    }

    /// Whether pretraining (§8, which runs the network without a modulator)
    /// trains the same network, bit for bit, for `self` and `other`: the
    /// same input, stages and heads; neither the modulated stage nor β
    /// enters it. The report's architecture study pretrains such a
    /// backbone once.
    pub fn pretrains_as(&self, other: &ConvArch) -> bool {
        self.format == other.format
            && self.input == other.input
            && self.stages == other.stages
            && self.tasks == other.tasks
    }

    /// Channels of the modulated stage: the length of the coupling c.
    pub fn modulated_channels(&self) -> usize {
        match self.stages[self.modulated_stage - 1] {
            Stage::Conv { channels, .. } => channels,
            _ => unreachable!("validated: the modulated stage is a conv stage"),
        }
    }

    /// The stage (0-based) before which the per-channel factor of the
    /// modulated stage can be applied: the first after it that is not a
    /// max-pool. A positive factor per channel commutes with a max-pool,
    /// exactly (rounding is monotonic), so a trial pools its stimulus'
    /// features once and scales the pooled map for each sample.
    pub fn scaling_stage(&self) -> usize {
        let mut s = self.modulated_stage;
        while matches!(self.stages.get(s), Some(Stage::Maxpool {})) {
            s += 1;
        }
        s
    }

    /// Neurons of the gated (last dense) stage: the length of the gain g.
    pub fn gated_size(&self) -> usize {
        self.shapes().last().expect("non-empty").channels
    }

    /// Logits of all heads.
    pub fn logits(&self) -> usize {
        self.tasks * HEAD_LOGITS
    }

    /// Multiply-adds of one image's forward pass.
    pub fn forward_macs(&self) -> usize {
        self.macs_from(0)
    }

    /// Multiply-adds of one image's forward pass from stage index `from` (0-based) on.
    pub fn macs_from(&self, from: usize) -> usize {
        let shapes = self.shapes();
        let mut macs = 0;
        for (i, stage) in self.stages.iter().enumerate().skip(from) {
            let (inp, out) = (shapes[i], shapes[i + 1]);
            macs += match *stage {
                Stage::Conv { channels, kernel } => {
                    out.pixels() * channels * kernel * kernel * inp.channels
                }
                Stage::Maxpool {} => 0,
                Stage::Dense { size } => size * inp.len(),
            };
        }
        macs + self.logits() * self.gated_size()
    }

    /// Checks that the network takes the images (`shape`) of the benchmark
    /// called `benchmark` and has one head for each of its `tasks`.
    pub fn check_fits(&self, benchmark: &str, shape: Shape, tasks: usize) -> Result<()> {
        if self.input == shape && self.tasks == tasks {
            return Ok(());
        }
        let Shape {
            channels,
            height,
            width,
        } = self.input;
        Err(Error::Arch(format!(
            "the network takes {channels}×{height}×{width} images and has {} heads; {benchmark} has {}×{}×{} images and {tasks} tasks",
            self.tasks, shape.channels, shape.height, shape.width
        )))
    }

    /// Checks the rules of §8.
    pub fn validate(&self) -> Result<()> {
        let fail = |m: String| Err(Error::Arch(m));
        if self.format != CONV_ARCH_FORMAT {
            return fail(format!(
                "format {} is not a convolutional architecture (expected {CONV_ARCH_FORMAT})",
                self.format
            ));
        }
        let Shape {
            channels,
            height,
            width,
        } = self.input;
        if channels == 0
            || height == 0
            || width == 0
            || channels > MAX_WIDTH
            || self.input.checked_len().is_none_or(|n| n > MAX_MAP)
        {
            return fail(format!(
                "input {channels}×{height}×{width}: every side must be ≥ 1 and the map at most {MAX_MAP} values"
            ));
        }
        let n = self.stages.len();
        if n == 0 || n > MAX_STAGES {
            return fail(format!("{n} stages: need 1 to {MAX_STAGES}"));
        }
        let mut shape = self.input;
        let mut dense_seen = false;
        // Parameters and activation values so far (each stage's are at
        // most MAX_MAP × 4, so the sums cannot overflow).
        let (mut params, mut values) = (0usize, shape.len());
        for (i, stage) in self.stages.iter().enumerate() {
            let s = i + 1;
            match *stage {
                Stage::Conv { channels, kernel } => {
                    if dense_seen {
                        return fail(format!("stage {s} is conv after a dense stage"));
                    }
                    if channels == 0 || channels > MAX_WIDTH {
                        return fail(format!(
                            "stage {s} has {channels} channels (1..={MAX_WIDTH})"
                        ));
                    }
                    if kernel % 2 == 0 || kernel > MAX_KERNEL {
                        return fail(format!(
                            "stage {s} has kernel {kernel}: need an odd side ≤ {MAX_KERNEL}"
                        ));
                    }
                    let patch = kernel * kernel * shape.channels;
                    if shape.pixels() * channels > MAX_MAP || patch * channels > MAX_MAP {
                        return fail(format!(
                            "stage {s} is too large (more than {MAX_MAP} values)"
                        ));
                    }
                    shape.channels = channels;
                    params += (patch + 1) * channels;
                    values += shape.len();
                }
                Stage::Maxpool {} => {
                    if dense_seen {
                        return fail(format!("stage {s} is maxpool after a dense stage"));
                    }
                    if shape.height < 2 || shape.width < 2 {
                        return fail(format!(
                            "stage {s} pools a {}×{} map: need at least 2×2",
                            shape.height, shape.width
                        ));
                    }
                    shape = shape.pooled();
                    values += shape.len();
                }
                Stage::Dense { size } => {
                    if size == 0 || size > MAX_WIDTH || size * shape.len() > MAX_MAP * 4 {
                        return fail(format!(
                            "stage {s} has size {size} (1..={MAX_WIDTH}, at most {} weights)",
                            MAX_MAP * 4
                        ));
                    }
                    dense_seen = true;
                    params += (shape.len() + 1) * size;
                    values += size;
                    shape = Shape {
                        channels: size,
                        height: 1,
                        width: 1,
                    };
                }
            }
        }
        if !matches!(self.stages[n - 1], Stage::Dense { .. }) {
            return fail("the last stage must be dense (the gated layer feeding the heads)".into());
        }
        if self.tasks == 0 || self.tasks > MAX_TASKS {
            return fail(format!("{} tasks: need 1 to {MAX_TASKS}", self.tasks));
        }
        params += (shape.len() + 1) * HEAD_LOGITS * self.tasks;
        if params > MAX_NETWORK_VALUES || values > MAX_NETWORK_VALUES {
            return fail(format!(
                "the network is too large: {params} parameters and {values} activation values per example (at most {MAX_NETWORK_VALUES} each)"
            ));
        }
        let modulated = self.modulated_stage;
        if modulated == 0
            || modulated > n
            || !matches!(self.stages[modulated - 1], Stage::Conv { .. })
        {
            return fail(format!(
                "modulated_stage {modulated} is not a conv stage (stages count from 1)"
            ));
        }
        if !self.beta.is_finite() {
            return fail("beta is not finite".into());
        }
        Ok(())
    }
}
