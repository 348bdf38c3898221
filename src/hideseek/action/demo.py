"""``hideseek action demo``: temporal CAM with and without frame hiding, end to end.

Generates the synthetic video benchmark (:mod:`hideseek.action.synthetic`: mp4 written
with PyAV, decoded with decord, snippet features), trains a baseline temporal CAM
(augmentation ``none``) and a frame-hiding one (``frame-has``) with the same model,
schedule and seeds, detects segments on the test videos and scores them under the
protocols of :mod:`hideseek.action.protocols` (ActivityNet, both THUMOS14 kits, W-TALC) at
tIoU 0.1..0.7 (``DEFAULT_TIOU``). Prints the comparison
(mean ± std over seeds), writes ``demo-action.csv``, ``.md``, ``.tex``, a figure of
temporal CAMs against the GT (``demo-action.png``) and appends every run to
``records.jsonl``.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from hideseek.action.protocols import DEFAULT_TIOU, PROTOCOL_RECORDS, PROTOCOLS
from hideseek.action.train import ActionConfig, load_run, open_data, train
from hideseek.results.compare import ComparePlan, machine_facts, run_comparison, write_tables
from hideseek.results.tables import render_table
from hideseek.threads import torch_threads

__all__ = ["ActionDemoPlan", "FULL", "QUICK", "run_action_demo"]

TIOU_COLUMNS = tuple(f"mAP@{t:g}" for t in DEFAULT_TIOU)
AVG_COLUMN = "mAP avg 0.1:0.7"
PROTOCOL_NAMES = {name: record.title for name, record in PROTOCOL_RECORDS.items()}


@dataclass(frozen=True)
class ActionDemoPlan(ComparePlan):
    """What the demo trains (a :class:`~hideseek.results.compare.ComparePlan` of
    :class:`ActionConfig`) and how many test videos its figure shows."""

    figure_videos: int = 4


_HIDE = ("frame-has", {"segment_len": 4, "p_hide": 0.5})

FULL = ActionDemoPlan(
    base=ActionConfig(synthetic=dict(train=128, test=64), epochs=40, batch_size=16, lr=1e-3),
    models={"T-CAM (none)": ("none", {}), "T-CAM + frame-has": _HIDE},
    seeds=(0, 1, 2),
    workers=1,  # each run trains in about a second: the videos and their features are the demo's cost
)

QUICK = ActionDemoPlan(
    base=ActionConfig(synthetic=dict(train=16, test=8, min_duration_s=15.0, max_duration_s=18.0, max_instances=2),
                      epochs=4, batch_size=8, lr=1e-3),
    models={"T-CAM (none)": ("none", {}), "T-CAM + frame-has": _HIDE},
    seeds=(0,),
    workers=1,  # runs of a few seconds: starting a worker process would cost more
    figure_videos=2,
)


def _heat(values: np.ndarray) -> np.ndarray:
    """``(T,)`` in [0, 1] -> ``(T, 3)`` uint8, dark blue to yellow."""
    v = np.clip(values, 0, 1)[:, None]
    low, high = np.array([20, 30, 90.0]), np.array([250, 230, 40.0])
    return (low + (high - low) * v).astype(np.uint8)


def _figure(plan: ActionDemoPlan, checkpoints: dict[str, str], path: Path) -> Path:
    """Per test video: GT segments, telling moments, and each model's CAM of the GT class
    (min-max normalised over the video)."""
    from PIL import Image, ImageDraw

    from hideseek import engine
    from hideseek.action.train import evaluate_model

    cams = {}
    config = data = None
    for label, checkpoint in checkpoints.items():
        config, model, extra = load_run(checkpoint)
        if data is None:
            data = open_data(config, progress=False)
        ctx = engine.RunContext(device=torch.device("cpu"), seed=config.seed)
        quiet = replace(config, protocols=PROTOCOLS[:1])  # the figure needs the CAMs, not the scores
        cams[label] = evaluate_model(model, quiet, data, ctx=ctx, mean=extra.get("feature_mean"),
                                     std=extra.get("feature_std"), progress=False, keep_cams=True)["cams"]
    test = data["test"]
    width, strip, pad, label_w = 600, 14, 6, 150
    rows = []
    for video in test.videos[: plan.figure_videos]:
        c = data["classes"].index(video.labels[0])
        duration = video.duration_s or video.num_snippets * video.stride_s
        rows.append((video, c, duration))
    height = pad + len(rows) * (strip * (2 + len(cams)) + 3 * pad)
    image = Image.new("RGB", (label_w + width + pad, height), "white")
    draw = ImageDraw.Draw(image)
    y = pad
    for video, c, duration in rows:
        def bar(segments, colour, top, duration=duration):
            for s, e in segments:
                draw.rectangle([label_w + s / duration * width, top, label_w + e / duration * width, top + strip - 2],
                               fill=colour)
        draw.text((4, y), f"{video.video} GT", fill="black")
        bar([(s.start, s.end) for s in video.segments], (40, 160, 60), y)
        y += strip
        draw.text((4, y), "telling moments", fill="black")
        bar(video.extra.get("telling", []), (230, 60, 40), y)
        y += strip
        for label, per_video in cams.items():
            act = per_video[video.video][c]
            span_ = act.max() - act.min()
            act = (act - act.min()) / span_ if span_ > 0 else np.zeros_like(act)  # min-max per video
            colours = _heat(act)
            strip_img = Image.fromarray(np.repeat(colours[None], strip - 2, axis=0), "RGB")
            span = int(round(video.num_snippets * video.stride_s / duration * width))
            image.paste(strip_img.resize((max(span, 1), strip - 2), Image.NEAREST), (label_w, y))
            draw.text((4, y), label[:22], fill="black")
            y += strip
        y += 3 * pad
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path


def _rows(label: str, seed: int, config: ActionConfig, out: dict) -> list[dict]:
    """One row per protocol of the run."""
    results = out["results"]
    return [{"method": f"{label}, {PROTOCOL_NAMES[protocol]}", "seed": seed,
             **{f"mAP@{t}": v for t, v in results[protocol]["mAP"].items()},
             AVG_COLUMN: results[protocol]["average_mAP"]["0.1:0.7"], "video mAP": results["video mAP"],
             "train s": out["train_seconds"]} for protocol in config.protocols]


def run_action_demo(output_dir: str | Path = "results/demo-action", *, quick: bool = False,
                    plan: ActionDemoPlan | None = None, progress: bool = True, workers: int | None = None) -> dict:
    """Train, detect, score and draw; returns ``{"markdown", "table", "files", "rows", "seconds", "facts"}``.

    ``workers``: training runs at a time (see :class:`~hideseek.results.compare.ComparePlan`)."""
    from hideseek.action.synthetic import SyntheticVideoConfig

    plan = plan or (QUICK if quick else FULL)
    if workers is not None:
        plan = replace(plan, workers=workers)
    output_dir = Path(output_dir)
    start, load = time.perf_counter(), os.getloadavg()
    with torch_threads(plan.base.threads):
        open_data(plan.base, progress=progress)  # videos written and features extracted here, read by the runs
    runs = run_comparison(plan, partial(train, overwrite=True), output_dir, rows=_rows, progress=progress)
    frame = runs.rows  # protocol by protocol, each with every model
    order = [f"{label}, {PROTOCOL_NAMES[p]}" for p in plan.base.protocols for label in plan.models]
    frame["method"] = pd.Categorical(frame["method"], categories=order, ordered=True)
    frame = frame.sort_values(["method", "seed"], kind="stable")
    frame["method"] = frame["method"].astype(str)
    runs.rows = frame
    table = runs.table([*TIOU_COLUMNS, AVG_COLUMN, "video mAP"])
    syn = SyntheticVideoConfig.from_dict(plan.base.synthetic)
    caption = (f"Synthetic video benchmark ({syn.train} train / {syn.test} test videos), "
               f"temporal CAM with and without frame hiding, {len(plan.seeds)} seed(s); detection mAP per tIoU")
    files = write_tables(table, output_dir, "demo-action", caption=caption, label="tab:hideseek-action-demo")
    with torch_threads(plan.base.threads):
        checkpoints = {label: out["checkpoint"] for label, out in runs.first.items()}
        files["figure"] = str(_figure(plan, checkpoints, output_dir / "demo-action.png"))
    files["records"] = str(runs.records)
    return {"table": table, "markdown": render_table(table, "markdown"), "files": files, "rows": frame,
            "seconds": time.perf_counter() - start, "facts": machine_facts(plan, load)}
