"""Benchmark: ``theorylab topology FAMILY --n 100000`` end to end (issue 13 section 3, bullet 3).

    python benchmarks/topology_build.py [--n 100000] [--repeats 3] [--families ring torus ...]
                                        [--networkx]

Runs the command as a user does (a fresh interpreter per run: start-up, imports, build, W, rho),
for every family the CLI offers, interleaved over ``R`` repetitions (the order alternates), and
prints per family the median wall time and the split the command reports (build, weights,
spectrum), then one line per family ``target <3 s ...: met/NOT met``. Arguments per family:
random-regular ``--degree 4``; erdos-renyi ``--p 2e-4`` (mean degree 20, above the
connectivity threshold ln(n)/n = 1.2e-4); random-geometric the default radius
sqrt(2 ln n / (pi n)); hypercube the next power of two, 2^17 = 131072; everything else
``--n N``.

``--networkx`` also times, in this process, what the command did before
(``topology.build`` + ``mixing.mixing_matrix``: the networkx graph and W from it) against
``topology_sparse.family_edges`` + ``sparse_mixing_matrix`` for each family, checks that both
give the same W, and prints the ratio of the medians.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

from theorylab.topology_sparse import FAMILY_NAMES

ARGS = {
    "random-regular": ["--degree", "4"],
    "erdos-renyi": ["--p", "2e-4"],
}
FAMILIES = FAMILY_NAMES  # every family the CLI builds
TARGET_S = 3.0


def _n(family: str, n: int) -> int:
    return 1 << (n - 1).bit_length() if family == "hypercube" else n


def _argv(family: str, n: int) -> list[str]:
    return [family, "--n", str(_n(family, n)), *ARGS.get(family, []), "--json"]


def _cli(family: str, n: int) -> tuple[float, dict]:
    """Wall time of one ``python -m theorylab.cli topology ...`` and its JSON."""
    cmd = [sys.executable, "-m", "theorylab.cli", "topology", *_argv(family, n)]
    t0 = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {out.stderr.strip()}")
    return wall, json.loads(out.stdout)


def _networkx_vs_arrays(families, n, repeats):
    from theorylab import mixing, topology
    from theorylab import topology_sparse as ts

    for family in families:
        if family in ("complete", "one-peer-exponential"):
            continue
        kw = {"n": _n(family, n)}
        if family == "random-regular":
            kw["degree"] = 4
        if family == "erdos-renyi":
            kw["p"] = 2e-4
        t_nx, t_arr = [], []
        for r in range(repeats):
            for which in ("nx", "arr") if r % 2 == 0 else ("arr", "nx"):
                t0 = time.perf_counter()
                if which == "nx":
                    W1 = mixing.mixing_matrix(topology.build(family, **kw), sparse=True)
                    t_nx.append(time.perf_counter() - t0)
                else:
                    W2 = ts.sparse_mixing_matrix(ts.family_edges(family, **kw))
                    t_arr.append(time.perf_counter() - t0)
        diff = abs(W1 - W2).max()
        a, b = statistics.median(t_nx), statistics.median(t_arr)
        print(
            f"  {family:22s} networkx graph + W {a:7.2f} s; arrays + W {b:6.2f} s; "
            f"ratio {a / b:5.1f}x; max |W_nx - W_arrays| = {float(diff):.1e}",
            flush=True,
        )
        del W1, W2


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--families", nargs="+", default=list(FAMILIES), choices=FAMILIES)
    ap.add_argument("--networkx", action="store_true", help="also time the networkx route")
    args = ap.parse_args(argv)
    print(f"load average at start: {os.getloadavg()[0]:.2f}", flush=True)
    walls = {f: [] for f in args.families}
    last = {}
    for r in range(args.repeats):
        order = args.families if r % 2 == 0 else args.families[::-1]
        for family in order:
            wall, res = _cli(family, args.n)
            walls[family].append(wall)
            last[family] = res
    print(f"load average at end: {os.getloadavg()[0]:.2f}")
    print(f"theorylab topology FAMILY --n {args.n} (median of {args.repeats} fresh processes):")
    for family in args.families:
        res = last[family]
        print(
            f"  {family:22s} {statistics.median(walls[family]):6.2f} s end to end "
            f"(build {res['time_build_s']:.2f}, weights {res['time_weights_s']:.2f}, spectrum "
            f"{res['time_s']:.2f}); n = {res['n']}, rho = {res['rho']:.15g}, {res['method']}"
        )
    for family in args.families:
        med = statistics.median(walls[family])
        verdict = "met" if med < TARGET_S else "NOT met"
        print(f"target {family} --n {_n(family, args.n)} < {TARGET_S:g} s: {verdict} ({med:.2f} s)")
    if args.networkx:
        print("networkx route (before) vs edge arrays, in-process, build + W:")
        _networkx_vs_arrays(args.families, args.n, args.repeats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
