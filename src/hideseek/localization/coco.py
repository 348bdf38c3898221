"""COCO interoperability: read COCO instance annotations, export CAM results, score them.

Three pieces, all built on ``pycocotools`` (``pip install pycocotools``):

Reading
    :func:`load_coco` reads a COCO instances file (``images``, ``annotations``,
    ``categories``) into a :class:`COCOLocalization`: per image the image-level labels
    (the categories present), the boxes and the instance masks (polygons, compressed
    RLE or uncompressed RLE, decoded by ``COCO.annToMask``). It converts to a
    single-label :class:`~hideseek.localization.data.metadata.WSOLMetadata` (label = the
    category of the largest instance) and gives a multi-label view.

Exporting
    :func:`box_result`, :func:`segm_result` and :func:`cams_to_results` write COCO
    result records: detections ``{"image_id", "category_id", "bbox": [x, y, w, h],
    "score"}`` and segmentations ``{"image_id", "category_id", "segmentation": RLE,
    "score"}``. :func:`save_results` writes them as JSON.

Scoring
    :func:`coco_ap` runs ``pycocotools.cocoeval.COCOeval`` (evaluate, accumulate,
    summarize) and returns its twelve summary numbers in percent.

Box conventions
---------------
COCO boxes are ``[x, y, w, h]`` in continuous pixel coordinates: a box covering the
pixel columns ``x0 .. x1`` (inclusive) has ``x = x0`` and ``w = x1 - x0 + 1``; this is
also what ``pycocotools.mask.toBbox`` returns for a mask. The benchmark's boxes
(``x0, y0, x1, y1``, see :mod:`hideseek.localization.data.metadata` and
:mod:`hideseek.localization.boxes`) are read as inclusive corners, so
:func:`box_result` uses ``w = x1 - x0 + 1, h = y1 - y0 + 1`` and
:meth:`COCOLocalization.boxes` returns ``(x, y, x + w - 1, y + h - 1)``.

Note that the boxes of :func:`~hideseek.localization.boxes.boxes_at_thresholds` follow
the reference protocol's ``x + w`` (clamped to ``W - 1``) rule and so usually reach one
pixel past the region they bound; :func:`cams_to_results` therefore takes its boxes from
the region's pixels unless ``protocol_boxes=True`` asks for the protocol's boxes.

Undefined summary numbers
-------------------------
``COCOeval`` reports ``-1`` for a summary number with no ground truth to average over
(for example ``APl`` when no object is larger than 96 x 96 pixels). :func:`coco_ap`
returns ``None`` for those instead of ``-100``.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numba
import numpy as np

from hideseek.inputs import InputError, read_json
from hideseek.localization.boxes import boxes_at_thresholds, quantize, threshold_levels
from hideseek.localization.choices import IOU_TYPES
from hideseek.localization.data.metadata import WSOLMetadata

__all__ = [
    "STAT_NAMES",
    "COCOFormatError",
    "COCOLocalization",
    "box_result",
    "cam_regions",
    "cams_to_results",
    "coco_ap",
    "coco_eval",
    "encode_mask",
    "coco_from_dict",
    "load_coco",
    "load_results",
    "save_results",
    "segm_result",
]

STAT_NAMES = (
    "AP", "AP50", "AP75", "APs", "APm", "APl",
    "AR1", "AR10", "AR100", "ARs", "ARm", "ARl",
)  # fmt: skip
"""Names of ``COCOeval.stats`` in order (AP at IoU .50:.95, .50, .75, AP by area
small/medium/large, AR at 1/10/100 detections, AR by area)."""



class COCOFormatError(ValueError):
    """A COCO file is missing, not JSON, or lacks required keys; the message names the file."""


def _pycocotools():
    try:
        from pycocotools import mask as mask_utils
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError(
            "COCO support needs pycocotools: pip install pycocotools"
        ) from error
    return COCO, COCOeval, mask_utils


# --------------------------------------------------------------------------- reading


def _read_json(path: Path, expect: type, what: str):
    """The JSON value of ``path`` (UTF-8 with or without a byte-order mark) with the top level
    ``expect``; every failure is a :class:`COCOFormatError` naming the file."""
    if not path.is_file():
        raise COCOFormatError(f"{path}: file not found")
    try:
        return read_json(path, expect, what)
    except InputError as error:
        raise COCOFormatError(str(error)) from None


def _require(where: str, record, keys: Sequence[str], what: str) -> None:
    if not isinstance(record, dict):
        raise COCOFormatError(
            f"{where}: {what} must be a JSON object, got {type(record).__name__}"
        )
    missing = [k for k in keys if k not in record]
    if missing:
        raise COCOFormatError(
            f"{where}: {what} lacks key(s) {missing}: {_short(record)}"
        )


def _short(record) -> str:
    text = json.dumps(record)
    return text if len(text) <= 120 else text[:117] + "..."


def _is_number(value) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
    )


def _check_bbox(where: str, what: str, bbox) -> None:
    if (
        not isinstance(bbox, list)
        or len(bbox) != 4
        or not all(_is_number(v) for v in bbox)
        or bbox[2] < 0
        or bbox[3] < 0
    ):
        raise COCOFormatError(
            f"{where}: {what} 'bbox' must be [x, y, w, h] with w, h >= 0, got {bbox!r}"
        )


def _check_segmentation(
    where: str, what: str, seg, size: tuple[int, int] | None
) -> None:
    """Polygons (list of flat coordinate lists) or RLE (``{"size": [h, w], "counts": ...}``)."""
    if isinstance(seg, list):
        for poly in seg:
            if (
                not isinstance(poly, list)
                or len(poly) < 6
                or len(poly) % 2
                or not all(_is_number(v) for v in poly)
            ):
                raise COCOFormatError(
                    f"{where}: {what} polygon must be a flat list of >= 3 (x, y) pairs, "
                    f"got {_short(poly)}"
                )
        return
    if isinstance(seg, dict):
        if "size" not in seg or "counts" not in seg:
            raise COCOFormatError(
                f"{where}: {what} RLE lacks 'size' or 'counts': {_short(seg)}"
            )
        rle_size = seg["size"]
        if not (
            isinstance(rle_size, list)
            and len(rle_size) == 2
            and all(isinstance(v, int) for v in rle_size)
        ):
            raise COCOFormatError(
                f"{where}: {what} RLE 'size' must be [height, width], got {rle_size!r}"
            )
        if size is not None and tuple(rle_size) != size:
            raise COCOFormatError(
                f"{where}: {what} RLE size {rle_size} differs from the image's [height, width] "
                f"{list(size)}"
            )
        counts = seg["counts"]
        if isinstance(counts, list):
            if (
                not all(isinstance(v, int) and v >= 0 for v in counts)
                or sum(counts) != rle_size[0] * rle_size[1]
            ):
                raise COCOFormatError(
                    f"{where}: {what} uncompressed RLE counts must be non-negative integers "
                    f"summing to height * width = {rle_size[0] * rle_size[1]}"
                )
        elif not isinstance(counts, str):
            raise COCOFormatError(
                f"{where}: {what} RLE 'counts' must be a string or a list"
            )
        return
    raise COCOFormatError(
        f"{where}: {what} 'segmentation' must be polygons or RLE, got {_short(seg)}"
    )


def _quiet_coco(dataset: dict):
    """A ``pycocotools`` ``COCO`` built from an already parsed dict, without its prints."""
    COCO, _, _ = _pycocotools()
    coco = COCO()
    coco.dataset = dataset
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def _validate_instances(path: Path, data) -> dict:
    where = str(path)
    if not isinstance(data, dict):
        raise COCOFormatError(
            f"{where}: expected a JSON object with 'images', 'annotations', "
            f"'categories', got {type(data).__name__}"
        )
    missing = [k for k in ("images", "annotations", "categories") if k not in data]
    if missing:
        raise COCOFormatError(f"{where}: missing top-level key(s) {missing}")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data[key], list):
            raise COCOFormatError(
                f"{where}: '{key}' must be a list, got {type(data[key]).__name__}"
            )
    sizes: dict = {}
    for k, image in enumerate(data["images"]):
        what = f"images[{k}]"
        _require(where, image, ("id", "width", "height"), what)
        if image["id"] in sizes:
            raise COCOFormatError(f"{where}: {what} repeats image id {image['id']!r}")
        w, h = image["width"], image["height"]
        if not (isinstance(w, int) and isinstance(h, int) and w > 0 and h > 0):
            raise COCOFormatError(
                f"{where}: {what} width and height must be positive integers"
            )
        sizes[image["id"]] = (h, w)
    category_ids = set()
    for k, category in enumerate(data["categories"]):
        what = f"categories[{k}]"
        _require(where, category, ("id", "name"), what)
        if category["id"] in category_ids:
            raise COCOFormatError(
                f"{where}: {what} repeats category id {category['id']!r}"
            )
        category_ids.add(category["id"])
    ann_ids = set()
    for k, ann in enumerate(data["annotations"]):
        what = f"annotations[{k}]"
        _require(where, ann, ("id", "image_id", "category_id", "bbox"), what)
        if ann["id"] in ann_ids:
            raise COCOFormatError(
                f"{where}: {what} repeats annotation id {ann['id']!r}"
            )
        ann_ids.add(ann["id"])
        if ann["image_id"] not in sizes:
            raise COCOFormatError(
                f"{where}: {what} refers to unknown image id {ann['image_id']!r}"
            )
        if ann["category_id"] not in category_ids:
            raise COCOFormatError(
                f"{where}: {what} refers to unknown category id {ann['category_id']!r}"
            )
        _check_bbox(where, what, ann["bbox"])
        if "segmentation" in ann:
            _check_segmentation(
                where, what, ann["segmentation"], sizes[ann["image_id"]]
            )
        if "area" in ann and not _is_number(ann["area"]):
            raise COCOFormatError(
                f"{where}: {what} 'area' must be a number, got {ann['area']!r}"
            )
    return data


@dataclass
class COCOLocalization:
    """A COCO instances file seen as a localization dataset.

    Attributes
    ----------
    path:
        The JSON file.
    coco:
        The ``pycocotools.coco.COCO`` index over it (use it for anything not wrapped here).
    image_ids:
        COCO image ids in file order.
    category_ids:
        Category ids in increasing order; ``label_of[category_id]`` is the contiguous
        label ``0 .. C-1`` in that order, ``category_of`` the reverse.
    category_names:
        Category id -> name.
    """

    path: Path
    coco: object
    image_ids: list
    category_ids: list
    category_names: dict

    @property
    def label_of(self) -> dict:
        return {c: k for k, c in enumerate(self.category_ids)}

    @property
    def category_of(self) -> dict:
        return dict(enumerate(self.category_ids))

    def __len__(self) -> int:
        return len(self.image_ids)

    def image(self, image_id) -> dict:
        """The ``images`` record of ``image_id``."""
        return self.coco.imgs[image_id]

    def image_size(self, image_id) -> tuple[int, int]:
        """``(width, height)``."""
        image = self.coco.imgs[image_id]
        return int(image["width"]), int(image["height"])

    def annotations(
        self, image_id, category_id=None, include_crowd: bool = True
    ) -> list[dict]:
        """Annotation records of ``image_id`` in file order, optionally of one category."""
        anns = [self.coco.anns[a] for a in self.coco.getAnnIds(imgIds=[image_id])]
        if category_id is not None:
            anns = [a for a in anns if a["category_id"] == category_id]
        if not include_crowd:
            anns = [a for a in anns if not a.get("iscrowd", 0)]
        return anns

    def image_labels(self, image_id) -> list:
        """Sorted category ids present in the image (crowd annotations count)."""
        return sorted({a["category_id"] for a in self.annotations(image_id)})

    def boxes(
        self, image_id, category_id=None, include_crowd: bool = True
    ) -> list[tuple]:
        """Boxes as inclusive corners ``(x, y, x + w - 1, y + h - 1)`` (benchmark convention)."""
        out = []
        for a in self.annotations(image_id, category_id, include_crowd):
            x, y, w, h = a["bbox"]
            out.append((x, y, x + w - 1, y + h - 1))
        return out

    def coco_boxes(
        self, image_id, category_id=None, include_crowd: bool = True
    ) -> list[list]:
        """Boxes as stored, ``[x, y, w, h]``."""
        return [
            list(a["bbox"])
            for a in self.annotations(image_id, category_id, include_crowd)
        ]

    def masks(
        self, image_id, category_id=None, include_crowd: bool = True
    ) -> np.ndarray:
        """Instance masks, uint8 ``(n, H, W)``, decoded with ``COCO.annToMask``."""
        anns = self.annotations(image_id, category_id, include_crowd)
        width, height = self.image_size(image_id)
        if not anns:
            return np.zeros((0, height, width), np.uint8)
        for a in anns:
            if "segmentation" not in a:
                raise COCOFormatError(
                    f"{self.path}: annotation {a['id']} of image {image_id!r} has no 'segmentation'"
                )
        return np.stack([self.coco.annToMask(a) for a in anns]).astype(np.uint8)

    def class_mask(
        self, image_id, category_id, include_crowd: bool = True
    ) -> np.ndarray:
        """Union of the instance masks of one category, bool ``(H, W)``."""
        return self.masks(image_id, category_id, include_crowd).any(axis=0)

    def largest_instance(self, image_id) -> dict | None:
        """The annotation of largest ``area`` (first in file order on ties), or None.

        Crowd annotations are skipped unless the image has nothing else.
        """
        anns = self.annotations(image_id, include_crowd=False) or self.annotations(
            image_id
        )
        if not anns:
            return None
        return max(anns, key=lambda a: a["area"])  # max keeps the first of equal keys

    def multilabel(self) -> dict:
        """Image id -> sorted category ids present (the multi-label view)."""
        return {i: self.image_labels(i) for i in self.image_ids}

    def multilabel_targets(self) -> np.ndarray:
        """``(N, C)`` 0/1 float32 targets in :attr:`image_ids` x :attr:`category_ids` order."""
        label_of = self.label_of
        targets = np.zeros((len(self.image_ids), len(self.category_ids)), np.float32)
        for row, image_id in enumerate(self.image_ids):
            for c in self.image_labels(image_id):
                targets[row, label_of[c]] = 1.0
        return targets

    def to_wsol_metadata(self, skip_unlabeled: bool = True) -> WSOLMetadata:
        """Single-label view as :class:`WSOLMetadata`.

        * image id: the image's ``file_name`` (``str(id)`` when absent);
        * class label: contiguous label (:attr:`label_of`) of the category of the
          image's **largest instance** by ``area`` (crowd regions only when nothing
          else is annotated; first in file order on ties);
        * boxes: the inclusive-corner boxes of the instances of that category;
        * image sizes: ``(width, height)``.

        Images without annotations have no label and are left out
        (``skip_unlabeled=True``) or raise :class:`COCOFormatError`.
        """
        label_of = self.label_of
        ids, labels, sizes, boxes = [], {}, {}, {}
        for image_id in self.image_ids:
            name = str(self.coco.imgs[image_id].get("file_name", image_id))
            largest = self.largest_instance(image_id)
            if largest is None:
                if skip_unlabeled:
                    continue
                raise COCOFormatError(
                    f"{self.path}: image {image_id!r} has no annotations"
                )
            if name in labels:
                raise COCOFormatError(f"{self.path}: file_name {name!r} repeats")
            category = largest["category_id"]
            ids.append(name)
            labels[name] = label_of[category]
            sizes[name] = self.image_size(image_id)
            boxes[name] = self.boxes(image_id, category)
        return WSOLMetadata(self.path, ids, labels, sizes, boxes)


def load_coco(path: str | Path) -> COCOLocalization:
    """Read and check a COCO instances file.

    Required: top-level ``images`` (``id``, ``width``, ``height``), ``annotations``
    (``id``, ``image_id``, ``category_id``, ``bbox``) and ``categories`` (``id``,
    ``name``). ``segmentation`` (polygons or RLE) is needed only for masks and segm AP.
    A missing ``area`` is filled with the segmentation's pixel area (``bbox`` w * h
    without one) and a missing ``iscrowd`` with 0, as ``COCOeval`` needs both. Errors name the file and the record.
    """
    path = Path(path)
    return coco_from_dict(_read_json(path, dict, "COCO instances file"), path)


def coco_from_dict(data: dict, name: str | Path = "<in-memory COCO>") -> COCOLocalization:
    """A :class:`COCOLocalization` over an instances dict built in memory (checked as
    :func:`load_coco` checks a file; errors name ``name``)."""
    path = Path(name)
    data = _validate_instances(path, data)
    coco = _quiet_coco(data)
    _, _, mask_utils = _pycocotools()
    for ann in data["annotations"]:
        ann.setdefault("iscrowd", 0)  # COCOeval reads it for every GT record
        if "area" not in ann:
            if "segmentation" in ann:
                ann["area"] = float(mask_utils.area(coco.annToRLE(ann)))
            else:
                ann["area"] = float(ann["bbox"][2] * ann["bbox"][3])
    names = {c["id"]: c["name"] for c in data["categories"]}
    return COCOLocalization(
        path, coco, [i["id"] for i in data["images"]], sorted(names), names
    )


# --------------------------------------------------------------------------- results


def box_result(image_id, category_id, box, score: float) -> dict:
    """A detection record from an inclusive-corner box ``(x0, y0, x1, y1)``.

    ``bbox = [x0, y0, x1 - x0 + 1, y1 - y0 + 1]``: the box covers pixel columns
    ``x0 .. x1`` and rows ``y0 .. y1``.
    """
    x0, y0, x1, y1 = (float(v) for v in box)
    if x1 < x0 or y1 < y0:
        raise ValueError(f"box must satisfy x0 <= x1 and y0 <= y1, got {tuple(box)}")
    return {
        "image_id": image_id,
        "category_id": category_id,
        "bbox": [x0, y0, x1 - x0 + 1.0, y1 - y0 + 1.0],
        "score": float(score),
    }


def encode_mask(mask) -> dict:
    """Compressed RLE of a 2-D binary mask, JSON-ready (``counts`` as str)."""
    _, _, mask_utils = _pycocotools()
    m = np.asarray(mask)
    if m.ndim != 2:
        raise ValueError(f"mask must be 2-D, got shape {m.shape}")
    rle = mask_utils.encode(np.asfortranarray(m != 0, dtype=np.uint8))
    return {
        "size": [int(v) for v in rle["size"]],
        "counts": rle["counts"].decode("ascii"),
    }


def segm_result(image_id, category_id, mask, score: float) -> dict:
    """A segmentation record with the RLE of ``mask``.

    No ``bbox`` key is written on purpose: ``COCO.loadRes`` takes the area of a record
    with a ``bbox`` from the box (w * h), which would put masks into the wrong
    small/medium/large range; without it the area and box come from the mask.
    """
    return {
        "image_id": image_id,
        "category_id": category_id,
        "segmentation": encode_mask(mask),
        "score": float(score),
    }


@numba.njit(cache=True)
def _label_components(fg):
    """8-connected labels (1..n, raster order of first pixel) of a bool map, and n."""
    H, W = fg.shape
    labels = np.zeros((H, W), np.int32)
    stack = np.empty((H * W, 2), np.int32)
    n = 0
    for r0 in range(H):
        for c0 in range(W):
            if fg[r0, c0] and labels[r0, c0] == 0:
                n += 1
                labels[r0, c0] = n
                top = 0
                stack[0, 0] = r0
                stack[0, 1] = c0
                top = 1
                while top > 0:
                    top -= 1
                    r = stack[top, 0]
                    c = stack[top, 1]
                    for dr in range(-1, 2):
                        for dc in range(-1, 2):
                            rr = r + dr
                            cc = c + dc
                            if (
                                0 <= rr < H
                                and 0 <= cc < W
                                and fg[rr, cc]
                                and labels[rr, cc] == 0
                            ):
                                labels[rr, cc] = n
                                stack[top, 0] = rr
                                stack[top, 1] = cc
                                top += 1
    return labels, n


def cam_regions(
    scoremap, threshold: float, all_regions: bool = False
) -> list[np.ndarray]:
    """Binary masks of the CAM regions at ``threshold``.

    The foreground is the benchmark's: ``q > int(threshold * q.max())`` with
    ``q = (scoremap * 255)`` truncated to uint8 (see :mod:`hideseek.localization.boxes`).
    Regions are its 8-connected components (holes are not filled). ``all_regions=False``
    keeps the component with the most pixels (first in raster order on ties);
    ``True`` keeps all, in raster order of their first pixel. An empty foreground
    gives no region.
    """
    q = quantize(scoremap)
    level = int(threshold_levels(int(q.max()), [threshold])[0])
    labels, n = _label_components(q > level)
    if n == 0:
        return []
    if all_regions:
        return [labels == k for k in range(1, n + 1)]
    counts = np.bincount(labels.ravel(), minlength=n + 1)[1:]
    return [labels == int(np.argmax(counts)) + 1]


def _pixel_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]), int(rows[-1])


def cams_to_results(
    cams: Mapping,
    threshold: float,
    *,
    all_regions: bool = False,
    iou_type: str | Iterable[str] = ("bbox", "segm"),
    class_scores: Mapping | None = None,
    protocol_boxes: bool = False,
) -> dict[str, list[dict]]:
    """COCO result records from CAMs.

    Parameters
    ----------
    cams:
        ``{image_id: {category_id: score map}}``; each map is a 2-D float array in
        ``[0, 1]`` at the image's size (``(height, width)``).
    threshold:
        CAM threshold ``tau`` in ``[0, 1]`` (benchmark semantics, see :func:`cam_regions`).
    all_regions:
        False: one result per (image, class) from the largest region; True: one per
        region.
    iou_type:
        ``"bbox"``, ``"segm"`` or both; selects the keys of the returned dict.
    class_scores:
        Optional ``{image_id: {category_id: score}}`` (e.g. classifier probabilities).
        A record's score is the class score times the region's mean CAM value; without
        class scores it is the region's mean CAM value.
    protocol_boxes:
        False: the box is the region's pixel extent (``bbox`` equals
        ``pycocotools.mask.toBbox`` of the mask). True: boxes from
        :func:`~hideseek.localization.boxes.boxes_at_thresholds` (the benchmark's
        boxes, ``x + w`` corners read as inclusive; V1 when ``all_regions`` is False,
        V2 otherwise, which includes hole borders); only for ``"bbox"``. Their score is
        the mean CAM value inside the box.

    Returns
    -------
    dict
        ``{"bbox": [...], "segm": [...]}`` restricted to ``iou_type``.
    """
    kinds = (iou_type,) if isinstance(iou_type, str) else tuple(iou_type)
    for kind in kinds:
        if kind not in IOU_TYPES:
            raise ValueError(f"iou_type must be 'bbox' or 'segm', got {kind!r}")
    out: dict[str, list[dict]] = {kind: [] for kind in kinds}
    for image_id, per_class in cams.items():
        for category_id, scoremap in per_class.items():
            s = np.asarray(scoremap, dtype=np.float64)
            factor = 1.0
            if class_scores is not None:
                factor = float(class_scores[image_id][category_id])
            if protocol_boxes and "bbox" in out:
                for x0, y0, x1, y1 in boxes_at_thresholds(s, [threshold], all_regions)[
                    0
                ]:
                    region = s[y0 : y1 + 1, x0 : x1 + 1]
                    out["bbox"].append(
                        box_result(
                            image_id,
                            category_id,
                            (x0, y0, x1, y1),
                            factor * region.mean(),
                        )
                    )
            if not protocol_boxes or "segm" in out:
                for mask in cam_regions(s, threshold, all_regions):
                    score = factor * float(s[mask].mean())
                    if "bbox" in out and not protocol_boxes:
                        out["bbox"].append(
                            box_result(image_id, category_id, _pixel_box(mask), score)
                        )
                    if "segm" in out:
                        out["segm"].append(
                            segm_result(image_id, category_id, mask, score)
                        )
    return out


def _to_jsonable(value):
    if isinstance(value, dict):
        return {k: _to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, bytes):
        return value.decode("ascii")
    return value


def save_results(results: Sequence[dict], path: str | Path) -> Path:
    """Write result records as a COCO results JSON list (numpy scalars converted)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(_to_jsonable(list(results)), handle)
    return path


def load_results(path: str | Path, gt: COCOLocalization | None = None) -> list[dict]:
    """Read and check a COCO results file (a JSON list of records).

    Each record needs ``image_id``, ``category_id``, ``score`` and ``bbox`` or
    ``segmentation``; with ``gt`` the image and category ids must exist there.
    """
    path = Path(path)
    data = _read_json(path, list, "COCO results file (a list of records)")
    where = str(path)
    first_kind = None
    for k, rec in enumerate(data):
        what = f"result[{k}]"
        _require(where, rec, ("image_id", "category_id", "score"), what)
        if "bbox" not in rec and "segmentation" not in rec:
            raise COCOFormatError(
                f"{where}: {what} needs 'bbox' or 'segmentation': {_short(rec)}"
            )
        if not _is_number(rec["score"]):
            raise COCOFormatError(
                f"{where}: {what} 'score' must be a number, got {rec['score']!r}"
            )
        # loadRes takes the kind of every record from the first one (a box list, or masks
        # whose boxes it derives) and fails inside pycocotools (KeyError) on a record of the
        # other kind; which AP such a mixed file means is ambiguous, so it is refused here.
        kind = "bbox" if rec.get("bbox", []) != [] else "segmentation"
        first_kind = first_kind or kind
        if first_kind not in rec:
            raise COCOFormatError(
                f"{where}: {what} has no '{first_kind}' but result[0] does: a results file holds one kind "
                f"of record for pycocotools (it reads every record as the first); write box and mask "
                f"results to separate files"
            )
        if "bbox" in rec and (first_kind == "bbox" or rec["bbox"] != []):
            _check_bbox(where, what, rec["bbox"])
        size = None
        if gt is not None:
            if rec["image_id"] not in gt.coco.imgs:
                raise COCOFormatError(
                    f"{where}: {what} image id {rec['image_id']!r} is not in {gt.path}"
                )
            if rec["category_id"] not in gt.category_names:
                raise COCOFormatError(
                    f"{where}: {what} category id {rec['category_id']!r} is not in {gt.path}"
                )
            width, height = gt.image_size(rec["image_id"])
            size = (height, width)
        if "segmentation" in rec:
            _check_segmentation(where, what, rec["segmentation"], size)
    return data


# --------------------------------------------------------------------------- scoring


def _results_coco(gt_coco, results: list[dict]):
    """``gt_coco.loadRes(results)`` without its prints; no results gives an empty index."""
    if not results:
        # loadRes indexes results[0] and fails on an empty list; no detections -> AP 0.
        return _quiet_coco(
            {
                "images": list(gt_coco.dataset["images"]),
                "categories": list(gt_coco.dataset["categories"]),
                "annotations": [],
            }
        )
    with contextlib.redirect_stdout(io.StringIO()):
        # loadRes mutates the records it indexes (adds id, area, ...): give it copies.
        return gt_coco.loadRes([dict(r) for r in results])


def coco_eval(gt, results, iou_type: str = "bbox", verbose: bool = False):
    """Run ``COCOeval`` (evaluate, accumulate, summarize) and return the evaluator.

    ``gt``: a path or a :class:`COCOLocalization`; ``results``: a path or a list of
    records. ``verbose=True`` lets pycocotools print its progress and summary table.
    """
    _, COCOeval, _ = _pycocotools()
    if iou_type not in IOU_TYPES:
        raise ValueError(f"iou_type must be 'bbox' or 'segm', got {iou_type!r}")
    if not isinstance(gt, COCOLocalization):
        gt = load_coco(gt)
    if isinstance(results, (str, Path)):
        results = load_results(results, gt)
    else:
        results = list(results)
    if iou_type == "segm":
        for ann in gt.coco.dataset["annotations"]:
            if "segmentation" not in ann:
                raise COCOFormatError(
                    f"{gt.path}: segm AP needs 'segmentation' on every annotation; "
                    f"annotation {ann['id']} has none"
                )
    # COCOeval writes into the GT records ('ignore'; for segm it replaces 'segmentation'
    # by a compressed RLE with bytes counts): evaluate on shallow copies instead.
    dataset = dict(gt.coco.dataset)
    dataset["annotations"] = [dict(a) for a in dataset["annotations"]]
    gt_coco = _quiet_coco(dataset)
    dt = _results_coco(gt_coco, results)
    evaluator = COCOeval(gt_coco, dt, iou_type)
    sink = (
        contextlib.nullcontext()
        if verbose
        else contextlib.redirect_stdout(io.StringIO())
    )
    with sink:
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return evaluator


def coco_ap(
    gt, results, iou_type: str = "bbox", verbose: bool = False
) -> dict[str, float | None]:
    """COCO box or mask AP/AR, computed with ``pycocotools.cocoeval.COCOeval``.

    Parameters
    ----------
    gt:
        COCO instances file (path) or a :class:`COCOLocalization`.
    results:
        COCO results file (path) or a list of result records.
    iou_type:
        ``"bbox"`` or ``"segm"``.
    verbose:
        Let pycocotools print its summary table.

    Returns
    -------
    dict
        ``COCOeval.stats`` in percent under :data:`STAT_NAMES` (``AP``, ``AP50``,
        ``AP75``, ``APs``, ``APm``, ``APl``, ``AR1``, ``AR10``, ``AR100``, ``ARs``,
        ``ARm``, ``ARl``). A number ``COCOeval`` reports as ``-1`` (nothing to average,
        e.g. no large objects) is ``None``.
    """
    stats = coco_eval(gt, results, iou_type, verbose).stats
    return {
        name: (None if value < 0 else 100.0 * float(value))
        for name, value in zip(STAT_NAMES, stats)
    }
