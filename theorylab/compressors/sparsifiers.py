"""Sparsifiers: random-k (indices regenerated from a shared seed) and top-k."""

from __future__ import annotations

import itertools
import math

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
from theorylab.hashrng import GOLDEN, splitmix64

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
        keys = splitmix64(seeds.to(device).unsqueeze(1) + j * GOLDEN)
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
