//! The modulation of a network for one task (§2, §8): the coupling c of the
//! modulated layer and the gain g of the gated layer.
//!
//! It is kept apart from the frozen [`Model`](crate::net::Model) because it
//! belongs to a task, not to the network: many runs share one pretrained
//! network, each with its own modulation, and a multi-task network switches
//! task by swapping the modulation alone.

use crate::net::arch::Arch;
use crate::net::linalg::Real;

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
    pub fn off(arch: &Arch) -> Modulation<T> {
        Modulation {
            coupling: vec![T::ZERO; arch.size(arch.modulated_layer)],
            gain: vec![T::ONE; arch.size(arch.gated_layer())],
        }
    }

    /// True when the sizes fit a network of `arch`.
    pub fn fits(&self, arch: &Arch) -> bool {
        self.coupling.len() == arch.size(arch.modulated_layer)
            && self.gain.len() == arch.size(arch.gated_layer())
    }
}
