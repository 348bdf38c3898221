"""The first evaluation on a fresh install: OpenCV while the compiled box kernel is built.

A cold numba cache makes the compiled kernel's first call compile for most of a minute;
``evaluate_scoremaps`` then scores a small split with OpenCV, one contour search per
distinct level, and starts a detached process that builds the kernel. The numbers must be
those of the compiled kernel, bit for bit.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from hideseek.localization import boxes
from hideseek.localization import evaluate as ev
from hideseek.localization.data.metadata import load_metadata

cv2 = pytest.importorskip("cv2", reason="the first-run path is OpenCV's")
DATA = Path(__file__).parent / "data" / "wsol"


def cam(rng: np.random.Generator, size: int) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size] / size
    m = rng.random((size, size)) * 0.2
    for _ in range(int(rng.integers(1, 4))):
        cy, cx, sy, sx = rng.uniform(0, 1, 2).tolist() + rng.uniform(0.05, 0.3, 2).tolist()
        m += rng.uniform(0.3, 1) * np.exp(-((yy - cy) ** 2 / (2 * sy**2) + (xx - cx) ** 2 / (2 * sx**2)))
    return (m - m.min()) / (m.max() - m.min())


@pytest.mark.parametrize("interval", [0.01, 0.001])
def test_opencv_path_equals_compiled_kernel(interval):
    rng = np.random.default_rng(11)
    thresholds = np.arange(0, 1, interval)
    for size in (17, 64):
        for _ in range(6):
            scoremap = cam(rng, size)
            gt = np.array([[2, 3, size // 2, size - 4], [size // 3, 0, size - 1, size // 4]])
            ours = boxes.opencv_max_iou_at_thresholds(scoremap, thresholds, gt)
            compiled = boxes.max_iou_at_thresholds(scoremap, thresholds, gt)
            assert np.array_equal(ours[0], compiled[0]) and np.array_equal(ours[1], compiled[1])
    constant = np.zeros((8, 8))  # no foreground at any level: the single box [0, 0, 0, 0]
    box = [[0, 0, 3, 3]]
    ours, compiled = (boxes.opencv_max_iou_at_thresholds(constant, thresholds, box),
                      boxes.max_iou_at_thresholds(constant, thresholds, box))
    assert all(np.array_equal(a, b) for a, b in zip(ours, compiled))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        boxes.opencv_max_iou_at_thresholds(constant + 2, thresholds, [[0, 0, 3, 3]])


def test_cold_cache_scores_with_opencv_and_builds_the_kernel(tmp_path, monkeypatch):
    split = tmp_path / "meta"
    shutil.copytree(DATA / "boxes", split)
    maps = tmp_path / "maps"
    rng = np.random.default_rng(5)
    for image_id in load_metadata(split).image_ids:
        path = maps / f"{image_id}.npy"
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, cam(rng, 224))
    warm = ev.evaluate_scoremaps(split, maps, progress=False)
    assert warm["box_kernel"] == "single"  # a small split: the single-threaded compiled kernel
    started = []
    monkeypatch.setattr(boxes, "kernel_compiled", lambda parallel=False: False)
    monkeypatch.setattr(boxes, "warm_up_in_background", lambda parallel=False: started.append(parallel))
    cold = ev.evaluate_scoremaps(split, maps, progress=False)
    assert cold["box_kernel"] == "opencv" and started == [False]
    for key in ("MaxBoxAcc", "MaxBoxAccV2", "MaxBoxAccV1", "best_threshold", "loc_threshold", "num_images"):
        assert cold[key] == warm[key], key
    monkeypatch.setattr(ev, "OPENCV_FIRST_RUN_SEARCHES", 0)  # too large a split: compile and wait
    assert ev.evaluate_scoremaps(split, maps, progress=False)["box_kernel"] == "single"


def test_kernel_compiled_reads_numba_cache():
    boxes.warm_up(False)  # compiled (or loaded) in this process now
    assert boxes.kernel_compiled(False) and boxes.kernel_compiled(kind="boxes")


def test_box_accuracy_auto_kernel_uses_opencv_on_a_cold_cache(monkeypatch):
    from hideseek.localization.metrics import BoxAccuracy

    rng = np.random.default_rng(2)
    maps = np.stack([cam(rng, 40) for _ in range(5)])
    gts = [np.array([[3, 4, 30, 25]])] * 5
    compiled = BoxAccuracy(kernel="single")
    compiled.update(maps, gts)
    monkeypatch.setattr(boxes, "kernel_compiled", lambda parallel=False, kind="max_iou": False)
    auto = BoxAccuracy()
    auto.update(maps, gts)
    assert auto.box_kernel == "opencv" and compiled.box_kernel == "single"
    assert np.array_equal(auto.hits_all, compiled.hits_all) and np.array_equal(auto.hits_largest, compiled.hits_largest)


def test_cold_cache_without_opencv_compiles(monkeypatch):
    """cv2 is a test extra: a fresh install without it compiles the kernel instead."""
    from hideseek.localization.metrics import BoxAccuracy

    monkeypatch.setattr(boxes, "kernel_compiled", lambda parallel=False, kind="max_iou": False)
    monkeypatch.setattr(boxes, "opencv_available", lambda: False)
    metric = BoxAccuracy()
    metric.update(np.random.default_rng(0).random((2, 12, 12)), [np.array([[1, 1, 8, 8]])] * 2)
    assert metric.box_kernel == "batch" and int(metric.count) == 2
    assert ev._choose_box_kernel(False, 10, 100) == "compiled"


def test_background_build_starts_once_while_one_runs(monkeypatch, tmp_path):
    """Many cold-cache evaluations in a row start one compiler, not one each: while the lock
    of a build is held, warm_up_in_background starts nothing."""
    fcntl = pytest.importorskip("fcntl")
    import os
    import subprocess

    from hideseek.localization import boxes

    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    started = []
    monkeypatch.setattr(subprocess, "Popen", lambda *a, **k: started.append(k.get("pass_fds")) or "child")
    holder = os.open(boxes._warm_up_lock_path(False), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(holder, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert boxes.warm_up_in_background(False) is None
        assert started == []
    finally:
        os.close(holder)
    assert boxes.warm_up_in_background(False) == "child"
    assert len(started) == 1 and len(started[0]) == 1  # the child inherits the lock
