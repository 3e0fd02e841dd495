"""Independent cross-check of `comod trace` on convolutional networks (§7, §8).

Written from the model document (docs/model.md §8) alone, in numpy float64,
with its own convolution (a sum of shifted products over the k×k taps),
max-pool, forward and backward passes (no autograd) and no code shared with
comod. For each random case (stages, kernel sizes, channels, pooling, dense
sizes, heads, modulated stage, β, K, T, the heads the loss reads, λ, gain
rule, with and without coupling and gain) it writes a convolutional
checkpoint and an input file, runs `comod trace`, recomputes every output
and compares tensor by tensor.

The error of a tensor is max|comod − numpy| / max|numpy|; a case fails above
--tolerance (default 2e-4). For `trial_gain` the scale is at least 64 f32
ulps of std(m)·max|z| divided by the tolerance: a covariance that small is
the rounding of f32 activities (c = 0, a channel whose coupling is 0, two
nearly equal samples), not a value to compare. The worst error per tensor
is printed.

    pip install numpy safetensors
    cargo build --release
    python3 tests/crosscheck/conv_crosscheck.py --cases 24
"""

import argparse
import json
import pathlib
import subprocess
import sys
import tempfile

import numpy as np

import trace_options
from safetensors.numpy import load_file, save_file

ROOT = pathlib.Path(__file__).resolve().parents[2]
WINDOW = [(0, 0), (0, 1), (1, 0), (1, 1)]

# The built-in architecture of mnist-attributes first, then the report's
# architecture-study variant modulated at its second conv stage (widths x2),
# then random ones.
FIXED = [dict(input=[1, 28, 28], stages=[("conv", 8, 3), ("maxpool",), ("conv", 16, 3), ("maxpool",), ("dense", 128)],
              tasks=16, modulated=1),
         dict(input=[1, 28, 28], stages=[("conv", 16, 3), ("maxpool",), ("conv", 32, 3), ("maxpool",), ("dense", 128)],
              tasks=16, modulated=3)]


def random_spec(rng):
    channels, side = int(rng.integers(1, 4)), int(rng.integers(4, 13))
    stages, size = [], side
    for _ in range(int(rng.integers(1, 3))):
        stages.append(("conv", int(rng.integers(1, 11)), int(rng.choice([1, 3, 5]))))
        if rng.integers(2) and size >= 2:
            stages.append(("maxpool",))
            size //= 2
    convs = [i + 1 for i, s in enumerate(stages) if s[0] == "conv"]
    for _ in range(int(rng.integers(1, 3))):
        stages.append(("dense", int(rng.integers(1, 31))))
    return dict(input=[channels, side, side], stages=stages, tasks=int(rng.integers(1, 5)),
                modulated=int(rng.choice(convs)))


class Network:
    def __init__(self, spec, rng):
        self.spec = spec
        self.beta = float(np.float32(rng.uniform(-0.5, 0.5)))
        c, h, w = spec["input"]
        self.params = []          # per stage: (W, b) or None; float32 values held in float64
        shape = (h, w, c)
        for stage in spec["stages"]:
            if stage[0] == "conv":
                _, co, k = stage
                bound = np.sqrt(6 / (k * k * shape[2]))
                self.params.append((self.f32(rng.uniform(-bound, bound, (co, k, k, shape[2]))),
                                    self.f32(rng.uniform(-0.1, 0.1, co))))
                shape = (shape[0], shape[1], co)
            elif stage[0] == "maxpool":
                self.params.append(None)
                shape = (shape[0] // 2, shape[1] // 2, shape[2])
            else:
                n_in = int(np.prod(shape))
                bound = np.sqrt(6 / n_in)
                self.params.append((self.f32(rng.uniform(-bound, bound, (stage[1], n_in))),
                                    self.f32(rng.uniform(-0.1, 0.1, stage[1]))))
                shape = (stage[1],)
        self.gated = shape[0]
        bound = np.sqrt(3 / self.gated)
        self.heads = (self.f32(rng.uniform(-bound, bound, (2 * spec["tasks"], self.gated))),
                      self.f32(rng.uniform(-0.1, 0.1, 2 * spec["tasks"])))
        self.channels = spec["stages"][spec["modulated"] - 1][1]

    @staticmethod
    def f32(a):
        return a.astype(np.float32).astype(np.float64)

    def names(self):
        out = []
        for s, p in enumerate(self.params):
            if p is not None:
                out += [(f"stage{s + 1}.weight", p[0]), (f"stage{s + 1}.bias", p[1])]
        return out + [("heads.weight", self.heads[0]), ("heads.bias", self.heads[1])]

    def save(self, path):
        stages = []
        for stage in self.spec["stages"]:
            if stage[0] == "conv":
                stages.append({"kind": "conv", "channels": stage[1], "kernel": stage[2]})
            elif stage[0] == "maxpool":
                stages.append({"kind": "maxpool"})
            else:
                stages.append({"kind": "dense", "size": stage[1]})
        c, h, w = self.spec["input"]
        arch = {"format": 2, "input": {"channels": c, "height": h, "width": w}, "stages": stages,
                "tasks": self.spec["tasks"], "modulated_stage": self.spec["modulated"], "beta": self.beta}
        tasks = [f"task{t}" for t in range(self.spec["tasks"])]
        provenance = {"benchmark": "crosscheck", "tasks": tasks, "seed": 0, "epochs": 0,
                      "heldout_accuracy": 0.0, "data_sha256": ""}
        tensors = {name: value.astype(np.float32) for name, value in self.names()}
        save_file(tensors, str(path), metadata={"format": "comod-conv-1", "architecture": json.dumps(arch),
                                               "pretraining": json.dumps(provenance)})

    def forward(self, x, m, coupling, gain, variance=0.0):
        """x [K, H, W, C]; m [K]. Returns logits and the cache of every stage."""
        cache, h = [], x
        last = len(self.spec["stages"]) - 1
        for s, stage in enumerate(self.spec["stages"]):
            if stage[0] == "conv":
                W, b = self.params[s]
                pre = conv(h, W, b)
                u = np.maximum(pre, 0.0)
                factor = None
                if s + 1 == self.spec["modulated"]:
                    factor = np.exp(m[:, None] * coupling[None, :] - variance * coupling[None, :] ** 2 / 2
                                    - self.beta)  # [K, C]
                    out = u * factor[:, None, None, :]
                else:
                    out = u
                cache.append(dict(x=h, pre=pre, u=u, factor=factor))
                h = out
            elif stage[0] == "maxpool":
                out, choice = maxpool(h)
                cache.append(dict(x=h, choice=choice))
                h = out
            else:
                W, b = self.params[s]
                flat = h.reshape(h.shape[0], -1)
                z = np.maximum(flat @ W.T + b, 0.0)
                g = gain if (s == last and gain is not None) else np.ones(z.shape[1])
                cache.append(dict(x=h, flat=flat, z=z, g=g if s == last else np.ones(z.shape[1])))
                h = z * g if s == last else z
        logits = h @ self.heads[0].T + self.heads[1]
        return logits, cache, h

    def backward(self, cache, h_last, dlogits, m, coupling):
        grads = {}
        grads["heads.weight"] = dlogits.T @ h_last
        grads["heads.bias"] = dlogits.sum(0)
        dh = dlogits @ self.heads[0]
        dc = np.zeros(self.channels)
        for s in reversed(range(len(self.spec["stages"]))):
            stage, c = self.spec["stages"][s], cache[s]
            if stage[0] == "dense":
                W, _ = self.params[s]
                dz = dh * c["g"] * (c["z"] > 0)
                grads[f"stage{s + 1}.weight"] = dz.T @ c["flat"]
                grads[f"stage{s + 1}.bias"] = dz.sum(0)
                dh = (dz @ W).reshape(c["x"].shape)
            elif stage[0] == "maxpool":
                dh = maxpool_backward(dh, c["choice"], c["x"].shape)
            else:
                W, _ = self.params[s]
                du = dh
                if c["factor"] is not None:
                    dfactor = (dh * c["u"]).sum((1, 2))             # [K, C]
                    dc = (dfactor * c["factor"] * m[:, None]).sum(0)
                    du = dh * c["factor"][:, None, None, :]
                dpre = du * (c["pre"] > 0)
                dW, db, dx = conv_backward(c["x"], W, dpre)
                grads[f"stage{s + 1}.weight"], grads[f"stage{s + 1}.bias"] = dW, db
                dh = dx
        return grads, dc

    def gated_activity(self, x, m, coupling, variance=0.0):
        """z of the gated layer (before the gain) for one stimulus at each m,
        with the factor exp(m·c − σ²c²/2 − β) (σ² = 0: none)."""
        _, cache, _ = self.forward(np.repeat(x[None], len(m), 0), m, coupling, None, variance)
        return cache[-1]["z"]


def conv(x, W, b):
    k = W.shape[1]
    p = k // 2
    _, h, w, _ = x.shape
    xp = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
    out = np.zeros(x.shape[:3] + (W.shape[0],)) + b
    for dy in range(k):
        for dx in range(k):
            out += np.einsum("khwi,oi->khwo", xp[:, dy:dy + h, dx:dx + w, :], W[:, dy, dx, :])
    return out


def conv_backward(x, W, dout):
    k = W.shape[1]
    p = k // 2
    _, h, w, _ = x.shape
    xp = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
    dW = np.zeros_like(W)
    dxp = np.zeros_like(xp)
    for dy in range(k):
        for dx in range(k):
            dW[:, dy, dx, :] = np.einsum("khwo,khwi->oi", dout, xp[:, dy:dy + h, dx:dx + w, :])
            dxp[:, dy:dy + h, dx:dx + w, :] += np.einsum("khwo,oi->khwi", dout, W[:, dy, dx, :])
    return dW, dout.sum((0, 1, 2)), dxp[:, p:p + h, p:p + w, :]


def maxpool(x):
    h2, w2 = x.shape[1] // 2, x.shape[2] // 2
    windows = np.stack([x[:, dy:2 * h2:2, dx:2 * w2:2, :] for dy, dx in WINDOW])  # [4, K, h2, w2, C]
    choice = np.argmax(windows, axis=0)   # the first maximum in window order
    return windows.max(0), choice


def maxpool_backward(dout, choice, shape):
    dx = np.zeros(shape)
    h2, w2 = dout.shape[1], dout.shape[2]
    for i, (dy, ddx) in enumerate(WINDOW):
        dx[:, dy:2 * h2:2, ddx:2 * w2:2, :] += dout * (choice == i)
    return dx


def expected_outputs(net, inputs, meta):
    x = inputs["stimuli"].astype(np.float64)
    k, t = inputs["modulator"].shape
    tasks = net.spec["tasks"]
    # The coupling tensor holds θ: c itself, or w with c = w² (§7).
    theta = inputs["coupling"].astype(np.float64) if "coupling" in inputs else np.zeros(net.channels)
    coupling, square, variance = trace_options.read(meta, theta)
    gain = inputs["gain"].astype(np.float64) if "gain" in inputs else None
    m0 = float(np.float32(meta.get("m0", "1")))
    lam = float(np.float32(meta.get("lambda", "0")))
    rule = meta.get("gain_rule", "covariance")
    trial_gain = np.zeros((k, net.gated))
    # Correlations of neurons whose spread over the samples is within f32
    # rounding of their size are ill-conditioned in any f32 framework: such
    # entries are left out of the comparison.
    ill = np.zeros((k, net.gated), bool)
    floor = 0.0
    for i in range(k):
        m = inputs["modulator"][i].astype(np.float64)
        # Shifted by its first row (covariance is shift-invariant), so that a
        # neuron that does not vary with m has exactly zero covariance.
        z = raw = net.gated_activity(x[i], m, coupling, variance)
        floor = max(floor, m.std() * np.abs(z).max() * np.finfo(np.float32).eps)
        z = z - z[0]
        dm = m - m.mean()
        cov = (dm[:, None] * (z - z.mean(0))).mean(0)
        if rule == "correlation":
            sz, sm = z.std(0), m.std()
            cov = np.where(sz > 0, cov / np.where(sz > 0, sz * sm, 1.0), 0.0)
            ill[i] = sz < 64 * np.finfo(np.float32).eps * np.abs(raw).max(0)
        trial_gain[i] = cov
    m = np.full(k, m0)
    logits, cache, h_last = net.forward(x, m, coupling, gain)
    labels = inputs["labels"]
    heads = range(tasks) if meta.get("task", "all") == "all" else [int(meta["task"])]
    dlogits = np.zeros_like(logits)
    loss = 0.0
    count = k * len(heads)
    for head in heads:
        z = logits[:, 2 * head:2 * head + 2]
        logp = z - np.log(np.exp(z - z.max(1, keepdims=True)).sum(1, keepdims=True)) - z.max(1, keepdims=True)
        y = labels[:, head]
        loss -= logp[np.arange(k), y].sum() / count
        p = np.exp(logp)
        p[np.arange(k), y] -= 1.0
        dlogits[:, 2 * head:2 * head + 2] = p / count
    loss += lam * np.abs(theta).sum()
    grads, dc = net.backward(cache, h_last, dlogits, m, coupling)
    dc = trace_options.parameter_gradient(theta, square, lam, dc)
    out = {"trial_gain": trial_gain, "trial_gain.floor": floor, "trial_gain.ill": ill, "logits": logits, "loss": np.array([loss]), "grad.coupling": dc}
    for name, _ in net.names():
        out[f"grad.{name}"] = grads[name]
    return out


def random_inputs(net, rng):
    k = int(rng.choice([1, 2, 3, 5]))
    t = int(rng.choice([2, 7, 48, 200]))
    c, h, w = net.spec["input"]
    inputs = {
        "stimuli": rng.uniform(0.0, 1.0, (k, h, w, c)).astype(np.float32),
        "modulator": rng.normal(1.0, np.sqrt(0.1), (k, t)).astype(np.float32),
        "labels": rng.integers(0, 2, (k, net.spec["tasks"])).astype(np.int64),
    }
    if rng.integers(2):
        coupling = rng.uniform(-1.0, 1.5, net.channels)
        coupling[rng.integers(len(coupling))] = 0.0
        inputs["coupling"] = coupling.astype(np.float32)
    if rng.integers(2):
        inputs["gain"] = rng.uniform(0.0, 2.0, net.gated).astype(np.float32)
    meta = {}
    if rng.integers(2):
        meta["m0"] = str(rng.choice(["1", "0.8", "1.25"]))
    if rng.integers(2):
        meta["lambda"] = "0.1"
    if rng.integers(3):
        meta["gain_rule"] = str(rng.choice(["covariance", "correlation"]))
    if rng.integers(2):
        meta["task"] = str(int(rng.integers(net.spec["tasks"])))
    trace_options.draw(rng, inputs, meta)
    return inputs, meta


def tensor_error(got, want, floor=0.0):
    scale = max(np.abs(want).max() if want.size else 0.0, floor)
    diff = np.abs(got.astype(np.float64) - want).max() if want.size else 0.0
    return diff / scale if scale > 0 else diff


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=24, help="number of random cases (default 24)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the cases (default 0)")
    parser.add_argument("--tolerance", type=float, default=2e-4, help="largest tensor error allowed (default 2e-4)")
    parser.add_argument("--comod", default=str(ROOT / "target" / "release" / "comod"), help="the comod binary")
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    worst, failures = {}, 0
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        for case in range(args.cases):
            spec = FIXED[case] if case < len(FIXED) else random_spec(rng)
            net = Network(spec, rng)
            inputs, meta = random_inputs(net, rng)
            net.save(tmp / "ck.safetensors")
            save_file(inputs, str(tmp / "in.safetensors"), metadata=meta)
            run = subprocess.run([args.comod, "trace", "--checkpoint", str(tmp / "ck.safetensors"),
                                  "--inputs", str(tmp / "in.safetensors"), "--out", str(tmp / "out.safetensors")],
                                 capture_output=True, text=True)
            if run.returncode != 0:
                print(f"case {case}: comod trace failed: {run.stderr.strip()}")
                failures += 1
                continue
            got = load_file(str(tmp / "out.safetensors"))
            want = expected_outputs(net, inputs, meta)
            floor = want.pop("trial_gain.floor")
            ill = want.pop("trial_gain.ill")
            got["trial_gain"] = np.where(ill, 0.0, got["trial_gain"])
            want["trial_gain"] = np.where(ill, 0.0, want["trial_gain"])
            if set(got) != set(want):
                print(f"case {case}: tensors {sorted(got)} differ from {sorted(want)}")
                failures += 1
                continue
            bad = []
            for name, expected in want.items():
                if got[name].dtype != np.float32 or got[name].shape != expected.shape:
                    bad.append(f"{name}: {got[name].dtype} {got[name].shape}, expected float32 {expected.shape}")
                    continue
                # A gain is a covariance of f32 activities: below 64 f32 ulps of
                # std(m)·max|z| it is rounding, in comod as in any f32 framework.
                error = tensor_error(got[name], expected, 64 * floor / args.tolerance if name == "trial_gain" else 0.0)
                key = name if not name.startswith("grad.stage") else "grad.stage{s}." + name.rsplit(".", 1)[1]
                worst[key] = max(worst.get(key, 0.0), error)
                if error > args.tolerance:
                    bad.append(f"{name}: error {error:.2e}")
            if bad:
                failures += 1
                print(f"case {case} FAILED (spec {spec}, K={len(inputs['labels'])}, "
                      f"T={inputs['modulator'].shape[1]}, meta {meta}): " + "; ".join(bad))
    print("worst error per tensor over all cases:")
    for name in sorted(worst):
        print(f"  {name:<24} {worst[name]:.2e}")
    print(f"{args.cases - failures} passed, {failures} failed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
