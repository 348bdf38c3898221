"""Leaderboard configs and ``hideseek reproduce``."""

from pathlib import Path

import pytest

from hideseek.cli import main
from hideseek.localization.reproduce import TARGET_KEYS, load_row_config
from hideseek.results.records import read_records
from hideseek.results.report import load_published

CONFIGS = sorted((Path(__file__).parents[1] / "configs").glob("*.toml"))


def test_every_shipped_config_parses_and_targets_a_published_row():
    assert len(CONFIGS) == 12
    published = load_published()
    for path in CONFIGS:
        config, target, description = load_row_config(path, "/data")
        assert config.dataset == "wsol" and config.data_root.startswith("/data/") and description
        match = published
        for key in TARGET_KEYS:
            match = match[match[key] == target[key]]
        assert len(match) == 1, path.name


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
