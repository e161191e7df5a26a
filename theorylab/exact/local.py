"""Local SGD / FedAvg (full or partial participation, server step) and SCAFFOLD on the engine.

Update rules (``g_i(y) = A_i (y - b_i) + xi_i``, ``xi_i ~ N(0, (sigma2/d) I)``; one round is
``tau`` local steps of size ``gamma``; steps are counted in local steps, rounds end at
``k = tau, 2 tau, ...``):

- FedAvg / local SGD (McMahan et al. 2017; Stich 2019; server step eta_g as in Karimireddy et
  al. 2020, Alg. 1 without control variates)::

      y_i <- x;  tau times: y_i <- y_i - gamma g_i(y_i)
      x <- x + eta_g (1/S) sum_{i in S_r} (y_i - x)

  ``S_r`` a uniform S-subset of the n clients drawn without replacement, independently each
  round (S = n: full participation). The declared state is ``(y - x*, x - x*)`` (the server
  model replicated per node); the round's last phase carries the sampling as a multiplicative
  term ``1 delta^T`` with ``delta_i = s_i/S - 1/n``, ``Cov(delta) = K``, so the engine gives the
  expectation over the sampling exactly. With ``tau = 1``, ``eta_g = 1``, ``S = n`` it is PSGD.

- SCAFFOLD, option II (Karimireddy et al. 2020, Algorithm 1; full participation)::

      y_i <- x;  tau times: y_i <- y_i - gamma (g_i(y_i) - c_i + c)
      c_i^+ = c_i - c + (x - y_i)/(tau gamma)
      x <- x + eta_g mean_i (y_i - x);   c <- c + mean_i (c_i^+ - c_i);   c_i <- c_i^+

  with ``c_i^0 = c^0 = 0``. State ``(y - x*, x - x*, c_i, c)``; ``mean_i c_i - c`` is a
  conserved direction (zero at the start).

Outputs are those of the node iterates ``y_i`` (equal to the server model at round ends).

References
----------
McMahan et al., AISTATS 2017, arXiv 1602.05629; Stich, ICLR 2019, arXiv 1805.09767;
Karimireddy, Kale, Mohri, Reddi, Stich, Suresh, "SCAFFOLD", ICML 2020, arXiv 1910.06378.
"""

from __future__ import annotations

import numpy as np

from theorylab.errors import TheorylabError, check_int, check_positive
from theorylab.exact._common import ExactPrediction, _check_problem, _check_record, _check_x0
from theorylab.exact._nodes import declare_nodes, node_blocks, prediction, stack
from theorylab.exact.engine import LinearSystem, Multiplicative, solve
from theorylab.problems import QuadraticProblem

__all__ = [
    "exact_local_sgd",
    "exact_scaffold",
    "local_sgd_system",
    "scaffold_system",
    "sampling_covariance",
]


def sampling_covariance(n: int, S: int) -> np.ndarray:
    """``Cov(s_i / S)`` for the indicators ``s`` of a uniform S-subset of n (no replacement):
    ``Var(s_i) = q (1 - q)``, ``Cov(s_i, s_j) = S (S - 1)/(n (n - 1)) - q^2``, ``q = S/n``."""
    q = S / n
    off = (S * (S - 1) / (n * (n - 1)) - q * q) if n > 1 else 0.0
    K = np.full((n, n), off)
    K[np.diag_indices(n)] = q * (1.0 - q)
    return K / (S * S)


def local_sgd_system(
    problem: QuadraticProblem, gamma: float, tau: int, x0, eta_g: float = 1.0, S: int | None = None
) -> LinearSystem:
    """Declare local SGD / FedAvg (see the module): ``tau`` phases, state ``(y, x)``."""
    n, s = problem.n, np.sqrt(problem.sigma2 / problem.d)
    S = n if S is None else S
    Z0 = np.tile(x0 - problem.x_star, (n, 1))
    blocks = node_blocks(problem, Z0)

    def build(blk):
        m, D, c, I = blk.m, blk.D, blk.c, np.eye(blk.m)
        O = np.zeros((m, m))
        J = blk.lift(np.full((n, n), 1.0 / n))
        L = I - gamma * D
        local = (np.block([[L, O], [O, I]]), np.concatenate([-gamma * c, np.zeros(m)]),
                 np.vstack([-gamma * s * I, O]))  # fmt: skip
        row = np.hstack([eta_g * J @ L, (1.0 - eta_g) * I])
        last = (np.vstack([row, row]), np.tile(-gamma * eta_g * J @ c, 2),
                np.vstack([-gamma * eta_g * s * J] * 2))  # fmt: skip
        return [local] * (tau - 1) + [last], np.concatenate([blk.z0, blk.z0]), None

    mults = None
    if S < n:
        F = eta_g * np.vstack([blocks[0].lift(np.ones((n, n)))] * 2)
        P = stack([np.hstack([np.eye(b.m) - gamma * b.D, np.zeros((b.m, b.m))]) for b in blocks])
        u = stack([-gamma * b.c for b in blocks])
        K = (
            blocks[0].lift(sampling_covariance(n, S))
            if blocks[0].width == 1
            else np.kron(sampling_covariance(n, S), np.ones((problem.d, problem.d)))
        )
        term = Multiplicative(F, P, u, gamma * gamma * s * s, 0.0, K)
        mults = [None] * (tau - 1) + [term]
    return declare_nodes(blocks, build, n, 2, mult=mults)


def scaffold_system(
    problem: QuadraticProblem, gamma: float, tau: int, x0, eta_g: float = 1.0
) -> LinearSystem:
    """Declare SCAFFOLD option II, full participation (state ``(y, x, c_i, c)``)."""
    n, s = problem.n, np.sqrt(problem.sigma2 / problem.d)
    Z0 = np.tile(x0 - problem.x_star, (n, 1))
    blocks = node_blocks(problem, Z0)
    kg = tau * gamma

    def build(blk):
        m, D, c, I = blk.m, blk.D, blk.c, np.eye(blk.m)
        O = np.zeros((m, m))
        J = blk.lift(np.full((n, n), 1.0 / n))
        Y = np.hstack([I - gamma * D, O, gamma * I, -gamma * I])  # y - gamma (g - c_i + c)
        keep = np.hstack([np.zeros((3 * m, m)), np.eye(3 * m)])
        local = (np.vstack([Y, keep]), np.concatenate([-gamma * c, np.zeros(3 * m)]),
                 np.vstack([-gamma * s * I, np.zeros((3 * m, m))]))  # fmt: skip
        xrow = eta_g * J @ Y + np.hstack([O, (1.0 - eta_g) * I, O, O])
        cirow = np.hstack([O, I / kg, I, -I]) - Y / kg
        crow = np.hstack([O, J / kg, O, I - J]) - J @ Y / kg
        M = np.vstack([xrow, xrow, cirow, crow])
        cc = np.concatenate([-gamma * eta_g * J @ c] * 2 + [gamma * c / kg, gamma * J @ c / kg])
        G = s * np.vstack([-gamma * eta_g * J, -gamma * eta_g * J, I / tau, J / tau])
        z = np.zeros(m)
        return [local] * (tau - 1) + [(M, cc, G)], np.concatenate([blk.z0, blk.z0, z, z]), None

    return declare_nodes(blocks, build, n, 4)


def _inputs(problem, gamma, tau, steps, x0, record, eta_g):
    problem = _check_problem(problem)
    gamma = check_positive("gamma", gamma)
    tau = check_int("tau", tau, minimum=1)
    steps = check_int("steps", steps, minimum=0)
    eta_g = check_positive("eta_g", eta_g)
    x0 = _check_x0(x0, (problem.d,))
    return problem, gamma, tau, x0, _check_record(record, steps), eta_g


def exact_local_sgd(
    problem: QuadraticProblem,
    gamma: float,
    tau: int,
    steps: int,
    x0,
    eta_g: float = 1.0,
    participation: int | None = None,
    record=None,
) -> ExactPrediction:
    r"""Exact expected error of local SGD / FedAvg with period ``tau`` (see the module).

    The math: ``tau`` local steps ``y_i <- y_i - gamma g_i(y_i)`` from the server model, then
    ``x <- x + eta_g (1/S) sum_{i in S_r} (y_i - x)`` over a uniform S-subset (expectation over
    the sampling). A periodic system (period ``tau``); ``tau = 1, eta_g = 1, S = n`` is PSGD
    exactly. Guarantee: **exact** (tight) expectations.

    Parameters
    ----------
    problem : QuadraticProblem; gamma : float > 0 (local step); tau : int >= 1;
    steps : int >= 0 (local steps); x0 : array (d,), the server's start;
    eta_g : float > 0, server step; participation : S in [1, n] (None: all n);
    record : increasing ints in [0, steps] (default all).

    Returns
    -------
    ExactPrediction (``algorithm='local_sgd'``); the steady state is cyclostationary at round
    ends (``k = 0 mod tau``).

    Example
    -------
    >>> import numpy as np
    >>> from theorylab.problems import heterogeneous_quadratic
    >>> from theorylab.exact import exact_psgd
    >>> p = heterogeneous_quadratic(4, 3, zeta2=1.0, sigma2=0.5, seed=0)
    >>> a = exact_local_sgd(p, 0.2, 1, 30, np.ones(3))
    >>> bool(np.allclose(a.error, exact_psgd(p, 0.2, 30, np.ones(3)).error, rtol=1e-12))
    True

    References
    ----------
    McMahan et al., AISTATS 2017, arXiv 1602.05629; Stich, ICLR 2019, arXiv 1805.09767;
    Karimireddy et al., ICML 2020, arXiv 1910.06378 (server step, partial participation).
    """
    problem, gamma, tau, x0, rec, eta_g = _inputs(problem, gamma, tau, steps, x0, record, eta_g)
    S = problem.n if participation is None else check_int("participation", participation, 1)
    if S > problem.n:
        raise TheorylabError(f"participation S = {S} must lie in [1, n = {problem.n}]")
    res = solve(local_sgd_system(problem, gamma, tau, x0, eta_g, S), rec)
    return prediction(res, rec, "local_sgd", None, res.route)


def exact_scaffold(
    problem: QuadraticProblem,
    gamma: float,
    tau: int,
    steps: int,
    x0,
    eta_g: float = 1.0,
    record=None,
) -> ExactPrediction:
    r"""Exact expected error of SCAFFOLD (option II, full participation; see the module).

    The math: ``tau`` local steps ``y_i <- y_i - gamma (g_i(y_i) - c_i + c)``, then
    ``c_i <- c_i - c + (x - y_i)/(tau gamma)``, ``x <- x + eta_g mean_i (y_i - x)``,
    ``c <- c + mean_i (c_i^+ - c_i)``; ``c_i^0 = c^0 = 0``. Guarantee: **exact** (tight)
    expectations; with ``sigma2 = 0`` it converges to ``x*`` (no ``zeta2`` floor, tested).

    Parameters, Returns: as :func:`exact_local_sgd` (``algorithm='scaffold'``).

    Example
    -------
    >>> import numpy as np
    >>> from theorylab.problems import heterogeneous_quadratic
    >>> p = heterogeneous_quadratic(4, 3, zeta2=1.0, sigma2=0.0, seed=0)
    >>> bool(exact_scaffold(p, 0.1, 4, 40, np.ones(3)).steady_state["error"] < 1e-20)
    True

    References
    ----------
    Karimireddy et al., "SCAFFOLD", ICML 2020, arXiv 1910.06378, Algorithm 1 (option II).
    """
    problem, gamma, tau, x0, rec, eta_g = _inputs(problem, gamma, tau, steps, x0, record, eta_g)
    res = solve(scaffold_system(problem, gamma, tau, x0, eta_g), rec)
    return prediction(res, rec, "scaffold", None, res.route)
