//! The portable scalar body of the kernel's tiles.

use crate::kernel::plan::PANEL;
use crate::kernel::{GatedSlices, ROWS, Tiles};

/// Plain loops; any CPU.
pub struct Scalar;

/// acc[r][c] = Σ_k a[r·a_stride + k]·panel[k·16 + c].
fn product(k: usize, a: &[f32], a_stride: usize, panel: &[f32]) -> [[f32; PANEL]; ROWS] {
    let mut acc = [[0.0f32; PANEL]; ROWS];
    for kk in 0..k {
        let w = &panel[kk * PANEL..(kk + 1) * PANEL];
        for (r, row) in acc.iter_mut().enumerate() {
            let x = a[r * a_stride + kk];
            for (acc_c, &w_c) in row.iter_mut().zip(w) {
                *acc_c += x * w_c;
            }
        }
    }
    acc
}

impl Tiles for Scalar {
    fn hidden(
        k: usize,
        a: &[f32],
        a_stride: usize,
        panel: &[f32],
        bias: &[f32],
        out: &mut [f32],
        out_stride: usize,
        width: usize,
    ) {
        let acc = product(k, a, a_stride, panel);
        for (r, row) in acc.iter().enumerate() {
            for c in 0..width {
                out[r * out_stride + c] = (row[c] + bias[c]).max(0.0);
            }
        }
    }

    fn gated(
        k: usize,
        a: &[f32],
        a_stride: usize,
        panel: &[f32],
        bias: &[f32],
        weight: &[f32],
        valid: &[f32],
        width: usize,
        correlation: bool,
        sums: GatedSlices<'_>,
    ) {
        let acc = product(k, a, a_stride, panel);
        for c in 0..width {
            if sums.first {
                sums.shift[c] = (acc[0][c] + bias[c]).max(0.0);
            }
            let mut covariance = 0.0f32;
            for r in 0..ROWS {
                let d = (acc[r][c] + bias[c]).max(0.0) - sums.shift[c];
                covariance += weight[r] * d;
                if correlation {
                    let (d, v) = (d as f64, valid[r] as f64);
                    sums.sum[c] += v * d;
                    sums.sum_squares[c] += v * d * d;
                }
            }
            sums.covariance[c] += covariance as f64;
        }
    }
}
