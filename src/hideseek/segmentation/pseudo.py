"""CAM pseudo-masks: image-level classes -> per-pixel labels.

Per image (the convention of CAM-based weakly-supervised segmentation, e.g. IRN):

1. the CAM (``sum_k W[c, k] F_k`` for vanilla CAM, or another method of
   :mod:`hideseek.cam.methods`) of every class c in the image-level label set, ReLU,
   upsampled (bilinear) to the image size;
2. each map divided by its own maximum (so every present class peaks at 1; a map that is
   nowhere positive stays 0);
3. a constant background score ``tau`` (the background threshold);
4. argmax over ``[tau, cam_1, ..., cam_K]``, ties to background: label 0 where no present
   class scores above ``tau``, else 1 + the best class.

Classes not in the image's label set score 0 everywhere, so they are never predicted.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from hideseek.cam.methods import compute_cams
from hideseek.cam.model import CAMNet

__all__ = ["class_scores", "pseudo_labels"]


def class_scores(model: CAMNet, images: torch.Tensor, labels: torch.Tensor,
                 sizes: list[tuple[int, int]] | None = None, eps: float = 1e-5,
                 method: str = "cam") -> list[torch.Tensor] | torch.Tensor:
    """Foreground scores of the image-level classes, float32 in [0, 1].

    ``images`` (B, 3, h, w) normalised network inputs; ``labels`` (B, K) multi-hot. With
    ``sizes`` (one ``(height, width)`` per image) each image's maps are upsampled to its own
    size and a list of (K, H, W) tensors is returned; without, one (B, K, h, w) tensor at
    the input size. ``method`` names the CAM method (:mod:`hideseek.cam.methods`).
    """
    classes = torch.arange(model.num_classes, device=images.device).expand(images.shape[0], -1)
    raw, _, _ = compute_cams(model, images, classes, method=method)
    raw = raw.float().relu()
    present = (labels > 0.5).to(raw.device)

    def finish(maps: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        peak = maps.flatten(-2).amax(-1)[..., None, None]
        return torch.where(keep[..., None, None], maps / (peak + eps), torch.zeros_like(maps)).clamp_(0, 1)

    if sizes is None:
        return finish(F.interpolate(raw, size=tuple(images.shape[-2:]), mode="bilinear", align_corners=False), present)
    out = []
    for j, (height, width) in enumerate(sizes):
        maps = F.interpolate(raw[j:j + 1], size=(height, width), mode="bilinear", align_corners=False)[0]
        out.append(finish(maps, present[j]))
    return out


def pseudo_labels(scores: torch.Tensor, threshold: float) -> torch.Tensor:
    """Label maps (int64) from foreground scores (..., K, H, W): 0 where the best score is
    not above ``threshold``, else 1 + the best class (first on ties). The comparison is
    made in the scores' dtype (the threshold rounded to it), as the sweep makes it."""
    best, cls = scores.max(dim=-3)
    tau = torch.as_tensor(float(threshold), dtype=best.dtype, device=best.device)
    return torch.where(best > tau, cls + 1, torch.zeros_like(cls))
