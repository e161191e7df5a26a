"""Tasks that ``python -m verify.runtime.entry`` runs on every rank (under ``torchrun``).

Each is called as ``FUNC(rank, world_size, **args)``. The executor (:mod:`verify.runtime`)
knows nothing of algorithms or problems; the tasks that set
one up and run it live here, above both. Usage::

    torchrun --standalone --nproc-per-node=2 -m verify.runtime.entry \
        --task verify.tasks:quadratic_run --args '{"steps": 100}' --out results/run.json

* :func:`ring_mix_check`: one ring-gossip round, a self-check of the distributed executor;
* :func:`quadratic_setup`: ``(algorithm, oracle, schedule, x0)`` for a seeded heterogeneous
  quadratic, any registered algorithm (built by ``Algorithm.example``);
* :func:`quadratic_run`: that setup run for ``steps`` rounds on this rank.
"""

from __future__ import annotations

import numpy as np
import torch

from theorylab.errors import TheorylabError

__all__ = ["ring_mix_check", "quadratic_setup", "quadratic_run", "TOPOLOGIES"]

#: topology names accepted by :func:`quadratic_setup`
TOPOLOGIES = ("ring", "one_peer_exp")


def _schedule(topology: str, n: int) -> list:
    """Ring, Metropolis weights (1/3; 1/2 at n = 2; [1] at n = 1), or one-peer exponential."""
    from theorylab import mixing
    from theorylab import topology as T

    if n == 1:  # a single rank (e.g. a smoke test of torchrun): W = [1]
        return [np.ones((1, 1))]
    if topology == "ring":
        G = T.ring(n) if n >= 3 else T.complete(n)
        return [mixing.mixing_matrix(G, "metropolis", sparse=False)]
    if topology == "one_peer_exp":
        return list(T.one_peer_exponential(n, sparse=False).matrices)
    raise TheorylabError(f"topology must be one of {TOPOLOGIES}, got {topology!r}")


def ring_mix_check(rank: int, world_size: int, d: int = 4) -> dict:
    """A self-check task: one ring-gossip round of ``x_i = i * 1`` on the distributed executor.

    Returns this rank's mixed value and the expected ``(x_{i-1} + x_i + x_{i+1}) / 3`` (for
    ``world_size == 2`` the two neighbours coincide: ``(x_i + x_j) / 2``), and the bytes sent.
    """
    from verify.runtime.distributed import DistributedCommunicator

    n = world_size
    (W,) = _schedule("ring", n)
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


def quadratic_setup(
    n: int,
    *,
    algorithm: str = "dsgd",
    gamma: float = 0.1,
    form: str | None = None,
    topology: str = "ring",
    d: int = 4,
    sigma2: float = 1.0,
    zeta2: float = 1.0,
    replicas: int = 2,
    diagonal: bool = True,
    problem_seed: int = 0,
    options: dict | None = None,
):
    """``(algorithm, oracle, schedule, x0)`` for a seeded heterogeneous quadratic on ``n`` nodes.

    ``algorithm`` is any name in :data:`verify.algorithms.ALGORITHMS`, built by its
    ``example(gamma=gamma, form=form, **options)`` (arguments its constructor does not take are
    ignored; ``form=None`` keeps the algorithm's default form, e.g. DSGD's ATC); the problem is
    :func:`theorylab.problems.heterogeneous_quadratic` (``L = 1``,
    ``mu = 0.1``, diagonal Hessians unless ``diagonal=False``); ``x0`` is standard normal (seeded
    by ``problem_seed``), shape ``(n, replicas, d)``. Used by :func:`quadratic_run` and by tests
    that compare it with the simulator.
    """
    from theorylab.problems import heterogeneous_quadratic
    from verify.algorithms import ALGORITHMS
    from verify.oracles import QuadraticOracle

    if not isinstance(algorithm, str) or algorithm not in ALGORITHMS:
        raise TheorylabError(f"algorithm must be one of {sorted(ALGORITHMS)}, got {algorithm!r}")
    settings = {"gamma": gamma, **({} if form is None else {"form": form}), **(options or {})}
    built = ALGORITHMS[algorithm].example(**settings)
    problem = heterogeneous_quadratic(
        n, d, zeta2=zeta2, sigma2=sigma2, diagonal=diagonal, seed=problem_seed
    )
    rng = np.random.default_rng(problem_seed)
    x0 = torch.from_numpy(rng.standard_normal((n, replicas, d)))
    return built, QuadraticOracle(problem), _schedule(topology, n), x0


def quadratic_run(rank: int, world_size: int, *, steps: int = 10, seed: int = 0, **setup):
    """Task: run :func:`quadratic_setup` ``(world_size, **setup)`` for ``steps`` on this rank."""
    from verify.run import run_distributed

    algorithm, oracle, schedule, x0 = quadratic_setup(world_size, **setup)
    return run_distributed(rank, world_size, algorithm, oracle, schedule, x0, steps, seed)
