"""Time and accuracy of rho = ||W - 11^T/n||_2 on large sparse Metropolis mixing matrices.

Compares theorylab's sparse method (60-step Lanczos probe, then shift-invert around +-1 with a
SuperLU factorisation, or two-level-preconditioned LOBPCG for large 2-D-like graphs of mean
degree >= 7, or, for expanders, the same plain Lanczos run continued to convergence)
against plain ARPACK ``eigsh`` on the deflated operator ``P W P`` (which='LM', no shift-invert),
LOBPCG with the constraint Y = 1, and dense ``eigvalsh`` (n <= 1e4). The reference rho is the
closed form where one exists (ring, torus, exponential: circulant spectra), else dense. A plain
method that exceeded ``--cap`` seconds at one size is skipped ('>cap') at the larger sizes.

``--routes N`` instead times the two routes for the gap 1 - lambda_2 of a 2-D-like graph on the
same matrix, interleaved, ``--repeats`` times (medians): SuperLU shift-invert (the route before
issue 13 section 3) against preconditioned LOBPCG (the route taken now), on the random geometric
graph of ``theorylab topology random-geometric --n N`` (and, at N <= 4000, dense eigvalsh).

Usage: python benchmarks/spectral.py [--quick] [--cap SECONDS] [--dense-max N] [--families ...]
       python benchmarks/spectral.py --routes 100000 [--repeats 5]
"""

from __future__ import annotations

import argparse
import math
import os

# Lanczos runs level-1/2 BLAS on long vectors: threads cost more than they gain on small shared
# machines. Set before numpy is imported; an explicit user setting wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
import statistics
import sys
import time
import warnings

import numpy as np
import scipy.sparse.linalg as spla

from theorylab import mixing, spectral, topology


def _graph(family: str, n: int):
    if family == "ring":
        return topology.ring(n), topology.closed_form_rho("ring", n)
    if family == "torus":
        rows, cols = topology.square_shape(n)
        return topology.torus2d(rows, cols), topology.closed_form_rho(
            "torus", n, rows=rows, cols=cols
        )
    if family == "exponential":
        return topology.exponential(n), topology.closed_form_rho("exponential", n)
    if family == "random-4-regular":
        return topology.random_regular(n, 4, seed=0), None
    if family == "random-geometric":
        radius = math.sqrt(2 * math.log(n) / (math.pi * n))  # ~2x the connectivity threshold
        return topology.random_geometric(n, radius, seed=0, max_tries=5), None
    raise ValueError(family)


def _ours(W):
    return spectral.extreme_eigenvalues(W, method="sparse").rho


def _plain_eigsh(W):
    n = W.shape[0]
    op = spla.LinearOperator(
        (n, n), matvec=lambda x: spectral._proj(W @ spectral._proj(x)), dtype=np.float64
    )
    vals = spla.eigsh(
        op,
        k=1,
        which="LM",
        tol=1e-10,
        maxiter=100000,
        v0=spectral._v0(n),
        return_eigenvectors=False,
    )
    return float(abs(vals[0]))


def _lobpcg(W):
    n = W.shape[0]
    Y = np.ones((n, 1)) / math.sqrt(n)
    rng = np.random.default_rng(0)
    top = spla.lobpcg(W, rng.standard_normal((n, 1)), Y=Y, largest=True, tol=1e-10, maxiter=2000)
    bot = spla.lobpcg(W, rng.standard_normal((n, 1)), Y=Y, largest=False, tol=1e-10, maxiter=2000)
    return float(max(top[0][0], -bot[0][0]))


def _dense(W):
    return spectral.extreme_eigenvalues(W.toarray(), method="dense").rho


def _timed(fn, W, repeats):
    times, value = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        value = fn(W)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), value


def _routes(n: int, repeats: int) -> None:
    """Paired medians of the two lambda_2 routes (shift-invert, LOBPCG) on one matrix."""
    import scipy.sparse as sp

    from theorylab import topology_sparse as ts

    W = spectral._int32_csr(ts.sparse_mixing_matrix(ts.family_edges("random-geometric", n=n)))
    M = ((1 + spectral._DELTA) * sp.eye_array(n, format="csr") - W).tocsc()
    routes = {
        "shift-invert": lambda: spectral._gap_shift_invert(M, n, True, 1e-10, spectral._v0(n))[0],
        "lobpcg": lambda: spectral._gap_lobpcg(W, 1e-10),
    }
    times = {k: [] for k in routes}
    gaps = {}
    for r in range(repeats):
        for name in routes if r % 2 == 0 else list(routes)[::-1]:
            t0 = time.perf_counter()
            gaps[name] = routes[name]()
            times[name].append(time.perf_counter() - t0)
    print(f"random-geometric n = {n}, nnz(W) = {W.nnz}, medians of {repeats} interleaved runs:")
    for name in routes:
        print(f"  {name:13s} {statistics.median(times[name]):7.3f} s  gap2 = {gaps[name]!r}")
    a, b = (statistics.median(times[k]) for k in routes)
    print(
        f"  ratio shift-invert / lobpcg = {a / b:.2f}x; |difference| = "
        f"{abs(gaps['lobpcg'] - gaps['shift-invert']):.1e}"
    )
    if n <= 4000:
        d = spectral.extreme_eigenvalues(W, method="dense").gap2
        for name in routes:
            print(f"  |{name} - dense eigvalsh| = {abs(gaps[name] - d):.1e}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--quick",
        action="store_true",
        help="only n = 1e3, 1e4, a 10 s cap and dense only to n = 2000 (a few minutes on 2 cores)",
    )
    ap.add_argument(
        "--cap", type=float, default=None, help="skip a plain method above this (s; 60, quick 10)"
    )
    ap.add_argument(
        "--dense-max",
        type=int,
        default=None,
        help="largest n for dense eigvalsh (10000; quick 2000)",
    )
    ap.add_argument(
        "--families", default="ring,torus,exponential,random-4-regular,random-geometric"
    )
    ap.add_argument("--routes", type=int, default=None, help="time the lambda_2 routes at this n")
    ap.add_argument("--repeats", type=int, default=5, help="interleaved runs for --routes")
    args = ap.parse_args(argv)
    if args.routes is not None:
        _routes(args.routes, args.repeats)
        return 0
    warnings.filterwarnings("ignore", module="scipy.sparse.linalg")  # lobpcg tolerance chatter
    warnings.filterwarnings("ignore", message=".*lobpcg.*|.*Exited.*")
    sizes = [1000, 10000] if args.quick else [1000, 10000, 100000]
    if args.cap is None:
        args.cap = 10.0 if args.quick else 60.0
    if args.dense_max is None:
        args.dense_max = 2000 if args.quick else 10000
    methods = {"ours": _ours, "eigsh": _plain_eigsh, "lobpcg": _lobpcg, "dense": _dense}
    header = (
        f"{'family':17s} {'n':>7s} {'ref':>6s} {'ours s':>8s} {'eigsh s':>8s} "
        f"{'lobpcg s':>8s} {'dense s':>8s} {'|ours-ref|':>10s} {'|eigsh-ref|':>11s} "
        f"{'|lobpcg-ref|':>12s} {'method'}"
    )
    print(header)
    print("-" * len(header))
    for family in args.families.split(","):
        over_cap = set()
        for n in sizes:
            G, closed = _graph(family, n)
            W = mixing.mixing_matrix(G, "metropolis", sparse=True)
            n_actual = W.shape[0]
            repeats = 3 if n_actual <= 10000 else 1
            times, values = {}, {}
            for name, fn in methods.items():
                if name == "dense" and n_actual > args.dense_max:
                    continue
                if name in over_cap:
                    times[name] = ">cap"
                    continue
                try:
                    t, v = _timed(fn, W, 1 if name != "ours" else repeats)
                except (spla.ArpackNoConvergence, spla.ArpackError) as exc:
                    t, v = float("nan"), None
                    print(f"  {family} n={n_actual} {name}: {type(exc).__name__}", file=sys.stderr)
                times[name], values[name] = t, v
                if name != "ours" and t > args.cap:
                    over_cap.add(name)
            if closed is not None:
                ref, ref_name = closed, "closed"
            elif values.get("dense") is not None:
                ref, ref_name = values["dense"], "dense"
            else:  # converged plain ARPACK: independent of our probe / shift-invert route
                ref, ref_name = values.get("eigsh"), "eigsh"
            method = spectral.extreme_eigenvalues(W, method="sparse").method

            def err(name, values=values, ref=ref):
                v = values.get(name)
                return "-" if v is None or ref is None else f"{abs(v - ref):.1e}"

            def tm(name, times=times):
                t = times.get(name, "-")
                return t if isinstance(t, str) else f"{t:.3f}"

            if ref is None:
                ref_name = "-"
            print(
                f"{family:17s} {n_actual:7d} {ref_name:>6s} {tm('ours'):>8s} {tm('eigsh'):>8s} "
                f"{tm('lobpcg'):>8s} {tm('dense'):>8s} {err('ours'):>10s} {err('eigsh'):>11s} "
                f"{err('lobpcg'):>12s} {method}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
