"""Leaderboard configs and ``hideseek reproduce``."""

from pathlib import Path

import pytest

from hideseek.cli import main
from hideseek.localization.reproduce import TARGET_KEYS, load_row_config
from hideseek.results.records import read_records
from hideseek.results.report import load_published

CONFIGS = sorted((Path(__file__).parents[1] / "configs").glob("*.toml"))


def test_every_main_table_cell_has_a_config_that_targets_its_published_row():
    assert len(CONFIGS) == 54  # 6 methods x 3 networks x 3 datasets
    published = load_published()
    cells = set()
    for path in CONFIGS:
        config, target, description = load_row_config(path, "/data")
        assert config.dataset == "wsol" and config.data_root.startswith("/data/") and description
        assert config.backbone.startswith("wsol_") and config.pretrained_file.startswith("/data/weights/")
        cells.add((target["dataset"], target["backbone"], target["method"]))
        match = published
        for key in TARGET_KEYS:
            match = match[match[key] == target[key]]
        assert len(match) == 1, path.name
    assert len(cells) == 54


def test_one_cell_end_to_end_on_tiny_synthetic_data_with_the_benchmarks_network(tmp_path):
    """configs/cub-vgg16-acol.toml with the benchmark's VGG16 and ACoL, on 64 px synthetic images."""
    from hideseek.localization.reproduce import reproduce

    overrides = {"dataset": "synthetic", "synthetic": {"train": 16, "val": 8, "test": 8, "image_size": 64,
                                                       "num_classes": 3},
                 "pretrained_file": None, "epochs": 1, "batch_size": 8, "crop_size": 64, "resize_size": 64,
                 "cam_curve_interval": 0.01}
    out = reproduce(Path(__file__).parents[1] / "configs" / "cub-vgg16-acol.toml", records=tmp_path / "r.jsonl",
                    output=tmp_path / "run", overrides=overrides, progress=False)
    assert out["metric"] == "MaxBoxAccV2" and out["published"] == 57.4  # CAM 63.7 - 6.3
    assert 0.0 <= out["reproduced"] <= 100.0
    (record,) = [r for r in read_records(tmp_path / "r.jsonl") if r["split"] == "test" and r["policy"]["name"] == "oracle"]
    assert record["config"]["backbone"] == "wsol_vgg16" and record["config"]["wsol_method"] == "acol"


def test_reproduce_tiny_row_prints_published_beside_reproduced(tmp_path, capsys):
    config = tmp_path / "tiny.toml"
    config.write_text('''description = "smoke run on the synthetic benchmark"
[target]
dataset = "CUB"
split = "test"
backbone = "ResNet50"
method = "HaS"
metric = "MaxBoxAccV2"
[run]
dataset = "synthetic"
synthetic = { train = 48, val = 24, test = 24, image_size = 48, num_classes = 3 }
backbone = "resnet18"
feature_stage = 2
augmentation = "has"
aug_params = { grid_sizes = [0, 8, 16] }
epochs = 1
batch_size = 16
crop_size = 48
resize_size = 48
''')
    records = tmp_path / "r.jsonl"
    assert main(["reproduce", str(config), "--records", str(records), "--output", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert "published                        64.70" in out and "reproduced (oracle threshold)" in out
    assert {r["run"] for r in read_records(records)} == {"tiny"}


def test_bad_config_names_the_file(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text("[run]\nbackbone = 'resnet18'\n")
    assert main(["reproduce", str(bad)]) == 2
    assert "bad.toml: missing the [target] table" in capsys.readouterr().err
    bad.write_text("[target]\ndataset='CUB'\nsplit='test'\nbackbone='x'\nmethod='HaS'\nmetric='PxAP'\n[run]\npool = 'gem'\n")
    with pytest.raises(ValueError, match="bad.toml: \\[run\\] unknown pool 'gem'"):
        load_row_config(bad)
