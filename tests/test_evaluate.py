"""``hideseek loc evaluate`` end to end on fixtures in the real WSOL layout.

The oracle is the reference pipeline written out with OpenCV: rescale GT boxes by
truncation, quantise each map, threshold strictly, take contour-tree boxes, IoU >= d/100,
best threshold on the split; for masks, OpenCV reads and nearest-resizes the PNGs and the
PR curve is read off numpy histograms.
"""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hideseek.cli import main
from hideseek.localization.data.metadata import load_metadata
from hideseek.localization.evaluate import EvaluationError, evaluate_scoremaps, resize_box
from hideseek.localization.metrics import Calibrated

DATA = Path(__file__).parent / "data" / "wsol"
cv2 = pytest.importorskip("cv2", reason="OpenCV runs the reference-style oracle pipeline")


def smooth_map(rng, size=224, blobs=3):
    yy, xx = np.mgrid[0:size, 0:size]
    m = np.zeros((size, size))
    for _ in range(blobs):
        cy, cx = rng.uniform(0, size, 2)
        sy, sx = rng.uniform(8, 60, 2)
        m += rng.uniform(0.3, 1) * np.exp(-((yy - cy) ** 2 / (2 * sy**2) + (xx - cx) ** 2 / (2 * sx**2)))
    m -= m.min()
    return m / m.max()


def write_scoremaps(root: Path, ids, rng):
    for image_id in ids:
        path = root / f"{image_id}.npy"
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, smooth_map(rng))


def reference_boxes(scoremap, tau, multi):
    q = np.expand_dims((scoremap * 255).astype(np.uint8), 2)
    _, binary = cv2.threshold(q, int(tau * np.max(q)), 255, cv2.THRESH_BINARY)
    contours = cv2.findContours(binary, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)[0]
    if not contours:
        return [[0, 0, 0, 0]]
    if not multi:
        contours = [max(contours, key=cv2.contourArea)]
    h, w = scoremap.shape
    out = []
    for c in contours:
        x, y, bw, bh = cv2.boundingRect(c)
        out.append([x, y, min(x + bw, w - 1), min(y + bh, h - 1)])
    return out


def reference_iou(a, b):
    a, b = np.asarray(a)[:, None], np.asarray(b)[None]
    iw = np.maximum(0, np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]) + 1)
    ih = np.maximum(0, np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]) + 1)
    inter = iw * ih
    area = lambda z: (z[..., 2] - z[..., 0] + 1) * (z[..., 3] - z[..., 1] + 1)  # noqa: E731
    den = area(a) + area(b) - inter
    return np.where(den > 0, inter / np.where(den > 0, den, 1), 0)


def reference_maxboxacc(meta, root, interval, multi, ious=(30, 50, 70)):
    thresholds = np.arange(0, 1, interval)
    correct = {d: np.zeros(len(thresholds)) for d in ious}
    for image_id in meta.image_ids:
        scoremap = np.load(root / f"{image_id}.npy")
        gts = [resize_box(b, meta.image_sizes[image_id], 224) for b in meta.boxes[image_id]]
        best = np.array([reference_iou(reference_boxes(scoremap, t, multi), gts).max() for t in thresholds])
        for d in ious:
            correct[d][best >= d / 100] += 1
    n = len(meta.image_ids)
    return {str(d): float((correct[d] * 100.0 / n).max()) for d in ious}


@pytest.fixture
def box_split(tmp_path):
    split = tmp_path / "meta"
    shutil.copytree(DATA / "boxes", split)
    maps = tmp_path / "maps"
    write_scoremaps(maps, load_metadata(split).image_ids, np.random.default_rng(3))
    return split, maps


def test_cli_box_split_matches_reference_pipeline(box_split, tmp_path, capsys):
    split, maps = box_split
    out = tmp_path / "result.json"
    assert main(["loc", "evaluate", "--metadata", str(split), "--scoremaps", str(maps), "--output", str(out)]) == 0
    result = json.loads(out.read_text())
    meta = load_metadata(split)
    assert result["MaxBoxAcc"] == reference_maxboxacc(meta, maps, 0.01, multi=True)
    assert result["MaxBoxAccV2"] == pytest.approx(np.mean(list(result["MaxBoxAcc"].values())))
    assert result["MaxBoxAccV1"] == reference_maxboxacc(meta, maps, 0.01, multi=False, ious=(50,))["50"]
    assert result["num_images"] == 4 and result["num_constant_maps"] == 0
    assert result["policy"] == {"name": "oracle"}
    assert set(result["best_threshold"]) == {"30", "50", "70"}
    assert result["seconds"] > 0
    assert "MaxBoxAccV2" in capsys.readouterr().out


def test_cli_box_v1_and_predictions(box_split, tmp_path):
    split, maps = box_split
    predictions = tmp_path / "pred.txt"
    # ranks: 001 correct top-1, 002 in top-5, 003 wrong, 004 correct top-1
    predictions.write_text("test/001.jpg,0,1,2,3,4\ntest/002.jpg,0,1,2,3,4\ntest/003.jpg,5,6,7,8,9\ntest/004.jpg,1,0,2,3,4\n")
    out = tmp_path / "r.json"
    code = main(["loc", "evaluate", "--metadata", str(split), "--scoremaps", str(maps), "--box-v1",
                 "--iou-thresholds", "50", "--predictions", str(predictions), "--output", str(out)])
    assert code == 0
    result = json.loads(out.read_text())
    meta = load_metadata(split)
    assert result["MaxBoxAcc"] == reference_maxboxacc(meta, maps, 0.01, multi=False, ious=(50,))
    assert result["Top-1 Cls"] == 50.0 and result["Top-5 Cls"] == 75.0
    assert result["Top-1 Loc"] <= result["Top-5 Loc"] <= result["GT-known Loc"]


def test_calibrated_policy_from_val_result(box_split, tmp_path):
    split, maps = box_split
    val = tmp_path / "val.json"
    main(["loc", "evaluate", "--metadata", str(split), "--scoremaps", str(maps), "--output", str(val)])
    out = tmp_path / "test.json"
    main(["loc", "evaluate", "--metadata", str(split), "--scoremaps", str(maps), "--policy", "calibrated",
          "--calibration", str(val), "--output", str(out)])
    oracle, calibrated = json.loads(val.read_text()), json.loads(out.read_text())
    assert calibrated["policy"]["name"] == "calibrated"
    assert calibrated["MaxBoxAcc"] == oracle["MaxBoxAcc"]  # same split: same numbers
    assert Calibrated.from_result(oracle).thresholds["MaxBoxAcc"] == oracle["best_threshold"]


def test_fixed_policy_cli(box_split, tmp_path):
    split, maps = box_split
    out = tmp_path / "fixed.json"
    assert main(["loc", "evaluate", "--metadata", str(split), "--scoremaps", str(maps), "--policy", "fixed",
                 "--tau", "0.2", "--output", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["policy"] == {"name": "fixed", "tau": 0.2}
    assert all(t == pytest.approx(0.2) for t in result["best_threshold"].values())


def test_missing_scoremaps_one_error_with_count(box_split, capsys):
    split, maps = box_split
    for name in ("001", "003", "004"):
        (maps / "test" / f"{name}.jpg.npy").unlink()
    assert main(["loc", "evaluate", "--metadata", str(split), "--scoremaps", str(maps)]) == 2
    err = capsys.readouterr().err
    assert "3 of 4 score maps are missing" in err
    assert "test/001.jpg" in err and "test/003.jpg" in err


@pytest.mark.parametrize(
    "bad, message",
    [
        (np.zeros((100, 100)), "has shape (100, 100), expected (224, 224)"),
        (np.full((224, 224), np.nan), "contains NaN"),
        (np.full((224, 224), 1.2), "values must lie in [0, 1]"),
        (np.zeros((224, 224), dtype=np.int64), "expected a float map"),
    ],
)
def test_bad_scoremap_names_the_file(box_split, bad, message):
    split, maps = box_split
    np.save(maps / "test" / "002.jpg.npy", bad)
    with pytest.raises(EvaluationError) as info:
        evaluate_scoremaps(split, maps, progress=False)
    assert message in str(info.value)
    assert "002.jpg.npy" in str(info.value)


def test_constant_maps_are_evaluated_as_reference_and_counted(box_split):
    split, maps = box_split
    np.save(maps / "test" / "001.jpg.npy", np.zeros((224, 224)))  # no contour: box [0,0,0,0]
    np.save(maps / "test" / "004.jpg.npy", np.full((224, 224), 0.5))  # whole image: [0,0,223,223]
    result = evaluate_scoremaps(split, maps, progress=False)
    assert result["num_constant_maps"] == 2
    meta = load_metadata(split)
    assert result["MaxBoxAcc"] == reference_maxboxacc(meta, maps, 0.01, multi=True)


def test_float32_maps_are_widened_before_quantising(box_split):
    split, maps = box_split
    meta = load_metadata(split)
    for image_id in meta.image_ids:
        path = maps / f"{image_id}.npy"
        np.save(path, np.load(path).astype(np.float32).astype(np.float64))
    expected = reference_maxboxacc(meta, maps, 0.01, multi=True)
    for image_id in meta.image_ids:
        path = maps / f"{image_id}.npy"
        np.save(path, np.load(path).astype(np.float32))
    assert evaluate_scoremaps(split, maps, progress=False)["MaxBoxAcc"] == expected


def write_mask_fixture(tmp_path, rng):
    split = tmp_path / "masks_meta"
    shutil.copytree(DATA / "masks", split)
    meta = load_metadata(split)
    mask_root = tmp_path / "mask_root"
    sizes = {"val/a1.jpg": (300, 200), "val/b2.jpg": (224, 224), "val/c3.jpg": (130, 410)}
    for image_id in meta.image_ids:
        w, h = sizes[image_id]
        for k, rel in enumerate(meta.mask_paths[image_id]):
            mask = np.zeros((h, w), np.uint8)
            y0, x0 = rng.integers(0, h // 2), rng.integers(0, w // 2)
            mask[y0 : y0 + h // 3 + 5 * k, x0 : x0 + w // 3] = 255
            (mask_root / rel).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(mask).save(mask_root / rel)
        if meta.ignore_paths[image_id]:
            ignore = np.zeros((h, w), np.uint8)
            ignore[: h // 2, w // 2 :] = 255
            Image.fromarray(ignore).save(mask_root / meta.ignore_paths[image_id])
    maps = tmp_path / "maps"
    write_scoremaps(maps, meta.image_ids, rng)
    return split, mask_root, maps, meta


def reference_gt_mask(mask_root, mask_paths, ignore_path):
    def load(p):
        m = np.float32(cv2.imread(str(mask_root / p), cv2.IMREAD_GRAYSCALE))
        return cv2.resize(m, (224, 224), interpolation=cv2.INTER_NEAREST) > 0.5

    fg = np.stack([load(p) for p in mask_paths]).any(axis=0)
    ignore = (load(ignore_path) & ~fg) if ignore_path else np.zeros_like(fg)
    return fg.astype(np.uint8) + 255 * ignore.astype(np.uint8)


def test_cli_mask_split_pxap_matches_reference(tmp_path):
    from test_metrics import reference_style_pxap

    split, mask_root, maps, meta = write_mask_fixture(tmp_path, np.random.default_rng(4))
    out = tmp_path / "pxap.json"
    assert main(["loc", "evaluate", "--metadata", str(split), "--scoremaps", str(maps), "--mask-root",
                 str(mask_root), "--output", str(out)]) == 0
    result = json.loads(out.read_text())
    scores = [np.load(maps / f"{i}.npy") for i in meta.image_ids]
    masks = [reference_gt_mask(mask_root, meta.mask_paths[i], meta.ignore_paths[i]) for i in meta.image_ids]
    assert result["PxAP"] == reference_style_pxap(scores, masks, np.arange(0, 1, 0.01))
    assert result["num_images"] == 3


def test_mask_split_needs_mask_root_and_files(tmp_path, capsys):
    split, mask_root, maps, meta = write_mask_fixture(tmp_path, np.random.default_rng(5))
    assert main(["loc", "evaluate", "--metadata", str(split), "--scoremaps", str(maps)]) == 2
    assert "pass --mask-root" in capsys.readouterr().err
    (mask_root / "val/b2_m0.png").unlink()
    assert main(["loc", "evaluate", "--metadata", str(split), "--scoremaps", str(maps), "--mask-root", str(mask_root)]) == 2
    assert "b2_m0.png: mask file not found" in capsys.readouterr().err
