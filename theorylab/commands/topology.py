"""``theorylab topology FAMILY --n N``: rho, spectral gap and mixing time of a topology.

rho = ||W - 11^T/n||_2 and spectral gap = 1 - rho; for the one-peer exponential schedule, rho is
the per-round rate of the period product.

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
    from theorylab.mixing import WEIGHT_RULES
    from theorylab.topology import FAMILIES

    parser.add_argument(
        "family", nargs="?", default=None, choices=sorted(FAMILIES),
        help="graph family; omit with --edgelist",
    )  # fmt: skip
    parser.add_argument("--n", type=int, help="number of nodes")
    parser.add_argument(
        "--weights", default="metropolis", choices=sorted(WEIGHT_RULES), help="weight rule"
    )
    parser.add_argument("--lazy", action="store_true", help="use (I + W)/2")
    parser.add_argument("--seed", type=int, default=0, help="seed of random families")
    parser.add_argument("--degree", type=int, help="degree (random-regular)")
    parser.add_argument("--p", type=float, help="edge probability (erdos-renyi)")
    parser.add_argument("--radius", type=float, help="radius (random-geometric)")
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


def run(args) -> int:
    from theorylab import mixing, spectral, topology
    from theorylab.errors import TheorylabError
    from theorylab.output import emit, format_table

    if args.edgelist is not None and args.family is not None:
        raise TheorylabError("give a FAMILY or --edgelist FILE, not both")
    if args.edgelist is None and args.family is None:
        raise TheorylabError("give a topology FAMILY (e.g. ring) or --edgelist FILE")
    t0 = time.perf_counter()
    if args.edgelist is not None:
        G = topology.from_edgelist(args.edgelist)
        family = f"edgelist:{args.edgelist}"
    else:
        G = topology.build(
            args.family,
            args.n,
            rows=args.rows,
            cols=args.cols,
            degree=args.degree,
            p=args.p,
            radius=args.radius,
            seed=args.seed,
            max_tries=args.max_tries,
        )
        family = args.family
    t_build = time.perf_counter() - t0
    if isinstance(G, topology.Schedule):
        obj, weights = G, "one-peer (1/2, 1/2)"
        if args.lazy:
            obj = topology.Schedule([mixing.lazy(W) for W in G.matrices], name=G.name)
    else:
        obj = mixing.mixing_matrix(G, args.weights, lazy=args.lazy)
        weights = args.weights + (" (lazy)" if args.lazy else "")
    t_weights = time.perf_counter() - t0 - t_build
    summary = spectral.spectrum_summary(obj, method=args.method, eps=_EPS)
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
