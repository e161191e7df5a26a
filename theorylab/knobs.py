r"""The best knob: step size, period tau, topology, compressor, by predicted wall-clock time.

Each knob is chosen among candidates by the time the calculator's bound predicts to reach a
target error ``eps``: ``time = iterations(eps) x seconds per iteration`` under Hockney's
alpha-beta model (:class:`theorylab.cost.CommModel`: a message of b bytes costs
``alpha + beta b`` seconds, plus ``compute_s`` of computation per iteration). Iterations to the
target are the first T at which the bound of :mod:`theorylab.calculator` is ``<= eps``
(:func:`iterations_to_target`), so every choice is as good as the bound it ranks by (an upper
bound ranks by a guarantee, not by a measurement).

Seconds per iteration (``timing`` of the registry entry):

* ``'allreduce'`` (PSGD): ``compute_s + 2 (n - 1)(alpha + beta b/n)``, ring all-reduce
  (:func:`theorylab.rates.lazy.sync_time`);
* ``'gossip'`` (DSGD, exact diffusion, CHOCO): ``round_time(degree)``
  (:func:`theorylab.cost.round_time`, degree of the busiest node); ``'gossip2'`` (gradient
  tracking) sends two vectors, ``x`` and ``y``;
* ``'allgather'`` (compressed PSGD, EF): every node's compressed message to every other,
  ``compute_s + (n - 1)(alpha + beta ceil(bits/8))`` (a ring all-gather; compressed messages
  cannot be summed on the way);
* ``'local'`` (local SGD / FedAvg / SCAFFOLD): ``k compute_s + ceil(k/tau) sync_time``
  (:func:`theorylab.rates.lazy.time_to_target`).

The knobs reuse the house's choosers: the period is :func:`theorylab.rates.lazy.best_period`,
the topology :func:`theorylab.topology_design.choose_topology` (DSGD's time to accuracy under a
degree budget); the step and the compressor are scans over the candidates here.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np

from theorylab import calculator
from theorylab.cost import CommModel, round_time
from theorylab.errors import TheorylabError, TheorylabWarning, check_int, check_positive

__all__ = [
    "KnobChoice",
    "comm_model",
    "seconds_per_iteration",
    "iterations_to_target",
    "best_step",
    "best_tau",
    "best_topology",
    "best_compressor",
    "DEFAULT_COMPRESSORS",
    "render",
]

#: compressor candidates of :func:`best_compressor` (unbiased, so that compressed PSGD applies)
DEFAULT_COMPRESSORS = (
    "identity",
    "rand-k:ratio=0.5",
    "rand-k:ratio=0.25",
    "rand-k:ratio=0.1",
    "rand-k:ratio=0.05",
    "qsgd:s=1",
    "qsgd:s=4",
    "qsgd:s=16",
    "natural",
    "terngrad",
)


@dataclass(frozen=True)
class KnobChoice:
    """A chosen knob and the table of alternatives.

    Attributes
    ----------
    knob : 'step' | 'tau' | 'topology' | 'compressor'
    algorithm : str
    choice : the chosen value (None when no candidate reaches the target)
    time_s : float, predicted seconds to the target (inf when unreachable)
    iterations : int or None
    rows : list of dicts, one per candidate (``value``, ``iterations``, ``time_s``, ...)
    target : float
    model : dict, the alpha-beta model
    note : str, what the ranking rests on
    """

    knob: str
    algorithm: str
    choice: object
    time_s: float
    iterations: int | None
    rows: list = field(default_factory=list)
    target: float = math.nan
    model: dict = field(default_factory=dict)
    note: str = ""

    def to_dict(self) -> dict:
        from theorylab.output import to_jsonable

        return to_jsonable({
            "knob": self.knob, "algorithm": self.algorithm, "choice": self.choice,
            "time_s": self.time_s, "iterations": self.iterations, "target": self.target,
            "model": self.model, "note": self.note, "rows": self.rows,
        })  # fmt: skip


def comm_model(*, alpha=None, beta=None, nbytes=None, compute_s=0.0, d: int = 4) -> CommModel:
    """A :class:`~theorylab.cost.CommModel` with the package defaults for what is not given
    (``nbytes = 4 d``: a float32 model of d parameters)."""
    base = CommModel()
    d = check_int("d", d, minimum=1)
    return CommModel(
        alpha=base.alpha if alpha is None else check_positive("alpha", alpha, allow_zero=True),
        beta=base.beta if beta is None else check_positive("beta", beta, allow_zero=True),
        nbytes=4 * d if nbytes is None else check_int("nbytes", nbytes, minimum=0),
        compute_s=check_positive("compute_s", compute_s, allow_zero=True),
    )


def _sync(n: int, model: CommModel) -> float:
    from theorylab.rates.lazy import sync_time

    return sync_time(n, model, allreduce="ring")


def seconds_per_iteration(name: str, model: CommModel, **inputs) -> float:
    """Predicted seconds of one iteration of ``name`` under ``model`` (module docstring); for
    the 'local' timing, the average over a round (``compute_s + sync_time/tau``)."""
    alg = calculator.algorithm(name)
    ctx = calculator.resolve_inputs(**inputs)
    return _seconds(alg, ctx, model)


def _seconds(alg, ctx, model: CommModel) -> float:
    if not isinstance(model, CommModel):
        raise TypeError(f"model must be a theorylab.cost.CommModel, got {type(model).__name__}")
    t = alg.timing
    if t is None:
        raise TheorylabError(f"{alg.name}: its round is not modelled by the alpha-beta cost")
    if t == "allreduce":
        return model.compute_s + _sync(ctx.n, model)
    if t in ("gossip", "gossip2"):
        if ctx.graph_degree is None:
            raise TheorylabError(
                f"{alg.name}: timing a gossip round needs the graph's degree: give a topology "
                "(--topology) or W instead of rho"
            )
        comm = round_time(ctx.graph_degree, model) - model.compute_s
        return model.compute_s + (2.0 if t == "gossip2" else 1.0) * comm
    if t == "allgather":
        bits = ctx.values.get("bits")
        if bits is None:
            raise TheorylabError(
                f"{alg.name}: timing compressed messages needs their size: give a compressor "
                "spec (--compressor) instead of omega/delta"
            )
        return model.compute_s + (ctx.n - 1) * (model.alpha + model.beta * math.ceil(bits / 8))
    if t == "local":
        S = ctx.S or ctx.n
        return model.compute_s + _sync(S, model) / ctx.tau
    raise TheorylabError(f"unknown timing {t!r}")  # pragma: no cover


def _time(alg, ctx, model, k: int | None) -> float:
    """Seconds for k iterations (exact rounds for the 'local' timing)."""
    if k is None:
        return math.inf
    if alg.timing == "local":
        S = ctx.S or ctx.n
        return k * model.compute_s + math.ceil(k / ctx.tau) * _sync(S, model)
    return k * _seconds(alg, ctx, model)


# ---- iterations to a target ---------------------------------------------------------------------
def _total(alg, ctx, T, gamma) -> float:
    with warnings.catch_warnings(), np.errstate(over="ignore", invalid="ignore"):
        warnings.simplefilter("ignore", TheorylabWarning)
        return calculator._call(alg, ctx, T, gamma).total


def _curve(alg, ctx, gamma, steps):
    """The whole bound 0..steps in one pass, for the bounds that are recursions in T."""
    from theorylab.rates import dsgd_bound_curve, local_sgd_bound_curve

    rho = calculator._rho_for(alg, ctx)
    with warnings.catch_warnings(), np.errstate(over="ignore", invalid="ignore"):
        warnings.simplefilter("ignore", TheorylabWarning)
        if alg.name == "dsgd":
            return dsgd_bound_curve(
                gamma=gamma, L=ctx.L, mu=ctx.mu, sigma2=ctx.sigma2, zeta2=ctx.zeta2, rho=rho,
                n=ctx.n, steps=steps, avg_error0=ctx.r0_sq, consensus0=0.0, form=ctx.form,
            )["error"]  # fmt: skip
        return local_sgd_bound_curve(
            gamma=gamma, L=ctx.L, mu=ctx.mu, sigma2=ctx.sigma2, zeta2=ctx.zeta2, n=ctx.n,
            tau=ctx.tau, steps=steps, avg_error0=ctx.r0_sq,
        )["error"]  # fmt: skip


def iterations_to_target(name: str, target: float, *, T_max: int = 10**5, **inputs) -> int | None:
    """Fewest iterations T <= T_max at which ``name``'s bound (the calculator's total) is
    <= target, or None.

    Strongly convex DSGD and local SGD: the first hit on the whole bound curve
    (:func:`~theorylab.rates.dsgd_bound_curve`, :func:`~theorylab.rates.local_sgd_bound_curve`,
    whose value at T is the rate's total at T). Every other bound: doubling T until the total
    is <= target, then bisection between the last miss and the first hit, exact when the total
    decreases in T on that bracket (true of every closed form here once the optimisation term
    dominates the floor's growth; a bound that starts below its floor is hit at T = 1).
    A step is needed where the bound takes one (``gamma``; :func:`best_step` scans them).
    """
    alg = calculator.algorithm(name)
    target = check_positive("target", target)
    T_max = check_int("T_max", T_max, minimum=1)
    ctx = calculator.resolve_inputs(**{k: v for k, v in inputs.items() if k != "T"})
    calculator._check_needs(alg, ctx)
    return _iterations(alg, ctx, target, T_max, ctx.gamma)


def _iterations(alg, ctx, target, T_max, gamma) -> int | None:
    if alg.step == "required" and gamma is None:
        raise TheorylabError(f"{alg.name}: iterations to a target need a step gamma")
    if ctx.mu is not None and alg.name in ("dsgd", "local_sgd"):
        steps = min(T_max, 1024)
        while True:
            err = _curve(alg, ctx, gamma, steps)
            hit = np.flatnonzero(err[1:] <= target)
            if hit.size:
                return int(hit[0]) + 1
            if steps >= T_max or not np.isfinite(err[-1]):
                return None
            steps = min(T_max, 8 * steps)
    lo_min = ctx.tau if alg.name in calculator._ROUNDS else 1
    if _total(alg, ctx, lo_min, gamma) <= target:
        return lo_min
    lo, hi = lo_min, 2 * lo_min
    while _total(alg, ctx, min(hi, T_max), gamma) > target:
        if hi >= T_max:
            return None
        lo, hi = hi, 2 * hi
    hi = min(hi, T_max)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _total(alg, ctx, mid, gamma) <= target:
            hi = mid
        else:
            lo = mid
    return hi


# ---- the knobs ----------------------------------------------------------------------------------
def _choice(knob, alg, rows, key, target, model, note):
    reach = [r for r in rows if math.isfinite(r["time_s"])]
    if not reach:
        return KnobChoice(knob, alg, None, math.inf, None, rows, target, model.to_dict(), note)
    best = min(reach, key=key)
    return KnobChoice(
        knob, alg, best["value"], best["time_s"], best["iterations"], rows, target,
        model.to_dict(), note,
    )  # fmt: skip


def best_step(
    name: str, *, target: float, model: CommModel, T_max: int = 10**5, **inputs
) -> KnobChoice:
    """The step gamma of the grid ``gamma_0 2^-j`` (:func:`theorylab.calculator.step_grid`)
    minimising predicted time to ``target``; the time per iteration does not depend on gamma,
    so this is the step with the fewest iterations (ties: the larger step)."""
    alg = calculator.algorithm(name)
    if alg.step != "required":
        raise TheorylabError(
            f"{name}: the theorem fixes or tunes the step itself (gamma only checks its "
            "condition); there is no step to choose"
        )
    target = check_positive("target", target)
    inputs = {k: v for k, v in inputs.items() if k not in ("T", "gamma")}
    ctx = calculator.resolve_inputs(**inputs)
    calculator._check_needs(alg, ctx)
    if calculator._default_step(alg, ctx, 100)[1][0].get("unused"):
        raise TheorylabError(
            f"{name}: this bound assumes its own tuned step and does not depend on gamma; "
            "there is no step to choose"
        )
    rows = []
    for g in calculator.step_grid(name, **inputs):
        k = _iterations(alg, ctx, target, T_max, g)
        rows.append({"value": g, "iterations": k, "time_s": _time(alg, ctx, model, k)})
    return _choice(
        "step", name, rows, lambda r: (r["time_s"], -r["value"]), target, model,
        f"iterations from the bound of {alg.function} (<= {T_max})",
    )  # fmt: skip


def best_tau(
    name: str,
    *,
    target: float,
    model: CommModel,
    taus=None,
    T_max: int = 10**5,
    exact: bool = False,
    **inputs,
) -> KnobChoice:
    """The period tau of local SGD minimising predicted time to ``target``:
    :func:`theorylab.rates.lazy.best_period` on the strongly convex bound curve
    (:func:`~theorylab.rates.lazy.local_sgd_error_curve`, E||xbar_k - x*||^2), or with
    ``exact=True`` on the exact curve of the quadratic (:func:`~theorylab.rates.lazy.
    local_sgd_exact_curve`). ``gamma`` None: the best step at the smallest tau."""
    from theorylab.rates.lazy import best_period, local_sgd_error_curve, local_sgd_exact_curve

    if name != "local_sgd":
        raise TheorylabError(f"--best tau chooses local SGD's period; got algorithm {name!r}")
    taus = [1, 2, 4, 8, 16, 32, 64] if taus is None else list(taus)
    inputs = {k: v for k, v in inputs.items() if k not in ("T", "tau")}
    ctx = calculator.resolve_inputs(tau=min(taus), **inputs)
    if ctx.mu is None:
        raise TheorylabError("--best tau uses the strongly convex curves: give mu")
    gamma = ctx.gamma
    if gamma is None:
        gamma = best_step(name, target=target, model=model, T_max=T_max, tau=min(taus),
                          **inputs).choice  # fmt: skip
        if gamma is None:
            raise TheorylabError(f"no step reaches target {target} within {T_max} iterations")
    if exact:
        p = calculator.exact_problem(n=ctx.n, d=ctx.d, L=ctx.L, mu=ctx.mu, zeta2=ctx.zeta2,
                                     sigma2=ctx.sigma2, seed=ctx.seed)  # fmt: skip
        curve = local_sgd_exact_curve(p, gamma=gamma, x0=calculator._x0(p, ctx.r0_sq),
                                      steps=T_max)  # fmt: skip
    else:
        curve = local_sgd_error_curve(
            gamma=gamma, L=ctx.L, mu=ctx.mu, sigma2=ctx.sigma2, zeta2=ctx.zeta2, n=ctx.n,
            avg_error0=ctx.r0_sq, steps=T_max,
        )  # fmt: skip
    pc = best_period(curve, taus, target=target, n=ctx.n, model=model)
    rows = [{"value": r["tau"], "iterations": r["iterations"], "rounds": r["rounds"],
             "time_s": r["time_s"]} for r in pc.curve]  # fmt: skip
    what = "exact curve" if exact else "bound curve"
    return KnobChoice(
        "tau", name, pc.tau, pc.time_s, pc.iterations, rows, target, model.to_dict(),
        f"theorylab.rates.lazy.best_period on the {what} of E||xbar_k - x*||^2, gamma = "
        f"{gamma:.4g}, k <= {T_max}",
    )  # fmt: skip


def best_topology(
    name: str,
    *,
    target: float,
    model: CommModel,
    max_degree: int,
    T_max: int = 200_000,
    sdp_max_n: int = 32,
    **inputs,
) -> KnobChoice:
    """The topology (and weights) within a degree budget minimising DSGD's predicted time to
    ``target``: :func:`theorylab.topology_design.choose_topology` (candidates: ring, torus,
    hypercube, exponential, one-peer exponential, random regular, complete; Metropolis,
    best-constant and, for n <= sdp_max_n, FDLA-optimal weights)."""
    from theorylab.topology_design import choose_topology

    if name != "dsgd":
        raise TheorylabError(f"--best topology ranks by DSGD's time; got algorithm {name!r}")
    inputs = {k: v for k, v in inputs.items() if k not in ("T", "topology", "rho", "weights")}
    ctx = calculator.resolve_inputs(**inputs)
    if ctx.mu is None:
        raise TheorylabError("--best topology ranks by the strongly convex DSGD bound: give mu")
    problem = dict(target=check_positive("target", target), L=ctx.L, mu=ctx.mu,
                   sigma2=ctx.sigma2, zeta2=ctx.zeta2, avg_error0=ctx.r0_sq,
                   max_steps=T_max)  # fmt: skip
    if ctx.gamma is not None:
        problem["gamma"] = ctx.gamma
    ranked = choose_topology(ctx.n, max_degree=max_degree, model=model, problem=problem,
                             sdp_max_n=sdp_max_n)  # fmt: skip
    rows = [{"value": r["name"], "rule": r["rule"], "degree": r["degree"], "rho": r["rho_eff"],
             "gamma": r["gamma"], "iterations": None if not math.isfinite(r["iterations"])
             else int(r["iterations"]), "round_s": r["round_s"], "time_s": r["time_s"]}
            for r in ranked]  # fmt: skip
    best = rows[0]
    ok = math.isfinite(best["time_s"])
    return KnobChoice(
        "topology", name, best["value"] if ok else None, best["time_s"],
        best["iterations"] if ok else None, rows, target, model.to_dict(),
        f"theorylab.topology_design.choose_topology (max degree {max_degree}), DSGD bound, "
        f"best step of 2/(L + mu) 2^-j",
    )  # fmt: skip


def best_compressor(
    name: str,
    *,
    target: float,
    model: CommModel,
    bit_budget: float | None = None,
    candidates=None,
    T_max: int = 10**5,
    **inputs,
) -> KnobChoice:
    """The compressor (spec) within ``bit_budget`` bits per message minimising predicted time
    to ``target``: for each candidate, its constants at ``d``, the best step of the grid, its
    iterations, times ``compute_s + (n - 1)(alpha + beta ceil(bits/8))`` per iteration."""
    from theorylab.compressors import get_compressor

    alg = calculator.algorithm(name)
    if alg.timing != "allgather":
        raise TheorylabError(
            f"--best compressor needs a compressed all-gather algorithm (compressed_psgd, "
            f"ef_sgd, ef21); got {name!r}"
        )
    inputs = {k: v for k, v in inputs.items() if k not in ("T", "compressor", "omega", "delta")}
    d = inputs.get("d", calculator._DEFAULTS["d"])
    cands = list(DEFAULT_COMPRESSORS if candidates is None else candidates)
    rows = []
    for spec in cands:
        C = get_compressor(spec)
        bits = int(C.bits(d))
        row = {"value": spec, "bits": bits, "omega": C.omega(d) if C.unbiased else None,
               "delta": C.delta(d), "gamma": None, "iterations": None,
               "time_s": math.inf}  # fmt: skip
        if bit_budget is not None and bits > bit_budget:
            row["skipped"] = f"{bits} bits > budget"
            rows.append(row)
            continue
        try:
            if alg.step is None:
                ctx = calculator.resolve_inputs(compressor=spec, **inputs)
                k = _iterations(alg, ctx, target, T_max, None)
            else:
                ch = best_step(name, target=target, model=model, T_max=T_max, compressor=spec,
                               **inputs)  # fmt: skip
                row["gamma"], k = ch.choice, ch.iterations
                ctx = calculator.resolve_inputs(compressor=spec, **inputs)
        except TheorylabError as exc:  # e.g. a biased compressor for compressed PSGD
            row["skipped"] = str(exc)
            rows.append(row)
            continue
        row["iterations"] = k
        row["time_s"] = _time(alg, ctx, model, k)
        rows.append(row)
    if bit_budget is not None and all("skipped" in r for r in rows):
        raise TheorylabError(f"no candidate compressor fits {bit_budget:g} bits at d = {d}")
    return _choice(
        "compressor", name, rows, lambda r: (r["time_s"], r["bits"]), target, model,
        f"bound of {alg.function} with each compressor's constants at d = {d}"
        + (f", <= {bit_budget:g} bits" if bit_budget is not None else ""),
    )  # fmt: skip


def render(choice: KnobChoice) -> str:
    """The choice and the table of alternatives, as text."""
    from theorylab.output import format_table, format_value

    m = choice.model
    head = f"best {choice.knob} for {choice.algorithm}: {format_value(choice.choice)}" + (
        f" ({format_value(choice.time_s)} s, {choice.iterations} iterations to "
        f"{format_value(choice.target)})"
        if choice.choice is not None
        else f" (no candidate reaches {format_value(choice.target)})"
    )
    lines = [
        head,
        f"model: alpha = {format_value(m['alpha'])} s, beta = {format_value(m['beta'])} s/B, "
        f"{m['nbytes']} B per model message, compute {format_value(m['compute_s'])} s/iteration",
        f"ranked by: {choice.note}",
        format_table(
            [
                {choice.knob: r["value"], **{k: v for k, v in r.items() if k != "value"}}
                for r in choice.rows
            ]
        ),  # fmt: skip
    ]
    return "\n".join(lines)
