"""Loaders of the native ILSVRC 2012 and CUB-200-2011 formats, and write_metadata.

The annotation fixtures under tests/data/{ilsvrc,cub} are text in the real formats; the tiny
images they describe are generated here at run time in grayscale, CMYK, RGBA and palette
modes to show that WSOLDataset opens them all as RGB.
"""

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hideseek.localization.data.cub import cub_metadata, read_cub_classes
from hideseek.localization.data.dataset import WSOLDataset
from hideseek.localization.data.ilsvrc import (
    ilsvrc_metadata,
    ilsvrc_train_metadata,
    ilsvrc_val_metadata,
    read_synsets,
    write_metadata,
)
from hideseek.localization.data.metadata import MetadataError, load_metadata

DATA = Path(__file__).parent / "data"
ILSVRC = DATA / "ilsvrc"
CUB = DATA / "cub"
SYNSETS = ILSVRC / "LOC_synset_mapping.txt"
WNIDS = ["n01440764", "n01443537", "n01484850"]


def _save(path: Path, size: tuple[int, int], mode: str, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rgb = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    img = Image.fromarray(rgb, "RGB")
    if mode == "P":
        img = img.quantize(8)
    elif mode != "RGB":
        img = img.convert(mode)
    img.save(path)


# ILSVRC val images: (file name, size from the XML, mode)
VAL_IMAGES = [
    ("ILSVRC2012_val_00000001.JPEG", (40, 30), "L"),
    ("ILSVRC2012_val_00000002.JPEG", (32, 48), "CMYK"),
    ("ILSVRC2012_val_00000003.png", (50, 36), "RGBA"),
]
TRAIN_MODES = ["L", "CMYK", "RGB"]


@pytest.fixture
def ilsvrc(tmp_path) -> Path:
    root = tmp_path / "ILSVRC2012"
    for c, wnid in enumerate(WNIDS):
        for n in range(2):
            mode = TRAIN_MODES[(c + n) % 3]
            _save(root / "train" / wnid / f"{wnid}_{n + 1}.JPEG", (20 + 4 * n, 18), mode, 10 * c + n)
    for k, (name, size, mode) in enumerate(VAL_IMAGES):
        _save(root / "val" / name, size, mode, 100 + k)
    return root


EXPECTED_VAL = {
    "val/ILSVRC2012_val_00000001.JPEG": (2, (40, 30), [(3, 4, 30, 25)]),
    "val/ILSVRC2012_val_00000002.JPEG": (0, (32, 48), [(0, 2, 15, 20), (10, 22, 31, 47)]),
    "val/ILSVRC2012_val_00000003.png": (1, (50, 36), [(12, 5, 44, 35)]),
}


def _same(a, b) -> None:
    assert a.image_ids == b.image_ids
    assert a.class_labels == b.class_labels
    assert a.image_sizes == b.image_sizes
    assert a.boxes == b.boxes
    assert a.mask_paths == b.mask_paths
    assert a.ignore_paths == b.ignore_paths


def _check_rgb(dataset: WSOLDataset) -> None:
    for item in dataset:
        assert item["image"].mode == "RGB"
        assert item["image"].size == item["size"] == dataset.metadata.image_sizes.get(item["image_id"], item["size"])


# --------------------------------------------------------------------------- ILSVRC


def test_synset_mapping_order():
    assert read_synsets(SYNSETS) == WNIDS


def test_ilsvrc_train(ilsvrc, tmp_path):
    meta = ilsvrc_train_metadata(ilsvrc)
    assert meta.image_ids[:3] == [
        "train/n01440764/n01440764_1.JPEG", "train/n01440764/n01440764_2.JPEG", "train/n01443537/n01443537_1.JPEG",
    ]
    assert [meta.class_labels[i] for i in meta.image_ids] == [0, 0, 1, 1, 2, 2]
    assert meta.image_sizes == {} and meta.localization_type is None
    _same(meta, ilsvrc_metadata(ilsvrc, "train", synsets=SYNSETS))
    # a class list in another order gives other labels
    other = ilsvrc_train_metadata(ilsvrc, synsets=WNIDS[::-1])
    assert [other.class_labels[i] for i in other.image_ids] == [2, 2, 1, 1, 0, 0]

    folder = write_metadata(meta, tmp_path / "metadata" / "train")
    assert sorted(p.name for p in folder.iterdir()) == ["class_labels.txt", "image_ids.txt"]
    _same(meta, load_metadata(folder))
    data = WSOLDataset(ilsvrc, folder)
    assert data.num_classes == 3
    _check_rgb(data)


def test_ilsvrc_train_folder_not_in_synsets(ilsvrc):
    with pytest.raises(MetadataError, match="n01484850.*is not in"):
        ilsvrc_train_metadata(ilsvrc, synsets=WNIDS[:2])


def test_ilsvrc_val_xml_and_csv_agree(ilsvrc, tmp_path):
    from_xml = ilsvrc_val_metadata(ilsvrc, annotations=ILSVRC / "val", synsets=SYNSETS)
    from_csv = ilsvrc_val_metadata(ilsvrc, annotations=ILSVRC / "LOC_val_solution.csv", synsets=SYNSETS)
    _same(from_xml, from_csv)
    assert from_xml.image_ids == list(EXPECTED_VAL)
    for image_id, (label, size, boxes) in EXPECTED_VAL.items():
        assert from_xml.class_labels[image_id] == label
        assert from_xml.image_sizes[image_id] == size
        assert from_xml.boxes[image_id] == boxes

    # round trip through the benchmark layout, then the dataset opens every mode as RGB
    folder = write_metadata(from_csv, tmp_path / "metadata" / "val")
    reloaded = load_metadata(folder)
    _same(from_xml, reloaded)
    data = WSOLDataset(ilsvrc, folder)
    _check_rgb(data)
    assert data[1]["boxes"].tolist() == [[0, 2, 15, 20], [10, 22, 31, 47]]


def test_ilsvrc_val_defaults(ilsvrc):
    """XML files beside the images, class list from the train folders."""
    for xml in (ILSVRC / "val").glob("*.xml"):
        shutil.copy(xml, ilsvrc / "val" / xml.name)
    _same(ilsvrc_metadata(ilsvrc, "val"), ilsvrc_val_metadata(ilsvrc, ILSVRC / "val", SYNSETS))


def test_ilsvrc_val_needs_class_list_for_a_subset(ilsvrc):
    shutil.rmtree(ilsvrc / "train")
    with pytest.raises(MetadataError, match="only 3 classes occur"):
        ilsvrc_val_metadata(ilsvrc, ILSVRC / "LOC_val_solution.csv")


def test_ilsvrc_val_xml_without_images(tmp_path):
    """The XML gives the sizes, so annotations convert without the images (ids end .JPEG)."""
    meta = ilsvrc_val_metadata(tmp_path, ILSVRC / "val", SYNSETS)
    assert meta.image_ids[2] == "val/ILSVRC2012_val_00000003.JPEG"
    assert meta.image_sizes["val/ILSVRC2012_val_00000003.JPEG"] == (50, 36)
    with pytest.raises(MetadataError, match=r"LOC_val_solution.csv:3: no image named 'ILSVRC2012_val_00000001'"):
        ilsvrc_val_metadata(tmp_path, ILSVRC / "LOC_val_solution.csv", SYNSETS)


def _edit_line(path: Path, line: int, text: str | None) -> None:
    lines = path.read_text().splitlines()
    if text is None:
        del lines[line - 1]
    else:
        lines[line - 1] = text
    path.write_text("\n".join(lines) + "\n")


XML2 = "ILSVRC2012_val_00000002.xml"


@pytest.mark.parametrize(
    "name, line, text, needle",
    [
        ("LOC_synset_mapping.txt", 2, "goldfish n01443537", "LOC_synset_mapping.txt:2: expected '<wnid> <names>'"),
        ("LOC_synset_mapping.txt", 3, "n01440764 tench again", "LOC_synset_mapping.txt:3: wnid 'n01440764' repeats line 1"),
        ("LOC_val_solution.csv", 1, "ImageId;PredictionString", "LOC_val_solution.csv:1: expected the header"),
        ("LOC_val_solution.csv", 3, "ILSVRC2012_val_00000001,n01484850 3 4 30",
         "LOC_val_solution.csv:3: the prediction string must be groups of 5 fields"),
        ("LOC_val_solution.csv", 3, "ILSVRC2012_val_00000001,n01484850 3 4 thirty 25",
         "LOC_val_solution.csv:3: object 1: box '3 4 thirty 25' is not 4 numbers"),
        ("LOC_val_solution.csv", 4,
         "ILSVRC2012_val_00000002,n01440764 0 2 15 20 n01443537 10 22 31 47",
         "LOC_val_solution.csv:4: object 2 is 'n01443537' but object 1 is 'n01440764'"),
        ("LOC_val_solution.csv", 4, "ILSVRC2012_val_00000003,n01443537 1 2 3 4",
         "LOC_val_solution.csv:4: image 'ILSVRC2012_val_00000003' repeats line 2"),
        ("LOC_val_solution.csv", 2, "ILSVRC2012_val_00000003,n09999999 12 5 44 35",
         "LOC_val_solution.csv:2: wnid 'n09999999' is not in"),
        (f"val/{XML2}", 21, "\t\t\t<xmax>fifteen</xmax>", f"{XML2}:21: <xmax> of object 1 must be a number"),
        (f"val/{XML2}", 26, "\t\t<name>n01443537</name>", f"{XML2}:26: object 2 is 'n01443537' but object 1 is 'n01440764'"),
        (f"val/{XML2}", 33, "\t\t\t<xmax>5</xmax>", f"{XML2}:30: box of object 2 must satisfy xmin <= xmax"),
        (f"val/{XML2}", 9, "\t\t<height>0</height>", f"{XML2}:7: image size must be positive"),
        (f"val/{XML2}", 9, None, f"{XML2}:7: <size> has no <height>"),
        (f"val/{XML2}", 23, "\t\t</bndbox", f"{XML2}:24: malformed XML"),
    ],
)
def test_ilsvrc_malformed_line_names_file_and_line(ilsvrc, tmp_path, name, line, text, needle):
    annotations = tmp_path / "annotations"
    shutil.copytree(ILSVRC, annotations)
    _edit_line(annotations / name, line, text)
    source = annotations / ("val" if name.startswith("val/") else "LOC_val_solution.csv")
    with pytest.raises(MetadataError) as info:
        ilsvrc_val_metadata(ilsvrc, source, annotations / "LOC_synset_mapping.txt")
    assert needle in str(info.value)
    assert str(annotations) in str(info.value)


def test_ilsvrc_missing_files_name_the_path(tmp_path):
    with pytest.raises(MetadataError, match=r"nowhere\.csv: file not found"):
        ilsvrc_val_metadata(tmp_path, tmp_path / "nowhere.csv", WNIDS)
    with pytest.raises(MetadataError, match=r"mapping\.txt: file not found"):
        ilsvrc_val_metadata(tmp_path, ILSVRC / "val", tmp_path / "mapping.txt")
    with pytest.raises(MetadataError, match=r"train: training image folder not found"):
        ilsvrc_train_metadata(tmp_path)


# --------------------------------------------------------------------------- CUB

CUB_IMAGES = {  # id -> (size, mode)
    1: ((40, 30), "L"),
    2: ((24, 24), "CMYK"),
    3: ((30, 20), "RGB"),
    4: ((40, 30), "RGBA"),
    5: ((25, 20), "L"),
    6: ((32, 24), "P"),
}


@pytest.fixture
def cub(tmp_path) -> Path:
    root = tmp_path / "CUB_200_2011"
    shutil.copytree(CUB, root)
    for line in (root / "images.txt").read_text().splitlines():
        key, rel = line.split()
        size, mode = CUB_IMAGES[int(key)]
        _save(root / "images" / rel, size, mode, int(key))
    return root


def test_cub_splits(cub, tmp_path):
    test = cub_metadata(cub, "test")
    train = cub_metadata(cub, "train")
    everything = cub_metadata(cub, "all")
    assert test.image_ids == [
        "001.Black_footed_Albatross/Black_Footed_Albatross_0046_18.jpg",
        "002.Laysan_Albatross/Laysan_Albatross_0003_1033.png",
        "003.Sooty_Albatross/Sooty_Albatross_0002_796395.png",
    ]
    assert len(train) == 3 and len(everything) == 6
    assert everything.image_ids == sorted(test.image_ids + train.image_ids, key=everything.image_ids.index)
    assert [everything.class_labels[i] for i in everything.image_ids] == [0, 0, 1, 1, 2, 2]
    assert test.image_sizes[test.image_ids[1]] == (40, 30)
    # x, y, w, h -> x, y, x + w, y + h
    assert everything.boxes["002.Laysan_Albatross/Laysan_Albatross_0002_1027.jpg"] == [(4.5, 3.0, 24.5, 18.25)]
    assert test.boxes[test.image_ids[0]] == [(6.0, 2.0, 36.0, 23.0)]
    assert read_cub_classes(cub) == ["001.Black_footed_Albatross", "002.Laysan_Albatross", "003.Sooty_Albatross"]

    folder = write_metadata(everything, tmp_path / "metadata" / "CUB" / "all")
    _same(everything, load_metadata(folder))
    data = WSOLDataset(cub / "images", folder)
    assert data.num_classes == 3
    _check_rgb(data)


@pytest.mark.parametrize(
    "name, line, text, needle",
    [
        ("images.txt", 2, "2", "images.txt:2: expected '<image id> <relative path>'"),
        ("images.txt", 3, "two 002.Laysan_Albatross/x.jpg", "images.txt:3: expected '<image id> <relative path>' ('two'"),
        ("images.txt", 4, "1 002.Laysan_Albatross/x.jpg", "images.txt:4: id 1 repeats line 1"),
        ("image_class_labels.txt", 3, "3 4", "image_class_labels.txt:3: class id must be in 1..3"),
        ("image_class_labels.txt", 5, "5 three", "image_class_labels.txt:5: expected '<image id> <class id>'"),
        ("image_class_labels.txt", 6, "7 3", "image_class_labels.txt:6: image id 7 is not in"),
        ("image_class_labels.txt", 6, None, "image_class_labels.txt: 1 of 6 image ids"),
        ("bounding_boxes.txt", 2, "2 0.0 0.0 24.0", "bounding_boxes.txt:2: expected '<image id> <x> <y> <width> <height>'"),
        ("bounding_boxes.txt", 4, "4 1.0 one 36.0 26.0", "bounding_boxes.txt:4: expected"),
        ("bounding_boxes.txt", 5, "5 10.0 8.0 -12.0 9.0", "bounding_boxes.txt:5: box width and height must be >= 0"),
        ("train_test_split.txt", 6, "6 2", "train_test_split.txt:6: expected '<image id> <1 train | 0 test>'"),
        ("train_test_split.txt", 1, "1 0 1", "train_test_split.txt:1: expected"),
        ("classes.txt", 2, "2", "classes.txt:2: expected '<class id> <class name>'"),
        ("classes.txt", 3, "4 004.Groove_billed_Ani", "classes.txt: class ids must be 1..3"),
    ],
)
def test_cub_malformed_line_names_file_and_line(cub, name, line, text, needle):
    _edit_line(cub / name, line, text)
    with pytest.raises(MetadataError) as info:
        cub_metadata(cub, "train")  # every line is checked, whatever the split
    assert needle in str(info.value)
    assert str(cub) in str(info.value)


def test_cub_missing_files_name_the_path(cub):
    (cub / "bounding_boxes.txt").unlink()
    with pytest.raises(MetadataError, match=r"bounding_boxes\.txt: file not found"):
        cub_metadata(cub)
    (cub / "images" / "003.Sooty_Albatross" / "Sooty_Albatross_0002_796395.png").unlink()
    shutil.copy(CUB / "bounding_boxes.txt", cub)
    with pytest.raises(MetadataError, match=r"Sooty_Albatross_0002_796395\.png: image file not found"):
        cub_metadata(cub, "test")


# --------------------------------------------------------------------------- writer


def test_write_metadata_round_trips_masks_and_clears_stale_files(tmp_path):
    masks = load_metadata(DATA / "wsol" / "masks")
    folder = tmp_path / "out"
    write_metadata(load_metadata(DATA / "wsol" / "boxes"), folder)
    write_metadata(masks, folder)  # the boxes' image_sizes.txt must not survive
    assert not (folder / "image_sizes.txt").exists()
    _same(masks, load_metadata(folder))


def test_write_metadata_rejects_unwritable_ids(tmp_path):
    meta = load_metadata(DATA / "wsol" / "boxes")
    meta.image_ids[0] = "test/a,b.jpg"
    with pytest.raises(MetadataError, match="holds a comma"):
        write_metadata(meta, tmp_path / "out")


def test_evaluator_scores_loader_metadata(cub, tmp_path):
    """The evaluator takes the loader's WSOLMetadata as is: maps lit inside the GT box score 100."""
    from hideseek.localization.evaluate import evaluate_scoremaps, resize_box

    meta = cub_metadata(cub, "test")
    maps = tmp_path / "maps"
    for image_id in meta.image_ids:
        x0, y0, x1, y1 = resize_box(meta.boxes[image_id][0], meta.image_sizes[image_id], 224)
        scoremap = np.zeros((224, 224))
        scoremap[y0:y1 + 1, x0:x1 + 1] = 1.0
        (maps / image_id).parent.mkdir(parents=True, exist_ok=True)
        np.save(maps / f"{image_id}.npy", scoremap)
    result = evaluate_scoremaps(meta, maps, progress=False)
    assert result["num_images"] == 3
    assert result["MaxBoxAccV2"] == pytest.approx(100.0)
