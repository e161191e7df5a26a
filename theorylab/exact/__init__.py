"""Exact predictions: one engine, declared systems.

On a :class:`~theorylab.problems.QuadraticProblem` with Gaussian gradient noise
``xi_i ~ N(0, (sigma2/d) I_d)`` every algorithm here is an affine recursion of an augmented state
``z`` (the error ``x - x*`` and, per family, trackers ``y``, ``psi``, error memories ``e``,
delayed copies, control variates, ...)::

    z_{k+1} = M_k z_k + c_k + noise_k,   Cov(noise_k) = Q_k   (+ a multiplicative term),

with ``M_k`` periodic (schedules, local steps) or static. The engine
(:mod:`theorylab.exact.engine`) propagates the mean ``m_k`` and covariance ``P_k``
(``m' = M m + c``, ``P' = M P M^T + Q``) exactly at every step and finds the steady state
(cyclostationary at phase 0 for a period p: the period map ``M_{p-1} ... M_0``), using the
structure the family declares (one block per coordinate of a shared Hessian eigenbasis, a
diagonal symmetrizer for the spectral route) and handling *conserved directions*: an
eigenvalue 1 that neither the drift nor the noise excites (gossip's ``1^T z``, gradient
tracking's ``sum y - sum g``, exact diffusion's ``sum (x - psi)``) keeps its initial component,
and the Lyapunov equation is solved in the complementary invariant subspace, where it is regular.

Declaring a family
------------------
A family module (``theorylab/exact/NAME.py``) writes the paper's update rule in error
coordinates and hands it to :meth:`LinearSystem.declare`::

    LinearSystem.declare(M, c, Q, m0, outputs, S0=None, symmetrizer=None, mult=None)

- ``M``: ``(N, N)`` (one block) or ``(B, N, N)`` (B independent blocks, e.g. one per
  coordinate); a list of these is a periodic schedule (phase ``k mod p``); ``c`` likewise
  ``(N,)``/``(B, N)``; ``Q`` the noise covariance: a float ``q`` (``q I``), ``(N, N)`` shared by the
  blocks, or ``(B, N, N)``;
- ``m0``: the initial mean (``(N,)`` or ``(B, N)``), ``S0`` its covariance (None: deterministic);
- ``outputs``: name -> selector ``C`` (a float ``s`` for ``s I`` or a ``(K, N)`` array); the
  engine reports ``sum_blocks E||C z_k||^2`` at every recorded step and at steady state;
- ``symmetrizer``: ``(B, N)`` positive ``s`` with ``diag(s) M diag(s)^-1`` symmetric, for a
  static system (enables the spectral route: one ``eigh`` per block, every checkpoint a
  quadratic form in ``lam^k``); ``mult``: a :class:`Multiplicative` compression-noise term.

Then ``solve(system, rec)`` returns an :class:`EngineResult` (``curves[name]``,
``steady[name]`` (inf when not mean-square stable), ``route``).

Worked example: DSGD (:mod:`theorylab.exact.dsgd`). ATC (Koloskova et al. 2020) is
``x_i' = sum_j W_ij (x_j - gamma g_j(x_j))``, ``g_j(x) = A_j (x - b_j) + xi_j``. In the error
``z = x - x*`` (``c_j = grad f_j(x*)``), with diagonal Hessians ``A_j = diag(H[j])``, each
coordinate is a block whose state is the column ``z[:, k]`` over the n nodes::

    z' = W (I - gamma diag(H[:, k])) z - gamma W c[:, k] - gamma W xi[:, k]

    import numpy as np
    from theorylab.exact.engine import LinearSystem, solve
    n, d = H.shape
    M = W[None, :, :] * (1 - gamma * H.T)[:, None, :]         # (d, n, n): W (I - gamma D)
    c = -gamma * grads.T @ W.T                                 # (d, n): -gamma W c
    Q = gamma**2 * (sigma2 / d) * (W @ W.T)                    # shared by the blocks
    system = LinearSystem.declare(
        M, c, Q, m0=(x0 - x_star).T,
        outputs={"error": 1 / np.sqrt(n),                      # (1/n) ||z||^2
                 "avg_error": np.full((1, n), 1 / n)},         # ||mean_i z_i||^2
        symmetrizer=np.sqrt(1 - gamma * H.T),                  # S^1/2 W S^1/2 is symmetric
    )
    res = solve(system, np.arange(steps + 1))
    consensus = res.curves["error"] - res.curves["avg_error"]

CTA is ``M = W - gamma D``, ``c = -gamma c``, ``Q = gamma^2 (sigma2/d)`` (a float), symmetrizer
ones; a schedule passes lists ``[M_0, ..., M_{p-1}]`` (and ``c``, ``Q``) and no symmetrizer. The
declaration comes from the paper's equations, never from the ``verify`` implementation, so a
claim compares two independent things.

Families (one module each): :mod:`~theorylab.exact.gossip`, :mod:`~theorylab.exact.psgd`,
:mod:`~theorylab.exact.dsgd`, :mod:`~theorylab.exact.compressed` (compressed PSGD, EF-SGD,
EF21), :mod:`~theorylab.exact.tracking` (gradient tracking ATC/CTA, exact diffusion / D^2),
:mod:`~theorylab.exact.local` (local SGD / FedAvg with partial participation and server step,
SCAFFOLD), :mod:`~theorylab.exact.delay` (fixed-delay SGD and its stability limit),
:mod:`~theorylab.exact.pushsum` (stochastic gradient push on directed graphs: exact because the
push-sum weights are deterministic, so the ratio is a known time-varying linear map). A family on
the nodes' stacked iterates can build its blocks with :func:`theorylab.exact._nodes.node_blocks`
(per coordinate when the Hessians share an eigenbasis, else one ``n d`` block) and
``declare_nodes``. Every public function returns an :class:`ExactPrediction`.

Example
-------
>>> import numpy as np
>>> from theorylab.problems import QuadraticProblem
>>> p = QuadraticProblem(np.ones((4, 1)), np.zeros((4, 1)), sigma2=2.0)
>>> pred = exact_psgd(p, 0.1, 1000, np.zeros(1))
>>> bool(np.isclose(pred.steady_state["error"], 0.1 * 2.0 / (4 * 1.0 * 1.9)))
True

References
----------
Yuan, Alghunaim, Ying, Sayed, "On the influence of bias-correction on distributed stochastic
optimization", IEEE TSP 2020, arXiv 1903.10956; shared/references/rates.md §1, §3e, §5.
"""

from theorylab.exact._common import ExactPrediction, _Acc  # noqa: F401  (_Acc: tests)
from theorylab.exact.delay import delayed_sgd_stability_limit, exact_delayed_sgd
from theorylab.exact.dsgd import exact_dsgd, steady_state_dsgd
from theorylab.exact.engine import EngineResult, LinearSystem, Multiplicative, solve
from theorylab.exact.gossip import exact_gossip
from theorylab.exact.local import exact_local_sgd, exact_scaffold
from theorylab.exact.psgd import exact_psgd
from theorylab.exact.pushsum import exact_push_sum_sgd
from theorylab.exact.tracking import exact_diffusion, exact_gradient_tracking

__all__ = [
    "ExactPrediction",
    "exact_dsgd",
    "exact_psgd",
    "exact_gossip",
    "steady_state_dsgd",
    "exact_gradient_tracking",
    "exact_diffusion",
    "exact_local_sgd",
    "exact_scaffold",
    "exact_delayed_sgd",
    "delayed_sgd_stability_limit",
    "exact_push_sum_sgd",
    "LinearSystem",
    "Multiplicative",
    "EngineResult",
    "solve",
]
