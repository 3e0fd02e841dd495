"""Fixtures of the comod Python tests: a small network, the shipped
digits, and the `comod` binary for comparisons with the CLI."""

import os
import pathlib
import shutil

import numpy as np
import pytest

import comod

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def net():
    return comod.Network.initialise("paper3", seed=3)


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory, net):
    path = tmp_path_factory.mktemp("net") / "net.safetensors"
    net.save(path)
    return path


@pytest.fixture(scope="session")
def comod_bin():
    """The `comod` executable: $COMOD_BIN (set by .ci/run), else the
    clone's release build; the comparison tests are skipped without one."""
    path = os.environ.get("COMOD_BIN") or str(ROOT / "target" / "release" / "comod")
    if not os.path.exists(path):
        if os.environ.get("COMOD_BIN"):
            pytest.fail(f"COMOD_BIN={path} does not exist")
        pytest.skip("no comod binary (set COMOD_BIN or cargo build --release)")
    return path


@pytest.fixture
def trials():
    """Four trials of random canvases and modulator samples."""
    rng = np.random.default_rng(11)
    k, t = 4, 64
    stimuli = rng.random((k, 784), dtype=np.float32)
    modulator = rng.normal(1.0, np.sqrt(0.1), (k, t)).astype(np.float32)
    labels = np.array([1, 7, 7, 1], dtype=np.int64)
    return stimuli, modulator, labels


QUICK = dict(batches=10, test_composites=100, samples=16)
"""Run options that make a run take milliseconds."""
