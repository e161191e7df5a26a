"""Exact second-moment predictions: vs Monte Carlo, vs the dense solver, vs published numbers."""

import json
import warnings

import numpy as np
import pytest
from graphs import lazy_ring, one_peer_exponential
from scipy.stats import norm

from theorylab.errors import TheorylabError, TheorylabWarning
from theorylab.exact import exact_dsgd, exact_gossip, exact_psgd, steady_state_dsgd
from theorylab.problems import QuadraticProblem, heterogeneous_quadratic


def simulate_dsgd(p, Ws, gamma, steps, x0, form, replicas, seed, record):
    """Independent Monte Carlo of DSGD: returns per-replica metrics at the record steps."""
    rng = np.random.default_rng(seed)
    X = np.broadcast_to(x0, (replicas, p.n, p.d)).copy()
    out = {"error": [], "consensus": [], "avg_error": []}
    for k in range(steps + 1):
        if k in record:
            xbar = X.mean(axis=1)
            out["error"].append(np.mean(np.sum((X - p.x_star) ** 2, axis=2), axis=1))
            out["consensus"].append(np.mean(np.sum((X - xbar[:, None]) ** 2, axis=2), axis=1))
            out["avg_error"].append(np.sum((xbar - p.x_star) ** 2, axis=1))
        W = Ws[k % len(Ws)]
        G = np.einsum("nij,rnj->rni", p.A, X - p.b)
        G += rng.standard_normal(G.shape) * np.sqrt(p.sigma2 / p.d)
        if form == "atc":
            X = np.einsum("ij,rjd->rid", W, X - gamma * G)
        else:
            X = np.einsum("ij,rjd->rid", W, X) - gamma * G
    return {k: np.array(v) for k, v in out.items()}


# Monte Carlo vs exact. Each comparison is a two-sided z-test of a sample mean over R = 3000
# independent replicas (CLT normal approximation) at z = 4.5: per-comparison false-failure
# probability 6.8e-6; 4 configurations x 3 metrics x 4 checkpoints = 48 comparisons, so the
# family-wise false-failure probability is < 3.3e-4. Seeds are fixed, so the test is
# deterministic.
Z = 4.5
MC_CASES = [
    ("atc", False, "static"),
    ("cta", False, "static"),
    ("atc", True, "static"),
    ("cta", True, "schedule"),
]


@pytest.mark.parametrize("form, dense_hessians, topology", MC_CASES)
def test_exact_matches_monte_carlo(form, dense_hessians, topology):
    assert 2 * norm.sf(Z) * 48 < 3.3e-4
    n, d = 6, 3
    p = heterogeneous_quadratic(
        n, d, L=1.0, mu=0.2, zeta2=2.0, sigma2=1.5, diagonal=not dense_hessians, seed=11
    )
    Ws = [lazy_ring(n)] if topology == "static" else one_peer_exponential(8)[:2] + [lazy_ring(8)]
    if topology == "schedule":
        p = heterogeneous_quadratic(8, d, L=1.0, mu=0.2, zeta2=2.0, sigma2=1.5, seed=12)
    x0 = np.random.default_rng(3).standard_normal((p.n, d)) * 2
    record = [0, 3, 15, 60]
    pred = exact_dsgd(
        p, Ws if topology == "schedule" else Ws[0], 0.15, 60, x0, form=form, record=record
    )
    sim = simulate_dsgd(p, Ws, 0.15, 60, x0, form, replicas=3000, seed=7, record=record)
    for metric in ("error", "consensus", "avg_error"):
        exact = getattr(pred, metric)
        samples = sim[metric]
        mean = samples.mean(axis=1)
        se = samples.std(axis=1, ddof=1) / np.sqrt(samples.shape[1])
        tol = Z * se + 1e-12 * (1 + np.abs(exact))  # step 0 is deterministic (se = 0)
        assert np.all(np.abs(mean - exact) <= tol), (metric, mean, exact, se)


@pytest.mark.parametrize("form", ["atc", "cta"])
@pytest.mark.parametrize("kind", ["diagonal", "shared_dense", "commuting"])
def test_structured_solver_agrees_with_dense(form, kind):
    n, d = 7, 3
    if kind == "diagonal":
        p = heterogeneous_quadratic(n, d, L=1.5, mu=0.1, zeta2=3.0, sigma2=0.8, seed=2)
    elif kind == "shared_dense":
        p = heterogeneous_quadratic(
            n, d, L=1.5, mu=0.1, zeta2=3.0, sigma2=0.8, diagonal=False, shared_hessian=True, seed=2
        )
    else:  # different but commuting dense Hessians: a rotated diagonal problem
        base = heterogeneous_quadratic(n, d, L=1.5, mu=0.1, zeta2=3.0, sigma2=0.8, seed=2)
        Q = np.linalg.qr(np.random.default_rng(0).standard_normal((d, d)))[0]
        A = np.einsum("ik,nk,jk->nij", Q, base.hessian_diagonal, Q)
        p = QuadraticProblem(A, base.b @ Q.T, 0.8)
        assert p.hessian_diagonal is None
    W = lazy_ring(n, 0.4)
    x0 = np.random.default_rng(1).standard_normal((n, d))
    fast = exact_dsgd(p, W, 0.2, 80, x0, form=form)
    dense = exact_dsgd(p, W, 0.2, 80, x0, form=form, method="dense")
    assert fast.method == "spectral" and dense.method == "dense"
    for metric in ("error", "consensus", "avg_error"):
        assert np.allclose(getattr(fast, metric), getattr(dense, metric), rtol=1e-10, atol=1e-12)
        assert fast.steady_state[metric] == pytest.approx(
            dense.steady_state[metric], rel=1e-10, abs=1e-13
        )


def test_blockwise_schedule_agrees_with_dense():
    p = heterogeneous_quadratic(8, 2, L=1.0, mu=0.3, zeta2=1.0, sigma2=1.0, seed=5)
    sched = one_peer_exponential(8)
    x0 = np.random.default_rng(2).standard_normal((8, 2))
    for form in ("atc", "cta"):
        a = exact_dsgd(p, sched, 0.3, 30, x0, form=form)
        b = exact_dsgd(p, sched, 0.3, 30, x0, form=form, method="dense")
        assert a.method == "blockwise"
        assert np.allclose(a.error, b.error, rtol=1e-10, atol=1e-12)
        assert np.allclose(a.consensus, b.consensus, rtol=1e-10, atol=1e-12)
        assert a.steady_state["error"] == pytest.approx(b.steady_state["error"], rel=1e-10)


def test_atc_large_step_falls_back_to_blockwise():
    # gamma h >= 1 for some node: S = I - gamma D is not positive, so no symmetric similarity
    p = heterogeneous_quadratic(5, 2, L=1.0, mu=0.5, zeta2=1.0, sigma2=1.0, seed=0)
    x0 = np.zeros((5, 2))
    a = exact_dsgd(p, lazy_ring(5), 1.05, 20, x0)
    b = exact_dsgd(p, lazy_ring(5), 1.05, 20, x0, method="dense")
    assert "blockwise" in a.method
    assert np.allclose(a.error, b.error, rtol=1e-10)


def test_reproduces_rates_md_16_node_ring_numbers():
    # rates.md §3e: 16-node ring, self-weight 1/3, gamma = 0.05, h = 1, sigma2 = 1. The setting's
    # unstated centres are b_i = 2 N(0, I_20) from default_rng(0) (zeta2* = 76.6): this
    # reproduces all three published digits (Xi ATC 2.4497, AWC 2.8633, xbar 0.00160).
    n, d = 16, 20
    b = 2 * np.random.default_rng(0).standard_normal((n, d))
    p = QuadraticProblem(np.ones((n, d)), b, sigma2=1.0)
    atc = steady_state_dsgd(p, lazy_ring(n), 0.05, form="atc")
    cta = steady_state_dsgd(p, lazy_ring(n), 0.05, form="cta")
    assert round(atc["consensus"], 4) == 2.4497
    assert round(cta["consensus"], 4) == 2.8633
    assert round(atc["avg_error"], 5) == 0.00160 == round(cta["avg_error"], 5)
    # identical Hessians: xbar follows centralized SGD exactly (rates.md §10.1)
    assert atc["avg_error"] == pytest.approx(0.05 / (16 * (2 - 0.05)), rel=1e-12)


def test_dsgd_spectral_formula_of_rates_md():
    # Xi_inf = (1/n) sum_{j>=2} (m_j + v_j) with the §3e table, for a random heterogeneous b
    n, d, gamma, h, s2 = 10, 4, 0.1, 0.7, 0.9
    b = np.random.default_rng(1).standard_normal((n, d))
    p = QuadraticProblem(np.full((n, d), h), b, sigma2=s2)
    W = lazy_ring(n, 0.5)
    lam, U = np.linalg.eigh(W)
    lam, U = lam[:-1], U[:, :-1]  # drop the consensus mode (eigenvalue 1)
    ghat2 = np.sum((U.T @ p.grad_star) ** 2, axis=1)
    atc = (
        np.sum(
            lam**2 * gamma**2 * ghat2 / (1 - lam * (1 - gamma * h)) ** 2
            + lam**2 * gamma**2 * s2 / (1 - lam**2 * (1 - gamma * h) ** 2)
        )
        / n
    )
    cta = (
        np.sum(
            gamma**2 * ghat2 / (1 - lam + gamma * h) ** 2
            + gamma**2 * s2 / (1 - (lam - gamma * h) ** 2)
        )
        / n
    )
    assert steady_state_dsgd(p, W, gamma, "atc")["consensus"] == pytest.approx(atc, rel=1e-10)
    assert steady_state_dsgd(p, W, gamma, "cta")["consensus"] == pytest.approx(cta, rel=1e-10)


def test_psgd_floor_and_trajectory_identical_hessians():
    n, d, h, gamma, s2 = 8, 3, 2.0, 0.1, 4.0
    p = QuadraticProblem(np.full((n, d), h), np.random.default_rng(0).standard_normal((n, d)), s2)
    x0 = p.x_star + np.array([1.0, -2.0, 0.5])
    pred = exact_psgd(p, gamma, 200, x0)
    floor = gamma * s2 / (n * h * (2 - gamma * h))
    assert pred.steady_state["error"] == pytest.approx(floor, rel=1e-12)
    k = pred.steps
    r0 = 1.0 + 4.0 + 0.25
    expected = (1 - gamma * h) ** (2 * k) * r0 + floor * (1 - (1 - gamma * h) ** (2 * k))
    assert np.allclose(pred.error, expected, rtol=1e-12)
    assert np.all(pred.consensus == 0)


def test_atc_with_complete_averaging_equals_psgd():
    # W = J and equal starts: every node holds the PSGD iterate
    p = heterogeneous_quadratic(5, 3, L=1.0, mu=0.2, zeta2=2.0, sigma2=1.0, seed=3)
    x0 = np.array([1.0, 2.0, -1.0])
    dsgd = exact_dsgd(p, np.full((5, 5), 0.2), 0.3, 50, np.tile(x0, (5, 1)))
    psgd = exact_psgd(p, 0.3, 50, x0)
    assert np.allclose(dsgd.error, psgd.error, rtol=1e-10, atol=1e-14)
    assert np.allclose(dsgd.consensus, 0, atol=1e-13)
    assert dsgd.steady_state["avg_error"] == pytest.approx(psgd.steady_state["error"], rel=1e-10)


def test_steady_state_is_the_limit_of_the_trajectory():
    p = heterogeneous_quadratic(6, 2, L=1.0, mu=0.4, zeta2=1.0, sigma2=1.0, seed=1)
    pred = exact_dsgd(p, lazy_ring(6), 0.3, 3000, np.zeros((6, 2)), form="cta", record=[3000])
    for metric in ("error", "consensus", "avg_error"):
        assert getattr(pred, metric)[-1] == pytest.approx(pred.steady_state[metric], rel=1e-9)


def test_gossip_exact_spectral_and_schedule():
    n = 8
    x0 = np.random.default_rng(0).standard_normal((n, 2))
    static = exact_gossip(lazy_ring(n), x0, 25)
    stepped = exact_gossip([lazy_ring(n)], x0, 25)  # a one-matrix list takes the stepping path
    assert static.method == "spectral"
    assert np.allclose(static.consensus, stepped.consensus, rtol=1e-10, atol=1e-15)
    rho = np.linalg.norm(lazy_ring(n) - 1 / n, 2)
    assert np.all(static.consensus <= rho ** (2 * static.steps) * static.consensus[0] * (1 + 1e-12))
    # the one-peer exponential graph averages exactly after log2(n) = 3 rounds
    expo = exact_gossip(one_peer_exponential(n), x0, 6)
    assert expo.consensus[3] < 1e-28 and expo.consensus[2] > 1e-3
    assert np.allclose(expo.avg_error, 0, atol=1e-28)


def test_prediction_to_dict_is_json():
    p = heterogeneous_quadratic(4, 2, seed=0)
    d = exact_dsgd(p, lazy_ring(4), 0.1, 5, np.zeros((4, 2)), record=[0, 5]).to_dict()
    assert json.loads(json.dumps(d))["steps"] == [0, 5]


def test_unstable_step_warns_and_gives_infinite_steady_state():
    p = heterogeneous_quadratic(4, 2, L=1.0, mu=0.5, seed=0)
    with pytest.warns(TheorylabWarning):
        pred = exact_dsgd(p, lazy_ring(4), 2.5, 5, np.zeros((4, 2)))
    assert np.isinf(pred.steady_state["error"])
    with pytest.warns(TheorylabWarning):
        exact_psgd(p, 4.0, 5, np.zeros(2))


def test_bad_inputs():
    p = heterogeneous_quadratic(4, 2, seed=0)
    x0 = np.zeros((4, 2))
    bad_W = np.eye(4) * 0.5
    with pytest.raises(TheorylabError, match="doubly.stochastic"):
        exact_dsgd(p, bad_W, 0.1, 5, x0)
    with pytest.raises(TheorylabError):
        exact_dsgd(p, lazy_ring(5), 0.1, 5, x0)
    with pytest.raises(TheorylabError):
        exact_dsgd(p, lazy_ring(4), 0.1, 5, np.zeros((4, 3)))
    with pytest.raises(TheorylabError):
        exact_dsgd(p, lazy_ring(4), 0.1, 5, x0, form="push")
    with pytest.raises(TheorylabError):
        exact_dsgd(p, lazy_ring(4), 0.1, 5, x0, method="fast")
    with pytest.raises(TheorylabError):
        exact_dsgd(p, lazy_ring(4), 0.1, 5, x0, record=[0, 9])
    with pytest.raises(TheorylabError):
        exact_dsgd(p, lazy_ring(4), -0.1, 5, x0)
    with pytest.raises(TheorylabError):
        exact_dsgd(p, [], 0.1, 5, x0)
    with pytest.raises(TypeError):
        exact_dsgd("problem", lazy_ring(4), 0.1, 5, x0)
    with pytest.raises(TypeError):
        exact_dsgd(p, "ring", 0.1, 5, x0)
    dense = heterogeneous_quadratic(4, 2, diagonal=False, seed=0)
    with pytest.raises(TheorylabError, match="separable"):
        exact_dsgd(dense, lazy_ring(4), 0.1, 5, x0, method="spectral")
    with pytest.raises(TheorylabError):
        exact_dsgd(p, one_peer_exponential(4), 0.1, 5, x0, method="spectral")
    with pytest.raises(TheorylabError):
        exact_psgd(p, 0.1, 5, np.zeros(3))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        exact_gossip(lazy_ring(4), np.zeros(4), 3)


def test_psgd_exact_matches_monte_carlo():
    # z = 4.5 two-sided on 4 checkpoints of a mean over 20000 replicas: family-wise
    # false-failure probability < 4 * 6.8e-6 = 2.7e-5 (CLT normal approximation).
    p = heterogeneous_quadratic(5, 3, L=1.0, mu=0.2, zeta2=1.0, sigma2=2.0, diagonal=False, seed=4)
    x0 = p.x_star + np.array([1.0, -1.0, 2.0])
    record = [0, 2, 10, 40]
    pred = exact_psgd(p, 0.3, 40, x0, record=record)
    rng = np.random.default_rng(8)
    R = 20000
    x = np.tile(x0, (R, 1))
    errs = []
    for k in range(41):
        if k in record:
            errs.append(np.sum((x - p.x_star) ** 2, axis=1))
        g = np.einsum("ij,rj->ri", p.mean_hessian, x - p.x_star)
        noise = rng.standard_normal((R, p.n, p.d)).mean(axis=1) * np.sqrt(p.sigma2 / p.d)
        x = x - 0.3 * (g + noise)
    errs = np.array(errs)
    se = errs.std(axis=1, ddof=1) / np.sqrt(R)
    assert np.all(np.abs(errs.mean(axis=1) - pred.error) <= Z * se + 1e-12)


def test_gossip_without_mixing_warns():
    with pytest.warns(TheorylabWarning):
        pred = exact_gossip(np.eye(3), np.arange(3.0), 4)
    assert np.isinf(pred.steady_state["consensus"])
    assert np.allclose(pred.consensus, 2.0 / 3.0)
