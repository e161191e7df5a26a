r"""Asynchronous SGD with a parameter server, and fixed-delay SGD: the update rules.

Two algorithms of the asynchronous family (shared/references/families.md §6):

* :class:`AsyncSGD`, the parameter server's and the workers' rules. They are plain functions on
  tensors; the loop that drives arrivals (who sends what when, real or virtual clock) is
  :mod:`verify.asynchronous`, which talks only through the communicator's point-to-point
  operations. This module never talks to the process group itself.
* :class:`FixedDelaySGD`, a registered :class:`~verify.algorithms.base.Algorithm` (``init`` /
  ``step`` on both executors): every applied gradient is exactly ``tau`` steps old, the
  analysable special case whose exact error curve is
  :func:`theorylab.exact.delay.exact_delayed_sgd`.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from theorylab.errors import TheorylabError, check_int, check_positive
from theorylab.rates.asynchronous import delay_adaptive_steps
from verify.algorithms.base import Algorithm, Context, register

__all__ = ["AsyncSGD", "AsyncServerState", "FixedDelaySGD", "FixedDelaySGDState"]


class AsyncServerState(NamedTuple):
    """The server's memory: ``x`` the model, shape ``(R, d)``; ``k`` the version (the number of
    gradients applied so far)."""

    x: torch.Tensor
    k: int


class AsyncSGD:
    r"""Asynchronous SGD on a parameter server (the server's and the workers' update rules).

    The math (Mishchenko et al. 2022, §2; Koloskova et al. 2022, Alg. 1). ``n`` workers, each
    always computing one gradient; worker ``i`` read the model of version ``r``; when its
    gradient arrives as the server's ``k``-th update,

    1. (worker) ``g = grad F_i(x_r; xi)``, computed at the model it last received;
    2. (server) staleness ``tau_k = k - r``; step ``gamma_k = gamma`` (constant) or
       ``gamma_k = gamma min(1, n / tau_k)`` (``adaptive=True``: the delay-adaptive rule of
       Mishchenko et al.'s code, ``lr * n / max(n, delay)``,
       :func:`theorylab.rates.asynchronous.delay_adaptive_steps`);
    3. (server) ``x_{k+1} = x_k - gamma_k g``, i.e. ``x_{k+1} = x_k - gamma_k
       grad F_i(x_{k - tau_k})``, and the new model goes back to worker ``i``.

    :meth:`apply_mean` is the synchronous comparison (minibatch SGD on the server): all ``n``
    gradients of one round, taken at the same model, averaged, ``x <- x - gamma (1/n) sum_i g_i``
    (staleness 0).

    Guarantee (upper, big-O; rates in :mod:`theorylab.rates.asynchronous`): non-convex
    ``O(sigma2/eps^2 + sqrt(tau_max tau_avg)/eps)`` with a constant step, ``O(sigma2/eps^2 +
    tau_avg/eps)`` delay-adaptive (Koloskova et al. 2022); ``O(sigma2/eps^2 + n/eps)`` whatever
    the delays (Mishchenko et al. 2022). With heterogeneous data and unequal speeds the server
    drifts to ``argmin sum_i p_i f_i``, ``p_i`` the share of applied gradients from worker ``i``
    (:func:`theorylab.rates.asynchronous.speed_weighted_minimizer`).

    Parameters
    ----------
    gamma : float >= 0
        Base step size.
    n : int >= 1
        Number of workers (the ``n`` of the adaptive rule).
    adaptive : bool, default False
        Use the delay-adaptive step ``gamma min(1, n / tau_k)``.

    Raises
    ------
    TheorylabError, TypeError
        A negative or non-finite ``gamma``, ``n < 1``, a negative staleness.

    Examples
    --------
    >>> import torch
    >>> alg = AsyncSGD(0.1, n=2, adaptive=True)
    >>> s = alg.init(torch.ones(1, 1, dtype=torch.float64))
    >>> s, gamma_k = alg.apply(s, torch.ones(1, 1, dtype=torch.float64), tau=4)
    >>> gamma_k, s.k, s.x.item()   # gamma * 2 / 4
    (0.05, 1, 0.95)

    References
    ----------
    K. Mishchenko, F. Bach, M. Even, B. Woodworth, "Asynchronous SGD beats minibatch SGD under
    arbitrary delays", NeurIPS 2022, arXiv:2206.07638. A. Koloskova, S. U. Stich, M. Jaggi,
    "Sharper convergence guarantees for asynchronous SGD for distributed and federated
    learning", NeurIPS 2022, arXiv:2206.08307.
    """

    name = "async_sgd"

    def __init__(self, gamma: float, n: int, adaptive: bool = False):
        self.gamma = check_positive("gamma", gamma, allow_zero=True)
        self.n = check_int("n", n, minimum=1)
        if not isinstance(adaptive, bool):
            raise TypeError(f"adaptive must be a bool, got {adaptive!r}")
        self.adaptive = adaptive

    def config(self) -> dict:
        """JSON-serialisable hyperparameters."""
        return {"algorithm": self.name, "gamma": self.gamma, "n": self.n, "adaptive": self.adaptive}

    def init(self, x0: torch.Tensor) -> AsyncServerState:
        """Server state at version 0 from the model ``x0`` of shape ``(R, d)``."""
        if not isinstance(x0, torch.Tensor) or x0.dim() != 2:
            raise TheorylabError(f"x0 must be a tensor of shape (R, d), got {x0!r:.80}")
        return AsyncServerState(x=x0.clone(), k=0)

    def step_size(self, tau: int) -> float:
        """``gamma_k`` for a gradient of staleness ``tau`` (step 2)."""
        tau = check_int("tau (staleness)", tau, minimum=0)
        if not self.adaptive or self.gamma == 0:
            return self.gamma
        return float(delay_adaptive_steps(self.gamma, [tau], self.n)[0])

    def apply(
        self, state: AsyncServerState, g: torch.Tensor, tau: int
    ) -> tuple[AsyncServerState, float]:
        """Steps 2-3: apply one stale gradient; returns ``(new state, gamma_k)``."""
        gamma_k = self.step_size(tau)
        # 3. x_{k+1} = x_k - gamma_k g   (a new tensor: earlier states stay valid)
        return AsyncServerState(x=torch.add(state.x, g, alpha=-gamma_k), k=state.k + 1), gamma_k

    def apply_mean(self, state: AsyncServerState, grads) -> AsyncServerState:
        """Synchronous minibatch step: ``x <- x - gamma (1/m) sum_j grads[j]``; version + m."""
        grads = list(grads)
        if not grads:
            raise TheorylabError("apply_mean needs at least one gradient")
        mean = torch.stack(grads).mean(dim=0)
        return AsyncServerState(
            x=torch.add(state.x, mean, alpha=-self.gamma), k=state.k + len(grads)
        )

    @staticmethod
    def compute(oracle, x: torch.Tensor, node: int, generator: torch.Generator) -> torch.Tensor:
        """Step 1 (worker): ``grad F_node(x; xi)`` of the data node ``node`` at the model ``x``
        (shape ``(R, d)``), noise from ``generator`` (that worker's own stream)."""
        nodes = torch.tensor([node], device=x.device)
        return oracle.grad(x.unsqueeze(0), nodes, [generator])[0]


class FixedDelaySGDState(NamedTuple):
    """``x``: the iterates, shape ``(m, R, d)``; ``past``: ``(x_{k-1}, ..., x_{k-tau})``."""

    x: torch.Tensor
    past: tuple


@register
class FixedDelaySGD(Algorithm):
    r"""Fixed-delay SGD: every applied gradient is exactly ``tau`` steps old.

    The math: ``x_{k+1} = x_k - gamma (1/n) sum_i g_i(x_{k - tau})`` with
    ``x_{-tau} = ... = x_{-1} = x_0`` (each node computes its stochastic gradient at the
    iterate of ``tau`` rounds ago; the gradients are averaged by an all-reduce, as in PSGD).
    ``tau = 0`` is :class:`~verify.algorithms.psgd.PSGD`.

    Steps of round ``k``: 1. each node's gradient at the delayed iterate ``x_{k-tau}``;
    2. exact average (``comm.mean``); 3. ``x_{k+1} = x_k - gamma * average``; 4. shift the
    window of past iterates.

    Guarantee (tight on quadratics): the expected error at every step is
    :func:`theorylab.exact.delay.exact_delayed_sgd` (augmented state of the ``tau`` delayed
    iterates); the iteration is stable iff ``gamma h_max < 2 sin(pi / (2 (2 tau + 1)))``
    (:func:`theorylab.exact.delay.delayed_sgd_stability_limit`). Non-convex upper bound:
    Stich & Karimireddy 2020, ``gamma <~ 1/(L tau)``.

    Parameters
    ----------
    gamma : float >= 0
        Step size.
    tau : int >= 0, default 1
        The delay.

    Raises
    ------
    TheorylabError, TypeError
        A negative ``gamma`` or ``tau``.

    Examples
    --------
    >>> FixedDelaySGD(0.1, tau=3).config()
    {'gamma': 0.1, 'tau': 3}

    References
    ----------
    Y. Arjevani, O. Shamir, N. Srebro, "A tight convergence analysis for stochastic gradient
    descent with delayed updates", ALT 2020, arXiv:1806.10188. S. U. Stich, S. P. Karimireddy,
    "The error-feedback framework: better rates for SGD with delayed gradients and compressed
    updates", JMLR 2020, arXiv:1909.05350.
    """

    name = "delayed_sgd"

    def __init__(self, gamma: float, tau: int = 1):
        self.gamma = check_positive("gamma", gamma, allow_zero=True)
        self.tau = check_int("tau", tau, minimum=0)

    def init(self, x0: torch.Tensor, ctx: Context) -> FixedDelaySGDState:
        x = x0.clone()
        return FixedDelaySGDState(x=x, past=(x,) * self.tau)

    def step(self, state: FixedDelaySGDState, ctx: Context, k: int) -> FixedDelaySGDState:
        x, past = state.x, state.past
        # 1. gradient at x_{k - tau}   2. average over the nodes (a fresh tensor, donated)
        delayed = past[-1] if self.tau > 0 else x
        g = ctx.comm.mean(ctx.grad(delayed), inplace=True)
        # 3. step from the current iterate   4. shift the window (x_k becomes x_{(k+1)-1})
        x_new = torch.add(x, g, alpha=-self.gamma)
        return FixedDelaySGDState(x=x_new, past=((x,) + past[:-1]) if self.tau > 0 else ())
