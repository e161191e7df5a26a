"""Constants of an objective estimated from callables, each with a confidence interval.

Works on plain callables of float64 numpy vectors, so it serves the package's problems, a user's
own ``f_i`` given as gradient functions, and a network (``verify.model_oracle`` supplies exact
Hessian-vector products):

* ``L`` (smoothness, ``sup ||nabla^2 f_i||_2``): :func:`hessian_norm` by Hessian-vector power
  iteration at given points, the maximum over nodes and points in :func:`estimate_L`;
* ``mu`` (smallest Hessian eigenvalue of ``f``): :func:`smallest_eigenvalue`, shifted power
  iteration;
* ``sigma2`` (``E||g_i(x) - grad f_i(x)||^2`` averaged over nodes): :func:`estimate_sigma2`
  from sampled stochastic gradients, batch means with a t-interval;
* ``zeta2 = (1/n) sum_i ||grad f_i(x) - grad f(x)||^2``: :func:`estimate_zeta2`;
* ``delta = f(x0) - f*``: :func:`estimate_delta` (``f*`` given, or from a long gradient run
  bracketed by a known lower bound).

:func:`nonconvex_rates` turns the estimates into the non-convex :class:`~theorylab.rates.Rate`
of PSGD and DSGD (the functions of :mod:`theorylab.rates.decentralized`), using the **upper**
ends of the intervals (every term of those upper bounds increases with each constant).

Conventions: ``rho = ||W - 11^T/n||_2`` (spectral gap ``1 - rho``). Along a trajectory, the
estimates at a few points bound the uniform (sup over x) constants of the non-convex theorems
from *below* only for the points visited: say so where they are used.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from theorylab.errors import TheorylabError, check_int, check_positive, check_probability
from theorylab.rates import Rate, dsgd, psgd

__all__ = [
    "Estimate",
    "fd_hvp",
    "hessian_norm",
    "estimate_L",
    "smallest_eigenvalue",
    "estimate_sigma2",
    "estimate_zeta2",
    "estimate_delta",
    "nonconvex_rates",
]


@dataclass(frozen=True)
class Estimate:
    """A constant's estimate and its confidence interval.

    Attributes
    ----------
    name : str
        ``'L'``, ``'mu'``, ``'sigma2'``, ``'zeta2'`` or ``'delta'``.
    value : float
        The point estimate.
    lower, upper : float
        The interval; it contains the true value with probability at least ``confidence``
        (exactly what "true value" and "probability" mean is in the estimator's docstring).
    confidence : float
        Its nominal coverage, in (0, 1] (1 for deterministic brackets).
    method : str
    details : dict
        Iterations, convergence, per-point values, ...
    """

    name: str
    value: float
    lower: float
    upper: float
    confidence: float
    method: str
    details: dict = field(default_factory=dict)

    def covers(self, true_value: float) -> bool:
        """Whether ``lower <= true_value <= upper``."""
        return bool(self.lower <= true_value <= self.upper)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _vec(name: str, value, d: int | None = None) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64).reshape(-1)
    if d is not None and arr.size != d:
        raise TheorylabError(f"{name} must have {d} entries, got shape {np.shape(value)}")
    return arr


# ---- Hessian-vector products ------------------------------------------------------------------
def fd_hvp(grad: Callable, h: float | None = None) -> Callable:
    r"""Hessian-vector products of a gradient callable by central differences.

    The math: ``H(x) v ~ (grad(x + t v) - grad(x - t v)) / (2 t)``, ``t = h / ||v||`` with
    ``h = eps^(1/3) max(1, ||x||)`` by default (``eps`` = float64 machine epsilon).
    Error: ``||error|| <= h^2 M_3 / 6 + eps_g / h`` for a gradient with third derivative
    bounded by ``M_3`` and evaluated with absolute error ``eps_g``, per unit ``||v||``
    (exact up to round-off, ``~ eps^(2/3)`` relative, on quadratics).

    Parameters
    ----------
    grad : callable ``x -> grad f(x)`` on float64 vectors of shape (d,)
    h : float > 0 or None

    Returns
    -------
    callable ``(x, v) -> H(x) v``

    Examples
    --------
    >>> import numpy as np
    >>> A = np.array([[2.0, 1.0], [1.0, 3.0]])
    >>> hvp = fd_hvp(lambda x: A @ x)
    >>> np.allclose(hvp(np.zeros(2), np.array([1.0, 0.0])), [2.0, 1.0])
    True
    """
    if h is not None:
        h = check_positive("h", h)

    def hvp(x, v):
        x = _vec("x", x)
        v = _vec("v", v, x.size)
        nv = float(np.linalg.norm(v))
        if nv == 0.0:
            return np.zeros_like(x)
        step = (
            h
            if h is not None
            else np.finfo(np.float64).eps ** (1 / 3) * max(1.0, np.linalg.norm(x))
        )
        t = step / nv
        return (_vec("grad", grad(x + t * v)) - _vec("grad", grad(x - t * v))) / (2.0 * t)

    return hvp


def _power_upper_factor(k: int, d: int, delta: float) -> float:
    r"""``F`` with ``lambda_1^2 <= F q_k`` with probability ``>= 1 - delta`` (see hessian_norm)."""
    t = math.log(2.0 / delta)
    norm2 = d + 2.0 * math.sqrt(d * t) + 2.0 * t  # ||c||^2 bound, Laurent & Massart 2000
    a2 = (0.5 * delta * math.sqrt(math.pi / 2.0)) ** 2  # c_1^2 >= a2 w.p. 1 - delta/2
    C = norm2 / a2
    eps = np.geomspace(1e-9, 1.0 - 1e-9, 4000)
    with np.errstate(under="ignore"):
        factor = (1.0 + np.exp(k * np.log1p(-eps)) * C) / (1.0 - eps)
    return float(factor.min())


def hessian_norm(
    hvp: Callable,
    x,
    *,
    tol: float = 1e-6,
    max_iter: int = 1000,
    min_iter: int = 200,
    confidence: float = 0.99,
    hvp_error: float = 0.0,
    seed: int = 0,
    name: str = "L",
) -> Estimate:
    r"""``||nabla^2 f(x)||_2`` (the largest |eigenvalue|) by Hessian-vector power iteration.

    The math: ``v_0 ~ N(0, I_d)`` normalised, ``v_{k+1} = H v_k / ||H v_k||``; the estimate is
    ``s_k = ||H v_k||`` (``<= ||H||_2`` always, so the lower end is deterministic). Stopping
    rule: ``|s_k - s_{k-1}| <= tol s_k`` once ``k >= min_iter``, or ``k = max_iter``.

    Upper end (derived here; holds for any symmetric ``H`` and any ``k``, with probability
    ``>= confidence`` over ``v_0``): write ``v_0 = sum_i c_i u_i`` in the eigenbasis,
    ``s_i = lambda_i^2 / lambda_1^2``. Then ``s_k^2 / lambda_1^2 = sum c_i^2 s_i^{k+1} /
    sum c_i^2 s_i^k``; splitting the indices at ``s_i >= 1 - eps`` gives
    ``s_k^2 >= lambda_1^2 (1 - eps) / (1 + (1 - eps)^k ||c||^2 / c_1^2)`` for every
    ``eps in (0, 1)``. With probability ``>= 1 - delta`` (``delta = 1 - confidence``),
    ``||c||^2 <= d + 2 sqrt(d t) + 2 t``, ``t = log(2/delta)`` (Laurent & Massart 2000) and
    ``c_1^2 >= (delta/2)^2 pi/2`` (the N(0,1) density is at most ``1/sqrt(2 pi)``), so
    ``lambda_1 <= s_k sqrt(min_eps (1 + (1 - eps)^k C)/(1 - eps))``. Both ends are widened by
    ``hvp_error`` (a bound on ``||Hv_computed - Hv||`` for unit ``v``, e.g. the
    :func:`fd_hvp` error). The relative width of the upper end falls like
    ``log(d / delta^2) / (2k)``: ``sqrt(F) = 1.15, 1.07, 1.03`` at ``k = 100, 200, 500`` for
    ``d = 1000``, ``delta = 10^-3``, whence ``min_iter`` (iterations made even after
    convergence, to tighten the upper end).

    Parameters
    ----------
    hvp : callable ``(x, v) -> H(x) v`` on float64 vectors (d,)
    x : array_like, shape (d,)
    tol : float > 0; max_iter : int >= 1; min_iter : int >= 0 (capped at ``max_iter - 1``)
    confidence : float in (0, 1)
    hvp_error : float >= 0
    seed : int, seeds ``v_0``
    name : str, stored on the result

    Returns
    -------
    Estimate, ``details``: ``iterations``, ``converged``, ``rayleigh`` (``v^T H v``, the signed
    extreme eigenvalue), ``vector`` (the final ``v``).

    Examples
    --------
    >>> import numpy as np
    >>> H = np.diag([3.0, 1.0, -0.5])
    >>> e = hessian_norm(lambda x, v: H @ v, np.zeros(3))
    >>> round(e.value, 6), e.lower <= 3.0 <= e.upper
    (3.0, True)
    """
    x = _vec("x", x)
    d = x.size
    tol = check_positive("tol", tol)
    max_iter = check_int("max_iter", max_iter, minimum=1)
    min_iter = min(check_int("min_iter", min_iter, minimum=0), max_iter - 1)
    confidence = check_probability("confidence", confidence)
    if confidence >= 1:
        raise TheorylabError(f"confidence must be < 1 for a random start, got {confidence}")
    hvp_error = check_positive("hvp_error", hvp_error, allow_zero=True)
    rng = np.random.default_rng(check_int("seed", seed, minimum=0))
    v = rng.standard_normal(d)
    v /= np.linalg.norm(v)
    s_prev, converged, powers = None, False, 0  # v = H^powers v_0 / ||H^powers v_0||
    for _ in range(max_iter):
        w = _vec("hvp(x, v)", hvp(x, v), d)
        s = float(np.linalg.norm(w))
        rayleigh = float(v @ w)
        if not math.isfinite(s) or s == 0.0:
            converged = s == 0.0
            break
        converged = s_prev is not None and abs(s - s_prev) <= tol * s
        if converged and powers >= min_iter:
            break
        s_prev = s
        v = w / s
        powers += 1
    if not math.isfinite(s):
        return Estimate(
            name, math.nan, math.nan, math.nan, confidence, "power", {"iterations": powers}
        )
    factor = _power_upper_factor(powers, d, 1.0 - confidence)
    upper = s * math.sqrt(factor) + hvp_error
    return Estimate(
        name=name,
        value=s,
        lower=max(0.0, s - hvp_error),
        upper=upper,
        confidence=confidence,
        method="Hessian-vector power iteration",
        details={
            "iterations": powers + 1,
            "converged": converged,
            "rayleigh": rayleigh,
            "vector": v.tolist(),
        },
    )


def _sup(name: str, estimates: Sequence[Estimate], confidence: float, method: str) -> Estimate:
    """The max over several estimates (each at level ``1 - delta/K``: a union bound)."""
    best = max(estimates, key=lambda e: e.value)
    return Estimate(
        name=name,
        value=best.value,
        lower=max(e.lower for e in estimates),
        upper=max(e.upper for e in estimates),
        confidence=confidence,
        method=method,
        details={"values": [e.value for e in estimates], "parts": len(estimates)},
    )


def estimate_L(
    hvps: Callable | Sequence[Callable],
    points,
    *,
    confidence: float = 0.99,
    tol: float = 1e-6,
    max_iter: int = 1000,
    min_iter: int = 200,
    hvp_error: float = 0.0,
    seed: int = 0,
) -> Estimate:
    r"""``L = max_{i, x in points} ||nabla^2 f_i(x)||_2`` by power iteration (:func:`hessian_norm`).

    Each of the ``K = len(hvps) * len(points)`` runs is made at confidence
    ``1 - (1 - confidence)/K``, so with probability ``>= confidence`` every interval holds and
    ``[max lower, max upper]`` contains the maximum over the given nodes and points (a lower
    estimate of ``sup_x``, which no finite sample bounds from above).

    Parameters
    ----------
    hvps : callable or sequence of callables ``(x, v) -> nabla^2 f_i(x) v``
    points : array_like, shape (d,) or (P, d)
    confidence, tol, max_iter, min_iter, hvp_error, seed : as in :func:`hessian_norm`

    Returns
    -------
    Estimate named 'L'.
    """
    hvps = [hvps] if callable(hvps) else list(hvps)
    pts = np.atleast_2d(np.asarray(points, dtype=np.float64))
    K = len(hvps) * len(pts)
    if K == 0:
        raise TheorylabError("estimate_L needs at least one hvp and one point")
    confidence = check_probability("confidence", confidence)
    level = 1.0 - (1.0 - confidence) / K
    ests = [
        hessian_norm(
            h,
            p,
            tol=tol,
            max_iter=max_iter,
            min_iter=min_iter,
            confidence=level,
            hvp_error=hvp_error,
            seed=seed + j,
        )
        for j, (h, p) in enumerate((h, p) for h in hvps for p in pts)
    ]
    return _sup("L", ests, confidence, "max of Hessian-vector power iterations")


def smallest_eigenvalue(
    hvp: Callable,
    x,
    *,
    shift: float,
    tol: float = 1e-8,
    max_iter: int = 5000,
    min_iter: int = 200,
    confidence: float = 0.99,
    hvp_error: float = 0.0,
    seed: int = 0,
) -> Estimate:
    r"""``lambda_min(nabla^2 f(x))`` (``mu`` where positive) by shifted power iteration.

    The math: with ``shift >= lambda_max(H)``, ``B = shift I - H`` is positive semidefinite and
    ``||B||_2 = shift - lambda_min(H)``; :func:`hessian_norm` on ``B`` gives
    ``[s, U]`` around ``||B||_2`` with probability ``>= confidence``, hence
    ``lambda_min in [shift - U, shift - s]`` (the upper end deterministic). The convergence
    factor per step is ``(shift - lambda_2)/(shift - lambda_min)``: slow for ill-conditioned
    ``H``, so check ``details['converged']``. A negative value means ``f`` is not convex at
    ``x`` (no ``mu``).

    Parameters
    ----------
    hvp : callable ``(x, v) -> H(x) v``
    x : array_like (d,)
    shift : float, at least ``lambda_max(H)`` (e.g. the upper end of :func:`hessian_norm`)
    tol, max_iter, min_iter, confidence, hvp_error, seed : as in :func:`hessian_norm`

    Returns
    -------
    Estimate named 'mu'.

    Examples
    --------
    >>> import numpy as np
    >>> H = np.diag([3.0, 1.0, 0.5])
    >>> e = smallest_eigenvalue(lambda x, v: H @ v, np.zeros(3), shift=3.5)
    >>> round(e.value, 6), e.covers(0.5)
    (0.5, True)
    """
    if isinstance(shift, bool) or not isinstance(shift, (int, float)) or not math.isfinite(shift):
        raise TheorylabError(f"shift must be a finite real >= lambda_max(H), got {shift!r}")
    shift = float(shift)

    def shifted(z, v):
        return shift * np.asarray(v, dtype=np.float64) - _vec("hvp(x, v)", hvp(z, v))

    e = hessian_norm(
        shifted,
        x,
        tol=tol,
        max_iter=max_iter,
        min_iter=min_iter,
        confidence=confidence,
        hvp_error=hvp_error,
        seed=seed,
        name="mu",
    )
    return Estimate(
        name="mu",
        value=shift - e.value,
        lower=shift - e.upper,
        upper=shift - e.lower,
        confidence=confidence,
        method=f"shifted power iteration (shift {shift:g})",
        details={k: v for k, v in e.details.items() if k != "rayleigh"},
    )


# ---- noise and heterogeneity ---------------------------------------------------------------------
def estimate_sigma2(
    sample: Callable,
    points,
    *,
    num_samples: int = 2000,
    groups: int = 20,
    confidence: float = 0.99,
) -> Estimate:
    r"""Gradient noise ``sigma2 = (1/n) sum_i E||g_i(x) - grad f_i(x)||^2`` with a t-interval.

    The math: ``sample(x, k)`` returns ``k`` independent stochastic gradients at ``x`` per node,
    shape ``(k, d)`` (one node) or ``(n, k, d)``. They are cut into ``G = groups`` groups of
    ``s = k // G``; each group's unbiased sample variance
    ``v_g = (1/n) sum_i (1/(s-1)) sum_{j in g} ||g_ij - gbar_ig||^2`` has mean exactly
    ``sigma2(x)`` (no knowledge of ``grad f_i`` needed), and the ``G`` values are independent:
    the interval is ``mean(v) +- t_{G-1, (1+c')/2} sd(v)/sqrt(G)`` (batch means; its coverage is
    the nominal ``c'`` up to the normal approximation of the group means, good for ``s`` in the
    tens or more). Per-minibatch gradients give the minibatch noise (what the algorithms see).
    With several points, each is estimated at ``c' = 1 - (1 - confidence)/P`` and the result is
    the maximum (``[max lower, max upper]`` contains ``max_x sigma2(x)`` over the points).

    Parameters
    ----------
    sample : callable ``(x, k) -> array (k, d) or (n, k, d)``
    points : array_like (d,) or (P, d)
    num_samples : int >= 2 groups, the ``k`` per point
    groups : int >= 2
    confidence : float in (0, 1)

    Returns
    -------
    Estimate named 'sigma2'.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> e = estimate_sigma2(lambda x, k: x + rng.standard_normal((k, 3)), np.zeros(3))
    >>> e.covers(3.0)
    True
    """
    from scipy import stats  # lazy: scipy.stats costs ~0.4 s and ~50 MB per process

    groups = check_int("groups", groups, minimum=2)
    num_samples = check_int("num_samples", num_samples, minimum=2 * groups)
    confidence = check_probability("confidence", confidence)
    if confidence >= 1:
        raise TheorylabError(f"confidence must be < 1, got {confidence}")
    pts = np.atleast_2d(np.asarray(points, dtype=np.float64))
    level = 1.0 - (1.0 - confidence) / len(pts)
    s = num_samples // groups
    q = float(stats.t.ppf(0.5 + 0.5 * level, groups - 1))
    ests = []
    for p in pts:
        g = np.asarray(sample(p, s * groups), dtype=np.float64)
        if g.ndim == 2:
            g = g[None]
        if g.ndim != 3 or g.shape[1] != s * groups or g.shape[2] != p.size:
            raise TheorylabError(
                f"sample(x, k) must return shape (k, d) or (n, k, d) with k = {s * groups}, "
                f"d = {p.size}; got {np.shape(g)}"
            )
        g = g.reshape(g.shape[0], groups, s, p.size)
        dev = g - g.mean(axis=2, keepdims=True)
        v = (dev**2).sum(axis=(2, 3)) / (s - 1)  # (n, G)
        v = v.mean(axis=0)
        mean, half = float(v.mean()), q * float(v.std(ddof=1)) / math.sqrt(groups)
        ests.append(Estimate("sigma2", mean, max(0.0, mean - half), mean + half, level, "t"))
    out = _sup("sigma2", ests, confidence, "batch means with a t-interval")
    return dataclasses.replace(out, details={**out.details, "groups": groups, "group_size": s})


def estimate_zeta2(local_grads: Callable, points) -> Estimate:
    r"""Heterogeneity ``zeta2(x) = (1/n) sum_i ||grad f_i(x) - grad f(x)||^2``, max over points.

    Exact at each point given full local gradients (``local_grads(x)`` of shape ``(n, d)``),
    so the interval is degenerate (``confidence = 1``); over several points the maximum is a
    lower estimate of the uniform ``sup_x zeta2(x)`` (H1) of the non-convex theorems, and at
    ``x*`` it is ``zeta2_star`` (H2).

    Examples
    --------
    >>> import numpy as np
    >>> estimate_zeta2(lambda x: np.array([[1.0, 0.0], [-1.0, 0.0]]), np.zeros(2)).value
    1.0
    """
    pts = np.atleast_2d(np.asarray(points, dtype=np.float64))
    values = []
    for p in pts:
        G = np.asarray(local_grads(p), dtype=np.float64)
        if G.ndim != 2 or G.shape[1] != p.size:
            raise TheorylabError(
                f"local_grads(x) must return shape (n, d) with d = {p.size}, got {G.shape}"
            )
        values.append(float(np.mean(np.sum((G - G.mean(axis=0)) ** 2, axis=1))))
    v = max(values)
    return Estimate("zeta2", v, v, v, 1.0, "exact at the points", {"values": values})


def estimate_delta(
    f: Callable,
    x0,
    *,
    f_star: float | None = None,
    grad: Callable | None = None,
    L: float | None = None,
    steps: int = 1000,
    f_lower: float | None = None,
    mu: float | None = None,
) -> Estimate:
    r"""``delta = f(x0) - f*``, with ``f*`` given or bracketed by a long gradient-descent run.

    The math: with ``f_star`` given the estimate is exact. Otherwise gradient descent
    ``x <- x - grad(x)/L`` for ``steps`` steps (``L`` an upper bound on the smoothness, e.g.
    :func:`estimate_L`'s upper end) gives ``f_run = min_t f(x_t) >= f*``, so
    ``delta >= f(x0) - f_run`` (the value and the lower end). The upper end uses what is known
    below ``f*``: ``f_lower`` (e.g. 0 for a non-negative loss) and, for a ``mu``-PL / strongly
    convex ``f``, ``f* >= f(x_run) - ||grad f(x_run)||^2 / (2 mu)``; ``inf`` when neither is
    given. The bracket is deterministic (``confidence = 1``) given exact ``f``, ``grad``.

    Parameters
    ----------
    f : callable ``x -> f(x)``; x0 : array_like (d,)
    f_star : float or None
    grad : callable ``x -> grad f(x)`` (needed without ``f_star``)
    L : float > 0 (needed without ``f_star``)
    steps : int >= 0
    f_lower : float or None, a known lower bound on ``f``
    mu : float > 0 or None, a PL / strong-convexity constant of ``f``

    Returns
    -------
    Estimate named 'delta'.

    Examples
    --------
    >>> import numpy as np
    >>> e = estimate_delta(lambda x: float(x @ x), np.ones(2), grad=lambda x: 2 * x, L=2.0,
    ...                    f_lower=0.0)
    >>> e.value, e.upper
    (2.0, 2.0)
    """
    x = _vec("x0", x0)
    f0 = float(f(x))
    if f_star is not None:
        d = f0 - float(f_star)
        return Estimate("delta", d, d, d, 1.0, "f* given")
    if grad is None or L is None:
        raise TheorylabError("estimate_delta needs f_star, or grad and L for a gradient run")
    L = check_positive("L", L)
    steps = check_int("steps", steps, minimum=0)
    f_run, x_best = f0, x
    for _ in range(steps):
        x = x - _vec("grad(x)", grad(x), x.size) / L
        fx = float(f(x))
        if not math.isfinite(fx):
            break
        if fx < f_run:
            f_run, x_best = fx, x
    lows = []
    if f_lower is not None:
        lows.append(float(f_lower))
    if mu is not None:
        g = _vec("grad(x)", grad(x_best), x.size)
        lows.append(f_run - float(g @ g) / (2.0 * check_positive("mu", mu)))
    upper = f0 - max(lows) if lows else math.inf
    return Estimate(
        "delta",
        f0 - f_run,
        f0 - f_run,
        upper,
        1.0,
        "gradient-descent run",
        {"f0": f0, "f_run": f_run, "steps": steps},
    )


# ---- from estimates to rates ---------------------------------------------------------------------
def _upper(name: str, value) -> tuple[float, dict]:
    if isinstance(value, Estimate):
        return value.upper, {
            "value": value.value,
            "lower": value.lower,
            "upper": value.upper,
            "confidence": value.confidence,
        }
    v = check_positive(name, value, allow_zero=True)
    return v, {"value": v, "lower": v, "upper": v, "confidence": 1.0}


def nonconvex_rates(
    *,
    L,
    sigma2,
    delta,
    gamma: float,
    n: int,
    T: int,
    zeta2=None,
    rho: float | None = None,
    source: str = "koloskova2020",
) -> dict[str, Rate]:
    r"""The non-convex PSGD and DSGD bounds of :mod:`theorylab.rates.decentralized` at estimates.

    Each constant is an :class:`Estimate` (its **upper** end is used: every term of
    :func:`theorylab.rates.psgd` / :func:`theorylab.rates.dsgd` (non-convex) increases with
    ``L``, ``sigma2``, ``zeta2`` and ``delta``, and the step condition ``gamma <= 1/L`` is
    checked at the largest plausible ``L``) or a plain number (taken as exact). With
    probability at least ``1 - sum_j (1 - confidence_j)`` (a union bound over the constants)
    the intervals hold and the returned upper bounds are at least the bounds at the true
    constants. The rates are the library's own (kind, terms, source unchanged); ``extra``
    gains ``'estimates'`` (each constant's value and interval) and ``'confidence'``.

    Parameters
    ----------
    L, sigma2, delta : Estimate or float
    gamma : float > 0; n : int >= 1; T : int >= 1
    zeta2 : Estimate or float, needed for DSGD
    rho : float in [0, 1) or None; ``||W - 11^T/n||_2`` (spectral gap ``1 - rho``); DSGD's
        rate is returned only when given
    source : DSGD's non-convex bound, ``'koloskova2020'`` (big-O) or ``'lian2017'``

    Returns
    -------
    dict ``{'psgd': Rate, 'dsgd': Rate}`` (``'dsgd'`` only with ``rho``).

    Examples
    --------
    >>> r = nonconvex_rates(L=2.0, sigma2=1.0, delta=1.0, gamma=0.1, n=4, T=100)
    >>> sorted(r['psgd'].terms), round(r['psgd'].total, 6)
    (['noise', 'optimization'], 0.25)
    """
    L_up, L_info = _upper("L", L)
    s_up, s_info = _upper("sigma2", sigma2)
    d_up, d_info = _upper("delta", delta)
    infos = {"L": L_info, "sigma2": s_info, "delta": d_info}
    out = {"psgd": psgd(gamma=gamma, L=L_up, sigma2=s_up, n=n, T=T, delta=d_up)}
    if rho is not None:
        if zeta2 is None:
            raise TheorylabError("the DSGD rate needs zeta2 (an Estimate or a number)")
        z_up, infos["zeta2"] = _upper("zeta2", zeta2)
        out["dsgd"] = dsgd(
            gamma=gamma,
            L=L_up,
            sigma2=s_up,
            zeta2=z_up,
            rho=rho,
            n=n,
            T=T,
            delta=d_up,
            source=source,
        )
    result = {}
    for key, rate in out.items():
        used = {k: v for k, v in infos.items() if key == "dsgd" or k != "zeta2"}
        failure = sum(1.0 - info["confidence"] for info in used.values())
        extra = {**rate.extra, "estimates": used, "confidence": max(0.0, 1.0 - failure)}
        result[key] = dataclasses.replace(rate, extra=extra)
    return result
