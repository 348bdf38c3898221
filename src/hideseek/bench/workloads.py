"""Synthetic inputs for kernel benchmarks and equivalence tests."""

from __future__ import annotations

import numpy as np

__all__ = ["upsample_bilinear", "cam_like_map"]


def upsample_bilinear(low: np.ndarray, size: int) -> np.ndarray:
    """Bilinear upsampling of a 2-D map to ``size`` x ``size`` (pixel centres aligned), as
    CAMs are resized to the input."""
    h, w = low.shape
    ys = (np.arange(size) + 0.5) * h / size - 0.5
    xs = (np.arange(size) + 0.5) * w / size - 0.5
    rows = np.stack([np.interp(xs, np.arange(w), row) for row in low])
    return np.stack([np.interp(ys, np.arange(h), col) for col in rows.T], axis=1)


def cam_like_map(rng: np.random.Generator, size: int = 224) -> np.ndarray:
    """A smooth CAM-like score map in [0, 1]: 1-3 Gaussian blobs on a low-resolution
    (7, 14 or 28 cells) random field, upsampled bilinearly and min-max normalised."""
    res = int(rng.choice([7, 14, 28]))
    low = rng.random((res, res)) ** 3
    yy, xx = np.mgrid[0:res, 0:res] / res
    for _ in range(rng.integers(1, 4)):
        cy, cx = rng.random(2)
        sy, sx = rng.uniform(0.05, 0.3, size=2)
        low += rng.uniform(1, 3) * np.exp(-((yy - cy) ** 2 / (2 * sy**2) + (xx - cx) ** 2 / (2 * sx**2)))
    s = upsample_bilinear(low, size)
    return (s - s.min()) / (s.max() - s.min())
