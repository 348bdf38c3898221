"""Cutout (DeVries & Taylor, 2017): one square hidden per image, batched and deterministic.

The square's centre is drawn uniformly over the image's pixels and the square is clipped at
the borders, so near the edges less than ``size x size`` pixels are hidden (as in the
original method). The centre is a pure function of ``(seed, epoch, sample id)``, exactly
like the Hide-and-Seek mask; internally the square is a 3 x 3 cell layout whose centre
cell is hidden, which reuses the Hide-and-Seek expansion and fill code.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import torch

from . import _hash
from ._masking import FillLike, apply_cells, as_image_batch, expand_cells

__all__ = ["cutout", "cutout_mask"]

IdsLike = torch.Tensor | Sequence[int] | None


def _layout(images: torch.Tensor, size: int, seed: int, epoch: int, sample_ids: IdsLike
            ) -> tuple[torch.Tensor, bool, torch.Tensor, torch.Tensor, torch.Tensor]:
    if isinstance(size, bool) or not isinstance(size, numbers.Integral) or size < 0:
        raise ValueError(f"cutout size must be a non-negative integer, got {size!r}")
    x, single = as_image_batch(images)
    batch, _, height, width = x.shape
    device = x.device
    ids = _hash.as_ids(sample_ids, batch, device)
    keys = _hash.sample_keys(_hash.base_key(_hash.DOMAIN_CUTOUT, seed, epoch), ids)
    cy = _hash.draw_index(_hash.combine(keys, _hash.STREAM_ROW), height)
    cx = _hash.draw_index(_hash.combine(keys, _hash.STREAM_COL), width)
    y0, x0 = cy - size // 2, cx - size // 2
    ys = torch.arange(height, dtype=torch.int64, device=device)[None, :]
    xs = torch.arange(width, dtype=torch.int64, device=device)[None, :]
    # cell 0: before the square, 1: inside, 2: after it
    ridx = (ys >= y0[:, None]).long() + (ys >= (y0 + size)[:, None]).long()
    cidx = (xs >= x0[:, None]).long() + (xs >= (x0 + size)[:, None]).long()
    hidden = torch.zeros(batch, 3, 3, dtype=torch.bool, device=device)
    hidden[:, 1, 1] = size > 0
    return x, single, hidden, ridx, cidx


def cutout_mask(images: torch.Tensor, size: int = 16, seed: int = 0, epoch: int = 0,
                sample_ids: IdsLike = None) -> torch.Tensor:
    """Bool mask ``(B, H, W)`` (``(H, W)`` for one image) of the pixels :func:`cutout`
    hides."""
    x, single, hidden, ridx, cidx = _layout(images, size, seed, epoch, sample_ids)
    mask = expand_cells(hidden, ridx, cidx)
    return mask[0] if single else mask


def cutout(images: torch.Tensor, size: int = 16, fill: FillLike = 0.0, seed: int = 0,
           epoch: int = 0, sample_ids: IdsLike = None, inplace: bool = False) -> torch.Tensor:
    """Hide one ``size x size`` square (clipped at the borders) per image.

    Parameters
    ----------
    images : Tensor
        ``(B, C, H, W)`` or ``(C, H, W)``, float or integer dtype, any device.
    size : int
        Side of the square in pixels (DeVries & Taylor used 16 on CIFAR-10). 0 = no-op.
    fill : float, sequence or Tensor
        Scalar or per-channel value of hidden pixels.
    seed, epoch, sample_ids
        Determine the square's centre, as in :func:`~hideseek.augment.hide_patches`.
    inplace : bool
        Write into ``images``; otherwise it is never modified.
    """
    x, single, hidden, ridx, cidx = _layout(images, size, seed, epoch, sample_ids)
    out = apply_cells(x, hidden, ridx, cidx, fill, inplace)
    if inplace:
        return images
    return out[0] if single else out
