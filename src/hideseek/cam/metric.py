"""The accumulator base every metric of every room derives from.

Life cycle (after torchmetrics' ``Metric``)::

    metric.update(...)      # once per batch
    metric.sync()           # optional: sum the counts over processes
    metric.compute(...)     # -> dict of numbers
    metric.reset()

State is integer counts only, registered by name in ``_states``: numpy arrays for the
metrics that score saved maps (so scoring files never imports torch, which alone costs
about 0.8 GB and most of a second), torch tensors for those that accumulate on the
device. A distributed run sums them with :func:`hideseek.engine.sync_states` (numpy
counts through a shared-memory tensor view) and gets exactly the numbers of one process.
"""

from __future__ import annotations

import sys

import numpy as np

__all__ = ["Metric", "as_array", "index_array", "is_tensor"]


def is_tensor(values) -> bool:
    """A torch tensor? (without importing torch: a tensor exists only if torch was imported)"""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(values, torch.Tensor)


def as_array(values) -> np.ndarray:
    """``values`` as a numpy array (a tensor is copied to the CPU)."""
    return values.detach().cpu().numpy() if is_tensor(values) else np.asarray(values)


def index_array(values, what: str) -> np.ndarray:
    """Integer class indices as an int64 array; ``what`` names them in the error."""
    array = as_array(values)
    if array.dtype.kind not in "iu":
        raise TypeError(f"{what}: expected integer class indices, got dtype {array.dtype}")
    return array.astype(np.int64, copy=False)


class Metric:
    """Accumulator base: integer count arrays (numpy) or tensors (torch) registered in ``_states``."""

    _states: tuple[str, ...] = ()

    def reset(self) -> None:
        for name in self._states:
            getattr(self, name)[...] = 0

    def state_dict(self) -> dict:
        return {name: getattr(self, name) for name in self._states}

    def merge(self, other: Metric) -> Metric:
        """Add another accumulator's counts to this one (same configuration)."""
        if type(other) is not type(self):
            raise TypeError(f"cannot merge {type(other).__name__} into {type(self).__name__}")
        for name in self._states:
            mine, theirs = getattr(self, name), getattr(other, name)
            if tuple(mine.shape) != tuple(theirs.shape):
                raise ValueError(f"cannot merge: state {name!r} has shape {tuple(theirs.shape)}, "
                                 f"not {tuple(mine.shape)}")
            if isinstance(mine, np.ndarray):
                mine += theirs if isinstance(theirs, np.ndarray) else theirs.cpu().numpy()
            else:
                mine += theirs.to(mine.device) if not isinstance(theirs, np.ndarray) else _torch().from_numpy(theirs)
        return self

    def sync(self) -> None:
        """Sum the counts over all processes, in place (no-op without a process group).

        Without torch imported there is no process group, so nothing is imported here."""
        torch = sys.modules.get("torch")
        if torch is None:
            return
        from hideseek import engine

        engine.sync_states({name: torch.from_numpy(value) if isinstance(value, np.ndarray) else value
                            for name, value in self.state_dict().items()})


def _torch():
    import torch

    return torch
