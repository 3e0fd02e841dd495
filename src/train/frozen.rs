//! The pretrained network as fine-tuning runs share it (§4): frozen
//! weights and, packed once, the layers the fused kernel runs (§3).

use crate::kernel::KernelPlan;
use crate::net::Model;

/// A pretrained network that runs only read: many runs and tasks share
/// one, each with its own [`Modulation`](crate::net::Modulation).
#[derive(Clone, Debug)]
pub struct FrozenNetwork {
    /// The network.
    pub model: Model<f32>,
    /// Its layers between ℓ and L−1, packed for the kernel.
    pub plan: KernelPlan,
}

impl FrozenNetwork {
    /// Freezes `model`, packing its weights for the kernel.
    pub fn new(model: Model<f32>) -> FrozenNetwork {
        let plan = KernelPlan::new(&model);
        FrozenNetwork { model, plan }
    }

    /// Multiply-adds of one example through layers `from..=L` (blocks only).
    pub fn macs_from(&self, from: usize) -> f64 {
        (from..=self.model.arch().depth())
            .map(|l| self.model.layer(l).shape.macs())
            .sum::<usize>() as f64
    }
}
