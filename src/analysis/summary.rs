//! Per-method summary of a sweep (SPEC §5): mean ± s.e.m. over tasks and
//! repeats of the initial slope, the slope ratio to retraining, examples to
//! criterion (with the censored count) and final accuracy.

use crate::sweep::record::Record;
use crate::train::finetune::Method;

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

    /// "mean ± sem" with `digits` decimals, or "–" without values.
    fn show(&self, digits: usize) -> String {
        match self.n {
            0 => "–".into(),
            1 => format!("{:.digits$}", self.mean),
            _ => format!("{:.digits$} ± {:.digits$}", self.mean, self.sem),
        }
    }
}

/// One method's row of the summary.
#[derive(Clone, Debug)]
pub struct MethodSummary {
    /// The method.
    pub method: Method,
    /// Runs.
    pub runs: usize,
    /// Initial slope, accuracy per example.
    pub slope: Stat,
    /// Slope relative to `retrain` (runs where it exists).
    pub slope_ratio: Stat,
    /// Examples to criterion (runs that reached it).
    pub examples_to_criterion: Stat,
    /// Runs that never reached the criterion.
    pub censored: usize,
    /// Accuracy at the last measurement.
    pub final_accuracy: Stat,
}

/// The summary of `records`, one row per method present, in report order.
pub fn summarize(records: &[Record]) -> Vec<MethodSummary> {
    Method::ALL
        .iter()
        .filter_map(|&method| {
            let runs: Vec<&Record> = records.iter().filter(|r| r.method == method).collect();
            (!runs.is_empty()).then(|| MethodSummary {
                method,
                runs: runs.len(),
                slope: Stat::of(runs.iter().map(|r| r.slope)),
                slope_ratio: Stat::of(runs.iter().filter_map(|r| r.slope_ratio_retrain)),
                examples_to_criterion: Stat::of(
                    runs.iter()
                        .filter_map(|r| r.examples_to_criterion.map(|e| e as f64)),
                ),
                censored: runs
                    .iter()
                    .filter(|r| r.examples_to_criterion.is_none())
                    .count(),
                final_accuracy: Stat::of(
                    runs.iter()
                        .filter_map(|r| r.curve.last().map(|&a| a as f64)),
                ),
            })
        })
        .collect()
}

/// The summary as a Markdown table.
pub fn markdown(rows: &[MethodSummary]) -> String {
    let mut out = String::from(
        "| method | runs | initial slope (×10⁻³ per example) | slope / retrain | examples to criterion (0.70) | censored | final accuracy |\n|---|---|---|---|---|---|---|\n",
    );
    for row in rows {
        let slope = Stat {
            mean: row.slope.mean * 1e3,
            sem: row.slope.sem * 1e3,
            n: row.slope.n,
        };
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} |\n",
            row.method.name(),
            row.runs,
            slope.show(3),
            row.slope_ratio.show(2),
            row.examples_to_criterion.show(1),
            row.censored,
            row.final_accuracy.show(3)
        ));
    }
    out
}

/// The summary as CSV (one row per method, mean and sem in separate columns).
pub fn csv(rows: &[MethodSummary]) -> String {
    let mut out = String::from(
        "method,runs,slope_mean,slope_sem,slope_ratio_mean,slope_ratio_sem,slope_ratio_n,examples_to_criterion_mean,examples_to_criterion_sem,censored,final_accuracy_mean,final_accuracy_sem\n",
    );
    for r in rows {
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{},{},{}\n",
            r.method.name(),
            r.runs,
            r.slope.mean,
            r.slope.sem,
            r.slope_ratio.mean,
            r.slope_ratio.sem,
            r.slope_ratio.n,
            r.examples_to_criterion.mean,
            r.examples_to_criterion.sem,
            r.censored,
            r.final_accuracy.mean,
            r.final_accuracy.sem
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

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
