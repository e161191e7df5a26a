"""The distributed executor on gloo (world 4 in one WorkerPool), launch() and torchrun.

One pool per module (spawning 4 ranks costs ~10 s on 2 cores); every check reuses it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from theorylab.compressors import RandK
from theorylab.errors import TheorylabError
from verify.run import Trajectory, run_distributed, run_simulated
from verify.runtime.distributed import DistributedCommunicator
from verify.runtime.launch import DistributedError, WorkerPool, init_from_env, launch
from verify.runtime.simulated import SimulatedCommunicator
from verify.seeding import node_generators
from verify.tasks import quadratic_setup

pytestmark = pytest.mark.distributed

WORLD = 4
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def pool():
    with WorkerPool(WORLD, timeout_s=30) as p:
        yield p


def _assert_same_trajectory(a: Trajectory, b: Trajectory) -> None:
    assert a.steps == b.steps
    for key in ("error", "consensus", "avg_error"):
        np.testing.assert_allclose(getattr(a, key), getattr(b, key), rtol=1e-12, atol=1e-14)
    assert a.bytes_sent == b.bytes_sent


@pytest.mark.parametrize("topology", ["ring", "one_peer_exp"])
@pytest.mark.parametrize(
    "algorithm, params",
    [
        ("gossip", {}),
        ("psgd", {"gamma": 0.3}),
        ("dsgd", {"form": "atc"}),
        ("dsgd", {"form": "cta"}),
    ],
)
def test_same_trajectory_on_both_executors(pool, topology, algorithm, params):
    setup = quadratic_setup(
        WORLD, algorithm=algorithm, topology=topology, d=3, replicas=3, sigma2=0.5,
        diagonal=topology == "ring", **params,
    )  # fmt: skip
    sim = run_simulated(*setup, steps=7, seed=3, record=[0, 1, 2, 5, 7])
    ranks = pool.run(run_distributed, *setup, 7, 3, [0, 1, 2, 5, 7])
    for traj in ranks:  # the metrics are global: every rank reports the same
        _assert_same_trajectory(sim, traj)
    merged = Trajectory.from_ranks(ranks)
    assert merged.bytes_sent == sum(t.bytes_sent_local for t in ranks) == sim.bytes_sent
    assert merged.config["executor"] == "DistributedCommunicator"
    assert all(t.comm_s > 0 for t in ranks)


def test_checkpoints_measured_in_batches_match_the_simulator(pool):
    """A rank measures its checkpoints in batches of up to ``_PENDING_BYTES``
    (:func:`verify.run.run_algorithm`): with 12 MiB per checkpoint a batch holds two, so
    checkpoints 0-1 and 2-3 are measured mid-run and 5 at the end; every number equals the
    simulator's, which measures each checkpoint at once."""
    from verify import run as run_module

    d = 3 << 19  # 1.5 Mi float64 = 12 MiB per checkpoint and replica
    assert 2 * d * 8 < run_module._PENDING_BYTES <= 3 * d * 8 < 5 * d * 8
    setup = quadratic_setup(WORLD, algorithm="gossip", topology="ring", d=d, replicas=1,
                            sigma2=0.0, diagonal=True)  # fmt: skip
    record = [0, 1, 2, 3, 5]
    sim = run_simulated(*setup, steps=5, seed=1, record=record)
    for traj in pool.run(run_distributed, *setup, 5, 1, record):
        assert traj.steps == record
        np.testing.assert_allclose(traj.consensus, sim.consensus, rtol=1e-12, atol=0)
        assert np.all(np.diff(traj.consensus[:, 0]) < 0)  # gossip contracts: order kept


def _byte_counts(rank, world_size, schedule, R, d):
    comm = DistributedCommunicator(schedule)
    x = torch.ones(1, R, d, dtype=torch.float64)
    counts = []
    for k in range(len(schedule) + 1):
        before = comm.bytes_sent
        comm.mix(x, k)
        counts.append(comm.bytes_sent - before)
    for op in (comm.mean, comm.gather):
        before = comm.bytes_sent
        op(x)
        counts.append(comm.bytes_sent - before)
    return counts


@pytest.mark.parametrize("topology", ["ring", "one_peer_exp"])
def test_bytes_are_degree_times_message_size(pool, topology):
    R, d = 2, 5
    _, _, schedule, _ = quadratic_setup(WORLD, topology=topology)
    s = R * d * 8  # float64 message of one node
    degree = 2 if topology == "ring" else 1  # ring: two neighbours; one-peer: one per round
    expected = [degree * s] * (len(schedule) + 1)
    expected += [(2 * (WORLD - 1) * s) // WORLD, (WORLD - 1) * s]  # ring all-reduce, all-gather
    counts = pool.run(_byte_counts, schedule, R, d)
    assert counts == [expected] * WORLD
    # the simulator counts the sum over nodes
    sim = SimulatedCommunicator(schedule)
    x = torch.ones(WORLD, R, d, dtype=torch.float64)
    for k in range(len(schedule) + 1):
        sim.mix(x, k)
    sim.mean(x)
    sim.gather(x)
    assert sim.bytes_sent == WORLD * sum(expected)


def _compressed(rank, world_size, schedule, X, k):
    comm = DistributedCommunicator(schedule)
    comp = RandK(k=2)
    x = X[rank : rank + 1]
    q, y = comm.compressed_mix(x, 1, comp, node_generators(9, "algorithm", [rank]))
    mix_bytes = comm.bytes_sent
    q2, m = comm.compressed_mean(x, comp, node_generators(10, "algorithm", [rank]))
    g = comm.gather(x)
    return q, y, mix_bytes, q2, m, comm.bytes_sent - mix_bytes, g


def test_compressed_operations_and_gather_agree_with_simulator(pool):
    R, d = 3, 6
    _, _, schedule, _ = quadratic_setup(WORLD, topology="one_peer_exp")
    X = torch.randn(WORLD, R, d, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    sim = SimulatedCommunicator(schedule)
    comp = RandK(k=2)
    q, y = sim.compressed_mix(X, 1, comp, node_generators(9, "algorithm", range(WORLD)))
    q2, m = sim.compressed_mean(X, comp, node_generators(10, "algorithm", range(WORLD)))
    size = comp.nbytes((R, d), torch.float64)
    for rank, res in enumerate(pool.run(_compressed, schedule, X, 2)):
        assert torch.equal(res[0][0], q[rank])
        torch.testing.assert_close(res[1][0], y[rank], rtol=1e-14, atol=1e-14)
        assert res[2] == 1 * size  # one out-neighbour per round, encoded size
        assert torch.equal(res[3][0], q2[rank])
        torch.testing.assert_close(res[4][0], m[rank], rtol=0, atol=0)
        assert res[5] == (WORLD - 1) * size + (WORLD - 1) * R * d * 8
        assert torch.equal(res[6], X)


def _fails_on_rank_2(rank, world_size, schedule):
    comm = DistributedCommunicator(schedule)
    x = torch.zeros(1, 1, 3, dtype=torch.float64)
    x = comm.mix(x, 0)
    if rank == 2:
        raise ValueError("rank 2 fails on purpose")
    for k in range(1, 5):
        x = comm.mix(x, k)
    return float(x.sum())


def _healthy(rank, world_size):
    t = torch.tensor([float(rank)])
    dist.all_reduce(t)
    return float(t)


def test_failing_rank_surfaces_quickly_and_pool_keeps_working(pool):
    _, _, schedule, _ = quadratic_setup(WORLD, topology="ring")
    start = time.monotonic()
    with pytest.raises(DistributedError, match="rank 2 raised ValueError: rank 2 fails") as info:
        pool.run(_fails_on_rank_2, schedule)
    assert time.monotonic() - start < 30
    assert info.value.rank == 2 and info.value.exc_type == "ValueError"
    assert "_fails_on_rank_2" in info.value.remote_traceback
    assert pool.run(_healthy) == [6.0] * WORLD  # 0 + 1 + 2 + 3


def _three_node_communicator(rank, world_size):
    DistributedCommunicator([np.full((3, 3), 1 / 3)])


def test_world_size_must_match_schedule(pool):
    with pytest.raises(DistributedError, match=r"n = 3 nodes but the process group has world "
                       r"size 4") as info:  # fmt: skip
        pool.run(_three_node_communicator)
    assert info.value.exc_type == "TheorylabError"
    assert pool.run(_healthy) == [6.0] * WORLD


def _hangs_on_rank_1(rank, world_size):
    comm = DistributedCommunicator([np.full((2, 2), 0.5)], timeout_s=3)
    if rank == 1:
        time.sleep(60)
    return comm.mean(torch.zeros(1, 1, 1, dtype=torch.float64))


def test_launch_reports_a_timeout_and_kills_the_hung_rank():
    before = set(mp.active_children())  # the module's pool
    start = time.monotonic()
    with pytest.raises(DistributedError, match="rank 0 raised RuntimeError.*timed out"):
        launch(_hangs_on_rank_1, 2, timeout_s=3)
    assert time.monotonic() - start < 30
    assert set(mp.active_children()) <= before


def test_torchrun_entry_matches_simulator(tmp_path):
    out = tmp_path / "result.json"
    args = {"algorithm": "dsgd", "form": "cta", "steps": 4, "seed": 1, "replicas": 2, "d": 3}
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
        "-m", "verify.runtime.entry", "--task", "verify.runtime.entry:quadratic_run",
        "--args", json.dumps(args), "--out", str(out), "--timeout", "30",
    ]  # fmt: skip
    proc = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads(out.read_text())
    assert data["world_size"] == 2 and data["backend"] == "gloo"
    traj = Trajectory.from_dict(data["result"])
    steps, seed = args.pop("steps"), args.pop("seed")
    sim = run_simulated(*quadratic_setup(2, **args), steps=steps, seed=seed)
    _assert_same_trajectory(sim, traj)


def test_init_from_env_outside_torchrun_says_how_to_start(monkeypatch):
    for var in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(TheorylabError, match="torchrun"):
        init_from_env()


def test_communicator_needs_a_process_group():
    assert not dist.is_initialized()
    with pytest.raises(TheorylabError, match="process group"):
        DistributedCommunicator([np.eye(2)])


def test_nccl_needs_cuda():
    with pytest.raises(TheorylabError, match="nccl"):
        WorkerPool(2, backend="nccl", device="cpu")


def _run_on_cuda(rank, world_size, setup):
    return run_distributed(rank, world_size, *setup, 3, 0, device="cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gloo_with_cuda_tensors_matches_simulator():  # pragma: no cover - GPU machines only
    setup = quadratic_setup(2, algorithm="dsgd", d=3, replicas=2)
    sim = run_simulated(*setup, steps=3, seed=0)
    ranks = launch(_run_on_cuda, 2, setup, device="cuda")
    for traj in ranks:
        np.testing.assert_allclose(traj.consensus, sim.consensus, rtol=1e-10, atol=1e-12)
