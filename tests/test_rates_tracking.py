"""Gradient tracking / exact diffusion rates, symbol conversions, transient iterations and the
numerical crossing point (checked by brute force over T)."""

import math
import warnings

import numpy as np
import pytest
from graphs import lazy_ring, ring
from hypothesis import given, settings
from hypothesis import strategies as st

from theorylab.errors import TheorylabError, TheorylabWarning
from theorylab.rates import dsgd, transient_iterations
from theorylab.rates.symbols import (
    lian_rho_from_rho,
    mixing_symbols,
    p_from_rho,
    rho_from_eigenvalues,
    rho_from_laplacian,
    rho_from_lian_rho,
    rho_from_p,
    rho_from_spectral_gap,
    spectral_gap_from_rho,
)
from theorylab.rates.tracking import (
    crossing_iteration,
    exact_diffusion,
    gradient_tracking,
    transient_crossing,
)

# ---- symbols ---------------------------------------------------------------------------------


@settings(deadline=None, max_examples=100, derandomize=True)
@given(rho=st.floats(0.0, 1.0))
def test_symbol_round_trips_and_bounds(rho):
    assert rho_from_p(p_from_rho(rho)) == pytest.approx(rho, abs=1e-7)
    assert rho_from_lian_rho(lian_rho_from_rho(rho)) == pytest.approx(rho, abs=1e-12)
    assert rho_from_spectral_gap(spectral_gap_from_rho(rho)) == pytest.approx(rho, abs=1e-15)
    gap, p = 1 - rho, p_from_rho(rho)
    assert gap - 1e-15 <= p <= 2 * gap + 1e-15


@pytest.mark.parametrize("n", [3, 6, 11])
def test_mixing_symbols_against_direct_computation(n):
    for W in (ring(n), lazy_ring(n, 0.5), lazy_ring(n, 0.1)):
        s = mixing_symbols(W)
        rho = float(np.linalg.norm(W - np.full((n, n), 1 / n), 2))
        lam = np.sort(np.linalg.eigvalsh(W))
        assert s.rho == pytest.approx(rho, abs=1e-12)
        assert s.p == pytest.approx(1 - rho**2, abs=1e-12)
        assert s.lian_rho == pytest.approx(max(abs(lam[-2]), abs(lam[0])) ** 2, abs=1e-12)
        assert s.choco_beta == pytest.approx(float(np.linalg.norm(np.eye(n) - W, 2)), abs=1e-12)
        assert s.choco_delta >= s.spectral_gap - 1e-12  # 1 - |lambda_2| >= 1 - rho
        if lam[0] >= -lam[-2]:
            assert s.choco_delta == pytest.approx(s.spectral_gap, abs=1e-12)
        assert rho_from_eigenvalues(lam) == pytest.approx(rho, abs=1e-12)


@pytest.mark.parametrize("n", [4, 7])
def test_rho_from_laplacian_matches_W(n):
    A = ring(n) > 0
    np.fill_diagonal(A, False)
    Lg = np.diag(A.sum(1)) - A.astype(float)
    for a in (0.1, 1 / 3, 0.45):
        W = np.eye(n) - a * Lg
        assert rho_from_laplacian(np.linalg.eigvalsh(Lg), a) == pytest.approx(
            mixing_symbols(W).rho, abs=1e-12
        )


def test_symbol_bad_input():
    with pytest.raises(TheorylabError, match="1.5"):
        p_from_rho(1.5)
    with pytest.raises(TheorylabError, match="p"):
        rho_from_p(-0.1)
    with pytest.raises(TheorylabError, match="largest eigenvalue"):
        rho_from_eigenvalues([0.9, 0.1])
    with pytest.raises(TheorylabError, match="disconnected"):
        rho_from_laplacian([0.0, 0.0, 2.0], 0.3)
    with pytest.raises(TheorylabError, match="symmetric"):
        mixing_symbols([[0.5, 0.5], [0.0, 1.0]])


# ---- rates -----------------------------------------------------------------------------------


def test_no_heterogeneity_term_and_shapes():
    for fn in (gradient_tracking, exact_diffusion):
        for kw in (dict(mu=0.5, r0_sq=1.0), dict(delta=1.0)):
            r = fn(L=1.0, sigma2=1.0, n=8, rho=0.9, T=1000, **kw)
            assert r.terms["heterogeneity"] == 0.0 and r.big_o and r.kind == "upper"
    # complete graph (rho = 0): exact diffusion has no topology term
    assert exact_diffusion(L=1.0, sigma2=1.0, n=8, rho=0.0, T=10, delta=1.0).terms["topology"] == 0
    # topology term ~ 1/(p c^2 T^2) (GT, strongly convex)
    a = gradient_tracking(L=1.0, sigma2=1.0, n=8, rho=0.6, T=100, mu=0.5, c=1.0)
    b = gradient_tracking(L=1.0, sigma2=1.0, n=8, rho=0.6, T=100, mu=0.5, c=0.5)
    assert b.terms["topology"] / a.terms["topology"] == pytest.approx(4.0)


def test_step_warnings_and_bad_input():
    with pytest.warns(TheorylabWarning, match="gamma"):
        gradient_tracking(L=1.0, sigma2=1.0, n=4, rho=0.9, T=10, delta=1.0, gamma=0.5)
    with pytest.warns(TheorylabWarning, match="gamma"):
        exact_diffusion(L=1.0, sigma2=1.0, n=4, rho=0.9, T=10, delta=1.0, gamma=0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gradient_tracking(L=1.0, sigma2=1.0, n=4, rho=0.9, T=10, delta=1.0, gamma=0.01)
        exact_diffusion(L=1.0, sigma2=1.0, n=4, rho=0.9, T=10, delta=1.0, gamma=0.01)
    with pytest.raises(TheorylabError, match="-0.5"):
        exact_diffusion(L=1.0, sigma2=1.0, n=4, rho=0.5, T=10, delta=1.0, lambda_min=-0.5)
    with pytest.raises(TheorylabError, match="rho"):
        gradient_tracking(L=1.0, sigma2=1.0, n=4, rho=1.0, T=10, delta=1.0)
    with pytest.raises(TheorylabError, match="c"):
        gradient_tracking(L=1.0, sigma2=1.0, n=4, rho=0.5, T=10, delta=1.0, c=2.0)
    with pytest.raises(TheorylabError):
        exact_diffusion(L=1.0, sigma2=1.0, n=4, rho=0.5, T=10)  # neither mu nor delta
    with pytest.raises(TheorylabError, match="factor"):
        crossing_iteration(lambda T: 1.0, lambda T: 1.0, factor=1.0)
    with pytest.raises(TheorylabError, match="algorithm"):
        transient_crossing("push_sum", regime="nonconvex", n=4, rho=0.5)
    with pytest.raises(TheorylabError, match="algorithm"):
        transient_iterations(n=4, rho=0.5, mu=0.1, algorithm="push_sum")


# ---- transient iterations --------------------------------------------------------------------


@pytest.mark.parametrize(
    "algorithm, regime, n_exp, gap_exp",
    [
        ("gradient_tracking", "strongly_convex", 1, 1),
        ("gradient_tracking", "nonconvex", 3, 2),
        ("exact_diffusion", "strongly_convex", 1, 1),
        ("exact_diffusion", "nonconvex", 3, 2),
    ],
)
def test_corrected_transient_scalings(algorithm, regime, n_exp, gap_exp):
    kw = dict(regime=regime, mu=0.1, algorithm=algorithm)
    t1 = transient_iterations(n=10, rho=0.999, **kw).total
    t2 = transient_iterations(n=20, rho=0.999, **kw).total
    assert t2 / t1 == pytest.approx(2.0**n_exp)
    a = transient_iterations(n=10, rho=1 - 1e-6, **kw).total
    b = transient_iterations(n=10, rho=1 - 5e-7, **kw).total
    assert b / a == pytest.approx(2.0**gap_exp, rel=1e-5)
    # the zeta2-free methods do not care about heterogeneity
    assert transient_iterations(n=10, rho=0.9, zeta2=5.0, **kw).total == pytest.approx(
        transient_iterations(n=10, rho=0.9, heterogeneous=False, **kw).total
    )


def _brute(algorithm, regime, *, n, rho, mu=None, zeta2=0.0, sigma2=1.0, factor=1.1):
    """First T found by evaluating every T = 1..2e6 (vectorised; independent of the bisection).
    The expressions are written out here and spot-checked against the rate functions."""
    L, delta, p = 1.0, 1.0, 1 - rho**2
    T = np.arange(1, 2_000_001, dtype=float)
    if regime == "strongly_convex":
        ref = sigma2 / (mu * n * T)
        net = {
            "dsgd": L * (sigma2 / p + zeta2 / p**2),
            "gradient_tracking": L * sigma2 / p,
            "exact_diffusion": L * rho**2 * sigma2 / (1 - rho),
        }[algorithm] / (mu**2 * T**2)
        err = ref + net
    else:
        noise = np.sqrt(L * delta * sigma2 / (n * T))
        ref = noise + L * delta / T
        if algorithm == "dsgd":
            err = (
                noise
                + (L * delta * math.sqrt(zeta2) / (p * T)) ** (2 / 3)
                + (L * delta * math.sqrt(sigma2 / p) / T) ** (2 / 3)
                + L * delta / (p * T)
            )
            check = dsgd(gamma=1, L=L, sigma2=sigma2, zeta2=zeta2, rho=rho, n=n, T=77, delta=1)
        elif algorithm == "gradient_tracking":
            err = (
                noise
                + (L * delta * math.sqrt(sigma2) / (math.sqrt(p) * T)) ** (2 / 3)
                + (L * delta / (p * T))
            )
            check = gradient_tracking(L=L, sigma2=sigma2, n=n, rho=rho, T=77, delta=1)
        else:
            gap = 1 - rho
            err = (
                noise
                + (L * delta * rho * math.sqrt(sigma2) / (math.sqrt(gap) * T)) ** (2 / 3)
                + L * delta / (gap * T)
            )
            check = exact_diffusion(L=L, sigma2=sigma2, n=n, rho=rho, T=77, delta=1)
        assert err[76] == pytest.approx(check.total, rel=1e-12)
    miss = np.flatnonzero(err > factor * ref)
    if miss.size and miss[-1] == T.size - 1:
        return math.inf
    return float(miss[-1] + 2) if miss.size else 1.0  # first T after the last failure


@pytest.mark.parametrize("algorithm", ["dsgd", "gradient_tracking", "exact_diffusion"])
@pytest.mark.parametrize("regime", ["strongly_convex", "nonconvex"])
def test_crossing_matches_brute_force(algorithm, regime):
    if regime == "strongly_convex":
        kw = dict(n=4, rho=0.5, mu=0.5, zeta2=0.3, factor=1.1)
    else:  # the T^{-2/3} terms make factor 1.1 need T ~ 1e7+; factor 1.5 keeps the scan short
        kw = dict(n=2, rho=0.3, zeta2=0.01, sigma2=0.1, factor=1.5)
    got = transient_crossing(algorithm, regime=regime, **kw)
    want = _brute(algorithm, regime, **kw)
    assert math.isfinite(want) and got == want and got > 10


def test_crossing_is_the_last_one():
    # ratio 1 + 0.05/T (fine at T = 1) plus a hump 50 T^2/(T^3 + 1e6) failing around T ~ 100
    def err(T):
        return 1.0 + 0.05 / T + 50 * T**2 / (T**3 + 1e6)

    got = crossing_iteration(err, lambda T: 1.0, factor=1.1)
    T = np.arange(1, 10**6)
    fails = np.flatnonzero(err(T.astype(float)) > 1.1)
    assert err(1.0) <= 1.1 and got == fails[-1] + 2


@pytest.mark.parametrize("algorithm", ["dsgd", "gradient_tracking", "exact_diffusion"])
def test_sc_crossing_closed_form(algorithm):
    n, rho, mu, zeta2, factor = 16, 0.8, 0.2, 2.0, 1.1
    common = dict(n=n, rho=rho, mu=mu, regime="strongly_convex", algorithm=algorithm)
    if algorithm == "dsgd":
        total = (
            transient_iterations(zeta2=zeta2, **common).total
            + transient_iterations(heterogeneous=False, **common).total
        )
    else:
        total = transient_iterations(**common).total
    got = transient_crossing(algorithm, regime="strongly_convex", n=n, rho=rho, mu=mu,
                             zeta2=zeta2, factor=factor)  # fmt: skip
    assert got == math.ceil(total / (factor - 1) - 1e-9)


def test_crossing_orders_methods_and_scales():
    kw = dict(regime="nonconvex", n=16, rho=0.95, zeta2=1.0)
    d, g, e = (transient_crossing(a, **kw) for a in ("dsgd", "gradient_tracking",
                                                      "exact_diffusion"))  # fmt: skip
    assert d > g and d > e  # heterogeneity-corrected methods reach linear speed-up sooner
    # ED non-convex crossing grows ~ n^3 at fixed rho (leading term dominates for large n)
    t1 = transient_crossing("exact_diffusion", regime="nonconvex", n=64, rho=0.95)
    t2 = transient_crossing("exact_diffusion", regime="nonconvex", n=128, rho=0.95)
    assert 7.0 < t2 / t1 < 9.0
    assert crossing_iteration(lambda T: 1 / T + 100 / T**2, lambda T: 1 / T) == 1000
    assert crossing_iteration(lambda T: 2.0, lambda T: 1.0, T_max=1000) == math.inf


def test_docstring_examples_run():
    import doctest

    import theorylab.rates.decentralized
    import theorylab.rates.symbols
    import theorylab.rates.tracking

    for module in (
        theorylab.rates.tracking,
        theorylab.rates.symbols,
        theorylab.rates.decentralized,
    ):
        result = doctest.testmod(module)
        assert result.failed == 0 and result.attempted > 0, module.__name__
