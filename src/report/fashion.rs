//! The report's second data set (§1, §5): Fashion-MNIST in the digits'
//! format and tasks (`a-b@q` with clothing classes a < b), a network
//! pretrained on its general task, the four methods on the report's tasks
//! under the primary cell, and the headline claims (b), (c) and final
//! accuracy judged on it as their own Holm family.

use std::fmt::Write;
use std::path::Path;

use crate::analysis::plots::learning_curves;
use crate::analysis::summary::summarize;
use crate::data::Digits;
use crate::error::Result;
use crate::net::Arch;
use crate::net::arch::DEFAULT_PRESET;
use crate::pretrained::pretrained;
use crate::report::analyses::Section;
use crate::report::claims::{PAPER_CLAIMS, PRIMARY, method_claims};
use crate::report::markdown;
use crate::report::plan::{Cell, pretrain_options};
use crate::report::{Sweeps, checkpoint_path};
use crate::train::{Frozen, Method, general_accuracy};

/// The section's title.
pub const TITLE: &str = "Fashion-MNIST: the headline claims on a second data set";

/// Fashion-MNIST's class names, by label (§1).
pub const CLASSES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

/// Runs (or resumes) the Fashion-MNIST sweep of the primary `cell` on
/// `fashion` and builds the section; `None` for a shard.
pub(crate) fn fashion_section(
    sweeps: &Sweeps,
    fashion: &Digits,
    cell: &Cell,
    figures: &Path,
) -> Result<Option<Section>> {
    let (options, observer) = (sweeps.options, sweeps.observer);
    let checkpoint = checkpoint_path(
        &options.out,
        options.scale,
        "fashion-pretrained.safetensors",
    );
    let pretrain_options = pretrain_options(options.scale, options.seed);
    observer.stage("pretrain fashion");
    let arch = Arch::preset(DEFAULT_PRESET, 1)?;
    let frozen = Frozen::new(pretrained(
        &checkpoint,
        &arch,
        &pretrain_options,
        fashion,
        observer,
    )?);
    let on_fashion = Sweeps {
        digits: fashion,
        ..*sweeps
    };
    let records = on_fashion.run(
        (&frozen, &checkpoint),
        &format!("fashion-{}", cell.name()),
        cell,
        &Method::ALL,
    )?;
    if options.shard.count > 1 {
        return Ok(None);
    }
    let setting = format!("{}; Fashion-MNIST", markdown::setting(cell));
    let family = format!("{PRIMARY}: Fashion-MNIST");
    let mut section = Section::default();
    for mut row in method_claims(&records, &setting, Some(&family), &PAPER_CLAIMS) {
        row.claim = format!("Fashion {}", row.claim);
        section.claims.push(row);
    }
    let general = general_accuracy(&frozen.net, fashion, options.seed);
    let mut text = format!(
        "The paper's 3-layer network pretrained on Fashion-MNIST's general task (one item in a random quadrant, 10-way) exactly as on the digits (§4: to 0.90 held out or 200 epochs): held-out 10-way accuracy {general:.3}. Tasks `a-b@q` as the digits' with clothing classes (0 {}, 1 {}, 2 {}, 3 {}, 4 {}, 5 {}, 6 {}, 7 {}, 8 {}, 9 {}); the report's tasks, the primary cell's settings, all four methods. Per method, over tasks:\n\n| method | tasks | starting accuracy | final accuracy | examples to criterion (restricted mean) | censored tasks |\n|---|---|---|---|---|---|\n",
        CLASSES[0],
        CLASSES[1],
        CLASSES[2],
        CLASSES[3],
        CLASSES[4],
        CLASSES[5],
        CLASSES[6],
        CLASSES[7],
        CLASSES[8],
        CLASSES[9],
    );
    for row in summarize(&records) {
        let _ = writeln!(
            text,
            "| {} | {} | {:.3} | {:.3} | {:.0} | {} |",
            row.method.name(),
            row.tasks,
            row.start.mean,
            row.final_accuracy.mean,
            row.examples_to_criterion.mean,
            row.censored_tasks
        );
    }
    section.text = text;
    let curves = figures.join("fashion_learning_curves.png");
    learning_curves(&records, &curves)?;
    section.figures.push((
        curves,
        format!("Learning curves on Fashion-MNIST under {setting} (mean ± s.e.m. over units)."),
    ));
    Ok(Some(section))
}
