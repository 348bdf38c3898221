"""Options and backbones (issue 14): --quick fills only what was not given and keeps the has-*
presets working, out-of-range sizes are one line naming the option before any work, a
reproduce TOML with wrong types names file and key, ``loc cam`` on a non-image names the
file, the backbones that crashed build and give CAMs, and ``torchrun -m hideseek`` runs."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cli_helpers import one_line_error, run
from hideseek import engine
from hideseek.cam.model import CAMNet

QUICK = ["loc", "train", "--quick", "--device", "cpu", "--no-eval", "--workers", "0"]


def saved_config(folder: Path) -> dict:
    return engine.read_checkpoint(folder / engine.CHECKPOINT_NAME)["extra"]["config"]


def test_quick_fills_only_what_was_not_given(tmp_path, capsys):
    folder = tmp_path / "given"
    code, _, err = run(capsys, *QUICK, "--epochs", 1, "--batch-size", 16, "--crop-size", 48, "--output", folder,
                       "--records", tmp_path / "r.jsonl")
    assert code == 0, err
    config = saved_config(folder)
    assert (config["epochs"], config["batch_size"], config["crop_size"]) == (1, 16, 48)
    assert config["synthetic"]["num_classes"] == 4 and config["synthetic"]["image_size"] == 64  # --quick's
    folder = tmp_path / "defaults"
    assert run(capsys, *QUICK, "--epochs", 1, "--output", folder, "--records", tmp_path / "r.jsonl")[0] == 0
    config = saved_config(folder)
    assert (config["batch_size"], config["crop_size"]) == (32, 64)


@pytest.mark.parametrize("preset", ["has-16", "has-mixed"])
def test_quick_with_a_has_preset_trains(tmp_path, capsys, preset):
    code, _, err = run(capsys, *QUICK, "--epochs", 1, "--augmentation", preset, "--output", tmp_path / "run",
                       "--records", tmp_path / "r.jsonl")
    assert code == 0, err
    assert saved_config(tmp_path / "run")["augmentation"] == preset


@pytest.mark.parametrize("option, value, needle", [
    ("--batch-size", "0", "--batch-size 0: expected an integer >= 1"),
    ("--crop-size", "0", "--crop-size 0: expected an integer >= 1"),
    ("--epochs", "0", "--epochs 0: expected an integer >= 1"),
    ("--feature-stage", "99", "--feature-stage 99: backbone 'resnet18' has feature stages 0..4"),
    ("--feature-stage", "-2", "--feature-stage -2: expected -1"),
    ("--lr", "nan", "--lr nan: expected a finite number > 0"),
    ("--resize-size", "32", "--resize-size 32: expected >= the crop size (64)"),
])
def test_out_of_range_options_are_one_line_before_any_work(tmp_path, capsys, option, value, needle):
    code, _, err = run(capsys, *QUICK, "--backbone", "resnet18", option, value, "--output", tmp_path / "run",
                       "--records", tmp_path / "r.jsonl")
    one_line_error(code, err, needle)
    assert not (tmp_path / "run").exists()


def test_action_train_epochs_zero_is_refused(tmp_path, capsys):
    code, _, err = run(capsys, "action", "train", "--quick", "--epochs", "0", "--device", "cpu", "--no-progress",
                       "--output", tmp_path / "run", "--records", tmp_path / "r.jsonl")
    one_line_error(code, err, "--epochs")
    assert not (tmp_path / "run" / "last.pt").exists()


@pytest.mark.parametrize("line, needle", [
    ("epochs = \"ten\"", "epochs = 'ten': expected an integer, got str"),
    ("batch_size = 0", "batch_size = 0: expected an integer >= 1"),
    ("lr = true", "lr = True: expected a number, got bool"),
    ("hflip = 1", "hflip = 1: expected true or false, got int"),
])
def test_reproduce_toml_with_a_wrong_type_names_file_and_key(tmp_path, capsys, line, needle):
    config = tmp_path / "row.toml"
    config.write_text('[target]\ndataset = "CUB"\nsplit = "test"\nbackbone = "ResNet50"\nmethod = "HaS"\n'
                      f'metric = "MaxBoxAccV2"\n\n[run]\ndataset = "synthetic"\nbackbone = "resnet18"\n{line}\n')
    code, _, err = run(capsys, "reproduce", config, "--output", tmp_path / "run")
    one_line_error(code, err, str(config), needle)
    assert not (tmp_path / "run").exists()


def test_reproduce_toml_target_of_the_wrong_type_names_the_key(tmp_path, capsys):
    config = tmp_path / "row.toml"
    config.write_text('[target]\ndataset = "CUB"\nsplit = "test"\nbackbone = 50\nmethod = "HaS"\n'
                      'metric = "MaxBoxAccV2"\n\n[run]\ndataset = "synthetic"\n')
    code, _, err = run(capsys, "reproduce", config)
    one_line_error(code, err, str(config), "[target] backbone = 50: expected a string")


@pytest.mark.parametrize("content", [b"not an image at all\n", b"\x89PNG\r\n\x1a\n" + b"\0" * 20])
def test_loc_cam_on_a_non_image_names_the_file(tmp_path, capsys, content):
    photo = tmp_path / "photo.png"
    photo.write_bytes(content)
    code, _, err = run(capsys, "loc", "cam", photo, "--output", tmp_path / "out")
    one_line_error(code, err, str(photo))
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- backbones


def _cam_shape(net: CAMNet, size: int) -> tuple:
    with torch.no_grad():
        logits = net.eval()(torch.rand(2, 3, size, size))
        maps = net.features(torch.rand(1, 3, size, size))
    assert logits.shape == (2, 3)
    return tuple(maps.shape)


@pytest.mark.parametrize("backbone, channels", [("vgg16", 512), ("mobilenetv3_small_100", 576)])
def test_whole_backbone_ends_at_the_last_feature_map(backbone, channels):
    """``feature_stage None`` (``--feature-stage -1``): the pre-logits layers timm keeps with
    ``num_classes=0`` (VGG's conv MLP, MobileNetV3's conv_head) are left out."""
    net = CAMNet(backbone, num_classes=3)
    assert _cam_shape(net, 64) == (1, channels, 2, 2)


@pytest.mark.parametrize("backbone, stage", [("vgg16", None), ("densenet121", None), ("convnext_atto", None),
                                             ("resnet18", 3), ("densenet121", 2)])
def test_large_feature_map_doubles_the_map(backbone, stage):
    small = _cam_shape(CAMNet(backbone, num_classes=3, feature_stage=stage), 96)
    large = _cam_shape(CAMNet(backbone, num_classes=3, feature_stage=stage, large_feature_map=True), 96)
    # one stride-2 step undone: twice the side (VGG's last pool, kept with stride 1, trims one)
    assert large[2] in (2 * small[2], 2 * small[2] - 1) and large[2] > small[2]


@pytest.mark.parametrize("size", [64, 96, 224])
def test_a_vit_gives_cams_at_any_size_its_patch_divides(size):
    net = CAMNet("vit_tiny_patch16_224", num_classes=3)
    assert _cam_shape(net, size) == (1, 192, size // 16, size // 16)


def test_a_vit_refuses_a_size_its_patch_does_not_divide():
    net = CAMNet("vit_tiny_patch16_224", num_classes=3)
    with pytest.raises(ValueError, match="not a multiple of its 16x16 patches"):
        net.features(torch.rand(1, 3, 100, 100))


def test_torchrun_launches_the_module(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=1", "--standalone",
                           "-m", "hideseek", "--version"], capture_output=True, text=True, timeout=180, env=env,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().startswith("hideseek ")


def test_a_vit_crop_size_its_patch_does_not_divide_is_one_line_before_any_work(tmp_path, capsys):
    code, _, err = run(capsys, *QUICK, "--backbone", "vit_tiny_patch16_224", "--crop-size", 72, "--output",
                       tmp_path / "run", "--records", tmp_path / "r.jsonl")
    one_line_error(code, err, "--crop-size 72", "multiples of its 16 px patches", "64 or 80")
    assert not (tmp_path / "run").exists()
