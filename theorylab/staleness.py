r"""Staleness of asynchronous SGD: statistics of a trace and the prediction for a speed model.

The math: a parameter server applies gradients one at a time; the gradient applied as update k
was computed at the model of version ``r_k`` (the number of updates applied when its worker read
the model), so its staleness is ``tau_k = k - r_k >= 0`` and the update is
``x_{k+1} = x_k - gamma g(x_{r_k})``. Statistics: ``tau_max = max_k tau_k``,
``tau_avg = (1/K) sum_k tau_k``, the empirical distribution, and the share ``p_i`` of applied
gradients that came from worker i.

Speed model (the arrival order of a parameter server): n workers, each always holding exactly
one gradient in flight; worker i's j-th gradient takes ``c_{i,j}`` seconds; when it arrives the
server applies it at once and the worker reads the new model and starts the next one. Ties in
arrival time are broken by worker index. Two facts follow (both tested):

* **equal deterministic speeds**: after the first n updates every staleness is exactly
  ``n - 1`` (the first round gives 0, 1, ..., n - 1);
* **exponential compute times** with rates ``lambda_i`` (speed = 1/mean time): by
  memorylessness the other workers' arrivals during worker i's computation form a Poisson
  process of rate ``Lambda - lambda_i`` (``Lambda = sum_j lambda_j``), so worker i's staleness is
  geometric, ``P(tau = k | i) = (1 - q_i)^k q_i`` with ``q_i = lambda_i / Lambda``, and the
  share of applied gradients from worker i is ``q_i``. Hence the exact stationary law
  ``P(tau = k) = sum_i q_i^2 (1 - q_i)^k`` with mean ``sum_i (1 - q_i) = n - 1``.

In general ``tau_avg -> n - 1``: each applied update adds 1 to the staleness of the n - 1 other
gradients in flight, so ``sum_k tau_k = (n - 1) K - (staleness held by the gradients still in
flight at the end)``. For fixed (deterministic) speeds the event simulation *is* exact; for other
random models :func:`predicted_staleness` states its accuracy.

References
----------
Mishchenko, Bach, Even, Woodworth, "Asynchronous SGD beats minibatch SGD under arbitrary
delays", NeurIPS 2022, arXiv 2206.07638 (the always-busy worker model, delay = ``k - r_k``).
Koloskova, Stich, Jaggi, "Sharper convergence guarantees for asynchronous SGD for distributed and
federated learning", NeurIPS 2022, arXiv 2206.08307 (tau_max and tau_avg).
"""

from __future__ import annotations

import heapq
import math
import numbers
from dataclasses import dataclass, field

import numpy as np

from theorylab.errors import TheorylabError, check_int, check_positive

__all__ = [
    "StalenessStats",
    "staleness_stats",
    "ArrivalTrace",
    "simulate_arrivals",
    "simulate_speed_model",
    "applied_shares",
    "predicted_staleness",
]

_MODELS = ("fixed", "exponential")


@dataclass(frozen=True)
class StalenessStats:
    """Statistics of a staleness trace.

    Attributes
    ----------
    count : int, number of applied gradients K.
    tau_max : int; tau_avg : float.
    pmf : ndarray, ``pmf[k]`` = fraction of updates with staleness k, k = 0..tau_max.
    shares : ndarray or None, fraction of applied gradients per worker (when workers given).
    per_worker_tau_avg : ndarray or None (nan for a worker with no update).
    """

    count: int
    tau_max: int
    tau_avg: float
    pmf: np.ndarray
    shares: np.ndarray | None = None
    per_worker_tau_avg: np.ndarray | None = None

    def quantile(self, q: float) -> int:
        """Smallest k with ``P(tau <= k) >= q``."""
        q = check_positive("q", q)
        if q > 1:
            raise TheorylabError(f"q must be in (0, 1], got {q}")
        return int(np.searchsorted(np.cumsum(self.pmf), q - 1e-12))

    def to_dict(self) -> dict:
        d = {
            "count": self.count,
            "tau_max": self.tau_max,
            "tau_avg": self.tau_avg,
            "pmf": [float(v) for v in self.pmf],
        }
        if self.shares is not None:
            d["shares"] = [float(v) for v in self.shares]
            d["per_worker_tau_avg"] = [float(v) for v in self.per_worker_tau_avg]
        return d


def _check_trace(trace) -> np.ndarray:
    arr = np.asarray(trace)
    if arr.ndim != 1 or arr.size == 0:
        raise TheorylabError(f"trace must be a non-empty 1-D sequence of delays, got {trace!r}")
    if not (np.issubdtype(arr.dtype, np.integer) or np.all(np.equal(np.mod(arr, 1), 0))):
        raise TypeError(f"delays must be integers (update counts), got {arr[:5].tolist()}...")
    arr = arr.astype(np.int64)
    if np.any(arr < 0):
        bad = int(arr[np.argmax(arr < 0)])
        raise TheorylabError(f"delays must be >= 0 (tau_k = k - r_k), got {bad}")
    return arr


def staleness_stats(trace, workers=None, n: int | None = None) -> StalenessStats:
    """tau_max, tau_avg, distribution (and per-worker shares) of a staleness trace.

    Parameters
    ----------
    trace : sequence of int >= 0, the staleness tau_k of every applied gradient.
    workers : sequence of int in [0, n), optional, the worker of every applied gradient.
    n : int >= 1, number of workers (default ``max(workers) + 1``).

    Raises
    ------
    TheorylabError, TypeError
        An empty trace, a negative or non-integer delay, workers of another length.

    Example
    -------
    >>> s = staleness_stats([0, 1, 2, 2, 2])
    >>> s.tau_max, s.tau_avg, s.pmf.tolist()
    (2, 1.4, [0.2, 0.2, 0.6])
    """
    tau = _check_trace(trace)
    pmf = np.bincount(tau) / tau.size
    shares = per = None
    if workers is not None:
        w = np.asarray(workers)
        if w.shape != tau.shape or not np.issubdtype(w.dtype, np.integer) or np.any(w < 0):
            raise TheorylabError("workers must be non-negative ints, one per entry of trace")
        n = int(w.max()) + 1 if n is None else check_int("n", n, minimum=int(w.max()) + 1)
        counts = np.bincount(w, minlength=n)
        shares = counts / tau.size
        sums = np.bincount(w, weights=tau, minlength=n)
        with np.errstate(invalid="ignore", divide="ignore"):
            per = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    return StalenessStats(
        count=int(tau.size),
        tau_max=int(tau.max()),
        tau_avg=float(tau.mean()),
        pmf=pmf,
        shares=shares,
        per_worker_tau_avg=per,
    )


@dataclass(frozen=True)
class ArrivalTrace:
    """Arrival order of a parameter server (see the module docstring).

    Attributes (one entry per applied update k = 0..K-1)
    ----------------------------------------------------
    worker : ndarray of int; read_version : ndarray of int (r_k); staleness : k - r_k;
    time : ndarray of float, arrival time. ``n`` the number of workers.
    """

    worker: np.ndarray
    read_version: np.ndarray
    staleness: np.ndarray
    time: np.ndarray
    n: int
    meta: dict = field(default_factory=dict)

    def stats(self, skip: int = 0) -> StalenessStats:
        """:func:`staleness_stats` of the updates from ``skip`` on (e.g. skip a warm-up)."""
        skip = check_int("skip", skip, minimum=0, maximum=self.worker.size - 1)
        return staleness_stats(self.staleness[skip:], self.worker[skip:], n=self.n)


def simulate_arrivals(compute_times, n_updates: int) -> ArrivalTrace:
    """Event simulation of the always-busy parameter server (virtual clock, exact).

    ``compute_times[i][j]`` is the duration of worker i's j-th gradient. A heap of
    ``(finish time, worker, read version)`` gives the next arrival; ties by worker index.

    Parameters
    ----------
    compute_times : sequence of n 1-D arrays of positive floats (each long enough).
    n_updates : int >= 1.

    Raises
    ------
    TheorylabError
        Non-positive or non-finite compute times, or a worker runs out of compute times.

    Example
    -------
    >>> tr = simulate_arrivals([[1.0] * 3] * 3, 6)
    >>> tr.staleness.tolist(), tr.worker.tolist()
    ([0, 1, 2, 2, 2, 2], [0, 1, 2, 0, 1, 2])
    """
    n_updates = check_int("n_updates", n_updates, minimum=1)
    times = [np.asarray(c, dtype=float).ravel() for c in compute_times]
    n = len(times)
    if n < 1:
        raise TheorylabError("compute_times must hold at least one worker")
    for i, c in enumerate(times):
        if c.size == 0 or not np.all(np.isfinite(c)) or np.any(c <= 0):
            raise TheorylabError(f"compute_times[{i}] must be positive finite durations")
    used = [1] * n
    heap = [(times[i][0], i, 0) for i in range(n)]
    heapq.heapify(heap)
    worker = np.empty(n_updates, dtype=np.int64)
    read = np.empty(n_updates, dtype=np.int64)
    arrival = np.empty(n_updates)
    for k in range(n_updates):
        t, i, r = heapq.heappop(heap)
        worker[k], read[k], arrival[k] = i, r, t
        if k + 1 < n_updates:
            if used[i] >= times[i].size:
                raise TheorylabError(
                    f"worker {i} ran out of compute times after {used[i]}; pass longer arrays"
                )
            heapq.heappush(heap, (t + times[i][used[i]], i, k + 1))
            used[i] += 1
    return ArrivalTrace(worker, read, np.arange(n_updates) - read, arrival, n)


def _check_speeds(speeds) -> np.ndarray:
    if isinstance(speeds, numbers.Number):
        raise TypeError("speeds must be a sequence of per-worker speeds, e.g. [1.0, 1.0, 0.1]")
    s = np.asarray(speeds, dtype=float).ravel()
    if s.size == 0:
        raise TheorylabError("speeds must hold at least one worker")
    for i, v in enumerate(s):
        if not math.isfinite(v) or v <= 0:
            raise TheorylabError(f"speeds[{i}] must be a finite speed > 0 (gradients/s), got {v}")
    return s


def simulate_speed_model(
    speeds, n_updates: int, *, model: str = "fixed", seed: int | None = None
) -> ArrivalTrace:
    """:func:`simulate_arrivals` for n workers with the given speeds (gradients per second).

    ``model='fixed'``: worker i takes exactly ``1/speeds[i]`` s per gradient (deterministic; no
    seed needed). ``model='exponential'``: i.i.d. Exp times of mean ``1/speeds[i]``, drawn from
    ``np.random.default_rng(SeedSequence(seed).spawn(n)[i])`` (one stream per worker).
    A straggler is one small speed, e.g. ``[1, 1, 1, 0.1]``.

    Example
    -------
    >>> simulate_speed_model([1.0, 1.0, 1.0, 1.0], 12).stats(skip=4).tau_max
    3
    """
    s = _check_speeds(speeds)
    n_updates = check_int("n_updates", n_updates, minimum=1)
    if model not in _MODELS:
        raise TheorylabError(f"model must be one of {_MODELS}, got {model!r}")
    # each worker can apply at most n_updates gradients
    if model == "fixed":
        need = np.minimum(n_updates, np.ceil(n_updates * s / s.sum()).astype(int) + s.size + 2)
        times = [np.full(int(m), 1.0 / v) for m, v in zip(need, s, strict=True)]
    else:
        if seed is None:
            raise TheorylabError("model='exponential' needs an explicit integer seed")
        seed = check_int("seed", seed, minimum=0)
        streams = np.random.SeedSequence(seed).spawn(s.size)
        times = [
            np.random.default_rng(ss).exponential(1.0 / v, size=n_updates)
            for ss, v in zip(streams, s, strict=True)
        ]
    tr = simulate_arrivals(times, n_updates)
    return ArrivalTrace(
        tr.worker,
        tr.read_version,
        tr.staleness,
        tr.time,
        tr.n,
        {"speeds": s.tolist(), "model": model, "seed": seed},
    )


def applied_shares(speeds) -> np.ndarray:
    """Long-run share ``p_i = speed_i / sum_j speed_j`` of applied gradients from worker i.

    Renewal theorem: an always-busy worker completes ``1/E[c_i] = speed_i`` gradients per
    second, whatever the law of its compute times (fixed or exponential). **Tight** in the limit
    of many updates.

    Example
    -------
    >>> applied_shares([1.0, 1.0, 2.0]).tolist()
    [0.25, 0.25, 0.5]
    """
    s = _check_speeds(speeds)
    return s / s.sum()


def predicted_staleness(
    speeds,
    *,
    model: str = "exponential",
    k_max: int | None = None,
    n_updates: int = 100_000,
) -> StalenessStats:
    r"""Predicted stationary staleness distribution for n always-busy workers with ``speeds``.

    ``model='exponential'``: the **exact** law ``P(tau = k) = sum_i q_i^2 (1 - q_i)^k``,
    ``q_i = speed_i / sum_j speed_j`` (module docstring), on k = 0..k_max (default: until the
    tail mass is below 1e-12; the tail is added to the last entry); ``tau_avg = n - 1`` exactly
    (of the untruncated law); ``tau_max`` is unbounded and reported as the k_max used.

    ``model='fixed'``: the deterministic event simulation over ``n_updates`` updates after a
    warm-up of ``10 n`` updates. It is exact for that window; it differs from the long-run law
    only by the boundary effect, ``|tau_avg - (n - 1)| <= n tau_max / n_updates``.

    Example
    -------
    >>> s = predicted_staleness([1.0, 1.0])
    >>> round(float(s.pmf[0]), 6), round(s.tau_avg, 6)  # two equal exponential workers: Geom(1/2)
    (0.5, 1.0)
    """
    s = _check_speeds(speeds)
    if model not in _MODELS:
        raise TheorylabError(f"model must be one of {_MODELS}, got {model!r}")
    n = s.size
    q = s / s.sum()
    if model == "exponential":
        if n == 1:
            return StalenessStats(1, 0, 0.0, np.array([1.0]), np.array([1.0]), np.array([0.0]))
        if k_max is None:
            worst = float(np.max(1.0 - q))
            k_max = int(math.ceil(math.log(1e-12) / math.log(worst))) if worst > 0 else 0
        k_max = check_int("k_max", k_max, minimum=0)
        k = np.arange(k_max + 1)
        pmf = np.sum(q[:, None] ** 2 * (1.0 - q[:, None]) ** k[None, :], axis=0)
        pmf[-1] += max(0.0, 1.0 - pmf.sum())
        return StalenessStats(
            count=0,
            tau_max=k_max,
            tau_avg=float(np.sum(1.0 - q)),
            pmf=pmf,
            shares=q,
            per_worker_tau_avg=(1.0 - q) / q,
        )
    n_updates = check_int("n_updates", n_updates, minimum=1)
    warm = 10 * n
    tr = simulate_speed_model(s, n_updates + warm, model="fixed")
    return tr.stats(skip=warm)
