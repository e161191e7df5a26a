"""Shared pieces of the exact predictions: the result object, input checks, power tables.

One concept: what every exact prediction returns (:class:`ExactPrediction`) and the checks and
elementwise helpers (``lam^t`` tables, geometric sums) that the engine and the families use.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from theorylab.errors import TheorylabError, TheorylabWarning
from theorylab.problems import QuadraticProblem
from theorylab.stochastic import check_schedule

__all__ = ["ExactPrediction"]


@dataclass(frozen=True)
class ExactPrediction:
    """Exact expected metrics at the recorded steps, plus the steady state.

    Attributes
    ----------
    steps : ndarray of int, the recorded steps k (0 = initial point).
    error : ndarray, (1/n) sum_i E||x_i^k - x*||^2.
    consensus : ndarray, (1/n) sum_i E||x_i^k - xbar^k||^2.
    avg_error : ndarray, E||xbar^k - x*||^2.
    steady_state : dict with keys 'error', 'consensus', 'avg_error' (inf when unstable).
    algorithm : the family ('dsgd', 'psgd', 'gossip', 'compressed_psgd', 'gradient_tracking', ...).
    form : 'atc' | 'cta' | None.
    method : the solver used ('spectral', 'blockwise', 'dense', 'closed-form', 'stepped', ...).
    """

    steps: np.ndarray
    error: np.ndarray
    consensus: np.ndarray
    avg_error: np.ndarray
    steady_state: dict = field(default_factory=dict)
    algorithm: str = "dsgd"
    form: str | None = None
    method: str = "dense"

    def to_dict(self) -> dict:
        """JSON-ready dict (lists of floats)."""
        return {
            "algorithm": self.algorithm,
            "form": self.form,
            "method": self.method,
            "steps": [int(s) for s in self.steps],
            "error": [float(v) for v in self.error],
            "consensus": [float(v) for v in self.consensus],
            "avg_error": [float(v) for v in self.avg_error],
            "steady_state": {k: float(v) for k, v in self.steady_state.items()},
        }


# ---- validation ------------------------------------------------------------------------------
def _check_problem(problem) -> QuadraticProblem:
    if not isinstance(problem, QuadraticProblem):
        raise TypeError(
            f"problem must be a theorylab.problems.QuadraticProblem, got {type(problem).__name__}"
        )
    return problem


def _check_schedule(W_or_schedule, n: int | None = None) -> list[np.ndarray]:
    """A non-empty list of doubly stochastic n x n float64 matrices (dense).

    The one validator of ``theorylab.stochastic`` (:func:`check_schedule`), densified: the exact
    predictions need every W dense.
    """
    mats = check_schedule(W_or_schedule, n=n, stochasticity="doubly", atol=1e-10)
    return [np.asarray(W.toarray() if hasattr(W, "toarray") else W, dtype=np.float64) for W in mats]


def _check_record(record, steps: int) -> np.ndarray:
    if record is None:
        return np.arange(steps + 1)
    rec = np.asarray(record)
    if rec.ndim != 1 or rec.size == 0 or not np.issubdtype(rec.dtype, np.integer):
        raise TheorylabError(f"record must be a non-empty 1-d array of ints, got {record!r}")
    if rec.min() < 0 or rec.max() > steps:
        raise TheorylabError(f"record steps must lie in [0, steps={steps}], got {rec.min()}..")
    if np.any(np.diff(rec) <= 0):
        raise TheorylabError("record must be strictly increasing")
    return rec.astype(np.int64)


def _check_form(form: str) -> str:
    if not isinstance(form, str) or form.lower() not in ("atc", "cta", "awc"):
        raise TheorylabError(f"form must be 'atc' or 'cta' (alias 'awc'), got {form!r}")
    return "cta" if form.lower() in ("cta", "awc") else "atc"


def _check_x0(x0, shape: tuple[int, ...]) -> np.ndarray:
    x0 = np.asarray(x0, dtype=np.float64)
    if x0.shape != shape:
        raise TheorylabError(f"x0 must have shape {shape}, got {x0.shape}")
    if not np.all(np.isfinite(x0)):
        raise TheorylabError("x0 must be finite")
    return x0


# ---- structure -------------------------------------------------------------------------------
def _separable_form(problem: QuadraticProblem):
    """Return H (n, d) and a rotation U with U^T A_i U = diag(H[i]) for all i, else None.

    U is None when the Hessians are already diagonal.
    """
    if problem.hessian_diagonal is not None:
        return problem.hessian_diagonal, None
    n, d = problem.n, problem.d
    coeffs = np.sqrt(np.arange(2, n + 2, dtype=np.float64))  # generic combination
    combo = np.einsum("n,nij->ij", coeffs, problem.A)
    _, U = np.linalg.eigh(0.5 * (combo + combo.T))
    rot = np.einsum("ki,nkl,lj->nij", U, problem.A, U)
    diag = np.diagonal(rot, axis1=1, axis2=2).copy()
    off = rot.copy()
    off[:, np.arange(d), np.arange(d)] = 0.0
    if np.max(np.abs(off)) <= 1e-12 * max(problem.L, 1e-300):
        return diag, U
    return None


# ---- elementwise tables ----------------------------------------------------------------------
def _powers(lam: np.ndarray, t: np.ndarray) -> np.ndarray:
    """lam[None, :] ** t[:, None] for real lam and integer t >= 0.

    Uses exp(t log|lam|) with the sign of odd powers (much faster than pow for large tables).
    """
    t = np.asarray(t)
    mag = np.abs(lam)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        out = np.exp(t[:, None].astype(np.float64) * np.log(mag)[None, :])
    out[:, mag == 0] = (t == 0)[:, None].astype(np.float64)  # 0^0 = 1, 0^t = 0
    neg = lam < 0
    if np.any(neg):
        odd = (t % 2 == 1)[:, None] & neg[None, :]
        out[odd] = -out[odd]
    return out


def _geom(lam: np.ndarray, t: np.ndarray, lt: np.ndarray | None = None) -> np.ndarray:
    """sum_{s<t} lam^s, elementwise for lam (..., m) and integer t broadcast (lt = lam^t)."""
    if lt is None:
        lt = np.power(lam, t)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = (1.0 - lt) / (1.0 - lam)
    near = np.abs(1.0 - lam) < 1e-13
    return np.where(near, t * np.ones_like(lam), out)


# ---- results ---------------------------------------------------------------------------------
class _Acc:
    """Accumulates error / avg_error curves and steady states."""

    def __init__(self, n_rec: int):
        self.err = np.zeros(n_rec)
        self.avg = np.zeros(n_rec)
        self.ss_err = 0.0
        self.ss_avg = 0.0


def _finish(acc, rec, algorithm, form, method) -> ExactPrediction:
    cons = np.maximum(acc.err - acc.avg, 0.0)
    if np.isinf(acc.ss_err) or np.isinf(acc.ss_avg):
        warnings.warn(
            f"{algorithm}: the recursion is unstable (spectral radius >= 1); the steady state "
            "is infinite. Decrease gamma",
            TheorylabWarning,
            stacklevel=3,
        )
        ss = {"error": np.inf, "consensus": np.inf, "avg_error": np.inf}
    else:
        ss = {
            "error": acc.ss_err,
            "consensus": max(acc.ss_err - acc.ss_avg, 0.0),
            "avg_error": acc.ss_avg,
        }
    return ExactPrediction(rec, acc.err, cons, acc.avg, ss, algorithm, form, method)
