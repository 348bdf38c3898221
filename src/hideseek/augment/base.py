"""The module base shared by the batch augmentations, and model-wide helpers.

Every batch augmentation is an ``nn.Module`` with

* ``kind``: ``'image'`` (``(B, C, H, W)`` batches), ``'feature'`` (feature maps inside a
  model) or ``'video'`` (``(B, T, ...)`` clips or snippet features);
* ``forward(x, sample_ids=None)``: hides in training mode; in eval mode returns ``x``
  itself (the same object, untouched);
* ``set_epoch(epoch)``: the epoch that enters the hash.

Where the sample ids come from, in order:

1. the ``sample_ids`` argument of ``forward``;
2. ids set with ``set_sample_ids(ids)`` (kept until replaced or cleared with ``None``),
   or with the :func:`using_sample_ids` context manager for all augmentations of a model;
3. otherwise a counter: the module numbers the samples it sees in training mode
   ``0, 1, 2, ...`` from the last ``set_epoch`` call. That is deterministic for a fixed
   data order on one process, but not across worker counts, ranks or shuffles, so pass
   dataset indices when it matters.
"""

from __future__ import annotations

import contextlib
from abc import ABCMeta, abstractmethod
from collections.abc import Iterator, Sequence

import torch
from torch import nn

__all__ = ["Augmentation", "set_epoch", "using_sample_ids"]

IdsLike = torch.Tensor | Sequence[int] | None


class Augmentation(nn.Module, metaclass=ABCMeta):
    """Base class: epoch, seed and sample-id bookkeeping; subclasses implement ``hide``.

    Parameters
    ----------
    seed : int
        Seed that enters the hash with the epoch and the sample id.
    """

    kind: str = "image"

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        self.seed = int(seed)
        self.epoch = 0
        self._counter = 0
        self._sample_ids: IdsLike = None

    def set_epoch(self, epoch: int) -> None:
        """Set the epoch used by the hash and restart the fallback sample counter."""
        self.epoch = int(epoch)
        self._counter = 0

    def set_sample_ids(self, sample_ids: IdsLike) -> None:
        """Ids for the following forward calls (``None`` returns to the counter)."""
        self._sample_ids = sample_ids

    def resolve_ids(self, batch: int, sample_ids: IdsLike = None) -> IdsLike:
        """The ids a forward call of ``batch`` samples uses (advances the counter if used)."""
        if sample_ids is None:
            sample_ids = self._sample_ids
        if sample_ids is None:
            start = self._counter
            self._counter += batch
            return range(start, start + batch)
        return sample_ids

    @abstractmethod
    def hide(self, x: torch.Tensor, sample_ids: IdsLike) -> torch.Tensor:
        """Apply the augmentation (training mode); implemented by subclasses."""

    def forward(self, x: torch.Tensor, sample_ids: IdsLike = None) -> torch.Tensor:
        if not self.training:
            return x
        return self.hide(x, self.resolve_ids(x.shape[0], sample_ids))


def _augmentations(model: nn.Module) -> Iterator[Augmentation]:
    return (m for m in model.modules() if isinstance(m, Augmentation))


def set_epoch(model: nn.Module, epoch: int) -> nn.Module:
    """Call ``set_epoch`` on every augmentation module inside ``model`` (or ``model``
    itself); returns ``model``."""
    for module in _augmentations(model):
        module.set_epoch(epoch)
    return model


@contextlib.contextmanager
def using_sample_ids(model: nn.Module, sample_ids: IdsLike) -> Iterator[nn.Module]:
    """Within the block, every augmentation inside ``model`` uses ``sample_ids``.

    Example
    -------
    >>> with using_sample_ids(model, batch_indices):  # doctest: +SKIP
    ...     logits = model(images)
    """
    modules = list(_augmentations(model))
    previous = [m._sample_ids for m in modules]
    for m in modules:
        m.set_sample_ids(sample_ids)
    try:
        yield model
    finally:
        for m, ids in zip(modules, previous):
            m.set_sample_ids(ids)
