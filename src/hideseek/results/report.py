"""From run records to comparison tables, and the published-number registry.

Records (see :mod:`hideseek.results.records`) are flattened to a long frame, one row per
(record, metric), then pivoted: rows by a record field (augmentation by default), columns
by metric, each cell ``(mean, std)`` over the runs (seeds) it holds. Published numbers come
from ``data/published.csv`` (task, dataset, split, backbone, method, metric, value, source,
verified, note); a comparison table puts a reproduced mean beside the published value and
their difference, and says whether the published value was checked against its source.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path

import pandas as pd

__all__ = [
    "DEFAULT_METRICS",
    "load_published",
    "records_frame",
    "summary_table",
    "published_comparison",
]

DEFAULT_METRICS = ("Top-1 Cls", "Top-1 Loc", "GT-known Loc", "MaxBoxAccV2", "PxAP")
PUBLISHED_COLUMNS = ("task", "dataset", "split", "backbone", "method", "metric", "value", "source", "verified", "note")
_FIELDS = ("run", "task", "dataset", "split", "seed")
_CONFIG_FIELDS = ("augmentation", "backbone", "pool")
# how a registry augmentation name reads in published tables
_METHOD_OF_AUGMENTATION = {"none": "CAM", "has": "HaS", "has-16": "HaS", "has-32": "HaS", "has-44": "HaS",
                           "has-56": "HaS", "has-mixed": "HaS", "feature-has": "HaS (feature)",
                           "cutout": "Cutout", "random-erasing": "Random Erasing"}


def load_published(path: str | Path | None = None) -> pd.DataFrame:
    """The registry of published numbers (the packaged CSV unless ``path`` is given)."""
    if path is None:
        with resources.files("hideseek.results").joinpath("data/published.csv").open() as handle:
            frame = pd.read_csv(handle, dtype=str, keep_default_na=False)
        where = "hideseek/results/data/published.csv"
    else:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        where = str(path)
    missing = [c for c in PUBLISHED_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"{where}: missing columns {missing}; expected {list(PUBLISHED_COLUMNS)}")
    for number, (value, verified) in enumerate(zip(frame["value"], frame["verified"]), start=2):
        try:
            float(value)
        except ValueError:
            raise ValueError(f"{where}:{number}: value {value!r} is not a number") from None
        if verified not in ("true", "false"):
            raise ValueError(f"{where}:{number}: verified must be true or false, got {verified!r}")
    frame["value"] = frame["value"].astype(float)
    frame["verified"] = frame["verified"] == "true"
    return frame


def records_frame(records: Sequence[Mapping]) -> pd.DataFrame:
    """Long frame: one row per (record, numeric top-level metric)."""
    rows = []
    for record in records:
        config = record.get("config") or {}
        base = {key: record.get(key) for key in _FIELDS}
        base.update({key: config.get(key) for key in _CONFIG_FIELDS})
        base["policy"] = (record.get("policy") or {}).get("name")
        for metric, value in (record.get("metrics") or {}).items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                rows.append({**base, "metric": metric, "value": float(value)})
    return pd.DataFrame(rows, columns=[*_FIELDS, *_CONFIG_FIELDS, "policy", "metric", "value"])


def _filter(frame: pd.DataFrame, where: Mapping[str, str]) -> pd.DataFrame:
    for key, value in where.items():
        if key not in frame.columns:
            raise ValueError(f"cannot filter on {key!r}; fields: {', '.join(frame.columns)}")
        frame = frame[frame[key].astype(str) == str(value)]
    return frame


def summary_table(frame: pd.DataFrame, *, rows: str = "augmentation", cols: str = "metric",
                  metrics: Sequence[str] | None = None, where: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Pivot a long frame: each cell ``(mean, std)`` over its runs; ``runs`` counts them.

    ``where`` keeps rows whose fields equal the given values (e.g. split=test,
    policy=oracle). With ``cols="metric"`` the columns are ``metrics`` (default: the usual
    WSOL metrics that are present), in that order.
    """
    frame = _filter(frame, where or {})
    if frame.empty:
        raise ValueError("no records left to tabulate (check --records and the filters)")
    for field in (rows, cols):
        if field not in frame.columns:
            raise ValueError(f"unknown field {field!r}; fields: {', '.join(frame.columns)}")
    if cols == "metric":
        wanted = list(metrics) if metrics else [m for m in DEFAULT_METRICS if m in set(frame["metric"])]
        unknown = [m for m in wanted if m not in set(frame["metric"])]
        if unknown:
            raise ValueError(f"metrics {unknown} are in no record; present: {sorted(set(frame['metric']))}")
        frame = frame[frame["metric"].isin(wanted)]
        columns = wanted
    else:
        columns = list(dict.fromkeys(frame[cols]))
    row_labels = list(dict.fromkeys(frame[rows]))
    table = pd.DataFrame(index=pd.Index(row_labels, name=rows))
    for column in columns:
        cells = []
        for label in row_labels:
            values = frame[(frame[rows] == label) & (frame[cols] == column)]["value"]
            if values.empty:
                cells.append(float("nan"))
            else:
                cells.append((float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else float("nan")))
        table[column] = cells
    runs = frame.groupby(rows, sort=False)["run"].nunique()
    table["runs"] = [int(runs.get(label, 0)) for label in row_labels]
    return table


def _key(name) -> str:
    return re.sub(r"[^a-z0-9]", "", str(name).lower())


def published_comparison(frame: pd.DataFrame, published: pd.DataFrame | None = None, *,
                         where: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Reproduced mean ± std beside the published value for every (dataset, split, backbone,
    method, metric) the records and the registry share; ``diff`` = reproduced - published."""
    published = load_published() if published is None else published
    frame = _filter(frame, where or {}).copy()
    frame["method"] = frame["augmentation"].map(lambda a: _METHOD_OF_AUGMENTATION.get(a, a))
    rows = []
    for (dataset, split, backbone, method, metric), group in frame.groupby(
            ["dataset", "split", "backbone", "method", "metric"], sort=False):
        match = published[(published["dataset"].map(_key) == _key(dataset)) & (published["split"] == split)
                          & (published["backbone"].map(_key) == _key(backbone))
                          & (published["method"] == method) & (published["metric"] == metric)]
        for _, pub in match.iterrows():
            mean = float(group["value"].mean())
            std = float(group["value"].std(ddof=1)) if len(group) > 1 else float("nan")
            rows.append({"dataset": dataset, "split": split, "backbone": backbone, "method": method, "metric": metric,
                         "reproduced": (mean, std), "published": pub["value"], "diff": mean - pub["value"],
                         "runs": int(group["run"].nunique()), "verified": "yes" if pub["verified"] else "no",
                         "source": pub["source"]})
    if not rows:
        raise ValueError("no record matches a published row (dataset, split, backbone, method, metric)")
    table = pd.DataFrame(rows)
    table.index = pd.Index([f"{r['dataset']} {r['split']} {r['backbone']} {r['method']} {r['metric']}" for r in rows],
                           name="row")
    return table.drop(columns=["dataset", "split", "backbone", "method", "metric"])
