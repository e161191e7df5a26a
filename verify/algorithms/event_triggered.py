"""Event-triggered averaging (LAG-style): a node sends its change only when it is large."""

from __future__ import annotations

import math
import warnings
from typing import NamedTuple

import torch

from theorylab.errors import TheorylabError, TheorylabWarning, check_positive
from verify.algorithms.base import Algorithm, Context, register

__all__ = ["EventTriggered", "EventTriggeredState", "deviation_bound"]


class EventTriggeredState(NamedTuple):
    """``x``: the nodes' iterates; ``xhat``: each node's last sent value (what the others hold);
    ``total``: ``sum_j xhat_j`` as every node holds it (replicated per node), all ``(m, R, d)``;
    ``sends``: rounds each node sent, per replica, ``(m, R)`` int64; ``rounds``: rounds run."""

    x: torch.Tensor
    xhat: torch.Tensor
    total: torch.Tensor
    sends: torch.Tensor
    rounds: int


def deviation_bound(threshold: float, decay: float, q: float, steps: int) -> list[float]:
    r"""``B_k = sum_{j<k} q^{k-1-j} sqrt(threshold decay^j)``, k = 0..steps (the guarantee).

    ``q`` is the contraction of one gradient step of ``f`` (``max |1 - gamma lambda(H)|`` on a
    quadratic with Hessian ``H``). See :class:`EventTriggered`.

    Example
    -------
    >>> [round(b, 6) for b in deviation_bound(0.01, 1.0, 0.5, 3)]
    [0.0, 0.1, 0.15, 0.175]
    """
    out, b = [0.0], 0.0
    for j in range(steps):
        b = q * b + math.sqrt(threshold * decay**j)
        out.append(b)
    return out


@register
class EventTriggered(Algorithm):
    r"""Event-triggered averaging (lazily aggregated, LAG-style) of parallel SGD steps.

    The math (``g_i`` node ``i``'s stochastic gradient, ``c_k = threshold * decay^k``)::

        y_i    = x_i - gamma g_i(x_i)
        send_i = ||y_i - xhat_i||^2 > c_k              (per replica)
        xhat_i <- y_i if send_i                        (else the others keep the old xhat_i)
        x_i    <- (1/n) sum_j xhat_j                   (every node, from the values it holds)

    ``xhat_i`` is the value the others last received from node ``i`` (``xhat_i^0 = x_i^0``,
    exchanged once by ``init``, counted). A sending node puts its change ``y_i - xhat_i`` on
    the wire (``comm.triggered_gather``: one flag byte per replica to all, then the triggered
    rows only), and every node adds the received changes to its running ``sum_j xhat_j``.
    ``threshold = 0`` sends whenever anything changed: :class:`PSGD` up to rounding (tested).

    Guarantee (upper; derived here, the LAG argument of Chen et al. 2018 specialised to
    averaging): from a common start, every skipped node has ``||xhat_j - y_j|| <= sqrt(c_k)``,
    so ``x^{k+1} = mean_j y_j + e_k`` with ``||e_k|| <= sqrt(c_k)``. On an ``L``-smooth,
    ``mu``-strongly convex quadratic the run differs from PSGD on the same noise by
    ``||x^k - x^k_PSGD|| <= B_k = sum_{j<k} q^{k-1-j} sqrt(c_j)``, ``q = max|1 - gamma lambda|``
    (:func:`deviation_bound`), hence ``sqrt(E||x^k - x*||^2) <= sqrt(E_PSGD(k)) + B_k``
    (Minkowski) with ``E_PSGD`` exact (:func:`theorylab.exact.exact_psgd`). A fixed threshold
    leaves a floor ``sqrt(c)/(1 - q)``; a decaying one (``decay < 1``) none.

    Report (:meth:`report`): per node and replica, the rounds it sent and the bytes saved
    against sending every round.

    Parameters
    ----------
    gamma : float > 0
        Step size.
    threshold : float >= 0, default 0
        ``c_0``; a node sends when its squared change exceeds ``c_k``.
    decay : float in (0, 1], default 1
        ``c_k = threshold decay^k`` (1: fixed threshold).
    L : float > 0 or None
        Smoothness, when known: ``gamma > 1/L`` warns (PSGD's condition).

    Raises
    ------
    TheorylabError
        If ``gamma <= 0``, ``threshold < 0`` or ``decay`` is outside (0, 1].

    Examples
    --------
    >>> EventTriggered(0.1, threshold=1e-3, decay=0.9).config()
    {'gamma': 0.1, 'threshold': 0.001, 'decay': 0.9}

    References
    ----------
    T. Chen, G. B. Giannakis, T. Sun, W. Yin, "LAG: Lazily aggregated gradient for
    communication-efficient distributed learning", NeurIPS 2018, arXiv:1805.09965.
    Y. Liu, W. Xu, G. Wu, Z. Tian, Q. Ling, "Communication-censored ADMM for decentralized
    consensus optimization", IEEE TSP 2019, arXiv:1909.06724.
    """

    name = "event_triggered"

    def __init__(
        self, gamma: float, threshold: float = 0.0, decay: float = 1.0, L: float | None = None
    ):
        self.gamma = check_positive("gamma", gamma)
        self.threshold = check_positive("threshold", threshold, allow_zero=True)
        self.decay = check_positive("decay", decay)
        if self.decay > 1.0:
            raise TheorylabError(
                f"decay must lie in (0, 1] (threshold c_k = threshold decay^k), got {decay}"
            )
        if L is not None and self.gamma > 1.0 / check_positive("L", L):
            warnings.warn(
                f"event_triggered: gamma={self.gamma:g} violates the step-size condition "
                f"gamma <= 1/L = {1.0 / L:g}; the guarantee does not apply. Decrease gamma",
                TheorylabWarning,
                stacklevel=2,
            )

    def init(self, x0: torch.Tensor, ctx: Context) -> EventTriggeredState:
        # 0. every node sends its start once, so all hold sum_j xhat_j^0 (counted)
        send = torch.ones(x0.shape[:2], dtype=torch.bool)
        _, values = ctx.comm.triggered_gather(x0, send)
        total = values.sum(dim=0, keepdim=True).expand_as(x0).clone()
        sends = torch.zeros(x0.shape[:2], dtype=torch.int64, device=x0.device)
        return EventTriggeredState(x0.clone(), x0.clone(), total, sends, 0)

    def threshold_at(self, k: int) -> float:
        """``c_k = threshold decay^k``."""
        return self.threshold * self.decay**k

    def step(self, state: EventTriggeredState, ctx: Context, k: int) -> EventTriggeredState:
        # 1. local step
        y = torch.add(state.x, ctx.grad(state.x), alpha=-self.gamma)
        # 2. trigger: squared change since the last send above c_k (per node and replica)
        change = y - state.xhat
        send = (change * change).sum(dim=-1) > self.threshold_at(k)
        # 3. triggered nodes send their change; everyone adds the changes it receives
        _, values = ctx.comm.triggered_gather(change, send.cpu())
        total = state.total + values.sum(dim=0, keepdim=True)
        xhat = torch.where(send[..., None], y, state.xhat)
        # 4. every node moves to the average of the values it holds
        x = total / ctx.comm.n
        sends = state.sends + send.to(state.sends.dtype)
        return EventTriggeredState(x, xhat, total, sends, state.rounds + 1)

    def report(self, state: EventTriggeredState, n: int) -> dict:
        """Per node (rows) and replica (columns): rounds sent, fraction, bytes saved.

        ``bytes_saved = (rounds - sends) (n - 1) b - rounds (n - 1)``: the triggered rows not
        sent, minus the one-byte flags, against an all-gather of every row every round
        (``b`` = bytes of one row of one replica).
        """
        rounds = max(state.rounds, 1)
        b = state.x[0, 0].numel() * state.x.element_size()
        sends = state.sends.cpu()
        saved = (state.rounds - sends) * (n - 1) * b - state.rounds * (n - 1)
        return {
            "rounds": state.rounds,
            "sends": sends.tolist(),
            "fraction": (sends.double() / rounds).tolist(),
            "bytes_saved": saved.tolist(),
        }
