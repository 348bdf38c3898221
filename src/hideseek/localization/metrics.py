"""WSOL metrics: accumulators with integer-count state and their functional twins.

Every accumulator follows the same life cycle (after torchmetrics' ``Metric``)::

    metric.update(...)      # once per batch
    metric.sync()           # optional: sum the counts over processes
    metric.compute(policy)  # -> dict of numbers in percent, naming the threshold policy
    metric.reset()

State is integer count arrays only (per-threshold hit counts and histograms), so a
distributed run sums them with one ``all_reduce`` each and gets exactly the numbers of a
single process. The state is numpy and torch is never imported here: scoring saved maps
(``hideseek loc evaluate --scoremaps``) runs without it; tensors passed in are read as
arrays.

Definitions follow the public WSOL benchmark (see REFERENCE.md):

* ``BoxAcc(tau, d)``: share of images whose boxes at CAM threshold ``tau`` hit any GT box
  with IoU >= d/100. ``MaxBoxAcc(d)``: its value at the threshold chosen by the policy
  (the oracle takes the max over ``tau``). ``MaxBoxAccV2``: mean of MaxBoxAcc over
  d in {30, 50, 70} with boxes of all contours; ``MaxBoxAccV1``: d = 50, largest contour.
  The oracle and calibrated policies choose among the grid ``np.arange(0, 1, interval)``;
  a fixed policy's ``tau`` is evaluated literally, as an extra column (see
  :mod:`hideseek.cam.policies`).
* Classic fixed-threshold metrics use the largest contour and IoU >= 0.5 (``strict_iou``
  switches to > 0.5): GT-known Loc (box of the GT-class map hits), Top-1 Loc (top-1 class
  correct and the box hits), Top-5 Loc (GT class in the top 5 and the box hits).
* ``PxAP``: area under the pixel precision-recall curve over score histograms.

``compute()`` also returns ``curves``: the whole BoxAcc(tau) curves (``BoxAccuracy``) or
the PxAP precision-recall curve (``PixelAP``) its numbers are read from, in JSON types.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from hideseek.cam.metric import Metric, as_array, index_array, is_tensor
from hideseek.cam.policies import (
    Calibrated,
    Fixed,
    Oracle,
    ThresholdPolicy,
    cam_thresholds,
    evaluated_thresholds,
    literal_thresholds,
)
from hideseek.localization.boxes import max_iou_at_thresholds, max_iou_at_thresholds_batch

__all__ = [
    "ThresholdPolicy",
    "Oracle",
    "Fixed",
    "Calibrated",
    "cam_thresholds",
    "check_scoremap",
    "Metric",
    "ClassificationAccuracy",
    "BoxAccuracy",
    "PixelAP",
    "topk_accuracy",
    "box_accuracy",
    "pxap",
]

V2_IOU_THRESHOLDS = (30, 50, 70)
LOC_IOU_THRESHOLD = 50


def check_scoremap(scoremap: np.ndarray, name: str = "score map") -> None:
    """Raise ``ValueError`` naming ``name`` unless ``scoremap`` is a finite 2-D float map in [0, 1]."""
    if not isinstance(scoremap, np.ndarray):
        raise TypeError(f"{name}: expected a numpy array, got {type(scoremap).__name__}")
    if scoremap.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D map, got shape {scoremap.shape}")
    if not np.issubdtype(scoremap.dtype, np.floating):
        raise ValueError(f"{name}: expected a float map, got dtype {scoremap.dtype}")
    if not np.isfinite(scoremap).all():
        raise ValueError(f"{name}: contains NaN or infinite values")
    low, high = float(scoremap.min()), float(scoremap.max())
    if low < 0 or high > 1:
        raise ValueError(f"{name}: values must lie in [0, 1], got min {low} and max {high}")


def _topk_from(predictions, k: int) -> np.ndarray:
    """Accept logits (N, C) float or ranked class indices (N, k') int; return (N, k) indices.

    Logits are ranked by decreasing score, equal scores by increasing class index (the
    rule of ``argmax``, which the reference's Top-1 uses), for tensors and arrays alike."""
    if is_tensor(predictions) and predictions.is_floating_point():
        predictions = predictions.detach().float().cpu().numpy()
    if isinstance(predictions, np.ndarray) and np.issubdtype(predictions.dtype, np.floating):
        if predictions.ndim == 1:
            predictions = predictions[None]
        k = min(k, predictions.shape[-1])
        return np.argsort(-predictions, axis=-1, kind="stable")[:, :k]
    ranked = index_array(predictions, "predictions")
    if ranked.ndim == 1:
        ranked = ranked[:, None]
    return ranked[:, :k]


class ClassificationAccuracy(Metric):
    """Top-k classification accuracy (Top-1 Cls, Top-5 Cls)."""

    _states = ("correct", "count")

    def __init__(self, topk: Sequence[int] = (1, 5)):
        self.topk = tuple(sorted(set(int(k) for k in topk)))
        self.correct = np.zeros(len(self.topk), dtype=np.int64)
        self.count = np.zeros((), dtype=np.int64)

    def update(self, predictions, targets) -> None:
        """``predictions``: logits (N, C) or ranked class indices (N, k); ``targets``: (N,)."""
        targets = index_array(targets, "targets").reshape(-1)
        ranked = _topk_from(predictions, max(self.topk))
        if ranked.shape[0] != targets.shape[0]:
            raise ValueError(f"{ranked.shape[0]} predictions for {targets.shape[0]} targets")
        hit_rank = _hit_rank(ranked, targets)
        for i, k in enumerate(self.topk):
            self.correct[i] += int((hit_rank < k).sum())
        self.count += targets.shape[0]

    def compute(self) -> dict[str, float]:
        n = int(self.count)
        if n == 0:
            raise RuntimeError("ClassificationAccuracy: no samples were accumulated")
        return {f"Top-{k} Cls": 100.0 * int(c) / n for k, c in zip(self.topk, self.correct)}


def _hit_rank(ranked: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Rank (0-based) of each target in its ranked predictions; ``inf``-like when absent."""
    match = ranked == targets[:, None]
    return np.where(match.any(axis=1), match.argmax(axis=1), np.iinfo(np.int64).max)


def _as_maps(scoremaps) -> list[np.ndarray]:
    if is_tensor(scoremaps):
        scoremaps = as_array(scoremaps)
    if isinstance(scoremaps, np.ndarray):
        if scoremaps.ndim == 2:
            return [scoremaps]
        if scoremaps.ndim == 3:
            return list(scoremaps)
        raise ValueError(f"score maps: expected (H, W) or (N, H, W), got shape {scoremaps.shape}")
    return [np.asarray(m) for m in scoremaps]


BOX_KERNELS = ("auto", "batch", "single", "opencv")


class BoxAccuracy(Metric):
    """MaxBoxAcc (per IoU threshold), MaxBoxAccV2, MaxBoxAccV1, and the classic Loc metrics.

    Parameters
    ----------
    thresholds:
        CAM thresholds the oracle and calibrated policies choose among; default
        ``cam_thresholds(0.01)``.
    iou_thresholds:
        IoU thresholds in percent reported under ``MaxBoxAcc``.
    multi_contour:
        Boxes of all contours (V2, default) or of the largest contour only (V1) for
        ``MaxBoxAcc``. ``MaxBoxAccV2`` always uses all contours and ``MaxBoxAccV1`` and the
        classic metrics always the largest.
    strict_iou:
        Count a hit at IoU > d/100 instead of >= d/100 (some papers' convention).
    kernel:
        How boxes and IoUs are computed, all with the same numbers: ``"batch"`` (the
        multi-threaded compiled kernel on batches of equal-shape maps), ``"single"`` (the
        compiled kernel map by map), ``"opencv"`` (OpenCV contours per distinct level, no
        compilation), or ``"auto"`` (default): the compiled kernel when numba has it cached,
        else OpenCV; ``box_kernel`` says which ran.
    extra_thresholds:
        Thresholds also evaluated exactly as given (the ``tau`` of each :class:`Fixed`
        policy that ``compute`` will be asked for; :func:`box_accuracy` adds its policy's);
        the oracle never picks them. A value already on the grid (bitwise) is not repeated.

    State: for every IoU threshold d and evaluated CAM threshold tau (the grid, then the
    extra thresholds), the number of images hit with
    all-contour boxes and with the largest-contour box; for the classic metrics, per tau,
    the number of Top-1 and Top-5 localisation hits; and the image count.
    """

    _states = ("hits_all", "hits_largest", "top1_loc", "top5_loc", "count", "classified")

    def __init__(
        self,
        thresholds: np.ndarray | Sequence[float] | None = None,
        iou_thresholds: Sequence[int] = V2_IOU_THRESHOLDS,
        multi_contour: bool = True,
        strict_iou: bool = False,
        kernel: str = "auto",
        extra_thresholds: Sequence[float] = (),
    ):
        self.thresholds = cam_thresholds() if thresholds is None else np.asarray(thresholds, dtype=np.float64)
        self.evaluated = evaluated_thresholds(self.thresholds, extra_thresholds)
        self.iou_thresholds = tuple(int(d) for d in iou_thresholds)
        if not self.iou_thresholds or any(not 0 < d <= 100 for d in self.iou_thresholds):
            raise ValueError(f"IoU thresholds must be in (0, 100], got {iou_thresholds}")
        self.multi_contour = multi_contour
        self.strict_iou = strict_iou
        if kernel not in BOX_KERNELS:
            raise ValueError(f"kernel must be one of {BOX_KERNELS}, got {kernel!r}")
        self.box_kernel: str | None = None if kernel == "auto" else kernel  # "auto": chosen at the first update
        self.pool = None  # an Executor for the "opencv" kernel's per-map calls (set by the caller), or None
        self._ious = tuple(sorted(set(self.iou_thresholds) | set(V2_IOU_THRESHOLDS) | {LOC_IOU_THRESHOLD}))
        d, t = len(self._ious), len(self.evaluated)
        self.hits_all = np.zeros((d, t), dtype=np.int64)
        self.hits_largest = np.zeros((d, t), dtype=np.int64)
        self.top1_loc = np.zeros(t, dtype=np.int64)
        self.top5_loc = np.zeros(t, dtype=np.int64)
        self.count = np.zeros((), dtype=np.int64)
        self.classified = np.zeros((), dtype=np.int64)

    def _hits(self, ious: np.ndarray) -> np.ndarray:
        """(D, T) bool: IoU per threshold against each IoU threshold d/100."""
        cut = np.array([d / 100 for d in self._ious])[:, None]
        return ious[None, :] > cut if self.strict_iou else ious[None, :] >= cut

    def _max_ious(self, maps: list[np.ndarray], boxes_list: list[np.ndarray]):
        """Per map ``(iou_largest, iou_all)`` over the thresholds; a stack of equal-shape
        maps goes through the multi-threaded batch kernel (same numbers)."""
        if self.box_kernel is None:
            self.box_kernel = self._pick_kernel()
        if self.box_kernel == "batch" and len(maps) > 1 and len({m.shape for m in maps}) == 1:
            for m in maps:
                check_scoremap(m)
            largest, every = max_iou_at_thresholds_batch(np.stack(maps), self.evaluated, boxes_list)
            return zip(largest, every)
        if self.box_kernel == "opencv":
            from hideseek.localization.boxes import opencv_max_iou_at_thresholds as per_map

            if self.pool is not None and len(maps) > 1:  # OpenCV's calls spread over processes
                return self.pool.map(per_map, maps, [self.evaluated] * len(maps), boxes_list)
        else:
            per_map = max_iou_at_thresholds
        return (per_map(m, self.evaluated, b) for m, b in zip(maps, boxes_list))

    @staticmethod
    def _pick_kernel() -> str:
        """``kernel="auto"``: the compiled kernel (the batch one first) if numba has it, in
        this process or its cache; on a cold cache OpenCV's contours when cv2 is there (the
        same numbers; compiling would cost most of a minute, more than a split's contour
        searches); else the batch kernel, compiled now."""
        from hideseek.localization import boxes

        if boxes.kernel_compiled(True):
            return "batch"
        if boxes.kernel_compiled(False):
            return "single"
        return "opencv" if boxes.opencv_available() else "batch"

    def update(self, scoremaps, gt_boxes, predictions=None, targets=None) -> None:
        """Accumulate a batch.

        Parameters
        ----------
        scoremaps:
            (N, H, W) float maps in [0, 1] of the GT class (or a list of 2-D maps).
        gt_boxes:
            per image an (G, 4) array of ``x0, y0, x1, y1`` boxes in score-map pixels
            (inclusive corners), G >= 1.
        predictions, targets:
            optional; logits (N, C) or ranked class indices (N, k>=5 for Top-5 Loc) and GT
            labels (N,), for Top-1/Top-5 Loc.
        """
        maps = _as_maps(scoremaps)
        if len(maps) != len(gt_boxes):
            raise ValueError(f"{len(maps)} score maps for {len(gt_boxes)} box lists")
        rank = None
        if predictions is not None:
            if targets is None:
                raise ValueError("predictions given without targets")
            targets = index_array(targets, "targets").reshape(-1)
            ranked = _topk_from(predictions, 5)
            if ranked.shape[0] != len(maps) or targets.shape[0] != len(maps):
                raise ValueError("predictions, targets and score maps differ in length")
            rank = _hit_rank(ranked, targets)
        loc_row = self._ious.index(LOC_IOU_THRESHOLD)
        boxes_list = [np.asarray(boxes, dtype=np.int64).reshape(-1, 4) for boxes in gt_boxes]
        for i, boxes in enumerate(boxes_list):
            if boxes.shape[0] == 0:
                raise ValueError(f"image {i} of the batch has no GT box")
        for i, (iou_largest, iou_all) in enumerate(self._max_ious(maps, boxes_list)):
            hits_largest = self._hits(iou_largest)
            self.hits_all += self._hits(iou_all)
            self.hits_largest += hits_largest
            if rank is not None:
                loc_hits = hits_largest[loc_row]
                if rank[i] < 1:
                    self.top1_loc += loc_hits
                if rank[i] < 5:
                    self.top5_loc += loc_hits
        self.count += len(maps)
        if rank is not None:
            self.classified += len(maps)

    def compute(self, policy: ThresholdPolicy | None = None) -> dict:
        """Numbers in percent, the chosen thresholds, and the policy that chose them.

        A :class:`Fixed` policy's ``tau`` must have been evaluated (``extra_thresholds``, or
        bitwise a grid value); its numbers and reported thresholds are at that literal tau."""
        policy = policy or Oracle()
        n = int(self.count)
        if n == 0:
            raise RuntimeError("BoxAccuracy: no images were accumulated")
        acc_all = self.hits_all * 100.0 / n
        acc_largest = self.hits_largest * 100.0 / n
        acc_mode = acc_all if self.multi_contour else acc_largest

        grid = len(self.thresholds)

        def pick(metric: str, d: int, table: np.ndarray) -> tuple[float, float, int]:
            """The value, the threshold and its column that ``policy`` picks."""
            row = table[self._ious.index(d)]
            idx = policy.column(metric, str(d), row, self.evaluated, grid)
            return float(row[idx]), float(self.evaluated[idx]), idx

        out: dict = {"box_mode": "all-contours" if self.multi_contour else "largest-contour"}
        picked = {d: pick("MaxBoxAcc", d, acc_mode) for d in self.iou_thresholds}
        out["MaxBoxAcc"] = {str(d): v for d, (v, _, _) in picked.items()}
        out["best_threshold"] = {str(d): t for d, (_, t, _) in picked.items()}
        picked_v2 = {d: pick("MaxBoxAccV2", d, acc_all) for d in V2_IOU_THRESHOLDS}
        out["MaxBoxAccV2"] = float(np.mean([v for v, _, _ in picked_v2.values()]))
        out["best_threshold_v2"] = {str(d): t for d, (_, t, _) in picked_v2.items()}
        loc_value, loc_tau, loc_idx = pick("loc", LOC_IOU_THRESHOLD, acc_largest)
        # MaxBoxAccV1 and GT-known Loc are the same count (largest contour, IoU 50) at the
        # same policy-chosen threshold; both names are reported for the two literatures.
        out["MaxBoxAccV1"] = loc_value
        out["GT-known Loc"] = loc_value
        out["loc_threshold"] = loc_tau
        if int(self.classified):
            if int(self.classified) != n:
                raise RuntimeError(
                    f"Top-1/Top-5 Loc need predictions for every image: got them for "
                    f"{int(self.classified)} of {n}"
                )
            # at the column GT-known Loc was read from
            out["Top-1 Loc"] = float(self.top1_loc[loc_idx]) * 100.0 / n
            out["Top-5 Loc"] = float(self.top5_loc[loc_idx]) * 100.0 / n
        out["iou_convention"] = "IoU > d/100" if self.strict_iou else "IoU >= d/100"
        out["num_images"] = n
        out["policy"] = policy.describe()
        out["curves"] = self._curves(acc_mode, acc_all, acc_largest)
        return out

    def _curves(self, acc_mode: np.ndarray, acc_all: np.ndarray, acc_largest: np.ndarray) -> dict:
        """The BoxAcc(tau) curves over the grid, the very numbers the policies choose among.

        ``thresholds``: the grid; ``BoxAcc``: per IoU threshold of ``MaxBoxAcc``, boxes of its
        ``box_mode``; ``BoxAccV2``: IoU 30/50/70, all contours; ``BoxAccV1``: IoU 50, largest
        contour (the curve of ``MaxBoxAccV1`` / ``GT-known Loc``). Percent. A fixed policy's
        literal tau off the grid is not a point of these curves."""
        grid = len(self.thresholds)

        def row(table: np.ndarray, d: int) -> list[float]:
            return [float(v) for v in table[self._ious.index(d), :grid]]

        return {
            "thresholds": [float(t) for t in self.thresholds],
            "BoxAcc": {str(d): row(acc_mode, d) for d in self.iou_thresholds},
            "BoxAccV2": {str(d): row(acc_all, d) for d in V2_IOU_THRESHOLDS},
            "BoxAccV1": {str(LOC_IOU_THRESHOLD): row(acc_largest, LOC_IOU_THRESHOLD)},
        }


class PixelAP(Metric):
    """PxAP: average precision of pixels over score thresholds (mask datasets).

    GT masks use 1 = foreground, 0 = background, any other value (255) = ignore. Scores
    are binned into ``[t_0, t_1), ..., [t_last, 1), [1, 2), [2, 3]`` as in the reference;
    precision and recall are read off the reversed cumulative histograms. ``compute()``
    returns that curve under ``curves["PxAP"]``: point k counts the pixels scoring >=
    ``thresholds[k]`` (``2, 1, t_last, ..., t_0``), its precision ``None`` where no pixel
    does, and ``PxAP = 100 * sum(precision[k] * (recall[k] - recall[k-1]))`` over the points
    k >= 1 whose precision is defined.
    """

    _states = ("hist_positive", "hist_negative")

    def __init__(self, thresholds: np.ndarray | Sequence[float] | None = None):
        self.thresholds = cam_thresholds() if thresholds is None else np.asarray(thresholds, dtype=np.float64)
        self.edges = np.append(self.thresholds, [1.0, 2.0, 3.0])
        bins = len(self.edges) - 1
        self.hist_positive = np.zeros(bins, dtype=np.int64)
        self.hist_negative = np.zeros(bins, dtype=np.int64)

    def _histogram(self, scores: np.ndarray) -> np.ndarray:
        # bin i holds edges[i] <= s < edges[i+1]; the last bin is closed (numpy.histogram)
        index = np.searchsorted(self.edges, scores, side="right") - 1
        index = np.clip(index, 0, len(self.edges) - 2)
        return np.bincount(index, minlength=len(self.edges) - 1).astype(np.int64)

    def update(self, scoremaps, masks) -> None:
        """``scoremaps``: (N, H, W) in [0, 1]; ``masks``: (N, H, W) uint8 with 0/1/255."""
        maps = _as_maps(scoremaps)
        masks = _as_maps(masks)
        if len(maps) != len(masks):
            raise ValueError(f"{len(maps)} score maps for {len(masks)} masks")
        for i, (scoremap, mask) in enumerate(zip(maps, masks)):
            if scoremap.shape != mask.shape:
                raise ValueError(f"image {i}: score map {scoremap.shape} and mask {mask.shape} differ in shape")
            scores = scoremap.astype(np.float64, copy=False)
            self.hist_positive += self._histogram(scores[mask == 1])
            self.hist_negative += self._histogram(scores[mask == 0])

    def compute(self) -> dict:
        positive = self.hist_positive.astype(np.float64)
        negative = self.hist_negative.astype(np.float64)
        tp = positive[::-1].cumsum()
        fn = positive.sum() - tp
        fp = negative[::-1].cumsum()
        if ((tp + fn) <= 0).all():
            raise RuntimeError("PxAP: no positive ground-truth pixel was accumulated")
        if ((tp + fp) <= 0).all():
            raise RuntimeError("PxAP: no pixel was predicted positive")
        nonzero = (tp + fp) != 0
        with np.errstate(invalid="ignore", divide="ignore"):
            precision = tp / (tp + fp)
            recall = tp / (tp + fn)
        area = (precision[1:] * np.diff(recall))[nonzero[1:]].sum()
        # point k counts the pixels scoring >= cuts[k]: the bin edges, highest first
        cuts = self.edges[:-1][::-1]
        curve = {"thresholds": [float(t) for t in cuts],
                 "precision": [float(p) if keep else None for p, keep in zip(precision, nonzero)],
                 "recall": [float(r) for r in recall]}
        return {"PxAP": float(area * 100), "num_pixels": int(positive.sum() + negative.sum()),
                "curves": {"PxAP": curve}}


# --------------------------------------------------------------------------- functional twins


def topk_accuracy(predictions, targets, topk: Sequence[int] = (1, 5)) -> dict[str, float]:
    """One-off Top-k classification accuracy in percent."""
    metric = ClassificationAccuracy(topk)
    metric.update(predictions, targets)
    return metric.compute()


def box_accuracy(
    scoremaps,
    gt_boxes,
    predictions=None,
    targets=None,
    *,
    thresholds=None,
    iou_thresholds: Sequence[int] = V2_IOU_THRESHOLDS,
    multi_contour: bool = True,
    strict_iou: bool = False,
    policy: ThresholdPolicy | None = None,
) -> dict:
    """One-off :class:`BoxAccuracy` over score maps and GT boxes."""
    extra = literal_thresholds([policy]) if policy is not None else ()
    metric = BoxAccuracy(thresholds, iou_thresholds, multi_contour, strict_iou, extra_thresholds=extra)
    metric.update(scoremaps, gt_boxes, predictions, targets)
    return metric.compute(policy)


def pxap(scoremaps, masks, thresholds=None) -> float:
    """One-off PxAP in percent."""
    metric = PixelAP(thresholds)
    metric.update(scoremaps, masks)
    return metric.compute()["PxAP"]
