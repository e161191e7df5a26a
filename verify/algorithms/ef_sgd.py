"""Error-feedback SGD (EF-SGD / mem-SGD): compress the step plus the memory of past errors."""

from __future__ import annotations

from typing import NamedTuple

import torch

from theorylab.compressors import Compressor, get_compressor
from theorylab.errors import check_positive
from verify.algorithms.base import Algorithm, Context, register

__all__ = ["EFSGD", "EFSGDState"]


class EFSGDState(NamedTuple):
    """``x``: iterates (equal on all nodes); ``e``: each node's error memory ``e_j``."""

    x: torch.Tensor
    e: torch.Tensor


@register
class EFSGD(Algorithm):
    r"""Distributed SGD with error feedback (Stich et al. 2018; Karimireddy et al. 2019).

    The math, per node ``j`` (``gamma`` the step size, ``C`` the compressor)::

        p_j = gamma g_j(x) + e_j      1. add the memory to the step
        q_j = C(p_j)                  2. compress; all-gather the encoded q_j
        e_j <- p_j - q_j              3. remember what was not sent
        x  <- x - (1/n) sum_j q_j     4. apply the average of the messages

    Identity (exact, any compressor, tested): the virtual iterate
    ``x_tilde = x - (1/n) sum_j e_j`` runs plain parallel SGD,
    ``x_tilde^{k+1} = x_tilde^k - gamma (1/n) sum_j g_j(x^k)`` (gradients at ``x^k``); and
    ``sum_{s<k} mean_j q_j^s + mean_j e_j^k = gamma sum_{s<k} mean_j g_j^s`` (conservation).

    Guarantee (upper; :func:`theorylab.rates.compression.ef_sgd`, Karimireddy et al. Thm II):
    for ``C`` in B(delta), delta enters only the ``O(1/T)`` term.

    Parameters
    ----------
    gamma : float >= 0
    compressor : str or Compressor, default ``"scaled-sign"``

    Examples
    --------
    >>> EFSGD(0.1, "top-k:k=2").config()
    {'gamma': 0.1, 'compressor': 'top-k:k=2'}

    References
    ----------
    S. U. Stich, J.-B. Cordonnier, M. Jaggi, "Sparsified SGD with memory", NeurIPS 2018,
    arXiv:1809.07599. S. P. Karimireddy, Q. Rebjock, S. U. Stich, M. Jaggi, "Error feedback fixes
    SignSGD and other gradient compression schemes", ICML 2019, arXiv:1901.09847.
    """

    name = "ef_sgd"

    def __init__(self, gamma: float, compressor: str | Compressor = "scaled-sign"):
        self.gamma = check_positive("gamma", gamma, allow_zero=True)
        self.compressor = get_compressor(compressor)

    def config(self):
        return {**super().config(), "compressor": self.compressor.spec}

    def init(self, x0: torch.Tensor, ctx: Context) -> EFSGDState:
        return EFSGDState(x=x0.clone(), e=torch.zeros_like(x0))

    def step(self, state: EFSGDState, ctx: Context, k: int) -> EFSGDState:
        p = self.gamma * ctx.grad(state.x) + state.e  # 1.
        q, avg = ctx.comm.compressed_mean(p, self.compressor, ctx.algorithm_generators)  # 2.
        return EFSGDState(x=state.x - avg, e=p - q)  # 4., 3.

    @staticmethod
    def virtual_iterate(state: EFSGDState, ctx: Context) -> torch.Tensor:
        """``x_tilde = x - (1/n) sum_j e_j`` (measurement traffic: ``comm.allsum``)."""
        e_mean = ctx.comm.allsum(state.e) / ctx.comm.n
        return state.x - e_mean.unsqueeze(0)
