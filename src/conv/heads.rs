//! The binary heads of a multi-task network (§8): one 2-way softmax per
//! task, their cross-entropy (all heads in joint pretraining, one when a
//! task is fine-tuned) and their answers.

use std::ops::Range;

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
    let width = tasks * HEAD_LOGITS;
    let rows = logits.len() / width;
    assert_eq!(dlogits.len(), logits.len(), "dlogits size");
    let (read, label): (Range<usize>, &dyn Fn(usize, usize) -> u8) = match heads {
        Heads::All => (0..tasks, &|b, t| labels[b * tasks + t]),
        Heads::One(t) => (t..t + 1, &|b, _| labels[b]),
    };
    assert_eq!(
        labels.len(),
        rows * read.len(),
        "one label per row and head read"
    );
    let scale = T::ONE / T::from_f64((rows * read.len()) as f64);
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
            let e = (if d < T::ZERO { d } else { -d }).exp();
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
