"""The workloads of `comod bench` in PyTorch, written the way a careful
researcher would: the trial-kernel workloads (§3) as batched [B, T, N]
tensors and a matmul, and whole `online` fine-tuning runs (§4) of each
method on the paper network (784 → 4×100 exp encoder → 200 ReLU → 10);
and the convolutional workloads of §8 (`common.CONV_WORKLOADS`).

    pip install numpy torch
    python benches/frameworks/torch_workloads.py --threads 2 [--only trial_B2,online_stochastic] [--json]

An online run: 250 updates of batch 2, evaluation on 1000 test composites
before training and after every update (251 measurements), as comod's
default `online` protocol. The modulation methods evaluate from the
encoder's output, cached once per run; `retrain` from the canvases;
`retrain-last` from the gated layer's cached output. The stochastic
method re-estimates its gain after every update from T = 200 modulator
samples per trial. Canvases and labels are random: the work does not
depend on them. FLOP counts are comod's (`compare.py` takes them from
`comod bench`). Prints the median seconds per workload. `sweep32` runs
every method × 8 repeats, one run after another.

With `--compile`, the online runs' evaluation and training step (forward,
loss; autograd through the compiled graph) go through `torch.compile`
(compiled in the untimed warm-up run); the framework reports itself as
`torch.compile`. `--check` runs each method once eager and once compiled
on the same inputs and checks that the curves agree.
"""

import sys

import torch

import common
from common import BATCH, BATCHES, LAMBDA, LR, MU, T, TAU_MAX, TEST, TRIALS, VAR


QUADRANT_PIXELS = torch.tensor(common.QUADRANT_PIXELS)


def network(arch, gen):
    """Encoder blocks [4, 100, 196] and bias, then the ReLU layers up to the gated one and the readout."""
    encoder = (torch.rand(4, 100, 196, generator=gen) * 2 - 1) * (0.75 / 196) ** 0.5
    sizes = [400, 200] if arch == "paper3" else [400, 200, 200]
    layers = []
    for fan_in, size in zip(sizes, sizes[1:] + [10]):
        bound = (6 / fan_in) ** 0.5
        layers.append([(torch.rand(size, fan_in, generator=gen) * 2 - 1) * bound, torch.zeros(size)])
    return [encoder, torch.zeros(400)], layers


def encode(encoder, x):
    """exp of the block-diagonal encoder: [B, 784] → [B, 400]."""
    w, b = encoder
    quadrants = x[:, QUADRANT_PIXELS].reshape(-1, 4, 196)
    return torch.exp(torch.einsum("bqi,qoi->bqo", quadrants, w).reshape(-1, 400) + b)


def trial_gain(h, layers_to_gated, m, c):
    """Covariance gain, mean over trials: h [B, N_l] of the modulated layer, m [B, T]."""
    x = h[:, None, :] * torch.exp(m[:, :, None] * c)                    # [B, T, N_l]
    for w, b in layers_to_gated:
        x = torch.relu(x @ w.T + b)                                     # [B, T, N]
    dm = m - m.mean(dim=1, keepdim=True)
    return (dm[:, :, None] * x).mean(dim=1).mean(dim=0)


def trial_workload(arch, modulated, trials):
    gen = torch.Generator().manual_seed(1)
    encoder, layers = network(arch, gen)
    hidden = layers[:-1]
    canvases = torch.rand(trials, 784, generator=gen)
    size = 400 if modulated == 1 else hidden[modulated - 2][0].shape[0]
    c = 0.9 + 0.2 * torch.rand(size, generator=gen)
    m = MU + VAR ** 0.5 * torch.randn(trials, T, generator=gen)

    def run():
        with torch.no_grad():
            h = encode(encoder, canvases)
            for w, b in hidden[: modulated - 1]:
                h = torch.relu(h @ w.T + b)
            return trial_gain(h, hidden[modulated - 1:], m, c)

    return run


def mean1(g):
    g = g.clamp(min=0)
    return g / g.mean() if g.mean() > 0 else torch.ones_like(g)


def online_workload(method, compiled=False, repeat=0):
    """The online run of `method` (with `compiled`, its evaluation and training step through
    torch.compile), on the training examples of `repeat`: a function returning its curve."""
    fast = torch.compile if compiled else (lambda f: f)
    gen = torch.Generator().manual_seed(1)
    encoder, layers = network("paper3", gen)
    test_x = torch.rand(TEST, 784, generator=gen)
    test_y = torch.randint(0, 10, (TEST,), generator=gen)
    train_x = torch.rand(BATCHES * BATCH, 784, generator=gen)
    train_y = torch.randint(0, 10, (BATCHES * BATCH,), generator=gen)
    c0 = 0.9 + 0.2 * torch.rand(400, generator=gen)
    if repeat:
        stream = torch.Generator().manual_seed(1000 + repeat)
        train_x = torch.rand(BATCHES * BATCH, 784, generator=stream)
        train_y = torch.randint(0, 10, (BATCHES * BATCH,), generator=stream)

    def modulation_run():
        (w2, b2), (w3, b3) = layers
        with torch.no_grad():
            test_u = encode(encoder, test_x)                            # frozen encoder, cached once
        c = c0.clone().requires_grad_()
        opt = torch.optim.Adam([c], lr=LR[method])
        state = {"gain": torch.ones(200), "tau": None}

        def estimate(x):
            with torch.no_grad():
                m = MU + VAR ** 0.5 * torch.randn(x.shape[0], T, generator=gen)
                fresh = mean1(trial_gain(encode(encoder, x), [(w2, b2)], m, c))
                if state["tau"] is None:
                    state["gain"], state["tau"] = fresh, 1.0
                else:
                    state["gain"] = mean1((state["tau"] * state["gain"] + fresh) / (state["tau"] + 1))
                    state["tau"] = min(state["tau"] + 1, TAU_MAX)

        @fast
        def modulated_logits(u, c, gain):
            z = torch.relu((u * torch.exp(MU * c)) @ w2.T + b2)
            return (z * gain) @ w3.T + b3

        @fast
        def loss_of(u, c, gain, y):
            return torch.nn.functional.cross_entropy(modulated_logits(u, c, gain), y) + LAMBDA * c.abs().sum()

        def evaluate():
            with torch.no_grad():
                logits = modulated_logits(test_u, c, state["gain"])
                return (logits.argmax(dim=1) == test_y).float().mean().item()

        stochastic = method == "stochastic"
        if stochastic:
            estimate(train_x[:BATCH])
        curve = [evaluate()]
        for k in range(BATCHES):
            x, y = train_x[k * BATCH:(k + 1) * BATCH], train_y[k * BATCH:(k + 1) * BATCH]
            with torch.no_grad():
                u = encode(encoder, x)
            loss = loss_of(u, c, state["gain"], y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if stochastic:
                estimate(x)
            curve.append(evaluate())
        return curve

    def retrain_run():
        enc = [p.clone().requires_grad_() for p in encoder]
        net = [[p.clone().requires_grad_() for p in layer] for layer in layers]
        params = enc + [p for layer in net for p in layer]
        opt = torch.optim.Adam(params, lr=LR[method])
        weights = [enc[0]] + [layer[0] for layer in net]

        @fast
        def forward(x):
            h = encode(enc, x)
            (w2, b2), (w3, b3) = net
            return torch.relu(h @ w2.T + b2) @ w3.T + b3

        @fast
        def loss_of(x, y):
            return torch.nn.functional.cross_entropy(forward(x), y) + LAMBDA * sum(w.abs().sum() for w in weights)

        def evaluate():
            with torch.no_grad():
                return (forward(test_x).argmax(dim=1) == test_y).float().mean().item()

        curve = [evaluate()]
        for k in range(BATCHES):
            x, y = train_x[k * BATCH:(k + 1) * BATCH], train_y[k * BATCH:(k + 1) * BATCH]
            loss = loss_of(x, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            curve.append(evaluate())
        return curve

    def retrain_last_run():
        (w2, b2), (w3, b3) = layers
        with torch.no_grad():
            test_z = torch.relu(encode(encoder, test_x) @ w2.T + b2)    # frozen up to the gated layer, cached once
        w, b = w3.clone().requires_grad_(), b3.clone().requires_grad_()
        opt = torch.optim.Adam([w, b], lr=LR[method])

        @fast
        def logits_of(z, w, b):
            return z @ w.T + b

        @fast
        def loss_of(z, w, b, y):
            return torch.nn.functional.cross_entropy(logits_of(z, w, b), y) + LAMBDA * w.abs().sum()

        def evaluate():
            with torch.no_grad():
                return (logits_of(test_z, w, b).argmax(dim=1) == test_y).float().mean().item()

        curve = [evaluate()]
        for k in range(BATCHES):
            x, y = train_x[k * BATCH:(k + 1) * BATCH], train_y[k * BATCH:(k + 1) * BATCH]
            with torch.no_grad():
                z = torch.relu(encode(encoder, x) @ w2.T + b2)
            loss = loss_of(z, w, b, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            curve.append(evaluate())
        return curve

    if method in ("stochastic", "deterministic"):
        return modulation_run
    return retrain_run if method == "retrain" else retrain_last_run


def conv_stage_workload(backward):
    """comod's `conv_forward_direct` (conv2d + ReLU) or `conv_backward` (the
    input, weight and bias gradients of the same convolution, through aten's
    convolution_backward: no forward pass timed)."""
    gen = torch.Generator().manual_seed(3)
    x = torch.rand(256, 8, 14, 14, generator=gen) * 2 - 1
    w = torch.rand(16, 8, 3, 3, generator=gen) * 2 - 1
    b = torch.rand(16, generator=gen) * 2 - 1
    if not backward:
        def run():
            with torch.no_grad():
                torch.relu(torch.nn.functional.conv2d(x, w, b, padding=1))
        return run
    dy = torch.rand(256, 16, 14, 14, generator=gen) * 2 - 1

    def run():
        torch.ops.aten.convolution_backward(dy, x, w, [16], [1, 1], [1, 1], [1, 1], False, [0, 0], 1,
                                            [True, True, True])
    return run


def conv_trial_workload(trials):
    """comod's `conv_trial_B*`: conv-mnist (conv 3×3 8 → pool → conv 3×3 16 → pool → dense 128 → 8
    heads), T = 200 samples per trial; the stimulus' features pooled once, scaled per channel by
    exp(m·c) for each sample (pooling commutes with the positive factor), the rest batched over the
    samples of up to 4 trials, the covariance gain of each trial."""
    gen = torch.Generator().manual_seed(4)
    uni = lambda *shape, bound: (torch.rand(*shape, generator=gen) * 2 - 1) * bound
    w1, b1 = uni(8, 1, 3, 3, bound=(6 / 9) ** 0.5), torch.zeros(8)
    w2, b2 = uni(16, 8, 3, 3, bound=(6 / 72) ** 0.5), torch.zeros(16)
    w3, b3 = uni(128, 784, bound=(6 / 784) ** 0.5), torch.zeros(128)
    wh, bh = uni(16, 128, bound=(3 / 128) ** 0.5), torch.zeros(16)
    x = torch.rand(trials, 1, 28, 28, generator=gen)
    m = MU + VAR ** 0.5 * torch.randn(trials, T, generator=gen)
    c = 0.9 + 0.2 * torch.rand(8, generator=gen)
    f = torch.nn.functional

    def run():
        with torch.no_grad():
            for start in range(0, trials, 4):
                xs, ms = x[start:start + 4], m[start:start + 4]
                k = xs.shape[0]
                u = f.max_pool2d(torch.relu(f.conv2d(xs, w1, b1, padding=1)), 2)       # [k, 8, 14, 14]
                s = (u[:, None] * torch.exp(ms[:, :, None] * c)[..., None, None]).reshape(k * T, 8, 14, 14)
                h = f.max_pool2d(torch.relu(f.conv2d(s, w2, b2, padding=1)), 2)         # [kT, 16, 7, 7]
                z = torch.relu(h.flatten(1) @ w3.T + b3)                                  # [kT, 128]
                z @ wh.T + bh
                z = z.reshape(k, T, 128)
                dm = ms - ms.mean(dim=1, keepdim=True)
                (dm[:, :, None] * (z - z.mean(dim=1, keepdim=True))).mean(dim=1)
    return run


def sweep_workload(compiled):
    """Every method × SWEEP_REPEATS repeats, one run after another."""
    runs = [online_workload(m, compiled, r) for r in range(common.SWEEP_REPEATS) for m in common.METHODS]

    def run():
        for one in runs:
            one()

    return run


def check(args):
    """Each method's run eager and compiled, on the same inputs (and the same modulator draws)."""
    for method in common.METHODS:
        eager, compiled = online_workload(method)(), online_workload(method, compiled=True)()
        print(common.close_curves(f"torch {method}: torch.compile vs eager", compiled, eager))


def workload(name, args=None):
    compiled = bool(args and args.compile)
    if name == common.SWEEP:
        return sweep_workload(compiled)
    if name.startswith("online_"):
        return online_workload(common.online_method(name), compiled)
    if name in ("conv_forward_direct", "conv_backward"):
        return conv_stage_workload(name == "conv_backward")
    if name.startswith("conv_trial_B"):
        return conv_trial_workload(int(name.removeprefix("conv_trial_B")))
    for trial_name, arch, modulated, trials in TRIALS:
        if name == trial_name:
            return trial_workload(arch, modulated, trials)
    raise ValueError(f"no workload {name}")


def main():
    framework = "torch.compile" if "--compile" in sys.argv else "torch"
    common.main(__doc__, framework, torch.__version__, workload,
                threads_help="torch intra-op threads (default 2)", set_threads=torch.set_num_threads,
                known=common.WORKLOADS + common.CONV_WORKLOADS, check=check,
                options=[("--compile", "the online runs through torch.compile")])


if __name__ == "__main__":
    main()
