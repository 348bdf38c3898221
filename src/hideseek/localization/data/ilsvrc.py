"""ImageNet (ILSVRC 2012) as distributed, turned into :class:`WSOLMetadata`.

Layout read (``root`` is the image root; image ids are relative to it)::

    root/train/<wnid>/<wnid>_<n>.JPEG          training images, one folder per class
    root/val/ILSVRC2012_val_00000001.JPEG      validation images (flat)

Validation boxes come from either form of the official annotations:

* per-image PASCAL-VOC-style XML files (``ILSVRC2012_bbox_val_v3.tgz``, or
  ``Annotations/CLS-LOC/val`` of the Kaggle copy): ``<size><width/><height/></size>`` and one
  or more ``<object><name>wnid</name><bndbox><xmin/><ymin/><xmax/><ymax/></bndbox></object>``;
  the image size is taken from the XML;
* ``LOC_val_solution.csv`` (Kaggle copy): header ``ImageId,PredictionString``, then
  ``<ImageId>,<wnid> <xmin> <ymin> <xmax> <ymax> [<wnid> <xmin> ...]``; the image size is
  read from the image file's header (PIL opens files lazily: only the header is parsed,
  no pixels are decoded).

Both forms give the same metadata: image ids ``val/<file name>`` sorted by name, one label
per image, and the boxes in the annotation's order.

Box convention: the pixel coordinates are kept exactly as the annotation gives them
(``x0, y0, x1, y1 = xmin, ymin, xmax, ymax``), with no shift or clipping; this is what the
public WSOL benchmark's ``localization.txt`` holds and what its inclusive (``+1``) IoU
expects.

Class labels: the index of the wnid in a class list, by default the sorted wnid folder names
of ``root/train`` (the usual 0..999 order, also the order of ``LOC_synset_mapping.txt``).
Note that the public benchmark calls the official ILSVRC validation set its *test* split.

:func:`write_metadata` writes any :class:`WSOLMetadata` in the benchmark's layout, so a
dataset can be converted once and then opened with
:class:`~hideseek.localization.data.dataset.WSOLDataset` or
:func:`~hideseek.localization.data.metadata.load_metadata`.

Every parse error names the file and the 1-based line number.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from xml.parsers import expat

from PIL import Image

from hideseek.localization.data.metadata import MetadataError, WSOLMetadata, _lines

__all__ = [
    "IMAGE_EXTENSIONS",
    "ilsvrc_metadata",
    "ilsvrc_train_metadata",
    "ilsvrc_val_metadata",
    "image_size",
    "read_synsets",
    "read_val_csv",
    "read_val_xml",
    "write_metadata",
]

IMAGE_EXTENSIONS = frozenset({".jpeg", ".jpg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"})
"""File name endings (lower case) taken as images when listing folders."""

_WNID = re.compile(r"n\d{8}")
_CSV_HEADER = "ImageId,PredictionString"

Box = tuple[float, float, float, float]


@dataclass
class ValAnnotation:
    """Boxes of one validation image as read from an XML file or a CSV row."""

    wnid: str
    boxes: list[Box]
    source: str
    """``file:line`` the annotation was read from (used in error messages)."""
    size: tuple[int, int] | None = None
    """``(width, height)`` from the XML; ``None`` for the CSV form."""


# --------------------------------------------------------------------------- helpers


def image_size(path: str | Path) -> tuple[int, int]:
    """``(width, height)`` of an image from its header (no pixels are decoded)."""
    path = Path(path)
    try:
        with Image.open(path) as img:
            return img.size
    except FileNotFoundError:
        raise MetadataError(f"{path}: image file not found") from None
    except OSError as err:
        raise MetadataError(f"{path}: cannot read image header ({err})") from err


def _is_image(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def _image_names(folder: Path) -> dict[str, str]:
    """Stem -> file name of the images directly in ``folder`` (empty if it does not exist)."""
    if not folder.is_dir():
        return {}
    names: dict[str, str] = {}
    for entry in os.scandir(folder):
        if entry.is_file() and _is_image(entry.name):
            stem = os.path.splitext(entry.name)[0]
            if stem in names:
                raise MetadataError(
                    f"{folder}: two images share the name {stem!r}: {names[stem]!r} and {entry.name!r}"
                )
            names[stem] = entry.name
    return names


def read_synsets(path: str | Path) -> list[str]:
    """Wnids of a synset mapping file in file order (line ``n`` -> label ``n - 1``).

    Lines are ``<wnid> <names>`` as in ``LOC_synset_mapping.txt``
    (``n01440764 tench, Tinca tinca``) or just ``<wnid>``.
    """
    path = Path(path)
    wnids: list[str] = []
    seen: dict[str, int] = {}
    for number, text in _lines(path):
        wnid = text.split(None, 1)[0].lstrip("\ufeff")
        if not _WNID.fullmatch(wnid):
            raise MetadataError(f"{path}:{number}: expected '<wnid> <names>' (wnid like n01440764), got {text!r}")
        if wnid in seen:
            raise MetadataError(f"{path}:{number}: wnid {wnid!r} repeats line {seen[wnid]}")
        seen[wnid] = number
        wnids.append(wnid)
    if not wnids:
        raise MetadataError(f"{path}: no synsets in file")
    return wnids


def _class_index(synsets: str | Path | Sequence[str] | None, train_dir: Path,
                 found: Iterable[str] = (), where: str = "") -> tuple[dict[str, int], str]:
    """Wnid -> label and a description of where the class list came from."""
    if synsets is None:
        if train_dir.is_dir():
            wnids = sorted(e.name for e in os.scandir(train_dir) if e.is_dir())
            if not wnids:
                raise MetadataError(f"{train_dir}: no class folders")
            source = f"the class folders of {train_dir}"
        else:
            wnids = sorted(set(found))
            if len(wnids) < 1000:
                raise MetadataError(
                    f"{where}: only {len(wnids)} classes occur and {train_dir} does not exist; "
                    "pass synsets= (e.g. LOC_synset_mapping.txt) so the labels are the standard ones"
                )
            source = f"the sorted wnids of {where}"
    elif isinstance(synsets, (str, Path)):
        wnids = read_synsets(synsets)
        source = str(synsets)
    else:
        wnids = list(synsets)
        if len(set(wnids)) != len(wnids):
            raise MetadataError("synsets: the class list repeats a wnid")
        source = "the given class list"
    return {w: i for i, w in enumerate(wnids)}, source


# --------------------------------------------------------------------------- XML


@dataclass
class _Node:
    tag: str
    line: int
    text: str = ""
    children: list[_Node] = field(default_factory=list)

    def all(self, tag: str) -> list[_Node]:
        return [c for c in self.children if c.tag == tag]

    def one(self, tag: str, path: Path) -> _Node:
        for child in self.children:
            if child.tag == tag:
                return child
        raise MetadataError(f"{path}:{self.line}: <{self.tag}> has no <{tag}>")

    def number(self, tag: str, path: Path, kind: type, what: str = ""):
        child = self.one(tag, path)
        value = child.text.strip()
        try:
            return kind(value)
        except ValueError:
            raise MetadataError(
                f"{path}:{child.line}: <{tag}>{what} must be {'an integer' if kind is int else 'a number'}, "
                f"got {value!r}"
            ) from None


def _parse_xml(path: Path) -> _Node:
    """A small element tree that remembers each element's line number."""
    parser = expat.ParserCreate()
    parser.buffer_text = True
    stack: list[_Node] = []
    top: list[_Node] = []

    def start(tag, _attrs):
        node = _Node(tag, parser.CurrentLineNumber)
        (stack[-1].children if stack else top).append(node)
        stack.append(node)

    def end(_tag):
        stack.pop()

    def text(data):
        if stack:
            stack[-1].text += data

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = text
    try:
        with open(path, "rb") as handle:
            parser.ParseFile(handle)
    except FileNotFoundError:
        raise MetadataError(f"{path}: file not found") from None
    except expat.ExpatError as err:
        raise MetadataError(f"{path}:{err.lineno}: malformed XML ({expat.errors.messages[err.code]})") from None
    return top[0]


def _read_one_xml(path: Path) -> ValAnnotation:
    root = _parse_xml(path)
    size = root.one("size", path)
    width = size.number("width", path, int)
    height = size.number("height", path, int)
    if width <= 0 or height <= 0:
        raise MetadataError(f"{path}:{size.line}: image size must be positive, got {width}x{height}")
    objects = root.all("object")
    if not objects:
        raise MetadataError(f"{path}:{root.line}: no <object> in the annotation")
    wnid = None
    boxes: list[Box] = []
    for index, obj in enumerate(objects, start=1):
        name = obj.one("name", path)
        this = name.text.strip()
        if wnid is None:
            wnid = this
        elif this != wnid:
            raise MetadataError(
                f"{path}:{name.line}: object {index} is {this!r} but object 1 is {wnid!r}; "
                "an image's objects must share one class"
            )
        bndbox = obj.one("bndbox", path)
        what = f" of object {index}"
        x0, y0, x1, y1 = (bndbox.number(t, path, float, what) for t in ("xmin", "ymin", "xmax", "ymax"))
        if x1 < x0 or y1 < y0:
            raise MetadataError(
                f"{path}:{bndbox.line}: box of object {index} must satisfy xmin <= xmax and "
                f"ymin <= ymax, got {(x0, y0, x1, y1)}"
            )
        boxes.append((x0, y0, x1, y1))
    return ValAnnotation(wnid, boxes, f"{path}:{objects[0].line}", (width, height))


def read_val_xml(folder: str | Path) -> dict[str, ValAnnotation]:
    """Image stem (``ILSVRC2012_val_00000001``) -> annotation, from a folder of XML files."""
    folder = Path(folder)
    if not folder.is_dir():
        raise MetadataError(f"{folder}: annotation folder not found")
    files = sorted(e.name for e in os.scandir(folder) if e.is_file() and e.name.lower().endswith(".xml"))
    if not files:
        raise MetadataError(f"{folder}: no .xml annotation files")
    return {os.path.splitext(name)[0]: _read_one_xml(folder / name) for name in files}


# --------------------------------------------------------------------------- CSV


def read_val_csv(path: str | Path) -> dict[str, ValAnnotation]:
    """Image stem -> annotation, from ``LOC_val_solution.csv``."""
    path = Path(path)
    annotations: dict[str, ValAnnotation] = {}
    lines: dict[str, int] = {}
    expected = "<ImageId>,<wnid> <xmin> <ymin> <xmax> <ymax> [...]"
    header = True
    for number, text in _lines(path):
        if header:
            if text.lstrip("\ufeff").replace(" ", "") != _CSV_HEADER:
                raise MetadataError(f"{path}:{number}: expected the header '{_CSV_HEADER}', got {text!r}")
            header = False
            continue
        parts = text.split(",")
        if len(parts) != 2 or not parts[0].strip():
            raise MetadataError(f"{path}:{number}: expected '{expected}', got {text!r}")
        stem = parts[0].strip()
        tokens = parts[1].split()
        if not tokens or len(tokens) % 5:
            raise MetadataError(
                f"{path}:{number}: the prediction string must be groups of 5 fields "
                f"'<wnid> <xmin> <ymin> <xmax> <ymax>', got {len(tokens)} fields in {text!r}"
            )
        if stem in lines:
            raise MetadataError(f"{path}:{number}: image {stem!r} repeats line {lines[stem]}")
        wnid = None
        boxes: list[Box] = []
        for index in range(len(tokens) // 5):
            name, *coords = tokens[5 * index:5 * index + 5]
            if not _WNID.fullmatch(name):
                raise MetadataError(f"{path}:{number}: object {index + 1}: expected a wnid, got {name!r}")
            if wnid is None:
                wnid = name
            elif name != wnid:
                raise MetadataError(
                    f"{path}:{number}: object {index + 1} is {name!r} but object 1 is {wnid!r}; "
                    "an image's objects must share one class"
                )
            try:
                x0, y0, x1, y1 = (float(c) for c in coords)
            except ValueError:
                raise MetadataError(
                    f"{path}:{number}: object {index + 1}: box {' '.join(coords)!r} is not 4 numbers"
                ) from None
            if x1 < x0 or y1 < y0:
                raise MetadataError(
                    f"{path}:{number}: object {index + 1}: box must satisfy xmin <= xmax and "
                    f"ymin <= ymax, got {' '.join(coords)!r}"
                )
            boxes.append((x0, y0, x1, y1))
        lines[stem] = number
        annotations[stem] = ValAnnotation(wnid, boxes, f"{path}:{number}")
    if header:
        raise MetadataError(f"{path}: empty file (expected the header '{_CSV_HEADER}')")
    return annotations


# --------------------------------------------------------------------------- splits


def ilsvrc_train_metadata(root: str | Path, synsets: str | Path | Sequence[str] | None = None,
                          folder: str = "train") -> WSOLMetadata:
    """The training split: ids ``train/<wnid>/<file>`` sorted, labels from the class list.

    ``synsets`` is a mapping file (``LOC_synset_mapping.txt``), a list of wnids, or ``None``
    for the sorted class folder names. No image sizes or boxes are read.
    """
    root = Path(root)
    train_dir = root / folder
    if not train_dir.is_dir():
        raise MetadataError(f"{train_dir}: training image folder not found")
    index, source = _class_index(synsets, train_dir)
    image_ids: list[str] = []
    labels: dict[str, int] = {}
    for wnid in sorted(e.name for e in os.scandir(train_dir) if e.is_dir()):
        if wnid not in index:
            raise MetadataError(f"{train_dir / wnid}: class folder {wnid!r} is not in {source}")
        names = sorted(e.name for e in os.scandir(train_dir / wnid) if e.is_file() and _is_image(e.name))
        for name in names:
            image_id = f"{folder}/{wnid}/{name}"
            image_ids.append(image_id)
            labels[image_id] = index[wnid]
    if not image_ids:
        raise MetadataError(f"{train_dir}: no images in the class folders")
    return WSOLMetadata(train_dir, image_ids, labels)


def ilsvrc_val_metadata(root: str | Path, annotations: str | Path | None = None,
                        synsets: str | Path | Sequence[str] | None = None, folder: str = "val",
                        extension: str = ".JPEG") -> WSOLMetadata:
    """The validation split with boxes.

    Parameters
    ----------
    root:
        Image root; images are looked up in ``root/<folder>`` and ids are ``<folder>/<name>``.
    annotations:
        A folder of XML files, or ``LOC_val_solution.csv``; default: the XML files in
        ``root/<folder>``.
    synsets:
        Class list (see :func:`ilsvrc_train_metadata`); default: the class folders of
        ``root/train``, or, without them, the sorted wnids of the annotations provided all
        1000 classes occur.
    extension:
        File ending assumed for an XML-annotated image that is not in ``root/<folder>``
        (the XML gives the size, so the image need not be present to convert).
    """
    root = Path(root)
    image_dir = root / folder
    source = Path(annotations) if annotations is not None else image_dir
    if source.is_dir():
        parsed = read_val_xml(source)
    elif source.suffix.lower() == ".csv" or source.is_file():
        parsed = read_val_csv(source)
    else:
        raise MetadataError(f"{source}: annotations not found (expected a folder of XML files or a CSV file)")
    index, class_source = _class_index(synsets, root / "train", (a.wnid for a in parsed.values()), str(source))
    names = _image_names(image_dir)
    image_ids: list[str] = []
    labels: dict[str, int] = {}
    sizes: dict[str, tuple[int, int]] = {}
    boxes: dict[str, list[Box]] = {}
    for stem in sorted(parsed):
        ann = parsed[stem]
        if ann.wnid not in index:
            raise MetadataError(f"{ann.source}: wnid {ann.wnid!r} is not in {class_source}")
        name = names.get(stem)
        if name is None:
            if ann.size is None:
                raise MetadataError(
                    f"{ann.source}: no image named {stem!r} in {image_dir} (needed for its size)"
                )
            name = stem + extension
        image_id = f"{folder}/{name}"
        image_ids.append(image_id)
        labels[image_id] = index[ann.wnid]
        sizes[image_id] = ann.size if ann.size is not None else image_size(image_dir / name)
        boxes[image_id] = list(ann.boxes)
    return WSOLMetadata(source, image_ids, labels, sizes, boxes)


def ilsvrc_metadata(root: str | Path, split: str, **kwargs) -> WSOLMetadata:
    """``split`` ``"train"`` -> :func:`ilsvrc_train_metadata`, ``"val"`` ->
    :func:`ilsvrc_val_metadata`; keyword arguments go to that function."""
    if split == "train":
        return ilsvrc_train_metadata(root, **kwargs)
    if split == "val":
        return ilsvrc_val_metadata(root, **kwargs)
    raise ValueError(f"unknown ILSVRC split {split!r}; valid splits: train, val")


# --------------------------------------------------------------------------- writer


def _number_text(value: float) -> str:
    value = float(value)
    return str(int(value)) if value.is_integer() else repr(value)


def _write(path: Path, lines: list[str]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    os.replace(tmp, path)


def write_metadata(meta: WSOLMetadata, folder: str | Path) -> Path:
    """Write ``meta`` in the public benchmark's layout under ``folder`` and return it.

    Writes ``image_ids.txt`` and ``class_labels.txt``; ``image_sizes.txt`` when the metadata
    has sizes and ``localization.txt`` when it has boxes or masks (a stale copy of either
    file left in ``folder`` from an earlier run is removed, so the folder always reads back
    as ``meta``). Whole-number coordinates are written without a decimal point; others with
    full precision, so :func:`~hideseek.localization.data.metadata.load_metadata` gives back
    the same values.
    """
    folder = Path(folder)
    for image_id in meta.image_ids:
        if not image_id or any(c in image_id for c in ",\n\r"):
            raise MetadataError(f"image id {image_id!r} cannot be written (empty, or holds a comma or line break)")
        if image_id not in meta.class_labels:
            raise MetadataError(f"image id {image_id!r} has no class label")
    if meta.boxes and meta.mask_paths:
        raise MetadataError("metadata holds both boxes and masks; the layout has one localization.txt")
    if meta.boxes:
        missing = [i for i in meta.image_ids if i not in meta.image_sizes]
        if missing:
            raise MetadataError(f"{len(missing)} image ids with boxes have no image size, first: {missing[:5]}")
    folder.mkdir(parents=True, exist_ok=True)
    _write(folder / "image_ids.txt", list(meta.image_ids))
    _write(folder / "class_labels.txt", [f"{i},{int(meta.class_labels[i])}" for i in meta.image_ids])
    if meta.image_sizes:
        _write(folder / "image_sizes.txt",
               [f"{i},{int(w)},{int(h)}" for i in meta.image_ids if i in meta.image_sizes
                for w, h in [meta.image_sizes[i]]])
    else:
        (folder / "image_sizes.txt").unlink(missing_ok=True)
    if meta.boxes:
        _write(folder / "localization.txt",
               [f"{i}," + ",".join(_number_text(v) for v in box)
                for i in meta.image_ids for box in meta.boxes.get(i, [])])
    elif meta.mask_paths:
        lines = []
        for i in meta.image_ids:
            for k, mask in enumerate(meta.mask_paths.get(i, [])):
                lines.append(f"{i},{mask},{meta.ignore_paths.get(i, '') if k == 0 else ''}")
        _write(folder / "localization.txt", lines)
    else:
        (folder / "localization.txt").unlink(missing_ok=True)
    return folder
