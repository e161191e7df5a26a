"""What an algorithm is: a pair of pure functions on an explicit, named state (optax style).

``init(x0, ctx) -> state`` and ``step(state, ctx, k) -> state``; hyperparameters live on the
algorithm object, all memory in the state (a NamedTuple whose fields are the paper's symbols:
``x``, ``y``, ``e``, ``h``, ...). Communication goes only through ``ctx.comm`` (a
:class:`verify.comm.Communicator`), so the same code runs on both executors. Every tensor in the
state has a leading local-node dimension, then the replica dimension: ``(m, R, d)``.

Registering: each algorithm module adds itself to :data:`ALGORITHMS` (name -> class) so the
conformance suite runs every algorithm on every executor.
"""

from __future__ import annotations

import abc
import inspect
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch

from theorylab.stochastic import STOCHASTICITY
from verify.comm import Communicator, GradientOracle

__all__ = ["Context", "Algorithm", "ALGORITHMS", "register"]


@dataclass
class Context:
    """Everything a node's update may use besides its state.

    comm: the communicator (the only way to talk to other nodes).
    oracle: stochastic gradients of the local objectives.
    noise_generators: one per local node, used only by ``oracle.grad``.
    algorithm_generators: one per local node, for the algorithm's own randomness (compression,
        random participation, attacks).
    """

    comm: Communicator
    oracle: GradientOracle
    noise_generators: Sequence[torch.Generator]
    algorithm_generators: Sequence[torch.Generator]
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def nodes(self) -> torch.Tensor:
        return self.comm.nodes

    def grad(self, x: torch.Tensor) -> torch.Tensor:
        """Stochastic gradient of each local node's ``f_i`` at its own row of ``x``."""
        return self.oracle.grad(x, self.comm.nodes, self.noise_generators)


class Algorithm(abc.ABC):
    """Base class: subclasses set ``name`` and implement ``init`` / ``step``.

    ``iterate(state)`` returns the tensor that is measured (default ``state.x``).

    ``stochasticity`` declares what the algorithm needs of its mixing matrices W: ``"doubly"``
    (the default: rows and columns sum to 1, so gossip preserves the average), ``"row"`` (rows
    sum to 1 only) or ``"column"`` (columns sum to 1, push-sum); see
    :mod:`theorylab.stochastic`. Executors given ``stochasticity=algorithm.stochasticity``
    reject any other W with a clear error.
    """

    name: str = ""
    stochasticity: str = "doubly"

    @abc.abstractmethod
    def init(self, x0: torch.Tensor, ctx: Context) -> NamedTuple:
        """Initial state from ``x0`` of shape ``(m, R, d)``."""

    @abc.abstractmethod
    def step(self, state: NamedTuple, ctx: Context, k: int) -> NamedTuple:
        """One round ``k = 0, 1, ...`` of the update rule."""

    def iterate(self, state: NamedTuple) -> torch.Tensor:
        return state.x

    @classmethod
    def example(cls, **settings: Any) -> Algorithm:
        """An instance for tests, tasks and registry-driven tables.

        The default passes each of ``settings`` (e.g. ``gamma``, ``form``, ``compressor``) that
        the constructor accepts and ignores the rest; an algorithm whose constructor needs more
        (a required argument with no default) raises unless ``settings`` provides it, or
        overrides this classmethod with sensible values.

        Example
        -------
        >>> from verify.algorithms import ALGORITHMS
        >>> ALGORITHMS["dsgd"].example(gamma=0.05, form="cta", unused=1).config()["form"]
        'cta'
        """
        params = inspect.signature(cls.__init__).parameters
        accepted = {k: v for k, v in settings.items() if k in params and k != "self"}
        missing = [
            p.name
            for p in params.values()
            if p.name != "self"
            and p.default is inspect.Parameter.empty
            and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
            and p.name not in accepted
        ]
        if missing:
            raise TypeError(
                f"{cls.__qualname__}.example needs {missing} (no default); pass them, e.g. "
                f"{cls.__qualname__}.example({missing[0]}=...)"
            )
        return cls(**accepted)

    def config(self) -> dict[str, Any]:
        """JSON-serialisable hyperparameters (saved with every result)."""
        return {k: v for k, v in vars(self).items() if isinstance(v, (int, float, str, bool))}


ALGORITHMS: dict[str, type[Algorithm]] = {}


def register(cls: type[Algorithm]) -> type[Algorithm]:
    """Class decorator adding ``cls`` to :data:`ALGORITHMS` under ``cls.name``."""
    if not cls.name:
        raise ValueError(f"{cls.__qualname__} must set a non-empty `name` to be registered")
    if cls.stochasticity not in STOCHASTICITY:
        raise ValueError(
            f"{cls.__qualname__}.stochasticity must be one of {STOCHASTICITY}, got "
            f"{cls.stochasticity!r}"
        )
    if cls.name in ALGORITHMS and ALGORITHMS[cls.name] is not cls:
        raise ValueError(f"an algorithm named {cls.name!r} is already registered")
    ALGORITHMS[cls.name] = cls
    return cls
