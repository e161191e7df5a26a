"""Byzantine rates: closed forms, kinds, the lower bound below every upper bound, warnings."""

from __future__ import annotations

import math

import pytest

from theorylab.aggregators import get_aggregator, kappa_lower_bound
from theorylab.errors import TheorylabError, TheorylabWarning
from theorylab.rates import bucketing_momentum_sgd, byzantine_lower_bound, robust_dshb


def test_robust_dshb_terms():
    r = robust_dshb(kappa=0.5, zeta2=2.0, n=10, f=2, sigma2=4.0, L=2.0, delta=3.0, T=100)
    assert r.kind == "upper" and r.big_o and "2302.01772" in r.source
    assert r.terms["heterogeneity"] == pytest.approx(1.0)
    assert r.terms["noise"] == pytest.approx(math.sqrt((1 / 8 + 0.5) * 2 * 3 * 4 / 100))
    assert r.terms["optimization"] == pytest.approx(0.06)
    floor = robust_dshb(kappa=0.5, zeta2=2.0, n=10, f=2, B2=1.0)
    assert floor.terms["heterogeneity"] == pytest.approx(0.5 * 2 / (1 - 0.5))
    assert floor.terms["noise"] == 0 and floor.name.endswith("/floor")


def test_kappa_b2_warning_and_errors():
    with pytest.warns(TheorylabWarning, match="kappa \\* B2"):
        r = robust_dshb(kappa=2.0, zeta2=1.0, n=10, f=2, B2=0.5)
    assert math.isinf(r.total)
    with pytest.raises(TheorylabError, match="f=5"):
        robust_dshb(kappa=1.0, zeta2=1.0, n=10, f=5)
    with pytest.raises(TheorylabError, match="zeta2"):
        byzantine_lower_bound(zeta2=-1.0, n=10, f=1)


@pytest.mark.parametrize(("n", "f"), [(10, 1), (10, 4), (50, 10), (101, 50)])
def test_lower_bound_below_every_upper_floor(n, f):
    lb = byzantine_lower_bound(zeta2=3.0, n=n, f=f)
    assert lb.kind == "lower" and lb.total == pytest.approx(3.0 * f / (n - 2 * f))
    assert lb.extra["karimireddy"] <= lb.total
    for spec in ("trimmed-mean", "cw-median", "krum", "nnm+trimmed-mean", "nnm+krum"):
        kap = get_aggregator(spec).kappa(n, f)
        assert robust_dshb(kappa=kap, zeta2=3.0, n=n, f=f).total >= lb.total * (1 - 1e-12)
    # an optimal rule (kappa at the lower bound) meets it exactly
    assert robust_dshb(kappa=kappa_lower_bound(n, f), zeta2=3.0, n=n, f=f).total == pytest.approx(
        lb.total
    )


def test_lower_bound_with_b2_breakdown():
    assert byzantine_lower_bound(zeta2=1.0, n=10, f=2, B2=1.0).total == pytest.approx(2 / 4)
    assert math.isinf(byzantine_lower_bound(zeta2=1.0, n=10, f=4, B2=1.0).total)


def test_floor_shapes_linear_in_zeta2_and_nnm_order_f_over_n():
    k = get_aggregator("nnm+cw-median").kappa
    a = robust_dshb(kappa=k(100, 5), zeta2=1.0, n=100, f=5).total
    b = robust_dshb(kappa=k(100, 5), zeta2=2.0, n=100, f=5).total
    assert b == pytest.approx(2 * a)
    # doubling f at fixed n roughly doubles the NNM floor (O(f/n)), not so for bare Krum
    r = k(200, 20) / k(200, 10)
    assert 1.9 < r < 2.6
    kk = get_aggregator("krum").kappa
    assert kk(200, 20) / kk(200, 10) < 1.1


def test_bucketing_closed_form():
    r = bucketing_momentum_sgd(c=2.0, zeta2=1.0, n=10, f=1, sigma2=1.0, T=10)
    assert r.terms["heterogeneity"] == pytest.approx(0.2)
    assert r.terms["noise"] == pytest.approx(math.sqrt((0.2 + 0.1) / 10))
