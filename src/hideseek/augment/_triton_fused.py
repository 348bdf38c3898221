"""Triton kernel behind :func:`hideseek.augment.normalize_and_hide` on CUDA.

One program normalises and hides one block of one ``(sample, channel)`` plane of the
``(B, C, H, W)`` output. Per element it reads the uint8 pixel (any input strides, so NHWC
input needs no copy), looks up the cell of its row and column in the small per-sample
index tables and the hidden-cell table (both stay in cache), and writes either
``(x - 255 mean) / (255 std)`` or the fill. Memory traffic is the ideal one: 1 byte read
and ``out_dtype`` bytes written per element.

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
def _normalize_hide_kernel(x_ptr, out_ptr, hidden_ptr, ridx_ptr, cidx_ptr, m_ptr, s_ptr,
                           fill_ptr, C, H, W, sxb, sxc, sxh, sxw, n_rows, n_cols,
                           OUT_KIND: tl.constexpr, BLOCK: tl.constexpr):
    plane = tl.program_id(0).to(tl.int64)  # b * C + c
    b = plane // C
    c = plane % C
    off = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    inside = off < H * W
    y = off // W
    x = off % W

    pix = tl.load(x_ptr + b * sxb + c * sxc + y * sxh + x * sxw, mask=inside, other=0)
    v = pix.to(tl.float32)
    v = tl.math.div_rn(v - tl.load(m_ptr + c), tl.load(s_ptr + c))

    r = tl.load(ridx_ptr + b * H + y, mask=inside, other=0)
    q = tl.load(cidx_ptr + b * W + x, mask=inside, other=0)
    hid = tl.load(hidden_ptr + (b * n_rows + r) * n_cols + q, mask=inside, other=0)

    dst = out_ptr + plane * (H * W) + off
    if OUT_KIND == 1:
        # bfloat16: round to nearest even on the float32 bits; fill is given as bits.
        bits = v.to(tl.uint32, bitcast=True)
        bits = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
        fill_bits = tl.load(fill_ptr + c).to(tl.uint32)
        res = tl.where(hid != 0, fill_bits, bits)
        tl.store(dst, res.to(tl.uint16), mask=inside)
    else:
        fill = tl.load(fill_ptr + c)
        res = tl.where(hid != 0, fill.to(tl.float32), v)
        tl.store(dst, res.to(out_ptr.dtype.element_ty), mask=inside)


def normalize_and_hide_triton(x: torch.Tensor, m255: torch.Tensor, s255: torch.Tensor,
                              fill: torch.Tensor, hidden: torch.Tensor, ridx: torch.Tensor,
                              cidx: torch.Tensor, out_dtype: torch.dtype) -> torch.Tensor:
    """Launch the kernel on the ``(B, C, H, W)`` uint8 view ``x``.

    ``m255``/``s255`` are float32 ``(C,)``, ``fill`` is ``(C,)`` of ``out_dtype``,
    ``hidden`` the ``(B, nR, nC)`` bool cell table, ``ridx``/``cidx`` the ``(B, H)`` and
    ``(B, W)`` cell indices of :func:`hideseek.augment.patches._cell_layout`.
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
    n_rows, n_cols = hidden.shape[1], hidden.shape[2]
    grid = (batch * channels, triton.cdiv(height * width, BLOCK))
    _normalize_hide_kernel[grid](
        x, out_view, hidden.to(torch.uint8).contiguous(), ridx.to(torch.int32).contiguous(),
        cidx.to(torch.int32).contiguous(), m255.to(device), s255.to(device),
        fill_arg.to(device), channels, height, width, *x.stride(), n_rows, n_cols,
        OUT_KIND=kind, BLOCK=BLOCK)
    return out
