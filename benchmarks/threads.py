"""Benchmark: BLAS threads for small dense problems (theorylab._threads), issue 13 section 2.

    python benchmarks/threads.py [--repeats R] [--sizes 100 200] [--json FILE]

For each case (FDLA by the barrier method on an Erdos-Renyi graph with average degree ~8 at the
given sizes; ``choose_topology(64, max_degree=4)``, what ``theorylab design --n 64 --max-degree 4``
runs) it times, interleaved over ``R`` repetitions in one process:

* ``default``: the library as a user calls it (``theorylab._threads`` picks the threads);
* ``k threads`` for k = 1 .. os.cpu_count(): the automatic choice switched off
  (``THEORYLAB_BLAS_THREADS=off``) and ``threadpoolctl.threadpool_limits(k)`` around the call.
  The largest k is OpenBLAS's own default (every core), i.e. what the library did before.

It prints the median wall time of each setting and ``default / best``, the ratio of the default's
median to the fastest setting's median (target <= 1.1). Do not set OPENBLAS_NUM_THREADS when
running it: the k-thread rows need the pool to be able to grow.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import networkx as nx
from threadpoolctl import threadpool_limits

from theorylab.design import optimal_weights
from theorylab.topology_design import choose_topology


def er_graph(n: int) -> nx.Graph:
    """The connected Erdos-Renyi graph of benchmarks/design.py (first seed that connects)."""
    for seed in range(100):
        G = nx.erdos_renyi_graph(n, 8 / (n - 1), seed=seed)
        if nx.is_connected(G):
            return G
    raise RuntimeError(f"no connected ER graph at n = {n}")


def _run(fn, setting):
    """Time one call of ``fn`` under ``setting`` ('default' or a thread count)."""
    if setting == "default":
        os.environ.pop("THEORYLAB_BLAS_THREADS", None)
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0
    os.environ["THEORYLAB_BLAS_THREADS"] = "off"
    try:
        with threadpool_limits(limits=setting, user_api="blas"):
            t0 = time.perf_counter()
            fn()
            return time.perf_counter() - t0
    finally:
        os.environ.pop("THEORYLAB_BLAS_THREADS", None)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--sizes", type=int, nargs="+", default=[100, 200])
    p.add_argument("--no-design", action="store_true", help="skip choose_topology(64, 4)")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    cores = os.cpu_count() or 1
    settings = ["default"] + list(range(1, cores + 1))
    cases = []
    for n in args.sizes:
        G = er_graph(n)
        cases.append((f"FDLA barrier, ER n = {n}", lambda G=G: optimal_weights(G, progress=False)))
    if not args.no_design:
        cases.append(
            ("choose_topology(64, max_degree=4)", lambda: choose_topology(64, max_degree=4))
        )
    rows = []
    for name, fn in cases:
        times = {s: [] for s in settings}
        for r in range(args.repeats):
            order = settings if r % 2 == 0 else settings[::-1]  # interleaved, alternating order
            for s in order:
                times[s].append(_run(fn, s))
        med = {s: statistics.median(v) for s, v in times.items()}
        best = min(med.values())
        row = {"case": name, "default / best": med["default"] / best}
        row.update({("default" if s == "default" else f"{s} thr"): med[s] for s in settings})
        rows.append(row)
        print(
            f"{name}: "
            + ", ".join(
                f"{'default' if s == 'default' else f'{s} thread(s)'} {med[s]:.2f} s"
                for s in settings
            )
            + f"; default / best = {med['default'] / best:.3f}",
            flush=True,
        )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"cores": cores, "repeats": args.repeats, "rows": rows}, fh, indent=1)
    worst = max(r["default / best"] for r in rows)
    print(f"worst default / best = {worst:.3f} (target <= 1.1)")
    for r in rows:
        verdict = "met" if r["default / best"] <= 1.1 else "NOT met"
        print(
            f"target {r['case']}: default within 1.1x of the best: {verdict} "
            f"({r['default / best']:.3f})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
