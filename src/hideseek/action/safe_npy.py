"""Reading ``.npy`` files that hold object arrays without running code from them.

Why hand-written: W-TALC ships its annotations (``segments.npy``, ``labels.npy``, ...) and
its joint I3D features as object arrays, which NumPy stores as a pickle. ``np.load(...,
allow_pickle=True)`` unpickles whatever the file says, so a crafted annotation file runs
arbitrary code. NumPy offers no middle ground, so :func:`load_npy` reads the ``.npy``
header itself and unpickles the payload with :class:`_ArrayUnpickler`, whose
``find_class`` resolves only what an object array of strings, numbers, lists and arrays
needs (NumPy's array and scalar reconstruction functions, ``ndarray``, ``dtype``, a few
plain builtins, and ``_codecs.encode`` limited to latin-1, which protocol-2 pickles use
for bytes); any other global (``os.system``, ``builtins.eval``, ...) is refused before it
is looked up, with one line naming the file and the global. Arrays without objects are
read by ``np.load(allow_pickle=False)`` as usual.

The names are those NumPy 1.x (``numpy.core``), NumPy 2.x (``numpy._core``) and Python 2
(``__builtin__``: W-TALC's files were written by Python 2) write.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from hideseek.inputs import InputError

__all__ = ["load_npy"]

_CORE = ("numpy.core.multiarray", "numpy._core.multiarray")
_BUILTINS = {"list": list, "tuple": tuple, "dict": dict, "str": str, "bytes": bytes, "bytearray": bytearray,
             "int": int, "float": float, "complex": complex, "bool": bool, "set": set, "frozenset": frozenset,
             "unicode": str, "long": int}


def _multiarray_global(name: str) -> Any:
    try:
        from numpy._core import multiarray
    except ImportError:  # NumPy 1.x
        from numpy.core import multiarray
    return getattr(multiarray, name)


class _ArrayUnpickler(pickle.Unpickler):
    """An unpickler that builds NumPy arrays, strings, numbers and containers, and nothing else."""

    def __init__(self, file, path: Path, **kwargs):
        super().__init__(file, **kwargs)
        self._path = path

    def find_class(self, module: str, name: str) -> Any:
        if module in _CORE and name in ("_reconstruct", "scalar"):
            return _multiarray_global(name)
        if (module, name) in (("numpy", "ndarray"), ("numpy", "dtype")):
            return getattr(np, name)
        if module in ("builtins", "__builtin__") and name in _BUILTINS:
            return _BUILTINS[name]
        if (module, name) == ("_codecs", "encode"):  # bytes in a protocol-2 pickle written by Python 3
            return _latin1_bytes
        raise InputError(f"{self._path}: refused to load the global {module}.{name} from this .npy file "
                         "(only arrays of strings, numbers and lists are read; nothing in a data file is run)")


def _latin1_bytes(text: str, encoding: str = "latin1") -> bytes:
    """What ``_codecs.encode(text, "latin1")`` gives, and nothing else (no other codec is looked up)."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"_codecs.encode with {encoding!r} refused")
    return text.encode("latin1")


def load_npy(path: str | os.PathLike, encoding: str = "bytes") -> np.ndarray:
    """The array in ``path``; an object array is unpickled with only array/string/number types allowed.

    ``encoding`` is the one ``np.load`` takes for Python 2 pickles (``"bytes"`` keeps Python
    2 strings as ``bytes``). Raises :class:`FileNotFoundError` or :class:`InputError`
    naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    try:
        with open(path, "rb") as fh:
            version = np.lib.format.read_magic(fh)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
            else:
                shape, fortran, dtype = np.lib.format._read_array_header(fh, version)
            if not dtype.hasobject:
                return np.load(path, allow_pickle=False)
            try:
                array = _ArrayUnpickler(fh, path, encoding=encoding, fix_imports=True).load()
            except InputError:
                raise
            except Exception as error:  # a damaged pickle stream: any of pickle's many error types
                raise InputError(f"{path}: not a readable object array ({type(error).__name__}: {error})") from None
    except InputError:
        raise
    except (ValueError, OSError, EOFError) as error:
        raise InputError(f"{path}: not a readable .npy file ({error})") from None
    if not isinstance(array, np.ndarray):
        raise InputError(f"{path}: expected an array, the file holds a {type(array).__name__}")
    if array.shape != tuple(shape):
        raise InputError(f"{path}: header says shape {tuple(shape)}, the data has {array.shape}")
    return array
