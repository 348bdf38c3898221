"""The bench room end to end on tiny workloads: suite -> JSON -> report, the pandas
temporal-mAP reference against the vectorised evaluator, and the timing helpers."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from hideseek.action.protocols import evaluate
from hideseek.bench.reference_tmap import activitynet_map_pandas
from hideseek.bench.report import load_results, render, targets
from hideseek.bench.timing import loadavg, machine_info, measure
from hideseek.bench.workloads import temporal_detection_workload
from hideseek.cli import main
from hideseek.threads import torch_threads

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tiny_result(tmp_path_factory):
    # one thread for the suite, restored after it: a module fixture that set it and left it
    # changed the weights every later test in the process trained (issue 14)
    path = tmp_path_factory.mktemp("bench") / "cpu-tiny.json"
    with torch_threads(1):
        assert main(["bench", "--device", "cpu", "--size", "tiny", "--output", str(path)]) == 0
    return path


def test_suite_writes_every_group_with_machine_info_and_checks(tiny_result):
    doc = json.loads(tiny_result.read_text())
    assert doc["suite"] == "hideseek-bench" and doc["size"] == "tiny"
    groups = {r["group"] for r in doc["rows"]}
    assert groups == {"images", "frames", "evaluators", "training", "loop"}
    names = {r["name"] for r in doc["rows"]}
    for needed in ("clone", "fill", "hide", "hide_inplace", "loop_g16", "timm_erasing", "tv_erasing",
                   "fused", "fused_bf16", "hide_frames_clips", "hide_frames_features", "boxes_compiled",
                   "tmap_vectorised", "tmap_pandas", "train_plain", "train_hide"):
        assert needed in names
    m = doc["machine"]
    for key in ("date", "commit", "cpu", "cpu_count", "torch_threads", "versions"):
        assert key in m
    assert m["versions"]["torch"] == torch.__version__ and m["gpu"] is None
    assert len(doc["loadavg_before"]) == 3 and len(doc["loadavg_after"]) == 3
    checks = doc["checks"]
    assert checks["loop_equals_batched"] and checks["fused_equals_normalize_then_hide"]
    assert checks["tmap_identical"]
    assert checks["boxes_identical"] in (True, None)  # None only without OpenCV
    clone = next(r for r in doc["rows"] if r["name"] == "clone")
    n = 4 * 3 * 32 * 32
    assert clone["bytes"] == 2 * n * 4 and clone["gb_per_s"] == pytest.approx(clone["bytes"] / clone["median_s"] / 1e9)
    fused = next(r for r in doc["rows"] if r["name"] == "fused_bf16")
    assert fused["bytes"] == n * (1 + 2)
    inplace = next(r for r in doc["rows"] if r["name"] == "hide_inplace")
    assert inplace["bytes"] == pytest.approx(inplace["hidden_fraction"] * n * 4)
    hide = next(r for r in doc["rows"] if r["name"] == "train_hide")
    assert hide["baseline"] == "train_plain" and "overhead" in hide
    project = next(r for r in doc["rows"] if r["name"] == "loop_project")
    plain = next(r for r in doc["rows"] if r["name"] == "loop_plain")
    assert project["baseline"] == "loop_plain" and project["items"] == plain["items"] == 8
    assert project["rounds"] == plain["rounds"] == 2 and project["median_s"] > 0 and plain["median_s"] > 0
    assert np.isfinite(project["overhead"]) and project["overhead"] > -1  # a ratio of two positive times, minus 1


def test_report_markdown_and_csv(tiny_result, capsys):
    assert main(["bench", "report", str(tiny_result)]) == 0
    text = capsys.readouterr().out
    assert "| 4 x 3 x 32 x 32 | ms | images/s | GB/s | BW / clone | BW / fill | speed vs clone |" in text
    assert "#### CUDA\n\nnot measured" in text
    assert "2Ns (read + write)" in text  # the byte formula is stated
    rows = targets(load_results([tiny_result]))
    cuda = [r for r in rows if r[1] == "CUDA"]
    assert cuda and all(r[2] == "not measured" for r in cuda)
    assert all("n/a (workload 'tiny'" in r[3] for r in rows if r[1] == "CPU")
    csv_text = render(load_results([tiny_result]), "csv")
    header = csv_text.splitlines()[0].split(",")
    assert {"bw_vs_clone", "bw_vs_fill", "speed_vs_clone", "speedup_vs_baseline"} <= set(header)
    assert len(csv_text.strip().splitlines()) == 1 + len(json.loads(tiny_result.read_text())["rows"])


def test_report_names_the_bad_file(tmp_path, capsys):
    bad = tmp_path / "broken.json"
    bad.write_text('{"suite": "hideseek-bench",\n "rows": [}')
    assert main(["bench", "report", str(bad)]) == 2
    assert "broken.json:2" in capsys.readouterr().err
    other = tmp_path / "other.json"
    other.write_text("{}")
    with pytest.raises(ValueError, match="other.json: not a 'hideseek bench' result"):
        load_results([other])


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error shown when CUDA is absent")
def test_cuda_request_without_a_gpu_is_a_clear_error(capsys):
    assert main(["bench", "--device", "cuda", "--size", "tiny", "--groups", "images"]) == 2
    assert "no CUDA device" in capsys.readouterr().err


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pandas_reference_matches_vectorised_activitynet(seed):
    gt, preds = temporal_detection_workload(seed, n_videos=12, n_classes=5, preds_per_video=15)
    ref = activitynet_map_pandas(gt, preds, tiou=(0.1, 0.3, 0.5, 0.7, 0.9))
    ours = evaluate(gt, preds, protocol="activitynet", tiou=(0.1, 0.3, 0.5, 0.7, 0.9))["mAP"]
    assert ref.keys() == ours.keys()
    for k in ref:
        assert ref[k] == pytest.approx(ours[k], abs=1e-9)
    assert 0 < ours["0.5"] < 100


def test_measure_and_machine_info():
    calls = []
    t = measure(lambda: calls.append(1), "cpu", min_rounds=3, max_rounds=4, min_time=0.0, warmup=2)
    assert t["rounds"] == 3 and len(calls) == 5 and t["calls_per_round"] == 1
    assert 0 <= t["min_s"] <= t["median_s"] and t["q1_s"] <= t["q3_s"]
    slow = measure(lambda: None, "cpu", min_rounds=50, max_rounds=100, min_time=10.0, max_time=0.0)
    assert slow["rounds"] == 1  # max_time stops a slow reference after one round
    info = machine_info("cpu")
    assert info["device"] == "cpu" and info["cpu_count"] >= 1
    from hideseek.bench.report import _machine_line
    from hideseek.engine import cpu_has_native_bf16

    assert info["cpu_native_bf16"] is cpu_has_native_bf16()  # recorded: a bf16 figure depends on it
    doc = {"machine": info, "loadavg_before": None, "loadavg_after": None, "_path": "x.json", "size": "tiny"}
    assert ("no native bf16" in _machine_line(doc)) is not info["cpu_native_bf16"]
    del info["cpu_native_bf16"]  # files written before the field existed
    assert "native bf16 not recorded" in _machine_line(doc)
    avg = loadavg()
    assert avg is None or len(avg) == 3
