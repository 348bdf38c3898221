"""Triton kernel behind :func:`hideseek.augment.normalize_and_hide` on CUDA.

One launch does everything: one program normalises and hides one block of one
``(sample, channel)`` plane of the ``(B, C, H, W)`` output. It derives the sample's key
and patch size from ``(seed, epoch, sample id)`` with the counter-based hash of
:mod:`hideseek.augment._hash` (native 32-bit unsigned arithmetic, which is that module's
int64 formulation reduced mod ``2**32``), then per element reads the uint8 pixel (any
input strides, so NHWC input needs no copy), hashes the element's grid cell and writes
either ``(x - 255 mean) / (255 std)`` or the fill. No mask or index table is built, so
memory traffic is the ideal one (1 byte read and ``out_dtype`` bytes written per element)
and no setup kernels are launched.

Exactness: the divisions use ``div_rn`` (IEEE round to nearest), like torch on CPU and
CUDA, instead of Triton's default approximate division; bfloat16 output is rounded to
nearest even with integer operations on the float32 bits, which gives the same result
on the GPU and under Triton's interpreter (whose float32 -> bfloat16 cast truncates).

Importing this module needs :mod:`triton`; with ``TRITON_INTERPRET=1`` set before the
import, the kernel runs on CPU tensors through the interpreter.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

__all__ = ["normalize_and_hide_triton"]

BLOCK = 1024


@triton.jit
def _fmix32(h):
    h = h ^ (h >> 16)
    h = h * 0x85EBCA6B
    h = h ^ (h >> 13)
    h = h * 0xC2B2AE35
    return h ^ (h >> 16)


@triton.jit
def _combine(h, v):
    return _fmix32(h ^ (v + 0x9E3779B9 + (h << 6) + (h >> 2)))


@triton.jit(do_not_specialize=["base_key", "n_choices", "thr"])
def _normalize_hide_kernel(x_ptr, out_ptr, ids_ptr, choices_ptr, m_ptr, s_ptr, fill_ptr,
                           base_key, n_choices, thr, C, H, W, sxb, sxc, sxh, sxw,
                           IDS_ARANGE: tl.constexpr, OUT_KIND: tl.constexpr,
                           BLOCK: tl.constexpr):
    plane = tl.program_id(0).to(tl.int64)  # b * C + c
    b = plane // C
    c = plane % C

    # Per-sample key and patch size (hideseek.augment._hash.sample_keys / draw_index).
    if IDS_ARANGE:
        sid = b
    else:
        sid = tl.load(ids_ptr + b)
    key = _combine(base_key.to(tl.uint32), (sid & 0xFFFFFFFF).to(tl.uint32))
    key = _combine(key, ((sid >> 32) & 0xFFFFFFFF).to(tl.uint32))
    pick = tl.umulhi(_combine(key, tl.full((), 1, tl.uint32)), n_choices.to(tl.uint32))
    cell_h = tl.load(choices_ptr + pick * 3)
    cell_w = tl.load(choices_ptr + pick * 3 + 1)
    active = tl.load(choices_ptr + pick * 3 + 2)
    k_cell = _combine(key, tl.full((), 2, tl.uint32))

    off = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    inside = off < H * W
    y = off // W
    x = off % W
    pix = tl.load(x_ptr + b * sxb + c * sxc + y * sxh + x * sxw, mask=inside, other=0)
    v = pix.to(tl.float32)
    v = tl.math.div_rn(v - tl.load(m_ptr + c), tl.load(s_ptr + c))

    r = (y // cell_h).to(tl.uint32)
    q = (x // cell_w).to(tl.uint32)
    h = _combine(_combine(k_cell, r), q)
    hid = (h.to(tl.int64) < thr) & (active != 0)

    dst = out_ptr + plane * (H * W) + off
    if OUT_KIND == 1:
        # bfloat16: round to nearest even on the float32 bits; fill is given as bits.
        bits = v.to(tl.uint32, bitcast=True)
        bits = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
        fill_bits = tl.load(fill_ptr + c).to(tl.uint32)
        res = tl.where(hid, fill_bits, bits)
        tl.store(dst, res.to(tl.uint16), mask=inside)
    else:
        fill = tl.load(fill_ptr + c)
        res = tl.where(hid, fill.to(tl.float32), v)
        tl.store(dst, res.to(out_ptr.dtype.element_ty), mask=inside)


_CHOICES_CACHE: dict[tuple[tuple[tuple[int, int], ...], int, int, str], torch.Tensor] = {}


def _choices_table(choices: list[tuple[int, int]], height: int, width: int,
                   device: torch.device) -> torch.Tensor:
    """``(n, 3)`` int32 ``(cell_h, cell_w, active)`` rows on ``device``, cached so repeated
    calls do not copy it again; a "no hiding" choice is one whole-image, inactive cell."""
    key = (tuple(choices), height, width, str(device))
    table = _CHOICES_CACHE.get(key)
    if table is None:
        rows = [(h if h > 0 else max(height, 1), w if w > 0 else max(width, 1), int(h > 0))
                for h, w in choices]
        table = torch.tensor(rows, dtype=torch.int32).to(device)
        if len(_CHOICES_CACHE) > 64:
            _CHOICES_CACHE.clear()
        _CHOICES_CACHE[key] = table
    return table


def normalize_and_hide_triton(x: torch.Tensor, m255: torch.Tensor, s255: torch.Tensor,
                              fill: torch.Tensor, choices: list[tuple[int, int]],
                              base_key: int, ids: torch.Tensor | None, thr: int,
                              out_dtype: torch.dtype) -> torch.Tensor:
    """Launch the kernel on the ``(B, C, H, W)`` uint8 view ``x``.

    ``m255``/``s255`` are float32 ``(C,)`` constants, ``fill`` is ``(C,)`` of ``out_dtype``,
    ``choices`` the candidate cell sizes of :func:`hideseek.augment.patches.cell_choices`,
    ``base_key`` the ``(domain, seed, epoch)`` key, ``ids`` the int64 sample ids on the
    device (``None`` = ``arange(B)``) and ``thr`` the hiding threshold.
    """
    batch, channels, height, width = x.shape
    device = x.device
    out = torch.empty((batch, channels, height, width), dtype=out_dtype, device=device)
    if out.numel() == 0:
        return out
    if out_dtype == torch.bfloat16:
        kind, out_view = 1, out.view(torch.int16)
        fill_arg = fill.view(torch.int16).to(torch.int32) & 0xFFFF
    else:
        kind, out_view = 0, out
        fill_arg = fill
    table = _choices_table(choices, height, width, device)
    grid = (batch * channels, triton.cdiv(height * width, BLOCK))
    _normalize_hide_kernel[grid](
        x, out_view, ids if ids is not None else table, table, m255.to(device),
        s255.to(device), fill_arg.to(device), base_key, len(choices), thr, channels, height,
        width, *x.stride(), IDS_ARANGE=ids is None, OUT_KIND=kind, BLOCK=BLOCK)
    return out
