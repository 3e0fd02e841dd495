//! PNG plots of a sweep (SPEC §5): learning curves per method (mean over
//! runs with a ±s.e.m. band) and the paper's Fig. 2C/2D panels, per task:
//! initial slope and examples to criterion relative to retraining.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Once;

use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::analysis::summary::Stat;
use crate::error::{Error, Result};
use crate::sweep::record::Record;
use crate::train::finetune::Method;

/// DejaVu Sans (see fonts/LICENSE-DejaVu.txt), so that plots need no system fonts.
static FONT: &[u8] = include_bytes!("fonts/DejaVuSans.ttf");

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        plotters::style::register_font("sans-serif", FontStyle::Normal, FONT)
            .unwrap_or_else(|_| panic!("the embedded font is valid"))
    });
}

fn colour(method: Method) -> RGBColor {
    match method {
        Method::Stochastic => RGBColor(214, 39, 40),
        Method::Deterministic => RGBColor(31, 119, 180),
        Method::Retrain => RGBColor(44, 160, 44),
        Method::RetrainLast => RGBColor(148, 103, 189),
    }
}

/// Draws into a temporary file beside `path`, then renames it.
fn draw_png(
    path: &Path,
    draw: impl FnOnce(
        &DrawingArea<BitMapBackend, plotters::coord::Shift>,
    ) -> std::result::Result<(), String>,
) -> Result<()> {
    register_font();
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(path.file_name().unwrap_or_default());
    tmp_name.push(".tmp.png");
    let tmp: PathBuf = path.with_file_name(tmp_name);
    let result = (|| {
        let root = BitMapBackend::new(&tmp, (960, 600)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        draw(&root)?;
        root.present().map_err(|e| e.to_string())
    })();
    result
        .map_err(|e| Error::data(path, format!("cannot draw: {e}")))
        .and_then(|()| std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e)))
        .inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })
}

/// Mean accuracy and s.e.m. per measurement of `method`'s runs.
fn mean_curve(records: &[Record], method: Method) -> Vec<Stat> {
    let runs: Vec<&Record> = records.iter().filter(|r| r.method == method).collect();
    let len = runs.iter().map(|r| r.curve.len()).min().unwrap_or(0);
    (0..len)
        .map(|i| Stat::of(runs.iter().map(|r| r.curve[i] as f64)))
        .collect()
}

/// Learning curves per method with ±s.e.m. bands.
pub fn learning_curves(records: &[Record], path: &Path) -> Result<()> {
    let batch = records
        .first()
        .map(|r| r.config.finetune.batch_size)
        .unwrap_or(2) as f64;
    let curves: Vec<(Method, Vec<Stat>)> = Method::ALL
        .iter()
        .map(|&m| (m, mean_curve(records, m)))
        .filter(|(_, c)| !c.is_empty())
        .collect();
    let x_max = curves.iter().map(|(_, c)| c.len()).max().unwrap_or(1) as f64 * batch;
    let (lo, hi) = curves
        .iter()
        .flat_map(|(_, c)| {
            c.iter()
                .map(|s| (s.mean - s.sem.max(0.0), s.mean + s.sem.max(0.0)))
        })
        .fold((1.0f64, 0.0f64), |(lo, hi), (a, b)| (lo.min(a), hi.max(b)));
    draw_png(path, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(
                "Learning curves (mean ± s.e.m. over tasks and repeats)",
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
                .enumerate()
                .map(|(i, s)| (i as f64 * batch, s.mean + s.sem.max(0.0)))
                .chain(
                    curve
                        .iter()
                        .enumerate()
                        .rev()
                        .map(|(i, s)| (i as f64 * batch, s.mean - s.sem.max(0.0))),
                )
                .collect();
            chart
                .draw_series(std::iter::once(Polygon::new(band, c.mix(0.2))))
                .map_err(|e| e.to_string())?;
            chart
                .draw_series(LineSeries::new(
                    curve
                        .iter()
                        .enumerate()
                        .map(|(i, s)| (i as f64 * batch, s.mean)),
                    c.stroke_width(2),
                ))
                .map_err(|e| e.to_string())?
                .label(method.name())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .position(SeriesLabelPosition::LowerRight)
            .draw()
            .map_err(|e| e.to_string())
    })
}

/// Per task, the mean over repeats of `value` for each method.
fn per_task(
    records: &[Record],
    value: impl Fn(&Record) -> Option<f64>,
) -> BTreeMap<String, BTreeMap<Method, f64>> {
    let mut sums: BTreeMap<String, BTreeMap<Method, Vec<f64>>> = BTreeMap::new();
    for r in records {
        if let Some(v) = value(r) {
            sums.entry(r.task.clone())
                .or_default()
                .entry(r.method)
                .or_default()
                .push(v);
        }
    }
    sums.into_iter()
        .map(|(task, by)| {
            (
                task,
                by.into_iter().map(|(m, v)| (m, Stat::of(v).mean)).collect(),
            )
        })
        .collect()
}

/// A per-task panel: for each method but retrain, its value relative to
/// retraining's on the same task, tasks sorted by the stochastic ratio.
fn relative_panel(
    records: &[Record],
    path: &Path,
    title: &str,
    y_desc: &str,
    value: impl Fn(&Record) -> Option<f64>,
) -> Result<()> {
    let table = per_task(records, value);
    let methods = [
        Method::Stochastic,
        Method::Deterministic,
        Method::RetrainLast,
    ];
    let mut rows: Vec<(String, BTreeMap<Method, f64>)> = table
        .into_iter()
        .filter_map(|(task, by)| {
            let base = *by.get(&Method::Retrain)?;
            (base != 0.0).then(|| {
                (
                    task,
                    methods
                        .iter()
                        .filter_map(|m| by.get(m).map(|v| (*m, v / base)))
                        .collect(),
                )
            })
        })
        .collect();
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

/// Writes `learning_curves.png`, `fig2c_slope_ratio.png` and
/// `fig2d_examples_to_criterion.png` into `dir`; returns their paths.
pub fn write_plots(records: &[Record], dir: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let curves = dir.join("learning_curves.png");
    learning_curves(records, &curves)?;
    let slope = dir.join("fig2c_slope_ratio.png");
    relative_panel(
        records,
        &slope,
        "Initial slope relative to retraining (Fig. 2C)",
        "slope / slope of retrain",
        |r| Some(r.slope),
    )?;
    let criterion = dir.join("fig2d_examples_to_criterion.png");
    relative_panel(
        records,
        &criterion,
        "Examples to criterion relative to retraining (Fig. 2D)",
        "examples / examples of retrain",
        |r| r.examples_to_criterion.map(|e| e as f64),
    )?;
    Ok(vec![curves, slope, criterion])
}
