//! Multi-task fine-tuning of a convolutional network (§8): the benchmarks,
//! joint pretraining of the shared backbone and its heads, per-task
//! fine-tuning with the four methods of §4, and task switching.

pub mod data;
pub mod evaluate;
pub mod finetune;
pub mod pretrain;
pub mod record;
pub mod sweep;
