"""Bad inputs: each one clear error of the right type, naming the tensor,
option or file; nothing computed or written."""

import numpy as np
import pytest

import comod


def trace(net, trials, **changes):
    stimuli, modulator, labels = trials
    args = dict(stimuli=stimuli, modulator=modulator, labels=labels)
    args.update(changes)
    return comod.trace(net, args.pop("stimuli"), args.pop("modulator"), args.pop("labels"), **args)


@pytest.mark.parametrize(
    "change, needle",
    [
        (dict(stimuli=np.zeros((4, 784))), "tensor stimuli: dtype float64, expected float32"),
        (dict(labels=np.array([1, 7, 7, 1], dtype=np.int32)), "tensor labels: dtype int32, expected int64"),
        (dict(stimuli=np.zeros((784, 4), np.float32).T), "tensor stimuli: not C-contiguous"),
        (dict(stimuli=np.zeros((4, 783), np.float32)), "tensor stimuli has shape [4, 783]"),
        (dict(modulator=np.ones((3, 64), np.float32)), "tensor modulator has K = 3 rows"),
        (dict(stimuli=np.full((4, 784), np.nan, np.float32)), "tensor stimuli has a non-finite value"),
        (dict(labels=np.array([1, 7, 7, 10], dtype=np.int64)), "labels"),
        (dict(coupling=np.zeros(399, np.float32)), "coupling"),
        (dict(stimuli=[[0.0] * 784] * 4), "expected a numpy array"),
        (dict(gain_rule="median"), "gain_rule"),
        (dict(bogus=1), "unknown option 'bogus'"),
    ],
)
def test_bad_trace_inputs_are_one_value_error(net, trials, change, needle):
    with pytest.raises(ValueError) as error:
        trace(net, trials, **change)
    message = str(error.value)
    assert needle in message and "\n" not in message, message


def test_bad_networks_and_files(tmp_path, net):
    with pytest.raises(OSError):
        comod.Network.load(tmp_path / "missing.safetensors")
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError) as error:
        comod.Network.load(broken)
    assert str(error.value).startswith(f"{broken}: not a valid safetensors file"), str(error.value)
    with pytest.raises(ValueError, match="unknown architecture \"paper99\""):
        comod.Network.initialise("paper99")
    with pytest.raises(ValueError, match="tensor layers.3.weight: shape"):
        net.with_tensors({"layers.3.weight": np.zeros((3, 3), np.float32)})
    with pytest.raises(ValueError, match="not a tensor of this network"):
        net.with_tensors({"layers.9.weight": np.zeros((3, 3), np.float32)})
    nan = net.tensors()["layers.3.weight"].copy()
    nan[0, 0] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        net.with_tensors({"layers.3.weight": nan})


def test_bad_run_options_name_the_flag(checkpoint, tmp_path):
    out = tmp_path / "r.jsonl"
    cases = [
        (dict(lr_stochastic=-1), "--lr-stochastic -1"),
        (dict(bogus=3), "--bogus"),
        (dict(samples=0), "--samples"),
        (dict(tasks="9-1@0"), "9-1@0"),
        (dict(shard="3/2"), "shard"),
        (dict(threads=0), "threads 0"),
    ]
    for options, needle in cases:
        with pytest.raises(ValueError) as error:
            comod.sweep(checkpoint, out, repeats=1, progress=False, **{"tasks": "1-7@0", **options})
        assert needle in str(error.value), (options, str(error.value))
        assert not out.exists(), options
    with pytest.raises(OSError):
        comod.sweep(tmp_path / "none.safetensors", out, tasks="1-7@0", repeats=1, progress=False)
