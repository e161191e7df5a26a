"""Benchmark: structured (spectral) exact DSGD predictor vs the dense (nd x nd) solver.

Usage: python benchmarks/exact.py [--quick] [--repeats R]

Table 1 times a full trajectory (steps 0..T, all recorded) plus the steady state, for diagonal
Hessians that differ per node on a ring, with the spectral solver (one eigendecomposition per
coordinate block) and the dense general solver (mean/covariance recursion stepped in dimension
nd, steady state by scipy's discrete Lyapunov solver); it also checks that both agree. Table 2 times
the steady state alone (spectral vs ``solve_discrete_lyapunov`` on the nd system). Table 3 is the
target: n = 256, d = 64, steady state + a 1000-step trajectory, ATC and CTA. Medians of
``--repeats`` runs; ratios are against the dense time measured in the same run.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from theorylab.exact import exact_dsgd, steady_state_dsgd
from theorylab.problems import heterogeneous_quadratic


def ring(n: int) -> np.ndarray:
    W = np.eye(n) / 3
    for i in range(n):
        W[i, (i + 1) % n] += 1 / 3
        W[i, (i - 1) % n] += 1 / 3
    return W


def median_time(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def row(cells, widths):
    return "  ".join(str(c).rjust(w) for c, w in zip(cells, widths))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, one repeat")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    repeats = 1 if args.quick else args.repeats
    gamma = 0.05

    sizes = [(8, 4), (16, 4), (16, 8)] if args.quick else [(8, 4), (16, 4), (16, 8), (32, 8)]
    steps = 100 if args.quick else 300
    widths = (5, 4, 5, 6, 11, 11, 8, 9)
    print(f"Trajectory (steps 0..{steps}) + steady state, ATC, ring, gamma={gamma}")
    print(row(("n", "d", "nd", "steps", "dense [s]", "spectral [s]", "speedup", "max rel"), widths))
    for n, d in sizes:
        p = heterogeneous_quadratic(n, d, L=1.0, mu=0.05, zeta2=1.0, sigma2=1.0, seed=0)
        x0 = np.ones((n, d))
        W = ring(n)
        t_dense, dense = median_time(
            lambda p=p, W=W, x0=x0: exact_dsgd(p, W, gamma, steps, x0, method="dense"), repeats
        )
        t_spec, spec = median_time(
            lambda p=p, W=W, x0=x0: exact_dsgd(p, W, gamma, steps, x0, method="spectral"), repeats
        )
        rel = float(np.max(np.abs(spec.error - dense.error) / dense.error))
        print(
            row(
                (
                    n,
                    d,
                    n * d,
                    steps,
                    f"{t_dense:.3f}",
                    f"{t_spec:.4f}",
                    f"{t_dense / t_spec:.0f}x",
                    f"{rel:.1e}",
                ),
                widths,
            )
        )

    print("\nSteady state only (Lyapunov), ATC")
    widths2 = (5, 4, 5, 15, 11, 8)
    print(row(("n", "d", "nd", "dense lyap [s]", "spectral [s]", "speedup"), widths2))
    for n, d in sizes:
        p = heterogeneous_quadratic(n, d, L=1.0, mu=0.05, zeta2=1.0, sigma2=1.0, seed=0)
        W = ring(n)
        t_dense, _ = median_time(
            lambda p=p, W=W: steady_state_dsgd(p, W, gamma, method="dense"), repeats
        )
        t_spec, _ = median_time(
            lambda p=p, W=W: steady_state_dsgd(p, W, gamma, method="spectral"), repeats
        )
        print(
            row(
                (n, d, n * d, f"{t_dense:.3f}", f"{t_spec:.4f}", f"{t_dense / t_spec:.0f}x"),
                widths2,
            )
        )

    n, d, T = (64, 16, 200) if args.quick else (256, 64, 1000)
    print(
        f"\nTarget: n={n}, d={d} (diagonal, different per node), steady state + {T}-step "
        "trajectory (all steps recorded), spectral solver"
    )
    widths3 = (5, 11, 12)
    print(row(("form", "time [s]", "target [s]"), widths3))
    p = heterogeneous_quadratic(n, d, L=1.0, mu=0.05, zeta2=1.0, sigma2=1.0, seed=0)
    for form in ("atc", "cta"):
        t, _ = median_time(
            lambda form=form: exact_dsgd(p, ring(n), gamma, T, np.zeros((n, d)), form=form), repeats
        )
        print(row((form, f"{t:.2f}", "10"), widths3))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
