"""The distributed executor: one node per rank of an initialised ``torch.distributed`` group.

Rank ``i`` is node ``i`` and holds tensors of shape ``(1, R, d)``. ``mix`` exchanges only with the
round's neighbours (one ``batch_isend_irecv`` per round: receive from every ``j != i`` with
``W^(k)_ij != 0``, send to every ``j != i`` with ``W^(k)_ji != 0``), then combines
``x_i <- sum_j W^(k)_ij x_j`` locally; ``mean`` is an all-reduce (SUM, then divide by ``n``);
``gather`` an all-gather; the compressed variants put the compressor's ``uint8`` encoding on the
wire and decode on receipt. Every wait has a timeout, so nothing hangs forever.

``bytes_sent`` counts the bytes this rank sends, under the conventions of
:mod:`verify.runtime.simulated` (P2P: exact payload bytes; ``mean``: the ring all-reduce's
``floor(2 (n - 1) s / n)``; all-gathers: ``(n - 1) s``), so the simulator's count equals the sum
over ranks. ``comm_s`` accumulates the seconds spent in the counted operations (posting and
waiting); the local combination is compute.

Backends: gloo on CPU tensors (default), NCCL or gloo on CUDA tensors (rank ``r`` uses
``cuda:(r % device_count)``, see :func:`rank_device`). Gloo's point-to-point operations only move
host memory, so with gloo and CUDA tensors ``mix`` stages its messages through the CPU; its
collectives take CUDA tensors directly.
"""

from __future__ import annotations

import datetime
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
import torch.distributed as dist

from theorylab.errors import TheorylabError, check_positive
from verify.comm import Communicator, PeerError, WireCompressor
from verify.runtime.lazycomm import (
    check_counts,
    check_mask,
    subset_mean_bytes,
    triggered_gather_bytes,
)
from verify.runtime.simulated import (
    allgather_bytes,
    allreduce_bytes,
    schedule_matrices,
    wire_nbytes,
)

__all__ = ["DistributedCommunicator", "rank_device"]


def rank_device(device, rank: int) -> torch.device:
    """The device rank ``rank`` uses: ``cpu``, or ``cuda:(rank % device_count)`` for ``"cuda"``.

    An explicit index (``"cuda:1"``) is kept as given.

    Raises
    ------
    TheorylabError
        If a CUDA device is asked for and CUDA is not available.
    """
    device = torch.device(device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise TheorylabError(
                f"device {str(device)!r} was requested but CUDA is not available; use device='cpu'"
            )
        if device.index is None:
            device = torch.device("cuda", rank % torch.cuda.device_count())
    return device


@dataclass(frozen=True)
class _Plan:
    """Node ``i``'s view of one mixing matrix."""

    self_weight: float
    in_nodes: tuple[int, ...]  # j != i with W_ij != 0, ascending
    in_weights: tuple[float, ...]
    out_nodes: tuple[int, ...]  # j != i with W_ji != 0, ascending


def _plan(W, i: int) -> _Plan:
    if sp.issparse(W):
        csr = sp.csr_array(W)
        lo, hi = csr.indptr[i], csr.indptr[i + 1]
        row = dict(zip(csr.indices[lo:hi].tolist(), csr.data[lo:hi].tolist()))
        csc = sp.csc_array(W)
        lo, hi = csc.indptr[i], csc.indptr[i + 1]
        col = [int(j) for j, v in zip(csc.indices[lo:hi], csc.data[lo:hi]) if v != 0]
    else:
        W = np.asarray(W)
        row = {int(j): float(W[i, j]) for j in np.flatnonzero(W[i])}
        col = [int(j) for j in np.flatnonzero(W[:, i])]
    in_nodes = tuple(sorted(j for j, v in row.items() if j != i and v != 0))
    return _Plan(
        self_weight=float(row.get(i, 0.0)),
        in_nodes=in_nodes,
        in_weights=tuple(float(row[j]) for j in in_nodes),
        out_nodes=tuple(sorted(j for j in col if j != i)),
    )


class DistributedCommunicator(Communicator):
    """Communication of node ``rank`` with the others over ``torch.distributed``.

    The process group must already be initialised (by :func:`verify.runtime.launch.launch`, a
    :class:`verify.runtime.launch.WorkerPool`, or :func:`verify.runtime.launch.init_from_env`
    under ``torchrun``) with world size ``n``; rank ``i`` is node ``i``.

    Parameters
    ----------
    schedule : sequence of matrices, a matrix, or an object with ``.matrices``
        Mixing matrices ``W^(0), ..., W^(P-1)``, ``n x n``, row ``i`` = node ``i``'s receive
        weights; round ``k`` uses ``W^(k % P)``. Every rank must pass the same schedule.
    device : str or torch.device, default ``"cpu"``
        ``"cpu"``, ``"cuda"`` (rank ``r`` uses ``cuda:(r % device_count)``) or ``"cuda:j"``.
    dtype : torch.dtype, default ``torch.float64``
        Floating dtype of the tensors mixed.
    timeout_s : float, default 60
        Limit in seconds on every wait; a wait past it raises ``RuntimeError``.
    stochasticity : 'row' (default), 'column' or 'doubly'
        What every ``W^(k)`` must be (pass the algorithm's ``stochasticity``); validated by
        :func:`theorylab.stochastic.check_schedule`, so a W whose rows do not sum to 1 is an
        error here as in the simulator.

    Attributes
    ----------
    rank : int
        This process's rank (= its node id).
    bytes_sent : int
        Bytes this rank has sent for the algorithm (see the module docstring).
    comm_s : float
        Seconds spent in counted communication.

    Raises
    ------
    TheorylabError
        If no process group is initialised, the schedule is invalid (see
        :func:`verify.runtime.simulated.schedule_matrices`), the world size differs from the
        schedule's ``n``, or NCCL is asked to move CPU tensors.

    Examples
    --------
    Inside a rank (``fn(rank, world_size)`` run by ``launch`` or a ``WorkerPool``)::

        comm = DistributedCommunicator([W])       # W is world_size x world_size
        y = comm.mix(x, k=0)                      # x has shape (1, R, d)
    """

    def __init__(
        self,
        schedule,
        *,
        device="cpu",
        dtype: torch.dtype = torch.float64,
        timeout_s: float = 60.0,
        stochasticity: str = "row",
    ):
        if not dist.is_available() or not dist.is_initialized():
            raise TheorylabError(
                "DistributedCommunicator needs an initialised torch.distributed process group; "
                "start the ranks with verify.runtime.launch.launch / WorkerPool, or call "
                "verify.runtime.launch.init_from_env() under torchrun"
            )
        if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
            raise TypeError(f"dtype must be a floating torch.dtype, got {dtype!r}")
        self.schedule = schedule_matrices(schedule, stochasticity)
        self.n = self.schedule[0].shape[0]
        world_size = dist.get_world_size()
        if world_size != self.n:
            raise TheorylabError(
                f"the schedule has n = {self.n} nodes but the process group has world size "
                f"{world_size}; one rank runs one node, so start {self.n} ranks or pass a "
                f"{world_size}-node schedule"
            )
        self.rank = dist.get_rank()
        self.device = rank_device(device, int(os.environ.get("LOCAL_RANK", self.rank)))
        if dist.get_backend() == "nccl" and self.device.type != "cuda":
            raise TheorylabError(
                f"the NCCL backend moves CUDA tensors only, got device {str(self.device)!r}; "
                "use device='cuda' or the gloo backend"
            )
        self._stage_p2p = dist.get_backend() == "gloo" and self.device.type == "cuda"
        self.dtype = dtype
        self.timeout_s = check_positive("timeout_s", timeout_s)
        self._timeout = datetime.timedelta(seconds=self.timeout_s)
        self.nodes = torch.tensor([self.rank], device=self.device)
        self._plans = [_plan(W, self.rank) for W in self.schedule]
        self._recv_cache: dict[tuple, list[torch.Tensor]] = {}
        self.bytes_sent = 0
        self.comm_s = 0.0

    # -- helpers --------------------------------------------------------------------------
    def _check(self, x: torch.Tensor, what: str) -> None:
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{what}: x must be a torch.Tensor, got {type(x).__name__}")
        if x.dim() < 1 or x.shape[0] != 1:
            raise TheorylabError(
                f"{what}: on a rank x holds one node, shape (1, ...), got {tuple(x.shape)}"
            )
        if x.dtype != self.dtype:
            raise TypeError(
                f"{what}: x has dtype {x.dtype} but the communicator was built for {self.dtype}; "
                "cast x or build the communicator with dtype=x.dtype"
            )
        if x.device != self.device:
            raise TheorylabError(
                f"{what}: x is on {x.device} but rank {self.rank} communicates on {self.device}; "
                "move x with x.to(comm.device)"
            )

    def _wait(self, works, what: str, k: int | None = None) -> None:
        for work in works:
            try:
                work.wait(self._timeout)
            except RuntimeError as exc:
                where = f" of round {k}" if k is not None else ""
                raise RuntimeError(
                    f"rank {self.rank}: {what}{where} failed or timed out "
                    f"(timeout_s={self.timeout_s}): {exc}"
                ) from exc
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def _post(self, ops: list) -> list:
        """Post point-to-point operations, return their works (wait on all of them).

        NCCL needs its sends and receives grouped (``batch_isend_irecv``) or two ranks sending
        to each other can deadlock; gloo's are independent non-blocking operations, and posting
        them one by one (``isend``/``irecv``) avoids the batch's coalescing overhead (a ring
        round of small messages: ~1 ms instead of ~9 ms on a 2-core machine; see
        ``benchmarks/runtime.py``)."""
        if dist.get_backend() == "nccl":
            return dist.batch_isend_irecv(ops)
        return [op.op(op.tensor, op.peer) for op in ops]

    def _recv_buffers(self, send: torch.Tensor, plan: _Plan) -> list[torch.Tensor]:
        """Receive buffers for ``plan``'s in-neighbours, reused across rounds.

        Safe to reuse: a round's received tensors are only read (combined or decoded into new
        tensors) before ``mix`` returns, never handed to the caller. Keyed by the plan and the
        message's shape, dtype and device, so a schedule of ``P`` matrices keeps ``P`` sets.
        """
        key = (id(plan), tuple(send.shape), send.dtype, send.device)
        recv = self._recv_cache.get(key)
        if recv is None:
            recv = [torch.empty_like(send) for _ in plan.in_nodes]
            self._recv_cache[key] = recv
        return recv

    def _exchange(self, send: torch.Tensor, plan: _Plan, what: str, k: int) -> list[torch.Tensor]:
        """Send ``send`` to the out-neighbours, return the in-neighbours' tensors (in order).

        The returned tensors are this communicator's reusable receive buffers: read them before
        the next exchange.
        """
        if self._stage_p2p:  # gloo's send/recv read raw host pointers: stage through the CPU
            send = send.cpu()
        recv = self._recv_buffers(send, plan)
        ops = [dist.P2POp(dist.irecv, buf, j) for j, buf in zip(plan.in_nodes, recv)]
        ops += [dist.P2POp(dist.isend, send, j) for j in plan.out_nodes]
        if ops:
            self._wait(self._post(ops), what, k)
        if self._stage_p2p:
            recv = [buf.to(self.device) for buf in recv]
        return recv

    @staticmethod
    def _combine(plan: _Plan, own: torch.Tensor, others: Sequence[torch.Tensor]) -> torch.Tensor:
        y = own * plan.self_weight
        for w, z in zip(plan.in_weights, others):
            y.add_(z, alpha=w)
        return y

    def _encode(self, x: torch.Tensor, compressor: WireCompressor, generators):
        if len(generators) != 1:
            raise TheorylabError(f"need one generator for this rank's node, got {len(generators)}")
        shape = tuple(x.shape[1:])
        size = wire_nbytes(compressor, shape, x.dtype)
        buf = compressor.encode(x[0], generators[0])
        if buf.dtype != torch.uint8 or buf.numel() != size:
            raise TheorylabError(
                f"{type(compressor).__name__}.encode returned {buf.numel()} elements of "
                f"{buf.dtype}, but nbytes({shape}) = {size} uint8 bytes were promised"
            )
        return buf.contiguous(), shape, size

    # -- counted traffic ------------------------------------------------------------------
    def mix(self, x: torch.Tensor, k: int) -> torch.Tensor:
        self._check(x, "mix")
        plan = self._plans[k % len(self._plans)]
        own = x[0].contiguous()
        t = time.perf_counter()
        others = self._exchange(own, plan, "mix", k)
        self.comm_s += time.perf_counter() - t
        self.bytes_sent += len(plan.out_nodes) * own.numel() * own.element_size()
        return self._combine(plan, own, others).unsqueeze(0)

    def mean(self, x: torch.Tensor, *, inplace: bool = False) -> torch.Tensor:
        self._check(x, "mean")
        # inplace: the caller donated x (see Communicator.mean), all-reduce straight into it;
        # a non-contiguous x cannot be all-reduced in place, so it is copied either way
        y = x if inplace and x.is_contiguous() else x.clone(memory_format=torch.contiguous_format)
        t = time.perf_counter()
        self._wait([dist.all_reduce(y, op=dist.ReduceOp.SUM, async_op=True)], "mean")
        self.comm_s += time.perf_counter() - t
        self.bytes_sent += allreduce_bytes(self.n, y.numel() * y.element_size())
        return y.div_(self.n)

    def gather(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x, "gather")
        own = x[0].contiguous()
        out = [torch.empty_like(own) for _ in range(self.n)]
        t = time.perf_counter()
        self._wait([dist.all_gather(out, own, async_op=True)], "gather")
        self.comm_s += time.perf_counter() - t
        self.bytes_sent += allgather_bytes(self.n, own.numel() * own.element_size())
        return torch.stack(out)

    def compressed_mean(
        self, x: torch.Tensor, compressor: WireCompressor, generators: Sequence[torch.Generator]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        self._check(x, "compressed_mean")
        buf, shape, size = self._encode(x, compressor, generators)
        bufs = [torch.empty_like(buf) for _ in range(self.n)]
        t = time.perf_counter()
        self._wait([dist.all_gather(bufs, buf, async_op=True)], "compressed_mean")
        self.comm_s += time.perf_counter() - t
        self.bytes_sent += allgather_bytes(self.n, size)
        q = torch.stack([compressor.decode(b, shape, self.dtype, self.device) for b in bufs])
        # same arithmetic as the simulator: stack the n decoded tensors, sum, divide
        return q[self.rank].unsqueeze(0), (q.sum(dim=0) / self.n).unsqueeze(0)

    def compressed_mix(
        self,
        x: torch.Tensor,
        k: int,
        compressor: WireCompressor,
        generators: Sequence[torch.Generator],
    ) -> tuple[torch.Tensor, torch.Tensor]:
        self._check(x, "compressed_mix")
        plan = self._plans[k % len(self._plans)]
        buf, shape, size = self._encode(x, compressor, generators)
        t = time.perf_counter()
        recv = self._exchange(buf, plan, "compressed_mix", k)
        self.comm_s += time.perf_counter() - t
        self.bytes_sent += len(plan.out_nodes) * size
        q = compressor.decode(buf, shape, self.dtype, self.device)
        others = [compressor.decode(b, shape, self.dtype, self.device) for b in recv]
        return q.unsqueeze(0), self._combine(plan, q, others).unsqueeze(0)

    # -- measurement traffic --------------------------------------------------------------
    def allsum(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] != 1:
            raise TheorylabError(
                f"allsum: on a rank x holds one node, shape (1, ...), got {tuple(x.shape)}"
            )
        y = x[0].clone()
        self._wait([dist.all_reduce(y, op=dist.ReduceOp.SUM, async_op=True)], "allsum")
        return y

    # -- lazy communication (issue 9): subset mean, event-triggered gather ----------------
    def subset_mean(self, x: torch.Tensor, participate: torch.Tensor) -> torch.Tensor:
        """Mean over each replica's participants (see :meth:`Communicator.subset_mean`).

        What gloo moves vs what is counted, honestly: every rank all-reduces (SUM) its masked
        rows ``[p_ir] x_ir`` together with one count ``[p_ir]`` per replica, i.e. the full
        ``R (D + 1)`` values whether it participates or not, so that the ``R`` replicas (each
        with its own subset) share one collective and the result reaches every rank. Counted in
        ``bytes_sent`` is what the participants alone would send in a ring all-reduce among
        themselves (:func:`verify.runtime.simulated.subset_mean_bytes`), the same as the
        simulator; the real wire traffic is that of :meth:`mean` plus the counts.
        """
        self._check(x, "subset_mean")
        mask = check_mask(participate, (1, x.shape[1]), "subset_mean")
        flat = x.reshape(1, x.shape[1], -1)
        m = mask.to(device=self.device)
        buf = torch.cat(
            [
                torch.where(m[:, :, None], flat, torch.zeros((), dtype=x.dtype, device=x.device)),
                m[:, :, None].to(x.dtype),
            ],
            dim=-1,
        )[0].contiguous()
        t = time.perf_counter()
        self._wait([dist.all_reduce(buf, op=dist.ReduceOp.SUM, async_op=True)], "subset_mean")
        self.comm_s += time.perf_counter() - t
        counts = buf[:, -1]
        check_counts(counts, "subset_mean")
        row = flat[0, 0].numel() * x.element_size()
        self.bytes_sent += int(subset_mean_bytes(mask, counts, row).sum())
        return (buf[:, :-1] / counts[:, None]).reshape(x.shape)

    def triggered_gather(
        self, x: torch.Tensor, send: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Event-triggered all-gather (see :meth:`Communicator.triggered_gather`).

        Two steps, both really on the wire: an all-gather of the ``R`` one-byte flags
        (``uint8``), then point-to-point sends of this rank's triggered rows, packed into one
        ``(t_i, ...)`` tensor, to every other rank (``batch_isend_irecv``; a rank with
        ``t_i = 0`` sends nothing, and its peers, knowing ``t_i`` from the flags, post no
        receive). What is counted is exactly what is sent
        (:func:`verify.runtime.simulated.triggered_gather_bytes`).
        """
        self._check(x, "triggered_gather")
        mask = check_mask(send, (1, x.shape[1]), "triggered_gather", "send")
        R, rest = x.shape[1], tuple(x.shape[2:])
        flags_own = mask[0].to(torch.uint8).to(self.device)
        flags = [torch.empty_like(flags_own) for _ in range(self.n)]
        t = time.perf_counter()
        self._wait([dist.all_gather(flags, flags_own, async_op=True)], "triggered_gather flags")
        flags = torch.stack(flags).cpu().bool()  # (n, R)
        packed = x[0][mask[0].to(self.device)].contiguous()
        if self._stage_p2p:
            packed = packed.cpu()
        recv: dict[int, torch.Tensor] = {}
        ops = []
        for j in range(self.n):
            if j == self.rank:
                continue
            t_j = int(flags[j].sum())
            if t_j:
                recv[j] = torch.empty((t_j, *rest), dtype=x.dtype, device=packed.device)
                ops.append(dist.P2POp(dist.irecv, recv[j], j))
            if packed.shape[0]:
                ops.append(dist.P2POp(dist.isend, packed, j))
        if ops:
            self._wait(self._post(ops), "triggered_gather")
        self.comm_s += time.perf_counter() - t
        values = torch.zeros((self.n, R, *rest), dtype=x.dtype, device=self.device)
        values[self.rank][mask[0].to(self.device)] = x[0][mask[0].to(self.device)]
        for j, buf in recv.items():
            values[j][flags[j].to(self.device)] = buf.to(self.device)
        row = x[0, 0].numel() * x.element_size()
        self.bytes_sent += int(triggered_gather_bytes(self.n, mask, row).sum())
        return flags.to(self.device), values

    # == point-to-point operations (asynchronous family) =====================================
    # One request per message (isend / irecv), waited on with a timeout. gloo does not buffer
    # sends (a send completes when the receiver has posted the matching receive) and closes the
    # connections after a wait times out (see verify.comm.PeerError). With gloo and CUDA tensors the
    # messages are staged through the CPU, as in ``mix``.
    def _p2p_check(self, node, peer, what: str, name: str) -> int:
        if node is not None and node != self.rank:
            raise TheorylabError(
                f"{what}: rank {self.rank} holds node {self.rank}, got node={node}"
            )
        if isinstance(peer, bool) or not isinstance(peer, (int, np.integer)):
            raise TypeError(f"{what}: {name} must be an int rank, got {peer!r}")
        if not 0 <= int(peer) < self.n or int(peer) == self.rank:
            raise TheorylabError(
                f"{what}: {name} must be another rank in [0, {self.n}), got {peer} on rank "
                f"{self.rank}"
            )
        return int(peer)

    def _p2p_wait(self, post, what: str, peer, timeout_s):
        """Post the request (``post()``) and wait for it; a failure of either is a PeerError."""
        limit = self.timeout_s if timeout_s is None else check_positive("timeout_s", timeout_s)
        try:
            work = post()
            work.wait(datetime.timedelta(seconds=limit))
        except RuntimeError as exc:
            who = "any rank" if peer is None else f"rank {peer}"
            raise PeerError(
                f"rank {self.rank}: {what} with {who} failed or timed out (timeout_s={limit}): "
                f"{exc}",
                peer=peer,
                op=what,
                timeout_s=limit,
            ) from exc
        return work

    def _p2p_buffer(self, shape, dtype) -> torch.Tensor:
        dtype = self.dtype if dtype is None else dtype
        device = "cpu" if self._stage_p2p else self.device
        return torch.empty(tuple(shape), dtype=dtype, device=device)

    def send(self, x: torch.Tensor, dst: int, *, node=None, timeout_s=None) -> None:
        dst = self._p2p_check(node, dst, "send", "dst")
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"send: x must be a torch.Tensor, got {type(x).__name__}")
        if x.dtype != self.dtype:
            raise TypeError(
                f"send: x has dtype {x.dtype} but the communicator was built for {self.dtype}"
            )
        payload = x.detach().contiguous()
        if self._stage_p2p:
            payload = payload.cpu()
        t = time.perf_counter()
        self._p2p_wait(lambda: dist.isend(payload, dst), "send", dst, timeout_s)
        self.comm_s += time.perf_counter() - t
        self.bytes_sent += payload.numel() * payload.element_size()

    def recv(self, src: int, shape, dtype=None, *, node=None, timeout_s=None) -> torch.Tensor:
        src = self._p2p_check(node, src, "recv", "src")
        buf = self._p2p_buffer(shape, dtype)
        t = time.perf_counter()
        self._p2p_wait(lambda: dist.irecv(buf, src), "recv", src, timeout_s)
        self.comm_s += time.perf_counter() - t
        return buf.to(self.device) if self._stage_p2p else buf

    def recv_any(self, shape, dtype=None, *, node=None, timeout_s=None):
        if node is not None and node != self.rank:
            raise TheorylabError(f"recv_any: rank {self.rank} holds node {self.rank}, got {node}")
        if dist.get_backend() == "nccl":
            raise NotImplementedError(
                "recv_any: NCCL has no receive from any source; use recv(src) in a fixed order "
                "(the virtual clock) or a gloo group"
            )
        buf = self._p2p_buffer(shape, dtype)
        t = time.perf_counter()
        # no src: receive from any source (gloo recvAnysource)
        work = self._p2p_wait(lambda: dist.irecv(buf), "recv_any", None, timeout_s)
        self.comm_s += time.perf_counter() - t
        src = int(work._source_rank())
        return src, (buf.to(self.device) if self._stage_p2p else buf)

    # == push along out-edges (push-sum; tracking family) =========================================
    # Added at the end of the class to keep merges with other operations simple.
    def _push_plan(self, k: int) -> _PushPlan:
        """This rank's column of ``P^(k)`` (its out-weights) and its in-neighbours, cached."""
        plans = self.__dict__.setdefault("_push_plans", {})
        t = k % len(self.schedule)
        if t not in plans:
            plans[t] = _push_plan(self.schedule[t], self.rank)
        return plans[t]

    def push(self, x: torch.Tensor, k: int) -> torch.Tensor:
        """Send ``P^(k)_ij x_j`` to every out-neighbour ``i``, sum what arrives (see
        :meth:`verify.comm.Communicator.push`).

        One ``batch_isend_irecv`` per round: a receive from every in-neighbour ``j != rank``
        (``P_rank,j != 0``) and a send of the weighted tensor to every out-neighbour; each wait
        has the communicator's timeout. Bytes counted for this rank (the sender):
        ``outdeg * s``. The result is ``P_rank,rank x_rank`` plus the received tensors, added in
        ascending sender order.
        """
        self._check(x, "push")
        plan = self._push_plan(k)
        own = x[0].contiguous()
        t = time.perf_counter()
        sends = [own * w for w in plan.out_weights]
        if self._stage_p2p:  # gloo's send/recv read raw host pointers: stage through the CPU
            sends = [s.cpu() for s in sends]
        proto = sends[0] if sends else (own.cpu() if self._stage_p2p else own)
        recv = [torch.empty_like(proto) for _ in plan.in_nodes]
        ops = [dist.P2POp(dist.irecv, buf, j) for j, buf in zip(plan.in_nodes, recv)]
        ops += [dist.P2POp(dist.isend, s, i) for i, s in zip(plan.out_nodes, sends)]
        if ops:
            self._wait(self._post(ops), "push", k)
        if self._stage_p2p:
            recv = [buf.to(self.device) for buf in recv]
        self.comm_s += time.perf_counter() - t
        self.bytes_sent += len(plan.out_nodes) * own.numel() * own.element_size()
        y = own * plan.self_weight
        for z in recv:
            y.add_(z)
        return y.unsqueeze(0)

    # ---- robust aggregation (Byzantine family) --------------------------------------------
    def gather_from(self, x: torch.Tensor, sources: Sequence[int]) -> torch.Tensor:
        """One broadcast from each source node (in order); every wait bounded by ``timeout_s``.

        Bytes: ``(n - 1) s`` counted on each source rank (as the simulator counts them)."""
        from verify.runtime.simulated import check_sources

        self._check(x, "gather_from")
        idx = check_sources(sources, self.n)
        own = x[0].contiguous()
        bufs = [own.clone() if s == self.rank else torch.empty_like(own) for s in idx]
        t = time.perf_counter()
        works = [dist.broadcast(b, src=s, async_op=True) for b, s in zip(bufs, idx)]
        self._wait(works, "gather_from")
        self.comm_s += time.perf_counter() - t
        if self.rank in idx:
            self.bytes_sent += allgather_bytes(self.n, own.numel() * own.element_size())
        if not bufs:
            return own.new_empty((0, *own.shape))
        return torch.stack(bufs)


@dataclass(frozen=True)
class _PushPlan:
    """Node ``i``'s view of one push matrix ``P`` (``P_ji`` = share ``i`` sends to ``j``)."""

    self_weight: float  # P_ii
    out_nodes: tuple[int, ...]  # j != i with P_ji != 0, ascending
    out_weights: tuple[float, ...]  # P_ji
    in_nodes: tuple[int, ...]  # j != i with P_ij != 0, ascending


def _push_plan(P, i: int) -> _PushPlan:
    Pd = P.toarray() if sp.issparse(P) else np.asarray(P)
    col, row = Pd[:, i], Pd[i, :]
    out_nodes = tuple(int(j) for j in np.flatnonzero(col) if j != i)
    return _PushPlan(
        self_weight=float(col[i]),
        out_nodes=out_nodes,
        out_weights=tuple(float(col[j]) for j in out_nodes),
        in_nodes=tuple(int(j) for j in np.flatnonzero(row) if j != i),
    )
