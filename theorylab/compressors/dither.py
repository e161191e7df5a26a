"""Stochastic rounding by integer thresholds: the dithering of QSGD and TernGrad on CPU.

A coordinate ``r >= 0`` (in units of one level) is rounded to ``floor(r) + 1`` with probability
``frac(r)`` and to ``floor(r)`` otherwise. Here ``r`` is held in fixed point with ``F`` fractional
bits, ``R = trunc(fl(x c))``, and one raw 32-bit random word per coordinate supplies a uniform
``u`` on ``[0, 2^F)``: one integer addition and a shift give the signed code, and the
probability of rounding up is exactly ``frac_F(R) / 2^F`` -- no float uniforms (which cost
twice the raw words and have 24 bits), no comparison pass. :func:`dither_codes_np` states the
arithmetic and its exactness; ``tests/test_compressor_dither.py`` checks it at every threshold.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["fixed_point_bits", "dither_scale", "dither_codes_np", "dither_codes"]

#: elements per numpy call in :func:`dither_codes` (its buffers stay in the L2 cache)
_DITHER_CHUNK = 1 << 16

#: ``sum_j 3^(4-j) 2^(8j)``: five base-3 digits in bytes to one byte (see dither_codes_np)
_TRIT_MAGIC = np.uint64(81 + (27 << 8) + (9 << 16) + (3 << 24) + (1 << 32))


def fixed_point_bits(s: int) -> int:
    """Fractional bits ``F = 32 - ceil(log2(2s + 1))`` of :func:`dither_codes` for ``s`` levels:
    the largest ``F`` with ``(2s + 1) 2^F <= 2^32``, so every sum it forms fits a uint32."""
    return 32 - (2 * int(s)).bit_length()


def dither_scale(s: int, norm: torch.Tensor) -> torch.Tensor:
    """The float32 scale ``c`` of :func:`dither_codes`: ``s 2^F / norm`` rounded *down* to a
    float32 (so that ``|x_i| <= norm`` gives ``fl(|x_i| c) <= s 2^F``), 0 where ``norm`` is 0.

    ``norm``: float32 ``(rows, 1)``, finite, each row 0 or at least ``2^-90`` (so ``c`` is a
    finite float32)."""
    top = float(s * 2 ** fixed_point_bits(s))
    if norm.device.type == "cpu" and norm.dtype == torch.float32:
        # the same arithmetic in numpy (a few small torch ops cost ~20 us each)
        n64 = norm.detach().numpy().astype(np.float64)
        pos = n64 > 0
        c64 = top / np.where(pos, n64, 1.0)
        c = c64.astype(np.float32)
        c = np.where(c.astype(np.float64) > c64, np.nextafter(c, np.float32(0)), c)
        return torch.from_numpy(np.where(pos, c, np.float32(0)))
    n64 = norm.to(torch.float64)
    c64 = top / torch.where(n64 > 0, n64, torch.ones_like(n64))
    c = c64.to(torch.float32)
    c = torch.where(c.to(torch.float64) > c64, torch.nextafter(c, torch.zeros_like(c)), c)
    return torch.where(n64 > 0, c, torch.zeros_like(c))


def dither_codes_np(
    x: np.ndarray, c: np.ndarray, words, s: int, pack: str | None = None
) -> np.ndarray:
    """Stochastic rounding by integer thresholds: ``uint8`` codes ``s + sgn(x_i) xi_i`` in
    ``[0, 2s]`` from float32 ``x`` ``(rows, d)``, float32 scales ``c`` ``(rows, 1)`` and raw
    uint32 random words: ``words(count)`` returns the next ``count`` of them (row-major).

    With ``F = fixed_point_bits(s)``, ``R_i = trunc(fl(x_i c))`` is ``x_i c`` in fixed point
    (``|R_i| <= s 2^F`` is the caller's promise: :func:`dither_scale`), ``u_i`` the top ``F``
    bits of word ``i`` (uniform on ``[0, 2^F)``) and the code is ``(s 2^F + R_i + u_i) >> F``
    (the sum is in ``[0, (2s + 1) 2^F)``; computed as ``((R_i + u_i) >> F) + s`` with an
    arithmetic shift in int32, where ``R_i + u_i < (s + 1) 2^F <= 2^31``). Writing
    ``|R_i| = l 2^F + f`` (``0 <= f < 2^F``): for ``x_i >= 0`` the code is
    ``s + l + [u_i >= 2^F - f]`` and for ``x_i < 0`` it is ``s - l - [u_i < f]``; either way
    ``xi_i = l + 1`` with probability exactly ``f / 2^F`` and ``l`` otherwise, so
    ``E xi_i = |R_i| / 2^F`` exactly, and ``0``, ``-0`` and any ``R_i = 0`` give the code ``s``
    (sgn(0) = +1). Relative to ``r_i = |x_i| c / 2^F`` the only errors are the float32 product
    (relative ``2^-24``) and the truncation (``< 2^-F``, absolute, in units of one level).

    Works on chunks of :data:`_DITHER_CHUNK` elements: numpy passes over data held in the
    cache, and small buffers that the allocator reuses (fresh multi-megabyte buffers cost more
    in page faults than the arithmetic). ``pack="nibbles"`` (4-bit codes, ``2 <= s <= 7``)
    returns the codes packed as :func:`~theorylab.compressors.wire.pack_uint` at width 4 does,
    ``(rows, ceil(d / 2))``; ``pack="trits"`` (``s = 1``) as
    :func:`~theorylab.compressors.wire.pack_trits` does, ``(rows, ceil(d / 5))``; packed chunk
    by chunk (no code array).
    """
    s = int(s)
    F = fixed_point_bits(s)
    w = 32 - F
    rows, d = x.shape
    per = {None: 1, "nibbles": 2, "trits": 5}[pack]  # codes per output byte
    if pack == "nibbles" and w != 4 or pack == "trits" and s != 1:
        raise ValueError(f"pack={pack!r} needs 4-bit codes (2 <= s <= 7) or s = 1, got s={s}")
    offset = np.uint8(s)
    cols = max(10, _DITHER_CHUNK - _DITHER_CHUNK % 10)  # chunks start on a byte
    if d >= cols:
        spans = [(r, r + 1, j, min(d, j + cols)) for r in range(rows) for j in range(0, d, cols)]
    else:
        step = max(1, cols // d)
        spans = [(r, min(rows, r + step), 0, d) for r in range(0, rows, step)]
    R = np.empty(min(rows * d, max(cols, d)), dtype=np.int32)
    out = np.empty((rows, -(-d // per)), dtype=np.uint8)
    if pack is not None:
        c8 = np.empty(len(R) + 4 * rows + 8, dtype=np.uint8)  # + 8: the last uint64 read
        h16 = np.empty((len(R) + 4 * rows) // 2, dtype=np.uint16)
        p64 = np.empty((len(R) + 4 * rows) // 5 + 1, dtype=np.uint64)
    for r0, r1, j0, j1 in spans:
        size = (r1 - r0) * (j1 - j0)
        t = R[:size].reshape(r1 - r0, j1 - j0)
        u = words(size).reshape(r1 - r0, j1 - j0)
        np.multiply(x[r0:r1, j0:j1], c[r0:r1], out=t, casting="unsafe")  # R = trunc(x c)
        np.right_shift(u, w, out=u)  # u in [0, 2^F)
        # in int32: R + u is in [-s 2^F, (s + 1) 2^F) and (s + 1) 2^F <= 2^31 (2^(w-1) > s),
        # and the arithmetic shift floors: (R + u) >> F = ((s 2^F + R + u) >> F) - s; the
        # offset s is added to the bytes (a quarter of the memory traffic of the words)
        t += u.view(np.int32)
        np.right_shift(t, F, out=t)
        if pack is None:
            o = out[r0:r1, j0:j1]
            np.copyto(o, t, casting="unsafe")  # mod 2^8
            o += offset
            continue
        nc = j1 - j0
        ne = -(-nc // per) * per  # whole bytes (zero codes pad the row's last one)
        cc = c8[: (r1 - r0) * ne].reshape(r1 - r0, ne)
        if ne != nc:
            cc[:, nc:] = 0
        np.copyto(cc[:, :nc], t, casting="unsafe")  # mod 2^8
        cc[:, :nc] += offset
        o = out[r0:r1, j0 // per : j0 // per + ne // per]
        if pack == "nibbles":
            # codes a, b as the int16 a + 256 b: the byte a + 16 b is the low byte of
            # v | (v >> 4)
            v = cc.view(np.uint16)
            h = h16[: v.size].reshape(v.shape)
            np.right_shift(v, 4, out=h)
            h |= v
            np.copyto(o, h, casting="unsafe")
        else:
            # base 3, least significant digit first: the 8 bytes from each group's first
            # digit as a little-endian uint64 v = sum_k d_k 2^(8k) (+ higher garbage bytes),
            # times M = sum_j 3^(4-j) 2^(8j): byte 4 of the product is sum_k d_k 3^k (<= 242)
            # and no lower byte carries into it (byte p < 4 is sum_{k<=p} d_k 3^(4-p+k)
            # <= 240); ~2x fewer passes than Horner on strided digits
            groups = cc.size // 5
            v = np.ndarray((groups,), dtype=np.uint64, buffer=c8, strides=(5,))
            prod = p64[:groups]
            np.multiply(v, _TRIT_MAGIC, out=prod)
            np.copyto(o, prod.view(np.uint8)[4::8].reshape(o.shape))
    return out


def _sfc64_words(seed: int):
    """``words(count)``: the next ``count`` uint32 words of numpy's SFC64 stream of ``seed``
    (the low then the high half of each 64-bit output), drawn in small pieces."""
    bitgen = np.random.SFC64(seed)
    spare = []

    def words(count: int) -> np.ndarray:
        have = len(spare) and 1
        need = count - have
        raw = bitgen.random_raw((need + 1) // 2).view(np.uint32)
        if have:
            raw = np.concatenate([spare, raw])
            spare.clear()
        if len(raw) > count:
            spare.append(raw[count])
        return raw[:count]

    return words


def dither_codes(
    x: torch.Tensor, c: torch.Tensor, s: int, generator, pack: str | None = None
) -> torch.Tensor:
    """:func:`dither_codes_np` on CPU float32 rows ``x`` with scales ``c`` ``(rows, 1)``, its
    random words drawn as in :func:`_uniform`: one 62-bit seed from ``generator`` per call,
    then numpy's SFC64 stream of that seed, 32 bits per coordinate, row-major. Returns uint8
    codes ``(rows, d)`` in ``[0, 2s]`` (``pack``: packed, see :func:`dither_codes_np`)."""
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    codes = dither_codes_np(
        x.detach().numpy(), c.detach().numpy(), _sfc64_words(seed), int(s), pack
    )
    return torch.from_numpy(codes)
