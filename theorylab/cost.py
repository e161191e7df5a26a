"""Communication cost of a gossip round (alpha-beta model) and predicted time to accuracy.

Model (Hockney's alpha-beta): sending one message of ``b`` bytes costs ``alpha + beta b`` seconds
(``alpha`` latency, ``beta`` inverse bandwidth, s/byte). In one round of gossip every node sends
its state (``b`` bytes) to each of its ``d`` out-neighbours and computes one stochastic gradient
(``compute_s`` seconds). A synchronous round lasts as long as its slowest node:

* ``sends="sequential"`` (default; one NIC, messages one after another, no overlap):
  ``round = compute_s + d_max (alpha + beta b)``;
* ``sends="parallel"`` (latencies overlap, the bandwidth is shared):
  ``round = compute_s + alpha + d_max beta b``.

Communication is not overlapped with computation in either case (an upper estimate for
implementations that overlap them). Time to accuracy = rounds needed (from the DSGD rate of
:func:`theorylab.rates.dsgd`, an **upper** bound) x round time, so the ranking is by a bound, not
by a measurement; ``verify`` checks the rate itself.

A time-varying schedule with period ``P`` whose product over a period has factor ``rho_P`` (e.g.
the one-peer exponential graph, ``rho_P = 0`` for n a power of 2) satisfies the mixing assumption
of Koloskova et al. (2020, Assumption 4) with ``tau = P`` and ``p = 1 - rho_P^2``; their rates
depend on ``p / tau``, so it enters the static-graph rate with the effective ``rho_eff`` defined by
``1 - rho_eff^2 = (1 - rho_P^2) / P`` (:func:`effective_rho`).

Conventions: ``rho = ||W - 11^T/n||_2``, spectral gap ``1 - rho``.

References
----------
R. W. Hockney, "The communication challenge for MPP: Intel Paragon and Meiko CS-2", Parallel
Computing 20 (1994) 389-398 (the alpha-beta model).
A. Koloskova, N. Loizou, S. Boreiri, M. Jaggi, S. U. Stich, "A unified theory of decentralized
SGD with changing topology and local updates", ICML 2020, arXiv 2003.10422.
"""

from __future__ import annotations

import dataclasses
import math
import warnings

import numpy as np

from theorylab.errors import (
    TheorylabError,
    TheorylabWarning,
    check_int,
    check_positive,
)

__all__ = [
    "CommModel",
    "round_time",
    "effective_rho",
    "iterations_to_accuracy",
    "time_to_accuracy",
    "rank_topologies",
    "calibrate_alpha_beta",
    "AlphaBetaFit",
]

_SENDS = ("sequential", "parallel")


@dataclasses.dataclass(frozen=True)
class CommModel:
    """Alpha-beta cost of a gossip round.

    Attributes
    ----------
    alpha : float >= 0
        Latency per message, seconds.
    beta : float >= 0
        Inverse bandwidth, seconds per byte.
    nbytes : int >= 0
        Bytes of one message (the model's state, e.g. ``4 d`` for float32).
    compute_s : float >= 0
        Seconds of local computation per round (one stochastic gradient).
    sends : {"sequential", "parallel"}
        How a node's messages share its link (see the module docstring).
    """

    alpha: float = 5e-5
    beta: float = 1e-9
    nbytes: int = 4_000_000
    compute_s: float = 0.0
    sends: str = "sequential"

    def __post_init__(self):
        check_positive("alpha", self.alpha, allow_zero=True)
        check_positive("beta", self.beta, allow_zero=True)
        check_int("nbytes", self.nbytes, minimum=0)
        check_positive("compute_s", self.compute_s, allow_zero=True)
        if self.sends not in _SENDS:
            raise TheorylabError(f"sends must be one of {_SENDS}, got {self.sends!r}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def round_time(degree: int, model: CommModel) -> float:
    """Seconds per synchronous gossip round when the busiest node sends ``degree`` messages.

    ``compute_s + degree (alpha + beta b)`` (sequential sends) or
    ``compute_s + alpha + degree beta b`` (parallel); ``degree = 0`` costs ``compute_s``.

    Example
    -------
    >>> round_time(2, CommModel(alpha=1e-3, beta=1e-9, nbytes=1_000_000, compute_s=0.01))
    0.014
    """
    degree = check_int("degree", degree, minimum=0)
    if not isinstance(model, CommModel):
        raise TypeError(f"model must be a CommModel, got {type(model).__name__}")
    if degree == 0:
        return model.compute_s
    message = model.beta * model.nbytes
    if model.sends == "sequential":
        return model.compute_s + degree * (model.alpha + message)
    return model.compute_s + model.alpha + degree * message


def effective_rho(rho_period: float, period: int = 1) -> float:
    """Per-round ``rho_eff`` of a schedule: ``1 - rho_eff^2 = (1 - rho_period^2) / period``.

    ``rho_period = ||W^(P-1) ... W^(0) - 11^T/n||_2`` is the factor over one period; a static
    graph (``period = 1``) gets ``rho_eff = rho``. Koloskova et al. (2020), Assumption 4 with
    ``tau = period``, ``p = 1 - rho_period^2``; their rates depend on ``p/tau`` only.

    Example
    -------
    >>> round(effective_rho(0.0, 4), 6)  # one-peer exponential graph, n = 16
    0.866025
    """
    rho_period = check_positive("rho_period", rho_period, allow_zero=True)
    if rho_period >= 1:
        raise TheorylabError(f"rho_period must be < 1 (a mixing schedule), got {rho_period}")
    period = check_int("period", period, minimum=1)
    return math.sqrt(1.0 - (1.0 - rho_period**2) / period)


def iterations_to_accuracy(
    rho: float,
    n: int,
    *,
    target: float,
    L: float,
    mu: float,
    sigma2: float,
    zeta2: float,
    avg_error0: float,
    gamma: float | None = None,
    max_steps: int = 200_000,
) -> tuple[float, float | None]:
    """Fewest DSGD (ATC) steps for which the bound of :func:`theorylab.rates.dsgd` is <= target.

    The bound ``(1/n) sum_i E||x_i^T - x*||^2 <= u_T`` (upper; see :func:`theorylab.rates.dsgd`
    for the recursion, constants and assumptions) is evaluated by
    :func:`theorylab.rates.dsgd_bound_curve`. With ``gamma=None`` the step is the best of the
    grid ``2/(L + mu) * 2^-j``, j = 0..29, restricted to steps whose steady state is below
    ``target``. Returns ``(T, gamma)``; ``(inf, None)`` when no step reaches ``target`` within
    ``max_steps``.

    Raises
    ------
    TheorylabError
        ``target``, ``L`` or ``mu`` not a finite positive number, ``mu > L``, or an invalid
        argument of :func:`theorylab.rates.dsgd`.

    Example
    -------
    >>> T, g = iterations_to_accuracy(0.5, 8, target=1e-2, L=1.0, mu=0.5, sigma2=0.0, zeta2=0.0,
    ...                               avg_error0=1.0)
    >>> T  # rho = 0.5 allows gamma = 1/6 at most (ATC stability), hence 72 steps
    72.0
    """
    from theorylab.rates import dsgd, dsgd_bound_curve

    target = check_positive("target", target)
    max_steps = check_int("max_steps", max_steps, minimum=1)
    L = check_positive("L", L)
    mu = check_positive("mu", mu)
    if mu > L:
        raise TheorylabError(
            f"need mu <= L (strong convexity below smoothness), got mu={mu} > L={L}"
        )
    if gamma is not None:
        gammas = [check_positive("gamma", gamma)]
    else:
        gammas = [2.0 / (L + mu) * 0.5**j for j in range(30)]
    best_T, best_gamma = math.inf, None
    for g in gammas:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", TheorylabWarning)  # unstable steps are skipped below
            floor = dsgd(gamma=g, L=L, mu=mu, sigma2=sigma2, zeta2=zeta2, rho=rho, n=n).total
        if not math.isfinite(floor) or floor >= target:
            continue
        # Steps needed are at least log(e0/target)/(gamma mu): skip steps that cannot beat best.
        lower = math.log(max(avg_error0, target) / target) / (g * mu)
        if lower >= min(best_T, max_steps):
            continue
        steps = min(max_steps, max(16, int(4 * lower) + 16))
        while True:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", TheorylabWarning)
                err = dsgd_bound_curve(
                    gamma=g, L=L, mu=mu, sigma2=sigma2, zeta2=zeta2, rho=rho, n=n,
                    steps=steps, avg_error0=avg_error0, consensus0=0.0,
                )["error"]  # fmt: skip
            hit = np.flatnonzero(err <= target)
            if hit.size:
                if hit[0] < best_T:
                    best_T, best_gamma = float(hit[0]), g
                break
            if steps >= max_steps:
                break
            steps = min(max_steps, 4 * steps)
    return best_T, best_gamma


def time_to_accuracy(
    rho: float,
    degree: int,
    n: int,
    model: CommModel,
    *,
    period: int = 1,
    **problem,
) -> dict:
    """Predicted wall-clock seconds for DSGD to reach ``problem['target']``.

    ``rounds x round_time(degree, model)``, with rounds from :func:`iterations_to_accuracy` at
    ``rho_eff = effective_rho(rho, period)`` (``rho`` is the per-period factor for schedules).
    ``problem``: ``target, L, mu, sigma2, zeta2, avg_error0`` and optionally ``gamma``,
    ``max_steps``. The prediction is an upper bound (the DSGD rate is).

    Returns
    -------
    dict with ``rho_eff``, ``round_s``, ``iterations``, ``gamma``, ``time_s`` (inf if
    unreachable).
    """
    rho_eff = effective_rho(rho, period)
    T, gamma = iterations_to_accuracy(rho_eff, n, **problem)
    r = round_time(degree, model)
    return {
        "rho_eff": rho_eff,
        "round_s": r,
        "iterations": T,
        "gamma": gamma,
        "time_s": T * r if math.isfinite(T) else math.inf,
    }


def rank_topologies(candidates, model: CommModel, **problem) -> list[dict]:
    """Rank candidate topologies by predicted time to accuracy (fastest first).

    Parameters
    ----------
    candidates : iterable of dict
        Each with ``name``, ``n``, ``rho`` (per period), ``degree`` (messages the busiest node
        sends per round) and optionally ``period`` (default 1) and any extra keys (kept).
    model : CommModel
    **problem
        As for :func:`time_to_accuracy`.

    Returns
    -------
    list of dict
        The candidates with ``rho_eff``, ``round_s``, ``iterations``, ``gamma``, ``time_s`` added,
        sorted by ``time_s`` (ties by ``round_s``).

    Example
    -------
    >>> m = CommModel(alpha=1e-3, beta=0.0, nbytes=0, compute_s=1e-3)
    >>> rows = rank_topologies(
    ...     [{"name": "ring", "n": 16, "rho": 0.949, "degree": 2},
    ...      {"name": "complete", "n": 16, "rho": 0.0, "degree": 15}],
    ...     m, target=1e-3, L=1.0, mu=0.5, sigma2=0.0, zeta2=1.0, avg_error0=1.0)
    >>> [(r["name"], r["iterations"]) for r in rows]  # zeta2/(1 - rho)^2 hurts the ring
    [('complete', 7.0), ('ring', 45260.0)]
    """
    rows = []
    for c in candidates:
        row = dict(c)
        for key in ("name", "n", "rho", "degree"):
            if key not in row:
                raise TheorylabError(f"candidate {c!r} lacks {key!r}")
        row.update(
            time_to_accuracy(
                row["rho"], row["degree"], row["n"], model, period=row.get("period", 1), **problem
            )
        )
        rows.append(row)
    rows.sort(key=lambda r: (r["time_s"], r["round_s"]))
    return rows


@dataclasses.dataclass(frozen=True)
class AlphaBetaFit:
    """Least-squares fit ``seconds = alpha + beta * bytes`` (see :func:`calibrate_alpha_beta`)."""

    alpha: float
    beta: float
    rms_residual_s: float
    points: int

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def calibrate_alpha_beta(timings) -> AlphaBetaFit:
    """Fit latency ``alpha`` and inverse bandwidth ``beta`` to measured ``(bytes, seconds)``.

    Ordinary least squares on ``seconds_k = alpha + beta bytes_k``. A fitted negative value
    (noise, or a non-affine cost) is clipped to 0 with a :class:`TheorylabWarning` and the other
    coefficient refitted alone.

    Parameters
    ----------
    timings : iterable of (bytes, seconds)
        At least two points with at least two distinct message sizes; seconds > 0.

    Returns
    -------
    AlphaBetaFit

    Raises
    ------
    TheorylabError
        Fewer than two distinct sizes, negative bytes or non-positive seconds.

    Example
    -------
    >>> fit = calibrate_alpha_beta([(0, 1e-4), (1e6, 1.1e-3), (2e6, 2.1e-3)])
    >>> round(fit.alpha, 9), round(fit.beta, 15)
    (0.0001, 1e-09)
    """
    data = np.asarray(list(timings), dtype=float)
    if data.ndim != 2 or data.shape[1] != 2:
        raise TheorylabError(
            f"timings must be (bytes, seconds) pairs, got an array of shape {data.shape}"
        )
    b, s = data[:, 0], data[:, 1]
    if np.any(b < 0) or not np.all(np.isfinite(data)):
        raise TheorylabError("timings: bytes must be finite and >= 0")
    if np.any(s <= 0):
        raise TheorylabError("timings: seconds must be > 0")
    if np.unique(b).size < 2:
        raise TheorylabError(
            "timings need at least two distinct message sizes to separate alpha from beta; "
            "measure e.g. 1 KB and 1 MB messages"
        )
    X = np.column_stack([np.ones_like(b), b])
    alpha, beta = np.linalg.lstsq(X, s, rcond=None)[0]
    if alpha < 0:
        warnings.warn(
            f"fitted latency alpha = {alpha:.3g} < 0; clipped to 0 (fit beta alone)",
            TheorylabWarning,
            stacklevel=2,
        )
        alpha, beta = 0.0, float(b @ s / (b @ b))
    elif beta < 0:
        warnings.warn(
            f"fitted inverse bandwidth beta = {beta:.3g} < 0; clipped to 0 (fit alpha alone)",
            TheorylabWarning,
            stacklevel=2,
        )
        alpha, beta = float(s.mean()), 0.0
    resid = s - (alpha + beta * b)
    return AlphaBetaFit(
        alpha=float(alpha),
        beta=float(beta),
        rms_residual_s=float(np.sqrt(np.mean(resid**2))),
        points=int(len(b)),
    )
