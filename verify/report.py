"""Running claims, saving their results, resuming, and printing the table.

Results live in a folder (``./results`` by default): one JSON file per claim and configuration,
``NAME-HASH.json`` where ``HASH`` is a hash of the full configuration
(:meth:`verify.claims.base.Claim.full_config`). Each file is written atomically (a temporary
file in the same folder, then ``os.replace``) as soon as its claim finishes, so a failed or
killed run loses no finished result; re-running skips every claim whose file already exists for
the same configuration (unless ``force``; a saved ``'error'`` is retried). An exception inside a
claim becomes a result with verdict ``'error'`` and its traceback, and the run goes on.
Figures (one PNG per claim, drawn by the claim's ``plot``) go to ``RESULTS/figures/NAME.png``.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from theorylab.errors import TheorylabError
from verify.claims.base import CLAIMS, Claim, ClaimContext, ClaimResult, plot_series, versions

__all__ = [
    "config_hash",
    "result_path",
    "save_result",
    "load_result",
    "load_results",
    "run_claims",
    "result_rows",
    "format_results",
    "save_figure",
    "ProgressLine",
]

TABLE_COLUMNS = ("claim", "kind", "predicted", "measured", "interval", "verdict", "wall_s")


def config_hash(config: dict[str, Any]) -> str:
    """First 12 hex digits of the SHA-256 of the canonical JSON of ``config``."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def result_path(results_dir: str | os.PathLike, name: str, config: dict[str, Any]) -> Path:
    """``RESULTS/NAME-HASH.json`` for claim ``name`` with ``config``."""
    return Path(results_dir) / f"{name}-{config_hash(config)}.json"


def _mkstemp(path: Path, suffix: str) -> str:
    """A temporary file next to ``path`` with the permissions a plain ``open`` would give."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    return tmp


def save_result(result: ClaimResult, results_dir: str | os.PathLike) -> Path:
    """Write ``result`` atomically to :func:`result_path` and return the path.

    The JSON goes to a temporary file in the same folder, is flushed to disk, and is then
    renamed over the target (``os.replace`` is atomic on POSIX and Windows): a reader sees
    either the old file, no file, or the complete new one.
    """
    folder = Path(results_dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = result_path(folder, result.claim, result.config)
    tmp = _mkstemp(path, ".tmp")
    try:
        with open(tmp, "w") as fh:
            json.dump(result.to_dict(), fh, indent=1)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def load_result(path: str | os.PathLike) -> ClaimResult:
    """Read one result file."""
    with open(path) as fh:
        return ClaimResult.from_dict(json.load(fh))


def load_results(results_dir: str | os.PathLike) -> list[ClaimResult]:
    """Every result in ``results_dir`` (files that are not results are skipped), oldest first."""
    out = []
    for path in sorted(Path(results_dir).glob("*.json")):
        try:
            out.append(load_result(path))
        except (json.JSONDecodeError, TypeError, KeyError, ValueError):
            continue
    return sorted(out, key=lambda r: r.timestamp)


class ProgressLine:
    """A one-line progress display on stderr: ``[i/N] claim: message (elapsed)``.

    On a terminal the line is rewritten in place; otherwise one line per update is printed.
    """

    def __init__(self, total: int, stream=None, enabled: bool = True):
        self.total = total
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.index = 0
        self.name = ""
        self.t0 = time.perf_counter()
        self._width = 0

    def start(self, index: int, name: str) -> None:
        self.index, self.name = index, name
        self.update("running")

    def update(self, message: str) -> None:
        if not self.enabled:
            return
        elapsed = time.perf_counter() - self.t0
        done = "#" * self.index + "." * (self.total - self.index)
        line = f"[{done}] {self.index}/{self.total} {self.name}: {message} ({elapsed:.1f}s)"
        if self.tty:
            pad = max(0, self._width - len(line))
            self.stream.write("\r" + line + " " * pad)
            self._width = len(line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def finish(self) -> None:
        if self.enabled and self.tty:
            self.stream.write("\n")
            self.stream.flush()


def _error_result(claim: Claim, exc: BaseException) -> ClaimResult:
    return ClaimResult(
        claim=claim.name,
        kind=claim.kind,
        issue=claim.issue,
        verdict="error",
        detail=f"{type(exc).__name__}: {exc}",
        traceback="".join(traceback.format_exception(type(exc), exc, exc.__traceback__)),
    )


def save_figure(result: ClaimResult, path: str | os.PathLike) -> Path:
    """Draw ``result`` with its claim's ``plot`` (or the generic plot) into a PNG at ``path``."""
    from matplotlib.figure import Figure  # no pyplot: the process's backend is left alone

    claim = CLAIMS.get(result.claim)
    fig = Figure(figsize=(10, 4), layout="constrained")
    if claim is not None:
        claim.plot(result, fig)
    else:
        plot_series(result, fig)  # the claim is no longer registered: generic drawing
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _mkstemp(path, ".png")
    try:
        fig.savefig(tmp, dpi=110)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def _resolve(names: Sequence[str] | None) -> list[Claim]:
    if not names:
        return list(CLAIMS.values())
    unknown = [n for n in names if n not in CLAIMS]
    if unknown:
        raise TheorylabError(
            f"unknown claim(s) {unknown}; known claims: {sorted(CLAIMS)} "
            "(see `theorylab verify --list`)"
        )
    return [CLAIMS[n] for n in dict.fromkeys(names)]


def run_claims(
    names: Sequence[str] | None,
    ctx: ClaimContext,
    results_dir: str | os.PathLike = "results",
    *,
    force: bool = False,
    figures: bool = True,
    progress: ProgressLine | None = None,
    on_result: Callable[[ClaimResult, bool], None] | None = None,
) -> list[ClaimResult]:
    """Run the named claims (all registered ones if ``names`` is empty), saving as they finish.

    Parameters
    ----------
    names : sequence of str or None
        Claim names; unknown names raise :class:`~theorylab.errors.TheorylabError`.
    ctx : ClaimContext
        Run settings and the shared worker pool (closed by the caller).
    results_dir : path
        Folder of the JSON results (created if needed); figures go to its ``figures/``.
    force : bool
        Re-run claims that already have a result for the same configuration (saved results
        with verdict ``'error'`` are always re-run).
    figures : bool
        Write ``figures/NAME.png`` for each claim (also for resumed ones when missing).
    progress : ProgressLine, optional
    on_result : callable(result, resumed), optional
        Called after each claim.

    Returns
    -------
    list of ClaimResult
        In the order run; a claim that raised has verdict ``'error'``. When all claims are run,
        each claim module that failed to import (:data:`verify.claims.IMPORT_ERRORS`) comes
        first as an unsaved ``'error'`` result.
    """
    claims = _resolve(names)
    results_dir = Path(results_dir)
    results: list[ClaimResult] = []
    if not names:  # "all claims": a module that failed to import is an error, not a silent gap
        from verify.claims import IMPORT_ERRORS

        for module, err in IMPORT_ERRORS.items():
            broken = ClaimResult(
                claim=f"{module} (module)",
                kind="",
                verdict="error",
                detail=f"claim module verify.claims.{module} failed to import: {err}",
                traceback=err,
            )
            results.append(broken)
            if on_result is not None:
                on_result(broken, False)
    software = None
    for i, claim in enumerate(claims):
        if progress is not None:
            progress.start(i, claim.name)
        try:
            config = claim.full_config(ctx)
        except Exception as exc:  # a broken config is the claim's error, not the run's
            result, resumed = _error_result(claim, exc), False
            config = {"claim": claim.name, **ctx.settings()}
        else:
            path = result_path(results_dir, claim.name, config)
            resumed = path.exists() and not force
            if resumed:
                try:
                    result = load_result(path)
                except (json.JSONDecodeError, TypeError, ValueError, KeyError):
                    resumed = False  # unreadable file: recompute and overwrite it
                else:
                    resumed = result.verdict != "error"  # an exception is retried, not kept
            if not resumed:
                t0 = time.perf_counter()
                try:
                    result = claim.run(ctx)
                    if not isinstance(result, ClaimResult):
                        raise TypeError(
                            f"claim {claim.name!r}.run returned {type(result).__name__}, "
                            "expected ClaimResult (use Claim.make_result)"
                        )
                except Exception as exc:
                    result = _error_result(claim, exc)
                result.wall_s = time.perf_counter() - t0
        if not resumed:
            software = software or versions()
            result.config = config
            result.versions = software
            result.backend, result.device = ctx.backend, ctx.device
            result.world_size = ctx.world_size
            result.timestamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
            save_result(result, results_dir)
        if figures and result.verdict != "error":
            png = results_dir / "figures" / f"{claim.name}.png"
            if not resumed or not png.exists():
                try:
                    save_figure(result, png)
                except Exception as exc:  # a figure never changes a verdict
                    print(f"warning: figure for {claim.name} failed: {exc}", file=sys.stderr)
        results.append(result)
        if progress is not None:
            progress.index = i + 1
            progress.update(("resumed " if resumed else "") + result.verdict)
        if on_result is not None:
            on_result(result, resumed)
    if progress is not None:
        progress.finish()
    return results


def _fmt_interval(interval) -> str:
    if interval is None:
        return "-"
    lo, hi = interval
    return f"[{_fmt(lo)}, {_fmt(hi)}]"


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, str):
        return v
    x = float(v)
    if x != x or x in (float("inf"), float("-inf")):
        return str(x)
    if x == 0:
        return "0"
    return f"{x:.4g}" if 1e-3 <= abs(x) < 1e5 else f"{x:.3e}"


def result_rows(results: Iterable[ClaimResult]) -> list[dict[str, Any]]:
    """Table rows (strings) for ``results``: the columns of :data:`TABLE_COLUMNS`."""
    return [
        {
            "claim": r.claim,
            "kind": r.kind,
            "predicted": _fmt(r.predicted),
            "measured": _fmt(r.measured),
            "interval": _fmt_interval(r.interval),
            "verdict": r.verdict.upper() if r.verdict != "pass" else r.verdict,
            "wall_s": f"{r.wall_s:.1f}",
        }
        for r in results
    ]


def format_results(results: Sequence[ClaimResult], *, details: bool = True) -> str:
    """The table of results, followed by one detail line per claim."""
    from theorylab.output import format_table

    text = format_table(result_rows(results), TABLE_COLUMNS)
    if details:
        text += "\n\n" + "\n".join(f"{r.claim}: {r.detail}" for r in results)
    return text
