"""``hideseek seg demo``: CAM pseudo-masks with and without Hide-and-Seek, end to end on CPU.

Trains a multi-label CAM model (augmentation ``none``) and a Hide-and-Seek model with the
same backbone, schedule and seeds on the synthetic scenes, scores the pseudo-masks on the
training scenes (the pseudo-label quality that weakly-supervised segmentation reports)
and on the held-out test scenes, each under the oracle background threshold and the
val-calibrated one, prints the comparison (mean ± std over seeds), writes
``demo-seg.csv``, ``demo-seg.md`` and ``demo-seg.tex`` (and ``demo-seg-runs.csv``: every
run with the background thresholds it chose), draws scenes with GT and both
models' pseudo-masks (``demo-seg.png``) and appends every run's records to
``records.jsonl``.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from hideseek.results.compare import ComparePlan, machine_facts, run_comparison, write_tables
from hideseek.results.tables import render_table
from hideseek.segmentation.pseudo import class_scores, pseudo_labels
from hideseek.segmentation.scenes import SceneConfig, SyntheticScenes
from hideseek.segmentation.train import SegConfig, load_run, train, transforms
from hideseek.segmentation.voc import voc_palette

__all__ = ["SegDemoPlan", "FULL", "QUICK", "run_seg_demo"]

COLUMNS = {  # table column -> (result key, metric)
    "train mIoU": ("train", "mIoU"),
    "train mIoU (val-cal.)": ("train_calibrated", "mIoU"),
    "test mIoU": ("test", "mIoU"),
    "test mIoU (val-cal.)": ("test_calibrated", "mIoU"),
    "test pixel acc": ("test", "pixel_acc"),
}
THRESHOLDS = {"val bg threshold": ("val", "bg_threshold"), "train bg threshold": ("train", "bg_threshold"),
              "test bg threshold": ("test", "bg_threshold")}


@dataclass(frozen=True)
class SegDemoPlan(ComparePlan):
    """What the demo trains (a :class:`~hideseek.results.compare.ComparePlan` of
    :class:`SegConfig`) and how many test scenes its figure shows."""

    figure_images: int = 6


FULL = SegDemoPlan(
    base=SegConfig(scenes=dict(num_classes=6, image_size=64, train=384, val=128, test=128), backbone="resnet18",
                   feature_stage=2, epochs=8, batch_size=64, optimizer="adamw", lr=2e-3, crop_size=64, resize_size=64),
    models={"CAM (none)": ("none", {}), "HaS": ("has", {"grid_sizes": [0, 10, 21], "p_hide": 0.5})},
    seeds=(0, 1),
)

QUICK = SegDemoPlan(
    base=SegConfig(scenes=dict(num_classes=4, image_size=48, train=64, val=24, test=24), backbone="resnet18",
                   feature_stage=2, epochs=2, batch_size=32, optimizer="adamw", lr=2e-3, crop_size=48, resize_size=48),
    models={"CAM (none)": ("none", {}), "HaS": ("has", {"grid_sizes": [0, 8, 16], "p_hide": 0.5})},
    seeds=(0,),
    workers=1,  # runs of a few seconds: starting a worker process would cost more
    figure_images=3,
)


def _figure(plan: SegDemoPlan, checkpoints: dict[str, str], thresholds: dict[str, float], path: Path) -> Path:
    """Rows of test scenes: image, GT label map, each model's pseudo-mask (first seed,
    val-calibrated threshold), in the VOC colours, scaled up 3x."""
    models = {}
    for label, checkpoint in checkpoints.items():
        config, model, _ = load_run(checkpoint)
        models[label] = model.eval()
    bench = SyntheticScenes(SceneConfig.from_dict(config.scenes), progress=False)
    raw, shown = bench.open("test"), transforms(config, train=False)
    palette = voc_palette()
    scale, pad = 3, 4
    size = config.crop_size * scale
    titles = ["scene", "ground truth", *(f"{k} (tau {thresholds[k]:.2f})" for k in models)]
    width = len(titles) * (size + pad) + pad
    count = min(plan.figure_images, len(raw))
    canvas = Image.new("RGB", (width, 18 + count * (size + pad) + pad), "white")
    pen = ImageDraw.Draw(canvas)
    for c, title in enumerate(titles):
        pen.text((pad + c * (size + pad), 3), title, fill="black")
    for r in range(count):
        item = raw[r]
        tiles = [np.asarray(item["image"]), palette[item["mask"]]]
        x = shown(item["image"])[None]
        with torch.no_grad():
            for label, model in models.items():
                scores = class_scores(model, x, torch.as_tensor(item["labels"])[None],
                                      [(item["size"][1], item["size"][0])])[0]
                tiles.append(palette[pseudo_labels(scores, thresholds[label]).numpy()])
        for c, tile in enumerate(tiles):
            image = Image.fromarray(tile.astype(np.uint8)).resize((size, size), Image.NEAREST)
            canvas.paste(image, (pad + c * (size + pad), 18 + pad + r * (size + pad)))
    canvas.save(path)
    return path


def _rows(label: str, seed: int, config: SegConfig, out: dict) -> list[dict]:
    results = out["results"]
    return [{"method": label, "seed": seed,
             **{column: results[split][key] for column, (split, key) in {**COLUMNS, **THRESHOLDS}.items()},
             "train s": out["train_seconds"]}]


def run_seg_demo(output_dir: str | Path = "results/demo-seg", *, quick: bool = False, plan: SegDemoPlan | None = None,
                 progress: bool = True, workers: int | None = None) -> dict:
    """Train, score and draw; returns ``{"table", "markdown", "files", "rows", "seconds", "facts"}``.

    ``workers``: training runs at a time (see :class:`~hideseek.results.compare.ComparePlan`)."""
    plan = plan or (QUICK if quick else FULL)
    if workers is not None:
        plan = replace(plan, workers=workers)
    output_dir = Path(output_dir)
    start, load = time.perf_counter(), os.getloadavg()
    SyntheticScenes(SceneConfig.from_dict(plan.base.scenes), progress=progress)  # generated here, read by the runs
    runs = run_comparison(plan, partial(train, overwrite=True), output_dir, rows=_rows, run_prefix="seg-",
                          progress=progress)
    table = runs.table(list(COLUMNS))
    scenes = plan.base.scenes
    caption = (f"Synthetic segmentation scenes ({scenes.get('num_classes')} classes, 1-3 objects, "
               f"{scenes.get('image_size')} px), CAM pseudo-mask mIoU, {plan.base.backbone}, "
               f"{len(plan.seeds)} seed(s); background threshold: oracle on the scored split, or chosen on val")
    files = write_tables(table, output_dir, "demo-seg", caption=caption, label="tab:hideseek-seg-demo")
    path = output_dir / "demo-seg-runs.csv"  # one row per run, with the chosen thresholds
    runs.rows.to_csv(path, index=False, float_format="%.4f")
    files["runs"] = str(path)
    checkpoints = {label: out["checkpoint"] for label, out in runs.first.items()}
    thresholds = {label: out["results"]["val"]["bg_threshold"] for label, out in runs.first.items()}
    files["figure"] = str(_figure(plan, checkpoints, thresholds, output_dir / "demo-seg.png"))
    files["records"] = str(runs.records)
    return {"table": table, "markdown": render_table(table, "markdown"), "files": files, "rows": runs.rows,
            "seconds": time.perf_counter() - start, "facts": machine_facts(plan, load)}
