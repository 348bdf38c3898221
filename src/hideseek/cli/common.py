"""What the verbs of every room share: the one user-error path, JSON and text output, ``key=value`` options."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path


class UserError(Exception):
    """A mistake in what the command was given: :func:`hideseek.cli.main` prints ``error: <message>``
    on stderr and returns 2."""


@contextlib.contextmanager
def user_errors(*kinds: type[BaseException]) -> Iterator[None]:
    """Turn the exceptions ``kinds`` raised inside the block into :class:`UserError` (same message).

    A verb names the errors that mean "bad input" where it calls into its room, e.g.
    ``with user_errors(FileNotFoundError, ValueError): ...``; anything else keeps its traceback.
    """
    try:
        yield
    except kinds as error:
        raise UserError(str(error)) from error


def is_main_rank() -> bool:
    """False on the ranks other than 0 of a ``torchrun`` launch (they hold the same numbers)."""
    return int(os.environ.get("RANK", "0")) == 0


def write_json(result: dict, output: str | None) -> None:
    """Write ``result`` as indented JSON to ``output`` (parents created); nothing when ``output`` is empty."""
    text = json.dumps(result, indent=2, sort_keys=False)
    if output:
        path = Path(output)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n")


def write_or_print(text: str, output: str | None) -> None:
    """Write ``text`` to ``output`` (parents created) and say so, or print it when there is no ``output``."""
    if output:
        path = Path(output)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(f"wrote {path}")
    else:
        print(text, end="")


def parse_params(pairs: list[str]) -> dict:
    """``key=value`` pairs; values are JSON when they parse (numbers, lists), else strings."""
    params = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"error: --aug-param expects key=value, got {pair!r}")
        try:
            params[key] = json.loads(value)
        except json.JSONDecodeError:
            params[key] = value
    return params
