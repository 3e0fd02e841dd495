//! Accuracy of a convolutional network's heads on a labelled set (§8),
//! in chunks of rows so that the buffers stay small.

use crate::conv::net::{ConvNet, ConvWorkspace, head_correct};
use crate::multitask::data::Images;

/// Rows per forward pass of an evaluation.
pub const EVAL_CHUNK: usize = 250;

/// The task modulation an evaluation runs with: every row at m with the
/// coupling c, and the gain g (§2, §8).
#[derive(Clone, Copy, Debug)]
pub struct Evaluated<'a> {
    /// m of every row (μ_m).
    pub m: f32,
    /// Coupling c.
    pub coupling: &'a [f32],
    /// Gain g (`None`: 1).
    pub gain: Option<&'a [f32]>,
}

/// Logits `[n, 2·tasks]` of `set` under `modulation` (none: unmodulated).
pub fn logits(
    net: &ConvNet<f32>,
    ws: &mut ConvWorkspace<f32>,
    set: &Images,
    tasks: usize,
    modulation: Option<Evaluated<'_>>,
) -> Vec<f32> {
    let len = net.arch().input.len();
    let n = set.len(tasks);
    let mut out = Vec::with_capacity(n * net.arch().logits());
    let mut m = Vec::new();
    for start in (0..n).step_by(EVAL_CHUNK) {
        let rows = EVAL_CHUNK.min(n - start);
        let images = &set.images[start * len..(start + rows) * len];
        match modulation {
            Some(e) => {
                m.clear();
                m.resize(rows, e.m);
                let modulator = crate::conv::Modulator {
                    m: &m,
                    coupling: e.coupling,
                    beta: net.arch().beta,
                    variance: 0.0,
                };
                net.forward(ws, images, rows, Some(&modulator), e.gain);
            }
            None => net.forward(ws, images, rows, None, None),
        }
        out.extend_from_slice(ws.logits());
    }
    out
}

/// Accuracy of every head on `set`.
pub fn task_accuracies(
    net: &ConvNet<f32>,
    set: &Images,
    tasks: usize,
    modulation: Option<Evaluated<'_>>,
) -> Vec<f64> {
    let mut ws = net.workspace();
    let z = logits(net, &mut ws, set, tasks, modulation);
    let n = set.len(tasks) as f64;
    (0..tasks)
        .map(|t| head_correct(&z, tasks, &set.labels, t) as f64 / n)
        .collect()
}
