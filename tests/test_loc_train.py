"""``hideseek loc train`` / ``loc evaluate --checkpoint`` end to end on tiny synthetic data."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hideseek.cli import main
from hideseek.localization.train import LocConfig, evaluate_checkpoint, train
from hideseek.results.records import read_records

TINY = dict(train=48, val=24, test=24, image_size=48, num_classes=3)
METRICS = ("Top-1 Cls", "Top-5 Cls", "GT-known Loc", "Top-1 Loc", "MaxBoxAccV2", "PxAP")


def tiny_config(**overrides):
    values = dict(synthetic=TINY, epochs=2, batch_size=16, crop_size=48, resize_size=48, feature_stage=2, augmentation="has",
                  aug_params={"grid_sizes": [0, 8, 16]})
    values.update(overrides)
    return LocConfig(**values)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    records = out / "records.jsonl"
    result = train(tiny_config(), out / "has", records=records, progress=False)
    return result, records


def test_train_evaluate_record(trained):
    result, records = trained
    test = result["results"]["test"]
    for key in METRICS:
        assert 0.0 <= test[key] <= 100.0, key
    assert test["num_images"] == 24
    assert result["results"]["test_calibrated"]["policy"]["name"] == "calibrated"
    # COCOeval AP beside MaxBoxAccV2, at the val-calibrated threshold
    assert test["coco_threshold"] == result["results"]["val"]["loc_threshold"]
    for key in ("COCO box AP", "COCO box AP50", "COCO box AP75", "COCO mask AP"):
        assert 0.0 <= test[key] <= 100.0, key
    rows = read_records(records)
    assert [(r["split"], r["policy"]["name"]) for r in rows] == [("val", "oracle"), ("test", "oracle"), ("test", "calibrated")]
    for row in rows:
        assert row["config"]["augmentation"] == "has" and row["seed"] == 0 and row["device"] == "cpu"
        assert row["wall_time"] > 0 and "commit" in row
    assert rows[1]["metrics"]["MaxBoxAccV2"] == test["MaxBoxAccV2"]


def test_checkpoint_evaluation_and_saved_scoremaps(trained, tmp_path):
    result, _ = trained
    maps = tmp_path / "maps"
    again = evaluate_checkpoint(result["checkpoint"], splits=["test"], scoremap_dir=maps, progress=False)
    for key in METRICS:
        assert again["test"][key] == result["results"]["test"][key], key
    # the saved maps, scored by the standalone evaluator on the benchmark's metadata, agree
    from hideseek.localization.data.dataset import SyntheticWSOL
    from hideseek.localization.data.synthetic import SyntheticConfig

    root = SyntheticWSOL(SyntheticConfig.from_dict(TINY), progress=False).root
    out = tmp_path / "standalone.json"
    assert main(["loc", "evaluate", "--metadata", str(root / "metadata" / "test"), "--scoremaps", str(maps),
                 "--resize-length", "48", "--output", str(out)]) == 0
    standalone = json.loads(out.read_text())
    assert standalone["MaxBoxAcc"] == result["results"]["test"]["MaxBoxAcc"]
    assert standalone["MaxBoxAccV2"] == result["results"]["test"]["MaxBoxAccV2"]


def test_resume_after_epoch_one_gives_same_metrics(trained, tmp_path, monkeypatch):
    """Kill a 2-epoch run right after its epoch-1 checkpoint, resume: same metrics."""
    from hideseek import engine

    result, _ = trained
    save = engine.Trainer.save_checkpoint

    def save_then_die(self, *args, **kwargs):
        path = save(self, *args, **kwargs)
        if self.epoch == 1:
            raise KeyboardInterrupt("simulated kill after epoch 1")
        return path

    with monkeypatch.context() as patch:
        patch.setattr(engine.Trainer, "save_checkpoint", save_then_die)
        with pytest.raises(KeyboardInterrupt):
            train(tiny_config(), tmp_path / "r", progress=False)
    resumed = train(tiny_config(), tmp_path / "r", progress=False, resume=True)
    assert resumed["fit"]["resumed_from"] == 1
    for key in METRICS:
        assert resumed["results"]["test"][key] == result["results"]["test"][key], key


def test_feature_has_inside_the_backbone(tmp_path):
    config = tiny_config(epochs=1, augmentation="feature-has", aug_params={"after": "layer1", "grid_sizes": 3})
    out = train(config, tmp_path / "f", progress=False)
    assert 0 <= out["results"]["test"]["GT-known Loc"] <= 100


@pytest.mark.parametrize(
    "args, message",
    [
        (["--backbone", "resnet181"], "unknown backbone 'resnet181'"),
        (["--augmentation", "hass"], "unknown augmentation 'hass'; available: cutout"),
    ],
)
def test_bad_names_list_valid_choices(args, message, capsys, tmp_path):
    assert main(["loc", "train", "--output", str(tmp_path / "x"), *args]) == 2
    err = capsys.readouterr().err
    assert message in err


def test_bad_pool_lists_choices(capsys):
    with pytest.raises(SystemExit):
        main(["loc", "train", "--pool", "gem"])
    assert "choose from 'avg', 'max', 'avgmax'" in capsys.readouterr().err
    with pytest.raises(ValueError, match="unknown pool 'gem'; valid choices: avg, max, avgmax"):
        LocConfig(pool="gem")


def test_dataset_folder_without_images_names_the_path(tmp_path, capsys):
    meta = Path(__file__).parent / "data" / "wsol"
    root = tmp_path / "split_root"
    for split in ("train", "val", "test"):
        (root / "metadata" / split).mkdir(parents=True)
        for name in ("image_ids.txt", "class_labels.txt", "image_sizes.txt", "localization.txt"):
            (root / "metadata" / split / name).write_text((meta / "boxes" / name).read_text())
    images = tmp_path / "no_images"
    images.mkdir()
    code = main(["loc", "train", "--dataset", "wsol", "--data-root", str(images), "--metadata-root",
                 str(root / "metadata"), "--output", str(tmp_path / "o")])
    assert code == 2
    assert f"{images}: image folder holds no images" in capsys.readouterr().err


def test_two_process_evaluation_equals_one(trained, tmp_path):
    """torchrun, gloo, 2 CPU processes: summed count states give exactly the 1-process numbers."""
    result, _ = trained
    out = tmp_path / "ddp.json"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone", "-m", "hideseek.cli",
           "loc", "evaluate", "--checkpoint", result["checkpoint"], "--splits", "test", "--records",
           str(tmp_path / "r.jsonl"), "--output", str(out)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    two = json.loads(out.read_text())["test"]
    for key in METRICS:
        assert two[key] == result["results"]["test"][key], key
    assert two["num_images"] == 24
    # test split alone: one oracle record (no val to calibrate on), written once, by rank 0
    assert [r["policy"]["name"] for r in read_records(tmp_path / "r.jsonl")] == ["oracle"]
