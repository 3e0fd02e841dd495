//! `comod report` end to end at the smoke scale (§5): every figure the
//! report links exists, is a valid PNG and is not blank; the Markdown has
//! no broken links; every claim of §5 has a row; a second report of the
//! same folder reuses every run.

use std::path::Path;

use comod::report::plan::Scale;
use comod::report::{ReportOptions, report};
use comod::reproduce::Observer;
use comod::sweep::SweepReport;
use comod::train::{EpochStats, PretrainReport};

struct Quiet;

impl Observer for Quiet {
    fn reused(&self, _: &Path) {}
    fn pretraining_epoch(&self, _: &EpochStats, _: usize) {}
    fn pretrained(&self, _: &PretrainReport, _: f64, _: &Path) {}
    fn sweep_progress(&self, _: usize, _: usize) {}
    fn sweep_done(&self, _: &SweepReport, _: &Path) {}
}

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

#[test]
fn a_smoke_report_links_only_real_figures_and_judges_every_claim() {
    let dir = tempfile::tempdir().unwrap();
    let options = ReportOptions {
        out: dir.path().to_path_buf(),
        data: Path::new(env!("CARGO_MANIFEST_DIR")).join("data"),
        scale: Scale::Smoke,
        shard: comod::sweep::plan::Shard::default(),
        seed: 0,
    };
    let outcome = report(&options, &Quiet).unwrap();
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
    assert!(method_rows.iter().all(|c| c.judgement.tasks == 8));
    for reading in ["spec", "literal", "companion-code"] {
        assert!(text.contains(&format!("--reading {reading}")), "{reading}");
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
}
