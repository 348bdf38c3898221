"""``hideseek loc compare-cams``: training methods x CAM methods on two tiny quick runs (none,
has) with two CAM methods; every cell is what ``loc evaluate --checkpoint --cam-method``
gives for that checkpoint and method; the table's layout; refusals in one line."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hideseek.cli import main
from hideseek.localization.compare_cams import compare_cams, render_comparison, training_method


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("compare-cams")
    for aug in ("none", "has"):
        code = main(["loc", "train", "--quick", "--epochs", "1", "--augmentation", aug, "--device", "cpu",
                     "--workers", "0", "--no-eval", "--output", str(root / aug),
                     "--records", str(root / "train.jsonl")])
        assert code == 0
    return root


def test_compare_cams_table_on_two_runs_and_two_methods(two_runs, tmp_path, capsys):
    ckpts = [str(two_runs / aug / "last.pt") for aug in ("none", "has")]
    assert [training_method(c) for c in ckpts] == ["none", "has"]
    out = tmp_path / "table.md"
    code = main(["loc", "compare-cams", "--checkpoints", *ckpts, "--cam-methods", "cam", "gradcam",
                 "--split", "test", "--device", "cpu", "--output", str(out)])
    assert code == 0
    doc = json.loads(out.with_suffix(".json").read_text())
    assert doc["cam_methods"] == ["cam", "gradcam"] and doc["split"] == "test"
    assert doc["metrics"] == ["MaxBoxAccV2", "PxAP"]
    assert [r["training_method"] for r in doc["rows"]] == ["none", "has"]
    for row in doc["rows"]:
        for method in ("cam", "gradcam"):
            cell = row["cells"][method]
            assert 0 <= cell["MaxBoxAccV2"] <= 100 and cell["policy"]["name"] == "oracle"
            assert cell["PxAP"] == cell["result"]["PxAP"] and 0 <= cell["PxAP"] <= 100
            assert cell["seconds_per_image"] > 0 and cell["num_images"] > 0
            assert "curves" not in cell["result"]
    text = out.read_text()
    assert text == render_comparison(doc)
    assert "| training method | runs | `cam` | `gradcam` |" in text
    assert "| none | 1 | " in text and "| has | 1 | " in text
    assert "(oracle)" in text and "PxAP (%) on the test split, one run per training method, threshold-free:" in text
    assert text in capsys.readouterr().out
    # a cell is the evaluate --checkpoint path's own number (same code, deterministic on CPU)
    single = tmp_path / "single.json"
    assert main(["loc", "evaluate", "--checkpoint", ckpts[1], "--cam-method", "gradcam", "--splits", "test",
                 "--device", "cpu", "--output", str(single)]) == 0
    assert json.loads(single.read_text())["test"]["MaxBoxAccV2"] == doc["rows"][1]["cells"]["gradcam"]["MaxBoxAccV2"]


def test_compare_cams_averages_runs_of_one_training_method(two_runs):
    """Two checkpoints labelled alike are one row: the mean and the sample std of their cells,
    each run's own numbers kept in the JSON; a metric the split lacks is n/a, never a number."""
    ckpts = [str(two_runs / aug / "last.pt") for aug in ("none", "has")]
    doc = compare_cams(ckpts, ["cam"], labels=["both", "both"], metrics=["MaxBoxAccV2", "GT-known Loc"],
                       warm_up=False)
    a, b = (row["cells"]["cam"] for row in doc["rows"])
    text = render_comparison(doc)
    for metric in ("MaxBoxAccV2", "GT-known Loc"):
        mean = (a[metric] + b[metric]) / 2
        std = abs(a[metric] - b[metric]) / 2 ** 0.5  # sample std (ddof 1) of two values
        assert f"| both | 2 | {mean:.2f} ± {std:.2f} (oracle) |" in text
    assert "mean ± std over 2 runs per training method" in text
    doc["rows"][1]["cells"]["cam"]["MaxBoxAccV2"] = None
    assert "| both | 2 | n/a |" in render_comparison(doc)


def test_compare_cams_refusals(two_runs, tmp_path, capsys, monkeypatch):
    ckpt = str(two_runs / "none" / "last.pt")
    with pytest.raises(ValueError, match="unknown CAM method"):
        compare_cams([ckpt], ["cam", "gradcamm"])
    with pytest.raises(ValueError, match="repeat"):
        compare_cams([ckpt], ["cam", "cam"])
    with pytest.raises(ValueError, match="1 labels for 2 checkpoints"):
        compare_cams([ckpt, str(two_runs / "has" / "last.pt")], ["cam"], labels=["a"])
    with pytest.raises(ValueError, match=f"{ckpt}: checkpoint given twice"):
        compare_cams([ckpt, ckpt], ["cam"])
    with pytest.raises(ValueError, match="metric 'PxAPP'"):
        compare_cams([ckpt], ["cam"], metrics=["PxAPP"])
    assert main(["loc", "compare-cams", "--checkpoints", str(tmp_path / "absent.pt")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "absent.pt" in err[0]
    # a damaged last checkpoint fails before the first cell is scored, labels given or not
    bad = tmp_path / "bad.pt"
    bad.write_bytes((two_runs / "has" / "last.pt").read_bytes()[:5000])
    scored = []
    monkeypatch.setattr("hideseek.localization.train.evaluate_checkpoint", lambda *a, **k: scored.append(a))
    capsys.readouterr()
    assert main(["loc", "compare-cams", "--checkpoints", ckpt, str(bad), "--labels", "a", "b",
                 "--output", str(tmp_path / "t.md")]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "bad.pt" in err[0]
    assert scored == [] and not (tmp_path / "t.md").exists()


_cell = st.fixed_dictionaries({
    "MaxBoxAccV2": st.floats(0, 100), "seconds_per_image": st.floats(1e-6, 10),
    "num_images": st.integers(1, 1000), "policy": st.just({"name": "oracle"}),
})


@settings(database=None, deadline=None, max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(methods=st.lists(st.sampled_from(["cam", "gradcam", "eigencam", "layercam"]), min_size=1, max_size=4,
                        unique=True),
       names=st.lists(st.sampled_from(["none", "has", "acol", "adl"]), min_size=1, max_size=4, unique=True),
       data=st.data())
def test_render_comparison_layout(methods, names, data):
    rows = [{"training_method": n, "checkpoint": f"{n}.pt",
             "cells": {m: data.draw(_cell) for m in methods}} for n in names]
    text = render_comparison({"split": "test", "cam_methods": methods, "metrics": ["MaxBoxAccV2"], "rows": rows})
    lines = text.splitlines()
    table = [line for line in lines if line.startswith("| ") and not line.startswith("| training")]
    assert len(table) == 2 * len(names)  # one score line and one seconds line per training method
    for row, score_line, time_line in zip(rows, table[:len(names)], table[len(names):]):
        cells = score_line.strip("| ").split(" | ")
        assert cells[:2] == [row["training_method"], "1"] and len(cells) == 2 + len(methods)
        for m, shown in zip(methods, cells[2:]):
            assert shown == f"{row['cells'][m]['MaxBoxAccV2']:.2f} (oracle)"
        times = time_line.strip("| ").split(" | ")
        assert times[2:] == [f"{row['cells'][m]['seconds_per_image']:.4f}" for m in methods]
