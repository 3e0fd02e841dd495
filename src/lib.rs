//! comod: learned stochastic co-modulation (Haimerl, Simoncelli & Savin 2022).
//!
//! A frozen, pretrained network is fine-tuned for a new task by learning only
//! the coupling of a fast random modulator into an early layer; the readout
//! gates each neuron by its covariance with the modulator. The mathematics,
//! defaults and interpretation choices are in SPEC.md, cited by section (§).
//! Data flows one way: [`data`] → [`net`] → [`train`]; [`io`] sits at the edges.

pub mod analysis;
pub mod bench;
pub mod data;
pub mod digest;
pub mod error;
pub mod io;
pub mod kernel;
pub mod net;
pub mod rng;
pub mod sweep;
pub mod train;

pub use error::{Error, Result};
