"""Quantizers: float casts, QSGD, TernGrad, natural compression, sign and scaled sign."""

from __future__ import annotations

import math

import torch

from theorylab.compressors.base import (
    Compressor,
    _l1mean,
    _l2norm,
    _row_amax,
    _sign_pm,
    _uniform,
    _work_dtype,
)
from theorylab.compressors.wire import (
    bytes_to_floats,
    floats_to_bytes,
    pack_bits,
    pack_trits,
    pack_uint,
    uint_width,
    unpack_bits,
    unpack_trits,
    unpack_uint,
)
from theorylab.errors import TheorylabError, check_int

__all__ = ["Cast", "QSGD", "TernGrad", "Natural", "Sign", "ScaledSign"]


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

    def domain(self, dtype=torch.float32):
        fi = torch.finfo(self.target)
        return (float(fi.smallest_normal), float(fi.max))

    def payload_bits(self, d, dtype=torch.float32):
        return 16 * int(d)

    def _quantize(self, x, generator, dtype):
        y = x.to(self.target)
        if not bool(torch.isfinite(y).all()):
            big = float(x.abs().max())
            raise TheorylabError(
                f"{self.name} overflow: |x_i| up to {big:.4g} exceeds the largest {self.target} "
                f"({float(torch.finfo(self.target).max):.6g}); scale x down or use bf16"
            )
        return (y,)

    def _reconstruct(self, parts, d, dtype):
        return parts[0].to(_work_dtype(dtype))

    def _pack(self, parts, d, dtype):
        return floats_to_bytes(parts[0])

    def _unpack(self, buf, d, dtype):
        return (bytes_to_floats(buf, self.target),)


# --------------------------------------------------------------------------------------------
# quantizers


class QSGD(Compressor):
    """QSGD / standard dithering with ``s`` levels and the l2 norm (Alistarh et al. 2017).

    ``C(x)_i = ||x|| sgn(x_i) xi_i / s`` where, with ``r_i = s |x_i| / ||x||`` and
    ``l_i = floor(r_i)``, ``xi_i = l_i + 1`` with probability ``r_i - l_i`` and ``l_i`` otherwise
    (independently); sgn(0) = +1.

    Guarantee: U(omega). Exact variance ``E||C(x) - x||^2 = (||x||^2/s^2) sum_i p_i (1 - p_i)``,
    ``p_i = frac(r_i)``. The **tight** constant (derived here; the literature's
    ``min(d/s^2, sqrt(d)/s)`` of Lemma 3.1 is not attained) is

    - ``omega(d) = sqrt(d)/s - 1`` if ``d >= 4 s^2`` -- attained at the all-equal vector.
      Proof: write ``f(r) = frac(r)(1 - frac(r))``; for any ``lam >= 0``,
      ``sum f(r_i) <= sum_i [f(r_i) - lam r_i^2] + lam s^2 <= d/(4(1+lam)) + lam s^2`` because
      ``max_r f(r) - lam r^2 = 1/(4(1+lam))`` (on [0,1] it is ``r - (1+lam) r^2``; on
      [m, m+1], m >= 1, it is at most ``1/4 - lam <= 1/(4(1+lam))``). Take
      ``1 + lam = sqrt(d)/(2s)``.
    - ``omega(d) = d/(4 s^2)`` if ``d < 4 s^2`` (``lam = 0``: ``p(1-p) <= 1/4``), attained iff
      every ``r_i`` is a half-integer with ``sum r_i^2 = s^2``, i.e. ``4 s^2`` is a sum of ``d``
      odd squares: for ``d >= 3`` iff ``d = 4 s^2 (mod 8)`` (odd squares are ``8T + 1`` with T
      triangular; every integer is a sum of three triangular numbers, Gauss). Otherwise it is an
      upper bound (:meth:`tight_at` says which).

    Both are ``<= min(d/s^2, sqrt(d)/s)`` (:meth:`omega_literature`).

    Wire: header = ``||x||`` (a float of the compute dtype); payload = the signed level
    ``sgn(x_i) xi_i + s`` in ``[0, 2s]`` packed in ``ceil(log2(2s + 1))`` bits per coordinate
    (fixed-width, no Elias coding): ``bits = d ceil(log2(2s+1)) + b``.

    Parameters
    ----------
    s : int >= 1, number of levels (default 7: 4 bits per coordinate).
    """

    name = "qsgd"
    unbiased = True
    tight = False  # tight for d >= 4 s^2 and some d < 4 s^2: see tight_at
    stochastic = True

    def __init__(self, s: int = 7):
        self.s = check_int("s", s, minimum=1)

    def params(self):
        return {"s": self.s}

    def omega(self, d):
        d = check_int("d", d, minimum=1)
        s = self.s
        return math.sqrt(d) / s - 1.0 if d >= 4 * s * s else d / (4.0 * s * s)

    def omega_literature(self, d: int) -> float:
        """The published bound ``min(d/s^2, sqrt(d)/s)`` (QSGD Lemma 3.1(ii)); not tight."""
        return min(d / self.s**2, math.sqrt(d) / self.s)

    def tight_at(self, d):
        d = check_int("d", d, minimum=1)
        N = 4 * self.s * self.s
        if d >= N:
            return True
        if d == 1:  # r_1 = s is an integer: the variance is 0 < 1/(4 s^2)
            return False
        if d == 2:  # N = a^2 + b^2 with a, b odd is impossible: a^2 + b^2 = 2 (mod 8), N = 0, 4
            return False
        return (N - d) % 8 == 0

    def worst_case(self, d: int) -> torch.Tensor | None:
        """An ``x`` attaining the declared omega at ``d`` (float64), or None if not attained."""
        if not self.tight_at(d):
            return None
        N = 4 * self.s * self.s
        if d >= N:
            return torch.ones(d, dtype=torch.float64)
        # 4 s^2 = sum of d odd squares: greedy on (N - d)/8 as a sum of d triangular numbers
        T = (N - d) // 8
        tri = []
        for _ in range(d):
            m = int((math.isqrt(8 * T + 1) - 1) // 2)
            while m * (m + 1) // 2 > T:
                m -= 1
            # keep enough room: the rest must be a sum of the remaining triangulars
            tri.append(m)
            T -= m * (m + 1) // 2
        if T != 0:  # greedy fails only for d < 3 (excluded above); fall back to a search
            return None
        return torch.tensor([2 * m + 1 for m in tri], dtype=torch.float64)  # r_i = (2m+1)/2

    def payload_bits(self, d, dtype=torch.float32):
        return int(d) * uint_width(2 * self.s + 1)

    def header_bytes(self, dtype=torch.float32):
        return _work_dtype(dtype).itemsize

    def _ratio(self, x, norm):
        safe = torch.where(norm > 0, norm, torch.ones_like(norm))
        return (self.s * x.abs() / safe).clamp(max=self.s)

    def _quantize(self, x, generator, dtype):
        norm = _l2norm(x)
        if not bool(torch.isfinite(norm).all()):
            raise TheorylabError(
                f"qsgd needs ||x||_2 representable in {x.dtype} (it is sent and C(x) reaches it);"
                " a row's norm overflows: scale x down"
            )
        r = self._ratio(x, norm)
        lo = torch.floor(r)
        up = _uniform(x.shape, generator, x.device, x.dtype) < (r - lo)
        level = (lo + up.to(x.dtype)).clamp(max=self.s).to(torch.int32)  # int32: vectorised
        signed = torch.where(x < 0, -level, level)
        return norm.reshape(-1), signed

    def _reconstruct(self, parts, d, dtype):
        norm, signed = parts
        return norm.unsqueeze(1) * (signed.to(norm.dtype) / self.s)

    def _pack(self, parts, d, dtype):
        norm, signed = parts
        return torch.cat(
            [
                floats_to_bytes(norm.reshape(-1, 1)),
                pack_uint(signed + self.s, uint_width(2 * self.s + 1)),
            ],
            1,
        )

    def _unpack(self, buf, d, dtype):
        nb = _work_dtype(dtype).itemsize
        norm = bytes_to_floats(buf[:, :nb], _work_dtype(dtype)).reshape(-1)
        signed = unpack_uint(buf[:, nb:], d, uint_width(2 * self.s + 1)) - self.s
        return norm, signed

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

    def _quantize(self, x, generator, dtype):
        m = _row_amax(x)
        keep = _uniform(x.shape, generator, x.device, x.dtype) < self._prob(x, m)
        trit = torch.where(keep, torch.where(x < 0, 0, 2), 1)
        return m.reshape(-1), trit

    def _reconstruct(self, parts, d, dtype):
        m, trit = parts
        return m.unsqueeze(1) * (trit - 1).to(m.dtype)

    def _pack(self, parts, d, dtype):
        m, trit = parts
        return torch.cat([floats_to_bytes(m.reshape(-1, 1)), pack_trits(trit)], 1)

    def _unpack(self, buf, d, dtype):
        nb = _work_dtype(dtype).itemsize
        return bytes_to_floats(buf[:, :nb], _work_dtype(dtype)).reshape(-1), unpack_trits(
            buf[:, nb:], d
        )

    def coordinate_law(self, x: torch.Tensor):
        x = x.to(torch.float64)
        m = x.abs().amax(dim=-1, keepdim=True)
        return torch.zeros_like(x), _sign_pm(x) * m, self._prob(x, m)

    @staticmethod
    def worst_case(d: int) -> torch.Tensor:
        """The ``x`` attaining ``omega = (sqrt(d) - 1)/2`` (float64)."""
        x = torch.full((d,), 1.0 / (math.sqrt(d) + 1.0), dtype=torch.float64)
        x[0] = 1.0
        return x


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

    def domain(self, dtype=torch.float32):
        return (0.0, 2.0 ** self._exponents(dtype)[1])

    def payload_bits(self, d, dtype=torch.float32):
        return int(d) * self._width(dtype)

    def _quantize(self, x, generator, dtype):
        emin, emax = self._exponents(dtype)
        a = x.abs()
        if bool((a > 2.0**emax).any()):
            raise TheorylabError(
                f"natural compression of {dtype} needs |x_i| <= 2^{emax} (the rounded-up power of "
                f"two must be representable); got {float(a.max()):.4g}: scale x down"
            )
        mant, e = torch.frexp(a)  # a = mant 2^e, mant in [1/2, 1)
        up = _uniform(x.shape, generator, x.device, x.dtype) < (2 * mant - 1)
        expo = e - 1 + up.to(torch.int32)  # int32 throughout (int64 ops are not vectorised)
        code = torch.where(a > 0, 2 * (expo - emin) + (x < 0).to(torch.int32) + 1, 0)
        return (code,)

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


class Sign(Compressor):
    """``C(x) = sign(x)`` (sgn(0) = +1). In no class: ``C(tx) = C(x)`` for every ``t > 0``, so no
    ``omega`` or ``delta`` bounds it (neither is declared). Wire: ``d`` bit-packed signs
    (bit 1 = negative), no header: ``bits = d``."""

    name = "sign"

    def payload_bits(self, d, dtype=torch.float32):
        return int(d)

    def _quantize(self, x, generator, dtype):
        return (x < 0,)

    def _reconstruct(self, parts, d, dtype):
        neg = parts[0]
        wd = _work_dtype(dtype)
        return 1 - 2 * neg.to(wd)

    def _pack(self, parts, d, dtype):
        return pack_bits(parts[0])

    def _unpack(self, buf, d, dtype):
        return (unpack_bits(buf, d),)


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

    def header_bytes(self, dtype=torch.float32):
        return _work_dtype(dtype).itemsize

    def _quantize(self, x, generator, dtype):
        return _l1mean(x).reshape(-1), x < 0

    def _reconstruct(self, parts, d, dtype):
        scale, neg = parts
        return scale.unsqueeze(1) * (1 - 2 * neg.to(scale.dtype))

    def _pack(self, parts, d, dtype):
        scale, neg = parts
        return torch.cat([floats_to_bytes(scale.reshape(-1, 1)), pack_bits(neg)], 1)

    def _unpack(self, buf, d, dtype):
        nb = _work_dtype(dtype).itemsize
        return bytes_to_floats(buf[:, :nb], _work_dtype(dtype)).reshape(-1), unpack_bits(
            buf[:, nb:], d
        )
