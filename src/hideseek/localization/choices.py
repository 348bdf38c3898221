"""Names the localization room accepts, and the command line offers as choices.

Plain tuples with no imports, so that ``hideseek --help`` reads them without torch;
:mod:`.train` and :mod:`.coco` take theirs from here.
"""

from __future__ import annotations

DATASETS = ("synthetic", "wsol")  # the embedded synthetic benchmark, or the WSOL benchmark layout
CONVERT_FORMATS = ("ilsvrc", "cub")  # native annotations ``hideseek loc convert`` reads
IOU_TYPES = ("bbox", "segm")  # COCOeval's AP kinds

# the public WSOL benchmark's own networks (hideseek.localization.benchmark), as timm registers them
BENCHMARK_ARCHITECTURES = ("vgg16", "resnet50", "inception_v3")
BENCHMARK_BACKBONES = tuple(f"wsol_{name}" for name in BENCHMARK_ARCHITECTURES)


def is_benchmark_network(backbone: str) -> bool:
    return backbone in BENCHMARK_BACKBONES

# the public WSOL benchmark's methods (hideseek.localization.wsol_methods), as its --wsol_method spells them
WSOL_METHODS = ("cam", "has", "acol", "spg", "adl", "cutmix")

# metrics a 'loc compare-cams' table can show: name -> whether it depends on the threshold policy
COMPARE_METRICS = {"MaxBoxAccV2": True, "MaxBoxAcc": True, "MaxBoxAccV1": True, "GT-known Loc": True,
                   "Top-1 Loc": True, "PxAP": False}
