r"""The calculator: every predicted rate of every family through one form.

One set of inputs (the glossary of shared/STYLE.md), one registry (:data:`ALGORITHMS`: name ->
:class:`Algorithm`, i.e. the rate function of :mod:`theorylab.rates`, the inputs it takes, its
transient iterations and the exact predictor of :mod:`theorylab.exact` that applies), and one
result (:class:`Prediction`): the named terms and their total at T and at several other T, the
kind (tight / upper / lower), the step-size condition, the transient iterations, the source
theorem, the warnings of the theorem's conditions, and, on quadratics, the exact curve next to
the bound. Nothing is re-derived here: every number is a call of an existing rate function.

Inputs (keyword arguments of :func:`rate`, :func:`predict`, :func:`compare`)
--------------------------------------------------------------------------
``L``, ``mu`` (None: the non-convex bound), ``sigma2``, ``zeta2``, ``n``;
the graph: ``rho = ||W - 11^T/n||_2`` (spectral gap ``1 - rho``), or ``topology`` (a family of
:mod:`theorylab.topology`, with ``degree``/``p``/``radius``/``topology_seed``) and ``weights``
(a rule of :mod:`theorylab.mixing`), or ``W`` itself (an n x n doubly stochastic array);
``gamma`` (None: the step of the grid ``gamma_0 2^-j`` that minimises the bound at T, see
:func:`default_step`); ``T``; ``tau`` (local steps per round); ``omega`` (class U(omega)) or
``delta`` (class B(delta)), or ``compressor`` (a spec of :mod:`theorylab.compressors`, its
constants taken at dimension ``d``); ``tau_avg``, ``tau_max`` (delays); ``f`` (Byzantine count)
and ``kappa`` (robustness of the aggregator, or ``aggregator``, a spec of
:mod:`theorylab.aggregators` whose bound gives kappa at n and f); ``f_gap = f(x_0) - f*``
(non-convex bounds; the rate functions call it ``delta``, a name the calculator keeps for
compression);
``r0_sq = ||x_0 - x*||^2`` (default 1); family extras ``G2``, ``B2``, ``S``, ``c``, ``eta_g``,
``L_tilde``, ``G0``, ``form``; ``d`` and ``seed`` of the quadratic the exact engine uses.

Example
-------
>>> p = predict("dsgd", n=16, topology="ring", weights="metropolis", L=1.0, mu=0.1,
...             sigma2=1.0, zeta2=1.0, gamma=0.002, T=1000)
>>> p.rate.kind, p.rate.step_size_ok, sorted(p.rate.terms)
('upper', True, ['heterogeneity', 'noise', 'optimization', 'topology'])
>>> from theorylab.rates import dsgd
>>> p.rate.total == dsgd(gamma=0.002, L=1.0, mu=0.1, sigma2=1.0, zeta2=1.0, rho=p.inputs["rho"],
...                      n=16, T=1000, avg_error0=1.0).total
True
>>> p.curve[-1]["total"] >= p.exact["value"][-1]  # the bound lies above the exact value
True
"""

from __future__ import annotations

import importlib
import math
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from theorylab.errors import TheorylabError, TheorylabWarning, check_int, check_positive
from theorylab.rates._rate import Rate

__all__ = [
    "Algorithm",
    "ALGORITHMS",
    "INPUTS",
    "Prediction",
    "algorithm",
    "available",
    "resolve_inputs",
    "rate_kwargs",
    "rate",
    "default_step",
    "predict",
    "compare",
    "exact_problem",
]

#: every input the calculator takes -> its meaning (the CLI flag is ``--NAME``, '_' -> '-')
INPUTS = {
    "L": "smoothness",
    "mu": "strong convexity (None: non-convex bounds)",
    "sigma2": "gradient noise E||g_i - grad f_i||^2 per node",
    "zeta2": "heterogeneity (1/n) sum_i ||grad f_i - grad f||^2 (at x* or uniform)",
    "n": "number of nodes",
    "rho": "||W - 11^T/n||_2 (spectral gap 1 - rho)",
    "topology": "graph family of theorylab.topology (instead of rho)",
    "weights": "weight rule of theorylab.mixing (with topology)",
    "degree": "degree of a random-regular topology",
    "p": "edge probability of an erdos-renyi topology",
    "radius": "radius of a random-geometric topology",
    "topology_seed": "seed of a random topology",
    "W": "mixing matrix (n x n doubly stochastic; instead of rho / topology)",
    "gamma": "step size (None: the best of a grid at T)",
    "T": "iterations",
    "tau": "local steps per communication round",
    "omega": "compressor variance, class U(omega)",
    "delta": "compressor contraction, class B(delta)",
    "compressor": "compressor spec of theorylab.compressors (gives omega/delta at d)",
    "tau_avg": "average delay",
    "tau_max": "maximum delay",
    "f": "number of Byzantine nodes",
    "kappa": "robustness coefficient of the aggregator",
    "aggregator": "aggregator spec of theorylab.aggregators (gives kappa at n, f)",
    "f_gap": "f(x_0) - f* (non-convex bounds)",
    "r0_sq": "||x_0 - x*||^2 (default 1; gossip: the initial consensus distance)",
    "G2": "bound on E||g||^2 (CHOCO) or (G, B)-dissimilarity G^2 (FedAvg)",
    "B2": "(G, B)-dissimilarity B^2",
    "S": "participating clients per round",
    "c": "gradient tracking's constant in (0, 1] / bucketing's constant",
    "eta_g": "server step",
    "L_tilde": "sqrt(mean_i L_i^2) (EF21; default L)",
    "G0": "mean_i ||g_i^0 - grad f_i(x^0)||^2 (EF21)",
    "form": "atc or cta (DSGD)",
    "d": "dimension (compressor constants, the exact engine's quadratic)",
    "seed": "seed of the exact engine's quadratic",
}

_DEFAULTS = {
    "sigma2": 0.0, "zeta2": 0.0, "n": 1, "weights": "metropolis", "topology_seed": 0,
    "tau": 1, "f": 0, "r0_sq": 1.0, "B2": 0.0, "c": 1.0, "eta_g": 1.0, "G0": 0.0,
    "form": "atc", "d": 4, "seed": 0,
}  # fmt: skip


# ---- resolved inputs ----------------------------------------------------------------------------
@dataclass
class _Ctx:
    """The inputs after validation, with rho / omega / delta derived where a graph or a
    compressor spec was given (``sources`` says where each derived value came from)."""

    values: dict
    W: np.ndarray | None = None
    schedule: list | None = None
    graph_degree: int | None = None
    sources: dict = field(default_factory=dict)

    def __getattr__(self, name):
        try:
            return self.__dict__["values"][name]
        except KeyError:
            raise AttributeError(name) from None


def _float_or_none(name, value, allow_zero=True):
    return None if value is None else check_positive(name, value, allow_zero=allow_zero)


def resolve_inputs(**inputs) -> _Ctx:
    """Validate the calculator's inputs and derive rho (from a topology + weight rule, or W) and
    omega / delta (from a compressor spec at dimension d).

    Raises
    ------
    TheorylabError
        An unknown input name, a value out of range, rho given together with a topology, ...
    """
    unknown = sorted(set(inputs) - set(INPUTS))
    if unknown:
        raise TheorylabError(f"unknown input(s) {unknown}; the calculator takes {sorted(INPUTS)}")
    v = {k: None for k in INPUTS}
    v.update(_DEFAULTS)
    v.update({k: x for k, x in inputs.items() if x is not None})
    v["L"] = _float_or_none("L", v["L"], allow_zero=False)
    if v["mu"] is not None:
        if v["L"] is None:
            raise TheorylabError("mu needs L (the smoothness constant), e.g. --L 1.0")
        v["mu"] = check_positive("mu", v["mu"])
        if v["mu"] > v["L"]:
            raise TheorylabError(f"need mu <= L, got mu={v['mu']} > L={v['L']}")
    for k in ("sigma2", "zeta2", "r0_sq", "B2", "G0"):
        v[k] = check_positive(k, v[k], allow_zero=True)
    for k in ("f_gap", "G2", "tau_avg", "tau_max", "kappa", "omega"):
        v[k] = _float_or_none(k, v[k])
    for k in ("gamma", "eta_g", "c", "L_tilde"):
        v[k] = _float_or_none(k, v[k], allow_zero=False)
    v["n"] = check_int("n", v["n"], minimum=1)
    v["d"] = check_int("d", v["d"], minimum=1)
    v["tau"] = check_int("tau", v["tau"], minimum=1)
    v["f"] = check_int("f", v["f"], minimum=0)
    if v["T"] is not None:
        v["T"] = check_int("T", v["T"], minimum=0)
    if v["S"] is not None:
        v["S"] = check_int("S", v["S"], minimum=1, maximum=v["n"])
    if v["delta"] is not None:
        v["delta"] = check_positive("delta", v["delta"])
        if v["delta"] > 1:
            raise TheorylabError(
                f"delta (compressor contraction) must lie in (0, 1], got {v['delta']}"
            )
    ctx = _Ctx(v)
    _resolve_graph(ctx)
    _resolve_compressor(ctx)
    _resolve_aggregator(ctx)
    return ctx


def _resolve_graph(ctx: _Ctx) -> None:
    v = ctx.values
    given = [k for k in ("rho", "topology", "W") if v[k] is not None]
    if len(given) > 1:
        raise TheorylabError(f"give one of rho, topology and W, not {given}")
    if v["rho"] is not None:
        v["rho"] = check_positive("rho", v["rho"], allow_zero=True)
        if v["rho"] >= 1:
            raise TheorylabError(
                f"rho = ||W - 11^T/n||_2 must be < 1 (a connected graph), got {v['rho']}"
            )
        ctx.sources["rho"] = "given"
        return
    if v["W"] is not None:
        from theorylab.stochastic import check_schedule

        W = np.asarray(v["W"], dtype=float)
        if W.ndim != 2 or W.shape != (v["n"], v["n"]):
            raise TheorylabError(f"W must be an n x n matrix with n = {v['n']}, got {W.shape}")
        check_schedule([W])
        ctx.W = W
        ctx.graph_degree = int(((np.abs(W) > 0) & ~np.eye(v["n"], dtype=bool)).sum(axis=1).max())
        v["W"] = None  # not an input the rate functions read; the matrix is ctx.W
        _set_rho_from_W(ctx, "given W")
        return
    if v["topology"] is None:
        return
    from theorylab import topology as topo
    from theorylab.mixing import mixing_matrix

    if v["n"] < 2:
        raise TheorylabError(f"a topology needs n >= 2 nodes, got n = {v['n']}")
    G = topo.build(
        v["topology"], v["n"], degree=v["degree"], p=v["p"], radius=v["radius"],
        seed=v["topology_seed"],
    )  # fmt: skip
    if isinstance(G, topo.Schedule):
        from theorylab.cost import effective_rho
        from theorylab.spectral import schedule_rho

        ctx.schedule = [np.asarray(G[k].toarray() if hasattr(G[k], "toarray") else G[k])
                        for k in range(G.period)]  # fmt: skip
        ctx.graph_degree = 1
        rho_p = schedule_rho(ctx.schedule) ** G.period
        v["rho"] = effective_rho(rho_p, G.period)
        ctx.sources["rho"] = (
            f"{v['topology']} schedule (period {G.period}, fixed weights 1/2): rho_eff with "
            "1 - rho_eff^2 = (1 - rho_P^2)/P (theorylab.cost.effective_rho)"
        )
        return
    W = mixing_matrix(G, v["weights"], sparse=False)
    ctx.W = np.asarray(W, dtype=float)
    ctx.graph_degree = max(dg for _, dg in G.degree())
    _set_rho_from_W(ctx, f"{v['topology']} (n = {v['n']}) with {v['weights']} weights")


def _set_rho_from_W(ctx: _Ctx, what: str) -> None:
    from theorylab.spectral import extreme_eigenvalues

    spec = extreme_eigenvalues(ctx.W)
    if spec.rho >= 1 - 1e-12:
        raise TheorylabError(f"{what}: rho = {spec.rho:.6g} >= 1 (no mixing); use another rule")
    ctx.values["rho"] = float(spec.rho)
    ctx.sources["rho"] = what


def _resolve_compressor(ctx: _Ctx) -> None:
    v = ctx.values
    spec = v["compressor"]
    if spec is None:
        return
    if v["omega"] is not None or v["delta"] is not None:
        raise TheorylabError("give a compressor spec or omega/delta, not both")
    from theorylab.compressors import get_compressor

    C = get_compressor(spec)
    v["omega"] = C.omega(v["d"]) if C.unbiased else None
    v["delta"] = C.delta(v["d"])
    v["bits"] = int(C.bits(v["d"]))
    ctx.sources["omega/delta"] = f"{C.name or spec} at d = {v['d']}"
    if v["omega"] is None and v["delta"] is None:
        raise TheorylabError(f"compressor {spec!r} declares neither omega nor delta")


def _resolve_aggregator(ctx: _Ctx) -> None:
    v = ctx.values
    spec = v["aggregator"]
    if spec is None:
        return
    if v["kappa"] is not None:
        raise TheorylabError("give an aggregator spec or kappa, not both")
    try:
        from theorylab.aggregators import get_aggregator
    except ImportError as exc:
        raise TheorylabError(
            f"aggregator specs need theorylab.aggregators ({exc}); give kappa (--kappa) instead"
        ) from exc
    kappa = get_aggregator(spec).kappa(v["n"], v["f"])
    if kappa is None:
        raise TheorylabError(
            f"aggregator {spec!r} has no pinned (f, kappa)-robustness bound at n = {v['n']}, "
            f"f = {v['f']}; give kappa (--kappa), e.g. an empirical one"
        )
    v["kappa"] = float(kappa)
    ctx.sources["kappa"] = f"{spec} at n = {v['n']}, f = {v['f']} (theoretical bound)"


def _mixing_rho(ctx: _Ctx, lazy: bool) -> tuple[float, str]:
    """rho of W, or of Wbar = (I + W)/2 for the methods that mix with it (exact diffusion)."""
    if ctx.rho is None:
        return None, ""
    if not lazy:
        return ctx.rho, ctx.sources.get("rho", "")
    if ctx.W is not None:
        from theorylab.spectral import extreme_eigenvalues

        Wbar = 0.5 * (np.eye(ctx.n) + ctx.W)
        return float(extreme_eigenvalues(Wbar).rho), "rho of Wbar = (I + W)/2"
    if ctx.schedule is not None:
        raise TheorylabError("exact diffusion on a time-varying schedule is not covered")
    return ctx.rho, "given (read as the rho of Wbar = (I + W)/2 that exact diffusion mixes with)"


# ---- the registry -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Algorithm:
    """One entry of the registry: a rate function and how the calculator's inputs feed it.

    Attributes
    ----------
    name : str, the calculator's name (``theorylab rate NAME``)
    family : str, 'decentralized', 'compression', 'lazy', 'tracking', 'asynchronous', ...
    function : str, ``'module:attr'`` of the rate function (imported when first used)
    summary : str, one line
    needs : tuple of inputs that must be given (``'rho'`` also accepts a topology or W)
    uses : tuple of the other inputs it reads
    step : 'required' (the bound is evaluated at a step ``gamma``), 'optional' (gamma only
        checks the condition) or None (the theorem fixes the step)
    lazy_mixing : the rate's rho is that of ``(I + W)/2`` (exact diffusion)
    kwargs : ``(inputs, T, rho) -> dict``, the keyword arguments of the rate function
    transient : ``(inputs, rho) -> dict`` of the transient iterations, or None
    exact : name of the exact predictor in :mod:`theorylab.exact`, or None
    exact_call : ``(inputs, problem, W, gamma, steps, record) -> ExactPrediction``, or None
    timing : how one iteration is timed under the alpha-beta model ('allreduce', 'gossip',
        'gossip2', 'allgather', 'local'), or None (not modelled)
    pick : the key of the Rate to take when the function returns a dict of them
    """

    name: str
    family: str
    function: str
    summary: str
    kwargs: Callable = field(repr=False)
    needs: tuple = ()
    uses: tuple = ()
    step: str | None = "required"
    lazy_mixing: bool = False
    transient: Callable | None = field(default=None, repr=False)
    exact: str | None = None
    exact_call: Callable | None = field(default=None, repr=False)
    timing: str | None = None
    pick: str | None = None

    def call(self, **kwargs) -> Rate:
        """The rate function's Rate for these keyword arguments (its ``pick`` entry when the
        function returns several)."""
        out = self.resolve()(**kwargs)
        return out[self.pick] if self.pick is not None else out

    def resolve(self) -> Callable:
        """The rate function (ImportError when its module is not installed)."""
        module, _, attr = self.function.partition(":")
        return getattr(importlib.import_module(module), attr)


def _regime(x) -> str:
    return "strongly_convex" if x.mu is not None else "nonconvex"


def _need_gap(x, alg: str) -> None:
    if x.mu is None and x.f_gap is None:
        raise TheorylabError(
            f"{alg}: the non-convex bound needs f_gap = f(x_0) - f* (--f-gap); give mu (--mu) "
            "for the strongly convex bound"
        )


def _need_nonconvex(x, alg: str) -> None:
    if x.f_gap is None:
        raise TheorylabError(f"{alg} is a non-convex bound: give f_gap = f(x_0) - f* (--f-gap)")


def _rounds(x, T):
    """Communication rounds R = T // tau (FedAvg / SCAFFOLD count rounds, K = tau steps each)."""
    R = T // x.tau
    if R < 1:
        raise TheorylabError(f"T = {T} < tau = {x.tau} gives no communication round")
    return R


# kwargs builders: (resolved inputs, T, rho of the mixing matrix) -> keyword arguments
def _k_psgd(x, T, rho):
    _need_gap(x, "psgd")
    return dict(gamma=x.gamma, L=x.L, sigma2=x.sigma2, n=x.n, T=T, mu=x.mu, r0_sq=x.r0_sq,
                delta=x.f_gap)  # fmt: skip


def _k_dsgd(x, T, rho):
    _need_gap(x, "dsgd")
    return dict(gamma=x.gamma, L=x.L, sigma2=x.sigma2, zeta2=x.zeta2, rho=rho, n=x.n, mu=x.mu,
                T=T, form=x.form, avg_error0=x.r0_sq, consensus0=0.0, delta=x.f_gap)  # fmt: skip


def _k_local(x, T, rho):
    _need_gap(x, "local_sgd")
    return dict(gamma=x.gamma, L=x.L, sigma2=x.sigma2, zeta2=x.zeta2, n=x.n, tau=x.tau, T=T,
                mu=x.mu, delta=x.f_gap, avg_error0=x.r0_sq)  # fmt: skip


def _k_fedavg(x, T, rho):
    _need_gap(x, "fedavg")
    G2 = x.zeta2 if x.G2 is None else x.G2
    return dict(L=x.L, sigma2=x.sigma2, G2=G2, n=x.n, S=x.S or x.n, K=x.tau, R=_rounds(x, T),
                mu=x.mu, r0_sq=x.r0_sq, delta=x.f_gap, B2=x.B2, eta_g=x.eta_g,
                eta_l=x.gamma)  # fmt: skip


def _k_scaffold(x, T, rho):
    _need_gap(x, "scaffold")
    return dict(L=x.L, sigma2=x.sigma2, n=x.n, S=x.S or x.n, K=x.tau, R=_rounds(x, T),
                eta_l=x.gamma, eta_g=x.eta_g, mu=x.mu, r0_sq=x.r0_sq, delta=x.f_gap)  # fmt: skip


def _k_gt(x, T, rho):
    _need_gap(x, "gradient_tracking")
    return dict(L=x.L, sigma2=x.sigma2, n=x.n, rho=rho, T=T, mu=x.mu,
                delta=None if x.mu is not None else x.f_gap, r0_sq=x.r0_sq, c=x.c,
                gamma=x.gamma)  # fmt: skip


def _k_ed(x, T, rho):
    _need_gap(x, "exact_diffusion")
    return dict(L=x.L, sigma2=x.sigma2, n=x.n, rho=rho, T=T, mu=x.mu,
                delta=None if x.mu is not None else x.f_gap, r0_sq=x.r0_sq,
                gamma=x.gamma)  # fmt: skip


def _need_omega(x, alg):
    if x.omega is None:
        raise TheorylabError(
            f"{alg} needs an unbiased compressor: omega (--omega) or a compressor spec "
            "(--compressor, e.g. rand-k:ratio=0.25)"
        )
    return x.omega


def _need_delta(x, alg):
    if x.delta is None:
        raise TheorylabError(
            f"{alg} needs a contractive compressor: delta (--delta) or a compressor spec "
            "(--compressor, e.g. top-k:ratio=0.1)"
        )
    return x.delta


def _k_cpsgd(x, T, rho):
    _need_gap(x, "compressed_psgd")
    omega = _need_omega(x, "compressed_psgd")
    return dict(gamma=x.gamma, L=x.L, sigma2=x.sigma2, n=x.n, omega=omega, zeta2=x.zeta2, T=T,
                mu=x.mu, r0_sq=x.r0_sq, f_gap=x.f_gap)  # fmt: skip


def _k_efsgd(x, T, rho):
    _need_nonconvex(x, "ef_sgd")
    return dict(L=x.L, sigma2=x.sigma2, delta=_need_delta(x, "ef_sgd"), T=T, f_gap=x.f_gap)


def _k_ef21(x, T, rho):
    if x.f_gap is None:
        raise TheorylabError("ef21 needs f_gap = f(x_0) - f* (--f-gap), also under PL (mu)")
    return dict(L=x.L, L_tilde=x.L if x.L_tilde is None else x.L_tilde,
                delta=_need_delta(x, "ef21"), T=T, f_gap=x.f_gap, G0=x.G0, gamma=x.gamma,
                mu=x.mu)  # fmt: skip


def _k_choco(x, T, rho):
    if x.mu is None or x.G2 is None:
        raise TheorylabError("choco_sgd is a strongly convex rate: give mu and G2 (E||g||^2 <= G2)")
    return dict(sigma2=x.sigma2, G2=x.G2, mu=x.mu, L=x.L, n=x.n, spectral_gap=1.0 - rho,
                delta=_need_delta(x, "choco_sgd"), T=T)  # fmt: skip


def _k_clb(x, T, rho):
    _need_nonconvex(x, "compressed_lower_bound")
    if x.compressor is not None:
        om, de = (x.omega, None) if x.omega is not None else (None, x.delta)
    else:
        om, de = x.omega, x.delta
    if (om is None) == (de is None):
        raise TheorylabError("compressed_lower_bound needs exactly one of omega and delta")
    return dict(L=x.L, f_gap=x.f_gap, sigma2=x.sigma2, n=x.n, T=T, omega=om, delta=de)


def _delays(x, alg, avg=True):
    if x.tau_max is None or (avg and x.tau_avg is None):
        need = "tau_max and tau_avg (--tau-max, --tau-avg)" if avg else "tau_max (--tau-max)"
        raise TheorylabError(f"{alg} needs the delays {need}")


def _k_asgd_delayed(x, T, rho):
    _need_nonconvex(x, "asgd_delayed")
    _delays(x, "asgd_delayed")
    return dict(gamma=x.gamma, L=x.L, sigma2=x.sigma2, T=T, delta=x.f_gap, tau_max=x.tau_max,
                tau_avg=x.tau_avg)  # fmt: skip


def _k_asgd_max(x, T, rho):
    _need_nonconvex(x, "asgd_max_delay")
    _delays(x, "asgd_max_delay", avg=False)
    return dict(L=x.L, sigma2=x.sigma2, T=T, delta=x.f_gap, tau_max=x.tau_max, gamma=x.gamma)


def _k_asgd_avg(adaptive):
    def build(x, T, rho):
        name = "asgd_avg_delay" + ("_adaptive" if adaptive else "")
        _need_nonconvex(x, name)
        _delays(x, name)
        return dict(L=x.L, sigma2=x.sigma2, T=T, delta=x.f_gap, tau_max=x.tau_max,
                    tau_avg=x.tau_avg, adaptive=adaptive, gamma=x.gamma)  # fmt: skip

    return build


def _k_asgd_workers(x, T, rho):
    if x.f_gap is None and x.mu is None:
        raise TheorylabError("asgd_workers needs f_gap (non-convex) or mu with r0_sq (convex)")
    nonconvex = x.f_gap is not None
    return dict(L=x.L, sigma2=x.sigma2, T=T, n=x.n, delta=x.f_gap if nonconvex else None,
                r0_sq=None if nonconvex else x.r0_sq, gamma=x.gamma)  # fmt: skip


def _k_woodworth(x, T, rho):
    return dict(L=x.L, sigma2=x.sigma2, zeta2=x.zeta2, r0_sq=x.r0_sq, M=x.n, K=x.tau,
                R=_rounds(x, T))  # fmt: skip


def _k_choco_gossip(x, T, rho):
    if x.W is None:
        raise TheorylabError(
            "choco_gossip needs the matrix W for beta = ||I - W||_2: give a topology or W"
        )
    beta = float(np.linalg.norm(np.eye(x.n) - x.W, 2))
    return dict(spectral_gap=1.0 - rho, beta=beta, delta=_need_delta(x, "choco_gossip"), T=T,
                e0=x.r0_sq)  # fmt: skip


def _k_gossip(x, T, rho):
    return dict(rho=rho, t=T, consensus0=x.r0_sq)


def _opt(**kw):
    """Only the keyword arguments that were given (the rate function's defaults otherwise)."""
    return {k: v for k, v in kw.items() if v is not None}


def _k_byz_dshb(x, T, rho):
    if x.kappa is None:
        raise TheorylabError(
            "robust_dshb needs the aggregator's robustness: kappa (--kappa) or an aggregator "
            "spec (--aggregator, e.g. nnm+trimmed-mean)"
        )
    return dict(kappa=x.kappa, zeta2=x.zeta2, n=x.n, f=x.f, sigma2=x.sigma2, T=T, B2=x.B2,
                **_opt(L=x.L, delta=x.f_gap))  # fmt: skip


def _k_byz_bucketing(x, T, rho):
    return dict(c=x.c, zeta2=x.zeta2, n=x.n, f=x.f, sigma2=x.sigma2, T=T,
                **_opt(L=x.L, delta=x.f_gap))  # fmt: skip


def _k_byz_lower(x, T, rho):
    return dict(zeta2=x.zeta2, n=x.n, f=x.f, B2=x.B2)


# transient iterations: (inputs, rho) -> dict or None
def _t_psgd(x, rho):
    return {"value": 0.0, "note": "PSGD is the reference (0 by definition)",
            "source": "definition"}  # fmt: skip


def _t_decentralized(alg):
    def transient(x, rho):
        from theorylab.rates.decentralized import transient_iterations
        from theorylab.rates.tracking import transient_crossing

        if x.sigma2 == 0:
            return {"value": None, "note": "undefined for sigma2 = 0 (no noise term to match)"}
        regime = _regime(x)
        if regime == "nonconvex" and x.f_gap is None:
            return None
        het = alg == "dsgd" and x.zeta2 > 0
        r = transient_iterations(
            n=x.n, rho=rho, regime=regime, heterogeneous=het, L=x.L, mu=x.mu, sigma2=x.sigma2,
            zeta2=x.zeta2, delta=1.0 if x.f_gap is None else x.f_gap, algorithm=alg, c=x.c,
        )  # fmt: skip
        out = {"value": r.total, "scaling": r.extra.get("scaling"), "source": r.source,
               "big_o": r.big_o}  # fmt: skip
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", TheorylabWarning)
            out["crossing"] = transient_crossing(
                alg, regime=regime, n=x.n, rho=rho, L=x.L, mu=x.mu, sigma2=x.sigma2,
                zeta2=x.zeta2, delta=1.0 if x.f_gap is None else x.f_gap, c=x.c,
            )  # fmt: skip
        return out

    return transient


# exact predictors: (inputs, problem, W or schedule, gamma, steps, record) -> ExactPrediction
def _x0(problem, r0_sq):
    return problem.x_star + math.sqrt(r0_sq / problem.d) * np.ones(problem.d)


def _X0(problem, r0_sq):
    return np.tile(_x0(problem, r0_sq), (problem.n, 1))


def _e_psgd(x, p, W, gamma, steps, rec):
    from theorylab.exact import exact_psgd

    return exact_psgd(p, gamma, steps, _x0(p, x.r0_sq), record=rec)


def _e_dsgd(x, p, W, gamma, steps, rec):
    from theorylab.exact import exact_dsgd

    return exact_dsgd(p, W, gamma, steps, _X0(p, x.r0_sq), form=x.form, record=rec)


def _e_gt(x, p, W, gamma, steps, rec):
    from theorylab.exact import exact_gradient_tracking

    return exact_gradient_tracking(p, W, gamma, steps, _X0(p, x.r0_sq), record=rec)


def _e_ed(x, p, W, gamma, steps, rec):
    from theorylab.exact import exact_diffusion

    return exact_diffusion(p, W, gamma, steps, _X0(p, x.r0_sq), record=rec)


def _e_local(x, p, W, gamma, steps, rec):
    from theorylab.exact import exact_local_sgd

    return exact_local_sgd(p, gamma, x.tau, steps, _x0(p, x.r0_sq), eta_g=x.eta_g,
                           participation=x.S, record=rec)  # fmt: skip


def _e_scaffold(x, p, W, gamma, steps, rec):
    from theorylab.exact import exact_scaffold

    return exact_scaffold(p, gamma, x.tau, steps, _x0(p, x.r0_sq), eta_g=x.eta_g, record=rec)


def _e_cpsgd(x, p, W, gamma, steps, rec):
    from theorylab.exact.compressed import exact_compressed_psgd

    if x.compressor is None:
        raise TheorylabError("the exact compressed curve needs a compressor spec (--compressor)")
    return exact_compressed_psgd(p, gamma, steps, _x0(p, x.r0_sq), x.compressor, record=rec)


def _e_gossip(x, p, W, gamma, steps, rec):
    from theorylab.exact import exact_gossip

    # consensus0 = r0_sq: X_0 on the slowest eigenvector of a static symmetric W (where the
    # bound rho^(2t) r0_sq is attained), else alternating signs; (1/n) sum s_i^2 = r0_sq
    s = np.array([(-1.0) ** i for i in range(x.n)])
    if isinstance(W, np.ndarray) and np.allclose(W, W.T):
        lam, U = np.linalg.eigh(W - np.full(W.shape, 1.0 / x.n))
        s = U[:, int(np.argmax(np.abs(lam)))]
    s = s - s.mean()
    scale = math.sqrt(x.r0_sq / max(np.mean(s**2), 1e-300)) if np.any(s) else 0.0
    X0 = np.outer(scale * s, np.ones(1))
    return exact_gossip(W, X0, steps, record=rec)


_SC = "strongly convex (mu) or non-convex (f_gap)"

# fmt: off
ALGORITHMS: dict[str, Algorithm] = {a.name: a for a in [
    # decentralized: parallel SGD, DSGD, gossip
    Algorithm("psgd", "decentralized", "theorylab.rates.decentralized:psgd",
              "parallel (all-reduce) SGD; " + _SC, _k_psgd, ("L",),
              ("mu", "sigma2", "n", "r0_sq", "f_gap"), transient=_t_psgd, exact="exact_psgd",
              exact_call=_e_psgd, timing="allreduce"),
    Algorithm("dsgd", "decentralized", "theorylab.rates.decentralized:dsgd",
              "decentralized SGD (ATC/CTA); " + _SC, _k_dsgd, ("L", "rho"),
              ("mu", "sigma2", "zeta2", "n", "form", "r0_sq", "f_gap"),
              transient=_t_decentralized("dsgd"), exact="exact_dsgd", exact_call=_e_dsgd,
              timing="gossip"),
    Algorithm("gossip", "decentralized", "theorylab.rates.decentralized:gossip_consensus",
              "gossip averaging: consensus distance after T rounds (consensus0 = r0_sq)",
              _k_gossip, ("rho",), ("r0_sq",), step=None, exact="exact_gossip",
              exact_call=_e_gossip, timing="gossip"),
    # lazy: local SGD, FedAvg, SCAFFOLD, minibatch vs local (convex)
    Algorithm("local_sgd", "lazy", "theorylab.rates.lazy:local_sgd",
              "local SGD / FedAvg (full participation), period tau; " + _SC, _k_local, ("L",),
              ("mu", "sigma2", "zeta2", "n", "tau", "r0_sq", "f_gap"), exact="exact_local_sgd",
              exact_call=_e_local, timing="local"),
    Algorithm("fedavg", "lazy", "theorylab.rates.lazy:fedavg",
              "FedAvg, S of n clients, K = tau local steps, R = T // tau rounds (big-O)",
              _k_fedavg, ("L",), ("mu", "sigma2", "G2", "zeta2", "B2", "n", "S", "tau", "eta_g",
                                  "r0_sq", "f_gap"),
              step="optional", exact="exact_local_sgd", exact_call=_e_local, timing="local"),
    Algorithm("scaffold", "lazy", "theorylab.rates.lazy:scaffold",
              "SCAFFOLD, K = tau local steps, R = T // tau rounds (big-O, no zeta2 term)",
              _k_scaffold, ("L",), ("mu", "sigma2", "n", "S", "tau", "eta_g", "r0_sq", "f_gap"),
              exact="exact_scaffold", exact_call=_e_scaffold, timing="local"),
    Algorithm("minibatch_sgd_convex", "lazy", "theorylab.rates.lazy:minibatch_vs_local",
              "minibatch SGD, convex, M = n machines, K = tau, R = T // tau (Woodworth et al. "
              "2020, big-O)", _k_woodworth, ("L",), ("sigma2", "zeta2", "r0_sq", "n", "tau"),
              step=None, timing="local", pick="minibatch"),
    Algorithm("local_sgd_convex", "lazy", "theorylab.rates.lazy:minibatch_vs_local",
              "local SGD, convex, M = n machines, K = tau, R = T // tau (Woodworth et al. "
              "2020, big-O)", _k_woodworth, ("L",), ("sigma2", "zeta2", "r0_sq", "n", "tau"),
              step=None, timing="local", pick="local"),
    # tracking: heterogeneity-corrected decentralized methods
    Algorithm("gradient_tracking", "tracking", "theorylab.rates.tracking:gradient_tracking",
              "gradient tracking (big-O, no zeta2 term); " + _SC, _k_gt, ("L", "rho"),
              ("mu", "sigma2", "n", "c", "r0_sq", "f_gap"), step="optional",
              transient=_t_decentralized("gradient_tracking"), exact="exact_gradient_tracking",
              exact_call=_e_gt, timing="gossip2"),
    Algorithm("exact_diffusion", "tracking", "theorylab.rates.tracking:exact_diffusion",
              "exact diffusion / D^2 (big-O, no zeta2 term; rho of (I + W)/2); " + _SC, _k_ed,
              ("L", "rho"), ("mu", "sigma2", "n", "r0_sq", "f_gap"), step="optional",
              lazy_mixing=True, transient=_t_decentralized("exact_diffusion"),
              exact="exact_diffusion", exact_call=_e_ed, timing="gossip"),
    # compression
    Algorithm("compressed_psgd", "compression", "theorylab.rates.compression:compressed_psgd",
              "parallel SGD with unbiased compressors U(omega); " + _SC, _k_cpsgd,
              ("L", "omega"), ("mu", "sigma2", "zeta2", "n", "r0_sq", "f_gap"),
              exact="exact_compressed_psgd", exact_call=_e_cpsgd, timing="allgather"),
    Algorithm("ef_sgd", "compression", "theorylab.rates.compression:ef_sgd",
              "error feedback with B(delta), gamma = 1/sqrt(T+1) (non-convex)", _k_efsgd,
              ("L", "delta", "f_gap"), ("sigma2",), step=None, timing="allgather"),
    Algorithm("ef21", "compression", "theorylab.rates.compression:ef21",
              "EF21 with B(delta), full gradients (non-convex, or PL with mu)", _k_ef21,
              ("L", "delta", "f_gap"), ("mu", "L_tilde", "G0"), step="optional",
              timing="allgather"),
    Algorithm("choco_sgd", "compression", "theorylab.rates.compression:choco_sgd",
              "CHOCO-SGD with B(delta), strongly convex (big-O)", _k_choco,
              ("L", "mu", "G2", "rho", "delta"), ("sigma2", "n"), step=None, timing="gossip"),
    Algorithm("choco_gossip", "compression", "theorylab.rates.compression:choco_gossip",
              "CHOCO-Gossip consensus with B(delta) (e0 = r0_sq; needs the graph's W)",
              _k_choco_gossip, ("rho", "delta"), ("r0_sq",), step=None, timing="gossip"),
    Algorithm("compressed_lower_bound", "compression",
              "theorylab.rates.compression:compressed_lower_bound",
              "lower bound, non-convex, compressed uplink (big-O)", _k_clb, ("L", "f_gap"),
              ("sigma2", "n", "omega", "delta"), step=None),
    # asynchronous
    Algorithm("asgd_delayed", "asynchronous", "theorylab.rates.asynchronous:asgd_delayed",
              "asynchronous SGD, explicit constants (non-convex; tau_max, tau_avg)",
              _k_asgd_delayed, ("L", "f_gap", "tau_max", "tau_avg"), ("sigma2",)),
    Algorithm("asgd_max_delay", "asynchronous", "theorylab.rates.asynchronous:asgd_max_delay",
              "asynchronous SGD in tau_max (Stich & Karimireddy 2020, big-O)", _k_asgd_max,
              ("L", "f_gap", "tau_max"), ("sigma2",), step="optional"),
    Algorithm("asgd_avg_delay", "asynchronous", "theorylab.rates.asynchronous:asgd_avg_delay",
              "asynchronous SGD in sqrt(tau_max tau_avg) (Koloskova et al. 2022, big-O)",
              _k_asgd_avg(False), ("L", "f_gap", "tau_max", "tau_avg"), ("sigma2",),
              step="optional"),
    Algorithm("asgd_avg_delay_adaptive", "asynchronous",
              "theorylab.rates.asynchronous:asgd_avg_delay",
              "asynchronous SGD with delay-adaptive steps, in tau_avg (big-O)",
              _k_asgd_avg(True), ("L", "f_gap", "tau_max", "tau_avg"), ("sigma2",),
              step="optional"),
    Algorithm("asgd_workers", "asynchronous", "theorylab.rates.asynchronous:asgd_workers",
              "asynchronous SGD in the number of workers n (Mishchenko et al. 2022, big-O)",
              _k_asgd_workers, ("L",), ("sigma2", "n", "f_gap", "mu", "r0_sq"),
              step="optional"),
    # Byzantine
    Algorithm("robust_dshb", "byzantine", "theorylab.rates.byzantine:robust_dshb",
              "Byzantine-robust SGD with heavy-ball momentum, (f, kappa)-robust aggregator",
              _k_byz_dshb, ("kappa",), ("L", "zeta2", "n", "f", "sigma2", "f_gap", "B2"),
              step=None),
    Algorithm("bucketing_momentum_sgd", "byzantine",
              "theorylab.rates.byzantine:bucketing_momentum_sgd",
              "bucketing + momentum SGD against f Byzantine nodes", _k_byz_bucketing, (),
              ("L", "zeta2", "n", "f", "sigma2", "f_gap", "c"), step=None),
    Algorithm("byzantine_lower_bound", "byzantine",
              "theorylab.rates.byzantine:byzantine_lower_bound",
              "lower bound on the error floor with f of n Byzantine nodes", _k_byz_lower, (),
              ("zeta2", "n", "f", "B2"), step=None),
]}
# fmt: on


def available() -> list[str]:
    """Names of the registered algorithms whose rate function is importable."""
    out = []
    for name, alg in ALGORITHMS.items():
        try:
            alg.resolve()
        except (ImportError, AttributeError):
            continue
        out.append(name)
    return out


def algorithm(name: str) -> Algorithm:
    """The registry entry ``name`` (a clear error for an unknown or unavailable one)."""
    if not isinstance(name, str) or name not in ALGORITHMS:
        raise TheorylabError(f"unknown algorithm {name!r}; choose from {available()}")
    alg = ALGORITHMS[name]
    try:
        alg.resolve()
    except (ImportError, AttributeError) as exc:
        raise TheorylabError(
            f"algorithm {name!r} needs {alg.function}, which is not available: {exc}"
        ) from exc
    return alg


# ---- evaluation ---------------------------------------------------------------------------------
def _check_needs(alg: Algorithm, ctx: _Ctx) -> None:
    for k in alg.needs:
        if k == "rho" and ctx.rho is None:
            raise TheorylabError(
                f"{alg.name} needs the graph: rho (--rho), or a topology and weight rule "
                "(--topology ring --weights metropolis)"
            )
        if k in ("omega", "delta", "f_gap", "kappa") or k == "rho":
            continue  # their builders give the specific message
        if getattr(ctx, k) is None:
            raise TheorylabError(f"{alg.name} needs {k} ({INPUTS[k]}; --{k.replace('_', '-')})")


def _rho_for(alg: Algorithm, ctx: _Ctx):
    rho, _ = _mixing_rho(ctx, alg.lazy_mixing)
    return rho


def rate_kwargs(name: str, T: int | None = None, **inputs) -> dict:
    """The keyword arguments the calculator passes to ``name``'s rate function (``gamma`` as
    given: None stays None)."""
    alg = algorithm(name)
    ctx = resolve_inputs(T=T, **inputs)
    _check_needs(alg, ctx)
    return alg.kwargs(ctx, ctx.T, _rho_for(alg, ctx))


def _call(alg: Algorithm, ctx: _Ctx, T, gamma, record: list | None = None) -> Rate:
    ctx2 = _Ctx(dict(ctx.values, gamma=gamma), ctx.W, ctx.schedule, ctx.graph_degree, ctx.sources)
    kw = alg.kwargs(ctx2, T, _rho_for(alg, ctx))
    if record is None:
        return alg.call(**kw)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", TheorylabWarning)
        r = alg.call(**kw)
    record.extend(str(w.message) for w in caught if issubclass(w.category, TheorylabWarning))
    return r


def _gamma0(alg: Algorithm, ctx: _Ctx) -> float:
    """Largest step of the default grid: 2/(L + mu) (strongly convex), 1/L (non-convex)."""
    return 2.0 / (ctx.L + ctx.mu) if ctx.mu is not None else 1.0 / ctx.L


_GRID = 40  # gamma_0 2^-j, j = 0..39


def step_grid(name: str, **inputs) -> list[float]:
    """The candidate steps ``gamma_0 2^-j`` (j < 40) of :func:`default_step`."""
    alg = algorithm(name)
    ctx = resolve_inputs(**inputs)
    return [_gamma0(alg, ctx) * 0.5**j for j in range(_GRID)]


def default_step(name: str, T: int, **inputs) -> tuple[float, list[dict]]:
    """The step of the grid ``gamma_0 2^-j`` (j = 0..39; ``gamma_0 = 2/(L + mu)`` strongly convex,
    ``1/L`` non-convex) whose bound at T is smallest among the steps that meet the theorem's
    condition (ties: the larger step). Returns ``(gamma, rows)`` with one row per candidate."""
    alg = algorithm(name)
    T = check_int("T", T, minimum=1)
    ctx = resolve_inputs(T=T, **{k: v for k, v in inputs.items() if k != "gamma"})
    _check_needs(alg, ctx)
    return _default_step(alg, ctx, T)


def _default_step(alg, ctx, T):
    rows = []
    for g in (_gamma0(alg, ctx) * 0.5**j for j in range(_GRID)):
        with warnings.catch_warnings(), np.errstate(over="ignore", invalid="ignore"):
            warnings.simplefilter("ignore", TheorylabWarning)
            r = _call(alg, ctx, T, g)
        ok = r.step_size_ok is not False and math.isfinite(r.total)
        rows.append({"gamma": g, "total": r.total, "condition_ok": ok})
    good = [r for r in rows if r["condition_ok"]]
    totals = [r["total"] for r in good]
    if good and max(totals) - min(totals) <= 1e-14 * abs(max(totals)):
        for r in rows:
            r["unused"] = True  # the bound does not depend on gamma (a tuned step)
        return good[0]["gamma"], rows
    if not good:
        raise TheorylabError(
            f"{alg.name}: no step gamma_0 2^-j (j < {_GRID}) meets the condition "
            f"{_call_condition(alg, ctx, T)}; give --gamma"
        )
    best = min(good, key=lambda r: (r["total"], -r["gamma"]))
    return best["gamma"], rows


def _call_condition(alg, ctx, T):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TheorylabWarning)
        return _call(alg, ctx, T, _gamma0(alg, ctx)).step_size_condition


def rate(name: str, T: int | None = None, **inputs) -> Rate:
    """The :class:`~theorylab.rates.Rate` of algorithm ``name`` at ``T`` for the calculator's
    inputs: exactly the rate function's return value (with the step of :func:`default_step`
    when ``gamma`` is None and the bound needs one)."""
    alg = algorithm(name)
    ctx = resolve_inputs(T=T, **inputs)
    _check_needs(alg, ctx)
    gamma = ctx.gamma
    if gamma is None and alg.step == "required":
        if T is None:
            raise TheorylabError(f"{name}: the steady state (T=None) needs a step gamma")
        gamma, _ = _default_step(alg, ctx, ctx.T)
    return _call(alg, ctx, ctx.T, gamma)


# ---- the exact engine ---------------------------------------------------------------------------
def exact_problem(*, n: int, d: int, L: float, mu: float, zeta2: float, sigma2: float, seed=0):
    """The quadratic of :func:`theorylab.problems.heterogeneous_quadratic` with exactly these
    L, mu, zeta2 (at x*) and sigma2: the problem the calculator's exact curves are for."""
    from theorylab.problems import heterogeneous_quadratic

    return heterogeneous_quadratic(n, d, L=L, mu=mu, zeta2=zeta2, sigma2=sigma2, seed=seed)


def _exact_W(ctx: _Ctx):
    if ctx.W is not None:
        return ctx.W, ctx.sources.get("rho", "W")
    if ctx.schedule is not None:
        return ctx.schedule, ctx.sources.get("rho", "schedule")
    if ctx.rho is not None and ctx.n >= 2:
        J = np.full((ctx.n, ctx.n), 1.0 / ctx.n)
        return ctx.rho * np.eye(ctx.n) + (1 - ctx.rho) * J, (
            "W = rho I + (1 - rho) 11^T/n (every nontrivial eigenvalue rho; give a topology "
            "for a real graph)"
        )
    return None, ""


def _exact(alg, ctx, gamma, Ts):
    """dict with the exact curve at Ts, or a dict with only 'note' when it does not apply."""
    if alg.exact_call is None:
        return None
    if ctx.mu is None and alg.name != "gossip":
        return {"note": "the exact engine needs a quadratic: give mu (strongly convex)"}
    if alg.step is not None and gamma is None:
        return {"note": "the exact curve needs a step: give gamma"}
    W, wnote = (None, "")
    if alg.name in ("dsgd", "gradient_tracking", "exact_diffusion", "gossip"):
        W, wnote = _exact_W(ctx)
        if W is None:
            return {"note": "the exact curve needs a graph with n >= 2"}
    if alg.name == "gossip":
        p = None  # gossip needs only the graph
    else:
        try:
            p = exact_problem(n=ctx.n, d=ctx.d, L=ctx.L, mu=ctx.mu, zeta2=ctx.zeta2,
                              sigma2=ctx.sigma2, seed=ctx.seed)  # fmt: skip
        except TheorylabError as exc:
            return {"note": f"no quadratic with these constants: {exc}"}
    steps = max(Ts)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TheorylabWarning)
        pred = alg.exact_call(ctx, p, W, gamma, steps, list(Ts))
    metric = "consensus" if alg.name == "gossip" else "error"
    quantity = {
        "error": "(1/n) sum_i E||x_i^T - x*||^2",
        "consensus": "(1/n) sum_i E||x_i^T - xbar^T||^2",
    }[metric]
    return {
        "algorithm": pred.algorithm,
        "predictor": f"theorylab.exact.{alg.exact}",
        "metric": metric,
        "quantity": quantity,
        "T": [int(t) for t in pred.steps],
        "value": [float(v) for v in getattr(pred, metric)],
        "steady_state": float(pred.steady_state.get(metric, math.nan)),
        "problem": (
            "gossip on the graph"
            if alg.name == "gossip"
            else f"heterogeneous_quadratic(n={ctx.n}, d={ctx.d}, L={ctx.L:g}, mu={ctx.mu:g}, "
            f"zeta2={ctx.zeta2:g}, sigma2={ctx.sigma2:g}, seed={ctx.seed}), x_0 = x* + "
            f"sqrt(r0_sq/d) 1"
        ),
        "W": wnote,
    }


# ---- the one form -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Prediction:
    """The calculator's answer for one algorithm.

    Attributes
    ----------
    algorithm, family, function : the registry entry (function = the rate function called)
    inputs : dict, the inputs used (rho, omega, delta derived; gamma given or chosen)
    sources : dict, where derived inputs came from (graph and weights, compressor, step grid)
    rate : Rate at T (terms, total, kind, source, step-size condition)
    curve : list of dicts ``{'T', 'total', <term>: value}`` at the evaluation points
    transient : dict or None (``value``, ``scaling``, ``crossing``, ``source``)
    exact : dict or None: the exact curve at the same T (``T``, ``value``, ``metric``, ...), or
        ``{'note': why not}``
    warnings : tuple of str, the theorem's conditions that the inputs violate
    notes : tuple of str
    steady_state : float or None, the bound's limit T -> inf (where the rate function has one)
    """

    algorithm: str
    family: str
    function: str
    inputs: dict
    sources: dict
    rate: Rate
    curve: list
    transient: dict | None
    exact: dict | None
    warnings: tuple = ()
    notes: tuple = ()
    steady_state: float | None = None

    @property
    def total(self) -> float:
        return self.rate.total

    def to_dict(self) -> dict:
        from theorylab.output import to_jsonable

        return to_jsonable({
            "algorithm": self.algorithm, "family": self.family, "function": self.function,
            "inputs": self.inputs, "sources": self.sources, "rate": self.rate.to_dict(),
            "curve": self.curve, "transient": self.transient, "exact": self.exact,
            "warnings": list(self.warnings), "notes": list(self.notes),
            "steady_state": self.steady_state,
        })  # fmt: skip


#: rates in communication rounds R = T // tau
_ROUNDS = ("fedavg", "scaffold", "minibatch_sgd_convex", "local_sgd_convex")

#: rate functions that give the steady state with T=None (strongly convex)
_STEADY = ("psgd", "dsgd", "local_sgd", "compressed_psgd")


def default_Ts(T: int) -> list[int]:
    """Evaluation points: T/1000, T/100, T/10, T (those >= 1)."""
    return sorted({t for t in (T // 1000, T // 100, T // 10, T) if t >= 1})


def predict(
    name: str,
    *,
    T: int,
    Ts: Sequence[int] | None = None,
    exact: bool = True,
    **inputs,
) -> Prediction:
    """Everything the calculator says about algorithm ``name`` at ``T`` (see the module).

    Parameters
    ----------
    name : a key of :data:`ALGORITHMS`
    T : int >= 1, the horizon of the main rate
    Ts : the other evaluation points (default :func:`default_Ts`)
    exact : compute the exact curve where the engine applies (quadratics, mu given)
    **inputs : the calculator's inputs (:data:`INPUTS`)

    Returns
    -------
    Prediction. Warnings of the theorem's conditions are re-emitted as TheorylabWarning.
    """
    alg = algorithm(name)
    T = check_int("T", T, minimum=1)
    ctx = resolve_inputs(T=T, **inputs)
    _check_needs(alg, ctx)
    Ts = default_Ts(T) if Ts is None else sorted({check_int("T", t, minimum=1) for t in Ts} | {T})
    if alg.name in _ROUNDS:
        Ts = [t for t in Ts if t >= ctx.tau] or [T]  # R = T // tau rounds >= 1
    sources = dict(ctx.sources)
    rho, rho_src = _mixing_rho(ctx, alg.lazy_mixing)
    if alg.lazy_mixing and rho is not None:
        sources["rho"] = rho_src
    gamma = ctx.gamma
    notes = []
    if gamma is None and alg.step == "required":
        gamma, rows = _default_step(alg, ctx, T)
        sources["gamma"] = (
            "not used: the bound assumes its own tuned step"
            if rows[0].get("unused")
            else f"grid gamma_0 2^-j minimising the bound at T = {T}"
        )
    elif gamma is not None:
        sources["gamma"] = "given"
    caught: list[str] = []
    main = _call(alg, ctx, T, gamma, caught)
    curve = []
    for t in Ts:
        r = main if t == T else _call(alg, ctx, t, gamma, [])
        curve.append({"T": t, "total": r.total, **{k: float(v) for k, v in r.terms.items()}})
    steady = None
    if ctx.mu is not None and alg.name in _STEADY and gamma is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", TheorylabWarning)
            steady = _call(alg, ctx, None, gamma).total
    if main.big_o:
        notes.append("big-O: constants set to 1; compare shapes (exponents), not values")
    used = set(alg.needs) | set(alg.uses) | {"T", "gamma", "d", "seed"}
    ignored = [
        k
        for k in ("mu", "zeta2", "tau", "omega", "delta", "tau_avg", "tau_max", "f", "kappa", "G2")
        if inputs.get(k) is not None and inputs[k] != _DEFAULTS.get(k) and k not in used
    ]
    if ignored:
        notes.append(f"{name} does not use {ignored}")
    transient = alg.transient(ctx, rho) if alg.transient is not None else None
    ex = _exact(alg, ctx, gamma, Ts) if exact else None
    for msg in caught:
        warnings.warn(msg, TheorylabWarning, stacklevel=2)
    shown = used | {"topology", "weights", "compressor", "bits", "aggregator"}
    used_inputs = {k: v for k, v in ctx.values.items() if v is not None and k in shown}
    used_inputs["gamma"] = gamma
    if rho is not None and ("rho" in alg.needs or "rho" in alg.uses):
        used_inputs["rho"] = rho
    return Prediction(
        algorithm=name, family=alg.family, function=alg.function, inputs=used_inputs,
        sources=sources, rate=main, curve=curve, transient=transient, exact=ex,
        warnings=tuple(dict.fromkeys(caught)), notes=tuple(notes), steady_state=steady,
    )  # fmt: skip


def compare(names: Iterable[str], *, T: int, exact: bool = False, **inputs) -> list[Prediction]:
    """:func:`predict` for several algorithms on the same inputs (one Prediction each)."""
    names = list(names)
    if not names:
        raise TheorylabError("compare needs at least one algorithm")
    return [predict(nm, T=T, exact=exact, **inputs) for nm in names]
