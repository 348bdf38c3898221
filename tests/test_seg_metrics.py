"""mIoU accumulator, threshold sweep and pseudo-labels."""

import math

import numpy as np
import pytest
import torch

from hideseek.localization.metrics import Calibrated, Fixed, Oracle
from hideseek.segmentation.metrics import (
    LabelError,
    MeanIoU,
    ThresholdSweep,
    confusion_matrix,
    iou_from_confusion,
    mean_iou,
)
from hideseek.segmentation.pseudo import pseudo_labels


def _random_maps(seed: int, n=6, h=23, w=31, classes=21, ignore_share=0.1, drop=()):
    g = torch.Generator().manual_seed(seed)
    target = torch.randint(0, classes, (n, h, w), generator=g)
    preds = torch.randint(0, classes, (n, h, w), generator=g)
    # make predictions agree with GT often, so IoUs spread over (0, 1)
    agree = torch.rand(n, h, w, generator=g) < 0.6
    preds = torch.where(agree, target, preds)
    keep = min(set(range(classes)) - set(drop))
    for c in drop:  # classes absent from both prediction and ground truth
        preds[preds == c] = keep
        target[target == c] = keep
    target[torch.rand(n, h, w, generator=g) < ignore_share] = 255
    return preds, target


@pytest.mark.parametrize("seed,drop", [(0, ()), (1, (3, 7, 20)), (2, (0,)), (3, tuple(range(5, 21)))])
def test_miou_equals_torchmetrics_multiclass_jaccard(seed, drop):
    from torchmetrics.classification import MulticlassJaccardIndex

    preds, target = _random_maps(seed, drop=drop)
    reference = MulticlassJaccardIndex(num_classes=21, ignore_index=255)
    metric = MeanIoU(21, 255)
    for i in range(preds.shape[0]):  # both accumulate image by image
        reference.update(preds[i], target[i])
        metric.update(preds[i], target[i])
    ours = metric.compute()
    assert ours["mIoU"] == pytest.approx(100 * float(reference.compute()), abs=1e-4)
    assert ours["num_images"] == preds.shape[0]
    # per class: equal where the class occurs; absent classes are NaN here, 0 in torchmetrics
    per_class = MulticlassJaccardIndex(num_classes=21, ignore_index=255, average="none")(preds, target)
    for c, value in enumerate(ours["IoU"].values()):
        if c in drop:
            assert math.isnan(value) and float(per_class[c]) == 0.0
        else:
            assert value == pytest.approx(100 * float(per_class[c]), abs=1e-4)
    assert ours["num_classes_scored"] == 21 - len(drop)


def test_pixel_accuracy_and_hand_computed_iou():
    target = torch.tensor([[0, 0, 1, 1], [2, 2, 255, 255]])
    preds = torch.tensor([[0, 1, 1, 1], [2, 0, 2, 1]])
    conf = confusion_matrix(preds, target, num_classes=4)
    assert conf.tolist() == [[1, 1, 0, 0], [0, 2, 0, 0], [1, 0, 1, 0], [0, 0, 0, 0]]
    assert conf.dtype == np.int64 and np.array_equal(confusion_matrix(preds.numpy(), target.numpy(), 4), conf)
    out = iou_from_confusion(conf, ["bg", "a", "b", "c"])
    # bg: tp 1, fp 1, fn 1 -> 1/3; a: tp 2, fp 1 -> 2/3; b: tp 1, fn 1 -> 1/2; c absent -> left out
    assert out["IoU"]["bg"] == pytest.approx(100 / 3) and out["IoU"]["a"] == pytest.approx(200 / 3)
    assert out["IoU"]["b"] == pytest.approx(50.0) and math.isnan(out["IoU"]["c"])
    assert out["mIoU"] == pytest.approx(100 * (1 / 3 + 2 / 3 + 1 / 2) / 3)
    assert out["pixel_acc"] == pytest.approx(100 * 4 / 6) and out["num_pixels"] == 6


def test_accumulator_merge_reset_and_functional_twin():
    preds, target = _random_maps(5)
    whole = mean_iou(preds, target)
    a, b = MeanIoU(), MeanIoU()
    a.update(preds[:2], target[:2])
    b.update(preds[2:], target[2:])
    merged = a.merge(b).compute()
    assert merged["mIoU"] == pytest.approx(whole["mIoU"], abs=1e-12) and merged["num_images"] == 6
    assert a.confmat.dtype == np.int64
    a.reset()
    assert int(a.confmat.sum()) == 0 and int(a.num_images) == 0
    assert math.isnan(a.compute()["mIoU"])


def test_bad_labels_are_named():
    target = torch.zeros(4, 4, dtype=torch.long)
    with pytest.raises(LabelError, match=r"x\.png: predicted labels \[21\] outside the classes 0\.\.20"):
        confusion_matrix(torch.full((4, 4), 21), target, name="x.png")
    with pytest.raises(LabelError, match=r"y\.png: ground-truth labels \[30\] are not 0\.\.20 or 255"):
        confusion_matrix(target, torch.full((4, 4), 30), name="y.png")
    with pytest.raises(LabelError, match=r"z: prediction has shape \(4, 4\), ground truth \(4, 5\)"):
        confusion_matrix(target, torch.zeros(4, 5, dtype=torch.long), name="z")
    with pytest.raises(TypeError, match="integer class indices"):
        confusion_matrix(torch.zeros(4, 4), target)


def _scores(seed, n=4, k=5, h=19, w=17):
    g = torch.Generator().manual_seed(seed)
    scores = torch.rand(n, k, h, w, generator=g)
    present = torch.rand(n, k, generator=g) < 0.5
    present[:, 0] = True
    scores = scores * present[..., None, None]
    target = torch.randint(0, k + 1, (n, h, w), generator=g)
    target[torch.rand(n, h, w, generator=g) < 0.05] = 255
    return scores, target


def test_sweep_equals_direct_pseudo_labels_at_every_threshold():
    scores, target = _scores(0)
    thresholds = np.arange(0, 1, 0.05)
    sweep = ThresholdSweep(6, thresholds)
    sweep.update(scores[:2], target[:2])
    sweep.update(scores[2:], target[2:])
    curve = sweep.curve()
    for j, tau in enumerate(thresholds):
        direct = MeanIoU(6)
        direct.update(pseudo_labels(scores, tau), target)
        assert np.array_equal(sweep.confusion(j).numpy(), direct.confmat)
        assert curve[j] == pytest.approx(direct.compute()["mIoU"], abs=1e-9)
    best = sweep.compute(Oracle())
    assert best["mIoU"] == pytest.approx(np.nanmax(curve)) and best["policy"] == {"name": "oracle"}
    assert best["bg_threshold"] == pytest.approx(thresholds[int(np.nanargmax(curve))])
    fixed = sweep.compute(Fixed(0.25))
    assert fixed["bg_threshold"] == 0.25 and fixed["mIoU"] == pytest.approx(curve[5])
    calibrated = sweep.compute(Calibrated({"mIoU": 0.4}, source="val"))
    assert calibrated["policy"]["name"] == "calibrated" and calibrated["mIoU"] == pytest.approx(curve[8])
    with pytest.raises(ValueError, match="0.33 was not evaluated"):  # literal: never snapped to the grid
        sweep.compute(Fixed(0.33))


def test_pseudo_labels_background_wins_ties_and_absent_classes_never_win():
    scores = torch.tensor([[[0.2, 0.9]], [[0.0, 0.95]], [[0.0, 0.0]]])  # (K=3, 1, 2)
    assert pseudo_labels(scores, 0.2).tolist() == [[0, 2]]  # 0.2 is not above 0.2: background
    assert pseudo_labels(scores, 0.1).tolist() == [[1, 2]]
    assert pseudo_labels(scores, 0.99).tolist() == [[0, 0]]


def test_sweep_merge_and_counts_are_integers():
    scores, target = _scores(3)
    a, b, whole = ThresholdSweep(6), ThresholdSweep(6), ThresholdSweep(6)
    a.update(scores[:1], target[:1])
    b.update(scores[1:], target[1:])
    whole.update(scores, target)
    assert a.merge(b).counts.dtype == torch.int64
    assert torch.equal(a.counts, whole.counts) and int(a.num_images) == 4
