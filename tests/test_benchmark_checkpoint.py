"""``loc evaluate --checkpoint X.pth --architecture ...``: a checkpoint saved by the benchmark's own
code ({'state_dict': ...}, DataParallel's ``module.`` prefixes) is scored as it would score it."""

from __future__ import annotations

import json

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import v2

from hideseek.cli import main
from hideseek.localization import benchmark_model
from hideseek.localization.data.metadata import load_metadata
from hideseek.localization.data.synthetic import SyntheticConfig, write_benchmark


def test_benchmark_pth_is_scored_with_its_own_score_maps(tmp_path):
    root = write_benchmark(tmp_path / "syn", SyntheticConfig(num_classes=3, image_size=48, train=6, val=3, test=4),
                           progress=False)
    torch.manual_seed(0)
    model = benchmark_model("vgg16", "cam", num_classes=3).eval()
    checkpoint = tmp_path / "last_checkpoint.pth.tar"
    torch.save({"state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}, "epoch": 40}, checkpoint)
    out, maps = tmp_path / "result.json", tmp_path / "maps"
    code = main(["loc", "evaluate", "--checkpoint", str(checkpoint), "--architecture", "vgg16", "--wsol-method", "cam",
                 "--data-root", str(root / "images"), "--metadata-root", str(root / "metadata"), "--splits", "test",
                 "--save-scoremaps", str(maps), "--records", str(tmp_path / "r.jsonl"), "--output", str(out)])
    assert code == 0
    result = json.loads(out.read_text())["test"]
    assert result["num_images"] == 4 and 0 <= result["MaxBoxAccV2"] <= 100
    # the saved maps are the benchmark's score maps of the GT class on its 224 x 224 ImageNet-normalised input
    meta = load_metadata(root / "metadata" / "test")
    shown = v2.Compose([v2.ToImage(), v2.Resize((224, 224), antialias=True), v2.ToDtype(torch.float32, scale=True),
                        v2.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])
    for image_id in meta.image_ids:
        x = shown(Image.open(root / "images" / image_id).convert("RGB"))[None]
        expected, _, _ = model.cams(x, [meta.class_labels[image_id]])
        saved = np.load(maps / f"{image_id}.npy")
        assert np.abs(saved - expected[0, 0].double().numpy()).max() < 1e-5, image_id


def test_a_checkpoint_of_another_network_is_named(tmp_path, capsys):
    root = write_benchmark(tmp_path / "syn", SyntheticConfig(num_classes=3, image_size=48, train=6, val=3, test=4),
                           progress=False)
    checkpoint = tmp_path / "acol.pth"
    torch.save({"state_dict": benchmark_model("vgg16", "acol", num_classes=3).state_dict()}, checkpoint)
    code = main(["loc", "evaluate", "--checkpoint", str(checkpoint), "--architecture", "vgg16", "--data-root",
                 str(root / "images"), "--metadata-root", str(root / "metadata"), "--splits", "test"])
    assert code == 2
    err = capsys.readouterr().err
    assert f"{checkpoint}: does not fit the benchmark's vgg16 for cam" in err and err.count("\n") == 1
