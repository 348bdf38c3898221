"""The synthetic WSOL benchmark and the WSOL image dataset."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from hideseek.localization.data.dataset import SyntheticWSOL, WSOLDataset, collate_wsol, load_rgb
from hideseek.localization.data.metadata import load_metadata
from hideseek.localization.data.synthetic import (
    SPLITS,
    SyntheticConfig,
    config_hash,
    labels_of,
    render,
    render_parts,
    write_benchmark,
)
from hideseek.localization.metrics import box_accuracy, pxap

TINY = SyntheticConfig(num_classes=3, image_size=48, train=12, val=6, test=9, seed=1)


@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> Path:
    return write_benchmark(tmp_path_factory.mktemp("syn") / "bench", TINY, progress=False, workers=1)


def test_render_is_deterministic_and_seeded():
    a = render(TINY, "train", 5)
    b = render(TINY, "train", 5)
    assert a[0].tobytes() == b[0].tobytes() and a[1:3] == b[1:3] and np.array_equal(a[3], b[3])
    assert a[0].shape == (48, 48, 3) and a[0].dtype == np.uint8 and a[3].dtype == bool
    other = render(SyntheticConfig(num_classes=3, image_size=48, train=12, val=6, test=9, seed=2), "train", 5)
    assert other[0].tobytes() != a[0].tobytes()
    assert render(TINY, "test", 5)[0].tobytes() != a[0].tobytes()


def test_one_image_regenerates_alone(bench):
    pixels, label, box, mask = render(TINY, "val", 4)
    stored = np.asarray(Image.open(bench / "images" / "val" / "000004.png"))
    assert stored.tobytes() == pixels.tobytes()
    assert np.array_equal(np.asarray(Image.open(bench / "masks" / "val" / "000004.png")) > 0, mask)


@pytest.mark.parametrize("split", SPLITS)
def test_box_is_bbox_of_mask_and_part_inside_body(split):
    config = SyntheticConfig(num_classes=4, image_size=64, train=40, val=40, test=40, seed=3)
    for index in range(40):
        out = render_parts(config, split, index)
        mask, body, part = out["mask"], out["body_mask"], out["part_mask"]
        ys, xs = np.nonzero(mask)
        assert out["box"] == (xs.min(), ys.min(), xs.max(), ys.max())
        assert part.any() and not (part & ~body).any()
        assert np.array_equal(mask, body | part)
        # the object lies wholly inside the image and the part is small
        x0, y0, x1, y1 = out["box"]
        assert 0 < x0 <= x1 < 63 and 0 < y0 <= y1 < 63
        assert part.sum() < 0.35 * body.sum()


def test_labels_balanced_and_tilt_encodes_class():
    config = SyntheticConfig(num_classes=6, train=100, val=7, test=13)
    for split in SPLITS:
        counts = np.bincount(labels_of(config, split), minlength=6)
        assert counts.max() - counts.min() <= 1 and counts.sum() == config.size(split)
    errors = []
    for index in range(60):
        out = render_parts(config, "train", index)
        if out["body_shows_class"]:
            tilt = min(out["orientation"], 180.0 - out["orientation"])
            errors.append(abs(tilt - 90.0 * out["label"] / 5))
    assert errors and np.median(errors) < 6.0


def test_layout_loads_and_gt_masks_score_perfectly(bench):
    for split in SPLITS:
        boxes = load_metadata(bench / "metadata" / split)
        masks = load_metadata(bench / "metadata_masks" / split)
        assert len(boxes) == TINY.size(split) and boxes.localization_type == "boxes"
        assert masks.localization_type == "masks" and masks.image_ids == boxes.image_ids
        assert boxes.image_sizes[boxes.image_ids[0]] == (48, 48)
        gt = [np.asarray(Image.open(bench / "masks" / masks.mask_paths[i][0])) > 0 for i in boxes.image_ids]
        maps = np.stack(gt).astype(np.float64)
        result = box_accuracy(maps, [boxes.boxes[i] for i in boxes.image_ids])
        assert result["MaxBoxAccV2"] == 100.0 and result["GT-known Loc"] == 100.0
        assert pxap(maps, np.stack(gt)) == pytest.approx(100.0)
        for i, image_id in enumerate(boxes.image_ids):
            assert boxes.class_labels[image_id] == render(TINY, split, i)[1]
    info = json.loads((bench / "benchmark.json").read_text())
    assert info["hash"] == config_hash(TINY) and SyntheticConfig.from_dict(info["config"]) == TINY


def test_existing_benchmark_is_reused_and_stale_one_rewritten(tmp_path):
    root = tmp_path / "b"
    config = SyntheticConfig(num_classes=2, image_size=32, train=3, val=2, test=2)
    write_benchmark(root, config, progress=False, workers=1)
    probe = root / "images" / "train" / "000000.png"
    os.utime(probe, (1, 1))
    write_benchmark(root, config, progress=False, workers=1)
    assert probe.stat().st_mtime == 1  # untouched
    bigger = SyntheticConfig(num_classes=2, image_size=32, train=4, val=2, test=2)
    write_benchmark(root, bigger, progress=False, workers=2)
    assert len(load_metadata(root / "metadata" / "train")) == 4
    assert probe.stat().st_mtime != 1
    other = tmp_path / "other"
    other.mkdir()
    (other / "keep.txt").write_text("x")
    with pytest.raises(FileExistsError, match=str(other)):
        write_benchmark(other, config, progress=False)


def test_wsol_dataset_on_written_benchmark(bench):
    ds = WSOLDataset(bench / "images", bench / "metadata" / "train")
    assert len(ds) == 12 and ds.num_classes == 3
    item = ds[7]
    pixels, label, box, _ = render(TINY, "train", 7)
    assert item["image"].mode == "RGB" and np.array_equal(np.asarray(item["image"]), pixels)
    assert item["label"] == label and item["index"] == 7 and item["image_id"] == "train/000007.png"
    assert item["boxes"].tolist() == [list(box)] and item["size"] == (48, 48)
    assert ds[-1]["index"] == 11
    with pytest.raises(IndexError):
        ds[12]

    tensor = WSOLDataset(bench / "images", bench / "metadata" / "test", transform=lambda im: torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1))
    batch = collate_wsol([tensor[i] for i in range(4)])
    assert batch["image"].shape == (4, 3, 48, 48) and batch["index"].tolist() == [0, 1, 2, 3]
    assert len(batch["boxes"]) == 4 and batch["label"].dtype == torch.long

    masked = WSOLDataset(bench / "images", bench / "metadata_masks" / "val", mask_root=bench / "masks")
    item = masked[2]
    assert np.array_equal(item["mask"], render(TINY, "val", 2)[3]) and not item["ignore"].any()
    assert item["boxes"].shape == (0, 4)


def test_synthetic_wsol_cache(tmp_path):
    config = SyntheticConfig(num_classes=2, image_size=32, train=4, val=2, test=2)
    data = SyntheticWSOL(config, cache_dir=tmp_path, progress=False, workers=1)
    train, val, test = data
    assert (len(train), len(val), len(test)) == (4, 2, 2)
    assert data.root.parent == tmp_path / "synthetic" and data.root.name == config_hash(config)[:12]
    again = SyntheticWSOL(config, cache_dir=tmp_path, progress=False, masks=True)
    assert again.root == data.root and again.test[0]["mask"].shape == (32, 32)


@pytest.mark.parametrize("mode", ["L", "RGBA", "CMYK", "P", "P-transparent", "I;16", "LA"])
def test_any_image_mode_loads_as_rgb(tmp_path, mode):
    rgb = np.zeros((6, 8, 3), np.uint8)
    rgb[:, :4] = (200, 30, 60)
    base = Image.fromarray(rgb, "RGB")
    ext = "png"
    if mode == "P-transparent":
        img = base.convert("P", palette=Image.Palette.ADAPTIVE)
        img.info["transparency"] = 0
    elif mode == "I;16":
        img = Image.fromarray(np.arange(48, dtype=np.uint16).reshape(6, 8) * 1000)
        assert img.mode == "I;16"
    elif mode == "CMYK":
        img, ext = base.convert("CMYK"), "jpg"
    elif mode == "P":
        img = base.convert("P", palette=Image.Palette.ADAPTIVE)
    else:
        img = base.convert(mode)
    path = tmp_path / f"x.{ext}"
    img.save(path, **({"transparency": 0} if mode == "P-transparent" else {}))
    out = load_rgb(path)
    assert out.mode == "RGB" and out.size == (8, 6)
    if mode in ("RGBA", "P"):
        assert tuple(np.asarray(out)[0, 0]) == (200, 30, 60)
    if mode == "I;16":
        assert np.asarray(out)[5, 7, 0] == round(47000 * 255 / 65535)


def test_dataset_converts_modes(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    meta = tmp_path / "meta"
    meta.mkdir()
    modes = ["L", "RGBA", "CMYK", "P"]
    for i, mode in enumerate(modes):
        Image.new("RGB", (5, 4), (10 * i, 20, 30)).convert(mode).save(images / f"{i}.{'jpg' if mode == 'CMYK' else 'png'}")
    ids = [f"{i}.{'jpg' if m == 'CMYK' else 'png'}" for i, m in enumerate(modes)]
    (meta / "image_ids.txt").write_text("".join(f"{i}\n" for i in ids))
    (meta / "class_labels.txt").write_text("".join(f"{i},0\n" for i in ids))
    ds = WSOLDataset(images, meta)
    assert all(ds[i]["image"].mode == "RGB" and ds[i]["image"].size == (5, 4) for i in range(4))


def test_empty_or_missing_image_folder_is_a_clear_error(tmp_path, bench):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match=f"{empty}: image folder holds no images"):
        WSOLDataset(empty, bench / "metadata" / "train")
    with pytest.raises(FileNotFoundError, match=f"{tmp_path / 'nope'}: image folder not found"):
        WSOLDataset(tmp_path / "nope", bench / "metadata" / "train")
    (empty / "unrelated.png").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="train/000000.png: image not found"):
        WSOLDataset(empty, bench / "metadata" / "train")
    with pytest.raises(ValueError, match="mask_root was given"):
        WSOLDataset(bench / "images", bench / "metadata" / "train", mask_root=bench / "masks")


def test_bad_config_and_index():
    with pytest.raises(ValueError, match="num_classes"):
        SyntheticConfig(num_classes=1)
    with pytest.raises(ValueError, match="low > high"):
        SyntheticConfig(body_aspect=(2.0, 1.0))
    with pytest.raises(IndexError, match="out of range"):
        render(TINY, "val", 6)
    with pytest.raises(ValueError, match="unknown split"):
        render(TINY, "dev", 0)


def _write_tiny(root):
    from hideseek.localization.data.synthetic import SyntheticConfig, write_benchmark

    write_benchmark(root, SyntheticConfig(num_classes=2, image_size=32, train=8, val=4, test=4), progress=False, workers=1)


def test_concurrent_writers_share_one_benchmark(tmp_path):
    """Parallel runs (tox p, DDP ranks) generating the same benchmark: one writes, all succeed."""
    import multiprocessing as mp

    root = tmp_path / "bench"
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_write_tiny, args=(str(root),)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert (root / "benchmark.json").is_file() and not (root / ".writing").exists()
    assert len(list((root / "images" / "train").iterdir())) == 8
