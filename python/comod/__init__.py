"""comod from Python: the reference implementation of learned stochastic
co-modulation (Haimerl, Simoncelli & Savin 2022; Boeshertz, Haimerl &
Savin 2023), with numpy arrays in and out.

Everything computes in comod's Rust library (the GIL released); the
equations, defaults and tensor names are those of comod's model document
(docs/model.md) and of ``comod trace`` (§7). Errors are ``ValueError``
(bad input, one line naming the tensor, option or file) or ``OSError``
(the operating system's); Ctrl-C stops a sweep within a second of the
runs under way ending, every completed run recorded.

    import numpy as np, comod
    net = comod.Network.initialise("paper3", seed=0)
    k, t = 4, 100
    out = comod.trace(net, np.random.rand(k, 784).astype(np.float32),
                      np.random.normal(1, 0.3, (k, t)).astype(np.float32),
                      np.array([1, 7, 1, 7], dtype=np.int64),
                      coupling=np.full(400, 0.1, np.float32))
    out["trial_gain"].shape, out["grad.coupling"].shape
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from typing import Any, Callable, Optional

import numpy as np

from . import _comod
from ._tensors import checked, decode, encode

__version__ = _comod.__version__

__all__ = [
    "Network",
    "trace",
    "trial_gain",
    "forward",
    "loss",
    "gradients",
    "run",
    "sweep",
    "read_results",
    "read_results_frame",
]


class Network:
    """A comod network: an MLP (§2) or a convolutional network (§8), held
    as its checkpoint. Weights and biases are numpy arrays by their
    checkpoint names (``layers.{l}.weight`` [out, in], ``layers.{l}.bias``;
    ``stage{s}.weight`` … for a convolutional one)."""

    def __init__(self, checkpoint: bytes, name: Optional[str] = None):
        kind, arch = _comod.inspect(bytes(checkpoint), name)
        self._bytes = bytes(checkpoint)
        #: ``"mlp"`` or ``"conv"``.
        self.kind: str = kind
        #: The architecture, as comod's JSON description.
        self.arch: dict = json.loads(arch)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Network":
        """The checkpoint at ``path`` (written by ``comod pretrain``,
        ``comod multitask pretrain`` or :meth:`save`)."""
        with open(path, "rb") as f:
            data = f.read()
        return cls(data, os.fspath(path))

    @classmethod
    def initialise(cls, arch: str, seed: int = 0, modulated_layer: Optional[int] = None) -> "Network":
        """A freshly initialised MLP of ``arch`` (a preset name such as
        ``"paper3"``, or an architecture JSON file), seeded by ``seed``
        (He-uniform, §4), modulated at ``modulated_layer`` (the preset's
        when None)."""
        return cls(_comod.initialise(str(arch), int(seed), modulated_layer))

    def tensors(self) -> dict[str, np.ndarray]:
        """Every parameter tensor, as float32 copies (changing one changes
        nothing until :meth:`with_tensors`)."""
        return decode(self._bytes)[0]

    def with_tensors(self, tensors: dict[str, np.ndarray]) -> "Network":
        """A new network with some tensors replaced (e.g. your PyTorch
        weights): each must be float32, C-contiguous, of its tensor's shape
        and finite; checked as comod checks a checkpoint."""
        current, metadata = decode(self._bytes)
        for name, value in tensors.items():
            if name not in current:
                raise ValueError(f"tensor {name}: not a tensor of this network ({', '.join(sorted(current))})")
            value = checked(name, value, "float32")
            if value.shape != current[name].shape:
                raise ValueError(f"tensor {name}: shape {list(value.shape)}, expected {list(current[name].shape)}")
            current[name] = value
        return Network(encode(current, metadata))

    def to_bytes(self) -> bytes:
        """The checkpoint's safetensors bytes."""
        return self._bytes

    def save(self, path: str | os.PathLike) -> None:
        """Writes the checkpoint to ``path`` (atomically: a temporary file
        renamed)."""
        path = os.fspath(path)
        directory = os.path.dirname(os.path.abspath(path))
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".comod-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(self._bytes)
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    def __repr__(self) -> str:
        return f"Network(kind={self.kind!r}, arch={self.arch!r})"


_METADATA = ("m0", "lambda", "gain_rule", "modulation_compensation", "modulator_var", "coupling_param", "task")


def trace(
    net: Network,
    stimuli: np.ndarray,
    modulator: np.ndarray,
    labels: np.ndarray,
    *,
    pair: Optional[np.ndarray] = None,
    coupling: Optional[np.ndarray] = None,
    gain: Optional[np.ndarray] = None,
    threads: Optional[int] = None,
    **metadata: Any,
) -> dict[str, np.ndarray]:
    """comod's verification interface (``comod trace``, §7) on arrays.

    MLP: ``stimuli`` float32 [K, 784] canvases, ``modulator`` float32 [K, T]
    samples (row k for trial k), ``labels`` int64 [K] (0/1 into ``pair``
    when given as int64 [2], else classes 0..9), ``coupling`` float32 [N]
    (the coupling parameter; 0 when None), ``gain`` float32 [N_gain] (1
    when None). Convolutional: ``stimuli`` [K, H, W, C], ``labels`` int64
    [K, tasks] (0/1), metadata ``task`` (the head of the loss, ``"all"``).
    Metadata keywords (defaults as §7): ``m0``, ``lambda`` (pass as
    ``**{"lambda": 0.1}`` or ``lam=``), ``gain_rule``,
    ``modulation_compensation``, ``modulator_var``, ``coupling_param``.

    Returns float32 arrays: ``trial_gain`` [K, N_gain], ``logits``,
    ``loss`` [1], ``grad.coupling`` and the gradient of every parameter
    tensor (``grad.layers.{l}.weight`` …), the gain held constant."""
    if "lam" in metadata:
        metadata["lambda"] = metadata.pop("lam")
    unknown = sorted(set(metadata) - set(_METADATA))
    if unknown:
        raise ValueError(f"unknown option {unknown[0]!r} (expected one of {', '.join(_METADATA)})")
    tensors = {
        "stimuli": checked("stimuli", stimuli, "float32"),
        "modulator": checked("modulator", modulator, "float32"),
        "labels": checked("labels", labels, "int64"),
    }
    for name, value, dtype in (("pair", pair, "int64"), ("coupling", coupling, "float32"), ("gain", gain, "float32")):
        if value is not None:
            tensors[name] = checked(name, value, dtype)
    numeric = ("m0", "lambda", "modulator_var")
    text = {k: (repr(float(v)) if k in numeric else str(v)) for k, v in metadata.items() if v is not None}
    out = _comod.trace(net.to_bytes(), encode(tensors, text), threads)
    return decode(out)[0]


def trial_gain(net: Network, stimuli: np.ndarray, modulator: np.ndarray, **kwargs: Any) -> np.ndarray:
    """The per-trial gains [K, N_gain] of §3 (the fused trial kernel): each
    trial's covariance (or correlation) of the gated layer's modulated
    activity with its own modulator row. Labels are not needed; keywords
    as :func:`trace`."""
    k = stimuli.shape[0] if isinstance(stimuli, np.ndarray) else 0
    labels = kwargs.pop("labels", None)
    if labels is None:
        width = net.arch.get("tasks") if net.kind == "conv" else None
        labels = np.zeros((k, width) if width else (k,), dtype=np.int64)
    return trace(net, stimuli, modulator, labels, **kwargs)["trial_gain"]


def forward(net: Network, stimuli: np.ndarray, modulator: np.ndarray, labels: np.ndarray, **kwargs: Any) -> np.ndarray:
    """The logits of the forward pass at m = ``m0`` with the given coupling
    and gain (§2, §3); arguments as :func:`trace`."""
    return trace(net, stimuli, modulator, labels, **kwargs)["logits"]


def loss(net: Network, stimuli: np.ndarray, modulator: np.ndarray, labels: np.ndarray, **kwargs: Any) -> float:
    """The mean cross-entropy plus λ‖θ‖₁ of the coupling parameter (§4);
    arguments as :func:`trace`."""
    return float(trace(net, stimuli, modulator, labels, **kwargs)["loss"][0])


def gradients(net: Network, stimuli: np.ndarray, modulator: np.ndarray, labels: np.ndarray, **kwargs: Any) -> dict[str, np.ndarray]:
    """Every gradient of the loss (``coupling`` and each parameter tensor's
    name), the gain held constant; arguments as :func:`trace`."""
    out = trace(net, stimuli, modulator, labels, **kwargs)
    return {name[len("grad."):]: value for name, value in out.items() if name.startswith("grad.")}


def _flags(options: dict[str, Any]) -> list[str]:
    """The run options as ``comod sweep`` flags: ``lr_stochastic=0.01`` is
    ``--lr-stochastic 0.01``, a list is comma-joined, ``True`` a bare flag."""
    flags: list[str] = []
    for name, value in options.items():
        if value is None or value is False:
            continue
        flag = "--" + name.replace("_", "-")
        if value is True:
            flags.append(flag)
        elif isinstance(value, (list, tuple)):
            flags += [flag, ",".join(str(v) for v in value)]
        else:
            flags += [flag, str(value)]
    return flags


def _progress_bar(stream=None) -> Callable[[int, int], None]:
    """A one-line progress display with runs/s and ETA on ``stream``."""
    stream = stream or sys.stderr
    start = time.monotonic()
    first: list[int] = []

    def show(done: int, total: int) -> None:
        if not first:
            first.append(done - 1)
        elapsed = time.monotonic() - start
        made = max(done - first[0], 1)
        rate = made / elapsed if elapsed > 0 else 0.0
        eta = (total - done) / rate if rate > 0 else float("nan")
        end = "\n" if done >= total else ""
        stream.write(f"\r{done}/{total} runs, {rate:.2f} runs/s, ETA {eta:.0f} s   {end}")
        stream.flush()

    return show


def sweep(
    checkpoint: str | os.PathLike,
    out: str | os.PathLike,
    *,
    tasks: str | list[str] = "all",
    repeats: int = 10,
    data: Optional[str | os.PathLike] = None,
    shard: Optional[str] = None,
    threads: Optional[int] = None,
    progress: bool | Callable[[int, int], None] = True,
    **options: Any,
) -> dict[str, Any]:
    """``comod sweep`` (§6): fine-tunes every task × method × repeat of the
    digit tasks ``tasks`` (``"all"`` or e.g. ``"1-7@0,3-8@2"`` or a list)
    from ``checkpoint`` and appends one record per run to ``out``,
    resuming a file of the same configuration. ``options`` are the run
    options with the command line's names and defaults (``methods``,
    ``seed``, ``reading``, ``readout``, ``lr_stochastic``, ``protocol``,
    ``samples``, ``record_coupling`` …; see ``comod sweep --help``).
    ``data``: a folder with an IDX pair (the shipped digits when None);
    ``shard``: ``"i/n"``; ``threads``: worker threads (all cores when None);
    ``progress``: a line on stderr (True), none (False) or your callable
    ``(done, total)``. Returns the counts: planned, resumed, run, seconds."""
    if isinstance(tasks, (list, tuple)):
        tasks = ",".join(tasks)
    callback = _progress_bar() if progress is True else (progress or None)
    planned, resumed, ran, seconds = _comod.sweep(
        os.fspath(checkpoint),
        os.fspath(out),
        str(tasks),
        int(repeats),
        _flags(options),
        None if data is None else os.fspath(data),
        shard,
        threads,
        callback,
    )
    return {"planned": planned, "resumed": resumed, "run": ran, "seconds": seconds}


def run(
    checkpoint: str | os.PathLike,
    task: str,
    method: str,
    *,
    data: Optional[str | os.PathLike] = None,
    threads: Optional[int] = None,
    **options: Any,
) -> dict[str, Any]:
    """One fine-tuning run (§4): ``task`` (e.g. ``"1-7@0"``) by ``method``
    (``stochastic``, ``deterministic``, ``retrain``, ``retrain-last``),
    repeat 0, options as :func:`sweep`. Returns its record as
    :func:`read_results` gives it: the record ``comod sweep --tasks TASK
    --methods METHOD --repeats 1`` writes with the same options."""
    if "methods" in options:
        raise ValueError("run takes one method (method=...), not methods")
    with tempfile.TemporaryDirectory(prefix="comod-run-") as folder:
        out = os.path.join(folder, "run.jsonl")
        sweep(checkpoint, out, tasks=task, repeats=1, data=data, threads=threads, progress=False, methods=method, **options)
        (record,) = read_results(out)
    return record


_ARRAYS = ("examples", "curve", "coupling", "epochs")


def read_results(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The records of a results file (``comod sweep``'s JSON lines, §7) as
    dicts in canonical order, ``examples``, ``curve`` and ``coupling`` as
    numpy arrays; a torn last line is dropped as comod drops it."""
    records = []
    for text in _comod.read_records(os.fspath(path)):
        record = json.loads(text)
        for key in _ARRAYS:
            value = record.get(key)
            if isinstance(value, list) and value and not isinstance(value[0], (list, dict)):
                record[key] = np.asarray(value, dtype=np.float32 if key in ("curve", "coupling") else np.int64)
        records.append(record)
    return records


def read_results_frame(path: str | os.PathLike):
    """:func:`read_results` as a ``pandas.DataFrame`` (one row per run);
    needs pandas."""
    try:
        import pandas
    except ImportError as e:
        raise ImportError("read_results_frame needs pandas (pip install pandas)") from e
    return pandas.DataFrame(read_results(path))
