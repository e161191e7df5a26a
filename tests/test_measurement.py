"""run_simulated's measurement: log-spaced default checkpoints, float64 accumulation without a
float64 copy of the whole state, and explicit records unchanged."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import verify.run as run_module
from theorylab.problems import heterogeneous_quadratic
from verify.algorithms.dsgd import DSGD
from verify.algorithms.gossip import Gossip
from verify.oracles import QuadraticOracle
from verify.run import log_checkpoints, run_simulated
from verify.runtime.simulated import SimulatedCommunicator


def _ring(n: int) -> np.ndarray:
    W = np.zeros((n, n))
    for i in range(n):
        W[i, i] = 1 / 3
        W[i, (i + 1) % n] += 1 / 3
        W[i, (i - 1) % n] += 1 / 3
    return W


def _reference(x: torch.Tensor, x_star) -> tuple:
    """The metrics from the full state in float64 (numpy, independent of verify.run)."""
    x = x.detach().cpu().numpy().astype(np.float64)
    xbar = x.mean(axis=0)
    consensus = ((x - xbar) ** 2).sum(axis=-1).mean(axis=0)
    if x_star is None:
        return None, consensus, None
    xs = np.asarray(x_star, dtype=np.float64)
    return ((x - xs) ** 2).sum(axis=-1).mean(axis=0), consensus, ((xbar - xs) ** 2).sum(axis=-1)


def _measure_before(comm, x, x_star) -> tuple:
    """verify.run._measure as it was before the blocked path (float64 copy of the whole state)."""
    x = x.detach().to(torch.float64)
    n = comm.n
    xbar = comm.allsum(x) / n
    parts = [((x - xbar) ** 2).sum(dim=-1)]
    if x_star is not None:
        xs = x_star.detach().to(device=x.device, dtype=torch.float64)
        parts.append(((x - xs) ** 2).sum(dim=-1))
    sums = comm.allsum(torch.stack(parts, dim=-1)) / n
    consensus = sums[:, 0].cpu().numpy()
    if x_star is None:
        return None, consensus, None
    avg_error = ((xbar - xs) ** 2).sum(dim=-1).cpu().numpy()
    return sums[:, 1].cpu().numpy(), consensus, avg_error


@pytest.mark.parametrize("steps", [0, 1, 5, 12, 100, 999, 10_000])
def test_log_checkpoints_are_log_spaced_and_end_at_the_last_step(steps):
    pts = log_checkpoints(steps)
    assert pts[0] == 0 and pts[-1] == steps
    assert pts == sorted(set(pts))
    assert set(range(min(steps, 4) + 1)) <= set(pts)  # the initial transient, every step
    # about 5 per decade: 1 + floor(5 log10 K) + 1 values of the R5 series, 0 and K (distinct)
    if steps >= 1:
        assert len(pts) <= 2 + 5 * math.log10(steps) + 1
        big = [p for p in pts if p >= 10]
        ratios = np.diff(np.log10(big)) if len(big) > 1 else np.array([0.2])
        assert np.all(ratios <= 0.2 + 0.05)  # never more than one R5 step apart


def test_log_checkpoints_examples_and_bad_input():
    assert log_checkpoints(100) == [0, 1, 2, 3, 4, 6, 10, 16, 25, 40, 63, 100]
    assert log_checkpoints(7, per_decade=1) == [0, 1, 7]
    with pytest.raises(ValueError):
        log_checkpoints(-1)


def test_run_simulated_default_record_is_log_spaced():
    n, d, steps = 4, 3, 30
    p = heterogeneous_quadratic(n, d, sigma2=0.5, seed=0)
    traj = run_simulated(DSGD(0.1), QuadraticOracle(p), [_ring(n)], np.ones((n, d)), steps, 0)
    assert traj.steps == log_checkpoints(steps) and traj.steps[-1] == steps
    assert traj.error.shape == (len(traj.steps), 1)


@pytest.mark.parametrize("with_x_star", [True, False])
def test_blocked_float32_measurement_equals_the_float64_reference(monkeypatch, with_x_star):
    n, R, d = 6, 3, 50
    monkeypatch.setattr(run_module, "_BLOCK", 4 * R * d)  # blocks of 4 and 2 nodes
    comm = SimulatedCommunicator([_ring(n)], dtype=torch.float32)
    g = torch.Generator().manual_seed(0)
    x = (torch.randn(n, R, d, generator=g) * 3 + 1).to(torch.float32)
    x_star = torch.randn(d, generator=g).to(torch.float32) if with_x_star else None
    got = run_module._measure(comm, x, x_star)
    want = _reference(x, x_star)
    for a, b in zip(got, want):
        if b is None:
            assert a is None
        else:
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=0)


def test_float32_run_measurements_equal_the_float64_reference_of_its_states(monkeypatch):
    monkeypatch.setattr(run_module, "_BLOCK", 64)  # one node per block
    n, R, d, steps = 5, 2, 40, 12
    p = heterogeneous_quadratic(n, d, sigma2=0.3, seed=1)
    oracle = QuadraticOracle(p, dtype=torch.float32)
    states = {}

    def keep(k, before, after, ctx):  # the iterate after step k (checkpoint k + 1)
        states[k + 1] = after.x.clone()

    x0 = np.random.default_rng(2).standard_normal((n, R, d))
    traj = run_simulated(
        DSGD(0.1), oracle, [_ring(n)], x0, steps, 3, dtype=torch.float32, observe=keep
    )
    states[0] = torch.as_tensor(x0, dtype=torch.float32)
    for row, step in enumerate(traj.steps):
        err, cons, avg = _reference(states[step], oracle.x_star)
        np.testing.assert_allclose(traj.error[row], err, rtol=1e-12, atol=0)
        np.testing.assert_allclose(traj.consensus[row], cons, rtol=1e-12, atol=0)
        np.testing.assert_allclose(traj.avg_error[row], avg, rtol=1e-12, atol=0)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_explicit_record_gives_the_results_of_before(monkeypatch, dtype):
    n, R, d, steps = 6, 2, 5, 9
    record = [0, 1, 4, 7, 9]
    p = heterogeneous_quadratic(n, d, sigma2=0.4, seed=3)
    x0 = np.random.default_rng(4).standard_normal((n, R, d))
    args = (DSGD(0.2), QuadraticOracle(p, dtype=dtype), [_ring(n)], x0, steps, 5, record)
    new = run_simulated(*args, dtype=dtype)
    monkeypatch.setattr(run_module, "_measure", _measure_before)
    old = run_simulated(*args, dtype=dtype)
    assert new.steps == old.steps == record
    for key in ("error", "consensus", "avg_error"):
        if dtype == torch.float64:  # the float64 path is the old code: bit for bit
            np.testing.assert_array_equal(getattr(new, key), getattr(old, key))
        else:  # blocked float64 sums of the same float32 states
            np.testing.assert_allclose(getattr(new, key), getattr(old, key), rtol=1e-12, atol=0)
    assert new.bytes_sent == old.bytes_sent


def test_gossip_without_x_star_blocked():
    n, d = 8, 33
    x0 = np.random.default_rng(0).standard_normal((n, d))
    a = run_simulated(Gossip(), None, [_ring(n)], x0, 20, 0, dtype=torch.float32)
    b = run_simulated(Gossip(), None, [_ring(n)], x0, 20, 0, dtype=torch.float64)
    assert a.error is None and a.avg_error is None and a.steps == b.steps
    np.testing.assert_allclose(a.consensus, b.consensus, rtol=1e-5)
