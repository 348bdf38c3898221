"""Every room's accumulators, fed a shard each, summed with ``Metric.sync``.

Run under torchrun (``python -m torch.distributed.run --nproc_per_node=2 --standalone
tests/metric_sync_worker.py --out DIR``) each rank updates the metrics with its shard
(``r::world``) of one fixed random data set, calls ``sync()`` and rank 0 saves every
metric's states and computed results to ``DIR/result.pt``. Run as a plain function
(:func:`compute`) with ``rank=0, world=1`` it gives the single-process numbers the test
compares against.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

NUM_IMAGES = 13  # odd on purpose: the ranks get 7 and 6 images
SIZE = 24
CLASSES = 5


def data() -> dict:
    rng = np.random.default_rng(7)
    maps = rng.random((NUM_IMAGES, SIZE, SIZE))
    boxes = []
    for _ in range(NUM_IMAGES):
        x0, y0 = rng.integers(0, SIZE // 2, 2)
        w, h = rng.integers(4, SIZE // 2, 2)
        boxes.append(np.array([[x0, y0, x0 + w, y0 + h]], dtype=np.int64))
    masks = (maps > rng.random((NUM_IMAGES, 1, 1))).astype(np.uint8)
    masks[:, :2] = 255  # ignored pixels
    logits = rng.normal(size=(NUM_IMAGES, CLASSES))
    labels = rng.integers(0, CLASSES, NUM_IMAGES)
    scores = rng.random((NUM_IMAGES, CLASSES - 1, SIZE, SIZE)).astype(np.float32)
    seg_target = rng.integers(0, CLASSES, (NUM_IMAGES, SIZE, SIZE))
    seg_target[:, 0] = 255
    seg_pred = rng.integers(0, CLASSES, (NUM_IMAGES, SIZE, SIZE))
    return dict(maps=maps, boxes=boxes, masks=masks, logits=logits, labels=labels, scores=scores,
                seg_target=seg_target, seg_pred=seg_pred)


def compute(rank: int, world: int, sync: bool) -> dict:
    from hideseek.cam.policies import Oracle
    from hideseek.localization.metrics import BoxAccuracy, ClassificationAccuracy, PixelAP
    from hideseek.segmentation.metrics import MeanIoU, ThresholdSweep

    d = data()
    mine = list(range(rank, NUM_IMAGES, world))
    metrics = {"box": BoxAccuracy(), "cls": ClassificationAccuracy(), "pxap": PixelAP(),
               "miou": MeanIoU(CLASSES, 255), "sweep": ThresholdSweep(CLASSES, ignore_index=255)}
    top5 = torch.from_numpy(d["logits"][mine]).topk(5, dim=1).indices
    labels = torch.from_numpy(d["labels"][mine])
    metrics["box"].update(d["maps"][mine], [d["boxes"][i] for i in mine], top5, labels)
    metrics["cls"].update(top5, labels)
    metrics["pxap"].update(d["maps"][mine], d["masks"][mine])
    metrics["miou"].update(torch.from_numpy(d["seg_pred"][mine]), torch.from_numpy(d["seg_target"][mine]))
    for i in mine:
        metrics["sweep"].update(torch.from_numpy(d["scores"][i]), torch.from_numpy(d["seg_target"][i]))
    if sync:
        for metric in metrics.values():
            metric.sync()
    results = {"box": metrics["box"].compute(Oracle()), "cls": metrics["cls"].compute(),
               "pxap": metrics["pxap"].compute(), "miou": metrics["miou"].compute(),
               "sweep": metrics["sweep"].compute(Oracle())}
    states = {name: {k: torch.as_tensor(v).clone() for k, v in metric.state_dict().items()} for name, metric in metrics.items()}
    return {"states": states, "results": results}


def main() -> None:
    from hideseek import engine

    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args()
    ctx = engine.setup(device="cpu", seed=0)
    try:
        out = compute(ctx.rank, ctx.world_size, sync=True)
        if engine.is_main_process():
            torch.save({"world_size": ctx.world_size, **out}, args.out / "result.pt")
        engine.barrier()
    finally:
        engine.teardown(ctx)


if __name__ == "__main__":
    main()
