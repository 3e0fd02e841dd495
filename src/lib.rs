//! comod: learned stochastic co-modulation (Haimerl, Simoncelli & Savin 2022).
//!
//! A frozen, pretrained network is fine-tuned for a new task by learning only
//! the coupling of a fast random modulator into an early layer; the readout
//! gates each neuron by its covariance with the modulator. The mathematics,
//! defaults and interpretation choices are in the model document,
//! `docs/model.md`; the code cites its sections as §1–§8.
//!
//! Data flows one way: [`data`] → [`net`] → [`kernel`] → [`train`] →
//! [`sweep`] → [`analysis`], with [`reproduce`] running them as one job,
//! [`report`] judging the paper's claims from sweeps under every reading
//! (§5), and [`tune`] choosing learning rates by grids of sweeps; [`io`]
//! sits at the edges.

#![warn(missing_docs)]

pub mod analysis;
pub mod bench;
pub mod conv;
pub mod data;
pub mod digest;
pub mod error;
pub mod io;
pub mod kernel;
pub mod named;
pub mod net;
pub mod observer;
pub mod pretrained;
pub mod report;
pub mod reproduce;
pub mod rng;
#[cfg(feature = "cli")]
pub mod run_options;
pub mod sweep;
pub mod threads;
pub mod train;
pub mod tune;

pub use error::{Error, Result};
