"""Aggregators and pre-aggregators: known answers against brute-force loops, bad input,
registry declarations, and hypothesis conformance for every registered rule."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings

from theorylab.aggregators import (
    PRE_AGGREGATORS,
    RULES,
    arc,
    bucketing,
    centered_clipping,
    coordinate_median,
    geometric_median,
    get_aggregator,
    krum,
    krum_scores,
    mean,
    minimum_diameter_average,
    monna,
    multi_krum,
    nnm,
    static_clipping,
    trimmed_mean,
)
from theorylab.errors import TheorylabError
from theorylab.testing.aggregators import (
    AggregatorCheckError,
    check_aggregator,
    check_nonfinite,
    stacks,
)

DEV = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _x(n=7, d=3, seed=0, batch=()):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*batch, n, d, generator=g, dtype=torch.float64)


# ---------------------------------------------------------------- known answers (brute force)


def test_median_even_is_average_of_middle_values():
    x = torch.tensor([[1.0], [2.0], [3.0], [10.0]])
    assert coordinate_median(x).item() == 2.5
    x = _x(8, 4)
    ref = np.median(x.numpy(), axis=0)  # numpy: average of the two middle values
    assert np.allclose(coordinate_median(x).numpy(), ref)
    x = _x(9, 4)
    assert np.allclose(coordinate_median(x).numpy(), np.median(x.numpy(), axis=0))


def test_trimmed_mean_matches_sort_loop():
    x = _x(9, 5)
    for f in range(5):
        xs = np.sort(x.numpy(), axis=0)
        ref = xs[f : 9 - f].mean(axis=0)
        assert np.allclose(trimmed_mean(x, f).numpy(), ref)


def _krum_scores_loop(x, f):
    n = len(x)
    out = []
    for i in range(n):
        d = sorted(float(((x[i] - x[j]) ** 2).sum()) for j in range(n) if j != i)
        out.append(sum(d[: n - f - 1]))
    return np.array(out)


def test_krum_and_multikrum_match_loops():
    x = _x(9, 4, seed=3)
    for f in range(4):
        s = _krum_scores_loop(x.numpy(), f)
        assert np.allclose(krum_scores(x, f).numpy(), s)
        assert torch.equal(krum(x, f), x[int(np.argmin(s))])
        best = np.argsort(s)[: 9 - f]
        assert np.allclose(multi_krum(x, f).numpy(), x.numpy()[best].mean(0))
        assert np.allclose(multi_krum(x, f, m=2).numpy(), x.numpy()[np.argsort(s)[:2]].mean(0))


def test_geometric_median_first_order_condition_and_tolerance():
    x = _x(11, 3, seed=5)
    res = geometric_median(x, tol=1e-14, max_iter=10_000, return_info=True)
    assert bool(res.converged)
    r = x - res.z
    grad = (r / torch.linalg.vector_norm(r, dim=-1, keepdim=True)).sum(0)
    assert float(torch.linalg.vector_norm(grad)) < 1e-5  # subgradient of sum ||z - x_i||
    # objective no larger than at any input or the mean (the minimiser)
    obj = lambda z: float(torch.linalg.vector_norm(x - z, dim=-1).sum())  # noqa: E731
    assert all(obj(res.z) <= obj(c) + 1e-12 for c in list(x) + [x.mean(0)])
    # majority at one point: the geometric median is that point
    y = torch.zeros(7, 2, dtype=torch.float64)
    y[:3] = torch.tensor([5.0, -1.0], dtype=torch.float64)
    assert float(geometric_median(y, tol=1e-15, max_iter=5000).abs().max()) < 1e-6


def test_geometric_median_reports_non_convergence():
    res = geometric_median(_x(9, 3), tol=1e-15, max_iter=2, return_info=True)
    assert res.iterations == 2 and not bool(res.converged)


def test_mda_matches_enumeration():
    x = _x(8, 3, seed=7)
    xn = x.numpy()
    for f in range(4):
        best, bestd = None, (math.inf, math.inf)
        for S in itertools.combinations(range(8), 8 - f):
            dd = [float(((xn[i] - xn[j]) ** 2).sum()) for i in S for j in S]
            key = (max(dd), sum(dd))  # diameter, ties by the spread
            if key < bestd:
                best, bestd = S, key
        assert np.allclose(minimum_diameter_average(x, f).numpy(), xn[list(best)].mean(0))


def test_mda_limit_names_the_count():
    with pytest.raises(TheorylabError, match=r"C\(40, 15\)"):
        minimum_diameter_average(_x(40, 2), 15)


def test_monna_nnm_match_loops():
    x = _x(8, 3, seed=9)
    xn = x.numpy()
    f = 2
    d = ((xn[:, None] - xn[None]) ** 2).sum(-1)
    ref = np.stack([xn[np.argsort(d[i], kind="stable")[: 8 - f]].mean(0) for i in range(8)])
    assert np.allclose(nnm(x, f).numpy(), ref)
    assert np.allclose(monna(x, f, idx=3).numpy(), ref[3])


def test_bucketing_partitions_a_permutation():
    x = _x(7, 2, seed=1)
    y = bucketing(x, 1, s=2, generator=4)
    assert y.shape == (4, 2)
    assert torch.allclose(y[:3].sum(0) * 2 + y[3], x.sum(0))  # buckets 2, 2, 2, 1
    assert torch.equal(y, bucketing(x, 1, s=2, generator=4))  # seeded
    assert not torch.equal(y, bucketing(x, 1, s=2, generator=5))
    # every bucket mean is the mean of a distinct pair / the last single
    rows = {tuple(np.round(r, 12)) for r in x.numpy()}
    assert tuple(np.round(y[3].numpy(), 12)) in rows


def test_arc_and_static_clipping():
    x = torch.tensor(
        [[3.0, 4.0], [0.0, 1.0], [0.0, 2.0], [6.0, 8.0], [0.3, 0.4]], dtype=torch.float64
    )
    f = 1  # k = floor(2 * 1/5 * 4) = 1: the largest (norm 10) clipped to the next (norm 5)
    y = arc(x, f)
    assert torch.allclose(y[3], torch.tensor([3.0, 4.0], dtype=torch.float64))
    assert torch.equal(y[[0, 1, 2, 4]], x[[0, 1, 2, 4]])
    x0 = x.clone()
    c = static_clipping(x, c=2.0)
    assert torch.equal(x, x0)  # not in place
    assert torch.allclose(
        torch.linalg.vector_norm(c, dim=-1), torch.tensor([2, 1, 2, 2, 0.5]).double()
    )


def test_centered_clipping_update_rule():
    x = _x(6, 2, seed=2)
    v = torch.zeros(2, dtype=torch.float64)
    ref = v.clone()
    for _ in range(2):
        dif = x - ref
        nrm = torch.linalg.vector_norm(dif, dim=-1, keepdim=True)
        ref = ref + (dif * torch.clamp(0.5 / nrm, max=1.0)).mean(0)
    assert torch.allclose(centered_clipping(x, tau=0.5, n_iter=2, center=v), ref)
    # huge tau: one step from any centre gives the mean
    assert torch.allclose(centered_clipping(x, tau=1e9, n_iter=1), x.mean(0))


def test_centered_clipping_displacement_bound():
    """Each iteration moves v by at most tau (f/n) towards the Byzantine inputs, plus the honest
    pull: from the honest median, ||v - median|| <= n_iter tau."""
    g = torch.Generator().manual_seed(0)
    h = torch.randn(8, 3, generator=g, dtype=torch.float64)
    byz = torch.full((3, 3), 1e9, dtype=torch.float64)
    x = torch.cat([h, byz])
    v0 = coordinate_median(x)
    for tau in (0.01, 0.1, 1.0):
        v = centered_clipping(x, 3, tau=tau, n_iter=3)
        assert float(torch.linalg.vector_norm(v - v0)) <= 3 * tau * (1 + 1e-12)


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("name", sorted(RULES))
def test_f_limits_and_negative_f(name):
    agg = get_aggregator(name)
    x = _x(6, 2)
    with pytest.raises(TheorylabError, match="f=3"):
        agg(x, 3)
    with pytest.raises(TheorylabError, match="f=-1"):
        agg(x, -1)
    with pytest.raises(TypeError):
        agg(x, 1.5)


def test_shapes_and_spec_errors():
    with pytest.raises(TheorylabError, match=r"vector 1 has shape \(3,\)"):
        mean([torch.zeros(2), torch.zeros(3)])
    with pytest.raises(TheorylabError, match=r"\(\.\.\., n, d\)"):
        mean(torch.zeros(3))
    with pytest.raises(TheorylabError, match="unknown aggregation rule 'krumm'"):
        get_aggregator("krumm")
    with pytest.raises(TheorylabError, match="unknown pre-aggregator"):
        get_aggregator("krum+nnm")
    with pytest.raises(TheorylabError, match="bad parameter"):
        get_aggregator("krum:bogus=1")
    # bucketing shrinks n: the rule's own limit is checked on ceil(n/s) inputs
    with pytest.raises(TheorylabError, match="rule sees 4 inputs"):
        get_aggregator("bucketing:s=2+trimmed-mean")(_x(8, 2), 2)
    assert get_aggregator("bucketing:s=2+trimmed-mean").max_f(8) == 1
    assert get_aggregator("krum").max_f(7) == 3


def test_spec_round_trip_and_aliases():
    for spec in ["nnm+trimmed-mean", "bucketing:s=3+krum", "clip:c=0.5+geometric-median:tol=1e-09"]:
        assert get_aggregator(spec).spec == spec
    assert get_aggregator("cwtm").spec == "trimmed-mean"
    assert get_aggregator("nnm+cwtm").kappa(10, 2) == pytest.approx(
        8 * 2 / 8 * (6 * 2 / 6 * (1 + 2 / 6) + 1)
    )
    assert get_aggregator("arc+krum").kappa(10, 2) is None


# ---------------------------------------------------------------- batching, devices, dtypes


ALL_SPECS = sorted(RULES) + [p + "+" + r for p in PRE_AGGREGATORS for r in ("trimmed-mean", "krum")]


@pytest.mark.parametrize("device", DEV)
@pytest.mark.parametrize("spec", ALL_SPECS)
def test_batched_float32_on_device(spec, device):
    agg = get_aggregator(spec)
    x = _x(9, 4, batch=(2, 3)).float().to(device)
    y = agg(x, 2, generator=0)
    assert y.shape == (2, 3, 4) and y.device.type == device and y.dtype == torch.float32
    if not agg.randomized:
        y0 = agg(x[1, 2], 2)
        assert torch.allclose(y[1, 2], y0, atol=1e-5)


def test_nonfinite_rows_are_replaced_not_propagated():
    x = _x(7, 3)
    x[2, 1] = float("nan")
    x[5] = float("inf")
    for name in RULES:
        y = get_aggregator(name)(x, 2)
        assert bool(torch.isfinite(y).all()), name


def test_all_nonfinite_warns_and_gives_zero():
    from theorylab.errors import TheorylabWarning

    with pytest.warns(TheorylabWarning, match="no finite message"):
        y = mean(torch.full((3, 2), float("nan")))
    assert torch.equal(y, torch.zeros(2))


def test_plain_mean_fails_the_nonfinite_kit_when_unprotected():
    """The kit can fail: a mean without the outlier replacement lets NaN through."""

    def naive(x, f):
        return x.mean(dim=-2)

    with pytest.raises(AggregatorCheckError, match="non-finite"):
        check_nonfinite(naive, _x(5, 2), 1)


# ---------------------------------------------------------------- hypothesis conformance


ROBUST_SPECS = [s for s in sorted(RULES) if s != "mean"] + [
    "nnm+trimmed-mean",
    "nnm+krum",
    "nnm+cw-median",
    "nnm+geometric-median",
    "arc+cw-median",
    "clip:c=100+trimmed-mean",
    "bucketing:s=2+cw-median",
]


@pytest.mark.parametrize("spec", ROBUST_SPECS + ["mean"])
@settings(max_examples=25, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=stacks(max_n=9, kinds=("gaussian", "clusters", "outlier", "duplicates")))
def test_conformance(spec, data):
    x, f = data
    agg = get_aggregator(spec if "geometric" not in spec else spec + ":tol=1e-12")
    if agg._n_rule(x.shape[-2]) <= 2 * f or (agg.rule.limit == "krum" and x.shape[-2] - f < 2):
        f = agg.max_f(x.shape[-2])
        if f < 0:
            return
    kinds = {}
    if spec.endswith("centered-clipping"):
        kinds = {"bounded": False}  # moves up to n_iter tau f / n: scale-dependent
    # Krum-type scores can tie between distinct rows (duplicates kind): skip the permutation check
    pi = None if "krum" not in spec else False
    rep = check_aggregator(agg, x, f, permutation_invariant=pi, **kinds)
    assert rep


@settings(max_examples=40, derandomize=True, deadline=None)
@given(data=stacks(max_n=9, kinds=("gaussian", "integers", "mixed-scales")))
def test_krum_permutation_invariant_without_ties(data):
    x, f = data
    s = krum_scores(x, f)
    if len(set(np.round(s.numpy(), 9))) < len(s):
        return  # a score tie between distinct rows: the lowest index wins (documented)
    perm = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(1))
    assert torch.equal(krum(x, f), krum(x[perm], f))
