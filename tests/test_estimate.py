"""theorylab.estimate against the package's quadratics, whose L, mu, sigma2, zeta2 are exact.

Statistical checks use fixed seeds; each states its false-failure probability (the probability
that a correct implementation fails for a random seed).
"""

from __future__ import annotations

import numpy as np
import pytest

from theorylab.errors import TheorylabError
from theorylab.estimate import (
    Estimate,
    estimate_delta,
    estimate_L,
    estimate_sigma2,
    estimate_zeta2,
    fd_hvp,
    hessian_norm,
    nonconvex_rates,
    smallest_eigenvalue,
)
from theorylab.problems import heterogeneous_quadratic
from theorylab.rates import dsgd, psgd


@pytest.fixture(scope="module")
def problem():
    return heterogeneous_quadratic(
        6, 5, L=2.0, mu=0.2, zeta2=1.5, sigma2=0.8, diagonal=False, seed=3
    )


def _hvps(p):
    return [lambda x, v, A=A: A @ v for A in p.A]


def _grads(p):
    return [lambda x, i=i: p.grad(np.broadcast_to(x, (p.n, p.d)))[i] for i in range(p.n)]


@pytest.mark.parametrize("seed", range(5))
def test_L_covers_exact_value(problem, seed):
    # false-failure probability <= 1e-3 per seed (the interval's level; the lower end is sure)
    x = np.random.default_rng(seed).standard_normal(problem.d)
    e = estimate_L(_hvps(problem), x, confidence=0.999, seed=seed)
    assert e.covers(problem.L)
    assert e.value == pytest.approx(problem.L, rel=1e-4)
    assert e.name == "L" and e.details["parts"] == problem.n
    # >= 200 iterations: the probabilistic upper end is within 10% (sqrt(F) ~ 1.07)
    assert e.upper <= 1.1 * e.value


def test_L_from_gradient_callables_by_finite_differences(problem):
    # central differences are exact on quadratics up to round-off ~ eps^(2/3) ||A|| ~ 1e-10
    x = np.ones(problem.d)
    hvps = [fd_hvp(g) for g in _grads(problem)]
    e = estimate_L(hvps, x, confidence=0.999, hvp_error=1e-7)
    assert e.covers(problem.L)
    assert e.value == pytest.approx(problem.L, rel=1e-4)
    v = np.arange(problem.d, dtype=float)
    np.testing.assert_allclose(hvps[2](x, v), problem.A[2] @ v, rtol=1e-7, atol=1e-7)


def test_power_upper_end_holds_before_convergence():
    # eigenvalues 1, 0.99, ..., so 5 power steps are far from converged: the upper end must
    # still hold with probability >= 0.9 per start. Misses ~ Binomial(200, <= 0.1);
    # P(more than 40) < 1e-6 (false-failure probability).
    H = np.diag(np.linspace(1.0, 0.5, 50))
    misses = sum(
        not hessian_norm(
            lambda x, v: H @ v, np.zeros(50), max_iter=5, confidence=0.9, seed=s
        ).covers(1.0)
        for s in range(200)
    )
    assert misses <= 40
    e = hessian_norm(lambda x, v: H @ v, np.zeros(50), max_iter=5, seed=0)
    assert not e.details["converged"] and e.value <= 1.0


def test_L_of_indefinite_hessian_is_largest_magnitude():
    H = np.diag([0.5, -3.0, 1.0])
    e = hessian_norm(lambda x, v: H @ v, np.zeros(3), confidence=0.999)
    assert e.value == pytest.approx(3.0, rel=1e-5) and e.covers(3.0)
    assert e.details["rayleigh"] == pytest.approx(-3.0, rel=1e-4)


@pytest.mark.parametrize("seed", range(3))
def test_mu_covers_exact_value(problem, seed):
    # false-failure probability <= 2e-3 per seed (L's interval, then mu's)
    x = np.zeros(problem.d)
    mean_hvp = lambda x, v: problem.mean_hessian @ v  # noqa: E731
    Lf = hessian_norm(mean_hvp, x, confidence=0.999, seed=seed)
    e = smallest_eigenvalue(mean_hvp, x, shift=Lf.upper, confidence=0.999, seed=seed)
    assert e.details["converged"]
    assert e.covers(problem.mu)
    assert e.value == pytest.approx(problem.mu, rel=1e-3)


def _noise_sampler(p, rng):
    def sample(x, k):
        g = p.grad(np.broadcast_to(x, (p.n, p.d)))[:, None, :]
        return g + rng.standard_normal((p.n, k, p.d)) * np.sqrt(p.sigma2 / p.d)

    return sample


def test_sigma2_covers_exact_value(problem):
    # false-failure probability <= 1e-3 (the interval's level, up to the normal approximation)
    rng = np.random.default_rng(0)
    pts = np.stack([np.zeros(problem.d), problem.x_star])
    e = estimate_sigma2(_noise_sampler(problem, rng), pts, confidence=0.999)
    assert e.covers(problem.sigma2)
    assert e.value == pytest.approx(problem.sigma2, rel=0.05)
    assert e.details["parts"] == 2


def test_sigma2_interval_coverage_is_nominal(problem):
    # 200 independent 90% intervals: covered ~ Binomial(200, 0.9) for a calibrated interval;
    # P(fewer than 165) ~ 1e-4 (false-failure probability); an interval far too narrow (the
    # sd of one sample instead of the group means) would cover ~ 30%.
    rng = np.random.default_rng(1)
    sample = _noise_sampler(problem, rng)
    covered = sum(
        estimate_sigma2(sample, problem.x_star, num_samples=400, confidence=0.9).covers(
            problem.sigma2
        )
        for _ in range(200)
    )
    assert covered >= 165


def test_zeta2_exact_at_optimum_and_below_ball_sup(problem):
    e = estimate_zeta2(problem.grad, problem.x_star)
    assert e.value == pytest.approx(problem.zeta2_star, rel=1e-10)
    assert e.covers(problem.zeta2_star) and e.confidence == 1.0
    r = 0.7
    rng = np.random.default_rng(2)
    dirs = rng.standard_normal((20, problem.d))
    pts = problem.x_star + r * dirs / np.linalg.norm(dirs, axis=1, keepdims=True)
    e_ball = estimate_zeta2(problem.grad, pts)
    # independent computation: the exact trust-region sup over the ball bounds every point
    assert problem.zeta2_star <= e_ball.value <= problem.zeta2_ball(r) * (1 + 1e-9)
    # brute force at one point
    G = problem.grad(pts[0])
    assert e_ball.details["values"][0] == pytest.approx(
        np.mean(np.sum((G - G.mean(0)) ** 2, 1)), rel=1e-12
    )


def test_delta_bracket_covers_exact_value(problem):
    x0 = np.full(problem.d, 2.0)
    exact = problem.f(x0) - problem.f_star
    grad_f = lambda x: problem.grad(x).mean(axis=0)  # noqa: E731
    e = estimate_delta(problem.f, x0, grad=grad_f, L=problem.L, steps=50, f_lower=0.0)
    assert e.lower <= exact <= e.upper
    tight = estimate_delta(problem.f, x0, grad=grad_f, L=problem.L, steps=300, mu=problem.mu)
    assert tight.covers(exact)
    assert tight.value == pytest.approx(exact, rel=1e-8)
    given = estimate_delta(problem.f, x0, f_star=problem.f_star)
    assert given.value == pytest.approx(exact) and given.lower == given.upper
    assert estimate_delta(problem.f, x0, grad=grad_f, L=problem.L, steps=5).upper == np.inf


def test_nonconvex_rates_use_upper_ends():
    L = Estimate("L", 1.0, 0.9, 1.2, 0.99, "t")
    s2 = Estimate("sigma2", 0.5, 0.4, 0.6, 0.99, "t")
    z2 = Estimate("zeta2", 0.3, 0.3, 0.3, 1.0, "exact")
    delta = 2.0
    rates = nonconvex_rates(L=L, sigma2=s2, zeta2=z2, delta=delta, gamma=0.1, n=8, T=500, rho=0.6)
    ref_p = psgd(gamma=0.1, L=1.2, sigma2=0.6, n=8, T=500, delta=2.0)
    ref_d = dsgd(gamma=0.1, L=1.2, sigma2=0.6, zeta2=0.3, rho=0.6, n=8, T=500, delta=2.0)
    assert rates["psgd"].terms == ref_p.terms and rates["psgd"].kind == "upper"
    assert rates["dsgd"].terms == ref_d.terms and rates["dsgd"].big_o == ref_d.big_o
    assert rates["psgd"].extra["confidence"] == pytest.approx(0.98)
    assert rates["dsgd"].extra["estimates"]["zeta2"]["upper"] == 0.3
    # conservative: at the point estimates the bound is smaller
    at_values = psgd(gamma=0.1, L=1.0, sigma2=0.5, n=8, T=500, delta=2.0)
    assert rates["psgd"].total >= at_values.total
    assert "dsgd" not in nonconvex_rates(L=L, sigma2=s2, delta=1.0, gamma=0.1, n=8, T=5)


def test_estimated_constants_into_rates_end_to_end(problem):
    x = problem.x_star
    L = estimate_L(_hvps(problem), x, confidence=0.999)
    s2 = estimate_sigma2(_noise_sampler(problem, np.random.default_rng(4)), x, confidence=0.999)
    z2 = estimate_zeta2(problem.grad, x)
    rates = nonconvex_rates(
        L=L, sigma2=s2, zeta2=z2, delta=1.0, gamma=0.2, n=problem.n, T=100, rho=0.5
    )
    exact = psgd(gamma=0.2, L=problem.L, sigma2=problem.sigma2, n=problem.n, T=100, delta=1.0)
    assert rates["psgd"].total >= exact.total
    assert rates["psgd"].extra["confidence"] == pytest.approx(0.998)


def test_bad_input():
    H = np.eye(2)
    with pytest.raises(TheorylabError, match="confidence"):
        hessian_norm(lambda x, v: H @ v, np.zeros(2), confidence=1.0)
    with pytest.raises(TheorylabError, match="shape"):
        estimate_sigma2(lambda x, k: np.zeros((k, 3)), np.zeros(2))
    with pytest.raises(TheorylabError, match="shift"):
        smallest_eigenvalue(lambda x, v: H @ v, np.zeros(2), shift=float("nan"))
    with pytest.raises(TheorylabError, match="grad and L"):
        estimate_delta(lambda x: 0.0, np.zeros(2))
    with pytest.raises(TheorylabError, match="zeta2"):
        nonconvex_rates(L=1.0, sigma2=1.0, delta=1.0, gamma=0.1, n=2, T=5, rho=0.5)
    nan = hessian_norm(lambda x, v: np.full(2, np.nan), np.zeros(2))
    assert np.isnan(nan.value)


def test_doctest_examples_run():
    import doctest

    import theorylab.estimate

    assert doctest.testmod(theorylab.estimate, raise_on_error=True).attempted > 0
