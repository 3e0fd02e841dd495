//! Command-line arguments of the `comod` binary (a module of `main.rs`, not
//! of the library): every flag with its help; every default comes from the
//! library, which also checks the values.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::OnceLock;

use clap::builder::PossibleValuesParser;
use clap::{Parser, Subcommand};

use comod::bench::DEFAULT_SECONDS;
use comod::data::benchmark::{Benchmark, BenchmarkSource};
use comod::data::shipped_data_dir;
use comod::data::task::ALL_TASKS;
use comod::net::Arch;
use comod::net::arch::DEFAULT_PRESET;
use comod::report::ReportOptions;
use comod::report::plan::Scale;
use comod::reproduce::{DEFAULT_OUT, ReproduceOptions, plan};
use comod::rng::DEFAULT_SEED;
use comod::sweep::plan::{FULL_REPEATS, Shard};
use comod::train::PretrainOptions;
use comod::train::Transfer;
use comod::train::joint::MultitaskPretrainOptions;
use comod::tune::{DEFAULT_GRID, TUNING_REPEATS, tuning_tasks};

use comod::run_options::{RunOptions, named};

/// Learned stochastic co-modulation: fine-tune a frozen network by learning
/// how a random modulator couples into it (Haimerl, Simoncelli & Savin 2022).
/// The model, its defaults and its readings: docs/model.md.
#[derive(Parser)]
#[command(name = "comod", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Pretrain a network on the general 10-way task (§4) and save it.
    Pretrain(PretrainArgs),
    /// Held-out accuracy of a checkpoint on the general task, and the pair
    /// accuracy of specific tasks with and without distractors (Fig. 2A).
    Eval(EvalArgs),
    /// Fine-tune the pretrained network on tasks × methods × repeats
    /// (§4, §6), appending one JSON line per run; resumable, shardable.
    Sweep(SweepArgs),
    /// Join shard result files into one, rejecting duplicated runs and
    /// mixed configurations (also upgrades older record formats).
    Merge(MergeArgs),
    /// Summary of a results file per method (per task, then mean ± s.e.m.
    /// over tasks), printed and written as Markdown and CSV; with --plots,
    /// PNG figures.
    Summary(SummaryArgs),
    /// The main job: pretrain (or reuse a matching checkpoint), sweep, then
    /// summary and plots, all in one folder.
    Reproduce(ReproduceArgs),
    /// The reproduction study (§5): runs what it needs (reusing results
    /// already in --out), judges each claim of the paper under each
    /// reading, readout and protocol, and writes DIR/report.md with its
    /// figures.
    Report(ReportArgs),
    /// Choose learning rates (§4): each method over a log grid of rates on
    /// tuning tasks disjoint from the reported ones; prints the table and
    /// the flags to paste into `comod sweep`.
    Tune(TuneArgs),
    /// Verification interface (§7): per-trial gains, logits, loss and
    /// every gradient for the inputs of a safetensors file.
    Trace(TraceArgs),
    /// Time the fused trial kernel (§3) and whole fine-tuning runs (§4)
    /// beside the machine's FMA peak and SGEMM, measured in the same run.
    Bench(BenchArgs),
    /// The second paper's system (§8): convolutional networks with one
    /// binary head per task, pretrained jointly, fine-tuned per task.
    #[command(subcommand)]
    Multitask(MultitaskCommand),
}

/// `comod multitask …` (§8).
#[derive(Subcommand)]
pub enum MultitaskCommand {
    /// Pretrain a convolutional network on a benchmark's pretraining tasks
    /// (`--transfer held-out`) or on all its tasks (`joint`), mean
    /// cross-entropy over those heads, and save it.
    Pretrain(MultitaskPretrainArgs),
    /// Fine-tune the pretrained network on tasks × methods × repeats, one
    /// JSON line per run; resumable, shardable (as `comod sweep`).
    Sweep(Box<MultitaskSweepArgs>),
    /// Join shard result files of multi-task sweeps into one.
    Merge(MergeArgs),
    /// Summary of a multi-task results file per method (per task, then
    /// mean ± s.e.m. over tasks), as Markdown and CSV; with --plots, PNGs.
    Summary(SummaryArgs),
}

/// Where a benchmark's data come from.
#[derive(clap::Args, Clone)]
pub struct BenchmarkArgs {
    /// The benchmark: `mnist-attributes` (the shipped digits, 16 tasks),
    /// `fashion-attributes` (the shipped Fashion-MNIST, 20 tasks),
    /// `cifar100` (train.bin/test.bin, 20 coarse-class tasks) or `celeba`
    /// (list_attr_celeba.txt, list_eval_partition.txt, img_align_celeba/,
    /// 40 attribute tasks). Held out under `--transfer held-out`:
    /// prime@q and loop@q; bag@q and long-sleeve@q; the last 5 coarse
    /// classes; the last 10 attributes of the file's header.
    #[arg(long, value_parser = named::<Benchmark>(), default_value = Benchmark::MnistAttributes.name())]
    pub benchmark: Benchmark,
    /// The benchmark's folder [default: the shipped digits for
    /// mnist-attributes, data/fashion for fashion-attributes; required for
    /// cifar100 and celeba].
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Keep only the first N images of each split of cifar100 or celeba
    /// (CelebA's 183 k training and test JPEGs take about 80 s and 5 GB on
    /// 2 cores) [default: all].
    #[arg(long)]
    pub limit: Option<usize>,
}

impl BenchmarkArgs {
    /// Where the benchmark's data come from.
    pub fn source(&self) -> BenchmarkSource {
        BenchmarkSource {
            benchmark: self.benchmark,
            data: self.data.clone(),
            limit: self.limit,
        }
    }
}

#[derive(clap::Args)]
pub struct MultitaskPretrainArgs {
    #[command(flatten)]
    pub benchmark: BenchmarkArgs,
    /// Architecture: conv-mnist, conv-cifar, conv-celeba, or a path to a
    /// format 2 JSON file [default: the benchmark's preset].
    #[arg(long)]
    pub arch: Option<String>,
    /// Transfer protocol (§8): `held-out` pretrains on the benchmark's
    /// pretraining tasks only (the held-out tasks are then learned with a
    /// fresh head); `joint` pretrains on every task to convergence.
    #[arg(long, value_parser = named::<Transfer>(), default_value = Transfer::HeldOut.name())]
    pub transfer: Transfer,
    /// Channels of every conv stage times this factor (the architecture
    /// study, §8).
    #[arg(long, default_value_t = 1.0)]
    pub width: f64,
    /// The modulated conv stage, counted over the conv stages from 1 (the
    /// architecture study, §8) [default: the architecture's own; the
    /// presets modulate their first].
    #[arg(long)]
    pub modulated_conv: Option<usize>,
    /// Seed of initialisation and training examples.
    #[arg(long, default_value_t = MultitaskPretrainOptions::DEFAULT.seed)]
    pub seed: u64,
    /// Epoch cap; training stops earlier once the held-out mean accuracy
    /// over the pretraining tasks reaches --target (or, without one, stops
    /// improving by 0.002 for 3 epochs).
    #[arg(long, default_value_t = MultitaskPretrainOptions::DEFAULT.max_epochs)]
    pub epochs: usize,
    /// Fresh training examples per epoch.
    #[arg(long, default_value_t = MultitaskPretrainOptions::DEFAULT.examples)]
    pub examples: usize,
    /// Batch size.
    #[arg(long, default_value_t = MultitaskPretrainOptions::DEFAULT.batch)]
    pub batch_size: usize,
    /// Adam's learning rate.
    #[arg(long, default_value_t = MultitaskPretrainOptions::DEFAULT.lr)]
    pub lr: f32,
    /// Held-out mean accuracy over the pretraining tasks at which training
    /// stops, or `none`: to convergence [default: none].
    #[arg(long, value_parser = parse_target)]
    pub target: Option<Target>,
    /// Held-out examples the stopping rule measures.
    #[arg(long, default_value_t = MultitaskPretrainOptions::DEFAULT.heldout)]
    pub heldout: usize,
    /// Output checkpoint (safetensors, written atomically).
    #[arg(long)]
    pub out: PathBuf,
}

/// `--target`: a held-out accuracy, or none.
#[derive(Clone, Copy, Debug)]
pub struct Target(Option<f64>);

fn parse_target(text: &str) -> Result<Target, String> {
    if text == "none" {
        return Ok(Target(None));
    }
    text.parse()
        .map(|t| Target(Some(t)))
        .map_err(|_| format!("{text:?} is neither a number nor `none`"))
}

impl MultitaskPretrainArgs {
    /// The pretraining's settings.
    pub fn options(&self) -> MultitaskPretrainOptions {
        MultitaskPretrainOptions {
            max_epochs: self.epochs,
            examples: self.examples,
            batch: self.batch_size,
            lr: self.lr,
            target: self.target.and_then(|t| t.0),
            heldout: self.heldout,
            seed: self.seed,
            transfer: self.transfer,
        }
    }
}

#[derive(clap::Args)]
pub struct MultitaskSweepArgs {
    #[command(flatten)]
    pub benchmark: BenchmarkArgs,
    /// Pretrained checkpoint of `comod multitask pretrain`.
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// Transfer protocol (§8), as the checkpoint was pretrained for it:
    /// `held-out` fine-tunes the held-out tasks, each from a fresh head
    /// that every method trains; `joint` every task from its pretrained
    /// head [default: the checkpoint's; given, it must match].
    #[arg(long, value_parser = named::<Transfer>())]
    pub transfer: Option<Transfer>,
    /// Tasks: `all` (the held-out tasks under held-out, every task under
    /// joint) or a comma-separated list of such task names (e.g.
    /// prime@0,loop@3; CelebA's attribute names; coarse15..coarse19).
    #[arg(long, default_value = "all")]
    pub tasks: String,
    /// Repeats per task and method.
    #[arg(long, default_value_t = 1)]
    pub repeats: usize,
    /// Results file (JSON lines); runs it already holds are checked
    /// against the plan and skipped. Locked while the sweep runs: a second
    /// sweep on it is refused, naming the holder. `{shard}` in it becomes
    /// the shard's index (e.g. results/shard-{shard}.jsonl); a missing
    /// folder is made.
    #[arg(long)]
    pub out: PathBuf,
    #[command(flatten)]
    pub shard: ShardArgs,
    #[command(flatten)]
    pub run: RunOptions,
}

/// Which part of a sweep's plan this process runs (§6).
#[derive(clap::Args)]
pub struct ShardArgs {
    /// Run only shard i of n (0 ≤ i < n) [default: the whole plan].
    #[arg(long, conflicts_with = "shards")]
    pub shard: Option<Shard>,
    /// In a SLURM job array: split the plan into N shards and run the one
    /// of this element, its $SLURM_ARRAY_TASK_ID (0..N-1, or 1..N for a
    /// 1-based array; strided, listed and single resubmitted elements run
    /// the shard their id names; any other id is refused).
    #[arg(long, value_name = "N")]
    pub shards: Option<usize>,
}

impl ShardArgs {
    /// The shard to run: `--shard`, the job array's with `--shards`, or
    /// the whole plan.
    pub fn shard(&self) -> comod::Result<Shard> {
        match (self.shard, self.shards) {
            (_, Some(count)) => Shard::of_slurm_array(count),
            (Some(shard), None) => Ok(shard),
            (None, None) => Ok(Shard::default()),
        }
    }
}

#[derive(clap::Args)]
pub struct SweepArgs {
    /// Pretrained checkpoint (safetensors, §7).
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// Folder with an IDX images/labels pair; default: ./data, else
    /// the shipped digits of the clone comod was built from.
    #[arg(long, default_value_os_t = shipped_data_dir())]
    pub data: PathBuf,
    /// Tasks: `all` (the 180) or a list like 1-7@0,3-8@2.
    #[arg(long, default_value = ALL_TASKS)]
    pub tasks: String,
    /// Repeats per task and method.
    #[arg(long, default_value_t = FULL_REPEATS)]
    pub repeats: usize,
    /// Results file (JSON lines); runs it already holds are checked against
    /// the plan and skipped. Locked while the sweep runs: a second sweep on
    /// it is refused, naming the holder. `{shard}` in it becomes the
    /// shard's index (e.g. results/shard-{shard}.jsonl); a missing folder
    /// is made.
    #[arg(long)]
    pub out: PathBuf,
    #[command(flatten)]
    pub shard: ShardArgs,
    /// If given, the checkpoint's architecture must be this preset (or JSON file).
    #[arg(long)]
    pub arch: Option<String>,
    /// With --arch: the modulated layer the checkpoint must have.
    #[arg(long, requires = "arch")]
    pub modulated_layer: Option<usize>,
    #[command(flatten)]
    pub run: RunOptions,
}

impl SweepArgs {
    /// The architecture `--arch` (with `--modulated-layer`) names, with
    /// the flags as given, when given.
    pub fn expected_arch(&self) -> comod::Result<Option<(String, Arch)>> {
        let Some(name) = &self.arch else {
            return Ok(None);
        };
        let layer = self.modulated_layer;
        let given = match layer {
            Some(l) => format!("{name} --modulated-layer {l}"),
            None => name.clone(),
        };
        Ok(Some((given, Arch::resolve(name, layer)?)))
    }
}

#[derive(clap::Args)]
pub struct TuneArgs {
    /// Pretrained checkpoint (safetensors, §7).
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// Folder with an IDX images/labels pair; default: ./data, else
    /// the shipped digits of the clone comod was built from.
    #[arg(long, default_value_os_t = shipped_data_dir())]
    pub data: PathBuf,
    /// Tuning tasks, a list like 1-7@0,3-8@2 or `all` [default: eight tasks
    /// that the default reproduction does not report: the `tuning` list]
    #[arg(long, default_value = "tuning", hide_default_value = true)]
    pub tasks: String,
    /// Repeats per task, method and rate.
    #[arg(long, default_value_t = TUNING_REPEATS)]
    pub repeats: usize,
    /// Learning rates tried for every method, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = default_grid(), allow_negative_numbers = true)]
    pub grid: Vec<f32>,
    /// The table (Markdown); the plot is written beside it (.png) and the
    /// runs of each rate into a folder beside it (.runs/), so that an
    /// interrupted grid resumes.
    #[arg(long)]
    pub out: PathBuf,
    #[command(flatten)]
    pub run: RunOptions,
}

/// The default grid as `--grid` takes it.
fn default_grid() -> &'static str {
    static LIST: OnceLock<String> = OnceLock::new();
    LIST.get_or_init(|| {
        DEFAULT_GRID
            .iter()
            .map(|r| format!("{r:e}"))
            .collect::<Vec<_>>()
            .join(",")
    })
}

impl TuneArgs {
    /// The tasks `--tasks` names (`tuning`: the default tuning tasks).
    pub fn tasks(&self) -> anyhow::Result<Vec<comod::data::Task>> {
        if self.tasks == "tuning" {
            return Ok(tuning_tasks());
        }
        Ok(comod::data::parse_task_list(&self.tasks)?)
    }
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
    /// Summarise even when runs of the records' plan are missing (a
    /// shard not merged, a sweep not finished); without it the summary
    /// is refused, naming the runs missing and the shards that hold none.
    #[arg(long)]
    pub partial: bool,
}

#[derive(clap::Args)]
pub struct ReproduceArgs {
    /// Output folder for checkpoint, results, summary and plots.
    #[arg(long, default_value = DEFAULT_OUT)]
    pub out: PathBuf,
    /// Folder with an IDX images/labels pair; default: ./data, else
    /// the shipped digits of the clone comod was built from.
    #[arg(long, default_value_os_t = shipped_data_dir())]
    pub data: PathBuf,
    /// The full study: all 180 tasks × 10 repeats (default: the 45 pairs,
    /// quadrants in turn, × 6 repeats).
    #[arg(long)]
    pub full: bool,
    /// Stop after the summary, without the quick report that otherwise
    /// follows it (`comod report --quick` into the same folder).
    #[arg(long)]
    pub no_report: bool,
    #[command(flatten)]
    pub run: RunOptions,
}

impl ReproduceArgs {
    /// What the reproduction runs.
    pub fn options(&self) -> comod::Result<ReproduceOptions> {
        let (tasks, repeats) = plan(self.full);
        Ok(ReproduceOptions {
            out: self.out.clone(),
            data: self.data.clone(),
            tasks,
            repeats,
            methods: self.run.methods.clone(),
            seed: self.run.seed,
            config: self.run.finetune_config()?,
            record_coupling: self.run.record_coupling,
            report: !self.no_report,
        })
    }
}

#[derive(clap::Args)]
pub struct ReportArgs {
    /// The report's folder: report.md, figures/, runs/ and checkpoints
    /// (results already there with the same configuration are reused).
    #[arg(long, default_value = "report")]
    pub out: PathBuf,
    /// Folder with an IDX images/labels pair; default: ./data, else
    /// the shipped digits of the clone comod was built from.
    #[arg(long, default_value_os_t = shipped_data_dir())]
    pub data: PathBuf,
    /// Folder with the second data set's IDX pair (Fashion-MNIST, §1), on
    /// which the headline claims are judged again; default: the shipped
    /// data/fashion.
    #[arg(long, default_value_os_t = shipped_data_dir().join("fashion"))]
    pub fashion: PathBuf,
    /// About 15 minutes on 2 cores with AVX-512 (24 without): 8 tasks × 2
    /// repeats (16 tasks in the primary cell), a small `dataset` cell,
    /// §8's multi-task cells (the default).
    #[arg(long, conflicts_with = "full")]
    pub quick: bool,
    /// The paper's scale: 180 tasks × 10 repeats in every cell (days of
    /// CPU time; shard it with --shard or --shards).
    #[arg(long)]
    pub full: bool,
    /// The report's machinery on runs cut to a few batches and samples
    /// (under a minute on 2 cores, in runs/smoke/): to check a set-up,
    /// such as a cluster's; its numbers measure nothing.
    #[arg(long, conflicts_with_all = ["full", "quick"])]
    pub smoke: bool,
    #[command(flatten)]
    pub shard: ShardArgs,
    /// Master seed of pretraining, sweeps and analyses.
    #[arg(long, default_value_t = DEFAULT_SEED)]
    pub seed: u64,
    /// Join shards even when runs of their plan are missing, and run
    /// those runs in this process; without it such a join is refused,
    /// naming the runs missing and the shards that hold none.
    #[arg(long)]
    pub partial: bool,
    /// Also judge the method claims on these results files (e.g. a
    /// larger sweep's), comma-separated [default: none]
    #[arg(long, value_delimiter = ',')]
    pub also: Vec<PathBuf>,
}

impl ReportArgs {
    /// What the report runs.
    pub fn options(&self) -> comod::Result<ReportOptions> {
        Ok(ReportOptions {
            out: self.out.clone(),
            data: self.data.clone(),
            fashion: self.fashion.clone(),
            scale: match (self.full, self.smoke) {
                (true, _) => Scale::Full,
                (_, true) => Scale::Smoke,
                _ => Scale::Quick,
            },
            shard: self.shard.shard()?,
            seed: self.seed,
            partial: self.partial,
            also: self.also.clone(),
        })
    }
}

#[derive(clap::Args)]
pub struct MergeArgs {
    /// The merged results file (written atomically, runs in canonical
    /// order; not one of the inputs; locked while written).
    pub out: PathBuf,
    /// Shard results files.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// Merge even when runs of the records' plan are missing (a shard
    /// not done); without it such a merge is refused, naming the runs
    /// missing and the shards that hold none.
    #[arg(long)]
    pub partial: bool,
}

#[derive(clap::Args)]
pub struct TraceArgs {
    /// Checkpoint (safetensors, §7): of `comod pretrain` (an MLP) or of
    /// `comod multitask pretrain` (a convolutional network, §8); its
    /// coupling and gain are ignored: the inputs give them (default c = 0, g = 1).
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// Inputs (safetensors). MLP: stimuli [K, 784] f32, modulator [K, T]
    /// f32, labels [K] i64, optional pair [2] i64, coupling, gain; metadata
    /// m0 (default μ_m = 1), lambda (default 0), gain_rule (default
    /// covariance). Convolutional: stimuli [K, H, W, C], labels [K, tasks]
    /// (0/1), the rest as the MLP's, metadata task (`all` or a head).
    #[arg(long)]
    pub inputs: PathBuf,
    /// Output (safetensors, written atomically): trial_gain, logits, loss,
    /// grad.coupling, and the gradient of every parameter tensor
    /// (grad.layers.{l}.weight/bias; convolutional: grad.stage{s}.weight/bias,
    /// grad.heads.weight/bias).
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(clap::Args)]
pub struct BenchArgs {
    /// Print one JSON object per line (keys workload, kind, isa, threads,
    /// seconds, flops, gflops, peak_gflops, peak_readings, ratio,
    /// sgemm_gflops, sgemm_ratio, fastest_seconds, fastest_gflops,
    /// fastest_ratio) instead of a table. `seconds` and `gflops` are the
    /// median run's, `fastest_*` the fastest timed run's. `peak_gflops` is
    /// the FMA peak of the line's instruction set and thread count,
    /// measured in this run: for an SGEMM or workload line, the highest of
    /// `peak_readings` readings (at the start and after each SGEMM or
    /// workload line); `ratio` and `fastest_ratio` are null where the rate
    /// exceeds it.
    #[arg(long)]
    pub json: bool,
    /// Minimum seconds of timed runs per workload (the median is
    /// reported, and the fastest beside it), from 0 to 3600.
    #[arg(long, default_value_t = DEFAULT_SECONDS, allow_negative_numbers = true)]
    pub seconds: f64,
    /// Only these comma-separated workloads (default: all). `trial_*`
    /// and `deep4_*` time one batch gain of the trial kernel (§3);
    /// `online_METHOD` times whole `online` runs (§4), one per thread at
    /// once as a sweep runs them, and reports seconds per run; `sweep32`
    /// times a 32-run sweep (every method × 8 repeats, scheduled as
    /// `comod sweep` does) and reports seconds per sweep.
    #[arg(long, value_delimiter = ',', value_parser = PossibleValuesParser::new(comod::bench::workload_names()))]
    pub only: Vec<String>,
    /// Folder with an IDX images/labels pair for the `online_*`
    /// workloads; default: ./data, else
    /// the shipped digits of the clone comod was built from.
    #[arg(long, default_value_os_t = shipped_data_dir())]
    pub data: PathBuf,
}

#[derive(clap::Args)]
pub struct PretrainArgs {
    /// Folder with an IDX images/labels pair (.gz or raw); default: ./data, else
    /// the shipped digits of the clone comod was built from.
    #[arg(long, default_value_os_t = shipped_data_dir())]
    pub data: PathBuf,
    /// Architecture: a preset (paper3, deep4, local2, relu-encoder,
    /// relu-deep4, relu-local2) or a path to an architecture JSON file (§7).
    #[arg(long, default_value = DEFAULT_PRESET)]
    pub arch: String,
    /// Modulated layer ℓ (1 or 2); default 1, or the JSON file's value.
    #[arg(long)]
    pub modulated_layer: Option<usize>,
    /// Master seed of initialisation and composites.
    #[arg(long, default_value_t = PretrainOptions::DEFAULT.seed)]
    pub seed: u64,
    /// Epoch cap; training stops earlier once the held-out accuracy reaches
    /// its target (§4).
    #[arg(long, default_value_t = PretrainOptions::DEFAULT.max_epochs)]
    pub epochs: usize,
    /// Output checkpoint (safetensors, written atomically).
    #[arg(long)]
    pub out: PathBuf,
}

impl PretrainArgs {
    /// The pretraining's settings: §4's, with the seed and epoch cap given.
    pub fn options(&self) -> PretrainOptions {
        PretrainOptions {
            seed: self.seed,
            max_epochs: self.epochs,
            ..PretrainOptions::DEFAULT
        }
    }
}

#[derive(clap::Args)]
pub struct EvalArgs {
    /// Checkpoint to evaluate (safetensors, §7).
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// Folder with an IDX images/labels pair; default: ./data, else
    /// the shipped digits of the clone comod was built from.
    #[arg(long, default_value_os_t = shipped_data_dir())]
    pub data: PathBuf,
    /// Tasks for the pair-accuracy table: `all` or a list like 1-7@0,3-8@2.
    #[arg(long)]
    pub tasks: Option<String>,
    /// Seed of the evaluation composites.
    #[arg(long, default_value_t = DEFAULT_SEED)]
    pub seed: u64,
}

/// Parses the command line; usage errors become one line and exit code 2.
pub fn parse() -> Result<Cli, ExitCode> {
    Cli::try_parse().map_err(|e| {
        use clap::error::ErrorKind::{DisplayHelp, DisplayVersion};
        if matches!(e.kind(), DisplayHelp | DisplayVersion) {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        let rendered = e.render().to_string();
        let line: Vec<&str> = (rendered.lines().map(str::trim))
            .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
            .filter(|l| !l.is_empty())
            .collect();
        eprintln!("{}", line.join(" "));
        ExitCode::from(2)
    })
}
