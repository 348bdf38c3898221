"""Turning per-cell decisions into pixels, and writing the fill value.

Every image augmentation here hides a *separable cell layout*: each sample ``b`` cuts its
rows into cells with an index ``ridx[b, y]`` and its columns with ``cidx[b, x]``, and a
small table ``hidden[b, r, c]`` says which cells are hidden. Hide-and-Seek uses a regular
grid; cutout uses a 3 x 3 layout whose centre cell is the square.

Expanding the table to pixels costs one small ``gather`` (columns) and one row
``index_select`` (whole rows copied at memory speed). The fill is then written in a
single pass with bitwise operations on an integer view of the data: ``x & keep`` where
``keep`` is all-ones bits for visible pixels and zero for hidden ones, then ``| fill``
bits where the fill is non-zero. Bitwise ops are exact for every value (NaN and inf
included, unlike ``x * keep``), vectorise well, and write nothing but the result.
Tensors that need gradients take the differentiable ``torch.where`` path instead. Large
CPU batches go through the compiled writer of :mod:`hideseek.augment._cpu_masking`, which
has the same contract and moves the minimum memory (no pixel mask, in place only the
hidden cells are written).
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import torch

from . import _cpu_masking

FillLike = float | int | Sequence[float] | torch.Tensor

_INT_VIEW = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


def as_image_batch(images: torch.Tensor, name: str = "images") -> tuple[torch.Tensor, bool]:
    """Return ``(x, single)`` with ``x`` of shape ``(B, C, H, W)``; ``single`` is True when
    the input was one ``(C, H, W)`` image."""
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(images).__name__}")
    if images.dtype == torch.bool or images.dtype.is_complex:
        raise TypeError(f"{name} must be a floating point or integer (e.g. uint8) tensor, "
                        f"got dtype {images.dtype}")
    if images.ndim == 3:
        return images.unsqueeze(0), True
    if images.ndim == 4:
        return images, False
    raise ValueError(f"{name} must have shape (B, C, H, W) or (C, H, W), "
                     f"got {tuple(images.shape)}")


def fill_vector(fill: FillLike, channels: int, dtype: torch.dtype) -> torch.Tensor:
    """Validate ``fill`` (scalar, or one value per channel) and return it as a ``(C,)``
    CPU tensor of ``dtype`` (the caller moves it if it needs it on the device).

    Integer dtypes (e.g. uint8) need integral fill values inside the dtype's range: a fill
    of 0.5 on a uint8 image is an error rather than a silent rounding.
    """
    if isinstance(fill, torch.Tensor):
        values = fill.detach().to("cpu", torch.float64).reshape(-1)
    elif isinstance(fill, numbers.Real):
        values = torch.tensor([float(fill)], dtype=torch.float64)
    else:
        try:
            values = torch.tensor([float(v) for v in fill], dtype=torch.float64)
        except (TypeError, ValueError):
            raise TypeError("fill must be a number or a sequence/tensor of numbers "
                            f"(one per channel), got {fill!r}") from None
    if values.numel() == 1:
        values = values.expand(channels)
    elif values.numel() != channels:
        raise ValueError(f"fill has {values.numel()} values but the input has "
                         f"{channels} channels")
    if not dtype.is_floating_point:
        info = torch.iinfo(dtype)
        if not bool(torch.all(values == values.round())) or \
                not bool(torch.all((values >= info.min) & (values <= info.max))):
            raise ValueError(f"fill {values.tolist()} is not representable in {dtype} "
                             f"(integers in [{info.min}, {info.max}] required)")
    return values.to(dtype)


def expand_cells(table: torch.Tensor, ridx: torch.Tensor, cidx: torch.Tensor) -> torch.Tensor:
    """Expand a per-cell table ``(B, nR, nC)`` to pixels ``(B, H, W)``.

    ``ridx`` is ``(B, H)`` and ``cidx`` is ``(B, W)``, both int64 cell indices.
    """
    b, n_rows, n_cols = table.shape
    width = cidx.shape[1]
    cols = torch.gather(table, 2, cidx[:, None, :].expand(b, n_rows, width))
    rows = ridx + (torch.arange(b, device=ridx.device, dtype=torch.int64) * n_rows)[:, None]
    return cols.reshape(b * n_rows, width).index_select(0, rows.reshape(-1)).view(
        b, ridx.shape[1], width)


def apply_cells(x: torch.Tensor, hidden: torch.Tensor, ridx: torch.Tensor,
                cidx: torch.Tensor, fill: FillLike, inplace: bool) -> torch.Tensor:
    """Write ``fill`` into the hidden cells of the ``(B, C, H, W)`` batch ``x``.

    Parameters
    ----------
    x : Tensor
        ``(B, C, H, W)`` batch.
    hidden : Tensor
        ``(B, nR, nC)`` bool cell table, True = hidden.
    ridx, cidx : Tensor
        ``(B, H)`` and ``(B, W)`` int64 cell indices of every row and column.
    fill : float or sequence or Tensor
        Scalar or per-channel fill value.
    inplace : bool
        Write into ``x`` (returned) instead of a new tensor.
    """
    channels = x.shape[1]
    fill_t = fill_vector(fill, channels, x.dtype)
    if x.numel() == 0:
        return x if inplace else x.clone()

    if x.requires_grad and torch.is_grad_enabled():
        # Differentiable path (feature maps inside a model): gradient 1 where visible.
        mask = expand_cells(hidden, ridx, cidx)[:, None]
        out = torch.where(mask, fill_t.to(x.device).view(1, -1, 1, 1), x)
        return x.copy_(out) if inplace else out

    int_dtype = _INT_VIEW[x.element_size()]
    if x.device.type == "cpu" and x.numel() >= _cpu_masking.MIN_ELEMENTS:
        # One compiled pass (out of place) or hidden cells only (in place): see _cpu_masking.
        out_b = _cpu_masking.apply_cells_cpu(x.view(int_dtype), hidden.contiguous(), ridx, cidx,
                                             fill_t.view(int_dtype), inplace)
        return x if inplace else out_b.view(x.dtype)
    zero = torch.zeros((), dtype=int_dtype, device=x.device)
    keep_cells = torch.where(hidden, zero, torch.bitwise_not(zero))
    keep = expand_cells(keep_cells, ridx, cidx)[:, None]  # (B, 1, H, W)
    xb = x.view(int_dtype)
    if inplace:
        out_b = xb.bitwise_and_(keep)
        out = x
    else:
        out_b = torch.bitwise_and(xb, keep)
        out = out_b.view(x.dtype)

    fill_list = fill_t.view(int_dtype).tolist()
    if any(fill_list):
        hide = keep.bitwise_not_()  # keep is a fresh tensor: reuse its memory
        if all(v == fill_list[0] for v in fill_list):
            out_b.bitwise_or_(hide.bitwise_and_(fill_list[0]))
        else:
            for c, bits in enumerate(fill_list):
                if bits:
                    out_b[:, c].bitwise_or_(hide[:, 0] & bits)
    return out
