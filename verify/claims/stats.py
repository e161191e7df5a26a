"""The statistics behind the three rules of a claim: confidence intervals, bounds, log-log fits.

A measurement is ``R`` independent seeded replicas of a curve checked at ``m`` checkpoints
(array of shape ``(R, m)``). The rules:

- **exact** (:func:`exact_rule`): the predicted mean lies inside the two-sided confidence
  interval of the replica mean at *every* checkpoint. The intervals are simultaneous: their
  half-width is ``c s_t / sqrt(R)`` with ``c`` the ``level`` quantile of ``max_t |Z_t|``,
  ``Z`` a multivariate Student-t vector whose correlation is the replicas' own correlation
  across checkpoints (:func:`max_abs_t_critical`). Neighbouring checkpoints of one trajectory
  are strongly correlated, so ``c`` is far below Bonferroni's ``t_{1 - (1-level)/(2m)}`` while
  the family-wise false-failure probability stays ``1 - level`` (up to the estimation of the
  correlation and the t-approximation of a mean of ``R`` i.i.d. replicas). Every exact outcome
  reports its **minimum detectable relative error** at 95 % power (:func:`detectable_error`).
- **bound** (:func:`bound_rule`): a published upper bound must lie above the one-sided upper
  confidence limit (Bonferroni over checkpoints) at every checkpoint; the report gives the
  looseness ``min_t bound_t / mean_t``. A bound that is *tight* at some checkpoint fails with
  probability about ``level``: this rule certifies "bound >= truth" with confidence ``level``.
- **shape** (:func:`shape_rule`): least-squares fit of ``log y = a + sum_j b_j log x_j``; the
  whole t-interval of each fitted exponent ``b_j`` (from the residuals, ``m - p - 1`` degrees of
  freedom) must lie within a stated tolerance band around the predicted exponent, so a sweep
  too noisy to pin the exponent fails instead of passing on its point estimate.

All intervals are Student-t intervals of a mean of i.i.d. replicas; for the skewed (chi-square
like) squared errors they are accurate once ``R`` is a few tens (central limit theorem).
A measurement with ``R = 1`` is treated as deterministic: its interval has zero width.

A measurement holding NaN or inf (a run that diverged) makes every rule *fail* (not raise):
where the theory predicts convergence, divergence is a failed prediction; the detail names the
first checkpoint (or sweep point) where the measured curve diverged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from theorylab.errors import TheorylabError, check_probability

__all__ = [
    "MeanCI",
    "RuleOutcome",
    "LogLogFit",
    "mean_ci",
    "bonferroni_level",
    "exact_rule",
    "max_abs_t_critical",
    "detectable_error",
    "POWER",
    "bound_rule",
    "loglog_fit",
    "shape_rule",
]


@dataclass(frozen=True)
class MeanCI:
    """Replica mean and its confidence interval at each checkpoint (arrays of shape ``(m,)``)."""

    mean: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    replicas: int
    level: float


@dataclass
class RuleOutcome:
    """What a rule concluded, in the form a :class:`~verify.claims.base.ClaimResult` stores.

    ``predicted``/``measured``/``interval`` are the values at the *worst* checkpoint (the one
    that decides the verdict); ``curves`` holds the per-checkpoint arrays for the figure.
    """

    passed: bool
    predicted: float
    measured: float
    interval: tuple[float, float]
    detail: str
    curves: dict[str, list[float]] = field(default_factory=dict)
    #: minimum relative error of the prediction detected with probability POWER (exact rules
    #: with R >= 2; None where it does not apply)
    mde: float | None = None


def _as_samples(samples, *, allow_nonfinite: bool = False) -> np.ndarray:
    x = np.asarray(samples, dtype=float)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] < 1:
        raise TheorylabError(
            f"samples must have shape (R, m) with R >= 1 replicas and m >= 1 checkpoints, "
            f"got shape {np.shape(samples)}"
        )
    if not np.all(np.isfinite(x)) and not allow_nonfinite:
        raise TheorylabError(
            "samples contain NaN or inf: the run diverged or failed; check the step size gamma"
        )
    return x


def _diverged(x: np.ndarray, reference, where: str = "checkpoint") -> RuleOutcome | None:
    """A failing outcome if the measurement ``x`` (shape ``(R, m)``) holds NaN or inf, else None.

    A run that diverges where the theory predicts convergence is a failed prediction, not an
    error of the harness: the outcome names the first checkpoint with a non-finite replica.
    """
    bad = ~np.all(np.isfinite(x), axis=0)
    if not np.any(bad):
        return None
    k = int(np.argmax(bad))
    ref = np.asarray(reference, dtype=float).reshape(-1)
    count = int(np.sum(~np.isfinite(x[:, k])))
    with np.errstate(invalid="ignore", over="ignore"):
        mean = x.mean(axis=0)
    return RuleOutcome(
        passed=False,
        predicted=float(ref[k]) if ref.shape[0] > k else float("nan"),
        measured=float("nan"),
        interval=(float("nan"), float("nan")),
        detail=(
            f"measured curve diverged at {where} {k} ({count}/{x.shape[0]} replicas NaN or "
            f"inf; non-finite at {int(np.sum(bad))}/{x.shape[1]} checkpoints)"
        ),
        curves={"predicted": ref.tolist(), "mean": mean.tolist()},
    )


def bonferroni_level(level: float, m: int) -> float:
    """Per-check confidence level so that ``m`` checks hold jointly with probability >= ``level``.

    ``1 - (1 - level)/m`` (Bonferroni's inequality; valid for any dependence between checks).

    Example
    -------
    >>> round(bonferroni_level(0.99, 10), 6)
    0.999
    """
    level = check_probability("level", level)
    if level >= 1:
        raise TheorylabError(f"level must be < 1, got {level}")
    if int(m) < 1:
        raise TheorylabError(f"number of checks m must be >= 1, got {m}")
    return 1.0 - (1.0 - level) / int(m)


#: the power at which a claim states its minimum detectable error
POWER = 0.95

#: draws of the Monte Carlo estimate of the max-|t| critical value (fixed seed: reproducible)
_MC_DRAWS = 20000


def max_abs_t_critical(samples, level: float, *, seed: int = 0) -> float:
    """Critical value ``c`` with ``P(max_t |T_t| <= c) = level`` under the replicas' correlation.

    ``T_t = Z_t / sqrt(chi2_{R-1}/(R-1))`` with ``Z ~ N(0, C)``, ``C`` the sample correlation of
    the ``(R, m)`` samples across checkpoints (one shared chi-square: the joint law of the
    t-statistics of one sample up to the estimation of each variance). Estimated from
    20 000 seeded draws (Monte Carlo error of the level about ``+-0.0007`` at 99 %). Columns
    with zero variance are left out (the caller checks them as deterministic). With ``m = 1``
    it is the two-sided Student-t quantile.

    Example
    -------
    >>> x = np.random.default_rng(0).standard_normal((200, 1))
    >>> from scipy import stats
    >>> round(max_abs_t_critical(x, 0.99), 3) == round(float(stats.t.ppf(0.995, 199)), 3)
    True
    """
    x = _as_samples(samples)
    level = check_probability("level", level)
    R = x.shape[0]
    sd = x.std(axis=0, ddof=1) if R > 1 else np.zeros(x.shape[1])
    keep = sd > 0
    m = int(np.sum(keep))
    if R < 2 or m == 0:
        return 0.0
    if m == 1:
        return _t_quantile(1 - (1 - level) / 2, R - 1)
    C = np.corrcoef(x[:, keep], rowvar=False)
    w, V = np.linalg.eigh((C + C.T) / 2)
    root = V * np.sqrt(np.clip(w, 0.0, None))
    rng = np.random.default_rng(seed)
    Z = rng.standard_normal((_MC_DRAWS, m)) @ root.T
    scale = np.sqrt(rng.chisquare(R - 1, size=_MC_DRAWS) / (R - 1))
    return float(np.quantile(np.max(np.abs(Z), axis=1) / scale, level))


def detectable_error(se, predicted, critical: float, power: float = POWER) -> float:
    """Minimum relative error of a prediction that a test with this critical value detects with
    probability ``power``: ``min_t (c + z_power) se_t / |predicted_t|``.

    A prediction off by a factor ``1 + eps`` at checkpoint ``t`` moves the standardized
    deviation there by ``eps |predicted_t| / se_t``; the test rejects (with probability at least
    ``power``, from that checkpoint alone) once this exceeds ``c + z_power``. Checkpoints with a
    zero predicted value or a standard error at round-off level (below ``1e-9 |predicted|``)
    are ignored.

    Example
    -------
    >>> round(detectable_error([0.01], [1.0], 2.576), 4)
    0.0422
    """
    from scipy import stats as _sps  # lazy: ranks importing the claims skip scipy.stats

    se = np.asarray(se, dtype=float).reshape(-1)
    p = np.abs(np.asarray(predicted, dtype=float).reshape(-1))
    # checkpoints where every replica agrees up to round-off (a fixed start) carry no power
    ok = (se > 1e-9 * p) & (p > 0) & np.isfinite(se)
    if not np.any(ok):
        return float("nan")
    z = float(_sps.norm.ppf(power))
    return float(np.min((critical + z) * se[ok] / p[ok]))


def _pct(level: float) -> str:
    return f"{100 * level:.4g}%"


def _t_quantile(q: float, dof: int) -> float:
    from scipy import stats as _sps  # lazy: ranks importing the claims skip scipy.stats

    return float(_sps.t.ppf(q, dof))


def mean_ci(samples, level: float = 0.99, *, sided: str = "two") -> MeanCI:
    """Mean over replicas (axis 0) and its Student-t confidence interval at each checkpoint.

    ``mean +- t_{q, R-1} s / sqrt(R)`` with ``s`` the sample standard deviation (ddof=1) and
    ``q = 1 - (1 - level)/2`` (two-sided) or ``q = level`` (``sided='upper'``: ``lo`` is then
    ``-inf``). No multiple-checkpoint correction here: pass a Bonferroni level for that.

    Parameters
    ----------
    samples : array_like, shape (R, m) or (R,)
        ``R`` i.i.d. replicas of ``m`` checkpoints. ``R = 1`` gives a zero-width interval
        (a deterministic measurement).
    level : float in (0, 1)
        Confidence level of each interval.
    sided : {'two', 'upper'}

    Returns
    -------
    MeanCI

    Example
    -------
    >>> ci = mean_ci([[1.0], [3.0]], level=0.95)
    >>> float(ci.mean[0]), round(float(ci.hi[0]), 3)
    (2.0, 14.706)
    """
    x = _as_samples(samples)
    level = check_probability("level", level)
    if level >= 1:
        raise TheorylabError(f"level must be < 1, got {level}")
    if sided not in ("two", "upper"):
        raise TheorylabError(f"sided must be 'two' or 'upper', got {sided!r}")
    R = x.shape[0]
    mean = x.mean(axis=0)
    if R == 1:
        half = np.zeros_like(mean)
    else:
        q = 1 - (1 - level) / 2 if sided == "two" else level
        half = _t_quantile(q, R - 1) * x.std(axis=0, ddof=1) / np.sqrt(R)
    lo = mean - half if sided == "two" else np.full_like(mean, -np.inf)
    return MeanCI(mean=mean, lo=lo, hi=mean + half, replicas=R, level=level)


def exact_rule(
    predicted, samples, *, level: float = 0.99, rtol: float = 0.0, atol: float = 0.0
) -> RuleOutcome:
    """Exact rule: ``predicted[t]`` inside the simultaneous CI of the mean at every ``t``.

    The half-width at checkpoint ``t`` is ``c s_t / sqrt(R)`` with ``c`` from
    :func:`max_abs_t_critical` (the max-|t| statistic under the replicas' own correlation across
    checkpoints), so a correct prediction fails with probability ``1 - level`` (family-wise).
    ``rtol``/``atol`` widen every interval by ``atol + rtol |predicted|`` to absorb
    floating-point round-off (the only width of a deterministic measurement: ``R = 1`` or all
    replicas equal at a checkpoint).

    Parameters
    ----------
    predicted : array_like, shape (m,)
        The exact expected value at each checkpoint (e.g. from :mod:`theorylab.exact`).
    samples : array_like, shape (R, m)
        Measured replicas.
    level : float in (0, 1)
        Family-wise confidence level; ``1 - level`` is the false-failure probability.
    rtol, atol : float >= 0
        Numerical tolerance added to each interval.

    Returns
    -------
    RuleOutcome
        At the checkpoint with the largest standardized deviation; ``detail`` states the
        max |measured - predicted| / half-width, the false-failure probability and the minimum
        detectable relative error at 95 % power (also in ``mde``).

    Example
    -------
    >>> rng = np.random.default_rng(0)
    >>> exact_rule([1.0, 2.0], rng.normal([1.0, 2.0], 0.1, size=(50, 2))).passed
    True
    """
    x = _as_samples(samples, allow_nonfinite=True)
    pred = np.asarray(predicted, dtype=float).reshape(-1)
    if pred.shape[0] != x.shape[1]:
        raise TheorylabError(
            f"predicted has {pred.shape[0]} checkpoints but samples have {x.shape[1]}; "
            "record the prediction at the same steps as the measurement"
        )
    level = check_probability("level", level)
    if level >= 1:
        raise TheorylabError(f"level must be < 1, got {level}")
    diverged = _diverged(x, pred)
    if diverged is not None:
        return diverged
    m, R = x.shape[1], x.shape[0]
    mean = x.mean(axis=0)
    se = x.std(axis=0, ddof=1) / np.sqrt(R) if R > 1 else np.zeros(m)
    crit = max_abs_t_critical(x, level)
    tol = atol + rtol * np.abs(pred)
    lo, hi = mean - crit * se - tol, mean + crit * se + tol
    inside = (pred >= lo) & (pred <= hi)
    half = np.maximum(hi - mean, np.finfo(float).tiny)
    z = np.abs(mean - pred) / half
    worst = int(np.argmax(z))
    passed = bool(np.all(inside))
    mde = detectable_error(se, pred, crit) if R > 1 else None
    if R == 1 or not np.any(se > 0):
        detail = (
            f"deterministic (R={R}): max |measured - predicted| / tolerance = {z[worst]:.2g} at "
            f"checkpoint {worst} ({int(np.sum(~inside))}/{m} outside; tolerance "
            f"{atol:.2g} + {rtol:.2g} |predicted|)"
        )
    else:
        detail = (
            f"max |mean - predicted| / CI half-width = {z[worst]:.2f} at checkpoint {worst}"
            f" ({int(np.sum(~inside))}/{m} outside); R={R}, {m} checkpoints, simultaneous "
            f"max-|t| {_pct(level)} (c={crit:.3g}, false-failure prob {1 - level:.2g}); "
            f"detectable relative error {100 * mde:.2g}% at {POWER:.0%} power"
        )
    return RuleOutcome(
        passed=passed,
        predicted=float(pred[worst]),
        measured=float(mean[worst]),
        interval=(float(lo[worst]), float(hi[worst])),
        detail=detail,
        curves={
            "predicted": pred.tolist(),
            "mean": mean.tolist(),
            "lo": lo.tolist(),
            "hi": hi.tolist(),
            "se": se.tolist(),
            "critical": [crit],
        },
        mde=mde,
    )


def bound_rule(bound, samples, *, level: float = 0.99) -> RuleOutcome:
    """Bound rule: ``bound[t] >= `` the upper confidence limit of the mean at every ``t``.

    One-sided upper limits at level ``1 - (1 - level)/m`` (Bonferroni over the ``m``
    checkpoints): a pass certifies, with confidence ``level``, that the true mean lies below the
    bound everywhere. The reported looseness is ``min_t bound[t] / mean[t]`` (how far above the
    measured curve the bound stays at its tightest point).

    Parameters
    ----------
    bound : array_like, shape (m,)
        The upper bound at each checkpoint (e.g. from :mod:`theorylab.rates`).
    samples : array_like, shape (R, m)
    level : float in (0, 1)

    Returns
    -------
    RuleOutcome
        ``predicted`` is the bound and ``measured`` the mean at the tightest checkpoint;
        ``interval`` is ``(-inf, upper limit)`` there.

    Example
    -------
    >>> rng = np.random.default_rng(0)
    >>> out = bound_rule([3.0, 3.0], rng.normal(1.0, 0.01, size=(50, 2)))
    >>> out.passed, round(out.predicted / out.measured, 1)
    (True, 3.0)
    """
    x = _as_samples(samples, allow_nonfinite=True)
    b = np.asarray(bound, dtype=float).reshape(-1)
    if b.shape[0] != x.shape[1]:
        raise TheorylabError(f"bound has {b.shape[0]} checkpoints but samples have {x.shape[1]}")
    diverged = _diverged(x, b)
    if diverged is not None:
        return diverged
    m = x.shape[1]
    ci = mean_ci(x, bonferroni_level(level, m) if m > 1 else level, sided="upper")
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(ci.mean > 0, b / ci.mean, np.inf)
    margin = b - ci.hi
    tight = int(np.argmin(ratio)) if np.all(margin >= 0) else int(np.argmin(margin))
    passed = bool(np.all(margin >= 0))
    loose = float(np.min(ratio))
    detail = (
        f"bound/measured = {loose:.3g}x at its tightest (min over {m} checkpoints); "
        f"upper confidence limit above the bound at {int(np.sum(margin < 0))}/{m}; "
        f"one-sided {_pct(level)} Bonferroni, R={ci.replicas}"
    )
    return RuleOutcome(
        passed=passed,
        predicted=float(b[tight]),
        measured=float(ci.mean[tight]),
        interval=(float("-inf"), float(ci.hi[tight])),
        detail=detail,
        curves={"bound": b.tolist(), "mean": ci.mean.tolist(), "hi": ci.hi.tolist()},
    )


@dataclass(frozen=True)
class LogLogFit:
    """Least-squares fit ``log y = intercept + sum_j slopes[j] log x_j``."""

    intercept: float
    slopes: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    level: float
    residual_std: float

    def predict(self, x) -> np.ndarray:
        X = np.atleast_2d(np.asarray(x, dtype=float).T).T
        return np.exp(self.intercept + np.log(X) @ self.slopes)


def loglog_fit(x, y, *, level: float = 0.99) -> LogLogFit:
    """Ordinary least squares of ``log y`` on ``log x`` (one or several regressors).

    The slope intervals are Student-t with ``m - p - 1`` degrees of freedom (``m`` points,
    ``p`` regressors), from the residual variance; with no residual degrees of freedom the
    intervals are infinite.

    Parameters
    ----------
    x : array_like, shape (m,) or (m, p), all > 0
    y : array_like, shape (m,), all > 0
    level : float in (0, 1)

    Returns
    -------
    LogLogFit

    Example
    -------
    >>> fit = loglog_fit([1.0, 2.0, 4.0, 8.0], [3.0, 1.5, 0.75, 0.375])
    >>> round(float(fit.slopes[0]), 9)
    -1.0
    """
    X = np.asarray(x, dtype=float)
    if X.ndim == 1:
        X = X[:, None]
    Y = np.asarray(y, dtype=float).reshape(-1)
    if X.ndim != 2 or X.shape[0] != Y.shape[0]:
        raise TheorylabError(f"x has shape {np.shape(x)} but y has {Y.shape[0]} points")
    m, p = X.shape
    if m < p + 1:
        raise TheorylabError(f"need at least {p + 1} points to fit {p} exponent(s), got {m}")
    if np.any(X <= 0) or np.any(Y <= 0) or not np.all(np.isfinite(Y)):
        raise TheorylabError("log-log fit needs finite, strictly positive x and y")
    A = np.column_stack([np.ones(m), np.log(X)])
    coef, *_ = np.linalg.lstsq(A, np.log(Y), rcond=None)
    resid = np.log(Y) - A @ coef
    dof = m - p - 1
    if dof > 0:
        s2 = float(resid @ resid) / dof
        cov = s2 * np.linalg.inv(A.T @ A)
        half = _t_quantile(1 - (1 - level) / 2, dof) * np.sqrt(np.diag(cov))[1:]
    else:
        s2 = 0.0
        half = np.full(p, np.inf)
    slopes = coef[1:]
    return LogLogFit(
        intercept=float(coef[0]),
        slopes=slopes,
        lo=slopes - half,
        hi=slopes + half,
        level=level,
        residual_std=float(np.sqrt(s2)),
    )


def shape_rule(
    x,
    y,
    predicted_slopes: float | Sequence[float],
    *,
    tol: float,
    level: float = 0.99,
    names: Sequence[str] | None = None,
) -> RuleOutcome:
    """Shape rule: each fitted log-log exponent's confidence interval within ``tol`` of its
    predicted value.

    Pass iff ``predicted_j - tol <= lo_j`` and ``hi_j <= predicted_j + tol`` for every regressor
    ``j`` (``[lo_j, hi_j]`` the ``level`` t-interval of the fitted exponent): the sweep must be
    precise enough to pin the exponent inside the band, not merely centred in it.

    Parameters
    ----------
    x, y : see :func:`loglog_fit`
    predicted_slopes : float or sequence of float
        The predicted exponent(s), e.g. ``+1`` for a floor ``∝ gamma``, ``-1`` for ``∝ 1/n``.
    tol : float > 0
        Stated tolerance on each exponent.
    level : float in (0, 1)
        Level of the reported slope intervals.
    names : sequence of str, optional
        Names of the regressors for the detail text.

    Returns
    -------
    RuleOutcome
        For the regressor with the largest deviation.

    Example
    -------
    >>> shape_rule([1, 2, 4], [1.0, 0.5, 0.25], -1.0, tol=0.05).passed
    True
    """
    if not tol > 0:
        raise TheorylabError(f"tol must be > 0, got {tol}")
    y_arr = np.asarray(y, dtype=float).reshape(-1)
    diverged = _diverged(y_arr[None, :], np.full(y_arr.shape, np.nan), "sweep point")
    if diverged is not None:
        return diverged
    fit = loglog_fit(x, y, level=level)
    pred = np.atleast_1d(np.asarray(predicted_slopes, dtype=float))
    if pred.shape[0] != fit.slopes.shape[0]:
        raise TheorylabError(
            f"{pred.shape[0]} predicted exponent(s) for {fit.slopes.shape[0]} regressor(s)"
        )
    names = list(names or [f"x{j}" for j in range(pred.shape[0])])
    dev = np.maximum(np.abs(fit.lo - pred), np.abs(fit.hi - pred))
    dev = np.where(np.isfinite(dev), dev, np.inf)
    worst = int(np.argmax(dev))
    parts = [
        f"{nm}: slope {b:+.3f} [{lo:+.3f}, {hi:+.3f}] vs {p:+.3f}"
        for nm, b, lo, hi, p in zip(names, fit.slopes, fit.lo, fit.hi, pred)
    ]
    detail = "; ".join(parts) + (
        f" (each interval must lie within +-{tol:g} of the prediction; {_pct(level)} t-intervals)"
    )
    return RuleOutcome(
        passed=bool(np.all(dev <= tol)),
        predicted=float(pred[worst]),
        measured=float(fit.slopes[worst]),
        interval=(float(fit.lo[worst]), float(fit.hi[worst])),
        detail=detail,
        curves={"slopes": fit.slopes.tolist(), "intercept": [fit.intercept]},
    )
