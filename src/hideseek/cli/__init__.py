"""The ``hideseek`` command: ``hideseek <room> <verb> [options]``.

One module per room (:mod:`.loc`, :mod:`.seg`, :mod:`.augment`, :mod:`.action`,
:mod:`.results`, :mod:`.reproduce`, :mod:`.demo`, :mod:`.bench`), each with
``add_parser(rooms)`` and its verb handlers. Rooms import lazily inside each verb so that
``--help`` answers at once; the choices the parser offers come from the rooms' torch-free
``choices`` modules. A verb turns the errors that mean bad input into
:class:`~hideseek.cli.common.UserError`, which :func:`main` prints as ``error: <message>``
on stderr with exit code 2; so is any :class:`~hideseek.inputs.InputError` (a file a user
gave is not what was expected). Ctrl-C ends with ``interrupted`` and exit code 130 (a
training run has saved a resumable checkpoint first).
"""

from __future__ import annotations

import argparse
import sys

from hideseek import __version__
from hideseek.cli import action, augment, bench, demo, loc, reproduce, results, seg
from hideseek.cli.common import UserError
from hideseek.inputs import InputError

__all__ = ["OneLineParser", "build_parser", "main"]


class OneLineParser(argparse.ArgumentParser):
    """argparse with the project's error shape: a bad option is one line on stderr
    (``error: hideseek loc train: argument --epochs: ...``) and exit code 2, without
    argparse's usage block (``--help`` shows it). Subparsers inherit the class."""

    def error(self, message: str):
        self.exit(2, f"error: {self.prog}: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="hideseek",
        description="Hide-and-Seek and weakly-supervised localization benchmarks.",
        epilog="Run 'hideseek <room> --help' for a room's verbs.",
    )
    parser.add_argument("--version", action="version", version=f"hideseek {__version__}")
    rooms = parser.add_subparsers(dest="room", metavar="ROOM", required=True)
    for room in (demo, reproduce, loc, seg, augment, action, results, bench):
        room.add_parser(rooms)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one verb; a user error is one line on stderr and exit code 2, Ctrl-C one line and 130."""
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except (UserError, InputError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
