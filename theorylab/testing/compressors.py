"""Conformance kit for compressors: hypothesis strategies and checks with stated error rates.

A compressor (a :class:`theorylab.compressors.Compressor`, or any object with the same
interface) declares its class and constants; these checks confirm the declarations on a given
input. Each check raises :class:`CompressorCheckError` (an ``AssertionError``) on failure and
states its **false-failure probability** (the chance of failing although the declaration is
true), which is 0 for the exact and deterministic checks and ``alpha`` for the Monte Carlo ones.
Run with fixed seeds, every check is deterministic.

Checks
------
- :func:`check_unbiased`: ``E C(x) = x``. Exact when the compressor exposes its law
  (``coordinate_law``: independent two-point coordinates; ``outcomes``: all outcomes at small d),
  plus a Monte Carlo test that the sampler realises it: reject if for some ``i``
  ``|mean_N C_i - x_i| > (b_i - a_i) sqrt(ln(2d/alpha) / (2N))`` where ``C_i in [a_i, b_i]``
  (Hoeffding + union bound over coordinates: false failure <= alpha). Without known ranges:
  Chebyshev on the mean, reject if ``||mean_N C - x||^2 > omega ||x||^2 / (N alpha)``
  (false failure <= alpha, needs only the declared omega).
- :func:`check_variance` (omega) and :func:`check_contraction` (delta): one-sided tests of
  ``E Y <= bound`` with ``Y = ||C(x) - x||^2``. Deterministic compressor: one evaluation,
  exact. Known law: exact. Otherwise ``Y`` truncated at ``c`` (``E min(Y, c) <= E Y``, so
  truncation keeps the test valid) and rejected if
  ``mean_N min(Y, c) > bound + c sqrt(ln(1/alpha) / (2N))`` (Hoeffding, false failure <= alpha).
- :func:`check_wire`: ``len(encode(x)) == nbytes(shape) == rows * ceil(bits(d)/8)`` and
  ``decode(encode(x, g)) == compress(x, g')`` (false failure 0).
- :func:`check_deterministic`: the same seed gives the same output (false failure 0).
- :func:`check_finite`: finite output of the input's shape and dtype (false failure 0).
- :func:`check_compressor`: all of the above that the declarations call for.

Exact comparisons allow a floating-point slack of ``rtol = 64 eps`` of the compute dtype,
relative to ``||x||^2`` (rounding, not statistics).

Example
-------
>>> import torch
>>> from theorylab.compressors import get_compressor
>>> report = check_compressor(get_compressor("top-k:k=2"), torch.tensor([3.0, -1.0, 2.0]))
>>> report["contraction"]["ratio"] <= 1 - 2 / 3
True
"""

from __future__ import annotations

import copy
import math

import numpy as np
import torch
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

__all__ = [
    "CompressorCheckError",
    "vectors",
    "check_unbiased",
    "check_variance",
    "check_contraction",
    "check_wire",
    "check_deterministic",
    "check_finite",
    "check_compressor",
    "empirical_ratio",
]

DEFAULT_ALPHA = 1e-6


class CompressorCheckError(AssertionError):
    """A compressor does not satisfy a declaration on the given input."""


# --------------------------------------------------------------------------------------------
# strategies

_KINDS = ("gaussian", "zeros", "one-nonzero", "ties", "huge", "tiny", "mixed-scales")


@st.composite
def vectors(
    draw,
    min_d: int = 1,
    max_d: int = 33,
    dtype: torch.dtype = torch.float32,
    domain: tuple[float, float] | None = None,
    kinds: tuple[str, ...] = _KINDS,
):
    """Hypothesis strategy for 1-D tensors that stress compressors.

    Kinds: ``gaussian``-like moderate values, all ``zeros``, ``one-nonzero`` (``t e_i``),
    ``ties`` (all magnitudes equal, random signs), ``huge`` (up to ``max/(4d)`` of the dtype),
    ``tiny`` (near the smallest normal, and subnormals), ``mixed-scales`` (entries spanning 40
    orders of magnitude in float32). Sizes ``min_d..max_d`` (``d = 1`` and odd sizes included).

    Parameters
    ----------
    min_d, max_d : int, 1 <= min_d <= max_d.
    dtype : torch floating dtype of the result.
    domain : (lo, hi), a callable ``d -> (lo, hi)``, or a compressor, optional
        Nonzero magnitudes are clipped into ``[lo, hi]``; a compressor ``C`` stands for
        ``C.domain(dtype, d)`` at the drawn ``d`` (its declared domain).
    kinds : subset of the kinds above.
    """
    d = draw(st.integers(min_d, max_d))
    kind = draw(st.sampled_from(kinds))
    fi = torch.finfo(dtype)
    moderate = st.floats(-10.0, 10.0, allow_nan=False, allow_infinity=False, width=32)
    signs = draw(hnp.arrays(np.bool_, d))
    sgn = np.where(signs, -1.0, 1.0)
    if kind == "gaussian":
        x = draw(hnp.arrays(np.float64, d, elements=moderate))
    elif kind == "zeros":
        x = np.zeros(d)
    elif kind == "one-nonzero":
        x = np.zeros(d)
        x[draw(st.integers(0, d - 1))] = draw(moderate.filter(lambda v: v != 0))
    elif kind == "ties":
        x = sgn * draw(st.floats(1e-3, 1e3))
    else:
        mags = draw(hnp.arrays(np.float64, d, elements=st.floats(0.0, 1.0, width=32)))
        if kind == "huge":
            x = sgn * mags * fi.max / (4 * d)
        elif kind == "tiny":
            x = sgn * mags * fi.smallest_normal * 4
        else:
            expo = draw(hnp.arrays(np.float64, d, elements=st.floats(-20.0, 20.0)))
            x = sgn * (0.5 + mags) * 10.0**expo
    if domain is not None:
        if hasattr(domain, "domain"):
            lo, hi = domain.domain(dtype, d)
        elif callable(domain):
            lo, hi = domain(d)
        else:
            lo, hi = domain
        a = np.abs(x)
        a = np.where(a > 0, np.clip(a, lo, hi), 0.0)
        x = np.copysign(a, x)
    t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float64)).to(dtype)
    t = torch.nan_to_num(t, posinf=float(fi.max), neginf=-float(fi.max))
    if domain is not None:  # rounding to dtype may have stepped above hi: clip in dtype
        top = _round_down(hi, dtype)
        t = torch.where(t.double().abs() > hi, torch.sign(t) * top, t)
    return t


def _round_down(v: float, dtype: torch.dtype) -> float:
    """The largest value of ``dtype`` that is ``<= v`` (``v`` finite, >= 0)."""
    fi = torch.finfo(dtype)
    r = float(torch.tensor(min(v, float(fi.max)), dtype=torch.float64).to(dtype))
    while r > v:  # rounded up: one ulp down (half an ulp below a power of two)
        mant, e = math.frexp(r)
        r -= fi.eps * 2.0 ** (e - 2 if mant == 0.5 else e - 1)
    return r


# --------------------------------------------------------------------------------------------
# helpers


def _fail(C, what: str, x: torch.Tensor, detail: str):
    d = x.shape[-1]
    raise CompressorCheckError(f"{_name(C)} fails {what} at d={d}, x={_short(x)}: {detail}")


def _name(C) -> str:
    return getattr(C, "spec", None) or getattr(C, "name", None) or type(C).__name__


def _short(x: torch.Tensor) -> str:
    v = x.reshape(-1)
    s = ", ".join(f"{float(t):.4g}" for t in v[:6])
    return f"[{s}{', ...' if v.numel() > 6 else ''}]"


def _rtol(x: torch.Tensor) -> float:
    wd = torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype
    eps = torch.finfo(x.dtype).eps if x.dtype in (torch.float16, torch.bfloat16) else 0.0
    # half inputs: C(x) is rounded back to the input dtype
    return 64 * torch.finfo(wd).eps + 4 * eps


def _scale(x: torch.Tensor) -> float:
    m = float(x.abs().max())
    return m if m > 0 else 1.0


def _gen(seed: int, device) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(int(seed))


def _samples(C, x: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """``n`` independent draws of ``C(x)`` as float64 rows ``(n, d)`` divided by max|x|."""
    C = copy.deepcopy(C) if getattr(C, "stateful", False) else C
    X = x.reshape(1, -1).expand(n, -1).contiguous()
    Y = C.compress(X, _gen(seed, x.device))
    return Y.to(torch.float64) / _scale(x)


def _law(C, x):
    """``(mean, E||C-x||^2)`` in float64 units of max|x|, exactly, or None."""
    xs = x.reshape(-1).to(torch.float64) / _scale(x)
    if hasattr(C, "coordinate_law"):
        try:
            lo, hi, p = C.coordinate_law(xs)
        except AttributeError:
            lo = None
        if lo is not None:
            mean = lo + p * (hi - lo)
            err = ((mean - xs) ** 2).sum() + ((hi - lo) ** 2 * p * (1 - p)).sum()
            return mean, float(err), (torch.minimum(lo, hi), torch.maximum(lo, hi))
    if hasattr(C, "outcomes"):
        try:
            probs, vals = C.outcomes(xs)
        except Exception:  # too many outcomes at this d
            return None
        mean = (probs[:, None] * vals).sum(0)
        err = float((probs * ((vals - xs) ** 2).sum(1)).sum())
        return mean, err, (vals.min(0).values, vals.max(0).values)
    return None


def _bounds(C, x):
    xs = x.reshape(-1).to(torch.float64) / _scale(x)
    if hasattr(C, "output_bounds"):
        a, b = C.output_bounds(xs)
        return a, b
    law = _law(C, x)
    return None if law is None else law[2]


def empirical_ratio(C, x: torch.Tensor, samples: int = 2000, seed: int = 0) -> float:
    """Monte Carlo estimate of ``E||C(x) - x||^2 / ||x||^2`` (diagnostic, no guarantee)."""
    xs = x.reshape(-1).to(torch.float64) / _scale(x)
    n2 = float((xs**2).sum())
    if n2 == 0:
        return 0.0
    n = 1 if not getattr(C, "stochastic", True) else samples
    Y = ((_samples(C, x, n, seed) - xs) ** 2).sum(1)
    return float(Y.mean()) / n2


# --------------------------------------------------------------------------------------------
# checks


def check_unbiased(
    C, x: torch.Tensor, samples: int = 4000, alpha: float = DEFAULT_ALPHA, seed: int = 0
) -> dict:
    """Check ``E C(x) = x`` (see the module docstring for the tests and error rates).

    Returns a dict with the method used (``"exact"``, ``"hoeffding"``, ``"chebyshev"``) and the
    worst normalised deviation. False-failure probability: 0 for the exact part, ``alpha`` for the
    sampler test.
    """
    x1 = x.reshape(-1)
    d = x1.numel()
    xs = x1.to(torch.float64) / _scale(x1)
    out = {}
    law = _law(C, x1)
    tol = _rtol(x1) * max(1.0, float(xs.abs().max()))
    if law is not None:
        dev = float((law[0] - xs).abs().max())
        if dev > tol:
            _fail(C, "unbiasedness (exact law)", x1, f"max |E C_i - x_i| = {dev:.3g} (max|x|=1)")
        out["exact_deviation"] = dev
    bounds = _bounds(C, x1)
    mean = _samples(C, x1, samples, seed).mean(0)
    if bounds is not None:
        a, b = bounds
        half = (b - a) * math.sqrt(math.log(2 * d / alpha) / (2 * samples)) + tol
        excess = float(((mean - xs).abs() - half).max())
        if excess > 0:
            i = int(((mean - xs).abs() - half).argmax())
            _fail(
                C,
                "unbiasedness (Hoeffding)",
                x1,
                f"coordinate {i}: sample mean {float(mean[i]):.6g} vs x_i {float(xs[i]):.6g}, "
                f"tolerance {float(half[i]):.3g} at alpha={alpha}",
            )
        out.update(method="exact+hoeffding" if law else "hoeffding", excess=excess)
        return out
    omega = C.omega(d)
    n2 = float((xs**2).sum())
    dev2 = float(((mean - xs) ** 2).sum())
    limit = omega * n2 / (samples * alpha) + tol * max(n2, 1.0)
    if dev2 > limit:
        _fail(C, "unbiasedness (Chebyshev)", x1, f"||mean - x||^2 = {dev2:.3g} > {limit:.3g}")
    out.update(method="exact+chebyshev" if law else "chebyshev", deviation2=dev2)
    return out


def _check_second_moment(C, x, bound_ratio, what, samples, alpha, seed):
    x1 = x.reshape(-1)
    xs = x1.to(torch.float64) / _scale(x1)
    n2 = float((xs**2).sum())
    out = {"bound": bound_ratio}
    if n2 == 0:
        Y = _samples(C, x1, 1, seed)
        if bool(Y.abs().max() > 0) and bound_ratio < math.inf:
            _fail(C, what, x1, "C(0) != 0 although E||C(0) - 0||^2 <= c ||0||^2 = 0")
        out.update(method="zero", ratio=0.0)
        return out
    slack = _rtol(x1)
    if not getattr(C, "stochastic", True):
        Y = float(((_samples(C, x1, 1, seed)[0] - xs) ** 2).sum())
        if Y > (bound_ratio + slack) * n2:
            _fail(C, what, x1, f"||C(x) - x||^2 / ||x||^2 = {Y / n2:.9g} > {bound_ratio:.9g}")
        out.update(method="deterministic", ratio=Y / n2)
        return out
    law = _law(C, x1)
    if law is not None:
        r = law[1] / n2
        if r > bound_ratio + slack:
            _fail(
                C, what + " (exact law)", x1, f"E||C(x)-x||^2/||x||^2 = {r:.9g} > {bound_ratio:.9g}"
            )
        out.update(method="exact", ratio=r)
    bounds = _bounds(C, x1)
    if bounds is not None:
        a, b = bounds
        cap = float((torch.maximum((a - xs).abs(), (b - xs).abs()) ** 2).sum())
    else:
        cap = max(4 * bound_ratio, 1.0) * n2
    Y = ((_samples(C, x1, samples, seed) - xs) ** 2).sum(1).clamp(max=cap)
    limit = (bound_ratio + slack) * n2 + cap * math.sqrt(math.log(1 / alpha) / (2 * samples))
    m = float(Y.mean())
    if m > limit:
        _fail(
            C,
            what + " (Hoeffding)",
            x1,
            f"mean ||C-x||^2/||x||^2 = {m / n2:.6g}, "
            f"declared {bound_ratio:.6g}, limit {limit / n2:.6g} at alpha={alpha}",
        )
    out.setdefault("method", "hoeffding")
    out.setdefault("ratio", m / n2)
    return out


def check_variance(
    C, x: torch.Tensor, samples: int = 4000, alpha: float = DEFAULT_ALPHA, seed: int = 0
) -> dict:
    """Check ``E||C(x) - x||^2 <= omega(d) ||x||^2`` (one-sided; false failure <= alpha, 0 when
    exact). Returns the method and the measured ratio."""
    d = x.reshape(-1).numel()
    return _check_second_moment(C, x, C.omega(d), "the omega bound", samples, alpha, seed)


def check_contraction(
    C, x: torch.Tensor, samples: int = 4000, alpha: float = DEFAULT_ALPHA, seed: int = 0
) -> dict:
    """Check ``E||C(x) - x||^2 <= (1 - delta(d)) ||x||^2`` (one-sided; false failure <= alpha,
    0 when deterministic or exact). Returns the method and the measured ratio."""
    d = x.reshape(-1).numel()
    return _check_second_moment(
        C, x, 1.0 - C.delta(d), "the delta (contraction) bound", samples, alpha, seed
    )


def check_wire(C, x: torch.Tensor, seed: int = 0) -> dict:
    """Check the wire size and the round trip (false failure 0).

    ``encode(x, g)`` is a 1-D uint8 tensor of ``nbytes(shape, dtype)`` bytes, which equals
    ``rows * ceil(bits(d, dtype) / 8)``, and ``decode`` of it equals ``compress(x, g')`` with
    ``g'`` seeded like ``g`` (and a copy of the compressor state).
    """
    d = x.shape[-1]
    rows = x.numel() // d
    C1, C2 = copy.deepcopy(C), copy.deepcopy(C)
    buf = C1.encode(x, _gen(seed, x.device))
    nb = C.nbytes(x.shape, x.dtype)
    declared = rows * (-(-C.bits(d, x.dtype) // 8))
    if not (isinstance(buf, torch.Tensor) and buf.dtype == torch.uint8 and buf.dim() == 1):
        _fail(C, "the wire format", x, "encode must return a 1-D uint8 tensor")
    if buf.numel() != nb or nb != declared:
        _fail(C, "the wire size", x, f"encoded {buf.numel()} B, nbytes {nb}, bits(d) -> {declared}")
    y = C1.decode(buf, x.shape, x.dtype, x.device)
    z = C2.compress(x, _gen(seed, x.device))
    if y.shape != x.shape or y.dtype != x.dtype or not torch.equal(y, z):
        _fail(C, "the round trip", x, "decode(encode(x, g)) != compress(x, g)")
    return {"bytes": nb, "bits": C.bits(d, x.dtype)}


def check_deterministic(C, x: torch.Tensor, seed: int = 0) -> dict:
    """Same seed (and state) gives the same ``C(x)`` (false failure 0)."""
    y1 = copy.deepcopy(C).compress(x, _gen(seed, x.device))
    y2 = copy.deepcopy(C).compress(x, _gen(seed, x.device))
    if not torch.equal(y1, y2):
        _fail(C, "determinism under a seed", x, "two runs with the same seed differ")
    return {}


def check_finite(C, x: torch.Tensor, seed: int = 0) -> dict:
    """``C(x)`` is finite with ``x``'s shape, dtype and device, also for ``x = 0`` and for ``x``
    rescaled to the top of the declared domain (``max|x_i| = hi`` of ``C.domain(dtype, d)``,
    where declared) (false failure 0)."""
    cases = [x, torch.zeros_like(x)]
    m = float(x.abs().max())
    if hasattr(C, "domain") and m > 0:
        try:
            hi = C.domain(x.dtype, x.shape[-1])[1]
        except TypeError:  # an older compressor: domain(dtype) only
            hi = C.domain(x.dtype)[1]
        edge = (x.to(torch.float64) * (hi / m)).to(x.dtype)
        if bool(torch.isfinite(edge).all()) and float(edge.abs().max()) <= hi:
            cases.append(edge)
    for v in cases:
        y = copy.deepcopy(C).compress(v, _gen(seed, v.device))
        if y.shape != v.shape or y.dtype != v.dtype or y.device != v.device:
            _fail(C, "shape/dtype/device", v, f"got {tuple(y.shape)} {y.dtype} {y.device}")
        if not bool(torch.isfinite(y).all()):
            _fail(C, "finite output", v, "C(x) has NaN or infinite entries")
    return {}


def check_compressor(
    C, x: torch.Tensor, seed: int = 0, samples: int = 4000, alpha: float = DEFAULT_ALPHA
) -> dict:
    """Run every check the declarations call for on ``x`` (1-D); return their reports.

    Unbiased compressors: :func:`check_unbiased` and :func:`check_variance`; a declared delta:
    :func:`check_contraction`; always :func:`check_wire`, :func:`check_deterministic`,
    :func:`check_finite`. Family-wise false-failure probability <= 3 alpha (each stochastic
    check contributes at most alpha).
    """
    d = x.reshape(-1).numel()
    report = {
        "wire": check_wire(C, x, seed),
        "deterministic": check_deterministic(C, x, seed),
        "finite": check_finite(C, x, seed),
    }
    if getattr(C, "unbiased", False):
        report["unbiased"] = check_unbiased(C, x, samples, alpha, seed)
        report["variance"] = check_variance(C, x, samples, alpha, seed + 1)
    if C.delta(d) is not None:
        report["contraction"] = check_contraction(C, x, samples, alpha, seed + 2)
    return report
