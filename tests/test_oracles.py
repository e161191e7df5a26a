"""Gradient oracles: exact gradients against theorylab.problems, noise law, per-node draws."""

from __future__ import annotations

import doctest
import math

import numpy as np
import pytest
import torch

import verify.oracles as oracles
from theorylab.errors import TheorylabError
from theorylab.problems import heterogeneous_quadratic, logistic_regression
from verify.comm import GradientOracle
from verify.oracles import LogisticOracle, QuadraticOracle
from verify.seeding import node_generators


def test_doctest_examples_run():
    assert doctest.testmod(oracles, raise_on_error=True).attempted > 0


def test_protocol():
    p = heterogeneous_quadratic(3, 2, seed=0)
    assert isinstance(QuadraticOracle(p), GradientOracle)
    assert isinstance(
        LogisticOracle(logistic_regression(2, 5, 3, seed=0, tol=1e-9), 2), GradientOracle
    )


@pytest.mark.parametrize("diagonal", [True, False])
def test_noise_free_quadratic_gradient_equals_problem_gradient(diagonal):
    n, d, R = 4, 5, 3
    p = heterogeneous_quadratic(n, d, sigma2=0.0, diagonal=diagonal, seed=1)
    oracle = QuadraticOracle(p)
    assert (oracle.h is not None) == diagonal
    np.testing.assert_allclose(oracle.x_star.numpy(), p.x_star, rtol=0, atol=1e-12)
    X = np.random.default_rng(0).standard_normal((n, R, d))
    g = oracle.grad(torch.from_numpy(X), torch.arange(n), [None] * n).numpy()
    for r in range(R):
        np.testing.assert_allclose(g[:, r], p.grad(X[:, r]), rtol=1e-13, atol=1e-13)
    # a subset of nodes, in any order, sees its own A_i and b_i
    sub = oracle.grad(torch.from_numpy(X[[2, 0]]), torch.tensor([2, 0]), [None, None]).numpy()
    np.testing.assert_allclose(sub, g[[2, 0]], rtol=0, atol=1e-15)


def test_noise_uses_the_documented_draw_order_and_each_node_its_own_generator():
    n, d, R, sigma2 = 3, 4, 2, 2.5
    p = heterogeneous_quadratic(n, d, sigma2=sigma2, seed=2)
    oracle = QuadraticOracle(p)
    x = torch.zeros(n, R, d, dtype=torch.float64)
    g = oracle.grad(x, torch.arange(n), node_generators(7, "noise", range(n)))
    clean = QuadraticOracle(heterogeneous_quadratic(n, d, sigma2=0.0, seed=2))
    g0 = clean.grad(x, torch.arange(n), [None] * n)
    for i, gen in enumerate(node_generators(7, "noise", range(n))):
        noise = torch.randn((R, d), generator=gen, dtype=torch.float64) * math.sqrt(sigma2 / d)
        torch.testing.assert_close(g[i], g0[i] + noise, rtol=0, atol=1e-15)
        # node i alone (a distributed rank) draws exactly the same numbers
        alone = oracle.grad(x[i : i + 1], torch.tensor([i]), node_generators(7, "noise", [i]))
        assert torch.equal(alone[0], g[i])


def test_noise_has_mean_zero_and_second_moment_sigma2():
    # ||xi||^2 = (sigma2/d) chi2_d: mean sigma2, variance 2 sigma2^2 / d. With N = 20000 draws
    # the sample mean's std is sigma2 sqrt(2/(d N)); a 5-std band fails with probability
    # < 1e-6 (CLT). Each coordinate's mean has std sqrt(sigma2/(d N)); 5 std over d = 5
    # coordinates fails with probability < 5e-6. Seeds are fixed, so the test is deterministic.
    d, N, sigma2 = 5, 20000, 3.0
    p = heterogeneous_quadratic(2, d, sigma2=sigma2, seed=3)
    oracle = QuadraticOracle(p)
    x = torch.from_numpy(np.broadcast_to(p.b[0], (1, N, d)).copy())  # grad f_0 = 0 here
    xi = oracle.grad(x, torch.tensor([0]), node_generators(11, "noise", [0]))[0]
    sq = (xi**2).sum(dim=1)
    assert abs(float(sq.mean()) - sigma2) < 5 * sigma2 * math.sqrt(2 / (d * N))
    assert float(xi.mean(dim=0).abs().max()) < 5 * math.sqrt(sigma2 / (d * N))


def test_zero_noise_draws_nothing():
    p = heterogeneous_quadratic(2, 3, sigma2=0.0, seed=0)
    gens = node_generators(1, "noise", range(2))
    before = [g.get_state() for g in gens]
    QuadraticOracle(p).grad(torch.zeros(2, 1, 3, dtype=torch.float64), torch.arange(2), gens)
    assert all(torch.equal(a, g.get_state()) for a, g in zip(before, gens))


def test_logistic_full_gradient_equals_problem_gradient():
    p = logistic_regression(3, 20, 4, reg=0.1, seed=0)
    oracle = LogisticOracle(p)
    np.testing.assert_allclose(oracle.x_star.numpy(), p.x_star)
    x = np.random.default_rng(1).standard_normal(4)
    X = torch.from_numpy(np.broadcast_to(x, (3, 2, 4)).copy())
    g = oracle.grad(X, torch.arange(3), [None] * 3).numpy()
    np.testing.assert_allclose(g[:, 0], p.grad(x), rtol=1e-12, atol=1e-14)
    # at x* the full local gradients average to ~0
    Xs = torch.from_numpy(np.broadcast_to(p.x_star, (3, 1, 4)).copy())
    gs = oracle.grad(Xs, torch.arange(3), [None] * 3)
    assert float(gs.mean(dim=0).norm()) < 1e-10


def test_logistic_minibatch_gradient_is_unbiased():
    # R = 4000 independent minibatches of B = 2 with replacement: the mean of each coordinate is
    # within 5 estimated standard errors of the full gradient (false failure < 6e-7 per
    # coordinate by the CLT; 12 coordinates -> < 1e-5). Fixed seeds: deterministic.
    p = logistic_regression(3, 10, 4, reg=0.05, seed=4)
    R = 4000
    oracle = LogisticOracle(p, batch_size=2)
    x = np.random.default_rng(2).standard_normal(4)
    X = torch.from_numpy(np.broadcast_to(x, (3, R, 4)).copy())
    g = oracle.grad(X, torch.arange(3), node_generators(3, "noise", range(3)))
    full = p.grad(x)
    mean, se = g.mean(dim=1).numpy(), (g.std(dim=1) / math.sqrt(R)).numpy()
    assert np.all(np.abs(mean - full) < 5 * se + 1e-12)
    # node i alone draws the same minibatches
    alone = oracle.grad(X[1:2], torch.tensor([1]), node_generators(3, "noise", [1]))
    assert torch.equal(alone[0], g[1])


def test_invalid_inputs():
    p = heterogeneous_quadratic(2, 3, seed=0)
    oracle = QuadraticOracle(p)
    with pytest.raises(TheorylabError, match="d = 3"):
        oracle.grad(torch.zeros(2, 1, 4, dtype=torch.float64), torch.arange(2), [None] * 2)
    with pytest.raises(TypeError, match="dtype"):
        oracle.grad(torch.zeros(2, 1, 3), torch.arange(2), [None] * 2)
    with pytest.raises(TheorylabError, match="generator"):
        oracle.grad(torch.zeros(2, 1, 3, dtype=torch.float64), torch.arange(2), [None])
    with pytest.raises(TheorylabError, match="node ids"):
        oracle.grad(torch.zeros(1, 1, 3, dtype=torch.float64), torch.tensor([5]), [None])
    with pytest.raises(TheorylabError, match="batch_size"):
        LogisticOracle(logistic_regression(2, 5, 3, seed=0, tol=1e-9), batch_size=0)
