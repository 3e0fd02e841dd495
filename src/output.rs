//! What the `comod` binary shows (a module of `main.rs`): progress bars
//! with ETA on stderr, and the lines each command prints.

use std::path::Path;

use indicatif::{ProgressBar, ProgressStyle};

use comod::analysis::{FileSummary, SummaryFiles};
use comod::bench::peak::BURSTS;
use comod::bench::{BenchLine, throughput};
use comod::kernel::Body;
use comod::kernel::workload::SAMPLES;
use comod::observer::Observer;
use comod::pretrained::ConvPretrained;
use comod::report::ReportOutcome;
use comod::sweep::SweepReport;
use comod::sweep::completeness::Completeness;
use comod::sweep::record::Record;
use comod::train::{EpochStats, PairAccuracy, PretrainOptions, PretrainReport};
use comod::tune::Tuning;

/// A progress bar on stderr with `template`.
pub fn bar(template: &str) -> ProgressBar {
    ProgressBar::new(0).with_style(ProgressStyle::with_template(template).expect("valid template"))
}

/// The bar of a pretraining, by epochs up to the cap.
pub fn pretraining_bar() -> ProgressBar {
    bar("pretrain {bar:30} epoch {pos}/{len} {msg} [{elapsed_precise}, ETA at the cap {eta}]")
}

/// The bar of a sweep, by runs.
pub fn sweep_bar() -> ProgressBar {
    bar("sweep {bar:30} {pos}/{len} runs, {per_sec}, ETA {eta} [{elapsed_precise}]")
}

/// A sweep's progress callback: `done` of `total` runs on `bar`.
pub fn show_runs(bar: &ProgressBar) -> impl Fn(usize, usize) + Sync + '_ {
    move |done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    }
}

/// Shows a finished pretraining epoch on `bar`.
pub fn show_epoch(bar: &ProgressBar, epoch: usize, max_epochs: usize, message: String) {
    bar.set_length(max_epochs as u64);
    bar.set_position(epoch as u64);
    bar.set_message(message);
}

/// The MLP pretraining's epoch line.
pub fn epoch_message(stats: &EpochStats) -> String {
    format!(
        "loss {:.4} held-out acc {:.4}",
        stats.loss, stats.heldout_accuracy
    )
}

/// The closing lines of an MLP pretraining.
pub fn print_pretrained(report: &PretrainReport, seconds: f64, target: f64, out: &Path) {
    let missed = if report.reached_target {
        String::new()
    } else {
        format!(" (target {target:.2} not reached at the epoch cap)")
    };
    println!(
        "pretrained in {} epochs ({seconds:.1} s): held-out 10-way accuracy {:.4}{missed}",
        report.epochs, report.heldout_accuracy
    );
    println!("wrote {}", out.display());
}

/// The closing lines of a sweep: what was dropped or left, the failed
/// runs, the rate, and the runs' share of the threads' time.
pub fn print_sweep(report: &SweepReport, out: &Path) {
    if let Some(torn) = &report.dropped_torn_line {
        eprintln!(
            "warning: {}: dropped a torn last line ({} bytes) left by an interrupted sweep",
            out.display(),
            torn.len()
        );
    }
    if report.outside_plan > 0 {
        eprintln!(
            "note: {}: {} runs outside this plan (other tasks, methods, repeats or shards) are kept as they are",
            out.display(),
            report.outside_plan
        );
    }
    for failure in &report.failed {
        eprintln!("warning: run {failure}: recorded as failed, left out of the analyses");
    }
    if report.run == 0 {
        println!(
            "{} runs, all already in the file: nothing to run",
            report.planned
        );
    } else {
        let rate = throughput(report.flops, report.seconds);
        let peak = format!(
            "the FMA peak ({} threads, {}: {:.1} GFLOP/s, the highest of {} readings this process took, at sweep starts and ends, each the fastest of {BURSTS} bursts)",
            rate.threads, rate.isa, rate.peak_gflops, rate.readings
        );
        let versus = match rate.ratio() {
            Some(ratio) => format!("= {:.0} % of {peak}", 100.0 * ratio),
            None => format!("above {peak}: every peak reading was disturbed, no ratio is quoted"),
        };
        println!(
            "{} runs ({} already in the file, {} run now) in {:.1} s: {:.2} TFLOP, {:.1} GFLOP/s {versus}; {:.3} s per run",
            report.planned,
            report.resumed,
            report.run,
            report.seconds,
            report.flops / 1e12,
            rate.gflops,
            report.seconds / report.run.max(1) as f64
        );
        if let Some(share) = report.run_share(rate.threads) {
            println!(
                "the runs took {:.1} % of {} threads × {:.1} s; the sweep loop (each task's set-up, writing the records, threads idle at the end) the rest",
                100.0 * share,
                rate.threads,
                report.seconds
            );
        }
    }
    println!("wrote {}", out.display());
}

/// A summary of the results file `results`: what was left out or could
/// not be checked, the table and the files.
pub fn print_summary(summary: &FileSummary, results: &Path) {
    print_completeness(&summary.completeness, results);
    if summary.torn_line {
        eprintln!("warning: {}: ignoring a torn last line", results.display());
    }
    print_summary_files(&summary.files);
}

/// A summary's table and files.
pub fn print_summary_files(files: &SummaryFiles) {
    println!("{}", files.table);
    for path in &files.written {
        println!("wrote {}", path.display());
    }
}

/// A report's verdicts, one line per claim, and its file.
pub fn print_report(outcome: &ReportOutcome) {
    let Some(path) = &outcome.report else {
        println!(
            "shard done in {:.0} s; run the report again without --shard once every shard is done",
            outcome.seconds
        );
        return;
    };
    for claim in &outcome.claims {
        println!(
            "{:<14} {:<62} {:<28} {}",
            claim.claim,
            claim.statement,
            claim.setting,
            claim.judgement.verdict.word()
        );
    }
    println!(
        "report in {:.0} s; wrote {}",
        outcome.seconds,
        path.display()
    );
}

/// The pair accuracies of Fig. 2A as a Markdown table, with their means.
pub fn print_pair_table(rows: &[PairAccuracy]) {
    println!("\n| task | pair accuracy, no distractors | pair accuracy, with distractors |");
    println!("|---|---|---|");
    for row in rows {
        let (a, b) = (row.without_distractors, row.with_distractors);
        println!("| {} | {a:.4} | {b:.4} |", row.task);
    }
    let n = rows.len() as f64;
    let mean = |f: fn(&PairAccuracy) -> f64| rows.iter().map(f).sum::<f64>() / n;
    println!(
        "| mean of {} | {:.4} | {:.4} |",
        rows.len(),
        mean(|r| r.without_distractors),
        mean(|r| r.with_distractors)
    );
}

/// The closing lines of a multi-task pretraining.
pub fn print_conv_pretrained(done: &ConvPretrained, seconds: f64, out: &Path) {
    let p = &done.provenance;
    let missed = match p.target {
        Some(target) if p.heldout_accuracy < target => {
            format!(" (target {target:.2} not reached at the epoch cap)")
        }
        None if p.epochs == p.max_epochs => " (stopped at the epoch cap)".to_string(),
        _ => String::new(),
    };
    let trained = done.pretraining_tasks.len();
    println!(
        "pretrained on {} ({}) in {} epochs ({seconds:.1} s): held-out mean accuracy over its {trained} pretraining tasks {:.4}{missed}",
        p.benchmark,
        p.transfer.name(),
        p.epochs,
        p.heldout_accuracy
    );
    if let Some(last) = done.epochs.last() {
        let per_task: Vec<String> = (p.tasks.iter().zip(&last.accuracy))
            .map(|(t, a)| format!("{t} {a:.3}"))
            .collect();
        println!("per task: {}", per_task.join(", "));
        if trained < p.tasks.len() {
            println!(
                "pretrained on: {} (the other heads are untrained)",
                done.pretraining_tasks.join(", ")
            );
        }
    }
    println!("wrote {}", out.display());
}

/// The header of `comod bench`'s table.
pub fn print_bench_header() {
    let (body, threads) = (Body::detect(), rayon::current_num_threads());
    println!(
        "{body:?} body ({}), {threads} threads, T = {SAMPLES}; each rate beside the FMA peak of its instruction set and thread count (for an SGEMM or workload line, the highest of the readings taken at the start and after each such line; \"above\" where the rate exceeds every reading: all were disturbed), and beside SGEMM; last, the fastest timed run and its rate's fraction of the same peak (the median is the figure to quote; the fastest shows how far a shared machine's noise moved it)",
        body.isa()
    );
    println!(
        "{:<24} {:>13} {:>16} {:>26} {:>10} {:>22}",
        "workload", "median", "rate", "of FMA peak", "of SGEMM", "fastest, of FMA peak"
    );
}

/// How a learning-rate grid's sweeps went.
pub fn print_tuning(reports: &[SweepReport], records: &[Record], rates: usize) {
    let run: usize = reports.iter().map(|r| r.run).sum();
    let seconds: f64 = reports.iter().map(|r| r.seconds).sum();
    println!(
        "{} runs over {rates} rates ({run} run now in {seconds:.1} s, the rest resumed)",
        records.len()
    );
}

/// A grid's table, its chosen rates and its files.
pub fn print_tuned(tuning: &Tuning) {
    println!("{}", tuning.table);
    println!("chosen rates, for comod sweep:\n  {}", tuning.flags);
    for path in &tuning.written {
        println!("wrote {}", path.display());
    }
}

/// One line of `comod bench`'s table.
pub fn print_bench_line(line: &BenchLine) {
    let percent = |ratio: Option<f64>| match ratio {
        Some(ratio) => format!("{:>6.1} %", 100.0 * ratio),
        None => "above".to_string(),
    };
    let (ratio, fastest) = (percent(line.ratio()), percent(line.fastest_ratio()));
    println!(
        "{:<24} {:>10.3} ms {:>8.1} GFLOP/s {ratio:>8} of {:>6.1} ({:<8}, {} reading{}) {:>8.1} % {:>10.3} ms {fastest:>8}",
        line.workload,
        line.seconds * 1e3,
        line.gflops,
        line.peak_gflops,
        line.isa,
        line.peak_readings,
        if line.peak_readings == 1 { "" } else { "s" },
        100.0 * line.sgemm_ratio(),
        line.fastest_seconds * 1e3,
    );
}

/// The progress of long jobs (`reproduce`, `report`) as bars and lines.
pub struct Progress {
    pretraining: ProgressBar,
    sweep: ProgressBar,
}

impl Progress {
    /// Bars not shown until they move.
    pub fn new() -> Progress {
        Progress {
            pretraining: pretraining_bar(),
            sweep: sweep_bar(),
        }
    }
}

impl Observer for Progress {
    fn reused(&self, checkpoint: &Path) {
        println!("reusing {} (same seed and data)", checkpoint.display());
    }

    fn reused_as(&self, source: &Path, checkpoint: &Path) {
        println!(
            "reusing {} as {} (same seed and data; where the network is modulated does not enter its pretraining)",
            source.display(),
            checkpoint.display()
        );
    }

    fn pretraining_epoch(&self, stats: &EpochStats, max_epochs: usize) {
        show_epoch(
            &self.pretraining,
            stats.epoch,
            max_epochs,
            epoch_message(stats),
        );
    }

    fn pretrained(&self, report: &PretrainReport, seconds: f64, checkpoint: &Path) {
        self.pretraining.finish_and_clear();
        let target = PretrainOptions::DEFAULT.target_accuracy;
        print_pretrained(report, seconds, target, checkpoint);
    }

    fn sweep_progress(&self, done: usize, total: usize) {
        show_runs(&self.sweep)(done, total);
    }

    fn sweep_done(&self, report: &SweepReport, results: &Path) {
        self.sweep.finish_and_clear();
        print_sweep(report, results);
    }

    fn summary(&self, files: &SummaryFiles) {
        print_summary_files(files);
    }

    fn stage(&self, what: &str) {
        println!("== {what}");
    }
}

/// Notes on a result accepted partial, or whose completeness cannot be
/// told (records of older formats carry no plan).
pub fn print_completeness(completeness: &Completeness, path: &Path) {
    let path = path.display();
    if !completeness.is_complete() {
        eprintln!(
            "warning: {path}: a partial result (accepted with --partial): {}",
            completeness.describe()
        );
    }
    if completeness.unplanned > 0 {
        eprintln!(
            "note: {path}: {} runs carry no plan (older record formats): whether the result is whole was not checked for them",
            completeness.unplanned
        );
    }
}

/// Lets a closed standard output end the process quietly, as Unix tools
/// do (`comod bench | head -1`), instead of a panic on the failed print:
/// the default action of SIGPIPE, which Rust programs start without.
/// Results files stay whole: each record is one write, as under SIGKILL.
pub fn end_quietly_on_closed_stdout() {
    #[cfg(unix)]
    {
        unsafe extern "C" {
            fn signal(signum: i32, handler: usize) -> usize;
        }
        const SIGPIPE: i32 = 13;
        const SIG_DFL: usize = 0;
        // SAFETY: restoring a signal's default action, before any thread
        // starts, has no precondition.
        unsafe {
            signal(SIGPIPE, SIG_DFL);
        }
    }
}
