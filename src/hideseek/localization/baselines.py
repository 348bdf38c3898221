"""Score maps without a model: the public WSOL benchmark's center baseline.

The benchmark's main table has a "Center baseline" row (MaxBoxAccV2 52.5 on ImageNet, 59.7
on CUB; PxAP 45.8 on OpenImages) that neither its code nor its README defines. The map
here is a centred isotropic Gaussian on the evaluated ``L x L`` map (the benchmark's 224),
centre ``((L - 1) / 2, (L - 1) / 2)``, ``sigma = sigma_ratio * L``, min-max normalised.
Because the threshold sweep turns any centred radial map into the same family of centred
squares, the result hardly depends on ``sigma`` once it is above about ``0.15 * L``.

Measured on the benchmark's own test metadata (README, "leaderboard"): MaxBoxAccV2 56.8 on
CUB and 53.4 on ILSVRC, not 52.5 / 59.7. No score map reaches 59.7 MaxBoxAccV2 on CUB
(the best box of any position, chosen on the test set itself, gives 57.5); the published
pair equals this baseline's box accuracy at IoU 0.5 alone (CUB 59.6), on ILSVRC scored
against the first ground-truth box of each image only (52.5): the table most likely kept
values of an older protocol in the MaxBoxAccV2 columns.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from hideseek.localization.data.metadata import WSOLMetadata

__all__ = ["center_gaussian", "evaluate_center_baseline"]


def center_gaussian(length: int = 224, sigma_ratio: float = 0.25) -> np.ndarray:
    """The ``(length, length)`` center-baseline map, float64 in [0, 1]."""
    if length < 2:
        raise ValueError(f"length must be >= 2, got {length}")
    if not sigma_ratio > 0:
        raise ValueError(f"sigma_ratio must be > 0, got {sigma_ratio}")
    offset = np.arange(length, dtype=np.float64) - (length - 1) / 2.0
    squared = offset[:, None] ** 2 + offset[None, :] ** 2
    gaussian = np.exp(-squared / (2.0 * (sigma_ratio * length) ** 2))
    low, high = gaussian.min(), gaussian.max()
    return (gaussian - low) / (high - low)


def evaluate_center_baseline(metadata: str | Path | WSOLMetadata, *, sigma_ratio: float = 0.25,
                             mask_root: str | Path | None = None, cam_curve_interval: float = 0.01,
                             iou_thresholds: Sequence[int] = (30, 50, 70), resize_length: int = 224,
                             progress: bool | None = None) -> dict:
    """The center baseline scored like saved score maps (:func:`~hideseek.localization.evaluate.evaluate_scoremaps`);
    the result names the baseline and its ``sigma``."""
    from hideseek.localization.evaluate import evaluate_scoremaps

    scoremap = center_gaussian(resize_length, sigma_ratio)
    result = evaluate_scoremaps(metadata, lambda image_id: scoremap, mask_root=mask_root,
                                cam_curve_interval=cam_curve_interval, iou_thresholds=iou_thresholds,
                                resize_length=resize_length, progress=progress)
    result["baseline"] = {"name": "center", "map": "isotropic Gaussian, min-max normalised",
                          "sigma_ratio": sigma_ratio, "resize_length": resize_length}
    return result
