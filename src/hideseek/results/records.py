"""Result records: one JSON object per (run, dataset, split), one per line.

Appends take an exclusive file lock (``<store>.lock``) and write the whole line with a
single ``write`` on a file opened for appending, then ``fsync``: concurrent runs (``tox p``,
several ``torchrun`` jobs) never lose or interleave a record.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path

from filelock import FileLock

from hideseek import __version__

__all__ = ["RecordError", "make_record", "append_record", "read_records", "git_commit"]


class RecordError(ValueError):
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
) -> dict:
    """Assemble a record with the provenance every result needs."""
    return {
        "run": run,
        "task": task,
        "dataset": dataset,
        "split": split,
        "metrics": dict(metrics),
        "policy": dict(policy) if policy else None,
        "config": dict(config),
        "seed": seed,
        "commit": git_commit(),
        "version": __version__,
        "device": device,
        "host": platform.node(),
        "wall_time": wall_time,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def append_record(path: str | Path, record: Mapping) -> None:
    """Append one record as a JSON line, atomically with respect to other writers."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(record, sort_keys=True, allow_nan=True) + "\n"
    if "\n" in line[:-1]:
        raise RecordError("a record must serialise to one line")
    with FileLock(str(path) + ".lock"):
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            data = line.encode("utf-8")
            written = os.write(fd, data)
            if written != len(data):
                raise OSError(f"{path}: short write ({written} of {len(data)} bytes)")
            os.fsync(fd)
        finally:
            os.close(fd)


def read_records(path: str | Path) -> list[dict]:
    """All records of a store, in order; a bad line raises naming file and line."""
    path = Path(path)
    if not path.is_file():
        raise RecordError(f"{path}: record store not found")
    records = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise RecordError(f"{path}:{number}: not a JSON record ({error.msg})") from None
            if not isinstance(record, dict):
                raise RecordError(f"{path}:{number}: expected a JSON object")
            records.append(record)
    return records
