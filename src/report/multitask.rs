//! The §8 section of `comod report`: the shipped multi-task benchmarks
//! (`mnist-attributes`, `fashion-attributes`) under both transfer
//! protocols, each network pretrained (or the report folder's checkpoint
//! reused) and fine-tuned with the four methods; per benchmark and
//! protocol the per-task table, the learning curves and the method claims
//! judged; the `joint` headroom ([`super::headroom`]) and the
//! architecture study ([`super::architecture`]).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;
use std::path::{Path, PathBuf};

use crate::analysis::metrics::per_task;
use crate::analysis::plots::learning_curves;
use crate::conv::checkpoint::ConvProvenance;
use crate::conv::{ConvArch, ConvNet};
use crate::data::benchmark::{Benchmark, BenchmarkData};
use crate::data::{Digits, TaskId};
use crate::error::Result;
use crate::net::linalg::one_job_per_thread;
use crate::observer::Observer;
use crate::pretrained::pretrained_conv;
use crate::report::analyses::Section;
use crate::report::architecture::architecture_study;
use crate::report::claims::{ClaimRow, HEAD_ONLY_CLAIMS, PAPER_CLAIMS, method_claims};
use crate::report::headroom::{Gain, Headroom, headroom};
use crate::report::plan::Scale;
use crate::report::{ReportOptions, checkpoint_path, join_shards, results_path};
use crate::sweep::record::{Record, SweepConfig};
use crate::sweep::store::read_results;
use crate::sweep::{SweepSpec, run_sweep};
use crate::train::joint::MultitaskPretrainOptions;
use crate::train::options::Protocol;
use crate::train::{BenchmarkTasks, Frozen, Method, Reading, Transfer};

/// The section's title.
pub const TITLE: &str = "§8: multi-task transfer (mnist-attributes, fashion-attributes)";

/// What the section says of the benchmarks it does not run.
const NOT_RUN: &str = "\nCelebA and CIFAR-100 were not run: their data do not ship with comod and cannot be downloaded where it is built. Their loaders are tested on small files in exactly their formats; the README gives the commands, the time and the memory to run them.\n";

/// The benchmarks the report runs: the shipped ones.
pub const BENCHMARKS: [Benchmark; 2] = [Benchmark::MnistAttributes, Benchmark::FashionAttributes];

/// A network pretrained for the report (§8), with its checkpoint.
pub struct Pretrained {
    /// The network.
    pub net: ConvNet<f32>,
    /// How it was pretrained.
    pub provenance: ConvProvenance,
    /// Its checkpoint in the report folder.
    pub checkpoint: PathBuf,
}

/// The report's pretraining of `arch` on `data` for `transfer`, saved as
/// `name` in the report folder (or reused from there): to convergence,
/// within the default epoch cap (the scale's, if lower).
pub fn pretrain(
    options: &ReportOptions,
    data: &BenchmarkData,
    (arch, name): (&ConvArch, &str),
    transfer: Transfer,
    observer: &dyn Observer,
) -> Result<Pretrained> {
    pretrain_like(options, data, (arch, name), transfer, observer, None)
}

/// [`pretrain`], where `like` (when given) may be a network of this report
/// that pretraining trains as it would one of `arch` (the same backbone
/// modulated at another stage, [`ConvArch::pretrains_as`]): that network,
/// written as `name`, instead of a pretraining that would give the same
/// bits.
pub fn pretrain_like(
    options: &ReportOptions,
    data: &BenchmarkData,
    (arch, name): (&ConvArch, &str),
    transfer: Transfer,
    observer: &dyn Observer,
    like: Option<&Pretrained>,
) -> Result<Pretrained> {
    let file = format!("{name}.safetensors");
    let checkpoint = checkpoint_path(&options.out, options.scale, &file);
    let pretrain_options = pretrain_options(options, transfer);
    let source = like.map(|p| (p.checkpoint.as_path(), &p.net, &p.provenance));
    let (net, provenance) =
        pretrained_conv(&checkpoint, arch, data, &pretrain_options, observer, source)?;
    Ok(Pretrained {
        net,
        provenance,
        checkpoint,
    })
}

/// A network [`pretrain_all`] pretrains: its architecture, its name in
/// the report folder and its transfer protocol.
pub type Network<'a> = (&'a ConvArch, String, Transfer);

/// [`pretrain`] of every network of `networks` on `data` at once, each on
/// one thread ([`one_job_per_thread`]), in their order: a pretraining step of
/// 50 images gains nothing from a second thread, so two networks
/// pretrain in about the time of one. Each network is the one it would be
/// alone (§6: the same bits on any number of threads). On a 2-core AMD
/// EPYC (Zen 3), `comod multitask pretrain --epochs 10 --target 1.0` took
/// 4.9–5.1 s on one thread and 5.2–5.5 s on two; the quick report's §8
/// pretrainings (these, and the headroom's single-task networks) 91 s
/// against 162 s one after the other, the same checkpoints.
pub fn pretrain_all(
    options: &ReportOptions,
    data: &BenchmarkData,
    networks: &[Network<'_>],
    observer: &dyn Observer,
) -> Result<Vec<Pretrained>> {
    one_job_per_thread(networks, |(arch, name, transfer)| {
        pretrain(options, data, (arch, name), *transfer, observer)
    })
}

/// The pretraining settings of the report's §8 networks.
pub fn pretrain_options(options: &ReportOptions, transfer: Transfer) -> MultitaskPretrainOptions {
    let defaults = MultitaskPretrainOptions::DEFAULT;
    MultitaskPretrainOptions {
        seed: options.seed,
        transfer,
        max_epochs: options
            .scale
            .pretrain_cap()
            .map_or(defaults.max_epochs, |cap| cap.min(defaults.max_epochs)),
        ..defaults
    }
}

/// One §8 sweep: `tasks` of `data` fine-tuned from `pretrained` under
/// `transfer` and `protocol`, `repeats` each, into the results file
/// `name`; its records, or `None` for a shard.
pub fn sweep_cell(
    options: &ReportOptions,
    (data, pretrained): (&BenchmarkData, &Pretrained),
    (transfer, protocol): (Transfer, Protocol),
    (tasks, repeats): (Vec<usize>, usize),
    name: &str,
    observer: &dyn Observer,
) -> Result<Option<Vec<Record<ConvArch>>>> {
    let path = results_path(&options.out, options.scale, name, options.shard);
    if options.shard.count == 1 {
        join_shards::<ConvArch>(&path, options.partial)?;
    }
    observer.stage(&format!("sweep {name}"));
    let finetune = transfer.finetune(options.scale.trim(Reading::Spec.under(protocol)));
    let config = SweepConfig::new(
        &pretrained.checkpoint,
        pretrained.net.arch().clone(),
        (data.sha256(), Some(data.benchmark)),
        finetune,
        options.seed,
    )?;
    let spec = SweepSpec {
        tasks,
        methods: Method::ALL.to_vec(),
        repeats,
        shard: options.shard,
        record_coupling: false,
        config,
    };
    let frozen = Frozen::new(pretrained.net.clone());
    let study = BenchmarkTasks {
        frozen: &frozen,
        data,
    };
    run_sweep(&study, &spec, &path, |done, total| {
        observer.sweep_progress(done, total)
    })?;
    if options.shard.count > 1 {
        return Ok(None);
    }
    Ok(Some(
        read_results::<ConvArch>(&path)?
            .records
            .into_values()
            .collect(),
    ))
}

/// The data of `benchmark` as the report reads it: the digits it was given,
/// or Fashion-MNIST from the report's `--fashion` folder.
pub(crate) fn load(
    benchmark: Benchmark,
    digits: &Digits,
    options: &ReportOptions,
) -> Result<BenchmarkData> {
    Ok(match benchmark {
        Benchmark::FashionAttributes => {
            BenchmarkData::fashion_attributes(Digits::load(&options.fashion)?)
        }
        _ => BenchmarkData::mnist_attributes(digits.clone()),
    })
}

/// The tasks a protocol fine-tunes in the report: the held-out tasks under
/// `held-out`; under `joint` every task at full scale, the held-out ones
/// otherwise (the same tasks as `held-out`, for a like-for-like start).
fn report_tasks(scale: Scale, data: &BenchmarkData, transfer: Transfer) -> Vec<usize> {
    match (transfer, scale) {
        (Transfer::Joint, Scale::Full) => transfer.finetuned_tasks(data),
        _ => data.held_out.clone(),
    }
}

/// Runs (or resumes) what the section needs and builds it; `None` for a
/// shard (its runs are made, the report is written later).
pub fn multitask_section(
    options: &ReportOptions,
    digits: &Digits,
    observer: &dyn Observer,
    figures: &Path,
) -> Result<Option<Section>> {
    let repeats = options.scale.tasks().1;
    let mut section = Section::default();
    let mut pooled: BTreeMap<Transfer, Vec<Record<ConvArch>>> = BTreeMap::new();
    for benchmark in BENCHMARKS {
        let data = load(benchmark, digits, options)?;
        let arch = ConvArch::preset(benchmark.default_arch(), data.task_count())?;
        let name = |transfer: Transfer| format!("{}-{}", benchmark.name(), transfer.name());
        let wanted = Transfer::ALL.map(|transfer| (&arch, name(transfer), transfer));
        let pretrained = pretrain_all(options, &data, &wanted, observer)?;
        let mut networks = Vec::new();
        let mut cells = Vec::new();
        for (transfer, net) in Transfer::ALL.into_iter().zip(pretrained) {
            let name = name(transfer);
            let tasks = report_tasks(options.scale, &data, transfer);
            for protocol in options.scale.multitask_protocols() {
                let cell = format!("multitask-{name}-{}", protocol.name());
                let plan = (tasks.clone(), repeats_of(protocol, repeats));
                let run = (transfer, protocol);
                if let Some(records) =
                    sweep_cell(options, (&data, &net), run, plan, &cell, observer)?
                {
                    cells.push((transfer, protocol, records));
                }
            }
            networks.push((transfer, net));
        }
        if options.shard.count > 1 {
            continue;
        }
        let network = |transfer| {
            &networks
                .iter()
                .find(|(t, _)| *t == transfer)
                .expect("every protocol's network is pretrained")
                .1
        };
        let joint_tasks = report_tasks(options.scale, &data, Transfer::Joint);
        let joint = (&arch, &network(Transfer::Joint).net);
        let headroom = headroom(options, &data, joint, &joint_tasks, observer)?;
        for (transfer, protocol, records) in &cells {
            if *protocol == Protocol::Online {
                pooled
                    .entry(*transfer)
                    .or_default()
                    .extend_from_slice(records);
            }
            let net = network(*transfer);
            let run = (*transfer, *protocol);
            cell_part(&mut section, (&data, net), run, records, &headroom, figures)?;
        }
        section.text += &headroom.table(&data);
    }
    pooled_claims(&mut section, &pooled);
    section.text += NOT_RUN;
    if let Some(study) = architecture_study(options, digits, observer, figures)? {
        section.text += &study.text;
        section.claims.extend(study.claims);
        section.figures.extend(study.figures);
    }
    if options.shard.count > 1 {
        return Ok(None);
    }
    Ok(Some(section))
}

/// Repeats of a multi-task cell: one under `dataset` (each size trains
/// many epochs), the scale's under `online`.
fn repeats_of(protocol: Protocol, repeats: usize) -> usize {
    match protocol {
        Protocol::Online => repeats,
        Protocol::Dataset(_) => 1,
    }
}

/// The claims of `transfer` on `records`, the rows marked §8, in Holm
/// family `family`: the five method claims, and under `held-out` the
/// head-only ones; under `joint` all `not applicable` when no method has
/// room to gain, with that [`Gain`].
fn protocol_claims(
    records: &[Record<ConvArch>],
    setting: &str,
    transfer: Transfer,
    family: Option<&str>,
) -> (Vec<ClaimRow>, Option<Gain>) {
    let tasks: BTreeSet<_> = records.iter().map(|r| &r.task).collect();
    let setting = format!("{setting}, {} tasks", tasks.len());
    let claims: Vec<_> = match transfer {
        Transfer::HeldOut => (PAPER_CLAIMS.iter().chain(&HEAD_ONLY_CLAIMS))
            .copied()
            .collect(),
        Transfer::Joint => PAPER_CLAIMS.to_vec(),
    };
    let mut rows = method_claims(records, &setting, family, &claims);
    let gain = (transfer == Transfer::Joint).then(|| Gain::of(records));
    if let Some(gain) = &gain {
        gain.apply(&mut rows);
    }
    for row in &mut rows {
        row.claim = format!("§8 {}", row.claim);
    }
    (rows, gain)
}

/// Each protocol's primary sample (§8): its `online` runs on both shipped
/// benchmarks pooled, a task the unit (16 held-out tasks; more units
/// than one benchmark's 8, whose smallest exact p, 2/2⁸, Holm's
/// correction over a family of 7 would lift above 0.05), a Holm family of
/// its own; with the pooled headroom sentence under `joint`.
fn pooled_claims(section: &mut Section, pooled: &BTreeMap<Transfer, Vec<Record<ConvArch>>>) {
    for (&transfer, records) in pooled {
        let family = format!("§8 {}", transfer.name());
        let setting = format!("§8 {} online, both shipped benchmarks", transfer.name());
        let (rows, gain) = protocol_claims(records, &setting, transfer, Some(&family));
        section.claims.extend(rows);
        if let Some(gain) = gain {
            let _ = write!(
                section.text,
                "\n**Both benchmarks, `joint` (the protocol's primary sample).**"
            );
            section.text += &gain.sentence();
        }
    }
}

/// One benchmark × protocol's part of the section: its table, curves and
/// claims (exploratory).
fn cell_part(
    section: &mut Section,
    (data, pretrained): (&BenchmarkData, &Pretrained),
    (transfer, protocol): (Transfer, Protocol),
    records: &[Record<ConvArch>],
    headroom: &Headroom,
    figures: &Path,
) -> Result<()> {
    let name = format!(
        "{} {} {}",
        data.benchmark.name(),
        transfer.name(),
        protocol.name()
    );
    // Exploratory: each protocol's primary sample pools both benchmarks
    // ([`pooled_claims`]).
    let (rows, gain) = protocol_claims(records, &format!("§8 {name}"), transfer, None);
    section.claims.extend(rows);
    let file = format!(
        "multitask_{}_{}_{}.png",
        data.benchmark.name(),
        transfer.name(),
        protocol.name()
    );
    let curves = figures.join(file);
    learning_curves(records, &curves)?;
    section.figures.push((
        curves,
        format!("Learning curves, {name}: mean ± s.e.m. over tasks and repeats (§8)."),
    ));
    let _ = writeln!(section.text, "\n**{name}.**");
    section.text += &table(records, &pretrained.provenance, transfer, headroom);
    if let Some(gain) = gain {
        section.text += &gain.sentence();
    }
    Ok(())
}

/// The pretraining line and the per-task table: starting and final
/// accuracy of each method, and their mean over tasks, with the ceiling
/// (the single-task networks' accuracy) beside each task.
fn table(
    records: &[Record<ConvArch>],
    provenance: &ConvProvenance,
    transfer: Transfer,
    headroom: &Headroom,
) -> String {
    let mut md = String::new();
    let stop = match provenance.target {
        Some(target) => format!("to a held-out mean accuracy of {target:.2}"),
        None => "to convergence".into(),
    };
    let trained = match transfer {
        Transfer::HeldOut => "its pretraining tasks only",
        Transfer::Joint => "every task jointly",
    };
    let _ = writeln!(
        md,
        "The network was pretrained on {trained}, {stop} (cap {} epochs): {} epochs, held-out mean accuracy {:.3} over those tasks. {} Accuracy: start (measurement 0) → final, mean over repeats; the ceiling is the single-task network's accuracy on the task.\n",
        provenance.max_epochs,
        provenance.epochs,
        provenance.heldout_accuracy,
        match transfer {
            Transfer::HeldOut =>
                "Each held-out task starts from a fresh head, the same for every method at a given repeat; every method trains it (`retrain-last` alone, the modulation methods with their c, `retrain` with the backbone).",
            Transfer::Joint => "Each task is fine-tuned from its pretrained head (§4).",
        }
    );
    let table = per_task(records);
    let _ = writeln!(
        md,
        "| task | ceiling | {} |",
        Method::ALL.map(Method::name).join(" | ")
    );
    let _ = writeln!(md, "|---|---|{}", "---|".repeat(Method::ALL.len()));
    let mut sums = [(0.0, 0.0, 0usize); 4];
    let mut ceilings = Vec::new();
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
        let ceiling = headroom.single_task(task);
        ceilings.extend(ceiling);
        let ceiling = ceiling.map_or("–".into(), |c| format!("{c:.3}"));
        let _ = writeln!(md, "| {task} | {ceiling} | {} |", cells.join(" | "));
    }
    let means: Vec<String> = sums
        .iter()
        .map(|&(s, f, n)| match n {
            0 => "–".into(),
            n => format!("**{:.3} → {:.3}**", s / n as f64, f / n as f64),
        })
        .collect();
    let ceiling = match ceilings.len() {
        0 => "–".into(),
        n => format!("**{:.3}**", ceilings.iter().sum::<f64>() / n as f64),
    };
    let _ = writeln!(
        md,
        "| mean over tasks | {ceiling} | {} |",
        means.join(" | ")
    );
    md
}

/// The name of task `t` of `data`, as records carry it.
pub fn task_id(data: &BenchmarkData, t: usize) -> TaskId {
    TaskId::try_from(data.tasks[t].clone()).expect("a benchmark's task names are identifiers")
}
