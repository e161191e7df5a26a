"""Running claims, saving their results, resuming, and printing the table.

Results live in a folder (``./results`` by default): one JSON file per claim and configuration,
``NAME-HASH.json`` where ``HASH`` is a hash of the full configuration
(:meth:`verify.claims.base.Claim.full_config`). Each file is written atomically (a temporary
file in the same folder, then ``os.replace``) as soon as its claim finishes, so a failed or
killed run loses no finished result; re-running skips every claim whose file already exists for
the same configuration (unless ``force``; a saved ``'error'`` is retried). An exception inside a
claim becomes a result with verdict ``'error'`` and its traceback, and the run goes on; so does a
claim that outlives its time limit (``ClaimContext.claim_timeout_s``, ``theorylab verify
--timeout``, else :meth:`Claim.default_timeout_s`).
Figures (one PNG per claim, drawn by the claim's ``plot``) go to ``RESULTS/figures/NAME.png``.

A results folder is untrusted input. :func:`load_result` reads only regular files (a FIFO or a
device is refused without blocking; a directory is refused), at most :data:`MAX_RESULT_BYTES`,
nested at most :data:`MAX_JSON_DEPTH` deep, checks the type of every field, and checks that the
file is named after its own content (``NAME-HASH.json`` with ``HASH`` the hash of its
configuration), so a result is never resumed for another configuration and a claim name is
always a plain identifier. Anything else is skipped with a :class:`ResultFileWarning` (and, when
resuming, recomputed). File names are built from registered claim names and configuration
hashes only, never from a file's content.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import re
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from theorylab.errors import TheorylabError
from theorylab.safe_json import (  # noqa: F401  (re-exported: the names report always had)
    MAX_JSON_DEPTH,
    MAX_RESULT_BYTES,
    ResultFileError,
    ResultFileWarning,
    read_json,
)
from verify.claims.base import (
    CLAIMS,
    VERDICTS,
    Claim,
    ClaimContext,
    ClaimResult,
    plot_series,
    versions,
)
from verify.memory import release_free_memory

__all__ = [
    "config_hash",
    "result_path",
    "save_result",
    "load_result",
    "load_results",
    "validate_result",
    "ResultFileError",
    "ResultFileWarning",
    "MAX_RESULT_BYTES",
    "MAX_JSON_DEPTH",
    "run_claims",
    "result_rows",
    "format_results",
    "save_figure",
    "ProgressLine",
]

TABLE_COLUMNS = ("claim", "kind", "predicted", "measured", "interval", "verdict", "wall_s")

#: largest result file read (bytes); a result of the full budget is well under 1 MB
#: what a claim name (the first part of a result's file name) may be
_NAME = re.compile(r"[A-Za-z0-9_]{1,128}")


def config_hash(config: dict[str, Any]) -> str:
    """First 12 hex digits of the SHA-256 of the canonical JSON of ``config``."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def result_path(results_dir: str | os.PathLike, name: str, config: dict[str, Any]) -> Path:
    """``RESULTS/NAME-HASH.json`` for claim ``name`` with ``config``.

    Raises
    ------
    TheorylabError
        If ``name`` is not a plain identifier (letters, digits, ``_``): it names a file.
    """
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise TheorylabError(
            f"a claim name must be 1-128 letters, digits or '_' (it names a file), got {name!r}"
        )
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


_NONFINITE = ("inf", "-inf", "nan")


def _is_number(v, *, encoded_nonfinite: bool = True) -> bool:
    """A JSON number (not a bool), or a non-finite float as ``ClaimResult.to_dict`` writes it."""
    if isinstance(v, bool):
        return False
    if isinstance(v, (int, float)):
        return True
    return encoded_nonfinite and isinstance(v, str) and v in _NONFINITE


def _check_fields(data: dict) -> None:
    """Raise :class:`ResultFileError` naming the first field of ``data`` of the wrong type."""

    def bad(key: str, expected: str):
        value = repr(data[key])
        if len(value) > 60:
            value = value[:57] + "..."
        return ResultFileError(f"field {key!r} must be {expected}, got {value}")

    def is_str_or_none(v) -> bool:
        return v is None or isinstance(v, str)

    def is_interval(v) -> bool:
        return isinstance(v, list) and len(v) == 2 and all(_is_number(u) for u in v)

    for key in ("claim", "kind", "verdict"):
        if key not in data:
            raise ResultFileError(f"field {key!r} is missing")
    if not isinstance(data["claim"], str) or not _NAME.fullmatch(data["claim"]):
        raise bad("claim", "a claim name (letters, digits, '_')")
    if data["verdict"] not in VERDICTS:
        raise bad("verdict", f"one of {VERDICTS}")
    expected = {
        "kind": (lambda v: isinstance(v, str), "a string"),
        "predicted": (lambda v: v is None or _is_number(v) or isinstance(v, str), "a number"),
        "measured": (lambda v: v is None or _is_number(v), "a number or null"),
        "interval": (lambda v: v is None or is_interval(v), "a list of two numbers or null"),
        "detail": (lambda v: isinstance(v, str), "a string"),
        "issue": (lambda v: isinstance(v, str), "a string"),
        "checks": (
            lambda v: isinstance(v, list) and all(isinstance(c, dict) for c in v),
            "a list of objects",
        ),
        "series": (lambda v: isinstance(v, dict), "an object"),
        "config": (lambda v: isinstance(v, dict), "an object"),
        "seeds": (
            lambda v: (
                isinstance(v, list)
                and all(isinstance(u, int) and not isinstance(u, bool) for u in v)
            ),
            "a list of integers",
        ),
        "versions": (
            lambda v: isinstance(v, dict) and all(isinstance(u, str) for u in v.values()),
            "an object of strings",
        ),
        "backend": (lambda v: isinstance(v, str), "a string"),
        "device": (lambda v: isinstance(v, str), "a string"),
        "world_size": (
            lambda v: v is None or (isinstance(v, int) and not isinstance(v, bool) and v >= 1),
            "an integer >= 1 or null",
        ),
        "wall_s": (
            lambda v: _is_number(v, encoded_nonfinite=False) and math.isfinite(v) and v >= 0,
            "a finite number of seconds >= 0",
        ),
        "bytes_sent": (
            lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0,
            "an integer >= 0",
        ),
        "timestamp": (lambda v: isinstance(v, str), "a string"),
        "traceback": (is_str_or_none, "a string or null"),
    }
    for key, (ok, what) in expected.items():
        if key in data and not ok(data[key]):
            raise bad(key, what)
    for i, check in enumerate(data.get("checks", [])):
        kinds = {
            "name": lambda v: isinstance(v, str),
            "passed": lambda v: isinstance(v, bool),
            "predicted": lambda v: v is None or _is_number(v) or isinstance(v, str),
            "measured": lambda v: v is None or _is_number(v),
            "interval": lambda v: v is None or is_interval(v),
            "detail": lambda v: isinstance(v, str),
        }
        for key, ok in kinds.items():
            if key in check and not ok(check[key]):
                raise ResultFileError(f"field 'checks'[{i}][{key!r}] has the wrong type")


def validate_result(data, name: str | None = None) -> ClaimResult:
    """A :class:`ClaimResult` from untrusted decoded JSON ``data``, or :class:`ResultFileError`.

    Checks the type of every field (numbers are numbers, ``wall_s`` is finite, ``claim`` is a
    plain identifier, ...) and, given the file ``name``, that it is ``CLAIM-HASH.json`` with
    ``HASH`` = :func:`config_hash` of the stored configuration (and the configuration's own
    ``claim`` entry, when present, is the claim).
    """
    if not isinstance(data, dict):
        raise ResultFileError(f"it holds a JSON {type(data).__name__}, not a result object")
    _check_fields(data)
    config = data.get("config", {})
    if "claim" in config and config["claim"] != data["claim"]:
        raise ResultFileError(
            f"its configuration is of claim {config['claim']!r} but the result of {data['claim']!r}"
        )
    if name is not None:
        expected = f"{data['claim']}-{config_hash(config)}.json"
        if name != expected:
            raise ResultFileError(
                f"its name does not match its content (claim and configuration give {expected})"
            )
    try:
        return ClaimResult.from_dict(data)
    except (TypeError, ValueError) as exc:
        raise ResultFileError(f"it is not a valid result: {exc}") from None


def load_result(path: str | os.PathLike, *, check_name: bool = True) -> ClaimResult:
    """Read and validate one result file (untrusted input; see the module docstring).

    Parameters
    ----------
    path : path
        A ``NAME-HASH.json`` file written by :func:`save_result`.
    check_name : bool, default True
        Require the file name to be ``CLAIM-HASH.json`` for the claim and configuration inside
        (a renamed or edited file is not that result).

    Raises
    ------
    ResultFileError
        Naming the file and why it is not a valid result: not a regular file (directory, FIFO,
        device), too large, not UTF-8 JSON, nested deeper than :data:`MAX_JSON_DEPTH`, a field of
        the wrong type, or a name that does not match its content. Never blocks.
    """
    path = Path(path)
    try:
        data = read_json(path)
        return validate_result(data, path.name if check_name else None)
    except ResultFileError as exc:
        raise ResultFileError(f"{path}: {exc}") from None


def load_results(results_dir: str | os.PathLike, *, check_name: bool = True) -> list[ClaimResult]:
    """Every valid result in ``results_dir``, oldest first; the rest skipped with a warning.

    The loader for everything that reads a results folder (``figures/plot.py`` included):
    each ``*.json`` entry goes through :func:`load_result`; an entry that is not a valid result
    (see there) is skipped with a :class:`ResultFileWarning` naming it and the reason. Every
    returned result's ``claim`` is a plain identifier (letters, digits, ``_``), safe in a file
    name. A missing folder gives an empty list.
    """
    out = []
    try:
        entries = sorted(Path(results_dir).glob("*.json"))
    except OSError as exc:
        warnings.warn(f"cannot list {results_dir}: {exc}", ResultFileWarning, stacklevel=2)
        return []
    for path in entries:
        try:
            out.append(load_result(path, check_name=check_name))
        except ResultFileError as exc:
            warnings.warn(f"skipping {exc}", ResultFileWarning, stacklevel=2)
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


def _run_one(claim: Claim, ctx: ClaimContext) -> ClaimResult:
    """``claim.run(ctx)`` under the claim's time limit; an exception becomes an error result."""
    limit = ctx.claim_timeout_s
    if limit is None:
        limit = claim.default_timeout_s(ctx)
    t0 = time.perf_counter()
    from verify.run import time_limit  # when a claim runs: reading results needs no runner

    ctx.deadline = time.monotonic() + limit
    try:
        with time_limit(lambda: ctx.deadline):  # the simulator's runs stop at it too
            result = claim.run(ctx)
        if not isinstance(result, ClaimResult):
            raise TypeError(
                f"claim {claim.name!r}.run returned {type(result).__name__}, "
                "expected ClaimResult (use Claim.make_result)"
            )
    except Exception as exc:
        result = _error_result(claim, exc)
        if time.monotonic() >= ctx.deadline:
            result.detail += (
                f" [the claim's time limit of {limit:g} s was reached; set it with "
                "`theorylab verify --timeout SECONDS`]"
            )
    finally:
        ctx.deadline = None
    result.wall_s = time.perf_counter() - t0
    return result


def select_claims(names: Sequence[str] | None, *, wall_clock: bool = False) -> list[Claim]:
    """The claims to run: the named ones, or every registered claim when ``names`` is empty.

    "Every claim" leaves out the claims that measure wall-clock time (``Claim.wall_clock``),
    whose verdict depends on what else the machine runs, unless ``wall_clock`` is true; a named
    claim always runs. Unknown names raise :class:`~theorylab.errors.TheorylabError` (before any
    process starts).
    """
    if not names:
        return [c for c in CLAIMS.values() if wall_clock or not c.wall_clock]
    unknown = [n for n in names if n not in CLAIMS]
    if unknown:
        raise TheorylabError(
            f"unknown claim(s) {unknown}; known claims: {sorted(CLAIMS)} "
            "(see `theorylab verify --list`)"
        )
    return [CLAIMS[n] for n in dict.fromkeys(names)]


_resolve = select_claims  # the old private name


def run_claims(
    names: Sequence[str] | None,
    ctx: ClaimContext,
    results_dir: str | os.PathLike = "results",
    *,
    force: bool = False,
    figures: bool = True,
    progress: ProgressLine | None = None,
    on_result: Callable[[ClaimResult, bool], None] | None = None,
    wall_clock: bool = False,
    lanes: int | None = None,
) -> list[ClaimResult]:
    """Run the named claims (all registered ones if ``names`` is empty), saving as they finish.

    With ``names`` empty the wall-clock claims run only if ``wall_clock`` (see
    :func:`select_claims`).

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
        Write ``figures/NAME.png`` for each claim (also for resumed ones when missing): in a
        background process (:class:`verify.drawing.FigureDrawer`) while the next claims run,
        all written when this returns; in this process when ``THEORYLAB_INLINE_FIGURES`` is
        set or the claim overrides ``plot``.
    progress : ProgressLine, optional
    on_result : callable(result, resumed), optional
        Called after each claim.
    lanes : {1, 2} or None
        2: the claims that never use the worker pool (``Claim.ranks = False``) run in a second
        process (:class:`verify.lanes.SimulatedLane`) while this one runs the others; 1: all in
        this process, in order. ``None``: :func:`verify.lanes.default_lanes` (2 on a machine with
        two or more cores, unless ``THEORYLAB_LANES=1``, a wall-clock claim is selected, the
        device is CUDA, or the context was given a pool, e.g. under torchrun).

    Returns
    -------
    list of ClaimResult
        In the order run; a claim that raised has verdict ``'error'``. When all claims are run,
        each claim module that failed to import (:data:`verify.claims.IMPORT_ERRORS`) comes
        first as an unsaved ``'error'`` result.
    """
    claims = select_claims(names, wall_clock=wall_clock)
    results_dir = Path(results_dir)
    if results_dir.exists() and not results_dir.is_dir():
        raise TheorylabError(f"results folder {str(results_dir)!r} exists but is not a folder")
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
    from verify.lanes import SimulatedLane, default_lanes
    from verify.runtime.launch import DistributedError

    if lanes is None:
        lanes = default_lanes(claims, ctx)
    if lanes not in (1, 2):
        raise TheorylabError(f"lanes must be 1 or 2, got {lanes!r}")
    if lanes == 2 and (any(c.wall_clock for c in claims) or ctx.pool_started):
        warnings.warn(
            "lanes=2 ignored: a wall-clock claim needs the machine to itself, and a context "
            "that already holds a pool (torchrun) runs its claims in order",
            UserWarning,
            stacklevel=2,
        )
        lanes = 1
    # the lane's share, longest first (the main process takes back the short ones at the end)
    lane_names = []
    if lanes == 2:
        # the lane knows the claims `import verify.claims` registers; one registered at run
        # time (a script, a notebook, a test) runs here
        simulated = [
            c for c in claims if not c.ranks and type(c).__module__.startswith("verify.claims.")
        ]
        lane_names = [c.name for c in sorted(simulated, key=lambda c: -c.expected_s)]
    drawer = _background_drawer() if figures else None
    lane = None
    try:
        if lane_names:
            try:
                lane = SimulatedLane(ctx, results_dir, force, lane_names)
            except DistributedError as exc:  # then every claim runs in this process, in order
                print(f"warning: {exc}; the claims run in one lane", file=sys.stderr)
        _run_claims_loop(claims, ctx, results_dir, results, force, figures, progress, on_result,
                         drawer, lane)  # fmt: skip
    finally:
        if lane is not None:
            lane.close()
        if drawer is not None:
            for name, exc in drawer.close():
                print(f"warning: figure for {name} failed: {exc}", file=sys.stderr)
    if progress is not None:
        progress.finish()
    return results


def _background_drawer():
    """The figure process of :mod:`verify.drawing`, unless ``THEORYLAB_INLINE_FIGURES`` is set."""
    if os.environ.get("THEORYLAB_INLINE_FIGURES"):
        return None
    from verify.drawing import FigureDrawer

    return FigureDrawer()


def _run_claims_loop(claims, ctx, results_dir, results, force, figures, progress, on_result,
                     drawer, lane=None) -> None:  # fmt: skip
    """Run ``claims`` in order, appending to ``results``; with a ``lane``
    (:class:`verify.lanes.SimulatedLane`), the claims that never use the worker pool run in it,
    beside the others, and ``results`` keeps the order of ``claims``."""
    if lane is None:
        for i, claim in enumerate(claims):
            if progress is not None:
                progress.start(i, claim.name)
            result, resumed = run_and_save(claim, ctx, results_dir, force)
            _finish(claim, result, resumed, results_dir, figures, drawer, progress, on_result)
            results.append(result)
        return
    done: dict[str, ClaimResult] = {}
    by_name = {c.name: c for c in claims}

    def collect(name, result, resumed):
        _finish(by_name[name], result, resumed, results_dir, figures, drawer, progress, on_result)
        done[name] = result

    for claim in claims:  # the lane took its share (ranks = False) when it started
        if claim.name not in lane.names:
            lane.poll(collect)
            if progress is not None:
                progress.start(len(done), claim.name)
            collect(claim.name, *run_and_save(claim, ctx, results_dir, force))
    while True:  # the pool's claims are done: take unstarted ones back, wait for the rest
        lane.poll(collect)
        claim = lane.take_back()
        if claim is None:
            break
        if progress is not None:
            progress.start(len(done), claim)
        collect(claim, *run_and_save(by_name[claim], ctx, results_dir, force))
    lane.finish(collect)
    results.extend(done[c.name] for c in claims)


def run_and_save(claim: Claim, ctx: ClaimContext, results_dir: Path, force: bool):
    """Resume ``claim``'s saved result for this configuration, or run and save it.

    Returns ``(result, resumed)``; a claim that raises (or whose configuration is broken) gives
    an ``'error'`` result, saved like any other.
    """
    try:
        config = claim.full_config(ctx)
    except Exception as exc:  # a broken config is the claim's error, not the run's
        result, resumed = _error_result(claim, exc), False
        config = {"claim": claim.name, **ctx.settings()}
        path = None
    else:
        path = result_path(results_dir, claim.name, config)
        resumed = (path.exists() or path.is_symlink()) and not force
        if resumed:
            try:
                result = load_result(path)  # also checks that it is this configuration's
            except ResultFileError as exc:
                warnings.warn(f"{exc}; recomputing it", ResultFileWarning, stacklevel=2)
                resumed = False  # unreadable or invalid: recompute (and replace if we can)
            else:
                resumed = result.verdict != "error"  # an exception is retried, not kept
        if not resumed:
            result = _run_one(claim, ctx)
            release_free_memory()  # what the claim freed goes back to the OS (verify.memory)
    if not resumed:
        result.config = config
        result.versions = _versions()
        result.backend, result.device = ctx.backend, ctx.device
        result.world_size = ctx.world_size
        result.timestamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
        try:
            save_result(result, results_dir)
        except OSError as exc:  # e.g. a directory in the way: report the result anyway
            warnings.warn(f"{claim.name}: result not saved to {path}: {exc}", ResultFileWarning, 2)
    return result, resumed


def _finish(claim, result, resumed, results_dir, figures, drawer, progress, on_result) -> None:
    """After a claim: its figure (queued in the background when possible), progress, callback."""
    if figures and result.verdict != "error":
        png = Path(results_dir) / "figures" / f"{claim.name}.png"
        if not resumed or not png.exists():
            # in the background process when the claim draws with figures.draw (the
            # default Claim.plot); else here
            queued = (
                drawer is not None
                and type(claim).plot is Claim.plot
                and drawer.submit(claim.name, result.to_dict(), png)
            )
            if not queued:
                try:
                    save_figure(result, png)
                except Exception as exc:  # a figure never changes a verdict
                    print(f"warning: figure for {claim.name} failed: {exc}", file=sys.stderr)
    if progress is not None:
        progress.index += 1
        progress.name = claim.name
        progress.update(("resumed " if resumed else "") + result.verdict)
    if on_result is not None:
        on_result(result, resumed)


@functools.cache
def _versions() -> dict[str, str]:
    return versions()


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
