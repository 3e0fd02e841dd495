"""Safetensors bytes to and from numpy arrays: the form in which tensors
cross into comod's extension module (only F32 and I64, as comod uses)."""

from __future__ import annotations

import json
import struct

import numpy as np

_DTYPES = {"F32": np.dtype("<f4"), "I64": np.dtype("<i8")}
_NAMES = {np.dtype("float32"): "F32", np.dtype("int64"): "I64"}


def checked(name: str, value: object, dtype: str) -> np.ndarray:
    """`value` as the C-contiguous numpy array of `dtype` it must already
    be; anything else is a ValueError naming the tensor (no silent copy or
    cast: a float64 array is a mistake to report, not to round)."""
    if not isinstance(value, np.ndarray):
        raise ValueError(f"tensor {name}: expected a numpy array, got {type(value).__name__}")
    if value.dtype != np.dtype(dtype):
        raise ValueError(f"tensor {name}: dtype {value.dtype}, expected {dtype}")
    if not value.flags["C_CONTIGUOUS"]:
        raise ValueError(f"tensor {name}: not C-contiguous (use np.ascontiguousarray)")
    return value


def encode(tensors: dict[str, np.ndarray], metadata: dict[str, str] | None = None) -> bytes:
    """The safetensors bytes of `tensors` (float32 or int64 arrays)."""
    header: dict[str, object] = {}
    if metadata:
        header["__metadata__"] = {k: str(v) for k, v in sorted(metadata.items())}
    chunks = []
    offset = 0
    for name in sorted(tensors):
        array = tensors[name]
        if array.dtype not in _NAMES:
            raise ValueError(f"tensor {name}: dtype {array.dtype}, expected float32 or int64")
        data = np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {
            "dtype": _NAMES[array.dtype],
            "shape": list(array.shape),
            "data_offsets": [offset, offset + len(data)],
        }
        chunks.append(data)
        offset += len(data)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(chunks)


def decode(data: bytes) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """The tensors (as writable numpy arrays) and metadata of safetensors `data`."""
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + length])
    metadata = header.pop("__metadata__", {}) or {}
    body = memoryview(data)[8 + length :]
    tensors = {}
    for name, entry in header.items():
        start, end = entry["data_offsets"]
        array = np.frombuffer(body[start:end], dtype=_DTYPES[entry["dtype"]]).reshape(entry["shape"])
        tensors[name] = array.astype(array.dtype.newbyteorder("="), copy=True)
    return tensors, metadata
