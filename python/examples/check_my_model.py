"""Check a PyTorch implementation of comod's per-trial gain (§3) against
comod, as you would in your own test suite. Skipped when torch is absent.

    python python/examples/check_my_model.py
"""

import sys

import numpy as np

import comod

try:
    import torch
except ImportError:
    print("skipped: torch is not installed (pip install torch)")
    sys.exit(0)


def torch_trial_gain(tensors, stimuli, modulator, coupling):
    """My model: the paper3 MLP's gated activity at every modulator sample,
    then its covariance with the samples (docs/model.md §2-§3)."""
    w1, b1 = torch.from_numpy(tensors["layers.1.weight"]), torch.from_numpy(tensors["layers.1.bias"])
    w2, b2 = torch.from_numpy(tensors["layers.2.weight"]), torch.from_numpy(tensors["layers.2.bias"])
    s, m, c = torch.from_numpy(stimuli), torch.from_numpy(modulator), torch.from_numpy(coupling)
    encoded = torch.exp(s @ w1.T + b1)                                   # [K, N1]
    h1 = encoded[:, None, :] * torch.exp(m[:, :, None] * c)               # [K, T, N1]
    z = torch.relu(h1 @ w2.T + b2)                                       # [K, T, N2]
    centred = m - m.mean(dim=1, keepdim=True)
    return (centred[:, :, None] * (z - z.mean(dim=1, keepdim=True))).mean(dim=1)


def main():
    net = comod.Network.initialise("paper3", seed=0)
    rng = np.random.default_rng(0)
    stimuli = rng.random((8, 784), dtype=np.float32)
    modulator = rng.normal(1.0, np.sqrt(0.1), (8, 200)).astype(np.float32)
    coupling = rng.uniform(0.9, 1.1, 400).astype(np.float32)
    expected = comod.trial_gain(net, stimuli, modulator, coupling=coupling)
    mine = torch_trial_gain(net.tensors(), stimuli, modulator, coupling).numpy()
    scale = np.abs(expected).max()
    worst = np.abs(mine - expected).max() / scale
    print(f"trial gain [8, 200]: worst difference {worst:.2e} of the largest gain")
    assert worst < 1e-3, "my trial gain differs from comod's"
    print("ok")


if __name__ == "__main__":
    main()
