"""What a claim is: a configuration, a run that measures and compares, a figure.

A claim (shared/DESIGN.md, "How a claim is verified") is a problem with known constants, one or
more algorithm configurations, a prediction from :mod:`theorylab`, a measurement from
:mod:`verify`, and a rule that compares them. Its ``kind`` names the rule:

- ``'exact'``: the predicted expectation lies inside the measured confidence interval at every
  checkpoint (:func:`verify.claims.stats.exact_rule`);
- ``'bound'``: a published upper bound lies above the measured upper confidence limit at every
  checkpoint (:func:`verify.claims.stats.bound_rule`);
- ``'shape'``: a fitted exponent matches the predicted one within a stated tolerance
  (:func:`verify.claims.stats.shape_rule`).

Writing a claim: subclass :class:`Claim`, set ``name``, ``kind``, ``issue``, ``description``;
implement ``config(budget)`` (everything that determines the result, for ``'quick'`` and
``'full'``) and ``run(ctx)`` (measure, compare, return :meth:`Claim.make_result`); optionally
``plot(result, fig)``. Decorate the class with :func:`register_claim` and put the module under
``verify/claims/``: it is imported automatically.

The run settings (backend, device, world size, seed, replicas) come from the
:class:`ClaimContext` and are merged into the configuration by :meth:`Claim.full_config`, which
is what is saved and hashed for resuming.
"""

from __future__ import annotations

import abc
import functools
import math
import platform
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from theorylab.errors import TheorylabError, check_int
from theorylab.output import to_jsonable

from .stats import RuleOutcome

__all__ = [
    "KINDS",
    "VERDICTS",
    "BUDGETS",
    "Claim",
    "ClaimResult",
    "ClaimContext",
    "CLAIMS",
    "register_claim",
    "versions",
    "plot_series",
]

KINDS = ("exact", "bound", "shape")
VERDICTS = ("pass", "fail", "error")
BUDGETS = ("quick", "full")


def versions() -> dict[str, str]:
    """Versions of the software a result was computed with (saved in every result)."""
    import scipy
    import torch

    import theorylab

    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "torch": str(torch.__version__),  # a plain str: TorchVersion pickles as torch
        "theorylab": theorylab.__version__,
        "platform": platform.platform(terse=True),
    }


def _to_float(v):
    """Inverse of the JSON encoding of non-finite floats ('inf', '-inf', 'nan')."""
    if isinstance(v, str) and v in ("inf", "-inf", "nan"):
        return float(v)
    if isinstance(v, list):
        return [_to_float(u) for u in v]
    if isinstance(v, dict):
        return {k: _to_float(u) for k, u in v.items()}
    return v


@dataclass
class ClaimResult:
    """The outcome of one claim: the row of the table plus everything needed to redraw and resume.

    Attributes
    ----------
    claim, kind, issue : str
        The claim's name, rule kind (``'exact'``, ``'bound'``, ``'shape'``) and issue.
    verdict : {'pass', 'fail', 'error'}
    predicted : float or str or None
        The prediction at the deciding checkpoint (or a short text such as ``'slope -1'``).
    measured : float or None
        The measurement at the deciding checkpoint.
    interval : (float, float) or None
        Its confidence interval.
    detail : str
        One line, e.g. ``'bound/measured = 3.2x at its tightest'``; the error for ``'error'``.
    checks : list of dict
        Each sub-check (``name``, ``passed``, ``predicted``, ``measured``, ``interval``,
        ``detail``): a claim holds when all hold.
    series : dict
        Arrays for the figure (lists of floats, possibly nested one level by panel).
    config : dict
        The full configuration (claim parameters and run settings); its hash names the file.
    seeds : list of int
    versions : dict of str
    backend, device : str
    world_size : int or None
    wall_s : float
        Wall-clock seconds of the claim's run.
    bytes_sent : int
        Algorithm bytes put on the wire by all ranks of the distributed runs.
    timestamp : str
        ISO 8601 UTC time the result was finished.
    traceback : str or None
        The traceback when ``verdict == 'error'``.
    """

    claim: str
    kind: str
    verdict: str
    predicted: float | str | None = None
    measured: float | None = None
    interval: tuple[float, float] | None = None
    detail: str = ""
    issue: str = ""
    checks: list[dict[str, Any]] = field(default_factory=list)
    series: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    seeds: list[int] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=dict)
    backend: str = ""
    device: str = ""
    world_size: int | None = None
    wall_s: float = 0.0
    bytes_sent: int = 0
    timestamp: str = ""
    traceback: str | None = None

    def __post_init__(self):
        if self.verdict not in VERDICTS:
            raise TheorylabError(f"verdict must be one of {VERDICTS}, got {self.verdict!r}")

    @property
    def passed(self) -> bool:
        return self.verdict == "pass"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (non-finite floats become the strings 'inf', '-inf', 'nan')."""
        return to_jsonable({f.name: getattr(self, f.name) for f in fields(self)})

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ClaimResult:
        """Inverse of :meth:`to_dict`; unknown keys (from newer versions) are ignored.

        Raises
        ------
        TypeError
            If ``data`` is not a mapping (a JSON file that is not a result) or lacks a field.
        """
        if not isinstance(data, Mapping):
            raise TypeError(
                f"a saved claim result must be a JSON object, got {type(data).__name__}"
            )
        names = {f.name for f in fields(cls)}
        kw = {k: v for k, v in data.items() if k in names}
        for key in ("predicted", "measured", "series", "checks"):
            if key in kw:
                kw[key] = _to_float(kw[key])
        if kw.get("interval") is not None:
            kw["interval"] = tuple(float(v) for v in kw["interval"])
        return cls(**kw)


class ClaimContext:
    """The settings of one ``theorylab verify`` run, and the worker pool its claims share.

    Parameters
    ----------
    budget : {'quick', 'full'}
        Size of every claim's sweep (steps, replicas, grid).
    backend : {'gloo', 'nccl'}
        torch.distributed backend of the distributed executor.
    device : {'cpu', 'cuda'}
        Device of the tensors (``'cuda'`` with ``'nccl'`` or ``'gloo'``; needs CUDA, checked
        here so a run without it fails at once rather than once per claim).
    world_size : int >= 2
        Number of processes of the distributed executor; claims measured distributed use
        ``n = world_size`` nodes (one per rank).
    seed : int >= 0
        Base seed; each claim derives its seeds from it.
    replicas : int >= 2 or None
        Replicas per node (overrides each claim's budget default when given).
    progress : callable(str) or None
        Called with short status messages by long claims (:meth:`progress`).
    run_timeout_s : float > 0 or None
        Wall-clock limit (seconds) on each call to the worker pool (:meth:`run_on_ranks`,
        :meth:`run_distributed`): a rank stuck in pure computation (which the communication
        timeouts cannot see) is terminated after it and the claim becomes an ``'error'``.
        Default 600; ``None`` waits forever. Not part of a claim's configuration (it does not
        change a result that finishes).
    claim_timeout_s : float > 0 or None
        Time limit (seconds) of each claim (``theorylab verify --timeout``): once a claim has
        run this long, its waits for the worker processes end and it becomes an ``'error'``
        naming the stuck ranks, and its simulated runs stop at their next step
        (:func:`verify.run.time_limit`); starting the pool does not count. ``None``: each claim's
        :meth:`Claim.default_timeout_s`. Enforced by :func:`verify.report.run_claims` through
        :attr:`deadline`; not part of a claim's configuration.
    pool : object or None
        A ready pool with the :class:`verify.runtime.WorkerPool` interface (``run``,
        ``ensure_started``, ``close``) to use instead of spawning one: under ``torchrun``, the
        job's ranks (:class:`verify.runtime.torchrun.TorchrunPool`, ``world_size`` its size).

    The :attr:`pool` of worker processes is started on first use and shared by all claims;
    :meth:`close` (or leaving a ``with`` block) stops it.
    """

    def __init__(
        self,
        budget: str = "quick",
        *,
        backend: str = "gloo",
        device: str = "cpu",
        world_size: int = 4,
        seed: int = 0,
        replicas: int | None = None,
        progress: Callable[[str], None] | None = None,
        run_timeout_s: float | None = 600.0,
        claim_timeout_s: float | None = None,
        pool=None,
    ):
        if budget not in BUDGETS:
            raise TheorylabError(f"budget must be one of {BUDGETS}, got {budget!r}")
        if backend not in ("gloo", "nccl"):
            raise TheorylabError(f"backend must be 'gloo' or 'nccl', got {backend!r}")
        if device not in ("cpu", "cuda"):
            raise TheorylabError(f"device must be 'cpu' or 'cuda', got {device!r}")
        if backend == "nccl" and device != "cuda":
            raise TheorylabError("backend 'nccl' needs device 'cuda'; use --device cuda or gloo")
        if device == "cuda":
            import torch

            if not torch.cuda.is_available():
                raise TheorylabError(
                    "device 'cuda' was requested but CUDA is not available on this machine; "
                    "use --device cpu (with --backend gloo)"
                )
        self.budget = budget
        self.backend = backend
        self.device = device
        self.world_size = check_int("world_size", world_size, minimum=2)
        self.seed = check_int("seed", seed, minimum=0)
        self.replicas = None if replicas is None else check_int("replicas", replicas, minimum=2)
        if run_timeout_s is not None and not (
            isinstance(run_timeout_s, (int, float)) and math.isfinite(run_timeout_s)
            and run_timeout_s > 0
        ):  # fmt: skip
            raise TheorylabError(
                f"run_timeout_s must be a finite number of seconds > 0 or None, got "
                f"{run_timeout_s!r}"
            )
        self.run_timeout_s = None if run_timeout_s is None else float(run_timeout_s)
        # per-claim time limit (timeout plumbing): run_claims sets `deadline` (time.monotonic())
        # around each claim; run_on_ranks waits at most until it
        if claim_timeout_s is not None and not (
            isinstance(claim_timeout_s, (int, float)) and not isinstance(claim_timeout_s, bool)
            and math.isfinite(claim_timeout_s) and claim_timeout_s > 0
        ):  # fmt: skip
            raise TheorylabError(
                f"claim_timeout_s must be a finite number of seconds > 0 or None, got "
                f"{claim_timeout_s!r}"
            )
        self.claim_timeout_s = None if claim_timeout_s is None else float(claim_timeout_s)
        self.deadline: float | None = None
        self._progress = progress
        self._pool = pool

    def settings(self) -> dict[str, Any]:
        """The run settings that enter every claim's configuration."""
        out = {
            "budget": self.budget,
            "backend": self.backend,
            "device": self.device,
            "world_size": self.world_size,
            "seed": self.seed,
        }
        if self.replicas is not None:
            out["replicas"] = self.replicas
        return out

    def progress(self, message: str) -> None:
        """Report a status message (shown on the progress line); no-op without a callback."""
        if self._progress is not None:
            self._progress(message)

    @property
    def pool(self):
        """The shared :class:`verify.runtime.WorkerPool` (``world_size`` ranks), started lazily."""
        if self._pool is None:
            from verify.runtime import WorkerPool

            t0 = time.monotonic()
            self._pool = WorkerPool(
                self.world_size, self.backend, self.device, progress=self.progress
            )
            if self.deadline is not None:  # start-up is not the claim's time
                self.deadline += time.monotonic() - t0
        return self._pool

    @property
    def pool_started(self) -> bool:
        return self._pool is not None

    def oracle(self, problem):
        """A picklable factory of the problem's gradient oracle on this run's device.

        Each rank builds its own oracle (on its own device) from it; the simulator calls it once.
        """
        from verify.oracles import QuadraticOracle

        return functools.partial(QuadraticOracle, problem, device=self.device)

    def run_on_ranks(self, fn, *args, **kwargs) -> list:
        """``fn(rank, world_size, *args, **kwargs)`` on every rank of the shared pool, results by
        rank, bounded by :attr:`run_timeout_s`.

        Raises
        ------
        verify.runtime.DistributedError
            If a rank raises, dies, or the call takes longer than ``run_timeout_s`` or than is
            left before :attr:`deadline` (the claim's time limit).
        """
        pool = self.pool
        restart_s = pool.ensure_started()  # after a failure: not the claim's time either
        limit = self.run_timeout_s
        if self.deadline is not None:
            self.deadline += restart_s
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("the claim's time limit was spent before this run on the ranks")
            limit = left if limit is None else min(limit, left)
        return pool.run(fn, *args, run_timeout_s=limit, **kwargs)

    def run_distributed(
        self,
        algorithm,
        oracle,
        schedule,
        x0,
        steps: int,
        *,
        seed: int,
        record=None,
        replicas: int | None = None,
    ):
        """Run ``algorithm`` on the shared pool (one node per rank; ``n`` must be ``world_size``).

        Arguments as :func:`verify.run.run_simulated` (but ``record`` defaults to every step
        ``0..steps``); returns the combined
        :class:`verify.run.Trajectory` (:meth:`~verify.run.Trajectory.from_ranks`). Bounded by
        :attr:`run_timeout_s` (see :meth:`run_on_ranks`).
        """
        from verify.run import Trajectory, run_distributed

        record = range(steps + 1) if record is None else record  # every step by default
        per_rank = self.run_on_ranks(
            run_distributed, algorithm, oracle, schedule, x0, steps, seed, record,
            replicas=replicas, device=self.device,
        )  # fmt: skip
        return Trajectory.from_ranks(per_rank)

    def run_simulated(
        self,
        algorithm,
        oracle,
        schedule,
        x0,
        steps: int,
        *,
        seed: int,
        record=None,
        replicas: int | None = None,
    ):
        """Run ``algorithm`` with all nodes stacked in this process (any ``n``); ``record``
        defaults to every step, as in :meth:`run_distributed`."""
        from verify.run import run_simulated

        record = range(steps + 1) if record is None else record  # every step by default
        return run_simulated(
            algorithm, oracle, schedule, x0, steps, seed, record,
            replicas=replicas, device=self.device,
        )  # fmt: skip

    def close(self) -> None:
        """Stop the worker pool, if it was started."""
        if self._pool is not None:
            pool, self._pool = self._pool, None
            pool.close()

    def __enter__(self) -> ClaimContext:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Claim(abc.ABC):
    """Base class of every claim; see the module docstring for how to write one.

    Class attributes
    ----------------
    name : str
        Unique, short, snake_case (the table row and the result file name).
    kind : {'exact', 'bound', 'shape'}
    issue : str
        The issue the claim belongs to (e.g. ``'Foundation'``).
    description : str
        One sentence: what is predicted and how it is measured.
    version : int
        Bump when the measurement changes, so saved results of the old version are not reused.
    timeout_s : dict of str to float
        Default time limit of the claim per budget, in seconds at world size <= 4 (see
        :meth:`default_timeout_s`); a claim much slower or faster than most may override it.
    question, plain : str
        The lecture question the claim answers and one plain sentence of what it shows.
    detectable : dict of str -> (str, str)
        Per term, the minimum detectable relative error at 95 % power (quick, full budget).
    """

    name: str = ""
    kind: str = ""
    issue: str = ""
    description: str = ""
    version: int = 1
    #: slowest claims measured on 2 shared CPU cores, world size 4: quick 43 s at load 26
    #: (ef_virtual_iterate; 11 s at load 15), full 567 s at load 15 (psgd_floor_shape); the
    #: limits leave about 3x and 6x of that
    timeout_s: Mapping[str, float] = {"quick": 120.0, "full": 3600.0}

    def default_timeout_s(self, ctx: ClaimContext) -> float:
        """Time limit of this claim: ``timeout_s[budget] * max(1, world_size / 4)`` seconds."""
        return float(self.timeout_s[ctx.budget]) * max(1.0, ctx.world_size / 4)

    #: the lecture question the claim answers, and one plain sentence of what it shows
    #: (``theorylab verify --list`` groups the claims by question)
    question: str = ""
    plain: str = ""
    #: the claim measures wall-clock time, so its verdict depends on what else the machine runs:
    #: ``theorylab verify`` runs it only when named or with ``--wall-clock``
    wall_clock: bool = False
    #: the claim runs (some of) its runs on the worker pool's ranks (``ClaimContext.pool``);
    #: ``False`` for claims that only use the simulator, which may then run in the second lane
    #: of the main job (:mod:`verify.lanes`), where asking for the pool is an error
    ranks: bool = True
    #: rough seconds of the quick budget on one core; orders the second lane's work, longest
    #: first (so a long claim never starts last while the other lane sits idle)
    expected_s: float = 1.0
    #: term -> (quick, full): the minimum detectable relative error at 95% power of the check
    #: that isolates the term (from the claim's own intervals, seed 0), or how it is decided
    detectable: dict = {}

    @abc.abstractmethod
    def config(self, budget: str) -> dict[str, Any]:
        """Everything that determines the result at this budget (JSON-serialisable)."""

    @abc.abstractmethod
    def run(self, ctx: ClaimContext) -> ClaimResult:
        """Measure, compare with the prediction, and return the result (see :meth:`make_result`)."""

    def full_config(self, ctx: ClaimContext) -> dict[str, Any]:
        """``config(ctx.budget)`` with the run settings merged in (settings take precedence)."""
        cfg = dict(self.config(ctx.budget))
        cfg.update(ctx.settings())
        cfg["claim"] = self.name
        cfg["claim_version"] = self.version
        return cfg

    def make_result(
        self,
        checks: Mapping[str, RuleOutcome],
        *,
        headline: str | None = None,
        series: Mapping[str, Any] | None = None,
        seeds: list[int] | None = None,
        bytes_sent: int = 0,
        note: str = "",
    ) -> ClaimResult:
        """A result from named rule outcomes: the claim holds iff every check passes.

        The table row shows the first failing check, else ``headline`` (default: the first).
        """
        if not checks:
            raise TheorylabError(f"claim {self.name!r} produced no checks")
        failing = [k for k, v in checks.items() if not v.passed]
        shown = failing[0] if failing else (headline or next(iter(checks)))
        out = checks[shown]
        n_pass = len(checks) - len(failing)
        detail = f"{shown}: {out.detail}"
        if len(checks) > 1:
            detail += f" [{n_pass}/{len(checks)} checks pass]"
        if note:
            detail += f"; {note}"
        return ClaimResult(
            claim=self.name,
            kind=self.kind,
            issue=self.issue,
            verdict="fail" if failing else "pass",
            predicted=out.predicted,
            measured=out.measured,
            interval=out.interval,
            detail=detail,
            checks=[
                {
                    "name": k,
                    "passed": v.passed,
                    "predicted": v.predicted,
                    "measured": v.measured,
                    "interval": list(v.interval),
                    "detail": v.detail,
                    "mde": getattr(v, "mde", None),
                }
                for k, v in checks.items()
            ],
            series=dict(series or {}),
            seeds=list(seeds or []),
            bytes_sent=int(bytes_sent),
        )

    def plot(self, result: ClaimResult, fig) -> None:
        """Draw ``result`` on the matplotlib figure ``fig``.

        The drawing lives in :mod:`figures.draw` (it reads only the saved result, so
        ``python -m figures.plot`` redraws it without importing any claim); without the
        ``figures`` package, the generic :func:`plot_series`.
        """
        try:
            from figures.draw import draw
        except ImportError:  # figures/ not installed: the generic drawing
            plot_series(result, fig)
            return
        draw(result.to_dict(), fig)


def plot_series(result: ClaimResult, fig) -> None:
    """Generic figure of ``result.series``.

    One panel per top-level dict in ``series`` (or one panel for a flat dict); every list is
    plotted against the panel's ``'x'`` list (else its index), on a log y-axis when all values
    are positive.
    """
    series = result.series or {}
    panels = {k: v for k, v in series.items() if isinstance(v, dict)}
    if not panels:
        panels = {result.claim: series}
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (title, panel) in zip(axes, panels.items()):
        x = panel.get("x")
        for label, ys in panel.items():
            if label == "x" or not isinstance(ys, list) or not ys:
                continue
            if not all(isinstance(v, (int, float)) for v in ys):
                continue
            xs = x if isinstance(x, list) and len(x) == len(ys) else list(range(len(ys)))
            ax.plot(xs, ys, label=label)
        values = [v for ys in panel.values() if isinstance(ys, list) for v in ys]
        if values and all(isinstance(v, (int, float)) and v > 0 for v in values):
            ax.set_yscale("log")
        ax.set_title(title)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="small")
    fig.suptitle(f"{result.claim} ({result.kind}): {result.verdict}")


#: name -> claim instance, filled by :func:`register_claim`
CLAIMS: dict[str, Claim] = {}


def register_claim(cls: type[Claim]) -> type[Claim]:
    """Class decorator: validate the claim's declaration and add an instance to :data:`CLAIMS`."""
    if not (isinstance(cls, type) and issubclass(cls, Claim)):
        raise TypeError(f"register_claim expects a Claim subclass, got {cls!r}")
    if not cls.name or not cls.name.replace("_", "").isalnum():
        raise TheorylabError(
            f"{cls.__qualname__}.name must be a non-empty snake_case identifier, got {cls.name!r}"
        )
    if cls.kind not in KINDS:
        raise TheorylabError(f"{cls.__qualname__}.kind must be one of {KINDS}, got {cls.kind!r}")
    if cls.name in CLAIMS:
        old = type(CLAIMS[cls.name])
        if (old.__module__, old.__qualname__) != (cls.__module__, cls.__qualname__):
            raise TheorylabError(
                f"a claim named {cls.name!r} is already registered by {old.__module__}; "
                "choose another name"
            )
    CLAIMS[cls.name] = cls()
    return cls
