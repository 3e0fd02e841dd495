//! Verdicts on the paper's claims (§5 "Verdicts"): per task one value of
//! each side, a two-sided Wilcoxon signed-rank test of the per-task
//! differences, the median difference with its 95 % bootstrap interval
//! (resampling tasks), and `reproduced` | `not reproduced` |
//! `inconclusive` by the rule of §5.

use serde::Serialize;

use crate::analysis::stats::{bootstrap_median_interval, median, wilcoxon_signed_rank};

/// The level of every test (§5).
pub const ALPHA: f64 = 0.05;
/// Fewer tasks than this: `inconclusive` whatever the data (§5).
pub const MIN_TASKS: usize = 8;

/// The outcome of a claim.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// p < 0.05 in the claimed direction.
    Reproduced,
    /// p < 0.05 against it, or the interval inside the equivalence margin.
    NotReproduced,
    /// Neither, or too few tasks.
    Inconclusive,
}

impl Verdict {
    /// The word the report prints.
    pub fn word(self) -> &'static str {
        match self {
            Verdict::Reproduced => "reproduced",
            Verdict::NotReproduced => "not reproduced",
            Verdict::Inconclusive => "inconclusive",
        }
    }
}

/// The direction a claim "X vs Y" asserts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// X > Y.
    Greater,
    /// X < Y.
    Less,
}

/// The equivalence margin of a metric (§5).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Margin {
    /// ± this much (accuracy: 0.01).
    Absolute(f64),
    /// ± this fraction of Y's median over tasks (slope, examples: 0.1).
    Relative(f64),
}

/// The margin of accuracies (§5).
pub const ACCURACY_MARGIN: Margin = Margin::Absolute(0.01);
/// The margin of slopes and examples (§5).
pub const RELATIVE_MARGIN: Margin = Margin::Relative(0.10);

/// A tested claim "X vs Y" over tasks.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Judgement {
    /// Tasks with both values.
    pub tasks: usize,
    /// Median over tasks of X.
    pub x_median: f64,
    /// Median over tasks of Y.
    pub y_median: f64,
    /// Median of the per-task differences X − Y: the effect.
    pub effect: f64,
    /// Its 95 % bootstrap interval.
    pub interval: (f64, f64),
    /// The two-sided Wilcoxon p-value.
    pub p: f64,
    /// The half-width of the equivalence margin, in the metric's units.
    pub margin: f64,
    /// The verdict.
    pub verdict: Verdict,
}

/// Judges "X `direction` Y" from per-task pairs `(x, y)` (one pair per
/// task; a censored examples-to-criterion is +∞) with `margin` (§5).
/// `seed` seeds the bootstrap.
pub fn judge(pairs: &[(f64, f64)], direction: Direction, margin: Margin, seed: u64) -> Judgement {
    let pairs: Vec<(f64, f64)> = pairs
        .iter()
        .copied()
        .filter(|(x, y)| !x.is_nan() && !y.is_nan())
        .collect();
    let differences: Vec<f64> = pairs
        .iter()
        .map(|&(x, y)| if x == y { 0.0 } else { x - y })
        .collect();
    let ys: Vec<f64> = pairs.iter().map(|p| p.1).collect();
    let xs: Vec<f64> = pairs.iter().map(|p| p.0).collect();
    let y_median = median(&ys);
    let margin = match margin {
        Margin::Absolute(m) => m,
        Margin::Relative(fraction) => fraction * y_median.abs(),
    };
    let (p, side) = wilcoxon_signed_rank(&differences);
    let interval = bootstrap_median_interval(&differences, seed);
    let claimed: i8 = match direction {
        Direction::Greater => 1,
        Direction::Less => -1,
    };
    let verdict = if pairs.len() < MIN_TASKS {
        Verdict::Inconclusive
    } else if p < ALPHA && side == claimed {
        Verdict::Reproduced
    } else if (p < ALPHA && side == -claimed) || (interval.0 >= -margin && interval.1 <= margin) {
        Verdict::NotReproduced
    } else {
        Verdict::Inconclusive
    };
    Judgement {
        tasks: pairs.len(),
        x_median: median(&xs),
        y_median,
        effect: median(&differences),
        interval,
        p,
        margin,
        verdict,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(n: usize, difference: impl Fn(usize) -> f64) -> Vec<(f64, f64)> {
        (0..n)
            .map(|i| {
                let y = 0.6 + 0.01 * (i % 5) as f64;
                (y + difference(i), y)
            })
            .collect()
    }

    #[test]
    fn the_rule_of_section_5_on_synthetic_tasks() {
        // Clearly better, in the claimed direction.
        let better = pairs(12, |i| 0.05 + 0.001 * i as f64);
        assert_eq!(
            judge(&better, Direction::Greater, ACCURACY_MARGIN, 1).verdict,
            Verdict::Reproduced
        );
        // Clearly contradicted.
        assert_eq!(
            judge(&better, Direction::Less, ACCURACY_MARGIN, 1).verdict,
            Verdict::NotReproduced
        );
        // Equal within the margin: tiny differences of both signs.
        let equal = pairs(30, |i| if i % 2 == 0 { 0.002 } else { -0.002 });
        let j = judge(&equal, Direction::Greater, ACCURACY_MARGIN, 1);
        assert!(j.p > ALPHA, "{j:?}");
        assert_eq!(j.verdict, Verdict::NotReproduced, "{j:?}");
        // Too few tasks, however clear.
        let few = pairs(7, |_| 0.2);
        assert_eq!(
            judge(&few, Direction::Greater, ACCURACY_MARGIN, 1).verdict,
            Verdict::Inconclusive
        );
        // Noisy and wide: neither.
        let noisy = pairs(10, |i| {
            [0.3, -0.2, 0.25, -0.3, 0.1, 0.2, -0.15, 0.05, -0.1, 0.3][i]
        });
        assert_eq!(
            judge(&noisy, Direction::Greater, ACCURACY_MARGIN, 1).verdict,
            Verdict::Inconclusive
        );
    }

    #[test]
    fn relative_margins_scale_with_y_and_censored_tasks_count_as_largest() {
        let examples: Vec<(f64, f64)> = (0..10).map(|i| (100.0 + i as f64, 1000.0)).collect();
        let j = judge(&examples, Direction::Less, RELATIVE_MARGIN, 2);
        assert_eq!(j.verdict, Verdict::Reproduced);
        assert!((j.margin - 100.0).abs() < 1e-12);
        // X censored on every task: X > Y everywhere, against the claim X < Y.
        let censored: Vec<(f64, f64)> = (0..10).map(|i| (f64::INFINITY, 10.0 + i as f64)).collect();
        let j = judge(&censored, Direction::Less, RELATIVE_MARGIN, 2);
        assert_eq!(j.verdict, Verdict::NotReproduced);
        assert_eq!(j.effect, f64::INFINITY);
    }
}
