"""Redraw every figure from saved results, without recomputing anything.

``python -m figures.plot RESULTS_DIR [--out DIR]`` reads every ``*.json`` result that
``theorylab verify`` wrote into ``RESULTS_DIR`` and draws ``NAME.png`` per claim (the newest
result of each claim) with the claim's own ``plot`` method, into ``RESULTS_DIR/figures`` by
default.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["redraw", "main"]


def redraw(results_dir, out_dir=None) -> list[Path]:
    """Draw one PNG per claim (its newest saved result); return the paths written."""
    import verify.claims  # noqa: F401  (registers the claims, so each draws its own figure)
    from verify.report import load_results, save_figure

    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise FileNotFoundError(f"results folder {str(results_dir)!r} does not exist")
    out_dir = Path(out_dir) if out_dir is not None else results_dir / "figures"
    newest = {}
    for result in load_results(results_dir):  # oldest first: later ones replace earlier
        if result.verdict != "error":  # an error has nothing to draw
            newest[result.claim] = result
    return [save_figure(r, out_dir / f"{name}.png") for name, r in sorted(newest.items())]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m figures.plot", description=__doc__)
    parser.add_argument("results", help="folder written by `theorylab verify --results`")
    parser.add_argument("--out", default=None, help="output folder (default RESULTS/figures)")
    args = parser.parse_args(argv)
    try:
        paths = redraw(args.results, args.out)
    except FileNotFoundError as exc:
        print(f"figures.plot: error: {exc}", file=sys.stderr)
        return 2
    for p in paths:
        print(p)
    if not paths:
        print(f"no results in {args.results}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
