"""The trial-kernel workloads of `comod bench` (§3) in PyTorch, written
the straightforward batched way: [B, T, N] tensors and a matmul. Run beside
comod on the same machine and thread count:

    pip install numpy torch
    python benches/frameworks/trial_torch.py --threads 2
    RAYON_NUM_THREADS=2 cargo run --release -- bench

Workloads and FLOP counts are those of `comod bench`: one batch of B trials
of T = 200 modulator samples; FLOPs = B · 2·T·(multiply-adds of the layers
between the modulated and the gated layer). Prints the median time.
"""

import argparse
import statistics
import time

import torch

T = 200
WORKLOADS = [
    ("trial_B2", "paper3", 1, 2),
    ("trial_B256", "paper3", 1, 256),
    ("deep4_trial_B2", "deep4", 1, 2),
    ("deep4_trial_B256", "deep4", 1, 256),
    ("deep4_mod2_trial_B2", "deep4", 2, 2),
    ("deep4_mod2_trial_B256", "deep4", 2, 256),
]


def network(arch):
    """Weights of the encoder (masked dense, exp) and the ReLU layers up to the gated one."""
    gen = torch.Generator().manual_seed(1)
    quadrant = (torch.arange(28)[:, None] // 14) * 2 + torch.arange(28)[None, :] // 14      # of each pixel
    mask = (torch.arange(400)[:, None] // 100) == quadrant.reshape(1, 784)
    encoder = (torch.rand(400, 784, generator=gen) * 2 - 1) * (0.75 / 196) ** 0.5 * mask
    hidden_sizes = [200] if arch == "paper3" else [200, 200]
    layers, fan_in = [], 400
    for size in hidden_sizes:
        bound = (6 / fan_in) ** 0.5
        layers.append(((torch.rand(size, fan_in, generator=gen) * 2 - 1) * bound, torch.zeros(size)))
        fan_in = size
    return encoder, torch.zeros(400), layers


def batch_gain(encoder, encoder_bias, layers, modulated, canvases, m, c, beta=0.0):
    h = torch.exp(canvases @ encoder.T + encoder_bias)                 # [B, 400]
    for weight, bias in layers[: modulated - 1]:
        h = torch.relu(h @ weight.T + bias)                            # below the modulated layer
    x = h[:, None, :] * torch.exp(m[:, :, None] * c - beta)            # [B, T, N_l]
    for weight, bias in layers[modulated - 1:]:
        x = torch.relu(x @ weight.T + bias)                            # [B, T, N]
    w = m - m.mean(dim=1, keepdim=True)                                # [B, T]
    return (w[:, :, None] * x).mean(dim=1).mean(dim=0)                 # covariance, mean over trials


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--seconds", type=float, default=2.0, help="minimum timed seconds per workload (default 2)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, T = {T}")
    for name, arch, modulated, trials in WORKLOADS:
        encoder, encoder_bias, layers = network(arch)
        gen = torch.Generator().manual_seed(2)
        sizes = [400] + [w.shape[0] for w, _ in layers]
        c = 0.9 + 0.2 * torch.rand(sizes[modulated - 1], generator=gen)
        canvases = torch.rand(trials, 784, generator=gen)
        m = 1.0 + 0.1 ** 0.5 * torch.randn(trials, T, generator=gen)
        macs = sum(sizes[i] * sizes[i + 1] for i in range(modulated - 1, len(sizes) - 1))
        flops = trials * 2 * T * macs
        with torch.no_grad():
            batch_gain(encoder, encoder_bias, layers, modulated, canvases, m, c)
            times, start = [], time.perf_counter()
            while len(times) < 5 or time.perf_counter() - start < args.seconds:
                t0 = time.perf_counter()
                batch_gain(encoder, encoder_bias, layers, modulated, canvases, m, c)
                times.append(time.perf_counter() - t0)
        median = statistics.median(times)
        print(f"{name:<24} {median * 1e3:10.3f} ms {flops / median / 1e9:8.1f} GFLOP/s")


if __name__ == "__main__":
    main()
