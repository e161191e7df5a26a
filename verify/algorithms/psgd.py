"""Parallel (minibatch) SGD: average the nodes' gradient steps with an all-reduce."""

from __future__ import annotations

from typing import NamedTuple

import torch

from theorylab.errors import check_positive
from verify.algorithms.base import Algorithm, Context, register

__all__ = ["PSGD", "PSGDState"]


class PSGDState(NamedTuple):
    """``x``: the nodes' iterates, shape ``(m, R, d)`` (all rows equal after the first step)."""

    x: torch.Tensor


@register
class PSGD(Algorithm):
    r"""Parallel SGD with exact averaging (all-reduce) every step.

    The math: ``x_i^{k+1} = (1/n) sum_j (x_j^k - gamma g_j(x_j^k))``; from equal starting points
    this is SGD on ``f = (1/n) sum_i f_i`` with the gradient averaged over ``n`` nodes (noise
    variance ``sigma2 / n``). ``gamma`` is the step size.

    Guarantee (upper; standard, see shared/references/rates.md §1): for ``mu``-strongly convex,
    ``L``-smooth ``f`` and ``gamma <= 1/L``,
    ``E||x^k - x*||^2 <= (1 - gamma mu)^k ||x^0 - x*||^2 + gamma sigma2 / (mu n)``. For isotropic
    quadratics ``f = (h/2)||x - x*||^2`` it is exact (tight):
    ``E||x^k - x*||^2 = (1 - gamma h)^{2k} R_0^2 + gamma sigma2 (1 - (1 - gamma h)^{2k})
    / (n h (2 - gamma h))``.

    Parameters
    ----------
    gamma : float >= 0
        Step size.

    Raises
    ------
    TheorylabError
        If ``gamma`` is negative or not finite.

    Examples
    --------
    >>> PSGD(0.1).config()
    {'gamma': 0.1}

    References
    ----------
    O. Dekel, R. Gilad-Bachrach, O. Shamir, L. Xiao, "Optimal distributed online prediction using
    mini-batches", JMLR 13 (2012), arXiv:1012.1367. S. U. Stich, "Unified optimal analysis of the
    (stochastic) gradient method", arXiv:1907.04232 (2019).
    """

    name = "psgd"

    def __init__(self, gamma: float):
        self.gamma = check_positive("gamma", gamma, allow_zero=True)

    def init(self, x0: torch.Tensor, ctx: Context) -> PSGDState:
        return PSGDState(x=x0.clone())

    def step(self, state: PSGDState, ctx: Context, k: int) -> PSGDState:
        # 1. local stochastic gradient step   2. exact average (all-reduce)
        # y is a fresh tensor owned by this step, so it is donated to the all-reduce (no copy);
        # state.x is not modified (callers may keep earlier states)
        y = torch.add(state.x, ctx.grad(state.x), alpha=-self.gamma)
        return PSGDState(x=ctx.comm.mean(y, inplace=True))
