"""The compressor base class, shared numerics, :class:`Identity` and the :class:`Scaled`
combinator (classes, declarations and wire layout: see :mod:`theorylab.compressors`)."""

from __future__ import annotations

import abc
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from theorylab.compressors.wire import (
    bytes_to_floats,
    floats_to_bytes,
    lookup_bytes_sum,
    packed_bytes,
)
from theorylab.errors import TheorylabError, check_int

__all__ = ["Compressor", "Identity", "Scaled", "check_vector", "amax_abs"]

_FLOATS = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


# --------------------------------------------------------------------------------------------
# helpers


def check_vector(x, name: str = "x") -> torch.Tensor:
    """Validate a tensor to compress: floating, at least 1-D, non-empty, all entries finite.

    One reduction over the data (:func:`amax_abs`).

    Raises
    ------
    TypeError
        ``x`` is not a tensor or not of a floating dtype (float16, bfloat16, float32, float64).
    TheorylabError
        ``x`` is 0-D or empty, or has a NaN or infinite entry.
    """
    amax_abs(_check_kind(x, name), name)
    return x


def _check_kind(x, name: str = "x") -> torch.Tensor:
    """The type, dtype and shape checks of :func:`check_vector` (no pass over the data)."""
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
    return x


def amax_abs(x: torch.Tensor, name: str = "x") -> float:
    """``max_i |x_i|`` in one pass (``aminmax``: no ``|x|`` temporary, and NaN and inf propagate,
    so one reduction both validates and measures ``x``).

    Raises
    ------
    TheorylabError
        ``x`` has a NaN or infinite entry.
    """
    lo, hi = torch.aminmax(x)
    m = max(-float(lo), float(hi))
    if not math.isfinite(m):
        raise TheorylabError(
            f"{name} has NaN or infinite entries; compressors are defined for "
            "finite vectors only (check the gradient for overflow)"
        )
    return m


def _work_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def _float_bits(dtype: torch.dtype) -> int:
    return torch.finfo(dtype).bits


def _uniform(shape, generator, device, dtype) -> torch.Tensor:
    """Uniform [0, 1) draws of ``dtype`` from ``generator``, on ``device``.

    A CPU generator (or None with a CPU ``device``) gives one 62-bit seed to numpy's SFC64 bit
    generator, whose raw 64-bit words become the draws: two float32 draws per word (the top 24
    bits of each 32-bit half times ``2^-24``, the resolution of ``torch.rand``) or one float64
    draw (the top 53 bits times ``2^-53``). float32 at ``d = 10^6`` on one thread: 1.6 ms of
    CPU time against 2.9 ms for ``torch.rand``'s Mersenne twister, and on a loaded machine
    2-4 ms against 9-11 ms of wall clock (no second d-sized buffer to fault in); the same
    values whatever ``device`` the result is moved to. A CUDA generator (or float16/bfloat16)
    draws with ``torch.rand`` on the generator's device, as before.
    """
    gdev = torch.device(generator.device if generator is not None else device)
    if gdev.type != "cpu" or dtype not in (torch.float32, torch.float64):
        return torch.rand(shape, generator=generator, device=gdev, dtype=dtype).to(device)
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    n = math.prod(shape)
    bitgen = np.random.SFC64(seed)
    if dtype == torch.float32:
        v = bitgen.random_raw((n + 1) // 2).view(np.uint32)[:n]
        shift, scale, ftype = 8, np.float32(2.0**-24), np.float32  # top 24 bits of each half
    else:
        v = bitgen.random_raw(n)
        shift, scale, ftype = 11, 2.0**-53, np.float64  # top 53 bits
    np.right_shift(v, shift, out=v)
    u = v.view(ftype)
    # the integers become floats in their own buffer, a chunk at a time (numpy copies only the
    # overlapping chunk): no second d-sized buffer, whose page faults cost more than the
    # arithmetic on a loaded machine
    for i in range(0, n, _CHUNK):
        j = min(n, i + _CHUNK)
        np.multiply(v[i:j], scale, out=u[i:j], dtype=ftype, casting="unsafe")
    return torch.from_numpy(u).reshape(shape).to(device)


#: elements converted per numpy call in :func:`_uniform` (small enough for the cache)
_CHUNK = 1 << 15


def _normal(shape, generator, device, dtype) -> torch.Tensor:
    gdev = generator.device if generator is not None else device
    return torch.randn(shape, generator=generator, device=gdev, dtype=dtype).to(device)


def _row_amax(a: torch.Tensor) -> torch.Tensor:
    """``max_i |a_i|`` per row, ``(rows, 1)``: ``amax`` and ``amin`` (no ``|a|`` temporary;
    ``aminmax`` along a dimension is ~10x slower on CPU)."""
    return torch.maximum(a.amax(dim=-1, keepdim=True), a.amin(dim=-1, keepdim=True).neg_())


def _row_absmax(x: torch.Tensor) -> torch.Tensor:
    """:func:`_row_amax` (NaN propagates), by one ``aminmax`` over the tensor when there is a
    single row (~1.5x the two reductions)."""
    if x.shape[0] == 1:
        lo, hi = torch.aminmax(x)
        return torch.maximum(hi, lo.neg()).reshape(1, 1)
    return _row_amax(x)


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
    return m * (x / safe).abs_().mean(dim=-1, keepdim=True)


def _l1mean_fast(x: torch.Tensor) -> torch.Tensor:
    """:func:`_l1mean` as ``sum |x_i| / d`` (two passes instead of five) where that sum does
    not overflow, else the scaled form."""
    s1 = x.abs().sum(dim=-1, keepdim=True)
    if bool(torch.isfinite(s1).all()):
        return s1 / x.shape[-1]
    return _l1mean(x)


def _sign_pm(x: torch.Tensor) -> torch.Tensor:
    """+1 where ``x >= 0`` and -1 where ``x < 0`` (sgn(0) = +1, as in QSGD and 1-bit SGD)."""
    return torch.where(x < 0, -torch.ones_like(x), torch.ones_like(x))


def _check_bool(name: str, value) -> bool:
    """Return ``value`` if it is a bool (Python or numpy), else raise naming it."""
    if not isinstance(value, bool) and type(value).__name__ != "bool_":
        raise TypeError(
            f"{name} must be True or False, got {value!r} of type {type(value).__name__}; "
            f"in a spec string write {name}=true or {name}=false"
        )
    return bool(value)


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

    def domain(
        self, dtype: torch.dtype = torch.float32, d: int | None = None
    ) -> tuple[float, float]:
        """Range ``(lo, hi)`` of nonzero ``|x_i|`` (``x`` of ``dtype``, rows of length ``d``) on
        which the declarations hold and ``C(x)`` and its message are finite; above ``hi``,
        compress and encode raise. Default: every finite value. ``d=None``: the range for every
        ``d`` (the intersection)."""
        return (0.0, float(torch.finfo(dtype).max))

    def worst_case_input(self, d: int) -> torch.Tensor:
        """A float64 ``d``-vector where the declared omega (unbiased) or delta is attained, or
        approached as closely as the declaration allows (:meth:`tight_at` says whether it is
        attained). Default: the all-ones vector (every coordinate tied)."""
        return torch.ones(check_int("d", d, minimum=1), dtype=torch.float64)

    @property
    def kind(self) -> str:
        """``"U"`` (unbiased), ``"B"`` (contractive), or ``"-"`` (neither is declared)."""
        return self.kind_at(self._probe_d())

    def kind_at(self, d: int) -> str:
        """The class at dimension ``d``: ``"U"``, ``"B"`` or ``"-"``."""
        if self.unbiased:
            return "U"
        return "B" if self.delta(d) is not None else "-"

    def _probe_d(self) -> int:
        """A dimension at which the declarations are defined (for :attr:`kind`)."""
        return 2

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

    def _reconstruct_times(self, parts: tuple, d: int, dtype: torch.dtype, c: float):
        """``c C(x)`` from the message (:class:`Scaled` uses it; subclasses fold ``c`` into a
        scalar so that ``C(x)`` itself never has to be representable)."""
        return self._reconstruct(parts, d, dtype) * c

    def _decode_rows(self, buf: torch.Tensor, d: int, dtype: torch.dtype) -> torch.Tensor:
        """``C(x)`` rows from ``uint8 (rows, row_bytes)``; subclasses may fuse unpacking and
        reconstruction (a lookup table) as long as the values are bit-identical."""
        return self._reconstruct(self._unpack(buf, d, dtype), d, dtype)

    def _decode_rows_times(self, buf: torch.Tensor, d: int, dtype: torch.dtype, c: float):
        """``c C(x)`` rows from the message bytes (:class:`Scaled`)."""
        return self._reconstruct_times(self._unpack(buf, d, dtype), d, dtype, c)

    def _byte_lookup_times(self, buf: torch.Tensor, d: int, dtype: torch.dtype, c: float):
        """:meth:`_byte_lookup` of ``c C(x)`` (:class:`Scaled`); None by default."""
        return None

    def _byte_lookup(self, buf: torch.Tensor, d: int, dtype: torch.dtype):
        """``(payload, table)`` with ``_decode_rows(buf) == lookup_bytes(payload, d, table)``
        (bit for bit) for decoders by a table of whole bytes, else None (the default)."""
        return None

    def _decode_sum_rows(self, bufs: list, d: int, dtype: torch.dtype) -> torch.Tensor:
        """``_decode_rows(bufs[0]) + _decode_rows(bufs[1]) + ...`` left to right. Default: by
        column chunks where the decoder is a byte table, else one message at a time into one
        accumulator (the first decoded copy, if it is a view of its buffer)."""
        parts = [self._byte_lookup(b, d, dtype) for b in bufs]
        if all(p is not None for p in parts):
            return lookup_bytes_sum([p[0] for p in parts], d, [p[1] for p in parts])
        acc = self._decode_rows(bufs[0], d, dtype)
        if acc.untyped_storage().data_ptr() == bufs[0].untyped_storage().data_ptr():
            acc = acc.clone()
        for b in bufs[1:]:
            acc += self._decode_rows(b, d, dtype)
        return acc

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        """Hook for validation that depends on the compressor (k <= d, ranges)."""
        return x

    def _rows(self, x: torch.Tensor) -> torch.Tensor:
        _check_kind(x)
        d = x.shape[-1]
        hi = self.domain(x.dtype, d)[1]
        # one reduction validates: ||x||_2 is NaN or inf if an entry is, and bounds every
        # |x_i| (a vectorised sum of squares: ~0.6x aminmax); only if it exceeds the domain
        # (or overflows) is the exact maximum needed
        if x.dtype in (torch.float32, torch.float64) and float(torch.linalg.vector_norm(x)) <= hi:
            return self._prepare(x.reshape(-1, d))
        m = amax_abs(x)  # one pass validates (NaN/inf) and measures x
        if m > hi:
            raise TheorylabError(
                f"{self.spec} at d={d} is declared for |x_i| <= {hi:.6g} in {x.dtype} "
                f"(above it C(x) or its message overflows); got |x_i| up to {m:.6g}: "
                "scale x down or use a wider dtype"
            )
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
        shape = self._check_buf(buf, shape, dtype)
        device = buf.device if device is None else torch.device(device)
        d = shape[-1]
        rows = buf.to(device).reshape(-1, self.row_bytes(d, dtype))
        y = self._decode_rows(rows, d, dtype)
        return y.to(dtype).reshape(shape)

    def decode_sum(
        self,
        bufs: Sequence[torch.Tensor],
        shape: Sequence[int],
        dtype: torch.dtype = torch.float32,
        device=None,
    ) -> torch.Tensor:
        """``sum_j C(x_j)`` from the messages ``bufs`` (each from :meth:`encode` of an ``x_j``
        of ``shape`` and ``dtype``): equal (``==``; a ``-0`` may come out as ``+0``) to
        ``decode(bufs[0]) + decode(bufs[1]) + ...`` added left to right in ``dtype``, without a
        dense tensor per message where the format allows (byte-table decoders work a chunk of
        columns at a time; sparsifiers add their ``k`` values into one accumulator; casts
        and the identity add the received values in place). This is the receiving side of an
        all-gather of compressed messages (a compressed mean is ``decode_sum / n``).

        Raises
        ------
        TypeError, TheorylabError
            As :meth:`decode`, for any message; an empty ``bufs``.
        """
        bufs = list(bufs)
        if not bufs:
            raise TheorylabError("decode_sum needs at least one message")
        shape = tuple(int(s) for s in shape)
        for b in bufs:
            self._check_buf(b, shape, dtype)
        if _work_dtype(dtype) != dtype:  # a sum in float16/bfloat16: decode, then add
            acc = self.decode(bufs[0], shape, dtype, device).clone()
            for b in bufs[1:]:
                acc += self.decode(b, shape, dtype, device)
            return acc
        device = bufs[0].device if device is None else torch.device(device)
        d = shape[-1]
        rows = [b.to(device).reshape(-1, self.row_bytes(d, dtype)) for b in bufs]
        return self._decode_sum_rows(rows, d, dtype).reshape(shape)

    def _check_buf(self, buf, shape, dtype) -> tuple:
        if not isinstance(buf, torch.Tensor) or buf.dtype != torch.uint8 or buf.dim() != 1:
            raise TypeError("buf must be a 1-D torch.uint8 tensor produced by encode()")
        shape = tuple(int(s) for s in shape)
        expected = self.nbytes(shape, dtype)
        if buf.numel() != expected:
            raise TheorylabError(
                f"buf has {buf.numel()} bytes but {self.spec} encodes shape {shape} of {dtype} "
                f"in {expected}; pass the shape and dtype that were encoded"
            )
        return shape

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
            "class": self.kind_at(d),
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

    def _decode_sum_rows(self, bufs, d, dtype):
        wd = _work_dtype(dtype)
        views = [bytes_to_floats(b, wd) for b in bufs]  # the received bytes, not copied
        if len(views) == 1:
            return views[0].clone()
        acc = torch.add(views[0], views[1])
        for v in views[2:]:
            acc += v
        return acc


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

    def domain(self, dtype=torch.float32, d=None):
        return self.inner.domain(dtype, d)

    def _probe_d(self):
        return self.inner._probe_d()

    def worst_case_input(self, d):
        return self.inner.worst_case_input(d)

    def payload_bits(self, d, dtype=torch.float32):
        return self.inner.payload_bits(d, dtype)

    def header_bytes(self, dtype=torch.float32):
        return self.inner.header_bytes(dtype)

    def _prepare(self, x):
        return self.inner._prepare(x)

    def _quantize(self, x, generator, dtype):
        return self.inner._quantize(x, generator, dtype)

    def _reconstruct(self, parts, d, dtype):
        return self.inner._reconstruct_times(parts, d, dtype, 1.0 / self._factor(d))

    def _decode_rows(self, buf, d, dtype):
        return self.inner._decode_rows_times(buf, d, dtype, 1.0 / self._factor(d))

    def _byte_lookup(self, buf, d, dtype):
        return self.inner._byte_lookup_times(buf, d, dtype, 1.0 / self._factor(d))

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
