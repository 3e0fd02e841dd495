"""A plain-numpy float64 implementation of the paper3 MLP, its per-trial
gain and its gradients, written from comod's model document (docs/model.md
§2-§4), not from comod's code: the reference the package is tested against.

Network (§2): h1 = exp(W1 s + b1) * exp(m c - beta) (beta = 0),
z = relu(W2 h1 + b2), h2 = g * z, logits = W3 h2 + b3.
Gain (§3, covariance rule): g_j = (1/T) sum_t (m_t - mean m)(z_tj - mean_t z_j),
with z computed at each sample m_t. Loss (§4): mean 10-way cross-entropy
(+ lambda * |c|_1), gradients with g held constant.
"""

import numpy as np


def layers(tensors):
    return [(tensors[f"layers.{l}.weight"].astype(np.float64), tensors[f"layers.{l}.bias"].astype(np.float64)) for l in (1, 2, 3)]


def gated_activity(tensors, s, m, c):
    (w1, b1), (w2, b2), _ = layers(tensors)
    h1 = np.exp(w1 @ s + b1) * np.exp(m * c)
    return np.maximum(w2 @ h1 + b2, 0.0)


def trial_gain(tensors, stimuli, modulator, coupling):
    c = coupling.astype(np.float64)
    out = []
    for s, ms in zip(stimuli.astype(np.float64), modulator.astype(np.float64)):
        z = np.stack([gated_activity(tensors, s, m, c) for m in ms])
        out.append(((ms - ms.mean())[:, None] * (z - z.mean(axis=0))).mean(axis=0))
    return np.stack(out)


def forward(tensors, stimuli, coupling, gain, m0=1.0):
    (w1, b1), (w2, b2), (w3, b3) = layers(tensors)
    s = stimuli.astype(np.float64)
    e = np.exp(s @ w1.T + b1) * np.exp(m0 * coupling.astype(np.float64))
    a2 = e @ w2.T + b2
    h2 = gain.astype(np.float64) * np.maximum(a2, 0.0)
    return s, e, a2, h2, h2 @ w3.T + b3


def loss(tensors, stimuli, labels, coupling, gain, m0=1.0, lam=0.0):
    *_, logits = forward(tensors, stimuli, coupling, gain, m0)
    shifted = logits - logits.max(axis=1, keepdims=True)
    logp = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return -logp[np.arange(len(labels)), labels].mean() + lam * np.abs(coupling.astype(np.float64)).sum()


def gradients(tensors, stimuli, labels, coupling, gain, m0=1.0):
    """Backpropagation by hand; returns the gradient of every tensor."""
    (w1, _), (w2, _), (w3, _) = layers(tensors)
    s, e, a2, h2, logits = forward(tensors, stimuli, coupling, gain, m0)
    k = len(labels)
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    d_logits = p
    d_logits[np.arange(k), labels] -= 1.0
    d_logits /= k
    d_h2 = d_logits @ w3
    d_a2 = d_h2 * gain.astype(np.float64) * (a2 > 0)
    d_e = d_a2 @ w2
    d_a1 = d_e * e  # d exp(a)/da = exp(a), times the constant modulation factor
    mask = w1 != 0  # the encoder's receptive fields (§2)
    return {
        "coupling": (d_e * e * m0).sum(axis=0),
        "layers.1.weight": (d_a1.T @ s) * mask,
        "layers.1.bias": d_a1.sum(axis=0),
        "layers.2.weight": d_a2.T @ e,
        "layers.2.bias": d_a2.sum(axis=0),
        "layers.3.weight": d_logits.T @ h2,
        "layers.3.bias": d_logits.sum(axis=0),
    }
