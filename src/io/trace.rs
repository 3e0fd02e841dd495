//! Trace files (§7), the verification interface, for both networks: the
//! inputs a user gives and the outputs comod writes, validated with
//! errors that name the tensor or key.
//!
//! Inputs: `stimuli` (MLP `[K, 784]`; convolutional `[K, H, W, C]`),
//! `modulator` `[K, T]`, `labels` (MLP `[K]` with an optional `pair`;
//! convolutional `[K, tasks]`), optional `coupling` and `gain`. Metadata
//! (strings; any other key is refused): `m0`, `lambda`, `gain_rule`,
//! `modulation_compensation` with `modulator_var`, `coupling_param`, and
//! for the convolutional network `task`.
//!
//! Outputs: `trial_gain`, `logits`, `loss`, `grad.coupling` and the
//! gradient of every parameter tensor (MLP `grad.layers.{l}.weight|bias`;
//! convolutional `grad.stage{s}.weight|bias`, `grad.heads.weight|bias`).

use std::path::Path;

use crate::conv::ConvNet;
use crate::conv::checkpoint::parameter_tensors;
use crate::conv::heads::Heads;
use crate::data::CANVAS_PIXELS;
use crate::error::{Error, Result};
use crate::io::checkpoint::{bias_name, dense_weights, weight_name};
use crate::io::tensors::{TensorData, TensorFile};
use crate::kernel::{MODULATOR_MEAN, MODULATOR_VARIANCE};
use crate::named::Named;
use crate::net::arch::LOGITS;
use crate::net::{Arch, GainRule, Grads, Model, Modulated, Readout};
use crate::train::fault::check_finite;
use crate::train::options::{Compensation, CouplingParam};

/// Tensors an MLP trace input may hold.
const INPUT_TENSORS: [&str; 6] = ["stimuli", "modulator", "labels", "pair", "coupling", "gain"];
/// Tensors a convolutional trace input may hold.
const CONV_INPUT_TENSORS: [&str; 5] = ["stimuli", "modulator", "labels", "coupling", "gain"];
/// Metadata keys of every trace input.
const KEYS: [&str; 6] = [
    "m0",
    "lambda",
    "gain_rule",
    "modulation_compensation",
    "modulator_var",
    "coupling_param",
];
/// Metadata keys of a convolutional trace input.
const CONV_KEYS: [&str; 7] = [
    "m0",
    "lambda",
    "gain_rule",
    "modulation_compensation",
    "modulator_var",
    "coupling_param",
    "task",
];

/// The options of a trace, from its metadata (§3, §7): every option that
/// changes the numbers.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TraceOptions {
    /// Modulator value of the forward pass (`m0`, default μ_m = 1).
    pub m0: f32,
    /// λ of the L1 term on what the coupling trains (`lambda`, default 0).
    pub lambda: f32,
    /// Rule of the per-trial gain (`gain_rule`, default covariance).
    pub rule: GainRule,
    /// The per-trial gains' compensated factor (`modulation_compensation`,
    /// default none), with σ² = `modulator_var` (default σ_m² = 0.1), the
    /// variance the modulator samples are drawn with.
    pub compensation: Compensation,
    /// σ² of the compensation.
    pub variance: f32,
    /// What the `coupling` tensor holds (`coupling_param`, default
    /// linear): c, or w with c = w²; the L1 term and `grad.coupling` are
    /// then about w.
    pub coupling_param: CouplingParam,
}

impl TraceOptions {
    /// σ² of the per-trial gains' compensated factor (0: none).
    pub fn gain_variance(&self) -> f32 {
        match self.compensation {
            Compensation::Variance => self.variance,
            Compensation::None => 0.0,
        }
    }
}

/// The validated inputs of an MLP trace (§7).
#[derive(Clone, Debug)]
pub struct TraceInputs {
    /// Canvases, `[K, 784]`.
    pub stimuli: Vec<f32>,
    /// Modulator samples, `[K, T]`, row k for trial k.
    pub modulator: Vec<f32>,
    /// Labels: 0/1 into the pair, or classes 0..9.
    pub labels: Vec<u8>,
    /// The pair readout or the 10-way one.
    pub readout: Readout,
    /// The coupling parameter (c, or w); `None` means 0.
    pub coupling: Option<Vec<f32>>,
    /// g; `None` means g = 1.
    pub gain: Option<Vec<f32>>,
    /// The metadata's options.
    pub options: TraceOptions,
}

/// The validated inputs of a convolutional trace (§7, §8).
#[derive(Clone, Debug)]
pub struct ConvTraceInputs {
    /// `[K, H, W, C]`, channel-last.
    pub stimuli: Vec<f32>,
    /// `[K, T]`.
    pub modulator: Vec<f32>,
    /// `[K, tasks]`, 0/1.
    pub labels: Vec<u8>,
    /// The heads the loss reads (`task`: `all`, the default, or a head).
    pub heads: Heads,
    /// The coupling parameter (c, or w); `None` means 0.
    pub coupling: Option<Vec<f32>>,
    /// g; `None` means g = 1.
    pub gain: Option<Vec<f32>>,
    /// The metadata's options.
    pub options: TraceOptions,
}

/// What a trace computed, for either network.
#[derive(Clone, Debug)]
pub struct TraceOutputs {
    /// Per-trial gains `[K, N_gain]` (§3), from each trial's modulator row.
    pub trial_gain: Vec<f32>,
    /// Logits at m = m0 with the given gain.
    pub logits: Vec<f32>,
    /// The mean cross-entropy + λ‖θ‖₁ of the coupling parameter θ.
    pub loss: f32,
    /// Gradients of the loss, g held constant (the network's parameter
    /// layout); `coupling` is the gradient of θ.
    pub grads: Grads<f32>,
}

/// A metadata number: `default` when absent, else a finite f32.
fn metadata_number(file: &TensorFile, key: &str, default: f32) -> Result<f32> {
    match file.metadata(key) {
        None => Ok(default),
        Some(text) => match text.trim().parse::<f32>() {
            Ok(v) if v.is_finite() => Ok(v),
            _ => Err(file.error(format!(
                "metadata key {key}: {text:?} is not a finite number"
            ))),
        },
    }
}

/// A named metadata value: `default` when absent.
fn metadata_named<T: Named>(file: &TensorFile, key: &str, default: T) -> Result<T> {
    match file.metadata(key).map(str::trim) {
        None => Ok(default),
        Some(text) => T::from_name(text).ok_or_else(|| {
            file.error(format!(
                "metadata key {key}: unknown value {text:?} (expected {})",
                T::names().join(" or ")
            ))
        }),
    }
}

/// The options of `file`'s metadata, after refusing keys not in `known`.
fn trace_options(file: &TensorFile, known: &[&str]) -> Result<TraceOptions> {
    file.only_metadata(known)?;
    let lambda = metadata_number(file, "lambda", 0.0)?;
    if lambda < 0.0 {
        return Err(file.error(format!("metadata key lambda: {lambda} is negative")));
    }
    let variance = metadata_number(file, "modulator_var", MODULATOR_VARIANCE)?;
    if variance < 0.0 {
        return Err(file.error(format!(
            "metadata key modulator_var: {variance} is negative"
        )));
    }
    Ok(TraceOptions {
        m0: metadata_number(file, "m0", MODULATOR_MEAN)?,
        lambda,
        rule: metadata_named(file, "gain_rule", GainRule::Covariance)?,
        compensation: metadata_named(file, "modulation_compensation", Compensation::None)?,
        variance,
        coupling_param: metadata_named(file, "coupling_param", CouplingParam::Linear)?,
    })
}

/// The `modulator` tensor's shape `[trials, T]`: T ≥ `least` samples.
fn modulator_samples(file: &TensorFile, trials: usize, least: usize) -> Result<usize> {
    match file.shape("modulator")?[..] {
        [k, t] if k == trials && t >= least => Ok(t),
        [k, _] if k != trials => Err(file.error(format!(
            "tensor modulator has K = {k} rows but stimuli has K = {trials}"
        ))),
        [_, t] => Err(file.error(format!(
            "tensor modulator has T = {t} samples per trial, expected at least {least}"
        ))),
        ref other => Err(file.error(format!(
            "tensor modulator has shape {other:?}, expected [K, T]"
        ))),
    }
}

/// Reads and validates an MLP trace input file for a network of `arch`.
pub fn read_trace_inputs(path: &Path, arch: &Arch) -> Result<TraceInputs> {
    parse_trace_inputs(&TensorFile::read(path)?, arch)
}

/// Validates the tensors and metadata of an MLP trace input (§7).
pub fn parse_trace_inputs(file: &TensorFile, arch: &Arch) -> Result<TraceInputs> {
    file.only_tensors(&INPUT_TENSORS)?;
    let options = trace_options(file, &KEYS)?;
    let stimuli_shape = file.shape("stimuli")?;
    let trials = match stimuli_shape[..] {
        [k, CANVAS_PIXELS] if k > 0 => k,
        _ => {
            return Err(file.error(format!(
                "tensor stimuli has shape {stimuli_shape:?}, expected [K, {CANVAS_PIXELS}] with K ≥ 1"
            )));
        }
    };
    let samples = modulator_samples(file, trials, 1)?;
    let readout = if file.contains("pair") {
        match file.i64("pair", &[2])?[..] {
            [a, b] if (0..10).contains(&a) && (0..10).contains(&b) && a != b => {
                Readout::Pair(a as u8, b as u8)
            }
            ref pair => {
                return Err(file.error(format!(
                    "tensor pair is {pair:?}, expected two different classes 0..9"
                )));
            }
        }
    } else {
        Readout::All
    };
    let classes = if matches!(readout, Readout::Pair(..)) {
        2
    } else {
        LOGITS as i64
    };
    let raw_labels = file.i64("labels", &[trials])?;
    if let Some(i) = raw_labels.iter().position(|l| !(0..classes).contains(l)) {
        let what = if classes == 2 {
            "0 or 1 (an index into pair)"
        } else {
            "a class 0..9"
        };
        return Err(file.error(format!(
            "tensor labels: label {} at index {i} is not {what}",
            raw_labels[i]
        )));
    }
    Ok(TraceInputs {
        stimuli: file.f32("stimuli", &[trials, CANVAS_PIXELS])?,
        modulator: file.f32("modulator", &[trials, samples])?,
        labels: raw_labels.into_iter().map(|l| l as u8).collect(),
        readout,
        coupling: optional(file, "coupling", arch.coupling_len())?,
        gain: optional(file, "gain", arch.gain_len())?,
        options,
    })
}

/// An optional vector tensor of `len` values.
fn optional(file: &TensorFile, name: &str, len: usize) -> Result<Option<Vec<f32>>> {
    file.contains(name)
        .then(|| file.f32(name, &[len]))
        .transpose()
}

/// Reads and validates a convolutional trace input file for `net`.
pub fn read_conv_trace_inputs(path: &Path, net: &ConvNet<f32>) -> Result<ConvTraceInputs> {
    parse_conv_trace_inputs(&TensorFile::read(path)?, net)
}

/// Validates the tensors and metadata of a convolutional trace input (§7, §8).
pub fn parse_conv_trace_inputs(file: &TensorFile, net: &ConvNet<f32>) -> Result<ConvTraceInputs> {
    let arch = net.arch();
    file.only_tensors(&CONV_INPUT_TENSORS)?;
    let options = trace_options(file, &CONV_KEYS)?;
    let shape = file.shape("stimuli")?;
    let input = arch.input;
    let trials = match shape[..] {
        [k, h, w, c] if k > 0 && (h, w, c) == (input.height, input.width, input.channels) => k,
        _ => {
            return Err(file.error(format!(
                "tensor stimuli has shape {shape:?}, expected [K, {}, {}, {}] (channel-last) with K ≥ 1",
                input.height, input.width, input.channels
            )));
        }
    };
    let samples = modulator_samples(file, trials, 2)?;
    let raw = file.i64("labels", &[trials, arch.tasks])?;
    if let Some(i) = raw.iter().position(|l| !(0..2).contains(l)) {
        return Err(file.error(format!(
            "tensor labels: {} at index {i} is not 0 or 1",
            raw[i]
        )));
    }
    let heads = match file.metadata("task").map(str::trim) {
        None | Some("all") => Heads::All,
        Some(text) => match text.parse::<usize>() {
            Ok(t) if t < arch.tasks => Heads::One(t),
            _ => {
                return Err(file.error(format!(
                    "metadata key task: {text:?} is not `all` or a head 0..{}",
                    arch.tasks - 1
                )));
            }
        },
    };
    Ok(ConvTraceInputs {
        stimuli: file.f32(
            "stimuli",
            &[trials, input.height, input.width, input.channels],
        )?,
        modulator: file.f32("modulator", &[trials, samples])?,
        labels: raw.into_iter().map(|l| l as u8).collect(),
        heads,
        coupling: optional(file, "coupling", arch.coupling_len())?,
        gain: optional(file, "gain", arch.gain_len())?,
        options,
    })
}

/// The outputs every trace writes first: `trial_gain` `[K, N_gain]`,
/// `logits` `[K, logits]`, `loss` `[1]`, `grad.coupling`.
fn common_tensors(
    outputs: &TraceOutputs,
    trials: usize,
    logits: usize,
) -> Vec<(String, Vec<usize>, TensorData)> {
    let gain = outputs.trial_gain.len() / trials;
    vec![
        (
            "trial_gain".to_string(),
            vec![trials, gain],
            TensorData::F32(outputs.trial_gain.clone()),
        ),
        (
            "logits".to_string(),
            vec![trials, logits],
            TensorData::F32(outputs.logits.clone()),
        ),
        (
            "loss".to_string(),
            vec![1],
            TensorData::F32(vec![outputs.loss]),
        ),
        (
            "grad.coupling".to_string(),
            vec![outputs.grads.coupling.len()],
            TensorData::F32(outputs.grads.coupling.clone()),
        ),
    ]
}

/// Refuses (naming the tensor) outputs of which one is not finite: they
/// would be no reference for another framework (§6, §7); `path` names
/// where they were going.
pub fn check_finite_outputs(
    path: &Path,
    tensors: &[(String, Vec<usize>, TensorData)],
) -> Result<()> {
    for (name, _, data) in tensors {
        if let TensorData::F32(values) = data
            && let Err(fault) = check_finite(name, values)
        {
            return Err(Error::tensor(
                path,
                format!(
                    "not written: tensor {} {} (inputs outside the range where results are finite)",
                    fault.tensor, fault.problem
                ),
            ));
        }
    }
    Ok(())
}

/// An MLP trace's output tensors, by their §7 names; weight gradients in
/// the dense `[out, in]` layout of checkpoints (zero outside receptive
/// fields).
pub fn trace_output_tensors(
    model: &Model<f32>,
    outputs: &TraceOutputs,
) -> Vec<(String, Vec<usize>, TensorData)> {
    let arch = model.arch();
    let trials = outputs.logits.len() / LOGITS;
    let mut tensors = common_tensors(outputs, trials, LOGITS);
    for l in 1..=arch.depth() {
        let layout = model.layer(l);
        let stored = &outputs.grads.params[layout.weights.clone()];
        tensors.push((
            format!("grad.{}", weight_name(l)),
            vec![layout.shape.outputs, layout.shape.inputs],
            TensorData::F32(dense_weights(model, l, stored)),
        ));
        tensors.push((
            format!("grad.{}", bias_name(l)),
            vec![layout.shape.outputs],
            TensorData::F32(outputs.grads.params[layout.bias.clone()].to_vec()),
        ));
    }
    tensors
}

/// A convolutional trace's output tensors: the common ones and the
/// gradient of every parameter tensor of the checkpoint, by its name.
pub fn conv_trace_output_tensors(
    net: &ConvNet<f32>,
    outputs: &TraceOutputs,
) -> Vec<(String, Vec<usize>, TensorData)> {
    let logits = net.arch().logits();
    let mut tensors = common_tensors(outputs, outputs.logits.len() / logits, logits);
    for (name, shape, range) in parameter_tensors(net) {
        tensors.push((
            format!("grad.{name}"),
            shape,
            TensorData::F32(outputs.grads.params[range].to_vec()),
        ));
    }
    tensors
}
