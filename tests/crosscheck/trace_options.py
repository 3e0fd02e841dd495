"""The trace options every cross-check draws and reads (§3, §7): the
variance compensation of the trial gains and the square coupling.
Written from the model document, as the cross-checks are."""

import numpy as np


def draw(rng, inputs, meta):
    """Adds the options to `meta` now and then; under the square coupling
    the `coupling` tensor becomes w = ±√|c|, so that c keeps the range of
    the linear coupling's draws."""
    if rng.integers(3) == 0:
        meta["modulation_compensation"] = "variance"
        if rng.integers(2):
            meta["modulator_var"] = str(rng.choice(["0.01", "0.3"]))
    if rng.integers(3) == 0:
        meta["coupling_param"] = "square"
        if "coupling" in inputs:
            c = inputs["coupling"]
            inputs["coupling"] = (np.sign(c) * np.sqrt(np.abs(c))).astype(np.float32)


def read(meta, theta):
    """(c, square, σ²) for the coupling parameter θ of the inputs: c = θ or
    θ²; σ² of the compensated factor exp(m·c − σ²c²/2 − β), 0 without it."""
    square = meta.get("coupling_param", "linear") == "square"
    variance = (float(np.float32(meta.get("modulator_var", "0.1")))
                if meta.get("modulation_compensation", "none") == "variance" else 0.0)
    return (theta ** 2 if square else theta), square, variance


def parameter_gradient(theta, square, lam, grad_c):
    """∂loss/∂θ from ∂CE/∂c: 2θ·∂CE/∂c under the square coupling, plus the
    L1 subgradient λ·sign(θ), sign(0) = 0."""
    return (2 * theta * grad_c if square else grad_c) + lam * np.sign(theta)
