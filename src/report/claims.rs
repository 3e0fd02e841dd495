//! The claims of §5 as rows of the verdict table: each the paper's
//! statement, the per-unit sample it is judged on, the judgement, and the
//! family its p-value is corrected in.

use std::collections::BTreeMap;

use crate::analysis::metrics::{TaskMetrics, per_task, unit_of};
use crate::analysis::stats::{holm, median};
use crate::analysis::verdict::{
    ACCURACY_MARGIN, Direction, Judgement, Margin, RELATIVE_MARGIN, Sample, judge,
};
use crate::data::TaskId;
use crate::sweep::record::{Architecture, Record};
use crate::train::Method;

/// The Holm family of the primary cell's claims (§5: `spec`, `all`,
/// `online`, and the analyses run in it).
pub const PRIMARY: &str = "primary";

/// One row of the verdict table.
#[derive(Clone, Debug)]
pub struct ClaimRow {
    /// The claim's letter in §5 and the paper's figure, e.g. "(b) Fig. 2C".
    pub claim: String,
    /// What the paper states, as "X > Y".
    pub statement: String,
    /// Where it was measured (reading, readout, protocol, variant).
    pub setting: String,
    /// Repeats per task behind each value.
    pub repeats: usize,
    /// The starting accuracies of X and Y (median over units), beside a
    /// method claim: a lower start inflates a slope (§5).
    pub starts: Option<(f64, f64)>,
    /// The Holm family the row's p is corrected in (§5: the primary
    /// cell's claims); `None` for an exploratory row, its p uncorrected.
    pub family: Option<String>,
    /// The judgement.
    pub judgement: Judgement,
}

/// Corrects the p-values of every family in `rows` by Holm's method and
/// decides those rows' verdicts again (§5); rows without a p (a band
/// rule) and exploratory rows are left as they are.
pub fn correct_families(rows: &mut [ClaimRow]) {
    let families: std::collections::BTreeSet<String> =
        rows.iter().filter_map(|r| r.family.clone()).collect();
    for family in families {
        let members: Vec<usize> = (0..rows.len())
            .filter(|&i| {
                rows[i].family.as_ref() == Some(&family) && rows[i].judgement.p.is_finite()
            })
            .collect();
        let p: Vec<f64> = members.iter().map(|&i| rows[i].judgement.p).collect();
        for (&i, adjusted) in members.iter().zip(holm(&p)) {
            rows[i].judgement = rows[i].judgement.clone().with_holm(adjusted);
        }
    }
}

/// A metric of a method on a task.
#[derive(Clone, Copy, Debug)]
pub enum Metric {
    /// Initial slope (accuracy per example).
    Slope,
    /// Examples to criterion (a censored task at its restricted value).
    Criterion,
    /// Final accuracy.
    Final,
}

impl Metric {
    /// The metric's value in `m` as the verdicts use it.
    pub fn of(self, m: &TaskMetrics) -> f64 {
        match self {
            Metric::Slope => m.slope,
            Metric::Criterion => m.criterion.restricted(),
            Metric::Final => m.final_accuracy,
        }
    }

    /// Whether the value rests on a censored run.
    pub fn censored(self, m: &TaskMetrics) -> bool {
        matches!(self, Metric::Criterion) && m.criterion.censored()
    }

    /// The equivalence margin of §5.
    pub fn margin(self) -> Margin {
        match self {
            Metric::Final => ACCURACY_MARGIN,
            Metric::Slope | Metric::Criterion => RELATIVE_MARGIN,
        }
    }

    /// How the report names it.
    pub fn name(self) -> &'static str {
        match self {
            Metric::Slope => "initial slope",
            Metric::Criterion => "examples to criterion",
            Metric::Final => "final accuracy",
        }
    }

    /// Whether a task is left out of a claim on this metric (§5 (c),
    /// (e)): already at the criterion at measurement 0 on either side (0
    /// examples against 0 measures nothing), or censored on both sides
    /// (both at the restricted value: the difference is unknown, and a
    /// zero there would pull the interval towards `negligible`).
    pub fn leaves_out(self, x: &TaskMetrics, y: &TaskMetrics) -> bool {
        matches!(self, Metric::Criterion)
            && (x.criterion.examples() == Some(0.0)
                || y.criterion.examples() == Some(0.0)
                || (x.criterion.censored() && y.criterion.censored()))
    }
}

/// One side's value on one task: the value and whether it is censored.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Value {
    /// The value (restricted when censored).
    pub value: f64,
    /// Whether it rests on a censored run.
    pub censored: bool,
}

impl Value {
    /// A value that no censoring touches (an accuracy, a slope, an r).
    pub fn plain(value: f64) -> Value {
        Value {
            value,
            censored: false,
        }
    }

    /// `metric` of `m`.
    pub fn of(metric: Metric, m: &TaskMetrics) -> Value {
        Value {
            value: metric.of(m),
            censored: metric.censored(m),
        }
    }
}

/// The sample of a claim from per-task values keyed by unit (§5): per
/// unit the mean of its tasks' values, censored when any of them is;
/// `excluded` tasks were left out before.
pub fn unit_sample(
    rows: impl IntoIterator<Item = (String, Value, Value)>,
    excluded: usize,
) -> Sample {
    let mut units: BTreeMap<String, Vec<(Value, Value)>> = BTreeMap::new();
    for (unit, x, y) in rows {
        units.entry(unit).or_default().push((x, y));
    }
    let mut sample = Sample {
        excluded,
        ..Sample::default()
    };
    for values in units.values() {
        let mean = |side: fn(&(Value, Value)) -> Value| {
            values.iter().map(|v| side(v).value).sum::<f64>() / values.len() as f64
        };
        sample.pairs.push((mean(|v| v.0), mean(|v| v.1)));
        sample.censored.0 += values.iter().any(|v| v.0.censored) as usize;
        sample.censored.1 += values.iter().any(|v| v.1.censored) as usize;
    }
    sample
}

/// The fewest repeats any (task, method) of `records` has: what each
/// per-task value of a claim rests on at least.
pub fn repeats<A: Architecture>(records: &[Record<A>]) -> usize {
    per_task(records)
        .values()
        .flat_map(|m| m.values().map(|t| t.repeats))
        .min()
        .unwrap_or(0)
}

/// The sample of "`metric` of `x` vs `y`" over the units of `table`,
/// leaving out the tasks the metric cannot measure (§5 (c)).
pub fn method_sample(
    table: &BTreeMap<TaskId, BTreeMap<Method, TaskMetrics>>,
    metric: Metric,
    x: Method,
    y: Method,
) -> Sample {
    let pairs = table.iter().filter_map(|(task, by_method)| {
        Some((unit_of(task), by_method.get(&x)?, by_method.get(&y)?))
    });
    metric_sample(pairs, metric)
}

/// The sample of `metric` over per-task pairs `(unit, X's metrics, Y's
/// metrics)`: the tasks the metric cannot measure left out and counted
/// ([`Metric::leaves_out`]), the rest averaged per unit ([`unit_sample`]).
pub fn metric_sample<'a>(
    pairs: impl IntoIterator<Item = (String, &'a TaskMetrics, &'a TaskMetrics)>,
    metric: Metric,
) -> Sample {
    let mut excluded = 0;
    let mut rows = Vec::new();
    for (unit, a, b) in pairs {
        match metric.leaves_out(a, b) {
            true => excluded += 1,
            false => rows.push((unit, Value::of(metric, a), Value::of(metric, b))),
        }
    }
    unit_sample(rows, excluded)
}

/// The median over units of `method`'s starting accuracy in `table`.
fn median_start(table: &BTreeMap<TaskId, BTreeMap<Method, TaskMetrics>>, method: Method) -> f64 {
    let start = |m: &TaskMetrics| Value::plain(m.start);
    let rows = table
        .iter()
        .filter_map(|(task, by)| by.get(&method).map(|m| (unit_of(task), start(m), start(m))));
    median(
        &unit_sample(rows, 0)
            .pairs
            .iter()
            .map(|p| p.0)
            .collect::<Vec<_>>(),
    )
}

/// One method claim: its label, the metric, X, Y and the direction of
/// "X beats Y".
pub type MethodClaim = (&'static str, Metric, Method, Method, Direction);

/// The paper's method claims (§5 (b), (c), and the headline on final
/// accuracy).
pub const PAPER_CLAIMS: [MethodClaim; 5] = [
    (
        "(b) Fig. 2C",
        Metric::Slope,
        Method::Stochastic,
        Method::Deterministic,
        Direction::Greater,
    ),
    (
        "(b) Fig. 2C",
        Metric::Slope,
        Method::Deterministic,
        Method::Retrain,
        Direction::Greater,
    ),
    (
        "(c) Fig. 2D",
        Metric::Criterion,
        Method::Stochastic,
        Method::Deterministic,
        Direction::Less,
    ),
    (
        "(c) Fig. 2D",
        Metric::Criterion,
        Method::Deterministic,
        Method::Retrain,
        Direction::Less,
    ),
    (
        "headline",
        Metric::Final,
        Method::Stochastic,
        Method::Deterministic,
        Direction::Greater,
    ),
];

/// The head-only baseline of a held-out task (§8): does learning the
/// coupling add to learning the fresh head alone?
pub const HEAD_ONLY_CLAIMS: [MethodClaim; 2] = [
    (
        "head-only",
        Metric::Final,
        Method::Stochastic,
        Method::RetrainLast,
        Direction::Greater,
    ),
    (
        "head-only",
        Metric::Final,
        Method::Deterministic,
        Method::RetrainLast,
        Direction::Greater,
    ),
];

/// `claims` judged on one cell's `records`, in Holm family `family`
/// (`None`: exploratory).
pub fn method_claims<A: Architecture>(
    records: &[Record<A>],
    setting: &str,
    family: Option<&str>,
    claims: &[MethodClaim],
) -> Vec<ClaimRow> {
    let table = per_task(records);
    let repeats = repeats(records);
    claims
        .iter()
        .map(|&(claim, metric, x, y, direction)| {
            let sign = match direction {
                Direction::Greater => ">",
                Direction::Less => "<",
            };
            ClaimRow {
                starts: Some((median_start(&table, x), median_start(&table, y))),
                claim: claim.to_string(),
                statement: format!("{} of {} {sign} {}", metric.name(), x.name(), y.name()),
                setting: setting.to_string(),
                repeats,
                family: family.map(str::to_string),
                judgement: judge(
                    &method_sample(&table, metric, x, y),
                    direction,
                    metric.margin(),
                ),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::metrics::Criterion;
    use crate::analysis::verdict::Verdict;

    fn metrics(start: f64, criterion: Criterion) -> TaskMetrics {
        TaskMetrics {
            repeats: 1,
            start,
            slope: 0.0,
            criterion,
            final_accuracy: start,
        }
    }

    /// Edge case 3 as the report meets it (the `pair` cells): every task
    /// starts above the criterion, so examples to criterion is 0 against 0
    /// everywhere; the tasks are left out, counted, and the claim is `not
    /// applicable` (the earlier rule said "not reproduced").
    #[test]
    fn tasks_at_criterion_from_the_start_are_left_out() {
        let mut table = BTreeMap::new();
        for (i, (a, b)) in [
            (0, 1),
            (0, 2),
            (1, 3),
            (2, 5),
            (3, 4),
            (4, 9),
            (5, 8),
            (6, 7),
            (7, 9),
            (8, 9),
        ]
        .iter()
        .enumerate()
        {
            let task = TaskId::try_from(format!("{a}-{b}@{}", i % 4)).unwrap();
            let at_once = metrics(0.8, Criterion::Reached(0.0));
            table.insert(
                task,
                BTreeMap::from([
                    (Method::Stochastic, at_once),
                    (Method::Deterministic, at_once),
                ]),
            );
        }
        let sample = method_sample(
            &table,
            Metric::Criterion,
            Method::Stochastic,
            Method::Deterministic,
        );
        assert_eq!((sample.pairs.len(), sample.excluded), (0, 10));
        let j = judge(&sample, Direction::Less, RELATIVE_MARGIN);
        assert_eq!(j.verdict, Verdict::NotApplicable);
    }

    /// Censored on both sides: the difference is unknown, the task is
    /// left out (counted) rather than entered as a tie that makes any
    /// interval look `negligible`.
    #[test]
    fn tasks_censored_on_both_sides_are_left_out() {
        let censored = metrics(0.5, Criterion::Censored { restricted: 502.0 });
        let reached = metrics(0.5, Criterion::Reached(100.0));
        assert!(Metric::Criterion.leaves_out(&censored, &censored));
        assert!(!Metric::Criterion.leaves_out(&censored, &reached));
        assert!(!Metric::Slope.leaves_out(&censored, &censored));
    }

    /// A pair's quadrants are one unit: the mean of their values, censored
    /// when any is.
    #[test]
    fn units_average_their_tasks_and_count_censoring() {
        let v = |value, censored| Value { value, censored };
        let rows = vec![
            ("1-7".to_string(), v(100.0, false), v(502.0, true)),
            ("1-7".to_string(), v(200.0, false), v(300.0, false)),
            ("2-3".to_string(), v(50.0, false), v(60.0, false)),
        ];
        let sample = unit_sample(rows, 2);
        assert_eq!(sample.pairs, [(150.0, 401.0), (50.0, 60.0)]);
        assert_eq!((sample.censored, sample.excluded), ((0, 1), 2));
    }

    #[test]
    fn holm_runs_within_each_family_only() {
        let row = |p: f64, family: Option<&str>| {
            let sample = Sample::of((0..10).map(|i| (1.0 + i as f64 * 0.1, 0.0)).collect());
            let mut judgement = judge(&sample, Direction::Greater, ACCURACY_MARGIN);
            judgement.p = p;
            ClaimRow {
                claim: String::new(),
                statement: String::new(),
                setting: String::new(),
                repeats: 1,
                starts: None,
                family: family.map(str::to_string),
                judgement,
            }
        };
        let mut rows = vec![
            row(0.02, Some("a")),
            row(0.03, Some("a")),
            row(0.04, None),
            row(0.01, Some("b")),
        ];
        correct_families(&mut rows);
        let adjusted: Vec<Option<f64>> = rows.iter().map(|r| r.judgement.p_holm).collect();
        assert_eq!(adjusted, [Some(0.04), Some(0.04), None, Some(0.01)]);
        assert!(
            rows.iter()
                .all(|r| r.judgement.verdict == Verdict::Reproduced)
        );
        let mut weak = vec![row(0.03, Some("a")), row(0.04, Some("a"))];
        correct_families(&mut weak);
        assert_eq!(weak[0].judgement.verdict, Verdict::Inconclusive);
    }
}
