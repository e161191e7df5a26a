"""Gradient tracking, exact diffusion / D^2 and push-sum: against the exact engine (deterministic
and with many replicas), heterogeneity removal, the push operation, executor equality at world 2
(the session WorkerPool of tests/conftest.py), and bad input."""

from __future__ import annotations

import doctest
import math
import warnings

import numpy as np
import pytest
import torch
from graphs import lazy_ring, one_peer_exponential, ring

import verify.algorithms.exact_diffusion as ed_module
import verify.algorithms.gradient_tracking as gt_module
import verify.algorithms.push_sum as ps_module
from theorylab.directed import (
    column_stochastic_weights,
    random_directed,
    row_stochastic_weights,
)
from theorylab.errors import TheorylabError, TheorylabWarning
from theorylab.exact import (
    exact_diffusion,
    exact_dsgd,
    exact_gradient_tracking,
    exact_push_sum_sgd,
)
from theorylab.problems import heterogeneous_quadratic
from verify.algorithms import ALGORITHMS
from verify.algorithms.dsgd import DSGD
from verify.algorithms.exact_diffusion import ExactDiffusion
from verify.algorithms.gradient_tracking import GradientTracking
from verify.algorithms.push_sum import PushSum
from verify.oracles import QuadraticOracle
from verify.run import _executor_stochasticity, make_context, run_distributed, run_simulated
from verify.runtime.simulated import SimulatedCommunicator


@pytest.mark.parametrize("module", [gt_module, ed_module, ps_module])
def test_doctest_examples_run(module):
    assert doctest.testmod(module, raise_on_error=True).attempted > 0


def test_registry_and_configs():
    assert {"gradient_tracking", "exact_diffusion", "push_sum"} <= set(ALGORITHMS)
    assert GradientTracking(0.1, L=2.0).config() == {"gamma": 0.1, "form": "atc", "L": 2.0}
    with pytest.raises(TheorylabError, match="form"):
        GradientTracking(0.1, form="awc")
    with pytest.raises(TheorylabError, match="form"):
        ExactDiffusion(0.1, form="extra")
    with pytest.raises(TheorylabError, match="gamma"):
        PushSum(-0.1)


# -- the exact engine, deterministic (sigma2 = 0: every term but the noise, to ~1e-9) -----------


def _cases(n):
    W, Wl = ring(n), lazy_ring(n, 0.5)
    tv = list(one_peer_exponential(n))
    P = column_stochastic_weights(random_directed(n, 1, seed=0))
    return {
        "gt-atc": (GradientTracking(0.2), [W], lambda p, s, x0: exact_gradient_tracking(
            p, W, 0.2, s, x0)),
        "gt-cta": (GradientTracking(0.2, form="cta"), [W], lambda p, s, x0: exact_gradient_tracking(
            p, W, 0.2, s, x0, form="cta")),
        "gt-atc-time-varying": (GradientTracking(0.2), tv, lambda p, s, x0: exact_gradient_tracking(
            p, tv, 0.2, s, x0)),
        "gt-cta-time-varying": (GradientTracking(0.2, form="cta"), tv,
                                lambda p, s, x0: exact_gradient_tracking(p, tv, 0.2, s, x0, "cta")),
        "ed": (ExactDiffusion(0.5), [W], lambda p, s, x0: exact_diffusion(p, W, 0.5, s, x0)),
        "ed-time-varying": (ExactDiffusion(0.5), tv, lambda p, s, x0: exact_diffusion(
            p, tv, 0.5, s, x0)),
        # D^2 on W is ED on W' with (I + W')/2 = W, i.e. W' = 2W - I; lazy W: lambda_min = 0
        "d2": (ExactDiffusion(0.5, form="d2"), [Wl], lambda p, s, x0: exact_diffusion(
            p, 2 * Wl - np.eye(n), 0.5, s, x0)),
        "push-sum": (PushSum(0.2), [P], lambda p, s, x0: exact_push_sum_sgd(p, P, 0.2, s, x0)),
    }  # fmt: skip


@pytest.mark.parametrize("name", list(_cases(8)))
def test_noise_free_trajectory_equals_the_exact_engine(name):
    n, d, steps = 8, 3, 60
    p = heterogeneous_quadratic(n, d, zeta2=1.0, sigma2=0.0, diagonal=False, seed=4)
    x0 = np.random.default_rng(0).standard_normal((n, d))
    algorithm, schedule, predict = _cases(n)[name]
    traj = run_simulated(algorithm, QuadraticOracle(p), schedule, x0, steps, seed=0)
    pred = predict(p, steps, x0)
    for key in ("error", "consensus", "avg_error"):
        np.testing.assert_allclose(
            getattr(traj, key)[:, 0], getattr(pred, key), rtol=1e-9, atol=1e-13, err_msg=key
        )


def test_tracking_and_exact_diffusion_remove_the_heterogeneity_floor_dsgd_keeps():
    n, d, steps = 8, 3, 800
    p = heterogeneous_quadratic(n, d, zeta2=4.0, sigma2=0.0, seed=1)
    W = ring(n)
    x0 = np.zeros((n, d))
    oracle = QuadraticOracle(p)
    errs = {
        alg.name + alg.config().get("form", ""): run_simulated(alg, oracle, [W], x0, steps, 0)
        for alg in (
            GradientTracking(0.2),
            GradientTracking(0.2, form="cta"),
            ExactDiffusion(0.5),
            DSGD(0.2),
        )  # fmt: skip
    }
    for key in ("gradient_trackingatc", "gradient_trackingcta", "exact_diffusioned"):
        assert errs[key].error[-1, 0] < 1e-12, (key, errs[key].error[-1, 0])
    floor = exact_dsgd(p, W, 0.2, steps, x0).steady_state["error"]
    assert errs["dsgdatc"].error[-1, 0] == pytest.approx(floor, rel=1e-6)
    assert floor > 1e-2


# -- the exact engine with noise, many replicas --------------------------------------------------


@pytest.mark.parametrize("name", ["gt-atc", "gt-cta", "ed", "d2", "push-sum"])
def test_mean_error_matches_the_exact_engine_with_many_replicas(name):
    # Mean over R = 2000 independent replicas against the exact expectation at 4 checkpoints,
    # each within 5 standard errors. The per-replica errors are quadratics of Gaussians with
    # light tails (CLT at R = 2000): P(|z| > 5) < 6e-7 per checkpoint, < 3e-6 per test, < 2e-5
    # over the 5 parametrizations. Fixed seeds.
    n, d, R, steps = 8, 2, 2000, 80
    p = heterogeneous_quadratic(n, d, zeta2=1.0, sigma2=0.5, seed=2)
    x0 = np.random.default_rng(1).standard_normal((n, d))
    algorithm, schedule, predict = _cases(n)[name]
    record = [1, 5, 20, 80]
    traj = run_simulated(algorithm, QuadraticOracle(p), schedule, x0, steps, 11, record, replicas=R)
    pred = predict(p, steps, x0)
    exact = pred.error[record]
    mean, se = traj.error.mean(axis=1), traj.error.std(axis=1, ddof=1) / math.sqrt(R)
    z = (mean - exact) / se
    assert np.all(np.abs(z) < 5), (z, mean, exact)


# -- push ----------------------------------------------------------------------------------------


def test_push_is_P_at_x_counts_the_senders_bytes_and_push_sum_averages():
    n = 7
    G = random_directed(n, 2, seed=5)
    P = column_stochastic_weights(G)
    comm = SimulatedCommunicator([P], stochasticity="column")
    x = torch.randn(n, 3, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    y = comm.push(x, 0)
    torch.testing.assert_close(y, torch.einsum("ij,jrd->ird", torch.as_tensor(P), x))
    assert comm.bytes_sent == sum(G.out_degree(j) for j in range(n)) * 3 * 2 * 8
    # gamma = 0: push-sum averaging, z_i -> mean_j x_j^0 on a non-regular directed graph
    traj = run_simulated(PushSum(0.0), None, [P], x.numpy(), 300, seed=0)
    assert traj.consensus[-1].max() < 1e-20
    ctx = make_context(SimulatedCommunicator([P], stochasticity="column"), None, 0)
    state = PushSum(0.0).init(x, ctx)
    for k in range(300):
        state = PushSum(0.0).step(state, ctx, k)
        torch.testing.assert_close(state.x.sum(0), x.sum(0), rtol=0, atol=1e-13)  # 1^T x kept
    z = PushSum(0.0).iterate(state)
    torch.testing.assert_close(z, x.mean(0, keepdim=True).expand_as(x), rtol=0, atol=1e-12)


# -- bad input -----------------------------------------------------------------------------------


def _init(algorithm, schedule, n=6, d=2):
    # the executor checks what run_simulated would (row-, or column-stochastic for push-sum),
    # the algorithm's init the rest (doubly stochastic for GT and ED)
    p = heterogeneous_quadratic(n, d, sigma2=0.0, seed=0)
    comm = SimulatedCommunicator(schedule, stochasticity=_executor_stochasticity(algorithm))
    ctx = make_context(comm, QuadraticOracle(p), 0)
    return algorithm.init(torch.zeros(n, 1, d, dtype=torch.float64), ctx)


def test_swapped_orientation_and_non_doubly_stochastic_weights_are_named():
    G = random_directed(6, 1, seed=0)
    P, A = column_stochastic_weights(G), row_stochastic_weights(G)
    for alg in (GradientTracking(0.1), ExactDiffusion(0.1)):
        # column-stochastic P where receive weights are needed: the executor names the rows
        with pytest.raises(
            TheorylabError, match="row [0-9]+ of W sums to .* must be row-stochastic"
        ):
            _init(alg, [P])
        with pytest.raises(TheorylabError, match="needs a doubly stochastic W"):
            _init(alg, [A])
        # the algorithm's own check names the swapped orientation (a communicator built
        # without the executor's row check, e.g. by hand)
        with pytest.raises(TheorylabError, match="column-stochastic .*push-sum.* matrix"):
            alg.init(
                torch.zeros(6, 1, 2, dtype=torch.float64),
                make_context(SimulatedCommunicator([P], stochasticity="column"), None, 0),
            )
    with pytest.raises(
        TheorylabError, match="column [0-9]+ of W sums to .* must be column-stochastic"
    ):
        _init(PushSum(0.1), [A])
    _init(PushSum(0.1), [P])  # fine


def test_not_strongly_connected_push_weights_are_rejected():
    # node 0 pushes to 1 but nobody pushes to 0: column_stochastic_weights refuses the graph,
    # and push-sum refuses such a P (columns sum to 1, but node 0's mass only ever leaves it)
    import networkx as nx

    with pytest.raises(TheorylabError, match="not strongly connected"):
        column_stochastic_weights(nx.DiGraph([(0, 1), (1, 2), (2, 1)]))
    P = np.array([[0.5, 0.0, 0.0], [0.5, 0.5, 0.5], [0.0, 0.5, 0.5]])
    with pytest.raises(TheorylabError, match="push-sum: the schedule's union graph: .*node 0"):
        _init(PushSum(0.1), [P], n=3)
    # a time-varying schedule needs only its union to be strongly connected
    ring3 = column_stochastic_weights(random_directed(3, 0, seed=0))
    _init(PushSum(0.1), [np.eye(3), ring3], n=3)


def test_unstable_step_sizes_warn_naming_the_condition():
    W = ring(6)
    with pytest.warns(TheorylabWarning, match=r"gamma <= p c/\(c_0 L\)"):
        _init(GradientTracking(0.9, L=1.0), [W])  # p = 1 - (2/3)^2 = 0.556
    with pytest.warns(TheorylabWarning, match="gamma < 2/L"):
        _init(ExactDiffusion(2.5, L=1.0), [W])
    # D^2 on a W with lambda_min <= -1/3: ring with self-weight 0.2 has lambda_min = -0.6
    bad = 0.2 * np.eye(6) + 0.4 * (np.roll(np.eye(6), 1, 0) + np.roll(np.eye(6), -1, 0))
    with pytest.warns(TheorylabWarning, match=r"lambda_min\(W\) > -1/3"):
        _init(ExactDiffusion(0.1, form="d2"), [bad])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _init(ExactDiffusion(0.1, form="ed", L=1.0), [bad])  # Wbar fixes it: no warning
        _init(GradientTracking(0.01, L=1.0), [W])


def test_d2_without_wbar_diverges_where_exact_diffusion_converges():
    bad = 0.2 * np.eye(6) + 0.4 * (np.roll(np.eye(6), 1, 0) + np.roll(np.eye(6), -1, 0))
    p = heterogeneous_quadratic(6, 2, sigma2=0.0, seed=0)
    x0 = np.random.default_rng(0).standard_normal((6, 2))
    with pytest.warns(TheorylabWarning):
        d2 = run_simulated(ExactDiffusion(0.05, form="d2"), QuadraticOracle(p), [bad], x0, 200, 0)
    ed = run_simulated(ExactDiffusion(0.05), QuadraticOracle(p), [bad], x0, 200, 0)
    assert d2.error[-1, 0] > 1e3 * d2.error[0, 0]
    assert ed.error[-1, 0] < ed.error[0, 0]


# -- executor equality at world 2 ----------------------------------------------------------------


def _setups():
    quad = QuadraticOracle(heterogeneous_quadratic(2, 3, sigma2=1.0, diagonal=False, seed=1))
    W = [np.full((2, 2), 0.5)]
    lazy = [np.array([[0.75, 0.25], [0.25, 0.75]]), np.eye(2)]  # time-varying, idle 2nd round
    P = [np.array([[0.5, 0.25], [0.5, 0.75]])]  # column-stochastic, not row-stochastic
    P_tv = [np.array([[0.5, 0.0], [0.5, 1.0]]), np.array([[1.0, 0.4], [0.0, 0.6]])]
    return {
        "gt-atc": (GradientTracking(0.3), quad, W),
        "gt-cta-time-varying": (GradientTracking(0.2, form="cta"), quad, lazy),
        "ed-time-varying": (ExactDiffusion(0.4), quad, lazy),
        "d2": (ExactDiffusion(0.4, form="d2"), quad, W),
        "push-sum": (PushSum(0.3), quad, P),
        "push-sum-time-varying": (PushSum(0.3), quad, P_tv),
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
