"""theorylab compressors as DDP communication hooks, on gloo at world size 2 (session pool)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP

from theorylab.compressors import get_compressor
from verify.ddp_hooks import CompressionHookState, compression_hook

pytestmark = pytest.mark.distributed


def _net(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)  # same initial weights on every rank (DDP broadcasts them anyway)
    return torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.Tanh(), torch.nn.Linear(5, 1))


def _data(rank: int):
    g = torch.Generator().manual_seed(100 + rank)  # different data on each rank
    return torch.randn(8, 6, generator=g), torch.randn(8, 1, generator=g)


def _grads(model) -> torch.Tensor:
    return torch.cat([p.grad.reshape(-1) for p in model.parameters()])


def _run(rank, world, spec, error_feedback, iters):
    """Per rank: the hooked DDP gradient each iteration, the plain DDP gradient, and the
    final error memory averaged over ranks."""
    x, y = _data(rank)
    plain = DDP(_net())
    torch.nn.functional.mse_loss(plain(x), y).backward()
    reference = _grads(plain)
    hooked = DDP(_net())
    state = CompressionHookState(spec, error_feedback=error_feedback, seed=3)
    hooked.register_comm_hook(state, compression_hook)
    outs = []
    for _ in range(iters):  # same weights and data: the true average gradient is `reference`
        hooked.zero_grad()
        torch.nn.functional.mse_loss(hooked(x), y).backward()
        outs.append(_grads(hooked))
    local = torch.cat([p.grad.reshape(-1) for p in _local_grads(x, y)])
    e = None
    if error_feedback:
        e = torch.cat([t.reshape(-1) for t in state.error_by_parameter(hooked.module.parameters())])
        dist.all_reduce(e)
        e /= world
    norms = torch.tensor([float(local.norm())])
    dist.all_reduce(norms)
    return {
        "reference": reference,
        "outs": torch.stack(outs),
        "e_mean": e,
        "sum_norms": float(norms),
        "bytes": state.bytes_sent,
    }


def _local_grads(x, y):
    net = _net()
    torch.nn.functional.mse_loss(net(x), y).backward()
    return list(net.parameters())


def test_identity_hook_reproduces_allreduce_exactly(pool):
    for r in pool.run(_run, "identity", False, 2):
        assert torch.equal(r["outs"][0], r["reference"])
        assert torch.equal(r["outs"][1], r["reference"])
        d = r["reference"].numel()
        assert r["bytes"] == 2 * 4 * d  # one bucket of d float32, twice


def test_unbiased_hook_average_is_close(pool):
    # QSGD s=2 per bucket: each rank's message coordinate lies in an interval of width
    # ||g_j||/s, so the hook output's coordinate lies in one of width sum_j ||g_j|| / (2 s).
    # Over N = 300 independent draws, Hoeffding + union bound over d coordinates: the mean is
    # within width * sqrt(ln(2 d / 1e-6) / (2 N)) of the true average w.p. >= 1 - 1e-6.
    N, s = 300, 2
    for r in pool.run(_run, f"qsgd:s={s}", False, N):
        d = r["reference"].numel()
        width = r["sum_norms"] / (2 * s)
        tol = width * math.sqrt(math.log(2 * d / 1e-6) / (2 * N))
        dev = (r["outs"].mean(0) - r["reference"]).abs().max()
        assert float(dev) <= tol
        assert not torch.equal(r["outs"][0], r["outs"][1])  # fresh randomness each step
        C = get_compressor(f"qsgd:s={s}")
        assert r["bytes"] == N * C.nbytes((d,))


def test_error_feedback_hook_conserves_the_gradient_sum(pool):
    # EF: sum_t out_t + mean_j e_j = T * (true average gradient), exactly up to rounding
    T = 12
    for r in pool.run(_run, "top-k:k=3", True, T):
        lhs = r["outs"].sum(0) + r["e_mean"]
        torch.testing.assert_close(lhs, T * r["reference"], rtol=1e-5, atol=1e-6)
        assert int((r["outs"][0] != 0).sum()) <= 2 * 3  # at most k per rank
