"""Sparsifiers: random-k (indices regenerated from a shared seed) and top-k."""

from __future__ import annotations

import itertools
import math

import numpy as np
import torch

from theorylab.compressors.base import Compressor, _check_bool, _float_bits, _work_dtype
from theorylab.compressors.wire import (
    bytes_to_floats,
    floats_to_bytes,
    pack_uint,
    packed_bytes,
    uint_width,
    unpack_uint,
)
from theorylab.errors import TheorylabError, check_int, check_probability
from theorylab.hashrng import GOLDEN, MIX1, MIX2, stream

__all__ = ["RandK", "TopK"]

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

    def _probe_d(self):
        return max(2, self.k or 1)

    def _kparams(self):
        return {"k": self.k} if self.k is not None else {"ratio": self.ratio}


def _first_distinct(seeds: torch.Tensor, d: int, k: int) -> torch.Tensor:
    """Ascending int64 ``(rows, k)``: the first ``k`` distinct values of ``H_j mod d``
    (``j = 1, 2, ...``, keys ``>= d floor(2^63/d)`` skipped) for each row's seed, ``2k <= d``."""
    limit = (2**63 // d) * d
    # expected draws for k distinct: d (H_d - H_{d-k}) <= -d log(1 - k/d) (+ a margin); more if
    # a row falls short (the answer does not depend on the number of draws computed)
    m = int(-d * math.log1p(-k / d) * 1.02 + 6 * math.sqrt(k) + 16)
    while True:
        if seeds.shape[0] == 1 and seeds.device.type == "cpu":
            keys = _stream_row_np(int(seeds[0]), m)
            vals = keys % np.int64(d)
            if limit < 2**63:
                vals[keys >= limit] = d
            found = _first_distinct_row(vals, d, k)
            if found is not None:
                return torch.from_numpy(found).reshape(1, k)
            if m > 64 * d + 1024:
                raise RuntimeError(f"rand-k index sampling did not find {k} of {d} in {m} draws")
            m *= 2
            continue
        keys = stream(seeds, m)
        vals = keys % d
        if limit < 2**63:  # d not a power of two: skip the keys of the incomplete last block
            vals = torch.where(keys < limit, vals, d)  # d marks a skipped key
        sv, order = _sort_with_positions(vals, d)  # equal values: draw order kept
        first = torch.ones_like(sv, dtype=torch.bool)
        first[:, 1:] = sv[:, 1:] != sv[:, :-1]
        first &= sv < d
        if bool((first.sum(1) >= k).all()):
            break
        if m > 64 * d + 1024:  # P(fewer than k <= d/2 distinct in 64 d draws) < 2^-60
            raise RuntimeError(f"rand-k index sampling did not find {k} of {d} in {m} draws")
        m *= 2
    # keep the distinct values whose first appearance is among the k earliest first appearances
    in_draw_order = torch.zeros_like(first).scatter_(1, order, first)
    cutoff = (in_draw_order.cumsum(1) < k).sum(1, keepdim=True)  # position of the k-th new value
    return sv[first & (order <= cutoff)].reshape(-1, k)


def _stream_row_np(seed: int, count: int) -> np.ndarray:
    """:func:`theorylab.hashrng.stream` of one seed in numpy (uint64 arithmetic wraps mod
    2^64 as the int64 one does; ~10 small torch ops cost more than the arithmetic here).
    Returns the same int64 keys ``H(seed + j G)``, ``j = 1 .. count``."""
    u64 = np.uint64
    z = np.arange(1, count + 1, dtype=np.uint64)
    z *= u64(GOLDEN % 2**64)
    z += u64(seed % 2**64)
    z ^= z >> u64(30)
    z *= u64(MIX1 % 2**64)
    z ^= z >> u64(27)
    z *= u64(MIX2 % 2**64)
    z ^= z >> u64(31)
    z >>= u64(1)
    return z.view(np.int64)


def _first_distinct_row(vals: np.ndarray, d: int, k: int):
    """:func:`_first_distinct` for one row in numpy (the same set, ascending), or None if the
    draws hold fewer than ``k`` distinct values below ``d``: one sort of ``vals * m + position``
    finds each value's first draw, a partition the ``k``-th new value's position."""
    b = (len(vals) - 1).bit_length()
    if (d + 1) << b >= 2**62:
        return None if len(np.unique(vals[vals < d])) < k else _first_distinct_np_slow(vals, d, k)
    combined = np.sort((vals << b) | np.arange(len(vals), dtype=np.int64))
    sv, pos = combined >> b, combined & ((1 << b) - 1)
    first = np.empty(len(sv), dtype=bool)
    first[0] = True
    np.not_equal(sv[1:], sv[:-1], out=first[1:])
    first &= sv < d
    sv, pos = sv[first], pos[first]
    if len(sv) < k:
        return None
    cutoff = np.partition(pos, k - 1)[k - 1]  # draw position of the k-th new value
    return sv[pos <= cutoff]


def _first_distinct_np_slow(vals: np.ndarray, d: int, k: int) -> np.ndarray:
    """Huge ``d`` (positions do not fit beside the values): a stable argsort."""
    order = np.argsort(vals, kind="stable")
    sv = vals[order]
    first = np.ones(len(sv), dtype=bool)
    first[1:] = sv[1:] != sv[:-1]
    first &= sv < d
    sv, pos = sv[first], order[first]
    cutoff = np.partition(pos, k - 1)[k - 1]
    return sv[pos <= cutoff]


def _sort_with_positions(vals: torch.Tensor, d: int):
    """Row-wise sort of non-negative int64 ``vals <= d`` with ties in position order: returns the
    sorted values and their positions. One unstable sort of ``vals * m + position`` (numpy's
    SIMD sort on CPU: ~30x torch's stable sort at 10^4 int64 on one thread)."""
    b = (vals.shape[1] - 1).bit_length()  # positions fit in b bits
    if (d + 1) << b >= 2**62:
        sv, order = torch.sort(vals, dim=1, stable=True)
        return sv, order
    pos = torch.arange(vals.shape[1], dtype=torch.int64, device=vals.device)
    combined = (vals << b) | pos
    if combined.device.type == "cpu":
        combined = torch.from_numpy(np.sort(combined.numpy(), axis=1))
    else:
        combined = torch.sort(combined, dim=1).values
    return combined >> b, combined & ((1 << b) - 1)


class RandK(_KMixin, Compressor):
    """Random sparsification: keep ``k`` coordinates chosen uniformly without replacement.

    ``C(x) = (d/k) sum_{i in S} x_i e_i`` (``scaled=True``) or ``sum_{i in S} x_i e_i``
    (``scaled=False``), ``S`` a uniform ``k``-subset.

    Guarantee (tight, an equality for every x): scaled is U(omega) with ``omega = d/k - 1``
    (``E||C(x) - x||^2 = (d/k - 1)||x||^2``); unscaled is B(delta) with ``delta = k/d``
    (``E||C(x) - x||^2 = (1 - k/d)||x||^2``).

    Wire: a shared seed instead of indices (the receiver regenerates ``S``): a 64-bit header
    holding the row's seed (drawn from ``generator``), then the ``k`` values: ``bits = 64 + k b``.

    Index sampling (integer arithmetic only, so identical on every device; :mod:`theorylab.hashrng`
    keys ``H_j = splitmix64(seed + j G)``): for ``2k <= d`` the first ``k`` distinct values of
    the sequence ``H_j mod d`` (``j = 1, 2, ...``; keys ``>= d floor(2^63/d)`` are skipped, so
    each value is exactly uniform), in ``O(k log k)``: the first ``k`` distinct values of an
    i.i.d. uniform sequence form a uniform ``k``-subset, whatever the number of draws computed.
    For ``2k > d``: the ``k`` coordinates with the smallest keys ``H_1 .. H_d`` (``O(d)``, which
    the output costs anyway). The kept indices are sent in ascending order.

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

    def domain(self, dtype=torch.float32, d=None):
        """Scaled: ``|x_i| <= (k/d) max`` (``C(x)`` reaches ``(d/k) x_i``), less ``2^-10``."""
        fmax = float(torch.finfo(dtype).max)
        if not self.scaled:
            return (0.0, fmax)
        return (0.0, fmax * (1 - 2.0**-10) * self.k_of(d) / d if d is not None else 0.0)

    def payload_bits(self, d, dtype=torch.float32):
        return self.k_of(d) * _float_bits(_work_dtype(dtype))

    def _prepare(self, x):
        self.k_of(x.shape[-1])
        return x

    def _indices(self, seeds: torch.Tensor, d: int, device) -> torch.Tensor:
        """The kept set of each row (int64 ``(rows, k)``), a uniform ``k``-subset computed from
        the row's seed with integer arithmetic only (identical on every device, vectorised over
        rows); see the class docstring."""
        k = self.k_of(d)
        seeds = seeds.to(device).reshape(-1)
        if 2 * k > d:
            idx = torch.topk(stream(seeds, d), k, dim=1, largest=False, sorted=False).indices
            return idx.sort(dim=1).values
        return _first_distinct(seeds, d, k)

    def _quantize(self, x, generator, dtype):
        gdev = generator.device if generator is not None else x.device
        seeds = torch.randint(0, 2**62, (x.shape[0],), generator=generator, device=gdev)
        seeds = seeds.to(x.device)
        idx = self._indices(seeds, x.shape[-1], x.device)
        return seeds, x.gather(1, idx)

    def _reconstruct(self, parts, d, dtype):
        return self._reconstruct_times(parts, d, dtype, 1.0)

    def _reconstruct_times(self, parts, d, dtype, c):
        seeds, values = parts
        idx = self._indices(seeds, d, values.device)
        gain = c * (d / self.k_of(d) if self.scaled else 1.0)
        if gain != 1.0:
            values = values * gain
        out = torch.zeros(values.shape[0], d, dtype=values.dtype, device=values.device)
        return out.scatter_(1, idx, values)

    def _pack(self, parts, d, dtype):
        seeds, values = parts
        return torch.cat([floats_to_bytes(seeds.reshape(-1, 1)), floats_to_bytes(values)], 1)

    def _decode_sum_rows(self, bufs, d, dtype):
        return _sparse_sum(self, bufs, d, dtype, lambda p: self._reconstruct_parts(p, d))

    def _reconstruct_parts(self, parts, d):
        """The kept indices and their decoded values (``_reconstruct_times`` with ``c = 1``)."""
        seeds, values = parts
        idx = self._indices(seeds, d, values.device)
        gain = d / self.k_of(d) if self.scaled else 1.0
        return idx, values * gain if gain != 1.0 else values

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


#: smallest d for which :func:`_top_k_sampled` is tried, and its sample size
_SAMPLE_MIN_D = 1 << 15
_SAMPLE = 1 << 14


def _top_k_sampled(a: np.ndarray, k: int):
    """The ``k`` largest of ``a >= 0`` (1-D) by a threshold from a strided sample: ``t`` = a
    sample order statistic a little above the ``k``-th largest's expected rank, candidates
    ``a_i >= t`` (one comparison), then an exact selection among the candidates. The result
    is exactly that of a full selection: when at least ``k`` candidates exist, every entry
    ``>=`` the ``k``-th largest is one of them. Returns ``(True, ascending indices)``, or
    ``(True, None)`` when the set is not unique (ties at the ``k``-th largest), or
    ``(False, None)`` when the sample was unrepresentative (fewer than ``k`` candidates: the
    caller selects on the whole row). ~2x a full introselect at ``d = 10^6``, ``k = 10^4``."""
    d = len(a)
    stride = max(1, d // _SAMPLE)
    sample = a[::stride]
    ns = len(sample)
    kk = min(ns, math.ceil(1.2 * k * ns / d) + 16)  # 20 % + 16 above the expected rank
    t = np.partition(sample, ns - kk)[ns - kk]
    cand = np.flatnonzero(a >= t)
    if len(cand) < k:
        return False, None
    ac = a[cand]
    kth = np.partition(ac, len(ac) - k)[len(ac) - k]
    keep = cand[ac >= kth]
    return True, keep if len(keep) == k else None


def _top_k_unique(x: torch.Tensor, k: int) -> torch.Tensor | None:
    """The ``k`` largest ``|x_i|`` of each CPU row, ascending indices, when that set is unique
    (exactly ``k`` entries at or above the ``k``-th largest), else None (ties at the boundary:
    :func:`torch.topk` breaks them). numpy's introselect and one comparison: ~4x ``torch.topk``
    at ``d = 10^6``, ``k = 10^4`` on one CPU thread."""
    a = np.abs(x.detach().numpy())
    d = a.shape[-1]
    if a.shape[0] == 1 and d >= _SAMPLE_MIN_D and 8 * k <= d:
        found, idx = _top_k_sampled(a[0], k)
        if found:
            return None if idx is None else torch.from_numpy(idx).reshape(1, k)
    t = np.partition(a, d - k, axis=-1)[:, d - k : d - k + 1]  # the k-th largest per row
    keep = a >= t
    if a.shape[0] == 1:
        idx = np.flatnonzero(keep)
        return torch.from_numpy(idx).reshape(1, k) if len(idx) == k else None
    if not (np.count_nonzero(keep, axis=-1) == k).all():
        return None
    return torch.from_numpy(np.nonzero(keep)[1].reshape(-1, k))


class TopK(_KMixin, Compressor):
    """Keep the ``k`` largest-magnitude coordinates: ``C(x) = sum_{i in top_k(|x|)} x_i e_i``.

    Guarantee (tight, deterministic): B(delta) with ``delta = k/d``:
    ``||C(x) - x||^2 <= (1 - k/d)||x||^2``, with equality when all ``|x_i|`` are equal. Ties are
    broken by ``torch.topk`` (deterministic on a given device); on CPU, when the
    set is unique, it is found by a numpy selection and the indices are sent in ascending order.

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
        k = self.k_of(x.shape[-1])
        idx = _top_k_unique(x, k) if x.device.type == "cpu" else None
        if idx is None:
            idx = torch.topk(x.abs(), k, dim=-1, sorted=False).indices
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

    def _decode_sum_rows(self, bufs, d, dtype):
        return _sparse_sum(self, bufs, d, dtype, lambda p: p)


def _sparse_sum(C, bufs, d, dtype, kept) -> torch.Tensor:
    """``sum_j`` of sparse messages in one dense accumulator: ``kept(parts) -> (idx, values)``
    with distinct indices per row, so ``scatter_add_`` adds each value once (equal to the sum
    of the dense decodes: adding the zeros between them changes nothing but a -0)."""
    first = C._unpack(bufs[0], d, dtype)
    acc = None
    for b in bufs:
        idx, values = kept(first if b is bufs[0] else C._unpack(b, d, dtype))
        if acc is None:
            acc = torch.zeros(values.shape[0], d, dtype=values.dtype, device=values.device)
        acc.scatter_add_(1, idx, values)
    return acc
