"""Hide-and-Seek augmentations for images, feature maps and video, plus comparison rows.

Hide-and-Seek (Singh & Lee, ICCV 2017) hides random grid patches of each training image so
that a classifier must look at every part of an object, not only the most discriminative
one. Everything here is batched on the tensor's device and deterministic: a mask is a pure
function of ``(seed, epoch, sample id)``, whatever the batch size, order, worker count or
device.

Functions: :func:`hide_patches` / :func:`patch_mask` (images), :func:`cutout` /
:func:`cutout_mask`, :func:`hide_frames` / :func:`frame_mask` (clips and snippet features),
:func:`normalize_and_hide` (uint8 in, normalised and hidden out, one pass; Triton on CUDA).
Modules: :class:`HideAndSeekBatch`, :class:`FeatureHide` (+ :func:`insert_feature_hide`),
:class:`HideFrames`, :class:`CutoutBatch`, :class:`RandomErasingBatch`, and the per-sample
v2 transform :class:`HideAndSeek`. Registry: :func:`create`, :func:`available`,
:func:`register`. Model-wide helpers: :func:`set_epoch`, :func:`using_sample_ids`.
The plain loop oracle lives in :mod:`hideseek.augment.reference`.
"""

from .base import Augmentation, set_epoch, using_sample_ids
from .cutout import cutout, cutout_mask
from .feature import FeatureHide, insert_feature_hide
from .frames import frame_mask, hide_frames
from .fused import normalize, normalize_and_hide
from .patches import DEFAULT_GRID_SIZES, hide_patches, patch_mask
from .registry import available, create, register
from .transforms import CutoutBatch, HideAndSeek, HideAndSeekBatch, HideFrames, NoAugment, RandomErasingBatch

__all__ = [
    "Augmentation",
    "CutoutBatch",
    "DEFAULT_GRID_SIZES",
    "FeatureHide",
    "HideAndSeek",
    "HideAndSeekBatch",
    "HideFrames",
    "NoAugment",
    "RandomErasingBatch",
    "available",
    "create",
    "cutout",
    "cutout_mask",
    "frame_mask",
    "hide_frames",
    "hide_patches",
    "insert_feature_hide",
    "normalize",
    "normalize_and_hide",
    "patch_mask",
    "register",
    "set_epoch",
    "using_sample_ids",
]
