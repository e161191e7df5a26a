"""Predicted rates of parallel SGD, decentralized SGD and gossip averaging.

Notation (shared/references/rates.md §0): n nodes, smoothness ``L``, strong convexity ``mu``,
per-node gradient noise ``sigma2 = E||g_i - grad f_i||^2``, heterogeneity ``zeta2`` (at the
optimum, H2, in (strongly) convex results; uniform, H1, in non-convex ones), ``delta`` =
f(x_0) - f*, step ``gamma``. Mixing: ``rho = ||W - 11^T/n||_2`` (spectral gap ``1 - rho``);
Koloskova's mixing parameter is ``p = 1 - rho^2``.

Every function returns a :class:`~theorylab.rates.Rate` with named terms, its kind
(upper/tight/lower), its source and step-size condition (a ``TheorylabWarning`` is emitted when the
given step violates it).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from theorylab.errors import TheorylabError, check_int, check_positive
from theorylab.rates._rate import Rate, warn_step_size

__all__ = [
    "psgd",
    "dsgd",
    "dsgd_bound_curve",
    "transient_iterations",
    "gossip_consensus",
]

_PSGD_REF = "Ghadimi & Lan 2013, arXiv 1309.5549 (non-convex); derived here (strongly convex)"
_DSGD_SC_REF = (
    "derived here (coupled Lyapunov recursion, proof in theorylab.rates.decentralized.dsgd); "
    "cf. Koloskova et al. ICML 2020, arXiv 2003.10422, Lemma on consensus"
)


def _check_rho(rho) -> float:
    rho = check_positive("rho", rho, allow_zero=True)
    if rho >= 1:
        raise TheorylabError(
            f"rho = ||W - 11^T/n||_2 must be < 1 (a connected graph with a positive spectral "
            f"gap), got {rho}"
        )
    return rho


def _check_T(T) -> int | None:
    return None if T is None else check_int("T", T, minimum=0)


def psgd(
    *,
    gamma: float,
    L: float,
    sigma2: float,
    n: int,
    T: int | None = None,
    mu: float | None = None,
    r0_sq: float = 0.0,
    delta: float | None = None,
) -> Rate:
    r"""Rate of parallel (minibatch, all-reduce) SGD with a constant step.

    The math: ``x_{t+1} = x_t - gamma (1/n) sum_i g_i(x_t)``; the averaged noise has variance
    ``sigma2 / n``.

    Strongly convex (``mu`` given), **upper** bound, tight for ``f = (h/2)||x - x*||^2``
    (``h = mu = L``)::

        E||x_T - x*||^2 <= (1 - gamma mu)^{2T} r0_sq
                          + gamma sigma2 / (n mu (2 - gamma mu)) (1 - (1 - gamma mu)^{2T})

    for ``gamma <= 2/(L + mu)``. Proof: ``||x - gamma grad f(x) - x*|| <= (1 - gamma mu)
    ||x - x*||`` for L-smooth mu-strongly convex f and that step, the noise is independent and
    mean zero, and the geometric sum of ``gamma^2 sigma2/n (1-gamma mu)^{2t}`` gives the second
    term. ``T=None`` gives the steady state.

    Non-convex (``mu`` None; needs ``T`` and ``delta``), **upper** bound for ``gamma <= 1/L``::

        (1/T) sum_{t<T} E||grad f(x_t)||^2 <= 2 delta / (gamma T) + gamma L sigma2 / n

    Parameters
    ----------
    gamma : float > 0; L : float > 0; sigma2 : float >= 0; n : int >= 1
    T : int >= 0 or None (steady state; strongly convex only)
    mu : float in (0, L], or None for the non-convex bound
    r0_sq : float >= 0, ||x_0 - x*||^2
    delta : float >= 0, f(x_0) - f* (non-convex)

    Returns
    -------
    Rate with terms 'optimization' and 'noise'.

    Example
    -------
    >>> r = psgd(gamma=0.1, L=1.0, mu=1.0, sigma2=2.0, n=4)
    >>> round(r.total, 12) == round(0.1 * 2.0 / (4 * 1.0 * 1.9), 12)
    True

    References
    ----------
    Ghadimi & Lan, "Stochastic first- and zeroth-order methods for nonconvex stochastic
    programming", SIAM J. Optim. 2013, arXiv 1309.5549. rates.md §1.
    """
    gamma = check_positive("gamma", gamma)
    L = check_positive("L", L)
    sigma2 = check_positive("sigma2", sigma2, allow_zero=True)
    n = check_int("n", n, minimum=1)
    T = _check_T(T)
    r0_sq = check_positive("r0_sq", r0_sq, allow_zero=True)
    params = {"gamma": gamma, "L": L, "sigma2": sigma2, "n": n, "T": T}
    if mu is not None:
        mu = check_positive("mu", mu)
        if mu > L:
            raise TheorylabError(f"need mu <= L, got mu={mu} > L={L}")
        cond = "gamma <= 2/(L + mu)"
        ok = gamma <= 2.0 / (L + mu) * (1 + 1e-12)
        if not ok:
            warn_step_size("psgd", gamma, cond)
            terms = {"optimization": math.inf, "noise": math.inf}
        else:
            c2 = (1.0 - gamma * mu) ** 2
            decay = 0.0 if T is None else c2**T
            floor = gamma * sigma2 / (n * mu * (2.0 - gamma * mu))
            terms = {"optimization": decay * r0_sq, "noise": floor * (1.0 - decay)}
        return Rate(
            name="psgd/strongly_convex",
            quantity="E||x_T - x*||^2" if T is not None else "lim E||x_t - x*||^2",
            terms=terms,
            kind="upper",
            source=_PSGD_REF + "; rates.md §1",
            assumptions=(
                "f L-smooth and mu-strongly convex",
                "unbiased noise, variance <= sigma2 per node, independent across nodes",
            ),
            step_size_condition=cond,
            step_size_ok=ok,
            extra={**params, "mu": mu},
        )
    if T is None or T == 0 or delta is None:
        raise TheorylabError(
            "the non-convex PSGD bound needs T >= 1 and delta = f(x_0) - f*; pass mu for the "
            "strongly convex bound"
        )
    delta = check_positive("delta", delta, allow_zero=True)
    cond = "gamma <= 1/L"
    ok = gamma <= (1.0 / L) * (1 + 1e-12)
    if not ok:
        warn_step_size("psgd", gamma, cond)
    return Rate(
        name="psgd/nonconvex",
        quantity="(1/T) sum_{t<T} E||grad f(x_t)||^2",
        terms={"optimization": 2.0 * delta / (gamma * T), "noise": gamma * L * sigma2 / n}
        if ok
        else {"optimization": math.inf, "noise": math.inf},
        kind="upper",
        source=_PSGD_REF,
        assumptions=("f L-smooth, bounded below", "unbiased noise, variance <= sigma2 per node"),
        step_size_condition=cond,
        step_size_ok=ok,
        extra={**params, "delta": delta},
    )


def _dsgd_sc_system(gamma, L, mu, sigma2, zeta2, rho, n, form):
    """Matrix G, constant vectors (per source) and validity/stability flags of the bound."""
    if form == "atc":
        q = rho
        c_e = 2.0 * gamma**2 * rho**2 * L**2 / (1.0 - rho)
        c_het = 2.0 * gamma**2 * rho**2 * zeta2 / (1.0 - rho)
        c_top = gamma**2 * rho**2 * sigma2 * (1.0 - 1.0 / n)
        valid = gamma <= 2.0 / (L + mu) * (1 + 1e-12)
    else:
        q = rho + gamma * L
        valid = gamma <= 2.0 / (L + mu) * (1 + 1e-12) and q < 1.0
        inv_gap = 1.0 / (1.0 - q) if q < 1.0 else math.inf
        c_e = 2.0 * gamma**2 * L**2 * inv_gap
        c_het = 2.0 * gamma**2 * zeta2 * inv_gap
        c_top = gamma**2 * sigma2 * (1.0 - 1.0 / n)
    G = np.array([[1.0 - gamma * mu, gamma * L**2 / mu], [c_e, q]])
    consts = {
        "noise": np.array([gamma**2 * sigma2 / n, 0.0]),
        "topology": np.array([0.0, c_top]),
        "heterogeneity": np.array([0.0, c_het]),
    }
    # spectral radius of the nonnegative G below 1 (with a relative margin against round-off)
    det = (1.0 - G[0, 0]) * (1.0 - G[1, 1]) - G[0, 1] * G[1, 0]
    stable = valid and q < 1.0 and det > 1e-12 * (1.0 - G[0, 0]) * (1.0 - G[1, 1])
    return G, consts, valid, stable


def _sc_condition(form: str) -> str:
    if form == "atc":
        return "gamma <= 2/(L + mu) and gamma < mu (1 - rho) / (sqrt(2) rho L^2)"
    return "gamma <= 2/(L + mu) and gamma < (1 - rho) / (L (1 + sqrt(2) L/mu))"


def dsgd_bound_curve(
    *,
    gamma: float,
    L: float,
    mu: float,
    sigma2: float,
    zeta2: float,
    rho: float,
    n: int,
    steps: int,
    avg_error0: float,
    consensus0: float,
    form: str = "atc",
) -> dict:
    r"""The strongly convex DSGD upper bound of :func:`dsgd` at every step 0..steps.

    Iterates ``u_{k+1} = G u_k + c`` from ``u_0 = (avg_error0, consensus0)`` (see :func:`dsgd`
    for G, c and the proof); ``u_k`` bounds ``(E||xbar_k - x*||^2, Xi_k)`` componentwise.

    Returns
    -------
    dict of ndarrays of length steps + 1: 'avg_error', 'consensus', 'error' (their sum, which
    bounds (1/n) sum_i E||x_i^k - x*||^2). All inf if the step violates the validity condition
    (``gamma <= 2/(L+mu)``, and ``rho + gamma L < 1`` for CTA).

    Example
    -------
    >>> c = dsgd_bound_curve(gamma=0.01, L=1.0, mu=0.5, sigma2=1.0, zeta2=1.0, rho=0.5, n=4,
    ...                      steps=3, avg_error0=1.0, consensus0=0.0)
    >>> c['error'].shape
    (4,)
    """
    gamma, L, mu, sigma2, zeta2, rho, n, form = _check_sc(gamma, L, mu, sigma2, zeta2, rho, n, form)
    steps = check_int("steps", steps, minimum=0)
    e0 = check_positive("avg_error0", avg_error0, allow_zero=True)
    x0 = check_positive("consensus0", consensus0, allow_zero=True)
    G, consts, valid, _ = _dsgd_sc_system(gamma, L, mu, sigma2, zeta2, rho, n, form)
    out = np.empty((steps + 1, 2))
    if not valid:
        out[:] = np.inf
    else:
        c = sum(consts.values())
        u = np.array([e0, x0])
        for k in range(steps + 1):
            out[k] = u
            u = G @ u + c
    return {"avg_error": out[:, 0], "consensus": out[:, 1], "error": out.sum(axis=1)}


def _check_sc(gamma, L, mu, sigma2, zeta2, rho, n, form):
    gamma = check_positive("gamma", gamma)
    L = check_positive("L", L)
    mu = check_positive("mu", mu)
    if mu > L:
        raise TheorylabError(f"need mu <= L, got mu={mu} > L={L}")
    sigma2 = check_positive("sigma2", sigma2, allow_zero=True)
    zeta2 = check_positive("zeta2", zeta2, allow_zero=True)
    rho = _check_rho(rho)
    n = check_int("n", n, minimum=1)
    if not isinstance(form, str) or form.lower() not in ("atc", "cta", "awc"):
        raise TheorylabError(f"form must be 'atc' or 'cta' (alias 'awc'), got {form!r}")
    form = "cta" if form.lower() in ("cta", "awc") else "atc"
    return gamma, L, mu, sigma2, zeta2, rho, n, form


def dsgd(
    *,
    gamma: float,
    L: float,
    sigma2: float,
    zeta2: float,
    rho: float,
    n: int,
    mu: float | None = None,
    T: int | None = None,
    form: str = "atc",
    avg_error0: float = 0.0,
    consensus0: float = 0.0,
    delta: float | None = None,
    source: str = "koloskova2020",
) -> Rate:
    r"""Rate of decentralized SGD (DSGD / D-PSGD) with a constant step.

    Updates: ATC ``x_i <- sum_j W_ij (x_j - gamma g_j(x_j))``; CTA (AWC)
    ``x_i <- sum_j W_ij x_j - gamma g_i(x_i)``; ``rho = ||W - 11^T/n||_2`` (spectral gap
    ``1 - rho``), ``W`` doubly stochastic.

    **Strongly convex** (``mu`` given): an **upper** bound with explicit constants, derived here.
    Assumptions: every f_i convex and L-smooth, f = mean f_i mu-strongly convex,
    ``zeta2 = (1/n) sum_i ||grad f_i(x*)||^2`` (H2), unbiased noise independent across nodes with
    ``E||xi_i||^2 <= sigma2``. Let ``e_k = E||xbar_k - x*||^2`` and
    ``Xi_k = (1/n) E||X_k - 1 xbar_k^T||_F^2``. Then componentwise
    ``(e_{k+1}, Xi_{k+1}) <= G (e_k, Xi_k) + c`` with::

        G = [[1 - gamma mu, gamma L^2 / mu],
             [c_e,          q            ]],
        c = (gamma^2 sigma2 / n,  c_het + c_top),

        ATC: q = rho,            c_e = 2 gamma^2 rho^2 L^2/(1 - rho),
             c_het = 2 gamma^2 rho^2 zeta2/(1 - rho),  c_top = gamma^2 rho^2 sigma2 (1 - 1/n)
        CTA: q = rho + gamma L,  c_e = 2 gamma^2 L^2/(1 - q),
             c_het = 2 gamma^2 zeta2/(1 - q),          c_top = gamma^2 sigma2 (1 - 1/n)

    valid for ``gamma <= 2/(L + mu)`` (and ``q < 1`` for CTA). Since G >= 0 entrywise, iterating
    ``u_{k+1} = G u_k + c`` from ``u_0 = (avg_error0, consensus0)`` bounds ``(e_k, Xi_k)`` at every
    k, and ``(1/n) sum_i E||x_i^k - x*||^2 = e_k + Xi_k <= u_k[0] + u_k[1]``. The steady state
    ``(I - G)^{-1} c`` is finite iff ``mu^2 (1 - q) > L^2 c_e``, i.e.
    ``gamma < mu (1 - rho)/(sqrt 2 rho L^2)`` (ATC) or ``gamma < (1 - rho)/(L (1 + sqrt 2 L/mu))``
    (CTA). Its leading terms reproduce the known shape
    ``gamma sigma2/(mu n) + gamma^2 rho^2 sigma2/(1-rho) + gamma^2 rho^2 zeta2/(1-rho)^2``.

    Proof. *Average.* W doubly stochastic gives ``xbar_{k+1} = xbar_k - gamma (1/n) sum_i g_i``
    (both forms). Write ``xbar - x* - gamma grad f(xbar) = a`` with ``||a|| <= (1 - gamma mu)
    ||xbar - x*||`` (gamma <= 2/(L+mu)) and ``b = (1/n) sum_i (grad f_i(x_i) - grad f_i(xbar))``
    with ``||b||^2 <= L^2 Xi``. Young with ``eps = gamma mu/(1 - gamma mu)``:
    ``||a - gamma b||^2 <= (1 - gamma mu) ||xbar - x*||^2 + (gamma L^2/mu) Xi``; the averaged
    noise adds ``gamma^2 sigma2/n``.
    *Consensus, ATC.* With ``Y = X - 1 xbar^T`` and ``J = 11^T/n``, ``Y_{k+1} = (W - J)(Z - gamma
    (I - J) N)``, ``Z = (I - J)(Y - gamma D1) - gamma (I - J)(D2 + D3)``, rows
    ``D1_i = grad f_i(x_i) - grad f_i(xbar)``, ``D2_i = grad f_i(xbar) - grad f_i(x*)``,
    ``D3_i = grad f_i(x*)``. Row-wise ``y -> y - gamma (grad f_i(xbar + y) - grad f_i(xbar))``
    is non-expansive for convex L-smooth f_i and gamma <= 2/L, so
    ``||Z||_F <= ||Y||_F + gamma sqrt(n) (L ||xbar - x*|| + sqrt(zeta2))``. Young with
    ``beta = (1 - rho)/rho`` and ``||(W - J) M||_F <= rho ||M||_F`` give
    ``Xi_{k+1} <= rho Xi_k + 2 gamma^2 rho^2 (L^2 e_k + zeta2)/(1 - rho) + gamma^2 rho^2 sigma2
    (1 - 1/n)`` (the noise is independent of Z, ``E||(I - J) N||_F^2 <= (n - 1) sigma2``).
    *Consensus, CTA.* ``Y_{k+1} = (W - J) Y - gamma (I - J)(D1 + D2 + D3 + N)`` and
    ``||(W - J) Y - gamma (I - J) D1||_F <= (rho + gamma L) ||Y||_F``; the same steps with
    ``q = rho + gamma L`` in place of rho and without the factor rho^2. QED.
    The bound is checked against the exact second moments of :mod:`theorylab.exact` in the
    tests (it must lie above them at every step).

    **Non-convex** (``mu`` None; needs ``T`` and ``delta``), ``big_o=True`` (constants unknown):

    - ``source='koloskova2020'`` (Koloskova et al. ICML 2020, Thm 2 with tau = 1,
      p = 1 - rho^2; rates.md §2a/§3b; zeta2 uniform, H1)::

          M1 ~ sqrt(L delta sigma2/(n T)) + (L delta sqrt(zeta2)/(p T))^{2/3}
               + (L delta sqrt(sigma2/p)/T)^{2/3} + L delta/(p T)

      (the paper's single middle term is split in two; the split is within a factor 2^{1/3}).
    - ``source='lian2017'`` (Lian et al. NeurIPS 2017, Corollary 2, RECALLED constants):
      ``M1 <= 8 delta L/T + (8 delta + 4 L) sigma/sqrt(T n)`` with
      ``gamma = 1/(2L + sigma sqrt(T/n))``, for T above a graph-dependent threshold; ``gamma``
      is then ignored.

    ``source`` only selects among the non-convex bounds; the strongly convex bound is the one
    derived here whatever its (valid) value.

    Parameters
    ----------
    gamma : float > 0; L : float > 0; sigma2, zeta2 : float >= 0
    rho : float in [0, 1); n : int >= 1
    mu : float in (0, L] (strongly convex) or None (non-convex)
    T : int >= 0, or None for the steady state (strongly convex)
    form : 'atc' | 'cta' ('awc' alias)
    avg_error0 : ||xbar_0 - x*||^2; consensus0 : (1/n) ||X_0 - 1 xbar_0^T||_F^2
    delta : f(xbar_0) - f* (non-convex); source : 'koloskova2020' | 'lian2017'

    Returns
    -------
    Rate
        Strongly convex: terms 'optimization' (initial conditions), 'noise' (centralized
        sigma2/n part), 'topology' (consensus noise), 'heterogeneity' (zeta2 part), which sum to
        the bound on ``(1/n) sum_i E||x_i^T - x*||^2``; ``extra`` holds the 'avg_error' and
        'consensus' parts.

    Raises
    ------
    TheorylabError
        rho >= 1, mu > L, invalid values; missing T/delta for the non-convex bound.

    Example
    -------
    >>> r = dsgd(gamma=0.005, L=1.0, mu=0.5, sigma2=1.0, zeta2=1.0, rho=0.9, n=16)
    >>> sorted(r.terms)
    ['heterogeneity', 'noise', 'optimization', 'topology']
    >>> r.kind, r.big_o
    ('upper', False)

    References
    ----------
    Koloskova, Loizou, Boreiri, Jaggi, Stich, ICML 2020, arXiv 2003.10422.
    Lian, Zhang, Zhang, Hsieh, Zhang, Liu, NeurIPS 2017, arXiv 1705.09056.
    """
    if source not in ("koloskova2020", "lian2017"):
        raise TheorylabError(f"source must be 'koloskova2020' or 'lian2017', got {source!r}")
    if mu is None:
        return _dsgd_nonconvex(gamma, L, sigma2, zeta2, rho, n, T, delta, source)
    gamma, L, mu, sigma2, zeta2, rho, n, form = _check_sc(gamma, L, mu, sigma2, zeta2, rho, n, form)
    T = _check_T(T)
    e0 = check_positive("avg_error0", avg_error0, allow_zero=True)
    x0 = check_positive("consensus0", consensus0, allow_zero=True)
    G, consts, valid, stable = _dsgd_sc_system(gamma, L, mu, sigma2, zeta2, rho, n, form)
    cond = _sc_condition(form)
    ok = bool(valid and stable)
    if not ok:
        warn_step_size(f"dsgd ({form}, strongly convex)", gamma, cond)
    parts: dict[str, np.ndarray] = {}
    if not valid or (T is None and not stable):
        parts = {k: np.array([np.inf, np.inf]) for k in ("optimization", *consts)}
    elif T is None:
        inv = np.linalg.inv(np.eye(2) - G)
        parts = {"optimization": np.zeros(2), **{k: inv @ c for k, c in consts.items()}}
    else:
        GT = np.linalg.matrix_power(G, T)
        S = np.zeros((2, 2))  # sum_{t<T} G^t
        Gt = np.eye(2)
        for _ in range(T):
            S += Gt
            Gt = Gt @ G
        parts = {"optimization": GT @ np.array([e0, x0]), **{k: S @ c for k, c in consts.items()}}
    terms = {k: float(v.sum()) for k, v in parts.items()}
    extra = {
        "avg_error": float(sum(v[0] for v in parts.values())),
        "consensus": float(sum(v[1] for v in parts.values())),
        "gamma": gamma,
        "L": L,
        "mu": mu,
        "sigma2": sigma2,
        "zeta2": zeta2,
        "rho": rho,
        "n": n,
        "T": T,
        "form": form,
    }
    return Rate(
        name=f"dsgd/strongly_convex/{form}",
        quantity="(1/n) sum_i E||x_i^T - x*||^2"
        if T is not None
        else "limsup (1/n) sum_i E||x_i^t - x*||^2",
        terms=terms,
        kind="upper",
        source=_DSGD_SC_REF,
        assumptions=(
            "every f_i convex and L-smooth; f mu-strongly convex",
            "zeta2 = (1/n) sum_i ||grad f_i(x*)||^2 (at the optimum)",
            "unbiased noise, E||xi_i||^2 <= sigma2, independent across nodes and steps",
            "W doubly stochastic, rho = ||W - 11^T/n||_2 < 1",
        ),
        step_size_condition=cond,
        step_size_ok=ok,
        extra=extra,
    )


def _dsgd_nonconvex(gamma, L, sigma2, zeta2, rho, n, T, delta, source) -> Rate:
    L = check_positive("L", L)
    sigma2 = check_positive("sigma2", sigma2, allow_zero=True)
    zeta2 = check_positive("zeta2", zeta2, allow_zero=True)
    rho = _check_rho(rho)
    n = check_int("n", n, minimum=1)
    if T is None or delta is None:
        raise TheorylabError("the non-convex DSGD rate needs T >= 1 and delta = f(x_0) - f*")
    T = check_int("T", T, minimum=1)
    delta = check_positive("delta", delta, allow_zero=True)
    p = 1.0 - rho**2
    if source == "koloskova2020":
        gamma = check_positive("gamma", gamma)
        terms = {
            "noise": math.sqrt(L * delta * sigma2 / (n * T)),
            "heterogeneity": (L * delta * math.sqrt(zeta2) / (p * T)) ** (2 / 3),
            "topology": (L * delta * math.sqrt(sigma2 / p) / T) ** (2 / 3),
            "optimization": L * delta / (p * T),
        }
        return Rate(
            name="dsgd/nonconvex",
            quantity="(1/T) sum_{t<T} E||grad f(xbar_t)||^2 (M1), tuned gamma",
            terms=terms,
            kind="upper",
            source="Koloskova et al., ICML 2020, arXiv 2003.10422, Theorem 2 (tau = 1, "
            "p = 1 - rho^2); rates.md §2a/§3b",
            assumptions=(
                "every f_i L-smooth",
                "uniform heterogeneity zeta2 (H1)",
                "noise variance <= sigma2 per node",
                "W doubly stochastic",
            ),
            step_size_condition="gamma <= p/(c_0 L) with a numerical c_0 (tuned step)",
            step_size_ok=None,
            big_o=True,
            extra={
                "p": p,
                "L": L,
                "sigma2": sigma2,
                "zeta2": zeta2,
                "rho": rho,
                "n": n,
                "T": T,
                "delta": delta,
            },
        )
    if source == "lian2017":
        sigma = math.sqrt(sigma2)
        terms = {
            "optimization": 8.0 * delta * L / T,
            "noise": (8.0 * delta + 4.0 * L) * sigma / math.sqrt(T * n),
        }
        return Rate(
            name="dsgd/nonconvex/lian2017",
            quantity="(1/T) sum_{t<T} E||grad f(xbar_t)||^2 (M1)",
            terms=terms,
            kind="upper",
            source="Lian et al., NeurIPS 2017, arXiv 1705.09056, Corollary 2 (constants "
            "RECALLED in rates.md §3a, unverified)",
            assumptions=(
                "every f_i L-smooth",
                "uniform heterogeneity (H1)",
                "symmetric doubly stochastic W",
                "T >= T_0(n, rho, sigma2, zeta2)",
            ),
            step_size_condition="gamma = 1/(2L + sigma sqrt(T/n))",
            step_size_ok=None,
            big_o=True,
            extra={"gamma": 1.0 / (2 * L + sigma * math.sqrt(T / n)), "rho": rho, "n": n, "T": T},
        )
    raise TheorylabError(f"source must be 'koloskova2020' or 'lian2017', got {source!r}")


def transient_iterations(
    *,
    n: int,
    rho: float,
    regime: str = "strongly_convex",
    heterogeneous: bool = True,
    L: float = 1.0,
    mu: float | None = None,
    sigma2: float = 1.0,
    zeta2: float = 0.0,
    delta: float = 1.0,
    algorithm: str = "dsgd",
    c: float = 1.0,
) -> Rate:
    r"""Iterations before DSGD (or GT / ED) reaches linear speed-up (matches PSGD), up to constants.

    Equating the leading centralized term of Koloskova'20 (rates.md §3b) with each network term,
    ``p = 1 - rho^2`` (``rho = ||W - 11^T/n||_2``, spectral gap 1 - rho):

    ==================  ========================================  ===========================
    regime              heterogeneous (zeta2 > 0)                 iid (zeta2 = 0)
    ==================  ========================================  ===========================
    strongly convex     n L zeta2 / (mu sigma2 p^2)               n L / (mu p)
    non-convex          n^3 L delta zeta2^2 / (p^4 sigma2^3)      n^3 L delta / (p^2 sigma2)
    ==================  ========================================  ===========================

    i.e. O(n/(1-rho)^2), O(n/(1-rho)), O(n^3/(1-rho)^4), O(n^3/(1-rho)^2) (Pu, Olshevsky,
    Paschalidis 2022; Alghunaim & Yuan 2022). PSGD's transient is 0 by definition. These are
    **big-O** (``big_o=True``): check exponents by regression, not values.

    ``algorithm='gradient_tracking'`` (Koloskova, Lin, Stich 2021; ``c`` their constant, set by
    the negative eigenvalues of W, ``c = 1`` for lazy W) and ``'exact_diffusion'`` (Yuan et al.
    2023; Alghunaim & Yuan 2022) have no zeta2 term, so ``heterogeneous`` is ignored; equating
    the same terms of :func:`theorylab.rates.tracking.gradient_tracking` /
    :func:`~theorylab.rates.tracking.exact_diffusion`:

    ==================  ===================================  ======================================
    regime              gradient tracking                    exact diffusion / D^2
    ==================  ===================================  ======================================
    strongly convex     n L / (mu p c^2)                     n L rho^2 / (mu (1 - rho))
    non-convex          n^3 L delta / (sigma2 p^2 c^4)       n^3 L delta rho^4/(sigma2 (1 - rho)^2)
    ==================  ===================================  ======================================

    i.e. O(n/(1-rho)) and O(n^3/(1-rho)^2) for both (constant c). The numerical crossing
    point of the full expressions is :func:`theorylab.rates.tracking.transient_crossing`.

    Parameters
    ----------
    n : int >= 1; rho : float in [0, 1)
    regime : 'strongly_convex' | 'nonconvex'
    heterogeneous : bool, use the zeta2 term (needs zeta2 > 0) or the iid one
    L, mu (strongly convex), sigma2 > 0, zeta2, delta (non-convex) : floats
    algorithm : 'dsgd' | 'gradient_tracking' | 'exact_diffusion'
    c : float in (0, 1], gradient tracking's constant (Koloskova, Lin, Stich 2021)

    Returns
    -------
    Rate with the single term 'transient_iterations'.

    Example
    -------
    >>> t1 = transient_iterations(n=16, rho=0.5, mu=0.1, zeta2=1.0).total
    >>> t2 = transient_iterations(n=32, rho=0.5, mu=0.1, zeta2=1.0).total
    >>> round(t2 / t1, 12)
    2.0

    References
    ----------
    Pu, Olshevsky, Paschalidis, IEEE TAC 2022, arXiv 1906.02702; Koloskova et al. ICML 2020,
    arXiv 2003.10422; Alghunaim & Yuan, IEEE TSP 2022, arXiv 2110.09993.
    """
    n = check_int("n", n, minimum=1)
    rho = _check_rho(rho)
    L = check_positive("L", L)
    sigma2 = check_positive("sigma2", sigma2)
    zeta2 = check_positive("zeta2", zeta2, allow_zero=True)
    p = 1.0 - rho**2
    if algorithm not in ("dsgd", "gradient_tracking", "exact_diffusion"):
        raise TheorylabError(
            f"algorithm must be 'dsgd', 'gradient_tracking' or 'exact_diffusion', got {algorithm!r}"
        )
    if algorithm != "dsgd":
        return _transient_corrected(algorithm, n, rho, p, regime, L, mu, sigma2, delta, c)
    if heterogeneous and zeta2 == 0:
        raise TheorylabError("heterogeneous=True needs zeta2 > 0; use heterogeneous=False")
    if regime == "strongly_convex":
        if mu is None:
            raise TheorylabError("regime='strongly_convex' needs mu")
        mu = check_positive("mu", mu)
        value = n * L * zeta2 / (mu * sigma2 * p**2) if heterogeneous else n * L / (mu * p)
        scaling = "n/(1-rho)^2" if heterogeneous else "n/(1-rho)"
    elif regime == "nonconvex":
        delta = check_positive("delta", delta)
        value = (
            n**3 * L * delta * zeta2**2 / (p**4 * sigma2**3)
            if heterogeneous
            else n**3 * L * delta / (p**2 * sigma2)
        )
        scaling = "n^3/(1-rho)^4" if heterogeneous else "n^3/(1-rho)^2"
    else:
        raise TheorylabError(f"regime must be 'strongly_convex' or 'nonconvex', got {regime!r}")
    return Rate(
        name=f"dsgd/transient/{regime}/{'heterogeneous' if heterogeneous else 'iid'}",
        quantity="iterations until DSGD matches PSGD (linear speed-up)",
        terms={"transient_iterations": value},
        kind="upper",
        source="rates.md §3c: Pu, Olshevsky, Paschalidis 2022 (arXiv 1906.02702), "
        "derived from Koloskova et al. 2020 (arXiv 2003.10422)",
        assumptions=("constant factors dropped", "p = 1 - rho^2"),
        big_o=True,
        extra={"scaling": scaling, "p": p, "n": n, "rho": rho},
    )


def _transient_corrected(algorithm, n, rho, p, regime, L, mu, sigma2, delta, c) -> Rate:
    """Transient of gradient tracking / exact diffusion (see :func:`transient_iterations`)."""
    c = check_positive("c", c)
    if c > 1:
        raise TheorylabError(f"c (gradient tracking's constant) must be in (0, 1], got {c}")
    gap = 1.0 - rho
    if regime == "strongly_convex":
        if mu is None:
            raise TheorylabError("regime='strongly_convex' needs mu")
        mu = check_positive("mu", mu)
        if algorithm == "gradient_tracking":
            value, scaling = n * L / (mu * p * c**2), "n/(1-rho)"
        else:
            value, scaling = n * L * rho**2 / (mu * gap), "n/(1-rho)"
    elif regime == "nonconvex":
        delta = check_positive("delta", delta)
        if algorithm == "gradient_tracking":
            value = n**3 * L * delta / (sigma2 * p**2 * c**4)
        else:
            value = n**3 * L * delta * rho**4 / (sigma2 * gap**2)
        scaling = "n^3/(1-rho)^2"
    else:
        raise TheorylabError(f"regime must be 'strongly_convex' or 'nonconvex', got {regime!r}")
    source = (
        "Koloskova, Lin, Stich, NeurIPS 2021, arXiv 2202.03836 (rates.md §4a, derived from the "
        "RECALLED rate; constants unconfirmed)"
        if algorithm == "gradient_tracking"
        else "Yuan, Alghunaim, Huang, JMLR 2023, arXiv 2105.08023 (strongly convex); Alghunaim & "
        "Yuan, IEEE TSP 2022, arXiv 2110.09993 (non-convex); rates.md §4b, RECALLED"
    )
    return Rate(
        name=f"{algorithm}/transient/{regime}",
        quantity=f"iterations until {algorithm} matches PSGD (linear speed-up)",
        terms={"transient_iterations": value},
        kind="upper",
        source=source,
        assumptions=("constant factors dropped", "p = 1 - rho^2", "no zeta2 dependence"),
        big_o=True,
        extra={"scaling": scaling, "p": p, "n": n, "rho": rho, "c": c},
    )


def gossip_consensus(rho, t: int, consensus0: float = 1.0) -> Rate:
    r"""Upper bound on the consensus distance after t gossip steps.

    ``X_{k+1} = W_k X_k`` with doubly stochastic ``W_k`` gives
    ``X_t - 1 xbar^T = (W_{t-1} - J) ... (W_0 - J)(X_0 - 1 xbar^T)``, so
    ``Xi_t <= (prod_{k<t} rho_k^2) Xi_0``, ``rho_k = ||W_k - 11^T/n||_2`` (spectral gap
    ``1 - rho``). **Upper** bound, attained for a static symmetric W when X_0 lies on the slowest
    eigenvector (rates.md §8).

    Parameters
    ----------
    rho : float in [0, 1], or a sequence of t per-step values (time-varying W).
    t : int >= 0
    consensus0 : float >= 0, Xi_0 = (1/n) ||X_0 - 1 xbar^T||_F^2

    Returns
    -------
    Rate with the single term 'consensus'.

    Example
    -------
    >>> gossip_consensus(0.5, 3, consensus0=2.0).total
    0.03125
    """
    t = check_int("t", t, minimum=0)
    consensus0 = check_positive("consensus0", consensus0, allow_zero=True)
    if isinstance(rho, Sequence) or isinstance(rho, np.ndarray):
        rhos = [check_positive("rho", r, allow_zero=True) for r in rho]
        if len(rhos) != t:
            raise TheorylabError(f"a sequence rho must have t={t} entries, got {len(rhos)}")
    else:
        rhos = [check_positive("rho", rho, allow_zero=True)] * t
    if any(r > 1 for r in rhos):
        raise TheorylabError("rho = ||W - 11^T/n||_2 must be <= 1 for doubly stochastic W")
    factor = math.prod(r * r for r in rhos)
    return Rate(
        name="gossip/consensus",
        quantity="Xi_t = (1/n) ||X_t - 1 xbar^T||_F^2",
        terms={"consensus": factor * consensus0},
        kind="upper",
        source="standard (rates.md §8); Boyd, Ghosh, Prabhakar, Shah, IEEE TIT 2006",
        assumptions=("W_k doubly stochastic",),
        extra={"t": t, "contraction": factor},
    )
