"""Synthetic segmentation scenes: several objects of the synthetic WSOL benchmark per image.

Each scene is the image benchmark's label-free clutter (:mod:`.synthetic`) with 1-3
objects of *different* classes drawn on it by the same code (striped body whose tilt
names the class, small class-hued part inside it). Objects do not touch (a placement that
would come within two pixels of an earlier object is redrawn, and after 20 failed draws
the object is left out, so the label set always lists exactly the objects drawn). The
label map is exact: ``1 + class`` on every body and part pixel, 0 elsewhere; no pixel is
"ignore".

The benchmark is written in the PASCAL VOC 2012 layout, so the VOC loader, ``hideseek seg
evaluate`` and any VOC tool read it unchanged::

    root/benchmark.json                          config, its hash, generator version
    root/JPEGImages/<id>.png                     RGB scene (PNG: lossless, regenerable bit for bit)
    root/Annotations/<id>.xml                    one <object> per object: name, box, difficult 0
    root/SegmentationClass/<id>.png              VOC palette PNG of labels 0..K
    root/ImageSets/Segmentation/<split>.txt      ids of train, val, test

with ids ``<split>_<index:06d>`` and class names ``object0 .. object{K-1}``. Every scene is a
pure function of ``(config, split, index)`` (:func:`render_scene`); the folder's key hashes
the config with the source of this module and of the object generator, so editing either
gives a new benchmark, and writing takes the same lock and partial-write marker as the
image benchmark.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
from PIL import Image

from hideseek.engine import ConfigDict
from hideseek.localization.data import synthetic as objects
from hideseek.localization.data.dataset import default_cache_dir, pixel_stats
from hideseek.segmentation.voc import VOCSegmentation, write_label_png
from hideseek.workers import run_chunks

__all__ = ["SCENE_VERSION", "SceneConfig", "SyntheticScenes", "render_scene", "scene_classes", "scene_hash",
           "write_scenes"]

SCENE_VERSION = 1
SPLITS = objects.SPLITS
_STREAM = 101  # the scenes' random stream, apart from the image benchmark's


@dataclass(frozen=True)
class SceneConfig(ConfigDict):
    """What to generate: scene counts, sizes, and the object generator's parameters.

    ``objects`` is the inclusive range of objects per scene (distinct classes); the body
    and part parameters are :class:`~hideseek.localization.data.synthetic.SyntheticConfig`'s,
    with smaller bodies so that several fit.
    """

    num_classes: int = 6
    image_size: int = 96
    train: int = 1500
    val: int = 300
    test: int = 300
    seed: int = 0
    objects: tuple[int, int] = (1, 3)
    body_size: tuple[float, float] = (0.14, 0.24)
    part_size: tuple[float, float] = (0.3, 0.42)
    min_part_radius: float = 3.0
    body_reliability: float = 0.8

    def __post_init__(self):
        low, high = self.objects
        if not 1 <= low <= high:
            raise ValueError(f"objects range must satisfy 1 <= low <= high, got {self.objects}")
        if high > self.num_classes:
            raise ValueError(f"up to {high} objects of distinct classes need >= {high} classes, got {self.num_classes}")
        self.object_config()  # validates the shared object parameters

    def object_config(self) -> objects.SyntheticConfig:
        """The image benchmark's config that draws this scene's clutter and objects."""
        return objects.SyntheticConfig(
            num_classes=self.num_classes, image_size=self.image_size, train=0, val=0, test=0, seed=self.seed,
            body_size=self.body_size, part_size=self.part_size, min_part_radius=self.min_part_radius,
            body_reliability=self.body_reliability,
        )

    def size(self, split: str) -> int:
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; valid splits: {', '.join(SPLITS)}")
        return getattr(self, split)

    _tuple_fields = None
    _config_name = "SceneConfig"


def scene_classes(num_classes: int) -> tuple[str, ...]:
    """Object class names of a scene benchmark (label i + 1 in the masks)."""
    return tuple(f"object{k}" for k in range(num_classes))


@lru_cache(maxsize=1)
def _source_digest() -> str:
    return hashlib.sha256(Path(__file__).read_bytes()).hexdigest()


def scene_hash(config: SceneConfig) -> str:
    """Hex digest identifying the benchmark ``config`` generates with this code (scene and
    object generator sources and versions included)."""
    text = json.dumps({"version": SCENE_VERSION, "objects_version": objects.GENERATOR_VERSION,
                       "source": _source_digest(), "objects_source": objects._generator_digest(),
                       **config.to_dict()}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _grow(mask: np.ndarray, radius: int) -> np.ndarray:
    """``mask`` dilated by a (2 radius + 1)^2 square."""
    out = mask.copy()
    h, w = mask.shape
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            out[max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] |= \
                mask[max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]
    return out


def render_scene(config: SceneConfig, split: str, index: int) -> dict:
    """One scene: ``image`` (H, W, 3 uint8), ``labels`` (H, W uint8 label map, 0 =
    background), ``classes`` (object classes in drawing order, 0-based) and ``boxes``
    (inclusive ``x0, y0, x1, y1`` per object)."""
    n = config.size(split)
    if not 0 <= index < n:
        raise IndexError(f"index {index} out of range for split {split!r} of {n} scenes")
    obj = config.object_config()
    size = config.image_size
    rng = np.random.default_rng([config.seed, SPLITS.index(split), index, _STREAM, SCENE_VERSION])
    image = objects._clutter(rng, obj)
    count = int(rng.integers(config.objects[0], config.objects[1] + 1))
    wanted = rng.choice(config.num_classes, size=count, replace=False)
    labels = np.zeros((size, size), np.uint8)
    occupied = np.zeros((size, size), bool)
    classes, boxes = [], []
    for cls in wanted.tolist():
        for _ in range(20):
            body = objects._place_body(rng, obj)
            if not (body.mask(size) & occupied).any():
                break
        else:
            continue
        drawn = objects._paint_object(image, rng, obj, body, int(cls))
        mask = drawn["body_mask"] | drawn["part_mask"]
        labels[mask] = cls + 1
        occupied |= _grow(mask, 2)
        rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
        classes.append(int(cls))
        boxes.append((int(cols[0]), int(rows[0]), int(cols[-1]), int(rows[-1])))
    pixels = objects._finish(image, rng, obj)
    return {"image": pixels, "labels": labels, "classes": classes, "boxes": boxes}


def scene_id(split: str, index: int) -> str:
    return f"{split}_{index:06d}"


def _annotation(image_id: str, size: int, classes: list[int], boxes: list[tuple], names: tuple[str, ...]) -> str:
    parts = [f"<annotation><folder>VOC2012</folder><filename>{escape(image_id)}.png</filename>",
             f"<size><width>{size}</width><height>{size}</height><depth>3</depth></size><segmented>1</segmented>"]
    for cls, (x0, y0, x1, y1) in zip(classes, boxes):
        # VOC boxes are 1-based inclusive pixel coordinates
        parts.append(f"<object><name>{names[cls]}</name><pose>Unspecified</pose><truncated>0</truncated>"
                     f"<difficult>0</difficult><bndbox><xmin>{x0 + 1}</xmin><ymin>{y0 + 1}</ymin>"
                     f"<xmax>{x1 + 1}</xmax><ymax>{y1 + 1}</ymax></bndbox></object>")
    parts.append("</annotation>\n")
    return "".join(parts)


def _write_scene_chunk(split: str, start: int, stop: int, root: Path, config: SceneConfig) -> int:
    names = scene_classes(config.num_classes)
    for index in range(start, stop):
        scene = render_scene(config, split, index)
        image_id = scene_id(split, index)
        Image.fromarray(scene["image"], "RGB").save(root / "JPEGImages" / f"{image_id}.png", compress_level=1)
        write_label_png(root / "SegmentationClass" / f"{image_id}.png", scene["labels"])
        (root / "Annotations" / f"{image_id}.xml").write_text(
            _annotation(image_id, config.image_size, scene["classes"], scene["boxes"], names))
    return stop - start


_PARTS = ("JPEGImages", "Annotations", "SegmentationClass", "ImageSets")


def _complete(root: Path, config: SceneConfig) -> bool:
    info = objects.read_info(root)
    if not info or info.get("hash") != scene_hash(config):
        return False
    total = sum(config.size(s) for s in SPLITS)
    for part in ("JPEGImages", "Annotations", "SegmentationClass"):
        folder = root / part
        if not folder.is_dir() or sum(1 for _ in os.scandir(folder)) != total:
            return False
    return all((root / "ImageSets" / "Segmentation" / f"{s}.txt").is_file() for s in SPLITS)


def write_scenes(root: str | Path, config: SceneConfig | None = None, progress: bool = True,
                 overwrite: bool = False, workers: int | None = None) -> Path:
    """Write the scene benchmark (layout in the module docstring) under ``root``, under the
    image benchmark's inter-process lock; a complete benchmark of the same key is reused."""
    config = config or SceneConfig()

    def write(root: Path) -> Path:
        if not overwrite and _complete(root, config):
            return root
        objects.begin_write(root, _PARTS, overwrite, "synthetic scene benchmark")
        for part in _PARTS[:3]:
            (root / part).mkdir(parents=True, exist_ok=True)
        lists = root / "ImageSets" / "Segmentation"
        lists.mkdir(parents=True, exist_ok=True)
        chunk = 64
        jobs = [(split, a, min(a + chunk, config.size(split)), root, config) for split in SPLITS
                for a in range(0, config.size(split), chunk)]
        run_chunks(jobs, _write_scene_chunk, workers, f"synthetic scenes -> {root}" if progress else None)
        for split in SPLITS:
            (lists / f"{split}.txt").write_text("".join(f"{scene_id(split, i)}\n" for i in range(config.size(split))))
        objects.end_write(root, {"generator": "hideseek.segmentation.scenes", "version": SCENE_VERSION,
                                 "hash": scene_hash(config), "config": config.to_dict()})
        return root

    return objects.write_locked(root, write)


class SyntheticScenes:
    """The scene benchmark, written once under ``<cache>/scenes/<hash12>/`` (``root``
    overrides), opened split by split as :class:`~hideseek.segmentation.voc.VOCSegmentation`."""

    def __init__(self, config: SceneConfig | None = None, root: str | Path | None = None,
                 cache_dir: str | Path | None = None, progress: bool = True, workers: int | None = None):
        self.config = config or SceneConfig()
        if root is None:
            root = Path(cache_dir or default_cache_dir()) / "scenes" / scene_hash(self.config)[:12]
        self.root = write_scenes(root, self.config, progress=progress, workers=workers)
        self.classes = scene_classes(self.config.num_classes)

    def open(self, split: str, transform: Callable | None = None, masks: bool = True) -> VOCSegmentation:
        """One split; ``masks=False`` skips reading the label maps (training needs none)."""
        self.config.size(split)
        return VOCSegmentation(self.root, split, transform, masks="class" if masks else "none", classes=self.classes)

    def pixel_stats(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Mean and std of the training scenes (cached in ``pixel_stats.json``)."""
        ids = (self.root / "ImageSets" / "Segmentation" / "train.txt").read_text().split()
        return pixel_stats([self.root / "JPEGImages" / f"{i}.png" for i in ids], self.root / "pixel_stats.json")

    def __repr__(self) -> str:
        sizes = ", ".join(f"{s}={self.config.size(s)}" for s in SPLITS)
        return f"{type(self).__name__}({self.root}, {sizes})"
