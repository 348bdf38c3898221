"""Run records (JSON lines, appended atomically) and result tables."""

import importlib

# name -> submodule; imported on first use so that ``hideseek.results.choices`` (and the
# command line's --help) does not import filelock
_WHERE = {"RecordError": "records", "append_record": "records", "make_record": "records", "read_records": "records"}


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(f"hideseek.results.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'hideseek.results' has no attribute {name!r}")


__all__ = ["RecordError", "append_record", "make_record", "read_records"]
