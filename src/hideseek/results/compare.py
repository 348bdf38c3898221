"""One comparison loop: training methods x seeds of one task, as a mean ± std table.

Every demo (images, segmentation, video) and any side-by-side comparison of augmentations
is the same loop: for each seed and each labelled variant of a base config, train one run
into ``<output>/runs/<name>``, append its records to ``<output>/records.jsonl``, turn its
results into table rows; then group the rows by method into mean ± std cells and write
the table as CSV, Markdown and LaTeX. The task supplies only its ``train`` function and
how a run becomes rows.

The runs are independent, so with ``workers > 1`` they go to that many worker processes,
each with ``threads`` torch threads (default: the CPU count split evenly). On a small
shared CPU this is the fastest plan: a training step of a small network does not keep two
threads busy (synchronisation and memory traffic), but two single-thread processes do,
and a busy neighbour slows one thread far less than a thread team that waits for its
slowest member. Rows, tables and records are the same whatever the plan, up to the
floating-point order of a multi-threaded reduction.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd

from hideseek.results.tables import mean_std_table, render_table

__all__ = ["ComparePlan", "Comparison", "machine_facts", "run_comparison", "write_tables"]


@dataclass(frozen=True)
class ComparePlan:
    """What a comparison trains: the base config, ``label -> (augmentation, params)``, seeds,
    and how many runs train at once (``workers``; ``None``: one per CPU core, at most one
    per run)."""

    base: Any
    models: dict = field(default_factory=dict)
    seeds: tuple[int, ...] = (0,)
    workers: int | None = None

    def num_runs(self) -> int:
        return len(self.seeds) * len(self.models)

    def worker_count(self) -> int:
        wanted = self.workers if self.workers is not None else (os.cpu_count() or 1)
        return max(1, min(int(wanted), self.num_runs()))


@dataclass
class Comparison:
    """The runs of a comparison: one row per (run, row), the first seed's run of each label."""

    rows: pd.DataFrame
    first: dict[str, dict]  # label -> train() output of the first seed
    records: Path
    start: float  # perf_counter() when the comparison began

    def table(self, metrics: Sequence[str], by: str = "method") -> pd.DataFrame:
        return mean_std_table(self.rows, by, list(metrics))

    def seconds(self) -> float:
        return time.perf_counter() - self.start


def _train_in_worker(train: Callable[..., dict], config: Any, folder: Path, records: Path, run: str) -> dict:
    """One run in a worker process: no progress bars (they would interleave); the
    trainer's per-epoch log lines go to stderr prefixed with the run's name."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"  {run}: %(message)s"))
    logger = logging.getLogger("hideseek")
    logger.addHandler(handler)
    try:
        return train(config, folder, records=records, progress=False, run=run)
    finally:
        logger.removeHandler(handler)  # the worker's next run names itself


def _say(progress: bool, message: str) -> None:
    if progress:
        print(message, file=sys.stderr, flush=True)


def run_comparison(plan: ComparePlan, train: Callable[..., dict], output_dir: str | Path, *,
                   rows: Callable[[str, int, Any, dict], Sequence[Mapping]], run_prefix: str = "",
                   progress: bool = True, workers: int | None = None, threads: int | None = None) -> Comparison:
    """Train every (seed, label) of ``plan`` with ``train(config, folder, records=, progress=, run=)``.

    ``rows(label, seed, config, out)`` turns one run's output into table rows (each with a
    ``"method"`` and its metric columns). Runs are named ``<run_prefix><augmentation>-s<seed>``.
    ``workers > 1`` (default: the plan's :meth:`~ComparePlan.worker_count`) trains that
    many runs at once in worker processes (``train`` must be picklable, e.g. a module-level
    function), each with ``threads`` torch threads (default ``cpu_count // workers``) when
    the config has a ``threads`` field left at ``None``.
    """
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    records = output_dir / "records.jsonl"
    start = time.perf_counter()
    jobs = []
    for seed in plan.seeds:
        for label, (augmentation, params) in plan.models.items():
            config = replace(plan.base, augmentation=augmentation, aug_params=dict(params), seed=seed)
            jobs.append((seed, label, config, f"{run_prefix}{augmentation}-s{seed}"))
    workers = max(1, min(int(plan.worker_count() if workers is None else workers), len(jobs)))
    if workers > 1 and getattr(plan.base, "threads", "absent") is None:
        per_worker = threads or max(1, (os.cpu_count() or 1) // workers)
        jobs = [(seed, label, replace(config, threads=per_worker), run) for seed, label, config, run in jobs]
    outputs: dict[int, dict] = {}
    if workers == 1:
        for index, (_, label, config, run) in enumerate(jobs):
            _say(progress, f"run {index + 1}/{len(jobs)}: {label}, {run}")
            outputs[index] = train(config, output_dir / "runs" / run, records=records, progress=progress, run=run)
    else:
        _say(progress, f"{len(jobs)} runs, {workers} at a time in worker processes "
                       f"({getattr(jobs[0][2], 'threads', None) or 'default'} torch thread(s) each)")
        context = multiprocessing.get_context("spawn")  # a fresh interpreter: no inherited thread pools
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            running = {}
            for index, (_, label, config, run) in enumerate(jobs):
                future = pool.submit(_train_in_worker, train, config, output_dir / "runs" / run, records, run)
                running[future] = (index, label, run, time.perf_counter())
            while running:
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    index, label, run, _ = running.pop(future)
                    outputs[index] = future.result()
                    _say(progress, f"run {len(outputs)}/{len(jobs)} done: {label}, {run} "
                                   f"(trained in {outputs[index]['train_seconds']:.0f} s; "
                                   f"{time.perf_counter() - start:.0f} s since the start)")
    collected: list[Mapping] = []
    first: dict[str, dict] = {}
    for index, (seed, label, config, _) in enumerate(jobs):
        collected.extend(rows(label, seed, config, outputs[index]))
        if seed == plan.seeds[0]:
            first[label] = outputs[index]
    return Comparison(pd.DataFrame(collected), first, records, start)


def machine_facts(plan: ComparePlan, load_before: tuple[float, float, float] | None = None) -> str:
    """One line on what a comparison ran on: CPUs, the worker/thread plan, the training
    dtype, the load average (before and after). Imports torch (the caller trained with it)."""
    import torch

    from hideseek.engine import cpu_has_native_bf16

    workers = plan.worker_count()
    threads = getattr(plan.base, "threads", None) or max(1, (os.cpu_count() or 1) // workers)
    amp = getattr(plan.base, "amp", False)
    if amp and cpu_has_native_bf16():
        dtype = "bf16 autocast (native bf16 CPU)"
    elif amp:
        dtype = "fp32 (no native bf16 on this CPU)"
    else:
        dtype = "fp32"
    load = os.getloadavg()
    before = f"{load_before[0]:.2f} before, " if load_before else ""
    return (f"machine: {os.cpu_count()} CPU(s), {workers} run(s) at a time x {threads} torch thread(s), "
            f"{dtype}, torch {torch.__version__}; load average {before}{load[0]:.2f} after")


def write_tables(table: pd.DataFrame, output_dir: str | Path, stem: str, *, caption: str, label: str) -> dict[str, str]:
    """``<stem>.csv``, ``.md`` and ``.tex`` of ``table``; returns ``{format: path}``."""
    files = {}
    for fmt, suffix in (("csv", "csv"), ("markdown", "md"), ("latex", "tex")):
        path = Path(output_dir) / f"{stem}.{suffix}"
        path.write_text(render_table(table, fmt, caption=caption, label=label))
        files[fmt] = str(path)
    return files
