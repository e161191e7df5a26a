"""Exact diffusion (with ``Wbar = (I + W)/2``) and D^2 (with ``W`` itself)."""

from __future__ import annotations

from typing import NamedTuple

import torch

from theorylab.errors import TheorylabError, check_positive
from verify.algorithms._weights import min_eigenvalue, require_doubly_stochastic, warn_step
from verify.algorithms.base import Algorithm, Context, register

__all__ = ["ExactDiffusion", "ExactDiffusionState"]

_FORMS = ("ed", "d2")


class ExactDiffusionState(NamedTuple):
    """``x``: iterates; ``psi``: the previous adapted point ``psi^k`` (``psi^0 = x^0``).
    Both of shape ``(m, R, d)``."""

    x: torch.Tensor
    psi: torch.Tensor


@register
class ExactDiffusion(Algorithm):
    r"""Exact diffusion (Yuan et al. 2019) / D^2 (Tang et al. 2018) with the round's ``W^(k)``.

    The math (``g_i`` = node ``i``'s stochastic gradient, ``gamma`` the step size, stacked over
    nodes; ``psi^0 = x^0``)::

        psi^{k+1} = x^k - gamma g(x^k)                 (adapt)
        phi^{k+1} = psi^{k+1} + x^k - psi^k            (correct)
        x^{k+1}   = Wbar^(k) phi^{k+1}                 (combine)

    equivalently ``x^{k+1} = Wbar (2 x^k - x^{k-1} - gamma (g^k - g^{k-1}))``,
    ``x^1 = Wbar (x^0 - gamma g^0)``. The correction keeps ``sum_i (x_i - psi_i) = 0``, so with
    ``sigma2 = 0`` the fixed point is consensus on the minimiser of ``f = (1/n) sum f_i``: no
    ``zeta2`` floor.

    Where ``Wbar`` is required: ``form="ed"`` (exact diffusion) mixes with
    ``Wbar = (I + W)/2``, whose eigenvalues lie in ``[0, 1]`` for any symmetric doubly
    stochastic ``W``; the recursion's characteristic polynomial ``z^2 - lam (2 - gamma h) z
    + lam (1 - gamma h)`` (eigenvalue ``lam`` of the mixing matrix, curvature ``h``) is then
    stable for every ``gamma h < 2``. ``form="d2"`` (D^2) mixes with ``W`` itself, which as
    ``gamma -> 0`` needs ``lambda_min(W) > -1/3`` (same polynomial: ``-3 lam < 1``): a ``W``
    with an eigenvalue ``<= -1/3`` (e.g. a bipartite-ish ring with small self-weights) diverges
    at every step size; :meth:`init` warns. ED is D^2 run on ``Wbar``. One neighbour exchange
    per round (``Wbar phi = (phi + W phi)/2`` is computed from one ``mix``). ``W`` must be
    doubly stochastic (checked at :meth:`init`).

    Guarantee (upper, big-O; Yuan, Alghunaim, Huang 2023 strongly convex; Alghunaim & Yuan 2022
    non-convex; ``rho = ||Wbar - 11^T/n||_2``, spectral gap ``1 - rho``): no ``zeta2`` term,
    transient iterations ``O(n/(1 - rho))`` (strongly convex) against DSGD's ``O(n/(1-rho)^2)``
    (:func:`theorylab.rates.tracking.exact_diffusion`); exact expected error on quadratics:
    :func:`theorylab.exact.exact_diffusion` (ED; D^2 is ED of ``2 W - I``).

    Parameters
    ----------
    gamma : float >= 0
        Step size.
    form : {"ed", "d2"}, default ``"ed"``
        Mix with ``Wbar = (I + W)/2`` (exact diffusion) or with ``W`` (D^2).
    L : float > 0, optional
        Smoothness constant; when given, :meth:`init` warns (``TheorylabWarning``) if
        ``gamma >= 2/L`` (deterministic stability limit of ED/NIDS, Li, Shi, Yan 2019).

    Raises
    ------
    TheorylabError
        If ``gamma`` is negative, ``form`` unknown or (at :meth:`init`) a ``W^(k)`` is not
        doubly stochastic.

    Examples
    --------
    >>> ExactDiffusion(0.1).config()
    {'gamma': 0.1, 'form': 'ed'}

    References
    ----------
    K. Yuan, B. Ying, X. Zhao, A. H. Sayed, "Exact diffusion for distributed optimization and
    learning - Part I: algorithm development", IEEE TSP 2019, arXiv:1702.05122.
    H. Tang, X. Lian, M. Yan, C. Zhang, J. Liu, "D^2: decentralized training over decentralized
    data", ICML 2018, arXiv:1803.07068.
    Z. Li, W. Shi, M. Yan, "A decentralized proximal-gradient method with network independent
    step-sizes and separated convergence rates" (NIDS), IEEE TSP 2019, arXiv:1704.07807.
    K. Yuan, S. A. Alghunaim, X. Huang, "Removing data heterogeneity influence enhances network
    topology dependence of decentralized SGD", JMLR 2023, arXiv:2105.08023.
    """

    name = "exact_diffusion"

    def __init__(self, gamma: float, form: str = "ed", L: float | None = None):
        self.gamma = check_positive("gamma", gamma, allow_zero=True)
        if form not in _FORMS:
            raise TheorylabError(f"form must be one of {_FORMS}, got {form!r}")
        self.form = form
        self.L = None if L is None else check_positive("L", L)

    def init(self, x0: torch.Tensor, ctx: Context) -> ExactDiffusionState:
        require_doubly_stochastic(ctx.comm.schedule, "exact diffusion")
        if self.form == "d2":
            lam = min(min_eigenvalue(W) for W in ctx.comm.schedule)
            if lam <= -1.0 / 3.0:
                warn_step(
                    "D^2",
                    self.gamma,
                    f"lambda_min(W) > -1/3 (Tang et al. 2018; here lambda_min = {lam:.4g}: "
                    "unstable at every step size); use form='ed' (Wbar = (I + W)/2)",
                )
        if self.L is not None and self.gamma * self.L >= 2:
            warn_step(
                "exact diffusion",
                self.gamma,
                f"gamma < 2/L = {2 / self.L:.4g} (Li, Shi, Yan 2019; Yuan et al. 2019)",
            )
        return ExactDiffusionState(x=x0.clone(), psi=x0.clone())

    def step(self, state: ExactDiffusionState, ctx: Context, k: int) -> ExactDiffusionState:
        x, psi = state
        # 1. adapt: local stochastic gradient step
        psi_new = torch.add(x, ctx.grad(x), alpha=-self.gamma)
        # 2. correct: add back what the previous combination moved
        phi = psi_new + x - psi
        # 3. combine: Wbar phi = (phi + W phi)/2 (ED) or W phi (D^2)
        mixed = ctx.comm.mix(phi, k)
        x_new = mixed.add_(phi).mul_(0.5) if self.form == "ed" else mixed
        return ExactDiffusionState(x=x_new, psi=psi_new)
