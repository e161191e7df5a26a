"""Byte conventions and input checks of the lazy-communication operations (issue 9).

Shared by both executors (:mod:`verify.runtime.simulated`, :mod:`verify.runtime.distributed`)
so that they count the same bytes: :meth:`verify.comm.Communicator.subset_mean` (partial
participation: only participants send) and :meth:`verify.comm.Communicator.triggered_gather`
(event-triggered: one flag byte per replica, then only the triggered rows).
"""

from __future__ import annotations

import numpy as np
import torch

from theorylab.errors import TheorylabError

__all__ = ["check_mask", "check_counts", "subset_mean_bytes", "triggered_gather_bytes"]


def check_mask(mask, shape, what: str, name: str = "participate") -> torch.Tensor:
    """``mask`` as a CPU ``bool`` tensor of ``shape`` (local nodes, replicas), else raise."""
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
        raise TypeError(
            f"{what}: {name} must be a bool torch.Tensor of shape {tuple(shape)}, got "
            f"{getattr(mask, 'dtype', type(mask).__name__)}"
        )
    if tuple(mask.shape) != tuple(shape):
        raise TheorylabError(
            f"{what}: {name} must have shape (local nodes, replicas) = {tuple(shape)}, got "
            f"{tuple(mask.shape)}"
        )
    return mask.cpu()


def check_counts(counts: torch.Tensor, what: str) -> None:
    """Raise unless every replica has at least one participant (``counts``: ``S_r``, (R,))."""
    if bool((counts < 1).any()):
        empty = torch.nonzero(counts < 1).flatten().tolist()
        raise TheorylabError(
            f"{what}: replicas {empty[:8]} have no participant; every replica needs S >= 1"
        )


def subset_mean_bytes(participate: torch.Tensor, counts, row_bytes: int) -> np.ndarray:
    """Bytes each local node sends in :meth:`verify.comm.Communicator.subset_mean`.

    ``participate``: ``bool (m, R)``; ``counts``: the participants per replica ``S_r`` (R,);
    ``row_bytes``: bytes of one node's row of one replica. Node ``i`` sends
    ``sum_S floor(2 (S - 1) b_i^S / S)`` with ``b_i^S = row_bytes * #{r : p_ir, S_r = S}``: a
    ring all-reduce among the participants (``verify.runtime.simulated.allreduce_bytes`` with
    ``n = S``); with all nodes participating it is ``allreduce_bytes`` of the node's whole
    tensor (tested).

    Example
    -------
    >>> p = torch.tensor([[True, False], [True, True], [False, True]])
    >>> subset_mean_bytes(p, torch.tensor([2, 2]), 8).tolist()  # S = 2: floor(2 * 1 * b / 2)
    [8, 16, 8]
    """
    part = np.asarray(participate.cpu().numpy(), dtype=bool)
    S = np.rint(np.asarray(torch.as_tensor(counts).cpu().numpy(), dtype=float)).astype(np.int64)
    out = np.zeros(part.shape[0], dtype=np.int64)
    for s in np.unique(S):
        rows = part[:, S == s].sum(axis=1)
        out += np.array([(2 * (int(s) - 1) * int(r) * row_bytes) // int(s) for r in rows], np.int64)
    return out


def triggered_gather_bytes(n: int, send: torch.Tensor, row_bytes: int) -> np.ndarray:
    """Bytes each local node sends in ``triggered_gather``: ``(n - 1) (R + t_i row_bytes)``.

    ``R`` one-byte flags all-gathered, then ``t_i = #{r : send_ir}`` packed rows to each of the
    ``n - 1`` others.

    Example
    -------
    >>> triggered_gather_bytes(3, torch.tensor([[True, False], [False, False]]), 8).tolist()
    [20, 4]
    """
    t = np.asarray(send.cpu().numpy(), dtype=bool).sum(axis=1).astype(np.int64)
    return (n - 1) * (send.shape[1] + t * int(row_bytes))
