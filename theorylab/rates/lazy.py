r"""Predicted rates of lazy communication: local SGD / FedAvg, partial participation, SCAFFOLD,
and the communication period tau that minimises predicted wall-clock time.

Update (local SGD with period tau, every node i, t = 0..T-1; rates.md §2, families.md §1)::

    x_i^{t+1/2} = x_i^t - gamma g_i(x_i^t)
    x_i^{t+1}   = (1/n) sum_j x_j^{t+1/2}   if (t + 1) mod tau == 0,   else x_i^{t+1/2}

i.e. DSGD (ATC) with the schedule ``W_t = I`` (tau - 1 times) then ``W_t = J = 11^T/n``; tau = 1
is parallel SGD. FL papers write K for tau, N for n, eta_l for gamma. Symbols: per-node noise
``sigma2 = E||g_i - grad f_i||^2``; heterogeneity ``zeta2`` uniform (H1,
``(1/n) sum_i ||grad f_i(x) - grad f(x)||^2 <= zeta2``) in non-convex results and at the optimum
(H2, ``(1/n) sum_i ||grad f_i(x*)||^2``) in strongly convex ones; ``delta = f(x_0) - f*``;
``Xi_t = (1/n) sum_i ||x_i^t - xbar^t||^2``.

How sure each constant is: :func:`local_sgd` (both regimes) and :func:`local_sgd_bound_curve`
carry constants **derived here** with the proof beside them; :func:`sampling_variance_factor` is
an exact identity; :func:`local_sgd` with ``source='koloskova2020'``, :func:`minibatch_vs_local`,
:func:`fedavg` and :func:`scaffold` are big-O forms (``big_o=True``) from the cited theorems as
recalled in shared/references/rates.md §2 and families.md §1-2 [RECALLED]; their numerical
constants could not be confirmed here and are set to 1 unless stated (SCAFFOLD's step
conditions keep the recalled 81/15/24, flagged as unconfirmed).

The period (:func:`best_period`): wall-clock of k local steps with period tau is
``k compute_s + ceil(k/tau) sync_s`` under the alpha-beta model of :mod:`theorylab.cost`
(:func:`sync_time`); ``error_curve(tau)`` is any predicted curve: the bound of
:func:`local_sgd_bound_curve` (an upper bound, loose for tau > 1 by factors 8-900 in the tests'
settings), or the exact curve on quadratics of :func:`local_sgd_exact_curve`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from theorylab.cost import CommModel, round_time
from theorylab.errors import TheorylabError, TheorylabWarning, check_int, check_positive
from theorylab.rates._rate import Rate, warn_step_size
from theorylab.rates.decentralized import psgd

__all__ = [
    "local_sgd",
    "local_sgd_bound_curve",
    "local_sgd_error_curve",
    "local_sgd_exact_curve",
    "minibatch_vs_local",
    "sampling_variance_factor",
    "fedavg",
    "scaffold",
    "sync_time",
    "time_to_target",
    "best_period",
    "PeriodChoice",
]

_KOL = "Koloskova, Loizou, Boreiri, Jaggi, Stich, ICML 2020, arXiv 2003.10422"
_WPS = "Woodworth, Patel, Srebro, NeurIPS 2020, arXiv 2006.04735"
_SCAF = "Karimireddy, Kale, Mohri, Reddi, Stich, Suresh, ICML 2020, arXiv 1910.06378"
_DERIVED = "derived here (proof in theorylab.rates.lazy.{}); cf. " + _KOL


def _check_tau(tau, name: str = "tau") -> int:
    if isinstance(tau, bool) or not isinstance(tau, (int, np.integer)):
        raise TypeError(f"{name} (local steps per round) must be an integer, got {tau!r}")
    if tau < 1:
        raise TheorylabError(f"{name} (local steps per communication) must be >= 1, got {tau}")
    return int(tau)


def _check_S(S, n) -> int:
    if isinstance(S, bool) or not isinstance(S, (int, np.integer)):
        raise TypeError(f"S (participating clients) must be an integer, got {S!r}")
    if not 1 <= S <= n:
        raise TheorylabError(f"S (participating clients) must lie in [1, n={n}], got {S}")
    return int(S)


def _nonconvex_condition(tau: int) -> str:
    return "gamma <= 1/L" + ("" if tau == 1 else " and gamma < 1/(2 L (tau - 1))")


def local_sgd(
    *,
    gamma: float,
    L: float,
    sigma2: float,
    zeta2: float,
    n: int,
    tau: int,
    T: int | None = None,
    mu: float | None = None,
    delta: float | None = None,
    avg_error0: float = 0.0,
    source: str = "derived",
) -> Rate:
    r"""Rate of local SGD (FedAvg with full participation, server step 1), period tau.

    **Non-convex** (``mu`` None; needs T, delta), ``source='derived'``: **upper** bound on
    ``(1/T) sum_{t<T} E||grad f(xbar_t)||^2``::

        2 delta/(gamma T) + gamma L sigma2/n                       (optimization, noise)
        + L^2 2 gamma^2 (tau - 1) sigma2 (1 - 1/n) / d             (drift_noise)
        + L^2 4 gamma^2 (tau - 1)^2 zeta2 / d                      (drift_heterogeneity)

    with ``d = 1 - 4 gamma^2 L^2 (tau - 1)^2``, valid for ``gamma <= 1/L`` and
    ``gamma < 1/(2 L (tau - 1))`` (``d >= 3/4`` for ``gamma <= 1/(4 L (tau - 1))``). At tau = 1
    it is exactly :func:`theorylab.rates.psgd`'s bound. Proof. (i) ``xbar`` follows
    ``xbar_{t+1} = xbar_t - gamma (1/n) sum_i g_i(x_i^t)``; smoothness and
    ``-<a,b> = (||a-b||^2 - ||a||^2 - ||b||^2)/2`` with ``a = grad f(xbar)``,
    ``b = (1/n) sum_i grad f_i(x_i)``, ``||a - b||^2 <= L^2 Xi``, give for gamma <= 1/L
    ``(gamma/2) ||grad f(xbar_t)||^2 <= f(xbar_t) - E f(xbar_{t+1}) + gamma L^2 Xi_t/2
    + L gamma^2 sigma2/(2n)``; sum and divide. (ii) Within a round starting at a sync step s
    (``Xi_s = 0``), ``x_i - xbar = -gamma sum_{j<k} (D_i^j + N_i^j)`` with
    ``D_i^j = grad f_i(x_i) - mean_l grad f_l(x_l)``, ``N`` the centred noise (martingale
    differences, ``(1/n) sum_i E||sum_j N_i^j||^2 = k sigma2 (1 - 1/n)``), and
    ``(1/n) sum_i ||D_i||^2 <= (1/n) sum_i ||grad f_i(x_i) - grad f(xbar)||^2 <= 2 L^2 Xi
    + 2 zeta2``. So ``Xi_{s+k} <= 2 gamma^2 k sigma2 (1 - 1/n) + 4 gamma^2 k^2 zeta2
    + 4 gamma^2 L^2 k sum_{j<k} Xi_{s+j}``; with ``M = max_{k<tau} Xi_{s+k}`` and k <= tau - 1,
    ``M d <= 2 gamma^2 (tau-1) sigma2 (1 - 1/n) + 4 gamma^2 (tau-1)^2 zeta2``. QED.
    The shape matches Koloskova et al. (2020)'s consensus lemma
    ``O(gamma^2 tau sigma2/p + gamma^2 tau^2 zeta2/p^2)`` with p = 1.

    ``source='koloskova2020'``: their Theorem 2 (tuned step, p = 1), big-O, rates.md §2a::

        M1 ~ sqrt(L delta sigma2/(n T)) + (L delta sqrt(zeta2) tau/T)^{2/3}
             + (L delta sqrt(sigma2 tau)/T)^{2/3} + L delta tau/T

    **Strongly convex** (``mu`` given): the **upper** bound of :func:`local_sgd_bound_curve` on
    ``(1/n) sum_i E||x_i^T - x*||^2`` (zeta2 at the optimum, H2), with terms 'optimization' and
    'noise' = PSGD's bound (the curve with Xi = 0, :func:`theorylab.rates.psgd`), 'drift_noise'
    = the increase when the within-round noise drift is switched on (zeta2 = 0), and
    'drift_heterogeneity' = the further increase from zeta2 (an incremental attribution; the
    terms sum to the bound). ``T=None`` gives the value at communication rounds in the limit.

    Parameters
    ----------
    gamma : float > 0; L : float > 0; sigma2, zeta2 : float >= 0; n : int >= 1; tau : int >= 1
    T : int >= 1 (non-convex), int >= 0 or None (strongly convex)
    mu : float in (0, L] or None; delta : float >= 0 (non-convex)
    avg_error0 : ||x_0 - x*||^2 (strongly convex; all nodes start at x_0)
    source : 'derived' | 'koloskova2020' (non-convex only)

    Returns
    -------
    Rate with terms 'optimization', 'noise', 'drift_noise', 'drift_heterogeneity'.

    Raises
    ------
    TheorylabError, TypeError
        tau < 1 or not an integer, bad values, missing T/delta for the non-convex bound.

    Example
    -------
    >>> r = local_sgd(gamma=0.01, L=1.0, sigma2=1.0, zeta2=1.0, n=4, tau=5, T=1000, delta=1.0)
    >>> sorted(r.terms)
    ['drift_heterogeneity', 'drift_noise', 'noise', 'optimization']
    """
    gamma = check_positive("gamma", gamma)
    L = check_positive("L", L)
    sigma2 = check_positive("sigma2", sigma2, allow_zero=True)
    zeta2 = check_positive("zeta2", zeta2, allow_zero=True)
    n = check_int("n", n, minimum=1)
    tau = _check_tau(tau)
    if source not in ("derived", "koloskova2020"):
        raise TheorylabError(f"source must be 'derived' or 'koloskova2020', got {source!r}")
    params = {"gamma": gamma, "L": L, "sigma2": sigma2, "zeta2": zeta2, "n": n, "tau": tau}
    if mu is not None:
        return _local_sgd_sc(gamma, L, mu, sigma2, zeta2, n, tau, T, avg_error0, params)
    if T is None or delta is None:
        raise TheorylabError("the non-convex local SGD rate needs T >= 1 and delta = f(x0) - f*")
    T = check_int("T", T, minimum=1)
    delta = check_positive("delta", delta, allow_zero=True)
    if source == "koloskova2020":
        terms = {
            "noise": math.sqrt(L * delta * sigma2 / (n * T)),
            "drift_heterogeneity": (L * delta * math.sqrt(zeta2) * tau / T) ** (2 / 3),
            "drift_noise": (L * delta * math.sqrt(sigma2 * tau) / T) ** (2 / 3),
            "optimization": L * delta * tau / T,
        }
        return Rate(
            name="local_sgd/nonconvex/koloskova2020",
            quantity="(1/T) sum_{t<T} E||grad f(xbar_t)||^2 (M1), tuned gamma",
            terms=terms,
            kind="upper",
            source=f"{_KOL}, Theorem 2 with p = 1 (rates.md §2a; constants NOT confirmed, set "
            "to 1)",
            assumptions=("f_i L-smooth", "uniform zeta2 (H1)", "noise <= sigma2 per node"),
            step_size_condition="gamma <= 1/(c_0 L tau), c_0 numerical (unconfirmed)",
            step_size_ok=None,
            big_o=True,
            extra={**params, "T": T, "delta": delta},
        )
    cond = _nonconvex_condition(tau)
    d = 1.0 - 4.0 * gamma**2 * L**2 * (tau - 1) ** 2
    ok = gamma <= (1.0 / L) * (1 + 1e-12) and d > 0
    if not ok:
        warn_step_size("local_sgd (non-convex)", gamma, cond)
        terms = dict.fromkeys(("optimization", "noise", "drift_noise", "drift_heterogeneity"))
        terms = {k: math.inf for k in terms}
    else:
        terms = {
            "optimization": 2.0 * delta / (gamma * T),
            "noise": gamma * L * sigma2 / n,
            "drift_noise": L**2 * 2.0 * gamma**2 * (tau - 1) * sigma2 * (1.0 - 1.0 / n) / d,
            "drift_heterogeneity": L**2 * 4.0 * gamma**2 * (tau - 1) ** 2 * zeta2 / d,
        }
    return Rate(
        name="local_sgd/nonconvex",
        quantity="(1/T) sum_{t<T} E||grad f(xbar_t)||^2",
        terms=terms,
        kind="upper",
        source=_DERIVED.format("local_sgd"),
        assumptions=(
            "every f_i L-smooth, f bounded below",
            "uniform heterogeneity zeta2 (H1)",
            "unbiased noise, variance <= sigma2 per node, independent across nodes and steps",
        ),
        step_size_condition=cond,
        step_size_ok=ok,
        extra={**params, "T": T, "delta": delta, "d": d},
    )


def _sc_recursion(gamma, L, mu, sigma2, zeta2, n, tau, steps, e0):
    """Arrays (e_t, Xi_t), t = 0..steps, of the strongly convex bound (see the curve's proof)."""
    e = np.empty(steps + 1)
    xi = np.empty(steps + 1)
    c = 1.0 - gamma * mu
    q_noise = 2.0 * gamma**2 * sigma2 * (1.0 - 1.0 / n)
    e[0] = e0
    acc = 0.0  # sum_{j<k} 3 (L^2 Xi_j + L^2 e_j + zeta2) within the current round
    for t in range(steps + 1):
        k = t % tau
        if k == 0:
            acc = 0.0
        xi[t] = k * (q_noise + 2.0 * gamma**2 * acc)
        if t == steps:
            break
        acc += 3.0 * (L**2 * xi[t] + L**2 * e[t] + zeta2)
        e[t + 1] = (c * math.sqrt(e[t]) + gamma * L * math.sqrt(xi[t])) ** 2 + gamma**2 * (
            sigma2 / n
        )
        if not math.isfinite(e[t + 1]) or e[t + 1] > 1e300:
            e[t + 1 :] = np.inf
            xi[t + 1 :] = np.inf
            break
    return e, xi


def _check_sc(gamma, L, mu):
    mu = check_positive("mu", mu)
    if mu > L:
        raise TheorylabError(f"need mu <= L, got mu={mu} > L={L}")
    cond = "gamma <= 2/(L + mu)"
    ok = gamma <= 2.0 / (L + mu) * (1 + 1e-12)
    return mu, cond, ok


def local_sgd_bound_curve(
    *,
    gamma: float,
    L: float,
    mu: float,
    sigma2: float,
    zeta2: float,
    n: int,
    tau: int,
    steps: int,
    avg_error0: float,
) -> dict:
    r"""Strongly convex local SGD: an upper bound at every step 0..steps (derived here).

    Assumptions: every f_i convex and L-smooth, f mu-strongly convex, ``zeta2 =
    (1/n) sum_i ||grad f_i(x*)||^2`` (H2), noise as in :func:`local_sgd`; all nodes start at
    x_0, ``avg_error0 = ||x_0 - x*||^2``; ``gamma <= 2/(L + mu)``. With ``e_t`` bounding
    ``E||xbar_t - x*||^2`` and ``Xi_t`` the consensus distance, k = t mod tau::

        Xi_t    <= 2 gamma^2 k sigma2 (1 - 1/n)
                   + 2 gamma^2 k sum_{j = t-k}^{t-1} 3 (L^2 Xi_j + L^2 e_j + zeta2)
        e_{t+1} <= ((1 - gamma mu) sqrt(e_t) + gamma L sqrt(Xi_t))^2 + gamma^2 sigma2/n

    Proof. Average: ``xbar - x* - gamma grad f(xbar)`` has norm ``<= (1 - gamma mu)
    ||xbar - x*||`` (gamma <= 2/(L+mu)); ``||(1/n) sum_i (grad f_i(x_i) - grad f_i(xbar))||^2
    <= L^2 Xi``; Minkowski in L2 gives the square of the sum; the averaged noise is independent
    and adds ``gamma^2 sigma2/n``. Consensus: as in :func:`local_sgd` (ii) with
    ``(1/n) sum_i ||D_i||^2 <= (1/n) sum_i ||grad f_i(x_i)||^2 <= 3 L^2 Xi + 3 L^2 e + 3 zeta2``
    (split ``grad f_i(x_i)`` at xbar and x*). Every right-hand side is increasing in the earlier
    bounds, so by induction the recursion bounds the true values at every t. QED. With tau = 1,
    Xi = 0 and it is PSGD's bound exactly. Checked in the tests against the exact second
    moments of DSGD with the schedule (I, ..., I, J).

    Returns
    -------
    dict of ndarrays (steps + 1): 'avg_error' (e_t), 'consensus' (Xi_t), 'error' (their sum,
    bounding (1/n) sum_i E||x_i^t - x*||^2); all inf when gamma > 2/(L + mu) (with a warning)
    or when the recursion overflows.

    Example
    -------
    >>> c = local_sgd_bound_curve(gamma=0.05, L=1.0, mu=0.5, sigma2=0.0, zeta2=1.0, n=4,
    ...                           tau=4, steps=8, avg_error0=0.0)
    >>> c['consensus'][[0, 4, 8]].tolist()  # zero right after every averaging step
    [0.0, 0.0, 0.0]
    """
    gamma = check_positive("gamma", gamma)
    L = check_positive("L", L)
    sigma2 = check_positive("sigma2", sigma2, allow_zero=True)
    zeta2 = check_positive("zeta2", zeta2, allow_zero=True)
    n = check_int("n", n, minimum=1)
    tau = _check_tau(tau)
    steps = check_int("steps", steps, minimum=0)
    e0 = check_positive("avg_error0", avg_error0, allow_zero=True)
    mu, cond, ok = _check_sc(gamma, L, mu)
    if not ok:
        warn_step_size("local_sgd (strongly convex)", gamma, cond)
        inf = np.full(steps + 1, np.inf)
        return {"avg_error": inf, "consensus": inf.copy(), "error": inf.copy()}
    e, xi = _sc_recursion(gamma, L, mu, sigma2, zeta2, n, tau, steps, e0)
    return {"avg_error": e, "consensus": xi, "error": e + xi}


def _sc_value(gamma, L, mu, sigma2, zeta2, n, tau, T, e0):
    """Bound at step T, or its limit at communication rounds (T None).

    The round map ``Phi: e_s -> e_{s+tau}`` of the recursion is increasing and concave (each
    step is ``(c sqrt(e) + gamma L sqrt(Xi))^2 + const`` with Xi affine in the earlier e's, and
    the geometric mean of affine maps is concave), and ``Phi(0) >= 0``; so ``Phi(e) = e`` has at
    most one positive root, the limit from every start. It is found by bracketing and bisection
    (inf when ``Phi(e) > e`` up to 1e300, i.e. the bound diverges).
    """
    if T is not None:
        e, xi = _sc_recursion(gamma, L, mu, sigma2, zeta2, n, tau, T, e0)
        return float(e[-1] + xi[-1]), float(e[-1]), float(xi[-1])

    def phi(v: float) -> float:
        return float(_sc_recursion(gamma, L, mu, sigma2, zeta2, n, tau, tau, v)[0][-1])

    lo, hi = 0.0, max(phi(0.0), 1e-300)
    if hi <= 1e-300:
        return 0.0, 0.0, 0.0
    while phi(hi) > hi:
        lo, hi = hi, 2.0 * hi
        if hi > 1e300:
            return math.inf, math.inf, 0.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if phi(mid) > mid:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-15 * hi:
            break
    return hi, hi, 0.0


def _local_sgd_sc(gamma, L, mu, sigma2, zeta2, n, tau, T, e0, params) -> Rate:
    mu, cond, ok = _check_sc(gamma, L, mu)
    T = None if T is None else check_int("T", T, minimum=0)
    e0 = check_positive("avg_error0", e0, allow_zero=True)
    if not ok:
        warn_step_size("local_sgd (strongly convex)", gamma, cond)
        terms = dict.fromkeys(("optimization", "noise", "drift_noise", "drift_heterogeneity"))
        terms = {k: math.inf for k in terms}
        extra = {}
    else:
        base = psgd(gamma=gamma, L=L, mu=mu, sigma2=sigma2, n=n, T=T, r0_sq=e0)
        e_init = 0.0 if T is None else e0
        tot_s, _, _ = _sc_value(gamma, L, mu, sigma2, 0.0, n, tau, T, e_init)
        tot, avg, cons = _sc_value(gamma, L, mu, sigma2, zeta2, n, tau, T, e_init)
        terms = {
            "optimization": base.terms["optimization"],
            "noise": base.terms["noise"],
            "drift_noise": max(0.0, tot_s - base.total),
            "drift_heterogeneity": max(0.0, tot - tot_s) if math.isfinite(tot) else math.inf,
        }
        if not math.isfinite(tot_s):
            terms["drift_noise"] = math.inf
        extra = {"avg_error": avg, "consensus": cons}
    return Rate(
        name="local_sgd/strongly_convex",
        quantity="(1/n) sum_i E||x_i^T - x*||^2"
        if T is not None
        else "lim E||xbar - x*||^2 at communication rounds",
        terms=terms,
        kind="upper",
        source=_DERIVED.format("local_sgd_bound_curve"),
        assumptions=(
            "every f_i convex and L-smooth; f mu-strongly convex",
            "zeta2 at the optimum (H2)",
            "unbiased noise, variance <= sigma2 per node, independent",
            "all nodes start at the same x_0",
        ),
        step_size_condition=cond,
        step_size_ok=ok,
        extra={**params, "mu": mu, "T": T, **extra},
    )


def local_sgd_error_curve(
    *, gamma: float, L: float, mu: float, sigma2: float, zeta2: float, n: int,
    avg_error0: float, steps: int,
) -> Callable[[int], np.ndarray]:  # fmt: skip
    """A predicted error curve ``tau -> E||xbar_k - x*||^2`` bound, k = 0..steps.

    Wraps :func:`local_sgd_bound_curve` ('avg_error', the model the server holds after each
    averaging) for :func:`best_period`; any other callable with the same signature (e.g. the
    exact engine's curve) can replace it.

    Example
    -------
    >>> curve = local_sgd_error_curve(gamma=0.1, L=1.0, mu=1.0, sigma2=0.0, zeta2=0.0, n=2,
    ...                               avg_error0=1.0, steps=3)
    >>> [round(float(v), 4) for v in curve(1)]
    [1.0, 0.81, 0.6561, 0.5314]
    """
    kw = dict(gamma=gamma, L=L, mu=mu, sigma2=sigma2, zeta2=zeta2, n=n, avg_error0=avg_error0)
    steps = check_int("steps", steps, minimum=0)

    def curve(tau: int) -> np.ndarray:
        return local_sgd_bound_curve(tau=tau, steps=steps, **kw)["avg_error"]

    return curve


def local_sgd_exact_curve(
    problem, *, gamma: float, x0, steps: int, metric: str = "avg_error"
) -> Callable[[int], np.ndarray]:
    """Exact expected-error curve ``tau -> metric_k``, k = 0..steps, of local SGD on a quadratic.

    Local SGD with period tau *is* DSGD (ATC) with the schedule ``(I, ..., I, J)`` (tau - 1
    identities, then ``J = 11^T/n``), so :func:`theorylab.exact.exact_dsgd` on that schedule
    gives the **exact** (tight) second moments; ``metric`` is 'avg_error'
    (``E||xbar_k - x*||^2``), 'error' or 'consensus'. For :func:`best_period`. ``x0``: the
    common start (d,), or per-node starts (n, d).

    Example
    -------
    >>> from theorylab.problems import heterogeneous_quadratic
    >>> p = heterogeneous_quadratic(4, 2, L=1.0, mu=0.5, zeta2=1.0, sigma2=0.0, seed=0)
    >>> curve = local_sgd_exact_curve(p, gamma=0.1, x0=p.x_star, steps=8)
    >>> round(float(curve(1)[-1]), 12)  # tau = 1 is gradient descent on f: stays at x*
    0.0
    """
    from theorylab.exact import exact_dsgd

    if metric not in ("avg_error", "error", "consensus"):
        raise TheorylabError(f"metric must be 'avg_error', 'error' or 'consensus', got {metric!r}")
    steps = check_int("steps", steps, minimum=0)
    x0 = np.asarray(x0, dtype=float)
    if x0.ndim == 1:
        x0 = np.tile(x0, (problem.n, 1))
    n = problem.n

    def curve(tau: int) -> np.ndarray:
        tau = _check_tau(tau)
        schedule = [np.eye(n)] * (tau - 1) + [np.full((n, n), 1.0 / n)]
        return getattr(exact_dsgd(problem, schedule, gamma, steps, x0), metric)

    return curve


def minibatch_vs_local(
    *, L: float, sigma2: float, zeta2: float, r0_sq: float, M: int, K: int, R: int
) -> dict[str, Rate]:
    r"""Woodworth, Patel & Srebro (2020): convex minibatch SGD vs local SGD, big-O.

    M machines, K local steps (= tau) per round, R rounds, ``B^2 = r0_sq``, ``zeta2`` at the
    optimum (H2). On ``E f(xhat) - f*`` (rates.md §2b [RECALLED], constants set to 1)::

        minibatch: L B^2/R + sigma B/sqrt(M K R)                          (no zeta term)
        local:     L B^2/(K R) + sigma B/sqrt(M K R)
                   + (L sigma2 B^4)^{1/3}/(K^{1/3} R^{2/3}) + (L zeta2 B^4)^{1/3}/R^{2/3}

    The heterogeneity term of local SGD does not shrink with K.

    Example
    -------
    >>> r = minibatch_vs_local(L=1.0, sigma2=0.0, zeta2=1.0, r0_sq=1.0, M=4, K=10, R=8)
    >>> round(r['local'].terms['drift_heterogeneity'], 6)  # 8^(-2/3)
    0.25
    """
    L = check_positive("L", L)
    sigma2 = check_positive("sigma2", sigma2, allow_zero=True)
    zeta2 = check_positive("zeta2", zeta2, allow_zero=True)
    B2 = check_positive("r0_sq", r0_sq, allow_zero=True)
    M = check_int("M", M, minimum=1)
    K = _check_tau(K, "K")
    R = check_int("R", R, minimum=1)
    noise = math.sqrt(sigma2 * B2 / (M * K * R))
    src = f"{_WPS} (rates.md §2b; constants NOT confirmed, set to 1)"
    common = dict(
        kind="upper", source=src, big_o=True, extra={"M": M, "K": K, "R": R},
        assumptions=("f_i convex, L-smooth", "zeta2 at the optimum (H2)"),
        step_size_condition="tuned step (theorem's choice)",
    )  # fmt: skip
    mb = Rate(
        name="minibatch_sgd/convex",
        quantity="E f(xhat) - f*",
        terms={"optimization": L * B2 / R, "noise": noise},
        **common,
    )
    loc = Rate(
        name="local_sgd/convex/woodworth2020",
        quantity="E f(xhat) - f*",
        terms={
            "optimization": L * B2 / (K * R),
            "noise": noise,
            "drift_noise": (L * sigma2 * B2**2) ** (1 / 3) / (K ** (1 / 3) * R ** (2 / 3)),
            "drift_heterogeneity": (L * zeta2 * B2**2) ** (1 / 3) / R ** (2 / 3),
        },
        **common,
    )
    return {"minibatch": mb, "local": loc}


def sampling_variance_factor(n: int, S: int, replacement: bool = False) -> float:
    r"""Exact variance factor of averaging S of n client updates sampled uniformly.

    ``E||(1/S) sum_{i in S} D_i - Dbar||^2 = factor (1/n) sum_i ||D_i - Dbar||^2`` with
    ``factor = (n - S)/(S (n - 1))`` without replacement (0 at S = n) and ``1/S`` with
    replacement (families.md §1.3; tested by enumerating subsets). **Tight** (an identity).
    With ``D_i ~ -gamma tau grad f_i`` this is the ``(1 - S/n)/S * zeta2`` sampling term.

    Example
    -------
    >>> sampling_variance_factor(7, 3)
    0.2222222222222222
    """
    n = check_int("n", n, minimum=1)
    S = _check_S(S, n)
    if replacement:
        return 1.0 / S
    return 0.0 if S == n else (n - S) / (S * (n - 1))


def fedavg(
    *,
    L: float,
    sigma2: float,
    G2: float,
    n: int,
    S: int,
    K: int,
    R: int,
    mu: float | None = None,
    r0_sq: float = 0.0,
    delta: float | None = None,
    B2: float = 0.0,
    eta_g: float = 1.0,
    eta_l: float | None = None,
) -> Rate:
    r"""FedAvg with partial participation (S of n clients per round), big-O.

    Karimireddy et al. (2020), Theorem I (rates.md §2c, families.md §1.5 [RECALLED]; constants
    NOT confirmed, set to 1 except the recalled ``16(1 + B^2)`` in the exponent). (G, B)-
    dissimilarity ``(1/n) sum ||grad f_i||^2 <= G2 + B2 ||grad f||^2``; K local steps, R rounds,
    server step ``eta_g``, local step ``eta_l``; ``M^2 = sigma2 (1 + S/eta_g^2) + K (1 - S/n)
    G2``. Strongly convex (``mu``) on ``E f(xbar_R) - f*``::

        noise     sigma2 (1 + S/eta_g^2)/(mu R K S)
        sampling  (1 - S/n) G2/(mu R S)                   (the K (1 - S/n) G2 part of M^2)
        drift_heterogeneity  G2/(mu R^2)
        optimization         mu r0_sq exp(-mu R/(16 (1 + B2) L))

    Non-convex (``delta``) on ``min_r E||grad f(x_r)||^2``, with sqrt(a + b) <= sqrt a + sqrt b
    splitting M::

        noise sqrt(L delta sigma2 (1 + S/eta_g^2)/(R K S)), sampling sqrt(L delta (1 - S/n)
        G2/(R S)), drift_heterogeneity (L delta sqrt(G2))^{2/3}/R^{2/3},
        optimization (1 + B2) L delta/R

    ``S = n`` removes the sampling term exactly. Step: the theorem needs
    ``eta_l eta_g K L <= 1/c`` with an unconfirmed c >= 1; a warning fires when
    ``eta_l eta_g K L > 1`` (``eta_l`` optional).

    Example
    -------
    >>> r = fedavg(L=1.0, mu=0.5, sigma2=1.0, G2=1.0, n=10, S=10, K=5, R=100)
    >>> r.terms['sampling']
    0.0
    """
    L = check_positive("L", L)
    sigma2 = check_positive("sigma2", sigma2, allow_zero=True)
    G2 = check_positive("G2", G2, allow_zero=True)
    B2 = check_positive("B2", B2, allow_zero=True)
    n = check_int("n", n, minimum=1)
    S = _check_S(S, n)
    K = _check_tau(K, "K")
    R = check_int("R", R, minimum=1)
    eta_g = check_positive("eta_g", eta_g)
    cond = "eta_l eta_g K L <= 1/c, numerical c >= 1 unconfirmed"
    ok = None
    if eta_l is not None:
        eta_l = check_positive("eta_l", eta_l)
        ok = eta_l * eta_g * K * L <= 1.0 + 1e-12
        if not ok:
            warn_step_size("fedavg", eta_l, cond)
    noise_f = sigma2 * (1.0 + S / eta_g**2)
    samp = 1.0 - S / n
    if mu is not None:
        mu = check_positive("mu", mu)
        r0_sq = check_positive("r0_sq", r0_sq, allow_zero=True)
        terms = {
            "noise": noise_f / (mu * R * K * S),
            "sampling": samp * G2 / (mu * R * S),
            "drift_heterogeneity": G2 / (mu * R**2),
            "optimization": mu * r0_sq * math.exp(-mu * R / (16.0 * (1.0 + B2) * L)),
        }
        name, quantity = "fedavg/strongly_convex", "E f(xbar_R) - f*"
    else:
        if delta is None:
            raise TheorylabError("pass mu (strongly convex) or delta = f(x0) - f* (non-convex)")
        delta = check_positive("delta", delta, allow_zero=True)
        terms = {
            "noise": math.sqrt(L * delta * noise_f / (R * K * S)),
            "sampling": math.sqrt(L * delta * samp * G2 / (R * S)),
            "drift_heterogeneity": (L * delta * math.sqrt(G2)) ** (2 / 3) / R ** (2 / 3),
            "optimization": (1.0 + B2) * L * delta / R,
        }
        name, quantity = "fedavg/nonconvex", "min_r E||grad f(x_r)||^2"
    return Rate(
        name=name,
        quantity=quantity,
        terms=terms,
        kind="upper",
        source=f"{_SCAF}, Theorem I (FedAvg); rates.md §2c, families.md §1.5 (RECALLED; "
        "constants NOT confirmed)",
        assumptions=("f_i L-smooth", "(G, B)-dissimilarity", "uniform sampling of S clients"),
        step_size_condition=cond,
        step_size_ok=ok,
        big_o=True,
        extra={"n": n, "S": S, "K": K, "R": R, "eta_g": eta_g, "sampling_factor": samp},
    )


def scaffold(
    *,
    L: float,
    sigma2: float,
    n: int,
    S: int,
    K: int,
    R: int,
    eta_l: float,
    eta_g: float = 1.0,
    mu: float | None = None,
    r0_sq: float = 0.0,
    delta: float | None = None,
) -> Rate:
    r"""SCAFFOLD (Karimireddy et al. 2020, Theorem III): no heterogeneity term, big-O.

    Update: control variates c_i, c; local ``y <- y - eta_l (g_i(y) - c_i + c)`` for K steps;
    server ``x <- x + eta_g mean(y_i - x)``, ``c <- c + (S/n) mean(c_i^+ - c_i)``. Rates
    (families.md §2.3 [RECALLED]; constants of the rate set to 1, those of the conditions as
    recalled and NOT confirmed)::

        strongly convex: noise sigma2 (1 + S/eta_g^2)/(mu R K S)
                         + optimization mu r0_sq exp(-min(S/(30 n), mu/(162 L)) R),
                         for eta_l <= min(1/(81 L K eta_g), S/(15 mu n K eta_g))
        non-convex:      noise sqrt(L delta sigma2 (1 + n/eta_g^2)/(R K S))
                         + optimization (n/S)^{2/3} L delta/R,
                         for eta_l <= (S/n)^{2/3}/(24 L K eta_g)

    There is **no** zeta2/G2 term (``terms['heterogeneity'] = 0``, kept to make the contrast
    with :func:`fedavg` explicit).

    Example
    -------
    >>> r = scaffold(L=1.0, mu=0.1, sigma2=0.0, n=10, S=10, K=5, R=100, eta_l=0.001)
    >>> r.terms['heterogeneity']
    0.0
    """
    L = check_positive("L", L)
    sigma2 = check_positive("sigma2", sigma2, allow_zero=True)
    n = check_int("n", n, minimum=1)
    S = _check_S(S, n)
    K = _check_tau(K, "K")
    R = check_int("R", R, minimum=1)
    eta_l = check_positive("eta_l", eta_l)
    eta_g = check_positive("eta_g", eta_g)
    if mu is not None:
        mu = check_positive("mu", mu)
        r0_sq = check_positive("r0_sq", r0_sq, allow_zero=True)
        limit = min(1.0 / (81.0 * L * K * eta_g), S / (15.0 * mu * n * K * eta_g))
        cond = "eta_l <= min(1/(81 L K eta_g), S/(15 mu n K eta_g)) (recalled, unconfirmed)"
        terms = {
            "noise": sigma2 * (1.0 + S / eta_g**2) / (mu * R * K * S),
            "optimization": mu * r0_sq * math.exp(-min(S / (30.0 * n), mu / (162.0 * L)) * R),
            "heterogeneity": 0.0,
        }
        name, quantity = "scaffold/strongly_convex", "E f(xbar_R) - f*"
    else:
        if delta is None:
            raise TheorylabError("pass mu (strongly convex) or delta = f(x0) - f* (non-convex)")
        delta = check_positive("delta", delta, allow_zero=True)
        limit = (S / n) ** (2 / 3) / (24.0 * L * K * eta_g)
        cond = "eta_l <= (S/n)^{2/3}/(24 L K eta_g) (recalled, unconfirmed)"
        terms = {
            "noise": math.sqrt(L * delta * sigma2 * (1.0 + n / eta_g**2) / (R * K * S)),
            "optimization": (n / S) ** (2 / 3) * L * delta / R,
            "heterogeneity": 0.0,
        }
        name, quantity = "scaffold/nonconvex", "E||grad f(x_R)||^2 (averaged)"
    ok = eta_l <= limit * (1 + 1e-12)
    if not ok:
        warn_step_size("scaffold", eta_l, cond)
    return Rate(
        name=name,
        quantity=quantity,
        terms=terms,
        kind="upper",
        source=f"{_SCAF}, Theorem III; families.md §2.3 (RECALLED; constants NOT confirmed)",
        assumptions=("f_i L-smooth", "no heterogeneity assumption", "uniform client sampling"),
        step_size_condition=cond,
        step_size_ok=ok,
        big_o=True,
        extra={"n": n, "S": S, "K": K, "R": R, "eta_l_max": limit},
    )


# ---- the period ------------------------------------------------------------------------------
_ALLREDUCE = ("ring", "direct")


def sync_time(n: int, model: CommModel, *, allreduce: str = "ring") -> float:
    r"""Seconds of one model average over n nodes under the alpha-beta ``model`` (no compute).

    ``'ring'`` (bandwidth-optimal ring all-reduce: reduce-scatter + all-gather, 2(n-1) steps of
    ``nbytes/n``): ``2 (n - 1) (alpha + beta nbytes/n)``. ``'direct'`` (every node sends its
    model to the n - 1 others): ``round_time(n - 1, model) - compute_s`` of
    :func:`theorylab.cost.round_time` (sequential or parallel sends as the model says).
    n = 1 costs 0.

    Example
    -------
    >>> sync_time(4, CommModel(alpha=1e-3, beta=1e-9, nbytes=4_000_000))
    0.012
    """
    n = check_int("n", n, minimum=1)
    if not isinstance(model, CommModel):
        raise TypeError(f"model must be a theorylab.cost.CommModel, got {type(model).__name__}")
    if allreduce not in _ALLREDUCE:
        raise TheorylabError(f"allreduce must be one of {_ALLREDUCE}, got {allreduce!r}")
    if n == 1:
        return 0.0
    if allreduce == "ring":
        return 2.0 * (n - 1) * (model.alpha + model.beta * model.nbytes / n)
    return round_time(n - 1, model) - model.compute_s


def _first_hit(err: np.ndarray, target: float) -> int | None:
    err = np.asarray(err, dtype=float).ravel()
    hit = np.flatnonzero(err <= target)
    return int(hit[0]) if hit.size else None


def time_to_target(
    error_curve: Callable[[int], Iterable[float]],
    tau: int,
    *,
    target: float,
    n: int,
    model: CommModel,
    allreduce: str = "ring",
    compute_s: float | None = None,
) -> dict:
    """Predicted wall-clock seconds for local SGD with period tau to reach ``target``.

    ``k`` = first index with ``error_curve(tau)[k] <= target`` (local steps);
    ``time = k compute_s + ceil(k/tau) sync_time(n, model)`` (a final partial round is synced
    early). ``compute_s`` defaults to ``model.compute_s`` (seconds per local step).

    Returns
    -------
    dict with 'tau', 'iterations', 'rounds', 'time_s' (inf and None when never reached).
    """
    tau = _check_tau(tau)
    target = check_positive("target", target)
    cs = model.compute_s if compute_s is None else check_positive("compute_s", compute_s, True)
    sync = sync_time(n, model, allreduce=allreduce)
    k = _first_hit(error_curve(tau), target)
    if k is None:
        return {"tau": tau, "iterations": None, "rounds": None, "time_s": math.inf}
    rounds = -(-k // tau)
    return {"tau": tau, "iterations": k, "rounds": rounds, "time_s": k * cs + rounds * sync}


@dataclass(frozen=True)
class PeriodChoice:
    """Result of :func:`best_period`: the best tau and the whole time-to-target curve."""

    tau: int | None
    time_s: float
    iterations: int | None
    rounds: int | None
    curve: list = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "tau": self.tau,
            "time_s": self.time_s,
            "iterations": self.iterations,
            "rounds": self.rounds,
            "curve": list(self.curve),
        }


def best_period(
    error_curve: Callable[[int], Iterable[float]],
    taus: Iterable[int],
    *,
    target: float,
    n: int,
    model: CommModel,
    allreduce: str = "ring",
    compute_s: float | None = None,
) -> PeriodChoice:
    """The period tau (from ``taus``) minimising predicted wall-clock time to ``target``.

    Evaluates :func:`time_to_target` for each tau (ties go to the smaller tau). A larger tau
    saves ``sync_s`` per skipped round but, with heterogeneity, the curve reaches the target
    later (or never, once the drift floor exceeds it). ``tau=None`` when no tau reaches it.

    Example
    -------
    >>> curve = local_sgd_error_curve(gamma=0.05, L=1.0, mu=0.5, sigma2=0.0, zeta2=1e-3, n=8,
    ...                               avg_error0=1.0, steps=3000)
    >>> m = CommModel(alpha=1e-3, beta=0.0, nbytes=0, compute_s=1e-4)
    >>> choice = best_period(curve, [1, 2, 4, 8, 16], target=1e-2, n=8, model=m)
    >>> choice.tau, [r["iterations"] for r in choice.curve]  # tau = 16 never gets there
    (4, [91, 105, 149, 1212, None])
    """
    taus = [_check_tau(t) for t in taus]
    if not taus:
        raise TheorylabError("taus must hold at least one period")
    rows = []
    for t in taus:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", TheorylabWarning)
            rows.append(
                time_to_target(
                    error_curve, t, target=target, n=n, model=model, allreduce=allreduce,
                    compute_s=compute_s,
                )
            )  # fmt: skip
    best = min(rows, key=lambda r: (r["time_s"], r["tau"]))
    if not math.isfinite(best["time_s"]):
        return PeriodChoice(None, math.inf, None, None, rows)
    return PeriodChoice(best["tau"], best["time_s"], best["iterations"], best["rounds"], rows)
