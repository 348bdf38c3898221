"""Tiny model, data and metric shared by tests/test_engine.py and its torchrun launches.

Run under torchrun (``python -m torch.distributed.run --nproc_per_node=2 --standalone
tests/engine_worker.py --out DIR``) it evaluates and trains on CPU with gloo and rank 0
saves ``DIR/result.pt``; the test runs the same functions in one process and compares.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from hideseek import engine

NUM_CLASSES = 4
EVAL_SIZE = 37  # odd on purpose: 2 ranks get 19 and 18 samples
TRAIN_SIZE = 48  # a multiple of the global batch, so no rank pads


class ToyImages(torch.utils.data.Dataset):
    """Random 3x8x8 images with labels; items are ``(x, y, index)``.

    ``noise=True`` adds fresh ``torch.rand`` noise on every read (drawn from the loading
    process's RNG), which makes the worker seeding part of what a test compares.
    """

    def __init__(self, size: int, seed: int = 1234, noise: bool = False):
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(size, 3, 8, 8, generator=g)
        self.y = torch.randint(0, NUM_CLASSES, (size,), generator=g)
        self.noise = noise

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, index: int):
        x = self.x[index]
        if self.noise:
            x = x + 0.1 * torch.rand_like(x)
        return x, self.y[index], index


def build_model(dropout: float = 0.0) -> nn.Module:
    """Conv -> ReLU -> (dropout) -> global pool -> linear. No batchnorm."""
    layers: list[nn.Module] = [nn.Conv2d(3, 8, 3, padding=1), nn.ReLU()]
    if dropout:
        layers.append(nn.Dropout(dropout))
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, NUM_CLASSES)]
    return nn.Sequential(*layers)


def step_fn(model, batch, epoch):
    x, y, _ = batch
    return F.cross_entropy(model(x), y)


class CountMetric:
    """Exact integer counts (plus one float64 sum) in the accumulator style of the rooms."""

    def __init__(self, dataset_size: int):
        self.correct = torch.zeros(NUM_CLASSES, dtype=torch.int64)
        self.total = torch.zeros(NUM_CLASSES, dtype=torch.int64)
        self.seen = torch.zeros(dataset_size, dtype=torch.int64)  # visits per sample id
        self.logit_sum = torch.zeros((), dtype=torch.float64)

    def update(self, logits, targets, index):
        pred = logits.argmax(1)
        self.correct += torch.bincount(targets[pred == targets], minlength=NUM_CLASSES)
        self.total += torch.bincount(targets, minlength=NUM_CLASSES)
        self.seen += torch.bincount(index, minlength=len(self.seen))
        self.logit_sum += logits.double().sum()

    def states(self) -> dict:
        return {"correct": self.correct, "total": self.total, "seen": self.seen, "logit_sum": self.logit_sum}

    def sync(self):
        engine.sync_states(self.states())


def run_eval(ctx, batch_size: int = 4) -> dict:
    engine.seed_everything(ctx.seed)
    model = build_model()
    data = ToyImages(EVAL_SIZE)
    metric = CountMetric(EVAL_SIZE)

    def eval_fn(model, batch):
        x, y, index = batch
        metric.update(model(x), y, index)

    summary = engine.evaluate(model, data, ctx=ctx, batch_size=batch_size, eval_fn=eval_fn, progress=False)
    metric.sync()
    return {"samples": summary["samples"], **{k: v.clone() for k, v in metric.states().items()}}


def run_train(ctx, output_dir, batch_size: int, epochs: int = 2) -> dict:
    engine.seed_everything(ctx.seed)
    model = build_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    trainer = engine.Trainer(model, optimizer, ctx=ctx, output_dir=output_dir, progress=False,
                             amp=False)  # fp32: the test is about DDP averaging, not bf16 rounding
    result = trainer.fit(ToyImages(TRAIN_SIZE), epochs=epochs, batch_size=batch_size, step_fn=step_fn)
    return {
        "state": {k: v.detach().clone() for k, v in trainer.model.state_dict().items()},
        "losses": [r["loss"] for r in result["history"]],
        "global_step": result["global_step"],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--batch-size", type=int, default=4)
    args = parser.parse_args()
    ctx = engine.setup(device="cpu", seed=0)
    try:
        assert ctx.distributed == (int(os.environ.get("WORLD_SIZE", "1")) > 1)
        evaluation = run_eval(ctx)
        training = run_train(ctx, args.out / "run", batch_size=args.batch_size)
        if engine.is_main_process():
            torch.save(
                {"world_size": ctx.world_size, "eval": evaluation, "train": training},
                args.out / "result.pt",
            )
        engine.barrier()
    finally:
        engine.teardown(ctx)


if __name__ == "__main__":
    main()
