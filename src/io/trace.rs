//! Trace files (§7), the verification interface: the inputs a user
//! gives (`stimuli`, `modulator`, `labels`, optional `pair`, `coupling`,
//! `gain`; metadata `m0`, `lambda`, `gain_rule`) and the outputs comod
//! writes (`trial_gain`, `logits`, `loss`, `grad.coupling`,
//! `grad.layers.{l}.weight`, `grad.layers.{l}.bias`), all validated with
//! errors that name the tensor or key.

use std::path::Path;

use crate::data::CANVAS_PIXELS;
use crate::error::{Error, Result};
use crate::io::checkpoint::{bias_name, dense_weights, weight_name};
use crate::io::tensors::{TensorData, TensorFile, write_tensors};
use crate::kernel::MODULATOR_MEAN;
use crate::net::GainRule;
use crate::net::arch::LOGITS;
use crate::net::{Arch, Model, Readout};
use crate::train::fault::check_finite;
use crate::train::trace::{TraceInputs, TraceOutputs};

/// Tensors an input file may hold.
const INPUT_TENSORS: [&str; 6] = ["stimuli", "modulator", "labels", "pair", "coupling", "gain"];

/// Reads and validates a trace input file for a network of `arch`.
pub fn read_trace_inputs(path: &Path, arch: &Arch) -> Result<TraceInputs> {
    parse_trace_inputs(&TensorFile::read(path)?, arch)
}

/// A metadata number: `default` when absent, else a finite f32.
pub(crate) fn metadata_number(file: &TensorFile, key: &str, default: f32) -> Result<f32> {
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

/// The metadata key `gain_rule` (default covariance).
pub(crate) fn gain_rule(file: &TensorFile) -> Result<GainRule> {
    match file.metadata("gain_rule").map(str::trim) {
        None | Some("covariance") => Ok(GainRule::Covariance),
        Some("correlation") => Ok(GainRule::Correlation),
        Some(other) => Err(file.error(format!(
            "metadata key gain_rule: unknown rule {other:?} (expected covariance or correlation)"
        ))),
    }
}

/// Validates the tensors and metadata of a trace input (§7).
pub fn parse_trace_inputs(file: &TensorFile, arch: &Arch) -> Result<TraceInputs> {
    file.only_tensors(&INPUT_TENSORS)?;
    let stimuli_shape = file.shape("stimuli")?;
    let trials = match stimuli_shape[..] {
        [k, CANVAS_PIXELS] if k > 0 => k,
        _ => {
            return Err(file.error(format!(
                "tensor stimuli has shape {stimuli_shape:?}, expected [K, {CANVAS_PIXELS}] with K ≥ 1"
            )));
        }
    };
    let modulator_shape = file.shape("modulator")?;
    let samples = match modulator_shape[..] {
        [k, t] if k == trials && t > 0 => t,
        [k, _] if k != trials => {
            return Err(file.error(format!(
                "tensor modulator has K = {k} rows but stimuli has K = {trials}"
            )));
        }
        [_, 0] => {
            return Err(
                file.error("tensor modulator has T = 0 samples per trial, expected at least 1")
            );
        }
        _ => {
            return Err(file.error(format!(
                "tensor modulator has shape {modulator_shape:?}, expected [K, T]"
            )));
        }
    };
    let stimuli = file.f32("stimuli", &[trials, CANVAS_PIXELS])?;
    let modulator = file.f32("modulator", &[trials, samples])?;
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
    let coupling = file
        .contains("coupling")
        .then(|| file.f32("coupling", &[arch.size(arch.modulated_layer)]))
        .transpose()?;
    let gain = file
        .contains("gain")
        .then(|| file.f32("gain", &[arch.size(arch.gated_layer())]))
        .transpose()?;
    let lambda = metadata_number(file, "lambda", 0.0)?;
    if lambda < 0.0 {
        return Err(file.error(format!("metadata key lambda: {lambda} is negative")));
    }
    let rule = gain_rule(file)?;
    Ok(TraceInputs {
        stimuli,
        modulator,
        labels: raw_labels.into_iter().map(|l| l as u8).collect(),
        readout,
        coupling,
        gain,
        m0: metadata_number(file, "m0", MODULATOR_MEAN)?,
        lambda,
        rule,
    })
}

/// Writes the §7 outputs atomically; weight gradients in the dense
/// `[out, in]` layout of checkpoints (zero outside receptive fields).
pub fn write_trace_outputs(path: &Path, model: &Model<f32>, outputs: &TraceOutputs) -> Result<()> {
    let arch = model.arch();
    let trials = outputs.logits.len() / LOGITS;
    let mut tensors = vec![
        (
            "trial_gain".to_string(),
            vec![trials, arch.size(arch.gated_layer())],
            TensorData::F32(outputs.trial_gain.clone()),
        ),
        (
            "logits".to_string(),
            vec![trials, LOGITS],
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
    ];
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
    // An output that is not finite is no reference for another framework:
    // refuse it, naming the tensor (§6, §7).
    for (name, _, data) in &tensors {
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
    write_tensors(path, &tensors, Default::default())
}
