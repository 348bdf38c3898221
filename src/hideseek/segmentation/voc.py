"""PASCAL VOC 2012 for weakly-supervised semantic segmentation.

Reads the devkit layout as distributed::

    VOCdevkit/VOC2012/JPEGImages/<id>.jpg
                      Annotations/<id>.xml                 object names -> image-level labels
                      SegmentationClass/<id>.png           palette PNG: pixel = class index
                      SegmentationClassAug/<id>.png        (optional) the augmented set's masks,
                                                           single-channel or palette PNGs
                      ImageSets/Segmentation/{train,val,trainval}.txt
                      ImageSets/Segmentation/train_aug.txt (optional; also looked for in
                                                           ImageSets/SegmentationAug/)

Label maps hold class indices 0..20 (0 = background, then aeroplane ... tvmonitor in the
devkit's order) and 255 = "ignore" (object borders and difficult regions). A label PNG must
be a palette ("P") or single-channel ("L") image: an RGB rendering of the colours cannot be
read back as indices without guessing, so it is an error that names the file.

Image-level labels come from the ``<object><name>`` entries of the annotation XML (part
names of the person layout are not objects). Difficult objects count by default
(``include_difficult=True``): they are real instances of the class in the image, and the
image-level label files in common use (built from the same XML) include them.

:func:`write_label_png` writes a label map exactly in the devkit's format (mode "P",
the VOC colour map, 255 drawn white), so predictions open in any VOC tool.

Importing this module does not import torch: the file helpers (:func:`read_label_png`,
:func:`read_image_ids`, ...) score saved label maps without it. :class:`VOCSegmentation`
is a map-style dataset (``__len__`` and ``__getitem__``, all a ``DataLoader`` needs)
without torch's ``Dataset`` base, and :func:`collate_seg` imports torch when called.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from hideseek.inputs import InputError, confined, read_lines

__all__ = [
    "IGNORE_INDEX",
    "VOC_CLASSES",
    "VOCError",
    "VOCSegmentation",
    "collate_seg",
    "find_voc_root",
    "image_labels",
    "read_image_ids",
    "read_label_png",
    "voc_palette",
    "write_label_png",
]

IGNORE_INDEX = 255
VOC_CLASSES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


class VOCError(ValueError):
    """A VOC file is missing or malformed; the message names the file (and line)."""


def voc_palette() -> np.ndarray:
    """The devkit's colour map, (256, 3) uint8: colour of index i from the bits of i
    (bit 0 -> red, bit 1 -> green, bit 2 -> blue, from the most significant bit down);
    index 255 comes out (224, 224, 192), the devkit's light "ignore" colour."""
    palette = np.zeros((256, 3), np.uint8)
    for index in range(256):
        value, r, g, b = index, 0, 0, 0
        for shift in range(7, -1, -1):
            r |= (value & 1) << shift
            g |= ((value >> 1) & 1) << shift
            b |= ((value >> 2) & 1) << shift
            value >>= 3
        palette[index] = (r, g, b)
    return palette


def read_label_png(path: str | Path) -> np.ndarray:
    """A label map (H, W) uint8 of class indices from a palette or single-channel PNG.

    Palette images are read as their indices, never through their colours. RGB/RGBA (or any
    other mode) is refused with the file named.
    """
    path = Path(path)
    try:
        with Image.open(path) as img:
            mode = img.mode
            if mode not in ("P", "L"):
                raise VOCError(
                    f"{path}: image mode {mode!r}; a label map must be a palette ('P') or single-channel ('L') "
                    "PNG of class indices (an RGB rendering of the VOC colours cannot be read back as labels)"
                )
            return np.array(img, dtype=np.uint8)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: label PNG not found") from None
    except IsADirectoryError:
        raise VOCError(f"{path}: expected a label PNG, found a folder") from None
    except VOCError:
        raise
    except (OSError, SyntaxError, ValueError, EOFError, zlib.error) as error:
        # Pillow reports a damaged PNG as any of these, depending on where the damage is
        raise VOCError(f"{path}: cannot read label PNG ({error})") from None


def write_label_png(path: str | Path, labels: np.ndarray) -> Path:
    """Write ``labels`` (H, W) integers in 0..255 as a VOC palette PNG; returns the path."""
    path = Path(path)
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"{path}: label map must be 2-D (H, W), got shape {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() > 255):
        raise ValueError(f"{path}: labels must lie in 0..255, got {labels.min()}..{labels.max()}")
    image = Image.fromarray(labels.astype(np.uint8), "P")
    image.putpalette(voc_palette().reshape(-1).tolist())
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format="PNG")
    return path


def read_image_ids(path: str | Path) -> list[str]:
    """Image ids of a split list (one per line; blank lines skipped; one id per line)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: split list not found")
    ids, seen = [], set()
    try:
        lines = read_lines(path, "split list")
    except InputError as error:
        raise VOCError(str(error)) from None
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        if not text:
            continue
        if len(text.split()) != 1:
            raise VOCError(f"{path}:{number}: expected one image id per line, got {text!r}")
        if text in seen:
            raise VOCError(f"{path}:{number}: image id {text!r} listed twice")
        try:  # ids name files in the image, mask and prediction folders: none may leave them
            confined(".", text, f"{path}:{number}: image id")
        except InputError as error:
            raise VOCError(str(error)) from None
        seen.add(text)
        ids.append(text)
    if not ids:
        raise VOCError(f"{path}: split list holds no image id")
    return ids


def image_labels(path: str | Path, classes: Sequence[str] = VOC_CLASSES[1:],
                 include_difficult: bool = True) -> list[int]:
    """Sorted class indices (0-based over ``classes``, i.e. without background) of the
    objects in an annotation XML file."""
    path = Path(path)
    try:
        root = ET.parse(path).getroot()
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: annotation XML not found") from None
    except ET.ParseError as error:
        raise VOCError(f"{path}: malformed annotation XML ({error})") from None
    index = {name: i for i, name in enumerate(classes)}
    found = set()
    for obj in root.iter("object"):
        name = (obj.findtext("name") or "").strip()
        if name not in index:
            raise VOCError(f"{path}: object name {name!r} is not a class ({', '.join(classes)})")
        if not include_difficult and (obj.findtext("difficult") or "0").strip() == "1":
            continue
        found.add(index[name])
    return sorted(found)


def find_voc_root(root: str | Path) -> Path:
    """``root`` itself if it holds ``JPEGImages``, else ``root/VOC2012`` or ``root/VOCdevkit/VOC2012``."""
    root = Path(root)
    for candidate in (root, root / "VOC2012", root / "VOCdevkit" / "VOC2012"):
        if (candidate / "JPEGImages").is_dir():
            return candidate
    raise FileNotFoundError(f"{root}: no JPEGImages/ here nor in VOC2012/ or VOCdevkit/VOC2012/ (not a VOC root)")


def _split_file(root: Path, split: str) -> Path:
    for folder in ("Segmentation", "SegmentationAug"):
        path = root / "ImageSets" / folder / f"{split}.txt"
        if path.is_file():
            return path
    listing = root / "ImageSets" / "Segmentation" / f"{split}.txt"
    raise FileNotFoundError(f"{listing}: split list of {split!r} not found")


class VOCSegmentation:
    """One split of VOC 2012 (or a dataset in its layout) with image-level labels and masks.

    Each item is a dict::

        {"image": transformed image (a PIL RGB image when transform is None),
         "labels": float32 multi-hot (C,) over the object classes (no background),
         "mask": uint8 (H, W) label map in original pixels, or None without one,
         "image_id": str, "index": int, "size": (width, height)}

    Parameters
    ----------
    root:
        ``VOCdevkit/VOC2012`` (or a folder above it, see :func:`find_voc_root`).
    split:
        A list in ``ImageSets/Segmentation`` (``train``, ``val``, ``trainval``, ...) or
        ``ImageSets/SegmentationAug`` (``train_aug``).
    masks:
        ``"auto"``: ``SegmentationClass`` where it has the image, else
        ``SegmentationClassAug``, else no mask; ``"class"`` / ``"aug"``: that folder only
        (a missing PNG is an error); ``"none"``: no masks.
    classes:
        Object class names in label order (label i + 1 in the masks); VOC's by default.
    include_difficult:
        Whether objects marked difficult count as image-level labels (default yes).
    """

    def __init__(self, root: str | Path, split: str = "train", transform: Callable | None = None,
                 masks: str = "auto", classes: Sequence[str] = VOC_CLASSES[1:], include_difficult: bool = True):
        if masks not in ("auto", "class", "aug", "none"):
            raise ValueError(f"masks={masks!r}: expected 'auto', 'class', 'aug' or 'none'")
        self.root = find_voc_root(root)
        self.split = split
        self.transform = transform
        self.classes = tuple(classes)
        self.split_file = _split_file(self.root, split)
        self.image_ids = read_image_ids(self.split_file)
        self.images = [self._image_path(i) for i in self.image_ids]
        self.labels = np.zeros((len(self.image_ids), len(self.classes)), np.float32)
        for n, image_id in enumerate(self.image_ids):
            found = image_labels(self.root / "Annotations" / f"{image_id}.xml", self.classes, include_difficult)
            if not found:
                raise VOCError(f"{self.root / 'Annotations' / (image_id + '.xml')}: no object of a known class "
                               "(an image-level label set must not be empty)")
            self.labels[n, found] = 1.0
        self.mask_paths = [self._mask_path(i, masks) for i in self.image_ids]

    def _image_path(self, image_id: str) -> Path:
        for suffix in IMAGE_SUFFIXES:
            path = self.root / "JPEGImages" / f"{image_id}{suffix}"
            if path.is_file():
                return path
        raise FileNotFoundError(f"{self.root / 'JPEGImages' / (image_id + '.jpg')}: image of {image_id!r} "
                                f"(listed in {self.split_file}) not found")

    def _mask_path(self, image_id: str, masks: str) -> Path | None:
        if masks == "none":
            return None
        folders = {"auto": ("SegmentationClass", "SegmentationClassAug"), "class": ("SegmentationClass",),
                   "aug": ("SegmentationClassAug",)}[masks]
        for folder in folders:
            path = self.root / folder / f"{image_id}.png"
            if path.is_file():
                return path
        if masks == "auto":
            return None
        raise FileNotFoundError(f"{self.root / folders[0] / (image_id + '.png')}: mask of {image_id!r} not found")

    @property
    def num_classes(self) -> int:
        """Object classes (without background)."""
        return len(self.classes)

    @property
    def has_masks(self) -> bool:
        return all(p is not None for p in self.mask_paths)

    def mask(self, index: int) -> np.ndarray | None:
        """The label map of one image (uint8, original size), or None."""
        path = self.mask_paths[index]
        if path is None:
            return None
        labels = read_label_png(path)
        bad = (labels > self.num_classes) & (labels != IGNORE_INDEX)
        if bad.any():
            values = sorted(set(np.unique(labels[bad]).tolist()))
            raise VOCError(f"{path}: label values {values[:8]} outside 0..{self.num_classes} and {IGNORE_INDEX}")
        return labels

    def __len__(self) -> int:
        return len(self.image_ids)

    def __getitem__(self, index: int) -> dict:
        from hideseek.localization.data.dataset import load_rgb

        image = load_rgb(self.images[index])
        mask = self.mask(index)
        if mask is not None and mask.shape != (image.height, image.width):
            raise VOCError(f"{self.mask_paths[index]}: mask is {mask.shape[1]}x{mask.shape[0]}, its image "
                           f"{self.images[index]} is {image.width}x{image.height}")
        size = (image.width, image.height)
        return {"image": self.transform(image) if self.transform else image, "labels": self.labels[index],
                "mask": mask, "image_id": self.image_ids[index], "index": index, "size": size}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.root}, split={self.split!r}, {len(self)} images)"


def collate_seg(items: list[dict]) -> dict:
    """Batch segmentation items: stack images and labels; masks, ids and sizes stay lists."""
    import torch

    out: dict = {}
    for key in items[0]:
        values = [item[key] for item in items]
        if key == "image" and isinstance(values[0], torch.Tensor):
            out[key] = torch.stack(values)
        elif key == "labels":
            out[key] = torch.as_tensor(np.stack(values))
        elif key == "index":
            out[key] = torch.as_tensor(values, dtype=torch.long)
        else:
            out[key] = values
    return out
