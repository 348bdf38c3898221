"""Compiled CPU path of :func:`hideseek.augment.normalize_and_hide` (float32 and bfloat16 out).

One parallel pass over the output rows: for each ``(sample, row)`` the hidden flags of the
row are looked up once in the cell table, then every channel's uint8 pixels are read,
normalised with the same float32 operations as :func:`hideseek.augment.normalize`
(subtract, then IEEE division) and written, or replaced by the fill. bfloat16 is rounded
to nearest even on the float32 bits, as torch's conversion does for finite values.
Compiled with numba and cached on disk; the thread count follows torch's.
"""

from __future__ import annotations

import numba
import numpy as np
import torch

from hideseek.threads import kept_torch_threads

__all__ = ["normalize_and_hide_cpu"]


@numba.njit(inline="always")
def _row_flags(hidden, ridx, cidx, b, y, width):  # pragma: no cover - compiled
    cells = hidden[b, ridx[b, y]]
    hid = np.empty(width, dtype=np.bool_)
    for xx in range(width):
        hid[xx] = cells[cidx[b, xx]]
    return hid


@numba.njit(parallel=True, cache=True)
def _kernel_f32(x, out, hidden, ridx, cidx, m, s, fill):  # pragma: no cover - compiled
    batch, channels, height, width = x.shape
    for row in numba.prange(batch * height):
        b, y = row // height, row % height
        hid = _row_flags(hidden, ridx, cidx, b, y, width)
        for c in range(channels):
            mc, sc, fc = m[c], s[c], fill[c]
            for xx in range(width):
                v = (np.float32(x[b, c, y, xx]) - mc) / sc
                out[b, c, y, xx] = fc if hid[xx] else v


@numba.njit(parallel=True, cache=True)
def _kernel_bf16(x, out, hidden, ridx, cidx, m, s, fill):  # pragma: no cover - compiled
    batch, channels, height, width = x.shape
    for row in numba.prange(batch * height):
        b, y = row // height, row % height
        hid = _row_flags(hidden, ridx, cidx, b, y, width)
        buf = np.empty(width, dtype=np.float32)
        raw = buf.view(np.uint32)
        for c in range(channels):
            mc, sc, fc = m[c], s[c], fill[c]
            for xx in range(width):
                buf[xx] = (np.float32(x[b, c, y, xx]) - mc) / sc
            for xx in range(width):
                bits = raw[xx]
                bits = (bits + np.uint32(0x7FFF) + ((bits >> np.uint32(16)) & np.uint32(1))) >> np.uint32(16)
                out[b, c, y, xx] = fc if hid[xx] else np.uint16(bits)


def normalize_and_hide_cpu(x: torch.Tensor, m255: torch.Tensor, s255: torch.Tensor,
                           fill: torch.Tensor, hidden: torch.Tensor, ridx: torch.Tensor,
                           cidx: torch.Tensor, out_dtype: torch.dtype) -> torch.Tensor:
    """Run the kernel on the CPU ``(B, C, H, W)`` uint8 view ``x`` (float32 / bfloat16 out)."""
    out = torch.empty(x.shape, dtype=out_dtype)
    if out.numel() == 0:
        return out
    with kept_torch_threads():  # the first call starts numba's OpenMP layer, which resets torch's count
        numba.set_num_threads(max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS)))
    args = (hidden.numpy(), ridx.numpy(), cidx.numpy(), m255.numpy(), s255.numpy())
    with kept_torch_threads():
        if out_dtype == torch.bfloat16:
            _kernel_bf16(x.numpy(), out.view(torch.int16).numpy().view(np.uint16), *args,
                         fill.view(torch.int16).numpy().view(np.uint16))
        else:
            _kernel_f32(x.numpy(), out.numpy(), *args, fill.numpy())
    return out
