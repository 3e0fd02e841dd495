//! The report's figures (§5): heat maps (Fig. 2A, 2E), scatter panels
//! (Fig. 2F–H), a histogram, and labelled curves (Fig. 3, 4), each a PNG
//! written atomically. The numbers come from the analyses; this module
//! only draws.

use std::path::Path;

use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use crate::analysis::plots::{draw_png, lower_right_legend};
use crate::error::Result;

type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;
type Drawn = std::result::Result<(), String>;

/// One matrix of a heat-map figure: title, rows, columns, row-major values.
#[derive(Clone, Debug)]
pub struct HeatMap {
    /// Panel title.
    pub title: String,
    /// Rows.
    pub rows: usize,
    /// Columns.
    pub cols: usize,
    /// Values, row-major (NaN: not drawn).
    pub values: Vec<f64>,
}

/// A colour scale for heat maps.
#[derive(Clone, Copy, Debug)]
pub enum Scale {
    /// lo (white) → hi (dark blue).
    Sequential(f64, f64),
    /// −m (blue) → 0 (white) → +m (red).
    Diverging(f64),
}

impl Scale {
    fn colour(self, v: f64) -> RGBColor {
        let mix = |a: (f64, f64, f64), t: f64| {
            let t = t.clamp(0.0, 1.0);
            RGBColor(
                (255.0 + (a.0 - 255.0) * t) as u8,
                (255.0 + (a.1 - 255.0) * t) as u8,
                (255.0 + (a.2 - 255.0) * t) as u8,
            )
        };
        match self {
            Scale::Sequential(lo, hi) => mix((8.0, 48.0, 107.0), (v - lo) / (hi - lo)),
            Scale::Diverging(m) if v >= 0.0 => mix((178.0, 24.0, 43.0), v / m),
            Scale::Diverging(m) => mix((33.0, 102.0, 172.0), -v / m),
        }
    }
}

fn heat_panel(area: &Area<'_>, map: &HeatMap, scale: Scale) -> Drawn {
    let area = area
        .titled(&map.title, ("sans-serif", 16))
        .map_err(|e| e.to_string())?;
    let (w, h) = area.dim_in_pixel();
    let cell = ((w as usize - 8) / map.cols)
        .min((h as usize - 8) / map.rows)
        .max(1) as i32;
    for r in 0..map.rows {
        for c in 0..map.cols {
            let v = map.values[r * map.cols + c];
            if v.is_nan() {
                continue;
            }
            let (x, y) = (4 + c as i32 * cell, 4 + r as i32 * cell);
            area.draw(&Rectangle::new(
                [(x, y), (x + cell, y + cell)],
                scale.colour(v).filled(),
            ))
            .map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

/// Heat maps in a grid of `columns`, under `title`, with the scale's
/// range noted in the title.
pub fn heat_maps(
    path: &Path,
    title: &str,
    maps: &[HeatMap],
    columns: usize,
    scale: Scale,
) -> Result<()> {
    let range = match scale {
        Scale::Sequential(lo, hi) => format!("white {lo} → blue {hi}"),
        Scale::Diverging(m) => format!("blue −{m:.2} → white 0 → red +{m:.2}"),
    };
    draw_png(path, |root| {
        let root = root
            .titled(&format!("{title} ({range})"), ("sans-serif", 20))
            .map_err(|e| e.to_string())?;
        let rows = maps.len().div_ceil(columns).max(1);
        let panels = root.split_evenly((rows, columns));
        for (panel, map) in panels.iter().zip(maps) {
            heat_panel(panel, map, scale)?;
        }
        Ok(())
    })
}

/// One scatter panel: title, axis labels, points.
#[derive(Clone, Debug)]
pub struct Scatter {
    /// Panel title.
    pub title: String,
    /// x axis label.
    pub x: String,
    /// y axis label.
    pub y: String,
    /// Points.
    pub points: Vec<(f64, f64)>,
}

fn bounds(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if lo > hi {
        (0.0, 1.0)
    } else if lo == hi {
        (lo - 0.5, hi + 0.5)
    } else {
        let pad = 0.05 * (hi - lo);
        (lo - pad, hi + pad)
    }
}

/// Cartesian axes on `area` with a caption of `size` points, labelled
/// axes and a mesh, over `ranges`.
fn axes<'a, 'b>(
    area: &'a Area<'b>,
    (title, size): (&str, u32),
    (x, y): (&str, &str),
    (xs, ys): (std::ops::Range<f64>, std::ops::Range<f64>),
) -> std::result::Result<
    ChartContext<'a, BitMapBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
    String,
> {
    let big = size > 16;
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", size))
        .margin(if big { 16 } else { 10 })
        .x_label_area_size(if big { 44 } else { 36 })
        .y_label_area_size(if big { 56 } else { 48 })
        .build_cartesian_2d(xs, ys)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc(x)
        .y_desc(y)
        .draw()
        .map_err(|e| e.to_string())?;
    Ok(chart)
}

fn scatter_panel(area: &Area<'_>, panel: &Scatter) -> Drawn {
    let (x0, x1) = bounds(panel.points.iter().map(|p| p.0));
    let (y0, y1) = bounds(panel.points.iter().map(|p| p.1));
    let mut chart = axes(
        area,
        (&panel.title, 16),
        (&panel.x, &panel.y),
        (x0..x1, y0..y1),
    )?;
    chart
        .draw_series(
            panel
                .points
                .iter()
                .filter(|p| p.0.is_finite() && p.1.is_finite())
                .map(|&p| Circle::new(p, 3, RGBColor(214, 39, 40).mix(0.6).filled())),
        )
        .map_err(|e| e.to_string())?;
    Ok(())
}

/// Scatter panels side by side.
pub fn scatters(path: &Path, panels: &[Scatter]) -> Result<()> {
    draw_png(path, |root| {
        let areas = root.split_evenly((1, panels.len().max(1)));
        for (area, panel) in areas.iter().zip(panels) {
            scatter_panel(area, panel)?;
        }
        Ok(())
    })
}

/// A histogram of `values` in `bins` equal bins.
pub fn histogram(path: &Path, title: &str, x: &str, values: &[f64], bins: usize) -> Result<()> {
    let (lo, hi) = bounds(values.iter().copied());
    let width = (hi - lo) / bins as f64;
    let mut counts = vec![0usize; bins];
    for &v in values.iter().filter(|v| v.is_finite()) {
        counts[(((v - lo) / width) as usize).min(bins - 1)] += 1;
    }
    let top = counts.iter().copied().max().unwrap_or(0).max(1) as f64;
    draw_png(path, |root| {
        let mut chart = axes(root, (title, 22), (x, "count"), (lo..hi, 0.0..top * 1.1))?;
        chart
            .draw_series(counts.iter().enumerate().map(|(i, &n)| {
                let x0 = lo + i as f64 * width;
                Rectangle::new(
                    [(x0, 0.0), (x0 + width, n as f64)],
                    RGBColor(31, 119, 180).filled(),
                )
            }))
            .map_err(|e| e.to_string())?;
        Ok(())
    })
}

/// A labelled series of a curve figure.
#[derive(Clone, Debug)]
pub struct Series {
    /// Legend label.
    pub label: String,
    /// Colour.
    pub colour: RGBColor,
    /// Points, in x order.
    pub points: Vec<(f64, f64)>,
}

/// Labelled curves with markers, and an optional dashed horizontal
/// reference line `(label, y)`.
pub fn curves(
    path: &Path,
    title: &str,
    (x, y): (&str, &str),
    series: &[Series],
    reference: Option<(&str, f64)>,
) -> Result<()> {
    let (x0, x1) = bounds(series.iter().flat_map(|s| s.points.iter().map(|p| p.0)));
    let (y0, y1) = bounds(
        series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.1))
            .chain(reference.map(|r| r.1)),
    );
    draw_png(path, |root| {
        let mut chart = axes(root, (title, 22), (x, y), (x0..x1, y0..y1))?;
        if let Some((label, level)) = reference {
            chart
                .draw_series(DashedLineSeries::new(
                    vec![(x0, level), (x1, level)],
                    6,
                    4,
                    BLACK.stroke_width(1),
                ))
                .map_err(|e| e.to_string())?
                .label(label)
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK));
        }
        for s in series {
            let c = s.colour;
            chart
                .draw_series(LineSeries::new(s.points.clone(), c.stroke_width(2)))
                .map_err(|e| e.to_string())?
                .label(&s.label)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2))
                });
            chart
                .draw_series(s.points.iter().map(|&p| Circle::new(p, 3, c.filled())))
                .map_err(|e| e.to_string())?;
        }
        lower_right_legend(&mut chart)
    })
}
