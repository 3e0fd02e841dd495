//! Analyses of sweep results (§5): the metrics of a learning curve and
//! their per-task aggregation, summary tables and plots.

pub mod figures;
pub mod metrics;
pub mod neurons;
pub mod plots;
pub mod stats;
pub mod summary;
pub mod verdict;

pub use summary::{FileSummary, SummaryFiles, summarize, summarize_file, write_summary};
