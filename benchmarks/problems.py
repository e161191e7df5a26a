"""Benchmark: diagonal heterogeneous quadratics at simulator scale (issue 13 section 3).

    python benchmarks/problems.py [--n 1024] [--d 10000] [--repeats 3]

Builds ``heterogeneous_quadratic(n, d, diagonal=True)`` and reads every constant (L, mu,
mu_local, zeta2_star, zeta2_ball, x_star, f_star); the constants run over row blocks, so the
only (n, d) arrays held are the Hessian diagonals and the centres. Prints the median wall time
(target < 1 s at n = 1024, d = 1e4) and the peak traced memory (``tracemalloc``, numpy
allocations included) as a multiple of the two (n, d) float64 arrays the problem keeps, the
Hessian diagonals and the centres b (target < 2x "the (n, d) arrays": peak / (2 n d 8 B)).
For scale, the same problem with dense Hessians would need n d^2 8 B.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import tracemalloc

import numpy as np

from theorylab.problems import heterogeneous_quadratic


def build(n: int, d: int):
    p = heterogeneous_quadratic(n, d, L=1.0, mu=0.01, zeta2=1.0, sigma2=1.0, seed=0)
    consts = (p.L, p.mu, p.mu_local, p.zeta2_star, p.zeta2_ball(1.0), p.x_star, p.f_star)
    return p, consts


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1024)
    ap.add_argument("--d", type=int, default=10_000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    n, d = args.n, args.d
    times, base = [], []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        p, _ = build(n, d)
        times.append(time.perf_counter() - t0)
        assert p._A is None, "a dense Hessian was built"
        del p
        # baseline in the same run: the two (n, d) draws any such generator makes
        t0 = time.perf_counter()
        rng = np.random.default_rng(0)
        rng.uniform(-1.0, 1.0, size=(n, d))
        rng.standard_normal((n, d))
        base.append(time.perf_counter() - t0)
    tracemalloc.start()
    p, consts = build(n, d)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    nd_bytes = 8 * n * d
    med = statistics.median(times)
    print(f"heterogeneous_quadratic(n={n}, d={d}, diagonal) + every constant:")
    print(f"  median time {med:.3f} s over {args.repeats} (target < 1 s)")
    b = statistics.median(base)
    print(f"  baseline (one uniform + one normal (n, d) draw): {b:.3f} s; ratio {med / b:.2f}x")
    print(
        f"  peak traced memory {peak / 2**20:.1f} MiB = {peak / (2 * nd_bytes):.2f} x the two "
        f"(n, d) arrays ({2 * nd_bytes / 2**20:.1f} MiB; target < 2); dense Hessians would "
        f"need {n * d * d * 8 / 2**30:.0f} GiB"
    )
    print(f"  L = {consts[0]:.6g}, mu = {consts[1]:.6g}, zeta2_star = {consts[3]:.6g}")
    ratio = peak / (2 * nd_bytes)
    print(f"target build + constants < 1 s: {'met' if med < 1.0 else 'NOT met'} ({med:.3f} s)")
    print(
        f"target peak memory < 2x the (n, d) arrays: {'met' if ratio < 2 else 'NOT met'} "
        f"({ratio:.2f}x)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
