//! The text of `report.md`: header (version, scale, wall time), the
//! verdict table, each cell's configuration, and the analyses with their
//! figures linked relative to the report.

use std::fmt::Write;

use crate::analysis::summary::summarize;
use crate::analysis::verdict::Judgement;
use crate::report::ReportOptions;
use crate::report::analyses::Section;
use crate::report::claims::ClaimRow;
use crate::report::plan::{
    Cell, QUICK_PRIMARY_TASKS, QUICK_REPEATS, QUICK_SIZES, QUICK_SWITCHING_TASKS, QUICK_TASKS,
    Scale,
};
use crate::sweep::record::Record;

/// The verdict rule as the report states it (§5).
pub const RULE: &str = "Claims and rule (§5 of docs/model.md). The unit is the task, and at full scale the digit pair (its 4 quadrants are not independent: a pair's value is the mean over them); Fig. 3's unit is (task, pretraining seed). Per unit the mean over repeats of each metric; examples to criterion the median, a censored run counting as its restricted value (the run's length plus one measurement step), with the censored units of X/Y counted. A claim \"X vs Y\" is tested by the exact two-sided Wilcoxon signed-rank test of the per-unit differences; the effect is the Hodges–Lehmann estimate (median of the Walsh averages) with its exact 95 % interval. Equivalence margin: ±0.01 for accuracies, ±10 % of Y's median for slopes and examples, ±0.1 for a rank correlation. Verdicts, in this order: `not applicable` (fewer than 8 units left after a claim's exclusions, or Y's median 0 or not finite under a relative margin); `inconclusive` (fewer than 8 units); `negligible` (the interval inside the margin, whatever p); `reproduced` (p < 0.05 in the claimed direction); `contradicted` (p < 0.05 against it); `inconclusive` otherwise. p is Holm-corrected within the family `primary` (the claims of the primary cell `spec, all, online` and the analyses run in it) and within each separate sample of that cell; every other row is exploratory, its p uncorrected. Fig. 4 is judged by its band: the median examples to recover in [50, 400] (the paper's 100–200 widened by a factor 2) `reproduced`, its 95 % interval outside it `contradicted`.";

/// "reading, readout, protocol" of a cell.
pub fn setting(cell: &Cell) -> String {
    format!(
        "{}, {}, {}",
        cell.reading.name(),
        cell.readout.name(),
        cell.protocol.name()
    )
}

/// `text` safe inside a Markdown table cell (|d′| has bars).
fn cell(text: &str) -> String {
    text.replace('|', "\\|")
}

/// A number for the table: three significant digits, ∞ for an unbounded
/// interval end, – for none.
fn number(v: f64) -> String {
    if v.is_infinite() {
        if v > 0.0 {
            "∞".into()
        } else {
            "−∞".into()
        }
    } else if v.is_nan() {
        "–".into()
    } else if v != 0.0 && (v.abs() < 1e-2 || v.abs() >= 1e4) {
        format!("{v:.2e}")
    } else {
        format!("{v:.3}")
    }
}

/// A p-value as the table shows it: the one the verdict used, Holm's
/// where the row has a family (with the raw p beside it), "–" for a band
/// rule.
fn p_value(j: &Judgement) -> String {
    let show = |p: f64| match p {
        p if p < 1e-4 => "<1e-4".to_string(),
        p => format!("{p:.4}"),
    };
    match (j.p.is_nan(), j.p_holm) {
        (true, _) => "–".into(),
        (false, Some(holm)) => format!("{} (Holm; raw {})", show(holm), show(j.p)),
        (false, None) => format!("{} (uncorrected)", show(j.p)),
    }
}

/// Units, with the censored on each side and the tasks left out where any.
fn units(j: &Judgement) -> String {
    let mut text = j.units.to_string();
    if j.censored != (0, 0) {
        let _ = write!(text, "; censored {}/{}", j.censored.0, j.censored.1);
    }
    if j.excluded > 0 {
        let _ = write!(text, "; {} left out", j.excluded);
    }
    text
}

fn judgement_cells(j: &Judgement) -> String {
    format!(
        "{} | {} | {} | {} [{}, {}] | {} | **{}**",
        units(j),
        number(j.x_median),
        number(j.y_median),
        number(j.effect),
        number(j.interval.0),
        number(j.interval.1),
        p_value(j),
        j.verdict.word()
    )
}

/// The starting accuracy of each method in `records`: the mean over
/// tasks, as `comod summary` reports it.
fn starts(records: &[Record]) -> String {
    summarize(records)
        .iter()
        .map(|row| format!("{} {:.3}", row.method.name(), row.start.mean))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The method claims of each reading and readout under `online` and
/// `dataset` side by side (§4, §5), where both ran.
fn protocols(md: &mut String, cells: &[(Cell, Vec<Record>)], claims: &[ClaimRow]) {
    let mut rows = Vec::new();
    for (dataset, _) in cells.iter().filter(|(c, _)| c.protocol.name() == "dataset") {
        let Some((online, _)) = cells.iter().find(|(c, _)| {
            c.protocol.name() == "online"
                && c.reading == dataset.reading
                && c.readout == dataset.readout
        }) else {
            continue;
        };
        let (on, off) = (setting(online), setting(dataset));
        for a in claims.iter().filter(|c| c.setting == on) {
            if let Some(b) = claims
                .iter()
                .find(|c| c.setting == off && c.statement == a.statement)
            {
                let judged = |j: &Judgement| {
                    format!(
                        "{} [{}, {}], p {}: **{}**",
                        number(j.effect),
                        number(j.interval.0),
                        number(j.interval.1),
                        p_value(j),
                        j.verdict.word()
                    )
                };
                rows.push(format!(
                    "| {} | {}, {} | {} | {} |",
                    cell(&a.statement),
                    online.reading.name(),
                    online.readout.name(),
                    judged(&a.judgement),
                    judged(&b.judgement)
                ));
            }
        }
    }
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(md, "\n## Protocols side by side\n");
    let _ = writeln!(
        md,
        "The same claims under `online` (one pass, 500 examples) and `dataset` (sizes trained to the lowest validation loss; its x axis is the data-set size): effect [95 % interval], p and verdict.\n"
    );
    let _ = writeln!(
        md,
        "| statement | reading, readout | online | dataset |\n|---|---|---|---|"
    );
    for row in rows {
        let _ = writeln!(md, "{row}");
    }
}

/// The whole report.
pub fn report(
    options: &ReportOptions,
    cells: &[(Cell, Vec<Record>)],
    claims: &[ClaimRow],
    sections: &[(String, Section)],
    seconds: f64,
) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# comod reproduction report\n");
    let _ = writeln!(
        md,
        "comod {}, scale `{}`, seed {}, wall time {:.0} s ({:.1} min) on {} threads.\n",
        env!("CARGO_PKG_VERSION"),
        options.scale.name(),
        options.seed,
        seconds,
        seconds / 60.0,
        rayon::current_num_threads()
    );
    if options.scale == Scale::Quick {
        let _ = writeln!(
            md,
            "**Quick report:** {QUICK_TASKS} tasks (8 digit pairs) × {QUICK_REPEATS} repeats per `online` cell, {QUICK_PRIMARY_TASKS} tasks (16 pairs) in the primary cell, the Fig. 3 variants and Fashion-MNIST (with 8 units no claim of the 15 in the primary family could pass Holm's correction); one `dataset` cell (`spec`, `all`) with {QUICK_SIZES} sizes and one repeat; the Fig. 3 variants from one pretraining seed each; {QUICK_SWITCHING_TASKS} tasks of task switching. The verdict rule needs at least 8 units, so the exploratory cells rest on the minimum: treat verdicts as a first look, and run `comod report --full` for the paper's scale (45 digit pairs, 10 repeats, 3 pretraining seeds per variant).\n"
        );
    }
    let _ = writeln!(md, "{}\n", RULE);
    let _ = writeln!(md, "## Verdicts\n");
    let _ = writeln!(
        md,
        "| claim | statement (X vs Y) | setting | family | repeats | start X / Y | units | X (median) | Y (median) | effect [95 % interval] | p | verdict |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|---|---|---|");
    for c in claims {
        let starts = c
            .starts
            .map_or_else(|| "–".to_string(), |(x, y)| format!("{x:.3} / {y:.3}"));
        let family = c.family.as_deref().unwrap_or("exploratory");
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {starts} | {} |",
            c.claim,
            cell(&c.statement),
            cell(&c.setting),
            cell(family),
            c.repeats,
            judgement_cells(&c.judgement)
        );
    }
    protocols(&mut md, cells, claims);
    let _ = writeln!(md, "\n## Cells: configuration and starting accuracy\n");
    let _ = writeln!(
        md,
        "The starting accuracy (measurement 0) of each method, beside the slopes above: the gain changes it, and a lower start inflates a slope.\n"
    );
    let _ = writeln!(md, "| cell | runs | starting accuracy (mean) | flags |");
    let _ = writeln!(md, "|---|---|---|---|");
    for (cell, records) in cells {
        let flags: Vec<String> = cell
            .config()
            .flags()
            .into_iter()
            .map(|(f, v)| format!("{f} {v}"))
            .collect();
        let _ = writeln!(
            md,
            "| {} | {} | {} | `{}` |",
            setting(cell),
            records.len(),
            starts(records),
            flags.join(" ")
        );
    }
    for (title, section) in sections {
        let _ = writeln!(md, "\n## {title}\n");
        if !section.text.is_empty() {
            let _ = writeln!(md, "{}", section.text);
        }
        for (path, caption) in &section.figures {
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            let _ = writeln!(md, "![{caption}](figures/{name})\n\n*{caption}*\n");
        }
    }
    let _ = writeln!(
        md,
        "\n## Files\n\nRuns: `runs/{}/` (one results file per cell and variant; a second report of the same folder reuses them). Checkpoints: `pretrained.safetensors`, `checkpoints/{}/`. Model and readings: docs/model.md of comod.",
        options.scale.name(),
        options.scale.name()
    );
    md
}
