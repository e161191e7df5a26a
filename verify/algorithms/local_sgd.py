"""Local SGD / FedAvg: tau local steps on each node's own f_i, then a (partial) global mean."""

from __future__ import annotations

import warnings
from typing import NamedTuple

import numpy as np
import torch

from theorylab.errors import TheorylabError, TheorylabWarning, check_int, check_positive
from verify.algorithms.base import Algorithm, Context, register

__all__ = ["LocalSGD", "LocalSGDState", "participation_mask", "check_lazy_settings"]

#: Tag of the shared participation stream (a SeedSequence word; distinct from verify.seeding's
#: per-node streams, which are keyed by (seed, stream index, node)).
_PARTICIPATION_TAG = 0x1A2F_0009


def participation_mask(seed: int, round_: int, n: int, S: int, replicas: int) -> torch.Tensor:
    """The clients taking part in round ``round_``: ``bool`` of shape ``(n, replicas)``.

    For every replica independently, a uniform S-subset of the n clients drawn without
    replacement (the first ``S`` of a uniformly random permutation), from the shared stream
    ``SeedSequence([seed, tag, round_])``: every rank computes the same mask without talking,
    and replica ``r``'s subsets are independent of replica ``r'``'s, so the mean over replicas
    estimates the expectation over the sampling (what :func:`theorylab.exact.exact_local_sgd`
    computes).

    Example
    -------
    >>> m = participation_mask(0, 3, n=5, S=2, replicas=4)
    >>> m.shape, m.sum(dim=0).tolist()
    (torch.Size([5, 4]), [2, 2, 2, 2])
    >>> bool((m == participation_mask(0, 3, 5, 2, 4)).all())
    True
    """
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), _PARTICIPATION_TAG, round_]))
    order = np.argsort(rng.random((replicas, n)), axis=1)[:, :S]  # (R, S)
    mask = np.zeros((replicas, n), dtype=bool)
    np.put_along_axis(mask, order, True, axis=1)
    return torch.from_numpy(mask.T.copy())


def check_lazy_settings(gamma, tau, eta_g, participation) -> tuple:
    """Validate ``(gamma > 0, tau >= 1, eta_g > 0, participation None or int >= 1)``."""
    gamma = check_positive("gamma", gamma)
    tau = check_int("tau (local steps per round)", tau, minimum=1)
    eta_g = check_positive("eta_g (server step size)", eta_g)
    if participation is not None:
        participation = check_int("participation S (clients per round)", participation, 1)
    return gamma, tau, eta_g, participation


def _check_S(S: int | None, n: int) -> int:
    if S is None:
        return n
    if S > n:
        raise TheorylabError(
            f"participation S = {S} must lie in [1, n = {n}] (clients taking part per round)"
        )
    return S


def _seed(ctx: Context) -> int:
    seed = ctx.extra.get("seed")
    if seed is None:
        raise TheorylabError(
            "partial participation draws its subsets from the run's seed, ctx.extra['seed'] "
            "(verify.run.make_context sets it); build the context with make_context"
        )
    return int(seed)


def _warn(name: str, gamma: float, condition: str) -> None:
    warnings.warn(
        f"{name}: gamma={gamma:g} violates the step-size condition {condition}; the guarantee "
        "does not apply. Decrease gamma",
        TheorylabWarning,
        stacklevel=3,
    )


class LocalSGDState(NamedTuple):
    """``x``: the nodes' local iterates ``y_i`` (equal to the server model at round ends);
    ``server``: the server model ``x`` of the current round (replicated per node), both
    ``(m, R, d)``."""

    x: torch.Tensor
    server: torch.Tensor


@register
class LocalSGD(Algorithm):
    r"""Local SGD / FedAvg with period ``tau``, server step ``eta_g`` and partial participation.

    The math (``g_i`` = node ``i``'s stochastic gradient of its own ``f_i``, ``gamma`` the local
    step size; one round is ``tau`` local steps, counted as ``tau`` steps ``k``)::

        y_i <- x;   tau times: y_i <- y_i - gamma g_i(y_i)
        x   <- x + eta_g (1/S) sum_{i in S_r} (y_i - x)

    with ``S_r`` a uniform S-subset of the n clients, drawn without replacement, independently
    each round and each replica (:func:`participation_mask`, from the run's seed, identical on
    every rank). ``S = n`` and ``eta_g = 1`` is local SGD (Stich 2019), i.e. DSGD with the
    schedule ``(I, ..., I, 11^T/n)``; ``tau = 1`` on top of that is :class:`PSGD`, step for step
    and bit for bit (tested). Only participants send (``comm.subset_mean``; with ``S = n`` the
    plain ``comm.mean``), so a round costs ``S`` senders' bytes. Clients not sampled also take
    their local steps (the simulated clients are stacked), and discard them at the round's end.

    Guarantee (upper; Koloskova et al. 2020, Thm. 2 with ``p = 1``; the derived constants in
    :func:`theorylab.rates.lazy.local_sgd`): with ``gamma <= 1/L`` and
    ``gamma < 1/(2 L (tau - 1))``, the drift within a round adds
    ``O(L^2 gamma^2 ((tau - 1) sigma2 + (tau - 1)^2 zeta2))`` to PSGD's bound; partial
    participation adds the sampling variance :func:`theorylab.rates.lazy.fedavg` (FedAvg's
    condition ``gamma eta_g tau L <= 1``, Karimireddy et al. 2020, Thm. I). On quadratics the
    expected error (over noise and sampling) is exact:
    :func:`theorylab.exact.exact_local_sgd`.

    Parameters
    ----------
    gamma : float > 0
        Local step size.
    tau : int >= 1, default 1
        Local steps per round (communication period).
    eta_g : float > 0, default 1
        Server step size.
    participation : int in [1, n] or None, default None
        Clients ``S`` per round; ``None`` is all ``n`` (checked against ``n`` at ``init``).
    L : float > 0 or None, default None
        Smoothness, when known: a ``gamma`` outside the conditions above warns
        (:class:`theorylab.errors.TheorylabWarning`) naming the condition.

    Raises
    ------
    TheorylabError
        If ``gamma`` or ``eta_g`` is not > 0, ``tau < 1``, or ``participation`` is outside
        ``[1, n]``.

    Examples
    --------
    >>> LocalSGD(0.1, tau=4, participation=2).config()
    {'gamma': 0.1, 'tau': 4, 'eta_g': 1.0, 'participation': 2}

    References
    ----------
    H. B. McMahan, E. Moore, D. Ramage, S. Hampson, B. Aguera y Arcas, "Communication-efficient
    learning of deep networks from decentralized data", AISTATS 2017, arXiv:1602.05629.
    S. U. Stich, "Local SGD converges fast and communicates little", ICLR 2019,
    arXiv:1805.09767.
    A. Koloskova, N. Loizou, S. Boreiri, M. Jaggi, S. U. Stich, ICML 2020, arXiv:2003.10422.
    S. P. Karimireddy et al., "SCAFFOLD", ICML 2020, arXiv:1910.06378 (server step, sampling).
    """

    name = "local_sgd"

    def __init__(
        self,
        gamma: float,
        tau: int = 1,
        eta_g: float = 1.0,
        participation: int | None = None,
        L: float | None = None,
    ):
        self.gamma, self.tau, self.eta_g, self.participation = check_lazy_settings(
            gamma, tau, eta_g, participation
        )
        if L is not None:
            L = check_positive("L", L)
            cond = "gamma <= 1/L"
            bad = self.gamma > 1.0 / L
            if self.tau > 1:
                cond += " and gamma < 1/(2 L (tau - 1))"
                bad |= self.gamma >= 1.0 / (2.0 * L * (self.tau - 1))
            if self.eta_g != 1.0 or self.participation is not None:
                cond += " and gamma eta_g tau L <= 1"
                bad |= self.gamma * self.eta_g * self.tau * L > 1.0
            if bad:
                _warn("local_sgd", self.gamma, f"{cond} (L={L:g}, tau={self.tau})")

    def config(self):
        out = super().config()
        out["participation"] = self.participation
        return out

    def init(self, x0: torch.Tensor, ctx: Context) -> LocalSGDState:
        _check_S(self.participation, ctx.comm.n)
        return LocalSGDState(x=x0.clone(), server=x0.clone())

    def step(self, state: LocalSGDState, ctx: Context, k: int) -> LocalSGDState:
        # 1. local step on every node's own f_i
        y = torch.add(state.x, ctx.grad(state.x), alpha=-self.gamma)
        if (k + 1) % self.tau:
            return LocalSGDState(x=y, server=state.server)
        # 2. round end: mean of the participants' models (only they send)
        comm, S = ctx.comm, _check_S(self.participation, ctx.comm.n)
        if S == comm.n:
            avg = comm.mean(y, inplace=True)
        else:
            mask = participation_mask(_seed(ctx), k // self.tau, comm.n, S, y.shape[1])
            avg = comm.subset_mean(y, mask[comm.nodes.cpu()])
        # 3. server step x <- x + eta_g (avg - x); every node restarts from the new x
        if self.eta_g != 1.0:
            avg = state.server + self.eta_g * (avg - state.server)
        return LocalSGDState(x=avg, server=avg.clone())
