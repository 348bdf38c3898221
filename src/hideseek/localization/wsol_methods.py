"""The WSOL methods of the public benchmark: what each does to a training batch and its loss.

One :class:`WSOLMethod` per name of the benchmark's ``--wsol_method``, with its parameter
names and defaults as the benchmark spells them:

- ``cam``: cross-entropy of the pooled logits (Zhou et al. 2016).
- ``has``: the benchmark's Hide-and-Seek variant: one fixed grid (``has_grid_size``) whose
  cells are hidden (set to 0, the normalised mean) with probability ``has_drop_rate``.
  The paper's HaS (several grid sizes, one drawn per image) is the ``has`` augmentation.
- ``acol``: cross-entropy of both classifiers of ACoL (Zhang et al. 2018); the second sees
  the features with the first one's most activated region (>= ``acol_threshold`` of its
  min-max normalised class map) erased. The erasing lives in the network.
- ``spg``: SPG (Zhang et al. 2018): cross-entropy plus three pixel-wise BCE losses that make
  the B2, B1 and C branches follow self-produced masks (foreground above a high threshold,
  background below a low one, the rest ignored): ``spg_threshold_{1,2,3}{h,l}``.
- ``adl``: cross-entropy; the attention-based dropout layers (``adl_drop_rate``,
  ``adl_threshold``) live in the network.
- ``cutmix``: with probability ``cutmix_prob`` a batch gets a box of another image pasted in
  (area ratio from Beta(``cutmix_beta``, ``cutmix_beta``)) and the loss mixes the two labels
  by the pasted area (Yun et al. 2019).

Randomness differs from the benchmark on purpose: the benchmark draws from global RNG
streams, so a hidden cell or a pasted box depends on everything that ran before. Here every
draw is a pure function of ``(seed, epoch, sample ids)`` like every hiding operation of
hideseek (``has`` uses :func:`hideseek.augment.hide_patches`; ``cutmix`` seeds a generator
from the seed, the epoch and the batch's ids), so a run resumes and reproduces bit for bit.
The distributions are the benchmark's.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from hideseek.augment import hide_patches
from hideseek.localization.choices import WSOL_METHODS as WSOL_METHOD_NAMES

__all__ = ["WSOL_METHODS", "WSOLMethod", "cutmix_batch", "get_wsol_method", "spg_loss", "spg_mask", "wsol_step"]

_CUTMIX_STREAM = 0x43555458  # "CUTX": the generator stream of CutMix draws


@dataclass(frozen=True)
class WSOLMethod:
    name: str
    network: str  # the benchmark network type it trains: cam, acol, spg, adl
    params: Mapping[str, float | int] = field(default_factory=dict)  # name -> the benchmark's default
    needs_benchmark_network: bool = False  # its network parts exist only in the benchmark's networks

    def resolve(self, given: Mapping[str, float | int] | None) -> dict:
        """The method's parameters: the benchmark's defaults updated with ``given``, each cast to
        its default's type; a name of another method, or of none, is refused."""
        params = dict(self.params)
        for name, value in (given or {}).items():
            if name not in params:
                owner = next((m.name for m in WSOL_METHODS.values() if name in m.params), None)
                if owner is not None:
                    raise ValueError(f"wsol method {self.name!r}: {name!r} is a parameter of method {owner!r}")
                valid = ", ".join(params) or "none"
                raise ValueError(f"wsol method {self.name!r}: unknown parameter {name!r}; valid: {valid}")
            if isinstance(params[name], int) and int(value) != value:
                raise ValueError(f"wsol method {self.name!r}: {name!r} must be an integer, got {value!r}")
            params[name] = type(params[name])(value)
        return params


_SPG_DEFAULTS = {"spg_threshold_1h": 0.7, "spg_threshold_1l": 0.01, "spg_threshold_2h": 0.5,
                 "spg_threshold_2l": 0.05, "spg_threshold_3h": 0.7, "spg_threshold_3l": 0.1}

WSOL_METHODS: dict[str, WSOLMethod] = {m.name: m for m in (
    WSOLMethod("cam", "cam"),
    WSOLMethod("has", "cam", {"has_grid_size": 4, "has_drop_rate": 0.5}),
    WSOLMethod("acol", "acol", {"acol_threshold": 0.7}, needs_benchmark_network=True),
    WSOLMethod("spg", "spg", _SPG_DEFAULTS, needs_benchmark_network=True),
    WSOLMethod("adl", "adl", {"adl_drop_rate": 0.75, "adl_threshold": 0.9}, needs_benchmark_network=True),
    WSOLMethod("cutmix", "cam", {"cutmix_beta": 1.0, "cutmix_prob": 1.0}),
)}


assert tuple(WSOL_METHODS) == WSOL_METHOD_NAMES, "hideseek.localization.choices.WSOL_METHODS is out of date"


def get_wsol_method(name: str) -> WSOLMethod:
    """The method called ``name`` (``base``, the benchmark's name for CAM, is accepted)."""
    name = "cam" if name == "base" else name
    if name not in WSOL_METHODS:
        close = difflib.get_close_matches(name, list(WSOL_METHODS), n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise ValueError(f"unknown wsol method {name!r}{hint}; valid choices: {', '.join(WSOL_METHODS)}")
    return WSOL_METHODS[name]


# --------------------------------------------------------------------------- CutMix


def cutmix_batch(images: torch.Tensor, labels: torch.Tensor, *, beta: float, prob: float, seed: int, epoch: int,
                 ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float] | None:
    """Paste a box of a partner image into every image, or ``None`` when this batch is left alone.

    Returns ``(images, labels, partner_labels, lam)`` with ``lam`` the share of each image
    that is still its own (the benchmark's box rule: a ``sqrt(1 - lam0)``-sided box around a
    uniform centre, clipped to the image, ``lam`` recomputed from the clipped area). Every
    draw comes from a generator seeded by ``(seed, epoch, ids)``.
    """
    if beta <= 0 or prob <= 0:
        return None
    words = [seed, epoch, _CUTMIX_STREAM, len(ids), *ids.detach().cpu().tolist()]
    rng = np.random.default_rng(np.random.SeedSequence([int(w) for w in words]))
    if not prob > rng.random():
        return None
    lam0 = rng.beta(beta, beta)
    partner = torch.from_numpy(rng.permutation(images.shape[0])).to(images.device)
    height, width = images.shape[-2:]
    cut = np.sqrt(1.0 - lam0)
    cut_h, cut_w = int(height * cut), int(width * cut)
    cy, cx = int(rng.integers(height)), int(rng.integers(width))
    y0, y1 = np.clip(cy - cut_h // 2, 0, height), np.clip(cy + cut_h // 2, 0, height)
    x0, x1 = np.clip(cx - cut_w // 2, 0, width), np.clip(cx + cut_w // 2, 0, width)
    mixed = images.clone()
    mixed[:, :, y0:y1, x0:x1] = images[partner, :, y0:y1, x0:x1]
    lam = 1.0 - float((y1 - y0) * (x1 - x0)) / float(height * width)
    return mixed, labels, labels[partner], lam


# --------------------------------------------------------------------------- SPG


def spg_mask(attention: torch.Tensor, high: float, low: float, min_foreground: int = 30) -> torch.Tensor:
    """Self-produced guidance mask ``(B, 1, H, W)``: 1 foreground, 0 background, 255 ignored.

    Foreground: attention above ``high``; an image with fewer than ``min_foreground`` such
    pixels takes those above 0.7 of its maximum instead. Background: attention below
    ``low`` (it wins where both hold).
    """
    mask = torch.full_like(attention, 255.0)
    flat = attention.flatten(1)
    foreground = flat > high
    few = foreground.sum(1) < min_foreground
    if bool(few.any()):
        fallback = flat > 0.7 * flat.amax(1, keepdim=True)
        foreground = torch.where(few[:, None], fallback, foreground)
    mask = mask.flatten(1).masked_fill(foreground, 1.0)
    mask = mask.masked_fill(flat < low, 0.0)
    return mask.view_as(attention)


def _upsampled(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def _guided_bce(logits: torch.Tensor, guide: torch.Tensor, high: float, low: float, size) -> torch.Tensor:
    """BCE of a one-channel branch (upsampled to ``size``) against the mask of ``guide``, ignored pixels left out."""
    mask = spg_mask(guide, high, low)
    keep = mask < 255
    return F.binary_cross_entropy_with_logits(_upsampled(logits, size)[keep], mask[keep])


def spg_loss(out: Mapping[str, torch.Tensor], labels: torch.Tensor, params: Mapping[str, float]) -> torch.Tensor:
    """SPG's loss from the network's outputs (``logits``, ``attention``, ``fused_attention``,
    ``logits_b1``, ``logits_b2``, ``logits_c``); the masks live at the attention maps' size
    (the benchmark's 224 x 224 whatever the input size) and the branches are upsampled to it."""
    p = params
    size = tuple(out["attention"].shape[-2:])
    b2 = torch.sigmoid(_upsampled(out["logits_b2"], size)).detach()
    return (F.cross_entropy(out["logits"], labels)
            + _guided_bce(out["logits_b2"], out["attention"].detach(), p["spg_threshold_1h"], p["spg_threshold_1l"],
                          size)
            + _guided_bce(out["logits_b1"], b2, p["spg_threshold_2h"], p["spg_threshold_2l"], size)
            + _guided_bce(out["logits_c"], out["fused_attention"].detach(), p["spg_threshold_3h"],
                          p["spg_threshold_3l"], size))


# --------------------------------------------------------------------------- the step


def _forward(model, images: torch.Tensor, labels: torch.Tensor | None) -> Mapping[str, torch.Tensor]:
    """The benchmark's networks take the labels (ACoL and SPG use them) and return a dict;
    a :class:`~hideseek.cam.model.CAMNet` returns logits."""
    inner = getattr(model, "module", model)  # DDP
    if getattr(inner, "returns_dict", False):
        return model(images, labels)
    return {"logits": model(images)}


def wsol_step(method: WSOLMethod, params: Mapping[str, float], *, seed: int,
              augmentation: torch.nn.Module | None = None, mean=None, std=None) -> Callable:
    """The training step ``(model, batch, epoch) -> loss`` of ``method`` (after an optional
    batch augmentation of the registry, keyed like every hiding by ``(seed, epoch, index)``).
    A uint8 batch is normalised with ``mean``/``std`` first
    (:func:`hideseek.cam.recipe.batch_images`)."""
    from hideseek.augment import using_sample_ids
    from hideseek.cam.recipe import batch_images

    def step(model, batch, epoch):
        images, labels, ids = batch_images(batch, mean, std), batch["label"], batch["index"]
        if augmentation is not None:
            augmentation.train()
            images = augmentation(images, sample_ids=ids)
        with using_sample_ids(model, ids):
            if method.name == "cutmix":
                mixed = cutmix_batch(images, labels, beta=params["cutmix_beta"], prob=params["cutmix_prob"],
                                     seed=seed, epoch=epoch, ids=ids)
                if mixed is not None:
                    images, labels_a, labels_b, lam = mixed
                    logits = _forward(model, images, None)["logits"]
                    return lam * F.cross_entropy(logits, labels_a) + (1.0 - lam) * F.cross_entropy(logits, labels_b)
            if method.name == "has":
                images = hide_patches(images, grid_sizes=(int(params["has_grid_size"]),),
                                      p_hide=float(params["has_drop_rate"]), seed=seed, epoch=epoch, sample_ids=ids)
            out = _forward(model, images, labels)
            if method.name == "acol":
                return F.cross_entropy(out["logits"], labels) + F.cross_entropy(out["logit_b"], labels)
            if method.name == "spg":
                return spg_loss(out, labels, params)
            return F.cross_entropy(out["logits"], labels)

    return step
