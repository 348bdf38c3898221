"""hideseek: Hide-and-Seek and weakly-supervised localization benchmarks.

Rooms: :mod:`hideseek.augment` (hiding patches, feature maps and frames),
:mod:`hideseek.localization` (CAM models and WSOL evaluators),
:mod:`hideseek.results` (result records and tables).
"""

__version__ = "0.1.0"
