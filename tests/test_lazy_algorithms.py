"""Lazy communication (issue 9): Local SGD / FedAvg, SCAFFOLD, event-triggered averaging, and the
communicator's subset mean and triggered gather, on both executors."""

from __future__ import annotations

import doctest
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import verify.algorithms.event_triggered as et_module
import verify.algorithms.local_sgd as local_module
import verify.algorithms.scaffold as scaffold_module
import verify.runtime.lazycomm as lazycomm_module
from theorylab.errors import TheorylabError, TheorylabWarning
from theorylab.exact import exact_local_sgd, exact_psgd, exact_scaffold
from theorylab.problems import heterogeneous_quadratic
from verify.algorithms import ALGORITHMS
from verify.algorithms.event_triggered import EventTriggered, deviation_bound
from verify.algorithms.local_sgd import LocalSGD, participation_mask
from verify.algorithms.psgd import PSGD
from verify.algorithms.scaffold import SCAFFOLD
from verify.oracles import QuadraticOracle
from verify.run import make_context, run_distributed, run_simulated
from verify.runtime.lazycomm import subset_mean_bytes, triggered_gather_bytes
from verify.runtime.simulated import SimulatedCommunicator, allreduce_bytes


def _J(n):
    return [np.full((n, n), 1.0 / n)]


@pytest.mark.parametrize("module", [local_module, scaffold_module, et_module, lazycomm_module])
def test_doctest_examples_run(module):
    assert doctest.testmod(module, raise_on_error=True).attempted > 0


def test_registered_and_built_by_example():
    for name in ("local_sgd", "scaffold", "event_triggered"):
        algo = ALGORITHMS[name].example(gamma=0.05, form="cta")
        assert algo.config()["gamma"] == 0.05


# -- known answers --------------------------------------------------------------------------------


def test_local_sgd_with_tau_1_full_participation_is_psgd_bit_for_bit():
    n, d = 5, 3
    p = heterogeneous_quadratic(n, d, zeta2=1.0, sigma2=0.7, diagonal=False, seed=1)
    x0 = np.random.default_rng(0).standard_normal((n, 4, d))
    a = run_simulated(LocalSGD(0.2), QuadraticOracle(p), _J(n), x0, 12, seed=3)
    b = run_simulated(PSGD(0.2), QuadraticOracle(p), _J(n), x0, 12, seed=3)
    for key in ("error", "consensus", "avg_error"):
        np.testing.assert_array_equal(getattr(a, key), getattr(b, key))
    assert a.bytes_sent == b.bytes_sent


def test_event_triggered_with_zero_threshold_is_psgd_up_to_rounding():
    n, d = 4, 3
    p = heterogeneous_quadratic(n, d, zeta2=1.0, sigma2=0.7, seed=1)
    x0 = np.ones((n, d))
    a = run_simulated(EventTriggered(0.2), QuadraticOracle(p), _J(n), x0, 15, 3, replicas=3)
    b = run_simulated(PSGD(0.2), QuadraticOracle(p), _J(n), x0, 15, 3, replicas=3)
    np.testing.assert_allclose(a.error, b.error, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize(
    "name", ["local_sgd", "local_sgd_eta", "scaffold", "scaffold_eta", "scaffold_tau1"]
)
def test_deterministic_runs_match_the_exact_engine_to_1e_10(name):
    # sigma2 = 0, full participation: the drift / heterogeneity / initial terms alone, no noise
    n, d, gamma, tau, steps = 5, 3, 0.1, 4, 40
    p = heterogeneous_quadratic(n, d, zeta2=2.0, sigma2=0.0, diagonal=False, seed=2)
    x0 = np.ones(d)
    algo, pred = {
        "local_sgd": (LocalSGD(gamma, tau), lambda: exact_local_sgd(p, gamma, tau, steps, x0)),
        "local_sgd_eta": (
            LocalSGD(gamma, tau, eta_g=0.6),
            lambda: exact_local_sgd(p, gamma, tau, steps, x0, eta_g=0.6),
        ),
        "scaffold": (SCAFFOLD(gamma, tau), lambda: exact_scaffold(p, gamma, tau, steps, x0)),
        "scaffold_eta": (
            SCAFFOLD(gamma, tau, eta_g=1.5),
            lambda: exact_scaffold(p, gamma, tau, steps, x0, eta_g=1.5),
        ),
        "scaffold_tau1": (SCAFFOLD(gamma, 1), lambda: exact_scaffold(p, gamma, 1, steps, x0)),
    }[name]
    traj = run_simulated(algo, QuadraticOracle(p), _J(n), np.tile(x0, (n, 1)), steps, seed=0)
    exact = pred()
    np.testing.assert_allclose(traj.error[:, 0], exact.error, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(traj.avg_error[:, 0], exact.avg_error, rtol=1e-10, atol=1e-14)


def test_scaffold_removes_the_heterogeneity_floor_that_local_sgd_keeps():
    n, d, gamma, tau = 5, 3, 0.1, 5
    p = heterogeneous_quadratic(n, d, L=1.0, mu=0.5, zeta2=2.0, sigma2=0.0, seed=2)
    x0 = np.tile(np.ones(d), (n, 1))
    loc = run_simulated(LocalSGD(gamma, tau), QuadraticOracle(p), _J(n), x0, 400, 0, [400])
    sca = run_simulated(SCAFFOLD(gamma, tau), QuadraticOracle(p), _J(n), x0, 400, 0, [400])
    assert loc.avg_error[0, 0] > 1e-4 and sca.error[0, 0] < 1e-15


def _zscores(traj, exact):
    R = traj.error.shape[1]
    mean, se = traj.error.mean(axis=1), traj.error.std(axis=1, ddof=1) / math.sqrt(R)
    return np.abs(mean - exact) / se


@pytest.mark.parametrize("name", ["local_sgd", "fedavg_partial", "scaffold"])
def test_mean_error_matches_the_exact_engine_with_many_replicas(name):
    # R = 2000 replicas, 4 checkpoints (all after the first round, where the spread is > 0):
    # |z| < 5 at each by the CLT fails with probability < 6e-7 per checkpoint, < 8e-6 over the
    # 12 checkpoints of the three cases (union bound). Fixed seeds.
    n, d, gamma, tau, steps, R = 6, 3, 0.1, 4, 24, 2000
    p = heterogeneous_quadratic(n, d, zeta2=1.0, sigma2=0.5, seed=0)
    x0 = np.ones(d)
    record = [5, 10, 16, 24]
    algo, exact = {
        "local_sgd": (
            LocalSGD(gamma, tau),
            exact_local_sgd(p, gamma, tau, steps, x0, record=record),
        ),
        "fedavg_partial": (
            LocalSGD(gamma, tau, eta_g=0.8, participation=2),
            exact_local_sgd(p, gamma, tau, steps, x0, eta_g=0.8, participation=2, record=record),
        ),
        "scaffold": (SCAFFOLD(gamma, tau), exact_scaffold(p, gamma, tau, steps, x0, record=record)),
    }[name]
    traj = run_simulated(
        algo, QuadraticOracle(p), _J(n), np.tile(x0, (n, 1)), steps, 11, record, replicas=R
    )
    z = _zscores(traj, exact.error)
    assert np.all(z < 5), (name, z)


def test_partial_participation_noise_free_averages_the_sampling():
    # sigma2 = 0: the only randomness is the subsets, so the replicas' mean is the exact
    # expectation over the sampling; R = 2000, |z| < 5 at 3 checkpoints: false failure < 2e-6
    n, d, gamma, tau, steps, R = 5, 2, 0.1, 3, 18, 2000
    p = heterogeneous_quadratic(n, d, zeta2=3.0, sigma2=0.0, seed=4)
    x0 = np.ones(d)
    record = [3, 9, 18]
    exact = exact_local_sgd(p, gamma, tau, steps, x0, participation=2, record=record)
    algo = LocalSGD(gamma, tau, participation=2)
    traj = run_simulated(
        algo, QuadraticOracle(p), _J(n), np.tile(x0, (n, 1)), steps, 5, record, replicas=R
    )
    assert np.all(_zscores(traj, exact.error) < 5)


def test_participation_mask_is_uniform_over_subsets():
    # each of the C(4,2) = 6 subsets has probability 1/6; 6000 draws, a 5-sigma band per subset
    # (binomial sd = sqrt(6000 * 1/6 * 5/6) = 28.9): false failure < 4e-6
    m = participation_mask(0, 0, n=4, S=2, replicas=6000).T.numpy()
    codes = m @ (1 << np.arange(4))
    counts = np.bincount(codes, minlength=16)[[3, 5, 6, 9, 10, 12]]
    assert np.all(np.abs(counts - 1000) < 5 * 28.9), counts
    assert not np.array_equal(
        participation_mask(0, 1, 4, 2, 50), participation_mask(0, 0, 4, 2, 50)
    )


# -- bytes ------------------------------------------------------------------------------------


def test_scaffold_sends_twice_fedavgs_bytes_and_partial_participation_counts_S_senders():
    n, d, R, tau, steps = 4, 3, 2, 3, 12
    p = heterogeneous_quadratic(n, d, sigma2=0.1, seed=0)
    x0 = np.ones((n, d))
    rounds, b = steps // tau, R * d * 8
    fed = run_simulated(LocalSGD(0.1, tau), QuadraticOracle(p), _J(n), x0, steps, 0, replicas=R)
    sca = run_simulated(SCAFFOLD(0.1, tau), QuadraticOracle(p), _J(n), x0, steps, 0, replicas=R)
    assert fed.bytes_sent == rounds * n * allreduce_bytes(n, b)
    assert sca.bytes_sent == 2 * fed.bytes_sent
    for S in (1, 2, 3):
        part = run_simulated(
            LocalSGD(0.1, tau, participation=S), QuadraticOracle(p), _J(n), x0, steps, 0,
            replicas=R,
        )  # fmt: skip
        assert part.bytes_sent == rounds * S * allreduce_bytes(S, b)
        sp = run_simulated(
            SCAFFOLD(0.1, tau, participation=S), QuadraticOracle(p), _J(n), x0, steps, 0,
            replicas=R,
        )  # fmt: skip
        assert sp.bytes_sent == 2 * part.bytes_sent


def test_subset_mean_full_mask_is_mean_and_masks_average_the_participants():
    n, R, d = 4, 3, 5
    x = torch.randn(n, R, d, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    a, b = SimulatedCommunicator(_J(n)), SimulatedCommunicator(_J(n))
    np.testing.assert_array_equal(a.subset_mean(x, torch.ones(n, R, dtype=torch.bool)), b.mean(x))
    assert a.bytes_sent == b.bytes_sent
    mask = torch.tensor([[1, 0, 1], [1, 1, 0], [0, 0, 1], [0, 1, 1]], dtype=torch.bool)
    y = SimulatedCommunicator(_J(n)).subset_mean(x, mask)
    for r in range(R):
        expected = x[mask[:, r], r].mean(dim=0)
        torch.testing.assert_close(y[:, r], expected.expand(n, d), rtol=1e-15, atol=1e-15)
    with pytest.raises(TheorylabError, match="no participant"):
        a.subset_mean(x, torch.zeros(n, R, dtype=torch.bool))
    with pytest.raises(TypeError, match="bool"):
        a.subset_mean(x, torch.ones(n, R))
    with pytest.raises(TheorylabError, match="shape"):
        a.subset_mean(x, torch.ones(n, R + 1, dtype=torch.bool))


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 9),
    R=st.integers(1, 5),
    row=st.integers(1, 64),
    data=st.data(),
)
def test_subset_mean_bytes_is_a_ring_allreduce_among_the_participants(n, R, row, data):
    S = data.draw(st.integers(1, n))
    # every replica with S participants: node i counts floor(2 (S-1) b_i / S), b_i its rows
    bits = data.draw(st.lists(st.permutations(range(n)), min_size=R, max_size=R))
    mask = torch.zeros(n, R, dtype=torch.bool)
    for r, perm in enumerate(bits):
        mask[list(perm[:S]), r] = True
    got = subset_mean_bytes(mask, mask.sum(0), row)
    want = [allreduce_bytes(S, int(mask[i].sum()) * row) for i in range(n)]
    assert got.tolist() == want
    full = subset_mean_bytes(torch.ones(n, R, dtype=torch.bool), torch.full((R,), n), row)
    assert full.tolist() == [allreduce_bytes(n, R * row)] * n


def test_event_triggered_report_matches_the_counted_bytes_and_its_bound():
    n, d, gamma, R, steps = 4, 3, 0.2, 6, 40
    p = heterogeneous_quadratic(n, d, L=1.0, mu=0.5, zeta2=1.0, sigma2=0.05, seed=3)
    oracle = QuadraticOracle(p)
    comm = SimulatedCommunicator(_J(n))
    ctx = make_context(comm, oracle, 7)
    algo = EventTriggered(gamma, threshold=1e-3, decay=0.97)
    x0 = torch.ones(n, R, d, dtype=torch.float64)
    state = algo.init(x0, ctx)
    init_bytes = comm.bytes_sent
    assert init_bytes == n * (n - 1) * (R + R * d * 8)  # every start sent once
    psgd_ctx = make_context(SimulatedCommunicator(_J(n)), oracle, 7)
    z, psgd = x0.clone(), PSGD(gamma)
    H = p.A.mean(axis=0)
    q = float(np.max(np.abs(1 - gamma * np.linalg.eigvalsh(H))))
    bound = deviation_bound(1e-3, 0.97, q, steps)
    for k in range(steps):
        state = algo.step(state, ctx, k)
        z = psgd.step(psgd.init(z, psgd_ctx), psgd_ctx, k).x
        gap = float((state.x - z).norm(dim=-1).max())
        assert gap <= bound[k + 1] * (1 + 1e-9) + 1e-12  # pathwise, same noise
    rep = algo.report(state, n)
    sends = np.array(rep["sends"])
    assert 0 < sends.sum() < n * R * steps  # it skipped some rounds and sent in others
    flags = steps * n * (n - 1) * R
    assert comm.bytes_sent - init_bytes == flags + (n - 1) * d * 8 * int(sends.sum())
    np.testing.assert_allclose(rep["fraction"], sends / steps)
    saved = (steps - sends) * (n - 1) * d * 8 - steps * (n - 1)
    assert rep["bytes_saved"] == saved.tolist()
    assert triggered_gather_bytes(3, torch.tensor([[True, True]]), 8).tolist() == [36]


def test_event_triggered_mean_error_stays_within_its_predicted_error():
    # sqrt(E err) <= sqrt(E_PSGD) + B_k (Minkowski, deterministic B_k); R = 500 replicas and a
    # 5-sigma allowance on the estimated mean: false failure < 3e-7 per checkpoint
    n, d, gamma, steps, R = 4, 3, 0.2, 30, 500
    p = heterogeneous_quadratic(n, d, L=1.0, mu=0.5, zeta2=1.0, sigma2=0.2, seed=3)
    x0 = np.ones(d)
    traj = run_simulated(
        EventTriggered(gamma, threshold=4e-3), QuadraticOracle(p), _J(n), np.tile(x0, (n, 1)),
        steps, 2, replicas=R,
    )  # fmt: skip
    psgd = exact_psgd(p, gamma, steps, x0).error
    q = float(np.max(np.abs(1 - gamma * np.linalg.eigvalsh(p.A.mean(axis=0)))))
    pred = (np.sqrt(psgd) + np.array(deviation_bound(4e-3, 1.0, q, steps))) ** 2
    mean = traj.error.mean(axis=1)
    se = traj.error.std(axis=1, ddof=1) / math.sqrt(R)
    assert np.all(mean - 5 * se <= pred)


# -- bad input --------------------------------------------------------------------------------


def test_bad_input_names_the_value():
    with pytest.raises(TheorylabError, match="tau"):
        LocalSGD(0.1, tau=0)
    with pytest.raises(TheorylabError, match="tau"):
        SCAFFOLD(0.1, tau=-2)
    with pytest.raises(TheorylabError, match="gamma"):
        LocalSGD(0.0, tau=2)
    with pytest.raises(TheorylabError, match="gamma"):
        EventTriggered(-0.1)
    with pytest.raises(TheorylabError, match="eta_g"):
        SCAFFOLD(0.1, eta_g=0.0)
    with pytest.raises(TheorylabError, match="participation S"):
        LocalSGD(0.1, participation=0)
    with pytest.raises(TheorylabError, match="threshold"):
        EventTriggered(0.1, threshold=-1e-3)
    with pytest.raises(TheorylabError, match="decay"):
        EventTriggered(0.1, threshold=1e-3, decay=1.5)
    with pytest.raises(TheorylabError, match="option"):
        SCAFFOLD(0.1, option="III")
    p = heterogeneous_quadratic(3, 2, seed=0)
    for algo in (LocalSGD(0.1, participation=4), SCAFFOLD(0.1, participation=4)):
        with pytest.raises(TheorylabError, match=r"S = 4 must lie in \[1, n = 3\]"):
            run_simulated(algo, QuadraticOracle(p), _J(3), np.zeros((3, 2)), 2, 0)


def test_step_size_outside_the_theorems_condition_warns_naming_it():
    with pytest.warns(TheorylabWarning, match=r"gamma < 1/\(2 L \(tau - 1\)\)"):
        LocalSGD(0.2, tau=5, L=1.0)
    with pytest.warns(TheorylabWarning, match="gamma eta_g tau L <= 1"):
        LocalSGD(0.3, tau=1, eta_g=4.0, L=1.0)
    with pytest.warns(TheorylabWarning, match=r"1/\(81 L tau eta_g\)"):
        SCAFFOLD(0.1, tau=2, L=1.0)
    with pytest.warns(TheorylabWarning, match="gamma <= 1/L"):
        EventTriggered(1.5, L=1.0)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        LocalSGD(0.05, tau=5, L=1.0)  # inside: silent
        SCAFFOLD(0.001, tau=5, L=1.0)
        EventTriggered(0.5, L=1.0)


# -- executor equality at world 2 -------------------------------------------------------------


def _setups():
    quad = QuadraticOracle(heterogeneous_quadratic(2, 3, zeta2=1.0, sigma2=1.0, seed=1))
    return {
        "local_sgd": LocalSGD(0.2, tau=3),
        "fedavg_partial": LocalSGD(0.2, tau=2, eta_g=0.7, participation=1),
        "scaffold": SCAFFOLD(0.2, tau=3),
        "scaffold_partial_option_I": SCAFFOLD(0.2, tau=2, participation=1, option="I"),
        "event_triggered": EventTriggered(0.2, threshold=0.05, decay=0.9),
    }, quad


@pytest.mark.distributed
@pytest.mark.parametrize("name", list(_setups()[0]))
def test_same_trajectory_on_both_executors_world_2(pool, name):
    algos, oracle = _setups()
    algorithm = algos[name]
    x0 = np.random.default_rng(0).standard_normal((2, 3, 3))
    sim = run_simulated(algorithm, oracle, _J(2), x0, 8, seed=4)
    for traj in pool.run(run_distributed, algorithm, oracle, _J(2), x0, 8, 4):
        assert traj.steps == sim.steps
        for key in ("error", "consensus", "avg_error"):
            np.testing.assert_allclose(
                getattr(traj, key), getattr(sim, key), rtol=1e-12, atol=1e-14
            )
        assert traj.bytes_sent == sim.bytes_sent


def _lazy_ops_on_a_rank(rank, world_size):
    from verify.runtime.distributed import DistributedCommunicator

    comm = DistributedCommunicator(_J(world_size))
    x = torch.arange(2 * 3 * 2, dtype=torch.float64).reshape(2, 3, 2)[rank : rank + 1] + 1.0
    part = torch.tensor([[True, False, True], [True, True, False]])[rank : rank + 1]
    mean = comm.subset_mean(x, part)
    after_mean = comm.bytes_sent
    flags, values = comm.triggered_gather(x, part)
    try:
        comm.subset_mean(x, torch.zeros(1, 3, dtype=torch.bool))
        empty = None
    except TheorylabError as exc:
        empty = str(exc)
    return mean, after_mean, comm.bytes_sent - after_mean, flags, values, empty


@pytest.mark.distributed
def test_subset_mean_and_triggered_gather_agree_across_executors_world_2(pool):
    x = torch.arange(2 * 3 * 2, dtype=torch.float64).reshape(2, 3, 2) + 1.0
    part = torch.tensor([[True, False, True], [True, True, False]])
    sim = SimulatedCommunicator(_J(2))
    mean = sim.subset_mean(x, part)
    mean_bytes = sim.bytes_sent
    flags, values = sim.triggered_gather(x, part)
    gather_bytes = sim.bytes_sent - mean_bytes
    out = pool.run(_lazy_ops_on_a_rank)
    assert sum(o[1] for o in out) == mean_bytes
    assert sum(o[2] for o in out) == gather_bytes == 2 * 1 * 3 + (2 + 2) * 2 * 8
    for rank, (m, _, _, f, v, empty) in enumerate(out):
        torch.testing.assert_close(m[0], mean[rank], rtol=0, atol=0)
        assert torch.equal(f, flags) and torch.equal(v, values)
        assert empty is not None and "no participant" in empty  # raised on every rank
