"""From run records to comparison tables, and the published-number registry.

Records (see :mod:`hideseek.results.records`) are flattened to a long frame, one row per
(record, metric), then pivoted: rows by a record field (augmentation by default), columns
by metric, each cell ``(mean, std)`` over the runs (seeds) it holds. Published numbers come
from ``data/published.csv`` (task, dataset, split, backbone, method, metric, value, source,
verified, note); a comparison table puts a reproduced mean beside the published value and
their difference, and says whether the published value was checked against its source.

What a table never does silently:

- count a run twice: only the latest record of each key is read
  (:func:`~hideseek.results.records.latest_records`: a re-evaluated checkpoint replaces its
  training run's evaluation), and a cell that would still hold two results of one run
  (another evaluation, another calibration source) is refused, naming both records;
- average different datasets, splits or policies: when the records left after ``where``
  hold several, they become part of the row label (``CUB / none``);
- drop a value: a metric that is not a number (a string, ``null``, an object) is refused
  naming its record (``file:line``); a NaN metric (undefined, e.g. mIoU with no class
  present) makes its cell's mean NaN, shown as ``NaN``, never the mean of the others.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path

import pandas as pd

from hideseek.results.names import registry_fields
from hideseek.results.records import RecordError, is_number, latest_records, record_dataset, record_run_id

__all__ = [
    "DEFAULT_METRICS",
    "load_published",
    "records_frame",
    "summary_table",
    "published_comparison",
]

DEFAULT_METRICS = ("Top-1 Cls", "Top-1 Loc", "GT-known Loc", "MaxBoxAccV2", "PxAP")
PUBLISHED_COLUMNS = ("task", "dataset", "split", "backbone", "method", "metric", "value", "source", "verified", "note")
PUBLISHED_KEY = ("dataset", "split", "backbone", "method", "metric")  # one published value per key
_FIELDS = ("run", "run_id", "task", "dataset", "split", "seed", "method", "backbone")
_CONFIG_FIELDS = ("augmentation", "pool")
FRAME_COLUMNS = (*_FIELDS, *_CONFIG_FIELDS, "policy", "metric", "value", "record")
# fields whose values a cell must not mix: several of them left after the filters split the rows
_SEPARATE = ("task", "dataset", "split", "policy")


def load_published(path: str | Path | None = None) -> pd.DataFrame:
    """The registry of published numbers (the packaged CSV unless ``path`` is given).

    Refused, naming the file and line: a missing column, a value that is not a finite
    number, ``verified`` other than true/false, an empty dataset/split/method/metric, and a
    second row of one key (dataset, split, backbone, method, metric): with the same value it
    is a duplicate, with another value a conflict (two sources disagree: keep the one checked
    against its source and say so in the note).
    """
    import csv
    import io
    import math

    from hideseek.inputs import read_text

    if path is None:
        text = resources.files("hideseek.results").joinpath("data/published.csv").read_text(encoding="utf-8-sig")
        where = "hideseek/results/data/published.csv"
    else:
        text = read_text(path, "published-number registry")
        where = str(path)
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None) or []
    missing = [c for c in PUBLISHED_COLUMNS if c not in header]
    if missing:
        raise ValueError(f"{where}: missing columns {missing}; expected {list(PUBLISHED_COLUMNS)}")
    rows, seen = [], {}
    for fields in reader:
        number = reader.line_num
        if not any(field.strip() for field in fields):
            continue
        if len(fields) != len(header):
            raise ValueError(f"{where}:{number}: expected {len(header)} comma-separated fields, found {len(fields)}")
        row = dict(zip(header, fields))
        value, verified = row["value"], row["verified"]
        try:
            number_value = float(value)
        except ValueError:
            raise ValueError(f"{where}:{number}: value {value!r} is not a number") from None
        if not math.isfinite(number_value):
            raise ValueError(f"{where}:{number}: value {value!r} is not a finite number")
        if verified not in ("true", "false"):
            raise ValueError(f"{where}:{number}: verified must be true or false, got {verified!r}")
        empty = [c for c in ("dataset", "split", "method", "metric") if not row[c].strip()]
        if empty:
            raise ValueError(f"{where}:{number}: empty {', '.join(empty)}")
        key = tuple(_key(row[c]) for c in PUBLISHED_KEY)
        if key in seen:
            first, first_value = seen[key]
            cell = " ".join(row[c] for c in PUBLISHED_KEY if row[c])
            if first_value == number_value:
                raise ValueError(f"{where}:{number}: duplicate of line {first} ({cell} {value}): one row per "
                                 f"{', '.join(PUBLISHED_KEY)}")
            raise ValueError(f"{where}:{number}: {cell} = {value} conflicts with line {first} ({first_value:g}): "
                             "one published value per cell; keep the one checked against its source")
        seen[key] = (number, number_value)
        rows.append(row)
    frame = pd.DataFrame(rows, columns=header)
    frame["value"] = frame["value"].astype(float)
    frame["verified"] = frame["verified"] == "true"
    return frame


def _metric_value(value, metric: str, where: str):
    if is_number(value):
        return float(value)
    kind = ("an object" if isinstance(value, dict) else "a list" if isinstance(value, list) else "null"
            if value is None else "a boolean" if isinstance(value, bool) else "a string")
    raise RecordError(f"{where}: metric {metric!r} is {kind} ({value!r:.40}), not a number; a table averages "
                      "numbers only (write NaN for an undefined value)")


def records_frame(records: Sequence) -> pd.DataFrame:
    """Long frame: one row per (live record, metric) of ``records`` (dicts, or ``(where, record)``
    pairs as :func:`~hideseek.results.records.read_records` gives with ``locations``).

    Only the latest record of each key is kept (:func:`~hideseek.results.records.latest_records`).
    Values are kept as written; :func:`summary_table` and :func:`published_comparison` refuse
    a non-number in a cell they fill, naming its record (``record`` column).
    """
    rows = []
    items = [item if isinstance(item, tuple) else (f"record {n}", item) for n, item in enumerate(records, start=1)]
    for where, record in latest_records(items):
        config = record.get("config") or {}
        names = registry_fields(record.get("task"), {**config, "dataset": config.get("dataset", record.get("dataset"))})
        base = {"run": record.get("run"), "run_id": record_run_id(record), "task": record.get("task"),
                "dataset": record_dataset(record), "split": record.get("split"), "seed": record.get("seed"),
                "method": record.get("method") or names["method"],
                "backbone": record.get("backbone") or names["backbone"]}
        base.update({key: config.get(key) for key in _CONFIG_FIELDS})
        policy = record.get("policy")
        base["policy"] = policy.get("name") if isinstance(policy, Mapping) else policy
        for metric, value in (record.get("metrics") or {}).items():
            rows.append({**base, "metric": metric, "value": value, "record": where})
    frame = pd.DataFrame(rows, columns=list(FRAME_COLUMNS))
    # as written: pandas would turn a null among numbers into NaN, a refused value into an undefined one
    frame["value"] = pd.Series([row["value"] for row in rows], index=frame.index, dtype=object)
    return frame


def _filter(frame: pd.DataFrame, where: Mapping[str, str]) -> pd.DataFrame:
    for key, value in where.items():
        if key not in frame.columns or key in ("value", "record"):
            fields = [c for c in frame.columns if c not in ("value", "record")]
            raise ValueError(f"cannot filter on {key!r}; fields: {', '.join(fields)}")
        frame = frame[frame[key].astype(str) == str(value)]
    return frame


def _one_per_run(values: pd.DataFrame, cell: str) -> None:
    """Refuse a cell holding two results of one run: that would count the run twice."""
    twice = values[values["run_id"].duplicated(keep=False)]
    if not twice.empty:
        first = twice.iloc[0]
        other = twice[twice["run_id"] == first["run_id"]]["record"].tolist()
        raise RecordError(f"{' and '.join(other)}: two results of run {first['run']!r} in one cell ({cell}): another "
                          "evaluation or policy of the same run; keep one with --where or split them with --rows")


def _mean_std(values: pd.DataFrame, metric: str) -> tuple[float, float]:
    """Mean and sample std of a cell; NaN when any run's value is NaN (never the mean of the others)."""
    numbers = [_metric_value(v, metric, w) for v, w in zip(values["value"], values["record"])]
    series = pd.Series(numbers, dtype=float)
    mean = float(series.mean(skipna=False))
    std = float(series.std(ddof=1, skipna=False)) if len(series) > 1 else float("nan")
    return mean, std


def summary_table(frame: pd.DataFrame, *, rows: str = "augmentation", cols: str = "metric",
                  metrics: Sequence[str] | None = None, where: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Pivot a long frame: each cell ``(mean, std)`` over its runs; ``runs`` counts them.

    ``where`` keeps rows whose fields equal the given values (e.g. split=test,
    policy=oracle). With ``cols="metric"`` the columns are ``metrics`` (default: the usual
    WSOL metrics that are present), in that order; with another ``cols`` field each cell
    holds one metric, which ``metrics`` must name. Datasets, splits, tasks and policies that
    remain several after ``where`` are added to the row label rather than averaged.
    """
    frame = _filter(frame, where or {})
    if frame.empty:
        raise ValueError("no records left to tabulate (check --records and the filters)")
    for field in (rows, cols):
        if field not in frame.columns or field in ("value", "record"):
            fields = [c for c in frame.columns if c not in ("value", "record")]
            raise ValueError(f"unknown field {field!r}; fields: {', '.join(fields)}")
    if rows == cols:
        raise ValueError(f"--rows and --cols are both {rows!r}; give two different fields")
    present = set(frame["metric"])
    if cols == "metric":
        wanted = list(metrics) if metrics else [m for m in DEFAULT_METRICS if m in present]
        if not wanted:
            raise ValueError(f"none of the default metrics {list(DEFAULT_METRICS)} is in the records; name some with "
                             f"--metrics (present: {sorted(present)})")
    else:
        wanted = list(metrics or [])
        if len(wanted) != 1:
            raise ValueError(f"--cols {cols} puts one metric in each cell: name exactly one with --metrics "
                             f"(present: {sorted(present)})")
    unknown = [m for m in wanted if m not in present]
    if unknown:
        raise ValueError(f"metrics {unknown} are in no record; present: {sorted(present)}")
    frame = frame[frame["metric"].isin(wanted)]
    columns = wanted if cols == "metric" else list(dict.fromkeys(frame[cols]))
    separate = [f for f in _SEPARATE if f not in (rows, cols) and frame[f].astype(str).nunique() > 1]
    label_fields = [*separate, rows]
    labels = frame[label_fields].astype(str).agg(" / ".join, axis=1)
    frame = frame.assign(_label=labels.values)
    row_labels = list(dict.fromkeys(frame["_label"]))
    table = pd.DataFrame(index=pd.Index(row_labels, name=" / ".join(label_fields)))
    for column in columns:
        cells = []
        for label in row_labels:
            values = frame[(frame["_label"] == label) & (frame[cols] == column)]
            if values.empty:
                cells.append(None)
                continue
            _one_per_run(values, f"{label}, {column}")
            cells.append(_mean_std(values, column if cols == "metric" else wanted[0]))
        table[column] = cells
    runs = frame.groupby("_label", sort=False)["run_id"].nunique()
    table["runs"] = [int(runs.get(label, 0)) for label in row_labels]
    return table


def _key(name) -> str:
    return re.sub(r"[^a-z0-9]", "", str(name).lower())


def published_comparison(frame: pd.DataFrame, published: pd.DataFrame | None = None, *,
                         where: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Reproduced mean ± std beside the published value for every (dataset, split, backbone,
    method, metric) the records and the registry share; ``diff`` = reproduced - published.

    Records name these as the registry does (:mod:`hideseek.results.names`; legacy records
    are mapped when read). Each policy left after ``where`` is its own row.
    """
    published = load_published() if published is None else published
    frame = _filter(frame, where or {})
    index = {}
    for _, pub in published.iterrows():
        index.setdefault(tuple(_key(pub[c]) for c in PUBLISHED_KEY), []).append(pub)
    several_policies = frame["policy"].astype(str).nunique() > 1
    rows, labels = [], []
    groups = frame.groupby(["dataset", "split", "backbone", "method", "policy", "metric"], sort=False, dropna=False)
    for (dataset, split, backbone, method, policy, metric), group in groups:
        for pub in index.get(tuple(_key(v) for v in (dataset, split, backbone, method, metric)), []):
            label = f"{dataset} {split} {backbone} {method} {metric}" + (f" ({policy})" if several_policies else "")
            _one_per_run(group, label)
            mean, std = _mean_std(group, metric)
            rows.append({"reproduced": (mean, std), "published": pub["value"], "diff": mean - pub["value"],
                         "runs": int(group["run_id"].nunique()), "verified": "yes" if pub["verified"] else "no",
                         "source": pub["source"]})
            labels.append(label)
    if not rows:
        said = sorted({" ".join(r) for r in frame[["dataset", "split", "backbone", "method"]].astype(str).values})
        raise ValueError("no record matches a published row (dataset, split, backbone, method, metric); records say "
                         + (", ".join(said[:5]) or "nothing after the filters"))
    return pd.DataFrame(rows, index=pd.Index(labels, name="row"))
