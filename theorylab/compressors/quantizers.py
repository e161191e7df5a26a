"""Quantizers: float casts, QSGD, TernGrad, natural compression, sign and scaled sign."""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

from theorylab.compressors import wire as _wire
from theorylab.compressors.base import (
    Compressor,
    _check_kind,
    _l1mean_fast,
    _l2norm,
    _row_absmax,
    _sign_pm,
    _uniform,
    _work_dtype,
)
from theorylab.compressors.dither import dither_codes, dither_scale
from theorylab.compressors.wire import (
    byte_table,
    bytes_to_floats,
    floats_to_bytes,
    lookup_bytes,
    lookup_uint,
    pack_bits,
    pack_trits,
    pack_uint,
    trit_byte_table,
    uint_width,
    unpack_bits,
    unpack_trits,
    unpack_uint,
)
from theorylab.errors import TheorylabError, check_int

__all__ = ["Cast", "QSGD", "qsgd_supremum", "TernGrad", "Natural", "Sign", "ScaledSign"]


@functools.lru_cache(maxsize=64)
def _cast_domain(target: torch.dtype, dtype: torch.dtype) -> tuple[float, float]:
    """:meth:`Cast.domain` (cached: it is checked on every call)."""
    fi = torch.finfo(target)
    bound = min(float(fi.max), float(torch.finfo(dtype).max))
    v = float(torch.tensor(bound, dtype=torch.float64).to(target))
    if v > bound:  # rounded up: one target ulp down (half an ulp below a power of two)
        mant, e = math.frexp(v)
        v -= fi.eps * 2.0 ** (e - 2 if mant == 0.5 else e - 1)
    return (float(fi.smallest_normal), v)


@functools.lru_cache(maxsize=64)
def _half_bits(target: torch.dtype, value: float) -> int:
    """The bit pattern of the non-negative ``value`` in the 16-bit ``target``, as an int."""
    return int(torch.tensor(value, dtype=target).view(torch.int16))


class Cast(Compressor):
    """Round to a narrower float format and back: ``C(x) = fl_t(x)`` (round to nearest even).

    Guarantee (tight, deterministic): on the target's normal range every entry has relative
    error ``|fl(x_i) - x_i| <= u/(1+u) |x_i|`` with unit roundoff ``u = 2^-11`` (float16) or
    ``2^-8`` (bfloat16), so ``||C(x) - x||^2 <= (u/(1+u))^2 ||x||^2``: class B(delta) with
    ``delta = 1 - (u/(1+u))^2``. Attained at ``x_i = 1 + u`` (exactly halfway between 1 and the
    next float; ties round to 1). Below the normal range (subnormals) the relative error can reach
    1, so the declaration holds for entries 0 or with ``|x_i|`` in :meth:`domain`; entries that
    overflow the target raise. Not unbiased. Bits: ``16 d``.

    Parameters
    ----------
    target : torch.float16 or torch.bfloat16
    """

    unbiased = False
    tight = True

    def __init__(self, target: torch.dtype = torch.float16):
        if target not in (torch.float16, torch.bfloat16):
            raise TheorylabError(f"target must be torch.float16 or torch.bfloat16, got {target}")
        self.target = target
        self.name = "fp16" if target == torch.float16 else "bf16"
        self.u = torch.finfo(target).eps / 2  # unit roundoff: 2^-11, 2^-8

    def delta(self, d):
        r = self.u / (1 + self.u)
        return 1.0 - r * r

    def domain(self, dtype=torch.float32, d=None):
        """Normal range of the target, up to the largest target value that the input ``dtype``
        can hold (bf16 of float16 input: 65280; 65504 would round to 65536, an inf in float16)."""
        return _cast_domain(self.target, dtype)

    def worst_case_input(self, d):
        """``x_i = 1 + u``: exactly halfway between 1 and the next float of the target."""
        return torch.full((check_int("d", d, minimum=1),), 1.0 + self.u, dtype=torch.float64)

    def payload_bits(self, d, dtype=torch.float32):
        return 16 * int(d)

    def _rows(self, x):
        # the data are validated on the cast (_quantize): half the bytes of x, one pass fewer
        _check_kind(x)
        return x.reshape(-1, x.shape[-1]).to(_work_dtype(x.dtype))

    def _quantize(self, x, generator, dtype):
        y = x.to(self.target)
        # rounding is monotone, so max |y| = fl(max |x|): NaN, inf and |x_i| above the domain
        # (which then round to inf or to a value >= its bound) all show up on y; in that case
        # the exact check on x raises with the right message (and passes only on the bound)
        hi = self.domain(dtype, x.shape[-1])[1]
        if y.device.type == "cpu":
            # on the 16-bit patterns (numpy's integer max is SIMD; ~5x aminmax on halves):
            # |y| >= hi (NaN and inf included) iff the pattern of |y| is >= that of hi; the
            # largest signed pattern is the largest positive y, the largest unsigned one the
            # negative y of largest magnitude (if any y < 0)
            bits = y.view(torch.int16).numpy()
            bh = _half_bits(self.target, hi)
            out = int(bits.max()) >= bh or int(bits.view(np.uint16).max()) >= 0x8000 + bh
        else:
            lo, up = torch.aminmax(y)
            out = not max(-float(lo), float(up)) < hi
        if out:
            Compressor._rows(self, x.to(dtype))
        return (y,)

    def _reconstruct(self, parts, d, dtype):
        return parts[0].to(_work_dtype(dtype))

    def _pack(self, parts, d, dtype):
        return floats_to_bytes(parts[0])

    def _unpack(self, buf, d, dtype):
        return (bytes_to_floats(buf, self.target),)

    def _decode_sum_rows(self, bufs, d, dtype):
        # by column chunks: each message widened (exactly) into one cache-sized buffer, then
        # added (torch's mixed-dtype add_ is ~3x slower than the two steps)
        acc = self._decode_rows(bufs[0], d, dtype)
        halves = [bytes_to_floats(b, self.target) for b in bufs[1:]]
        step = max(1, _wire._SUM_CHUNK // acc.shape[0])
        tmp = torch.empty(acc.shape[0], min(step, d), dtype=acc.dtype, device=acc.device)
        for j0 in range(0, d, step):
            j1 = min(d, j0 + step)
            t = tmp[:, : j1 - j0]
            for h in halves:
                t.copy_(h[:, j0:j1])
                acc[:, j0:j1] += t
        return acc


# --------------------------------------------------------------------------------------------
# quantizers


#: largest s for which QSGD's omega at d < 4 s^2 is computed exactly (enumeration cost ~ s^5)
_QSGD_EXACT_MAX_S = 8


def _odd_square_sums(q_max: int, top: int, m_max: int) -> list[int]:
    """``rows[q]``: bitset (a Python int) of the sums of ``q`` squares ``(2m+1)^2``, ``m <= m_max``,
    up to ``top``."""
    mask = (1 << (top + 1)) - 1
    rows = [1]
    for _ in range(q_max):
        cur = 0
        for m in range(m_max + 1):
            cur |= rows[-1] << (2 * m + 1) ** 2
        rows.append(cur & mask)
    return rows


def _square_sums(k_max: int, top: int) -> list[int]:
    """``rows[k]``: bitset of the sums of at most ``k`` positive squares, up to ``top``."""
    mask = (1 << (top + 1)) - 1
    rows = [1]
    for _ in range(k_max):
        cur = rows[-1]
        for j in range(1, math.isqrt(top) + 1):
            cur |= rows[-1] << j * j
        rows.append(cur & mask)
    return rows


def _odd_square_split(total: int, q: int, m_max: int) -> list[int]:
    """``q`` odd numbers ``2m+1`` (``m <= m_max``) whose squares sum to ``total``."""
    rows = _odd_square_sums(q, total, m_max)
    out = []
    for k in range(q, 0, -1):
        for m in range(m_max, -1, -1):
            rest = total - (2 * m + 1) ** 2
            if rest >= 0 and (rows[k - 1] >> rest) & 1:
                out.append(2 * m + 1)
                total = rest
                break
    return out


def _square_split(total: int, k: int) -> list[int]:
    """At most ``k`` positive integers whose squares sum to ``total``."""
    rows = _square_sums(k, total)
    out = []
    while total:
        k = next(i for i in range(k + 1) if (rows[i] >> total) & 1)
        j = next(j for j in range(1, math.isqrt(total) + 1) if (rows[k - 1] >> total - j * j) & 1)
        out.append(j)
        total -= j * j
        k -= 1
    return out


@functools.lru_cache(maxsize=256)
def qsgd_supremum(s: int, d: int) -> tuple[float, tuple[float, ...]]:
    """``max {sum_i f(r_i) : r in R^d, r >= 0, ||r|| = s}``, ``f(r) = frac(r)(1 - frac(r))``,
    and a maximiser ``r``, by the finite KKT enumeration of :class:`QSGD`'s docstring.

    QSGD's tight ``omega(d)`` is the maximum divided by ``s^2``. Cost about ``d s^3`` bitset
    steps (``d < 4 s^2``); exact up to float rounding of the final square roots.

    >>> round(qsgd_supremum(1, 2)[0], 12) == round(2 ** 0.5 - 1, 12)
    True
    """
    s = check_int("s", s, minimum=1)
    d = check_int("d", d, minimum=1)
    S2 = s * s
    top = 9 * S2 + 8  # A < 4S / (2/3)^2 <= 9 s^2 whenever some m_i >= 1
    reach = [_odd_square_sums(d, top, M) for M in range(s + 1)]
    jreach = _square_sums(d, S2)
    best, arg = 0.0, None
    for q in range(1, d + 1):
        for J in range(S2):
            if not (jreach[d - q] >> J) & 1:
                continue
            S = S2 - J
            t = 4 * S
            for M in range(s + 1):
                a_lo = math.floor(4 * S * ((2 * M + 1) / (2 * M + 2)) ** 2) + 1
                a_hi = math.ceil(4 * S * ((2 * M + 1) / (2 * M)) ** 2) - 1 if M else top
                bits = reach[M][q]
                cands = []
                below = bits & ((1 << (min(t, a_hi) + 1)) - 1)
                if below:
                    cands.append(below.bit_length() - 1)
                above = bits >> max(t, a_lo)
                if above:
                    cands.append((above & -above).bit_length() - 1 + max(t, a_lo))
                for A in cands:
                    F = math.sqrt(S * A) - S - (A - q) / 4
                    if a_lo <= A <= a_hi and F > best:
                        best, arg = F, (q, J, M, A)
    if arg is None:  # d = 1: r = (s), variance 0
        return 0.0, (float(s),) + (0.0,) * (d - 1)
    q, J, M, A = arg
    c = 2 * math.sqrt((S2 - J) / A)
    r = [c * k / 2 for k in _odd_square_split(A, q, M)] + [
        float(j) for j in _square_split(J, d - q)
    ]
    return best, tuple(r + [0.0] * (d - len(r)))


#: marks QSGD's message parts whose codes are packed already (``(norm, packed, _PACKED)``)
_PACKED = "packed"


class QSGD(Compressor):
    """QSGD / standard dithering with ``s`` levels and the l2 norm (Alistarh et al. 2017).

    ``C(x)_i = ||x|| sgn(x_i) xi_i / s`` where, with ``r_i = s |x_i| / ||x||`` and
    ``l_i = floor(r_i)``, ``xi_i = l_i + 1`` with probability ``r_i - l_i`` and ``l_i`` otherwise
    (independently); sgn(0) = +1.

    Guarantee (tight for ``d >= 4 s^2`` and for every ``d`` when ``s <= 8``): U(omega). Exact
    variance ``E||C(x) - x||^2 = (||x||^2/s^2) sum_i f(r_i)`` with ``f(r) = frac(r)(1 - frac(r))``
    and ``sum_i r_i^2 = s^2``, so ``omega(d) = max {sum f(r_i) : r >= 0, ||r|| = s} / s^2``
    (derived here; the literature's ``min(d/s^2, sqrt(d)/s)`` of Lemma 3.1 is not attained):

    - ``omega(d) = sqrt(d)/s - 1`` if ``d >= 4 s^2`` -- attained at the all-equal vector.
      Proof: for any ``lam >= 0``,
      ``sum f(r_i) <= sum_i [f(r_i) - lam r_i^2] + lam s^2 <= d/(4(1+lam)) + lam s^2`` because
      ``max_r f(r) - lam r^2 = 1/(4(1+lam))`` (on [0,1] it is ``r - (1+lam) r^2``; on
      [m, m+1], m >= 1, it is at most ``1/4 - lam <= 1/(4(1+lam))``). Take
      ``1 + lam = sqrt(d)/(2s)``.
    - ``d < 4 s^2``: the maximum (attained: ``f`` is continuous on the compact sphere) is found
      by a finite enumeration of the KKT points (:func:`qsgd_supremum`). A maximiser has some
      coordinates at integers (``f = 0``; their squares sum to ``J``) and the other ``q`` on open
      pieces ``(m_i, m_i + 1)``, where stationarity ``1 - 2(r_i - m_i) = 2 lam r_i`` gives
      ``r_i = c (m_i + 1/2)`` with one ``c = 1/(1 + lam)``. With ``A = sum (2 m_i + 1)^2`` and
      ``S = s^2 - J`` the sphere fixes ``c = 2 sqrt(S/A)`` and
      ``sum f(r_i) = sqrt(S A) - S - (A - q)/4``; the point is feasible iff ``c`` lies in every
      used piece, i.e. ``c in (2M/(2M+1), (2M+2)/(2M+1))`` for ``M = max m_i`` (``c < 2`` if
      ``M = 0``). The value is concave in ``A`` (peak at ``A = 4S``, ``c = 1``), so for each
      ``(q, J, M)`` only the achievable ``A`` (sums of ``q`` odd squares, a bitset recursion)
      nearest to ``4S`` on either side can win. For ``s > 8`` the enumeration is skipped and
      ``omega(d) = d/(4 s^2)`` (``p(1-p) <= 1/4``) is declared, an upper bound attained only when
      ``4 s^2`` is a sum of ``d`` odd squares (:meth:`tight_at` says which).

    Both are ``<= min(d/s^2, sqrt(d)/s)`` (:meth:`omega_literature`).

    Sampling (float32 on CPU, ``s <= 127``): the ``xi_i`` come from integer thresholds
    (:func:`~theorylab.compressors.dither.dither_codes`): with ``F = 32 - ceil(log2(2s + 1))``
    (28 for ``s = 7``) and ``r_i`` in fixed point, ``R_i = trunc(fl(|x_i| c))``,
    ``c = s 2^F / ||x||`` rounded down, ``xi_i = l_i + 1`` with probability exactly
    ``frac_F(R_i) / 2^F``: unbiased up to float32 rounding of ``r_i`` (relative ``2^-23``)
    and ``2^-F`` of a level (absolute), finer than the ``2^-24`` grid of float32 uniforms.
    The norm sent is ``||x||_2`` rounded, which bounds every ``|x_i|`` exactly where it is in
    ``[2^-20, 2^60]`` (so ``r_i <= s`` holds exactly), else ``max(||x||_2 rounded, max_i |x_i|)``.
    Elsewhere (float64, CUDA): float uniforms ``u_i`` and ``xi_i = l_i + [u_i < r_i - l_i]``.

    Wire: header = ``||x||`` (a float of the compute dtype); payload = the signed level
    ``sgn(x_i) xi_i + s`` in ``[0, 2s]`` packed in ``ceil(log2(2s + 1))`` bits per coordinate
    (fixed-width, no Elias coding): ``bits = d ceil(log2(2s+1)) + b``.

    Parameters
    ----------
    s : int >= 1, number of levels (default 7: 4 bits per coordinate).
    """

    name = "qsgd"
    unbiased = True
    tight = False  # tight for d >= 4 s^2, and every d when s <= 8: see tight_at
    stochastic = True

    def __init__(self, s: int = 7):
        self.s = check_int("s", s, minimum=1)

    def params(self):
        return {"s": self.s}

    def omega(self, d):
        d = check_int("d", d, minimum=1)
        s = self.s
        if d >= 4 * s * s:
            return math.sqrt(d) / s - 1.0
        if s <= _QSGD_EXACT_MAX_S:
            return qsgd_supremum(s, d)[0] / (s * s)
        return d / (4.0 * s * s)

    def omega_literature(self, d: int) -> float:
        """The published bound ``min(d/s^2, sqrt(d)/s)`` (QSGD Lemma 3.1(ii)); not tight."""
        return min(d / self.s**2, math.sqrt(d) / self.s)

    def tight_at(self, d):
        d = check_int("d", d, minimum=1)
        N = 4 * self.s * self.s
        if d >= N or self.s <= _QSGD_EXACT_MAX_S:
            return True
        if d <= 2:  # d = 1: variance 0; d = 2: a^2 + b^2 = 2 (mod 8) for odd a, b, N = 0, 4
            return False
        return (N - d) % 8 == 0

    def worst_case(self, d: int) -> torch.Tensor | None:
        """An ``x`` attaining the declared omega at ``d`` (float64), or None if not attained."""
        d = check_int("d", d, minimum=1)
        s = self.s
        if d >= 4 * s * s:
            return torch.ones(d, dtype=torch.float64)
        if s <= _QSGD_EXACT_MAX_S:
            return torch.tensor(qsgd_supremum(s, d)[1], dtype=torch.float64)
        if not self.tight_at(d):
            return None
        # 4 s^2 = sum of d odd squares: r_i = (2 m_i + 1)/2 from a decomposition found by the
        # same bitset recursion (max piece s)
        return torch.tensor(_odd_square_split(4 * s * s, d, s), dtype=torch.float64) / 2

    def worst_case_input(self, d: int) -> torch.Tensor:
        """Where the declared omega is attained (:meth:`worst_case`); where it is only an upper
        bound (``s > 8``, some ``d < 4 s^2``), the all-equal vector."""
        x = self.worst_case(d)
        return torch.ones(d, dtype=torch.float64) if x is None else x

    def domain(self, dtype=torch.float32, d=None):
        """``|x_i| <= max / sqrt(d)`` (so ``||x||``, which is sent and which ``C(x)`` reaches,
        is representable in ``dtype``), less a rounding margin of ``2^-10``."""
        fmax = float(torch.finfo(dtype).max) * (1 - 2.0**-10)
        return (0.0, fmax / math.sqrt(d) if d is not None else 0.0)

    def payload_bits(self, d, dtype=torch.float32):
        return int(d) * uint_width(2 * self.s + 1)

    def header_bytes(self, dtype=torch.float32):
        return _work_dtype(dtype).itemsize

    def _ratio(self, x, norm):
        safe = torch.where(norm > 0, norm, torch.ones_like(norm))
        return (self.s * x.abs() / safe).clamp(max=self.s)

    def _fixed_point(self, x) -> bool:
        """Whether ``x`` (rows, compute dtype) takes the integer-threshold path
        (:func:`~theorylab.compressors.dither.dither_codes`): float32 on CPU, ``2s <= 255``."""
        return x.device.type == "cpu" and x.dtype == torch.float32 and 2 * self.s <= 255

    def _rows(self, x):
        _check_kind(x)
        x2 = x.reshape(-1, x.shape[-1]).to(_work_dtype(x.dtype))
        if self._fixed_point(x2):
            return x2  # validated in _quantize, by the max |x_i| it needs anyway
        return Compressor._rows(self, x)

    def _quantize(self, x, generator, dtype):
        # parts: (||x|| per row, the code sgn(x_i) xi_i + s in [0, 2s]: uint8 where it fits)
        if self._fixed_point(x):
            return self._quantize_fixed(x, generator, dtype)
        norm = _l2norm(x)
        if not bool(torch.isfinite(norm).all()):
            raise TheorylabError(
                f"qsgd needs ||x||_2 representable in {x.dtype} (it is sent and C(x) reaches it);"
                " a row's norm overflows: scale x down"
            )
        s = self.s
        safe = torch.where(norm > 0, norm, torch.ones_like(norm))
        r = x.abs().mul_(s).div_(safe).clamp_(max=s)  # = _ratio(x, norm), in one buffer
        level = torch.floor(r)
        frac = r.sub_(level)
        # up = [u < frac] as a float: frac - u lies in (-1, 1), is > 0 exactly when u < frac
        # (the difference of two distinct floats is never rounded to 0), so its ceiling is 1
        # there and 0 (or -0) elsewhere; all float ops in place (no bool, no where)
        up = frac.sub_(_uniform(x.shape, generator, x.device, x.dtype)).ceil_()
        # level + up <= s already (level = s forces frac = 0); copysign keeps sgn(0) = +1 in
        # the code since -0 + s = s
        code = level.add_(up).clamp_(max=s).copysign_(x).add_(s)
        return norm.reshape(-1), code.to(torch.uint8 if 2 * s <= 255 else torch.int32)

    def _quantize_fixed(self, x, generator, dtype):
        """CPU float32: the levels by integer thresholds (:func:`dither_codes`). One pass over
        ``x`` (its norm) where every row's norm is in ``[2^-20, 2^60]``; else the row maxima
        validate ``x`` and the norm is taken without over- or underflow."""
        norm = torch.linalg.vector_norm(x, dim=-1, keepdim=True)  # NaN or inf propagate
        n = norm.numpy()
        if not bool(((n >= 2.0**-20) & (n <= 2.0**60)).all()):
            return self._quantize_fixed_general(x, generator, dtype)
        # |x_i| <= norm exactly, so |R_i| <= s 2^F: the norm is a rounded square root of a sum
        # of the rounded squares (any order, fused or not), and with round to nearest a sum of
        # non-negative terms is >= each term, so norm >= fl(sqrt(fl(x_i^2))) = |x_i| (binary
        # floating point, x_i^2 neither over- nor underflowing: Boldo 2015; here
        # x_i^2 <= 2^120, and the largest x_i^2 >= 2^-40 / d is normal); tested in
        # tests/test_compressor_dither.py on adversarial inputs
        return self._dither(x, norm, generator)

    def _quantize_fixed_general(self, x, generator, dtype):
        m = _row_absmax(x)  # NaN propagates
        hi = self.domain(dtype, x.shape[-1])[1]
        if not bool((m <= hi).all()):  # NaN, inf or above the domain: the generic message
            Compressor._rows(self, x.to(dtype))
        if bool(((m == 0) | ((m >= 2.0**-30) & (m <= 2.0**30))).all()):
            norm = torch.linalg.vector_norm(x, dim=-1, keepdim=True)  # no over/underflow
        else:
            norm = _l2norm(x)
        if not bool(torch.isfinite(norm).all()):
            raise TheorylabError(
                f"qsgd needs ||x||_2 representable in {x.dtype} (it is sent and C(x) reaches it);"
                " a row's norm overflows: scale x down"
            )
        # |x_i| <= norm exactly (a rounded norm can fall below max |x_i|), so |R_i| <= s 2^F;
        # the norm sent is the one the scale was computed from
        norm = torch.maximum(norm, m)
        tiny = (norm > 0) & (norm < 2.0**-90)
        if bool(tiny.any()):  # the scale s 2^F / norm would overflow float32: scale the row up
            up = torch.where(tiny, 2.0**64, 1.0)
            return self._dither(x * up, norm, generator, norm * up)
        return self._dither(x, norm, generator)

    def _dither(self, x, norm, generator, scaled_norm=None):
        """Parts from the codes of ``x`` at ``scale = dither_scale(s, scaled_norm)`` (default
        ``norm``); ``norm`` is the one sent."""
        scale = dither_scale(self.s, norm if scaled_norm is None else scaled_norm)
        if uint_width(2 * self.s + 1) == 4:  # the codes come packed (the wire's payload)
            packed = dither_codes(x, scale, self.s, generator, "nibbles")
            return norm.reshape(-1), packed, _PACKED
        return norm.reshape(-1), dither_codes(x, scale, self.s, generator)

    def _reconstruct(self, parts, d, dtype):
        if len(parts) == 3:  # (norm, packed 4-bit codes, _PACKED): as decode does it
            return self._decode_rows(self._pack(parts, d, dtype), d, dtype)
        norm, code = parts
        return norm.unsqueeze(1) * ((code.to(norm.dtype) - self.s) / self.s)

    def _pack(self, parts, d, dtype):
        norm, code = parts[:2]
        if len(parts) == 3:
            payload = code  # packed already
        else:
            payload = pack_uint(code, uint_width(2 * self.s + 1))
        return torch.cat([floats_to_bytes(norm.reshape(-1, 1)), payload], 1)

    def _unpack(self, buf, d, dtype):
        nb = _work_dtype(dtype).itemsize
        norm = bytes_to_floats(buf[:, :nb], _work_dtype(dtype)).reshape(-1)
        return norm, unpack_uint(buf[:, nb:], d, uint_width(2 * self.s + 1))

    def _decode_rows(self, buf, d, dtype):
        return self._decode_rows_times(buf, d, dtype, None)

    def _decode_rows_times(self, buf, d, dtype, c):
        # one gather from a per-row table of _reconstruct's values for every code
        w = uint_width(2 * self.s + 1)
        if w > 16:
            parts = self._unpack(buf, d, dtype)
            return (
                self._reconstruct(parts, d, dtype)
                if c is None
                else (self._reconstruct_times(parts, d, dtype, c))
            )
        if 8 % w == 0:  # a table of whole bytes
            payload, table = self._byte_lookup_times(buf, d, dtype, c)
            return lookup_bytes(payload, d, table)
        table = self._code_table(buf, d, dtype, c)
        return lookup_uint(buf[:, self.header_bytes(dtype) :], d, w, table)

    def _code_table(self, buf, d, dtype, c):
        """Per row, the value of every code (``c`` times it unless None)."""
        nb = _work_dtype(dtype).itemsize
        norm = bytes_to_floats(buf[:, :nb], _work_dtype(dtype)).reshape(-1)
        codes = torch.arange(1 << uint_width(2 * self.s + 1), device=buf.device)
        table = self._reconstruct((norm, codes.expand(norm.shape[0], -1)), d, dtype)
        return table if c is None else table * c

    def _byte_lookup(self, buf, d, dtype):
        return self._byte_lookup_times(buf, d, dtype, None)

    def _byte_lookup_times(self, buf, d, dtype, c):
        w = uint_width(2 * self.s + 1)
        if 8 % w:
            return None
        table = byte_table(self._code_table(buf, d, dtype, c), w)
        return buf[:, self.header_bytes(dtype) :], table

    def coordinate_law(self, x: torch.Tensor):
        """Independent two-point law of each ``C_i(x)`` (float64): ``(lo, hi, p_hi)``."""
        x = x.to(torch.float64)
        norm = _l2norm(x.reshape(-1, x.shape[-1])).reshape(*x.shape[:-1], 1)
        r = self._ratio(x, norm)
        lo = torch.floor(r)
        sg = _sign_pm(x)
        unit = norm / self.s
        return sg * unit * lo, sg * unit * (lo + 1), r - lo


class TernGrad(Compressor):
    """TernGrad without clipping (Wen et al. 2017): ``C(x)_i = ||x||_inf sgn(x_i) b_i`` with
    ``b_i ~ Bernoulli(|x_i| / ||x||_inf)`` independent.

    Guarantee (tight): U(omega) with ``omega = (sqrt(d) - 1)/2``. Exact variance
    ``||x||_inf ||x||_1 - ||x||^2``; the worst case is ``x = (1, t, ..., t)``,
    ``t = 1/(sqrt(d) + 1)`` (then ``||x||_1 = sqrt(d)``, ``||x||^2 = 2 sqrt(d)/(sqrt(d)+1)``).
    The paper's 2.5-sigma clipping (not done here) makes it biased.

    Sampling: float32 on CPU by integer thresholds, as :class:`QSGD` with ``s = 1`` and the
    max norm (``P(b_i = 1) = R_i / 2^30``, ``R_i = trunc(fl(|x_i| c))``, ``c = 2^30 / ||x||_inf``
    rounded down); float64 and CUDA by float uniforms.

    Wire: header ``||x||_inf`` (compute dtype), then ternary digits ``sgn(x_i) b_i + 1`` packed
    base 3, five per byte: ``bits = 8 ceil(d/5) + b``.
    """

    name = "terngrad"
    unbiased = True
    tight = True
    stochastic = True

    def omega(self, d):
        return (math.sqrt(check_int("d", d, minimum=1)) - 1.0) / 2.0

    def payload_bits(self, d, dtype=torch.float32):
        return 8 * (-(-int(d) // 5))

    def header_bytes(self, dtype=torch.float32):
        return _work_dtype(dtype).itemsize

    @staticmethod
    def _prob(x, m):
        safe = torch.where(m > 0, m, torch.ones_like(m))
        return (x.abs() / safe).clamp(max=1)

    def _fixed_point(self, x) -> bool:
        return x.device.type == "cpu" and x.dtype == torch.float32

    def _rows(self, x):
        _check_kind(x)
        x2 = x.reshape(-1, x.shape[-1]).to(_work_dtype(x.dtype))
        if self._fixed_point(x2):
            return x2  # validated in _quantize, by the row maxima it needs anyway
        return Compressor._rows(self, x)

    def _quantize(self, x, generator, dtype):
        if self._fixed_point(x):
            # the digit sgn(x_i) b_i + 1 is QSGD's code with s = 1 and the max norm
            # (dither_codes: P(b_i = 1) = |R_i| / 2^F, R_i = trunc(x_i c), c = 2^F / m)
            m = _row_absmax(x)  # NaN propagates
            mn = m.numpy()  # the checks in numpy (small torch ops cost ~20 us each)
            if not bool(np.isfinite(mn).all()):
                Compressor._rows(self, x.to(dtype))  # raises: NaN or inf
            if not bool(((mn == 0) | (mn >= 2.0**-90)).all()):
                # the scale 2^F / m would overflow float32: scale the row up
                tiny = (m > 0) & (m < 2.0**-90)
                up = torch.where(tiny, 2.0**64, 1.0)
                x, scale = x * up, dither_scale(1, m * up)
            else:
                scale = dither_scale(1, m)
            # the digits come packed (the wire's payload)
            return m.reshape(-1), dither_codes(x, scale, 1, generator, "trits"), _PACKED
        a = x.abs()
        m = a.amax(dim=-1, keepdim=True)
        safe = torch.where(m > 0, m, torch.ones_like(m))
        prob = a.div_(safe).clamp_(max=1)  # = _prob(x, m), in one buffer
        # b = [u < prob] as a float: prob - u lies in (-1, 1] and is > 0 exactly when u < prob,
        # so its ceiling is b (or -0); the digit sgn(x_i) b_i + 1 by copysign (b = 0 where
        # x_i = 0, so sgn(0) never matters), all in place
        b = prob.sub_(_uniform(x.shape, generator, x.device, x.dtype)).ceil_()
        return m.reshape(-1), b.copysign_(x).add_(1).to(torch.uint8)

    def _reconstruct(self, parts, d, dtype):
        return self._reconstruct_times(parts, d, dtype, 1.0)

    def _reconstruct_times(self, parts, d, dtype, c):
        if len(parts) == 3:  # (m, packed digits, _PACKED): as decode does it
            return self._decode_rows_times(self._pack(parts, d, dtype), d, dtype, c)
        m, trit = parts
        if trit.dtype != m.dtype:  # from _quantize (uint8 digits); _unpack gives floats
            trit = trit.to(m.dtype)
        return (m * c).unsqueeze(1) * (trit - 1)

    def _pack(self, parts, d, dtype):
        m, trit = parts[:2]
        payload = trit if len(parts) == 3 else pack_trits(trit)
        return torch.cat([floats_to_bytes(m.reshape(-1, 1)), payload], 1)

    def _unpack(self, buf, d, dtype):
        nb = _work_dtype(dtype).itemsize
        wd = _work_dtype(dtype)
        return bytes_to_floats(buf[:, :nb], wd).reshape(-1), unpack_trits(buf[:, nb:], d, wd)

    def _decode_rows_times(self, buf, d, dtype, c):
        # one gather from a per-row table of the three values _reconstruct_times gives
        payload, table = self._byte_lookup_times(buf, d, dtype, c)
        return lookup_bytes(payload, d, table)

    def _byte_lookup_times(self, buf, d, dtype, c):
        nb = _work_dtype(dtype).itemsize
        wd = _work_dtype(dtype)
        m = bytes_to_floats(buf[:, :nb], wd).reshape(-1)
        digits = torch.arange(3, dtype=wd, device=buf.device).expand(m.shape[0], -1)
        table = self._reconstruct_times((m, digits), d, dtype, c)
        return buf[:, nb:], trit_byte_table(table)

    def _decode_rows(self, buf, d, dtype):
        return self._decode_rows_times(buf, d, dtype, 1.0)

    def _byte_lookup(self, buf, d, dtype):
        return self._byte_lookup_times(buf, d, dtype, 1.0)

    def coordinate_law(self, x: torch.Tensor):
        x = x.to(torch.float64)
        m = x.abs().amax(dim=-1, keepdim=True)
        return torch.zeros_like(x), _sign_pm(x) * m, self._prob(x, m)

    def worst_case_input(self, d):
        return self.worst_case(d)

    @staticmethod
    def worst_case(d: int) -> torch.Tensor:
        """The ``x`` attaining ``omega = (sqrt(d) - 1)/2`` (float64)."""
        x = torch.full((d,), 1.0 / (math.sqrt(d) + 1.0), dtype=torch.float64)
        x[0] = 1.0
        return x


def _natural_code_torch(x: torch.Tensor, u: torch.Tensor, emin: int) -> torch.Tensor:
    """:class:`Natural`'s int32 code from ``x`` and the uniforms ``u`` (any device):
    ``2 (e - 1 + up - emin) + [x < 0] + 1`` where ``x != 0`` (``|x| = mant 2^e``,
    ``up = [u < 2 mant - 1]``), else 0."""
    a = x.abs()
    mant, e = torch.frexp(a)  # a = mant 2^e, mant in [1/2, 1)
    # up = [u < 2 mant - 1] as a float (ceiling of the difference, in (-1, 1) where a > 0)
    up = mant.mul_(2).sub_(1).sub_(u).ceil_().to(torch.int32)
    code = up.add_(e).sub_(emin + 1).mul_(2).add_(torch.signbit(x)).add_(1)
    return code.masked_fill_(a == 0, 0)


def _natural_code_np(x: torch.Tensor, u: torch.Tensor, emin: int) -> torch.Tensor:
    """:func:`_natural_code_torch` on CPU in numpy (its frexp is ~20x torch's CPU kernel;
    mixed-type in-place ops are buffered, so no further d-sized temporaries)."""
    mant, e = np.frexp(x.detach().numpy())  # |mant| in [1/2, 1) (0 for x = 0), x's sign
    nonzero = mant != 0
    neg = mant < 0
    m = np.abs(mant, out=mant)
    m *= 2
    m -= 1
    m -= u.numpy()
    np.ceil(m, out=m)  # up = [u < 2|mant| - 1] (the difference is in (-1, 1))
    np.add(e, m, out=e, casting="unsafe")  # e + up
    e -= emin + 1
    e *= 2
    np.add(e, neg, out=e, casting="unsafe")
    e += 1
    np.multiply(e, nonzero, out=e, casting="unsafe")
    return torch.from_numpy(e)


class Natural(Compressor):
    """Natural compression C_nat (Horvath et al.): round ``|x_i|`` to one of the two nearest
    powers of two, ``2^(e-1) <= |x_i| < 2^e``, up with probability ``|x_i|/2^(e-1) - 1``.

    Guarantee (tight): U(omega) with ``omega = 1/8`` (Theorem 3 of the paper:
    ``E||C_nat(x)||^2 <= 9/8 ||x||^2``), attained at ``|x_i| = (4/3) 2^a``. Exact for every
    finite input whose ``|x_i| <= 2^emax`` (the largest power of two of the dtype; above it the
    rounded-up power would overflow, and compress raises), subnormals included.

    Wire: per coordinate one code in ``[0, 2P]`` (0 for zero, else sign and the index of the power
    of two among the ``P`` powers representable in the dtype, subnormal ones included) in
    ``ceil(log2(2P + 1))`` bits: 10 bits for float32 and bfloat16 (P = 277, 261), 7 for float16
    (P = 40), 13 for float64 (P = 2098). The paper's 9 bits (sign + 8-bit exponent) omit the
    subnormal powers. No header.
    """

    name = "natural"
    unbiased = True
    tight = True
    stochastic = True

    def omega(self, d):
        return 0.125

    @staticmethod
    def _exponents(dtype):
        fi = torch.finfo(dtype)
        emin = int(round(math.log2(fi.smallest_normal * fi.eps)))  # smallest subnormal power
        emax = math.frexp(fi.max)[1] - 1  # largest power of two <= max
        return emin, emax

    def _width(self, dtype):
        emin, emax = self._exponents(dtype)
        return uint_width(2 * (emax - emin + 1) + 1)

    def domain(self, dtype=torch.float32, d=None):
        return (0.0, 2.0 ** self._exponents(dtype)[1])

    def worst_case_input(self, d):
        """``|x_i| = (4/3) 2^a``: the up-probability 1/3 maximises the relative variance."""
        return torch.full((check_int("d", d, minimum=1),), 4.0 / 3.0, dtype=torch.float64)

    def payload_bits(self, d, dtype=torch.float32):
        return int(d) * self._width(dtype)

    def _quantize(self, x, generator, dtype):
        emin, emax = self._exponents(dtype)
        u = _uniform(x.shape, generator, x.device, x.dtype)
        if x.device.type == "cpu":
            return (_natural_code_np(x, u, emin),)
        return (_natural_code_torch(x, u, emin),)

    def _reconstruct(self, parts, d, dtype):
        (code,) = parts
        emin, _ = self._exponents(dtype)
        wd = _work_dtype(dtype)
        c = (code.to(torch.int32) - 1).clamp(min=0)
        mag = torch.ldexp(torch.ones(c.shape, dtype=wd, device=c.device), (c >> 1) + emin)
        val = torch.where((c & 1) == 1, -mag, mag)
        return torch.where(code > 0, val, torch.zeros((), dtype=wd, device=code.device))

    def _pack(self, parts, d, dtype):
        return pack_uint(parts[0], self._width(dtype))

    def _unpack(self, buf, d, dtype):
        return (unpack_uint(buf, d, self._width(dtype)),)

    def _decode_rows(self, buf, d, dtype):
        # one gather from the table of _reconstruct's value for every code (2^width <= 8192)
        w = self._width(dtype)
        codes = torch.arange(1 << w, dtype=torch.int32, device=buf.device).unsqueeze(0)
        return lookup_uint(buf, d, w, self._reconstruct((codes,), d, dtype))

    def coordinate_law(self, x: torch.Tensor):
        x = x.to(torch.float64)
        a = x.abs()
        mant, e = torch.frexp(a)
        lo = torch.ldexp(torch.ones_like(a), e - 1)
        sg = _sign_pm(x)
        zero = a == 0
        return (
            torch.where(zero, 0.0, sg * lo),
            torch.where(zero, 0.0, sg * 2 * lo),
            torch.where(zero, 0.0, 2 * mant - 1),
        )


# --------------------------------------------------------------------------------------------
# signs


def _negative(x: torch.Tensor) -> torch.Tensor:
    """``x < 0`` (bool; -0 is not negative), by numpy on CPU (~2x torch's comparison there)."""
    if x.device.type == "cpu":
        return torch.from_numpy(np.less(x.detach().numpy(), 0))
    return x < 0


#: elements per numpy call in :func:`_l1_and_sign_bits` (a multiple of 8: whole bytes)
_SIGN_CHUNK = 1 << 15


def _l1_and_sign_bits(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(sum_i |x_i|, packed [x_i < 0])`` per row of the CPU float array ``x`` ``(rows, d)``
    in one read of ``x``: a chunk of columns at a time (the ``|x|`` buffer stays in the cache),
    float64 sums of the chunks' pairwise sums (inf where a chunk's sum overflows) and the sign
    bits as :func:`~theorylab.compressors.wire.pack_bits` packs them (LSB first, each row's
    last byte padded with zeros)."""
    rows, d = x.shape
    out = np.empty((rows, -(-d // 8)), dtype=np.uint8)
    s1 = np.zeros(rows, dtype=np.float64)
    cols = max(8, _SIGN_CHUNK - _SIGN_CHUNK % 8)
    if d >= cols:
        spans = [(r, r + 1, j, min(d, j + cols)) for r in range(rows) for j in range(0, d, cols)]
    else:
        step = max(1, cols // d)
        spans = [(r, min(rows, r + step), 0, d) for r in range(0, rows, step)]
    size = min(rows * d, max(cols, d))
    a, neg = np.empty(size, dtype=x.dtype), np.empty(size, dtype=np.bool_)
    for r0, r1, j0, j1 in spans:
        n = (r1 - r0) * (j1 - j0)
        xc = x[r0:r1, j0:j1]
        ac = np.abs(xc, out=a[:n].reshape(xc.shape))
        s1[r0:r1] += ac.sum(axis=1)
        nc = np.less(xc, 0, out=neg[:n].reshape(xc.shape))
        out[r0:r1, j0 // 8 : -(-j1 // 8)] = np.packbits(nc, axis=1, bitorder="little")
    return s1, out


@functools.lru_cache(maxsize=8)
def _sign_bytes(dtype: torch.dtype) -> np.ndarray:
    """``(256, 8)`` numpy table of ``dtype``: entry ``[b, j]`` is ``1 - 2 * bit j of b`` (the
    values of :func:`~theorylab.compressors.wire.pack_bits`' bytes of signs); read-only."""
    b = np.arange(256)[:, None] >> np.arange(8)
    table = (1 - 2 * (b & 1)).astype(torch.empty(0, dtype=dtype).numpy().dtype)
    table.setflags(write=False)
    return table


class Sign(Compressor):
    """``C(x) = sign(x)`` (sgn(0) = +1). In no class: ``C(tx) = C(x)`` for every ``t > 0``, so no
    ``omega`` or ``delta`` bounds it (neither is declared). Wire: ``d`` bit-packed signs
    (bit 1 = negative), no header: ``bits = d``."""

    name = "sign"

    def payload_bits(self, d, dtype=torch.float32):
        return int(d)

    def _quantize(self, x, generator, dtype):
        return (_negative(x),)

    def _reconstruct(self, parts, d, dtype):
        neg = parts[0]
        wd = _work_dtype(dtype)
        return 1 - 2 * neg.to(wd)

    def _pack(self, parts, d, dtype):
        return pack_bits(parts[0])

    def _unpack(self, buf, d, dtype):
        return (unpack_bits(buf, d),)

    def _decode_rows(self, buf, d, dtype):
        # one gather: each byte -> its 8 values, from _reconstruct's values of the 2 codes
        payload, table = self._byte_lookup(buf, d, dtype)
        return lookup_bytes(payload, d, table)

    def _byte_lookup(self, buf, d, dtype):
        if buf.device.type == "cpu" and type(self)._reconstruct is Sign._reconstruct:
            return buf, torch.from_numpy(_sign_bytes(_work_dtype(dtype)).copy()).unsqueeze(0)
        bit = torch.tensor([[False, True]], device=buf.device)
        return buf, byte_table(self._reconstruct((bit,), d, dtype), 1)


class ScaledSign(Sign):
    """Scaled sign (Karimireddy et al. 2019): ``C(x) = (||x||_1 / d) sign(x)`` (sgn(0) = +1).

    Guarantee (tight): B(delta) with ``delta = 1/d``: the identity
    ``||C(x) - x||^2 = ||x||^2 - ||x||_1^2 / d`` gives ``delta(x) = ||x||_1^2 / (d ||x||^2) >= 1/d``
    with equality at ``x = e_1``. Not unbiased. Wire: header ``||x||_1 / d`` (compute dtype),
    then ``d`` packed sign bits: ``bits = d + b``.
    """

    name = "scaled-sign"
    tight = True

    def delta(self, d):
        return 1.0 / check_int("d", d, minimum=1)

    def worst_case_input(self, d):
        """``e_1``: ``delta(x) = ||x||_1^2 / (d ||x||^2) = 1/d``."""
        x = torch.zeros(check_int("d", d, minimum=1), dtype=torch.float64)
        x[0] = 1.0
        return x

    def header_bytes(self, dtype=torch.float32):
        return _work_dtype(dtype).itemsize

    def _one_pass(self, x) -> bool:
        """Whether ``x`` (rows, compute dtype) is validated and measured by one read
        (:func:`_l1_and_sign_bits`): on CPU, unless a subclass quantizes otherwise."""
        return x.device.type == "cpu" and type(self)._quantize is ScaledSign._quantize

    def _rows(self, x):
        _check_kind(x)
        x2 = x.reshape(-1, x.shape[-1]).to(_work_dtype(x.dtype))
        if self._one_pass(x2):
            return x2  # validated in _quantize: a finite sum of |x_i| has finite terms
        return Compressor._rows(self, x)

    def _quantize(self, x, generator, dtype):
        if self._one_pass(x):
            with np.errstate(over="ignore", invalid="ignore"):  # NaN, inf: checked below
                s1, packed = _l1_and_sign_bits(x.detach().numpy())
                scale = (s1 / x.shape[-1]).astype("f8" if x.dtype == torch.float64 else "f4")
            if bool(np.isfinite(scale).all()):
                return torch.from_numpy(scale), torch.from_numpy(packed), _PACKED
            # a NaN or inf entry (raises), or a sum that overflowed: the scaled form
            Compressor._rows(self, x)
        return _l1mean_fast(x).reshape(-1), _negative(x)

    def _reconstruct(self, parts, d, dtype):
        if len(parts) == 3:  # (scale, packed signs, _PACKED): as decode does it
            return self._decode_rows(self._pack(parts, d, dtype), d, dtype)
        scale, neg = parts
        return scale.unsqueeze(1) * (1 - 2 * neg.to(scale.dtype))

    def _pack(self, parts, d, dtype):
        scale, neg = parts[:2]
        payload = neg if len(parts) == 3 else pack_bits(neg)
        return torch.cat([floats_to_bytes(scale.reshape(-1, 1)), payload], 1)

    def _unpack(self, buf, d, dtype):
        nb = _work_dtype(dtype).itemsize
        return bytes_to_floats(buf[:, :nb], _work_dtype(dtype)).reshape(-1), unpack_bits(
            buf[:, nb:], d
        )

    def _byte_lookup(self, buf, d, dtype):
        nb = _work_dtype(dtype).itemsize
        scale = bytes_to_floats(buf[:, :nb], _work_dtype(dtype)).reshape(-1)
        if buf.device.type == "cpu" and type(self)._reconstruct is ScaledSign._reconstruct:
            # scale * (+-1) is exact: the same values as _reconstruct's, by numpy
            table = scale.numpy()[:, None, None] * _sign_bytes(scale.dtype)
            return buf[:, nb:], torch.from_numpy(table)
        bit = torch.tensor([False, True], device=buf.device).expand(scale.shape[0], -1)
        return buf[:, nb:], byte_table(self._reconstruct((scale, bit), d, dtype), 1)
