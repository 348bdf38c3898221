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

Every parse error names the file and the 1-based line number. Files are UTF-8 with or
without a byte-order mark (a BOM once became part of the first image id and dropped its
box); ids and mask paths are relative paths that stay inside their root; coordinates are
finite and inside the image; a repeated line that agrees with the first is accepted (the
reference reader keeps the last, the same value), one that conflicts is refused.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from hideseek.inputs import InputError, confined, read_lines

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
    label_lines: dict[str, int] = field(default_factory=dict, repr=False, compare=False)

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

    def check_labels(self, num_classes: int) -> None:
        """Refuse a class label outside ``0 .. num_classes - 1`` (a model with ``num_classes``
        outputs can never predict it: its images would count as misclassified), naming the line."""
        for image_id in self.image_ids:
            label = self.class_labels[image_id]
            if not 0 <= label < num_classes:
                where = self.root / "class_labels.txt"
                line = self.label_lines.get(image_id)
                raise MetadataError(f"{where}{f':{line}' if line else ''}: class label {label} of {image_id!r} is "
                                    f"outside the {num_classes} classes (0..{num_classes - 1})")


def _lines(path: Path):
    """Yield ``(line_number, text)`` for the non-blank lines of ``path`` (UTF-8, a byte-order
    mark removed, ``\\r\\n`` accepted, surrounding whitespace stripped)."""
    if not path.is_file():
        raise MetadataError(f"{path}: file not found")
    try:
        lines = read_lines(path, "metadata file")
    except InputError as error:
        raise MetadataError(str(error)) from None
    for number, raw in enumerate(lines, start=1):
        text = raw.strip()
        if text:
            yield number, text


def _fields(path: Path, number: int, text: str, count: int, expected: str) -> list[str]:
    parts = [part.strip() for part in text.split(",")]
    if len(parts) != count or not parts[0]:
        raise MetadataError(f"{path}:{number}: expected '{expected}', got {text!r}")
    return parts


def _number(path: Path, number: int, text: str, value: str, kind: type, expected: str):
    try:
        result = kind(value)
    except ValueError:
        raise MetadataError(
            f"{path}:{number}: expected '{expected}', got {text!r} ({value!r} is not a number)"
        ) from None
    if kind is float and not math.isfinite(result):
        raise MetadataError(f"{path}:{number}: expected finite coordinates in '{expected}', got {text!r}")
    return result


def _relative(path: Path, number: int, value: str, what: str) -> str:
    """``value`` unchanged when it is a relative path that stays inside its root, else the error."""
    try:
        confined(".", value, f"{path}:{number}: {what}")
    except InputError as error:
        raise MetadataError(str(error)) from None
    return value


def _once(path: Path, number: int, seen: dict, key: str, value, lines: dict, what: str) -> None:
    """Record ``key -> value``; a repeat with the same value is accepted (the reference keeps the
    last one, the same), a repeat with another value is refused naming both lines."""
    if key in seen and seen[key] != value:
        raise MetadataError(
            f"{path}:{number}: {what} of {key!r} conflicts with line {lines[key]} "
            f"({value!r} here, {seen[key]!r} there)"
        )
    if key not in seen:
        lines[key] = number
    seen[key] = value


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
        _relative(path, number, text, "image id")
        seen[text] = number
        ids.append(text)
    if not ids:
        raise MetadataError(f"{path}: no image ids (expected one relative image path per line)")
    return ids


def read_class_labels(path: Path, lines: dict[str, int] | None = None) -> dict[str, int]:
    """Image id -> label; ``lines`` (when given) receives the line of each id."""
    expected = "<image_id>,<label>"
    labels: dict[str, int] = {}
    lines = {} if lines is None else lines
    for number, text in _lines(path):
        image_id, label = _fields(path, number, text, 2, expected)
        value = _number(path, number, text, label, int, expected)
        if value < 0:
            raise MetadataError(f"{path}:{number}: class label must be a non-negative integer, got {text!r}")
        _once(path, number, labels, image_id, value, lines, "class label")
    return labels


def read_image_sizes(path: Path) -> dict[str, tuple[int, int]]:
    expected = "<image_id>,<width>,<height>"
    sizes: dict[str, tuple[int, int]] = {}
    lines: dict[str, int] = {}
    for number, text in _lines(path):
        image_id, w, h = _fields(path, number, text, 3, expected)
        width = _number(path, number, text, w, int, expected)
        height = _number(path, number, text, h, int, expected)
        if width <= 0 or height <= 0:
            raise MetadataError(f"{path}:{number}: image size must be positive, got {text!r}")
        _once(path, number, sizes, image_id, (width, height), lines, "image size")
    return sizes


def read_localization(path: Path):
    """Read boxes or masks; the first line decides which (5 fields: boxes, 3: masks).

    Also returns, for boxes, the line of every box (for messages naming the line)."""
    boxes: dict[str, list[tuple[float, float, float, float]]] = {}
    masks: dict[str, list[str]] = {}
    ignores: dict[str, str] = {}
    box_lines: dict[str, list[int]] = {}
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
            box_lines.setdefault(image_id, []).append(number)
        else:
            image_id, mask, ignore = _fields(path, number, text, 3, mask_form)
            if not mask:
                raise MetadataError(f"{path}:{number}: empty mask path in {text!r}")
            _relative(path, number, mask, "mask path")
            if ignore:
                _relative(path, number, ignore, "ignore mask path")
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
    return boxes, masks, ignores, box_lines


def _check_boxes_inside(path: Path, boxes: dict, box_lines: dict, sizes: dict, sizes_path: Path) -> None:
    """A box must lie in its image (0 <= x0, x1 <= width, ...): one outside means the size or the
    box is wrong, and the rescaled box would be scored against a different region."""
    for image_id, image_boxes in boxes.items():
        if image_id not in sizes:
            continue
        width, height = sizes[image_id]
        for (x0, y0, x1, y1), number in zip(image_boxes, box_lines[image_id]):
            if x0 < 0 or y0 < 0 or x1 > width or y1 > height:
                raise MetadataError(
                    f"{path}:{number}: box ({x0:g}, {y0:g}, {x1:g}, {y1:g}) of {image_id!r} lies outside "
                    f"its image of {width}x{height} ({sizes_path.name})"
                )


def load_metadata(root: str | Path) -> WSOLMetadata:
    """Load one split's metadata folder, checking that the files agree with each other."""
    root = Path(root)
    if not root.is_dir():
        raise MetadataError(f"{root}: metadata folder not found")
    image_ids = read_image_ids(root / "image_ids.txt")
    label_lines: dict[str, int] = {}
    labels = read_class_labels(root / "class_labels.txt", label_lines)
    sizes_path = root / "image_sizes.txt"
    sizes = read_image_sizes(sizes_path) if sizes_path.is_file() else {}
    loc_path = root / "localization.txt"
    boxes, masks, ignores, box_lines = read_localization(loc_path) if loc_path.is_file() else ({}, {}, {}, {})

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
        _check_boxes_inside(loc_path, boxes, box_lines, sizes, sizes_path)
    if masks:
        require(masks, "mask", loc_path)
    return WSOLMetadata(root, image_ids, labels, sizes, boxes, masks, ignores, label_lines)
