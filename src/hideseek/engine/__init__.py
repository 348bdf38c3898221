"""What training and evaluation share: device, seeding, DDP, loaders, checkpoints, progress.

The engine knows nothing about localization or video; the rooms hand it callables::

    ctx = engine.setup(device="auto", seed=0)        # also joins the group under torchrun
    model = build_model()                            # same init on every rank (same seed)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    trainer = engine.Trainer(model, optimizer, ctx=ctx, output_dir="runs/x")
    trainer.fit(train_set, epochs=10, batch_size=64, step_fn=step, resume=True,
                extra={"config": config}, on_epoch_start=hiding.set_epoch)
    trainer.evaluate(val_set, batch_size=128, eval_fn=update_metrics)
    metric.sync()                                    # sum the count tensors over ranks
    engine.teardown(ctx)

``step_fn(model, batch, epoch) -> loss`` and ``eval_fn(model, batch)`` receive the batch
already on the device (tensors found in tuples, lists and dicts are moved; 4-D float
tensors become channels_last on CUDA when that is switched on).

Determinism
-----------
* Data order of epoch ``e`` is a pure function of ``(seed, e)``: the training sampler is a
  :class:`~torch.utils.data.DistributedSampler` (permutation from ``seed + e``, padded to a
  multiple of the world size, rank ``r`` takes ``perm[r::world]``). The loader's own
  generator, which seeds its worker processes, is reseeded from ``(seed, e, rank)``.
* Before each epoch the global RNGs (python, numpy, torch CPU and CUDA) are reseeded from
  ``(seed, e, rank)``, so dropout and any other stateful randomness of epoch ``e`` does not
  depend on what ran before it, in this process or in an earlier, interrupted one.
  (It does depend on ``num_workers``: with 0 workers a dataset's own random draws share
  the main process's stream.) Hiding augmentations should not use these streams at all:
  they are pure functions of ``(seed, epoch, sample id)``, told the epoch through
  ``on_epoch_start``.
* Checkpoints also store every rank's RNG state and loading restores it when the world
  size matches; the per-epoch reseed is what makes a resume exact regardless.
* So, on CPU, "train N epochs" and "train 1 epoch, stop, resume to N" end with the same
  bits (tested with dropout, shuffling and 0 or 2 workers). On CUDA, kernels may be
  nondeterministic unless ``setup(deterministic=True)``.

Distributed
-----------
Launched by ``torchrun`` (``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` set, ``WORLD_SIZE > 1``),
:func:`setup` joins the process group (nccl on CUDA, gloo on CPU), training wraps the
model in DistributedDataParallel, and evaluation shards WITHOUT padding: rank ``r`` reads
indices ``r, r + world, ...``, so summed counts see every sample exactly once. Evaluation
runs the unwrapped module (a DDP forward would broadcast buffers, a collective that ranks
with different numbers of batches would never finish).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import logging
import math
import os
import random
import sys
import time
import uuid
import warnings
import zipfile
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler
from tqdm import tqdm

from hideseek.inputs import InputError

__all__ = [
    "CHECKPOINT_NAME",
    "CheckpointError",
    "ConfigDict",
    "EpochLoader",
    "RunContext",
    "ShardSampler",
    "Trainer",
    "all_reduce_sum",
    "available_devices",
    "barrier",
    "cpu_has_native_bf16",
    "derive_seed",
    "evaluate",
    "get_rng_state",
    "is_main_process",
    "load_checkpoint_weights",
    "read_checkpoint",
    "make_loader",
    "resolve_device",
    "verify_checkpoint",
    "seed_everything",
    "set_rng_state",
    "setup",
    "sync_states",
    "teardown",
    "to_device",
    "strip_wrapper_prefixes",
]

CHECKPOINT_NAME = "last.pt"
# first word of every derived seed, so the streams can never coincide
_SEED_EPOCH = 0x45504F43  # global RNGs at the start of an epoch
_SEED_LOADER = 0x4C4F4144  # a loader's generator (seeds its worker processes)
_CHECKPOINT_FORMAT = "hideseek-checkpoint"
_CHECKPOINT_VERSION = 1

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- configs


class ConfigDict:
    """``to_dict`` / ``from_dict`` for the config dataclasses of runs and benchmarks.

    ``to_dict`` is JSON-safe (tuples become lists), as stored in checkpoints and records;
    ``from_dict`` refuses unknown keys, naming the valid ones, and turns the lists of the
    ``_tuple_fields`` back into tuples (every list value when ``_tuple_fields`` is None).
    ``_config_name`` is what the error calls the keys ("unknown config keys ...").
    """

    _config_name = "config"
    _tuple_fields: tuple[str, ...] | None = ()

    def to_dict(self) -> dict:
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]):
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown {cls._config_name} keys {unknown}; valid keys: {sorted(known)}")
        values = dict(values)
        for key, value in values.items():
            if isinstance(value, list) and (cls._tuple_fields is None or key in cls._tuple_fields):
                values[key] = tuple(value)
        return cls(**values)


# --------------------------------------------------------------------------- context


@dataclass
class RunContext:
    """Where this process runs and which part of the job it is."""

    device: torch.device
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    distributed: bool = False
    seed: int = 0
    _owns_group: bool = field(default=False, repr=False)

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def available_devices() -> list[str]:
    """The device names this machine offers: ``cpu``, then ``cuda:N`` and ``mps`` where present."""
    names = ["cpu"]
    if torch.cuda.is_available():
        names += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        names.append("mps")
    return names


def resolve_device(device: str | torch.device = "auto", local_rank: int = 0) -> torch.device:
    """``"auto"`` -> ``cuda:<local_rank>`` when CUDA is available, else ``cpu``.

    An explicit ``"cuda"`` (no index) also picks ``cuda:<local_rank>``; an explicit index is
    honoured. Asking for a device the machine does not have is an error naming ``--device``
    and the devices there are (an :class:`~hideseek.inputs.InputError`, a ``ValueError``),
    not a silent fallback.
    """
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda", local_rank) if torch.cuda.is_available() else torch.device("cpu")
    here = ", ".join(available_devices())
    expected = f"--device {device}: expected 'auto', 'cpu', 'cuda' or 'cuda:N' (devices here: {here})"
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise InputError(expected) from None
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(f"--device {device}: this machine has no CUDA device (devices here: {here})")
        if resolved.index is None:
            resolved = torch.device("cuda", local_rank)
        if resolved.index >= torch.cuda.device_count():
            raise InputError(f"--device {device}: only {torch.cuda.device_count()} CUDA device(s) visible "
                             f"(devices here: {here})")
    elif resolved.type == "mps" and "mps" not in here.split(", "):
        raise InputError(f"--device {device}: this machine has no MPS device (devices here: {here})")
    elif resolved.type not in ("cpu", "cuda", "mps"):
        raise InputError(expected)
    return resolved


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"environment variable {name}={value!r}: expected an integer") from None


def setup(device: str | torch.device = "auto", seed: int = 0, *, deterministic: bool = False) -> RunContext:
    """Pick the device, seed every RNG with ``seed`` and, under torchrun, join the group.

    Every rank is seeded with the same ``seed`` so that models built right after
    ``setup`` start identical everywhere (DDP also broadcasts rank 0's weights).
    ``deterministic=True`` asks torch for deterministic kernels (slower on CUDA).
    """
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    world_size = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    local_rank = _env_int("LOCAL_RANK", 0)
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"inconsistent torchrun environment: RANK={rank}, WORLD_SIZE={world_size}")
    distributed = world_size > 1
    resolved = resolve_device(device, local_rank)
    owns_group = False
    if distributed:
        if not dist.is_available():
            raise RuntimeError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
        if resolved.type == "cuda":
            torch.cuda.set_device(resolved)
        if not dist.is_initialized():
            backend = "nccl" if resolved.type == "cuda" else "gloo"
            kwargs = {"device_id": resolved} if resolved.type == "cuda" else {}
            dist.init_process_group(backend=backend, init_method="env://", **kwargs)
            owns_group = True
        rank, world_size = dist.get_rank(), dist.get_world_size()
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    seed_everything(seed)
    return RunContext(
        device=resolved,
        rank=rank,
        world_size=world_size,
        local_rank=local_rank,
        distributed=distributed,
        seed=seed,
        _owns_group=owns_group,
    )


def teardown(ctx: RunContext) -> None:
    """Leave the process group if :func:`setup` joined it."""
    if ctx._owns_group and dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
        ctx._owns_group = False


# --------------------------------------------------------------------------- seeding / RNG


def derive_seed(*words: int) -> int:
    """A 64-bit seed that is a pure function of the given non-negative integers."""
    state = np.random.SeedSequence([int(w) for w in words]).generate_state(2, dtype=np.uint32)
    return (int(state[0]) << 32 | int(state[1])) & 0x7FFF_FFFF_FFFF_FFFF


def seed_everything(seed: int) -> None:
    """Seed python ``random``, numpy's global RNG and torch (CPU and every CUDA device)."""
    random.seed(seed)
    np.random.seed(seed & 0xFFFF_FFFF)
    torch.manual_seed(seed)  # also seeds all CUDA devices


def get_rng_state() -> dict:
    """The global RNG states as tensors and plain numbers (safe for ``weights_only`` loads)."""
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": {"version": version, "state": torch.tensor(internal, dtype=torch.int64), "gauss": gauss},
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping) -> None:
    """Restore what :func:`get_rng_state` returned."""
    py = state["python"]
    random.setstate((py["version"], tuple(int(v) for v in py["state"].tolist()), py["gauss"]))
    npy = state["numpy"]
    np.random.set_state(
        (npy["kind"], npy["keys"].numpy().astype(np.uint32), npy["pos"], npy["has_gauss"], npy["cached_gaussian"])
    )
    torch.set_rng_state(state["torch"].cpu())
    cuda = state.get("cuda")
    if cuda is not None and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([s.cpu() for s in cuda])


# --------------------------------------------------------------------------- collectives


def _dist_ready() -> bool:
    return dist.is_available() and dist.is_initialized()


def is_main_process() -> bool:
    """True on rank 0, and in any process that is not part of a group."""
    return not _dist_ready() or dist.get_rank() == 0


def barrier() -> None:
    """Wait for every rank (no-op outside a process group)."""
    if _dist_ready():
        dist.barrier()


def _reduce_device() -> torch.device | None:
    """nccl reduces CUDA tensors only; gloo reduces CPU tensors."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return None


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum ``tensor`` over all ranks, in place; returns it (no-op outside a group).

    Integer tensors sum exactly; floating tensors sum in an order the backend chooses.
    A tensor on the wrong device for the backend is reduced through a temporary copy.
    """
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"all_reduce_sum expects a tensor, got {type(tensor).__name__}")
    if tensor.dtype == torch.bool or tensor.is_complex():
        raise TypeError(f"all_reduce_sum: cannot sum a {tensor.dtype} tensor; use an integer or float dtype")
    if not _dist_ready():
        return tensor
    target = _reduce_device()
    if target is None and tensor.device.type != "cpu" and dist.get_backend() == "gloo":
        target = torch.device("cpu")
    if target is not None and tensor.device != target:
        work = tensor.to(target)
        dist.all_reduce(work, op=dist.ReduceOp.SUM)
        tensor.copy_(work)
    else:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def sync_states(tensors: Mapping[str, torch.Tensor]) -> Mapping[str, torch.Tensor]:
    """Sum every tensor of ``tensors`` over all ranks, in place (e.g. a metric's counts).

    All ranks must call this with the same names, shapes and dtypes, in any dict order.
    """
    for name in sorted(tensors):
        tensor = tensors[name]
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(f"sync_states: state {name!r} is a {type(tensor).__name__}, not a tensor")
        try:
            all_reduce_sum(tensor)
        except TypeError as error:
            raise TypeError(f"sync_states: state {name!r}: {error}") from None
    return tensors


# --------------------------------------------------------------------------- data


class ShardSampler(Sampler[int]):
    """Evaluation sharding: rank ``r`` takes indices ``r, r + world, ...`` in order.

    Nothing is padded or repeated, so counts summed over ranks are exact; ranks may get
    different numbers of samples (at most one apart).
    """

    def __init__(self, length: int, num_replicas: int = 1, rank: int = 0):
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} outside [0, {num_replicas})")
        self.length, self.num_replicas, self.rank = int(length), int(num_replicas), int(rank)

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, self.length, self.num_replicas))

    def __len__(self) -> int:
        return len(range(self.rank, self.length, self.num_replicas))

    def set_epoch(self, epoch: int) -> None:  # evaluation order never changes
        pass


def _seed_worker(worker_id: int) -> None:
    # torch already seeded this worker with base_seed + worker_id (base_seed comes from the
    # loader's generator); give numpy and python the same, so they are not copies of the parent
    seed = torch.initial_seed()
    random.seed(seed)
    np.random.seed(seed & 0xFFFF_FFFF)


class EpochLoader(DataLoader):
    """A DataLoader whose whole order is fixed by ``set_epoch(e)`` and the seed it was built with."""

    def __init__(self, *args, seed: int = 0, rank: int = 0, **kwargs):
        super().__init__(*args, **kwargs)
        self.seed = seed
        self.rank = rank
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)
        # the iterator draws the workers' base seed from this generator; the rank is part of
        # it so that workers on different ranks do not repeat each other's random numbers
        self.generator.manual_seed(derive_seed(_SEED_LOADER, self.seed, epoch, self.rank))


def make_loader(
    dataset: Dataset,
    batch_size: int,
    *,
    train: bool,
    seed: int = 0,
    num_workers: int = 0,
    drop_last: bool = False,
    collate_fn: Callable | None = None,
    rank: int | None = None,
    world_size: int | None = None,
    pin_memory: bool = False,
) -> EpochLoader:
    """A loader over this rank's part of ``dataset``; call ``loader.set_epoch(e)`` each epoch.

    ``train=True``: shuffled by ``(seed, epoch)``, padded by repeating samples so every
    rank gets the same number (a DistributedSampler). ``train=False``: in order, rank ``r``
    takes ``r::world``, never padded. ``rank``/``world_size`` default to the process group.
    Workers are not persistent: each epoch starts them from seeds derived from the epoch.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if rank is None or world_size is None:
        ready = _dist_ready()
        rank = dist.get_rank() if ready else 0
        world_size = dist.get_world_size() if ready else 1
    if train:
        sampler: Sampler = DistributedSampler(
            dataset, num_replicas=world_size, rank=rank, shuffle=True, seed=seed, drop_last=False
        )
    else:
        sampler = ShardSampler(len(dataset), world_size, rank)
    loader = EpochLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        collate_fn=collate_fn,
        drop_last=drop_last,
        pin_memory=pin_memory,
        worker_init_fn=_seed_worker if num_workers > 0 else None,
        generator=torch.Generator(),
        persistent_workers=False,
        seed=seed,
        rank=rank,
    )
    loader.set_epoch(0)
    return loader


def to_device(batch: Any, device: torch.device, *, channels_last: bool = False) -> Any:
    """Move the tensors of a (nested) tuple / list / dict batch to ``device``."""
    if isinstance(batch, torch.Tensor):
        non_blocking = device.type == "cuda"
        if channels_last and batch.dim() == 4 and batch.is_floating_point():
            return batch.to(device, non_blocking=non_blocking, memory_format=torch.channels_last)
        return batch.to(device, non_blocking=non_blocking)
    if isinstance(batch, Mapping):
        return type(batch)((k, to_device(v, device, channels_last=channels_last)) for k, v in batch.items())
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):  # namedtuple
        return type(batch)(*(to_device(v, device, channels_last=channels_last) for v in batch))
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(v, device, channels_last=channels_last) for v in batch)
    return batch


def _batch_len(batch: Any) -> int:
    """Number of samples in a batch: the leading size of its first tensor."""
    if isinstance(batch, torch.Tensor):
        return int(batch.shape[0]) if batch.dim() else 1
    values: Sequence = list(batch.values()) if isinstance(batch, Mapping) else batch
    if isinstance(values, (list, tuple)):
        for value in values:
            if isinstance(value, (torch.Tensor, Mapping, list, tuple)):
                n = _batch_len(value)
                if n:
                    return n
        return len(values)
    return 0


# --------------------------------------------------------------------------- AMP


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 in hardware (AVX512-BF16 or AMX) through oneDNN."""
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def _amp_dtype(amp: bool | str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype, or None when AMP is off.

    ``True``: on CUDA bf16 where supported, else fp16; on a CPU bf16 only when it has
    native bf16 (AMX / AVX512-BF16: several times faster there, while emulated bf16 would be
    slower than fp32), else off. ``"bf16"`` forces bf16 on either; ``"fp16"`` is CUDA-only.
    """
    if amp is False or amp is None or device.type not in ("cuda", "cpu"):
        return None
    if amp is True:
        if device.type == "cpu":
            return torch.bfloat16 if cpu_has_native_bf16() else None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    choices = {"bf16": torch.bfloat16, "bfloat16": torch.bfloat16, "fp16": torch.float16, "float16": torch.float16}
    if amp not in choices:
        raise ValueError(f"amp={amp!r}: expected True, False, 'bf16' or 'fp16'")
    if device.type == "cpu" and choices[amp] == torch.float16:
        raise ValueError("amp='fp16' needs CUDA; on a CPU use 'bf16' or False")
    return choices[amp]


def _autocast(device: torch.device, dtype: torch.dtype | None):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


# --------------------------------------------------------------------------- evaluation


@torch.no_grad()
def evaluate(
    model: nn.Module,
    dataset: Dataset,
    *,
    ctx: RunContext,
    batch_size: int,
    eval_fn: Callable[[nn.Module, Any], Any],
    amp: bool | str = True,
    channels_last: bool = True,
    num_workers: int = 0,
    collate_fn: Callable | None = None,
    progress: bool = True,
    desc: str = "eval",
) -> dict:
    """Run ``eval_fn(model, batch)`` over this rank's shard (``r::world``) in eval mode.

    The model's train/eval mode is restored afterwards. Returns ``{"samples": n, "seconds": t}``
    with ``n`` summed over ranks (always ``len(dataset)``). Metric accumulators updated by
    ``eval_fn`` still hold this rank's counts only: call their ``sync()`` (or
    :func:`sync_states`) once afterwards on every rank.
    """
    on_cuda = ctx.device.type == "cuda"
    loader = make_loader(
        dataset,
        batch_size,
        train=False,
        seed=ctx.seed,
        num_workers=num_workers,
        collate_fn=collate_fn,
        rank=ctx.rank,
        world_size=ctx.world_size,
        pin_memory=on_cuda,
    )
    dtype = _amp_dtype(amp, ctx.device)
    was_training = model.training
    model.eval()
    seen = 0
    start = time.perf_counter()
    bar = tqdm(total=len(loader), desc=desc, unit="batch", disable=not (progress and ctx.is_main), leave=False)
    try:
        for batch in loader:
            batch = to_device(batch, ctx.device, channels_last=channels_last and on_cuda)
            with _autocast(ctx.device, dtype):
                eval_fn(model, batch)
            seen += _batch_len(batch)
            bar.update(1)
            elapsed = time.perf_counter() - start
            bar.set_postfix_str(f"{seen * ctx.world_size / max(elapsed, 1e-9):.1f} samples/s", refresh=False)
    finally:
        bar.close()
        model.train(was_training)
    total = torch.tensor(seen, dtype=torch.int64)
    all_reduce_sum(total)
    seconds = time.perf_counter() - start
    return {"samples": int(total), "seconds": seconds}


# --------------------------------------------------------------------------- checkpoints


def _plain_data_problem(value: Any, where: str) -> str | None:
    """Where ``value`` holds something a ``weights_only`` load would refuse, else None."""
    if value is None or isinstance(value, (bool, int, float, str, bytes, torch.Tensor, torch.device, torch.dtype)):
        return None
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, (str, int, float, bool)):
                return f"{where}: key {key!r} of type {type(key).__name__}"
            problem = _plain_data_problem(item, f"{where}[{key!r}]")
            if problem:
                return problem
        return None
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            problem = _plain_data_problem(item, f"{where}[{i}]")
            if problem:
                return problem
        return None
    return f"{where}: value of type {type(value).__name__}"


class CheckpointError(InputError):
    """A checkpoint that cannot be used or written; the message names the file (one line).

    An :class:`~hideseek.inputs.InputError` (a ``ValueError``): the command line prints it as
    ``error: ...`` with exit code 2 from any verb."""


def _atomic_torch_save(obj: Any, path: Path) -> None:
    """Write ``obj`` to a temp file next to ``path``, fsync, then ``os.replace``.

    A reader sees the previous complete file or the new complete file, never a torn one;
    an interrupted write leaves the old checkpoint and no temp file behind (a process
    killed outright may leave ``.<name>.<pid>.<random>.tmp``: the next training run in the
    folder removes it). A failed write (a full disk, a quota, an I/O error) raises a
    :class:`CheckpointError` naming ``path`` and leaves the old file untouched.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise CheckpointError(f"{path}: cannot write the checkpoint ({error.strerror or error})") from None
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "xb") as handle:  # "x": never clobber; the umask applies as usual
            torch.save(obj, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as error:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        # torch's zip writer reports a failed write of the stream as a RuntimeError
        failed_write = isinstance(error, RuntimeError) and "write" in str(error).lower()
        if isinstance(error, OSError) or failed_write:
            reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error).splitlines()[0]
            kept = "the previous checkpoint is intact" if path.is_file() else "no earlier checkpoint"
            raise CheckpointError(f"{path}: cannot write the checkpoint ({reason}); {kept}") from None
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable where supported
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Remove ``.<name>.<pid>.<...>.tmp`` files that an atomic write killed mid-way left in
    ``folder`` (top level only); returns what was removed. Call it only while no other
    process writes there (a training run holds the folder's lock)."""
    removed = []
    folder = Path(folder)
    if not folder.is_dir():
        return removed
    for tmp in sorted(folder.glob(".*.tmp")):
        if tmp.is_file():
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
                removed.append(tmp)
    return removed


def verify_checkpoint(path: str | os.PathLike) -> None:
    """Check every stored CRC-32 of a checkpoint before anything reads it.

    ``torch.save`` writes a zip archive with a CRC-32 per entry, but ``torch.load`` does not
    check them: a flipped byte inside a tensor loads as a different weight and is scored
    silently. ``zipfile`` re-reads every entry and compares. A file that is not a zip
    archive (torch's legacy format, a foreign pickle) carries no checksum and is left to
    the loader. Raises :class:`CheckpointError` naming the file as corrupt.
    """
    path = Path(path)
    if not zipfile.is_zipfile(path):
        return
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, RuntimeError, ValueError) as error:
        raise CheckpointError(f"checkpoint {path}: corrupt (damaged zip archive: {error})") from None
    if bad is not None:
        raise CheckpointError(f"checkpoint {path}: corrupt (CRC-32 mismatch in {bad}): the file changed after "
                              "it was written; restore it or train again")


_SCHEDULED_KEYS = ("lr", "momentum", "betas")  # what LR schedulers write into an optimizer's groups
# an LR scheduler's progress counters; the rest of its state is the shape of its schedule
_SCHEDULE_PROGRESS = ("last_epoch", "_step_count", "_is_initial", "_get_lr_called_within_step", "_last_lr")


def _schedule_shape(state: Mapping) -> dict:
    return {k: v for k, v in state.items() if k not in _SCHEDULE_PROGRESS}


def read_checkpoint(path: str | os.PathLike) -> dict:
    """Load a checkpoint file on the CPU (``weights_only``), with an error naming the file.

    The archive's checksums are verified first (:func:`verify_checkpoint`)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path}: no such file")
    verify_checkpoint(path)
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # truncated file, foreign pickle, ...
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CheckpointError(f"checkpoint {path}: cannot be read as a torch checkpoint ({reason})") from None
    return checkpoint


def strip_wrapper_prefixes(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Keys without the ``module.`` (DataParallel, DDP) and ``_orig_mod.`` (torch.compile) prefixes."""
    out = {}
    for key, value in state.items():
        changed = True
        while changed:
            changed = False
            for prefix in ("module.", "_orig_mod."):
                if key.startswith(prefix):
                    key, changed = key[len(prefix) :], True
        out[key] = value
    return out


def load_checkpoint_weights(path: str | os.PathLike, model: nn.Module, *, strict: bool = True) -> dict:
    """Load the model weights of a checkpoint (or of a bare state_dict file) into ``model``.

    Returns the checkpoint's metadata (``epoch``, ``global_step``, ``extra``; empty for a
    bare state_dict), e.g. to recover the run config for ``evaluate --checkpoint``.
    """
    checkpoint = read_checkpoint(path)
    if not isinstance(checkpoint, Mapping):
        raise ValueError(f"checkpoint {path}: expected a dict, got {type(checkpoint).__name__}")
    if checkpoint.get("format") == _CHECKPOINT_FORMAT:
        state, meta = checkpoint["model"], {k: checkpoint.get(k) for k in ("epoch", "global_step", "extra")}
    elif checkpoint and all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
        state, meta = checkpoint, {}
    else:
        raise ValueError(
            f"checkpoint {path}: neither a hideseek checkpoint nor a state_dict (keys: {sorted(checkpoint)[:8]})"
        )
    try:
        model.load_state_dict(strip_wrapper_prefixes(state), strict=strict)
    except RuntimeError as error:
        raise RuntimeError(f"checkpoint {path}: weights do not fit {type(model).__name__}: {error}") from None
    return meta


# --------------------------------------------------------------------------- logging


@contextlib.contextmanager
def _run_log(logger: logging.Logger, file: Path | None, main: bool):
    """On the main rank: stderr (unless something already handles the logger) and ``file``."""
    added: list[logging.Handler] = []
    formatter = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S")
    if main and not logger.hasHandlers():
        added.append(logging.StreamHandler(sys.stderr))
    if main and file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
        added.append(logging.FileHandler(file, mode="a", encoding="utf-8"))
    for handler in added:
        handler.setFormatter(formatter)
        logger.addHandler(handler)
    previous_level = logger.level
    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)
    try:
        yield logger
    finally:
        logger.setLevel(previous_level)
        for handler in added:
            logger.removeHandler(handler)
            handler.close()


# --------------------------------------------------------------------------- trainer


class Trainer:
    """Runs epochs of ``step_fn`` with AMP / channels_last / DDP / compile as configured.

    Parameters
    ----------
    model, optimizer:
        The plain module (moved to ``ctx.device`` here) and an optimizer over its parameters.
    scheduler:
        Optional LR scheduler, stepped once per epoch (``scheduler_interval="epoch"``) or
        after every optimizer step (``"step"``).
    amp:
        ``True`` (CUDA: bf16 where supported, else fp16; CPU: bf16 when the CPU has native
        bf16, else off), ``"bf16"``, ``"fp16"`` (CUDA) or ``False``; fp16 uses a GradScaler.
        channels_last applies on CUDA and on a CPU (oneDNN's fast path: measured on this
        project's 2-core AMD EPYC in fp32, one thread, a ResNet-18 training step was 1.11x
        faster at 96 px and 1.25x at 64 px than in the default layout).
    compile:
        Wrap the (DDP) model in ``torch.compile`` for training; evaluation compiles the
        plain module separately on first use.
    grad_clip:
        Max global gradient norm (after unscaling), or None.
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        *,
        ctx: RunContext,
        output_dir: str | os.PathLike,
        scheduler: Any = None,
        scheduler_interval: str = "epoch",
        amp: bool | str = True,
        channels_last: bool = True,
        compile: bool = False,
        grad_clip: float | None = None,
        log_name: str = "train",
        progress: bool = True,
        ddp_kwargs: Mapping[str, Any] | None = None,
    ):
        if scheduler_interval not in ("epoch", "step"):
            raise ValueError(f"scheduler_interval={scheduler_interval!r}: expected 'epoch' or 'step'")
        self.ctx = ctx
        self.output_dir = Path(output_dir)
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.scheduler_interval = scheduler_interval
        self.grad_clip = grad_clip
        self.progress = progress
        self.log_name = log_name
        self.logger = logging.getLogger(f"hideseek.{log_name}")
        on_cuda = ctx.device.type == "cuda"
        self.amp = amp
        self.amp_dtype = _amp_dtype(amp, ctx.device)
        self.channels_last = bool(channels_last and ctx.device.type in ("cuda", "cpu"))
        self.compile = compile
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)

        model.to(ctx.device)
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        self._module = model
        wrapped: nn.Module = model
        if ctx.distributed:
            from torch.nn.parallel import DistributedDataParallel

            device_ids = [ctx.device.index] if on_cuda else None
            wrapped = DistributedDataParallel(model, device_ids=device_ids, **dict(ddp_kwargs or {}))
        if compile:
            wrapped = torch.compile(wrapped)
        self._train_model = wrapped
        self._eval_model: nn.Module | None = None

        # the schedule as built (step 0), for a resume whose schedule has another length
        self._fresh_schedule = (
            copy.deepcopy(scheduler.state_dict()) if scheduler is not None else None,
            [{k: copy.deepcopy(g[k]) for k in _SCHEDULED_KEYS if k in g} for g in optimizer.param_groups],
        )

        self.epoch = 0  # completed epochs
        self.global_step = 0  # optimizer steps taken
        self.history: list[dict] = []
        self._batch_size: int | None = None
        self._extra: dict | None = None

    # ----------------------------------------------------------------- properties

    @property
    def model(self) -> nn.Module:
        """The plain module (not the DDP / compiled wrapper): what checkpoints hold."""
        return self._module

    @property
    def checkpoint_path(self) -> Path:
        return self.output_dir / CHECKPOINT_NAME

    @property
    def log_path(self) -> Path:
        return self.output_dir / f"{self.log_name}.log"

    # ----------------------------------------------------------------- checkpoints

    def state_dict(self, extra: Mapping | None = None, rng: list[dict] | None = None) -> dict:
        """The full training state; ``rng`` is one RNG state per rank (default: this process)."""
        extra = dict(extra if extra is not None else (self._extra or {}))
        problem = _plain_data_problem(extra, "extra")
        if problem:
            raise TypeError(
                f"checkpoint extra must hold only dicts, lists, numbers, strings and tensors ({problem}); "
                "convert dataclasses with dataclasses.asdict and paths with str"
            )
        return {
            "format": _CHECKPOINT_FORMAT,
            "version": _CHECKPOINT_VERSION,
            "epoch": self.epoch,
            "global_step": self.global_step,
            "model": self._module.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None,
            "rng": rng if rng is not None else [get_rng_state()],
            "history": list(self.history),
            "seed": self.ctx.seed,
            "world_size": self.ctx.world_size,
            "batch_size": self._batch_size,
            "torch_version": str(torch.__version__),
            "extra": extra,
        }

    def save_checkpoint(self, path: str | os.PathLike | None = None, extra: Mapping | None = None) -> Path:
        """Write the full training state atomically (rank 0 only; every rank must call this)."""
        path = Path(path) if path is not None else self.checkpoint_path
        rng = [get_rng_state()]
        if self.ctx.distributed:  # every rank's RNG state, in rank order
            rng = [None] * self.ctx.world_size
            dist.all_gather_object(rng, get_rng_state())
        if self.ctx.is_main:
            _atomic_torch_save(self.state_dict(extra, rng), path)
        barrier()
        return path

    def load_checkpoint(self, path: str | os.PathLike | None = None) -> dict:
        """Restore model, optimizer, scheduler, scaler, counters and RNG; returns ``extra``."""
        path = Path(path) if path is not None else self.checkpoint_path
        checkpoint = read_checkpoint(path)
        if not isinstance(checkpoint, Mapping) or checkpoint.get("format") != _CHECKPOINT_FORMAT:
            raise ValueError(f"checkpoint {path}: not a hideseek training checkpoint")
        if checkpoint.get("version") != _CHECKPOINT_VERSION:
            raise ValueError(f"checkpoint {path}: version {checkpoint.get('version')}, expected {_CHECKPOINT_VERSION}")
        try:
            self._module.load_state_dict(checkpoint["model"])
        except RuntimeError as error:
            name = type(self._module).__name__
            raise RuntimeError(f"checkpoint {path}: weights do not fit {name}: {error}") from None
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.epoch = int(checkpoint["epoch"])
        self.global_step = int(checkpoint["global_step"])
        if self.scheduler is not None:
            if checkpoint["scheduler"] is None:
                raise ValueError(f"checkpoint {path}: has no scheduler state but this run uses a scheduler")
            self._load_schedule(checkpoint["scheduler"], path)
        if checkpoint["scaler"] is not None and self.scaler.is_enabled():
            self.scaler.load_state_dict(checkpoint["scaler"])
        self.history = list(checkpoint.get("history") or [])
        rng = checkpoint.get("rng") or []
        if len(rng) == self.ctx.world_size:
            # the epoch reseed makes this redundant for the engine's own loop, but it keeps
            # "load, then draw" identical to "save, then draw" for anything the caller runs
            set_rng_state(rng[self.ctx.rank])
        for key, mine in (("seed", self.ctx.seed), ("world_size", self.ctx.world_size)):
            if checkpoint.get(key) != mine:
                self.logger.warning(
                    "checkpoint %s was written with %s=%s, this run has %s=%s: the continuation "
                    "will not match an uninterrupted run bit for bit",
                    path, key, checkpoint.get(key), key, mine,
                )
        self._extra = dict(checkpoint.get("extra") or {})
        return self._extra

    def _load_schedule(self, saved: Mapping, path: Path) -> None:
        """The saved schedule when it is the one this run built; else this run's, at the saved step.

        A schedule's shape (its length, peaks, phases: everything but the progress
        counters) follows from the run's plan. Resumed with the same plan, the saved state
        is loaded as it is (the continuation is bit-identical). Resumed with another plan
        (``epochs`` grown, so a one-cycle or cosine schedule is longer), the schedule is the
        one this run built, stepped from its start to the saved step count, so the LR of
        every later step is what a run planned this long from the start has at that step
        (the steps already taken keep the LRs they had).
        """
        fresh_state, fresh_groups = self._fresh_schedule
        if _schedule_shape(saved) == _schedule_shape(fresh_state):
            self.scheduler.load_state_dict(saved)
            return
        for group, values in zip(self.optimizer.param_groups, fresh_groups):
            group.update(copy.deepcopy(values))
        self.scheduler.load_state_dict(copy.deepcopy(fresh_state))
        steps = self.global_step if self.scheduler_interval == "step" else self.epoch
        try:
            with warnings.catch_warnings():  # "scheduler.step() before optimizer.step()": a replay, on purpose
                warnings.simplefilter("ignore")
                for _ in range(steps):
                    self.scheduler.step()
        except ValueError as error:  # e.g. OneCycleLR: more steps done than the new plan has
            raise CheckpointError(f"checkpoint {path}: {steps} scheduler steps done do not fit this run's "
                                  f"schedule ({error})") from None
        changed = {k: (saved.get(k), v) for k, v in _schedule_shape(fresh_state).items() if saved.get(k) != v}
        shown = ", ".join(f"{k} {a} -> {b}" for k, (a, b) in changed.items() if not k.startswith("_"))
        self.logger.info("LR schedule changed since %s was written (%s): this run's schedule continues from "
                         "step %d", path, shown or "shape", steps)

    # ----------------------------------------------------------------- training

    def fit(
        self,
        train_set: Dataset,
        *,
        epochs: int,
        batch_size: int,
        step_fn: Callable[[nn.Module, Any, int], torch.Tensor],
        num_workers: int = 0,
        collate_fn: Callable | None = None,
        resume: bool = False,
        extra: Mapping | None = None,
        on_epoch_start: Callable[[int], None] | None = None,
        on_epoch_end: Callable[[int, Trainer], None] | None = None,
    ) -> dict:
        """Train until ``epochs`` epochs are complete (counting those already done).

        ``step_fn(model, batch, epoch)`` returns the mean loss of the batch; ``epoch`` is
        0-based. ``batch_size`` is per process. With ``resume=True`` and an existing
        ``<output_dir>/last.pt`` the run continues from it. After every epoch the
        checkpoint is rewritten, then ``on_epoch_end(epoch, trainer)`` runs. Returns
        ``{"epochs", "global_step", "history", "checkpoint", "resumed_from"}``.
        """
        if epochs < 0:
            raise ValueError(f"epochs must be >= 0, got {epochs}")
        main = self.ctx.is_main
        self.output_dir.mkdir(parents=True, exist_ok=True)
        if extra is not None:
            self._extra = dict(extra)
            problem = _plain_data_problem(self._extra, "extra")
            if problem:  # fail now, not after the first epoch
                raise TypeError(f"checkpoint extra must be plain data ({problem})")
        self._batch_size = batch_size
        on_cuda = self.ctx.device.type == "cuda"
        loader = make_loader(
            train_set,
            batch_size,
            train=True,
            seed=self.ctx.seed,
            num_workers=num_workers,
            collate_fn=collate_fn,
            rank=self.ctx.rank,
            world_size=self.ctx.world_size,
            pin_memory=on_cuda,
        )
        resumed_from = None
        with _run_log(self.logger, self.log_path, main) as logger:
            if resume and self.checkpoint_path.is_file():
                user_extra = self._extra
                self.load_checkpoint(self.checkpoint_path)
                if user_extra is not None:
                    self._extra = user_extra
                resumed_from = self.epoch
                logger.info("resumed from %s after epoch %d", self.checkpoint_path, self.epoch)
            elif resume:
                logger.info("no checkpoint at %s, starting from scratch", self.checkpoint_path)
            if len(loader) == 0:
                raise ValueError(f"training set of {len(train_set)} samples gives no batch of size {batch_size}")
            for epoch in range(self.epoch, epochs):
                try:
                    record = self._train_epoch(loader, epoch, epochs, step_fn, on_epoch_start)
                except KeyboardInterrupt:
                    # the partial epoch is dropped: resuming mid-epoch would need the loader's
                    # position; the last epoch's checkpoint resumes bit-identically
                    kept = f"{self.checkpoint_path} holds epoch {self.epoch}" if self.epoch else "no checkpoint yet"
                    logger.warning("interrupted in epoch %d/%d; %s (resume continues from there)",
                                   epoch + 1, epochs, kept)
                    raise
                self.history.append(record)
                self.epoch = epoch + 1
                self.save_checkpoint()
                logger.info(
                    "epoch %d/%d loss %.6f time %.2fs %.1f samples/s lr %.6g",
                    epoch + 1, epochs, record["loss"], record["seconds"], record["samples_per_s"], record["lr"],
                )
                if on_epoch_end is not None:
                    on_epoch_end(epoch, self)
        return {
            "epochs": self.epoch,
            "global_step": self.global_step,
            "history": list(self.history),
            "checkpoint": str(self.checkpoint_path),
            "resumed_from": resumed_from,
        }

    def _train_epoch(self, loader: EpochLoader, epoch: int, epochs: int, step_fn, on_epoch_start) -> dict:
        ctx = self.ctx
        seed_everything(derive_seed(_SEED_EPOCH, ctx.seed, epoch, ctx.rank))
        loader.set_epoch(epoch)
        if on_epoch_start is not None:
            on_epoch_start(epoch)
        model = self._train_model
        model.train()
        device = ctx.device
        # float64 where the device has it (MPS does not): the epoch mean stays exact enough
        acc_dtype = torch.float32 if device.type == "mps" else torch.float64
        loss_sum = torch.zeros((), dtype=acc_dtype, device=device)
        samples = 0
        start = time.perf_counter()
        bar = tqdm(
            total=len(loader),
            desc=f"epoch {epoch + 1}/{epochs}",
            unit="batch",
            disable=not (self.progress and ctx.is_main),
            leave=False,
        )
        try:
            for step, batch in enumerate(loader):
                batch = to_device(batch, device, channels_last=self.channels_last)
                n = _batch_len(batch)
                with _autocast(device, self.amp_dtype):
                    loss = step_fn(model, batch, epoch)
                if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
                    raise TypeError(
                        f"step_fn must return the batch's mean loss as a one-element tensor, got "
                        f"{type(loss).__name__}{tuple(loss.shape) if isinstance(loss, torch.Tensor) else ''}"
                    )
                loss = loss.reshape(())
                self.optimizer.zero_grad(set_to_none=True)
                self.scaler.scale(loss).backward()
                if self.grad_clip is not None:
                    self.scaler.unscale_(self.optimizer)
                    torch.nn.utils.clip_grad_norm_(self._module.parameters(), self.grad_clip)
                self.scaler.step(self.optimizer)
                self.scaler.update()
                if self.scheduler is not None and self.scheduler_interval == "step":
                    self.scheduler.step()
                self.global_step += 1
                loss_sum += loss.detach().to(acc_dtype) * n
                samples += n
                bar.update(1)
                if step % 10 == 0 or step == len(loader) - 1:
                    elapsed = time.perf_counter() - start
                    bar.set_postfix(
                        loss=f"{loss_sum.item() / max(samples, 1):.4f}",
                        samples_per_s=f"{samples * ctx.world_size / max(elapsed, 1e-9):.1f}",
                        refresh=False,
                    )
        finally:
            bar.close()
        lr = float(self.optimizer.param_groups[0]["lr"])
        if self.scheduler is not None and self.scheduler_interval == "epoch":
            self.scheduler.step()
        totals = torch.stack([loss_sum.cpu().double(), torch.tensor(float(samples), dtype=torch.float64)])
        all_reduce_sum(totals)
        seconds = time.perf_counter() - start
        mean_loss = float(totals[0] / totals[1])
        if not math.isfinite(mean_loss):
            raise FloatingPointError(
                f"epoch {epoch + 1}: mean training loss is {mean_loss}; not writing a checkpoint "
                f"(last good state: {self.checkpoint_path if self.epoch else 'none'})"
            )
        return {
            "epoch": epoch + 1,
            "loss": mean_loss,
            "seconds": seconds,
            "samples": int(totals[1]),
            "samples_per_s": float(totals[1]) / max(seconds, 1e-9),
            "lr": lr,
            "global_step": self.global_step,
        }

    # ----------------------------------------------------------------- evaluation

    def evaluate(
        self,
        dataset: Dataset,
        *,
        batch_size: int,
        eval_fn: Callable[[nn.Module, Any], Any],
        num_workers: int = 0,
        collate_fn: Callable | None = None,
    ) -> dict:
        """:func:`evaluate` with this trainer's model, context and AMP settings."""
        if self._eval_model is None:
            self._eval_model = torch.compile(self._module) if self.compile else self._module
        return evaluate(
            self._eval_model,
            dataset,
            ctx=self.ctx,
            batch_size=batch_size,
            eval_fn=eval_fn,
            amp=self.amp,
            channels_last=self.channels_last,
            num_workers=num_workers,
            collate_fn=collate_fn,
            progress=self.progress,
        )
