"""One comparison loop: training methods x seeds of one task, as a mean ± std table.

Every demo (images, segmentation, video) and any side-by-side comparison of augmentations
is the same loop: for each seed and each labelled variant of a base config, train one run
into ``<output>/runs/<name>``, append its records to ``<output>/records.jsonl``, turn its
results into table rows; then group the rows by method into mean ± std cells and write
the table as CSV, Markdown and LaTeX. The task supplies only its ``train`` function and
how a run becomes rows.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd

from hideseek.results.tables import mean_std_table, render_table

__all__ = ["ComparePlan", "Comparison", "run_comparison", "write_tables"]


@dataclass(frozen=True)
class ComparePlan:
    """What a comparison trains: the base config, ``label -> (augmentation, params)``, seeds."""

    base: Any
    models: dict = field(default_factory=dict)
    seeds: tuple[int, ...] = (0,)


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


def run_comparison(plan: ComparePlan, train: Callable[..., dict], output_dir: str | Path, *,
                   rows: Callable[[str, int, Any, dict], Sequence[Mapping]], run_prefix: str = "",
                   progress: bool = True) -> Comparison:
    """Train every (seed, label) of ``plan`` with ``train(config, folder, records=, progress=, run=)``.

    ``rows(label, seed, config, out)`` turns one run's output into table rows (each with a
    ``"method"`` and its metric columns). Runs are named ``<run_prefix><augmentation>-s<seed>``.
    """
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    records = output_dir / "records.jsonl"
    start = time.perf_counter()
    collected: list[Mapping] = []
    first: dict[str, dict] = {}
    for seed in plan.seeds:
        for label, (augmentation, params) in plan.models.items():
            config = replace(plan.base, augmentation=augmentation, aug_params=dict(params), seed=seed)
            run = f"{run_prefix}{augmentation}-s{seed}"
            out = train(config, output_dir / "runs" / run, records=records, progress=progress, run=run)
            collected.extend(rows(label, seed, config, out))
            if seed == plan.seeds[0]:
                first[label] = out
    return Comparison(pd.DataFrame(collected), first, records, start)


def write_tables(table: pd.DataFrame, output_dir: str | Path, stem: str, *, caption: str, label: str) -> dict[str, str]:
    """``<stem>.csv``, ``.md`` and ``.tex`` of ``table``; returns ``{format: path}``."""
    files = {}
    for fmt, suffix in (("csv", "csv"), ("markdown", "md"), ("latex", "tex")):
        path = Path(output_dir) / f"{stem}.{suffix}"
        path.write_text(render_table(table, fmt, caption=caption, label=label))
        files[fmt] = str(path)
    return files
