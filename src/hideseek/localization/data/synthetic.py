"""A procedural WSOL benchmark in which plain CAM finds only the most telling part.

Every image holds one object on a cluttered background:

- the **body**, a large blob (random scale, aspect, rotation and a slightly irregular
  outline) covered with soft stripes whose *tilt from horizontal* depends on the class
  (``90 * class / (K - 1)`` degrees plus jitter, leaning left or right at random so that
  horizontal and vertical flips keep the label; with probability ``1 - body_reliability``
  the orientation is drawn at random instead). The stripe colours are random, so only the
  tilt speaks for the class: weak but real evidence spread over the whole object;
- the **part**, a small disc with a dark rim lying inside the body at a random place,
  filled with a saturated class-specific hue: strong evidence that alone suffices to
  classify, covering a few percent of the object.

The background is a smooth random colour field with distractor blobs (flat, speckled,
dotted or ringed, random muted colours) and grey decoy discs that look like parts. Only
the part is strongly saturated (HSV saturation >= 0.85; bodies and distractors <= 0.45),
so it is the one strong cue. None of the clutter depends on the label, so "the most
salient thing" is a poor localizer while a classifier that found the part gets the class
right. The ground truth is exact: the object mask is
body ∪ part (the part lies inside the body) and the box is that mask's bounding box,
inclusive pixel corners ``(x0, y0, x1, y1)``.

Every image is a pure function of ``(config, split, index)`` (:func:`render`), so one
image can be regenerated alone. :func:`write_benchmark` writes the public WSOL benchmark's
on-disk layout (see its docstring) and skips the work when the same benchmark is there.
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
from PIL import Image

from hideseek.engine import ConfigDict
from hideseek.workers import run_chunks

__all__ = [
    "GENERATOR_VERSION",
    "SPLITS",
    "SyntheticConfig",
    "config_hash",
    "labels_of",
    "render",
    "render_parts",
    "write_benchmark",
]

GENERATOR_VERSION = 1
SPLITS = ("train", "val", "test")
_SPLIT_CODE = {"train": 0, "val": 1, "test": 2}
INFO_FILE = "benchmark.json"
PARTIAL_FILE = ".writing"  # present while a write is under way (or was interrupted)
_ALL = (slice(None), slice(None))


@dataclass(frozen=True)
class SyntheticConfig(ConfigDict):
    """What to generate. Sizes are fractions of the image side unless said otherwise.

    Attributes
    ----------
    num_classes:
        Number of classes K (part hues and stripe tilts are spread evenly over K).
    image_size:
        Side of the square images in pixels.
    train, val, test:
        Number of images per split. Labels are balanced (counts differ by at most one).
    seed:
        Master seed; with the split and the index it fixes every image.
    body_size:
        Range of the body's major half-axis.
    body_aspect:
        Range of the body's major/minor axis ratio.
    part_size:
        Range of the part radius as a fraction of the body's minor half-axis.
    min_part_radius:
        Smallest part radius in pixels.
    stripe_period:
        Range of the stripe period in pixels.
    stripe_contrast:
        Range of the light/dark stripe amplitude (in [0, 1] colour units).
    stripe_jitter:
        Standard deviation of the tilt jitter in degrees.
    body_reliability:
        Probability that the stripe tilt shows the class (otherwise the orientation is uniform).
    distractors:
        Inclusive range of the number of background distractor blobs.
    decoys:
        Inclusive range of the number of grey part-like decoy discs.
    noise:
        Standard deviation of the pixel noise added to the whole image.
    """

    num_classes: int = 6
    image_size: int = 96
    train: int = 3000
    val: int = 300
    test: int = 600
    seed: int = 0
    body_size: tuple[float, float] = (0.2, 0.4)
    body_aspect: tuple[float, float] = (1.0, 2.2)
    part_size: tuple[float, float] = (0.28, 0.4)
    min_part_radius: float = 3.5
    stripe_period: tuple[float, float] = (5.0, 8.0)
    stripe_contrast: tuple[float, float] = (0.2, 0.45)
    stripe_jitter: float = 4.0
    body_reliability: float = 0.8
    distractors: tuple[int, int] = (3, 7)
    decoys: tuple[int, int] = (0, 2)
    noise: float = 0.04

    def __post_init__(self):
        if self.num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {self.num_classes}")
        if self.image_size < 32:
            raise ValueError(f"image_size must be >= 32 pixels, got {self.image_size}")
        for name in SPLITS:
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0 images, got {getattr(self, name)}")
        for name in ("body_size", "body_aspect", "part_size", "stripe_period", "stripe_contrast",
                     "distractors", "decoys"):
            low, high = getattr(self, name)
            if low > high:
                raise ValueError(f"{name}: range ({low}, {high}) has low > high")
        if not 0.0 < self.body_size[1] <= 0.45:
            raise ValueError(f"body_size must lie in (0, 0.45], got {self.body_size}")
        if not 0.0 <= self.body_reliability <= 1.0:
            raise ValueError(f"body_reliability must be in [0, 1], got {self.body_reliability}")

    def size(self, split: str) -> int:
        """Number of images of ``split``."""
        _check_split(split)
        return getattr(self, split)

    _tuple_fields = None
    _config_name = "SyntheticConfig"


@lru_cache(maxsize=1)
def _generator_digest() -> str:
    """Digest of this module's source: any edit to the generator gives a new benchmark key,
    so a cached benchmark can never be stale with respect to the code that reads it."""
    return hashlib.sha256(Path(__file__).read_bytes()).hexdigest()


def config_hash(config: SyntheticConfig) -> str:
    """Hex digest identifying the benchmark that ``config`` generates with this generator
    (its version and source digest included)."""
    text = json.dumps({"version": GENERATOR_VERSION, "source": _generator_digest(), **config.to_dict()},
                      sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _check_split(split: str) -> None:
    if split not in _SPLIT_CODE:
        raise ValueError(f"unknown split {split!r}; valid splits: {', '.join(SPLITS)}")


def _rng(config: SyntheticConfig, split: str, index: int, stream: int = 0) -> np.random.Generator:
    return np.random.default_rng([config.seed, _SPLIT_CODE[split], index, stream, GENERATOR_VERSION])


@lru_cache(maxsize=16)
def _labels(num_classes: int, n: int, seed: int, split: str) -> np.ndarray:
    rng = np.random.default_rng([seed, _SPLIT_CODE[split], 2**31, GENERATOR_VERSION])
    labels = (rng.permutation(n) % num_classes).astype(np.int64)
    labels.setflags(write=False)
    return labels


def labels_of(config: SyntheticConfig, split: str) -> np.ndarray:
    """Labels of a whole split (a seeded shuffle of ``0..K-1`` repeated: balanced)."""
    _check_split(split)
    return _labels(config.num_classes, config.size(split), config.seed, split)


# --------------------------------------------------------------------------- drawing


@lru_cache(maxsize=8)
def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    return ys, xs


@lru_cache(maxsize=8)
def _upsample_taps(size: int, cells: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Linear interpolation taps ``(low, high, frac)`` from ``cells`` grid points to pixels."""
    pos = np.clip((np.arange(size) + 0.5) * cells / size - 0.5, 0, cells - 1)
    low = np.floor(pos).astype(np.intp)
    high = np.minimum(low + 1, cells - 1)
    return low, high, (pos - low).astype(np.float32)


@lru_cache(maxsize=4)
def _noise_bank(size: int, seed: int) -> np.ndarray:
    """A (2 size, 2 size, 3) field of N(0, 1) noise; each image crops it at a random offset.

    Cropping a shared field is ~20x cheaper than drawing fresh normals per pixel, and the
    offset is independent of the label, so the noise carries no class information.
    """
    rng = np.random.default_rng([seed, 7, GENERATOR_VERSION])
    bank = rng.standard_normal((2 * size, 2 * size, 3), dtype=np.float32)
    bank.setflags(write=False)
    return bank


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    """One HSV colour (h in turns) as an RGB float32 triple."""
    k = (np.array([5.0, 3.0, 1.0]) + h * 6.0) % 6.0
    return (v - v * s * np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)).astype(np.float32)


@dataclass
class _Blob:
    """An ellipse with a wavy outline: radius ``1 + sum amp*cos(k*phi + phase)``, k = 2, 3."""

    cx: float
    cy: float
    a: float
    b: float
    angle: float
    waves: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)

    def reach(self) -> tuple[float, float]:
        """Half extents along x and y that bound the shape."""
        grow = 1.0 + abs(self.waves[0]) + abs(self.waves[2])
        c, s = math.cos(self.angle), math.sin(self.angle)
        return (math.hypot(self.a * c, self.b * s) * grow, math.hypot(self.a * s, self.b * c) * grow)

    def window(self, size: int) -> tuple[slice, slice]:
        rx, ry = self.reach()
        x0, x1 = max(0, int(self.cx - rx) - 1), min(size, int(self.cx + rx) + 2)
        y0, y1 = max(0, int(self.cy - ry) - 1), min(size, int(self.cy + ry) + 2)
        return slice(y0, max(y0, y1)), slice(x0, max(x0, x1))

    def local_mask(self, size: int) -> tuple[tuple[slice, slice], np.ndarray]:
        """``(window, mask)``: the shape's bounding window and its bool mask there."""
        win = self.window(size)
        ys, xs = _grid(size)
        dx, dy = xs[win] - self.cx, ys[win] - self.cy
        c, s = math.cos(self.angle), math.sin(self.angle)
        u = (dx * c + dy * s) / self.a
        v = (-dx * s + dy * c) / self.b
        limit = 1.0
        amp2, ph2, amp3, ph3 = self.waves
        if amp2 or amp3:
            phi = np.arctan2(v, u)
            limit = 1.0 + amp2 * np.cos(2 * phi + ph2) + amp3 * np.cos(3 * phi + ph3)
        return win, u * u + v * v <= limit * limit

    def mask(self, size: int) -> np.ndarray:
        """Bool (size, size) mask of the shape."""
        out = np.zeros((size, size), bool)
        win, local = self.local_mask(size)
        out[win] = local
        return out


def _disc(size: int, cx: float, cy: float, r: float) -> tuple[np.ndarray, np.ndarray]:
    """(disc mask, rim mask) of a disc of radius ``r`` with a ~1.3 px rim."""
    ys, xs = _grid(size)
    d2 = (xs - cx) ** 2 + (ys - cy) ** 2
    disc = d2 <= r * r
    rim = disc & (d2 > (r - 1.3) ** 2)
    return disc, rim


def _paint(image: np.ndarray, win: tuple[slice, slice], mask: np.ndarray, colour) -> None:
    """Paint ``colour`` (an RGB triple or a window-sized texture) where ``mask`` is set."""
    view = image[win]
    view[mask] = colour if np.ndim(colour) == 1 else colour[mask]


def _texture(rng: np.random.Generator, blob: _Blob, win: tuple[slice, slice], size: int,
             colour: np.ndarray) -> np.ndarray:
    """A label-free texture for a distractor: flat, speckle, dots or rings about its centre.

    None of the four has a preferred orientation, so none can mimic a class's stripes.
    """
    kind = rng.integers(4)
    ys, xs = _grid(size)
    ys, xs = ys[win], xs[win]
    if kind == 0:
        return np.broadcast_to(colour, ys.shape + (3,))
    if kind == 1:
        return colour + rng.normal(0.0, 0.12, ys.shape + (1,)).astype(np.float32)
    period = rng.uniform(4.0, 8.0)
    shade = rng.uniform(0.15, 0.35) * rng.choice([-1.0, 1.0])
    if kind == 2:
        ox, oy = rng.uniform(0, period, 2)
        fx = ((xs + ox) % period) / period - 0.5
        fy = ((ys + oy) % period) / period - 0.5
        pattern = (fx * fx + fy * fy < 0.08).astype(np.float32)
    else:
        radius = np.hypot(xs - blob.cx, ys - blob.cy)
        pattern = (np.sin(2 * np.pi * radius / period) > 0).astype(np.float32)
    return colour + shade * pattern[..., None]


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    cells = int(rng.integers(3, 6))
    base = _hsv(rng.random(), rng.uniform(0.1, 0.5), rng.uniform(0.35, 0.75))
    coarse = base + rng.normal(0.0, 0.12, (cells, cells, 3)).astype(np.float32)
    low, high, frac = _upsample_taps(size, cells)
    rows = coarse[low] * (1 - frac)[:, None, None] + coarse[high] * frac[:, None, None]
    return rows[:, low] * (1 - frac)[None, :, None] + rows[:, high] * frac[None, :, None]


def _random_blob(rng: np.random.Generator, size: int, scale: tuple[float, float],
                 aspect: tuple[float, float], wave: float) -> _Blob:
    a = rng.uniform(*scale) * size
    b = a / rng.uniform(*aspect)
    waves = (rng.uniform(0, wave), rng.uniform(0, 2 * np.pi), rng.uniform(0, wave * 0.6),
             rng.uniform(0, 2 * np.pi))
    return _Blob(0.0, 0.0, a, b, rng.uniform(0, np.pi), waves)


def _clutter(rng: np.random.Generator, config: SyntheticConfig) -> np.ndarray:
    """The label-free background: smooth colour field, distractor blobs, grey decoy discs."""
    size = config.image_size
    image = _background(rng, size)
    for _ in range(int(rng.integers(config.distractors[0], config.distractors[1] + 1))):
        blob = _random_blob(rng, size, (0.06, 0.2), (1.0, 2.0), 0.15)
        blob.cx, blob.cy = rng.uniform(0, size, 2)
        colour = _hsv(rng.random(), rng.uniform(0.05, 0.45), rng.uniform(0.25, 0.95))
        win, mask = blob.local_mask(size)
        _paint(image, win, mask, _texture(rng, blob, win, size, colour))
    for _ in range(int(rng.integers(config.decoys[0], config.decoys[1] + 1))):
        r = rng.uniform(config.min_part_radius, config.min_part_radius * 2.2)
        cx, cy = rng.uniform(r, size - r, 2)
        disc, rim = _disc(size, cx, cy, r)
        _paint(image, _ALL, disc, _hsv(rng.random(), rng.uniform(0.0, 0.25), rng.uniform(0.5, 1.0)))
        _paint(image, _ALL, rim, np.full(3, rng.uniform(0.0, 0.2), np.float32))
    return image


def _place_body(rng: np.random.Generator, config: SyntheticConfig) -> _Blob:
    """A body blob of the configured size placed inside the image (wholly, whenever it fits)."""
    size = config.image_size
    body = _random_blob(rng, size, config.body_size, config.body_aspect, 0.12)
    rx, ry = body.reach()
    rx, ry = min(rx, size / 2 - 2), min(ry, size / 2 - 2)
    body.cx = rng.uniform(rx + 1, size - 2 - rx)
    body.cy = rng.uniform(ry + 1, size - 2 - ry)
    return body


def _paint_object(image: np.ndarray, rng: np.random.Generator, config: SyntheticConfig, body: _Blob,
                  label: int) -> dict:
    """Paint one object of class ``label`` on ``body``: the class-tilted stripes, then the
    class-hued part disc wholly inside the body. Returns ``body_mask``, ``part_mask``,
    ``theta`` (stripe angle, radians) and ``body_shows_class``."""
    size, k = config.image_size, config.num_classes
    body_win, body_local = body.local_mask(size)
    body_mask = np.zeros((size, size), bool)
    body_mask[body_win] = body_local

    # stripes whose orientation is the body's class evidence
    shows_class = bool(rng.random() < config.body_reliability)
    if shows_class:  # tilt from horizontal encodes the class; its sign is random (flip-safe)
        tilt = 90.0 * label / (k - 1) + rng.normal(0.0, config.stripe_jitter)
        theta = np.deg2rad(tilt) * rng.choice([-1.0, 1.0])
    else:
        theta = rng.uniform(0, np.pi)
    period = rng.uniform(*config.stripe_period)
    ys, xs = _grid(size)
    ys, xs = ys[body_win], xs[body_win]
    wave = np.sin((xs * math.cos(theta) + ys * math.sin(theta)) * (2 * np.pi / period) + rng.uniform(0, 2 * np.pi))
    stripes = np.clip(1.5 * wave, -1.0, 1.0) * rng.uniform(*config.stripe_contrast)
    body_colour = _hsv(rng.random(), rng.uniform(0.1, 0.45), rng.uniform(0.4, 0.7))
    _paint(image, body_win, body_local, body_colour + stripes[..., None])

    # part: a class-hued disc with a dark rim, wholly inside the body
    r = max(config.min_part_radius, rng.uniform(*config.part_size) * body.b)
    phi = rng.uniform(0, 2 * np.pi)
    reach = rng.uniform(0.35, 0.8)
    c, s = math.cos(body.angle), math.sin(body.angle)
    part_mask = rim = None
    for attempt in range(12):
        t = reach * (1.0 - attempt / 11.0)
        u, v = t * body.a * math.cos(phi), t * body.b * math.sin(phi)
        cx, cy = body.cx + u * c - v * s, body.cy + u * s + v * c
        disc, ring = _disc(size, cx, cy, r)
        if not (disc & ~body_mask).any():
            part_mask, rim = disc, ring
            break
        if attempt == 11:  # the body is too thin at its centre: shrink the part
            r *= 0.8
            for _ in range(8):
                disc, ring = _disc(size, body.cx, body.cy, r)
                if not (disc & ~body_mask).any():
                    part_mask, rim = disc, ring
                    break
                r *= 0.8
    if part_mask is None:  # cannot happen for sane configs; keep the contract anyway
        part_mask, rim = disc & body_mask, ring & body_mask
    hue = (label / k + rng.normal(0.0, 0.02)) % 1.0
    _paint(image, _ALL, part_mask, _hsv(hue, rng.uniform(0.85, 1.0), rng.uniform(0.85, 1.0)))
    _paint(image, _ALL, rim, np.full(3, rng.uniform(0.0, 0.15), np.float32))
    return {"body_mask": body_mask, "part_mask": part_mask, "theta": theta, "body_shows_class": shows_class}


def _finish(image: np.ndarray, rng: np.random.Generator, config: SyntheticConfig) -> np.ndarray:
    """Add the pixel noise and quantise to uint8."""
    size = config.image_size
    if config.noise > 0:
        oy, ox = rng.integers(0, size, 2)
        image += config.noise * _noise_bank(size, config.seed)[oy:oy + size, ox:ox + size]
    return (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def render_parts(config: SyntheticConfig, split: str, index: int) -> dict:
    """Render one image and return everything about it.

    Returns a dict with ``image`` (H, W, 3 uint8), ``label``, ``box`` (x0, y0, x1, y1
    inclusive), ``mask`` (object = body ∪ part), ``body_mask``, ``part_mask`` (bool H x W),
    ``orientation`` (stripe angle in degrees, in [0, 180)) and ``body_shows_class``.
    """
    _check_split(split)
    n = config.size(split)
    if not 0 <= index < n:
        raise IndexError(f"index {index} out of range for split {split!r} of {n} images")
    label = int(labels_of(config, split)[index])
    rng = _rng(config, split, index)
    image = _clutter(rng, config)
    obj = _paint_object(image, rng, config, _place_body(rng, config), label)
    pixels = _finish(image, rng, config)
    body_mask, part_mask = obj["body_mask"], obj["part_mask"]
    mask = body_mask | part_mask
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    box = (int(cols[0]), int(rows[0]), int(cols[-1]), int(rows[-1]))
    return {
        "image": pixels,
        "label": label,
        "box": box,
        "mask": mask,
        "body_mask": body_mask,
        "part_mask": part_mask,
        "orientation": float(np.rad2deg(obj["theta"]) % 180.0),
        "body_shows_class": obj["body_shows_class"],
    }


def render(config: SyntheticConfig, split: str, index: int):
    """One image: ``(image uint8 HxWx3, label, box (x0, y0, x1, y1) inclusive, mask bool HxW)``."""
    out = render_parts(config, split, index)
    return out["image"], out["label"], out["box"], out["mask"]


# --------------------------------------------------------------------------- writing


def image_id(split: str, index: int) -> str:
    """Image id (path relative to ``images/`` and ``masks/``) of one sample."""
    return f"{split}/{index:06d}.png"


def read_info(root: str | Path) -> dict | None:
    """The ``benchmark.json`` of a written benchmark, or ``None`` if there is none."""
    path = Path(root) / INFO_FILE
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _complete(root: Path, config: SyntheticConfig) -> bool:
    info = read_info(root)
    if not info or info.get("hash") != config_hash(config):
        return False
    for split in SPLITS:
        for meta in ("metadata", "metadata_masks"):
            if not (root / meta / split / "localization.txt").is_file():
                return False
        for kind in ("images", "masks"):
            folder = root / kind / split
            count = sum(1 for _ in os.scandir(folder)) if folder.is_dir() else 0
            if count != config.size(split):
                return False
    return True


def _write_chunk(root: Path, config: SyntheticConfig, split: str, start: int, stop: int):
    """Render and save images ``start..stop-1`` of ``split``; return their labels and boxes."""
    labels, boxes = [], []
    for index in range(start, stop):
        pixels, label, box, mask = render(config, split, index)
        name = image_id(split, index)
        Image.fromarray(pixels, "RGB").save(root / "images" / name, compress_level=1)
        Image.fromarray(mask.astype(np.uint8) * 255, "L").save(root / "masks" / name, compress_level=1)
        labels.append(label)
        boxes.append(box)
    return labels, boxes


def _write_chunk_job(split: str, start: int, stop: int, root: Path, config: SyntheticConfig):
    return _write_chunk(root, config, split, start, stop)


def write_locked(root: str | Path, write) -> Path:
    """Run ``write(root)`` under the inter-process lock ``<root>.lock``; return its result.

    Concurrent callers for the same ``root`` (parallel tox environments, DDP ranks) wait
    for the first; a writer that checks for a complete folder first then writes nothing.
    """
    from filelock import FileLock

    root = Path(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(root) + ".lock"):
        return write(root)


def begin_write(root: Path, parts: tuple[str, ...], overwrite: bool, what: str) -> None:
    """Prepare ``root`` for a fresh generation: refuse a non-empty folder that is neither a
    generated benchmark nor a half-written one (unless ``overwrite``), drop the old
    ``benchmark.json``, set the partial-write marker and clear the folders in ``parts``."""
    ours = (root / PARTIAL_FILE).is_file()
    if root.exists() and any(root.iterdir()) and read_info(root) is None and not overwrite and not ours:
        raise FileExistsError(
            f"{root}: folder is not empty and holds no {INFO_FILE}; refusing to write a {what} "
            "into it (pass overwrite=True or choose an empty folder)"
        )
    (root / INFO_FILE).unlink(missing_ok=True)
    root.mkdir(parents=True, exist_ok=True)
    (root / PARTIAL_FILE).touch()
    for part in parts:
        shutil.rmtree(root / part, ignore_errors=True)


def end_write(root: Path, info: dict) -> None:
    """Write ``benchmark.json`` atomically, last, and remove the partial-write marker."""
    tmp = root / (INFO_FILE + ".tmp")
    tmp.write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
    tmp.replace(root / INFO_FILE)
    (root / PARTIAL_FILE).unlink(missing_ok=True)


def write_benchmark(root: str | Path, config: SyntheticConfig | None = None, progress: bool = True,
                    overwrite: bool = False, workers: int | None = None) -> Path:
    """Write the benchmark (see :func:`_write_benchmark`) under an inter-process lock.

    Concurrent callers for the same ``root`` (parallel tox environments, DDP ranks) wait
    for the first; the others then find the benchmark complete and write nothing. A folder
    left half-written by an interrupted run of this function is recognised by its marker
    file and regenerated.
    """
    return write_locked(root, lambda path: _write_benchmark(path, config, progress, overwrite, workers))


def _write_benchmark(root: Path, config: SyntheticConfig | None, progress: bool, overwrite: bool,
                     workers: int | None) -> Path:
    """Write the benchmark in the public WSOL benchmark's layout; return ``root``.

    Layout (ids are ``<split>/<index:06d>.png``, paths relative to ``images/``/``masks/``)::

        root/benchmark.json                      config, its hash, generator version
        root/images/<split>/<index>.png          RGB images
        root/masks/<split>/<index>.png           object masks, 0 / 255 grey PNG
        root/metadata/<split>/image_ids.txt      <id>
                              class_labels.txt   <id>,<label>
                              image_sizes.txt    <id>,<width>,<height>
                              localization.txt   <id>,<x0>,<y0>,<x1>,<y1>   (MaxBoxAcc)
        root/metadata_masks/<split>/...          the same three files, and
                              localization.txt   <id>,<mask_png>,            (PxAP; no ignore)

    ``metadata/`` is read by box evaluators and ``metadata_masks/`` by PxAP with mask
    root ``root/masks``. If ``root`` already holds the complete benchmark of the same config
    (same hash in ``benchmark.json``), nothing is written. A non-empty folder that is not
    a synthetic benchmark is refused unless ``overwrite`` is set. ``workers`` processes
    render in parallel (default: the usable cores, at most 8); the files do not depend on
    it. ``benchmark.json`` is written last, so an interrupted run is redone next time.
    """
    config = config or SyntheticConfig()
    if not overwrite and _complete(root, config):
        return root
    begin_write(root, ("images", "masks", "metadata", "metadata_masks"), overwrite, "synthetic benchmark")
    for split in SPLITS:
        for kind in ("images", "masks"):
            (root / kind / split).mkdir(parents=True, exist_ok=True)

    chunk = 64
    jobs = [(split, a, min(a + chunk, config.size(split)), root, config) for split in SPLITS
            for a in range(0, config.size(split), chunk)]
    results = run_chunks(jobs, _write_chunk_job, workers, f"synthetic WSOL -> {root}" if progress else None)

    size = config.image_size
    for split in SPLITS:
        ids, labels, boxes = [], [], []
        for s_, a, b, *_ in jobs:
            if s_ == split:
                ids.extend(image_id(split, i) for i in range(a, b))
                labels.extend(results[split, a][0])
                boxes.extend(results[split, a][1])
        id_lines = "".join(f"{i}\n" for i in ids)
        label_lines = "".join(f"{i},{y}\n" for i, y in zip(ids, labels))
        size_lines = "".join(f"{i},{size},{size}\n" for i in ids)
        for meta, loc in (
            ("metadata", "".join(f"{i},{b[0]},{b[1]},{b[2]},{b[3]}\n" for i, b in zip(ids, boxes))),
            ("metadata_masks", "".join(f"{i},{i},\n" for i in ids)),
        ):
            folder = root / meta / split
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "image_ids.txt").write_text(id_lines)
            (folder / "class_labels.txt").write_text(label_lines)
            (folder / "image_sizes.txt").write_text(size_lines)
            (folder / "localization.txt").write_text(loc)
    end_write(root, {"generator": "hideseek.localization.data.synthetic", "version": GENERATOR_VERSION,
                     "hash": config_hash(config), "config": config.to_dict()})
    return root
