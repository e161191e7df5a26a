"""Fixed-delay SGD declared on the exact engine, and its exact stability limit.

Update rule (every applied gradient exactly ``tau`` steps old; the n workers' stochastic
gradients averaged, as in synchronous PSGD)::

    x_{k+1} = x_k - gamma (1/n) sum_i g_i(x_{k - tau}),    x_{-tau} = ... = x_{-1} = x_0,

``g_i(x) = A_i (x - b_i) + xi_i``, ``xi_i ~ N(0, (sigma2/d) I)``. Only ``Abar = mean_i A_i``
matters (``sum_i grad f_i(x*) = 0``), so in its eigenbasis (eigenvalues ``h``) each coordinate is
a block with the augmented state ``(z_k, z_{k-1}, ..., z_{k-tau})`` (``z = x - x*``), the companion
matrix of ``lambda^{tau+1} - lambda^tau + gamma h = 0`` and noise ``gamma^2 sigma2/(n d)`` on the
first entry. ``tau = 0`` is PSGD.

Stability: the recursion ``z_{k+1} = z_k - a z_{k-tau}`` is asymptotically stable iff
``0 < a < 2 sin(pi / (2 (2 tau + 1)))`` (the classical bound for this delay-difference equation;
at the limit a root crosses the unit circle at ``lambda = e^{i theta}``, ``theta =
pi/(2 tau + 1)``). Hence ``gamma_max(tau) = 2 sin(pi / (2 (2 tau + 1))) / h_max``; tested against
a bisection on the companion matrices' spectral radius.

References
----------
Levitt, "Stability of a class of difference equations" / the root-locus of
``lambda^{tau+1} - lambda^tau + a`` (e.g. Kuruklis, J. Math. Anal. Appl. 1994, "The asymptotic
stability of x_{n+1} - a x_n + b x_{n-k} = 0"); Arjevani, Shamir, Srebro, "A tight convergence
analysis for stochastic gradient descent with delayed updates", ALT 2020, arXiv 1806.10188
(delayed SGD on quadratics).
"""

from __future__ import annotations

import math

import numpy as np

from theorylab.errors import check_int, check_positive
from theorylab.exact._common import (
    ExactPrediction,
    _Acc,
    _check_problem,
    _check_record,
    _check_x0,
    _finish,
)
from theorylab.exact.engine import LinearSystem, solve
from theorylab.problems import QuadraticProblem

__all__ = [
    "exact_delayed_sgd",
    "delayed_sgd_system",
    "delayed_sgd_stability_limit",
    "delay_companion",
]


def delay_companion(a: float, tau: int) -> np.ndarray:
    """Companion matrix of ``z_{k+1} = z_k - a z_{k-tau}`` on ``(z_k, ..., z_{k-tau})``."""
    M = np.zeros((tau + 1, tau + 1))
    M[0, 0] = 1.0
    M[0, tau] -= a
    M[np.arange(1, tau + 1), np.arange(tau)] = 1.0
    return M


def delayed_sgd_stability_limit(h_max: float, tau: int) -> float:
    r"""Largest stable step ``gamma_max = 2 sin(pi/(2(2 tau + 1))) / h_max`` (exclusive).

    The math: all roots of ``lambda^{tau+1} - lambda^tau + gamma h`` lie in the open unit disc
    for every Hessian eigenvalue ``h in (0, h_max]`` iff ``gamma h_max < 2 sin(pi/(2(2tau+1)))``
    (``tau = 0``: ``2/h_max``; ``tau = 1``: ``1/h_max``). Exact (tight).

    Example
    -------
    >>> delayed_sgd_stability_limit(1.0, 0), round(delayed_sgd_stability_limit(1.0, 1), 12)
    (2.0, 1.0)
    """
    h_max = check_positive("h_max", h_max)
    tau = check_int("tau", tau, minimum=0)
    return 2.0 * math.sin(math.pi / (2.0 * (2 * tau + 1))) / h_max


def delayed_sgd_system(problem: QuadraticProblem, gamma: float, tau: int, x0) -> LinearSystem:
    """Declare fixed-delay SGD: one block per eigen-coordinate of ``Abar``, state size tau+1."""
    h, U = np.linalg.eigh(problem.mean_hessian)
    z0 = U.T @ (x0 - problem.x_star)
    d, N = problem.d, tau + 1
    M = np.stack([delay_companion(gamma * hk, tau) for hk in h])
    Q = np.zeros((N, N))
    Q[0, 0] = gamma**2 * problem.sigma2 / (problem.n * d)
    m0 = np.repeat(z0[:, None], N, axis=1)
    sel = np.zeros((1, N))
    sel[0, 0] = 1.0
    return LinearSystem.declare(M, np.zeros((d, N)), Q, m0, {"error": sel})


def exact_delayed_sgd(
    problem: QuadraticProblem, gamma: float, tau: int, n_steps: int, x0, record=None
) -> ExactPrediction:
    r"""Exact E||x_k - x*||^2 of fixed-delay SGD (see the module).

    The math: ``x_{k+1} = x_k - gamma (1/n) sum_i g_i(x_{k-tau})`` with ``x_{-j} = x_0``;
    augmented state of the ``tau`` delayed iterates per eigen-coordinate of ``Abar``.
    Guarantee: **exact** (tight) expectations; ``tau = 0`` is :func:`exact_psgd` (tested);
    the steady state is inf (with a TheorylabWarning) at or above
    :func:`delayed_sgd_stability_limit`.

    Parameters
    ----------
    problem : QuadraticProblem; gamma : float > 0; tau : int >= 0; n_steps : int >= 0;
    x0 : array (d,); record : increasing ints in [0, n_steps] (default all).

    Returns
    -------
    ExactPrediction (``algorithm='delayed_sgd'``, ``consensus = 0``).

    Example
    -------
    >>> import numpy as np
    >>> from theorylab.problems import QuadraticProblem
    >>> p = QuadraticProblem(np.ones((2, 1)), np.zeros((2, 1)), sigma2=1.0)
    >>> pred = exact_delayed_sgd(p, 0.1, 1, 5, np.ones(1))
    >>> [round(float(v), 6) for v in pred.error[:3]]  # x1 = 0.9 x0 + xi0, x2 = x1 - 0.1 x0 + xi1
    [1.0, 0.815, 0.65]

    References
    ----------
    Arjevani, Shamir, Srebro, ALT 2020, arXiv 1806.10188.
    """
    problem = _check_problem(problem)
    gamma = check_positive("gamma", gamma)
    tau = check_int("tau", tau, minimum=0)
    n_steps = check_int("n_steps", n_steps, minimum=0)
    x0 = _check_x0(x0, (problem.d,))
    rec = _check_record(record, n_steps)
    res = solve(delayed_sgd_system(problem, gamma, tau, x0), rec)
    acc = _Acc(rec.size)
    acc.err, acc.avg = res.curves["error"], res.curves["error"] * 1.0
    acc.ss_err = acc.ss_avg = res.steady["error"]
    return _finish(acc, rec, "delayed_sgd", None, res.route)
