"""Printing results: a plain-text table for people, JSON for scripts.

Public so that every part of the house prints the same way: the ``theorylab`` subcommands, the
``verify`` report and saved results (:func:`to_jsonable`), and the benchmarks' tables
(:func:`format_table`).

Example
-------
>>> print(format_table([{"n": 4, "rho": 0.5}]))
n  rho
-  ---
4  0.5
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["format_value", "format_table", "emit", "to_jsonable"]


def to_jsonable(obj: Any) -> Any:
    """Convert numpy scalars/arrays, tuples and dataclass-like objects into JSON types."""
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        x = float(obj)
        return x if math.isfinite(x) else str(x)
    if isinstance(obj, (np.bool_,)):
        return bool(obj)
    if hasattr(obj, "to_dict"):
        return to_jsonable(obj.to_dict())
    return obj


def format_value(v: Any) -> str:
    """One table cell: yes/no for bools, 6 significant digits, scientific outside [1e-3, 1e5)."""
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        x = float(v)
        if x == 0 or not math.isfinite(x):
            return str(x)
        if 1e-3 <= abs(x) < 1e5:
            return f"{x:.6g}"
        return f"{x:.4e}"
    if v is None:
        return "-"
    return str(v)


def format_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None) -> str:
    """Left-aligned plain-text table of ``rows`` (dicts) with a header line."""
    if not rows:
        return "(no rows)"
    columns = list(columns or rows[0].keys())
    cells = [[format_value(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    line = "  ".join(c.ljust(w) for c, w in zip(columns, widths))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in cells]
    return "\n".join(out)


def emit(result: Any, table: str, as_json: bool, stream=None) -> None:
    """Print ``result`` as JSON when ``as_json`` else the human ``table``."""
    stream = stream or sys.stdout
    if as_json:
        json.dump(to_jsonable(result), stream, indent=2)
        stream.write("\n")
    else:
        stream.write(table.rstrip("\n") + "\n")
