"""SCAFFOLD: local SGD with control variates that cancel the client drift."""

from __future__ import annotations

import warnings
from typing import NamedTuple

import torch

from theorylab.errors import TheorylabError, TheorylabWarning, check_positive
from verify.algorithms.base import Algorithm, Context, register
from verify.algorithms.local_sgd import (
    _check_S,
    _seed,
    check_lazy_settings,
    participation_mask,
)

__all__ = ["SCAFFOLD", "SCAFFOLDState"]

_OPTIONS = ("I", "II")


class SCAFFOLDState(NamedTuple):
    """``x``: local iterates ``y_i``; ``server``: the server model ``x``; ``c_i``: the client
    control variates; ``c``: the server control variate (replicated per node). All
    ``(m, R, d)``."""

    x: torch.Tensor
    server: torch.Tensor
    c_i: torch.Tensor
    c: torch.Tensor


@register
class SCAFFOLD(Algorithm):
    r"""SCAFFOLD (Karimireddy et al. 2020, Algorithm 1), period ``tau``, server step ``eta_g``.

    The math (``g_i`` node ``i``'s stochastic gradient; ``gamma`` = the paper's ``eta_l``,
    ``tau`` = its ``K``, ``n`` = its ``N``; ``c_i^0 = c^0 = 0``)::

        y_i <- x;   tau times: y_i <- y_i - gamma (g_i(y_i) - c_i + c)
        c_i^+ = g_i(x)                                   (option I: a fresh gradient at x)
        c_i^+ = c_i - c + (x - y_i) / (tau gamma)        (option II: reuse the local steps)
        x <- x + eta_g (1/S) sum_{i in S_r} (y_i - x)
        c <- c + (1/n) sum_{i in S_r} (c_i^+ - c_i);     c_i <- c_i^+ for i in S_r

    ``S_r`` a uniform S-subset (``participation``; None = all n), drawn as in
    :class:`~verify.algorithms.local_sgd.LocalSGD` (same stream, so the same subsets). Each
    participant sends ``(y_i, c_i^+ - c_i)``: twice FedAvg's bytes (one ``mean`` or
    ``subset_mean`` of the two stacked; tested). The paper sends ``y_i - x``; sending ``y_i``
    is the same information (``x`` is known to all) and keeps ``eta_g = 1`` exact. With
    ``c_i = c = 0`` forced at every round this is FedAvg (a planted-bug test uses exactly that).

    Guarantee (upper, big-O; Karimireddy et al. 2020, Thm. III; constants recalled, see
    :func:`theorylab.rates.lazy.scaffold`): no heterogeneity (``zeta2``) term; strongly convex
    with ``gamma <= min(1/(81 L tau eta_g), S/(15 mu n tau eta_g))``. On quadratics with full
    participation, option II's expected error is exact
    (:func:`theorylab.exact.exact_scaffold`), and with ``sigma2 = 0`` it converges to ``x*``.

    Parameters
    ----------
    gamma : float > 0
        Local step size (``eta_l``).
    tau : int >= 1, default 1
        Local steps per round (``K``).
    eta_g : float > 0, default 1
        Server step size.
    participation : int in [1, n] or None, default None
        Clients per round ``S``.
    option : {"II", "I"}, default "II"
        How ``c_i^+`` is formed (above).
    L : float > 0 or None
        Smoothness, when known: ``gamma > 1/(81 L tau eta_g)`` warns (the recalled condition).

    Raises
    ------
    TheorylabError
        If ``gamma`` or ``eta_g`` is not > 0, ``tau < 1``, ``participation`` is outside
        ``[1, n]`` or ``option`` is not "I"/"II".

    Examples
    --------
    >>> SCAFFOLD(0.05, tau=5).config()
    {'gamma': 0.05, 'tau': 5, 'eta_g': 1.0, 'option': 'II', 'participation': None}

    References
    ----------
    S. P. Karimireddy, S. Kale, M. Mohri, S. J. Reddi, S. U. Stich, A. T. Suresh, "SCAFFOLD:
    stochastic controlled averaging for federated learning", ICML 2020, arXiv:1910.06378.
    """

    name = "scaffold"

    def __init__(
        self,
        gamma: float,
        tau: int = 1,
        eta_g: float = 1.0,
        participation: int | None = None,
        option: str = "II",
        L: float | None = None,
    ):
        self.gamma, self.tau, self.eta_g, self.participation = check_lazy_settings(
            gamma, tau, eta_g, participation
        )
        if option not in _OPTIONS:
            raise TheorylabError(f"option must be one of {_OPTIONS} (the paper's), got {option!r}")
        self.option = option
        if L is not None:
            L = check_positive("L", L)
            limit = 1.0 / (81.0 * L * self.tau * self.eta_g)
            if self.gamma > limit:
                warnings.warn(
                    f"scaffold: gamma={self.gamma:g} violates the step-size condition "
                    f"gamma <= 1/(81 L tau eta_g) = {limit:g} (Karimireddy et al. 2020, Thm. III, "
                    "recalled); the guarantee does not apply. Decrease gamma",
                    TheorylabWarning,
                    stacklevel=2,
                )

    def config(self):
        out = super().config()
        out["participation"] = self.participation
        return out

    def init(self, x0: torch.Tensor, ctx: Context) -> SCAFFOLDState:
        _check_S(self.participation, ctx.comm.n)
        zero = torch.zeros_like(x0)
        return SCAFFOLDState(x=x0.clone(), server=x0.clone(), c_i=zero, c=zero.clone())

    def step(self, state: SCAFFOLDState, ctx: Context, k: int) -> SCAFFOLDState:
        x, c_i, c = state.server, state.c_i, state.c
        # 1. corrected local step  y <- y - gamma (g_i(y) - c_i + c)
        y = state.x - self.gamma * (ctx.grad(state.x) - c_i + c)
        if (k + 1) % self.tau:
            return state._replace(x=y)
        # 2. new client control variate
        if self.option == "I":
            c_new = ctx.grad(x)
        else:
            c_new = c_i - c + (x - y) / (self.tau * self.gamma)
        dc = c_new - c_i
        # 3. participants send (y_i, c_i^+ - c_i): one mean of the two stacked (2 d per replica)
        comm, S = ctx.comm, _check_S(self.participation, ctx.comm.n)
        d = y.shape[-1]
        both = torch.cat([y, dc], dim=-1)
        if S == comm.n:
            avg = comm.mean(both, inplace=True)
            scale, keep = 1.0, None
        else:
            mask = participation_mask(_seed(ctx), k // self.tau, comm.n, S, y.shape[1])
            keep = mask[comm.nodes.cpu()].to(y.device)
            avg = comm.subset_mean(both, keep)
            scale = S / comm.n  # (1/n) sum over S_r = (S/n) * (mean over S_r)
        y_avg, dc_avg = avg[..., :d], avg[..., d:]
        # 4. server step and control-variate update; participants keep c_i^+
        x_new = y_avg if self.eta_g == 1.0 else x + self.eta_g * (y_avg - x)
        c_next = c + scale * dc_avg
        ci_next = c_new if keep is None else torch.where(keep[..., None], c_new, c_i)
        return SCAFFOLDState(x=x_new.contiguous(), server=x_new.clone(), c_i=ci_next, c=c_next)
