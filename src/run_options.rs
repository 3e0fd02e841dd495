//! The run options as command-line flags: the settings of fine-tuning
//! runs shared by `sweep`, `multitask sweep`, `tune` and `reproduce`, each
//! optional so that the library's rule puts the ones given over the
//! `--reading` preset; defaults and checks are the library's. The one owner
//! of the flags' names and help, so that the binary and the Python package
//! (whose keyword arguments are these flags) cannot drift apart.

use std::sync::OnceLock;

use clap::builder::{PossibleValuesParser, TypedValueParser};

use crate::named::Named;
use crate::net::GainRule;
use crate::rng::DEFAULT_SEED;
use crate::sweep::SweepSpec;
use crate::sweep::plan::Shard;
use crate::sweep::record::{Architecture, SweepConfig};
use crate::train::options::{
    Compensation, CouplingParam, GainInput, GainNorm, GainSmoothing, ProtocolKind, Reading,
    ReadoutKind,
};
use crate::train::presets::{Overrides, default_text};
use crate::train::{FinetuneConfig, Method};

/// The settings of fine-tuning runs (§2–§4), shared by `sweep`, `tune`,
/// `reproduce` and `multitask sweep`. Every setting is optional here: one
/// given wins over the `--reading` preset, one not given is the preset's
/// (the library's rule, `Reading::with`).
#[derive(clap::Args, Clone)]
pub struct RunOptions {
    /// Methods, comma-separated.
    #[arg(long, value_parser = named::<Method>(), value_delimiter = ',', default_value = all_methods())]
    pub methods: Vec<Method>,
    /// Master seed; each run's seed is a hash of it with task, method and repeat.
    #[arg(long, default_value_t = DEFAULT_SEED)]
    pub seed: u64,
    /// A named reading of the paper (§3), a bundle of the flags below;
    /// each of them given explicitly wins.
    #[arg(long, value_parser = named::<Reading>(), default_value = Reading::Spec.name(), help = reading_help())]
    pub reading: Reading,
    /// Readout of a binary digit task.
    #[arg(long, value_parser = named::<ReadoutKind>(), help = with_default("Readout of a binary digit task: `all` (10-way, label = the target digit) or `pair` (softmax over the two logits); refused by `multitask sweep`, whose heads are binary", "--readout"))]
    pub readout: Option<ReadoutKind>,
    /// Per-trial gain rule.
    #[arg(long, value_parser = named::<GainRule>(), help = with_default("Per-trial gain rule", "--gain-rule"))]
    pub gain_rule: Option<GainRule>,
    /// Gain normalisation.
    #[arg(long, value_parser = named::<GainNorm>(), help = with_default("Gain normalisation (`none` with `--gain-smoothing none`: the literal Eq. 3)", "--gain-norm"))]
    pub gain_norm: Option<GainNorm>,
    /// Gain smoothing across batches.
    #[arg(long, value_parser = named::<GainSmoothing>(), help = with_default("Gain smoothing across batches", "--gain-smoothing"))]
    pub gain_smoothing: Option<GainSmoothing>,
    /// What the gain is estimated on.
    #[arg(long, value_parser = named::<GainInput>(), help = with_default("What the gain is estimated on", "--gain-input"))]
    pub gain_input: Option<GainInput>,
    /// Learning rate of `stochastic`.
    #[arg(long, allow_negative_numbers = true, help = with_default("Learning rate of `stochastic`", "--lr-stochastic"))]
    pub lr_stochastic: Option<f32>,
    /// Learning rate of `deterministic`.
    #[arg(long, allow_negative_numbers = true, help = with_default("Learning rate of `deterministic`", "--lr-deterministic"))]
    pub lr_deterministic: Option<f32>,
    /// Learning rate of `retrain`.
    #[arg(long, allow_negative_numbers = true, help = with_default("Learning rate of `retrain`", "--lr-retrain"))]
    pub lr_retrain: Option<f32>,
    /// Learning rate of `retrain-last`.
    #[arg(long, allow_negative_numbers = true, help = with_default("Learning rate of `retrain-last`", "--lr-retrain-last"))]
    pub lr_retrain_last: Option<f32>,
    /// λ of the L1 term on what is trained.
    #[arg(long, allow_negative_numbers = true, help = with_default("λ of the L1 term on what is trained", "--lambda"))]
    pub lambda: Option<f32>,
    /// Modulator samples per trial, T.
    #[arg(long, help = with_default("Modulator samples per trial, T", "--samples"))]
    pub samples: Option<usize>,
    /// Modulator mean μ_m.
    #[arg(long, allow_negative_numbers = true, help = with_default("Modulator mean μ_m: training and evaluation run at m = μ_m", "--modulator-mean"))]
    pub modulator_mean: Option<f32>,
    /// Modulator variance σ_m².
    #[arg(long, allow_negative_numbers = true, help = with_default("Modulator variance σ_m² of the samples drawn for the gain estimate", "--modulator-var"))]
    pub modulator_var: Option<f32>,
    /// Mean of the samples drawn for the gain estimate only.
    #[arg(long, allow_negative_numbers = true, help = with_default("Mean of the modulator samples drawn for the gain estimate only; backpropagation and evaluation stay at --modulator-mean, which it follows unless given", "--gain-modulator-mean"))]
    pub gain_modulator_mean: Option<f32>,
    /// Variance compensation of the modulated layer's factor.
    #[arg(long, value_parser = named::<Compensation>(), help = with_default("`variance`: the modulated layer's factor is exp(m·c − σ²·c²/2), σ² the variance of the trial's modulator samples, so that the modulation leaves a neuron's mean gain unchanged", "--modulation-compensation"))]
    pub modulation_compensation: Option<Compensation>,
    /// What the modulation methods learn for the coupling.
    #[arg(long, value_parser = named::<CouplingParam>(), help = with_default("What the modulation methods learn: `linear` (c) or `square` (w, with c = w² ≥ 0)", "--coupling-param"))]
    pub coupling_param: Option<CouplingParam>,
    /// Training protocol.
    #[arg(long, value_parser = named::<ProtocolKind>(), help = with_default("Training protocol: `online` (one pass over fresh batches, measured after each) or `dataset` (data sets of growing size, each trained to its lowest validation loss; the paper's learning rates)", "--protocol"))]
    pub protocol: Option<ProtocolKind>,
    /// `dataset`: the sizes are S, 2S, …, N·S examples; this is S.
    #[arg(long, help = with_default("`dataset`: the sizes are S, 2S, …, N·S examples; this is S", "--size-step"))]
    pub size_step: Option<usize>,
    /// `dataset`: the number of sizes, N.
    #[arg(long, help = with_default("`dataset`: the number of sizes, N", "--sizes"))]
    pub sizes: Option<usize>,
    /// `dataset`: the most epochs one size trains, E_max.
    #[arg(long, help = with_default("`dataset`: the most epochs one size trains, E_max", "--max-epochs"))]
    pub max_epochs: Option<usize>,
    /// `dataset`: patience.
    #[arg(long, value_parser = parse_patience, help = with_default("`dataset`: stop after this many epochs without a lower validation loss; `none` trains all --max-epochs (keeping the best state)", "--patience"))]
    pub patience: Option<Patience>,
    /// `online`: batches in the pass.
    #[arg(long, help = with_default("`online`: batches in the pass (measurements: batches + 1)", "--batches"))]
    pub batches: Option<usize>,
    /// Examples per batch.
    #[arg(long, help = with_default("Examples per batch", "--batch-size"))]
    pub batch_size: Option<usize>,
    /// Examples of each task's fixed test set.
    #[arg(long, help = with_default("Examples of each task's fixed test set", "--test-composites"))]
    pub test_composites: Option<usize>,
    /// Keep each modulation run's fine-tuned coupling in its record
    /// (field `coupling`; for coupling maps and coupling–|d′| analyses).
    #[arg(long)]
    pub record_coupling: bool,
}

/// A parser of the values of `T`, offering exactly their names.
pub fn named<T: Named + Send + Sync>() -> impl TypedValueParser<Value = T> {
    PossibleValuesParser::new(T::names()).map(|name| T::from_name(&name).expect("a listed name"))
}

/// `text` with the flag's default, from the library (its `spec` value and
/// the readings that set it otherwise).
fn with_default(text: &str, flag: &str) -> String {
    format!("{text} [default: {}]", default_text(flag))
}

/// The help of `--reading`: what each preset sets.
fn reading_help() -> String {
    let presets: Vec<String> = Reading::ALL
        .into_iter()
        .skip(1)
        .map(|reading| {
            let flags: Vec<String> = reading
                .differences()
                .into_iter()
                .map(|(flag, value)| format!("{flag} {value}"))
                .collect();
            format!("`{reading}`: {}", flags.join(" "))
        })
        .collect();
    format!(
        "A named reading of the paper (§3): `spec` (as docs/model.md writes it), {}. Each flag given explicitly wins over the preset",
        presets.join("; ")
    )
}

/// `--patience`: a number of epochs, or `none`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Patience(pub Option<usize>);

fn parse_patience(text: &str) -> Result<Patience, String> {
    if text == "none" {
        return Ok(Patience(None));
    }
    text.parse()
        .map(|p| Patience(Some(p)))
        .map_err(|_| "expected a number of epochs or `none`".to_string())
}

/// Every method, in report order, as `--methods` takes them.
fn all_methods() -> &'static str {
    static LIST: OnceLock<String> = OnceLock::new();
    LIST.get_or_init(|| Method::ALL.map(Method::name).join(","))
}

impl RunOptions {
    /// The settings given on the command line.
    pub fn overrides(&self) -> Overrides {
        Overrides {
            protocol: self.protocol,
            size_step: self.size_step,
            sizes: self.sizes,
            max_epochs: self.max_epochs,
            patience: self.patience.map(|p| p.0),
            readout: self.readout,
            gain_rule: self.gain_rule,
            gain_norm: self.gain_norm,
            gain_smoothing: self.gain_smoothing,
            gain_input: self.gain_input,
            lr_stochastic: self.lr_stochastic,
            lr_deterministic: self.lr_deterministic,
            lr_retrain: self.lr_retrain,
            lr_retrain_last: self.lr_retrain_last,
            lambda: self.lambda,
            batches: self.batches,
            batch_size: self.batch_size,
            samples: self.samples,
            modulator_mean: self.modulator_mean,
            modulator_variance: self.modulator_var,
            gain_modulator_mean: self.gain_modulator_mean,
            compensation: self.modulation_compensation,
            coupling_param: self.coupling_param,
            test_composites: self.test_composites,
        }
    }

    /// The fine-tuning configuration these flags describe: the
    /// `--reading` preset with every flag given put over it; a flag of the
    /// other protocol is refused (its values are checked by the library).
    pub fn finetune_config(&self) -> crate::Result<FinetuneConfig> {
        let overrides = self.overrides();
        let config = self.reading.with(&overrides);
        overrides.check_protocol(&config)?;
        Ok(config)
    }

    /// The sweep of `tasks` × these methods × `repeats` (shard `shard`)
    /// whose records carry `config`.
    pub fn spec<T, A: Architecture>(
        &self,
        tasks: Vec<T>,
        repeats: usize,
        shard: Shard,
        config: SweepConfig<A>,
    ) -> SweepSpec<T, A> {
        SweepSpec {
            tasks,
            methods: self.methods.clone(),
            repeats,
            shard,
            record_coupling: self.record_coupling,
            config,
        }
    }
}
