//! Analyses of sweep results (§5): the metrics of a learning curve and
//! their per-task aggregation, summary tables and plots.

pub mod metrics;
pub mod plots;
pub mod summary;

pub use summary::{SummaryFiles, summarize, write_summary};
