//! The modulation of a network for one task (§2, §3, §8): the coupling c
//! of the modulated layer, the gain g of the gated layer, and the rule by
//! which a trial's gain is read from the modulator.
//!
//! It is kept apart from the frozen network because it
//! belongs to a task, not to the network: many runs share one pretrained
//! network, each with its own modulation, and a multi-task network switches
//! task by swapping the modulation alone.

use crate::net::arch::Arch;
use crate::net::linalg::Real;

/// A network that is modulated at one layer and gated at another (the
/// MLP of §2, the convolutional network of §8): the sizes of its coupling
/// and its gain.
pub trait Modulated {
    /// Entries of the coupling c: neurons of the modulated layer (MLP) or
    /// channels of the modulated stage (conv).
    fn coupling_len(&self) -> usize;
    /// Entries of the gain g: neurons of the gated layer.
    fn gain_len(&self) -> usize;
}

impl Modulated for Arch {
    fn coupling_len(&self) -> usize {
        self.size(self.modulated_layer)
    }

    fn gain_len(&self) -> usize {
        self.size(self.gated_layer())
    }
}

impl<T: Real> Modulated for crate::net::Model<T> {
    fn coupling_len(&self) -> usize {
        self.arch().coupling_len()
    }

    fn gain_len(&self) -> usize {
        self.arch().gain_len()
    }
}

/// How the per-trial gain is read from the samples (§3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GainRule {
    /// g_j = cov_t(m, z_j) (paper Eq. 3, the default).
    Covariance,
    /// g_j = cov_t(m, z_j) / (std_t m · std_t z_j), 0 where std_t z_j = 0.
    Correlation,
}

crate::named!(GainRule {
    GainRule::Covariance => "covariance",
    GainRule::Correlation => "correlation",
});

/// Coupling and gain of one task (§2): with c = 0 and g = 1 (and β = 0)
/// the network computes its unmodulated function.
#[derive(Clone, Debug, PartialEq)]
pub struct Modulation<T> {
    /// Coupling c of the modulated layer ℓ, `[N_ℓ]`: the layer's output is
    /// multiplied by exp(m·c − β).
    pub coupling: Vec<T>,
    /// Gain g of the gated layer L−1, `[N_{L−1}]`: the layer's output is
    /// multiplied by g before the readout.
    pub gain: Vec<T>,
}

impl<T: Real> Modulation<T> {
    /// No modulation for a network of `arch`: c = 0, g = 1 (pretraining,
    /// the general task, the retraining methods).
    pub fn off(arch: &impl Modulated) -> Modulation<T> {
        Modulation {
            coupling: vec![T::ZERO; arch.coupling_len()],
            gain: vec![T::ONE; arch.gain_len()],
        }
    }

    /// True when the sizes fit a network of `arch`.
    pub fn fits(&self, arch: &impl Modulated) -> bool {
        self.coupling.len() == arch.coupling_len() && self.gain.len() == arch.gain_len()
    }
}
