//! The computation behind `comod trace` (SPEC §7): per-trial gains, the
//! forward pass at m0, the loss with its L1 term on c, and every gradient,
//! so that any framework implementation can be checked tensor by tensor.

use crate::io::trace::TraceInputs;
use crate::kernel::{BatchScratch, KernelPlan, trial_gains};
use crate::net::layers::{l1_backward, l1_penalty};
use crate::net::{GradTargets, Grads, Model};

/// What `comod trace` writes.
#[derive(Clone, Debug)]
pub struct TraceOutputs {
    /// Per-trial gains `[K, N_{L−1}]` (SPEC §3), from each trial's modulator row.
    pub trial_gain: Vec<f32>,
    /// Logits `[K, 10]` at m = m0 with the given gain.
    pub logits: Vec<f32>,
    /// Mean cross-entropy + λ‖c‖₁.
    pub loss: f32,
    /// Gradients of the loss, g held constant (stored-block layout).
    pub grads: Grads<f32>,
}

/// Runs the trace of `inputs` on `model`. The coupling and gain are those
/// of the inputs (c = 0 and g = 1 when absent), not the checkpoint's.
pub fn trace(model: &Model<f32>, inputs: &TraceInputs) -> (Model<f32>, TraceOutputs) {
    let mut model = model.clone();
    model.coupling = inputs
        .coupling
        .clone()
        .unwrap_or_else(|| vec![0.0; model.coupling.len()]);
    model.gain = inputs
        .gain
        .clone()
        .unwrap_or_else(|| vec![1.0; model.gain.len()]);
    let trials = inputs.labels.len();
    let plan = KernelPlan::new(&model);
    let mut scratch = BatchScratch::new(&model, trials);
    let trial_gain = trial_gains(
        &model,
        &plan,
        &inputs.stimuli,
        &inputs.modulator,
        inputs.rule,
        &mut scratch,
    )
    .to_vec();

    let mut ws = model.workspace(trials);
    let mut grads = model.zero_grads();
    model.forward(&mut ws, &inputs.stimuli, inputs.m0);
    let logits = model.logits(&ws).to_vec();
    let loss = model.loss(&mut ws, &inputs.labels, inputs.readout)
        + l1_penalty(&model.coupling, inputs.lambda);
    model.backward(&mut ws, GradTargets::EVERYTHING, &mut grads);
    l1_backward(&model.coupling, inputs.lambda, &mut grads.coupling);
    let outputs = TraceOutputs {
        trial_gain,
        logits,
        loss,
        grads,
    };
    (model, outputs)
}
