"""Rates: the derived DSGD bound lies above the exact second moments; PSGD tightness; shapes."""

import json
import math
import warnings

import numpy as np
import pytest
from graphs import lazy_ring
from hypothesis import given, settings
from hypothesis import strategies as st

from theorylab.errors import TheorylabError, TheorylabWarning
from theorylab.exact import exact_dsgd, exact_gossip, exact_psgd
from theorylab.problems import QuadraticProblem, heterogeneous_quadratic
from theorylab.rates import (
    Rate,
    dsgd,
    dsgd_bound_curve,
    gossip_consensus,
    psgd,
    transient_iterations,
)


def _max_step(form, L, mu, rho):
    if form == "atc":
        stable = mu * (1 - rho) / (math.sqrt(2) * rho * L**2) if rho > 0 else math.inf
    else:
        stable = (1 - rho) / (L * (1 + math.sqrt(2) * L / mu))
    return min(2 / (L + mu), stable)


@settings(deadline=None, max_examples=60, derandomize=True)
@given(
    n=st.integers(2, 9),
    d=st.integers(2, 4),
    kappa=st.floats(1.0, 20.0),
    zeta2=st.floats(0.0, 10.0),
    sigma2=st.floats(0.0, 5.0),
    self_weight=st.floats(0.1, 0.9),
    step_fraction=st.floats(0.05, 0.95),
    x0_scale=st.floats(0.0, 3.0),
    form=st.sampled_from(["atc", "cta"]),
    diagonal=st.booleans(),
    seed=st.integers(0, 1000),
)
def test_dsgd_bound_lies_above_exact_at_every_step(
    n, d, kappa, zeta2, sigma2, self_weight, step_fraction, x0_scale, form, diagonal, seed
):
    L = 1.0
    p = heterogeneous_quadratic(
        n, d, L=L, mu=L / kappa, zeta2=zeta2, sigma2=sigma2, diagonal=diagonal, seed=seed
    )
    W = lazy_ring(n, self_weight) if n > 2 else np.array([[0.7, 0.3], [0.3, 0.7]])
    rho = float(np.linalg.norm(W - 1 / n, 2))
    gamma = step_fraction * _max_step(form, p.L, p.mu, rho)
    x0 = np.random.default_rng(seed).standard_normal((n, d)) * x0_scale
    steps = 150
    exact = exact_dsgd(p, W, gamma, steps, x0, form=form)
    xbar0 = x0.mean(axis=0)
    bound = dsgd_bound_curve(
        gamma=gamma,
        L=p.L,
        mu=p.mu,
        sigma2=p.sigma2,
        zeta2=p.zeta2_star,
        rho=rho,
        n=n,
        steps=steps,
        avg_error0=float(np.sum((xbar0 - p.x_star) ** 2)),
        consensus0=float(np.sum((x0 - xbar0) ** 2) / n),
        form=form,
    )
    for metric in ("error", "consensus", "avg_error"):
        e, b = getattr(exact, metric), bound[metric]
        assert np.all(b >= e - 1e-12 * (1 + np.abs(e))), metric
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the step satisfies the condition: no warning
        ss = dsgd(
            gamma=gamma,
            L=p.L,
            mu=p.mu,
            sigma2=p.sigma2,
            zeta2=p.zeta2_star,
            rho=rho,
            n=n,
            form=form,
        )
    assert ss.step_size_ok
    tiny = 1e-14 * (1 + x0_scale**2)  # round-off when sigma2 = zeta2 = 0 (both ~ 0)
    assert ss.total >= exact.steady_state["error"] * (1 - 1e-10) - tiny
    assert ss.extra["consensus"] >= exact.steady_state["consensus"] * (1 - 1e-10) - tiny
    # finite-T terms agree with the curve
    r = dsgd(
        gamma=gamma,
        L=p.L,
        mu=p.mu,
        sigma2=p.sigma2,
        zeta2=p.zeta2_star,
        rho=rho,
        n=n,
        form=form,
        T=steps,
        avg_error0=float(bound["avg_error"][0]),
        consensus0=float(bound["consensus"][0]),
    )
    assert r.total == pytest.approx(bound["error"][-1], rel=1e-9, abs=1e-300)


def test_dsgd_bound_shape_at_small_step():
    # heterogeneity part ~ gamma^2 rho^2 zeta2 / (1 - rho)^2 (x2), noise ~ gamma sigma2/(mu n)
    base = dict(L=1.0, mu=0.5, sigma2=1.0, zeta2=1.0, rho=0.8, n=10)
    a = dsgd(gamma=1e-4, **base)
    b = dsgd(gamma=5e-5, **base)
    assert a.terms["heterogeneity"] / b.terms["heterogeneity"] == pytest.approx(4.0, rel=1e-3)
    assert a.terms["noise"] / b.terms["noise"] == pytest.approx(2.0, rel=1e-3)
    # the coupled bound contracts e by (1 - gamma mu), so its noise floor is gamma sigma2/(mu n)
    # (rates.md §1), a factor ~2 above the exact PSGD floor gamma sigma2/(mu n (2 - gamma mu))
    assert a.terms["noise"] == pytest.approx(1e-4 * 1.0 / (0.5 * 10), rel=1e-3)
    assert a.terms["optimization"] == 0.0
    assert a.to_dict()["total"] == pytest.approx(a.total)


def test_dsgd_bound_converges_to_steady_state_and_looseness_vs_exact():
    p = heterogeneous_quadratic(8, 3, L=1.0, mu=0.5, zeta2=2.0, sigma2=1.0, seed=0)
    W = lazy_ring(8, 0.5)
    rho = float(np.linalg.norm(W - 1 / 8, 2))
    kw = dict(gamma=0.02, L=p.L, mu=p.mu, sigma2=1.0, zeta2=p.zeta2_star, rho=rho, n=8)
    ss = dsgd(**kw)
    long = dsgd(**kw, T=20000, avg_error0=1.0, consensus0=1.0)
    assert long.total == pytest.approx(ss.total, rel=1e-9)
    exact = exact_dsgd(p, W, 0.02, 0, np.zeros((8, 3))).steady_state["error"]
    assert 1.0 <= ss.total / exact < 100.0  # an upper bound, loose by a modest factor here


def test_psgd_strongly_convex_is_tight_for_isotropic_and_above_otherwise():
    n, d, gamma = 6, 3, 0.2
    iso = QuadraticProblem(
        np.full((n, d), 1.5), np.random.default_rng(0).standard_normal((n, d)), sigma2=2.0
    )
    x0 = iso.x_star + 1.0
    exact = exact_psgd(iso, gamma, 50, x0)
    for T in (0, 7, 50):
        r = psgd(gamma=gamma, L=1.5, mu=1.5, sigma2=2.0, n=n, T=T, r0_sq=3.0)
        assert r.total == pytest.approx(exact.error[T], rel=1e-12)
    aniso = heterogeneous_quadratic(n, d, L=2.0, mu=0.3, sigma2=2.0, seed=1)
    ex = exact_psgd(aniso, gamma, 100, aniso.x_star + 1.0)
    for T in (0, 10, 100):
        r = psgd(gamma=gamma, L=aniso.L, mu=aniso.mu, sigma2=2.0, n=n, T=T, r0_sq=3.0)
        assert r.total >= ex.error[T] * (1 - 1e-12)
    steady = psgd(gamma=gamma, L=aniso.L, mu=aniso.mu, sigma2=2.0, n=n)
    assert steady.total >= ex.steady_state["error"]


def test_psgd_nonconvex_form():
    r = psgd(gamma=0.1, L=2.0, sigma2=3.0, n=4, T=100, delta=5.0)
    assert r.terms == pytest.approx(
        {"optimization": 2 * 5.0 / (0.1 * 100), "noise": 0.1 * 2.0 * 3.0 / 4}
    )
    assert r.kind == "upper" and not r.big_o


def test_step_size_warnings():
    with pytest.warns(TheorylabWarning, match="gamma"):
        r = psgd(gamma=1.5, L=1.0, mu=0.5, sigma2=1.0, n=2)
    assert not r.step_size_ok and math.isinf(r.total)
    with pytest.warns(TheorylabWarning):
        psgd(gamma=1.5, L=1.0, sigma2=1.0, n=2, T=10, delta=1.0)
    with pytest.warns(TheorylabWarning):
        r = dsgd(gamma=0.5, L=1.0, mu=0.1, sigma2=1.0, zeta2=1.0, rho=0.9, n=4)
    assert not r.step_size_ok and math.isinf(r.total)
    with pytest.warns(TheorylabWarning):  # CTA needs rho + gamma L < 1
        r = dsgd(gamma=0.2, L=1.0, mu=0.5, sigma2=1.0, zeta2=1.0, rho=0.9, n=4, form="cta", T=5)
    assert math.isinf(r.total)
    with pytest.warns(TheorylabWarning):  # stable only for finite T: bound finite, ss infinite
        r = dsgd(gamma=0.3, L=1.0, mu=0.1, sigma2=1.0, zeta2=1.0, rho=0.9, n=4, T=5)
    assert math.isfinite(r.total)


def test_dsgd_nonconvex_forms_are_big_o():
    k = dsgd(gamma=0.01, L=1.0, sigma2=1.0, zeta2=4.0, rho=0.9, n=8, T=1000, delta=1.0)
    assert k.big_o and set(k.terms) == {"noise", "heterogeneity", "topology", "optimization"}
    p = 1 - 0.81
    assert k.terms["optimization"] == pytest.approx(1.0 / (p * 1000))
    lian = dsgd(
        gamma=0.01, L=1.0, sigma2=1.0, zeta2=4.0, rho=0.9, n=8, T=1000, delta=1.0, source="lian2017"
    )
    assert lian.big_o and lian.terms["optimization"] == pytest.approx(8 / 1000)
    with pytest.raises(TheorylabError):
        dsgd(
            gamma=0.01,
            L=1.0,
            sigma2=1.0,
            zeta2=4.0,
            rho=0.9,
            n=8,
            T=1000,
            delta=1.0,
            source="nobody",
        )
    with pytest.raises(TheorylabError):
        dsgd(gamma=0.01, L=1.0, sigma2=1.0, zeta2=4.0, rho=0.9, n=8)
    # a misspelt source was ignored on the strongly convex path (which has one derived bound)
    with pytest.raises(TheorylabError, match="source"):
        dsgd(gamma=0.01, L=1.0, mu=0.5, sigma2=1.0, zeta2=4.0, rho=0.9, n=8, source="nobody")


@pytest.mark.parametrize(
    "regime, het, n_exp, gap_exp",
    [
        ("strongly_convex", True, 1, 2),
        ("strongly_convex", False, 1, 1),
        ("nonconvex", True, 3, 4),
        ("nonconvex", False, 3, 2),
    ],
)
def test_transient_scalings(regime, het, n_exp, gap_exp):
    kw = dict(regime=regime, heterogeneous=het, mu=0.1, zeta2=2.0 if het else 0.0)
    t1 = transient_iterations(n=10, rho=0.999, **kw).total
    t2 = transient_iterations(n=20, rho=0.999, **kw).total
    assert t2 / t1 == pytest.approx(2.0**n_exp)
    # p = 1 - rho^2 ~ 2 (1 - rho) as rho -> 1: halving the gap multiplies by 2^gap_exp
    a = transient_iterations(n=10, rho=1 - 1e-6, **kw).total
    b = transient_iterations(n=10, rho=1 - 5e-7, **kw).total
    assert b / a == pytest.approx(2.0**gap_exp, rel=1e-5)
    assert transient_iterations(n=10, rho=0.5, **kw).big_o


def test_transient_explicit_value():
    r = transient_iterations(n=16, rho=0.6, L=2.0, mu=0.5, sigma2=3.0, zeta2=4.0)
    assert r.total == pytest.approx(16 * 2.0 * 4.0 / (0.5 * 3.0 * 0.64**2))


def test_gossip_consensus_bound_vs_exact():
    n = 10
    W = lazy_ring(n)
    lam, U = np.linalg.eigh(W)
    rho = float(np.linalg.norm(W - 1 / n, 2))
    x0 = np.random.default_rng(0).standard_normal((n, 3))
    ex = exact_gossip(W, x0, 30)
    for t in (0, 5, 30):
        assert gossip_consensus(rho, t, ex.consensus[0]).total >= ex.consensus[t] * (1 - 1e-12)
    slow = U[:, np.argmax(np.abs(lam) * (np.abs(lam - 1) > 1e-9))][:, None]  # slowest mode
    tight = exact_gossip(W, slow, 12)
    assert gossip_consensus(rho, 12, tight.consensus[0]).total == pytest.approx(
        tight.consensus[12], rel=1e-9
    )
    assert gossip_consensus([0.5, 0.2], 2).total == pytest.approx(0.01)
    with pytest.raises(TheorylabError):
        gossip_consensus([0.5], 2)
    with pytest.raises(TheorylabError):
        gossip_consensus(1.5, 2)


def test_rate_object_and_bad_inputs():
    r = dsgd(gamma=0.001, L=1.0, mu=0.5, sigma2=1.0, zeta2=1.0, rho=0.5, n=4, T=10, avg_error0=1.0)
    assert isinstance(r, Rate)
    assert r.total == pytest.approx(sum(r.terms.values()))
    assert r.extra["avg_error"] + r.extra["consensus"] == pytest.approx(r.total)
    json.dumps(r.to_dict())
    with pytest.raises(TheorylabError):
        Rate(name="x", quantity="y", terms={}, kind="approximately", source="z")
    with pytest.raises(TheorylabError):
        dsgd(gamma=0.1, L=1.0, mu=0.5, sigma2=1.0, zeta2=1.0, rho=1.0, n=4)
    with pytest.raises(TheorylabError):
        dsgd(gamma=0.1, L=1.0, mu=2.0, sigma2=1.0, zeta2=1.0, rho=0.5, n=4)
    with pytest.raises(TheorylabError):
        dsgd(gamma=0.1, L=1.0, mu=0.5, sigma2=1.0, zeta2=1.0, rho=0.5, n=4, form="push")
    with pytest.raises(TypeError):
        psgd(gamma="0.1", L=1.0, sigma2=1.0, n=4, mu=0.5)
    with pytest.raises(TheorylabError):
        psgd(gamma=0.1, L=1.0, sigma2=1.0, n=4)  # non-convex without T and delta
    with pytest.raises(TheorylabError):
        transient_iterations(n=4, rho=0.5, mu=0.1, zeta2=0.0)  # heterogeneous needs zeta2
    with pytest.raises(TheorylabError):
        transient_iterations(n=4, rho=0.5, regime="convex", zeta2=1.0)


def test_docstring_examples_run():
    import doctest

    import theorylab.exact
    import theorylab.problems
    import theorylab.rates.decentralized

    for module in (theorylab.rates.decentralized, theorylab.exact, theorylab.problems):
        result = doctest.testmod(module)
        assert result.failed == 0 and result.attempted > 0, module.__name__
