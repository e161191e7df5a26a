r"""Predicted rates of asynchronous SGD with delayed gradients, and its bias under heterogeneity.

Update (one server, n workers): ``x_{k+1} = x_k - gamma_k g_k``, ``g_k = grad F(x_{k - tau_k};
xi_k)`` with ``E||g_k - grad f(x_{k - tau_k})||^2 <= sigma2`` (one worker's stochastic gradient;
``sigma2/b`` for a minibatch of b). ``k`` counts *applied* gradients (server updates), not rounds
(rates.md §6, §10.6). ``tau_max = max_k tau_k``, ``tau_avg = (1/T) sum_{k<T} tau_k``; both come
from a measured trace via :func:`theorylab.staleness.staleness_stats`. ``delta = f(x_0) - f*``.

What is here and how sure it is:

* :func:`asgd_delayed`: an **upper** bound with explicit constants *derived here* (proof in its
  docstring; tau_max enters through the step-size condition, tau_avg through the noise term).
* :func:`asgd_max_delay`, :func:`asgd_avg_delay`, :func:`asgd_workers`: the big-O rates of Stich
  & Karimireddy (2020), Koloskova, Stich & Jaggi (2022) and Mishchenko, Bach, Even & Woodworth
  (2022). The *forms* were checked against the abstracts (rates.md §6 [ABSTRACT]); the numerical
  constants of their theorems could **not** be confirmed here, so ``big_o=True`` and every
  constant is 1. Their step conditions read ``gamma <= 1/(c L X)`` with an unconfirmed numerical
  ``c >= 1``; the warning fires when ``gamma > 1/(L X)``, which violates the condition for every
  ``c >= 1`` (so a silent step may still be outside the theorem by the factor c).
* :func:`delay_adaptive_steps`: the delay-adaptive rule ``gamma_k = gamma min(1, n/tau_k)`` of
  Mishchenko et al.'s code (``lr * n / max(n, delay)``, byzantine_async.md §2.5 [CODE]).
* :func:`speed_weighted_minimizer`, :func:`asynchrony_bias`: where heterogeneous workers with
  unequal speeds drive the server (exact for quadratics, in the small-step limit).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from theorylab.errors import TheorylabError, check_int, check_positive
from theorylab.rates._rate import Rate, warn_step_size
from theorylab.staleness import StalenessStats, applied_shares, staleness_stats

__all__ = [
    "asgd_delayed",
    "asgd_max_delay",
    "asgd_avg_delay",
    "asgd_workers",
    "asgd_rates_on_trace",
    "delay_adaptive_steps",
    "speed_weighted_minimizer",
    "asynchrony_bias",
]

_KSJ = "Koloskova, Stich, Jaggi, NeurIPS 2022, arXiv 2206.08307"
_MBEW = "Mishchenko, Bach, Even, Woodworth, NeurIPS 2022, arXiv 2206.07638"
_SK = "Stich & Karimireddy, JMLR 2020, arXiv 1909.05350"
_UNCONF = "form checked against the abstract; theorem constants NOT confirmed (all set to 1)"


def _delays(tau_max, tau_avg):
    tau_max = check_positive("tau_max", tau_max, allow_zero=True)
    tau_avg = check_positive("tau_avg", tau_avg, allow_zero=True)
    if tau_avg > tau_max * (1 + 1e-12):
        raise TheorylabError(f"need tau_avg <= tau_max, got tau_avg={tau_avg} > {tau_max}")
    return tau_max, tau_avg


def _common(gamma, L, sigma2, T, delta):
    L = check_positive("L", L)
    sigma2 = check_positive("sigma2", sigma2, allow_zero=True)
    T = check_int("T", T, minimum=1)
    delta = check_positive("delta", delta, allow_zero=True)
    if gamma is not None:
        gamma = check_positive("gamma", gamma)
    return gamma, L, sigma2, T, delta


def _max_step_delayed(L: float, tau_max: float) -> float:
    """Largest gamma with ``L gamma + 2 L^2 gamma^2 tau_max^2 <= 1``."""
    if tau_max == 0:
        return 1.0 / L
    return (math.sqrt(1.0 + 8.0 * tau_max**2) - 1.0) / (4.0 * L * tau_max**2)


def asgd_delayed(
    *,
    gamma: float,
    L: float,
    sigma2: float,
    T: int,
    delta: float,
    tau_max: float,
    tau_avg: float,
) -> Rate:
    r"""Non-convex asynchronous SGD with a constant step: an explicit bound derived here.

    **Upper** bound on ``(1/T) sum_{k<T} E||grad f(x_k)||^2`` (M1 on the server iterate)::

        2 delta/(gamma T)  +  gamma L sigma2  +  2 gamma^2 L^2 sigma2 tau_avg

    for ``L gamma + 2 L^2 gamma^2 tau_max^2 <= 1``, i.e.
    ``gamma <= (sqrt(1 + 8 tau_max^2) - 1)/(4 L tau_max^2)`` (``1/L`` at tau_max = 0, about
    ``1/(sqrt 2 L tau_max)`` for large tau_max). At ``tau_max = 0`` it is PSGD's bound with n = 1
    (:func:`theorylab.rates.psgd`). Assumptions: f L-smooth and bounded below; unbiased noise of
    variance <= sigma2 drawn independently of the past; delays independent of the noise.

    Proof. Let ``y_k = x_{k - tau_k}``, ``g_k = grad f(y_k) + nu_k``. Smoothness and
    ``-<a, b> = (||a - b||^2 - ||a||^2 - ||b||^2)/2`` give
    ``E f(x_{k+1}) <= E f(x_k) - (gamma/2) ||grad f(x_k)||^2 - (gamma/2)(1 - L gamma)
    ||grad f(y_k)||^2 + (gamma L^2/2) ||x_k - y_k||^2 + L gamma^2 sigma2/2``. Now
    ``x_k - y_k = -gamma sum_{j=k-tau_k}^{k-1} g_j`` and the ``nu_j`` are martingale differences,
    so ``E||x_k - y_k||^2 <= 2 gamma^2 tau_k sum_{j in window} ||grad f(y_j)||^2
    + 2 gamma^2 tau_k sigma2``. Summing over k < T, index j lies in at most tau_max windows, each
    weighted by ``tau_k <= tau_max``: the gradient part totals at most
    ``gamma^3 L^2 tau_max^2 sum_j ||grad f(y_j)||^2``, cancelled by the negative term when
    ``1 - L gamma >= 2 L^2 gamma^2 tau_max^2``; the noise part totals
    ``gamma^3 L^2 sigma2 sum_k tau_k = gamma^3 L^2 sigma2 T tau_avg``. Telescoping and dividing
    by ``gamma T / 2`` gives the bound. QED. (The classical ``tau_max/epsilon`` term appears
    through ``gamma ~ 1/(L tau_max)`` in ``2 delta/(gamma T)``.)

    Parameters
    ----------
    gamma : float > 0; L : float > 0; sigma2 : float >= 0; T : int >= 1; delta : float >= 0
    tau_max : float >= 0; tau_avg : float in [0, tau_max]

    Returns
    -------
    Rate with terms 'optimization', 'noise', 'delay'.

    Example
    -------
    >>> r = asgd_delayed(gamma=0.05, L=1.0, sigma2=1.0, T=1000, delta=1.0, tau_max=3, tau_avg=3)
    >>> round(r.terms['delay'], 6)
    0.015
    """
    gamma, L, sigma2, T, delta = _common(gamma, L, sigma2, T, delta)
    tau_max, tau_avg = _delays(tau_max, tau_avg)
    limit = _max_step_delayed(L, tau_max)
    cond = "L gamma + 2 L^2 gamma^2 tau_max^2 <= 1"
    ok = gamma <= limit * (1 + 1e-12)
    if not ok:
        warn_step_size("asgd_delayed", gamma, f"{cond} (gamma <= {limit:.4g})")
    terms = (
        {
            "optimization": 2.0 * delta / (gamma * T),
            "noise": gamma * L * sigma2,
            "delay": 2.0 * gamma**2 * L**2 * sigma2 * tau_avg,
        }
        if ok
        else {"optimization": math.inf, "noise": math.inf, "delay": math.inf}
    )
    return Rate(
        name="asgd/nonconvex/derived",
        quantity="(1/T) sum_{k<T} E||grad f(x_k)||^2 (server iterate)",
        terms=terms,
        kind="upper",
        source="derived here (proof in theorylab.rates.asynchronous.asgd_delayed); cf. " + _SK,
        assumptions=(
            "f L-smooth, bounded below",
            "unbiased noise, variance <= sigma2 per applied gradient",
            "delays independent of the noise",
        ),
        step_size_condition=cond,
        step_size_ok=ok,
        extra={"gamma_max": limit, "tau_max": tau_max, "tau_avg": tau_avg, "T": T},
    )


def _big_o_rate(name, terms, source, cond, ok, extra):
    return Rate(
        name=name,
        quantity="(1/T) sum_{k<T} E||grad f(x_k)||^2, tuned step",
        terms=terms,
        kind="upper",
        source=source,
        assumptions=("f L-smooth, bounded below", "noise variance <= sigma2 per gradient"),
        step_size_condition=cond,
        step_size_ok=ok,
        big_o=True,
        extra=extra,
    )


def _check_step(name, gamma, limit, cond):
    if gamma is None:
        return None
    ok = gamma <= limit * (1 + 1e-12)
    if not ok:
        warn_step_size(name, gamma, cond)
    return ok


def asgd_max_delay(
    *, L: float, sigma2: float, T: int, delta: float, tau_max: float, gamma: float | None = None
) -> Rate:
    r"""Classical rate in the maximum delay (Stich & Karimireddy 2020), big-O.

    ``T = O(L delta (sigma2/eps^2 + (tau_max + 1)/eps))`` inverted to
    ``M1 ~ sqrt(L delta sigma2 / T) + L delta (tau_max + 1)/T`` (terms 'noise', 'delay'),
    ``big_o=True``. Step: ``gamma <= 1/(c L (tau_max + 1))``, c unconfirmed; warns when
    ``gamma > 1/(L (tau_max + 1))`` (module docstring).

    Example
    -------
    >>> asgd_max_delay(L=1.0, sigma2=0.0, T=100, delta=1.0, tau_max=9).terms['delay']
    0.1
    """
    gamma, L, sigma2, T, delta = _common(gamma, L, sigma2, T, delta)
    tau_max = check_positive("tau_max", tau_max, allow_zero=True)
    cond = "gamma <= 1/(c L (tau_max + 1)), numerical c >= 1 unconfirmed"
    ok = _check_step("asgd_max_delay", gamma, 1.0 / (L * (tau_max + 1)), cond)
    terms = {
        "noise": math.sqrt(L * delta * sigma2 / T),
        "delay": L * delta * (tau_max + 1.0) / T,
    }
    return _big_o_rate(
        "asgd/nonconvex/max_delay",
        terms,
        f"{_SK}; rates.md §6 ({_UNCONF})",
        cond,
        ok,
        {"tau_max": tau_max, "T": T},
    )


def asgd_avg_delay(
    *,
    L: float,
    sigma2: float,
    T: int,
    delta: float,
    tau_max: float,
    tau_avg: float,
    adaptive: bool = False,
    gamma: float | None = None,
) -> Rate:
    r"""Koloskova, Stich & Jaggi (2022): rate in sqrt(tau_max tau_avg), or tau_avg, big-O.

    Abstract: ``O(sigma2 eps^-2 + sqrt(tau_max tau_avg) eps^-1)`` with the unchanged algorithm,
    ``O(sigma2 eps^-2 + tau_avg eps^-1)`` with their delay-adaptive step (``adaptive=True``).
    Inverted with the factor ``L delta``: ``M1 ~ sqrt(L delta sigma2/T) + L delta D/T`` with
    ``D = sqrt((tau_max + 1)(tau_avg + 1))`` or ``tau_avg + 1`` (terms 'noise', 'delay';
    ``+1`` keeps the zero-delay limit at ``L delta/T``). Constant step condition read as
    ``gamma <= 1/(c L sqrt(tau_max tau_avg))``-type, unconfirmed; the warning uses
    ``1/(L D)``. Their adaptive rule is not reproduced here (not confirmed); see
    :func:`delay_adaptive_steps` for Mishchenko et al.'s.

    Example
    -------
    >>> r = asgd_avg_delay(L=1.0, sigma2=0.0, T=100, delta=1.0, tau_max=99, tau_avg=3)
    >>> round(r.terms['delay'], 6)  # sqrt(100 * 4) / 100
    0.2
    """
    gamma, L, sigma2, T, delta = _common(gamma, L, sigma2, T, delta)
    tau_max, tau_avg = _delays(tau_max, tau_avg)
    D = tau_avg + 1.0 if adaptive else math.sqrt((tau_max + 1.0) * (tau_avg + 1.0))
    cond = (
        "delay-adaptive step (paper's rule), base gamma <= 1/(c L (tau_avg + 1))"
        if adaptive
        else "gamma <= 1/(c L sqrt((tau_max+1)(tau_avg+1))), numerical c >= 1 unconfirmed"
    )
    ok = _check_step("asgd_avg_delay", gamma, 1.0 / (L * D), cond)
    terms = {"noise": math.sqrt(L * delta * sigma2 / T), "delay": L * delta * D / T}
    return _big_o_rate(
        f"asgd/nonconvex/{'adaptive' if adaptive else 'constant'}_avg_delay",
        terms,
        f"{_KSJ}; rates.md §6 ({_UNCONF})",
        cond,
        ok,
        {"tau_max": tau_max, "tau_avg": tau_avg, "D": D, "T": T},
    )


def asgd_workers(
    *,
    L: float,
    sigma2: float,
    T: int,
    n: int,
    delta: float | None = None,
    r0_sq: float | None = None,
    gamma: float | None = None,
) -> Rate:
    r"""Mishchenko et al. (2022): rates in the number of workers n, whatever the delays, big-O.

    Non-convex (``delta`` given): ``M1 ~ sqrt(L delta sigma2/T) + n L delta/T``; convex
    (``r0_sq`` given): ``E f(xhat_T) - f* ~ sqrt(sigma2 r0_sq/T) + n L r0_sq/T``; T counts
    applied gradients (rates.md §6 [RECALLED]; the dependence on n instead of the delays is in
    the abstract). Step ``gamma ~ 1/(c n L)`` (or the delay-adaptive rule of
    :func:`delay_adaptive_steps`); c unconfirmed, the warning uses ``1/(n L)``.

    Example
    -------
    >>> asgd_workers(L=1.0, sigma2=0.0, T=100, n=4, delta=1.0).terms['delay']
    0.04
    """
    gamma, L, sigma2, T, _ = _common(gamma, L, sigma2, T, 0.0)
    n = check_int("n", n, minimum=1)
    if (delta is None) == (r0_sq is None):
        raise TheorylabError("pass exactly one of delta (non-convex) or r0_sq (convex)")
    cond = "gamma <= 1/(c n L), numerical c >= 1 unconfirmed"
    ok = _check_step("asgd_workers", gamma, 1.0 / (n * L), cond)
    if delta is not None:
        delta = check_positive("delta", delta, allow_zero=True)
        terms = {"noise": math.sqrt(L * delta * sigma2 / T), "delay": n * L * delta / T}
        name = "asgd/nonconvex/workers"
    else:
        r0_sq = check_positive("r0_sq", r0_sq, allow_zero=True)
        terms = {"noise": math.sqrt(sigma2 * r0_sq / T), "delay": n * L * r0_sq / T}
        name = "asgd/convex/workers"
    r = _big_o_rate(name, terms, f"{_MBEW}; rates.md §6 ({_UNCONF})", cond, ok, {"n": n, "T": T})
    if r0_sq is not None:
        r = dataclasses.replace(r, quantity="E f(xhat_T) - f*, tuned step")
    return r


def asgd_rates_on_trace(
    trace,
    *,
    L: float,
    sigma2: float,
    delta: float,
    n: int,
    gamma: float | None = None,
    T: int | None = None,
) -> dict[str, Rate]:
    """Every asynchronous rate of this module evaluated on a measured staleness trace.

    ``trace``: a sequence of delays or a :class:`~theorylab.staleness.StalenessStats`; ``T``
    defaults to its length. Returns ``{'derived', 'max_delay', 'avg_delay', 'avg_delay_adaptive',
    'workers'}`` (``'derived'`` only when ``gamma`` is given).

    Example
    -------
    >>> rs = asgd_rates_on_trace([0, 1, 2, 3] * 25, L=1.0, sigma2=1.0, delta=1.0, n=4)
    >>> sorted(rs)
    ['avg_delay', 'avg_delay_adaptive', 'max_delay', 'workers']
    """
    stats = trace if isinstance(trace, StalenessStats) else staleness_stats(trace)
    T = stats.count if T is None else T
    common = dict(L=L, sigma2=sigma2, T=T, delta=delta)
    out = {}
    if gamma is not None:
        out["derived"] = asgd_delayed(
            gamma=gamma, tau_max=stats.tau_max, tau_avg=stats.tau_avg, **common
        )
    out["max_delay"] = asgd_max_delay(tau_max=stats.tau_max, gamma=gamma, **common)
    for key, adaptive in (("avg_delay", False), ("avg_delay_adaptive", True)):
        out[key] = asgd_avg_delay(
            tau_max=stats.tau_max, tau_avg=stats.tau_avg, adaptive=adaptive, gamma=gamma, **common
        )
    out["workers"] = asgd_workers(n=n, gamma=gamma, **common)
    return out


def delay_adaptive_steps(gamma: float, trace, n: int) -> np.ndarray:
    """Delay-adaptive steps ``gamma_k = gamma min(1, n / tau_k)`` (Mishchenko et al.'s code).

    Example
    -------
    >>> delay_adaptive_steps(0.1, [0, 4, 8], n=4).tolist()
    [0.1, 0.1, 0.05]
    """
    gamma = check_positive("gamma", gamma)
    n = check_int("n", n, minimum=1)
    tau = np.asarray(trace, dtype=float).ravel()
    if tau.size and (np.any(tau < 0) or not np.all(np.isfinite(tau))):
        raise TheorylabError(f"delays must be finite and >= 0, got {tau[tau < 0][:3].tolist()}")
    return gamma * np.minimum(1.0, n / np.maximum(tau, n))


def _shares(p, speeds, n):
    if (p is None) == (speeds is None):
        raise TheorylabError("pass exactly one of p (shares) or speeds")
    p = applied_shares(speeds) if p is None else np.asarray(p, dtype=float).ravel()
    if p.size != n:
        raise TheorylabError(f"need one share per worker (n={n}), got {p.size}")
    if np.any(p < 0) or not np.all(np.isfinite(p)) or abs(p.sum() - 1) > 1e-9:
        raise TheorylabError(f"shares p must be >= 0 and sum to 1, got {p.tolist()}")
    return p


def speed_weighted_minimizer(problem, *, p=None, speeds=None) -> np.ndarray:
    r"""The point asynchronous SGD drifts to: ``x_p = argmin sum_i p_i f_i``.

    For the quadratics ``f_i = 1/2 (x - b_i)^T A_i (x - b_i)`` of
    :class:`~theorylab.problems.QuadraticProblem` (``x_i* = b_i``),
    ``x_p = (sum_i p_i A_i)^{-1} sum_i p_i A_i b_i``. ``p`` the shares of applied gradients
    (measured), or ``speeds`` (``p_i = speed_i / sum speeds``, :func:`applied_shares`).

    Why: averaged over the arrival order the server applies ``sum_i p_i grad f_i`` per update,
    so in the small-step limit its iterates follow gradient flow on ``sum_i p_i f_i``; equal
    speeds give ``p = 1/n`` and ``x_p = x*``. **Tight** as gamma -> 0 (O(gamma) corrections at
    a constant step).

    Raises
    ------
    TheorylabError
        Shares not summing to 1 or negative, a singular ``sum p_i A_i``.

    Example
    -------
    >>> from theorylab.problems import QuadraticProblem
    >>> q = QuadraticProblem(np.array([[1.0], [1.0]]), np.array([[0.0], [3.0]]), sigma2=0.0)
    >>> speed_weighted_minimizer(q, speeds=[2.0, 1.0]).tolist()
    [1.0]
    """
    A, b = problem.A, problem.b
    p = _shares(p, speeds, problem.n)
    H = np.einsum("i,ijk->jk", p, A)
    rhs = np.einsum("i,ijk,ik->j", p, A, b)
    if np.linalg.matrix_rank(H) < H.shape[0]:
        raise TheorylabError("sum_i p_i A_i is singular: the weighted objective has no unique min")
    return np.linalg.solve(H, rhs)


def asynchrony_bias(problem, *, p=None, speeds=None) -> Rate:
    r"""Error term of the speed-weighted drift: ``f(x_p) - f*`` and ``||x_p - x*||^2``.

    ``f = (1/n) sum_i f_i`` (quadratic), so ``f(x_p) - f* = 1/2 (x_p - x*)^T Abar (x_p - x*)``
    with ``Abar = (1/n) sum_i A_i``. **Tight** (exact) for the small-step limit point of
    :func:`speed_weighted_minimizer`; it does not shrink with gamma or T, only with equal shares
    or homogeneous data (``b_i`` all equal).

    Returns
    -------
    Rate with the term 'heterogeneity_bias' (= f(x_p) - f*); ``extra`` holds ``x_p``, ``p`` and
    ``dist_sq`` = ||x_p - x*||^2.

    Example
    -------
    >>> from theorylab.problems import QuadraticProblem
    >>> q = QuadraticProblem(np.array([[1.0], [1.0]]), np.array([[0.0], [3.0]]), sigma2=0.0)
    >>> asynchrony_bias(q, speeds=[2.0, 1.0]).total  # x_p = 1, x* = 1.5
    0.125
    """
    p = _shares(p, speeds, problem.n)
    xp = speed_weighted_minimizer(problem, p=p)
    e = xp - problem.x_star
    Abar = problem.A.mean(axis=0)
    return Rate(
        name="asgd/heterogeneity_bias",
        quantity="f(x_p) - f*, x_p = argmin sum_i p_i f_i (small-step limit of the server)",
        terms={"heterogeneity_bias": float(0.5 * e @ Abar @ e)},
        kind="tight",
        source="derived here (theorylab.rates.asynchronous.speed_weighted_minimizer); "
        "cf. the speed bias of ASGD on heterogeneous data, byzantine_async.md §2.5",
        assumptions=("quadratic f_i", "shares p_i of applied gradients", "gamma -> 0"),
        extra={"x_p": xp.tolist(), "p": p.tolist(), "dist_sq": float(e @ e)},
    )
