"""``theorylab figures [RESULTS_DIR] [--out DIR]``: redraw every figure from a results folder.

A verify command (registered by :func:`verify.cli.register`) because it reads verify's saved
results, through the validated loader :func:`verify.report.load_results` (a results folder is
untrusted input: non-regular files, oversized or malformed JSON, files whose name does not match
their content are skipped with a warning). It draws

* the lecture's eight figures (:mod:`figures.lecture`: prediction from theorylab, the saved
  measurement overlaid when the folder holds it) as ``OUT/STEM.png`` and ``OUT/STEM.pdf``;
* every claim's own figure (:func:`figures.draw.draw`, the newest result of each claim) as
  ``OUT/claims/CLAIM.png`` and ``.pdf`` (claim names are plain identifiers: the loader checks).

Nothing is written outside ``OUT`` (default ``RESULTS_DIR/figures``); nothing is recomputed but
theorylab's predictions. Exit status 0, or 2 when the results folder does not exist.

Examples
--------
``theorylab figures`` (reads ./results), ``theorylab figures results --out /tmp/figs``,
``theorylab figures results --json``.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

__all__ = ["HELP", "add_arguments", "run", "redraw"]

HELP = "redraw the lecture's figures and every claim's figure (PNG and PDF) from saved results"


def add_arguments(parser) -> None:
    parser.add_argument(
        "results",
        nargs="?",
        default="results",
        metavar="RESULTS_DIR",
        help="folder written by `theorylab verify --results` (default ./results)",
    )
    parser.add_argument(
        "--out", default=None, metavar="DIR", help="output folder (default RESULTS_DIR/figures)"
    )
    parser.add_argument(
        "--no-claims", action="store_true", help="only the lecture figures, not each claim's"
    )
    parser.add_argument("--json", action="store_true", help="print what was drawn as JSON")


def redraw(results_dir, out_dir=None, *, claims: bool = True) -> dict:
    """Draw every figure from ``results_dir`` into ``out_dir``; return what was drawn.

    Returns
    -------
    dict
        ``lecture``: per lecture figure ``name``, ``png``, ``pdf``, ``measured`` (claims whose
        saved measurements it shows), ``caption``; ``claims``: per claim ``claim``, ``png``,
        ``pdf``; ``skipped``: the loader's warnings (files that are not valid results).

    Raises
    ------
    FileNotFoundError
        If ``results_dir`` is not a folder.
    """
    from matplotlib.figure import Figure

    from figures.draw import draw
    from figures.lecture import draw_all, newest_by_claim
    from verify.report import load_results

    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise FileNotFoundError(f"results folder {str(results_dir)!r} does not exist")
    out_dir = Path(out_dir) if out_dir is not None else results_dir / "figures"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results = load_results(results_dir)
    skipped = [str(w.message) for w in caught]
    newest = newest_by_claim(results)
    lecture = draw_all(list(newest.values()), out_dir)
    drawn = []
    if claims:
        folder = out_dir / "claims"
        for name, data in sorted(newest.items()):
            fig = Figure(figsize=(11, 4.4), layout="constrained")
            try:
                draw(data, fig)
            except Exception as exc:  # one bad result never stops the others
                skipped.append(f"figure of {name} failed: {type(exc).__name__}: {exc}")
                continue
            folder.mkdir(parents=True, exist_ok=True)
            png, pdf = folder / f"{name}.png", folder / f"{name}.pdf"  # name: [A-Za-z0-9_]+
            fig.savefig(png, dpi=110)
            fig.savefig(pdf)
            drawn.append({"claim": name, "png": str(png), "pdf": str(pdf)})
    return {"lecture": lecture, "claims": drawn, "skipped": skipped}


def run(args) -> int:
    from theorylab.output import emit, format_table

    out = redraw(args.results, args.out, claims=not args.no_claims)
    rows = [
        {"figure": r["name"], "measured from": ", ".join(r["measured"]) or "prediction only",
         "png": r["png"]}
        for r in out["lecture"]
    ]  # fmt: skip
    text = format_table(rows, ["figure", "measured from", "png"])
    text += f"\n\n{len(out['lecture'])} lecture figures and {len(out['claims'])} claim figures "
    text += "(PNG and PDF)"
    for msg in out["skipped"]:
        print(f"theorylab figures: skipped {msg}", file=sys.stderr)
    emit(out, text, args.json)
    return 0
