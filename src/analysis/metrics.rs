//! Learning-curve metrics (§5), one function each, computed from a
//! record's curve and its x axis; their per-task aggregation (the mean
//! over repeats; examples to criterion the median, a censored run counting
//! as its restricted value, the run's length plus one measurement step);
//! ratios to `retrain` taken between these per-task values; and the unit
//! every verdict and band rests on (§5): the digit pair of a digit task,
//! whose quadrants are not independent, the task itself otherwise.

use std::collections::BTreeMap;

use crate::data::TaskId;
use crate::sweep::record::{Architecture, Record};
use crate::train::Method;

/// Measurements in the initial slope (§5).
pub const SLOPE_MEASUREMENTS: usize = 50;
/// Accuracy that defines "examples to criterion" (§5).
pub const CRITERION: f32 = 0.70;

/// Least-squares slope of accuracy against examples seen over the first
/// [`SLOPE_MEASUREMENTS`] measurements, in accuracy per example; 0 with
/// fewer than two measurements.
pub fn initial_slope(examples: &[usize], curve: &[f32]) -> f64 {
    let n = curve.len().min(examples.len()).min(SLOPE_MEASUREMENTS);
    if n < 2 {
        return 0.0;
    }
    let x = |i: usize| examples[i] as f64;
    let x_mean = (0..n).map(x).sum::<f64>() / n as f64;
    let y_mean = curve[..n].iter().map(|&y| y as f64).sum::<f64>() / n as f64;
    let (mut sxy, mut sxx) = (0.0, 0.0);
    for (i, &y) in curve[..n].iter().enumerate() {
        sxy += (x(i) - x_mean) * (y as f64 - y_mean);
        sxx += (x(i) - x_mean).powi(2);
    }
    if sxx == 0.0 { 0.0 } else { sxy / sxx }
}

/// The examples seen at the first measurement whose accuracy reaches
/// [`CRITERION`]; `None` (censored) if none does.
pub fn examples_to_criterion(examples: &[usize], curve: &[f32]) -> Option<usize> {
    curve
        .iter()
        .position(|&a| a >= CRITERION)
        .map(|i| examples[i])
}

/// Accuracy at measurement 0, before any update.
pub fn starting_accuracy(curve: &[f32]) -> f64 {
    curve.first().map_or(f64::NAN, |&a| a as f64)
}

/// Accuracy at the last measurement.
pub fn final_accuracy(curve: &[f32]) -> f64 {
    curve.last().map_or(f64::NAN, |&a| a as f64)
}

/// The restricted value of a censored run (§5): the examples of its last
/// measurement plus one measurement step (the last spacing of its x axis;
/// 1 with a single measurement). Larger than every observed value.
pub fn restricted_examples(examples: &[usize]) -> f64 {
    match examples {
        [] => 1.0,
        [only] => *only as f64 + 1.0,
        [.., before, last] => (2 * last - before) as f64,
    }
}

/// Examples to criterion of a task: the median over its repeats.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Criterion {
    /// The median is an observed number of examples.
    Reached(f64),
    /// The median falls on a censored run; the verdicts use the median of
    /// the runs' restricted values.
    Censored {
        /// The median with censored runs at their restricted value.
        restricted: f64,
    },
}

impl Criterion {
    /// The number of examples, `None` when censored (tables say so).
    pub fn examples(self) -> Option<f64> {
        match self {
            Criterion::Reached(e) => Some(e),
            Criterion::Censored { .. } => None,
        }
    }

    /// The value the verdicts use (§5): observed, or restricted.
    pub fn restricted(self) -> f64 {
        match self {
            Criterion::Reached(e) => e,
            Criterion::Censored { restricted } => restricted,
        }
    }

    /// Whether the median rests on a censored run.
    pub fn censored(self) -> bool {
        matches!(self, Criterion::Censored { .. })
    }
}

/// The median of runs' examples to criterion, a censored run (`None`)
/// counting as `restricted` (larger than every observed value): with an
/// even count the mean of the two middle values, censored if either is.
/// No runs: censored at `restricted`.
pub fn median_criterion(runs: &[Option<usize>], restricted: f64) -> Criterion {
    let mut sorted: Vec<Option<usize>> = runs.to_vec();
    sorted.sort_by_key(|e| e.map_or((1, 0), |v| (0, v)));
    let n = sorted.len();
    if n == 0 {
        return Criterion::Censored { restricted };
    }
    let middle = if n % 2 == 1 {
        [sorted[n / 2], sorted[n / 2]]
    } else {
        [sorted[n / 2 - 1], sorted[n / 2]]
    };
    let value = |e: Option<usize>| e.map_or(restricted, |v| v as f64);
    match middle {
        [Some(a), Some(b)] => Criterion::Reached((a + b) as f64 / 2.0),
        [a, b] => Criterion::Censored {
            restricted: (value(a) + value(b)) / 2.0,
        },
    }
}

/// One method's metrics on one task, over its repeats.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TaskMetrics {
    /// Runs (repeats).
    pub repeats: usize,
    /// Mean starting accuracy.
    pub start: f64,
    /// Mean initial slope.
    pub slope: f64,
    /// Median examples to criterion.
    pub criterion: Criterion,
    /// Mean final accuracy.
    pub final_accuracy: f64,
}

/// Per task, per method, the [`TaskMetrics`] of `records`; runs that
/// failed numerically (§6) are left out.
pub fn per_task<A: Architecture>(
    records: &[Record<A>],
) -> BTreeMap<TaskId, BTreeMap<Method, TaskMetrics>> {
    let mut runs: BTreeMap<(TaskId, Method), Vec<&Record<A>>> = BTreeMap::new();
    for record in records.iter().filter(|r| !r.failed()) {
        runs.entry((record.task.clone(), record.method))
            .or_default()
            .push(record);
    }
    let mut table: BTreeMap<TaskId, BTreeMap<Method, TaskMetrics>> = BTreeMap::new();
    for ((task, method), runs) in runs {
        let mean = |f: &dyn Fn(&Record<A>) -> f64| Stat::of(runs.iter().map(|r| f(r))).mean;
        let criteria: Vec<Option<usize>> = runs
            .iter()
            .map(|r| examples_to_criterion(&r.examples, &r.curve))
            .collect();
        let metrics = TaskMetrics {
            repeats: runs.len(),
            start: mean(&|r| starting_accuracy(&r.curve)),
            slope: mean(&|r| initial_slope(&r.examples, &r.curve)),
            criterion: median_criterion(&criteria, restricted_examples(&runs[0].examples)),
            final_accuracy: mean(&|r| final_accuracy(&r.curve)),
        };
        table.entry(task).or_default().insert(method, metrics);
    }
    table
}

/// Per task, `value` of `method` divided by `value` of `retrain` on the
/// same task, for the tasks where both exist and retrain's is not 0.
pub fn ratio_to_retrain(
    table: &BTreeMap<TaskId, BTreeMap<Method, TaskMetrics>>,
    method: Method,
    value: impl Fn(&TaskMetrics) -> Option<f64>,
) -> Vec<(TaskId, f64)> {
    table
        .iter()
        .filter_map(|(task, by_method)| {
            let of = value(by_method.get(&method)?)?;
            let base = value(by_method.get(&Method::Retrain)?)?;
            (base != 0.0).then(|| (task.clone(), of / base))
        })
        .collect()
}

/// The unit of a task in the verdicts and bands (§5): `a-b` for a digit
/// task `a-b@q` (the four quadrants of a pair share their digits and are
/// not independent), the task's own name otherwise.
pub fn unit_of(task: &TaskId) -> String {
    match task.as_str().parse::<crate::data::Task>() {
        Ok(t) => pair_unit(t),
        Err(_) => task.as_str().to_string(),
    }
}

/// The unit of digit task `a-b@q`: its pair, `a-b` (§5).
pub fn pair_unit(task: crate::data::Task) -> String {
    format!("{}-{}", task.a, task.b)
}

/// Mean, standard error of the mean and count of some values.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stat {
    /// Mean (NaN when there are no values).
    pub mean: f64,
    /// Standard error of the mean (NaN with fewer than two values).
    pub sem: f64,
    /// Number of values.
    pub n: usize,
}

impl Stat {
    /// The statistics of `values`.
    pub fn of(values: impl IntoIterator<Item = f64>) -> Stat {
        let values: Vec<f64> = values.into_iter().collect();
        let n = values.len();
        let mean = values.iter().sum::<f64>() / n as f64;
        let variance = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n as f64 - 1.0);
        Stat {
            mean,
            sem: (variance / n as f64).sqrt(),
            n,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_other(n: usize) -> Vec<usize> {
        (0..n).map(|i| 2 * i).collect()
    }

    #[test]
    fn slope_of_a_line_is_exact_and_uses_the_x_axis() {
        let curve: Vec<f32> = (0..251).map(|n| 0.5 + 0.001 * (2 * n) as f32).collect();
        let slope = initial_slope(&every_other(251), &curve);
        assert!((slope - 0.001).abs() < 1e-7, "{slope}");
        let sparse: Vec<usize> = (0..251).map(|i| 4 * i).collect();
        let halved = initial_slope(&sparse, &curve);
        assert!((halved - 0.0005).abs() < 1e-7, "{halved}");
        assert_eq!(initial_slope(&[0], &[0.5]), 0.0);
    }

    #[test]
    fn criterion_is_first_crossing_or_censored() {
        let x = every_other(5);
        assert_eq!(
            examples_to_criterion(&x, &[0.5, 0.69, 0.7, 0.6, 0.9]),
            Some(4)
        );
        assert_eq!(examples_to_criterion(&[0], &[0.75]), Some(0));
        assert_eq!(examples_to_criterion(&x[..2], &[0.5, 0.6]), None);
        assert_eq!(
            examples_to_criterion(&[10, 20, 30], &[0.1, 0.8, 0.9]),
            Some(20)
        );
    }

    #[test]
    fn median_counts_censored_runs_at_their_restricted_value() {
        let r = 502.0;
        assert_eq!(
            median_criterion(&[Some(8), None, Some(2)], r),
            Criterion::Reached(8.0)
        );
        assert_eq!(
            median_criterion(&[None, Some(2), None], r),
            Criterion::Censored { restricted: r }
        );
        assert_eq!(
            median_criterion(&[Some(4), Some(2), Some(10), None], r),
            Criterion::Reached(7.0)
        );
        let half = median_criterion(&[Some(4), None], r);
        assert_eq!(half, Criterion::Censored { restricted: 253.0 });
        assert!(half.censored() && half.examples().is_none() && half.restricted() == 253.0);
        assert_eq!(
            median_criterion(&[], r),
            Criterion::Censored { restricted: r }
        );
        assert_eq!(restricted_examples(&every_other(251)), 502.0);
        assert_eq!(restricted_examples(&[10, 20, 30]), 40.0);
        assert_eq!(restricted_examples(&[0]), 1.0);
    }

    #[test]
    fn digit_tasks_group_by_pair() {
        let id = |s: &str| TaskId::try_from(s.to_string()).unwrap();
        assert_eq!(unit_of(&id("1-7@0")), "1-7");
        assert_eq!(unit_of(&id("1-7@3")), "1-7");
        assert_eq!(unit_of(&id("even@2")), "even@2");
    }

    #[test]
    fn mean_and_standard_error() {
        let s = Stat::of([1.0, 2.0, 3.0, 4.0]);
        assert_eq!((s.mean, s.n), (2.5, 4));
        assert!(
            (s.sem - (5.0f64 / 3.0 / 4.0).sqrt()).abs() < 1e-12,
            "{}",
            s.sem
        );
        assert_eq!(Stat::of([]).n, 0);
    }
}
