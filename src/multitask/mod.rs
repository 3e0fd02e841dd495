//! Multi-task convolutional networks (§8): the benchmarks and their
//! loaders, and joint pretraining of the shared backbone and its heads.
//! Fine-tuning a task runs through the one fine-tuning path
//! ([`crate::train`]), with the benchmark's tasks as its study.

pub mod data;
pub mod evaluate;
pub mod pretrain;
