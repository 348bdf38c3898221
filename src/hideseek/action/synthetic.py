"""Synthetic untrimmed-video benchmark: actions that last longer than their telling moments.

The video analogue of the image benchmark's "part and body"
(:mod:`hideseek.localization.data.synthetic`). Every video is a pure function of
``(seed, split, index)``; it is written as a lossless mp4 with PyAV
(:func:`~hideseek.action.video.write_test_video`), read back with decord
(:class:`~hideseek.action.video.VideoReader`), and turned into snippet features by a
cheap deterministic per-frame descriptor (:func:`frame_descriptors`) averaged per snippet,
so the whole path mp4 -> decord -> snippet features -> model runs end to end on a CPU.

What a video holds (grey, muted background throughout):

* **Background**: a static muted-colour texture, slow brightness drift, per-frame noise,
  two slowly moving muted blobs, and grey **decoy flashes** (bright or dark discs for a
  few frames) at random times. None of it carries class information.
* **Action instances** (1 to ``max_instances`` per video, one class per video, GT
  segments exact, in seconds, aligned to frame starts): during the whole instance a
  soft-edged patch shows a drifting grey grating whose orientation encodes the class
  (``pi * c / K`` plus jitter; random in ``random_body`` of the instances). This is the
  **body**: weak but real class evidence over the full extent of the action.
* Inside each instance, for ``burst_s`` seconds, a saturated disc whose hue alone names
  the class: the **telling moment**. Nothing else in the video is saturated.

A classifier trained from video labels can rely on the short burst alone; temporal CAMs
then light up the burst rather than the action, which is what hiding snippets addresses.

Written layout (``<cache>/synthetic-video/<hash12>/``, under a file lock, with a partial
marker so an interrupted write is redone; the cache key includes this file's digest)::

    benchmark.json              config, hash, generator version, classes, stride (last)
    gt.json                     ActivityNet-style GT: subset, duration, fps, annotations,
                                plus "telling": the burst segments (not used by scoring)
    videos/<vid>.mp4            lossless H.264 RGB
    features/<vid>.npy          (T, D) float32 snippet features from the decoded frames

``features/`` + ``gt.json`` is the simple feature layout that ``hideseek action train
--dataset features`` reads as well.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from hideseek.action.dataset import Segment, VideoFeatures
from hideseek.engine import ConfigDict

__all__ = [
    "GENERATOR_VERSION",
    "SPLITS",
    "SyntheticVideo",
    "SyntheticVideoConfig",
    "config_hash",
    "frame_descriptors",
    "render_video",
    "snippet_features",
    "write_benchmark",
]

GENERATOR_VERSION = 1
SPLITS = ("train", "test")
_SPLIT_CODE = {"train": 0, "test": 1}
INFO_FILE = "benchmark.json"
PARTIAL_FILE = ".writing"
HUE_BINS = 12
ORIENTATION_BINS = 8
FEATURE_DIM = HUE_BINS + ORIENTATION_BINS + 4


@dataclass(frozen=True)
class SyntheticVideoConfig(ConfigDict):
    """Size and content of the synthetic video benchmark (times in seconds)."""

    num_classes: int = 4
    train: int = 96
    test: int = 48
    size: int = 64
    fps: float = 8.0
    snippet: int = 4
    min_duration_s: float = 22.0
    max_duration_s: float = 30.0
    max_instances: int = 3
    min_action_s: float = 3.0
    max_action_s: float = 6.0
    burst_s: tuple[float, float] = (0.5, 1.0)
    body_contrast: float = 0.1
    body_jitter: float = 0.3
    random_body: float = 0.2
    decoys: tuple[int, int] = (2, 5)
    seed: int = 0

    def __post_init__(self):
        object.__setattr__(self, "burst_s", tuple(float(v) for v in self.burst_s))
        object.__setattr__(self, "decoys", tuple(int(v) for v in self.decoys))
        if self.num_classes < 1 or self.train < 1 or self.test < 1:
            raise ValueError("num_classes, train and test must be >= 1")
        if self.size < 32 or self.size % 32:
            raise ValueError(f"size must be a multiple of 32 (decord decodes those widths), got {self.size}")
        if not self.fps > 0 or self.snippet < 1:
            raise ValueError("fps must be > 0 and snippet >= 1")
        if not 0 < self.min_action_s <= self.max_action_s:
            raise ValueError("need 0 < min_action_s <= max_action_s")
        if not 0 < self.burst_s[0] <= self.burst_s[1] <= self.min_action_s:
            raise ValueError("burst_s must be (lo, hi) with 0 < lo <= hi <= min_action_s")
        need = self.max_instances * (self.max_action_s + 1.0) + 1.0
        if self.min_duration_s < need or self.max_duration_s < self.min_duration_s:
            raise ValueError(f"min_duration_s must be >= {need} s to fit {self.max_instances} instances "
                             "and max_duration_s >= min_duration_s")

    @property
    def stride_s(self) -> float:
        return self.snippet / self.fps

    @property
    def classes(self) -> list[str]:
        return [f"action{c}" for c in range(self.num_classes)]

    def count(self, split: str) -> int:
        return {"train": self.train, "test": self.test}[split]

    _tuple_fields = ("burst_s",)
    _config_name = "synthetic video"


@lru_cache(maxsize=1)
def _generator_digest() -> str:
    """Digest of this file: a cached benchmark is never stale with respect to its generator."""
    return hashlib.sha256(Path(__file__).read_bytes()).hexdigest()


def config_hash(config: SyntheticVideoConfig) -> str:
    text = json.dumps({"version": GENERATOR_VERSION, "source": _generator_digest(), **config.to_dict()},
                      sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def video_id(split: str, index: int) -> str:
    return f"{split}_{index:05d}"


def _rng(config: SyntheticVideoConfig, split: str, index: int) -> np.random.Generator:
    return np.random.default_rng([config.seed, _SPLIT_CODE[split], index, GENERATOR_VERSION])


def _labels(config: SyntheticVideoConfig, split: str) -> np.ndarray:
    """Balanced class per video (a seeded permutation of ``index mod K``)."""
    n = config.count(split)
    rng = np.random.default_rng([config.seed, _SPLIT_CODE[split], 0xC1A55])
    return rng.permutation(np.arange(n) % config.num_classes)


def _hsv_to_rgb(h: float, s: float, v: float) -> np.ndarray:
    i = int(h * 6.0) % 6
    f = h * 6.0 - math.floor(h * 6.0)
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    return np.array([(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i], dtype=np.float32)


def _place_instances(rng: np.random.Generator, config: SyntheticVideoConfig, n_frames: int) -> list[tuple[int, int]]:
    """Non-overlapping action frame ranges ``[i0, i1)`` with >= 1 s gaps and margins."""
    fps = config.fps
    count = int(rng.integers(1, config.max_instances + 1))
    lengths = [int(round(rng.uniform(config.min_action_s, config.max_action_s) * fps)) for _ in range(count)]
    gap = int(math.ceil(fps))
    free = max(0, n_frames - sum(lengths) - gap * (count + 1))
    cuts = np.sort(rng.integers(0, free + 1, size=count))  # extra space before each instance
    out, pos, used = [], gap, 0
    for length, cut in zip(lengths, cuts):
        pos += int(cut) - used
        used = int(cut)
        out.append((pos, pos + length))
        pos += length + gap
    return out


def render_video(config: SyntheticVideoConfig, split: str, index: int) -> dict:
    """Frames ``uint8 (N, S, S, 3)``, the label, GT and burst frame ranges of one video."""
    rng = _rng(config, split, index)
    label = int(_labels(config, split)[index])
    size, fps = config.size, config.fps
    n = int(round(rng.uniform(config.min_duration_s, config.max_duration_s) * fps))
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)

    # background: muted texture (low-res noise upsampled), drift, noise, moving blobs
    cells = size // 16 + 1
    low = rng.uniform(0.35, 0.65, size=(cells, cells))
    at = np.linspace(0, cells - 1, size)
    rows = np.stack([np.interp(at, np.arange(cells), low[:, j]) for j in range(cells)], axis=1)
    tex = np.stack([np.interp(at, np.arange(cells), rows[i]) for i in range(size)]).astype(np.float32)
    tint = rng.uniform(-0.12, 0.12, size=3).astype(np.float32)
    frames = np.repeat((tex[:, :, None] * (1 + tint))[None], n, axis=0)
    drift = 0.05 * np.sin(2 * np.pi * (np.arange(n) / n * rng.uniform(0.5, 2) + rng.uniform()))
    frames += drift[:, None, None, None].astype(np.float32)
    t = np.arange(n, dtype=np.float32)
    for _ in range(2):
        r = rng.uniform(6, 10)
        x0, y0 = rng.uniform(0, size, 2)
        vx, vy = rng.uniform(-0.4, 0.4, 2)
        col = _hsv_to_rgb(rng.uniform(), rng.uniform(0.1, 0.3), rng.uniform(0.4, 0.7))
        cx = (x0 + vx * t) % size
        cy = (y0 + vy * t) % size
        inside = (xx[None] - cx[:, None, None]) ** 2 + (yy[None] - cy[:, None, None]) ** 2 <= r * r
        frames[inside] = col
    lo, hi = config.decoys
    for _ in range(int(rng.integers(lo, hi + 1))):
        length = int(rng.integers(3, 7))
        start = int(rng.integers(0, n - length))
        r = rng.uniform(4, 7)
        cx, cy = rng.uniform(r, size - r, 2)
        disc = (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r
        frames[start:start + length, disc] = np.float32(rng.choice([0.1, 0.9]))

    # actions: drifting grating patch (body) over the whole instance, saturated burst inside
    instances = _place_instances(rng, config, n)
    bursts = []
    for i0, i1 in instances:
        if rng.uniform() < config.random_body:
            theta = rng.uniform(0, np.pi)
        else:
            theta = (np.pi * label / config.num_classes
                     + rng.uniform(-1, 1) * config.body_jitter * np.pi / config.num_classes)
        side = rng.uniform(0.4, 0.55) * size
        px, py = rng.uniform(0, size - side, 2)
        u = np.clip((xx - px) / side, 0, 1)
        v = np.clip((yy - py) / side, 0, 1)
        window = (np.sin(np.pi * u) * np.sin(np.pi * v)) ** 0.5  # soft edges: no strong border gradients
        freq = rng.uniform(1 / 9, 1 / 6)
        speed = rng.uniform(0.05, 0.15)
        proj = xx * np.cos(theta) + yy * np.sin(theta)
        k = np.arange(i1 - i0, dtype=np.float32)
        wave = np.sin(2 * np.pi * (freq * proj[None] - speed * k[:, None, None]))
        frames[i0:i1] += (config.body_contrast * window[None] * wave)[..., None]
        b_len = int(round(rng.uniform(*config.burst_s) * fps))
        b0 = int(rng.integers(i0, i1 - b_len + 1))
        r = rng.uniform(4.5, 6.5)
        cx = rng.uniform(px + r, px + side - r)
        cy = rng.uniform(py + r, py + side - r)
        disc = (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r
        hue = (label / config.num_classes + 0.07 + rng.uniform(-0.03, 0.03)) % 1.0
        frames[b0:b0 + b_len, disc] = _hsv_to_rgb(hue, 0.9, 0.9)
        bursts.append((b0, b0 + b_len))
    frames += rng.normal(0, 0.015, size=frames.shape[:3])[..., None].astype(np.float32)
    pixels = np.clip(np.round(frames * 255), 0, 255).astype(np.uint8)
    return {"frames": pixels, "label": label, "instances": instances, "bursts": bursts}


# --------------------------------------------------------------------------- features


def frame_descriptors(frames: np.ndarray) -> np.ndarray:
    """Per-frame descriptor ``(N, 24)`` float32 of ``uint8 (N, H, W, 3)`` RGB frames.

    * 12: hue histogram of saturated pixels (saturation > 0.5, value > 0.3), as the
      fraction of the frame's pixels x 25;
    * 8: gradient energy per orientation bin (central differences of the grey image,
      orientation mod pi, magnitude-weighted), mean per pixel x 10;
    * 4: motion (mean absolute grey difference to the previous frame x 10; 0 for the
      first frame of the batch), mean grey, grey standard deviation x 4, mean saturation.

    Deterministic and cheap (a few ms per hundred 64 x 64 frames).
    """
    f = np.asarray(frames, dtype=np.float32) / 255.0
    if f.ndim != 4 or f.shape[-1] != 3:
        raise ValueError(f"frames must be (N, H, W, 3), got {f.shape}")
    n, h, w, _ = f.shape
    mx, mn = f.max(-1), f.min(-1)
    sat = (mx - mn) / np.maximum(mx, 1e-6)
    r, g, b = f[..., 0], f[..., 1], f[..., 2]
    delta = np.maximum(mx - mn, 1e-6)
    hue = np.where(mx == r, ((g - b) / delta) % 6, np.where(mx == g, (b - r) / delta + 2, (r - g) / delta + 4)) / 6
    strong = (sat > 0.5) & (mx > 0.3)
    hbin = np.minimum((hue * HUE_BINS).astype(np.int64), HUE_BINS - 1)
    code = (np.arange(n)[:, None, None] * HUE_BINS + hbin)[strong]
    hue_hist = np.bincount(code, minlength=n * HUE_BINS).reshape(n, HUE_BINS) * (25.0 / (h * w))
    grey = f.mean(-1)
    gx = grey[:, 1:-1, 2:] - grey[:, 1:-1, :-2]
    gy = grey[:, 2:, 1:-1] - grey[:, :-2, 1:-1]
    mag = np.sqrt(gx * gx + gy * gy)
    ang = np.arctan2(gy, gx) % np.pi
    obin = np.minimum((ang / np.pi * ORIENTATION_BINS).astype(np.int64), ORIENTATION_BINS - 1)
    code = (np.arange(n)[:, None, None] * ORIENTATION_BINS + obin).ravel()
    orient = np.bincount(code, weights=mag.ravel().astype(np.float64), minlength=n * ORIENTATION_BINS)
    orient = orient.reshape(n, ORIENTATION_BINS) * (10.0 / mag[0].size)
    motion = np.zeros(n, np.float64)
    if n > 1:
        motion[1:] = np.abs(np.diff(grey, axis=0)).mean(axis=(1, 2)) * 10.0
    stats = np.stack([motion, grey.mean(axis=(1, 2)), grey.std(axis=(1, 2)) * 4.0, sat.mean(axis=(1, 2))], axis=1)
    return np.concatenate([hue_hist, orient, stats], axis=1).astype(np.float32)


def snippet_features(path: str | os.PathLike, snippet: int, chunk: int = 256) -> tuple[np.ndarray, float, int]:
    """Decode ``path`` with decord, average :func:`frame_descriptors` per snippet of
    ``snippet`` native frames; returns ``(features (T, D), fps, num_frames)``.

    Motion at a chunk boundary uses the last frame of the previous chunk, so the result
    does not depend on ``chunk``.
    """
    from hideseek.action.video import VideoReader

    with VideoReader(path) as reader:
        idx = reader.snippet_indices(snippet)
        if len(idx) == 0:
            raise ValueError(f"video file {os.fspath(path)!r}: shorter than one snippet of {snippet} frames")
        frames_needed = idx.reshape(-1)
        descs = []
        prev = None
        for a in range(0, len(frames_needed), chunk):
            block = reader.read(frames_needed[a:a + chunk])
            if prev is not None:
                block = np.concatenate([prev, block])
            d = frame_descriptors(block)
            descs.append(d[1:] if prev is not None else d)
            prev = block[-1:]
        per_frame = np.concatenate(descs)
        return per_frame.reshape(len(idx), snippet, -1).mean(axis=1), reader.fps, reader.num_frames


# --------------------------------------------------------------------------- writing


def read_info(root: str | Path) -> dict | None:
    try:
        return json.loads((Path(root) / INFO_FILE).read_text())
    except (OSError, ValueError):
        return None


def _complete(root: Path, config: SyntheticVideoConfig) -> bool:
    info = read_info(root)
    if not info or info.get("hash") != config_hash(config) or not (root / "gt.json").is_file():
        return False
    total = sum(config.count(s) for s in SPLITS)
    for kind, suffix in (("videos", ".mp4"), ("features", ".npy")):
        folder = root / kind
        if not folder.is_dir() or sum(1 for e in os.scandir(folder) if e.name.endswith(suffix)) != total:
            return False
    return True


def _write_one(root: Path, config: SyntheticVideoConfig, split: str, index: int) -> tuple[str, dict]:
    from hideseek.action.video import write_test_video

    vid = video_id(split, index)
    out = render_video(config, split, index)
    path = write_test_video(root / "videos" / f"{vid}.mp4", out["frames"], config.fps)
    feats, fps, num_frames = snippet_features(path, config.snippet)
    np.save(root / "features" / f"{vid}.npy", feats.astype(np.float32))
    name = config.classes[out["label"]]
    entry = {
        "subset": split,
        "duration": num_frames / fps,
        "fps": fps,
        "annotations": [{"segment": [i0 / config.fps, i1 / config.fps], "label": name} for i0, i1 in out["instances"]],
        "telling": [{"segment": [b0 / config.fps, b1 / config.fps], "label": name} for b0, b1 in out["bursts"]],
    }
    return vid, entry


def _write_videos(split: str, start: int, stop: int, root: Path, config: SyntheticVideoConfig) -> dict:
    """Videos ``start..stop-1`` of ``split`` (a pure function of its arguments): ``{id: entry}``."""
    return dict(_write_one(root, config, split, i) for i in range(start, stop))


def write_benchmark(root: str | Path, config: SyntheticVideoConfig | None = None, progress: bool = True,
                    overwrite: bool = False, workers: int | None = None) -> Path:
    """Write the benchmark under ``root`` (layout in the module docstring), under a lock.

    Concurrent callers wait for the first and then find it complete. A complete benchmark
    of the same config hash is left alone; an interrupted write (partial marker) is redone;
    a non-empty folder that is not such a benchmark is refused unless ``overwrite``.
    ``workers`` processes write the videos (default: the usable cores, at most 8); every
    video is a pure function of the config, its split and index, so the files do not
    depend on ``workers``.
    """
    from filelock import FileLock

    config = config or SyntheticVideoConfig()
    root = Path(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(root) + ".lock"):
        if not overwrite and _complete(root, config):
            return root
        ours = (root / PARTIAL_FILE).is_file() or read_info(root) is not None
        if root.exists() and any(root.iterdir()) and not ours and not overwrite:
            raise FileExistsError(f"{root}: folder is not empty and holds no {INFO_FILE}; refusing to write a "
                                  "synthetic video benchmark into it (pass overwrite=True or choose an empty folder)")
        (root / INFO_FILE).unlink(missing_ok=True)
        root.mkdir(parents=True, exist_ok=True)
        (root / PARTIAL_FILE).touch()
        for part in ("videos", "features"):
            shutil.rmtree(root / part, ignore_errors=True)
            (root / part).mkdir()
        from hideseek.workers import run_chunks

        step = 8
        jobs = [(split, start, min(start + step, config.count(split)), root, config)
                for split in SPLITS for start in range(0, config.count(split), step)]
        done = run_chunks(jobs, _write_videos, workers, f"synthetic videos -> {root}" if progress else None,
                          unit="video")
        database = {}
        for split, start, *_ in jobs:  # in split and index order, whatever order the chunks finished in
            database.update(done[split, start])
        (root / "gt.json").write_text(json.dumps({"version": "hideseek-synthetic-video", "database": database}) + "\n")
        info = {"generator": "hideseek.action.synthetic", "version": GENERATOR_VERSION, "hash": config_hash(config),
                "config": config.to_dict(), "classes": config.classes, "stride_s": config.stride_s,
                "feature_dim": FEATURE_DIM}
        tmp = root / (INFO_FILE + ".tmp")
        tmp.write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
        tmp.replace(root / INFO_FILE)
        (root / PARTIAL_FILE).unlink(missing_ok=True)
    return root


def _default_cache_dir() -> Path:
    env = os.environ.get("HIDESEEK_CACHE")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "hideseek"


class SyntheticVideo:
    """The benchmark written once under a cache folder, opened as :class:`VideoFeatures`.

    ``SyntheticVideo(config)`` writes ``<cache>/synthetic-video/<hash12>/`` unless it is
    already there (cache: ``$HIDESEEK_CACHE``, else ``~/.cache/hideseek``); ``root``
    overrides the folder.
    """

    def __init__(self, config: SyntheticVideoConfig | None = None, root: str | Path | None = None,
                 cache_dir: str | Path | None = None, progress: bool = True):
        self.config = config or SyntheticVideoConfig()
        if root is None:
            root = Path(cache_dir or _default_cache_dir()) / "synthetic-video" / config_hash(self.config)[:12]
        self.root = write_benchmark(root, self.config, progress=progress)
        self.gt_path = self.root / "gt.json"
        self.features_dir = self.root / "features"
        self.classes = self.config.classes
        self._gt = json.loads(self.gt_path.read_text())

    def ground_truth(self) -> dict:
        return self._gt

    def videos(self, split: str) -> list[VideoFeatures]:
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; valid choices: {', '.join(SPLITS)}")
        out = []
        for vid, entry in self._gt["database"].items():
            if entry["subset"] != split:
                continue
            segs = tuple(Segment(a["segment"][0], a["segment"][1], a["label"]) for a in entry["annotations"])
            out.append(VideoFeatures(video=vid, features=np.load(self.features_dir / f"{vid}.npy"),
                                     stride_s=self.config.stride_s, segments=segs, subset=split,
                                     duration_s=entry["duration"], fps=entry["fps"],
                                     extra={"telling": [a["segment"] for a in entry["telling"]]}))
        return out
