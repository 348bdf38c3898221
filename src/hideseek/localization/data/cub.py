"""CUB-200-2011 in its native layout, turned into :class:`WSOLMetadata`.

Files read from ``root`` (the ``CUB_200_2011`` folder), one record per line, fields
separated by white space:

``images.txt``             ``<image id> <relative path under images/>``
``image_class_labels.txt`` ``<image id> <class id 1..200>``  (stored 0-based: ``class id - 1``)
``bounding_boxes.txt``     ``<image id> <x> <y> <width> <height>``  (floats)
``train_test_split.txt``   ``<image id> <1 = train | 0 = test>``
``classes.txt``            ``<class id> <class name>``

Image ids of the metadata are the paths of ``images.txt``, so the image root for
:class:`~hideseek.localization.data.dataset.WSOLDataset` is ``root/images``; they keep the
order of ``images.txt``. Image sizes are read from the image files' headers.

Box convention: ``(x0, y0, x1, y1) = (x, y, x + width, y + height)`` in the file's pixel
coordinates, with no shift or clipping.

Note that the public WSOL benchmark's CUB *val* split (1,000 extra images) is a separate
collection; the native files give the ``train`` (5,994) and ``test`` (5,794) splits.

Every parse error names the file and the 1-based line number.
"""

from __future__ import annotations

import math
from pathlib import Path

from hideseek.inputs import InputError, confined
from hideseek.localization.data.ilsvrc import image_size
from hideseek.localization.data.metadata import MetadataError, WSOLMetadata, _lines

__all__ = ["CUB_SPLITS", "cub_metadata", "read_cub_classes"]

CUB_SPLITS = ("train", "test", "all")


def _records(path: Path, count: int, expected: str, rest: bool = False):
    """Yield ``(line, fields)``; with ``rest`` the last field takes the rest of the line."""
    for number, text in _lines(path):
        parts = text.split(None, count - 1) if rest else text.split()
        if len(parts) != count:
            raise MetadataError(f"{path}:{number}: expected '{expected}', got {text!r}")
        yield number, parts


def _int(path: Path, number: int, text: str, expected: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise MetadataError(f"{path}:{number}: expected '{expected}' ({text!r} is not an integer)") from None


def _by_id(path: Path, count: int, expected: str, rest: bool = False) -> dict[int, tuple[int, list[str]]]:
    """Record id -> ``(line, other fields)``, rejecting repeated ids."""
    records: dict[int, tuple[int, list[str]]] = {}
    for number, parts in _records(path, count, expected, rest):
        key = _int(path, number, parts[0], expected)
        if key in records:
            raise MetadataError(f"{path}:{number}: id {key} repeats line {records[key][0]}")
        records[key] = (number, parts[1:])
    return records


def read_cub_classes(root: str | Path) -> list[str]:
    """Class names of ``classes.txt`` in label order (label = class id - 1)."""
    path = Path(root) / "classes.txt"
    expected = "<class id> <class name>"
    records = _by_id(path, 2, expected, rest=True)
    if sorted(records) != list(range(1, len(records) + 1)):
        raise MetadataError(f"{path}: class ids must be 1..{len(records)} (each once)")
    return [records[k][1][0] for k in range(1, len(records) + 1)]


def cub_metadata(root: str | Path, split: str = "test") -> WSOLMetadata:
    """Metadata of one split (``"train"``, ``"test"`` or ``"all"``) of CUB-200-2011.

    Every image of ``images.txt`` must have a class label, a box and a split entry; ids in
    the other files that ``images.txt`` lacks are errors too. All lines are checked whatever
    the split; image headers are read for the split's images only.
    """
    if split not in CUB_SPLITS:
        raise ValueError(f"unknown CUB split {split!r}; valid splits: {', '.join(CUB_SPLITS)}")
    root = Path(root)
    if not root.is_dir():
        raise MetadataError(f"{root}: CUB folder not found")
    num_classes = len(read_cub_classes(root))

    images_path = root / "images.txt"
    images = _by_id(images_path, 2, "<image id> <relative path>", rest=True)
    if not images:
        raise MetadataError(f"{images_path}: no images listed")

    def check_ids(path: Path, records: dict) -> None:
        for key, (number, _) in records.items():
            if key not in images:
                raise MetadataError(f"{path}:{number}: image id {key} is not in {images_path}")
        missing = [k for k in images if k not in records]
        if missing:
            raise MetadataError(
                f"{path}: {len(missing)} of {len(images)} image ids of {images_path} have no line here, "
                f"first: {missing[:5]}"
            )

    labels_path = root / "image_class_labels.txt"
    expected_label = "<image id> <class id>"
    labels = _by_id(labels_path, 2, expected_label)
    check_ids(labels_path, labels)

    boxes_path = root / "bounding_boxes.txt"
    expected_box = "<image id> <x> <y> <width> <height>"
    boxes = _by_id(boxes_path, 5, expected_box)
    check_ids(boxes_path, boxes)

    split_path = root / "train_test_split.txt"
    expected_split = "<image id> <1 train | 0 test>"
    splits = _by_id(split_path, 2, expected_split)
    check_ids(split_path, splits)

    wanted = {"train": {"1"}, "test": {"0"}, "all": {"0", "1"}}[split]
    image_dir = root / "images"
    image_ids: list[str] = []
    class_labels: dict[str, int] = {}
    sizes: dict[str, tuple[int, int]] = {}
    box_map: dict[str, list[tuple[float, float, float, float]]] = {}
    seen_paths: dict[str, int] = {}
    for key in images:
        number, (flag,) = splits[key]
        if flag not in ("0", "1"):
            raise MetadataError(f"{split_path}:{number}: expected '{expected_split}', got flag {flag!r}")
        line, (image_id,) = images[key]
        image_id = image_id.strip()
        if "," in image_id:
            raise MetadataError(f"{images_path}:{line}: image path {image_id!r} holds a comma")
        try:
            confined(image_dir, image_id, f"{images_path}:{line}: image path")
        except InputError as error:
            raise MetadataError(str(error)) from None
        if image_id in seen_paths:
            raise MetadataError(f"{images_path}:{line}: image path {image_id!r} repeats line {seen_paths[image_id]}")
        seen_paths[image_id] = line

        number, (label,) = labels[key]
        value = _int(labels_path, number, label, expected_label)
        if not 1 <= value <= num_classes:
            raise MetadataError(
                f"{labels_path}:{number}: class id must be in 1..{num_classes} "
                f"(the classes of {root / 'classes.txt'}), got {value}"
            )

        number, coords = boxes[key]
        try:
            x, y, w, h = (float(c) for c in coords)
        except ValueError:
            raise MetadataError(
                f"{boxes_path}:{number}: expected '{expected_box}' ({' '.join(coords)!r} are not 4 numbers)"
            ) from None
        if not all(math.isfinite(v) for v in (x, y, w, h)):
            raise MetadataError(f"{boxes_path}:{number}: expected finite numbers in '{expected_box}', "
                                f"got {' '.join(coords)!r}")
        if w < 0 or h < 0:
            raise MetadataError(f"{boxes_path}:{number}: box width and height must be >= 0, got {w} x {h}")

        if flag not in wanted:
            continue
        image_ids.append(image_id)
        class_labels[image_id] = value - 1
        box_map[image_id] = [(x, y, x + w, y + h)]
        sizes[image_id] = image_size(image_dir / image_id)
        width, height = sizes[image_id]
        if x < 0 or y < 0 or x + w > width or y + h > height:
            raise MetadataError(f"{boxes_path}:{number}: box {' '.join(coords)} lies outside its image "
                                f"{image_id} of {width}x{height}")
    return WSOLMetadata(root, image_ids, class_labels, sizes, box_map)
