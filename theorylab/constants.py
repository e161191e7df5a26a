r"""The calculator's inputs from a problem or from data: L, mu, sigma2, zeta2, x*, f(x_0) - f*.

A thin layer over :mod:`theorylab.estimate` (every interval and its coverage are defined there):

* :func:`constants_from_problem`: the package's problems. A
  :class:`~theorylab.problems.QuadraticProblem` gives L and mu from its Hessians
  (``method='hessian'``: eigenvalues, exact) or by Hessian-vector power iteration
  (``method='power'``: :func:`~theorylab.estimate.estimate_L`,
  :func:`~theorylab.estimate.smallest_eigenvalue`), x* by solving the normal equations,
  zeta2 at x* exactly (:func:`~theorylab.estimate.estimate_zeta2`) and sigma2 by sampling its
  stochastic gradients (:func:`~theorylab.estimate.estimate_sigma2`, a t-interval). A
  :class:`~theorylab.problems.LogisticProblem` goes through :func:`constants_from_gradients`
  with its local gradients and a minibatch sampler.
* :func:`constants_from_gradients`: a user's own ``f_i`` given as a gradient function
  ``x -> (grad f_1(x), ..., grad f_n(x))``: x* by solving ``(1/n) sum_i grad f_i(x) = 0``
  (:func:`scipy.optimize.root`), L by power iteration on finite-difference (or given)
  Hessian-vector products at x_0 and x*, mu by shifted power iteration on the mean Hessian at
  x*, zeta2 at x*, sigma2 at x* by sampling a stochastic-gradient function when one is given.

:meth:`Constants.calculator_inputs` turns the estimates into keyword arguments of
:func:`theorylab.calculator.predict`, conservatively (upper ends of L, sigma2, zeta2 and the
lower end of mu: every bound of the calculator grows with each of those moves).

Example
-------
>>> from theorylab.problems import heterogeneous_quadratic
>>> p = heterogeneous_quadratic(4, 3, L=2.0, mu=0.5, zeta2=1.0, sigma2=0.3, seed=0)
>>> c = constants_from_problem(p, num_samples=400, seed=1)
>>> round(c.L.value, 12), round(c.mu.value, 12), round(c.zeta2.value, 12), c.sigma2.covers(0.3)
(2.0, 0.5, 1.0, True)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from theorylab.errors import TheorylabError, check_int, check_positive
from theorylab.estimate import (
    Estimate,
    estimate_L,
    estimate_sigma2,
    estimate_zeta2,
    fd_hvp,
    smallest_eigenvalue,
)

__all__ = ["Constants", "constants_from_problem", "constants_from_gradients"]


@dataclass(frozen=True)
class Constants:
    """Estimated constants of ``f = (1/n) sum_i f_i``, each an :class:`~theorylab.estimate.Estimate`
    with its interval (None when it could not be estimated: sigma2 without a sampler).

    Attributes
    ----------
    L, mu, sigma2, zeta2 : Estimate or None (zeta2 at x*, H2)
    x_star : ndarray (d,)
    n, d : int
    r0_sq : float or None, ||x_0 - x*||^2
    f_gap : float or None, f(x_0) - f(x*) (when f is known)
    details : dict (how x* was solved, the residual ||grad f(x*)||, the method)
    """

    L: Estimate
    mu: Estimate | None
    sigma2: Estimate | None
    zeta2: Estimate
    x_star: np.ndarray
    n: int
    d: int
    r0_sq: float | None = None
    f_gap: float | None = None
    details: dict = field(default_factory=dict)

    def calculator_inputs(self, conservative: bool = True) -> dict:
        """Keyword arguments for :func:`theorylab.calculator.predict` (L, mu, sigma2, zeta2, n,
        r0_sq, f_gap): upper ends of L, sigma2, zeta2 and the lower end of mu when
        ``conservative``, else the point estimates. mu is left out when not positive."""

        def pick(e: Estimate | None, side: str):
            if e is None:
                return None
            return getattr(e, side) if conservative else e.value

        out = {"n": self.n, "L": pick(self.L, "upper"), "zeta2": pick(self.zeta2, "upper")}
        if self.sigma2 is not None:
            out["sigma2"] = pick(self.sigma2, "upper")
        mu = pick(self.mu, "lower")
        if mu is not None and mu > 0:
            out["mu"] = min(mu, out["L"])
        if self.r0_sq is not None:
            out["r0_sq"] = self.r0_sq
        if self.f_gap is not None:
            out["f_gap"] = self.f_gap
        return out

    def to_dict(self) -> dict:
        from theorylab.output import to_jsonable

        return to_jsonable({
            "L": self.L, "mu": self.mu, "sigma2": self.sigma2, "zeta2": self.zeta2,
            "x_star": self.x_star, "n": self.n, "d": self.d, "r0_sq": self.r0_sq,
            "f_gap": self.f_gap, "details": self.details,
        })  # fmt: skip


def _exact(name: str, value: float, method: str) -> Estimate:
    return Estimate(name, float(value), float(value), float(value), 1.0, method)


def constants_from_problem(
    problem,
    *,
    method: str = "hessian",
    x0=None,
    num_samples: int = 2000,
    groups: int = 20,
    confidence: float = 0.99,
    seed: int = 0,
) -> Constants:
    """Constants of one of the package's problems (see the module docstring).

    Parameters
    ----------
    problem : QuadraticProblem or LogisticProblem (or any object with ``grad(x) -> (n, d)``)
    method : 'hessian' (quadratics: eigenvalues of the Hessians) or 'power' (power iteration)
    x0 : the start (d,) for ``r0_sq`` and ``f_gap`` (default 0)
    num_samples, groups, confidence : of :func:`~theorylab.estimate.estimate_sigma2`
    seed : seeds the sampling and the power iterations

    Returns
    -------
    Constants
    """
    from theorylab.problems import LogisticProblem, QuadraticProblem

    if method not in ("hessian", "power"):
        raise TheorylabError(f"method must be 'hessian' or 'power', got {method!r}")
    if isinstance(problem, QuadraticProblem):
        return _quadratic(problem, method, x0, num_samples, groups, confidence, seed)
    if isinstance(problem, LogisticProblem):
        return _logistic(problem, x0, num_samples, groups, confidence, seed)
    if not callable(getattr(problem, "grad", None)):
        raise TypeError(
            f"problem must be a QuadraticProblem, a LogisticProblem or have grad(x) -> (n, d); "
            f"got {type(problem).__name__} (use constants_from_gradients for your own f_i)"
        )
    x0 = np.zeros(_dim(problem.grad, None)) if x0 is None else x0
    return constants_from_gradients(problem.grad, x0, f=getattr(problem, "f", None), seed=seed)


def _dim(grads, x0) -> int:
    if x0 is not None:
        return int(np.asarray(x0).size)
    raise TheorylabError("give x0 (the start, shape (d,))")


def _quadratic(p, method, x0, num_samples, groups, confidence, seed) -> Constants:
    x_star = p.x_star
    if method == "hessian":
        L = _exact("L", p.L, "max_i lambda_max(A_i) (eigenvalues of the Hessians)")
        mu = _exact("mu", p.mu, "lambda_min((1/n) sum_i A_i)")
    else:
        hvps = [lambda x, v, A=A: A @ np.asarray(v, dtype=np.float64) for A in p.A]
        L = estimate_L(hvps, x_star, confidence=confidence, seed=seed)
        mu = smallest_eigenvalue(lambda x, v: p.mean_hessian @ np.asarray(v, dtype=np.float64),
                                 x_star, shift=L.upper, confidence=confidence,
                                 seed=seed + 1)  # fmt: skip
    zeta2 = estimate_zeta2(p.grad, x_star)
    rng = np.random.default_rng(seed)

    def sample(x, k):
        return np.stack([p.stochastic_grad(x, rng) for _ in range(k)], axis=1)  # (n, k, d)

    sigma2 = estimate_sigma2(sample, x_star, num_samples=num_samples, groups=groups,
                             confidence=confidence)  # fmt: skip
    x0 = np.zeros(p.d) if x0 is None else np.asarray(x0, dtype=np.float64).reshape(-1)
    if x0.size != p.d:
        raise TheorylabError(f"x0 must have d = {p.d} entries, got {x0.size}")
    return Constants(
        L, mu, sigma2, zeta2, x_star, p.n, p.d, r0_sq=float(np.sum((x0 - x_star) ** 2)),
        f_gap=float(p.f(x0) - p.f(x_star)),
        details={"x_star": "solved (sum_i A_i) x = sum_i A_i b_i", "method": method},
    )  # fmt: skip


def _logistic(p, x0, num_samples, groups, confidence, seed) -> Constants:
    from scipy.special import expit

    rng = np.random.default_rng(seed)

    def sample(x, k):  # one-sample stochastic gradients per node, drawn with replacement
        j = rng.integers(0, p.m, size=(p.n, k))
        a = np.take_along_axis(p.features, j[..., None], axis=1)  # (n, k, d)
        y = np.take_along_axis(p.labels, j, axis=1)
        r = expit(a @ np.asarray(x, dtype=np.float64)) - y
        return a * r[..., None] + p.reg * np.asarray(x)

    x0 = np.zeros(p.d) if x0 is None else x0
    c = constants_from_gradients(
        p.grad, x0, stochastic=sample, f=p.f, num_samples=num_samples, groups=groups,
        confidence=confidence, seed=seed,
    )  # fmt: skip
    details = dict(c.details, declared_L=p.L, declared_mu=p.mu, x_star_newton=p.x_star.tolist())
    return Constants(c.L, c.mu, c.sigma2, c.zeta2, c.x_star, c.n, c.d, c.r0_sq, c.f_gap, details)


def _stack_grads(grads) -> Callable:
    if callable(grads):
        return grads
    if isinstance(grads, Sequence) and grads and all(callable(g) for g in grads):
        return lambda x: np.stack([np.asarray(g(x), dtype=np.float64) for g in grads])
    raise TypeError(
        "grads must be a callable x -> (n, d) array of local gradients, or a list of n "
        f"callables x -> (d,); got {type(grads).__name__}"
    )


def constants_from_gradients(
    grads,
    x0,
    *,
    stochastic: Callable | None = None,
    hvps=None,
    f: Callable | None = None,
    num_samples: int = 2000,
    groups: int = 20,
    confidence: float = 0.99,
    tol: float = 1e-10,
    seed: int = 0,
) -> Constants:
    r"""Constants of a user's own ``f_i`` given as gradient functions (module docstring).

    Parameters
    ----------
    grads : callable ``x -> (n, d)`` array of ``grad f_i(x)``, or a list of n callables
        ``x -> (d,)``
    x0 : array_like (d,), the start (also the first point of the L estimate)
    stochastic : callable ``(x, k) -> (n, k, d)`` (or ``(k, d)``) of k stochastic gradients
        per node, for sigma2 (None: sigma2 is not estimated)
    hvps : list of n callables ``(x, v) -> nabla^2 f_i(x) v`` (default: central differences of
        ``grads``, :func:`~theorylab.estimate.fd_hvp`)
    f : callable ``x -> f(x)`` for ``f_gap = f(x0) - f(x*)`` (optional)
    num_samples, groups, confidence : of the estimators; tol : ``||grad f(x*)||`` target

    Returns
    -------
    Constants (L over the nodes at x0 and x*: a lower estimate of the uniform sup over x)

    Raises
    ------
    TheorylabError
        The mean gradient could not be solved to zero (``details`` has the residual), or bad
        shapes.
    """
    from scipy import optimize

    G = _stack_grads(grads)
    x0 = np.asarray(x0, dtype=np.float64).reshape(-1)
    g0 = np.asarray(G(x0), dtype=np.float64)
    if g0.ndim != 2 or g0.shape[1] != x0.size:
        raise TheorylabError(
            f"grads(x) must return shape (n, d) with d = {x0.size}, got {np.shape(g0)}"
        )
    n, d = g0.shape
    check_positive("tol", tol)
    check_int("num_samples", num_samples, minimum=2)

    def mean_grad(x):
        return np.asarray(G(x), dtype=np.float64).mean(axis=0)

    # x*: solve (1/n) sum_i grad f_i(x) = 0
    sol = optimize.root(mean_grad, x0, method="hybr" if d <= 200 else "krylov", tol=tol * 1e-2)
    x_star = np.asarray(sol.x, dtype=np.float64)
    resid = float(np.linalg.norm(mean_grad(x_star)))
    scale = max(1.0, float(np.linalg.norm(g0.mean(axis=0))))
    if not np.all(np.isfinite(x_star)) or resid > max(tol, 1e-6 * scale):
        raise TheorylabError(
            f"could not solve (1/n) sum_i grad f_i(x) = 0 from x0: residual {resid:.3g} "
            f"({sol.message}); is f strongly convex with a minimiser?"
        )
    hvp_source = "given" if hvps is not None else "central differences of grads (fd_hvp)"
    if hvps is None:
        hvps = [fd_hvp(lambda x, i=i: np.asarray(G(x), dtype=np.float64)[i]) for i in range(n)]
    elif len(hvps) != n:
        raise TheorylabError(f"give one hvp per node: {n}, got {len(hvps)}")
    L = estimate_L(hvps, np.stack([x0, x_star]), confidence=confidence, seed=seed)

    def mean_hvp(x, v):
        return np.mean([np.asarray(h(x, v), dtype=np.float64) for h in hvps], axis=0)

    mu = smallest_eigenvalue(mean_hvp, x_star, shift=L.upper * (1 + 1e-9), confidence=confidence,
                             seed=seed + 1)  # fmt: skip
    zeta2 = estimate_zeta2(G, x_star)
    sigma2 = None
    if stochastic is not None:
        sigma2 = estimate_sigma2(stochastic, x_star, num_samples=num_samples, groups=groups,
                                 confidence=confidence)  # fmt: skip
    f_gap = None
    if f is not None:
        f_gap = float(f(x0) - f(x_star))
        if not math.isfinite(f_gap):
            raise TheorylabError(f"f(x0) - f(x*) is not finite: {f_gap}")
    return Constants(
        L, mu, sigma2, zeta2, x_star, n, d, r0_sq=float(np.sum((x0 - x_star) ** 2)),
        f_gap=f_gap,
        details={"x_star": f"scipy.optimize.root ({'hybr' if d <= 200 else 'krylov'})",
                 "grad_norm_star": resid, "hvp": hvp_source},
    )  # fmt: skip
