//! The computation behind `comod trace` (§7): per-trial gains, the forward
//! pass at m0, the loss with its L1 term on c, and every gradient, so that
//! any framework implementation can be checked tensor by tensor. The types
//! here are plain data; `crate::io::trace` reads and writes them.

use crate::kernel::{BatchScratch, KernelPlan, Trials, trial_gains};
use crate::net::GainRule;
use crate::net::layers::{l1_backward, l1_penalty};
use crate::net::{Depth, Grads, Model, Modulation, Readout};

/// The inputs of a trace (§7), validated.
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
    /// c; `None` means c = 0.
    pub coupling: Option<Vec<f32>>,
    /// g; `None` means g = 1.
    pub gain: Option<Vec<f32>>,
    /// Modulator value of the forward pass (default μ_m).
    pub m0: f32,
    /// λ of the L1 term on c (default 0).
    pub lambda: f32,
    /// Rule of the per-trial gain (default covariance).
    pub rule: GainRule,
}

/// What `comod trace` writes.
#[derive(Clone, Debug)]
pub struct TraceOutputs {
    /// Per-trial gains `[K, N_{L−1}]` (§3), from each trial's modulator row.
    pub trial_gain: Vec<f32>,
    /// Logits `[K, 10]` at m = m0 with the given gain.
    pub logits: Vec<f32>,
    /// Mean cross-entropy + λ‖c‖₁.
    pub loss: f32,
    /// Gradients of the loss, g held constant (stored-block layout).
    pub grads: Grads<f32>,
}

/// Runs the trace of `inputs` on `model`, with the coupling and gain of
/// the inputs (c = 0 and g = 1 when absent).
pub fn trace(model: &Model<f32>, inputs: &TraceInputs) -> TraceOutputs {
    let mut modulation = Modulation::off(model.arch());
    if let Some(coupling) = &inputs.coupling {
        modulation.coupling.clone_from(coupling);
    }
    if let Some(gain) = &inputs.gain {
        modulation.gain.clone_from(gain);
    }
    let trials = inputs.labels.len();
    let plan = KernelPlan::new(model);
    let mut scratch = BatchScratch::new(model, trials);
    let trial_gain = trial_gains(
        model,
        &plan,
        &modulation.coupling,
        Trials::Canvases(&inputs.stimuli),
        &inputs.modulator,
        inputs.rule,
        &mut scratch,
    )
    .to_vec();

    let mut ws = model.workspace(trials);
    let mut grads = model.zero_grads();
    model.forward(&mut ws, &modulation, &inputs.stimuli, inputs.m0);
    let logits = model.logits(&ws).to_vec();
    let loss = model.loss(&mut ws, &inputs.labels, inputs.readout)
        + l1_penalty(&modulation.coupling, inputs.lambda);
    model.backward(&mut ws, Depth::All, &mut grads);
    l1_backward(&modulation.coupling, inputs.lambda, &mut grads.coupling);
    TraceOutputs {
        trial_gain,
        logits,
        loss,
        grads,
    }
}
