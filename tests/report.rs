//! `comod report` end to end at the smoke scale (§5): every figure the
//! report links exists, is a valid PNG and is not blank; the Markdown has
//! no broken links; every claim of §5 has a row; a second report of the
//! same folder reuses every run.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

mod common;
use common::{Quiet, without_wall_time};

use comod::conv::checkpoint::load_conv_checkpoint;
use comod::io::load_checkpoint;
use comod::net::Arch;
use comod::observer::Observer;
use comod::report::plan::{Scale, pretrain_options};
use comod::report::{ReportOptions, report};
use comod::train::pretrain;

/// True when the PNG at `path` decodes and has pixels of at least two colours.
fn png_has_content(path: &Path) -> bool {
    let decoder = png::Decoder::new(std::fs::File::open(path).unwrap());
    let mut reader = decoder.read_info().unwrap();
    let mut buffer = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buffer).unwrap();
    let pixels = &buffer[..info.buffer_size()];
    let step = info.color_type.samples();
    let first = &pixels[..step];
    pixels.chunks(step).any(|p| p != first) && info.width > 100 && info.height > 100
}

/// A report observer that shows nothing and keeps the checkpoints it
/// was told were pretrained and the stages it was told of.
#[derive(Default)]
struct Pretrainings {
    checkpoints: Mutex<Vec<PathBuf>>,
    stages: Mutex<Vec<String>>,
}

impl Observer for Pretrainings {
    fn reused(&self, _: &Path) {}
    fn pretraining_epoch(&self, _: &comod::train::EpochStats, _: usize) {}
    fn pretrained(&self, _: &comod::train::PretrainReport, _: f64, checkpoint: &Path) {
        self.checkpoints
            .lock()
            .unwrap()
            .push(checkpoint.to_path_buf());
    }
    fn sweep_progress(&self, _: usize, _: usize) {}
    fn sweep_done(&self, _: &comod::sweep::SweepReport, _: &Path) {}
    fn stage(&self, what: &str) {
        self.stages.lock().unwrap().push(what.to_string());
    }
}

#[test]
fn a_smoke_report_links_only_real_figures_and_judges_every_claim() {
    let dir = tempfile::tempdir().unwrap();
    let options = ReportOptions {
        out: dir.path().to_path_buf(),
        data: Path::new(env!("CARGO_MANIFEST_DIR")).join("data"),
        fashion: Path::new(env!("CARGO_MANIFEST_DIR")).join("data/fashion"),
        scale: Scale::Smoke,
        shard: comod::sweep::plan::Shard::default(),
        seed: 0,
        partial: false,
        also: Vec::new(),
    };
    let pretrainings = Pretrainings::default();
    let outcome = report(&options, &pretrainings).unwrap();
    let path = outcome.report.expect("a report");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut links = 0;
    for (i, _) in text.match_indices("](") {
        let rest = &text[i + 2..];
        let target = &rest[..rest.find(')').unwrap()];
        let file = dir.path().join(target);
        assert!(file.is_file(), "broken link {target}");
        assert!(png_has_content(&file), "{target} is blank or not a PNG");
        links += 1;
    }
    assert!(links >= 8, "{links} figures");
    // Every row of the verdict table has the header's columns (a bar inside
    // a cell, as in |d′|, is escaped).
    let columns = |line: &str| line.replace("\\|", "").matches('|').count();
    let header = text
        .lines()
        .find(|l| l.starts_with("| claim |"))
        .expect("a verdict table");
    let rows: Vec<&str> = text
        .lines()
        .filter(|l| {
            ["| (", "| headline", "| §8", "| Fashion"]
                .iter()
                .any(|start| l.starts_with(start))
        })
        .collect();
    assert!(rows.len() >= 50, "{} rows", rows.len());
    for row in rows {
        assert_eq!(columns(row), columns(header), "{row}");
    }
    for claim in [
        "(a) Fig. 2A",
        "(b) Fig. 2C",
        "(c) Fig. 2D",
        "(d) Fig. 2F",
        "(e) Fig. 3",
        "(f) Fig. 4",
        "headline",
    ] {
        assert!(
            outcome.claims.iter().any(|c| c.claim == claim),
            "no row for {claim}"
        );
        assert!(text.contains(claim), "{claim} not in the report");
    }
    // 7 cells × 5 method claims, each judged on the 8 tasks.
    let method_rows: Vec<_> = outcome
        .claims
        .iter()
        .filter(|c| c.claim == "headline")
        .collect();
    assert_eq!(method_rows.len(), 7);
    assert!(method_rows.iter().all(|c| c.judgement.units == 8));
    // The vocabulary of §5, and Holm within families only: every row of a
    // family with a p has Holm's p, no exploratory row has one.
    let words = [
        "not applicable",
        "inconclusive",
        "negligible",
        "reproduced",
        "contradicted",
    ];
    for c in &outcome.claims {
        assert!(words.contains(&c.judgement.verdict.word()));
        let corrected = c.family.is_some() && c.judgement.p.is_finite();
        assert_eq!(c.judgement.p_holm.is_some(), corrected, "{c:?}");
        if let Some(holm) = c.judgement.p_holm {
            assert!(holm >= c.judgement.p, "{c:?}");
        }
    }
    assert!(text.contains("(Holm; raw ") && text.contains("(uncorrected)"));
    let primary = |claim: &str| {
        outcome
            .claims
            .iter()
            .filter(|c| c.claim == claim && c.family.as_deref() == Some("primary"))
            .count()
    };
    // The primary family: the 5 method claims, (a) under `pair`, (d),
    // the 3 examples-to-criterion rows of (e), (f) for both retrainers.
    let in_primary = [
        "(b) Fig. 2C",
        "(c) Fig. 2D",
        "headline",
        "(a) Fig. 2A",
        "(d) Fig. 2F",
        "(e) Fig. 3",
        "(f) Fig. 4",
    ];
    let counts: Vec<usize> = in_primary.iter().map(|c| primary(c)).collect();
    assert_eq!(counts, [2, 2, 1, 2, 1, 3, 2]);
    // Fashion-MNIST: the headline claims as their own family and section.
    let fashion: Vec<_> = outcome
        .claims
        .iter()
        .filter(|c| c.claim.starts_with("Fashion "))
        .collect();
    assert_eq!(fashion.len(), 5);
    assert!(
        fashion
            .iter()
            .all(|c| c.family.as_deref() == Some("primary: Fashion-MNIST"))
    );
    assert!(text.contains(comod::report::fashion::TITLE));
    assert!(text.contains("figures/fashion_learning_curves.png"));
    for reading in ["spec", "literal", "companion-code"] {
        assert!(text.contains(&format!("--reading {reading}")), "{reading}");
    }
    // The §8 section: its claims judged on the 8 mnist-attributes tasks,
    // its per-task table and both figures.
    let multitask: Vec<_> = outcome
        .claims
        .iter()
        .filter(|c| c.claim.starts_with("§8 "))
        .collect();
    // Per shipped benchmark (exploratory) and pooled over both (each
    // protocol's Holm family): `held-out` judges the five method claims and
    // the two head-only ones, `joint` the five; the architecture study two
    // per variant (6 variants, on mnist-attributes at this scale).
    assert_eq!(multitask.len(), 3 * (7 + 5) + 6 * 2, "the §8 claims");
    for c in &multitask {
        let pooled = c.setting.contains("both shipped benchmarks");
        let units = if pooled { 16 } else { 8 };
        assert_eq!(
            c.judgement.units + c.judgement.excluded,
            units,
            "{}",
            c.setting
        );
        // Only the pooled samples are Holm families (`joint`'s leaves its
        // family when the headroom rule makes it `not applicable`).
        if !pooled {
            assert_eq!(c.family, None, "{}", c.setting);
        } else if c.setting.starts_with("§8 held-out") {
            assert_eq!(c.family.as_deref(), Some("§8 held-out"));
        }
    }
    for statement in [
        "final accuracy of stochastic > deterministic",
        "final accuracy of stochastic > retrain-last",
    ] {
        assert!(
            multitask.iter().any(|c| c.statement == statement),
            "{statement}"
        );
    }
    assert!(text.contains(comod::report::multitask::TITLE));
    for task in [
        "prime@0",
        "loop@3",
        "bag@0",
        "long-sleeve@3",
        "mean over tasks",
    ] {
        assert!(text.contains(&format!("| {task} |")), "{task}");
    }
    for needle in ["`joint` headroom", "Headroom rule", "architecture study"] {
        assert!(text.contains(needle), "{needle}");
    }
    for benchmark in ["mnist-attributes", "fashion-attributes"] {
        for transfer in ["held-out", "joint"] {
            let figure = format!("figures/multitask_{benchmark}_{transfer}_online.png");
            assert!(text.contains(&figure), "{figure}");
        }
    }
    assert!(text.contains("figures/multitask_architecture_mnist-attributes.png"));
    // Fig. 3's networks modulated at layer 2 are those modulated at layer
    // 1, not pretrained again: each is the network its own pretraining
    // gives, bit for bit, described as modulated at layer 2.
    let pretrained = pretrainings.checkpoints.into_inner().unwrap();
    let checkpoints = dir.path().join("checkpoints/smoke");
    for preset in ["relu-deep4", "relu-local2"] {
        let file = checkpoints.join(format!("{preset}-l2.safetensors"));
        assert!(!pretrained.contains(&file), "{preset}-l2 pretrained again");
        let first = checkpoints.join(format!("{preset}-l1.safetensors"));
        assert!(pretrained.contains(&first), "{preset}-l1 not pretrained");
        let saved = load_checkpoint(&file).unwrap();
        let arch = Arch::preset(preset, 2).unwrap();
        assert_eq!(saved.model.arch(), &arch, "{preset}");
        let (fresh, _) = pretrain(
            &arch,
            common::shipped_digits(),
            &pretrain_options(Scale::Smoke, 0),
            |_| {},
        )
        .unwrap();
        assert_eq!(
            common::bits(&saved.model.params),
            common::bits(&fresh.params),
            "{preset}"
        );
    }
    // So are the §8 architecture study's backbones modulated at the second
    // conv stage: those modulated at the first (the ×1 one, the report's
    // `held-out` network).
    let stages = pretrainings.stages.into_inner().unwrap();
    for (width, first) in [
        ("0.5", "mnist-attributes-conv1-w0.5"),
        ("1", "mnist-attributes-held-out"),
        ("2", "mnist-attributes-conv1-w2"),
    ] {
        let second = format!("mnist-attributes-conv2-w{width}");
        assert!(
            !stages
                .iter()
                .any(|s| s.starts_with(&format!("pretrain {second} "))),
            "{second} pretrained again"
        );
        let load = |name: &str| {
            load_conv_checkpoint(&checkpoints.join(format!("{name}.safetensors"))).unwrap()
        };
        let (first, second) = (load(first), load(&second));
        let modulated_second = first.net.arch().variant(1.0, Some(2)).unwrap();
        assert_eq!(second.net.arch(), &modulated_second, "×{width}");
        assert_eq!(
            common::bits(&second.net.params),
            common::bits(&first.net.params),
            "×{width}"
        );
        assert_eq!(second.provenance, first.provenance, "×{width}");
    }
    // A second report runs nothing again: the same records, the same verdicts.
    let runs = dir.path().join("runs/smoke/spec-all-online.jsonl");
    let before = std::fs::read(&runs).unwrap();
    let again = report(&options, &Quiet).unwrap();
    assert_eq!(std::fs::read(&runs).unwrap(), before);
    let verdicts = |claims: &[comod::report::claims::ClaimRow]| -> Vec<String> {
        claims
            .iter()
            .map(|c| format!("{} {:?}", c.statement, c.judgement))
            .collect()
    };
    assert_eq!(verdicts(&again.claims), verdicts(&outcome.claims));
    // A results file given with `also` is judged like a cell: the same
    // records as the spec-all-online cell give the same judgements (before
    // Holm: the file is a family of its own).
    let with_also = ReportOptions {
        partial: false,
        also: vec![runs.clone()],
        ..options.clone()
    };
    let extra = report(&with_also, &Quiet).unwrap();
    let judged = |setting: &dyn Fn(&str) -> bool| -> Vec<String> {
        extra
            .claims
            .iter()
            .filter(|c| setting(&c.setting) && !c.claim.starts_with("(d)"))
            .map(|c| {
                let j = &c.judgement;
                format!(
                    "{} {} {:?} {} {:?} {}",
                    c.statement, j.units, j.censored, j.effect, j.interval, j.p
                )
            })
            .collect()
    };
    let cell = judged(&|s| s == "spec, all, online");
    assert_eq!(cell.len(), 5);
    assert_eq!(judged(&|s| s.contains("8 tasks of")), cell);
}

#[test]
fn shards_of_a_report_join_into_the_report_of_one_process() {
    let dir = tempfile::tempdir().unwrap();
    let options = |shard: &str| ReportOptions {
        out: dir.path().to_path_buf(),
        data: Path::new(env!("CARGO_MANIFEST_DIR")).join("data"),
        fashion: Path::new(env!("CARGO_MANIFEST_DIR")).join("data/fashion"),
        scale: Scale::Smoke,
        shard: shard.parse().unwrap(),
        seed: 0,
        partial: false,
        also: Vec::new(),
    };
    let runs = dir.path().join("runs/smoke");
    for shard in ["0/2", "1/2"] {
        let outcome = report(&options(shard), &Quiet).unwrap();
        assert!(outcome.report.is_none(), "a shard writes no report");
        if shard == "0/2" {
            // Joining before every shard is done is refused, naming the
            // shard that holds none, and joins nothing.
            let err = report(&options("0/1"), &Quiet).unwrap_err().to_string();
            assert!(
                err.contains("partial result") && err.contains("shard 1 of 2 holds none"),
                "{err}"
            );
            assert!(!runs.join("spec-all-online.jsonl").exists());
        }
    }
    assert!(runs.join("spec-all-online.shard-1-of-2.jsonl").is_file());
    assert!(!runs.join("spec-all-online.jsonl").exists());
    // A lock file a killed shard left behind is not a shard.
    std::fs::write(
        runs.join("spec-all-online.shard-1-of-2.jsonl.lock"),
        b"pid 1 on elsewhere",
    )
    .unwrap();
    let joined = report(&options("0/1"), &Quiet).unwrap();
    assert!(joined.report.is_some());
    // The joined file holds every run of the plan: 8 tasks × 4 methods.
    let text = std::fs::read_to_string(runs.join("spec-all-online.jsonl")).unwrap();
    assert_eq!(text.lines().count(), 32);
    // …and its records are those one process writes.
    let single = tempfile::tempdir().unwrap();
    let whole = ReportOptions {
        out: single.path().to_path_buf(),
        ..options("0/1")
    };
    report(&whole, &Quiet).unwrap();
    assert_eq!(
        without_wall_time(&runs.join("spec-all-online.jsonl")),
        without_wall_time(&single.path().join("runs/smoke/spec-all-online.jsonl"))
    );
}
