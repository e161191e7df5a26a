"""The communication interface every algorithm is written against, and what it promises.

An algorithm is the update rule of one node, applied to a tensor whose leading dimension indexes
the *local* nodes: the simulator holds all ``n`` nodes (shape ``(n, R, d)``), a distributed rank
holds one (shape ``(1, R, d)``). ``R`` is the number of independent replicas (seeded runs) every
node carries, so one run yields ``R`` trajectories. Node ``i``'s replicas never interact with
another replica.

Conventions (shared/DESIGN.md): round ``k`` uses the mixing matrix ``W^(k) = schedule[k % P]``;
row ``i`` holds node ``i``'s receive weights, ``x_i <- sum_j W^(k)_ij x_j``.

Both executors implement :class:`Communicator`; the same algorithm code, seeds and inputs give the
same trajectory on both (to float tolerance), which is tested.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
import torch

__all__ = ["Communicator", "WireCompressor", "GradientOracle"]


@runtime_checkable
class WireCompressor(Protocol):
    """What the communicator needs from a compressor to put it on the wire.

    ``encode(x, generator)`` compresses the tensor ``x`` (any shape; each row of a leading replica
    dimension independently) and packs it into a 1-D ``uint8`` tensor of exactly
    ``nbytes(x.shape, x.dtype)`` bytes (the dtype matters for casts and for an uncompressed
    fallback); ``decode(buf, shape, dtype, device)`` returns the compressed value ``C(x)``.
    ``compress(x, generator) == decode(encode(x, generator), ...)``.
    """

    def nbytes(self, shape: Sequence[int], dtype: torch.dtype = torch.float32) -> int: ...

    def encode(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor: ...

    def decode(
        self, buf: torch.Tensor, shape: Sequence[int], dtype: torch.dtype, device
    ) -> torch.Tensor: ...


@runtime_checkable
class GradientOracle(Protocol):
    """Stochastic gradients of the local objectives ``f_i``.

    ``grad(x, nodes, generators)``: ``x`` has shape ``(m, R, d)`` for the ``m`` local node ids in
    ``nodes``; node ``nodes[l]`` draws its noise from ``generators[l]`` only. Returns a tensor of
    ``x``'s shape. ``x_star`` is the minimiser of ``f = (1/n) sum_i f_i`` (shape ``(d,)``), or
    ``None`` when unknown.
    """

    n: int
    d: int
    x_star: torch.Tensor | None

    def grad(
        self, x: torch.Tensor, nodes: torch.Tensor, generators: Sequence[torch.Generator]
    ) -> torch.Tensor: ...


class Communicator(abc.ABC):
    """Communication among ``n`` nodes, of which ``nodes`` are held locally.

    Attributes
    ----------
    n : int
        Number of nodes in total.
    nodes : torch.Tensor
        Long tensor of the local node ids (``arange(n)`` in the simulator, ``[rank]`` on a rank).
    schedule : list of numpy.ndarray
        The mixing matrices ``W^(0), ..., W^(P-1)``; round ``k`` uses ``schedule[k % P]``.
    bytes_sent : int
        Bytes this process has put on the wire for the algorithm (metrics traffic excluded).
        In the simulator, the bytes all nodes would send.
    """

    n: int
    nodes: torch.Tensor
    schedule: list[np.ndarray]
    bytes_sent: int

    # -- algorithm traffic (counted) -------------------------------------------------------
    @abc.abstractmethod
    def mean(self, x: torch.Tensor, *, inplace: bool = False) -> torch.Tensor:
        """Global average: every local row becomes ``(1/n) sum_j x_j`` (all-reduce).

        With ``inplace=False`` (default) ``x`` is left untouched and a new tensor is returned.
        With ``inplace=True`` the caller donates ``x``: the communicator may overwrite it and
        return ``x`` itself (both executors do for a contiguous ``x``), so the caller must not
        read ``x`` afterwards except through the returned tensor, and must not pass a tensor
        aliased elsewhere (a view of, or a tensor kept by, someone else). The values and
        ``bytes_sent`` are the same either way; ``inplace=True`` saves one allocation and copy
        of ``x`` per call.
        """

    @abc.abstractmethod
    def mix(self, x: torch.Tensor, k: int) -> torch.Tensor:
        """Neighbour mixing of round ``k``: row ``i`` becomes ``sum_j W^(k)_ij x_j``.

        Only the round's neighbours exchange (each node sends its rows to every out-neighbour).
        """

    @abc.abstractmethod
    def gather(self, x: torch.Tensor) -> torch.Tensor:
        """All nodes' rows stacked in node order, shape ``(n, *x.shape[1:])``, on every node."""

    @abc.abstractmethod
    def compressed_mean(
        self, x: torch.Tensor, compressor: WireCompressor, generators: Sequence[torch.Generator]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Each node sends ``C(x_i)`` (encoded bytes) to all nodes.

        Returns ``(C(x_local), mean_j C(x_j))``.
        """

    @abc.abstractmethod
    def compressed_mix(
        self,
        x: torch.Tensor,
        k: int,
        compressor: WireCompressor,
        generators: Sequence[torch.Generator],
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Each node sends ``q_i = C(x_i)`` (encoded bytes) to its round-``k`` neighbours;
        returns ``(q_local, sum_j W^(k)_ij q_j)``."""

    # -- measurement traffic (not counted in bytes_sent) ----------------------------------
    @abc.abstractmethod
    def allsum(self, x: torch.Tensor) -> torch.Tensor:
        """Sum over all ``n`` nodes of the leading dimension: shape ``x.shape[1:]``."""

    def W(self, k: int) -> np.ndarray:
        """The mixing matrix of round ``k``."""
        return self.schedule[k % len(self.schedule)]

    # ---- robust aggregation (Byzantine family): broadcast from a subset of nodes ----------
    # The all-gather itself is :meth:`gather` (every node receives the stack of all n rows);
    # robust PSGD adds this second exchange so that omniscient Byzantine nodes can send after
    # reading the honest rows (a "rushing" adversary).
    def gather_from(self, x: torch.Tensor, sources: Sequence[int]) -> torch.Tensor:
        """The rows of the nodes in ``sources`` stacked in that order, on every node.

        ``x`` has the local shape ``(m, *rest)``; only the source nodes' rows are read (another
        node's rows may hold anything). Returns ``(len(sources), *rest)`` on every node.
        ``sources`` lists distinct node ids in ``[0, n)``; an empty list returns an empty stack
        and sends nothing. Bytes: each source sends its row to the ``n - 1`` others,
        ``(n - 1) s`` per source (``s`` = bytes of one row), counted at the source.
        """
        raise NotImplementedError(f"{type(self).__name__} does not implement gather_from")
