"""Gradient tracking (ATC and CTA) and exact diffusion / D^2, declared on the exact engine.

Update rules (W doubly stochastic, ``W_k = W[k mod p]``; ``g_i(x) = A_i (x - b_i) + xi_i``,
``xi_i ~ N(0, (sigma2/d) I)`` drawn fresh at every evaluation; stacked over nodes):

- Gradient tracking, ATC (Nedic, Olshevsky, Shi 2017; Qu and Li 2018)::

      x^{k+1} = W_k (x^k - gamma y^k),     y^{k+1} = W_k (y^k + g^{k+1} - g^k),    y^0 = g^0

- Gradient tracking, CTA (DIGing, Nedic, Olshevsky, Shi 2017)::

      x^{k+1} = W_k x^k - gamma y^k,       y^{k+1} = W_k y^k + g^{k+1} - g^k,      y^0 = g^0

  with ``g^k = g(x^k)`` one stochastic gradient per node and step (used in two updates). The
  state is ``(x - x*, y, g)``: ``g`` is stored because its noise enters ``y`` twice. Conserved
  direction: ``sum_i (y_i - g_i)`` (``1^T W = 1^T``), zero at ``y^0 = g^0`` and never excited.

- Exact diffusion (Yuan, Ying, Zhao, Sayed 2019, Part I; equivalent to D^2, Tang et al. 2018),
  with ``Wbar = (I + W)/2``::

      psi^{k+1} = x^k - gamma g(x^k)
      phi^{k+1} = psi^{k+1} + x^k - psi^k
      x^{k+1}   = Wbar_k phi^{k+1},          psi^0 = x^0

  State ``(x - x*, psi - x*)``; conserved direction ``sum_i (x_i - psi_i)`` (zero at
  ``psi^0 = x^0``).

With ``sigma2 = 0`` both converge to ``x*`` exactly on heterogeneous data (no ``zeta2`` floor;
tested), unlike DSGD. The engine keeps the conserved direction and solves the steady state in
its complement (a plain Lyapunov solve is singular there).

References
----------
Nedic, Olshevsky, Shi, "Achieving geometric convergence for distributed optimization over
time-varying graphs", SIAM J. Optim. 2017, arXiv 1607.03218; Qu, Li, "Harnessing smoothness to
accelerate distributed optimization", IEEE TCNS 2018, arXiv 1605.07112; Yuan, Ying, Zhao, Sayed,
"Exact diffusion for distributed optimization and learning - Part I", IEEE TSP 2019,
arXiv 1702.05122; Tang, Lian, Yan, Zhang, Liu, "D^2", ICML 2018, arXiv 1803.07068.
"""

from __future__ import annotations

import numpy as np

from theorylab.errors import check_int, check_positive
from theorylab.exact._common import (
    ExactPrediction,
    _check_form,
    _check_problem,
    _check_record,
    _check_schedule,
    _check_x0,
)
from theorylab.exact._nodes import declare_nodes, node_blocks, prediction
from theorylab.exact.engine import LinearSystem, solve
from theorylab.problems import QuadraticProblem

__all__ = [
    "exact_gradient_tracking",
    "exact_diffusion",
    "gradient_tracking_system",
    "exact_diffusion_system",
]


def gradient_tracking_system(
    problem: QuadraticProblem, Ws, gamma: float, x0, form: str = "atc"
) -> LinearSystem:
    """Declare gradient tracking (state ``(x - x*, y, g)`` per block; see the module)."""
    n, s = problem.n, np.sqrt(problem.sigma2 / problem.d)
    blocks = node_blocks(problem, x0 - problem.x_star[None, :])

    def build(blk):
        m, D, c, I = blk.m, blk.D, blk.c, np.eye(blk.m)
        O = np.zeros((m, m))
        phases = []
        for W in Ws:
            Wl = blk.lift(W)
            if form == "atc":
                WDW = Wl @ D @ Wl
                M = np.block([[Wl, -gamma * Wl, O], [WDW, Wl - gamma * WDW, -Wl],
                              [D @ Wl, -gamma * D @ Wl, O]])  # fmt: skip
                cc = np.concatenate([np.zeros(m), Wl @ c, c])
                G = s * np.vstack([O, Wl, I])
            else:
                M = np.block([[Wl, -gamma * I, O], [D @ Wl, Wl - gamma * D, -I],
                              [D @ Wl, -gamma * D, O]])  # fmt: skip
                cc = np.concatenate([np.zeros(m), c, c])
                G = s * np.vstack([O, I, I])
            phases.append((M, cc, G))
        g0 = D @ blk.z0 + c
        m0 = np.concatenate([blk.z0, g0, g0])
        S0 = np.zeros((3 * m, 3 * m))
        S0[m:, m:] = s * s * np.kron(np.ones((2, 2)), I)  # y^0 = g^0: the same noise
        return phases, m0, S0

    return declare_nodes(blocks, build, n, 3)


def exact_diffusion_system(problem: QuadraticProblem, Ws, gamma: float, x0) -> LinearSystem:
    """Declare exact diffusion (state ``(x - x*, psi - x*)`` per block; see the module)."""
    n, s = problem.n, np.sqrt(problem.sigma2 / problem.d)
    blocks = node_blocks(problem, x0 - problem.x_star[None, :])

    def build(blk):
        D, c, I = blk.D, blk.c, np.eye(blk.m)
        phases = []
        for W in Ws:
            Wb = blk.lift(0.5 * (np.eye(n) + W))
            S = I - gamma * D
            M = np.block([[Wb @ (S + I), -Wb], [S, np.zeros_like(S)]])
            cc = np.concatenate([-gamma * Wb @ c, -gamma * c])
            G = -gamma * s * np.vstack([Wb, I])
            phases.append((M, cc, G))
        return phases, np.concatenate([blk.z0, blk.z0]), None

    return declare_nodes(blocks, build, n, 2)


def _common(problem, W_or_schedule, gamma, steps, x0, record):
    problem = _check_problem(problem)
    Ws = _check_schedule(W_or_schedule, problem.n)
    gamma = check_positive("gamma", gamma)
    steps = check_int("steps", steps, minimum=0)
    x0 = _check_x0(x0, (problem.n, problem.d))
    return problem, Ws, gamma, x0, _check_record(record, steps)


def exact_gradient_tracking(
    problem: QuadraticProblem,
    W_or_schedule,
    gamma: float,
    steps: int,
    x0,
    form: str = "atc",
    record=None,
) -> ExactPrediction:
    r"""Exact expected error, consensus and average error of gradient tracking.

    The math (ATC): ``x^{k+1} = W_k (x^k - gamma y^k)``, ``y^{k+1} = W_k (y^k + g^{k+1} - g^k)``;
    (CTA/DIGing): ``x^{k+1} = W_k x^k - gamma y^k``, ``y^{k+1} = W_k y^k + g^{k+1} - g^k``;
    ``y^0 = g^0 = g(x^0)``. Declared on the engine with state ``(x - x*, y, g)`` and the
    conserved direction ``sum (y - g) = 0``. Guarantee: **exact** (tight) expectations.

    Parameters
    ----------
    problem : QuadraticProblem
    W_or_schedule : (n, n) doubly stochastic array or a list of them (periodic schedule).
    gamma : float > 0; steps : int >= 0; x0 : array (n, d), deterministic.
    form : 'atc' or 'cta'; record : increasing ints in [0, steps] (default all).

    Returns
    -------
    ExactPrediction with ``algorithm='gradient_tracking'``; steady state inf (with a
    TheorylabWarning) when not mean-square stable.

    Example
    -------
    >>> import numpy as np
    >>> from theorylab.problems import heterogeneous_quadratic
    >>> p = heterogeneous_quadratic(4, 2, zeta2=1.0, sigma2=0.0, seed=0)
    >>> W = np.full((4, 4), 0.25)
    >>> pred = exact_gradient_tracking(p, W, 0.2, 10, np.zeros((4, 2)))
    >>> bool(pred.steady_state["error"] < 1e-20)  # no zeta2 floor
    True

    References
    ----------
    Nedic, Olshevsky, Shi, SIAM J. Optim. 2017, arXiv 1607.03218; Qu, Li, IEEE TCNS 2018,
    arXiv 1605.07112.
    """
    form = _check_form(form)
    problem, Ws, gamma, x0, rec = _common(problem, W_or_schedule, gamma, steps, x0, record)
    res = solve(gradient_tracking_system(problem, Ws, gamma, x0, form), rec)
    return prediction(res, rec, "gradient_tracking", form, res.route)


def exact_diffusion(
    problem: QuadraticProblem, W_or_schedule, gamma: float, steps: int, x0, record=None
) -> ExactPrediction:
    r"""Exact expected error, consensus and average error of exact diffusion (D^2).

    The math: ``psi^{k+1} = x^k - gamma g(x^k)``, ``phi^{k+1} = psi^{k+1} + x^k - psi^k``,
    ``x^{k+1} = Wbar_k phi^{k+1}`` with ``Wbar = (I + W)/2`` and ``psi^0 = x^0``. Declared on
    the engine with state ``(x - x*, psi - x*)`` and the conserved direction
    ``sum (x - psi) = 0``. Guarantee: **exact** (tight) expectations.

    Parameters, Returns: as :func:`exact_gradient_tracking` (``algorithm='exact_diffusion'``).

    Example
    -------
    >>> import numpy as np
    >>> from theorylab.problems import heterogeneous_quadratic
    >>> p = heterogeneous_quadratic(4, 2, zeta2=1.0, sigma2=0.0, seed=0)
    >>> W = np.full((4, 4), 0.25)
    >>> bool(exact_diffusion(p, W, 0.5, 10, np.zeros((4, 2))).steady_state["error"] < 1e-20)
    True

    References
    ----------
    Yuan, Ying, Zhao, Sayed, IEEE TSP 2019, arXiv 1702.05122; Tang et al., ICML 2018,
    arXiv 1803.07068.
    """
    problem, Ws, gamma, x0, rec = _common(problem, W_or_schedule, gamma, steps, x0, record)
    res = solve(exact_diffusion_system(problem, Ws, gamma, x0), rec)
    return prediction(res, rec, "exact_diffusion", None, res.route)
