"""Benchmark: building a random geometric graph at n = 1e5 (issue 13 section 3, third bullet).

    python benchmarks/topology_build.py [--n 100000] [--radius R] [--repeats 3]

Times, interleaved in one run, ``networkx.random_geometric_graph`` (what
``theorylab.topology.random_geometric`` called before) and ``random_geometric`` (k-d tree pairs
as an array, connectivity on the CSR adjacency, adjacency filled directly), checks that both give
the same edge set, and prints the medians and their ratio. Also times ``mixing_matrix(G,
"metropolis")`` on the result (the rest of ``theorylab topology random-geometric`` before rho).
Default radius: 1.5 x the connectivity threshold sqrt(ln n / (pi n)).
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time

import networkx as nx

from theorylab.mixing import mixing_matrix
from theorylab.topology import random_geometric


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--radius", type=float, default=None)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    n = args.n
    radius = args.radius or 1.5 * math.sqrt(math.log(n) / (math.pi * n))
    t_nx, t_ours, t_mix = [], [], []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        H = nx.random_geometric_graph(n, radius, seed=0)
        nx.is_connected(H)
        t_nx.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        G = random_geometric(n, radius, seed=0)
        t_ours.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        mixing_matrix(G, "metropolis")
        t_mix.append(time.perf_counter() - t0)
    same = set(map(frozenset, G.edges())) == set(map(frozenset, H.edges()))
    a, b, c = (statistics.median(t) for t in (t_nx, t_ours, t_mix))
    print(f"random geometric n = {n}, radius = {radius:.4g}, m = {G.number_of_edges()} edges")
    print(f"  networkx + is_connected: {a:.2f} s; random_geometric: {b:.2f} s; ratio {a / b:.1f}x")
    print(f"  same edge set: {same}; Metropolis W on top: {c:.2f} s; build + W = {b + c:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
