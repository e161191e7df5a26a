"""Attacks: definitions, ALIE's z against the reference table, seeding, batching, optimised
variants, and NaN/inf messages through every aggregator (hypothesis)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from theorylab.aggregators import RULES, get_aggregator
from theorylab.attacks import (
    LABEL_FLIPPING,
    alie,
    alie_z,
    flip_labels,
    gaussian,
    get_attack,
    ipm,
    mimic,
    nonfinite,
    optimal_alie,
    optimal_ipm,
    sign_flipping,
    with_byzantine,
)
from theorylab.errors import TheorylabError


def _h(h=8, d=4, seed=0, batch=()):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*batch, h, d, generator=g, dtype=torch.float64) + 1.0


@pytest.mark.parametrize(
    ("n", "f", "z"),
    [
        (12, 2, 0.210),
        (20, 3, 0.253),
        (20, 8, 1.036),
        (25, 5, 0.468),
        (60, 12, 0.477),
        (60, 18, 0.784),
    ],
)
def test_alie_z_matches_reference_table(n, f, z):
    # byzantine_async.md §1.5, column Phi^{-1}((n - s)/n), s = floor(n/2 + 1) - f
    assert alie_z(n, f) == pytest.approx(z, abs=5e-4)


def test_definitions():
    h = _h()
    mu, sd = h.mean(0), h.std(0)
    assert torch.allclose(sign_flipping(h, 3), (-mu).expand(3, -1))
    assert torch.allclose(ipm(h, 2, eps=0.5), (-0.5 * mu).expand(2, -1))
    assert torch.allclose(alie(h, 2, z=1.5), (mu + 1.5 * sd).expand(2, -1))
    assert torch.allclose(alie(h, 2), (mu + alie_z(10, 2) * sd).expand(2, -1))
    assert torch.equal(mimic(h, 2, idx=3), h[3].expand(2, -1))
    assert nonfinite(h, 2).isnan().all() and nonfinite(h, 1, "inf").isposinf().all()
    assert with_byzantine(h, ipm(h, 2)).shape == (10, 4)
    assert sign_flipping(h, 0).shape == (0, 4)


def test_seeded_and_batched():
    h = _h(batch=(3,))
    a = gaussian(h, 2, generator=7, sigma=2.0)
    assert a.shape == (3, 2, 4) and torch.equal(a, gaussian(h, 2, generator=7, sigma=2.0))
    assert not torch.equal(a, gaussian(h, 2, generator=8, sigma=2.0))
    assert torch.allclose(alie(h, 2)[1], alie(h[1], 2))
    assert torch.allclose(get_attack("ipm:eps=3")(h, 1), ipm(h, 1, eps=3.0))
    with pytest.raises(TheorylabError, match="unknown attack"):
        get_attack("nope")
    with pytest.raises(TheorylabError, match="f must be >= 0"):
        ipm(h, -1)


def test_label_flipping():
    y = torch.tensor([0, 3, 9])
    assert flip_labels(y, 10).tolist() == [9, 6, 0]
    assert LABEL_FLIPPING.transform is flip_labels
    with pytest.raises(TheorylabError, match="num_classes=3"):
        flip_labels(y, 3)


@pytest.mark.parametrize("spec", ["mean", "trimmed-mean", "cw-median", "krum", "nnm+cw-median"])
def test_optimal_attacks_beat_fixed_scales(spec):
    agg = get_aggregator(spec)
    h = _h(h=9, d=5, batch=(2,))
    f = 3
    mu = h.mean(-2)
    ra = optimal_alie(h, f, agg)
    ri = optimal_ipm(h, f, agg)
    assert ra.byzantine.shape == (2, f, 5) and ra.scale.shape == (2,)
    for z in (-2.0, 0.0, alie_z(12, 3), 1.5, 5.0):
        fixed = torch.linalg.vector_norm(agg(with_byzantine(h, alie(h, f, z=z)), f) - mu, dim=-1)
        assert bool((ra.damage >= fixed - 1e-9).all())
    for eps in (0.1, 1.0, 10.0):
        fixed = torch.linalg.vector_norm(agg(with_byzantine(h, ipm(h, f, eps)), f) - mu, dim=-1)
        assert bool((ri.damage >= fixed - 1e-9).all())
    assert bool((ra.scale.abs() <= 20).all()) and bool((ri.scale >= 0).all())


@pytest.mark.parametrize("name", sorted(RULES))
@settings(max_examples=15, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    n=st.integers(3, 9),
    d=st.integers(1, 6),
    kind=st.sampled_from(["nan", "inf", "-inf", "mixed"]),
    seed=st.integers(0, 1000),
    data=st.data(),
)
def test_nonfinite_messages_never_crash_or_leak(name, n, d, kind, seed, data):
    f = data.draw(st.integers(1, (n - 1) // 2)) if n >= 3 else 0
    h = _h(h=n - f, d=d, seed=seed)
    byz = nonfinite(h, f, kind)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    x = with_byzantine(h, byz)[perm]
    y = get_aggregator(name)(x, f)
    assert bool(torch.isfinite(y).all())
    # the output equals the rule applied with the bad rows replaced by the finite rows' median
    lo, hi = h.min(0).values, h.max(0).values
    if name not in ("centered-clipping",):  # CC may step outside the box by <= n_iter tau f/n
        assert bool(((y >= lo - 1e-9) & (y <= hi + 1e-9)).all()), (name, y, lo, hi)
