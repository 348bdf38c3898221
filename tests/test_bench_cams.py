"""The bench room's "cams" group (time per image of each CAM method, as a ratio to vanilla CAM)
on tiny configs: the rows it writes, the per-channel methods' fewer images and skip, the
report table and CSV. No timing is asserted (a shared machine), only the bookkeeping."""

from __future__ import annotations

import json

import pytest
import torch

from hideseek.bench.choices import DEFAULT_GROUPS, GROUPS
from hideseek.bench.report import flat_rows, load_results, render
from hideseek.bench.suite import CAM_BENCH_METHODS, PER_CHANNEL_METHODS, _cams
from hideseek.cli import main
from hideseek.threads import torch_threads

pytestmark = pytest.mark.usefixtures("one_thread")


def test_cams_group_is_opt_in():
    assert "cams" in GROUPS and "cams" not in DEFAULT_GROUPS
    assert set(DEFAULT_GROUPS) | {"cams"} == set(GROUPS)


def test_cli_cams_group_writes_one_row_per_method_and_the_report_table(tmp_path, capsys):
    path = tmp_path / "cams-tiny.json"
    with torch_threads(1):
        assert main(["bench", "--size", "tiny", "--groups", "cams", "--output", str(path)]) == 0
    doc = json.loads(path.read_text())
    rows = doc["rows"]
    assert {r["group"] for r in rows} == {"cams"}
    assert [r["method"] for r in rows] == list(CAM_BENCH_METHODS)
    by = {r["method"]: r for r in rows}
    assert by["cam"]["ratio_to_cam"] == 1.0  # (t / n) / (t / n): exact by construction
    assert by["cam"]["skipped"] == []
    for r in rows:
        assert r["model"] == "resnet10t" and r["image_size"] == 32 and r["dtype"] == "float32"
        assert r["per_image_s"] > 0 and r["ratio_to_cam"] > 0 and r["channels"] == 512
        if r["method"] in PER_CHANNEL_METHODS:
            assert r["images"] == 1 and r["rounds"] == 1
        else:
            assert r["images"] == 2 and r["rounds"] == 2
    capsys.readouterr()
    assert main(["bench", "report", str(path)]) == 0
    text = capsys.readouterr().out
    assert "| CAM method | resnet10t (512 ch), ms / image | x cam |" in text
    assert "| `scorecam` | " in text and "(1 img x 1)" in text and "(2 img x 2)" in text
    flat = {r["name"]: r for r in flat_rows(load_results([path])[0])}
    for r in rows:  # the CSV's speed-up is the inverse of the paired ratio, not a ratio of per-call times
        assert flat[r["name"]]["speedup_vs_baseline"] == pytest.approx(1 / r["ratio_to_cam"], rel=1e-12)
    csv_text = render(load_results([path]), "csv")
    assert len(csv_text.strip().splitlines()) == 1 + len(rows)


def test_per_channel_methods_are_skipped_on_models_not_listed(tmp_path):
    cfg = {"cams": dict(models=("resnet10t",), batch=1, size=32, rounds=1, per_channel_images=1,
                        per_channel_models=())}
    with torch_threads(1):
        rows = _cams(torch.device("cpu"), cfg)
    methods = [r["method"] for r in rows]
    assert methods == [m for m in CAM_BENCH_METHODS if m not in PER_CHANNEL_METHODS]
    assert rows[0]["skipped"] == list(PER_CHANNEL_METHODS)
    doc = {"suite": "hideseek-bench", "size": "tiny", "rows": rows, "checks": {},
           "machine": {"device": "cpu", "cpu": "test", "cpu_count": 1, "torch_threads": 1, "date": "-",
                       "commit": None, "versions": {k: None for k in ("torch", "timm", "torchvision", "numpy",
                                                                      "triton")}, "gpu": None},
           "loadavg_before": None, "loadavg_after": None}
    path = tmp_path / "skip.json"
    path.write_text(json.dumps(doc))
    text = render(load_results([path]))
    assert "| `scorecam` | not run (one forward per channel per image) |  |" in text
