"""ImageNet initialisation of the benchmark's networks from local torchvision weights files.

The benchmark starts every network from torchvision's ImageNet weights
(``vgg16-397923af.pth``, ``resnet50-19c8e357.pth``, ``inception_v3_google-1a9a5a14.pth``:
plain state dicts) and maps their tensors onto its layouts. The same mapping, stated here
by structure rather than by index arithmetic:

* VGG16: torchvision's 13 convolutions (``features.<i>``), in order, go to the network's
  13 trunk convolutions in order: those of ``features`` (whose indices shift with the
  pooling and ADL layers of each type), and for ``spg`` then ``SPG_A_1`` and ``SPG_A_2``.
  ``classifier.*`` is dropped; ``conv6``, ``fc`` and the method heads keep their
  initialisation.
* ResNet50: the stem is copied as is; block j of torchvision's ``layer<L>`` goes to the
  j-th bottleneck of the network's stage L (ADL layers in between are skipped; for ``spg``
  stage 3 is ``SPG_A1`` followed by ``SPG_A2``). ``fc.*`` is kept only for ``cam``/``adl``
  with ``keep_imagenet_fc`` (the benchmark keeps it on ILSVRC, and then requires every
  tensor of the network to be loaded); otherwise it is dropped.
* Inception-v3: ``Mixed_7*``, ``AuxLogits.*`` and ``fc.*`` are dropped, everything else
  keeps its name.

Unlike the benchmark (which loads non-strictly), a key the torchvision layout does not
have, a target the network lacks or a shape that differs is an error. Nothing is
downloaded.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torchvision.models.resnet import Bottleneck

from hideseek.localization.benchmark.layers import BenchmarkNet

__all__ = ["TORCHVISION_FILES", "WeightsError", "WeightsReport", "load_torchvision_weights", "torchvision_key_map"]

# the torchvision ImageNet weights file each architecture is initialised from
TORCHVISION_FILES = {
    "vgg16": "vgg16-397923af.pth",
    "resnet50": "resnet50-19c8e357.pth",
    "inception_v3": "inception_v3_google-1a9a5a14.pth",
}
_SHOWN = 8


class WeightsError(ValueError):
    """A weights file that does not have the torchvision layout of the network's architecture."""


@dataclass(frozen=True)
class WeightsReport:
    """What :func:`load_torchvision_weights` did: ``loaded`` maps model keys to their source keys."""

    loaded: dict[str, str]
    dropped: tuple[str, ...]  # source keys the benchmark does not use
    initialised: tuple[str, ...]  # model keys that keep their initialisation


def _split(key: str) -> tuple[str, str]:
    module, _, name = key.rpartition(".")
    return module, name


def _vgg_map(model: BenchmarkNet, keys: list[str]) -> dict[str, str | None]:
    containers = ("features", "SPG_A_1", "SPG_A_2") if model.method_type == "spg" else ("features",)
    targets = [
        name
        for name, module in model.named_modules()
        if isinstance(module, nn.Conv2d) and name.split(".")[0] in containers
    ]
    sources = sorted({int(m.group(1)) for k in keys if (m := re.fullmatch(r"features\.(\d+)\.\w+", k))})
    if len(sources) != len(targets):
        raise WeightsError(f"vgg16: the file has {len(sources)} convolutions in 'features', the network {len(targets)}")
    convs = {f"features.{index}": target for index, target in zip(sources, targets)}
    out: dict[str, str | None] = {}
    for key in keys:
        module, name = _split(key)
        if key.startswith("classifier."):
            out[key] = None
        elif module in convs:
            out[key] = f"{convs[module]}.{name}"
    return out


def _resnet_map(model: BenchmarkNet, keys: list[str], keep_fc: bool) -> dict[str, str | None]:
    stages: dict[int, list[str]] = {}
    for stage in range(1, 5):
        containers = ("SPG_A1", "SPG_A2") if stage == 3 and model.method_type == "spg" else (f"layer{stage}",)
        stages[stage] = [
            f"{container}.{index}"
            for container in containers
            for index, block in getattr(model, container).named_children()
            if isinstance(block, Bottleneck)
        ]
    has_fc = isinstance(getattr(model, "fc", None), nn.Linear)
    out: dict[str, str | None] = {}
    for key in keys:
        block = re.fullmatch(r"layer([1-4])\.(\d+)\.(.+)", key)
        if block:
            stage, index, rest = int(block.group(1)), int(block.group(2)), block.group(3)
            if index < len(stages[stage]):
                out[key] = f"{stages[stage][index]}.{rest}"
        elif key.startswith("fc."):
            out[key] = key if keep_fc and has_fc else None
        elif key.startswith(("conv1.", "bn1.")):
            out[key] = key
    return out


def _inception_map(keys: list[str]) -> dict[str, str | None]:
    return {key: None if key.startswith(("Mixed_7", "AuxLogits.", "fc.")) else key for key in keys}


def torchvision_key_map(
    model: BenchmarkNet, source_keys: Iterable[str], keep_imagenet_fc: bool = False
) -> dict[str, str | None]:
    """Torchvision key -> the model key it initialises (``None``: dropped, as the benchmark does).

    Keys absent from the result are not part of the architecture's torchvision layout.
    """
    keys = list(source_keys)
    if model.architecture == "vgg16":
        return _vgg_map(model, keys)
    if model.architecture == "resnet50":
        return _resnet_map(model, keys, keep_imagenet_fc)
    if model.architecture == "inception_v3":
        return _inception_map(keys)
    raise ValueError(f"not a benchmark network: architecture {model.architecture!r}")


def _listed(items: list[str]) -> str:
    more = f" (+{len(items) - _SHOWN} more)" if len(items) > _SHOWN else ""
    return ", ".join(items[:_SHOWN]) + more


def load_torchvision_weights(
    model: BenchmarkNet, weights: str | Path | Mapping[str, torch.Tensor], keep_imagenet_fc: bool | None = None
) -> WeightsReport:
    """Initialise ``model`` from a torchvision ImageNet state dict (a file path or the dict itself).

    ``keep_imagenet_fc``: load torchvision's 1000-class ``fc`` into a ResNet50 ``cam``/``adl``
    network (the benchmark does on ILSVRC); ``None`` means ``model.num_classes == 1000``.
    """
    if isinstance(weights, str | Path):
        from hideseek.cam.pretrained import read_state_dict

        weights = read_state_dict(weights)
    if keep_imagenet_fc is None:
        keep_imagenet_fc = model.num_classes == 1000
    where = f"{model.architecture} weights"
    key_map = torchvision_key_map(model, weights.keys(), keep_imagenet_fc)
    unknown = [k for k in weights if k not in key_map]
    if unknown:
        raise WeightsError(f"{where}: keys not in torchvision's {model.architecture} layout: {_listed(unknown)}")
    own = model.state_dict()
    mapped = {target: weights[source] for source, target in key_map.items() if target is not None}
    absent = [t for t in mapped if t not in own]
    wrong = [
        f"{target} {tuple(tensor.shape)} vs {tuple(own[target].shape)}"
        for target, tensor in mapped.items()
        if target in own and tensor.shape != own[target].shape
    ]
    if absent or wrong:
        raise WeightsError(
            f"{where}: targets missing from the network: {_listed(absent) or 'none'}; "
            f"shape mismatches: {_listed(wrong) or 'none'}"
        )
    initialised = tuple(k for k in own if k not in mapped)
    if model.architecture == "resnet50" and keep_imagenet_fc and "fc.weight" in mapped:
        incomplete = [k for k in initialised if not k.endswith("num_batches_tracked")]
        if incomplete:  # the benchmark loads strictly when it keeps the ImageNet head
            raise WeightsError(f"{where}: tensors missing from the file: {_listed(incomplete)}")
    model.load_state_dict(mapped, strict=False)
    loaded = {target: source for source, target in key_map.items() if target is not None}
    dropped = tuple(source for source, target in key_map.items() if target is None)
    return WeightsReport(loaded=loaded, dropped=dropped, initialised=initialised)
