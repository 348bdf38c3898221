"""Result records: one JSON object per (run, evaluation, dataset, split, policy), one per line.

Appends take an exclusive file lock (``<store>.lock``) and write the whole line with a
single ``write`` on a file opened for appending, then ``fsync``: concurrent runs (``tox p``,
several ``torchrun`` jobs) never lose or interleave a record.

The store is append-only and **the latest record of a key wins**. A record's key is
:func:`record_key`: its task, its run (``run_id``), its evaluation options, its dataset,
split and threshold policy. ``run_id`` is a digest of the run's name and of the config fields
that decide what is trained (seed included; not the device, thread count, data paths,
evaluation options or the number of epochs), so

- ``loc evaluate --checkpoint`` of a trained run writes records of the same keys as the
  evaluation that ended its training: they *replace* those records in every table, they are
  never counted beside them;
- an evaluation killed half-way and run again (``--resume``), a run extended with
  ``--resume --epochs``, or a demo run again into its folder, replaces its earlier records;
- two different runs written under one folder name (another seed, another learning rate)
  have different ``run_id`` and are two runs;
- an evaluation with other evaluation options (``cam_curve_interval``, the detection
  post-processing, ...) is another evaluation of the same run: kept apart, and a table
  refuses to average it with the first in one cell.

Nothing is ever deleted: earlier records stay in the file (``read_records`` returns them
all; :func:`latest_records` keeps the winners). Records written before ``run_id`` existed
get their key from the config they carry, with legacy dataset names (``wsol``, ``voc``) read
as the registry's (:mod:`hideseek.results.names`).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import subprocess
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

from filelock import FileLock

from hideseek import __version__
from hideseek.inputs import InputError, check_writable, read_text
from hideseek.results.names import LEGACY_DATASETS, registry_fields

__all__ = ["RecordError", "append_record", "check_store", "evaluation_identity", "git_commit", "latest_records",
           "make_record", "read_records", "record_key", "run_identity"]

# config fields that say where and how fast a run ran, not what it trained or how it was scored;
# ``epochs`` too: a run extended with ``--resume --epochs`` stays the same run (its folder holds
# only the longer one), so its new records replace those of the shorter one
IGNORED_FIELDS = frozenset({"device", "threads", "num_workers", "cache_images", "eval_splits", "protocols",
                            "calibration_split", "test_subset", "data_root", "metadata_root", "mask_root",
                            "features_dir", "ground_truth", "pretrained_file", "epochs"})
# config fields that change how a trained model is scored, not the model: another value is
# another evaluation of the same run
EVALUATION_FIELDS = frozenset({"cam_curve_interval", "iou_thresholds", "cam_method", "threshold_interval", "detect",
                               "tiou", "ambiguous"})


class RecordError(InputError):
    """A record store line is not a valid record; the message names file and line."""


def git_commit(cwd: str | Path | None = None) -> str | None:
    """The current git commit of ``cwd`` (or of the package source), if any."""
    where = Path(cwd) if cwd else Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=5, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def _digest(value) -> str:
    text = json.dumps(value, sort_keys=True, allow_nan=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def run_identity(run: str | None, config: Mapping | None, seed=None) -> str:
    """The ``run_id`` of a run: a digest of its name and of the config fields that decide what
    it trains (``seed`` is taken from the config, else from the argument)."""
    config = dict(config or {})
    trained = {k: v for k, v in config.items() if k not in IGNORED_FIELDS and k not in EVALUATION_FIELDS}
    trained.setdefault("seed", seed)
    return _digest({"run": run, "config": trained})


def evaluation_identity(config: Mapping | None) -> str:
    """A digest of the config fields that change how a trained model is scored."""
    config = dict(config or {})
    return _digest({k: v for k, v in config.items() if k in EVALUATION_FIELDS})


def _policy_key(policy) -> str:
    if not isinstance(policy, Mapping):
        return str(policy)
    name = str(policy.get("name"))
    if policy.get("source") is not None:
        name += f"({policy['source']})"
    if policy.get("tau") is not None:
        name += f"(tau={policy['tau']})"
    return name


def make_record(
    *,
    task: str,
    dataset: str,
    split: str,
    metrics: Mapping,
    config: Mapping,
    policy: Mapping | None = None,
    seed: int | None = None,
    device: str | None = None,
    wall_time: float | None = None,
    run: str | None = None,
    run_id: str | None = None,
    method: str | None = None,
    backbone: str | None = None,
) -> dict:
    """Assemble a record with the provenance every result needs.

    ``dataset``, ``method`` and ``backbone`` are the registry's names when the caller knows
    them (:func:`hideseek.results.names.registry_fields`); missing ones are derived from
    ``config``. ``run_id`` defaults to :func:`run_identity` of ``run`` and ``config``.
    """
    config = dict(config)
    names = registry_fields(task, {**config, "dataset": config.get("dataset", dataset)})
    if dataset in LEGACY_DATASETS:
        dataset = names["dataset"]
    return {
        "run": run,
        "run_id": run_id or run_identity(run, config, seed),
        "task": task,
        "dataset": dataset,
        "split": split,
        "method": method if method is not None else names["method"],
        "backbone": backbone if backbone is not None else names["backbone"],
        "metrics": dict(metrics),
        "policy": dict(policy) if policy else None,
        "config": config,
        "seed": seed,
        "commit": git_commit(),
        "version": __version__,
        "device": device,
        "host": platform.node(),
        "wall_time": wall_time,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def check_store(path: str | Path) -> Path:
    """Refuse a record store that cannot be appended to (nor its lock file created), before
    any work whose records it is to hold starts. Raises :class:`RecordError` naming the path."""
    path = Path(path)
    try:
        check_writable(path, "record store")
        check_writable(Path(str(path) + ".lock"), "record store lock file")
    except InputError as error:
        raise RecordError(str(error)) from None
    return path


def append_record(path: str | Path, record: Mapping) -> None:
    """Append one record as a JSON line, atomically with respect to other writers."""
    path = Path(path)
    line = json.dumps(record, sort_keys=True, allow_nan=True) + "\n"
    if "\n" in line[:-1]:
        raise RecordError("a record must serialise to one line")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(path) + ".lock"):
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                data = line.encode("utf-8")
                written = os.write(fd, data)
                if written != len(data):
                    raise OSError(f"short write ({written} of {len(data)} bytes)")
                os.fsync(fd)
            finally:
                os.close(fd)
    except OSError as error:
        raise RecordError(f"{path}: cannot append the record ({error.strerror or error})") from None


_OBJECT_FIELDS = {"metrics": (dict,), "config": (dict, type(None)), "policy": (dict, type(None))}
_TEXT_FIELDS = ("run", "run_id", "task", "dataset", "split", "method", "backbone")


def _check_record(record, where: str) -> None:
    if not isinstance(record, dict):
        kind = {list: "a list", str: "a string", type(None): "null", bool: "a boolean"}.get(type(record), "a number")
        raise RecordError(f"{where}: expected a JSON object (one record per line), found {kind}")
    for field, kinds in _OBJECT_FIELDS.items():
        if field in record and not isinstance(record[field], kinds):
            raise RecordError(f"{where}: field {field!r} must be a JSON object, found {record[field]!r:.60}")
    for field in _TEXT_FIELDS:
        value = record.get(field)
        if value is not None and not isinstance(value, str | int) or isinstance(value, bool):
            raise RecordError(f"{where}: field {field!r} must be a string, found {value!r:.60}")


def read_records(path: str | Path, *, locations: bool = False) -> list:
    """All records of a store, in order; a bad line raises naming file and line.

    With ``locations`` each item is ``("<path>:<line>", record)``. The file is UTF-8 (a
    byte-order mark is accepted); every line must be a JSON object, its ``metrics``,
    ``config`` and ``policy`` objects when present.
    """
    path = Path(path)
    if not path.is_file():
        raise RecordError(f"{path}: record store not found" if not path.exists()
                          else f"{path}: expected a record store (JSON lines), found a folder")
    records = []
    for number, line in enumerate(read_text(path, "record store").splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise RecordError(f"{where}: not a JSON record ({error.msg})") from None
        _check_record(record, where)
        records.append((where, record) if locations else record)
    return records


def record_dataset(record: Mapping):
    """A record's dataset in the registry's words (legacy ``wsol`` / ``voc`` mapped)."""
    dataset = record.get("dataset")
    if dataset in LEGACY_DATASETS:
        config = record.get("config") or {}
        return registry_fields(record.get("task"), {**config, "dataset": dataset})["dataset"]
    return dataset


def record_run_id(record: Mapping) -> str:
    """A record's ``run_id``, derived from its run name and config for records written before it existed."""
    if record.get("run_id"):
        return str(record["run_id"])
    return run_identity(record.get("run"), record.get("config"), record.get("seed"))


def record_key(record: Mapping) -> tuple:
    """``(task, run_id, evaluation, dataset, split, policy)``: a store holds one live record per key."""
    return (record.get("task"), record_run_id(record), evaluation_identity(record.get("config")),
            record_dataset(record), record.get("split"), _policy_key(record.get("policy")))


def latest_records(records: Iterable) -> list:
    """The latest record of every key (:func:`record_key`), in store order of those winners.

    Items are records or ``(where, record)`` pairs (as :func:`read_records` with
    ``locations``), returned the same way.
    """
    items = list(records)
    last: dict[tuple, int] = {}
    for index, item in enumerate(items):
        record = item[1] if isinstance(item, tuple) else item
        last[record_key(record)] = index
    keep = set(last.values())
    return [item for index, item in enumerate(items) if index in keep]


def is_number(value) -> bool:
    """A metric value a table can average: an int or float (NaN and infinities included), not a bool."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def is_nan(value) -> bool:
    return isinstance(value, float) and math.isnan(value)
