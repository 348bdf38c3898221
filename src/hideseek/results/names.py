"""Record fields spelled as the published-number registry spells them.

A record must say which dataset, network and method it measured in the words of
``data/published.csv`` (``CUB``, ``ResNet50``, ``HaS``), or ``results table --published``
can never put it beside a published number. The run configs speak another language: the
WSOL benchmark's layout is one dataset kind (``wsol``) whatever it holds, VOC is ``voc``, the
benchmark's networks are timm names (``wsol_resnet50``), methods are augmentation or
``wsol_method`` names (``has``, ``acol``). These maps translate; a name they do not know is
kept as given (it matches nothing published, which is the truth). Hand-written because the
vocabularies are the registry's own, not any library's.

The same functions read records written before these fields existed (``dataset: "wsol"``,
no ``method`` / ``backbone``): :func:`registry_fields` fills them from the record's config.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import PurePath

__all__ = ["LEGACY_DATASETS", "registry_backbone", "registry_dataset", "registry_fields", "registry_method"]

# dataset kinds of the run configs that are layouts, not datasets: the registry name comes from the data itself
LEGACY_DATASETS = ("wsol", "voc", "features", "i3d-split", "wtalc", "extracted")

_DATASET_OF_FOLDER = {"cub": "CUB", "cub2002011": "CUB", "cub200": "CUB", "ilsvrc": "ILSVRC", "ilsvrc2012": "ILSVRC",
                      "imagenet": "ILSVRC", "openimages": "OpenImages", "openimages30k": "OpenImages",
                      "voc2012": "VOC2012", "thumos14": "THUMOS14", "thumos14reduced": "THUMOS14",
                      "activitynet": "ActivityNet", "activitynet12": "ActivityNet1.2",
                      "activitynet13": "ActivityNet1.3"}
_SPLIT_FOLDERS = {"train", "val", "test", "metadata", "features"}

_BACKBONES = {"vgg16": "VGG16", "inceptionv3": "InceptionV3", "resnet50": "ResNet50", "resnet18": "ResNet18",
              "resnet34": "ResNet34", "resnet101": "ResNet101", "mobilenetv1": "MobileNetV1",
              "mobilenetv1100": "MobileNetV1", "googlenet": "GoogLeNet", "alexnet": "AlexNet"}

_WSOL_METHODS = {"has": "HaS", "acol": "ACoL", "spg": "SPG", "adl": "ADL", "cutmix": "CutMix"}
_AUGMENTATION_METHODS = {"none": "CAM", "has": "HaS", "has-16": "HaS", "has-32": "HaS", "has-44": "HaS",
                         "has-56": "HaS", "has-mixed": "HaS", "frame-has": "HaS", "feature-has": "HaS (feature)",
                         "cutout": "Cutout", "random-erasing": "Random Erasing"}


def _squash(name) -> str:
    return re.sub(r"[^a-z0-9]", "", str(name).lower())


def _dataset_from_path(path) -> str | None:
    """The registry name a data folder's name says (``metadata/CUB`` -> ``CUB``), looking past
    split folders (``metadata/CUB/test``); ``None`` when no part of it is a known name."""
    parts = [p for p in PurePath(str(path)).parts if p not in ("/", "")]
    for part in reversed(parts):
        key = _squash(PurePath(part).stem)
        if key in _DATASET_OF_FOLDER:
            return _DATASET_OF_FOLDER[key]
        for prefix, name in (("thumos14", "THUMOS14"), ("activitynet12", "ActivityNet1.2"),
                             ("activitynet13", "ActivityNet1.3")):
            if key.startswith(prefix):
                return name
    return None


def registry_dataset(task: str | None, config: Mapping) -> str | None:
    """The dataset a run config measured, as the registry names it.

    ``synthetic`` stays ``synthetic``; VOC is ``VOC2012``; a WSOL-layout run is named by its
    ``metadata_root`` (the benchmark's ``metadata/CUB``, ``metadata/ILSVRC``,
    ``metadata/OpenImages``; CUB's native ``CUB_200_2011``); a feature run by its feature or
    annotation folder (``Thumos14reduced-...`` -> ``THUMOS14``). Unknown folders give the
    folder's own name (``wsol:<name>``), which matches no published row.
    """
    dataset = config.get("dataset")
    if dataset not in LEGACY_DATASETS:
        return dataset
    if dataset == "voc":
        return "VOC2012"
    where = [config.get(key) for key in ("metadata_root", "features_dir", "ground_truth", "data_root")]
    for path in where:
        if path:
            named = _dataset_from_path(path)
            if named:
                return named
    first = next((p for p in where if p), None)
    if first:
        parts = [p for p in PurePath(str(first)).parts if p.lower() not in _SPLIT_FOLDERS]
        if parts:
            return f"{dataset}:{parts[-1]}"
    return dataset


def registry_backbone(backbone) -> str | None:
    """``wsol_resnet50`` / ``resnet50`` -> ``ResNet50``; unknown names are kept."""
    if not backbone:
        return backbone
    name = str(backbone)
    key = _squash(name[5:] if name.startswith("wsol_") else name)
    return _BACKBONES.get(key, name)


def registry_method(task: str | None, config: Mapping) -> str | None:
    """The method a run trained, as the registry names it: a WSOL benchmark method
    (``wsol_method`` other than ``cam``) wins over the augmentation (``none`` -> ``CAM``,
    ``has*`` -> ``HaS``); unknown names are kept."""
    wsol = config.get("wsol_method")
    if wsol and wsol not in ("cam", "base"):
        return _WSOL_METHODS.get(str(wsol), str(wsol))
    augmentation = config.get("augmentation")
    if augmentation is None:
        return None
    return _AUGMENTATION_METHODS.get(str(augmentation), str(augmentation))


def registry_fields(task: str | None, config: Mapping) -> dict:
    """``{"dataset", "backbone", "method"}`` of a run config, in the registry's words."""
    backbone = config.get("backbone")
    if backbone is None and config.get("dataset") in ("i3d-split", "wtalc"):
        backbone = "I3D"  # the feature extractor is the network of a feature run
    return {"dataset": registry_dataset(task, config), "backbone": registry_backbone(backbone),
            "method": registry_method(task, config)}
