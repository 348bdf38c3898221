"""Torch's CPU thread count: set where the user or a room says, and kept there.

numba's OpenMP threading layer resets OpenMP's thread count on its first parallel launch,
and torch reads its own count back from OpenMP: measured here, ``torch.get_num_threads()``
went from 1 to 2 after the first compiled hiding kernel, even with ``OMP_NUM_THREADS=1``.
On a shared 2-core machine that one silent change made a training epoch several times
slower. Every numba parallel kernel runs inside :func:`kept_torch_threads`, which puts the
count back. This module imports torch only when the caller has (the saved-map evaluators
run without it).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

__all__ = ["kept_torch_threads", "torch_threads"]


@contextlib.contextmanager
def kept_torch_threads() -> Iterator[None]:
    """Restore torch's thread count after the block if something (a numba kernel) changed it."""
    torch = sys.modules.get("torch")
    before = torch.get_num_threads() if torch is not None else None
    try:
        yield
    finally:
        if before is not None and torch.get_num_threads() != before:
            torch.set_num_threads(before)


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run with ``threads`` torch CPU threads (``None``: unchanged), restored afterwards."""
    import torch

    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(int(threads))
    try:
        yield
    finally:
        torch.set_num_threads(before)
