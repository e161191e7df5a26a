"""Problems: exact constants, zeta2_ball vs independent maximisation, logistic x*, validation."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import minimize, minimize_scalar

from theorylab.errors import TheorylabError
from theorylab.problems import (
    LogisticProblem,
    QuadraticProblem,
    heterogeneous_quadratic,
    logistic_regression,
)


@pytest.mark.parametrize("diagonal", [True, False])
@pytest.mark.parametrize("shared", [False, True])
def test_heterogeneous_quadratic_constants_exact(diagonal, shared):
    p = heterogeneous_quadratic(
        7,
        5,
        L=3.0,
        mu=0.2,
        zeta2=2.5,
        sigma2=0.7,
        diagonal=diagonal,
        shared_hessian=shared,
        seed=4,
    )
    assert p.L == pytest.approx(3.0, rel=1e-12)
    assert p.mu == pytest.approx(0.2, rel=1e-12)
    assert p.zeta2_star == pytest.approx(2.5, rel=1e-12)
    assert p.sigma2 == 0.7
    # x* is the minimiser of the average: the local gradients at x* average to zero
    assert np.abs(p.grad(p.x_star).mean(axis=0)).max() < 1e-13
    assert (p.hessian_diagonal is not None) == diagonal
    assert p.A.shape == (7, 5, 5) and p.A.dtype == np.float64
    # independent check of L and mu by dense eigenvalues
    assert max(np.linalg.eigvalsh(Ai).max() for Ai in p.A) == pytest.approx(3.0, rel=1e-12)
    assert np.linalg.eigvalsh(p.A.mean(0))[0] == pytest.approx(0.2, rel=1e-12)
    spread = np.abs(p.A - p.A[0]).max()
    assert (spread == 0) == shared  # default: Hessians differ per node
    assert p.mu_local >= 0
    assert p.f_star == pytest.approx(p.f(p.x_star))


def test_same_seed_same_problem_and_different_seeds_differ():
    a = heterogeneous_quadratic(4, 3, seed=1)
    b = heterogeneous_quadratic(4, 3, seed=1)
    c = heterogeneous_quadratic(4, 3, seed=2)
    assert np.array_equal(a.A, b.A) and np.array_equal(a.b, b.b)
    assert not np.array_equal(a.A, c.A)


def test_zeta2_zero_and_x_star_invariance():
    p = heterogeneous_quadratic(5, 3, zeta2=0.0, seed=0)
    assert p.zeta2_star < 1e-28  # zero up to the round-off of recomputing x*
    assert np.allclose(p.b, p.x_star)


def test_closed_form_example_and_oracles_match_finite_differences():
    p = QuadraticProblem(
        np.array([[1.0, 2.0], [3.0, 0.5]]), np.array([[0.0, 1.0], [2.0, -1.0]]), sigma2=0.0
    )
    # x* = (sum A_i)^{-1} sum A_i b_i, coordinate-wise here
    assert np.allclose(p.x_star, [6.0 / 4.0, (2.0 - 0.5) / 2.5])
    x = np.array([0.3, -0.7])
    eps = 1e-6
    fd = np.array(
        [(p.local_f(x + eps * e) - p.local_f(x - eps * e)) / (2 * eps) for e in np.eye(2)]
    ).T
    assert np.allclose(fd, p.grad(x), atol=1e-8)
    assert p.f(x) == pytest.approx(p.local_f(x).mean())


def test_stochastic_gradient_noise_convention():
    # E||xi_i||^2 = sigma2 per node. Sample mean of 40000 chi-square draws: 5 standard errors,
    # false-failure probability < 6e-7 (normal approximation).
    p = heterogeneous_quadratic(4, 3, sigma2=2.0, seed=0)
    rng = np.random.default_rng(0)
    x = np.zeros(3)
    noise = np.stack([p.stochastic_grad(x, rng) - p.grad(x) for _ in range(10000)])
    sq = np.sum(noise**2, axis=2).ravel()
    assert abs(sq.mean() - 2.0) < 5 * sq.std() / np.sqrt(sq.size)


def _ball_value(p, e):
    g = p.grad(p.x_star + e)
    return float(np.mean(np.sum((g - g.mean(0)) ** 2, axis=1)))


@settings(deadline=None, max_examples=15, derandomize=True)
@given(seed=st.integers(0, 10_000), radius=st.floats(0.01, 5.0), diagonal=st.booleans())
def test_zeta2_ball_is_the_exact_max_over_the_ball(seed, radius, diagonal):
    p = heterogeneous_quadratic(5, 2, L=2.0, mu=0.3, zeta2=1.0, diagonal=diagonal, seed=seed)
    value = p.zeta2_ball(radius)
    assert value >= p.zeta2_star - 1e-12
    # independent: maximise over the circle by dense grid + bounded scalar refinement
    theta = np.linspace(0, 2 * np.pi, 721)
    vals = [_ball_value(p, radius * np.array([np.cos(t), np.sin(t)])) for t in theta]
    t0 = theta[int(np.argmax(vals))]
    res = minimize_scalar(
        lambda t: -_ball_value(p, radius * np.array([np.cos(t), np.sin(t)])),
        bounds=(t0 - 0.01, t0 + 0.01),
        method="bounded",
        options={"xatol": 1e-12},
    )
    assert value == pytest.approx(-res.fun, rel=1e-8)
    # no sampled point inside the ball exceeds it
    rng = np.random.default_rng(seed)
    pts = rng.standard_normal((500, 2))
    pts *= (radius * rng.random(500) ** 0.5 / np.linalg.norm(pts, axis=1))[:, None]
    assert max(_ball_value(p, e) for e in pts) <= value * (1 + 1e-12)


def test_zeta2_ball_higher_dimension_vs_multistart():
    p = heterogeneous_quadratic(6, 4, L=1.0, mu=0.1, zeta2=0.5, diagonal=False, seed=3)
    r = 1.5
    value = p.zeta2_ball(r)
    best = -np.inf
    rng = np.random.default_rng(0)
    for _ in range(20):
        e0 = rng.standard_normal(4)
        res = minimize(
            lambda e: -_ball_value(p, e),
            e0 * r / np.linalg.norm(e0),
            constraints=[{"type": "ineq", "fun": lambda e: r**2 - e @ e}],
            method="SLSQP",
            options={"ftol": 1e-14, "maxiter": 500},
        )
        if res.x @ res.x <= r**2 * (1 + 1e-9):
            best = max(best, -res.fun)
    assert value == pytest.approx(best, rel=1e-7)
    assert p.zeta2_ball(0.0) == pytest.approx(p.zeta2_star)


def test_zeta2_ball_hard_case():
    # b_i = common point: grad f_i(x*) = 0, so c = 0 and the max is lambda_max(M) r^2
    A = np.array([[1.0, 2.0], [3.0, 2.0]])
    p = QuadraticProblem(A, np.zeros((2, 2)), sigma2=0.0)
    D = A - A.mean(0)
    m = np.mean(D**2, axis=0).max()
    assert p.zeta2_star == 0.0
    assert p.zeta2_ball(2.0) == pytest.approx(m * 4.0, rel=1e-12)


def test_logistic_newton_x_star_and_constants():
    p = logistic_regression(6, 80, 7, alpha=0.2, reg=1e-3, seed=5)
    assert p.grad_norm_star < 1e-10
    assert np.linalg.norm(p.grad(p.x_star).mean(axis=0)) < 1e-10
    assert p.features.shape == (6, 80, 7) and p.labels.shape == (6, 80)
    assert set(np.unique(p.labels)) <= {0.0, 1.0}
    assert p.mu == p.reg == 1e-3
    # L bounds every local Hessian's largest eigenvalue (checked at random points)
    rng = np.random.default_rng(0)
    for _ in range(5):
        x = rng.standard_normal(7) * 3
        for i in range(6):
            s = 1 / (1 + np.exp(-p.features[i] @ x))
            H = p.features[i].T @ (p.features[i] * (s * (1 - s))[:, None]) / 80 + p.reg * np.eye(7)
            assert np.linalg.eigvalsh(H).max() <= p.L * (1 + 1e-12)
    # f(x*) is not beaten by an independent quasi-Newton solve
    res = minimize(
        p.f, np.zeros(7), jac=lambda x: p.grad(x).mean(0), method="BFGS", options={"gtol": 1e-12}
    )
    assert p.f_star <= res.fun + 1e-12
    assert p.zeta2_star > 0 and p.sigma2_star() > 0
    assert p.sigma2_star(4) == pytest.approx(p.sigma2_star() / 4)


def test_logistic_label_skew_follows_alpha():
    skewed = logistic_regression(40, 50, 3, alpha=0.05, seed=0).labels.mean(axis=1)
    mixed = logistic_regression(40, 50, 3, alpha=100.0, seed=0).labels.mean(axis=1)
    assert skewed.std() > 0.3 > 0.1 > mixed.std()


@pytest.mark.parametrize(
    "A, b, sigma2",
    [
        (np.array([[[1.0, 2.0], [0.0, 1.0]]]), np.zeros((1, 2)), 1.0),  # not symmetric
        (np.array([[[1.0, 0.0], [0.0, -1.0]]]), np.zeros((1, 2)), 1.0),  # not PSD
        (np.array([[1.0, 0.0], [1.0, 0.0]]), np.zeros((2, 2)), 1.0),  # singular mean
        (np.ones((2, 3)), np.zeros((2, 2)), 1.0),  # shape mismatch
        (np.ones((2, 2)), np.zeros((2, 2)), -1.0),  # negative sigma2
        (np.array([[np.nan, 1.0]]), np.zeros((1, 2)), 1.0),  # NaN
    ],
)
def test_quadratic_rejects_bad_input(A, b, sigma2):
    with pytest.raises(TheorylabError):
        QuadraticProblem(A, b, sigma2)


def test_bad_factory_arguments():
    with pytest.raises(TheorylabError):
        heterogeneous_quadratic(4, 3, L=0.1, mu=1.0)
    with pytest.raises(TheorylabError):
        heterogeneous_quadratic(4, 1, L=1.0, mu=0.1, shared_hessian=True)
    with pytest.raises(TheorylabError):
        heterogeneous_quadratic(4, 1, L=1.0, mu=0.1)  # d = 1 cannot be PSD with kappa 10
    with pytest.raises(TypeError):
        heterogeneous_quadratic(4, 3, seed="a")
    with pytest.raises(TheorylabError):
        LogisticProblem(np.zeros((2, 3, 2)), np.full((2, 3), 2.0), reg=0.1)
    with pytest.raises(TheorylabError):
        logistic_regression(2, 5, 2, alpha=0.0)
    p = heterogeneous_quadratic(3, 2, seed=0)
    with pytest.raises(TheorylabError):
        p.grad(np.zeros(5))
    with pytest.raises(TypeError):
        p.stochastic_grad(np.zeros(2), 0)


# ---------------------------------------------------------------------------------------------
# Diagonal problems stay (n, d): constants in O(n d), dense Hessians only on request


def test_diagonal_problem_keeps_n_by_d_and_matches_dense_brute_force():
    p = heterogeneous_quadratic(7, 5, L=3.0, mu=0.2, zeta2=2.0, seed=11)
    assert p.hessian_diagonal.shape == (7, 5)
    consts = (p.L, p.mu, p.mu_local, p.zeta2_star, p.zeta2_ball(0.5), p.f_star)
    assert p._A is None and p._mean_hessian is None  # nothing dense was built
    # brute force on the dense matrices, computed independently here
    A = np.stack([np.diag(h) for h in p.hessian_diagonal])
    Abar = A.mean(axis=0)
    x_star = np.linalg.solve(Abar, np.einsum("nij,nj->i", A, p.b) / 7)
    assert np.allclose(p.x_star, x_star, rtol=1e-13, atol=1e-13)
    assert consts[0] == pytest.approx(np.linalg.eigvalsh(A).max(), rel=1e-14)
    assert consts[1] == pytest.approx(np.linalg.eigvalsh(Abar)[0], rel=1e-14)
    g = np.einsum("nij,nj->ni", A, x_star - p.b)
    assert consts[3] == pytest.approx(np.mean(np.sum(g**2, axis=1)), rel=1e-12)
    # the lazily built dense views are the same matrices
    assert np.array_equal(p.A, A) and np.allclose(p.mean_hessian, Abar, rtol=0, atol=1e-15)
    # zeta2_ball (diagonal path) equals that of the rotated problem R A_i R^T, R b_i, which
    # takes the dense path (eigh of M); every constant is rotation invariant
    R = np.linalg.qr(np.random.default_rng(0).standard_normal((5, 5)))[0]
    q = QuadraticProblem(np.einsum("ij,njk,lk->nil", R, A, R), p.b @ R.T, p.sigma2)
    assert q.hessian_diagonal is None
    assert q.zeta2_ball(0.5) == pytest.approx(consts[4], rel=1e-9)
    assert q.zeta2_star == pytest.approx(consts[3], rel=1e-12)
    assert q.mu == pytest.approx(consts[1], rel=1e-12)


def test_grad_star_is_cached_and_read_only():
    p = heterogeneous_quadratic(4, 3, seed=0)
    g = p.grad_star
    assert g is p.grad_star and not g.flags.writeable
    assert np.allclose(g.mean(axis=0), 0.0, atol=1e-12)


def test_diagonal_problem_at_large_d_never_allocates_n_d_d():
    # n d^2 float64 here would be 8 GB; the (n, d) problem needs 2 MB
    p = heterogeneous_quadratic(16, 10_000, L=1.0, mu=0.01, zeta2=1.0, seed=0)
    assert p.L == pytest.approx(1.0, rel=1e-12) and p.mu == pytest.approx(0.01, rel=1e-12)
    assert p.zeta2_star == pytest.approx(1.0, rel=1e-12)
    assert p.zeta2_ball(1.0) >= p.zeta2_star
    assert p.grad(p.x_star).shape == (16, 10_000)
    assert p._A is None
