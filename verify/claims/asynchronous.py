"""Claims of the asynchronous family: delayed gradients, staleness, speeds (issue 11).

* ``async_fixed_delay_exact`` (exact): fixed-delay SGD's error curve equals
  :func:`theorylab.exact.delay.exact_delayed_sgd`, each term where it alone acts, and a step
  just above :func:`~theorylab.exact.delay.delayed_sgd_stability_limit` diverges while one just
  below converges.
* ``async_delay_dependence`` (shape): on the parameter server (virtual clock), the stationary
  error's delay term follows the tau_avg-based prediction; a few very stale gradients (a
  straggler, or exponential compute times: tau_max >> tau_avg) change it as the tau_avg rate
  says (barely), not as the tau_max rate says.
* ``async_speed_weighted_fixed_point`` (exact, deterministic): with heterogeneous data and
  unequal speeds the server's limit point is ``argmin sum_i p_i f_i``
  (:func:`theorylab.rates.asynchronous.speed_weighted_minimizer`), not ``x*``.
* ``async_straggler_wallclock`` (shape): asynchronous vs synchronous SGD with a straggler,
  real-time mode on the worker pool: wall-clock to a target error against the prediction from
  the speeds.

The asynchronous runs use :mod:`verify.asynchronous` (the virtual clock gives the same trace and
trajectory on both executors, tested in tests/test_async_distributed.py, so the stationary and
fixed-point claims run on the simulator, where thousands of replicas are cheap).
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from theorylab.errors import TheorylabWarning
from verify.claims.base import Claim, ClaimContext, ClaimResult, register_claim
from verify.claims.common import (
    ALPHA,
    QUADRATIC,
    checkpoints,
    claim_seeds,
    derive_seed,
    homogeneous_quadratic,
    noise_window,
    quadratic_problem,
    run,
    split_level,
    start_point,
    window_average,
)
from verify.claims.stats import RuleOutcome, exact_rule, mean_ci

ISSUE = "Asynchrony (issue 11)"
QUESTION = "How does delay affect the rate, and how to handle delayed gradients?"


def _h_max(problem) -> float:
    return float(np.linalg.eigvalsh(problem.mean_hessian).max())


def _average_matrix(n: int) -> list[np.ndarray]:
    """The exact-average schedule ``11^T/n`` (fixed-delay SGD averages with ``comm.mean``; the
    schedule only sizes the communicator)."""
    return [np.full((n, n), 1.0 / n)]


# ---- (a) fixed delay: exact curve, terms, stability ------------------------------------------
@register_claim
class AsyncFixedDelayExact(Claim):
    """Fixed-delay SGD matches its exact prediction; the stability limit is where it flips."""

    name = "async_fixed_delay_exact"
    kind = "exact"
    issue = ISSUE
    question = QUESTION
    plain = (
        "SGD whose every gradient is tau steps old follows the exact delayed-recursion "
        "prediction, and diverges just above the predicted step-size limit "
        "2 sin(pi/(2(2 tau+1)))/h_max while converging just below it."
    )
    description = (
        "FixedDelaySGD (tau = 3) error curve inside simultaneous 99% bands around "
        "exact_delayed_sgd (distributed); sigma2 = 0 deterministic to 1e-9; the noise term alone "
        "(zeta2 = 0, x0 = x*, stationary average, thousands of replicas, simulated); "
        "deterministic runs at (1 -+ 5%) of the stability limit converge / diverge"
    )
    version = 1
    detectable = {
        "initial condition + heterogeneity (sigma2 = 0)": ("1e-9", "1e-9"),
        "noise (zeta2 = 0, x0 = x*)": ("1.2%", "0.17%"),
        "whole curve (distributed, R = 1024 / 4096)": ("3.3%", "1.7%"),
        "stability limit": ("5% of gamma_max", "5% of gamma_max"),
    }

    def config(self, budget: str) -> dict[str, Any]:
        quick = budget == "quick"
        return {
            **QUADRATIC,
            "tau": 3,
            "gamma_frac": 0.5,  # gamma = gamma_frac * gamma_max(tau)
            "steps": 60 if quick else 300,
            "checkpoints": 13 if quick else 31,
            "replicas": 1024 if quick else 4096,
            "x0_scale": 1.0,
            "noise_replicas": 2048 if quick else 32768,
            "noise_burn_in": 150,
            "noise_window": 400 if quick else 1200,
            "noise_stride": 4,
            "stability_margin": 0.05,
            "stability_steps": 800,
            "stability_factor": 1e3,
            "deterministic_rtol": 1e-9,
        }

    def run(self, ctx: ClaimContext) -> ClaimResult:
        from theorylab.exact.delay import delayed_sgd_stability_limit, exact_delayed_sgd
        from verify.algorithms.async_sgd import FixedDelaySGD

        cfg = self.full_config(ctx)
        n, seeds = cfg["world_size"], claim_seeds(ctx)
        tau = cfg["tau"]
        problem = quadratic_problem(cfg, n, seeds["problem"])
        g_max = delayed_sgd_stability_limit(_h_max(problem), tau)
        gamma = cfg["gamma_frac"] * g_max
        x0 = start_point(problem, seeds["x0"], cfg["x0_scale"])
        xbar0 = x0.mean(axis=0)
        x0 = np.tile(xbar0, (n, 1))  # the iterates stay equal (exact averaging): one start
        W = _average_matrix(n)
        record = checkpoints(cfg["steps"], cfg["checkpoints"])
        level = split_level(2)  # two statistical checks: the curve and the noise term
        checks: dict[str, RuleOutcome] = {}
        series: dict[str, Any] = {}
        # 1. the whole curve on the distributed executor
        ctx.progress(f"fixed-delay SGD, tau = {tau} (distributed)")
        traj = run(
            ctx, FixedDelaySGD(gamma, tau), problem, W, x0, cfg["steps"], seed=seeds["noise"],
            record=record, replicas=cfg["replicas"],
        )  # fmt: skip
        pred = exact_delayed_sgd(problem, gamma, tau, cfg["steps"], xbar0, record=record)
        out = exact_rule(pred.error, traj.error.T, level=level, rtol=1e-9)
        checks["curve"] = out
        series["curve"] = {
            "x": record,
            "error_mean": out.curves["mean"],
            "error_lo": out.curves["lo"],
            "error_hi": out.curves["hi"],
            "error_exact": out.curves["predicted"],
        }
        # 2. deterministic terms alone (sigma2 = 0), to round-off
        det = quadratic_problem(cfg, n, seeds["problem"], sigma2=0.0)
        dtraj = run(
            ctx, FixedDelaySGD(gamma, tau), det, W, x0, cfg["steps"], seed=seeds["noise"],
            replicas=1, executor="simulated",
        )  # fmt: skip
        dpred = exact_delayed_sgd(det, gamma, tau, cfg["steps"], xbar0)
        # to 1e-9 relative, or 1e-16 of the initial error once the curve has decayed to the
        # float64 round-off of x itself (the full budget's 300 steps reach ~1e-20)
        checks["sigma2=0"] = exact_rule(
            dpred.error, dtraj.error.T, rtol=cfg["deterministic_rtol"],
            atol=1e-16 * float(dpred.error[0]),
        )  # fmt: skip
        # 3. the noise term alone: zeta2 = 0, x0 = x*, stationary window average
        ctx.progress(f"fixed-delay SGD, noise term ({cfg['noise_replicas']} replicas)")
        quiet = quadratic_problem(cfg, n, seeds["problem"], zeta2=0.0)
        steps = cfg["noise_burn_in"] + cfg["noise_window"]
        window = noise_window(cfg["noise_burn_in"], cfg["noise_window"], cfg["noise_stride"])
        xs = np.tile(quiet.x_star, (n, 1))
        ntraj = run(
            ctx, FixedDelaySGD(gamma, tau), quiet, W, xs, steps,
            seed=derive_seed(seeds["noise"], 1), record=window,
            replicas=cfg["noise_replicas"], executor="simulated",
        )  # fmt: skip
        npred = exact_delayed_sgd(quiet, gamma, tau, steps, quiet.x_star, record=window)
        nout = exact_rule(
            [float(np.mean(npred.error))], window_average(ntraj.error)[:, None], level=level,
            rtol=1e-9,
        )  # fmt: skip
        checks["noise term"] = nout
        series["noise term"] = {
            "x": window,
            "error_mean": ntraj.error.mean(axis=1).tolist(),
            "error_exact": np.asarray(npred.error).tolist(),
            "window_mean": nout.curves["mean"][0],
            "window_lo": nout.curves["lo"][0],
            "window_hi": nout.curves["hi"][0],
            "window_exact": nout.curves["predicted"][0],
        }
        # 4. stability: deterministic runs just below / above the predicted limit
        panel: dict[str, Any] = {
            "x": list(range(cfg["stability_steps"] + 1)),
            "measured": {},
            "exact": {},
        }
        for side, sign in (("below", -1.0), ("above", 1.0)):
            g = g_max * (1.0 + sign * cfg["stability_margin"])
            st = run(
                ctx, FixedDelaySGD(g, tau), det, W, x0, cfg["stability_steps"],
                seed=seeds["noise"], replicas=1, executor="simulated",
            )  # fmt: skip
            e = st.error[:, 0]
            growth = float(e[-1] / e[0])
            f = cfg["stability_factor"]
            ok = growth <= 1.0 / f if side == "below" else growth >= f
            checks[f"stability: {side}"] = RuleOutcome(
                passed=bool(ok and np.all(np.isfinite(e[:-1]) | (side == "above"))),
                predicted=1.0 / f if side == "below" else f,
                measured=growth,
                interval=(growth, growth),
                detail=(
                    f"gamma = {1 + sign * cfg['stability_margin']:.2f} x gamma_max(tau={tau}) = "
                    f"{g:.4g} (gamma_max = 2 sin(pi/(2(2tau+1)))/h_max = {g_max:.4g}): "
                    f"||x_K - x*||^2 / ||x_0 - x*||^2 = {growth:.3g} after K = "
                    f"{cfg['stability_steps']} steps; predicted "
                    + ("converges (<= 1e-3)" if side == "below" else "diverges (>= 1e3)")
                ),
            )
            label = f"{side} (gamma = {g:.3g})"
            panel["measured"][label] = np.maximum(e, 1e-300).tolist()
            with warnings.catch_warnings():  # above the limit the steady state is inf: expected
                warnings.simplefilter("ignore", TheorylabWarning)
                ex = exact_delayed_sgd(det, g, tau, cfg["stability_steps"], xbar0).error
            panel["exact"][label] = np.maximum(np.asarray(ex, dtype=float), 1e-300).tolist()
        panel["limit"] = g_max
        series["stability"] = panel
        series["caption"] = (
            f"n={n}, d={cfg['d']}, tau={tau}, gamma={gamma:.3g} (= {cfg['gamma_frac']} "
            f"gamma_max), R={cfg['replicas']} (curve) / {cfg['noise_replicas']} (noise term)"
        )
        return self.make_result(
            checks, headline="curve", series=series, seeds=list(seeds.values()),
            bytes_sent=traj.bytes_sent,
            note=f"each statistical check at level {level:.4f} (claim family-wise "
            f"{1 - ALPHA:.0%})",
        )  # fmt: skip


# ---- (b) random delays: tau_avg, not tau_max ---------------------------------------------------
def _stationary(ctx, problem, gamma, speeds, model, K, burn, stride, R, seed):
    """Per-replica time average of ||x - x*||^2 over the stationary window, and the trace."""
    from verify.asynchronous import run_async_simulated

    record = list(range(burn, K + 1, stride))
    r = run_async_simulated(
        ctx.oracle(problem), problem.x_star, K, gamma, seed, speeds=speeds, model=model,
        record=record, replicas=R,
    )  # fmt: skip
    return window_average(r.error), r.stats(skip=burn), r


def _fixed_delay_floor(one, gamma, tau: float, K: int, burn: int, stride: int) -> float:
    """Stationary error of fixed-delay SGD at a (fractional) delay: linear interpolation of the
    exact window averages at floor(tau) and ceil(tau); ``inf`` when unstable."""
    from theorylab.exact.delay import delayed_sgd_stability_limit, exact_delayed_sgd

    lo = int(math.floor(tau))
    vals = []
    for t in (lo, lo + 1):
        if gamma >= delayed_sgd_stability_limit(_h_max(one), t):
            vals.append(math.inf)
            continue
        pr = exact_delayed_sgd(
            one, gamma, t, K, one.x_star, record=list(range(burn, K + 1, stride))
        )
        vals.append(float(np.mean(pr.error)))
    if any(math.isinf(v) for v in vals):
        return math.inf if tau > lo or math.isinf(vals[0]) else vals[0]
    return vals[0] + (tau - lo) * (vals[1] - vals[0])


@register_claim
class AsyncDelayDependence(Claim):
    """The delay term of asynchronous SGD's stationary error follows tau_avg, not tau_max."""

    name = "async_delay_dependence"
    ranks = False  # simulator only: may run in the main job's second lane
    kind = "shape"
    issue = ISSUE
    question = QUESTION
    plain = (
        "Asynchronous SGD's error grows with the average delay: equal speeds (tau = n - 1) match "
        "the exact fixed-delay prediction, and a straggler or random compute times (tau_max "
        "10-50x tau_avg) change the delay term as the tau_avg rate says (barely), not as the "
        "tau_max rate says."
    )
    description = (
        "Parameter server, virtual clock, zeta2 = 0, x0 = x*, noise-only stationary error "
        "(simulated, thousands of replicas): equal speeds vs exact fixed-delay at tau = n - 1; "
        "delay term D = floor - floor(tau = 0) of exponential and straggler speeds over D of "
        "equal speeds: inside [1/2, 2] x the tau_avg-rate ratio (tau_avg + 1)/(tau_avg_ref + 1), "
        "outside the same band around the tau_max-rate ratio (tau_max + 1)/(tau_max_ref + 1)"
    )
    version = 1
    detectable = {
        "stationary error, equal speeds (vs exact fixed delay)": ("1.4%", "0.4%"),
        "its delay term alone (12% of it at gamma = 0.06)": ("12%", "3%"),
        "tau_avg vs tau_max rate (ratio band)": ("factor 2", "factor 2"),
    }

    def config(self, budget: str) -> dict[str, Any]:
        quick = budget == "quick"
        return {
            "n": 4,
            "d": 4,
            "mu": 0.5,
            "sigma2": 1.0,
            "gamma": 0.06,
            "updates": 1000 if quick else 3000,
            "burn_in": 300,
            "stride": 5,
            "replicas": 2000 if quick else 8000,
            "straggler_slowdown": 50.0,
            "band": 2.0,
        }

    def run(self, ctx: ClaimContext) -> ClaimResult:
        from theorylab.problems import QuadraticProblem
        from verify.asynchronous import straggler_speeds

        cfg = self.full_config(ctx)
        seeds = claim_seeds(ctx)
        n, K, burn, stride = cfg["n"], cfg["updates"], cfg["burn_in"], cfg["stride"]
        gamma, R = cfg["gamma"], cfg["replicas"]
        problem = homogeneous_quadratic(
            n, cfg["d"], seeds["problem"], sigma2=cfg["sigma2"], mu=cfg["mu"]
        )
        # every update carries one worker's gradient (noise sigma2): the fixed-delay prediction
        # is that of a one-node problem with the same Hessian
        one = QuadraticProblem(problem.A[:1], problem.b[:1], sigma2=problem.sigma2)
        floor0 = _fixed_delay_floor(one, gamma, 0.0, K, burn, stride)
        setups = {
            "equal speeds": (np.ones(n), "fixed"),
            "exponential times": (np.ones(n), "exponential"),
            f"straggler x{cfg['straggler_slowdown']:g}": (
                straggler_speeds(n, cfg["straggler_slowdown"]), "fixed"),
        }  # fmt: skip
        level = split_level(1 + 2 * (len(setups) - 1))
        checks: dict[str, RuleOutcome] = {}
        measured: dict[str, Any] = {}
        for j, (name, (speeds, model)) in enumerate(setups.items()):
            ctx.progress(f"asynchronous SGD, {name} ({R} replicas)")
            samples, st, _ = _stationary(
                ctx, problem, gamma, speeds, model, K, burn, stride, R,
                derive_seed(seeds["noise"], j),
            )  # fmt: skip
            measured[name] = (samples, st)
        ref_samples, ref = measured["equal speeds"]
        pred_ref = _fixed_delay_floor(one, gamma, ref.tau_avg, K, burn, stride)
        checks["equal speeds vs exact"] = exact_rule(
            [pred_ref], ref_samples[:, None], level=level, rtol=1e-9
        )
        d_ref = ref_samples.mean() - floor0
        panel = {"x": [], "measured": [], "lo": [], "hi": [], "tau_avg rate": [],
                 "tau_max rate": [], "labels": []}  # fmt: skip
        for name, (samples, st) in measured.items():
            if name == "equal speeds":
                continue
            # ratio of delay terms: delta method on two independent means
            ci = mean_ci(samples, level)
            cr = mean_ci(ref_samples, level)
            ratio = (ci.mean[0] - floor0) / d_ref
            lo = (ci.lo[0] - floor0) / (cr.hi[0] - floor0)
            hi = (ci.hi[0] - floor0) / max(cr.lo[0] - floor0, 1e-300)
            p_avg = (st.tau_avg + 1.0) / (ref.tau_avg + 1.0)
            p_max = (st.tau_max + 1.0) / (ref.tau_max + 1.0)
            band = cfg["band"]
            inside_avg = lo > 0 and lo >= p_avg / band and hi <= p_avg * band
            outside_max = hi < p_max / band or lo > p_max * band
            checks[f"{name}: tau_avg, not tau_max"] = RuleOutcome(
                passed=bool(inside_avg and outside_max),
                predicted=p_avg,
                measured=float(ratio),
                interval=(float(lo), float(hi)),
                detail=(
                    f"delay term D = floor - floor(tau=0) over D(equal speeds) = {ratio:.3g} "
                    f"[{lo:.3g}, {hi:.3g}] ({100 * level:.4g}% CI); tau_avg = {st.tau_avg:.3g} "
                    f"vs {ref.tau_avg:.3g}, tau_max = {st.tau_max} vs {ref.tau_max}: the "
                    f"tau_avg rate predicts {p_avg:.3g} (band x/{band:g}: "
                    f"{'inside' if inside_avg else 'NOT inside'}), the tau_max rate "
                    f"{p_max:.3g} ({'excluded' if outside_max else 'NOT excluded'})"
                ),
            )
            panel["x"].append(float(st.tau_max))
            panel["measured"].append(float(ratio))
            panel["lo"].append(float(max(lo, 1e-300)))
            panel["hi"].append(float(hi))
            panel["tau_avg rate"].append(p_avg)
            panel["tau_max rate"].append(p_max)
            panel["labels"].append(name)
        series = {
            "delay term ratio": panel,
            "equal speeds": {
                "x": [ref.tau_avg],
                "measured": [float(ref_samples.mean())],
                "exact": [pred_ref],
                "floor(tau=0)": [floor0],
            },
            "caption": (
                f"n={n} workers, d={cfg['d']}, gamma={gamma}, sigma2={cfg['sigma2']}, "
                f"R={R}, {K} updates (window after {burn})"
            ),
        }
        return self.make_result(
            checks, headline=list(checks)[-1], series=series, seeds=list(seeds.values()),
            note=f"each statistical check at level {level:.4f}",
        )  # fmt: skip


# ---- (c) heterogeneous speeds and data: the speed-weighted fixed point -------------------------
@register_claim
class AsyncSpeedWeightedFixedPoint(Claim):
    """The server drifts to argmin sum_i p_i f_i with p_i the shares of applied gradients."""

    name = "async_speed_weighted_fixed_point"
    ranks = False  # simulator only: may run in the main job's second lane
    kind = "exact"
    issue = ISSUE
    question = "How does data heterogeneity interact with asynchrony?"
    plain = (
        "With heterogeneous data and unequal worker speeds, asynchronous SGD converges to the "
        "minimiser of the speed-weighted objective sum_i p_i f_i (p_i = speed share), not to x*."
    )
    description = (
        "Parameter server, virtual clock, fixed speeds (1, 1, 2, 4), sigma2 = 0 (deterministic), "
        "zeta2 = 1: the last iterate at gamma and gamma/2, Richardson-extrapolated (O(gamma^2) "
        "left), within 5% of ||x_p - x*|| of the predicted x_p = speed_weighted_minimizer, and "
        "at least 50% of it away from x*"
    )
    version = 1
    detectable = {"fixed point (deterministic)": ("5% of ||x_p - x*||", "2% of ||x_p - x*||")}

    def config(self, budget: str) -> dict[str, Any]:
        quick = budget == "quick"
        return {
            **QUADRATIC,
            "sigma2": 0.0,
            "speeds": [1.0, 1.0, 2.0, 4.0],
            "gamma": 0.05 if quick else 0.025,
            "horizon": 60.0,  # updates = horizon / gamma
            "tolerance": 0.01 if quick else 0.005,
        }

    def run(self, ctx: ClaimContext) -> ClaimResult:
        from theorylab.rates.asynchronous import asynchrony_bias, speed_weighted_minimizer
        from verify.asynchronous import run_async_simulated

        cfg = self.full_config(ctx)
        seeds = claim_seeds(ctx)
        speeds = np.asarray(cfg["speeds"], dtype=float)
        n = speeds.size
        problem = quadratic_problem(cfg, n, seeds["problem"])
        x_p = speed_weighted_minimizer(problem, speeds=speeds)
        scale = float(np.linalg.norm(x_p - problem.x_star))
        finals, shares = [], []
        for g in (cfg["gamma"], cfg["gamma"] / 2):
            K = int(round(cfg["horizon"] / g))
            ctx.progress(f"asynchronous SGD, speeds {cfg['speeds']}, gamma = {g} ({K} updates)")
            r = run_async_simulated(
                ctx.oracle(problem), problem.x_star, K, g, seeds["noise"], speeds=speeds,
                record=[K],
            )  # fmt: skip
            finals.append(r.x[0])
            shares.append(np.bincount(r.worker[K // 2 :], minlength=n) / (K - K // 2))
        x_rich = 2 * finals[1] - finals[0]
        dist_p = float(np.linalg.norm(x_rich - x_p)) / scale
        dist_star = float(np.linalg.norm(x_rich - problem.x_star)) / scale
        tol = cfg["tolerance"]
        checks = {
            "fixed point": RuleOutcome(
                passed=bool(dist_p <= tol and dist_star >= 0.5),
                predicted=0.0,
                measured=dist_p,
                interval=(dist_p, dist_p),
                detail=(
                    f"||x_R - x_p|| / ||x_p - x*|| = {dist_p:.3g} (tolerance {tol}); "
                    f"||x_R - x*|| / ||x_p - x*|| = {dist_star:.3g} (must be >= 0.5); x_R = "
                    f"Richardson extrapolation of the last iterates at gamma = {cfg['gamma']} and "
                    f"{cfg['gamma'] / 2}; measured shares {np.round(shares[1], 4).tolist()} vs "
                    f"speeds/sum {np.round(speeds / speeds.sum(), 4).tolist()}; bias term "
                    f"f(x_p) - f* = {asynchrony_bias(problem, speeds=speeds).total:.3g}"
                ),
            )
        }
        series = {
            "fixed point": {
                "x": list(range(problem.d)),
                "measured (gamma)": finals[0].tolist(),
                "measured (gamma/2)": finals[1].tolist(),
                "extrapolated": x_rich.tolist(),
                "predicted x_p": x_p.tolist(),
                "x*": problem.x_star.tolist(),
            },
            "caption": (
                f"n={n}, d={problem.d}, speeds={cfg['speeds']}, gamma={cfg['gamma']} and "
                f"{cfg['gamma'] / 2}, sigma2=0 (R=1, deterministic)"
            ),
        }
        return self.make_result(checks, series=series, seeds=list(seeds.values()))


# ---- (d) async vs sync with a straggler: wall-clock --------------------------------------------
@register_claim
class AsyncStragglerWallclock(Claim):
    """Wall-clock to a target error, async vs sync, real time, against the speeds' prediction."""

    name = "async_straggler_wallclock"
    wall_clock = True  # real-time mode: load-dependent
    kind = "shape"
    issue = ISSUE
    question = "How does delay affect the rate, and how to handle delayed gradients?"
    plain = (
        "With one straggler, asynchronous SGD reaches a target error sooner in wall-clock time "
        "than synchronous minibatch SGD, by the factor the worker speeds predict."
    )
    description = (
        "Real-time parameter server on the worker pool (n = world - 1 workers, one straggler "
        "sleeping slowdown x longer; sigma2 = zeta2 = 0): wall-clock to the target error of "
        "sync and async each within [1/2, 2] x the prediction (updates to target from "
        "the exact curves x time per update from the speeds), and the measured speed-up too"
    )
    version = 1
    detectable = {"wall-clock (sync, async, speed-up)": ("factor 2", "factor 2")}

    def config(self, budget: str) -> dict[str, Any]:
        return {
            "d": 4,
            "mu": 0.5,
            "gamma": 0.3,
            "slowdown": 4.0,
            "time_scale": 0.05,  # seconds per virtual second (a fast gradient)
            "target": 1e-2,  # relative to the initial error
            "band": 2.0,  # real time on a shared 2-core machine: wake-up latency under load
        }

    def run(self, ctx: ClaimContext) -> ClaimResult:
        from theorylab.exact import exact_psgd
        from theorylab.exact.delay import exact_delayed_sgd
        from theorylab.problems import QuadraticProblem
        from theorylab.staleness import predicted_staleness, simulate_speed_model
        from verify.asynchronous import AsyncRun, run_async_distributed

        cfg = self.full_config(ctx)
        seeds = claim_seeds(ctx)
        n = cfg["world_size"] - 1
        speeds = np.ones(n)
        speeds[-1] = 1.0 / cfg["slowdown"]
        problem = homogeneous_quadratic(n, cfg["d"], seeds["problem"], sigma2=0.0, mu=cfg["mu"])
        x0 = problem.x_star + 1.0
        gamma, target = cfg["gamma"], cfg["target"]
        # prediction from the speeds (theorylab only)
        horizon = 400
        sync_curve = np.asarray(exact_psgd(problem, gamma, horizon, x0).error)
        k_sync = int(np.argmax(sync_curve <= target * sync_curve[0]))
        tau_avg = predicted_staleness(speeds, model="fixed", n_updates=400).tau_avg
        one = QuadraticProblem(problem.A[:1], problem.b[:1], sigma2=0.0)
        async_curves = [
            np.asarray(exact_delayed_sgd(one, gamma, t, horizon, x0).error)
            for t in (int(math.floor(tau_avg)), int(math.ceil(tau_avg)))
        ]
        k_async = int(np.mean([np.argmax(c <= target * c[0]) for c in async_curves]))
        ts = cfg["time_scale"]
        K = max(k_sync, k_async) + 3
        # the wire's own cost: the same runs with (almost) no compute, per update / per round
        overhead, res = {}, {}
        for alg in ("sync", "async"):
            out = ctx.run_on_ranks(
                run_async_distributed, ctx.oracle(problem), x0, K, gamma, seeds["noise"],
                speeds=speeds, algorithm=alg, mode="realtime", time_scale=1e-6,
            )  # fmt: skip
            overhead[alg] = float(AsyncRun.from_ranks(out).wall_time[-1]) / K
        # prediction from the speeds: updates to target x time per update (+ the wire's cost)
        pred_sync = k_sync * (cfg["slowdown"] * ts + overhead["sync"])
        arrivals = simulate_speed_model(speeds, max(k_async, 1), model="fixed").time
        pred_async = float(arrivals[k_async - 1]) * ts + k_async * overhead["async"]
        # measurement: real-time runs on the pool
        for alg in ("sync", "async"):
            ctx.progress(f"{alg} SGD with a straggler, real time ({K} updates)")
            out = ctx.run_on_ranks(
                run_async_distributed, ctx.oracle(problem), x0, K, gamma, seeds["noise"],
                speeds=speeds, algorithm=alg, mode="realtime", time_scale=ts,
            )  # fmt: skip
            r = AsyncRun.from_ranks(out)
            e = r.error[:, 0]
            hit = np.flatnonzero(e <= target * e[0])
            steps = np.asarray(r.steps)
            t_hit = (
                float(r.wall_time[steps[hit[0]] - 1])
                if hit.size and steps[hit[0]] > 0
                else math.inf
            )
            res[alg] = (t_hit, r)
        band = cfg["band"]
        checks = {}
        for alg, pred in (("sync", pred_sync), ("async", pred_async)):
            t = res[alg][0]
            ok = pred / band <= t <= pred * band
            checks[f"{alg}: wall-clock to target"] = RuleOutcome(
                passed=bool(ok), predicted=pred, measured=t, interval=(t, t),
                detail=(
                    f"{alg}: {t:.3g} s measured vs {pred:.3g} s predicted (band x/{band}); "
                    + (f"{k_sync} rounds x (straggler time {cfg['slowdown'] * ts:.3g} s + "
                       f"wire {1e3 * overhead['sync']:.2g} ms)"
                       if alg == "sync" else
                       f"{k_async} updates (exact fixed-delay curve at tau_avg = {tau_avg:.3g}) "
                       f"at the arrival times of speeds {np.round(speeds, 3).tolist()} + "
                       f"wire {1e3 * overhead['async']:.2g} ms per update")
                ),
            )  # fmt: skip
        speedup_pred = pred_sync / pred_async
        speedup = res["sync"][0] / res["async"][0]
        ok = speedup_pred / band <= speedup <= speedup_pred * band
        checks["speed-up"] = RuleOutcome(
            passed=bool(ok), predicted=speedup_pred, measured=speedup, interval=(speedup, speedup),
            detail=f"sync/async wall-clock to target {speedup:.3g} vs predicted {speedup_pred:.3g}",
        )  # fmt: skip
        series = {
            "wall-clock": {
                "x": [1, 2],
                "labels": ["sync", "async"],
                "measured": [res["sync"][0], res["async"][0]],
                "predicted": [pred_sync, pred_async],
            },
            "curves": {
                "x": [0.0],
                "sync_t": res["sync"][1].wall_time.tolist(),
                "sync_e": res["sync"][1].error[1:, 0].tolist(),
                "async_t": res["async"][1].wall_time.tolist(),
                "async_e": res["async"][1].error[1:, 0].tolist(),
                "target": target * float(res["sync"][1].error[0, 0]),
            },
            "caption": (
                f"n={n} workers (one {cfg['slowdown']:g}x slower), d={cfg['d']}, gamma={gamma}, "
                f"R=1 (sigma2=0), {ts} s per fast gradient, real time"
            ),
        }
        sent = res["sync"][1].bytes_sent + res["async"][1].bytes_sent
        return self.make_result(
            checks, headline="speed-up", series=series, seeds=list(seeds.values()),
            bytes_sent=sent,
        )  # fmt: skip
