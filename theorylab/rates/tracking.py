r"""Predicted rates of the heterogeneity-corrected decentralized methods (gradient tracking,
exact diffusion / D^2), and the numerical transient crossing against parallel SGD.

Updates (families.md §4; ``G^k`` the stacked stochastic gradients, W doubly stochastic):

* gradient tracking, ATC (Nedic et al. 2017; Qu & Li 2018; analysed by Koloskova, Lin, Stich
  2021): ``X^{k+1} = W (X^k - gamma Y^k)``, ``Y^{k+1} = W (Y^k + G^{k+1} - G^k)``, ``Y^0 = G^0``;
* exact diffusion (Yuan et al. 2019) / D^2 (Tang et al. 2018):
  ``X^{k+1} = Wbar (2 X^k - X^{k-1} - gamma (G^k - G^{k-1}))``, ``X^1 = Wbar (X^0 - gamma G^0)``
  with ``Wbar = (I + W)/2`` (ED) or ``Wbar = W`` (D^2, which needs ``lambda_min(W) > -1/3``).

Conventions: ``rho = ||W - 11^T/n||_2``, spectral gap ``1 - rho``, Koloskova's ``p = 1 - rho^2``
(conversions in :mod:`theorylab.rates.symbols`). ``delta = f(x_0) - f*``; per-node noise
``sigma2``. Neither method has a zeta2 term: heterogeneity only enters through the initial
gradient disagreement, which the big-O forms drop (``terms['heterogeneity'] = 0``).

How sure: all rates here are big-O (``big_o=True``), constants set to 1.
Gradient tracking: the form of Koloskova, Lin & Stich (2021) as recalled in rates.md §4a; its
p- and c-dependence (``1/(p c)`` noiseless, ``1/(sqrt(p) c)`` on the stochastic eps^{-3/2} term)
was checked against the paper's abstract, which defines ``c >= p`` only as "related to the
negative eigenvalues of the connectivity matrix (a constant in most practical applications)";
its exact definition could not be confirmed here, so ``c`` is an input (default 1, e.g. a lazy
W >= 0). Exact diffusion, strongly
convex: Yuan, Alghunaim & Huang (2023) [RECALLED], who absorb L and mu; they are placed here as
in Koloskova et al.'s DSGD form (``1/(mu n T)`` and ``L/(mu^2 T^2)``). Exact diffusion,
non-convex: the form is **reconstructed** to reproduce the stated transient O(n^3/(1-rho)^2)
of Alghunaim & Yuan (2022) [RECALLED], not copied from a theorem.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from theorylab.errors import TheorylabError, check_int, check_positive
from theorylab.rates._rate import Rate, warn_step_size
from theorylab.rates.decentralized import dsgd
from theorylab.rates.symbols import p_from_rho

__all__ = [
    "gradient_tracking",
    "exact_diffusion",
    "crossing_iteration",
    "transient_crossing",
]

_GT = "Koloskova, Lin, Stich, NeurIPS 2021, arXiv 2202.03836"
_ED_SC = "Yuan, Alghunaim, Huang, JMLR 2023, arXiv 2105.08023"
_ED_NC = "Alghunaim & Yuan, IEEE TSP 2022, arXiv 2110.09993"


def _rho(rho) -> float:
    rho = check_positive("rho", rho, allow_zero=True)
    if rho >= 1:
        raise TheorylabError(f"rho = ||W - 11^T/n||_2 must be < 1 (connected graph), got {rho}")
    return rho


def _inputs(L, sigma2, n, rho, T, mu, delta, r0_sq):
    L = check_positive("L", L)
    sigma2 = check_positive("sigma2", sigma2, allow_zero=True)
    n = check_int("n", n, minimum=1)
    rho = _rho(rho)
    T = check_int("T", T, minimum=1)
    r0_sq = check_positive("r0_sq", r0_sq, allow_zero=True)
    if mu is not None:
        mu = check_positive("mu", mu)
        if mu > L:
            raise TheorylabError(f"need mu <= L, got mu={mu} > L={L}")
    elif delta is None:
        raise TheorylabError("pass mu (strongly convex) or delta = f(x0) - f* (non-convex)")
    else:
        delta = check_positive("delta", delta, allow_zero=True)
    return L, sigma2, n, rho, T, mu, delta, r0_sq


def gradient_tracking(
    *,
    L: float,
    sigma2: float,
    n: int,
    rho: float,
    T: int,
    mu: float | None = None,
    delta: float | None = None,
    r0_sq: float = 0.0,
    c: float = 1.0,
    gamma: float | None = None,
) -> Rate:
    r"""Gradient tracking (Koloskova, Lin, Stich 2021), big-O, no zeta2 term.

    Strongly convex (``mu``): ``T = O~(sigma2/(mu n eps) + sqrt(L) sigma/(mu sqrt(p) c sqrt(eps))
    + L/(mu p c) log(1/eps))`` inverted::

        noise sigma2/(mu n T) + topology L sigma2/(mu^2 p c^2 T^2)
        + optimization L r0_sq exp(-mu p c T/L)

    Non-convex (``delta``), on M1: ``T = O(L delta (sigma2/(n eps^2) + sigma/(sqrt(p) c
    eps^{3/2}) + 1/(p c eps)))`` inverted::

        noise sqrt(L delta sigma2/(n T)) + topology (L delta sigma/(sqrt(p) c T))^{2/3}
        + optimization L delta/(p c T)

    Step: ``gamma <= p c/(c_0 L)`` with an unconfirmed numerical ``c_0 >= 1``; the warning
    fires when ``gamma > p c/L`` (violates it for every c_0 >= 1).

    Parameters
    ----------
    L > 0; sigma2 >= 0; n >= 1; rho in [0, 1); T >= 1; mu in (0, L] or delta >= 0;
    r0_sq >= 0; c in (0, 1]; gamma > 0 or None

    Example
    -------
    >>> r = gradient_tracking(L=1.0, sigma2=1.0, n=4, rho=0.0, T=100, delta=1.0)
    >>> r.terms['heterogeneity'], r.terms['optimization']
    (0.0, 0.01)
    """
    L, sigma2, n, rho, T, mu, delta, r0_sq = _inputs(L, sigma2, n, rho, T, mu, delta, r0_sq)
    c = check_positive("c", c)
    p = p_from_rho(rho)
    if c > 1:
        raise TheorylabError(f"c (gradient tracking's constant) must be in (0, 1], got {c}")
    cond = "gamma <= p c/(c_0 L), numerical c_0 >= 1 unconfirmed"
    ok = None
    if gamma is not None:
        gamma = check_positive("gamma", gamma)
        ok = gamma <= p * c / L * (1 + 1e-12)
        if not ok:
            warn_step_size("gradient_tracking", gamma, cond)
    if mu is not None:
        terms = {
            "noise": sigma2 / (mu * n * T),
            "topology": L * sigma2 / (mu**2 * p * c**2 * T**2),
            "heterogeneity": 0.0,
            "optimization": L * r0_sq * math.exp(-mu * p * c * T / L),
        }
        name, quantity = "gradient_tracking/strongly_convex", "E f(xhat_T) - f* (weighted avg)"
    else:
        terms = {
            "noise": math.sqrt(L * delta * sigma2 / (n * T)),
            "topology": (L * delta * math.sqrt(sigma2) / (math.sqrt(p) * c * T)) ** (2 / 3),
            "heterogeneity": 0.0,
            "optimization": L * delta / (p * c * T),
        }
        name, quantity = "gradient_tracking/nonconvex", "(1/T) sum_t E||grad f(xbar_t)||^2"
    return Rate(
        name=name,
        quantity=quantity,
        terms=terms,
        kind="upper",
        source=f"{_GT} (rates.md §4a, RECALLED; constants NOT confirmed, set to 1)",
        assumptions=("f_i L-smooth", "no heterogeneity assumption", "W symmetric doubly stoch."),
        step_size_condition=cond,
        step_size_ok=ok,
        big_o=True,
        extra={"p": p, "c": c, "rho": rho, "n": n, "T": T},
    )


def exact_diffusion(
    *,
    L: float,
    sigma2: float,
    n: int,
    rho: float,
    T: int,
    mu: float | None = None,
    delta: float | None = None,
    r0_sq: float = 0.0,
    gamma: float | None = None,
    lambda_min: float | None = None,
) -> Rate:
    r"""Exact diffusion / D^2, big-O, no zeta2 term (see the module docstring for sources).

    ``rho`` is that of the matrix the method mixes with (``Wbar = (I + W)/2`` for ED). Strongly
    convex (``mu``)::

        noise sigma2/(mu n T) + topology L rho^2 sigma2/(mu^2 (1 - rho) T^2)
        + optimization L r0_sq exp(-mu (1 - rho) T/L)

    Non-convex (``delta``, reconstructed form, module docstring)::

        noise sqrt(L delta sigma2/(n T)) + topology (L delta rho sigma/(sqrt(1 - rho) T))^{2/3}
        + optimization L delta/((1 - rho) T)

    Step: stochastic analyses take ``gamma = O((1 - rho)/L)``; the warning fires when
    ``gamma > (1 - rho)/L``. D^2 with ``lambda_min`` (of the W it mixes with) ``<= -1/3`` is
    outside Tang et al.'s condition: an error (use ``Wbar = (I + W)/2``).

    Example
    -------
    >>> exact_diffusion(L=1.0, sigma2=1.0, n=4, rho=0.0, T=100, mu=1.0).terms['topology']
    0.0
    """
    L, sigma2, n, rho, T, mu, delta, r0_sq = _inputs(L, sigma2, n, rho, T, mu, delta, r0_sq)
    if lambda_min is not None and lambda_min <= -1.0 / 3.0:
        raise TheorylabError(
            f"D^2 needs lambda_min(W) > -1/3 (Tang et al. 2018), got {lambda_min}; mix with "
            "Wbar = (I + W)/2 (exact diffusion) instead"
        )
    gap = 1.0 - rho
    cond = "gamma <= (1 - rho)/(c_0 L), numerical c_0 >= 1 unconfirmed"
    ok = None
    if gamma is not None:
        gamma = check_positive("gamma", gamma)
        ok = gamma <= gap / L * (1 + 1e-12)
        if not ok:
            warn_step_size("exact_diffusion", gamma, cond)
    if mu is not None:
        terms = {
            "noise": sigma2 / (mu * n * T),
            "topology": L * rho**2 * sigma2 / (mu**2 * gap * T**2),
            "heterogeneity": 0.0,
            "optimization": L * r0_sq * math.exp(-mu * gap * T / L),
        }
        name, src = "exact_diffusion/strongly_convex", f"{_ED_SC} (rates.md §4b, RECALLED)"
        quantity = "(1/n) sum_i E||x_i^T - x*||^2 (order)"
    else:
        terms = {
            "noise": math.sqrt(L * delta * sigma2 / (n * T)),
            "topology": (L * delta * rho * math.sqrt(sigma2) / (math.sqrt(gap) * T)) ** (2 / 3),
            "heterogeneity": 0.0,
            "optimization": L * delta / (gap * T),
        }
        name = "exact_diffusion/nonconvex"
        src = f"{_ED_NC}: form reconstructed from the stated transient n^3/(1-rho)^2 (RECALLED)"
        quantity = "(1/T) sum_t E||grad f(xbar_t)||^2"
    return Rate(
        name=name,
        quantity=quantity,
        terms=terms,
        kind="upper",
        source=src + "; constants NOT confirmed, set to 1",
        assumptions=("f_i L-smooth", "no heterogeneity assumption", "W symmetric doubly stoch."),
        step_size_condition=cond,
        step_size_ok=ok,
        big_o=True,
        extra={"rho": rho, "n": n, "T": T},
    )


def crossing_iteration(
    error: Callable[[int], float],
    reference: Callable[[int], float],
    *,
    factor: float = 1.1,
    T_max: int = 10**15,
) -> float:
    """First T >= 1 from which on ``error(T') <= factor * reference(T')`` for every T' >= T.

    The ratio ``error/reference`` of these rates tends to 1 but need not be monotone (at small
    T the 1/T terms can dominate both curves, then the network's T^{-2/3} term takes over), so
    the *last* crossing is returned: both functions are evaluated on the geometric grid
    ``ceil(2^{j/8})`` up to ``T_max``, the last grid point where the condition fails and the
    next one bracket the crossing, and bisection inside the bracket (where the ratio is taken
    to be monotone) gives the integer. inf when the condition fails at ``T_max``. ``factor`` > 1.

    Example
    -------
    >>> crossing_iteration(lambda T: 1 / T + 100 / T**2, lambda T: 1 / T, factor=1.1)
    1000
    """
    factor = check_positive("factor", factor)
    if factor <= 1:
        raise TheorylabError(f"factor must be > 1 (within a factor of PSGD), got {factor}")
    T_max = check_int("T_max", T_max, minimum=1)

    def ok(T: int) -> bool:
        return error(T) <= factor * reference(T)

    grid = sorted({min(T_max, math.ceil(2 ** (j / 8))) for j in range(8 * T_max.bit_length() + 1)})
    if grid[-1] != T_max:
        grid.append(T_max)
    flags = [ok(T) for T in grid]
    if not flags[-1]:
        return math.inf
    bad = [i for i, f in enumerate(flags) if not f]
    if not bad:
        return 1
    lo, hi = grid[bad[-1]], grid[bad[-1] + 1]
    while hi - lo > 1:  # invariant: not ok(lo), ok(hi)
        mid = (lo + hi) // 2
        if ok(mid):
            hi = mid
        else:
            lo = mid
    return hi


def _dsgd_sc_tuned(L, mu, sigma2, zeta2, n, rho, T, r0_sq):
    """Koloskova et al. (2020) Thm 2 (tau = 1) strongly convex, inverted; big-O, constants 1."""
    p = p_from_rho(rho)
    return (
        sigma2 / (mu * n * T)
        + L * (sigma2 / p + zeta2 / p**2) / (mu**2 * T**2)
        + L * r0_sq * math.exp(-mu * p * T / L)
    )


def transient_crossing(
    algorithm: str,
    *,
    regime: str,
    n: int,
    rho: float,
    L: float = 1.0,
    mu: float | None = None,
    sigma2: float = 1.0,
    zeta2: float = 0.0,
    delta: float = 1.0,
    c: float = 1.0,
    factor: float = 1.1,
    T_max: int = 10**15,
) -> float:
    r"""Iteration at which the method's predicted error comes within ``factor`` of PSGD's.

    The full big-O expressions (all terms, constants 1), not only their leading parts:

    * ``'dsgd'``: non-convex, :func:`theorylab.rates.dsgd` (``source='koloskova2020'``);
      strongly convex, Koloskova et al. (2020) Thm 2 inverted, ``sigma2/(mu n T)
      + L (sigma2/p + zeta2/p^2)/(mu^2 T^2) + L r0_sq exp(-mu p T/L)``;
    * ``'gradient_tracking'`` / ``'exact_diffusion'``: :func:`gradient_tracking` /
      :func:`exact_diffusion`;

    against PSGD's ``sqrt(L delta sigma2/(n T)) + L delta/T`` (non-convex) or
    ``sigma2/(mu n T) + L r0_sq exp(-mu T/L)`` (strongly convex), the same expressions with the
    network terms removed and p = 1. The initial-condition terms are left out (``r0_sq = 0``):
    with them both curves start dominated by them and the ratio is not monotone. The strongly
    convex crossing then has the closed form ``ceil((sum of the transients of
    transient_iterations) / (factor - 1))`` (tested); every crossing is checked against a
    brute-force scan over T in the tests. Returns a float (inf when not reached by T_max).

    Example
    -------
    >>> transient_crossing('dsgd', regime='strongly_convex', n=8, rho=0.5, mu=0.5, zeta2=1.0)
    498.0
    """
    if algorithm not in ("dsgd", "gradient_tracking", "exact_diffusion"):
        raise TheorylabError(
            f"algorithm must be 'dsgd', 'gradient_tracking' or 'exact_diffusion', got {algorithm!r}"
        )
    L = check_positive("L", L)
    sigma2 = check_positive("sigma2", sigma2)
    zeta2 = check_positive("zeta2", zeta2, allow_zero=True)
    n = check_int("n", n, minimum=1)
    rho = _rho(rho)
    r0_sq = 0.0  # the transient compares the noise and network terms (no initial-condition part)
    if regime == "strongly_convex":
        if mu is None:
            raise TheorylabError("regime='strongly_convex' needs mu")
        mu = check_positive("mu", mu)

        def ref(T):
            return sigma2 / (mu * n * T) + L * r0_sq * math.exp(-mu * T / L)

        if algorithm == "dsgd":

            def err(T):
                return _dsgd_sc_tuned(L, mu, sigma2, zeta2, n, rho, T, r0_sq)

        else:
            fn = gradient_tracking if algorithm == "gradient_tracking" else exact_diffusion
            extra = {"c": c} if algorithm == "gradient_tracking" else {}

            def err(T):
                kw = dict(L=L, sigma2=sigma2, n=n, rho=rho, T=T, mu=mu, r0_sq=r0_sq)
                return fn(**kw, **extra).total

    elif regime == "nonconvex":
        delta = check_positive("delta", delta)

        def ref(T):
            return math.sqrt(L * delta * sigma2 / (n * T)) + L * delta / T

        if algorithm == "dsgd":

            def err(T):
                return dsgd(
                    gamma=1.0, L=L, sigma2=sigma2, zeta2=zeta2, rho=rho, n=n, T=T, delta=delta
                ).total

        else:
            fn = gradient_tracking if algorithm == "gradient_tracking" else exact_diffusion
            extra = {"c": c} if algorithm == "gradient_tracking" else {}

            def err(T):
                return fn(L=L, sigma2=sigma2, n=n, rho=rho, T=T, delta=delta, **extra).total

    else:
        raise TheorylabError(f"regime must be 'strongly_convex' or 'nonconvex', got {regime!r}")
    return float(crossing_iteration(err, ref, factor=factor, T_max=T_max))
