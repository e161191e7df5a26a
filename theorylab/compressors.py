"""Compression operators with their proven class constants and an exact wire format.

Classes (shared/DESIGN.md):

- unbiased **U(omega)**: ``E C(x) = x`` and ``E||C(x) - x||^2 <= omega ||x||^2``;
- contractive **B(delta)**: ``E||C(x) - x||^2 <= (1 - delta) ||x||^2`` with ``delta in (0, 1]``.

If ``C`` is in U(omega) then ``C / (1 + omega)`` is in B(1 / (1 + omega)) (:class:`Scaled`), and
an unbiased ``C`` with ``omega < 1`` is also in B(1 - omega) (the default :meth:`Compressor.delta`).

Every compressor declares, as attributes (cvxpy-atom style): ``unbiased``, ``omega(d)``,
``delta(d)``, ``tight`` (the declared constant is attained by some ``x`` for every ``d``; see
``tight_at(d)`` where it depends on ``d``), ``stochastic``, ``bits(d, dtype)`` and ``name``. The
tests in ``tests/test_compressors.py`` confirm every declaration, and attain every constant
declared tight.

Shapes: the **last** dimension of ``x`` is the vector being compressed (length ``d``); leading
dimensions are a batch (nodes, replicas) and each row is compressed independently, drawing from
``generator`` in row-major order.

Wire format (bit order, ternary and float layout in :mod:`theorylab.wire`): one message per row,
rows concatenated. A row is ``header_bytes(dtype)`` bytes of header (e.g. the row's norm as a float
of the compute dtype) followed by the packed payload of ``payload_bits(d, dtype)`` bits rounded up
to whole bytes. So

    bits(d, dtype) = 8 * header_bytes(dtype) + payload_bits(d, dtype)      (one d-vector)
    nbytes(shape, dtype) = rows * ceil(bits(d, dtype) / 8)

and ``encode`` returns exactly ``nbytes`` bytes. ``decode(encode(x, g)) == compress(x, g')`` for
a generator ``g'`` in the same state as ``g`` (and, for stateful compressors, the same compressor
state): both run the same quantization and the same reconstruction.

Floats on the wire (values, norms, scales) are in the *compute dtype*: the input dtype for float32
and float64, float32 for float16/bfloat16 inputs.

Example
-------
>>> import torch
>>> C = get_compressor("qsgd:s=4")
>>> C.unbiased, C.omega(1024), C.bits(1024)
(True, 7.0, 4128)
>>> g = torch.Generator().manual_seed(0)
>>> x = torch.randn(3, 1024, generator=g)
>>> buf = C.encode(x, torch.Generator().manual_seed(1))
>>> buf.numel() == C.nbytes(x.shape) == 3 * 516
True
>>> y = C.decode(buf, x.shape, x.dtype, x.device)
>>> y.equal(C.compress(x, torch.Generator().manual_seed(1)))
True

References
----------
Alistarh et al., QSGD, NeurIPS 2017, arXiv:1610.02132. Stich, Cordonnier, Jaggi, Sparsified SGD
with memory, NeurIPS 2018, arXiv:1809.07599. Karimireddy et al., Error feedback fixes SignSGD,
ICML 2019, arXiv:1901.09847. Wen et al., TernGrad, NeurIPS 2017, arXiv:1705.07878. Horvath et al.,
Natural compression, MSML 2022, arXiv:1905.10988. Vogels, Karimireddy, Jaggi, PowerSGD,
NeurIPS 2019, arXiv:1905.13727. Beznosikov et al., On biased compression, arXiv:2002.12410.
"""

from __future__ import annotations

import abc
import copy
import itertools
import math
import weakref
from collections.abc import Callable, Sequence
from typing import Any

import torch

from theorylab.errors import TheorylabError, check_int, check_probability
from theorylab.wire import (
    bytes_to_floats,
    floats_to_bytes,
    pack_bits,
    pack_trits,
    pack_uint,
    packed_bytes,
    uint_width,
    unpack_bits,
    unpack_trits,
    unpack_uint,
)

__all__ = [
    "Compressor",
    "Identity",
    "Cast",
    "RandK",
    "TopK",
    "QSGD",
    "Natural",
    "Sign",
    "ScaledSign",
    "TernGrad",
    "PowerSGD",
    "Scaled",
    "COMPRESSORS",
    "get_compressor",
    "check_vector",
]

_FLOATS = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


# --------------------------------------------------------------------------------------------
# helpers


def check_vector(x, name: str = "x") -> torch.Tensor:
    """Validate a tensor to compress: floating, at least 1-D, non-empty, all entries finite.

    Raises
    ------
    TypeError
        ``x`` is not a tensor or not of a floating dtype (float16, bfloat16, float32, float64).
    TheorylabError
        ``x`` is 0-D or empty, or has a NaN or infinite entry.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dtype not in _FLOATS:
        raise TypeError(
            f"{name} must have a floating dtype (float16, bfloat16, float32, float64), got "
            f"{x.dtype}; convert it with {name}.float()"
        )
    if x.dim() == 0:
        raise TheorylabError(
            f"{name} must have at least one dimension, got a 0-d tensor; use {name}.reshape(1)"
        )
    if x.numel() == 0:
        raise TheorylabError(
            f"{name} is empty (shape {tuple(x.shape)}); a compressor needs "
            "at least one coordinate per row"
        )
    if not bool(torch.isfinite(x).all()):
        raise TheorylabError(
            f"{name} has NaN or infinite entries; compressors are defined for "
            "finite vectors only (check the gradient for overflow)"
        )
    return x


def _work_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def _float_bits(dtype: torch.dtype) -> int:
    return torch.finfo(dtype).bits


def _uniform(shape, generator, device, dtype) -> torch.Tensor:
    """Uniform [0, 1) draws from ``generator`` (on its own device), moved to ``device``."""
    gdev = generator.device if generator is not None else device
    return torch.rand(shape, generator=generator, device=gdev, dtype=dtype).to(device)


def _normal(shape, generator, device, dtype) -> torch.Tensor:
    gdev = generator.device if generator is not None else device
    return torch.randn(shape, generator=generator, device=gdev, dtype=dtype).to(device)


def _row_amax(a: torch.Tensor) -> torch.Tensor:
    return a.abs().amax(dim=-1, keepdim=True)


def _l2norm(x: torch.Tensor) -> torch.Tensor:
    """Row norms ``||x||_2`` of shape ``(rows, 1)``, scaled by the row max so that huge or tiny
    entries neither overflow nor underflow."""
    m = _row_amax(x)
    safe = torch.where(m > 0, m, torch.ones_like(m))
    return m * torch.linalg.vector_norm(x / safe, dim=-1, keepdim=True)


def _l1mean(x: torch.Tensor) -> torch.Tensor:
    """Row means ``||x||_1 / d`` of shape ``(rows, 1)``, overflow-safe."""
    m = _row_amax(x)
    safe = torch.where(m > 0, m, torch.ones_like(m))
    return m * (x / safe).abs().mean(dim=-1, keepdim=True)


def _sign_pm(x: torch.Tensor) -> torch.Tensor:
    """+1 where ``x >= 0`` and -1 where ``x < 0`` (sgn(0) = +1, as in QSGD and 1-bit SGD)."""
    return torch.where(x < 0, -torch.ones_like(x), torch.ones_like(x))


def _to_signed64(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


_GOLDEN = _to_signed64(0x9E3779B97F4A7C15)
_MIX1 = _to_signed64(0xBF58476D1CE4E5B9)
_MIX2 = _to_signed64(0x94D049BB133111EB)


def _shr(z: torch.Tensor, s: int) -> torch.Tensor:
    """Logical right shift of int64 (as unsigned 64-bit)."""
    return (z >> s) & ((1 << (64 - s)) - 1)


def _splitmix64(z: torch.Tensor) -> torch.Tensor:
    """The splitmix64 finaliser (Steele, Lea, Flood 2014) on int64 tensors, wrapping mod 2^64;
    returns the top 63 bits as a non-negative int64 (a uniform key)."""
    z = (z ^ _shr(z, 30)) * _MIX1
    z = (z ^ _shr(z, 27)) * _MIX2
    z = z ^ _shr(z, 31)
    return _shr(z, 1)


def _check_bool(name: str, value) -> bool:
    """Return ``value`` if it is a bool (Python or numpy), else raise naming it."""
    if not isinstance(value, bool) and type(value).__name__ != "bool_":
        raise TypeError(
            f"{name} must be True or False, got {value!r} of type {type(value).__name__}; "
            f"in a spec string write {name}=true or {name}=false"
        )
    return bool(value)


def _parse_value(text: str):
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


# --------------------------------------------------------------------------------------------
# base class


class Compressor(abc.ABC):
    """A compression operator ``C: R^d -> R^d`` with declared constants and a wire format.

    Subclasses implement four small pieces, which the base class composes so that the wire
    format and ``compress`` can never disagree:

    - ``_quantize(x, generator) -> parts``: the random/lossy step on rows ``x`` (``(rows, d)``,
      the compute dtype), returning a tuple of tensors (the message);
    - ``_reconstruct(parts, d, dtype) -> (rows, d)``: the value ``C(x)`` from the message;
    - ``_pack(parts, d, dtype) -> uint8 (rows, row_bytes)`` and ``_unpack(buf, d, dtype)``,
      exact inverses of each other;
    - ``payload_bits(d, dtype)`` and ``header_bytes(dtype)``.

    Declarations (override as needed): ``name``, ``unbiased``, ``tight``, ``stochastic``,
    ``omega(d)``, ``delta(d)``, ``tight_at(d)``, ``domain(dtype)``; optional exact laws used by
    the conformance kit: ``coordinate_law(x)`` (independent two-point coordinates),
    ``outcomes(x)`` (all outcomes with their probabilities, small ``d``), ``output_bounds(x)``.
    """

    name: str = ""
    #: E C(x) = x for every x
    unbiased: bool = False
    #: the declared omega (unbiased) or delta (contractive) is attained by some x for every d
    tight: bool = False
    #: uses the generator (False: deterministic given its state)
    stochastic: bool = False
    #: keeps state between calls (warm starts); the kit deep-copies it for round-trip checks
    stateful: bool = False

    # -- declarations ------------------------------------------------------------------
    def omega(self, d: int) -> float | None:
        """Variance constant of class U(omega) at dimension ``d``; None if not unbiased."""
        return None

    def delta(self, d: int) -> float | None:
        """Contraction constant of class B(delta) at ``d``; None if not contractive.

        Default for unbiased compressors with ``omega < 1``: ``1 - omega`` (valid because
        ``E||C(x) - x||^2 <= omega ||x||^2 = (1 - (1 - omega)) ||x||^2``).
        """
        w = self.omega(d) if self.unbiased else None
        return 1.0 - w if w is not None and w < 1 else None

    def tight_at(self, d: int) -> bool:
        """Whether the declared constant at ``d`` is attained (default: :attr:`tight`)."""
        return self.tight

    def domain(self, dtype: torch.dtype = torch.float32) -> tuple[float, float]:
        """Range ``(lo, hi)`` of nonzero ``|x_i|`` on which the declarations hold (and, above
        ``hi``, compress raises). Default: every finite value."""
        return (0.0, float(torch.finfo(dtype).max))

    @property
    def kind(self) -> str:
        """``"U"`` (unbiased), ``"B"`` (contractive), or ``"-"`` (neither is declared)."""
        if self.unbiased:
            return "U"
        return "B" if self.delta(2) is not None else "-"

    # -- sizes ---------------------------------------------------------------------------
    @abc.abstractmethod
    def payload_bits(self, d: int, dtype: torch.dtype = torch.float32) -> int:
        """Bits of the packed payload of one ``d``-vector (header excluded)."""

    def header_bytes(self, dtype: torch.dtype = torch.float32) -> int:
        """Fixed per-row header in bytes (a norm or scale, a seed); 0 by default."""
        return 0

    def bits(self, d: int, dtype: torch.dtype = torch.float32) -> int:
        """Exact bits on the wire for one ``d``-vector, header included."""
        d = check_int("d", d, minimum=1)
        return 8 * self.header_bytes(dtype) + self.payload_bits(d, dtype)

    def row_bytes(self, d: int, dtype: torch.dtype = torch.float32) -> int:
        """Bytes of one encoded row: ``header_bytes + ceil(payload_bits / 8)``."""
        d = check_int("d", d, minimum=1)
        return self.header_bytes(dtype) + packed_bytes(self.payload_bits(d, dtype))

    def nbytes(self, shape: Sequence[int], dtype: torch.dtype = torch.float32) -> int:
        """Bytes of ``encode(x)`` for ``x`` of ``shape`` and ``dtype``: ``rows * row_bytes(d)``."""
        shape = tuple(int(s) for s in shape)
        if not shape or min(shape) < 1:
            raise TheorylabError(f"shape must be non-empty with every dimension >= 1, got {shape}")
        return math.prod(shape[:-1]) * self.row_bytes(shape[-1], dtype)

    # -- the operator ------------------------------------------------------------------
    @abc.abstractmethod
    def _quantize(self, x: torch.Tensor, generator, dtype: torch.dtype) -> tuple:
        """The message for rows ``x`` of shape ``(rows, d)`` (compute dtype); ``dtype`` is the
        caller's dtype."""

    @abc.abstractmethod
    def _reconstruct(self, parts: tuple, d: int, dtype: torch.dtype) -> torch.Tensor:
        """``C(x)`` rows, shape ``(rows, d)``, in the compute dtype."""

    @abc.abstractmethod
    def _pack(self, parts: tuple, d: int, dtype: torch.dtype) -> torch.Tensor:
        """``uint8 (rows, row_bytes(d, dtype))``."""

    @abc.abstractmethod
    def _unpack(self, buf: torch.Tensor, d: int, dtype: torch.dtype) -> tuple:
        """Inverse of :meth:`_pack`; ``buf`` is ``uint8 (rows, row_bytes)``."""

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        """Hook for validation that depends on the compressor (k <= d, ranges)."""
        return x

    def _rows(self, x: torch.Tensor) -> torch.Tensor:
        x = check_vector(x)
        x2 = x.reshape(-1, x.shape[-1]).to(_work_dtype(x.dtype))
        return self._prepare(x2)

    def compress(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """``C(x)``: same shape, dtype and device as ``x``; each row (last dim) independently.

        ``generator`` supplies all randomness (None: torch's default generator of the device).
        """
        x2 = self._rows(x)
        y = self._reconstruct(self._quantize(x2, generator, x.dtype), x.shape[-1], x.dtype)
        return y.to(x.dtype).reshape(x.shape)

    __call__ = compress

    def encode(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Compress ``x`` and pack it: a 1-D ``uint8`` tensor of ``nbytes(x.shape, x.dtype)``."""
        x2 = self._rows(x)
        buf = self._pack(self._quantize(x2, generator, x.dtype), x.shape[-1], x.dtype).reshape(-1)
        expected = self.nbytes(x.shape, x.dtype)
        if buf.numel() != expected:  # an internal inconsistency, not a user error
            raise RuntimeError(f"{self.spec}: encoded {buf.numel()} bytes, declared {expected}")
        return buf

    def decode(
        self,
        buf: torch.Tensor,
        shape: Sequence[int],
        dtype: torch.dtype = torch.float32,
        device=None,
    ) -> torch.Tensor:
        """Unpack ``buf`` (from :meth:`encode`) into ``C(x)`` of ``shape``/``dtype``/``device``."""
        if not isinstance(buf, torch.Tensor) or buf.dtype != torch.uint8 or buf.dim() != 1:
            raise TypeError("buf must be a 1-D torch.uint8 tensor produced by encode()")
        shape = tuple(int(s) for s in shape)
        expected = self.nbytes(shape, dtype)
        if buf.numel() != expected:
            raise TheorylabError(
                f"buf has {buf.numel()} bytes but {self.spec} encodes shape {shape} of {dtype} "
                f"in {expected}; pass the shape and dtype that were encoded"
            )
        device = buf.device if device is None else torch.device(device)
        d = shape[-1]
        rows = buf.to(device).reshape(-1, self.row_bytes(d, dtype))
        y = self._reconstruct(self._unpack(rows, d, dtype), d, dtype)
        return y.to(dtype).reshape(shape)

    # -- description -------------------------------------------------------------------
    def params(self) -> dict[str, Any]:
        """Constructor parameters (for :attr:`spec` and saved configurations)."""
        return {}

    @property
    def spec(self) -> str:
        """A string :func:`get_compressor` parses back into an equal compressor."""
        p = self.params()
        if not p:
            return self.name
        return self.name + ":" + ",".join(f"{k}={v}" for k, v in p.items())

    def __repr__(self) -> str:
        return f"<Compressor {self.spec}>"

    def describe(self, d: int, dtype: torch.dtype = torch.float32) -> dict[str, Any]:
        """Declarations at ``d`` as a dict (the CLI's row)."""
        b = self.bits(d, dtype)
        return {
            "compressor": self.spec,
            "class": self.kind,
            "omega": self.omega(d) if self.unbiased else None,
            "delta": self.delta(d),
            "tight": self.tight_at(d),
            "bits": b,
            "header_bits": 8 * self.header_bytes(dtype),
            "bits_per_coord": b / d,
        }


# --------------------------------------------------------------------------------------------
# identity and casts


class Identity(Compressor):
    """No compression: ``C(x) = x``. Class U(0) (tight), hence B(1). Bits: ``d * b`` where ``b``
    is the float width of the compute dtype (32 for float32)."""

    name = "identity"
    unbiased = True
    tight = True

    def omega(self, d):
        return 0.0

    def payload_bits(self, d, dtype=torch.float32):
        return int(d) * _float_bits(_work_dtype(dtype))

    def _quantize(self, x, generator, dtype):
        return (x,)

    def _reconstruct(self, parts, d, dtype):
        return parts[0]

    def _pack(self, parts, d, dtype):
        return floats_to_bytes(parts[0])

    def _unpack(self, buf, d, dtype):
        return (bytes_to_floats(buf, _work_dtype(dtype)),)


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
# sparsifiers


class _KMixin:
    """``k`` given directly, or as ``ratio`` with ``k(d) = max(1, ceil(ratio * d))``."""

    def _init_k(self, k, ratio):
        if k is not None and ratio is not None:
            raise TheorylabError("give either k or ratio, not both")
        if k is None and ratio is None:
            ratio = 0.01
        self.k = None if k is None else check_int("k", k, minimum=1)
        self.ratio = None if ratio is None else check_probability("ratio", ratio)

    def k_of(self, d: int) -> int:
        """Number of kept coordinates at dimension ``d``."""
        d = check_int("d", d, minimum=1)
        if self.k is not None:
            if self.k > d:
                raise TheorylabError(
                    f"k={self.k} exceeds the dimension d={d}; use k <= d (or ratio=...)"
                )
            return self.k
        return max(1, math.ceil(self.ratio * d - 1e-9))

    def _kparams(self):
        return {"k": self.k} if self.k is not None else {"ratio": self.ratio}


class RandK(_KMixin, Compressor):
    """Random sparsification: keep ``k`` coordinates chosen uniformly without replacement.

    ``C(x) = (d/k) sum_{i in S} x_i e_i`` (``scaled=True``) or ``sum_{i in S} x_i e_i``
    (``scaled=False``), ``S`` a uniform ``k``-subset.

    Guarantee (tight, an equality for every x): scaled is U(omega) with ``omega = d/k - 1``
    (``E||C(x) - x||^2 = (d/k - 1)||x||^2``); unscaled is B(delta) with ``delta = k/d``
    (``E||C(x) - x||^2 = (1 - k/d)||x||^2``).

    Wire: a shared seed instead of indices (the receiver regenerates ``S``): a 64-bit header
    holding the row's seed (drawn from ``generator``), then the ``k`` values: ``bits = 64 + k b``.

    Parameters
    ----------
    k : int >= 1, or ratio : float in (0, 1] (``k = max(1, ceil(ratio d))``); default ratio 0.01.
    scaled : bool, default True.

    Raises
    ------
    TheorylabError
        ``k < 1``, ``k > d`` at compression time, or a ratio outside (0, 1].
    """

    stochastic = True
    tight = True

    def __init__(self, k: int | None = None, ratio: float | None = None, scaled: bool = True):
        self._init_k(k, ratio)
        self.scaled = _check_bool("scaled", scaled)
        self.unbiased = self.scaled
        self.name = "rand-k" if self.scaled else "rand-k-unscaled"

    def params(self):
        return self._kparams()

    def omega(self, d):
        return d / self.k_of(d) - 1.0 if self.scaled else None

    def delta(self, d):
        if not self.scaled:
            return self.k_of(d) / d
        return super().delta(d)

    def header_bytes(self, dtype=torch.float32):
        return 8

    def payload_bits(self, d, dtype=torch.float32):
        return self.k_of(d) * _float_bits(_work_dtype(dtype))

    def _prepare(self, x):
        self.k_of(x.shape[-1])
        return x

    def _indices(self, seeds: torch.Tensor, d: int, device) -> torch.Tensor:
        """The kept set of each row: the ``k`` coordinates with the smallest keys
        ``splitmix64(seed + (j + 1) * golden)``, a uniform ``k``-subset computed with integer
        arithmetic only (identical on every device, vectorised over rows)."""
        j = torch.arange(1, d + 1, dtype=torch.int64, device=device)
        keys = _splitmix64(seeds.to(device).unsqueeze(1) + j * _GOLDEN)
        return torch.topk(keys, self.k_of(d), dim=1, largest=False, sorted=False).indices

    def _quantize(self, x, generator, dtype):
        gdev = generator.device if generator is not None else x.device
        seeds = torch.randint(0, 2**62, (x.shape[0],), generator=generator, device=gdev)
        seeds = seeds.to(x.device)
        idx = self._indices(seeds, x.shape[-1], x.device)
        return seeds, x.gather(1, idx)

    def _reconstruct(self, parts, d, dtype):
        seeds, values = parts
        idx = self._indices(seeds, d, values.device)
        if self.scaled:
            values = values * (d / self.k_of(d))
        out = torch.zeros(values.shape[0], d, dtype=values.dtype, device=values.device)
        return out.scatter_(1, idx, values)

    def _pack(self, parts, d, dtype):
        seeds, values = parts
        return torch.cat([floats_to_bytes(seeds.reshape(-1, 1)), floats_to_bytes(values)], 1)

    def _unpack(self, buf, d, dtype):
        seeds = bytes_to_floats(buf[:, :8], torch.int64).reshape(-1)  # raw int64 bytes
        return seeds, bytes_to_floats(buf[:, 8:], _work_dtype(dtype))

    def output_bounds(self, x: torch.Tensor):
        """Per-coordinate range of ``C_i(x)``: between 0 and ``scale * x_i``."""
        d = x.shape[-1]
        v = x.to(torch.float64) * (d / self.k_of(d) if self.scaled else 1.0)
        return torch.minimum(v, torch.zeros_like(v)), torch.maximum(v, torch.zeros_like(v))

    def outcomes(self, x: torch.Tensor, limit: int = 20000):
        """All ``C(d, k)`` outcomes for one vector ``x`` (float64): ``(probs, values)``."""
        d = x.shape[-1]
        k = self.k_of(d)
        if math.comb(d, k) > limit:
            raise TheorylabError(f"C({d},{k}) = {math.comb(d, k)} outcomes exceed limit={limit}")
        xs = x.to(torch.float64).reshape(d)
        scale = d / k if self.scaled else 1.0
        vals = []
        for S in itertools.combinations(range(d), k):
            v = torch.zeros(d, dtype=torch.float64)
            v[list(S)] = xs[list(S)] * scale
            vals.append(v)
        vals = torch.stack(vals)
        return torch.full((len(vals),), 1.0 / len(vals), dtype=torch.float64), vals


class TopK(_KMixin, Compressor):
    """Keep the ``k`` largest-magnitude coordinates: ``C(x) = sum_{i in top_k(|x|)} x_i e_i``.

    Guarantee (tight, deterministic): B(delta) with ``delta = k/d``:
    ``||C(x) - x||^2 <= (1 - k/d)||x||^2``, with equality when all ``|x_i|`` are equal. Ties are
    broken by ``torch.topk`` (deterministic on a given device).

    Wire: ``k`` indices of ``ceil(log2 d)`` bits each, bit-packed, then ``k`` values:
    ``bits = k (ceil(log2 d) + b)``, no header.

    Parameters
    ----------
    k : int >= 1, or ratio : float in (0, 1]; default ratio 0.01.
    """

    name = "top-k"
    tight = True

    def __init__(self, k: int | None = None, ratio: float | None = None):
        self._init_k(k, ratio)

    def params(self):
        return self._kparams()

    def delta(self, d):
        return self.k_of(d) / d

    def payload_bits(self, d, dtype=torch.float32):
        return self.k_of(d) * (uint_width(d) + _float_bits(_work_dtype(dtype)))

    def _prepare(self, x):
        self.k_of(x.shape[-1])
        return x

    def _quantize(self, x, generator, dtype):
        idx = torch.topk(x.abs(), self.k_of(x.shape[-1]), dim=-1, sorted=False).indices
        return idx, x.gather(1, idx)

    def _reconstruct(self, parts, d, dtype):
        idx, values = parts
        out = torch.zeros(values.shape[0], d, dtype=values.dtype, device=values.device)
        return out.scatter_(1, idx, values)

    def _pack(self, parts, d, dtype):
        idx, values = parts
        return torch.cat([pack_uint(idx, uint_width(d)), floats_to_bytes(values)], 1)

    def _unpack(self, buf, d, dtype):
        k = self.k_of(d)
        nidx = packed_bytes(k * uint_width(d))
        idx = unpack_uint(buf[:, :nidx], k, uint_width(d))
        return idx, bytes_to_floats(buf[:, nidx:], _work_dtype(dtype))


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


# --------------------------------------------------------------------------------------------
# low rank


def _generator_ref(generator):
    """A reference to ``generator`` for keying PowerSGD's warm-start memory.

    A weak reference where torch supports one (torch >= 2.13 on CPU); otherwise (older torch,
    e.g. 2.11's CUDA generators) a strong one, which keeps the generator alive for as long as the
    memory entry exists, so its ``id`` can never be reused by another generator either way.
    """
    try:
        return weakref.ref(generator)
    except TypeError:
        return lambda: generator


class PowerSGD(Compressor):
    """Rank-``r`` compression by one step of power iteration (Vogels et al. 2019), per vector.

    Matrix view: a ``d``-vector is zero-padded and reshaped row-major to ``M`` of shape
    ``n x m`` with ``m = ceil(sqrt(d))``, ``n = ceil(d/m)``; ``r_eff = min(r, n, m)``. Then
    ``P = M Q``, ``P_hat = orth(P)`` (reduced QR), ``Q' = M^T P_hat`` and
    ``C(x) = vec(P_hat Q'^T)[:d]``. ``Q`` is a fresh standard Gaussian ``m x r`` draw from the
    generator, or, with ``warm_start=True``, the previous ``Q'`` for the same (rows, d, dtype,
    device, generator), kept in this object (:meth:`reset` clears it; a fresh generator, even
    one reusing a dead one's id, starts cold). This is the local compressor (each node its own
    ``P``); torch's DDP hook all-reduces ``P`` across workers.

    Guarantee: with ``warm_start=False``, B(delta) *in expectation over Q* with
    ``delta = r_eff / min(n, m)``: ``E||M - P_hat P_hat^T M||^2 <= (1 - r/rank M) ||M||^2``
    ([DERIVED], shared/references/compression.md section 3), attained when ``M`` has
    ``min(n, m)`` equal singular values (e.g. ``x = vec(I)``), but a single draw can exceed it.
    With warm start no contraction is proven (declared: delta None; contractive only
    empirically). Not unbiased. Wire: ``P_hat`` and ``Q'`` as floats of the compute dtype:
    ``bits = (n + m) r_eff b``, no header.
    """

    name = "powersgd"
    stochastic = True
    stateful = True

    def __init__(self, rank: int = 1, warm_start: bool = True):
        self.rank = check_int("rank", rank, minimum=1)
        self.warm_start = _check_bool("warm_start", warm_start)
        self.tight = not self.warm_start
        self._memory: dict = {}

    def params(self):
        return {"rank": self.rank, "warm_start": self.warm_start}

    def reset(self) -> None:
        """Forget the warm-start memory."""
        self._memory.clear()

    def __getstate__(self):
        # pickling (e.g. to a spawned worker) keeps only the memory of the default generator:
        # the others are keyed by generators that do not exist in the receiving process
        state = self.__dict__.copy()
        state["_memory"] = {k: v for k, v in self._memory.items() if v[0] is None}
        return state

    def __deepcopy__(self, memo):
        # a deep copy keeps the whole memory (same generators, same process)
        new = self.__class__.__new__(self.__class__)
        memo[id(self)] = new
        for name, value in self.__dict__.items():
            setattr(new, name, copy.deepcopy(value, memo))
        return new

    @staticmethod
    def view(d: int) -> tuple[int, int]:
        """The matrix view ``(n, m)`` of a ``d``-vector."""
        m = math.isqrt(d - 1) + 1 if d > 1 else 1
        return -(-d // m), m

    def _r(self, d):
        n, m = self.view(d)
        return min(self.rank, n, m)

    def delta(self, d):
        if self.warm_start:
            return None
        n, m = self.view(check_int("d", d, minimum=1))
        return self._r(d) / min(n, m)

    def payload_bits(self, d, dtype=torch.float32):
        n, m = self.view(int(d))
        return (n + m) * self._r(int(d)) * _float_bits(_work_dtype(dtype))

    def _quantize(self, x, generator, dtype):
        rows, d = x.shape
        n, m = self.view(d)
        r = self._r(d)
        # power iteration on M / max|M| (P_hat is scale-free, Q' scales linearly): no overflow
        scale = _row_amax(x).unsqueeze(2)
        scale = torch.where(scale > 0, scale, torch.ones_like(scale))
        M = torch.nn.functional.pad(x, (0, n * m - d)).reshape(rows, n, m) / scale
        # keyed by the generator's id, with a weak reference to check it is the same (live)
        # generator: a later generator that reuses a dead one's id must start cold, else the
        # same seed would give different results depending on memory addresses
        key = (rows, d, x.dtype, x.device, id(generator) if generator is not None else None)
        entry = self._memory.get(key) if self.warm_start else None
        Q = None
        if entry is not None and (generator is None or entry[0]() is generator):
            Q = entry[1]
        if Q is None:
            Q = _normal((rows, m, r), generator, x.device, x.dtype)
        P_hat = torch.linalg.qr(M @ Q).Q
        Q_new = M.transpose(1, 2) @ P_hat
        if self.warm_start:
            for k in [
                k for k, (ref, _) in self._memory.items() if ref is not None and ref() is None
            ]:
                del self._memory[k]  # entries of generators that no longer exist
            ref = _generator_ref(generator) if generator is not None else None
            self._memory[key] = (ref, Q_new)
        return P_hat, Q_new * scale

    def _reconstruct(self, parts, d, dtype):
        P_hat, Q_new = parts
        rows = P_hat.shape[0]
        return (P_hat @ Q_new.transpose(1, 2)).reshape(rows, -1)[:, :d]

    def _pack(self, parts, d, dtype):
        P_hat, Q_new = parts
        rows = P_hat.shape[0]
        return torch.cat(
            [floats_to_bytes(P_hat.reshape(rows, -1)), floats_to_bytes(Q_new.reshape(rows, -1))],
            1,
        )

    def _unpack(self, buf, d, dtype):
        n, m = self.view(d)
        r = self._r(d)
        wd = _work_dtype(dtype)
        nb = n * r * wd.itemsize
        rows = buf.shape[0]
        P_hat = bytes_to_floats(buf[:, :nb], wd).reshape(rows, n, r)
        Q_new = bytes_to_floats(buf[:, nb:], wd).reshape(rows, m, r)
        return P_hat, Q_new


# --------------------------------------------------------------------------------------------
# combinator


class Scaled(Compressor):
    """``C(x) / (1 + omega)`` of an unbiased ``C`` in U(omega): class B(delta) with
    ``delta = 1/(1 + omega)``.

    Proof: ``E||C/(1+w) - x||^2 = E||C||^2/(1+w)^2 - 2||x||^2/(1+w) + ||x||^2
    <= (1 - 1/(1+w))||x||^2`` using ``E||C||^2 <= (1+w)||x||^2``; equality iff ``C``'s variance
    bound is attained, so it is tight exactly where ``C`` is. Same wire format as ``C``.

    Parameters
    ----------
    inner : Compressor with ``unbiased = True``.
    """

    unbiased = False

    def __init__(self, inner: Compressor):
        if not isinstance(inner, Compressor) or not inner.unbiased:
            raise TheorylabError(
                f"Scaled needs an unbiased Compressor (class U(omega)), got {inner!r}"
            )
        self.inner = inner
        self.name = f"scaled({inner.spec})"
        self.tight = inner.tight
        self.stochastic = inner.stochastic
        self.stateful = inner.stateful

    @property
    def spec(self):
        return self.name

    def _factor(self, d):
        return 1.0 + self.inner.omega(d)

    def delta(self, d):
        return 1.0 / self._factor(d)

    def tight_at(self, d):
        return self.inner.tight_at(d)

    def domain(self, dtype=torch.float32):
        return self.inner.domain(dtype)

    def payload_bits(self, d, dtype=torch.float32):
        return self.inner.payload_bits(d, dtype)

    def header_bytes(self, dtype=torch.float32):
        return self.inner.header_bytes(dtype)

    def _prepare(self, x):
        return self.inner._prepare(x)

    def _quantize(self, x, generator, dtype):
        return self.inner._quantize(x, generator, dtype)

    def _reconstruct(self, parts, d, dtype):
        return self.inner._reconstruct(parts, d, dtype) / self._factor(d)

    def _pack(self, parts, d, dtype):
        return self.inner._pack(parts, d, dtype)

    def _unpack(self, buf, d, dtype):
        return self.inner._unpack(buf, d, dtype)

    def coordinate_law(self, x):
        if not hasattr(self.inner, "coordinate_law"):
            raise AttributeError("coordinate_law")
        f = self._factor(x.shape[-1])
        lo, hi, p = self.inner.coordinate_law(x)
        return lo / f, hi / f, p


# --------------------------------------------------------------------------------------------
# registry

#: name -> factory (keyword arguments = the compressor's parameters, all with defaults)
COMPRESSORS: dict[str, Callable[..., Compressor]] = {
    "identity": Identity,
    "fp16": lambda: Cast(torch.float16),
    "bf16": lambda: Cast(torch.bfloat16),
    "rand-k": lambda k=None, ratio=None: RandK(k=k, ratio=ratio, scaled=True),
    "rand-k-unscaled": lambda k=None, ratio=None: RandK(k=k, ratio=ratio, scaled=False),
    "top-k": TopK,
    "qsgd": QSGD,
    "natural": Natural,
    "sign": Sign,
    "scaled-sign": ScaledSign,
    "terngrad": TernGrad,
    "powersgd": PowerSGD,
    "scaled-qsgd": lambda s=7: Scaled(QSGD(s=s)),
}


def get_compressor(spec: str | Compressor) -> Compressor:
    """Build a compressor from a spec string: ``"name"`` or ``"name:key=value,key=value"``,
    or ``"scaled(<spec>)"`` for :class:`Scaled`. A :class:`Compressor` is returned as is.

    >>> get_compressor("rand-k:k=10").omega(100)
    9.0
    >>> get_compressor("scaled(qsgd:s=2)").delta(64)
    0.25

    Raises
    ------
    TheorylabError
        Unknown name, malformed parameter, or invalid parameter value.
    """
    if isinstance(spec, Compressor):
        return spec
    if not isinstance(spec, str):
        raise TypeError(f"spec must be a string or Compressor, got {type(spec).__name__}")
    text = spec.strip()
    if text.startswith("scaled(") and text.endswith(")"):
        return Scaled(get_compressor(text[len("scaled(") : -1]))
    name, _, rest = text.partition(":")
    if name not in COMPRESSORS:
        raise TheorylabError(
            f"unknown compressor {name!r}; choose one of {sorted(COMPRESSORS)} (or scaled(<spec>))"
        )
    kwargs = {}
    for item in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, value = item.partition("=")
        if not eq:
            raise TheorylabError(f"malformed parameter {item!r} in {spec!r}; use key=value")
        kwargs[key.strip()] = _parse_value(value.strip())
    try:
        return COMPRESSORS[name](**kwargs)
    except TypeError as exc:
        if "unexpected keyword" in str(exc):
            raise TheorylabError(f"bad parameter for {name!r} in {spec!r}: {exc}") from exc
        raise
