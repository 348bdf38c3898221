"""Issue 14, readers: hypothesis-mutated inputs through the CLI give the clean number or exit 2.

Three readers are fuzzed as a user reaches them, ``hideseek.cli.main`` in-process:

- WSOL metadata (``image_ids.txt``, ``class_labels.txt``, ``image_sizes.txt``,
  ``localization.txt``) under ``loc evaluate --scoremaps`` (torch-free and quick);
- COCO results and instances JSON under ``loc evaluate --coco``;
- VOC label PNGs under ``seg evaluate``.

Mutations that do not change what a file says (a byte-order mark, ``\\r\\n``, trailing
whitespace, blank lines, repeated identical lines, key order, JSON layout, PNG encoder
settings) must give exactly the clean input's numbers. Mutations that break a file
(truncation, stray commas, bytes that are not UTF-8, a missing field, a wrong JSON type, a
damaged PNG) must give exit 2 and one line naming the file. The fixture is chosen so that no
truncation can leave a shorter but valid file that means something else (the last number of
every file cannot be cut to a valid smaller one), which is what makes "exit 2" checkable.
"""

import json
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from PIL import Image, PngImagePlugin

from hideseek.cli import main

SETTINGS = settings(max_examples=40, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
SIZE = 32
IDS = ["img/a.jpg", "img/b.jpg", "img/c.jpg"]
# a.jpg has two boxes and comes first (a lost first line would drop a box, not an image);
# the last box's y1 (47) cut to "4" is above its y0 (20), the last height (48) cut to "4"
# puts that box outside the image, the last label is one digit: every truncation is detectable
BOXES = [("img/a.jpg", 2, 2, 20, 14), ("img/a.jpg", 30, 20, 60, 44), ("img/b.jpg", 10, 8, 40, 30),
         ("img/c.jpg", 5, 20, 63, 47)]
FILES = {
    "image_ids.txt": [f"{i}" for i in IDS],
    "class_labels.txt": [f"{i},{n % 2}" for n, i in enumerate(IDS)],
    "image_sizes.txt": [f"{i},64,48" for i in IDS],
    "localization.txt": [f"{i},{x0},{y0},{x1},{y1}" for i, x0, y0, x1, y1 in BOXES],
}
KEYS = ("MaxBoxAcc", "MaxBoxAccV2", "num_images")


def run(capsys, argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line(code: int, err: str, name: str) -> None:
    assert code == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    assert name in err, err


@pytest.fixture(scope="module")
def wsol(tmp_path_factory):
    """The clean split, its score maps (lighting each image's first box) and its numbers."""
    root = tmp_path_factory.mktemp("fuzz-wsol")
    split, maps = root / "clean", root / "maps"
    split.mkdir()
    for name, lines in FILES.items():
        (split / name).write_text("".join(f"{line}\n" for line in lines))
    for image_id in IDS:
        x0, y0, x1, y1 = next(b[1:] for b in BOXES if b[0] == image_id)
        scoremap = np.full((SIZE, SIZE), 0.05)
        scoremap[y0 * SIZE // 48:y1 * SIZE // 48 + 1, x0 * SIZE // 64:x1 * SIZE // 64 + 1] = 0.9
        (maps / "img").mkdir(parents=True, exist_ok=True)
        np.save(maps / f"{image_id}.npy", scoremap)
    return root, split, maps


def score_split(capsys, root: Path, split: Path, maps: Path):
    output = root / "result.json"
    output.unlink(missing_ok=True)
    code, _, err = run(capsys, ["loc", "evaluate", "--metadata", split, "--scoremaps", maps, "--resize-length", SIZE,
                                "--cam-curve-interval", "0.05", "--output", output])
    if code != 0:
        return code, err, None
    data = json.loads(output.read_text())
    return code, err, {key: data[key] for key in KEYS}


def mutated_split(root: Path, clean: Path, name: str, data: bytes) -> Path:
    split = root / "mutated"
    shutil.rmtree(split, ignore_errors=True)
    shutil.copytree(clean, split)
    (split / name).write_bytes(data)
    return split


# --------------------------------------------------------------------------- WSOL metadata

_name = st.sampled_from(sorted(FILES))


@st.composite
def benign_text(draw, name: str) -> bytes:
    """The file's lines rewritten without changing what they say."""
    lines = list(FILES[name])
    if name != "image_ids.txt" and draw(st.booleans()):  # identical repeats (the reference keeps one)
        lines += draw(st.lists(st.sampled_from(FILES[name]), max_size=3))
    out = []
    for line in lines:
        for _ in range(draw(st.integers(0, 2))):  # blank or whitespace-only lines anywhere
            out.append(draw(st.sampled_from(["", " ", "\t", "  \t"])))
        lead = draw(st.sampled_from(["", " ", "\t"]))
        trail = draw(st.sampled_from(["", " ", "\t", "  "]))
        out.append(lead + line + trail)
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    text = newline.join(out) + draw(st.sampled_from(["", newline, newline * 2]))
    bom = draw(st.booleans())
    return (b"\xef\xbb\xbf" if bom else b"") + text.encode()


@SETTINGS
@given(data=st.data())
def test_metadata_rewritten_without_changing_meaning_gives_the_clean_number(wsol, capsys, data):
    root, clean, maps = wsol
    expected = score_split(capsys, root, clean, maps)
    name = data.draw(_name)
    split = mutated_split(root, clean, name, data.draw(benign_text(name)))
    assert score_split(capsys, root, split, maps) == expected


def _clean_bytes(name: str) -> bytes:
    return "".join(f"{line}\n" for line in FILES[name]).encode()


@SETTINGS
@given(name=_name, cut=st.integers(min_value=0))
@example(name="image_ids.txt", cut=9)  # "img/a.jpg" without its line break: one whole id
def test_truncated_metadata_is_refused_or_scores_what_it_lists(wsol, capsys, name, cut):
    root, clean, maps = wsol
    full = _clean_bytes(name)
    cut %= len(full)
    code, err, numbers = score_split(capsys, root, mutated_split(root, clean, name, full[:cut]), maps)
    if cut == len(full) - 1:  # only the final line break went
        assert numbers == score_split(capsys, root, clean, maps)[2]
    elif name == "image_ids.txt" and cut and (full[:cut].endswith(b"\n") or full[cut:cut + 1] == b"\n"):
        # a shorter list of whole ids (the last line break kept or not): a smaller split
        assert code == 0 and numbers["num_images"] == len(full[:cut].splitlines()), err
    else:  # a cut id is named where its label is missing
        assert_one_line(code, err, "mutated/" if name == "image_ids.txt" else name)


@SETTINGS
@given(name=_name, where=st.integers(min_value=0),
       junk=st.sampled_from([b",", b"\xff", b"\x80", b"\xc3(", b"\xed\xa0\x80", b"\xef\xbb"]))
def test_garbage_in_metadata_is_refused_naming_the_file(wsol, capsys, name, where, junk):
    root, clean, maps = wsol
    full = _clean_bytes(name)
    where %= len(full) + 1
    code, err, _ = score_split(capsys, root, mutated_split(root, clean, name, full[:where] + junk + full[where:]), maps)
    assert_one_line(code, err, name)


@SETTINGS
@given(name=st.sampled_from(["class_labels.txt", "image_sizes.txt", "localization.txt"]),
       row=st.integers(min_value=0), field=st.integers(min_value=0),
       change=st.sampled_from(["drop", "empty", "nan", "inf", "word", "-1"]))
def test_broken_metadata_fields_are_refused_naming_the_line(wsol, capsys, name, row, field, change):
    root, clean, maps = wsol
    lines = list(FILES[name])
    row %= len(lines)
    fields = lines[row].split(",")
    field = 1 + field % (len(fields) - 1)  # a value, not the id
    if change == "drop":
        del fields[field]
    else:
        fields[field] = {"empty": "", "word": "seven"}.get(change, change)
    if change == "-1" and name == "localization.txt" and field in (3, 4):
        fields[field] = "-1"  # x1 or y1 below x0 / y0
    lines[row] = ",".join(fields)
    data = "".join(f"{line}\n" for line in lines).encode()
    code, err, _ = score_split(capsys, root, mutated_split(root, clean, name, data), maps)
    assert_one_line(code, err, f"{name}:{row + 1}:")


# --------------------------------------------------------------------------- COCO JSON

COCO_GT = {
    "images": [{"id": 1, "width": 32, "height": 32}, {"id": 2, "width": 32, "height": 32}],
    "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}],
    "annotations": [
        {"id": 1, "image_id": 1, "category_id": 1, "bbox": [2, 2, 10, 10], "area": 100, "iscrowd": 0},
        {"id": 2, "image_id": 2, "category_id": 2, "bbox": [5, 5, 20, 12], "area": 240, "iscrowd": 0},
        {"id": 3, "image_id": 2, "category_id": 1, "bbox": [0, 20, 8, 8], "area": 64, "iscrowd": 0},
    ],
}
COCO_RESULTS = [  # distinct scores: COCOeval's ranking does not depend on record order
    {"image_id": 1, "category_id": 1, "bbox": [2, 3, 10, 9], "score": 0.9},
    {"image_id": 2, "category_id": 2, "bbox": [6, 5, 18, 12], "score": 0.8},
    {"image_id": 2, "category_id": 1, "bbox": [10, 10, 8, 8], "score": 0.7},
    {"image_id": 1, "category_id": 2, "bbox": [0, 0, 4, 4], "score": 0.3},
]


@pytest.fixture(scope="module")
def coco(tmp_path_factory):
    pytest.importorskip("pycocotools")
    root = tmp_path_factory.mktemp("fuzz-coco")
    (root / "gt.json").write_text(json.dumps(COCO_GT))
    (root / "results.json").write_text(json.dumps(COCO_RESULTS))
    return root


def score_coco(capsys, root: Path, gt: Path, results: Path):
    code, out, err = run(capsys, ["loc", "evaluate", "--coco", gt, "--coco-results", results])
    return code, out, err


@SETTINGS
@given(indent=st.sampled_from([None, 0, 2, "\t"]), bom=st.booleans(), seed=st.integers(0, 2**16),
       which=st.sampled_from(["results", "gt"]))
def test_coco_json_rewritten_gives_the_clean_numbers(coco, capsys, indent, bom, seed, which):
    clean = score_coco(capsys, coco, coco / "gt.json", coco / "results.json")
    assert clean[0] == 0, clean[2]
    rng = random.Random(seed)
    value = json.loads((coco / f"{which}.json").read_text())
    if which == "results":
        rng.shuffle(value)
        value = [dict(sorted(record.items(), key=lambda _: rng.random())) for record in value]
    else:
        value = dict(sorted(value.items(), key=lambda _: rng.random()))
    path = coco / f"mutated-{which}.json"
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + json.dumps(value, indent=indent).encode())
    gt = path if which == "gt" else coco / "gt.json"
    results = path if which == "results" else coco / "results.json"
    assert score_coco(capsys, coco, gt, results)[:2] == clean[:2]


def _broken_records(draw) -> list:
    records = json.loads(json.dumps(COCO_RESULTS))
    k = draw(st.integers(0, len(records) - 1))
    change = draw(st.sampled_from(["drop-key", "score-text", "score-nan", "bbox-short", "bbox-negative",
                                   "bbox-null", "record-list", "segm-only", "image-unknown", "category-unknown"]))
    record = records[k]
    if change == "drop-key":
        del record[draw(st.sampled_from(["image_id", "category_id", "score", "bbox"]))]
    elif change == "score-text":
        record["score"] = "high"
    elif change == "score-nan":
        record["score"] = float("nan")
    elif change == "bbox-short":
        record["bbox"] = record["bbox"][:3]
    elif change == "bbox-negative":
        record["bbox"][2] = -1
    elif change == "bbox-null":
        record["bbox"] = None
    elif change == "record-list":
        records[k] = list(record.values())
    elif change == "segm-only":  # a mask record among box records: pycocotools would raise KeyError
        del record["bbox"]
        record["segmentation"] = [[0, 0, 8, 0, 8, 8, 0, 8]]
        if k == 0:
            records.append(dict(COCO_RESULTS[1]))  # make record 0 a mask and a later one a box
    elif change == "image-unknown":
        record["image_id"] = 99
    else:
        record["category_id"] = 99
    return records


@SETTINGS
@given(data=st.data())
def test_broken_coco_results_are_refused_naming_the_file(coco, capsys, data):
    records = _broken_records(data.draw)
    path = coco / "broken.json"
    path.write_text(json.dumps(records))
    code, _, err = score_coco(capsys, coco, coco / "gt.json", path)
    assert_one_line(code, err, str(path))


@SETTINGS
@given(which=st.sampled_from(["results", "gt"]), cut=st.integers(min_value=1),
       top=st.sampled_from(["truncate", "wrap-list", "wrap-object", "string", "number", "null", "latin-1"]))
def test_coco_json_truncated_or_of_the_wrong_type_is_refused(coco, capsys, which, cut, top):
    text = (coco / f"{which}.json").read_text()
    path = coco / f"bad-{which}.json"
    if top == "truncate":
        path.write_text(text[: cut % len(text)])
    elif top == "wrap-list":
        path.write_text(f"[{text}]" if which == "gt" else json.dumps({"results": json.loads(text)}))
    elif top == "wrap-object":
        path.write_text(json.dumps({"data": json.loads(text)}) if which == "gt" else f"[{text}]")
    elif top == "latin-1":
        path.write_bytes(text.replace('"a"', '"\u00e4"').encode("latin-1") if which == "gt"
                         else text.encode()[:-1] + b"\xe9]")
    else:
        path.write_text({"string": '"results"', "number": "3", "null": "null"}[top])
    gt = path if which == "gt" else coco / "gt.json"
    results = path if which == "results" else coco / "results.json"
    code, _, err = score_coco(capsys, coco, gt, results)
    assert_one_line(code, err, str(path))


# --------------------------------------------------------------------------- VOC label PNGs


def _label_map(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    labels = np.zeros((12, 16), np.uint8)
    for _ in range(3):
        y, x = rng.integers(0, 8), rng.integers(0, 12)
        labels[y:y + 4, x:x + 4] = rng.integers(1, 4)
    labels[0, :3] = 255  # an ignore region in the ground truth
    return labels


@pytest.fixture(scope="module")
def voc(tmp_path_factory):
    from hideseek.segmentation.voc import write_label_png

    root = tmp_path_factory.mktemp("fuzz-voc")
    for n, image_id in enumerate(["2007_000001", "2007_000002"]):
        write_label_png(root / "gt" / f"{image_id}.png", _label_map(n))
        pred = _label_map(n + 7)
        pred[pred == 255] = 0
        write_label_png(root / "pred" / f"{image_id}.png", pred)
    return root


def score_seg(capsys, root: Path, pred: Path):
    return run(capsys, ["seg", "evaluate", "--predictions", pred, "--ground-truth", root / "gt",
                        "--num-classes", "4"])


def _fresh_predictions(root: Path) -> Path:
    pred = root / "mutated"
    shutil.rmtree(pred, ignore_errors=True)
    shutil.copytree(root / "pred", pred)
    return pred


@SETTINGS
@given(mode=st.sampled_from(["P", "L"]), level=st.integers(0, 9), text=st.booleans(), optimize=st.booleans())
def test_label_png_saved_differently_gives_the_clean_numbers(voc, capsys, mode, level, text, optimize):
    clean = score_seg(capsys, voc, voc / "pred")
    assert clean[0] == 0, clean[2]
    pred = _fresh_predictions(voc)
    path = pred / "2007_000002.png"
    labels = np.array(Image.open(path))
    image = Image.fromarray(labels, mode)
    if mode == "P":
        image.putpalette(list(range(256)) * 3)
    info = PngImagePlugin.PngInfo()
    if text:
        info.add_text("Comment", "re-saved")
    image.save(path, compress_level=level, optimize=optimize, pnginfo=info)
    assert score_seg(capsys, voc, pred)[:2] == clean[:2]


@SETTINGS
@given(cut=st.integers(min_value=0), how=st.sampled_from(["truncate", "signature", "header", "rgb", "empty"]))
def test_damaged_label_png_is_refused_or_scores_the_same(voc, capsys, cut, how):
    clean = score_seg(capsys, voc, voc / "pred")
    pred = _fresh_predictions(voc)
    path = pred / "2007_000001.png"
    data = path.read_bytes()
    if how == "truncate":
        data = data[: cut % len(data)]
    elif how == "signature":
        data = bytes([data[0] ^ 0xFF]) + data[1:]
    elif how == "header":  # width/height bytes of IHDR: the wrong size, or a broken header CRC
        k = 16 + cut % 8
        data = data[:k] + bytes([data[k] ^ 0x01]) + data[k + 1:]
    elif how == "rgb":
        Image.open(path).convert("RGB").save(path)
        data = path.read_bytes()
    else:
        data = b""
    path.write_bytes(data)
    code, out, err = score_seg(capsys, voc, pred)
    if code == 0:  # only a cut of the bytes after the pixel data (the IEND chunk) may still read
        assert (code, out) == clean[:2] and how == "truncate"
    else:
        assert_one_line(code, err, "2007_000001.png")
