"""Threshold curves: ``loc evaluate`` keeps the BoxAcc(tau) and PxAP precision-recall curves its
numbers are read from.

The curves are checked against re-implementations written here from the reference's
definitions (clovaai/wsolevaluation ``evaluation.py``):

* BoxAcc(tau, d) = 100 * (images whose box at tau hits a GT box with IoU >= d/100) / images,
  the box being the bounding rectangle of ``uint8(s * 255) > int(tau * max(uint8(s * 255)))``
  as ``[x, y, min(x + w, W - 1), min(y + h, H - 1)]`` (``[0, 0, 0, 0]`` when nothing is
  above), IoU with inclusive pixels (+1). The maps here are nested rectangles (each level
  inside the one below), so the pixels above any threshold form one rectangle: every
  contour rule (all contours, the largest) gives that rectangle's box, and no contour
  tracing is needed in the oracle.
* PxAP: ``np.histogram`` of foreground and background scores over the edges ``grid + [1, 2,
  3]``, tp and fp the reversed cumulative sums, precision = tp / (tp + fp), recall = tp /
  (tp + fn), AUC = 100 * sum(precision[1:] * diff(recall)) over points with tp + fp != 0.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from hideseek.cli import main

SIZE = 24  # score maps, images and masks are SIZE x SIZE: GT boxes need no rescaling
SETTINGS = settings(database=None, deadline=None, max_examples=60,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(code, err, *needles):
    assert code == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    for needle in needles:
        assert needle in err, err


# --------------------------------------------------------------------------- fixtures in the on-disk formats


@st.composite
def nested_map(draw):
    """(score map, its rectangles): a background level and up to three rectangles, each inside
    the previous one and scored higher."""
    levels = sorted(draw(st.lists(st.floats(0, 1, allow_nan=False), min_size=1, max_size=4)))
    scoremap = np.full((SIZE, SIZE), levels[0])
    x0, y0, x1, y1 = 0, 0, SIZE - 1, SIZE - 1
    for value in levels[1:]:
        x0 = draw(st.integers(x0, x1))
        y0 = draw(st.integers(y0, y1))
        x1 = draw(st.integers(x0, x1))
        y1 = draw(st.integers(y0, y1))
        scoremap[y0:y1 + 1, x0:x1 + 1] = value
    return scoremap


@st.composite
def box(draw):
    x0, x1 = sorted(draw(st.lists(st.integers(0, SIZE - 1), min_size=2, max_size=2)))
    y0, y1 = sorted(draw(st.lists(st.integers(0, SIZE - 1), min_size=2, max_size=2)))
    return x0, y0, x1, y1


images = st.lists(st.tuples(nested_map(), st.lists(box(), min_size=1, max_size=2)), min_size=1, max_size=4)


def write_box_split(root: Path, cases) -> tuple[Path, Path]:
    """A box split (WSOL metadata layout) and its score maps, one image per case."""
    split, maps = root / "split", root / "maps"
    split.mkdir(parents=True)
    maps.mkdir()
    ids = [f"img/{n}.jpg" for n in range(len(cases))]
    (split / "image_ids.txt").write_text("".join(f"{i}\n" for i in ids))
    (split / "class_labels.txt").write_text("".join(f"{i},0\n" for i in ids))
    (split / "image_sizes.txt").write_text("".join(f"{i},{SIZE},{SIZE}\n" for i in ids))
    (split / "localization.txt").write_text(
        "".join(f"{i},{x0},{y0},{x1},{y1}\n" for i, (_, boxes) in zip(ids, cases) for x0, y0, x1, y1 in boxes))
    (maps / "img").mkdir()
    for image_id, (scoremap, _) in zip(ids, cases):
        np.save(maps / f"{image_id}.npy", scoremap)
    return split, maps


def evaluate(tmp_path, capsys, split, maps, interval, *extra, size=SIZE) -> dict:
    output = tmp_path / f"result-{len(list(tmp_path.glob('result-*')))}.json"
    code, _, err = run(capsys, "loc", "evaluate", "--metadata", split, "--scoremaps", maps, "--resize-length", size,
                       "--cam-curve-interval", interval, "--output", output, *extra)
    assert code == 0, err
    return json.loads(output.read_text())


# --------------------------------------------------------------------------- oracles from the reference's definitions


def reference_box(scoremap: np.ndarray, tau: float) -> tuple[int, int, int, int]:
    """The box of a nested-rectangle map at ``tau`` (the pixels above form one rectangle)."""
    quantised = (scoremap * 255).astype(np.uint8)
    above = quantised > int(tau * np.max(quantised))
    if not above.any():
        return 0, 0, 0, 0
    rows, cols = np.flatnonzero(above.any(axis=1)), np.flatnonzero(above.any(axis=0))
    x, y, w, h = cols[0], rows[0], cols[-1] - cols[0] + 1, rows[-1] - rows[0] + 1
    return int(x), int(y), int(min(x + w, SIZE - 1)), int(min(y + h, SIZE - 1))


def inclusive_iou(a, b) -> float:
    iw = max(0, min(a[2], b[2]) - max(a[0], b[0]) + 1)
    ih = max(0, min(a[3], b[3]) - max(a[1], b[1]) + 1)
    inter = iw * ih
    union = (a[2] - a[0] + 1) * (a[3] - a[1] + 1) + (b[2] - b[0] + 1) * (b[3] - b[1] + 1) - inter
    return inter / union if union > 0 else 0.0


def reference_boxacc(cases, thresholds, iou: int) -> list[float]:
    curve = []
    for tau in thresholds:
        hits = sum(max(inclusive_iou(reference_box(m, tau), gt) for gt in boxes) >= iou / 100 for m, boxes in cases)
        curve.append(hits * 100.0 / len(cases))
    return curve


# --------------------------------------------------------------------------- BoxAcc curves


@SETTINGS
@given(cases=images, interval=st.sampled_from([0.05, 0.1, 0.01]))
def test_boxacc_curves_are_the_reference_curves_and_hold_the_maxima(tmp_path_factory, capsys, cases, interval):
    root = tmp_path_factory.mktemp("boxes")
    split, maps = write_box_split(root, cases)
    result = evaluate(root, capsys, split, maps, interval, "--iou-thresholds", "30", "50", "70", "90")
    curves = result["curves"]
    grid = np.arange(0, 1, interval)
    assert curves["thresholds"] == grid.tolist()
    assert sorted(curves["BoxAcc"], key=int) == ["30", "50", "70", "90"]
    for name, ious in (("BoxAcc", (30, 50, 70, 90)), ("BoxAccV2", (30, 50, 70)), ("BoxAccV1", (50,))):
        assert sorted(curves[name], key=int) == [str(d) for d in ious]
        for d in ious:
            # exact: both sides are hits * 100.0 / n of the same integer counts
            assert curves[name][str(d)] == reference_boxacc(cases, grid, d), (name, d)
    # the oracle's numbers are the curves' maxima, at the first threshold reaching them
    for d, curve in curves["BoxAcc"].items():
        assert result["MaxBoxAcc"][d] == max(curve)
        assert result["best_threshold"][d] == curves["thresholds"][int(np.argmax(curve))]
    v2 = curves["BoxAccV2"]
    assert result["MaxBoxAccV2"] == float(np.mean([max(v2[d]) for d in ("30", "50", "70")]))  # the same np.mean
    assert result["MaxBoxAccV1"] == result["GT-known Loc"] == max(curves["BoxAccV1"]["50"])


@settings(database=None, deadline=None, max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cases=images, index=st.integers(0, 19))
def test_a_grid_policy_reports_its_point_of_the_curve(tmp_path_factory, capsys, cases, index):
    """Fixed and calibrated thresholds on the grid read their number off the same curve."""
    root = tmp_path_factory.mktemp("policy")
    split, maps = write_box_split(root, cases)
    tau = float(np.arange(0, 1, 0.05)[index])
    fixed = evaluate(root, capsys, split, maps, 0.05, "--policy", "fixed", "--tau", repr(tau))
    for d, curve in fixed["curves"]["BoxAcc"].items():
        assert fixed["MaxBoxAcc"][d] == curve[index]
    assert fixed["GT-known Loc"] == fixed["curves"]["BoxAccV1"]["50"][index]
    calibration = root / "val.json"
    calibration.write_text(json.dumps({"best_threshold": {"30": tau, "50": tau, "70": tau}, "loc_threshold": tau,
                                       "best_threshold_v2": {"30": tau, "50": tau, "70": tau}}))
    calibrated = evaluate(root, capsys, split, maps, 0.05, "--policy", "calibrated", "--calibration", calibration)
    assert calibrated["curves"] == fixed["curves"]  # the curves do not depend on the policy
    assert calibrated["MaxBoxAcc"] == fixed["MaxBoxAcc"]


# --------------------------------------------------------------------------- PxAP curve


def write_mask_split(root: Path, cases) -> tuple[Path, Path, Path]:
    split, masks, maps = root / "msplit", root / "masks", root / "mmaps"
    for folder in (split, masks / "img", maps / "img"):
        folder.mkdir(parents=True)
    ids = [f"img/{n}.jpg" for n in range(len(cases))]
    (split / "image_ids.txt").write_text("".join(f"{i}\n" for i in ids))
    (split / "class_labels.txt").write_text("".join(f"{i},0\n" for i in ids))
    lines = []
    for n, (image_id, (scoremap, fg, ignore)) in enumerate(zip(ids, cases)):
        Image.fromarray(fg.astype(np.uint8) * 255).save(masks / "img" / f"{n}.png")
        ignore_path = ""
        if ignore is not None:
            ignore_path = f"img/{n}_ignore.png"
            Image.fromarray(ignore.astype(np.uint8) * 255).save(masks / ignore_path)
        lines.append(f"{image_id},img/{n}.png,{ignore_path}\n")
        np.save(maps / f"{image_id}.npy", scoremap)
    (split / "localization.txt").write_text("".join(lines))
    return split, masks, maps


def reference_pr(cases, grid):
    """(thresholds, precision with None where undefined, recall, PxAP) as the reference computes them."""
    edges = list(grid) + [1.0, 2.0, 3.0]
    positive = np.zeros(len(edges) - 1)
    negative = np.zeros(len(edges) - 1)
    for scoremap, fg, ignore in cases:
        keep = ~(ignore & ~fg) if ignore is not None else np.ones_like(fg)
        positive += np.histogram(scoremap[fg & keep], bins=edges)[0]
        negative += np.histogram(scoremap[~fg & keep], bins=edges)[0]
    tp = np.cumsum(positive[::-1])
    fn = positive.sum() - tp
    fp = np.cumsum(negative[::-1])
    nonzero = (tp + fp) != 0
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = tp / (tp + fp)
        recall = tp / (tp + fn)
    auc = 100 * (precision[1:] * np.diff(recall))[nonzero[1:]].sum()
    return (edges[:-1][::-1], [float(p) if k else None for p, k in zip(precision, nonzero)],
            recall.tolist(), float(auc))


masks = st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=3)


def mask_cases(seeds, with_ignore: bool):
    cases = []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        scoremap = rng.random((SIZE, SIZE)) ** 2
        scoremap[rng.random((SIZE, SIZE)) < 0.1] = 1.0  # the top bin [1, 2) is used too
        fg = rng.random((SIZE, SIZE)) < rng.uniform(0.05, 0.6)
        fg[0, 0] = True  # at least one foreground pixel per image
        ignore = rng.random((SIZE, SIZE)) < 0.2 if with_ignore else None
        cases.append((scoremap, fg, ignore))
    return cases


@SETTINGS
@given(seeds=masks, with_ignore=st.booleans(), interval=st.sampled_from([0.05, 0.01]))
def test_pxap_curve_is_the_reference_curve_and_integrates_to_pxap(tmp_path_factory, capsys, seeds, with_ignore,
                                                                  interval):
    root = tmp_path_factory.mktemp("masks")
    cases = mask_cases(seeds, with_ignore)
    split, mask_root, maps = write_mask_split(root, cases)
    result = evaluate(root, capsys, split, maps, interval, "--mask-root", mask_root)
    curve = result["curves"]["PxAP"]
    thresholds, precision, recall, auc = reference_pr(cases, np.arange(0, 1, interval))
    # exact: the same divisions of the same integer counts
    assert curve["thresholds"] == thresholds
    assert curve["precision"] == precision
    assert curve["recall"] == recall
    assert result["PxAP"] == auc
    # integrated as the reference does, from the JSON alone: a left-to-right sum here against
    # numpy's pairwise one, so equal to rounding (1e-12 of a value <= 100)
    area = sum(p * (recall[k] - recall[k - 1]) for k, p in enumerate(curve["precision"]) if k >= 1 and p is not None)
    assert math.isclose(100 * area, result["PxAP"], rel_tol=0, abs_tol=1e-12)


# --------------------------------------------------------------------------- training and --checkpoint


def test_training_and_checkpoint_evaluation_keep_the_curves_and_records_do_not(tmp_path, capsys):
    from hideseek.localization.data.dataset import SyntheticWSOL
    from hideseek.localization.data.synthetic import SyntheticConfig
    from hideseek.localization.train import LocConfig, train
    from hideseek.results.records import read_records

    tiny = dict(train=32, val=16, test=16, image_size=48, num_classes=3)
    config = LocConfig(synthetic=tiny, epochs=1, batch_size=16, crop_size=48, resize_size=48, feature_stage=2)
    records = tmp_path / "records.jsonl"
    trained = train(config, tmp_path / "run", records=records, progress=False)
    for split, result in trained["results"].items():
        curves = result["curves"]
        assert set(curves) == {"thresholds", "BoxAcc", "BoxAccV2", "BoxAccV1", "PxAP"}, split
        if result["policy"]["name"] == "oracle":
            assert result["MaxBoxAcc"] == {d: max(c) for d, c in curves["BoxAcc"].items()}
            assert result["GT-known Loc"] == max(curves["BoxAccV1"]["50"])
    assert all("curves" not in row["metrics"] for row in read_records(records))

    output, maps = tmp_path / "ckpt.json", tmp_path / "maps"
    code, _, err = run(capsys, "loc", "evaluate", "--checkpoint", trained["checkpoint"], "--splits", "test",
                       "--records", tmp_path / "again.jsonl", "--save-scoremaps", maps, "--output", output)
    assert code == 0, err
    again = json.loads(output.read_text())["test"]
    assert again["curves"] == trained["results"]["test"]["curves"]
    # the saved maps scored on their own give the same box curves and PR curve
    root = SyntheticWSOL(SyntheticConfig.from_dict(tiny), progress=False).root
    boxes = evaluate(tmp_path, capsys, root / "metadata" / "test", maps, 0.01, size=48)
    pixels = evaluate(tmp_path, capsys, root / "metadata_masks" / "test", maps, 0.01, "--mask-root", root / "masks",
                      size=48)
    assert {**boxes["curves"], **pixels["curves"]} == again["curves"]
