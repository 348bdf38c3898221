"""Hide-and-Seek in time: hide fixed-length segments of clips or snippet features.

The time axis is cut into segments of ``segment_len`` steps starting at ``t = 0`` (the
last one is partial when ``segment_len`` does not divide ``T``); each segment is hidden
independently with probability ``p_hide``. Hidden steps take the per-video mean by
default (mean snippet feature over ``T`` for ``(B, T, D)`` features, mean pixel per
channel over ``T, H, W`` for ``(B, T, C, H, W)`` clips), or a given scalar/vector.

Determinism follows the image rule: the mask is a pure function of
``(seed, epoch, sample id)`` and the segment index.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import torch

from . import _hash

__all__ = ["hide_frames", "frame_mask"]

IdsLike = torch.Tensor | Sequence[int] | None
FrameFill = None | float | Sequence[float] | torch.Tensor


def _check(x: torch.Tensor, segment_len: int) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim not in (3, 5):
        raise ValueError("x must be (B, T, D) snippet features or (B, T, C, H, W) clips, "
                         f"got shape {tuple(x.shape)}")
    if x.dtype == torch.bool or x.dtype.is_complex:
        raise TypeError(f"x must be a float or integer tensor, got {x.dtype}")
    if isinstance(segment_len, bool) or not isinstance(segment_len, numbers.Integral) \
            or segment_len < 1:
        raise ValueError(f"segment_len must be a positive integer, got {segment_len!r}")


def frame_mask(x: torch.Tensor, segment_len: int, p_hide: float = 0.5, seed: int = 0,
               epoch: int = 0, sample_ids: IdsLike = None) -> torch.Tensor:
    """Bool mask ``(B, T)`` of the time steps :func:`hide_frames` hides (True = hidden).

    ``x`` is only read for its shape and device.
    """
    _check(x, segment_len)
    batch, steps = x.shape[:2]
    device = x.device
    ids = _hash.as_ids(sample_ids, batch, device)
    keys = _hash.sample_keys(_hash.base_key(_hash.DOMAIN_FRAMES, seed, epoch), ids)
    n_seg = max(1, math.ceil(steps / segment_len))
    seg = torch.arange(n_seg, dtype=torch.int64, device=device)
    h = _hash.combine(_hash.combine(keys, _hash.STREAM_CELL)[:, None], seg[None, :])
    hidden = h < _hash.threshold(float(p_hide))  # (B, n_seg)
    t_seg = torch.arange(steps, dtype=torch.int64, device=device) // segment_len
    return hidden[:, t_seg]


def _fill_tensor(x: torch.Tensor, fill: FrameFill) -> torch.Tensor:
    """Fill broadcastable to ``x``: ``(B, 1, D)`` / ``(B, 1, C, 1, 1)`` or ``(1, 1, ...)``."""
    feature = x.ndim == 3
    if fill is None:
        dims = (1,) if feature else (1, 3, 4)
        acc = x if x.dtype.is_floating_point else x.double()
        mean = acc.mean(dim=dims, keepdim=True)
        if not x.dtype.is_floating_point:
            mean = mean.round()
        return mean.to(x.dtype)
    n = x.shape[2]
    what = "feature dimension D" if feature else "channel count C"
    if isinstance(fill, numbers.Real):
        values = torch.tensor([float(fill)], dtype=torch.float64)
    else:
        try:
            values = torch.as_tensor(fill, dtype=torch.float64).detach().cpu().reshape(-1)
        except (TypeError, ValueError):
            raise TypeError(f"fill must be None, a number or a vector, got {fill!r}") from None
        if values.numel() not in (1, n):
            raise ValueError(f"fill has {values.numel()} values; expected 1 or the {what} "
                             f"({n})")
    if not x.dtype.is_floating_point:
        info = torch.iinfo(x.dtype)
        if not bool(torch.all(values == values.round())) or \
                not bool(torch.all((values >= info.min) & (values <= info.max))):
            raise ValueError(f"fill {values.tolist()} is not representable in {x.dtype}")
    values = values.to(dtype=x.dtype, device=x.device)
    shape = (1, 1, -1) if feature else (1, 1, -1, 1, 1)
    return values.view(shape)


def hide_frames(x: torch.Tensor, segment_len: int, p_hide: float = 0.5,
                fill: FrameFill = None, seed: int = 0, epoch: int = 0,
                sample_ids: IdsLike = None, inplace: bool = False) -> torch.Tensor:
    """Hide random fixed-length time segments of every video.

    Parameters
    ----------
    x : Tensor
        ``(B, T, D)`` snippet features or ``(B, T, C, H, W)`` clips; float or integer.
    segment_len : int
        Segment length in time steps; segments start at ``t = 0``.
    p_hide : float
        Probability that a segment is hidden.
    fill : None, float, sequence or Tensor
        ``None`` (default): the per-video mean (feature over ``T``, or pixel per channel
        for clips, computed before hiding). Otherwise a scalar or a vector of length
        ``D`` (features) or ``C`` (clips).
    seed, epoch, sample_ids
        Determine the mask (``sample_ids`` defaults to ``arange(B)``).
    inplace : bool
        Write into ``x``; otherwise it is never modified.

    Returns
    -------
    Tensor
        Same shape and dtype as ``x``.
    """
    mask = frame_mask(x, segment_len, p_hide, seed, epoch, sample_ids)
    fill_t = _fill_tensor(x, fill)
    cond = mask.view(mask.shape + (1,) * (x.ndim - 2))
    if not inplace:
        return torch.where(cond, fill_t, x)
    if x.requires_grad and torch.is_grad_enabled():
        return x.copy_(torch.where(cond, fill_t, x))
    return torch.where(cond, fill_t, x, out=x)
