"""Low-rank compression: PowerSGD (one power-iteration step per vector)."""

from __future__ import annotations

import copy
import math
import weakref

import torch

from theorylab.compressors.base import (
    Compressor,
    _check_bool,
    _float_bits,
    _normal,
    _row_amax,
    _work_dtype,
)
from theorylab.compressors.wire import bytes_to_floats, floats_to_bytes
from theorylab.errors import check_int

__all__ = ["PowerSGD"]

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

    def domain(self, dtype=torch.float32, d=None):
        """``|x_i| <= max / sqrt(d)`` less ``2^-10``: then ``||x|| < max``, which bounds every
        entry of ``Q'`` and of ``C(x)`` (``|(P_hat Q'^T)_ij| <= ||Q'_j|| <= ||M||_F``)."""
        fmax = float(torch.finfo(dtype).max) * (1 - 2.0**-10)
        return (0.0, fmax / math.sqrt(d) if d is not None else 0.0)

    def tight_at(self, d):
        """Cold start and ``n m = d`` (no padding): the padded entries of ``vec(P_hat Q'^T)`` are
        dropped, so for ``n m > d`` the error can stay below ``(1 - r/n) ||x||^2``."""
        n, m = self.view(check_int("d", d, minimum=1))
        return self.tight and n * m == d

    def worst_case_input(self, d):
        """``M`` with orthonormal rows (a 1 per row in distinct columns; the last, possibly
        partial, row uses column 0): ``min(n, m) = n`` equal singular values, where the cold-start
        expectation ``1 - r/n`` is attained."""
        d = check_int("d", d, minimum=1)
        n, m = self.view(d)
        x = torch.zeros(n * m, dtype=torch.float64)
        for i in range(n - 1):
            x[i * m + i + 1] = 1.0
        x[(n - 1) * m] = 1.0
        return x[:d]

    def payload_bits(self, d, dtype=torch.float32):
        n, m = self.view(int(d))
        return (n + m) * self._r(int(d)) * _float_bits(_work_dtype(dtype))

    def _quantize(self, x, generator, dtype):
        rows, d = x.shape
        n, m = self.view(d)
        r = self._r(d)
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
        # 1. P = M Q without materialising the padded M: the full rows of M are a view of x,
        #    the last (partial) row is multiplied by the first L rows of Q
        full = d if n * m == d else (n - 1) * m
        top, last, L = x[:, :full].reshape(rows, -1, m), x[:, full:].unsqueeze(1), d - full
        P = top @ Q
        if L:
            P = torch.cat([P, last @ Q[:, :L]], 1)
        norms = torch.linalg.vector_norm(P, dim=1)
        if bool(((norms > 2.0**-60) & (norms < 2.0**60)).all()):
            # 2. P_hat = orth(P); 3. Q' = M^T P_hat, again from the view and the partial row
            P_hat = torch.linalg.qr(P).Q
            Q_new = top.transpose(1, 2) @ P_hat[:, : top.shape[1]]
            if L:
                Q_new[:, :L] += last.transpose(1, 2) @ P_hat[:, top.shape[1] :]
            sent = Q_new
        else:
            # huge, tiny or zero rows: power iteration on M / max|M| (P_hat is scale-free and
            # Q' scales linearly), on a padded copy; no overflow or underflow
            scale = _row_amax(x).unsqueeze(2)
            scale = torch.where(scale > 0, scale, torch.ones_like(scale))
            M = torch.nn.functional.pad(x, (0, n * m - d)).reshape(rows, n, m) / scale
            P_hat = torch.linalg.qr(M @ Q).Q
            Q_new = M.transpose(1, 2) @ P_hat
            sent = Q_new * scale
        if self.warm_start:
            for k in [
                k for k, (ref, _) in self._memory.items() if ref is not None and ref() is None
            ]:
                del self._memory[k]  # entries of generators that no longer exist
            ref = _generator_ref(generator) if generator is not None else None
            # the next Q: Q' with unit columns (a column scaling of Q leaves span(M Q), hence
            # P_hat, unchanged, and keeps M Q finite whatever the scale of x)
            cn = torch.linalg.vector_norm(Q_new, dim=1, keepdim=True)
            self._memory[key] = (ref, Q_new / torch.where(cn > 0, cn, torch.ones_like(cn)))
        return P_hat, sent

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
