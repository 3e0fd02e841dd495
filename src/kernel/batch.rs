//! Batches of trials (§3): the batch gain is the mean of the
//! per-trial gains. Trials run in parallel on the rayon pool; each trial's
//! gain lands in its own row and the rows are summed in trial order, so
//! the result does not depend on the thread count (§6).

use std::cell::RefCell;

use rayon::prelude::*;

use crate::kernel::{Body, KernelPlan, KernelScratch, trial_gain};
use crate::net::GainRule;
use crate::net::linalg::split_min_len;
use crate::net::{Model, Workspace};

thread_local! {
    /// Each worker thread's kernel buffers, kept across trials and calls.
    static SCRATCH: RefCell<KernelScratch> = RefCell::new(KernelScratch::default());
}

/// Buffers of [`batch_gain`], allocated once for a batch size.
#[derive(Clone, Debug)]
pub struct BatchScratch {
    /// For the layers up to ℓ (computed once per trial, batched).
    workspace: Workspace<f32>,
    /// Per-trial gains, `[B, N_{L−1}]`.
    per_trial: Vec<f32>,
    /// Their mean, `[N_{L−1}]`.
    mean: Vec<f32>,
}

impl BatchScratch {
    /// Buffers for batches of up to `capacity` trials of `model`.
    pub fn new(model: &Model<f32>, capacity: usize) -> BatchScratch {
        let gated = model.arch().size(model.arch().gated_layer());
        BatchScratch {
            workspace: model.workspace(capacity),
            per_trial: vec![0.0; capacity * gated],
            mean: vec![0.0; gated],
        }
    }
}

/// What the trials of a batch start from.
#[derive(Clone, Copy, Debug)]
pub enum Trials<'a> {
    /// Canvases `[B, 784]`; their F(a_ℓ) is computed here.
    Canvases(&'a [f32]),
    /// The modulated layer's unmodulated activity F(a_ℓ), `[B, N_ℓ]`,
    /// computed once for a fixed data set (§4).
    Activity(&'a [f32]),
}

impl Trials<'_> {
    /// The number of trials, for a modulated layer of `modulated_size` neurons.
    pub fn count(&self, modulated_size: usize) -> usize {
        match self {
            Trials::Canvases(canvases) => canvases.len() / crate::data::CANVAS_PIXELS,
            Trials::Activity(activity) => activity.len() / modulated_size,
        }
    }
}

/// Per-trial gains (§3) of `model` with `coupling`, for the `trials` and
/// modulator samples `[B, T]` (row b for trial b): returns
/// `[B, N_{L−1}]`, row b for trial b. Trials run in parallel, except where
/// the work stays on the calling thread ([`split_min_len`]).
pub fn trial_gains<'s>(
    model: &Model<f32>,
    plan: &KernelPlan,
    coupling: &[f32],
    trials: Trials<'_>,
    modulator: &[f32],
    rule: GainRule,
    scratch: &'s mut BatchScratch,
) -> &'s [f32] {
    let (n_modulated, n_gated) = (plan.modulated_size, plan.gated_size);
    let count = trials.count(n_modulated);
    let activity = match trials {
        Trials::Canvases(canvases) => model.unmodulated_activity(&mut scratch.workspace, canvases),
        Trials::Activity(activity) => activity,
    };
    assert!(
        count > 0 && modulator.len().is_multiple_of(count),
        "one modulator row per trial"
    );
    let samples = modulator.len() / count;
    let per_trial = &mut scratch.per_trial[..count * n_gated];
    let body = Body::detect();
    per_trial
        .par_chunks_mut(n_gated)
        .zip(activity.par_chunks(n_modulated))
        .zip(modulator.par_chunks(samples))
        // A run inside a sweep keeps its trials on its thread, as its products.
        .with_min_len(split_min_len())
        .for_each(|((gain, u), m)| {
            SCRATCH
                .with(|s| trial_gain(body, plan, coupling, u, m, rule, &mut s.borrow_mut(), gain));
        });
    per_trial
}

/// The batch gain (§3): the mean over trials of [`trial_gains`], summed
/// in trial order; returns `[N_{L−1}]`.
pub fn batch_gain<'s>(
    model: &Model<f32>,
    plan: &KernelPlan,
    coupling: &[f32],
    trials: Trials<'_>,
    modulator: &[f32],
    rule: GainRule,
    scratch: &'s mut BatchScratch,
) -> &'s [f32] {
    let count = trials.count(plan.modulated_size);
    trial_gains(model, plan, coupling, trials, modulator, rule, scratch);
    let BatchScratch {
        per_trial, mean, ..
    } = scratch;
    let per_trial = &per_trial[..count * plan.gated_size];
    for (j, g) in mean.iter_mut().enumerate() {
        let total: f64 = per_trial
            .chunks_exact(plan.gated_size)
            .map(|row| row[j] as f64)
            .sum();
        *g = (total / count as f64) as f32;
    }
    mean
}
