"""``theorylab rate``: the calculator (predicted rates of every family, side by side, best knobs).

Every number comes from :mod:`theorylab.calculator` (the Python API), which calls the rate
functions of :mod:`theorylab.rates` and, on quadratics, the exact engine of
:mod:`theorylab.exact`; the best knobs minimise predicted wall-clock time to a target under the
alpha-beta model of :mod:`theorylab.cost` (:mod:`theorylab.knobs`).
"""

from __future__ import annotations

import math
import warnings

from theorylab.errors import TheorylabWarning
from theorylab.output import emit, format_table, format_value

HELP = (
    "predicted rate of an algorithm (terms, totals at several T, transient iterations, the "
    "exact curve on quadratics), several side by side (--compare), or the best knob (--best)"
)

#: calculator inputs given as plain floats / ints / strings on the command line
_FLOATS = ("L", "mu", "sigma2", "zeta2", "rho", "p", "radius", "gamma", "omega", "delta",
           "tau_avg", "tau_max", "kappa", "f_gap", "r0_sq", "G2", "B2", "c", "eta_g", "L_tilde",
           "G0")  # fmt: skip
_INTS = ("n", "degree", "topology_seed", "T", "tau", "f", "S", "d", "seed")
_STRS = ("topology", "weights", "compressor", "aggregator", "form")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_arguments(parser) -> None:
    from theorylab.calculator import INPUTS

    parser.add_argument(
        "algorithm", nargs="?", default=None,
        help="algorithm name (--list shows them all)",
    )  # fmt: skip
    parser.add_argument(
        "--compare", nargs="+", default=None, metavar="ALGORITHM",
        help="several algorithms side by side on the same inputs",
    )  # fmt: skip
    parser.add_argument("--list", action="store_true", help="list the algorithms and exit")
    g = parser.add_argument_group("inputs (one form for every algorithm)")
    for name in _FLOATS:
        g.add_argument(_flag(name), dest=name, type=float, default=None, help=INPUTS[name])
    for name in _INTS:
        g.add_argument(_flag(name), dest=name, type=int, default=None, help=INPUTS[name])
    for name in _STRS:
        g.add_argument(_flag(name), dest=name, default=None, help=INPUTS[name])
    g.add_argument(
        "--Ts", default=None,
        help="comma-separated evaluation points (default T/1000, T/100, T/10, T)",
    )  # fmt: skip
    g.add_argument(
        "--W", dest="W_file", default=None,
        help="mixing matrix from a .npy file (e.g. saved by theorylab weights --save)",
    )  # fmt: skip
    g.add_argument("--no-exact", action="store_true", help="skip the exact curve")
    k = parser.add_argument_group("the best knob (predicted wall-clock time to --target)")
    k.add_argument(
        "--best", choices=("step", "tau", "topology", "compressor"), default=None,
        help="the knob to choose",
    )  # fmt: skip
    k.add_argument("--target", type=float, default=None, help="target error EPS")
    k.add_argument("--alpha", type=float, default=None, help="latency per message, s")
    k.add_argument(
        "--calibrate", action="store_true",
        help="measure alpha and beta on the distributed executor (the calibrator the verify "
        "package registers) instead of --alpha/--beta",
    )  # fmt: skip
    k.add_argument("--beta", type=float, default=None, help="inverse bandwidth, s/byte")
    k.add_argument(
        "--compute-time", dest="compute_time", type=float, default=0.0,
        help="seconds of computation per iteration",
    )  # fmt: skip
    k.add_argument(
        "--nbytes", type=int, default=None, help="bytes of one model message (default 4 d)"
    )
    k.add_argument("--max-degree", dest="max_degree", type=int, default=None,
                   help="degree budget (--best topology)")  # fmt: skip
    k.add_argument("--bit-budget", dest="bit_budget", type=float, default=None,
                   help="bits per message budget (--best compressor)")  # fmt: skip
    k.add_argument("--taus", default=None, help="candidate periods, e.g. 1,2,4,8 (--best tau)")
    k.add_argument("--candidates", default=None,
                   help="';'-separated compressor specs (--best compressor)")  # fmt: skip
    k.add_argument("--T-max", dest="T_max", type=int, default=10**5,
                   help="largest iteration count searched (default 1e5)")  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _inputs(args) -> dict:
    out = {}
    for name in (*_FLOATS, *_INTS, *_STRS):
        v = getattr(args, name, None)
        if v is not None:
            out[name] = v
    out.pop("T", None)
    if getattr(args, "W_file", None) is not None:
        import numpy as np

        out["W"] = np.load(args.W_file, allow_pickle=False)
    return out


def _ints(text: str, what: str) -> list[int]:
    from theorylab.errors import TheorylabError

    try:
        vals = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise TheorylabError(f"{what} must be comma-separated integers, got {text!r}") from None
    if not vals:
        raise TheorylabError(f"{what} is empty")
    return vals


def run(args) -> int:
    from theorylab import calculator
    from theorylab.errors import TheorylabError

    if args.list:
        rows = [
            {"algorithm": a.name, "family": a.family, "function": a.function,
             "available": a.name in calculator.available(), "summary": a.summary}
            for a in calculator.ALGORITHMS.values()
        ]  # fmt: skip
        emit(rows, format_table(rows), args.json)
        return 0
    names = list(args.compare or [])
    if args.algorithm is not None:
        names.insert(0, args.algorithm)
    if not names:
        raise TheorylabError(
            "give an ALGORITHM (e.g. theorylab rate dsgd ...), --compare A B C, or --list"
        )
    if args.T is None:
        raise TheorylabError("give the horizon --T (iterations), e.g. --T 1000")
    inputs = _inputs(args)
    with warnings.catch_warnings():
        # the theorem's conditions that the inputs violate are printed with the result (and in
        # its JSON 'warnings'), not as Python warnings
        warnings.simplefilter("ignore", TheorylabWarning)
        return _run(args, names, inputs)


def _run(args, names, inputs) -> int:
    from theorylab import calculator

    if args.best is not None:
        return _run_best(args, names, inputs)
    Ts = _ints(args.Ts, "--Ts") if args.Ts else None
    if len(names) == 1:
        pred = calculator.predict(names[0], T=args.T, Ts=Ts, exact=not args.no_exact, **inputs)
        emit(pred, render(pred), args.json)
        return 0
    preds = [calculator.predict(nm, T=args.T, Ts=Ts, exact=False, **inputs) for nm in names]
    emit({"compare": preds}, render_compare(preds), args.json)
    return 0


# ---- rendering ----------------------------------------------------------------------------------
def _fmt_inputs(pred, skip=()) -> str:
    keep = ("n", "L", "mu", "sigma2", "zeta2", "rho", "gamma", "tau", "omega", "delta",
            "tau_avg", "tau_max", "f", "kappa", "f_gap", "r0_sq", "G2", "S",
            "compressor")  # fmt: skip
    parts = [
        f"{k}={format_value(pred.inputs[k])}"
        for k in keep
        if pred.inputs.get(k) is not None and k not in skip
    ]
    return " ".join(parts)


def render(pred) -> str:
    r = pred.rate
    lines = [
        f"{pred.algorithm} ({pred.family}): {pred.function}",
        f"  bounds   {r.quantity}",
        f"  kind     {r.kind}{' (big-O: constants set to 1)' if r.big_o else ''}",
        f"  source   {r.source}",
        f"  inputs   {_fmt_inputs(pred)}",
    ]
    for k, src in pred.sources.items():
        lines.append(f"           {k}: {src}")
    if r.step_size_condition:
        ok = {True: "met", False: "VIOLATED", None: "not checked"}[r.step_size_ok]
        lines.append(f"  step     {r.step_size_condition}  ({ok})")
    T = pred.inputs["T"]
    lines += ["", f"terms at T = {T}:"]
    rows = [{"term": k, "value": float(v)} for k, v in r.terms.items()]
    rows.append({"term": "total", "value": r.total})
    lines.append(format_table(rows))
    lines += ["", "totals:"]
    ex = pred.exact if pred.exact and "value" in pred.exact else None
    exact_at = dict(zip(ex["T"], ex["value"])) if ex else {}
    term_names = list(r.terms)
    rows = []
    for row in pred.curve:
        out = {"T": row["T"], **{k: row[k] for k in term_names}, "total": row["total"]}
        if ex:
            e = exact_at.get(row["T"])
            out["exact"] = e
            out["bound/exact"] = row["total"] / e if e and math.isfinite(row["total"]) else None
        rows.append(out)
    if pred.steady_state is not None or (ex and math.isfinite(ex["steady_state"])):
        out = {"T": "inf", "total": pred.steady_state}
        if ex:
            out["exact"] = ex["steady_state"]
            s, e = pred.steady_state, ex["steady_state"]
            out["bound/exact"] = s / e if s is not None and e and math.isfinite(s) else None
        rows.append(out)
    lines.append(
        format_table(rows, ["T", *term_names, "total", *(["exact", "bound/exact"] if ex else [])])
    )
    if ex:
        lines.append(f"exact: {ex['predictor']}, {ex['quantity']} on {ex['problem']}")
        if ex.get("W"):
            lines.append(f"       W: {ex['W']}")
    elif pred.exact and "note" in pred.exact:
        lines.append(f"exact: not shown ({pred.exact['note']})")
    t = pred.transient
    if t is not None:
        if t.get("value") is None:
            lines.append(f"transient iterations: {t.get('note', 'undefined')}")
        else:
            line = f"transient iterations: {format_value(t['value'])}"
            if t.get("scaling"):
                line += f" (O({t['scaling']}){', big-O' if t.get('big_o') else ''})"
            if t.get("note"):
                line += f" ({t['note']})"
            if t.get("crossing") is not None:
                line += (
                    f"; numerical crossing with PSGD (within 10%): {format_value(t['crossing'])}"
                )
            lines.append(line)
    for w in pred.warnings:
        lines.append(f"warning: {w}")
    for nt in pred.notes:
        lines.append(f"note: {nt}")
    return "\n".join(lines)


def render_compare(preds) -> str:
    Ts = sorted({row["T"] for p in preds for row in p.curve})
    rows = []
    for p in preds:
        at = {row["T"]: row["total"] for row in p.curve}
        row = {"algorithm": p.algorithm, "kind": p.rate.kind, "big_o": p.rate.big_o,
               "rho": p.inputs.get("rho"), "gamma": p.inputs.get("gamma"),
               "step_ok": p.rate.step_size_ok}  # fmt: skip
        for t in Ts:
            row[f"T={t}"] = at.get(t)
        row["steady"] = p.steady_state
        row["transient"] = (p.transient or {}).get("value")
        rows.append(row)
    cols = ["algorithm", "kind", "big_o", "rho", "gamma", "step_ok", *[f"T={t}" for t in Ts],
            "steady", "transient"]  # fmt: skip
    merged = {}
    for p in preds:
        merged.update({k: v for k, v in p.inputs.items() if v is not None})
    common = _fmt_inputs(type("_Inputs", (), {"inputs": merged})(), skip=("rho", "gamma"))
    lines = [f"totals of the bounds (inputs: {common})", format_table(rows, cols)]
    for p in preds:
        lines.append(f"{p.algorithm}: {p.rate.quantity}; {p.rate.source}")
        for w in p.warnings:
            lines.append(f"  warning: {w}")
    return "\n".join(lines)


def _run_best(args, names, inputs) -> int:
    from theorylab import knobs
    from theorylab.errors import TheorylabError

    if len(names) != 1:
        raise TheorylabError("--best chooses a knob of one algorithm; drop --compare")
    if args.target is None:
        raise TheorylabError("--best needs the target error --target EPS")
    calibration = None
    if args.calibrate:
        from theorylab.commands import registry

        calibration = registry.calibrator()()  # verify's ping-pong, when verify is installed
        args.alpha, args.beta = calibration.alpha, calibration.beta
    model = knobs.comm_model(
        alpha=args.alpha, beta=args.beta, nbytes=args.nbytes, compute_s=args.compute_time,
        d=inputs.get("d", 4),
    )  # fmt: skip
    common = dict(target=args.target, model=model, T_max=args.T_max)
    if args.best == "step":
        choice = knobs.best_step(names[0], **common, **inputs)
    elif args.best == "tau":
        taus = _ints(args.taus, "--taus") if args.taus else None
        choice = knobs.best_tau(names[0], taus=taus, **common, **inputs)
    elif args.best == "topology":
        if args.max_degree is None:
            raise TheorylabError("--best topology needs the degree budget --max-degree K")
        choice = knobs.best_topology(names[0], max_degree=args.max_degree, **common, **inputs)
    else:
        cands = [c for c in (args.candidates or "").split(";") if c.strip()] or None
        choice = knobs.best_compressor(
            names[0], bit_budget=args.bit_budget, candidates=cands, **common, **inputs
        )
    text = knobs.render(choice)
    result = choice
    if calibration is not None:
        text = (
            f"calibrated on the distributed executor: alpha = {calibration.alpha:.3g} s, "
            f"beta = {calibration.beta:.3g} s/B, R^2 = {calibration.r2:.3f}\n" + text
        )
        result = {**choice.to_dict(), "calibration": calibration.to_dict()}
    emit(result, text, args.json)
    return 0
