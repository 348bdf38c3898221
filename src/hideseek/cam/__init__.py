"""The CAM core that localization, segmentation and action share.

- :mod:`.model`: :class:`CAMNet`, a classifier on any timm backbone whose weights give CAMs.
- :mod:`.backbones`: backbone name checking, the benchmark's larger final feature map.
- :mod:`.pretrained`: offline ImageNet weights (a local file, or the EfficientNet-Lite0 package).
- :mod:`.methods`: the CAM-map seam (:func:`compute_cams`) and the CAM method registry.
- :mod:`.maps`: normalisation and resizing conventions of score maps.
- :mod:`.policies`: threshold grids and threshold policies (oracle, fixed, calibrated).
- :mod:`.metric`: the accumulator base of every metric.
- :mod:`.recipe`: the image-run recipe (shared config fields, transforms, model,
  optimiser and schedule builders).
"""

import importlib

# name -> submodule; imported on first use so that ``hideseek.cam.<light module>`` (and the
# command line's --help) does not import torch
_WHERE = {
    "backbone_error": "backbones", "check_backbone": "backbones", "drop_last_stride": "backbones",
    "nearest_indices": "maps", "normalize_cams": "maps", "resize_cams": "maps",
    "CAM_METHODS": "methods", "CAMInputs": "methods", "cam_method_names": "methods", "compute_cams": "methods",
    "get_cam_method": "methods", "register_cam_method": "methods", "unregister_cam_method": "methods",
    "Metric": "metric", "POOLS": "choices", "CAMNet": "model",
    "Calibrated": "policies", "Fixed": "policies", "Oracle": "policies", "ThresholdPolicy": "policies",
    "cam_thresholds": "policies",
}


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(f"hideseek.cam.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'hideseek.cam' has no attribute {name!r}")


__all__ = [
    "CAM_METHODS",
    "POOLS",
    "CAMInputs",
    "CAMNet",
    "Calibrated",
    "Fixed",
    "Metric",
    "Oracle",
    "ThresholdPolicy",
    "backbone_error",
    "cam_method_names",
    "cam_thresholds",
    "check_backbone",
    "compute_cams",
    "drop_last_stride",
    "get_cam_method",
    "nearest_indices",
    "normalize_cams",
    "register_cam_method",
    "resize_cams",
    "unregister_cam_method",
]
