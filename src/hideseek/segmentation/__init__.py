"""Weakly-supervised semantic segmentation: CAM pseudo-masks from image-level labels, mIoU.

- :mod:`.metrics`: the confusion-matrix accumulator (:class:`MeanIoU`), the background
  threshold sweep (:class:`ThresholdSweep`) and their functional twins.
- :mod:`.pseudo`: per-class max-normalised CAMs of the image-level classes, a constant
  background score, argmax -> label map.
- :mod:`.evaluate`: score folders of label PNGs (``hideseek seg evaluate``).
- :mod:`.train`: multi-label CAM training, pseudo-mask scoring and prediction
  (``hideseek seg train`` / ``predict``).
- :mod:`.demo`: the synthetic-scene comparison of CAM and Hide-and-Seek (``hideseek seg demo``).
"""
