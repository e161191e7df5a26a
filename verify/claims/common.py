"""Helpers shared by the claim modules: seeds, levels, checkpoints and the quadratic test problem.

Every claim's family-wise false-failure probability (when the theory is right) is at most
:data:`ALPHA`; a claim with ``c`` statistical checks runs each at level ``1 - ALPHA / c``
(:func:`split_level`, the Bonferroni split).
"""

from __future__ import annotations

from typing import Any

import numpy as np

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
