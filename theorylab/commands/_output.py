"""Old home of :mod:`theorylab.output` (kept so that existing imports keep working)."""

from theorylab.output import emit, format_table, format_value, to_jsonable

__all__ = ["format_value", "format_table", "emit", "to_jsonable"]
