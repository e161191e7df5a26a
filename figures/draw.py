"""Draw a claim's figure from its saved result (a JSON dict), without importing any claim.

Every figure shows the prediction and the measurement on the same axes, labelled, with log
scales where the values span decades, confidence bands where the claim has them, and a caption
line (n, gamma, R, topology) from the result's ``series['caption']``. :func:`draw` picks the
drawing by the result's ``claim`` name (:data:`DRAWERS`) and falls back to :func:`generic` for a
claim it does not know. Everything is read from the dict: a figure can be redrawn from the JSON
file alone (``python -m figures.plot RESULTS``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

__all__ = ["draw", "generic", "DRAWERS"]

_FLOOR = 1e-300


def _pos(values, floor: float = _FLOOR) -> np.ndarray:
    """Values clipped below at ``floor`` for a log axis (exact zeros of round-off)."""
    return np.maximum(np.asarray(values, dtype=float), floor)


def _caption(fig, result: Mapping[str, Any], caption: str | None = None) -> None:
    series = result.get("series") or {}
    caption = caption or series.get("caption") or ""
    if not caption:
        for v in series.values():
            if isinstance(v, dict) and v.get("caption"):
                caption = v["caption"]
                break
    verdict = result.get("verdict", "")
    title = f"{result.get('claim', '?')} ({result.get('kind', '?')}): {verdict}"
    if caption:
        fig.suptitle(f"{title}\n{caption}", fontsize="medium")
    else:
        fig.suptitle(title)


def _panels(series: Mapping[str, Any]) -> dict[str, dict]:
    return {k: v for k, v in series.items() if isinstance(v, dict) and "x" in v}


def _band(ax, x, lo, hi, mean, exact, label: str, color: str) -> None:
    ax.fill_between(x, _pos(lo), _pos(hi), color=color, alpha=0.25, lw=0,
                    label=f"{label}: 99% band (measured)")  # fmt: skip
    ax.plot(x, _pos(mean), "o", ms=3, color=color, label=f"{label}: measured mean")
    ax.plot(x, _pos(exact), "-", color=color, lw=1, label=f"{label}: predicted (exact)")


def _axes(fig, count: int):
    return fig.subplots(1, max(1, count), squeeze=False)[0]


def _gossip_decay(result, fig) -> None:
    panels = _panels(result["series"])
    for ax, (name, s) in zip(_axes(fig, len(panels)), panels.items()):
        floor = max(1e-33, 1e-30 * s["exact"][0])
        ax.semilogy(s["x"], _pos(s["exact"], floor), "-", label="predicted (exact_gossip)")
        ax.semilogy(s["x"], _pos(s["measured"], floor), "o", ms=3, label="measured")
        ax.semilogy(s["x"], _pos(s["rho^(2k) Xi_0"], floor), "--", label=r"$\rho^{2k}\Xi_0$")
        ax.set_title(f"{name} (rho={s['rho']:.3g})", fontsize="small")
        ax.set_xlabel("round k")
    fig.axes[0].set_ylabel(r"consensus distance $\Xi_k$")
    fig.axes[0].legend(fontsize="x-small")
    _caption(fig, result)


def _dsgd_exact_curve(result, fig) -> None:
    panels = _panels(result["series"])
    for ax, (name, s) in zip(_axes(fig, len(panels)), panels.items()):
        for metric, color in (("error", "C0"), ("consensus", "C1")):
            if f"{metric}_lo" in s:
                _band(ax, s["x"], s[f"{metric}_lo"], s[f"{metric}_hi"], s[f"{metric}_mean"],
                      s[f"{metric}_exact"], metric, color)  # fmt: skip
            else:  # the stationary noise-term run: mean over replicas at each step
                ax.plot(s["x"], _pos(s[f"{metric}_mean"]), ".", ms=2, color=color,
                        label=f"{metric}: measured mean")  # fmt: skip
                ax.plot(s["x"], _pos(s[f"{metric}_exact"]), "-", color=color, lw=1,
                        label=f"{metric}: predicted (exact)")  # fmt: skip
        ax.set_yscale("log")
        ax.set_title(name, fontsize="small")
        ax.set_xlabel("step")
    fig.axes[0].set_ylabel("(1/n) sum_i E||x_i - x*||^2, consensus")
    fig.axes[0].legend(fontsize="x-small")
    _caption(fig, result)


def _executors_agree(result, fig) -> None:
    panels = _panels(result["series"])
    tol = (result.get("config") or {}).get("tolerance", 1e-10)
    for ax, (name, s) in zip(_axes(fig, len(panels)), panels.items()):
        for key, v in s.items():
            if key != "x" and isinstance(v, list):
                ax.semilogy(s["x"], _pos(v, 1e-20), label=f"measured {key}")
        ax.axhline(tol, color="k", ls="--", label="tolerance (prediction: 0)")
        ax.set_title(name, fontsize="small")
        ax.set_xlabel("step")
    fig.axes[0].set_ylabel("|distributed - simulated| (1e-20 = exactly 0)")
    fig.axes[0].legend(fontsize="x-small")
    _caption(fig, result)


def _psgd_floor_shape(result, fig) -> None:
    s, cfg = result["series"], result.get("config") or {}
    grid = np.array(s["grid"], dtype=float)
    m, lo, hi, ex = (np.array(s[k], dtype=float) for k in ("measured", "measured_lo",
                                                            "measured_hi", "exact"))  # fmt: skip
    axes = _axes(fig, 2)
    for ax, col, fixed_col, fixed, label, j in (
        (axes[0], 0, 1, cfg.get("gamma_fixed"), "n", 0),
        (axes[1], 1, 0, cfg.get("n_fixed"), "gamma", 1),
    ):
        sel = np.isclose(grid[:, fixed_col], fixed)
        order = np.argsort(grid[sel, col])
        x = grid[sel, col][order]
        ax.loglog(x, ex[sel][order], "-", label=f"predicted (exact; slope "
                  f"{s['exact_slopes'][j]:+.3f})")  # fmt: skip
        ax.errorbar(x, m[sel][order], yerr=[m[sel][order] - lo[sel][order],
                    hi[sel][order] - m[sel][order]], fmt="o", ms=4,
                    label=f"measured, 3 s.e. (slope {s['fitted_slopes'][j]:+.3f})")  # fmt: skip
        ax.set_xlabel(label)
        ax.set_title(f"floor vs {label} ({'gamma' if j == 0 else 'n'} = {fixed})",
                     fontsize="small")  # fmt: skip
        ax.legend(fontsize="x-small")
    axes[0].set_ylabel("E||x - x*||^2 (window average)")
    _caption(fig, result)


def _dsgd_bound(result, fig) -> None:
    s = result["series"]
    ax, bx = _axes(fig, 2)
    ax.semilogy(s["x"], s["bound"], "-", label="bound (rates.dsgd_bound_curve)")
    ax.semilogy(s["x"], s["measured mean"], "o", ms=3, label="measured mean")
    ax.semilogy(s["x"], s["upper confidence limit"], ":", label="upper 99% limit")
    ax.set_xlabel("step")
    ax.set_ylabel("(1/n) sum_i E||x_i - x*||^2")
    ax.set_title("whole bound vs measured curve", fontsize="small")
    ax.legend(fontsize="x-small")
    t = s.get("terms")
    if t:
        pos = np.arange(len(t["names"]))
        bx.bar(pos - 0.2, t["bound"], 0.4, label="bound term (steady state)")
        bx.bar(pos + 0.2, t["measured"], 0.4, label="isolating run (measured)")
        for i, (b, m) in enumerate(zip(t["bound"], t["measured"])):
            bx.text(i, max(b, m), f"{b / m:.3g}x", ha="center", va="bottom", fontsize="small")
        bx.set_yscale("log")
        bx.set_xticks(pos, t["names"])
        bx.set_ylabel("steady-state error")
        bx.set_title("each term vs the run where it alone acts", fontsize="small")
        bx.legend(fontsize="x-small")
    _caption(fig, result)


def _compressor_constants(result, fig) -> None:
    s = result["series"]["constants"]
    names = list(s["names"])
    pos = np.arange(len(names))
    dec, mea = np.array(s["declared"], float), np.array(s["measured"], float)
    half = np.array(s.get("half", [0.0] * len(names)), float)
    ax = _axes(fig, 1)[0]
    ax.bar(pos - 0.2, _pos(dec, 1e-8), 0.4, label="declared omega or 1 - delta (prediction)")
    ax.bar(pos + 0.2, _pos(mea, 1e-8), 0.4, yerr=half, capsize=2,
           label="measured at the worst-case input (interval)")  # fmt: skip
    labels = [f"{n}\nd={d}{'' if t else ' (bound)'}"
              for n, d, t in zip(names, s.get("d", [""] * len(names)),
                                 s.get("tight", [True] * len(names)))]  # fmt: skip
    ax.set_xticks(pos, labels, rotation=60, ha="right", fontsize="x-small")
    ax.set_yscale("log")
    ax.set_ylabel("E||C(x) - x||^2 / ||x||^2")
    ax.legend(fontsize="x-small")
    _caption(fig, result)


def _compressed_psgd_floor(result, fig) -> None:
    series = result["series"]
    curves = {k: v for k, v in _panels(series).items() if k != "floor"}
    axes = _axes(fig, 3)
    for i, (name, s) in enumerate(curves.items()):
        ax = axes[1] if "sigma2=0" in name else axes[0]
        color = f"C{i}"
        if "lo" in s:
            _band(ax, s["x"], s["lo"], s["hi"], s["measured"], s["exact"], name, color)
        if "omega=0" in s:
            ax.plot(s["x"], _pos(s["omega=0"]), ":", color="k", lw=1, label="omega = 0")
    for ax, title in ((axes[0], "error curves (sigma2 = 1)"),
                      (axes[1], "compression term alone (sigma2 = 0)")):  # fmt: skip
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_title(title, fontsize="small")
        if ax.get_legend_handles_labels()[0]:  # a panel with nothing drawn has no legend
            ax.legend(fontsize="xx-small")
    axes[0].set_ylabel("E||x - x*||^2")
    fl = series.get("floor")
    if fl:
        axes[2].loglog(fl["x"], fl["exact"], "s-", label="predicted floor (exact)")
        pts = [(x, m) for x, m in zip(fl["x"], fl["measured"]) if m is not None]
        if pts:
            axes[2].loglog(*zip(*pts), "o", label="measured floor (x0 = x*)")
        axes[2].set_xlabel("1 + omega = d/k")
        axes[2].set_title("floor vs 1 + omega", fontsize="small")
        axes[2].legend(fontsize="x-small")
    _caption(fig, result)


def _ef_virtual_iterate(result, fig) -> None:
    series = result["series"]
    panels = _panels(series)
    ax = _axes(fig, 1)[0]
    for name, s in panels.items():
        ax.semilogy(s["x"], _pos(s["relative violation"], 1e-20), "o-", ms=2,
                    label=f"{name}: measured")  # fmt: skip
    tol = series.get("tolerance", 1e-12)
    ax.axhline(tol, color="k", ls="--", label="tolerance (prediction: 0)")
    ax.set_xlabel("step")
    ax.set_ylabel("|x~+ - (x~ - gamma mean g)| / max|x~| (1e-20 = 0)")
    ax.legend(fontsize="x-small")
    _caption(fig, result)


def _choco_consensus_rate(result, fig) -> None:
    series = result["series"]
    panels = {k: v for k, v in _panels(series).items() if k != "rate"}
    ax, bx = _axes(fig, 2)
    for i, (name, s) in enumerate(panels.items()):
        ax.semilogy(s["x"], _pos(s["consensus"]), "-", color=f"C{i}",
                    label=f"{name} (delta={s.get('delta', 0):.3g}): measured")  # fmt: skip
        if "fit" in s:
            ax.semilogy(s["x"], _pos(s["fit"]), ":", color=f"C{i}", lw=1)
    ax.set_xlabel("round")
    ax.set_ylabel("consensus distance (dotted: linear fit)")
    ax.legend(fontsize="xx-small")
    r = series.get("rate")
    if r:
        d = np.array(r["x"], float)
        bx.loglog(d, r["rate"], "o", label="measured rate -log r")
        if "intercept" in r:
            bx.loglog(d, np.exp(r["intercept"]) * d ** 1.0, "-",
                      label="predicted: proportional to delta^1")  # fmt: skip
            lo, hi = r["interval"]
            bx.set_title(f"fitted exponent {r['slope']:+.3f} [{lo:+.3f}, {hi:+.3f}]",
                         fontsize="small")  # fmt: skip
        bx.set_xlabel("delta = k/d")
        bx.set_ylabel("per-round rate")
        bx.legend(fontsize="x-small")
    _caption(fig, result)


def _compressed_bytes(result, fig) -> None:
    s = result["series"]["bytes"]
    pos = np.arange(len(s["labels"]))
    ax, bx = _axes(fig, 2)
    ax.bar(pos - 0.25, s["declared"], 0.25, label="declared (prediction)")
    ax.bar(pos, s["distributed"], 0.25, label="measured, distributed")
    ax.bar(pos + 0.25, s["simulated"], 0.25, label="measured, simulated")
    ax.set_xticks(pos, s["labels"], rotation=30, ha="right", fontsize="x-small")
    ax.set_yscale("log")
    ax.set_ylabel("bytes sent in the run")
    ax.legend(fontsize="x-small")
    bx.bar(pos, _pos(s["relative difference"], 1e-20), 0.4, label="measured |dist - sim|/max")
    bx.scatter(pos, s["tolerance"], marker="_", s=400, color="k",
               label="round-off tolerance (prediction: 0)")  # fmt: skip
    bx.set_xticks(pos, s["labels"], rotation=30, ha="right", fontsize="x-small")
    bx.set_yscale("log")
    bx.legend(fontsize="x-small")
    _caption(fig, result)


def _optimal_weights_speedup(result, fig) -> None:
    series = result["series"]
    ax, bx = _axes(fig, 2)
    g = series.get("gossip", {})
    for i, key in enumerate(("metropolis", "optimal")):
        if f"{key} exact" in g:
            ax.semilogy(g["x"], _pos(g[f"{key} exact"]), "-", color=f"C{i}",
                        label=f"{key}: predicted (exact)")  # fmt: skip
            ax.semilogy(g["x"], _pos(g[f"{key} measured"]), "o", ms=2, color=f"C{i}",
                        label=f"{key}: measured")  # fmt: skip
    ax.set_xlabel("round")
    ax.set_ylabel("gossip consensus distance")
    ax.legend(fontsize="x-small")
    d = series.get("dsgd", {})
    for i, key in enumerate(("metropolis", "optimal")):
        if f"{key} consensus lo" in d:
            _band(
                bx,
                d["x"],
                d[f"{key} consensus lo"],
                d[f"{key} consensus hi"],
                d[f"{key} consensus mean"],
                d[f"{key} consensus exact"],
                key,
                f"C{i}",
            )
    bx.set_yscale("log")
    bx.set_xlabel("step")
    bx.set_ylabel("DSGD consensus distance")
    bx.legend(fontsize="xx-small")
    _caption(fig, result)


def _one_peer_exact_average(result, fig) -> None:
    panels = _panels(result["series"])
    ax = _axes(fig, 1)[0]
    for i, (name, s) in enumerate(panels.items()):
        ax.semilogy(s["x"], _pos(s["exact"], 1e-40), "-", color=f"C{i}", lw=1)
        ax.semilogy(s["x"], _pos(s["measured"], 1e-40), "o", ms=3, color=f"C{i}",
                    label=f"{name}: measured (line: exact)")  # fmt: skip
    ax.axhline(1e-24, color="k", ls="--", lw=0.8, label="exact-average threshold 1e-24")
    ax.set_xlabel("round k (exact at k = log2 n)")
    ax.set_ylabel(r"$\Xi_k / \Xi_0$ (1e-40 = 0)")
    ax.legend(fontsize="xx-small")
    _caption(fig, result)


def _psgd_dsgd_speedup(result, fig) -> None:
    from figures.lecture import fig_speedup

    fig_speedup({"psgd_dsgd_speedup": result}, fig)


def generic(result: Mapping[str, Any], fig) -> None:
    """Every numeric list of each panel of ``series`` against the panel's ``x`` (log y when all
    values are positive); for a claim :data:`DRAWERS` does not know."""
    series = result.get("series") or {}
    panels = {k: v for k, v in series.items() if isinstance(v, dict)} or {"": series}
    for ax, (title, panel) in zip(_axes(fig, len(panels)), panels.items()):
        x = panel.get("x")
        values = []
        for label, ys in panel.items():
            if label == "x" or not isinstance(ys, list) or not ys:
                continue
            if not all(isinstance(v, (int, float)) for v in ys):
                continue
            xs = x if isinstance(x, list) and len(x) == len(ys) else list(range(len(ys)))
            ax.plot(xs, ys, label=str(label))
            values += ys
        if values and all(v > 0 for v in values):
            ax.set_yscale("log")
        ax.set_title(str(title), fontsize="small")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="x-small")
    _caption(fig, result)


def _own_model_bound(result, fig) -> None:
    s = result["series"]
    T = s["T"]
    ax, bx = _axes(fig, 2)
    ax.loglog(T, _pos(s["bound"]), "-", label="bound, estimated constants (rates.psgd)")
    ax.loglog(T, _pos(s["optimization term"]), "--", lw=1, label="its optimization term")
    ax.loglog(T, _pos(s["noise term"]), ":", lw=1, label="its noise term")
    ax.loglog(T, _pos(s["measured mean"]), "o", ms=4, label="measured mean (PSGD, minibatch)")
    ax.loglog(T, _pos(s["upper confidence limit"]), "v", ms=3, label="upper 99% limit")
    ax.loglog(T, _pos(s["full-batch run"]), "s", ms=3, label="full-batch run (sigma2 = 0)")
    ax.set_xlabel("T (steps)")
    ax.set_ylabel("(1/T) sum_{t<T} ||grad f(x_t)||^2")
    ax.set_title("non-convex bound vs measured", fontsize="small")
    ax.legend(fontsize="x-small")
    est = s.get("estimates") or {}
    names = [k for k in ("L", "sigma2", "delta", "zeta2") if k in est]
    pos = np.arange(len(names))
    vals = np.array([est[k] for k in names], dtype=float)
    bx.bar(pos, vals[:, 2] - vals[:, 1], 0.5, bottom=vals[:, 1], alpha=0.4,
           label="confidence interval (estimate)")  # fmt: skip
    bx.plot(pos, vals[:, 0], "o", label="point estimate")
    if "L dense" in s and "L" in names:
        bx.plot([names.index("L")], [s["L dense"]], "x", ms=8, label="L from dense Hessians")
    bx.set_xticks(pos, names)
    bx.set_yscale("log")
    bx.set_title("estimated constants", fontsize="small")
    bx.legend(fontsize="x-small")
    _caption(fig, result)


def _own_model_speedup(result, fig) -> None:
    s = result["series"]
    labels = [k for k in ("PSGD", "DSGD") if isinstance(s.get(k), dict)]
    axes = _axes(fig, len(labels))
    for ax, label in zip(axes, labels):
        p = s[label]
        n = np.array(p["n"], dtype=float)
        m, lo, hi = (np.array(p[k], dtype=float) for k in ("measured", "lo", "hi"))
        c = float(np.exp(np.mean(np.log(_pos(m) * n))))
        ax.loglog(n, c / n, "-", label="predicted: c/n (noise term gamma L sigma2/n)")
        ax.errorbar(n, m, yerr=[m - lo, hi - m], fmt="o", ms=4,
                    label=f"measured, 99% CI (slope {p['slope']:+.3f} "
                    f"[{p['interval'][0]:+.3f}, {p['interval'][1]:+.3f}])")  # fmt: skip
        ax.set_xlabel("n (nodes)")
        ax.set_title(f"{label} ({p.get('graph', '')})", fontsize="small")
        ax.legend(fontsize="x-small")
    axes[0].set_ylabel("stationary E||grad f(xbar)||^2 - full-batch run's")
    _caption(fig, result)


def _own_model_topology(result, fig) -> None:
    s = result["series"]
    graphs = [k for k, v in s.items() if isinstance(v, dict) and "consensus" in v]
    ax, bx = _axes(fig, 2)
    for j, g in enumerate(graphs):
        p = s[g]
        color = f"C{j}"
        ax.loglog(
            p["x"],
            _pos(p["predicted"]),
            "-",
            color=color,
            label=f"{g}: predicted (first order, slope {p['predicted slope']:+.2f})",
        )
        ax.loglog(
            p["x"],
            _pos(p["consensus"]),
            "o",
            ms=4,
            color=color,
            label=f"{g}: measured (slope {p['measured slope']:+.2f})",
        )
        ratio = np.asarray(p["consensus"], dtype=float) / np.asarray(p["predicted"], dtype=float)
        bx.semilogx(p["x"], ratio, "o-", ms=4, color=color,
                    label=f"{g}: exponent {p['slope']:+.3f} [{p['interval'][0]:+.3f}, "
                    f"{p['interval'][1]:+.3f}]")  # fmt: skip
    ax.set_xlabel("rho/(1 - rho) (lazy (1 - lam) I + lam W)")
    ax.set_ylabel("consensus distance (1/n) sum_i ||x_i - xbar||^2")
    ax.set_title("DSGD consensus vs the ATC fixed-point prediction", fontsize="small")
    ax.legend(fontsize="x-small")
    bx.axhline(1.0, color="k", lw=0.8, label="predicted: ratio 1 (exponent 0)")
    bx.set_xlabel("rho/(1 - rho)")
    bx.set_ylabel("measured / predicted consensus")
    bx.set_title("the checked ratio (99% exponent intervals)", fontsize="small")
    bx.legend(fontsize="x-small")
    _caption(fig, result)


#: claim name -> its drawing
DRAWERS: dict[str, Callable[[Mapping[str, Any], Any], None]] = {
    "gossip_decay": _gossip_decay,
    "dsgd_exact_curve": _dsgd_exact_curve,
    "executors_agree": _executors_agree,
    "psgd_floor_shape": _psgd_floor_shape,
    "dsgd_bound": _dsgd_bound,
    "compressor_constants": _compressor_constants,
    "compressed_psgd_floor": _compressed_psgd_floor,
    "ef_virtual_iterate": _ef_virtual_iterate,
    "choco_consensus_rate": _choco_consensus_rate,
    "compressed_bytes": _compressed_bytes,
    "optimal_weights_speedup": _optimal_weights_speedup,
    "one_peer_exact_average": _one_peer_exact_average,
    "own_model_bound": _own_model_bound,
    "own_model_speedup": _own_model_speedup,
    "own_model_topology": _own_model_topology,
    "psgd_dsgd_speedup": _psgd_dsgd_speedup,
}


def draw(result: Mapping[str, Any], fig) -> None:
    """Draw the saved ``result`` (a dict as written by ``theorylab verify``) on ``fig``.

    A drawing that fails on an unexpected result (an older version's series) falls back to
    :func:`generic` on a cleared figure.
    """
    from matplotlib.ticker import NullFormatter

    drawer = DRAWERS.get(str(result.get("claim")), generic)
    try:
        drawer(result, fig)
    except (KeyError, TypeError, ValueError, IndexError):
        if drawer is generic:
            raise
        fig.clear()
        generic(result, fig)
    for ax in fig.axes:  # minor tick labels of short log axes overlap the major ones
        if ax.get_xscale() == "log":
            ax.xaxis.set_minor_formatter(NullFormatter())


# -- lazy communication (issue 9): its drawings live in figures/lazy.py ------------------------
from figures.lazy import DRAWERS as _LAZY_DRAWERS  # noqa: E402

DRAWERS.update(_LAZY_DRAWERS)

# == asynchronous family (issue 11): its drawings live in figures/draw_async.py ===============
from figures.draw_async import DRAWERS as _ASYNC_DRAWERS  # noqa: E402

DRAWERS.update(_ASYNC_DRAWERS)
# the tracking family's drawings (figures/tracking.py); imported last, it reads the helpers above
from figures.tracking import DRAWERS as _TRACKING_DRAWERS  # noqa: E402

DRAWERS.update(_TRACKING_DRAWERS)


# ---- Byzantine family (verify/claims/byzantine.py) ---------------------------------------------
def _byz_panels(series) -> dict:
    return {k: v for k, v in series.items() if isinstance(v, dict) and "x" in v}


def _byzantine_floor_vs_f(result, fig) -> None:
    panels = _byz_panels(result["series"])
    ax = _axes(fig, 1)[0]
    for i, (name, s) in enumerate(panels.items()):
        ax.loglog(s["x"], _pos(s["measured"]), "o", ms=5 - 0.5 * i, color=f"C{i}",
                  label=f"{name}: measured floor/zeta2")  # fmt: skip
        ax.loglog(s["x"], _pos(s["kappa"]), ":", color=f"C{i}", lw=1,
                  label=f"{name}: kappa_F bound")  # fmt: skip
    first = next(iter(panels.values()))
    ax.loglog(first["x"], first["lower"], "k-", lw=1.5, label="predicted: f/(n-2f) (lower bound)")
    ax.set_xticks(first["x"], [f"{v:.2g}" for v in first["x"]])
    ax.set_xlabel("f/n")
    ax.set_ylabel("floor ||grad f_H||^2 / zeta2 (deterministic, R = 1)")
    ax.legend(fontsize="xx-small", ncol=2)
    _caption(fig, result)


def _nnm_floor_order(result, fig) -> None:
    panels = _byz_panels(result["series"])
    axes = _axes(fig, len(panels))
    for ax, (name, s) in zip(axes, panels.items()):
        ax.loglog(s["x"], _pos(s["bare"]), "o", label=f"{name}: measured floor/zeta2")
        ax.loglog(s["x"], _pos(s["nnm"]), "s", label=f"nnm+{name}: measured floor/zeta2")
        ax.loglog(s["x"], _pos(s["kappa"]), ":", label=f"nnm+{name}: kappa bound 8f/(n-f)(k+1)")
        ax.loglog(s["x"], s["lower"], "k-", lw=1, label="f/(n-2f) (order predicted with NNM)")
        ax.axhline(1.0, color="grey", ls="--", lw=1, label="order 1 (predicted, bare rule)")
        ax.set_xlabel("f/n")
        ax.set_title(name, fontsize="small")
        ax.legend(fontsize="xx-small")
    axes[0].set_ylabel("floor ||grad f_H||^2 / zeta2")
    _caption(fig, result)


def _empirical_kappa_bound(result, fig) -> None:
    panels = _byz_panels(result["series"])
    ax = _axes(fig, 1)[0]
    for i, (name, s) in enumerate(panels.items()):
        ax.loglog(s["x"], _pos(s["measured"]), "o-", ms=4, lw=0.8, color=f"C{i}",
                  label=f"{name}: empirical kappa (search)")  # fmt: skip
        ax.loglog(s["x"], _pos(s["kappa"]), ":", color=f"C{i}", lw=1.2,
                  label=f"{name}: theoretical kappa")  # fmt: skip
    first = next(iter(panels.values()))
    ax.loglog(first["x"], first["lower"], "k-", lw=1.5, label="lower bound f/(n-2f)")
    ax.set_xticks(first["x"], [f"{v:.2g}" for v in first["x"]])
    ax.set_xlabel("f/n")
    ax.set_ylabel("kappa (robustness coefficient)")
    ax.legend(fontsize="xx-small", ncol=2)
    _caption(fig, result)


def _byzantine_attacks_floor(result, fig) -> None:
    series = result["series"]
    attacks = list(series.get("attacks", []))
    panels = {k: v for k, v in _byz_panels(series).items()}
    ax = _axes(fig, 1)[0]
    pos = np.arange(len(attacks))
    width = 0.8 / max(1, len(panels))
    for i, (name, s) in enumerate(panels.items()):
        vals = np.array([np.inf if v is None else v for v in s["measured"]], dtype=float)
        shown = np.where(np.isfinite(vals), vals, 1e12)
        at = pos + (i - (len(panels) - 1) / 2) * width
        ax.bar(at, _pos(shown, 1e-20), width,
               color=f"C{i}", label=f"{name}: measured ||grad f_H||^2 (mean of R)")  # fmt: skip
        if "upper" in s:  # the one-sided upper confidence limit the bound is compared with
            up = np.asarray(s["upper"], dtype=float)
            ax.errorbar(at, _pos(shown, 1e-20), yerr=[np.zeros_like(up),
                        np.maximum(_pos(up, 1e-20) - _pos(shown, 1e-20), 0)], fmt="none",
                        ecolor="k", capsize=2, lw=0.8)  # fmt: skip
        if "bound" in s:
            ax.axhline(s["bound"], color=f"C{i}", ls="--", lw=1,
                       label=f"{name}: predicted floor kappa zeta2 = {s['bound']:.3g}")  # fmt: skip
    ax.set_xticks(pos, attacks, rotation=30, ha="right", fontsize="x-small")
    ax.set_yscale("log")
    ax.set_ylim(1e-20, 1e13)
    ax.set_ylabel("honest ||grad f_H(x_K)||^2 (1e12 = diverged, 1e-20 = 0)")
    ax.legend(fontsize="xx-small")
    _caption(fig, result)


DRAWERS.update(
    {
        "byzantine_floor_vs_f": _byzantine_floor_vs_f,
        "nnm_floor_order": _nnm_floor_order,
        "empirical_kappa_bound": _empirical_kappa_bound,
        "byzantine_attacks_floor": _byzantine_attacks_floor,
    }
)
