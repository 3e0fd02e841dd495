//! `comod trace` for a convolutional checkpoint (§7, §8): per-trial gains,
//! the logits of every head at m0, the loss of the chosen heads with its
//! L1 term on c, and every gradient, so that another framework can be
//! checked tensor by tensor.
//!
//! Inputs (safetensors): `stimuli` `[K, H, W, C]` f32 (channel-last),
//! `modulator` `[K, T]` f32, `labels` `[K, tasks]` i64 (0/1), optional
//! `coupling` `[channels]` and `gain` `[N]`; metadata `m0` (default 1),
//! `lambda` (default 0), `gain_rule` (default covariance), `task` (the
//! head the loss reads, default `all`: the mean over heads).
//! Outputs: `trial_gain` `[K, N]`, `logits` `[K, 2·tasks]`, `loss` `[1]`,
//! `grad.coupling`, and `grad.<name>` for every parameter tensor of the
//! checkpoint (`stage{s}.weight`, …, `heads.bias`).

use std::path::Path;

use crate::conv::checkpoint::parameter_tensors;
use crate::conv::net::{ConvNet, Heads, Modulator, heads_loss};
use crate::conv::trial::{TrialScratch, trial_gain, unmodulated_features};
use crate::error::{Error, Result};
use crate::io::tensors::{TensorData, TensorFile, write_tensors};
use crate::io::trace::{gain_rule, metadata_number};
use crate::kernel::MODULATOR_MEAN;
use crate::net::Depth;
use crate::net::GainRule;
use crate::net::layers::{l1_backward, l1_penalty};
use crate::train::fault::check_finite;

/// Tensors a convolutional trace input may hold.
const INPUT_TENSORS: [&str; 5] = ["stimuli", "modulator", "labels", "coupling", "gain"];

/// The validated inputs of a convolutional trace.
#[derive(Clone, Debug)]
pub struct ConvTraceInputs {
    /// `[K, H, W, C]`.
    pub stimuli: Vec<f32>,
    /// `[K, T]`.
    pub modulator: Vec<f32>,
    /// `[K, tasks]`, 0/1.
    pub labels: Vec<u8>,
    /// c (`None`: 0).
    pub coupling: Option<Vec<f32>>,
    /// g (`None`: 1).
    pub gain: Option<Vec<f32>>,
    /// m of the forward pass.
    pub m0: f32,
    /// λ of the L1 term on c.
    pub lambda: f32,
    /// The per-trial gain rule.
    pub rule: GainRule,
    /// The heads the loss reads.
    pub heads: Heads,
}

/// Reads and validates the inputs for `net`.
pub fn read_conv_trace_inputs(path: &Path, net: &ConvNet<f32>) -> Result<ConvTraceInputs> {
    let file = TensorFile::read(path)?;
    let arch = net.arch();
    file.only_tensors(&INPUT_TENSORS)?;
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
    let samples = match file.shape("modulator")?[..] {
        [k, t] if k == trials && t > 1 => t,
        ref other => {
            return Err(file.error(format!(
                "tensor modulator has shape {other:?}, expected [{trials}, T] with T ≥ 2"
            )));
        }
    };
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
    let lambda = metadata_number(&file, "lambda", 0.0)?;
    if lambda < 0.0 {
        return Err(file.error(format!("metadata key lambda: {lambda} is negative")));
    }
    let rule = gain_rule(&file)?;
    Ok(ConvTraceInputs {
        stimuli: file.f32(
            "stimuli",
            &[trials, input.height, input.width, input.channels],
        )?,
        modulator: file.f32("modulator", &[trials, samples])?,
        labels: raw.into_iter().map(|l| l as u8).collect(),
        coupling: file
            .contains("coupling")
            .then(|| file.f32("coupling", &[arch.modulated_channels()]))
            .transpose()?,
        gain: file
            .contains("gain")
            .then(|| file.f32("gain", &[arch.gated_size()]))
            .transpose()?,
        m0: metadata_number(&file, "m0", MODULATOR_MEAN)?,
        lambda,
        rule,
        heads,
    })
}

/// Runs the trace and writes its outputs to `path` (atomically); returns the loss.
pub fn conv_trace(net: &ConvNet<f32>, inputs: &ConvTraceInputs, path: &Path) -> Result<f32> {
    let arch = net.arch();
    let trials = inputs.labels.len() / arch.tasks;
    let samples = inputs.modulator.len() / trials;
    let coupling = inputs
        .coupling
        .clone()
        .unwrap_or_else(|| vec![0.0; arch.modulated_channels()]);
    let mut ws = net.workspace();
    let features = unmodulated_features(net, &mut ws, &inputs.stimuli, trials);
    let per_trial = features.len() / trials;
    let mut scratch = TrialScratch::new(net);
    let mut gains = Vec::with_capacity(trials * arch.gated_size());
    let mut one = vec![0.0f64; arch.gated_size()];
    for (k, u) in features.chunks_exact(per_trial).enumerate() {
        let m = &inputs.modulator[k * samples..(k + 1) * samples];
        trial_gain(
            net,
            u,
            m,
            &coupling,
            0.0,
            inputs.rule,
            &mut scratch,
            &mut one,
        );
        gains.extend(one.iter().map(|&g| g as f32));
    }
    let m = vec![inputs.m0; trials];
    let modulator = Modulator {
        m: &m,
        coupling: &coupling,
        beta: arch.beta,
        variance: 0.0,
    };
    net.forward(
        &mut ws,
        &inputs.stimuli,
        trials,
        Some(&modulator),
        inputs.gain.as_deref(),
    );
    let logits = ws.logits().to_vec();
    let mut dlogits = vec![0.0; logits.len()];
    let loss = heads_loss(
        &logits,
        arch.tasks,
        &inputs.labels,
        inputs.heads,
        &mut dlogits,
    ) + l1_penalty(&coupling, inputs.lambda);
    let mut grads = net.zero_grads();
    net.backward(&mut ws, &dlogits, Depth::All, &mut grads);
    l1_backward(&coupling, inputs.lambda, &mut grads.coupling);
    let mut tensors = vec![
        (
            "trial_gain".to_string(),
            vec![trials, arch.gated_size()],
            TensorData::F32(gains),
        ),
        (
            "logits".to_string(),
            vec![trials, arch.logits()],
            TensorData::F32(logits),
        ),
        ("loss".to_string(), vec![1], TensorData::F32(vec![loss])),
        (
            "grad.coupling".to_string(),
            vec![coupling.len()],
            TensorData::F32(grads.coupling.clone()),
        ),
    ];
    for (name, shape, range) in parameter_tensors(net) {
        tensors.push((
            format!("grad.{name}"),
            shape,
            TensorData::F32(grads.params[range].to_vec()),
        ));
    }
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
    write_tensors(path, &tensors, Default::default())?;
    Ok(loss)
}
