"""Asynchronous SGD rates: the derived delayed-SGD bound vs brute-force runs, tau = 0 vs PSGD,
the tau_avg/tau_max dependence of the big-O rates, and the speed-weighted drift point."""

import math
import warnings

import numpy as np
import pytest

from theorylab.errors import TheorylabError, TheorylabWarning
from theorylab.problems import QuadraticProblem, heterogeneous_quadratic
from theorylab.rates import psgd
from theorylab.rates.asynchronous import (
    asgd_avg_delay,
    asgd_delayed,
    asgd_max_delay,
    asgd_rates_on_trace,
    asgd_workers,
    asynchrony_bias,
    delay_adaptive_steps,
    speed_weighted_minimizer,
)
from theorylab.staleness import simulate_speed_model


def _run_delayed(H, x0, gamma, delays, sigma2, rng, reps):
    """Brute-force delayed SGD on f = x^T H x / 2 with R replicas: returns mean over replicas of
    (1/T) sum_k ||grad f(x_k)||^2."""
    d = len(x0)
    T = len(delays)
    X = np.tile(x0, (reps, 1)).astype(float)
    hist = [X.copy()]
    acc = np.zeros(reps)
    for k in range(T):
        acc += np.sum((X @ H) ** 2, axis=1)
        y = hist[k - delays[k]]
        noise = rng.standard_normal((reps, d)) * math.sqrt(sigma2 / d)
        X = X - gamma * (y @ H + noise)
        hist.append(X.copy())
    return acc / T


def test_tau0_is_psgd_with_one_node():
    kw = dict(gamma=0.3, L=2.0, sigma2=1.5, T=77, delta=2.0)
    a = asgd_delayed(tau_max=0, tau_avg=0, **kw)
    assert a.total == pytest.approx(psgd(n=1, **kw).total, rel=1e-14)
    assert a.terms["delay"] == 0


@pytest.mark.parametrize("pattern", ["fixed", "random"])
def test_derived_bound_lies_above_brute_force(pattern):
    rng = np.random.default_rng(7)
    H = np.diag([1.0, 0.3, 0.05])
    L, T = 1.0, 200
    if pattern == "fixed":
        tau = 4
        delays = [min(k, tau) for k in range(T)]
    else:
        delays = [min(k, int(v)) for k, v in enumerate(rng.integers(0, 9, size=T))]
    tau_max, tau_avg = max(delays), float(np.mean(delays))
    x0 = np.array([2.0, -1.0, 3.0])
    delta = 0.5 * x0 @ H @ x0
    for sigma2 in (0.0, 1.0):
        r = asgd_delayed(
            gamma=0.9 * _limit(L, tau_max), L=L, sigma2=sigma2, T=T, delta=delta,
            tau_max=tau_max, tau_avg=tau_avg,
        )  # fmt: skip
        vals = _run_delayed(H, x0, r.extra["gamma_max"] * 0.9, delays, sigma2, rng, reps=400)
        # 400 seeded replicas; the margin below is 5 standard errors of their mean
        upper = vals.mean() + 5 * vals.std(ddof=1) / math.sqrt(len(vals)) if sigma2 else vals[0]
        assert r.total >= upper


def _limit(L, tau_max):
    return (math.sqrt(1 + 8 * tau_max**2) - 1) / (4 * L * tau_max**2) if tau_max else 1 / L


def test_step_condition_and_warning():
    for tau_max in (0, 1, 5, 50):
        g = _limit(2.0, tau_max)
        assert 2.0 * g + 2 * 4.0 * g**2 * tau_max**2 == pytest.approx(1.0)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            asgd_delayed(gamma=g, L=2.0, sigma2=1, T=10, delta=1, tau_max=tau_max, tau_avg=0)
        with pytest.warns(TheorylabWarning, match="tau_max"):
            r = asgd_delayed(
                gamma=1.01 * g, L=2.0, sigma2=1, T=10, delta=1, tau_max=tau_max, tau_avg=0
            )
        assert math.isinf(r.total) and r.step_size_ok is False
    with pytest.warns(TheorylabWarning):
        asgd_max_delay(L=1.0, sigma2=1.0, T=10, delta=1.0, tau_max=9, gamma=0.2)
    with pytest.warns(TheorylabWarning):
        asgd_workers(L=1.0, sigma2=1.0, T=10, n=8, delta=1.0, gamma=0.2)
    with pytest.warns(TheorylabWarning):
        asgd_avg_delay(L=1.0, sigma2=1.0, T=10, delta=1.0, tau_max=99, tau_avg=3, gamma=0.2)


def test_avg_vs_max_delay_dependence():
    kw = dict(L=1.0, sigma2=1.0, T=10_000, delta=1.0)
    base = dict(tau_max=8, tau_avg=7)
    stale = dict(tau_max=800, tau_avg=7)  # a few very stale gradients: tau_max up, tau_avg same
    ad0, ad1 = (asgd_avg_delay(adaptive=True, **kw, **b) for b in (base, stale))
    c0, c1 = (asgd_avg_delay(**kw, **b) for b in (base, stale))
    m0, m1 = (asgd_max_delay(tau_max=b["tau_max"], **kw) for b in (base, stale))
    assert ad1.total == ad0.total  # delay-adaptive: only tau_avg
    assert c1.terms["delay"] / c0.terms["delay"] == pytest.approx(math.sqrt(801 / 9))
    assert m1.terms["delay"] / m0.terms["delay"] == pytest.approx(801 / 9)
    assert all(r.big_o for r in (ad0, c0, m0))
    w = asgd_workers(L=1.0, sigma2=1.0, T=100, n=8, delta=1.0)
    assert w.terms["delay"] == pytest.approx(0.08)
    cvx = asgd_workers(L=1.0, sigma2=1.0, T=100, n=8, r0_sq=1.0)
    assert cvx.quantity.startswith("E f")


def test_rates_on_a_simulated_trace():
    tr = simulate_speed_model([1.0, 1.0, 1.0, 0.1], 500)
    rs = asgd_rates_on_trace(tr.stats(), L=1.0, sigma2=1.0, delta=1.0, n=4, gamma=0.01)
    s = tr.stats()
    assert rs["derived"].extra["tau_max"] == s.tau_max
    assert rs["avg_delay"].extra["tau_avg"] == pytest.approx(s.tau_avg)
    assert set(rs) == {"derived", "max_delay", "avg_delay", "avg_delay_adaptive", "workers"}


def test_delay_adaptive_steps():
    g = delay_adaptive_steps(0.2, [0, 3, 4, 8, 40], n=4)
    assert g.tolist() == pytest.approx([0.2, 0.2, 0.2, 0.1, 0.02])
    with pytest.raises(TheorylabError, match="-1"):
        delay_adaptive_steps(0.2, [0, -1], n=4)
    with pytest.raises(TheorylabError, match="gamma"):
        delay_adaptive_steps(-0.2, [0], n=4)


def test_speed_weighted_minimizer_independent_checks():
    p = heterogeneous_quadratic(4, 3, L=2.0, mu=0.3, zeta2=3.0, sigma2=0.0, diagonal=False, seed=3)
    speeds = [1.0, 1.0, 2.0, 0.25]
    w = np.array(speeds) / sum(speeds)
    xp = speed_weighted_minimizer(p, speeds=speeds)
    # (1) gradient descent on sum_i w_i f_i, written out
    x = np.zeros(3)
    for _ in range(20_000):
        x = x - 0.2 * sum(w[i] * p.A[i] @ (x - p.b[i]) for i in range(4))
    assert np.allclose(x, xp, atol=1e-9)
    # (2) the asynchronous server itself (sigma = 0, fixed speeds), small constant step: its
    # iterate ends O(gamma) from x_p and far from x*
    tr = simulate_speed_model(speeds, 40_000)
    gaps = []
    for gamma in (4e-3, 2e-3):
        hist = [np.zeros(3)]
        for k in range(tr.worker.size):
            i, r = tr.worker[k], tr.read_version[k]
            hist.append(hist[-1] - gamma * p.A[i] @ (hist[r] - p.b[i]))
        gaps.append(np.linalg.norm(np.mean(hist[-2000:], axis=0) - xp))
    assert gaps[1] < 0.01 * np.linalg.norm(xp - p.x_star)
    assert 1.8 < gaps[0] / gaps[1] < 2.2  # the residual is O(gamma): halving gamma halves it
    # equal speeds: x_p = x*, no bias
    assert np.allclose(speed_weighted_minimizer(p, speeds=[3.0] * 4), p.x_star)
    b = asynchrony_bias(p, speeds=speeds)
    assert b.total == pytest.approx(p.f(xp) - p.f(p.x_star), rel=1e-10)
    assert b.kind == "tight" and b.total > 0
    assert asynchrony_bias(p, speeds=[1.0] * 4).total == pytest.approx(0, abs=1e-20)


def test_bias_bad_input():
    q = QuadraticProblem(np.array([[1.0], [1.0]]), np.array([[0.0], [3.0]]), sigma2=0.0)
    with pytest.raises(TheorylabError, match="sum to 1"):
        speed_weighted_minimizer(q, p=[0.5, 0.6])
    with pytest.raises(TheorylabError, match="exactly one"):
        speed_weighted_minimizer(q)
    with pytest.raises(TheorylabError, match=r"speeds\[0\]"):
        asynchrony_bias(q, speeds=[-1.0, 1.0])
    with pytest.raises(TheorylabError, match="tau_avg"):
        asgd_delayed(gamma=0.1, L=1, sigma2=1, T=5, delta=1, tau_max=2, tau_avg=3)
    with pytest.raises(TheorylabError, match="tau_max"):
        asgd_delayed(gamma=0.1, L=1, sigma2=1, T=5, delta=1, tau_max=-2, tau_avg=0)
    with pytest.raises(TheorylabError, match="gamma"):
        asgd_delayed(gamma=-0.1, L=1, sigma2=1, T=5, delta=1, tau_max=2, tau_avg=1)


def test_docstring_examples_run():
    import doctest

    import theorylab.rates.asynchronous

    result = doctest.testmod(theorylab.rates.asynchronous)
    assert result.failed == 0 and result.attempted > 0
