"""One stochastic fine-tuning run (§4, online protocol) in PyTorch, as a
careful researcher would write it, to time against comod on the same
machine: 250 steps of batch 2 on the paper network (400 → 200 → 10), the
test set's encoder output cached once (the encoder is frozen), the gain
re-estimated after every step from T = 200 modulator samples per trial
([2, T, 400] tensors and a matmul), evaluation on 1000 test composites after
every step.

    pip install numpy safetensors torch
    python benches/frameworks/stochastic_torch.py --threads 2 [--checkpoint reproduction/pretrained.safetensors]
    cargo run --release -- sweep --checkpoint reproduction/pretrained.safetensors --tasks 1-7@0,3-8@2 \\
        --methods stochastic --repeats 4 --out /tmp/stochastic.jsonl      # prints s per run

Prints the median seconds of one run over --runs runs.
"""

import argparse
import statistics
import time

import torch

T, BATCHES, BATCH, TEST, MU, VAR, LAMBDA, LR, TAU_MAX = 200, 250, 2, 1000, 1.0, 0.1, 0.1, 1e-2, 100.0


def load(path):
    if path:
        from safetensors.torch import load_file
        t = load_file(path)
        return [(t[f"layers.{l}.weight"], t[f"layers.{l}.bias"]) for l in (1, 2, 3)]
    gen = torch.Generator().manual_seed(0)
    quadrant = (torch.arange(28)[:, None] // 14) * 2 + torch.arange(28)[None, :] // 14
    mask = (torch.arange(400)[:, None] // 100) == quadrant.reshape(1, 784)
    w1 = (torch.rand(400, 784, generator=gen) * 2 - 1) * (0.75 / 196) ** 0.5 * mask
    w2 = (torch.rand(200, 400, generator=gen) * 2 - 1) * (6 / 400) ** 0.5
    w3 = (torch.rand(10, 200, generator=gen) * 2 - 1) * (3 / 200) ** 0.5
    return [(w1, torch.zeros(400)), (w2, torch.zeros(200)), (w3, torch.zeros(10))]


def mean1(g):
    g = g.clamp(min=0)
    return g / g.mean() if g.mean() > 0 else torch.ones_like(g)


def run(layers, pair=(1, 7)):
    (w1, b1), (w2, b2), (w3, b3) = layers
    gen = torch.Generator().manual_seed(1)
    test_x = torch.rand(TEST, 784, generator=gen)
    test_y = torch.randint(0, 2, (TEST,), generator=gen)
    train_x = torch.rand(BATCHES * BATCH, 784, generator=gen)
    train_y = torch.randint(0, 2, (BATCHES * BATCH,), generator=gen)
    with torch.no_grad():
        test_u = torch.exp(test_x @ w1.T + b1)                       # frozen encoder, cached once
    c = (0.9 + 0.2 * torch.rand(400, generator=gen)).requires_grad_()
    opt = torch.optim.Adam([c], lr=LR)
    gain, tau = torch.ones(200), None
    cols = list(pair)

    def estimate(x):
        nonlocal gain, tau
        with torch.no_grad():
            u = torch.exp(x @ w1.T + b1)                                 # [2, 400]
            m = MU + VAR ** 0.5 * torch.randn(x.shape[0], T, generator=gen)
            z = torch.relu((u[:, None, :] * torch.exp(m[:, :, None] * c)) @ w2.T + b2)   # [2, T, 200]
            dm = m - m.mean(dim=1, keepdim=True)
            fresh = mean1((dm[:, :, None] * (z - z.mean(dim=1, keepdim=True))).mean(dim=1).mean(dim=0))
            if tau is None:
                gain, tau = fresh, 1.0
            else:
                gain = mean1((tau * gain + fresh) / (tau + 1))
                tau = min(tau + 1, TAU_MAX)

    def evaluate():
        with torch.no_grad():
            logits = (torch.relu((test_u * torch.exp(MU * c)) @ w2.T + b2) * gain) @ w3.T + b3
            return (logits[:, cols].argmax(dim=1) == test_y).float().mean().item()

    estimate(train_x[:BATCH])
    curve = [evaluate()]
    for k in range(BATCHES):
        x, y = train_x[k * BATCH:(k + 1) * BATCH], train_y[k * BATCH:(k + 1) * BATCH]
        h = torch.exp(x @ w1.T + b1) * torch.exp(MU * c)
        logits = (torch.relu(h @ w2.T + b2) * gain) @ w3.T + b3
        loss = torch.nn.functional.cross_entropy(logits[:, cols], y) + LAMBDA * c.abs().sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        estimate(x)
        curve.append(evaluate())
    return curve


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--runs", type=int, default=5, help="timed runs (default 5)")
    parser.add_argument("--checkpoint", help="a comod checkpoint (default: random weights)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    layers = load(args.checkpoint)
    run(layers)
    times = []
    for _ in range(args.runs):
        start = time.perf_counter()
        run(layers)
        times.append(time.perf_counter() - start)
    print(f"torch {torch.__version__}, {args.threads} threads: one stochastic run, median {statistics.median(times):.3f} s")


if __name__ == "__main__":
    main()
