"""Names the segmentation room accepts, and the command line offers as choices.

Plain tuples with no imports, so that ``hideseek --help`` reads them without torch;
:mod:`.train` takes its own from here.
"""

from __future__ import annotations

DATASETS = ("synthetic", "voc")  # synthetic scenes, or PASCAL VOC 2012
