"""Score a folder of predicted label PNGs against a folder of ground-truth label PNGs.

What ``hideseek seg evaluate`` runs. Both folders hold ``<image id>.png`` label maps in the
VOC format (palette or single-channel PNGs of class indices). The image ids are those of
``split_file`` (one per line, as ``ImageSets/Segmentation/val.txt``) or, without one, every
PNG of the ground-truth folder. Every problem stops the evaluation with the file named: a
missing prediction (all missing ids are counted, the first few listed), an RGB PNG, a
prediction whose size differs from its ground truth, a predicted label outside the
classes, a ground-truth label that is neither a class nor the ignore index.

Nothing here imports torch: the label maps are numpy arrays scored by :class:`MeanIoU`'s
numpy counts.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from hideseek.segmentation.metrics import MeanIoU
from hideseek.segmentation.voc import VOC_CLASSES, read_image_ids, read_label_png

__all__ = ["SegEvaluationError", "evaluate_label_dirs"]


class SegEvaluationError(ValueError):
    """Predictions or ground truth cannot be scored; the message names the file."""


def _ids(ground_truth: Path, split_file: str | Path | None) -> list[str]:
    if split_file is not None:
        return read_image_ids(split_file)
    if not ground_truth.is_dir():
        raise FileNotFoundError(f"{ground_truth}: ground-truth folder not found")
    ids = sorted(p.stem for p in ground_truth.glob("*.png"))
    if not ids:
        raise SegEvaluationError(f"{ground_truth}: no .png label map in the ground-truth folder")
    return ids


def evaluate_label_dirs(predictions: str | Path, ground_truth: str | Path, *, num_classes: int = 21,
                        ignore_index: int | None = 255, split_file: str | Path | None = None,
                        class_names: Sequence[str] | None = None, progress: bool = False) -> dict:
    """``mIoU``, ``pixel_acc``, ``mean_acc`` (percent), per-class ``IoU`` (named by VOC's
    classes when ``num_classes`` is 21, else by index), ``num_images``, ``seconds``."""
    start = time.perf_counter()
    pred_dir, gt_dir = Path(predictions), Path(ground_truth)
    if not pred_dir.is_dir():
        raise FileNotFoundError(f"{pred_dir}: prediction folder not found")
    ids = _ids(gt_dir, split_file)
    missing = [i for i in ids if not (pred_dir / f"{i}.png").is_file()]
    if missing:
        shown = ", ".join(str(pred_dir / f"{i}.png") for i in missing[:5])
        raise SegEvaluationError(f"{len(missing)} of {len(ids)} predictions missing in {pred_dir} "
                                 f"(first: {shown})")
    absent_gt = [i for i in ids if not (gt_dir / f"{i}.png").is_file()]
    if absent_gt:
        shown = ", ".join(str(gt_dir / f"{i}.png") for i in absent_gt[:5])
        raise SegEvaluationError(f"{len(absent_gt)} of {len(ids)} ground-truth label maps missing (first: {shown})")
    if class_names is None and num_classes == len(VOC_CLASSES):
        class_names = VOC_CLASSES
    metric = MeanIoU(num_classes, ignore_index, class_names)
    # disable=None: a bar on a terminal only, never in a log or a captured stderr
    for image_id in tqdm(ids, desc="mIoU", unit="img", disable=None if progress else True, leave=False):
        pred_path, gt_path = pred_dir / f"{image_id}.png", gt_dir / f"{image_id}.png"
        pred, gt = read_label_png(pred_path), read_label_png(gt_path)
        if pred.shape != gt.shape:
            raise SegEvaluationError(f"{pred_path}: prediction is {pred.shape[1]}x{pred.shape[0]} (WxH), "
                                     f"its ground truth {gt_path} is {gt.shape[1]}x{gt.shape[0]}")
        pred_l, gt_l = pred.astype(np.int64), gt.astype(np.int64)
        if int(pred_l.max()) >= num_classes:
            values = np.unique(pred_l[pred_l >= num_classes]).tolist()
            raise SegEvaluationError(f"{pred_path}: predicted labels {values[:8]} outside the classes "
                                     f"0..{num_classes - 1}")
        try:
            metric.update(pred_l, gt_l, name=str(gt_path))
        except ValueError as error:
            raise SegEvaluationError(str(error)) from None
    result = metric.compute()
    result.update({"num_classes": num_classes, "ignore_index": ignore_index,
                   "split_file": str(split_file) if split_file else None,
                   "seconds": time.perf_counter() - start})
    return result
