"""CHOCO-SGD: decentralized SGD with compressed gossip (Koloskova, Stich, Jaggi 2019)."""

from __future__ import annotations

from typing import NamedTuple

import torch

from theorylab.compressors import Compressor, get_compressor
from theorylab.errors import TheorylabError, check_positive
from verify.algorithms.base import Algorithm, Context, register

__all__ = ["ChocoSGD", "ChocoState"]


class ChocoState(NamedTuple):
    """``x``: iterates; ``x_hat``: node i's public copy ``x_hat_i`` (what its neighbours know);
    ``s``: ``s_i = sum_j W_ij x_hat_j`` (the paper's memory-efficient form: node i keeps the
    weighted sum of its neighbours' copies instead of each copy)."""

    x: torch.Tensor
    x_hat: torch.Tensor
    s: torch.Tensor


@register
class ChocoSGD(Algorithm):
    r"""CHOCO-SGD; with ``gamma = 0`` it is CHOCO-Gossip (average consensus).

    The math, in the paper's order (``gamma`` the step size, ``consensus_step`` CHOCO's
    ``gamma``, ``C`` in B(delta), fixed ``W``)::

        x_i^{t+1/2} = x_i^t - gamma g_i(x_i^t)                      1. local step
        q_i = C(x_i^{t+1/2} - x_hat_i)                                2. compress the change
        x_hat_i <- x_hat_i + q_i;  s_i <- s_i + sum_j W_ij q_j         3. send q_i to neighbours
        x_i^{t+1} = x_i^{t+1/2} + consensus_step (s_i - x_hat_i)       4. consensus step

    ``s_i - x_hat_i = sum_j W_ij (x_hat_j - x_hat_i)`` (rows of W sum to 1). The average of the
    ``x_i`` is preserved exactly by step 4 for doubly stochastic W (tested).

    Guarantee (upper; :func:`theorylab.rates.compression.choco_gossip`): with the theoretical
    consensus step, the consensus error decays linearly at rate ``1 - spectral_gap^2 delta/82``,
    ``spectral_gap = 1 - rho``, ``rho = ||W - 11^T/n||_2`` (CHOCO's eigengap for symmetric W).

    Parameters
    ----------
    gamma : float >= 0
    consensus_step : float in (0, 1]
    compressor : str or Compressor, default ``"top-k"``

    Raises
    ------
    TheorylabError
        Bad parameters, or a time-varying schedule (``s_i`` assumes one fixed W).

    Examples
    --------
    >>> ChocoSGD(0.0, 0.3, "top-k:k=2").config()
    {'gamma': 0.0, 'consensus_step': 0.3, 'compressor': 'top-k:k=2'}

    References
    ----------
    A. Koloskova, S. U. Stich, M. Jaggi, "Decentralized stochastic optimization and gossip
    algorithms with compressed communication", ICML 2019, arXiv:1902.00340.
    """

    name = "choco_sgd"

    def __init__(self, gamma: float, consensus_step: float, compressor: str | Compressor = "top-k"):
        self.gamma = check_positive("gamma", gamma, allow_zero=True)
        self.consensus_step = check_positive("consensus_step", consensus_step)
        if self.consensus_step > 1:
            raise TheorylabError(f"consensus_step must be in (0, 1], got {consensus_step}")
        self.compressor = get_compressor(compressor)

    def config(self):
        return {**super().config(), "compressor": self.compressor.spec}

    def init(self, x0: torch.Tensor, ctx: Context) -> ChocoState:
        if len(ctx.comm.schedule) != 1:
            raise TheorylabError(
                f"CHOCO-SGD needs a fixed mixing matrix (schedule of period 1), got period "
                f"{len(ctx.comm.schedule)}"
            )
        zeros = torch.zeros_like(x0)
        return ChocoState(x=x0.clone(), x_hat=zeros, s=zeros.clone())

    def step(self, state: ChocoState, ctx: Context, k: int) -> ChocoState:
        x_half = state.x
        if self.gamma:
            x_half = x_half - self.gamma * ctx.grad(state.x)  # 1.
        q, Wq = ctx.comm.compressed_mix(  # 2., 3.
            x_half - state.x_hat, k, self.compressor, ctx.algorithm_generators
        )
        x_hat, s = state.x_hat + q, state.s + Wq
        return ChocoState(x=x_half + self.consensus_step * (s - x_hat), x_hat=x_hat, s=s)  # 4.
