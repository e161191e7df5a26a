"""Decentralized SGD (D-PSGD), in its adapt-then-combine and combine-then-adapt forms."""

from __future__ import annotations

from typing import NamedTuple

import torch

from theorylab.errors import TheorylabError, check_positive
from verify.algorithms.base import Algorithm, Context, register

__all__ = ["DSGD", "DSGDState"]

_FORMS = ("atc", "cta")


class DSGDState(NamedTuple):
    """``x``: the nodes' iterates, shape ``(m, R, d)``."""

    x: torch.Tensor


@register
class DSGD(Algorithm):
    r"""Decentralized SGD with the round's mixing matrix ``W^(k)``.

    The math (``g_i`` = node ``i``'s stochastic gradient, ``gamma`` the step size):

    * ``form="atc"`` (adapt-then-combine / diffusion; Koloskova et al. 2020, Yuan et al.):
      ``x_i^{k+1} = sum_j W^(k)_ij (x_j^k - gamma g_j(x_j^k))``;
    * ``form="cta"`` (combine-then-adapt, "AWC"; Lian et al. 2017):
      ``x_i^{k+1} = sum_j W^(k)_ij x_j^k - gamma g_i(x_i^k)``.

    Both need one neighbour exchange per round; with ``gamma = 0`` both are :class:`Gossip`.

    Guarantee (upper, big-O; Koloskova et al. 2020, Thm. 2 with ``tau = 1``, ``p = 1 - rho^2``,
    ``rho = ||W - 11^T/n||_2``, spectral gap ``1 - rho``): for ``mu``-strongly convex ``f`` the
    iterations to accuracy ``epsilon`` are
    ``O~(sigma2/(mu n epsilon) + sqrt(L)(zeta/p + sigma/sqrt(p))/(mu sqrt(epsilon))
    + L/(mu p) log(1/epsilon))``. With constant ``gamma`` the consensus error settles at
    ``O(gamma^2 rho^2 zeta2 / (1-rho)^2 + gamma^2 rho^2 sigma2 / (1-rho^2))`` for ATC (CTA lacks
    the ``rho^2`` factors); on quadratics the exact value follows from a linear recursion
    (shared/references/rates.md §3e).

    Parameters
    ----------
    gamma : float >= 0
        Step size.
    form : {"atc", "cta"}, default ``"atc"``
        Order of the local step and the mixing.

    Raises
    ------
    TheorylabError
        If ``gamma`` is negative or ``form`` is unknown.

    Examples
    --------
    >>> DSGD(0.05, form="cta").config()
    {'gamma': 0.05, 'form': 'cta'}

    References
    ----------
    X. Lian, C. Zhang, H. Zhang, C.-J. Hsieh, W. Zhang, J. Liu, "Can decentralized algorithms
    outperform centralized algorithms?", NeurIPS 2017, arXiv:1705.09056.
    A. Koloskova, N. Loizou, S. Boreiri, M. Jaggi, S. U. Stich, "A unified theory of decentralized
    SGD with changing topology and local updates", ICML 2020, arXiv:2003.10422.
    K. Yuan, S. A. Alghunaim, B. Ying, A. H. Sayed, "On the influence of bias-correction on
    distributed stochastic optimization", IEEE TSP 2020, arXiv:1903.10956.
    """

    name = "dsgd"

    def __init__(self, gamma: float, form: str = "atc"):
        self.gamma = check_positive("gamma", gamma, allow_zero=True)
        if form not in _FORMS:
            raise TheorylabError(f"form must be one of {_FORMS}, got {form!r}")
        self.form = form

    def init(self, x0: torch.Tensor, ctx: Context) -> DSGDState:
        return DSGDState(x=x0.clone())

    def step(self, state: DSGDState, ctx: Context, k: int) -> DSGDState:
        x = state.x
        if self.form == "atc":
            # 1. local step on every node   2. mix the stepped values
            return DSGDState(x=ctx.comm.mix(torch.add(x, ctx.grad(x), alpha=-self.gamma), k))
        # 1. gradient at the current point   2. mix the current values   3. step
        g = ctx.grad(x)
        return DSGDState(x=ctx.comm.mix(x, k).add_(g, alpha=-self.gamma))
