"""``python -m hideseek``: the ``hideseek`` command (as torchrun launches it: ``torchrun ... -m hideseek``)."""

import sys

from hideseek.cli import main

if __name__ == "__main__":
    sys.exit(main())
