"""One run lifecycle for every task: config -> data -> model -> fit -> evaluate -> records.

A task (WSOL localization, segmentation, temporal action localization) describes only what
differs in a :class:`Task`: how its data opens, how its model, optimiser and loss are
built, and how a trained model is scored. :func:`train_run`, :func:`load_run` and
:func:`evaluate_run` do the rest the same way for all of them: rank 0 opens (and
generates) the data before the other ranks, the :class:`~hideseek.engine.Trainer` fits
with checkpoints and resume, the checkpoint carries the task's name, the run's config and
what the task needs to rebuild its model, and every score becomes one record.

A run folder belongs to one run (see :func:`train_run`):

* It is locked (``filelock``, ``<folder>/.hideseek.lock``) for the run's lifetime: a
  second run started into it is refused, naming the folder.
* A folder that holds a run (``last.pt``) is refused unless the run is resumed
  (``resume``, ``--resume``) or replaced (``overwrite``, ``--overwrite``: its checkpoint
  and log are removed first; other files are left and rewritten by the new run).
* A resume refuses a config that changed, naming the fields (old -> new), except for the
  fields that say where and how the run executes (:attr:`Task.resume_may_change`: device,
  workers, threads, image cache, where the data lives) and ``epochs``, which may grow (or
  shrink to no fewer than the epochs done): the per-step LR schedule is then the one a
  run planned for the new length has, continued from the saved step count (see
  :meth:`hideseek.engine.Trainer.fit`); the change is kept in the checkpoint's
  ``extra["resumes"]``. The data must give the same model (class list, input size).
* Temporary files of atomic writes killed mid-way (``.*.tmp``) are removed at the start.
* Ctrl-C leaves the last epoch's checkpoint, from which ``--resume`` continues bit for
  bit; the interrupted epoch is trained again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
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
from hideseek.inputs import InputError

__all__ = ["RunFolderError", "Task", "TrainParts", "evaluate_run", "load_run", "open_main_first", "train_run",
           "write_record"]

LOCK_NAME = ".hideseek.lock"
LOG_NAME = "train.log"  # the Trainer's log (log_name "train")


class RunFolderError(InputError):
    """A run folder cannot take this run (holds another, is locked, or the resume changed the
    config); the message names the folder or checkpoint and what to do (one line)."""


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
    # config fields a resume may change: where and how the run executes, where its data lives
    # (``epochs`` is checked on its own: it may grow)
    resume_may_change: ClassVar[frozenset[str]] = frozenset(
        {"device", "num_workers", "threads", "cache_images", "data_root", "metadata_root", "mask_root",
         "features_dir", "ground_truth"})
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
              overwrite: bool = False, progress: bool = True, evaluate: bool = True, run: str | None = None) -> dict:
        """Train into ``output_dir``, then (optionally) evaluate and append records (see :func:`train_run`)."""
        return train_run(self, config, output_dir, records=records, resume=resume, overwrite=overwrite,
                         progress=progress, evaluate=evaluate, run=run)

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
    """Append one result record (rank 0 only; nothing without a record store).

    The record names its dataset, network and method as the published registry does
    (:mod:`hideseek.results.names`) and carries the run's ``run_id``
    (:func:`hideseek.results.records.run_identity` of ``run`` and the config): an evaluation
    of a checkpoint writes the keys of its training run's evaluation and replaces those
    records in every table (:func:`hideseek.results.records.latest_records`).
    """
    if records is None or not ctx.is_main:
        return
    from hideseek.results.records import append_record, make_record

    append_record(records, make_record(task=task, dataset=config.dataset, split=split, metrics=dict(metrics),
                                       config=config.to_dict(), policy=dict(policy), seed=config.seed,
                                       device=str(ctx.device), wall_time=wall_time, run=run))


def _check_records(records: str | Path | None) -> None:
    """A record store that cannot be written is refused before the work whose records it holds."""
    if records is not None:
        from hideseek.results.records import check_store

        check_store(records)


def train_run(task: Task, config, output_dir: str | Path, *, records: str | Path | None = None, resume: bool = False,
              overwrite: bool = False, progress: bool = True, evaluate: bool = True, run: str | None = None) -> dict:
    """Train, then (optionally) evaluate and append records.

    ``output_dir`` is locked for the whole run. When it already holds a run (``last.pt``),
    ``resume=True`` continues it (the config must be the saved one, but for
    :attr:`Task.resume_may_change` and a larger ``epochs``) and ``overwrite=True`` replaces it;
    without either it is refused (:class:`RunFolderError`). See the module docstring.

    Returns ``{"run", "output_dir", "checkpoint", "fit", "results", "train_seconds"}``.
    """
    _check_records(records)
    output_dir = Path(output_dir)
    run = run or output_dir.name
    epochs = getattr(config, "epochs", None)
    if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1:
        raise InputError(f"--epochs {epochs}: expected a whole number of epochs >= 1")
    if resume and overwrite:
        raise InputError(f"{output_dir}: --resume and --overwrite exclude each other (continue the run, or replace it)")
    with task.threads(config):
        ctx = engine.setup(config.device, config.seed)
        try:
            with _run_folder(output_dir, ctx.is_main):
                saved = _prepare_folder(task, config, output_dir, resume=resume, overwrite=overwrite,
                                        main=ctx.is_main)
                return _train_in_folder(task, config, output_dir, ctx, saved, records=records, resume=resume,
                                        progress=progress, evaluate=evaluate, run=run)
        finally:
            engine.teardown(ctx)


def _train_in_folder(task: Task, config, output_dir: Path, ctx: RunContext, saved: Mapping | None, *,
                     records: str | Path | None, resume: bool, progress: bool, evaluate: bool, run: str) -> dict:
    start = time.perf_counter()
    data = open_main_first(lambda p: task.open_data(config, train=True, evaluate=evaluate, progress=p), ctx, progress)
    config = data["config"]
    parts = task.build(config, data, ctx)
    resumes = []
    if saved is not None:  # the config as the data resolved it (normalisation, ...) and what the data gives
        checkpoint = output_dir / engine.CHECKPOINT_NAME
        changes = _check_resume_config(task, saved, config, checkpoint, resolved=True)
        _check_same_model(saved["extra"], parts.extra, checkpoint)
        resumes = list(saved["extra"].get("resumes") or [])
        if changes:
            resumes.append({"after_epoch": saved["epoch"],
                            "changed": {key: [old, new] for key, (old, new) in changes.items()}})
    trainer = engine.Trainer(parts.model, parts.optimizer, ctx=ctx, output_dir=output_dir, amp=config.amp,
                             progress=progress, scheduler=parts.scheduler, scheduler_interval="step",
                             channels_last=task.channels_last)

    def on_epoch_start(epoch: int) -> None:
        if parts.augmentation is not None:
            parts.augmentation.set_epoch(epoch)
        set_epoch(trainer.model, epoch)

    extra = {"task": task.name, "config": config.to_dict(), "run": run, **parts.extra}
    if resumes:
        extra["resumes"] = resumes
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


@contextlib.contextmanager
def _run_folder(output_dir: Path, main: bool):
    """Create and lock ``output_dir`` for this run (rank 0), removing stale temporary files."""
    if not main:
        yield
        return
    import filelock

    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise RunFolderError(f"{output_dir}: cannot create the run folder ({error.strerror or error})") from None
    lock = filelock.FileLock(output_dir / LOCK_NAME, timeout=0)
    try:
        lock.acquire()
    except filelock.Timeout:
        raise RunFolderError(f"{output_dir}: another run is training in this folder (it holds {LOCK_NAME}); wait "
                             "for it to end or give another --output") from None
    except OSError as error:
        raise RunFolderError(f"{output_dir}: cannot lock the run folder ({error.strerror or error})") from None
    try:
        engine.remove_stale_temporaries(output_dir)  # no other run writes here: we hold the lock
        yield
    finally:
        lock.release()


def _prepare_folder(task: Task, config, output_dir: Path, *, resume: bool, overwrite: bool,
                    main: bool) -> dict | None:
    """Refuse a folder holding a run unless resumed or replaced; returns the checkpoint to resume, if any.

    Rank 0 decides (and removes a replaced run); the other ranks follow its files."""
    checkpoint = output_dir / engine.CHECKPOINT_NAME
    if not main:
        return None
    if overwrite:
        for name in (engine.CHECKPOINT_NAME, LOG_NAME):
            with contextlib.suppress(FileNotFoundError):
                (output_dir / name).unlink()
        return None
    if not checkpoint.exists():
        return None
    if not resume:
        raise RunFolderError(f"{output_dir}: holds a run ({checkpoint.name}); give --resume to continue it or "
                             "--overwrite to replace it")
    saved = engine.read_checkpoint(checkpoint)  # checksums verified: a corrupt file is named as such
    extra = saved.get("extra") if isinstance(saved, Mapping) else None
    if not isinstance(extra, Mapping) or not _is_task_checkpoint(task, extra):
        raise RunFolderError(f"{checkpoint}: not a 'hideseek {task.name} train' checkpoint; cannot --resume it "
                             "(--overwrite replaces it)")
    saved = {"epoch": int(saved.get("epoch", 0)), "extra": extra}
    _check_resume_config(task, saved, config, checkpoint, resolved=False)
    return saved


def _shown(value) -> str:
    try:
        return json.dumps(value, sort_keys=True)
    except (TypeError, ValueError):
        return repr(value)


def _check_resume_config(task: Task, saved: Mapping, config, checkpoint: Path, *, resolved: bool) -> dict:
    """The allowed changes of ``config`` against the checkpoint's; refuses any other, naming them.

    Before the data opens (``resolved=False``) a field this run leaves ``None`` is skipped:
    opening the data resolves it, and the second check compares it."""
    old_config = saved["extra"]["config"]
    new_config = config.to_dict()
    changes, refused = {}, []
    for key in sorted(set(old_config) | set(new_config)):
        old, new = old_config.get(key), new_config.get(key)
        if old == new or (not resolved and new is None):
            continue
        if key in task.resume_may_change or key == "epochs":
            changes[key] = (old, new)
        else:
            refused.append(f"{key} {_shown(old)} -> {_shown(new)}")
    if refused:
        raise RunFolderError(f"{checkpoint}: --resume with a changed config ({'; '.join(refused)}); resume with the "
                             "saved values, or --overwrite to start the run again")
    done = saved["epoch"]
    if config.epochs < done:
        raise RunFolderError(f"{checkpoint}: the run has completed {done} epochs, --epochs {config.epochs} is fewer; "
                             f"give --epochs {done} or more to resume it")
    return changes


def _same(a, b) -> bool:
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.shape == b.shape \
            and torch.equal(a.cpu(), b.cpu())
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def _check_same_model(saved_extra: Mapping, extra: Mapping, checkpoint: Path) -> None:
    """What the data gives the model (classes, input size, feature statistics) must not change on resume."""
    changed = [key for key in sorted(extra) if key in saved_extra and not _same(saved_extra[key], extra[key])]
    if changed:
        shown = "; ".join(f"{key} {_shown(saved_extra[key])} -> {_shown(extra[key])}"
                          if not isinstance(extra[key], torch.Tensor) else f"{key} changed" for key in changed)
        raise RunFolderError(f"{checkpoint}: --resume on data that changed ({shown[:300]}); resume on the run's "
                             "data, or --overwrite to start the run again")


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
    _check_records(records)
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
