//! The report's analyses beyond the method claims (§5): Fig. 2A pair
//! accuracies, Fig. 2E–H coupling and |d′|, Fig. 3 variants, Fig. 4
//! switching; each returns its claim rows and writes its figures.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::analysis::figures::{
    HeatMap, Scale as Colours, Scatter, Series, curves, heat_maps, histogram, scatters,
};
use crate::analysis::metrics::{TaskMetrics, pair_unit, per_task, restricted_examples};
use crate::analysis::neurons::{coupling_map, task_d_prime};
use crate::analysis::plots::colour;
use crate::analysis::stats::{median, median_interval, quantile, spearman};
use crate::analysis::verdict::{
    ACCURACY_MARGIN, CORRELATION_MARGIN, Direction, Judgement, MIN_UNITS, Sample, Verdict, judge,
};
use crate::data::{Digits, Task, TaskId};
use crate::error::Result;
use crate::net::Model;
use crate::net::linalg::one_job_per_thread;
use crate::report::claims::{
    ClaimRow, Metric, PRIMARY, Value, metric_sample, repeats, unit_sample,
};
use crate::sweep::record::Record;
use crate::train::Method;
use crate::train::evaluate::{PairAccuracy, pair_accuracy};
use crate::train::options::ReadoutKind;
use crate::train::switching::{RETURN_EXAMPLES, SwitchRun};

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
        let accuracies: Vec<PairAccuracy> = one_job_per_thread(&Task::all(), |&task| {
            pair_accuracy(model, digits, task, readout, seed)
        });
        let chance = match readout {
            ReadoutKind::Pair => 0.5,
            ReadoutKind::All => 0.1,
        };
        let by_unit = |side: &dyn Fn(&PairAccuracy) -> (f64, f64)| -> Sample {
            unit_sample(
                accuracies.iter().map(|a| {
                    let (x, y) = side(a);
                    (pair_unit(a.task), Value::plain(x), Value::plain(y))
                }),
                0,
            )
        };
        let clean = by_unit(&|a| (a.without_distractors, a.with_distractors));
        let near_chance =
            by_unit(&|a| (a.with_distractors, (a.without_distractors + chance) / 2.0));
        // §5 (a): the paper's claim is about two-digit categorisation, so
        // the `pair` readout is the claim's and `all` a supplement.
        let (family, role) = match readout {
            ReadoutKind::Pair => (Some(PRIMARY.to_string()), "the claim's readout"),
            ReadoutKind::All => (None, "supplement"),
        };
        let setting = format!(
            "pretrained, {} readout ({role}), 180 tasks in 45 pairs",
            readout.name()
        );
        section.claims.push(ClaimRow {
            claim: "(a) Fig. 2A".into(),
            statement: "accuracy without distractors > with distractors".into(),
            setting: setting.clone(),
            repeats: 1,
            starts: None,
            family: family.clone(),
            judgement: judge(&clean, Direction::Greater, ACCURACY_MARGIN),
        });
        section.claims.push(ClaimRow {
            claim: "(a) Fig. 2A".into(),
            statement: format!(
                "with distractors near chance: < midpoint of chance ({chance}) and without"
            ),
            setting,
            repeats: 1,
            starts: None,
            family,
            judgement: judge(&near_chance, Direction::Less, ACCURACY_MARGIN),
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
    // The control (§5 (d)): the same r for the deterministic method's
    // couplings, against the same |d′|.
    let control: Vec<(Task, f64)> = mean_couplings(records, Method::Deterministic)
        .iter()
        .filter_map(|(task, c)| {
            let (t, _, d, _) = rows.iter().find(|row| row.0.to_string() == *task)?;
            let neurons = arch
                .quadrant_neurons(arch.modulated_layer, t.quadrant as usize)
                .unwrap_or(0..c.len());
            Some((*t, spearman(&c[neurons], d)))
        })
        .collect();
    let correlation_sample = |values: &mut dyn Iterator<Item = (Task, f64)>| {
        unit_sample(
            values.map(|(t, r)| (pair_unit(t), Value::plain(r), Value::plain(0.0))),
            0,
        )
    };
    for (method, values, family) in [
        (
            Method::Stochastic,
            rows.iter()
                .map(|row| row.0)
                .zip(r.iter().copied())
                .collect::<Vec<_>>(),
            Some(PRIMARY.to_string()),
        ),
        (Method::Deterministic, control.clone(), None),
    ] {
        let role = match method {
            Method::Stochastic => "the claim",
            _ => "control",
        };
        section.claims.push(ClaimRow {
            claim: "(d) Fig. 2F".into(),
            statement: format!(
                "{}'s coupling correlates positively with |d′| in the task quadrant (Spearman r > 0; {role})",
                method.name()
            ),
            setting: setting.to_string(),
            repeats: repeats(records),
            starts: None,
            family,
            judgement: judge(
                &correlation_sample(&mut values.into_iter()),
                Direction::Greater,
                CORRELATION_MARGIN,
            ),
        });
    }
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
    let control_r: Vec<f64> = control.iter().map(|c| c.1).collect();
    let describe = |r: &[f64]| {
        format!(
            "median {:.3}, range {:.3} … {:.3}",
            median(r),
            r.iter().copied().fold(f64::INFINITY, f64::min),
            r.iter().copied().fold(f64::NEG_INFINITY, f64::max)
        )
    };
    section.text = format!(
        "Spearman r of coupling and |d′| in the task quadrant over {} tasks: stochastic {}; deterministic (control) {}.\n",
        r.len(),
        describe(&r),
        describe(&control_r)
    );
    Ok(section)
}

/// One pretraining of a Fig. 3 variant: its network, its pretrained
/// accuracies, and the stochastic runs on it.
pub struct VariantSeed {
    /// The pretrained network.
    pub model: Model<f32>,
    /// Its held-out general accuracy (pretrained to the same criterion
    /// as every variant, §5 (e)).
    pub general: f64,
    /// Per task, its pretrained pair accuracy with distractors (modulation
    /// off): the baseline the paper matches.
    pub pair: BTreeMap<TaskId, f64>,
    /// Its stochastic runs.
    pub records: Vec<Record>,
}

/// One Fig. 3 variant: its name and its pretrainings (one per seed; 3 at
/// full scale, §5 (e)).
pub struct Variant {
    /// e.g. `relu-local2-l2`.
    pub name: String,
    /// Per pretraining seed.
    pub seeds: Vec<VariantSeed>,
}

/// Tasks whose |d′| per layer Fig. 3 shows.
pub const D_PRIME_TASKS: usize = 4;

/// One (task, seed) unit of a variant: the stochastic method's metrics and
/// the pretrained pair accuracy.
type VariantUnit = (TaskMetrics, f64);

/// Per (task, seed) unit of `variant`, its [`VariantUnit`].
fn variant_units(variant: &Variant) -> BTreeMap<String, VariantUnit> {
    let mut units = BTreeMap::new();
    for (k, seed) in variant.seeds.iter().enumerate() {
        for (task, by_method) in per_task(&seed.records) {
            if let (Some(m), Some(&pair)) =
                (by_method.get(&Method::Stochastic), seed.pair.get(&task))
            {
                units.insert(format!("{task}#{k}"), (*m, pair));
            }
        }
    }
    units
}

/// Fig. 3 (§5 (e)): per variant, its pretrained accuracies and the
/// stochastic method's metrics; the three comparisons by examples to
/// criterion (the paper's panels 3C, 3I, 3L; the slope as a second row),
/// the unit (task, pretraining seed), each row saying when its baselines
/// differ by more than the margin; |d′| per layer.
pub fn fig3(
    variants: &[Variant],
    tasks: &[Task],
    digits: &Digits,
    (setting, seed): (&str, u64),
    dir: &Path,
) -> Result<Section> {
    let mut section = Section::default();
    let units: Vec<BTreeMap<String, VariantUnit>> = variants.iter().map(variant_units).collect();
    let by_name = |name: &str| variants.iter().position(|v| v.name == name);
    section.text.push_str("Every variant is pretrained to the same general-task criterion (0.90 held out, no lower epoch cap); the pretrained pair accuracy with distractors is each task's baseline. Per variant: medians over (task, seed) units; examples to criterion with the number of censored units.\n\n| variant | seeds | general accuracy | pretrained pair accuracy | start | initial slope (×10⁻³/example) | examples to criterion [censored] | final accuracy |\n|---|---|---|---|---|---|---|---|\n");
    for (v, u) in variants.iter().zip(&units) {
        let values = |f: &dyn Fn(&VariantUnit) -> f64| -> Vec<f64> { u.values().map(f).collect() };
        let criterion = median(&values(&|(m, _)| Metric::Criterion.of(m)));
        let censored = u.values().filter(|(m, _)| m.criterion.censored()).count();
        let general: Vec<f64> = v.seeds.iter().map(|s| s.general).collect();
        section.text.push_str(&format!(
            "| {} | {} | {:.3} | {:.3} | {:.3} | {:.3} | {criterion:.0} [{censored}] | {:.3} |\n",
            v.name,
            v.seeds.len(),
            median(&general),
            median(&values(&|(_, pair)| *pair)),
            median(&values(&|(m, _)| m.start)),
            1e3 * median(&values(&|(m, _)| m.slope)),
            median(&values(&|(m, _)| m.final_accuracy)),
        ));
    }
    let comparisons = [
        ("paper3-l1", "deep4-l1", "3 layers learn faster than 4"),
        (
            "relu-deep4-l1",
            "relu-deep4-l2",
            "dense layer 2: early modulation faster than late",
        ),
        (
            "relu-local2-l2",
            "relu-local2-l1",
            "local layer 2: late modulation faster than early",
        ),
    ];
    for (x, y, statement) in comparisons {
        let (Some(ix), Some(iy)) = (by_name(x), by_name(y)) else {
            continue;
        };
        let (ux, uy) = (&units[ix], &units[iy]);
        let shared: Vec<(&String, &VariantUnit, &VariantUnit)> = ux
            .iter()
            .filter_map(|(unit, a)| Some((unit, a, uy.get(unit)?)))
            .collect();
        let baselines = (
            median(&shared.iter().map(|s| s.1.1).collect::<Vec<_>>()),
            median(&shared.iter().map(|s| s.2.1).collect::<Vec<_>>()),
        );
        let matched = match (baselines.0 - baselines.1).abs() > 0.01 {
            true => format!(
                "; baselines differ: pretrained pair accuracy {:.3} vs {:.3}",
                baselines.0, baselines.1
            ),
            false => String::new(),
        };
        for (metric, direction, family) in [
            (
                Metric::Criterion,
                Direction::Less,
                Some(PRIMARY.to_string()),
            ),
            (Metric::Slope, Direction::Greater, None),
        ] {
            let pairs = shared
                .iter()
                .map(|(unit, (a, _), (b, _))| ((*unit).clone(), a, b));
            let sign = match direction {
                Direction::Less => "<",
                Direction::Greater => ">",
            };
            section.claims.push(ClaimRow {
                claim: "(e) Fig. 3".into(),
                statement: format!("{statement} ({} {x} {sign} {y}){matched}", metric.name()),
                setting: format!("{setting}; stochastic; unit (task, pretraining seed)"),
                repeats: repeats(&variants[ix].seeds[0].records),
                starts: Some((
                    median(&shared.iter().map(|s| s.1.0.start).collect::<Vec<_>>()),
                    median(&shared.iter().map(|s| s.2.0.start).collect::<Vec<_>>()),
                )),
                family,
                judgement: judge(&metric_sample(pairs, metric), direction, metric.margin()),
            });
        }
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
        let model = &v.seeds[0].model;
        let arch = model.arch();
        let mut all = Vec::new();
        let mut quadrant = Vec::new();
        for l in 1..arch.depth() {
            let (mut every, mut local) = (Vec::new(), Vec::new());
            for &task in tasks {
                let d = task_d_prime(model, digits, task, l, seed);
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

/// The band of §5 (f): the paper's "about 100–200" examples to recover,
/// widened by a factor 2.
pub const RECOVERY_BAND: (f64, f64) = (50.0, 400.0);
/// Specific-task accuracy a retrained network must reach for its return
/// to count (§5 (f): the criterion).
pub const SWITCH_CRITERION: f64 = 0.70;

/// The band rule of §5 (f) on per-task examples to recover (`None`:
/// censored, entered at `restricted`, the return's length plus one
/// measurement step), `excluded` tasks left out: the median with its
/// distribution-free 95 % interval; `reproduced` when the median lies in
/// [`RECOVERY_BAND`], `contradicted` when the interval lies outside it,
/// `inconclusive` otherwise; fewer than 8 tasks, `not applicable` when
/// the exclusion caused it, else `inconclusive`.
pub fn recovery_judgement(
    recovered: &[Option<usize>],
    restricted: f64,
    excluded: usize,
) -> Judgement {
    let values: Vec<f64> = recovered
        .iter()
        .map(|r| r.map_or(restricted, |e| e as f64))
        .collect();
    let m = median(&values);
    let interval = median_interval(&values);
    let (lo, hi) = RECOVERY_BAND;
    let verdict = if values.len() < MIN_UNITS {
        match excluded > 0 {
            true => Verdict::NotApplicable,
            false => Verdict::Inconclusive,
        }
    } else if (lo..=hi).contains(&m) {
        Verdict::Reproduced
    } else if interval.1 < lo || interval.0 > hi {
        Verdict::Contradicted
    } else {
        Verdict::Inconclusive
    };
    Judgement {
        units: values.len(),
        excluded,
        censored: (recovered.iter().filter(|r| r.is_none()).count(), 0),
        x_median: m,
        y_median: f64::NAN,
        effect: m,
        interval,
        p: f64::NAN,
        p_holm: None,
        side: 0,
        direction: None,
        margin: f64::NAN,
        verdict,
    }
}

/// Fig. 4 (§5 (f)): the general-task accuracy after switching back, per
/// method, and the examples each needs to recover, judged against the
/// paper's "about 100–200".
pub fn fig4(runs: &[SwitchRun], setting: &str, dir: &Path) -> Result<Section> {
    let mut section = Section::default();
    // Only tasks on which the retrained network reached the criterion
    // count (§5 (f)).
    let counted: std::collections::BTreeSet<&str> = runs
        .iter()
        .filter(|r| r.method == Method::Retrain && r.specific_accuracy >= SWITCH_CRITERION)
        .map(|r| r.task.as_str())
        .collect();
    let all_tasks: std::collections::BTreeSet<&str> =
        runs.iter().map(|r| r.task.as_str()).collect();
    let excluded = all_tasks.len() - counted.len();
    section.text.push_str(&format!(
        "Returns counted on the {} of {} tasks where `retrain` reached {SWITCH_CRITERION} on the specific task ({excluded} left out). Recovered: 90 % of the general accuracy lost to the task regained; a return trains at most {RETURN_EXAMPLES} examples (censored beyond).\n\n| method | general accuracy right after the task (mean) | best general accuracy during the return (mean) | examples to recover: median [95 % interval] | censored |\n|---|---|---|---|---|\n",
        counted.len(),
        all_tasks.len()
    ));
    let mut series = Vec::new();
    let pretrained = runs.first().map_or(f64::NAN, |r| r.pretrained);
    let longest = runs
        .iter()
        .filter_map(|r| r.examples.last())
        .max()
        .filter(|&&e| e > 0)
        .map(|&e| e as f64);
    for method in Method::ALL {
        let of: Vec<&SwitchRun> = runs
            .iter()
            .filter(|r| r.method == method && counted.contains(r.task.as_str()))
            .collect();
        let recovered: Vec<Option<usize>> = of.iter().map(|r| r.recovered_at()).collect();
        let restricted = of
            .iter()
            .map(|r| restricted_examples(&r.examples))
            .fold(0.0, f64::max);
        let judgement = recovery_judgement(&recovered, restricted, excluded);
        if matches!(method, Method::Retrain | Method::RetrainLast) {
            section.claims.push(ClaimRow {
                claim: "(f) Fig. 4".into(),
                statement: format!(
                    "{} needs about 100–200 examples to recover the general task: median in [{}, {}] (stochastic and deterministic: 0, by removing c and g)",
                    method.name(),
                    RECOVERY_BAND.0,
                    RECOVERY_BAND.1
                ),
                setting: format!("{setting}; one repeat"),
                repeats: 1,
                starts: None,
                family: Some(PRIMARY.to_string()),
                judgement: judgement.clone(),
            });
        }
        if of.is_empty() {
            continue;
        }
        let first = of.iter().map(|r| r.accuracy[0]).sum::<f64>() / of.len() as f64;
        let shown = |v: f64| match v {
            v if v > RETURN_EXAMPLES as f64 => "censored".to_string(),
            v if v.is_finite() => format!("{v:.0}"),
            _ => "–".to_string(),
        };
        let best = of
            .iter()
            .map(|r| r.accuracy.iter().copied().fold(f64::NEG_INFINITY, f64::max))
            .sum::<f64>()
            / of.len() as f64;
        section.text.push_str(&format!(
            "| {} | {first:.3} | {best:.3} | {} [{}, {}] | {} |\n",
            method.name(),
            shown(judgement.x_median),
            shown(judgement.interval.0),
            shown(judgement.interval.1),
            judgement.censored.0
        ));
        // The mean curve over the counted tasks, each run held at its
        // last measurement once it has recovered.
        let len = of.iter().map(|r| r.accuracy.len()).max().unwrap_or(0);
        let at = |r: &SwitchRun, i: usize| r.accuracy[i.min(r.accuracy.len() - 1)];
        let mut points: Vec<(f64, f64)> = (0..len)
            .map(|i| {
                let x = of
                    .iter()
                    .find(|r| r.examples.len() > i)
                    .map_or(0.0, |r| r.examples[i] as f64);
                (
                    x,
                    of.iter().map(|r| at(r, i)).sum::<f64>() / of.len() as f64,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(recovered: &[Option<usize>], excluded: usize) -> Verdict {
        recovery_judgement(recovered, 4010.0, excluded).verdict
    }

    #[test]
    fn the_band_rule_of_fig_4() {
        // Medians inside [50, 400]: the paper's "about 100–200".
        let inside: Vec<Option<usize>> = (0..10).map(|i| Some(100 + 20 * i)).collect();
        assert_eq!(verdict(&inside, 0), Verdict::Reproduced);
        // Every return censored: the median and its whole interval at the
        // restricted value, far outside the band.
        let censored = vec![None; 16];
        let j = recovery_judgement(&censored, 4010.0, 0);
        assert_eq!(
            (j.verdict, j.x_median, j.censored.0),
            (Verdict::Contradicted, 4010.0, 16)
        );
        // Quick, but below the band on every task.
        assert_eq!(verdict(&[Some(10); 12], 0), Verdict::Contradicted);
        // A median outside the band whose interval reaches into it.
        let wide: Vec<Option<usize>> = [20, 30, 30, 40, 40, 45, 500, 600, 700, 800]
            .map(Some)
            .to_vec();
        assert_eq!(verdict(&wide, 0), Verdict::Inconclusive);
        // Too few counted tasks: because some were left out, or not.
        assert_eq!(verdict(&inside[..7], 3), Verdict::NotApplicable);
        assert_eq!(verdict(&inside[..7], 0), Verdict::Inconclusive);
    }
}
