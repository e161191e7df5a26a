"""Stochastic gradient push (push-sum SGD) on directed graphs, declared on the exact engine.

Update rule (Nedic and Olshevsky 2016; Assran et al. 2019, SGP), column-stochastic
``P_k = P[k mod p]`` (``P_ij`` the share node j sends to i, ``1^T P = 1^T``), weights ``w^0 = 1``::

    x_i^{k+1/2} = x_i^k - gamma g_i(z_i^k),      g_i(z) = A_i (z - b_i) + xi_i
    x^{k+1} = P_k x^{k+1/2},   w^{k+1} = P_k w^k,   z^{k+1} = x^{k+1} / w^{k+1}

The ratio ``z = x / w`` is nonlinear in general, but here ``w`` carries no noise: ``w^k = P_{k-1}
... P_0 1`` is a deterministic sequence, so ``z`` is a *time-varying linear* function of ``x`` and
the system in the de-biased error ``e = z - x*`` is exact::

    e^{k+1} = A_k (e^k - gamma W_k^{-1} (D e^k + c + xi^k)),   A_k = W_{k+1}^{-1} P_k W_k,

``W_k = diag(w^k)`` (``A_k`` is row-stochastic). The curves use one phase per step; the steady
state is that of the limit system, ``w^k -> w_inf`` (for a periodic schedule the limit orbit of
``w``, phase 0 at ``n`` times the Perron vector of the period product), which the curve
approaches geometrically. With a doubly stochastic P, ``w = 1`` and SGP is DSGD (ATC).

References
----------
Nedic, Olshevsky, "Stochastic gradient-push for strongly convex functions on time-varying
directed graphs", IEEE TAC 2016, arXiv 1406.2075; Assran, Loizou, Ballas, Rabbat, "Stochastic
gradient push for distributed deep learning", ICML 2019, arXiv 1811.10792; Kempe, Dobra, Gehrke,
"Gossip-based computation of aggregate information", FOCS 2003 (push-sum).
"""

from __future__ import annotations

import numpy as np

from theorylab.errors import TheorylabError, check_int, check_positive
from theorylab.exact._common import ExactPrediction, _check_problem, _check_record, _check_x0
from theorylab.exact._nodes import declare_nodes, node_blocks, prediction
from theorylab.exact.engine import EngineResult, solve
from theorylab.problems import QuadraticProblem

__all__ = ["exact_push_sum_sgd", "push_sum_weights"]


def _check_column_stochastic(P_or_schedule, n: int) -> list[np.ndarray]:
    mats = [P_or_schedule] if np.ndim(P_or_schedule) == 2 else list(P_or_schedule)
    if not mats:
        raise TheorylabError("the schedule of push matrices is empty")
    out = []
    for t, P in enumerate(mats):
        P = np.asarray(P, dtype=np.float64)
        if P.shape != (n, n):
            raise TheorylabError(f"P[{t}] must be {n} x {n}, got shape {P.shape}")
        if not np.all(np.isfinite(P)) or np.any(P < 0):
            raise TheorylabError(f"P[{t}] must be finite and nonnegative")
        off = np.abs(P.sum(axis=0) - 1).max()
        if off > 1e-10:
            raise TheorylabError(
                f"P[{t}] must be column stochastic (columns sum to 1, P_ij = share that j "
                f"sends to i); column sums are off by {off:.2g}"
            )
        out.append(P)
    return out


def push_sum_weights(Ps, steps: int) -> np.ndarray:
    """``w^0 .. w^steps`` (rows) for ``w^0 = 1``, ``w^{k+1} = P_k w^k``."""
    n = Ps[0].shape[0]
    w = np.ones((steps + 1, n))
    for k in range(steps):
        w[k + 1] = Ps[k % len(Ps)] @ w[k]
    return w


def _limit_orbit(Ps) -> np.ndarray:
    """The limit orbit of ``w`` over one period (phase 0 = n times the Perron vector)."""
    n, p = Ps[0].shape[0], len(Ps)
    prod = np.eye(n)
    for P in Ps:
        prod = P @ prod
    lam, V = np.linalg.eig(prod)
    v = np.abs(np.real(V[:, np.argmax(np.real(lam))]))
    w = [n * v / v.sum()]
    for t in range(p - 1):
        w.append(Ps[t] @ w[-1])
    return np.array(w + [Ps[p - 1] @ w[-1]])


def _system(problem, Ps, w, gamma, x0, phases):
    """Phases t = 0..len-1 use P[t mod p] and the weights w[t], w[t+1]."""
    n, s = problem.n, np.sqrt(problem.sigma2 / problem.d)
    blocks = node_blocks(problem, x0 - problem.x_star[None, :])

    def build(blk):
        out = []
        for t in range(phases):
            A = np.diag(1.0 / w[t + 1]) @ Ps[t % len(Ps)] @ np.diag(w[t])
            Al, Winv = blk.lift(A), blk.lift(np.diag(1.0 / w[t]))
            out.append((Al @ (np.eye(blk.m) - gamma * Winv @ blk.D), -gamma * Al @ Winv @ blk.c,
                        -gamma * s * Al @ Winv))  # fmt: skip
        return out, blk.z0, None

    return declare_nodes(blocks, build, n, 1)


def exact_push_sum_sgd(
    problem: QuadraticProblem, P_or_schedule, gamma: float, steps: int, x0, record=None
) -> ExactPrediction:
    r"""Exact expected error of the de-biased iterates ``z = x / w`` of stochastic gradient push.

    The math (see the module): ``x^{k+1} = P_k (x^k - gamma g(z^k))``, ``w^{k+1} = P_k w^k``,
    ``z = x / w``, ``w^0 = 1``; exact because ``w`` is deterministic (the ratio is then a known
    time-varying linear map). Guarantee: **exact** expectations at every step; the steady state
    is that of the limit system (``w`` at its limit orbit).

    Parameters
    ----------
    problem : QuadraticProblem
    P_or_schedule : (n, n) column-stochastic array or a list (periodic schedule).
    gamma : float > 0; steps : int >= 0; x0 : array (n, d); record : steps (default all).

    Returns
    -------
    ExactPrediction (``algorithm='push_sum'``) for ``z``.

    Example
    -------
    >>> import numpy as np
    >>> from theorylab.problems import heterogeneous_quadratic
    >>> p = heterogeneous_quadratic(3, 2, sigma2=0.5, seed=0)
    >>> P = np.array([[0.5, 0.0, 0.5], [0.5, 0.5, 0.0], [0.0, 0.5, 0.5]])  # directed ring
    >>> pred = exact_push_sum_sgd(p, P, 0.1, 20, np.zeros((3, 2)))
    >>> bool(np.isfinite(pred.steady_state["error"]))
    True

    References
    ----------
    Nedic, Olshevsky, IEEE TAC 2016, arXiv 1406.2075; Assran et al., ICML 2019,
    arXiv 1811.10792.
    """
    problem = _check_problem(problem)
    Ps = _check_column_stochastic(P_or_schedule, problem.n)
    gamma = check_positive("gamma", gamma)
    steps = check_int("steps", steps, minimum=0)
    x0 = _check_x0(x0, (problem.n, problem.d))
    rec = _check_record(record, steps)
    w = push_sum_weights(Ps, max(steps, 1))
    res = solve(_system(problem, Ps, w, gamma, x0, max(steps, 1)), rec, steady=False)
    orbit = _limit_orbit(Ps)
    lim = solve(_system(problem, Ps, orbit, gamma, x0, len(Ps)), np.array([0]))
    out = EngineResult(res.curves, lim.steady, res.routes)
    return prediction(out, rec, "push_sum", None, "stepped")
