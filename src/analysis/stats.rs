//! The statistics of the verdicts (§5): the two-sided Wilcoxon signed-rank
//! test (exact, by counting sign assignments), the percentile bootstrap
//! interval of a median, medians and rank correlations. Plain f64 code:
//! these run on per-task values, tens to hundreds of numbers.

use rand::RngExt;

use crate::rng::rng_for;

/// Bootstrap resamples of an interval.
pub const BOOTSTRAP_RESAMPLES: usize = 4000;

/// The median of `values` (NaN when empty); infinities sort to the ends.
pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => sorted[n / 2],
        _ => {
            let (a, b) = (sorted[n / 2 - 1], sorted[n / 2]);
            if a == b { a } else { (a + b) / 2.0 }
        }
    }
}

/// The `q`-quantile of `values` (0 ≤ q ≤ 1), linear between order
/// statistics; NaN when empty.
pub fn quantile(values: &[f64], q: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    if sorted.is_empty() {
        return f64::NAN;
    }
    let at = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let (lo, hi) = (at.floor() as usize, at.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (at - lo as f64)
}

/// Ranks 1..n of `values`, ties sharing their average rank.
pub fn ranks(values: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&i, &j| values[i].total_cmp(&values[j]));
    let mut ranks = vec![0.0; values.len()];
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && values[order[end]] == values[order[start]] {
            end += 1;
        }
        let average = (start + 1 + end) as f64 / 2.0;
        for &i in &order[start..end] {
            ranks[i] = average;
        }
        start = end;
    }
    ranks
}

/// The two-sided p-value of the Wilcoxon signed-rank test of `differences`
/// (zeros dropped, tied magnitudes sharing their average rank), and the
/// statistic's side: +1 when the positive ranks outweigh the negative,
/// −1 when the reverse, 0 when balanced. Exact: the null distribution of
/// W+ is counted over all 2ⁿ sign assignments of the observed ranks.
/// With no non-zero difference, p = 1.
pub fn wilcoxon_signed_rank(differences: &[f64]) -> (f64, i8) {
    let nonzero: Vec<f64> = differences.iter().copied().filter(|&d| d != 0.0).collect();
    if nonzero.is_empty() {
        return (1.0, 0);
    }
    let magnitudes: Vec<f64> = nonzero.iter().map(|d| d.abs()).collect();
    // Doubled ranks are integers even with ties.
    let doubled: Vec<usize> = ranks(&magnitudes)
        .iter()
        .map(|r| (2.0 * r).round() as usize)
        .collect();
    let total: usize = doubled.iter().sum();
    let observed: usize = doubled
        .iter()
        .zip(&nonzero)
        .filter(|(_, d)| **d > 0.0)
        .map(|(r, _)| r)
        .sum();
    // probability[s]: P(W+ doubled = s) under the null.
    let mut probability = vec![0.0f64; total + 1];
    probability[0] = 1.0;
    let mut reach = 0;
    for &r in &doubled {
        reach += r;
        for s in (0..=reach).rev() {
            let without = probability[s];
            let with = if s >= r { probability[s - r] } else { 0.0 };
            probability[s] = 0.5 * (without + with);
        }
    }
    let lower: f64 = probability[..=observed].iter().sum();
    let upper: f64 = probability[observed..].iter().sum();
    let p = (2.0 * lower.min(upper)).min(1.0);
    let side = (2 * observed).cmp(&total) as i8;
    (p, side)
}

/// The 95 % percentile bootstrap interval of the median of `values`,
/// resampling them with replacement [`BOOTSTRAP_RESAMPLES`] times from a
/// generator seeded by `seed` (so the same values give the same interval).
pub fn bootstrap_median_interval(values: &[f64], seed: u64) -> (f64, f64) {
    if values.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let mut rng = rng_for(seed, &["bootstrap".into()]);
    let mut sample = vec![0.0; values.len()];
    let mut medians: Vec<f64> = (0..BOOTSTRAP_RESAMPLES)
        .map(|_| {
            for v in sample.iter_mut() {
                *v = values[rng.random_range(0..values.len())];
            }
            median(&sample)
        })
        .collect();
    medians.sort_by(f64::total_cmp);
    let at = |q: f64| medians[((q * (BOOTSTRAP_RESAMPLES - 1) as f64).round()) as usize];
    (at(0.025), at(0.975))
}

/// Pearson's correlation of `x` and `y` (NaN when either is constant).
pub fn pearson(x: &[f64], y: &[f64]) -> f64 {
    let n = x.len().min(y.len()) as f64;
    let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (&a, &b) in x.iter().zip(y) {
        sxy += (a - mx) * (b - my);
        sxx += (a - mx).powi(2);
        syy += (b - my).powi(2);
    }
    sxy / (sxx * syy).sqrt()
}

/// Spearman's rank correlation: Pearson's of the ranks.
pub fn spearman(x: &[f64], y: &[f64]) -> f64 {
    pearson(&ranks(x), &ranks(y))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The null distribution by brute force over all 2ⁿ sign flips.
    fn brute_force_p(d: &[f64]) -> f64 {
        let nonzero: Vec<f64> = d.iter().copied().filter(|&v| v != 0.0).collect();
        let r = ranks(&nonzero.iter().map(|v| v.abs()).collect::<Vec<_>>());
        let w = |signs: u32| -> f64 {
            (0..r.len())
                .filter(|&i| signs >> i & 1 == 1)
                .map(|i| r[i])
                .sum()
        };
        let observed: f64 = (0..r.len())
            .filter(|&i| nonzero[i] > 0.0)
            .map(|i| r[i])
            .sum();
        let all = 1u32 << r.len();
        let le = (0..all).filter(|&s| w(s) <= observed + 1e-9).count() as f64 / all as f64;
        let ge = (0..all).filter(|&s| w(s) >= observed - 1e-9).count() as f64 / all as f64;
        (2.0 * le.min(ge)).min(1.0)
    }

    #[test]
    fn wilcoxon_matches_brute_force_and_known_values() {
        let cases: [&[f64]; 4] = [
            &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0],
            &[0.5, -0.2, 0.9, 0.9, -0.1, 0.3, 0.0, 1.2, 0.4],
            &[-3.0, -1.0, 2.0, 2.0, -2.0, 5.0],
            &[f64::INFINITY, 1.0, -0.5, f64::INFINITY, 2.0],
        ];
        for d in cases {
            let (p, _) = wilcoxon_signed_rank(d);
            assert!((p - brute_force_p(d)).abs() < 1e-12, "{d:?}: {p}");
        }
        // All 8 positive: p = 2/2⁸.
        let (p, side) = wilcoxon_signed_rank(cases[0]);
        assert!((p - 2.0 / 256.0).abs() < 1e-15 && side == 1);
        let negated: Vec<f64> = cases[0].iter().map(|v| -v).collect();
        assert_eq!(wilcoxon_signed_rank(&negated).1, -1);
        assert_eq!(wilcoxon_signed_rank(&[0.0, 0.0]), (1.0, 0));
    }

    #[test]
    fn ranks_share_ties_and_correlations_are_exact_on_lines() {
        assert_eq!(ranks(&[3.0, 1.0, 3.0, 2.0]), [3.5, 1.0, 3.5, 2.0]);
        let x = [1.0, 2.0, 3.0, 4.0];
        assert!((pearson(&x, &[2.0, 4.0, 6.0, 8.0]) - 1.0).abs() < 1e-12);
        assert!((spearman(&x, &[1.0, 10.0, 100.0, 1000.0]) - 1.0).abs() < 1e-12);
        assert!((spearman(&x, &[4.0, 3.0, 2.0, 1.0]) + 1.0).abs() < 1e-12);
    }

    #[test]
    fn the_bootstrap_interval_holds_the_median_and_is_reproducible() {
        let values: Vec<f64> = (0..40).map(|i| (i as f64 * 0.37).sin()).collect();
        let (lo, hi) = bootstrap_median_interval(&values, 3);
        let m = median(&values);
        assert!(lo <= m && m <= hi && lo < hi, "{lo} {m} {hi}");
        assert_eq!(bootstrap_median_interval(&values, 3), (lo, hi));
        assert_eq!(bootstrap_median_interval(&[2.0; 9], 1), (2.0, 2.0));
        assert_eq!(median(&[1.0, 5.0, 2.0, 4.0]), 3.0);
        assert_eq!(quantile(&[4.0, 1.0, 3.0, 2.0, 5.0], 0.25), 2.0);
        assert_eq!(quantile(&[1.0, 2.0], 0.5), 1.5);
    }
}
