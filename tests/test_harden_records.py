"""Record store and result tables (issue 14): one record per (run, evaluation, split, policy),
no metric dropped while counted, datasets never averaged together, the registry's names
in records, a registry without duplicates or conflicts, and one-line errors for bad
options and bad stores. Everything goes through ``hideseek.cli.main``."""

import json
import math
from types import SimpleNamespace

import pytest

from hideseek.action.choices import PROTOCOLS
from hideseek.cli import main
from hideseek.results.records import append_record, make_record, read_records

TINY_ACTION = ["--synthetic-train", "8", "--synthetic-test", "4", "--epochs", "1", "--batch-size", "8",
               "--device", "cpu", "--no-progress"]
ACTION_TABLE = ["--where", "split=test", "policy=thumos14", "--metrics", "mAP@0.1", "mAP@0.2"]


def _table(capsys, *args) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["results", "table", *args])
    out, err = capsys.readouterr()
    return code, out, err


def _write(path, *records):
    for record in records:
        append_record(path, record)


def _rec(run, value, *, seed=0, dataset="CUB", split="test", policy="oracle", augmentation="none", metric="MaxBoxAccV2",
         **config):
    return make_record(task="loc", dataset=dataset, split=split, run=run, seed=seed, metrics={metric: value},
                       config={"augmentation": augmentation, "backbone": "resnet50", "seed": seed, **config},
                       policy={"name": policy})


# --------------------------------------------------------------------------- case 1: one record per key


@pytest.fixture(scope="module")
def action_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("records-run")
    assert main(["action", "train", *TINY_ACTION, "--output", str(root / "run"), "--records",
                 str(root / "records.jsonl")]) == 0
    return root


def test_evaluating_a_checkpoint_replaces_its_training_records(action_run, tmp_path, capsys):
    store = tmp_path / "records.jsonl"
    store.write_bytes((action_run / "records.jsonl").read_bytes())
    code, before, _ = _table(capsys, "--records", str(store), *ACTION_TABLE)
    assert code == 0 and before.splitlines()[-1].endswith("| 1 |")
    assert main(["action", "evaluate", "--checkpoint", str(action_run / "run" / "last.pt"), "--records", str(store),
                 "--output-dir", str(tmp_path / "eval"), "--no-progress"]) == 0
    # append-only: the training records stay in the file (one per protocol, twice)
    assert len(read_records(store)) == 2 * len(PROTOCOLS)
    code, after, _ = _table(capsys, "--records", str(store), *ACTION_TABLE)
    assert code == 0 and after == before  # one run, same mean, no std from counting it twice
    assert "±" not in after


def test_an_evaluation_killed_half_way_and_run_again_counts_once(action_run, tmp_path, capsys):
    store = tmp_path / "records.jsonl"
    lines = (action_run / "records.jsonl").read_text().splitlines()
    store.write_text(lines[0] + "\n")  # killed after the first protocol's record
    assert main(["action", "evaluate", "--checkpoint", str(action_run / "run" / "last.pt"), "--records", str(store),
                 "--output-dir", str(tmp_path / "eval"), "--no-progress"]) == 0
    code, out, _ = _table(capsys, "--records", str(store), "--where", "split=test", "policy=activitynet",
                          "--metrics", "mAP@0.1")
    assert code == 0 and out.splitlines()[-1].endswith("| 1 |") and "±" not in out
    assert len({r["run_id"] for r in read_records(store)}) == 1


def test_two_runs_in_one_folder_are_two_runs_and_a_rerun_is_not(tmp_path, capsys):
    store, folder = tmp_path / "records.jsonl", tmp_path / "run"
    a = _rec("run", 60.0, seed=0)
    rerun = _rec("run", 61.0, seed=0)  # the same run trained again (a demo run again into its folder)
    other = _rec("run", 64.0, seed=1)  # another seed written under the same folder name
    assert a["run_id"] == rerun["run_id"] != other["run_id"]
    _write(store, a, rerun, other)
    code, out, _ = _table(capsys, "--records", str(store))
    assert code == 0
    assert "| none | 62.5 ± 2.1 | 2 |" in out  # 61 and 64: the rerun replaced 60
    del folder


# --------------------------------------------------------------------------- case 2: no metric dropped while counted


@pytest.mark.parametrize("bad, kind", [("n/a", "a string"), (None, "null"), (True, "a boolean"), ({"50": 1.0}, "an object")])
def test_a_non_numeric_metric_is_refused_naming_its_record(tmp_path, capsys, bad, kind):
    store = tmp_path / "r.jsonl"
    _write(store, _rec("a", 60.0), _rec("b", bad, seed=1))
    code, out, err = _table(capsys, "--records", str(store), "--metrics", "MaxBoxAccV2")
    assert code == 2 and out == ""
    assert err.startswith(f"error: {store}:2: metric 'MaxBoxAccV2' is {kind}") and len(err.splitlines()) == 1


def test_a_nan_metric_makes_its_cell_nan_never_the_mean_of_the_others(tmp_path, capsys):
    store = tmp_path / "r.jsonl"
    _write(store, _rec("a", 60.0), _rec("b", float("nan"), seed=1), _rec("c", 62.0, augmentation="has"))
    code, out, _ = _table(capsys, "--records", str(store))
    assert code == 0
    assert "| none | NaN | 2 |" in out and "| has | 62.0 | 1 |" in out
    code, out, _ = _table(capsys, "--records", str(store), "--format", "csv")
    none = next(line for line in out.splitlines() if line.startswith("none,"))
    assert math.isnan(float(none.split(",")[1]))


# --------------------------------------------------------------------------- case 3: datasets kept apart


def test_records_of_different_datasets_are_never_averaged(tmp_path, capsys):
    store = tmp_path / "r.jsonl"
    _write(store, _rec("a", 60.0, dataset="CUB"), _rec("b", 80.0, dataset="synthetic"))
    code, out, _ = _table(capsys, "--records", str(store))
    assert code == 0
    assert "| dataset / augmentation |" in out
    assert "| CUB / none | 60.0 | 1 |" in out and "| synthetic / none | 80.0 | 1 |" in out
    code, out, _ = _table(capsys, "--records", str(store), "--where", "dataset=CUB", "split=test")
    assert code == 0 and "| none | 60.0 | 1 |" in out


def test_two_policies_of_one_run_are_rows_not_one_mean(tmp_path, capsys):
    store = tmp_path / "r.jsonl"
    _write(store, _rec("a", 60.0), _rec("a", 50.0, policy="calibrated"))
    code, out, _ = _table(capsys, "--records", str(store), "--where", "split=test")
    assert code == 0 and "| oracle / none | 60.0 | 1 |" in out and "| calibrated / none | 50.0 | 1 |" in out


def test_two_evaluations_of_one_run_in_one_cell_are_refused(tmp_path, capsys):
    store = tmp_path / "r.jsonl"
    _write(store, _rec("a", 60.0, cam_curve_interval=0.01), _rec("a", 61.0, cam_curve_interval=0.001))
    code, _, err = _table(capsys, "--records", str(store))
    assert code == 2 and f"{store}:1 and {store}:2: two results of run 'a' in one cell" in err


# --------------------------------------------------------------------------- case 4: the registry's names


def _wsol_config(**overrides):
    from hideseek.localization.train import LocConfig

    values = dict(dataset="wsol", data_root="/data/dataset/CUB", metadata_root="/data/metadata/CUB",
                  backbone="wsol_resnet50", wsol_method="has", device="cpu")
    values.update(overrides)
    return LocConfig(**values)


def test_a_record_of_a_wsol_run_on_cub_matches_its_published_row(tmp_path, capsys):
    """The record `loc train --dataset wsol --metadata-root metadata/CUB` writes (write_record, as
    the WSOL loaders' config gives it) is put beside the main table's CUB ResNet50 HaS cell."""
    from hideseek.engine.lifecycle import write_record

    store = tmp_path / "r.jsonl"
    ctx = SimpleNamespace(is_main=True, device="cpu")
    write_record("loc", _wsol_config(), run="cub-resnet50-has", split="test", metrics={"MaxBoxAccV2": 65.0},
                 policy={"name": "oracle"}, ctx=ctx, wall_time=1.0, records=store)
    (record,) = read_records(store)
    assert (record["dataset"], record["backbone"], record["method"]) == ("CUB", "ResNet50", "HaS")
    code, out, err = _table(capsys, "--records", str(store), "--published")
    assert code == 0, err
    row = next(line for line in out.splitlines() if line.startswith("| CUB test ResNet50 HaS MaxBoxAccV2 |"))
    assert "| 64.7 |" in row and "| 0.3 |" in row and "| yes |" in row


def test_legacy_records_are_read_with_the_registrys_names(tmp_path, capsys):
    store = tmp_path / "r.jsonl"
    legacy = {"run": "old", "task": "loc", "dataset": "wsol", "split": "test", "metrics": {"MaxBoxAccV2": 52.0},
              "policy": {"name": "oracle"}, "seed": 0, "config": _wsol_config(backbone="wsol_inception_v3").to_dict()}
    store.write_text(json.dumps(legacy) + "\n")
    code, out, err = _table(capsys, "--records", str(store), "--published")
    assert code == 0, err
    assert "| CUB test InceptionV3 HaS MaxBoxAccV2 | 52.0 | 53.4 |" in out
    code, out, _ = _table(capsys, "--records", str(store), "--rows", "dataset")
    assert "| CUB | 52.0 | 1 |" in out


# --------------------------------------------------------------------------- case 5: registry duplicates and conflicts


HEADER = "task,dataset,split,backbone,method,metric,value,source,verified,note\n"


def test_the_shipped_registry_has_one_value_per_cell(tmp_path, capsys):
    from hideseek.results.report import load_published

    published = load_published()  # the loader refuses duplicates and conflicts
    has = published[(published["method"] == "HaS") & (published["metric"] == "mAP@0.1")]
    assert has["value"].tolist() == [36.44]
    alexnet = published[(published["backbone"] == "AlexNet-GAP") & (published["metric"] == "Top-1 Cls")]
    assert alexnet["value"].tolist() == [60.23]
    store = tmp_path / "r.jsonl"
    _write(store, _rec("a", 64.0, augmentation="has"))
    assert _table(capsys, "--records", str(store), "--published")[0] == 0


@pytest.mark.parametrize("second, message", [
    ("action,THUMOS14,test,C3D,HaS,mAP@0.1,36.4,table,true,\n", "p.csv:3: THUMOS14 test C3D HaS mAP@0.1 = 36.4 "
                                                                "conflicts with line 2 (36.44)"),
    ("action,THUMOS14,test,C3D,HaS,mAP@0.1,36.44,table,true,\n", "p.csv:3: duplicate of line 2"),
])
def test_a_registry_with_a_duplicate_or_a_conflict_is_refused(tmp_path, capsys, second, message):
    registry = tmp_path / "p.csv"
    registry.write_text(HEADER + "action,THUMOS14,test,C3D,HaS,mAP@0.1,36.44,README,true,\n" + second)
    store = tmp_path / "r.jsonl"
    _write(store, _rec("a", 64.0))
    code, out, err = _table(capsys, "--records", str(store), "--published", "--registry", str(registry))
    assert code == 2 and out == "" and message in err and len(err.splitlines()) == 1


# --------------------------------------------------------------------------- case 6: one line, exit 2


@pytest.mark.parametrize("args, message", [
    (["--digits", "-1"], "--digits: expected a whole number of decimals >= 0, got -1"),
    (["--digits", "two"], "--digits: expected a whole number of decimals >= 0, got 'two'"),
    (["--where", "split"], "--where: expected FIELD=VALUE (e.g. split=test), got 'split'"),
])
def test_bad_option_values_are_one_line(tmp_path, capsys, args, message):
    store = tmp_path / "r.jsonl"
    _write(store, _rec("a", 60.0))
    with pytest.raises(SystemExit) as exit_:
        main(["results", "table", "--records", str(store), *args])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


@pytest.mark.parametrize("args, message", [
    (["--rows", "colour"], "unknown field 'colour'"),
    (["--cols", "dataset"], "--cols dataset puts one metric in each cell: name exactly one with --metrics"),
    (["--rows", "split", "--cols", "split"], "--rows and --cols are both 'split'"),
    (["--where", "colour=red"], "cannot filter on 'colour'"),
    (["--registry", "x.csv"], "--registry is the published-number registry of --published"),
])
def test_bad_option_combinations_are_one_line(tmp_path, capsys, args, message):
    store = tmp_path / "r.jsonl"
    _write(store, _rec("a", 60.0))
    code, out, err = _table(capsys, "--records", str(store), *args)
    assert code == 2 and out == "" and message in err and len(err.splitlines()) == 1


@pytest.mark.parametrize("line, message", [
    ("[1, 2]", ":1: expected a JSON object (one record per line), found a list"),
    ('"text"', ":1: expected a JSON object (one record per line), found a string"),
    ('{"run": "a", "metrics": [60.0]}', ":1: field 'metrics' must be a JSON object"),
    ('{"run": "a", "metrics": {}, "config": "resnet50"}', ":1: field 'config' must be a JSON object"),
    ('{"run": "a", "metrics": {}, "policy": ["oracle"]}', ":1: field 'policy' must be a JSON object"),
    ('{"run": "a", "metrics": {"x": 1}', ":1: not a JSON record"),
])
def test_a_store_line_of_the_wrong_type_is_one_line(tmp_path, capsys, line, message):
    store = tmp_path / "r.jsonl"
    store.write_text(line + "\n")
    code, out, err = _table(capsys, "--records", str(store))
    assert code == 2 and out == "" and f"{store}{message}" in err and len(err.splitlines()) == 1


def test_store_encodings_and_kinds(tmp_path, capsys):
    store = tmp_path / "r.jsonl"
    _write(store, _rec("a", 60.0))
    store.write_bytes(b"\xef\xbb\xbf" + store.read_bytes())  # a byte-order mark is accepted
    code, out, _ = _table(capsys, "--records", str(store))
    assert code == 0 and "| none | 60.0 | 1 |" in out
    store.write_bytes(store.read_bytes() + b'{"run": "\xff"}\n')
    code, _, err = _table(capsys, "--records", str(store))
    assert code == 2 and f"{store}:2: expected UTF-8 text" in err
    code, _, err = _table(capsys, "--records", str(tmp_path))
    assert code == 2 and "expected a record store (JSON lines), found a folder" in err


def test_an_unwritable_output_is_refused_before_anything_is_read(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    code, out, err = _table(capsys, "--records", str(tmp_path / "missing.jsonl"), "--output",
                            str(blocker / "t.md"))
    assert code == 2 and out == "" and f"{blocker / 't.md'}: cannot write --output" in err


def test_an_unwritable_record_store_is_refused_before_training(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    capsys.readouterr()
    code = main(["action", "train", *TINY_ACTION, "--output", str(tmp_path / "run"), "--records",
                 str(blocker / "records.jsonl")])
    err = capsys.readouterr().err
    assert code == 2 and f"{blocker / 'records.jsonl'}: cannot write record store" in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run" / "last.pt").exists()  # refused before any training


def test_an_unwritable_record_store_is_refused_before_evaluating(action_run, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    capsys.readouterr()
    code = main(["action", "evaluate", "--checkpoint", str(action_run / "run" / "last.pt"), "--records",
                 str(blocker / "records.jsonl"), "--output-dir", str(tmp_path / "eval"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "cannot write record store" in err and not (tmp_path / "eval").exists()
