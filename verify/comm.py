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

    # -- lazy communication (issue 9: FedAvg partial participation, event-triggered) -------
    # Not abstract, so that a communicator written before these operations still loads; both
    # executors implement them.
    def subset_mean(self, x: torch.Tensor, participate: torch.Tensor) -> torch.Tensor:
        """Mean over the participating nodes, replica by replica (partial participation).

        ``x`` has shape ``(m, R, ...)`` and ``participate`` is a ``bool`` tensor of shape
        ``(m, R)`` (node ``nodes[l]`` takes part in replica ``r`` iff ``participate[l, r]``).
        Every local row, participant or not, becomes
        ``(1/S_r) sum_{j : p_jr} x_jr`` with ``S_r = #{j : p_jr}`` the replica's number of
        participants, which must be at least 1 in every replica (else ``TheorylabError``, raised
        on every node). ``x`` is not modified.

        Bytes counted (``bytes_sent``): only participants send, as in a bandwidth-optimal ring
        all-reduce among the ``S_r`` participants: node ``i`` counts
        ``floor(2 (S - 1) b_i^S / S)`` summed over the distinct participant counts ``S`` of the
        replicas, where ``b_i^S`` is the bytes of its rows in the replicas with ``S_r = S``
        where it takes part. Non-participants count 0, and delivering the result to them (the
        server's next broadcast) is not counted. With every node participating in every replica
        this is exactly :meth:`mean`'s count.
        """
        raise NotImplementedError(f"{type(self).__name__} does not implement subset_mean")

    def triggered_gather(
        self, x: torch.Tensor, send: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Event-triggered all-gather: only the rows a node decides to send go on the wire.

        ``x`` has shape ``(m, R, ...)``, ``send`` is a ``bool`` tensor ``(m, R)``. Returns
        ``(flags, values)``: ``flags`` is ``bool`` of shape ``(n, R)`` (every node's ``send``,
        in node order) and ``values`` of shape ``(n, R, ...)`` holds ``x_j[r]`` where
        ``flags[j, r]`` and zeros elsewhere, on every node.

        Bytes counted: each node all-gathers its ``R`` one-byte flags (``(n - 1) R`` bytes),
        then sends its triggered rows, packed (``t_i`` rows of ``b`` bytes, ``t_i`` = its number
        of ``True`` flags), to each of the ``n - 1`` others: ``(n - 1) (R + t_i b)`` bytes. A
        node that triggers nowhere sends only its flags.
        """
        raise NotImplementedError(f"{type(self).__name__} does not implement triggered_gather")

    # == point-to-point operations (asynchronous family: the parameter server) ================
    # Implemented by both executors (at the end of their classes). A communicator that does not
    # implement them raises NotImplementedError naming the operation. Errors: PeerError (below).
    def send(
        self, x: torch.Tensor, dst: int, *, node: int | None = None, timeout_s: float | None = None
    ) -> None:
        """Send the tensor ``x`` (any shape, this communicator's dtype) from local node ``node``
        to node ``dst``; returns once the message is delivered (distributed: matched by the
        receiver's ``recv``, since gloo does not buffer sends; simulator: queued in ``dst``'s
        mailbox).

        ``node`` is the sending node: optional on a rank (its one node), required in the
        simulator (which holds them all). Bytes counted: ``x.numel() * x.element_size()`` to
        ``bytes_sent`` (exact payload). ``timeout_s`` (default: the communicator's) bounds the
        wait; past it :class:`PeerError` (``op='send'``, ``peer=dst``).
        """
        raise NotImplementedError(f"{type(self).__name__} does not implement send")

    def recv(
        self,
        src: int,
        shape,
        dtype: torch.dtype | None = None,
        *,
        node: int | None = None,
        timeout_s: float | None = None,
    ) -> torch.Tensor:
        """Receive at local node ``node`` the next message from node ``src``: a new tensor of
        ``shape`` and ``dtype`` (default the communicator's), as sent by :meth:`send`.

        Messages between one pair arrive in the order sent. Nothing is counted (the sender
        counts). ``timeout_s`` bounds the wait; past it, or if ``src`` is gone,
        :class:`PeerError` (``op='recv'``, ``peer=src``). The simulator never waits: with no
        message pending it raises :class:`PeerError` at once (in one process nothing else could
        ever send it).
        """
        raise NotImplementedError(f"{type(self).__name__} does not implement recv")

    def recv_any(
        self,
        shape,
        dtype: torch.dtype | None = None,
        *,
        node: int | None = None,
        timeout_s: float | None = None,
    ) -> tuple[int, torch.Tensor]:
        """Receive at local node ``node`` the next message from any node; ``(src, x)``.

        Distributed: gloo's receive from any source (``irecv`` without ``src``; the sender is
        read from the completed request), whichever message the transport completes first, so
        the order is not reproducible (use :meth:`recv` with a virtual clock's next sender for
        that). NCCL has none (``NotImplementedError``). Simulator: the oldest pending message
        addressed to ``node`` (global send order). Timeout and errors as :meth:`recv`
        (``op='recv_any'``, ``peer=None``).
        """
        raise NotImplementedError(f"{type(self).__name__} does not implement recv_any")

    # == push along out-edges (push-sum / stochastic gradient push; tracking family) ==========
    # Added at the end of the class to keep merges with other operations simple.
    def push(self, x: torch.Tensor, k: int) -> torch.Tensor:
        """Push along out-edges with the *sender's* weights (column-stochastic ``P^(k)``).

        For push-sum on directed graphs (Kempe et al. 2003; Nedic and Olshevsky 2016), round
        ``k`` uses ``P^(k) = schedule[k % P]`` with ``P_ij`` = the share node ``j`` sends to node
        ``i`` (column ``j`` = node ``j``'s send weights; column-stochastic, ``1^T P = 1^T``, for
        push-sum, though the operation itself works for any matrix). Node ``j`` keeps
        ``P_jj x_j`` and sends ``P_ij x_j`` to each out-neighbour ``i != j`` with ``P_ij != 0``;
        node ``i`` sums what it kept and what it received, so row ``i`` becomes
        ``sum_j P^(k)_ij x_j`` (the simulator's ``P @ X``). A node needs only its own column
        (its out-weights); it never reads its in-neighbours' weights.

        Shapes: ``x`` is ``(m, R, d)`` (``(1, R, d)`` on a rank), returned with the same shape;
        ``x`` is not modified. Bytes (counted for the sender): node ``j`` sends
        ``outdeg_j * s``, ``outdeg_j = #{i != j : P^(k)_ij != 0}`` and ``s`` the bytes of its local
        tensor (``x[0]``), the same count as :meth:`mix` with the same matrix.
        """
        raise NotImplementedError(f"{type(self).__name__} does not implement push")

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


class PeerError(RuntimeError):
    """A point-to-point wait failed: the peer did not answer within the timeout, or is gone.

    Attributes
    ----------
    peer : int or None
        The node waited on (``None`` for a receive from any source).
    op : str
        ``"send"``, ``"recv"`` or ``"recv_any"``.
    timeout_s : float
        The limit the wait ran under.

    Notes
    -----
    On gloo a wait that times out closes the connection(s) it waited on ("Application timeout
    caused pair closure", measured with torch 2.13): after a ``PeerError`` from ``recv(src)`` or
    ``send(dst)`` this node can no longer talk to that peer, and after one from ``recv_any`` to
    no peer at all. Recover by ending the run (the asynchronous server does), never by retrying
    the same pair.
    """

    def __init__(self, message: str, *, peer: int | None, op: str, timeout_s: float):
        super().__init__(message)
        self.peer = peer
        self.op = op
        self.timeout_s = timeout_s


__all__ += ["PeerError"]
