"""Benchmark reference: temporal detection mAP the way ActivityNet's ``eval_detection.py``
computes it, a pandas table walked one prediction at a time.

This is the baseline that :func:`hideseek.action.protocols.evaluate` with
``protocol="activitynet"`` is timed against (and must agree with); it is written for
clarity of behaviour, not speed, and is not used by any evaluation path.

Behaviour reproduced, per class: predictions ranked by score, descending; each one, at
every tIoU threshold, walks the GT of its video in decreasing-IoU order, skips GT already
taken at that threshold, and is a true positive on the first free GT whose IoU reaches
the threshold (a false positive as soon as the IoU falls below it, or when its video has
no GT of the class). AP is the VOC all-points interpolated area under the
precision/recall curve; mAP is the mean over the GT classes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["activitynet_map_pandas"]


def _table(data: Mapping[str, Any], gt: bool) -> pd.DataFrame:
    rows = []
    if gt:
        for vid, entry in data["database"].items():
            if entry.get("subset", "test") != "test":
                continue
            for ann in entry.get("annotations", []):
                rows.append((vid, float(ann["segment"][0]), float(ann["segment"][1]), ann["label"], 0.0))
    else:
        for vid, items in data["results"].items():
            for p in items:
                rows.append((vid, float(p["segment"][0]), float(p["segment"][1]), p["label"],
                             float(p["score"])))
    return pd.DataFrame(rows, columns=["video-id", "t-start", "t-end", "label", "score"])


def _tiou(seg: np.ndarray, cands: np.ndarray) -> np.ndarray:
    inter = np.clip(np.minimum(seg[1], cands[:, 1]) - np.maximum(seg[0], cands[:, 0]), 0.0, None)
    union = (cands[:, 1] - cands[:, 0]) + (seg[1] - seg[0]) - inter
    return inter / union


def _interpolated_ap(prec: np.ndarray, rec: np.ndarray) -> float:
    mprec = np.concatenate([[0.0], prec, [0.0]])
    mrec = np.concatenate([[0.0], rec, [1.0]])
    for i in range(len(mprec) - 2, -1, -1):
        mprec[i] = max(mprec[i], mprec[i + 1])
    idx = np.flatnonzero(mrec[1:] != mrec[:-1]) + 1
    return float(np.sum((mrec[idx] - mrec[idx - 1]) * mprec[idx]))


def _class_ap(gt: pd.DataFrame, pred: pd.DataFrame, thresholds: np.ndarray) -> np.ndarray:
    ap = np.zeros(len(thresholds))
    if pred.empty or gt.empty:
        return ap
    gt = gt.reset_index(drop=True)
    npos = len(gt)
    lock = -np.ones((len(thresholds), npos), dtype=np.int64)
    pred = pred.sort_values("score", ascending=False, kind="mergesort").reset_index(drop=True)
    tp = np.zeros((len(thresholds), len(pred)))
    fp = np.zeros((len(thresholds), len(pred)))
    by_video = gt.groupby("video-id")
    for i, row in pred.iterrows():
        try:
            gt_v = by_video.get_group(row["video-id"])
        except KeyError:
            fp[:, i] = 1
            continue
        ious = _tiou(np.array([row["t-start"], row["t-end"]]), gt_v[["t-start", "t-end"]].to_numpy())
        order = np.argsort(-ious, kind="mergesort")
        for t, thr in enumerate(thresholds):
            for j in order:
                if ious[j] < thr:
                    fp[t, i] = 1
                    break
                g = gt_v.index[j]
                if lock[t, g] >= 0:
                    continue
                tp[t, i] = 1
                lock[t, g] = i
                break
            if tp[t, i] == 0 and fp[t, i] == 0:
                fp[t, i] = 1
    tp_c = np.cumsum(tp, axis=1)
    fp_c = np.cumsum(fp, axis=1)
    for t in range(len(thresholds)):
        ap[t] = _interpolated_ap(tp_c[t] / (tp_c[t] + fp_c[t]), tp_c[t] / npos)
    return ap


def activitynet_map_pandas(gt: Mapping[str, Any], preds: Mapping[str, Any],
                           tiou: Sequence[float] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)
                           ) -> dict[str, float]:
    """mAP in percent per tIoU (keys as :func:`hideseek.action.protocols.evaluate` writes
    them) of the ``"test"`` subset, by a per-class, per-prediction pandas loop."""
    thresholds = np.asarray(tiou, dtype=np.float64)
    g, p = _table(gt, True), _table(preds, False)
    classes = sorted(g["label"].unique())
    gt_by_class, pred_by_class = g.groupby("label"), p.groupby("label")
    aps = np.zeros((len(classes), len(thresholds)))
    for c, name in enumerate(classes):
        pred_c = pred_by_class.get_group(name) if name in pred_by_class.groups else p.iloc[:0]
        aps[c] = _class_ap(gt_by_class.get_group(name), pred_c, thresholds)
    mean = aps.mean(axis=0) * 100.0
    return {f"{round(float(t), 6):g}": float(m) for t, m in zip(thresholds, mean)}
