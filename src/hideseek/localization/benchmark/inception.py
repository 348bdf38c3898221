"""The WSOL benchmark's Inception-v3 networks (CAM/HaS/CutMix, ADL, ACoL, SPG), parameter-compatible with it.

The trunk is torchvision's Inception-v3 up to ``Mixed_6e`` (its ``BasicConv2d``,
``InceptionA`` and ``InceptionC`` blocks are used as they are), changed so that it keeps
more resolution: ``Conv2d_1a_3x3`` and ``Conv2d_2b_3x3`` are padded, both stem max
poolings are 3x3/2 with padding 1 and ceil mode, and ``Mixed_6a`` (:class:`ReductionFree6a`)
keeps the resolution (stride 1, padding 1). Instead, a 3x3/2 ceil-mode max pooling follows
``Mixed_5d`` unless ``large_feature_map``. No input transform is applied (torchvision's
``transform_input`` is not used). Feature maps of a 224 input: 14 x 14, or 28 x 28.
``Mixed_7*`` and the auxiliary classifier are not part of the networks.

* ``cam``: dropout 0.5, ``SPG_A3_1b`` (3x3, 1024, ReLU), dropout, ``SPG_A3_2b`` (3x3, 1024,
  ReLU), dropout, then the 1x1 ``SPG_A4`` to class maps whose means are the logits.
* ``adl``: the same head without dropout; ADL layers after ``Mixed_5d`` (``ADL_5d``, before
  the optional pooling), ``Mixed_6e`` (``ADL_6e``) and ``SPG_A3_2b`` (``ADL_A3_2b``).
* ``acol``: the two ACoL classifiers on ``Mixed_6e``.
* ``spg``: the ``cam`` head plus ``SPG_B_1a`` on the (pooled) ``Mixed_5d`` output,
  ``SPG_B_2a`` on the ``Mixed_6d`` output (both into ``SPG_B_shared``) and ``SPG_C`` on the
  last dropout's output.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.inception import BasicConv2d, InceptionA, InceptionC

from hideseek.localization.benchmark.layers import (
    ADL,
    AcolHead,
    BenchmarkNet,
    ClassMapHead,
    SpgHead,
    acol_classifier,
    conv_relu,
    init_benchmark_weights,
    one_map_branch,
)

__all__ = ["InceptionV3ACoL", "InceptionV3CAM", "InceptionV3SPG", "ReductionFree6a"]


class ReductionFree6a(nn.Module):
    """torchvision's ``InceptionB`` (``Mixed_6a``) with stride 1 and padding 1: same weights, no down-sampling."""

    def __init__(self, in_channels: int):
        super().__init__()
        self.branch3x3 = BasicConv2d(in_channels, 384, kernel_size=3, stride=1, padding=1)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, stride=1, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        double = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        pooled = F.max_pool2d(x, kernel_size=3, stride=1, padding=1)
        return torch.cat([self.branch3x3(x), double, pooled], dim=1)


class _InceptionV3Trunk(BenchmarkNet):
    """Stem, ``Mixed_5*`` and ``Mixed_6*`` of the benchmark's Inception-v3; ``adl`` adds ``ADL_5d`` and ``ADL_6e``."""

    architecture = "inception_v3"

    def __init__(
        self,
        num_classes: int,
        large_feature_map: bool,
        adl: bool = False,
        adl_drop_rate: float = 0.75,
        adl_threshold: float = 0.9,
    ):
        super().__init__(num_classes, large_feature_map)
        if adl:
            self.ADL_5d = ADL(adl_drop_rate, adl_threshold)
            self.ADL_6e = ADL(adl_drop_rate, adl_threshold)
            self.ADL_A3_2b = ADL(adl_drop_rate, adl_threshold)
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, kernel_size=3, stride=2, padding=1)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, kernel_size=3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, kernel_size=3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, kernel_size=1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, kernel_size=3)
        self.Mixed_5b = InceptionA(192, pool_features=32)
        self.Mixed_5c = InceptionA(256, pool_features=64)
        self.Mixed_5d = InceptionA(288, pool_features=64)
        self.Mixed_6a = ReductionFree6a(288)
        self.Mixed_6b = InceptionC(768, channels_7x7=128)
        self.Mixed_6c = InceptionC(768, channels_7x7=160)
        self.Mixed_6d = InceptionC(768, channels_7x7=160)
        self.Mixed_6e = InceptionC(768, channels_7x7=192)

    def _adl(self, name: str, x: torch.Tensor) -> torch.Tensor:
        layer = getattr(self, name, None)
        return x if layer is None else layer(x)

    def lower(self, x: torch.Tensor) -> torch.Tensor:
        """Stem and ``Mixed_5b``-``Mixed_5d`` (then ``ADL_5d``), pooled unless ``large_feature_map``: 288 channels."""
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, kernel_size=3, stride=2, padding=1, ceil_mode=True)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, kernel_size=3, stride=2, padding=1, ceil_mode=True)
        x = self._adl("ADL_5d", self.Mixed_5d(self.Mixed_5c(self.Mixed_5b(x))))
        if not self.large_feature_map:
            x = F.max_pool2d(x, kernel_size=3, stride=2, ceil_mode=True)
        return x

    def middle(self, x: torch.Tensor) -> torch.Tensor:
        """``Mixed_6a``-``Mixed_6d`` on :meth:`lower`'s output: 768 channels."""
        return self.Mixed_6d(self.Mixed_6c(self.Mixed_6b(self.Mixed_6a(x))))

    def _head_convs(self) -> None:
        self.SPG_A3_1b = nn.Sequential(*conv_relu(768, 1024))
        self.SPG_A3_2b = nn.Sequential(*conv_relu(1024, 1024))
        self.SPG_A4 = nn.Conv2d(1024, self.num_classes, kernel_size=1)

    def _dropped_head(self, top: torch.Tensor) -> torch.Tensor:
        """Dropout 0.5 around ``SPG_A3_1b`` and ``SPG_A3_2b``: the input of ``SPG_A4`` (and ``SPG_C``)."""
        x = self.SPG_A3_1b(F.dropout(top, 0.5, self.training))
        x = self.SPG_A3_2b(F.dropout(x, 0.5, self.training))
        return F.dropout(x, 0.5, self.training)


class InceptionV3CAM(ClassMapHead, _InceptionV3Trunk):
    """Inception-v3 for CAM (HaS, CutMix) or, with ``adl=True``, ADL: the class maps of ``SPG_A4``."""

    def __init__(
        self,
        num_classes: int = 1000,
        large_feature_map: bool = False,
        adl: bool = False,
        adl_drop_rate: float = 0.75,
        adl_threshold: float = 0.9,
    ):
        self.method_type = "adl" if adl else "cam"
        super().__init__(num_classes, large_feature_map, adl, adl_drop_rate, adl_threshold)
        self._head_convs()
        init_benchmark_weights(self, "xavier")

    def class_map(self, x: torch.Tensor) -> torch.Tensor:
        top = self.Mixed_6e(self.middle(self.lower(x)))
        if self.method_type == "cam":
            return self.SPG_A4(self._dropped_head(top))
        x = self.SPG_A3_2b(self.SPG_A3_1b(self.ADL_6e(top)))
        return self.SPG_A4(self.ADL_A3_2b(x))


class InceptionV3ACoL(AcolHead, _InceptionV3Trunk):
    """Inception-v3 for ACoL: ``Mixed_6e`` -> ``classifier_A`` / erasing -> ``classifier_B``."""

    method_type = "acol"

    def __init__(self, num_classes: int = 1000, large_feature_map: bool = False, acol_threshold: float = 0.7):
        super().__init__(num_classes, large_feature_map)
        self.acol_threshold = float(acol_threshold)
        self.classifier_A = acol_classifier(768, num_classes)
        self.classifier_B = acol_classifier(768, num_classes)
        init_benchmark_weights(self, "xavier")

    def acol_feature(self, x: torch.Tensor) -> torch.Tensor:
        return self.Mixed_6e(self.middle(self.lower(x)))


class InceptionV3SPG(SpgHead, _InceptionV3Trunk):
    """Inception-v3 for SPG (see the module docstring for where the branches tap the trunk)."""

    method_type = "spg"

    def __init__(self, num_classes: int = 1000, large_feature_map: bool = False):
        super().__init__(num_classes, large_feature_map)
        self._head_convs()
        self.SPG_B_1a = nn.Sequential(*conv_relu(288, 512))
        self.SPG_B_2a = nn.Sequential(*conv_relu(768, 512))
        self.SPG_B_shared = one_map_branch(512, 512)
        self.SPG_C = one_map_branch(1024, 512)
        init_benchmark_weights(self, "xavier")

    def spg_streams(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        low = self.lower(x)
        mid = self.middle(low)
        b1 = self.SPG_B_shared(self.SPG_B_1a(low))
        b2 = self.SPG_B_shared(self.SPG_B_2a(mid))
        last = self._dropped_head(self.Mixed_6e(mid))
        return b1, b2, self.SPG_C(last), self.SPG_A4(last)
