//! The binary heads of a multi-task network (§8): one 2-way softmax per
//! task, their cross-entropy (all heads in joint pretraining, one when a
//! task is fine-tuned) and their answers.

use crate::conv::arch::HEAD_LOGITS;
use crate::net::linalg::Real;

/// Which heads a loss reads (§8): all of them (joint pretraining) or one
/// task's (fine-tuning).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Heads {
    /// Mean cross-entropy over every head; labels `[rows, tasks]`.
    All,
    /// Task t's head only; labels `[rows]`, that task's.
    One(usize),
}

impl Heads {
    /// The labels this loss reads, from the labels of every task
    /// (`[rows, tasks]`).
    pub fn labels(self, all: &[u8], tasks: usize) -> Vec<u8> {
        match self {
            Heads::All => all.to_vec(),
            Heads::One(t) => all.iter().skip(t).step_by(tasks).copied().collect(),
        }
    }
}

/// Mean cross-entropy of the 2-way softmax of the chosen heads over
/// `rows` examples, labels 0/1 as [`Heads`] says, and its gradient
/// w.r.t. all logits (zero for heads not read).
pub fn heads_loss<T: Real>(
    logits: &[T],
    tasks: usize,
    labels: &[u8],
    heads: Heads,
    dlogits: &mut [T],
) -> T {
    match heads {
        Heads::All => table_loss(logits, tasks, labels, 0..tasks, dlogits),
        Heads::One(t) => {
            let rows = logits.len() / (tasks * HEAD_LOGITS);
            assert_eq!(labels.len(), rows, "one label per row");
            loss_of(logits, tasks, t..t + 1, |b, _| labels[b], dlogits)
        }
    }
}

/// The loss of [`heads_loss`] over the heads `subset` only (the
/// pretraining tasks of the `held-out` protocol, §8), labels `[rows,
/// tasks]` of which only the subset's columns are read.
pub fn subset_loss<T: Real>(
    logits: &[T],
    tasks: usize,
    labels: &[u8],
    subset: &[usize],
    dlogits: &mut [T],
) -> T {
    table_loss(logits, tasks, labels, subset.iter().copied(), dlogits)
}

/// The loss of the heads `read` with labels `[rows, tasks]`.
fn table_loss<T: Real>(
    logits: &[T],
    tasks: usize,
    labels: &[u8],
    read: impl Iterator<Item = usize> + Clone,
    dlogits: &mut [T],
) -> T {
    assert_eq!(
        labels.len() * HEAD_LOGITS,
        logits.len(),
        "labels [rows, tasks]"
    );
    loss_of(logits, tasks, read, |b, t| labels[b * tasks + t], dlogits)
}

/// The mean cross-entropy of the heads `read` (the same for every row),
/// each row's label of head t given by `label(row, t)`.
fn loss_of<T: Real>(
    logits: &[T],
    tasks: usize,
    read: impl Iterator<Item = usize> + Clone,
    label: impl Fn(usize, usize) -> u8,
    dlogits: &mut [T],
) -> T {
    let width = tasks * HEAD_LOGITS;
    let rows = logits.len() / width;
    assert_eq!(dlogits.len(), logits.len(), "dlogits size");
    let heads = read.clone().count();
    assert!(heads > 0, "a loss reads at least one head");
    let scale = T::ONE / T::from_f64((rows * heads) as f64);
    dlogits.fill(T::ZERO);
    let mut total = T::ZERO;
    for b in 0..rows {
        for t in read.clone() {
            let z = &logits[b * width + 2 * t..b * width + 2 * t + 2];
            let y = label(b, t) as usize;
            // With d = z_other − z_label: the loss is softplus(d) and the
            // other logit's probability sigmoid(d), each computed without
            // cancellation, so that a confident head's small loss and
            // gradient keep their precision.
            let other = 1 - y;
            let d = z[other] - z[y];
            let e = (-d.abs()).exp();
            total += d.max(T::ZERO) + e.ln_1p();
            let q = if d >= T::ZERO {
                T::ONE / (T::ONE + e)
            } else {
                e / (T::ONE + e)
            };
            dlogits[b * width + 2 * t + other] = q * scale;
            dlogits[b * width + 2 * t + y] = -q * scale;
        }
    }
    total * scale
}

/// Examples whose head t picks the label (the first logit wins ties).
pub fn head_correct<T: Real>(logits: &[T], tasks: usize, labels: &[u8], t: usize) -> usize {
    let width = tasks * HEAD_LOGITS;
    logits
        .chunks_exact(width)
        .zip(labels.chunks_exact(tasks))
        .filter(|(z, y)| usize::from(z[2 * t + 1] > z[2 * t]) == y[t] as usize)
        .count()
}
