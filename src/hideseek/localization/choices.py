"""Names the localization room accepts, and the command line offers as choices.

Plain tuples with no imports, so that ``hideseek --help`` reads them without torch;
:mod:`.train` and :mod:`.coco` take theirs from here.
"""

from __future__ import annotations

DATASETS = ("synthetic", "wsol")  # the embedded synthetic benchmark, or the WSOL benchmark layout
CONVERT_FORMATS = ("ilsvrc", "cub")  # native annotations ``hideseek loc convert`` reads
IOU_TYPES = ("bbox", "segm")  # COCOeval's AP kinds
