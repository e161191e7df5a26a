"""Run an algorithm on either executor and record its error, consensus and cost at checkpoints.

:func:`run_algorithm` is executor-agnostic: it steps ``algorithm`` on a :class:`Context` and, at
each checkpoint step, measures per replica ``r`` (accumulated in float64, through ``comm.allsum``,
which is not counted in ``bytes_sent``)::

    error     = (1/n) sum_i ||x_i - x*||^2
    consensus = (1/n) sum_i ||x_i - xbar||^2,     xbar = (1/n) sum_i x_i
    avg_error = ||xbar - x*||^2

(the error fields are ``None`` when the oracle's ``x_star`` is ``None``). The checkpoints default
to :func:`log_checkpoints` (step 0, about five per decade, and the last step); pass
``record=range(steps + 1)`` for every step. A float64 state is measured as is; a lower-precision
state (float32 on the simulator) is cast to float64 in blocks of nodes, so a measurement never
holds a float64 copy of the whole ``(n, R, d)`` state (a rank casts its one node).

:func:`run_simulated` and :func:`run_distributed` build the communicator, the per-node generators
(:func:`make_context`) and the initial state; ``run_distributed`` is a module-level function so a
:class:`verify.runtime.launch.WorkerPool` can run it: ``pool.run(run_distributed, ...)``.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from theorylab.errors import TheorylabError, check_int
from verify.algorithms.base import Algorithm, Context
from verify.comm import Communicator
from verify.seeding import node_generators

__all__ = [
    "Trajectory",
    "log_checkpoints",
    "make_context",
    "run_algorithm",
    "run_simulated",
    "run_distributed",
    "time_limit",
    "check_time_limit",
]

_METRICS = ("error", "consensus", "avg_error")
#: float64 elements per block of a lower-precision state's measurement (512 KiB: in cache)
_BLOCK = 1 << 16
#: a zero-argument callable giving the ``time.monotonic()`` by which a simulated run must stop
#: (``None``: no limit); set by :func:`time_limit`
_DEADLINE: contextvars.ContextVar = contextvars.ContextVar("verify_run_deadline", default=None)


@contextlib.contextmanager
def time_limit(deadline):
    """Within the block, a run whose nodes are all in this process (the simulator's step loop,
    the simulated parameter server's) stops with :class:`TimeoutError` once
    ``time.monotonic()`` passes ``deadline()``.

    ``deadline`` is a zero-argument callable (read at every step: a claim's limit moves when
    its worker pool starts) returning a ``time.monotonic()`` value or ``None`` (no limit). A
    block inside another keeps the earlier of the two limits. The main job puts each claim
    inside one, so a simulator-only claim keeps its time limit as a claim on the ranks does
    (there the pool bounds the call: a rank never stops alone, which would leave the others
    waiting in a collective). Work outside those loops (exact predictions, an algorithm's
    ``init``) is not interrupted; threads a claim starts do not inherit the limit.
    """
    if not callable(deadline):
        raise TypeError(f"deadline must be a zero-argument callable, got {deadline!r}")
    outer = _DEADLINE.get()
    if outer is not None:
        inner = deadline

        def deadline():
            limits = [t for t in (outer(), inner()) if t is not None]
            return min(limits) if limits else None

    token = _DEADLINE.set(deadline)
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def check_time_limit(where: str, *args) -> None:
    """Raise :class:`TimeoutError` if the limit of the enclosing :func:`time_limit` has passed;
    the message is ``"the time limit was reached " + where % args`` (formatted only then)."""
    deadline = _DEADLINE.get()
    if deadline is not None and (limit := deadline()) is not None and time.monotonic() > limit:
        raise TimeoutError("the time limit was reached " + (where % args if args else where))


#: bytes of checkpoint iterates a rank holds before measuring them in one batch
_PENDING_BYTES = 32 << 20


@dataclass
class Trajectory:
    """Measurements of one run, all replicas together.

    Attributes
    ----------
    steps : list of int
        Checkpoint steps (``0`` = before the first step).
    error, consensus, avg_error : numpy.ndarray of shape (len(steps), R), or None
        The metrics of the module docstring (``error`` and ``avg_error`` are ``None`` without
        ``x*``).
    bytes_sent : int
        Algorithm bytes sent by all nodes together.
    bytes_sent_local : int
        Algorithm bytes sent by this process (all nodes in the simulator, one on a rank).
    wall_s, comm_s, compute_s, measure_s : float
        Wall time of the run, and its split into counted communication, the rest of the
        algorithm (compute), and the checkpoint measurements.
    config : dict
        Algorithm hyperparameters, sizes, executor, seed, ... (JSON-serialisable).
    """

    steps: list[int]
    error: np.ndarray | None
    consensus: np.ndarray
    avg_error: np.ndarray | None
    bytes_sent: int
    bytes_sent_local: int
    wall_s: float
    comm_s: float
    compute_s: float
    measure_s: float
    config: dict[str, Any] = field(default_factory=dict)
    #: values of the ``observe`` hook after each step, one list per process (empty without it)
    observed: list = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (arrays as nested lists)."""
        out = dataclasses.asdict(self)
        for key in _METRICS:
            value = getattr(self, key)
            out[key] = None if value is None else np.asarray(value).tolist()
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Trajectory:
        """Inverse of :meth:`to_dict`."""
        kwargs = dict(data)
        for key in _METRICS:
            value = kwargs.get(key)
            kwargs[key] = None if value is None else np.asarray(value, dtype=np.float64)
        kwargs["steps"] = [int(s) for s in kwargs["steps"]]
        return cls(**kwargs)

    @classmethod
    def from_ranks(cls, trajectories: Sequence[Trajectory]) -> Trajectory:
        """One trajectory for a distributed run from its per-rank results.

        The metrics and ``bytes_sent`` are global (identical on every rank); times are the maximum
        over ranks; ``bytes_sent_local`` becomes the total.
        """
        if not trajectories:
            raise TheorylabError("from_ranks needs at least one trajectory, got none")
        first = trajectories[0]
        return dataclasses.replace(
            first,
            bytes_sent_local=first.bytes_sent,
            wall_s=max(t.wall_s for t in trajectories),
            comm_s=max(t.comm_s for t in trajectories),
            compute_s=max(t.compute_s for t in trajectories),
            measure_s=max(t.measure_s for t in trajectories),
            config={**first.config, "ranks": len(trajectories)},
            observed=[obs for t in trajectories for obs in t.observed],
        )


def make_context(comm: Communicator, oracle, seed: int, **extra) -> Context:
    """A :class:`Context` with node ``i``'s generators derived from ``(seed, stream, i)``.

    Streams ``"noise"`` (for ``oracle.grad``) and ``"algorithm"`` (compression, participation,
    attacks), from :func:`verify.seeding.node_generators`, on the communicator's device, so node
    ``i`` draws the same numbers on either executor.
    """
    seed = check_int("seed", seed, minimum=0)
    device = getattr(comm, "device", "cpu")
    nodes = comm.nodes.tolist()
    return Context(
        comm=comm,
        oracle=oracle,
        noise_generators=node_generators(seed, "noise", nodes, device),
        algorithm_generators=node_generators(seed, "algorithm", nodes, device),
        extra={"seed": seed, **extra},
    )


def log_checkpoints(steps: int, per_decade: int = 5) -> list[int]:
    """The default checkpoints: step 0, ``round(10**(j / per_decade))`` up to ``steps``, and
    ``steps`` itself.

    With ``per_decade = 5`` (the rounded Renard R5 series 1, 1.6, 2.5, 4, 6.3, 10, ...) every step
    up to 5 is a checkpoint, and a run of ``K`` steps is measured about ``5 log10(K) + 2`` times,
    so the measurement's cost is negligible beside the run's (``benchmarks/measurement.py``).

    Parameters
    ----------
    steps : int >= 0
        The last step.
    per_decade : int >= 1
        Checkpoints per factor of 10.

    Returns
    -------
    list of int
        Sorted, distinct, from 0 to ``steps`` inclusive.

    Example
    -------
    >>> log_checkpoints(100)
    [0, 1, 2, 3, 4, 6, 10, 16, 25, 40, 63, 100]
    """
    steps = check_int("steps", steps, minimum=0)
    per_decade = check_int("per_decade", per_decade, minimum=1)
    out = {0, steps}
    j = 0
    while (value := int(round(10.0 ** (j / per_decade)))) <= steps:
        out.add(value)
        j += 1
    return sorted(out)


def _record_steps(record, steps: int) -> list[int]:
    if record is None:
        return log_checkpoints(steps)
    out = sorted({check_int("record step", s, minimum=0, maximum=steps) for s in record})
    if not out:
        raise TheorylabError("record must list at least one checkpoint step, got an empty list")
    return out


def _measure(comm: Communicator, x: torch.Tensor, x_star) -> tuple:
    x = x.detach()
    if x.dtype != torch.float64 and x.shape[0] == comm.n > 1:
        return _measure_blocks(comm, x, x_star)
    x = x.to(torch.float64)
    n = comm.n
    xbar = comm.allsum(x) / n  # (R, d)
    parts = [((x - xbar) ** 2).sum(dim=-1)]  # (m, R)
    if x_star is not None:
        xs = x_star.detach().to(device=x.device, dtype=torch.float64)
        parts.append(((x - xs) ** 2).sum(dim=-1))
    sums = comm.allsum(torch.stack(parts, dim=-1)) / n  # (R, 1 or 2)
    consensus = sums[..., 0].cpu().numpy()
    if x_star is None:
        return None, consensus, None
    avg_error = ((xbar - xs) ** 2).sum(dim=-1).cpu().numpy()
    return sums[..., 1].cpu().numpy(), consensus, avg_error


def _measure_blocks(comm: Communicator, x: torch.Tensor, x_star) -> tuple:
    """:func:`_measure` of a lower-precision state holding all ``n`` nodes (the simulator): the
    same float64 sums, over blocks of consecutive nodes, each block cast to float64 on its own.

    With every node local, the sum over nodes (``comm.allsum``) is this process's sum. Blocks
    of ``_BLOCK`` float64 elements stay in cache: 4x faster than one cast of the whole state.
    """
    n, R, d = x.shape
    rows = max(1, _BLOCK // max(1, R * d))
    f64 = torch.float64
    total = torch.zeros((R, d), dtype=f64, device=x.device)
    for lo in range(0, n, rows):
        total += x[lo : lo + rows].to(f64).sum(dim=0)
    xbar = total.div_(n)  # (R, d)
    xs = None if x_star is None else x_star.detach().to(device=x.device, dtype=f64)
    cons = torch.empty((n, R), dtype=f64, device=x.device)
    err = None if xs is None else torch.empty((n, R), dtype=f64, device=x.device)
    for lo in range(0, n, rows):
        block = x[lo : lo + rows].to(f64)  # (rows, R, d)
        if xs is not None:
            err[lo : lo + rows] = (block - xs).square_().sum(dim=-1)
        cons[lo : lo + rows] = block.sub_(xbar).square_().sum(dim=-1)
    consensus = (cons.sum(dim=0) / n).cpu().numpy()
    if xs is None:
        return None, consensus, None
    avg_error = (xbar - xs).square_().sum(dim=-1).cpu().numpy()
    return (err.sum(dim=0) / n).cpu().numpy(), consensus, avg_error


def run_algorithm(
    algorithm: Algorithm,
    ctx: Context,
    x0: torch.Tensor,
    steps: int,
    record: Sequence[int] | None = None,
    observe=None,
) -> Trajectory:
    """Run ``steps`` rounds of ``algorithm`` from ``x0`` and measure at the ``record`` steps.

    Parameters
    ----------
    algorithm : Algorithm
    ctx : Context
        From :func:`make_context`.
    x0 : torch.Tensor, shape (m, R, d)
        Initial values of the local nodes (``m = len(ctx.nodes)``).
    steps : int >= 0
        Number of rounds ``k = 0, ..., steps - 1``.
    record : sequence of int in [0, steps], optional
        Checkpoint steps (step ``s`` = after ``s`` rounds); default :func:`log_checkpoints`
        ``(steps)`` (0, about five per decade, and ``steps``); ``range(steps + 1)`` for every
        step.
    observe : callable(k, before, after, ctx) -> value, optional
        Called after step ``k`` with the state before and after it; the values are returned in
        ``Trajectory.observed`` (one list, for this process). If it has a ``flush(ctx)``
        method (an observer that batches its work), that is called once after the last step
        and its value appended too. Its time counts as measurement.

    Returns
    -------
    Trajectory

    Raises
    ------
    TheorylabError
        If ``x0``'s leading dimension is not the number of local nodes, or a checkpoint is out
        of range.
    TimeoutError
        All nodes in this process (the simulator), inside a :func:`time_limit` block whose
        limit passes during the run.
    """
    steps = check_int("steps", steps, minimum=0)
    checkpoints = _record_steps(record, steps)
    comm = ctx.comm
    if not isinstance(x0, torch.Tensor) or x0.dim() != 3 or x0.shape[0] != len(comm.nodes):
        shape = tuple(x0.shape) if isinstance(x0, torch.Tensor) else type(x0).__name__
        raise TheorylabError(
            f"x0 must be a tensor of shape (m, R, d) with m = {len(comm.nodes)} local nodes, "
            f"got {shape}"
        )
    x_star = getattr(ctx.oracle, "x_star", None)
    metrics: dict[str, list] = {key: [] for key in _METRICS}
    bytes0, comm0 = comm.bytes_sent, getattr(comm, "comm_s", 0.0)
    measure_s = 0.0
    wanted = set(checkpoints)

    # Nodes spread over processes (the distributed executor): each checkpoint's measurement is
    # two dependent all-reduces, so the iterates wait here (up to _PENDING_BYTES) and are
    # measured together, two all-reduces per batch; the numbers are the same up to the order
    # in which the all-reduce adds. All nodes local (the simulator): measured at once.
    defer = len(comm.nodes) < comm.n
    pending: list[torch.Tensor] = []

    def flush() -> float:
        if not pending:
            return 0.0
        t = time.perf_counter()
        stacked = torch.stack(pending, dim=1)  # (m, K, R, d): the node dimension stays first
        pending.clear()
        values = _measure(comm, stacked, x_star)  # each (K, R) or None
        for key, value in zip(_METRICS, values):
            metrics[key].extend([None] * stacked.shape[1] if value is None else list(value))
        return time.perf_counter() - t

    def measure(state) -> float:
        t = time.perf_counter()
        x = algorithm.iterate(state)
        if defer:
            size = x.numel() * x.element_size()
            held = sum(p.numel() * p.element_size() for p in pending)
            if pending and held + size > _PENDING_BYTES:  # a batch never exceeds the limit
                flush()
            pending.append(x.detach().clone())
            return time.perf_counter() - t
        for key, value in zip(_METRICS, _measure(comm, x, x_star)):
            metrics[key].append(value)
        return time.perf_counter() - t

    name = type(algorithm).__name__
    start = time.perf_counter()
    state = algorithm.init(x0, ctx)
    observed: list = []
    for k in range(steps):
        if not defer:  # the simulator; on the ranks the pool bounds the whole call
            check_time_limit("at step %d of %d of a simulated %s run", k, steps, name)
        if k in wanted:
            measure_s += measure(state)
        before = state
        state = algorithm.step(state, ctx, k)
        if observe is not None:
            t = time.perf_counter()
            observed.append(observe(k, before, state, ctx))
            measure_s += time.perf_counter() - t
    if steps in wanted:
        measure_s += measure(state)
    measure_s += flush()
    if observe is not None and callable(getattr(observe, "flush", None)):
        t = time.perf_counter()  # an observer that batches its work hands in the last batch
        observed.append(observe.flush(ctx))
        measure_s += time.perf_counter() - t
    wall_s = time.perf_counter() - start
    comm_s = getattr(comm, "comm_s", 0.0) - comm0
    local = int(comm.bytes_sent - bytes0)
    counts = torch.zeros((len(comm.nodes), 1), dtype=torch.float64, device=x0.device)
    counts[0, 0] = float(local)
    total = int(round(float(comm.allsum(counts)[0])))
    R, d = int(x0.shape[1]), int(x0.shape[2])
    config = {
        "algorithm": algorithm.name,
        **algorithm.config(),
        "n": int(comm.n),
        "R": R,
        "d": d,
        "steps": steps,
        "executor": type(comm).__name__,
        "dtype": str(x0.dtype).replace("torch.", ""),
        "device": str(x0.device),
        "seed": ctx.extra.get("seed"),
        "torch": str(torch.__version__),  # a plain str: TorchVersion pickles as torch
    }
    stacked = {
        key: (None if any(v is None for v in values) else np.stack(values).astype(np.float64))
        for key, values in metrics.items()
    }
    return Trajectory(
        steps=checkpoints,
        error=stacked["error"],
        consensus=stacked["consensus"],
        avg_error=stacked["avg_error"],
        bytes_sent=total,
        bytes_sent_local=local,
        wall_s=wall_s,
        comm_s=comm_s,
        compute_s=max(0.0, wall_s - comm_s - measure_s),
        measure_s=measure_s,
        config=config,
        observed=[observed] if observe is not None else [],
    )


def _initial(x0, n: int, replicas: int | None, dtype, device) -> torch.Tensor:
    x0 = torch.as_tensor(x0).to(dtype=dtype, device=device)
    if x0.dim() == 2:
        R = 1 if replicas is None else check_int("replicas", replicas, minimum=1)
        x0 = x0[:, None, :].expand(x0.shape[0], R, x0.shape[1])
    elif x0.dim() != 3:
        raise TheorylabError(f"x0 must have shape (n, d) or (n, R, d), got {tuple(x0.shape)}")
    elif replicas is not None and replicas != x0.shape[1]:
        raise TheorylabError(
            f"x0 has R = {x0.shape[1]} replicas but replicas={replicas}; drop one of them"
        )
    if x0.shape[0] != n:
        raise TheorylabError(
            f"x0 must have one row per node (n = {n}), got shape {tuple(x0.shape)}"
        )
    return x0.contiguous()


def _build_oracle(oracle, device):
    if callable(oracle) and not hasattr(oracle, "grad"):
        oracle = oracle()
    if oracle is None:
        return None
    if not hasattr(oracle, "grad"):
        raise TypeError(
            f"oracle must be a GradientOracle, a zero-argument callable building one, or None; "
            f"got {type(oracle).__name__}"
        )
    current = getattr(oracle, "device", None)
    if current is not None and torch.device(current) != torch.device(device):
        if not hasattr(oracle, "to"):
            raise TheorylabError(
                f"the oracle lives on {current} but the communicator on {device}; build the "
                "oracle on the communicator's device"
            )
        oracle = oracle.to(device)
    return oracle


def _executor_stochasticity(algorithm) -> str:
    """What the executors check of W for ``algorithm``: ``'column'`` for a push-sum algorithm
    (``stochasticity == 'column'``: its P need not be row-stochastic), else ``'row'``, the
    least any gossip step needs (an algorithm checks more itself, e.g. doubly stochastic W in
    its ``init``; DSGD may run on row-stochastic weights, where it converges to a biased point,
    :func:`theorylab.directed.biased_optimum`)."""
    return "column" if getattr(algorithm, "stochasticity", None) == "column" else "row"


def run_simulated(
    algorithm: Algorithm,
    oracle,
    schedule,
    x0,
    steps: int,
    seed: int,
    record: Sequence[int] | None = None,
    *,
    replicas: int | None = None,
    device="cpu",
    dtype: torch.dtype = torch.float64,
    observe=None,
) -> Trajectory:
    """Run ``algorithm`` with all nodes stacked in this process (:class:`SimulatedCommunicator`).

    Parameters
    ----------
    algorithm : Algorithm
    oracle : GradientOracle, zero-argument callable returning one, or None
        ``None`` for gradient-free algorithms (gossip). An oracle on another device than the
        communicator is moved with its ``to(device)``.
    schedule : mixing matrices (see :class:`verify.runtime.simulated.SimulatedCommunicator`)
    x0 : array_like, shape (n, R, d) or (n, d)
        Initial values; ``(n, d)`` is repeated over ``replicas`` (default 1) replicas.
    steps, seed, record, observe
        As in :func:`run_algorithm` / :func:`make_context`.

    Returns
    -------
    Trajectory
    """
    from verify.runtime.simulated import SimulatedCommunicator

    comm = SimulatedCommunicator(
        schedule, device=device, dtype=dtype, stochasticity=_executor_stochasticity(algorithm)
    )
    x0 = _initial(x0, comm.n, replicas, dtype, comm.device)
    ctx = make_context(comm, _build_oracle(oracle, comm.device), seed)
    return run_algorithm(algorithm, ctx, x0, steps, record, observe)


def run_distributed(
    rank: int,
    world_size: int,
    algorithm: Algorithm,
    oracle,
    schedule,
    x0,
    steps: int,
    seed: int,
    record: Sequence[int] | None = None,
    *,
    replicas: int | None = None,
    device="cpu",
    dtype: torch.dtype = torch.float64,
    timeout_s: float = 60.0,
    observe=None,
) -> Trajectory:
    """Run ``algorithm`` as node ``rank`` of an initialised process group of ``world_size``.

    Same arguments as :func:`run_simulated` (``x0`` holds all ``n`` nodes; this rank takes row
    ``rank``); meant for ``pool.run(run_distributed, algorithm, oracle, schedule, x0, steps,
    seed, record)``. Combine the per-rank results with :meth:`Trajectory.from_ranks`.

    Raises
    ------
    TheorylabError
        If the world size differs from the schedule's ``n`` (see
        :class:`verify.runtime.distributed.DistributedCommunicator`).
    """
    from verify.runtime.distributed import DistributedCommunicator

    comm = DistributedCommunicator(
        schedule, device=device, dtype=dtype, timeout_s=timeout_s,
        stochasticity=_executor_stochasticity(algorithm),
    )  # fmt: skip
    if comm.n != world_size:  # pragma: no cover - the communicator checks it already
        raise TheorylabError(f"world_size {world_size} != n = {comm.n}")
    x_all = _initial(x0, comm.n, replicas, dtype, "cpu")
    x_local = x_all[rank : rank + 1].to(comm.device).contiguous()
    ctx = make_context(comm, _build_oracle(oracle, comm.device), seed)
    return run_algorithm(algorithm, ctx, x_local, steps, record, observe)
