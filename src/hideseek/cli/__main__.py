"""``python -m hideseek.cli``: the ``hideseek`` command (as torchrun launches it: ``torchrun ... -m hideseek.cli``)."""

import sys

from hideseek.cli import main

if __name__ == "__main__":
    sys.exit(main())
