"""THUMOS14 loaders: raw per-class text files, the BaS-Net/CoLA split layout, W-TALC arrays.

Text fixtures live in tests/data/thumos/ in the exact published formats; the ``.npy``
files are written here with the real dtypes, shapes and object-array conventions
(W-TALC's names are fixed-width bytes, its segments and labels object arrays of lists).
"""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from hideseek.action.dataset import FeatureDataset
from hideseek.action.features import load_feature_source
from hideseek.action.protocols import evaluate
from hideseek.action.thumos import (
    I3D_STRIDE_S,
    THUMOS14_CLASSES,
    load_split_features,
    load_wtalc_features,
    read_thumos14_annotations,
    thumos14_ground_truth,
)
from hideseek.cli import main

DATA = Path(__file__).parent / "data" / "thumos"
RAW = DATA / "TH14_Temporal_annotations_test"


# ------------------------------------------------------------------ raw annotations


def test_raw_annotations_read_in_kit_order():
    ann, amb = read_thumos14_annotations(RAW, "test")  # the unzipped folder; annotation/ is found
    assert list(ann) == sorted(ann)
    dive = ann["video_test_0000026"]
    assert dive.subset == "test"
    # class files in name order, then line order: CliffDiving before Diving, both kept
    assert [(s.label, s.start, s.end) for s in dive.segments] == [
        ("CliffDiving", 3.4, 5.0), ("Diving", 3.4, 5.0), ("Diving", 20.1, 22.7)]
    assert [(s.start, s.end) for s in ann["video_test_0000004"].segments] == [(0.2, 1.1), (12.5, 14.0)]
    assert len(ann) == 20 and sum(len(a.segments) for a in ann.values()) == 23
    np.testing.assert_array_equal(amb["video_test_0000004"], [[11.0, 12.4]])
    assert "video_test_0001292" in amb and "video_test_0001292" not in ann  # only ambiguous segments


def test_exclude_broken_videos_and_convert_cli(tmp_path, capsys):
    gt, amb = thumos14_ground_truth(RAW / "annotation", "test", exclude_broken=True)
    db = gt["database"]
    assert not {"video_test_0000270", "video_test_0001292", "video_test_0001496"} & (set(db) | set(amb))
    assert len(db) == 18
    out = tmp_path / "gt.json"
    assert main(["action", "convert", "thumos14", str(RAW), "--subset", "test", "--exclude-broken",
                 "--output", str(out)]) == 0
    assert json.loads(out.read_text()) == json.loads(json.dumps(gt))
    assert "18 videos, 21 segments, 2 ambiguous segments" in capsys.readouterr().out
    # the converted GT scores itself perfectly under every protocol
    preds = {"results": {v: [{"segment": a["segment"], "label": a["label"], "score": 1.0} for a in e["annotations"]]
                         for v, e in db.items()}}
    for protocol in ("activitynet", "thumos14", "wtalc"):
        res = evaluate(out, preds, protocol=protocol, ambiguous=RAW / "annotation" / "Ambiguous_test.txt")
        assert res["mAP"]["0.5"] == pytest.approx(100.0)


def _raw_folder(tmp_path, suffix="val", lines="video_validation_0000051  67.5 75.9\n"):
    folder = tmp_path / "annotation"
    folder.mkdir()
    for c in THUMOS14_CLASSES:
        (folder / f"{c}_{suffix}.txt").write_text(f"video_validation_{THUMOS14_CLASSES.index(c) + 1:07d}  1.0 2.0\n")
    (folder / f"Billiards_{suffix}.txt").write_text(lines)
    (folder / f"Ambiguous_{suffix}.txt").write_text("video_validation_0000051  60.0 61.5\r\n")
    return folder


def test_validation_files_and_crlf(tmp_path):
    folder = _raw_folder(tmp_path, lines="video_validation_0000051  67.5 75.9\r\n\r\nvideo_validation_0000051 85.9 90.6\n")
    ann, amb = read_thumos14_annotations(folder, "validation")
    segs = ann["video_validation_0000051"].segments
    assert ann["video_validation_0000051"].subset == "validation"
    assert [(s.label, s.start, s.end) for s in segs][-2:] == [("Billiards", 67.5, 75.9), ("Billiards", 85.9, 90.6)]
    np.testing.assert_array_equal(amb["video_validation_0000051"], [[60.0, 61.5]])


@pytest.mark.parametrize("line, match", [
    ("video_validation_0000051  67.5\n", r"Billiards_val.txt:1: expected 'video_name start end'"),
    ("video_validation_0000051  6x.5 75.9\n", r"Billiards_val.txt:1: segment times"),
    ("video_validation_0000051  1.0 2.0\nvideo_validation_0000051  75.9 67.5\n", r"Billiards_val.txt:2: .*start < end"),
])
def test_malformed_lines_name_file_and_line(tmp_path, line, match):
    folder = _raw_folder(tmp_path, lines=line)
    with pytest.raises(ValueError, match=match):
        read_thumos14_annotations(folder, "val")


def test_unknown_or_missing_class_file(tmp_path):
    folder = _raw_folder(tmp_path)
    (folder / "Juggling_val.txt").write_text("video_validation_0000001  1.0 2.0\n")
    with pytest.raises(ValueError, match=r"Juggling_val.txt: class 'Juggling' is not a THUMOS14 class"):
        read_thumos14_annotations(folder, "val")
    (folder / "Juggling_val.txt").unlink()
    (folder / "Shotput_val.txt").unlink()
    with pytest.raises(ValueError, match=r"no annotation file for class\(es\) Shotput"):
        read_thumos14_annotations(folder, "val")
    with pytest.raises(FileNotFoundError, match=r"no THUMOS14 annotation files '<Class>_test.txt'"):
        read_thumos14_annotations(folder, "test")
    with pytest.raises(ValueError, match="unknown THUMOS14 subset"):
        read_thumos14_annotations(folder, "train")


# ---------------------------------------------------------- BaS-Net / CoLA / ASL layout


@pytest.fixture
def split_root(tmp_path):
    """tests/data/thumos/i3d_split plus features/{train,test}/{rgb,flow}/<vid>.npy (T x 1024 float32)."""
    root = tmp_path / "THUMOS14"
    shutil.copytree(DATA / "i3d_split", root)
    rng = np.random.default_rng(0)
    lengths = {"train": {"video_validation_0000051": 13, "video_validation_0000052": 9},
               "test": {"video_test_0000004": 11, "video_test_0000026": 6}}
    feats = {}
    for split, vids in lengths.items():
        for mod in ("rgb", "flow"):
            (root / "features" / split / mod).mkdir(parents=True)
            for vid, t in vids.items():
                arr = rng.standard_normal((t, 1024)).astype(np.float32)
                np.save(root / "features" / split / mod / f"{vid}.npy", arr)
                feats[vid, mod] = arr
    return root, feats


def test_split_layout_both_modalities(split_root):
    root, feats = split_root
    test = load_split_features(root, "test", "both", ambiguous=root / "Ambiguous_test.txt")
    assert [v.video for v in test.videos] == ["video_test_0000004", "video_test_0000026"]
    v = test.videos[0]
    assert v.features.shape == (11, 2048) and v.features.dtype == np.float32
    np.testing.assert_array_equal(v.features[:, :1024], feats["video_test_0000004", "rgb"])
    np.testing.assert_array_equal(v.features[:, 1024:], feats["video_test_0000004", "flow"])
    assert v.stride_s == pytest.approx(0.64) == I3D_STRIDE_S
    assert v.subset == "test" and v.labels == ("BaseballPitch",) and v.duration_s == 7.2
    assert [(s.start, s.end) for s in v.segments] == [(0.2, 1.1), (4.5, 6.0)]
    assert test.videos[1].duration_s == pytest.approx(6 * 0.64)  # no duration in gt.json: the snippets' span
    assert test.classes == list(THUMOS14_CLASSES)
    assert set(test.ambiguous) == {"video_test_0000004", "video_test_0000026"}
    # GT for the protocols: the split's videos only (video_test_0000270 is in gt.json, not in the split)
    gt = test.ground_truth()
    assert set(gt["database"]) == {"video_test_0000004", "video_test_0000026"}
    preds = {"results": {"video_test_0000004": [{"segment": [0.2, 1.1], "label": "BaseballPitch", "score": 0.9}]}}
    res = evaluate(gt, preds, protocol="thumos14", ambiguous=test.ambiguous)
    assert res["per_class_AP"]["BaseballPitch"]["0.5"] == pytest.approx(50.0)


def test_split_layout_train_and_single_modality(split_root):
    root, feats = split_root
    train = load_split_features(root, "train", "flow")
    v = train.videos[1]
    assert v.video == "video_validation_0000052" and v.subset == "validation"
    assert v.labels == ("CliffDiving", "Diving") and v.features.shape == (9, 1024)
    np.testing.assert_array_equal(v.features, feats["video_validation_0000052", "flow"])
    ds = train.dataset()
    assert isinstance(ds, FeatureDataset) and ds.classes == list(THUMOS14_CLASSES)
    assert ds[1]["labels"].nonzero().flatten().tolist() == [4, 7]
    assert load_split_features(root, "test", "rgb", exclude=["video_test_0000026"]).videos[0].features.shape == (11, 1024)
    by_name = load_feature_source("i3d-split", root, "validation", modality="rgb")
    assert [v.video for v in by_name.videos] == [v.video for v in train.videos]
    assert by_name.videos[0].features.shape == (13, 1024)
    with pytest.raises(ValueError, match="unknown feature source 'npy'"):
        load_feature_source("npy", root)


def test_split_layout_errors_name_the_file(split_root):
    root, _ = split_root
    np.save(root / "features" / "test" / "flow" / "video_test_0000026.npy", np.zeros((7, 1024), np.float32))
    with pytest.raises(ValueError, match=r"feature length mismatch for video 'video_test_0000026': .*rgb.* 6 .*flow.* 7"):
        load_split_features(root, "test")
    (root / "features" / "test" / "rgb" / "video_test_0000004.npy").unlink()
    with pytest.raises(FileNotFoundError, match=r"rgb/video_test_0000004.npy"):
        load_split_features(root, "test", "rgb")
    (root / "split_test.txt").write_text("video_test_0000004\nvideo_test_9999999\n")
    with pytest.raises(ValueError, match=r"split_test.txt: 1 video\(s\) not in .*gt.json.*video_test_9999999"):
        load_split_features(root, "test")
    (root / "split_test.txt").write_text("video_test_0000004\nvideo_test_0000004\n")
    with pytest.raises(ValueError, match=r"split_test.txt:2: video 'video_test_0000004' listed twice"):
        load_split_features(root, "test")
    with pytest.raises(ValueError, match=r"gt.json: labels \['Billiards'"):
        load_split_features(root, "train", classes=["BaseballPitch"])
    gt = json.loads((root / "gt.json").read_text())
    gt["database"]["video_test_0000004"]["annotations"][0]["segment"] = [3.0, 1.0]
    (root / "gt.json").write_text(json.dumps(gt))
    with pytest.raises(ValueError, match=r"gt.json: video 'video_test_0000004' annotation 0: .*start < end"):
        load_split_features(root, "test")


# ---------------------------------------------------------------------- W-TALC layout

_WTALC_VIDEOS = [  # name, subset, duration, fps, T, [(start, end, label)], labels_all
    ("video_validation_0000051", "validation", 9.8, 30.0, 15,
     [(1.5, 3.2, "Billiards"), (5.0, 6.1, "Billiards")], ["Billiards"]),
    ("video_validation_0000171", "validation", 7.1, 30.0, 11,
     [(0.5, 1.5, "CricketBowling"), (2.0, 2.8, "CricketShot")], ["CricketBowling"]),
    ("video_test_0000004", "test", 7.3, 30.0, 11, [(0.2, 1.1, "BaseballPitch"), (4.5, 6.0, "BaseballPitch")],
     ["BaseballPitch"]),
    ("video_test_0000026", "test", 5.2, 25.0, 8, [(2.0, 3.3, "CliffDiving"), (2.0, 3.3, "Diving")],
     ["CliffDiving", "Diving"]),
]


def _obj(items):
    out = np.empty(len(items), dtype=object)
    out[:] = items
    return out


@pytest.fixture
def wtalc_root(tmp_path):
    """A Thumos14reduced folder in W-TALC's exact array conventions."""
    root = tmp_path / "Thumos14reduced"
    ann = root / "Thumos14reduced-Annotations"
    shutil.copytree(DATA / "wtalc" / "Thumos14reduced-Annotations", ann)
    rows = _WTALC_VIDEOS
    np.save(ann / "videoname.npy", np.array([r[0].encode() for r in rows], dtype="S24"))
    np.save(ann / "subset.npy", np.array([r[1].encode() for r in rows], dtype="S10"))
    np.save(ann / "classlist.npy", np.array([c.encode() for c in THUMOS14_CLASSES], dtype="S17"))
    np.save(ann / "duration.npy", np.array([[r[2]] for r in rows], dtype=np.float64))
    np.save(ann / "original_fps.npy", np.array([r[3] for r in rows], dtype=np.float64))
    np.save(ann / "extracted_fps.npy", np.full(len(rows), 10, dtype=np.int64))
    np.save(ann / "segments.npy", _obj([[[s, e] for s, e, _ in r[5]] for r in rows]))
    np.save(ann / "labels.npy", _obj([[lab for _, _, lab in r[5]] for r in rows]))
    np.save(ann / "labels_all.npy", _obj([list(r[6]) for r in rows]))
    rng = np.random.default_rng(1)
    feats = [rng.standard_normal((r[4], 2048)).astype(np.float32) for r in rows]
    np.save(root / "Thumos14reduced-I3D-JOINTFeatures.npy", _obj(feats))
    return root, feats


def test_wtalc_layout(wtalc_root):
    root, feats = wtalc_root
    test = load_wtalc_features(root, "test")
    assert [v.video for v in test.videos] == ["video_test_0000004", "video_test_0000026"]
    v = test.videos[1]
    assert v.features.shape == (8, 2048) and v.stride_s == pytest.approx(0.64)
    np.testing.assert_array_equal(v.features, feats[3])
    assert v.duration_s == 5.2 and v.subset == "test" and v.labels == ("CliffDiving", "Diving")
    assert [(s.label, s.start, s.end) for s in v.segments] == [("CliffDiving", 2.0, 3.3), ("Diving", 2.0, 3.3)]
    assert test.classes == list(THUMOS14_CLASSES)
    # Ambiguous_test.txt: only the loaded videos' segments are kept
    assert list(test.ambiguous) == ["video_test_0000004"]
    np.testing.assert_array_equal(test.ambiguous["video_test_0000004"], [[0.0, 0.6], [2.5, 3.1]])
    train = load_wtalc_features(root, "validation")
    # labels_all omits CricketShot for this video; its segment's class is still a video label
    assert train.videos[1].labels == ("CricketBowling", "CricketShot")
    assert len(load_wtalc_features(root, None)) == 4
    assert [v.video for v in load_feature_source("wtalc", root, "train").videos] == [
        "video_validation_0000051", "video_validation_0000171"]
    gt = test.ground_truth()
    res = evaluate(gt, {"results": {}}, protocol="wtalc", ambiguous=test.ambiguous)
    assert res["num_ground_truth"] == 4


def test_wtalc_convert_cli(wtalc_root, tmp_path):
    root, _ = wtalc_root
    out = tmp_path / "gt.json"
    assert main(["action", "convert", "wtalc", str(root / "Thumos14reduced-Annotations"), "--subset", "test",
                 "--output", str(out)]) == 0
    db = json.loads(out.read_text())["database"]
    assert list(db) == ["video_test_0000004", "video_test_0000026"]
    assert db["video_test_0000004"] == {"subset": "test", "duration": 7.3, "annotations": [
        {"segment": [0.2, 1.1], "label": "BaseballPitch"}, {"segment": [4.5, 6.0], "label": "BaseballPitch"}]}


def test_wtalc_errors_name_the_file(wtalc_root):
    root, feats = wtalc_root
    ann = root / "Thumos14reduced-Annotations"
    np.save(root / "Thumos14reduced-I3D-JOINTFeatures.npy", _obj(feats[:3]))
    with pytest.raises(ValueError, match=r"feature length mismatch: .*JOINTFeatures.npy has 3 videos, .*videoname.npy names 4"):
        load_wtalc_features(root, "test")
    np.save(root / "Thumos14reduced-I3D-JOINTFeatures.npy", _obj(feats[:3] + [np.zeros((5, 1024), np.float32)]))
    with pytest.raises(ValueError, match=r"JOINTFeatures.npy row 3 \(video_test_0000026\): 1024 features"):
        load_wtalc_features(root, "test")
    labels = np.load(ann / "labels.npy", allow_pickle=True)
    labels[2] = ["BaseballPitch", "Baseball"]
    np.save(ann / "labels.npy", labels)
    with pytest.raises(ValueError, match=r"labels.npy row 2 \(video_test_0000004\): unknown class\(es\) \['Baseball'\]"):
        load_wtalc_features(root, "test")
    labels[2] = ["BaseballPitch"]
    np.save(ann / "labels.npy", labels)
    with pytest.raises(ValueError, match=r"segments.npy row 2 \(video_test_0000004\): 2 segments but .*labels.npy gives 1"):
        load_wtalc_features(root, "test")
    (ann / "segments.npy").unlink()
    with pytest.raises(FileNotFoundError, match=r"segments.npy"):
        load_wtalc_features(root, "test")
