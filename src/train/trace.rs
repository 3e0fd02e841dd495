//! The computation behind `comod trace` (§7), for both networks: per-trial
//! gains, the forward pass at m0, the loss with its L1 term on the coupling
//! parameter, and every gradient, so that any framework implementation
//! can be checked tensor by tensor. The files are [`crate::io::trace`]'s.

use std::path::Path;

use crate::conv::ConvNet;
use crate::conv::checkpoint::{CONV_CHECKPOINT_FORMAT, conv_checkpoint_from};
use crate::conv::heads::heads_loss;
use crate::conv::modulator::Modulator;
use crate::conv::trial::{TrialScratch, trial_gain, unmodulated_features};
use crate::error::Result;
use crate::io::atomic::write_atomic;
use crate::io::checkpoint::checkpoint_from;
use crate::io::tensors::TensorFile;
use crate::io::tensors::encode_tensors;
use crate::io::trace::{
    ConvTraceInputs, TraceInputs, TraceOptions, TraceOutputs, check_finite_outputs,
    conv_trace_output_tensors, parse_conv_trace_inputs, parse_trace_inputs, trace_output_tensors,
};
use crate::io::{check_not_input, check_writable};
use crate::kernel::{BatchScratch, KernelPlan, Trials, trial_gains};
use crate::net::layers::{l1_backward, l1_penalty};
use crate::net::{Depth, Grads, Model, Modulated, Modulation};
use crate::train::mlp::compensate;
use crate::train::options::CouplingParam;

/// The coupling c of a trace's coupling parameter θ (c = θ, or θ²).
fn coupling_of(theta: &[f32], options: &TraceOptions) -> Vec<f32> {
    match options.coupling_param {
        CouplingParam::Linear => theta.to_vec(),
        CouplingParam::Square => theta.iter().map(|w| w * w).collect(),
    }
}

/// Turns ∂CE/∂c in `grads` into the gradient of the loss with respect to
/// θ (2θ·∂CE/∂c for c = θ²), with the L1 subgradient λ·sign(θ), sign(0) = 0.
fn coupling_parameter_grad(theta: &[f32], options: &TraceOptions, grads: &mut Grads<f32>) {
    if options.coupling_param == CouplingParam::Square {
        for (g, &w) in grads.coupling.iter_mut().zip(theta) {
            *g *= 2.0 * w;
        }
    }
    l1_backward(theta, options.lambda, &mut grads.coupling);
}

/// Runs the trace of `inputs` on the MLP `model`, with the coupling and
/// gain of the inputs (θ = 0 and g = 1 when absent).
pub fn trace(model: &Model<f32>, inputs: &TraceInputs) -> TraceOutputs {
    let options = &inputs.options;
    let mut modulation = Modulation::off(model.arch());
    let theta = inputs
        .coupling
        .clone()
        .unwrap_or_else(|| modulation.coupling.clone());
    modulation.coupling = coupling_of(&theta, options);
    if let Some(gain) = &inputs.gain {
        modulation.gain.clone_from(gain);
    }
    let trials = inputs.labels.len();
    let plan = KernelPlan::new(model);
    let mut scratch = BatchScratch::new(model, trials);
    let variance = options.gain_variance();
    let mut ws = model.workspace(trials);
    let compensated;
    let start = if variance > 0.0 {
        let activity = model.unmodulated_activity(&mut ws, &inputs.stimuli);
        let mut scaled = Vec::new();
        compensate(activity, &modulation.coupling, variance, &mut scaled);
        compensated = scaled;
        Trials::Activity(&compensated)
    } else {
        Trials::Canvases(&inputs.stimuli)
    };
    let trial_gain = trial_gains(
        model,
        &plan,
        &modulation.coupling,
        start,
        &inputs.modulator,
        options.rule,
        &mut scratch,
    )
    .to_vec();
    let mut grads = model.zero_grads();
    model.forward(&mut ws, &modulation, &inputs.stimuli, options.m0);
    let logits = model.logits(&ws).to_vec();
    let loss =
        model.loss(&mut ws, &inputs.labels, inputs.readout) + l1_penalty(&theta, options.lambda);
    model.backward(&mut ws, Depth::All, &mut grads);
    coupling_parameter_grad(&theta, options, &mut grads);
    TraceOutputs {
        trial_gain,
        logits,
        loss,
        grads,
    }
}

/// Runs the trace of `inputs` on the convolutional network `net`, with
/// the coupling and gain of the inputs (θ = 0 and g = 1 when absent).
pub fn conv_trace(net: &ConvNet<f32>, inputs: &ConvTraceInputs) -> TraceOutputs {
    let options = &inputs.options;
    let arch = net.arch();
    let trials = inputs.labels.len() / arch.tasks;
    let samples = inputs.modulator.len() / trials;
    let theta = inputs
        .coupling
        .clone()
        .unwrap_or_else(|| vec![0.0; arch.coupling_len()]);
    let coupling = coupling_of(&theta, options);
    let mut ws = net.workspace();
    let features = unmodulated_features(net, &mut ws, &inputs.stimuli, trials);
    let per_trial = features.len() / trials;
    let (mut scratch, pass) = (TrialScratch::new(net), net.evaluation());
    let mut trial_gains = Vec::with_capacity(trials * arch.gain_len());
    let mut one = vec![0.0f64; arch.gain_len()];
    for (u, m) in features
        .chunks_exact(per_trial)
        .zip(inputs.modulator.chunks_exact(samples))
    {
        trial_gain(
            &pass,
            u,
            m,
            &coupling,
            options.gain_variance(),
            options.rule,
            &mut scratch,
            &mut one,
        );
        trial_gains.extend(one.iter().map(|&g| g as f32));
    }
    let m = vec![options.m0; trials];
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
        &inputs.heads.labels(&inputs.labels, arch.tasks),
        inputs.heads,
        &mut dlogits,
    ) + l1_penalty(&theta, options.lambda);
    let mut grads = net.zero_grads();
    net.backward(&mut ws, &dlogits, Depth::All, &mut grads);
    coupling_parameter_grad(&theta, options, &mut grads);
    TraceOutputs {
        trial_gain: trial_gains,
        logits,
        loss,
        grads,
    }
}

/// What [`trace_file`] did.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Traced {
    /// Trials traced.
    pub trials: usize,
    /// The loss.
    pub loss: f32,
}

/// The trace of the parsed safetensors `inputs` on the parsed checkpoint
/// `checkpoint` (either network, told apart by its metadata), as
/// safetensors bytes holding exactly the tensors `comod trace` writes,
/// for callers that keep their tensors in memory (the Python package).
/// Every check of [`trace_file`] applies; errors name `checkpoint`'s and
/// `inputs`' paths as given, and `out` for outputs refused as not finite.
pub fn trace_in_memory(
    checkpoint: &TensorFile,
    inputs: &TensorFile,
    out: &Path,
) -> Result<(Vec<u8>, Traced)> {
    let (tensors, traced) = if checkpoint.metadata("format") == Some(CONV_CHECKPOINT_FORMAT) {
        let net = conv_checkpoint_from(checkpoint)?.net;
        let inputs = parse_conv_trace_inputs(inputs, &net)?;
        let outputs = conv_trace(&net, &inputs);
        let traced = Traced {
            trials: inputs.labels.len() / net.arch().tasks,
            loss: outputs.loss,
        };
        (conv_trace_output_tensors(&net, &outputs), traced)
    } else {
        let model = checkpoint_from(checkpoint)?.model;
        let inputs = parse_trace_inputs(inputs, model.arch())?;
        let outputs = trace(&model, &inputs);
        let traced = Traced {
            trials: inputs.labels.len(),
            loss: outputs.loss,
        };
        (trace_output_tensors(&model, &outputs), traced)
    };
    check_finite_outputs(out, &tensors)?;
    Ok((encode_tensors(out, &tensors, Default::default())?, traced))
}

/// `comod trace` (§7): reads the checkpoint at `checkpoint` (of either
/// network, told apart by its metadata) and the inputs at `inputs`,
/// traces them and writes the outputs to `out` atomically; `out` must be
/// writable and neither input.
pub fn trace_file(checkpoint: &Path, inputs: &Path, out: &Path) -> Result<Traced> {
    check_writable(out)?;
    check_not_input(out, &[("--inputs", inputs), ("--checkpoint", checkpoint)])?;
    let file = TensorFile::read(checkpoint)?;
    let input_file = TensorFile::read(inputs)?;
    let (bytes, traced) = trace_in_memory(&file, &input_file, out)?;
    write_atomic(out, &bytes)?;
    Ok(traced)
}
