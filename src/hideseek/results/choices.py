"""Names the results room accepts, and the command line offers as choices.

Plain tuples with no imports, so that ``hideseek --help`` reads them without pandas;
:mod:`.tables` takes its own from here.
"""

from __future__ import annotations

FORMATS = ("csv", "markdown", "latex")  # table formats of tables.render_table
BOX_CURVES = ("BoxAccV2", "BoxAcc", "BoxAccV1")  # threshold-curve families of results plot (keys of 'curves')
PLOT_FORMATS = ("png", "pdf", "svg")  # figure files results plot writes
