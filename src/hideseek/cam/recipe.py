"""The image-run recipe that WSOL localization and segmentation share.

:class:`ImageRunConfig` holds the fields of a CAM training run on images (backbone,
augmentation, optimisation, input size, normalisation, device); each task's config derives
from it and adds its data and scoring fields. The builders turn such a config into the
run's parts: input transforms (the WSOL benchmark's: train resize + random crop + flip,
eval resize to the crop), the CAM model with its batch augmentation, the optimiser (the
classifier's learning rate scaled by ``classifier_lr_ratio``) and the per-step schedule.
"""

from __future__ import annotations

import math
import numbers
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

import torch
from torchvision.transforms import v2

from hideseek.augment import available as available_augmentations
from hideseek.augment import create as create_augmentation
from hideseek.augment import insert_feature_hide, using_sample_ids
from hideseek.cam.backbones import check_backbone, check_feature_stage, check_input_size
from hideseek.cam.choices import OPTIMIZERS, SCHEDULES
from hideseek.cam.methods import get_cam_method
from hideseek.cam.model import POOLS, CAMNet
from hideseek.engine import ConfigDict

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "OPTIMIZERS",
    "SCHEDULES",
    "ImageRunConfig",
    "build_batch_augmentation",
    "build_image_model",
    "build_optimizer",
    "build_scheduler",
    "batch_images",
    "field_problem",
    "image_step",
    "normalize_batch",
    "image_transforms",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _choice(kind: str, value: str, choices) -> None:
    if value not in choices:
        raise ValueError(f"unknown {kind} {value!r}; valid choices: {', '.join(choices)}")


# --------------------------------------------------------------------------- field checks
# Types come from the dataclass annotations (so a reproduce TOML's ``epochs = "ten"`` is named by key and
# type before anything runs); the ranges below are what the run can use (a batch of 0 or a crop of 0 px
# fails deep inside torch otherwise). One table, two phrasings: the config names the field, the command
# line names the option (:func:`hideseek.cli.common.image_run_fields`).

_RANGES: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "epochs": ("an integer >= 1", lambda v: v >= 1),
    "batch_size": ("an integer >= 1", lambda v: v >= 1),
    "crop_size": ("an integer >= 1 (pixels)", lambda v: v >= 1),
    "resize_size": ("an integer >= 1 (pixels)", lambda v: v >= 1),
    "lr": ("a finite number > 0", lambda v: math.isfinite(v) and v > 0),
    "weight_decay": ("a finite number >= 0", lambda v: math.isfinite(v) and v >= 0),
    "classifier_lr_ratio": ("a finite number > 0", lambda v: math.isfinite(v) and v > 0),
    "lr_step": ("an integer >= 1 (epochs)", lambda v: v >= 1),
    "feature_stage": ("a stage index >= 0 (or none for the whole backbone)", lambda v: v is None or v >= 0),
    "num_workers": ("an integer >= 0", lambda v: v >= 0),
    "threads": ("an integer >= 1 (or none for torch's default)", lambda v: v is None or v >= 1),
    "mean": ("three finite numbers", lambda v: v is None or all(math.isfinite(x) for x in v)),
    "std": ("three finite numbers > 0", lambda v: v is None or all(math.isfinite(x) and x > 0 for x in v)),
}


_NOUNS = {bool: ("true or false", "booleans"), int: ("an integer", "integers"), float: ("a number", "numbers"),
          str: ("a string", "strings"), dict: ("a table (dict)", "tables")}


def _type_name(hint: Any, plural: bool = False) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        names = [_type_name(a, plural) for a in args if a is not type(None)]
        return " or ".join(names) + (" (or none)" if type(None) in args else "")
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a list of {_type_name(args[0], plural=True)}"
        kinds = sorted({_type_name(a, plural=True) for a in args})
        return f"a list of {len(args)} {' / '.join(kinds)}"
    if hint in _NOUNS:
        return _NOUNS[hint][plural]
    return getattr(hint, "__name__", str(hint))


def _fits(value: Any, hint: Any) -> bool:
    """Whether ``value`` has the annotated type (an integer is a number; a bool is neither; lists are tuples)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        return any(_fits(value, a) for a in args)
    if hint is type(None):
        return value is None
    if origin is tuple:
        if not isinstance(value, tuple | list):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_fits(v, args[0]) for v in value)
        return len(value) == len(args) and all(_fits(v, a) for v, a in zip(value, args))
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, numbers.Real) and not isinstance(value, bool)
    if isinstance(hint, type):
        return isinstance(value, hint)
    return True  # an annotation this check does not know is left to the code that uses the field


def field_problem(name: str, value: Any) -> str | None:
    """What is wrong with ``value`` for the range-checked field ``name`` (``None``: nothing); the value's
    type is assumed right."""
    rule = _RANGES.get(name)
    if rule is None or rule[1](value):
        return None
    return f"expected {rule[0]}"


def _check_fields(config) -> None:
    hints = typing.get_type_hints(type(config))
    for f in fields(config):
        value = getattr(config, f.name)
        hint = hints.get(f.name)
        if hint is not None and not _fits(value, hint):
            raise ValueError(f"{f.name} = {value!r}: expected {_type_name(hint)}, got {type(value).__name__}")
        problem = field_problem(f.name, value)
        if problem:
            raise ValueError(f"{f.name} = {value!r}: {problem}")
    if config.resize_size < config.crop_size:
        raise ValueError(f"resize_size = {config.resize_size}: expected >= crop_size ({config.crop_size}); the "
                         "training crop is taken from the resized image")


@dataclass
class ImageRunConfig(ConfigDict):
    """The fields every CAM training run on images has.

    ``dataset`` is one of the task's ``DATASETS``; ``mean``/``std`` are resolved when the
    data is opened (the dataset's own statistics for synthetic data, ImageNet's for real
    data) and stored with the run, so Hide-and-Seek's fill 0 is the normalisation mean.
    ``cam_method`` names the CAM method of the run's evaluation (:mod:`hideseek.cam.methods`).
    ``threads`` is torch's CPU thread count for the run (``None``: torch's default; on a
    shared machine one thread per process is often faster, see ``hideseek demo``).
    ``cache_images`` decodes every image of the split once, when the data is opened, and
    keeps the decoded pixels in memory (same pixels, same transforms; for data that fits).
    """

    DATASETS: ClassVar[tuple[str, ...]] = ("synthetic",)

    dataset: str = "synthetic"
    data_root: str | None = None
    backbone: str = "resnet18"
    pool: str = "avg"
    feature_stage: int | None = None
    large_feature_map: bool = False
    pretrained_file: str | None = None
    augmentation: str = "none"
    aug_params: dict = field(default_factory=dict)
    epochs: int = 10
    batch_size: int = 64
    optimizer: str = "adamw"
    lr: float = 2e-3
    weight_decay: float = 1e-4
    schedule: str = "onecycle"
    lr_step: int = 30
    classifier_lr_ratio: float = 1.0
    resize_size: int = 96
    crop_size: int = 96
    hflip: bool = True
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None
    seed: int = 0
    num_workers: int = 0
    device: str = "auto"
    amp: bool = True
    cam_method: str = "cam"
    nesterov: bool = False
    threads: int | None = None
    cache_images: bool = False

    _tuple_fields = ("mean", "std")

    def __post_init__(self):
        _check_fields(self)  # types and ranges of every field (a task's own fields too), before any name check
        _choice("dataset", self.dataset, self.DATASETS)
        _choice("optimizer", self.optimizer, OPTIMIZERS)
        _choice("schedule", self.schedule, SCHEDULES)
        # names are checked before any data is generated or read
        check_backbone(self.backbone)
        check_feature_stage(self.backbone, self.feature_stage)
        check_input_size(self.backbone, self.crop_size)
        _choice("pool", self.pool, POOLS)
        if self.augmentation not in available_augmentations():
            raise ValueError(
                f"unknown augmentation {self.augmentation!r}; available: {', '.join(available_augmentations())}"
            )
        get_cam_method(self.cam_method)


def image_transforms(config: ImageRunConfig, train: bool, normalize: bool = True) -> v2.Compose:
    """WSOL-benchmark style: train resize + random crop + flip, eval resize to the crop.

    ``normalize=False`` stops at the uint8 image tensor; :func:`normalize_batch` then does
    the float conversion and normalisation on the whole batch (the same operations, so the
    same values, about ten times cheaper per image than per-sample tensors)."""
    if config.mean is None or config.std is None:
        raise ValueError("normalisation is not resolved yet: open the data with open_splits() first")
    steps: list = [v2.ToImage()]
    if train:
        steps += [v2.Resize((config.resize_size, config.resize_size), antialias=True), v2.RandomCrop(config.crop_size)]
        if config.hflip:
            steps.append(v2.RandomHorizontalFlip())
    else:
        steps += [v2.Resize((config.crop_size, config.crop_size), antialias=True)]
    if normalize:
        steps += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(config.mean, config.std)]
    return v2.Compose(steps)


def normalize_batch(images: torch.Tensor, mean, std) -> torch.Tensor:
    """uint8 ``(B, 3, H, W)`` -> float32 normalised; elementwise the operations of
    ``v2.ToDtype(float32, scale=True)`` then ``v2.Normalize(mean, std)`` (multiply by 1/255,
    subtract the mean, divide by the std, in float32), so each value equals the
    per-sample pipeline's. Float input is returned as it is (already normalised)."""
    if images.is_floating_point():
        return images
    out = images.to(torch.float32).mul_(1.0 / 255)
    shape = (1, -1, 1, 1)
    out.sub_(torch.as_tensor(mean, dtype=torch.float32, device=out.device).view(shape))
    return out.div_(torch.as_tensor(std, dtype=torch.float32, device=out.device).view(shape))


def build_batch_augmentation(config: ImageRunConfig) -> torch.nn.Module:
    """The registry augmentation of ``config`` as a batch module (seeded with the run's seed unless
    its parameters say otherwise); ``feature-has`` acts inside a model, so it is refused here."""
    if config.augmentation == "feature-has":
        raise ValueError("augmentation 'feature-has' hides feature maps inside a CAMNet; this network takes "
                         "batch augmentations only")
    params = dict(config.aug_params)
    params.setdefault("seed", config.seed)
    augmentation = create_augmentation(config.augmentation, **params)
    if augmentation.kind != "image":
        raise ValueError(f"augmentation {config.augmentation!r} is for {augmentation.kind} input, not image batches")
    return augmentation


def build_image_model(config: ImageRunConfig, num_classes: int) -> tuple[CAMNet, torch.nn.Module | None]:
    """The CAM model and, for image augmentations, the batch augmentation module.

    ``feature-has`` goes inside the model: after the backbone submodule named by the
    ``after`` parameter (e.g. ``layer1``), or on the last feature maps when not given.
    """
    params = dict(config.aug_params)
    params.setdefault("seed", config.seed)
    augmentation = feature_hide = after = None
    if config.augmentation == "feature-has":
        after = params.pop("after", None)
        if after is None:
            feature_hide = create_augmentation("feature-has", **params)
    else:
        augmentation = build_batch_augmentation(config)
    model = CAMNet(config.backbone, num_classes, pool=config.pool, pretrained_file=config.pretrained_file,
                   large_feature_map=config.large_feature_map, feature_stage=config.feature_stage,
                   feature_hide=feature_hide)
    if after is not None:
        insert_feature_hide(model.backbone, after, **params)
    return model, augmentation


def build_optimizer(config: ImageRunConfig, model: torch.nn.Module,
                    head: list[torch.nn.Parameter] | None = None) -> torch.optim.Optimizer:
    """SGD (momentum 0.9, Nesterov if ``config.nesterov``) or AdamW; the head's lr is
    ``classifier_lr_ratio`` x ``lr`` (the WSOL benchmark trains its new layers 10x faster than
    the pretrained backbone). ``head``: the parameters of that group (default: ``model.classifier``'s)."""
    head = list(model.classifier.parameters()) if head is None else list(head)
    head_ids = {id(p) for p in head}
    groups = [{"params": [p for p in model.parameters() if id(p) not in head_ids], "lr": config.lr},
              {"params": head, "lr": config.lr * config.classifier_lr_ratio}]
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=config.lr, momentum=0.9, weight_decay=config.weight_decay,
                               nesterov=config.nesterov)
    return torch.optim.AdamW(groups, lr=config.lr, weight_decay=config.weight_decay)


def build_scheduler(config: ImageRunConfig, optimizer: torch.optim.Optimizer, samples: int, world_size: int):
    """Per-step LR schedule: one-cycle (peak = each group's lr), cosine decay, x0.1 every
    ``lr_step`` epochs (the WSOL benchmark's), or constant (None)."""
    if config.schedule == "constant":
        return None
    per_rank = math.ceil(samples / world_size)  # DistributedSampler pads to equal shards
    steps_per_epoch = math.ceil(per_rank / config.batch_size)
    total = config.epochs * steps_per_epoch
    if config.schedule == "onecycle":
        peaks = [group["lr"] for group in optimizer.param_groups]
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=peaks, total_steps=max(total, 1))
    if config.schedule == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=max(config.lr_step * steps_per_epoch, 1), gamma=0.1)
    return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(total, 1))


def image_step(augmentation: torch.nn.Module | None, loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
               target: str, mean=None, std=None):
    """The training step of an image task: a uint8 batch normalised with ``mean``/``std``
    (:func:`normalize_batch`), hiding on the normalised batch (keyed by each image's index,
    so the hidden cells depend only on ``(seed, epoch, index)``), forward, ``loss(logits,
    batch[target])``. Feature-map hiding inside the model is told the same ids."""

    def step(model, batch, epoch):
        images, ids = batch_images(batch, mean, std), batch["index"]
        if augmentation is not None:
            augmentation.train()
            images = augmentation(images, sample_ids=ids)
        with using_sample_ids(model, ids):
            logits = model(images)
        return loss(logits, batch[target])

    return step


def batch_images(batch, mean, std) -> torch.Tensor:
    """``batch["image"]``, normalised on the batch when it arrives as uint8, in the memory
    format the model trains in (channels_last for a 4-D batch on CPU and CUDA)."""
    images = batch["image"]
    if images.is_floating_point():
        return images
    if mean is None or std is None:
        raise ValueError("a uint8 image batch needs the mean and std to normalise it")
    return normalize_batch(images, mean, std).contiguous(memory_format=torch.channels_last)
