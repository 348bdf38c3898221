"""THUMOS14 annotations and precomputed I3D features, in the layouts the field publishes.

Three sources, each turned into the common form (:class:`~hideseek.action.dataset.VideoFeatures`
with labels, segments in seconds, subset, ``stride_s`` and ``duration_s``):

* raw THUMOS14 temporal annotations (:func:`read_thumos14_annotations`): one text file per
  class, ``<Class>_val.txt`` / ``<Class>_test.txt`` (the folder ``annotation/`` of
  ``TH14_Temporal_annotations_{validation,test}.zip``), one instance per line as
  ``video_name start end`` in seconds (whitespace separated; the files use two spaces after
  the name), plus ``Ambiguous_val.txt`` / ``Ambiguous_test.txt`` in the same format.
  Every CliffDiving instance is also a Diving instance in these files; both are kept, as the
  official kit keeps them. :func:`thumos14_ground_truth` writes them as the ActivityNet-style
  JSON that :func:`hideseek.action.protocols.evaluate` reads.
* the layout shared by BaS-Net, CoLA and ASL (:func:`load_split_features`)::

      root/gt.json                       {"database": {vid: {"subset", "duration"?, "annotations"}}}
      root/split_train.txt, split_test.txt   one video name per line
      root/features/{train,test}/{rgb,flow}/<vid>.npy   (T, 1024) float each

  ``modality="both"`` concatenates RGB then flow (2048-d), as those loaders do.
* the single-file W-TALC layout (:func:`load_wtalc_features`)::

      root/Thumos14reduced-I3D-JOINTFeatures.npy      object array (N,) of (T_i, 2048) float
      root/Thumos14reduced-Annotations/
          videoname.npy   |S24 bytes (N,)         subset.npy     |S10 bytes (N,) validation|test
          classlist.npy   |S17 bytes (20,)        duration.npy   float64 (N, 1) seconds
          segments.npy    object (N,) of lists of [start, end] seconds
          labels.npy      object (N,) of lists of class names, one per segment
          labels_all.npy  object (N,) of lists of video-level class names
          original_fps.npy float64 (N,)           Ambiguous_test.txt (video  start end)

  The joint features hold RGB in columns 0-1023 and flow in 1024-2047. ``labels_all`` is
  what W-TALC trains on; it omits, for a few videos, a class that ``labels`` gives a segment
  of (CricketShot in several CricketBowling videos), so the video labels here are the union
  of both (:class:`VideoFeatures` always includes its segments' classes).

I3D features on THUMOS14 are 16-frame snippets at 25 fps: one snippet per 0.64 s
(:data:`I3D_STRIDE_S`). Bad input raises an error that names the file (and line or index).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hideseek.action.choices import MODALITIES
from hideseek.action.dataset import FeatureDataset, Segment, VideoFeatures, check_features
from hideseek.action.safe_npy import load_npy
from hideseek.inputs import read_json, read_lines

__all__ = [
    "I3D_STRIDE_S",
    "THUMOS14_BROKEN_TEST_VIDEOS",
    "THUMOS14_CLASSES",
    "FeatureSplit",
    "VideoAnnotation",
    "load_split_features",
    "load_wtalc_features",
    "read_activitynet_annotations",
    "read_thumos14_annotations",
    "read_wtalc_annotations",
    "thumos14_ground_truth",
    "to_activitynet",
]

PathLike = str | os.PathLike

I3D_STRIDE_S = 16 / 25
"""Seconds between snippet starts of the public THUMOS14 I3D features (16 frames at 25 fps)."""

THUMOS14_CLASSES = (
    "BaseballPitch", "BasketballDunk", "Billiards", "CleanAndJerk", "CliffDiving",
    "CricketBowling", "CricketShot", "Diving", "FrisbeeCatch", "GolfSwing",
    "HammerThrow", "HighJump", "JavelinThrow", "LongJump", "PoleVault",
    "Shotput", "SoccerPenalty", "TennisSwing", "ThrowDiscus", "VolleyballSpiking",
)  # fmt: skip
"""The 20 THUMOS14 detection classes, in the order of the official class index."""

THUMOS14_BROKEN_TEST_VIDEOS = ("video_test_0000270", "video_test_0001292", "video_test_0001496")
"""Test videos usually left out: 270's annotations run far past its end (to 713 s of a
176 s video), 1292 has only Ambiguous segments, 1496 is the third commonly excluded as
mis-annotated. Without them 210 of the 212 annotated test videos remain."""

_SUBSET_SUFFIX = {"test": "test", "validation": "val", "val": "val"}
_SUBSET_NAME = {"test": "test", "validation": "validation", "val": "validation"}


# ------------------------------------------------------------------------- data model


@dataclass
class VideoAnnotation:
    """What a ground truth knows about one video: subset, segments in seconds, duration."""

    video: str
    subset: str
    segments: tuple[Segment, ...] = ()
    duration_s: float | None = None
    labels: tuple[str, ...] = ()  # video-level labels beyond those of the segments

    @property
    def all_labels(self) -> tuple[str, ...]:
        return tuple(sorted(set(self.labels) | {s.label for s in self.segments}))


@dataclass
class FeatureSplit:
    """Videos of one subset loaded from a feature source, with what evaluation needs.

    ``classes`` is the source's full class list (the same for every subset, so a model
    trained on one split indexes the classes of another the same way); ``ambiguous`` maps a
    video to its ``(K, 2)`` Ambiguous segments in seconds (empty when the source has none)
    and can be passed as ``ambiguous=`` to :func:`hideseek.action.protocols.evaluate`.
    """

    videos: list[VideoFeatures]
    classes: list[str]
    ambiguous: dict[str, np.ndarray] = field(default_factory=dict)
    source: str = ""

    def dataset(self) -> FeatureDataset:
        return FeatureDataset(self.videos, classes=self.classes)

    def ground_truth(self) -> dict:
        """ActivityNet-style GT of these videos (``{"database": ...}``)."""
        return self.dataset().ground_truth()

    def __len__(self) -> int:
        return len(self.videos)


def _segment(start: Any, end: Any, label: str, where: str) -> Segment:
    try:
        s, e = float(start), float(end)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: segment times {start!r}, {end!r} are not numbers") from None
    try:
        return Segment(s, e, label)
    except ValueError as err:
        raise ValueError(f"{where}: {err}") from None


def _subset_name(subset: str) -> str:
    if subset not in _SUBSET_NAME:
        raise ValueError(f"unknown THUMOS14 subset {subset!r}: expected 'test' or 'validation' (or 'val')")
    return _SUBSET_NAME[subset]


def to_activitynet(annotations: Mapping[str, VideoAnnotation], version: str = "THUMOS14") -> dict:
    """ActivityNet-style GT JSON (``{"version", "database"}``) from per-video annotations."""
    database = {}
    for vid, ann in annotations.items():
        entry: dict[str, Any] = {
            "subset": ann.subset,
            "annotations": [{"segment": [s.start, s.end], "label": s.label} for s in ann.segments],
        }
        if ann.duration_s is not None:
            entry["duration"] = ann.duration_s
        database[vid] = entry
    return {"version": version, "database": database}


# ----------------------------------------------------------------- ActivityNet-style GT


def read_activitynet_annotations(
    src: PathLike | Mapping[str, Any], subset: str | None = None
) -> dict[str, VideoAnnotation]:
    """Per-video annotations of an ActivityNet-style GT (path or parsed dict), in file order.

    ``subset=None`` keeps every video. Extra keys (``segment(frames)``, ``label_id``, ``url``,
    ...) are ignored; a missing ``label``, a malformed or reversed segment, a non-numeric
    duration raise ``ValueError`` naming the file and video.
    """
    name = os.fspath(src) if isinstance(src, (str, os.PathLike)) else "ground truth"
    if isinstance(src, Mapping):
        data = src
    else:
        if not Path(src).exists():
            raise FileNotFoundError(f"ground-truth file not found: {name}")
        data = read_json(src, expect=dict, what="ground-truth file")
    database = data.get("database") if isinstance(data, Mapping) else None
    if not isinstance(database, Mapping):
        raise ValueError(f"{name}: expected an ActivityNet-style object with a 'database' mapping")
    out: dict[str, VideoAnnotation] = {}
    for vid, entry in database.items():
        where = f"{name}: video {vid!r}"
        if not isinstance(entry, Mapping):
            raise ValueError(f"{where}: entry is a {type(entry).__name__}, not an object")
        entry_subset = str(entry.get("subset", ""))
        if subset is not None and entry_subset != subset:
            continue
        segments = []
        for k, ann in enumerate(entry.get("annotations") or []):
            if not isinstance(ann, Mapping) or "label" not in ann:
                raise ValueError(f"{where}: annotation {k} has no 'label'")
            seg = ann.get("segment")
            if not isinstance(seg, (list, tuple)) or len(seg) != 2:
                raise ValueError(f"{where}: annotation {k} segment {seg!r} is not [start, end]")
            segments.append(_segment(seg[0], seg[1], str(ann["label"]), f"{where} annotation {k}"))
        duration = entry.get("duration")
        if duration is not None:
            try:
                duration = float(duration)
            except (TypeError, ValueError):
                raise ValueError(f"{where}: duration {duration!r} is not a number") from None
        out[str(vid)] = VideoAnnotation(str(vid), entry_subset, tuple(segments), duration)
    return out


# --------------------------------------------------------------- raw THUMOS14 text files


def _read_segment_lines(path: Path, label: str | None) -> list[tuple[str, Segment | tuple[float, float]]]:
    rows = []
    for n, line in enumerate(read_lines(path, "THUMOS14 annotation file"), 1):
        text = line.strip()
        if not text:
            continue
        parts = text.split()
        if len(parts) != 3:
            raise ValueError(f"{path}:{n}: expected 'video_name start end', got {text!r}")
        vid, start, end = parts
        seg = _segment(start, end, label or "Ambiguous", f"{path}:{n}")
        rows.append((vid, seg))
    return rows


def _annotation_dir(annot_dir: Path, suffix: str) -> Path:
    if not annot_dir.is_dir():
        raise FileNotFoundError(f"annotation folder not found: {annot_dir}")
    if not any(annot_dir.glob(f"*_{suffix}.txt")) and (annot_dir / "annotation").is_dir():
        annot_dir = annot_dir / "annotation"  # the unzipped TH14_Temporal_annotations_* folder
    return annot_dir


def read_thumos14_annotations(
    annot_dir: PathLike,
    subset: str = "test",
    *,
    exclude: Iterable[str] = (),
    classes: Sequence[str] | None = THUMOS14_CLASSES,
) -> tuple[dict[str, VideoAnnotation], dict[str, np.ndarray]]:
    """Read the per-class THUMOS14 text files of one subset.

    ``annot_dir`` holds ``<Class>_test.txt`` (or ``_val.txt`` for ``subset="validation"``)
    and ``Ambiguous_<suffix>.txt``, or is the unzipped folder holding them in ``annotation/``.
    Returns ``(annotations, ambiguous)``: annotations per video (videos sorted by name, each
    video's segments in class-file order then line order, the order the official kit reads
    them), and the Ambiguous segments per video as ``(K, 2)`` arrays. Videos named in
    ``exclude`` are left out of both (see :data:`THUMOS14_BROKEN_TEST_VIDEOS`). A class file
    whose name is not in ``classes`` (``None`` accepts any), a missing class, or a malformed
    line raise ``ValueError`` naming the file (and line).
    """
    subset_name = _subset_name(subset)
    suffix = _SUBSET_SUFFIX[subset]
    folder = _annotation_dir(Path(annot_dir), suffix)
    pattern = re.compile(rf"^(?P<cls>.+)_{suffix}\.txt$")
    files = sorted(p for p in folder.iterdir() if p.is_file() and pattern.match(p.name))
    class_files = [p for p in files if pattern.match(p.name)["cls"] != "Ambiguous"]
    if not class_files:
        raise FileNotFoundError(f"{folder}: no THUMOS14 annotation files '<Class>_{suffix}.txt' found")
    found = [pattern.match(p.name)["cls"] for p in class_files]
    if classes is not None:
        unknown = [p for p, c in zip(class_files, found) if c not in classes]
        if unknown:
            raise ValueError(f"{unknown[0]}: class {pattern.match(unknown[0].name)['cls']!r} is not a THUMOS14 "
                             f"class (expected one of {', '.join(classes)})")
        missing = [c for c in classes if c not in found]
        if missing:
            raise ValueError(f"{folder}: no annotation file for class(es) {', '.join(missing)} "
                             f"(expected {missing[0]}_{suffix}.txt)")
    skip = set(exclude)
    per_video: dict[str, list[Segment]] = {}
    for path, cls in zip(class_files, found):
        for vid, seg in _read_segment_lines(path, cls):
            if vid not in skip:
                per_video.setdefault(vid, []).append(seg)
    annotations = {
        vid: VideoAnnotation(vid, subset_name, tuple(per_video[vid])) for vid in sorted(per_video)
    }
    ambiguous: dict[str, list[tuple[float, float]]] = {}
    amb_path = folder / f"Ambiguous_{suffix}.txt"
    if amb_path.is_file():
        for vid, seg in _read_segment_lines(amb_path, None):
            if vid not in skip:
                ambiguous.setdefault(vid, []).append((seg.start, seg.end))
    return annotations, {v: np.array(s, dtype=np.float64) for v, s in ambiguous.items()}


def thumos14_ground_truth(
    annot_dir: PathLike, subset: str = "test", *, exclude_broken: bool = False
) -> tuple[dict, dict[str, np.ndarray]]:
    """Raw THUMOS14 annotations of one subset as ActivityNet-style GT, and their Ambiguous segments.

    ``exclude_broken`` leaves out :data:`THUMOS14_BROKEN_TEST_VIDEOS`.
    """
    exclude = THUMOS14_BROKEN_TEST_VIDEOS if exclude_broken else ()
    annotations, ambiguous = read_thumos14_annotations(annot_dir, subset, exclude=exclude)
    return to_activitynet(annotations), ambiguous


# ------------------------------------------------------------- BaS-Net / CoLA / ASL layout


def _load_matrix(path: Path) -> np.ndarray:
    if not path.is_file():
        raise FileNotFoundError(f"feature file not found: {path}")
    try:
        arr = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise ValueError(f"{path}: not a readable .npy array ({err})") from None
    if arr.ndim != 2 or arr.shape[0] == 0 or not np.issubdtype(arr.dtype, np.floating):
        raise ValueError(f"{path}: expected a (T, D) float array with T >= 1, got {arr.dtype} {arr.shape}")
    return arr


def _read_split(path: Path) -> list[str]:
    if not path.is_file():
        raise FileNotFoundError(f"split file not found: {path}")
    names: list[str] = []
    seen: dict[str, int] = {}
    for n, line in enumerate(read_lines(path, "split file"), 1):
        vid = line.strip()
        if not vid:
            continue
        if len(vid.split()) != 1:
            raise ValueError(f"{path}:{n}: expected one video name per line, got {vid!r}")
        if vid in seen:
            raise ValueError(f"{path}:{n}: video {vid!r} listed twice (first on line {seen[vid]})")
        seen[vid] = n
        names.append(vid)
    if not names:
        raise ValueError(f"{path}: no video names")
    return names


def _class_list(annotations: Iterable[VideoAnnotation], classes: Sequence[str] | None, where: str) -> list[str]:
    labels = {lab for ann in annotations for lab in ann.all_labels}
    if classes is None:
        classes = THUMOS14_CLASSES if labels <= set(THUMOS14_CLASSES) else sorted(labels)
    classes = list(classes)
    unknown = sorted(labels - set(classes))
    if unknown:
        raise ValueError(f"{where}: labels {unknown} are not in the class list {classes}")
    return classes


def _filter_ambiguous(ambiguous: Mapping[str, np.ndarray] | None, videos: Iterable[str]) -> dict[str, np.ndarray]:
    if not ambiguous:
        return {}
    keep = set(videos)
    return {v: np.asarray(s, dtype=np.float64).reshape(-1, 2) for v, s in ambiguous.items() if v in keep}


def load_split_features(
    root: PathLike,
    split: str = "test",
    modality: str = "both",
    *,
    stride_s: float = I3D_STRIDE_S,
    classes: Sequence[str] | None = None,
    ambiguous: PathLike | Mapping[str, Any] | None = None,
    exclude: Iterable[str] = (),
) -> FeatureSplit:
    """Load the BaS-Net/CoLA/ASL layout: ``gt.json``, ``split_<split>.txt``, ``features/<split>/``.

    ``split`` is the folder name (``"train"`` for the validation videos, ``"test"``);
    ``modality`` is ``"rgb"``, ``"flow"`` or ``"both"`` (RGB then flow, concatenated). Each
    video's subset is the one ``gt.json`` gives it. ``duration_s`` is ``gt.json``'s
    ``duration`` where present, else the time the snippets span (``T * stride_s``).
    ``classes`` defaults to the THUMOS14 classes when every label is one of them, else to the
    sorted labels of the whole ``gt.json``. ``ambiguous`` (an ``Ambiguous_test.txt`` or a
    mapping) is kept for the protocols. Errors name the file: a video of the split file not
    in ``gt.json``, a missing feature file, RGB and flow of different lengths.
    """
    from hideseek.action.protocols import load_ambiguous

    root = Path(root)
    if modality not in MODALITIES:
        raise ValueError(f"modality must be 'rgb', 'flow' or 'both', got {modality!r}")
    gt_path = root / "gt.json"
    annotations = read_activitynet_annotations(gt_path)
    class_list = _class_list(annotations.values(), classes, str(gt_path))
    split_path = root / f"split_{split}.txt"
    skip = set(exclude)
    names = [v for v in _read_split(split_path) if v not in skip]
    missing = [v for v in names if v not in annotations]
    if missing:
        raise ValueError(f"{split_path}: {len(missing)} video(s) not in {gt_path}, e.g. {missing[:3]}")
    feat_dir = root / "features" / split
    if not feat_dir.is_dir():
        raise FileNotFoundError(f"feature folder not found: {feat_dir} (expected features/{split}/{{rgb,flow}}/)")
    videos = []
    for vid in names:
        ann = annotations[vid]
        parts = []
        for mod in ("rgb", "flow") if modality == "both" else (modality,):
            parts.append((feat_dir / mod / f"{vid}.npy", _load_matrix(feat_dir / mod / f"{vid}.npy")))
        if len(parts) == 2 and parts[0][1].shape[0] != parts[1][1].shape[0]:
            (p0, a0), (p1, a1) = parts
            raise ValueError(f"feature length mismatch for video {vid!r}: {p0} has {a0.shape[0]} snippets, "
                             f"{p1} has {a1.shape[0]}")
        feats = np.concatenate([a for _, a in parts], axis=1) if len(parts) == 2 else parts[0][1]
        for path, arr in parts:
            check_features(str(path), vid, arr, stride_s, ann.duration_s)
        duration = ann.duration_s if ann.duration_s is not None else feats.shape[0] * stride_s
        videos.append(VideoFeatures(video=vid, features=feats, stride_s=stride_s, labels=ann.all_labels,
                                    segments=ann.segments, subset=ann.subset, duration_s=duration,
                                    extra={"modality": modality}))
    amb = load_ambiguous(ambiguous) if ambiguous is not None else {}
    return FeatureSplit(videos, class_list, _filter_ambiguous(amb, names), source=f"{root} ({split}, {modality})")


# ---------------------------------------------------------------------- W-TALC layout


def _text_array(path: Path, values: np.ndarray) -> list[str]:
    if values.ndim != 1:
        raise ValueError(f"{path}: expected a 1-D array of names, got shape {values.shape}")
    out = []
    for k, v in enumerate(values.tolist()):
        if isinstance(v, bytes):
            try:
                v = v.decode("utf-8")
            except UnicodeDecodeError:
                raise ValueError(f"{path}: entry {k} {v!r} is not UTF-8 text") from None
        if not isinstance(v, str):
            raise ValueError(f"{path}: expected names (bytes or str), got {type(v).__name__}")
        out.append(v)
    return out


def _npy(path: Path) -> np.ndarray:
    """A W-TALC array; object arrays are unpickled without running code (:mod:`hideseek.action.safe_npy`)."""
    if not path.is_file():
        raise FileNotFoundError(f"W-TALC file not found: {path}")
    return load_npy(path, encoding="bytes")


def _name_list(path: Path, item: Any, where: str) -> list[str]:
    if isinstance(item, np.ndarray):
        item = item.tolist()
    if not isinstance(item, (list, tuple)):
        raise ValueError(f"{where}: expected a list of class names, got {type(item).__name__}")
    return [x.decode("utf-8") if isinstance(x, bytes) else str(x) for x in item]


def read_wtalc_annotations(
    annotation_dir: PathLike, subset: str | None = None
) -> tuple[list[int], dict[str, VideoAnnotation], list[str], dict[str, np.ndarray]]:
    """Read a W-TALC ``*-Annotations`` folder.

    Returns ``(rows, annotations, classlist, ambiguous)``: the row of each kept video in the
    arrays (and the joint feature file), its annotations (video labels from ``labels_all``
    plus the segments' labels), the class list, and ``Ambiguous_test.txt`` as ``(K, 2)``
    arrays per video (empty if the file is absent). ``subset`` (``"test"``,
    ``"validation"``) keeps one subset; ``None`` keeps all.
    """
    from hideseek.action.protocols import load_ambiguous

    folder = Path(annotation_dir)
    if not folder.is_dir():
        raise FileNotFoundError(f"W-TALC annotation folder not found: {folder}")
    p = {k: folder / f"{k}.npy" for k in ("videoname", "subset", "classlist", "segments", "labels", "labels_all",
                                           "duration")}
    names = _text_array(p["videoname"], _npy(p["videoname"]))
    subsets = _text_array(p["subset"], _npy(p["subset"]))
    classlist = _text_array(p["classlist"], _npy(p["classlist"]))
    segments = _npy(p["segments"])
    labels = _npy(p["labels"])
    labels_all = _npy(p["labels_all"])
    duration = _npy(p["duration"])
    n = len(names)
    for key, arr in (("subset", subsets), ("segments", segments), ("labels", labels), ("labels_all", labels_all),
                     ("duration", duration)):
        if len(arr) != n:
            raise ValueError(f"{p[key]}: {len(arr)} entries, but {p['videoname']} names {n} videos")
    duration = np.asarray(duration, dtype=np.float64).reshape(n, -1)[:, 0]
    if len(set(names)) != n:
        raise ValueError(f"{p['videoname']}: duplicate video names")
    known = set(classlist)
    keep_subset = None if subset is None else _subset_name(subset)
    rows, annotations = [], {}
    for i, vid in enumerate(names):
        if keep_subset is not None and subsets[i] != keep_subset:
            continue
        segs = segments[i].tolist() if isinstance(segments[i], np.ndarray) else segments[i]
        labs = _name_list(p["labels"], labels[i], f"{p['labels']} row {i} ({vid})")
        video_labels = _name_list(p["labels_all"], labels_all[i], f"{p['labels_all']} row {i} ({vid})")
        if len(segs) != len(labs):
            raise ValueError(f"{p['segments']} row {i} ({vid}): {len(segs)} segments but {p['labels']} gives "
                             f"{len(labs)} labels")
        for key, group in (("labels", labs), ("labels_all", video_labels)):
            bad = sorted(set(group) - known)
            if bad:
                raise ValueError(f"{p[key]} row {i} ({vid}): unknown class(es) {bad}, not in {p['classlist']}")
        seg_objs = []
        for k, (seg, lab) in enumerate(zip(segs, labs)):
            if not isinstance(seg, (list, tuple, np.ndarray)) or len(seg) != 2:
                raise ValueError(f"{p['segments']} row {i} ({vid}) segment {k}: {seg!r} is not [start, end]")
            seg_objs.append(_segment(seg[0], seg[1], lab, f"{p['segments']} row {i} ({vid}) segment {k}"))
        dur = float(duration[i]) if math.isfinite(duration[i]) else None
        rows.append(i)
        annotations[vid] = VideoAnnotation(vid, subsets[i], tuple(seg_objs), dur, labels=tuple(video_labels))
    amb_path = folder / "Ambiguous_test.txt"
    ambiguous = load_ambiguous(amb_path) if amb_path.is_file() else {}
    return rows, annotations, classlist, _filter_ambiguous(ambiguous, annotations)


def load_wtalc_features(
    root: PathLike,
    subset: str | None = "test",
    *,
    dataset_name: str = "Thumos14reduced",
    annotation_dir: PathLike | None = None,
    stride_s: float = I3D_STRIDE_S,
    exclude: Iterable[str] = (),
) -> FeatureSplit:
    """Load W-TALC's ``<dataset_name>-I3D-JOINTFeatures.npy`` with its annotation folder.

    ``root`` holds the feature file and ``<dataset_name>-Annotations/`` (or pass
    ``annotation_dir``). ``subset``: ``"test"``, ``"validation"`` or ``None`` (all). The
    feature file is a pickled object array (written by Python 2, hence ``encoding="bytes"``; read
    without running code, see :mod:`hideseek.action.safe_npy`),
    row ``i`` being video ``i`` of ``videoname.npy``. Errors name the file: a row count that
    differs from ``videoname.npy``, a row that is not ``(T, D)`` float, rows of different
    ``D``, an unknown class.
    """
    root = Path(root)
    ann_dir = Path(annotation_dir) if annotation_dir is not None else root / f"{dataset_name}-Annotations"
    rows, annotations, classlist, ambiguous = read_wtalc_annotations(ann_dir, subset)
    names_path = ann_dir / "videoname.npy"
    feat_path = root / f"{dataset_name}-I3D-JOINTFeatures.npy"
    feats = _npy(feat_path)
    n_names = len(_text_array(names_path, _npy(names_path)))
    if feats.ndim == 0 or len(feats) != n_names:
        count = 0 if feats.ndim == 0 else len(feats)
        raise ValueError(f"feature length mismatch: {feat_path} has {count} videos, {names_path} names {n_names}")
    skip = set(exclude)
    videos = []
    for i, (vid, ann) in zip(rows, annotations.items()):
        if vid in skip:
            continue
        row = np.asarray(feats[i])
        if row.ndim != 2 or row.shape[0] == 0 or not np.issubdtype(row.dtype, np.floating):
            raise ValueError(f"{feat_path} row {i} ({vid}): expected (T, D) float features, "
                             f"got {row.dtype} {row.shape}")
        if videos and row.shape[1] != videos[0].features.shape[1]:
            raise ValueError(f"{feat_path} row {i} ({vid}): {row.shape[1]} features per snippet, earlier rows have "
                             f"{videos[0].features.shape[1]}")
        check_features(f"{feat_path} row {i}", vid, row, stride_s, ann.duration_s)
        duration = ann.duration_s if ann.duration_s is not None else row.shape[0] * stride_s
        videos.append(VideoFeatures(video=vid, features=row, stride_s=stride_s, labels=ann.all_labels,
                                    segments=ann.segments, subset=ann.subset, duration_s=duration,
                                    extra={"row": i}))
    if not videos:
        raise ValueError(f"{ann_dir}: no videos in subset {subset!r}")
    kept = [v.video for v in videos]
    return FeatureSplit(videos, classlist, _filter_ambiguous(ambiguous, kept), source=f"{feat_path} ({subset})")
