"""Each temporal-detection protocol against an independent transcription of its reference.

The functions ``ref_activitynet``, ``ref_wtalc`` and ``ref_thumos_kit`` below follow the
reference codes step by step in plain Python loops (ActivityNet ``eval_detection.py`` and
``utils.py``; W-TALC ``detectionMAP.py`` on seconds; the THUMOS14 MATLAB kit, updated
``TH14evalDet_Updated.m`` and 2014 ``TH14evaldet.m``/``TH14eventdetpr.m``, with
``intervaloverlapvalseconds.m``). Where a reference calls NumPy (its unstable ``argsort``,
``np.sum``, ``np.mean``), the transcription makes the same call on the same values: the
tie order of NumPy's default sort is then the reference's on this machine. Hypothesis draws
inputs built to hit the corners: scores from three values (ties), identical and symmetric
ground truth (tied tIoUs), segments on a 0.64 s grid (exact ratios), zero-length segments,
unknown videos, unknown labels, videos listed without annotations, ambiguous segments and
classes without predictions.

Per-class AP and mAP are compared with ``==``: every transcription performs the same
floating-point operations in the same order as hideseek (which follows the references), so
the numbers are identical, not merely close.
"""

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hideseek.action.protocols import KIT_RECALL_POINTS, PROTOCOL_RECORDS, evaluate, get_protocol

GRID = 0.64  # seconds per snippet (16 frames at 25 fps)
VIDEOS = ["v_b", "v_a", "v_10", "v_2", "v_empty"]  # not in alphabetical order
UNKNOWN = ["u_z", "u_0", "v_val"]  # v_val is a validation video: unknown to the test subset
LABELS = ["B", "A", "C"]
THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)
SETTINGS = settings(max_examples=120, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# --------------------------------------------------------------------------- ActivityNet


def _anet_tiou(pred, gt):
    """utils.segment_iou for one candidate: intersection clipped at 0, union = lengths
    added, intersection subtracted last; 0/0 is NaN as in NumPy."""
    inter = min(pred[1], gt[1]) - max(pred[0], gt[0])
    if inter < 0:
        inter = 0.0
    union = (gt[1] - gt[0]) + (pred[1] - pred[0]) - inter
    return inter / union if union != 0 else math.nan


def _anet_interpolated(prec, rec):
    """utils.interpolated_prec_rec."""
    mprec = [0.0] + list(prec) + [0.0]
    mrec = [0.0] + list(rec) + [1.0]
    for i in range(len(mprec) - 2, -1, -1):
        mprec[i] = max(mprec[i], mprec[i + 1])
    idx = [i for i in range(1, len(mrec)) if mrec[i] != mrec[i - 1]]
    return float(np.sum(np.array([(mrec[i] - mrec[i - 1]) * mprec[i] for i in idx], dtype=np.float64)))


def _anet_class(gts, preds, thresholds):
    """compute_average_precision_detection: gts [(video, s, e)], preds [(video, s, e, score)]."""
    T = len(thresholds)
    if not preds:
        return [0.0] * T
    npos = float(len(gts))
    lock = [[-1] * len(gts) for _ in range(T)]
    sort_idx = np.array([p[3] for p in preds], dtype=np.float64).argsort()[::-1]
    preds = [preds[i] for i in sort_idx]
    tp = [[0.0] * len(preds) for _ in range(T)]
    fp = [[0.0] * len(preds) for _ in range(T)]
    for idx, pred in enumerate(preds):
        this_gt = [j for j, g in enumerate(gts) if g[0] == pred[0]]
        if not this_gt:
            for t in range(T):
                fp[t][idx] = 1.0
            continue
        tiou_arr = np.array([_anet_tiou(pred[1:3], gts[j][1:3]) for j in this_gt], dtype=np.float64)
        tiou_sorted_idx = tiou_arr.argsort()[::-1]
        for t, thr in enumerate(thresholds):
            for jdx in tiou_sorted_idx:
                if tiou_arr[jdx] < thr:
                    fp[t][idx] = 1.0
                    break
                if lock[t][this_gt[jdx]] >= 0:
                    continue
                tp[t][idx] = 1.0
                lock[t][this_gt[jdx]] = idx
                break
            if fp[t][idx] == 0 and tp[t][idx] == 0:
                fp[t][idx] = 1.0
    out = []
    for t in range(T):
        tp_c = fp_c = 0.0
        rec, prec = [], []
        for k in range(len(preds)):
            tp_c += tp[t][k]
            fp_c += fp[t][k]
            rec.append(tp_c / npos)
            prec.append(tp_c / (tp_c + fp_c))
        out.append(_anet_interpolated(prec, rec))
    return out


def ref_activitynet(case, thresholds):
    """ANETdetection: classes indexed in order of first appearance in the ground truth,
    ``ap[:, cidx]`` per class, ``mAP = ap.mean(axis=1)``. Returns (per-class, mAP)."""
    activity_index = {}
    for _, _, _, label in case["gt_rows"]:
        activity_index.setdefault(label, len(activity_index))
    ap = np.zeros((len(thresholds), len(activity_index)))
    per_class = {}
    for label, cidx in activity_index.items():
        gts = [r[:3] for r in case["gt_rows"] if r[3] == label]
        preds = [(v, s, e, x) for v, s, e, lab, x in case["pred_rows"] if lab == label]
        per_class[label] = _anet_class(gts, preds, thresholds)
        ap[:, cidx] = per_class[label]
    return per_class, ap.mean(axis=1)


# ---------------------------------------------------------------------------------- W-TALC


def _union_iou(a, b):
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    union = (a[1] - a[0]) + (b[1] - b[0]) - inter
    return inter / union if union > 0 else 0.0


def _wtalc_rows(rows, case):
    """The order getLocMAP builds a class's rows in: video by video (the dataset's, i.e. the
    ground truth's order), each video's runs by start time."""
    videos = list(dict.fromkeys(r[0] for r in case["gt_rows"]))
    return sorted(rows, key=lambda p: (videos.index(p[0]), p[1]))


def _wtalc_class_ap(segment_predict, segment_gt, th, iou):
    """getLocMAP for one class at one tIoU: rows ranked by ``np.argsort(-score)``, each taking
    the first remaining GT of its video with ``iou(pred, gt) >= th`` (that GT deleted), then
    the non-interpolated AP (0 without any TP)."""
    order = np.argsort(-np.array([p[4] for p in segment_predict], dtype=np.float64))
    segment_predict = [segment_predict[i] for i in order]
    segment_gt = list(segment_gt)
    gtpos = len(segment_gt)
    tp, fp = [], []
    for pred in segment_predict:
        flag = 0.0
        for j in range(len(segment_gt)):
            if segment_gt[j][0] == pred[0] and iou(pred, segment_gt[j]) >= th:
                flag = 1.0
                del segment_gt[j]
                break
        tp.append(flag)
        fp.append(1.0 - flag)
    tp_c, fp_c = np.cumsum(tp), np.cumsum(fp)
    return 0.0 if sum(tp) == 0 else np.sum((tp_c / (fp_c + tp_c)) * tp) / gtpos


def ref_wtalc(case, thresholds, empty_class_bug=False):
    """getLocMAP on seconds: videos with GT segments only (their predictions kept, the
    others' dropped), classes sorted by name, ambiguous-overlapping predictions removed,
    ``np.argsort(-score)``, first-fit matching deleting the GT, ``100 * np.mean(ap)``."""
    kept = {r[0] for r in case["gt_rows"]}
    classes = sorted({r[3] for r in case["gt_rows"]})
    per_class = {c: [] for c in classes}
    maps = []
    for th in thresholds:
        ap, bug = [], False
        for c in classes:
            segment_predict = _wtalc_rows([p for p in case["pred_rows"] if p[3] == c and p[0] in kept], case)
            segment_predict = [p for p in segment_predict
                               if not any(a[0] == p[0] and min(p[2], a[2]) - max(p[1], a[1]) > 0
                                          for a in case["amb_rows"])]
            if not segment_predict:
                bug = True
                ap.append(0.0)
                per_class[c].append(0.0)
                continue
            prc = _wtalc_class_ap(segment_predict, [r for r in case["gt_rows"] if r[3] == c], th,
                                  lambda pred, gt: _union_iou(pred[1:3], gt[1:3]))
            ap.append(prc)
            per_class[c].append(prc)
        maps.append(0.0 if (bug and empty_class_bug) else 100 * np.mean(ap))
    return per_class, maps


# --------------------------------------------------------------------------- THUMOS14 kit


def _kit_overlap(i1, i2):
    """intervalsingleoverlapvalseconds, normtype 0."""
    i1 = [min(i1), max(i1)]
    i2 = [min(i2), max(i2)]
    ov = 0.0
    ua = max(i1[1], i2[1]) - min(i1[0], i2[0])
    iw = min(i1[1], i2[1]) - max(i1[0], i2[0])
    if iw > 0:
        ov = iw / ua
    return ov


def _kit_class(case, c, th, version):
    """TH14eventdetpr for one class and one threshold."""
    gt_rows = [(r[0], r[1], r[2], r[3]) for r in case["gt_rows"]]
    videonames = sorted({r[0] for r in gt_rows} | {a[0] for a in case["amb_rows"]}
                        | {p[0] for p in case["pred_rows"]})
    npos = sum(1 for r in gt_rows if r[3] == c)
    dets_c = [p for p in case["pred_rows"] if p[3] == c]
    if version == "updated" and not dets_c:
        return 0.0
    unsort_conf, unsort_flag, tpconf, fpconf = [], [], [], []
    for vn in videonames:
        gt = [r for r in gt_rows if r[0] == vn and r[3] == c]
        amb = [a for a in case["amb_rows"] if a[0] == vn]
        det = [p for p in dets_c if p[0] == vn]
        if not det:
            continue
        det = sorted(det, key=lambda d: -d[4])  # MATLAB sort is stable
        conf = [d[4] for d in det]
        indfree = [1] * len(det)
        indamb = [0.0] * len(det)
        if gt:
            ov = [[_kit_overlap(g[1:3], d[1:3]) for d in det] for g in gt]
            for k in range(len(gt)):
                ind = [i for i in range(len(det)) if indfree[i]]
                if not ind:
                    continue  # max of an empty vector: the test is false
                values = [ov[k][i] for i in ind]
                vm = max(values)
                im = values.index(vm)  # the first maximum
                if vm > th:
                    indfree[ind[im]] = 0
        if amb:
            for j in range(len(det)):
                total = 0.0
                for a in amb:
                    total += _kit_overlap(a[1:3], det[j][1:3])
                indamb[j] = total
        idx1 = [i for i in range(len(det)) if indfree[i] == 0]
        idx2 = [i for i in range(len(det)) if indfree[i] == 1 and indamb[i] == 0]
        if version == "updated":
            merged = sorted([(i, 1) for i in idx1] + [(i, 2) for i in idx2])
            unsort_conf += [conf[i] for i, _ in merged]
            unsort_flag += [f for _, f in merged]
        else:
            tpconf += [conf[i] for i in idx1]
            fpconf += [conf[i] for i in idx2]
    if version == "updated":
        confs, flags = unsort_conf, unsort_flag
    else:
        if not tpconf:
            return 0.0
        confs, flags = tpconf + fpconf, [1] * len(tpconf) + [2] * len(fpconf)
    order = sorted(range(len(confs)), key=lambda i: -confs[i])  # stable
    flags = [flags[i] for i in order]
    tp = fp = 0
    rec, prec = [], []
    for f in flags:
        tp += f == 1
        fp += f == 2
        rec.append(tp / npos)
        prec.append(tp / (fp + tp))
    ap = 0.0
    if version == "updated":
        for i in range(len(prec)):
            if flags[i] == 1:
                ap = ap + prec[i]
        return ap / npos
    for t in (0.0, 0.1, 0.2, 3 * 0.1, 0.4, 0.5, 1 - 4 * 0.1, 1 - 3 * 0.1, 1 - 2 * 0.1, 1 - 0.1, 1.0):  # 0:0.1:1
        reached = [prec[i] for i in range(len(prec)) if rec[i] >= t]
        p = max(reached) if reached else 0.0
        ap = ap + p / 11
    return ap


def ref_thumos_kit(case, thresholds, version):
    """TH14evaldet / TH14evalDet_Updated: class list = the GT classes by name, ``map =
    mean(ap_all, 1)`` (sum in class order, then / n)."""
    classes = sorted({r[3] for r in case["gt_rows"]})
    per_class = {c: [_kit_class(case, c, th, version) for th in thresholds] for c in classes}
    maps = []
    for t in range(len(thresholds)):
        total = 0.0
        for c in classes:
            total += per_class[c][t]
        maps.append(100.0 * (total / len(classes)))
    return per_class, maps


# ------------------------------------------------------------------------------ the cases


def _seg(k, m):
    return (k * GRID, (k + m) * GRID)  # on the snippet grid; m = 0 gives a zero-length segment


@st.composite
def cases(draw):
    """A ground truth, predictions and ambiguous segments with the corners forced in."""
    grid_seg = st.builds(_seg, st.integers(0, 25), st.integers(0, 8))
    videos = draw(st.lists(st.sampled_from(VIDEOS), min_size=1, max_size=len(VIDEOS), unique=True))
    database = {}
    for v in videos:
        anns = []
        for _ in range(0 if v == "v_empty" else draw(st.integers(0, 4))):
            seg, label = draw(grid_seg), draw(st.sampled_from(LABELS))
            anns.append((seg, label))
            if draw(st.integers(0, 3)) == 0:
                anns.append((seg, label))  # an identical GT: tied tIoUs
        database[v] = anns
    if not any(database.values()):
        database[videos[0]] = [(_seg(2, 3), "A")]
    scores = st.one_of(st.sampled_from([0.25, 0.5, 0.75]), st.floats(0, 1))  # mostly tied
    results = {}
    for v in draw(st.lists(st.sampled_from(VIDEOS + UNKNOWN), max_size=6, unique=True)):
        items = []
        own = database.get(v, [])
        for _ in range(draw(st.integers(0, 14))):
            kind = draw(st.integers(0, 4))
            label = draw(st.sampled_from(LABELS + ["Z"]))  # Z: no ground-truth class
            if own and kind == 0:  # a copy of one of the video's GT
                seg, label = own[draw(st.integers(0, len(own) - 1))]
            elif kind == 1:  # centred between two symmetric GT of its class: tied tIoUs
                k, m, d = draw(st.integers(4, 20)), draw(st.integers(1, 6)), draw(st.integers(1, 3))
                seg = _seg(k, m)
                if v in database:
                    database[v] += [(_seg(k - d, m), label), (_seg(k + d, m), label)]
            else:
                seg = draw(grid_seg)
            items.append((seg, label, draw(scores)))
        results[v] = items
    amb = [(v, *draw(grid_seg)) for v in draw(st.lists(st.sampled_from(VIDEOS + UNKNOWN), max_size=3))]
    gt = {"database": {v: {"subset": "test", "annotations": [{"segment": list(s), "label": c} for s, c in anns]}
                       for v, anns in database.items()}}
    gt["database"]["v_val"] = {"subset": "validation", "annotations": [{"segment": [0.0, 6.4], "label": "A"}]}
    pred = {"results": {v: [{"segment": list(s), "label": c, "score": x} for s, c, x in items]
                        for v, items in results.items()}}
    gt_rows = [(v, s[0], s[1], c) for v, anns in database.items() for s, c in anns]
    classes = {r[3] for r in gt_rows}
    all_rows = [(v, s[0], s[1], c, x) for v, items in results.items() for s, c, x in items]
    return {"gt": gt, "pred": pred, "amb_rows": amb, "gt_rows": gt_rows,
            "pred_rows": [r for r in all_rows if r[3] in classes],  # what the references can read
            "unknown_label": sum(r[3] not in classes for r in all_rows),
            "unknown_video": sum(r[3] in classes and r[0] not in {g[0] for g in gt_rows} for r in all_rows)}


def _check(out, per_class, maps, case, dropped_unknown_video):
    for name, aps in per_class.items():
        for key, a in zip(out["mAP"], aps):
            assert out["per_class_AP"][name][key] == 100.0 * a, (name, key)
    assert list(out["mAP"].values()) == list(maps)
    assert out["unknown_video_predictions"] == case["unknown_video"]
    assert out["ignored_predictions"]["unknown_label"] == case["unknown_label"]
    assert out["ignored_predictions"]["unknown_video"] == (case["unknown_video"] if dropped_unknown_video else 0)


@SETTINGS
@given(case=cases())
def test_activitynet_is_the_reference(case):
    out = evaluate(case["gt"], case["pred"], protocol="activitynet", tiou=THRESHOLDS)
    per_class, m = ref_activitynet(case, THRESHOLDS)
    _check(out, per_class, [100.0 * x for x in m], case, dropped_unknown_video=False)
    assert out["unknown_video_rule"] == "false-positive"


@SETTINGS
@given(case=cases(), bug=st.booleans())
def test_wtalc_is_the_reference(case, bug):
    out = evaluate(case["gt"], case["pred"], protocol="wtalc", tiou=THRESHOLDS, ambiguous=case["amb_rows"],
                   empty_class_bug=bug)
    per_class, m = ref_wtalc(case, THRESHOLDS, empty_class_bug=bug)
    _check(out, per_class, m, case, dropped_unknown_video=True)
    # the classes W-TALC's code would stop at are always named, with a note
    empty = [c for c, aps in per_class.items()
             if not any(p[3] == c and p[0] in {g[0] for g in case["gt_rows"]}
                        and not any(a[0] == p[0] and min(p[2], a[2]) - max(p[1], a[1]) > 0 for a in case["amb_rows"])
                        for p in case["pred_rows"])]
    assert out["classes_without_predictions"] == empty
    assert bool(empty) == any("mAP 0" in note for note in out["notes"])


@SETTINGS
@given(case=cases(), version=st.sampled_from(["updated", "2014"]))
def test_thumos14_kits_are_the_reference(case, version):
    name = "thumos14" if version == "updated" else "thumos14-2014"
    out = evaluate(case["gt"], case["pred"], protocol=name, tiou=THRESHOLDS, ambiguous=case["amb_rows"])
    per_class, m = ref_thumos_kit(case, THRESHOLDS, version)
    _check(out, per_class, m, case, dropped_unknown_video=False)


# ----------------------------------------------------------------- hand-made corner cases


def test_tied_ground_truth_takes_the_reference_order():
    # p1 [5,15] overlaps g1 [0,10] and g2 [10,20] equally (5/15); p2 [0,8] overlaps only g1
    # (0.8). If p1 takes g1, p2 finds g1 taken and g2 at tIoU 0: flags [1,0], AP 50. If p1
    # takes g2, p2 takes g1: AP 100. ActivityNet walks the GT in np.argsort(tiou)[::-1]
    # order, so the result follows NumPy's tie order, exactly as the reference.
    gt = {"database": {"v": {"subset": "test", "annotations": [
        {"segment": [0, 10], "label": "A"}, {"segment": [10, 20], "label": "A"}]}}}
    pred = {"results": {"v": [{"segment": [5, 15], "label": "A", "score": 0.9},
                              {"segment": [0, 8], "label": "A", "score": 0.8}]}}
    out = evaluate(gt, pred, protocol="activitynet", tiou=[0.1])
    last_first = int(np.argsort(np.array([1 / 3, 1 / 3]))[::-1][0]) == 1
    assert out["mAP"]["0.1"] == (100.0 if last_first else 50.0)
    case = {"gt_rows": [("v", 0.0, 10.0, "A"), ("v", 10.0, 20.0, "A")],
            "pred_rows": [("v", 5.0, 15.0, "A", 0.9), ("v", 0.0, 8.0, "A", 0.8)], "amb_rows": []}
    assert out["mAP"]["0.1"] == 100.0 * ref_activitynet(case, (0.1,))[1][0]


def test_zero_length_segments_match_as_in_activitynet():
    # 0/0 is NaN in the reference, and NaN < t is false: a zero-length prediction matches a
    # zero-length GT of its video wherever it lies
    gt = {"database": {"v": {"subset": "test", "annotations": [{"segment": [3, 3], "label": "A"}]}}}
    pred = {"results": {"v": [{"segment": [7, 7], "label": "A", "score": 0.5}]}}
    assert evaluate(gt, pred, protocol="activitynet", tiou=[0.5])["mAP"]["0.5"] == 100.0
    for name in ("thumos14", "thumos14-2014", "wtalc"):
        assert evaluate(gt, pred, protocol=name, tiou=[0.5])["mAP"]["0.5"] == 0.0, name


def test_unknown_videos_are_false_positives_or_dropped_as_each_reference():
    # GT [0,10] in v; the same segment predicted in v (0.5) and in an unknown video (0.9)
    gt = {"database": {"v": {"subset": "test", "annotations": [{"segment": [0, 10], "label": "A"}]}}}
    pred = {"results": {"nowhere": [{"segment": [0, 10], "label": "A", "score": 0.9}],
                        "v": [{"segment": [0, 10], "label": "A", "score": 0.5}]}}
    # ranked [FP, TP]: all-points interpolated AP 1/2; kit AP (1/2)/1; 11-point: prec 1/2 at
    # every recall point -> 11 * (0.5 / 11)
    want = {"activitynet": 50.0, "thumos14": 50.0, "thumos14-2014": 100.0 * (11 * (0.5 / 11)), "wtalc": 100.0}
    for name, value in want.items():
        out = evaluate(gt, pred, protocol=name, tiou=[0.5])
        assert out["mAP"]["0.5"] == pytest.approx(value, abs=1e-12), name  # 11 divisions: not exact 50
        assert out["unknown_video_predictions"] == 1
        rule = PROTOCOL_RECORDS[name].unknown_video
        assert out["unknown_video_rule"] == rule
        assert out["ignored_predictions"]["unknown_video"] == (1 if rule == "dropped" else 0)
        assert out["num_predictions"] == (1 if rule == "dropped" else 2)


def test_the_two_thumos_kits_differ_only_where_documented():
    # v: GT [0,10]; tied confidences: FP [20,30] and TP [0,10] both 0.5, FP first in the file.
    # Updated kit: within-video order is the file order (stable) -> [FP, TP]: AP 1/2.
    # 2014 kit: TPs concatenated first -> [TP, FP]: 11-point AP 1.
    gt = {"database": {"v": {"subset": "test", "annotations": [{"segment": [0, 10], "label": "A"}]}}}
    pred = {"results": {"v": [{"segment": [20, 30], "label": "A", "score": 0.5},
                              {"segment": [0, 10], "label": "A", "score": 0.5}]}}
    assert evaluate(gt, pred, protocol="thumos14", tiou=[0.5])["mAP"]["0.5"] == 50.0
    assert evaluate(gt, pred, protocol="thumos14-2014", tiou=[0.5])["mAP"]["0.5"] == pytest.approx(100.0, abs=1e-12)


def test_the_2014_recall_points_are_matlabs():
    # recall exactly 3/10 = 0.29999999999999999 does not reach MATLAB's fourth point
    # 0.30000000000000004; 0.6 and 0.7 are the plain doubles
    assert KIT_RECALL_POINTS[3] == 3 * 0.1 and KIT_RECALL_POINTS[3] > 0.3
    assert KIT_RECALL_POINTS[6] == 0.6 and KIT_RECALL_POINTS[7] == 0.7
    gt = {"database": {"v": {"subset": "test", "annotations": [
        {"segment": [10.0 * k, 10.0 * k + 5], "label": "A"} for k in range(10)]}}}
    pred = {"results": {"v": [{"segment": [10.0 * k, 10.0 * k + 5], "label": "A", "score": 1.0 - k / 100}
                              for k in range(3)]}}
    # three TPs of ten GT: precision 1 up to recall 0.3 (= 3/10 < 0.30000000000000004):
    # points 0, 0.1, 0.2 reached -> AP 3/11
    out = evaluate(gt, pred, protocol="thumos14-2014", tiou=[0.5])
    assert out["mAP"]["0.5"] == 100.0 * (1 / 11 + 1 / 11 + 1 / 11)


def test_default_thresholds_come_from_the_records():
    gt = {"database": {"v": {"subset": "test", "annotations": [{"segment": [0, 10], "label": "A"}]}}}
    pred = {"results": {"v": [{"segment": [0, 10], "label": "A", "score": 0.5}]}}
    for name, record in PROTOCOL_RECORDS.items():
        out = evaluate(gt, pred, protocol=name)
        assert [float(k) for k in out["mAP"]] == list(record.default_tiou)
        assert out["deviations"] == [*record.deviations, *record.seconds_deviations]
        assert out["reference"] == record.reference and out["units"] == "seconds"
    assert PROTOCOL_RECORDS["thumos14"].default_tiou == (0.1, 0.2, 0.3, 0.4, 0.5)
    assert get_protocol(PROTOCOL_RECORDS["wtalc"]) is PROTOCOL_RECORDS["wtalc"]
    with pytest.raises(ValueError, match="W-TALC"):
        evaluate(gt, pred, protocol="thumos14", empty_class_bug=True)


# --------------------------------------------------------------- W-TALC in snippet units


def ref_wtalc_snippets(case, thresholds, factor):
    """getLocMAP as written: prediction rows are snippet ranges, GT and ambiguous seconds
    become ``range(int(round(s * factor)), int(round(e * factor)))`` and the IoU is counted
    on the index sets."""
    def gt_range(s, e):
        return set(range(int(round(s * factor)), int(round(e * factor))))

    def set_iou(a, b):
        return float(len(a & b)) / float(len(a | b))

    kept = {r[0] for r in case["gt_rows"]}
    classes = sorted({r[3] for r in case["gt_rows"]})
    per_class = {c: [] for c in classes}
    maps = []
    for th in thresholds:
        ap = []
        for c in classes:
            segment_predict = _wtalc_rows([p for p in case["pred_rows"] if p[3] == c and p[0] in kept], case)
            segment_predict = [p for p in segment_predict
                               if not any(a[0] == p[0] and set_iou(gt_range(a[1], a[2]), set(range(int(p[1]), int(p[2]))))
                                          > 0 for a in case["amb_rows"])]
            if not segment_predict:
                ap.append(0.0)
                per_class[c].append(0.0)
                continue
            prc = _wtalc_class_ap(segment_predict, [r for r in case["gt_rows"] if r[3] == c], th,
                                  lambda pred, gt: set_iou(gt_range(gt[1], gt[2]), set(range(int(pred[1]), int(pred[2])))))
            ap.append(prc)
            per_class[c].append(prc)
        maps.append(100 * np.mean(ap))
    return per_class, maps


@st.composite
def snippet_cases(draw):
    """GT in seconds on a 0.32 s grid (near halves of a snippet at 25/16), in whole seconds
    (an odd second at 10/4 snippets per second is exactly x.5: Python's round goes to even)
    or at two decimals; predictions as integer snippet ranges."""
    seconds = st.one_of(st.builds(lambda k: k * 0.32, st.integers(0, 60)), st.integers(0, 20).map(float),
                        st.builds(lambda k: k / 100, st.integers(0, 2000)))
    videos = draw(st.lists(st.sampled_from(VIDEOS), min_size=1, max_size=4, unique=True))
    database = {}
    for v in videos:
        anns = []
        for _ in range(0 if v == "v_empty" else draw(st.integers(0, 4))):
            a, b = sorted((draw(seconds), draw(seconds)))
            anns.append(((a, b), draw(st.sampled_from(LABELS))))
        database[v] = anns
    if not any(database.values()):
        database[videos[0]] = [((0.64, 2.56), "A")]
    scores = st.one_of(st.sampled_from([0.25, 0.5, 0.75]), st.floats(0, 1))
    results = {}
    for v in draw(st.lists(st.sampled_from(VIDEOS + UNKNOWN), max_size=5, unique=True)):
        items = []
        for _ in range(draw(st.integers(0, 12))):
            s = draw(st.integers(0, 30))
            items.append(((s, s + draw(st.integers(1, 8))), draw(st.sampled_from(LABELS)), draw(scores)))
        results[v] = items
    amb = []
    for v in draw(st.lists(st.sampled_from(VIDEOS), max_size=3)):
        a, b = sorted((draw(seconds), draw(seconds)))
        amb.append((v, a, b))
    gt = {"database": {v: {"subset": "test", "annotations": [{"segment": list(s), "label": c} for s, c in anns]}
                       for v, anns in database.items()}}
    pred = {"results": {v: [{"segment": list(s), "label": c, "score": x} for s, c, x in items]
                        for v, items in results.items()}}
    gt_rows = [(v, s[0], s[1], c) for v, anns in database.items() for s, c in anns]
    classes = {r[3] for r in gt_rows}
    rows = [(v, s[0], s[1], c, x) for v, items in results.items() for s, c, x in items]
    return {"gt": gt, "pred": pred, "amb_rows": amb, "gt_rows": gt_rows,
            "pred_rows": [r for r in rows if r[3] in classes]}


@SETTINGS
@given(case=snippet_cases(), factor=st.sampled_from([25.0 / 16.0, 10.0 / 4.0]))
def test_wtalc_in_snippets_is_the_reference(case, factor):
    out = evaluate(case["gt"], case["pred"], protocol="wtalc", tiou=THRESHOLDS, ambiguous=case["amb_rows"],
                   units="snippets", snippets_per_second=factor)
    per_class, m = ref_wtalc_snippets(case, THRESHOLDS, factor)
    for name, aps in per_class.items():
        for key, a in zip(out["mAP"], aps):
            assert out["per_class_AP"][name][key] == 100.0 * a, (name, key)
    assert list(out["mAP"].values()) == list(m)
    assert out["units"] == "snippets" and not any("seconds" in d for d in out["deviations"])


def test_snippet_units_keep_the_match_that_seconds_lose():
    # snippets [0, 3) and [1, 4): IoU 2/4 = 0.5 on the index sets, a TP at tIoU 0.5; the same
    # segments in seconds (x 0.64) give 1.28 / 2.56 computed as 0.4999999999999999
    gt = {"database": {"v": {"subset": "test", "annotations": [{"segment": [0.64, 2.56], "label": "A"}]}}}
    snippets = {"results": {"v": [{"segment": [0, 3], "label": "A", "score": 0.5}]}}
    seconds = {"results": {"v": [{"segment": [0.0, 3 * 0.64], "label": "A", "score": 0.5}]}}
    assert evaluate(gt, snippets, protocol="wtalc", tiou=[0.5], units="snippets")["mAP"]["0.5"] == 100.0
    out = evaluate(gt, seconds, protocol="wtalc", tiou=[0.5])
    assert out["mAP"]["0.5"] == 0.0 and any("seconds" in d for d in out["deviations"])


def test_snippet_units_refuse_what_is_no_snippet_range(tmp_path, capsys):
    from hideseek.cli import main

    gt, pred = tmp_path / "gt.json", tmp_path / "pred.json"
    gt.write_text('{"database": {"v": {"subset": "test", "annotations": [{"segment": [0.64, 2.56], "label": "A"}]}}}')
    pred.write_text('{"results": {"v": [{"segment": [0, 3], "label": "A", "score": 0.5}, '
                    '{"segment": [1.5, 3], "label": "A", "score": 0.4}]}}')
    args = ["action", "evaluate", "--ground-truth", str(gt), "--predictions", str(pred), "--units", "snippets"]
    assert main([*args, "--protocol", "wtalc"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: {pred}: video 'v' prediction 1:") and "snippet" in err
    assert main([*args, "--protocol", "thumos14"]) == 2
    assert "not 'snippets'" in capsys.readouterr().err
