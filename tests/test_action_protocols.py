"""Temporal action localization protocols: hand-worked cases where they disagree and
JSON / ambiguous-file I/O. The property tests against transcriptions of each reference are
in tests/test_protocol_exact.py."""

import json
import os
from pathlib import Path

import numpy as np
import pytest

from hideseek.action.protocols import (
    PROTOCOLS,
    evaluate,
    interpolated_ap,
    load_ambiguous,
    load_ground_truth,
    load_predictions,
    non_interpolated_ap,
    segment_iou,
)

DATA = os.path.join(os.path.dirname(__file__), "data", "thumos")
ALL = PROTOCOLS


def _gt(videos):
    """videos: {vid: [(s, e, label), ...]} -> ActivityNet GT dict (subset test)."""
    return {
        "database": {
            v: {"subset": "test", "annotations": [{"segment": [s, e], "label": c} for s, e, c in anns]}
            for v, anns in videos.items()
        }
    }


def _pred(videos):
    """videos: {vid: [(s, e, label, score), ...]} -> predictions dict."""
    return {
        "results": {
            v: [{"segment": [s, e], "label": c, "score": x} for s, e, c, x in items]
            for v, items in videos.items()
        }
    }


def _map(gt, pred, protocol, t=0.5, **kw):
    return evaluate(gt, pred, protocol=protocol, tiou=[t], **kw)["mAP"][f"{t:g}"]


# ------------------------------------------------------------------- hand-worked cases


def test_iou_exactly_at_threshold():
    # GT [0,10], prediction [0,5]: IoU = 5/10 = 0.5 exactly.
    # activitynet / wtalc need IoU >= 0.5 -> TP -> AP 100.
    # thumos14 needs overlap > 0.5 (strict) -> the GT is missed, prediction FP -> AP 0.
    gt = _gt({"v": [(0, 10, "A")]})
    pred = _pred({"v": [(0, 5, "A", 0.9)]})
    assert _map(gt, pred, "activitynet") == pytest.approx(100.0)
    assert _map(gt, pred, "wtalc") == pytest.approx(100.0)
    assert _map(gt, pred, "thumos14") == pytest.approx(0.0)


def test_gt_matched_twice_second_is_fp():
    # One GT in each of v1, v2. Ranked: v1 exact (TP), v1 duplicate (GT taken -> FP),
    # v2 exact (TP). Flags [1,0,1], npos 2: recall [.5,.5,1], precision [1,.5,2/3].
    # Interpolated: .5*1 + .5*(2/3) = 5/6. Non-interpolated: (1 + 2/3)/2 = 5/6.
    # 11-point (2014 kit): precision 1 reaches recall points 0..0.5 (6 points), 2/3 the
    # other 5 -> (6 + 10/3) / 11 = 28/33.
    gt = _gt({"v1": [(0, 10, "A")], "v2": [(0, 10, "A")]})
    pred = _pred({"v1": [(0, 10, "A", 0.9), (0, 10, "A", 0.8)], "v2": [(0, 10, "A", 0.7)]})
    for p in ALL:
        assert _map(gt, pred, p) == pytest.approx(100 * (28 / 33 if p == "thumos14-2014" else 5 / 6)), p


def test_interpolation_differs_after_early_fp():
    # Ranked flags [0,1,1], npos 2: recall [0,.5,1], precision [0,.5,2/3].
    # activitynet (interpolated): precision made monotone from the right is 2/3 at both
    #   recall steps -> .5*2/3 + .5*2/3 = 2/3 -> 66.67.
    # thumos14 / wtalc (non-interpolated): (1/2 + 2/3) / 2 = 7/12 -> 58.33.
    gt = _gt({"v1": [(0, 10, "A")], "v2": [(0, 10, "A")]})
    pred = _pred({"v1": [(50, 60, "A", 0.9), (0, 10, "A", 0.8)], "v2": [(0, 10, "A", 0.7)]})
    assert _map(gt, pred, "activitynet") == pytest.approx(100 * 2 / 3)
    assert _map(gt, pred, "thumos14") == pytest.approx(100 * 7 / 12)
    assert _map(gt, pred, "wtalc") == pytest.approx(100 * 7 / 12)


def test_tied_scores():
    # GT [0,10]; an FP [30,40] and a TP [0,10] both scored 0.5, FP listed first.
    # Each protocol ranks tied scores as its reference's sort does:
    # activitynet: np.argsort(score)[::-1]; wtalc: np.argsort(-score) over W-TALC's rows
    #   (video, then start time) (NumPy's default, unstable kind: the order is NumPy's,
    #   computed here the same way);
    # thumos14 (updated kit): stable, input order -> flags [0,1] -> AP 1/2;
    # thumos14-2014: TPs concatenated before FPs, then a stable sort -> flags [1,0] -> 100.
    # Flags [0,1]: interpolated and non-interpolated AP 50; [1,0]: 100.
    gt = _gt({"v": [(0, 10, "A")]})
    scores = np.array([0.5, 0.5])
    for preds in ([(30, 40, "A", 0.5), (0, 10, "A", 0.5)], [(0, 10, "A", 0.5), (30, 40, "A", 0.5)]):
        pred = _pred({"v": preds})
        tp_at = [i for i, r in enumerate(preds) if r[0] == 0][0]
        # wtalc ranks W-TALC's rows, each video's by start time: the TP [0, 10] is row 0 there
        first = {"activitynet": int(np.argsort(scores)[::-1][0]),
                 "wtalc": tp_at if int(np.argsort(-scores)[0]) == 0 else 1 - tp_at, "thumos14": 0}
        for p, i in first.items():
            assert _map(gt, pred, p) == (100.0 if i == tp_at else 50.0), p
        assert _map(gt, pred, "thumos14-2014") == pytest.approx(100.0, abs=1e-12)  # 11 * (1/11)


def test_unmatched_detection_on_ambiguous_segment():
    # GT [0,10]; ambiguous [20,30]; FP [20,30] at 0.9 ranks before TP [0,10] at 0.8.
    # activitynet ignores ambiguity: flags [0,1] -> 50.
    # thumos14 drops the unmatched ambiguous detection, wtalc drops every detection that
    # overlaps an ambiguous segment: flags [1] -> 100.
    gt = _gt({"v": [(0, 10, "A")]})
    pred = _pred({"v": [(20, 30, "A", 0.9), (0, 10, "A", 0.8)]})
    amb = [("v", 20, 30)]
    assert _map(gt, pred, "activitynet", ambiguous=amb) == pytest.approx(50.0)
    assert _map(gt, pred, "thumos14", ambiguous=amb) == pytest.approx(100.0)
    assert _map(gt, pred, "thumos14-2014", ambiguous=amb) == pytest.approx(100.0)
    assert _map(gt, pred, "wtalc", ambiguous=amb) == pytest.approx(100.0)
    # Without the ambiguous list all give 50 (one FP ahead of the TP).
    for p in ALL:
        assert _map(gt, pred, p) == pytest.approx(50.0), p
    # Ambiguous segment of another video has no effect.
    assert _map(gt, pred, "thumos14", ambiguous=[("w", 20, 30)]) == pytest.approx(50.0)


def test_matched_detection_on_ambiguous_segment():
    # GT [0,10]; ambiguous [8,12] overlaps the only (correct) detection [0,10] by 2 s.
    # thumos14 drops only *unmatched* detections: TP kept -> 100.
    # wtalc drops the detection before matching: no TP -> 0. activitynet: 100.
    gt = _gt({"v": [(0, 10, "A")]})
    pred = _pred({"v": [(0, 10, "A", 0.9)]})
    amb = [("v", 8, 12)]
    assert _map(gt, pred, "thumos14", ambiguous=amb) == pytest.approx(100.0)
    assert _map(gt, pred, "thumos14-2014", ambiguous=amb) == pytest.approx(100.0)
    assert _map(gt, pred, "wtalc", ambiguous=amb) == pytest.approx(0.0)
    assert _map(gt, pred, "activitynet", ambiguous=amb) == pytest.approx(100.0)
    # Touching ends (intersection length 0) is not an overlap: wtalc keeps it -> 100.
    assert _map(gt, pred, "wtalc", ambiguous=[("v", 10, 12)]) == pytest.approx(100.0)


def test_gt_driven_vs_prediction_driven_matching():
    # GT g1 [0,10], g2 [1,11] (in that order); p1 [1,11] @0.9, p2 [0,6] @0.8; t = 0.5.
    # IoU(p1,g1) = 9/11 = .818, IoU(p1,g2) = 1, IoU(p2,g1) = 6/10 = .6,
    # IoU(p2,g2) = 5/11 = .455.
    # activitynet: p1 takes its best GT g2, p2 takes g1 (.6 >= .5): flags [1,1] -> 100.
    # wtalc: p1 takes the first GT in list order with IoU >= .5, i.e. g1; p2 then only
    #   has g2 at .455 -> FP: flags [1,0], npos 2 -> 1/2 -> 50.
    # thumos14: g1 (first) takes its largest-overlap detection p1; g2 has only p2 left at
    #   .455, not > .5 -> missed: flags [1,0] -> 50 (2014 kit: precision 1 reaches the
    #   recall points 0..0.5, none beyond -> 6/11).
    gt = _gt({"v": [(0, 10, "A"), (1, 11, "A")]})
    pred = _pred({"v": [(1, 11, "A", 0.9), (0, 6, "A", 0.8)]})
    assert _map(gt, pred, "activitynet") == pytest.approx(100.0)
    assert _map(gt, pred, "wtalc") == pytest.approx(50.0)
    assert _map(gt, pred, "thumos14") == pytest.approx(50.0)
    assert _map(gt, pred, "thumos14-2014") == pytest.approx(100 * 6 / 11)


def test_unknown_class_and_video_are_counted_not_fatal():
    # The unknown label is dropped and counted by every protocol. The A prediction on the
    # unknown video (0.95, ranked first) is a false positive in ActivityNet and both
    # THUMOS14 kits (flags [0,1]: AP 50) and dropped by W-TALC (AP 100), as each reference.
    gt = _gt({"v": [(0, 10, "A")]})
    pred = _pred({"v": [(0, 10, "A", 0.9), (0, 10, "Zzz", 0.99)], "nowhere": [(0, 10, "A", 0.95)]})
    for p in ALL:
        out = evaluate(gt, pred, protocol=p, tiou=[0.5])
        dropped = p == "wtalc"
        assert out["mAP"]["0.5"] == pytest.approx(100.0 if dropped else 50.0), p
        assert out["unknown_video_predictions"] == 1
        assert out["unknown_video_rule"] == ("dropped" if dropped else "false-positive")
        assert out["ignored_predictions"] == {"unknown_video": int(dropped), "unknown_label": 1,
                                              "total": 1 + int(dropped)}
        assert out["num_predictions"] == (1 if dropped else 2)
        if p == "activitynet":  # the reference raises KeyError: a deviation the output names
            assert any("KeyError" in d for d in out["deviations"])


def test_class_without_predictions_gets_zero_not_whole_map_zero():
    # Classes A and B in GT, only A predicted (perfectly): AP(A) 100, AP(B) 0 -> mAP 50.
    # W-TALC's own code returns 0 for the whole mAP here: only with empty_class_bug=True,
    # and the output says so either way.
    gt = _gt({"v": [(0, 10, "A"), (20, 30, "B")]})
    pred = _pred({"v": [(0, 10, "A", 0.9)]})
    for p in ALL:
        out = evaluate(gt, pred, protocol=p, tiou=[0.5])
        assert out["mAP"]["0.5"] == pytest.approx(50.0), p
        assert out["per_class_AP"]["B"]["0.5"] == 0.0
        assert out["classes_without_predictions"] == ["B"]
        assert any("would report mAP 0" in n for n in out["notes"]) == (p == "wtalc")
    bug = evaluate(gt, pred, protocol="wtalc", tiou=[0.5], empty_class_bug=True)
    assert bug["mAP"]["0.5"] == 0.0 and bug["per_class_AP"]["A"]["0.5"] == 100.0


def test_fp_in_video_without_gt_of_that_class():
    # Video w is known (it has a B annotation) but has no A: the A detection there is an
    # FP ranked first -> flags [0,1], npos 1 -> AP(A) 50 (2014 kit: 11 * (0.5/11));
    # AP(B) 0 -> mAP 25.
    gt = _gt({"v": [(0, 10, "A")], "w": [(0, 10, "B")]})
    pred = _pred({"w": [(0, 10, "A", 0.9)], "v": [(0, 10, "A", 0.8)]})
    for p in ALL:
        out = evaluate(gt, pred, protocol=p, tiou=[0.5])
        assert out["per_class_AP"]["A"]["0.5"] == pytest.approx(50.0), p
        assert out["mAP"]["0.5"] == pytest.approx(25.0), p
        assert out["ignored_predictions"]["total"] == 0


@pytest.mark.parametrize("seg", [[10, 5], [0, float("nan")], [0, float("inf")], ["a", 1]])
def test_bad_segments_raise_naming_video(seg):
    # a negative start and a zero-length segment are scored, as the reference scores them
    # (tests/test_harden_action.py); what has no meaning is refused
    bad_gt = {"database": {"vid_bad": {"subset": "test", "annotations": [{"segment": seg, "label": "A"}]}}}
    with pytest.raises(ValueError, match="vid_bad"):
        load_ground_truth(bad_gt)
    gt = _gt({"v": [(0, 10, "A")]})
    bad_pred = {"results": {"vid_bad": [{"segment": seg, "label": "A", "score": 0.5}]}}
    with pytest.raises(ValueError, match="vid_bad"):
        evaluate(gt, bad_pred)
    with pytest.raises(ValueError, match="vid_bad"):
        load_ambiguous([("vid_bad", seg[0], seg[1])])


def test_output_keys_and_average_ranges():
    gt = _gt({"v": [(0, 10, "A")]})
    pred = _pred({"v": [(0, 10, "A", 0.9)]})
    out = evaluate(gt, pred)
    assert set(out) >= {"protocol", "mAP", "average_mAP", "per_class_AP", "num_predictions",
                        "ignored_predictions", "seconds"}
    assert list(out["mAP"]) == ["0.1", "0.2", "0.3", "0.4", "0.5", "0.6", "0.7"]
    assert set(out["average_mAP"]) == {"0.1:0.5", "0.3:0.7", "0.1:0.7"}
    assert out["average_mAP"]["0.1:0.7"] == pytest.approx(100.0)
    assert out["seconds"] >= 0
    part = evaluate(gt, pred, tiou=(0.1, 0.2, 0.3, 0.4, 0.5))
    assert set(part["average_mAP"]) == {"0.1:0.5"}
    assert list(evaluate(gt, pred, tiou=[0.50, 0.75])["mAP"]) == ["0.5", "0.75"]
    with pytest.raises(ValueError):
        evaluate(gt, pred, protocol="coco")
    with pytest.raises(ValueError):
        evaluate(gt, pred, tiou=[0.0])



def test_seconds_excludes_reading_and_parsing_the_inputs(monkeypatch):
    """A fake clock advances 1000 s whenever an input is loaded: none of it may be counted."""
    from types import SimpleNamespace

    from hideseek.action import protocols

    clock = [0.0]

    def tick():
        clock[0] += 0.001
        return clock[0]

    def slow(loader):
        def wrapped(*args, **kwargs):
            clock[0] += 1000.0
            return loader(*args, **kwargs)
        return wrapped

    monkeypatch.setattr(protocols, "time", SimpleNamespace(perf_counter=tick))
    for name in ("load_ground_truth", "load_predictions", "load_ambiguous"):
        monkeypatch.setattr(protocols, name, slow(getattr(protocols, name)))
    gt = _gt({"v": [(0, 10, "A")]})
    out = evaluate(gt, _pred({"v": [(0, 10, "A", 0.9)]}), protocol="thumos14", ambiguous=[("v", 20, 30)])
    assert clock[0] > 3000 and 0 < out["seconds"] < 1.0

def test_files_from_disk_subset_and_ambiguous_file():
    # Test subset: classes Diving (2 GT) and HighJump (2 GT). PoleVault exists only in
    # validation, so both PoleVault predictions (on a test and on a validation video) have
    # an unknown label.
    # Diving flags [1,0,1]: 5/6 in every protocol without ambiguity; the FP [60,70]
    # lies on an ambiguous segment -> thumos14 / wtalc drop it -> 100. HighJump: 100.
    gt_path = os.path.join(DATA, "gt_small.json")
    pred_path = os.path.join(DATA, "preds_small.json")
    amb_path = os.path.join(DATA, "ambiguous_small.txt")
    amb = load_ambiguous(amb_path)
    assert sorted(amb) == ["video_test_0000001", "video_test_0000009"]
    np.testing.assert_array_equal(amb["video_test_0000001"], [[60.0, 70.0]])
    g = load_ground_truth(gt_path)
    assert g.classes == ["Diving", "HighJump"] and len(g.videos) == 2
    assert load_ground_truth(gt_path, subset=None).classes == ["Diving", "HighJump", "PoleVault"]
    assert len(load_predictions(pred_path).score) == 7
    an = evaluate(gt_path, pred_path, protocol="activitynet", tiou=[0.5], ambiguous=amb_path)
    assert an["mAP"]["0.5"] == pytest.approx((100 * 5 / 6 + 100) / 2)
    assert an["ignored_predictions"] == {"unknown_video": 0, "unknown_label": 2, "total": 2}
    assert an["unknown_video_predictions"] == 0
    assert an["num_predictions"] == 5
    for p in ("thumos14", "wtalc"):
        assert evaluate(gt_path, pred_path, protocol=p, tiou=[0.5], ambiguous=amb_path)["mAP"]["0.5"] == pytest.approx(100.0)
        assert evaluate(gt_path, pred_path, protocol=p, tiou=[0.5])["mAP"]["0.5"] == pytest.approx((100 * 5 / 6 + 100) / 2)
    # Same result from parsed dicts.
    with open(gt_path) as fh:
        gd = json.load(fh)
    with open(pred_path) as fh:
        pd_ = json.load(fh)
    assert evaluate(gd, pd_, tiou=[0.5])["mAP"] == an["mAP"]


def test_ap_helpers():
    # flags [0,1,1], npos 2: interpolated 2/3, non-interpolated 7/12 (see above).
    assert interpolated_ap(np.array([0, 1, 1]), 2)[0] == pytest.approx(2 / 3)
    assert non_interpolated_ap(np.array([0, 1, 1]), 2)[0] == pytest.approx(7 / 12)
    assert interpolated_ap(np.zeros(0), 3)[0] == 0.0
    np.testing.assert_allclose(segment_iou([[0, 10]], [[5, 15], [0, 5], [20, 30]]), [[5 / 15, 0.5, 0.0]])


def test_cli_action_evaluate_writes_the_protocol_keys(tmp_path, capsys):
    from hideseek.cli import main

    data = Path(__file__).parent / "data" / "thumos"
    out = tmp_path / "r.json"
    assert main(["action", "evaluate", "--ground-truth", str(data / "gt_small.json"), "--predictions",
                 str(data / "preds_small.json"), "--protocol", "thumos14", "--ambiguous",
                 str(data / "ambiguous_small.txt"), "--output", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["protocol"] == "thumos14"
    # the kit's own thresholds (MATLAB .1:.1:.5) when --tiou is not given
    assert set(result["mAP"]) == {"0.1", "0.2", "0.3", "0.4", "0.5"}
    assert set(result["average_mAP"]) == {"0.1:0.5"}
    assert result["deviations"] and result["unknown_video_rule"] == "false-positive"
    assert "mAP@0.5" in capsys.readouterr().out
