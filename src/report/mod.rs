//! `comod report` (§5 "Reproduction study"): runs what a report needs
//! (reusing results of the same configuration already in its folder),
//! judges each claim of the paper under each reading, readout and
//! protocol, and writes `report.md` with its figures beside it.

pub mod analyses;
pub mod architecture;
pub mod claims;
pub mod fashion;
pub mod headroom;
pub mod markdown;
pub mod multitask;
pub mod plan;

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::data::Digits;
use crate::data::TaskId;
use crate::error::{Error, Result};
use crate::io::atomic::write_atomic;
use crate::io::lock::FileLock;
use crate::net::Arch;
use crate::net::Model;
use crate::net::arch::DEFAULT_PRESET;
use crate::net::linalg::one_job_per_thread;
use crate::observer::Observer;
use crate::pretrained::{pretrained, pretrained_like};
use crate::report::analyses::{Section, Variant, VariantSeed, fig2a, fig2efgh, fig3, fig4};
use crate::report::claims::{ClaimRow, PAPER_CLAIMS, PRIMARY, correct_families, method_claims};
use crate::report::plan::{Cell, Scale, VARIANTS, cells, variant_name};
use crate::rng::derive_seed;
use crate::sweep::completeness::{as_unsharded, completeness};
use crate::sweep::plan::Shard;
use crate::sweep::record::Architecture;
use crate::sweep::record::{Record, SweepConfig};
use crate::sweep::store::{RecordKind, check_config, read_results, read_whole, write_canonical};
use crate::sweep::{SweepSpec, run_sweep};
use crate::train::evaluate::pair_accuracy;
use crate::train::options::ReadoutKind;
use crate::train::switching::{GeneralTest, SwitchRun, switch_back};
use crate::train::{DigitTasks, Frozen, Method, PretrainOptions, general_accuracy};

/// What a report runs.
#[derive(Clone, Debug)]
pub struct ReportOptions {
    /// The report's folder: report.md, figures/, runs/, checkpoints.
    pub out: PathBuf,
    /// The digits.
    pub data: PathBuf,
    /// The second data set, Fashion-MNIST in the digits' IDX format (§1):
    /// the headline claims are judged on it too.
    pub fashion: PathBuf,
    /// Quick or full.
    pub scale: Scale,
    /// The part of every sweep this process runs; with more than one
    /// shard only the sweeps run, and no report is written.
    pub shard: Shard,
    /// Master seed of pretraining, sweeps and analyses.
    pub seed: u64,
    /// Join shards that lack runs of their plan, and run those runs here,
    /// instead of refusing.
    pub partial: bool,
    /// Results files whose method claims are judged beside the cells'
    /// (`comod reproduce` passes its own, larger sweep).
    pub also: Vec<PathBuf>,
}

/// What a report produced.
#[derive(Clone, Debug)]
pub struct ReportOutcome {
    /// report.md, or `None` for a shard.
    pub report: Option<PathBuf>,
    /// Every claim row.
    pub claims: Vec<ClaimRow>,
    /// Wall time in seconds.
    pub seconds: f64,
}

/// The report's file `file` of the networks it pretrains (checkpoints,
/// the headroom table) at `scale` in `out`.
pub(crate) fn checkpoint_path(out: &Path, scale: Scale, file: &str) -> PathBuf {
    out.join("checkpoints").join(scale.name()).join(file)
}

/// The results file of sweep `name` at `scale` in `out`, for `shard`.
pub(crate) fn results_path(out: &Path, scale: Scale, name: &str, shard: Shard) -> PathBuf {
    let dir = out.join("runs").join(scale.name());
    if shard.count > 1 {
        dir.join(format!(
            "{name}.shard-{}-of-{}.jsonl",
            shard.index, shard.count
        ))
    } else {
        dir.join(format!("{name}.jsonl"))
    }
}

/// The shard files of the results file `path` (`NAME.shard-i-of-n.jsonl`
/// beside it), sorted.
fn shard_files(path: &Path) -> Result<Vec<PathBuf>> {
    let dir = path.parent().expect("a results file in a folder");
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default();
    let prefix = format!("{stem}.shard-");
    let mut shards: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".jsonl"))
        })
        .collect();
    shards.sort();
    Ok(shards)
}

/// Joins the shard files of `path` into it whenever any exist (§6): the
/// runs already in `path` and every shard's, each run once, so that a
/// shard finishing after an earlier join still counts. A shard with a
/// torn last line (still running, or killed) refuses the join, and so do
/// runs missing from the shards' plan unless `partial` accepts them (the
/// report then runs them itself); nothing is written then.
pub(crate) fn join_shards<A: Architecture>(path: &Path, partial: bool) -> Result<()> {
    let shards = shard_files(path)?;
    if shards.is_empty() {
        return Ok(());
    }
    let _lock = FileLock::acquire(path)?;
    let mut all = read_results::<A>(path)?.records;
    for shard in &shards {
        let torn = "that shard is still running, or was killed (run it again)";
        for (key, record) in read_whole::<A>(shard, torn)? {
            all.entry(key).or_insert(record);
        }
    }
    if let Some(first) = all.values().next() {
        check_config(path, &all, &first.config)?;
    }
    let whole = completeness(&all);
    whole.require(path, "run the report again", partial)?;
    as_unsharded(&mut all, &whole);
    write_canonical(path, &all)
}

/// The records of each `--also` file, read before any work: a file that
/// is missing, of the other network, or holds no run is an error.
fn read_also(paths: &[PathBuf]) -> Result<Vec<Vec<Record>>> {
    paths
        .iter()
        .map(|path| {
            if RecordKind::of_file(path)? == Some(RecordKind::Conv) {
                return Err(Error::data(
                    path,
                    "holds multi-task records: --also takes the MLP's results files",
                ));
            }
            let records: Vec<Record> = read_results(path)?.records.into_values().collect();
            match records.is_empty() {
                true => Err(Error::data(path, "holds no runs to judge")),
                false => Ok(records),
            }
        })
        .collect()
}

/// What every sweep of a report shares: the images, the options and
/// where progress goes.
#[derive(Clone, Copy)]
pub(crate) struct Sweeps<'a> {
    /// The images the sweeps' tasks are built from.
    pub(crate) digits: &'a Digits,
    /// The report's options.
    pub(crate) options: &'a ReportOptions,
    /// Where progress goes.
    pub(crate) observer: &'a dyn Observer,
}

impl Sweeps<'_> {
    /// Runs (or resumes) sweep `name` of `methods` under `cell` on the
    /// network `frozen` stored at `checkpoint`; returns its records.
    fn run(
        &self,
        (frozen, checkpoint): (&Frozen<Model<f32>>, &Path),
        name: &str,
        cell: &Cell,
        methods: &[Method],
    ) -> Result<Vec<Record>> {
        let options = self.options;
        let path = results_path(&options.out, options.scale, name, options.shard);
        if options.shard.count == 1 {
            join_shards::<Arch>(&path, options.partial)?;
        }
        self.observer.stage(&format!("sweep {name}"));
        let tasks = cell.tasks();
        let config = cell.config();
        let spec = SweepSpec {
            tasks,
            methods: methods.to_vec(),
            repeats: cell.repeats,
            shard: options.shard,
            record_coupling: true,
            config: SweepConfig::new(
                checkpoint,
                frozen.net.arch().clone(),
                (self.digits.sha256(), None),
                config,
                options.seed,
            )?,
        };
        let study = DigitTasks {
            frozen,
            digits: self.digits,
        };
        let report = run_sweep(&study, &spec, &path, |done, total| {
            self.observer.sweep_progress(done, total)
        })?;
        self.observer.sweep_done(&report, &path);
        Ok(read_results(&path)?.records.into_values().collect())
    }
}

/// Runs the report of `options`, reporting progress to `observer`.
pub fn report(options: &ReportOptions, observer: &dyn Observer) -> Result<ReportOutcome> {
    let start = Instant::now();
    let figures = options.out.join("figures");
    let digits = Digits::load(&options.data)?;
    let fashion = Digits::load(&options.fashion)?;
    let also = read_also(&options.also)?;
    for dir in [
        options.out.join("runs").join(options.scale.name()),
        checkpoint_path(&options.out, options.scale, ""),
        figures.clone(),
    ] {
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    }
    let base_options = PretrainOptions {
        seed: options.seed,
        ..PretrainOptions::DEFAULT
    };
    let checkpoint = options.out.join("pretrained.safetensors");
    observer.stage("pretrained network");
    let arch = Arch::preset(DEFAULT_PRESET, 1)?;
    let base = Frozen::new(pretrained(
        &checkpoint,
        &arch,
        &base_options,
        &digits,
        observer,
    )?);
    // The method claims in every cell.
    let sweeps = Sweeps {
        digits: &digits,
        options,
        observer,
    };
    let mut cell_records = Vec::new();
    for cell in cells(options.scale) {
        let records = sweeps.run((&base, &checkpoint), &cell.name(), &cell, &Method::ALL)?;
        cell_records.push((cell, records));
    }
    // The Fig. 3 variants: the stochastic method on each network, each
    // pretrained to the same criterion from every seed of the scale.
    let main_cell = cell_records[0].0;
    let mut variants = Vec::new();
    // Each variant network pretrained so far, by seed: a later variant
    // that pretraining trains alike (the same network modulated at
    // another layer) is that network, not pretrained again.
    let mut pretrained_variants: Vec<(u64, Arch, PathBuf)> = Vec::new();
    for variant in VARIANTS {
        let name = variant_name(variant);
        let mut seeds = Vec::new();
        for k in 0..options.scale.variant_seeds() {
            let suffix = match k {
                0 => String::new(),
                _ => format!("-seed{k}"),
            };
            let (frozen, path) = if variant == ("paper3", 1) && k == 0 {
                (Frozen::new(base.net.clone()), checkpoint.clone())
            } else {
                let file = format!("{name}{suffix}.safetensors");
                let path = checkpoint_path(&options.out, options.scale, &file);
                let seed = match k {
                    0 => options.seed,
                    _ => derive_seed(options.seed, &["variant seed".into(), (k as u64).into()]),
                };
                let pretrain_options = plan::pretrain_options(options.scale, seed);
                observer.stage(&format!("pretrain {name}{suffix}"));
                let arch = Arch::preset(variant.0, variant.1)?;
                let like = (pretrained_variants.iter())
                    .find(|(s, a, _)| *s == seed && a.pretrains_as(&arch))
                    .map(|(_, _, p)| p.as_path());
                let model =
                    pretrained_like(&path, &arch, &pretrain_options, &digits, observer, like)?;
                pretrained_variants.push((seed, arch, path.clone()));
                (Frozen::new(model), path)
            };
            let records = sweeps.run(
                (&frozen, &path),
                &format!("variant-{name}{suffix}"),
                &main_cell,
                &[Method::Stochastic],
            )?;
            let general = general_accuracy(&frozen.net, &digits, options.seed);
            let pair = one_job_per_thread(&main_cell.tasks(), |&task| {
                let accuracy =
                    pair_accuracy(&frozen.net, &digits, task, ReadoutKind::All, options.seed);
                (TaskId::from(task), accuracy.with_distractors)
            });
            seeds.push(VariantSeed {
                model: frozen.net,
                general,
                pair,
                records,
            });
        }
        variants.push(Variant { name, seeds });
    }
    let fashion = fashion::fashion_section(&sweeps, &fashion, &main_cell, &figures)?;
    let multitask = multitask::multitask_section(options, &digits, observer, &figures)?;
    if options.shard.count > 1 {
        return Ok(ReportOutcome {
            report: None,
            claims: Vec::new(),
            seconds: start.elapsed().as_secs_f64(),
        });
    }
    observer.stage("task switching");
    let switching = switching((&base, &checkpoint), &digits, options, &main_cell)?;
    observer.stage("analyses and figures");
    let mut claims = Vec::new();
    let mut sections: Vec<(String, Section)> = Vec::new();
    for (cell, records) in &cell_records {
        let family = cell.is_primary().then_some(PRIMARY);
        claims.extend(method_claims(
            records,
            &markdown::setting(cell),
            family,
            &PAPER_CLAIMS,
        ));
    }
    for (path, records) in options.also.iter().zip(&also) {
        let first = &records[0];
        let config = &first.config.finetune;
        let tasks: std::collections::BTreeSet<_> = records.iter().map(|r| &r.task).collect();
        let setting = format!(
            "{}, {}, {}; {} tasks of {}",
            config.reading.name(),
            config.readout.name(),
            config.protocol.name(),
            tasks.len(),
            path.display()
        );
        // A separate sample of its own setting: its own Holm family when
        // that is the primary cell's (§5), else exploratory.
        let primary = plan::is_primary(config.reading, config.readout, config.protocol);
        let family = primary.then(|| format!("{PRIMARY}: {}", path.display()));
        claims.extend(method_claims(
            records,
            &setting,
            family.as_deref(),
            &PAPER_CLAIMS,
        ));
    }
    let main_records = &cell_records[0].1;
    let main_setting = markdown::setting(&main_cell);
    let curves = figures.join("learning_curves.png");
    crate::analysis::plots::learning_curves(main_records, &curves)?;
    let mut curves_section = Section::default();
    curves_section.figures.push((
        curves,
        format!("Learning curves under {main_setting} (mean ± s.e.m. over tasks and repeats)."),
    ));
    sections.push(("Learning curves".into(), curves_section));
    sections.push((
        "Fig. 2A: pretrained accuracy with and without distractors".into(),
        fig2a(&base.net, &digits, options.seed, &figures)?,
    ));
    sections.push((
        "Fig. 2E–H: coupling and informativeness".into(),
        fig2efgh(
            &base.net,
            &digits,
            main_records,
            options.seed,
            &main_setting,
            &figures,
        )?,
    ));
    sections.push((
        "Fig. 3: architecture variants".into(),
        fig3(
            &variants,
            &main_cell.tasks(),
            &digits,
            (&main_setting, options.seed),
            &figures,
        )?,
    ));
    sections.push((
        "Fig. 4: task switching".into(),
        fig4(&switching, &main_setting, &figures)?,
    ));
    if let Some(section) = fashion {
        sections.push((fashion::TITLE.into(), section));
    }
    if let Some(section) = multitask {
        sections.push((multitask::TITLE.into(), section));
    }
    for (_, section) in &sections {
        claims.extend(section.claims.iter().cloned());
    }
    correct_families(&mut claims);
    let seconds = start.elapsed().as_secs_f64();
    let text = markdown::report(options, &cell_records, &claims, &sections, seconds);
    let path = options.out.join("report.md");
    write_atomic(&path, text.as_bytes())?;
    Ok(ReportOutcome {
        report: Some(path),
        claims,
        seconds,
    })
}

/// The switching runs of a report as saved, with what produced them.
#[derive(serde::Serialize, serde::Deserialize)]
struct SwitchingFile {
    /// Configuration, network and data of the runs (as a sweep records them).
    config: SweepConfig,
    /// The tasks, in order.
    tasks: Vec<String>,
    /// The runs.
    runs: Vec<SwitchRun>,
}

/// The switching runs of the report (§5 (f)), read from its file when
/// they were made with the same configuration, network, data and tasks,
/// else run and saved.
fn switching(
    (base, checkpoint): (&Frozen<Model<f32>>, &Path),
    digits: &Digits,
    options: &ReportOptions,
    cell: &Cell,
) -> Result<Vec<SwitchRun>> {
    let path = results_path(&options.out, options.scale, "switching", Shard::default())
        .with_extension("json");
    let tasks = options.scale.switching_tasks();
    let config = SweepConfig::new(
        checkpoint,
        base.net.arch().clone(),
        (digits.sha256(), None),
        cell.config(),
        options.seed,
    )?;
    let names: Vec<String> = tasks.iter().map(ToString::to_string).collect();
    if let Ok(bytes) = crate::io::read::read_bounded(&path, crate::io::read::MAX_RESULTS_BYTES)
        && let Ok(saved) = serde_json::from_slice::<SwitchingFile>(&bytes)
        && saved.config == config
        && saved.tasks == names
    {
        return Ok(saved.runs);
    }
    let general = GeneralTest::new(base, digits, options.seed);
    let jobs: Vec<(usize, Method)> = (0..tasks.len())
        .flat_map(|i| Method::ALL.map(|m| (i, m)))
        .collect();
    let runs: Vec<SwitchRun> = one_job_per_thread::<_, _, Result<_>>(&jobs, |&(i, method)| {
        let seed = derive_seed(options.seed, &["switch".into(), names[i].as_str().into()]);
        switch_back(
            base,
            digits,
            tasks[i],
            method,
            &config.finetune,
            seed,
            &general,
        )
    })?;
    let file = SwitchingFile {
        config,
        tasks: names,
        runs,
    };
    let json = serde_json::to_vec(&file).map_err(|e| Error::io(&path, std::io::Error::other(e)))?;
    write_atomic(&path, &json)?;
    Ok(file.runs)
}
