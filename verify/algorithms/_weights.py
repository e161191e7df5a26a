"""Checks of the communicator's weights and step sizes shared by the tracking-family algorithms.

Private to :mod:`verify.algorithms`: gradient tracking and exact diffusion need doubly stochastic
receive weights (rows *and* columns sum to 1), push-sum needs column-stochastic push weights;
both errors name the swapped orientation when that is what was given
(:func:`theorylab.directed.check_row_stochastic` / ``check_column_stochastic``). Step-size
conditions are warnings (:class:`theorylab.errors.TheorylabWarning`) naming the condition.
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.sparse as sp

from theorylab.directed import (
    check_column_stochastic,
    check_row_stochastic,
    check_strongly_connected,
)
from theorylab.errors import TheorylabError, TheorylabWarning


def require_doubly_stochastic(schedule, who: str, atol: float = 1e-10) -> None:
    """Raise unless every matrix of ``schedule`` is doubly stochastic (nonnegative)."""
    for k, W in enumerate(schedule):
        try:
            W = check_row_stochastic(W, atol=atol)
        except TheorylabError as exc:
            raise TheorylabError(f"{who}: schedule[{k}]: {exc}") from None
        sums = np.asarray(W.sum(axis=0)).ravel()
        if np.abs(sums - 1).max() > atol:
            j = int(np.argmax(np.abs(sums - 1)))
            raise TheorylabError(
                f"{who}: schedule[{k}] is row-stochastic but column {j} sums to "
                f"{float(sums[j])!r}; {who} needs a doubly "
                "stochastic W (1^T W = 1^T keeps the average it tracks). Use Metropolis weights "
                "on an undirected graph, or push-sum on a directed one"
            )


def require_column_stochastic(schedule, who: str, atol: float = 1e-10) -> None:
    """Raise unless every matrix of ``schedule`` is column-stochastic (nonnegative) and the
    union of one period's supports is strongly connected (else some node's mass never reaches
    some other node and push-sum cannot average)."""
    union = None
    for k, P in enumerate(schedule):
        try:
            P = check_column_stochastic(P, atol=atol)
        except TheorylabError as exc:
            raise TheorylabError(f"{who}: schedule[{k}]: {exc}") from None
        support = abs(sp.csr_array(P)) if sp.issparse(P) else np.abs(P)
        union = support if union is None else union + support
    try:
        check_strongly_connected(union)
    except TheorylabError as exc:
        raise TheorylabError(f"{who}: the schedule's union graph: {exc}") from None


def warn_step(who: str, gamma: float, condition: str) -> None:
    """The step-size warning: ``gamma`` violates ``condition``."""
    warnings.warn(
        f"{who}: gamma={gamma:g} violates the step-size condition {condition}; the iterates may "
        "diverge or the cited guarantee does not apply. Decrease gamma",
        TheorylabWarning,
        stacklevel=4,
    )


def min_eigenvalue(W) -> float:
    """Smallest real part of the eigenvalues of ``W`` (dense for n <= 2000, else Lanczos)."""
    n = W.shape[0]
    if n <= 2000 or not sp.issparse(W):
        Wd = W.toarray() if sp.issparse(W) else np.asarray(W)
        return float(np.min(np.linalg.eigvals(Wd).real))
    from scipy.sparse.linalg import eigsh

    Ws = 0.5 * (W + W.T)
    return float(eigsh(Ws, k=1, which="SA", return_eigenvectors=False, tol=1e-6)[0])
