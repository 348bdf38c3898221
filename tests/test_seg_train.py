"""``hideseek seg demo --quick``, ``seg train``/``predict``/``evaluate``, end to end on tiny data."""

import csv
import json

import pytest
from PIL import Image

from hideseek.cli import main
from hideseek.results.records import read_records
from hideseek.segmentation.demo import run_seg_demo


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("seg") / "demo-seg"
    return out, run_seg_demo(out, quick=True, progress=False)


def test_quick_demo_writes_tables_figure_and_records(demo):
    out, result = demo
    assert set(result["files"]) >= {"csv", "markdown", "latex", "figure", "records"} and result["seconds"] > 0
    assert "| CAM (none) |" in result["markdown"] and "| HaS |" in result["markdown"]
    with open(out / "demo-seg.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["method"] for r in rows] == ["CAM (none)", "HaS"]
    for row in rows:
        for key in ("train mIoU", "train mIoU (val-cal.)", "test mIoU", "test mIoU (val-cal.)", "test pixel acc"):
            assert 0.0 < float(row[key]) <= 100.0
    assert "\\toprule" in (out / "demo-seg.tex").read_text()
    with Image.open(out / "demo-seg.png") as figure:
        assert figure.size[0] > 300 and figure.size[1] > 100
    records = read_records(out / "records.jsonl")
    assert len(records) == 2 * 5  # per run: val oracle, train and test under oracle and val-calibrated
    assert {r["task"] for r in records} == {"seg"}
    calibrated = [r for r in records if r["policy"]["name"] == "calibrated"]
    assert len(calibrated) == 4 and all(r["policy"]["source"] == "val" for r in calibrated)
    for run in ("seg-none-s0", "seg-has-s0"):
        val = next(r for r in records if r["run"] == run and r["split"] == "val")
        for r in records:
            if r["run"] == run and r["policy"]["name"] == "calibrated":
                assert r["metrics"]["bg_threshold"] == val["metrics"]["bg_threshold"]


def test_predict_then_evaluate_reproduces_the_sweep(demo, tmp_path, capsys):
    out, _ = demo
    checkpoint = out / "runs" / "seg-has-s0" / "last.pt"
    sweep = tmp_path / "sweep.json"
    assert main(["seg", "evaluate", "--checkpoint", str(checkpoint), "--splits", "val", "train",
                 "--output", str(sweep)]) == 0
    results = json.loads(sweep.read_text())
    records = read_records(out / "records.jsonl")
    trained = next(r for r in records if r["run"] == "seg-has-s0" and r["split"] == "train"
                   and r["policy"]["name"] == "calibrated")
    assert results["train_calibrated"]["mIoU"] == pytest.approx(trained["metrics"]["mIoU"], abs=1e-9)
    labels = tmp_path / "pseudo"
    assert main(["seg", "predict", "--checkpoint", str(checkpoint), "--split", "train", "--calibration", str(sweep),
                 "--output", str(labels)]) == 0
    manifest = json.loads((labels / "predictions.json").read_text())
    assert manifest["policy"]["name"] == "calibrated" and manifest["bg_threshold"] == results["val"]["bg_threshold"]
    from hideseek.segmentation.scenes import SceneConfig, SyntheticScenes
    from hideseek.segmentation.train import load_run

    config, _, _ = load_run(checkpoint)
    root = SyntheticScenes(SceneConfig.from_dict(config.scenes), progress=False).root
    scored = tmp_path / "scored.json"
    capsys.readouterr()
    assert main(["seg", "evaluate", "--predictions", str(labels), "--ground-truth", str(root / "SegmentationClass"),
                 "--num-classes", "5", "--split-file", str(root / "ImageSets" / "Segmentation" / "train.txt"),
                 "--output", str(scored)]) == 0
    direct = json.loads(scored.read_text())
    # the written PNGs score exactly what the one-pass sweep reported at that threshold
    assert direct["mIoU"] == pytest.approx(results["train_calibrated"]["mIoU"], abs=1e-9)
    assert direct["num_images"] == manifest["num_images"] == 64


def test_predict_needs_one_threshold_and_a_seg_checkpoint(demo, tmp_path, capsys):
    out, _ = demo
    checkpoint = out / "runs" / "seg-none-s0" / "last.pt"
    assert main(["seg", "predict", "--checkpoint", str(checkpoint), "--threshold", "1.5",
                 "--output", str(tmp_path / "x")]) == 2
    assert "threshold must lie in [0, 1)" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"mIoU": 3.0}))
    assert main(["seg", "predict", "--checkpoint", str(checkpoint), "--calibration", str(bad),
                 "--output", str(tmp_path / "y")]) == 2
    assert "no 'bg_threshold'" in capsys.readouterr().err
