"""Decentralized SGD (ATC and CTA, static or periodic W) declared on the exact engine.

Update rules (W_k doubly stochastic, row i = node i's receive weights; the paper's equations):

- ATC (Koloskova et al. 2020):  x_i^{k+1} = sum_j W_ij (x_j^k - gamma g_j(x_j^k))
- CTA / AWC (Lian et al. 2017): x_i^{k+1} = sum_j W_ij x_j^k - gamma g_i(x_i^k)

with ``g_j(x) = A_j (x - b_j) + xi_j``, ``xi_j ~ N(0, (sigma2/d) I)``. In the error
``z = x - x*`` (``c_j = grad f_j(x*)``), per coordinate of a shared Hessian eigenbasis
(``A_j = U diag(h_j) U^T``) the state is the column ``z in R^n`` and the declared system is

- ATC: ``M_k = W_k (I - gamma D)``, ``c_k = -gamma W_k c``, ``Q_k = gamma^2 (sigma2/d) W_k W_k^T``,
  symmetrizer ``sqrt(1 - gamma h)`` (``S^{1/2} W S^{1/2}`` is symmetric for symmetric W);
- CTA: ``M_k = W_k - gamma D``, ``c_k = -gamma c``, ``Q_k = gamma^2 (sigma2/d) I``, symmetric;

outputs ``error = ||z||^2 / n`` (selector ``1/sqrt(n)``) and ``avg_error = ||1^T z / n||^2``
(selector ``1^T/n``); ``consensus = error - avg_error``. Without a shared eigenbasis the state is
the whole ``(n d)`` vector with ``W kron I_d`` and the block-diagonal Hessian (``method='dense'``).

References
----------
Lian et al., NeurIPS 2017, arXiv 1705.09056; Koloskova et al., ICML 2020, arXiv 2003.10422;
Yuan, Alghunaim, Ying, Sayed, IEEE TSP 2020, arXiv 1903.10956; rates.md §3e.
"""

from __future__ import annotations

import numpy as np

from theorylab.errors import TheorylabError, check_int, check_positive
from theorylab.exact._common import (
    ExactPrediction,
    _Acc,
    _check_form,
    _check_problem,
    _check_record,
    _check_schedule,
    _check_x0,
    _finish,
    _separable_form,
)
from theorylab.exact.engine import LinearSystem, solve
from theorylab.problems import QuadraticProblem

__all__ = ["exact_dsgd", "steady_state_dsgd", "dsgd_system"]

_METHODS = ("auto", "spectral", "blockwise", "dense")


def dsgd_system(Ws, H, grads, Z0, gamma: float, s2: float, form: str) -> LinearSystem:
    """Declare DSGD per coordinate: ``H``, ``grads``, ``Z0`` are (n, d) (Hessian eigenvalues,
    ``grad f_j(x*)`` and ``x_0 - x*`` in the shared eigenbasis); one block per coordinate."""
    n = H.shape[0]
    Ms, cs, Qs = [], [], []
    for W in Ws:
        if form == "atc":
            Ms.append(W[None, :, :] * (1.0 - gamma * H.T)[:, None, :])  # W (I - gamma D)
            cs.append(-gamma * grads.T @ W.T)  # -gamma W c
            Qs.append(gamma**2 * s2 * (W @ W.T))
        else:
            M = np.broadcast_to(W, (H.shape[1], n, n)).copy()
            M[:, np.arange(n), np.arange(n)] -= gamma * H.T  # W - gamma D
            Ms.append(M)
            cs.append(-gamma * grads.T)
            Qs.append(gamma**2 * s2)
    sym = None
    if len(Ws) == 1 and np.allclose(Ws[0], Ws[0].T, atol=1e-14, rtol=0):
        S = 1.0 - gamma * H.T
        sym = np.sqrt(np.maximum(S, 0.0)) if form == "atc" else np.ones_like(S)
    outputs = {"error": 1.0 / np.sqrt(n), "avg_error": np.full((1, n), 1.0 / n)}
    return LinearSystem.declare(Ms, cs, Qs, Z0.T, outputs, symmetrizer=sym)


def _dense_system(problem, Ws, Z0, gamma, s2, form) -> LinearSystem:
    n, d = problem.n, problem.d
    Ds = np.zeros((n * d, n * d))
    for i in range(n):
        Ds[i * d : (i + 1) * d, i * d : (i + 1) * d] = problem.A[i]
    g = problem.grad_star.ravel()
    Ms, cs, Qs = [], [], []
    for W in Ws:
        Wk = np.kron(W, np.eye(d))
        if form == "atc":
            Ms.append(Wk @ (np.eye(n * d) - gamma * Ds))
            cs.append(-gamma * (Wk @ g))
            Qs.append(gamma**2 * s2 * (Wk @ Wk.T))
        else:
            Ms.append(Wk - gamma * Ds)
            cs.append(-gamma * g)
            Qs.append(gamma**2 * s2)
    outputs = {"error": 1.0 / np.sqrt(n), "avg_error": np.kron(np.ones((1, n)) / n, np.eye(d))}
    return LinearSystem.declare(Ms, cs, Qs, Z0.ravel(), outputs)


def _dsgd_core(problem, Ws, gamma, x0, form, rec, method, steady=True):
    s2 = problem.sigma2 / problem.d
    Z0 = x0 - problem.x_star[None, :]
    sep = _separable_form(problem) if method != "dense" else None
    if method in ("spectral", "blockwise") and sep is None:
        raise TheorylabError(
            f"method={method!r} needs coordinate-separable Hessians (diagonal, shared or "
            "commuting); use method='dense' or 'auto'"
        )
    static_sym = len(Ws) == 1 and np.allclose(Ws[0], Ws[0].T, atol=1e-14, rtol=0)
    if method == "spectral" and not static_sym:
        raise TheorylabError(
            "method='spectral' needs a single symmetric W; use 'blockwise' for schedules"
        )
    if sep is None:
        system = _dense_system(problem, Ws, Z0, gamma, s2, form)
        res = solve(system, rec, route="stepped", steady=steady)
        used = "dense"
    else:
        H, U = sep
        Gs = problem.grad_star
        if U is not None:
            Z0, Gs = Z0 @ U, Gs @ U
        system = dsgd_system(Ws, H, Gs, Z0, gamma, s2, form)
        try_spectral = static_sym and method in ("auto", "spectral")
        res = solve(system, rec, route="auto" if try_spectral else "stepped", steady=steady)
        if not try_spectral:
            used = "blockwise"
        elif res.route == "spectral":
            used = "spectral"
        else:
            if method == "spectral":
                raise TheorylabError(
                    "method='spectral' needs gamma * h < 1 (ATC) and a stable recursion; "
                    "use method='blockwise'"
                )
            used = "spectral+blockwise"
    acc = _Acc(rec.size)
    acc.err, acc.avg = res.curves["error"], res.curves["avg_error"]
    acc.ss_err, acc.ss_avg = res.steady["error"], res.steady["avg_error"]
    return acc, used


# ---- public API ------------------------------------------------------------------------------
def exact_dsgd(
    problem: QuadraticProblem,
    W_or_schedule,
    gamma: float,
    steps: int,
    x0,
    form: str = "atc",
    record=None,
    method: str = "auto",
) -> ExactPrediction:
    r"""Exact expected error, consensus distance and average-iterate error of DSGD.

    The math (ATC): ``X_{k+1} = W_k (X_k - gamma G_k)``; (CTA): ``X_{k+1} = W_k X_k - gamma
    G_k``, with ``G_k`` the stacked stochastic gradients ``A_i (x_i - b_i) + xi_i``,
    ``xi_i ~ N(0, (sigma2/d) I)``; ``W_k = W_or_schedule[k mod p]``. In the error
    ``z = x - x*``: ATC ``B = W (I - gamma A)``, drift ``u = -gamma W grad f(x*)``, noise
    covariance ``gamma^2 (sigma2/d) W W^T``; CTA ``B = W - gamma A``, ``u = -gamma grad f(x*)``,
    noise ``gamma^2 (sigma2/d) I`` (Kronecker with I_d understood). Guarantee: **exact** (tight)
    expectations, up to floating point.

    Parameters
    ----------
    problem : QuadraticProblem
    W_or_schedule : (n, n) doubly stochastic array, or a list of them (periodic schedule).
    gamma : float > 0, step size.
    steps : int >= 0, last step to predict.
    x0 : array (n, d), deterministic initial iterates (same for every replica).
    form : 'atc' (adapt-then-combine) or 'cta' (combine-then-adapt, alias 'awc').
    record : increasing ints in [0, steps], steps to report (default all 0..steps).
    method : 'auto' | 'spectral' | 'blockwise' | 'dense' (see the module docstring).

    Returns
    -------
    ExactPrediction
        With ``steady_state`` the limit (cyclostationary at phase 0 for a schedule); inf with a
        TheorylabWarning when the recursion is unstable.

    Raises
    ------
    TheorylabError, TypeError
        Bad shapes, W not doubly stochastic, gamma <= 0, unknown form/method.

    Example
    -------
    >>> import numpy as np
    >>> from theorylab.problems import heterogeneous_quadratic
    >>> p = heterogeneous_quadratic(4, 2, L=1.0, mu=0.5, zeta2=1.0, sigma2=0.5, seed=0)
    >>> W = np.full((4, 4), 0.25)
    >>> pred = exact_dsgd(p, W, 0.1, 50, np.zeros((4, 2)))
    >>> bool(pred.consensus[-1] < 1e-2)
    True

    References
    ----------
    Lian et al., NeurIPS 2017, arXiv 1705.09056 (CTA/AWC form); Koloskova et al., ICML 2020,
    arXiv 2003.10422 (ATC form); Yuan et al., IEEE TSP 2020, arXiv 1903.10956.
    """
    problem = _check_problem(problem)
    Ws = _check_schedule(W_or_schedule, problem.n)
    gamma = check_positive("gamma", gamma)
    steps = check_int("steps", steps, minimum=0)
    x0 = _check_x0(x0, (problem.n, problem.d))
    form = _check_form(form)
    rec = _check_record(record, steps)
    if method not in _METHODS:
        raise TheorylabError(f"method must be one of {_METHODS}, got {method!r}")
    acc, used = _dsgd_core(problem, Ws, gamma, x0, form, rec, method)
    return _finish(acc, rec, "dsgd", form, used)


def steady_state_dsgd(
    problem: QuadraticProblem,
    W_or_schedule,
    gamma: float,
    form: str = "atc",
    method: str = "auto",
) -> dict:
    r"""Exact steady state of constant-step DSGD: {'error', 'consensus', 'avg_error'}.

    Solves the discrete Lyapunov equation ``P = B P B^T + Q`` and ``m = B m + u`` (see
    :func:`exact_dsgd` for B, u, Q); independent of x0. For a periodic schedule it is the
    cyclostationary value at steps ``k = 0 mod p``. Exact (tight).

    Example
    -------
    >>> import numpy as np
    >>> from theorylab.problems import QuadraticProblem
    >>> p = QuadraticProblem(np.ones((2, 1)), np.zeros((2, 1)), sigma2=1.0)
    >>> ss = steady_state_dsgd(p, np.full((2, 2), 0.5), 0.1)
    >>> round(ss['avg_error'], 10) == round(0.1 * 1.0 / (2 * 1.0 * (2 - 0.1)), 10)
    True
    """
    problem = _check_problem(problem)
    pred = exact_dsgd(
        problem,
        W_or_schedule,
        gamma,
        0,
        np.tile(problem.x_star, (problem.n, 1)),
        form=form,
        method=method,
    )
    return dict(pred.steady_state)
