"""timm backbones for CAM models: name checking and the benchmark's larger feature map.

``backbone_error`` is the one error every room raises for an unknown backbone name (close
matches first). ``drop_last_stride`` is how the public WSOL benchmark enlarges the final
feature map (stride 1 instead of 2 in the last down-sampling step, no dilation); timm has
no switch for it, so it is written here.
"""

from __future__ import annotations

import functools

import timm
import torch
from torch import nn

__all__ = ["backbone_error", "check_backbone", "check_feature_stage", "check_input_size", "drop_last_stride",
           "feature_stage_count", "patch_size"]


def backbone_error(name: str) -> ValueError:
    """The error for an unknown backbone: close matches first, then where to look."""
    import difflib

    names = timm.list_models()
    close = difflib.get_close_matches(name, names, n=8, cutoff=0.6)
    hint = f" Close matches: {', '.join(close)}." if close else ""
    return ValueError(
        f"unknown backbone {name!r}: not a timm model name.{hint} "
        f"All {len(names)} names: python -c 'import timm; print(timm.list_models())'"
    )


def _module_name(modules: dict, name: str) -> str | None:
    """``name`` of a timm ``feature_info`` entry as ``modules`` spells it: a ``features_only`` model
    flattens the leading part of the path (``features.22`` -> ``features_22``, ``stages.2`` -> ``stages_2``)."""
    parts = name.split(".")
    for k in range(len(parts)):
        candidate = ".".join(["_".join(parts[: k + 1]), *parts[k + 1 :]])
        if candidate in modules:
            return candidate
    return None


def drop_last_stride(model: nn.Module, name: str = "backbone") -> None:
    """Set every stride-2 conv/pool of the last down-sampling step to stride 1.

    This is how the public WSOL benchmark enlarges the feature map (no dilation). The step
    is found from timm's ``feature_info`` reductions, up to the stage a ``features_only`` model
    ends at: every layer registered after the previous stage's module, up to the end of the
    last stage's module (some models, e.g. Inception-v3, down-sample in blocks between the two).
    ``name`` (the backbone's) is what the errors call it.
    """
    info = getattr(model, "feature_info", None)
    if not info:
        raise ValueError(f"large_feature_map: backbone {name!r} has no timm feature_info to find its last "
                         "down-sampling step (CNN families such as resnet, vgg, densenet, convnext, efficientnet "
                         "have one)")
    entries = list(info.info) if hasattr(info, "info") else list(info)
    out_indices = getattr(info, "out_indices", None)
    if out_indices:  # a features_only model ends at its last output stage
        entries = entries[: max(out_indices) + 1]
    reductions = [entry["reduction"] for entry in entries]
    last = max(i for i in range(len(reductions)) if i == 0 or reductions[i] > reductions[i - 1])
    if last == 0:
        raise ValueError(f"large_feature_map: backbone {name!r} has no down-sampling stage to undo here")
    modules = dict(model.named_modules())
    previous = _module_name(modules, entries[last - 1]["module"])
    current = _module_name(modules, entries[last]["module"])
    if previous is None or current is None:
        raise ValueError(f"large_feature_map is not supported for {name!r}: its stage modules "
                         f"{entries[last - 1]['module']!r} and {entries[last]['module']!r} are not found in the "
                         "network")
    names = list(modules)
    start = max(i for i, n in enumerate(names) if n == previous or n.startswith(previous + "."))
    end = max(i for i, n in enumerate(names) if n == current or n.startswith(current + "."))
    changed = 0
    for layer in names[start + 1 : end + 1]:
        module = modules[layer]
        stride = getattr(module, "stride", None)
        if isinstance(module, nn.Conv2d | nn.MaxPool2d | nn.AvgPool2d) and stride in (2, (2, 2)):
            module.stride = (1, 1) if isinstance(module, nn.Conv2d) else 1
            changed += 1
    if not changed:
        raise ValueError(f"large_feature_map is not supported for {name!r}: found no stride-2 layer between "
                         f"{previous!r} and {current!r}")


def check_backbone(name: str) -> None:
    """Raise :func:`backbone_error` unless ``name`` is a timm model name."""
    if not timm.is_model(name):
        raise backbone_error(name)


@functools.lru_cache(maxsize=64)
def feature_stage_count(name: str) -> int | None:
    """How many timm feature stages backbone ``name`` has (built on the meta device: no memory, no
    weights); ``None`` when timm cannot tell (no ``features_only`` for it)."""
    try:
        with torch.device("meta"):
            return len(timm.create_model(name, features_only=True).feature_info)
    except Exception:  # noqa: BLE001  (unknown to features_only: the model builder says what is wrong)
        return None


def check_feature_stage(name: str, stage: int | None, what: str = "feature_stage") -> None:
    """Refuse a feature stage backbone ``name`` does not have, naming the ones it has (``what``: how
    the error names the setting, e.g. ``--feature-stage`` on the command line)."""
    if stage is None:
        return
    count = feature_stage_count(name)
    if count is not None and not 0 <= stage < count:
        raise ValueError(f"{what} {stage}: backbone {name!r} has feature stages 0..{count - 1} "
                         f"(or the whole backbone: {'-1' if what.startswith('--') else 'None'})")


@functools.lru_cache(maxsize=64)
def patch_size(name: str) -> tuple[int, int] | None:
    """The patch size of a ViT-style backbone (``patch_embed.patch_size``), built on the meta device;
    ``None`` for a CNN or when timm cannot build it."""
    try:
        with torch.device("meta"):
            model = timm.create_model(name)
    except Exception:  # noqa: BLE001  (the real build reports what is wrong)
        return None
    size = getattr(getattr(model, "patch_embed", None), "patch_size", None)
    return tuple(int(p) for p in size) if size is not None else None


def check_input_size(name: str, size: int, what: str = "crop_size") -> None:
    """Refuse an input side a ViT-style backbone's patches do not divide (timm asserts deep in the
    forward pass otherwise), naming the setting and the sizes that work."""
    patch = patch_size(name)
    if patch is not None and size % patch[0]:
        low = size - size % patch[0]
        raise ValueError(f"{what} {size}: backbone {name!r} takes sides that are multiples of its {patch[0]} px "
                         f"patches (e.g. {low or patch[0]} or {low + patch[0]})")
