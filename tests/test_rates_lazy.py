"""Lazy communication rates: derived local SGD bounds vs the exact second moments, tau = 1 vs
PSGD, the exact sampling identity by enumeration, FedAvg/SCAFFOLD terms, the best period."""

import itertools
import math
import warnings

import numpy as np
import pytest

from theorylab.cost import CommModel, round_time
from theorylab.errors import TheorylabError, TheorylabWarning
from theorylab.exact import exact_dsgd
from theorylab.problems import QuadraticProblem, heterogeneous_quadratic
from theorylab.rates import psgd
from theorylab.rates.lazy import (
    best_period,
    fedavg,
    local_sgd,
    local_sgd_bound_curve,
    local_sgd_error_curve,
    minibatch_vs_local,
    sampling_variance_factor,
    scaffold,
    sync_time,
    time_to_target,
)


def _schedule(n, tau):
    """Local SGD as DSGD (ATC): W = I for tau - 1 steps, then J (exact_dsgd's step k uses
    W[k mod tau], so the tau-th step ends with the average)."""
    return [np.eye(n)] * (tau - 1) + [np.full((n, n), 1.0 / n)]


@pytest.mark.parametrize("tau", [1, 2, 5])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sc_bound_lies_above_exact_local_sgd(tau, seed):
    n, d = 6, 3
    rng = np.random.default_rng(seed)
    p = heterogeneous_quadratic(
        n, d, L=1.0, mu=0.2, zeta2=float(rng.uniform(0.1, 4)), sigma2=float(rng.uniform(0, 2)),
        diagonal=bool(seed % 2), seed=seed,
    )  # fmt: skip
    gamma = float(rng.uniform(0.05, 0.9)) * 2 / (p.L + p.mu) / tau
    x0 = np.tile(p.x_star + rng.standard_normal(d), (n, 1))
    steps = 60
    ex = exact_dsgd(p, _schedule(n, tau), gamma, steps, x0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # gamma <= 2/(L + mu): no warning
        b = local_sgd_bound_curve(
            gamma=gamma, L=p.L, mu=p.mu, sigma2=p.sigma2, zeta2=p.zeta2_star, n=n, tau=tau,
            steps=steps, avg_error0=float(np.sum((x0[0] - p.x_star) ** 2)),
        )  # fmt: skip
    for key in ("error", "avg_error", "consensus"):
        assert np.all(b[key] >= getattr(ex, key) - 1e-12 * (1 + np.abs(getattr(ex, key)))), key
    # consensus is exactly zero at communication rounds, in both
    assert np.all(b["consensus"][::tau] == 0)
    assert np.allclose(ex.consensus[::tau], 0, atol=1e-12)


def test_tau1_is_psgd_exactly():
    kw = dict(gamma=0.1, L=1.0, sigma2=2.0, n=4)
    for T in (0, 7, 50):
        loc = local_sgd(zeta2=3.0, tau=1, T=T, mu=0.5, avg_error0=2.0, **kw)
        ref = psgd(T=T, mu=0.5, r0_sq=2.0, **kw)
        assert loc.total == pytest.approx(ref.total, rel=1e-12)
        assert loc.terms["drift_heterogeneity"] == pytest.approx(0, abs=1e-14)
    ss = local_sgd(zeta2=3.0, tau=1, mu=0.5, **kw)
    assert ss.total == pytest.approx(psgd(mu=0.5, **kw).total, rel=1e-9)
    nc = local_sgd(zeta2=3.0, tau=1, T=100, delta=1.5, **kw)
    assert nc.total == pytest.approx(psgd(T=100, delta=1.5, **kw).total, rel=1e-14)
    curve = local_sgd_bound_curve(
        gamma=0.1, L=1.0, mu=0.5, sigma2=2.0, zeta2=3.0, n=4, tau=1, steps=20, avg_error0=2.0
    )
    t = np.arange(21)
    c2 = 0.95**2
    closed = c2**t * 2.0 + 0.1 * 2.0 / (4 * 0.5 * 1.95) * (1 - c2**t)
    assert np.allclose(curve["avg_error"], closed, rtol=1e-12)


@pytest.mark.parametrize("tau", [1, 3, 6])
def test_nonconvex_bound_lies_above_exact(tau):
    # identical Hessians h I: zeta2 (uniform, H1) = h^2 (1/n) sum ||b_i - bbar||^2 exactly and
    # E||grad f(xbar)||^2 = h^2 E||xbar - x*||^2
    n, d, h = 5, 2, 1.0
    rng = np.random.default_rng(tau)
    b = rng.standard_normal((n, d)) * 2
    p = QuadraticProblem(np.full((n, d), h), b, sigma2=0.5)
    zeta2 = h**2 * float(np.mean(np.sum((b - b.mean(0)) ** 2, axis=1)))
    x0 = np.tile(p.x_star + 3.0, (n, 1))
    delta = p.f(x0[0]) - p.f(p.x_star)
    gamma = 0.9 / (2 * h * max(tau - 1, 1))
    T = 40
    ex = exact_dsgd(p, _schedule(n, tau), gamma, T, x0)
    measured = h**2 * float(np.mean(ex.avg_error[:T]))
    r = local_sgd(gamma=gamma, L=h, sigma2=0.5, zeta2=zeta2, n=n, tau=tau, T=T, delta=delta)
    assert r.total >= measured
    assert not r.big_o and r.kind == "upper"


def test_drift_terms_shapes():
    kw = dict(gamma=1e-3, L=1.0, sigma2=1.0, zeta2=1.0, n=8, T=100, delta=1.0)
    r = {tau: local_sgd(tau=tau, **kw) for tau in (2, 3, 5, 9)}
    # d ~ 1 at this gamma: heterogeneity drift ~ (tau - 1)^2, noise drift ~ (tau - 1)
    assert r[9].terms["drift_heterogeneity"] / r[5].terms["drift_heterogeneity"] == pytest.approx(
        4.0, rel=1e-3
    )
    assert r[9].terms["drift_noise"] / r[5].terms["drift_noise"] == pytest.approx(2.0, rel=1e-3)
    assert local_sgd(tau=5, **{**kw, "zeta2": 0.0}).terms["drift_heterogeneity"] == 0
    assert local_sgd(tau=5, **{**kw, "n": 1}).terms["drift_noise"] == 0
    # strongly convex: the drift grows with tau and with zeta2
    sc = [
        local_sgd(gamma=0.02, L=1.0, mu=0.5, sigma2=1.0, zeta2=z, n=8, tau=t).total
        for t, z in ((2, 1.0), (4, 1.0), (8, 1.0), (8, 2.0))
    ]
    assert sc == sorted(sc) and sc[0] < sc[-1]
    ko = local_sgd(tau=4, source="koloskova2020", **kw)
    ko8 = local_sgd(tau=8, source="koloskova2020", **kw)
    assert ko.big_o
    assert ko8.terms["drift_heterogeneity"] / ko.terms["drift_heterogeneity"] == pytest.approx(
        2 ** (2 / 3)
    )


def test_step_size_warnings():
    with pytest.warns(TheorylabWarning, match="gamma"):
        r = local_sgd(gamma=0.2, L=1.0, sigma2=1.0, zeta2=1.0, n=4, tau=4, T=10, delta=1.0)
    assert math.isinf(r.total) and r.step_size_ok is False
    with pytest.warns(TheorylabWarning):
        local_sgd(gamma=1.5, L=1.0, mu=1.0, sigma2=1.0, zeta2=1.0, n=4, tau=2)
    with pytest.warns(TheorylabWarning):
        scaffold(L=1.0, mu=0.1, sigma2=1.0, n=10, S=5, K=5, R=10, eta_l=0.1)
    with pytest.warns(TheorylabWarning):
        fedavg(L=1.0, mu=0.1, sigma2=1.0, G2=1.0, n=10, S=5, K=5, R=10, eta_l=0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        local_sgd(gamma=0.1, L=1.0, sigma2=1.0, zeta2=1.0, n=4, tau=4, T=10, delta=1.0)
        scaffold(L=1.0, mu=0.1, sigma2=1.0, n=10, S=5, K=5, R=10, eta_l=1e-4)
        fedavg(L=1.0, mu=0.1, sigma2=1.0, G2=1.0, n=10, S=5, K=5, R=10, eta_l=0.1)


@pytest.mark.parametrize("n", [2, 5, 7])
def test_sampling_factor_by_enumeration(n):
    D = np.random.default_rng(n).standard_normal((n, 3))
    spread = float(np.mean(np.sum((D - D.mean(0)) ** 2, axis=1)))
    for S in range(1, n + 1):
        subsets = list(itertools.combinations(range(n), S))
        var = np.mean([np.sum((D[list(s)].mean(0) - D.mean(0)) ** 2) for s in subsets])
        assert var == pytest.approx(sampling_variance_factor(n, S) * spread, abs=1e-12)
        if S <= 3:
            tuples = list(itertools.product(range(n), repeat=S))
            var_r = np.mean([np.sum((D[list(s)].mean(0) - D.mean(0)) ** 2) for s in tuples])
            assert var_r == pytest.approx(
                sampling_variance_factor(n, S, replacement=True) * spread, rel=1e-12
            )
    assert sampling_variance_factor(n, n) == 0.0


def test_fedavg_and_scaffold_terms():
    kw = dict(L=1.0, sigma2=1.0, G2=2.0, n=10, K=5, R=100)
    full = fedavg(mu=0.5, S=10, **kw)
    assert full.terms["sampling"] == 0.0 and full.big_o
    s2, s5 = fedavg(mu=0.5, S=2, **kw), fedavg(mu=0.5, S=5, **kw)
    # (1 - S/n) G2/(mu R S)
    assert s2.terms["sampling"] / s5.terms["sampling"] == pytest.approx((0.8 / 2) / (0.5 / 5))
    nc = fedavg(delta=1.0, S=10, **kw)
    assert nc.terms["sampling"] == 0.0 and nc.terms["drift_heterogeneity"] > 0
    for sc in (
        scaffold(L=1.0, mu=0.1, sigma2=1.0, n=10, S=5, K=5, R=100, eta_l=1e-4),
        scaffold(L=1.0, delta=1.0, sigma2=1.0, n=10, S=5, K=5, R=100, eta_l=1e-4),
    ):
        assert sc.terms["heterogeneity"] == 0.0 and "RECALLED" in sc.source
    mv = minibatch_vs_local(L=1.0, sigma2=1.0, zeta2=1.0, r0_sq=1.0, M=4, K=2, R=10)
    mv8 = minibatch_vs_local(L=1.0, sigma2=1.0, zeta2=1.0, r0_sq=1.0, M=4, K=8, R=10)
    assert "drift_heterogeneity" not in mv["minibatch"].terms
    assert mv["local"].terms["drift_heterogeneity"] == mv8["local"].terms["drift_heterogeneity"]


def test_bad_input_names_the_value():
    with pytest.raises(TheorylabError, match="tau.*0"):
        local_sgd(gamma=0.1, L=1.0, sigma2=1.0, zeta2=1.0, n=4, tau=0, T=1, delta=1.0)
    with pytest.raises(TypeError, match="tau"):
        local_sgd(gamma=0.1, L=1.0, sigma2=1.0, zeta2=1.0, n=4, tau=2.5, T=1, delta=1.0)
    for S in (0, 11):
        with pytest.raises(TheorylabError, match=f"S.*{S}"):
            fedavg(L=1.0, mu=0.1, sigma2=1.0, G2=1.0, n=10, S=S, K=5, R=10)
        with pytest.raises(TheorylabError, match=f"S.*{S}"):
            sampling_variance_factor(10, S)
    with pytest.raises(TheorylabError, match="gamma"):
        local_sgd(gamma=-0.1, L=1.0, sigma2=1.0, zeta2=1.0, n=4, tau=2, T=1, delta=1.0)
    with pytest.raises(TheorylabError, match="eta_l"):
        scaffold(L=1.0, mu=0.1, sigma2=1.0, n=10, S=5, K=5, R=10, eta_l=0.0)
    with pytest.raises(TheorylabError):
        local_sgd(gamma=0.1, L=1.0, sigma2=1.0, zeta2=1.0, n=4, tau=2)  # no T/delta, no mu
    with pytest.raises(TheorylabError, match="allreduce"):
        sync_time(4, CommModel(), allreduce="tree")


def test_sync_time_alpha_beta():
    m = CommModel(alpha=2e-3, beta=1e-9, nbytes=8_000_000, compute_s=0.5)
    assert sync_time(8, m) == pytest.approx(2 * 7 * (2e-3 + 1e-9 * 1e6))
    assert sync_time(8, m, allreduce="direct") == pytest.approx(round_time(7, m) - 0.5)
    assert sync_time(1, m) == 0.0


def test_best_period_matches_brute_force():
    m = CommModel(alpha=1e-2, beta=0.0, nbytes=0, compute_s=1e-3)
    sync = sync_time(8, m)

    def curve(tau):  # a floor growing with tau, plus a geometric decay
        k = np.arange(5000)
        return 0.99**k + 1e-4 * tau**2

    taus = list(range(1, 13))
    brute = {}
    for t in taus:
        hits = [k for k, v in enumerate(curve(t)) if v <= 5e-3]
        brute[t] = hits[0] * 1e-3 + math.ceil(hits[0] / t) * sync if hits else math.inf
    choice = best_period(curve, taus, target=5e-3, n=8, model=m)
    assert choice.tau == min(taus, key=lambda t: (brute[t], t))
    assert [r["time_s"] for r in choice.curve] == pytest.approx([brute[t] for t in taus])
    assert time_to_target(curve, 12, target=5e-3, n=8, model=m)["time_s"] == brute[12]
    assert best_period(curve, [50], target=5e-3, n=8, model=m).tau is None


def test_best_period_moves_with_cost_and_heterogeneity():
    def best(alpha, zeta2):
        curve = local_sgd_error_curve(
            gamma=0.05, L=1.0, mu=0.5, sigma2=0.0, zeta2=zeta2, n=8, avg_error0=1.0, steps=4000
        )
        m = CommModel(alpha=alpha, beta=0.0, nbytes=0, compute_s=1e-4)
        return best_period(curve, [1, 2, 4, 8, 16], target=1e-2, n=8, model=m).tau

    taus_by_cost = [best(a, 1e-3) for a in (1e-6, 1e-4, 1e-3, 1e-2)]
    assert taus_by_cost == sorted(taus_by_cost) and taus_by_cost[0] < taus_by_cost[-1]
    taus_by_het = [best(1e-3, z) for z in (1e-4, 1e-2, 1.0)]
    assert taus_by_het == sorted(taus_by_het, reverse=True)


def test_docstring_examples_run():
    import doctest

    import theorylab.rates.lazy

    result = doctest.testmod(theorylab.rates.lazy)
    assert result.failed == 0 and result.attempted > 0


def test_sc_steady_state_is_the_limit_and_above_exact():
    from theorylab.exact import steady_state_dsgd

    p = heterogeneous_quadratic(5, 2, L=1.0, mu=0.4, zeta2=2.0, sigma2=1.0, seed=4)
    for tau, gamma in ((1, 0.3), (3, 0.1), (6, 0.02)):
        kw = dict(gamma=gamma, L=p.L, mu=p.mu, sigma2=p.sigma2, zeta2=p.zeta2_star, n=5, tau=tau)
        ss = local_sgd(**kw)
        T = tau * math.ceil(60 / (gamma * p.mu) / tau)
        assert ss.total == pytest.approx(local_sgd(T=T, **kw).total, rel=1e-9)
        exact = steady_state_dsgd(p, _schedule(5, tau), gamma)  # at phase 0 = after averaging
        assert ss.total >= exact["avg_error"] and ss.extra["consensus"] == 0.0


def test_exact_curve_tau1_is_psgd_and_best_period_on_it():
    from theorylab.exact import exact_psgd
    from theorylab.rates.lazy import local_sgd_exact_curve

    p = heterogeneous_quadratic(6, 3, L=1.0, mu=0.3, zeta2=5.0, sigma2=0.5, seed=2)
    x0 = p.x_star + 2.0
    curve = local_sgd_exact_curve(p, gamma=0.1, x0=x0, steps=300)
    assert np.allclose(curve(1), exact_psgd(p, 0.1, 300, x0).error, rtol=1e-10, atol=1e-14)
    # an expensive round favours a longer period than a cheap one
    cheap = CommModel(alpha=1e-6, beta=0.0, nbytes=0, compute_s=1e-3)
    dear = CommModel(alpha=1e-1, beta=0.0, nbytes=0, compute_s=1e-3)
    target = 2.0 * float(curve(1)[-1])
    taus = [1, 2, 4, 8]
    t_cheap = best_period(curve, taus, target=target, n=6, model=cheap).tau
    t_dear = best_period(curve, taus, target=target, n=6, model=dear).tau
    assert t_dear > t_cheap
    with pytest.raises(TheorylabError, match="metric"):
        local_sgd_exact_curve(p, gamma=0.1, x0=x0, steps=3, metric="loss")


def test_K_errors_name_K():
    with pytest.raises(TheorylabError, match="K .*0"):
        fedavg(L=1.0, mu=0.1, sigma2=1.0, G2=1.0, n=10, S=5, K=0, R=10)
    with pytest.raises(TheorylabError, match="K .*-1"):
        scaffold(L=1.0, mu=0.1, sigma2=1.0, n=10, S=5, K=-1, R=10, eta_l=1e-4)
