"""Scoring saved files never imports torch (which alone costs about 0.8 GB and most of a second).

Each test writes a tiny fixture in the real on-disk format, then runs one scoring command
(``loc evaluate``, ``action evaluate``, ``seg evaluate``) through :func:`hideseek.cli.main`
in a fresh interpreter where importing ``torch`` or any ``torch.*`` module raises
ImportError, and checks afterwards that no torch module was loaded. The numbers of the
fixtures are worked out by hand, so the commands are checked to score, not just to run.
"""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hideseek.segmentation.voc import voc_palette

# Runs in the child: block torch, run the CLI with the JSON-encoded argv of sys.argv[1],
# then fail (exit 3) if any torch module got loaded anyway.
NO_TORCH = """
import json, sys

class BlockTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError(f"import of {name!r} blocked: scoring saved files must not import torch")
        return None

sys.meta_path.insert(0, BlockTorch())
from hideseek.cli import main

code = main(json.loads(sys.argv[1]))
loaded = sorted(m for m in sys.modules if m == "torch" or m.startswith("torch."))
if loaded:
    print(f"torch modules loaded: {loaded}", file=sys.stderr)
    sys.exit(3)
sys.exit(code)
"""


def run_without_torch(argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-c", NO_TORCH, json.dumps(argv)], cwd=cwd, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr[-4000:]}"
    return proc


def test_the_child_really_blocks_torch(tmp_path):
    proc = subprocess.run([sys.executable, "-c", NO_TORCH.replace("from hideseek.cli import main", "import torch"),
                           "[]"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "import of 'torch' blocked" in proc.stderr


def test_loc_evaluate_scores_npy_maps_without_torch(tmp_path):
    # WSOL metadata layout: image_ids, class_labels, image_sizes, localization (boxes)
    meta = tmp_path / "metadata"
    meta.mkdir()
    size = 64
    ids = ["test/hit.jpg", "test/miss.jpg"]
    boxes = {"test/hit.jpg": (10, 12, 40, 30), "test/miss.jpg": (5, 5, 20, 20)}
    (meta / "image_ids.txt").write_text("".join(f"{i}\n" for i in ids))
    (meta / "class_labels.txt").write_text("".join(f"{i},{k}\n" for k, i in enumerate(ids)))
    (meta / "image_sizes.txt").write_text("".join(f"{i},{size},{size}\n" for i in ids))
    (meta / "localization.txt").write_text("".join(f"{i},{','.join(map(str, boxes[i]))}\n" for i in ids))
    # score maps <image id>.npy: 1 on the GT box of the first image, on a far corner for the second
    maps = tmp_path / "scoremaps"
    (maps / "test").mkdir(parents=True)
    for image_id, (x0, y0, x1, y1) in [("test/hit.jpg", boxes["test/hit.jpg"]), ("test/miss.jpg", (40, 40, 60, 60))]:
        scoremap = np.zeros((size, size))
        scoremap[y0:y1 + 1, x0:x1 + 1] = 1.0
        np.save(maps / f"{image_id}.npy", scoremap)
    out = tmp_path / "result.json"
    proc = run_without_torch(["loc", "evaluate", "--metadata", str(meta), "--scoremaps", str(maps),
                              "--resize-length", str(size), "--output", str(out)], tmp_path)
    result = json.loads(out.read_text())
    # the first map finds its box at every threshold, the second never overlaps its box
    assert result["MaxBoxAcc"] == {"30": 50.0, "50": 50.0, "70": 50.0}
    assert result["MaxBoxAccV2"] == pytest.approx(50.0) and result["num_images"] == 2
    assert "MaxBoxAccV2" in proc.stdout


def test_action_evaluate_scores_json_without_torch(tmp_path):
    gt = {"database": {
        "video_a": {"subset": "test", "annotations": [{"segment": [0.0, 10.0], "label": "Jump"},
                                                      {"segment": [20.0, 30.0], "label": "Jump"}]},
        "video_b": {"subset": "test", "annotations": [{"segment": [5.0, 15.0], "label": "Dive"}]},
        "video_c": {"subset": "validation", "annotations": [{"segment": [0.0, 4.0], "label": "Vault"}]},
    }}
    predictions = {"results": {
        "video_a": [{"segment": [0.0, 10.0], "label": "Jump", "score": 0.9},
                    {"segment": [50.0, 60.0], "label": "Jump", "score": 0.8},  # false positive between the hits
                    {"segment": [20.0, 30.0], "label": "Jump", "score": 0.7}],
        "video_b": [{"segment": [5.0, 15.0], "label": "Dive", "score": 0.6}],
    }}
    gt_path, pred_path, out = tmp_path / "gt.json", tmp_path / "pred.json", tmp_path / "result.json"
    gt_path.write_text(json.dumps(gt))
    pred_path.write_text(json.dumps(predictions))
    proc = run_without_torch(["action", "evaluate", "--ground-truth", str(gt_path), "--predictions", str(pred_path),
                              "--tiou", "0.5", "0.7", "--output", str(out)], tmp_path)
    result = json.loads(out.read_text())
    # Jump: precision 1 at recall 1/2, 2/3 at recall 1 -> AP 5/6; Dive: AP 1 -> mAP 11/12 (test subset only)
    assert result["protocol"] == "activitynet"
    assert result["mAP"].keys() == {"0.5", "0.7"}
    assert all(value == pytest.approx(100 * 11 / 12) for value in result["mAP"].values())
    assert "mAP@0.5" in proc.stdout


def write_palette_png(path: Path, labels) -> None:
    image = Image.fromarray(np.asarray(labels, np.uint8), "P")
    image.putpalette(voc_palette().reshape(-1).tolist())
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)


def test_seg_evaluate_scores_label_pngs_without_torch(tmp_path):
    gt_dir, pred_dir = tmp_path / "gt", tmp_path / "pred"
    # image 1: the hand-computed case (255 = ignore); image 2: 6 pixels of class 2, all right
    write_palette_png(gt_dir / "a.png", [[0, 0, 1, 1], [2, 2, 255, 255]])
    write_palette_png(pred_dir / "a.png", [[0, 1, 1, 1], [2, 0, 2, 1]])
    write_palette_png(gt_dir / "b.png", [[2, 2, 2], [2, 2, 2]])
    write_palette_png(pred_dir / "b.png", [[2, 2, 2], [2, 2, 2]])
    out = tmp_path / "result.json"
    proc = run_without_torch(["seg", "evaluate", "--predictions", str(pred_dir), "--ground-truth", str(gt_dir),
                              "--num-classes", "3", "--output", str(out)], tmp_path)
    result = json.loads(out.read_text())
    # confusion (rows GT) [[1, 1, 0], [0, 2, 0], [1, 0, 7]]: IoU 1/3, 2/3, 7/8; 10 of 12 pixels right
    assert result["IoU"] == pytest.approx({"0": 100 / 3, "1": 200 / 3, "2": 87.5})
    assert result["mIoU"] == pytest.approx(62.5) and result["pixel_acc"] == pytest.approx(100 * 10 / 12)
    assert result["num_images"] == 2 and result["num_pixels"] == 12
    assert "mIoU" in proc.stdout
