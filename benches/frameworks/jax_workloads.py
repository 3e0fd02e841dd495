"""The workloads of `comod bench` in JAX (CPU), written the natural JAX
way: jit-compiled, vmap over trials, a whole `online` run as one
`lax.scan` over its updates. The same workloads as `torch_workloads.py`
(see there for what each one does); compilation happens in the untimed
warm-up run. The sweep (`sweep32`: every method × 8 repeats) is JAX at
its strongest: per method one jitted program that `vmap`s the run over
the repeats (each its own key and training examples), so the
evaluation's products are batched over the repeats. `--check` runs the
vmapped sweep on two repeats and checks each curve against the same run
jitted on its own.

    pip install "jax[cpu]"
    python benches/frameworks/jax_workloads.py [--only trial_B2,online_stochastic,sweep32] [--json] [--check]

XLA sizes its CPU thread pool from the CPUs the process may use: run it
under `taskset` to give it fewer (`compare.py` does).
"""

import os

import jax
import jax.numpy as jnp
import numpy as np

import common
from common import BATCH, BATCHES, LAMBDA, LR, MU, T, TAU_MAX, TEST, TRIALS, VAR


QUADRANT_PIXELS = np.array(common.QUADRANT_PIXELS)


def network(arch, rng):
    encoder = ((rng.random((4, 100, 196), dtype=np.float32) * 2 - 1) * (0.75 / 196) ** 0.5, np.zeros(400, np.float32))
    sizes = [400, 200] if arch == "paper3" else [400, 200, 200]
    layers = []
    for fan_in, size in zip(sizes, sizes[1:] + [10]):
        bound = (6 / fan_in) ** 0.5
        layers.append(((rng.random((size, fan_in), dtype=np.float32) * 2 - 1) * bound, np.zeros(size, np.float32)))
    return jax.tree.map(jnp.asarray, encoder), jax.tree.map(jnp.asarray, layers)


def encode(encoder, x):
    w, b = encoder
    quadrants = x[:, QUADRANT_PIXELS].reshape(-1, 4, 196)
    return jnp.exp(jnp.einsum("bqi,qoi->bqo", quadrants, w).reshape(-1, 400) + b)


def trial_gain(h, layers_to_gated, m, c):
    """Covariance gain, mean over trials, vmapped over the trials."""
    def one(h_b, m_b):
        x = h_b[None, :] * jnp.exp(m_b[:, None] * c)                     # [T, N_l]
        for w, b in layers_to_gated:
            x = jax.nn.relu(x @ w.T + b)
        dm = m_b - m_b.mean()
        return (dm[:, None] * x).mean(axis=0)
    return jax.vmap(one)(h, m).mean(axis=0)


def trial_workload(arch, modulated, trials):
    rng = np.random.default_rng(1)
    encoder, layers = network(arch, rng)
    hidden = layers[:-1]
    canvases = jnp.asarray(rng.random((trials, 784), dtype=np.float32))
    size = 400 if modulated == 1 else hidden[modulated - 2][0].shape[0]
    c = jnp.asarray(0.9 + 0.2 * rng.random(size, dtype=np.float32))
    m = jnp.asarray(MU + VAR ** 0.5 * rng.standard_normal((trials, T), dtype=np.float32))

    # Every array is an argument: a captured one would be a constant that XLA may fold away.
    @jax.jit
    def gain(encoder, hidden, canvases, m, c):
        h = encode(encoder, canvases)
        for w, b in hidden[: modulated - 1]:
            h = jax.nn.relu(h @ w.T + b)
        return trial_gain(h, hidden[modulated - 1:], m, c)

    return lambda: gain(encoder, hidden, canvases, m, c).block_until_ready()


def adam(lr):
    """Adam (β = 0.9, 0.999, ε = 1e-8) on a pytree: (init, update)."""
    def init(params):
        zeros = jax.tree.map(jnp.zeros_like, params)
        return (zeros, zeros, 0)

    def update(params, grads, state):
        m, v, t = state
        t = t + 1
        m = jax.tree.map(lambda m, g: 0.9 * m + 0.1 * g, m, grads)
        v = jax.tree.map(lambda v, g: 0.999 * v + 0.001 * g * g, v, grads)
        step = lambda p, m, v: p - lr * (m / (1 - 0.9 ** t)) / (jnp.sqrt(v / (1 - 0.999 ** t)) + 1e-8)
        return jax.tree.map(step, params, m, v), (m, v, t)

    return init, update


def cross_entropy(logits, y):
    return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], axis=1))


def mean1(g):
    g = jnp.maximum(g, 0)
    return jnp.where(g.mean() > 0, g / jnp.where(g.mean() > 0, g.mean(), 1), jnp.ones_like(g))


def online_data(repeats=None):
    """(network, test set, training examples, initial coupling) of an online run; with `repeats`,
    the training examples of that many runs, stacked on a leading axis."""
    rng = np.random.default_rng(1)
    encoder, layers = network("paper3", rng)
    lead = () if repeats is None else (repeats,)
    return (
        encoder,
        layers,
        jnp.asarray(rng.random((TEST, 784), dtype=np.float32)),
        jnp.asarray(rng.integers(0, 10, TEST)),
        jnp.asarray(rng.random(lead + (BATCHES, BATCH, 784), dtype=np.float32)),
        jnp.asarray(rng.integers(0, 10, lead + (BATCHES, BATCH))),
        jnp.asarray(0.9 + 0.2 * rng.random(400, dtype=np.float32)),
    )


# The axes vmap maps in (key, data): the key and the training examples per repeat.
SWEEP_AXES = (0, (None, None, None, None, 0, 0, None))


def online_workload(method):
    data = online_data()
    # Every array is an argument of the jitted run: a captured one would be
    # a constant that XLA may fold away at compile time.
    run = jax.jit(online_run(method))
    key = jax.random.key(0)
    return lambda: run(key, data).block_until_ready()


def sweep_programs(repeats):
    """Per method, the run vmapped over `repeats` repeats and jitted: method → program(keys, data)."""
    return {method: jax.jit(jax.vmap(online_run(method), in_axes=SWEEP_AXES)) for method in common.METHODS}


def sweep_workload():
    data = online_data(common.SWEEP_REPEATS)
    keys = jax.random.split(jax.random.key(0), common.SWEEP_REPEATS)
    programs = sweep_programs(common.SWEEP_REPEATS)

    def run():
        for program in programs.values():
            program(keys, data).block_until_ready()

    return run


def check(args):
    """The vmapped sweep on two repeats against each repeat's run jitted on its own."""
    repeats = 2
    data = online_data(repeats)
    keys = jax.random.split(jax.random.key(0), repeats)
    for method, program in sweep_programs(repeats).items():
        curves = program(keys, data)
        single = jax.jit(online_run(method))
        for r in range(repeats):
            own = data[:4] + (data[4][r], data[5][r], data[6])
            print(common.close_curves(f"jax {method} repeat {r}: vmapped sweep vs own run",
                                      curves[r], single(keys[r], own)))


def online_run(method):
    """The whole online run of `method` as a function of (key, data)."""
    init, update = adam(LR[method])

    if method in ("stochastic", "deterministic"):
        stochastic = method == "stochastic"

        def run(key, data):
            encoder, ((w2, b2), (w3, b3)), test_x, test_y, train_x, train_y, c0 = data
            accuracy = lambda logits: jnp.mean(jnp.argmax(logits, axis=1) == test_y)

            def estimate(c, gain, tau, x, key):
                m = MU + VAR ** 0.5 * jax.random.normal(key, (x.shape[0], T))
                fresh = mean1(trial_gain(encode(encoder, x), [(w2, b2)], m, c))
                gain = jnp.where(tau == 0, fresh, mean1((tau * gain + fresh) / (tau + 1)))
                return gain, jnp.minimum(tau + 1, TAU_MAX)

            test_u = encode(encoder, test_x)

            def evaluate(c, gain):
                z = jax.nn.relu((test_u * jnp.exp(MU * c)) @ w2.T + b2)
                return accuracy((z * gain) @ w3.T + b3)

            def loss(c, gain, x, y):
                z = jax.nn.relu((encode(encoder, x) * jnp.exp(MU * c)) @ w2.T + b2)
                return cross_entropy((z * gain) @ w3.T + b3, y) + LAMBDA * jnp.abs(c).sum()

            gain, tau = jnp.ones(200), jnp.float32(0)
            key, first = jax.random.split(key)
            if stochastic:
                gain, tau = estimate(c0, gain, tau, train_x[0], first)

            def body(carry, batch):
                c, opt, gain, tau, key = carry
                x, y = batch
                c, opt = update(c, jax.grad(loss)(c, gain, x, y), opt)
                key, sub = jax.random.split(key)
                if stochastic:
                    gain, tau = estimate(c, gain, tau, x, sub)
                return (c, opt, gain, tau, key), evaluate(c, gain)

            _, curve = jax.lax.scan(body, (c0, init(c0), gain, tau, key), (train_x, train_y))
            return jnp.concatenate([evaluate(c0, gain)[None], curve])

    elif method == "retrain":
        def forward(params, x):
            enc, (w2, b2), (w3, b3) = params
            return jax.nn.relu(encode(enc, x) @ w2.T + b2) @ w3.T + b3

        def loss(params, x, y):
            enc, (w2, _), (w3, _) = params
            l1 = jnp.abs(enc[0]).sum() + jnp.abs(w2).sum() + jnp.abs(w3).sum()
            return cross_entropy(forward(params, x), y) + LAMBDA * l1

        def run(key, data):
            encoder, layers, test_x, test_y, train_x, train_y, _ = data
            accuracy = lambda logits: jnp.mean(jnp.argmax(logits, axis=1) == test_y)
            params = (encoder, *layers)

            def body(carry, batch):
                params, opt = carry
                params, opt = update(params, jax.grad(loss)(params, *batch), opt)
                return (params, opt), accuracy(forward(params, test_x))

            _, curve = jax.lax.scan(body, (params, init(params)), (train_x, train_y))
            return jnp.concatenate([accuracy(forward(params, test_x))[None], curve])

    else:
        def loss(params, z, y):
            w, b = params
            return cross_entropy(z @ w.T + b, y) + LAMBDA * jnp.abs(w).sum()

        def run(key, data):
            encoder, ((w2, b2), (w3, b3)), test_x, test_y, train_x, train_y, _ = data
            accuracy = lambda logits: jnp.mean(jnp.argmax(logits, axis=1) == test_y)
            gated = lambda x: jax.nn.relu(encode(encoder, x) @ w2.T + b2)
            test_z = gated(test_x)
            params = (w3, b3)

            def body(carry, batch):
                params, opt = carry
                x, y = batch
                params, opt = update(params, jax.grad(loss)(params, gated(x), y), opt)
                return (params, opt), accuracy(test_z @ params[0].T + params[1])

            _, curve = jax.lax.scan(body, (params, init(params)), (train_x, train_y))
            return jnp.concatenate([accuracy(test_z @ w3.T + b3)[None], curve])

    return run


def workload(name, _args=None):
    if name == common.SWEEP:
        return sweep_workload()
    for trial_name, arch, modulated, trials in TRIALS:
        if name == trial_name:
            return trial_workload(arch, modulated, trials)
    return online_workload(common.online_method(name))


def main():
    common.main(__doc__, "jax", jax.__version__, workload, threads=len(os.sched_getaffinity(0)), check=check)


if __name__ == "__main__":
    main()
