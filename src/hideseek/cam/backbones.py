"""timm backbones for CAM models: name checking and the benchmark's larger feature map.

``backbone_error`` is the one error every room raises for an unknown backbone name (close
matches first). ``drop_last_stride`` is how the public WSOL benchmark enlarges the final
feature map (stride 1 instead of 2 in the last down-sampling step, no dilation); timm has
no switch for it, so it is written here.
"""

from __future__ import annotations

import timm
from torch import nn

__all__ = ["backbone_error", "check_backbone", "drop_last_stride"]


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


def drop_last_stride(model: nn.Module) -> None:
    """Set every stride-2 conv/pool of the last down-sampling step to stride 1.

    This is how the public WSOL benchmark enlarges the feature map (no dilation). The step
    is found from timm's ``feature_info`` reductions: every layer registered after the
    previous stage's module, up to the end of the last stage's module (some models, e.g.
    Inception-v3, down-sample in blocks between the two).
    """
    info = model.feature_info
    reductions = [entry["reduction"] for entry in info]
    last = max(i for i in range(len(reductions)) if i == 0 or reductions[i] > reductions[i - 1])
    if last == 0:
        raise ValueError("large_feature_map: the backbone has no down-sampling stage to undo")
    previous, current = info[last - 1]["module"], info[last]["module"]
    names = [name for name, _ in model.named_modules()]
    start = max(i for i, n in enumerate(names) if n == previous or n.startswith(previous + "."))
    end = max(i for i, n in enumerate(names) if n == current or n.startswith(current + "."))
    modules = dict(model.named_modules())
    changed = 0
    for name in names[start + 1 : end + 1]:
        module = modules[name]
        stride = getattr(module, "stride", None)
        if isinstance(module, nn.Conv2d | nn.MaxPool2d | nn.AvgPool2d) and stride in (2, (2, 2)):
            module.stride = (1, 1) if isinstance(module, nn.Conv2d) else 1
            changed += 1
    if not changed:
        raise ValueError(f"large_feature_map: found no stride-2 layer between {previous!r} and {current!r}")


def check_backbone(name: str) -> None:
    """Raise :func:`backbone_error` unless ``name`` is a timm model name."""
    if not timm.is_model(name):
        raise backbone_error(name)
