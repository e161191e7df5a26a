"""The Byzantine claims: declared, pass at the quick budget, their figures draw, and the fixed
point they rely on (robust PSGD's floor = the rule's deviation on the centres) holds."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from theorylab.aggregators import get_aggregator
from theorylab.attacks import mimic, with_byzantine
from verify.claims import CLAIMS, ClaimContext
from verify.claims import byzantine as B

NAMES = ["byzantine_floor_vs_f", "nnm_floor_order", "empirical_kappa_bound",
         "byzantine_attacks_floor"]  # fmt: skip


@pytest.fixture(scope="module")
def ctx():
    with ClaimContext("quick", world_size=4, seed=0) as c:
        yield c


@pytest.fixture(scope="module")
def results(ctx):
    return {name: CLAIMS[name].run(ctx) for name in NAMES}


def test_declared():
    for name in NAMES:
        c = CLAIMS[name]
        assert c.kind in ("shape", "bound") and c.question and c.plain and c.detectable
        assert c.config("quick") and c.config("full")


@pytest.mark.parametrize("name", NAMES)
def test_claim_passes_at_quick_budget(results, name):
    r = results[name]
    assert r.verdict == "pass", r.detail
    assert len(r.checks) >= 2


@pytest.mark.parametrize("name", NAMES)
def test_figure_draws_from_the_saved_result(results, name):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from figures.draw import DRAWERS, draw

    assert name in DRAWERS
    data = json.loads(json.dumps(results[name].to_dict()))
    fig = plt.figure()
    draw(data, fig)
    assert fig.axes and all(ax.get_legend_handles_labels()[0] for ax in fig.axes)
    plt.close(fig)


@pytest.mark.parametrize("spec", ["trimmed-mean", "nnm+cw-median", "krum"])
def test_run_floor_equals_the_rule_deviation_on_the_centres(ctx, spec):
    # independent computation: the rule applied once to the honest centres plus the mimic
    # copies gives the fixed point x_hat; the run must reach ||x_hat - b_H||^2 / zeta2
    n, f, d = 11, 3, 2
    b = B._two_cluster_centres(n, f, d)
    H = torch.tensor(b)
    x_hat = get_aggregator(spec)(with_byzantine(H, mimic(H, f, n - f - 1)), f)
    bH = b.mean(axis=0)
    want = float(((x_hat.numpy() - bH) ** 2).sum() / ((b - bH) ** 2).sum(axis=1).mean())
    got = B._floor_ratio(ctx, spec, b, f, gamma=0.5, steps=60, attack=f"mimic:idx={n - f - 1}")
    assert got == pytest.approx(want, rel=1e-9, abs=1e-15)


def test_lower_bound_instance_attains_f_over_n_minus_2f(ctx):
    n, d = 9, 2
    for f in range(1, 5):
        r = B._floor_ratio(ctx, "cw-median", B._lower_bound_centres(n, f, d), f, gamma=0.5,
                           steps=60, attack="mimic:idx=0")  # fmt: skip
        assert r == pytest.approx(f / (n - 2 * f), rel=1e-9)


def test_slope_check_is_two_sided_on_its_interval():
    x = np.array([0.1, 0.2, 0.4, 0.8])
    assert B._slope_check(x, x, 1.0, 0.05).passed
    assert not B._slope_check(x, x**1.2, 1.0, 0.05).passed
    assert B._slope_check(x, x**2, 1.0, 0.15, one_sided=True).passed
    assert not B._slope_check(x, x**0.5, 1.0, 0.15, one_sided=True).passed
    assert not B._slope_check(x, np.array([1.0, np.nan, 1.0, 1.0]), 0.0, 0.1).passed
