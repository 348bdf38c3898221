"""``benchmark_model``: the WSOL benchmark's network for an architecture and a WSOL method.

The benchmark (clovaai/wsolevaluation) maps its six methods to four network types: HaS and
CutMix change only the training inputs, so they train the ``cam`` network; ACoL, SPG and
ADL have their own. Method parameters keep the names and defaults of the benchmark's
``config.py`` (:data:`METHOD_PARAMS`); the network uses ``acol_threshold``,
``adl_drop_rate`` and ``adl_threshold``, the rest (HaS grid and drop rate, SPG thresholds,
CutMix beta and probability) belong to the training step and are kept on the model as
``model.method_params`` for it.

Importing this module also registers the three architectures with timm, so that
``timm.create_model("wsol_resnet50", num_classes=200, method="adl")`` works (``pretrained=True``
needs a local file: ``pretrained_cfg_overlay=dict(file=...)`` or ``pretrained_file=...``).
"""

from __future__ import annotations

import difflib
from pathlib import Path

import torch
from timm.models import register_model

from hideseek.localization.benchmark.inception import InceptionV3ACoL, InceptionV3CAM, InceptionV3SPG
from hideseek.localization.benchmark.layers import BenchmarkNet
from hideseek.localization.benchmark.resnet import ResNet50ACoL, ResNet50CAM, ResNet50SPG
from hideseek.localization.benchmark.vgg import VGG16CAM, VGG16SPG, VGG16ACoL
from hideseek.localization.benchmark.weights import load_torchvision_weights
from hideseek.localization.choices import BENCHMARK_ARCHITECTURES
from hideseek.localization.wsol_methods import WSOL_METHODS, get_wsol_method

__all__ = [
    "ARCHITECTURES",
    "METHOD_PARAMS",
    "METHOD_TYPES",
    "benchmark_model",
    "head_parameters",
    "wsol_inception_v3",
    "wsol_resnet50",
    "wsol_vgg16",
]

ARCHITECTURES = BENCHMARK_ARCHITECTURES
# the benchmark's methods (hideseek.localization.wsol_methods): the network type each trains, and
# its parameters with the benchmark's defaults (config.py)
METHOD_TYPES = {name: method.network for name, method in WSOL_METHODS.items()}
METHOD_PARAMS: dict[str, dict[str, float | int]] = {name: dict(method.params) for name, method in WSOL_METHODS.items()}

_NETWORKS = {
    "vgg16": {"cam": VGG16CAM, "adl": VGG16CAM, "acol": VGG16ACoL, "spg": VGG16SPG},
    "resnet50": {"cam": ResNet50CAM, "adl": ResNet50CAM, "acol": ResNet50ACoL, "spg": ResNet50SPG},
    "inception_v3": {"cam": InceptionV3CAM, "adl": InceptionV3CAM, "acol": InceptionV3ACoL, "spg": InceptionV3SPG},
}
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


def _choice(kind: str, value: str, valid) -> ValueError:
    close = difflib.get_close_matches(value, list(valid), n=3)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    return ValueError(f"unknown {kind} {value!r}{hint}; valid choices: {', '.join(valid)}")


def benchmark_model(
    architecture: str,
    method: str = "cam",
    *,
    num_classes: int = 1000,
    large_feature_map: bool = False,
    pretrained_file: str | Path | None = None,
    keep_imagenet_fc: bool | None = None,
    **method_params: float | int,
) -> BenchmarkNet:
    """The benchmark's ``architecture`` network for WSOL ``method``, freshly initialised as the benchmark does.

    ``architecture``: ``vgg16``, ``resnet50`` or ``inception_v3``; ``method``: ``cam``,
    ``has``, ``cutmix`` (these three share the ``cam`` network), ``acol``, ``spg`` or
    ``adl``. ``method_params`` override :data:`METHOD_PARAMS` (e.g. ``acol_threshold=0.6``).
    ``pretrained_file``: a local torchvision ImageNet weights file of the architecture,
    mapped onto the network as the benchmark does
    (:func:`~hideseek.localization.benchmark.weights.load_torchvision_weights`, where
    ``keep_imagenet_fc`` is explained). The network is in training mode.
    """
    if architecture not in _NETWORKS:
        raise _choice("architecture", architecture, ARCHITECTURES)
    if method not in METHOD_TYPES:
        raise _choice("WSOL method", method, METHOD_TYPES)
    params = get_wsol_method(method).resolve(method_params)
    method_type = METHOD_TYPES[method]
    kwargs: dict = {}
    if method_type == "acol":
        kwargs = {"acol_threshold": params["acol_threshold"]}
    elif method_type == "adl":
        kwargs = {"adl": True, "adl_drop_rate": params["adl_drop_rate"], "adl_threshold": params["adl_threshold"]}
    model = _NETWORKS[architecture][method_type](num_classes=num_classes, large_feature_map=large_feature_map, **kwargs)
    model.method = method
    model.method_params = params
    model.pretrained_cfg = {
        "architecture": f"wsol_{architecture}",
        "num_classes": num_classes,
        "input_size": (3, 224, 224),
        "interpolation": "bilinear",
        "crop_pct": 1.0,
        "mean": _IMAGENET_MEAN,
        "std": _IMAGENET_STD,
    }
    if pretrained_file is not None:
        load_torchvision_weights(model, pretrained_file, keep_imagenet_fc)
    return model


# the benchmark's two learning-rate groups (its main.py): parameter names holding one of these
# substrings train at the base lr on VGG16 and Inception-v3 (the pretrained trunk) and at the
# classifier lr on ResNet50 (its last stage and fc); every other parameter takes the other rate
_TRUNK_PATTERNS = {"vgg16": ("features.",), "inception_v3": ("Mixed", "Conv2d_1", "Conv2d_2", "Conv2d_3", "Conv2d_4")}
_HEAD_PATTERNS = {"resnet50": ("layer4.", "fc.")}


def head_parameters(model: BenchmarkNet) -> list[torch.nn.Parameter]:
    """The parameters the benchmark trains at ``lr x lr_classifier_ratio`` (its classifier group)."""
    if model.architecture in _HEAD_PATTERNS:
        patterns = _HEAD_PATTERNS[model.architecture]
        return [p for name, p in model.named_parameters() if any(k in name for k in patterns)]
    patterns = _TRUNK_PATTERNS[model.architecture]
    return [p for name, p in model.named_parameters() if not any(k in name for k in patterns)]


def _timm_entry(architecture: str, pretrained: bool, kwargs: dict) -> torch.nn.Module:
    overlay = kwargs.pop("pretrained_cfg_overlay", None) or {}
    kwargs.pop("pretrained_cfg", None)
    kwargs.pop("cache_dir", None)
    file = kwargs.pop("pretrained_file", None)
    if pretrained and file is None:
        file = overlay.get("file")
        if file is None:
            raise ValueError(
                f"wsol_{architecture}: nothing is downloaded; pass the local torchvision weights file as "
                "pretrained_cfg_overlay=dict(file=...) or pretrained_file=..."
            )
    return benchmark_model(architecture, kwargs.pop("method", "cam"), pretrained_file=file, **kwargs)


@register_model
def wsol_vgg16(pretrained: bool = False, **kwargs) -> BenchmarkNet:
    """The WSOL benchmark's VGG16 (``method=``, ``num_classes=``, ``large_feature_map=``, method parameters)."""
    return _timm_entry("vgg16", pretrained, kwargs)


@register_model
def wsol_resnet50(pretrained: bool = False, **kwargs) -> BenchmarkNet:
    """The WSOL benchmark's ResNet50 (``method=``, ``num_classes=``, ``large_feature_map=``, method parameters)."""
    return _timm_entry("resnet50", pretrained, kwargs)


@register_model
def wsol_inception_v3(pretrained: bool = False, **kwargs) -> BenchmarkNet:
    """The WSOL benchmark's Inception-v3 (``method=``, ``num_classes=``, ``large_feature_map=``, method parameters)."""
    return _timm_entry("inception_v3", pretrained, kwargs)
