//! Per-method summary of a sweep (§5): over tasks, mean ± s.e.m. of the
//! per-task metrics of [`crate::analysis::metrics`] (starting accuracy,
//! initial slope, its ratio to retraining, examples to criterion with the
//! censored tasks counted, final accuracy); as Markdown and CSV files, and
//! with the plots when asked.

use std::path::{Path, PathBuf};

use crate::analysis::metrics::{Stat, TaskMetrics, per_task, ratio_to_retrain};
use crate::analysis::plots::write_plots;
use crate::conv::ConvArch;
use crate::error::{Error, Result};
use crate::io::atomic::{check_not_input, check_output, check_writable, write_atomic};
use crate::net::Arch;
use crate::sweep::completeness::{Completeness, completeness};
use crate::sweep::record::{Architecture, Record};
use crate::sweep::store::{RecordKind, check_config, read_results};
use crate::train::Method;

/// One method's row of the summary.
#[derive(Clone, Debug)]
pub struct MethodSummary {
    /// The method.
    pub method: Method,
    /// Tasks it ran on.
    pub tasks: usize,
    /// Runs, failed ones included.
    pub runs: usize,
    /// Runs that failed numerically (§6), left out of every metric.
    pub failed: usize,
    /// Starting accuracy (measurement 0), over tasks.
    pub start: Stat,
    /// Initial slope, accuracy per example, over tasks.
    pub slope: Stat,
    /// Per-task slope over retrain's slope, over the tasks where both ran.
    pub slope_ratio: Stat,
    /// Per-task median examples to criterion over every task, a censored
    /// run at its restricted value (the run's length plus one step, §5):
    /// a restricted mean, never one over the uncensored tasks alone.
    pub examples_to_criterion: Stat,
    /// Tasks whose median run never reached the criterion.
    pub censored_tasks: usize,
    /// Accuracy at the last measurement, over tasks.
    pub final_accuracy: Stat,
}

/// The summary of `records`, one row per method present, in report order.
pub fn summarize<A: Architecture>(records: &[Record<A>]) -> Vec<MethodSummary> {
    let table = per_task(records);
    Method::ALL
        .iter()
        .filter_map(|&method| {
            let tasks: Vec<&TaskMetrics> = table.values().filter_map(|m| m.get(&method)).collect();
            let over_tasks = |f: fn(&TaskMetrics) -> f64| Stat::of(tasks.iter().map(|t| f(t)));
            let of_method = records.iter().filter(|r| r.method == method);
            let failed = of_method.clone().filter(|r| r.failed()).count();
            (of_method.count() > 0).then(|| MethodSummary {
                method,
                tasks: tasks.len(),
                runs: tasks.iter().map(|t| t.repeats).sum::<usize>() + failed,
                failed,
                start: over_tasks(|t| t.start),
                slope: over_tasks(|t| t.slope),
                slope_ratio: Stat::of(
                    ratio_to_retrain(&table, method, |t| Some(t.slope))
                        .into_iter()
                        .map(|(_, r)| r),
                ),
                examples_to_criterion: Stat::of(tasks.iter().map(|t| t.criterion.restricted())),
                censored_tasks: tasks.iter().filter(|t| t.criterion.censored()).count(),
                final_accuracy: over_tasks(|t| t.final_accuracy),
            })
        })
        .collect()
}

/// "mean ± sem" with `digits` decimals, or "–" without values.
fn show(stat: Stat, digits: usize) -> String {
    match stat.n {
        0 => "–".into(),
        1 => format!("{:.digits$}", stat.mean),
        _ => format!("{:.digits$} ± {:.digits$}", stat.mean, stat.sem),
    }
}

/// The summary as a Markdown table.
pub fn markdown(rows: &[MethodSummary]) -> String {
    let mut out = String::from(
        "| method | tasks | runs | failed runs | starting accuracy | initial slope (×10⁻³ per example) | slope / retrain | examples to criterion (0.70; restricted mean) | censored tasks | final accuracy |\n|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for row in rows {
        let slope = Stat {
            mean: row.slope.mean * 1e3,
            sem: row.slope.sem * 1e3,
            n: row.slope.n,
        };
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            row.method.name(),
            row.tasks,
            row.runs,
            row.failed,
            show(row.start, 3),
            show(slope, 3),
            show(row.slope_ratio, 2),
            show(row.examples_to_criterion, 1),
            row.censored_tasks,
            show(row.final_accuracy, 3)
        ));
    }
    out.push_str(
        "\nRuns that failed numerically (non-finite tensors, §6) are left out of every metric.\nPer task: mean over repeats (examples to criterion: median, a censored run at its restricted value, the run's length plus one measurement step); then mean ± s.e.m. over tasks (examples to criterion: over every task, the censored ones at their restricted value, so a censored task pulls the mean up instead of leaving it). Ratios are taken per task.\n",
    );
    out
}

/// The summary as CSV (one row per method, mean and sem in separate columns).
pub fn csv(rows: &[MethodSummary]) -> String {
    let mut out = String::from(
        "method,tasks,runs,failed_runs,start_mean,start_sem,slope_mean,slope_sem,slope_ratio_mean,slope_ratio_sem,slope_ratio_tasks,examples_to_criterion_mean,examples_to_criterion_sem,censored_tasks,final_accuracy_mean,final_accuracy_sem\n",
    );
    for r in rows {
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}\n",
            r.method.name(),
            r.tasks,
            r.runs,
            r.failed,
            r.start.mean,
            r.start.sem,
            r.slope.mean,
            r.slope.sem,
            r.slope_ratio.mean,
            r.slope_ratio.sem,
            r.slope_ratio.n,
            r.examples_to_criterion.mean,
            r.examples_to_criterion.sem,
            r.censored_tasks,
            r.final_accuracy.mean,
            r.final_accuracy.sem
        ));
    }
    out
}

/// What [`write_summary`] produced.
#[derive(Clone, Debug)]
pub struct SummaryFiles {
    /// The Markdown table.
    pub table: String,
    /// Every file written.
    pub written: Vec<PathBuf>,
}

/// Writes `summary.md` and `summary.csv` of `records` (read from the
/// results file `source`, which is never overwritten) into `out_dir`
/// (created if needed) and, with `plots`, the PNG plots into that folder
/// (first); nothing is written when either folder cannot take the files.
pub fn write_summary<A: Architecture>(
    records: &[Record<A>],
    source: &Path,
    out_dir: &Path,
    plots: Option<&Path>,
) -> Result<SummaryFiles> {
    let rows = summarize(records);
    let table = markdown(&rows);
    let (md, csv_path) = (out_dir.join("summary.md"), out_dir.join("summary.csv"));
    for dir in std::iter::once(out_dir).chain(plots) {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        check_writable(&dir.join("summary.md"))?;
    }
    for path in [&md, &csv_path] {
        check_output(path)?;
        check_not_input(path, &[("results file", source)])?;
    }
    // Plots first: a plot that fails leaves no tables behind.
    let plotted = match plots {
        Some(dir) => write_plots(records, dir)?,
        None => Vec::new(),
    };
    write_atomic(&md, table.as_bytes())?;
    write_atomic(&csv_path, csv(&rows).as_bytes())?;
    let mut written = vec![md, csv_path];
    written.extend(plotted);
    Ok(SummaryFiles { table, written })
}

/// What [`summarize_file`] made of a results file.
#[derive(Clone, Debug)]
pub struct FileSummary {
    /// The table and the files written.
    pub files: SummaryFiles,
    /// The file ended with a torn line, which was left out.
    pub torn_line: bool,
    /// Which network's records it held.
    pub kind: RecordKind,
    /// How much of its plans it held (partial only when accepted).
    pub completeness: Completeness,
}

/// The summary of the results file `results` of either network (§5):
/// every record must be of one configuration and carry the x axis that
/// configuration makes (a record cut short would bias the means; a run
/// that failed numerically keeps the measurements before its fault); a
/// torn last line is left out. Runs missing from the records' plans (a
/// shard not merged in, a sweep not finished) refuse the summary unless
/// `partial` accepts them. Writes into `out_dir` (default: the results
/// file's folder) and, with `plots`, the plots.
pub fn summarize_file(
    results: &Path,
    out_dir: Option<&Path>,
    plots: Option<&Path>,
    partial: bool,
) -> Result<FileSummary> {
    let kind = RecordKind::of_file(results)?.unwrap_or(RecordKind::Mlp);
    let out_dir = match out_dir {
        Some(dir) => dir.to_path_buf(),
        None => results.parent().map(Path::to_path_buf).unwrap_or_default(),
    };
    let (files, torn_line, completeness) = match kind {
        RecordKind::Mlp => summarize_records::<Arch>(results, &out_dir, plots, partial)?,
        RecordKind::Conv => summarize_records::<ConvArch>(results, &out_dir, plots, partial)?,
    };
    Ok(FileSummary {
        files,
        torn_line,
        kind,
        completeness,
    })
}

/// [`summarize_file`] for records of architecture `A`.
fn summarize_records<A: Architecture>(
    results: &Path,
    out_dir: &Path,
    plots: Option<&Path>,
    partial: bool,
) -> Result<(SummaryFiles, bool, Completeness)> {
    let contents = read_results::<A>(results)?;
    let Some(first) = contents.records.values().next() else {
        return Err(Error::data(results, "no runs to summarise"));
    };
    check_config(results, &contents.records, &first.config)?;
    let expected = first.config.finetune.expected_examples();
    for record in contents.records.values() {
        let whole = if record.failed() {
            expected.starts_with(&record.examples)
        } else {
            record.examples == expected
        };
        if !whole {
            return Err(Error::data(
                results,
                format!(
                    "{} has {} measurements where its configuration makes {}: a record cut short would bias the summary",
                    record.key(),
                    record.examples.len(),
                    expected.len()
                ),
            ));
        }
    }
    let whole = completeness(&contents.records);
    whole.require(results, "summarise it", partial)?;
    let records: Vec<Record<A>> = contents.records.into_values().collect();
    let files = write_summary(&records, results, out_dir, plots)?;
    Ok((files, contents.torn.is_some(), whole))
}
