"""Issue 14: numbers that must not depend on what ran before or on how they were asked for.

A training run's own evaluation and ``loc evaluate --checkpoint`` must give bit-identical
score maps (PxAP bins every pixel, so a last-bit difference moves it): the GT class's CAM
may not depend on how many other classes' maps the same call computes, nor on the memory
layout a reloaded checkpoint has.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from hideseek.cam.methods import compute_cams


class _TinyCAM(nn.Module):
    """features(): a conv; classify(): global average pool + linear (the CAM recipe)."""

    def __init__(self, channels: int = 64, classes: int = 5):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.conv = nn.Conv2d(3, channels, 3, padding=1)
        self.classifier = nn.Linear(channels, classes)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g))

    def features(self, x):
        return self.conv(x)

    def classify(self, features):
        return self.classifier(features.mean((2, 3)))


@pytest.mark.parametrize("channels_last", [False, True])
def test_gt_cam_does_not_depend_on_the_other_classes_asked_for(channels_last):
    model = _TinyCAM().eval()
    x = torch.randn(12, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    if channels_last:  # the Trainer's layout on CPU and CUDA
        model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    labels = torch.arange(12) % 5
    alone, _, _ = compute_cams(model, x, labels[:, None])
    pair, _, _ = compute_cams(model, x, lambda logits: torch.stack([labels, logits.argmax(1)], 1))
    assert alone.shape == (12, 1, 16, 16) and pair.shape == (12, 2, 16, 16)
    assert torch.equal(pair[:, 0], alone[:, 0])
    # and the maps are the classifier's weights on the features, up to rounding
    features = model.features(x).detach()
    expected = torch.einsum("bc,bchw->bhw", model.classifier.weight[labels].detach(), features)
    torch.testing.assert_close(alone[:, 0], expected)
