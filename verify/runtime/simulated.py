"""The simulated executor: all ``n`` nodes stacked in one process, mixing is ``W^(k) @ X``.

Every tensor carries the node dimension first, ``x.shape == (n, R, d)``; round ``k`` mixes with
``W^(k) = schedule[k % P]`` (row ``i`` holds node ``i``'s receive weights, so
``x_i <- sum_j W^(k)_ij x_j``). Small or dense matrices are applied as dense torch matrices; large
sparse ones (a ring, a torus, the one-peer exponential graph at ``n`` in the thousands) as sparse
CSR products (scipy on CPU, ``torch.sparse_csr`` on CUDA), so a round costs ``O(nnz(W) R d)``.

Bytes (``bytes_sent``) are those all ``n`` nodes would put on the wire, under the conventions
shared with :class:`verify.runtime.distributed.DistributedCommunicator` (per node, ``s`` = bytes of
its local tensor, ``s_c`` = bytes of its encoded compressed tensor):

* ``mix``: ``outdeg_i * s`` where ``outdeg_i = #{j != i : W^(k)_ji != 0}``;
* ``mean``: ``floor(2 (n - 1) s / n)``, the bandwidth-optimal (ring) all-reduce;
* ``gather``: ``(n - 1) s`` (ring all-gather);
* ``compressed_mean``: ``(n - 1) s_c`` (all-gather of the encoded bytes);
* ``compressed_mix``: ``outdeg_i * s_c``;
* ``send`` (point-to-point): the message's payload bytes, to the sender.

``allsum`` is measurement traffic and is not counted.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
import torch

from theorylab.errors import TheorylabError
from theorylab.stochastic import check_schedule
from verify.comm import Communicator, PeerError, WireCompressor
from verify.runtime.lazycomm import (
    check_counts,
    check_mask,
    subset_mean_bytes,
    triggered_gather_bytes,
)

__all__ = [
    "SimulatedCommunicator",
    "schedule_matrices",
    "allreduce_bytes",
    "allgather_bytes",
    "out_degrees",
    "wire_nbytes",
]

#: Matrices with at most this many nodes, or denser than ``_DENSE_FILL``, are applied densely.
_DENSE_MAX_N = 128
_DENSE_FILL = 0.25


def schedule_matrices(schedule, stochasticity: str = "row") -> list:
    """The list of mixing matrices ``W^(0), ..., W^(P-1)`` of ``schedule``, validated.

    Validation and normalisation are :func:`theorylab.stochastic.check_schedule` (the same rules
    and messages as the theory side); this only drops explicit zeros from sparse matrices, so
    that the support (who sends to whom, and the bytes counted) is the true one.

    Parameters
    ----------
    schedule : sequence of array_like or scipy.sparse matrices, a single matrix, or an object
        with a ``.matrices`` attribute (e.g. ``theorylab.stochastic.Schedule``).
    stochasticity : 'row' (default), 'column' or 'doubly'
        What the algorithm run on it needs (``Algorithm.stochasticity``); 'row' (every node's
        receive weights sum to 1) is the least any gossip step needs.

    Returns
    -------
    list
        Dense ``numpy.ndarray`` (float64) or ``scipy.sparse.csr_array`` matrices, all ``n x n``,
        with explicit zeros removed from sparse ones.

    Raises
    ------
    TheorylabError
        If the schedule is empty, a matrix is not square, sizes differ, an entry is not finite,
        or a matrix is not ``stochasticity``-stochastic (e.g. rows not summing to 1).
    TypeError
        A matrix is complex or not numeric.
    """
    out = []
    for W in check_schedule(schedule, stochasticity=stochasticity):
        if sp.issparse(W):
            W = W.copy()
            W.eliminate_zeros()
        out.append(W)
    return out


def out_degrees(W) -> np.ndarray:
    """``outdeg_j = #{i != j : W_ij != 0}``: how many nodes node ``j`` sends to under ``W``."""
    if sp.issparse(W):
        coo = sp.coo_array(W)
        off = coo.row != coo.col
        return np.bincount(coo.col[off], minlength=W.shape[0]).astype(np.int64)
    nz = np.asarray(W) != 0
    np.fill_diagonal(nz, False)
    return nz.sum(axis=0).astype(np.int64)


def wire_nbytes(compressor: WireCompressor, shape: Sequence[int], dtype: torch.dtype) -> int:
    """Bytes of ``compressor.encode(x)`` for ``x`` of ``shape`` and ``dtype``.

    Calls ``compressor.nbytes(shape, dtype)`` when the compressor takes a dtype (as
    :class:`theorylab.compressors.Compressor` does), else ``compressor.nbytes(shape)``.
    """
    try:
        return int(compressor.nbytes(tuple(shape), dtype))
    except TypeError:
        return int(compressor.nbytes(tuple(shape)))


def allreduce_bytes(n: int, nbytes: int) -> int:
    """Bytes one node sends in an all-reduce of ``nbytes``: ``floor(2 (n - 1) nbytes / n)``.

    This is the bandwidth-optimal ring all-reduce (reduce-scatter then all-gather); both
    executors count a ``mean`` this way, whatever algorithm the backend picks.
    """
    return (2 * (n - 1) * int(nbytes)) // n


def allgather_bytes(n: int, nbytes: int) -> int:
    """Bytes one node sends in an all-gather of ``nbytes`` per node: ``(n - 1) nbytes``."""
    return (n - 1) * int(nbytes)


class _MixOperator:
    """``X -> W @ X`` for ``X`` of shape ``(n, ...)`` with ``W`` dense or sparse."""

    def __init__(self, W, device: torch.device, dtype: torch.dtype):
        n = W.shape[0]
        nnz = W.nnz if sp.issparse(W) else int(np.count_nonzero(W))
        self.dense = n <= _DENSE_MAX_N or nnz > _DENSE_FILL * n * n
        self.device = device
        if self.dense:
            Wd = W.toarray() if sp.issparse(W) else W
            self.matrix = torch.as_tensor(Wd, dtype=dtype, device=device)
        elif device.type == "cpu":
            # scipy's CSR kernel beats torch's CSR matmul on CPU (measured 3x at n=1024).
            np_dtype = torch.empty((), dtype=dtype).numpy().dtype
            self.matrix = sp.csr_array(W, dtype=np_dtype)
        else:
            csr = sp.csr_array(W)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # "sparse CSR support is in beta"
                self.matrix = torch.sparse_csr_tensor(
                    torch.as_tensor(csr.indptr, dtype=torch.int64),
                    torch.as_tensor(csr.indices, dtype=torch.int64),
                    torch.as_tensor(csr.data, dtype=dtype),
                    size=csr.shape,
                    device=device,
                )
        self.out_degrees = out_degrees(W)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(x.shape[0], -1)
        if self.dense:
            return (self.matrix @ flat).reshape(x.shape)
        if isinstance(self.matrix, torch.Tensor):
            return (self.matrix @ flat).reshape(x.shape)
        return torch.from_numpy(self.matrix @ flat.contiguous().numpy()).reshape(x.shape)


class SimulatedCommunicator(Communicator):
    """All ``n`` nodes of a schedule held in one process (stacked along dimension 0).

    ``mix(x, k)`` is ``W^(k) @ x`` over the node dimension, ``mean`` the node average, ``gather``
    the identity, and the compressed variants encode and decode every node's tensor with the
    node's own generator (as the distributed executor does), so both executors give the same
    trajectory for the same seeds.

    Parameters
    ----------
    schedule : sequence of matrices, a matrix, or an object with ``.matrices``
        Mixing matrices ``W^(0), ..., W^(P-1)`` (``n x n``, row ``i`` = node ``i``'s receive
        weights); round ``k`` uses ``W^(k % P)``. Dense numpy arrays or scipy sparse matrices.
    device : str or torch.device, default ``"cpu"``
        Where the stacked tensors live.
    dtype : torch.dtype, default ``torch.float64``
        Floating dtype of the tensors this communicator mixes.
    stochasticity : 'row' (default), 'column' or 'doubly'
        What every ``W^(k)`` must be (pass the algorithm's ``stochasticity``); a W whose rows do
        not sum to 1 is always an error.

    Attributes
    ----------
    bytes_sent : int
        Bytes all nodes together would have sent (conventions in the module docstring).
    comm_s : float
        Seconds spent inside the counted operations (the mixing products).

    Raises
    ------
    TheorylabError
        If the schedule is invalid (see :func:`schedule_matrices`).

    Examples
    --------
    >>> import numpy as np, torch
    >>> W = np.array([[0.5, 0.5], [0.5, 0.5]])
    >>> comm = SimulatedCommunicator([W])
    >>> comm.mix(torch.tensor([[[0.0]], [[2.0]]], dtype=torch.float64), 0).flatten().tolist()
    [1.0, 1.0]
    >>> comm.bytes_sent  # each node sent one float64 to one neighbour
    16
    """

    def __init__(
        self,
        schedule,
        *,
        device="cpu",
        dtype: torch.dtype = torch.float64,
        stochasticity: str = "row",
    ):
        if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
            raise TypeError(f"dtype must be a floating torch.dtype, got {dtype!r}")
        self.schedule = schedule_matrices(schedule, stochasticity)
        self.n = self.schedule[0].shape[0]
        self.device = torch.device(device)
        self.dtype = dtype
        self.nodes = torch.arange(self.n, device=self.device)
        self._ops = [_MixOperator(W, self.device, dtype) for W in self.schedule]
        self.bytes_sent = 0
        self.comm_s = 0.0

    # -- helpers --------------------------------------------------------------------------
    def _check(self, x: torch.Tensor, what: str) -> None:
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{what}: x must be a torch.Tensor, got {type(x).__name__}")
        if x.dim() < 1 or x.shape[0] != self.n:
            raise TheorylabError(
                f"{what}: x must have the node dimension first with n = {self.n} rows, "
                f"got shape {tuple(x.shape)}"
            )
        if x.dtype != self.dtype:
            raise TypeError(
                f"{what}: x has dtype {x.dtype} but the communicator was built for {self.dtype}; "
                "cast x or build the communicator with dtype=x.dtype"
            )

    def _node_bytes(self, x: torch.Tensor) -> int:
        return x[0].numel() * x.element_size()

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def _encode_all(self, x, compressor: WireCompressor, generators):
        if len(generators) != self.n:
            raise TheorylabError(f"need one generator per node ({self.n}), got {len(generators)}")
        shape = tuple(x.shape[1:])
        size = wire_nbytes(compressor, shape, x.dtype)
        q = torch.empty_like(x)
        for i in range(self.n):
            buf = compressor.encode(x[i], generators[i])
            if buf.dtype != torch.uint8 or buf.numel() != size:
                raise TheorylabError(
                    f"{type(compressor).__name__}.encode returned {buf.numel()} elements of "
                    f"{buf.dtype}, but nbytes({shape}) = {size} uint8 bytes were promised"
                )
            q[i] = compressor.decode(buf, shape, x.dtype, x.device)
        return q, size

    # -- counted traffic ------------------------------------------------------------------
    def mix(self, x: torch.Tensor, k: int) -> torch.Tensor:
        self._check(x, "mix")
        t = time.perf_counter()
        op = self._ops[k % len(self._ops)]
        y = op(x)
        self._sync()
        self.comm_s += time.perf_counter() - t
        self.bytes_sent += int(op.out_degrees.sum()) * self._node_bytes(x)
        return y

    def mean(self, x: torch.Tensor, *, inplace: bool = False) -> torch.Tensor:
        self._check(x, "mean")
        t = time.perf_counter()
        avg = (x.sum(dim=0) / self.n).expand_as(x)
        # inplace: the caller donated x (see Communicator.mean); the same values are written into
        # it (a non-contiguous x may overlap itself, so it gets a fresh tensor as without inplace)
        y = x.copy_(avg) if inplace and x.is_contiguous() else avg.clone()
        self._sync()
        self.comm_s += time.perf_counter() - t
        self.bytes_sent += self.n * allreduce_bytes(self.n, self._node_bytes(x))
        return y

    def gather(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x, "gather")
        self.bytes_sent += self.n * allgather_bytes(self.n, self._node_bytes(x))
        return x.clone()

    def compressed_mean(
        self, x: torch.Tensor, compressor: WireCompressor, generators: Sequence[torch.Generator]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        self._check(x, "compressed_mean")
        q, size = self._encode_all(x, compressor, generators)
        t = time.perf_counter()
        avg = (q.sum(dim=0) / self.n).expand_as(q).clone()
        self._sync()
        self.comm_s += time.perf_counter() - t
        self.bytes_sent += self.n * allgather_bytes(self.n, size)
        return q, avg

    def compressed_mix(
        self,
        x: torch.Tensor,
        k: int,
        compressor: WireCompressor,
        generators: Sequence[torch.Generator],
    ) -> tuple[torch.Tensor, torch.Tensor]:
        self._check(x, "compressed_mix")
        q, size = self._encode_all(x, compressor, generators)
        t = time.perf_counter()
        op = self._ops[k % len(self._ops)]
        y = op(q)
        self._sync()
        self.comm_s += time.perf_counter() - t
        self.bytes_sent += int(op.out_degrees.sum()) * size
        return q, y

    # -- measurement traffic --------------------------------------------------------------
    def allsum(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] != self.n:
            raise TheorylabError(
                f"allsum: x must have n = {self.n} rows, got shape {tuple(x.shape)}"
            )
        return x.sum(dim=0)

    # -- lazy communication (issue 9): subset mean, event-triggered gather ----------------
    def subset_mean(self, x: torch.Tensor, participate: torch.Tensor) -> torch.Tensor:
        """Mean over each replica's participants (see :meth:`Communicator.subset_mean`).

        Computed as ``sum_j [p_jr] x_jr / S_r`` (a masked sum over the node dimension divided by
        the count), the arithmetic the distributed executor's all-reduce performs.
        """
        self._check(x, "subset_mean")
        mask = check_mask(participate, (self.n, x.shape[1]), "subset_mean")
        t = time.perf_counter()
        flat = x.reshape(self.n, x.shape[1], -1)
        m = mask.to(device=x.device)
        total = torch.where(m[:, :, None], flat, torch.zeros((), dtype=x.dtype, device=x.device))
        counts = m.sum(dim=0).to(x.dtype)  # (R,)
        check_counts(counts, "subset_mean")
        avg = (total.sum(dim=0) / counts[:, None]).reshape(x.shape[1:])
        y = avg.expand_as(x).clone()
        self._sync()
        self.comm_s += time.perf_counter() - t
        row = flat[0, 0].numel() * x.element_size()
        self.bytes_sent += int(subset_mean_bytes(mask, counts, row).sum())
        return y

    def triggered_gather(
        self, x: torch.Tensor, send: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Event-triggered all-gather (see :meth:`Communicator.triggered_gather`)."""
        self._check(x, "triggered_gather")
        mask = check_mask(send, (self.n, x.shape[1]), "triggered_gather", "send")
        m = mask.to(device=x.device)
        shape = (self.n, x.shape[1]) + (1,) * (x.dim() - 2)
        values = torch.where(m.reshape(shape), x, torch.zeros((), dtype=x.dtype, device=x.device))
        row = x[0, 0].numel() * x.element_size()
        self.bytes_sent += int(triggered_gather_bytes(self.n, mask, row).sum())
        return mask.clone(), values

    # == point-to-point operations (asynchronous family) =====================================
    # Mailboxes: one FIFO per (src, dst) pair plus a global send counter, so ``recv(src)`` takes
    # the oldest message of that pair and ``recv_any`` the oldest addressed to the node. Nothing
    # ever blocks: a receive with nothing pending raises PeerError at once.
    def _p2p_node(self, node, what: str) -> int:
        if node is None:
            raise TheorylabError(
                f"{what}: the simulator holds all {self.n} nodes; pass node=<the local node id>"
            )
        return self._p2p_peer(node, what, "node")

    def _p2p_peer(self, peer, what: str, name: str) -> int:
        if isinstance(peer, bool) or not isinstance(peer, (int, np.integer)):
            raise TypeError(f"{what}: {name} must be an int node id, got {peer!r}")
        if not 0 <= int(peer) < self.n:
            raise TheorylabError(f"{what}: {name} must be in [0, {self.n}), got {peer}")
        return int(peer)

    def _mailboxes(self) -> dict:
        boxes = getattr(self, "_p2p_mail", None)
        if boxes is None:
            boxes = self._p2p_mail = {}
            self._p2p_seq = 0
        return boxes

    def send(self, x: torch.Tensor, dst: int, *, node=None, timeout_s=None) -> None:
        src = self._p2p_node(node, "send")
        dst = self._p2p_peer(dst, "send", "dst")
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"send: x must be a torch.Tensor, got {type(x).__name__}")
        if dst == src:
            raise TheorylabError(f"send: node {src} cannot send to itself")
        if x.dtype != self.dtype:
            raise TypeError(
                f"send: x has dtype {x.dtype} but the communicator was built for {self.dtype}"
            )
        boxes = self._mailboxes()
        boxes.setdefault((src, dst), []).append((self._p2p_seq, x.detach().clone()))
        self._p2p_seq += 1
        self.bytes_sent += x.numel() * x.element_size()

    def _p2p_take(self, key, shape, dtype, what):
        msg = self._mailboxes()[key].pop(0)[1]
        dtype = self.dtype if dtype is None else dtype
        if tuple(msg.shape) != tuple(shape) or msg.dtype != dtype:
            raise TheorylabError(
                f"{what}: node {key[1]} expected a message of shape {tuple(shape)} and dtype "
                f"{dtype} from node {key[0]}, got shape {tuple(msg.shape)} and dtype {msg.dtype}"
            )
        return msg

    def recv(self, src: int, shape, dtype=None, *, node=None, timeout_s=None) -> torch.Tensor:
        me = self._p2p_node(node, "recv")
        src = self._p2p_peer(src, "recv", "src")
        if not self._mailboxes().get((src, me)):
            raise PeerError(
                f"recv: node {me} waits for a message from node {src} but none is pending; in "
                "the simulator (one process) it would wait forever",
                peer=src,
                op="recv",
                timeout_s=0.0,
            )
        return self._p2p_take((src, me), shape, dtype, "recv")

    def recv_any(self, shape, dtype=None, *, node=None, timeout_s=None):
        me = self._p2p_node(node, "recv_any")
        pending = [
            (box[0][0], key) for key, box in self._mailboxes().items() if key[1] == me and box
        ]
        if not pending:
            raise PeerError(
                f"recv_any: node {me} waits for a message but none is pending; in the "
                "simulator (one process) it would wait forever",
                peer=None,
                op="recv_any",
                timeout_s=0.0,
            )
        key = min(pending)[1]
        return key[0], self._p2p_take(key, shape, dtype, "recv_any")

    # == push along out-edges (push-sum; tracking family) =========================================
    # Added at the end of the class to keep merges with other operations simple.
    def push(self, x: torch.Tensor, k: int) -> torch.Tensor:
        """``P^(k) @ x`` over the node dimension (see :meth:`verify.comm.Communicator.push`).

        Bytes: ``sum_j outdeg_j * s`` (each node ``j`` sends its weighted rows to its
        out-neighbours), as for :meth:`mix`.
        """
        self._check(x, "push")
        t = time.perf_counter()
        op = self._ops[k % len(self._ops)]
        y = op(x)
        self._sync()
        self.comm_s += time.perf_counter() - t
        self.bytes_sent += int(op.out_degrees.sum()) * self._node_bytes(x)
        return y

    # ---- robust aggregation (Byzantine family) --------------------------------------------
    def gather_from(self, x: torch.Tensor, sources: Sequence[int]) -> torch.Tensor:
        """The source nodes' rows, ``(len(sources), ...)``; bytes ``(n - 1) s`` per source."""
        self._check(x, "gather_from")
        idx = check_sources(sources, self.n)
        self.bytes_sent += len(idx) * allgather_bytes(self.n, self._node_bytes(x))
        return x[torch.as_tensor(idx, dtype=torch.long, device=x.device)].clone()


def check_sources(sources, n: int) -> list[int]:
    """``sources`` as a list of distinct node ids in ``[0, n)`` (for ``gather_from``).

    Raises
    ------
    TheorylabError
        A repeated id or one outside ``[0, n)``, named.
    """
    try:
        idx = [int(s) for s in sources]
    except (TypeError, ValueError) as exc:
        raise TypeError(f"sources must be a sequence of node ids, got {sources!r}") from exc
    for s in idx:
        if not 0 <= s < n:
            raise TheorylabError(f"gather_from: source node {s} is outside [0, {n})")
    if len(set(idx)) != len(idx):
        raise TheorylabError(f"gather_from: sources must be distinct, got {idx}")
    return idx
