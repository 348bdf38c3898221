"""Issue 14, action room: bad inputs and faults end in one line naming the file (exit 2) or score
as the reference tools score them; nothing is lost or half-written. Every case goes through the CLI."""

from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest

from hideseek.action.protocols import PROTOCOL_RECORDS
from hideseek.cli import main

DATA = Path(__file__).parent / "data" / "thumos"
BOM = "\ufeff".encode()


def _run(argv, capsys):
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def _one_line_error(err: str, *needles: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def _write_json(path: Path, data) -> Path:
    path.write_text(json.dumps(data))
    return path


def _evaluate(gt, preds, *extra):
    return ["action", "evaluate", "--ground-truth", str(gt), "--predictions", str(preds), *extra]


# ----------------------------------------------------------------- 1. subset that matches nothing


def test_subset_matching_no_video_names_the_subsets_present(tmp_path, capsys):
    database = {"v_a": {"subset": "testing", "annotations": [{"segment": [1, 2], "label": "A"}]},
                "v_b": {"subset": "validation", "annotations": [{"segment": [1, 2], "label": "A"}]}}
    gt = _write_json(tmp_path / "gt.json", {"database": database})
    preds = _write_json(tmp_path / "p.json", {"results": {"v_a": [{"segment": [1, 2], "label": "A", "score": 1}]}})
    code, out, err = _run(_evaluate(gt, preds), capsys)  # default --subset test
    assert code == 2 and "mAP" not in out
    _one_line_error(err, str(gt), "'test'", "'testing'", "'validation'")
    code, out, _ = _run(_evaluate(gt, preds, "--subset", "testing"), capsys)
    assert code == 0 and "mAP@0.5   100.00" in out


# ----------------------------------------------------------------- 2. byte-order marks


def test_bom_in_thumos14_class_files_changes_nothing(tmp_path, capsys):
    clean = DATA / "TH14_Temporal_annotations_test" / "annotation"
    bom = tmp_path / "annotation"
    shutil.copytree(clean, bom)
    for path in bom.glob("*.txt"):
        path.write_bytes(BOM + path.read_bytes())
    assert main(["action", "convert", "thumos14", str(clean), "--output", str(tmp_path / "clean.json")]) == 0
    assert main(["action", "convert", "thumos14", str(bom), "--output", str(tmp_path / "bom.json")]) == 0
    capsys.readouterr()
    clean_db = json.loads((tmp_path / "clean.json").read_text())["database"]
    assert json.loads((tmp_path / "bom.json").read_text())["database"] == clean_db
    assert not any(v.startswith("\ufeff") for v in clean_db)


def test_bom_in_ambiguous_file_and_json_gives_the_same_map(tmp_path, capsys):
    amb = tmp_path / "amb.txt"
    amb.write_bytes(BOM + (DATA / "ambiguous_small.txt").read_bytes())
    gt = tmp_path / "gt.json"
    gt.write_bytes(BOM + (DATA / "gt_small.json").read_bytes())
    preds = tmp_path / "preds.json"
    preds.write_bytes(BOM + (DATA / "preds_small.json").read_bytes())
    clean = _evaluate(DATA / "gt_small.json", DATA / "preds_small.json", "--protocol", "thumos14", "--ambiguous",
                      str(DATA / "ambiguous_small.txt"), "--output", str(tmp_path / "clean.json"))
    with_bom = _evaluate(gt, preds, "--protocol", "thumos14", "--ambiguous", str(amb),
                         "--output", str(tmp_path / "bom.json"))
    assert main(clean) == 0 and main(with_bom) == 0
    capsys.readouterr()
    a, b = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("clean", "bom"))
    assert a["mAP"] == b["mAP"] and a["per_class_AP"] == b["per_class_AP"]


def test_non_utf8_ambiguous_file_names_file_and_line(tmp_path, capsys):
    amb = tmp_path / "amb.txt"
    amb.write_bytes(b"video_test_0000001  60.0 70.0\nvid\xe9o 1 2\n")
    code, _, err = _run(_evaluate(DATA / "gt_small.json", DATA / "preds_small.json", "--protocol", "thumos14",
                                  "--ambiguous", str(amb)), capsys)
    assert code == 2
    _one_line_error(err, f"{amb}:2:", "UTF-8")


# ----------------------------------------------------------------- 3. W-TALC arrays: no pickle code runs


class _Payload:
    """Unpickling this would create a marker file (what a crafted annotation file could do)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def _obj(items):
    out = np.empty(len(items), dtype=object)
    out[:] = items
    return out


def _wtalc_annotations(folder: Path) -> Path:
    folder.mkdir(parents=True)
    rows = [("video_test_0000004", "test", 7.3, [[0.2, 1.1], [4.5, 6.0]], ["BaseballPitch", "BaseballPitch"]),
            ("video_validation_0000051", "validation", 9.8, [[1.5, 3.2]], ["Billiards"])]
    from hideseek.action.thumos import THUMOS14_CLASSES

    np.save(folder / "videoname.npy", np.array([r[0].encode() for r in rows], dtype="S24"))
    np.save(folder / "subset.npy", np.array([r[1].encode() for r in rows], dtype="S10"))
    np.save(folder / "classlist.npy", np.array([c.encode() for c in THUMOS14_CLASSES], dtype="S17"))
    np.save(folder / "duration.npy", np.array([[r[2]] for r in rows], dtype=np.float64))
    np.save(folder / "segments.npy", _obj([r[3] for r in rows]))
    np.save(folder / "labels.npy", _obj([r[4] for r in rows]))
    np.save(folder / "labels_all.npy", _obj([sorted(set(r[4])) for r in rows]))
    return folder


def test_wtalc_convert_runs_no_code_from_a_crafted_array(tmp_path, capsys):
    ann = _wtalc_annotations(tmp_path / "Thumos14reduced-Annotations")
    code, _, _ = _run(["action", "convert", "wtalc", str(ann), "--output", str(tmp_path / "ok.json")], capsys)
    assert code == 0
    marker = tmp_path / "pwned"
    np.save(ann / "labels.npy", _obj([["BaseballPitch", "BaseballPitch"], [_Payload(marker)]]))
    code, _, err = _run(["action", "convert", "wtalc", str(ann), "--output", str(tmp_path / "gt.json")], capsys)
    assert code == 2 and not marker.exists() and not (tmp_path / "gt.json").exists()
    _one_line_error(err, "labels.npy", "refused", "touch")


def test_wtalc_python2_style_pickles_still_load(tmp_path, capsys):
    """W-TALC's files were written by Python 2 with NumPy 1.x: ``numpy.core`` names, protocol 2, byte strings."""
    ann = _wtalc_annotations(tmp_path / "ann")
    for name in ("segments", "labels", "labels_all"):
        path = ann / f"{name}.npy"
        arr = np.load(path, allow_pickle=True)
        payload = pickle.dumps(arr, protocol=2).replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
        if name != "segments":  # Python 2 str: byte strings in the pickle
            arr2 = _obj([[s.encode() for s in row] for row in arr])
            payload = pickle.dumps(arr2, protocol=2).replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
        header = {"descr": "|O", "fortran_order": False, "shape": arr.shape}
        with open(path, "wb") as fh:
            np.lib.format.write_array_header_1_0(fh, header)
            fh.write(payload)
    out = tmp_path / "gt.json"
    code, _, err = _run(["action", "convert", "wtalc", str(ann), "--subset", "test", "--output", str(out)], capsys)
    assert code == 0, err
    db = json.loads(out.read_text())["database"]
    assert db["video_test_0000004"]["annotations"] == [
        {"segment": [0.2, 1.1], "label": "BaseballPitch"}, {"segment": [4.5, 6.0], "label": "BaseballPitch"}]


# ----------------------------------------------------------------- 4. feature length and NaN


def _feature_folder(tmp_path, stride=0.64):
    feats = tmp_path / "features"
    feats.mkdir()
    rng = np.random.default_rng(0)
    database = {}
    for k, subset in enumerate(["validation"] * 4 + ["test"] * 2):
        vid = f"video_{subset}_{k:03d}"
        t = 30
        np.save(feats / f"{vid}.npy", rng.standard_normal((t, 8)).astype(np.float32))
        database[vid] = {"subset": subset, "duration": t * stride + 0.3,
                         "annotations": [{"segment": [2 * stride, 9 * stride], "label": ["A", "B"][k % 2]}]}
    gt = _write_json(tmp_path / "gt.json", {"database": database})
    return feats, gt


def _train_features(feats, gt, tmp_path):
    return ["action", "train", "--dataset", "features", "--features-dir", str(feats), "--ground-truth", str(gt),
            "--stride-s", "0.64", "--train-subset", "validation", "--epochs", "1", "--batch-size", "4",
            "--device", "cpu", "--output", str(tmp_path / "run"), "--records", str(tmp_path / "r.jsonl"),
            "--no-progress", "--no-eval"]


def test_truncated_feature_file_is_refused_naming_file_and_lengths(tmp_path, capsys):
    feats, gt = _feature_folder(tmp_path)
    bad = feats / "video_test_005.npy"
    np.save(bad, np.load(bad)[:15])
    # the test videos are loaded with the training ones: refused before any epoch runs
    code, _, err = _run(_train_features(feats, gt, tmp_path), capsys)
    assert code == 2 and not (tmp_path / "run" / "last.pt").exists()
    _one_line_error(err, str(bad), "15 snippets", "video_test_005", "shorter")


def test_feature_file_within_the_stride_tolerance_trains(tmp_path, capsys):
    feats, gt = _feature_folder(tmp_path)
    path = feats / "video_test_005.npy"
    np.save(path, np.load(path)[:29])  # one snippet short: the dropped trailing partial snippet
    code, _, err = _run(_train_features(feats, gt, tmp_path), capsys)
    assert code == 0, err


def test_nan_in_a_feature_file_names_the_file(tmp_path, capsys):
    feats, gt = _feature_folder(tmp_path)
    bad = feats / "video_validation_002.npy"
    arr = np.load(bad)
    arr[7, 3] = np.nan
    np.save(bad, arr)
    code, _, err = _run(_train_features(feats, gt, tmp_path), capsys)
    assert code == 2
    _one_line_error(err, str(bad), "video_validation_002", "snippet 7")


def test_i3d_split_layout_truncated_feature_file(tmp_path, capsys):
    """The BaS-Net/CoLA layout: gt.json durations against features/<split>/<modality>/<video>.npy."""
    from hideseek.action.thumos import load_split_features

    root = tmp_path / "i3d"
    shutil.copytree(DATA / "i3d_split", root)
    gt = json.loads((root / "gt.json").read_text())
    for split in ("train", "test"):
        for vid in (root / f"split_{split}.txt").read_text().split():
            for mod in ("rgb", "flow"):
                (root / "features" / split / mod).mkdir(parents=True, exist_ok=True)
                t = int(gt["database"][vid].get("duration", 6.4) / 0.64)
                np.save(root / "features" / split / mod / f"{vid}.npy", np.ones((t, 4), np.float32))
    load_split_features(root, "test")  # the clean layout loads
    vid = (root / "split_test.txt").read_text().split()[0]
    bad = root / "features" / "test" / "rgb" / f"{vid}.npy"
    if "duration" not in gt["database"][vid]:
        pytest.skip("fixture video has no duration")
    np.save(bad, np.ones((2, 4), np.float32))
    np.save(root / "features" / "test" / "flow" / f"{vid}.npy", np.ones((2, 4), np.float32))
    with pytest.raises(ValueError, match=r"rgb/.*\.npy: 2 snippets .* shorter than video"):
        load_split_features(root, "test")


# ----------------------------------------------------------------- 5. negative starts, empty, reversed


def _small(tmp_path, segments):
    gt = _write_json(tmp_path / "gt.json", {"database": {"v": {"subset": "test", "annotations": [
        {"segment": [0.0, 4.0], "label": "A"}]}}})
    preds = _write_json(tmp_path / "p.json", {"results": {"v": [
        {"segment": seg, "label": "A", "score": score} for seg, score in segments]}})
    return gt, preds


def test_negative_start_is_scored_as_the_reference_scores_it(tmp_path, capsys):
    # tIoU([-1, 4], [0, 4]) = 4 / 5 = 0.8: a true positive at every threshold up to 0.7
    # (at each protocol's default thresholds; the 2014 kit's 11-point AP adds 1/11 eleven
    # times, which is 1 only to 1e-15)
    gt, preds = _small(tmp_path, [([-1.0, 4.0], 0.9)])
    for protocol, record in PROTOCOL_RECORDS.items():
        code, out, err = _run(_evaluate(gt, preds, "--protocol", protocol, "--output",
                                        str(tmp_path / f"{protocol}.json")), capsys)
        assert code == 0, err
        assert json.loads((tmp_path / f"{protocol}.json").read_text())["mAP"] == pytest.approx(
            {f"{t:g}": 100.0 for t in record.default_tiou}, abs=1e-12)


def test_zero_length_prediction_is_a_false_positive(tmp_path, capsys):
    # ranked: [2, 2] (tIoU 0, FP) then [0, 4] (TP): interpolated precision at recall 1 is 1/2
    gt, preds = _small(tmp_path, [([2.0, 2.0], 0.95), ([0.0, 4.0], 0.9)])
    code, _, err = _run(_evaluate(gt, preds, "--tiou", "0.5", "--output", str(tmp_path / "r.json")), capsys)
    assert code == 0, err
    assert json.loads((tmp_path / "r.json").read_text())["mAP"] == {"0.5": 50.0}


@pytest.mark.parametrize("segment, what", [([4.0, 1.0], "reversed"), ([0.0, "nan"], "not finite"),
                                           ([0.0, 1e400], "not finite"), ([0.0], "not [start, end]")])
def test_meaningless_segment_names_file_video_and_entry(tmp_path, capsys, segment, what):
    gt, _ = _small(tmp_path, [])
    preds = tmp_path / "bad.json"
    text = json.dumps({"results": {"v": [{"segment": [0, 4], "label": "A", "score": 0.5},
                                         {"segment": segment, "label": "A", "score": 0.4}]}})
    preds.write_text(text.replace('"nan"', "NaN").replace("1e+400", "1e400"))
    code, out, err = _run(_evaluate(gt, preds), capsys)
    assert code == 2 and "mAP" not in out
    _one_line_error(err, str(preds), "'v'", "prediction 1", what)


# ----------------------------------------------------------------- 6. --epochs 0 and other sizes


@pytest.mark.parametrize("option, value", [("--epochs", "0"), ("--epochs", "-3"), ("--batch-size", "0"),
                                           ("--hidden", "0"), ("--lr", "-1"), ("--dropout", "1.5"),
                                           ("--kernel-size", "2"), ("--topk-ratio", "0"),
                                           ("--min-length-s", "nan"), ("--cam-thresholds", "nan"),
                                           ("--video-weight", "inf")])
def test_train_refuses_sizes_below_one(tmp_path, capsys, option, value):
    code, _, err = _run(["action", "train", "--quick", option, value, "--output", str(tmp_path / "run"),
                         "--records", str(tmp_path / "r.jsonl"), "--no-progress", "--device", "cpu"], capsys)
    assert code == 2 and not (tmp_path / "run").exists()
    _one_line_error(err, option)


# ----------------------------------------------------------------- 7. Ctrl-C during extraction


class _FakeEncoder:
    backbone = "fake"
    weights = "random-init (seed 0)"
    input_size = (8, 8)
    mean_std = ((0.5,) * 3, (0.25,) * 3)
    feature_dim = 3

    def __init__(self, *args, **kwargs):
        pass

    def to(self, device):
        return self

    def eval(self):
        return self


def test_ctrl_c_during_extraction_keeps_finished_files_and_resumes(tmp_path, capsys, monkeypatch):
    from hideseek.action import features

    videos = tmp_path / "videos"
    videos.mkdir()
    for name in ("a", "b", "c"):
        (videos / f"{name}.mp4").write_bytes(b"not decoded: extract_video is replaced")
    calls = []

    def fake_extract(encoder, path, **kwargs):
        calls.append(Path(path).stem)
        n = 4 + len(calls)
        return np.full((n, 3), len(calls), np.float32), {"num_frames": 16 * n, "video_fps": 25.0,
                                                          "duration_s": n * 0.64, "num_snippets": n,
                                                          "stride_s": 0.64}

    real_save = np.save

    def interrupted_save(fh, array):  # Ctrl-C while the second file is half written
        if len(calls) == 2:
            fh.write(b"\x93NUMPY half")
            raise KeyboardInterrupt
        real_save(fh, array)

    monkeypatch.setattr(features, "FrameEncoder", _FakeEncoder)
    monkeypatch.setattr(features, "extract_video", fake_extract)
    monkeypatch.setattr(features.np, "save", interrupted_save)
    out = tmp_path / "feats"
    argv = ["action", "extract-features", str(videos), "--backbone", "fake", "--random-init", "--output", str(out),
            "--no-progress", "--device", "cpu"]
    code, _, err = _run(argv, capsys)
    assert code == 130 and err.strip() == "interrupted"
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".extract")) == ["a.npy", "manifest.json"]
    assert list(json.loads((out / "manifest.json").read_text())["videos"]) == ["a"]
    first = np.load(out / "a.npy")
    monkeypatch.setattr(features.np, "save", real_save)
    code, stdout, err = _run(argv, capsys)
    assert code == 0, err
    assert "2 extracted, 1 already done" in stdout
    np.testing.assert_array_equal(np.load(out / "a.npy"), first)
    assert sorted(json.loads((out / "manifest.json").read_text())["videos"]) == ["a", "b", "c"]
    assert not list(out.glob(".*.partial"))


# ----------------------------------------------------------------- 8. JSON top levels, unwritable --output


@pytest.mark.parametrize("which, data, needle", [
    ("gt", [1, 2], "a list"),
    ("gt", "database", "a string"),
    ("gt", {"database": []}, "'database'"),
    ("gt", {"database": {"v": "test"}}, "video 'v'"),
    ("gt", {"database": {"v": {"subset": "test", "annotations": {"segment": [0, 1]}}}}, "'annotations'"),
    ("preds", [], "a list"),
    ("preds", {"results": [1]}, "'results'"),
    ("preds", {"results": {"v": {"segment": [0, 1]}}}, "video 'v'"),
    ("preds", {"results": {"v": ["x"]}}, "prediction 0"),
    ("preds", {"results": {"v": [{"segment": [0, 1], "label": "A", "score": "high"}]}}, "score"),
    ("preds", {"results": {"v": [{"segment": [0, 1], "label": "A", "score": None}]}}, "score"),
])
def test_wrong_json_shapes_are_one_line(tmp_path, capsys, which, data, needle):
    gt = _write_json(tmp_path / "gt.json", {"database": {"v": {"subset": "test", "annotations": [
        {"segment": [0, 1], "label": "A"}]}}})
    preds = _write_json(tmp_path / "p.json", {"results": {}})
    target = _write_json(tmp_path / f"{which}-bad.json", data)
    argv = _evaluate(target, preds) if which == "gt" else _evaluate(gt, target)
    code, out, err = _run(argv, capsys)
    assert code == 2 and "mAP" not in out
    _one_line_error(err, str(target), needle)


def test_unwritable_output_is_refused_before_scoring(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    for argv in (_evaluate(DATA / "gt_small.json", DATA / "preds_small.json", "--output", str(blocker / "r.json")),
                 ["action", "convert", "thumos14", str(DATA / "TH14_Temporal_annotations_test"),
                  "--output", str(blocker / "gt.json")]):
        code, out, err = _run(argv, capsys)
        assert code == 2 and out == ""
        _one_line_error(err, str(blocker / ""))


def test_extract_features_unwritable_output_folder(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    videos = tmp_path / "videos"
    videos.mkdir()
    code, _, err = _run(["action", "extract-features", str(videos), "--backbone", "resnet18", "--random-init",
                         "--output", str(blocker / "feats"), "--no-progress"], capsys)
    assert code == 2
    _one_line_error(err, str(blocker))


def test_feature_manifest_with_a_bom_is_read(tmp_path):
    from hideseek.action.features import load_feature_dir

    out = tmp_path / "feats"
    out.mkdir()
    np.save(out / "a.npy", np.ones((5, 3), np.float32))
    manifest = {"format": "hideseek-snippet-features", "version": 1, "settings": {"feature_dim": 3},
                "videos": {"a": {"num_snippets": 5, "stride_s": 0.64, "duration_s": 3.3}}, "failed": {}}
    (out / "manifest.json").write_bytes(BOM + json.dumps(manifest).encode())
    split = load_feature_dir(out)
    assert [v.video for v in split.videos] == ["a"]
    os.remove(out / "a.npy")
    np.save(out / "a.npy", np.ones((5, 3), np.float32) * np.nan)
    with pytest.raises(ValueError, match=r"a.npy: features of video 'a' hold nan"):
        load_feature_dir(out)
