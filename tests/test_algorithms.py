"""Gossip, PSGD and DSGD: closed forms, an independent numpy recursion, and executor equality at
world 2 (the session WorkerPool of tests/conftest.py)."""

from __future__ import annotations

import doctest
import json
import math
import time

import numpy as np
import pytest
import torch
from graphs import one_peer_exponential, ring

import verify.algorithms.dsgd as dsgd_module
import verify.algorithms.gossip as gossip_module
import verify.algorithms.psgd as psgd_module
from theorylab.errors import TheorylabError
from theorylab.problems import heterogeneous_quadratic, logistic_regression
from verify.algorithms import ALGORITHMS
from verify.algorithms.dsgd import DSGD
from verify.algorithms.gossip import Gossip
from verify.algorithms.psgd import PSGD
from verify.oracles import LogisticOracle, QuadraticOracle
from verify.run import Trajectory, make_context, run_algorithm, run_distributed, run_simulated
from verify.runtime.launch import DistributedError
from verify.runtime.simulated import SimulatedCommunicator
from verify.seeding import node_generators


@pytest.mark.parametrize("module", [gossip_module, psgd_module, dsgd_module])
def test_doctest_examples_run(module):
    assert doctest.testmod(module, raise_on_error=True).attempted > 0


def test_registry_and_configs():
    assert {"gossip", "psgd", "dsgd"} <= set(ALGORITHMS)
    assert DSGD(0.1, form="cta").config() == {"gamma": 0.1, "form": "cta"}
    with pytest.raises(TheorylabError, match="form"):
        DSGD(0.1, form="awc")
    with pytest.raises(TheorylabError, match="gamma"):
        PSGD(-1.0)


def test_gossip_on_a_ring_contracts_at_rho_and_is_tight_on_the_slowest_mode():
    # rho = ||W - 11^T/n||_2 (spectral gap 1 - rho); consensus is squared, so rate rho^(2k)
    n, steps = 8, 12
    W = ring(n)
    eigval, eigvec = np.linalg.eigh(W - np.ones((n, n)) / n)
    rho = float(np.max(np.abs(eigval)))
    x0 = np.random.default_rng(0).standard_normal((n, 4, 3))
    every = range(steps + 1)
    traj = run_simulated(Gossip(), None, [W], x0, steps, seed=0, record=every)
    bound = traj.consensus[0] * rho ** (2 * np.arange(steps + 1))[:, None]
    assert np.all(traj.consensus <= bound * (1 + 1e-12) + 1e-300)
    slow = eigvec[:, np.argmax(np.abs(eigval))]  # equality on the eigenvector of rho
    tight = run_simulated(Gossip(), None, [W], slow[:, None], steps, seed=0, record=every)
    np.testing.assert_allclose(
        tight.consensus[:, 0], tight.consensus[0, 0] * rho ** (2 * np.arange(steps + 1)), rtol=1e-9
    )


def test_gossip_preserves_the_average_and_one_peer_exponential_averages_exactly():
    n = 8
    comm = SimulatedCommunicator(one_peer_exponential(n))
    x0 = torch.randn(n, 2, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    ctx = make_context(comm, None, 0)
    state = Gossip().init(x0, ctx)
    for k in range(3):  # log2(8) rounds
        state = Gossip().step(state, ctx, k)
        torch.testing.assert_close(state.x.mean(0), x0.mean(0), rtol=0, atol=1e-15)
    torch.testing.assert_close(state.x, x0.mean(0, keepdim=True).expand_as(x0), rtol=0, atol=1e-15)


@pytest.mark.parametrize("form", ["atc", "cta"])
def test_dsgd_with_zero_step_is_gossip(form):
    p = heterogeneous_quadratic(6, 3, sigma2=1.0, seed=0)
    x0 = np.random.default_rng(1).standard_normal((6, 2, 3))
    a = run_simulated(DSGD(0.0, form=form), QuadraticOracle(p), [ring(6)], x0, 10, seed=2)
    b = run_simulated(Gossip(), QuadraticOracle(p), [ring(6)], x0, 10, seed=2)
    np.testing.assert_allclose(a.consensus, b.consensus, rtol=0, atol=1e-15)
    np.testing.assert_allclose(a.error, b.error, rtol=0, atol=1e-15)


def _numpy_dsgd(problem, schedule, x0, steps, gamma, form, seed):
    """DSGD written independently: dense W^(k), dense A_i, noise from each node's generator."""
    n, R, d = x0.shape
    gens = node_generators(seed, "noise", range(n))
    scale = math.sqrt(problem.sigma2 / problem.d)
    x = x0.copy()
    errors = [np.mean(np.sum((x - problem.x_star) ** 2, axis=2), axis=0)]
    for k in range(steps):
        W = schedule[k % len(schedule)]
        noise = np.stack(
            [torch.randn((R, d), generator=g, dtype=torch.float64).numpy() for g in gens]
        )
        g = np.einsum("nij,nrj->nri", problem.A, x - problem.b[:, None, :]) + noise * scale
        if form == "atc":
            x = np.einsum("ij,jrd->ird", W, x - gamma * g)
        else:
            x = np.einsum("ij,jrd->ird", W, x) - gamma * g
        errors.append(np.mean(np.sum((x - problem.x_star) ** 2, axis=2), axis=0))
    return np.array(errors)


@pytest.mark.parametrize("form", ["atc", "cta"])
@pytest.mark.parametrize("time_varying", [False, True])
def test_dsgd_matches_an_independent_numpy_recursion(form, time_varying):
    n, R, d, steps, gamma = 8, 3, 4, 9, 0.2
    p = heterogeneous_quadratic(n, d, sigma2=0.7, diagonal=False, seed=3)
    schedule = one_peer_exponential(n) if time_varying else [ring(n)]
    x0 = np.random.default_rng(4).standard_normal((n, R, d))
    traj = run_simulated(
        DSGD(gamma, form=form), QuadraticOracle(p), schedule, x0, steps, 5, range(steps + 1)
    )
    expected = _numpy_dsgd(p, schedule, x0, steps, gamma, form, seed=5)
    np.testing.assert_allclose(traj.error, expected, rtol=1e-12, atol=1e-14)


def test_psgd_noise_free_is_gradient_descent_in_closed_form():
    n, d, h, gamma, steps = 4, 3, 2.0, 0.1, 15
    p = heterogeneous_quadratic(n, d, L=h, mu=h, shared_hessian=True, sigma2=0.0, seed=0)
    x0 = np.zeros((n, d))
    traj = run_simulated(PSGD(gamma), QuadraticOracle(p), [ring(n)], x0, steps, 0, range(steps + 1))
    R0 = float(np.sum(p.x_star**2))
    expected = (1 - gamma * h) ** (2 * np.arange(1, steps + 1)) * R0
    np.testing.assert_allclose(traj.error[1:, 0], expected, rtol=1e-10)
    np.testing.assert_allclose(traj.consensus[1:], 0.0, atol=1e-25)


def test_psgd_mean_error_matches_the_exact_isotropic_formula():
    # E||x_t - x*||^2 = (1-gh)^(2t) R0^2 + g s2 (1 - (1-gh)^(2t)) / (n h (2 - gh))  (rates.md §1).
    # Mean over R = 3000 replicas vs the formula within 5 standard errors at every checkpoint:
    # false failure < 6e-7 per checkpoint by the CLT, < 3e-6 over 4 checkpoints. Fixed seeds.
    n, d, h, gamma, sigma2, R = 4, 3, 1.0, 0.2, 2.0, 3000
    p = heterogeneous_quadratic(n, d, L=h, mu=h, shared_hessian=True, sigma2=sigma2, seed=0)
    record = [1, 5, 10, 30]
    traj = run_simulated(
        PSGD(gamma), QuadraticOracle(p), [ring(n)], np.zeros((n, d)), 30, 7, record, replicas=R
    )
    R0 = float(np.sum(p.x_star**2))
    q = (1 - gamma * h) ** (2 * np.array(record))
    exact = q * R0 + gamma * sigma2 * (1 - q) / (n * h * (2 - gamma * h))
    mean, se = traj.error.mean(axis=1), traj.error.std(axis=1) / math.sqrt(R)
    assert np.all(np.abs(mean - exact) < 5 * se), (mean, exact, se)


def test_trajectory_round_trips_through_json():
    p = heterogeneous_quadratic(4, 2, seed=0)
    traj = run_simulated(DSGD(0.1), QuadraticOracle(p), [ring(4)], np.zeros((4, 2)), 3, 0)
    back = Trajectory.from_dict(json.loads(json.dumps(traj.to_dict())))
    np.testing.assert_array_equal(back.error, traj.error)
    assert back.steps == traj.steps == [0, 1, 2, 3]
    assert back.config == traj.config and back.config["algorithm"] == "dsgd"
    assert traj.bytes_sent == 3 * 4 * 2 * 2 * 8  # 3 rounds, 4 nodes, 2 neighbours, 2 float64


def test_run_algorithm_validates_its_inputs():
    comm = SimulatedCommunicator([ring(3)])
    ctx = make_context(comm, None, 0)
    with pytest.raises(TheorylabError, match="m = 3"):
        run_algorithm(Gossip(), ctx, torch.zeros(2, 1, 1, dtype=torch.float64), 2)
    with pytest.raises(TheorylabError, match="record step"):
        run_algorithm(Gossip(), ctx, torch.zeros(3, 1, 1, dtype=torch.float64), 2, record=[5])


# -- executor equality at world 2 ---------------------------------------------------------------


def _setups():
    quad = QuadraticOracle(heterogeneous_quadratic(2, 3, sigma2=1.0, diagonal=False, seed=1))
    logi = LogisticOracle(logistic_regression(2, 12, 3, reg=0.1, seed=2, tol=1e-9), batch_size=3)
    W = [np.full((2, 2), 0.5)]
    lazy = [np.array([[0.75, 0.25], [0.25, 0.75]]), np.eye(2)]  # time-varying, idle 2nd round
    return {
        "gossip": (Gossip(), quad, W),
        "psgd": (PSGD(0.3), quad, W),
        "dsgd-atc-logistic": (DSGD(0.5), logi, W),
        "dsgd-cta-time-varying": (DSGD(0.2, form="cta"), quad, lazy),
    }


@pytest.mark.distributed
@pytest.mark.parametrize("name", list(_setups()))
def test_same_trajectory_on_both_executors_world_2(pool, name):
    algorithm, oracle, schedule = _setups()[name]
    x0 = np.random.default_rng(0).standard_normal((2, 3, 3))
    sim = run_simulated(algorithm, oracle, schedule, x0, 6, seed=4)
    for traj in pool.run(run_distributed, algorithm, oracle, schedule, x0, 6, 4):
        assert traj.steps == sim.steps
        for key in ("error", "consensus", "avg_error"):
            np.testing.assert_allclose(
                getattr(traj, key), getattr(sim, key), rtol=1e-12, atol=1e-14
            )
        assert traj.bytes_sent == sim.bytes_sent


def _rank0_raises_rank1_computes(rank, world_size):
    if rank == 0:
        raise KeyError("gone")
    time.sleep(30)  # busy without communicating: only termination stops it


def _sum_of_ranks(rank, world_size):
    t = torch.tensor([float(rank)])
    torch.distributed.all_reduce(t)
    return float(t)


@pytest.mark.distributed
def test_pool_terminates_a_busy_rank_and_restarts_on_the_next_call(pool):
    start = time.monotonic()
    with pytest.raises(DistributedError, match=r"rank 0 raised KeyError.*\[1\] did not finish"):
        pool.run(_rank0_raises_rank1_computes)
    assert time.monotonic() - start < 30
    assert not pool.alive
    assert pool.run(_sum_of_ranks) == [1.0, 1.0]  # restarted: fresh processes and group
