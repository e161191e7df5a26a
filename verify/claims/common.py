"""The setup every claim shares: seeds, levels, checkpoints, the test problems, topologies and
weights by name, and the one run-and-observe loop.

- :func:`schedule` gives the mixing matrices of a named topology (through
  :mod:`theorylab.topology` and :mod:`theorylab.mixing`; no claim builds a W by hand);
- :func:`run` runs an algorithm on the distributed executor (the shared worker pool) or on the
  stacked simulator, with an optional per-step ``observe`` hook; no claim builds an executor or
  writes a step loop of its own;
- :func:`claim_seeds` / :func:`derive_seed` derive every seed from the run's ``--seed``.

Every claim's family-wise false-failure probability (when the theory is right) is at most
:data:`ALPHA`; a claim with ``c`` statistical checks runs each at level ``1 - ALPHA / c``
(:func:`split_level`, the Bonferroni split across *independent runs*; within one run the
checkpoints are handled jointly by :func:`verify.claims.stats.exact_rule`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from theorylab.errors import TheorylabError
from verify.claims.base import ClaimContext

__all__ = [
    "ALPHA",
    "QUADRATIC",
    "split_level",
    "claim_seeds",
    "derive_seed",
    "checkpoints",
    "quadratic_problem",
    "start_point",
    "homogeneous_quadratic",
    "TOPOLOGIES",
    "schedule",
    "schedule_rho",
    "EXECUTORS",
    "run",
    "EXAMPLES",
    "examples",
    "noise_window",
    "window_average",
]

#: family-wise false-failure probability of every claim
ALPHA = 0.01

#: the heterogeneous quadratic most claims run on (config keys of :func:`quadratic_problem`)
QUADRATIC = {"d": 4, "L": 1.0, "mu": 0.2, "zeta2": 1.0, "sigma2": 1.0}


def split_level(checks: int) -> float:
    """Per-check confidence level so ``checks`` checks together fail falsely with prob. <= ALPHA.

    Example
    -------
    >>> split_level(4)
    0.9975
    """
    return 1.0 - ALPHA / checks


def derive_seed(seed: int, *key: int) -> int:
    """A 63-bit seed for the stream ``key`` of ``seed``, from numpy's SeedSequence.

    ``SeedSequence(seed, spawn_key=key)`` hashes the pair, so distinct ``(seed, key)`` give
    independent seeds (unlike ``seed + i``, where run ``i + 1`` of ``seed`` reuses run ``i`` of
    ``seed + 1``). The result is a valid seed for numpy Generators, torch Generators and
    :func:`verify.seeding.node_seed`.

    Parameters
    ----------
    seed : int >= 0
    *key : int >= 0
        The path of the stream below ``seed`` (e.g. the index of a run in a sweep).

    Example
    -------
    >>> derive_seed(0, 1) == derive_seed(0, 1) != derive_seed(1, 0)
    True
    """
    key = tuple(int(k) for k in key)
    state = np.random.SeedSequence(int(seed), spawn_key=key).generate_state(2, np.uint32)
    return ((int(state[0]) << 32) | int(state[1])) >> 1


def claim_seeds(ctx: ClaimContext, *extra: str) -> dict[str, int]:
    """Seeds of a claim, all derived from ``ctx.seed``: ``problem``, ``noise``, ``x0``, then
    one more per name in ``extra``, in that order; the ``j``-th is
    ``derive_seed(ctx.seed, j)``, so no seed of ``--seed s`` equals one of ``--seed s'``
    (``s' != s``). A sweep derives one seed per run from these with :func:`derive_seed`
    (e.g. ``derive_seed(seeds["noise"], i)`` for run ``i``)."""
    base = int(ctx.seed)
    names = ("problem", "noise", "x0", *extra)
    return {name: derive_seed(base, j) for j, name in enumerate(names)}


def checkpoints(steps: int, count: int) -> list[int]:
    """Steps 0..3 (the fast initial transient) and ``count`` evenly spaced steps up to ``steps``.

    Example
    -------
    >>> checkpoints(10, 3)
    [0, 1, 2, 3, 5, 10]
    """
    early = range(min(4, steps + 1))
    return sorted({*early, *(int(round(v)) for v in np.linspace(0, steps, count))})


def quadratic_problem(cfg: dict[str, Any], n: int, seed: int, **overrides):
    """The diagonal heterogeneous quadratic of a claim's config (keys ``d``, ``L``, ``mu``,
    ``zeta2``, ``sigma2``; ``overrides`` go to
    :func:`theorylab.problems.heterogeneous_quadratic`)."""
    from theorylab.problems import heterogeneous_quadratic

    kw = {k: cfg[k] for k in ("L", "mu", "zeta2", "sigma2")}
    kw.update(overrides)
    return heterogeneous_quadratic(n, cfg["d"], diagonal=True, seed=seed, **kw)


def start_point(problem, seed: int, scale: float) -> np.ndarray:
    """Deterministic start: ``x*`` plus a seeded Gaussian offset per node, shape (n, d)."""
    rng = np.random.default_rng(seed)
    return problem.x_star[None, :] + scale * rng.standard_normal((problem.n, problem.d))


def homogeneous_quadratic(n: int, d: int, seed: int, sigma2: float = 1.0, mu: float = 0.5):
    """The homogeneous diagonal quadratic of the compression claims (``zeta2 = 0``, one shared
    Hessian with ``L = 1``)."""
    from theorylab.problems import heterogeneous_quadratic

    return heterogeneous_quadratic(
        n, d, L=1.0, mu=mu, zeta2=0.0, sigma2=sigma2, diagonal=True, shared_hessian=True,
        seed=seed,
    )  # fmt: skip


# ---- topologies and weights by name ------------------------------------------------------------
#: the names :func:`schedule` knows
TOPOLOGIES = ("ring", "path", "torus", "complete", "exponential", "one_peer_exponential")


def schedule(name: str, n: int, weights: str = "metropolis") -> list[np.ndarray]:
    """The mixing matrices (one per round of the period) of topology ``name`` on ``n`` nodes.

    ``ring`` (the path for ``n = 2``), ``path``, ``torus`` (the most square ``r x c`` torus,
    ``r, c >= 3``) and ``complete`` take the weight rule ``weights`` of
    :func:`theorylab.mixing.mixing_matrix` (Metropolis: 1/3 on a ring, 1/5 on a torus, 1/n on
    the complete graph); ``exponential`` is the static exponential graph
    ``W = (I + sum_k P_{2^k})/(tau + 1)`` and ``one_peer_exponential`` its one-peer schedule
    (Ying et al. 2021). Row ``i`` holds node ``i``'s receive weights;
    ``rho = ||W - 11^T/n||_2``.

    Raises
    ------
    TheorylabError
        For an unknown name, or a torus that does not fit ``n``.

    Example
    -------
    >>> [round(float(v), 4) for v in schedule("ring", 4)[0][0]]
    [0.3333, 0.3333, 0.0, 0.3333]
    """
    from theorylab import mixing, topology

    if name in ("ring", "path", "torus", "complete"):
        if name == "ring":
            graph = topology.ring(n) if n >= 3 else topology.path(n)
        elif name == "path":
            graph = topology.path(n)
        elif name == "complete":
            graph = topology.complete(n)
        else:
            graph = topology.torus2d(*topology.square_shape(n))
        mats = [mixing.mixing_matrix(graph, weights, sparse=False)]
    elif name == "exponential":
        mats = [topology.exponential_mixing_matrix(n, sparse=False)]
    elif name == "one_peer_exponential":
        mats = list(topology.one_peer_exponential(n, sparse=False).matrices)
    else:
        raise TheorylabError(f"unknown topology {name!r}; expected one of {TOPOLOGIES}")
    return [np.asarray(W, dtype=np.float64) for W in mats]


def schedule_rho(mats: list[np.ndarray]) -> float:
    """Per-round rate of the period product: ``||W_{P-1}...W_0 - J||_2^{1/P}``."""
    from theorylab.spectral import schedule_rho as _rho

    return float(_rho(mats))


# ---- the run-and-observe loop -------------------------------------------------------------------
#: where a claim's run executes
EXECUTORS = ("distributed", "simulated")


def run(
    ctx: ClaimContext,
    algorithm,
    oracle,
    W,
    x0,
    steps: int,
    *,
    seed: int,
    executor: str = "distributed",
    record=None,
    replicas: int | None = None,
    observe=None,
):
    """Run ``algorithm`` for ``steps`` rounds and measure it at the ``record`` steps.

    The one loop every claim uses (:func:`verify.run.run_algorithm` under either executor):
    ``executor='distributed'`` runs one node per rank on the shared worker pool (``n`` must be
    ``ctx.world_size``), ``'simulated'`` stacks all ``n`` nodes in this process (any ``n``).
    The same ``seed`` gives the same trajectory on both (the ``executors_agree`` claim).

    Parameters
    ----------
    ctx : ClaimContext
    algorithm : verify.algorithms.Algorithm
    oracle : problem, oracle factory or None
        A :class:`theorylab.problems.QuadraticProblem` is wrapped in the context's quadratic
        oracle (:meth:`ClaimContext.oracle`); a zero-argument picklable factory is used as is;
        ``None`` for gradient-free algorithms (gossip).
    W : list of (n, n) arrays
        The schedule (:func:`schedule`).
    x0 : array, shape (n, d) or (n, R, d)
    steps, seed, record, replicas
        As in :func:`verify.run.run_simulated`.
    executor : {'distributed', 'simulated'}
    observe : callable(k, before, after, ctx) -> value, optional
        Called after every step ``k`` with the algorithm's state before and after it and the
        run's :class:`verify.algorithms.base.Context`; picklable for the distributed executor.
        Its values come back in ``Trajectory.observed`` (a list per process).

    Returns
    -------
    verify.run.Trajectory
    """
    from verify.run import Trajectory, run_distributed, run_simulated

    if executor not in EXECUTORS:
        raise TheorylabError(f"executor must be one of {EXECUTORS}, got {executor!r}")
    from theorylab.problems import QuadraticProblem

    if isinstance(oracle, QuadraticProblem):
        oracle = ctx.oracle(oracle)
    if executor == "simulated":
        import torch

        # one intra-op thread: the stacked tensors are small, and several threads on a shared
        # 2-core machine (the worker pool's ranks are idle but alive) are 10x slower, not faster
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return run_simulated(
                algorithm, oracle, W, x0, steps, seed, record, replicas=replicas,
                device=ctx.device, observe=observe,
            )  # fmt: skip
        finally:
            torch.set_num_threads(threads)
    per_rank = ctx.run_on_ranks(
        run_distributed, algorithm, oracle, W, x0, steps, seed, record,
        replicas=replicas, device=ctx.device, observe=observe,
    )  # fmt: skip
    return Trajectory.from_ranks(per_rank)


# ---- one table of example configurations, per registered algorithm ------------------------------
#: registry name -> list of (hyperparameters, topology) each claim that sweeps "every algorithm"
#: runs (``executors_agree`` the uncompressed ones, ``compressed_bytes`` those with a
#: ``compressor``); a test checks that every registered algorithm has an entry, so a new family
#: adds its example here, in one place.
EXAMPLES: dict[str, list[tuple[dict[str, Any], str]]] = {
    "dsgd": [({"gamma": 0.1, "form": "atc"}, "ring"),
             ({"gamma": 0.1, "form": "cta"}, "one_peer_exponential")],
    "psgd": [({"gamma": 0.1}, "ring")],
    "gossip": [({}, "exponential")],
    "compressed_psgd": [({"gamma": 0.1, "compressor": "qsgd:s=4"}, "complete"),
                        ({"gamma": 0.1, "compressor": "natural"}, "complete")],
    "ef_sgd": [({"gamma": 0.1, "compressor": "scaled-sign"}, "complete")],
    "ef21": [({"gamma": 0.3, "compressor": "top-k:k=3"}, "complete")],
    # consensus step 0.1: CHOCO with TernGrad is stable there (at 0.3 it slowly diverges and the
    # executors' float64 round-off differences grow with it)
    "choco_sgd": [({"gamma": 0.05, "consensus_step": 0.1, "compressor": "terngrad"}, "ring")],
    # lazy communication (issue 9): global means only, so the complete graph; FedAvg samples 2
    "local_sgd": [({"gamma": 0.1, "tau": 3, "eta_g": 0.8, "participation": 2}, "complete")],
    "scaffold": [({"gamma": 0.1, "tau": 3}, "complete")],
    "event_triggered": [({"gamma": 0.2, "threshold": 0.02, "decay": 0.9}, "complete")],
    # asynchronous family: every gradient tau steps old (averaged with comm.mean)
    "delayed_sgd": [({"gamma": 0.1, "tau": 2}, "complete")],

    # tracking family: both gradient-tracking forms, exact diffusion and D^2 (the exponential
    # graph's eigenvalues have real parts >= 0 > -1/3), push-sum (a doubly stochastic ring is
    # column-stochastic too: the push operation on both executors)
    "gradient_tracking": [({"gamma": 0.1, "form": "atc"}, "ring"),
                          ({"gamma": 0.1, "form": "cta"}, "one_peer_exponential")],
    "exact_diffusion": [({"gamma": 0.1, "form": "ed"}, "ring"),
                        ({"gamma": 0.1, "form": "d2"}, "exponential")],
    "push_sum": [({"gamma": 0.1}, "ring")],

    # Byzantine family: no Byzantine node here (the claim also runs at world size 2, where
    # f = 1 breaks 2f < n); tests/test_robust_psgd.py compares the executors with attacks
    "robust_psgd": [({"gamma": 0.1, "beta": 0.5, "aggregator": "nnm+cw-median"}, "complete")],
}  # fmt: skip


def examples(compressed: bool) -> list[tuple[str, dict[str, Any], str]]:
    """``(algorithm, hyperparameters, topology)`` of :data:`EXAMPLES`, with or without a
    compressor, in a stable order."""
    return [
        (name, dict(kw), topo)
        for name in sorted(EXAMPLES)
        for kw, topo in EXAMPLES[name]
        if ("compressor" in kw) == compressed
    ]


# ---- stationary phase ----------------------------------------------------------------------------
def noise_window(burn_in: int, window: int, stride: int) -> list[int]:
    """Checkpoints ``burn_in, burn_in + stride, ..., burn_in + window`` of a stationary-phase
    time average."""
    return list(range(burn_in, burn_in + window + 1, stride))


def window_average(curve) -> np.ndarray:
    """Time average over the checkpoints (axis 0) of a ``(checkpoints, R)`` measurement: one
    value per replica, the samples of the stationary-phase check."""
    return np.asarray(curve, dtype=float).mean(axis=0)
