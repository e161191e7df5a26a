"""Parallel SGD with compressed gradients (QSGD style): gather the encoded messages, average."""

from __future__ import annotations

from typing import NamedTuple

import torch

from theorylab.compressors import Compressor, get_compressor
from theorylab.errors import check_positive
from verify.algorithms.base import Algorithm, Context, register

__all__ = ["CompressedPSGD", "CompressedPSGDState"]


class CompressedPSGDState(NamedTuple):
    """``x``: the nodes' iterates, shape ``(m, R, d)`` (equal on all nodes)."""

    x: torch.Tensor


@register
class CompressedPSGD(Algorithm):
    r"""Parallel SGD where each node sends ``C(g_j)`` (encoded bytes) to all others.

    The math: ``x^{k+1} = x^k - gamma (1/n) sum_j C_j(g_j(x^k))`` with independent compressors
    (node ``j`` draws from its own algorithm generator); ``gamma`` is the step size.

    Guarantee (upper; :func:`theorylab.rates.compression.compressed_psgd`, rates.md §5a): for
    ``C`` in U(omega) the averaged message has variance
    ``<= (1+omega) sigma2/n + (omega/n)(zeta2 + ||grad f||^2)``, so the noise floor grows
    linearly in ``1 + omega`` (exact on quadratics with rand-k). A biased ``C`` (top-k, sign)
    makes it converge to a biased point; use :class:`~verify.algorithms.ef_sgd.EFSGD` then.

    Parameters
    ----------
    gamma : float >= 0
    compressor : str or Compressor (spec for :func:`theorylab.compressors.get_compressor`)

    Examples
    --------
    >>> CompressedPSGD(0.1, "qsgd:s=4").config()
    {'gamma': 0.1, 'compressor': 'qsgd:s=4'}

    References
    ----------
    D. Alistarh, D. Grubic, J. Li, R. Tomioka, M. Vojnovic, "QSGD: communication-efficient SGD
    via gradient quantization and encoding", NeurIPS 2017, arXiv:1610.02132.
    """

    name = "compressed_psgd"

    def __init__(self, gamma: float, compressor: str | Compressor = "qsgd"):
        self.gamma = check_positive("gamma", gamma, allow_zero=True)
        self.compressor = get_compressor(compressor)

    def config(self):
        return {**super().config(), "compressor": self.compressor.spec}

    def init(self, x0: torch.Tensor, ctx: Context) -> CompressedPSGDState:
        return CompressedPSGDState(x=x0.clone())

    def step(self, state: CompressedPSGDState, ctx: Context, k: int) -> CompressedPSGDState:
        # 1. local stochastic gradient  2. all-gather C(g_j) (encoded) and average  3. step
        g = ctx.grad(state.x)
        _, avg = ctx.comm.compressed_mean(g, self.compressor, ctx.algorithm_generators)
        return CompressedPSGDState(x=state.x - self.gamma * avg)
