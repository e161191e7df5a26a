"""``torchrun`` entry point: run ``MODULE:FUNC(rank, world_size, **args)`` on every rank.

Usage::

    torchrun --standalone --nproc-per-node=2 -m verify.runtime.entry \
        --task verify.runtime.entry:ring_mix_check --args '{"d": 4}' --out result.json

Every rank initialises the process group from torchrun's environment (:func:`init_from_env`),
runs the function, and rank 0 writes ``{"task", "args", "world_size", "backend", "device",
"result"}`` to ``--out`` as JSON. A result with ``to_dict()`` (e.g. a
:class:`verify.run.Trajectory`) is written through it; numpy arrays and tensors become lists. A
rank that raises makes torchrun exit non-zero with the rank's traceback (``record``).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import tempfile

import numpy as np
import torch
import torch.distributed as dist
from torch.distributed.elastic.multiprocessing.errors import record

from theorylab.errors import TheorylabError
from verify.runtime.launch import init_from_env

__all__ = [
    "main",
    "resolve_task",
    "to_jsonable",
    "ring_mix_check",
    "quadratic_setup",
    "quadratic_run",
]


def resolve_task(spec: str):
    """The function named by ``"package.module:function"``."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise TheorylabError(f"--task must look like 'package.module:function', got {spec!r}")
    fn = getattr(importlib.import_module(module_name), attr, None)
    if not callable(fn):
        raise TheorylabError(f"{spec!r} does not name a callable in module {module_name!r}")
    return fn


def to_jsonable(value):
    """``value`` with ``to_dict()`` objects, arrays and tensors turned into JSON types."""
    if hasattr(value, "to_dict"):
        return to_jsonable(value.to_dict())
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().tolist()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    return value


def ring_mix_check(rank: int, world_size: int, d: int = 4) -> dict:
    """A self-check task: one ring-gossip round of ``x_i = i * 1`` on the distributed executor.

    Returns this rank's mixed value and the expected ``(x_{i-1} + x_i + x_{i+1}) / 3`` (for
    ``world_size == 2`` the two neighbours coincide: ``(x_i + x_j) / 2``), and the bytes sent.
    """
    from verify.runtime.distributed import DistributedCommunicator

    n = world_size
    W = np.zeros((n, n))
    for i in range(n):
        for j in {(i - 1) % n, i, (i + 1) % n}:
            W[i, j] = 1.0
        W[i] /= W[i].sum()
    comm = DistributedCommunicator([W])
    x = torch.full((1, 1, d), float(rank), dtype=torch.float64)
    y = comm.mix(x, 0)
    expected = float(W[rank] @ np.arange(n, dtype=np.float64))
    return {
        "rank": rank,
        "mixed": y.flatten().tolist(),
        "expected": expected,
        "bytes_sent": comm.bytes_sent,
    }


def _schedule(topology: str, n: int) -> list[np.ndarray]:
    """Ring (Metropolis weights 1/3; 1/2 at n = 2) or the one-peer exponential schedule."""
    if topology == "ring":
        W = np.zeros((n, n))
        for i in range(n):
            for j in {(i - 1) % n, i, (i + 1) % n}:
                W[i, j] = 1.0
            W[i] /= W[i].sum()
        return [W]
    if topology == "one_peer_exp":
        tau = max(1, int(np.ceil(np.log2(n))))
        mats = []
        for k in range(tau):
            W = 0.5 * np.eye(n)
            for i in range(n):
                W[i, (i + 2**k) % n] += 0.5
            mats.append(W)
        return mats
    raise TheorylabError(f"topology must be 'ring' or 'one_peer_exp', got {topology!r}")


def quadratic_setup(
    n: int,
    *,
    algorithm: str = "dsgd",
    gamma: float = 0.1,
    form: str = "atc",
    topology: str = "ring",
    d: int = 4,
    sigma2: float = 1.0,
    zeta2: float = 1.0,
    replicas: int = 2,
    diagonal: bool = True,
    problem_seed: int = 0,
):
    """``(algorithm, oracle, schedule, x0)`` for a seeded heterogeneous quadratic on ``n`` nodes.

    ``algorithm`` is ``"gossip"``, ``"psgd"`` or ``"dsgd"`` (with ``gamma``, ``form``); the
    problem is :func:`theorylab.problems.heterogeneous_quadratic` (``L = 1``, ``mu = 0.1``,
    diagonal Hessians unless ``diagonal=False``); ``x0`` is standard normal (seeded by
    ``problem_seed``), shape ``(n, replicas, d)``. Used by :func:`quadratic_run` and by tests
    that compare it with the simulator.
    """
    from theorylab.problems import heterogeneous_quadratic
    from verify.algorithms.dsgd import DSGD
    from verify.algorithms.gossip import Gossip
    from verify.algorithms.psgd import PSGD
    from verify.oracles import QuadraticOracle

    builders = {
        "gossip": lambda: Gossip(),
        "psgd": lambda: PSGD(gamma),
        "dsgd": lambda: DSGD(gamma, form=form),
    }
    if algorithm not in builders:
        raise TheorylabError(f"algorithm must be one of {sorted(builders)}, got {algorithm!r}")
    problem = heterogeneous_quadratic(
        n, d, zeta2=zeta2, sigma2=sigma2, diagonal=diagonal, seed=problem_seed
    )
    rng = np.random.default_rng(problem_seed)
    x0 = torch.from_numpy(rng.standard_normal((n, replicas, d)))
    return builders[algorithm](), QuadraticOracle(problem), _schedule(topology, n), x0


def quadratic_run(rank: int, world_size: int, *, steps: int = 10, seed: int = 0, **setup):
    """Task: run :func:`quadratic_setup` ``(world_size, **setup)`` for ``steps`` on this rank."""
    from verify.run import run_distributed

    algorithm, oracle, schedule, x0 = quadratic_setup(world_size, **setup)
    return run_distributed(rank, world_size, algorithm, oracle, schedule, x0, steps, seed)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m verify.runtime.entry",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--task", required=True, help="MODULE:FUNC, called as FUNC(rank, world, **args)")
    p.add_argument("--args", default="{}", help="JSON object of keyword arguments for FUNC")
    p.add_argument("--out", required=True, help="JSON file rank 0 writes the result to")
    p.add_argument("--backend", default="gloo", choices=["gloo", "nccl"])
    p.add_argument("--device", default="cpu", help="cpu or cuda (rank r uses cuda:LOCAL_RANK)")
    p.add_argument("--timeout", type=float, default=60.0, help="process-group timeout, seconds")
    return p


@record
def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, run the task on this rank, write rank 0's result; returns 0."""
    args = _parser().parse_args(argv)
    kwargs = json.loads(args.args)
    if not isinstance(kwargs, dict):
        raise TheorylabError(f"--args must be a JSON object, got {args.args!r}")
    fn = resolve_task(args.task)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    rank, world_size = init_from_env(args.backend, args.device, args.timeout)
    try:
        result = fn(rank, world_size, **kwargs)
        if rank == 0:
            payload = {
                "task": args.task,
                "args": kwargs,
                "world_size": world_size,
                "backend": args.backend,
                "device": args.device,
                "result": to_jsonable(result),
            }
            out_dir = os.path.dirname(os.path.abspath(args.out))
            with tempfile.NamedTemporaryFile("w", dir=out_dir, delete=False, suffix=".tmp") as f:
                json.dump(payload, f, indent=1)
            os.replace(f.name, args.out)
        dist.barrier()
    finally:
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
