//! The claims of §5 as rows of the verdict table: each the paper's
//! statement, the per-task pairs it is judged on, and the judgement.

use std::collections::BTreeMap;

use crate::analysis::metrics::{TaskMetrics, per_task};
use crate::analysis::stats::median;
use crate::analysis::verdict::{
    ACCURACY_MARGIN, Direction, Judgement, Margin, RELATIVE_MARGIN, judge,
};
use crate::data::TaskId;
use crate::sweep::record::{Architecture, Record};
use crate::train::Method;

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
    /// The starting accuracies of X and Y (median over tasks), beside a
    /// method claim: a lower start inflates a slope (§5).
    pub starts: Option<(f64, f64)>,
    /// The judgement.
    pub judgement: Judgement,
}

/// A metric of a method on a task.
#[derive(Clone, Copy, Debug)]
pub enum Metric {
    /// Initial slope (accuracy per example).
    Slope,
    /// Examples to criterion (+∞ when censored).
    Criterion,
    /// Final accuracy.
    Final,
}

impl Metric {
    /// The metric's value in `m`.
    pub fn of(self, m: &TaskMetrics) -> f64 {
        match self {
            Metric::Slope => m.slope,
            Metric::Criterion => m.criterion.examples().unwrap_or(f64::INFINITY),
            Metric::Final => m.final_accuracy,
        }
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

/// Per task, `metric` of `x` and of `y` where both ran.
pub fn method_pairs(
    table: &BTreeMap<TaskId, BTreeMap<Method, TaskMetrics>>,
    metric: Metric,
    x: Method,
    y: Method,
) -> Vec<(f64, f64)> {
    table
        .values()
        .filter_map(|m| Some((metric.of(m.get(&x)?), metric.of(m.get(&y)?))))
        .collect()
}

/// The method claims (§5 (b), (c), and the headline on final accuracy)
/// judged on one cell's `records`.
pub fn method_claims<A: Architecture>(
    records: &[Record<A>],
    setting: &str,
    seed: u64,
) -> Vec<ClaimRow> {
    use Method::*;
    let table = per_task(records);
    let repeats = repeats(records);
    let claims = [
        (
            "(b) Fig. 2C",
            Metric::Slope,
            Stochastic,
            Deterministic,
            Direction::Greater,
        ),
        (
            "(b) Fig. 2C",
            Metric::Slope,
            Deterministic,
            Retrain,
            Direction::Greater,
        ),
        (
            "(c) Fig. 2D",
            Metric::Criterion,
            Stochastic,
            Deterministic,
            Direction::Less,
        ),
        (
            "(c) Fig. 2D",
            Metric::Criterion,
            Deterministic,
            Retrain,
            Direction::Less,
        ),
        (
            "headline",
            Metric::Final,
            Stochastic,
            Deterministic,
            Direction::Greater,
        ),
    ];
    claims
        .into_iter()
        .map(|(claim, metric, x, y, direction)| {
            let sign = match direction {
                Direction::Greater => ">",
                Direction::Less => "<",
            };
            let pairs = method_pairs(&table, metric, x, y);
            let start = |m: Method| -> Vec<f64> {
                table
                    .values()
                    .filter_map(|t| t.get(&m))
                    .map(|t| t.start)
                    .collect()
            };
            ClaimRow {
                starts: Some((median(&start(x)), median(&start(y)))),
                claim: claim.to_string(),
                statement: format!("{} of {} {sign} {}", metric.name(), x.name(), y.name()),
                setting: setting.to_string(),
                repeats,
                judgement: judge(&pairs, direction, metric.margin(), seed),
            }
        })
        .collect()
}
