"""Box extraction at 100 thresholds: compiled sweep vs the per-threshold
OpenCV loop, on the same 64 smooth CAM-like 224x224 maps (V2 boxes, IoU with
1-3 ground-truth boxes).

Run with ``pytest benchmarks/bench_boxes.py --benchmark-only``.
"""

import numpy as np
import pytest

from hideseek.localization.boxes import (
    iou_matrix,
    max_iou_at_thresholds,
    max_iou_at_thresholds_batch,
    quantize,
)

N_MAPS = 64
SIZE = 224
THRESHOLDS = np.arange(0, 1, 0.01)


def _upsample(low, size):
    """Bilinear upsampling with aligned pixel centres, as CAMs are resized."""
    h, w = low.shape
    ys = (np.arange(size) + 0.5) * h / size - 0.5
    xs = (np.arange(size) + 0.5) * w / size - 0.5
    rows = np.stack([np.interp(xs, np.arange(w), row) for row in low])
    return np.stack([np.interp(ys, np.arange(h), col) for col in rows.T], axis=1)


def _cam_like(rng):
    """Smooth map in [0, 1]: a few blobs on a low-resolution random field."""
    res = int(rng.choice([7, 14, 28]))
    low = rng.random((res, res)) ** 3
    yy, xx = np.mgrid[0:res, 0:res] / res
    for _ in range(rng.integers(1, 4)):
        cy, cx = rng.random(2)
        sy, sx = rng.uniform(0.05, 0.3, size=2)
        low += rng.uniform(1, 3) * np.exp(-((yy - cy) ** 2 / (2 * sy**2) + (xx - cx) ** 2 / (2 * sx**2)))
    s = _upsample(low, SIZE)
    return (s - s.min()) / (s.max() - s.min())


def _gt_boxes(rng):
    n = rng.integers(1, 4)
    x0, y0 = rng.integers(0, SIZE // 2, size=(2, n))
    w, h = rng.integers(16, SIZE // 2, size=(2, n))
    return np.stack([x0, y0, np.minimum(x0 + w, SIZE - 1), np.minimum(y0 + h, SIZE - 1)], axis=1)


@pytest.fixture(scope="module")
def workload():
    rng = np.random.default_rng(2024)
    maps = [_cam_like(rng) for _ in range(N_MAPS)]
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
