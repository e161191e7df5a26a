"""Robust PSGD: f = 0 with the mean is PSGD, executors agree (world 2 and 4), NaN/inf attacks
never reach the honest iterates, bad input, label flipping on the model oracle, gather_from."""

from __future__ import annotations

import doctest

import numpy as np
import pytest
import torch

import verify.algorithms.robust_psgd as robust_module
from theorylab.errors import TheorylabError
from theorylab.problems import heterogeneous_quadratic
from verify.algorithms import ALGORITHMS
from verify.algorithms.psgd import PSGD
from verify.algorithms.robust_psgd import RobustPSGD, label_flipping_oracle
from verify.claims.common import schedule
from verify.oracles import QuadraticOracle
from verify.run import Trajectory, run_distributed, run_simulated
from verify.runtime.launch import WorkerPool
from verify.runtime.simulated import SimulatedCommunicator


def _problem(n, d=3, sigma2=1.0, seed=0):
    return heterogeneous_quadratic(
        n, d, L=1.0, mu=0.2, zeta2=1.0, sigma2=sigma2, diagonal=True, seed=seed
    )


def test_doctest_and_registry():
    assert doctest.testmod(robust_module, raise_on_error=True).attempted > 0
    assert ALGORITHMS["robust_psgd"] is RobustPSGD


def test_f0_mean_is_psgd():
    # beta = 0, no Byzantine node, the mean rule: x - gamma mean_j g_j, PSGD's update; the
    # two differ only by the order of the float64 sums (from a common start, as a server's)
    n = 5
    p = _problem(n)
    x0 = np.repeat(np.random.default_rng(1).standard_normal((1, 3)), n, axis=0)
    W = schedule("complete", n)
    a = run_simulated(PSGD(0.1), QuadraticOracle(p), W, x0, 30, seed=3, replicas=6)
    b = run_simulated(
        RobustPSGD(0.1, aggregator="mean"), QuadraticOracle(p), W, x0, 30, seed=3, replicas=6
    )
    np.testing.assert_allclose(b.error, a.error, rtol=1e-12, atol=1e-15)
    # bytes: one all-gather of (R, d) float64 per node per round, no broadcast when f = 0
    assert b.bytes_sent == 30 * n * (n - 1) * 6 * 3 * 8


@pytest.mark.parametrize("attack", ["nan", "inf", "mixed-nonfinite"])
@pytest.mark.parametrize("spec", ["mean", "trimmed-mean", "nnm+cw-median", "krum"])
def test_nonfinite_attacks_never_reach_the_iterates(attack, spec):
    n = 7
    p = _problem(n)
    seen = []

    def observe(k, before, after, ctx):
        seen.append(bool(torch.isfinite(after.x).all()))

    alg = RobustPSGD(0.1, beta=0.5, aggregator=spec, byzantine=[2, 5], attack=attack)
    traj = run_simulated(
        alg, QuadraticOracle(p), schedule("complete", n), np.zeros((n, 3)), 40, seed=0,
        replicas=4, observe=observe,
    )  # fmt: skip
    assert all(seen) and np.all(np.isfinite(traj.error))


def test_robust_rule_beats_the_mean_under_attack():
    # IPM with eps = 20 > n - f: the mean's step is ((n - f - eps)/n) mean_H, an ascent step,
    # so plain averaging diverges; NNM + trimmed mean stays near the honest optimum
    n, steps = 9, 200
    p = _problem(n, sigma2=0.0)
    W, x0 = schedule("complete", n), np.zeros((n, 3))

    def floor(spec):
        alg = RobustPSGD(0.2, aggregator=spec, byzantine=[4], attack="ipm:eps=20")
        return run_simulated(alg, QuadraticOracle(p), W, x0, steps, seed=0).error[-1, 0]

    assert floor("nnm+trimmed-mean") < 1.0
    assert not floor("mean") < 1e6


def test_bad_input():
    with pytest.raises(TheorylabError, match="f=-1"):
        RobustPSGD(0.1, f=-1)
    with pytest.raises(TheorylabError, match="twice"):
        RobustPSGD(0.1, byzantine=[1, 1])
    with pytest.raises(TheorylabError, match="beta"):
        RobustPSGD(0.1, beta=1.0)
    with pytest.raises(TheorylabError, match="gamma"):
        RobustPSGD(-0.1)
    with pytest.raises(TheorylabError, match="unknown attack"):
        RobustPSGD(0.1, byzantine=[0], attack="nope")
    n = 4
    p = _problem(n)
    W, x0 = schedule("complete", n), np.zeros((n, 3))
    with pytest.raises(TheorylabError, match="f < n/2.*f=2 with n=4"):
        run_simulated(RobustPSGD(0.1, byzantine=[0, 1]), QuadraticOracle(p), W, x0, 1, seed=0)
    with pytest.raises(TheorylabError, match="node 7 does not exist"):
        run_simulated(RobustPSGD(0.1, byzantine=[7]), QuadraticOracle(p), W, x0, 1, seed=0)
    with pytest.raises(TheorylabError, match="label"):
        alg = RobustPSGD(0.1, byzantine=[0], attack="label-flipping")
        run_simulated(alg, QuadraticOracle(p), W, x0, 1, seed=0)
    with pytest.raises(TheorylabError, match="quadratic oracle is not supported"):
        label_flipping_oracle(QuadraticOracle(p), [0])


def test_gather_from_values_bytes_and_errors():
    comm = SimulatedCommunicator(schedule("complete", 4))
    x = torch.arange(4 * 2 * 3, dtype=torch.float64).reshape(4, 2, 3)
    out = comm.gather_from(x, [3, 1])
    assert torch.equal(out, x[[3, 1]])
    assert comm.bytes_sent == 2 * 3 * 2 * 3 * 8  # 2 sources x (n - 1) x 6 float64
    assert comm.gather_from(x, []).shape == (0, 2, 3)
    with pytest.raises(TheorylabError, match="distinct"):
        comm.gather_from(x, [1, 1])
    with pytest.raises(TheorylabError, match="outside"):
        comm.gather_from(x, [4])


def test_label_flipping_on_the_model_oracle():
    from theorylab.data import teacher_student
    from verify.model_oracle import mlp, model_oracle

    n = 5
    data = teacher_student(100, 3, num_classes=3, seed=0)
    oracle = model_oracle(mlp([3, 4, 3], seed=0), data, n, seed=0, batch_size=8)
    bad = label_flipping_oracle(oracle, [4], num_classes=3)
    lo = int(oracle.offsets[4])
    sl = slice(lo, lo + oracle.sizes[4])
    assert torch.equal(bad.y[sl], 2 - oracle.y[sl])
    assert torch.equal(bad.y[: int(oracle.offsets[4])], oracle.y[: int(oracle.offsets[4])])
    x0 = oracle.x0.expand(n, oracle.d).numpy()
    alg = RobustPSGD(0.2, beta=0.9, aggregator="trimmed-mean", byzantine=[4],
                     attack="label-flipping")  # fmt: skip
    traj = run_simulated(alg, bad, schedule("complete", n), x0, 5, seed=0, replicas=2)
    assert np.all(np.isfinite(traj.consensus))


def _same_trajectory(pool, n, alg, p, steps=12, R=3):
    W = schedule("complete", n)
    x0 = np.repeat(np.random.default_rng(2).standard_normal((1, 3)), n, axis=0)
    sim = run_simulated(alg, QuadraticOracle(p), W, x0, steps, seed=5, replicas=R)
    ranks = pool.run(run_distributed, alg, QuadraticOracle(p), W, x0, steps, 5, replicas=R)
    dist = Trajectory.from_ranks(ranks)
    np.testing.assert_allclose(dist.error, sim.error, rtol=1e-10, atol=1e-14)
    assert dist.bytes_sent == sim.bytes_sent


def test_executors_agree_world_2(pool):
    # world 2: f = 0 (2f < n); momentum, trimmed mean, nan-safe path exercised by the mean
    _same_trajectory(pool, 2, RobustPSGD(0.1, beta=0.7, aggregator="trimmed-mean"), _problem(2))


def test_executors_agree_world_4_with_byzantine_node():
    p = _problem(4)
    with WorkerPool(4, timeout_s=60) as pool4:
        for attack in ("alie", "gaussian", "nan"):
            alg = RobustPSGD(0.1, beta=0.5, aggregator="nnm+cw-median", byzantine=[1],
                             attack=attack)  # fmt: skip
            _same_trajectory(pool4, 4, alg, p)
