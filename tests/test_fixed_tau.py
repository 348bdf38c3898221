"""A fixed CAM threshold is the literal tau given, not the nearest grid value.

The public WSOL benchmark (and TS-CAM) binarise a score map as ``q > int(tau * max(q))``
with ``q = uint8(map * 255)`` (truncation). The grid value ``np.arange(0, 1, 0.01)[70]`` is
0.7000000000000001, and ``int(0.7 * 90) = 62`` while ``int(0.7000000000000001 * 90) = 63``:
a map whose quantised maximum is 90 loses every pixel of value 63 when the grid value
stands in for 0.7. The rule is re-implemented here from that definition (quantise, threshold,
8-connected components labelled by hand, the largest contour by its area, boxes
``[x, y, min(x + w, W - 1), min(y + h, H - 1)]``, IoU on inclusive pixels), and hideseek's
numbers at ``Fixed(tau)`` must equal it exactly: they are integer counts times 100 / n,
computed the same way on both sides. The oracle keeps sweeping the benchmark's grid.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hideseek.cli import main
from hideseek.localization.boxes import opencv_available
from hideseek.localization.metrics import BoxAccuracy, Calibrated, Fixed, Oracle, box_accuracy, cam_thresholds
from hideseek.segmentation.metrics import MeanIoU, ThresholdSweep
from hideseek.segmentation.pseudo import pseudo_labels

SETTINGS = settings(max_examples=60, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
FORCED_TAUS = (0.35, 0.57, 0.7)
FORCED_MAXIMA = (90, 100, 170, 180, 200)  # uint8 maxima where tau * max is an integer for some forced tau
GRID = cam_thresholds(0.01)  # the benchmark's grid: GRID[70] is 0.7000000000000001
KERNELS = ["single", "batch",
           pytest.param("opencv", marks=pytest.mark.skipif(not opencv_available(), reason="the OpenCV box kernel needs opencv-python-headless (in the test extra)"))]


# --------------------------------------------------------------------------- the reference rule, re-implemented


def quantised(scoremap: np.ndarray) -> np.ndarray:
    """``uint8(map * 255)``: the cast truncates, so the floor of the product (maps in [0, 1])."""
    return np.floor(scoremap * 255.0).astype(np.int64)


def components(mask: np.ndarray, eight: bool) -> list[list[tuple[int, int]]]:
    """Connected pixel sets of ``mask`` (8- or 4-connected), in raster order of their first pixel."""
    steps = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0) and (eight or dy * dx == 0)]
    height, width = mask.shape
    seen = np.zeros(mask.shape, bool)
    found = []
    for r in range(height):
        for c in range(width):
            if not mask[r, c] or seen[r, c]:
                continue
            seen[r, c] = True
            stack, pixels = [(r, c)], []
            while stack:
                y, x = stack.pop()
                pixels.append((y, x))
                for dy, dx in steps:
                    yy, xx = y + dy, x + dx
                    if 0 <= yy < height and 0 <= xx < width and mask[yy, xx] and not seen[yy, xx]:
                        seen[yy, xx] = True
                        stack.append((yy, xx))
            found.append(pixels)
    return found


def contour_area(pixels, shape) -> float:
    """Area of a component's outer contour (the polygon through the centres of its border
    pixels): with its holes filled, every 2x2 window of four pixels adds 1, of three 1/2."""
    padded = np.zeros((shape[0] + 2, shape[1] + 2), bool)
    for y, x in pixels:
        padded[y + 1, x + 1] = True
    outside = components(~padded, eight=False)
    outside = next(part for part in outside if part[0] == (0, 0))  # background reaching the border
    filled = np.ones(padded.shape, bool)
    for y, x in outside:
        filled[y, x] = False
    window = filled[:-1, :-1].astype(int) + filled[1:, :-1] + filled[:-1, 1:] + filled[1:, 1:]
    return float((window == 4).sum()) + 0.5 * float((window == 3).sum())


def rect(ys, xs, shape) -> list[int]:
    """``[x, y, min(x + w, W - 1), min(y + h, H - 1)]`` of the bounding rectangle of pixels."""
    return [min(xs), min(ys), min(max(xs) + 1, shape[1] - 1), min(max(ys) + 1, shape[0] - 1)]


def reference_boxes(scoremap: np.ndarray, tau: float) -> tuple[list[int], list[list[int]]]:
    """The largest contour's box and the boxes of every contour at the literal ``tau``."""
    q = quantised(scoremap)
    foreground = q > int(tau * int(q.max()))
    parts = components(foreground, eight=True)
    if not parts:
        return [0, 0, 0, 0], [[0, 0, 0, 0]]
    shape = scoremap.shape
    boxes = [rect([y for y, _ in p], [x for _, x in p], shape) for p in parts]
    areas = [contour_area(p, shape) for p in parts]
    # the first of equal areas in the contour list, which lists outer borders last pixel first
    largest = max(i for i, a in enumerate(areas) if a == max(areas))
    for hole in components(~foreground, eight=False):
        ys, xs = [y for y, _ in hole], [x for _, x in hole]
        if min(ys) > 0 and min(xs) > 0 and max(ys) < shape[0] - 1 and max(xs) < shape[1] - 1:
            # a hole's border runs through the pixels around it: its box grown by one
            boxes.append(rect([min(ys) - 1, max(ys) + 1], [min(xs) - 1, max(xs) + 1], shape))
    return boxes[largest], boxes


def hit(box, gt_boxes, d: int, strict: bool = False) -> bool:
    """IoU >= d/100 (``strict``: >) with any GT box, inclusive pixels, in exact integers."""
    for g in gt_boxes:
        iw = max(0, min(box[2], g[2]) - max(box[0], g[0]) + 1)
        ih = max(0, min(box[3], g[3]) - max(box[1], g[1]) + 1)
        inter = iw * ih
        union = (box[2] - box[0] + 1) * (box[3] - box[1] + 1) + (g[2] - g[0] + 1) * (g[3] - g[1] + 1) - inter
        if union > 0 and (100 * inter > d * union if strict else 100 * inter >= d * union):
            return True
    return False


def reference_counts(maps, gts, ranked, labels, tau, strict=False) -> dict:
    """Hit counts at ``tau``: largest-contour and all-contour boxes per IoU d, Top-1/Top-5 Loc."""
    counts = {"largest": {30: 0, 50: 0, 70: 0}, "all": {30: 0, 50: 0, 70: 0}, "top1": 0, "top5": 0}
    for scoremap, gt, rank, label in zip(maps, gts, ranked, labels):
        largest, boxes = reference_boxes(scoremap, tau)
        for d in (30, 50, 70):
            counts["largest"][d] += hit(largest, gt, d, strict)
            counts["all"][d] += any(hit(b, gt, d, strict) for b in boxes)
        loc = hit(largest, gt, 50, strict)
        counts["top1"] += loc and rank[0] == label
        counts["top5"] += loc and label in list(rank[:5])
    return counts


def percent(count: int, n: int) -> float:
    return count * 100.0 / n  # the same arithmetic as the metric: exact equality is right


# --------------------------------------------------------------------------- generated cases


def scoremap_of(q: np.ndarray) -> np.ndarray:
    """A float map whose ``uint8(map * 255)`` is ``q`` (mid-level values; 255 is 1.0)."""
    scoremap = np.where(q == 255, 1.0, (q + 0.5) / 255.0)
    assert np.array_equal(quantised(scoremap), q)
    return scoremap


@st.composite
def cases(draw):
    """Maps with a forced uint8 maximum whose pixels sit at the levels where the literal tau
    and its grid neighbour disagree, GT boxes, and ranked class predictions."""
    tau = draw(st.one_of(st.sampled_from(FORCED_TAUS), st.floats(0.0, 1.0, exclude_max=True)))
    top = draw(st.one_of(st.sampled_from(FORCED_MAXIMA), st.integers(1, 255)))
    near = GRID[min(int(round(tau * 100)), len(GRID) - 1)]  # the grid value closest to tau
    levels = {0, top, int(tau * top), int(tau * top) + 1, int(near * top), int(near * top) + 1}
    palette = sorted(v for v in levels | {draw(st.integers(0, top))} if 0 <= v <= top)
    n = draw(st.integers(1, 4))
    height, width = draw(st.integers(2, 9)), draw(st.integers(2, 9))
    maps, gts = [], []
    for _ in range(n):
        cells = draw(st.lists(st.sampled_from(palette), min_size=height * width, max_size=height * width))
        q = np.array(cells, dtype=np.int64).reshape(height, width)
        q.flat[draw(st.integers(0, q.size - 1))] = top
        maps.append(scoremap_of(q))
        boxes = []
        for _ in range(draw(st.integers(1, 2))):
            x0, x1 = sorted(draw(st.integers(0, width - 1)) for _ in range(2))
            y0, y1 = sorted(draw(st.integers(0, height - 1)) for _ in range(2))
            boxes.append([x0, y0, x1, y1])
        gts.append(boxes)
    ranked = np.array([draw(st.permutations(range(6)))[:5] for _ in range(n)], dtype=np.int64)
    labels = np.array([draw(st.integers(0, 5)) for _ in range(n)], dtype=np.int64)
    return tau, maps, gts, ranked, labels


def scored(maps, gts, ranked, labels, kernel, extra=(), strict=False) -> BoxAccuracy:
    metric = BoxAccuracy(GRID, strict_iou=strict, kernel=kernel, extra_thresholds=extra)
    metric.update(np.stack(maps), gts, ranked, labels)
    return metric


# --------------------------------------------------------------------------- properties


@pytest.mark.parametrize("kernel", KERNELS)
@SETTINGS
@given(case=cases(), strict=st.booleans())
def test_fixed_tau_equals_the_reference_rule_at_the_literal_tau(kernel, case, strict):
    tau, maps, gts, ranked, labels = case
    policy = Fixed(tau)
    result = scored(maps, gts, ranked, labels, kernel, policy.literal_thresholds(), strict).compute(policy)
    counts = reference_counts(maps, gts, ranked, labels, tau, strict)
    n = len(maps)
    assert result["GT-known Loc"] == result["MaxBoxAccV1"] == percent(counts["largest"][50], n)
    assert result["Top-1 Loc"] == percent(counts["top1"], n)
    assert result["Top-5 Loc"] == percent(counts["top5"], n)
    cells = {str(d): percent(counts["all"][d], n) for d in (30, 50, 70)}
    assert result["MaxBoxAcc"] == cells  # all contours, the V2 cells
    assert result["MaxBoxAccV2"] == float(np.mean(list(cells.values())))  # the same mean of the same cells
    assert result["loc_threshold"] == tau
    assert result["best_threshold"] == result["best_threshold_v2"] == {"30": tau, "50": tau, "70": tau}
    assert result["policy"] == {"name": "fixed", "tau": tau}


@SETTINGS
@given(case=cases())
def test_functional_twin_scores_its_fixed_policy_literally(case):
    tau, maps, gts, ranked, labels = case
    result = box_accuracy(np.stack(maps), gts, ranked, labels, thresholds=GRID, policy=Fixed(tau))
    counts = reference_counts(maps, gts, ranked, labels, tau)
    assert result["GT-known Loc"] == percent(counts["largest"][50], len(maps))
    assert result["Top-1 Loc"] == percent(counts["top1"], len(maps))


@pytest.mark.parametrize("kernel", KERNELS)
@settings(max_examples=30, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(case=cases())
def test_oracle_keeps_the_benchmark_grid(kernel, case):
    """The oracle (and a calibration taken from it) is unchanged by the literal column and
    equals the reference's sweep over ``np.arange(0, 1, 0.01)``."""
    tau, maps, gts, ranked, labels = case
    n = len(maps)
    with_literal = scored(maps, gts, ranked, labels, kernel, (tau,))
    plain = scored(maps, gts, ranked, labels, kernel)
    oracle = with_literal.compute(Oracle())
    assert oracle == plain.compute(Oracle())
    calibration = Calibrated.from_result(oracle)
    assert with_literal.compute(calibration) == plain.compute(calibration)

    by_level: dict[int, dict] = {}  # thresholds with the same level int(tau * max) share counts per map
    per_tau = []
    for g in GRID:
        key = tuple(int(g * int(quantised(m).max())) for m in maps)
        if key not in by_level:
            by_level[key] = reference_counts(maps, gts, ranked, labels, g)
        per_tau.append(by_level[key])
    for d in (30, 50, 70):
        row = [percent(c["all"][d], n) for c in per_tau]
        assert oracle["MaxBoxAcc"][str(d)] == max(row)
        assert oracle["best_threshold"][str(d)] == GRID[int(np.argmax(row))]
    loc = [percent(c["largest"][50], n) for c in per_tau]
    best = int(np.argmax(loc))
    assert oracle["GT-known Loc"] == max(loc) and oracle["loc_threshold"] == GRID[best]
    assert oracle["Top-1 Loc"] == percent(per_tau[best]["top1"], n)
    assert oracle["MaxBoxAccV2"] == float(np.mean([oracle["MaxBoxAcc"][d] for d in ("30", "50", "70")]))


@pytest.mark.skipif(not opencv_available(), reason="compares the re-implementation with OpenCV itself: needs opencv-python-headless (in the test extra)")
@SETTINGS
@given(case=cases())
def test_reimplementation_agrees_with_opencv(case):
    """The test's own rule against the reference's calls (``cv2.threshold``, ``findContours``,
    ``boundingRect``, the first contour of largest ``contourArea``)."""
    import cv2

    tau, maps, _, _, _ = case
    for scoremap in maps:
        image = (scoremap * 255).astype(np.uint8)
        _, mask = cv2.threshold(image, int(tau * np.max(image)), 255, cv2.THRESH_BINARY)
        contours = cv2.findContours(mask, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)[0]
        largest, boxes = reference_boxes(scoremap, tau)
        if not contours:
            assert (largest, boxes) == ([0, 0, 0, 0], [[0, 0, 0, 0]])
            continue
        height, width = scoremap.shape
        rects = [cv2.boundingRect(c) for c in contours]
        expected = [[x, y, min(x + w, width - 1), min(y + h, height - 1)] for x, y, w, h in rects]
        assert sorted(boxes) == sorted(expected)
        assert largest == expected[max(range(len(contours)), key=lambda i: cv2.contourArea(contours[i]))]


# --------------------------------------------------------------------------- the issue's forced cases

SIZE = 16


def block(top_pixel: int, block_value: int, rows: slice, cols: slice) -> np.ndarray:
    q = np.zeros((SIZE, SIZE), np.int64)
    q[rows, cols] = block_value
    q[rows.start + 2, cols.start + 2] = top_pixel
    return q


def four_maps() -> tuple[list[np.ndarray], list[list[list[int]]]]:
    """Four maps whose uint8 maximum is 90 with a block at 63 = int(0.7 * 90) + 1: at the
    literal 0.7 (level 62) the block is the box and three of them hit their GT box; at the
    grid value 0.7000000000000001 (level 63) only the 90 pixel remains and none hits."""
    hitting = block(90, 63, slice(2, 12), slice(2, 12))
    missing = block(90, 63, slice(2, 6), slice(2, 6))
    maps = [scoremap_of(q) for q in (hitting, hitting, hitting, missing)]
    gts = [[[2, 2, 11, 11]]] * 3 + [[[10, 10, 15, 15]]]
    return maps, gts


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("tau", FORCED_TAUS)
@pytest.mark.parametrize("top", FORCED_MAXIMA)
def test_forced_integer_products(kernel, tau, top):
    """Every forced (tau, uint8 max) pair, with a block exactly one level above int(tau * max)."""
    level = int(tau * top)
    q = block(top, level + 1, slice(2, 12), slice(2, 12))
    maps, gts = [scoremap_of(q)], [[[2, 2, 11, 11]]]
    ranked, labels = np.array([[0, 1, 2, 3, 4]]), np.array([0])
    result = scored(maps, gts, ranked, labels, kernel, (tau,)).compute(Fixed(tau))
    counts = reference_counts(maps, gts, ranked, labels, tau)
    assert result["GT-known Loc"] == percent(counts["largest"][50], 1) == 100.0
    assert result["Top-1 Loc"] == percent(counts["top1"], 1) == 100.0


def test_grid_value_and_literal_tau_differ_on_the_issues_maps():
    maps, gts = four_maps()
    metric = BoxAccuracy(GRID, extra_thresholds=(0.7,))
    metric.update(np.stack(maps), gts)
    assert metric.compute(Fixed(0.7))["GT-known Loc"] == 75.0
    assert metric.compute(Fixed(float(GRID[70])))["GT-known Loc"] == 0.0  # 0.7000000000000001, literally


def test_fixed_tau_not_evaluated_is_refused_not_snapped():
    maps, gts = four_maps()
    metric = BoxAccuracy(GRID)
    metric.update(np.stack(maps), gts)
    with pytest.raises(ValueError, match="0.7 was not evaluated"):
        metric.compute(Fixed(0.7))


@pytest.mark.parametrize("tau", [1.0, 1.5, -0.1, math.nan, math.inf, "x"])
def test_fixed_tau_outside_zero_one_is_refused(tau):
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        Fixed(tau)


# --------------------------------------------------------------------------- the command line


def write_split(root, maps, gts, ranked) -> tuple:
    split, folder = root / "split", root / "maps"
    split.mkdir()
    ids = [f"img/{k}.jpg" for k in range(len(maps))]
    (split / "image_ids.txt").write_text("".join(f"{i}\n" for i in ids))
    (split / "class_labels.txt").write_text("".join(f"{i},0\n" for i in ids))
    (split / "image_sizes.txt").write_text("".join(f"{i},{SIZE},{SIZE}\n" for i in ids))
    (split / "localization.txt").write_text("".join(f"{i},{','.join(map(str, b))}\n"
                                                    for i, boxes in zip(ids, gts) for b in boxes))
    for image_id, scoremap in zip(ids, maps):
        (folder / "img").mkdir(parents=True, exist_ok=True)
        np.save(folder / f"{image_id}.npy", scoremap)
    predictions = root / "top5.txt"
    predictions.write_text("".join(f"{i},{','.join(map(str, r))}\n" for i, r in zip(ids, ranked)))
    return split, folder, predictions


def evaluate(tmp_path, capsys, *options) -> dict:
    maps, gts = four_maps()
    ranked = [[1, 0, 2, 3, 4]] + [[0, 1, 2, 3, 4]] * 3  # the first image's top-1 class is wrong
    split, folder, predictions = write_split(tmp_path, maps, gts, ranked)
    output = tmp_path / "result.json"
    code = main(["loc", "evaluate", "--metadata", str(split), "--scoremaps", str(folder), "--predictions",
                 str(predictions), "--resize-length", str(SIZE), "--output", str(output), *options])
    err = capsys.readouterr().err
    assert code == 0, err
    return json.loads(output.read_text())


def test_cli_fixed_tau_is_literal(tmp_path, capsys):
    result = evaluate(tmp_path, capsys, "--policy", "fixed", "--tau", "0.7")
    assert result["GT-known Loc"] == 75.0 and result["loc_threshold"] == 0.7
    assert result["Top-1 Loc"] == 50.0 and result["Top-5 Loc"] == 75.0
    assert result["policy"] == {"name": "fixed", "tau": 0.7}


def test_cli_fixed_tau_at_the_grid_value_is_that_value(tmp_path, capsys):
    result = evaluate(tmp_path, capsys, "--policy", "fixed", "--tau", repr(float(GRID[70])))
    assert result["GT-known Loc"] == 0.0 and result["loc_threshold"] == GRID[70]


def test_cli_tau_off_the_grid_is_scored(tmp_path, capsys):
    result = evaluate(tmp_path, capsys, "--policy", "fixed", "--tau", "0.123")
    assert result["GT-known Loc"] == 75.0  # level int(0.123 * 90) = 11: the block is in
    assert result["loc_threshold"] == 0.123 and result["policy"]["tau"] == 0.123


def test_cli_oracle_stays_on_the_grid(tmp_path, capsys):
    result = evaluate(tmp_path, capsys)
    assert result["GT-known Loc"] == 75.0 and result["policy"] == {"name": "oracle"}
    assert result["loc_threshold"] in GRID.tolist()
    assert all(t in GRID.tolist() for t in result["best_threshold"].values())


@pytest.mark.parametrize("argv", [
    ["--checkpoint", "run/last.pt", "--policy", "fixed", "--tau", "0.7"],
    ["--center-baseline", "--metadata", "split", "--policy", "fixed", "--tau", "0.7"],
    ["--metadata", "split", "--scoremaps", "maps", "--tau", "0.7"],
])
def test_cli_refuses_a_policy_it_would_ignore(capsys, argv):
    code = main(["loc", "evaluate", *argv])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1, err
    assert ("--policy" in err or "--tau" in err), err


# --------------------------------------------------------------------------- segmentation: a fixed background threshold


@SETTINGS
@given(seed=st.integers(0, 2**31 - 1), tau=st.one_of(st.sampled_from(FORCED_TAUS), st.floats(0.0, 1.0, exclude_max=True)))
def test_sweep_fixed_threshold_is_literal(seed, tau):
    """The sweep's fixed background threshold labels like ``pseudo_labels`` at the literal
    tau, including float64 scores between tau and its grid neighbour; the oracle is unchanged."""
    g = torch.Generator().manual_seed(seed)
    near = float(GRID[min(int(round(tau * 100)), len(GRID) - 1)])
    values = torch.tensor([0.0, tau, math.nextafter(tau, 1.0), near, math.nextafter(near, 1.0), 0.99],
                          dtype=torch.float64)
    scores = values[torch.randint(0, len(values), (2, 3, 5, 6), generator=g)]
    target = torch.randint(0, 4, (2, 5, 6), generator=g)
    literal = ThresholdSweep(4, GRID, extra_thresholds=(tau,))
    plain = ThresholdSweep(4, GRID)
    for sweep in (literal, plain):
        sweep.update(scores, target)
    direct = MeanIoU(4)
    direct.update(pseudo_labels(scores, tau), target)
    fixed = literal.compute(Fixed(tau))
    assert fixed["bg_threshold"] == tau and fixed["policy"] == {"name": "fixed", "tau": tau}
    confusion = literal._confusions()[int(np.flatnonzero(literal.evaluated == tau)[0])]
    assert np.array_equal(confusion.numpy(), direct.confmat)
    assert fixed["mIoU"] == pytest.approx(direct.compute()["mIoU"], abs=1e-12, nan_ok=True)  # torch vs numpy sums
    assert literal.compute(Oracle()) == plain.compute(Oracle())
    assert np.array_equal(literal.confusion().numpy(), plain.confusion().numpy())
