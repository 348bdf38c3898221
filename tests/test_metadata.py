"""The WSOL metadata reader: real-format fixture and malformed input."""

import shutil
from pathlib import Path

import pytest

from hideseek.localization.data.metadata import MetadataError, load_metadata

DATA = Path(__file__).parent / "data" / "wsol"


def test_box_split_fixture():
    meta = load_metadata(DATA / "boxes")
    assert meta.image_ids == ["test/001.jpg", "test/002.jpg", "test/003.jpg", "test/004.jpg"]
    assert meta.localization_type == "boxes"
    assert meta.class_labels["test/003.jpg"] == 2
    assert meta.image_sizes["test/002.jpg"] == (500, 375)
    assert meta.boxes["test/001.jpg"] == [(100, 100, 300, 260), (20, 30, 80, 90)]


def test_mask_split_fixture():
    meta = load_metadata(DATA / "masks")
    assert meta.localization_type == "masks"
    assert meta.image_sizes == {}
    assert meta.mask_paths["val/a1.jpg"] == ["val/a1_m0.png", "val/a1_m1.png"]
    assert meta.ignore_paths == {"val/a1.jpg": "val/a1_ignore.png", "val/b2.jpg": "val/b2_ignore.png", "val/c3.jpg": ""}


def _copy(tmp_path: Path, split: str = "boxes") -> Path:
    target = tmp_path / split
    shutil.copytree(DATA / split, target)
    return target


@pytest.mark.parametrize(
    "name, line, needle",
    [
        ("localization.txt", "test/002.jpg,120,60,400", "localization.txt:3: expected '<image_id>,<x0>,<y0>,<x1>,<y1>'"),
        ("localization.txt", "test/002.jpg,120,sixty,400,300", "localization.txt:3:"),
        ("localization.txt", "test/002.jpg,400,60,120,300", "localization.txt:3: box must satisfy x0 <= x1"),
        ("class_labels.txt", "test/002.jpg,one", "class_labels.txt:2:"),
        ("class_labels.txt", "test/002.jpg", "class_labels.txt:2: expected '<image_id>,<label>'"),
        ("image_sizes.txt", "test/002.jpg,500", "image_sizes.txt:2:"),
        ("image_sizes.txt", "test/002.jpg,0,375", "image_sizes.txt:2: image size must be positive"),
    ],
)
def test_malformed_line_names_file_and_line(tmp_path, name, line, needle):
    split = _copy(tmp_path)
    path = split / name
    lines = path.read_text().splitlines()
    row = 2 if name == "localization.txt" else 1
    lines[row] = line
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(MetadataError, match=None) as info:
        load_metadata(split)
    assert needle in str(info.value)
    assert str(split) in str(info.value)


def test_repeated_image_id(tmp_path):
    split = _copy(tmp_path)
    (split / "image_ids.txt").write_text("test/001.jpg\ntest/001.jpg\n")
    with pytest.raises(MetadataError, match=r"image_ids.txt:2: image id 'test/001.jpg' repeats line 1"):
        load_metadata(split)


def test_image_without_box_is_reported_with_count(tmp_path):
    split = _copy(tmp_path)
    lines = (split / "localization.txt").read_text().splitlines()
    (split / "localization.txt").write_text("\n".join(line for line in lines if not line.startswith("test/003")) + "\n")
    with pytest.raises(MetadataError, match=r"1 of 4 image ids have no box, first: \['test/003.jpg'\]"):
        load_metadata(split)


def test_ignore_path_only_on_first_line(tmp_path):
    split = _copy(tmp_path, "masks")
    text = (split / "localization.txt").read_text().replace("val/a1_m1.png,", "val/a1_m1.png,val/x.png")
    (split / "localization.txt").write_text(text)
    with pytest.raises(MetadataError, match=r"localization.txt:2: the ignore mask goes on the first line"):
        load_metadata(split)


def test_missing_folder_and_file(tmp_path):
    with pytest.raises(MetadataError, match="metadata folder not found"):
        load_metadata(tmp_path / "nope")
    split = _copy(tmp_path)
    (split / "class_labels.txt").unlink()
    with pytest.raises(MetadataError, match="class_labels.txt: file not found"):
        load_metadata(split)


def test_windows_line_endings_and_trailing_blank_lines(tmp_path):
    split = _copy(tmp_path)
    for path in split.iterdir():
        path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n") + b"\r\n")
    assert load_metadata(split).boxes == load_metadata(DATA / "boxes").boxes
