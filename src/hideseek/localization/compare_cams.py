"""CAM methods x training methods: every trained checkpoint scored with every CAM method on the
same split, through :func:`hideseek.localization.train.evaluate_checkpoint` (the path of
``loc evaluate --checkpoint --cam-method``), and the tables of the results.

A cell is one metric of the split (MaxBoxAccV2 and PxAP by default) under the run's threshold
policy on that split (the oracle: each IoU's best tau on the split itself, as the public
benchmark reports it; the policy's name is written in every cell of a metric that has one;
PxAP is threshold-free) plus the seconds per image of the evaluation pass (the scorer's wall
time over the split's images: forward, CAM method, protocol). Checkpoints with the same
training method (several seeds) make one row: the mean, ``± std`` (sample, ddof 1) over
them, and the number of runs; the JSON keeps every run's own numbers.

Before anything is timed, every CAM method is called once on the first checkpoint's model
(first-call costs: the ``grad-cam`` import, hooks, the allocator), so the first cells of a
process are not charged for them.
"""

from __future__ import annotations

import math
import os
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hideseek.localization.choices import COMPARE_METRICS
from hideseek.results.tables import format_cell

__all__ = ["COMPARE_METRICS", "compare_cams", "training_method", "render_comparison"]



def training_method(checkpoint: str | os.PathLike) -> str:
    """The training method of a ``loc train`` checkpoint: its WSOL method when not vanilla
    ``cam``, else its batch augmentation (``none``, ``has``, ...); both when both are set."""
    from hideseek import engine

    extra = engine.read_checkpoint(Path(checkpoint)).get("extra") or {}
    config = extra.get("config")
    if not isinstance(config, dict):
        raise ValueError(f"{os.fspath(checkpoint)}: not a 'hideseek loc train' checkpoint (no loc run config inside)")
    wsol, aug = config.get("wsol_method", "cam"), config.get("augmentation", "none")
    if wsol not in (None, "cam"):
        return wsol if aug in (None, "none") else f"{wsol}+{aug}"
    return str(aug)


def compare_cams(checkpoints: Sequence[str | os.PathLike], cam_methods: Sequence[str], *, split: str = "test",
                 labels: Sequence[str] | None = None, metrics: Sequence[str] = ("MaxBoxAccV2", "PxAP"),
                 device: str | None = None, progress: bool = False, warm_up: bool = True) -> dict[str, Any]:
    """Score each checkpoint with each CAM method on ``split``.

    Returns ``{"split", "cam_methods", "metrics", "rows": [{"training_method", "checkpoint",
    "cells": {method: {<metric>: value or None, "policy", "seconds_per_image", "num_images",
    "result"}}}]}``, one row per checkpoint, where ``result`` is the evaluation's own dict
    (curves left out) and a metric the split cannot give (PxAP without masks) is ``None``.
    Labels default to :func:`training_method` of each checkpoint; checkpoints may share one
    (seeds of a method): :func:`render_comparison` averages them.
    """
    from hideseek.cam.methods import get_cam_method
    from hideseek.localization.train import evaluate_checkpoint

    if not checkpoints:
        raise ValueError("give at least one checkpoint")
    if not cam_methods:
        raise ValueError("give at least one CAM method")
    for method in cam_methods:
        get_cam_method(method)  # an unknown name fails before any model is loaded
    if len(set(cam_methods)) != len(cam_methods):
        raise ValueError(f"CAM methods repeat: {list(cam_methods)}")
    if not metrics:
        raise ValueError("give at least one metric")
    for metric in metrics:
        if metric not in COMPARE_METRICS:
            raise ValueError(f"metric {metric!r}: expected one of {', '.join(COMPARE_METRICS)}")
    if len(set(metrics)) != len(metrics):
        raise ValueError(f"metrics repeat: {list(metrics)}")
    if labels is not None and len(labels) != len(checkpoints):
        raise ValueError(f"{len(labels)} labels for {len(checkpoints)} checkpoints")
    seen: set[str] = set()
    for checkpoint in checkpoints:
        real = os.path.realpath(checkpoint)
        if real in seen:
            raise ValueError(f"{os.fspath(checkpoint)}: checkpoint given twice; each run is one sample of its row")
        seen.add(real)
    # every checkpoint is read (and verified) before the first cell: a bad one fails now, not an hour in
    read = [training_method(c) for c in checkpoints]
    names = list(labels) if labels is not None else read
    if warm_up:
        _warm_up(checkpoints[0], cam_methods, device)
    rows = []
    for name, checkpoint in zip(names, checkpoints):
        cells = {}
        for method in cam_methods:
            result = evaluate_checkpoint(checkpoint, splits=(split,), device=device, progress=progress,
                                         cam_method=method)[split]
            kept = {k: v for k, v in result.items() if k != "curves"}
            cells[method] = {**{m: result.get(m) for m in metrics}, "policy": result["policy"],
                             "seconds_per_image": result["seconds"] / result["num_images"],
                             "num_images": result["num_images"], "result": kept}
        rows.append({"training_method": name, "checkpoint": os.fspath(checkpoint), "cells": cells})
    return {"split": split, "cam_methods": list(cam_methods), "metrics": list(metrics), "rows": rows}


def _warm_up(checkpoint: str | os.PathLike, cam_methods: Sequence[str], device: str | None) -> None:
    """Call each CAM method once on one image through the checkpoint's model (not timed)."""
    import torch

    from hideseek.engine import resolve_device
    from hideseek.localization.train import load_run

    config, model, _ = load_run(checkpoint)
    where = resolve_device(device or getattr(config, "device", "auto") or "auto")
    model = model.eval().to(where)
    x = torch.zeros((1, 3, config.crop_size, config.crop_size), device=where)
    with torch.no_grad():
        for method in cam_methods:
            model.cams(x, classes=[0], method=method)


def _policy(policy: dict[str, Any]) -> str:
    extra = ", ".join(f"{k} {v}" for k, v in policy.items() if k != "name")
    return policy["name"] + (f" ({extra})" if extra else "")


def _groups(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Rows by training method, in the order each first appears."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(row["training_method"], []).append(row)
    return groups


def _mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample std (NaN for one value: the tables then show the mean alone)."""
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else math.nan


def _score(runs: list[dict[str, Any]], method: str, metric: str) -> str:
    values = [run["cells"][method].get(metric) for run in runs]
    if any(v is None for v in values):
        return "n/a"
    text = format_cell(_mean_std([float(v) for v in values]), digits=2)
    if COMPARE_METRICS.get(metric, True):
        policies = sorted({_policy(run["cells"][method]["policy"]) for run in runs})
        text += f" ({', '.join(policies)})"
    return text


def render_comparison(doc: dict[str, Any]) -> str:
    """The comparison as Markdown: per metric a table, rows training methods (runs of one
    method averaged: mean ± std over runs), columns CAM methods, each cell the metric and,
    where it has one, its threshold policy; then seconds per image (mean over runs)."""
    methods = doc["cam_methods"]
    metrics = doc.get("metrics", ["MaxBoxAccV2"])
    groups = _groups(doc["rows"])
    counts = sorted({len(runs) for runs in groups.values()})
    runs_note = ("one run per training method" if counts == [1] else
                 f"mean ± std over {'/'.join(map(str, counts))} runs per training method (column `runs`)")
    head = "| training method | runs | " + " | ".join(f"`{m}`" for m in methods) + " |"
    sep = "|---|---:|" + "---:|" * len(methods)
    lines: list[str] = []
    for metric in metrics:
        how = "threshold policy in each cell" if COMPARE_METRICS.get(metric, True) else "threshold-free"
        lines += [f"{metric} (%) on the {doc['split']} split, {runs_note}, {how}:", "", head, sep]
        for name, runs in groups.items():
            cells = [_score(runs, m, metric) for m in methods]
            lines.append(f"| {name} | {len(runs)} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["Seconds per image (evaluation pass: forward, CAM method, protocol; mean over runs):", "", head, sep]
    for name, runs in groups.items():
        cells = [f"{statistics.fmean(run['cells'][m]['seconds_per_image'] for run in runs):.4f}" for m in methods]
        lines.append(f"| {name} | {len(runs)} | " + " | ".join(cells) + " |")
    images = sorted({row["cells"][m]["num_images"] for row in doc["rows"] for m in methods})
    lines += ["", f"Images per cell: {', '.join(map(str, images))}. Checkpoints: "
              + ", ".join(f"`{row['checkpoint']}`" for row in doc["rows"]) + "."]
    return "\n".join(lines) + "\n"
