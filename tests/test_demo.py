"""``hideseek demo --quick``: the main job, every room end to end on tiny data."""

import csv

from PIL import Image

from hideseek.action.choices import PROTOCOLS
from hideseek.cli import main


def test_demo_quick_writes_tables_figure_and_records(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--output", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "| CAM (none) |" in printed and "| HaS |" in printed
    with open(out / "demo.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["method"] for r in rows] == ["CAM (none)", "HaS"]
    for row in rows:
        for key in ("Top-1 Cls", "Top-1 Loc", "GT-known Loc", "MaxBoxAccV2", "PxAP"):
            assert 0.0 <= float(row[key]) <= 100.0
    assert "\\toprule" in (out / "demo.tex").read_text()
    assert (out / "demo.md").read_text().startswith("| method |")
    with Image.open(out / "demo.png") as figure:
        assert figure.size[0] > 100 and figure.size[1] > 100
    assert len((out / "records.jsonl").read_text().splitlines()) == 2 * 3  # val, test, test-calibrated per run
    # the segmentation and video rooms' tables follow, their files beside the image demo's folder
    assert "== seg:" in printed and printed.index("== seg:") < printed.index("== action:")
    with open(tmp_path / "demo-seg" / "demo-seg.csv") as handle:
        assert [r["method"] for r in csv.DictReader(handle)] == ["CAM (none)", "HaS"]
    assert "== action:" in printed and "| T-CAM + frame-has, ActivityNet |" in printed
    with open(tmp_path / "demo-action" / "demo-action.csv") as handle:
        assert len(list(csv.DictReader(handle))) == 2 * len(PROTOCOLS)  # two methods x every protocol
    assert "total wall time:" in printed


def test_demo_runs_only_the_rooms_asked_for(tmp_path, capsys):
    assert main(["demo", "--quick", "--rooms", "action", "--output", str(tmp_path / "d"), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "== action:" in printed and "== image:" not in printed and "total wall time" not in printed
    assert (tmp_path / "d-action" / "demo-action.md").is_file() and not (tmp_path / "d").exists()
