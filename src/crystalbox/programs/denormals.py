"""Denormal floats flushed to zero while training (x86 FTZ/DAZ).

At low temperatures the relaxed model's softmaxes and their gradients hold many denormal
values (below 1.2e-38), and CPU arithmetic on them is slow: on a Xeon with AVX-512, steps at
tau 1 to 0.1 took 1.2-4.8x longer without flushing (bench/bench_denormals.py). Flushing changes only
values that small. The setting is per thread: it covers the calling thread and the intra-op
threads torch creates while it is on (those made earlier keep their own setting).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

__all__ = ["flushed_denormals", "flushing_denormals"]

_DENORMAL = 1e-39  # below float32's smallest normal number, 1.18e-38


def flushing_denormals() -> bool:
    """Whether the calling thread flushes denormal floats to zero."""
    return bool((torch.tensor([_DENORMAL]) * 1.0).item() == 0.0)


@contextlib.contextmanager
def flushed_denormals(enabled: bool = True) -> Iterator[None]:
    """Flush denormals on the calling thread within the block (``enabled=False``: leave the
    setting alone); the thread's earlier setting is restored afterwards."""
    change = enabled and not flushing_denormals()
    if change:
        change = torch.set_flush_denormal(True)  # False where the CPU cannot
    try:
        yield
    finally:
        if change:
            torch.set_flush_denormal(False)
