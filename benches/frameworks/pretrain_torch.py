"""Pretraining of §4 in PyTorch, as a researcher would write it, to time
against `comod pretrain` on the same machine.

Same task and settings as comod: the paper3 network (quadrant-local exp
encoder 400 as a masked dense layer, dense ReLU 200, readout 10), Adam lr 1e-4,
batch 200, 4000 fresh general-task composites per epoch from the train pool,
held-out 10-way accuracy on 2000 test-pool composites after every epoch.

    pip install numpy torch
    python benches/frameworks/pretrain_torch.py --threads 2 --epochs 30
    cargo bench --bench throughput -- pretrain_epoch/paper3   # comod, same machine

Prints seconds per epoch (median over epochs) and the held-out accuracy.
"""

import argparse
import gzip
import pathlib
import statistics
import time

import numpy as np
import torch

DATA = pathlib.Path(__file__).resolve().parents[2] / "data"


def read_idx(path, magic):
    raw = gzip.open(path).read() if path.suffix == ".gz" else path.read_bytes()
    assert int.from_bytes(raw[:4], "big") == magic, f"{path}: bad magic"
    ndims = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndims)]
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndims).reshape(dims)


def load_digits():
    images = read_idx(DATA / "mnist10k-images-idx3-ubyte.gz", 2051).astype(np.float32) / 255.0
    labels = read_idx(DATA / "mnist10k-labels-idx1-ubyte.gz", 2049).astype(np.int64)
    small = images.reshape(-1, 14, 2, 14, 2).mean(axis=(2, 4)).reshape(-1, 196)
    return torch.from_numpy(small), torch.from_numpy(labels)


def composites(small, labels, pool, n, gen):
    """General task: one downscaled digit in a random quadrant, N(0, 0.1²) noise."""
    idx = pool[torch.randint(len(pool), (n,), generator=gen)]
    quadrant = torch.randint(4, (n,), generator=gen)
    quads = torch.zeros(n, 4, 196)
    quads[torch.arange(n), quadrant] = small[idx]
    canvas = quads.reshape(n, 2, 2, 14, 14).permute(0, 1, 3, 2, 4).reshape(n, 784)
    return canvas + 0.1 * torch.randn(n, 784, generator=gen), labels[idx]


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = torch.nn.Linear(784, 400)
        self.dense = torch.nn.Linear(400, 200)
        self.readout = torch.nn.Linear(200, 10)
        pixel_quadrant = torch.arange(784).reshape(28, 28)
        pixel_quadrant = (pixel_quadrant // 28 // 14) * 2 + (pixel_quadrant % 28) // 14
        mask = (torch.arange(400)[:, None] // 100) == pixel_quadrant.reshape(1, 784)
        self.register_buffer("mask", mask.float())
        with torch.no_grad():
            self.encoder.weight.uniform_(-(0.75 / 196) ** 0.5, (0.75 / 196) ** 0.5)
            self.encoder.weight.mul_(self.mask)
            self.encoder.bias.zero_()

    def forward(self, x):
        h = torch.exp(torch.nn.functional.linear(x, self.encoder.weight * self.mask, self.encoder.bias))
        return self.readout(torch.relu(self.dense(h)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--epochs", type=int, default=30, help="epochs to time (default 30)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    small, labels = load_digits()
    train_pool, test_pool = torch.arange(0, 8000), torch.arange(8000, 10000)
    heldout_x, heldout_y = composites(small, labels, test_pool, 2000, gen)
    net = Net()
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)
    times = []
    for epoch in range(1, args.epochs + 1):
        start = time.perf_counter()
        x, y = composites(small, labels, train_pool, 4000, gen)
        for b in range(0, 4000, 200):
            loss = torch.nn.functional.cross_entropy(net(x[b:b + 200]), y[b:b + 200])
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            accuracy = (net(heldout_x).argmax(1) == heldout_y).float().mean().item()
        times.append(time.perf_counter() - start)
    print(f"torch {torch.__version__}, {args.threads} threads: median {statistics.median(times) * 1e3:.1f} ms/epoch "
          f"over {args.epochs} epochs, held-out accuracy {accuracy:.4f} after epoch {args.epochs}")


if __name__ == "__main__":
    main()
