"""A convolutional network (§8) from Python: a checkpoint written by
`comod multitask pretrain`, traced on arrays, its weights replaced."""

import subprocess

import numpy as np
import pytest

import comod


@pytest.fixture(scope="module")
def conv(comod_bin, tmp_path_factory):
    path = tmp_path_factory.mktemp("conv") / "conv.safetensors"
    subprocess.run([comod_bin, "multitask", "pretrain", "--out", str(path), "--epochs", "1", "--examples", "200"],
                   check=True, capture_output=True)
    return comod.Network.load(path)


def test_a_conv_trace_has_every_gradient_by_its_tensor_name(conv):
    assert conv.kind == "conv"
    tasks = conv.arch["tasks"]
    rng = np.random.default_rng(2)
    k, t = 3, 32
    stimuli = rng.random((k, 28, 28, 1), dtype=np.float32)
    modulator = rng.normal(1.0, 0.3, (k, t)).astype(np.float32)
    labels = rng.integers(0, 2, (k, tasks)).astype(np.int64)
    tensors = conv.tensors()
    channels = tensors[f"stage{conv.arch['modulated_stage']}.weight"].shape[0]
    coupling = np.full(channels, 0.2, np.float32)
    out = comod.trace(conv, stimuli, modulator, labels, coupling=coupling)
    assert out["logits"].shape == (k, 2 * tasks) and out["trial_gain"].shape[0] == k
    for name, value in tensors.items():
        assert out[f"grad.{name}"].shape == value.shape, name
        assert np.isfinite(out[f"grad.{name}"]).all(), name
    assert np.abs(out["grad.coupling"]).max() > 0
    # One head only: the loss reads that head.
    one = comod.loss(conv, stimuli, modulator, labels, coupling=coupling, task=0)
    assert np.isfinite(one) and one != pytest.approx(float(out["loss"][0]), rel=1e-6)
    # Replacing the heads' bias shifts the logits by exactly that much.
    bias = tensors["heads.bias"] + np.float32(0.5)
    shifted = comod.forward(conv.with_tensors({"heads.bias": bias}), stimuli, modulator, labels, coupling=coupling)
    np.testing.assert_allclose(shifted - out["logits"], 0.5, atol=1e-5)
    with pytest.raises(ValueError, match="stimuli"):
        comod.trace(conv, rng.random((k, 784), dtype=np.float32), modulator, labels)
