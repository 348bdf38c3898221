"""The VOC 2012 loader on a tiny devkit: committed XML and lists, images and PNGs made here."""

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hideseek.segmentation.voc import (
    VOC_CLASSES,
    VOCError,
    VOCSegmentation,
    collate_seg,
    find_voc_root,
    image_labels,
    read_image_ids,
    read_label_png,
    voc_palette,
    write_label_png,
)

DATA = Path(__file__).parent / "data" / "voc"
IDS = ("2007_000032", "2007_000039", "2007_000063", "2008_000008", "2009_000001")
AUG_ONLY = "2009_000001"  # in train_aug, with a SegmentationClassAug mask only


def _size(image_id: str) -> tuple[int, int]:
    import xml.etree.ElementTree as ET

    root = ET.parse(DATA / "VOC2012" / "Annotations" / f"{image_id}.xml").getroot()
    return int(root.findtext("size/width")), int(root.findtext("size/height"))


def _mask(image_id: str) -> np.ndarray:
    """A label map with the image's classes in blocks and a 255 border around them."""
    width, height = _size(image_id)
    labels = image_labels(DATA / "VOC2012" / "Annotations" / f"{image_id}.xml")
    mask = np.zeros((height, width), np.uint8)
    for k, cls in enumerate(labels):
        x0 = 2 + k * (width // 2)
        mask[2:height - 2, x0:x0 + width // 2 - 4] = 255
        mask[3:height - 3, x0 + 1:x0 + width // 2 - 5] = cls + 1
    return mask


@pytest.fixture(scope="module")
def devkit(tmp_path_factory) -> Path:
    """VOCdevkit/VOC2012 with JPEGs, SegmentationClass palette PNGs (not for the aug-only
    image) and SegmentationClassAug single-channel PNGs (for the train_aug images)."""
    root = tmp_path_factory.mktemp("voc") / "VOCdevkit" / "VOC2012"
    shutil.copytree(DATA / "VOC2012", root)
    rng = np.random.default_rng(0)
    for image_id in IDS:
        width, height = _size(image_id)
        (root / "JPEGImages").mkdir(exist_ok=True)
        pixels = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / "JPEGImages" / f"{image_id}.jpg", quality=95)
        if image_id != AUG_ONLY:
            write_label_png(root / "SegmentationClass" / f"{image_id}.png", _mask(image_id))
    for image_id in read_image_ids(root / "ImageSets" / "SegmentationAug" / "train_aug.txt"):
        (root / "SegmentationClassAug").mkdir(exist_ok=True)
        Image.fromarray(_mask(image_id), "L").save(root / "SegmentationClassAug" / f"{image_id}.png")
    return root


def test_palette_is_the_devkit_colour_map():
    palette = voc_palette()
    assert palette.shape == (256, 3) and palette.dtype == np.uint8
    assert palette[:4].tolist() == [[0, 0, 0], [128, 0, 0], [0, 128, 0], [128, 128, 0]]
    assert palette[15].tolist() == [192, 128, 128]  # person
    assert palette[20].tolist() == [0, 64, 128]  # tvmonitor
    assert palette[255].tolist() == [224, 224, 192]  # the ignore / border colour


def test_label_png_round_trip_in_the_voc_format(tmp_path):
    labels = np.random.default_rng(1).integers(0, 21, (17, 23)).astype(np.uint8)
    labels[0] = 255
    path = write_label_png(tmp_path / "x.png", labels)
    with Image.open(path) as img:
        assert img.mode == "P" and img.format == "PNG"
        assert np.array_equal(np.asarray(img.getpalette(), np.uint8).reshape(-1, 3)[:256], voc_palette())
        # the colours an RGB viewer shows are the VOC colours of the indices
        assert np.array_equal(np.asarray(img.convert("RGB")), voc_palette()[labels])
    assert np.array_equal(read_label_png(path), labels)


def test_rgb_label_png_is_an_error_naming_the_file(tmp_path):
    path = tmp_path / "rgb.png"
    Image.fromarray(voc_palette()[np.ones((4, 4), np.uint8)]).save(path)
    with pytest.raises(VOCError, match=r"rgb\.png: image mode 'RGB'; a label map must be a palette"):
        read_label_png(path)
    with pytest.raises(FileNotFoundError, match="nothere.png"):
        read_label_png(tmp_path / "nothere.png")


def test_image_labels_from_xml_objects_only():
    ann = DATA / "VOC2012" / "Annotations"
    names = VOC_CLASSES[1:]
    assert [names[i] for i in image_labels(ann / "2007_000032.xml")] == ["aeroplane", "person"]  # part 'head' skipped
    assert [names[i] for i in image_labels(ann / "2007_000063.xml")] == ["chair", "dog"]  # difficult chair counts
    assert [names[i] for i in image_labels(ann / "2007_000063.xml", include_difficult=False)] == ["dog"]


def test_bad_xml_and_lists_name_the_file(tmp_path):
    bad = tmp_path / "bad.xml"
    bad.write_text("<annotation><object><name>unicorn</name></object></annotation>")
    with pytest.raises(VOCError, match=r"bad\.xml: object name 'unicorn' is not a class"):
        image_labels(bad)
    bad.write_text("<annotation><object>")
    with pytest.raises(VOCError, match=r"bad\.xml: malformed annotation XML"):
        image_labels(bad)
    listing = tmp_path / "train.txt"
    listing.write_text("2007_000032\n2007_000039 1\n")
    with pytest.raises(VOCError, match=r"train\.txt:2: expected one image id"):
        read_image_ids(listing)
    listing.write_text("a\nb\na\n")
    with pytest.raises(VOCError, match=r"train\.txt:3: image id 'a' listed twice"):
        read_image_ids(listing)


def test_voc_splits_labels_and_masks(devkit):
    assert find_voc_root(devkit.parent.parent) == devkit
    train = VOCSegmentation(devkit.parent, "train")
    assert train.image_ids == ["2007_000032", "2007_000039"] and len(train) == 2
    item = train[0]
    assert item["image"].size == (40, 30) and item["size"] == (40, 30)
    assert item["labels"].shape == (20,) and np.flatnonzero(item["labels"]).tolist() == [0, 14]
    assert item["mask"].dtype == np.uint8 and item["mask"].shape == (30, 40)
    assert set(np.unique(item["mask"]).tolist()) == {0, 1, 15, 255}
    assert train.mask_paths[0].parent.name == "SegmentationClass"
    val = VOCSegmentation(devkit, "val")
    assert np.flatnonzero(val[0]["labels"]).tolist() == [8, 11]  # chair (difficult) and dog
    assert np.flatnonzero(VOCSegmentation(devkit, "val", include_difficult=False)[0]["labels"]).tolist() == [11]
    assert len(VOCSegmentation(devkit, "trainval")) == 4


def test_train_aug_falls_back_to_segmentation_class_aug(devkit):
    aug = VOCSegmentation(devkit, "train_aug")  # found in ImageSets/SegmentationAug
    assert aug.image_ids[-1] == AUG_ONLY
    assert [p.parent.name for p in aug.mask_paths] == ["SegmentationClass", "SegmentationClass", "SegmentationClassAug"]
    assert np.array_equal(aug[2]["mask"], _mask(AUG_ONLY))
    only_aug = VOCSegmentation(devkit, "train_aug", masks="aug")
    assert all(p.parent.name == "SegmentationClassAug" for p in only_aug.mask_paths)
    with pytest.raises(FileNotFoundError, match=r"SegmentationClass/2009_000001\.png: mask of '2009_000001'"):
        VOCSegmentation(devkit, "train_aug", masks="class")
    assert VOCSegmentation(devkit, "train_aug", masks="none")[2]["mask"] is None


def test_collate_and_transform(devkit):
    import torch
    from torchvision.transforms import v2

    shown = v2.Compose([v2.ToImage(), v2.Resize((16, 16)), v2.ToDtype(torch.float32, scale=True)])
    data = VOCSegmentation(devkit, "trainval", shown)
    batch = collate_seg([data[i] for i in range(4)])
    assert batch["image"].shape == (4, 3, 16, 16) and batch["labels"].shape == (4, 20)
    assert [m.shape for m in batch["mask"]] == [(30, 40), (32, 36), (30, 40), (40, 32)]
    assert batch["index"].tolist() == [0, 1, 2, 3]


def test_missing_files_are_named(devkit, tmp_path):
    broken = tmp_path / "VOC2012"
    shutil.copytree(devkit, broken)
    (broken / "JPEGImages" / "2007_000039.jpg").unlink()
    with pytest.raises(FileNotFoundError, match=r"JPEGImages/2007_000039\.jpg: image of '2007_000039' \(listed in .*train\.txt\)"):
        VOCSegmentation(broken, "train")
    with pytest.raises(FileNotFoundError, match=r"ImageSets/Segmentation/test\.txt: split list of 'test' not found"):
        VOCSegmentation(broken, "test")
    (broken / "SegmentationClass" / "2007_000063.png").unlink()
    Image.fromarray(voc_palette()[_mask("2007_000063")]).save(broken / "SegmentationClass" / "2007_000063.png")
    with pytest.raises(VOCError, match=r"2007_000063\.png: image mode 'RGB'"):
        VOCSegmentation(broken, "val")[0]
    with pytest.raises(FileNotFoundError, match="not a VOC root"):
        find_voc_root(tmp_path / "nowhere")


def test_seg_train_on_the_devkit_end_to_end(devkit, tmp_path, capsys):
    """Images of different sizes: CAMs are upsampled to each image's own size for scoring."""
    from hideseek.cli import main

    out = tmp_path / "run"
    assert main(["seg", "train", "--dataset", "voc", "--data-root", str(devkit), "--epochs", "1", "--batch-size", "2",
                 "--crop-size", "32", "--output", str(out), "--records", str(tmp_path / "records.jsonl"),
                 "--json", str(tmp_path / "results.json")]) == 0
    results = __import__("json").loads((tmp_path / "results.json").read_text())
    assert set(results) == {"val", "train", "train_calibrated"}
    assert results["train"]["num_images"] == 2 and list(results["val"]["IoU"])[:2] == ["background", "aeroplane"]
    assert "train_calibrated" in capsys.readouterr().out
    labels = tmp_path / "pseudo"
    assert main(["seg", "predict", "--checkpoint", str(out / "last.pt"), "--split", "val", "--threshold", "0.3",
                 "--output", str(labels)]) == 0
    assert read_label_png(labels / "2008_000008.png").shape == (40, 32)  # the image's own size
