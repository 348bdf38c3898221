"""Readable per-sample, per-patch loop version of :func:`~hideseek.augment.hide_patches`.

This is the oracle the tests compare against and the baseline the benchmarks measure.
It evaluates the same hash as the batched code, with plain Python integers, so its
output is identical bit for bit; only the speed differs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from . import _hash
from ._masking import FillLike, as_image_batch, fill_vector
from .patches import DEFAULT_GRID_SIZES, cell_choices

__all__ = ["hide_patches_loop"]


def hide_patches_loop(images: torch.Tensor,
                      grid_sizes: int | Sequence[int] = DEFAULT_GRID_SIZES,
                      p_hide: float = 0.5, fill: FillLike = 0.0, seed: int = 0,
                      epoch: int = 0, sample_ids: Sequence[int] | None = None,
                      inplace: bool = False,
                      num_cells: int | Sequence[int] | None = None) -> torch.Tensor:
    """Hide-and-Seek with one Python iteration per sample and per grid cell.

    Same parameters and result as :func:`hideseek.augment.hide_patches`.
    """
    x, single = as_image_batch(images)
    out = x if inplace else x.clone()
    batch, channels, height, width = x.shape
    choices = cell_choices(height, width, grid_sizes, num_cells)
    ids = _hash.as_ids(sample_ids, batch, torch.device("cpu")).tolist()
    fill_t = fill_vector(fill, channels, x.dtype).to(x.device).view(channels, 1, 1)
    thr = _hash.threshold(float(p_hide))
    base = _hash.base_key(_hash.DOMAIN_PATCHES, seed, epoch)

    for b, sample_id in enumerate(ids):
        key = _hash.sample_keys(base, sample_id)
        cell_h, cell_w = choices[_hash.draw_index(_hash.combine(key, _hash.STREAM_SIZE),
                                                  len(choices))]
        if cell_h == 0:
            continue  # size 0: this sample is not hidden
        key_cell = _hash.combine(key, _hash.STREAM_CELL)
        for r in range(math.ceil(height / cell_h)):
            key_row = _hash.combine(key_cell, r)
            for c in range(math.ceil(width / cell_w)):
                if _hash.combine(key_row, c) < thr:
                    y0, x0 = r * cell_h, c * cell_w
                    out[b, :, y0:y0 + cell_h, x0:x0 + cell_w] = fill_t
    if inplace:
        return images
    return out[0] if single else out
