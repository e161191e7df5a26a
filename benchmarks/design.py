"""Benchmark: optimal-weight SDP solvers (built-in barrier vs cvxpy SCS / Clarabel) and the
first-order subgradient method, on Erdos-Renyi (average degree ~8) and random geometric graphs
(radius sqrt(8 / ((n - 1) pi)), small spectral gaps).

    python benchmarks/design.py [--quick] [--json FILE]

Accuracy is measured on the returned W: ``rho`` is recomputed from its eigenvalues
(``rho = ||W - 11^T/n||_2``) and compared with the barrier's certified lower bound on the optimum
(``err = rho - lower_bound``). Times are wall-clock medians over ``--repeats`` runs; ``x barrier``
is the time ratio against the barrier solve of the same graph in the same run. The first-order
method's ``gap ratio`` is its spectral gap over the optimal gap (n <= 200) or over Metropolis's
gap (n = 1000, 2000, where no SDP is run). Graph seeds for the random geometric graphs follow
shared/references/topology.md §6.2 (20: 0, 50: 0, 100: 2000, 200: 1000).

BLAS threads default to 1 (set BENCH_THREADS): on a shared 2-core machine multi-threaded
OpenBLAS was measured up to 100x slower for these small dense factorisations.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", os.environ.get("BENCH_THREADS", "1"))
os.environ.setdefault("OMP_NUM_THREADS", os.environ.get("BENCH_THREADS", "1"))

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import networkx as nx  # noqa: E402

from theorylab.design import optimal_weights, subgradient_weights  # noqa: E402
from theorylab.errors import SolverError  # noqa: E402
from theorylab.mixing import mixing_matrix  # noqa: E402
from theorylab.output import format_table  # noqa: E402
from theorylab.spectral import extreme_eigenvalues  # noqa: E402

RGG_SEEDS = {20: 0, 50: 0, 100: 2000, 200: 1000}


def _largest_component(G):
    H = G.subgraph(max(nx.connected_components(G), key=len)).copy()
    return nx.convert_node_labels_to_integers(H)


def graph(family: str, n: int) -> nx.Graph:
    """Seeded test graph; n >= 1000 keeps the largest connected component (as in §6.3)."""
    if family == "ER":
        for seed in range(100):
            G = nx.erdos_renyi_graph(n, 8 / (n - 1), seed=seed)
            if nx.is_connected(G):
                return G
            if n >= 1000:
                return _largest_component(G)
    radius = math.sqrt(8 / ((n - 1) * math.pi))
    seed = RGG_SEEDS.get(n, 0)
    G = nx.random_geometric_graph(n, radius, seed=seed)
    return G if nx.is_connected(G) else _largest_component(G)


def comparison_table(seeds=(0, 1, 2)) -> list[dict]:
    """rho under every rule (incl. the FDLA/FMMC optima) on the families at n = 16 and on seeded
    connected Erdos-Renyi graphs with 50 nodes and ~200 edges; the README's table."""
    from theorylab import topology
    from theorylab.design import compare_weight_rules

    graphs = [
        ("ring", topology.ring(16)), ("path", topology.path(16)), ("star", topology.star(16)),
        ("grid 4x4", topology.grid2d(4, 4)), ("torus 4x4", topology.torus2d(4, 4)),
        ("hypercube", topology.hypercube(16)), ("exponential", topology.exponential(16)),
        ("random 4-regular", topology.random_regular(16, 4, seed=0)),
    ]  # fmt: skip
    for seed in seeds:
        G = topology.erdos_renyi(50, 200 / 1225, seed=seed, max_tries=20)
        graphs.append((f"ER(50, {G.number_of_edges()} edges) seed {seed}", G))
    out = []
    for name, G in graphs:
        rows = {r["rule"]: r for r in compare_weight_rules(G)}
        row = {"graph": name, "n": G.number_of_nodes(), "m": G.number_of_edges()}
        for rule, col in (("max-degree", "max-deg"), ("metropolis", "Metropolis"),
                          ("best-constant", "best-const"), ("optimal-symmetric", "FDLA"),
                          ("optimal-nonnegative", "FMMC")):  # fmt: skip
            row[col] = rows[rule]["rho"]
            row[f"it {col}"] = rows[rule]["iterations"]
        out.append(row)
    return out


def _timed(fn, repeats):
    times, res = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        res = fn()
        times.append(time.perf_counter() - t0)
    return res, statistics.median(times)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="n <= 100, no Clarabel above 50")
    p.add_argument("--repeats", type=int, default=None, help="runs per timing (median)")
    p.add_argument("--json", default=None, help="also save the rows as JSON here")
    p.add_argument(
        "--first-order-only", action="store_true",
        help="skip the comparison table and the cvxpy solvers (barrier only, as the reference)",
    )  # fmt: skip
    args = p.parse_args(argv)
    quick = args.quick
    repeats = args.repeats or (3 if quick else 1)
    sdp_sizes = (20, 50, 100) if quick else (20, 50, 100, 200)
    fo_large = () if quick else (1000, 2000)
    clarabel_max = 50 if quick else 100  # Clarabel: 34-213 s at n = 100-140 (topology.md §6.2)
    scs_max = 50 if quick else 200
    sub_iter = 1500 if quick else 5000

    table = []
    if not args.first_order_only:
        table = comparison_table(seeds=(0,) if quick else (0, 1, 2))
        print("rho = ||W - 11^T/n||_2 under each weight rule; 'it' = gossip rounds to 1e-6")
        print(format_table(table))
        print()
    sdp_rows, fo_rows = [], []
    for family in ("ER", "RGG"):
        for n in sdp_sizes:
            G = graph(family, n)
            m = G.number_of_edges()
            ref, t_ref = _timed(lambda G=G: optimal_weights(G), repeats)
            opt_gap = 1 - ref.lower_bound
            sdp_rows.append({
                "graph": family, "n": n, "m": m, "solver": "barrier", "time_s": t_ref,
                "x_barrier": 1.0, "rho": ref.rho, "err": ref.rho - ref.lower_bound,
                "iterations": ref.iterations, "status": ref.status,
            })  # fmt: skip
            for solver, limit, tol in (("SCS", scs_max, 1e-6), ("SCS", scs_max, 1e-4),
                                       ("CLARABEL", clarabel_max, 1e-8)):  # fmt: skip
                if n > limit or args.first_order_only:
                    continue
                try:
                    res, t = _timed(
                        lambda G=G, s=solver, tol=tol: optimal_weights(G, solver=s, tol=tol), 1
                    )
                    row = {"rho": res.rho, "err": res.rho - ref.lower_bound,
                           "iterations": res.iterations, "status": res.status}  # fmt: skip
                except SolverError as exc:
                    t, row = math.nan, {"status": f"failed: {exc}"[:40]}
                sdp_rows.append({"graph": family, "n": n, "m": m, "solver": f"{solver} {tol:g}",
                                 "time_s": t, "x_barrier": t / t_ref, **row})  # fmt: skip
            sub, t_sub = _timed(
                lambda G=G: subgradient_weights(G, max_iter=sub_iter, time_limit_s=55), 1
            )
            fo_rows.append({
                "graph": family, "n": n, "m": m, "time_s": t_sub, "iterations": sub.iterations,
                "rho": sub.rho, "gap_ratio": sub.spectral_gap / opt_gap, "versus": "optimum",
                "within_1pct": sub.spectral_gap >= 0.99 * opt_gap,
            })  # fmt: skip
            print(f"  {family} n={n} done", file=sys.stderr, flush=True)
        for n in fo_large:
            G = graph(family, n)
            met = extreme_eigenvalues(mixing_matrix(G, "metropolis", sparse=False))
            sub, t_sub = _timed(
                lambda G=G: subgradient_weights(G, max_iter=100_000, time_limit_s=55), 1
            )
            fo_rows.append({
                "graph": family, "n": G.number_of_nodes(), "m": G.number_of_edges(),
                "time_s": t_sub, "iterations": sub.iterations, "rho": sub.rho,
                "gap_ratio": sub.spectral_gap / met.spectral_gap, "versus": "Metropolis",
                "within_1pct": None,
            })  # fmt: skip
            print(f"  {family} n={n} done", file=sys.stderr, flush=True)

    print(f"SDP (FDLA) solvers; err = rho(W) - certified optimum lower bound; median of {repeats}")
    print(format_table(sdp_rows, ["graph", "n", "m", "solver", "time_s", "x_barrier", "rho",
                                  "err", "iterations", "status"]))  # fmt: skip
    print("\nFirst-order (projected subgradient, Polyak target-level steps, 55 s cap)")
    print(format_table(fo_rows, ["graph", "n", "m", "time_s", "iterations", "rho", "gap_ratio",
                                 "versus", "within_1pct"]))  # fmt: skip
    if args.json:
        with open(args.json, "w") as fh:
            payload = {
                "comparison": table,
                "sdp": sdp_rows,
                "first_order": fo_rows,
                "repeats": repeats,
                "blas_threads": os.environ.get("OPENBLAS_NUM_THREADS"),
            }
            json.dump(payload, fh, indent=2, default=str)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
