"""Draw claims' figures in a background process, so the claims never wait on matplotlib.

:func:`verify.report.run_claims` hands each result to a :class:`FigureDrawer`: one spawned
process imports matplotlib and :mod:`figures.draw` (never torch or the claims: it draws from the
result's JSON dict alone, as ``python -m figures.plot`` does) and writes the PNGs while the
next claims run, on the core the main process leaves idle. :meth:`FigureDrawer.close` waits
for every figure, so the PNGs exist when ``run_claims`` returns. A claim that overrides
:meth:`verify.claims.base.Claim.plot`, or a drawer process that cannot start, is drawn in this
process as before (:func:`verify.report.save_figure`).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["FIGSIZE", "DPI", "draw_png", "FigureDrawer"]

#: figure size (inches) and resolution of every claim's PNG
FIGSIZE = (10, 4)
DPI = 110


def draw_png(result: dict, path: str) -> str:
    """Draw the result dict (:meth:`ClaimResult.to_dict`) with :func:`figures.draw.draw` into a
    PNG at ``path`` (written to a temporary file, then renamed); returns ``path``."""
    from matplotlib.figure import Figure  # no pyplot: the process's backend is left alone

    fig = Figure(figsize=FIGSIZE, layout="constrained")
    try:
        from figures.draw import draw
    except ImportError:  # figures/ not installed: the generic drawing (imports the claims)
        from verify.claims.base import ClaimResult, plot_series

        plot_series(ClaimResult(**result), fig)
    else:
        draw(result, fig)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".png", dir=target.parent)
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=DPI)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return str(target)


class FigureDrawer:
    """One background process drawing PNGs with :func:`draw_png`, started on first use.

    ``submit(result, path)`` queues a figure (``False`` when the process cannot start: draw it
    yourself); ``close()`` waits for all of them and returns ``(claim name, exception)`` for
    each that failed.
    """

    def __init__(self) -> None:
        self._pool = None
        self._broken = False
        self._jobs: list = []

    def submit(self, name: str, result: dict, path) -> bool:
        if self._broken:
            return False
        try:
            if self._pool is None:
                import multiprocessing as mp
                from concurrent.futures import ProcessPoolExecutor

                self._pool = ProcessPoolExecutor(1, mp_context=mp.get_context("spawn"))
            self._jobs.append((name, self._pool.submit(draw_png, result, str(path))))
        except Exception:  # noqa: BLE001 - no background process: the caller draws inline
            self._broken = True
            return False
        return True

    def close(self) -> list[tuple[str, BaseException]]:
        failed = []
        for name, job in self._jobs:
            try:
                job.result()
            except Exception as exc:  # noqa: BLE001 - a figure never changes a verdict
                failed.append((name, exc))
        self._jobs = []
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        return failed
