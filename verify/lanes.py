"""A second lane for the main job: the claims that never use the worker pool run in their own
process while the main process runs the ones that do.

Why. The main job's claims used to run one after another in one process. About half of them
(by time) only stack the nodes on the simulator (one core), and the others wait on the worker
pool's ranks, which are latency-bound; on a 2-core machine one core sat idle most of the run.

How. :func:`verify.report.run_claims` makes a :class:`SimulatedLane` for the selected claims
whose ``Claim.ranks`` is false. The lane starts one process (as the ranks are: a fork of the
fork server that has imported torch, or ``spawn``) that builds a :class:`LaneContext`: the
main context's settings, no worker pool. Asking that context
for the pool is an error naming the claim, so a claim wrongly marked ``ranks = False`` fails
loudly (an ``'error'`` row) instead of silently starting four more processes.

The claims are handed out in order from one shared counter: the lane takes the next one
whenever it is free; the main process, once the pool's claims are done, takes back those the
lane has not started (:meth:`SimulatedLane.take_back`) and runs them itself. Whoever runs a
claim saves its result as it finishes (:func:`verify.report.run_and_save`), so a killed run
loses no finished result; the lane sends each result back over a queue.

Waits. Every wait has a time limit: the claim the lane is running gets its own time limit plus
:data:`LANE_SLACK_S`; past that, or if the lane process dies, the claim becomes an ``'error'``
result and the lane is stopped. The claims it had not started are run by the main process.
Same seeds, same results: a claim computes the same numbers in either process.
"""

from __future__ import annotations

import os
import queue
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

from theorylab.errors import TheorylabError
from verify.claims.base import CLAIMS, ClaimContext, ClaimResult

__all__ = ["SimulatedLane", "LaneContext", "default_lanes", "LANE_SLACK_S", "START_TIMEOUT_S"]

#: extra seconds a lane claim may take beyond its own time limit before it is called stuck
LANE_SLACK_S = 60.0
#: seconds the lane process may take to start (interpreter, torch, the claim modules)
START_TIMEOUT_S = 120.0


def default_lanes(claims: Sequence, ctx: ClaimContext) -> int:
    """How many lanes :func:`verify.report.run_claims` uses when not told: 1 or 2.

    2 when the machine has two or more cores and at least two claims are selected, one of them
    simulator-only (``Claim.ranks = False``), unless ``THEORYLAB_LANES=1``, a selected claim
    measures wall-clock time (it must have the machine to itself), the device is CUDA (one GPU,
    one process), or the context already holds a pool (e.g. a torchrun group).
    ``THEORYLAB_LANES=2`` forces two lanes on a one-core machine.
    """
    env = os.environ.get("THEORYLAB_LANES", "").strip()
    if env and env not in ("1", "2"):
        raise TheorylabError(f"THEORYLAB_LANES must be 1 or 2, got {env!r}")
    if env == "1":
        return 1
    if any(c.wall_clock for c in claims) or ctx.device != "cpu" or ctx.pool_started:
        return 1
    if len(claims) < 2 or all(c.ranks for c in claims):
        return 1
    if env == "2":
        return 2
    return 2 if (os.cpu_count() or 1) >= 2 else 1


class LaneContext(ClaimContext):
    """A :class:`ClaimContext` without a worker pool: asking for it names the claim and fails."""

    claim: str = "?"

    @property
    def pool(self):
        raise TheorylabError(
            f"claim {self.claim!r} has Claim.ranks = False, so it runs in the simulated lane, "
            "but it asked for the worker pool; set ranks = True on the claim's class"
        )


def _settings(ctx: ClaimContext) -> dict:
    return {
        "budget": ctx.budget, "backend": ctx.backend, "device": ctx.device,
        "world_size": ctx.world_size, "seed": ctx.seed, "replicas": ctx.replicas,
        "run_timeout_s": ctx.run_timeout_s, "claim_timeout_s": ctx.claim_timeout_s,
    }  # fmt: skip


def _take(counter, names: Sequence[str], timeout_s: float = 10.0) -> int | None:
    """The index of the next unstarted claim (claimed atomically), or ``None`` if none is left
    or the lock could not be had within ``timeout_s`` (a process killed while holding it)."""
    lock = counter.get_lock()
    if not lock.acquire(timeout=timeout_s):
        return None
    try:
        i = counter.get_obj().value
        if i >= len(names):
            return None
        counter.get_obj().value = i + 1
    finally:
        lock.release()
    return i


def _alive(pid: int) -> bool:
    """Whether process ``pid`` still exists (POSIX; on Windows ``os.kill`` would signal it, so
    there the lane relies on being a daemon of the main process)."""
    if os.name != "posix":
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else (pid reused): treat as gone
        return False
    return True


def _lane_main(settings, names, counter, results_dir, force, events, env=None,
               parent_pid=None) -> None:  # fmt: skip
    """The lane process: run claims from the shared counter until none is left (or the main
    process is gone: a lane never outlives the run it serves)."""
    try:
        from verify.runtime.launch import adopt_environment

        adopt_environment(env)  # the parent's, not the fork server's (frozen at its start)
        import torch

        torch.set_num_threads(1)  # one core each: the lane, and the main process beside it
        import verify.claims  # noqa: F401  (registers every claim)
        from verify.report import run_and_save

        ctx = LaneContext(**settings)
    except BaseException:  # noqa: BLE001 - reported, the main process runs the claims
        events.put(("broken", None, traceback.format_exc()))
        return
    events.put(("ready", None, None))
    while (parent_pid is None or _alive(parent_pid)) and (i := _take(counter, names)) is not None:
        name = names[i]
        events.put(("start", name, time.monotonic()))
        try:
            ctx.claim = name
            result, resumed = run_and_save(CLAIMS[name], ctx, Path(results_dir), force)
            events.put(("done", name, (result.to_dict(), resumed)))
        except BaseException:  # noqa: BLE001 - run_and_save catches the claim's own errors
            events.put(("broken", name, traceback.format_exc()))
            return
    events.put(("exit", None, None))


class SimulatedLane:
    """The second lane: one process running ``names`` (claims with ``ranks = False``).

    Use from :func:`verify.report.run_claims` only: :meth:`poll` hands finished results to a
    callback ``collect(name, result, resumed)``, :meth:`take_back` gives the main process the
    next claim the lane has not started, :meth:`finish` waits (bounded) for the lane's current
    claim, :meth:`close` stops the process.
    """

    def __init__(self, ctx: ClaimContext, results_dir, force: bool, names: Sequence[str]):
        self.names = list(names)
        self._limits = {}
        for name in self.names:
            claim = CLAIMS[name]
            limit = ctx.claim_timeout_s or claim.default_timeout_s(ctx)
            self._limits[name] = float(limit) + LANE_SLACK_S
        from verify.runtime.launch import _rank_context, _start_processes

        mpc = _rank_context()  # a fork of the server that holds torch, as the ranks are
        self._counter = mpc.Value("i", 0)
        self._events = mpc.Queue()
        self._proc = mpc.Process(
            target=_lane_main, name="theorylab-lane", daemon=True,
            args=(_settings(ctx), self.names, self._counter, str(results_dir), force,
                  self._events, dict(os.environ), os.getpid()),
        )  # fmt: skip
        self._started_at = self._last_event = time.monotonic()
        # bounded: the fork server imports torch before forking, and an import can hang
        _start_processes([self._proc], START_TIMEOUT_S, "the second lane")
        # A reader thread moves the lane's events into an in-process queue: an mp.Queue read
        # blocks without limit on a message the lane died in the middle of writing (its
        # timeout covers only the first byte); the thread may hang there, the main thread
        # never does (it waits on the inbox, with timeouts, and watches the process).
        self._inbox: queue.Queue = queue.Queue()
        self._reader = threading.Thread(target=self._read, name="theorylab-lane-reader",
                                        daemon=True)  # fmt: skip
        self._reader.start()
        self._ready = False
        self._running: dict[str, float] = {}  # name -> when the lane started it
        self._collected: set[str] = set()
        self._taken: set[str] = set()  # claims the main process took back
        self.broken: str | None = None

    # -- events ------------------------------------------------------------------------------
    def _read(self) -> None:
        while True:
            try:
                event = self._events.get()
            except (EOFError, OSError, ValueError):  # the queue was closed
                return
            self._inbox.put(event)
            if event[0] in ("exit", "broken"):
                return

    def _handle(self, event, collect: Callable) -> None:
        kind, name, payload = event
        self._last_event = time.monotonic()
        if kind == "ready":
            self._ready = True
        elif kind == "start":  # the lane's clock (system-wide monotonic), not when read here
            self._running[name] = min(float(payload), time.monotonic())
        elif kind == "done":
            data, resumed = payload
            self._running.pop(name, None)
            self._collected.add(name)
            collect(name, ClaimResult.from_dict(data), resumed)
        elif kind == "broken":
            self.broken = payload
            if name is not None:
                self._fail(name, f"the lane process failed while running it:\n{payload}", collect)

    def _fail(self, name: str, why: str, collect: Callable) -> None:
        self._running.pop(name, None)
        self._collected.add(name)
        claim = CLAIMS[name]
        lines = [line for line in why.strip().splitlines() if line.strip()]
        summary = lines[0] if len(lines) == 1 else f"{lines[0]} {lines[-1].strip()}"
        result = ClaimResult(claim=name, kind=claim.kind, issue=claim.issue, verdict="error",
                             detail=f"{name}: {summary}", traceback=why)  # fmt: skip
        collect(name, result, False)

    def poll(self, collect: Callable) -> None:
        """Hand every result that has arrived to ``collect`` (never blocks)."""
        while True:
            try:
                event = self._inbox.get_nowait()
            except queue.Empty:
                return
            self._handle(event, collect)

    def take_back(self) -> str | None:
        """The next claim the lane has not started, now the main process's; ``None`` if none."""
        i = _take(self._counter, self.names)
        if i is None:
            return None
        self._taken.add(self.names[i])
        return self.names[i]

    def finish(self, collect: Callable) -> None:
        """Wait for the claims the lane took, each within its time limit (+ slack)."""
        # every claim is handed out by now (take_back returned None): read without the lock,
        # which a lane killed while holding it would never release
        handed = self.names[: self._counter.get_obj().value]
        owed = [n for n in handed if n not in self._taken]
        while any(n not in self._collected for n in owed):
            now = time.monotonic()
            if self._running:
                name, since = next(iter(self._running.items()))
                deadline = since + self._limits[name]
            elif not self._ready:
                deadline = self._started_at + START_TIMEOUT_S
            else:  # between a result and the next start: moments, unless the lane is stuck
                deadline = self._last_event + LANE_SLACK_S
            try:
                event = self._inbox.get(timeout=max(0.05, min(1.0, deadline - now)))
            except queue.Empty:
                event = None
            if event is not None:
                self._handle(event, collect)
                continue
            dead = not self._proc.is_alive()
            if dead:  # what it wrote in full before dying may still be on its way
                try:
                    self._handle(self._inbox.get(timeout=1.0), collect)
                    continue
                except queue.Empty:
                    pass
            if dead or time.monotonic() >= deadline:
                self.close()
                why = (f"the lane process died (exit code {self._proc.exitcode})" if dead
                       else f"no result within its time limit + {LANE_SLACK_S:g} s in the "
                            "lane; the lane was stopped")  # fmt: skip
                for n in owed:
                    if n not in self._collected:
                        self._fail(n, why, collect)
                return

    def close(self) -> None:
        """Stop the lane process (it has exited already after a normal run)."""
        self._proc.join(timeout=5.0)
        if self._proc.is_alive():
            self._proc.terminate()
            self._proc.join(timeout=5.0)
        if self._proc.is_alive():
            self._proc.kill()
            self._proc.join(timeout=5.0)
