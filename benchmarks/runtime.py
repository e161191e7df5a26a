"""Overhead of verify's runtime against bare torch baselines timed in the same run.

1. A DSGD (ATC) step on the distributed executor vs the bare exchange (one batch_isend_irecv with
   the ring neighbours) + the same gradient and combination on the same tensors; d = 1e4, 1e5,
   1e6, world sizes 2 and 4 (gloo, float32). Target: ratio <= 1.15.
2. A PSGD step (gradient of a ~1e6-parameter MLP through an oracle, then one all-reduce of the
   parameters) vs DistributedDataParallel (backward with bucketed gradient all-reduce, SGD step)
   on the same model and batch. Target: ratio <= 1.05. Also timed: DDP's maths without its
   overlap (full backward, then one all-reduce of the flat gradient, in-place SGD step), which
   splits the gap into our overhead (framework / that) and DDP's overlap (that / DDP). Our step
   cannot overlap: the oracle returns the whole gradient before the algorithm communicates, and
   the functional state costs fresh tensors per step (the stepped iterate and mean's output)
   where DDP updates the parameters in place.
3. The simulator: node-iterations per second of DSGD at n = 1024, d = 1e4 (ring, sparse mixing)
   vs a bare ``W @ X`` + gradient loop in the same process; the cost of the per-node noise draws
   (one generator per node) vs one bulk draw; the framework step with counter-based noise
   (``QuadraticOracle(..., noise="counter")``); peak memory (RSS). Target: ratio <= 1.5.

Times are medians over steps, the timed variants alternating step by step; in the distributed
parts a step's time is the slowest rank's (a barrier precedes every step, untimed). The machine
is shared and small, so read ratios, not absolute numbers.

Usage: ``python benchmarks/runtime.py [--quick] [--parts sim dsgd psgd] [--worlds 2 4]``
"""

from __future__ import annotations

import argparse
import math
import resource
import statistics
import sys
import time
from types import SimpleNamespace

import numpy as np
import scipy.sparse as sp
import torch
import torch.distributed as dist

from verify.algorithms.dsgd import DSGD
from verify.algorithms.psgd import PSGD
from verify.oracles import QuadraticOracle
from verify.run import make_context
from verify.runtime.distributed import DistributedCommunicator
from verify.runtime.launch import WorkerPool
from verify.runtime.simulated import SimulatedCommunicator
from verify.seeding import node_generators

DTYPE = torch.float32


def ring(n: int) -> np.ndarray:
    W = np.zeros((n, n))
    for i in range(n):
        for j in {(i - 1) % n, i, (i + 1) % n}:
            W[i, j] = 1.0
        W[i] /= W[i].sum()
    return W


def diagonal_problem(n: int, d: int, sigma2: float = 1.0, seed: int = 0) -> SimpleNamespace:
    """A diagonal quadratic without the dense (n, d, d) Hessians (they would not fit at d = 1e6)."""
    rng = np.random.default_rng(seed)
    return SimpleNamespace(
        n=n, d=d, sigma2=sigma2, b=rng.standard_normal((n, d)),
        hessian_diagonal=rng.uniform(0.1, 1.0, (n, d)), x_star=None,
    )  # fmt: skip


def _interleaved(fns: dict, steps: int, sync=None) -> dict:
    """Seconds of each step of each fn; the fns alternate step by step (A B A B ...), so a
    slow phase of the shared machine hits both alike. ``sync`` (a barrier) runs untimed before
    every step, so in the distributed parts a step's time is comparable across ranks."""
    out = {name: [] for name in fns}
    for _ in range(steps):
        for name, fn in fns.items():
            if sync is not None:
                sync()
            t = time.perf_counter()
            fn()
            out[name].append(time.perf_counter() - t)
    return out


# -- 1. DSGD step vs bare exchange --------------------------------------------------------------


def _dsgd_rank(rank: int, world_size: int, d: int, steps: int) -> dict:
    torch.set_num_threads(1)
    W = ring(world_size)
    gamma = 0.05
    comm = DistributedCommunicator([W], dtype=DTYPE)
    oracle = QuadraticOracle(diagonal_problem(world_size, d), dtype=DTYPE)
    ctx = make_context(comm, oracle, seed=0)
    algo = DSGD(gamma)
    state = [algo.init(torch.zeros(1, 1, d, dtype=DTYPE), ctx)]
    k = [0]

    def framework():
        state[0] = algo.step(state[0], ctx, k[0])
        k[0] += 1

    # the bare baseline: same maths, hand-written on the same kind of tensors
    h, b = oracle.h[rank], oracle.b[rank]
    gen = node_generators(1, "noise", [rank])[0]
    scale = math.sqrt(oracle.sigma2 / d)
    peers = sorted({(rank - 1) % world_size, (rank + 1) % world_size} - {rank})
    weights = [float(W[rank, j]) for j in peers]
    x = [torch.zeros(1, d, dtype=DTYPE)]
    noise = torch.empty(1, d, dtype=DTYPE)

    def bare():
        g = h * (x[0] - b)
        noise.normal_(generator=gen)
        y = x[0] - gamma * g.add_(noise, alpha=scale)
        bufs = [torch.empty_like(y) for _ in peers]
        ops = [dist.P2POp(dist.irecv, buf, j) for j, buf in zip(peers, bufs)]
        ops += [dist.P2POp(dist.isend, y, j) for j in peers]
        for work in dist.batch_isend_irecv(ops):
            work.wait()
        z = y * float(W[rank, rank])
        for w, buf in zip(weights, bufs):
            z.add_(buf, alpha=w)
        x[0] = z

    _interleaved({"framework": framework, "bare": bare}, 3, dist.barrier)  # warm-up
    return _interleaved({"framework": framework, "bare": bare}, steps, dist.barrier)


# -- 2. PSGD vs DDP -----------------------------------------------------------------------------


def _mlp() -> torch.nn.Module:
    torch.manual_seed(0)  # same initial model on every rank, as DDP requires; local to the rank
    return torch.nn.Sequential(
        torch.nn.Linear(256, 1024), torch.nn.ReLU(), torch.nn.Linear(1024, 768), torch.nn.ReLU(),
        torch.nn.Linear(768, 10),
    )  # fmt: skip


class _MLPOracle:
    """Gradient of a fixed-batch MSE loss of an MLP, at the flat parameter vector ``x``.

    No parameter copies: the model's parameters become views of ``x`` (``vector_to_parameters``
    re-points ``.data``). The per-parameter gradients are copied once into a flat buffer that is
    reused across calls, as DDP copies them into its persistent buckets; the returned tensor is
    overwritten by the next call (PSGD reads it once).
    """

    def __init__(self, model, inputs, targets, n):
        self.model, self.inputs, self.targets = model, inputs, targets
        self.params = list(model.parameters())
        self.n, self.d, self.x_star = n, sum(p.numel() for p in self.params), None
        self._flat_grad = torch.empty(self.d, dtype=self.params[0].dtype)

    def grad(self, x, nodes, generators):
        torch.nn.utils.vector_to_parameters(x[0, 0], self.params)
        loss = torch.nn.functional.mse_loss(self.model(self.inputs), self.targets)
        grads = torch.autograd.grad(loss, self.params)
        torch.cat([g.reshape(-1) for g in grads], out=self._flat_grad)
        return self._flat_grad.reshape(1, 1, -1)


def _psgd_rank(rank: int, world_size: int, steps: int) -> dict:
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(100 + rank)
    inputs, targets = torch.randn(64, 256, generator=gen), torch.randn(64, 10, generator=gen)
    lr = 0.01

    model = _mlp()
    oracle = _MLPOracle(model, inputs, targets, world_size)
    comm = DistributedCommunicator([np.full((world_size, world_size), 1 / world_size)], dtype=DTYPE)
    ctx = make_context(comm, oracle, seed=0)
    algo = PSGD(lr)
    x0 = torch.nn.utils.parameters_to_vector(model.parameters()).detach().reshape(1, 1, -1)
    state = [algo.init(x0, ctx)]

    def framework():
        state[0] = algo.step(state[0], ctx, 0)

    ddp_model = torch.nn.parallel.DistributedDataParallel(_mlp())
    opt = torch.optim.SGD(ddp_model.parameters(), lr=lr)

    def ddp():
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.mse_loss(ddp_model(inputs), targets).backward()
        opt.step()

    # DDP's maths without its overlap: the full backward, then one all-reduce of the flat
    # gradient (same bytes), then the SGD step; separates our overhead from DDP's overlap
    seq_model = _mlp()
    seq_params = list(seq_model.parameters())
    flat = torch.empty(oracle.d, dtype=DTYPE)  # persistent, like DDP's buckets

    def sequential():
        loss = torch.nn.functional.mse_loss(seq_model(inputs), targets)
        torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, seq_params)], out=flat)
        dist.all_reduce(flat)
        flat.div_(world_size)
        with torch.no_grad():
            offset = 0
            for p in seq_params:
                p.add_(flat[offset : offset + p.numel()].view_as(p), alpha=-lr)
                offset += p.numel()

    fns = {"framework": framework, "ddp": ddp, "sequential": sequential}
    _interleaved(fns, 3, dist.barrier)
    return {**_interleaved(fns, steps, dist.barrier), "d": oracle.d}


def _slowest_rank_median(results: list, name: str) -> float:
    per_step = np.max(np.array([r[name] for r in results]), axis=0)
    return float(statistics.median(per_step))


# -- 3. the simulator ---------------------------------------------------------------------------


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def simulator_bench(n: int, d: int, steps: int) -> dict:
    torch.set_num_threads(1)
    rss0 = _rss_mib()
    W = sp.csr_array(ring(n))
    comm = SimulatedCommunicator([W], dtype=DTYPE)
    oracle = QuadraticOracle(diagonal_problem(n, d), dtype=DTYPE)
    ctx = make_context(comm, oracle, seed=0)
    algo = DSGD(0.05)
    state = [algo.init(torch.zeros(n, 1, d, dtype=DTYPE), ctx)]
    k = [0]

    def framework():
        state[0] = algo.step(state[0], ctx, k[0])
        k[0] += 1

    oracle_c = QuadraticOracle(diagonal_problem(n, d), dtype=DTYPE, noise="counter")
    ctx_c = make_context(comm, oracle_c, seed=0)
    state_c = [algo.init(torch.zeros(n, 1, d, dtype=DTYPE), ctx_c)]
    k_c = [0]

    def framework_counter():
        state_c[0] = algo.step(state_c[0], ctx_c, k_c[0])
        k_c[0] += 1

    Wf = sp.csr_array(ring(n), dtype=np.float32)
    h, b = oracle.h, oracle.b
    scale = math.sqrt(oracle.sigma2 / d)
    gens = node_generators(1, "noise", range(n))
    X = [torch.zeros(n, d, dtype=DTYPE)]
    noise = torch.empty(n, d, dtype=DTYPE)
    bulk_gen = torch.Generator().manual_seed(0)

    def bare():  # bulk noise: the fastest possible loop
        noise.normal_(generator=bulk_gen)
        Y = X[0] - 0.05 * (h * (X[0] - b)).add_(noise, alpha=scale)
        X[0] = torch.from_numpy(Wf @ Y.numpy())

    def per_node_noise():
        for i in range(n):
            noise[i].normal_(generator=gens[i])

    def bulk_noise():
        noise.normal_(generator=bulk_gen)

    fns = {
        "framework": framework,
        "framework_counter": framework_counter,
        "bare": bare,
        "noise_loop": per_node_noise,
        "noise_bulk": bulk_noise,
    }
    _interleaved(fns, 1)
    times = _interleaved(fns, steps)
    med = {name: statistics.median(v) for name, v in times.items()}
    return {
        **med,
        "peak_rss_mib": _rss_mib(),
        "rss_growth_mib": _rss_mib() - rss0,
        "state_mib": n * d * 4 / 2**20,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (CI smoke run)")
    parser.add_argument(
        "--parts",
        nargs="+",
        choices=("sim", "dsgd", "psgd"),
        default=("sim", "dsgd", "psgd"),
        help="which parts to run (default: all)",
    )
    parser.add_argument(
        "--worlds", nargs="+", type=int, default=(2, 4), help="world sizes (default: 2 4)"
    )
    args = parser.parse_args(argv)
    steps = 15 if args.quick else 100
    dims = [10_000, 100_000, 1_000_000]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, gloo, float32\n")

    if "sim" in args.parts:
        print("3. simulator, DSGD (ATC) on a ring, n = 1024, d = 1e4, R = 1")
        n, d = 1024, 10_000
        s = simulator_bench(n, d, 3 if args.quick else 15)
        rate = lambda t: n / t  # noqa: E731 - node-iterations per second
        print(
            f"   framework step {s['framework'] * 1e3:8.1f} ms  "
            f"({rate(s['framework']):,.0f} node-it/s)"
        )
        print(f"   bare W@X+grad  {s['bare'] * 1e3:8.1f} ms  ({rate(s['bare']):,.0f} node-it/s)")
        print(f"   ratio framework/bare = {s['framework'] / s['bare']:.2f}  (target <= 1.5)")
        print(
            f"   noise: per-node loop {s['noise_loop'] * 1e3:.1f} ms vs one bulk draw "
            f"{s['noise_bulk'] * 1e3:.1f} ms (x{s['noise_loop'] / s['noise_bulk']:.2f})"
        )
        print(
            f"   framework step, noise='counter' {s['framework_counter'] * 1e3:.1f} ms "
            f"(x{s['framework_counter'] / s['framework']:.2f} the per-node generators)"
        )
        print(
            f"   peak RSS {s['peak_rss_mib']:.0f} MiB (growth {s['rss_growth_mib']:.0f} MiB; "
            f"one (n, d) float32 tensor = {s['state_mib']:.0f} MiB)\n"
        )

    for world in args.worlds:
        with WorkerPool(world, timeout_s=120) as pool:
            if "dsgd" in args.parts:
                print(f"1. DSGD step, world {world} (ring), slowest-rank median per step")
                print(f"   {'d':>9} {'framework ms':>13} {'bare ms':>9} {'ratio':>6}")
            for dim in dims if "dsgd" in args.parts else ():
                res = pool.run(_dsgd_rank, dim, steps if dim < 1_000_000 else steps // 2)
                fw = _slowest_rank_median(res, "framework")
                bare = _slowest_rank_median(res, "bare")
                print(f"   {dim:>9} {fw * 1e3:>13.2f} {bare * 1e3:>9.2f} {fw / bare:>6.2f}")
            if "psgd" not in args.parts:
                continue
            res = pool.run(_psgd_rank, steps // 2)
            fw, ddp = _slowest_rank_median(res, "framework"), _slowest_rank_median(res, "ddp")
            seq = _slowest_rank_median(res, "sequential")
            print(f"2. PSGD vs DDP, world {world}, MLP with {res[0]['d']:,} parameters")
            print(
                f"   framework {fw * 1e3:.2f} ms, DDP {ddp * 1e3:.2f} ms, ratio {fw / ddp:.2f}; "
                f"DDP without overlap (backward, then one all-reduce) {seq * 1e3:.2f} ms, "
                f"framework/that {fw / seq:.2f}, overlap gain of DDP {seq / ddp:.2f}x\n"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
