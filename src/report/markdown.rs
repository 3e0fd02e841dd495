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
    Cell, QUICK_REPEATS, QUICK_SIZES, QUICK_TASKS, QUICK_VARIANT_EPOCHS, Scale,
};
use crate::sweep::record::Record;

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

/// A number for the table: ∞ for a censored value, three significant digits.
fn number(v: f64) -> String {
    if v.is_infinite() {
        if v > 0.0 {
            "censored".into()
        } else {
            "−censored".into()
        }
    } else if v.is_nan() {
        "–".into()
    } else if v != 0.0 && (v.abs() < 1e-2 || v.abs() >= 1e4) {
        format!("{v:.2e}")
    } else {
        format!("{v:.3}")
    }
}

fn judgement_cells(j: &Judgement) -> String {
    format!(
        "{} | {} | {} | {} [{}, {}] | {} | **{}**",
        j.tasks,
        number(j.x_median),
        number(j.y_median),
        number(j.effect),
        number(j.interval.0),
        number(j.interval.1),
        if j.p < 1e-4 {
            "<1e-4".to_string()
        } else {
            format!("{:.4}", j.p)
        },
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
                        "{} [{}, {}], p {:.3}: **{}**",
                        number(j.effect),
                        number(j.interval.0),
                        number(j.interval.1),
                        j.p,
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
            "**Quick report:** {QUICK_TASKS} tasks × {QUICK_REPEATS} repeats per `online` cell; one `dataset` cell (`spec`, `all`) with {QUICK_SIZES} sizes and one repeat; the Fig. 3 variants pretrained for at most {QUICK_VARIANT_EPOCHS} epochs. The verdict rule needs at least 8 tasks, so every claim here rests on the minimum: treat verdicts as a first look, and run `comod report --full` for the paper's scale.\n"
        );
    }
    let _ = writeln!(
        md,
        "Claims and rule: each claim \"X vs Y\" is judged over tasks (per task the mean over repeats; examples to criterion the median, censored counting as largest) by a two-sided Wilcoxon signed-rank test of the per-task differences, with the median difference (effect) and its 95 % bootstrap interval. `reproduced`: p < 0.05 in the claimed direction; `not reproduced`: p < 0.05 against it, or the interval inside the equivalence margin (accuracy ±0.01, slope and examples ±10 % of Y); `inconclusive` otherwise or with fewer than 8 tasks.\n"
    );
    let _ = writeln!(md, "## Verdicts\n");
    let _ = writeln!(
        md,
        "| claim | statement (X vs Y) | setting | repeats | start X / Y | tasks | X (median) | Y (median) | effect [95 % interval] | p | verdict |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|---|---|");
    for c in claims {
        let starts = c
            .starts
            .map_or_else(|| "–".to_string(), |(x, y)| format!("{x:.3} / {y:.3}"));
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {starts} | {} |",
            c.claim,
            cell(&c.statement),
            cell(&c.setting),
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
