"""Class activation maps: normalisation and resizing conventions.

``normalize_cams`` follows the public WSOL benchmark: each map is shifted by its minimum
and divided by its (shifted) maximum; a map that is constant or holds a NaN becomes all
zeros. ``resize_cams`` is the WSOL convention for raw maps: bicubic upsampling to the
image, then ``normalize_cams``. torch is imported by the functions that use it, so the
torch-free evaluators can read ``nearest_indices``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

__all__ = ["nearest_indices", "normalize_cams", "resize_cams"]


def normalize_cams(cams: torch.Tensor | np.ndarray) -> torch.Tensor | np.ndarray:
    """Min-max normalise maps over their last two dimensions, batched.

    Accepts (H, W) or (..., H, W), torch or numpy (the result has the input's type, dtype
    and device). Constant maps and maps containing NaN become zeros, as in the reference.
    """
    import torch

    if isinstance(cams, np.ndarray):
        return normalize_cams(torch.from_numpy(np.array(cams, copy=True))).numpy()
    if not cams.is_floating_point():
        raise TypeError(f"CAMs must be floating point, got {cams.dtype}")
    flat = cams.reshape(*cams.shape[:-2], -1)
    low = flat.amin(dim=-1, keepdim=True)
    shifted = flat - low
    high = shifted.amax(dim=-1, keepdim=True)
    bad = torch.isnan(flat).any(dim=-1, keepdim=True) | (high == 0)
    out = torch.where(bad, torch.zeros_like(flat), shifted / torch.where(bad, torch.ones_like(high), high))
    return out.reshape(cams.shape)


def resize_cams(raw: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Raw maps (B, k, h, w) -> float32 (B, k, H, W): bicubic to ``size``, min-max normalised."""
    import torch.nn.functional as F

    maps = F.interpolate(raw.float(), size=tuple(size), mode="bicubic", align_corners=False)
    return normalize_cams(maps)


def nearest_indices(source: int, target: int) -> np.ndarray:
    """Source index of every target pixel for nearest-neighbour resizing.

    Reproduces OpenCV's ``INTER_NEAREST`` (the reference resizes GT masks with it):
    ``floor(i * (1 / (target / source)))``, clipped to ``source - 1``, in float64.
    """
    scale = 1.0 / (target / source)
    return np.minimum(np.floor(np.arange(target) * scale).astype(np.int64), source - 1)
