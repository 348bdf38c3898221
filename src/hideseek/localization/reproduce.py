"""``hideseek reproduce CONFIG``: train, evaluate and record one leaderboard row.

A config is a TOML file (see ``configs/``)::

    description = "..."
    [target]            # the published row it reproduces (data/published.csv)
    dataset = "CUB"; split = "test"; backbone = "ResNet50"; method = "HaS"; metric = "MaxBoxAccV2"
    [run]               # LocConfig fields
    dataset = "wsol"; data_root = "dataset/CUB"; metadata_root = "metadata/CUB"; backbone = "resnet50"; ...

Relative paths in ``[run]`` are resolved against ``--data-root`` (default: the current
folder). The reproduced value (test split, oracle threshold as the public benchmark, and
the val-calibrated value) is printed beside the published one.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from hideseek.inputs import read_text
from hideseek.localization.train import LocConfig, train
from hideseek.results.report import load_published

__all__ = ["load_row_config", "reproduce"]

TARGET_KEYS = ("dataset", "split", "backbone", "method", "metric")
PATH_KEYS = ("data_root", "metadata_root", "pretrained_file", "mask_root")


def load_row_config(path: str | Path, data_root: str | Path | None = None,
                    overrides: dict | None = None) -> tuple[LocConfig, dict, str]:
    """``(config, target, description)`` of a leaderboard-row TOML file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: config not found")
    try:
        data = tomllib.loads(read_text(path, "config"))
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"{path}: invalid TOML ({error})") from None
    for table in ("target", "run"):
        if not isinstance(data.get(table), dict):
            raise ValueError(f"{path}: missing the [{table}] table")
    missing = [k for k in TARGET_KEYS if k not in data["target"]]
    if missing:
        raise ValueError(f"{path}: [target] lacks {missing}")
    for key in TARGET_KEYS:
        value = data["target"][key]
        if not isinstance(value, str):
            raise ValueError(f"{path}: [target] {key} = {value!r}: expected a string, got {type(value).__name__}")
    if not isinstance(data.get("description", ""), str):
        raise ValueError(f"{path}: description: expected a string")
    run = dict(data["run"])
    base = Path(data_root) if data_root else Path.cwd()
    for key in PATH_KEYS:
        if isinstance(run.get(key), str) and run[key]:  # other types are named by the config's type check
            run[key] = str(base / run[key])
    run.update(overrides or {})
    try:
        config = LocConfig.from_dict(run)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{path}: [run] {error}") from None
    return config, dict(data["target"]), str(data.get("description", ""))


def reproduce(path: str | Path, *, data_root: str | Path | None = None, records: str | Path | None = None,
              output: str | Path | None = None, overrides: dict | None = None, progress: bool = True) -> dict:
    """Train and evaluate the row; returns the comparison with the published value."""
    config, target, description = load_row_config(path, data_root, overrides)
    published = load_published()
    match = published
    for key in TARGET_KEYS:
        match = match[match[key] == str(target[key])]
    if match.empty:
        raise ValueError(f"{path}: no published row {target} in the registry")
    row = match.iloc[0]
    output = Path(output) if output else Path("runs") / Path(path).stem
    out = train(config, output, records=records, progress=progress, run=Path(path).stem)
    metric = target["metric"]
    test, calibrated = out["results"]["test"], out["results"].get("test_calibrated", {})
    return {
        "config": str(path),
        "description": description,
        "target": target,
        "metric": metric,
        "reproduced": test[metric],
        "reproduced_calibrated": calibrated.get(metric),
        "published": float(row["value"]),
        "diff": test[metric] - float(row["value"]),
        "source": row["source"],
        "verified": bool(row["verified"]),
        "checkpoint": out["checkpoint"],
    }
