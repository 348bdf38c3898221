"""Temporal detection mAP (ActivityNet protocol): the vectorised evaluator against a
pandas per-class, per-prediction loop that behaves like ActivityNet's ``eval_detection.py``
(:mod:`hideseek.bench.reference_tmap`), on 200 videos x 20 classes x 60 predictions per
video. Both rows assert the same mAP at every tIoU.

Run: ``PYTHONPATH=src python -m pytest benchmarks/bench_tmap.py --benchmark-only``
"""

from __future__ import annotations

import pytest

from hideseek.action.protocols import evaluate, load_ground_truth, load_predictions
from hideseek.bench.reference_tmap import activitynet_map_pandas
from hideseek.bench.workloads import temporal_detection_workload

GROUP = "tmap-activitynet-200x20x60"


@pytest.fixture(scope="module")
def workload():
    gt, preds = temporal_detection_workload(0, 200, 20, 60)
    return gt, preds, evaluate(gt, preds, protocol="activitynet")["mAP"]  # also compiles / loads cache


def _same(a, b):
    assert a.keys() == b.keys()
    assert max(abs(a[k] - b[k]) for k in a) <= 1e-9


@pytest.mark.benchmark(group=GROUP)
def test_pandas_reference_loop(benchmark, workload):
    gt, preds, ours = workload
    ref = benchmark.pedantic(activitynet_map_pandas, args=(gt, preds), rounds=2, iterations=1)
    _same(ref, ours)


@pytest.mark.benchmark(group=GROUP)
def test_vectorised_from_parsed_json(benchmark, workload):
    gt, preds, ours = workload
    out = benchmark(evaluate, gt, preds, protocol="activitynet")
    _same(out["mAP"], ours)


@pytest.mark.benchmark(group=GROUP)
def test_vectorised_tables_loaded(benchmark, workload):
    gt, preds, ours = workload
    g, p = load_ground_truth(gt), load_predictions(preds)
    out = benchmark(evaluate, g, p, protocol="activitynet")
    _same(out["mAP"], ours)
