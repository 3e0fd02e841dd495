"""Independent cross-check of `comod trace` (§7).

Written from the model document (docs/model.md) alone, in numpy float64, with its own forward and
backward passes (no autograd) and no code shared with comod. For each random
case (architecture, K, T, pair or 10-way readout, lambda, gain rule, the
variance compensation of the trial gains, the square coupling, with and
without coupling and gain) it writes a checkpoint and an input file, runs
`comod trace`, recomputes every output and compares tensor by tensor.

The error of a tensor is max|comod − numpy| / max|numpy| (relative to the
tensor's scale; an all-zero tensor must come out all zero). The scale of a
trial gain or a weight gradient is at least 64 f32 ulps / tolerance of its
terms' magnitude (a gradient: the same backward pass with |W|), below which
what cancels across samples, examples or inputs is rounding in any f32
code. A case fails above --tolerance (default 1e-4). The worst error per
tensor is printed.

    pip install numpy safetensors
    cargo build --release
    python3 tests/crosscheck/crosscheck.py --cases 24
"""

import argparse
import copy
import json
import pathlib
import subprocess
import sys
import tempfile

import numpy as np

import trace_options
from safetensors.numpy import load_file, save_file

ROOT = pathlib.Path(__file__).resolve().parents[2]
PIXELS = 784
QUADRANT_OF_PIXEL = ((np.arange(28)[:, None] // 14) * 2 + np.arange(28)[None, :] // 14).reshape(PIXELS)

# Architectures every run covers (§2 and its Fig. 3 variants), then random ones.
FIXED = [
    dict(sizes=[400, 200], kinds=["dense"], nonlinearity="exp", modulated=1),            # paper3
    dict(sizes=[400, 200], kinds=["dense"], nonlinearity="exp", modulated=2),            # paper3, late
    dict(sizes=[400, 200], kinds=["dense"], nonlinearity="relu", modulated=1),           # relu encoder
    dict(sizes=[400, 200, 200], kinds=["dense", "dense"], nonlinearity="exp", modulated=1),  # deep4
    dict(sizes=[400, 200, 200], kinds=["dense", "dense"], nonlinearity="exp", modulated=2),
    dict(sizes=[400, 200, 200], kinds=["local", "dense"], nonlinearity="exp", modulated=1),  # local2
    dict(sizes=[400, 200, 200], kinds=["local", "dense"], nonlinearity="exp", modulated=2),
    dict(sizes=[400, 200], kinds=["local"], nonlinearity="relu", modulated=2),           # local gated layer
]


def random_architecture(rng):
    depth = int(rng.integers(3, 5))
    sizes = [4 * int(rng.integers(1, 30))]
    kinds = []
    for _ in range(depth - 2):
        local = bool(rng.integers(2)) and sizes[-1] % 4 == 0
        sizes.append(4 * int(rng.integers(1, 20)) if local else int(rng.integers(1, 60)))
        kinds.append("local" if local else "dense")
    return dict(sizes=sizes, kinds=kinds, nonlinearity=["exp", "relu"][int(rng.integers(2))],
                modulated=int(rng.integers(1, depth)))


class Network:
    """Dense [out, in] weights with the masks of §2; layers 1..L."""

    def __init__(self, spec, rng):
        self.sizes = [PIXELS] + spec["sizes"] + [10]
        self.kinds = ["encoder"] + spec["kinds"] + ["readout"]
        self.nonlinearity = spec["nonlinearity"]
        self.modulated = spec["modulated"]
        self.beta = float(np.float32(rng.uniform(-0.5, 0.5)))
        self.depth = len(self.kinds)
        self.gated = self.depth - 1
        self.weights, self.biases, self.masks = [], [], []
        for l in range(1, self.depth + 1):
            n_in, n_out = self.sizes[l - 1], self.sizes[l]
            kind = self.kinds[l - 1]
            if kind == "encoder":
                mask = (np.arange(n_out)[:, None] // (n_out // 4)) == QUADRANT_OF_PIXEL[None, :]
                fan_in = 196
                bound = np.sqrt(0.75 / fan_in) if self.nonlinearity == "exp" else np.sqrt(6 / fan_in)
            elif kind == "local":
                mask = (np.arange(n_out)[:, None] // (n_out // 4)) == (np.arange(n_in)[None, :] // (n_in // 4))
                fan_in, bound = n_in // 4, np.sqrt(6 / (n_in // 4))
            else:
                mask = np.ones((n_out, n_in), bool)
                fan_in = n_in
                bound = np.sqrt(6 / fan_in) if kind == "dense" else np.sqrt(3 / fan_in)
            w = rng.uniform(-bound, bound, (n_out, n_in)) * mask
            self.weights.append(w.astype(np.float32).astype(np.float64))
            self.biases.append(rng.uniform(-0.1, 0.1, n_out).astype(np.float32).astype(np.float64))
            self.masks.append(mask)

    def save(self, path):
        layers = [{"kind": k, "size": s} for k, s in zip(self.kinds, self.sizes[1:])]
        layers[0]["nonlinearity"] = self.nonlinearity
        arch = {"format": 1, "input": PIXELS, "layers": layers, "modulated_layer": self.modulated, "beta": self.beta}
        tensors = {}
        for l in range(1, self.depth + 1):
            tensors[f"layers.{l}.weight"] = self.weights[l - 1].astype(np.float32)
            tensors[f"layers.{l}.bias"] = self.biases[l - 1].astype(np.float32)
        save_file(tensors, str(path), metadata={"comod": json.dumps(arch)})

    def activation(self, l, a):
        if self.kinds[l - 1] == "encoder" and self.nonlinearity == "exp":
            return np.exp(a)
        return np.maximum(a, 0.0)

    def forward(self, x, m, coupling, gain):
        """h_l = F(a_l) ⊙ factor_l, factor: exp(m·c − β) at ℓ, g at L−1 (§2)."""
        hs, as_, factors = [x], [], []
        for l in range(1, self.depth + 1):
            a = hs[-1] @ self.weights[l - 1].T + self.biases[l - 1]
            as_.append(a)
            if l == self.depth:
                return hs, as_, factors, a
            factor = np.ones(self.sizes[l])
            if l == self.modulated:
                factor = factor * np.exp(m * coupling - self.beta)
            if l == self.gated:
                factor = factor * gain
            factors.append(factor)
            hs.append(self.activation(l, a) * factor)

    def backward(self, hs, as_, factors, dlogits, m):
        """Gradients of every weight (masked), bias and of c, g held constant."""
        grads_w, grads_b = [None] * self.depth, [None] * self.depth
        grad_c = np.zeros(self.sizes[self.modulated])
        da = dlogits
        for l in range(self.depth, 0, -1):
            grads_w[l - 1] = (da.T @ hs[l - 1]) * self.masks[l - 1]
            grads_b[l - 1] = da.sum(axis=0)
            if l == 1:
                break
            dh = da @ self.weights[l - 1]
            below = l - 1
            if below == self.modulated:
                grad_c = m * (dh * hs[below]).sum(axis=0)   # ∂h/∂c = m·h
            a = as_[below - 1]
            if self.kinds[below - 1] == "encoder" and self.nonlinearity == "exp":
                da = dh * np.exp(a) * factors[below - 1]
            else:
                da = dh * (a > 0) * factors[below - 1]
        return grads_w, grads_b, grad_c

    def trial_gain(self, stimulus, samples, coupling, rule, variance):
        """§3, two passes: z_t for all samples, then centred moments; the
        modulated layer's factor exp(m·c − σ²c²/2 − β) (σ² = 0: none).
        z is first taken relative to its first sample, which changes no moment
        but keeps a constant z exactly constant (a mean of T equal floats
        rounds), so that its covariance and correlation come out exactly 0."""
        h = stimulus[None, :]
        for l in range(1, self.modulated + 1):
            h = self.activation(l, h @ self.weights[l - 1].T + self.biases[l - 1])
        z = h * np.exp(samples[:, None] * coupling[None, :] - variance * coupling[None, :] ** 2 / 2 - self.beta)
        for l in range(self.modulated + 1, self.gated + 1):
            z = np.maximum(z @ self.weights[l - 1].T + self.biases[l - 1], 0.0)
        dm = samples - samples.mean()
        floor = np.sqrt((dm ** 2).mean()) * np.abs(z).max() * np.finfo(np.float32).eps
        raw, z = z, z - z[0]
        dz = z - z.mean(axis=0)
        covariance = (dm[:, None] * dz).mean(axis=0)
        if rule == "covariance":
            return covariance, floor, np.zeros(len(covariance), bool)
        std_m, std_z = np.sqrt((dm ** 2).mean()), np.sqrt((dz ** 2).mean(axis=0))
        ill = std_z < 64 * np.finfo(np.float32).eps * np.abs(raw).max(axis=0)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where((std_z > 0) & (std_m > 0), covariance / (std_m * std_z), 0.0), floor, ill


def expected_outputs(net, inputs, meta):
    stimuli = inputs["stimuli"].astype(np.float64)
    modulator = inputs["modulator"].astype(np.float64)
    labels = inputs["labels"]
    m0 = float(np.float32(meta.get("m0", "1")))
    lam = float(np.float32(meta.get("lambda", "0")))
    rule = meta.get("gain_rule", "covariance")
    # The coupling tensor holds θ: c itself, or w with c = w² (§7).
    theta = inputs.get("coupling", np.zeros(net.sizes[net.modulated], np.float32)).astype(np.float64)
    coupling, square, variance = trace_options.read(meta, theta)
    gain = inputs.get("gain", np.ones(net.sizes[net.gated], np.float32)).astype(np.float64)
    k = len(labels)
    hs, as_, factors, logits = net.forward(stimuli, m0, coupling, gain)
    columns = list(inputs["pair"]) if "pair" in inputs else list(range(10))
    z = logits[:, columns]
    z_max = z.max(axis=1, keepdims=True)
    log_sum = np.log(np.exp(z - z_max).sum(axis=1, keepdims=True)) + z_max
    loss = (log_sum[:, 0] - z[np.arange(k), labels]).mean() + lam * np.abs(theta).sum()
    dz = np.exp(z - log_sum)
    dz[np.arange(k), labels] -= 1.0
    dlogits = np.zeros_like(logits)
    dlogits[:, columns] = dz / k
    grads_w, grads_b, grad_c = net.backward(hs, as_, factors, dlogits, m0)
    # The same backward pass with |W| and |dlogits| (the activities and
    # factors are positive): the magnitudes of the gradients' terms. A
    # gradient that cancels across examples or inputs is rounding below
    # 64 f32 ulps of its largest magnitude, in comod as in any f32 framework.
    magnitude_net = copy.copy(net)
    magnitude_net.weights = [np.abs(w) for w in net.weights]
    magnitude_w, magnitude_b, _ = magnitude_net.backward(hs, as_, factors, np.abs(dlogits), m0)
    grad_c = trace_options.parameter_gradient(theta, square, lam, grad_c)
    gains = [net.trial_gain(stimuli[i], modulator[i], coupling, rule, variance) for i in range(k)]
    out = {
        "trial_gain": np.stack([g for g, _, _ in gains]),
        # Below 64 f32 ulps of std(m)·max|z| a covariance is rounding, in
        # comod as in any f32 framework; correlations of neurons whose
        # spread is within rounding of their size are ill-conditioned.
        "trial_gain.floor": max(f for _, f, _ in gains),
        "trial_gain.ill": np.stack([ill for _, _, ill in gains]),
        "logits": logits,
        "loss": np.array([loss]),
        "grad.coupling": grad_c,
    }
    for l in range(1, net.depth + 1):
        out[f"grad.layers.{l}.weight"] = grads_w[l - 1]
        out[f"grad.layers.{l}.bias"] = grads_b[l - 1]
        out[f"grad.layers.{l}.weight.floor"] = np.abs(magnitude_w[l - 1]).max() * np.finfo(np.float32).eps
        out[f"grad.layers.{l}.bias.floor"] = np.abs(magnitude_b[l - 1]).max() * np.finfo(np.float32).eps
    return out


def random_inputs(net, rng):
    k = int(rng.choice([1, 2, 3, 5, 8, 17]))
    t = int(rng.choice([1, 2, 7, 48, 49, 200, 301]))
    inputs = {
        "stimuli": rng.uniform(0.0, 1.0, (k, PIXELS)).astype(np.float32),
        "modulator": rng.normal(1.0, np.sqrt(0.1), (k, t)).astype(np.float32),
    }
    if rng.integers(2):
        a, b = rng.choice(10, 2, replace=False)
        inputs["pair"] = np.array([a, b], np.int64)
        inputs["labels"] = rng.integers(0, 2, k).astype(np.int64)
    else:
        inputs["labels"] = rng.integers(0, 10, k).astype(np.int64)
    if rng.integers(2):
        coupling = rng.uniform(-2.0, 2.0, net.sizes[net.modulated])
        coupling[rng.integers(len(coupling))] = 0.0          # sign(0) = 0 in the L1 subgradient
        inputs["coupling"] = coupling.astype(np.float32)
    if rng.integers(2):
        inputs["gain"] = rng.uniform(0.0, 2.0, net.sizes[net.gated]).astype(np.float32)
    meta = {}
    if rng.integers(2):
        meta["m0"] = str(rng.choice(["1", "0.8", "1.25"]))
    if rng.integers(2):
        meta["lambda"] = "0.1"
    if rng.integers(3):
        meta["gain_rule"] = str(rng.choice(["covariance", "correlation"]))
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
    parser.add_argument("--tolerance", type=float, default=1e-4, help="largest tensor error allowed (default 1e-4)")
    parser.add_argument("--comod", default=str(ROOT / "target" / "release" / "comod"), help="the comod binary")
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    worst = {}
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        for case in range(args.cases):
            spec = FIXED[case] if case < len(FIXED) else random_architecture(rng)
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
            floors = {name[: -len(".floor")]: want.pop(name) for name in [n for n in want if n.endswith(".floor")]}
            ill = want.pop("trial_gain.ill")
            got["trial_gain"] = np.where(ill, 0.0, got["trial_gain"])
            want["trial_gain"] = np.where(ill, 0.0, want["trial_gain"])
            if set(got) != set(want):
                print(f"case {case}: tensors {sorted(got)} differ from {sorted(want)}")
                failures += 1
                continue
            describe = (f"sizes {net.sizes[1:]}, kinds {net.kinds[1:-1]}, {net.nonlinearity} encoder, "
                        f"modulated layer {net.modulated}, K={len(inputs['labels'])}, T={inputs['modulator'].shape[1]}, "
                        f"{'pair' if 'pair' in inputs else '10-way'}, meta {meta}, "
                        f"coupling {'yes' if 'coupling' in inputs else 'no'}, gain {'yes' if 'gain' in inputs else 'no'}")
            bad = []
            for name, expected in want.items():
                if got[name].dtype != np.float32 or got[name].shape != expected.shape:
                    bad.append(f"{name}: {got[name].dtype} {got[name].shape}, expected float32 {expected.shape}")
                    continue
                error = tensor_error(got[name], expected, 64 * floors.get(name, 0.0) / args.tolerance)
                key = name if not name.startswith("grad.layers") else "grad.layers.{l}." + name.rsplit(".", 1)[1]
                worst[key] = max(worst.get(key, 0.0), error)
                if error > args.tolerance:
                    bad.append(f"{name}: error {error:.2e}")
            if bad:
                failures += 1
                print(f"case {case} FAILED ({describe}): " + "; ".join(bad))
    print("worst error per tensor over all cases:")
    for name in sorted(worst):
        print(f"  {name:<24} {worst[name]:.2e}")
    print(f"{args.cases - failures} passed, {failures} failed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
