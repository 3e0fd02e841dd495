//! What a backward pass computes and where it leaves it (§4), for both
//! networks: the MLP of §2 and the convolutional network of §8 take the
//! same [`Depth`] and fill the same [`Grads`].

/// How far a backward pass goes: what a method trains (§4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Depth {
    /// The readout's weights and biases (the MLP's last layer, a task's
    /// head of the convolutional network): `retrain-last`.
    Readout,
    /// The coupling c of the modulated layer only: the modulation methods.
    Coupling,
    /// The coupling c and the readout's weights and biases: the
    /// modulation methods on a held-out task with a fresh head (§8).
    CouplingAndReadout,
    /// Every weight and bias, and the coupling: pretraining, `retrain`,
    /// and the trace of §7.
    All,
}

/// Gradients of a backward pass, in the layout of the network's flat
/// parameter buffer.
#[derive(Clone, Debug, PartialEq)]
pub struct Grads<T> {
    /// ∂L/∂params, the layout of the parameters.
    pub params: Vec<T>,
    /// ∂L/∂c, one value per modulated neuron (MLP) or channel (conv).
    pub coupling: Vec<T>,
}
