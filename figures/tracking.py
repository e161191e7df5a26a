"""Figures of the tracking family's claims (verify/claims/tracking.py), drawn from saved results.

Each function takes the result dict written by ``theorylab verify`` and a matplotlib figure, and
draws the prediction and the measurement on the same labelled axes (log scales, confidence bands
or error bars where the claim has them, a caption with n, gamma, R and the topology).
:data:`DRAWERS` maps each claim name to its drawing (merged into :data:`figures.draw.DRAWERS`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from figures.draw import _axes, _band, _caption, _pos

__all__ = ["DRAWERS"]

_COLORS = {"dsgd": "C3", "gt_atc": "C0", "gt_cta": "C9", "ed": "C2"}
_LABELS = {"dsgd": "DSGD", "gt_atc": "GT (ATC)", "gt_cta": "GT (CTA)", "ed": "exact diffusion"}


def _tracking_heterogeneity(result: Mapping[str, Any], fig) -> None:
    s = result["series"]
    fig.set_size_inches(12, 8)  # four panels: 2 x 2, readable at the report's default width
    axes = fig.subplots(2, 2).ravel()
    # (1) floor vs zeta2
    ax, p = axes[0], s["floor vs zeta2"]
    z = np.asarray(p["x"], dtype=float)
    floor = 1e-30
    ax.loglog(z, _pos(p["dsgd exact steady state"], floor), "-", color=_COLORS["dsgd"],
              label="DSGD: predicted floor (exact)")  # fmt: skip
    for m in ("dsgd", "gt_atc", "gt_cta", "ed"):
        ax.loglog(z, _pos(p[f"{m} measured"], floor), "o" if m == "dsgd" else "x",
                  color=_COLORS[m], label=f"{_LABELS[m]}: measured at the last step")  # fmt: skip
    ax.set_xlabel(r"heterogeneity $\zeta^2$")
    ax.set_ylabel(r"$(1/n)\sum_i\|x_i - x^*\|^2$ ($\sigma^2 = 0$, $x^0 = x^*$)")
    ax.set_title("floor vs zeta2 (DSGD: predicted exactly; GT, ED: predicted 0)",
                 fontsize="small")  # fmt: skip
    ax.legend(fontsize="xx-small")
    # (2) deterministic curves off x*
    key = next(k for k in s if k.startswith("sigma2=0") and "off" in k)
    ax, p = axes[1], s[key]
    for m in ("dsgd", "gt_atc", "gt_cta", "ed"):
        ax.semilogy(p["x"], _pos(p[f"{m} exact"], floor), "-", color=_COLORS[m], lw=1,
                    label=f"{_LABELS[m]}: exact")  # fmt: skip
        ax.semilogy(p["x"], _pos(p[f"{m} measured"], floor), "o", ms=3, color=_COLORS[m],
                    label=f"{_LABELS[m]}: measured")  # fmt: skip
    ax.set_xlabel("step")
    ax.set_title(key.replace("sigma2=0", "deterministic, sigma2=0"), fontsize="small")
    ax.set_ylabel(r"$(1/n)\sum_i\|x_i - x^*\|^2$")
    ax.legend(fontsize="xx-small")
    # (3) the noise term
    ax, p = axes[2], s["noise term"]
    x = np.arange(len(p["x"]))
    mean, lo, hi = (np.asarray(p[k], dtype=float) for k in ("measured", "lo", "hi"))
    ax.errorbar(x, mean, yerr=[mean - lo, hi - mean], fmt="o", capsize=4,
                label="measured (99% simultaneous CI)")  # fmt: skip
    ax.plot(x, p["exact"], "_", ms=20, mew=2, color="k", label="predicted (exact)")
    ax.set_xticks(x, [_LABELS.get(m, m) for m in p["x"]], fontsize="x-small")
    ax.set_yscale("log")
    ax.set_title(r"noise term alone ($\zeta^2 = 0$, $x^0 = x^*$): stationary window mean",
                 fontsize="small")  # fmt: skip
    ax.set_ylabel(r"$(1/n)\sum_i E\|x_i - x^*\|^2$")
    ax.legend(fontsize="xx-small")
    # (4) the distributed full curves
    ax = axes[3]
    for key, color in zip([k for k in s if k.endswith("(distributed)")], ("C0", "C2")):
        p = s[key]
        _band(ax, p["x"], p["error_lo"], p["error_hi"], p["error_mean"], p["error_predicted"],
              key.split(",")[0], color)  # fmt: skip
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_title("full curves (sigma2, zeta2 > 0), distributed executor", fontsize="small")
    ax.set_ylabel(r"$(1/n)\sum_i E\|x_i - x^*\|^2$")
    ax.legend(fontsize="xx-small")
    _caption(fig, result)


def _dsgd_topology_floor(result: Mapping[str, Any], fig) -> None:
    s = result["series"]
    ax = _axes(fig, 1)[0]
    markers = {"ring": "o", "torus": "s", "exponential": "^", "ring_best_constant": "D"}
    gaps = []
    for family, marker in markers.items():
        p = s.get(family)
        if not p or not p["x"]:
            continue
        gaps += list(p["x"])
        ax.loglog(p["x"], p["measured"], marker, ms=6, mfc="none", label=f"{family}: measured")
        ax.loglog(p["x"], p["exact"], "k.", ms=3)
    p = s.get("one_peer_exponential")
    if p and p["x"]:
        ax.loglog(
            p["x"],
            p["measured"],
            "v",
            ms=7,
            color="C4",
            label="one-peer exponential (time-varying; at the static graph's 1 - rho)",
        )
        ax.loglog(p["x"], p["exact"], "k.", ms=3)
    g = np.geomspace(min(gaps), max(gaps), 100)
    ax.loglog(g, (1 - g) ** 2 / g**2, "-", color="0.4",
              label=r"predicted $\rho^2/(1-\rho)^2$ (exponent $-2$)")  # fmt: skip
    ax.plot([], [], "k.", label="exact_dsgd steady state")
    ax.set_xlabel(r"spectral gap $1 - \rho$,  $\rho = \|W - 11^T/n\|_2$")
    ax.set_ylabel(r"DSGD floor / $(\gamma^2 \zeta^2)$")
    fit = s.get("fit", {})
    if fit.get("slope"):
        ax.set_title(f"fitted exponent {fit['slope'][0]:+.3f} (predicted -2)", fontsize="small")
    ax.legend(fontsize="x-small")
    _caption(fig, result)


def _dsgd_transient(result: Mapping[str, Any], fig) -> None:
    s = result["series"]
    ax = _axes(fig, 1)[0]
    xs, ys = [], []
    for family, marker in (("exponential", "^"), ("ring", "o"), ("torus", "s")):
        p = s.get(family)
        if not p or not p["x"]:
            continue
        x, m = np.asarray(p["x"], float), np.asarray(p["measured"], float)
        lo, hi = np.asarray(p["lo"], float), np.asarray(p["hi"], float)
        ax.errorbar(x, m, yerr=[m - lo, np.where(np.isfinite(hi), hi - m, 0)], fmt=marker,
                    mfc="none", capsize=3, label=f"{family}: measured (99% CI)")  # fmt: skip
        ax.plot(x, p["exact"], "k.", ms=4)
        for xi, ni, mi in zip(x, p["n"], m):
            ax.annotate(f"n={ni}", (xi, mi), fontsize="xx-small", xytext=(3, -8),
                        textcoords="offset points")  # fmt: skip
        xs += list(x)
        ys += list(p["exact"])
    ax.plot([], [], "k.", label="exact (closed form, exact_psgd)")
    xs, ys = np.asarray(xs), np.asarray(ys)
    c = float(np.exp(np.mean(np.log(ys / xs))))
    grid = np.geomspace(xs.min(), xs.max(), 50)
    ax.plot(
        grid, c * grid, "-", color="0.4", label=r"predicted scaling $\propto n\rho^2/(1-\rho)^2$"
    )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(r"$n \rho^2 / (1 - \rho)^2$")
    ax.set_ylabel("transient iterations T (DSGD within 1.1x of PSGD)")
    fit = s.get("fit", {})
    if fit.get("slopes"):
        sl = fit["slopes"]
        ax.set_title(f"fitted exponents: n {sl[0]:+.3f} (pred. +1), (1-rho)/rho {sl[1]:+.3f} "
                     "(pred. -2)", fontsize="small")  # fmt: skip
    ax.legend(fontsize="x-small")
    _caption(fig, result)


def _push_sum_directed(result: Mapping[str, Any], fig) -> None:
    s = result["series"]
    dist = [k for k in s if k.endswith("(distributed)")]
    fig.set_size_inches(5 * (2 + len(dist)), 5)
    axes = _axes(fig, 2 + len(dist))
    ax, p = axes[0], s["gamma sweep"]
    g = p["x"]
    ax.loglog(g, p["DSGD ||xbar - x*||^2 measured"], "o", color="C3",
              label="DSGD (row-stochastic): measured")  # fmt: skip
    ax.loglog(g, p["DSGD fixed point (predicted)"], "-", color="C3", lw=1,
              label="DSGD: predicted fixed point")  # fmt: skip
    ax.loglog(g, p["Perron bias ||x_pi* - x*||^2"], "--", color="C3",
              label=r"predicted limit $\|x_\pi^* - x^*\|^2$ (Perron)")  # fmt: skip
    ax.loglog(g, p["push-sum error measured"], "s", color="C0",
              label=r"push-sum $(1/n)\sum\|z_i - x^*\|^2$: measured")  # fmt: skip
    ax.loglog(g, p["push-sum exact"], "-", color="C0", lw=1, label="push-sum: exact")
    ax.loglog(g, _pos(p["push-sum ||zbar - x*||^2 measured"], 1e-30), "x", color="C0",
              label=r"push-sum $\|\bar z - x^*\|^2$: measured")  # fmt: skip
    if "push-sum ||zbar - x*||^2 exact" in p:
        ax.loglog(g, _pos(p["push-sum ||zbar - x*||^2 exact"], 1e-30), ":", color="C0",
                  label=r"push-sum $\|\bar z - x^*\|^2$: exact")  # fmt: skip
    ax.set_xlabel(r"step size $\gamma$ ($\sigma^2 = 0$)")
    ax.set_ylabel("steady-state error")
    ax.legend(fontsize="xx-small")
    ax = axes[1]
    pi = np.asarray(s["perron"]["pi"], float)
    ax.bar(np.arange(pi.size), pi, color="C1", label=r"Perron vector $\pi$ of A")
    ax.axhline(1 / pi.size, color="k", ls="--", label="uniform 1/n")
    ax.set_xlabel("node")
    ax.set_title("stationary weights (bias source)", fontsize="small")
    ax.legend(fontsize="xx-small")
    for ax, key in zip(axes[2:], dist):
        p = s[key]
        for metric, color in (("error", "C0"), ("consensus", "C1")):
            _band(ax, p["x"], p[f"{metric}_lo"], p[f"{metric}_hi"], p[f"{metric}_mean"],
                  p[f"{metric}_predicted"], metric, color)  # fmt: skip
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_title(key, fontsize="small")
        ax.legend(fontsize="xx-small")
    _caption(fig, result)


#: claim name -> its drawing
DRAWERS: dict[str, Callable[[Mapping[str, Any], Any], None]] = {
    "tracking_heterogeneity": _tracking_heterogeneity,
    "dsgd_topology_floor": _dsgd_topology_floor,
    "dsgd_transient": _dsgd_transient,
    "push_sum_directed": _push_sum_directed,
}
