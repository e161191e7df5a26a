"""Exact predictions of the families declared on the engine vs direct numpy Monte Carlo of the
papers' update rules (in x-space, independent of the declarations), closed forms and limits.

Monte Carlo checks: at each of m checkpoints |mean - exact| <= z * se with
z = Phi^-1(1 - alpha/(2 m)), alpha = 1e-4 per test (Bonferroni): false-failure probability
<= 1e-4 per test (fixed seeds make each run deterministic)."""

import warnings

import numpy as np
import pytest
from scipy.stats import norm

from theorylab.errors import TheorylabWarning
from theorylab.exact import exact_dsgd, exact_psgd
from theorylab.exact.delay import (
    delay_companion,
    delayed_sgd_stability_limit,
    exact_delayed_sgd,
)
from theorylab.exact.local import exact_local_sgd, exact_scaffold
from theorylab.exact.tracking import exact_diffusion, exact_gradient_tracking
from theorylab.problems import heterogeneous_quadratic

ALPHA = 1e-4


def ring(n):
    W = np.eye(n) / 3
    for i in range(n):
        W[i, (i + 1) % n] += 1 / 3
        W[i, (i - 1) % n] += 1 / 3
    return W


def check_mc(samples, exact, rec):
    """samples: (len(rec), R) per-replica values; exact: the prediction at rec."""
    samples = np.asarray(samples)
    mean = samples.mean(axis=1)
    se = samples.std(axis=1, ddof=1) / np.sqrt(samples.shape[1])
    z = norm.ppf(1 - ALPHA / (2 * len(rec)))
    ok = np.abs(mean - exact) <= z * se + 1e-12 * np.abs(exact)
    assert ok.all(), (mean, exact, se)


def grads(p, X, rng):
    """Stochastic gradients of every node at X (R, n, d)."""
    G = np.einsum("nij,rnj->rni", p.A, X - p.b)
    return G + rng.standard_normal(G.shape) * np.sqrt(p.sigma2 / p.d)


def metrics(p, X):
    return np.mean(np.sum((X - p.x_star) ** 2, axis=2), axis=1)


@pytest.fixture(params=[True, False], ids=["diagonal", "dense"])
def problem(request):
    return heterogeneous_quadratic(4, 2, L=1.0, mu=0.3, zeta2=1.0, sigma2=0.8, seed=3,
                                   diagonal=request.param)  # fmt: skip


# ---- gradient tracking and exact diffusion ---------------------------------------------------
def simulate_gt(p, Ws, gamma, steps, x0, form, R, seed, rec):
    rng = np.random.default_rng(seed)
    X = np.broadcast_to(x0, (R, p.n, p.d)).copy()
    G = grads(p, X, rng)
    Y = G.copy()
    out = []
    for k in range(steps + 1):
        if k in rec:
            out.append(metrics(p, X))
        W = Ws[k % len(Ws)]
        if form == "atc":
            Xn = np.einsum("ij,rjd->rid", W, X - gamma * Y)
            Gn = grads(p, Xn, rng)
            Y = np.einsum("ij,rjd->rid", W, Y + Gn - G)
        else:
            Xn = np.einsum("ij,rjd->rid", W, X) - gamma * Y
            Gn = grads(p, Xn, rng)
            Y = np.einsum("ij,rjd->rid", W, Y) + Gn - G
        X, G = Xn, Gn
    return out


@pytest.mark.parametrize("form", ["atc", "cta"])
def test_gradient_tracking_matches_monte_carlo(problem, form):
    W = ring(4)
    W2 = 0.5 * (np.eye(4) + np.roll(np.eye(4), 1, axis=0))
    x0 = np.random.default_rng(0).standard_normal((4, 2))
    rec = [0, 1, 3, 10, 30]
    for Ws in ([W], [W, W2]):
        pred = exact_gradient_tracking(problem, Ws, 0.15, 30, x0, form=form, record=rec)
        mc = simulate_gt(problem, Ws, 0.15, 30, x0, form, 4000, 11, rec)
        check_mc(mc, pred.error, rec)


def test_exact_diffusion_matches_monte_carlo(problem):
    x0 = np.random.default_rng(1).standard_normal((4, 2))
    rec = [0, 1, 2, 10, 30]
    W = ring(4)
    Wb = 0.5 * (np.eye(4) + W)
    rng = np.random.default_rng(5)
    R = 4000
    X = np.broadcast_to(x0, (R, 4, 2)).copy()
    Psi = X.copy()
    mc = []
    for k in range(31):
        if k in rec:
            mc.append(metrics(problem, X))
        Psi_new = X - 0.2 * grads(problem, X, rng)
        Phi = Psi_new + X - Psi
        X, Psi = np.einsum("ij,rjd->rid", Wb, Phi), Psi_new
    check_mc(mc, exact_diffusion(problem, W, 0.2, 30, x0, record=rec).error, rec)


def test_no_zeta2_floor_without_noise():
    """sigma2 = 0, heterogeneous data: GT and exact diffusion reach x* exactly; DSGD keeps a
    floor (and its curve converges to that floor, not to 0)."""
    p = heterogeneous_quadratic(6, 3, L=1.0, mu=0.2, zeta2=3.0, sigma2=0.0, seed=2)
    W, x0 = ring(6), np.ones((6, 3))
    rec = [0, 2000]
    for pred in (
        exact_gradient_tracking(p, W, 0.2, 2000, x0, form="atc", record=rec),
        exact_gradient_tracking(p, W, 0.2, 2000, x0, form="cta", record=rec),
        exact_diffusion(p, W, 0.3, 2000, x0, record=rec),
    ):
        assert pred.steady_state["error"] < 1e-25
        assert pred.error[-1] < 1e-20
    dsgd = exact_dsgd(p, W, 0.2, 2000, x0, record=rec)
    assert dsgd.steady_state["error"] > 1e-3
    assert dsgd.error[-1] == pytest.approx(dsgd.steady_state["error"], rel=1e-8)


def test_conserved_steady_state_is_the_limit():
    """With noise the steady state (solved in the complement of the conserved direction) is the
    limit of the exact curve; a plain Lyapunov solve would see eigenvalue 1."""
    p = heterogeneous_quadratic(5, 2, L=1.0, mu=0.3, zeta2=1.0, sigma2=0.6, seed=4)
    W, x0 = ring(5), np.ones((5, 2))
    for pred in (
        exact_gradient_tracking(p, W, 0.2, 3000, x0, record=[0, 3000]),
        exact_diffusion(p, W, 0.3, 3000, x0, record=[0, 3000]),
    ):
        for key in ("error", "consensus", "avg_error"):
            got = getattr(pred, key)[-1]
            assert got == pytest.approx(pred.steady_state[key], rel=1e-9)


# ---- local SGD / FedAvg / SCAFFOLD -----------------------------------------------------------
def simulate_fedavg(p, gamma, tau, steps, x0, eta_g, S, R, seed, rec, scaffold=False):
    rng = np.random.default_rng(seed)
    n = p.n
    xs = np.broadcast_to(x0, (R, p.d)).copy()
    Y = np.broadcast_to(x0, (R, n, p.d)).copy()
    ci = np.zeros((R, n, p.d))
    c = np.zeros((R, p.d))
    out = []
    for k in range(steps + 1):
        if k in rec:
            out.append(metrics(p, Y))
        if k == steps:
            break
        g = grads(p, Y, rng)
        if scaffold:
            g = g - ci + c[:, None, :]
        Y = Y - gamma * g
        if (k + 1) % tau == 0:
            if scaffold:
                ci_new = ci - c[:, None, :] + (xs[:, None, :] - Y) / (tau * gamma)
                c = c + np.mean(ci_new - ci, axis=1)
                ci = ci_new
                xs = xs + eta_g * np.mean(Y - xs[:, None, :], axis=1)
            else:
                mask = np.zeros((R, n))
                for r in range(R):
                    mask[r, rng.choice(n, S, replace=False)] = 1.0 / S
                xs = xs + eta_g * np.einsum("rn,rnd->rd", mask, Y - xs[:, None, :])
            Y = np.broadcast_to(xs[:, None, :], Y.shape).copy()
    return out


@pytest.mark.parametrize("tau,eta_g,S", [(3, 1.0, 4), (2, 0.7, 2), (3, 1.3, 1)])
def test_local_sgd_matches_monte_carlo(problem, tau, eta_g, S):
    x0 = np.array([1.5, -1.0])
    rec = [0, 1, tau, 2 * tau + 1, 12]
    pred = exact_local_sgd(problem, 0.2, tau, 12, x0, eta_g=eta_g, participation=S, record=rec)
    mc = simulate_fedavg(problem, 0.2, tau, 12, x0, eta_g, S, 4000, 7, rec)
    check_mc(mc, pred.error, rec)


def test_scaffold_matches_monte_carlo(problem):
    x0 = np.array([1.5, -1.0])
    rec = [0, 1, 3, 7, 15]
    pred = exact_scaffold(problem, 0.15, 3, 15, x0, eta_g=0.9, record=rec)
    mc = simulate_fedavg(problem, 0.15, 3, 15, x0, 0.9, 4, 4000, 8, rec, scaffold=True)
    check_mc(mc, pred.error, rec)


def test_local_sgd_tau1_is_psgd_and_full_participation_limit():
    p = heterogeneous_quadratic(5, 4, L=1.0, mu=0.2, zeta2=2.0, sigma2=1.3, seed=3)
    x0 = np.linspace(-1, 1, 4)
    a = exact_local_sgd(p, 0.3, 1, 60, x0)
    b = exact_psgd(p, 0.3, 60, x0)
    assert np.allclose(a.error, b.error, rtol=1e-12, atol=0)
    assert a.steady_state["error"] == pytest.approx(b.steady_state["error"], rel=1e-12)
    full = exact_local_sgd(p, 0.1, 4, 40, x0, eta_g=0.8)
    same = exact_local_sgd(p, 0.1, 4, 40, x0, eta_g=0.8, participation=5)
    assert np.allclose(full.error, same.error, rtol=1e-12, atol=0)
    fewer = exact_local_sgd(p, 0.1, 4, 40, x0, eta_g=0.8, participation=2)
    assert fewer.steady_state["error"] > full.steady_state["error"]  # sampling variance
    assert fewer.error[-1] > full.error[-1]


def test_floor_grows_with_tau_and_scaffold_removes_zeta2_floor():
    p = heterogeneous_quadratic(4, 3, L=1.0, mu=0.2, zeta2=2.0, sigma2=0.0, seed=5)
    x0 = np.ones(3)
    floors = [exact_local_sgd(p, 0.1, t, 0, x0).steady_state["error"] for t in (1, 2, 4, 8)]
    assert floors[0] < 1e-25  # tau = 1: PSGD, no floor without noise
    assert all(b > a for a, b in zip(floors[1:], floors[2:]))
    assert floors[1] > 1e-8
    sc = exact_scaffold(p, 0.1, 8, 4000, x0, record=[0, 4000])
    assert sc.steady_state["error"] < 1e-25 and sc.error[-1] < 1e-20


# ---- fixed-delay SGD -------------------------------------------------------------------------
def test_delayed_sgd_matches_monte_carlo(problem):
    x0 = np.array([1.5, -1.0])
    rec = [0, 1, 2, 5, 25]
    tau, gamma, R = 2, 0.3, 6000
    rng = np.random.default_rng(9)
    hist = [np.broadcast_to(x0, (R, problem.d)).copy()] * (tau + 1)  # x_{k-tau..k}
    mc = []
    for k in range(26):
        x = hist[-1]
        if k in rec:
            mc.append(np.sum((x - problem.x_star) ** 2, axis=1))
        old = np.broadcast_to(hist[0][:, None, :], (R, problem.n, problem.d))
        g = grads(problem, old, rng).mean(axis=1)
        hist = hist[1:] + [x - gamma * g]
    check_mc(mc, exact_delayed_sgd(problem, gamma, tau, 25, x0, record=rec).error, rec)


def test_delayed_sgd_tau0_is_psgd():
    p = heterogeneous_quadratic(5, 4, L=1.0, mu=0.2, zeta2=2.0, sigma2=1.3, seed=3)
    x0 = np.linspace(-1, 1, 4)
    a, b = exact_delayed_sgd(p, 0.3, 0, 50, x0), exact_psgd(p, 0.3, 50, x0)
    assert np.allclose(a.error, b.error, rtol=1e-12, atol=0)
    assert a.steady_state["error"] == pytest.approx(b.steady_state["error"], rel=1e-12)


@pytest.mark.parametrize("tau", [0, 1, 2, 3, 5, 10])
def test_delay_stability_limit_vs_bisection(tau):
    """Closed form vs bisection on the companion matrix's spectral radius (h = 1)."""
    lo, hi = 0.0, 2.5
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if np.max(np.abs(np.linalg.eigvals(delay_companion(mid, tau)))) < 1.0:
            lo = mid
        else:
            hi = mid
    assert delayed_sgd_stability_limit(1.0, tau) == pytest.approx(lo, abs=1e-7)


def test_delayed_sgd_steady_state_across_the_limit():
    p = heterogeneous_quadratic(3, 2, L=2.0, mu=0.5, zeta2=1.0, sigma2=1.0, seed=0)
    h_max = np.linalg.eigvalsh(p.mean_hessian).max()
    g_max = delayed_sgd_stability_limit(h_max, 3)
    below = exact_delayed_sgd(p, 0.99 * g_max, 3, 20000, np.zeros(2), record=[0, 20000])
    assert np.isfinite(below.steady_state["error"])
    assert below.error[-1] == pytest.approx(below.steady_state["error"], rel=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TheorylabWarning)
        above = exact_delayed_sgd(p, 1.01 * g_max, 3, 10, np.zeros(2))
    assert np.isinf(above.steady_state["error"])


# ---- push-sum --------------------------------------------------------------------------------
def directed_ring_push(n):
    """Column-stochastic: node j keeps 1/2 and pushes 1/2 to j+1; node 0 also to 2."""
    P = np.zeros((n, n))
    for j in range(n):
        P[j, j] += 0.5
        P[(j + 1) % n, j] += 0.5
    P[:, 0] = 0.0
    P[0, 0], P[1, 0], P[2, 0] = 1 / 3, 1 / 3, 1 / 3
    return P


def test_push_sum_matches_monte_carlo(problem):
    from theorylab.exact.pushsum import exact_push_sum_sgd

    P = directed_ring_push(4)
    x0 = np.random.default_rng(3).standard_normal((4, 2))
    rec = [0, 1, 4, 12, 30]
    rng = np.random.default_rng(13)
    R = 4000
    X = np.broadcast_to(x0, (R, 4, 2)).copy()
    w = np.ones(4)
    mc = []
    for k in range(31):
        Z = X / w[None, :, None]
        if k in rec:
            mc.append(metrics(problem, Z))
        X = np.einsum("ij,rjd->rid", P, X - 0.1 * grads(problem, Z, rng))
        w = P @ w
    check_mc(mc, exact_push_sum_sgd(problem, P, 0.1, 30, x0, record=rec).error, rec)


def test_push_sum_with_doubly_stochastic_is_dsgd_and_steady_state_is_limit():
    from theorylab.exact.pushsum import exact_push_sum_sgd

    p = heterogeneous_quadratic(5, 3, L=1.0, mu=0.3, zeta2=1.0, sigma2=0.6, seed=4)
    x0 = np.ones((5, 3))
    a = exact_push_sum_sgd(p, ring(5), 0.2, 40, x0)
    b = exact_dsgd(p, ring(5), 0.2, 40, x0, form="atc")
    assert np.allclose(a.error, b.error, rtol=1e-12)
    assert a.steady_state["error"] == pytest.approx(b.steady_state["error"], rel=1e-10)
    P = directed_ring_push(5)
    c = exact_push_sum_sgd(p, P, 0.2, 3000, x0, record=[0, 3000])
    assert c.error[-1] == pytest.approx(c.steady_state["error"], rel=1e-9)
