"""Gossip averaging declared on the exact engine.

Update rule: ``X_{k+1} = W_k X_k`` (W_k doubly stochastic, ``W_k = W[k mod p]``), deterministic.
Declared per column of X (one block per coordinate): state ``z = x - xbar_0 1``, ``M_k = W_k``,
``c = 0``, ``Q = 0``; ``1`` is a conserved direction (``1^T z_k = 0`` for all k), which the
engine's spectral route keeps instead of treating the eigenvalue 1 as unstable. Outputs
``error = ||z||^2 / n`` and ``avg_error = ||1^T z / n||^2``.

References
----------
Boyd, Ghosh, Prabhakar, Shah, "Randomized gossip algorithms", IEEE TIT 2006; Xiao and Boyd,
"Fast linear iterations for distributed averaging", 2004.
"""

from __future__ import annotations

import warnings

import numpy as np

from theorylab.errors import TheorylabWarning, check_int
from theorylab.exact._common import (
    ExactPrediction,
    _check_record,
    _check_schedule,
    _check_x0,
)
from theorylab.exact.engine import LinearSystem, solve

__all__ = ["exact_gossip", "gossip_system"]


def gossip_system(Ws, Z0) -> LinearSystem:
    """Declare gossip on ``Z0 = X0 - 1 xbar0^T`` (n, d): one block per column."""
    n, d = Z0.shape
    sym = None
    if len(Ws) == 1 and np.allclose(Ws[0], Ws[0].T, atol=1e-14, rtol=0):
        sym = np.ones((d, n))
    Ms = [np.broadcast_to(W, (d, n, n)) for W in Ws]
    cs = [np.zeros((d, n)) for _ in Ws]
    Qs = [0.0 for _ in Ws]
    outputs = {"error": 1.0 / np.sqrt(n), "avg_error": np.full((1, n), 1.0 / n)}
    return LinearSystem.declare(Ms, cs, Qs, Z0.T, outputs, symmetrizer=sym)


def exact_gossip(W_or_schedule, x0, steps: int, record=None) -> ExactPrediction:
    r"""Consensus distance of gossip averaging ``X_{k+1} = W_k X_k`` (deterministic).

    ``consensus_k = (1/n) ||X_k - 1 xbar^T||_F^2``, ``error_k = (1/n) sum_i ||x_i^k - xbar^0||^2``
    and ``avg_error_k = ||xbar^k - xbar^0||^2`` (0 for doubly stochastic W). With a static
    symmetric ``W = sum_j lam_j u_j u_j^T``:
    ``consensus_k = (1/n) sum_{j>=2} lam_j^{2k} ||u_j^T X_0||^2 <= rho^{2k} consensus_0``,
    ``rho = ||W - 11^T/n||_2`` (spectral gap 1 - rho). Exact (tight).

    Parameters
    ----------
    W_or_schedule : doubly stochastic (n, n) array or a list (periodic schedule).
    x0 : array (n, d) or (n,); steps : int >= 0; record : steps to report.

    Example
    -------
    >>> import numpy as np
    >>> W = np.array([[0.5, 0.5], [0.5, 0.5]])
    >>> np.round(exact_gossip(W, np.array([[1.0], [-1.0]]), 2).consensus, 12).tolist()
    [1.0, 0.0, 0.0]
    """
    Ws = _check_schedule(W_or_schedule)
    n = Ws[0].shape[0]
    x0 = np.asarray(x0, dtype=np.float64)
    if x0.ndim == 1:
        x0 = x0[:, None]
    x0 = _check_x0(x0, (n, x0.shape[1] if x0.ndim == 2 else -1))
    steps = check_int("steps", steps, minimum=0)
    rec = _check_record(record, steps)
    xbar0 = x0.mean(axis=0)
    res = solve(gossip_system(Ws, x0 - xbar0), rec, steady=False)
    err, avg = res.curves["error"], res.curves["avg_error"]
    used = "spectral" if res.route == "spectral" else "dense"
    # consensus is the family's notion of convergence: rho(W_p...W_1 - J) < 1
    J = np.full((n, n), 1.0 / n)
    Wp = np.eye(n)
    for Wk in Ws:
        Wp = Wk @ Wp
    converges = np.max(np.abs(np.linalg.eigvals(Wp - J))) < 1.0
    if not converges:
        warnings.warn(
            "gossip does not converge: the period product has rho(W - J) >= 1",
            TheorylabWarning,
            stacklevel=2,
        )
    ss_err = 0.0 if converges else np.inf
    cons = np.maximum(err - avg, 0.0)
    return ExactPrediction(
        rec,
        err,
        cons,
        avg,
        {"error": ss_err, "consensus": ss_err, "avg_error": 0.0},
        "gossip",
        None,
        used,
    )
