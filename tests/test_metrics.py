"""WSOL metric accumulators on hand-worked cases, policies, merging, PxAP."""

import numpy as np
import pytest
import torch

from hideseek.cam.maps import nearest_indices, normalize_cams
from hideseek.localization.metrics import (
    BoxAccuracy,
    Calibrated,
    ClassificationAccuracy,
    Fixed,
    Oracle,
    PixelAP,
    box_accuracy,
    cam_thresholds,
    check_scoremap,
    pxap,
    topk_accuracy,
)


def block_map(size, y0, y1, x0, x1, value=1.0):
    m = np.zeros((size, size))
    m[y0:y1, x0:x1] = value
    return m


def test_hand_worked_box_accuracy():
    # image A: a 3x3 block of 1.0 at rows/cols 2..4 gives box [2,2,5,5] at every
    # threshold (x+w = 5); against GT [2,2,4,4]: IoU = 9 / (16 + 9 - 9) = 0.5625.
    # image B: an all-zero map has no contour, box [0,0,0,0], IoU 0 with GT [5,5,8,8].
    maps = np.stack([block_map(10, 2, 5, 2, 5), np.zeros((10, 10))])
    result = box_accuracy(maps, [[[2, 2, 4, 4]], [[5, 5, 8, 8]]])
    assert result["MaxBoxAcc"] == {"30": 50.0, "50": 50.0, "70": 0.0}
    assert result["MaxBoxAccV2"] == pytest.approx(100 / 3)
    assert result["GT-known Loc"] == 50.0 and result["MaxBoxAccV1"] == 50.0
    assert result["best_threshold"]["50"] == 0.0  # first maximum, as np.argmax
    assert result["num_images"] == 2
    assert result["policy"] == {"name": "oracle"}


def test_any_of_several_gt_boxes_counts():
    m = block_map(12, 6, 10, 6, 10)  # box [6,6,10,10]
    far, near = [0, 0, 2, 2], [6, 6, 9, 9]
    assert box_accuracy(m[None], [[far]])["MaxBoxAcc"]["50"] == 0.0
    assert box_accuracy(m[None], [[far, near]])["MaxBoxAcc"]["50"] == 100.0


def test_box_at_image_border_is_clipped():
    m = block_map(8, 4, 8, 4, 8)  # pixels 4..7: x+w = 8, clipped to 7
    # GT [4,4,7,7] matches exactly after clipping
    assert box_accuracy(m[None], [[[4, 4, 7, 7]]], iou_thresholds=[100])["MaxBoxAcc"]["100"] == 100.0


def test_threshold_tie_is_strict():
    # value 0.5 quantises to 127; at tau = 0.5 the level is int(0.5 * 255) = 127 and
    # pixels equal to the level are background (strict >); at tau = 0.49 they are in.
    m = np.zeros((10, 10))
    m[0:2, 0:2] = 1.0
    m[0:2, 2:8] = 0.5
    thresholds = np.array([0.49, 0.5])
    small, wide = [0, 0, 2, 2], [0, 0, 8, 2]
    hit_small = box_accuracy(m[None], [[small]], thresholds=thresholds, iou_thresholds=[100], policy=Fixed(0.5))
    hit_wide = box_accuracy(m[None], [[wide]], thresholds=thresholds, iou_thresholds=[100], policy=Fixed(0.49))
    assert hit_small["MaxBoxAcc"]["100"] == 100.0
    assert hit_wide["MaxBoxAcc"]["100"] == 100.0


def test_largest_versus_all_contours():
    # two blobs: a big one far from GT and a small one on the GT box
    m = np.zeros((20, 20))
    m[0:8, 0:8] = 1.0
    m[14:17, 14:17] = 1.0
    gt = [[14, 14, 17, 17]]
    all_contours = box_accuracy(m[None], [gt])
    largest = box_accuracy(m[None], [gt], multi_contour=False)
    assert all_contours["MaxBoxAcc"]["50"] == 100.0
    assert largest["MaxBoxAcc"]["50"] == 0.0
    assert all_contours["GT-known Loc"] == 0.0  # classic metric: largest contour


def test_top1_and_top5_loc():
    m = block_map(10, 2, 5, 2, 5)
    maps = np.stack([m, m, m])
    gts = [[[2, 2, 4, 4]]] * 3
    ranked = np.array([[7, 1, 2, 3, 4], [1, 7, 2, 3, 4], [1, 2, 3, 4, 5]])
    result = box_accuracy(maps, gts, ranked, np.array([7, 7, 7]))
    assert result["Top-1 Loc"] == pytest.approx(100 / 3)
    assert result["Top-5 Loc"] == pytest.approx(200 / 3)
    assert result["GT-known Loc"] == 100.0


def test_strict_iou_convention():
    # IoU exactly 0.5: [0,0,1,1] (4 px) against the 2-px box [0,0,1,0]... build it from a map
    m = np.zeros((6, 6))
    m[0:1, 0:2] = 1.0  # box [0,0,2,1] -> 3 x 2 = 6 px
    gt = [[0, 0, 2, 0]]  # 3 px, inside: IoU 3/6 = 0.5
    assert box_accuracy(m[None], [gt], iou_thresholds=[50])["MaxBoxAcc"]["50"] == 100.0
    assert box_accuracy(m[None], [gt], iou_thresholds=[50], strict_iou=True)["MaxBoxAcc"]["50"] == 0.0


def test_policies_fixed_and_calibrated():
    rng = np.random.default_rng(0)
    maps = rng.random((6, 16, 16))
    gts = [[[2, 2, 10, 12]], [[0, 0, 15, 15]], [[4, 4, 8, 8]], [[1, 3, 9, 14]], [[5, 0, 15, 6]], [[0, 8, 7, 15]]]
    thresholds = cam_thresholds(0.05)
    metric = BoxAccuracy(thresholds)
    metric.update(maps, gts)
    oracle = metric.compute(Oracle())
    for d in ("30", "50", "70"):
        fixed = metric.compute(Fixed(oracle["best_threshold"][d]))
        assert fixed["MaxBoxAcc"][d] == oracle["MaxBoxAcc"][d]
        assert fixed["policy"] == {"name": "fixed", "tau": oracle["best_threshold"][d]}
        assert metric.compute(Fixed(0.5))["MaxBoxAcc"][d] <= oracle["MaxBoxAcc"][d]
    calibrated = metric.compute(Calibrated.from_result(oracle, source="val.json"))
    assert calibrated["MaxBoxAcc"] == oracle["MaxBoxAcc"]
    assert calibrated["MaxBoxAccV2"] == oracle["MaxBoxAccV2"]
    assert calibrated["policy"]["name"] == "calibrated"
    # a fixed tau is scored literally: one the metric did not evaluate is refused, never snapped
    with pytest.raises(ValueError, match="0.123 was not evaluated"):
        metric.compute(Fixed(0.123))


def test_merge_equals_single_accumulator():
    rng = np.random.default_rng(1)
    maps = rng.random((8, 12, 12))
    gts = [[[1, 1, 8, 8], [3, 0, 11, 5]]] * 8
    ranked = rng.integers(0, 10, (8, 5))
    targets = rng.integers(0, 10, 8)
    whole = BoxAccuracy()
    whole.update(maps, gts, ranked, targets)
    a, b = BoxAccuracy(), BoxAccuracy()
    a.update(maps[:3], gts[:3], ranked[:3], targets[:3])
    b.update(maps[3:], gts[3:], ranked[3:], targets[3:])
    assert a.merge(b).compute() == whole.compute()
    for name, counts in whole.state_dict().items():
        assert isinstance(counts, np.ndarray) and counts.dtype == np.int64, name  # numpy: no torch needed
    whole.reset()
    with pytest.raises(RuntimeError, match="no images"):
        whole.compute()


def test_classification_accuracy_logits_and_ranks():
    logits = torch.tensor([[0.1, 0.9, 0.0], [0.8, 0.1, 0.1], [0.2, 0.3, 0.5]])
    targets = torch.tensor([1, 2, 2])
    result = topk_accuracy(logits, targets, topk=(1, 2))
    assert result == {"Top-1 Cls": pytest.approx(200 / 3), "Top-2 Cls": pytest.approx(200 / 3)}
    metric = ClassificationAccuracy((1,))
    metric.update(np.array([[1], [0], [2]]), np.array([1, 2, 2]))
    assert metric.compute()["Top-1 Cls"] == pytest.approx(200 / 3)


def test_pxap_hand_worked():
    scores = np.array([[[0.9, 0.1], [0.6, 0.3]]])
    mask = np.array([[[1, 0], [1, 255]]], dtype=np.uint8)
    assert pxap(scores, mask) == pytest.approx(100.0)
    # positives 0.9, 0.2; negative 0.5: AP = 1 * 0.5 + 0.5 * 0 + (2/3) * 0.5
    scores = np.array([[[0.9, 0.5], [0.2, 0.0]]])
    mask = np.array([[[1, 0], [1, 255]]], dtype=np.uint8)
    assert pxap(scores, mask) == pytest.approx(100 * (0.5 + 1 / 3))


def reference_style_pxap(maps, masks, thresholds):
    """PxAP written the reference's way: numpy.histogram over right-extended edges."""
    edges = np.append(thresholds, [1.0, 2.0, 3.0])
    pos = np.zeros(len(edges) - 1)
    neg = np.zeros(len(edges) - 1)
    for s, m in zip(maps, masks):
        pos += np.histogram(s[m == 1], bins=edges)[0]
        neg += np.histogram(s[m == 0], bins=edges)[0]
    tp = pos[::-1].cumsum()
    fn = pos.sum() - tp
    fp = neg[::-1].cumsum()
    nonzero = (tp + fp) != 0
    with np.errstate(invalid="ignore"):
        precision, recall = tp / (tp + fp), tp / (tp + fn)
    return (precision[1:] * np.diff(recall))[nonzero[1:]].sum() * 100


@pytest.mark.parametrize("interval", [0.01, 0.001, 0.05])
def test_pxap_matches_reference_histogram(interval):
    rng = np.random.default_rng(2)
    maps = rng.random((5, 32, 32))
    maps[0, :4] = 1.0  # scores at the top edge fall into [1, 2)
    maps[1, :4] = 0.0
    masks = rng.choice(np.array([0, 1, 255], dtype=np.uint8), size=(5, 32, 32), p=[0.5, 0.4, 0.1])
    thresholds = cam_thresholds(interval)
    metric = PixelAP(thresholds)
    for s, m in zip(maps, masks):
        metric.update(s[None], m[None])
    assert metric.compute()["PxAP"] == reference_style_pxap(maps, masks, thresholds)


def test_check_scoremap_errors():
    with pytest.raises(ValueError, match="map.npy: contains NaN"):
        check_scoremap(np.full((3, 3), np.nan), "map.npy")
    with pytest.raises(ValueError, match=r"values must lie in \[0, 1\]"):
        check_scoremap(np.full((3, 3), 1.5))
    with pytest.raises(ValueError, match="expected a 2-D map"):
        check_scoremap(np.zeros((1, 3, 3)))


def test_normalize_cams_reference_rules():
    cams = torch.tensor([[[1.0, 3.0], [2.0, 5.0]], [[2.0, 2.0], [2.0, 2.0]], [[0.0, float("nan")], [1.0, 2.0]]])
    out = normalize_cams(cams)
    assert torch.equal(out[0], torch.tensor([[0.0, 0.5], [0.25, 1.0]]))
    assert torch.equal(out[1], torch.zeros(2, 2))
    assert torch.equal(out[2], torch.zeros(2, 2))
    assert isinstance(normalize_cams(cams.numpy()), np.ndarray)


@pytest.mark.parametrize("source, target", [(300, 224), (448, 224), (100, 224), (224, 224), (7, 3), (501, 224)])
def test_nearest_indices_match_opencv(source, target):
    cv2 = pytest.importorskip("cv2", reason="OpenCV is the oracle for its own INTER_NEAREST")
    row = np.arange(source, dtype=np.float32)[None, :].repeat(2, axis=0)
    resized = cv2.resize(row, (target, 2), interpolation=cv2.INTER_NEAREST)[0]
    assert np.array_equal(resized.astype(np.int64), nearest_indices(source, target))
