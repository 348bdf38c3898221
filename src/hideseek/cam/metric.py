"""The accumulator base every metric of every room derives from.

Life cycle (after torchmetrics' ``Metric``)::

    metric.update(...)      # once per batch
    metric.sync()           # optional: sum the count tensors over processes
    metric.compute(...)     # -> dict of numbers
    metric.reset()

State is count tensors only, registered by name in ``_states``, so a distributed run sums
them with :func:`hideseek.engine.sync_states` (which moves them to the device the backend
reduces on: CUDA for nccl, CPU for gloo) and gets exactly the numbers of one process.
"""

from __future__ import annotations

import torch

from hideseek import engine

__all__ = ["Metric"]


class Metric:
    """Accumulator base: integer count tensors registered in ``_states``."""

    _states: tuple[str, ...] = ()

    def reset(self) -> None:
        for name in self._states:
            getattr(self, name).zero_()

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {name: getattr(self, name) for name in self._states}

    def merge(self, other: Metric) -> Metric:
        """Add another accumulator's counts to this one (same configuration)."""
        if type(other) is not type(self):
            raise TypeError(f"cannot merge {type(other).__name__} into {type(self).__name__}")
        for name in self._states:
            mine, theirs = getattr(self, name), getattr(other, name)
            if mine.shape != theirs.shape:
                raise ValueError(f"cannot merge: state {name!r} has shape {theirs.shape}, not {mine.shape}")
            mine += theirs.to(mine.device)
        return self

    def sync(self) -> None:
        """Sum the count tensors over all processes, in place (no-op without a process group)."""
        engine.sync_states(self.state_dict())
