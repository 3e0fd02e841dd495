//! Where long jobs report their progress (a progress bar, a log): the
//! main job, reports and their pretraining and sweeps.

use std::path::Path;

use crate::analysis::SummaryFiles;
use crate::sweep::SweepReport;
use crate::train::{EpochStats, PretrainReport};

/// Where a job reports its progress.
pub trait Observer: Sync {
    /// The folder's checkpoint matches and is reused.
    fn reused(&self, checkpoint: &Path);
    /// The network at `source` is the one pretraining would give for
    /// `checkpoint`'s architecture, and was written there
    /// ([`crate::net::Arch::pretrains_as`], [`crate::conv::ConvArch::pretrains_as`]).
    fn reused_as(&self, source: &Path, _checkpoint: &Path) {
        self.reused(source);
    }
    /// A pretraining epoch finished.
    fn pretraining_epoch(&self, stats: &EpochStats, max_epochs: usize);
    /// Pretraining finished and its checkpoint was written.
    fn pretrained(&self, report: &PretrainReport, seconds: f64, checkpoint: &Path);
    /// `done` of `total` sweep runs are complete.
    fn sweep_progress(&self, done: usize, total: usize);
    /// The sweep finished and its results were written.
    fn sweep_done(&self, report: &SweepReport, results: &Path);
    /// The summary of a sweep was written (`comod reproduce`).
    fn summary(&self, _files: &SummaryFiles) {}
    /// A stage of a job begins.
    fn stage(&self, _what: &str) {}
}
