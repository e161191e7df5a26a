"""Bit packing for compressed messages: signs, ternary digits, b-bit levels and compact indices.

Every helper is vectorised over a leading batch of rows (no Python loop over coordinates) and
works on any device. Conventions, fixed once for the whole wire format:

- **bit order**: LSB first. Bit ``j`` of byte ``i`` of a row holds bit number ``8 i + j`` of the
  row's bit stream; an unsigned ``w``-bit integer occupies ``w`` consecutive stream bits, least
  significant bit first. Unused bits of the last byte are zero.
- **ternary**: base-3 packing, 5 trits per byte (``3^5 = 243 <= 256``): byte ``i`` holds
  ``t[5i] + 3 t[5i+1] + 9 t[5i+2] + 27 t[5i+3] + 81 t[5i+4]``; ``n`` trits take
  ``ceil(n / 5)`` bytes, i.e. 1.6 bits per trit (the entropy bound is log2 3 = 1.585).
- **floats**: raw IEEE bytes in the machine's byte order (little endian on x86, ARM and CUDA);
  :func:`floats_to_bytes` / :func:`bytes_to_floats`.

All functions take and return tensors whose last dimension is the packed axis; leading
dimensions are rows.

Example
-------
>>> import torch
>>> bits = torch.tensor([[1, 0, 1, 1, 0, 0, 0, 0, 1]], dtype=torch.bool)
>>> pack_bits(bits)
tensor([[13,  1]], dtype=torch.uint8)
>>> unpack_bits(pack_bits(bits), 9).equal(bits)
True
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = [
    "packed_bytes",
    "uint_width",
    "pack_bits",
    "unpack_bits",
    "pack_uint",
    "unpack_uint",
    "pack_trits",
    "unpack_trits",
    "floats_to_bytes",
    "bytes_to_floats",
    "lookup_uint",
    "lookup_trits",
    "byte_table",
    "trit_byte_table",
    "lookup_bytes",
    "lookup_bytes_sum",
]

_TRITS_PER_BYTE = 5


def packed_bytes(nbits: int) -> int:
    """Bytes needed for ``nbits`` bits: ``ceil(nbits / 8)``."""
    return (int(nbits) + 7) // 8


def uint_width(levels: int) -> int:
    """Bits of an unsigned integer that takes ``levels`` values: ``ceil(log2 levels)``, 0 for 1.

    >>> [uint_width(v) for v in (1, 2, 3, 4, 5, 1000000)]
    [0, 1, 2, 2, 3, 20]
    """
    levels = int(levels)
    if levels < 1:
        raise ValueError(f"levels must be >= 1, got {levels}")
    return (levels - 1).bit_length()


def _bit_weights(device) -> torch.Tensor:
    return torch.tensor([1, 2, 4, 8, 16, 32, 64, 128], dtype=torch.uint8, device=device)


# b_0 + 2^8 b_1 + ... + 2^56 b_7 (eight 0/1 bytes read as one little-endian int64) times this
# constant puts b_j at bit 56 + j and every other partial product elsewhere without carries
# (they land on distinct bits below 56 or at 64 and above): byte = (word * _GATHER) >> 56.
_GATHER = 0x0102040810204080


def _aligned(u: torch.Tensor, itemsize: int) -> torch.Tensor:
    u = u.contiguous()
    return u.clone() if u.storage_offset() % itemsize else u


def pack_bits(bits: torch.Tensor) -> torch.Tensor:
    """Pack a boolean tensor ``(..., n)`` into ``uint8`` ``(..., ceil(n/8))``, LSB first."""
    n = bits.shape[-1]
    nbytes = packed_bytes(n)
    if bits.device.type == "cpu" and bits.dtype in (torch.bool, torch.uint8):
        # numpy's SIMD packbits: ~10x the multiply below; same LSB-first layout, each row padded
        return torch.from_numpy(np.packbits(bits.numpy(), axis=-1, bitorder="little"))
    b = bits.to(torch.uint8)
    if nbytes * 8 != n:
        b = torch.nn.functional.pad(b, (0, nbytes * 8 - n))
    words = _aligned(b.reshape(-1), 8).view(torch.int64)  # little endian: byte j -> bits 8j..
    packed = ((words * _GATHER) >> 56) & 0xFF
    return packed.to(torch.uint8).reshape(*bits.shape[:-1], nbytes)


def unpack_bits(buf: torch.Tensor, n: int) -> torch.Tensor:
    """Inverse of :func:`pack_bits`: ``uint8 (..., ceil(n/8))`` -> ``bool (..., n)``."""
    if buf.device.type == "cpu":
        u = np.unpackbits(buf.contiguous().numpy(), axis=-1, count=n, bitorder="little")
        return torch.from_numpy(u.view(np.bool_))
    bits = (buf.unsqueeze(-1) & _bit_weights(buf.device)).bool()
    return bits.reshape(*buf.shape[:-1], buf.shape[-1] * 8)[..., :n]


#: values packed per vectorised pass (a multiple of 8, so every chunk ends on a byte boundary)
_CHUNK = 1 << 20


def _container(width: int) -> torch.dtype:
    # int32 shifts are vectorised (int64 ones were 20x slower on CPU); the bit pattern of a
    # value < 2^32 survives the wrap-around of .to(int32)
    return torch.int32 if width <= 32 else torch.int64


def _group(width: int):
    """Byte-level layout for ``width`` when ``lcm(width, 8) <= 64``: ``(g, nb, ctype)``, ``g``
    values in ``nb = lcm/8`` bytes, assembled in an integer of ``ctype`` (int32 when the group
    fits 32 bits: int64 shifts are not vectorised on CPU), else None (bit planes)."""
    lcm = width * 8 // _gcd(width, 8)
    if lcm > 64:
        return None
    return lcm // width, lcm // 8, torch.int32 if lcm <= 32 else torch.int64


def _gcd(a: int, b: int) -> int:
    while b:
        a, b = b, a % b
    return a


def _pack_groups(values, n, width, g, nb, ctype):
    """``g`` values per group OR-ed into one little-endian integer of ``nb`` bytes: the same bit
    stream as the bit-plane path (value ``i`` at stream bits ``i w .. i w + w - 1``)."""
    lead = values.shape[:-1]
    ngroups = -(-n // g)
    v = values.to(ctype)
    if ngroups * g != n:
        v = torch.nn.functional.pad(v, (0, ngroups * g - n))
    v = v.reshape(*lead, ngroups, g)
    word = v[..., 0].clone()
    for j in range(1, g):
        word |= v[..., j] << (j * width)
    raw = word.unsqueeze(-1).view(torch.uint8)  # (..., ngroups, itemsize), little endian
    out = raw[..., :nb].reshape(*lead, ngroups * nb)
    return out[..., : packed_bytes(n * width)].contiguous()


def _unpack_groups(buf, n, width, g, nb, ctype):
    lead = buf.shape[:-1]
    ngroups = -(-n // g)
    size = ctype.itemsize
    raw = torch.zeros(*lead, ngroups, size, dtype=torch.uint8, device=buf.device)
    flat = raw[..., :nb].reshape(*lead, ngroups * nb) if nb == size else None
    have = min(buf.shape[-1], ngroups * nb)
    if flat is not None:  # contiguous: copy straight in
        raw.view(*lead, ngroups * nb)[..., :have] = buf[..., :have]
    else:
        padded = torch.zeros(*lead, ngroups * nb, dtype=torch.uint8, device=buf.device)
        padded[..., :have] = buf[..., :have]
        raw[..., :nb] = padded.reshape(*lead, ngroups, nb)
    word = raw.view(ctype).squeeze(-1)  # (..., ngroups)
    mask = (1 << width) - 1
    parts = [(word >> (j * width)) & mask for j in range(g)]
    v = torch.stack(parts, -1).reshape(*lead, ngroups * g)[..., :n]
    return v.to(torch.int64)


def _byte_layout(width: int):
    """Group layout of ``width``-bit values: ``g`` values fill ``nb`` whole bytes
    (``g width = 8 nb = lcm(width, 8)``). ``plan[b]`` lists, for byte ``b`` of a group, the
    values ``j`` whose bits overlap it with ``p = j width - 8 b``, the position of value ``j``'s
    bit 0 relative to the byte's bit 0 (negative: the value starts in an earlier byte)."""
    g = 8 // _gcd(width, 8)
    nb = g * width // 8
    plan = [
        [
            (j, j * width - 8 * b)
            for j in range(g)
            if j * width < 8 * b + 8 and (j + 1) * width > 8 * b
        ]
        for b in range(nb)
    ]
    return g, nb, plan


def _pack_words_np(values, n, width):
    """CPU :func:`pack_uint` where ``lcm(width, 8) <= 64``: the ``g`` values of a group OR-ed
    into one little-endian uint64 in numpy (whose 64-bit shifts are vectorised), then its low
    ``nb`` bytes. Same bit stream as the other paths."""
    g = 8 // _gcd(width, 8)
    nb = g * width // 8
    lead = values.shape[:-1]
    ngroups = -(-n // g)
    a = values.reshape(-1, n).numpy()
    if ngroups * g != n:
        a = np.pad(a, ((0, 0), (0, ngroups * g - n)))
    a = a.reshape(-1, ngroups, g)
    word = a[..., 0].astype(np.uint64)
    for j in range(1, g):
        t = a[..., j].astype(np.uint64)
        t <<= np.uint64(j * width)
        word |= t
    out = np.ascontiguousarray(word.view(np.uint8).reshape(-1, ngroups, 8)[..., :nb])
    out = torch.from_numpy(out.reshape(-1, ngroups * nb)[:, : packed_bytes(n * width)])
    return out.reshape(*lead, -1)


def _unpack_words_np(buf, n, width) -> torch.Tensor:
    """CPU inverse of :func:`pack_uint` for ``width <= 57``: value ``j`` of each group of ``g``
    is read as one unaligned little-endian uint64 at its first byte (a strided numpy view of
    the bytes), shifted and masked. Returns int64 ``(..., n)``."""
    g = 8 // _gcd(width, 8)
    nb = g * width // 8
    lead = buf.shape[:-1]
    ngroups = -(-n // g)
    src = buf.reshape(-1, buf.shape[-1]).numpy()
    rows, have = src.shape[0], min(src.shape[1], ngroups * nb)
    row = ngroups * nb + 8  # 8 spare zero bytes: the last word may read past the data
    raw = np.zeros((rows, row), dtype=np.uint8)
    raw[:, :have] = src[:, :have]
    out = np.empty((rows, ngroups, g), dtype=np.int64)
    mask = np.uint64((1 << width) - 1)
    for j in range(g):
        o = j * width
        words = np.ndarray(
            (rows, ngroups), dtype="<u8", buffer=raw, offset=o >> 3, strides=(row, nb)
        )
        t = words >> np.uint64(o & 7)
        t &= mask
        out[..., j] = t
    return torch.from_numpy(out.reshape(rows, ngroups * g)[:, :n]).reshape(*lead, n)


def _pack_bytewise(values, n, width):
    """Byte-level :func:`pack_uint` for ``width <= 31`` (not a multiple of 8): each byte of a
    group is OR-ed from the few values overlapping it, shifted, in uint8 (uint8 values,
    ``width < 8``) or int32 (vectorised on CPU); no int64, no bit planes. Same bit stream."""
    g, nb, plan = _byte_layout(width)
    lead = values.shape[:-1]
    ngroups = -(-n // g)
    ctype = torch.uint8 if values.dtype == torch.uint8 and width < 8 else torch.int32
    v = values if values.dtype == ctype else values.to(ctype)
    if ngroups * g != n:
        v = torch.nn.functional.pad(v, (0, ngroups * g - n))
    v = v.reshape(*lead, ngroups, g)
    out = torch.empty(*lead, ngroups, nb, dtype=torch.uint8, device=values.device)
    for b, terms in enumerate(plan):
        acc = None
        for j, p in terms:
            t = v[..., j] << p if p >= 0 else v[..., j] >> -p
            acc = t if acc is None else acc.bitwise_or_(t)
        out[..., b] = acc if ctype == torch.uint8 else acc.bitwise_and_(0xFF)
    return out.reshape(*lead, ngroups * nb)[..., : packed_bytes(n * width)]


def _unpack_bytewise(buf, n, width) -> torch.Tensor:
    """Inverse of :func:`_pack_bytewise`: ``(..., n)`` values, uint8 for ``width < 8`` and
    int32 otherwise."""
    g, nb, plan = _byte_layout(width)
    lead = buf.shape[:-1]
    ngroups = -(-n // g)
    if buf.shape[-1] != ngroups * nb:
        have = min(buf.shape[-1], ngroups * nb)
        raw = torch.zeros(*lead, ngroups * nb, dtype=torch.uint8, device=buf.device)
        raw[..., :have] = buf[..., :have]
    else:
        raw = buf
    raw = raw.reshape(*lead, ngroups, nb)
    ctype = torch.uint8 if width < 8 else torch.int32
    if ctype != torch.uint8:
        raw = raw.to(ctype)
    out = torch.empty(*lead, ngroups, g, dtype=ctype, device=buf.device)
    for j in range(g):
        acc = None
        for b, terms in enumerate(plan):
            for jj, p in terms:
                if jj == j:  # byte b's bit p is value j's bit 0
                    t = raw[..., b] >> p if p >= 0 else raw[..., b] << -p
                    acc = t if acc is None else acc.bitwise_or_(t)
        out[..., j] = acc.bitwise_and_((1 << width) - 1)
    return out.reshape(*lead, ngroups * g)[..., :n]


def _pack_nibbles(values: torch.Tensor, n: int) -> torch.Tensor:
    """:func:`pack_uint` of uint8 values ``< 16`` at width 4: each pair of bytes read as one
    little-endian int16 ``v = a + 256 b`` gives the packed byte ``a + 16 b`` as the low byte of
    ``v | (v >> 4)`` (two passes over half the data; any device)."""
    lead = values.shape[:-1]
    v = values.reshape(-1, n)
    if n % 2:
        v = torch.nn.functional.pad(v, (0, 1))
    v = v.contiguous().view(torch.int16)  # a + 256 b, non-negative (b < 16)
    return (v | (v >> 4)).to(torch.uint8).reshape(*lead, -1)


def pack_uint(values: torch.Tensor, width: int) -> torch.Tensor:
    """Pack non-negative integers ``< 2**width`` of shape ``(..., n)`` into
    ``uint8 (..., ceil(n * width / 8))``: ``width`` bits each, LSB first, no padding between
    values. ``width == 0`` (a single possible value) packs to zero bytes.
    """
    width = int(width)
    lead, n = values.shape[:-1], values.shape[-1]
    if width == 0:
        return torch.zeros(*lead, 0, dtype=torch.uint8, device=values.device)
    if not 0 < width <= 63:
        raise ValueError(f"width must be in [0, 63], got {width}")
    if width == 4 and values.dtype == torch.uint8:
        return _pack_nibbles(values, n)
    if width % 8 and values.device.type == "cpu" and width * 8 // _gcd(width, 8) <= 64:
        return _pack_words_np(values, n, width)
    if width % 8 and width <= 31:
        return _pack_bytewise(values, n, width)
    group = _group(width)
    if group is not None and width % 8:
        return _pack_groups(values, n, width, *group)
    v = values.to(_container(width))
    if width % 8 == 0:  # whole bytes: the low width/8 bytes of each (little-endian) integer
        nb = width // 8
        raw = _aligned(v, v.element_size()).view(torch.uint8).reshape(*lead, n, v.element_size())
        return raw[..., :nb].reshape(*lead, n * nb)
    if n > _CHUNK:  # bounded temporaries: chunks of _CHUNK values end on a byte boundary
        return torch.cat(
            [pack_uint(v[..., i : i + _CHUNK], width) for i in range(0, n, _CHUNK)], -1
        )
    shifts = torch.arange(width, dtype=v.dtype, device=v.device)
    bits = ((v.unsqueeze(-1) >> shifts) & 1).to(torch.uint8)  # (..., n, width), LSB first
    return pack_bits(bits.reshape(*lead, n * width))


def unpack_uint(buf: torch.Tensor, n: int, width: int) -> torch.Tensor:
    """Inverse of :func:`pack_uint`: returns ``int64 (..., n)``."""
    width = int(width)
    lead = buf.shape[:-1]
    if width == 0:
        return torch.zeros(*lead, n, dtype=torch.int64, device=buf.device)
    if width % 8 and buf.device.type == "cpu" and width <= 57:
        return _unpack_words_np(buf, n, width).to(torch.int64)
    if width % 8 and width <= 31:
        return _unpack_bytewise(buf, n, width).to(torch.int64)
    group = _group(width)
    if group is not None and width % 8:
        return _unpack_groups(buf, n, width, *group)
    ctype = _container(width)
    if width % 8 == 0:
        nb, size = width // 8, ctype.itemsize
        raw = torch.zeros(*lead, n, size, dtype=torch.uint8, device=buf.device)
        raw[..., :nb] = buf[..., : n * nb].reshape(*lead, n, nb)
        v = raw.reshape(*lead, n * size).contiguous().view(ctype)
    elif n > _CHUNK:
        step = _CHUNK * width // 8  # bytes of one chunk of values
        parts = [
            unpack_uint(buf[..., (i // _CHUNK) * step :], min(_CHUNK, n - i), width)
            for i in range(0, n, _CHUNK)
        ]
        return torch.cat(parts, -1)
    else:
        bits = unpack_bits(buf, n * width).reshape(-1, n, width).to(ctype)
        planes = bits.permute(2, 0, 1).contiguous()  # (width, rows, n): contiguous bit planes
        v = torch.zeros(planes.shape[1:], dtype=ctype, device=buf.device)
        for b in range(width):  # one vectorised pass per bit plane (width <= 63), not per value
            v |= planes[b] << b
        v = v.reshape(*lead, n)
    v = v.to(torch.int64)
    return v & 0xFFFFFFFF if ctype == torch.int32 else v


_TRIT_TABLES: dict = {}


def _trit_table(device, dtype) -> torch.Tensor:
    """``(243, 5)`` lookup table: row ``b`` holds the base-3 digits of ``b``, least first."""
    key = (str(device), dtype)
    if key not in _TRIT_TABLES:
        b = torch.arange(243)
        digits = torch.stack([(b // 3**j) % 3 for j in range(_TRITS_PER_BYTE)], 1)
        _TRIT_TABLES[key] = digits.to(device=device, dtype=dtype)
    return _TRIT_TABLES[key]


def pack_trits(trits: torch.Tensor) -> torch.Tensor:
    """Pack digits in {0, 1, 2} of shape ``(..., n)`` into ``uint8 (..., ceil(n/5))`` (base 3)."""
    n = trits.shape[-1]
    nbytes = -(-n // _TRITS_PER_BYTE)
    t = trits.to(torch.uint8)
    pad = nbytes * _TRITS_PER_BYTE - n
    if pad:
        t = torch.nn.functional.pad(t, (0, pad))
    t = t.reshape(*trits.shape[:-1], nbytes, _TRITS_PER_BYTE)
    acc = t[..., 4] * 3  # Horner in uint8: every partial sum is <= 242
    for j in (3, 2, 1):
        acc += t[..., j]
        acc *= 3
    return acc + t[..., 0]


def unpack_trits(buf: torch.Tensor, n: int, dtype: torch.dtype = torch.int64) -> torch.Tensor:
    """Inverse of :func:`pack_trits`: digits in {0, 1, 2} as ``dtype (..., n)`` (default int64),
    by a 243 x 5 lookup table (one gather, no division)."""
    table = _trit_table(buf.device, dtype)
    t = table.index_select(0, buf.reshape(-1).to(torch.int32))
    return t.reshape(*buf.shape[:-1], buf.shape[-1] * _TRITS_PER_BYTE)[..., :n]


def floats_to_bytes(x: torch.Tensor) -> torch.Tensor:
    """Raw bytes of a float tensor ``(..., n)``: ``uint8 (..., n * itemsize)``."""
    if x.dim() == 0:
        x = x.reshape(1)
    flat = x.reshape(-1).contiguous()
    return flat.view(torch.uint8).reshape(*x.shape[:-1], -1)


def bytes_to_floats(buf: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Inverse of :func:`floats_to_bytes`: ``uint8 (..., n * itemsize)`` -> ``dtype (..., n)``."""
    flat = buf.reshape(-1).contiguous()
    if flat.storage_offset() % dtype.itemsize:  # a slice starting mid-element: realign
        flat = flat.clone()
    return flat.view(dtype).reshape(*buf.shape[:-1], -1)


def _lookup_bytes(buf: torch.Tensor, n: int, byte_table: torch.Tensor) -> torch.Tensor:
    """``byte_table[row, buf[row, i]]`` (rows of ``per`` values) concatenated: one gather.
    ``byte_table``: ``(rows, 256, per)`` or ``(1, 256, per)`` (shared by every row of ``buf``);
    returns ``(buf rows, n)``."""
    trows, _, per = byte_table.shape
    rows = buf.shape[0]
    idx = buf.to(torch.int32)
    if trows > 1:
        idx += 256 * torch.arange(trows, dtype=torch.int32, device=buf.device).unsqueeze(1)
    table = byte_table.reshape(trows * 256, per)
    wide = _WIDE.get(per * table.element_size())
    if wide is not None:
        # each byte's values as one wide integer: a 1-D gather (~3x a gather of short rows)
        flat = table.contiguous().view(wide).reshape(-1)
        out = flat.index_select(0, idx.reshape(-1)).view(byte_table.dtype)
    else:
        out = table.index_select(0, idx.reshape(-1))
    return out.reshape(rows, -1)[:, :n]


#: integer dtypes by size, for gathering a byte's group of values as one element
_WIDE = {2: torch.int16, 4: torch.int32, 8: torch.int64}


def lookup_uint(buf: torch.Tensor, n: int, width: int, table: torch.Tensor) -> torch.Tensor:
    """``table[row, unpack_uint(buf, n, width)[row]]``: where ``width`` divides 8, one gather
    from a table of whole bytes (no codes materialised); else the codes, then one gather.

    ``buf``: ``uint8 (rows, ceil(n width / 8))``; ``table``: ``(rows, 2**width)`` or
    ``(1, 2**width)`` (shared), one value for every code a buffer can hold. Returns
    ``(rows, n)`` of ``table.dtype``, the same values as indexing ``table`` with the codes.
    """
    width = int(width)
    trows, size = table.shape
    if size != 1 << width:
        raise ValueError(f"table must have 2**width = {1 << width} entries per row, got {size}")
    if 0 < width <= 8 and 8 % width == 0:
        return lookup_bytes(buf, n, byte_table(table, width))
    if width % 8 and buf.device.type == "cpu" and width <= 57:
        idx = _unpack_words_np(buf, n, width).to(torch.int32)
    elif width % 8 and width <= 31:
        idx = _unpack_bytewise(buf, n, width).to(torch.int32)
    else:
        idx = unpack_uint(buf, n, width).to(torch.int32)
    if trows > 1:
        idx += size * torch.arange(trows, dtype=torch.int32, device=buf.device).unsqueeze(1)
    return table.reshape(-1).index_select(0, idx.reshape(-1)).reshape(buf.shape[0], n)


def lookup_trits(buf: torch.Tensor, n: int, table: torch.Tensor) -> torch.Tensor:
    """``table[row, unpack_trits(buf, n)[row]]``, ``table`` of shape ``(rows, 3)`` or
    ``(1, 3)``: one gather from a ``(rows, 256, 5)`` table of whole bytes."""
    return lookup_bytes(buf, n, trit_byte_table(table))


def byte_table(table: torch.Tensor, width: int) -> torch.Tensor:
    """The values of every byte of ``width``-bit codes (``width`` divides 8):
    ``(trows, 256, 8 // width)`` from a code table ``(trows, 2**width)``; entry ``[r, b, j]`` is
    ``table[r, code j of byte b]`` (LSB first)."""
    width = int(width)
    size = table.shape[-1]
    if not (0 < width <= 8 and 8 % width == 0) or size != 1 << width:
        raise ValueError(
            f"byte_table needs width in (1, 2, 4, 8) and 2**width entries, got {width}, {size}"
        )
    b = torch.arange(256, device=table.device)
    digits = torch.stack([(b >> (j * width)) & (size - 1) for j in range(8 // width)], 1)
    return table[:, digits]


def trit_byte_table(table: torch.Tensor) -> torch.Tensor:
    """The values of every byte of packed trits: ``(trows, 256, 5)`` from ``(trows, 3)``
    (bytes 243..255 never occur; they map to digit 0)."""
    digits = _trit_table(table.device, torch.int64)  # (243, 5)
    digits = torch.cat([digits, digits.new_zeros(256 - 243, _TRITS_PER_BYTE)])
    return table[:, digits]


def lookup_bytes(buf: torch.Tensor, n: int, table: torch.Tensor) -> torch.Tensor:
    """``(rows, n)`` values of the bytes ``buf`` ``(rows, nbytes)`` from a byte table
    ``(trows, 256, per)`` (:func:`byte_table`, :func:`trit_byte_table`; ``trows`` is 1 or
    ``rows``): byte ``i`` of a row gives its values ``per i .. per i + per - 1``. Works a
    chunk of columns at a time (:func:`lookup_bytes_sum` of one message): ~2x one gather of
    the whole row at ``n = 10^6``, whose temporaries leave the cache; on CPU, rows of values
    that no integer holds filling whole bytes (``n = nbytes per``) by one numpy take (no
    temporaries: the uint8 bytes index the table's rows directly)."""
    trows, _, per = table.shape
    rows, nbytes = buf.shape
    if (
        buf.device.type == "cpu"
        and trows == 1
        and n == nbytes * per
        and _WIDE.get(per * table.element_size()) is None
    ):
        out = torch.empty(rows, n, dtype=table.dtype)
        _gather_into(buf, _flat_table(table), per, out)
        return out
    return lookup_bytes_sum([buf], n, [table])


#: values per chunk of :func:`lookup_bytes_sum` (its temporaries stay in the cache)
_SUM_CHUNK = 1 << 17


def lookup_bytes_sum(bufs, n: int, tables) -> torch.Tensor:
    """``lookup_bytes(bufs[0], n, tables[0]) + lookup_bytes(bufs[1], n, tables[1]) + ...``,
    added left to right (so equal to that sum bit for bit), one chunk of columns at a time:
    the only dense tensor is the result (a decoded message is never materialised whole; the
    gathers write into the result, or into one chunk-sized buffer that is added to it)."""
    first, tab0 = bufs[0], tables[0]
    rows, nbytes = first.shape
    per = tab0.shape[2]
    out = torch.empty(rows, n, dtype=tab0.dtype, device=tab0.device)
    step = max(1, _SUM_CHUNK // (per * rows))  # bytes per chunk
    flats = [_flat_table(t) for t in tables]
    tmp = torch.empty(rows * min(step, nbytes) * per, dtype=tab0.dtype, device=tab0.device)
    for b0 in range(0, nbytes, step):
        b1 = min(nbytes, b0 + step)
        j0, j1 = b0 * per, min(n, b1 * per)
        dst = out[:, j0:j1]
        direct = rows == 1 and j1 - j0 == (b1 - b0) * per  # the gather fills dst exactly
        for k, (buf, flat) in enumerate(zip(bufs, flats)):
            if k == 0 and direct:
                _gather_into(buf[:, b0:b1], flat, per, dst)
                continue
            vals = tmp[: rows * (b1 - b0) * per].view(rows, (b1 - b0) * per)
            _gather_into(buf[:, b0:b1], flat, per, vals)
            if k == 0:
                dst.copy_(vals[:, : j1 - j0])
            else:
                dst.add_(vals[:, : j1 - j0])
    return out


def _flat_table(byte_table: torch.Tensor):
    """``(trows, 256 * per)`` table as the gather source: ``(trows * 256,)`` wide integers
    (each byte's ``per`` values as one element) where they fit 2, 4 or 8 bytes, else rows."""
    trows, _, per = byte_table.shape
    table = byte_table.reshape(trows * 256, per).contiguous()
    wide = _WIDE.get(per * table.element_size())
    return (table.view(wide).reshape(-1) if wide is not None else table), trows


def _gather_into(buf: torch.Tensor, flat, per: int, out: torch.Tensor) -> None:
    """Write the values of the bytes ``buf`` ``(rows, m)`` into the contiguous ``out``
    ``(rows, m * per)`` (one gather, :func:`_flat_table`'s source)."""
    table, trows = flat
    if trows == 1 and table.dim() == 2 and buf.device.type == "cpu":
        # rows of per values that no integer holds (5 or 8 float32s): numpy's take copies each
        # row whole from the uint8 indices (~0.75x torch's row gather, no int32 index pass);
        # every byte is < 256 rows, so mode="clip" clips nothing (and writes out directly)
        rows, m = buf.shape
        np.take(table.numpy(), buf.numpy(), axis=0, out=out.view(rows, m, per).numpy(), mode="clip")
        return
    idx = buf.to(torch.int32)
    if trows > 1:
        idx += 256 * torch.arange(trows, dtype=torch.int32, device=buf.device).unsqueeze(1)
    if table.dim() == 1:
        torch.index_select(table, 0, idx.reshape(-1), out=out.reshape(-1).view(table.dtype))
    else:
        torch.index_select(table, 0, idx.reshape(-1), out=out.view(-1, per))
