"""Predicted rates of compressed SGD, error feedback (EF-SGD, EF21) and CHOCO, and the lower bound.

Notation (shared/references/rates.md §0, §5; compression.md §0): a compressor is in U(omega)
(unbiased, ``E||C(x) - x||^2 <= omega ||x||^2``) or B(delta) (contractive,
``E||C(x) - x||^2 <= (1 - delta) ||x||^2``). ``f_gap = f(x_0) - f*`` (called ``delta`` in
:func:`theorylab.rates.psgd`; renamed here because ``delta`` is the compression constant).
``sigma2`` is the per-node gradient-noise variance unless a function says otherwise, ``zeta2`` the
heterogeneity. CHOCO uses ``spectral_gap = 1 - rho`` with ``rho = ||W - 11^T/n||_2`` (for a
symmetric W this is CHOCO's eigengap ``1 - |lambda_2|``) and ``beta = ||I - W||_2``.

Constants marked [RECALLED] in the reference were not re-read in the paper; those functions say so
in ``source`` and, where only the order is known, return ``big_o=True`` (a *shape*, to be fitted,
not compared as a number).
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from theorylab.errors import (
    TheorylabError,
    TheorylabWarning,
    check_int,
    check_positive,
    check_probability,
)
from theorylab.rates._rate import Rate, warn_step_size

__all__ = [
    "compressed_psgd",
    "compressed_psgd_randk_exact",
    "ef_sgd",
    "ef_residual_bound",
    "ef21",
    "choco_consensus_step",
    "choco_gossip",
    "choco_sgd",
    "compressed_lower_bound",
]


def _omega(omega) -> float:
    return check_positive("omega", omega, allow_zero=True)


def _delta(delta) -> float:
    return check_probability("delta", delta)


def compressed_psgd(
    *,
    gamma: float,
    L: float,
    sigma2: float,
    n: int,
    omega: float,
    zeta2: float = 0.0,
    T: int | None = None,
    mu: float | None = None,
    r0_sq: float = 0.0,
    f_gap: float | None = None,
) -> Rate:
    r"""Parallel SGD with independent unbiased compressors: ``x <- x - gamma mean_j C_j(g_j)``.

    The averaged message has (derived here; rates.md §5a)::

        E||mean_j C_j(g_j) - grad f||^2 <= (1+omega) sigma2/n + (omega/n)(zeta2(x) + ||grad f||^2)

    (independent, unbiased ``C_j``; ``E||g_j||^2 = ||grad f_j||^2 + sigma2``;
    ``(1/n) sum ||grad f_j||^2 = ||grad f||^2 + zeta2(x)``).

    Non-convex (``mu`` None; ``zeta2`` a uniform bound), **upper**, for
    ``gamma <= 1/(L (1 + omega/n))``::

        (1/T) sum_t E||grad f(x_t)||^2
            <= 2 f_gap/(gamma T) + gamma L ((1+omega) sigma2 + omega zeta2)/n

    Strongly convex (``mu`` given, ``f_j`` L-smooth, ``zeta2`` = (1/n) sum ||grad f_j(x*)||^2),
    **upper**, derived here, for ``gamma <= 2/(L + mu)`` (so that ``||x - gamma grad f(x) - x*||
    <= (1 - gamma mu) ||x - x*||``) and ``q = (1 - gamma mu)^2 + 2 gamma^2 omega L^2 / n < 1``
    (from ``||grad f_j(x)||^2 <= 2 L^2 ||x - x*||^2 + 2 ||grad f_j(x*)||^2``)::

        E||x_T - x*||^2
            <= q^T r0_sq + gamma^2 ((1+omega) sigma2 + 2 omega zeta2)/(n (1-q)) (1 - q^T)

    At ``omega = 0`` this is :func:`theorylab.rates.psgd`'s bound. The floor grows linearly in
    ``(1 + omega)`` (homogeneous data): the shape the compression claim checks.

    Parameters
    ----------
    gamma, L : float > 0; sigma2, zeta2 : float >= 0; n : int >= 1; omega : float >= 0
    T : int >= 0 (None: steady state, strongly convex only); mu : float in (0, L] or None
    r0_sq : float >= 0; f_gap : float >= 0 (non-convex)

    Returns
    -------
    Rate with terms 'optimization', 'noise' (and 'heterogeneity').

    Example
    -------
    >>> r = compressed_psgd(gamma=0.1, L=1.0, mu=1.0, sigma2=1.0, n=4, omega=3.0)
    >>> round(r.terms["noise"], 6)  # q = 0.825: 0.01 * 4 / (4 * 0.175)
    0.057143

    References
    ----------
    Alistarh et al., QSGD, NeurIPS 2017, arXiv:1610.02132; Khaled & Richtarik, arXiv:2002.03329.
    """
    gamma = check_positive("gamma", gamma)
    L = check_positive("L", L)
    sigma2 = check_positive("sigma2", sigma2, allow_zero=True)
    zeta2 = check_positive("zeta2", zeta2, allow_zero=True)
    n = check_int("n", n, minimum=1)
    omega = _omega(omega)
    T = None if T is None else check_int("T", T, minimum=0)
    params = {"gamma": gamma, "L": L, "sigma2": sigma2, "n": n, "omega": omega, "zeta2": zeta2}
    source = "derived here (rates.md §5a); Alistarh et al. 2017, arXiv:1610.02132"
    if mu is not None:
        mu = check_positive("mu", mu)
        if mu > L:
            raise TheorylabError(f"need mu <= L, got mu={mu} > L={L}")
        q = (1 - gamma * mu) ** 2 + 2 * gamma**2 * omega * L**2 / n
        cond = "gamma <= 2/(L + mu) and (1 - gamma mu)^2 + 2 gamma^2 omega L^2 / n < 1"
        ok = q < 1 and gamma <= 2 / (L + mu) * (1 + 1e-12)
        if not ok:
            warn_step_size("compressed_psgd", gamma, cond)
            terms = {"optimization": math.inf, "noise": math.inf, "heterogeneity": math.inf}
        else:
            decay = 0.0 if T is None else q**T
            c = gamma**2 / (n * (1 - q)) * (1 - decay)
            terms = {
                "optimization": decay * check_positive("r0_sq", r0_sq, allow_zero=True),
                "noise": c * (1 + omega) * sigma2,
                "heterogeneity": c * 2 * omega * zeta2,
            }
        return Rate(
            name="compressed_psgd/strongly_convex",
            quantity="E||x_T - x*||^2" if T is not None else "lim E||x_t - x*||^2",
            terms=terms,
            kind="upper",
            source=source,
            assumptions=(
                "f mu-strongly convex, each f_j L-smooth",
                "independent unbiased compressors in U(omega)",
            ),
            step_size_condition=cond,
            step_size_ok=ok,
            extra={**params, "mu": mu, "q": q},
        )
    if not T or f_gap is None:
        raise TheorylabError(
            "the non-convex bound needs T >= 1 and f_gap = f(x_0) - f*; pass mu "
            "for the strongly convex bound"
        )
    f_gap = check_positive("f_gap", f_gap, allow_zero=True)
    cond = "gamma <= 1/(L (1 + omega/n))"
    ok = gamma <= 1 / (L * (1 + omega / n)) * (1 + 1e-12)
    if not ok:
        warn_step_size("compressed_psgd", gamma, cond)
    terms = (
        {
            "optimization": 2 * f_gap / (gamma * T),
            "noise": gamma * L * (1 + omega) * sigma2 / n,
            "heterogeneity": gamma * L * omega * zeta2 / n,
        }
        if ok
        else {"optimization": math.inf, "noise": math.inf, "heterogeneity": math.inf}
    )
    return Rate(
        name="compressed_psgd/nonconvex",
        quantity="(1/T) sum_{t<T} E||grad f(x_t)||^2",
        terms=terms,
        kind="upper",
        source=source,
        assumptions=(
            "f L-smooth, bounded below",
            "zeta2 uniform over x",
            "independent unbiased compressors in U(omega)",
        ),
        step_size_condition=cond,
        step_size_ok=ok,
        extra={**params, "f_gap": f_gap, "T": T},
    )


def compressed_psgd_randk_exact(
    *,
    hessian_diagonal,
    gamma: float,
    sigma2: float,
    n: int,
    k: int,
    e0,
    steps: int,
    record=None,
) -> np.ndarray:
    r"""Exact ``E||x_t - x*||^2`` of compressed PSGD with scaled rand-k on a homogeneous
    diagonal quadratic (**tight**: an equality, derived here).

    Setting: every node has ``f_j(x) = 1/2 (x - x*)^T A (x - x*)``, ``A = diag(a)``, gradient
    noise ``xi_j`` with ``E xi_j xi_j^T = (sigma2/d) I``, independent scaled rand-k compressors
    (``omega = d/k - 1``), all nodes at the same ``x``; ``x <- x - gamma mean_j C_j(g_j)``.
    Per coordinate, ``E(C_i(g) - g_i)^2 = omega g_i^2`` exactly (``C_i = (d/k) g_i`` w.p.
    ``k/d``, else 0), and the state, noise and compression errors are uncorrelated, so
    ``m_i = E e_i^2`` follows the scalar recursion::

        m_i^{t+1} = [(1 - gamma a_i)^2 + gamma^2 omega a_i^2 / n] m_i^t
                    + gamma^2 (1 + omega) sigma2 / (n d)

    and ``E||x_t - x*||^2 = sum_i m_i^t``. The floor is linear in ``1 + omega`` up to the
    ``gamma^2 omega a_i^2 / n`` correction of the contraction factor. This is the special case
    ``A_j = diag(a)``, ``c_j = 0`` of :func:`theorylab.exact_compressed.exact_compressed_psgd`,
    which computes it (closed form per coordinate at the recorded steps).

    Parameters
    ----------
    hessian_diagonal : array_like (d,), positive
    gamma : float > 0; sigma2 : float >= 0; n : int >= 1; k : int in [1, d]
    e0 : array_like (d,), ``x_0 - x*`` (deterministic)
    steps : int >= 0; record : sequence of int in [0, steps] (default all steps)

    Returns
    -------
    numpy.ndarray of ``E||x_t - x*||^2`` at the recorded steps.

    Example
    -------
    >>> compressed_psgd_randk_exact(hessian_diagonal=[1.0], gamma=0.5, sigma2=1.0, n=1, k=1,
    ...                             e0=[2.0], steps=1).tolist()
    [4.0, 1.25]
    """
    a = np.asarray(hessian_diagonal, dtype=np.float64).reshape(-1)
    d = a.size
    if d == 0 or not np.all(a > 0):
        raise TheorylabError("hessian_diagonal must be a non-empty vector of positive numbers")
    gamma = check_positive("gamma", gamma)
    sigma2 = check_positive("sigma2", sigma2, allow_zero=True)
    n = check_int("n", n, minimum=1)
    k = check_int("k", k, minimum=1, maximum=d)
    steps = check_int("steps", steps, minimum=0)
    e0 = np.asarray(e0, dtype=np.float64).reshape(-1)
    if e0.shape != a.shape:
        raise TheorylabError(f"e0 must have shape ({d},), got {e0.shape}")
    from theorylab.exact_compressed import exact_compressed_psgd
    from theorylab.problems import QuadraticProblem

    if record is None:
        rec = np.arange(steps + 1)
    else:
        rec = np.array([check_int("record", t, 0, steps) for t in record], dtype=np.int64)
    if rec.size == 0:
        return np.array([])
    wanted = np.unique(rec)  # exact_compressed_psgd wants increasing steps; any order is fine here
    # x* = 0 (b_j = 0 on every node), so x_0 = e0
    problem = QuadraticProblem(np.tile(a, (n, 1)), np.zeros((n, d)), sigma2)
    with warnings.catch_warnings():  # an unstable recursion still has a finite curve
        warnings.simplefilter("ignore", TheorylabWarning)
        pred = exact_compressed_psgd(
            problem, gamma, steps, e0, f"rand-k:k={k}", record=wanted, method="diagonal"
        )
    return np.asarray(pred.error, dtype=np.float64)[np.searchsorted(wanted, rec)]


def ef_sgd(*, L: float, sigma2: float, delta: float, T: int, f_gap: float) -> Rate:
    r"""EF-SGD (error feedback), non-convex, with ``gamma = 1/sqrt(T+1)``.

    Update: ``p_t = gamma g_t + e_t``, ``x_{t+1} = x_t - C(p_t)``, ``e_{t+1} = p_t - C(p_t)``,
    ``C`` in B(delta). **Upper** bound (Karimireddy et al. 2019, Theorem II [RECALLED];
    ``sigma2`` bounds the second moment ``E||g||^2``)::

        min_t E||grad f(x_t)||^2 <= (4 f_gap + L sigma2)/(2 sqrt(T+1))
                                    + 4 L^2 sigma2 (1 - delta)/(delta^2 (T+1))

    delta only enters the O(1/T) term: compression is free asymptotically.

    Parameters
    ----------
    L : float > 0; sigma2 : float >= 0 (second moment); delta : float in (0, 1]; T : int >= 0;
    f_gap : float >= 0.

    Example
    -------
    >>> round(ef_sgd(L=1.0, sigma2=1.0, delta=1.0, T=99, f_gap=1.0).total, 6)
    0.25

    References
    ----------
    Karimireddy, Rebjock, Stich, Jaggi, ICML 2019, arXiv:1901.09847; Stich, Cordonnier, Jaggi,
    NeurIPS 2018, arXiv:1809.07599.
    """
    L = check_positive("L", L)
    sigma2 = check_positive("sigma2", sigma2, allow_zero=True)
    delta = _delta(delta)
    T = check_int("T", T, minimum=0)
    f_gap = check_positive("f_gap", f_gap, allow_zero=True)
    return Rate(
        name="ef_sgd/nonconvex",
        quantity="min_{t<=T} E||grad f(x_t)||^2",
        terms={
            "sgd": (4 * f_gap + L * sigma2) / (2 * math.sqrt(T + 1)),
            "compression": 4 * L**2 * sigma2 * (1 - delta) / (delta**2 * (T + 1)),
        },
        kind="upper",
        source="Karimireddy et al. ICML 2019, arXiv:1901.09847, Thm II [RECALLED]",
        assumptions=("f L-smooth", "E||g||^2 <= sigma2", "C in B(delta)"),
        step_size_condition="gamma = 1/sqrt(T+1)",
        step_size_ok=True,
        extra={"L": L, "sigma2": sigma2, "delta": delta, "T": T, "gamma": 1 / math.sqrt(T + 1)},
    )


def ef_residual_bound(*, gamma: float, sigma2: float, delta: float) -> float:
    r"""Upper bound on the error-feedback memory,
    ``E||e_t||^2 <= 4 (1-delta) gamma^2 sigma2/delta^2``, when ``E||g||^2 <= sigma2``
    (Karimireddy et al. 2019, Lemma 3 [RECALLED]; measured to hold pathwise for top-k in
    compression.md §4).

    >>> round(ef_residual_bound(gamma=0.1, sigma2=1.0, delta=0.5), 12)
    0.08
    """
    gamma = check_positive("gamma", gamma)
    return 4 * (1 - _delta(delta)) * gamma**2 * check_positive("sigma2", sigma2, True) / delta**2


def ef21(
    *,
    L: float,
    L_tilde: float,
    delta: float,
    T: int,
    f_gap: float,
    G0: float = 0.0,
    gamma: float | None = None,
    mu: float | None = None,
) -> Rate:
    r"""EF21 (Richtarik, Sokolov, Fatkhullin 2021) with full local gradients.

    Update: ``x^{t+1} = x^t - gamma g^t``, ``g_i^{t+1} = g_i^t + C(grad f_i(x^{t+1}) - g_i^t)``,
    ``g^t = mean_i g_i^t``; ``C`` in B(delta) (the paper's alpha). With
    ``theta = 1 - sqrt(1 - delta)``, ``beta = (1 - delta)/(1 - sqrt(1 - delta))``,
    ``L_tilde = sqrt(mean_i L_i^2)``.

    Non-convex, **upper** (Theorem 1 [RECALLED]; step cross-checked in MiniFL), for
    ``gamma <= 1/(L + L_tilde sqrt(beta/theta))``::

        E||grad f(x_hat_T)||^2 <= 2 f_gap/(gamma T) + G0/(theta T),
        G0 = mean_i ||g_i^0 - grad f_i(x^0)||^2

    PL(mu) (``mu`` given), **upper** (Theorem 2 [RECALLED]), for
    ``gamma <= min(1/(L + L_tilde sqrt(2 beta/theta)), theta/(2 mu))``::

        E[f(x^T) - f*] <= (1 - gamma mu)^T (f_gap + gamma G0/theta)

    ``gamma`` None takes the largest allowed step.

    Example
    -------
    >>> r = ef21(L=1.0, L_tilde=1.0, delta=1.0, T=10, f_gap=1.0)
    >>> r.extra["gamma"], r.total
    (1.0, 0.2)

    References
    ----------
    Richtarik, Sokolov, Fatkhullin, NeurIPS 2021, arXiv:2106.05203.
    """
    L = check_positive("L", L)
    L_tilde = check_positive("L_tilde", L_tilde, allow_zero=True)
    delta = _delta(delta)
    T = check_int("T", T, minimum=1)
    f_gap = check_positive("f_gap", f_gap, allow_zero=True)
    G0 = check_positive("G0", G0, allow_zero=True)
    s = math.sqrt(1 - delta)
    theta = 1 - s
    beta = (1 - delta) / theta
    src = "Richtarik, Sokolov, Fatkhullin, NeurIPS 2021, arXiv:2106.05203 [RECALLED]"
    if mu is None:
        gmax = 1 / (L + L_tilde * math.sqrt(beta / theta))
        cond = "gamma <= 1/(L + L_tilde sqrt(beta/theta))"
    else:
        mu = check_positive("mu", mu)
        gmax = min(1 / (L + L_tilde * math.sqrt(2 * beta / theta)), theta / (2 * mu))
        cond = "gamma <= min(1/(L + L_tilde sqrt(2 beta/theta)), theta/(2 mu))"
    gamma = gmax if gamma is None else check_positive("gamma", gamma)
    ok = gamma <= gmax * (1 + 1e-12)
    if not ok:
        warn_step_size("ef21", gamma, cond)
    extra = {"gamma": gamma, "gamma_max": gmax, "theta": theta, "beta": beta, "delta": delta}
    if mu is None:
        terms = {"optimization": 2 * f_gap / (gamma * T), "initial_error": G0 / (theta * T)}
        name, quantity = "ef21/nonconvex", "E||grad f(x_hat_T)||^2 (x_hat uniform over t < T)"
    else:
        rate = (1 - gamma * mu) ** T
        terms = {"optimization": rate * f_gap, "initial_error": rate * gamma * G0 / theta}
        name, quantity = "ef21/pl", "E[f(x^T) - f*]"
    if not ok:
        terms = {k: math.inf for k in terms}
    return Rate(
        name=name,
        quantity=quantity,
        terms=terms,
        kind="upper",
        source=src,
        assumptions=("f_i L_i-smooth, f L-smooth", "C in B(delta)", "full gradients"),
        step_size_condition=cond,
        step_size_ok=ok,
        extra=extra,
    )


def choco_consensus_step(*, spectral_gap: float, beta: float, delta: float) -> float:
    r"""CHOCO's consensus step size (Koloskova et al. 2019, Theorem 2 [RECALLED])::

        gamma = g^2 delta / (16 g + g^2 + 4 beta^2 + 2 g beta^2 - 8 g delta)

    with ``g = spectral_gap = 1 - rho`` (CHOCO's eigengap), ``beta = ||I - W||_2``,
    ``delta`` the compressor's contraction (CHOCO's omega).

    >>> round(choco_consensus_step(spectral_gap=0.0508, beta=1.333, delta=0.1), 7)
    3.2e-05
    """
    g = check_probability("spectral_gap", spectral_gap)
    beta = check_positive("beta", beta, allow_zero=True)
    delta = _delta(delta)
    return g * g * delta / (16 * g + g * g + 4 * beta**2 + 2 * g * beta**2 - 8 * g * delta)


def choco_gossip(
    *, spectral_gap: float, beta: float, delta: float, T: int, e0: float = 1.0
) -> Rate:
    r"""CHOCO-Gossip consensus error with the theoretical consensus step, **upper**
    (Koloskova et al. 2019, Theorem 2 [RECALLED])::

        e_T <= (1 - spectral_gap^2 delta / 82)^T e_0,
        e = sum_i ||x_i - xbar||^2 + ||x_i - xhat_i||^2

    Linear: ``O(log(1/eps) / (spectral_gap^2 delta))`` rounds (abstract [SOURCE]). The constant 82
    is conservative (measured rates are orders faster, compression.md §4); fit exponents.

    Example
    -------
    >>> r = choco_gossip(spectral_gap=0.5, beta=1.0, delta=0.5, T=0)
    >>> r.total
    1.0
    """
    g = check_probability("spectral_gap", spectral_gap)
    delta = _delta(delta)
    T = check_int("T", T, minimum=0)
    e0 = check_positive("e0", e0, allow_zero=True)
    rate = 1 - g * g * delta / 82
    return Rate(
        name="choco_gossip",
        quantity="sum_i E||x_i^T - xbar||^2 + E||x_i^T - xhat_i^T||^2",
        terms={"consensus": rate**T * e0},
        kind="upper",
        source="Koloskova, Stich, Jaggi, ICML 2019, arXiv:1902.00340, Thm 2 [RECALLED]",
        assumptions=(
            "W symmetric doubly stochastic",
            "C in B(delta)",
            "consensus step = choco_consensus_step(...)",
        ),
        step_size_condition="gamma = choco_consensus_step(spectral_gap, beta, delta)",
        step_size_ok=True,
        extra={
            "rate_per_round": rate,
            "gamma": choco_consensus_step(spectral_gap=g, beta=beta, delta=delta),
        },
    )


def choco_sgd(
    *,
    sigma2: float,
    G2: float,
    mu: float,
    L: float,
    n: int,
    spectral_gap: float,
    delta: float,
    T: int,
) -> Rate:
    r"""CHOCO-SGD, strongly convex, **order only** (``big_o=True``; Koloskova et al. 2019,
    Theorem 4 [RECALLED], abstract [SOURCE]: ``O(1/(nT) + 1/(T spectral_gap^2 delta)^2)``)::

        E f(x_avg_T) - f* = O( sigma2/(mu n T) + kappa G2/(mu c^2 T^2) + G2/(mu c^3 T^3) ),
        c = spectral_gap^2 delta

    ``G2`` bounds ``E||g||^2``; ``kappa = L/mu``. Fit the exponents, not the constants.
    """
    sigma2 = check_positive("sigma2", sigma2, allow_zero=True)
    G2 = check_positive("G2", G2, allow_zero=True)
    mu, L = check_positive("mu", mu), check_positive("L", L)
    n, T = check_int("n", n, minimum=1), check_int("T", T, minimum=1)
    c = check_probability("spectral_gap", spectral_gap) ** 2 * _delta(delta)
    return Rate(
        name="choco_sgd/strongly_convex",
        quantity="E f(x_avg_T) - f* (order)",
        terms={
            "noise": sigma2 / (mu * n * T),
            "consensus": (L / mu) * G2 / (mu * c**2 * T**2),
            "higher_order": G2 / (mu * c**3 * T**3),
        },
        kind="upper",
        source="Koloskova, Stich, Jaggi, ICML 2019, arXiv:1902.00340, Thm 4 [RECALLED]",
        assumptions=("f mu-strongly convex, L-smooth", "E||g||^2 <= G2", "C in B(delta)"),
        big_o=True,
        extra={"c": c},
    )


def compressed_lower_bound(
    *,
    L: float,
    f_gap: float,
    sigma2: float,
    n: int,
    T: int,
    omega: float | None = None,
    delta: float | None = None,
) -> Rate:
    r"""Lower bound for non-convex distributed SGD with compressed uplink, **lower**, order only
    (Huang, Chen, Yin, Yuan, NeurIPS 2022, arXiv:2206.03665 [RECALLED])::

        unbiased U(omega):    Omega( sqrt(f_gap L sigma2 / (n T)) + (1 + omega) f_gap L / T )
        contractive B(delta): Omega( sqrt(f_gap L sigma2 / (n T)) + f_gap L / (delta T) )

    on ``E||grad f(x_hat)||^2`` after ``T`` rounds. Compression only costs in the deterministic
    term. The class bound does not assume compressors independent across workers (DIANA-type
    methods with independent rand-k beat the (1+omega) factor), so do not compare it with such
    methods. Give exactly one of ``omega`` and ``delta``.

    Example
    -------
    >>> compressed_lower_bound(L=1, f_gap=1, sigma2=0, n=1, T=10, omega=1).total
    0.2
    """
    if (omega is None) == (delta is None):
        raise TheorylabError("give exactly one of omega (unbiased) and delta (contractive)")
    L, f_gap = check_positive("L", L), check_positive("f_gap", f_gap, allow_zero=True)
    sigma2 = check_positive("sigma2", sigma2, allow_zero=True)
    n, T = check_int("n", n, minimum=1), check_int("T", T, minimum=1)
    factor = (1 + _omega(omega)) if omega is not None else 1 / _delta(delta)
    return Rate(
        name="compressed_lower_bound/nonconvex/"
        + ("unbiased" if omega is not None else "contractive"),
        quantity="E||grad f(x_hat_T)||^2 (order)",
        terms={
            "statistical": math.sqrt(f_gap * L * sigma2 / (n * T)),
            "compression": factor * f_gap * L / T,
        },
        kind="lower",
        source="Huang, Chen, Yin, Yuan, NeurIPS 2022, arXiv:2206.03665 [RECALLED]",
        assumptions=("f L-smooth", "noise variance sigma2", "unidirectional compression"),
        big_o=True,
        extra={"omega": omega, "delta": delta},
    )
