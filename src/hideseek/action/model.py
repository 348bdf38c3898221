"""Temporal CAM model: snippet features -> per-class temporal activations -> video scores.

:class:`TemporalCAM` runs a few temporal convolutions (kernel 1 by default, i.e. the same
MLP on every snippet; a small odd kernel mixes neighbours) over ``(B, T, D)`` snippet
features and a final 1-D convolution to ``C`` classes: the temporal class activation
sequence ("temporal CAM", ``(B, C, T)`` logits). A video-level score per class comes from
pooling it over time: ``mean``, ``max`` or ``topk`` (mean of the ``k = ceil(T / r)``
largest activations, with ``T`` the video's own number of snippets). The loss is
multi-label: binary cross-entropy of the pooled logits against the multi-hot video labels.

Videos in a batch differ in length, so every step takes the ``(B, T)`` mask of real
snippets (``FeatureDataset.collate``): padded snippets are zeroed before and after each
convolution (a kernel wider than 1 then sees zeros past the end, as at ``t = 0``), never
enter the pooled score, and are excluded from the per-video normalisation of
:func:`normalize_temporal_cams`. A video gives the same output alone or padded in a batch.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from hideseek.action.choices import POOLS

__all__ = ["POOLS", "TemporalCAM", "masked_pool", "normalize_temporal_cams", "video_loss"]


def _full_mask(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """``(B, T)`` bool mask; all True when ``mask`` is None."""
    batch, steps = x.shape[0], x.shape[-1]
    if mask is None:
        return torch.ones(batch, steps, dtype=torch.bool, device=x.device)
    if mask.shape != (batch, steps):
        raise ValueError(f"mask must be (B, T) = {(batch, steps)}, got {tuple(mask.shape)}")
    mask = mask.to(device=x.device, dtype=torch.bool)
    if not bool(mask.any(dim=1).all()):
        raise ValueError("every video needs at least one real snippet (a mask row is all False)")
    return mask


def masked_pool(cas: torch.Tensor, mask: torch.Tensor | None = None, pool: str = "topk",
                topk_ratio: float = 8.0) -> torch.Tensor:
    """Video-level scores ``(B, C)`` from temporal activations ``(B, C, T)``.

    ``mean`` and ``max`` run over the real snippets only; ``topk`` averages the
    ``k = ceil(T_b / topk_ratio)`` largest real activations of video ``b`` (at least one).
    """
    if pool not in POOLS:
        raise ValueError(f"unknown pool {pool!r}; valid choices: {', '.join(POOLS)}")
    mask = _full_mask(cas, mask)
    m = mask[:, None, :]
    if pool == "mean":
        weights = m.to(cas.dtype)
        return (cas * weights).sum(-1) / weights.sum(-1)
    filled = cas.masked_fill(~m, float("-inf"))
    if pool == "max":
        return filled.amax(-1)
    if not topk_ratio >= 1:
        raise ValueError(f"topk_ratio must be >= 1, got {topk_ratio}")
    lengths = mask.sum(1)  # (B,)
    k = torch.clamp(torch.ceil(lengths.to(torch.float64) / topk_ratio), min=1).to(torch.long)
    ranked = filled.sort(dim=-1, descending=True).values
    take = torch.arange(cas.shape[-1], device=cas.device)[None, :] < k[:, None]  # (B, T)
    return ranked.masked_fill(~take[:, None, :], 0.0).sum(-1) / k[:, None].to(cas.dtype)


def normalize_temporal_cams(cas: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Min-max normalise each video's per-class sequence to [0, 1] over its real snippets.

    A constant sequence becomes all zeros (as for image CAMs); padded snippets are 0.
    """
    mask = _full_mask(cas, mask)
    m = mask[:, None, :]
    lo = cas.masked_fill(~m, float("inf")).amin(-1, keepdim=True)
    hi = cas.masked_fill(~m, float("-inf")).amax(-1, keepdim=True)
    span = hi - lo
    out = torch.where(span > 0, (cas - lo) / span.clamp_min(torch.finfo(cas.dtype).tiny), torch.zeros_like(cas))
    return out.masked_fill(~m, 0.0)


def video_loss(video_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Multi-label loss: mean binary cross-entropy of pooled logits vs multi-hot labels."""
    return F.binary_cross_entropy_with_logits(video_logits.float(), labels.float())


class TemporalCAM(nn.Module):
    """Temporal convolutions over snippet features and a per-class temporal CAM.

    Parameters
    ----------
    in_dim : int
        Feature size ``D`` of the ``(B, T, D)`` input.
    num_classes : int
        Number of action classes ``C``.
    hidden : int
        Channels of the hidden temporal convolutions.
    layers : int
        Hidden convolutions (each conv -> ReLU -> dropout) before the class convolution;
        0 gives a linear CAM on the features.
    kernel_size : int
        Odd temporal kernel of the hidden convolutions (1 = per snippet).
    dropout : float
        Dropout after each hidden convolution (training only).
    pool, topk_ratio
        Video-level pooling, see :func:`masked_pool`.
    """

    def __init__(self, in_dim: int, num_classes: int, *, hidden: int = 128, layers: int = 2,
                 kernel_size: int = 1, dropout: float = 0.5, pool: str = "topk", topk_ratio: float = 8.0):
        super().__init__()
        if in_dim < 1 or num_classes < 1:
            raise ValueError(f"in_dim and num_classes must be >= 1, got {in_dim}, {num_classes}")
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be a positive odd integer, got {kernel_size}")
        if layers < 0 or hidden < 1:
            raise ValueError(f"layers must be >= 0 and hidden >= 1, got {layers}, {hidden}")
        if pool not in POOLS:
            raise ValueError(f"unknown pool {pool!r}; valid choices: {', '.join(POOLS)}")
        if not topk_ratio >= 1:
            raise ValueError(f"topk_ratio must be >= 1, got {topk_ratio}")
        self.in_dim, self.num_classes = int(in_dim), int(num_classes)
        self.pool, self.topk_ratio = pool, float(topk_ratio)
        convs = []
        width = in_dim
        for _ in range(layers):
            convs.append(nn.Conv1d(width, hidden, kernel_size, padding=kernel_size // 2))
            width = hidden
        self.convs = nn.ModuleList(convs)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Conv1d(width, num_classes, 1)

    def cas(self, features: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Temporal class activation logits ``(B, C, T)`` (0 on padded snippets)."""
        if features.ndim != 3 or features.shape[-1] != self.in_dim:
            raise ValueError(f"features must be (B, T, {self.in_dim}), got {tuple(features.shape)}")
        x = features.transpose(1, 2)  # (B, D, T)
        keep = _full_mask(x, mask)[:, None, :].to(x.dtype)
        x = x * keep
        for conv in self.convs:
            x = self.dropout(F.relu(conv(x))) * keep
        return self.classifier(x) * keep

    def forward(self, features: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(video_logits (B, C), cas (B, C, T))``."""
        cas = self.cas(features, mask)
        return masked_pool(cas, mask, self.pool, self.topk_ratio), cas

    def topk(self, length: int) -> int:
        """``k`` of top-k pooling for a video of ``length`` snippets."""
        return max(1, math.ceil(length / self.topk_ratio))
