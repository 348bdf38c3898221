"""Threshold curves: ``loc evaluate`` keeps the BoxAcc(tau) and PxAP precision-recall curves its
numbers are read from, and ``results plot`` draws them.

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
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from cli_helpers import one_line_error, run
from hideseek.cli import main

SIZE = 24  # score maps, images and masks are SIZE x SIZE: GT boxes need no rescaling
SETTINGS = settings(database=None, deadline=None, max_examples=60,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


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


# --------------------------------------------------------------------------- results plot


@pytest.fixture
def two_runs(tmp_path, capsys):
    """Two box evaluations and a mask evaluation, as ``loc evaluate --output`` writes them."""
    rng = np.random.default_rng(0)
    cases = []
    for _ in range(4):
        scoremap = np.full((SIZE, SIZE), 0.1)
        x0, y0 = rng.integers(0, SIZE // 2, size=2)
        scoremap[y0:y0 + 8, x0:x0 + 8] = 0.6
        scoremap[y0 + 2:y0 + 5, x0 + 2:x0 + 5] = 0.95
        cases.append((scoremap, [(int(x0), int(y0), int(x0) + 9, int(y0) + 9)]))
    split, maps = write_box_split(tmp_path / "a", cases)
    first = evaluate(tmp_path, capsys, split, maps, 0.01)
    split, maps = write_box_split(tmp_path / "b", [(np.sqrt(m), b) for m, b in cases])
    second = evaluate(tmp_path, capsys, split, maps, 0.01)
    msplit, mask_root, mmaps = write_mask_split(tmp_path / "m", mask_cases([1, 2], True))
    pixels = evaluate(tmp_path, capsys, msplit, mmaps, 0.01, "--mask-root", mask_root)
    files = {"cam": tmp_path / "cam.json", "sqrt": tmp_path / "sqrt.json", "mask": tmp_path / "mask.json"}
    for path, result in zip(files.values(), (first, second, pixels)):
        path.write_text(json.dumps(result))
    return files


def read_png(path: Path) -> tuple[int, int]:
    assert path.stat().st_size > 1000
    with Image.open(path) as image:
        image.load()
        assert image.format == "PNG"
        assert np.asarray(image.convert("L")).std() > 0  # something is drawn
        return image.size


def test_plot_writes_a_png_from_two_files(tmp_path, capsys, two_runs):
    output = tmp_path / "figs" / "curves.png"
    code, out, err = run(capsys, "results", "plot", two_runs["cam"], two_runs["sqrt"], "--labels", "CAM", "sqrt CAM",
                         "--output", output)
    assert code == 0, err
    assert f"wrote {output}" in out
    width, height = read_png(output)
    assert width > 2 * height  # three panels side by side (IoU 30, 50, 70)
    assert not list(output.parent.glob(".*"))  # no temporary file left


@pytest.mark.parametrize("curve", ["BoxAcc", "BoxAccV1"])
def test_plot_other_box_curves_with_the_pr_panel_and_a_pdf(tmp_path, capsys, two_runs, curve):
    png, pdf = tmp_path / "c.png", tmp_path / "c.pdf"
    files = (two_runs["cam"], two_runs["mask"])
    assert run(capsys, "results", "plot", *files, "--curve", curve, "--output", png)[0] == 0
    read_png(png)
    assert run(capsys, "results", "plot", *files, "--curve", curve, "--output", pdf)[0] == 0
    assert pdf.read_bytes().startswith(b"%PDF")


def test_plot_reads_checkpoint_output_by_split(tmp_path, capsys, two_runs):
    """``loc evaluate --checkpoint`` writes one result per split."""
    per_split = tmp_path / "ckpt.json"
    cam = json.loads(two_runs["cam"].read_text())
    per_split.write_text(json.dumps({"val": cam, "test": cam, "test_calibrated": cam}))
    assert run(capsys, "results", "plot", per_split, "--output", tmp_path / "t.png")[0] == 0
    assert run(capsys, "results", "plot", per_split, "--split", "val", "--output", tmp_path / "v.png")[0] == 0
    code, _, err = run(capsys, "results", "plot", per_split, "--split", "train", "--output", tmp_path / "x.png")
    one_line_error(code, err, str(per_split), "'train'")


def test_plot_errors_are_one_line_naming_the_file(tmp_path, capsys, two_runs):
    old = tmp_path / "old.json"
    old.write_text(json.dumps({"MaxBoxAcc": {"50": 80.0}, "MaxBoxAccV2": 70.0}))
    output = tmp_path / "out.png"
    code, _, err = run(capsys, "results", "plot", two_runs["cam"], old, "--output", output)
    one_line_error(code, err, str(old), "no threshold curves")
    assert not output.exists()

    broken = tmp_path / "broken.json"
    result = json.loads(two_runs["cam"].read_text())
    result["curves"]["BoxAccV2"]["50"] = result["curves"]["BoxAccV2"]["50"][:-1]
    broken.write_text(json.dumps(result))
    code, _, err = run(capsys, "results", "plot", broken, "--output", output)
    one_line_error(code, err, str(broken), "BoxAccV2.50", "one per threshold")

    code, _, err = run(capsys, "results", "plot", two_runs["cam"], "--labels", "a", "b", "--output", output)
    one_line_error(code, err, "--labels", "2 labels for 1 files")
    code, _, err = run(capsys, "results", "plot", two_runs["cam"], "--output", tmp_path / "fig.jpg")
    one_line_error(code, err, "fig.jpg", ".png")
    with pytest.raises(SystemExit) as refused:  # an option refused by argparse, as one line too
        main(["results", "plot", str(two_runs["cam"]), "--curve", "MaxBoxAcc", "--output", str(output)])
    one_line_error(refused.value.code, capsys.readouterr().err, "--curve", "BoxAccV2")
    code, _, err = run(capsys, "results", "plot", tmp_path / "missing.json", "--output", output)
    one_line_error(code, err, "missing.json", "not found")
    assert not output.exists()


def test_plot_checks_the_output_before_reading(tmp_path, capsys, two_runs):
    blocker = tmp_path / "file"
    blocker.write_text("")
    code, _, err = run(capsys, "results", "plot", tmp_path / "missing.json", "--output", blocker / "fig.png")
    one_line_error(code, err, str(blocker / "fig.png"))
    assert "missing.json" not in err  # refused before any input was read


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
