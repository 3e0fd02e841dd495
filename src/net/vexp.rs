//! Vectorised e^x over f32 slices, eight lanes at a time (`wide::f32x8`).
//!
//! Accuracy (measured by the test below against f64 `exp`, over
//! x ∈ [−87, 88] where e^x is a normal f32): max relative error
//! [`MAX_RELATIVE_ERROR`]. Outside: e^x overflows to +∞ above ≈ 88.72 and
//! goes through subnormals to 0 below ≈ −87.3, as f32 `exp` does.

use wide::f32x8;

/// Bound on the relative error of [`exp_in_place`] where e^x is a normal f32.
pub const MAX_RELATIVE_ERROR: f64 = 4e-7;

/// xs ← e^xs.
pub fn exp_in_place(xs: &mut [f32]) {
    let mut chunks = xs.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let v = f32x8::from(<[f32; 8]>::try_from(&*chunk).expect("8 lanes")).exp();
        chunk.copy_from_slice(&v.to_array());
    }
    let rest = chunks.into_remainder();
    if !rest.is_empty() {
        let mut lanes = [0.0f32; 8];
        lanes[..rest.len()].copy_from_slice(rest);
        let v = f32x8::from(lanes).exp().to_array();
        rest.copy_from_slice(&v[..rest.len()]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_error_is_within_the_stated_bound() {
        let n = 2_000_003;
        let mut xs: Vec<f32> = (0..n)
            .map(|i| -87.0 + 175.0 * i as f32 / n as f32)
            .collect();
        xs.extend([0.0, -0.0, 1e-30, -1e-30, 1.0, -1.0, 0.5, 88.0, -87.0]);
        let mut ys = xs.clone();
        exp_in_place(&mut ys);
        let worst = xs
            .iter()
            .zip(&ys)
            .map(|(&x, &y)| {
                let want = (x as f64).exp();
                (y as f64 - want).abs() / want
            })
            .fold(0.0, f64::max);
        assert!(worst <= MAX_RELATIVE_ERROR, "max relative error {worst:e}");
    }

    #[test]
    fn edges_follow_f32_exp() {
        let mut xs = [
            f32::NEG_INFINITY,
            -200.0,
            100.0,
            f32::INFINITY,
            f32::NAN,
            0.0,
            -0.0,
            1.0,
            2.0,
        ];
        exp_in_place(&mut xs);
        assert_eq!(&xs[..4], &[0.0, 0.0, f32::INFINITY, f32::INFINITY]);
        assert!(xs[4].is_nan());
        assert_eq!((xs[5], xs[6]), (1.0, 1.0));
    }
}
