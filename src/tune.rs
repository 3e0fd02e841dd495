//! The learning-rate grid of the paper's supplement (§4), `comod tune`:
//! each method over a log grid of rates on tuning tasks disjoint from the
//! reported ones, the rate with the highest mean accuracy over the last
//! measurements per method, ties broken by the lower across-run variance.
//!
//! Every grid point is an ordinary sweep (one results file per rate, all
//! methods at that rate), so a grid resumes, shards and summarises like
//! any sweep.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::data::Digits;
use crate::data::Task;
use crate::error::{Error, Result};
use crate::io::check_writable;
use crate::net::Arch;
use crate::net::Model;
use crate::sweep::plan::reproduction_tasks;
use crate::sweep::record::{Record, SweepConfig};
use crate::sweep::store::read_results;
use crate::sweep::{SweepReport, SweepSpec, check_plan, run_sweep};
use crate::train::method::LearningRates;
use crate::train::options::Protocol;
use crate::train::presets::Overrides;
use crate::train::{DigitTasks, Frozen, Method};

/// The default grid (§4): 1e-6 … 1e-1, one point a decade.
pub const DEFAULT_GRID: [f32; 6] = [1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1];
/// Repeats per (task, method, rate) by default.
pub const TUNING_REPEATS: usize = 3;
/// Measurements at the end of each curve whose mean accuracy scores a run (§4).
pub const SCORED_MEASUREMENTS: usize = 25;
/// Mean scores closer than this tie (one test example in a thousand); the
/// lower across-run variance then wins (§4).
pub const TIE_MARGIN: f64 = 1e-3;

/// The default tuning tasks: eight digit pairs, spread over the 45, each
/// in a quadrant the default reproduction does not use for it, so that no
/// tuning task is a reported one ([`reproduction_tasks`]).
pub fn tuning_tasks() -> Vec<Task> {
    reproduction_tasks()
        .into_iter()
        .step_by(6)
        .map(|t| Task::new(t.a, t.b, (t.quadrant + 2) % 4).expect("a valid task"))
        .collect()
}

/// Checks that `grid` has rates and that each is positive; the error
/// names `--grid`.
pub fn check_grid(grid: &[f32]) -> Result<()> {
    if grid.is_empty() {
        return Err(Error::option("--grid", "(none)", "needs a learning rate"));
    }
    if let Some(&bad) = grid.iter().find(|r| !(r.is_finite() && **r > 0.0)) {
        return Err(Error::option(
            "--grid",
            bad,
            "a learning rate must be positive",
        ));
    }
    Ok(())
}

/// Refuses learning rates given explicitly: the grid sets them.
pub fn check_overrides(overrides: &Overrides) -> Result<()> {
    match overrides.given_learning_rate() {
        Some(flag) => Err(Error::option(
            flag,
            "(given)",
            "tune chooses the learning rates from --grid; drop it",
        )),
        None => Ok(()),
    }
}

/// What a grid covers.
#[derive(Clone, Debug)]
pub struct TuneSpec {
    /// Tuning tasks.
    pub tasks: Vec<Task>,
    /// Methods.
    pub methods: Vec<Method>,
    /// Repeats per (task, method, rate).
    pub repeats: usize,
    /// The learning rates tried, for every method.
    pub grid: Vec<f32>,
    /// The configuration of every run but its learning rates.
    pub config: SweepConfig<Arch>,
}

impl TuneSpec {
    /// Checks the plan, the grid and the configuration; the error names the option.
    pub fn validate(&self) -> Result<()> {
        check_plan(self.tasks.len(), &self.methods, self.repeats)?;
        check_grid(&self.grid)?;
        self.config.finetune.validate()
    }

    /// The sweep of one grid point: every method at learning rate `rate`.
    fn sweep_at(&self, rate: f32) -> SweepSpec<Task, Arch> {
        let mut config = self.config.clone();
        config.finetune.lr = LearningRates {
            stochastic: rate,
            deterministic: rate,
            retrain: rate,
            retrain_last: rate,
        };
        SweepSpec {
            tasks: self.tasks.clone(),
            methods: self.methods.clone(),
            repeats: self.repeats,
            shard: Default::default(),
            record_coupling: false,
            config,
        }
    }
}

/// The folder of a grid's results files, beside its table `out`
/// (`tune.md` → `tune.runs/`).
pub fn runs_dir(out: &Path) -> PathBuf {
    out.with_extension("runs")
}

/// Checks, before any run, that the grid's three outputs are three
/// different paths that can be written: the table `out`, its plot (`.png`)
/// and its runs folder (`.runs/`); `--out x.png` would write the plot
/// over the table.
pub fn check_outputs(out: &Path) -> Result<()> {
    let (plot, runs) = (out.with_extension("png"), runs_dir(out));
    if plot == out || runs == out {
        return Err(Error::option(
            "--out",
            out.display(),
            "is the name of the grid's plot (.png) or runs folder (.runs): give the table's name, e.g. tune.md",
        ));
    }
    check_writable(out)?;
    check_writable(&plot)?;
    if runs.exists() && !runs.is_dir() {
        return Err(Error::io(
            &runs,
            std::io::Error::other("is not a folder: the grid's runs go there"),
        ));
    }
    Ok(())
}

/// The results file of grid point `rate` in `dir`.
pub fn results_path(dir: &Path, rate: f32) -> PathBuf {
    dir.join(format!("lr-{rate:e}.jsonl"))
}

/// Runs (or resumes) every grid point of `spec` into [`runs_dir`]`(out)`;
/// `on_run` gets the runs done so far and the total. Returns each point's
/// sweep report and the records of every point.
pub fn run_grid(
    frozen: &Frozen<Model<f32>>,
    digits: &Digits,
    spec: &TuneSpec,
    out: &Path,
    on_run: impl Fn(usize, usize) + Sync,
) -> Result<(Vec<SweepReport>, Vec<Record>)> {
    spec.validate()?;
    check_outputs(out)?;
    let dir = runs_dir(out);
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let per_point = spec.tasks.len() * spec.methods.len() * spec.repeats;
    let total = per_point * spec.grid.len();
    let mut reports = Vec::new();
    let mut records = Vec::new();
    let study = DigitTasks { frozen, digits };
    for (i, &rate) in spec.grid.iter().enumerate() {
        let path = results_path(&dir, rate);
        let report = run_sweep(&study, &spec.sweep_at(rate), &path, |done, _| {
            on_run(i * per_point + done, total)
        })?;
        reports.push(report);
        records.extend(read_results(&path)?.records.into_values());
    }
    Ok((reports, records))
}

/// One method at one rate, over its runs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GridPoint {
    /// The method.
    pub method: Method,
    /// Its learning rate.
    pub rate: f32,
    /// Runs (tasks × repeats).
    pub runs: usize,
    /// Mean over runs of each run's mean accuracy over its last
    /// [`SCORED_MEASUREMENTS`] measurements: the selection score.
    pub score: f64,
    /// Variance across runs of that per-run mean (the tie-breaker).
    pub variance: f64,
    /// Mean final accuracy.
    pub final_accuracy: f64,
}

/// A run's score: its mean accuracy over the last [`SCORED_MEASUREMENTS`]
/// measurements (all of them when the curve is shorter); 0 for a run that
/// failed numerically (§6), so that a diverging rate ranks last.
pub fn record_score(record: &Record) -> f64 {
    if record.failed() {
        0.0
    } else {
        run_score(&record.curve)
    }
}

/// The mean accuracy of `curve` over its last [`SCORED_MEASUREMENTS`]
/// measurements (all of them when the curve is shorter).
pub fn run_score(curve: &[f32]) -> f64 {
    let last = &curve[curve.len().saturating_sub(SCORED_MEASUREMENTS)..];
    last.iter().map(|&a| a as f64).sum::<f64>() / last.len() as f64
}

/// The grid points of `records` (each with its method's rate), in method
/// then rate order.
pub fn grid_points(records: &[Record]) -> Vec<GridPoint> {
    let mut runs: BTreeMap<(Method, u32), Vec<&Record>> = BTreeMap::new();
    for record in records {
        let rate = record.method.learning_rate(&record.config.finetune.lr);
        runs.entry((record.method, rate.to_bits()))
            .or_default()
            .push(record);
    }
    let mut points: Vec<GridPoint> = runs
        .into_iter()
        .map(|((method, bits), runs)| {
            let scores: Vec<f64> = runs.iter().map(|r| record_score(r)).collect();
            let n = scores.len() as f64;
            let score = scores.iter().sum::<f64>() / n;
            let variance = if scores.len() > 1 {
                scores.iter().map(|s| (s - score).powi(2)).sum::<f64>() / (n - 1.0)
            } else {
                0.0
            };
            let final_accuracy = runs
                .iter()
                .map(|r| match r.failed() {
                    true => 0.0,
                    false => *r.curve.last().unwrap_or(&f32::NAN) as f64,
                })
                .sum::<f64>()
                / n;
            GridPoint {
                method,
                rate: f32::from_bits(bits),
                runs: runs.len(),
                score,
                variance,
                final_accuracy,
            }
        })
        .collect();
    points.sort_by(|a, b| {
        (a.method, a.rate)
            .partial_cmp(&(b.method, b.rate))
            .expect("rates are finite")
    });
    points
}

/// The selection rule of §4: per method, the point with the highest score;
/// among the points within [`TIE_MARGIN`] of it, the one with the lowest
/// across-run variance (then the lower rate).
pub fn select(points: &[GridPoint]) -> BTreeMap<Method, GridPoint> {
    let mut chosen = BTreeMap::new();
    for method in Method::ALL {
        let of_method: Vec<&GridPoint> = points.iter().filter(|p| p.method == method).collect();
        let Some(best) = of_method.iter().map(|p| p.score).reduce(f64::max) else {
            continue;
        };
        let pick = of_method
            .iter()
            .filter(|p| p.score >= best - TIE_MARGIN)
            .min_by(|a, b| {
                a.variance
                    .total_cmp(&b.variance)
                    .then(a.rate.total_cmp(&b.rate))
            })
            .expect("the best point is within the margin");
        chosen.insert(method, **pick);
    }
    chosen
}

/// The flags that set the chosen rates, to paste into `comod sweep`.
pub fn flags(chosen: &BTreeMap<Method, GridPoint>) -> String {
    chosen
        .values()
        .map(|p| format!("--lr-{} {}", p.method.name(), p.rate))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The grid as a Markdown table: per rate (rows) and method (columns), the
/// score ± its across-run standard deviation and the mean final accuracy;
/// the chosen point of each method in bold.
pub fn markdown(points: &[GridPoint], chosen: &BTreeMap<Method, GridPoint>) -> String {
    let methods: Vec<Method> = Method::ALL
        .into_iter()
        .filter(|m| points.iter().any(|p| p.method == *m))
        .collect();
    let mut rates: Vec<f32> = points.iter().map(|p| p.rate).collect();
    rates.sort_by(f32::total_cmp);
    rates.dedup();
    let mut text = format!(
        "Mean accuracy over the last {SCORED_MEASUREMENTS} measurements ± its standard deviation across runs (final accuracy); **bold**: chosen (§4; ties within {TIE_MARGIN} go to the lower variance).\n\n| rate |"
    );
    for m in &methods {
        text.push_str(&format!(" {} |", m.name()));
    }
    text.push_str("\n|---|");
    text.push_str(&"---|".repeat(methods.len()));
    text.push('\n');
    for rate in rates {
        text.push_str(&format!("| {rate:e} |"));
        for m in &methods {
            match points.iter().find(|p| p.method == *m && p.rate == rate) {
                Some(p) => {
                    let cell = format!(
                        "{:.3} ± {:.3} ({:.3})",
                        p.score,
                        p.variance.sqrt(),
                        p.final_accuracy
                    );
                    if chosen.get(m) == Some(p) {
                        text.push_str(&format!(" **{cell}** |"));
                    } else {
                        text.push_str(&format!(" {cell} |"));
                    }
                }
                None => text.push_str(" – |"),
            }
        }
        text.push('\n');
    }
    text
}

/// What [`write_tuning`] made of a grid.
#[derive(Clone, Debug)]
pub struct Tuning {
    /// Every grid point.
    pub points: Vec<GridPoint>,
    /// The chosen point per method.
    pub chosen: BTreeMap<Method, GridPoint>,
    /// The Markdown table.
    pub table: String,
    /// The flags of the chosen rates, for `comod sweep`.
    pub flags: String,
    /// The files written.
    pub written: Vec<PathBuf>,
}

/// Scores the grid's `records`, chooses a rate per method, and writes the
/// table to `out` (Markdown) and the plot beside it (`.png`), atomically.
pub fn write_tuning(records: &[Record], out: &Path) -> Result<Tuning> {
    let points = grid_points(records);
    let chosen = select(&points);
    let table = markdown(&points, &chosen);
    // Rates chosen under `dataset` belong to that protocol.
    let flags = match records.first().map(|r| r.config.finetune.protocol) {
        Some(protocol @ Protocol::Dataset(_)) => {
            format!("--protocol {} {}", protocol.name(), flags(&chosen))
        }
        _ => flags(&chosen),
    };
    let text = format!(
        "# Learning-rate grid (§4)\n\n{table}\nChosen rates, for `comod sweep`:\n\n    {flags}\n\nThe runs of each rate: `{}`.\n",
        runs_dir(out).display()
    );
    crate::io::write_atomic(out, text.as_bytes())?;
    let png = out.with_extension("png");
    let finals: Vec<(Method, f32, f64)> = points
        .iter()
        .map(|p| (p.method, p.rate, p.final_accuracy))
        .collect();
    crate::analysis::plots::learning_rate_grid(&finals, &png)?;
    Ok(Tuning {
        points,
        chosen,
        table,
        flags,
        written: vec![out.to_path_buf(), png],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(method: Method, rate: f32, score: f64, variance: f64) -> GridPoint {
        GridPoint {
            method,
            rate,
            runs: 3,
            score,
            variance,
            final_accuracy: score,
        }
    }

    #[test]
    fn the_highest_score_wins_and_ties_go_to_the_lower_variance() {
        let points = [
            // A clear winner.
            point(Method::Retrain, 1e-5, 0.70, 0.001),
            point(Method::Retrain, 1e-4, 0.80, 0.010),
            point(Method::Retrain, 1e-3, 0.75, 0.000),
            // A tie within the margin: the lower variance wins over the higher score.
            point(Method::Stochastic, 1e-3, 0.8000, 0.020),
            point(Method::Stochastic, 1e-2, 0.8005, 0.030),
            point(Method::Stochastic, 1e-1, 0.7995, 0.005),
            // Just outside the margin: no tie.
            point(Method::Deterministic, 1e-3, 0.800, 0.000),
            point(Method::Deterministic, 1e-2, 0.802, 0.100),
        ];
        let chosen = select(&points);
        assert_eq!(chosen[&Method::Retrain].rate, 1e-4);
        assert_eq!(chosen[&Method::Stochastic].rate, 1e-1);
        assert_eq!(chosen[&Method::Deterministic].rate, 1e-2);
        assert!(!chosen.contains_key(&Method::RetrainLast));
        assert_eq!(
            flags(&chosen),
            "--lr-stochastic 0.1 --lr-deterministic 0.01 --lr-retrain 0.0001"
        );
    }

    #[test]
    fn a_run_scores_the_mean_of_its_last_measurements() {
        let curve: Vec<f32> = (0..100).map(|i| if i < 75 { 0.0 } else { 1.0 }).collect();
        assert_eq!(run_score(&curve), 1.0);
        assert_eq!(run_score(&curve[..80]), 5.0 / 25.0);
        assert_eq!(run_score(&[0.5, 1.0]), 0.75);
    }

    #[test]
    fn tuning_tasks_are_not_reported_tasks() {
        let tuning = tuning_tasks();
        let reported = reproduction_tasks();
        assert_eq!(tuning.len(), 8);
        assert!(tuning.iter().all(|t| !reported.contains(t)));
    }
}
