"""The numerics against the plain-numpy float64 reference (reference.py),
and the reference itself against central finite differences."""

import threading

import numpy as np
import pytest

import comod
import reference


def close(actual, expected, rtol=2e-3):
    scale = np.abs(expected).max() + 1e-30
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * scale)


@pytest.fixture
def modulated(net):
    rng = np.random.default_rng(5)
    coupling = rng.uniform(0.9, 1.1, 400).astype(np.float32) * 0.5
    gain = rng.uniform(0.5, 1.5, 200).astype(np.float32)
    return coupling, gain


def test_trial_gain_matches_the_reference(net, trials, modulated):
    stimuli, modulator, _ = trials
    coupling, _ = modulated
    got = comod.trial_gain(net, stimuli, modulator, coupling=coupling)
    want = reference.trial_gain(net.tensors(), stimuli, modulator, coupling)
    assert got.shape == (4, 200) and got.dtype == np.float32
    assert np.abs(want).max() > 0
    close(got, want)


def test_forward_loss_and_gradients_match_the_reference(net, trials, modulated):
    stimuli, modulator, labels = trials
    coupling, gain = modulated
    tensors = net.tensors()
    kwargs = dict(coupling=coupling, gain=gain)
    *_, logits = reference.forward(tensors, stimuli, coupling, gain)
    close(comod.forward(net, stimuli, modulator, labels, **kwargs), logits)
    assert comod.loss(net, stimuli, modulator, labels, **kwargs) == pytest.approx(
        reference.loss(tensors, stimuli, labels, coupling, gain), rel=1e-4
    )
    got = comod.gradients(net, stimuli, modulator, labels, **kwargs)
    want = reference.gradients(tensors, stimuli, labels, coupling, gain)
    assert set(got) == set(want)
    for name in want:
        assert np.abs(want[name]).max() > 0, name
        close(got[name], want[name])


def test_the_reference_gradients_match_finite_differences(net, trials, modulated):
    stimuli, _, labels = trials
    coupling, gain = modulated
    tensors = net.tensors()
    analytic = reference.gradients(tensors, stimuli, labels, coupling, gain)["coupling"]
    c = coupling.astype(np.float64)
    h = 1e-6
    for i in [0, 57, 123, 399]:
        up, down = c.copy(), c.copy()
        up[i] += h
        down[i] -= h
        numeric = (reference.loss(tensors, stimuli, labels, up, gain) - reference.loss(tensors, stimuli, labels, down, gain)) / (2 * h)
        assert numeric == pytest.approx(analytic[i], rel=1e-5, abs=1e-10)


def test_the_l1_term_and_m0_reach_the_loss(net, trials, modulated):
    stimuli, modulator, labels = trials
    coupling, gain = modulated
    base = comod.loss(net, stimuli, modulator, labels, coupling=coupling, gain=gain)
    with_l1 = comod.loss(net, stimuli, modulator, labels, coupling=coupling, gain=gain, lam=0.1)
    assert with_l1 - base == pytest.approx(0.1 * np.abs(coupling.astype(np.float64)).sum(), rel=1e-4)
    at = comod.forward(net, stimuli, modulator, labels, coupling=coupling, gain=gain, m0=0.5)
    *_, want = reference.forward(net.tensors(), stimuli, coupling, gain, m0=0.5)
    close(at, want)


def test_with_tensors_loads_weights_and_changes_the_numbers(net, trials):
    stimuli, modulator, labels = trials
    tensors = net.tensors()
    scaled = (tensors["layers.3.weight"] * 2).astype(np.float32)
    other = net.with_tensors({"layers.3.weight": scaled})
    np.testing.assert_array_equal(other.tensors()["layers.3.weight"], scaled)
    a = comod.forward(net, stimuli, modulator, labels)
    b = comod.forward(other, stimuli, modulator, labels)
    bias = tensors["layers.3.bias"]
    close(b - bias, 2 * (a - bias))


def test_computation_releases_the_gil(net):
    rng = np.random.default_rng(0)
    k, t = 64, 500
    stimuli = rng.random((k, 784), dtype=np.float32)
    modulator = rng.normal(1, 0.3, (k, t)).astype(np.float32)
    ticks = []
    done = threading.Event()

    def count():
        while not done.is_set():
            ticks.append(1)

    counter = threading.Thread(target=count)
    counter.start()
    before = len(ticks)
    for _ in range(3):
        comod.trial_gain(net, stimuli, modulator, coupling=np.full(400, 0.2, np.float32), threads=1)
    during = len(ticks) - before
    done.set()
    counter.join()
    assert during > 1000, f"the other thread ran {during} times while comod computed"
