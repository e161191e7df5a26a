"""Aggregator benchmark: every rule and pre-aggregator at n = 50, d = 10^6, against ByzFL.

Input: n - f honest Gaussian vectors (mean 1, unit variance per coordinate) and f ALIE vectors
(z = 1.5, ByzFL's default), float32, seed 0; f = 10 (MDA: f = 2, since exact enumeration of
C(50, 10) ~ 1e10 subsets is out of reach for both implementations). Each entry is timed as the
median of ``--repeats`` calls after one warm-up; ByzFL (``byzfl`` 0.0.11, a benchmark-only
optional dependency loaded without its top-level package import, which pulls in torchvision)
runs on the same tensor. Columns: our time, ByzFL's time, ratio ours/ByzFL (target <= 1), and
agreement ``max|ours - byzfl| / max|ours|`` where the definitions coincide (else the reason).

Geometric median: ours runs smoothed Weiszfeld to a relative objective tolerance ``tol = 1e-6``
(``--gm-tol``) from the mean; ByzFL runs its fixed T = 3 iterations from 0 with nu = 0.1 (a
different estimator): the table reports each one's objective ``sum_i ||z - x_i||`` relative to
ours (ByzFL's excess), not an agreement.

Usage: ``python benchmarks/aggregators.py [--quick] [--device cuda] [--repeats 3]``
(``--quick``: d = 10^5).
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import sys
import time
import types
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from theorylab import aggregators as A  # noqa: E402
from theorylab.commands._output import format_table  # noqa: E402

COLS = ["aggregator", "ours s", "byzfl s", "ours/byzfl", "agreement"]


def _load_byzfl():
    """Import byzfl.aggregators without running byzfl/__init__ (torchvision, matplotlib)."""
    try:
        spec = importlib.util.find_spec("byzfl")
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        return None
    if "byzfl" not in sys.modules:
        pkg = types.ModuleType("byzfl")
        pkg.__path__ = list(spec.submodule_search_locations)
        sys.modules["byzfl"] = pkg
    try:
        return importlib.import_module("byzfl.aggregators")
    except Exception as exc:  # noqa: BLE001 - optional dependency, report and continue
        print(f"byzfl present but not importable ({exc!r}); timing ours only")
        return None


def _sync(device):
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _time(fn, repeats, device, setup=None):
    args = setup() if setup else ()
    fn(*args)
    _sync(device)
    ts = []
    out = None
    for _ in range(repeats):
        args = setup() if setup else ()
        _sync(device)
        t = time.perf_counter()
        out = fn(*args)
        _sync(device)
        ts.append(time.perf_counter() - t)
    return statistics.median(ts), out


def _agree(a, b):
    a = a.to(torch.float64)
    b = torch.as_tensor(b).to(a.device, torch.float64)
    return float((a - b).abs().max() / a.abs().max().clamp_min(1e-30))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--device", default="cpu")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--n", type=int, default=50)
    p.add_argument("--f", type=int, default=10)
    p.add_argument("--gm-tol", type=float, default=1e-6)
    a = p.parse_args(argv)
    d = 10**5 if a.quick else 10**6
    n, f, dev = a.n, a.f, a.device
    g = torch.Generator().manual_seed(0)
    honest = torch.randn(n - f, d, generator=g) + 1.0
    byz = (honest.mean(0) + 1.5 * honest.std(0)).expand(f, d)
    x = torch.cat([honest, byz]).to(dev)
    x_mda = x[: n - f + 2]  # not used; MDA runs on x with f = 2
    del x_mda
    bz = _load_byzfl()
    if bz is None:
        print("byzfl not installed: timing theorylab only (pip install byzfl for the comparison)")
    f_mda = 2
    zeros = torch.zeros(d, device=dev)

    def gm_obj(z):
        return float(torch.linalg.vector_norm(x - z, dim=-1).sum())

    rows = []
    # (label, ours, byzfl factory, comparison: 'agree' | 'gm' | reason string, clones input)
    entries = [
        ("mean", lambda: A.mean(x, f), lambda: bz.Average(), "agree", False),
        ("cw-median", lambda: A.coordinate_median(x, f), lambda: bz.Median(), "agree", False),
        ("trimmed-mean", lambda: A.trimmed_mean(x, f), lambda: bz.TrMean(f=f), "agree", False),
        (
            f"geometric-median (tol={a.gm_tol:g})",
            lambda: A.geometric_median(x, f, tol=a.gm_tol, max_iter=1000, return_info=True),
            lambda: bz.GeometricMedian(nu=0.1, T=3),
            "gm",
            False,
        ),
        ("krum", lambda: A.krum(x, f), lambda: bz.Krum(f=f), "agree", False),
        (
            "multi-krum (m=n-f)",
            lambda: A.multi_krum(x, f),
            lambda: bz.MultiKrum(f=f),
            "agree",
            False,
        ),
        (
            "centered-clipping (v0=0, tau=100, 1 it)",
            lambda: A.centered_clipping(x, f, tau=100.0, n_iter=1, center=zeros),
            lambda: bz.CenteredClipping(tau=100.0, L=1),
            "agree",
            False,
        ),
        (
            f"mda (f={f_mda})",
            lambda: A.minimum_diameter_average(x, f_mda),
            lambda: bz.MDA(f=f_mda),
            "agree",
            False,
        ),
        (
            "monna (idx=0)",
            lambda: A.monna(x, f, idx=0),
            lambda: bz.MoNNA(f=f, idx=0),
            "agree",
            False,
        ),
        ("pre: nnm", lambda: A.nnm(x, f), lambda: bz.NNM(f=f), "agree", False),
        (
            "pre: bucketing (s=2)",
            lambda: A.bucketing(x, f, s=2, generator=0),
            lambda: bz.Bucketing(s=2),
            "random permutations differ",
            False,
        ),
        ("pre: arc", lambda: A.arc(x, f), lambda: bz.ARC(f=f), "agree", True),
        (
            "pre: clip (c=2)",
            lambda: A.static_clipping(x, f, c=2.0),
            lambda: bz.Clipping(c=2.0),
            "agree",
            True,
        ),
        ("nnm+trimmed-mean", lambda: A.get_aggregator("nnm+trimmed-mean")(x, f), None, "", False),
        ("nnm+cw-median", lambda: A.get_aggregator("nnm+cw-median")(x, f), None, "", False),
    ]
    for label, ours, theirs, cmp, clones in entries:
        reps = 1 if label.startswith("mda") else a.repeats
        t_ours, out = _time(ours, reps, dev)
        extra = ""
        if isinstance(out, A.GeometricMedianResult):
            extra = f" [{out.iterations} it, converged={bool(out.converged)}]"
            out = out.z
        t_b = ratio = agree = ""
        if bz is not None and theirs is not None:
            try:
                obj = theirs()
                # ByzFL's Clipping/ARC write the clipped rows back into their argument
                setup = (lambda: (x.clone(),)) if clones else (lambda: (x,))
                tb, ob = _time(obj, reps, dev, setup=setup)
                if cmp != "random permutations differ":
                    ob = theirs()(x.clone())  # a fresh instance: ByzFL's CC keeps state
                t_b = f"{tb:.3f}"
                ratio = f"{t_ours / tb:.2f}"
                if cmp == "agree":
                    agree = f"{_agree(out, ob):.1e}"
                elif cmp == "gm":
                    go, gb = gm_obj(out), gm_obj(torch.as_tensor(ob).to(x))
                    agree = f"objective (byzfl - ours)/ours = {(gb - go) / go:+.1e}"
                else:
                    agree = cmp
            except Exception as exc:  # noqa: BLE001 - report a failing reference, continue
                t_b, agree = "error", repr(exc)[:60]
        rows.append(
            dict(zip(COLS, [label + extra, f"{t_ours:.3f}", t_b, ratio, agree], strict=True))
        )
    print(
        f"n={n}, d={d}, f={f}, float32, device={dev}, torch {torch.__version__}, "
        f"threads={torch.get_num_threads()}, median of {a.repeats} (MDA: 1)"
    )
    print(format_table(rows, COLS))


if __name__ == "__main__":
    main()
