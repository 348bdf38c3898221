"""Synthetic segmentation scenes: exact masks, VOC layout, reuse of the written benchmark."""

import numpy as np
import pytest
from PIL import Image

from hideseek.segmentation.scenes import (
    SceneConfig,
    SyntheticScenes,
    render_scene,
    scene_classes,
    scene_hash,
    write_scenes,
)
from hideseek.segmentation.voc import VOCSegmentation, image_labels, read_label_png

TINY = SceneConfig(num_classes=4, image_size=48, train=10, val=4, test=4, seed=2)


def test_scenes_are_seeded_and_exact():
    a, b = render_scene(TINY, "train", 3), render_scene(TINY, "train", 3)
    assert a["image"].tobytes() == b["image"].tobytes() and np.array_equal(a["labels"], b["labels"])
    assert render_scene(TINY, "val", 3)["image"].tobytes() != a["image"].tobytes()
    counts = []
    for index in range(TINY.train):
        scene = render_scene(TINY, "train", index)
        classes, labels = scene["classes"], scene["labels"]
        assert scene["image"].shape == (48, 48, 3) and labels.dtype == np.uint8
        assert 1 <= len(classes) <= 3 and len(set(classes)) == len(classes)  # distinct classes
        assert sorted(set(np.unique(labels).tolist()) - {0}) == sorted(c + 1 for c in classes)
        for cls, (x0, y0, x1, y1) in zip(classes, scene["boxes"]):
            ys, xs = np.nonzero(labels == cls + 1)
            assert (xs.min(), ys.min(), xs.max(), ys.max()) == (x0, y0, x1, y1)
        counts.append(len(classes))
    assert len(set(counts)) > 1


def test_bad_scene_config():
    with pytest.raises(ValueError, match="need >= 3 classes"):
        SceneConfig(num_classes=2)
    with pytest.raises(ValueError, match="objects range"):
        SceneConfig(objects=(0, 2))
    with pytest.raises(IndexError, match="out of range"):
        render_scene(TINY, "test", 4)


def test_written_in_the_voc_layout_and_reused(tmp_path):
    root = write_scenes(tmp_path / "scenes", TINY, progress=False, workers=1)
    info = (root / "benchmark.json").read_text()
    assert scene_hash(TINY) in info
    ids = (root / "ImageSets" / "Segmentation" / "val.txt").read_text().split()
    assert ids == [f"val_{i:06d}" for i in range(4)]
    scene = render_scene(TINY, "val", 2)
    assert np.asarray(Image.open(root / "JPEGImages" / "val_000002.png")).tobytes() == scene["image"].tobytes()
    assert np.array_equal(read_label_png(root / "SegmentationClass" / "val_000002.png"), scene["labels"])
    names = scene_classes(4)
    assert image_labels(root / "Annotations" / "val_000002.xml", names) == sorted(scene["classes"])
    data = VOCSegmentation(root, "val", classes=names)
    assert len(data) == 4 and data.has_masks
    stamp = (root / "benchmark.json").stat().st_mtime_ns
    write_scenes(root, TINY, progress=False, workers=1)  # complete: nothing rewritten
    assert (root / "benchmark.json").stat().st_mtime_ns == stamp
    (root / "JPEGImages" / "val_000001.png").unlink()  # incomplete: regenerated
    write_scenes(root, TINY, progress=False, workers=1)
    assert (root / "JPEGImages" / "val_000001.png").is_file()


def test_refuses_a_foreign_folder_and_opens_from_cache(tmp_path):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep")
    with pytest.raises(FileExistsError, match="refusing to write a synthetic scene benchmark"):
        write_scenes(foreign, TINY, progress=False)
    bench = SyntheticScenes(TINY, cache_dir=tmp_path / "cache", progress=False, workers=2)
    assert bench.root.parent.name == "scenes" and bench.open("test").classes == scene_classes(4)
    mean, std = bench.pixel_stats()
    assert len(mean) == 3 and all(0 < v < 1 for v in mean + std)
