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

Registered here (names in :mod:`hideseek.cam.choices`):

- ``cam``: vanilla CAM, the default, computed here (the classifier's weights on the
  feature maps).
- ``gradcam``, ``gradcam++``, ``xgradcam``, ``scorecam``, ``ablationcam``, ``eigencam``,
  ``layercam``, ``hirescam``: the ``grad-cam`` package's classes (pytorch_grad_cam) of those
  names, called on the CAM model with the last feature map as the target layer
  (``model.feature_map``, the map vanilla CAM weighs) and ``ClassifierOutputTarget`` of each
  requested class. Their maps are the package's own output: ReLU, min-max normalised and
  resized (OpenCV bilinear) to the input size by the package; callers then resize them as
  any raw map (a WSOL resize to the input size only re-normalises them).
- ``rollout``: attention rollout of a ViT backbone (``CAMNet.attention_rollout``), on the
  patch grid, class-agnostic.
"""

from __future__ import annotations

import contextlib
import difflib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from hideseek.cam.choices import GRAD_CAM_CLASSES, ROLLOUT

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


# --------------------------------------------------------------------------- the grad-cam package

_SCORECAM_BYTES = 1 << 30  # ScoreCAM holds (images x channels) masked inputs at once: chunk the batch to ~1 GiB


@contextlib.contextmanager
def _model_state(model: nn.Module) -> Iterator[None]:
    """Restore what a package call changes: every module's train/eval mode (it calls ``eval()``)
    and every parameter's ``.grad`` (it calls ``zero_grad()`` and ``backward()``)."""
    modes = [(module, module.training) for module in model.modules()]
    grads = [(parameter, parameter.grad) for parameter in model.parameters()]
    try:
        yield
    finally:
        for module, mode in modes:
            module.training = mode
        for parameter, grad in grads:
            parameter.grad = grad


@contextlib.contextmanager
def _quiet_progress() -> Iterator[None]:
    """ScoreCAM and AblationCAM draw a tqdm bar per image: silence the package's (only) for the call."""
    import types

    from pytorch_grad_cam import ablation_cam, score_cam

    silent = types.SimpleNamespace(tqdm=lambda iterable, *args, **kwargs: iterable)
    saved = [(module, module.tqdm) for module in (ablation_cam, score_cam)]
    try:
        for module, _ in saved:
            module.tqdm = silent
        yield
    finally:
        for module, original in saved:
            module.tqdm = original


def _package_cams(inputs: CAMInputs, class_name: str, uses_gradients: bool) -> torch.Tensor:
    import pytorch_grad_cam
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    model = inputs.model
    target = getattr(model, "feature_map", None)
    if not isinstance(target, nn.Module):
        raise ValueError(f"CAM method {class_name!r} of the grad-cam package needs a CAM model with a "
                         "'feature_map' module (the last feature map, e.g. hideseek's CAMNet)")
    images, classes = inputs.images, inputs.classes
    batch, k = classes.shape
    chunk = batch
    if class_name == "ScoreCAM":
        per_image = inputs.features.shape[1] * images[0].numel() * images.element_size()
        chunk = max(1, _SCORECAM_BYTES // max(per_image, 1))
    class_agnostic = class_name == "EigenCAM"
    kwargs = {}
    if class_name == "AblationCAM":  # a fresh ablation layer: the package's default instance keeps state
        kwargs["ablation_layer"] = pytorch_grad_cam.AblationLayer()
    stop = target.stop_gradient if hasattr(target, "stop_gradient") else None
    maps = []
    with _model_state(model), _quiet_progress():
        if stop is not None:
            target.stop_gradient = uses_gradients
        cam = getattr(pytorch_grad_cam, class_name)(model=model, target_layers=[target], **kwargs)
        try:
            for j in range(1 if class_agnostic else k):
                columns = []
                for start in range(0, batch, chunk):
                    targets = [ClassifierOutputTarget(int(c)) for c in classes[start:start + chunk, j].tolist()]
                    columns.append(torch.from_numpy(cam(images[start:start + chunk], targets)))
                maps.append(torch.cat(columns))
        finally:
            cam.activations_and_grads.release()
            if stop is not None:
                target.stop_gradient = stop
            if class_name == "AblationCAM" and getattr(model, "feature_map", None) is not target:
                model.feature_map = target  # the package swaps the layer back itself, unless it failed midway
    out = torch.stack(maps, dim=1).to(images.device)
    return out.expand(-1, k, -1, -1) if class_agnostic else out


def _register_package_method(name: str, class_name: str) -> None:
    uses_gradients = class_name not in ("ScoreCAM", "AblationCAM", "EigenCAM")

    def method(inputs: CAMInputs) -> torch.Tensor:
        return _package_cams(inputs, class_name, uses_gradients)

    method.__doc__ = (f"{class_name} of the grad-cam package (pytorch_grad_cam) on the last feature map; "
                      "its maps, ReLU'd, normalised and resized to the input by the package.")
    method.__name__ = f"package_{class_name}"
    register_cam_method(name, needs_grad=uses_gradients)(method)


for _name, _class_name in GRAD_CAM_CLASSES.items():
    _register_package_method(_name, _class_name)


@register_cam_method(ROLLOUT)
def attention_rollout(inputs: CAMInputs) -> torch.Tensor:
    """Attention rollout (Abnar & Zuidema, 2020) of a ViT's class token over its patch grid; class-agnostic."""
    rollout = getattr(inputs.model, "attention_rollout", None)
    if rollout is None:
        raise ValueError("CAM method 'rollout' needs a CAM model with attention_rollout (hideseek's CAMNet on a ViT)")
    maps = rollout(inputs.images)
    return maps[:, None].expand(-1, inputs.classes.shape[1], -1, -1)
