"""One run lifecycle for every task: config -> data -> model -> fit -> evaluate -> records.

A task (WSOL localization, segmentation, temporal action localization) describes only what
differs in a :class:`Task`: how its data opens, how its model, optimiser and loss are
built, and how a trained model is scored. :func:`train_run`, :func:`load_run` and
:func:`evaluate_run` do the rest the same way for all of them: rank 0 opens (and
generates) the data before the other ranks, the :class:`~hideseek.engine.Trainer` fits
with checkpoints and resume, the checkpoint carries the task's name, the run's config and
what the task needs to rebuild its model, and every score becomes one record.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from hideseek import engine
from hideseek.augment import set_epoch
from hideseek.engine import ConfigDict, RunContext

__all__ = ["Task", "TrainParts", "evaluate_run", "load_run", "open_main_first", "train_run", "write_record"]


@dataclass
class TrainParts:
    """What a task builds for training (the lifecycle owns the trainer)."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    step: Callable[[nn.Module, Any, int], torch.Tensor]  # (model, batch, epoch) -> loss
    scheduler: Any = None  # stepped every optimisation step
    augmentation: nn.Module | None = None  # a batch augmentation told the epoch before each epoch
    extra: dict = field(default_factory=dict)  # checkpoint entries the task needs to rebuild the model


class Task(ABC):
    """What one task supplies to the lifecycle.

    ``name`` tags checkpoints and records (``"loc"``, ``"seg"``, ``"action"``); a checkpoint
    written before the tag existed is recognised by ``legacy_keys`` in its ``extra``.
    """

    name: ClassVar[str]
    config_class: ClassVar[type[ConfigDict]]
    legacy_keys: ClassVar[tuple[str, ...]] = ()
    channels_last: ClassVar[bool] = True
    collate: ClassVar[Callable | None] = None

    def threads(self, config) -> contextlib.AbstractContextManager:
        """A context for the whole run: torch's CPU thread count set to ``config.threads``
        (when the config has one and it is not ``None``) and restored afterwards."""
        from hideseek.threads import torch_threads

        return torch_threads(getattr(config, "threads", None))

    @abstractmethod
    def open_data(self, config, *, train: bool, evaluate: bool, progress: bool) -> dict:
        """The run's data: ``"config"`` (with what opening resolved, e.g. normalisation),
        ``"fit"`` (the training set) when ``train``, and what :meth:`evaluate` needs."""

    @abstractmethod
    def build(self, config, data: Mapping, ctx: RunContext) -> TrainParts:
        """The model, optimiser, step, schedule and augmentation of a training run."""

    @abstractmethod
    def model_from_checkpoint(self, config, extra: Mapping) -> nn.Module:
        """An untrained model of the architecture a checkpoint's ``extra`` describes."""

    @abstractmethod
    def evaluate(self, model: nn.Module, config, data: Mapping, *, ctx: RunContext, run: str,
                 records: Path | None, output_dir: Path | None, extra: Mapping, progress: bool, **options) -> dict:
        """Score a trained model on the run's evaluation data, append its records, return the results."""

    def check_checkpoint_data(self, checkpoint: Path, extra: Mapping, data: Mapping) -> None:  # noqa: B027
        """Refuse data that does not fit a checkpoint (e.g. another class list); any data by default."""

    # the task's public verbs (each task module exposes them as ``train`` and ``load_run``)

    def train(self, config, output_dir: str | Path, *, records: str | Path | None = None, resume: bool = False,
              progress: bool = True, evaluate: bool = True, run: str | None = None) -> dict:
        """Train into ``output_dir``, then (optionally) evaluate and append records (see :func:`train_run`)."""
        return train_run(self, config, output_dir, records=records, resume=resume, progress=progress,
                         evaluate=evaluate, run=run)

    def load_run(self, checkpoint: str | Path) -> tuple[Any, nn.Module, dict]:
        """Config, model with trained weights, and the checkpoint's ``extra`` (see :func:`load_run`)."""
        return load_run(self, checkpoint)


def open_main_first(open_fn: Callable[[bool], dict], ctx: RunContext, progress: bool) -> dict:
    """Rank 0 opens (and, for synthetic data, generates) the data before the other ranks."""
    data = open_fn(progress and ctx.is_main) if ctx.is_main else None
    engine.barrier()
    return data if data is not None else open_fn(False)


def write_record(task: str, config, *, run: str, split: str, metrics: Mapping, policy: Mapping, ctx: RunContext,
                 wall_time: float, records: Path | None) -> None:
    """Append one result record (rank 0 only; nothing without a record store)."""
    if records is None or not ctx.is_main:
        return
    from hideseek.results.records import append_record, make_record

    append_record(records, make_record(task=task, dataset=config.dataset, split=split, metrics=dict(metrics),
                                       config=config.to_dict(), policy=dict(policy), seed=config.seed,
                                       device=str(ctx.device), wall_time=wall_time, run=run))


def train_run(task: Task, config, output_dir: str | Path, *, records: str | Path | None = None, resume: bool = False,
              progress: bool = True, evaluate: bool = True, run: str | None = None) -> dict:
    """Train, then (optionally) evaluate and append records.

    Returns ``{"run", "output_dir", "checkpoint", "fit", "results", "train_seconds"}``.
    """
    output_dir = Path(output_dir)
    run = run or output_dir.name
    with task.threads(config):
        ctx = engine.setup(config.device, config.seed)
        try:
            start = time.perf_counter()
            data = open_main_first(lambda p: task.open_data(config, train=True, evaluate=evaluate, progress=p),
                                   ctx, progress)
            config = data["config"]
            parts = task.build(config, data, ctx)
            trainer = engine.Trainer(parts.model, parts.optimizer, ctx=ctx, output_dir=output_dir, amp=config.amp,
                                     progress=progress, scheduler=parts.scheduler, scheduler_interval="step",
                                     channels_last=task.channels_last)

            def on_epoch_start(epoch: int) -> None:
                if parts.augmentation is not None:
                    parts.augmentation.set_epoch(epoch)
                set_epoch(trainer.model, epoch)

            extra = {"task": task.name, "config": config.to_dict(), "run": run, **parts.extra}
            fit = trainer.fit(data["fit"], epochs=config.epochs, batch_size=config.batch_size, step_fn=parts.step,
                              num_workers=config.num_workers, collate_fn=task.collate, resume=resume, extra=extra,
                              on_epoch_start=on_epoch_start)
            train_seconds = time.perf_counter() - start
            results = {}
            if evaluate:
                results = task.evaluate(trainer.model, config, data, ctx=ctx, run=run,
                                        records=Path(records) if records else None, output_dir=output_dir,
                                        extra=extra, progress=progress)
            return {"run": run, "output_dir": str(output_dir), "checkpoint": fit["checkpoint"], "fit": fit,
                    "results": results, "train_seconds": train_seconds}
        finally:
            engine.teardown(ctx)


def _is_task_checkpoint(task: Task, extra: Mapping) -> bool:
    if "task" in extra:
        return extra["task"] == task.name and "config" in extra
    return bool(task.legacy_keys) and all(key in extra for key in ("config", *task.legacy_keys))


def load_run(task: Task, checkpoint: str | Path) -> tuple[Any, nn.Module, dict]:
    """Config, model with trained weights, and the checkpoint's ``extra`` of a training run."""
    checkpoint = Path(checkpoint)
    extra = engine.read_checkpoint(checkpoint).get("extra") or {}
    if not _is_task_checkpoint(task, extra):
        raise ValueError(f"{checkpoint}: not a 'hideseek {task.name} train' checkpoint (no {task.name} run config "
                         "inside)")
    config = task.config_class.from_dict(extra["config"])
    model = task.model_from_checkpoint(config, extra)
    engine.load_checkpoint_weights(checkpoint, model)
    return config, model, dict(extra)


def evaluate_run(task: Task, checkpoint: str | Path, *, overrides: Mapping | Callable[[Any], Mapping] | None = None,
                 records: str | Path | None = None, output_dir: str | Path | None = None, progress: bool = True,
                 **options) -> dict:
    """Score a saved run on its own data, as its training run did.

    ``overrides`` replaces config fields first (``device``, a moved ``data_root``, the
    splits to score; ``None`` values are skipped), given as a mapping or as a function of
    the saved config; ``options`` go to the task's :meth:`Task.evaluate`.
    """
    config, model, extra = load_run(task, checkpoint)
    if callable(overrides):
        overrides = overrides(config)
    if overrides:
        config = dataclasses.replace(config, **{k: v for k, v in overrides.items() if v is not None})
    with task.threads(config):
        ctx = engine.setup(config.device, config.seed)
        try:
            model.to(ctx.device)
            data = open_main_first(lambda p: task.open_data(config, train=False, evaluate=True, progress=p),
                                   ctx, progress)
            task.check_checkpoint_data(Path(checkpoint), extra, data)
            run = str(extra.get("run", Path(checkpoint).parent.name))
            return task.evaluate(model, data["config"], data, ctx=ctx, run=run,
                                 records=Path(records) if records else None,
                                 output_dir=Path(output_dir) if output_dir else None, extra=extra,
                                 progress=progress, **options)
        finally:
            engine.teardown(ctx)
