r"""Run asynchronous SGD on a parameter server, on either executor, with a virtual or real clock.

Layout: node (rank) ``0`` is the server, nodes ``1..n`` the workers; worker ``i`` (0-based) is
rank ``i + 1`` and computes gradients of the data node ``i`` of the oracle (``f_i``) with its
own noise generator ``(seed, "noise", i)``. The update rules are
:class:`verify.algorithms.async_sgd.AsyncSGD`; this module only moves messages, through the
communicator's point-to-point operations (:meth:`verify.comm.Communicator.send`, ``recv``,
``recv_any``), every wait with a timeout.

Protocol (float messages, ``R`` replicas of a ``d``-vector)::

    server -> worker:  [version k, command (1 compute, 0 stop), x_k (R*d)]
    worker -> server:  [version read r, job index j, g (R*d)]

1. The server sends ``x_0`` (version 0) to every worker; each computes a gradient at the model
   it received and sends it back, then waits for the next model.
2. The server takes the next gradient, computes its staleness ``tau_k = k - r``, applies it
   (``AsyncSGD.apply``) and sends ``x_{k+1}`` to that worker only.
3. After ``n_updates`` gradients it receives (and discards) the gradients still in flight and
   sends every worker the stop command, so no message is left unmatched.

Which gradient comes next (step 2):

* ``mode="virtual"`` (default; both executors): a **virtual clock** decides. Worker ``i``'s
  ``j``-th gradient takes ``c_{i,j}`` virtual seconds (:func:`compute_times`: fixed speeds,
  i.i.d. exponential times, a straggler), the event simulation
  :func:`theorylab.staleness.simulate_arrivals` gives the order, and the server receives from
  exactly the worker the clock names (``recv(src)``), so the staleness trace, and with the same
  seeds the whole trajectory, is the same on every run and on both executors.
* ``mode="realtime"`` (distributed only): workers really compute and then sleep
  ``c_{i,j} * time_scale`` seconds; the server takes whatever arrives first (``recv_any``). The
  order depends on the OS; use it for wall-clock comparisons.

``algorithm="sync"``: the synchronous comparison (minibatch SGD on the server): each round the
server sends the model to all workers and waits for all ``n`` gradients (in worker order), then
applies their mean; a round lasts ``max_i c_{i,j}`` (virtual) or the slowest worker (real).

Worker death: every server wait is bounded by ``worker_timeout_s``. If a worker sends nothing in
time (or its process is gone), the server stops applying, records ``failed_worker`` and the
message, and returns what it applied so far (also written to ``save_path`` at once when given).
On gloo a wait that times out closes the rank's connections (see :class:`verify.comm.PeerError`),
so the server cannot tell the others to stop: each of them stops when its next wait on the
server fails (status ``"server lost: ..."``), within its own timeout. A process group that saw a
failure must not be reused (run such runs with :func:`verify.runtime.launch.launch`). In the
simulator nothing fails; there a failure can only be a bug.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from theorylab.errors import TheorylabError, check_int, check_positive
from theorylab.staleness import ArrivalTrace, simulate_arrivals, staleness_stats
from verify.algorithms.async_sgd import AsyncSGD
from verify.comm import PeerError
from verify.run import check_time_limit
from verify.seeding import node_generators, node_seed

__all__ = [
    "SPEED_MODELS",
    "AsyncRun",
    "compute_times",
    "straggler_speeds",
    "virtual_schedule",
    "run_async_simulated",
    "run_async_distributed",
]

SPEED_MODELS = ("fixed", "exponential")
_ALGORITHMS = ("async", "sync")
_MODES = ("virtual", "realtime")
_HEADER = 2
_COMPUTE, _STOP = 1.0, 0.0


# -- speeds and the virtual clock ---------------------------------------------------------------
def _check_speeds(speeds) -> np.ndarray:
    s = np.asarray(speeds, dtype=float).ravel() if not np.isscalar(speeds) else None
    if s is None or s.size == 0:
        raise TheorylabError(f"speeds must be a non-empty sequence of speeds > 0, got {speeds!r}")
    bad = [(i, v) for i, v in enumerate(s) if not np.isfinite(v) or v <= 0]
    if bad:
        i, v = bad[0]
        raise TheorylabError(
            f"speeds[{i}] must be a finite speed > 0 (gradients per virtual second), got {v}"
        )
    return s


def straggler_speeds(n: int, slowdown: float) -> np.ndarray:
    """``n`` workers of speed 1 except the last, ``slowdown`` times slower (speed ``1/slowdown``).

    Example
    -------
    >>> straggler_speeds(3, 10.0).tolist()
    [1.0, 1.0, 0.1]
    """
    n = check_int("n", n, minimum=1)
    slowdown = check_positive("slowdown", slowdown)
    s = np.ones(n)
    s[-1] = 1.0 / slowdown
    return s


def compute_times(speeds, n_jobs: int, *, model: str = "fixed", seed: int | None = None):
    """Per-worker compute times ``c_{i,j}``, ``j < n_jobs`` (virtual seconds), as a list of arrays.

    ``model="fixed"``: ``c_{i,j} = 1 / speeds[i]``. ``model="exponential"``: i.i.d. exponential
    of mean ``1 / speeds[i]``, worker ``i`` drawing from
    ``default_rng(SeedSequence(seed).spawn(n)[i])``: the same numbers as
    :func:`theorylab.staleness.simulate_speed_model` (tested), so the theory's trace and this
    module's are one.

    Raises
    ------
    TheorylabError
        A speed that is not a finite positive number, an unknown model, a missing seed.
    """
    s = _check_speeds(speeds)
    n_jobs = check_int("n_jobs", n_jobs, minimum=1)
    if model not in SPEED_MODELS:
        raise TheorylabError(f"model must be one of {SPEED_MODELS}, got {model!r}")
    if model == "fixed":
        return [np.full(n_jobs, 1.0 / v) for v in s]
    if seed is None:
        raise TheorylabError("model='exponential' needs an explicit integer seed")
    seed = check_int("seed", seed, minimum=0)
    streams = np.random.SeedSequence(seed).spawn(s.size)
    return [
        np.random.default_rng(ss).exponential(1.0 / v, size=n_jobs)
        for ss, v in zip(streams, s, strict=True)
    ]


def virtual_schedule(times, n_updates: int) -> ArrivalTrace:
    """Arrival order of ``n_updates`` gradients for the compute times ``times`` (virtual clock).

    Thin wrapper of :func:`theorylab.staleness.simulate_arrivals` (ties by worker index).
    """
    return simulate_arrivals(times, n_updates)


def _schedule_seed(seed: int) -> int:
    """The compute-time seed of a run seeded ``seed`` (stream ``"delay"``), < 2**63."""
    return node_seed(seed, "delay", 0)


# -- result -------------------------------------------------------------------------------------
@dataclass
class AsyncRun:
    """One run of the parameter server, all replicas together.

    Attributes
    ----------
    steps : list of int
        Checkpoints: the number of updates applied (async: gradients; sync: rounds).
    error : ndarray (len(steps), R)
        ``||x - x*||^2`` per replica at each checkpoint (``None`` without ``x*``).
    worker, read_version, staleness : ndarray (K,)
        Of each applied update ``k``: its worker, the version it read ``r_k``, and
        ``tau_k = k - r_k`` (sync: worker ``-1``, staleness 0).
    gamma_k : ndarray (K,)
        The step each update used.
    virtual_time : ndarray (K,)
        Virtual arrival time of each update (sync: end of each round).
    wall_time : ndarray (K,)
        Seconds since the start when the server applied each update.
    x : ndarray (R, d)
        The final model (after the last applied update).
    applied : int
        Updates applied (``< n_updates`` after a failure).
    bytes_sent : int
        Bytes all nodes sent (server and workers, payload of every message).
    failed_worker : int or None
        The worker (0-based) that did not answer in time; ``None`` if none (or unknown).
    failure : str or None
        The failure's message.
    wall_s : float
        Wall time of the server loop.
    config : dict
    """

    steps: list[int]
    error: np.ndarray | None
    worker: np.ndarray
    read_version: np.ndarray
    staleness: np.ndarray
    gamma_k: np.ndarray
    virtual_time: np.ndarray
    wall_time: np.ndarray
    x: np.ndarray
    applied: int
    bytes_sent: int
    failed_worker: int | None = None
    failure: str | None = None
    wall_s: float = 0.0
    config: dict[str, Any] = field(default_factory=dict)

    def stats(self, skip: int = 0):
        """:func:`theorylab.staleness.staleness_stats` of the applied updates from ``skip`` on."""
        workers = self.worker[skip:] if self.config.get("algorithm") == "async" else None
        return staleness_stats(self.staleness[skip:], workers, n=self.config.get("n"))

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict (arrays as lists)."""
        out = dataclasses.asdict(self)
        for key, value in out.items():
            if isinstance(value, np.ndarray):
                out[key] = value.tolist()
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AsyncRun:
        """Inverse of :meth:`to_dict`."""
        kw = dict(data)
        for key in ("worker", "read_version", "staleness"):
            kw[key] = np.asarray(kw[key], dtype=np.int64)
        for key in ("gamma_k", "virtual_time", "wall_time", "x"):
            kw[key] = np.asarray(kw[key], dtype=np.float64)
        kw["error"] = None if kw["error"] is None else np.asarray(kw["error"], dtype=np.float64)
        return cls(**kw)

    def save(self, path) -> None:
        """Write :meth:`to_dict` as JSON (atomically; folders created)."""
        _save_json(self.to_dict(), path)

    @classmethod
    def from_ranks(cls, results) -> AsyncRun:
        """The server's run (rank 0) with ``bytes_sent`` summed over all ranks' reports."""
        run = results[0]
        total = run.bytes_sent + sum(int(r["bytes_sent"]) for r in results[1:])
        return dataclasses.replace(
            run, bytes_sent=total, config={**run.config, "ranks": len(results)}
        )


def _save_json(obj, path) -> None:
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=folder, delete=False, suffix=".tmp") as f:
        json.dump(obj, f)
    os.replace(f.name, path)


# -- the two roles ------------------------------------------------------------------------------
@dataclass
class _Setup:
    alg: AsyncSGD
    algorithm: str
    n: int
    R: int
    d: int
    n_updates: int
    times: list
    order: ArrivalTrace | None
    record: list[int]
    x_star: torch.Tensor | None
    dtype: torch.dtype
    worker_timeout_s: float | None
    save_path: str | None
    config: dict


class _Worker:
    """Worker ``i`` (rank ``i + 1``): receive a model, compute at it, send the gradient back."""

    def __init__(self, comm, setup: _Setup, i: int, oracle, generator, realtime: float | None, die):
        self.comm, self.s, self.i, self.oracle, self.gen = comm, setup, i, oracle, generator
        self.realtime = realtime  # seconds per virtual second (sleep), or None
        self.die = die  # (after_jobs, how) or None
        self.jobs = 0
        self.status = "running"

    def on_message(self) -> bool:
        """Handle the server's next message; False once stopped (or the server is gone)."""
        s, rank = self.s, self.i + 1
        try:
            msg = self.comm.recv(0, (_HEADER + s.R * s.d,), node=rank)
        except PeerError as exc:
            self.status = f"server lost: {exc}"
            return False
        if float(msg[1]) == _STOP:
            self.status = "stopped"
            return False
        if self.die is not None and self.jobs == self.die[0]:
            if self.die[1] == "exit":  # pragma: no cover - the process ends here
                os._exit(3)
            self.status = "died (planted: stopped answering)"
            return False
        start = time.perf_counter()
        g = AsyncSGD.compute(self.oracle, msg[_HEADER:].view(s.R, s.d), self.i, self.gen)
        if self.realtime is not None:
            remaining = s.times[self.i][self.jobs % len(s.times[self.i])] * self.realtime
            remaining -= time.perf_counter() - start
            if remaining > 0:
                time.sleep(remaining)
        header = torch.tensor([float(msg[0]), float(self.jobs)], dtype=s.dtype, device=g.device)
        try:
            self.comm.send(torch.cat([header, g.reshape(-1)]), 0, node=rank)
        except PeerError as exc:
            self.status = f"server lost: {exc}"
            return False
        self.jobs += 1
        return True

    def report(self) -> dict:
        return {"worker": self.i, "jobs": self.jobs, "status": self.status}


class _Server:
    """The parameter server (rank 0)."""

    def __init__(self, comm, setup: _Setup, x0: torch.Tensor, deliver):
        self.comm, self.s = comm, setup
        self.deliver = deliver  # simulator: run worker w's step after a message to it
        self.state = setup.alg.init(x0)
        self.in_flight: set[int] = set()
        self.log: dict[str, list] = {k: [] for k in ("w", "r", "tau", "gk", "vt", "wt")}
        self.errors: list = []
        self.measured: list[int] = []
        self.failed: int | None = None
        self.failure: str | None = None

    # messages
    def _send(self, w: int, command: float) -> None:
        s = self.s
        header = torch.tensor(
            [float(self.state.k), command], dtype=s.dtype, device=self.state.x.device
        )
        self.comm.send(torch.cat([header, self.state.x.reshape(-1)]), w + 1, node=0)
        if command == _COMPUTE:
            self.in_flight.add(w)
        if self.deliver is not None:
            self.deliver(w)

    def _recv(self, w: int | None):
        s, shape = self.s, (_HEADER + self.s.R * self.s.d,)
        if w is None:
            src, msg = self.comm.recv_any(shape, node=0, timeout_s=s.worker_timeout_s)
            w = src - 1
        else:
            msg = self.comm.recv(w + 1, shape, node=0, timeout_s=s.worker_timeout_s)
        self.in_flight.discard(w)
        return w, int(msg[0]), msg[_HEADER:].view(s.R, s.d)

    def _measure(self) -> None:
        self.measured.append(self.state.k)
        xs = self.s.x_star
        if xs is not None:
            e = ((self.state.x.to(torch.float64) - xs) ** 2).sum(dim=-1)
            self.errors.append(e.cpu().numpy())

    def _fail(self, exc: PeerError, w: int | None) -> None:
        self.failed, self.failure = w, str(exc)

    def run(self) -> None:
        s = self.s
        want = set(s.record)
        self.start = time.perf_counter()
        for w in range(s.n):
            self._send(w, _COMPUTE)
        k = 0
        vclock = 0.0
        while k < s.n_updates:
            if self.deliver is not None:  # simulated; on the ranks the pool bounds the call
                check_time_limit("at update %d of %d of a simulated %s run", k, s.n_updates,
                                 s.algorithm)  # fmt: skip
            if k in want:
                self._measure()
            if s.algorithm == "sync":
                grads, slowest = [], 0.0
                for w in range(s.n):
                    try:
                        _, _, g = self._recv(w)
                    except PeerError as exc:
                        self._fail(exc, w)
                        return
                    grads.append(g)
                    slowest = max(slowest, s.times[w][k % len(s.times[w])])
                self.state = s.alg.apply_mean(self.state, grads)._replace(k=k + 1)
                vclock += slowest
                self._log(-1, k, 0, s.alg.gamma, vclock)
                k += 1
                if k < s.n_updates:
                    for w in range(s.n):
                        self._send(w, _COMPUTE)
                continue
            expected = None if s.order is None else int(s.order.worker[k])
            try:
                w, r, g = self._recv(expected)
            except PeerError as exc:
                self._fail(exc, expected)
                return
            if s.order is not None and r != int(s.order.read_version[k]):
                raise TheorylabError(
                    f"update {k}: worker {w} read version {r} but the virtual clock says "
                    f"{int(s.order.read_version[k])}; the message order is broken"
                )
            tau = k - r
            self.state, gk = s.alg.apply(self.state, g, tau)
            vt = float(s.order.time[k]) if s.order is not None else float("nan")
            self._log(w, r, tau, gk, vt)
            k += 1
            if k < s.n_updates:
                self._send(w, _COMPUTE)

    def _log(self, w, r, tau, gk, vt) -> None:
        for key, v in zip(("w", "r", "tau", "gk", "vt"), (w, r, tau, gk, vt)):
            self.log[key].append(v)
        self.log["wt"].append(time.perf_counter() - self.start)

    def finish(self) -> AsyncRun:
        """Measure the last checkpoint, build the result, save it, then stop every worker."""
        s = self.s
        wall_s = time.perf_counter() - self.start
        applied = self.state.k
        if applied in set(s.record) and applied not in self.measured:
            self._measure()
        steps = list(self.measured)
        run = AsyncRun(
            steps=steps,
            error=np.stack(self.errors).astype(np.float64)
            if self.errors and s.x_star is not None
            else None,
            worker=np.asarray(self.log["w"], dtype=np.int64),
            read_version=np.asarray(self.log["r"], dtype=np.int64),
            staleness=np.asarray(self.log["tau"], dtype=np.int64),
            gamma_k=np.asarray(self.log["gk"], dtype=np.float64),
            virtual_time=np.asarray(self.log["vt"], dtype=np.float64),
            wall_time=np.asarray(self.log["wt"], dtype=np.float64),
            x=self.state.x.detach().to(torch.float64).cpu().numpy(),
            applied=int(applied),
            bytes_sent=0,
            failed_worker=self.failed,
            failure=self.failure,
            wall_s=wall_s,
            config=dict(s.config),
        )
        if s.save_path is not None:
            run.save(s.save_path)  # saved before the shutdown, which may itself fail
        self._shutdown()
        run.bytes_sent = int(self.comm.bytes_sent)
        return run

    def _shutdown(self) -> None:
        """Drain the gradients in flight and stop every live worker (bounded waits)."""
        if self.failure is not None:
            # gloo closes this rank's connections after a wait times out (measured: even other
            # pairs then fail with "Application timeout caused pair closure"), so nothing can be
            # drained; the workers stop on their own when their next wait on the server fails
            return
        for w in range(self.s.n):
            if w == self.failed:
                continue
            try:
                if w in self.in_flight:
                    self._recv(w)
                self._send(w, _STOP)
            except PeerError:
                continue


# -- entry points -------------------------------------------------------------------------------
def _setup(
    oracle,
    x0,
    n_updates,
    gamma,
    seed,
    *,
    speeds,
    model,
    adaptive,
    algorithm,
    record,
    replicas,
    dtype,
    mode,
    worker_timeout_s,
    save_path,
):
    if callable(oracle) and not hasattr(oracle, "grad"):
        oracle = oracle()  # a zero-argument factory (e.g. ClaimContext.oracle(problem))
    n = check_int("oracle.n", oracle.n, minimum=1)
    d = check_int("oracle.d", oracle.d, minimum=1)
    n_updates = check_int("n_updates", n_updates, minimum=1)
    seed = check_int("seed", seed, minimum=0)
    if algorithm not in _ALGORITHMS:
        raise TheorylabError(f"algorithm must be one of {_ALGORITHMS}, got {algorithm!r}")
    if mode not in _MODES:
        raise TheorylabError(f"mode must be one of {_MODES}, got {mode!r}")
    alg = AsyncSGD(gamma, n, adaptive=adaptive)
    s = _check_speeds(np.ones(n) if speeds is None else speeds)
    if s.size != n:
        raise TheorylabError(f"need one speed per worker (n = {n}), got {s.size}")
    x0 = torch.as_tensor(x0, dtype=dtype)
    if x0.dim() == 1:
        x0 = x0[None, :].expand(
            1 if replicas is None else check_int("replicas", replicas, minimum=1), -1
        )
    if x0.dim() != 2 or x0.shape[1] != d:
        raise TheorylabError(
            f"x0 must have shape (d,) or (R, d) with d = {d}, got {tuple(x0.shape)}"
        )
    R = int(x0.shape[0])
    times = compute_times(s, n_updates + 1, model=model, seed=_schedule_seed(seed))
    order = (
        virtual_schedule(times, n_updates) if (algorithm == "async" and mode == "virtual") else None
    )
    rec = sorted(
        {
            check_int("record step", c, 0, n_updates)
            for c in (range(n_updates + 1) if record is None else record)
        }
    )
    if not rec:
        raise TheorylabError("record must list at least one checkpoint")
    x_star = getattr(oracle, "x_star", None)
    if worker_timeout_s is not None:
        worker_timeout_s = check_positive("worker_timeout_s", worker_timeout_s)
    config = {
        **alg.config(),
        "algorithm": algorithm,
        "n": n,
        "R": R,
        "d": d,
        "n_updates": n_updates,
        "speeds": s.tolist(),
        "model": model,
        "mode": mode,
        "seed": seed,
        "dtype": str(dtype).replace("torch.", ""),
        "torch": str(torch.__version__),  # a plain str: TorchVersion pickles as torch
    }
    setup = _Setup(
        alg,
        algorithm,
        n,
        R,
        d,
        n_updates,
        times,
        order,
        rec,
        None if x_star is None else torch.as_tensor(x_star, dtype=torch.float64),
        dtype,
        worker_timeout_s,
        None if save_path is None else os.fspath(save_path),
        config,
    )
    return setup, x0.contiguous(), oracle


def run_async_simulated(
    oracle,
    x0,
    n_updates: int,
    gamma: float,
    seed: int,
    *,
    speeds=None,
    model: str = "fixed",
    adaptive: bool = False,
    algorithm: str = "async",
    record=None,
    replicas: int | None = None,
    dtype: torch.dtype = torch.float64,
) -> AsyncRun:
    """Asynchronous (or synchronous) SGD on a parameter server, all ``n + 1`` nodes in this process.

    The server and the ``n = oracle.n`` workers exchange their messages through a
    :class:`~verify.runtime.simulated.SimulatedCommunicator` (mailboxes, bytes counted as on the
    wire); the virtual clock decides the order (module docstring), so the result equals
    :func:`run_async_distributed` in ``mode="virtual"`` for the same arguments.

    Parameters
    ----------
    oracle : GradientOracle, or a zero-argument factory of one
        ``n`` data nodes, one per worker (e.g. :class:`verify.oracles.QuadraticOracle`, or
        ``ClaimContext.oracle(problem)``). The simulator gives each worker its own deep copy
        (an oracle's caches and counter-noise call count are per caller, as on the ranks).
    x0 : array_like (d,) or (R, d)
        Initial model (``(d,)`` repeated over ``replicas``).
    n_updates : int >= 1
        Gradients to apply (sync: rounds).
    gamma : float >= 0
        Base step size (:class:`~verify.algorithms.async_sgd.AsyncSGD`).
    seed : int >= 0
        Noise generators ``(seed, "noise", i)`` per worker; compute times from stream
        ``"delay"``.
    speeds : sequence of n floats > 0, default all 1
        Gradients per virtual second (:func:`straggler_speeds` for one straggler).
    model : {"fixed", "exponential"}
        Compute-time law (:func:`compute_times`).
    adaptive : bool
        Delay-adaptive step ``gamma min(1, n/tau_k)``.
    algorithm : {"async", "sync"}
    record : sequence of int in [0, n_updates], optional
        Checkpoints (default every update).

    Returns
    -------
    AsyncRun

    Raises
    ------
    TheorylabError, TypeError
        Negative step or speeds, unknown model, bad shapes.
    """
    from verify.runtime.simulated import SimulatedCommunicator

    setup, x0, oracle = _setup(
        oracle,
        x0,
        n_updates,
        gamma,
        seed,
        speeds=speeds,
        model=model,
        adaptive=adaptive,
        algorithm=algorithm,
        record=record,
        replicas=replicas,
        dtype=dtype,
        mode="virtual",
        worker_timeout_s=None,
        save_path=None,
    )
    comm = SimulatedCommunicator(np.eye(setup.n + 1), dtype=dtype)
    gens = node_generators(seed, "noise", range(setup.n))
    # one oracle copy per worker: an oracle's caches (and the counter-noise call count) are per
    # caller, as they are on the ranks
    workers = [
        _Worker(comm, setup, i, copy.deepcopy(oracle), gens[i], None, None) for i in range(setup.n)
    ]
    server = _Server(comm, setup, x0, deliver=lambda w: workers[w].on_message())
    server.workers = workers  # the simulated workers (for inspection and planted-bug tests)
    server.run()
    return server.finish()


def run_async_distributed(
    rank: int,
    world_size: int,
    oracle,
    x0,
    n_updates: int,
    gamma: float,
    seed: int,
    *,
    speeds=None,
    model: str = "fixed",
    adaptive: bool = False,
    algorithm: str = "async",
    mode: str = "virtual",
    time_scale: float = 0.01,
    record=None,
    replicas: int | None = None,
    dtype: torch.dtype = torch.float64,
    timeout_s: float = 60.0,
    worker_timeout_s: float | None = None,
    die: tuple | None = None,
    save_path=None,
):
    """This rank's part of the parameter server run (rank 0 server, ranks 1..n workers).

    Same arguments as :func:`run_async_simulated`, plus:

    Parameters
    ----------
    world_size : int
        ``oracle.n + 1``.
    mode : {"virtual", "realtime"}
        Order of arrivals (module docstring). In ``"realtime"`` worker ``i`` sleeps so that its
        ``j``-th gradient takes ``c_{i,j} * time_scale`` seconds (compute included).
    time_scale : float > 0
        Real seconds per virtual second (real-time mode).
    timeout_s : float
        Limit on every worker wait (and the server's, unless ``worker_timeout_s``).
    worker_timeout_s : float, optional
        Limit on the server's wait for a gradient (how soon a dead worker is noticed).
    die : (worker, after_jobs, how), optional
        Planted fault: worker ``worker`` stops after ``after_jobs`` gradients, ``how="hang"``
        (stays alive, never answers) or ``"exit"`` (its process exits with code 3).
    save_path : path, optional
        Where the server writes its :class:`AsyncRun` (before the shutdown).

    Returns
    -------
    AsyncRun on rank 0; on a worker ``{"worker", "jobs", "status", "bytes_sent"}``. Combine with
    :meth:`AsyncRun.from_ranks`.
    """
    from verify.runtime.distributed import DistributedCommunicator

    setup, x0, oracle = _setup(
        oracle,
        x0,
        n_updates,
        gamma,
        seed,
        speeds=speeds,
        model=model,
        adaptive=adaptive,
        algorithm=algorithm,
        record=record,
        replicas=replicas,
        dtype=dtype,
        mode=mode,
        worker_timeout_s=worker_timeout_s if worker_timeout_s is not None else timeout_s,
        save_path=save_path,
    )
    if world_size != setup.n + 1:
        raise TheorylabError(
            f"a parameter server with n = {setup.n} workers needs world_size = {setup.n + 1} "
            f"(rank 0 the server), got {world_size}"
        )
    time_scale = check_positive("time_scale", time_scale)
    comm = DistributedCommunicator(np.eye(world_size), dtype=dtype, timeout_s=timeout_s)
    x0 = x0.to(comm.device)
    if rank == 0:
        server = _Server(comm, setup, x0, deliver=None)
        server.run()
        return server.finish()
    i = rank - 1
    plan = None
    if die is not None:
        dw, after, how = die
        if how not in ("hang", "exit"):
            raise TheorylabError(f"die[2] must be 'hang' or 'exit', got {how!r}")
        plan = (check_int("die[1]", after, minimum=0), how) if dw == i else None
    gen = node_generators(seed, "noise", [i], comm.device)[0]
    worker = _Worker(comm, setup, i, oracle, gen, time_scale if mode == "realtime" else None, plan)
    while worker.on_message():
        pass
    return {**worker.report(), "bytes_sent": int(comm.bytes_sent)}
