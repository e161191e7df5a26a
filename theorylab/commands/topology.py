"""``theorylab topology FAMILY --n N``: rho, spectral gap and mixing time of a topology.

rho = ||W - 11^T/n||_2 and spectral gap = 1 - rho; for the one-peer exponential schedule, rho is
the per-round rate of the period product.

A family is built as edge arrays and W as a csr matrix (:mod:`theorylab.topology_sparse`: the
same edge sets as :mod:`theorylab.topology`'s networkx graphs, without networkx), so n = 1e5
takes seconds end to end (``benchmarks/topology_build.py`` times every family). The complete
graph above n = 2000 uses its structure: every rule gives ``W = a I + (1 - a) 11^T/n``, whose
eigenvalues are 1 and a, so rho = |a| exactly. ``--edgelist`` reads a networkx graph.

Example::

    theorylab topology ring --n 100000 --weights uniform
    theorylab topology random-regular --n 1000 --degree 4 --seed 1 --json
"""

from __future__ import annotations

import os
import time

# The sparse eigensolvers run level-1/2 BLAS on long vectors, where OpenBLAS threads cost more
# than they gain on small shared machines (4x slower measured on 2 busy cores). numpy is not yet
# imported when `theorylab topology` loads this module; an explicit user setting wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

HELP = "rho, spectral gap, lambda_2/lambda_n and consensus iterations of a topology"

_EPS = 1e-6


def add_arguments(parser) -> None:
    # names only (no networkx, no scipy at parse time)
    from theorylab.topology_sparse import FAMILY_NAMES, RULE_NAMES

    parser.add_argument(
        "family", nargs="?", default=None, choices=sorted(FAMILY_NAMES),
        help="graph family; omit with --edgelist",
    )  # fmt: skip
    parser.add_argument("--n", type=int, help="number of nodes")
    parser.add_argument(
        "--weights", default="metropolis", choices=sorted(RULE_NAMES), help="weight rule"
    )
    parser.add_argument("--lazy", action="store_true", help="use (I + W)/2")
    parser.add_argument("--seed", type=int, default=0, help="seed of random families")
    parser.add_argument("--degree", type=int, help="degree (random-regular)")
    parser.add_argument("--p", type=float, help="edge probability (erdos-renyi)")
    parser.add_argument(
        "--radius", type=float,
        help="radius (random-geometric; default sqrt(2 ln n / (pi n)), sqrt(2) x the "
        "connectivity threshold)",
    )  # fmt: skip
    parser.add_argument("--rows", type=int, help="rows (grid, torus)")
    parser.add_argument("--cols", type=int, help="columns (grid, torus)")
    parser.add_argument("--max-tries", type=int, default=1, help="resample a disconnected graph")
    parser.add_argument("--edgelist", help="read the graph from an edge-list file instead")
    parser.add_argument(
        "--method", default="auto", choices=("auto", "dense", "sparse"), help="eigensolver"
    )
    parser.add_argument("--json", action="store_true", help="print JSON")


def _digits(x):
    """Full precision for values that may sit within 1e-9 of 1."""
    return None if x is None else f"{x:.15g}"


def _complete_summary(n, rule, lazy):
    """spectrum_summary of K_n's W = a I + (1 - a) 11^T/n: eigenvalues 1 and a (n - 1 times)."""
    from theorylab.spectral import consensus_iterations
    from theorylab.topology_sparse import complete_mixing_coefficient

    t0 = time.perf_counter()
    a = complete_mixing_coefficient(n, rule, lazy)
    rho = abs(a)
    return {
        "n": n,
        "period": 1,
        "rho": rho,
        "spectral_gap": 1.0 - rho,
        "lambda2": a,
        "lambda_n": a,
        "lambda_n_exact": True,
        "symmetric": True,
        "degree_max": n - 1,
        "degree_mean": float(n - 1),
        f"mixing_time_{_EPS:g}": consensus_iterations(rho, _EPS, spectral_gap=1.0 - rho),
        "method": "structured (W = a I + (1 - a) 11^T/n)",
        "time_s": time.perf_counter() - t0,
    }


def run(args) -> int:
    from theorylab.errors import TheorylabError

    if args.edgelist is not None and args.family is not None:
        raise TheorylabError("give a FAMILY or --edgelist FILE, not both")
    if args.edgelist is None and args.family is None:
        raise TheorylabError("give a topology FAMILY (e.g. ring) or --edgelist FILE")
    t0 = time.perf_counter()
    weights = args.weights + (" (lazy)" if args.lazy else "")
    if args.edgelist is not None:
        from theorylab import mixing, spectral, topology

        G = topology.from_edgelist(args.edgelist)
        family = f"edgelist:{args.edgelist}"
        t_build = time.perf_counter() - t0
        obj = mixing.mixing_matrix(G, args.weights, lazy=args.lazy)
        t_weights = time.perf_counter() - t0 - t_build
        summary = spectral.spectrum_summary(obj, method=args.method, eps=_EPS)
    else:
        from theorylab import spectral
        from theorylab import topology_sparse as ts
        from theorylab.stochastic import DENSE_LIMIT

        family = args.family
        if family == "one-peer-exponential":
            if args.n is None:
                raise TheorylabError("one-peer-exponential needs n")
            mats = ts.one_peer_exponential_matrices(args.n)
            weights = "one-peer (1/2, 1/2)"
            if args.lazy:
                mats = [ts.lazy_csr(W) for W in mats]
                weights += " (lazy)"
            t_build = time.perf_counter() - t0
            t_weights = 0.0
            summary = spectral.spectrum_summary(mats, method=args.method, eps=_EPS)
        elif family == "complete" and args.n is not None and args.n > DENSE_LIMIT:
            summary = _complete_summary(args.n, args.weights, args.lazy)
            t_build = t_weights = 0.0
        else:
            edges = ts.family_edges(
                family,
                args.n,
                rows=args.rows,
                cols=args.cols,
                degree=args.degree,
                p=args.p,
                radius=args.radius,
                seed=args.seed,
                max_tries=args.max_tries,
            )
            t_build = time.perf_counter() - t0
            W = ts.sparse_mixing_matrix(edges, args.weights, lazy=args.lazy)
            t_weights = time.perf_counter() - t0 - t_build
            summary = spectral.spectrum_summary(
                W, method=args.method, eps=_EPS, symmetric=True, degrees=edges.degrees()
            )
    from theorylab.output import emit, format_table

    result = {"family": family, "weights": weights, **summary}
    result["time_build_s"] = t_build
    result["time_weights_s"] = t_weights
    result["time_total_s"] = time.perf_counter() - t0
    key = f"mixing_time_{_EPS:g}"
    rows = [
        {"quantity": "n", "value": result["n"]},
        {
            "quantity": "rho = ||W - J||_2" if result["period"] == 1 else "rho (per round)",
            "value": _digits(result["rho"]),
        },
        {"quantity": "spectral gap 1 - rho", "value": result["spectral_gap"]},
        {"quantity": "lambda_2", "value": _digits(result["lambda2"])},
        {
            "quantity": "lambda_n" + ("" if result["lambda_n_exact"] else " (upper bound)"),
            "value": result["lambda_n"],
        },
        {"quantity": "max degree", "value": result["degree_max"]},
        {"quantity": "mean degree", "value": result["degree_mean"]},
        {"quantity": f"iterations to {_EPS:g} consensus", "value": result[key]},
        {"quantity": "method", "value": result["method"]},
        {"quantity": "time (spectrum) s", "value": result["time_s"]},
        {"quantity": "time (total) s", "value": result["time_total_s"]},
    ]
    title = f"{family}, weights {weights}" + (
        f", period {result['period']}" if result["period"] > 1 else ""
    )
    emit(result, title + "\n" + format_table(rows), args.json)
    return 0
