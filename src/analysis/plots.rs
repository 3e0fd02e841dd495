//! PNG plots of a sweep (§5): learning curves per method (mean over runs
//! with a ±s.e.m. band) and the paper's Fig. 2C/2D panels, per task:
//! initial slope and examples to criterion relative to retraining, by the
//! per-task definitions of [`crate::analysis::metrics`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Once;

use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::analysis::metrics::{Stat, TaskMetrics, per_task, ratio_to_retrain, unit_of};
use crate::data::TaskId;
use crate::error::{Error, Result};
use crate::io::atomic::write_atomic_with;
use crate::sweep::record::{Architecture, Record};
use crate::train::Method;

/// DejaVu Sans (see fonts/LICENSE-DejaVu.txt), so that plots need no system fonts.
static FONT: &[u8] = include_bytes!("fonts/DejaVuSans.ttf");

pub(crate) fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        plotters::style::register_font("sans-serif", FontStyle::Normal, FONT)
            .unwrap_or_else(|_| panic!("the embedded font is valid"))
    });
}

pub(crate) fn colour(method: Method) -> RGBColor {
    match method {
        Method::Stochastic => RGBColor(214, 39, 40),
        Method::Deterministic => RGBColor(31, 119, 180),
        Method::Retrain => RGBColor(44, 160, 44),
        Method::RetrainLast => RGBColor(148, 103, 189),
    }
}

/// Draws a 960×600 PNG and writes it to `path` atomically.
pub(crate) fn draw_png(
    path: &Path,
    draw: impl FnOnce(
        &DrawingArea<BitMapBackend, plotters::coord::Shift>,
    ) -> std::result::Result<(), String>,
) -> Result<()> {
    register_font();
    write_atomic_with(path, |tmp| {
        let root = BitMapBackend::new(tmp, (960, 600)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        draw(&root)?;
        root.present().map_err(|e| format!("cannot draw: {e}"))
    })
}

/// Per measurement of `method`'s runs: examples seen, and the mean over
/// units (§5: the digit pair of a digit task, else the task) of each
/// unit's mean over its runs, with the s.e.m. over those per-unit means,
/// never over runs pooled across tasks and repeats (measurements shared
/// by every run).
fn mean_curve<'a, A: Architecture + 'a>(
    records: impl IntoIterator<Item = &'a Record<A>>,
    method: Method,
) -> Vec<(f64, Stat)> {
    let mut units: BTreeMap<String, Vec<&Record<A>>> = BTreeMap::new();
    for r in records
        .into_iter()
        .filter(|r| r.method == method && !r.failed())
    {
        units.entry(unit_of(&r.task)).or_default().push(r);
    }
    let Some(first) = units.values().next().and_then(|runs| runs.first()) else {
        return Vec::new();
    };
    let len = units
        .values()
        .flat_map(|runs| runs.iter().map(|r| r.curve.len()))
        .min()
        .unwrap_or(0);
    (0..len)
        .map(|i| {
            let x = first.examples[i] as f64;
            let unit_means = units.values().map(|runs| {
                runs.iter().map(|r| r.curve[i] as f64).sum::<f64>() / runs.len() as f64
            });
            (x, Stat::of(unit_means))
        })
        .collect()
}

/// Learning curves per task (one panel each, four to a row), each
/// method's mean over its repeats: the per-task form in which the
/// multi-task result is stated (§8).
pub fn task_curves<A: Architecture>(records: &[Record<A>], path: &Path) -> Result<()> {
    let mut tasks: Vec<&TaskId> = records.iter().map(|r| &r.task).collect();
    tasks.sort();
    tasks.dedup();
    let columns = 4.min(tasks.len()).max(1);
    let rows = tasks.len().div_ceil(columns).max(1);
    draw_png(path, |root| {
        let panels = root.split_evenly((rows, columns));
        for (task, panel) in tasks.iter().zip(panels.iter()) {
            let of_task: Vec<&Record<A>> = records.iter().filter(|r| &r.task == *task).collect();
            let curves: Vec<(Method, Vec<(f64, Stat)>)> = Method::ALL
                .iter()
                .map(|&m| (m, mean_curve(of_task.iter().copied(), m)))
                .filter(|(_, c)| !c.is_empty())
                .collect();
            let x_max = curves
                .iter()
                .filter_map(|(_, c)| c.last().map(|&(x, _)| x))
                .fold(1.0, f64::max);
            let (lo, hi) = curves
                .iter()
                .flat_map(|(_, c)| c.iter().map(|(_, s)| s.mean))
                .fold((1.0f64, 0.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
            let mut chart = ChartBuilder::on(panel)
                .caption(task.as_str(), ("sans-serif", 16))
                .margin(6)
                .x_label_area_size(24)
                .y_label_area_size(40)
                .build_cartesian_2d(0.0..x_max, (lo - 0.01).max(0.0)..(hi + 0.01).min(1.0))
                .map_err(|e| e.to_string())?;
            chart
                .configure_mesh()
                .x_labels(3)
                .y_labels(4)
                .label_style(("sans-serif", 11))
                .draw()
                .map_err(|e| e.to_string())?;
            for (method, curve) in &curves {
                let c = colour(*method);
                chart
                    .draw_series(LineSeries::new(
                        curve.iter().map(|&(x, s)| (x, s.mean)),
                        c.stroke_width(1),
                    ))
                    .map_err(|e| e.to_string())?
                    .label(method.name())
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 14, y)], c.stroke_width(2))
                    });
            }
            if std::ptr::eq(*task, tasks[0]) {
                lower_right_legend(&mut chart)?;
            }
        }
        Ok(())
    })
}

/// Draws the series labels of `chart` in its lower right corner.
pub(crate) fn lower_right_legend<'a, 'b: 'a, X, Y>(
    chart: &mut ChartContext<'a, BitMapBackend<'b>, Cartesian2d<X, Y>>,
) -> std::result::Result<(), String>
where
    X: plotters::coord::ranged1d::Ranged,
    Y: plotters::coord::ranged1d::Ranged,
{
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerRight)
        .draw()
        .map_err(|e| e.to_string())
}

/// Learning curves per method with ±s.e.m. bands.
pub fn learning_curves<A: Architecture>(records: &[Record<A>], path: &Path) -> Result<()> {
    let curves: Vec<(Method, Vec<(f64, Stat)>)> = Method::ALL
        .iter()
        .map(|&m| (m, mean_curve(records, m)))
        .filter(|(_, c)| !c.is_empty())
        .collect();
    let x_max = curves
        .iter()
        .filter_map(|(_, c)| c.last().map(|&(x, _)| x))
        .fold(1.0, f64::max);
    let (lo, hi) = curves
        .iter()
        .flat_map(|(_, c)| {
            c.iter()
                .map(|(_, s)| (s.mean - s.sem.max(0.0), s.mean + s.sem.max(0.0)))
        })
        .fold((1.0f64, 0.0f64), |(lo, hi), (a, b)| (lo.min(a), hi.max(b)));
    draw_png(path, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(
                "Learning curves (mean ± s.e.m. over units: digit pairs or tasks)",
                ("sans-serif", 24),
            )
            .margin(16)
            .x_label_area_size(44)
            .y_label_area_size(56)
            .build_cartesian_2d(0.0..x_max, (lo - 0.01).max(0.0)..(hi + 0.01).min(1.0))
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc("training examples")
            .y_desc("test accuracy")
            .draw()
            .map_err(|e| e.to_string())?;
        for (method, curve) in &curves {
            let c = colour(*method);
            let band: Vec<(f64, f64)> = curve
                .iter()
                .map(|&(x, s)| (x, s.mean + s.sem.max(0.0)))
                .chain(
                    curve
                        .iter()
                        .rev()
                        .map(|&(x, s)| (x, s.mean - s.sem.max(0.0))),
                )
                .collect();
            chart
                .draw_series(std::iter::once(Polygon::new(band, c.mix(0.2))))
                .map_err(|e| e.to_string())?;
            chart
                .draw_series(LineSeries::new(
                    curve.iter().map(|&(x, s)| (x, s.mean)),
                    c.stroke_width(2),
                ))
                .map_err(|e| e.to_string())?
                .label(method.name())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2))
                });
        }
        lower_right_legend(&mut chart)
    })
}

/// A per-task panel: for each method but retrain, its per-task `value`
/// relative to retraining's on the same task ([`ratio_to_retrain`]),
/// tasks sorted by the stochastic ratio.
fn relative_panel<A: Architecture>(
    records: &[Record<A>],
    path: &Path,
    title: &str,
    y_desc: &str,
    value: fn(&TaskMetrics) -> Option<f64>,
) -> Result<()> {
    let table = per_task(records);
    let methods = [
        Method::Stochastic,
        Method::Deterministic,
        Method::RetrainLast,
    ];
    let mut by_task: BTreeMap<TaskId, BTreeMap<Method, f64>> = BTreeMap::new();
    for method in methods {
        for (task, ratio) in ratio_to_retrain(&table, method, value) {
            by_task.entry(task).or_default().insert(method, ratio);
        }
    }
    let mut rows: Vec<(TaskId, BTreeMap<Method, f64>)> = by_task.into_iter().collect();
    rows.sort_by(|a, b| {
        let key =
            |r: &BTreeMap<Method, f64>| r.get(&Method::Stochastic).copied().unwrap_or(f64::NAN);
        key(&a.1).total_cmp(&key(&b.1))
    });
    let values: Vec<f64> = rows
        .iter()
        .flat_map(|(_, r)| r.values().copied())
        .filter(|v| v.is_finite())
        .collect();
    let (lo, hi) = values
        .iter()
        .fold((1.0f64, 1.0f64), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    let pad = 0.05 * (hi - lo).max(0.1);
    let n = rows.len().max(1) as f64;
    draw_png(path, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, ("sans-serif", 24))
            .margin(16)
            .x_label_area_size(44)
            .y_label_area_size(56)
            .build_cartesian_2d(-0.5..n - 0.5, lo - pad..hi + pad)
            .map_err(|e| e.to_string())?;
        let names: Vec<&str> = rows.iter().map(|(task, _)| task.as_str()).collect();
        let label = |x: &f64| {
            let i = x.round();
            if (x - i).abs() < 1e-6 && i >= 0.0 {
                names
                    .get(i as usize)
                    .map(|s| s.to_string())
                    .unwrap_or_default()
            } else {
                String::new()
            }
        };
        chart
            .configure_mesh()
            .x_labels(names.len().clamp(1, 12))
            .x_label_formatter(&label)
            .x_desc("task (sorted by the stochastic ratio)")
            .y_desc(y_desc)
            .draw()
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(LineSeries::new(
                [(-0.5, 1.0), (n - 0.5, 1.0)],
                BLACK.mix(0.5),
            ))
            .map_err(|e| e.to_string())?;
        for method in methods {
            let c = colour(method);
            let points = rows
                .iter()
                .enumerate()
                .filter_map(|(i, (_, r))| r.get(&method).map(|&v| (i as f64, v)));
            chart
                .draw_series(points.map(|p| Circle::new(p, 4, c.filled())))
                .map_err(|e| e.to_string())?
                .label(method.name())
                .legend(move |(x, y)| Circle::new((x + 10, y), 4, c.filled()));
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| e.to_string())
    })
}

/// Final accuracy against learning rate (log scale) per method, one
/// marker per grid point (§4, `comod tune`): `(method, rate, accuracy)`.
pub fn learning_rate_grid(points: &[(Method, f32, f64)], path: &Path) -> Result<()> {
    let (lo, hi) = points
        .iter()
        .fold((f64::INFINITY, 0.0f64), |(lo, hi), &(_, r, _)| {
            (lo.min(r as f64), hi.max(r as f64))
        });
    let (lo, hi) = if lo <= hi {
        (lo / 3.0, hi * 3.0)
    } else {
        (1e-7, 1.0)
    };
    draw_png(path, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption("Final accuracy against learning rate", ("sans-serif", 24))
            .margin(16)
            .x_label_area_size(44)
            .y_label_area_size(56)
            .build_cartesian_2d((lo..hi).log_scale(), 0.0..1.0)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc("learning rate")
            .y_desc("final test accuracy (mean over runs)")
            .x_label_formatter(&|x| format!("{x:.0e}"))
            .draw()
            .map_err(|e| e.to_string())?;
        for method in Method::ALL {
            let c = colour(method);
            let series: Vec<(f64, f64)> = points
                .iter()
                .filter(|p| p.0 == method)
                .map(|&(_, r, a)| (r as f64, a))
                .collect();
            if series.is_empty() {
                continue;
            }
            chart
                .draw_series(LineSeries::new(series.clone(), c.stroke_width(2)))
                .map_err(|e| e.to_string())?
                .label(method.name())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2))
                });
            chart
                .draw_series(series.into_iter().map(|p| Circle::new(p, 4, c.filled())))
                .map_err(|e| e.to_string())?;
        }
        lower_right_legend(&mut chart)
    })
}

/// Writes `learning_curves.png`, `fig2c_slope_ratio.png` and
/// `fig2d_examples_to_criterion.png` into `dir`; returns their paths.
pub fn write_plots<A: Architecture>(records: &[Record<A>], dir: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let curves = dir.join("learning_curves.png");
    learning_curves(records, &curves)?;
    let slope = dir.join("fig2c_slope_ratio.png");
    relative_panel(
        records,
        &slope,
        "Initial slope relative to retraining (Fig. 2C)",
        "slope / slope of retrain",
        |t| Some(t.slope),
    )?;
    let criterion = dir.join("fig2d_examples_to_criterion.png");
    relative_panel(
        records,
        &criterion,
        "Examples to criterion relative to retraining (Fig. 2D)",
        "examples / examples of retrain (censored at the run's length + one step)",
        |t| Some(t.criterion.restricted()),
    )?;
    Ok(vec![curves, slope, criterion])
}
