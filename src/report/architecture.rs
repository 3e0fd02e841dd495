//! The architecture study of §8 (the abstract's question, run on the
//! shipped benchmarks): the modulated stage (first or second conv stage)
//! × the backbone's width (channels ×½, ×1, ×2), each pretrained under
//! `held-out` and fine-tuned on the held-out tasks; compared by final
//! accuracy and examples to criterion, with stochastic against
//! deterministic judged per variant (exploratory).

use std::fmt::Write;
use std::path::Path;

use plotters::style::RGBColor;

use crate::analysis::figures::{Series, curves};
use crate::analysis::metrics::{Stat, TaskMetrics, per_task};
use crate::analysis::plots::colour;
use crate::analysis::verdict::Direction;
use crate::conv::ConvArch;
use crate::data::Digits;
use crate::error::Result;
use crate::observer::Observer;
use crate::report::ReportOptions;
use crate::report::analyses::Section;
use crate::report::claims::{MethodClaim, Metric, method_claims};
use crate::report::multitask::{Pretrained, load, pretrain_all, pretrain_like, sweep_cell};
use crate::sweep::record::Record;
use crate::train::options::Protocol;
use crate::train::{Method, Transfer};

/// The widths studied: channel factors of every conv stage.
pub const WIDTHS: [f64; 3] = [0.5, 1.0, 2.0];
/// The modulated conv stages studied, counted over the conv stages.
pub const MODULATED_CONVS: [usize; 2] = [1, 2];

/// What is judged per variant: stochastic against deterministic.
const VARIANT_CLAIMS: [MethodClaim; 2] = [
    (
        "§8 architecture",
        Metric::Final,
        Method::Stochastic,
        Method::Deterministic,
        Direction::Greater,
    ),
    (
        "§8 architecture",
        Metric::Criterion,
        Method::Stochastic,
        Method::Deterministic,
        Direction::Less,
    ),
];

/// One variant's results.
struct Variant {
    modulated_conv: usize,
    width: f64,
    channels: usize,
    epochs: usize,
    pretrained: f64,
    records: Vec<Record<ConvArch>>,
}

/// One variant to pretrain and fine-tune.
struct Plan {
    modulated_conv: usize,
    width: f64,
    arch: ConvArch,
    /// Its network's name in the report folder.
    net_name: String,
    /// Its results file's name.
    cell: String,
    /// The repeats its cell runs.
    cell_repeats: usize,
}

/// A variant's checkpoint and results name; the preset itself is the
/// report's `held-out` network and cell.
fn variant_name(benchmark: &str, modulated_conv: usize, width: f64) -> Option<String> {
    (modulated_conv != 1 || width != 1.0)
        .then(|| format!("{benchmark}-conv{modulated_conv}-w{width}"))
}

/// Runs (or resumes) the study's variants on the scale's benchmarks and
/// builds its part of the §8 section; `None` for a shard.
pub fn architecture_study(
    options: &ReportOptions,
    digits: &Digits,
    observer: &dyn Observer,
    figures: &Path,
) -> Result<Option<Section>> {
    let (main_repeats, repeats) = (
        options.scale.tasks().1,
        options.scale.architecture_repeats(),
    );
    let mut section = Section::default();
    for &benchmark in options.scale.architecture_benchmarks() {
        let data = load(benchmark, digits, options)?;
        let preset = ConvArch::preset(benchmark.default_arch(), data.task_count())?;
        let held_out = format!("{}-{}", benchmark.name(), Transfer::HeldOut.name());
        let mut plans = Vec::new();
        for modulated_conv in MODULATED_CONVS {
            for width in WIDTHS {
                let arch = preset.variant(width, Some(modulated_conv))?;
                let (net_name, cell, cell_repeats) =
                    match variant_name(benchmark.name(), modulated_conv, width) {
                        Some(name) => (name.clone(), format!("architecture-{name}"), repeats),
                        // The preset: the main held-out cell, its first repeats.
                        None => (
                            held_out.clone(),
                            format!("multitask-{held_out}-online"),
                            main_repeats,
                        ),
                    };
                plans.push(Plan {
                    modulated_conv,
                    width,
                    arch,
                    net_name,
                    cell,
                    cell_repeats,
                });
            }
        }
        // A backbone modulated at the other stage is the network of the
        // first plan that pretraining trains alike (`ConvArch::pretrains_as`):
        // pretrained once, written under both names.
        let first_alike: Vec<usize> = (0..plans.len())
            .map(|i| {
                (0..i)
                    .find(|&j| plans[j].arch.pretrains_as(&plans[i].arch))
                    .unwrap_or(i)
            })
            .collect();
        let networks: Vec<_> = (plans.iter().enumerate())
            .filter(|&(i, _)| first_alike[i] == i)
            .map(|(_, plan)| (&plan.arch, plan.net_name.clone(), Transfer::HeldOut))
            .collect();
        let mut distinct = pretrain_all(options, &data, &networks, observer)?.into_iter();
        let mut pretrained: Vec<Pretrained> = Vec::with_capacity(plans.len());
        for (i, (plan, &first)) in plans.iter().zip(&first_alike).enumerate() {
            let net = if first == i {
                distinct
                    .next()
                    .expect("a network per plan pretrained alike")
            } else {
                pretrain_like(
                    options,
                    &data,
                    (&plan.arch, &plan.net_name),
                    Transfer::HeldOut,
                    observer,
                    Some(&pretrained[first]),
                )?
            };
            pretrained.push(net);
        }
        let mut variants = Vec::new();
        for (plan, net) in plans.iter().zip(&pretrained) {
            let run = (Transfer::HeldOut, Protocol::Online);
            let tasks = (data.held_out.clone(), plan.cell_repeats);
            let Some(records) =
                sweep_cell(options, (&data, net), run, tasks, &plan.cell, observer)?
            else {
                continue;
            };
            variants.push(Variant {
                modulated_conv: plan.modulated_conv,
                width: plan.width,
                channels: plan.arch.modulated_channels(),
                epochs: net.provenance.epochs,
                pretrained: net.provenance.heldout_accuracy,
                records: records.into_iter().filter(|r| r.repeat < repeats).collect(),
            });
        }
        if options.shard.count > 1 {
            continue;
        }
        for v in &variants {
            let setting = format!(
                "§8 {} held-out online, conv {} modulated, width ×{}",
                benchmark.name(),
                v.modulated_conv,
                v.width
            );
            section
                .claims
                .extend(method_claims(&v.records, &setting, None, &VARIANT_CLAIMS));
        }
        section.text += &table(benchmark.name(), &variants, repeats);
        let path = figures.join(format!("multitask_architecture_{}.png", benchmark.name()));
        figure(&path, benchmark.name(), &variants)?;
        section.figures.push((
            path,
            format!(
                "Architecture study on {} (held-out, online): final accuracy, mean over the held-out tasks, against the width factor; solid colours modulate the first conv stage, pale ones the second (§8).",
                benchmark.name()
            ),
        ));
    }
    Ok((options.shard.count == 1).then_some(section))
}

/// Mean over tasks of `f` of `method`'s metrics.
fn mean_of(records: &[Record<ConvArch>], method: Method, f: impl Fn(&TaskMetrics) -> f64) -> f64 {
    let table = per_task(records);
    Stat::of(table.values().filter_map(|by| by.get(&method)).map(f)).mean
}

/// The study's table: per variant, its pretraining and per method the
/// final accuracy and examples to criterion (restricted mean) over tasks.
fn table(benchmark: &str, variants: &[Variant], repeats: usize) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "\n**{benchmark} architecture study (held-out, online, {repeats} repeat(s) per task).** Per method: final accuracy / examples to criterion (restricted mean over the held-out tasks).\n"
    );
    let _ = writeln!(
        md,
        "| modulated conv | width | channels modulated | pretraining (epochs, accuracy) | {} |",
        Method::ALL.map(Method::name).join(" | ")
    );
    let _ = writeln!(md, "|---|---|---|---|{}", "---|".repeat(Method::ALL.len()));
    for v in variants {
        let cells: Vec<String> = Method::ALL
            .iter()
            .map(|&m| {
                let accuracy = mean_of(&v.records, m, |t| t.final_accuracy);
                let criterion = mean_of(&v.records, m, |t| t.criterion.restricted());
                format!("{accuracy:.3} / {criterion:.0}")
            })
            .collect();
        let _ = writeln!(
            md,
            "| {} | ×{} | {} | {}, {:.3} | {} |",
            v.modulated_conv,
            v.width,
            v.channels,
            v.epochs,
            v.pretrained,
            cells.join(" | ")
        );
    }
    md
}

/// Final accuracy against log₂ width, a curve per method and modulated
/// stage (the second stage's paler).
fn figure(path: &Path, benchmark: &str, variants: &[Variant]) -> Result<()> {
    let mut series = Vec::new();
    for conv in MODULATED_CONVS {
        for method in Method::ALL {
            let RGBColor(r, g, b) = colour(method);
            let pale = |c: u8| ((c as u16 + 2 * 255) / 3) as u8;
            let colour = match conv {
                1 => RGBColor(r, g, b),
                _ => RGBColor(pale(r), pale(g), pale(b)),
            };
            let points = (variants.iter().filter(|v| v.modulated_conv == conv))
                .map(|v| {
                    (
                        v.width.log2(),
                        mean_of(&v.records, method, |t| t.final_accuracy),
                    )
                })
                .collect();
            series.push(Series {
                label: format!("{}, conv {conv}", method.name()),
                colour,
                points,
            });
        }
    }
    curves(
        path,
        &format!("{benchmark}: architecture study"),
        ("log2 width factor", "final accuracy"),
        &series,
        None,
    )
}
