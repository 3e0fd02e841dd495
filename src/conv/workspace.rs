//! The buffers of a convolutional network's passes (§8): every stage's
//! activations kept for the backward pass, the modulated stage's factors,
//! the gated output before the gain, the logits, and scratch gradients.

use crate::conv::direct::ConvWeights;
use crate::kernel::dense::RowsScratch;
use crate::net::linalg::Real;

/// Activations of one forward pass, kept for the backward pass.
#[derive(Clone, Debug, Default)]
pub struct ConvWorkspace<T> {
    pub(super) rows: usize,
    /// `acts[s]`: the input of stage s; `acts[n]`: the gated output g ⊙ z.
    pub(super) acts: Vec<Vec<T>>,
    /// `proven_finite[s]`: `acts[s]` was written by the last pass and is
    /// known to be finite (the direct conv kernel tests what it stores,
    /// and a max-pool of finite maps is finite), so the fault search of
    /// §6 skips it.
    pub(super) proven_finite: Vec<bool>,
    /// im2col matrices of the conv stages (empty for others), for the
    /// backward pass (and the f64 forward pass).
    pub(super) cols: Vec<Vec<T>>,
    /// The conv stages' weights as the direct kernel reads them (f32).
    pub(super) packed: Vec<ConvWeights>,
    /// Scratch of the dense stages in an evaluation pass
    /// ([`super::evaluation`]).
    pub(super) dense_rows: RowsScratch,
    /// Per conv stage, its input with a zero border as the direct kernel
    /// reads it (and scratch of its backward pass).
    pub(super) padded: Vec<Vec<f32>>,
    /// `Some(s)`: `padded[s]` already holds the input of conv stage s,
    /// laid out by the caller of an evaluation pass, which then leaves
    /// `acts[s]` empty ([`super::Evaluation`]). The next pass takes it.
    pub(super) bordered: Option<usize>,
    /// The modulated stage's output before its factor.
    pub(super) unmodulated: Vec<T>,
    /// Its factor per (row, channel), when modulated.
    pub(super) factors: Vec<T>,
    /// m per row, c and σ² of the last modulated pass.
    pub(super) m: Vec<T>,
    pub(super) coupling: Vec<T>,
    pub(super) variance: T,
    /// The gated stage's output z before the gain.
    pub(super) gated: Vec<T>,
    /// The gain of the last pass (empty: g = 1).
    pub(super) gain: Vec<T>,
    /// Logits `[rows, 2·tasks]`.
    pub(super) logits: Vec<T>,
    /// Scratch gradients.
    pub(super) grad_a: Vec<T>,
    pub(super) grad_b: Vec<T>,
    pub(super) grad_cols: Vec<T>,
}

impl<T: Real> ConvWorkspace<T> {
    /// Logits of the last forward pass, `[rows, 2·tasks]`.
    pub fn logits(&self) -> &[T] {
        &self.logits
    }

    /// The gated stage's output before the gain, `[rows, N]`.
    pub fn gated(&self) -> &[T] {
        &self.gated
    }

    /// The input of stage `s` (0-based) in the last pass; `s = stages`
    /// gives the gated output g ⊙ z. After an evaluation pass
    /// ([`super::Evaluation`]) it is empty for a pooled conv stage's map
    /// and for a conv stage's input that was only laid out bordered; the
    /// last stage's input and output are always kept.
    pub fn activation(&self, s: usize) -> &[T] {
        &self.acts[s]
    }

    /// Rows of the last pass.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Copies `input` into the input buffer of stage `s` (a forward pass
    /// from that stage).
    pub(super) fn set_stage_input(&mut self, s: usize, input: &[T]) {
        let buffer = self.stage_input_mut(s);
        buffer.clear();
        buffer.extend_from_slice(input);
    }

    /// The bordered input buffer of conv stage `s` (the direct kernel's
    /// layout), for an evaluation pass's caller that lays the input out
    /// itself: the next pass reads it there, and `acts[s]` stays empty.
    pub(super) fn bordered_input_mut(&mut self, s: usize) -> &mut Vec<f32> {
        self.acts[s].clear();
        self.bordered = Some(s);
        &mut self.padded[s]
    }

    /// The input buffer of stage `s`, for a caller that fills it in place
    /// before [`crate::conv::net::ConvNet::run_stages`] (no copy of a large batch).
    pub fn stage_input_mut(&mut self, s: usize) -> &mut Vec<T> {
        if let Some(proven) = self.proven_finite.get_mut(s) {
            *proven = false;
        }
        self.bordered = None;
        &mut self.acts[s]
    }
}
