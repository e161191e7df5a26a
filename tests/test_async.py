"""Asynchronous SGD on the parameter server: the simulator, the virtual clock, fixed-delay SGD.

The distributed executor's checks are in tests/test_async_distributed.py.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from theorylab.errors import TheorylabError
from theorylab.exact.delay import exact_delayed_sgd
from theorylab.problems import QuadraticProblem
from theorylab.rates.asynchronous import delay_adaptive_steps
from theorylab.staleness import predicted_staleness, simulate_speed_model, staleness_stats
from verify.algorithms.async_sgd import AsyncSGD, FixedDelaySGD
from verify.algorithms.psgd import PSGD
from verify.asynchronous import (
    AsyncRun,
    compute_times,
    run_async_simulated,
    straggler_speeds,
    virtual_schedule,
)
from verify.comm import PeerError
from verify.oracles import QuadraticOracle
from verify.run import run_simulated
from verify.runtime.simulated import SimulatedCommunicator


def _problem(n=4, d=3, sigma2=0.5, seed=0, hetero=True):
    rng = np.random.default_rng(seed)
    A = rng.uniform(0.5, 1.5, size=(n, d))
    b = rng.normal(size=(n, d)) if hetero else np.zeros((n, d))
    return QuadraticProblem(A, b, sigma2=sigma2)


# -- point-to-point operations of the simulator ----------------------------------------------
def test_simulated_p2p_order_bytes_and_errors():
    comm = SimulatedCommunicator(np.eye(3))
    a, b, c = (torch.full((2,), v, dtype=torch.float64) for v in (1.0, 2.0, 3.0))
    comm.send(a, 0, node=1)
    comm.send(b, 0, node=2)
    comm.send(c, 0, node=1)
    assert comm.bytes_sent == 3 * 16  # payload bytes of every message
    src, x = comm.recv_any((2,), node=0)  # the oldest message to node 0
    assert src == 1 and torch.equal(x, a)
    assert torch.equal(comm.recv(1, (2,), node=0), c)  # pair order kept, other pairs skipped
    assert comm.recv_any((2,), node=0)[0] == 2
    with pytest.raises(PeerError) as info:  # nothing pending: would wait forever
        comm.recv(1, (2,), node=0)
    assert info.value.peer == 1 and info.value.op == "recv"
    with pytest.raises(PeerError):
        comm.recv_any((2,), node=0)
    with pytest.raises(TheorylabError, match="node="):
        comm.send(a, 0)
    with pytest.raises(TheorylabError, match="shape"):
        comm.send(a, 0, node=1)
        comm.recv(1, (3,), node=0)
    with pytest.raises(TheorylabError, match="itself"):
        comm.send(a, 1, node=1)
    with pytest.raises(TheorylabError, match=r"\[0, 3\)"):
        comm.send(a, 5, node=1)


# -- the virtual clock ------------------------------------------------------------------------
@pytest.mark.parametrize("model, seed", [("fixed", None), ("exponential", 7)])
def test_compute_times_are_the_theorys(model, seed):
    speeds = [1.0, 0.5, 2.0, 0.1]
    ours = virtual_schedule(compute_times(speeds, 200, model=model, seed=seed), 200)
    theirs = simulate_speed_model(speeds, 200, model=model, seed=seed)
    np.testing.assert_array_equal(ours.worker, theirs.worker)
    np.testing.assert_array_equal(ours.staleness, theirs.staleness)


def test_equal_speeds_staleness_is_n_minus_1_after_warmup():
    n = 5
    run = run_async_simulated(QuadraticOracle(_problem(n=n)), np.ones(3), 60, 0.05, seed=0)
    assert run.staleness[:n].tolist() == list(range(n))
    assert set(run.staleness[n:].tolist()) == {n - 1}
    pred = predicted_staleness(np.ones(n), model="fixed", n_updates=200)
    stats_ = run.stats(skip=n)
    assert stats_.tau_avg == pred.tau_avg == n - 1 and stats_.tau_max == pred.tau_max


def test_virtual_clock_run_is_reproducible():
    o = QuadraticOracle(_problem())
    kw = dict(speeds=[1.0, 2.0, 0.7, 0.2], model="exponential", replicas=3)
    a = run_async_simulated(o, np.ones(3), 80, 0.05, 3, **kw)
    b = run_async_simulated(o, np.ones(3), 80, 0.05, 3, **kw)
    np.testing.assert_array_equal(a.staleness, b.staleness)
    np.testing.assert_array_equal(a.x, b.x)
    c = run_async_simulated(o, np.ones(3), 80, 0.05, 4, **kw)  # another seed: another trace
    assert not np.array_equal(a.staleness, c.staleness)
    # the server's trace is the theory's event simulation of the same compute times
    assert AsyncRun.from_dict(a.to_dict()).stats().tau_avg == a.stats().tau_avg


def test_one_worker_is_plain_sgd_and_sync_is_psgd():
    p = _problem(n=1, sigma2=0.3)
    run = run_async_simulated(QuadraticOracle(p), np.ones(3), 20, 0.1, seed=2, replicas=2)
    assert set(run.staleness.tolist()) == {0}
    ref = run_simulated(
        PSGD(0.1), QuadraticOracle(p), [np.eye(1)], np.ones((1, 3)), 20, 2, replicas=2
    )
    np.testing.assert_allclose(run.error, ref.error, rtol=1e-12, atol=1e-15)
    # synchronous minibatch SGD on the server: the same draws as PSGD's nodes, same trajectory
    p4 = _problem(n=4, sigma2=0.3)
    sync = run_async_simulated(
        QuadraticOracle(p4),
        np.ones(3),
        15,
        0.1,
        seed=2,
        algorithm="sync",
        replicas=2,
        speeds=straggler_speeds(4, 5.0),
    )
    ref4 = run_simulated(
        PSGD(0.1), QuadraticOracle(p4), [np.full((4, 4), 0.25)], np.ones((4, 3)), 15, 2, replicas=2
    )
    np.testing.assert_allclose(sync.error, ref4.error, rtol=1e-10, atol=1e-14)
    assert set(sync.staleness.tolist()) == {0}
    # a round lasts as long as the straggler (5 virtual seconds)
    np.testing.assert_allclose(np.diff(sync.virtual_time), 5.0)


def test_delay_adaptive_steps_are_the_theorys():
    n = 4
    run = run_async_simulated(
        QuadraticOracle(_problem(n=n)),
        np.ones(3),
        60,
        0.1,
        seed=0,
        speeds=straggler_speeds(n, 8.0),
        adaptive=True,
    )
    np.testing.assert_allclose(run.gamma_k, delay_adaptive_steps(0.1, run.staleness, n))
    assert run.staleness.max() > n  # the straggler's gradients got a smaller step
    assert run.gamma_k.min() < 0.1


def test_bytes_of_a_run():
    n, d, R, K = 3, 2, 2, 10
    run = run_async_simulated(
        QuadraticOracle(_problem(n=n, d=d)), np.ones(d), K, 0.1, seed=0, replicas=R
    )
    msg = (2 + R * d) * 8
    # server: n initial models + K - 1 replies + n stops; workers: K gradients + the n - 1 in
    # flight at the end (drained)
    assert run.bytes_sent == msg * ((n + K - 1 + n) + (K + n - 1))


# -- fixed-delay SGD against its exact prediction -------------------------------------------
def test_fixed_delay_mean_error_matches_exact():
    """Mean over R = 4000 replicas vs the exact curve at 4 checkpoints.

    Each checkpoint: |mean - prediction| <= z se with z = Phi^-1(1 - 1e-3/8) (Bonferroni over
    4 two-sided tests): false-failure probability <= 1e-3 (CLT on 4000 independent replicas).
    """
    p = _problem(n=4, d=3, sigma2=1.0, hetero=True)
    tau, gamma, steps, R = 3, 0.15, 60, 4000
    x0 = np.full(3, 2.0)
    record = [5, 15, 30, 60]
    traj = run_simulated(
        FixedDelaySGD(gamma, tau=tau),
        QuadraticOracle(p),
        [np.full((4, 4), 0.25)],
        np.tile(x0, (4, 1)),
        steps,
        seed=11,
        record=record,
        replicas=R,
    )
    pred = exact_delayed_sgd(p, gamma, tau, steps, x0, record=record)
    z = stats.norm.ppf(1 - 1e-3 / 8)
    mean = traj.error.mean(axis=1)
    se = traj.error.std(axis=1, ddof=1) / np.sqrt(R)
    assert np.all(np.abs(mean - pred.error) <= z * se), (mean, pred.error, se)
    # and the delay matters: the same run with tau = 0 is far from this prediction
    fresh = run_simulated(
        FixedDelaySGD(gamma, tau=0),
        QuadraticOracle(p),
        [np.full((4, 4), 0.25)],
        np.tile(x0, (4, 1)),
        steps,
        seed=11,
        record=record,
        replicas=R,
    )
    assert np.abs(fresh.error.mean(axis=1) - pred.error)[0] > 10 * se[0]


def test_fixed_delay_tau0_is_psgd():
    p = _problem(n=4)
    W = [np.full((4, 4), 0.25)]
    a = run_simulated(FixedDelaySGD(0.1, tau=0), QuadraticOracle(p), W, np.ones((4, 3)), 10, 5)
    b = run_simulated(PSGD(0.1), QuadraticOracle(p), W, np.ones((4, 3)), 10, 5)
    np.testing.assert_allclose(a.error, b.error, rtol=1e-12)


# -- bad input ----------------------------------------------------------------------------------
def test_bad_input_is_a_clear_error():
    o = QuadraticOracle(_problem(n=3))
    with pytest.raises(TheorylabError, match="gamma"):
        run_async_simulated(o, np.ones(3), 5, -0.1, seed=0)
    with pytest.raises(TheorylabError, match=r"speeds\[1\]"):
        run_async_simulated(o, np.ones(3), 5, 0.1, seed=0, speeds=[1.0, -1.0, 1.0])
    with pytest.raises(TheorylabError, match=r"speeds\[2\]"):
        compute_times([1.0, 1.0, 0.0], 5)
    with pytest.raises(TheorylabError, match="one speed per worker"):
        run_async_simulated(o, np.ones(3), 5, 0.1, seed=0, speeds=[1.0, 1.0])
    with pytest.raises(TheorylabError, match="tau"):
        FixedDelaySGD(0.1, tau=-1)
    with pytest.raises(TheorylabError, match="gamma"):
        FixedDelaySGD(-0.1, tau=1)
    with pytest.raises(TheorylabError, match="staleness"):
        AsyncSGD(0.1, n=2).step_size(-1)
    with pytest.raises(TheorylabError, match=">= 0"):
        staleness_stats([0, 1, -2])
    with pytest.raises(TheorylabError, match="model"):
        compute_times([1.0], 5, model="gamma")
    with pytest.raises(TheorylabError, match="slowdown"):
        straggler_speeds(3, -2.0)
