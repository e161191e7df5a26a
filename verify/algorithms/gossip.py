"""Gossip averaging: every node replaces its value by the weighted average of its neighbours'."""

from __future__ import annotations

from typing import NamedTuple

import torch

from verify.algorithms.base import Algorithm, Context, register

__all__ = ["Gossip", "GossipState"]


class GossipState(NamedTuple):
    """``x``: the nodes' values, shape ``(m, R, d)``."""

    x: torch.Tensor


@register
class Gossip(Algorithm):
    r"""Synchronous gossip (distributed averaging) with the round's mixing matrix.

    The math: ``x_i^{k+1} = sum_j W^(k)_ij x_j^k`` (``X^{k+1} = W^(k) X^k``). For doubly
    stochastic ``W^(k)`` the average ``xbar = (1/n) sum_i x_i`` is preserved exactly.

    Guarantee (tight, Xiao & Boyd 2004, Thm. 1 / Boyd et al. 2006): for a static symmetric doubly
    stochastic ``W``, ``||X^k - 1 xbar^T||_F <= rho^k ||X^0 - 1 xbar^T||_F`` with
    ``rho = ||W - 11^T/n||_2`` (spectral gap ``1 - rho``); equality holds when ``X^0 - 1 xbar^T``
    lies in the eigenspace of the eigenvalue of modulus ``rho``. For a time-varying schedule of
    period ``P`` the rate per period is ``||W^(P-1) ... W^(0) - 11^T/n||_2``.

    No hyperparameters; no gradients are used.

    Examples
    --------
    >>> import numpy as np, torch
    >>> from verify.run import run_simulated
    >>> W = np.full((2, 2), 0.5)
    >>> x0 = torch.tensor([[0.0], [2.0]], dtype=torch.float64)
    >>> run_simulated(Gossip(), None, [W], x0, steps=1, seed=0).consensus[-1].tolist()
    [0.0]

    References
    ----------
    L. Xiao, S. Boyd, "Fast linear iterations for distributed averaging", Systems & Control
    Letters 53 (2004). S. Boyd, A. Ghosh, B. Prabhakar, D. Shah, "Randomized gossip algorithms",
    IEEE Trans. Inf. Theory 52 (2006).
    """

    name = "gossip"

    def init(self, x0: torch.Tensor, ctx: Context) -> GossipState:
        return GossipState(x=x0.clone())

    def step(self, state: GossipState, ctx: Context, k: int) -> GossipState:
        return GossipState(x=ctx.comm.mix(state.x, k))
