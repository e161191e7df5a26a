"""Cost of run_simulated's measurement at its default checkpoints (issue 13, section 3).

The simulator runs DSGD (ATC, sparse ring, diagonal quadratic, float32, one thread) for ``K``
steps under four measurement settings, in rotated order within each repetition (paired,
interleaved):

- ``off``: one checkpoint (the last step), the least ``run_simulated`` can measure;
- ``default``: ``record=None``, i.e. :func:`verify.run.log_checkpoints` (about 5 per decade);
- ``every step``: ``record=range(K + 1)`` with the blocked float64 measurement;
- ``every step, old``: the same with the measurement before this change (a float64 copy of the
  whole ``(n, R, d)`` state per checkpoint), for comparison.

Printed: per setting, the median over repetitions of its CPU time / ``off``'s CPU time of the
same repetition, the same ratio for wall time, and the in-run split ``measure_s / wall_s``.
Target: ``default / off <= 1.10`` (measurement <= 10 % of run time at the default).

CPU time (``time.process_time``, one thread) is the number to read on a shared machine; wall
time moves with the load.

Usage: ``python benchmarks/measurement.py [--n 1024] [--d 2000] [--steps 200] [--reps 3]``
(``--d 10000`` is the issue's size; it takes about 5x longer).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from types import SimpleNamespace

import numpy as np
import scipy.sparse as sp
import torch

import verify.run as run_module
from verify.algorithms.dsgd import DSGD
from verify.oracles import QuadraticOracle
from verify.run import log_checkpoints, run_simulated


def _ring(n: int) -> sp.csr_array:
    rows = np.repeat(np.arange(n), 3)
    cols = (rows + np.tile([-1, 0, 1], n)) % n
    return sp.csr_array((np.full(3 * n, 1.0 / 3.0), (rows, cols)), shape=(n, n))


def _problem(n: int, d: int, seed: int = 0) -> SimpleNamespace:
    """A diagonal quadratic given by its (n, d) Hessian diagonals (no dense Hessians)."""
    rng = np.random.default_rng(seed)
    return SimpleNamespace(
        n=n, d=d, sigma2=1.0, b=rng.standard_normal((n, d)),
        hessian_diagonal=rng.uniform(0.1, 1.0, (n, d)), x_star=None,
    )  # fmt: skip


def _measure_full_copy(comm, x, x_star):
    """The measurement before blocking: a float64 copy of the whole state per checkpoint."""
    x = x.detach().to(torch.float64)
    n = comm.n
    xbar = comm.allsum(x) / n
    parts = [((x - xbar) ** 2).sum(dim=-1)]
    xs = x_star.detach().to(device=x.device, dtype=torch.float64)
    parts.append(((x - xs) ** 2).sum(dim=-1))
    sums = comm.allsum(torch.stack(parts, dim=-1)) / n
    avg = ((xbar - xs) ** 2).sum(dim=-1).cpu().numpy()
    return sums[:, 1].cpu().numpy(), sums[:, 0].cpu().numpy(), avg


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1024)
    ap.add_argument("--d", type=int, default=2000)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--no-every", action="store_true", help="skip the every-step settings")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    n, d, K = args.n, args.d, args.steps
    W = [_ring(n)]
    oracle = QuadraticOracle(_problem(n, d), dtype=torch.float32)
    x0 = torch.zeros(n, 1, d, dtype=torch.float32)
    fast = run_module._measure
    settings = {"off": ([K], fast), "default": (None, fast)}
    if not args.no_every:
        settings["every step"] = (range(K + 1), fast)
        settings["every step, old"] = (range(K + 1), _measure_full_copy)

    def once(record, measure):
        run_module._measure = measure
        try:
            t_cpu, t_wall = time.process_time(), time.perf_counter()
            traj = run_simulated(DSGD(0.05), oracle, W, x0, K, 0, record, dtype=torch.float32)
            return (
                time.process_time() - t_cpu,
                time.perf_counter() - t_wall,
                traj.measure_s / traj.wall_s,
            )
        finally:
            run_module._measure = fast

    names = list(settings)
    rows: dict[str, list] = {name: [] for name in names}
    for rep in range(args.reps):
        order = names[rep % len(names) :] + names[: rep % len(names)]
        for name in order:
            rows[name].append(once(*settings[name]))
        print(f"repetition {rep + 1}/{args.reps} done", file=sys.stderr, flush=True)
    points = len(log_checkpoints(K))
    print(
        f"run_simulated, DSGD ATC on a sparse ring, n = {n}, d = {d}, R = 1, float32, K = {K} "
        f"steps, 1 thread; default = log_checkpoints(K): {points} checkpoints; "
        f"{args.reps} paired repetitions (medians)"
    )
    print(
        f"{'setting':<18} {'CPU / off':>10} {'wall / off':>11} {'measure_s/wall':>15} {'CPU s':>8}"
    )
    for name in names:
        cpu = [r[0] / o[0] for r, o in zip(rows[name], rows["off"])]
        wall = [r[1] / o[1] for r, o in zip(rows[name], rows["off"])]
        share = statistics.median(r[2] for r in rows[name])
        cpu_s = statistics.median(r[0] for r in rows[name])
        print(
            f"{name:<18} {statistics.median(cpu):>10.3f} {statistics.median(wall):>11.3f} "
            f"{share:>15.3f} {cpu_s:>8.2f}"
        )
    default = statistics.median(r[0] / o[0] for r, o in zip(rows["default"], rows["off"]))
    print(f"target: default / off (CPU) <= 1.10: {'met' if default <= 1.10 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
