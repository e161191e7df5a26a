"""Exact compressed-PSGD predictions: moments by enumeration, reduction to PSGD, closed forms,
diagonal vs dense solver, Monte Carlo (numpy subsets and the real RandK), stability boundary."""

import doctest
import itertools
import math
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import norm

import theorylab.exact_compressed as exact_compressed
from theorylab.compressors import RandK, get_compressor
from theorylab.errors import TheorylabError, TheorylabWarning
from theorylab.exact import _Acc, exact_psgd
from theorylab.exact_compressed import (
    _ef21_system,
    _ef_sgd_system,
    _psgd_system,
    _run_coordinate_system,
    _stein_forms,
    compressor_moments,
    exact_compressed_psgd,
    exact_ef21,
    exact_ef_sgd,
)
from theorylab.problems import QuadraticProblem, heterogeneous_quadratic


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """The real RandK on small tensors: intra-op threads only contend on a shared CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def isotropic_problem(n, d, h, spread, sigma2, seed=0):
    """A_j = h I_d for every node, heterogeneous centres b_j (zeta2_star = h^2 spread^2 ...)."""
    b = np.random.default_rng(seed).standard_normal((n, d)) * spread
    return QuadraticProblem(np.full((n, d), h), b, sigma2)


def isotropic_floor(gamma, h, n, omega, sigma2, zeta2):
    """Closed form steady state for A_j = h I and C in U(omega) (module docstring)."""
    return (
        gamma * ((1 + omega) * sigma2 + omega * zeta2) / (n * h * (2 - gamma * h * (1 + omega / n)))
    )


# ---- compressor moments ----------------------------------------------------------------------
@pytest.mark.parametrize("scaled", [True, False])
@pytest.mark.parametrize("wrap", [False, True])
def test_moments_match_enumeration_of_all_subsets(scaled, wrap):
    rng = np.random.default_rng(0)
    for d in range(1, 8):
        for k in range(1, d + 1):
            if wrap and not scaled:
                continue  # scaled() needs an unbiased inner compressor
            inner = RandK(k=k, scaled=scaled)
            C = get_compressor(f"scaled({inner.spec})") if wrap else inner
            x = rng.standard_normal(d)
            probs, vals = inner.outcomes(torch.from_numpy(x))
            probs, vals = probs.numpy(), vals.numpy()
            assert len(probs) == math.comb(d, k)
            if wrap:
                vals = vals / (d / k)
            first = probs @ vals
            second = np.einsum("s,si,sj->ij", probs, vals, vals)
            m = compressor_moments(C, d)
            assert np.allclose(first, m.alpha * x, rtol=0, atol=1e-13)
            expect = m.a * np.outer(x, x) + m.b * np.diag(x * x)
            assert np.allclose(second, expect, rtol=0, atol=1e-12), (d, k, scaled, wrap)
            if scaled and not wrap:  # U(omega): E||C(x)||^2 = (1 + omega) ||x||^2
                assert m.alpha == 1.0
                assert m.kappa == pytest.approx(C.omega(d), abs=1e-12)
                assert m.a == pytest.approx(d * (k - 1) / (k * (d - 1)) if d > 1 else 1.0)


def test_identity_moments():
    assert tuple(compressor_moments("identity", 5)) == (1.0, 1.0, 0.0)
    assert compressor_moments("identity", 5).kappa == 0.0


@pytest.mark.parametrize(
    "spec",
    [
        "qsgd",
        "top-k:k=2",
        "natural",
        "sign",
        "scaled-sign",
        "terngrad",
        "fp16",
        "bf16",
        "scaled(qsgd:s=2)",
        "powersgd",
    ],
)
def test_unsupported_compressors_raise_naming_them(spec):
    p = isotropic_problem(2, 4, 1.0, 1.0, 1.0)
    name = get_compressor(spec).spec
    with pytest.raises(TheorylabError, match="not supported") as info:
        exact_compressed_psgd(p, 0.1, 5, np.zeros(4), spec)
    assert name in str(info.value)


def test_user_subclass_of_randk_is_not_trusted():
    class MyRandK(RandK):
        pass

    with pytest.raises(TheorylabError, match="not supported"):
        compressor_moments(MyRandK(k=2), 4)


def test_bad_input():
    p = isotropic_problem(2, 4, 1.0, 1.0, 1.0)
    x0 = np.zeros(4)
    with pytest.raises(TheorylabError, match="gamma"):
        exact_compressed_psgd(p, 0.0, 5, x0, "rand-k:k=2")
    with pytest.raises(TheorylabError, match="gamma"):
        exact_compressed_psgd(p, -0.1, 5, x0, "rand-k:k=2")
    with pytest.raises(TheorylabError, match="method"):
        exact_compressed_psgd(p, 0.1, 5, x0, "rand-k:k=2", method="spectral")
    with pytest.raises(TheorylabError, match="x0"):
        exact_compressed_psgd(p, 0.1, 5, np.zeros(3), "rand-k:k=2")
    with pytest.raises(TheorylabError, match="k=5"):
        exact_compressed_psgd(p, 0.1, 5, x0, "rand-k:k=5")
    with pytest.raises(TypeError, match="compressor"):
        exact_compressed_psgd(p, 0.1, 5, x0, 3)
    with pytest.raises(TypeError, match="QuadraticProblem"):
        exact_compressed_psgd("p", 0.1, 5, x0)
    dense = heterogeneous_quadratic(3, 3, diagonal=False, seed=0)
    with pytest.raises(TheorylabError, match="diagonal"):
        exact_compressed_psgd(dense, 0.1, 5, np.zeros(3), method="diagonal")


# ---- reductions and closed forms -------------------------------------------------------------
@pytest.mark.parametrize("diagonal", [True, False])
@pytest.mark.parametrize("method", ["auto", "dense"])
def test_identity_compressor_is_exact_psgd(diagonal, method):
    p = heterogeneous_quadratic(
        5, 4, L=1.0, mu=0.2, zeta2=2.0, sigma2=1.3, diagonal=diagonal, seed=3
    )
    x0 = np.random.default_rng(1).standard_normal(4) * 2
    rec = [0, 1, 2, 10, 50, 200]
    a = exact_compressed_psgd(p, 0.3, 200, x0, "identity", record=rec, method=method)
    b = exact_psgd(p, 0.3, 200, x0, record=rec)
    assert np.allclose(a.error, b.error, rtol=1e-12, atol=0)
    assert np.allclose(a.avg_error, b.avg_error, rtol=1e-12, atol=0)
    assert np.all(a.consensus == 0)
    assert a.steady_state["error"] == pytest.approx(b.steady_state["error"], rel=1e-12)
    assert a.algorithm == "compressed_psgd"
    assert a.method == ("diagonal" if diagonal and method == "auto" else "dense")


@settings(deadline=None, max_examples=25, derandomize=True)
@given(
    n=st.integers(1, 5),
    d=st.integers(1, 9),
    kfrac=st.floats(0.0, 1.0),
    h=st.floats(0.1, 2.0),
    rel_gamma=st.floats(0.01, 0.95),
    spread=st.floats(0.0, 2.0),
    sigma2=st.floats(0.0, 2.0),
    method=st.sampled_from(["auto", "dense"]),
)
def test_isotropic_steady_state_closed_form(n, d, kfrac, h, rel_gamma, spread, sigma2, method):
    k = 1 + int(kfrac * (d - 1))
    omega = d / k - 1
    p = isotropic_problem(n, d, h, spread, sigma2, seed=n * 10 + d)
    gamma = rel_gamma * 2 / (h * (1 + omega / n))  # below the mean-square stability limit
    pred = exact_compressed_psgd(p, gamma, 0, np.zeros(d), f"rand-k:k={k}", method=method)
    expect = isotropic_floor(gamma, h, n, omega, sigma2, p.zeta2_star)
    assert pred.steady_state["error"] == pytest.approx(expect, rel=1e-9, abs=1e-14)


def test_floor_grows_with_one_plus_omega():
    """Noise-dominated (zeta2 = 0): compressed floor / PSGD floor is exactly
    (1 + omega)(2 - gamma h)/(2 - gamma h (1 + omega/n)), -> 1 + omega as gamma -> 0."""
    n, d, h = 4, 16, 1.0
    p = isotropic_problem(n, d, h, 0.0, 1.0)
    assert p.zeta2_star == 0.0
    for gamma in (1e-3, 0.05, 0.3):
        base = exact_psgd(p, gamma, 0, np.zeros(d)).steady_state["error"]
        ratios = []
        for k in (16, 8, 4, 2, 1):
            omega = d / k - 1
            floor = exact_compressed_psgd(p, gamma, 0, np.zeros(d), f"rand-k:k={k}")
            ratio = floor.steady_state["error"] / base
            expect = (1 + omega) * (2 - gamma * h) / (2 - gamma * h * (1 + omega / n))
            assert ratio == pytest.approx(expect, rel=1e-12)
            ratios.append(ratio / (1 + omega))
            if gamma == 1e-3:  # relative deviation from 1 + omega is gamma h omega/(2n) + O(g^2)
                assert abs(ratio / (1 + omega) - 1) <= gamma * h * omega / (2 * n) * 1.01
        assert np.all(np.diff(ratios) >= 0)  # the excess over (1 + omega) grows with omega


def test_floor_ratio_small_gamma_non_isotropic():
    """Heterogeneous diagonal Hessians, zeta2 = 0: the ratio tends to 1 + omega at first order."""
    p = heterogeneous_quadratic(4, 8, L=1.0, mu=0.2, zeta2=0.0, sigma2=1.0, seed=4)
    for gamma in (1e-4, 1e-3):
        base = exact_psgd(p, gamma, 0, np.zeros(8)).steady_state["error"]
        for k in (4, 2, 1):
            omega = 8 / k - 1
            ratio = exact_compressed_psgd(p, gamma, 0, np.zeros(8), f"rand-k:k={k}")
            dev = ratio.steady_state["error"] / base / (1 + omega) - 1
            # per coordinate the deviation is gamma omega sum_j h_ji^2 / (2 n^2 hbar_i) + O(g^2)
            H = p.hessian_diagonal
            first = gamma * omega * np.max(np.sum(H**2, 0) / (2 * p.n**2 * H.mean(0)))
            assert 0 < dev <= 1.01 * first


def test_heterogeneity_floor_without_noise():
    p = isotropic_problem(4, 8, 0.5, 1.0, 0.0, seed=2)
    pred = exact_compressed_psgd(p, 0.2, 0, np.zeros(8), "rand-k:k=2")
    expect = isotropic_floor(0.2, 0.5, 4, 3.0, 0.0, p.zeta2_star)
    assert expect > 0
    assert pred.steady_state["error"] == pytest.approx(expect, rel=1e-12)
    exact = exact_compressed_psgd(p, 0.2, 0, np.zeros(8), "identity")
    assert exact.steady_state["error"] == 0.0  # uncompressed PSGD converges without noise


@pytest.mark.parametrize("spec", ["rand-k:k=2", "rand-k-unscaled:k=3", "scaled(rand-k:k=1)"])
def test_diagonal_closed_form_matches_dense_recursion(spec):
    p = heterogeneous_quadratic(5, 6, L=1.0, mu=0.2, zeta2=2.0, sigma2=0.7, seed=6)
    x0 = np.random.default_rng(2).standard_normal(6) * 3
    a = exact_compressed_psgd(p, 0.25, 150, x0, spec)
    b = exact_compressed_psgd(p, 0.25, 150, x0, spec, method="dense")
    assert (a.method, b.method) == ("diagonal", "dense")
    assert np.allclose(a.error, b.error, rtol=1e-11, atol=0)
    assert a.steady_state["error"] == pytest.approx(b.steady_state["error"], rel=1e-10)


def test_divided_power_near_coincident_rates():
    # p = r (and p within 1e-4 of r) uses the expm1 branch: compare with the direct sum
    from theorylab.exact_compressed import _divided_power

    p = np.array([0.9, 0.9 + 1e-9, 0.5, 0.2])
    r = np.array([0.9, 0.9, 0.5 - 3e-5, -0.7])
    t = np.array([0, 1, 2, 7, 40])
    got = _divided_power(p, r, t)
    ref = np.array(
        [[sum(p[i] ** (s - 1 - u) * r[i] ** u for u in range(s)) for i in range(4)] for s in t]
    )
    assert np.allclose(got, ref, rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize("diagonal", [True, False])
def test_steady_state_is_limit_of_trajectory(diagonal):
    p = heterogeneous_quadratic(
        4, 5, L=1.0, mu=0.2, zeta2=1.5, sigma2=1.0, diagonal=diagonal, seed=8
    )
    x0 = np.full(5, 4.0)
    pred = exact_compressed_psgd(p, 0.3, 1500, x0, "rand-k:k=2", record=[0, 100, 1500])
    # (1 - gamma mu)^{2 * 1500} = 0.94^3000: the transient is far below 1e-12
    assert pred.error[-1] == pytest.approx(pred.steady_state["error"], rel=1e-11)
    assert pred.error[0] == pytest.approx(float(np.sum((x0 - p.x_star) ** 2)), rel=1e-14)


@pytest.mark.parametrize("d, method", [(8, "auto"), (8, "dense"), (9, "dense")])
def test_mean_square_stability_boundary(d, method):
    """Isotropic: stable iff gamma h (1 + omega/n) < 2 (d = 9: the ARPACK Perron root)."""
    n, h, k = 4, 1.0, 2
    omega = d / k - 1
    p = isotropic_problem(n, d, h, 1.0, 1.0, seed=1)
    limit = 2 / (h * (1 + omega / n))
    assert limit < 2 / h  # the mean alone would still be stable above the limit
    below = exact_compressed_psgd(
        p, limit * (1 - 1e-3), 0, np.zeros(d), f"rand-k:k={k}", method=method
    )
    expect = isotropic_floor(limit * (1 - 1e-3), h, n, omega, 1.0, p.zeta2_star)
    assert below.steady_state["error"] == pytest.approx(expect, rel=1e-8)
    with pytest.warns(TheorylabWarning, match="unstable"):
        above = exact_compressed_psgd(
            p, limit * (1 + 1e-3), 0, np.zeros(d), f"rand-k:k={k}", method=method
        )
    assert math.isinf(above.steady_state["error"])


# ---- Monte Carlo -----------------------------------------------------------------------------
def simulate(p, gamma, steps, x0, k, replicas, seed, record, real_randk=False, scaled=True):
    """Independent Monte Carlo of compressed PSGD; per-replica E||x - x*||^2 at record steps.

    Subsets: uniform k-subsets from a numpy Generator (argpartition of uniform keys), or the
    real :class:`RandK` (its hashed-key subsets) driven by a torch Generator.
    """
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    C = RandK(k=k, scaled=scaled)
    d = p.d
    X = np.broadcast_to(x0, (replicas, d)).copy()
    out = []
    for t in range(steps + 1):
        if t in record:
            out.append(np.sum((X - p.x_star) ** 2, axis=1))
        G = np.einsum("nij,rnj->rni", p.A, X[:, None, :] - p.b)
        G += rng.standard_normal(G.shape) * np.sqrt(p.sigma2 / d)
        if real_randk:
            CG = C.compress(torch.from_numpy(G.reshape(-1, d)), gen).numpy().reshape(G.shape)
        else:
            keep = np.argpartition(rng.random(G.shape), k - 1, axis=-1)[..., :k]
            mask = np.zeros(G.shape)
            np.put_along_axis(mask, keep, 1.0, axis=-1)
            CG = G * mask * (d / k if scaled else 1.0)
        X = X - gamma * CG.mean(axis=1)
    return np.array(out)


# Each comparison is a two-sided z-test of a sample mean over R = 4000 independent replicas
# (CLT normal approximation) at z = 4.5: per-comparison false-failure probability 6.8e-6;
# 5 cases (3 compressed PSGD, EF-SGD, EF21) x 4 checkpoints = 20 comparisons, so the
# family-wise false-failure probability is < 1.4e-4. Seeds are fixed: deterministic.
Z = 4.5
MC_CASES = [(True, False, True), (True, True, False), (False, True, True)]


@pytest.mark.parametrize("diagonal, real_randk, scaled", MC_CASES)
def test_exact_matches_monte_carlo(diagonal, real_randk, scaled):
    assert 2 * norm.sf(Z) * 20 < 1.4e-4
    p = heterogeneous_quadratic(
        4, 6, L=1.0, mu=0.2, zeta2=2.0, sigma2=1.5, diagonal=diagonal, seed=11
    )
    x0 = np.random.default_rng(3).standard_normal(6) * 2
    record = [0, 2, 10, 40, 100]
    k, gamma = 2, 0.3
    spec = f"rand-k:k={k}" if scaled else f"rand-k-unscaled:k={k}"
    pred = exact_compressed_psgd(p, gamma, 100, x0, spec, record=record)
    samples = simulate(
        p, gamma, 100, x0, k, 4000, seed=7, record=record, real_randk=real_randk, scaled=scaled
    )
    mean = samples.mean(axis=1)
    se = samples.std(axis=1, ddof=1) / np.sqrt(samples.shape[1])
    assert se[0] < 1e-12 and mean[0] == pytest.approx(pred.error[0], rel=1e-14)
    assert np.all(np.abs(mean[1:] - pred.error[1:]) <= Z * se[1:]), (mean, pred.error, se)
    # the compression is visible: the exact uncompressed PSGD curve is far outside the CI
    if scaled:
        plain = exact_psgd(p, gamma, 100, x0, record=record).error
        assert np.all(np.abs(mean[-2:] - plain[-2:]) > 10 * se[-2:])


def simulate_ef(p, gamma, steps, x0, k, replicas, seed, record, algorithm):
    """Independent Monte Carlo of EF-SGD / EF21 with unscaled rand-k (uniform numpy subsets)."""
    rng = np.random.default_rng(seed)
    n, d = p.n, p.d

    def compress(V):
        keep = np.argpartition(rng.random(V.shape), k - 1, axis=-1)[..., :k]
        mask = np.zeros(V.shape)
        np.put_along_axis(mask, keep, 1.0, axis=-1)
        return V * mask

    def grad(X):
        G = np.einsum("nij,rnj->rni", p.A, X[:, None, :] - p.b)
        return G + rng.standard_normal(G.shape) * np.sqrt(p.sigma2 / d)

    X = np.broadcast_to(x0, (replicas, d)).copy()
    e = np.zeros((replicas, n, d))
    g = compress(grad(X)) if algorithm == "ef21" else None
    out = []
    for t in range(steps + 1):
        if t in record:
            out.append(np.sum((X - p.x_star) ** 2, axis=1))
        if algorithm == "ef_sgd":
            P = gamma * grad(X) + e
            q = compress(P)
            e = P - q
            X = X - q.mean(axis=1)
        else:
            X = X - gamma * g.mean(axis=1)
            g = g + compress(grad(X) - g)
    return np.array(out)


@pytest.mark.parametrize("algorithm", ["ef_sgd", "ef21"])
def test_error_feedback_matches_monte_carlo(algorithm):
    p = heterogeneous_quadratic(4, 6, L=1.0, mu=0.2, zeta2=2.0, sigma2=1.5, seed=11)
    x0 = np.random.default_rng(3).standard_normal(6) * 2
    record = [0, 2, 10, 40, 100]
    fn = exact_ef_sgd if algorithm == "ef_sgd" else exact_ef21
    pred = fn(p, 0.3, 100, x0, "rand-k-unscaled:k=2", record=record)
    samples = simulate_ef(p, 0.3, 100, x0, 2, 4000, 5, record, algorithm)
    mean = samples.mean(axis=1)
    se = samples.std(axis=1, ddof=1) / np.sqrt(samples.shape[1])
    assert mean[0] == pytest.approx(pred.error[0], rel=1e-14)
    assert np.all(np.abs(mean[1:] - pred.error[1:]) <= Z * se[1:]), (mean, pred.error, se)


@pytest.mark.parametrize("fn", [exact_ef_sgd, exact_ef21])
def test_error_feedback_with_identity_is_psgd(fn):
    p = heterogeneous_quadratic(5, 4, L=1.0, mu=0.2, zeta2=2.0, sigma2=1.3, seed=3)
    x0 = np.random.default_rng(1).standard_normal(4) * 2
    rec = [0, 1, 2, 10, 50]
    a = fn(p, 0.3, 50, x0, "identity", record=rec)
    b = exact_psgd(p, 0.3, 50, x0, record=rec)
    assert np.allclose(a.error, b.error, rtol=1e-12, atol=0)
    assert a.steady_state["error"] == pytest.approx(b.steady_state["error"], rel=1e-12)


@pytest.mark.parametrize("spec", ["rand-k:k=2", "rand-k-unscaled:k=3", "scaled(rand-k:k=1)"])
def test_coordinate_engine_reproduces_psgd_closed_form(spec):
    p = heterogeneous_quadratic(5, 6, L=1.0, mu=0.2, zeta2=2.0, sigma2=0.7, seed=6)
    x0 = np.random.default_rng(2).standard_normal(6) * 3
    rec = np.array([0, 1, 5, 60, 150])
    pred = exact_compressed_psgd(p, 0.25, 150, x0, spec, record=rec)
    acc = _Acc(rec.size)
    e0 = x0 - p.x_star
    system = _psgd_system(p, 0.25, compressor_moments(spec, 6))
    _run_coordinate_system(system, e0[:, None], (e0 * e0)[:, None, None], rec, acc)
    assert np.allclose(acc.err, pred.error, rtol=1e-12, atol=0)
    assert acc.ss_err == pytest.approx(pred.steady_state["error"], rel=1e-11)


@pytest.mark.parametrize("fn", [exact_ef_sgd, exact_ef21])
def test_error_feedback_steady_state_is_limit(fn):
    p = heterogeneous_quadratic(3, 4, L=1.0, mu=0.3, zeta2=1.5, sigma2=1.0, seed=8)
    pred = fn(p, 0.4, 2500, np.full(4, 3.0), "rand-k-unscaled:k=2", record=[0, 2500])
    assert pred.error[-1] == pytest.approx(pred.steady_state["error"], rel=1e-10)


@pytest.mark.parametrize("builder", [_ef_sgd_system, _ef21_system])
def test_woodbury_steady_state_and_stability_match_kronecker(builder):
    """The n x n Woodbury reduction vs the full N^2 x N^2 second-moment map, per coordinate,
    over step sizes on both sides of mean-square stability."""
    p = heterogeneous_quadratic(2, 3, L=1.0, mu=0.3, zeta2=1.0, sigma2=0.8, seed=4)
    mom = compressor_moments("rand-k-unscaled:k=1", 3)
    seen = set()
    for gamma in (0.2, 0.8, 1.4, 2.0, 2.6, 3.5):
        s = builder(p, gamma, mom)
        total, stable = 0.0, True
        for i in range(3):
            T, P, F, u, v = s.T[i], s.P[i], s.F, s.u[i], s.v[i]
            N = T.shape[0]
            M = np.kron(T, T) + s.kappa * sum(
                np.outer(np.outer(F[:, j], F[:, j]).ravel(), np.outer(P[j], P[j]).ravel())
                for j in range(P.shape[0])
            )
            if np.max(np.abs(np.linalg.eigvals(M))) >= 1:
                stable = False
                break
            m = np.linalg.solve(np.eye(N) - T, v)
            Tm = T @ m
            pi0 = 2 * (P @ m) * u + u * u + s.sigma2
            C = (
                np.outer(Tm, v)
                + np.outer(v, Tm)
                + np.outer(v, v)
                + s.noise
                + s.kappa * ((F * pi0) @ F.T)
            )
            total += np.linalg.solve(np.eye(N * N) - M, C.ravel())[0]
        got = s.steady_state()
        seen.add(stable)
        if stable:
            assert got == pytest.approx(total, rel=1e-9)
        else:
            assert math.isinf(got)
    assert seen == {True, False}


def test_stein_forms_fallback_for_defective_T():
    def brute(T, P, F):
        M, y = np.zeros((P.shape[0], F.shape[1])), np.zeros(F.shape[1])
        Tt = np.eye(T.shape[0])
        for _ in range(3000):
            X = P @ Tt @ F
            M += X * X
            y += (Tt @ F)[0] ** 2
            Tt = T @ Tt
        return M, y

    rng = np.random.default_rng(0)
    P, F = rng.standard_normal((2, 3)), rng.standard_normal((3, 2))
    for T in (
        np.array([[0.5, 1.0, 0.0], [0.0, 0.5, 0.0], [0.0, 0.0, -0.3]]),  # defective
        rng.standard_normal((3, 3)) * 0.3,
    ):
        M, y = _stein_forms(T, P, F)
        Mb, yb = brute(T, P, F)
        assert np.allclose(M, Mb, rtol=1e-10) and np.allclose(y, yb, rtol=1e-10)


def test_error_feedback_input_checks():
    dense = heterogeneous_quadratic(3, 3, diagonal=False, seed=0)
    with pytest.raises(TheorylabError, match="diagonal"):
        exact_ef_sgd(dense, 0.1, 5, np.zeros(3))
    p = heterogeneous_quadratic(3, 3, seed=0)
    with pytest.raises(TheorylabError, match="not supported"):
        exact_ef21(p, 0.1, 5, np.zeros(3), "top-k:k=1")
    with pytest.raises(TheorylabError, match="gamma"):
        exact_ef21(p, 0.0, 5, np.zeros(3))
    with pytest.warns(TheorylabWarning, match="unstable"):
        pred = exact_ef_sgd(p, 5.0, 5, np.zeros(3))
    assert math.isinf(pred.steady_state["error"]) and pred.algorithm == "ef_sgd"


def test_prediction_is_deterministic_and_json_ready():
    p = heterogeneous_quadratic(3, 4, seed=1)
    a = exact_compressed_psgd(p, 0.2, 20, np.ones(4), "rand-k:ratio=0.5", record=[0, 5, 20])
    b = exact_compressed_psgd(p, 0.2, 20, np.ones(4), RandK(ratio=0.5), record=[0, 5, 20])
    assert a.to_dict() == b.to_dict()
    assert a.to_dict()["algorithm"] == "compressed_psgd"


def test_doctest_examples_run():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert doctest.testmod(exact_compressed, raise_on_error=True).attempted > 0


def test_all_subsets_of_the_real_randk_are_reachable():
    # the prediction assumes uniform k-subsets; the runtime's hashed keys reach every subset
    # with frequency close to uniform (R = 30000 draws of C(5, 2) = 10 subsets; each count is
    # Binomial(30000, 0.1), sd 52, and |count - 3000| <= 5 sd = 260 fails with probability
    # < 10 * 5.8e-7; fixed seed, deterministic)
    C = RandK(k=2)
    out = C.compress(torch.ones(30000, 5, dtype=torch.float64), torch.Generator().manual_seed(0))
    codes = (out.numpy() != 0) @ (2 ** np.arange(5))
    subsets = [sum(2**i for i in S) for S in itertools.combinations(range(5), 2)]
    counts = np.array([np.sum(codes == c) for c in subsets])
    assert counts.sum() == 30000
    assert np.all(np.abs(counts - 3000) <= 260), counts
