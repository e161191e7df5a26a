"""The typed result every rate function returns (one form for every algorithm family)."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

from theorylab.errors import TheorylabError, TheorylabWarning

__all__ = ["Rate", "warn_step_size"]

_KINDS = ("upper", "tight", "lower")


@dataclass(frozen=True)
class Rate:
    """A predicted rate split into named terms.

    Attributes
    ----------
    name : str
        Algorithm and setting, e.g. ``'dsgd/strongly_convex/atc'``.
    quantity : str
        What is bounded, e.g. ``'(1/n) sum_i E||x_i^T - x*||^2'``.
    terms : dict[str, float]
        Named additive terms (``'optimization'``, ``'noise'``, ``'topology'``,
        ``'heterogeneity'``, ...); ``total`` is their sum.
    kind : 'upper' | 'tight' | 'lower'
        Upper bound, exact/tight value, or lower bound on ``quantity``.
    source : str
        Paper and theorem (or "derived here", with the proof in the function's docstring).
    assumptions : tuple[str, ...]
    step_size_condition : str
        The step-size condition the guarantee needs ('' when none).
    step_size_ok : bool | None
        Whether the given step satisfies it (None when no step is involved).
    big_o : bool
        True when the constants are only known up to a numerical factor: then ``total`` is an
        order of magnitude (a *shape*), not a number to compare against measurements.
    extra : dict
        Further named values (e.g. the average-iterate and consensus parts).
    """

    name: str
    quantity: str
    terms: dict
    kind: str
    source: str
    assumptions: tuple = ()
    step_size_condition: str = ""
    step_size_ok: bool | None = None
    big_o: bool = False
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.kind not in _KINDS:
            raise TheorylabError(f"kind must be one of {_KINDS}, got {self.kind!r}")

    @property
    def total(self) -> float:
        """Sum of the terms."""
        return float(math.fsum(float(v) for v in self.terms.values()))

    def to_dict(self) -> dict:
        """JSON-ready dict (terms, total and metadata)."""
        return {
            "name": self.name,
            "quantity": self.quantity,
            "terms": {k: float(v) for k, v in self.terms.items()},
            "total": self.total,
            "kind": self.kind,
            "source": self.source,
            "assumptions": list(self.assumptions),
            "step_size_condition": self.step_size_condition,
            "step_size_ok": self.step_size_ok,
            "big_o": self.big_o,
            "extra": {
                k: float(v) if isinstance(v, (int, float)) else v for k, v in self.extra.items()
            },
        }


def warn_step_size(name: str, gamma: float, condition: str, stacklevel: int = 3) -> None:
    """Emit the TheorylabWarning used when a step size violates a theorem's condition."""
    warnings.warn(
        f"{name}: gamma={gamma:g} violates the step-size condition {condition}; the guarantee "
        "does not apply (terms may be inf). Decrease gamma",
        TheorylabWarning,
        stacklevel=stacklevel,
    )
