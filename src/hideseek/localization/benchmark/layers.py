"""What the benchmark's networks share: the ADL layer, the four output heads, score maps.

The public WSOL benchmark (Choe et al., "Evaluating Weakly Supervised Object Localization
Methods Right", CVPR 2020; github.com/clovaai/wsolevaluation) builds one network per
architecture *type*: ``cam`` (also used by HaS and CutMix), ``acol``, ``spg`` and ``adl``.
The types differ only in the head on top of the backbone and in where ADL layers sit, so
the heads live here as mixins and the backbones (:mod:`.vgg`, :mod:`.resnet`,
:mod:`.inception`) only say how to run their trunk.

Every network returns the benchmark's output dict from ``forward(x, labels=None)``, its
raw class activation maps (``return_cam=True`` there) from :meth:`BenchmarkNet.raw_cams`,
and the score maps of its evaluation from :meth:`BenchmarkNet.cams`: the raw map resized
to the input with OpenCV's bicubic rule, then min-max normalised. OpenCV's ``INTER_CUBIC``
(coefficient -0.75, half-pixel centres, edge replication) is the rule of torch's
``bicubic`` with ``align_corners=False``, so no OpenCV is needed (the tests compare both).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from hideseek.cam.maps import normalize_cams
from hideseek.cam.methods import ClassChoice, resolve_classes

__all__ = [
    "ADL",
    "SPG_ATTENTION_SIZE",
    "AcolHead",
    "BenchmarkNet",
    "ClassMapHead",
    "LinearCAMHead",
    "SpgHead",
    "init_benchmark_weights",
    "acol_classifier",
    "conv_relu",
    "minmax_channels",
    "one_map_branch",
    "score_maps",
]

# SPG's attention maps (its self-produced guidance targets) are always made at this size,
# whatever the input size: the benchmark trains on 224 x 224 crops.
SPG_ATTENTION_SIZE = (224, 224)


def minmax_channels(maps: torch.Tensor) -> torch.Tensor:
    """(B, C, h, w) -> each map shifted to 0 and scaled to 1; constant maps become NaN, as in the benchmark.

    ACoL's erasing and SPG's guidance depend on that NaN (a NaN attention erases nothing),
    so this is not :func:`hideseek.cam.maps.normalize_cams`, which turns them into zeros.
    """
    flat = maps.reshape(*maps.shape[:2], -1)
    low = flat.amin(dim=-1, keepdim=True)
    high = flat.amax(dim=-1, keepdim=True)
    return ((flat - low) / (high - low)).reshape(maps.shape)


def _pick(maps: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """(B, C, h, w), (B,) -> (B, h, w): each sample's map of its label."""
    return maps[torch.arange(maps.shape[0], device=maps.device), labels]


def _pool(maps: torch.Tensor) -> torch.Tensor:
    return F.adaptive_avg_pool2d(maps, 1).flatten(1)


def score_maps(raw: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Raw maps (B, h, w) -> float32 score maps (B, 1, H, W), as the benchmark's evaluation makes them.

    Bicubic resize to ``size`` with OpenCV's ``INTER_CUBIC`` rule (torch ``bicubic``,
    ``align_corners=False``, a = -0.75), in float64 as the benchmark does (it converts maps
    to ``np.float`` first), then min-max normalisation per map (a constant map or one
    holding NaN becomes zeros).
    """
    dtype = torch.float64 if raw.device.type in ("cpu", "cuda") else torch.float32
    maps = F.interpolate(raw.detach().to(dtype)[:, None], size=tuple(size), mode="bicubic", align_corners=False)
    return normalize_cams(maps).float()


def init_benchmark_weights(model: nn.Module, conv_init: str) -> None:
    """The benchmark's initialisation of a freshly built network (before any pretrained weights).

    Convolutions: ``"he"`` (Kaiming normal, fan-out, ReLU gain) or ``"xavier"`` (Xavier
    uniform), zero bias; batch norms: weight 1, bias 0; linear layers: N(0, 0.01), zero bias.
    """
    if conv_init not in ("he", "xavier"):
        raise ValueError(f"conv_init must be 'he' or 'xavier', got {conv_init!r}")
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            if conv_init == "he":
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            else:
                nn.init.xavier_uniform_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, 0.0, 0.01)
            nn.init.zeros_(module.bias)


class ADL(nn.Module):
    """Attention-based Dropout Layer (Choe & Shim, CVPR 2019); the identity in eval mode.

    In training, the self-attention map is the channel mean of the input. One draw per
    call (``torch.rand(())`` on the CPU generator, as the benchmark draws it) decides for
    the whole batch: with probability ``drop_rate`` the input is multiplied by the drop
    mask (0 where the attention reaches ``threshold`` times the sample's maximum, else 1),
    otherwise by the importance map (the sigmoid of the attention).
    """

    def __init__(self, drop_rate: float = 0.75, threshold: float = 0.9):
        super().__init__()
        if not 0 <= drop_rate <= 1:
            raise ValueError(f"ADL drop rate must be in [0, 1], got {drop_rate}")
        if not 0 <= threshold <= 1:
            raise ValueError(f"ADL threshold must be in [0, 1], got {threshold}")
        self.drop_rate = float(drop_rate)
        self.threshold = float(threshold)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return x
        attention = x.mean(dim=1, keepdim=True)
        draw = torch.rand((), dtype=torch.float32)
        if bool(torch.floor(draw + self.drop_rate) > 0):
            peak = attention.flatten(1).amax(dim=1).view(-1, 1, 1, 1)
            return x * (attention < peak * self.threshold).to(x.dtype)
        return x * torch.sigmoid(attention)

    def extra_repr(self) -> str:
        return f"drop_rate={self.drop_rate}, threshold={self.threshold}"


class BenchmarkNet(nn.Module):
    """Base of the benchmark's networks: the output dict, raw CAMs and score maps.

    ``architecture`` (``vgg16``/``resnet50``/``inception_v3``), ``method_type``
    (``cam``/``acol``/``spg``/``adl``), ``num_classes`` and ``large_feature_map`` describe
    the network; ``method`` and ``method_params`` (set by
    :func:`~hideseek.localization.benchmark.factory.benchmark_model`) the WSOL method
    trained with it.
    """

    architecture: str = ""
    method_type: str = ""
    returns_dict = True  # forward(x, labels) -> {"logits", ...}: what the WSOL methods' training step expects

    def __init__(self, num_classes: int, large_feature_map: bool):
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.num_classes = int(num_classes)
        self.large_feature_map = bool(large_feature_map)
        self.method = self.method_type
        self.method_params: dict[str, float | int] = {}

    # supplied by the head mixin of each network (LinearCAMHead, ClassMapHead, AcolHead, SpgHead):
    # forward(x, labels=None) -> output dict, and the raw CAMs of labels (None: the top-1 prediction)
    _raw_cams: Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]

    def raw_cams(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """The benchmark's ``return_cam=True`` maps (B, h, w) of ``labels`` (``None``: the top-1 prediction).

        Runs in whatever mode the network is in (the benchmark evaluates in eval mode).
        """
        if labels is not None:
            labels = torch.as_tensor(labels, device=x.device, dtype=torch.long).reshape(-1)
        with torch.no_grad():
            return self._raw_cams(x, labels).detach()

    def cams(self, x: torch.Tensor, classes: ClassChoice = None, topk: int = 1, size: tuple[int, int] | None = None,
             method: str = "cam") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Score maps as the benchmark's ``inference.py`` makes them, with :class:`~hideseek.cam.CAMNet`'s contract.

        Returns ``(maps, classes, logits)``: maps (B, k, H, W) float32 at the input size (or
        ``size``), each the benchmark's score map of one class; classes (B, k) as given
        (``(B,)`` or ``(B, k)``, or a function of the logits) or the top-``topk`` predicted;
        logits (B, num_classes). The CAM is the method's own (``method="cam"``: the maps its
        ``return_cam`` path gives); other CAM methods are not defined on these networks.
        """
        if method != "cam":
            raise ValueError(f"{type(self).__name__}: CAM method {method!r} is not defined on the benchmark's "
                             "networks; their CAM is the WSOL method's own ('cam')")
        with torch.no_grad():
            logits = self(x)["logits"]
        chosen = resolve_classes(classes, logits, topk)
        size = tuple(size or x.shape[-2:])
        maps = [score_maps(self.raw_cams(x, chosen[:, j]), size)[:, 0] for j in range(chosen.shape[1])]
        return torch.stack(maps, dim=1), chosen, logits.detach()


class LinearCAMHead:
    """Global average pooling and a linear classifier ``fc`` on ``feature_map(x)`` (CAM and ADL on VGG/ResNet).

    The raw CAM of class c is the channel *mean* of ``fc.weight[c, k] * F_k`` (the bias
    and the 1/K are constant per map and vanish in the normalised score map).
    """

    fc: nn.Linear

    feature_map: Callable[[torch.Tensor], torch.Tensor]  # the network's last feature maps (B, K, h, w)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        return {"logits": self.fc(_pool(self.feature_map(x)))}

    def _raw_cams(self, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        features = self.feature_map(x)
        if labels is None:
            labels = self.fc(_pool(features)).argmax(dim=1)
        weights = self.fc.weight[labels]
        return (weights[:, :, None, None] * features).mean(dim=1)


class ClassMapHead:
    """``class_map(x)`` ends in a 1x1 conv to one map per class; logits are their means (CAM and ADL on Inception)."""

    class_map: Callable[[torch.Tensor], torch.Tensor]  # one map per class (B, C, h, w)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        return {"logits": _pool(self.class_map(x))}

    def _raw_cams(self, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        maps = self.class_map(x)
        if labels is None:
            labels = _pool(maps).argmax(dim=1)
        return _pick(maps, labels)


class AcolHead:
    """ACoL (Zhang et al., CVPR 2018): two classifiers, the second on features erased by the first.

    ``classifier_A`` maps ``acol_feature(x)`` to class maps (logits: their means); the map
    of the label (the prediction when no label is given) is min-max normalised and every
    position where it reaches ``acol_threshold`` is zeroed in the features fed to
    ``classifier_B``. The raw CAM is the larger of the two normalised class maps.
    """

    classifier_A: nn.Module
    classifier_B: nn.Module
    acol_threshold: float

    acol_feature: Callable[[torch.Tensor], torch.Tensor]  # the trunk's features both classifiers read

    def _acol(self, x: torch.Tensor, labels: torch.Tensor | None) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        feature = self.acol_feature(x)
        map_a = self.classifier_A(feature)
        logits = _pool(map_a)
        if labels is None:
            labels = logits.argmax(dim=1)
        attention = minmax_channels(_pick(map_a.detach(), labels)[:, None])
        keep = ~(attention >= self.acol_threshold)  # a NaN attention (constant map) erases nothing
        map_b = self.classifier_B(feature * keep.to(feature.dtype))
        out = {"logits": logits, "logit_b": _pool(map_b), "feat_map_a": map_a, "feat_map_b": map_b}
        return out, labels

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        return self._acol(x, labels)[0]

    def _raw_cams(self, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        out, labels = self._acol(x, labels)
        both = torch.maximum(minmax_channels(out["feat_map_a"]), minmax_channels(out["feat_map_b"]))
        return _pick(both, labels)


class SpgHead:
    """SPG (Zhang et al., ECCV 2018): a class-map classifier plus three one-channel guidance branches.

    ``spg_streams(x)`` returns ``(logits_b1, logits_b2, logits_c, class_maps)``. The
    output dict adds ``attention`` (the label's class map, bilinearly resized to
    :data:`SPG_ATTENTION_SIZE` and min-max normalised; the prediction when no label is
    given) and ``fused_attention`` (the mean of the sigmoids of the resized, detached
    ``logits_b1`` and ``logits_b2``), the targets of SPG's losses. The raw CAM is the
    label's class map.
    """

    spg_streams: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]]

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        logits_b1, logits_b2, logits_c, maps = self.spg_streams(x)
        logits = _pool(maps)
        if labels is None:
            labels = logits.argmax(dim=1)

        def resized(t: torch.Tensor) -> torch.Tensor:
            return F.interpolate(t.detach(), size=SPG_ATTENTION_SIZE, mode="bilinear", align_corners=False)

        attention = minmax_channels(resized(_pick(maps, labels)[:, None]))
        fused = (torch.sigmoid(resized(logits_b1)) + torch.sigmoid(resized(logits_b2))) / 2
        return {
            "attention": attention,
            "fused_attention": fused,
            "logits": logits,
            "logits_b1": logits_b1,
            "logits_b2": logits_b2,
            "logits_c": logits_c,
        }

    def _raw_cams(self, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        maps = self.spg_streams(x)[3]
        if labels is None:
            labels = _pool(maps).argmax(dim=1)
        return _pick(maps, labels)


def conv_relu(in_channels: int, out_channels: int, kernel_size: int = 3) -> list[nn.Module]:
    """A padded ``kernel_size`` conv (with bias) and its ReLU, as a list for ``nn.Sequential``."""
    return [nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2), nn.ReLU(inplace=True)]


def acol_classifier(in_channels: int, num_classes: int) -> nn.Sequential:
    """One ACoL classifier: two 3x3 convs to 1024 channels with ReLUs, then a 1x1 conv to the classes."""
    return nn.Sequential(*conv_relu(in_channels, 1024), *conv_relu(1024, 1024), nn.Conv2d(1024, num_classes, 1))


def one_map_branch(in_channels: int, mid_channels: int) -> nn.Sequential:
    """SPG's guidance branch shape (``SPG_B_shared``, ``SPG_C``): a 3x3 conv, ReLU, a 1x1 conv to one map."""
    return nn.Sequential(*conv_relu(in_channels, mid_channels), nn.Conv2d(mid_channels, 1, 1))
