"""``theorylab verify`` under ``torchrun``: rank 0 drives the claims, the other ranks serve.

Design (the simplest one that cannot desynchronise): rank 0 runs ``theorylab verify`` exactly
as on one machine — it selects, resumes, runs the claims' simulated parts, saves the results
and draws the figures — but its worker pool is a :class:`TorchrunPool`: the distributed part of
a claim (``ClaimContext.run_on_ranks(fn, ...)``, the same call the spawned
:class:`~verify.runtime.launch.WorkerPool` serves) is broadcast to every rank of the job, each
rank runs ``fn(rank, world_size, ...)`` on the process group that ``torchrun`` set up (NCCL
between GPUs or gloo), and rank 0 gathers the results by rank. Every other rank runs
:func:`serve`: it waits for the next task, runs it, sends its result back, until rank 0 says
stop. The tasks, their arguments and the seeds are the ones the spawned pool receives, so the
same seeds give the same results.

Two process groups: the job's default group (from ``env://``; the algorithms communicate on
it, with the communication timeout ``timeout_s``, 60 s by default) and a gloo *control* group
that carries the tasks and the results (timeout ``control_timeout_s``: how long a serving rank
waits for rank 0's next task while rank 0 computes the claims' simulated parts, and how long
rank 0 waits for a result). Every wait is bounded by one of the two.

A task that raises on some rank comes back as that rank's error; rank 0 raises
:class:`~verify.runtime.launch.DistributedError` naming it (the claim becomes an ``'error'``),
and the serving ranks go on serving.

Usage, one machine (4 ranks)::

    torchrun --standalone --nproc-per-node 4 -m verify --claims dsgd_bound

Two machines of 8 GPUs (run on each; ``HOST0`` reachable from both)::

    torchrun --nnodes 2 --nproc-per-node 8 --rdzv-backend c10d \\
        --rdzv-endpoint HOST0:29500 --rdzv-id verify1 \\
        -m verify --backend nccl --device cuda --full
"""

from __future__ import annotations

import datetime
import os
import pickle
import traceback

import torch.distributed as dist

from verify.runtime.launch import DistributedError, init_from_env

__all__ = ["TorchrunPool", "serve", "under_torchrun", "start"]

_STOP = "stop"
_RUN = "run"


def under_torchrun() -> bool:
    """Whether this process was started by ``torchrun`` (its elastic agent sets
    ``TORCHELASTIC_RUN_ID``; ``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``)."""
    return "TORCHELASTIC_RUN_ID" in os.environ and "RANK" in os.environ


class TorchrunPool:
    """The job's ranks as a worker pool for rank 0 (the :class:`WorkerPool` interface).

    Parameters
    ----------
    control : torch.distributed.ProcessGroup
        The gloo group carrying tasks and results (from :func:`start`).
    rank, world_size : int
        This process's rank (must be 0 to drive) and the job's size.

    ``run(fn, *args, run_timeout_s=None, **kwargs)`` runs ``fn(rank, world_size, *args,
    **kwargs)`` on every rank and returns the results by rank; ``run_timeout_s`` is accepted for
    the interface, but a rank computing cannot be terminated here: the waits are bounded by the
    control group's timeout and the algorithms' by the default group's.
    """

    def __init__(self, control, rank: int, world_size: int):
        if rank != 0:
            raise DistributedError(f"only rank 0 drives the claims; this is rank {rank}")
        self.control = control
        self.rank, self.world_size = rank, world_size
        self.alive = True

    def ensure_started(self) -> float:
        """Nothing to start (``torchrun`` started the ranks): 0 seconds."""
        if not self.alive:
            raise DistributedError("the torchrun pool was closed")
        return 0.0

    def run(self, fn, *args, run_timeout_s: float | None = None, **kwargs) -> list:
        self.ensure_started()
        task = [(_RUN, pickle.dumps((fn, args, kwargs)))]
        dist.broadcast_object_list(task, src=0, group=self.control)
        mine = _call(fn, self.rank, self.world_size, args, kwargs)
        replies: list = [None] * self.world_size
        dist.gather_object(mine, replies, dst=0, group=self.control)
        errors = [r for r in replies if r[0] != "ok"]
        if errors:
            name = getattr(fn, "__name__", str(fn))
            text = "; ".join(f"rank {r[1]}: {r[2]}" for r in errors)
            raise DistributedError(
                f"{name} failed on {len(errors)} of {self.world_size} torchrun rank(s): {text}\n"
                + "\n".join(r[3] for r in errors)
            )
        return [r[2] for r in replies]

    def close(self) -> None:
        """Tell the serving ranks to stop (once)."""
        if self.alive:
            self.alive = False
            dist.broadcast_object_list([(_STOP, None)], src=0, group=self.control)


def _call(fn, rank: int, world_size: int, args, kwargs) -> tuple:
    try:
        return ("ok", rank, fn(rank, world_size, *args, **kwargs))
    except BaseException as exc:  # noqa: BLE001 - reported to rank 0
        return ("error", rank, f"{type(exc).__name__}: {exc}", traceback.format_exc())


def serve(control, rank: int, world_size: int) -> int:
    """Serve rank 0's tasks on this rank until it says stop; returns the number served."""
    served = 0
    while True:
        msg = [None]
        dist.broadcast_object_list(msg, src=0, group=control)
        kind, body = msg[0]
        if kind == _STOP:
            return served
        fn, args, kwargs = pickle.loads(body)
        reply = _call(fn, rank, world_size, args, kwargs)
        dist.gather_object(reply, None, dst=0, group=control)
        served += 1


def start(
    backend: str = "gloo",
    device: str = "cpu",
    *,
    timeout_s: float = 60.0,
    control_timeout_s: float = 3600.0,
):
    """Initialise this ``torchrun`` rank: the default group (``env://``) and the control group.

    Returns ``(rank, world_size, control)``.
    """
    rank, world_size = init_from_env(backend, device, timeout_s)
    control = dist.new_group(
        backend="gloo", timeout=datetime.timedelta(seconds=float(control_timeout_s))
    )
    return rank, world_size, control
