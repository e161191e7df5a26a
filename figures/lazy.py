"""Figures of the lazy-communication claims (verify/claims/lazy.py), drawn from saved results.

Registered in :data:`figures.draw.DRAWERS`; like every drawing there, each reads only the saved
result dict (prediction and measurement on the same labelled axes, log scales, confidence
bands, the caption line from ``series['caption']``). The shared helpers of :mod:`figures.draw`
are imported inside the functions, so either module can be imported first.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

__all__ = ["DRAWERS"]


def _num(values) -> np.ndarray:
    """Floats from a saved list (``'inf'`` strings and ``None`` become inf / nan)."""
    return np.array([np.nan if v is None else float(v) for v in values], dtype=float)


def _local_sgd_exact_curve(result, fig) -> None:
    from figures.draw import _axes, _band, _caption, _panels

    panels = _panels(result["series"])
    terms = result["series"].get("terms alone")
    axes = _axes(fig, len(panels) + (1 if terms else 0))
    for ax, (name, s) in zip(axes, panels.items()):
        _band(ax, s["x"], s["lo"], s["hi"], s["mean"], s["exact"], "error", "C0")
        ax.set_yscale("log")
        ax.set_title(name, fontsize="small")
        ax.set_xlabel("local step k")
    axes[0].set_ylabel("(1/n) sum_i E||y_i - x*||^2")
    axes[0].legend(fontsize="x-small")
    if terms:  # each term where it alone acts: measured / predicted with its 99% interval
        tx = axes[-1]
        sm = terms.get("sampling")
        if sm:
            ex = _num(sm["exact"])
            tx.fill_between(
                sm["x"],
                _num(sm["lo"]) / ex,
                _num(sm["hi"]) / ex,
                alpha=0.25,
                color="C1",
                lw=0,
                label="sampling term (sigma2 = 0): 99% band",
            )
            tx.plot(sm["x"], _num(sm["mean"]) / ex, "o", ms=3, color="C1",
                    label="sampling term: measured / exact")  # fmt: skip
        for i, (name, t) in enumerate((k, v) for k, v in terms.items() if k != "sampling"):
            mid = t["window"][0] + (0.4 + 0.1 * i) * (t["window"][1] - t["window"][0])
            r, (lo, hi) = t["measured"] / t["exact"], t["interval"]
            tx.errorbar([mid + 2 * i], [r], yerr=[[r - lo / t["exact"]], [hi / t["exact"] - r]],
                        fmt="s", ms=4, capsize=3, color=f"C{2 + i}",
                        label=f"noise term: {name.split(' (')[0]}")  # fmt: skip
        tx.axhline(1.0, color="k", lw=1, label="prediction (exact)")
        tx.set_title("terms alone", fontsize="small")
        tx.set_xlabel("local step k")
        tx.set_ylabel("measured / predicted")
        tx.legend(fontsize="xx-small", loc="lower left")
    _caption(fig, result)


def _local_sgd_drift_shape(result, fig) -> None:
    from figures.draw import _axes, _caption, _panels

    panels = _panels(result["series"])
    for ax, (name, s) in zip(_axes(fig, len(panels)), panels.items()):
        x, m, e = _num(s["x"]), _num(s["measured"]), _num(s["exact"])
        ax.loglog(x, e, "-", label=f"predicted (exact), slope {s['exact_slope']:+.3f}")
        lo, hi = s.get("interval", [np.nan, np.nan])
        label = f"measured, slope {s['fitted_slope']:+.3f} [{lo:+.3f}, {hi:+.3f}]"
        if "lo" in s:
            yerr = [m - _num(s["lo"]), _num(s["hi"]) - m]
            ax.errorbar(x, m, yerr=yerr, fmt="o", ms=4, label=label)
        else:
            ax.loglog(x, m, "o", ms=4, label=label)
        ref = e[0] * (x / x[0]) ** s["nominal"]
        ax.loglog(x, ref, ":", color="k", lw=1, label=f"nominal slope {s['nominal']:+.0f}")
        ax.set_xlabel(name.rsplit(" vs ", 1)[-1])
        ax.set_title(name, fontsize="small")
        ax.legend(fontsize="xx-small", loc="upper left")  # the data rise to the upper right
    fig.axes[0].set_ylabel("drift: consensus after the tau - 1 local steps")
    _caption(fig, result)


def _scaffold_no_heterogeneity_floor(result, fig) -> None:
    from figures.draw import _axes, _caption

    s = result["series"]
    ax, bx = _axes(fig, 2)
    floor = 1e-32
    for i, name in enumerate(("local SGD", "SCAFFOLD")):
        ax.semilogy(s["x"], np.maximum(_num(s[f"{name} exact"]), floor), "-", color=f"C{i}",
                    lw=1, label=f"{name}: predicted (exact)")  # fmt: skip
        ax.semilogy(s["x"], np.maximum(_num(s[f"{name} measured"]), floor), "o", ms=3,
                    color=f"C{i}", label=f"{name}: measured")  # fmt: skip
    ax.set_xlabel("step (round ends)")
    ax.set_ylabel("server model ||x - x*||^2 (sigma2 = 0; 1e-32 = 0)")
    ax.set_title("local SGD stalls at its floor, SCAFFOLD does not", fontsize="small")
    ax.legend(fontsize="x-small")
    nz = s.get("noise")
    if nz:
        pos = np.arange(len(nz["names"]) + 1)
        ex = [*nz["exact"], nz["gap"]]
        me = [*nz["measured"], nz["gap measured"]]
        lo, hi = nz["gap interval"]
        bx.bar(pos - 0.2, ex, 0.4, label="predicted (exact)")
        yerr = np.zeros((2, len(me)))
        yerr[:, -1] = [me[-1] - lo, hi - me[-1]]
        bx.bar(pos + 0.2, me, 0.4, yerr=yerr, capsize=3, label="measured (gap: 99% interval)")
        bx.set_xticks(pos, [*nz["names"], "gap (paired)"])
        bx.set_xlabel("algorithm (stationary window mean)")
        bx.set_yscale("log")
        bx.set_ylabel("stationary server error (with noise)")
        bx.set_title("same seeds, with noise", fontsize="small")
        bx.legend(fontsize="x-small")
    _caption(fig, result)


def _local_sgd_best_period(result, fig) -> None:
    from figures.draw import _axes, _band, _caption

    s = result["series"]
    ax, bx = _axes(fig, 2)
    taus = _num(s["taus"])
    for key, style in (("predicted time", "s-"), ("measured time", "o--")):
        t = _num(s[key])
        ok = np.isfinite(t)
        never = ", ".join(f"{v:g}" for v in taus[~ok])
        ax.loglog(
            taus[ok],
            t[ok],
            style,
            label=key + (f" (tau = {never}: never reach the target)" if never else ""),
        )
    for key, marker in (("predicted best", "*"), ("measured best", "x")):
        tau = s.get(key)
        if tau is not None:
            i = list(s["taus"]).index(tau)
            ax.loglog([tau], [_num(s[key.split()[0] + " time"])[i]], marker, ms=14,
                      label=f"{key}: tau = {tau}")  # fmt: skip
    ax.set_xticks(taus, [f"{v:g}" for v in taus])  # after every loglog (it resets the ticks)
    ax.set_xlabel("period tau")
    ax.set_ylabel("time to target (s, alpha-beta model)")
    ax.legend(fontsize="x-small")
    for i, (tau, c) in enumerate(s["curves"].items()):
        x = list(range(len(c["mean"])))
        _band(bx, x, c["lo"], c["hi"], c["mean"], c["exact"], f"tau={tau}", f"C{i}")
    bx.axhline(float(s["target"]), color="k", ls="--", lw=1, label="target")
    bx.set_yscale("log")
    bx.set_xlabel("local step k")
    bx.set_ylabel("E||xbar_k - x*||^2")
    bx.legend(fontsize="xx-small", ncol=2)
    _caption(fig, result)


def _event_triggered_communication(result, fig) -> None:
    from figures.draw import _axes, _caption

    s = result["series"]
    ax, bx, cx = _axes(fig, 3)
    ax.semilogy(s["x"], s["bound"], "-", label="bound (sqrt(exact PSGD) + B_k)^2")
    ax.semilogy(s["x"], s["exact psgd"], ":", label="exact PSGD (threshold 0)")
    ax.semilogy(s["x"], s["measured mean"], "o", ms=3, label="measured mean")
    ax.semilogy(s["x"], s["upper confidence limit"], "--", lw=1, label="upper 99% limit")
    ax.set_xlabel("step")
    ax.set_ylabel("E||x - x*||^2")
    ax.legend(fontsize="x-small")
    d = s["deviation"]
    floor = 1e-4 * float(np.nanmax(_num(d["B_k"])))  # step 0: both exactly 0
    bx.semilogy(d["x"], np.maximum(_num(d["B_k"]), floor), "-", color="k", label="B_k (bound)")
    for key in d:
        if key not in ("x", "B_k"):
            bx.semilogy(d["x"], np.maximum(_num(d[key]), floor), ".", ms=3,
                        label=f"measured ({key})")  # fmt: skip
    bx.set_xlabel("step")
    bx.set_ylabel("max |sqrt(err) - sqrt(err_PSGD)| (same noise)")
    bx.legend(fontsize="x-small")
    f = s["sends"]
    pos = np.arange(len(f["fraction per node"]))
    cx.bar(pos, f["fraction per node"], 0.6, label="reported by each node")
    cx.axhline(float(f["fraction from bytes"]), color="k", ls="--",
               label="from the counted bytes")  # fmt: skip
    cx.set_xticks(pos, [f"{i}" for i in pos])
    cx.set_xlabel("node")
    cx.set_ylim(0, 1)
    cx.set_ylabel("fraction of rounds sent")
    cx.legend(fontsize="x-small")
    _caption(fig, result)


#: claim name -> its drawing (merged into figures.draw.DRAWERS)
DRAWERS: dict[str, Callable[[Mapping[str, Any], Any], None]] = {
    "local_sgd_exact_curve": _local_sgd_exact_curve,
    "local_sgd_drift_shape": _local_sgd_drift_shape,
    "scaffold_no_heterogeneity_floor": _scaffold_no_heterogeneity_floor,
    "local_sgd_best_period": _local_sgd_best_period,
    "event_triggered_communication": _event_triggered_communication,
}
