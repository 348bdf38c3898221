"""Tests for hideseek.localization.boxes: hand-worked cases and equivalence
with the per-threshold OpenCV reference."""

import numpy as np
import pytest

from hideseek.bench.workloads import cam_like_map
from hideseek.localization.boxes import (
    boxes_at_thresholds,
    iou_matrix,
    max_iou_at_thresholds,
    max_iou_at_thresholds_batch,
    quantize,
    reference_boxes_at_thresholds,
    reference_max_iou_at_thresholds,
    threshold_levels,
)

TAUS = np.arange(0, 1, 0.01)


def sorted_rows(boxes):
    boxes = np.asarray(boxes)
    return boxes[np.lexsort(boxes.T[::-1])]


def level_map(levels):
    """Score map whose quantised values are exactly ``levels`` (0..255)."""
    return np.asarray(levels, dtype=np.float64) / 255


def one_threshold(scoremap, tau, multi_contour=True):
    return boxes_at_thresholds(scoremap, [tau], multi_contour)[0]


# ---------------------------------------------------------------------------
# Quantisation, levels, IoU
# ---------------------------------------------------------------------------


def test_quantize_truncates_like_the_reference():
    s = np.array([[0.0, 0.5, 1.0], [0.999, 0.0039, 0.00393]])
    assert quantize(s).dtype == np.uint8
    np.testing.assert_array_equal(quantize(s), (s * 255).astype(np.uint8))
    np.testing.assert_array_equal(quantize(s.astype(np.float32)), (s.astype(np.float32).astype(np.float64) * 255).astype(np.uint8))


@pytest.mark.parametrize("q_max", [0, 1, 7, 100, 254, 255])
def test_threshold_levels_match_python_int(q_max):
    taus = np.concatenate([TAUS, np.linspace(0, 1, 37)])
    expected = [int(tau * q_max) for tau in taus]
    np.testing.assert_array_equal(threshold_levels(q_max, taus), expected)
    assert threshold_levels(q_max, taus).dtype == np.int64


def test_iou_matrix_inclusive_convention():
    a = np.array([[0, 0, 9, 9], [5, 5, 14, 14], [20, 20, 20, 20], [5, 5, 3, 5]])
    b = np.array([[0, 0, 9, 9], [5, 5, 3, 5]])
    iou = iou_matrix(a, b)
    assert iou.shape == (4, 2) and iou.dtype == np.float64
    assert iou[0, 0] == 1.0
    assert iou[1, 0] == 25 / (100 + 100 - 25)
    assert iou[2, 0] == 0.0
    assert iou[3, 1] == 0.0  # union <= 0 counts as no overlap


# ---------------------------------------------------------------------------
# Hand-worked maps
# ---------------------------------------------------------------------------


def test_no_foreground_gives_the_zero_box():
    gt = np.array([[0, 0, 0, 0], [0, 0, 3, 3]])
    for boxes in boxes_at_thresholds(np.zeros((6, 5)), TAUS):
        np.testing.assert_array_equal(boxes, [[0, 0, 0, 0]])
    v1, v2 = max_iou_at_thresholds(np.zeros((6, 5)), TAUS, gt)
    np.testing.assert_array_equal(v1, 1.0)
    np.testing.assert_array_equal(v2, 1.0)


def test_threshold_one_empties_the_foreground():
    s = np.full((4, 4), 0.7)
    np.testing.assert_array_equal(one_threshold(s, 1.0), [[0, 0, 0, 0]])
    np.testing.assert_array_equal(one_threshold(s, 0.99), [[0, 0, 3, 3]])


def test_constant_map_is_one_box_clipped_to_the_image():
    for multi in (True, False):
        for boxes in boxes_at_thresholds(np.full((5, 8), 0.5), TAUS, multi):
            np.testing.assert_array_equal(boxes, [[0, 0, 7, 4]])


def test_single_pixel_box_extends_one_past_the_pixel():
    s = np.zeros((6, 7))
    s[2, 3] = 1.0
    np.testing.assert_array_equal(one_threshold(s, 0.5), [[3, 2, 4, 3]])
    s[5, 6] = 1.0  # bottom-right corner: clipped to the last pixel
    np.testing.assert_array_equal(sorted_rows(one_threshold(s, 0.5)), [[3, 2, 4, 3], [6, 5, 6, 5]])


def test_foreground_is_strictly_above_the_level():
    s = level_map([[127, 255, 128], [0, 126, 127]])  # m = 255, tau 0.5 -> level 127
    np.testing.assert_array_equal(sorted_rows(one_threshold(s, 0.5)), [[1, 0, 2, 1]])


def test_ring_with_hole_and_inner_blob():
    q = np.zeros((9, 9), int)
    q[0:7, 0:7] = 200
    q[1:6, 1:6] = 0
    q[3, 3] = 100  # inner blob, inside the hole at level < 100
    s = level_map(q)
    # level 50: ring (outer border), hole border, inner blob
    v2 = one_threshold(s, 50 / 200)
    np.testing.assert_array_equal(sorted_rows(v2), [[0, 0, 7, 7], [0, 0, 7, 7], [3, 3, 4, 4]])
    np.testing.assert_array_equal(one_threshold(s, 50 / 200, False), [[0, 0, 7, 7]])
    # level 150: the blob is gone, so is nothing else
    np.testing.assert_array_equal(sorted_rows(one_threshold(s, 150 / 200)), [[0, 0, 7, 7], [0, 0, 7, 7]])


def test_hole_box_is_the_hole_grown_by_one():
    q = np.full((8, 10), 200)
    q[3:5, 4:7] = 0  # hole rows 3..4, cols 4..6
    v2 = one_threshold(level_map(q), 0.5)
    # outer: whole image clipped; hole border rect x 3..7, y 2..5 -> [3, 2, 8, 6]
    np.testing.assert_array_equal(sorted_rows(v2), [[0, 0, 9, 7], [3, 2, 8, 6]])


def test_background_touching_the_border_is_no_hole():
    q = np.full((6, 6), 200)
    q[2:4, 0:3] = 0  # open to the left border
    np.testing.assert_array_equal(one_threshold(level_map(q), 0.5), [[0, 0, 5, 5]])


def test_diagonal_background_is_not_4_connected():
    q = np.full((6, 6), 200)
    q[2, 2] = q[3, 3] = 0  # two one-pixel holes touching at a corner
    v2 = sorted_rows(one_threshold(level_map(q), 0.5))
    np.testing.assert_array_equal(v2, [[0, 0, 5, 5], [1, 1, 4, 4], [2, 2, 5, 5]])


def test_v1_prefers_largest_area_not_pixel_count():
    q = np.zeros((10, 12), int)
    q[1, 0:9] = 200  # 9-pixel line: contour area 0
    q[4:6, 4:6] = 200  # 2x2 block: area 1
    np.testing.assert_array_equal(one_threshold(level_map(q), 0.5, False), [[4, 4, 6, 6]])


def test_v1_tie_goes_to_the_last_blob_in_raster_order():
    q = np.zeros((7, 7), int)
    q[1, 1] = q[1, 4] = q[4, 2] = q[5, 5] = 200  # four area-0 blobs
    np.testing.assert_array_equal(one_threshold(level_map(q), 0.5, False), [[5, 5, 6, 6]])
    q[5, 5] = 0
    np.testing.assert_array_equal(one_threshold(level_map(q), 0.5, False), [[2, 4, 3, 5]])


def test_thin_ring_ties_with_its_hole():
    q = np.zeros((5, 5), int)
    q[1, 2] = q[2, 1] = q[2, 3] = q[3, 2] = 200  # diamond around (2, 2)
    v2 = sorted_rows(one_threshold(level_map(q), 0.5))
    np.testing.assert_array_equal(v2, [[1, 1, 4, 4], [1, 1, 4, 4]])
    np.testing.assert_array_equal(one_threshold(level_map(q), 0.5, False), [[1, 1, 4, 4]])


def test_max_iou_with_several_gt_boxes():
    q = np.zeros((20, 20), int)
    q[2:6, 2:6] = 250  # box [2, 2, 6, 6] at any level < 250
    q[10:18, 12:19] = 120  # box [12, 10, 19, 18] below 120
    s = level_map(q)
    gt = np.array([[2, 2, 6, 6], [12, 10, 19, 18], [0, 0, 19, 19]])
    v1, v2 = max_iou_at_thresholds(s, [0.3, 0.6], gt)
    # tau 0.3 (level 75): both blobs; V1 is the bigger one (matches GT 2)
    # tau 0.6 (level 150): only the small blob
    np.testing.assert_array_equal(v1, [1.0, 1.0])
    np.testing.assert_array_equal(v2, [1.0, 1.0])
    v1, v2 = max_iou_at_thresholds(s, [0.3], gt[[0, 2]])
    assert v2[0] == 1.0
    assert v1[0] == iou_matrix([[12, 10, 19, 18]], gt[[0, 2]]).max()


def test_batch_matches_single_maps():
    rng = np.random.default_rng(3)
    maps = np.stack([rng.random((12, 15)) ** 2 for _ in range(5)])
    gts = [np.array([[1, 1, 5, 5]]), np.array([[0, 0, 14, 11], [3, 3, 4, 4]]), [[2, 2, 9, 9]], [[0, 0, 1, 1]], [[5, 5, 5, 5]]]
    v1, v2 = max_iou_at_thresholds_batch(maps, TAUS, gts)
    for i in range(5):
        e1, e2 = max_iou_at_thresholds(maps[i], TAUS, gts[i])
        np.testing.assert_array_equal(v1[i], e1)
        np.testing.assert_array_equal(v2[i], e2)
    w1, w2 = max_iou_at_thresholds_batch(np.stack([quantize(m) for m in maps]), TAUS, gts)
    np.testing.assert_array_equal(w1, v1)
    np.testing.assert_array_equal(w2, v2)


@pytest.mark.parametrize(
    "scoremap, message",
    [
        (np.zeros((2, 2, 2)), "2-D"),
        (np.zeros((0, 3)), "empty"),
        (np.array([[0.0, np.nan]]), "NaN"),
        (np.array([[0.0, 1.5]]), r"\[0, 1\]"),
        (np.array([[-0.1, 0.5]]), r"\[0, 1\]"),
        (np.array([["a", "b"]]), "numeric"),
    ],
)
def test_invalid_scoremaps_are_rejected(scoremap, message):
    with pytest.raises(ValueError, match=message):
        boxes_at_thresholds(scoremap, TAUS)
    with pytest.raises(ValueError, match=message):
        max_iou_at_thresholds(scoremap, TAUS, [[0, 0, 1, 1]])


def test_invalid_thresholds_and_gt_are_rejected():
    s = np.zeros((3, 3))
    with pytest.raises(ValueError, match="thresholds"):
        boxes_at_thresholds(s, [0.5, 1.5])
    with pytest.raises(ValueError, match="thresholds"):
        boxes_at_thresholds(s, [])
    with pytest.raises(ValueError, match="gt_boxes"):
        max_iou_at_thresholds(s, TAUS, np.zeros((0, 4)))
    with pytest.raises(ValueError, match="gt_boxes"):
        max_iou_at_thresholds(s, TAUS, [[0, 0, 1]])
    with pytest.raises(ValueError, match="gt_boxes"):
        max_iou_at_thresholds(s, TAUS, [[0, 0, 1.5, 2]])


# ---------------------------------------------------------------------------
# Equivalence with the OpenCV reference
# ---------------------------------------------------------------------------


def small_maps(rng, n):
    """Tiny maps with few distinct values: holes, nesting, thin rings, ties."""
    for _ in range(n):
        h, w = rng.integers(3, 21, size=2)
        values = np.sort(rng.random(rng.integers(2, 7)))
        if rng.random() < 0.5:
            values[0] = 0.0
        yield values[rng.integers(0, values.size, size=(h, w))]


def random_gt(rng, shape):
    h, w = shape
    ys = np.sort(rng.integers(0, h, size=(rng.integers(1, 4), 2)), axis=1)
    xs = np.sort(rng.integers(0, w, size=(ys.shape[0], 2)), axis=1)
    return np.stack([xs[:, 0], ys[:, 0], xs[:, 1], ys[:, 1]], axis=1)


def assert_same_as_reference(s, taus, gt):
    for multi in (True, False):
        fast = boxes_at_thresholds(s, taus, multi)
        ref = reference_boxes_at_thresholds(s, taus, multi)
        assert len(fast) == len(ref) == len(taus)
        for tau, a, b in zip(taus, fast, ref):
            if multi:
                a, b = sorted_rows(a), sorted_rows(b)
            assert a.shape == b.shape and (a == b).all(), (tau, multi, a, b)
    fast_v1, fast_v2 = max_iou_at_thresholds(s, taus, gt)
    ref_v1, ref_v2 = reference_max_iou_at_thresholds(s, taus, gt)
    np.testing.assert_array_equal(fast_v1, ref_v1)
    np.testing.assert_array_equal(fast_v2, ref_v2)


def test_small_random_maps_match_opencv():
    pytest.importorskip("cv2", reason="the OpenCV reference needs opencv-python-headless")
    rng = np.random.default_rng(20240601)
    for s in small_maps(rng, 3000):
        q = quantize(s)
        # thresholds landing on every distinct value, plus both ends
        taus = np.concatenate([[0.0, 1.0], np.unique(q) / max(int(q.max()), 1)])
        assert_same_as_reference(s, taus, random_gt(rng, s.shape))


def test_edge_maps_match_opencv():
    pytest.importorskip("cv2", reason="the OpenCV reference needs opencv-python-headless")
    rng = np.random.default_rng(7)
    maps = [np.zeros((10, 10)), np.ones((10, 10)), np.full((7, 9), 0.5), np.zeros((1, 1)), np.ones((1, 5)), np.ones((5, 1))]
    maps += [(rng.random((h, w)) < p) * v for h, w, p, v in zip(rng.integers(1, 25, 300), rng.integers(1, 25, 300), rng.random(300), rng.choice([1.0, 0.5, 0.004], 300))]
    maps += [rng.random((40, 50)) for _ in range(5)]
    for s in maps:
        assert_same_as_reference(s, np.concatenate([TAUS[::4], [0.999, 1.0]]), random_gt(rng, s.shape))


def test_smooth_cam_maps_match_opencv():
    pytest.importorskip("cv2", reason="the OpenCV reference needs opencv-python-headless")
    rng = np.random.default_rng(11)
    for _ in range(50):
        s = cam_like_map(rng)
        assert_same_as_reference(s, TAUS, random_gt(rng, s.shape))


def test_bad_map_is_reported_before_bad_thresholds():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        boxes_at_thresholds(np.array([[0.0, 1.5]]), [2.0])
    with pytest.raises(ValueError, match="NaN"):
        max_iou_at_thresholds(np.array([[np.nan, 0.5]]), [-1.0], [[0, 0, 1, 1]])
