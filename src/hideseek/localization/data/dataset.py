"""Image datasets in the public WSOL benchmark's layout.

:class:`WSOLDataset` reads one split: images under ``image_root`` named by the ids of
``metadata_dir`` (see :mod:`hideseek.localization.data.metadata`). Each item is a dict::

    {"image": transformed image (a PIL RGB image when transform is None),
     "label": int, "boxes": float32 array (G, 4) of x0, y0, x1, y1 in original pixels
     (G = 0 for mask datasets), "image_id": str, "index": int,
     "size": (width, height) of the original image,
     "mask": bool (H, W) array, "ignore": bool (H, W) array   # only with mask_root}

``index`` is the item's position in the split: it is the sample id that deterministic
augmentation (e.g. :func:`hideseek.augment.hide_patches`) keys its masks on. The transform
sees the image only; boxes and masks stay in original pixels (evaluation rescales them).
:func:`collate_wsol` batches items whose box counts differ.

:class:`SyntheticWSOL` writes (or reuses) the synthetic benchmark of
:mod:`hideseek.localization.data.synthetic` under a cache folder and opens its splits.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from hideseek.inputs import confined
from hideseek.localization.data.metadata import WSOLMetadata, load_metadata
from hideseek.localization.data.synthetic import SPLITS, SyntheticConfig, config_hash, write_benchmark

__all__ = ["SyntheticWSOL", "WSOLDataset", "collate_wsol", "default_cache_dir", "load_rgb", "pixel_stats"]


def load_rgb(path: str | Path) -> Image.Image:
    """Open an image as 8-bit RGB whatever its mode (L, LA, P, RGBA, CMYK, I;16, ...).

    Transparent pixels keep their colour (alpha is dropped, as the public benchmark's
    loaders do); 16- and 32-bit grey images are scaled to 8 bits. The error for an
    unreadable file names it.
    """
    path = Path(path)
    try:
        with Image.open(path) as img:
            img.load()
            mode = img.mode
            if mode == "P" and "transparency" in img.info:
                img = img.convert("RGBA")
            elif mode in ("I;16", "I;16B", "I;16L", "I", "F"):
                values = np.asarray(img, dtype=np.float64)
                scale = 255.0 / 65535.0 if mode.startswith("I;16") or values.max(initial=0) > 255 else 1.0
                img = Image.fromarray(np.clip(values * scale + 0.5, 0, 255).astype(np.uint8), "L")
            return img.convert("RGB")
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: image file not found") from None
    except OSError as err:
        raise OSError(f"{path}: cannot read image ({err})") from err


def _load_binary(path: Path, what: str) -> np.ndarray:
    try:
        with Image.open(path) as img:
            values = np.asarray(img.convert("L"), dtype=np.uint8)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: {what} file not found") from None
    except OSError as err:
        raise OSError(f"{path}: cannot read {what} ({err})") from err
    return values > 127


class WSOLDataset(torch.utils.data.Dataset):
    """One split of a WSOL benchmark (images + metadata folder).

    Parameters
    ----------
    image_root:
        Folder the image ids are relative to.
    metadata_dir:
        The split's metadata folder (``image_ids.txt``, ``class_labels.txt``, ...).
    transform:
        Callable applied to the PIL RGB image.
    mask_root:
        Folder the mask paths of a mask-form ``localization.txt`` are relative to; when
        given, items carry ``mask`` (union of the instance masks) and ``ignore``.
    cache:
        Keep every image decoded after its first read, so later epochs skip the file read
        and the decode (the transform still runs on every access). Each DataLoader worker
        process holds its own copy; meant for splits that fit in memory.
    """

    def __init__(self, image_root: str | Path, metadata_dir: str | Path,
                 transform: Callable | None = None, mask_root: str | Path | None = None, cache: bool = False):
        self.image_root = Path(image_root)
        self.metadata: WSOLMetadata = load_metadata(metadata_dir)
        self.transform = transform
        self.mask_root = None if mask_root is None else Path(mask_root)
        if not self.image_root.is_dir():
            raise FileNotFoundError(f"{self.image_root}: image folder not found")
        if not any(_files(self.image_root)):
            raise FileNotFoundError(
                f"{self.image_root}: image folder holds no images "
                f"(expected the {len(self.metadata)} images listed in {self.metadata.root / 'image_ids.txt'})"
            )
        if self.metadata.image_ids:
            first = self.image_root / self.metadata.image_ids[0]
            if not first.is_file():
                raise FileNotFoundError(
                    f"{first}: image not found (first id of {self.metadata.root / 'image_ids.txt'}; "
                    f"is {self.image_root} the right image root?)"
                )
        if self.mask_root is not None:
            if self.metadata.localization_type != "masks":
                raise ValueError(
                    f"{self.metadata.root / 'localization.txt'}: mask_root was given but the split "
                    f"holds {self.metadata.localization_type or 'no localization'}, not masks"
                )
            if not self.mask_root.is_dir():
                raise FileNotFoundError(f"{self.mask_root}: mask folder not found")
        self.labels = np.array([self.metadata.class_labels[i] for i in self.metadata.image_ids], dtype=np.int64)
        self._decoded: dict[int, Image.Image] | None = {} if cache else None

    @property
    def image_ids(self) -> list[str]:
        return self.metadata.image_ids

    @property
    def num_classes(self) -> int:
        """1 + the largest label of the split."""
        return int(self.labels.max()) + 1 if len(self.labels) else 0

    def __len__(self) -> int:
        return len(self.metadata)

    def boxes(self, index: int) -> np.ndarray:
        """(G, 4) float32 GT boxes of item ``index`` in original pixels (G = 0 if none)."""
        boxes = self.metadata.boxes.get(self.metadata.image_ids[index], [])
        return np.asarray(boxes, dtype=np.float32).reshape(-1, 4)

    def masks(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """``(mask, ignore)`` bool arrays of item ``index`` (needs ``mask_root``)."""
        if self.mask_root is None:
            raise ValueError("this dataset was opened without mask_root")
        image_id = self.metadata.image_ids[index]
        paths = self.metadata.mask_paths[image_id]
        mask = None
        for rel in paths:
            part = _load_binary(confined(self.mask_root, rel, "mask path"), "mask")
            if mask is not None and part.shape != mask.shape:
                raise ValueError(f"{self.mask_root / rel}: mask size {part.shape} differs from {mask.shape}")
            mask = part if mask is None else mask | part
        ignore_rel = self.metadata.ignore_paths.get(image_id, "")
        ignore = (_load_binary(confined(self.mask_root, ignore_rel, "ignore mask path"), "ignore mask")
                  if ignore_rel else np.zeros_like(mask))
        if ignore.shape != mask.shape:
            raise ValueError(f"{self.mask_root / ignore_rel}: ignore size {ignore.shape} differs from {mask.shape}")
        return mask, ignore

    def image(self, index: int) -> Image.Image:
        """The RGB image of item ``index`` (decoded once and kept when the dataset caches)."""
        if self._decoded is None:
            return load_rgb(confined(self.image_root, self.metadata.image_ids[index], "image id"))
        image = self._decoded.get(index)
        if image is None:
            image = self._decoded[index] = load_rgb(confined(self.image_root, self.metadata.image_ids[index],
                                                             "image id"))
        return image

    def __getitem__(self, index: int) -> dict:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for a dataset of {len(self)} images")
        index = index % len(self)
        image_id = self.metadata.image_ids[index]
        image = self.image(index)
        item = {
            "label": int(self.labels[index]),
            "boxes": self.boxes(index),
            "image_id": image_id,
            "index": index,
            "size": image.size,
        }
        if self.mask_root is not None:
            item["mask"], item["ignore"] = self.masks(index)
        item["image"] = self.transform(image) if self.transform is not None else image
        return item

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({len(self)} images, {self.num_classes} classes, "
                f"images={self.image_root}, metadata={self.metadata.root})")


def _files(folder: Path):
    """Yield files under ``folder`` (recursively), lazily."""
    for entry in os.scandir(folder):
        if entry.is_file():
            yield entry
        elif entry.is_dir():
            yield from _files(Path(entry.path))


def collate_wsol(items: list[dict]) -> dict:
    """Batch WSOL items: stack images (tensors), labels and indices; keep ragged fields as lists."""
    out: dict = {}
    for key in items[0]:
        values = [item[key] for item in items]
        if key == "image" and isinstance(values[0], torch.Tensor):
            out[key] = torch.stack(values)
        elif key in ("label", "index"):
            out[key] = torch.as_tensor(values, dtype=torch.long)
        else:
            out[key] = values
    return out


def default_cache_dir() -> Path:
    """``$HIDESEEK_CACHE`` if set, else ``$XDG_CACHE_HOME/hideseek`` (``~/.cache/hideseek``)."""
    env = os.environ.get("HIDESEEK_CACHE")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "hideseek"


def pixel_stats(paths, cache: str | Path | None = None) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std in [0, 1] of the RGB images at ``paths``; read from (or
    written atomically to) the JSON file ``cache`` when given."""
    cache = Path(cache) if cache is not None else None
    if cache is not None and cache.is_file():
        stats = json.loads(cache.read_text())
        return tuple(stats["mean"]), tuple(stats["std"])
    total = np.zeros(3)
    squares = np.zeros(3)
    count = 0
    for path in paths:
        pixels = np.asarray(load_rgb(path), dtype=np.float64).reshape(-1, 3) / 255.0
        total += pixels.sum(axis=0)
        squares += (pixels**2).sum(axis=0)
        count += pixels.shape[0]
    if count == 0:
        raise ValueError("pixel_stats: no image given")
    mean = total / count
    std = np.sqrt(squares / count - mean**2)
    stats = {"mean": [round(float(v), 6) for v in mean], "std": [round(float(v), 6) for v in std]}
    if cache is not None:
        tmp = cache.with_suffix(".tmp")
        tmp.write_text(json.dumps(stats))
        os.replace(tmp, cache)
    return tuple(stats["mean"]), tuple(stats["std"])


class SyntheticWSOL:
    """The synthetic benchmark, written once under a cache folder, opened as three datasets.

    ``SyntheticWSOL(config)`` writes ``<cache>/synthetic/<hash12>/`` unless it exists
    (see :func:`~hideseek.localization.data.synthetic.write_benchmark`) and exposes
    ``train``, ``val`` and ``test`` :class:`WSOLDataset` objects (box metadata; with
    ``masks=True`` they also carry the GT masks for PxAP). ``root`` overrides the folder.
    """

    def __init__(self, config: SyntheticConfig | None = None, root: str | Path | None = None,
                 transform: Callable | None = None, eval_transform: Callable | None = None,
                 masks: bool = False, cache_dir: str | Path | None = None, progress: bool = True,
                 workers: int | None = None):
        self.config = config or SyntheticConfig()
        if root is None:
            root = Path(cache_dir or default_cache_dir()) / "synthetic" / config_hash(self.config)[:12]
        self.root = write_benchmark(root, self.config, progress=progress, workers=workers)
        self.datasets = {
            split: self.open(split, transform if split == "train" else eval_transform, masks)
            for split in SPLITS
        }

    def open(self, split: str, transform: Callable | None = None, masks: bool = False,
             cache: bool = False) -> WSOLDataset:
        """A :class:`WSOLDataset` of one split (box metadata, or mask metadata with ``masks``)."""
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; valid splits: {', '.join(SPLITS)}")
        if masks:
            return WSOLDataset(self.root / "images", self.root / "metadata_masks" / split, transform,
                               mask_root=self.root / "masks", cache=cache)
        return WSOLDataset(self.root / "images", self.root / "metadata" / split, transform, cache=cache)

    @property
    def train(self) -> WSOLDataset:
        return self.datasets["train"]

    @property
    def val(self) -> WSOLDataset:
        return self.datasets["val"]

    @property
    def test(self) -> WSOLDataset:
        return self.datasets["test"]

    @property
    def num_classes(self) -> int:
        return self.config.num_classes

    def __getitem__(self, split: str) -> WSOLDataset:
        return self.datasets[split]

    def pixel_stats(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Per-channel mean and std of the training images in [0, 1], for normalisation
        (so that Hide-and-Seek's fill 0 is this dataset's mean pixel); computed once and
        cached in ``pixel_stats.json`` beside the benchmark."""
        data = self.open("train")
        return pixel_stats([data.image_root / i for i in data.image_ids], self.root / "pixel_stats.json")

    def __iter__(self):
        return iter(self.datasets[s] for s in SPLITS)

    def __repr__(self) -> str:
        sizes = ", ".join(f"{s}={len(self.datasets[s])}" for s in SPLITS)
        return f"{type(self).__name__}({self.root}, {sizes})"
