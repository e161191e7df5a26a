"""The lecture's figures: one per question, prediction (theorylab) and measurement (saved results)
on the same axes.

Each figure function takes ``results`` (claim name -> the newest saved result of that claim, a
dict as ``theorylab verify`` writes it, already validated by the caller) and a matplotlib
``Figure``, draws the figure, and returns what it shows: ``{"measured": [claims drawn from],
"caption": str}``. Where a figure's claim has no saved result in the folder it draws
theorylab's prediction alone and says so ("prediction only") in its title. Nothing here imports
a claim or runs a process: the predictions are computed by :mod:`theorylab` (exact second-moment
engines, typed rates, the alpha-beta cost model) and the measurements are read from the dicts.

=====  ======================================================  ==================================
name   lecture question                                        measured from (when present)
=====  ======================================================  ==================================
1      When does decentralized SGD beat PSGD in wall-clock?    ``psgd_dsgd_speedup``
2      How does the graph (and its weights) set rho?           (theory figure: no run needed)
3      What does compression cost, per bit?                    ``compressed_psgd_floor``
4      How should the local period tau be tuned?               ``local_sgd_best_period``
5      How does heterogeneity hurt, and what removes it?       ``tracking_heterogeneity``
6      How much delay can asynchronous SGD take?               ``async_fixed_delay_exact``
7      How do Byzantine nodes raise the floor?                 ``byzantine_floor_vs_f``
8      How long until linear speed-up (transient)?             (theory figure)
=====  ======================================================  ==================================

:func:`draw_all` writes every figure as PNG and PDF into one folder.

Conventions: ``rho = ||W - 11^T/n||_2``, spectral gap ``1 - rho``; errors are
``(1/n) sum_i E||x_i - x*||^2`` unless a panel says otherwise.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["FIGURES", "draw_all", "newest_by_claim"]

_PRED = dict(color="k", lw=1.2)


def newest_by_claim(results) -> dict[str, dict]:
    """The newest (by ``timestamp``) result dict of each claim with a pass/fail verdict."""
    out: dict[str, dict] = {}
    for r in results:
        d = r if isinstance(r, Mapping) else r.to_dict()
        if d.get("verdict") not in ("pass", "fail"):
            continue
        name = str(d.get("claim"))
        if name not in out or str(d.get("timestamp", "")) >= str(out[name].get("timestamp", "")):
            out[name] = dict(d)
    return out


def _title(fig, question: str, caption: str, measured: bool) -> None:
    import textwrap

    tag = "" if measured else "  [prediction only: no saved measurement in this folder]"
    lines = [f"{question}{tag}"] + [
        w for part in caption.split("\n") for w in textwrap.wrap(part, 135) or [""]
    ]
    fig.suptitle("\n".join(lines), fontsize="medium")


def _plain_ticks(ax, axis: str = "x") -> None:
    """Plain numbers (2, 4, 8, ...) instead of 2^k on a log axis of node counts."""
    from matplotlib.ticker import FormatStrFormatter, NullFormatter

    a = ax.xaxis if axis == "x" else ax.yaxis
    a.set_major_formatter(FormatStrFormatter("%g"))
    a.set_minor_formatter(NullFormatter())


def _numbers(v) -> np.ndarray | None:
    """``v`` as a float array if it is a non-empty list of numbers, else None."""
    if not isinstance(v, list) or not v:
        return None
    try:
        a = np.asarray([float(u) for u in v], dtype=float)
    except (TypeError, ValueError):
        return None
    return a


# ---- 1. PSGD vs DSGD speed-up -------------------------------------------------------------------
def fig_speedup(results: Mapping[str, dict], fig) -> dict:
    """Throughput speed-up ``n t_c / t_round`` against ``n`` at two communication-to-computation
    ratios: the calibrated alpha-beta model (lines, extended beyond the measured ``n``) and the
    measured medians with their intervals (points), from ``psgd_dsgd_speedup``; without a saved
    result, the model with a nominal loopback calibration (alpha = 100 us, beta = 1 ns/B,
    4 KiB messages)."""
    from theorylab.cost import CommModel, round_time

    res = results.get("psgd_dsgd_speedup")
    axes = fig.subplots(1, 2, squeeze=False, sharey=True)[0]
    colors = {"psgd": "C3", "dsgd": "C0"}
    names = {"psgd": "PSGD (ring all-reduce)", "dsgd": "DSGD (ring neighbours)"}
    measured = False
    if res is not None:
        s = res["series"]
        model, sp, ratios = s["model"], s["speedup"], s.get("ratios", {})
        grid = np.asarray(model["x"], float)
        for ax, lab in zip(axes, ("small", "large")):
            for algo in ("psgd", "dsgd"):
                ax.plot(grid, model[f"{algo} {lab}"], "-", color=colors[algo],
                        label=f"{names[algo]}: predicted")  # fmt: skip
                x = np.asarray(sp["x"], float) * (0.96 if algo == "psgd" else 1.04)  # dodge
                m = np.asarray(sp[f"{algo} {lab} measured"], float)
                lo = np.asarray(sp[f"{algo} {lab} lo"], float)
                hi = np.minimum(np.asarray(sp[f"{algo} {lab} hi"], float), 10 * grid.max())
                ax.errorbar(x, m, yerr=[np.maximum(m - lo, 0), np.maximum(hi - m, 0)], fmt="o",
                            ms=5, capsize=3, color=colors[algo],
                            label=f"{names[algo]}: measured (median, interval)")  # fmt: skip
            r = ratios.get(lab)
            ax.set_title(f"{lab} ratio (alpha + beta b)/t_c = {r:.2g}" if r else f"{lab} ratio",
                         fontsize="small")  # fmt: skip
        measured = True
        caption = s.get("caption", "") + f"; verdict: {res.get('verdict')}"
    else:
        alpha, beta, nbytes = 1e-4, 1e-9, 4096
        grid = np.unique(np.r_[np.arange(2, 9), 2 ** np.arange(4, 7)]).astype(float)
        for ax, (lab, tc) in zip(axes, (("small", 2e-2), ("large", 2e-4))):
            for algo in ("psgd", "dsgd"):
                ys = []
                for n in grid.astype(int):
                    if algo == "psgd":
                        model = CommModel(alpha, beta, -(-nbytes // n), tc, "sequential")
                        ys.append(n * tc / round_time(2 * (n - 1), model))
                    else:
                        model = CommModel(alpha, beta, nbytes, tc, "sequential")
                        ys.append(n * tc / round_time(min(2, n - 1), model))
                ax.plot(grid, ys, "-", color=colors[algo], label=f"{names[algo]}: predicted")
            ax.set_title(f"{lab} ratio (alpha + beta b)/t_c = {(alpha + beta * nbytes) / tc:.2g}",
                         fontsize="small")  # fmt: skip
        caption = "alpha-beta model, alpha = 100 us, beta = 1 ns/B, b = 4 KiB (nominal)"
    for ax in axes:
        ax.plot(grid, grid, ":", color="0.5", lw=1, label="linear speed-up n")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log", base=2)
        _plain_ticks(ax, "x")
        _plain_ticks(ax, "y")
        ax.set_xlabel("nodes n")
        ax.grid(True, which="major", alpha=0.3)
    axes[0].set_ylabel("throughput speed-up over one node")
    axes[0].legend(fontsize="x-small")
    _title(fig, "1. When does DSGD beat PSGD in wall-clock? (throughput speed-up against n)",
           caption, measured)  # fmt: skip
    return {"measured": ["psgd_dsgd_speedup"] if measured else [], "caption": caption}


# ---- 2. rho and spectral gap against n ----------------------------------------------------------
def _rho(W) -> float:
    from theorylab.spectral import rho

    return float(rho(np.asarray(W, dtype=float)))


def fig_mixing(
    results: Mapping[str, dict], fig, *, ns=(4, 8, 16, 32, 64), sdp_max: int = 32
) -> dict:
    """``rho`` and the spectral gap ``1 - rho`` against ``n`` for each graph family (colour) and
    weight rule (line style), the SDP-optimal (FDLA) weights included up to ``sdp_max`` nodes.
    A theory figure: everything is computed by :mod:`theorylab` (``topology``, ``mixing``,
    ``design.optimal_weights``)."""
    from theorylab import design, mixing, topology

    families = {
        "ring": lambda n: topology.ring(n),
        "torus": lambda n: topology.torus2d(*topology.square_shape(n)),
        "hypercube": lambda n: topology.hypercube(n),
        "static exponential": None,
        "one-peer exponential": None,
    }
    # (max-degree weights are left out: on the bipartite regular ring and hypercube they give
    # rho = 1 exactly, an eigenvalue -1)
    rules = {"metropolis": "-", "best-constant": "--", "optimal (SDP)": ":"}
    ax, bx = fig.subplots(1, 2, squeeze=False)[0]
    for c, (fam, make) in enumerate(families.items()):
        color = f"C{c}"
        # distinct markers: the hypercube coincides with the static exponential graph (same
        # rho), and the ring's SDP-optimal weights with its best-constant ones
        mk = dict(marker="osDv^"[c], ms=7 if fam == "hypercube" else 4, mfc="none")
        if make is None:
            vals = []
            for n in ns:
                if fam == "static exponential":
                    vals.append(_rho(topology.exponential_mixing_matrix(n, sparse=False)))
                else:  # per-round rate of the period product (exact average: 0 at powers of 2)
                    from theorylab.spectral import schedule_rho

                    sched = topology.one_peer_exponential(n, sparse=False)
                    vals.append(float(schedule_rho([np.asarray(W) for W in sched.matrices])))
            ax.plot(ns, vals, "-", color=color, label=f"{fam} (its own weights)", **mk)
            bx.plot(ns, np.maximum(1 - np.asarray(vals), 1e-16), "-", color=color, **mk)
            continue
        for rule, ls in rules.items():
            xs, vals = [], []
            for n in ns:
                try:
                    G = make(n)
                except Exception:  # a family that does not fit n (torus shape)
                    continue
                if rule == "optimal (SDP)":
                    if n > sdp_max:
                        continue
                    res = design.optimal_weights(G)
                    vals.append(float(res.rho))
                else:
                    vals.append(_rho(mixing.mixing_matrix(G, rule, sparse=False)))
                xs.append(n)
            if xs:
                ax.plot(xs, vals, ls, color=color, label=f"{fam}, {rule}", **mk)
                bx.plot(xs, 1 - np.asarray(vals), ls, color=color, **mk)
    ax.set_ylabel(r"$\rho = \|W - 11^T/n\|_2$")
    bx.set_ylabel(r"spectral gap $1 - \rho$ (one-peer: 1 = exact average)")
    bx.set_yscale("log")
    for a in (ax, bx):
        a.set_xscale("log", base=2)
        _plain_ticks(a, "x")
        a.set_xlabel("nodes n")
        a.grid(True, alpha=0.3)
    ax.legend(fontsize="xx-small", ncol=2)
    caption = (
        f"n = {', '.join(map(str, ns))}; SDP-optimal (FDLA, theorylab.design) up to n = "
        f"{sdp_max}; one-peer exponential: per-round rate of its period product (0: exact "
        "average); the hypercube (diamonds) has the static exponential graph's rho; torus: the "
        "most square r x c (4 x 8 at n = 32)"
    )
    _title(fig, "2. How does the graph and its weight rule set rho? (theory figure)", caption, True)
    return {"measured": [], "caption": caption}


# ---- 3. compression: floor against omega, bits against error ------------------------------------
def fig_compression(results: Mapping[str, dict], fig) -> dict:
    """Compressed PSGD with scaled rand-k: the error floor against ``1 + omega = d/k`` (the
    saved ``compressed_psgd_floor`` prediction and measurement when present, else
    :func:`theorylab.rates.compressed_psgd_randk_exact` on a homogeneous quadratic), and the bits
    each node sends per round (the compressor's exact ``bits(d)``) against that floor."""
    from theorylab.compressors import get_compressor
    from theorylab.rates import compressed_psgd_randk_exact

    ax, bx = fig.subplots(1, 2, squeeze=False)[0]
    d, n, gamma, sigma2, steps = 16, 4, 0.1, 1.0, 200
    h = np.linspace(0.5, 1.0, d)
    ks = [k for k in (1, 2, 4, 8, 16) if k <= d]
    floors = []
    for k in ks:
        curve = compressed_psgd_randk_exact(hessian_diagonal=h, gamma=gamma, sigma2=sigma2, n=n,
                                            k=k, e0=np.zeros(d), steps=steps)  # fmt: skip
        floors.append(float(np.asarray(curve)[-1]))
    omega1 = [d / k for k in ks]
    res = results.get("compressed_psgd_floor")
    fl = (res or {}).get("series", {}).get("floor") if res else None
    measured = False
    if isinstance(fl, dict) and _numbers(fl.get("x")) is not None:
        x = _numbers(fl["x"])
        ex = _numbers(fl.get("exact"))
        if ex is not None and len(ex) == len(x):
            ax.loglog(x, ex, "s-", label="predicted floor (exact, the claim's problem)", **_PRED)
        pts = [(a, b) for a, b in zip(fl.get("x", []), fl.get("measured", []))
               if isinstance(b, (int, float)) and b is not None and b > 0]  # fmt: skip
        if pts:
            ax.loglog(*zip(*pts), "o", ms=11, mfc="none", mew=2, zorder=5, color="C1",
                      label="measured floor (compressed_psgd_floor, x0 = x*)")  # fmt: skip
            measured = True
        cap_claim = (res["series"].get("caption") or "")[:160]
    else:
        cap_claim = ""
    ax.loglog(omega1, floors, "^--", color="C0", ms=5,
              label=f"predicted floor (exact; d={d}, n={n}, gamma={gamma})")  # fmt: skip
    ax.set_xlabel(r"$1 + \omega = d/k$ (scaled rand-k)")
    ax.set_ylabel(r"steady-state $E\|x - x^*\|^2$")
    ax.set_title("floor grows with omega", fontsize="small")
    ax.legend(fontsize="x-small")
    bits = [get_compressor(f"rand-k:k={k}").bits(d) for k in ks]
    bx.loglog(floors, bits, "o-", color="C0")
    for k, f, b in zip(ks, floors, bits):
        bx.annotate(f"k={k}", (f, b), textcoords="offset points", xytext=(4, 4), fontsize="x-small")
    bx.set_xlabel(r"predicted floor $E\|x - x^*\|^2$")
    bx.set_ylabel("bits per node per round (exact wire size)")
    bx.set_title("bits per round against the error they buy", fontsize="small")
    for a in (ax, bx):
        a.grid(True, which="major", alpha=0.3)
    caption = (
        f"scaled rand-k, homogeneous diagonal quadratic (h in [0.5, 1]), d={d}, n={n}, "
        f"gamma={gamma}, sigma2={sigma2}, {steps} steps"
    )
    if cap_claim:
        caption += f"\nmeasured: {cap_claim}"
    _title(fig, "3. What does compression cost? (floor against omega, bits against error)",
           caption, measured)  # fmt: skip
    return {"measured": ["compressed_psgd_floor"] if measured else [], "caption": caption}


# ---- 4. local SGD: error and wall-clock against tau ---------------------------------------------
def fig_local(results: Mapping[str, dict], fig) -> dict:
    """Local SGD on a heterogeneous quadratic: the exact steady error of the averaged model
    against the period ``tau`` (:func:`theorylab.rates.local_sgd_exact_curve`, the exact engine),
    and the predicted wall-clock time to a target against ``tau`` under the alpha-beta model
    (:func:`theorylab.rates.best_period`), with the predicted best ``tau`` marked. With a saved
    ``local_sgd_best_period`` result, its own exact curves (theorylab's, on its problem) and
    measured mean curves (last step, with their intervals), its predicted and measured times to
    its target, and both best periods."""
    from theorylab.cost import CommModel
    from theorylab.problems import heterogeneous_quadratic
    from theorylab.rates import best_period, local_sgd_exact_curve

    n, d, zeta2, sigma2, gamma, steps = 8, 4, 20.0, 1.0, 0.05, 600
    p = heterogeneous_quadratic(n, d, L=1.0, mu=0.2, zeta2=zeta2, sigma2=sigma2, diagonal=True,
                                seed=0)  # fmt: skip
    x0 = np.tile(p.x_star, (n, 1)) + 1.0
    curve = local_sgd_exact_curve(p, gamma=gamma, x0=x0, steps=steps)
    taus = [1, 2, 4, 8, 16, 32, 64]
    finals = [float(np.asarray(curve(t))[-1]) for t in taus]
    target = 1.5 * finals[0]
    model = CommModel(alpha=1e-3, beta=1e-9, nbytes=4 * d, compute_s=1e-4)
    choice = best_period(curve, taus, target=target, n=n, model=model)
    ax, bx = fig.subplots(1, 2, squeeze=False)[0]
    res = results.get("local_sgd_best_period")
    lz = (res or {}).get("series") or {}
    ltaus = _numbers(lz.get("taus"))
    curves = lz.get("curves") if isinstance(lz.get("curves"), dict) else {}
    measured = False
    if ltaus is not None and all(isinstance(curves.get(str(int(t))), dict) for t in ltaus):
        # the claim's own problem: its exact curves (theorylab) and measured means, last step
        ts = [int(t) for t in ltaus]
        ex = [float(curves[str(t)]["exact"][-1]) for t in ts]
        me = [float(curves[str(t)]["mean"][-1]) for t in ts]
        lo = [float(curves[str(t)]["lo"][-1]) for t in ts]
        hi = [float(curves[str(t)]["hi"][-1]) for t in ts]
        ax.loglog(ts, ex, "s-", label="predicted (exact_local_sgd), last step", **_PRED)
        ax.errorbar(
            ts,
            me,
            yerr=[np.subtract(me, lo), np.subtract(hi, me)],
            fmt="o",
            ms=6,
            capsize=3,
            color="C1",
            label="measured mean (local_sgd_best_period)",
        )
        tgt = lz.get("target")
        if isinstance(tgt, (int, float)):
            ax.axhline(tgt, color="0.5", ls=":", lw=1, label=f"target {tgt:.3g}")
        pt, mt = _numbers(lz.get("predicted time")), _numbers(lz.get("measured time"))
        if pt is not None and len(pt) == len(ts):
            bx.loglog(ts, pt, "s-", label="predicted time to target", **_PRED)
        if mt is not None and len(mt) == len(ts):
            bx.loglog(ts, mt, "o", ms=7, color="C1", label="from the measured curves")
        for key, style in (("predicted best", ("C2", "--")), ("measured best", ("C1", ":"))):
            v = lz.get(key)
            if isinstance(v, (int, float)):
                bx.axvline(v, color=style[0], ls=style[1], label=f"{key} tau = {v:g}")
        measured = True
        caption = "measured: " + str(lz.get("caption", ""))
    else:
        ax.loglog(taus, finals, "s-", label=f"predicted (exact) after {steps} steps", **_PRED)
        ax.axhline(target, color="0.5", ls=":", lw=1, label=f"target {target:.3g}")
        ts_ = [r["time_s"] if r.get("iterations") is not None else np.nan for r in choice.curve]
        bx.loglog(taus, ts_, "o-", label="predicted time to target (alpha-beta)", **_PRED)
        if choice.tau is not None:
            bx.axvline(choice.tau, color="C2", ls="--", label=f"predicted best tau = {choice.tau}")
        caption = (f"n={n}, d={d}, zeta2={zeta2}, sigma2={sigma2}, gamma={gamma}, L=1, mu=0.2; "
                   f"alpha=1 ms, compute 0.1 ms per step")  # fmt: skip
    ax.set_xlabel(r"local period $\tau$ (steps between averagings)")
    ax.set_ylabel(r"$E\|\bar x - x^*\|^2$")
    ax.set_title("error against tau (the drift floor grows with tau)", fontsize="small")
    bx.set_xlim(ax.get_xlim())
    bx.set_xlabel(r"local period $\tau$")
    bx.set_ylabel("seconds to the target (alpha-beta model)")
    bx.set_title("wall-clock against tau (missing: never reaches the target)", fontsize="small")
    for a in (ax, bx):
        a.legend(fontsize="x-small")
        a.grid(True, alpha=0.3)
    _title(fig, "4. How should local SGD's period tau be tuned?", caption, measured)
    return {"measured": ["local_sgd_best_period"] if measured else [], "caption": caption}


# ---- 5. DSGD vs gradient tracking vs exact diffusion against zeta2 ------------------------------
def fig_tracking(results: Mapping[str, dict], fig) -> dict:
    """DSGD, gradient tracking and exact diffusion against the heterogeneity ``zeta2`` on a ring
    (exact engines of :mod:`theorylab.exact`): (a) the heterogeneity term alone (``sigma2 = 0``,
    ``x0 = x*``): DSGD's floor grows ``∝ zeta2``, the corrected methods reach ``x*``; (b) the
    whole steady state with gradient noise. With a saved ``tracking_heterogeneity`` result the
    predictions are computed on that claim's problem (rebuilt from its configuration and seeds)
    and its measured floors and noise terms are overlaid."""
    from theorylab.exact import exact_diffusion, exact_gradient_tracking, steady_state_dsgd
    from theorylab.mixing import mixing_matrix
    from theorylab.problems import heterogeneous_quadratic
    from theorylab.topology import ring

    res = results.get("tracking_heterogeneity")
    cfg = (res or {}).get("config") or {}
    try:
        n, d, gamma = int(cfg["n_sim"]), int(cfg["d"]), float(cfg["gamma"])
        L, mu, sigma2 = float(cfg["L"]), float(cfg["mu"]), float(cfg["sigma2"])
        seed = int(res["seeds"][0])
        from_claim = cfg.get("graph", "ring") == "ring"
    except (KeyError, IndexError, TypeError, ValueError):
        from_claim = False
    if not from_claim:
        n, d, gamma, L, mu, sigma2, seed = 8, 4, 0.1, 1.0, 0.2, 1.0, 0
    W = np.asarray(mixing_matrix(ring(n), "metropolis", sparse=False), float)
    zetas = np.logspace(-2, 2, 9)
    floor0 = 1e-20
    names = {"dsgd": "DSGD", "gt_atc": "gradient tracking (ATC)", "ed": "exact diffusion"}
    colors = {"dsgd": "C3", "gt_atc": "C0", "gt_cta": "C4", "ed": "C2"}

    def steady(z: float, s2: float) -> dict:
        p = heterogeneous_quadratic(n, d, L=L, mu=mu, zeta2=float(z), sigma2=s2, diagonal=True,
                                    seed=seed)  # fmt: skip
        x0 = np.tile(p.x_star, (n, 1))
        return {
            "dsgd": steady_state_dsgd(p, [W], gamma)["error"],
            "gt_atc": exact_gradient_tracking(p, [W], gamma, 1, x0).steady_state["error"],
            "ed": exact_diffusion(p, [W], gamma, 1, x0).steady_state["error"],
        }

    het = [steady(z, 0.0) for z in zetas]
    tot = [steady(z, sigma2) for z in zetas]
    ax, bx = fig.subplots(1, 2, squeeze=False)[0]
    for m, label in names.items():
        ax.loglog(zetas, [max(h[m], floor0) for h in het], "-", color=colors[m],
                  label=f"{label}: predicted (exact)")  # fmt: skip
        bx.loglog(zetas, [t[m] for t in tot], "-", color=colors[m],
                  label=f"{label}: predicted (exact)")  # fmt: skip
    measured = False
    if from_claim:
        fl = res["series"].get("floor vs zeta2") or {}
        x = _numbers(fl.get("x"))
        for m in ("dsgd", "gt_atc", "gt_cta", "ed"):
            y = _numbers(fl.get(f"{m} measured"))
            if x is not None and y is not None and len(y) == len(x):
                ax.loglog(x, np.maximum(y, floor0), "o", ms=7, mfc="none", mew=1.5,
                          color=colors[m], label=f"{m}: measured (sigma2 = 0)")  # fmt: skip
                measured = True
        nt = res["series"].get("noise term") or {}
        for i, m in enumerate(nt.get("x", []) if isinstance(nt.get("x"), list) else []):
            try:
                mm, lo, hi = (float(nt[k][i]) for k in ("measured", "lo", "hi"))
            except (KeyError, IndexError, TypeError, ValueError):
                continue
            bx.errorbar(
                [zetas[0] * (0.8 + 0.1 * i)],
                [mm],
                yerr=[[mm - lo], [hi - mm]],
                fmt="o",
                ms=7,
                capsize=3,
                color=colors.get(m, "C1"),
                label=f"{m}: measured noise term (zeta2 = 0, drawn at the left edge)",
            )
            measured = True
    ax.axhline(floor0, color="0.6", lw=0.8, ls=":")
    note = "GT, ED exact 0 (reach x*) drawn at 1e-20; measured: float64 round-off"
    ax.text(zetas[-1], floor0 * 3, note, ha="right", fontsize="x-small", color="0.4")
    ax.set_title("heterogeneity term alone (sigma2 = 0, x0 = x*)", fontsize="small")
    bx.set_title(f"whole steady state (sigma2 = {sigma2:g})", fontsize="small")
    for a in (ax, bx):
        a.set_xlabel(r"heterogeneity $\zeta^2$")
        a.grid(True, alpha=0.3)
        a.legend(fontsize="xx-small")
    ax.set_ylabel(r"steady-state $(1/n)\sum_i E\|x_i - x^*\|^2$")
    caption = (
        f"ring, n={n}, Metropolis weights, d={d}, L={L:g}, mu={mu:g}, gamma={gamma:g}, "
        f"ATC" + ("; the claim's problem (seeds from its result)" if from_claim else "")
    )
    if from_claim:
        caption += f"\nmeasured: {res['series'].get('caption', '')}"
    _title(fig, "5. How does heterogeneity hurt DSGD, and what removes it?", caption, measured)
    return {"measured": ["tracking_heterogeneity"] if measured else [], "caption": caption}


# ---- 6. asynchronous SGD against delay ----------------------------------------------------------
def _async_claim_problem(res: dict):
    """The claim ``async_fixed_delay_exact``'s noise-term problem, step and window, rebuilt from
    its saved configuration and seeds (``zeta2 = 0``; seeds[0] is the problem seed), or None."""
    from theorylab.exact import delayed_sgd_stability_limit
    from theorylab.problems import heterogeneous_quadratic

    cfg, seeds = res.get("config") or {}, res.get("seeds") or []
    try:
        n = int(cfg["world_size"])
        quiet = heterogeneous_quadratic(
            n, int(cfg["d"]), L=float(cfg["L"]), mu=float(cfg["mu"]), zeta2=0.0,
            sigma2=float(cfg["sigma2"]), diagonal=True, seed=int(seeds[0]),
        )  # fmt: skip
        h_max = float(np.linalg.eigvalsh(quiet.mean_hessian).max())
        tau = int(cfg["tau"])
        gamma = float(cfg["gamma_frac"]) * delayed_sgd_stability_limit(h_max, tau)
        burn, window, stride = (int(cfg[k]) for k in ("noise_burn_in", "noise_window",
                                                       "noise_stride"))  # fmt: skip
    except (KeyError, IndexError, TypeError, ValueError):
        return None
    return quiet, h_max, tau, gamma, list(range(burn, burn + window + 1, stride))


def fig_async(results: Mapping[str, dict], fig) -> dict:
    """SGD with a fixed delay ``tau`` (the exact engine :func:`theorylab.exact.exact_delayed_sgd`):
    the stationary error against ``tau`` at a fixed step, and the stability limit
    :func:`theorylab.exact.delayed_sgd_stability_limit` (largest stable step against ``tau``),
    with the largest stable delay of that step marked. With a saved ``async_fixed_delay_exact``
    result the prediction is computed on that claim's problem and step (rebuilt from its saved
    configuration and seeds) and its measured noise-term window average (with its interval) and
    its stability runs (converged below, diverged above the limit) are overlaid."""
    from theorylab.exact import delayed_sgd_stability_limit, exact_delayed_sgd
    from theorylab.problems import heterogeneous_quadratic

    res = results.get("async_fixed_delay_exact")
    setup = _async_claim_problem(res) if res else None
    if setup is not None:
        p, h_max, tau_claim, gamma, window = setup
        caption = (f"the claim's problem: n={p.n}, d={p.d}, zeta2=0, x0=x*, h_max={h_max:.3g}, "
                   f"gamma={gamma:.3g}; stationary window average over steps {window[0]}.."
                   f"{window[-1]}; measured: {res['series'].get('caption', '')}")  # fmt: skip
    else:
        p = heterogeneous_quadratic(4, 4, L=1.0, mu=0.2, zeta2=0.0, sigma2=1.0, diagonal=True,
                                    seed=0)  # fmt: skip
        h_max = float(np.linalg.eigvalsh(p.mean_hessian).max())
        gamma, tau_claim, window = 0.1, None, list(range(150, 551, 4))
        caption = (f"quadratic n={p.n}, d={p.d}, L=1, mu=0.2, sigma2=1, zeta2=0, x0=x*, "
                   f"gamma={gamma}; stationary window average over steps 150..550")  # fmt: skip
    taus = np.arange(0, 25)
    limits = np.array([delayed_sgd_stability_limit(h_max, int(t)) for t in taus])
    errs = []
    for t in taus:
        if limits[t] > gamma:
            pr = exact_delayed_sgd(p, gamma, int(t), window[-1], p.x_star, record=window)
            errs.append(float(np.mean(pr.error)))
        else:
            errs.append(np.nan)
    ax, bx = fig.subplots(1, 2, squeeze=False)[0]
    ax.semilogy(taus, errs, "s-", ms=3, label=f"predicted (exact), gamma={gamma:.3g}", **_PRED)
    stable = taus[limits > gamma]
    if stable.size:
        ax.axvline(int(stable.max()) + 0.5, color="C3", ls="--",
                   label=f"unstable beyond tau = {int(stable.max())}")  # fmt: skip
    measured = False
    if setup is not None:
        nt = res["series"].get("noise term") or {}
        try:
            m, lo, hi = (float(nt[k]) for k in ("window_mean", "window_lo", "window_hi"))
            ax.errorbar([tau_claim], [m], yerr=[[m - lo], [hi - m]], fmt="o", ms=7, capsize=4,
                        color="C1", label=f"measured (async_fixed_delay_exact, R=" \
                        f"{res['config'].get('noise_replicas', '?')})")  # fmt: skip
            measured = True
        except (KeyError, TypeError, ValueError):
            pass
    ax.set_xlabel(r"delay $\tau$ (steps)")
    ax.set_ylabel(r"stationary $E\|x - x^*\|^2$")
    ax.set_title("error against delay at a fixed step", fontsize="small")
    bx.semilogy(taus, limits, "o-", ms=3, label=r"stability limit $\gamma_{max}(\tau)$", **_PRED)
    bx.axhline(gamma, color="C0", ls=":", label=f"gamma = {gamma:.3g}")
    if setup is not None:
        for c in res.get("checks", []):
            name = str(c.get("name", ""))
            if name.startswith("stability: "):
                side = name.split(": ", 1)[1]
                g = delayed_sgd_stability_limit(h_max, tau_claim) * (0.95 if side == "below"
                                                                      else 1.05)  # fmt: skip
                ok = bool(c.get("passed"))
                what = "converged" if side == "below" else "diverged"
                bx.plot(
                    [tau_claim],
                    [g],
                    "v" if side == "below" else "^",
                    ms=8,
                    color="C2" if ok else "C3",
                    label=f"measured run {side} the limit: {what if ok else 'NOT ' + what}",
                )
                measured = True
    bx.set_xlabel(r"delay $\tau$")
    bx.set_ylabel("largest stable step")
    bx.set_title("the stability limit shrinks like 1/tau", fontsize="small")
    for a in (ax, bx):
        a.grid(True, alpha=0.3)
        a.legend(fontsize="x-small")
    _title(fig, "6. How much delay can asynchronous SGD take?", caption, measured)
    return {"measured": ["async_fixed_delay_exact"] if measured else [], "caption": caption}


# ---- 7. Byzantine floors against f/n ------------------------------------------------------------
def fig_byzantine(results: Mapping[str, dict], fig) -> dict:
    """Robust PSGD's heterogeneity floor over ``zeta2`` against the Byzantine fraction ``f/n``,
    per aggregator: the upper bound ``kappa_F(n, f)`` of each rule
    (``theorylab.aggregators.get_aggregator(rule).kappa``) and the lower bound ``f/(n - 2f)``
    of any rule (:func:`theorylab.rates.byzantine.byzantine_lower_bound`); with a saved
    ``byzantine_floor_vs_f`` result, its measured floors on the lower-bound instance (same
    colour as the rule's bound) at the claim's ``n``."""
    try:
        from theorylab.aggregators import get_aggregator
        from theorylab.rates.byzantine import byzantine_lower_bound
    except ImportError as exc:  # an older theorylab without the Byzantine family
        ax = fig.subplots(1, 1, squeeze=False)[0][0]
        ax.text(0.5, 0.5, f"theorylab.rates.byzantine is not available: {exc}", ha="center",
                transform=ax.transAxes)  # fmt: skip
        _title(fig, "7. How do Byzantine nodes raise the floor?", "", False)
        return {"measured": [], "caption": ""}
    res = results.get("byzantine_floor_vs_f")
    cfg = (res or {}).get("config") or {}
    rules = cfg.get("rules") if isinstance(cfg.get("rules"), list) else None
    rules = [r for r in (rules or []) if isinstance(r, str)] or [
        "trimmed-mean", "cw-median", "geometric-median", "krum", "nnm+trimmed-mean",
        "nnm+cw-median",
    ]  # fmt: skip
    n = int(cfg["n"]) if isinstance(cfg.get("n"), int) and cfg["n"] >= 3 else 13
    fs = list(range(1, (n - 1) // 2 + 1))
    x = np.array(fs) / n
    ax = fig.subplots(1, 1, squeeze=False)[0][0]
    measured = False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for c, rule in enumerate(rules):
            try:
                kap = [get_aggregator(rule).kappa(n, f) for f in fs]
            except Exception:  # a rule this theorylab does not know
                continue
            kap = [np.nan if k is None else float(k) for k in kap]
            ax.semilogy(x, kap, "-", color=f"C{c}", lw=1.2,
                        label=f"{rule}: upper bound kappa(n, f)")  # fmt: skip
            panel = ((res or {}).get("series") or {}).get(rule)
            if isinstance(panel, dict):
                px, py = _numbers(panel.get("x")), _numbers(panel.get("measured"))
                if px is not None and py is not None and len(px) == len(py):
                    ax.semilogy(px * (1 + 0.012 * (c - len(rules) / 2)), py, "o", ms=6,
                                mfc="none", mew=1.5, color=f"C{c}",
                                label=f"{rule}: measured floor / zeta2")  # fmt: skip
                    measured = True
        lb = [byzantine_lower_bound(zeta2=1.0, n=n, f=f).total for f in fs]
    ax.semilogy(x, lb, "k--", lw=1.5, label="lower bound f/(n - 2f) (any rule)")
    ax.set_xlabel("Byzantine fraction f/n")
    ax.set_ylabel(r"heterogeneity floor / $\zeta^2$")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="xx-small", ncol=2)
    caption = (f"robust PSGD, n={n}; bounds: kappa_F(n, f) zeta2 above (each rule), "
               f"f/(n - 2f) zeta2 below (any rule)")  # fmt: skip
    if measured:
        caption += (f"; measured on the lower-bound instance: {res['series'].get('caption', '')}"
                    " (points dodged in f/n so they do not hide each other)")  # fmt: skip
    _title(fig, "7. How do Byzantine nodes raise the floor? (per aggregator)", caption, measured)
    return {"measured": ["byzantine_floor_vs_f"] if measured else [], "caption": caption}


# ---- 8. transient iterations against n ----------------------------------------------------------
def fig_transient(results: Mapping[str, dict], fig, *, ns=(4, 8, 16, 32, 64, 128)) -> dict:
    """Iterations before DSGD, gradient tracking and exact diffusion reach linear speed-up,
    against ``n``, on a ring, a torus and the static exponential graph (Metropolis weights;
    :func:`theorylab.rates.transient_iterations`, big-O: constants dropped). A theory figure."""
    from theorylab import mixing, topology
    from theorylab.rates import transient_iterations

    graphs = {
        "ring": lambda n: mixing.mixing_matrix(topology.ring(n), "metropolis", sparse=False),
        "torus": lambda n: mixing.mixing_matrix(
            topology.torus2d(*topology.square_shape(n)), "metropolis", sparse=False
        ),  # fmt: skip
        "exponential": lambda n: topology.exponential_mixing_matrix(n, sparse=False),
    }
    algos = {"dsgd": "-", "gradient_tracking": "--", "exact_diffusion": ":"}
    ax = fig.subplots(1, 1, squeeze=False)[0][0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for c, (g, make) in enumerate(graphs.items()):
            xs, rhos = [], []
            for n in ns:
                try:
                    rhos.append(_rho(make(n)))
                    xs.append(n)
                except Exception:  # a family that does not fit n
                    continue
            for algo, ls in algos.items():
                ys = [
                    transient_iterations(
                        n=n, rho=r, L=1.0, mu=0.2, sigma2=1.0, zeta2=1.0, algorithm=algo
                    ).total
                    for n, r in zip(xs, rhos)
                ]
                ax.loglog(xs, ys, ls, marker="o", ms=3, color=f"C{c}", label=f"{g}, {algo}")
    _plain_ticks(ax, "x")
    ax.set_xlabel("nodes n")
    ax.set_ylabel("transient iterations (up to constants)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="xx-small", ncol=3)
    caption = ("strongly convex, heterogeneous: L=1, mu=0.2, sigma2=1, zeta2=1; Metropolis "
               "weights; big-O (compare slopes, not values)")  # fmt: skip
    _title(fig, "8. How long until linear speed-up? (transient iterations, theory figure)",
           caption, True)  # fmt: skip
    return {"measured": [], "caption": caption}


#: file stem -> drawing function, in the lecture's order
FIGURES: dict[str, Callable[[Mapping[str, dict], Any], dict]] = {
    "1_speedup_psgd_vs_dsgd": fig_speedup,
    "2_rho_and_gap_vs_n": fig_mixing,
    "3_compression_floor_and_bits": fig_compression,
    "4_local_sgd_tau": fig_local,
    "5_heterogeneity_dsgd_gt_ed": fig_tracking,
    "6_async_delay": fig_async,
    "7_byzantine_floors": fig_byzantine,
    "8_transient_iterations": fig_transient,
}


def draw_all(results, out_dir, *, only=None) -> list[dict]:
    """Draw every figure of :data:`FIGURES` (or the stems in ``only``) from ``results`` (result
    dicts or :class:`verify.claims.base.ClaimResult` objects; the newest of each claim is used)
    into ``out_dir`` as ``STEM.png`` and ``STEM.pdf``.

    A figure whose drawing raises is skipped with a warning (the others are still drawn).

    Returns
    -------
    list of dict
        Per figure drawn: ``name``, ``png``, ``pdf`` (paths), ``measured`` (the claims whose
        saved measurements it shows), ``caption``.
    """
    from matplotlib.figure import Figure  # no pyplot: the caller's backend is left alone
    from matplotlib.ticker import NullFormatter

    newest = newest_by_claim(results)
    out_dir = Path(out_dir)
    rows = []
    for stem, draw in FIGURES.items():
        if only is not None and stem not in only:
            continue
        fig = Figure(figsize=(12, 5), layout="constrained")
        try:
            info = draw(newest, fig)
        except Exception as exc:  # one broken figure never stops the others
            warnings.warn(f"figure {stem} failed: {type(exc).__name__}: {exc}", stacklevel=2)
            continue
        out_dir.mkdir(parents=True, exist_ok=True)
        png, pdf = out_dir / f"{stem}.png", out_dir / f"{stem}.pdf"
        for ax in fig.axes:  # minor tick labels of log axes overlap the major ones, but an axis
            # spanning less than a decade has only minor ticks: keep those labels
            for axis, scale, lim in ((ax.xaxis, ax.get_xscale(), ax.get_xlim()),
                                     (ax.yaxis, ax.get_yscale(), ax.get_ylim())):  # fmt: skip
                if scale == "log" and min(lim) > 0 and max(lim) / min(lim) >= 10:
                    axis.set_minor_formatter(NullFormatter())
        fig.savefig(png, dpi=110)
        fig.savefig(pdf)
        rows.append({"name": stem, "png": str(png), "pdf": str(pdf), **info})
    return rows
