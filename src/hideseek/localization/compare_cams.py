"""CAM methods x training methods: every trained checkpoint scored with every CAM method on the
same split, through :func:`hideseek.localization.train.evaluate_checkpoint` (the path of
``loc evaluate --checkpoint --cam-method``), and the table of the results.

A cell is the split's MaxBoxAccV2 under the run's threshold policy on that split (the
oracle: each IoU's best tau on the split itself, as the public benchmark reports it; the
policy's name is written in every cell) plus the seconds per image of the evaluation pass
(the scorer's wall time over the split's images: forward, CAM method, protocol).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["compare_cams", "training_method", "render_comparison"]


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
                 labels: Sequence[str] | None = None, device: str | None = None,
                 progress: bool = False) -> dict[str, Any]:
    """Score each checkpoint with each CAM method on ``split``.

    Returns ``{"split", "cam_methods", "metric": "MaxBoxAccV2", "rows": [{"training_method",
    "checkpoint", "cells": {method: {"MaxBoxAccV2", "policy", "seconds_per_image",
    "num_images", "result"}}}]}`` where ``result`` is the evaluation's own dict (curves left
    out). Labels default to :func:`training_method` of each checkpoint.
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
    if labels is not None and len(labels) != len(checkpoints):
        raise ValueError(f"{len(labels)} labels for {len(checkpoints)} checkpoints")
    names = list(labels) if labels is not None else [training_method(c) for c in checkpoints]
    rows = []
    for name, checkpoint in zip(names, checkpoints):
        cells = {}
        for method in cam_methods:
            result = evaluate_checkpoint(checkpoint, splits=(split,), device=device, progress=progress,
                                         cam_method=method)[split]
            kept = {k: v for k, v in result.items() if k != "curves"}
            cells[method] = {"MaxBoxAccV2": result["MaxBoxAccV2"], "policy": result["policy"],
                             "seconds_per_image": result["seconds"] / result["num_images"],
                             "num_images": result["num_images"], "result": kept}
        rows.append({"training_method": name, "checkpoint": os.fspath(checkpoint), "cells": cells})
    return {"split": split, "cam_methods": list(cam_methods), "metric": "MaxBoxAccV2", "rows": rows}


def _policy(policy: dict[str, Any]) -> str:
    extra = ", ".join(f"{k} {v}" for k, v in policy.items() if k != "name")
    return policy["name"] + (f" ({extra})" if extra else "")


def render_comparison(doc: dict[str, Any]) -> str:
    """The comparison as Markdown: rows training methods, columns CAM methods, each cell
    MaxBoxAccV2 and its policy; then seconds per image per CAM method and training method."""
    methods = doc["cam_methods"]
    head = "| training method | " + " | ".join(f"`{m}`" for m in methods) + " |"
    sep = "|---|" + "---:|" * len(methods)
    lines = [f"MaxBoxAccV2 (%) on the {doc['split']} split, threshold policy in each cell:", "", head, sep]
    for row in doc["rows"]:
        cells = [f"{row['cells'][m]['MaxBoxAccV2']:.2f} ({_policy(row['cells'][m]['policy'])})" for m in methods]
        lines.append(f"| {row['training_method']} | " + " | ".join(cells) + " |")
    lines += ["", "Seconds per image (evaluation pass: forward, CAM method, protocol):", "", head, sep]
    for row in doc["rows"]:
        cells = [f"{row['cells'][m]['seconds_per_image']:.4f}" for m in methods]
        lines.append(f"| {row['training_method']} | " + " | ".join(cells) + " |")
    images = sorted({row["cells"][m]["num_images"] for row in doc["rows"] for m in methods})
    lines += ["", f"Images per cell: {', '.join(map(str, images))}. Checkpoints: "
              + ", ".join(f"`{row['checkpoint']}`" for row in doc["rows"]) + "."]
    return "\n".join(lines) + "\n"
