//! The §8 section of `comod report`: the `mnist-attributes` benchmark on
//! the shipped digits, its convolutional network pretrained jointly (or
//! the report folder's checkpoint reused), the four methods fine-tuned on
//! every task, and the method claims judged on its tasks.

use std::fmt::Write;
use std::path::Path;

use crate::analysis::metrics::per_task;
use crate::analysis::plots::{learning_curves, task_curves};
use crate::conv::ConvArch;
use crate::conv::checkpoint::ConvProvenance;
use crate::data::Digits;
use crate::data::benchmark::{Benchmark, BenchmarkData};
use crate::error::Result;
use crate::train::joint::MultitaskPretrainOptions;

use crate::observer::Observer;
use crate::pretrained::pretrained_conv;
use crate::report::analyses::Section;
use crate::report::claims::method_claims;
use crate::report::{ReportOptions, join_shards, results_path};
use crate::sweep::record::{Record, SweepConfig};
use crate::sweep::store::read_results;
use crate::sweep::{SweepSpec, run_sweep};
use crate::train::{BenchmarkTasks, FinetuneConfig, Frozen, Method};

/// The section's title.
pub const TITLE: &str = "§8: multi-task fine-tuning (mnist-attributes)";

/// Runs (or resumes) what the section needs and builds it; `None` for a
/// shard (its runs are made, the report is written later).
pub fn multitask_section(
    options: &ReportOptions,
    digits: &Digits,
    observer: &dyn Observer,
    figures: &Path,
) -> Result<Option<Section>> {
    let data = BenchmarkData::mnist_attributes(digits.clone());
    let benchmark = Benchmark::MnistAttributes;
    let checkpoint = options
        .out
        .join("checkpoints")
        .join(options.scale.name())
        .join("conv-mnist.safetensors");
    let defaults = MultitaskPretrainOptions::DEFAULT;
    let pretrain_options = MultitaskPretrainOptions {
        seed: options.seed,
        max_epochs: options
            .scale
            .pretrain_cap()
            .map_or(defaults.max_epochs, |cap| cap.min(defaults.max_epochs)),
        ..defaults
    };
    let (net, provenance) = pretrained_conv(&checkpoint, &data, &pretrain_options, observer)?;
    let path = results_path(
        &options.out,
        options.scale,
        "multitask-mnist-attributes",
        options.shard,
    );
    if options.shard.count == 1 {
        join_shards::<ConvArch>(&path, options.partial)?;
    }
    observer.stage("sweep multitask-mnist-attributes");
    let config = SweepConfig::new(
        &checkpoint,
        net.arch().clone(),
        (data.sha256(), Some(benchmark)),
        options.scale.trim(FinetuneConfig::DEFAULT),
        options.seed,
    )?;
    let spec = SweepSpec {
        tasks: (0..data.task_count()).collect(),
        methods: Method::ALL.to_vec(),
        repeats: options.scale.tasks().1,
        shard: options.shard,
        record_coupling: false,
        config,
    };
    let frozen = Frozen::new(net);
    let study = BenchmarkTasks {
        frozen: &frozen,
        data: &data,
    };
    run_sweep(&study, &spec, &path, |done, total| {
        observer.sweep_progress(done, total)
    })?;
    if options.shard.count > 1 {
        return Ok(None);
    }
    let records: Vec<Record<ConvArch>> = read_results::<ConvArch>(&path)?
        .records
        .into_values()
        .collect();
    let setting = format!(
        "multi-task mnist-attributes (§8), {} tasks, spec, online",
        data.task_count()
    );
    let mut section = Section::default();
    for mut row in method_claims(&records, &setting, None) {
        row.claim = format!("§8 {}", row.claim);
        section.claims.push(row);
    }
    let curves = figures.join("multitask_learning_curves.png");
    learning_curves(&records, &curves)?;
    section.figures.push((curves, "Multi-task learning curves on mnist-attributes: mean ± s.e.m. over tasks and repeats (§8).".into()));
    let per_task_curves = figures.join("multitask_task_curves.png");
    task_curves(&records, &per_task_curves)?;
    section.figures.push((
        per_task_curves,
        "Multi-task learning curves per task (mean over repeats).".into(),
    ));
    section.text = table(&records, &provenance, spec.repeats);
    Ok(Some(section))
}

/// The pretraining line and the per-task table: starting and final
/// accuracy of each method, and their mean over tasks.
fn table(records: &[Record<ConvArch>], provenance: &ConvProvenance, repeats: usize) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "The `conv-mnist` network (conv 3×3 8 → pool → conv 3×3 16 → pool → dense 128 → 8 binary heads), modulated per channel at its first conv stage, was pretrained on all 8 tasks jointly for {} epochs (held-out mean accuracy {:.3}); each task was then fine-tuned from it with each method, {repeats} repeats, `online` protocol, §4 rates. Accuracy: start (measurement 0) → final, mean over repeats.\n",
        provenance.epochs, provenance.heldout_accuracy
    );
    let table = per_task(records);
    let _ = writeln!(
        md,
        "| task | {} |",
        Method::ALL.map(Method::name).join(" | ")
    );
    let _ = writeln!(md, "|---|{}", "---|".repeat(Method::ALL.len()));
    let mut sums = [(0.0, 0.0, 0usize); 4];
    for (task, methods) in &table {
        let cells: Vec<String> = Method::ALL
            .iter()
            .enumerate()
            .map(|(i, m)| match methods.get(m) {
                Some(t) => {
                    sums[i] = (
                        sums[i].0 + t.start,
                        sums[i].1 + t.final_accuracy,
                        sums[i].2 + 1,
                    );
                    format!("{:.3} → {:.3}", t.start, t.final_accuracy)
                }
                None => "–".into(),
            })
            .collect();
        let _ = writeln!(md, "| {task} | {} |", cells.join(" | "));
    }
    let means: Vec<String> = sums
        .iter()
        .map(|&(s, f, n)| {
            if n == 0 {
                "–".into()
            } else {
                format!("**{:.3} → {:.3}**", s / n as f64, f / n as f64)
            }
        })
        .collect();
    let _ = writeln!(md, "| mean over tasks | {} |", means.join(" | "));
    md
}
