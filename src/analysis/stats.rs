//! The statistics of the verdicts (§5): the two-sided Wilcoxon signed-rank
//! test (exact, by counting sign assignments), the Hodges–Lehmann estimate
//! with its exact interval, the distribution-free interval of a median,
//! Holm's adjustment, medians and rank correlations. Plain f64 code: these
//! run on per-unit values, tens to hundreds of numbers.

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

/// The null distribution of the signed-rank statistic W+ of `n`
/// untied ranks 1..n: `counts[w]` sign assignments out of 2ⁿ give W+ = w.
fn signed_rank_counts(n: usize) -> Vec<f64> {
    let total = n * (n + 1) / 2;
    let mut counts = vec![0.0f64; total + 1];
    counts[0] = 1.0;
    for r in 1..=n {
        for w in (r..=total).rev() {
            counts[w] += counts[w - r];
        }
    }
    counts
}

/// The Hodges–Lehmann estimate of `differences` (the median of their
/// n(n+1)/2 Walsh averages (dᵢ + dⱼ)/2, i ≤ j) and its exact 95 %
/// interval: the Walsh averages of order k and M + 1 − k, where k − 1 is
/// the largest lower critical value of the signed-rank statistic at a
/// two-sided 5 % (the interval of the test `wilcoxon_signed_rank` inverts,
/// §5). With n ≤ 5 no interval reaches 95 %: (−∞, +∞). Empty: NaNs.
pub fn hodges_lehmann(differences: &[f64]) -> (f64, (f64, f64)) {
    let n = differences.len();
    if n == 0 {
        return (f64::NAN, (f64::NAN, f64::NAN));
    }
    let mut walsh = Vec::with_capacity(n * (n + 1) / 2);
    for i in 0..n {
        for j in i..n {
            walsh.push((differences[i] + differences[j]) / 2.0);
        }
    }
    walsh.sort_by(f64::total_cmp);
    let estimate = median(&walsh);
    let counts = signed_rank_counts(n);
    let all = 2f64.powi(n as i32);
    // k: the number of W+ values c with P(W+ < c) ≤ 2.5 %, i.e. the
    // largest k with P(W+ ≤ k − 1) ≤ 0.025.
    let (mut k, mut below) = (0usize, 0.0);
    while k < counts.len() && (below + counts[k]) / all <= ALPHA_TWO_SIDED / 2.0 {
        below += counts[k];
        k += 1;
    }
    let interval = if k == 0 {
        (f64::NEG_INFINITY, f64::INFINITY)
    } else {
        (walsh[k - 1], walsh[walsh.len() - k])
    };
    (estimate, interval)
}

/// The level of the intervals (two-sided 95 %).
const ALPHA_TWO_SIDED: f64 = 0.05;

/// The distribution-free 95 % interval of the median of `values`: the
/// order statistics of rank k and n + 1 − k, where k is the largest with
/// P(Binomial(n, ½) ≤ k − 1) ≤ 2.5 %. Infinities sort to the ends; with
/// n ≤ 5, (−∞, +∞); empty, NaNs.
pub fn median_interval(values: &[f64]) -> (f64, f64) {
    let n = values.len();
    if n == 0 {
        return (f64::NAN, f64::NAN);
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let all = 2f64.powi(n as i32);
    let (mut k, mut below, mut choose) = (0usize, 0.0, 1.0f64);
    while k < n && (below + choose) / all <= ALPHA_TWO_SIDED / 2.0 {
        below += choose;
        choose = choose * (n - k) as f64 / (k + 1) as f64;
        k += 1;
    }
    match k {
        0 => (f64::NEG_INFINITY, f64::INFINITY),
        _ => (sorted[k - 1], sorted[n - k]),
    }
}

/// Holm's step-down adjustment of the p-values `p` (same order out):
/// the i-th smallest multiplied by (m − i + 1), made monotone, capped at
/// 1. Controls the family-wise error over the family at its level (§5).
pub fn holm(p: &[f64]) -> Vec<f64> {
    let m = p.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
    let mut adjusted = vec![0.0; m];
    let mut running = 0.0f64;
    for (i, &at) in order.iter().enumerate() {
        running = running.max(((m - i) as f64 * p[at]).min(1.0));
        adjusted[at] = running;
    }
    adjusted
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

    /// The 95 % interval by brute force: the Walsh averages' order
    /// statistics at the critical value found by enumerating all 2ⁿ sign
    /// assignments of ranks 1..n.
    fn brute_force_hl(d: &[f64]) -> (f64, (f64, f64)) {
        let n = d.len();
        let mut walsh = Vec::new();
        for i in 0..n {
            for j in i..n {
                walsh.push((d[i] + d[j]) / 2.0);
            }
        }
        walsh.sort_by(f64::total_cmp);
        let m = walsh.len();
        let estimate = if m % 2 == 1 {
            walsh[m / 2]
        } else {
            (walsh[m / 2 - 1] + walsh[m / 2]) / 2.0
        };
        let stats: Vec<usize> = (0..1u32 << n)
            .map(|s| (0..n).filter(|&i| s >> i & 1 == 1).map(|i| i + 1).sum())
            .collect();
        let p_le = |c: usize| stats.iter().filter(|&&w| w <= c).count() as f64 / stats.len() as f64;
        let mut k = 0;
        while p_le(k) <= 0.025 {
            k += 1;
        }
        // Now P(W+ ≤ k) > 2.5 % ≥ P(W+ ≤ k − 1): k is the count of
        // critical values below, the interval's order statistic.
        if k == 0 {
            return (estimate, (f64::NEG_INFINITY, f64::INFINITY));
        }
        (estimate, (walsh[k - 1], walsh[m - k]))
    }

    #[test]
    fn hodges_lehmann_matches_brute_force_over_walsh_averages() {
        let mut state = 7u64;
        let mut next = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 11) as f64 / (1u64 << 53) as f64) - 0.3
        };
        for n in 1..=14 {
            let d: Vec<f64> = (0..n).map(|_| next()).collect();
            assert_eq!(hodges_lehmann(&d), brute_force_hl(&d), "n = {n}");
        }
        // n = 6: the smallest with a 95 % interval: its ends are the
        // extreme Walsh averages (k = 1, P(W+ = 0) = 1/64 ≤ 2.5 %).
        let d = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        assert_eq!(hodges_lehmann(&d), (3.5, (1.0, 6.0)));
        assert_eq!(
            hodges_lehmann(&d[..5]).1,
            (f64::NEG_INFINITY, f64::INFINITY)
        );
        // The interval excludes 0 exactly when the test rejects (no ties).
        for shift in [-0.4, -0.2, 0.0, 0.1, 0.3] {
            let d: Vec<f64> = (0..12)
                .map(|i| ((i * 7 % 12) as f64 - 5.5) * 0.1 + shift)
                .collect();
            let (_, (lo, hi)) = hodges_lehmann(&d);
            let (p, _) = wilcoxon_signed_rank(&d);
            assert_eq!(
                lo > 0.0 || hi < 0.0,
                p < 0.05,
                "shift {shift}: [{lo}, {hi}] p {p}"
            );
        }
    }

    #[test]
    fn median_interval_and_holm() {
        let v: Vec<f64> = (1..=10).map(f64::from).collect();
        // n = 10: P(B ≤ 1) = 11/1024 ≤ 2.5 % < P(B ≤ 2) = 56/1024: k = 2.
        assert_eq!(median_interval(&v), (2.0, 9.0));
        assert_eq!(median_interval(&v[..5]), (f64::NEG_INFINITY, f64::INFINITY));
        let censored = [
            1.0,
            2.0,
            3.0,
            f64::INFINITY,
            f64::INFINITY,
            f64::INFINITY,
            4.0,
            5.0,
        ];
        assert_eq!(median_interval(&censored), (1.0, f64::INFINITY));
        let adjusted = holm(&[0.01, 0.04, 0.03, 0.5]);
        assert_eq!(adjusted, [0.04, 0.09, 0.09, 0.5]);
        assert_eq!(holm(&[0.6, 0.6]), [1.0, 1.0]);
        assert_eq!(median(&[1.0, 5.0, 2.0, 4.0]), 3.0);
        assert_eq!(quantile(&[4.0, 1.0, 3.0, 2.0, 5.0], 0.25), 2.0);
        assert_eq!(quantile(&[1.0, 2.0], 0.5), 1.5);
    }
}
