"""Box extraction at 100 thresholds: compiled sweep vs per-threshold OpenCV
loops, on the same 64 smooth CAM-like 224x224 maps (V2 boxes, IoU with 1-3
ground-truth boxes). Two loops: a lean one (quantise once, numpy threshold,
vectorised IoU per threshold) and one that does the public evaluator's per-map
work as that evaluator is written. Every row checks it gets the compiled result.

Run with ``pytest benchmarks/bench_boxes.py --benchmark-only``.
"""

import numpy as np
import pytest

from hideseek.bench.workloads import cam_like_map
from hideseek.localization.boxes import (
    iou_matrix,
    max_iou_at_thresholds,
    max_iou_at_thresholds_batch,
    quantize,
)

N_MAPS = 64
SIZE = 224
THRESHOLDS = np.arange(0, 1, 0.01)


def _gt_boxes(rng):
    n = rng.integers(1, 4)
    x0, y0 = rng.integers(0, SIZE // 2, size=(2, n))
    w, h = rng.integers(16, SIZE // 2, size=(2, n))
    return np.stack([x0, y0, np.minimum(x0 + w, SIZE - 1), np.minimum(y0 + h, SIZE - 1)], axis=1)


@pytest.fixture(scope="module")
def workload():
    rng = np.random.default_rng(2024)
    maps = [cam_like_map(rng, SIZE) for _ in range(N_MAPS)]
    gts = [_gt_boxes(rng) for _ in range(N_MAPS)]
    return maps, gts


def _opencv_v2(maps, gts):
    """The reference protocol: one findContours per threshold, numpy IoU."""
    import cv2

    out = np.empty((len(maps), THRESHOLDS.size))
    for i, (s, gt) in enumerate(zip(maps, gts)):
        q = quantize(s)
        q_max = int(q.max())
        for k, tau in enumerate(THRESHOLDS):
            mask = (q > int(tau * q_max)).astype(np.uint8) * 255
            contours = cv2.findContours(mask, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)[0]
            boxes = [[x, y, min(x + w, SIZE - 1), min(y + h, SIZE - 1)] for x, y, w, h in map(cv2.boundingRect, contours)]
            out[i, k] = iou_matrix(boxes or [[0, 0, 0, 0]], gt).max()
    return out


def _reference_style_accumulate(maps, gts):
    """The public evaluator's per-map work as it is written: per threshold, cv2.threshold on
    the (H, W, 1) uint8 map with ``np.max`` recomputed, findContours, one boundingRect per
    contour; then every box of every threshold against every GT box in one tiled IoU
    matrix, and a Python loop slicing the best IoU of each threshold."""
    import cv2

    out = np.empty((len(maps), THRESHOLDS.size))
    for i, (s, gt) in enumerate(zip(maps, gts)):
        image = np.expand_dims((s * 255).astype(np.uint8), 2)
        boxes, counts = [], []
        for tau in THRESHOLDS:
            _, binary = cv2.threshold(image, int(tau * np.max(image)), 255, cv2.THRESH_BINARY)
            contours = cv2.findContours(binary, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)[0]
            if not contours:
                boxes.append(np.asarray([[0, 0, 0, 0]]))
                counts.append(1)
                continue
            rects = []
            for contour in contours:
                x, y, w, h = cv2.boundingRect(contour)
                rects.append([x, y, min(x + w, SIZE - 1), min(y + h, SIZE - 1)])
            boxes.append(np.asarray(rects))
            counts.append(len(contours))
        a, b = np.concatenate(boxes, axis=0), np.asarray(gt)
        na, nb = a.shape[0], b.shape[0]
        a = np.tile(a, nb).reshape(na, nb, 4)
        b = np.transpose(np.tile(b, na).reshape(nb, na, 4), (1, 0, 2))
        iw = np.maximum(0, np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]) + 1)
        ih = np.maximum(0, np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]) + 1)
        inter = iw * ih
        union = ((a[..., 2] - a[..., 0] + 1) * (a[..., 3] - a[..., 1] + 1)
                 + (b[..., 2] - b[..., 0] + 1) * (b[..., 3] - b[..., 1] + 1) - inter)
        ious = np.where(union > 0, inter / np.where(union > 0, union, 1), 0).max(1)
        start = 0
        for k, count in enumerate(counts):
            out[i, k] = max(ious[start:start + count])
            start += count
    return out


def _compiled(maps, gts):
    return np.stack([max_iou_at_thresholds(s, THRESHOLDS, gt)[1] for s, gt in zip(maps, gts)])


def _compiled_batch(maps, gts):
    return max_iou_at_thresholds_batch(np.stack(maps), THRESHOLDS, gts)[1]


@pytest.mark.benchmark(group="box-extraction")
def test_opencv_per_threshold_loop(benchmark, workload):
    pytest.importorskip("cv2", reason="the reference loop needs opencv-python-headless")
    maps, gts = workload
    result = benchmark.pedantic(_opencv_v2, args=(maps, gts), rounds=3, iterations=1, warmup_rounds=1)
    np.testing.assert_array_equal(result, _compiled(maps, gts))


@pytest.mark.benchmark(group="box-extraction")
def test_reference_style_accumulate(benchmark, workload):
    pytest.importorskip("cv2", reason="the reference loop needs opencv-python-headless")
    maps, gts = workload
    result = benchmark.pedantic(_reference_style_accumulate, args=(maps, gts), rounds=3, iterations=1, warmup_rounds=1)
    np.testing.assert_array_equal(result, _compiled(maps, gts))


@pytest.mark.benchmark(group="box-extraction")
def test_compiled_sweep(benchmark, workload):
    maps, gts = workload
    _compiled(maps[:1], gts[:1])  # compile (or load from cache) before timing
    benchmark.pedantic(_compiled, args=(maps, gts), rounds=10, iterations=1, warmup_rounds=1)


@pytest.mark.benchmark(group="box-extraction")
def test_compiled_sweep_batch_threads(benchmark, workload):
    maps, gts = workload
    _compiled_batch(maps[:2], gts[:2])
    result = benchmark.pedantic(_compiled_batch, args=(maps, gts), rounds=10, iterations=1, warmup_rounds=1)
    np.testing.assert_array_equal(result, _compiled(maps, gts))
