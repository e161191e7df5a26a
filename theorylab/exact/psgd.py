"""Parallel (minibatch) SGD declared on the exact engine.

Update rule (one model, all n nodes' stochastic gradients averaged every step)::

    x_{k+1} = x_k - gamma (1/n) sum_i g_i(x_k),     g_i(x) = A_i (x - b_i) + xi_i,

``xi_i ~ N(0, (sigma2/d) I)``. In the error ``z = x - x*`` (``sum_i grad f_i(x*) = 0``) the
declared system is one block of size d: ``M = I - gamma Abar`` (symmetric),
``c = 0``, ``Q = gamma^2 sigma2/(n d) I``, output ``error = ||z||^2``.

References
----------
Dekel et al., JMLR 2012 (minibatch SGD); shared/references/rates.md §1 (PSGD exact).
"""

from __future__ import annotations

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

__all__ = ["exact_psgd", "psgd_system"]


def psgd_system(problem: QuadraticProblem, gamma: float, x0) -> LinearSystem:
    """Declare PSGD: ``z' = (I - gamma Abar) z - gamma xibar``, ``Cov(xibar) = sigma2/(n d) I``."""
    d = problem.d
    M = np.eye(d) - gamma * problem.mean_hessian
    q = gamma**2 * problem.sigma2 / (problem.n * d)
    return LinearSystem.declare(
        M, np.zeros(d), q, x0 - problem.x_star, {"error": 1.0}, symmetrizer=np.ones(d)
    )


def exact_psgd(
    problem: QuadraticProblem, gamma: float, n_steps: int, x0, record=None
) -> ExactPrediction:
    r"""Exact E||x_k - x*||^2 of parallel (minibatch) SGD on a quadratic.

    The math: ``x_{k+1} = x_k - gamma (1/n) sum_i g_i(x_k)``, i.e.
    ``z_{k+1} = (I - gamma Abar) z_k - gamma xibar_k``, ``Cov(xibar) = sigma2/(n d) I``. In the
    eigenbasis of ``Abar = U diag(h) U^T``:
    ``E||z_k||^2 = sum_j (1 - gamma h_j)^{2k} zhat_j^2
    + gamma^2 sigma2/(n d) sum_j (1 - (1 - gamma h_j)^{2k}) / (1 - (1 - gamma h_j)^2)``.
    For ``Abar = h I`` the floor is ``gamma sigma2 / (n h (2 - gamma h))`` (rates.md §1).
    Exact (tight). ``consensus`` is 0 (one model).

    Parameters
    ----------
    problem : QuadraticProblem; gamma : float > 0; n_steps : int >= 0;
    x0 : array (d,), deterministic start; record : steps to report (default all).

    Example
    -------
    >>> import numpy as np
    >>> from theorylab.problems import QuadraticProblem
    >>> p = QuadraticProblem(np.ones((4, 1)), np.zeros((4, 1)), sigma2=2.0)
    >>> pred = exact_psgd(p, 0.1, 1000, np.zeros(1))
    >>> bool(np.isclose(pred.steady_state['error'], 0.1 * 2.0 / (4 * 1.0 * 1.9)))
    True
    """
    problem = _check_problem(problem)
    gamma = check_positive("gamma", gamma)
    n_steps = check_int("n_steps", n_steps, minimum=0)
    x0 = _check_x0(x0, (problem.d,))
    rec = _check_record(record, n_steps)
    res = solve(psgd_system(problem, gamma, x0), rec)
    acc = _Acc(rec.size)
    acc.err, acc.avg = res.curves["error"], res.curves["error"] * 1.0
    acc.ss_err = acc.ss_avg = res.steady["error"]
    return _finish(acc, rec, "psgd", None, "closed-form")
