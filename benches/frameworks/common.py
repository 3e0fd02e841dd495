"""What the framework scripts share: the workloads of `comod bench`, the
constants of comod's default `online` protocol (§4), and the timing loop
with its command line. Imported by `torch_workloads.py` and
`jax_workloads.py`.
"""

import argparse
import json
import statistics
import time

T, BATCHES, BATCH, TEST, MU, VAR, LAMBDA, TAU_MAX = 200, 250, 2, 1000, 1.0, 0.1, 0.1, 100.0
LR = {"stochastic": 1e-2, "deterministic": 1e-2, "retrain": 1e-4, "retrain-last": 1e-3}
TRIALS = [
    ("trial_B2", "paper3", 1, 2),
    ("trial_B256", "paper3", 1, 256),
    ("deep4_trial_B2", "deep4", 1, 2),
    ("deep4_trial_B256", "deep4", 1, 256),
    ("deep4_mod2_trial_B2", "deep4", 2, 2),
    ("deep4_mod2_trial_B256", "deep4", 2, 256),
]
METHODS = ["stochastic", "deterministic", "retrain", "retrain-last"]
# The sweep workload: every method × SWEEP_REPEATS repeats of an online run on one task (32 runs).
SWEEP = "sweep32"
SWEEP_REPEATS = 8
WORKLOADS = [t[0] for t in TRIALS] + [f"online_{m}" for m in METHODS] + [SWEEP]
# The convolutional workloads (§8) a framework script may also time: the
# second conv stage of conv-mnist (8 → 16 channels, 14×14, 3×3, batch 256)
# forward (comod's direct kernel) and backward, and trials of the gain.
CONV_WORKLOADS = ["conv_forward_direct", "conv_backward", "conv_trial_B2", "conv_trial_B256"]

# The pixels of each quadrant in turn: the encoder is 4 blocks of 100 neurons, each seeing one quadrant.
QUADRANT_PIXELS = [r * 28 + c for q in range(4) for r in range(28) for c in range(28) if (r // 14) * 2 + c // 14 == q]


def median_seconds(run, seconds, min_runs):
    """Median wall time of `run` over at least `min_runs` runs and `seconds`, after one warm-up run."""
    run()
    times, start = [], time.perf_counter()
    while len(times) < min_runs or time.perf_counter() - start < seconds:
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def close_curves(name, got, want, tolerance=0.003):
    """Checks two learning curves (accuracies at the same measurements) agree within float
    tolerance: at most `tolerance` apart at every measurement (a few of 1000 test answers
    flipped by a different summation order). Returns a line saying so; raises if not."""
    got, want = [float(x) for x in got], [float(x) for x in want]
    if len(got) != len(want):
        raise SystemExit(f"{name}: {len(got)} measurements, expected {len(want)}")
    worst = max(abs(a - b) for a, b in zip(got, want))
    if worst > tolerance:
        raise SystemExit(f"{name}: curves differ by up to {worst:.4f} (tolerance {tolerance})")
    return f"{name}: {len(got)} measurements agree within {worst:.4f} (tolerance {tolerance})"


def main(doc, framework, version, workload, threads_help=None, set_threads=None, threads=None, known=None,
         check=None, options=()):
    """The command line of a framework script: times `workload(name)` for each selected workload
    (`known`: the names it has, default WORKLOADS).

    With `threads_help`, the script takes `--threads` and passes it to `set_threads`; else it reports
    `threads` (the CPUs it may use). `check(args)`, if given, runs under `--check` instead of the
    timing: it checks that the script's fast forms compute what its plain ones do. `options`: extra
    (flag, help) switches, passed to `workload(name, args)`.
    """
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    for flag, help_text in options:
        parser.add_argument(flag, action="store_true", help=help_text)
    if check:
        parser.add_argument("--check", action="store_true",
                            help="check the fast forms against the plain ones on a few runs, then exit")
    if threads_help:
        parser.add_argument("--threads", type=int, default=2, help=threads_help)
    parser.add_argument("--seconds", type=float, default=2.0, help="minimum timed seconds per workload (default 2)")
    known = known or WORKLOADS
    parser.add_argument("--only", default="", help="comma-separated workloads (default: all): " + ", ".join(known))
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    args = parser.parse_args()
    names = [n for n in args.only.split(",") if n] or known
    for name in names:
        if name not in known:
            parser.error(f"--only {name}: no such workload")
    if threads_help:
        threads = args.threads
        set_threads(threads)
    if check and args.check:
        check(args)
        return
    for name in names:
        whole = name.startswith("online") or name == SWEEP
        seconds = median_seconds(workload(name, args), args.seconds, 3 if whole else 5)
        if args.json:
            print(json.dumps({"framework": framework, "version": version, "threads": threads,
                              "workload": name, "seconds": seconds}), flush=True)
        else:
            print(f"{name:<24} {seconds * 1e3:10.3f} ms   ({framework} {version}, {threads} threads)")


def online_method(name):
    """The method of an `online_*` workload, or None for a trial workload."""
    return name.removeprefix("online_") if name.startswith("online_") else None
