"""Start ranks on one machine (spawn), keep them in a reusable pool, or join a ``torchrun`` job.

* :func:`launch` runs ``fn(rank, world_size, *args, **kwargs)`` once on ``world_size`` fresh
  processes and returns the per-rank results.
* :class:`WorkerPool` starts the processes and the process group once, then runs many functions
  on them (``pool.run(fn, ...)``): process start-up costs seconds on a small CPU machine, a call
  on a warm pool milliseconds.
* :func:`init_from_env` initialises the process group of a rank started by ``torchrun``.

Failure handling: when a rank raises, the caller gets a :class:`DistributedError` naming the rank,
the exception type and message, with the remote traceback, within a few seconds (the ranks still
running are given ``grace_s`` to finish, then terminated). The pool then re-creates its process
group (or, if ranks had to be terminated, restarts its processes on the next call), so it stays
usable. Every communication wait inside the ranks is bounded by ``timeout_s``; the whole call may
be bounded by ``run_timeout_s``. A rank that dies is reported with the signal that killed it
(``killed by signal SIGKILL``); a rank still missing at a time limit is reported with its process
state where the operating system tells it (``stopped (SIGSTOP or SIGTSTP)``, ``running``, ...).

Network exposure: the pool's rendezvous store is a ``TCPStore`` that this (parent) process hosts
on a socket bound to ``master_addr`` only (``127.0.0.1`` by default, never the wildcard
address), and with a loopback ``master_addr`` gloo is pinned to the loopback interface
(``GLOO_SOCKET_IFNAME`` in the ranks), so a single-machine run listens on loopback only.

Processes use the ``spawn`` start method; ``fn`` and its arguments must be picklable (``fn`` a
module-level function) and the calling script must guard its entry point with
``if __name__ == "__main__":``.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import pickle
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable
from multiprocessing.connection import wait as _wait_any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from theorylab.errors import TheorylabError, check_int, check_positive
from verify.memory import release_free_memory
from verify.runtime.distributed import rank_device

__all__ = ["DistributedError", "WorkerPool", "launch", "init_from_env", "free_port"]

_BACKENDS = ("gloo", "nccl")


class DistributedError(RuntimeError):
    """A rank failed (raised, died, or timed out); the message names the rank and the cause.

    Attributes
    ----------
    rank : int or None
        The first rank that failed (``None`` when no rank can be blamed, e.g. a start-up timeout).
    exc_type : str or None
        Name of the exception type the rank raised.
    exc_message : str or None
        Its message.
    remote_traceback : str or None
        The traceback formatted in the rank's process.
    """

    def __init__(
        self,
        message: str,
        *,
        rank: int | None = None,
        exc_type: str | None = None,
        exc_message: str | None = None,
        remote_traceback: str | None = None,
    ):
        super().__init__(message)
        self.rank = rank
        self.exc_type = exc_type
        self.exc_message = exc_message
        self.remote_traceback = remote_traceback


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that was free a moment ago (bind to port 0, read it, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _check_backend(backend: str, device, world_size: int | None = None) -> str:
    """Validate ``backend`` for ``device`` (and, for NCCL on one machine, the GPU count)."""
    if backend not in _BACKENDS:
        raise TheorylabError(f"backend must be one of {_BACKENDS}, got {backend!r}")
    if backend == "nccl" and torch.device(device).type != "cuda":
        raise TheorylabError(
            f"backend 'nccl' needs device='cuda', got device={str(device)!r}; use backend='gloo' "
            "for CPU tensors"
        )
    if backend == "nccl" and world_size is not None and world_size > torch.cuda.device_count():
        # NCCL refuses two ranks on one GPU ("Duplicate GPU detected", seen on an H200 with
        # NCCL 2.28); fail here with the fix instead of inside the first collective.
        raise TheorylabError(
            f"backend 'nccl' needs one GPU per rank: world_size={world_size} but "
            f"{torch.cuda.device_count()} CUDA device(s) visible; use backend='gloo' with "
            "device='cuda' to run several ranks on one GPU"
        )
    return backend


def _init_group(backend, store, prefix, rank, world_size, device, timeout_s) -> None:
    """Initialise the default process group over ``store`` (keys under ``prefix``)."""
    dev = rank_device(device, rank)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    dist.init_process_group(
        backend,
        store=dist.PrefixStore(prefix, store),
        rank=rank,
        world_size=world_size,
        timeout=datetime.timedelta(seconds=timeout_s),
    )


def _error_payload(rank: int, exc: BaseException) -> tuple:
    return (
        "error",
        rank,
        type(exc).__name__,
        str(exc),
        "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)),
    )


def _loopback_interface() -> str | None:
    """Name of the loopback network interface (``lo`` on Linux, ``lo0`` on macOS), or ``None``."""
    try:
        names = [name for _, name in socket.if_nameindex()]
    except (OSError, AttributeError):  # no interface list on this platform
        return None
    for name in names:  # Linux: the interface whose flags carry IFF_LOOPBACK (0x8)
        try:
            with open(f"/sys/class/net/{name}/flags") as fh:
                if int(fh.read().strip(), 16) & 0x8:
                    return name
        except (OSError, ValueError):
            break  # no sysfs: fall back to the conventional names
    return next((n for n in ("lo", "lo0") if n in names), None)


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


def _describe_exit(exitcode: int | None) -> str:
    """How a process ended, from ``multiprocessing``'s ``exitcode`` (negative = signal number).

    ``-9`` -> ``'was killed by signal SIGKILL (9)'``, ``3`` -> ``'exited with code 3'``,
    ``None`` -> ``'closed its connection but has not exited'``.
    """
    if exitcode is None:
        return "closed its connection but has not exited"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = "an unknown signal"
        return f"was killed by signal {name} ({-exitcode})"
    return f"exited with code {exitcode}"


_STATES = {
    "T": "stopped by a signal (SIGSTOP or SIGTSTP)",
    "t": "stopped by a debugger",
    "R": "running (computing)",
    "S": "sleeping (e.g. waiting for another rank)",
    "D": "in uninterruptible I/O",
    "Z": "exited",
}


def _process_state(pid: int | None) -> str | None:
    """The operating system's state of process ``pid`` in words, or ``None`` if unknown.

    Read from ``/proc/PID/stat`` (Linux); ``None`` elsewhere or for a process that is gone.
    """
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read().decode("ascii", "replace")
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 1 :].split()  # the command name may contain spaces
    return _STATES.get(fields[0], f"in state {fields[0]!r}") if fields else None


def adopt_environment(env: dict | None) -> None:
    """Make this process's environment ``env`` (the parent's when it started this process).

    A fork of the fork server inherits the server's environment, frozen when the server
    started; the parent's may have changed since (``CUDA_VISIBLE_DEVICES``, ``OMP_NUM_THREADS``,
    ``THEORYLAB_*``), and a spawned process would have seen the new one.
    """
    if env is not None and dict(os.environ) != env:
        os.environ.clear()
        os.environ.update(env)


def _worker(rank, world_size, rendezvous, backend, device, timeout_s, threads, conn,
            env=None) -> None:  # fmt: skip
    """Body of one pool process: init the group, then serve tasks from ``conn`` until 'stop'.

    ``rendezvous`` is ``(host, port, prefix, gloo_ifname)``: the parent's store, the key prefix
    of this process group, and the network interface gloo must use (``None``: gloo's default).
    ``env`` is the parent's environment (:func:`adopt_environment`).
    """
    adopt_environment(env)
    conn.send_bytes(pickle.dumps(("up", rank)))  # imports done: start-up progress for the parent
    torch.set_num_threads(threads)
    host, port, prefix, gloo_ifname = rendezvous
    if gloo_ifname is not None:
        os.environ["GLOO_SOCKET_IFNAME"] = gloo_ifname  # the pool runs on one machine
    try:
        store = dist.TCPStore(
            host, port, None, False, datetime.timedelta(seconds=timeout_s), use_libuv=True
        )
        _init_group(backend, store, prefix, rank, world_size, device, timeout_s)
    except BaseException as exc:  # noqa: BLE001 - reported to the parent
        conn.send_bytes(pickle.dumps(_error_payload(rank, exc)))
        return
    conn.send_bytes(pickle.dumps(("ready", rank)))
    try:
        while True:
            try:
                msg = pickle.loads(conn.recv_bytes())
            except EOFError:  # parent went away
                return
            kind = msg[0]
            if kind == "stop":
                return
            if kind == "reinit":
                try:
                    if dist.is_initialized():
                        dist.destroy_process_group()
                    _init_group(backend, store, msg[1], rank, world_size, device, timeout_s)
                    conn.send_bytes(pickle.dumps(("ready", rank)))
                except BaseException as exc:  # noqa: BLE001
                    conn.send_bytes(pickle.dumps(_error_payload(rank, exc)))
                continue
            try:
                fn, args, kwargs = pickle.loads(msg[1])
                result = fn(rank, world_size, *args, **kwargs)
                payload = pickle.dumps(("ok", rank, result))
            except BaseException as exc:  # noqa: BLE001
                payload = pickle.dumps(_error_payload(rank, exc))
                # Closing this rank's connections makes peers blocked on it fail at once
                # ("connection closed by peer") instead of at the timeout; the parent then
                # re-creates the group on every rank.
                if dist.is_initialized():
                    dist.destroy_process_group()
            conn.send_bytes(payload)
            result = payload = None
            # a rank lives for the whole main job: keep it small between runs (no gc pass: the
            # next task would wait ~40 ms for it; reference counting freed the run's tensors)
            release_free_memory(collect=False)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
        conn.close()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)  # skip interpreter teardown (seconds with torch loaded); nothing is pending


def _start_processes(procs: list, limit_s: float, what: str) -> None:
    """``proc.start()`` for each of ``procs``, all within ``limit_s`` seconds.

    With the fork server, ``start`` waits for the server to fork the new process, and a server
    this start launched first imports its preload (torch): an import that hangs (a stuck file
    system, a lock) would block the caller for ever. The starts therefore run in a daemon
    thread. Past the limit, a fork server that this start launched and that has forked none of
    ``procs`` is killed (the pending starts then fail; nothing else came from it); a server
    that was already serving is left alone. Either way a :class:`DistributedError` names
    ``what`` did not start; so does a start that raises.
    """
    from multiprocessing import forkserver

    server = getattr(forkserver, "_forkserver", None)
    uses_server = bool(procs) and getattr(procs[0], "_start_method", None) == "forkserver"
    server_before = getattr(server, "_forkserver_pid", None) if uses_server else None
    done, failure = threading.Event(), []

    def start_all() -> None:
        try:
            for proc in procs:
                proc.start()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            failure.append(exc)
        finally:
            done.set()

    threading.Thread(target=start_all, name="verify-start", daemon=True).start()
    if not done.wait(limit_s):
        hung_server = uses_server and server_before is None and all(p.pid is None for p in procs)
        if hung_server:
            preload = getattr(server, "_preload_modules", None) or _PRELOAD
            _stop_fork_server()
            done.wait(10.0)
            raise DistributedError(
                f"starting {what} took more than {limit_s:g} s: the fork server (it imports "
                f"{', '.join(preload)} before forking) did not answer; it was stopped. "
                "THEORYLAB_START_METHOD=spawn starts each process as a fresh interpreter"
            )
        raise DistributedError(f"starting {what} took more than {limit_s:g} s")
    if failure:
        exc = failure[0]
        raise DistributedError(f"starting {what} failed: {type(exc).__name__}: {exc}") from exc


def _stop_fork_server() -> None:
    """Kill multiprocessing's fork server, if one runs (a hung preload ignores the polite stop);
    the next fork-server start launches a fresh one. Only for a server that has forked nothing:
    a process it forked is not this process's child, and looks dead once the server is gone."""
    from multiprocessing import forkserver

    server = getattr(forkserver, "_forkserver", None)
    pid = getattr(server, "_forkserver_pid", None)
    if pid is None:
        return
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        server._stop()  # closes its sockets, reaps it, forgets it
    except (OSError, ChildProcessError, AttributeError):
        pass


#: what the fork server imports once, before it forks the pool's ranks (and the main job's
#: second lane); ``torch.fx.experimental.symbolic_shapes`` (it imports sympy: ~0.3 s, ~35 MB):
#: torch's shape checks import it the first time a loss runs under ``vmap`` (the model
#: oracle), in every process that has not
_PRELOAD = [
    "torch",
    "torch.distributed",
    "torch.fx.experimental.symbolic_shapes",
    "numpy",
    "verify.runtime.launch",
    "verify.run",
]


def _rank_context():
    """The multiprocessing context of the pool's ranks: a fork server that has imported torch
    once (``forkserver``, preloading :data:`_PRELOAD`), where the platform has one.

    Each rank is then a fork of a process that already holds torch, instead of a fresh
    interpreter importing it (``spawn``): the pool starts in a fraction of the time, and the
    ranks share torch's memory copy-on-write. The fork server holds no process group and runs
    nothing but its preload's imports (its only other threads are the BLAS library's idle
    workers, which that library re-creates after a fork), so forking it is safe.
    ``THEORYLAB_START_METHOD=spawn`` (or a platform without ``forkserver``) uses ``spawn``.
    """
    method = os.environ.get("THEORYLAB_START_METHOD", "forkserver").strip() or "forkserver"
    if method not in ("forkserver", "spawn"):
        raise TheorylabError(
            f"THEORYLAB_START_METHOD must be 'forkserver' or 'spawn', got {method!r}"
        )
    if method == "forkserver" and "forkserver" in mp.get_all_start_methods():
        from multiprocessing import forkserver

        ctx = mp.get_context("forkserver")
        # the fork server is one per process: keep what its user asked it to preload too
        server = getattr(forkserver, "_forkserver", None)
        # ("__main__", multiprocessing's default, would import the user's script there)
        theirs = [
            m
            for m in getattr(server, "_preload_modules", None) or []
            if m not in _PRELOAD and m != "__main__"
        ]
        ctx.set_forkserver_preload([*theirs, *_PRELOAD])
        return ctx
    return mp.get_context("spawn")


class WorkerPool:
    """``world_size`` persistent processes sharing one process group, reused across calls.

    Parameters
    ----------
    world_size : int
        Number of ranks (>= 1).
    backend : {"gloo", "nccl"}, default ``"gloo"``
        ``"nccl"`` needs ``device="cuda"``; gloo moves CPU or CUDA tensors.
    device : str, default ``"cpu"``
        ``"cpu"`` or ``"cuda"`` (rank ``r`` uses ``cuda:(r % device_count)``).
    timeout_s : float, default 60
        Process-group timeout: the limit on every collective / point-to-point wait in the ranks.
    master_addr : str, default ``"127.0.0.1"``
        Address the rendezvous store (hosted by this process) listens on, and only on. With a
        loopback address gloo is also pinned to the loopback interface.
    port : int or None
        Rendezvous port; the operating system picks a free one when ``None``.
    threads : int, default 1
        ``torch.set_num_threads`` in each rank.
    start_timeout_s : float or None, default None
        Limit on starting the processes and the rendezvous; ``None``: ``max(120, 8 world_size)``
        seconds (16 ranks take about a minute to start on 2 CPU cores).
    grace_s : float, default 2
        After a rank fails, how long the others may take to finish before they are terminated.
    progress : callable(str) or None
        Called with start-up progress: ``'starting 16 gloo workers'``, then
        ``'starting 16 gloo workers: 5/16 up'`` as ranks finish importing (at most about once a
        second, and every 5 s while nothing changes), then ``'16 gloo workers ready after
        41.0 s'``; ``None``: silent.

    Raises
    ------
    DistributedError
        If the ranks do not start (the message names the rank and its error).

    Examples
    --------
    ::

        with WorkerPool(2) as pool:           # spawns 2 processes, inits gloo once
            pool.run(my_module.fn, 3)         # [fn(0, 2, 3), fn(1, 2, 3)]
            pool.run(my_module.other)
    """

    def __init__(
        self,
        world_size: int,
        backend: str = "gloo",
        device: str = "cpu",
        *,
        timeout_s: float = 60.0,
        master_addr: str = "127.0.0.1",
        port: int | None = None,
        threads: int = 1,
        start_timeout_s: float | None = None,
        grace_s: float = 2.0,
        progress: Callable[[str], None] | None = None,
    ):
        self.world_size = check_int("world_size", world_size, minimum=1)
        self.backend = _check_backend(backend, device, self.world_size)
        self.device = device
        self.timeout_s = check_positive("timeout_s", timeout_s)
        if not isinstance(master_addr, str) or not master_addr:
            raise TheorylabError(
                f"master_addr must be a host name or IP address, got {master_addr!r}"
            )
        self.master_addr = master_addr
        self.port = None if port is None else check_int("port", port, 1, 65535)
        self.threads = check_int("threads", threads, minimum=1)
        if start_timeout_s is None:
            start_timeout_s = max(120.0, 8.0 * self.world_size)
        self.start_timeout_s = check_positive("start_timeout_s", start_timeout_s)
        self.grace_s = check_positive("grace_s", grace_s, allow_zero=True)
        if progress is not None and not callable(progress):
            raise TypeError(f"progress must be callable or None, got {progress!r}")
        self._progress = progress
        self._ctx = _rank_context()
        self._procs: list = []
        self._conns: list = []
        self._store = None
        self._store_port: int | None = None
        self._generation = 0
        self._up = 0
        self._shown_at = 0.0
        self._started_at = 0.0
        self._start()

    # -- lifecycle ------------------------------------------------------------------------
    def _open_store(self) -> None:
        """Host the rendezvous store on a socket bound to ``master_addr`` (never the wildcard)."""
        if self._store is not None:
            return
        try:
            family, kind, proto, _, addr = socket.getaddrinfo(
                self.master_addr, self.port or 0, type=socket.SOCK_STREAM
            )[0]
            sock = socket.socket(family, kind, proto)
        except OSError as exc:
            raise TheorylabError(
                f"master_addr {self.master_addr!r} cannot be resolved: {exc}"
            ) from exc
        try:
            sock.bind(addr)
            sock.listen(max(128, 2 * self.world_size))
        except OSError as exc:
            sock.close()
            raise DistributedError(
                f"cannot listen on {self.master_addr}:{self.port or 0} for the rendezvous: {exc}"
            ) from exc
        self._store_port = int(sock.getsockname()[1])
        # the store takes ownership of the socket (it closes it when it is destroyed)
        self._store = dist.TCPStore(
            self.master_addr,
            self._store_port,
            None,
            True,
            datetime.timedelta(seconds=self.timeout_s),
            wait_for_workers=False,
            master_listen_fd=sock.detach(),
        )

    def _rendezvous(self) -> tuple:
        """``(host, port, prefix, gloo_ifname)`` for a new process group (a fresh key prefix)."""
        self._open_store()
        self._generation += 1
        ifname = None
        if self.backend == "gloo" and _is_loopback(self.master_addr):
            ifname = _loopback_interface()
        return (self.master_addr, self._store_port, f"pg{self._generation}/", ifname)

    def _show(self, message: str) -> None:
        if self._progress is not None:
            self._progress(message)

    def _start(self) -> None:
        rendezvous = self._rendezvous()
        self._up, self._started_at, self._shown_at = 0, time.monotonic(), time.monotonic()
        self._show(f"starting {self.world_size} {self.backend} workers")
        children = []
        for rank in range(self.world_size):
            parent, child = self._ctx.Pipe(duplex=True)
            proc = self._ctx.Process(
                target=_worker,
                args=(
                    rank,
                    self.world_size,
                    rendezvous,
                    self.backend,
                    self.device,
                    self.timeout_s,
                    self.threads,
                    child,
                    dict(os.environ),
                ),
                daemon=True,
                name=f"verify-rank-{rank}",
            )
            children.append(child)
            self._procs.append(proc)
            self._conns.append(parent)
        try:
            what = f"the {self.world_size} ranks (start_timeout_s)"
            _start_processes(self._procs, self.start_timeout_s, what)
        except BaseException:
            self._terminate()
            raise
        finally:
            for child in children:
                child.close()
        left = self.start_timeout_s - (time.monotonic() - self._started_at)
        self._await_ready("start-up", max(left, 1.0), heartbeat=True)
        elapsed = time.monotonic() - self._started_at
        self._show(f"{self.world_size} {self.backend} workers ready after {elapsed:.1f} s")

    def _start_progress(self, rank_up: bool) -> None:
        """Show start-up progress: when a rank is up (at most ~1/s), else every 5 s."""
        self._up += rank_up
        now = time.monotonic()
        due = 1.0 if rank_up else 5.0
        if (rank_up and self._up == self.world_size) or now - self._shown_at >= due:
            self._shown_at = now
            self._show(
                f"starting {self.world_size} {self.backend} workers: {self._up}/"
                f"{self.world_size} up"
            )

    def _await_ready(self, what: str, limit_s: float, heartbeat: bool = False) -> None:
        replies = self._collect(limit_s, grace_s=0.0, what=what, heartbeat=heartbeat)
        errors = [r for r in replies.values() if r[0] != "ready"]
        if errors or len(replies) < self.world_size:
            error = self._error(replies, what, limit_s)  # before terminating: it reads states
            self._terminate()
            raise error

    def _terminate(self) -> None:
        started = [proc for proc in self._procs if proc.pid is not None]
        for proc in started:
            if proc.is_alive():
                proc.terminate()
                _continue(proc)  # a stopped (SIGSTOP) process acts on SIGTERM only once resumed
        deadline = time.monotonic() + 5.0
        for proc in started:
            proc.join(max(0.0, deadline - time.monotonic()))
            if proc.is_alive():
                proc.kill()
                proc.join(5.0)
        for conn in self._conns:
            conn.close()
        self._procs, self._conns = [], []

    def close(self, timeout_s: float = 10.0) -> None:
        """Stop the ranks (politely, then by force after ``timeout_s``). Idempotent."""
        for conn in self._conns:
            try:
                conn.send_bytes(pickle.dumps(("stop",)))
            except (OSError, ValueError):
                pass
        deadline = time.monotonic() + timeout_s
        for proc in self._procs:
            proc.join(max(0.0, deadline - time.monotonic()))
        self._terminate()
        self._store = None  # stops the rendezvous server and closes its socket

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):  # pragma: no cover - best effort at interpreter exit
        try:
            self._terminate()
        except Exception:  # noqa: BLE001
            pass

    @property
    def alive(self) -> bool:
        """Whether all ranks are running (after a forced stop the next ``run`` restarts them)."""
        return bool(self._procs) and all(p.is_alive() for p in self._procs)

    def ensure_started(self) -> float:
        """Restart the ranks if a failure stopped them; the seconds it took (0 when running).

        :meth:`run` does this itself; call it first to keep the start-up out of a time budget.
        """
        if self.alive:
            return 0.0
        t0 = time.monotonic()
        self._terminate()
        self._start()
        return time.monotonic() - t0

    @property
    def pids(self) -> list[int]:
        """Process ids of the ranks, by rank (empty after a forced stop, until the next run)."""
        return [p.pid for p in self._procs]

    # -- running --------------------------------------------------------------------------
    def _died(self, rank: int) -> tuple:
        proc = self._procs[rank]
        proc.join(1.0)  # reap it, so the exit code (or the killing signal) is known
        return ("died", rank, proc.exitcode)

    def _collect(
        self, limit_s: float | None, grace_s: float, what: str, heartbeat: bool = False
    ) -> dict[int, tuple]:
        """Replies by rank until all answered, a failure plus ``grace_s``, or ``limit_s``.

        ``heartbeat``: start-up, show progress while waiting (see :meth:`_start_progress`).
        """
        replies: dict[int, tuple] = {}
        start = time.monotonic()
        deadline = None if limit_s is None else start + limit_s
        by_conn = {conn: rank for rank, conn in enumerate(self._conns)}
        by_sentinel = {proc.sentinel: rank for rank, proc in enumerate(self._procs)}
        while len(replies) < self.world_size:
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                break
            waiting = [c for c, r in by_conn.items() if r not in replies]
            waiting += [s for s, r in by_sentinel.items() if r not in replies]
            wait_s = None if deadline is None else deadline - now
            if heartbeat:
                wait_s = 1.0 if wait_s is None else min(wait_s, 1.0)
                self._start_progress(rank_up=False)
            ready = _wait_any(waiting, wait_s)
            for obj in ready:
                if obj in by_conn:
                    rank = by_conn[obj]
                    if rank in replies:
                        continue
                    try:
                        reply = pickle.loads(obj.recv_bytes())
                    except (EOFError, OSError):
                        replies[rank] = self._died(rank)
                        continue
                    if reply[0] == "up":  # start-up progress, not a reply
                        self._start_progress(rank_up=True)
                        continue
                    replies[rank] = reply
                else:
                    rank = by_sentinel[obj]
                    if rank not in replies:
                        conn = self._conns[rank]
                        if conn.poll(0):
                            continue  # its last reply is still in the pipe; read it first
                        replies[rank] = self._died(rank)
            failed = any(r[0] != "ok" and r[0] != "ready" for r in replies.values())
            if failed and len(replies) < self.world_size:
                grace_deadline = time.monotonic() + grace_s
                deadline = grace_deadline if deadline is None else min(deadline, grace_deadline)
        return replies

    def _error(
        self, replies: dict[int, tuple], what: str, limit_s: float | None
    ) -> DistributedError:
        """The error for a failed call; call it before terminating (it reads process states)."""
        failures = [r for r in replies.values() if r[0] in ("error", "died")]
        missing = [r for r in range(self.world_size) if r not in replies]
        lines = []
        first = None
        for reply in failures:
            if reply[0] == "error":
                _, rank, exc_type, exc_message, tb = reply
                lines.append(f"rank {rank} raised {exc_type}: {exc_message}")
                if first is None:
                    first = (rank, exc_type, exc_message, tb)
            else:
                _, rank, code = reply
                lines.append(f"rank {rank} {_describe_exit(code)} without a result")
                if first is None:
                    first = (rank, None, None, None)
        if missing:
            cause = "after another rank failed" if failures else f"within {round(limit_s, 1)} s"
            states = []
            for rank in missing:
                state = _process_state(self._procs[rank].pid) if rank < len(self._procs) else None
                if state is not None:
                    states.append(f"rank {rank} (pid {self._procs[rank].pid}) was {state}")
            lines.append(f"rank(s) {missing} did not finish {cause} and were terminated")
            if states:
                lines[-1] += " (" + "; ".join(states) + ")"
        message = f"{what} on {self.world_size} rank(s) failed: " + "; ".join(lines)
        if first is not None and first[3]:
            message += f"\n--- remote traceback of rank {first[0]} ---\n{first[3]}"
        rank, exc_type, exc_message, tb = first if first is not None else (None,) * 4
        return DistributedError(
            message, rank=rank, exc_type=exc_type, exc_message=exc_message, remote_traceback=tb
        )

    def run(self, fn, *args, run_timeout_s: float | None = None, **kwargs) -> list:
        """Run ``fn(rank, world_size, *args, **kwargs)`` on every rank; results by rank.

        Parameters
        ----------
        fn : callable
            A picklable (module-level) function; its result must be picklable.
        run_timeout_s : float or None
            Wall-clock limit on the whole call, not counting a restart of the ranks (``None``:
            none; communication waits inside the ranks are still bounded by the pool's
            ``timeout_s``, but a rank computing forever is not).

        Raises
        ------
        DistributedError
            If a rank raises, dies (the message names the signal that killed it), or the call
            exceeds ``run_timeout_s`` (the message gives each missing rank's process state, e.g.
            stopped). The pool stays usable: its process group is re-created, or its processes
            restarted on the next call.
        """
        if run_timeout_s is not None:
            run_timeout_s = check_positive("run_timeout_s", run_timeout_s)
        self.ensure_started()
        task = pickle.dumps(("run", pickle.dumps((fn, args, kwargs))))
        for conn in self._conns:
            conn.send_bytes(task)
        replies = self._collect(run_timeout_s, self.grace_s, f"{getattr(fn, '__name__', fn)}")
        if len(replies) == self.world_size and all(r[0] == "ok" for r in replies.values()):
            return [replies[r][2] for r in range(self.world_size)]
        error = self._error(replies, f"{getattr(fn, '__name__', fn)!s}", run_timeout_s)
        if len(replies) == self.world_size and all(
            r[0] in ("ok", "error") for r in replies.values()
        ):
            # every rank is back in its loop: a fresh process group drops any unmatched message
            try:
                reinit = pickle.dumps(("reinit", self._rendezvous()[2]))
                for conn in self._conns:
                    conn.send_bytes(reinit)
                self._await_ready("process-group re-creation", self.start_timeout_s)
            except (DistributedError, OSError):
                self._terminate()
        else:
            self._terminate()  # ranks stuck in communication: restart on the next call
        raise error


def _continue(proc) -> None:
    """Send SIGCONT to ``proc`` (POSIX), so a stopped process acts on a pending signal."""
    sigcont = getattr(signal, "SIGCONT", None)
    if sigcont is not None and proc.pid is not None:
        try:
            os.kill(proc.pid, sigcont)
        except OSError:
            pass


def launch(
    fn,
    world_size: int,
    *args,
    backend: str = "gloo",
    device: str = "cpu",
    timeout_s: float = 60.0,
    master_addr: str = "127.0.0.1",
    run_timeout_s: float | None = None,
    **kwargs,
) -> list:
    """Run ``fn(rank, world_size, *args, **kwargs)`` once on ``world_size`` fresh processes.

    One process per rank (``spawn``), rendezvous over TCP on ``master_addr`` with a free port,
    process group ``backend`` with timeout ``timeout_s``; results come back by rank. For many calls
    use a :class:`WorkerPool` (start-up costs seconds).

    Parameters
    ----------
    fn : callable
        Picklable module-level function ``fn(rank, world_size, *args, **kwargs)``.
    world_size : int
        Number of ranks.
    backend, device, timeout_s, master_addr
        As for :class:`WorkerPool`.
    run_timeout_s : float or None
        Wall-clock limit on ``fn`` (after start-up); ``None`` for none.

    Returns
    -------
    list
        ``[fn(0, ...), ..., fn(world_size - 1, ...)]``.

    Raises
    ------
    DistributedError
        Naming the rank and its exception type and message (with the remote traceback) if a rank
        raises, dies or times out; the other ranks are terminated.

    Examples
    --------
    ::

        results = launch(my_module.fn, 2, 3.0)    # [fn(0, 2, 3.0), fn(1, 2, 3.0)]
    """
    with WorkerPool(
        world_size, backend, device, timeout_s=timeout_s, master_addr=master_addr
    ) as pool:
        return pool.run(fn, *args, run_timeout_s=run_timeout_s, **kwargs)


def init_from_env(
    backend: str = "gloo", device: str = "cpu", timeout_s: float = 60.0
) -> tuple[int, int]:
    """Initialise the process group of a rank started by ``torchrun``; returns ``(rank, world)``.

    Reads ``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT`` (set by ``torchrun``) and
    initialises ``backend`` with timeout ``timeout_s``; with ``device="cuda"`` the rank's CUDA
    device is ``LOCAL_RANK % device_count``.

    Raises
    ------
    TheorylabError
        If a variable is missing (not started by ``torchrun``) or the backend does not fit the
        device.
    """
    _check_backend(backend, device)
    check_positive("timeout_s", timeout_s)
    missing = [
        v for v in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT") if v not in os.environ
    ]
    if missing:
        raise TheorylabError(
            f"environment variable(s) {missing} are not set; start this script with torchrun "
            "(e.g. `torchrun --standalone --nproc-per-node=2 -m verify.runtime.entry ...`)"
        )
    rank, world_size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    dev = rank_device(device, local_rank)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if not dist.is_initialized():
        dist.init_process_group(
            backend, init_method="env://", timeout=datetime.timedelta(seconds=timeout_s)
        )
    return rank, world_size
