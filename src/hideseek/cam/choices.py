"""Names the CAM core accepts, and the command line offers as choices.

Plain tuples with no imports, so that ``hideseek --help`` reads them without torch;
:mod:`.model`, :mod:`.recipe` and :mod:`.policies` take theirs from here.
"""

from __future__ import annotations

POOLS = ("avg", "max", "avgmax")  # CAMNet's global pooling: GAP, GMP, both
OPTIMIZERS = ("adamw", "sgd")
SCHEDULES = ("onecycle", "cosine", "step", "constant")  # per-step LR schedules of the image-run recipe

# threshold policy names (:class:`~hideseek.cam.policies.ThresholdPolicy` ``name``)
ORACLE = "oracle"
FIXED = "fixed"
CALIBRATED = "calibrated"
POLICIES = (ORACLE, FIXED, CALIBRATED)
