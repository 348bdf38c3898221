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

# CAM methods (:mod:`hideseek.cam.methods`): vanilla CAM (the default), the Grad-CAM family of
# the ``grad-cam`` package (pytorch_grad_cam) under its class names in lower case, and
# attention rollout for ViT backbones
CAM = "cam"
GRAD_CAM_CLASSES = {  # method name -> pytorch_grad_cam class
    "gradcam": "GradCAM",
    "gradcam++": "GradCAMPlusPlus",
    "xgradcam": "XGradCAM",
    "scorecam": "ScoreCAM",
    "ablationcam": "AblationCAM",
    "eigencam": "EigenCAM",
    "layercam": "LayerCAM",
    "hirescam": "HiResCAM",
}
ROLLOUT = "rollout"
CAM_METHOD_NAMES = (CAM, *GRAD_CAM_CLASSES, ROLLOUT)
