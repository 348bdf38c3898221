"""Issue 14, readers: bad WSOL metadata, COCO files, label PNGs and outputs through the CLI.

Every case is run as a user would (``hideseek.cli.main`` in-process) on files written in the
real on-disk formats: the answer is either the clean input's number or exit 2 with one line
naming the file (and line) or the option, and nothing written outside the folders given.
"""

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cli_helpers import one_line_error, run

SIZE = 32  # --resize-length of the saved score maps: small, so every evaluation is quick
IDS = ["img/a.jpg", "img/b.jpg", "img/c.jpg"]
BOXES = [  # image id, x0, y0, x1, y1 in original pixels (images are 64 x 48)
    ("img/a.jpg", 2, 2, 20, 14),
    ("img/a.jpg", 30, 20, 60, 44),
    ("img/b.jpg", 10, 8, 40, 30),
    ("img/c.jpg", 0, 0, 63, 47),
]
OPTS = ["--resize-length", str(SIZE), "--cam-curve-interval", "0.05"]


def write_split(root: Path) -> Path:
    """A box split in the WSOL metadata layout (image a.jpg has two boxes, its first line first)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "image_ids.txt").write_text("".join(f"{i}\n" for i in IDS))
    (root / "class_labels.txt").write_text("".join(f"{i},{n % 2}\n" for n, i in enumerate(IDS)))
    (root / "image_sizes.txt").write_text("".join(f"{i},64,48\n" for i in IDS))
    (root / "localization.txt").write_text("".join(f"{i},{x0},{y0},{x1},{y1}\n" for i, x0, y0, x1, y1 in BOXES))
    return root


def write_maps(folder: Path, ids=IDS) -> Path:
    """Score maps that light up the *first* box of each image (so losing it changes the number)."""
    for image_id in ids:
        first = next(b for b in BOXES if b[0] == image_id)
        x0, y0, x1, y1 = (int(v * SIZE / s) for v, s in zip(first[1:], (64, 48, 64, 48)))
        scoremap = np.full((SIZE, SIZE), 0.05)
        scoremap[y0:y1 + 1, x0:x1 + 1] = 0.9
        path = folder / f"{image_id}.npy"
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, scoremap)
    return folder


def evaluate(capsys, split, maps, *extra):
    return run(capsys, "loc", "evaluate", "--metadata", split, "--scoremaps", maps, *OPTS, *extra)


def result(tmp_path, capsys, split, maps, *extra) -> dict:
    output = tmp_path / f"result-{len(list(tmp_path.glob('result-*')))}.json"
    code, _, err = evaluate(capsys, split, maps, "--output", output, *extra)
    assert code == 0, err
    data = json.loads(output.read_text())
    return {key: data[key] for key in ("MaxBoxAcc", "MaxBoxAccV2", "num_images")}


@pytest.fixture
def clean(tmp_path):
    return write_split(tmp_path / "split"), write_maps(tmp_path / "maps")


# --------------------------------------------------------------------------- 1. encodings


@pytest.mark.parametrize("name", ["image_ids.txt", "class_labels.txt", "image_sizes.txt", "localization.txt"])
def test_byte_order_mark_gives_the_clean_number(tmp_path, capsys, clean, name):
    split, maps = clean
    expected = result(tmp_path, capsys, split, maps)
    path = split / name
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert result(tmp_path, capsys, split, maps) == expected


def test_crlf_and_trailing_whitespace_give_the_clean_number(tmp_path, capsys, clean):
    split, maps = clean
    expected = result(tmp_path, capsys, split, maps)
    for path in split.glob("*.txt"):
        lines = path.read_text().splitlines()
        path.write_bytes(("\r\n".join(f"{line}  " for line in lines) + "\r\n\r\n").encode())
    assert result(tmp_path, capsys, split, maps) == expected


def test_non_utf8_metadata_names_file_and_line(capsys, clean):
    split, maps = clean
    (split / "class_labels.txt").write_bytes("img/a.jpg,0\nimg/b\xe9.jpg,1\n".encode("latin-1"))
    code, _, err = evaluate(capsys, split, maps)
    one_line_error(code, err, "class_labels.txt:2:", "UTF-8")


# --------------------------------------------------------------------------- 2. paths that leave their root


def test_image_id_climbing_out_of_scoremaps_is_refused(tmp_path, capsys, clean):
    split, maps = clean
    outside = tmp_path / "secret.npy"
    np.save(outside, np.zeros((SIZE, SIZE)))
    (split / "image_ids.txt").write_text("img/a.jpg\n../secret\n")
    (split / "class_labels.txt").write_text("img/a.jpg,0\n../secret,0\n")
    (split / "image_sizes.txt").write_text("img/a.jpg,64,48\n../secret,64,48\n")
    (split / "localization.txt").write_text("img/a.jpg,2,2,20,14\n../secret,1,1,5,5\n")
    code, _, err = evaluate(capsys, split, maps)
    one_line_error(code, err, "image_ids.txt:2:", "'..'")


@pytest.mark.parametrize("image_id", ["/tmp/abs", "img/../../x"])
def test_image_id_absolute_or_climbing_is_refused(capsys, clean, image_id):
    split, maps = clean
    (split / "image_ids.txt").write_text(f"img/a.jpg\n{image_id}\n")
    code, _, err = evaluate(capsys, split, maps)
    one_line_error(code, err, "image_ids.txt:2:", image_id)


def test_checkpoint_scoremaps_never_written_outside_save_scoremaps(tmp_path, capsys):
    """The ``../`` id is refused by the reader the training and checkpoint paths share, before any
    score map (or anything else) is written."""
    data, meta = tmp_path / "images", tmp_path / "meta"
    for split in ("train", "val", "test"):
        write_split(meta / split)
    for image_id in IDS:
        (data / image_id).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (64, 48), (120, 60, 30)).save(data / image_id)
    (meta / "test" / "image_ids.txt").write_text("img/a.jpg\n../../escaped\n")
    code, _, err = run(capsys, "loc", "train", "--dataset", "wsol", "--data-root", data, "--metadata-root", meta,
                       "--epochs", "1", "--output", tmp_path / "run", "--records", tmp_path / "records.jsonl")
    one_line_error(code, err, "image_ids.txt:2:", "'..'")
    assert not list(tmp_path.parent.glob("escaped*"))
    assert not (tmp_path / "records.jsonl").exists()


def _mask_split(tmp_path: Path, mask_line: str) -> tuple[Path, Path, Path]:
    split, masks, maps = tmp_path / "msplit", tmp_path / "masks", tmp_path / "mmaps"
    split.mkdir()
    (split / "image_ids.txt").write_text("img/a.jpg\n")
    (split / "class_labels.txt").write_text("img/a.jpg,0\n")
    (split / "localization.txt").write_text(mask_line + "\n")
    (masks / "img").mkdir(parents=True)
    Image.fromarray(np.pad(np.full((8, 8), 255, np.uint8), 12)).save(masks / "img" / "a.png")
    write_maps(maps, ["img/a.jpg"])
    return split, masks, maps


@pytest.mark.parametrize("where", ["outside/../../x.png", "ABSOLUTE"])
def test_mask_path_outside_mask_root_is_refused(tmp_path, capsys, where):
    outside = tmp_path / "elsewhere.png"
    Image.fromarray(np.full((32, 32), 255, np.uint8)).save(outside)
    mask = str(outside) if where == "ABSOLUTE" else where
    split, masks, maps = _mask_split(tmp_path, f"img/a.jpg,{mask},")
    code, _, err = evaluate(capsys, split, maps, "--mask-root", masks)
    one_line_error(code, err, "localization.txt:1:", "mask path")


def test_mask_split_inside_root_scores(tmp_path, capsys):
    split, masks, maps = _mask_split(tmp_path, "img/a.jpg,img/a.png,")
    code, out, err = evaluate(capsys, split, maps, "--mask-root", masks)
    assert code == 0, err
    assert "PxAP" in out


# --------------------------------------------------------------------------- 3. values


def test_empty_image_ids_is_one_line(capsys, clean):
    split, maps = clean
    (split / "image_ids.txt").write_text("\n\n")
    code, _, err = evaluate(capsys, split, maps)
    one_line_error(code, err, "image_ids.txt: no image ids")


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "NaN"])
def test_non_finite_box_coordinate_names_the_line(capsys, clean, value):
    split, maps = clean
    (split / "localization.txt").write_text(f"img/a.jpg,2,2,20,14\nimg/b.jpg,10,8,{value},30\nimg/c.jpg,0,0,63,47\n")
    code, _, err = evaluate(capsys, split, maps)
    one_line_error(code, err, "localization.txt:2:", "finite")


@pytest.mark.parametrize("box", ["img/b.jpg,10,8,65,30", "img/b.jpg,-1,8,40,30", "img/b.jpg,10,8,40,49"])
def test_box_outside_its_image_names_the_line(capsys, clean, box):
    split, maps = clean
    (split / "localization.txt").write_text(f"img/a.jpg,2,2,20,14\n{box}\nimg/c.jpg,0,0,63,47\n")
    code, _, err = evaluate(capsys, split, maps)
    one_line_error(code, err, "localization.txt:2:", "outside its image of 64x48")


@pytest.mark.parametrize(
    "name, extra, needle",
    [
        ("class_labels.txt", "img/b.jpg,0\n", "class_labels.txt:4: class label of 'img/b.jpg' conflicts with line 2"),
        ("image_sizes.txt", "img/a.jpg,64,49\n", "image_sizes.txt:4: image size of 'img/a.jpg' conflicts with line 1"),
    ],
)
def test_conflicting_duplicate_lines_are_refused(capsys, clean, name, extra, needle):
    split, maps = clean
    with open(split / name, "a") as handle:
        handle.write(extra)
    code, _, err = evaluate(capsys, split, maps)
    one_line_error(code, err, needle)


def test_identical_duplicate_lines_score_as_the_reference(tmp_path, capsys, clean):
    """The reference reader keeps the last of repeated label/size lines and appends repeated box
    lines; a repeat that agrees changes nothing there, so it changes nothing here."""
    split, maps = clean
    expected = result(tmp_path, capsys, split, maps)
    for name in ("class_labels.txt", "image_sizes.txt", "localization.txt"):
        lines = (split / name).read_text().splitlines()
        (split / name).write_text("\n".join(lines + lines[:2]) + "\n")
    assert result(tmp_path, capsys, split, maps) == expected


def test_negative_label_names_the_line(capsys, clean):
    split, maps = clean
    (split / "class_labels.txt").write_text("img/a.jpg,0\nimg/b.jpg,-3\nimg/c.jpg,0\n")
    code, _, err = evaluate(capsys, split, maps)
    one_line_error(code, err, "class_labels.txt:2:", "non-negative")


def test_label_outside_num_classes_is_refused_before_the_model(tmp_path, capsys):
    torch = pytest.importorskip("torch")
    data, meta = tmp_path / "images", tmp_path / "meta"
    write_split(meta / "test")
    (meta / "test" / "class_labels.txt").write_text("img/a.jpg,0\nimg/b.jpg,7\nimg/c.jpg,1\n")
    for image_id in IDS:
        (data / image_id).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (64, 48)).save(data / image_id)
    checkpoint = tmp_path / "bench.pth.tar"
    torch.save({"state_dict": {"fc.weight": torch.zeros(2, 2)}}, checkpoint)
    code, _, err = run(capsys, "loc", "evaluate", "--checkpoint", checkpoint, "--architecture", "resnet50",
                       "--data-root", data, "--metadata-root", meta, "--splits", "test", "--num-classes", "2",
                       "--records", "")
    one_line_error(code, err, "class_labels.txt:2:", "class label 7", "outside the 2 classes")


# --------------------------------------------------------------------------- 4. options


@pytest.mark.parametrize("interval", ["0", "-0.1", "1", "1.5", "nan"])
def test_cam_curve_interval_out_of_range_names_the_option(capsys, clean, interval):
    split, maps = clean
    code, _, err = run(capsys, "loc", "evaluate", "--metadata", split, "--scoremaps", maps,
                       "--resize-length", SIZE, "--cam-curve-interval", interval)
    one_line_error(code, err, "--cam-curve-interval", "(0, 1)")


def test_center_baseline_checks_the_interval_too(capsys, clean):
    split, _ = clean
    code, _, err = run(capsys, "loc", "evaluate", "--center-baseline", "--metadata", split,
                       "--cam-curve-interval", "0")
    one_line_error(code, err, "--cam-curve-interval")


def test_tau_off_the_grid_is_scored_literally(capsys, clean):
    """A fixed threshold is scored at the value given, on the grid or not."""
    split, maps = clean
    code, out, err = evaluate(capsys, split, maps, "--policy", "fixed", "--tau", "0.23")
    assert code == 0, err
    assert '"tau": 0.23' in out and "loc_threshold" in out and "0.2300" in out


@pytest.mark.parametrize("tau", ["1", "1.5", "-0.1", "nan", "inf"])
def test_tau_outside_zero_one_names_the_option(capsys, clean, tau):
    split, maps = clean
    code, _, err = evaluate(capsys, split, maps, "--policy", "fixed", "--tau", tau)
    one_line_error(code, err, "--tau", "[0, 1)")


def test_tau_on_the_grid_scores(capsys, clean):
    split, maps = clean
    code, out, err = evaluate(capsys, split, maps, "--policy", "fixed", "--tau", "0.2")
    assert code == 0, err
    assert '"tau": 0.2' in out


def test_calibration_off_the_grid_is_one_line(tmp_path, capsys, clean):
    split, maps = clean
    calibration = tmp_path / "val.json"
    calibration.write_text(json.dumps({"best_threshold": {"30": 0.123, "50": 0.123, "70": 0.123}}))
    code, _, err = evaluate(capsys, split, maps, "--policy", "calibrated", "--calibration", calibration)
    one_line_error(code, err, "not on the CAM threshold grid")


# --------------------------------------------------------------------------- 5. and 7. COCO and JSON files


def _coco(tmp_path: Path) -> Path:
    gt = {
        "images": [{"id": 1, "width": 16, "height": 16}],
        "categories": [{"id": 1, "name": "a"}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [2, 2, 6, 6], "area": 36,
                         "iscrowd": 0, "segmentation": [[2, 2, 8, 2, 8, 8, 2, 8]]}],
    }
    path = tmp_path / "instances.json"
    path.write_text(json.dumps(gt))
    return path


def test_coco_results_mixing_bbox_and_segm_records_names_the_record(tmp_path, capsys):
    pytest.importorskip("pycocotools")
    gt = _coco(tmp_path)
    results = tmp_path / "results.json"
    from pycocotools import mask as mask_utils

    mask = np.zeros((16, 16), np.uint8, order="F")
    mask[2:8, 2:8] = 1
    rle = mask_utils.encode(mask)
    rle["counts"] = rle["counts"].decode("ascii")
    results.write_text(json.dumps([
        {"image_id": 1, "category_id": 1, "bbox": [2, 2, 6, 6], "score": 0.9},
        {"image_id": 1, "category_id": 1, "segmentation": rle, "score": 0.8},
    ]))
    code, _, err = run(capsys, "loc", "evaluate", "--coco", gt, "--coco-results", results,
                       "--iou-type", "bbox", "segm")
    one_line_error(code, err, str(results), "result[1] has no 'bbox'", "separate files")


def test_coco_results_with_both_keys_on_every_record_score(tmp_path, capsys):
    pytest.importorskip("pycocotools")
    gt = _coco(tmp_path)
    results = tmp_path / "results.json"
    results.write_text(json.dumps([{"image_id": 1, "category_id": 1, "bbox": [2, 2, 6, 6], "score": 0.9,
                                    "segmentation": [[2, 2, 8, 2, 8, 8, 2, 8]]}]))
    code, out, err = run(capsys, "loc", "evaluate", "--coco", gt, "--coco-results", results)
    assert code == 0, err
    assert "AP     100.0000" in out


@pytest.mark.parametrize("top", ["[]", '"text"', "3", "null"])
def test_coco_instances_with_wrong_top_level(tmp_path, capsys, top):
    gt, results = tmp_path / "gt.json", tmp_path / "results.json"
    gt.write_text(top)
    results.write_text("[]")
    code, _, err = run(capsys, "loc", "evaluate", "--coco", gt, "--coco-results", results)
    one_line_error(code, err, str(gt), "an object at the top level")


def test_coco_results_with_wrong_top_level(tmp_path, capsys):
    pytest.importorskip("pycocotools")
    results = tmp_path / "results.json"
    results.write_text('{"image_id": 1}')
    code, _, err = run(capsys, "loc", "evaluate", "--coco", _coco(tmp_path), "--coco-results", results)
    one_line_error(code, err, str(results), "a list at the top level")


def test_coco_files_with_a_byte_order_mark_score(tmp_path, capsys):
    pytest.importorskip("pycocotools")
    gt = _coco(tmp_path)
    results = tmp_path / "results.json"
    results.write_bytes(b"\xef\xbb\xbf" + json.dumps([{"image_id": 1, "category_id": 1, "bbox": [2, 2, 6, 6],
                                                       "score": 0.9}]).encode())
    gt.write_bytes(b"\xef\xbb\xbf" + gt.read_bytes())
    code, out, err = run(capsys, "loc", "evaluate", "--coco", gt, "--coco-results", results)
    assert code == 0, err
    assert "AP     100.0000" in out


@pytest.mark.parametrize("top", ["[1, 2]", '"val"'])
def test_calibration_and_predictions_with_wrong_top_level(tmp_path, capsys, clean, top):
    split, maps = clean
    bad = tmp_path / "bad.json"
    bad.write_text(top)
    code, _, err = evaluate(capsys, split, maps, "--policy", "calibrated", "--calibration", bad)
    one_line_error(code, err, str(bad), "an object at the top level")
    code, _, err = evaluate(capsys, split, maps, "--predictions", bad)
    one_line_error(code, err, str(bad), "an object at the top level")


def test_predictions_text_with_bom_and_crlf_give_the_clean_number(tmp_path, capsys, clean):
    split, maps = clean
    lines = [f"{i},{n % 2},{1 - n % 2}" for n, i in enumerate(IDS)]
    plain, marked = tmp_path / "plain.txt", tmp_path / "marked.txt"
    plain.write_text("\n".join(lines) + "\n")
    marked.write_bytes(b"\xef\xbb\xbf" + "\r\n".join(lines).encode() + b"\r\n")
    assert result(tmp_path, capsys, split, maps, "--predictions", plain) == \
        result(tmp_path, capsys, split, maps, "--predictions", marked)


# --------------------------------------------------------------------------- 6. outputs checked before the work


def _unwritable(tmp_path: Path) -> Path:
    """A path no one can create, even root: its parent is a file."""
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a folder")
    return blocker / "result.json"


def test_loc_evaluate_refuses_an_unwritable_output_before_scoring(tmp_path, capsys, clean):
    split, maps = clean
    code, out, err = evaluate(capsys, split, maps, "--output", _unwritable(tmp_path))
    one_line_error(code, err, "result.json", "cannot write --output")
    assert "MaxBoxAcc" not in out  # refused before the work, not after it


def test_loc_coco_refuses_an_unwritable_output(tmp_path, capsys):
    results = tmp_path / "results.json"
    results.write_text("[]")
    code, _, err = run(capsys, "loc", "evaluate", "--coco", _coco(tmp_path), "--coco-results", results,
                       "--output", _unwritable(tmp_path))
    one_line_error(code, err, "cannot write --output")


def test_loc_checkpoint_refuses_unwritable_save_scoremaps(tmp_path, capsys):
    code, _, err = run(capsys, "loc", "evaluate", "--checkpoint", tmp_path / "missing.pt",
                       "--save-scoremaps", _unwritable(tmp_path).parent / "maps")
    one_line_error(code, err, "--save-scoremaps folder")


def _labels(folder: Path, ids, value: int = 1) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for n, image_id in enumerate(ids):
        labels = np.zeros((8, 8), np.uint8)
        labels[2:6, 2:6] = value + n
        Image.fromarray(labels, "L").save(folder / f"{image_id}.png")


def test_seg_evaluate_refuses_an_unwritable_output(tmp_path, capsys):
    _labels(tmp_path / "gt", ["x"])
    _labels(tmp_path / "pred", ["x"])
    code, out, err = run(capsys, "seg", "evaluate", "--predictions", tmp_path / "pred", "--ground-truth",
                         tmp_path / "gt", "--output", _unwritable(tmp_path))
    one_line_error(code, err, "cannot write --output")
    assert "mIoU" not in out


def test_seg_predict_and_train_refuse_unwritable_outputs(tmp_path, capsys):
    code, _, err = run(capsys, "seg", "predict", "--checkpoint", tmp_path / "missing.pt", "--threshold", "0.2",
                       "--output", _unwritable(tmp_path).parent / "pngs")
    one_line_error(code, err, "--output folder")
    code, _, err = run(capsys, "seg", "train", "--quick", "--output", tmp_path / "run",
                       "--json", _unwritable(tmp_path))
    one_line_error(code, err, "cannot write --json")
    assert not (tmp_path / "run").exists()


# --------------------------------------------------------------------------- segmentation split lists


def test_seg_split_file_with_bom_and_climbing_ids(tmp_path, capsys):
    _labels(tmp_path / "gt", ["x", "y"])
    _labels(tmp_path / "pred", ["x", "y"])
    split = tmp_path / "split.txt"
    split.write_text("x\ny\n")
    args = ["seg", "evaluate", "--predictions", tmp_path / "pred", "--ground-truth", tmp_path / "gt",
            "--split-file", split]
    code, clean_out, err = run(capsys, *args)
    assert code == 0, err
    split.write_bytes(b"\xef\xbb\xbfx\r\ny\r\n")
    code, out, err = run(capsys, *args)
    assert code == 0, err
    assert out == clean_out
    _labels(tmp_path / "elsewhere", ["z"])
    split.write_text("x\n../elsewhere/z\n")
    code, _, err = run(capsys, *args)
    one_line_error(code, err, "split.txt:2:", "'..'")


def test_seg_damaged_label_png_is_one_line(tmp_path, capsys):
    _labels(tmp_path / "gt", ["x"])
    _labels(tmp_path / "pred", ["x"])
    png = tmp_path / "pred" / "x.png"
    data = png.read_bytes()
    png.write_bytes(data[: len(data) // 2])
    code, _, err = run(capsys, "seg", "evaluate", "--predictions", tmp_path / "pred", "--ground-truth", tmp_path / "gt")
    one_line_error(code, err, "x.png")


def test_fixture_scoremaps_are_not_trivial(tmp_path, capsys, clean):
    """Guard for the tests above: losing a's first box changes the number, so 'same number' means something."""
    split, maps = clean
    expected = result(tmp_path, capsys, split, maps)
    lines = (split / "localization.txt").read_text().splitlines()
    (split / "localization.txt").write_text("\n".join(lines[1:]) + "\n")
    assert result(tmp_path, capsys, split, maps) != expected
    assert os.path.exists(maps / "img" / "a.jpg.npy")
