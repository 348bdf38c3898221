"""``hideseek action demo --quick``: the video room end to end on tiny data."""

import csv

from PIL import Image

from hideseek.action.protocols import PROTOCOL_RECORDS
from hideseek.cli import main
from hideseek.results.records import read_records


def test_action_demo_quick_writes_tables_figure_and_records(tmp_path, capsys):
    out = tmp_path / "demo-action"
    assert main(["action", "demo", "--quick", "--output", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out  # the handler prints run_action_demo's markdown, files and seconds
    assert "records:" in printed and "wall time:" in printed
    assert "| T-CAM (none), ActivityNet |" in printed and "| T-CAM + frame-has, THUMOS14 kit |" in printed
    with open(out / "demo-action.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["method"] for r in rows] == [
        f"{m}, {r.title}" for r in PROTOCOL_RECORDS.values() for m in ("T-CAM (none)", "T-CAM + frame-has")]
    for row in rows:
        for t in range(1, 8):
            assert 0.0 <= float(row[f"mAP@0.{t}"]) <= 100.0
        assert float(row["mAP avg 0.1:0.7"]) <= float(row["mAP@0.1"]) + 1e-9  # mAP falls with the tIoU
    assert "\\toprule" in (out / "demo-action.tex").read_text()
    assert (out / "demo-action.md").read_text().startswith("| method |")
    with Image.open(out / "demo-action.png") as figure:
        assert figure.size[0] > 300 and figure.size[1] > 50
    records = read_records(out / "records.jsonl")
    assert len(records) == 2 * len(PROTOCOL_RECORDS)  # two runs, one record per protocol
    assert {r["config"]["augmentation"] for r in records} == {"none", "frame-has"}

