"""Reader for the public WSOL benchmark's metadata layout.

One folder per dataset split (``metadata/<DATASET>/<split>/``) holding:

``image_ids.txt``
    one relative image path per line; the path is the image id.
``class_labels.txt``
    ``<image_id>,<integer label>``.
``image_sizes.txt``
    ``<image_id>,<width>,<height>`` (absent for mask datasets such as OpenImages).
``localization.txt``
    boxes, one line per box: ``<image_id>,<x0>,<y0>,<x1>,<y1>``; or masks, one line per
    instance mask: ``<image_id>,<mask_png>,<ignore_png>`` with the ignore path given on
    the image's first line only.

Every parse error names the file and the 1-based line number.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["MetadataError", "WSOLMetadata", "load_metadata"]


class MetadataError(ValueError):
    """A metadata file is missing or malformed; the message names the file and line."""


@dataclass
class WSOLMetadata:
    """Parsed metadata of one split.

    Attributes
    ----------
    root:
        The metadata folder.
    image_ids:
        Image ids in file order.
    class_labels:
        Image id -> integer class label.
    image_sizes:
        Image id -> ``(width, height)``; empty when ``image_sizes.txt`` is absent.
    boxes:
        Image id -> list of ``(x0, y0, x1, y1)`` in original image pixels (box datasets).
    mask_paths, ignore_paths:
        Image id -> instance mask paths and the ignore mask path (mask datasets); an
        empty ignore path means "no ignore region".
    """

    root: Path
    image_ids: list[str]
    class_labels: dict[str, int]
    image_sizes: dict[str, tuple[int, int]] = field(default_factory=dict)
    boxes: dict[str, list[tuple[float, float, float, float]]] = field(default_factory=dict)
    mask_paths: dict[str, list[str]] = field(default_factory=dict)
    ignore_paths: dict[str, str] = field(default_factory=dict)

    @property
    def localization_type(self) -> str | None:
        """``"boxes"``, ``"masks"`` or ``None`` when the split has no localization file."""
        if self.boxes:
            return "boxes"
        if self.mask_paths:
            return "masks"
        return None

    def __len__(self) -> int:
        return len(self.image_ids)


def _lines(path: Path):
    """Yield ``(line_number, text)`` for the non-blank lines of ``path``."""
    if not path.is_file():
        raise MetadataError(f"{path}: file not found")
    with open(path, encoding="utf-8") as handle:
        for number, raw in enumerate(handle, start=1):
            text = raw.rstrip("\r\n")
            if text.strip():
                yield number, text


def _fields(path: Path, number: int, text: str, count: int, expected: str) -> list[str]:
    parts = text.split(",")
    if len(parts) != count or not parts[0]:
        raise MetadataError(f"{path}:{number}: expected '{expected}', got {text!r}")
    return parts


def _number(path: Path, number: int, text: str, value: str, kind: type, expected: str):
    try:
        return kind(value)
    except ValueError:
        raise MetadataError(
            f"{path}:{number}: expected '{expected}', got {text!r} ({value!r} is not a number)"
        ) from None


def read_image_ids(path: Path) -> list[str]:
    ids: list[str] = []
    seen: dict[str, int] = {}
    for number, text in _lines(path):
        if "," in text:
            raise MetadataError(f"{path}:{number}: expected one image path per line, got {text!r}")
        if text in seen:
            raise MetadataError(
                f"{path}:{number}: image id {text!r} repeats line {seen[text]}"
            )
        seen[text] = number
        ids.append(text)
    return ids


def read_class_labels(path: Path) -> dict[str, int]:
    expected = "<image_id>,<label>"
    labels: dict[str, int] = {}
    for number, text in _lines(path):
        image_id, label = _fields(path, number, text, 2, expected)
        labels[image_id] = _number(path, number, text, label, int, expected)
    return labels


def read_image_sizes(path: Path) -> dict[str, tuple[int, int]]:
    expected = "<image_id>,<width>,<height>"
    sizes: dict[str, tuple[int, int]] = {}
    for number, text in _lines(path):
        image_id, w, h = _fields(path, number, text, 3, expected)
        width = _number(path, number, text, w, int, expected)
        height = _number(path, number, text, h, int, expected)
        if width <= 0 or height <= 0:
            raise MetadataError(f"{path}:{number}: image size must be positive, got {text!r}")
        sizes[image_id] = (width, height)
    return sizes


def read_localization(path: Path):
    """Read boxes or masks; the first line decides which (5 fields: boxes, 3: masks)."""
    boxes: dict[str, list[tuple[float, float, float, float]]] = {}
    masks: dict[str, list[str]] = {}
    ignores: dict[str, str] = {}
    kind = None
    box_form = "<image_id>,<x0>,<y0>,<x1>,<y1>"
    mask_form = "<image_id>,<mask_png>,<ignore_png>"
    for number, text in _lines(path):
        if kind is None:
            kind = {5: "boxes", 3: "masks"}.get(len(text.split(",")))
            if kind is None:
                raise MetadataError(
                    f"{path}:{number}: expected '{box_form}' or '{mask_form}', got {text!r}"
                )
        if kind == "boxes":
            image_id, *coords = _fields(path, number, text, 5, box_form)
            x0, y0, x1, y1 = (_number(path, number, text, c, float, box_form) for c in coords)
            if x1 < x0 or y1 < y0:
                raise MetadataError(
                    f"{path}:{number}: box must satisfy x0 <= x1 and y0 <= y1, got {text!r}"
                )
            boxes.setdefault(image_id, []).append((x0, y0, x1, y1))
        else:
            image_id, mask, ignore = _fields(path, number, text, 3, mask_form)
            if not mask:
                raise MetadataError(f"{path}:{number}: empty mask path in {text!r}")
            if image_id in masks:
                if ignore:
                    raise MetadataError(
                        f"{path}:{number}: the ignore mask goes on the first line of "
                        f"{image_id!r} only, got {text!r}"
                    )
                masks[image_id].append(mask)
            else:
                masks[image_id] = [mask]
                ignores[image_id] = ignore
    return boxes, masks, ignores


def load_metadata(root: str | Path) -> WSOLMetadata:
    """Load one split's metadata folder, checking that the files agree with each other."""
    root = Path(root)
    if not root.is_dir():
        raise MetadataError(f"{root}: metadata folder not found")
    image_ids = read_image_ids(root / "image_ids.txt")
    labels = read_class_labels(root / "class_labels.txt")
    sizes_path = root / "image_sizes.txt"
    sizes = read_image_sizes(sizes_path) if sizes_path.is_file() else {}
    loc_path = root / "localization.txt"
    boxes, masks, ignores = read_localization(loc_path) if loc_path.is_file() else ({}, {}, {})

    def require(mapping: dict, what: str, path: Path) -> None:
        missing = [i for i in image_ids if i not in mapping]
        if missing:
            raise MetadataError(
                f"{path}: {len(missing)} of {len(image_ids)} image ids have no {what}, "
                f"first: {missing[:5]}"
            )

    require(labels, "class label", root / "class_labels.txt")
    if boxes:
        require(boxes, "box", loc_path)
        require(sizes, "image size", sizes_path)
    if masks:
        require(masks, "mask", loc_path)
    return WSOLMetadata(root, image_ids, labels, sizes, boxes, masks, ignores)
