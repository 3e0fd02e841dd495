"""Type stubs of comod's extension module (tensors as safetensors bytes,
records as JSON text; use the functions of the `comod` package)."""

from typing import Callable, Optional, Sequence

__version__: str

def trace(checkpoint: bytes, inputs: bytes, threads: Optional[int] = None) -> bytes: ...
def inspect(checkpoint: bytes, name: Optional[str] = None) -> tuple[str, str]: ...
def initialise(arch: str, seed: int, modulated_layer: Optional[int] = None) -> bytes: ...
def sweep(
    checkpoint: str,
    out: str,
    tasks: str,
    repeats: int,
    flags: Sequence[str],
    data: Optional[str] = None,
    shard: Optional[str] = None,
    threads: Optional[int] = None,
    progress: Optional[Callable[[int, int], object]] = None,
) -> tuple[int, int, int, float]: ...
def read_records(path: str) -> list[str]: ...
