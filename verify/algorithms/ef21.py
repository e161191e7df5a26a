"""EF21: error feedback on gradient estimators (Richtarik, Sokolov, Fatkhullin 2021)."""

from __future__ import annotations

from typing import NamedTuple

import torch

from theorylab.compressors import Compressor, get_compressor
from theorylab.errors import check_positive
from verify.algorithms.base import Algorithm, Context, register

__all__ = ["EF21", "EF21State"]


class EF21State(NamedTuple):
    """``x``: iterates (equal on all nodes); ``g_i``: node i's gradient estimator;
    ``g``: their average ``(1/n) sum_i g_i`` (held by every node)."""

    x: torch.Tensor
    g_i: torch.Tensor
    g: torch.Tensor


@register
class EF21(Algorithm):
    r"""EF21 with the nodes' stochastic gradients.

    The math (``gamma`` the step size, ``C`` in B(delta))::

        x^{t+1} = x^t - gamma g^t                              1. step with the average estimator
        c_i = C(grad f_i(x^{t+1}) - g_i^t)                     2. compress the change, all-gather
        g_i^{t+1} = g_i^t + c_i,  g^{t+1} = g^t + (1/n) sum_i c_i    3. update the estimators

    Initialisation: ``g_i^0 = C(grad f_i(x^0))`` (sent compressed), ``g^0 = mean_i g_i^0``.
    Invariant (tested): ``g^t = (1/n) sum_i g_i^t``. With the identity compressor EF21 is
    gradient descent on the averaged gradient.

    Guarantee (upper; :func:`theorylab.rates.compression.ef21`): full gradients, non-convex,
    ``gamma <= 1/(L + L_tilde sqrt(beta/theta))``: ``O((L + L_tilde/delta) f_gap / T)`` with no
    bounded-heterogeneity assumption.

    Parameters
    ----------
    gamma : float >= 0
    compressor : str or Compressor, default ``"top-k"``

    Examples
    --------
    >>> EF21(0.5, "top-k:k=1").config()
    {'gamma': 0.5, 'compressor': 'top-k:k=1'}

    References
    ----------
    P. Richtarik, I. Sokolov, I. Fatkhullin, "EF21: a new, simpler, theoretically better, and
    practically faster error feedback", NeurIPS 2021, arXiv:2106.05203.
    """

    name = "ef21"

    def __init__(self, gamma: float, compressor: str | Compressor = "top-k"):
        self.gamma = check_positive("gamma", gamma, allow_zero=True)
        self.compressor = get_compressor(compressor)

    def config(self):
        return {**super().config(), "compressor": self.compressor.spec}

    def init(self, x0: torch.Tensor, ctx: Context) -> EF21State:
        g_i, g = ctx.comm.compressed_mean(ctx.grad(x0), self.compressor, ctx.algorithm_generators)
        return EF21State(x=x0.clone(), g_i=g_i, g=g)

    def step(self, state: EF21State, ctx: Context, k: int) -> EF21State:
        x = state.x - self.gamma * state.g  # 1.
        c, c_mean = ctx.comm.compressed_mean(  # 2.
            ctx.grad(x) - state.g_i, self.compressor, ctx.algorithm_generators
        )
        return EF21State(x=x, g_i=state.g_i + c, g=state.g + c_mean)  # 3.
