"""The WSOL benchmark's VGG16 networks (CAM/HaS/CutMix, ADL, ACoL, SPG), parameter-compatible with it.

The trunk is VGG16's thirteen 3x3 convolutions in five blocks, all in one ``features``
sequence. What follows each block depends on the type:

* ``cam``/``adl``: 2x2 max pooling after blocks 1-4 (1-3 with ``large_feature_map``), then
  ``conv6`` (3x3, 1024 channels, ReLU), global average pooling and ``fc``. ``adl`` puts an
  ADL layer before block 4 and after the convolutions of blocks 4 and 5.
* ``acol``: 3x3 max pooling (padding 1) of stride 2 after blocks 1-4, of stride 1 after
  block 5 (with ``large_feature_map``: stride 2 after blocks 1-3 only); the features are
  smoothed by a 3x3 average pooling before the two ACoL classifiers.
* ``spg``: ``features`` holds blocks 1-3 (2x2 max pooling after each); blocks 4 and 5 are
  ``SPG_A_1`` (with a 256 -> 512 first conv) and ``SPG_A_2``; a 3x3 max pooling of stride 2
  follows ``SPG_A_1`` unless ``large_feature_map``; ``SPG_A_3`` (two more convs) and the 1x1
  ``SPG_A_4`` give the class maps; ``SPG_B_1a``/``SPG_B_2a`` tap ``SPG_A_1``/``SPG_A_2``
  into the shared guidance branch and ``SPG_C`` taps ``SPG_A_3``.

Feature maps of a 224 input: 14 x 14, or 28 x 28 with ``large_feature_map``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from hideseek.localization.benchmark.layers import (
    ADL,
    AcolHead,
    BenchmarkNet,
    LinearCAMHead,
    SpgHead,
    acol_classifier,
    conv_relu,
    init_benchmark_weights,
    one_map_branch,
)

__all__ = ["VGG16ACoL", "VGG16CAM", "VGG16SPG", "vgg16_trunk"]

# (width, number of 3x3 convs) of VGG16's five blocks
_BLOCKS = ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))


def _pool_after(method_type: str, large_feature_map: bool, block: int) -> nn.Module | None:
    """The pooling after ``block`` (0-based): only blocks up to ``last`` halve the resolution."""
    last = 2 if large_feature_map else 3
    if method_type == "acol":
        return nn.MaxPool2d(kernel_size=3, stride=2 if block <= last else 1, padding=1)
    return nn.MaxPool2d(kernel_size=2, stride=2) if block <= last else None


def vgg16_trunk(
    method_type: str, large_feature_map: bool, adl_drop_rate: float = 0.75, adl_threshold: float = 0.9
) -> nn.Sequential:
    """The ``features`` sequence of ``method_type`` (``spg``: blocks 1-3 only)."""
    adl = method_type == "adl"
    layers: list[nn.Module] = []
    channels = 3
    for block, (width, convs) in enumerate(_BLOCKS[: 3 if method_type == "spg" else 5]):
        if adl and block == 3:
            layers.append(ADL(adl_drop_rate, adl_threshold))
        for _ in range(convs):
            layers += conv_relu(channels, width)
            channels = width
        if adl and block >= 3:
            layers.append(ADL(adl_drop_rate, adl_threshold))
        pool = _pool_after(method_type, large_feature_map, block)
        if pool is not None:
            layers.append(pool)
    return nn.Sequential(*layers)


class VGG16CAM(LinearCAMHead, BenchmarkNet):
    """VGG16 for CAM (HaS, CutMix) or, with ``adl=True``, ADL: ``features`` -> ``conv6`` + ReLU -> GAP -> ``fc``."""

    architecture = "vgg16"

    def __init__(
        self,
        num_classes: int = 1000,
        large_feature_map: bool = False,
        adl: bool = False,
        adl_drop_rate: float = 0.75,
        adl_threshold: float = 0.9,
    ):
        self.method_type = "adl" if adl else "cam"
        super().__init__(num_classes, large_feature_map)
        self.features = vgg16_trunk(self.method_type, large_feature_map, adl_drop_rate, adl_threshold)
        self.conv6 = nn.Conv2d(512, 1024, kernel_size=3, padding=1)
        self.fc = nn.Linear(1024, num_classes)
        init_benchmark_weights(self, "he")

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.conv6(self.features(x)))


class VGG16ACoL(AcolHead, BenchmarkNet):
    """VGG16 for ACoL: ``features`` -> 3x3 average smoothing -> ``classifier_A`` / erasing -> ``classifier_B``."""

    architecture = "vgg16"
    method_type = "acol"

    def __init__(self, num_classes: int = 1000, large_feature_map: bool = False, acol_threshold: float = 0.7):
        super().__init__(num_classes, large_feature_map)
        self.acol_threshold = float(acol_threshold)
        self.features = vgg16_trunk("acol", large_feature_map)
        self.classifier_A = acol_classifier(512, num_classes)
        self.classifier_B = acol_classifier(512, num_classes)
        init_benchmark_weights(self, "xavier")

    def acol_feature(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(self.features(x), kernel_size=3, stride=1, padding=1)


class VGG16SPG(SpgHead, BenchmarkNet):
    """VGG16 for SPG (see the module docstring for where the branches tap the trunk)."""

    architecture = "vgg16"
    method_type = "spg"

    def __init__(self, num_classes: int = 1000, large_feature_map: bool = False):
        super().__init__(num_classes, large_feature_map)
        self.features = vgg16_trunk("spg", large_feature_map)
        self.SPG_A_1 = nn.Sequential(*conv_relu(256, 512), *conv_relu(512, 512), *conv_relu(512, 512))
        self.SPG_A_2 = nn.Sequential(*conv_relu(512, 512), *conv_relu(512, 512), *conv_relu(512, 512))
        self.SPG_A_3 = nn.Sequential(*conv_relu(512, 512), *conv_relu(512, 512))
        self.SPG_A_4 = nn.Conv2d(512, num_classes, kernel_size=1)
        self.SPG_B_1a = nn.Sequential(*conv_relu(512, 512))
        self.SPG_B_2a = nn.Sequential(*conv_relu(512, 512))
        self.SPG_B_shared = one_map_branch(512, 512)
        self.SPG_C = one_map_branch(512, 512)
        init_benchmark_weights(self, "xavier")

    def spg_streams(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        a1 = self.SPG_A_1(self.features(x))
        if not self.large_feature_map:
            a1 = F.max_pool2d(a1, kernel_size=3, stride=2, padding=1)
        a2 = self.SPG_A_2(a1)
        a3 = self.SPG_A_3(a2)
        b1 = self.SPG_B_shared(self.SPG_B_1a(a1))
        b2 = self.SPG_B_shared(self.SPG_B_2a(a2))
        return b1, b2, self.SPG_C(a3), self.SPG_A_4(a3)
