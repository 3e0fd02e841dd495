"""comod, PyTorch and JAX on the same workloads, the same machine and the
same thread count, in one table: median time, GFLOP/s, fraction of the
machine's FMA peak, ratio to comod, with the versions and the instruction
set.

    cargo build --release
    pip install numpy torch "jax[cpu]"
    python benches/frameworks/compare.py --threads 2 [--rounds 3] [--seconds 1] [--only trial_B2,online_stochastic]

Each round runs every framework once on every workload, in a rotated
order, so that a noisy neighbour or a clock change hits all of them
alike; the table shows the median over rounds of each framework's median.
FLOP counts and the FMA peak come from `comod bench` of the same round
(the peak of the instruction set comod's dispatcher picks, at this thread
count). Every process is pinned to the first `--threads` CPUs with
`taskset`; PyTorch also gets `set_num_threads`, comod `RAYON_NUM_THREADS`.
The `online_*` rows are one whole fine-tuning run: comod runs `--threads`
runs at once, one per thread, as its sweeps do, and reports wall time per
run; PyTorch and JAX run one at a time on all the threads.
`sweep32` is the same 32-run sweep (every method × 8 repeats of an
`online` run) for every framework, in seconds per sweep: comod schedules
it as `comod sweep` does (repeats over the threads), JAX at its
strongest (per method one jitted program `vmap`ped over the repeats),
PyTorch one run after another. `torch.compile` is PyTorch with the online
runs' evaluation and training step compiled (the trial and conv
workloads stay eager there, so that framework times only the online
rows and the sweep). Before timing, `--check` (default on) has the JAX
script check its vmapped sweep against its single runs and the PyTorch
script its compiled runs against its eager ones, curve by curve.
A framework that is not installed is left out with a note.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path

import common

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
FRAMEWORKS = ["comod", "torch", "torch.compile", "jax"]


def known(framework):
    """The workloads a framework's script has (comod: all)."""
    if framework == "torch":
        return common.WORKLOADS + common.CONV_WORKLOADS
    if framework == "torch.compile":
        return [f"online_{m}" for m in common.METHODS] + [common.SWEEP]
    return common.WORKLOADS


def script(framework):
    """The framework's script and its extra arguments."""
    if framework == "jax":
        return [str(HERE / "jax_workloads.py")]
    return [str(HERE / "torch_workloads.py")] + (["--compile"] if framework == "torch.compile" else [])


def command(framework, args, workloads):
    only = ",".join(workloads)
    if framework == "comod":
        return [str(args.comod), "bench", "--json", "--seconds", str(args.seconds), "--only", only,
                "--data", str(ROOT / "data")]
    cmd = [sys.executable] + script(framework) + ["--json", "--seconds", str(args.seconds), "--only", only]
    return cmd + (["--threads", str(args.threads)] if framework.startswith("torch") else [])


def pinned(args, cmd):
    """`cmd` pinned to the first `--threads` CPUs, with the thread-count variables set."""
    env = dict(os.environ, RAYON_NUM_THREADS=str(args.threads), OMP_NUM_THREADS=str(args.threads))
    cpus = ",".join(str(c) for c in sorted(os.sched_getaffinity(0))[: args.threads])
    return ["taskset", "-c", cpus] + cmd, env


def check(framework, args):
    """The framework script's own check of its fast forms (vmapped sweep, torch.compile)."""
    extra = ["--threads", str(args.threads)] if framework.startswith("torch") else []
    cmd, env = pinned(args, [sys.executable, script(framework)[0], "--check"] + extra)
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{framework}: {' '.join(cmd)} failed its check:\n{(done.stderr + done.stdout).strip()}")
    print(done.stdout.strip(), file=sys.stderr)


def run(framework, args, workloads):
    """One process of `framework` over `workloads`: its JSON lines."""
    cmd, env = pinned(args, command(framework, args, workloads))
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{framework}: {' '.join(cmd)} failed:\n{done.stderr.strip()}")
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def available(framework):
    if framework == "comod":
        return True
    module = "torch" if framework.startswith("torch") else "jax"
    return subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True).returncode == 0


def cpu_model():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)),
                        help="threads (and CPUs) for every framework (default: all CPUs of this process)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds over all frameworks (default 3)")
    parser.add_argument("--seconds", type=float, default=1.0,
                        help="minimum timed seconds per workload and round (default 1)")
    parser.add_argument("--only", default="trial_B2,trial_B256,deep4_trial_B2,deep4_trial_B256,online_stochastic,"
                        "online_deterministic,online_retrain,online_retrain-last,sweep32",
                        help="comma-separated workloads of `comod bench` (default: %(default)s)")
    parser.add_argument("--frameworks", default=",".join(FRAMEWORKS), help="default: %(default)s")
    parser.add_argument("--comod", type=Path, default=ROOT / "target" / "release" / "comod",
                        help="the comod binary (default: %(default)s)")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    parser.add_argument("--no-check", action="store_true",
                        help="skip the scripts' checks of their vmapped sweep and compiled runs (default: check)")
    args = parser.parse_args()
    if not args.comod.exists():
        sys.exit(f"--comod {args.comod}: no such file (run `cargo build --release` first)")
    if not 1 <= args.threads <= len(os.sched_getaffinity(0)):
        sys.exit(f"--threads {args.threads}: must be from 1 to the {len(os.sched_getaffinity(0))} CPUs of this process")
    workloads = [w for w in args.only.split(",") if w]
    frameworks = []
    for framework in args.frameworks.split(","):
        if framework not in FRAMEWORKS:
            sys.exit(f"--frameworks {framework}: must be among {', '.join(FRAMEWORKS)}")
        if available(framework):
            frameworks.append(framework)
        else:
            print(f"note: {framework} is not installed here: left out", file=sys.stderr)
    if "comod" not in frameworks:
        frameworks.insert(0, "comod")
    if not args.no_check:
        for framework in ["jax", "torch"]:
            if framework in frameworks or (framework == "torch" and "torch.compile" in frameworks):
                check(framework, args)

    seconds = {}                       # (framework, workload) → per-round medians
    flops, peaks, versions, isa = {}, [], {}, None
    for round_ in range(args.rounds):
        order = frameworks[round_ % len(frameworks):] + frameworks[: round_ % len(frameworks)]
        for framework in order:
            print(f"round {round_ + 1}/{args.rounds}: {framework}", file=sys.stderr, flush=True)
            mine = workloads if framework == "comod" else [w for w in workloads if w in known(framework)]
            if not mine:
                continue
            lines = run(framework, args, mine)
            if framework == "comod":
                rows = {line["workload"]: line for line in lines}
                isa = next(line["isa"] for line in lines if line["workload"] in workloads)
                peaks.append(rows[f"fma_{isa}_{args.threads}_thread{'s' if args.threads > 1 else ''}"]["gflops"])
                for w in workloads:
                    flops[w] = rows[w]["flops"]
                    seconds.setdefault(("comod", w), []).append(rows[w]["seconds"])
                versions["comod"] = subprocess.run([str(args.comod), "--version"], capture_output=True,
                                                   text=True).stdout.strip() or "comod"
            else:
                for line in lines:
                    seconds.setdefault((framework, line["workload"]), []).append(line["seconds"])
                    versions[framework] = f"{line['framework']} {line['version']}"

    peak = statistics.median(peaks)
    header = ["workload", "framework", "median", "GFLOP/s", "of FMA peak", "vs comod"]
    rows = []
    for w in workloads:
        comod_time = statistics.median(seconds[("comod", w)])
        for framework in frameworks:
            if (framework, w) not in seconds:
                continue
            median = statistics.median(seconds[(framework, w)])
            gflops = flops[w] / median / 1e9
            unit = f"{median:.3f} s" if median >= 1 else f"{median * 1e3:.2f} ms"
            if w == common.SWEEP:
                unit += " /sweep"
            rows.append([w, versions[framework], unit, f"{gflops:.1f}", f"{100 * gflops / peak:.1f} %",
                         f"{median / comod_time:.2f}×"])
    print(f"{cpu_model()}; comod's body: {isa}; {args.threads} threads; FMA peak ({isa}, {args.threads} threads, "
          f"median of {args.rounds} rounds) {peak:.1f} GFLOP/s; medians of {args.rounds} alternating rounds; "
          f"'vs comod' = time / comod's time")
    if args.markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
        for row in rows:
            print("| " + " | ".join(row) + " |")
    else:
        widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
        for row in [header] + rows:
            print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)))


if __name__ == "__main__":
    main()
