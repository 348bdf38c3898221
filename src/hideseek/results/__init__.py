"""Run records (JSON lines, appended atomically) and result tables."""

from hideseek.results.records import RecordError, append_record, make_record, read_records

__all__ = ["RecordError", "append_record", "make_record", "read_records"]
