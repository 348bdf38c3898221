"""Published-number registry and ``hideseek results table``."""

import pytest

from hideseek.cli import main
from hideseek.results.records import append_record, make_record, read_records
from hideseek.results.report import load_published, published_comparison, records_frame, summary_table


def test_registry_rows_are_complete():
    published = load_published()
    assert len(published) > 50
    assert (published["source"] != "").all()
    assert published["verified"].dtype == bool
    wsol = published[(published["dataset"] == "CUB") & (published["method"] == "HaS") & (published["backbone"] == "ResNet50")]
    assert wsol["value"].tolist() == [64.7]
    # the third-party HaS-paper rows stay unverified until someone checks the paper's table
    assert not published[published["source"].str.contains("third-party")]["verified"].any()


def test_registry_bad_value_names_the_line(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("task,dataset,split,backbone,method,metric,value,source,verified,note\n"
                    "loc,CUB,test,VGG16,HaS,MaxBoxAccV2,sixty,src,true,\n")
    with pytest.raises(ValueError, match=r"p.csv:2: value 'sixty' is not a number"):
        load_published(path)


def _records(path, runs):
    for run, aug, seed, value in runs:
        append_record(path, make_record(task="loc", dataset="CUB", split="test", run=run, seed=seed,
                                        metrics={"MaxBoxAccV2": value, "GT-known Loc": value + 10},
                                        config={"augmentation": aug, "backbone": "resnet50", "pool": "avg"},
                                        policy={"name": "oracle"}))


def test_mean_std_over_seeds_and_published_difference(tmp_path):
    path = tmp_path / "r.jsonl"
    _records(path, [("a", "none", 0, 62.0), ("b", "none", 1, 64.0), ("c", "has", 0, 66.0)])
    frame = records_frame(read_records(path))
    table = summary_table(frame, where={"split": "test"})
    assert table.loc["none", "MaxBoxAccV2"] == (63.0, pytest.approx(1.4142135623730951))
    assert table.loc["none", "runs"] == 2 and table.loc["has", "runs"] == 1
    compared = published_comparison(frame)
    row = compared.loc["CUB test ResNet50 HaS MaxBoxAccV2"]
    assert row["published"] == 64.7 and row["diff"] == pytest.approx(66.0 - 64.7)
    assert compared.loc["CUB test ResNet50 CAM MaxBoxAccV2", "published"] == 63.0


def test_cli_formats(tmp_path, capsys):
    path = tmp_path / "r.jsonl"
    _records(path, [("a", "none", 0, 62.0), ("c", "has", 0, 66.0)])
    out = tmp_path / "t.tex"
    assert main(["results", "table", "--records", str(path), "--format", "latex", "--caption", "Cmp",
                 "--label", "tab:cmp", "--output", str(out)]) == 0
    tex = out.read_text()
    assert "\\toprule" in tex and "\\caption{Cmp}" in tex and "\\textbf{66.0}" in tex
    assert main(["results", "table", "--records", str(path), "--published"]) == 0
    assert "64.7" in capsys.readouterr().out
    assert main(["results", "table", "--records", str(path), "--metrics", "PxAP"]) == 2
    assert "metrics ['PxAP'] are in no record" in capsys.readouterr().err


def test_the_wsol_benchmark_main_table_is_whole_and_has_one_row_per_cell():
    published = load_published()
    table = published[published["source"].str.startswith("wsolevaluation main table")]
    keys = table[["dataset", "split", "backbone", "method", "metric"]].fillna("").apply(tuple, axis=1)
    assert not keys.duplicated().any(), sorted(keys[keys.duplicated()])
    methods = {"CAM", "HaS", "ACoL", "SPG", "ADL", "CutMix", "Best WSOL", "FSL baseline"}
    for method in methods:  # every dataset x network
        assert len(table[table["method"] == method]) == 9, method
    assert len(table[table["method"] == "center-box"]) == 3  # one per dataset, no network
    assert len(table) == 9 * len(methods) + 3
