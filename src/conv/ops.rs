//! Convolution and max-pooling on flat channel-last buffers (§8).
//!
//! A batch of feature maps is `[B, H, W, C]` row-major (channel last), so
//! that a whole batch's convolution is one product: the im2col matrix
//! `[B·H·W, k·k·C_in]` (rows: output pixels; columns: (dy, dx, c_in))
//! times the transposed weights `[C_out, k·k·C_in]`. The backward pass is
//! two more products and a col2im. [`conv_direct`] is the plain six-loop
//! convolution that the property tests hold the product form to.

use crate::data::Shape;
use crate::net::linalg::{Mat, MatMut, Real, gemm};
use crate::net::simd::with_avx2;

/// Fills `cols` (`[B·H·W, k·k·C]`) with the zero-padded k×k patches of
/// `x` (`[B, H, W, C]`), padding k/2 so that the output keeps H×W.
pub fn im2col<T: Real>(x: &[T], batch: usize, shape: Shape, k: usize, cols: &mut [T]) {
    let Shape {
        channels: c,
        height: h,
        width: w,
    } = shape;
    let (pad, row_len) = ((k / 2) as isize, k * k * c);
    assert_eq!(x.len(), batch * shape.len(), "im2col input size");
    assert_eq!(cols.len(), batch * h * w * row_len, "im2col output size");
    for (p, row) in cols.chunks_exact_mut(row_len).enumerate() {
        let (b, y, xx) = (p / (h * w), (p / w) % h, p % w);
        for dy in 0..k {
            let sy = y as isize + dy as isize - pad;
            for dx in 0..k {
                let sx = xx as isize + dx as isize - pad;
                let dst = &mut row[(dy * k + dx) * c..(dy * k + dx + 1) * c];
                if sy < 0 || sy >= h as isize || sx < 0 || sx >= w as isize {
                    dst.fill(T::ZERO);
                } else {
                    let src = ((b * h + sy as usize) * w + sx as usize) * c;
                    dst.copy_from_slice(&x[src..src + c]);
                }
            }
        }
    }
}

/// The adjoint of [`im2col`]: adds every patch entry of `cols` back onto
/// the pixel it was copied from; `dx` is overwritten.
pub fn col2im<T: Real>(cols: &[T], batch: usize, shape: Shape, k: usize, dx: &mut [T]) {
    let Shape {
        channels: c,
        height: h,
        width: w,
    } = shape;
    let (pad, row_len) = ((k / 2) as isize, k * k * c);
    assert_eq!(dx.len(), batch * shape.len(), "col2im output size");
    assert_eq!(cols.len(), batch * h * w * row_len, "col2im input size");
    dx.fill(T::ZERO);
    for (p, row) in cols.chunks_exact(row_len).enumerate() {
        let (b, y, xx) = (p / (h * w), (p / w) % h, p % w);
        for dy in 0..k {
            let sy = y as isize + dy as isize - pad;
            for ddx in 0..k {
                let sx = xx as isize + ddx as isize - pad;
                if sy < 0 || sy >= h as isize || sx < 0 || sx >= w as isize {
                    continue;
                }
                let dst = ((b * h + sy as usize) * w + sx as usize) * c;
                let src = &row[(dy * k + ddx) * c..(dy * k + ddx + 1) * c];
                for (d, &s) in dx[dst..dst + c].iter_mut().zip(src) {
                    *d += s;
                }
            }
        }
    }
}

/// Pre-activations of a k×k convolution from its im2col matrix:
/// `out[B·H·W, C_out] = cols · Wᵀ + b`, with `weights` `[C_out, k·k·C_in]`.
pub fn conv_forward<T: Real>(cols: &[T], weights: &[T], bias: &[T], out: &mut [T]) {
    let c_out = bias.len();
    let patch = weights.len() / c_out.max(1);
    let rows = out.len() / c_out.max(1);
    for row in out.chunks_exact_mut(c_out) {
        row.copy_from_slice(bias);
    }
    gemm(
        Mat::row_major(cols, rows, patch),
        Mat::row_major(weights, c_out, patch).t(),
        true,
        MatMut::row_major(out, rows, c_out),
    );
}

/// The gradients of [`conv_forward`] for the pre-activation gradient
/// `dpre` (`[B·H·W, C_out]`): dW += dpreᵀ·cols, db += column sums of
/// dpre, and (when `dcols` is given) dcols = dpre·W.
pub fn conv_backward<T: Real>(
    cols: &[T],
    weights: &[T],
    dpre: &[T],
    dweights: &mut [T],
    dbias: &mut [T],
    dcols: Option<&mut [T]>,
) {
    let c_out = dbias.len();
    let patch = weights.len() / c_out.max(1);
    let rows = dpre.len() / c_out.max(1);
    gemm(
        Mat::row_major(dpre, rows, c_out).t(),
        Mat::row_major(cols, rows, patch),
        true,
        MatMut::row_major(dweights, c_out, patch),
    );
    bias_grad(dpre, dbias);
    if let Some(dcols) = dcols {
        gemm(
            Mat::row_major(dpre, rows, c_out),
            Mat::row_major(weights, c_out, patch),
            false,
            MatMut::row_major(dcols, rows, patch),
        );
    }
}

/// db += the column sums of `dpre` (`[B·H·W, C_out]`), row by row.
pub fn bias_grad<T: Real>(dpre: &[T], dbias: &mut [T]) {
    for row in dpre.chunks_exact(dbias.len().max(1)) {
        for (d, &g) in dbias.iter_mut().zip(row) {
            *d += g;
        }
    }
}

/// The plain convolution: for every output pixel and channel, the bias
/// plus the sum over the k×k window and input channels, zero outside the
/// map. The reference the product form is tested against.
pub fn conv_direct<T: Real>(
    x: &[T],
    batch: usize,
    shape: Shape,
    k: usize,
    weights: &[T],
    bias: &[T],
) -> Vec<T> {
    let (c_in, h, w, c_out) = (shape.channels, shape.height, shape.width, bias.len());
    let pad = (k / 2) as isize;
    let mut out = vec![T::ZERO; batch * h * w * c_out];
    for b in 0..batch {
        for y in 0..h {
            for xx in 0..w {
                for o in 0..c_out {
                    let mut sum = bias[o];
                    for dy in 0..k {
                        for dx in 0..k {
                            let (sy, sx) = (
                                y as isize + dy as isize - pad,
                                xx as isize + dx as isize - pad,
                            );
                            if sy < 0 || sy >= h as isize || sx < 0 || sx >= w as isize {
                                continue;
                            }
                            for i in 0..c_in {
                                let v = x[((b * h + sy as usize) * w + sx as usize) * c_in + i];
                                sum += weights[((o * k + dy) * k + dx) * c_in + i] * v;
                            }
                        }
                    }
                    out[((b * h + y) * w + xx) * c_out + o] = sum;
                }
            }
        }
    }
    out
}

/// 2×2, stride-2 max-pool of `x` (`[B, H, W, C]`) into `out`
/// (`[B, H/2, W/2, C]`): each output is the largest of its window.
pub fn maxpool_forward<T: Real>(x: &[T], batch: usize, shape: Shape, out: &mut [T]) {
    let (c, h, w) = (shape.channels, shape.height, shape.width);
    let pooled = shape.pooled();
    assert_eq!(x.len(), batch * shape.len(), "maxpool input size");
    assert_eq!(out.len(), batch * pooled.len(), "maxpool output size");
    with_avx2(
        #[inline(always)]
        || {
            for (b, out_map) in out.chunks_exact_mut(pooled.len().max(1)).enumerate() {
                for (y, out_row) in out_map
                    .chunks_exact_mut((pooled.width * c).max(1))
                    .enumerate()
                {
                    let top = &x[((b * h + 2 * y) * w) * c..((b * h + 2 * y) * w + w) * c];
                    let bottom =
                        &x[((b * h + 2 * y + 1) * w) * c..((b * h + 2 * y + 1) * w + w) * c];
                    maxpool_row(top, bottom, c, out_row);
                }
            }
        },
    )
}

/// One output row of [`maxpool_forward`] from input rows `top` and
/// `bottom` (`[W, C]` each) of `c` channels; inlined into callers compiled
/// for AVX2 (see [`with_avx2`]). The common channel counts are constants,
/// so that each pooled pixel is a few whole vectors.
#[inline(always)]
pub fn maxpool_row<T: Real>(top: &[T], bottom: &[T], c: usize, out_row: &mut [T]) {
    match c {
        8 => pool_pixels::<T, 8>(top, bottom, out_row),
        16 => pool_pixels::<T, 16>(top, bottom, out_row),
        32 => pool_pixels::<T, 32>(top, bottom, out_row),
        _ => {
            for (xx, o) in out_row.chunks_exact_mut(c).enumerate() {
                let at = 2 * xx * c;
                let (a, bb) = (&top[at..at + c], &top[at + c..at + 2 * c]);
                let (cc, d) = (&bottom[at..at + c], &bottom[at + c..at + 2 * c]);
                for i in 0..c {
                    o[i] = larger(larger(a[i], bb[i]), larger(cc[i], d[i]));
                }
            }
        }
    }
}

/// [`maxpool_row`] for C channels.
#[inline(always)]
fn pool_pixels<T: Real, const C: usize>(top: &[T], bottom: &[T], out_row: &mut [T]) {
    let windows = (out_row.chunks_exact_mut(C))
        .zip(top.chunks_exact(2 * C))
        .zip(bottom.chunks_exact(2 * C));
    for ((o, t), b) in windows {
        for i in 0..C {
            o[i] = larger(larger(t[i], t[C + i]), larger(b[i], b[C + i]));
        }
    }
}

/// The larger of `a` and `b` (`a` on ties and NaN): one `maxps` when
/// vectorised.
#[inline(always)]
fn larger<T: Real>(a: T, b: T) -> T {
    if b > a { b } else { a }
}

/// The gradient of [`maxpool_forward`] (whose output was `out`): each
/// output's gradient goes to the first input of its window, in row-major
/// order, that equals the maximum (added to zero); `dx` is overwritten,
/// and inputs outside every window get zero. Row by row on slices, so
/// that no index is computed and checked per value.
pub fn maxpool_backward<T: Real>(
    x: &[T],
    out: &[T],
    dout: &[T],
    batch: usize,
    shape: Shape,
    dx: &mut [T],
) {
    let (c, w) = (shape.channels, shape.width);
    let pooled = shape.pooled();
    assert_eq!(x.len(), batch * shape.len(), "maxpool input size");
    assert_eq!(dx.len(), x.len(), "maxpool input gradient size");
    assert_eq!(out.len(), batch * pooled.len(), "maxpool output size");
    assert_eq!(dout.len(), out.len(), "maxpool output gradient size");
    dx.fill(T::ZERO);
    let out_row = pooled.width * c;
    if out_row == 0 {
        return;
    }
    let in_row = w * c;
    let rows = out.chunks_exact(out_row).zip(dout.chunks_exact(out_row));
    for (i, (out_row, dout_row)) in rows.enumerate() {
        // Output row i is row y of map b: its window rows start at 2y of b.
        let (b, y) = (i / pooled.height, i % pooled.height);
        let top = (b * shape.height + 2 * y) * in_row;
        let (x_top, x_bottom) = x[top..top + 2 * in_row].split_at(in_row);
        let (dx_top, dx_bottom) = dx[top..top + 2 * in_row].split_at_mut(in_row);
        let pixels = out_row.chunks_exact(c).zip(dout_row.chunks_exact(c));
        for (xx, (o, d)) in pixels.enumerate() {
            let at = 2 * xx * c;
            let window = [
                &x_top[at..at + c],
                &x_top[at + c..at + 2 * c],
                &x_bottom[at..at + c],
                &x_bottom[at + c..at + 2 * c],
            ];
            let (dx_tl, dx_tr) = dx_top[at..at + 2 * c].split_at_mut(c);
            let (dx_bl, dx_br) = dx_bottom[at..at + 2 * c].split_at_mut(c);
            let targets = [dx_tl, dx_tr, dx_bl, dx_br];
            for (ch, (&o, &d)) in o.iter().zip(d).enumerate() {
                let taken = (0..4).find(|&k| window[k][ch] == o).unwrap_or(0);
                targets[taken][ch] += d;
            }
        }
    }
}
