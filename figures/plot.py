"""Redraw every figure from saved results, without recomputing anything or importing a claim.

``python -m figures.plot RESULTS_DIR [--out DIR]`` reads every ``NAME-HASH.json`` result that
``theorylab verify`` wrote into ``RESULTS_DIR`` and draws ``NAME.png`` per claim (the newest
result of each claim, by its ``timestamp``) with :func:`figures.draw.draw`, into
``RESULTS_DIR/figures`` by default.

A results folder is user input: the PNG's name comes from the *file name* (``NAME`` must be a
snake_case identifier), never from the file's contents (a result whose ``claim`` says
``../../x`` cannot write outside the folder, and a result whose ``claim`` disagrees with its file
name is skipped); only regular files are read (a FIFO named like a result cannot hang it), at
most :data:`MAX_BYTES` each; unreadable or invalid files are skipped with a warning.
"""

from __future__ import annotations

import argparse
import re
import sys
import warnings
from pathlib import Path

from theorylab.safe_json import MAX_RESULT_BYTES, ResultFileError, ResultFileWarning, read_json

__all__ = ["redraw", "main", "MAX_BYTES"]

MAX_BYTES = MAX_RESULT_BYTES  # largest result file read (theorylab.safe_json)

_NAME = re.compile(r"^([a-z][a-z0-9_]{0,63})-[0-9a-f]{6,64}\.json$")


def _read(path: Path) -> dict | None:
    """The JSON object in ``path``, or None (with a warning) when it is not a readable result."""
    try:
        data = read_json(path)
    except ResultFileError as exc:
        warnings.warn(f"skipping {path.name}: {exc}", ResultFileWarning, stacklevel=3)
        return None
    if not isinstance(data, dict) or not isinstance(data.get("series", {}), dict):
        warnings.warn(f"skipping {path.name}: not a claim result", ResultFileWarning, stacklevel=3)
        return None
    return data


def redraw(results_dir, out_dir=None) -> list[Path]:
    """Draw one PNG per claim (its newest saved result); return the paths written."""
    from matplotlib.figure import Figure  # no pyplot: the caller's backend is left alone

    from figures.draw import draw

    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise FileNotFoundError(f"results folder {str(results_dir)!r} does not exist")
    out_dir = Path(out_dir) if out_dir is not None else results_dir / "figures"
    newest: dict[str, tuple[str, dict]] = {}
    for path in sorted(results_dir.iterdir()):
        match = _NAME.match(path.name)
        if match is None:
            if path.suffix == ".json":
                warnings.warn(
                    f"skipping {path.name[:80]!r}: not named CLAIM-HASH.json",
                    ResultFileWarning,
                    stacklevel=2,
                )
            continue
        name = match.group(1)
        data = _read(path)
        if data is None:
            continue
        if data.get("claim") != name:
            warnings.warn(
                f"skipping {path.name}: its claim {str(data.get('claim'))[:40]!r} is not the "
                f"file's name {name!r}",
                ResultFileWarning,
                stacklevel=2,
            )
            continue
        if data.get("verdict") not in ("pass", "fail"):  # an error has nothing to draw
            continue
        stamp = str(data.get("timestamp", ""))
        if name not in newest or stamp >= newest[name][0]:
            newest[name] = (stamp, data)
    written = []
    for name, (_, data) in sorted(newest.items()):
        fig = Figure(figsize=(11, 4.4), layout="constrained")
        try:
            draw(data, fig)
        except Exception as exc:  # one bad result never stops the others
            warnings.warn(f"figure for {name} failed: {type(exc).__name__}: {exc}", stacklevel=2)
            continue
        out_dir.mkdir(parents=True, exist_ok=True)
        target = out_dir / f"{name}.png"  # name matched [a-z][a-z0-9_]*: stays in out_dir
        fig.savefig(target, dpi=110)
        written.append(target)
    return written


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
