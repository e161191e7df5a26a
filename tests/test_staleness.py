"""Staleness: statistics of a trace, the event simulation vs a brute-force loop, the exact
equal-speed case tau = n - 1, and the exact exponential law vs simulation."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from theorylab.errors import TheorylabError
from theorylab.staleness import (
    applied_shares,
    predicted_staleness,
    simulate_arrivals,
    simulate_speed_model,
    staleness_stats,
)


def _brute_force(times, K):
    """Independent event loop: at each update, scan all workers for the earliest finish time
    (ties: smallest worker index), apply, restart that worker at the current version."""
    n = len(times)
    finish = [times[i][0] for i in range(n)]
    read = [0] * n
    used = [1] * n
    out_w, out_tau = [], []
    for k in range(K):
        i = min(range(n), key=lambda j: (finish[j], j))
        out_w.append(i)
        out_tau.append(k - read[i])
        read[i] = k + 1
        finish[i] = finish[i] + times[i][used[i]]
        used[i] += 1
    return out_w, out_tau


@settings(deadline=None, max_examples=40, derandomize=True)
@given(n=st.integers(1, 6), K=st.integers(1, 80), seed=st.integers(0, 10_000))
def test_simulation_matches_brute_force_loop(n, K, seed):
    rng = np.random.default_rng(seed)
    times = [rng.exponential(1.0 / rng.uniform(0.1, 3.0), size=K + 1) for _ in range(n)]
    tr = simulate_arrivals(times, K)
    w, tau = _brute_force(times, K)
    assert tr.worker.tolist() == w
    assert tr.staleness.tolist() == tau
    assert np.all(tr.staleness >= 0) and np.all(np.diff(tr.time) >= 0)


@pytest.mark.parametrize("n", [1, 2, 5, 16])
def test_equal_speeds_give_exactly_n_minus_1(n):
    tr = simulate_speed_model([2.5] * n, 20 * n)
    assert tr.staleness[:n].tolist() == list(range(n))  # the first round: 0, 1, ..., n - 1
    assert np.all(tr.staleness[n:] == n - 1)
    s = tr.stats(skip=n)
    assert s.tau_max == s.tau_avg == n - 1
    assert np.allclose(s.shares, 1.0 / n)
    fixed = predicted_staleness([2.5] * n, model="fixed", n_updates=50 * n)
    assert fixed.tau_avg == n - 1 and fixed.tau_max == n - 1


def test_exponential_law_matches_simulation():
    speeds = [1.0, 1.0, 2.0, 0.2]  # one straggler
    pred = predicted_staleness(speeds)
    assert pred.tau_avg == pytest.approx(len(speeds) - 1, abs=1e-12)
    assert pred.pmf.sum() == pytest.approx(1.0)
    K = 200_000
    tr = simulate_speed_model(speeds, K, model="exponential", seed=123)
    s = tr.stats(skip=100)
    # Seeded, hence deterministic. Tolerances: the pmf entries are averages of K ~ 2e5
    # correlated indicators; an iid estimate has standard error <= 0.5/sqrt(K) ~ 1.1e-3, and the
    # 6e-3 bound leaves a factor ~5 for the correlation (geometric mixing of the arrival chain).
    k = min(len(s.pmf), 30)
    assert np.max(np.abs(s.pmf[:k] - pred.pmf[:k])) < 6e-3
    assert s.tau_avg == pytest.approx(pred.tau_avg, abs=0.05)
    assert np.allclose(s.shares, applied_shares(speeds), atol=5e-3)
    assert np.allclose(s.per_worker_tau_avg, pred.per_worker_tau_avg, rtol=0.03)


def test_fixed_heterogeneous_speeds_long_run():
    speeds = [1.0, 1.0, 1.0, 0.1]
    s = predicted_staleness(speeds, model="fixed", n_updates=31_000)
    # tau_avg -> n - 1: each applied update ages the other n - 1 gradients in flight
    assert abs(s.tau_avg - 3) <= 4 * s.tau_max / 31_000
    assert np.allclose(s.shares, applied_shares(speeds), atol=1e-3)
    assert s.tau_max >= 30  # the straggler's gradient waits ~ 30 fast updates


def test_stats_of_a_trace():
    s = staleness_stats([0, 1, 1, 3], workers=[0, 1, 0, 2], n=4)
    assert s.tau_max == 3 and s.tau_avg == 1.25 and s.count == 4
    assert s.pmf.tolist() == [0.25, 0.5, 0.0, 0.25]
    assert s.shares.tolist() == [0.5, 0.25, 0.25, 0.0]
    assert s.per_worker_tau_avg[0] == 0.5 and math.isnan(s.per_worker_tau_avg[3])
    assert s.quantile(0.5) == 1 and s.quantile(1.0) == 3
    assert s.to_dict()["tau_max"] == 3


def test_bad_input():
    with pytest.raises(TheorylabError, match="-2"):
        staleness_stats([0, 1, -2])
    with pytest.raises(TypeError):
        staleness_stats([0.5, 1])
    with pytest.raises(TheorylabError):
        staleness_stats([])
    with pytest.raises(TheorylabError, match=r"speeds\[1\].*-1"):
        simulate_speed_model([1.0, -1.0], 10)
    with pytest.raises(TheorylabError, match="speeds"):
        applied_shares([1.0, 0.0])
    with pytest.raises(TheorylabError, match="seed"):
        simulate_speed_model([1.0, 1.0], 10, model="exponential")
    with pytest.raises(TheorylabError, match="model"):
        predicted_staleness([1.0], model="pareto")
    with pytest.raises(TheorylabError, match="compute_times"):
        simulate_arrivals([[1.0, -1.0]], 2)
    with pytest.raises(TheorylabError, match="ran out"):
        simulate_arrivals([[1.0]], 3)


def test_docstring_examples_run():
    import doctest

    import theorylab.staleness

    result = doctest.testmod(theorylab.staleness)
    assert result.failed == 0 and result.attempted > 0
