"""Compiled CPU writer for :func:`hideseek.augment._masking.apply_cells` (large batches).

Same contract as the bitwise torch path it replaces on CPU: the data is handled through
an integer view of its bits, so every value (NaN and inf included) is copied or filled
exactly. It moves the minimum memory:

* out of place, one parallel pass reads every element once and writes it once (the fill
  bits for hidden cells), like ``x.clone()``; no pixel mask is materialised;
* in place, only the hidden cells are written; rows without a hidden cell are skipped.

Each ``(sample, row)`` looks its cells up once in the small ``hidden`` table via the
``ridx``/``cidx`` indices. Compiled with numba (cached on disk); threads follow torch's.
"""

from __future__ import annotations

import numba
import numpy as np
import torch

from hideseek.threads import kept_torch_threads

__all__ = ["apply_cells_cpu", "MIN_ELEMENTS"]

# Below this many elements the eager torch path is as fast and needs no compilation.
MIN_ELEMENTS = 1 << 16


@numba.njit(parallel=True, cache=True)
def _hide_copy(x, out, hidden, ridx, cidx, fill):  # pragma: no cover - compiled
    batch, channels, height, width = x.shape
    for row in numba.prange(batch * height):
        b, y = row // height, row % height
        cells = hidden[b, ridx[b, y]]
        hid = np.empty(width, dtype=np.bool_)
        for xx in range(width):
            hid[xx] = cells[cidx[b, xx]]
        for c in range(channels):
            f = fill[c]
            for xx in range(width):
                out[b, c, y, xx] = f if hid[xx] else x[b, c, y, xx]


@numba.njit(parallel=True, cache=True)
def _hide_inplace(x, hidden, ridx, cidx, fill):  # pragma: no cover - compiled
    batch, channels, height, width = x.shape
    for row in numba.prange(batch * height):
        b, y = row // height, row % height
        cells = hidden[b, ridx[b, y]]
        if not cells.any():
            continue
        for c in range(channels):
            f = fill[c]
            for xx in range(width):
                if cells[cidx[b, xx]]:
                    x[b, c, y, xx] = f


def apply_cells_cpu(xb: torch.Tensor, hidden: torch.Tensor, ridx: torch.Tensor,
                    cidx: torch.Tensor, fill_bits: torch.Tensor, inplace: bool) -> torch.Tensor:
    """Fill the hidden cells of the integer-viewed CPU batch ``xb`` ``(B, C, H, W)``.

    ``fill_bits`` is ``(C,)`` of ``xb``'s dtype. Returns ``xb`` (in place) or a new tensor
    with ``xb``'s shape and memory format.
    """
    with kept_torch_threads():  # the first call starts numba's OpenMP layer, which resets torch's count
        numba.set_num_threads(max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS)))
    args = (hidden.numpy(), ridx.numpy(), cidx.numpy(), fill_bits.numpy())
    if inplace:
        with kept_torch_threads():
            _hide_inplace(xb.numpy(), *args)
        return xb
    out = torch.empty_like(xb)
    with kept_torch_threads():
        _hide_copy(xb.numpy(), out.numpy(), *args)
    return out
