"""Weakly-supervised object localization: data, training, evaluation and the benchmark's networks.

:func:`benchmark_model` (the public WSOL benchmark's VGG16 / ResNet50 / Inception-v3
networks for CAM, HaS, CutMix, ACoL, SPG and ADL) is imported on first use, so importing a
light submodule (``hideseek.localization.boxes`` ...) does not import torch.
"""

import importlib

_WHERE = {
    "benchmark_model": "benchmark.factory",
    "load_torchvision_weights": "benchmark.weights",
}


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(f"hideseek.localization.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'hideseek.localization' has no attribute {name!r}")


__all__ = sorted(_WHERE)
