"""Reading what a user gives and writing where a user says, the same way in every room.

- Text files are UTF-8, with or without a byte-order mark (Windows editors and Excel write
  one); a file in another encoding is refused naming the file and the byte offset, never
  decoded into different ids or numbers.
- JSON files must have the top level the reader expects (an object, a list).
- Ids and relative paths taken from data files stay inside the folder they belong to: a
  ``../`` or an absolute path in an annotation never reads or writes elsewhere.
- An output file is checked writable before the work that fills it starts, so a typo in
  ``--output`` never costs a finished run.

Every error is an :class:`InputError` (a ``ValueError``) whose message names the file.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["InputError", "check_writable", "check_writable_dir", "confined", "finite", "read_json", "read_lines",
           "read_text"]


class InputError(ValueError):
    """A file or value a user gave is not what was expected; the message names it."""


def read_text(path: str | os.PathLike, what: str = "file") -> str:
    """The text of a UTF-8 file (a leading byte-order mark removed); other encodings refused."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: {what} not found") from None
    except IsADirectoryError:
        raise InputError(f"{path}: expected a {what}, found a folder") from None
    except OSError as error:
        raise InputError(f"{path}: cannot read {what} ({error.strerror or error})") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise InputError(f"{path}:{line}: expected UTF-8 text, found byte 0x{data[error.start]:02x} "
                         f"at offset {error.start}") from None


def read_lines(path: str | os.PathLike, what: str = "file") -> list[str]:
    """The lines of a UTF-8 text file (BOM removed, line ends stripped, ``\\r\\n`` accepted)."""
    return read_text(path, what).splitlines()


def read_json(path: str | os.PathLike, expect: type | tuple[type, ...] = dict, what: str = "JSON file") -> Any:
    """A JSON file whose top level is an instance of ``expect`` (``dict``, ``list``)."""
    text = read_text(path, what)
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise InputError(f"{path}:{error.lineno}: not valid JSON ({error.msg})") from None
    if not isinstance(value, expect):
        kinds = expect if isinstance(expect, tuple) else (expect,)
        names = " or ".join({dict: "an object", list: "a list"}.get(kind, kind.__name__) for kind in kinds)
        raise InputError(f"{path}: expected a JSON {what} with {names} at the top level, "
                         f"found {_json_kind(value)}")
    return value


def _json_kind(value: Any) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    return "a number"


def confined(root: str | os.PathLike, relative: str, where: str = "") -> Path:
    """``root / relative``, refused when ``relative`` is absolute or climbs out of ``root``.

    ``where`` (a file and line) prefixes the message. Symbolic links inside ``root`` are
    followed: a dataset folder may link its images from elsewhere on purpose; what is refused
    is a path *written* to leave the root.
    """
    prefix = f"{where}: " if where else ""
    text = str(relative)
    # "." is a caller checking an id before it knows the root: name no folder
    inside = "its root folder" if str(root) in ("", ".") else str(root)
    if not text or "\x00" in text:
        raise InputError(f"{prefix}expected a relative path inside {inside}, got {text!r}")
    candidate = Path(text)
    if candidate.is_absolute() or candidate.drive or text.startswith(("/", "\\")):
        raise InputError(f"{prefix}expected a path relative to {inside}, got the absolute path {text!r}")
    parts = text.replace("\\", "/").split("/")
    if ".." in parts:
        raise InputError(f"{prefix}path {text!r} leaves {inside} ('..' is not allowed in ids and paths)")
    return Path(root) / candidate


def finite(value: Any, what: str) -> float:
    """``value`` as a finite float, else :class:`InputError` naming ``what``."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{what}: expected a number, got {value!r}") from None
    if not math.isfinite(number):
        raise InputError(f"{what}: expected a finite number, got {value!r}")
    return number


def check_writable(path: str | os.PathLike, what: str = "output") -> Path:
    """Make sure ``path`` (a file to be written later) can be created: its folder is made and a
    probe file written and removed there. Raises :class:`InputError` naming the path."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path}: {what} is a folder, expected a file path")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            if not os.access(path, os.W_OK):
                raise PermissionError(13, "permission denied")
        else:
            fd, probe = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".probe", dir=path.parent)
            os.close(fd)
            os.unlink(probe)
    except OSError as error:
        raise InputError(f"{path}: cannot write {what} ({error.strerror or error})") from None
    return path


def check_writable_dir(path: str | os.PathLike, what: str = "output folder") -> Path:
    """Make sure files can be created in folder ``path`` (made when missing)."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".hideseek.", suffix=".probe", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as error:
        raise InputError(f"{path}: cannot write into {what} ({error.strerror or error})") from None
    return path
