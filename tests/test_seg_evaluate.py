"""``hideseek seg evaluate`` on folders of label PNGs: numbers and bad input."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from hideseek.cli import main
from hideseek.segmentation.evaluate import SegEvaluationError, evaluate_label_dirs
from hideseek.segmentation.metrics import MeanIoU
from hideseek.segmentation.voc import VOC_CLASSES, voc_palette, write_label_png

IDS = ["2007_000032", "2007_000039", "2007_000063"]


@pytest.fixture
def folders(tmp_path):
    rng = np.random.default_rng(0)
    gt_dir, pred_dir = tmp_path / "gt", tmp_path / "pred"
    maps = {}
    for k, image_id in enumerate(IDS):
        shape = (20 + k, 30 - k)
        gt = rng.integers(0, 21, shape).astype(np.uint8)
        gt[rng.random(shape) < 0.1] = 255
        pred = np.where(rng.random(shape) < 0.7, gt, rng.integers(0, 21, shape)).astype(np.uint8)
        pred[pred == 255] = 0
        write_label_png(gt_dir / f"{image_id}.png", gt)
        write_label_png(pred_dir / f"{image_id}.png", pred)
        maps[image_id] = (pred, gt)
    return pred_dir, gt_dir, maps


def test_numbers_match_the_accumulator_and_name_voc_classes(folders, tmp_path, capsys):
    pred_dir, gt_dir, maps = folders
    result = evaluate_label_dirs(pred_dir, gt_dir)
    metric = MeanIoU(21, 255)
    for pred, gt in maps.values():
        metric.update(torch.from_numpy(pred).long(), torch.from_numpy(gt).long())
    assert result["mIoU"] == pytest.approx(metric.compute()["mIoU"], abs=1e-12)
    assert list(result["IoU"]) == list(VOC_CLASSES) and result["num_images"] == 3
    split = tmp_path / "val.txt"
    split.write_text("2007_000039\n")
    out = tmp_path / "res.json"
    assert main(["seg", "evaluate", "--predictions", str(pred_dir), "--ground-truth", str(gt_dir),
                 "--split-file", str(split), "--output", str(out)]) == 0
    saved = json.loads(out.read_text())
    assert saved["num_images"] == 1 and "tvmonitor" in capsys.readouterr().out
    one = MeanIoU(21, 255)
    one.update(torch.from_numpy(maps["2007_000039"][0]).long(), torch.from_numpy(maps["2007_000039"][1]).long())
    assert saved["mIoU"] == pytest.approx(one.compute()["mIoU"], abs=1e-12)


def _fails(pred_dir, gt_dir, capsys, pattern):
    assert main(["seg", "evaluate", "--predictions", str(pred_dir), "--ground-truth", str(gt_dir)]) == 2
    err = capsys.readouterr().err
    assert pattern in err, err


def test_label_outside_the_classes_names_the_file(folders, capsys):
    pred_dir, gt_dir, maps = folders
    bad = maps[IDS[1]][0].copy()
    bad[0, 0] = 21
    write_label_png(pred_dir / f"{IDS[1]}.png", bad)
    _fails(pred_dir, gt_dir, capsys, f"{pred_dir / IDS[1]}.png: predicted labels [21] outside the classes 0..20")


def test_size_mismatch_names_both_files(folders, capsys):
    pred_dir, gt_dir, maps = folders
    write_label_png(pred_dir / f"{IDS[0]}.png", np.zeros((5, 7), np.uint8))
    _fails(pred_dir, gt_dir, capsys, f"{pred_dir / IDS[0]}.png: prediction is 7x5 (WxH), its ground truth "
                                     f"{gt_dir / IDS[0]}.png is 30x20")


def test_missing_prediction_is_counted_and_named(folders, capsys):
    pred_dir, gt_dir, _ = folders
    (pred_dir / f"{IDS[2]}.png").unlink()
    _fails(pred_dir, gt_dir, capsys, f"1 of 3 predictions missing in {pred_dir} (first: {pred_dir / IDS[2]}.png)")


def test_rgb_png_is_refused_with_its_name(folders, capsys):
    pred_dir, gt_dir, maps = folders
    Image.fromarray(voc_palette()[maps[IDS[1]][0]]).save(pred_dir / f"{IDS[1]}.png")  # colours, not indices
    _fails(pred_dir, gt_dir, capsys, f"{pred_dir / IDS[1]}.png: image mode 'RGB'; a label map must be a palette")
    Image.fromarray(voc_palette()[maps[IDS[1]][1]]).save(gt_dir / f"{IDS[0]}.png")
    with pytest.raises(Exception, match=rf"{IDS[0]}\.png: image mode 'RGB'"):
        evaluate_label_dirs(pred_dir, gt_dir)


def test_bad_ground_truth_label_names_the_file(folders):
    pred_dir, gt_dir, maps = folders
    gt = maps[IDS[0]][1].copy()
    gt[3, 3] = 40
    write_label_png(gt_dir / f"{IDS[0]}.png", gt)
    with pytest.raises(SegEvaluationError, match=rf"{IDS[0]}\.png: ground-truth labels \[40\] are not 0\.\.20 or 255"):
        evaluate_label_dirs(pred_dir, gt_dir)
