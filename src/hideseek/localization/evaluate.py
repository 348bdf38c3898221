"""Evaluate saved score maps against a WSOL metadata split.

This is the engine behind ``hideseek loc evaluate --metadata ... --scoremaps ...``. Score
maps are ``.npy`` files named by appending ``.npy`` to the image id, 2-D float in [0, 1]
at ``resize_length`` x ``resize_length``; GT boxes are rescaled from the original image
size to that square with each coordinate truncated to int, and GT masks are resized with
nearest-neighbour sampling, as the public WSOL benchmark does.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from hideseek.cam.maps import nearest_indices
from hideseek.inputs import InputError, confined, read_json, read_lines
from hideseek.localization.data.metadata import WSOLMetadata, load_metadata
from hideseek.localization.metrics import (
    V2_IOU_THRESHOLDS,
    BoxAccuracy,
    ClassificationAccuracy,
    Oracle,
    PixelAP,
    ThresholdPolicy,
    cam_thresholds,
    check_scoremap,
)

__all__ = [
    "EvaluationError",
    "resize_box",
    "load_gt_mask",
    "load_class_predictions",
    "evaluate_scoremaps",
]

RESIZE_LENGTH = 224
CHUNK = 64  # maps scored per parallel kernel call
PARALLEL_MIN_MAPS = 2000  # splits this large are scored by the multi-threaded kernel by default
OPENCV_FIRST_RUN_SEARCHES = 150_000  # contour searches OpenCV does in about 10 s; more: compile and wait


class EvaluationError(ValueError):
    """Input to an evaluation is missing or invalid; the message names the file."""


def resize_box(box: Sequence[float], image_size: tuple[int, int], length: int) -> tuple[int, int, int, int]:
    """Rescale ``x0, y0, x1, y1`` from ``image_size`` (w, h) to a ``length`` square, truncating."""
    x0, y0, x1, y1 = (float(v) for v in box)
    w, h = (float(v) for v in image_size)
    size = float(length)
    return int(x0 * size / w), int(y0 * size / h), int(x1 * size / w), int(y1 * size / h)


def _read_gray(path: Path, length: int) -> np.ndarray:
    if not path.is_file():
        raise EvaluationError(f"{path}: mask file not found")
    try:
        with Image.open(path) as image:
            gray = np.asarray(image.convert("L"), dtype=np.float32)
    except OSError as error:
        raise EvaluationError(f"{path}: cannot read mask image ({error})") from None
    rows = nearest_indices(gray.shape[0], length)
    cols = nearest_indices(gray.shape[1], length)
    return gray[rows][:, cols]


def load_gt_mask(mask_root: Path, mask_paths: Sequence[str], ignore_path: str,
                 length: int = RESIZE_LENGTH) -> np.ndarray:
    """GT mask at ``length`` x ``length``: 1 foreground (union of instances), 0 background, 255 ignore.

    Ignore = the ignore mask minus the foreground. An empty ``ignore_path`` means none.
    """
    foreground = np.zeros((length, length), dtype=bool)
    for mask_path in mask_paths:
        foreground |= _read_gray(_inside(mask_root, mask_path, "mask path"), length) > 0.5
    ignore = np.zeros_like(foreground)
    if ignore_path:
        ignore = (_read_gray(_inside(mask_root, ignore_path, "ignore mask path"), length) > 0.5) & ~foreground
    return foreground.astype(np.uint8) + 255 * ignore.astype(np.uint8)


def _inside(root: str | Path, relative: str, what: str) -> Path:
    """``root / relative``; an absolute path or one with ``..`` (it would read outside the
    root) is refused."""
    try:
        return confined(root, relative, what)
    except InputError as error:
        raise EvaluationError(str(error)) from None


def load_class_predictions(path: str | Path) -> dict[str, list[int]]:
    """Ranked class predictions per image id.

    JSON ``{"<image_id>": [c1, c2, ...]}`` or text lines ``<image_id>,c1,c2,...`` (best
    first; five classes for Top-5 Loc).
    """
    path = Path(path)
    if not path.is_file():
        raise EvaluationError(f"{path}: predictions file not found")
    if path.suffix == ".json":
        try:
            raw = read_json(path, dict, "predictions file (image id -> class list)")
        except InputError as error:
            raise EvaluationError(str(error)) from None
        out = {}
        for image_id, classes in raw.items():
            if not isinstance(classes, list) or not classes or \
                    not all(isinstance(c, int) and not isinstance(c, bool) for c in classes):
                raise EvaluationError(f"{path}: entry {image_id!r} must be a non-empty list of class indices")
            out[image_id] = classes
        return out
    out = {}
    try:
        lines = read_lines(path, "predictions file")
    except InputError as error:
        raise EvaluationError(str(error)) from None
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        if not text:
            continue
        image_id, *classes = (part.strip() for part in text.split(","))
        try:
            ranked = [int(c) for c in classes]
        except ValueError:
            ranked = []
        if not ranked:
            raise EvaluationError(f"{path}:{number}: expected '<image_id>,<c1>,...,<c5>', got {text!r}")
        if image_id in out and out[image_id] != ranked:
            raise EvaluationError(f"{path}:{number}: predictions of {image_id!r} conflict with an earlier line")
        out[image_id] = ranked
    return out


def _scoremap_path(root: Path, image_id: str) -> Path:
    """``root/<image_id>.npy``; an id that would leave ``root`` is refused (the metadata reader
    refuses them too; ids given in memory are checked here)."""
    return _inside(root, f"{image_id}.npy", "score map of image id")


def _check_complete(ids: Sequence[str], have, what: str, where: Path) -> None:
    missing = [i for i in ids if not have(i)]
    if missing:
        raise EvaluationError(
            f"{where}: {len(missing)} of {len(ids)} {what} missing, first: {missing[:5]}"
        )


def _load_scoremap(path: Path, length: int) -> np.ndarray:
    try:
        scoremap = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise EvaluationError(f"{path}: cannot read score map ({error})") from None
    return _checked_scoremap(scoremap, str(path), length)


def _checked_scoremap(scoremap: np.ndarray, name: str, length: int) -> np.ndarray:
    if scoremap.shape != (length, length):
        raise EvaluationError(f"{name}: score map has shape {scoremap.shape}, expected ({length}, {length})")
    try:
        check_scoremap(scoremap, name)
    except (TypeError, ValueError) as error:
        raise EvaluationError(str(error)) from None
    # the reference quantises float64 maps; float32 maps are widened first
    return scoremap.astype(np.float64, copy=False)


def checked_thresholds(cam_curve_interval: float, option: str = "--cam-curve-interval") -> np.ndarray:
    """The CAM threshold grid of ``cam_curve_interval``, or an :class:`EvaluationError` naming the option."""
    try:
        interval = float(cam_curve_interval)
    except (TypeError, ValueError):
        interval = float("nan")
    if not 0 < interval < 1:  # also refuses NaN
        raise EvaluationError(f"{option}: expected a step in (0, 1) such as 0.01, got {cam_curve_interval}")
    return cam_thresholds(interval)


def check_tau(tau: float, option: str = "--tau") -> float:
    """A fixed threshold in [0, 1) as a float, or an :class:`EvaluationError` naming the option.

    It need not be on the CAM threshold grid: a fixed threshold is scored at the literal
    value given (the oracle still sweeps the grid)."""
    try:
        value = float(tau)
    except (TypeError, ValueError):
        value = float("nan")
    if not 0.0 <= value < 1.0:  # also refuses NaN
        raise EvaluationError(f"{option}: expected a CAM threshold in [0, 1) such as 0.2, got {tau}")
    return value


def _choose_box_kernel(parallel: bool, maps: int, thresholds: int) -> str:
    """``"compiled"``, or ``"opencv"`` on a first run: when the compiled kernel is in neither
    this process nor numba's cache (building it takes most of a minute), a split small
    enough for OpenCV (``maps x min(thresholds, 256)`` contour searches, at most
    ``OPENCV_FIRST_RUN_SEARCHES``) is scored with OpenCV, the same numbers, and a
    detached process started afterwards builds the kernel for the next run."""
    from hideseek.localization import boxes

    if boxes.kernel_compiled(parallel) or maps * min(thresholds, 256) > OPENCV_FIRST_RUN_SEARCHES:
        return "compiled"
    return "opencv" if boxes.opencv_available() else "compiled"


def _opencv_pool():
    """Worker processes (forked: numpy and OpenCV are loaded, torch is not) for the OpenCV
    path, one per usable core up to 8; None on one core or where fork is unavailable."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from hideseek.workers import default_workers

    workers = default_workers()
    if workers < 2 or "fork" not in multiprocessing.get_all_start_methods() or "torch" in sys.modules:
        return None
    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"))


def evaluate_scoremaps(
    metadata: str | Path | WSOLMetadata,
    scoremaps: str | Path | Callable[[str], np.ndarray],
    *,
    mask_root: str | Path | None = None,
    cam_curve_interval: float = 0.01,
    iou_thresholds: Sequence[int] = V2_IOU_THRESHOLDS,
    box_v1: bool = False,
    predictions: str | Path | Mapping[str, Sequence[int]] | None = None,
    policy: ThresholdPolicy | None = None,
    resize_length: int = RESIZE_LENGTH,
    progress: bool | None = None,
    parallel: bool | None = None,
) -> dict:
    """Score every image of a metadata split; return the result dict (values in percent).

    Box splits give ``MaxBoxAcc`` (per IoU threshold), ``MaxBoxAccV2``, ``MaxBoxAccV1``,
    ``GT-known Loc`` and, with ``predictions``, ``Top-1 Loc``/``Top-5 Loc`` and the
    classification accuracies. Mask splits (``mask_root`` required) give ``PxAP``. Every
    result names its ``policy``, counts ``num_images`` and ``num_constant_maps`` (maps with
    one value everywhere, evaluated as the reference does), and ``seconds`` spent, then
    ``curves``: the BoxAcc(tau) curves or the PxAP precision-recall curve the numbers are
    read from (:meth:`BoxAccuracy.compute <hideseek.localization.metrics.BoxAccuracy.compute>`,
    :class:`~hideseek.localization.metrics.PixelAP`).
    ``scoremaps`` is a folder of ``<image_id>.npy`` files, or a function giving the
    ``(resize_length, resize_length)`` map of an image id (e.g. a baseline without a model).

    A :class:`~hideseek.cam.policies.Fixed` policy is scored at its literal ``tau``
    (evaluated besides the grid); the oracle and calibrated ones choose among the grid.

    ``parallel`` scores chunks of maps with the multi-threaded box kernel; ``None`` does so
    for splits of at least ``PARALLEL_MIN_MAPS`` images. Below that the single-threaded
    kernel is faster end to end: loading (or compiling) the parallel one costs about
    70 MB and more time than it saves. Both give the same numbers.
    """
    from tqdm.auto import tqdm

    from hideseek.localization.boxes import max_iou_at_thresholds

    policy = policy or Oracle()
    meta = metadata if isinstance(metadata, WSOLMetadata) else load_metadata(metadata)
    kind = meta.localization_type
    if kind is None:
        raise EvaluationError(f"{meta.root}: no localization.txt, nothing to evaluate")
    if callable(scoremaps):
        def read(image_id: str) -> np.ndarray:
            return _checked_scoremap(np.asarray(scoremaps(image_id)), f"score map of {image_id!r}", resize_length)
    else:
        root = Path(scoremaps)
        if not root.is_dir():
            raise EvaluationError(f"{root}: score map folder not found")

        def read(image_id: str) -> np.ndarray:
            return _load_scoremap(_scoremap_path(root, image_id), resize_length)
    if parallel is None:
        parallel = len(meta.image_ids) >= PARALLEL_MIN_MAPS
    chunk_size = CHUNK if parallel else 8  # a small chunk keeps the single-threaded path's memory flat
    thresholds = checked_thresholds(cam_curve_interval)
    box_kernel = pool = None
    if kind != "masks":
        box_kernel = _choose_box_kernel(parallel, len(meta.image_ids), len(thresholds))
        if box_kernel == "compiled":  # load (or compile) it before the clock starts: start-up, not evaluation
            if parallel:
                from hideseek.localization.boxes import warm_up

                warm_up(parallel=True)
            else:
                max_iou_at_thresholds(np.zeros((2, 2)), thresholds[:1], np.zeros((1, 4), dtype=np.int64))
    start = time.perf_counter()
    if not callable(scoremaps):
        _check_complete(meta.image_ids, lambda i: _scoremap_path(root, i).is_file(), "score maps are", root)

    ranked = None
    if predictions is not None:
        ranked = predictions if isinstance(predictions, Mapping) else load_class_predictions(predictions)
        _check_complete(meta.image_ids, lambda i: i in ranked, "images have no prediction;", Path(str(predictions)))

    if kind == "masks":
        if mask_root is None:
            raise EvaluationError(f"{meta.root}: this split has masks; pass --mask-root")
        metric = PixelAP(thresholds)
    else:
        if box_kernel == "compiled":
            box_kernel = "batch" if parallel else "single"
        metric = BoxAccuracy(thresholds, iou_thresholds, multi_contour=not box_v1, kernel=box_kernel,
                             extra_thresholds=policy.literal_thresholds())
        if box_kernel == "opencv":
            metric.pool = pool = _opencv_pool()
            if pool is not None:
                chunk_size = CHUNK
        classification = ClassificationAccuracy((1, 5))

    constant = 0
    chunk: list[str] = []

    def flush() -> None:
        """Score the buffered maps in one call (the box kernel runs a batch in parallel)."""
        maps = np.stack([read(i) for i in chunk])
        nonlocal constant
        constant += int((maps.min(axis=(1, 2)) == maps.max(axis=(1, 2))).sum())
        if kind == "masks":
            masks = np.stack([load_gt_mask(Path(mask_root), meta.mask_paths[i], meta.ignore_paths[i], resize_length)
                              for i in chunk])
            metric.update(maps, masks)
        else:
            boxes = [np.array([resize_box(b, meta.image_sizes[i], resize_length) for b in meta.boxes[i]],
                               dtype=np.int64)
                     for i in chunk]
            if ranked is None:
                metric.update(maps, boxes)
            else:
                width = max(len(ranked[i]) for i in chunk)
                classes = np.array([list(ranked[i]) + [-1] * (width - len(ranked[i])) for i in chunk], dtype=np.int64)
                labels = np.array([meta.class_labels[i] for i in chunk])
                metric.update(maps, boxes, classes, labels)
                classification.update(classes, labels)
        chunk.clear()

    quiet = None if progress is None else not progress
    for image_id in tqdm(meta.image_ids, desc="evaluating", unit="map", disable=quiet):
        chunk.append(image_id)
        if len(chunk) == chunk_size:
            flush()
    if chunk:
        flush()

    try:
        result = metric.compute() if kind == "masks" else metric.compute(policy)
    except ValueError as error:  # a calibrated threshold off the grid
        raise EvaluationError(str(error)) from None
    if kind == "masks":
        result["policy"] = {"name": "threshold-free"}
        result["num_images"] = len(meta.image_ids)
    elif ranked is not None:
        result.update(classification.compute())
    result["num_constant_maps"] = constant
    if box_kernel is not None:
        result["box_kernel"] = box_kernel
    if pool is not None:
        pool.shutdown()
    if box_kernel == "opencv":  # after scoring, so the build does not compete with it for the CPU
        from hideseek.localization import boxes

        boxes.warm_up_in_background(parallel)
    result["cam_curve_interval"] = cam_curve_interval
    result["metadata"] = str(meta.root)
    result["seconds"] = time.perf_counter() - start
    result["curves"] = result.pop("curves")  # last: the long lists after the numbers
    return result
