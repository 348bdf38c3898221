"""Temporal CAM -> segments: hand-worked cases for every post-processing step."""

import json

import numpy as np
import pytest

from hideseek.action.detect import (
    DetectConfig,
    detect_video,
    group_runs,
    segment_scores,
    temporal_nms,
    to_results_json,
    write_predictions,
)
from hideseek.action.protocols import evaluate


def test_group_runs_finds_maximal_runs_including_the_ends():
    starts, ends = group_runs(np.array([1, 1, 0, 0, 1, 0, 1, 1, 1], dtype=bool))
    assert starts.tolist() == [0, 4, 6] and ends.tolist() == [1, 4, 8]
    assert [x.tolist() for x in group_runs(np.zeros(4, bool))] == [[], []]
    assert [x.tolist() for x in group_runs(np.ones(3, bool))] == [[0], [2]]


def test_segment_scores_mean_and_outer_inner_contrast():
    act = np.array([0.1, 0.2, 0.9, 0.7, 0.8, 0.3, 0.0, 0.5])
    # run 2..4: inner mean 0.8; length 3 -> margin round(0.25 * 3) = 1 -> outer = (0.2 + 0.3) / 2
    assert segment_scores(act, [2], [4]).tolist() == pytest.approx([0.8])
    assert segment_scores(act, [2], [4], score="outer-inner").tolist() == pytest.approx([0.8 - 0.25])
    # run 0..1 touches the start: only the right margin (1 snippet: 0.9)
    assert segment_scores(act, [0], [1], score="outer-inner").tolist() == pytest.approx([0.15 - 0.9])
    # run over everything: no outer snippet -> outer mean 0
    assert segment_scores(act, [0], [7], score="outer-inner").tolist() == pytest.approx([act.mean()])
    # run of 8 inside 16 with ratio 0.25: margin 2 each side
    long_ = np.r_[np.zeros(4), np.ones(8), np.full(4, 0.5)]
    assert segment_scores(long_, [4], [11], score="outer-inner", outer_ratio=0.25).tolist() == pytest.approx([0.75])


def test_nms_suppresses_strictly_above_the_tiou_and_is_stable_on_ties():
    segs = np.array([[0, 10], [1, 10], [0, 5], [20, 30], [0, 10]], dtype=float)
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.9])
    # [1,10] vs [0,10]: IoU 0.9 > 0.5 -> gone; [0,5] vs [0,10]: IoU exactly 0.5 -> kept;
    # the duplicate [0,10] ties at 0.9 and comes later in input order -> suppressed
    assert temporal_nms(segs, scores, 0.5).tolist() == [0, 2, 3]
    assert temporal_nms(segs, scores, 0.49).tolist() == [0, 3]


def test_detect_video_relative_thresholds_seconds_and_scores():
    # stride 0.5 s, snippet 1.0 s (overlapping snippets): run a..b is [0.5 a, 0.5 b + 1.0]
    act = np.array([[0.0, 0.2, 0.8, 1.0, 0.9, 0.1, 0.0, 0.6, 0.0, 0.0],
                    [0.1] * 10])
    video_scores = np.array([0.9, 0.05])
    cfg = DetectConfig(thresholds=(0.5,), relative=True, score="mean", video_weight=0.5, nms_tiou=None,
                       class_threshold=0.1)
    dets = detect_video(act, video_scores, ["a", "b"], stride_s=0.5, snippet_s=1.0, duration_s=5.0, config=cfg)
    # class b is below the class threshold; class a: >= 0.5 at 2..4 and 7
    assert [d["label"] for d in dets] == ["a", "a"]
    assert dets[0]["segment"] == [1.0, 3.0] and dets[0]["score"] == pytest.approx(0.9 + 0.45)
    assert dets[1]["segment"] == [3.5, 4.5] and dets[1]["score"] == pytest.approx(0.6 + 0.45)
    # clipped to the duration; min length drops the 1 s segment
    short = detect_video(act, video_scores, ["a", "b"], stride_s=0.5, snippet_s=1.0, duration_s=4.2,
                         config=DetectConfig(thresholds=(0.5,), score="mean", nms_tiou=None, min_length_s=1.5))
    assert [d["segment"] for d in short] == [[1.0, 3.0]]
    dets_clip = detect_video(act, video_scores, ["a", "b"], stride_s=0.5, snippet_s=1.0, duration_s=4.2,
                             config=DetectConfig(thresholds=(0.5,), score="mean", nms_tiou=None))
    assert dets_clip[1]["segment"] == [3.5, 4.2]


def test_detect_video_absolute_thresholds_multi_threshold_proposals_and_nms():
    act = np.array([[0.2, 0.6, 0.9, 0.6, 0.2, 0.0]])
    cfg = DetectConfig(thresholds=(0.5, 0.8), relative=False, score="mean", video_weight=0.0, nms_tiou=None)
    dets = detect_video(act, np.array([0.7]), ["a"], stride_s=1.0, config=cfg)
    # >= 0.5: snippets 1..3 -> [1, 4], mean 0.7; >= 0.8: snippet 2 -> [2, 3], mean 0.9
    assert [(d["segment"], round(d["score"], 6)) for d in dets] == [([2.0, 3.0], 0.9), ([1.0, 4.0], 0.7)]
    # tIoU of the two is 1/3: NMS at 0.3 keeps only the best, at 0.5 keeps both
    assert len(detect_video(act, np.array([0.7]), ["a"], stride_s=1.0,
                            config=DetectConfig(thresholds=(0.5, 0.8), relative=False, nms_tiou=0.3))) == 1
    assert len(detect_video(act, np.array([0.7]), ["a"], stride_s=1.0,
                            config=DetectConfig(thresholds=(0.5, 0.8), relative=False, nms_tiou=0.5))) == 2


def test_class_selection_threshold_topk_and_fallback():
    act = np.ones((3, 4)) * np.array([[1.0], [0.5], [0.2]])
    scores = np.array([0.02, 0.05, 0.01])
    base = dict(thresholds=(0.5,), score="mean", nms_tiou=None)
    # nothing passes 0.1 -> the best class (b) is kept
    assert {d["label"] for d in detect_video(act, scores, "abc", stride_s=1.0, config=DetectConfig(**base))} == {"b"}
    top2 = detect_video(act, scores, "abc", stride_s=1.0, config=DetectConfig(class_topk=2, **base))
    assert {d["label"] for d in top2} == {"a", "b"}
    lower = detect_video(act, scores, "abc", stride_s=1.0, config=DetectConfig(class_threshold=0.015, **base))
    assert {d["label"] for d in lower} == {"a", "b"}


def test_predictions_json_is_what_the_protocols_read(tmp_path):
    act = np.array([[0.0, 1.0, 1.0, 0.0, 0.0, 0.0]])
    dets = {"v1": detect_video(act, np.array([0.9]), ["jump"], stride_s=1.0,
                               config=DetectConfig(thresholds=(0.5,), score="mean", nms_tiou=None))}
    path = write_predictions(dets, tmp_path / "pred.json")
    data = json.loads(path.read_text())
    assert data["results"]["v1"][0]["segment"] == [1.0, 3.0]
    gt = {"database": {"v1": {"subset": "test", "annotations": [{"segment": [1.0, 3.0], "label": "jump"}]}}}
    result = evaluate(gt, path, protocol="activitynet")
    assert result["mAP"]["0.7"] == 100.0
    with pytest.raises(ValueError, match="video 'bad'"):
        to_results_json({"bad": [{"segment": [3.0, 1.0], "label": "x", "score": 1.0}]})


def test_bad_config_and_shapes_are_named():
    with pytest.raises(ValueError, match="relative thresholds"):
        DetectConfig(thresholds=(1.5,))
    with pytest.raises(ValueError, match="unknown detection keys"):
        DetectConfig.from_dict({"treshold": 0.5})
    with pytest.raises(ValueError, match=r"\(C, T\)"):
        detect_video(np.zeros((2, 5)), np.zeros(3), ["a", "b"], stride_s=1.0)
