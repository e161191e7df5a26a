"""Push-sum SGD / stochastic gradient push on directed graphs (column-stochastic weights)."""

from __future__ import annotations

from typing import NamedTuple

import torch

from theorylab.errors import check_positive
from verify.algorithms._weights import require_column_stochastic
from verify.algorithms.base import Algorithm, Context, register

__all__ = ["PushSum", "PushSumState"]


class PushSumState(NamedTuple):
    """``x``: push-sum numerators ``(m, R, d)``; ``w``: push-sum weights ``(m, R, 1)``
    (the same for every replica, kept per replica so that it travels in ``x``'s message)."""

    x: torch.Tensor
    w: torch.Tensor


@register
class PushSum(Algorithm):
    r"""Stochastic gradient push with the round's column-stochastic matrix ``P^(k)``.

    The math (``P_ij`` = the share node ``j`` sends to node ``i``, ``1^T P = 1^T``; ``g_i`` =
    node ``i``'s stochastic gradient; ``w^0 = 1``)::

        z_i^k       = x_i^k / w_i^k                      (de-biased iterate, what is measured)
        x_i^{k+1/2} = x_i^k - gamma g_i(z_i^k)           (step on the numerator)
        x^{k+1} = P^(k) x^{k+1/2},    w^{k+1} = P^(k) w^k   (one push, x and w in one message)

    ``1^T x`` and ``1^T w = n`` are preserved by the push, so ``zbar`` follows averaged SGD
    and ``z_i`` reaches consensus on the minimiser of ``f = (1/n) sum_i f_i`` up to ``O(gamma)``
    (with ``gamma = 0`` it is push-sum averaging: ``z_i -> mean_j x_j^0``; Kempe et al. 2003),
    on any strongly connected directed graph: only out-degrees are needed
    (:func:`theorylab.directed.column_stochastic_weights`). DSGD with row-stochastic weights on
    the same graph converges instead to ``argmin sum_i pi_i f_i`` (``pi`` the Perron vector;
    :func:`theorylab.directed.biased_optimum`). The push is
    :meth:`verify.comm.Communicator.push`; ``P`` must be column-stochastic (checked at
    :meth:`init`, naming a row-stochastic matrix as such). With a doubly stochastic ``P``,
    ``w = 1`` and this is DSGD (ATC).

    Guarantee (upper; Nedic & Olshevsky 2016 with diminishing steps: ``O(ln t / t)`` for
    strongly convex ``f``; Assran et al. 2019, non-convex: ``O(1/sqrt(n K) + 1/K)`` at
    ``gamma = sqrt(n/K)``). On quadratics the expected error of ``z`` is exact
    (:func:`theorylab.exact.exact_push_sum_sgd`; ``w`` is deterministic).

    Parameters
    ----------
    gamma : float >= 0
        Step size.

    Raises
    ------
    TheorylabError
        If ``gamma`` is negative or (at :meth:`init`) a ``P^(k)`` is not column-stochastic.

    Examples
    --------
    >>> PushSum(0.1).config()
    {'gamma': 0.1}

    References
    ----------
    D. Kempe, A. Dobra, J. Gehrke, "Gossip-based computation of aggregate information",
    FOCS 2003.
    A. Nedic, A. Olshevsky, "Stochastic gradient-push for strongly convex functions on
    time-varying directed graphs", IEEE TAC 2016, arXiv:1406.2075.
    M. Assran, N. Loizou, N. Ballas, M. Rabbat, "Stochastic gradient push for distributed deep
    learning", ICML 2019, arXiv:1811.10792.
    """

    name = "push_sum"
    stochasticity = "column"

    def __init__(self, gamma: float):
        self.gamma = check_positive("gamma", gamma, allow_zero=True)

    def init(self, x0: torch.Tensor, ctx: Context) -> PushSumState:
        require_column_stochastic(ctx.comm.schedule, "push-sum")
        m, R, _ = x0.shape
        return PushSumState(x=x0.clone(), w=torch.ones((m, R, 1), dtype=x0.dtype, device=x0.device))

    def step(self, state: PushSumState, ctx: Context, k: int) -> PushSumState:
        x, w = state
        d = x.shape[-1]
        # 1. de-bias: gradient at z = x / w     2. step on the numerator (gamma = 0: pure
        # push-sum averaging, no gradient drawn, so no oracle is needed)
        x_half = x if self.gamma == 0 else torch.add(x, ctx.grad(x / w), alpha=-self.gamma)
        # 3. push numerator and weight together along the out-edges
        pushed = ctx.comm.push(torch.cat([x_half, w], dim=-1), k)
        return PushSumState(x=pushed[..., :d].contiguous(), w=pushed[..., d:].contiguous())

    def iterate(self, state: PushSumState) -> torch.Tensor:
        return state.x / state.w
