"""CAM classifiers on any timm CNN backbone.

``CAMNet`` = timm feature extractor -> global pooling (avg, max or avgmax) -> a linear
classifier. Because pooling commutes with the classifier, the class activation map of
class c is ``sum_k W[c, k] * F_k`` over the last feature maps (Zhou et al., CVPR 2016);
``cams()`` upsamples it to the input size and min-max normalises it per map.
"""

from __future__ import annotations

from pathlib import Path

import timm
import torch
from timm.layers import SelectAdaptivePool2d
from torch import nn

from hideseek.cam.backbones import backbone_error, drop_last_stride
from hideseek.cam.choices import POOLS
from hideseek.cam.maps import resize_cams
from hideseek.cam.methods import ClassChoice, compute_cams

__all__ = ["CAMNet", "POOLS"]


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
            drop_last_stride(self.backbone)
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

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        """Class logits (B, num_classes) from feature maps: pooling, then the linear classifier."""
        return self.classifier(self.pool(features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits (B, num_classes)."""
        return self.classify(self.features(x))

    # ------------------------------------------------------------------ CAMs

    def cams(
        self,
        x: torch.Tensor,
        classes: ClassChoice = None,
        topk: int = 1,
        size: tuple[int, int] | None = None,
        method: str = "cam",
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """CAMs for given classes (e.g. GT) or the top-k predicted ones.

        Returns ``(maps, classes, logits)``: maps (B, k, H, W) float32 upsampled (bicubic)
        to the input size (or ``size``) and min-max normalised per map; classes (B, k);
        logits (B, num_classes). ``method`` names a registered CAM method
        (:mod:`hideseek.cam.methods`; ``"cam"`` is vanilla CAM). Runs in whatever mode the
        model is in: call ``eval()`` first.
        """
        raw, classes, logits = compute_cams(self, x, classes, method=method, topk=topk)
        return resize_cams(raw, size or tuple(x.shape[-2:])), classes, logits
