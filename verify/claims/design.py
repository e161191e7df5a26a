"""Claims of the weight-design issue: optimal weights and the one-peer exponential graph, measured.

- ``optimal_weights_speedup`` (exact): on a path of ``n = world_size`` nodes, gossip and DSGD with
  the FDLA-optimal weights (:func:`theorylab.design.optimal_weights`, ``rho = cos(pi/n)``) beat
  Metropolis weights (``rho = 1/3 + 2/3 cos(pi/n)``) by the factor the exact predictions of
  :mod:`theorylab.exact` give: (1) both gossip curves equal ``exact_gossip`` (deterministic,
  float64 round-off) and the measured ratio of rounds to shrink the consensus distance by
  ``eps`` equals the predicted one exactly; (2) both DSGD error and consensus curves lie in their
  confidence intervals around ``exact_dsgd``, and the measured ratio of the final mean consensus
  distances (Metropolis / optimal) has a Fieller confidence interval (from the paired
  replicas of the two runs) that contains the exact ratio.
  All runs on the distributed executor.
- ``one_peer_exact_average`` (exact): gossip on the one-peer exponential schedule (Ying et al.
  2021) reaches the exact average after ``log2 n`` rounds for n a power of 2 (consensus distance
  at round ``log2 n`` at float64 round-off, ``<= 1e-24 Xi_0``) and not one round earlier
  (``>= 1e-3 Xi_0``). Distributed at ``n = world_size`` when it is a power of 2, plus the
  simulator (certified by ``executors_agree``) at larger powers of 2.

Conventions: ``rho = ||W - 11^T/n||_2`` (spectral gap ``1 - rho``); row ``i`` of ``W`` holds node
``i``'s receive weights; consensus distance ``Xi_k = (1/n) ||X_k - 1 xbar^T||_F^2``. Each claim's
family-wise false-failure probability (if the theory is right) is at most 1%.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from verify.claims.base import Claim, ClaimContext, ClaimResult, register_claim
from verify.claims.common import (
    ALPHA,
    QUADRATIC,
    checkpoints,
    claim_seeds,
    derive_seed,
    quadratic_problem,
    run,
    schedule,
    split_level,
    start_point,
)
from verify.claims.stats import RuleOutcome, exact_rule

__all__ = ["OptimalWeightsSpeedup", "OnePeerExactAverage"]

ISSUE = "Optimal mixing weights (cvxpy SDP) and topology design"


def _path_weights(n: int) -> dict[str, np.ndarray]:
    """Metropolis and FDLA-optimal W on the path of ``n`` nodes (n = 2: the single edge)."""
    from theorylab import topology
    from theorylab.design import optimal_weights

    return {
        "metropolis": schedule("path", n)[0],
        "optimal": np.asarray(optimal_weights(topology.path(n)).W, dtype=float),
    }


def _rounds_to(curve: np.ndarray, eps2: float) -> int | None:
    """First round k with ``curve[k] <= eps2 curve[0]`` (None if never)."""
    hit = np.flatnonzero(np.asarray(curve) <= eps2 * curve[0])
    return int(hit[0]) if hit.size else None


def _ratio_check(a: np.ndarray, b: np.ndarray, r_pred: float, level: float) -> RuleOutcome:
    """Measured ratio ``mean(a) / mean(b)`` of paired replicas vs the exact ratio ``r_pred``.

    ``a_r, b_r`` are replica ``r`` of the two runs (same noise seeds, so paired and correlated;
    the pairs are i.i.d. over ``r``). Fieller's interval: the ratios ``r`` whose paired
    differences ``a_r - r b_r`` pass a two-sided Student-t test of mean zero at ``level``, i.e.
    ``(abar - r bbar)^2 <= t^2 (S_aa - 2 r S_ab + r^2 S_bb) / R`` (``S`` the sample covariances,
    ``t = t_{(1+level)/2, R-1}``). The check passes iff ``r_pred > 1`` lies in it, i.e. iff the
    t-test on ``a_r - r_pred b_r`` accepts: no linearisation of the ratio (unlike the delta
    method), so the false-failure probability is ``1 - level`` up to the t-approximation of one
    mean of ``R`` i.i.d. differences (central limit theorem).
    """
    from scipy import stats as _sps  # lazy: ranks importing the claims skip scipy.stats

    a, b = np.asarray(a, float), np.asarray(b, float)
    R = a.shape[0]
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        bad = int(np.sum(~(np.isfinite(a) & np.isfinite(b))))
        return RuleOutcome(
            passed=False, predicted=r_pred, measured=math.nan, interval=(math.nan, math.nan),
            detail=f"measured curve diverged at the last checkpoint ({bad}/{R} replicas NaN/inf)",
        )  # fmt: skip
    t2 = float(_sps.t.ppf(1 - (1 - level) / 2, R - 1)) ** 2
    S = np.cov(a, b, ddof=1)
    abar, bbar = float(a.mean()), float(b.mean())
    r_meas = abar / bbar
    diff = a - r_pred * b
    z = abs(float(diff.mean())) / max(math.sqrt(t2 * float(diff.var(ddof=1)) / R), 1e-300)
    # Fieller: A r^2 + B r + C <= 0
    A = bbar**2 - t2 * S[1, 1] / R
    B = -2 * (abar * bbar - t2 * S[0, 1] / R)
    C = abar**2 - t2 * S[0, 0] / R
    disc = B * B - 4 * A * C
    if A > 0 and disc >= 0:
        lo, hi = sorted(((-B - math.sqrt(disc)) / (2 * A), (-B + math.sqrt(disc)) / (2 * A)))
    else:  # the mean of b is not significantly nonzero: the interval is unbounded
        lo, hi = -math.inf, math.inf
    return RuleOutcome(
        passed=bool(z <= 1 and r_pred > 1), predicted=r_pred, measured=r_meas,
        interval=(lo, hi),
        detail=(f"final consensus Metropolis/optimal: exact {r_pred:.4f}, measured "
                f"{r_meas:.4f} in [{lo:.4f}, {hi:.4f}] ({level:.2%} Fieller interval from the "
                f"paired replicas, R={R}); |mean(a - r b)| / t-half-width = {z:.2f}"),
    )  # fmt: skip


@register_claim
class OptimalWeightsSpeedup(Claim):
    """Optimal (FDLA) weights beat Metropolis by the exactly predicted factor, measured."""

    name = "optimal_weights_speedup"
    kind = "exact"
    issue = ISSUE
    description = (
        "gossip and DSGD on a path with FDLA-optimal weights beat Metropolis by the factor of "
        "exact_gossip / exact_dsgd (distributed): curves exact, rounds ratio exact, exact DSGD "
        "consensus ratio inside the measured ratio's Fieller interval"
    )
    #: 2: seeds derived with SeedSequence; 3: the DSGD consensus ratio is measured (Fieller
    #: interval of the paired replicas' ratio of means), not implied by the two curve CIs;
    #: 4: max-|t| bands
    version = 4
    question = "What do optimal weights buy on a given graph?"
    plain = (
        "On a path, the FDLA-optimal weights make gossip and DSGD converge faster than "
        "Metropolis weights by exactly the factor the exact predictions give."
    )
    detectable = {
        "gossip curves and rounds (deterministic)": ("1e-8", "1e-8"),
        "DSGD curves (R = 128)": ("2.4%", "0.9% (scaled)"),
    }

    def config(self, budget: str) -> dict[str, Any]:
        quick = budget == "quick"
        return {
            **QUADRATIC,
            "gamma": 0.1, "form": "atc",
            "eps": 1e-6,  # gossip: rounds until sqrt(Xi_k / Xi_0) <= eps
            "dsgd_steps": 60 if quick else 200,
            "checkpoints": 13 if quick else 31,
            "replicas": 128 if quick else 1000,
            "x0_scale": 1.0,
            "rtol": 1e-8,  # float64 round-off allowance of the deterministic gossip runs
        }  # fmt: skip

    def run(self, ctx: ClaimContext) -> ClaimResult:
        from theorylab.exact import exact_dsgd, exact_gossip
        from theorylab.spectral import rho as spectral_rho
        from verify.algorithms.dsgd import DSGD
        from verify.algorithms.gossip import Gossip

        cfg = self.full_config(ctx)
        n, seeds = cfg["world_size"], claim_seeds(ctx)
        Ws = _path_weights(n)
        rhos = {k: float(spectral_rho(W)) for k, W in Ws.items()}
        checks: dict[str, RuleOutcome] = {}
        series: dict[str, Any] = {}
        sent = 0
        # ---- (1) gossip: exact curves and the exact rounds ratio
        x0 = np.random.default_rng(seeds["x0"]).standard_normal((n, cfg["d"]))
        eps2 = cfg["eps"] ** 2
        rounds_bound = math.ceil(math.log(eps2) / (2 * math.log(max(rhos["metropolis"], 1e-3))))
        steps = rounds_bound + 5
        rounds: dict[str, tuple[int | None, int | None]] = {}
        panel: dict[str, Any] = {"x": list(range(steps + 1))}
        for key, W in Ws.items():
            ctx.progress(f"gossip with {key} weights")
            traj = run(ctx, Gossip(), None, [W], x0, steps, seed=seeds["noise"], replicas=1)
            sent += traj.bytes_sent
            measured = traj.consensus[:, 0]
            pred = exact_gossip([W], x0, steps).consensus
            checks[f"gossip {key}: curve"] = exact_rule(
                pred, measured[None, :], rtol=cfg["rtol"], atol=1e-20 * float(pred[0])
            )
            rounds[key] = (_rounds_to(pred, eps2), _rounds_to(measured, eps2))
            panel[f"{key} measured"] = measured.tolist()
            panel[f"{key} exact"] = pred.tolist()
        (pm, mm), (po, mo) = rounds["metropolis"], rounds["optimal"]
        if None in (pm, mm, po, mo):
            ok, f_pred, f_meas = False, math.nan, math.nan
        else:
            f_pred, f_meas = pm / po, mm / mo
            ok = (pm, po) == (mm, mo) and f_pred > 1
        checks["gossip: rounds ratio"] = RuleOutcome(
            passed=ok, predicted=f_pred, measured=f_meas, interval=(f_meas, f_meas),
            detail=(f"rounds to eps={cfg['eps']:g}: Metropolis {mm} (exact {pm}), optimal {mo} "
                    f"(exact {po}); rho {rhos['metropolis']:.4f} vs {rhos['optimal']:.4f}"),
        )  # fmt: skip
        series["gossip"] = panel
        # ---- (2) DSGD: exact curves in CIs, consensus ratio inside its interval
        problem = quadratic_problem(cfg, n, seeds["problem"])
        xd = start_point(problem, seeds["x0"], cfg["x0_scale"])
        record = checkpoints(cfg["dsgd_steps"], cfg["checkpoints"])
        level = split_level(5)  # 4 curves and the ratio (the gossip checks are deterministic)
        outs: dict[str, RuleOutcome] = {}
        final: dict[str, np.ndarray] = {}
        dpanel: dict[str, Any] = {"x": record}
        for key, W in Ws.items():
            ctx.progress(f"DSGD with {key} weights")
            traj = run(
                ctx, DSGD(cfg["gamma"], cfg["form"]), problem, [W], xd, cfg["dsgd_steps"],
                seed=seeds["noise"], record=record, replicas=cfg["replicas"],
            )  # fmt: skip
            sent += traj.bytes_sent
            pred = exact_dsgd(problem, [W], cfg["gamma"], cfg["dsgd_steps"], xd, cfg["form"],
                              record)  # fmt: skip
            for metric in ("error", "consensus"):
                out = exact_rule(getattr(pred, metric), getattr(traj, metric).T, level=level,
                                 rtol=1e-9)  # fmt: skip
                checks[f"DSGD {key}: {metric}"] = out
                dpanel[f"{key} {metric} mean"] = out.curves["mean"]
                dpanel[f"{key} {metric} lo"] = out.curves["lo"]
                dpanel[f"{key} {metric} hi"] = out.curves["hi"]
                dpanel[f"{key} {metric} exact"] = out.curves["predicted"]
            outs[key] = checks[f"DSGD {key}: consensus"]
            final[key] = traj.consensus[-1]  # per-replica Xi at the last step, shape (R,)
        r_pred = (
            outs["metropolis"].curves["predicted"][-1] / outs["optimal"].curves["predicted"][-1]
        )
        checks["DSGD: consensus ratio"] = _ratio_check(
            final["metropolis"], final["optimal"], r_pred, level
        )
        series["dsgd"] = dpanel
        series["caption"] = (
            f"path, n={n}, d={cfg['d']}; gossip R=1 (deterministic); DSGD gamma={cfg['gamma']}, "
            f"R={cfg['replicas']}, {cfg['form'].upper()}; rho {rhos['metropolis']:.3g} "
            f"(Metropolis) vs {rhos['optimal']:.3g} (optimal)"
        )
        return self.make_result(
            checks, headline="gossip: rounds ratio", series=series, seeds=list(seeds.values()),
            bytes_sent=sent,
            note=f"DSGD checks at level {level:.4f} each (family-wise {1 - ALPHA:.0%})",
        )  # fmt: skip


def _powers_of_two(world_size: int, budget: str) -> list[int]:
    top = 64 if budget == "quick" else 1024
    return [m for m in (8, 16, 32, 64, 128, 256, 512, 1024) if m <= top and m != world_size]


@register_claim
class OnePeerExactAverage(Claim):
    """One-peer exponential gossip is exact after log2 n rounds (n a power of 2), measured."""

    name = "one_peer_exact_average"
    kind = "exact"
    issue = ISSUE
    description = (
        "one-peer exponential gossip reaches the exact average in log2 n rounds for n a power "
        "of 2, not earlier (distributed at n = world_size when a power of 2; simulated beyond)"
    )
    #: 2: seeds derived with SeedSequence; 3: "not before" checked against exact_gossip
    #: (the 1e-3 threshold sat above ~1/(n-1) at n = 1024)
    version = 3
    question = "Which topology averages fastest for its cost?"
    plain = (
        "On the one-peer exponential graph (one message per node per round) gossip averages "
        "exactly in log2 n rounds, and not one round earlier."
    )
    detectable = {"exact averaging round": ("deterministic", "deterministic")}

    def config(self, budget: str) -> dict[str, Any]:
        return {
            "d": 3,
            # exact: Xi at round log2 n at float64 round-off
            "exact_tol": 1e-24,
            # not before: at round log2 n - 1 the nodes hold two group means, so
            # Xi/Xi_0 ~ 1/(n - 1) (1e-3 at n = 1024); it must equal exact_gossip's value (rtol)
            # and stay far above round-off (>= not_before, 1e-12: for Gaussian x0 the chance of
            # Xi/Xi_0 < 1e-12 at n <= 1024 is below 1e-12)
            "not_before": 1e-12,
            "rtol": 1e-8,
            "extra_rounds": 3,
        }

    def run(self, ctx: ClaimContext) -> ClaimResult:
        from theorylab.exact import exact_gossip
        from theorylab.topology import one_peer_exponential
        from verify.algorithms.gossip import Gossip

        cfg = self.full_config(ctx)
        n0, seeds = cfg["world_size"], claim_seeds(ctx)
        sizes = []
        if n0 >= 2 and n0 & (n0 - 1) == 0:
            sizes.append((n0, "distributed"))
        sizes += [(m, "simulated") for m in _powers_of_two(n0, cfg["budget"])]
        checks: dict[str, RuleOutcome] = {}
        series: dict[str, Any] = {}
        sent = 0
        for n, where in sizes:
            tau = n.bit_length() - 1
            sched = [np.asarray(W, float) for W in one_peer_exponential(n, sparse=False).matrices]
            x0 = np.random.default_rng(derive_seed(seeds["x0"], n)).standard_normal((n, cfg["d"]))
            steps = tau + cfg["extra_rounds"]
            ctx.progress(f"one-peer exponential gossip, n={n} ({where})")
            traj = run(
                ctx, Gossip(), None, sched, x0, steps, seed=seeds["noise"], replicas=1,
                executor=where,
            )  # fmt: skip
            sent += traj.bytes_sent
            xi = traj.consensus[:, 0]
            pred = exact_gossip(sched, x0, steps).consensus
            xi0 = float(xi[0])
            first = _rounds_to(xi, cfg["exact_tol"])
            checks[f"n={n} ({where}): exact at log2 n"] = RuleOutcome(
                passed=bool(first == tau), predicted=float(tau),
                measured=float(first if first is not None else math.nan),
                interval=(float(tau), float(tau)),
                detail=(f"first round with Xi_k <= {cfg['exact_tol']:g} Xi_0: {first} (log2 n = "
                        f"{tau}); Xi_k/Xi_0 at k = {tau}: {xi[tau] / xi0:.3g}"),
            )  # fmt: skip
            before, exact_before = xi[tau - 1] / xi0, pred[tau - 1] / xi0
            close = abs(before - exact_before) <= cfg["rtol"] * exact_before
            checks[f"n={n} ({where}): not before"] = RuleOutcome(
                passed=bool(close and before >= cfg["not_before"]), predicted=float(exact_before),
                measured=float(before),
                interval=(float(exact_before * (1 - cfg["rtol"])),
                          float(exact_before * (1 + cfg["rtol"]))),
                detail=(f"Xi_k/Xi_0 at k = log2 n - 1 = {tau - 1}: {before:.4g} (exact_gossip "
                        f"{exact_before:.4g}, ~1/(n-1) = {1 / (n - 1):.3g}; must stay >= "
                        f"{cfg['not_before']:g})"),
            )  # fmt: skip
            series[f"n={n} ({where})"] = {
                "x": list(range(steps + 1)),
                "measured": (np.maximum(xi, 1e-40) / xi0).tolist(),
                "exact": (np.maximum(pred, 1e-40) / xi0).tolist(),
                "log2 n": tau,
            }
        series["caption"] = (
            f"one-peer exponential gossip, d={cfg['d']}, R=1 (deterministic), n = "
            + ", ".join(f"{m} ({w})" for m, w in sizes)
        )
        return self.make_result(
            checks, headline=f"n={sizes[0][0]} ({sizes[0][1]}): exact at log2 n", series=series,
            seeds=list(seeds.values()), bytes_sent=sent,
        )  # fmt: skip
