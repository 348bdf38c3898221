"""The WSOL benchmark's ResNet50 networks (CAM/HaS/CutMix, ADL, ACoL, SPG), parameter-compatible with it.

The trunk is torchvision's ResNet50 (bottlenecks with the stride on the 3x3 conv, so
torchvision's :class:`~torchvision.models.resnet.Bottleneck` is used as is), with two
changes: ``layer4`` never down-samples, and with ``large_feature_map`` neither does
``layer3``; feature maps of a 224 input are 14 x 14, or 28 x 28.

* ``cam``/``adl``: GAP and ``fc`` on ``layer4``. ``adl`` inserts ADL layers into the
  stage sequences at :data:`ADL_AFTER_BLOCKS` (after block 0 of ``layer3``, after blocks 0
  and 2 of ``layer4``), which shifts the indices of the later blocks.
* ``acol``: the two ACoL classifiers on ``layer4``.
* ``spg``: ``layer3`` is split into ``SPG_A1`` (its first block) and ``SPG_A2`` (the other
  five); ``SPG_B_1a``/``SPG_B_2a`` tap them into the shared guidance branch, the 1x1
  ``SPG_A4`` gives the class maps from ``layer4`` and ``SPG_C`` taps ``layer4``.
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models.resnet import Bottleneck

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

__all__ = ["ADL_AFTER_BLOCKS", "ResNet50ACoL", "ResNet50CAM", "ResNet50SPG"]

# stage (1-4) -> blocks of that stage followed by an ADL layer in the ``adl`` network
ADL_AFTER_BLOCKS: dict[int, tuple[int, ...]] = {1: (), 2: (), 3: (0,), 4: (0, 2)}
_STAGES = ((64, 3), (128, 4), (256, 6), (512, 3))  # (planes, blocks) of ResNet50


class _ResNet50Trunk(BenchmarkNet):
    """Stem and stage builders of the benchmark's ResNet50; subclasses lay out the stages."""

    architecture = "resnet50"

    def __init__(self, num_classes: int, large_feature_map: bool):
        super().__init__(num_classes, large_feature_map)
        self._inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)

    def _stage_stride(self, stage: int) -> int:
        if stage == 1 or stage == 4:
            return 1
        return 1 if stage == 3 and self.large_feature_map else 2

    def _blocks(self, stage: int) -> list[Bottleneck]:
        """The bottlenecks of ``stage`` (1-4); the first one gets a projection shortcut when needed."""
        planes, count = _STAGES[stage - 1]
        stride = self._stage_stride(stage)
        out = planes * Bottleneck.expansion
        shortcut = None
        if stride != 1 or self._inplanes != out:
            shortcut = nn.Sequential(
                nn.Conv2d(self._inplanes, out, kernel_size=1, stride=stride, bias=False), nn.BatchNorm2d(out)
            )
        blocks = [Bottleneck(self._inplanes, planes, stride, shortcut)]
        self._inplanes = out
        blocks += [Bottleneck(out, planes) for _ in range(count - 1)]
        return blocks

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        return self.maxpool(self.relu(self.bn1(self.conv1(x))))


class ResNet50CAM(LinearCAMHead, _ResNet50Trunk):
    """ResNet50 for CAM (HaS, CutMix) or, with ``adl=True``, ADL: ``layer1``-``layer4`` -> GAP -> ``fc``."""

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
        for stage in range(1, 5):
            layers: list[nn.Module] = []
            for index, block in enumerate(self._blocks(stage)):
                layers.append(block)
                if adl and index in ADL_AFTER_BLOCKS[stage]:
                    layers.append(ADL(adl_drop_rate, adl_threshold))
            setattr(self, f"layer{stage}", nn.Sequential(*layers))
        self.fc = nn.Linear(512 * Bottleneck.expansion, num_classes)
        init_benchmark_weights(self, "xavier")

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


class ResNet50ACoL(AcolHead, _ResNet50Trunk):
    """ResNet50 for ACoL: ``layer4`` -> ``classifier_A`` / erasing -> ``classifier_B``."""

    method_type = "acol"

    def __init__(self, num_classes: int = 1000, large_feature_map: bool = False, acol_threshold: float = 0.7):
        super().__init__(num_classes, large_feature_map)
        self.acol_threshold = float(acol_threshold)
        for stage in range(1, 5):
            setattr(self, f"layer{stage}", nn.Sequential(*self._blocks(stage)))
        self.classifier_A = acol_classifier(512 * Bottleneck.expansion, num_classes)
        self.classifier_B = acol_classifier(512 * Bottleneck.expansion, num_classes)
        init_benchmark_weights(self, "he")

    def acol_feature(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


class ResNet50SPG(SpgHead, _ResNet50Trunk):
    """ResNet50 for SPG (see the module docstring for the split ``layer3`` and the branches)."""

    method_type = "spg"

    def __init__(self, num_classes: int = 1000, large_feature_map: bool = False):
        super().__init__(num_classes, large_feature_map)
        self.layer1 = nn.Sequential(*self._blocks(1))
        self.layer2 = nn.Sequential(*self._blocks(2))
        stage3 = self._blocks(3)
        self.SPG_A1 = nn.Sequential(stage3[0])
        self.SPG_A2 = nn.Sequential(*stage3[1:])
        self.layer4 = nn.Sequential(*self._blocks(4))
        self.SPG_A4 = nn.Conv2d(512 * Bottleneck.expansion, num_classes, kernel_size=1)
        self.SPG_B_1a = nn.Sequential(*conv_relu(1024, 1024))
        self.SPG_B_2a = nn.Sequential(*conv_relu(1024, 1024))
        self.SPG_B_shared = one_map_branch(1024, 1024)
        self.SPG_C = one_map_branch(2048, 512)
        init_benchmark_weights(self, "xavier")

    def spg_streams(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        a1 = self.SPG_A1(self.layer2(self.layer1(self.stem(x))))
        a2 = self.SPG_A2(a1)
        top = self.layer4(a2)
        b1 = self.SPG_B_shared(self.SPG_B_1a(a1))
        b2 = self.SPG_B_shared(self.SPG_B_2a(a2))
        return b1, b2, self.SPG_C(top), self.SPG_A4(top)
