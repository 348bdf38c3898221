"""``hideseek demo``: what Hide-and-Seek does to weakly-supervised localization, end to end.

Trains a baseline CAM model (augmentation ``none``) and a Hide-and-Seek model with the
same backbone, schedule and seeds on the embedded synthetic benchmark, scores both on its
test split, prints the comparison (mean ± std over seeds), writes ``demo.csv``,
``demo.md`` and ``demo.tex``, and draws CAM overlays with GT and predicted boxes for both
models (``demo.png``). Every training run is also appended to ``records.jsonl``.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import numpy as np

from hideseek.localization.boxes import (
    boxes_at_thresholds,
    kernel_compiled,
    opencv_available,
    reference_boxes_at_thresholds,
)
from hideseek.localization.data.dataset import SyntheticWSOL
from hideseek.localization.data.synthetic import SyntheticConfig
from hideseek.localization.evaluate import resize_box
from hideseek.localization.figures import cam_grid
from hideseek.localization.train import LocConfig, load_run, train, transforms
from hideseek.results.compare import ComparePlan, machine_facts, run_comparison, write_tables
from hideseek.results.tables import render_table

__all__ = ["DemoPlan", "FULL", "QUICK", "run_demo"]

METRICS = ("Top-1 Cls", "Top-1 Loc", "GT-known Loc", "MaxBoxAccV2", "PxAP")
CALIBRATED = "GT-known Loc (val-cal.)"


@dataclass(frozen=True)
class DemoPlan(ComparePlan):
    """What the demo trains (a :class:`~hideseek.results.compare.ComparePlan` of
    :class:`LocConfig`) and how many test images its figure shows."""

    figure_images: int = 6


_HAS = ("has", {"grid_sizes": [0, 11, 21], "p_hide": 0.5})  # 1/6 and 1/3 of the side, and no hiding

# Sized for 10 minutes of the whole demo on a 2-core CPU: 64 px, 1,200 training images,
# 8 epochs (12,000 image passes per run at 64 px). The earlier 96 px / 3,000 / 10 epoch
# plan (about 67,000 passes at 64 px cost) showed a larger HaS effect but took 36 min here.
FULL = DemoPlan(
    base=LocConfig(synthetic=dict(num_classes=6, image_size=64, train=1200, val=300, test=600), backbone="resnet18",
                   feature_stage=2, epochs=8, batch_size=32, optimizer="adamw", lr=2e-3, crop_size=64, resize_size=64,
                   cache_images=True),
    models={"CAM (none)": ("none", {}), "HaS": _HAS},
    seeds=(0, 1),
)

QUICK = DemoPlan(
    base=LocConfig(synthetic=dict(num_classes=4, image_size=64, train=192, val=64, test=64), backbone="resnet18",
                   feature_stage=2, epochs=2, batch_size=32, optimizer="adamw", lr=2e-3, crop_size=64, resize_size=64,
                   cache_images=True),
    models={"CAM (none)": ("none", {}), "HaS": ("has", {"grid_sizes": [0, 8, 16], "p_hide": 0.5})},
    seeds=(0,),
    workers=1,  # runs of a few seconds: starting a worker process would cost more
    figure_images=4,
)


def _figure(plan: DemoPlan, checkpoints: dict[str, str], results: dict[str, dict], path: Path) -> Path:
    """CAM overlays of the first test images for each model (first seed)."""
    models = {}
    for label, checkpoint in checkpoints.items():
        config, model, _ = load_run(checkpoint)  # config with its resolved normalisation
        models[label] = model.eval()
    bench = SyntheticWSOL(SyntheticConfig.from_dict(config.synthetic), progress=False)
    raw, shown = bench.test, transforms(config, train=False)
    rows = []
    size = config.crop_size
    # six maps: OpenCV's contours (same boxes) when the compiled kernel is not built yet and cv2 is installed
    cold = not kernel_compiled(kind="boxes") and opencv_available()
    box_fn = reference_boxes_at_thresholds if cold else boxes_at_thresholds
    for index in range(min(plan.figure_images, len(raw))):
        item = raw[index]
        meta = raw.metadata
        image_id = meta.image_ids[index]
        gt = [resize_box(b, meta.image_sizes[image_id], size) for b in meta.boxes[image_id]]
        pixels = np.asarray(item["image"].resize((size, size)))
        x = shown(item["image"])[None]
        cams = []
        for label, model in models.items():
            maps, _, _ = model.cams(x, classes=[item["label"]])
            cam = maps[0, 0].double().numpy()
            tau = results[label]["loc_threshold"]
            box = box_fn(cam, [tau], multi_contour=False)[0][0].tolist()
            cams.append((cam, box))
        rows.append({"image": pixels, "gt": gt, "cams": cams})
    return cam_grid(rows, ["image + GT", *checkpoints], path)


def _rows(label: str, seed: int, config: LocConfig, out: dict) -> list[dict]:
    test, calibrated = out["results"]["test"], out["results"]["test_calibrated"]
    return [{"method": label, "seed": seed, **{m: test[m] for m in METRICS}, CALIBRATED: calibrated["GT-known Loc"],
             "train s": out["train_seconds"]}]


def run_demo(output_dir: str | Path = "results/demo", *, quick: bool = False, plan: DemoPlan | None = None,
             progress: bool = True, workers: int | None = None) -> dict:
    """Train, score and draw; returns ``{"table", "markdown", "files", "rows", "seconds", "facts"}``.

    ``workers``: training runs at a time (see :class:`~hideseek.results.compare.ComparePlan`)."""
    plan = plan or (QUICK if quick else FULL)
    if workers is not None:
        plan = replace(plan, workers=workers)
    output_dir = Path(output_dir)
    start, load = time.perf_counter(), os.getloadavg()
    # generate (or find) the benchmark and its pixel statistics here, with progress, so the
    # runs (perhaps in parallel worker processes) only read it
    SyntheticWSOL(SyntheticConfig.from_dict(plan.base.synthetic), progress=progress).pixel_stats()
    runs = run_comparison(plan, partial(train, overwrite=True), output_dir, rows=_rows, progress=progress)
    table = runs.table([*METRICS, CALIBRATED])
    caption = (f"Synthetic WSOL benchmark, test split, {plan.base.backbone} CAM, "
               f"{len(plan.seeds)} seed(s); oracle threshold except the val-calibrated column")
    files = write_tables(table, output_dir, "demo", caption=caption, label="tab:hideseek-demo")
    checkpoints = {label: out["checkpoint"] for label, out in runs.first.items()}
    tests = {label: out["results"]["test"] for label, out in runs.first.items()}
    files["figure"] = str(_figure(plan, checkpoints, tests, output_dir / "demo.png"))
    return {"table": table, "markdown": render_table(table, "markdown"), "files": files, "rows": runs.rows,
            "seconds": time.perf_counter() - start, "facts": machine_facts(plan, load)}
