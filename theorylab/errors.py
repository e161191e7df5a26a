"""Error and warning classes shared by the whole package, and small validators.

Every validation error is a ``ValueError`` or ``TypeError`` subclass whose message names the
offending value, what was expected, and how to fix it. Legal but dubious settings (a step size
above a theorem's limit) emit :class:`TheorylabWarning` instead.
"""

from __future__ import annotations

import math
import numbers

__all__ = [
    "TheorylabError",
    "TheorylabWarning",
    "SolverError",
    "check_int",
    "check_positive",
    "check_probability",
]


class TheorylabError(ValueError):
    """A value given to theorylab is invalid; the message says which and what was expected."""


class SolverError(RuntimeError):
    """A numerical solver failed (infeasible, unbounded, inaccurate or did not converge)."""


class TheorylabWarning(UserWarning):
    """A legal but dubious setting, e.g. a step size above the limit of the cited theorem."""


def check_int(name: str, value, minimum: int | None = None, maximum: int | None = None) -> int:
    """Return ``value`` as an int, or raise naming ``name`` and the expected range."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r} of type {type(value).__name__}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise TheorylabError(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise TheorylabError(f"{name} must be <= {maximum}, got {value}")
    return value


def check_positive(name: str, value, allow_zero: bool = False) -> float:
    """Return ``value`` as a finite float > 0 (or >= 0 with ``allow_zero``), else raise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        kind = type(value).__name__
        raise TypeError(f"{name} must be a real number, got {value!r} of type {kind}")
    value = float(value)
    if not math.isfinite(value):
        raise TheorylabError(f"{name} must be finite, got {value}")
    if value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise TheorylabError(f"{name} must be {bound}, got {value}")
    return value


def check_probability(name: str, value, open_left: bool = True) -> float:
    """Return ``value`` as a float in (0, 1] (or [0, 1] with ``open_left=False``), else raise."""
    value = check_positive(name, value, allow_zero=not open_left)
    if value > 1:
        raise TheorylabError(f"{name} must be at most 1, got {value}")
    return value
