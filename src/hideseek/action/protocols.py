"""Temporal action localization evaluation: each protocol scored exactly as its reference code.

The same detections scored by the evaluation codes in common use for THUMOS14 give numbers
a few points apart. :func:`evaluate` implements them all on one data model so the gap can
be measured rather than guessed. Each protocol is one :class:`Protocol` record
(:data:`PROTOCOL_RECORDS`, modelled on COCOeval's ``Params``): its reference, default tIoU
thresholds, overlap formula, matching, sort and tie rules, unknown-video, unknown-label and
ambiguous-segment rules, AP rule and the deviations from the reference that remain.
:func:`evaluate`, the command line, the trainer and the demo take the rules and defaults
from these records. Segments are ``[start, end]`` in seconds.

Inputs (see :func:`load_ground_truth`, :func:`load_predictions`, :func:`load_ambiguous`)

* ground truth, ActivityNet style::

    {"database": {vid: {"subset": "test",
                        "annotations": [{"segment": [s, e], "label": name}, ...]}}}

  Only videos whose ``subset`` equals the requested one are kept (``subset=None`` keeps
  every video). The classes are the labels of the kept annotations.
* predictions::

    {"results": {vid: [{"segment": [s, e], "label": name, "score": x}, ...]}}

  "Input order" below is the order of this JSON: videos as listed, then each video's list.
  Detections from a temporal CAM also carry W-TALC's units: ``"snippets": [s, e]`` per
  prediction (snippet indices, ``e`` exclusive) and a top-level ``"snippets_per_second"``;
  ``wtalc`` then scores those (``units=None``), every other protocol the seconds.
* ambiguous segments (optional): text lines ``video_name  t_start  t_end``.

A prediction whose video has no ground-truth segment in the kept subset (absent from it, or
listed without annotations) is an *unknown-video* prediction: a false positive under
``activitynet`` and both THUMOS14 kits, dropped under ``wtalc`` (each as its reference);
``unknown_video_predictions`` counts them. A prediction whose label is no class of the kept
ground truth is dropped and counted in ``ignored_predictions``; it never raises.

Segments are scored as the references score them: a negative start (a regressed boundary)
is kept, a zero-length segment is kept. A reversed segment (``end < start``), a non-finite
value or a non-number raises ``ValueError`` naming the file, the video and the entry. A
subset that matches no video is refused, naming the subsets the file has.

Protocols (``protocol=``; the record of each says the same in fields)

``"activitynet"`` -- ActivityNet ``Evaluation/eval_detection.py`` (its Python 3 copy in
    BaSNet-pytorch reads the JSON in file order). Per class, the class's predictions in
    input order (unknown-video ones included) are ranked by ``np.argsort(scores)[::-1]``
    (NumPy's default, unstable sort, reversed: tie order is NumPy's, as the reference's on
    the same machine and NumPy). Each prediction in turn, at each tIoU ``t``, walks the GT
    of its class in its video in the order ``np.argsort(tiou)[::-1]``: it stops as a false
    positive at the first tIoU ``< t``, skips GT already taken at ``t`` and takes the first
    free one (so it falls back to a lower-tIoU free GT that still reaches ``t``).
    tIoU = intersection / (length + length - intersection), in that operation order; a
    zero-length prediction against a zero-length GT is 0/0 = NaN, which passes the
    reference's ``< t`` test and so matches, as there. AP is the VOC all-points
    interpolated area. Ambiguous segments are not used. mAP is ``ap.mean(axis=1)`` over
    the classes in order of first appearance in the ground truth.

``"thumos14"`` -- the updated THUMOS14 kit (``TH14evalDet_Updated.m``). Per class, videos
    in alphabetical (character-code) order; a video's detections sorted by descending
    confidence (stable: ties in input order). Overlap = intersection / hull
    (``iw / (max(end) - min(start))``, only when ``iw > 0``). Each GT of the video, in
    annotation order, takes the free detection with the largest overlap (the first on
    ties) if that overlap is strictly ``> t``. Unmatched detections that overlap an
    ambiguous segment of the video are removed (matched ones are kept). The kept
    detections, concatenated video by video in that order, are stably sorted by descending
    confidence (ties: video name, then the within-video order). AP = sum of the precision
    at each true positive / number of GT (not interpolated). A class without detections
    has AP 0.

``"thumos14-2014"`` -- the original 2014 kit (``TH14evaldet.m`` + ``TH14eventdetpr.m``):
    the same matching and ambiguous rule, but all true positives are concatenated before
    all false positives and then stably sorted, so on tied confidences every TP ranks
    before every FP; AP is 11-point interpolated at MATLAB's ``0:0.1:1`` (whose fourth
    value is 0.30000000000000004): the mean over the points of the largest precision at a
    recall ``>=`` the point (0 if none).

``"wtalc"`` -- W-TALC ``detectionMAP.py``, on snippet index ranges exactly as its code when
    the predictions carry them or ``units="snippets"`` (GT seconds converted by
    ``int(round(seconds * snippets_per_second))``, overlaps counted on the index sets), else
    on segments in seconds. Predictions of videos
    without GT are dropped; every prediction that overlaps an ambiguous segment of its
    video is removed (intersection ``> 0``), matched or not; the rest, in W-TALC's row order
    (videos in the ground truth's order, each video's predictions by start time, input order
    on equal starts), are ranked by ``np.argsort(-scores)`` (NumPy's default kind on the
    negated scores), so tied scores fall as in W-TALC whatever order the file lists them in. Each
    takes the *first* GT of the class in its video, in annotation order, that is still free
    and has tIoU ``>= t``. AP is not interpolated (0 without any TP); mAP is
    ``100 * np.mean(ap)`` over the classes sorted by name. W-TALC's own code returns 0 for
    the whole mAP at a tIoU when any class has no predictions; ``empty_class_bug=True``
    reproduces that, and the output always says when it would have applied
    (``classes_without_predictions`` and ``notes``).

Every protocol: a class with no predictions has AP 0 (unless the W-TALC bug is asked
for), classes are those of the (subset-filtered) ground truth, mAP is in percent.
"""

from __future__ import annotations

import math
import numbers
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numba
import numpy as np

from hideseek.action.choices import PROTOCOLS
from hideseek.inputs import read_json, read_lines

__all__ = [
    "DEFAULT_TIOU",
    "KIT_RECALL_POINTS",
    "PROTOCOLS",
    "PROTOCOL_RECORDS",
    "GroundTruth",
    "Predictions",
    "Protocol",
    "check_snippets_per_second",
    "eleven_point_ap",
    "evaluate",
    "get_protocol",
    "hull_overlap",
    "interpolated_ap",
    "kit_ap",
    "load_ambiguous",
    "load_ground_truth",
    "load_predictions",
    "non_interpolated_ap",
    "range_iou",
    "segment_iou",
]

PathLike = str | os.PathLike
# tIoU 0.1..0.7: the range temporal-localisation papers report on THUMOS14 ("mAP avg
# 0.1:0.7"); the thresholds the trainer scores every protocol at, so rows compare
DEFAULT_TIOU = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)
# MATLAB's .1:.1:.5 (both THUMOS14 kits' drivers) and W-TALC's [0.1, ..., 0.5] literals:
# the colon operator builds the vector from both ends, so these are the plain doubles
_KIT_TIOU = (0.1, 0.2, 0.3, 0.4, 0.5)
# MATLAB's 0:0.1:1 (the 2014 kit's recall points): first half 0 + k*0.1, second half
# 1 - k*0.1, so the fourth is 3*0.1 = 0.30000000000000004 while 0.6 and 0.7 are plain
KIT_RECALL_POINTS = (0.0, 0.1, 0.2, 0.30000000000000004, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
_AVERAGE_RANGES = ("0.1:0.5", "0.3:0.7", "0.1:0.7")


# ------------------------------------------------------------------------ protocol records


@dataclass(frozen=True)
class Protocol:
    """One evaluation protocol: where it comes from and every rule :func:`evaluate` applies.

    The rule fields take values from small vocabularies (the values :func:`evaluate`
    dispatches on), listed per field:

    * ``iou``: ``"union"`` (intersection / (length + length - intersection), lengths added
      first, as ActivityNet's ``segment_iou``) or ``"hull"`` (intersection / (max end -
      min start), only when the intersection is positive, as the THUMOS14 kit's
      ``intervaloverlapvalseconds``).
    * ``match``: ``"prediction-walk"`` (each ranked prediction walks its video's GT by
      decreasing tIoU, skipping taken ones, ActivityNet), ``"prediction-first-fit"``
      (each ranked prediction takes the first free GT in annotation order that reaches
      the threshold, W-TALC) or ``"ground-truth-best"`` (each GT in annotation order takes
      the free detection of its video with the largest overlap, THUMOS14).
    * ``threshold``: ``">="`` or ``">"`` (overlap against the tIoU threshold).
    * ``sort``: ``"argsort-reversed"`` (``np.argsort(score)[::-1]`` over the class's
      predictions in input order), ``"argsort-negated"`` (``np.argsort(-score)``),
      ``"video-then-stable"`` (videos alphabetical, each video's detections by descending
      score, stable; then a stable sort by descending score: ties by video, then within
      video) or ``"tp-first-stable"`` (the same, but TPs concatenated before FPs first).
    * ``gt_ties``: ``"argsort-reversed"`` (among GT tied at a tIoU, the order of
      ``np.argsort(tiou)[::-1]``), ``"annotation-order"`` (the first in annotation order),
      ``"score-order"`` (a GT takes, among detections tied at its largest overlap, the
      first in the video's score order).
    * ``unknown_video``: ``"false-positive"`` or ``"dropped"``.
    * ``unknown_label``: ``"dropped"`` (always; see ``deviations`` for the reference's).
    * ``ambiguous``: ``"ignored"``, ``"drop-unmatched"`` (detections overlapping an
      ambiguous segment are removed unless matched) or ``"drop-all"`` (removed before
      matching).
    * ``ap``: ``"voc-all-points"``, ``"precision-at-tp"`` (sum of the precision at each TP
      over the GT count; ``kit`` sums in rank order as the MATLAB loop does) or
      ``"eleven-point"`` (:data:`KIT_RECALL_POINTS`).
    * ``class_order`` / ``mean``: the order of classes in the mean over classes
      (``"ground-truth-order"``: first appearance; ``"sorted"``: by name) and how it is
      summed (``"numpy-2d"``: ``ap.mean(axis=1)`` of the ``(thresholds, classes)`` array;
      ``"numpy-1d"``: ``np.mean`` of each threshold's list; ``"sequential"``: one addition
      after another, MATLAB's ``sum / n``).
    * ``empty_class_bug``: whether the reference's code returns 0 for the whole mAP when a
      class has no predictions (only reproduced when asked for).
    * ``units``: the segment units :func:`evaluate` accepts for the protocol: ``"seconds"``
      and, for W-TALC, ``"snippets"`` (predictions as integer snippet ranges ``[s, e)``, GT
      and ambiguous segments converted by ``int(round(seconds * snippets_per_second))``,
      overlaps counted on the index sets, as W-TALC's code).
    * ``default_snippets_per_second``: the reference's own seconds-to-snippets factor, used
      in snippet units when neither the predictions nor the caller give one (W-TALC: 25/16,
      I3D's 25 fps and 16-frame snippets).
    * ``deviations``: what differs from the reference and why; ``seconds_deviations`` hold
      only when a protocol that accepts snippets is run in seconds.
    """

    name: str
    title: str  # the name tables print
    reference: str  # repository and file(s)
    default_tiou: tuple[float, ...]
    iou: str
    match: str
    threshold: str
    sort: str
    gt_ties: str
    unknown_video: str
    unknown_label: str
    ambiguous: str
    ap: str
    class_order: str
    mean: str
    empty_class_bug: bool = False
    units: tuple[str, ...] = ("seconds",)
    default_snippets_per_second: float | None = None
    deviations: tuple[str, ...] = ()
    seconds_deviations: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}


_LABEL_DROPPED = "a predicted label that is no ground-truth class is dropped and counted in ignored_predictions"
_STRING_SCORES = "a score written as a string is read as a number (the reference would keep it as text)"
_KIT_COMMON = (
    "input is the ActivityNet-style JSON (the kit reads a text file); the detections of a video are taken in "
    "the JSON list order, which stands for the kit's file order",
    "the classes are those of the ground truth: a predicted class without ground truth is dropped and counted "
    "(the kit warns and skips an unknown class id; a listed class without ground truth stops it at its assert)",
    "the mean over classes adds the class APs one after another; MATLAB's sum may add in another order, so the "
    "mAP can differ from the kit's in the last bit",
    "video names are compared by Unicode code point (MATLAB's sort compares UTF-16 code units: the same order "
    "except for characters outside the Basic Multilingual Plane)",
)

ACTIVITYNET = Protocol(
    name="activitynet",
    title="ActivityNet",
    reference="activitynet/ActivityNet Evaluation/eval_detection.py + utils.py (Python 3 copy: "
              "Pilhyeon/BaSNet-pytorch eval/eval_detection.py)",
    default_tiou=DEFAULT_TIOU,
    iou="union", match="prediction-walk", threshold=">=", sort="argsort-reversed", gt_ties="argsort-reversed",
    unknown_video="false-positive", unknown_label="dropped", ambiguous="ignored", ap="voc-all-points",
    class_order="ground-truth-order", mean="numpy-2d",
    deviations=(
        f"{_LABEL_DROPPED} (the reference raises KeyError)",
        "no blocked-video list (upstream downloads one when check_status=True; the Python 3 copy turns it off)",
        "default tIoU 0.1:0.7, the THUMOS14 range; upstream defaults to np.linspace(0.5, 0.95, 10) for "
        "ActivityNet and BaSNet to np.linspace(0.1, 0.9, 9), whose values are not the plain decimals "
        "(0.30000000000000004, 0.7000000000000001): pass those values as tiou to get its exact thresholds",
        "input order is the JSON file order, as the Python 3 copy reads it; upstream Python 2 iterates dicts in "
        "hash order, so its tie order on tied scores cannot be reproduced",
        _STRING_SCORES,
    ),
)
THUMOS14 = Protocol(
    name="thumos14",
    title="THUMOS14 kit",
    reference="THUMOS14 evaluation kit, updated version: TH14evalDet_Updated.m + intervaloverlapvalseconds.m "
              "(zhengshou/scnn experiments/THUMOS14/eval)",
    default_tiou=_KIT_TIOU,
    iou="hull", match="ground-truth-best", threshold=">", sort="video-then-stable", gt_ties="score-order",
    unknown_video="false-positive", unknown_label="dropped", ambiguous="drop-unmatched", ap="precision-at-tp",
    class_order="sorted", mean="sequential",
    deviations=_KIT_COMMON,
)
THUMOS14_2014 = Protocol(
    name="thumos14-2014",
    title="THUMOS14 kit 2014",
    reference="THUMOS14 evaluation kit, 2014 version: TH14evaldet.m + TH14eventdetpr.m + "
              "intervaloverlapvalseconds.m (copies in Lin716/STPN-lin and menorashid/nn_net TH14evalkit)",
    default_tiou=_KIT_TIOU,
    iou="hull", match="ground-truth-best", threshold=">", sort="tp-first-stable", gt_ties="score-order",
    unknown_video="false-positive", unknown_label="dropped", ambiguous="drop-unmatched", ap="eleven-point",
    class_order="sorted", mean="sequential",
    deviations=(
        *_KIT_COMMON,
        "the recall points are MATLAB's 0:0.1:1 as its documented colon algorithm builds them "
        "(0.30000000000000004 fourth); not checked in MATLAB itself",
    ),
)
WTALC = Protocol(
    name="wtalc",
    title="W-TALC",
    reference="sujoyp/wtalc-pytorch detectionMAP.py (getLocMAP)",
    default_tiou=_KIT_TIOU,
    iou="union", match="prediction-first-fit", threshold=">=", sort="argsort-negated", gt_ties="annotation-order",
    unknown_video="dropped", unknown_label="dropped", ambiguous="drop-all", ap="precision-at-tp",
    class_order="sorted", mean="numpy-1d", empty_class_bug=True, units=("seconds", "snippets"),
    default_snippets_per_second=25.0 / 16.0,  # detectionMAP.py's factor for I3D features
    seconds_deviations=(
        "tIoU on segments in seconds; W-TALC intersects integer snippet-index ranges (its GT converted by "
        "int(round(seconds * 25/16))), so at exact ratios floating point can flip a match (units='snippets' "
        "scores as W-TALC)",
        "ambiguous overlap tested in seconds (intersection > 0); W-TALC tests its snippet-index ranges",
    ),
    deviations=(
        "a class without predictions gets AP 0; W-TALC's code returns 0 for the whole mAP at that tIoU "
        "(empty_class_bug=True reproduces it; the output names such classes either way)",
        "scores and segments come from a predictions JSON: W-TALC's own segment extraction from the T-CAM "
        "(mid-range threshold, class-score gating) is the detector's job here (hideseek.action.detect)",
        _STRING_SCORES,
    ),
)

PROTOCOL_RECORDS: dict[str, Protocol] = {p.name: p for p in (ACTIVITYNET, THUMOS14, THUMOS14_2014, WTALC)}
if tuple(PROTOCOL_RECORDS) != PROTOCOLS:  # the command line offers choices.PROTOCOLS without importing this
    raise RuntimeError(f"protocol records {tuple(PROTOCOL_RECORDS)} differ from choices.PROTOCOLS {PROTOCOLS}")


def get_protocol(protocol: str | Protocol) -> Protocol:
    """The record of a protocol name (a :class:`Protocol` is returned as it is)."""
    if isinstance(protocol, Protocol):
        return protocol
    if protocol not in PROTOCOL_RECORDS:
        raise ValueError(f"unknown protocol {protocol!r}; expected one of {PROTOCOLS}")
    return PROTOCOL_RECORDS[protocol]


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
    # W-TALC's units, when the file carries them: every prediction's snippet range [s, e)
    # ((N, 2), integer values) and the grid's snippets per second (top-level key)
    snippets: np.ndarray | None = None
    snippets_per_second: float | None = None


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


def _check_snippets(rng: Any, where: str) -> tuple[float, float]:
    """A ``"snippets"`` field: ``[start, end)`` snippet indices, integers with ``start < end``."""
    if isinstance(rng, (str, bytes, Mapping)) or not isinstance(rng, Sequence) or len(rng) != 2 or any(
            isinstance(x, bool) or not isinstance(x, numbers.Real) or not math.isfinite(x) or x != math.floor(x)
            for x in rng) or not rng[0] < rng[1]:
        raise ValueError(f"{where}: 'snippets' {rng!r} is not a snippet range [start, end) of integers with "
                         "start < end")
    return float(rng[0]), float(rng[1])


def check_snippets_per_second(value: Any, where: str) -> float:
    """A seconds-to-snippets factor: a positive finite number (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (math.isfinite(value) and value > 0):
        raise ValueError(f"{where}: snippets_per_second must be a positive number, got {value!r}")
    return float(value)


def load_predictions(src: PathLike | Mapping[str, Any] | Predictions) -> Predictions:
    """Read ActivityNet-style predictions (path or parsed dict) into a flat table.

    Optional, for W-TALC's units (what :func:`hideseek.action.detect.to_results_json`
    writes for detections from a temporal CAM): a ``"snippets": [s, e]`` range per
    prediction (integers, ``s < e``, ``e`` exclusive; every prediction or none) and a
    top-level ``"snippets_per_second"``. Errors name the file, the video and the entry's
    index in that video's list.
    """
    if isinstance(src, Predictions):
        return src
    data, name = _read_json(src, "predictions")
    if "results" not in data:
        raise ValueError(f"{name}: predictions have no 'results' key (expected {{'results': {{video: [...]}}}})")
    results = _entries(data["results"], f"{name}: 'results'", dict, "videos")
    rate = data.get("snippets_per_second")
    if rate is not None:
        rate = check_snippets_per_second(rate, f"{name}: 'snippets_per_second'")
    vids, st, en, lab, sc = [], [], [], [], []
    snip: list[tuple[float, float]] = []
    first: str | None = None  # the first prediction, and whether it set the snippets rule
    with_snippets = False
    for vid, items in results.items():
        items = _entries(items, f"{name}: video {vid!r}", list, "predictions")
        for n, p in enumerate(items):
            where = f"{name}: video {vid!r} prediction {n}"
            if not isinstance(p, dict):
                raise ValueError(f"{where}: expected an object with 'segment', 'label' and 'score'")
            s, e = _check_segment(p.get("segment"), where)
            if first is None:
                first, with_snippets = where, "snippets" in p
            elif ("snippets" in p) != with_snippets:
                has, lacks = (first, where) if with_snippets else (where, first)
                raise ValueError(f"{lacks}: no 'snippets' range, while {has.removeprefix(name + ': ')} has one "
                                 "(give every prediction its snippet range, or none)")
            if with_snippets:
                snip.append(_check_snippets(p["snippets"], where))
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
        # no prediction at all: a file that declares its grid carries (zero) snippet ranges
        snippets=np.array(snip, dtype=np.float64).reshape(-1, 2)
        if with_snippets or (first is None and rate is not None) else None,
        snippets_per_second=rate,
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
    """Pairwise tIoU between ``(N, 2)`` and ``(M, 2)`` segment arrays -> ``(N, M)``.

    ActivityNet's formula and operation order: intersection / (length + length -
    intersection). Two zero-length segments give 0 here (the reference's 0/0 is NaN,
    which :func:`evaluate` reproduces where it matters).
    """
    a = np.asarray(a, dtype=np.float64).reshape(-1, 2)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 2)
    inter = np.clip(
        np.minimum(a[:, None, 1], b[None, :, 1]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0.0, None
    )
    union = (a[:, None, 1] - a[:, None, 0]) + (b[None, :, 1] - b[None, :, 0]) - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def hull_overlap(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise overlap of the THUMOS14 kit (``intervaloverlapvalseconds``) -> ``(N, M)``.

    ``iw / (max(end) - min(start))`` where ``iw = min(end) - max(start)`` is positive, else
    0: the union is the hull of the two intervals, so touching intervals overlap 0.
    """
    a = np.asarray(a, dtype=np.float64).reshape(-1, 2)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 2)
    iw = np.minimum(a[:, None, 1], b[None, :, 1]) - np.maximum(a[:, None, 0], b[None, :, 0])
    hull = np.maximum(a[:, None, 1], b[None, :, 1]) - np.minimum(a[:, None, 0], b[None, :, 0])
    return np.divide(iw, hull, out=np.zeros_like(iw), where=iw > 0)


def range_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of integer index ranges ``[s, e)`` as W-TALC counts them -> ``(N, M)``:
    ``len(set(range(...)) & set(range(...))) / len(... | ...)``, 0 when both are empty."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 2)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 2)
    inter = np.clip(np.minimum(a[:, None, 1], b[None, :, 1]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0.0, None)
    union = np.clip(a[:, None, 1] - a[:, None, 0], 0.0, None) + np.clip(b[None, :, 1] - b[None, :, 0], 0.0, None) \
        - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def _overlaps_any(segs: np.ndarray, amb: np.ndarray | None) -> np.ndarray:
    """Boolean per segment: positive-length intersection with any ambiguous segment."""
    if amb is None or len(amb) == 0 or len(segs) == 0:
        return np.zeros(len(segs), dtype=bool)
    inter = np.minimum(segs[:, None, 1], amb[None, :, 1]) - np.maximum(segs[:, None, 0], amb[None, :, 0])
    return (inter > 0).any(axis=1)


def interpolated_ap(tp: np.ndarray, npos: int) -> np.ndarray:
    """VOC all-points interpolated AP of ranked ``(T, N)`` TP flags (rows = thresholds).

    ActivityNet's ``interpolated_prec_rec`` with its operations: precision made
    non-increasing from the right, summed over the points where the recall changes.
    """
    tp = np.atleast_2d(np.asarray(tp, dtype=np.float64))
    out = np.zeros(tp.shape[0])
    if npos == 0 or tp.shape[1] == 0:
        return out
    tpc = np.cumsum(tp, axis=1)
    fpc = np.cumsum(1.0 - tp, axis=1)
    rec = tpc / float(npos)
    prec = tpc / (tpc + fpc)
    for t in range(tp.shape[0]):
        mprec = np.hstack([[0.0], prec[t], [0.0]])
        mrec = np.hstack([[0.0], rec[t], [1.0]])
        mprec = np.maximum.accumulate(mprec[::-1])[::-1]
        idx = np.flatnonzero(mrec[1:] != mrec[:-1]) + 1
        out[t] = np.sum((mrec[idx] - mrec[idx - 1]) * mprec[idx])
    return out


def non_interpolated_ap(tp: np.ndarray, npos: int) -> np.ndarray:
    """Sum of precision at each true positive over ``npos``, for ``(T, N)`` ranked flags.

    W-TALC's operations: ``np.sum((tp_c / (fp_c + tp_c)) * tp) / npos``, 0 without a TP.
    """
    tp = np.atleast_2d(np.asarray(tp, dtype=np.float64))
    out = np.zeros(tp.shape[0])
    if npos == 0 or tp.shape[1] == 0:
        return out
    for t in range(tp.shape[0]):
        if tp[t].sum() == 0:
            continue
        tpc, fpc = np.cumsum(tp[t]), np.cumsum(1.0 - tp[t])
        out[t] = np.sum((tpc / (fpc + tpc)) * tp[t]) / npos
    return out


def kit_ap(tp: np.ndarray, npos: int) -> float:
    """The updated THUMOS14 kit's AP of one ranked flag vector: the precision at each TP
    added one after another (its ``prap`` loop), divided by ``npos``."""
    flags = np.asarray(tp, dtype=bool)
    if npos == 0 or not flags.any():
        return 0.0
    tpc = np.cumsum(flags).astype(np.float64)
    fpc = np.cumsum(~flags).astype(np.float64)
    prec = tpc / (fpc + tpc)
    return float(np.cumsum(prec[flags])[-1] / npos)  # cumsum adds in order, as the loop


def eleven_point_ap(tp: np.ndarray, npos: int) -> float:
    """The 2014 THUMOS14 kit's AP of one ranked flag vector: for each of MATLAB's recall
    points :data:`KIT_RECALL_POINTS`, the largest precision at a recall ``>=`` the point
    (0 if none), each divided by 11 and added in order."""
    flags = np.asarray(tp, dtype=bool)
    if npos == 0 or not flags.any():
        return 0.0
    tpc = np.cumsum(flags).astype(np.float64)
    fpc = np.cumsum(~flags).astype(np.float64)
    rec = tpc / npos
    prec = tpc / (fpc + tpc)
    ap = 0.0
    for point in KIT_RECALL_POINTS:
        reached = prec[rec >= point]
        ap = ap + (float(reached.max()) if len(reached) else 0.0) / len(KIT_RECALL_POINTS)
    return ap


# --------------------------------------------------------------------------- matching
# The kit and W-TALC matchers get one (class, video) group: ``ov`` of shape (P, G) with
# predictions in the protocol's within-video order and GT in annotation order, and ``thr``
# of shape (T,). They return a (T, P) boolean TP matrix.


def _match_first_fit(iou: np.ndarray, thr: np.ndarray) -> np.ndarray:
    """W-TALC: each prediction in turn takes the first free GT (annotation order) with tIoU >= t."""
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


def _match_gt_best(ov: np.ndarray, thr: np.ndarray) -> np.ndarray:
    """THUMOS14 kit: each GT in turn takes the free detection with the largest overlap
    (the first in score order on ties), only if that overlap is strictly > t."""
    T, P = len(thr), ov.shape[0]
    taken = np.zeros((T, P), dtype=bool)
    if P == 0:
        return taken
    rows = np.arange(T)
    for k in np.flatnonzero(ov.max(axis=0, initial=0.0) > 0):  # a GT overlapping nothing takes nothing
        cand = np.where(taken, -np.inf, ov[:, k][None, :])  # (T, P)
        j = cand.argmax(axis=1)  # MATLAB max: the first maximum
        ok = cand[rows, j] > thr
        taken[rows[ok], j[ok]] = True
    return taken


@numba.njit(cache=True)
def _activitynet_ties(p_vid, p_seg, g_start, g_end, g_seg):  # pragma: no cover - compiled
    """Per ranked prediction: True when its tIoUs with the GT of its video need NumPy's
    argsort to order them (two equal positive tIoUs, or a 0/0 = NaN); the other
    predictions take the free GT with the highest tIoU, which is what the walk in
    decreasing-tIoU order gives when the positive tIoUs are distinct."""
    n_pred = p_vid.shape[0]
    out = np.zeros(n_pred, dtype=np.bool_)
    iou = np.empty(g_seg.shape[0])
    for i in range(n_pred):
        v = p_vid[i]
        lo, hi = g_start[v], g_end[v]
        a0, a1 = p_seg[i, 0], p_seg[i, 1]
        for j in range(lo, hi):
            inter = min(a1, g_seg[j, 1]) - max(a0, g_seg[j, 0])
            if inter < 0.0:
                inter = 0.0
            union = (g_seg[j, 1] - g_seg[j, 0]) + (a1 - a0) - inter
            if union == 0.0:
                out[i] = True  # 0/0
                break
            iou[j] = inter / union
            if iou[j] > 0.0:
                for k in range(lo, j):
                    if iou[k] == iou[j]:
                        out[i] = True
                        break
            if out[i]:
                break
    return out


@numba.njit(cache=True)
def _activitynet_match(p_vid, p_seg, g_start, g_end, g_seg, thr, walk_start, walk):  # pragma: no cover
    """ActivityNet matching of one whole class in one compiled pass.

    ``p_vid``/``p_seg``: the class's predictions in rank order; GT of video ``v`` are
    ``g_seg[g_start[v]:g_end[v]]`` in annotation order. A prediction with ``walk_start[i] <
    0`` takes, at each threshold, the free GT with the highest tIoU if it is ``>= thr``
    (its positive tIoUs are distinct, so this is the reference's walk). Otherwise it walks
    ``walk[walk_start[i]:walk_start[i] + n]`` (the GT in ``np.argsort(tiou)[::-1]`` order)
    as the reference does: a false positive at the first tIoU ``< thr`` (NaN is not), a
    taken GT skipped, the first free one taken.
    """
    n_thr, n_pred = thr.shape[0], p_vid.shape[0]
    tp = np.zeros((n_thr, n_pred), dtype=np.bool_)
    free = np.ones((n_thr, g_seg.shape[0]), dtype=np.bool_)
    iou = np.empty(g_seg.shape[0])
    for i in range(n_pred):
        v = p_vid[i]
        lo, hi = g_start[v], g_end[v]
        if lo == hi:
            continue  # no GT of the class in the video: a false positive at every threshold
        a0, a1 = p_seg[i, 0], p_seg[i, 1]
        for j in range(lo, hi):
            inter = min(a1, g_seg[j, 1]) - max(a0, g_seg[j, 0])
            if inter < 0.0:
                inter = 0.0
            union = (g_seg[j, 1] - g_seg[j, 0]) + (a1 - a0) - inter
            iou[j] = inter / union if union != 0.0 else np.nan
        w = walk_start[i]
        for t in range(n_thr):
            if w < 0:
                best, bj = -1.0, -1
                for j in range(lo, hi):
                    if free[t, j] and iou[j] > best:
                        best, bj = iou[j], j
                if bj >= 0 and best >= thr[t]:
                    tp[t, i] = True
                    free[t, bj] = False
            else:
                for k in range(w, w + hi - lo):
                    j = walk[k]
                    if iou[j] < thr[t]:
                        break
                    if not free[t, j]:
                        continue
                    tp[t, i] = True
                    free[t, j] = False
                    break
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


@dataclass
class _Class:
    """One class's data: predictions in input order, GT in annotation order."""

    p_vid: np.ndarray  # index into the evaluation's video list (unknown videos included)
    p_seg: np.ndarray
    p_score: np.ndarray
    g_vid: np.ndarray
    g_seg: np.ndarray
    n_vid: int


def _activitynet_class(c: _Class, thr: np.ndarray) -> np.ndarray:
    order = np.argsort(c.p_score)[::-1]  # the reference's sort: default kind, reversed
    p_vid, p_seg = c.p_vid[order], np.ascontiguousarray(c.p_seg[order])
    g_order = np.argsort(c.g_vid, kind="stable")  # GT grouped by video, annotation order kept
    counts = np.bincount(c.g_vid, minlength=c.n_vid)
    g_end = np.cumsum(counts)
    g_start = g_end - counts
    g_seg = np.ascontiguousarray(c.g_seg[g_order])
    tied = _activitynet_ties(p_vid, p_seg, g_start, g_end, g_seg)
    walk_start = np.full(len(p_vid), -1, dtype=np.int64)
    walks = []
    n = 0
    for i in np.flatnonzero(tied):
        lo, hi = g_start[p_vid[i]], g_end[p_vid[i]]
        seg, gts = p_seg[i], g_seg[lo:hi]
        inter = (np.minimum(seg[1], gts[:, 1]) - np.maximum(seg[0], gts[:, 0])).clip(0)
        union = (gts[:, 1] - gts[:, 0]) + (seg[1] - seg[0]) - inter
        with np.errstate(invalid="ignore", divide="ignore"):
            tiou = inter / union
        walks.append(np.argsort(tiou)[::-1] + lo)  # the reference's GT order, ties included
        walk_start[i] = n
        n += hi - lo
    walk = np.concatenate(walks).astype(np.int64) if walks else np.zeros(0, dtype=np.int64)
    tp = _activitynet_match(p_vid, p_seg, g_start, g_end, g_seg, thr, walk_start, walk)
    return interpolated_ap(tp, len(c.g_vid))


def _wtalc_class(c: _Class, thr: np.ndarray, amb_by_vid: dict[int, np.ndarray],
                 iou=segment_iou) -> tuple[np.ndarray, int]:
    """AP per threshold, and the number of predictions left after the ambiguous removal.

    ``iou``: :func:`segment_iou` on seconds, :func:`range_iou` on snippet ranges (there an
    ambiguous range overlaps when the intersection is non-empty, as in seconds)."""
    # W-TALC builds a class's rows video by video (the annotation order), each video's runs in
    # time order, and ties in score fall in that order: put the rows so before ranking them
    rows = np.lexsort((c.p_seg[:, 0], c.p_vid)) if len(c.p_vid) else np.zeros(0, dtype=np.int64)
    c_vid, c_seg, c_score = c.p_vid[rows], c.p_seg[rows], c.p_score[rows]
    keep = np.ones(len(c_vid), dtype=bool)
    for v, idx in _group_index(c_vid).items():
        keep[idx[_overlaps_any(c_seg[idx], amb_by_vid.get(v))]] = False
    p_vid, p_seg, p_score = c_vid[keep], c_seg[keep], c_score[keep]
    if len(p_vid) == 0:
        return np.zeros(len(thr)), 0
    order = np.argsort(-p_score)  # the reference's sort: default kind on the negated scores
    p_vid, p_seg = p_vid[order], p_seg[order]
    tp = np.zeros((len(thr), len(p_vid)), dtype=bool)
    g_by_vid = _group_index(c.g_vid)
    for v, pi in _group_index(p_vid).items():
        gi = g_by_vid.get(v)
        if gi is not None:
            tp[:, pi] = _match_first_fit(iou(p_seg[pi], c.g_seg[gi]), thr)
    return non_interpolated_ap(tp, len(c.g_vid)), len(p_vid)


def _kit_class(rec: Protocol, c: _Class, thr: np.ndarray, amb_by_vid: dict[int, np.ndarray],
               video_rank: np.ndarray) -> np.ndarray:
    T = len(thr)
    if len(c.p_vid) == 0:
        return np.zeros(T)
    g_by_vid = _group_index(c.g_vid)
    scores, flags, kept = [], [], []
    groups = _group_index(c.p_vid)
    for v in sorted(groups, key=lambda v: video_rank[v]):  # videos in alphabetical order
        pi = groups[v]
        pi = pi[np.argsort(-c.p_score[pi], kind="stable")]  # MATLAB sort(-conf): stable
        gi = g_by_vid.get(v)
        tp = (_match_gt_best(hull_overlap(c.p_seg[pi], c.g_seg[gi]), thr) if gi is not None
              else np.zeros((T, len(pi)), dtype=bool))
        amb = amb_by_vid.get(v)
        hit = (hull_overlap(amb, c.p_seg[pi]) > 0).any(axis=0) if amb is not None else np.zeros(len(pi), bool)
        scores.append(c.p_score[pi])
        flags.append(tp)
        kept.append(tp | ~hit[None, :])  # unmatched detections on an ambiguous segment are removed
    scores_all, flags_all, kept_all = np.concatenate(scores), np.concatenate(flags, axis=1), np.concatenate(kept, 1)
    npos = len(c.g_vid)
    ap = np.zeros(T)
    for t in range(T):
        s, f = scores_all[kept_all[t]], flags_all[t, kept_all[t]]
        if rec.sort == "tp-first-stable":  # [tpconf fpconf], then sort(-conf)
            s, f = np.concatenate([s[f], s[~f]]), np.concatenate([f[f], f[~f]])
        f = f[np.argsort(-s, kind="stable")]
        ap[t] = eleven_point_ap(f, npos) if rec.ap == "eleven-point" else kit_ap(f, npos)
    return ap


def _to_snippets(g: GroundTruth, p: Predictions, amb: dict[str, np.ndarray], rate: float,
                 source: Any) -> tuple[GroundTruth, Predictions, dict[str, np.ndarray]]:
    """W-TALC's units: the predictions' ``snippets`` ranges, or else their segments, which
    must then be snippet ranges; GT and ambiguous segments in seconds become
    ``int(round(seconds * rate))`` (Python's round: half to even)."""
    if p.snippets is not None:
        p = Predictions(video=p.video, start=p.snippets[:, 0].copy(), end=p.snippets[:, 1].copy(), label=p.label,
                        score=p.score, snippets=p.snippets, snippets_per_second=p.snippets_per_second)
    ok = (p.start == np.floor(p.start)) & (p.end == np.floor(p.end)) & (p.start < p.end)
    if not ok.all():
        i = int(np.flatnonzero(~ok)[0])
        n = i - int(np.flatnonzero(p.video == p.video[i])[0])  # rows are grouped by video in file order
        name = os.fspath(source) if isinstance(source, (str, os.PathLike)) else "predictions"
        raise ValueError(f"{name}: video {p.video[i]!r} prediction {n}: segment [{p.start[i]:g}, {p.end[i]:g}] "
                         "is not a snippet range [start, end) of integers with start < end (units 'snippets'; "
                         "or give each prediction a 'snippets' range)")

    def convert(x: np.ndarray) -> np.ndarray:
        return np.array([int(round(float(v) * rate)) for v in x], dtype=np.float64)

    g = GroundTruth(videos=g.videos, video=g.video, start=convert(g.start), end=convert(g.end), label=g.label,
                    classes=g.classes)
    amb = {v: np.stack([convert(segs[:, 0]), convert(segs[:, 1])], axis=1) for v, segs in amb.items()}
    return g, p, amb


def _snippet_rate(rec: Protocol, p: Predictions, given: float | None, source: Any) -> float:
    """The seconds-to-snippets factor: the predictions' own, else ``given``, else the record's."""
    name = os.fspath(source) if isinstance(source, (str, os.PathLike)) else "predictions"
    own = p.snippets_per_second
    if own is not None and given is not None and own != given:
        raise ValueError(f"{name}: its snippet ranges are on a grid of {own!r} snippets per second, not {given!r} "
                         "(leave snippets_per_second out to use the file's)")
    if own is not None or given is not None:
        return own if own is not None else given
    if p.snippets is not None:
        raise ValueError(f"{name}: the predictions carry 'snippets' ranges but no 'snippets_per_second' "
                         "(give the factor of their grid, --snippets-per-second)")
    return float(rec.default_snippets_per_second)


def _mean_over_classes(rec: Protocol, ap_mat: np.ndarray, order: np.ndarray) -> np.ndarray:
    """mAP (fraction) per threshold: the classes' APs in the reference's order and summation."""
    if ap_mat.shape[0] == 0:
        return np.zeros(ap_mat.shape[1])
    by_thr = np.ascontiguousarray(ap_mat[order].T)  # (T, C), the reference's layout
    if rec.mean == "sequential":  # MATLAB mean(ap_all, 1): sum / n
        return np.cumsum(by_thr, axis=1)[:, -1] / by_thr.shape[1]
    if rec.mean == "numpy-1d":  # np.mean of one threshold's list of class APs
        return np.array([np.mean(row) for row in by_thr])
    return by_thr.mean(axis=1)  # "numpy-2d": ap.mean(axis=1) of the (thresholds, classes) array


def evaluate(
    gt: PathLike | Mapping[str, Any] | GroundTruth,
    preds: PathLike | Mapping[str, Any] | Predictions,
    protocol: str | Protocol = "activitynet",
    tiou: Sequence[float] | None = None,
    ambiguous: None | PathLike | Iterable[tuple[str, float, float]] | Mapping[str, Any] = None,
    subset: str | None = "test",
    empty_class_bug: bool = False,
    units: str | None = None,
    snippets_per_second: float | None = None,
) -> dict[str, Any]:
    """Score temporal detections against ground truth with one of :data:`PROTOCOLS`.

    ``tiou``: the thresholds (``None``: the protocol's ``default_tiou``). ``ambiguous`` is
    read only by protocols whose ``ambiguous`` rule uses it. ``empty_class_bug``: reproduce
    W-TALC's whole-mAP-0 when a class has no predictions (only for a protocol whose
    reference has that bug).

    ``units``: ``"seconds"``, ``"snippets"`` (a protocol whose record lists it: ``wtalc``)
    or ``None``: snippets when the protocol accepts them and the predictions carry snippet
    ranges (a ``"snippets"`` field per prediction, as the detector writes them), else
    seconds. In snippet units the predictions' ``"snippets"`` ranges are scored (without
    them, the segments themselves must be snippet ranges ``[s, e)``: integers, ``s < e``,
    as W-TALC's rows), the ground truth and ambiguous segments stay in seconds and are
    converted by ``int(round(seconds * snippets_per_second))``, and overlaps are counted on
    the index sets, exactly as W-TALC. ``snippets_per_second`` (W-TALC's ``factor``: 25/16
    for I3D at 25 fps and 16-frame snippets, 10/4 for UntrimmedNet) is the predictions'
    top-level ``"snippets_per_second"``, else the argument, else the record's default; an
    argument that contradicts the predictions' own value is refused (their ranges are on
    that grid), and so are snippet ranges without any factor given.

    Returns a dict with ``protocol``, ``mAP`` (``{"0.5": percent, ...}`` keyed by the tIoU
    as written), ``average_mAP`` (``"0.1:0.5"``, ``"0.3:0.7"``, ``"0.1:0.7"``: the mean of
    the mAPs at every 0.1 step of the range, present only when all those thresholds were
    evaluated), ``per_class_AP`` (``{class: {tiou: percent}}``), ``num_predictions``
    (predictions scored, unknown-video false positives included; ambiguous removals are
    not subtracted), ``num_ground_truth``, ``unknown_video_predictions`` (predictions of a
    known class on a video without GT segment in the subset) with ``unknown_video_rule``
    (``"false-positive"`` or ``"dropped"``), ``ignored_predictions`` (those not scored:
    ``{"unknown_video": n, "unknown_label": n, "total": n}``), ``classes_without_predictions``,
    ``deviations`` (the record's that apply to these units), ``units`` (those scored),
    ``snippets_per_second`` (the factor used in snippet units, else ``None``), ``notes``
    (what this input ran into) and ``seconds`` (wall time of the evaluation itself: reading
    and parsing the inputs is excluded).
    """
    rec = get_protocol(protocol)
    if tiou is None:
        tiou = rec.default_tiou
    thr = np.asarray([float(t) for t in tiou], dtype=np.float64)
    if thr.ndim != 1 or len(thr) == 0 or np.any(~(thr > 0)) or np.any(thr > 1):
        raise ValueError(f"tiou thresholds must be a non-empty list in (0, 1], got {tiou!r}")
    keys = [_tiou_key(t) for t in thr]
    if len(set(keys)) != len(keys):
        raise ValueError(f"duplicate tiou thresholds in {tiou!r}")
    if empty_class_bug and not rec.empty_class_bug:
        raise ValueError(f"the class-without-predictions bug is W-TALC's; protocol {rec.name!r} does not have it")
    if units is not None and units not in rec.units:
        raise ValueError(f"protocol {rec.name!r} scores segments in {' or '.join(rec.units)}, not {units!r}")
    if snippets_per_second is not None:
        snippets_per_second = check_snippets_per_second(snippets_per_second, "snippets_per_second")
    g = load_ground_truth(gt, subset=subset)
    p = load_predictions(preds)
    amb = load_ambiguous(ambiguous) if rec.ambiguous != "ignored" else {}
    if units is None:
        units = "snippets" if "snippets" in rec.units and p.snippets is not None else "seconds"
    rate = None
    if units == "snippets":
        rate = _snippet_rate(rec, p, snippets_per_second, preds)
        g, p, amb = _to_snippets(g, p, amb, rate, preds)
    t0 = time.perf_counter()  # evaluation time: file loading and parsing excluded

    # videos: the subset's, then the other predicted ones (unknown videos, each its own index)
    names = list(g.videos)
    vid_index = {v: i for i, v in enumerate(names)}
    for v in dict.fromkeys(p.video.tolist()):
        if v not in vid_index:
            vid_index[v] = len(names)
            names.append(v)
    p_vid = np.array([vid_index[v] for v in p.video], dtype=np.int64)
    has_gt = np.zeros(len(names), dtype=bool)
    has_gt[g.video] = True
    class_set = set(g.classes)
    known_label = np.array([lab in class_set for lab in p.label], dtype=bool)
    unknown_label = ~known_label
    unknown_video = known_label & ~has_gt[p_vid]
    scored = known_label & (has_gt[p_vid] | (rec.unknown_video == "false-positive"))
    amb_by_vid = {vid_index[v]: segs for v, segs in amb.items() if v in vid_index}
    video_rank = np.empty(len(names), dtype=np.int64)
    video_rank[np.array(sorted(range(len(names)), key=names.__getitem__), dtype=np.int64)] = np.arange(len(names))

    p_seg = np.stack([p.start, p.end], axis=1) if len(p.start) else np.zeros((0, 2))
    g_seg = np.stack([g.start, g.end], axis=1)
    scored_idx = np.flatnonzero(scored)
    p_by_cls = _group_index(p.label[scored_idx])
    g_by_cls = _group_index(g.label)
    ap_mat = np.zeros((len(g.classes), len(thr)))
    without: list[str] = []
    for c, name in enumerate(g.classes):
        pi = scored_idx[p_by_cls[name]] if name in p_by_cls else np.zeros(0, dtype=np.int64)
        gi = g_by_cls[name]
        data = _Class(p_vid[pi], p_seg[pi], p.score[pi], g.video[gi], g_seg[gi], len(names))
        if rec.match == "prediction-walk":
            ap_mat[c] = _activitynet_class(data, thr) if len(pi) else 0.0
            left = len(pi)
        elif rec.match == "prediction-first-fit":
            ap_mat[c], left = _wtalc_class(data, thr, amb_by_vid, range_iou if units == "snippets" else segment_iou)
        else:
            ap_mat[c] = _kit_class(rec, data, thr, amb_by_vid, video_rank)
            left = len(pi)
        if left == 0:
            without.append(name)
    if rec.class_order == "ground-truth-order":
        order = np.array([g.classes.index(x) for x in dict.fromkeys(g.label.tolist())], dtype=np.int64)
    else:
        order = np.arange(len(g.classes))
    m = 100.0 * _mean_over_classes(rec, ap_mat, order)
    notes = []
    if without and rec.empty_class_bug:
        what = ("has" if len(without) == 1 else "have") + " no predictions" + (
            " left after the ambiguous removal" if rec.ambiguous == "drop-all" else "")
        if empty_class_bug:
            m = np.zeros(len(thr))
            notes.append(f"mAP 0 at every tIoU, as {rec.title}'s code reports it (empty_class_bug): "
                         f"{', '.join(without)} {what}")
        else:
            notes.append(f"{rec.title}'s code would report mAP 0 at every tIoU here ({', '.join(without)} {what}); "
                         "empty_class_bug=True (--empty-class-bug) reproduces it")
    dropped_video = int(unknown_video.sum()) if rec.unknown_video == "dropped" else 0
    if unknown_video.any():
        notes.append(f"{int(unknown_video.sum())} prediction(s) on videos without ground truth in the subset: "
                     + ("false positives" if rec.unknown_video == "false-positive" else "dropped")
                     + f", as {rec.title}")
    mAP = {k: float(v) for k, v in zip(keys, m)}
    average: dict[str, float] = {}
    for rng in _AVERAGE_RANGES:
        lo, hi = (float(x) for x in rng.split(":"))
        need = [_tiou_key(x) for x in np.arange(round(lo * 10), round(hi * 10) + 1) / 10.0]
        if all(k in mAP for k in need):
            average[rng] = float(np.mean([mAP[k] for k in need]))
    return {
        "protocol": rec.name,
        "reference": rec.reference,
        "mAP": mAP,
        "average_mAP": average,
        "per_class_AP": {name: {k: float(100.0 * a) for k, a in zip(keys, ap_mat[c])}
                         for c, name in enumerate(g.classes)},
        "num_predictions": int(scored.sum()),
        "num_ground_truth": len(g.label),
        "unknown_video_predictions": int(unknown_video.sum()),
        "unknown_video_rule": rec.unknown_video,
        "ignored_predictions": {
            "unknown_video": dropped_video,
            "unknown_label": int(unknown_label.sum()),
            "total": dropped_video + int(unknown_label.sum()),
        },
        "classes_without_predictions": without,
        "deviations": list(rec.deviations) + (list(rec.seconds_deviations) if units == "seconds" else []),
        "units": units,
        "snippets_per_second": rate,
        "notes": notes,
        "seconds": time.perf_counter() - t0,
    }
