"""Snippet-feature datasets for weakly-supervised temporal action localization.

Every source of video features (the synthetic video benchmark, features extracted with
``hideseek action extract-features``, the public I3D layouts) is turned into one in-memory
form: a list of :class:`VideoFeatures`, one per video, and a :class:`FeatureDataset` over
them. Segments are in seconds; snippet ``t`` covers ``[t * stride_s, t * stride_s +
snippet_s)`` with ``stride_s`` the time between snippet starts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.utils.data import Dataset

__all__ = ["FeatureDataset", "Segment", "VideoFeatures", "check_features"]

LENGTH_TOLERANCE_SNIPPETS = 2
"""Snippets a feature file may lack against its video's duration: the trailing partial
snippet that extraction drops, plus one for frame-count rounding when resampling to the
feature frame rate (THUMOS14 I3D: 16-frame snippets at 25 fps)."""
LENGTH_TOLERANCE_FRACTION = 0.01
"""... plus this fraction of the duration: container durations and decoded frame counts differ."""


@dataclass(frozen=True)
class Segment:
    """One ground-truth action instance, in seconds."""

    start: float
    end: float
    label: str

    def __post_init__(self):
        if not (np.isfinite(self.start) and np.isfinite(self.end)) or self.start < 0 or self.end <= self.start:
            raise ValueError(f"segment [{self.start}, {self.end}] of {self.label!r}: expected 0 <= start < end")


@dataclass
class VideoFeatures:
    """Snippet features of one video and what is known about its actions.

    ``features`` is ``(T, D)`` float32; ``stride_s`` the seconds between snippet starts
    (16 frames at 25 fps: 0.64 s); ``labels`` the video-level class names (at least those
    of ``segments``); ``duration_s`` the video length when known.
    """

    video: str
    features: np.ndarray
    stride_s: float
    labels: tuple[str, ...] = ()
    segments: tuple[Segment, ...] = ()
    subset: str = "test"
    duration_s: float | None = None
    fps: float | None = None
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        feats = np.asarray(self.features)
        if feats.ndim != 2 or feats.shape[0] == 0:
            raise ValueError(f"video {self.video!r}: features must be (T, D) with T >= 1, got shape {feats.shape}")
        if not np.issubdtype(feats.dtype, np.floating):
            raise ValueError(f"video {self.video!r}: features must be floating point, got {feats.dtype}")
        if not self.stride_s > 0:
            raise ValueError(f"video {self.video!r}: stride_s must be > 0, got {self.stride_s}")
        self.features = feats.astype(np.float32, copy=False)
        self.labels = tuple(sorted(set(self.labels) | {s.label for s in self.segments}))
        self.segments = tuple(self.segments)

    @property
    def num_snippets(self) -> int:
        return int(self.features.shape[0])


def check_features(where: str, video: str, features: np.ndarray, stride_s: float,
                   duration_s: float | None) -> None:
    """Refuse features that would train and score silently wrong, naming ``where`` (the file).

    Every value must be finite (a NaN poisons the loss and every score). When the video's
    duration is known, the snippets must span it: ``T * stride_s`` may fall short of the
    duration by at most :data:`LENGTH_TOLERANCE_SNIPPETS` strides plus
    :data:`LENGTH_TOLERANCE_FRACTION` of the duration. A truncated feature file (or too
    small a ``stride_s``) otherwise trains on part of the video and scores its end's actions
    as missed. Features spanning more than the duration are left alone: detections are
    clipped to the duration, and public feature sets disagree with their metadata there.
    """
    feats = np.asarray(features)
    if np.issubdtype(feats.dtype, np.floating) and not np.isfinite(feats).all():
        bad = np.argwhere(~np.isfinite(feats))[0]
        raise ValueError(f"{where}: features of video {video!r} hold {feats[tuple(bad)]} (not finite) at snippet "
                         f"{bad[0]}, dimension {bad[-1]}")
    if duration_s is None or feats.ndim < 1:
        return
    try:
        duration = float(duration_s)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: duration of video {video!r} is {duration_s!r}, not a number") from None
    if not (np.isfinite(duration) and duration > 0):
        raise ValueError(f"{where}: duration of video {video!r} is {duration_s!r}, expected a positive number")
    length = int(feats.shape[0])
    covered = length * stride_s
    tolerance = LENGTH_TOLERANCE_SNIPPETS * stride_s + LENGTH_TOLERANCE_FRACTION * duration
    if duration - covered > tolerance:
        raise ValueError(f"{where}: {length} snippets x {stride_s:g} s = {covered:.2f} s, shorter than video "
                         f"{video!r} ({duration:g} s, about {duration / stride_s:.0f} snippets expected); "
                         "a truncated feature file or a wrong stride")


class FeatureDataset(Dataset):
    """Videos of one subset with a fixed class list; items are dicts of tensors.

    ``dataset[i]`` gives ``{"features": (T, D) float32, "labels": (C,) float32 multi-hot,
    "index": i}``; videos differ in T, so batch them with :meth:`collate` (zero padding and
    a ``mask``) or crop/sample to a fixed length first.
    """

    def __init__(self, videos: Sequence[VideoFeatures], classes: Sequence[str] | None = None):
        self.videos = list(videos)
        if not self.videos:
            raise ValueError("a feature dataset needs at least one video")
        names = sorted({lab for v in self.videos for lab in v.labels}) if classes is None else list(classes)
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate class names in {names!r}")
        self.classes = names
        self.class_index = {c: k for k, c in enumerate(names)}
        dims = {v.features.shape[1] for v in self.videos}
        if len(dims) != 1:
            raise ValueError(f"videos have different feature sizes: {sorted(dims)}")
        (self.feature_dim,) = dims
        for v in self.videos:
            unknown = [lab for lab in v.labels if lab not in self.class_index]
            if unknown:
                raise ValueError(f"video {v.video!r}: labels {unknown} are not in the class list")

    def __len__(self) -> int:
        return len(self.videos)

    def label_vector(self, video: VideoFeatures) -> torch.Tensor:
        out = torch.zeros(len(self.classes), dtype=torch.float32)
        for lab in video.labels:
            out[self.class_index[lab]] = 1.0
        return out

    def __getitem__(self, i: int) -> dict:
        v = self.videos[i]
        return {"features": torch.from_numpy(v.features), "labels": self.label_vector(v), "index": i}

    @staticmethod
    def collate(items: Sequence[dict]) -> dict:
        """Pad to the longest video: ``features (B, T, D)``, ``mask (B, T)`` True on real snippets."""
        length = max(it["features"].shape[0] for it in items)
        dim = items[0]["features"].shape[1]
        feats = torch.zeros(len(items), length, dim, dtype=torch.float32)
        mask = torch.zeros(len(items), length, dtype=torch.bool)
        for b, it in enumerate(items):
            t = it["features"].shape[0]
            feats[b, :t] = it["features"]
            mask[b, :t] = True
        return {
            "features": feats,
            "mask": mask,
            "labels": torch.stack([it["labels"] for it in items]),
            "index": torch.tensor([it["index"] for it in items], dtype=torch.long),
        }

    def ground_truth(self) -> dict:
        """The videos' segments as ActivityNet-style GT, for :func:`hideseek.action.protocols.evaluate`."""
        database = {}
        for v in self.videos:
            entry = {
                "subset": v.subset,
                "annotations": [{"segment": [s.start, s.end], "label": s.label} for s in v.segments],
            }
            if v.duration_s is not None:
                entry["duration"] = v.duration_s
            database[v.video] = entry
        return {"database": database}
