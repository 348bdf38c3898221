"""CAM classifiers on any timm CNN backbone.

``CAMNet`` = timm feature extractor -> global pooling (avg, max or avgmax) -> a linear
classifier. Because pooling commutes with the classifier, the class activation map of
class c is ``sum_k W[c, k] * F_k`` over the last feature maps (Zhou et al., CVPR 2016);
``cams()`` upsamples it to the input size and min-max normalises it per map.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import timm
import torch
import torch.nn.functional as F
from timm.layers import SelectAdaptivePool2d
from torch import nn

from hideseek.localization.cam import normalize_cams

__all__ = ["CAMNet", "POOLS", "backbone_error"]

POOLS = ("avg", "max", "avgmax")


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


def _drop_last_stride(model: nn.Module) -> None:
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


class CAMNet(nn.Module):
    """Classifier whose weights give class activation maps.

    Parameters
    ----------
    backbone:
        Any ``timm.create_model`` name of a CNN (or of a ViT-style model with a patch grid,
        whose patch tokens are laid out as a map).
    num_classes:
        Number of classes.
    pool:
        ``"avg"`` (GAP), ``"max"`` (GMP) or ``"avgmax"`` (their mean), from timm's layers.
    pretrained_file:
        Local weights file for the backbone (timm ``pretrained_cfg_overlay``); nothing is
        downloaded.
    large_feature_map:
        Remove the last stride-2 down-sampling (stride 1, no dilation), doubling the CAM size.
    feature_stage:
        Cut the backbone after this timm feature stage (``features_only`` index), e.g. 2 for
        ResNet's stride-8 stage, giving a finer CAM on small inputs. ``None``: the whole
        backbone.
    feature_hide:
        An ``nn.Module`` (e.g. ``hideseek.augment.FeatureHide``) applied to the feature maps
        before pooling in training mode.
    """

    def __init__(
        self,
        backbone: str,
        num_classes: int,
        pool: str = "avg",
        pretrained_file: str | Path | None = None,
        large_feature_map: bool = False,
        feature_stage: int | None = None,
        feature_hide: nn.Module | None = None,
        **timm_kwargs,
    ):
        super().__init__()
        if pool not in POOLS:
            raise ValueError(f"unknown pool {pool!r}; valid choices: {', '.join(POOLS)}")
        if not timm.is_model(backbone):
            raise backbone_error(backbone)
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        kwargs = dict(timm_kwargs)
        if pretrained_file is not None:
            path = Path(pretrained_file)
            if not path.is_file():
                raise FileNotFoundError(f"{path}: pretrained weights file not found")
            kwargs.update(pretrained=True, pretrained_cfg_overlay=dict(file=str(path)))
        self.backbone_name = backbone
        self.pool_type = pool
        self.feature_stage = feature_stage
        if feature_stage is not None:
            self.backbone = timm.create_model(backbone, features_only=True, out_indices=(feature_stage,), **kwargs)
            channels = self.backbone.feature_info.channels()[-1]
        else:
            self.backbone = timm.create_model(backbone, num_classes=0, global_pool="", **kwargs)
            channels = self.backbone.num_features
        if large_feature_map:
            _drop_last_stride(self.backbone)
            size = tuple(getattr(self.backbone, "pretrained_cfg", {}).get("input_size", (3, 224, 224)))[-2:]
            try:
                with torch.no_grad():
                    self.backbone.eval()(torch.zeros(1, 3, *size))
            except RuntimeError as error:
                raise ValueError(
                    f"large_feature_map is not supported for {backbone!r}: it also down-samples with "
                    f"operations that are not layers, so removing the strided layers breaks it ({error})"
                ) from None
            self.backbone.train()
        self.feature_hide = feature_hide
        self.pool = SelectAdaptivePool2d(pool_type=pool, flatten=True)
        self.classifier = nn.Linear(channels, num_classes)
        self.num_classes = num_classes
        self.pretrained_cfg = getattr(self.backbone, "pretrained_cfg", {})

    # ------------------------------------------------------------------ features

    def _token_map(self, tokens: torch.Tensor) -> torch.Tensor:
        grid = getattr(getattr(self.backbone, "patch_embed", None), "grid_size", None)
        prefix = getattr(self.backbone, "num_prefix_tokens", None)
        if grid is None or prefix is None:
            raise ValueError(
                f"backbone {self.backbone_name!r} returns tokens {tuple(tokens.shape)} without a "
                "patch grid; CAMs need a spatial feature map (use a CNN or a ViT with patch_embed)"
            )
        h, w = grid
        patches = tokens[:, prefix:]
        if patches.shape[1] != h * w:
            raise ValueError(
                f"backbone {self.backbone_name!r}: {patches.shape[1]} patch tokens do not form its "
                f"{h}x{w} grid (input size differs from the model's img_size?)"
            )
        return patches.transpose(1, 2).reshape(tokens.shape[0], -1, h, w)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Last feature maps (B, K, h, w) after optional feature hiding."""
        out = self.backbone(x)
        if isinstance(out, list | tuple):
            out = out[-1]
        if out.ndim == 3:
            out = self._token_map(out)
        elif out.ndim == 4 and getattr(self.backbone, "output_fmt", "NCHW") == "NHWC":
            out = out.permute(0, 3, 1, 2)
        if out.ndim != 4:
            raise ValueError(f"backbone {self.backbone_name!r} gave features of shape {tuple(out.shape)}, not a map")
        if self.feature_hide is not None:
            out = self.feature_hide(out)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits (B, num_classes)."""
        return self.classifier(self.pool(self.features(x)))

    # ------------------------------------------------------------------ CAMs

    def raw_cams(self, features: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
        """Un-normalised CAMs (B, k, h, w) of ``classes`` (B, k) from feature maps."""
        weights = self.classifier.weight[classes]  # (B, k, K)
        return torch.einsum("bkc,bchw->bkhw", weights.to(features.dtype), features)

    def maps(self, features: torch.Tensor, classes: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """CAMs of ``classes`` (B, k) from feature maps, upsampled (bicubic) to ``size`` and
        min-max normalised per map: (B, k, H, W) float32."""
        maps = self.raw_cams(features, classes).float()
        maps = F.interpolate(maps, size=size, mode="bicubic", align_corners=False)
        return normalize_cams(maps)

    @torch.no_grad()
    def cams(
        self,
        x: torch.Tensor,
        classes: torch.Tensor | Sequence[int] | None = None,
        topk: int = 1,
        size: tuple[int, int] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """CAMs for given classes (e.g. GT) or the top-k predicted ones.

        Returns ``(maps, classes, logits)``: maps (B, k, H, W) upsampled (bicubic) to the
        input size (or ``size``) and min-max normalised per map; classes (B, k); logits
        (B, num_classes). Runs in whatever mode the model is in: call ``eval()`` first.
        """
        features = self.features(x)
        logits = self.classifier(self.pool(features))
        if classes is None:
            classes = logits.topk(min(topk, self.num_classes), dim=1).indices
        else:
            classes = torch.as_tensor(classes, device=x.device, dtype=torch.long)
            if classes.ndim == 1:
                classes = classes[:, None]
        return self.maps(features, classes, size or tuple(x.shape[-2:])), classes, logits
