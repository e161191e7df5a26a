"""(f, kappa)-robustness: the theoretical bounds against a seeded adversarial search.

For every rule with a proven bound (bare and composed with NNM) and several (n, f): the
empirical kappa found by :func:`empirical_kappa` (a lower estimate of the true kappa) must not
exceed the bound, and must reach the universal lower bound f/(n-2f) (the search contains the
lower-bound construction). Deterministic (fixed seeds): false-failure probability 0.
"""

from __future__ import annotations

import math

import pytest
import torch

from theorylab.aggregators import (
    empirical_kappa,
    get_aggregator,
    kappa_lower_bound,
    lower_bound_input,
    robustness_ratio,
    trimmed_mean,
)
from theorylab.errors import TheorylabError

BOUNDED = [
    "trimmed-mean",
    "cw-median",
    "geometric-median:tol=1e-10,max_iter=300",
    "krum",
    "nnm+trimmed-mean",
    "nnm+cw-median",
    "nnm+krum",
    "nnm+geometric-median:tol=1e-10,max_iter=300",
]
CASES = [(5, 1), (7, 2), (7, 3), (10, 3)]


@pytest.mark.parametrize("spec", BOUNDED)
@pytest.mark.parametrize(("n", "f"), CASES)
def test_empirical_kappa_within_bound_and_above_lower_bound(spec, n, f):
    agg = get_aggregator(spec)
    bound = agg.kappa(n, f)
    emp = empirical_kappa(agg, n, f, d=2, seed=n * 10 + f, ascent_steps=40, batch=64)
    assert emp.kappa <= bound * (1 + 1e-6), (spec, n, f, emp)
    assert emp.kappa >= kappa_lower_bound(n, f) * (1 - 1e-6), (spec, n, f, emp)


@pytest.mark.parametrize("spec", ["trimmed-mean", "cw-median", "krum", "nnm+trimmed-mean"])
def test_lower_bound_input_gives_exactly_f_over_n_minus_2f(spec):
    for n, f in CASES:
        x = lower_bound_input(n, f, d=3)
        y = get_aggregator(spec)(x, f)
        assert float(robustness_ratio(x, y, f)) == pytest.approx(f / (n - 2 * f), rel=1e-12)


def test_mean_is_not_robust_and_search_can_fail():
    """The search must be able to fail: plain averaging and a trimmed mean that trims one value
    too few have unbounded kappa, and the search finds it."""
    assert math.isinf(empirical_kappa(get_aggregator("mean"), 7, 2).kappa)

    def weak_trim(x, f):
        return trimmed_mean(x, f - 1)

    emp = empirical_kappa(weak_trim, 7, 2, seed=1)
    assert emp.kappa > get_aggregator("trimmed-mean").kappa(7, 2)


def test_nnm_lowers_kappa_order_for_large_n():
    """kappa of F o NNM is O(f/n): at f/n fixed it shrinks relative to bare Krum/GM/CWMed only
    through constants; at fixed f and growing n it decays like 1/n (bound), bare Krum does not."""
    for spec in ("krum", "cw-median", "geometric-median"):
        bare = [get_aggregator(spec).kappa(n, 1) for n in (50, 100, 200)]
        mixed = [get_aggregator("nnm+" + spec).kappa(n, 1) for n in (50, 100, 200)]
        assert bare[-1] > 0.9 * bare[0]  # Theta(1)
        assert mixed[1] / mixed[0] == pytest.approx(0.5, rel=0.05)
        assert mixed[2] / mixed[1] == pytest.approx(0.5, rel=0.05)


def test_bounds_closed_forms_and_errors():
    agg = get_aggregator
    assert agg("trimmed-mean").kappa(10, 2) == pytest.approx(6 * 2 / 6 * (1 + 2 / 6))
    assert agg("krum").kappa(10, 2) == pytest.approx(6 * (1 + 2 / 6))
    assert agg("cw-median").kappa(10, 2) == pytest.approx(4 * (1 + 2 / 6) ** 2)
    assert agg("nnm+krum").kappa(10, 2) == pytest.approx(8 * 2 / 8 * (6 * (1 + 2 / 6) + 1))
    assert agg("mean").kappa(10, 0) == 0.0 and math.isinf(agg("mean").kappa(10, 1))
    assert agg("trimmed-mean").kappa(10, 0) == 0.0
    with pytest.raises(TheorylabError, match="f=5"):
        kappa_lower_bound(10, 5)


def test_robustness_ratio_brute_force():
    import itertools

    g = torch.Generator().manual_seed(3)
    x = torch.randn(6, 2, generator=g, dtype=torch.float64)
    y = torch.randn(2, generator=g, dtype=torch.float64)
    best = 0.0
    for S in itertools.combinations(range(6), 4):
        xs = x[list(S)]
        m = xs.mean(0)
        best = max(best, float(((y - m) ** 2).sum() / ((xs - m) ** 2).sum(-1).mean()))
    assert float(robustness_ratio(x, y, 2)) == pytest.approx(best, rel=1e-12)
