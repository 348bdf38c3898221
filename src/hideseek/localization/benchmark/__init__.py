"""The public WSOL benchmark's networks (clovaai/wsolevaluation), written anew and state-dict compatible.

- :mod:`.factory`: :func:`benchmark_model` (architecture x method -> network), the
  method parameters and their defaults, the timm registration (``wsol_vgg16``,
  ``wsol_resnet50``, ``wsol_inception_v3``).
- :mod:`.layers`: the ADL layer, the CAM / ACoL / SPG heads, the score-map convention.
- :mod:`.vgg`, :mod:`.resnet`, :mod:`.inception`: the networks of each architecture.
- :mod:`.weights`: initialisation from local torchvision ImageNet weights files.

A state dict saved by the benchmark's code loads strictly into the network built here for
the same (architecture, method type, number of classes, ``large_feature_map``), and gives
the same outputs.
"""

import importlib

# name -> submodule; imported on first use so that importing the package does not import torch
_WHERE = {
    "ARCHITECTURES": "factory", "METHOD_PARAMS": "factory", "METHOD_TYPES": "factory", "benchmark_model": "factory",
    "head_parameters": "factory",
    "ADL": "layers", "BenchmarkNet": "layers", "score_maps": "layers",
    "TORCHVISION_FILES": "weights", "WeightsError": "weights", "WeightsReport": "weights",
    "load_torchvision_weights": "weights", "torchvision_key_map": "weights",
}


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(f"hideseek.localization.benchmark.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'hideseek.localization.benchmark' has no attribute {name!r}")


__all__ = sorted(_WHERE)
