"""The comparison loop's worker processes, the batch normalisation and the decoded-image cache.

``run_comparison(workers=2)`` must give the rows, order and records of ``workers=1``, with
each worker's config at one torch thread; the batch normalisation must give each value
of the per-sample pipeline; a caching dataset must serve the pixels it would read.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace

import numpy as np
import pytest
import torch

from hideseek.results.compare import ComparePlan, machine_facts, run_comparison
from hideseek.results.records import append_record


@dataclass(frozen=True)
class FakeConfig:
    augmentation: str = "none"
    aug_params: dict | None = None
    seed: int = 0
    threads: int | None = None


def fake_train(config: FakeConfig, folder, *, records, progress, run):
    """A picklable stand-in for a task's train(): a number fixed by the config, one record,
    and where it ran (process, torch threads it was given)."""
    score = 10.0 * config.seed + (5.0 if config.augmentation == "has" else 0.0)
    append_record(records, {"run": run, "score": score})
    return {"results": {"score": score}, "train_seconds": 0.0, "checkpoint": str(folder),
            "pid": os.getpid(), "threads": config.threads}


def fake_rows(label, seed, config, out):
    return [{"method": label, "seed": seed, "score": out["results"]["score"], "threads": out["threads"],
             "pid": out["pid"]}]


PLAN = ComparePlan(base=FakeConfig(), models={"CAM": ("none", {}), "HaS": ("has", {"p": 1})}, seeds=(0, 1, 2))


def test_workers_give_the_rows_of_one_process(tmp_path):
    one = run_comparison(replace(PLAN, workers=1), fake_train, tmp_path / "one", rows=fake_rows, progress=False)
    two = run_comparison(PLAN, fake_train, tmp_path / "two", rows=fake_rows, progress=False, workers=2, threads=1)
    columns = ["method", "seed", "score"]
    assert one.rows[columns].equals(two.rows[columns])  # same rows, same (seed, label) order
    assert list(one.rows["score"]) == [0.0, 5.0, 10.0, 15.0, 20.0, 25.0]
    assert set(one.rows["pid"]) == {os.getpid()} and os.getpid() not in set(two.rows["pid"])
    assert list(two.rows["threads"]) == [1] * 6 and list(one.rows["threads"]) == [None] * 6
    for comparison in (one, two):
        lines = [json.loads(line) for line in comparison.records.read_text().splitlines()]
        assert sorted(r["score"] for r in lines) == [0.0, 5.0, 10.0, 15.0, 20.0, 25.0]
    table = two.table(["score"])
    assert list(table.index if "method" not in table else table["method"]) == ["CAM", "HaS"]


def test_worker_count_and_machine_facts():
    assert replace(PLAN, workers=1).worker_count() == 1
    assert replace(PLAN, workers=64).worker_count() == PLAN.num_runs() == 6
    assert PLAN.worker_count() == max(1, min(os.cpu_count() or 1, 6))
    facts = machine_facts(replace(PLAN, workers=2), (0.5, 0.5, 0.5))
    assert "2 run(s) at a time" in facts and "load average 0.50 before" in facts


def test_batch_normalisation_equals_the_per_sample_pipeline():
    from torchvision.transforms import v2

    from hideseek.cam.recipe import batch_images, normalize_batch

    mean, std = (0.41, 0.52, 0.33), (0.21, 0.19, 0.27)
    images = torch.randint(0, 256, (5, 3, 17, 13), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    per_sample = v2.Compose([v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)])
    expected = torch.stack([per_sample(image) for image in images])
    assert torch.equal(normalize_batch(images, mean, std), expected)  # the same float32 operations
    batch = batch_images({"image": images}, mean, std)
    assert torch.equal(batch, expected) and batch.is_contiguous(memory_format=torch.channels_last)
    assert batch_images({"image": expected}, None, None) is expected  # already normalised: untouched
    with pytest.raises(ValueError, match="mean and std"):
        batch_images({"image": images}, None, None)


def test_cached_dataset_serves_the_decoded_pixels(tmp_path):
    from hideseek.localization.data.dataset import SyntheticWSOL
    from hideseek.localization.data.synthetic import SyntheticConfig

    bench = SyntheticWSOL(SyntheticConfig(num_classes=2, image_size=32, train=6, val=2, test=2),
                          cache_dir=tmp_path, progress=False, workers=1)
    plain, cached = bench.open("train"), bench.open("train", cache=True)
    for _ in range(2):  # first pass decodes, second serves the kept images
        for i in range(len(plain)):
            assert np.array_equal(np.asarray(plain[i]["image"]), np.asarray(cached[i]["image"]))
    assert len(cached._decoded) == len(plain)
