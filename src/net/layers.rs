//! Layer forward/backward pairs over flat row-major batches (§2).
//!
//! Every function takes plain slices and sizes; a batch of activations is
//! `[batch, n]` row-major. The math of each pair is in its doc comment.

use crate::net::arch::{LOGITS, Nonlinearity};
use rayon::prelude::*;

use crate::net::linalg::{Mat, MatMut, Real, gemm, gemm_groups, gemm_serial_into, split_min_len};

/// Shape of a linear layer whose neurons are split into `groups` equal
/// blocks, each connected only to the same-numbered block of inputs
/// (groups = 1: dense; 4: the encoder's quadrants or a `local` layer).
/// Group g's weights are one row-major `[outputs/groups, inputs/groups]` block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinearShape {
    /// Inputs of the whole layer.
    pub inputs: usize,
    /// Neurons of the whole layer.
    pub outputs: usize,
    /// Number of blocks.
    pub groups: usize,
}

impl LinearShape {
    /// Inputs seen by one neuron.
    pub fn group_inputs(&self) -> usize {
        self.inputs / self.groups
    }

    /// Neurons per block.
    pub fn group_outputs(&self) -> usize {
        self.outputs / self.groups
    }

    /// Number of stored weights (only the blocks).
    pub fn weight_len(&self) -> usize {
        self.outputs * self.group_inputs()
    }

    /// Multiply-adds of one example through this layer.
    pub fn macs(&self) -> usize {
        self.weight_len()
    }
}

/// a = x·Wᵀ + b, block by block: a[:, g-block] = x[:, g-block]·W_gᵀ + b.
pub fn linear_forward<T: Real>(
    shape: LinearShape,
    batch: usize,
    x: &[T],
    w: &[T],
    b: &[T],
    a: &mut [T],
) {
    let (ni, no) = (shape.group_inputs(), shape.group_outputs());
    for row in a[..batch * shape.outputs].chunks_exact_mut(shape.outputs) {
        row.copy_from_slice(b);
    }
    gemm_groups(
        shape.groups,
        |g| {
            (
                Mat::strided(x, g * ni, batch, ni, shape.inputs, 1),
                Mat::strided(w, g * no * ni, no, ni, ni, 1).t(),
            )
        },
        true,
        a,
        shape.outputs,
    );
}

/// Gradients of [`linear_forward`] given da = ∂L/∂a:
/// dW_g = da[:, g]ᵀ·x[:, g], db = Σ_batch da, dx[:, g] = da[:, g]·W_g.
/// Each output is written (not accumulated) when requested.
#[allow(clippy::too_many_arguments)]
pub fn linear_backward<T: Real>(
    shape: LinearShape,
    batch: usize,
    x: &[T],
    w: &[T],
    da: &[T],
    dw_db: Option<(&mut [T], &mut [T])>,
    dx: Option<&mut [T]>,
) {
    let (ni, no) = (shape.group_inputs(), shape.group_outputs());
    if let Some((dw, db)) = dw_db {
        if shape.groups == 1 {
            gemm(
                Mat::strided(da, 0, batch, no, shape.outputs, 1).t(),
                Mat::strided(x, 0, batch, ni, shape.inputs, 1),
                false,
                MatMut::row_major(dw, no, ni),
            );
        } else {
            // Block g of dW is its own contiguous [no, ni] slice.
            dw.par_chunks_mut(no * ni)
                .enumerate()
                .with_min_len(split_min_len())
                .for_each(|(g, block)| {
                    gemm_serial_into(
                        Mat::strided(da, g * no, batch, no, shape.outputs, 1).t(),
                        Mat::strided(x, g * ni, batch, ni, shape.inputs, 1),
                        MatMut::row_major(block, no, ni),
                    )
                });
        }
        db.fill(T::ZERO);
        for row in da[..batch * shape.outputs].chunks_exact(shape.outputs) {
            for (d, &r) in db.iter_mut().zip(row) {
                *d += r;
            }
        }
    }
    if let Some(dx) = dx {
        gemm_groups(
            shape.groups,
            |g| {
                (
                    Mat::strided(da, g * no, batch, no, shape.outputs, 1),
                    Mat::strided(w, g * no * ni, no, ni, ni, 1),
                )
            },
            false,
            dx,
            shape.inputs,
        );
    }
}

/// h = F(a) ⊙ s: the hidden nonlinearity, times an optional per-neuron
/// factor s (the modulation exp(m·c − β) and/or the gain g, §2).
pub fn activation_forward<T: Real>(
    f: Nonlinearity,
    n: usize,
    a: &[T],
    scale: Option<&[T]>,
    h: &mut [T],
) {
    let rows = a.len() / n;
    let h = &mut h[..rows * n];
    match f {
        Nonlinearity::Exp => {
            h.copy_from_slice(&a[..rows * n]);
            T::exp_in_place(h);
        }
        Nonlinearity::Relu => {
            for (hj, &aj) in h.iter_mut().zip(a) {
                *hj = aj.max(T::ZERO);
            }
        }
    }
    if let Some(s) = scale {
        scale_rows(h, s);
    }
}

/// Multiplies each row of `rows` (`[R, factor.len()]`) by `factor`,
/// element by element: a layer's per-neuron factor (§2), exp(m·c − β) on
/// the modulated layer and the gain g on the gated one.
pub fn scale_rows<T: Real>(rows: &mut [T], factor: &[T]) {
    assert!(
        !factor.is_empty() && rows.len().is_multiple_of(factor.len()),
        "whole rows of one factor per neuron"
    );
    for row in rows.chunks_exact_mut(factor.len()) {
        for (h, &f) in row.iter_mut().zip(factor) {
            *h *= f;
        }
    }
}

/// Backward of [`activation_forward`], in place: dh becomes
/// da = dh ⊙ s ⊙ F'(a) (for exp, F'(a)·s = h; for ReLU, s·\[a > 0\]).
pub fn activation_backward<T: Real>(
    f: Nonlinearity,
    n: usize,
    a: &[T],
    h: &[T],
    scale: Option<&[T]>,
    dh: &mut [T],
) {
    for ((d_row, a_row), h_row) in dh
        .chunks_exact_mut(n)
        .zip(a.chunks_exact(n))
        .zip(h.chunks_exact(n))
    {
        for (j, d) in d_row.iter_mut().enumerate() {
            *d = match f {
                Nonlinearity::Exp => *d * h_row[j],
                Nonlinearity::Relu if a_row[j] > T::ZERO => match scale {
                    Some(s) => *d * s[j],
                    None => *d,
                },
                Nonlinearity::Relu => T::ZERO,
            };
        }
    }
}

/// Per-neuron factor of the modulated layer, exp(m·c − β) (§2).
pub fn modulation_factor<T: Real>(m: T, coupling: &[T], beta: T, out: &mut [T]) {
    for (o, &c) in out.iter_mut().zip(coupling) {
        *o = m * c - beta;
    }
    T::exp_in_place(out);
}

/// Gradient w.r.t. the coupling: since ∂h/∂c_j = m·h_j,
/// dc_j = m·Σ_batch dh_j·h_j. Written, not accumulated.
pub fn coupling_backward<T: Real>(n: usize, m: T, h: &[T], dh: &[T], dc: &mut [T]) {
    dc.fill(T::ZERO);
    for (h_row, d_row) in h.chunks_exact(n).zip(dh.chunks_exact(n)) {
        for ((c, &hj), &dj) in dc.iter_mut().zip(h_row).zip(d_row) {
            *c += dj * hj;
        }
    }
    for c in dc.iter_mut() {
        *c *= m;
    }
}

/// The L1 term λ·‖θ‖₁ of the fine-tuning loss (§2).
pub fn l1_penalty<T: Real>(theta: &[T], lambda: T) -> T {
    theta.iter().fold(T::ZERO, |s, &x| s + x.abs()) * lambda
}

/// Adds the L1 subgradient λ·sign(θ) to `grad`, with sign(0) = 0 (§7).
/// The sign is computed from the comparisons as an integer, not chosen by
/// a branch, so that the loop vectorises.
pub fn l1_backward<T: Real>(theta: &[T], lambda: T, grad: &mut [T]) {
    crate::net::simd::with_avx2(
        #[inline(always)]
        || {
            for (g, &x) in grad.iter_mut().zip(theta) {
                let sign = i32::from(x > T::ZERO) - i32::from(x < T::ZERO);
                *g += lambda * T::from_f64(f64::from(sign));
            }
        },
    )
}

/// Which logits a task reads (§2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Readout {
    /// 10-way softmax; labels are classes 0..9.
    All,
    /// Softmax over the logits of classes (a, b); labels are 0 (a) or 1 (b).
    Pair(u8, u8),
}

impl Readout {
    /// The logit columns read, in label order (no allocation: this runs
    /// in every training step).
    pub fn columns(&self) -> Columns {
        let mut columns = Columns {
            indices: [0; LOGITS],
            len: 0,
        };
        match *self {
            Readout::All => {
                columns.indices = std::array::from_fn(|i| i);
                columns.len = LOGITS;
            }
            Readout::Pair(a, b) => {
                columns.indices[..2].copy_from_slice(&[a as usize, b as usize]);
                columns.len = 2;
            }
        }
        columns
    }
}

/// The logit columns of a [`Readout`], as a slice through `Deref`.
#[derive(Clone, Copy, Debug)]
pub struct Columns {
    indices: [usize; LOGITS],
    len: usize,
}

impl std::ops::Deref for Columns {
    type Target = [usize];

    fn deref(&self) -> &[usize] {
        &self.indices[..self.len]
    }
}

/// The cross-entropy of one row at label `y` (§2, Loss), with the two
/// parts of log Σ_{c ∈ columns} e^{z_c} it is made of: (loss, z_max,
/// ln(1 + Σ_{c ≠ max} e^{z_c − z_max})), the last taken with `ln_1p`, so
/// that a confident row's small loss (z_max − z_y + that, with z_y =
/// z_max) keeps its precision (the first maximum is the one left out; a
/// NaN logit never is).
fn row_cross_entropy<T: Real>(z: &[T], columns: &[usize], y: usize) -> (T, T, T) {
    let (top, zmax) =
        columns
            .iter()
            .enumerate()
            .fold((0, z[columns[0]]), |(top, zmax), (k, &c)| {
                if z[c] > zmax { (k, z[c]) } else { (top, zmax) }
            });
    let rest = columns
        .iter()
        .enumerate()
        .filter(|&(k, _)| k != top)
        .fold(T::ZERO, |s, (_, &c)| s + (z[c] - zmax).exp());
    let log_rest = rest.ln_1p();
    ((zmax - z[columns[y]]) + log_rest, zmax, log_rest)
}

/// Mean cross-entropy of softmax over the readout's logits (§2, Loss), and
/// its gradient w.r.t. all logits (zero outside the readout's columns):
/// L = −(1/B) Σ_b log softmax(z_b)\[y_b\], dz = (softmax − onehot)/B. The
/// label's entry, p_y − 1, is taken as −Σ_{c ≠ y} p_c, without the
/// cancellation of p_y − 1 when p_y is near 1: a confident example's
/// small gradient keeps its precision (`comod trace` exports it, §7), as
/// the conv heads' loss does.
pub fn cross_entropy<T: Real>(
    logits: &[T],
    classes: usize,
    labels: &[u8],
    readout: Readout,
    dlogits: &mut [T],
) -> T {
    let cols = readout.columns();
    let batch = labels.len();
    let inv_batch = T::ONE / T::from_f64(batch as f64);
    let mut total = T::ZERO;
    for ((z, dz), &y) in logits
        .chunks_exact(classes)
        .zip(dlogits.chunks_exact_mut(classes))
        .zip(labels)
    {
        dz.fill(T::ZERO);
        let y = y as usize;
        let (loss, zmax, log_rest) = row_cross_entropy(z, &cols, y);
        total += loss;
        let mut others = T::ZERO;
        for (k, &c) in cols.iter().enumerate() {
            if k != y {
                let p = ((z[c] - zmax) - log_rest).exp();
                dz[c] = p * inv_batch;
                others += p;
            }
        }
        dz[cols[y]] = -others * inv_batch;
    }
    total * inv_batch
}

/// The loss of [`cross_entropy`] without its gradient, summed in f64:
/// what an evaluation on a labelled set reports.
pub fn mean_cross_entropy(logits: &[f32], classes: usize, labels: &[u8], readout: Readout) -> f64 {
    let cols = readout.columns();
    let total: f64 = logits
        .chunks_exact(classes)
        .zip(labels)
        .map(|(z, &y)| row_cross_entropy(z, &cols, y as usize).0 as f64)
        .sum();
    total / labels.len() as f64
}

/// Number of examples whose largest readout logit is the label's (first
/// maximum wins ties; a NaN logit never wins, and a NaN first column keeps
/// it): the accuracy's argmax (§2), of `logits` `[n, LOGITS]` (every
/// readout has [`LOGITS`] outputs, which [`crate::net::Arch`] checks).
/// Every evaluation point of a run counts its test set this way.
pub fn correct_count<T: Real>(logits: &[T], labels: &[u8], readout: Readout) -> usize {
    let cols = readout.columns();
    let rows = labels.len().min(logits.len() / LOGITS);
    let whole = rows / ARGMAX_ROWS * ARGMAX_ROWS;
    let blocks: usize = logits[..whole * LOGITS]
        .chunks_exact(ARGMAX_ROWS * LOGITS)
        .zip(labels.chunks_exact(ARGMAX_ROWS))
        .map(|(z, y)| block_correct(z.try_into().expect("a whole block"), y, &cols))
        .sum();
    if whole == rows {
        return blocks;
    }
    // The last rows in a block of their own, the rest zeros that no label
    // claims.
    let mut z = [T::ZERO; ARGMAX_ROWS * LOGITS];
    z[..(rows - whole) * LOGITS].copy_from_slice(&logits[whole * LOGITS..rows * LOGITS]);
    let mut y = [u8::MAX; ARGMAX_ROWS];
    y[..rows - whole].copy_from_slice(&labels[whole..rows]);
    blocks + block_correct(&z, &y, &cols)
}

/// Rows of one block of [`correct_count`]: its chains of selects run
/// across the rows of a block, a vector's lanes, where one row's chain of
/// 9 selects ran at the selects' latency. An `online` run's 251
/// evaluations of 1000 rows (`online_retrain-last` in `comod bench`) cost
/// 4.6–4.9 µs each before, 2.9 µs after (the same with the loop compiled
/// for AVX2), in throwaway timings on a Zen 4.
pub const ARGMAX_ROWS: usize = 16;

/// [`correct_count`] of one block of [`ARGMAX_ROWS`] rows: the block
/// transposed to one array of rows per logit, then [`columns_correct`].
/// Inlined into the loop over blocks, as a call it took 4.1 µs, not 2.9.
#[inline(always)]
fn block_correct<T: Real>(z: &[T; ARGMAX_ROWS * LOGITS], labels: &[u8], cols: &[usize]) -> usize {
    let mut columns = [[T::ZERO; ARGMAX_ROWS]; LOGITS];
    for r in 0..ARGMAX_ROWS {
        for (c, column) in columns.iter_mut().enumerate() {
            column[r] = z[r * LOGITS + c];
        }
    }
    columns_correct(&columns, labels, cols)
}

/// [`correct_count`] of a block of [`ARGMAX_ROWS`] rows held as columns
/// (`columns[c][r]`: logit c of row r), counting its first `labels.len()`
/// rows: for each readout column after the first, in order, each row's
/// best column and value replaced where the column's logit is strictly
/// larger. The best value rides beside its index, and both are chosen by
/// selects, not branches: the logits are data, and a branch on them is
/// mispredicted half the time. The readout of `retrain-last`'s
/// evaluations leaves its tiles in this layout; their SIMD count
/// ([`crate::kernel::dense::lane_block_correct`]) has this as its
/// reference (§2's accuracy, the same comparisons).
#[inline(always)]
pub fn columns_correct<T: Real>(
    columns: &[[T; ARGMAX_ROWS]],
    labels: &[u8],
    cols: &[usize],
) -> usize {
    assert!(labels.len() <= ARGMAX_ROWS, "a block's rows");
    let mut best_value = columns[cols[0]];
    let mut best = [0u32; ARGMAX_ROWS];
    for (k, &c) in cols.iter().enumerate().skip(1) {
        let values = &columns[c];
        for r in 0..ARGMAX_ROWS {
            let better = values[r] > best_value[r];
            best[r] = if better { k as u32 } else { best[r] };
            best_value[r] = if better { values[r] } else { best_value[r] };
        }
    }
    best.iter()
        .zip(labels)
        .filter(|&(&b, &y)| b == u32::from(y))
        .count()
}
