"""Runs and sweeps: the record of a run is the CLI's, sweeps resume,
results read back, and Ctrl-C stops a sweep leaving every record whole."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import comod
from conftest import QUICK


def without_wall_time(record):
    record = dict(record)
    record.pop("wall_s")
    return record


def test_a_run_is_the_record_the_cli_writes(checkpoint, comod_bin, tmp_path):
    record = comod.run(checkpoint, "1-7@0", "stochastic", seed=4, record_coupling=True, lr_stochastic=0.02, **QUICK)
    assert record["task"] == "1-7@0" and record["method"] == "stochastic"
    assert isinstance(record["curve"], np.ndarray) and record["curve"].dtype == np.float32
    assert len(record["curve"]) == QUICK["batches"] + 1
    out = tmp_path / "cli.jsonl"
    subprocess.run(
        [comod_bin, "sweep", "--checkpoint", str(checkpoint), "--tasks", "1-7@0", "--methods", "stochastic",
         "--repeats", "1", "--seed", "4", "--record-coupling", "--lr-stochastic", "0.02", "--batches", "10",
         "--test-composites", "100", "--samples", "16", "--out", str(out)],
        check=True, capture_output=True,
    )
    (cli,) = comod.read_results(out)
    mine, theirs = without_wall_time(record), without_wall_time(cli)
    assert set(mine) == set(theirs)
    for key in mine:
        if isinstance(mine[key], np.ndarray):
            np.testing.assert_array_equal(mine[key], theirs[key], err_msg=key)
        else:
            assert mine[key] == theirs[key], key
    # …and the file's own text agrees on the curve, number for number.
    line = json.loads(out.read_text().splitlines()[0])
    np.testing.assert_array_equal(np.asarray(line["curve"], dtype=np.float32), record["curve"])


def test_a_sweep_resumes_and_reads_back(checkpoint, tmp_path):
    out = tmp_path / "s.jsonl"
    seen = []
    first = comod.sweep(checkpoint, out, tasks=["1-7@0", "2-3@1"], repeats=2, methods="stochastic,retrain-last",
                        progress=lambda done, total: seen.append((done, total)), threads=1, **QUICK)
    assert first == {"planned": 8, "resumed": 0, "run": 8, "seconds": first["seconds"]}
    assert seen[-1] == (8, 8) and len(seen) == 8
    again = comod.sweep(checkpoint, out, tasks=["1-7@0", "2-3@1"], repeats=2, methods="stochastic,retrain-last",
                        progress=False, **QUICK)
    assert (again["resumed"], again["run"]) == (8, 0)
    records = comod.read_results(out)
    assert len(records) == 8
    assert {(r["task"], r["method"], r["repeat"]) for r in records} == {
        (t, m, k) for t in ("1-7@0", "2-3@1") for m in ("stochastic", "retrain-last") for k in (0, 1)
    }
    # Another configuration is refused, naming the file.
    with pytest.raises(ValueError, match="s.jsonl"):
        comod.sweep(checkpoint, out, tasks="1-7@0", repeats=1, progress=False, samples=17, batches=10)


def test_results_as_a_data_frame(checkpoint, tmp_path):
    pandas = pytest.importorskip("pandas")
    out = tmp_path / "f.jsonl"
    comod.sweep(checkpoint, out, tasks="1-7@0", repeats=2, methods="retrain-last", progress=False, **QUICK)
    frame = comod.read_results_frame(out)
    assert isinstance(frame, pandas.DataFrame) and list(frame["repeat"]) == [0, 1]


def test_the_same_seed_gives_the_same_record_at_any_thread_count(checkpoint):
    one = comod.run(checkpoint, "4-9@3", "deterministic", threads=1, **QUICK)
    two = comod.run(checkpoint, "4-9@3", "deterministic", threads=2, **QUICK)
    np.testing.assert_array_equal(one["curve"], two["curve"])


# The child takes Ctrl-C as a terminal's foreground process does, even
# where it was started with SIGINT ignored (a shell's background job).
SWEEP = """
import signal, sys, comod
signal.signal(signal.SIGINT, signal.default_int_handler)
comod.sweep(sys.argv[1], sys.argv[2], tasks="all", repeats=1, methods="stochastic",
            progress=lambda d, t: print(d, flush=True), batches=40, test_composites=400, samples=32, threads=1)
"""


def test_ctrl_c_stops_a_sweep_within_a_second_and_every_record_is_whole(checkpoint, tmp_path):
    out = tmp_path / "interrupted.jsonl"
    child = subprocess.Popen([sys.executable, "-c", SWEEP, str(checkpoint), str(out)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() != ""  # the first run is recorded
    child.send_signal(signal.SIGINT)
    sent = time.monotonic()
    _, stderr = child.communicate(timeout=30)
    stopped = time.monotonic() - sent
    assert child.returncode != 0 and "KeyboardInterrupt" in stderr, stderr
    assert stopped < 1.0, f"stopped {stopped:.2f} s after Ctrl-C"
    records = comod.read_results(out)
    assert 1 <= len(records) < 180
    text = out.read_text()
    assert text.endswith("\n") and len(text.splitlines()) == len(records)
    # The file resumes as after a kill.
    resumed = comod.sweep(checkpoint, out, tasks="all", repeats=1, methods="stochastic", progress=False,
                          batches=40, test_composites=400, samples=32)
    assert resumed["resumed"] == len(records) and resumed["run"] == 180 - len(records)
