//! Verdicts on the paper's claims (§5 "Verdicts"): per unit one value of
//! each side, the exact two-sided Wilcoxon signed-rank test of the per-unit
//! differences, the Hodges–Lehmann effect with its exact 95 % interval
//! (the interval the same test inverts, so effect, interval and test
//! agree), and one of `not applicable` | `inconclusive` | `negligible` |
//! `reproduced` | `contradicted` by the rule of §5, in that order.

use serde::Serialize;

use crate::analysis::stats::{hodges_lehmann, median, wilcoxon_signed_rank};

/// The level of every test (§5), before Holm's correction.
pub const ALPHA: f64 = 0.05;
/// Fewer units than this: no verdict on the data (§5).
pub const MIN_UNITS: usize = 8;

/// The outcome of a claim (§5), in the order the rule tries them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// The metric cannot measure the claim on these data: fewer than
    /// [`MIN_UNITS`] units left after the claim's exclusions, or a relative
    /// margin whose base (Y's value) is 0 or not finite.
    NotApplicable,
    /// Too few units, or neither a clear difference nor equivalence.
    Inconclusive,
    /// The interval lies inside the equivalence margin: too small to
    /// matter, if there is a difference at all (whatever p).
    Negligible,
    /// p < α in the claimed direction.
    Reproduced,
    /// p < α against it.
    Contradicted,
}

impl Verdict {
    /// The word the report prints.
    pub fn word(self) -> &'static str {
        match self {
            Verdict::NotApplicable => "not applicable",
            Verdict::Inconclusive => "inconclusive",
            Verdict::Negligible => "negligible",
            Verdict::Reproduced => "reproduced",
            Verdict::Contradicted => "contradicted",
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

impl Direction {
    /// The side of the signed-rank statistic the claim predicts.
    fn side(self) -> i8 {
        match self {
            Direction::Greater => 1,
            Direction::Less => -1,
        }
    }
}

/// The equivalence margin of a metric (§5).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Margin {
    /// ± this much (accuracy: 0.01).
    Absolute(f64),
    /// ± this fraction of Y's value, the median over units (slope,
    /// examples: 0.1).
    Relative(f64),
}

/// The margin of accuracies (§5).
pub const ACCURACY_MARGIN: Margin = Margin::Absolute(0.01);
/// The margin of slopes and examples (§5).
pub const RELATIVE_MARGIN: Margin = Margin::Relative(0.10);
/// The margin of a rank correlation against 0 (§5 (d)): |r| < 0.1 is a
/// negligible association (the spec fixes no margin for r; this is the
/// conventional bound of a "small" correlation, stated in docs/model.md).
pub const CORRELATION_MARGIN: Margin = Margin::Absolute(0.1);

/// What one claim is judged on: per unit the value of X and of Y (a
/// censored examples count enters as its restricted value, §5), how many
/// units on each side are censored, and how many the claim's exclusions
/// left out.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Sample {
    /// Per unit, (X, Y).
    pub pairs: Vec<(f64, f64)>,
    /// Units whose X, and whose Y, rests on a censored run.
    pub censored: (usize, usize),
    /// Units left out by the claim's exclusions.
    pub excluded: usize,
}

impl Sample {
    /// Uncensored pairs with nothing excluded.
    pub fn of(pairs: Vec<(f64, f64)>) -> Sample {
        Sample {
            pairs,
            ..Sample::default()
        }
    }
}

/// A tested claim "X vs Y" over units.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Judgement {
    /// Units with both values.
    pub units: usize,
    /// Units the claim's exclusions left out.
    pub excluded: usize,
    /// Censored units of X and of Y.
    pub censored: (usize, usize),
    /// Median over units of X.
    pub x_median: f64,
    /// Median over units of Y: the base of a relative margin.
    pub y_median: f64,
    /// The Hodges–Lehmann estimate of X − Y: the effect.
    pub effect: f64,
    /// Its exact 95 % interval.
    pub interval: (f64, f64),
    /// The two-sided exact Wilcoxon p-value, uncorrected.
    pub p: f64,
    /// The p-value after Holm's correction over the primary family, for a
    /// claim of that family (§5); `None` for an exploratory one.
    pub p_holm: Option<f64>,
    /// The sign of the signed-rank statistic: +1 X above Y, −1 below, 0.
    pub side: i8,
    /// The direction claimed.
    #[serde(skip)]
    pub direction: Option<Direction>,
    /// The half-width of the equivalence margin in the metric's units
    /// (NaN when its base is 0 or not finite).
    pub margin: f64,
    /// The verdict.
    pub verdict: Verdict,
}

impl Judgement {
    /// The p-value the verdict uses: Holm's where the claim has one.
    pub fn p_used(&self) -> f64 {
        self.p_holm.unwrap_or(self.p)
    }

    /// The rule of §5 on this judgement's numbers.
    fn decide(&self) -> Verdict {
        let applicable = self.margin.is_finite();
        if !applicable || (self.units < MIN_UNITS && self.excluded > 0) {
            return Verdict::NotApplicable;
        }
        if self.units < MIN_UNITS {
            return Verdict::Inconclusive;
        }
        let (lo, hi) = self.interval;
        if lo >= -self.margin && hi <= self.margin {
            return Verdict::Negligible;
        }
        let claimed = self.direction.map_or(0, Direction::side);
        match self.p_used() < ALPHA {
            true if self.side == claimed => Verdict::Reproduced,
            true if self.side == -claimed => Verdict::Contradicted,
            _ => Verdict::Inconclusive,
        }
    }

    /// The judgement of a claim whose protocol leaves no method room to
    /// gain (§8, `joint`): `not applicable`, whatever the numbers.
    pub fn without_headroom(mut self) -> Judgement {
        self.verdict = Verdict::NotApplicable;
        self
    }

    /// The judgement with Holm's adjusted p-value `p_holm` (§5), its
    /// verdict decided again on it.
    pub fn with_holm(mut self, p_holm: f64) -> Judgement {
        self.p_holm = Some(p_holm);
        self.verdict = self.decide();
        self
    }
}

/// Judges "X `direction` Y" on `sample` with `margin` (§5). Pairs with a
/// NaN side are dropped.
pub fn judge(sample: &Sample, direction: Direction, margin: Margin) -> Judgement {
    let pairs: Vec<(f64, f64)> = sample
        .pairs
        .iter()
        .copied()
        .filter(|(x, y)| !x.is_nan() && !y.is_nan())
        .collect();
    let differences: Vec<f64> = pairs.iter().map(|&(x, y)| x - y).collect();
    let xs: Vec<f64> = pairs.iter().map(|p| p.0).collect();
    let ys: Vec<f64> = pairs.iter().map(|p| p.1).collect();
    let y_median = median(&ys);
    let margin = match margin {
        Margin::Absolute(m) => m,
        Margin::Relative(fraction) if y_median.is_finite() && y_median != 0.0 => {
            fraction * y_median.abs()
        }
        Margin::Relative(_) => f64::NAN,
    };
    let (p, side) = wilcoxon_signed_rank(&differences);
    let (effect, interval) = hodges_lehmann(&differences);
    let mut judgement = Judgement {
        units: pairs.len(),
        excluded: sample.excluded,
        censored: sample.censored,
        x_median: median(&xs),
        y_median,
        effect,
        interval,
        p,
        p_holm: None,
        side,
        direction: Some(direction),
        margin,
        verdict: Verdict::Inconclusive,
    };
    judgement.verdict = judgement.decide();
    judgement
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(n: usize, difference: impl Fn(usize) -> f64) -> Sample {
        Sample::of(
            (0..n)
                .map(|i| {
                    let y = 0.6 + 0.01 * (i % 5) as f64;
                    (y + difference(i), y)
                })
                .collect(),
        )
    }

    fn verdict(sample: &Sample, direction: Direction, margin: Margin) -> Verdict {
        judge(sample, direction, margin).verdict
    }

    #[test]
    fn the_rule_of_section_5_on_synthetic_units() {
        use Direction::*;
        let better = pairs(12, |i| 0.05 + 0.001 * i as f64);
        assert_eq!(
            verdict(&better, Greater, ACCURACY_MARGIN),
            Verdict::Reproduced
        );
        assert_eq!(
            verdict(&better, Less, ACCURACY_MARGIN),
            Verdict::Contradicted
        );
        let equal = pairs(30, |i| if i % 2 == 0 { 0.002 } else { -0.002 });
        assert_eq!(
            verdict(&equal, Greater, ACCURACY_MARGIN),
            Verdict::Negligible
        );
        let few = pairs(7, |_| 0.2);
        assert_eq!(
            verdict(&few, Greater, ACCURACY_MARGIN),
            Verdict::Inconclusive
        );
        let noisy = pairs(10, |i| {
            [0.3, -0.2, 0.25, -0.3, 0.1, 0.2, -0.15, 0.05, -0.1, 0.3][i]
        });
        assert_eq!(
            verdict(&noisy, Greater, ACCURACY_MARGIN),
            Verdict::Inconclusive
        );
        // Too few left after exclusions: the metric cannot measure it.
        let excluded = Sample {
            excluded: 3,
            ..pairs(7, |_| 0.2)
        };
        assert_eq!(
            verdict(&excluded, Greater, ACCURACY_MARGIN),
            Verdict::NotApplicable
        );
    }

    /// Edge case 1: p < 0.05 and the interval inside the margin. The rule
    /// of the earlier report tested p first and said `reproduced`.
    #[test]
    fn a_significant_difference_inside_the_margin_is_negligible() {
        let small = pairs(30, |i| 0.003 + 0.0001 * i as f64);
        let j = judge(&small, Direction::Greater, ACCURACY_MARGIN);
        assert!(
            j.p < 1e-4 && j.interval.0 > 0.0 && j.interval.1 < 0.01,
            "{j:?}"
        );
        assert_eq!(j.verdict, Verdict::Negligible);
    }

    /// Edge case 2: Y censored on half the units. As +∞ its median was
    /// infinite, the margin infinite and the verdict "not reproduced"; as
    /// the restricted value (run length + one step, 502) the margin is
    /// finite and the data decide.
    #[test]
    fn a_half_censored_side_gives_a_finite_margin() {
        let restricted = 502.0;
        let mut sample = Sample::of(
            (0..10)
                .map(|i| match i < 5 {
                    true => (restricted, restricted),
                    false => (100.0, 200.0),
                })
                .collect(),
        );
        sample.censored = (5, 5);
        let j = judge(&sample, Direction::Less, RELATIVE_MARGIN);
        assert_eq!(j.y_median, 351.0);
        assert!((j.margin - 35.1).abs() < 1e-9);
        assert_eq!((j.effect, j.interval), (-50.0, (-100.0, 0.0)));
        assert_eq!(j.verdict, Verdict::Inconclusive, "{j:?}");
        assert_eq!(j.censored, (5, 5));
    }

    /// Edge case 3: every unit at 0 examples on both sides (a relative
    /// margin of 0): nothing to measure, not evidence either way.
    #[test]
    fn a_relative_margin_on_a_zero_base_is_not_applicable() {
        let zeros = Sample::of(vec![(0.0, 0.0); 12]);
        let j = judge(&zeros, Direction::Less, RELATIVE_MARGIN);
        assert_eq!(j.verdict, Verdict::NotApplicable, "{j:?}");
        let infinite = Sample::of(vec![(1.0, f64::INFINITY); 12]);
        assert_eq!(
            verdict(&infinite, Direction::Less, RELATIVE_MARGIN),
            Verdict::NotApplicable
        );
    }

    /// Edge case 4: 21 units a hair against the claim, 19 far for it. The
    /// median difference (−0.0015) contradicted the test's "reproduced";
    /// the Hodges–Lehmann effect and its interval agree with the test.
    #[test]
    fn effect_interval_and_test_agree() {
        let sample = pairs(40, |i| if i < 21 { -0.0015 } else { 0.05 });
        let j = judge(&sample, Direction::Greater, ACCURACY_MARGIN);
        assert!(j.p < ALPHA, "{j:?}");
        assert_eq!(j.verdict, Verdict::Reproduced);
        assert!(j.effect > 0.0 && j.interval.0 > 0.0, "{j:?}");
    }

    /// Edge case 5: a censored run of unknown size got the top rank as +∞;
    /// as the restricted value it differs from a near miss by one step.
    #[test]
    fn censored_units_enter_as_restricted_values() {
        let restricted = 502.0;
        let mut sample = Sample::of(
            (0..15)
                .map(|i| match i < 5 {
                    true => (restricted, 496.0),
                    false => (300.0 - i as f64, 400.0),
                })
                .collect(),
        );
        sample.censored = (5, 0);
        let j = judge(&sample, Direction::Less, RELATIVE_MARGIN);
        assert!(j.p < ALPHA, "{j:?}");
        assert_eq!(j.verdict, Verdict::Reproduced);
        // Had the censored units been +∞ (the top ranks), W+ = 65 of 120:
        // no evidence for the claim.
        let infinite: Vec<f64> = sample
            .pairs
            .iter()
            .map(|&(x, y)| {
                if x == restricted {
                    f64::INFINITY
                } else {
                    x - y
                }
            })
            .collect();
        assert!(wilcoxon_signed_rank(&infinite).0 > ALPHA);
    }

    #[test]
    fn holm_decides_again_and_relative_margins_scale_with_y() {
        let examples = Sample::of((0..10).map(|i| (100.0 + i as f64, 1000.0)).collect());
        let j = judge(&examples, Direction::Less, RELATIVE_MARGIN);
        assert_eq!(j.verdict, Verdict::Reproduced);
        assert!((j.margin - 100.0).abs() < 1e-12);
        assert_eq!(j.clone().with_holm(0.06).verdict, Verdict::Inconclusive);
        assert_eq!(j.with_holm(0.01).verdict, Verdict::Reproduced);
    }
}
