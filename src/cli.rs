//! Command-line arguments of the `comod` binary: every flag with its
//! default, and their checks (a module of `main.rs`, not of the library).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use comod::kernel::{GainRule, SAMPLES};
use comod::net::Arch;
use comod::net::arch::PRESETS;
use comod::sweep::plan::Shard;
use comod::train::finetune::{FinetuneConfig, LearningRates, Method, ReadoutKind};
use comod::train::gain::{GainInput, GainNorm, GainOptions, GainSmoothing};

/// Learned stochastic co-modulation: fine-tune a frozen network by learning
/// how a random modulator couples into it (Haimerl, Simoncelli & Savin 2022).
#[derive(Parser)]
#[command(name = "comod", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Pretrain a network on the general 10-way task (SPEC §4) and save it.
    Pretrain(PretrainArgs),
    /// Held-out accuracy of a checkpoint on the general task, and the pair
    /// accuracy of specific tasks with and without distractors (Fig. 2A).
    Eval(EvalArgs),
    /// Fine-tune the pretrained network on tasks × methods × repeats
    /// (SPEC §4, §6), appending one JSON line per run; resumable, shardable.
    Sweep(SweepArgs),
    /// Join shard result files into one, rejecting duplicated runs and
    /// mixed configurations.
    Merge(MergeArgs),
    /// Summary of a results file per method (mean ± s.e.m.), printed and
    /// written as Markdown and CSV; with --plots, PNG figures.
    Summary(SummaryArgs),
    /// The main job: pretrain (or reuse a matching checkpoint), sweep, then
    /// summary and plots, all in one folder.
    Reproduce(ReproduceArgs),
    /// Verification interface (SPEC §7): per-trial gains, logits, loss and
    /// every gradient for the inputs of a safetensors file.
    Trace(TraceArgs),
    /// Time the fused trial kernel (SPEC §3) on its workloads beside the
    /// machine's SGEMM peak measured in the same run.
    Bench(BenchArgs),
}

/// The settings of fine-tuning runs (SPEC §3, §4), shared by `sweep` and `reproduce`.
#[derive(clap::Args, Clone)]
pub struct RunOptions {
    /// Methods, comma-separated.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "stochastic,deterministic,retrain,retrain-last"
    )]
    pub methods: Vec<Method>,
    /// Master seed; each run's seed is a hash of it with task, method and repeat.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Readout of the binary task: `pair` (softmax over the two logits) or
    /// `all` (10-way, label = target digit).
    #[arg(long, value_enum, default_value = "pair")]
    pub readout: ReadoutKind,
    /// Per-trial gain rule.
    #[arg(long, value_enum, default_value = "covariance")]
    pub gain_rule: GainRule,
    /// Gain normalisation (`none` with `--gain-smoothing none`: the literal Eq. 3).
    #[arg(long, value_enum, default_value = "mean1")]
    pub gain_norm: GainNorm,
    /// Gain smoothing across batches.
    #[arg(long, value_enum, default_value = "running")]
    pub gain_smoothing: GainSmoothing,
    /// What the gain is estimated on.
    #[arg(long, value_enum, default_value = "batch")]
    pub gain_input: GainInput,
    /// Learning rate of `stochastic`.
    #[arg(long, default_value_t = 1e-2)]
    pub lr_stochastic: f32,
    /// Learning rate of `deterministic`.
    #[arg(long, default_value_t = 1e-2)]
    pub lr_deterministic: f32,
    /// Learning rate of `retrain`.
    #[arg(long, default_value_t = 1e-4)]
    pub lr_retrain: f32,
    /// Learning rate of `retrain-last`.
    #[arg(long, default_value_t = 1e-3)]
    pub lr_retrain_last: f32,
    /// λ of the L1 term on what is trained.
    #[arg(long, default_value_t = 0.1)]
    pub lambda: f32,
    /// Modulator samples per trial, T.
    #[arg(long, default_value_t = SAMPLES)]
    pub samples: usize,
    /// Batches of 2 in the online pass (measurements: batches + 1).
    #[arg(long, default_value_t = 250)]
    pub batches: usize,
    /// Composites of each task's fixed test set.
    #[arg(long, default_value_t = 1000)]
    pub test_composites: usize,
}

impl RunOptions {
    /// The fine-tuning configuration these flags describe.
    pub fn finetune_config(&self) -> Result<FinetuneConfig> {
        for (flag, lr) in [
            ("--lr-stochastic", self.lr_stochastic),
            ("--lr-deterministic", self.lr_deterministic),
            ("--lr-retrain", self.lr_retrain),
            ("--lr-retrain-last", self.lr_retrain_last),
        ] {
            if !(lr.is_finite() && lr > 0.0) {
                anyhow::bail!("{flag} {lr}: a learning rate must be positive");
            }
        }
        if !(self.lambda.is_finite() && self.lambda >= 0.0) {
            anyhow::bail!("--lambda {}: must be ≥ 0", self.lambda);
        }
        for (flag, v) in [
            ("--samples", self.samples),
            ("--batches", self.batches),
            ("--test-composites", self.test_composites),
        ] {
            if v == 0 {
                anyhow::bail!("{flag} 0: must be at least 1");
            }
        }
        Ok(FinetuneConfig {
            readout: self.readout,
            gain: GainOptions {
                rule: self.gain_rule,
                norm: self.gain_norm,
                smoothing: self.gain_smoothing,
                input: self.gain_input,
            },
            lr: LearningRates {
                stochastic: self.lr_stochastic,
                deterministic: self.lr_deterministic,
                retrain: self.lr_retrain,
                retrain_last: self.lr_retrain_last,
            },
            lambda: self.lambda,
            samples: self.samples,
            batches: self.batches,
            test_composites: self.test_composites,
            ..FinetuneConfig::default()
        })
    }
}

#[derive(clap::Args)]
pub struct SweepArgs {
    /// Pretrained checkpoint (safetensors, SPEC §7).
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// Folder with an IDX images/labels pair; default: the shipped digits.
    #[arg(long, default_value = "data")]
    pub data: PathBuf,
    /// Tasks: `all` (the 180) or a list like 1-7@0,3-8@2.
    #[arg(long, default_value = "all")]
    pub tasks: String,
    /// Repeats per task and method.
    #[arg(long, default_value_t = 10)]
    pub repeats: usize,
    /// Results file (JSON lines); runs it already holds are skipped.
    #[arg(long)]
    pub out: PathBuf,
    /// Run only shard i of n (0 ≤ i < n), e.g. $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT.
    #[arg(long, default_value = "0/1")]
    pub shard: Shard,
    /// If given, the checkpoint's architecture must be this preset (or JSON file).
    #[arg(long)]
    pub arch: Option<String>,
    /// With --arch: the modulated layer the checkpoint must have.
    #[arg(long)]
    pub modulated_layer: Option<usize>,
    #[command(flatten)]
    pub run: RunOptions,
}

#[derive(clap::Args)]
pub struct SummaryArgs {
    /// Results file (JSON lines).
    pub results: PathBuf,
    /// Where to write summary.md and summary.csv (default: the results file's folder).
    #[arg(long)]
    pub out_dir: Option<PathBuf>,
    /// Also write PNG plots into this folder.
    #[arg(long)]
    pub plots: Option<PathBuf>,
}

#[derive(clap::Args)]
pub struct ReproduceArgs {
    /// Output folder for checkpoint, results, summary and plots.
    #[arg(long, default_value = "reproduction")]
    pub out: PathBuf,
    /// Folder with an IDX images/labels pair; default: the shipped digits.
    #[arg(long, default_value = "data")]
    pub data: PathBuf,
    /// The full study: all 180 tasks × 10 repeats (default: the 45 pairs,
    /// quadrants in turn, × 6 repeats, about 7 minutes on 2 cores).
    #[arg(long)]
    pub full: bool,
    #[command(flatten)]
    pub run: RunOptions,
}

#[derive(clap::Args)]
pub struct MergeArgs {
    /// The merged results file (written atomically, runs in canonical order).
    pub out: PathBuf,
    /// Shard results files.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
}

#[derive(clap::Args)]
pub struct TraceArgs {
    /// Checkpoint (safetensors, SPEC §7); its coupling and gain are ignored:
    /// the inputs give them (default c = 0, g = 1).
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// Inputs (safetensors): stimuli [K, 784] f32, modulator [K, T] f32,
    /// labels [K] i64, optional pair [2] i64, coupling, gain; metadata m0
    /// (default 1), lambda (default 0), gain_rule (default covariance).
    #[arg(long)]
    pub inputs: PathBuf,
    /// Output (safetensors, written atomically): trial_gain, logits, loss,
    /// grad.coupling, grad.layers.{l}.weight, grad.layers.{l}.bias.
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(clap::Args)]
pub struct BenchArgs {
    /// Print one JSON object per line (keys workload, seconds, gflops,
    /// peak_gflops, ratio) instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Minimum seconds of timed runs per workload (the median is reported).
    #[arg(long, default_value_t = 2.0)]
    pub seconds: f64,
    /// Only these comma-separated workloads (default: all of trial_B2,
    /// trial_B256, deep4_trial_B2, deep4_trial_B256, deep4_mod2_trial_B2,
    /// deep4_mod2_trial_B256).
    #[arg(long)]
    pub only: Option<String>,
}

#[derive(clap::Args)]
pub struct PretrainArgs {
    /// Folder with an IDX images/labels pair (.gz or raw); default: the shipped digits.
    #[arg(long, default_value = "data")]
    pub data: PathBuf,
    /// Architecture: paper3, deep4, local2, relu-encoder, or a path to an
    /// architecture JSON file (SPEC §7).
    #[arg(long, default_value = "paper3")]
    pub arch: String,
    /// Modulated layer ℓ (1 or 2); default 1, or the JSON file's value.
    #[arg(long)]
    pub modulated_layer: Option<usize>,
    /// Master seed of initialisation and composites.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Epoch cap; training stops earlier at held-out accuracy ≥ 0.90.
    #[arg(long, default_value_t = 200)]
    pub epochs: usize,
    /// Output checkpoint (safetensors, written atomically).
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(clap::Args)]
pub struct EvalArgs {
    /// Checkpoint to evaluate (safetensors, SPEC §7).
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// Folder with an IDX images/labels pair; default: the shipped digits.
    #[arg(long, default_value = "data")]
    pub data: PathBuf,
    /// Tasks for the pair-accuracy table: `all` or a list like 1-7@0,3-8@2.
    #[arg(long)]
    pub tasks: Option<String>,
    /// Seed of the evaluation composites.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// The architecture named by `--arch` and `--modulated-layer`.
pub fn resolve_arch(name: &str, modulated_layer: Option<usize>) -> Result<Arch> {
    if PRESETS.contains(&name) {
        return Ok(Arch::preset(name, modulated_layer.unwrap_or(1))?);
    }
    let path = Path::new(name);
    if !path.exists() && !name.ends_with(".json") {
        return Ok(Arch::preset(name, 1)?);
    }
    let text = std::fs::read_to_string(path).with_context(|| format!("--arch {name}"))?;
    let mut arch = Arch::from_json(&text).with_context(|| format!("--arch {name}"))?;
    if let Some(l) = modulated_layer {
        arch.modulated_layer = l;
        arch.validate().context("--modulated-layer")?;
    }
    Ok(arch)
}
