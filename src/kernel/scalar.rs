//! The portable scalar body of the kernel's tiles.

use crate::kernel::plan::PANEL;
use crate::kernel::{GatedSlices, Output, PACK, Tile, Tiles};

/// Rows of a tile of this body.
const ROWS: usize = 6;

/// Plain loops; any CPU.
pub struct Scalar;

/// acc[r][c] = Σ_k a[k·PACK + r]·panel[k·16 + c] + bias[c].
fn product(tile: Tile<'_>) -> [[f32; PANEL]; ROWS] {
    tile.check(ROWS, 1);
    let mut acc = [[0.0f32; PANEL]; ROWS];
    for kk in 0..tile.k {
        let w = &tile.panel[kk * PANEL..(kk + 1) * PANEL];
        for (r, row) in acc.iter_mut().enumerate() {
            let x = tile.a[kk * PACK + r];
            for (acc_c, &w_c) in row.iter_mut().zip(w) {
                *acc_c += x * w_c;
            }
        }
    }
    for row in acc.iter_mut() {
        for (acc_c, &b) in row.iter_mut().zip(tile.bias) {
            *acc_c += b;
        }
    }
    acc
}

impl Tiles for Scalar {
    const ROWS: usize = ROWS;
    const PANELS: usize = 1;

    fn hidden(tile: Tile<'_>, out: &mut [f32], layout: Output) {
        let mut rows = product(tile);
        for v in rows.iter_mut().flatten() {
            *v = v.max(0.0);
        }
        layout.write(&rows, tile.width, out);
    }

    fn gated(
        tile: Tile<'_>,
        weight: &[f32],
        valid: &[f32],
        correlation: bool,
        sums: GatedSlices<'_>,
    ) {
        let acc = product(tile);
        if sums.first {
            for (shift, &z) in sums.shift.iter_mut().zip(&acc[0]) {
                *shift = z.max(0.0);
            }
        }
        // Row by row; each neuron's sums run over the rows in order. `shift`
        // has `width` entries, which bounds every inner loop.
        let mut covariance = [0.0f32; PANEL];
        for ((row, &w), &v) in acc.iter().zip(weight).zip(valid) {
            for (c, (&z, &shift)) in row.iter().zip(sums.shift.iter()).enumerate() {
                let d = z.max(0.0) - shift;
                covariance[c] += w * d;
                if correlation {
                    let (d, v) = (d as f64, v as f64);
                    sums.sum[c] += v * d;
                    sums.sum_squares[c] += v * d * d;
                }
            }
        }
        for (total, &c) in sums.covariance.iter_mut().zip(&covariance) {
            *total += c as f64;
        }
    }
}
