"""Calibrate the alpha-beta communication model on the distributed executor.

Hockney's model (see :mod:`theorylab.cost`) prices one message of ``b`` bytes at
``alpha + beta b`` seconds (``alpha`` latency, ``beta`` inverse bandwidth, s/byte). This module
measures it on the real runtime: rank 0 and rank 1 of a :class:`verify.runtime.WorkerPool` play
ping-pong (rank 0 sends ``b`` bytes, rank 1 receives them and sends them back) for message sizes
from 8 B to 4 MiB (log-spaced; every trial visits all sizes in a seeded shuffled order), after a
warm-up; per size the **median** round trip over ``repeats`` trials is kept (or the minimum,
``statistic="min"``) and the one-way time is ``round trip / 2``. The one-way times are fitted
by ordinary least squares with :func:`theorylab.cost.calibrate_alpha_beta`.

As a validation point the module then times the actual gossip exchange,
:meth:`verify.runtime.DistributedCommunicator.mix` on a ring of ``world_size`` nodes, and compares
its median exchange time per round (``comm_s``: posting and waiting, not the local combination)
with :func:`theorylab.cost.round_time` under the fitted model (``compute_s = 0``) for the ring's
degree (2, or 1 when ``world_size = 2``: both ring neighbours are the same node).
``mix`` posts all its sends and receives at once (``batch_isend_irecv``), so the measured round
is expected between the model's ``"parallel"`` and ``"sequential"`` predictions; both are reported.

The fit is a measurement, not a bound: on a shared machine the timings are noisy (the median
damps outliers), and a loopback link is not a network. ``alpha`` is determined by the small
messages and is the least precise coefficient (an OLS intercept); read ``r2`` and
``rms_residual_s`` before trusting it.

References
----------
R. W. Hockney, "The communication challenge for MPP: Intel Paragon and Meiko CS-2", Parallel
Computing 20 (1994) 389-398 (the alpha-beta model and its ping-pong calibration).
"""

from __future__ import annotations

import dataclasses
import datetime
import statistics
import time

import numpy as np
import torch
import torch.distributed as dist

from theorylab.cost import AlphaBetaFit, CommModel, calibrate_alpha_beta, round_time
from theorylab.errors import TheorylabError, check_int, check_positive

__all__ = ["Calibration", "measure_alpha_beta", "DEFAULT_SIZES"]

#: Message sizes in bytes: 8 B to 4 MiB, a factor 8 apart (log-spaced).
DEFAULT_SIZES = (8, 64, 512, 4096, 32768, 262144, 2097152, 4194304)

_STATISTICS = {"median": statistics.median, "min": min}


@dataclasses.dataclass(frozen=True)
class Calibration:
    """Result of :func:`measure_alpha_beta`.

    Attributes
    ----------
    fit : theorylab.cost.AlphaBetaFit
        ``alpha`` (s), ``beta`` (s/byte), RMS residual (s) and number of points.
    r2 : float
        Coefficient of determination of the fit on the one-way medians (1 = perfect affine cost).
    table : list of dict
        Per size: ``bytes``, ``round_trip_s`` (the chosen statistic), ``round_trip_median_s``,
        ``round_trip_min_s``, ``round_trip_max_s``, ``one_way_s`` (``round_trip_s / 2``, the
        fitted value) and ``predicted_s`` (``alpha + beta b``).
    ring : dict
        The validation point: ``n``, ``degree``, ``bytes`` per message, ``measured_s`` (the
        statistic over rounds of the slowest rank's ``mix`` exchange seconds),
        ``predicted_sequential_s``, ``predicted_parallel_s`` and ``ratio_sequential``
        (measured / predicted, sequential sends).
    world_size, repeats, warmup : int
    backend, device, statistic : str
    """

    fit: AlphaBetaFit
    r2: float
    table: list
    ring: dict
    world_size: int
    repeats: int
    warmup: int
    backend: str
    device: str
    statistic: str

    @property
    def alpha(self) -> float:
        return self.fit.alpha

    @property
    def beta(self) -> float:
        return self.fit.beta

    def to_dict(self) -> dict:
        return {
            "alpha": self.fit.alpha,
            "beta": self.fit.beta,
            "rms_residual_s": self.fit.rms_residual_s,
            "points": self.fit.points,
            "r2": self.r2,
            "world_size": self.world_size,
            "repeats": self.repeats,
            "warmup": self.warmup,
            "backend": self.backend,
            "device": self.device,
            "statistic": self.statistic,
            "table": [dict(row) for row in self.table],
            "ring": dict(self.ring),
        }


# -- rank bodies (module level: they travel to the ranks by pickle) ----------------------------
def _wait(work, timeout: datetime.timedelta, what: str) -> None:
    try:
        work.wait(timeout)
    except RuntimeError as exc:
        raise RuntimeError(f"{what} failed or timed out (timeout {timeout}): {exc}") from exc


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _ping_pong(rank, world_size, sizes, repeats, warmup, device, timeout_s, seed):
    """Round-trip seconds per size between ranks 0 and 1 (rank 0's clock; others return None).

    Sizes are interleaved (each trial times every size once, in an order shuffled by a
    generator seeded with ``seed``, the same on both ranks) so that a burst of load, or a periodic
    delay in phase with the loop, hits all sizes alike instead of biasing some of them.
    """
    from verify.runtime.distributed import rank_device

    dev = rank_device(device, rank)
    timeout = datetime.timedelta(seconds=timeout_s)
    peer = 1 - rank
    bufs = {size: torch.zeros(size, dtype=torch.uint8, device=dev) for size in sizes}
    out = {size: [] for size in sizes}
    rng = np.random.default_rng(seed)
    dist.barrier()
    if rank <= 1:
        for trial in range(warmup + repeats):
            for size in rng.permutation(np.array(sizes)).tolist():
                buf = bufs[size]
                t0 = time.perf_counter()
                if rank == 0:
                    _wait(dist.isend(buf, peer), timeout, f"rank 0: send of {size} B")
                    _wait(dist.irecv(buf, peer), timeout, f"rank 0: receive of {size} B")
                else:
                    _wait(dist.irecv(buf, peer), timeout, f"rank 1: receive of {size} B")
                    _wait(dist.isend(buf, peer), timeout, f"rank 1: send of {size} B")
                _sync(dev)
                if trial >= warmup:
                    out[size].append(time.perf_counter() - t0)
    dist.barrier()
    return out if rank == 0 else None


def _ring_rounds(rank, world_size, numel, repeats, warmup, device, timeout_s):
    """Exchange seconds of each ``mix`` round on a ring of ``world_size`` nodes (this rank)."""
    from verify.runtime.distributed import DistributedCommunicator, rank_device

    n = world_size
    W = np.zeros((n, n))
    for i in range(n):
        for j in {(i - 1) % n, i, (i + 1) % n}:
            W[i, j] = 1.0
        W[i] /= W[i].sum()
    comm = DistributedCommunicator([W], device=device, dtype=torch.float64, timeout_s=timeout_s)
    x = torch.ones(1, 1, numel, dtype=torch.float64, device=rank_device(device, rank))
    times = []
    for k in range(warmup + repeats):
        dist.barrier()
        before = comm.comm_s  # seconds in the exchange (posting and waiting), not the combination
        comm.mix(x, k)
        if k >= warmup:
            times.append(comm.comm_s - before)
    return times


# -- public API --------------------------------------------------------------------------------
def measure_alpha_beta(
    world_size: int = 2,
    sizes=DEFAULT_SIZES,
    repeats: int = 20,
    backend: str = "gloo",
    device: str = "cpu",
    pool=None,
    *,
    warmup: int = 3,
    ring_bytes: int = 1_048_576,
    timeout_s: float = 30.0,
    statistic: str = "median",
    seed: int = 0,
) -> Calibration:
    """Measure latency ``alpha`` and inverse bandwidth ``beta`` by ping-pong on the real runtime.

    For each ``b`` in ``sizes``: ``warmup`` untimed then ``repeats`` timed round trips
    (rank 0 ``isend`` -> rank 1 ``irecv``, rank 1 ``isend`` -> rank 0 ``irecv``, every wait bounded
    by ``timeout_s``); one-way time ``t_b = statistic(round trips) / 2`` (median or min). Then
    ordinary least squares ``t_b ~ alpha + beta b`` (:func:`theorylab.cost.calibrate_alpha_beta`).
    Finally the validation point: the ``statistic`` of ``repeats`` rounds of
    ``DistributedCommunicator.mix`` on a ring of ``world_size`` nodes with ``ring_bytes``-byte
    messages (float64), against
    ``round_time(degree, CommModel(alpha, beta, ring_bytes, compute_s=0))``.

    This is a measurement (a fit of a model to timings), not a bound.

    Parameters
    ----------
    world_size : int >= 2, default 2
        Ranks; ping-pong runs between ranks 0 and 1, the ring uses all of them.
    sizes : sequence of int >= 1
        Message sizes in bytes, at least two distinct (default :data:`DEFAULT_SIZES`,
        8 B to 4 MiB).
    repeats : int >= 1, default 20
        Timed trials per size (and timed ``mix`` rounds).
    backend : {"gloo", "nccl"}, default "gloo"
    device : str, default "cpu"
        Where the message tensors live (``"cuda"`` for NCCL).
    pool : verify.runtime.WorkerPool or None
        A running pool of ``world_size`` ranks to reuse; ``None`` starts (and closes) one.
    warmup : int >= 0, default 3
        Untimed trials first (each trial visits every size once, in a shuffled order; the
        ``mix`` validation rounds likewise).
    ring_bytes : int >= 8, default 1 MiB
        Bytes of one ``mix`` message (rounded down to whole float64 values).
    timeout_s : float > 0, default 30
        Limit on every send/receive wait in the ranks.
    statistic : {"median", "min"}, default "median"
        How the ``repeats`` round trips of a size (and the ``mix`` rounds) are reduced. On a
        busy machine the round trips are bimodal (about 0.1 ms, or a few ms when a rank waits
        for a CPU), and the median can land in the slow mode for some sizes and not others;
        ``"min"`` then estimates the link itself. The table always holds both.
    seed : int >= 0, default 0
        Seeds the shuffled order in which each trial visits the sizes.

    Returns
    -------
    Calibration
        The fit, its ``r2``, the raw per-size table and the ring validation point.

    Raises
    ------
    TheorylabError
        Bad arguments, or a ``pool`` whose world size differs from ``world_size``.
    verify.runtime.DistributedError
        If a rank fails or a wait times out.

    Example
    -------
    ::

        cal = measure_alpha_beta()                # 2 gloo ranks on this machine
        print(cal.alpha, cal.beta, cal.r2, cal.ring["measured_s"])
    """
    world_size = check_int("world_size", world_size, minimum=2)
    sizes = tuple(sorted({check_int("sizes[i]", s, minimum=1) for s in sizes}))
    if len(set(sizes)) < 2:
        raise TheorylabError(
            f"sizes must hold at least two distinct message sizes, got {sizes}; use e.g. "
            "DEFAULT_SIZES (8 B to 4 MiB)"
        )
    repeats = check_int("repeats", repeats, minimum=1)
    warmup = check_int("warmup", warmup, minimum=0)
    ring_bytes = check_int("ring_bytes", ring_bytes, minimum=8)
    timeout_s = check_positive("timeout_s", timeout_s)
    if statistic not in _STATISTICS:
        raise TheorylabError(
            f"statistic must be one of {tuple(_STATISTICS)}, got {statistic!r}; 'min' is robust "
            "to scheduling delays on a busy machine"
        )
    seed = check_int("seed", seed, minimum=0)
    opts = (sizes, repeats, warmup, ring_bytes, timeout_s, statistic, seed)
    if pool is not None:
        if pool.world_size != world_size:
            raise TheorylabError(
                f"pool has world size {pool.world_size} but world_size={world_size}; pass a "
                f"pool of {world_size} ranks or world_size={pool.world_size}"
            )
        return _measure(pool, *opts)
    from verify.runtime.launch import WorkerPool

    with WorkerPool(world_size, backend, device, timeout_s=timeout_s) as own:
        return _measure(own, *opts)


def _measure(pool, sizes, repeats, warmup, ring_bytes, timeout_s, statistic, seed) -> Calibration:
    world_size, device = pool.world_size, pool.device
    rtts = pool.run(_ping_pong, sizes, repeats, warmup, device, timeout_s, seed)[0]
    reduce = _STATISTICS[statistic]
    table = []
    for size in sizes:
        rt = rtts[size]
        table.append({
            "bytes": size, "round_trip_s": reduce(rt), "round_trip_median_s": statistics.median(rt),
            "round_trip_min_s": min(rt), "round_trip_max_s": max(rt), "one_way_s": reduce(rt) / 2,
        })  # fmt: skip
    fit = calibrate_alpha_beta([(row["bytes"], row["one_way_s"]) for row in table])
    s = np.array([row["one_way_s"] for row in table])
    pred = fit.alpha + fit.beta * np.array([row["bytes"] for row in table], dtype=float)
    for row, p in zip(table, pred):
        row["predicted_s"] = float(p)
    ss_tot = float(np.sum((s - s.mean()) ** 2))
    r2 = 1.0 - float(np.sum((s - pred) ** 2)) / ss_tot if ss_tot > 0 else float("nan")

    numel = ring_bytes // 8
    per_rank = pool.run(_ring_rounds, numel, repeats, warmup, device, timeout_s)
    # a synchronous round lasts as long as its slowest rank
    measured = reduce([max(ts) for ts in zip(*per_rank)])
    degree = min(2, world_size - 1)
    nbytes = numel * 8
    seq = round_time(degree, CommModel(fit.alpha, fit.beta, nbytes, 0.0, "sequential"))
    par = round_time(degree, CommModel(fit.alpha, fit.beta, nbytes, 0.0, "parallel"))
    ring = {
        "n": world_size, "degree": degree, "bytes": nbytes, "measured_s": measured,
        "predicted_sequential_s": seq, "predicted_parallel_s": par,
        "ratio_sequential": measured / seq if seq > 0 else float("inf"),
    }  # fmt: skip
    return Calibration(
        fit=fit, r2=r2, table=table, ring=ring, world_size=world_size, repeats=repeats,
        warmup=warmup, backend=pool.backend, device=str(device), statistic=statistic,
    )  # fmt: skip


if __name__ == "__main__":  # pragma: no cover - manual use: python -m verify.calibrate
    import json

    print(json.dumps(measure_alpha_beta().to_dict(), indent=2))
