"""Temporal action localization evaluation: three protocols that report different mAPs.

The same detections scored by the three evaluation codes in common use for THUMOS14 give
numbers a few points apart. :func:`evaluate` implements all three on one data model so the
gap can be measured rather than guessed. Segments are ``[start, end]`` in seconds and the
temporal IoU of two segments is ``|intersection| / |union|`` of the closed intervals.

Inputs (see :func:`load_ground_truth`, :func:`load_predictions`, :func:`load_ambiguous`)

* ground truth, ActivityNet style::

    {"database": {vid: {"subset": "test",
                        "annotations": [{"segment": [s, e], "label": name}, ...]}}}

  Only videos whose ``subset`` equals the requested one are kept (``subset=None`` keeps
  every video). A kept video with no annotations is still a known video.
* predictions::

    {"results": {vid: [{"segment": [s, e], "label": name, "score": x}, ...]}}

  A prediction whose video is not a kept GT video (reason ``"unknown_video"``) or whose
  label is no class of the kept ground truth (reason ``"unknown_label"``) is dropped and
  counted in ``ignored_predictions``; it never raises.
* ambiguous segments (optional): text lines ``video_name  t_start  t_end``.

Segments are scored as the reference ActivityNet code scores them: a negative start (a
regressed boundary) is kept, a zero-length segment is kept and overlaps nothing (tIoU 0).
A reversed segment (``end < start``), a non-finite value or a non-number raises
``ValueError`` naming the file, the video and the entry (ground truth, predictions and
ambiguous file alike). A subset that matches no video is refused, naming the subsets the
file has.

Protocols (``protocol=``)

``"activitynet"`` -- the ActivityNet ``eval_detection.py`` semantics.
    Per class, predictions are sorted by score, descending; ties keep input order (stable
    sort; input order is video order as in the JSON, then list order). Each prediction in
    turn, at each tIoU ``t``, takes the still-unmatched GT of its class in the same video
    with the highest IoU, provided that IoU ``>= t``; otherwise it is a false positive.
    Among GT tied at the highest IoU the first in annotation order is taken (the upstream
    code takes the last; the AP is the same in all but contrived cases). AP is the VOC
    all-points interpolated area: precision made monotonically non-increasing from the
    right, summed over recall changes. Ambiguous segments are not used.

``"thumos14"`` -- the THUMOS14 official kit (``TH14evalDet``) semantics.
    Per class and video, detections are sorted by score, descending (stable). GT events
    of the class in that video are visited in annotation order ("in order" = order of the
    annotations list of that video in the GT JSON, i.e. the class file order of the kit);
    each takes, among the detections not yet taken, the one with the largest IoU (first
    in the sorted order on ties), and only if that IoU is strictly ``> t``; otherwise the
    GT is missed and takes nothing. Detections left unmatched that overlap any ambiguous
    segment of the same video (intersection length ``> 0``; touching ends do not count)
    are removed; matched detections are always kept. All kept detections of the class are
    then ranked by score, descending, with true positives before false positives on tied
    scores (the kit concatenates TPs before FPs and MATLAB's ``sort`` is stable). AP is
    not interpolated: the sum of the precision at each true positive divided by the
    number of GT events of the class.

``"wtalc"`` -- W-TALC ``detectionMAP.py`` semantics, with two deliberate differences.
    Detections overlapping any ambiguous segment of the same video (intersection ``> 0``)
    are removed first, whether or not they would match. The rest, sorted by score
    descending (stable), each take the *first* GT of the class in the same video, in
    annotation order, that is not yet matched and has IoU ``>= t``. AP is not
    interpolated (as for ``"thumos14"``, ties ranked in sorted order). Differences from
    the original: (1) IoU is computed on the segments in seconds, not on integer snippet
    indices; (2) a class with no predictions gets AP 0, whereas the original returns 0
    for the whole mAP in that case (a bug that is not reproduced).

For every protocol a class with no predictions has AP 0, classes are those present in
the (subset-filtered) ground truth, and mAP is the mean AP over them, in percent.
"""

from __future__ import annotations

import math
import numbers
import os
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numba
import numpy as np

from hideseek.action.choices import PROTOCOLS
from hideseek.inputs import read_json, read_lines

__all__ = [
    "DEFAULT_TIOU",
    "PROTOCOLS",
    "GroundTruth",
    "Predictions",
    "evaluate",
    "interpolated_ap",
    "load_ambiguous",
    "load_ground_truth",
    "load_predictions",
    "non_interpolated_ap",
    "segment_iou",
]

PathLike = str | os.PathLike
DEFAULT_TIOU = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)
_AVERAGE_RANGES = ("0.1:0.5", "0.3:0.7", "0.1:0.7")


@dataclass
class GroundTruth:
    """Flat GT table: one row per annotation, plus the list of kept videos."""

    videos: list[str]
    video: np.ndarray  # int index into ``videos``
    start: np.ndarray
    end: np.ndarray
    label: np.ndarray  # object array of class names
    classes: list[str] = field(default_factory=list)  # sorted, present in GT


@dataclass
class Predictions:
    """Flat prediction table (video names kept as strings until matched to a GT)."""

    video: np.ndarray  # object array of video names
    start: np.ndarray
    end: np.ndarray
    label: np.ndarray  # object array
    score: np.ndarray


# --------------------------------------------------------------------------------- I/O


def _read_json(src: PathLike | Mapping[str, Any], what: str) -> tuple[Mapping[str, Any], str]:
    """The parsed object and the name to put in messages (the file, or ``<what>`` for a dict)."""
    if isinstance(src, Mapping):
        return src, what
    return read_json(src, expect=dict, what=f"{what} file"), os.fspath(src)


def _check_segment(seg: Any, where: str) -> tuple[float, float]:
    """``[start, end]`` as floats, as the reference evaluators take them.

    The ActivityNet ``segment_iou`` computes with whatever numbers it is given: a negative
    start (a regressed boundary before the video's start) and a zero-length segment (tIoU 0
    with everything, so never a match) are scored, and so they are here. What has no
    meaning is refused: not two numbers, NaN or infinity, and a reversed segment
    (``end < start``: its "length" is negative and its tIoU a wrong number).
    """
    if isinstance(seg, (str, bytes, Mapping)) or not isinstance(seg, Sequence) or len(seg) != 2:
        raise ValueError(f"{where}: segment {seg!r} is not [start, end]")
    if any(isinstance(x, bool) or not isinstance(x, (numbers.Real, str)) for x in seg):
        raise ValueError(f"{where}: segment {seg!r} is not two numbers")
    try:
        s, e = float(seg[0]), float(seg[1])
    except (TypeError, ValueError):
        raise ValueError(f"{where}: segment {seg!r} is not two numbers") from None
    if not (math.isfinite(s) and math.isfinite(e)):
        raise ValueError(f"{where}: segment {seg!r} is not finite")
    if e < s:
        raise ValueError(f"{where}: segment {seg!r} is reversed (end < start)")
    return s, e


def _entries(container: Any, where: str, kind: type, what: str) -> Any:
    if not isinstance(container, kind):
        expected = "an object" if kind is dict else "a list"
        raise ValueError(f"{where}: expected {what} as {expected}, found {type(container).__name__}")
    return container


def load_ground_truth(
    src: PathLike | Mapping[str, Any] | GroundTruth, subset: str | None = "test"
) -> GroundTruth:
    """Read an ActivityNet-style GT (path or already-parsed dict), keeping one ``subset``.

    A subset that no video has, or a ground truth without any annotation in it, is refused
    naming the file and the subsets it does have (mAP over no class would be a silent 0).
    """
    if isinstance(src, GroundTruth):
        return src
    data, name = _read_json(src, "ground truth")
    if "database" not in data:
        raise ValueError(f"{name}: ground truth has no 'database' key (expected {{'database': {{video: ...}}}})")
    database = _entries(data["database"], f"{name}: 'database'", dict, "videos")
    videos: list[str] = []
    vi, st, en, lab = [], [], [], []
    present: dict[str, None] = {}
    for vid, entry in database.items():
        where = f"{name}: video {vid!r}"
        _entries(entry, where, dict, "the video's entry")
        if "subset" in entry and not isinstance(entry["subset"], str):
            raise ValueError(f"{where}: 'subset' is {entry['subset']!r}, expected a string")
        present[str(entry.get("subset"))] = None
        if subset is not None and entry.get("subset") != subset:
            continue
        k = len(videos)
        videos.append(str(vid))
        annotations = entry.get("annotations", [])  # absent: a video without actions; null is refused
        _entries(annotations, f"{where}: 'annotations'", list, "annotations")
        for n, ann in enumerate(annotations):
            if not isinstance(ann, dict) or not isinstance(ann.get("label"), str):
                raise ValueError(f"{where} annotation {n}: expected an object with 'segment' and a string 'label'")
            s, e = _check_segment(ann.get("segment"), f"{where} annotation {n}")
            vi.append(k)
            st.append(s)
            en.append(e)
            lab.append(str(ann["label"]))
    if not videos:
        have = ", ".join(repr(x) for x in present) or "none (no videos)"
        asked = "any subset" if subset is None else f"subset {subset!r}"
        raise ValueError(f"{name}: no video of {asked} in the ground truth; subsets present: {have} "
                         "(--subset all keeps every video)")
    if not lab:
        raise ValueError(f"{name}: the {len(videos)} video(s) of subset {subset!r} have no annotations; "
                         "there is nothing to score")
    label = np.array(lab, dtype=object)
    return GroundTruth(
        videos=videos,
        video=np.array(vi, dtype=np.int64),
        start=np.array(st, dtype=np.float64),
        end=np.array(en, dtype=np.float64),
        label=label,
        classes=sorted(set(lab)),
    )


def load_predictions(src: PathLike | Mapping[str, Any] | Predictions) -> Predictions:
    """Read ActivityNet-style predictions (path or parsed dict) into a flat table.

    Errors name the file, the video and the entry's index in that video's list.
    """
    if isinstance(src, Predictions):
        return src
    data, name = _read_json(src, "predictions")
    if "results" not in data:
        raise ValueError(f"{name}: predictions have no 'results' key (expected {{'results': {{video: [...]}}}})")
    results = _entries(data["results"], f"{name}: 'results'", dict, "videos")
    vids, st, en, lab, sc = [], [], [], [], []
    for vid, items in results.items():
        items = _entries(items, f"{name}: video {vid!r}", list, "predictions")
        for n, p in enumerate(items):
            where = f"{name}: video {vid!r} prediction {n}"
            if not isinstance(p, dict):
                raise ValueError(f"{where}: expected an object with 'segment', 'label' and 'score'")
            s, e = _check_segment(p.get("segment"), where)
            raw = p.get("score")
            if isinstance(raw, bool) or not isinstance(raw, (numbers.Real, str)):
                raise ValueError(f"{where}: expected a numeric 'score', got {raw!r}")
            try:
                score = float(raw)
            except ValueError:
                raise ValueError(f"{where}: expected a numeric 'score', got {raw!r}") from None
            if not math.isfinite(score):
                raise ValueError(f"{where}: score {raw!r} is not finite")
            if not isinstance(p.get("label"), str):
                raise ValueError(f"{where}: expected a string 'label', got {p.get('label')!r}")
            vids.append(str(vid))
            st.append(s)
            en.append(e)
            lab.append(str(p["label"]))
            sc.append(score)
    return Predictions(
        video=np.array(vids, dtype=object),
        start=np.array(st, dtype=np.float64),
        end=np.array(en, dtype=np.float64),
        label=np.array(lab, dtype=object),
        score=np.array(sc, dtype=np.float64),
    )


def load_ambiguous(
    src: None | PathLike | Iterable[tuple[str, float, float]] | Mapping[str, Any]
) -> dict[str, np.ndarray]:
    """Ambiguous segments as ``{video: (K, 2) array}``.

    Accepts a text file of ``video  t_start  t_end`` lines (blank lines and ``#`` comments
    skipped), an iterable of ``(video, start, end)`` triples, or an already-built mapping.
    """
    if src is None:
        return {}
    out: dict[str, list[tuple[float, float]]] = {}
    if isinstance(src, Mapping):
        rows = [(v, s, e, f"ambiguous segment of video {v!r}")
                for v, segs in src.items() for s, e in np.asarray(segs, float).reshape(-1, 2)]
    elif isinstance(src, (str, os.PathLike)):
        rows = []
        for n, line in enumerate(read_lines(src, "ambiguous-segment file"), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.split()
            if len(parts) != 3:
                raise ValueError(f"{os.fspath(src)}:{n}: expected 'video t_start t_end', got {line!r}")
            rows.append((parts[0], parts[1], parts[2], f"{os.fspath(src)}:{n}: video {parts[0]!r}"))
    else:
        rows = [(v, s, e, f"ambiguous segment of video {v!r}") for v, s, e in src]
    for v, s, e, where in rows:
        out.setdefault(str(v), []).append(_check_segment((s, e), where))
    return {v: np.array(segs, dtype=np.float64) for v, segs in out.items()}


# ------------------------------------------------------------------------------ maths


def segment_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise tIoU between ``(N, 2)`` and ``(M, 2)`` segment arrays -> ``(N, M)``."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 2)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 2)
    inter = np.clip(
        np.minimum(a[:, None, 1], b[None, :, 1]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0.0, None
    )
    union = (a[:, None, 1] - a[:, None, 0]) + (b[None, :, 1] - b[None, :, 0]) - inter
    # two zero-length segments at one point: the reference gets 0/0 = NaN, which matches
    # nothing; 0 matches nothing either (thresholds are > 0) without the warning
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def _overlaps_any(segs: np.ndarray, amb: np.ndarray | None) -> np.ndarray:
    """Boolean per segment: positive-length intersection with any ambiguous segment."""
    if amb is None or len(amb) == 0 or len(segs) == 0:
        return np.zeros(len(segs), dtype=bool)
    inter = np.minimum(segs[:, None, 1], amb[None, :, 1]) - np.maximum(segs[:, None, 0], amb[None, :, 0])
    return (inter > 0).any(axis=1)


def interpolated_ap(tp: np.ndarray, npos: int) -> np.ndarray:
    """VOC all-points interpolated AP of ranked ``(T, N)`` TP flags (rows = thresholds)."""
    tp = np.atleast_2d(np.asarray(tp, dtype=np.float64))
    if npos == 0 or tp.shape[1] == 0:
        return np.zeros(tp.shape[0])
    tpc = np.cumsum(tp, axis=1)
    fpc = np.cumsum(1.0 - tp, axis=1)
    rec = tpc / npos
    prec = tpc / (tpc + fpc)
    z = np.zeros((tp.shape[0], 1))
    mrec = np.hstack([z, rec, z + 1.0])
    mprec = np.hstack([z, prec, z])
    mprec = np.maximum.accumulate(mprec[:, ::-1], axis=1)[:, ::-1]
    return np.sum(np.diff(mrec, axis=1) * mprec[:, 1:], axis=1)


def non_interpolated_ap(tp: np.ndarray, npos: int) -> np.ndarray:
    """Sum of precision at each true positive over ``npos``, for ``(T, N)`` ranked flags."""
    tp = np.atleast_2d(np.asarray(tp, dtype=np.float64))
    if npos == 0 or tp.shape[1] == 0:
        return np.zeros(tp.shape[0])
    tpc = np.cumsum(tp, axis=1)
    prec = tpc / np.arange(1, tp.shape[1] + 1)
    return np.sum(prec * tp, axis=1) / npos


# --------------------------------------------------------------------------- matching
# Each matcher gets one (class, video) group: ``iou`` of shape (P, G) with predictions
# already in descending-score order and GT in annotation order, and ``thr`` of shape
# (T,). It returns a (T, P) boolean TP matrix. Predictions that overlap no GT at all
# are FPs at every threshold and are skipped by the loops.


def _match_wtalc(iou: np.ndarray, thr: np.ndarray) -> np.ndarray:
    T, (P, G) = len(thr), iou.shape
    tp = np.zeros((T, P), dtype=bool)
    if G == 0:
        return tp
    free = np.ones((T, G), dtype=bool)
    rows = np.arange(T)
    for i in np.flatnonzero(iou.max(axis=1) > 0):
        elig = free & (iou[i][None, :] >= thr[:, None])  # (T, G)
        j = elig.argmax(axis=1)  # first eligible GT in list order
        ok = elig[rows, j]
        tp[ok, i] = True
        free[rows[ok], j[ok]] = False
    return tp


def _match_thumos14(iou: np.ndarray, thr: np.ndarray) -> np.ndarray:
    T, P = len(thr), iou.shape[0]
    taken = np.zeros((T, P), dtype=bool)
    if P == 0:
        return taken
    rows = np.arange(T)
    for k in np.flatnonzero(iou.max(axis=0, initial=0.0) > 0):
        cand = np.where(taken, -np.inf, iou[:, k][None, :])  # (T, P)
        j = cand.argmax(axis=1)  # largest overlap, first in score order on ties
        ok = cand[rows, j] > thr  # strict, as in the kit
        taken[rows[ok], j[ok]] = True
    return taken


_MATCHERS = {"wtalc": _match_wtalc, "thumos14": _match_thumos14}  # activitynet: compiled, per class


@numba.njit(cache=True)
def _match_activitynet_class(p_vid, p_seg, g_start, g_end, g_seg, thr):  # pragma: no cover - compiled
    """ActivityNet greedy matching of one whole class in one compiled pass.

    Greedy per video, in descending-score order: each prediction takes the free GT of its
    video with the highest tIoU (the first on ties) when that tIoU reaches the threshold,
    independently for every threshold. ``p_vid``/``p_seg`` are
    the class's predictions in descending-score order; GT of video ``v`` are
    ``g_seg[g_start[v]:g_end[v]]`` in annotation order. Each prediction, at each
    threshold, takes the free GT with the highest IoU (first on ties) if that IoU is
    ``>= thr``. IoU is evaluated with the same float operations as :func:`segment_iou`.
    """
    n_thr, n_pred = thr.shape[0], p_vid.shape[0]
    tp = np.zeros((n_thr, n_pred), dtype=np.bool_)
    free = np.ones((n_thr, g_seg.shape[0]), dtype=np.bool_)
    iou = np.empty(g_seg.shape[0])
    for i in range(n_pred):
        v = p_vid[i]
        lo, hi = g_start[v], g_end[v]
        if lo == hi:
            continue
        a0, a1 = p_seg[i, 0], p_seg[i, 1]
        best_any = 0.0
        for j in range(lo, hi):
            inter = min(a1, g_seg[j, 1]) - max(a0, g_seg[j, 0])
            if inter < 0.0:
                inter = 0.0
            union = (a1 - a0) + (g_seg[j, 1] - g_seg[j, 0]) - inter
            iou[j] = inter / union if union > 0.0 else 0.0
            if iou[j] > best_any:
                best_any = iou[j]
        if best_any <= 0.0:
            continue  # overlaps no GT: a false positive at every threshold
        for t in range(n_thr):
            best, bj = -1.0, -1
            for j in range(lo, hi):
                if free[t, j] and iou[j] > best:
                    best, bj = iou[j], j
            if bj >= 0 and best >= thr[t]:
                tp[t, i] = True
                free[t, bj] = False
    return tp


# --------------------------------------------------------------------------- evaluate


def _tiou_key(t: float) -> str:
    return f"{round(float(t), 6):g}"


def _group_index(keys: np.ndarray) -> dict[Any, np.ndarray]:
    """Indices per key, each in increasing order (i.e. the order of ``keys``)."""
    if len(keys) == 0:
        return {}
    order = np.argsort(keys, kind="stable")
    k_sorted = keys[order]
    cuts = np.flatnonzero(k_sorted[1:] != k_sorted[:-1]) + 1
    return {k_sorted[s]: order[s:e] for s, e in zip(np.r_[0, cuts], np.r_[cuts, len(keys)])}


def _evaluate_class(
    protocol: str,
    gt: GroundTruth,
    g_idx: np.ndarray,
    p_vid: np.ndarray,
    p_seg: np.ndarray,
    p_score: np.ndarray,
    thr: np.ndarray,
    amb_by_vid: dict[int, np.ndarray],
) -> np.ndarray:
    """AP (fraction) per threshold for one class."""
    T, npos = len(thr), len(g_idx)
    if len(p_score) == 0 or npos == 0:
        return np.zeros(T)
    order = np.argsort(-p_score, kind="stable")
    p_vid, p_seg, p_score = p_vid[order], p_seg[order], p_score[order]
    keep = np.ones((T, len(p_score)), dtype=bool)
    if protocol == "wtalc" and amb_by_vid:
        for v, idx in _group_index(p_vid).items():
            keep[:, idx[_overlaps_any(p_seg[idx], amb_by_vid.get(v))]] = False
    tp = np.zeros((T, len(p_score)), dtype=bool)
    g_seg = np.stack([gt.start[g_idx], gt.end[g_idx]], axis=1)
    g_by_vid = _group_index(gt.video[g_idx])
    if protocol == "activitynet":
        # One compiled pass over the class: GT grouped by video (annotation order kept);
        # nothing is removed, so AP comes for every threshold at once.
        n_vid = int(max(p_vid.max(), gt.video[g_idx].max())) + 1
        g_vid = gt.video[g_idx]
        order_g = np.argsort(g_vid, kind="stable")
        counts = np.bincount(g_vid, minlength=n_vid)
        g_end = np.cumsum(counts)
        tp = _match_activitynet_class(p_vid, np.ascontiguousarray(p_seg), g_end - counts, g_end,
                                      np.ascontiguousarray(g_seg[order_g]), thr)
        return interpolated_ap(tp, npos)
    match = _MATCHERS[protocol]
    for v, pi in _group_index(p_vid).items():
        gi = g_by_vid.get(v)
        if gi is None:
            continue
        if protocol == "wtalc":
            pi_kept = pi[keep[0, pi]]
            tp[:, pi_kept] = match(segment_iou(p_seg[pi_kept], g_seg[gi]), thr)
        else:
            tp[:, pi] = match(segment_iou(p_seg[pi], g_seg[gi]), thr)
    if protocol == "thumos14" and amb_by_vid:
        amb_hit = np.zeros(len(p_score), dtype=bool)
        for v, idx in _group_index(p_vid).items():
            amb_hit[idx] = _overlaps_any(p_seg[idx], amb_by_vid.get(v))
        keep &= ~(amb_hit[None, :] & ~tp)  # only unmatched detections are dropped
    ap = np.zeros(T)
    for t in range(T):
        flags = tp[t, keep[t]]
        if protocol == "thumos14":
            # scores are already descending; on ties TPs rank before FPs (stable).
            s = p_score[keep[t]]
            flags = flags[np.lexsort((~flags, -s))]
        ap[t] = non_interpolated_ap(flags, npos)[0]
    return ap


def evaluate(
    gt: PathLike | Mapping[str, Any] | GroundTruth,
    preds: PathLike | Mapping[str, Any] | Predictions,
    protocol: str = "activitynet",
    tiou: Sequence[float] = DEFAULT_TIOU,
    ambiguous: None | PathLike | Iterable[tuple[str, float, float]] | Mapping[str, Any] = None,
    subset: str | None = "test",
) -> dict[str, Any]:
    """Score temporal detections against ground truth with one of :data:`PROTOCOLS`.

    Returns a dict with ``protocol``, ``mAP`` (``{"0.5": percent, ...}`` keyed by the tIoU
    as written), ``average_mAP`` (``"0.1:0.5"``, ``"0.3:0.7"``, ``"0.1:0.7"``: the mean of
    the mAPs at every 0.1 step of the range, present only when all those thresholds were
    evaluated), ``per_class_AP`` (``{class: {tiou: percent}}``), ``num_predictions``
    (predictions evaluated, i.e. after dropping ignored ones; ambiguous removals are not
    subtracted), ``num_ground_truth``, ``ignored_predictions`` (``{"unknown_video": n,
    "unknown_label": n, "total": n}``) and ``seconds`` (wall time of the evaluation
    itself: reading and parsing the inputs is excluded). ``ambiguous`` is ignored by ``"activitynet"``.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; expected one of {PROTOCOLS}")
    thr = np.asarray([float(t) for t in tiou], dtype=np.float64)
    if thr.ndim != 1 or len(thr) == 0 or np.any(~(thr > 0)) or np.any(thr > 1):
        raise ValueError(f"tiou thresholds must be a non-empty list in (0, 1], got {tiou!r}")
    keys = [_tiou_key(t) for t in thr]
    if len(set(keys)) != len(keys):
        raise ValueError(f"duplicate tiou thresholds in {tiou!r}")
    g = load_ground_truth(gt, subset=subset)
    p = load_predictions(preds)
    amb = load_ambiguous(ambiguous) if protocol != "activitynet" else {}
    t0 = time.perf_counter()  # evaluation time: file loading and parsing excluded

    vid_index = {v: i for i, v in enumerate(g.videos)}
    p_vid = np.array([vid_index.get(v, -1) for v in p.video], dtype=np.int64)
    class_set = set(g.classes)
    known_label = np.array([lab in class_set for lab in p.label], dtype=bool)
    unknown_video = p_vid < 0
    unknown_label = ~unknown_video & ~known_label
    valid = ~unknown_video & ~unknown_label
    amb_by_vid = {vid_index[v]: segs for v, segs in amb.items() if v in vid_index}

    p_seg = np.stack([p.start, p.end], axis=1) if len(p.start) else np.zeros((0, 2))
    p_by_cls = _group_index(p.label[valid]) if valid.any() else {}
    valid_idx = np.flatnonzero(valid)
    g_by_cls = _group_index(g.label)
    per_class: dict[str, dict[str, float]] = OrderedDict()
    ap_mat = np.zeros((len(g.classes), len(thr)))
    for c, name in enumerate(g.classes):
        pi = valid_idx[p_by_cls[name]] if name in p_by_cls else np.zeros(0, dtype=np.int64)
        ap = _evaluate_class(protocol, g, g_by_cls[name], p_vid[pi], p_seg[pi], p.score[pi], thr, amb_by_vid)
        ap_mat[c] = ap
        per_class[name] = {k: float(100.0 * a) for k, a in zip(keys, ap)}
    m = ap_mat.mean(axis=0) * 100.0 if len(g.classes) else np.zeros(len(thr))
    mAP = {k: float(v) for k, v in zip(keys, m)}
    average: dict[str, float] = {}
    for rng in _AVERAGE_RANGES:
        lo, hi = (float(x) for x in rng.split(":"))
        need = [_tiou_key(x) for x in np.arange(round(lo * 10), round(hi * 10) + 1) / 10.0]
        if all(k in mAP for k in need):
            average[rng] = float(np.mean([mAP[k] for k in need]))
    return {
        "protocol": protocol,
        "mAP": mAP,
        "average_mAP": average,
        "per_class_AP": dict(per_class),
        "num_predictions": int(valid.sum()),
        "num_ground_truth": len(g.label),
        "ignored_predictions": {
            "unknown_video": int(unknown_video.sum()),
            "unknown_label": int(unknown_label.sum()),
            "total": int((~valid).sum()),
        },
        "seconds": time.perf_counter() - t0,
    }
