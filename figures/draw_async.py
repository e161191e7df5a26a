"""Figures of the asynchronous family's claims (issue 11), drawn from the saved result alone.

Registered in :data:`figures.draw.DRAWERS` (an additive block at the end of that module). Same
conventions: prediction and measurement on the same labelled axes, log scales where values
span decades, confidence bands where the claim has them, the caption from
``series['caption']``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from figures.draw import _axes, _band, _caption, _pos

__all__ = ["DRAWERS"]


def _fixed_delay_exact(result: Mapping[str, Any], fig) -> None:
    s = result["series"]
    axes = _axes(fig, 3)
    c = s["curve"]
    _band(axes[0], c["x"], c["error_lo"], c["error_hi"], c["error_mean"], c["error_exact"],
          "error", "C0")  # fmt: skip
    axes[0].set_yscale("log")
    axes[0].set_xlabel("step k")
    axes[0].set_ylabel("E||x_k - x*||^2")
    axes[0].set_title("whole curve (distributed)", fontsize="small")
    nt = s["noise term"]
    axes[1].plot(nt["x"], _pos(nt["error_mean"]), ".", ms=3, color="C0",
                 label="measured mean per step")  # fmt: skip
    axes[1].plot(nt["x"], _pos(nt["error_exact"]), "-", lw=1, color="C1",
                 label="predicted (exact) per step")  # fmt: skip
    if "window_lo" in nt:
        axes[1].axhspan(nt["window_lo"], nt["window_hi"], color="C0", alpha=0.25, lw=0,
                        label="window average: 99.5% CI (measured)")  # fmt: skip
        axes[1].axhline(nt["window_exact"], color="C1", ls="--", lw=1,
                        label="window average: predicted")  # fmt: skip
    axes[1].set_yscale("log")
    axes[1].set_xlabel("step k (stationary window)")
    axes[1].set_title("noise term alone (zeta2 = 0, x0 = x*)", fontsize="small")
    st = s["stability"]
    for (key, ys), color in zip(st["measured"].items(), ("C0", "C3")):
        axes[2].plot(st["x"], _pos(ys), lw=1, color=color, label=f"measured, {key}")
        axes[2].plot(st["x"], _pos(st["exact"][key]), "--", lw=0.8, color="k",
                     label="predicted (exact)" if color == "C0" else None)  # fmt: skip
    axes[2].axhline(1.0, color="k", lw=0.5, ls=":", label="initial error")
    axes[2].set_yscale("log")
    axes[2].set_xlabel("step k")
    axes[2].set_title(f"stability limit gamma_max = {st['limit']:.3g}", fontsize="small")
    for ax in axes:
        ax.legend(fontsize="x-small")
    _caption(fig, result)


def _delay_dependence(result: Mapping[str, Any], fig) -> None:
    s = result["series"]
    axes = _axes(fig, 2)
    p = s["delay term ratio"]
    x = np.asarray(p["x"], dtype=float)
    m = np.asarray(p["measured"], dtype=float)
    lo, hi = np.asarray(p["lo"], dtype=float), np.asarray(p["hi"], dtype=float)
    ax = axes[0]
    ax.errorbar(x, m, yerr=[m - lo, hi - m], fmt="o", color="C0", capsize=3,
                label="measured D / D(equal speeds), CI")  # fmt: skip
    ax.plot(x, p["tau_avg rate"], "s", mfc="none", color="C1", label="tau_avg rate: prediction")
    ax.plot(x, p["tau_max rate"], "^", mfc="none", color="C3", label="tau_max rate: prediction")
    for xi, pa in zip(x, p["tau_avg rate"]):
        ax.fill_between([xi / 1.3, xi * 1.3], pa / 2, pa * 2, color="C1", alpha=0.15, lw=0)
    for xi, label in zip(x, p["labels"]):
        ax.annotate(label, (xi, hi[list(x).index(xi)]), fontsize="x-small", ha="center",
                    xytext=(0, 6), textcoords="offset points")  # fmt: skip
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("tau_max of the trace")
    ax.set_ylabel("delay term ratio (shaded: tau_avg band x/2)")
    ax.legend(fontsize="x-small")
    e = s["equal speeds"]
    bx = axes[1]
    vals = [e["measured"][0], e["exact"][0], e["floor(tau=0)"][0]]
    bx.bar([0, 1, 2], vals, color=["C0", "C1", "C7"])
    bx.set_xticks([0, 1, 2], ["measured", "exact (tau = n-1)", "exact (tau = 0)"], fontsize="small")
    bx.set_ylim(min(vals) * 0.9, max(vals) * 1.05)
    bx.set_ylabel("stationary E||x - x*||^2")
    bx.set_title(f"equal speeds, tau_avg = tau_max = {e['x'][0]:.3g}", fontsize="small")
    _caption(fig, result)


def _speed_weighted(result: Mapping[str, Any], fig) -> None:
    s = result["series"]["fixed point"]
    ax = _axes(fig, 1)[0]
    x = np.asarray(s["x"], dtype=float)
    style = {
        "x*": ("k", "x", "x* = argmin f (uniform weights)"),
        "predicted x_p": ("C1", "s", "predicted x_p = argmin sum p_i f_i"),
        "measured (gamma)": ("C0", ".", "measured, gamma"),
        "measured (gamma/2)": ("C2", ".", "measured, gamma/2"),
        "extrapolated": ("C3", "o", "measured, extrapolated to gamma -> 0"),
    }
    for i, (key, (color, marker, label)) in enumerate(style.items()):
        ax.plot(x + 0.06 * (i - 2), s[key], marker, mfc="none" if marker in "so" else color,
                color=color, ms=8, ls="", label=label)  # fmt: skip
    ax.set_xticks(x, [f"coordinate {int(v)}" for v in x], fontsize="small")
    ax.set_ylabel("limit point coordinate")
    ax.axhline(0.0, color="k", lw=0.3)
    ax.legend(fontsize="x-small")
    _caption(fig, result)


def _straggler_wallclock(result: Mapping[str, Any], fig) -> None:
    s = result["series"]
    axes = _axes(fig, 2)
    c = s["curves"]
    w = s["wall-clock"]
    ax = axes[0]
    for alg, color in (("sync", "C0"), ("async", "C3")):
        t, e = c[f"{alg}_t"], c[f"{alg}_e"]
        ax.plot(t, _pos(e), ".-", color=color, ms=3, lw=1, label=f"{alg}: measured")
        pred = w["predicted"][w["labels"].index(alg)]
        ax.axvline(pred, color=color, ls="--", lw=1, label=f"{alg}: predicted time to target")
    ax.axhline(c["target"], color="k", ls=":", lw=1, label="target")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("wall-clock (s)")
    ax.set_ylabel("||x - x*||^2")
    ax.legend(fontsize="x-small")
    bx = axes[1]
    idx = np.arange(len(w["labels"]))
    bx.bar(idx - 0.2, w["measured"], 0.4, label="measured", color="C0")
    bx.bar(idx + 0.2, w["predicted"], 0.4, label="predicted from speeds", color="C1")
    bx.set_xticks(idx, w["labels"])
    bx.set_yscale("log")
    bx.set_ylabel("wall-clock to target (s)")
    bx.legend(fontsize="x-small")
    _caption(fig, result)


#: claim name -> its drawing
DRAWERS = {
    "async_fixed_delay_exact": _fixed_delay_exact,
    "async_delay_dependence": _delay_dependence,
    "async_speed_weighted_fixed_point": _speed_weighted,
    "async_straggler_wallclock": _straggler_wallclock,
}
