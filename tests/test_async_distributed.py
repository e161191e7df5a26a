"""Asynchronous SGD on torch.distributed (gloo): the virtual clock replays the simulator's trace,
the point-to-point operations, real-time mode, and a worker that dies mid-run.

One WorkerPool (world 4: server + 3 workers) for the checks that leave the group healthy; the
fault checks use fresh processes (launch), since a timed-out gloo wait closes connections.
"""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import torch

from theorylab.problems import QuadraticProblem
from verify.asynchronous import AsyncRun, run_async_distributed, run_async_simulated
from verify.comm import PeerError
from verify.oracles import QuadraticOracle
from verify.runtime.distributed import DistributedCommunicator
from verify.runtime.launch import DistributedError, WorkerPool, launch

pytestmark = pytest.mark.distributed

WORLD = 4


def _oracle(n=3, d=2, sigma2=0.5):
    rng = np.random.default_rng(1)
    return QuadraticOracle(
        QuadraticProblem(rng.uniform(0.5, 1.5, (n, d)), rng.normal(size=(n, d)), sigma2=sigma2)
    )


@pytest.fixture(scope="module")
def pool():
    with WorkerPool(WORLD, timeout_s=30) as p:
        yield p


def _p2p_check(rank, world):
    comm = DistributedCommunicator(np.eye(world), timeout_s=20)
    out = {}
    if rank == 0:
        got = sorted(int(comm.recv_any((3,))[0]) for _ in range(world - 1))
        out["any"] = got
        # only now may rank 2 send its second message: sent earlier, a receive-from-any could
        # take it instead of rank 1's or 3's first one (gloo orders messages per pair only)
        comm.send(torch.zeros(3, dtype=torch.float64), 2)
        out["from2"] = comm.recv(2, (3,)).tolist()
        try:
            comm.recv(1, (3,), timeout_s=0.5)  # rank 1 sends nothing more
        except PeerError as exc:
            out["timeout"] = (exc.peer, exc.op)
    else:
        comm.send(torch.full((3,), float(rank), dtype=torch.float64), 0)
        if rank == 2:
            comm.recv(0, (3,))  # rank 0 has taken one message from each worker
            comm.send(torch.full((3,), 7.0, dtype=torch.float64), 0)
        time.sleep(1.0)
    out["bytes"] = comm.bytes_sent
    return out


def test_p2p_operations():
    res = launch(_p2p_check, WORLD, timeout_s=20)  # fresh group: the timeout closes a pair
    assert res[0]["any"] == [1, 2, 3]
    assert res[0]["from2"] == [7.0] * 3
    assert res[0]["timeout"] == (1, "recv")
    assert [r["bytes"] for r in res] == [24, 24, 48, 24]


@pytest.mark.parametrize(
    "kw",
    [
        dict(speeds=[1.0, 1.0, 0.2], model="fixed"),
        dict(speeds=[1.0, 2.0, 0.5], model="exponential", adaptive=True),
        dict(speeds=[1.0, 1.0, 0.25], model="fixed", algorithm="sync"),
    ],
)
def test_virtual_clock_same_trace_and_trajectory_as_simulator(pool, kw):
    o = _oracle()
    sim = run_async_simulated(o, np.ones(2), 40, 0.1, 5, replicas=3, **kw)
    for _ in range(2):  # and on every run
        dist_run = AsyncRun.from_ranks(
            pool.run(run_async_distributed, o, np.ones(2), 40, 0.1, 5, replicas=3, **kw)
        )
        np.testing.assert_array_equal(dist_run.staleness, sim.staleness)
        np.testing.assert_array_equal(dist_run.worker, sim.worker)
        np.testing.assert_allclose(dist_run.x, sim.x, rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(dist_run.error, sim.error, rtol=1e-13, atol=1e-15)
        assert dist_run.bytes_sent == sim.bytes_sent


def test_realtime_mode_runs_every_update(pool):
    o = _oracle()
    res = pool.run(
        run_async_distributed,
        o,
        np.ones(2),
        30,
        0.1,
        0,
        speeds=[1.0, 1.0, 0.25],
        mode="realtime",
        time_scale=0.01,
    )
    run = AsyncRun.from_ranks(res)
    assert run.applied == 30 and run.failure is None
    assert np.all(np.diff(run.wall_time) >= 0) and run.wall_s > 0.02
    # the straggler (4x slower) delivered fewer gradients than each fast worker
    counts = np.bincount(run.worker, minlength=3)
    assert counts[2] < counts[0] and counts[2] < counts[1]
    assert all(r["status"] == "stopped" for r in res[1:])


def test_worker_that_hangs_is_reported_and_the_run_ends_cleanly(tmp_path):
    path = tmp_path / "partial.json"
    t = time.monotonic()
    res = launch(
        run_async_distributed,
        WORLD,
        _oracle(),
        np.ones(2),
        50,
        0.1,
        0,
        worker_timeout_s=2.0,
        timeout_s=20,
        die=(1, 4, "hang"),
        save_path=str(path),
    )
    elapsed = time.monotonic() - t
    run = res[0]
    assert run.failed_worker == 1 and "rank 2" in run.failure
    assert 4 <= run.applied < 50  # what it applied before noticing
    assert np.array_equal(np.bincount(run.worker, minlength=3)[1], 4)
    saved = AsyncRun.from_dict(json.loads(path.read_text()))
    assert saved.applied == run.applied and saved.failed_worker == 1
    assert res[2]["status"].startswith("died")
    # gloo closed the server's connections at the timeout: the others noticed and stopped
    assert res[1]["status"].startswith("server lost") and res[3]["status"].startswith("server lost")
    assert elapsed < 60


def test_worker_process_that_exits_is_reported(tmp_path):
    path = tmp_path / "partial.json"
    with pytest.raises(DistributedError, match="rank 3"):
        launch(
            run_async_distributed,
            WORLD,
            _oracle(),
            np.ones(2),
            50,
            0.1,
            0,
            worker_timeout_s=5.0,
            timeout_s=20,
            die=(2, 3, "exit"),
            save_path=str(path),
        )
    saved = AsyncRun.from_dict(json.loads(path.read_text()))
    assert saved.failed_worker == 2 and 3 <= saved.applied < 50
