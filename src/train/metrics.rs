//! Learning-curve metrics (SPEC §5), computed per run.

/// Measurements in the initial slope (SPEC §5).
pub const SLOPE_MEASUREMENTS: usize = 50;
/// Accuracy that defines "examples to criterion" (SPEC §5).
pub const CRITERION: f32 = 0.70;

/// Least-squares slope of accuracy against examples seen over the first
/// [`SLOPE_MEASUREMENTS`] measurements; measurement n has seen
/// n·`examples_per_batch` examples. Accuracy per example.
pub fn initial_slope(curve: &[f32], examples_per_batch: usize) -> f64 {
    let n = curve.len().min(SLOPE_MEASUREMENTS);
    if n < 2 {
        return 0.0;
    }
    let x = |i: usize| (i * examples_per_batch) as f64;
    let x_mean = (0..n).map(x).sum::<f64>() / n as f64;
    let y_mean = curve[..n].iter().map(|&y| y as f64).sum::<f64>() / n as f64;
    let (mut sxy, mut sxx) = (0.0, 0.0);
    for (i, &y) in curve[..n].iter().enumerate() {
        sxy += (x(i) - x_mean) * (y as f64 - y_mean);
        sxx += (x(i) - x_mean).powi(2);
    }
    sxy / sxx
}

/// The first examples count whose accuracy reaches [`CRITERION`]; `None`
/// (censored) if it never does.
pub fn examples_to_criterion(curve: &[f32], examples_per_batch: usize) -> Option<usize> {
    curve
        .iter()
        .position(|&a| a >= CRITERION)
        .map(|n| n * examples_per_batch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slope_of_a_line_is_exact() {
        let curve: Vec<f32> = (0..251).map(|n| 0.5 + 0.001 * (2 * n) as f32).collect();
        let slope = initial_slope(&curve, 2);
        assert!((slope - 0.001).abs() < 1e-7, "{slope}");
    }

    #[test]
    fn criterion_is_first_crossing_or_censored() {
        assert_eq!(
            examples_to_criterion(&[0.5, 0.69, 0.7, 0.6, 0.9], 2),
            Some(4)
        );
        assert_eq!(examples_to_criterion(&[0.75], 2), Some(0));
        assert_eq!(examples_to_criterion(&[0.5, 0.6], 2), None);
    }
}
