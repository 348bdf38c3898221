"""Hide-and-Seek on image batches: :func:`hide_patches` and :func:`patch_mask`.

Per sample, one patch size is drawn uniformly from ``grid_sizes`` (0 = leave the image
alone). A grid of that size is anchored at the top-left corner; the cells at the right and
bottom borders are partial when the size does not divide the image. Each cell is hidden
independently with probability ``p_hide``; hidden pixels of every channel take ``fill``.
On mean/std-normalised input the default ``fill=0`` is the dataset mean pixel.

With ``num_cells=S`` the grid is given by a cell count instead: the cells are
``ceil(H / S) x ceil(W / S)`` pixels, anchored top-left like the patch-size grid. This is
the same rule as a patch size, so the last row/column of cells may be partial, and when
``S`` does not divide the side evenly the grid can have fewer than ``S`` cells along it
(e.g. ``H = 9, S = 4``: cells of 3 rows, 3 of them). Exactly one of ``grid_sizes`` and
``num_cells`` is used; ``num_cells`` wins when given, and giving a non-default
``grid_sizes`` as well is an error.

Determinism: the mask is a pure function of ``(seed, epoch, sample id)`` (plus the image
size and the parameters): the same sample gets the same mask whatever the batch size,
order, slicing, worker count or device. See :mod:`hideseek.augment._hash`.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import torch

from . import _hash
from ._masking import FillLike, apply_cells, as_image_batch, expand_cells

__all__ = ["hide_patches", "patch_mask", "DEFAULT_GRID_SIZES"]

DEFAULT_GRID_SIZES: tuple[int, ...] = (0, 16, 32, 44, 56)

IdsLike = torch.Tensor | Sequence[int] | None
SizesLike = int | Sequence[int]


def _int_list(values: SizesLike, name: str) -> list[int]:
    if isinstance(values, numbers.Integral) and not isinstance(values, bool):
        values = [int(values)]
    try:
        out = list(values)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"{name} must be an int or a sequence of ints, got {values!r}") from None
    if not out:
        raise ValueError(f"{name} must not be empty")
    for v in out:
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 0:
            raise ValueError(f"{name} must hold non-negative integers, got {values!r}")
    return [int(v) for v in out]


def cell_choices(height: int, width: int, grid_sizes: SizesLike = DEFAULT_GRID_SIZES,
                 num_cells: SizesLike | None = None) -> list[tuple[int, int]]:
    """The candidate ``(cell_height, cell_width)`` pairs a sample draws from.

    ``(0, 0)`` stands for "no hiding". Exposed so the reference loop and the batched code
    share one definition of the grid.
    """
    if num_cells is not None:
        if tuple(_int_list(grid_sizes, "grid_sizes")) != DEFAULT_GRID_SIZES:
            raise ValueError("give either grid_sizes or num_cells, not both")
        counts = _int_list(num_cells, "num_cells")
        return [(0, 0) if s == 0 else (max(1, math.ceil(height / s)), max(1, math.ceil(width / s)))
                for s in counts]
    return [(s, s) for s in _int_list(grid_sizes, "grid_sizes")]


def _cell_layout(batch: int, height: int, width: int, keys: torch.Tensor,
                 choices: list[tuple[int, int]], p_hide: float
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Hidden-cell table ``(B, nR, nC)`` and the row/column cell indices of every sample."""
    device = keys.device
    thr = _hash.threshold(p_hide)
    active_choices = [(h, w) for h, w in choices if h > 0]
    n_rows = max([math.ceil(height / h) for h, _ in active_choices], default=1)
    n_cols = max([math.ceil(width / w) for _, w in active_choices], default=1)

    # A "no hiding" sample gets one whole-image cell (index 0) that is never hidden.
    rows = [(h if h > 0 else max(height, 1), w if w > 0 else max(width, 1), int(h > 0))
            for h, w in choices]
    pick = _hash.draw_index(_hash.combine(keys, _hash.STREAM_SIZE), len(choices))
    table = torch.tensor(rows, dtype=torch.int64, device=device)[pick]  # (B, 3)
    cell_h, cell_w, active = table[:, 0], table[:, 1], table[:, 2].bool()

    ys = torch.arange(height, dtype=torch.int64, device=device)
    xs = torch.arange(width, dtype=torch.int64, device=device)
    ridx = ys[None, :] // cell_h[:, None]
    cidx = xs[None, :] // cell_w[:, None]

    k_cell = _hash.combine(keys, _hash.STREAM_CELL)
    k_row = _hash.combine(k_cell[:, None],
                          torch.arange(n_rows, dtype=torch.int64, device=device)[None, :])
    h = _hash.combine(k_row[:, :, None],
                      torch.arange(n_cols, dtype=torch.int64, device=device)[None, None, :])
    hidden = (h < thr) & active[:, None, None]
    return hidden, ridx, cidx


def _prepare(images: torch.Tensor, grid_sizes: SizesLike, p_hide: float, seed: int,
             epoch: int, sample_ids: IdsLike, num_cells: SizesLike | None):
    x, single = as_image_batch(images)
    batch, _, height, width = x.shape
    choices = cell_choices(height, width, grid_sizes, num_cells)
    ids = _hash.as_ids(sample_ids, batch, x.device)
    keys = _hash.sample_keys(_hash.base_key(_hash.DOMAIN_PATCHES, seed, epoch), ids)
    hidden, ridx, cidx = _cell_layout(batch, height, width, keys, choices, float(p_hide))
    return x, single, hidden, ridx, cidx


def patch_mask(images: torch.Tensor, grid_sizes: SizesLike = DEFAULT_GRID_SIZES,
               p_hide: float = 0.5, seed: int = 0, epoch: int = 0,
               sample_ids: IdsLike = None, num_cells: SizesLike | None = None
               ) -> torch.Tensor:
    """The Hide-and-Seek mask that :func:`hide_patches` would apply.

    Parameters are those of :func:`hide_patches` (``images`` is only read for its shape
    and device).

    Returns
    -------
    Tensor
        Bool tensor of shape ``(B, H, W)`` (``(H, W)`` for a single ``(C, H, W)`` image),
        True where pixels are hidden.
    """
    x, single, hidden, ridx, cidx = _prepare(images, grid_sizes, p_hide, seed, epoch,
                                             sample_ids, num_cells)
    mask = expand_cells(hidden, ridx, cidx)
    return mask[0] if single else mask


def hide_patches(images: torch.Tensor, grid_sizes: SizesLike = DEFAULT_GRID_SIZES,
                 p_hide: float = 0.5, fill: FillLike = 0.0, seed: int = 0, epoch: int = 0,
                 sample_ids: IdsLike = None, inplace: bool = False,
                 num_cells: SizesLike | None = None) -> torch.Tensor:
    """Hide random grid patches of every image (Hide-and-Seek, Singh & Lee 2017).

    Parameters
    ----------
    images : Tensor
        ``(B, C, H, W)`` or ``(C, H, W)``; any float dtype or an integer dtype such as
        uint8 (the dtype is kept); any ``H``, ``W``; any device (the work runs there).
    grid_sizes : int or sequence of int
        Patch sizes in pixels; each sample draws one uniformly. 0 = no hiding.
    p_hide : float
        Probability that a grid cell is hidden.
    fill : float, sequence or Tensor
        Value of hidden pixels: a scalar, or one value per channel. For integer images it
        must be an integer in the dtype's range.
    seed, epoch : int
        Together with the sample id they determine the mask.
    sample_ids : int Tensor or sequence of int, optional
        One id per sample (default ``arange(B)``).
    inplace : bool
        Write into ``images`` and return it. Otherwise ``images`` is never modified.
    num_cells : int or sequence of int, optional
        Give the grid as ``S x S`` cells instead of a patch size (see module docstring).

    Returns
    -------
    Tensor
        Same shape and dtype as ``images``.

    Notes
    -----
    No Python loop runs over samples or cells: the cell coins are hashed on the device,
    expanded to pixels with a gather and a row copy, and written in one bitwise pass
    (``torch.where`` when the input requires grad).
    """
    x, single, hidden, ridx, cidx = _prepare(images, grid_sizes, p_hide, seed, epoch,
                                             sample_ids, num_cells)
    out = apply_cells(x, hidden, ridx, cidx, fill, inplace)
    if inplace:
        return images
    return out[0] if single else out
