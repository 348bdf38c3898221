"""Names the action room accepts, and the command line offers as choices.

Plain tuples with no imports, so that ``hideseek --help`` reads them without torch;
:mod:`.train`, :mod:`.model`, :mod:`.protocols`, :mod:`.detect`, :mod:`.features` and
:mod:`.thumos` take theirs from here.
"""

from __future__ import annotations

FEATURE_SOURCES = ("extracted", "i3d-split", "wtalc")  # feature layouts behind load_feature_source
DATASETS = ("synthetic", "features", *FEATURE_SOURCES)
SCHEDULES = ("cosine", "constant")
POOLS = ("topk", "mean", "max")  # video-level pooling of the temporal CAM (top-k first: the default)
AUGMENTATIONS = ("none", "frame-has")  # the registry names a temporal CAM run trains with
MODALITIES = ("rgb", "flow", "both")  # I3D streams of the i3d-split layout
PROTOCOLS = ("activitynet", "thumos14", "thumos14-2014", "wtalc")  # mAP protocols: records in .protocols
UNITS = ("seconds", "snippets")  # segment units of ``action evaluate`` (snippets: W-TALC's index ranges)
SCORES = ("mean", "outer-inner")  # segment score from the activation (DetectConfig.score)
CONVERT_FORMATS = ("thumos14", "wtalc")  # annotation layouts ``hideseek action convert`` reads

# extract_features(on_error=...), and the command line's words for them (--on-error)
ON_ERROR = ("skip", "raise")
ON_ERROR_FLAGS = {"skip": "skip", "fail": "raise"}
