"""Temporal CAM -> action segments in seconds (and snippets), as ActivityNet-style prediction JSON.

Per video (:func:`detect_video`):

1. **Classes.** A class is kept when its video-level score is ``>= class_threshold``, or,
   with ``class_topk``, when it is among the ``class_topk`` best; if no class passes the
   threshold the best one is kept (every test video of THUMOS14 holds an action).
2. **Proposals.** For each kept class and each threshold of ``thresholds`` the snippets
   whose activation is ``>=`` the threshold are found: relative thresholds
   (``relative=True``) are fractions of the class's maximum activation in the video,
   absolute ones compare the activation itself. Maximal runs of consecutive such snippets
   are segments; snippet ``t`` covers ``[t * stride_s, t * stride_s + snippet_s)``, so
   run ``a..b`` is ``[a * stride_s, b * stride_s + snippet_s]`` (clipped to the video's
   duration when known); the run is also kept as snippet indices ``[a, b + 1)`` (W-TALC's
   units). Segments shorter than ``min_length_s`` are dropped. Several
   thresholds give multi-scale proposals of one class (overlaps are resolved by NMS).
3. **Score.** ``score = inner + video_weight * video_score`` where ``inner`` is the mean
   activation over the run, or with ``score="outer-inner"`` that mean minus the mean
   over the ``max(1, round(outer_ratio * length))`` snippets on each side (the
   outer-inner contrast of AutoLoc / W-TALC style post-processing; sides past the video
   ends are empty; no outer snippet at all means an outer mean of 0).
4. **NMS.** Class-wise greedy non-maximum suppression in the video: by score,
   descending (stable), a segment is dropped when its tIoU with an already kept segment
   of the class is ``> nms_tiou``. ``max_per_video`` keeps the best ones.

The activation is what the model gives per snippet and class: ``"sigmoid"`` of the CAM
logits (default) or ``"minmax"`` (the logits min-max normalised per video and class).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from hideseek.action.choices import SCORES

__all__ = [
    "ACTIVATIONS",
    "DetectConfig",
    "detect_video",
    "group_runs",
    "segment_scores",
    "temporal_nms",
    "to_results_json",
    "write_predictions",
]

ACTIVATIONS = ("sigmoid", "minmax")


@dataclass(frozen=True)
class DetectConfig:
    """Post-processing parameters (see the module docstring for their meaning)."""

    class_threshold: float = 0.1
    class_topk: int | None = None
    thresholds: tuple[float, ...] = (0.3, 0.5, 0.7)
    relative: bool = True
    activation: str = "sigmoid"
    min_length_s: float = 0.0
    score: str = "outer-inner"
    outer_ratio: float = 0.25
    video_weight: float = 0.5
    nms_tiou: float | None = 0.5
    max_per_video: int | None = 200

    def __post_init__(self):
        object.__setattr__(self, "thresholds", tuple(float(t) for t in self.thresholds))
        numbers = {"thresholds (--cam-thresholds)": self.thresholds, "class_threshold (--class-threshold)":
                   (self.class_threshold,), "min_length_s (--min-length-s)": (self.min_length_s,),
                   "outer_ratio": (self.outer_ratio,), "video_weight (--video-weight)": (self.video_weight,),
                   "nms_tiou (--nms-tiou)": () if self.nms_tiou is None else (self.nms_tiou,)}
        for name, values in numbers.items():
            if any(isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) for v in values):
                raise ValueError(f"{name} must be finite, got {values if len(values) > 1 else values[0]!r}")
        if not self.thresholds:
            raise ValueError("thresholds must hold at least one value")
        if self.relative and any(not 0 < t <= 1 for t in self.thresholds):
            raise ValueError(f"relative thresholds must lie in (0, 1], got {self.thresholds}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {self.activation!r}; valid choices: {', '.join(ACTIVATIONS)}")
        if self.score not in SCORES:
            raise ValueError(f"unknown score {self.score!r}; valid choices: {', '.join(SCORES)}")
        if self.class_topk is not None and self.class_topk < 1:
            raise ValueError(f"class_topk must be >= 1 or None, got {self.class_topk}")
        if self.nms_tiou is not None and not 0 < self.nms_tiou <= 1:
            raise ValueError(f"nms_tiou must lie in (0, 1] or be None, got {self.nms_tiou}")
        if self.min_length_s < 0 or self.outer_ratio < 0:
            raise ValueError("min_length_s and outer_ratio must be >= 0")

    def to_dict(self) -> dict:
        return json.loads(json.dumps(asdict(self)))

    @classmethod
    def from_dict(cls, values: Mapping) -> DetectConfig:
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown detection keys {unknown}; valid keys: {sorted(known)}")
        values = dict(values)
        if "thresholds" in values:
            values["thresholds"] = tuple(values["thresholds"])
        return cls(**values)


def group_runs(above: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Maximal runs of True in a 1-D bool array: ``(starts, ends)``, ends inclusive."""
    above = np.asarray(above, dtype=bool)
    if above.ndim != 1:
        raise ValueError(f"expected a 1-D array, got shape {above.shape}")
    edges = np.diff(np.concatenate(([0], above.astype(np.int8), [0])))
    return np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1


def segment_scores(activation: np.ndarray, starts: np.ndarray, ends: np.ndarray, *, score: str = "mean",
                   outer_ratio: float = 0.25) -> np.ndarray:
    """Mean activation over each run ``starts[i]..ends[i]`` (inclusive), optionally minus
    the mean over its outer margins (see the module docstring)."""
    act = np.asarray(activation, dtype=np.float64)
    csum = np.concatenate(([0.0], np.cumsum(act)))
    starts, ends = np.asarray(starts, dtype=np.int64), np.asarray(ends, dtype=np.int64)
    inner = (csum[ends + 1] - csum[starts]) / (ends - starts + 1)
    if score == "mean":
        return inner
    if score != "outer-inner":
        raise ValueError(f"unknown score {score!r}; valid choices: {', '.join(SCORES)}")
    margin = np.maximum(1, np.round(outer_ratio * (ends - starts + 1))).astype(np.int64)
    left_lo = np.maximum(starts - margin, 0)
    right_hi = np.minimum(ends + margin, len(act) - 1)
    n_left, n_right = starts - left_lo, right_hi - ends
    total = (csum[starts] - csum[left_lo]) + (csum[right_hi + 1] - csum[ends + 1])
    count = n_left + n_right
    outer = np.where(count > 0, total / np.maximum(count, 1), 0.0)
    return inner - outer


def _tiou_one(seg: np.ndarray, others: np.ndarray) -> np.ndarray:
    inter = np.clip(np.minimum(seg[1], others[:, 1]) - np.maximum(seg[0], others[:, 0]), 0, None)
    union = (seg[1] - seg[0]) + (others[:, 1] - others[:, 0]) - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def temporal_nms(segments: np.ndarray, scores: np.ndarray, tiou: float) -> np.ndarray:
    """Indices kept by greedy NMS: by score descending (stable), drop tIoU ``> tiou``."""
    segments = np.asarray(segments, dtype=np.float64).reshape(-1, 2)
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    keep: list[int] = []
    alive = np.ones(len(order), dtype=bool)
    for rank, i in enumerate(order):
        if not alive[rank]:
            continue
        keep.append(int(i))
        rest = order[rank + 1:]
        alive[rank + 1:] &= _tiou_one(segments[i], segments[rest]) <= tiou
    return np.asarray(keep, dtype=np.int64)


def _kept_classes(video_scores: np.ndarray, config: DetectConfig) -> np.ndarray:
    order = np.argsort(-video_scores, kind="stable")
    if config.class_topk is not None:
        return np.sort(order[: config.class_topk])
    kept = np.flatnonzero(video_scores >= config.class_threshold)
    return kept if len(kept) else order[:1]


def detect_video(activation: np.ndarray, video_scores: np.ndarray, classes: Sequence[str], *, stride_s: float,
                 snippet_s: float | None = None, duration_s: float | None = None,
                 config: DetectConfig = DetectConfig()) -> list[dict]:
    """Segments of one video: ``[{"segment": [s, e], "snippets": [a, b], "label", "score"},
    ...]`` best first.

    ``segment`` is in seconds; ``snippets`` is the same run as snippet indices ``[a, b)``
    (``b`` exclusive, as W-TALC's rows; never clipped). ``activation`` is ``(C, T)``
    (already mapped by the configured activation, e.g. sigmoid probabilities of the real
    snippets only); ``video_scores`` is ``(C,)``.
    """
    act = np.asarray(activation, dtype=np.float64)
    vs = np.asarray(video_scores, dtype=np.float64)
    if act.ndim != 2 or vs.shape != (act.shape[0],) or len(classes) != act.shape[0]:
        raise ValueError(f"activation must be (C, T) with C = len(classes) = len(video_scores); got "
                         f"{act.shape}, {vs.shape}, {len(classes)} classes")
    if not stride_s > 0:
        raise ValueError(f"stride_s must be > 0, got {stride_s}")
    snippet_s = stride_s if snippet_s is None else float(snippet_s)
    out: list[dict] = []
    for c in _kept_classes(vs, config):
        a = act[c]
        peak = a.max()
        segs, runs, scores = [], [], []
        for thr in config.thresholds:
            level = thr * peak if config.relative else thr
            if config.relative and peak <= 0:
                continue
            starts, ends = group_runs(a >= level)
            if not len(starts):
                continue
            t0 = starts * stride_s
            t1 = ends * stride_s + snippet_s
            if duration_s is not None:
                t1 = np.minimum(t1, duration_s)
            ok = (t1 - t0 >= config.min_length_s) & (t1 > t0)
            if not ok.any():
                continue
            inner = segment_scores(a, starts[ok], ends[ok], score=config.score, outer_ratio=config.outer_ratio)
            segs.append(np.stack([t0[ok], t1[ok]], axis=1))
            runs.append(np.stack([starts[ok], ends[ok] + 1], axis=1))
            scores.append(inner + config.video_weight * vs[c])
        if not segs:
            continue
        seg = np.concatenate(segs)
        run = np.concatenate(runs)
        score = np.concatenate(scores)
        if config.nms_tiou is not None:
            keep = temporal_nms(seg, score, config.nms_tiou)
        else:
            keep = np.argsort(-score, kind="stable")
        out.extend({"segment": [float(seg[i, 0]), float(seg[i, 1])], "snippets": [int(run[i, 0]), int(run[i, 1])],
                    "label": classes[c], "score": float(score[i])} for i in keep)
    out.sort(key=lambda d: -d["score"])
    if config.max_per_video is not None:
        out = out[: config.max_per_video]
    return out


def to_results_json(detections: Mapping[str, Sequence[Mapping]], snippets_per_second: float | None = None) -> dict:
    """ActivityNet-style predictions: ``{"version", "results": {vid: [...]}, "external_data"}``.

    With ``snippets_per_second`` (the snippet grid: frames per second over frames per
    snippet, or ``1 / stride_s``) every row also keeps its ``"snippets": [a, b)`` range and
    the file says ``"snippets_per_second"`` at the top, so ``wtalc`` scores W-TALC's snippet
    units (:func:`hideseek.action.protocols.evaluate`); without it the rows hold seconds
    only (a snippet range without its grid cannot be scored).
    """
    if snippets_per_second is not None and (isinstance(snippets_per_second, bool) or not isinstance(
            snippets_per_second, (int, float)) or not (math.isfinite(snippets_per_second) and snippets_per_second > 0)):
        raise ValueError(f"snippets_per_second must be a positive number, got {snippets_per_second!r}")
    results = {}
    for vid, dets in detections.items():
        rows = []
        for d in dets:
            s, e = (float(v) for v in d["segment"])
            if not (math.isfinite(s) and math.isfinite(e)) or s < 0 or e <= s:
                raise ValueError(f"video {vid!r}: detection segment {[s, e]} is reversed, empty or negative")
            row = {"segment": [s, e], "label": str(d["label"]), "score": float(d["score"])}
            if snippets_per_second is not None:
                rng = d.get("snippets")
                if not (isinstance(rng, (list, tuple)) and len(rng) == 2 and all(
                        isinstance(x, (int, np.integer)) and not isinstance(x, bool) for x in rng)
                        and 0 <= rng[0] < rng[1]):
                    raise ValueError(f"video {vid!r}: detection snippets {rng!r} is not a snippet range [start, end) "
                                     "of integers")
                row = {"segment": [s, e], "snippets": [int(rng[0]), int(rng[1])], "label": row["label"],
                       "score": row["score"]}
            rows.append(row)
        results[str(vid)] = rows
    out = {"version": "hideseek-temporal-cam", "results": results, "external_data": {}}
    if snippets_per_second is not None:
        out["snippets_per_second"] = float(snippets_per_second)
    return out


def write_predictions(detections: Mapping[str, Sequence[Mapping]], path: str | os.PathLike,
                      snippets_per_second: float | None = None) -> Path:
    """Write :func:`to_results_json` to ``path`` (atomically); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(to_results_json(detections, snippets_per_second)) + "\n")
    tmp.replace(path)
    return path
