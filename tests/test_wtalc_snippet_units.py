"""W-TALC scored in its own snippet units wherever the detections come from a temporal CAM.

The detector keeps each run's snippet range ``[a, b)`` beside its seconds, the trainer and
``action detect`` write them with the grid's snippets per second, and ``wtalc`` scores those
ranges (GT and ambiguous seconds converted by ``int(round(seconds * factor))``, overlaps on
index sets) while the other protocols score the seconds. The reference below is written from
W-TALC's ``detectionMAP.py`` rules (getLocMAP), not from hideseek's code.
"""

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hideseek.action.dataset import VideoFeatures
from hideseek.action.detect import DetectConfig, detect_video, to_results_json, write_predictions
from hideseek.action.protocols import PROTOCOLS, evaluate
from hideseek.action.train import snippet_rate
from hideseek.cli import main
from hideseek.results.records import read_records

SETTINGS = settings(database=None, deadline=None, max_examples=80,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])
TIOU = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)
I3D = 25.0 / 16.0  # W-TALC's factor for I3D features


def wtalc_reference(gt, rows, ambiguous, thresholds, factor):
    """getLocMAP on prediction rows ``(video, s, e, label, score)`` (snippet indices, put in
    its row order): videos without GT dropped, classes sorted by name, ambiguous overlaps removed, the
    rest ranked by ``np.argsort(-score)``, first-fit matching on index sets, non-interpolated
    AP, ``100 * np.mean``. Returns ``({class: [AP per threshold]}, [mAP per threshold])``."""
    def to_range(s, e):
        return set(range(int(round(s * factor)), int(round(e * factor))))

    def iou(a, b):
        return float(len(a & b)) / float(len(a | b))

    database = {v: e for v, e in gt["database"].items() if e.get("subset") == "test"}
    kept = [v for v, e in database.items() if e.get("annotations")]
    gt_rows = [(v, a["segment"][0], a["segment"][1], a["label"]) for v in kept for a in database[v]["annotations"]]
    classes = sorted({r[3] for r in gt_rows})
    per_class = {c: [] for c in classes}
    maps = []
    for th in thresholds:
        aps = []
        for c in classes:
            # getLocMAP's rows: video by video in dataset order, each video's runs by start
            preds = sorted((r for r in rows if r[3] == c and r[0] in kept), key=lambda r: (kept.index(r[0]), r[1]))
            preds = [r for r in preds if not any(a[0] == r[0] and iou(to_range(a[1], a[2]), set(range(r[1], r[2]))) > 0
                                                 for a in ambiguous)]
            if not preds:
                per_class[c].append(0.0)
                aps.append(0.0)
                continue
            preds = [preds[i] for i in np.argsort(-np.array([r[4] for r in preds], dtype=np.float64))]
            free = [r for r in gt_rows if r[3] == c]
            npos = len(free)
            tp = []
            for r in preds:
                hit = 0.0
                for j, g in enumerate(free):
                    if g[0] == r[0] and iou(to_range(g[1], g[2]), set(range(r[1], r[2]))) >= th:
                        hit = 1.0
                        del free[j]
                        break
                tp.append(hit)
            tp = np.array(tp)
            tp_c, fp_c = np.cumsum(tp), np.cumsum(1.0 - tp)
            ap = 0.0 if tp.sum() == 0 else np.sum(tp_c / (tp_c + fp_c) * tp) / npos
            per_class[c].append(ap)
            aps.append(ap)
        maps.append(100 * np.mean(aps))
    return per_class, maps


def snippet_rows(preds):
    """The rows of a predictions object as W-TALC's ``[video, s, e, label, score]``."""
    return [(v, p["snippets"][0], p["snippets"][1], p["label"], p["score"])
            for v, items in preds["results"].items() for p in items]


def assert_reference(out, per_class, maps):
    for name, aps in per_class.items():
        for key, ap in zip(out["mAP"], aps):
            assert out["per_class_AP"][name][key] == 100.0 * ap, (name, key)
    assert list(out["mAP"].values()) == list(maps)


# ----------------------------------------------------------------------- the exact ratio


def test_a_run_on_the_i3d_grid_keeps_the_match_that_seconds_lose(tmp_path):
    # snippets 0..2 on the 0.64 s grid -> [0, 3); GT [0.64, 2.56] s -> int(round(x * 25/16)) = [1, 4):
    # IoU 2/4 = 0.5 on the index sets, a TP at tIoU 0.5 in W-TALC; in seconds the same pair is a hair
    # under 0.5, so scoring the seconds loses it
    act = np.array([[1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0]])
    dets = {"v": detect_video(act, np.array([0.9]), ["A"], stride_s=16 / 25, duration_s=8 * 0.64,
                              config=DetectConfig(thresholds=(0.5,), score="mean", nms_tiou=None))}
    assert [d["snippets"] for d in dets["v"]] == [[0, 3]]
    gt = {"database": {"v": {"subset": "test", "annotations": [{"segment": [0.64, 2.56], "label": "A"}]}}}
    path = write_predictions(dets, tmp_path / "pred.json", snippets_per_second=I3D)
    written = json.loads(path.read_text())
    assert written["snippets_per_second"] == 1.5625 and written["results"]["v"][0]["snippets"] == [0, 3]
    out = evaluate(gt, path, protocol="wtalc", tiou=[0.5])
    assert out["units"] == "snippets" and out["snippets_per_second"] == 1.5625
    assert_reference(out, *wtalc_reference(gt, snippet_rows(written), [], [0.5], I3D))
    assert out["mAP"]["0.5"] == 100.0
    seconds = evaluate(gt, path, protocol="wtalc", tiou=[0.5], units="seconds")
    assert seconds["mAP"]["0.5"] == 0.0 and seconds["units"] == "seconds" and seconds["snippets_per_second"] is None
    # the other protocols score the seconds of the same file
    assert evaluate(gt, path, protocol="activitynet", tiou=[0.5])["units"] == "seconds"


def test_the_i3d_grid_is_wtalcs_literal_and_other_grids_their_fraction():
    def video(stride, fps=None):
        return VideoFeatures("v", np.zeros((3, 2), np.float32), stride_s=stride, fps=fps)

    assert snippet_rate([video(16 / 25)], fps=25.0, frames=16) == 25.0 / 16.0
    assert snippet_rate([video(16 / 25)]) == 25.0 / 16.0  # 1 / 0.64 happens to round to it too
    # 16 frames at 30000/1001 fps: the fraction rounded once, not 1 / stride (one ulp apart)
    fps = 30000 / 1001
    stride = 16 / fps
    assert 1 / stride != fps / 16
    assert snippet_rate([video(stride)], fps=fps, frames=16) == fps / 16
    assert snippet_rate([video(stride, fps=fps)], frames=16) == fps / 16  # each video's own frame rate
    assert snippet_rate([video(stride)]) == 1 / stride  # no frame facts: the stride
    assert snippet_rate([video(0.5)], fps=25.0, frames=16) == 2.0  # a fraction of another grid is not used
    assert snippet_rate([video(0.64), video(0.5)]) is None  # no common grid: no snippet units


# ----------------------------------------------------------------------- detections as W-TALC sees them


@st.composite
def detection_cases(draw):
    seconds = st.one_of(st.builds(lambda k: k * 0.32, st.integers(0, 40)),
                        st.builds(lambda k: k / 100, st.integers(0, 1300)))
    level = st.sampled_from([0.0, 0.2, 0.5, 0.6, 0.9, 1.0])
    videos = draw(st.lists(st.sampled_from(["v1", "v2", "v3", "v_none"]), min_size=1, max_size=3, unique=True))
    database, activations = {}, {}
    for v in videos:
        t = draw(st.integers(3, 20))
        act = np.array([[draw(level) for _ in range(t)] for _ in range(2)])
        # the last snippet may run past the video's end: the seconds are clipped, the range is not
        duration = (t - draw(st.sampled_from([0.0, 0.25, 0.5]))) * 0.64
        activations[v] = (act, np.array([draw(st.sampled_from([0.05, 0.3, 0.8])) for _ in range(2)]), duration)
        anns = []
        for _ in range(0 if v == "v_none" else draw(st.integers(0, 3))):
            a, b = sorted((draw(seconds), draw(seconds)))
            anns.append({"segment": [a, b], "label": draw(st.sampled_from(["A", "B"]))})
        database[v] = {"subset": "test", "annotations": anns}
    if not any(e["annotations"] for e in database.values()):
        database[videos[0]]["annotations"] = [{"segment": [0.64, 2.56], "label": "A"}]
    config = DetectConfig(thresholds=draw(st.sampled_from([(0.5,), (0.3, 0.5, 0.7)])),
                          score=draw(st.sampled_from(["mean", "outer-inner"])),
                          nms_tiou=draw(st.sampled_from([None, 0.5])), max_per_video=None)
    ambiguous = [(v, *sorted((draw(seconds), draw(seconds)))) for v in draw(st.lists(st.sampled_from(videos),
                                                                                      max_size=2))]
    return {"gt": {"database": database}, "activations": activations, "config": config, "ambiguous": ambiguous}


@SETTINGS
@given(case=detection_cases())
def test_detections_from_a_tcam_are_scored_in_wtalcs_units(case):
    dets = {v: detect_video(act, scores, ["A", "B"], stride_s=0.64, duration_s=duration, config=case["config"])
            for v, (act, scores, duration) in case["activations"].items()}
    for v, items in dets.items():
        for d in items:
            a, b = d["snippets"]
            # the same run in both units; the seconds are sums of float products (1e-12: rounding only)
            assert isinstance(a, int) and isinstance(b, int) and 0 <= a < b
            assert d["segment"][0] == pytest.approx(a * 0.64, abs=1e-12)
            assert d["segment"][1] == pytest.approx(min(b * 0.64, case["activations"][v][2]), abs=1e-12)
    preds = to_results_json(dets, I3D)
    out = evaluate(case["gt"], preds, protocol="wtalc", tiou=TIOU, ambiguous=case["ambiguous"])
    assert out["units"] == "snippets" and out["snippets_per_second"] == I3D
    assert_reference(out, *wtalc_reference(case["gt"], snippet_rows(preds), case["ambiguous"], TIOU, I3D))
    # the same rows written with their ranges as the segments, scored with units="snippets"
    plain = {"results": {v: [{"segment": p["snippets"], "label": p["label"], "score": p["score"]} for p in items]
                         for v, items in preds["results"].items()}}
    again = evaluate(case["gt"], plain, protocol="wtalc", tiou=TIOU, ambiguous=case["ambiguous"], units="snippets",
                     snippets_per_second=I3D)
    assert again["mAP"] == out["mAP"] and again["per_class_AP"] == out["per_class_AP"]


# ----------------------------------------------------------------------- the trainer and the command line


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("wtalc-units")
    code = main(["action", "train", "--synthetic-train", "8", "--synthetic-test", "4", "--epochs", "1",
                 "--batch-size", "8", "--device", "cpu", "--no-progress", "--output", str(root / "run"),
                 "--records", str(root / "records.jsonl")])
    assert code == 0
    return root


def _trainer_result(root, protocol):
    return json.loads((root / "run" / f"eval-test-{protocol}.json").read_text())


def test_the_trainers_wtalc_is_evaluate_in_snippet_units(tiny_run):
    run = tiny_run / "run"
    gt = json.loads((run / "gt-test.json").read_text())
    preds = json.loads((run / "predictions-test.json").read_text())
    # the synthetic benchmark: 4-frame snippets at 8 fps
    assert preds["snippets_per_second"] == 2.0
    for v, items in preds["results"].items():
        duration = gt["database"][v]["duration"]
        for p in items:  # stride 0.5 s: the seconds are the range, exactly, clipped to the duration
            assert p["segment"] == [p["snippets"][0] * 0.5, min(p["snippets"][1] * 0.5, duration)]
    trained = _trainer_result(tiny_run, "wtalc")
    assert trained["units"] == "snippets" and trained["snippets_per_second"] == 2.0
    plain = {"results": {v: [{"segment": p["snippets"], "label": p["label"], "score": p["score"]} for p in items]
                         for v, items in preds["results"].items()}}
    direct = evaluate(gt, plain, protocol="wtalc", tiou=TIOU, units="snippets", snippets_per_second=2.0)
    assert trained["mAP"] == direct["mAP"] and trained["per_class_AP"] == direct["per_class_AP"]
    assert_reference(trained, *wtalc_reference(gt, snippet_rows(preds), [], TIOU, 2.0))
    # every other protocol scores the seconds of the same detections
    seconds = {"results": {v: [{k: p[k] for k in ("segment", "label", "score")} for p in items]
                           for v, items in preds["results"].items()}}
    for protocol in PROTOCOLS:
        if protocol != "wtalc":
            result = _trainer_result(tiny_run, protocol)
            assert result["units"] == "seconds"
            assert result["mAP"] == evaluate(gt, seconds, protocol=protocol, tiou=TIOU)["mAP"]
    units = {r["policy"]["name"]: (r["policy"]["units"], r["policy"]["snippets_per_second"])
             for r in read_records(tiny_run / "records.jsonl")}
    assert units == {p: ("snippets", 2.0) if p == "wtalc" else ("seconds", None) for p in PROTOCOLS}


def test_evaluate_on_the_written_file_scores_its_units(tiny_run, tmp_path, capsys):
    run = tiny_run / "run"
    args = ["action", "evaluate", "--ground-truth", str(run / "gt-test.json"), "--predictions",
            str(run / "predictions-test.json"), "--protocol", "wtalc", "--tiou", *(str(t) for t in TIOU)]
    capsys.readouterr()
    assert main([*args, "--output", str(tmp_path / "auto.json")]) == 0
    assert "units snippets, 2 per second (GT and ambiguous seconds -> int(round(seconds * 2)))" in capsys.readouterr().out
    auto = json.loads((tmp_path / "auto.json").read_text())
    assert auto["mAP"] == _trainer_result(tiny_run, "wtalc")["mAP"] and auto["units"] == "snippets"
    assert main([*args, "--snippets-per-second", "2", "--output", str(tmp_path / "same.json")]) == 0
    assert json.loads((tmp_path / "same.json").read_text())["mAP"] == auto["mAP"]
    assert main([*args, "--units", "seconds", "--output", str(tmp_path / "seconds.json")]) == 0
    assert "units seconds" in capsys.readouterr().out
    seconds = json.loads((tmp_path / "seconds.json").read_text())
    assert seconds["units"] == "seconds" and any("tIoU on segments in seconds" in d for d in seconds["deviations"])
    # a factor that contradicts the file's grid is refused, naming the file
    assert main([*args, "--snippets-per-second", "1.5625"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: {run / 'predictions-test.json'}: ") and "2.0" in err


def test_snippet_fields_that_cannot_be_scored_are_refused(tmp_path, capsys):
    gt = tmp_path / "gt.json"
    gt.write_text('{"database": {"v": {"subset": "test", "annotations": [{"segment": [0.64, 2.56], "label": "A"}]}}}')

    def run(preds, *extra):
        path = tmp_path / "pred.json"
        path.write_text(json.dumps(preds))
        code = main(["action", "evaluate", "--ground-truth", str(gt), "--predictions", str(path), "--protocol",
                     "wtalc", *extra])
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and err.startswith(f"error: {path}: "), err
        return err

    row = {"segment": [0.0, 1.92], "label": "A", "score": 0.5}
    # every prediction carries its range, or none does
    err = run({"snippets_per_second": I3D, "results": {"v": [{**row, "snippets": [0, 3]}, row]}})
    assert "video 'v' prediction 1: no 'snippets' range, while video 'v' prediction 0 has one" in err
    for bad in ([0.5, 3], [3, 3], [2, 1], "0-3", [0, 3, 4], [True, 3]):
        assert "is not a snippet range" in run({"snippets_per_second": I3D,
                                                 "results": {"v": [{**row, "snippets": bad}]}})
    # ranges need their grid
    err = run({"results": {"v": [{**row, "snippets": [0, 3]}]}})
    assert "no 'snippets_per_second'" in err
    for bad in (0, -2, "fast", True, None):
        if bad is not None:
            assert "positive number" in run({"snippets_per_second": bad, "results": {"v": [{**row, "snippets": [0, 3]}]}})
    # with the factor given, the same file scores (the W-TALC exact ratio: a TP at 0.5)
    path = tmp_path / "ok.json"
    path.write_text(json.dumps({"results": {"v": [{**row, "snippets": [0, 3]}]}}))
    out = evaluate(gt, path, protocol="wtalc", tiou=[0.5], snippets_per_second=I3D)
    assert out["mAP"]["0.5"] == 100.0 and out["units"] == "snippets"


def test_detections_without_a_grid_are_written_in_seconds_only():
    dets = {"v": [{"segment": [0.0, 1.5], "snippets": [0, 3], "label": "A", "score": 0.5}]}
    plain = to_results_json(dets)
    assert "snippets_per_second" not in plain and "snippets" not in plain["results"]["v"][0]
    with pytest.raises(ValueError, match="video 'v': detection snippets None"):
        to_results_json({"v": [{"segment": [0.0, 1.5], "label": "A", "score": 0.5}]}, 2.0)
    with pytest.raises(ValueError, match="positive number"):
        to_results_json(dets, 0.0)


def _extracted_layout(root, fps, native):
    """An extract-features folder by hand: 16-frame snippets at ``fps`` (None: each video's own
    ``native`` rate, one number or one per video)."""
    root.mkdir()
    videos, database = {}, {}
    for i, subset in enumerate(("validation", "test", "test")):
        vid, t = f"clip_{i}", 6 + i
        video_native = native[i] if isinstance(native, tuple) else native
        rate = fps or video_native
        np.save(root / f"{vid}.npy", np.full((t, 4), float(i), np.float32))
        videos[vid] = {"num_frames": t * 16, "video_fps": video_native, "duration_s": t * 16 / video_native,
                       "num_snippets": t, "stride_s": 16 / rate}
        database[vid] = {"subset": subset, "annotations": [{"segment": [0.0, 1.0], "label": "jump"}]}
    (root / "manifest.json").write_text(json.dumps({"format": "hideseek-snippet-features", "videos": videos,
                                                    "settings": {"snippet": 16, "fps": fps, "feature_dim": 4}}))
    (root / "gt.json").write_text(json.dumps({"database": database}))


def test_the_trainer_takes_the_grid_from_what_the_features_say(tmp_path):
    from hideseek.action.train import ActionConfig, open_data

    ntsc = 30000 / 1001
    _extracted_layout(tmp_path / "native", None, ntsc)
    data = open_data(ActionConfig(dataset="extracted", features_dir=str(tmp_path / "native"), train_subset="validation"),
                     progress=False)
    assert data["snippets_per_second"] == ntsc / 16 != 1 / data["test"].videos[0].stride_s
    _extracted_layout(tmp_path / "pal", 25.0, ntsc)
    data = open_data(ActionConfig(dataset="extracted", features_dir=str(tmp_path / "pal"), train_subset="validation"),
                     progress=False)
    assert data["snippets_per_second"] == 25.0 / 16.0
    # the simple layout knows only the stride
    folder = tmp_path / "simple"
    folder.mkdir()
    database = {}
    for vid, subset in (("a", "train"), ("b", "test")):
        np.save(folder / f"{vid}.npy", np.zeros((8, 3), np.float32))
        database[vid] = {"subset": subset, "annotations": [{"segment": [0.0, 1.0], "label": "jump"}]}
    (tmp_path / "simple-gt.json").write_text(json.dumps({"database": database}))
    data = open_data(ActionConfig(dataset="features", features_dir=str(folder),
                                  ground_truth=str(tmp_path / "simple-gt.json"), stride_s=16 / ntsc), progress=False)
    assert data["snippets_per_second"] == 1 / (16 / ntsc)


def test_test_videos_without_one_grid_are_scored_in_seconds_and_say_so(tmp_path, capsys):
    _extracted_layout(tmp_path / "mixed", None, (25.0, 25.0, 30.0))  # the two test videos: 25 and 30 fps
    code = main(["action", "train", "--dataset", "extracted", "--features-dir", str(tmp_path / "mixed"),
                 "--train-subset", "validation", "--epochs", "1", "--batch-size", "2", "--device", "cpu",
                 "--no-progress", "--output", str(tmp_path / "run"), "--records", str(tmp_path / "records.jsonl")])
    assert code == 0, capsys.readouterr().err
    preds = json.loads((tmp_path / "run" / "predictions-test.json").read_text())
    assert "snippets_per_second" not in preds
    assert all("snippets" not in p for items in preds["results"].values() for p in items)
    result = json.loads((tmp_path / "run" / "eval-test-wtalc.json").read_text())
    assert result["units"] == "seconds" and any("share no snippet grid" in n for n in result["notes"])
