"""Names the benchmark suite accepts, and the command line offers as choices.

Plain tuples with no imports, so that ``hideseek --help`` reads them without torch;
:mod:`.suite` takes its own from here.
"""

from __future__ import annotations

DEVICES = ("cpu", "cuda")
SIZE_NAMES = ("full", "tiny")  # the keys of suite.SIZES: the published shapes, or a smoke run
GROUPS = ("images", "frames", "evaluators", "training", "loop", "cams")
# what a plain 'hideseek bench' runs: every group but "cams" (CAM-method cost, asked for by name)
DEFAULT_GROUPS = ("images", "frames", "evaluators", "training", "loop")
REPORT_FORMATS = ("markdown", "csv")  # what report.render writes
