"""Gradient tracking, in its adapt-then-combine and combine-then-adapt (DIGing) forms."""

from __future__ import annotations

from typing import NamedTuple

import torch

from theorylab.errors import TheorylabError, check_positive
from verify.algorithms._weights import require_doubly_stochastic, warn_step
from verify.algorithms.base import Algorithm, Context, register

__all__ = ["GradientTracking", "GradientTrackingState"]

_FORMS = ("atc", "cta")


class GradientTrackingState(NamedTuple):
    """``x``: iterates; ``y``: gradient trackers; ``g``: the last stochastic gradients
    ``g^k = g(x^k)`` (kept because ``y`` needs ``g^{k+1} - g^k``). All of shape ``(m, R, d)``."""

    x: torch.Tensor
    y: torch.Tensor
    g: torch.Tensor


@register
class GradientTracking(Algorithm):
    r"""Gradient tracking with the round's doubly stochastic mixing matrix ``W^(k)``.

    The math (``g^k = g(x^k)``, one stochastic gradient per node and round, used twice;
    ``gamma`` the step size; stacked over nodes):

    * ``form="atc"`` (adapt-then-combine; Nedic, Olshevsky, Shi 2017; Qu & Li 2018;
      analysed by Koloskova, Lin, Stich 2021)::

          x^{k+1} = W^(k) (x^k - gamma y^k)
          y^{k+1} = W^(k) (y^k + g^{k+1} - g^k),        y^0 = g^0 = g(x^0)

    * ``form="cta"`` (combine-then-adapt, DIGing; Nedic, Olshevsky, Shi 2017)::

          x^{k+1} = W^(k) x^k - gamma y^k
          y^{k+1} = W^(k) y^k + g^{k+1} - g^k,          y^0 = g^0

    ``y^0 = g^0`` makes the tracker's average equal the gradients' average at every step
    (``1^T W = 1^T``): ``ybar^k = gbar^k``. So with ``sigma2 = 0`` the fixed point has
    ``y = 0`` and consensus on a stationary point of ``f = (1/n) sum f_i``: unlike DSGD, no
    ``zeta2`` floor. ATC needs two neighbour exchanges per round (``y``'s mix needs
    ``g^{k+1}``, taken at the new ``x``); CTA sends ``x`` and ``y`` in one message of ``2 d``
    numbers. ``W`` must be doubly stochastic (checked at :meth:`init`, naming a
    column-stochastic matrix as such).

    Guarantee (upper, big-O; Koloskova, Lin, Stich 2021; ``p = 1 - rho^2``,
    ``rho = ||W - 11^T/n||_2``, spectral gap ``1 - rho``; ``c`` their constant tied to the
    negative eigenvalues of ``W``, ``c = 1`` for a lazy ``W >= 0``): for ``mu``-strongly convex
    ``f``, ``T = O~(sigma2/(mu n eps) + sqrt(L) sigma/(mu sqrt(p) c sqrt(eps))
    + L/(mu p c) log(1/eps))`` with **no** ``zeta2`` term (:func:`theorylab.rates.tracking.
    gradient_tracking`), for ``gamma <= p c/(c_0 L)``. On quadratics the expected error at
    every step is exact (:func:`theorylab.exact.exact_gradient_tracking`).

    Parameters
    ----------
    gamma : float >= 0
        Step size.
    form : {"atc", "cta"}, default ``"atc"``
    L : float > 0, optional
        Smoothness constant; when given, :meth:`init` warns (``TheorylabWarning``) if
        ``gamma > p/L`` (the theorem's condition with ``c = c_0 = 1``, ``p = 1 - rho^2`` of the
        schedule's per-round rate).

    Raises
    ------
    TheorylabError
        If ``gamma`` is negative, ``form`` unknown or (at :meth:`init`) a ``W^(k)`` is not
        doubly stochastic.

    Examples
    --------
    >>> GradientTracking(0.05, form="cta").config()
    {'gamma': 0.05, 'form': 'cta'}

    References
    ----------
    A. Nedic, A. Olshevsky, W. Shi, "Achieving geometric convergence for distributed optimization
    over time-varying graphs", SIAM J. Optim. 2017, arXiv:1607.03218.
    G. Qu, N. Li, "Harnessing smoothness to accelerate distributed optimization", IEEE TCNS 2018,
    arXiv:1605.07112.
    A. Koloskova, T. Lin, S. U. Stich, "An improved analysis of gradient tracking for
    decentralized machine learning", NeurIPS 2021, arXiv:2202.03836.
    """

    name = "gradient_tracking"

    def __init__(self, gamma: float, form: str = "atc", L: float | None = None):
        self.gamma = check_positive("gamma", gamma, allow_zero=True)
        if form not in _FORMS:
            raise TheorylabError(f"form must be one of {_FORMS}, got {form!r}")
        self.form = form
        self.L = None if L is None else check_positive("L", L)

    def init(self, x0: torch.Tensor, ctx: Context) -> GradientTrackingState:
        require_doubly_stochastic(ctx.comm.schedule, "gradient tracking")
        if self.L is not None and self.gamma > 0:
            from theorylab.spectral import schedule_rho

            p = 1.0 - schedule_rho(ctx.comm.schedule) ** 2
            if self.gamma > p / self.L:
                warn_step(
                    "gradient tracking",
                    self.gamma,
                    f"gamma <= p c/(c_0 L) = {p / self.L:.4g} (p = 1 - rho^2 = {p:.4g}, "
                    "c = c_0 = 1; Koloskova, Lin, Stich 2021)",
                )
        g = ctx.grad(x0)
        return GradientTrackingState(x=x0.clone(), y=g.clone(), g=g)

    def step(self, state: GradientTrackingState, ctx: Context, k: int) -> GradientTrackingState:
        x, y, g = state
        if self.form == "atc":
            # 1. local step along the tracker, mix      2. fresh gradient at the new point
            x_new = ctx.comm.mix(torch.add(x, y, alpha=-self.gamma), k)
            g_new = ctx.grad(x_new)
            # 3. tracker update: add the gradient change, mix
            y_new = ctx.comm.mix(y + g_new - g, k)
            return GradientTrackingState(x=x_new, y=y_new, g=g_new)
        # 1. mix x and y together (one message of 2d numbers per neighbour)
        d = x.shape[-1]
        mixed = ctx.comm.mix(torch.cat([x, y], dim=-1), k)
        # 2. local step along the old tracker   3. fresh gradient at the new point
        x_new = torch.add(mixed[..., :d], y, alpha=-self.gamma)
        g_new = ctx.grad(x_new)
        # 4. tracker update: mixed tracker plus the gradient change
        y_new = mixed[..., d:] + g_new - g
        return GradientTrackingState(x=x_new, y=y_new, g=g_new)
