//! Analyses of sweep results (SPEC §5): summary tables and plots.

pub mod plots;
pub mod summary;
