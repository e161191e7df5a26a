"""``Communicator.mean(x, inplace=True)``: same values and bytes as ``inplace=False``, and ``x``
itself is reused, on both executors; PSGD donates only its own fresh tensor."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from verify.algorithms.psgd import PSGD
from verify.run import make_context
from verify.runtime.distributed import DistributedCommunicator
from verify.runtime.launch import WorkerPool
from verify.runtime.simulated import SimulatedCommunicator
from verify.tasks import quadratic_setup

WORLD = 2


def _x(shape, seed):
    return torch.randn(*shape, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


def _mean_both_ways(comm, x):
    """(copying mean, its bytes, in-place mean, its bytes, x after the copying mean)."""
    before = comm.bytes_sent
    ref = comm.mean(x)
    ref_bytes = comm.bytes_sent - before
    kept = x.clone()
    before = comm.bytes_sent
    out = comm.mean(x, inplace=True)
    return ref, ref_bytes, out, comm.bytes_sent - before, kept


@pytest.mark.parametrize("shape", [(4, 1, 7), (4, 3, 5), (1, 2, 3)])
def test_simulated_inplace_mean_equals_copying_mean(shape):
    n = shape[0]
    comm = SimulatedCommunicator([np.full((n, n), 1 / n)])
    x = _x(shape, seed=3)
    original = x.clone()
    ref, ref_bytes, out, out_bytes, kept = _mean_both_ways(comm, x)
    assert torch.equal(kept, original)  # inplace=False leaves x alone
    assert out is x  # the donated buffer is returned
    assert torch.equal(out, ref)  # same arithmetic, bit for bit
    # the independent computation: every row is the plain node average
    np.testing.assert_allclose(
        out.numpy(), np.broadcast_to(original.numpy().mean(axis=0), shape), rtol=0, atol=1e-12
    )
    assert out_bytes == ref_bytes == n * (2 * (n - 1) * shape[1] * shape[2] * 8 // n)


def test_simulated_inplace_mean_of_non_contiguous_x_is_correct():
    comm = SimulatedCommunicator([np.full((3, 3), 1 / 3)])
    x = _x((3, 5, 4), seed=4).transpose(1, 2)  # (3, 4, 5), not contiguous
    ref = comm.mean(x)
    out = comm.mean(x.clone(memory_format=torch.preserve_format), inplace=True)
    assert torch.equal(out, ref)


def _distributed_means(rank, world_size, shape):
    comm = DistributedCommunicator([np.full((world_size, world_size), 1 / world_size)])
    x = _x(shape, seed=10 + rank)
    ptr = x.data_ptr()
    ref, ref_bytes, out, out_bytes, kept = _mean_both_ways(comm, x)
    return {
        "x": kept,
        "ref": ref,
        "out": out,
        "reused": out is x and out.data_ptr() == ptr,
        "x_untouched_by_copying_mean": torch.equal(kept, _x(shape, seed=10 + rank)),
        "bytes": (ref_bytes, out_bytes),
    }


@pytest.mark.distributed
def test_distributed_inplace_mean_equals_copying_mean_and_simulator():
    shape = (1, 3, 6)
    with WorkerPool(WORLD, timeout_s=30) as pool:
        res = pool.run(_distributed_means, shape)
    X = torch.cat([r["x"] for r in res])  # (WORLD, 3, 6): every rank's own row
    sim = SimulatedCommunicator([np.full((WORLD, WORLD), 1 / WORLD)])
    sim_mean = sim.mean(X)
    s = shape[1] * shape[2] * 8
    for rank, r in enumerate(res):
        assert r["reused"] and r["x_untouched_by_copying_mean"]
        assert torch.equal(r["out"], r["ref"])
        torch.testing.assert_close(r["out"][0], sim_mean[rank], rtol=0, atol=1e-12)
        assert r["bytes"] == (2 * (WORLD - 1) * s // WORLD,) * 2
    assert sim.bytes_sent == sum(sum(r["bytes"]) for r in res) // 2


def test_psgd_step_leaves_the_previous_state_intact():
    algo, oracle, schedule, x0 = quadratic_setup(4, algorithm="psgd", d=3, topology="ring")
    assert isinstance(algo, PSGD)
    ctx = make_context(SimulatedCommunicator(schedule), oracle, seed=0)
    s0 = algo.init(x0, ctx)
    s0_copy = s0.x.clone()
    s1 = algo.step(s0, ctx, 0)
    assert torch.equal(s0.x, s0_copy)  # earlier states stay valid (run_algorithm may keep them)
    assert s1.x.data_ptr() != s0.x.data_ptr()
