//! The report's analyses beyond the method claims (§5): Fig. 2A pair
//! accuracies, Fig. 2E–H coupling and |d′|, Fig. 3 variants, Fig. 4
//! switching; each returns its claim rows and writes its figures.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::analysis::figures::{
    HeatMap, Scale as Colours, Scatter, Series, curves, heat_maps, histogram, scatters,
};
use crate::analysis::metrics::{TaskMetrics, per_task};
use crate::analysis::neurons::{coupling_map, task_d_prime};
use crate::analysis::plots::colour;
use crate::analysis::stats::{median, quantile, spearman};
use crate::analysis::verdict::{ACCURACY_MARGIN, Direction, Margin, RELATIVE_MARGIN, judge};
use crate::data::{Digits, Task, TaskId};
use crate::error::Result;
use crate::net::Model;
use crate::net::linalg::serial_products;
use crate::report::claims::{ClaimRow, Metric, repeats};
use crate::sweep::record::Record;
use crate::train::Method;
use crate::train::evaluate::{PairAccuracy, pair_accuracy};
use crate::train::options::ReadoutKind;
use crate::train::switching::SwitchRun;

/// Figures and claim rows of one analysis.
#[derive(Default)]
pub struct Section {
    /// Claim rows.
    pub claims: Vec<ClaimRow>,
    /// Figures written, with captions.
    pub figures: Vec<(PathBuf, String)>,
    /// Extra Markdown (tables).
    pub text: String,
}

/// Fig. 2A (§5 (a)): pretrained accuracy of every task without and with
/// distractors, under both readouts.
pub fn fig2a(model: &Model<f32>, digits: &Digits, seed: u64, dir: &Path) -> Result<Section> {
    let mut section = Section::default();
    for readout in [ReadoutKind::All, ReadoutKind::Pair] {
        let accuracies: Vec<PairAccuracy> = Task::all()
            .par_iter()
            .map(|&task| serial_products(|| pair_accuracy(model, digits, task, readout, seed)))
            .collect();
        let chance = match readout {
            ReadoutKind::Pair => 0.5,
            ReadoutKind::All => 0.1,
        };
        let clean: Vec<(f64, f64)> = accuracies
            .iter()
            .map(|a| (a.without_distractors, a.with_distractors))
            .collect();
        let near_chance: Vec<(f64, f64)> = accuracies
            .iter()
            .map(|a| (a.with_distractors, (chance + a.without_distractors) / 2.0))
            .collect();
        let setting = format!("pretrained, {} readout, 180 tasks", readout.name());
        section.claims.push(ClaimRow {
            claim: "(a) Fig. 2A".into(),
            statement: "accuracy without distractors > with distractors".into(),
            setting: setting.clone(),
            repeats: 1,
            starts: None,
            judgement: judge(&clean, Direction::Greater, ACCURACY_MARGIN, seed),
        });
        section.claims.push(ClaimRow {
            claim: "(a) Fig. 2A".into(),
            statement: format!(
                "with distractors near chance: < midpoint of chance ({chance}) and without"
            ),
            setting,
            repeats: 1,
            starts: None,
            judgement: judge(&near_chance, Direction::Less, ACCURACY_MARGIN, seed),
        });
        let mut maps = Vec::new();
        for (label, pick) in [
            (
                "without",
                (|a: &PairAccuracy| a.without_distractors) as fn(&PairAccuracy) -> f64,
            ),
            ("with", |a: &PairAccuracy| a.with_distractors),
        ] {
            for q in 0..4u8 {
                let mut values = vec![f64::NAN; 100];
                for a in accuracies.iter().filter(|a| a.task.quadrant == q) {
                    values[a.task.a as usize * 10 + a.task.b as usize] = pick(a);
                }
                maps.push(HeatMap {
                    title: format!("{label} distractors, quadrant {q}"),
                    rows: 10,
                    cols: 10,
                    values,
                });
            }
        }
        let path = dir.join(format!("fig2a_{}.png", readout.name()));
        heat_maps(
            &path,
            &format!(
                "Pretrained accuracy per pair a (row) – b (column), {} readout",
                readout.name()
            ),
            &maps,
            4,
            Colours::Sequential(0.0, 1.0),
        )?;
        section.figures.push((
            path,
            format!("Fig. 2A, {} readout: pretrained accuracy of each pair (row a < column b) per quadrant, without (top) and with (bottom) distractors.", readout.name()),
        ));
    }
    Ok(section)
}

/// Per task, the mean over repeats of the recorded couplings of `method`.
fn mean_couplings(records: &[Record], method: Method) -> BTreeMap<String, Vec<f64>> {
    let mut sums: BTreeMap<String, (Vec<f64>, usize)> = BTreeMap::new();
    for r in records.iter().filter(|r| r.method == method) {
        let Some(c) = &r.coupling else { continue };
        let entry = sums
            .entry(r.task.as_str().to_string())
            .or_insert_with(|| (vec![0.0; c.len()], 0));
        entry.0.iter_mut().zip(c).for_each(|(s, &v)| *s += v as f64);
        entry.1 += 1;
    }
    sums.into_iter()
        .map(|(t, (s, n))| (t, s.into_iter().map(|v| v / n as f64).collect()))
        .collect()
}

/// Fig. 2E–H (§5 (d)): coupling maps, coupling against |d′| within the
/// task quadrant, and two tasks sharing a quadrant, from the stochastic
/// runs' couplings in `records`.
pub fn fig2efgh(
    model: &Model<f32>,
    digits: &Digits,
    records: &[Record],
    seed: u64,
    setting: &str,
    dir: &Path,
) -> Result<Section> {
    let mut section = Section::default();
    let couplings = mean_couplings(records, Method::Stochastic);
    let arch = model.arch();
    let mut rows = Vec::new();
    // |d′| of every neuron of the modulated layer, per task.
    let mut every_d = Vec::new();
    for (task, c) in &couplings {
        let task: Task = task.parse()?;
        let d = task_d_prime(model, digits, task, arch.modulated_layer, seed);
        let neurons = arch
            .quadrant_neurons(arch.modulated_layer, task.quadrant as usize)
            .unwrap_or(0..c.len());
        rows.push((
            task,
            c[neurons.clone()].to_vec(),
            d[neurons].to_vec(),
            c.clone(),
        ));
        every_d.push(d);
    }
    let r: Vec<f64> = rows.iter().map(|(_, c, d, _)| spearman(c, d)).collect();
    let pairs: Vec<(f64, f64)> = r.iter().map(|&r| (r, 0.0)).collect();
    section.claims.push(ClaimRow {
        claim: "(d) Fig. 2F".into(),
        statement: "coupling correlates positively with |d′| in the task quadrant (Spearman r > 0)"
            .into(),
        setting: setting.to_string(),
        repeats: repeats(records),
        starts: None,
        judgement: judge(&pairs, Direction::Greater, Margin::Absolute(0.0), seed),
    });
    let mut maps = Vec::new();
    for (task, _, _, c) in rows.iter().take(4) {
        if let Some(map) = coupling_map(model, c) {
            maps.push(HeatMap {
                title: format!("{task}"),
                rows: 28,
                cols: 28,
                values: map,
            });
        }
    }
    if !maps.is_empty() {
        let m = maps
            .iter()
            .flat_map(|h| h.values.iter().map(|v| v.abs()))
            .fold(1e-12, f64::max);
        let path = dir.join("fig2e_coupling_maps.png");
        heat_maps(
            &path,
            "Coupling maps, z-scored c projected to pixels",
            &maps,
            maps.len(),
            Colours::Diverging(m),
        )?;
        section.figures.push((path, "Fig. 2E: coupling maps of the stochastic method (mean over repeats), z-scored and projected through the encoder's weights.".into()));
    }
    if let (Some((task, c, d, _)), Some(all)) = (rows.first(), every_d.first()) {
        let path = dir.join("fig2f_coupling_vs_dprime.png");
        scatters(
            &path,
            &[
                Scatter {
                    title: format!("{task}: |d′| of every layer-ℓ neuron"),
                    x: "neuron (quadrant = index / quarter)".into(),
                    y: "|d′|".into(),
                    points: all
                        .iter()
                        .enumerate()
                        .map(|(i, &v)| (i as f64, v))
                        .collect(),
                },
                Scatter {
                    title: format!("{task}: r = {:.2} (Spearman)", spearman(c, d)),
                    x: "|d′| (task-quadrant neuron)".into(),
                    y: "coupling c".into(),
                    points: d.iter().copied().zip(c.iter().copied()).collect(),
                },
            ],
        )?;
        section.figures.push((
            path,
            format!("Fig. 2F: |d′| of every neuron of the modulated layer for {task} (left), and coupling against |d′| for its task-quadrant neurons (right)."),
        ));
        let path = dir.join("fig2g_r_over_tasks.png");
        histogram(
            &path,
            "Spearman r of coupling and |d′| over tasks",
            "r",
            &r,
            12,
        )?;
        section.figures.push((
            path,
            "Fig. 2G: the distribution over tasks of that correlation.".into(),
        ));
    }
    // Two tasks sharing a quadrant (Fig. 2H).
    let shared = rows.iter().enumerate().find_map(|(i, a)| {
        rows[i + 1..]
            .iter()
            .find(|b| b.0.quadrant == a.0.quadrant)
            .map(|b| (a, b))
    });
    if let Some((a, b)) = shared {
        let path = dir.join("fig2h_shared_quadrant.png");
        scatters(
            &path,
            &[
                Scatter {
                    title: format!("|d′|: r = {:.2}", spearman(&a.2, &b.2)),
                    x: format!("{}", a.0),
                    y: format!("{}", b.0),
                    points: a.2.iter().copied().zip(b.2.iter().copied()).collect(),
                },
                Scatter {
                    title: format!("coupling: r = {:.2}", spearman(&a.1, &b.1)),
                    x: format!("{}", a.0),
                    y: format!("{}", b.0),
                    points: a.1.iter().copied().zip(b.1.iter().copied()).collect(),
                },
            ],
        )?;
        section.figures.push((path, format!("Fig. 2H: {} and {} share quadrant {}: their neurons' |d′| (left) and couplings (right).", a.0, b.0, a.0.quadrant)));
    }
    section.text = format!(
        "Spearman r of coupling and |d′| in the task quadrant over {} tasks: median {:.3}, range {:.3} … {:.3}.\n",
        r.len(),
        median(&r),
        r.iter().copied().fold(f64::INFINITY, f64::min),
        r.iter().copied().fold(f64::NEG_INFINITY, f64::max)
    );
    Ok(section)
}

/// One Fig. 3 variant: its name, network, pretrained accuracy, and the
/// stochastic runs on it.
pub struct Variant {
    /// e.g. `relu-local2-l2`.
    pub name: String,
    /// The pretrained network.
    pub model: Model<f32>,
    /// Its held-out general accuracy.
    pub baseline: f64,
    /// Its stochastic runs.
    pub records: Vec<Record>,
}

/// Tasks whose |d′| per layer Fig. 3 shows.
pub const D_PRIME_TASKS: usize = 4;

/// Fig. 3 (§5 (e)): per variant, baseline, examples to criterion and final
/// accuracy; the three comparisons; |d′| per layer.
pub fn fig3(
    variants: &[Variant],
    tasks: &[Task],
    digits: &Digits,
    (setting, seed): (&str, u64),
    dir: &Path,
) -> Result<Section> {
    let mut section = Section::default();
    // Per variant, per task, the stochastic method's metrics.
    let tables: Vec<BTreeMap<TaskId, TaskMetrics>> = variants
        .iter()
        .map(|v| {
            per_task(&v.records)
                .into_iter()
                .filter_map(|(task, m)| Some((task, *m.get(&Method::Stochastic)?)))
                .collect()
        })
        .collect();
    let by_name = |name: &str| variants.iter().position(|v| v.name == name);
    section.text.push_str("| variant | general accuracy | start | initial slope (×10⁻³/example) | examples to criterion (median over tasks) | final accuracy |\n|---|---|---|---|---|---|\n");
    for (v, t) in variants.iter().zip(&tables) {
        let values = |f: &dyn Fn(&TaskMetrics) -> f64| -> Vec<f64> { t.values().map(f).collect() };
        let criterion = median(&values(&|m| Metric::Criterion.of(m)));
        section.text.push_str(&format!(
            "| {} | {:.3} | {:.3} | {:.3} | {} | {:.3} |\n",
            v.name,
            v.baseline,
            median(&values(&|m| m.start)),
            1e3 * median(&values(&|m| m.slope)),
            if criterion.is_finite() {
                format!("{criterion:.0}")
            } else {
                "censored".into()
            },
            median(&values(&|m| m.final_accuracy)),
        ));
    }
    let comparisons = [
        (
            "paper3-l1",
            "deep4-l1",
            "3 layers learn faster than 4 (slope)",
        ),
        (
            "relu-deep4-l1",
            "relu-deep4-l2",
            "dense layer 2: early modulation faster than late (slope)",
        ),
        (
            "relu-local2-l2",
            "relu-local2-l1",
            "local layer 2: late modulation faster than early (slope)",
        ),
    ];
    for (x, y, statement) in comparisons {
        let (Some(ix), Some(iy)) = (by_name(x), by_name(y)) else {
            continue;
        };
        let (tx, ty) = (&tables[ix], &tables[iy]);
        let pairs: Vec<(f64, f64)> = tx
            .iter()
            .filter_map(|(task, a)| Some((Metric::Slope.of(a), Metric::Slope.of(ty.get(task)?))))
            .collect();
        section.claims.push(ClaimRow {
            claim: "(e) Fig. 3".into(),
            statement: format!("{statement}: {x} > {y}"),
            setting: format!("{setting}; stochastic"),
            repeats: repeats(&variants[ix].records),
            starts: None,
            judgement: judge(&pairs, Direction::Greater, RELATIVE_MARGIN, seed),
        });
    }
    // |d′| per layer on the first few tasks: median over their neurons, all
    // and the task quadrant's.
    let tasks = &tasks[..tasks.len().min(D_PRIME_TASKS)];
    let mut series = Vec::new();
    let palette = [
        plotters::style::RGBColor(214, 39, 40),
        plotters::style::RGBColor(31, 119, 180),
        plotters::style::RGBColor(44, 160, 44),
        plotters::style::RGBColor(148, 103, 189),
        plotters::style::RGBColor(255, 127, 14),
        plotters::style::RGBColor(140, 86, 75),
    ];
    section.text.push_str("\n|d′| per hidden layer, median [quartiles] over the neurons of the tasks below; quadrant: the task quadrant's neurons, where the layer keeps quadrants apart.\n\n| variant | layer | all neurons | task-quadrant neurons |\n|---|---|---|---|\n");
    let spread = |v: &[f64]| {
        format!(
            "{:.3} [{:.3}, {:.3}]",
            median(v),
            quantile(v, 0.25),
            quantile(v, 0.75)
        )
    };
    for (v, &c) in variants.iter().zip(&palette) {
        let arch = v.model.arch();
        let mut all = Vec::new();
        let mut quadrant = Vec::new();
        for l in 1..arch.depth() {
            let (mut every, mut local) = (Vec::new(), Vec::new());
            for &task in tasks {
                let d = task_d_prime(&v.model, digits, task, l, seed);
                if let Some(range) = arch.quadrant_neurons(l, task.quadrant as usize) {
                    local.extend_from_slice(&d[range]);
                }
                every.extend(d);
            }
            section.text.push_str(&format!(
                "| {} | {l} | {} | {} |\n",
                v.name,
                spread(&every),
                if local.is_empty() {
                    "–".to_string()
                } else {
                    spread(&local)
                }
            ));
            all.push((l as f64, median(&every)));
            if !local.is_empty() {
                quadrant.push((l as f64, median(&local)));
            }
        }
        series.push(Series {
            label: format!("{} all", v.name),
            colour: c,
            points: all,
        });
        if !quadrant.is_empty() {
            series.push(Series {
                label: format!("{} quadrant", v.name),
                colour: lighter(c),
                points: quadrant,
            });
        }
    }
    if !series.is_empty() {
        let path = dir.join("fig3_dprime_by_layer.png");
        curves(
            &path,
            "Median |d′| per layer (Fig. 3)",
            ("layer", "median |d′|"),
            &series,
            None,
        )?;
        section.figures.push((path, format!("Fig. 3: median |d′| of each hidden layer's neurons for {} tasks, all neurons and the task quadrant's (where a layer keeps quadrants apart).", tasks.len())));
    }
    Ok(section)
}

/// `c` halfway to white.
fn lighter(c: plotters::style::RGBColor) -> plotters::style::RGBColor {
    let half = |v: u8| ((v as u16 + 255) / 2) as u8;
    plotters::style::RGBColor(half(c.0), half(c.1), half(c.2))
}

/// Fig. 4 (§5 (f)): the general-task accuracy after switching back, per
/// method, and the examples each needs to recover.
pub fn fig4(runs: &[SwitchRun], (setting, seed): (&str, u64), dir: &Path) -> Result<Section> {
    let mut section = Section::default();
    let recovered = |method: Method| -> BTreeMap<String, f64> {
        runs.iter()
            .filter(|r| r.method == method)
            .map(|r| {
                (
                    r.task.clone(),
                    r.recovered_at().map_or(f64::INFINITY, |e| e as f64),
                )
            })
            .collect()
    };
    section.text.push_str("| method | general accuracy right after the task (mean) | examples to recover (median over tasks) |\n|---|---|---|\n");
    let mut series = Vec::new();
    let pretrained = runs.first().map_or(f64::NAN, |r| r.pretrained);
    let longest = runs
        .iter()
        .filter_map(|r| r.examples.last())
        .max()
        .filter(|&&e| e > 0)
        .map(|&e| e as f64);
    for method in Method::ALL {
        let of: Vec<&SwitchRun> = runs.iter().filter(|r| r.method == method).collect();
        if of.is_empty() {
            continue;
        }
        let first = of.iter().map(|r| r.accuracy[0]).sum::<f64>() / of.len() as f64;
        let rec: Vec<f64> = recovered(method).into_values().collect();
        let m = median(&rec);
        section.text.push_str(&format!(
            "| {} | {first:.3} | {} |\n",
            method.name(),
            if m.is_finite() {
                format!("{m:.0}")
            } else {
                "not within the run".into()
            }
        ));
        let len = of.iter().map(|r| r.accuracy.len()).min().unwrap_or(0);
        let mut points: Vec<(f64, f64)> = (0..len)
            .map(|i| {
                (
                    of[0].examples[i] as f64,
                    of.iter().map(|r| r.accuracy[i]).sum::<f64>() / of.len() as f64,
                )
            })
            .collect();
        if let ([only], Some(end)) = (points.as_slice(), longest) {
            // Back at once and untouched afterwards: flat over the x range.
            points.push((end, only.1));
        }
        series.push(Series {
            label: method.name().into(),
            colour: colour(method),
            points,
        });
    }
    for (retrainer, modulator) in [
        (Method::Retrain, Method::Stochastic),
        (Method::RetrainLast, Method::Stochastic),
    ] {
        let (x, y) = (recovered(retrainer), recovered(modulator));
        let pairs: Vec<(f64, f64)> = x
            .iter()
            .filter_map(|(t, &a)| Some((a, *y.get(t)?)))
            .collect();
        section.claims.push(ClaimRow {
            claim: "(f) Fig. 4".into(),
            statement: format!(
                "examples to recover the general task: {} > {} (= 0)",
                retrainer.name(),
                modulator.name()
            ),
            setting: format!("{setting}; one repeat"),
            repeats: 1,
            starts: None,
            judgement: judge(&pairs, Direction::Greater, RELATIVE_MARGIN, seed),
        });
    }
    let path = dir.join("fig4_switching.png");
    curves(
        &path,
        "General task after switching back (Fig. 4)",
        ("general examples since the switch", "general-task accuracy"),
        &series,
        Some(("pretrained", pretrained)),
    )?;
    section.figures.push((path, "Fig. 4: general-task accuracy after the specific task, per method (mean over tasks); modulation returns by removing c and g.".into()));
    Ok(section)
}
