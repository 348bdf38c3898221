"""hideseek: Hide-and-Seek and weakly-supervised localization benchmarks for images and video.

Rooms: :mod:`hideseek.augment` (hiding patches, feature maps and frames),
:mod:`hideseek.cam` (CAM models, the CAM-map seam, threshold policies, the metric base,
the image-run recipe), :mod:`hideseek.localization` (WSOL: evaluators, datasets, the public
benchmark's networks and methods), :mod:`hideseek.segmentation` (CAM pseudo-masks, mIoU),
:mod:`hideseek.action` (temporal action localization), :mod:`hideseek.results` (records,
tables, the comparison loop), :mod:`hideseek.engine` (training, evaluation and the run
lifecycle) and :mod:`hideseek.bench` (throughput).
"""

__version__ = "0.1.0"
