"""Semantic segmentation metrics: mIoU from a confusion matrix accumulated over a split.

Convention (mmsegmentation / torchmetrics, see REFERENCE.md): one confusion matrix over
every pixel of the split whose ground truth is not ``ignore_index`` (255 in VOC);
``IoU_c = TP_c / (TP_c + FP_c + FN_c)``; ``mIoU`` is the mean over the classes that occur in
the prediction or the ground truth (a class absent from both has no IoU, NaN, and is left
out); values in percent. ``pixel_acc`` is the share of scored pixels labelled correctly.

Against ``torchmetrics.classification.MulticlassJaccardIndex(num_classes, ignore_index=255)``
(``average="macro"``): torchmetrics returns a fraction, we return percent; both drop pixels
whose target is ``ignore_index`` and leave a class out of the mean when it has neither
predicted nor GT pixels, so ``mIoU == 100 * torchmetrics``. With ``average="none"``
torchmetrics reports such a class as 0.0 where :func:`iou_from_confusion` reports NaN. A
split with no scored pixel gives NaN in both.

:class:`MeanIoU` and :class:`ThresholdSweep` follow the accumulator life cycle of
:class:`hideseek.cam.metric.Metric` (``update``, ``compute``, ``reset``, ``merge``,
``sync``) with integer counts as state. :class:`MeanIoU` and the functions count in numpy
on the CPU and never import torch, so scoring saved label maps (``hideseek seg evaluate``)
runs without it; torch tensors passed in are read as arrays. :class:`ThresholdSweep`
accumulates torch tensors on the model's device (it imports torch when built).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from hideseek.cam.metric import Metric, as_array, index_array, is_tensor
from hideseek.cam.policies import Oracle, ThresholdPolicy, cam_thresholds, evaluated_thresholds

if TYPE_CHECKING:
    import torch

__all__ = [
    "LabelError",
    "MeanIoU",
    "ThresholdSweep",
    "check_labels",
    "confusion_matrix",
    "iou_from_confusion",
    "mean_iou",
    "threshold_index",
]


class LabelError(ValueError):
    """A label map holds a value that is not a class (nor the ignore index), or has the wrong shape."""


def _as_long(values, what: str) -> np.ndarray:
    """Integer class indices as an int64 array (a tensor is copied to the CPU)."""
    if is_tensor(values) and (values.is_floating_point() or values.is_complex()
                              or values.dtype == sys.modules["torch"].bool):
        raise TypeError(f"{what}: expected integer class indices, got dtype {values.dtype}")  # torch's dtype name
    return index_array(values, what)


def _as_long_tensor(values, what: str) -> torch.Tensor:
    """Integer class indices as an int64 tensor, on the device they are on (:class:`ThresholdSweep`)."""
    import torch

    tensor = torch.as_tensor(values)
    if tensor.is_floating_point() or tensor.is_complex() or tensor.dtype == torch.bool:
        raise TypeError(f"{what}: expected integer class indices, got dtype {tensor.dtype}")
    return tensor.long()


def _unique(values) -> list[int]:
    """Sorted distinct values of an array or tensor, as Python ints."""
    return np.unique(as_array(values)).tolist()


def check_labels(preds, target, num_classes: int, ignore_index: int | None, name: str = "label map") -> None:
    """Raise :class:`LabelError` naming ``name`` unless shapes agree, every prediction is a
    class in ``0..num_classes-1`` and every target is a class or ``ignore_index``.

    ``preds`` and ``target`` are integer arrays or tensors (checked where they are, a
    tensor on its device)."""
    if tuple(preds.shape) != tuple(target.shape):
        raise LabelError(f"{name}: prediction has shape {tuple(preds.shape)}, ground truth {tuple(target.shape)}")
    bad = (preds < 0) | (preds >= num_classes)
    if bool(bad.any()):
        values = _unique(preds[bad])
        raise LabelError(f"{name}: predicted labels {values[:8]} outside the classes 0..{num_classes - 1} "
                         f"({int(bad.sum())} pixels)")
    bad = (target < 0) | (target >= num_classes)
    if ignore_index is not None:
        bad &= target != ignore_index
    if bool(bad.any()):
        values = _unique(target[bad])
        allowed = f"0..{num_classes - 1}" + (f" or {ignore_index}" if ignore_index is not None else "")
        raise LabelError(f"{name}: ground-truth labels {values[:8]} are not {allowed} ({int(bad.sum())} pixels)")


def confusion_matrix(preds, target, num_classes: int = 21, ignore_index: int | None = 255,
                     name: str = "label map") -> np.ndarray:
    """(C, C) int64 pixel counts (a numpy array), rows = ground truth, columns = prediction,
    of any number of label maps of equal shape (arrays, tensors or nested lists of integer
    class indices); pixels whose target is ``ignore_index`` are skipped."""
    preds, target = _as_long(preds, name), _as_long(target, name)
    check_labels(preds, target, num_classes, ignore_index, name)
    if ignore_index is not None:
        keep = target != ignore_index
        preds, target = preds[keep], target[keep]
    flat = target.reshape(-1) * num_classes + preds.reshape(-1)
    counts = np.bincount(flat, minlength=num_classes * num_classes).astype(np.int64, copy=False)
    return counts.reshape(num_classes, num_classes)


def iou_from_confusion(confmat, class_names: Sequence[str] | None = None) -> dict:
    """``mIoU``, ``pixel_acc``, ``mean_acc`` (percent), per-class ``IoU`` and the count of
    classes in the mean, from a (C, C) confusion matrix (rows GT, columns prediction; an
    array or a tensor)."""
    conf = as_array(confmat).astype(np.float64)
    num_classes = conf.shape[0]
    names = list(class_names) if class_names is not None else [str(c) for c in range(num_classes)]
    if len(names) != num_classes:
        raise ValueError(f"{len(names)} class names for {num_classes} classes")
    tp = np.diagonal(conf)
    gt, pred = conf.sum(1), conf.sum(0)
    union = gt + pred - tp
    iou = np.where(union > 0, tp / np.maximum(union, 1), np.nan)
    acc = np.where(gt > 0, tp / np.maximum(gt, 1), np.nan)
    present = union > 0
    total = conf.sum()
    return {
        "mIoU": float(100 * iou[present].mean()) if present.any() else float("nan"),
        "pixel_acc": float(100 * tp.sum() / total) if total > 0 else float("nan"),
        "mean_acc": float(100 * acc[gt > 0].mean()) if (gt > 0).any() else float("nan"),
        "IoU": {n: float(100 * v) for n, v in zip(names, iou.tolist())},
        "num_classes_scored": int(present.sum()),
        "num_pixels": int(total),
    }


def mean_iou(preds, target, num_classes: int = 21, ignore_index: int | None = 255,
             class_names: Sequence[str] | None = None) -> dict:
    """Functional twin of :class:`MeanIoU`: the metrics of one batch of label maps."""
    result = iou_from_confusion(confusion_matrix(preds, target, num_classes, ignore_index), class_names)
    shape = tuple(target.shape) if hasattr(target, "shape") else np.shape(target)
    result["num_images"] = int(shape[0]) if len(shape) == 3 else 1
    return result


class MeanIoU(Metric):
    """Confusion matrix accumulated over a split (``update`` per image or batch).

    State: numpy int64 counts on the CPU (``confmat`` (C, C), ``num_images``); label maps
    given as tensors, on any device, are copied to the CPU. ``device`` is accepted for
    compatibility and not used: the counts always live on the CPU."""

    _states = ("confmat", "num_images")

    def __init__(self, num_classes: int = 21, ignore_index: int | None = 255,
                 class_names: Sequence[str] | None = None, device: str | torch.device = "cpu"):
        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes}")
        self.num_classes, self.ignore_index = num_classes, ignore_index
        self.class_names = list(class_names) if class_names is not None else None
        self.confmat = np.zeros((num_classes, num_classes), dtype=np.int64)
        self.num_images = np.zeros((), dtype=np.int64)

    def update(self, preds, target, name: str = "label map") -> None:
        """Add label maps (H, W) or (N, H, W); ``name`` is what an error message calls them."""
        target = _as_long(target, name)
        self.confmat += confusion_matrix(preds, target, self.num_classes, self.ignore_index, name)
        self.num_images += 1 if target.ndim == 2 else int(target.shape[0])

    def compute(self) -> dict:
        result = iou_from_confusion(self.confmat, self.class_names)
        result["num_images"] = int(self.num_images)
        return result


def threshold_index(thresholds: np.ndarray, policy: ThresholdPolicy, curve: np.ndarray) -> int:
    """Index of the background threshold ``policy`` picks from the mIoU ``curve`` over
    ``thresholds`` (Oracle: best on this split; Fixed(tau): ``tau`` itself, which must be
    one of ``thresholds``; Calibrated({"mIoU": tau}) from another split). NaN entries of
    the curve never win."""
    return policy.index("mIoU", "mIoU", np.nan_to_num(curve, nan=-np.inf), thresholds)


class ThresholdSweep(Metric):
    """Pseudo-mask mIoU at every background threshold of a grid, from one pass.

    A pixel takes the class of its highest foreground score when that score is above the
    threshold ``tau`` and background (label 0) otherwise: argmax over
    ``[tau, score_1, ..., score_K]`` with ties going to the background. State: counts
    ``(C, C, T + 1)`` of (GT label, best foreground class, number of grid thresholds
    strictly below the best score), so the confusion matrix at any grid threshold is a sum
    of counts; exact, and the same labels as :func:`~hideseek.segmentation.pseudo.pseudo_labels`.

    ``extra_thresholds`` are also evaluated exactly as given (the ``tau`` of each
    :class:`~hideseek.cam.policies.Fixed` policy ``compute`` will be asked for): a fixed
    background threshold is the literal value, as :func:`pseudo_labels` uses it, never the
    nearest grid value. The oracle and calibrated policies, ``curve`` and ``confusion``
    keep to the grid.

    The counts are torch int64 tensors on ``device`` (it accumulates where the model runs),
    so building one imports torch; the module itself does not.
    """

    _states = ("counts", "num_images")

    def __init__(self, num_classes: int = 21, thresholds: np.ndarray | None = None, ignore_index: int | None = 255,
                 class_names: Sequence[str] | None = None, device: str | torch.device = "cpu",
                 extra_thresholds: Sequence[float] = ()):
        self.num_classes, self.ignore_index = num_classes, ignore_index
        self.class_names = list(class_names) if class_names is not None else None
        self.thresholds = np.asarray(cam_thresholds(0.01) if thresholds is None else thresholds, dtype=np.float64)
        if self.thresholds.ndim != 1 or not np.all(np.diff(self.thresholds) > 0):
            raise ValueError("thresholds must be a strictly increasing 1-D grid")
        extra = np.asarray(extra_thresholds, dtype=np.float64).reshape(-1)
        if not np.isfinite(extra).all():
            raise ValueError("extra_thresholds must be finite")
        # the grid, then the literal extra thresholds (the columns policies choose among);
        # counts are binned by their sorted union, and _position maps a column to its boundary
        self.evaluated = evaluated_thresholds(self.thresholds, extra)
        boundaries = np.unique(self.evaluated)
        self._position = np.searchsorted(boundaries, self.evaluated)
        import torch

        self._boundaries = torch.as_tensor(boundaries, dtype=torch.float64)
        bins = len(boundaries) + 1
        self.counts = torch.zeros(num_classes, num_classes, bins, dtype=torch.int64, device=device)
        self.num_images = torch.zeros((), dtype=torch.int64, device=device)

    def update(self, scores: torch.Tensor, target, name: str = "label map") -> None:
        """``scores``: (N, K, H, W) or (K, H, W) foreground scores, K = num_classes - 1, zero
        for classes not in the image; ``target``: (N, H, W) or (H, W) GT label maps."""
        import torch

        scores = torch.as_tensor(scores)
        if scores.ndim == 3:
            scores = scores[None]
        target = _as_long_tensor(target, name)
        if target.ndim == 2:
            target = target[None]
        if scores.shape[1] != self.num_classes - 1:
            raise ValueError(f"{name}: {scores.shape[1]} score maps for {self.num_classes - 1} foreground classes")
        best, cls = scores.max(dim=1)
        preds = cls + 1
        check_labels(preds, target, self.num_classes, self.ignore_index, name)
        # number of grid thresholds strictly below the best score, compared in the scores' dtype
        if not best.is_floating_point():
            best = best.double()
        bins = torch.bucketize(best, self._boundaries.to(device=best.device, dtype=best.dtype), right=False)
        if self.ignore_index is not None:
            keep = target != self.ignore_index
        else:
            keep = torch.ones_like(target, dtype=torch.bool)
        nbins = self.counts.shape[2]
        flat = (target[keep] * self.num_classes + preds[keep]) * nbins + bins[keep]
        counts = torch.bincount(flat, minlength=self.counts.numel()).reshape(self.counts.shape)
        self.counts += counts.to(self.counts.device)
        self.num_images += int(target.shape[0])

    def _confusions(self) -> torch.Tensor:
        """Confusion matrices (E, C, C) at every evaluated threshold (``self.evaluated``)."""
        counts = self.counts.cpu()
        # above[..., j] = pixels whose best score exceeds boundary j (bin > j)
        above = counts.flip(-1).cumsum(-1).flip(-1)[..., 1:]  # (C, C, B)
        conf = above.permute(2, 0, 1).clone()  # (B, C, C): foreground labels where above
        below = counts.sum(dim=(1, 2))[None, :] - conf.sum(dim=2)  # (B, C): pixels labelled background
        conf[:, :, 0] += below
        return conf[self._position]

    def confusion(self, index: int | None = None) -> torch.Tensor:
        """Confusion matrices (T, C, C) at every grid threshold, or (C, C) at one grid index."""
        conf = self._confusions()[: len(self.thresholds)]
        return conf if index is None else conf[index]

    @staticmethod
    def _miou(conf: torch.Tensor) -> np.ndarray:
        import torch

        conf = conf.double()
        tp = conf.diagonal(dim1=1, dim2=2)
        union = conf.sum(2) + conf.sum(1) - tp
        iou = torch.where(union > 0, tp / union.clamp(min=1), torch.full_like(tp, float("nan")))
        return (100 * torch.nanmean(iou, dim=1)).numpy()

    def curve(self) -> np.ndarray:
        """mIoU (percent) at every grid threshold."""
        return self._miou(self.confusion())

    def compute(self, policy: ThresholdPolicy = Oracle()) -> dict:
        """Metrics at the threshold ``policy`` picks, with that threshold, the policy and the
        grid's curve. A fixed policy's ``tau`` must have been evaluated (``extra_thresholds``,
        or bitwise a grid value) and is reported as given."""
        confusions = self._confusions()
        curve = self._miou(confusions)
        grid = len(self.thresholds)
        index = policy.column("mIoU", "mIoU", np.nan_to_num(curve, nan=-np.inf), self.evaluated, grid)
        result = iou_from_confusion(confusions[index], self.class_names)
        tau = float(self.evaluated[index])
        result.update({
            "bg_threshold": round(tau, 6) if index < grid else tau,  # a literal threshold exactly as given
            "policy": policy.describe(),
            "mIoU_curve": {f"{t:.4g}": round(float(v), 4) for t, v in zip(self.thresholds, curve[:grid])},
            "num_images": int(self.num_images),
        })
        return result
