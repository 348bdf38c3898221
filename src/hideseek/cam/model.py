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

from hideseek.cam.backbones import backbone_error, check_feature_stage, drop_last_stride
from hideseek.cam.choices import POOLS
from hideseek.cam.maps import resize_cams
from hideseek.cam.methods import ClassChoice, compute_cams

__all__ = ["CAMNet", "FeatureMap", "POOLS", "check_rollout_backbone"]


class FeatureMap(nn.Module):
    """The last feature map's named place: the identity, so a CAM method can hook it (the
    ``grad-cam`` package's target layer) without changing what it returns.

    With ``stop_gradient`` set (only while a gradient CAM method runs) its output is a new
    leaf that requires gradients, so backpropagation from the logits stops at the feature
    map: the gradients there are the same, and the backbone's are never computed."""

    def __init__(self) -> None:
        super().__init__()
        self.stop_gradient = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stop_gradient and torch.is_grad_enabled():
            return x.detach().requires_grad_(True)
        return x


def _create(name: str, kwargs: dict) -> nn.Module:
    """``timm.create_model``; a ViT-style model is made with ``dynamic_img_size=True`` (its position
    embedding resampled to the input's patch grid), so it takes any input size its patch size divides."""
    try:
        return timm.create_model(name, dynamic_img_size=True, **kwargs)
    except TypeError as error:
        if "dynamic_img_size" not in str(error):
            raise
    return timm.create_model(name, **kwargs)


def _feature_stage_model(name: str, stage: int, kwargs: dict) -> nn.Module:
    """The backbone cut after feature stage ``stage`` (timm ``features_only``); an index past its
    last stage is a ``ValueError`` naming the stages it has."""
    check_feature_stage(name, stage)
    try:
        return _create(name, dict(kwargs, features_only=True, out_indices=(stage,)))
    except RuntimeError as error:  # timm has no features_only for this model
        if "features_only" not in str(error) and "feature" not in str(error):
            raise
        raise ValueError(f"backbone {name!r} cannot be cut at a feature stage ({error}); use the whole backbone "
                         "(feature_stage None, --feature-stage -1)") from None


def _pre_logits_stages(name: str, kwargs: dict) -> int | None:
    """The number of feature stages of a backbone whose ``num_classes=0`` form keeps layers after its
    last feature map (``head_hidden_size`` differs from ``num_features``); ``None`` for the others.

    Probed on the meta device (no memory, no weights), so VGG's 100M-parameter pre-logits MLP
    is never built just to be thrown away."""
    probe_kwargs = {k: v for k, v in kwargs.items() if k not in ("pretrained", "pretrained_cfg_overlay")}
    try:
        with torch.device("meta"):
            probe = _create(name, dict(probe_kwargs, num_classes=0, global_pool=""))
    except Exception:  # noqa: BLE001  (the real build below reports what is wrong)
        return None
    hidden = getattr(probe, "head_hidden_size", None)
    info = getattr(probe, "feature_info", None)
    if hidden is None or hidden == probe.num_features or not info:
        return None
    return len(info)


def _rollout_blocks(backbone: nn.Module, name: str) -> tuple[nn.Module, list[nn.Module]]:
    """The ViT whose blocks make the features (the backbone, or the model a feature-stage cut
    wraps) and its timm ``Attention`` blocks; a ``ValueError`` when there is no such ViT with a
    class token."""
    from timm.layers import Attention

    for vit in (backbone, getattr(backbone, "model", None)):
        if vit is not None and getattr(vit, "patch_embed", None) is not None \
                and getattr(vit, "cls_token", None) is not None:
            blocks = [m for m in vit.modules() if isinstance(m, Attention)]
            if blocks:
                return vit, blocks
    raise ValueError(f"rollout needs a ViT backbone with a class token and timm Attention blocks; {name!r} has "
                     "none (use a CAM method of the feature map instead)")


def check_rollout_backbone(backbone: str) -> None:
    """Refuse (``ValueError``) attention rollout for a backbone without a class token and timm
    ``Attention`` blocks, before anything is trained; built on the meta device (no memory)."""
    with torch.device("meta"):
        probe = _create(backbone, dict(num_classes=0, global_pool=""))
    _rollout_blocks(probe, backbone)


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
            self.backbone = _feature_stage_model(backbone, feature_stage, kwargs)
            channels = self.backbone.feature_info.channels()[-1]
        else:
            stages = _pre_logits_stages(backbone, kwargs)
            if stages:
                # num_classes=0 keeps the layers between the last feature map and the classifier (VGG's
                # pre-logits MLP, MobileNetV3's conv_head), so the output is not the map of num_features
                # channels: cut after the last feature stage instead (the whole feature extractor)
                self.backbone = _feature_stage_model(backbone, stages - 1, kwargs)
                channels = self.backbone.feature_info.channels()[-1]
            else:
                self.backbone = _create(backbone, dict(kwargs, num_classes=0, global_pool=""))
                channels = self.backbone.num_features
        if large_feature_map:
            drop_last_stride(self.backbone, backbone)
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
        self.feature_map = FeatureMap()  # hook target of the last feature map (no parameters)
        self.pool = SelectAdaptivePool2d(pool_type=pool, flatten=True)
        self.classifier = nn.Linear(channels, num_classes)
        self.num_classes = num_classes
        self.pretrained_cfg = getattr(self.backbone, "pretrained_cfg", {})

    # ------------------------------------------------------------------ features

    def _token_map(self, tokens: torch.Tensor, input_size: tuple[int, int]) -> torch.Tensor:
        embed = getattr(self.backbone, "patch_embed", None)
        prefix = getattr(self.backbone, "num_prefix_tokens", None)
        if embed is None or prefix is None:
            raise ValueError(
                f"backbone {self.backbone_name!r} returns tokens {tuple(tokens.shape)} without a "
                "patch grid; CAMs need a spatial feature map (use a CNN or a ViT with patch_embed)"
            )
        if getattr(self.backbone, "dynamic_img_size", False):  # the grid follows the input
            h, w = (size // patch for size, patch in zip(input_size, embed.patch_size))
        else:
            h, w = embed.grid_size
        patches = tokens[:, prefix:]
        if patches.shape[1] != h * w:
            raise ValueError(
                f"backbone {self.backbone_name!r}: {patches.shape[1]} patch tokens do not form its "
                f"{h}x{w} grid (input size differs from the model's img_size?)"
            )
        return patches.transpose(1, 2).reshape(tokens.shape[0], -1, h, w)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Last feature maps (B, K, h, w) after optional feature hiding."""
        patch = getattr(getattr(self.backbone, "patch_embed", None), "patch_size", None)
        if patch is not None and (x.shape[-2] % patch[0] or x.shape[-1] % patch[1]):
            raise ValueError(f"backbone {self.backbone_name!r}: input {x.shape[-2]}x{x.shape[-1]} px is not a "
                             f"multiple of its {patch[0]}x{patch[1]} patches (choose a crop size it divides)")
        out = self.backbone(x)
        if isinstance(out, list | tuple):
            out = out[-1]
        if out.ndim == 3:
            out = self._token_map(out, tuple(x.shape[-2:]))
        elif out.ndim == 4 and getattr(self.backbone, "output_fmt", "NCHW") == "NHWC":
            out = out.permute(0, 3, 1, 2)
        if out.ndim != 4:
            raise ValueError(f"backbone {self.backbone_name!r} gave features of shape {tuple(out.shape)}, not a map")
        if self.feature_hide is not None:
            out = self.feature_hide(out)
        return self.feature_map(out)

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        """Class logits (B, num_classes) from feature maps: pooling, then the linear classifier."""
        return self.classifier(self.pool(features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits (B, num_classes)."""
        return self.classify(self.features(x))

    # ------------------------------------------------------------------ attention rollout

    def attention_rollout(self, x: torch.Tensor) -> torch.Tensor:
        """Attention rollout (Abnar & Zuidema, 2020) of the class token over the patch grid: (B, h, w).

        Every timm ``Attention`` block that runs is hooked; its attention is recomputed from
        its input (softmax of the scaled q.k of its ``qkv`` projection, after its q/k norms),
        averaged over heads, the identity added and each row renormalised to sum 1; the
        layers' matrices are multiplied from the first block to the last, and the class
        token's row over the patch tokens is laid out as the patch grid. Class-agnostic.
        A ``ValueError`` for a backbone without a class token and such attention blocks.
        """
        vit, blocks = _rollout_blocks(self.backbone, self.backbone_name)
        layers: list[torch.Tensor] = []

        def record(module: nn.Module, args: tuple, _output) -> None:
            tokens = args[0]
            b, n, _ = tokens.shape
            qkv = module.qkv(tokens).reshape(b, n, 3, module.num_heads, module.head_dim).permute(2, 0, 3, 1, 4)
            q, k = module.q_norm(qkv[0]), module.k_norm(qkv[1])
            attention = ((q * module.scale) @ k.transpose(-2, -1)).softmax(dim=-1).mean(dim=1)  # (B, N, N)
            attention = attention + torch.eye(n, dtype=attention.dtype, device=attention.device)
            layers.append(attention / attention.sum(dim=-1, keepdim=True))

        handles = [m.register_forward_hook(record) for m in blocks]
        try:
            with torch.no_grad():
                self.features(x)
        finally:
            for handle in handles:
                handle.remove()
        rollout = layers[0]
        for attention in layers[1:]:
            rollout = attention @ rollout
        patch = vit.patch_embed.patch_size
        h, w = x.shape[-2] // patch[0], x.shape[-1] // patch[1]
        prefix = vit.num_prefix_tokens
        return rollout[:, 0, prefix:].reshape(x.shape[0], h, w).float()

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
