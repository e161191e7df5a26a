"""Conformance kit for robust aggregators: hypothesis strategies and checks.

An aggregator is any callable ``F(x, f)`` on a stack ``x`` of shape (..., n, d) returning
(..., d) — e.g. :func:`theorylab.aggregators.get_aggregator` objects, or your own. Each check
raises :class:`AggregatorCheckError` (an ``AssertionError``) naming the input on failure. All
checks are deterministic (false-failure probability 0): they test exact properties up to a
floating-point slack of ``rtol`` (default ``1e-6`` relative, for float64 inputs).

Checks
------
- :func:`check_permutation_invariance`: ``F(P x) == F(x)`` for a permutation P of the rows.
- :func:`check_resilience`: the declared (f, kappa)-robustness on the given input, over every
  set S of n - f inputs (``theorylab.aggregators.robustness_ratio``; small n).
- :func:`check_bounded`: f Byzantine inputs sent far away (1e8 times the honest spread, random
  directions) move the output at most ``factor`` times the honest spread from the honest mean.
- :func:`check_nonfinite`: f messages of NaN, +inf, -inf or a mix neither raise nor reach the
  output (finite output), and the bound of :func:`check_bounded` still holds.
- :func:`check_batching`: a batch of replicas gives the per-replica outputs.
- :func:`check_aggregator`: all of the above that the declarations call for.

Example
-------
>>> import torch
>>> from theorylab.aggregators import get_aggregator
>>> x = torch.randn(7, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
>>> sorted(check_aggregator(get_aggregator("nnm+trimmed-mean"), x, 2))
['batching', 'bounded', 'nonfinite', 'permutation', 'resilience']
"""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import strategies as st

from theorylab.aggregators.kappa import robustness_ratio

__all__ = [
    "AggregatorCheckError",
    "stacks",
    "check_permutation_invariance",
    "check_resilience",
    "check_bounded",
    "check_nonfinite",
    "check_batching",
    "check_aggregator",
]

_KINDS = ("gaussian", "duplicates", "clusters", "mixed-scales", "outlier", "integers")


class AggregatorCheckError(AssertionError):
    """An aggregator does not satisfy a declared property on the given input."""


def _name(F) -> str:
    return getattr(F, "spec", None) or getattr(F, "__name__", None) or type(F).__name__


def _fail(F, what, x, f, detail):
    raise AggregatorCheckError(
        f"{_name(F)} fails {what} at n={x.shape[-2]}, d={x.shape[-1]}, f={f}: {detail}\n"
        f"x = {x.tolist()}"
    )


@st.composite
def stacks(draw, min_n: int = 3, max_n: int = 10, max_d: int = 5, kinds=_KINDS, max_f=None):
    """Hypothesis strategy for ``(x, f)``: a float64 stack (n, d) and a Byzantine count with
    ``0 <= 2f < n`` (at most ``max_f``).

    Kinds: ``gaussian``; ``duplicates`` (repeated rows, score ties); ``clusters`` (two tight
    groups); ``mixed-scales`` (rows spanning 1e-6..1e6); ``outlier`` (one row far away);
    ``integers`` (small integer coordinates: many exact ties). Data come from a drawn seed.
    """
    n = draw(st.integers(min_n, max_n))
    d = draw(st.integers(1, max_d))
    top = (n - 1) // 2 if max_f is None else min(max_f, (n - 1) // 2)
    f = draw(st.integers(0, top))
    kind = draw(st.sampled_from(kinds))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = rng.standard_normal((n, d))
    if kind == "duplicates":
        x = x[rng.integers(0, max(1, n // 2), n)]
    elif kind == "clusters":
        c = rng.standard_normal((2, d)) * 5
        x = c[rng.integers(0, 2, n)] + 0.01 * rng.standard_normal((n, d))
    elif kind == "mixed-scales":
        x = x * 10.0 ** rng.uniform(-6, 6, (n, 1))
    elif kind == "outlier":
        x[rng.integers(0, n)] *= 1e6
    elif kind == "integers":
        x = rng.integers(-3, 4, (n, d)).astype(float)
    return torch.from_numpy(x), f


def _call(F, x, f, seed=0):
    try:
        return F(x, f, generator=seed)
    except TypeError:
        return F(x, f)


def _close(a, b, x, rtol):
    scale = float(x.abs().max()) + 1e-300
    return bool(((a - b).abs() <= rtol * scale).all())


def check_permutation_invariance(F, x, f, *, seed: int = 0, rtol: float = 1e-6) -> dict:
    """``F(x[perm]) == F(x)`` for a seeded random permutation (inputs with ties in a rule's
    selection score, such as Krum's, may legitimately break this; use tie-free inputs)."""
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(x.shape[-2], generator=g)
    a = _call(F, x, f)
    b = _call(F, x[..., perm, :], f)
    if not _close(a, b, x, rtol):
        _fail(F, "permutation invariance", x, f, f"{a.tolist()} != {b.tolist()} (perm {perm})")
    return {"max_abs_diff": float((a - b).abs().max())}


def check_resilience(F, x, f, kappa: float, *, rtol: float = 1e-6) -> dict:
    """The declared (f, kappa)-robustness on ``x``: worst ratio over all S <= kappa (1 + rtol)."""
    y = _call(F, x, f)
    r = float(robustness_ratio(x.to(torch.float64), y.to(torch.float64), f))
    if not r <= kappa * (1 + rtol) + rtol:
        _fail(F, f"(f, kappa={kappa:.6g})-robustness", x, f, f"ratio {r:.6g} > kappa")
    return {"ratio": r, "kappa": kappa}


def _spread(h):
    mu = h.mean(dim=-2, keepdim=True)
    return mu.squeeze(-2), float(torch.linalg.vector_norm(h - mu, dim=-1).max())


def check_bounded(F, honest, f, *, factor: float = 10.0, seed: int = 0) -> dict:
    """f Byzantine inputs at 1e8 x the honest spread move ``F`` at most ``factor`` x spread
    (plus 1e-9 x the honest scale) from the honest mean."""
    if f == 0:
        return {"skipped": "f = 0"}
    g = torch.Generator().manual_seed(seed)
    mu, s = _spread(honest)
    s = max(s, 1e-12 * (float(honest.abs().max()) + 1.0))
    u = torch.randn(f, honest.shape[-1], generator=g, dtype=honest.dtype)
    byz = mu + 1e8 * s * u / torch.linalg.vector_norm(u, dim=-1, keepdim=True)
    x = torch.cat([honest, byz], dim=-2)
    y = _call(F, x, f)
    dev = float(torch.linalg.vector_norm(y - mu))
    if not dev <= factor * s + 1e-9 * (float(honest.abs().max()) + 1.0):
        _fail(F, "boundedness", x, f, f"||F - mean_H|| = {dev:.6g} > {factor} x spread {s:.6g}")
    return {"deviation": dev, "spread": s}


def check_nonfinite(F, honest, f, *, factor: float = 10.0) -> dict:
    """f NaN / +inf / -inf / mixed messages: no exception, finite output, bounded deviation."""
    if f == 0:
        return {"skipped": "f = 0"}
    mu, s = _spread(honest)
    s = max(s, 1e-12 * (float(honest.abs().max()) + 1.0))
    out = {}
    d = honest.shape[-1]
    mixed = torch.ones(f, d, dtype=honest.dtype)
    mixed[:, 0::3] = float("nan")
    mixed[:, 1::3] = float("inf")
    mixed[:, 2::3] = -float("inf")
    for kind, byz in (
        ("nan", torch.full((f, d), float("nan"), dtype=honest.dtype)),
        ("inf", torch.full((f, d), float("inf"), dtype=honest.dtype)),
        ("-inf", torch.full((f, d), -float("inf"), dtype=honest.dtype)),
        ("mixed", mixed),
    ):
        x = torch.cat([honest, byz], dim=-2)
        try:
            y = _call(F, x, f)
        except Exception as exc:  # noqa: BLE001 - any crash is the failure being checked
            _fail(F, f"non-finite messages ({kind})", x, f, f"raised {exc!r}")
        if not bool(torch.isfinite(y).all()):
            _fail(F, f"non-finite messages ({kind})", x, f, f"non-finite output {y.tolist()}")
        dev = float(torch.linalg.vector_norm(y - mu))
        if not dev <= factor * s + 1e-9 * (float(honest.abs().max()) + 1.0):
            _fail(F, f"non-finite messages ({kind})", x, f, f"deviation {dev:.6g} > {factor} x {s}")
        out[kind] = dev
    return out


def check_batching(F, x, f, *, replicas: int = 3, seed: int = 0, rtol: float = 1e-6) -> dict:
    """``F`` on a (replicas, n, d) batch equals ``F`` on each replica (replicas: x, -x, 2x+1...)."""
    xs = torch.stack([x * (1 + k) * (-1) ** k + k for k in range(replicas)])
    yb = _call(F, xs, f)
    for k in range(replicas):
        yk = _call(F, xs[k], f)
        if not _close(yb[k], yk, xs[k], rtol):
            _fail(F, "batching", xs[k], f, f"batched {yb[k].tolist()} != single {yk.tolist()}")
    return {"replicas": replicas}


def check_aggregator(
    F, x, f, *, kappa=None, permutation_invariant=None, randomized=None, robust=None, bounded=None
) -> dict:
    """Run every check the declarations call for and return the per-check reports.

    Declarations default to ``F``'s attributes (``kappa(n, f)``, ``permutation_invariant``,
    ``randomized``). ``robust`` (NaN-safe, and bounded unless ``bounded=False``) defaults to
    True unless the declared kappa is inf (plain mean). Rules whose displacement is set by a
    scale parameter (centered clipping: at most ``n_iter tau f/n``) pass ``bounded=False``.
    """
    n = x.shape[-2]
    if kappa is None and hasattr(F, "kappa"):
        kappa = F.kappa(n, f)
    if permutation_invariant is None:
        permutation_invariant = getattr(F, "permutation_invariant", True)
    if randomized is None:
        randomized = getattr(F, "randomized", False)
    if robust is None:
        robust = kappa is None or kappa != float("inf")
    rep = {}
    if permutation_invariant and not randomized:
        rep["permutation"] = check_permutation_invariance(F, x, f)
    if kappa is not None and kappa != float("inf"):
        rep["resilience"] = check_resilience(F, x, f, kappa)
    honest = x[..., : n - f, :]
    if bounded is None:
        bounded = robust
    if robust and bounded:
        rep["bounded"] = check_bounded(F, honest, f)
    if robust:
        rep["nonfinite"] = check_nonfinite(F, honest, f, factor=10.0 if bounded else float("inf"))
    if not randomized:
        rep["batching"] = check_batching(F, x, f)
    return rep
