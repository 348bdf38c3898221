"""The CAM-map seam: :func:`compute_cams` is the one call that makes class activation maps.

Every caller goes through it: the WSOL scorer (training's evaluation, ``loc evaluate
--checkpoint``), segmentation pseudo-masks, ``loc cam`` and the demo figures. A CAM method
is a function registered under a name; it receives :class:`CAMInputs` (the model, the
input batch, the last feature maps, the logits computed from them and the chosen classes,
``(B, k)``) and returns raw maps ``(B, k, h, w)`` at any resolution. Callers turn raw maps
into their room's convention: WSOL upsamples bicubically and min-max normalises
(:func:`hideseek.cam.maps.resize_cams`); segmentation applies ReLU, bilinear upsampling
and max normalisation.

A method registered with ``needs_grad=True`` runs under ``torch.enable_grad()`` even inside
a ``no_grad`` evaluation loop: it gets feature maps that require gradients, and logits
computed from them, so ``torch.autograd.grad(logits..., inputs.features)`` works. It may
also run its own forward passes through ``inputs.model`` (e.g. on masked inputs).

Adding a method is one function and its registration::

    from hideseek.cam import register_cam_method

    @register_cam_method("feature-mean")
    def feature_mean(inputs):
        k = inputs.classes.shape[1]
        return inputs.features.mean(1, keepdim=True).expand(-1, k, -1, -1)

after which ``model.cams(x, method="feature-mean")`` and every config's ``cam_method``
accept the name.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

__all__ = [
    "CAMInputs",
    "CAMMethod",
    "CAM_METHODS",
    "ClassChoice",
    "cam_method_names",
    "compute_cams",
    "get_cam_method",
    "register_cam_method",
    "resolve_classes",
    "unregister_cam_method",
]

ClassChoice = torch.Tensor | Sequence[int] | Callable[[torch.Tensor], torch.Tensor] | None


@dataclass(frozen=True)
class CAMInputs:
    """What one batch gives a CAM method."""

    model: nn.Module
    images: torch.Tensor  # (B, 3, H, W) network input
    features: torch.Tensor  # (B, K, h, w) last feature maps (requires grad for gradient methods)
    logits: torch.Tensor  # (B, C) computed from ``features``
    classes: torch.Tensor  # (B, k) int64 classes whose maps are wanted


@dataclass(frozen=True)
class CAMMethod:
    name: str
    function: Callable[[CAMInputs], torch.Tensor]
    needs_grad: bool = False
    description: str = ""


CAM_METHODS: dict[str, CAMMethod] = {}


def register_cam_method(name: str, *, needs_grad: bool = False, replace: bool = False):
    """Decorator: register ``function(inputs: CAMInputs) -> (B, k, h, w)`` under ``name``."""

    def register(function: Callable[[CAMInputs], torch.Tensor]):
        if name in CAM_METHODS and not replace:
            raise ValueError(f"CAM method {name!r} is already registered")
        doc = (function.__doc__ or "").strip().splitlines()
        CAM_METHODS[name] = CAMMethod(name, function, needs_grad, doc[0] if doc else "")
        return function

    return register


def unregister_cam_method(name: str) -> None:
    """Remove a registered method (tests and plug-ins that registered one for a while)."""
    CAM_METHODS.pop(name, None)


def cam_method_names() -> tuple[str, ...]:
    return tuple(CAM_METHODS)


def get_cam_method(name: str) -> CAMMethod:
    if name not in CAM_METHODS:
        close = difflib.get_close_matches(name, list(CAM_METHODS), n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise ValueError(f"unknown CAM method {name!r}{hint}; valid choices: {', '.join(CAM_METHODS)}")
    return CAM_METHODS[name]


def resolve_classes(classes: ClassChoice, logits: torch.Tensor, topk: int) -> torch.Tensor:
    """``(B, k)`` classes from a :data:`ClassChoice` (``None``: the top-``topk`` of ``logits``)."""
    if classes is None:
        return logits.topk(min(topk, logits.shape[1]), dim=1).indices
    if callable(classes):
        classes = classes(logits)
    chosen = torch.as_tensor(classes, device=logits.device, dtype=torch.long)
    return chosen[:, None] if chosen.ndim == 1 else chosen


def compute_cams(
    model: nn.Module, images: torch.Tensor, classes: ClassChoice = None, *, method: str = "cam", topk: int = 1
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Raw maps of ``classes`` under ``method``: ``(maps (B, k, h, w), classes (B, k), logits (B, C))``.

    ``classes``: GT classes (``(B,)`` or ``(B, k)``), ``None`` for the top-``topk``
    predicted ones, or a function of the logits returning ``(B, k)`` (e.g. the GT class
    and the top-1 prediction). ``model`` is a CAM model: ``features(x)`` gives the last
    feature maps and ``classify(features)`` the logits. It runs in whatever mode it is in
    (call ``eval()`` first); nothing returned holds a graph.
    """
    spec = get_cam_method(method)
    with torch.no_grad():
        features = model.features(images)
    with torch.enable_grad() if spec.needs_grad else torch.no_grad():
        if spec.needs_grad:
            features = features.detach().requires_grad_(True)
        logits = model.classify(features)
        chosen = resolve_classes(classes, logits, topk)
        maps = spec.function(CAMInputs(model, images, features, logits, chosen))
    return maps.detach(), chosen, logits.detach()


@register_cam_method("cam")
def class_activation_map(inputs: CAMInputs) -> torch.Tensor:
    """CAM (Zhou et al., CVPR 2016): ``sum_k W[c, k] F_k``, the classifier's weights on the last feature maps."""
    weights = inputs.model.classifier.weight[inputs.classes].to(inputs.features.dtype)  # (B, k, K)
    # one class at a time: one einsum over k classes of channels_last features takes another
    # BLAS path than over one, and rounds differently (~4e-7), so the GT map of a (GT, top-1)
    # pair would not equal the GT map alone, and PxAP, which bins every pixel, would change
    # with how many maps an evaluation asks for
    return torch.cat([torch.einsum("bkc,bchw->bkhw", weights[:, j:j + 1], inputs.features)
                      for j in range(weights.shape[1])], dim=1)
