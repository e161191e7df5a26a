"""Bit packing (theorylab.wire) and the declared wire size of every compressor."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from theorylab.compressors import COMPRESSORS, get_compressor
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

FAST = settings(max_examples=25, deadline=None, derandomize=True)


def test_bit_order_is_lsb_first():
    bits = torch.tensor([1, 0, 1, 1, 0, 0, 0, 0, 1], dtype=torch.bool)
    assert pack_bits(bits).tolist() == [0b00001101, 0b00000001]
    # numpy's packbits with bitorder="little" is an independent implementation
    ref = np.packbits(bits.numpy(), bitorder="little")
    assert pack_bits(bits).numpy().tolist() == ref.tolist()


@FAST
@given(n=st.integers(1, 70), rows=st.integers(1, 3), seed=st.integers(0, 2**31))
def test_bits_roundtrip_and_size(n, rows, seed):
    g = torch.Generator().manual_seed(seed)
    bits = torch.rand(rows, n, generator=g) < 0.5
    buf = pack_bits(bits)
    assert buf.shape == (rows, math.ceil(n / 8)) and buf.dtype == torch.uint8
    assert unpack_bits(buf, n).equal(bits)
    assert buf.numpy().tolist() == [
        np.packbits(r, bitorder="little").tolist() for r in bits.numpy()
    ]


@FAST
@given(n=st.integers(1, 40), width=st.integers(1, 40), seed=st.integers(0, 2**31))
def test_uint_roundtrip_and_size(n, width, seed):
    g = torch.Generator().manual_seed(seed)
    v = torch.randint(0, 2**width, (2, n), generator=g)
    buf = pack_uint(v, width)
    assert buf.shape == (2, packed_bytes(n * width))
    assert unpack_uint(buf, n, width).equal(v)


def test_uint_known_layout():
    # 3-bit values 5 (101), 3 (011): stream bits 1,0,1,1,1,0 -> byte 0b00011101
    assert pack_uint(torch.tensor([5, 3]), 3).tolist() == [0b00011101]
    assert pack_uint(torch.tensor([0x1234]), 16).tolist() == [0x34, 0x12]
    assert pack_uint(torch.tensor([7, 7]), 0).numel() == 0


@FAST
@given(n=st.integers(1, 60), seed=st.integers(0, 2**31))
def test_trits_roundtrip_five_per_byte(n, seed):
    g = torch.Generator().manual_seed(seed)
    t = torch.randint(0, 3, (3, n), generator=g)
    buf = pack_trits(t)
    assert buf.shape == (3, math.ceil(n / 5))
    assert unpack_trits(buf, n).equal(t)
    assert int(pack_trits(torch.full((5,), 2)).item()) == 242  # 3^5 - 1


def test_uint_width():
    assert [uint_width(v) for v in (1, 2, 3, 4, 5, 15, 17, 2**20)] == [0, 1, 2, 2, 3, 4, 5, 20]
    with pytest.raises(ValueError):
        uint_width(0)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_float_bytes_roundtrip(dtype):
    x = torch.randn(3, 5).to(dtype)
    buf = floats_to_bytes(x)
    assert buf.shape == (3, 5 * dtype.itemsize)
    assert bytes_to_floats(buf, dtype).equal(x)
    # a slice that starts mid-element is realigned, not rejected
    both = torch.cat([torch.zeros(1, 1, dtype=torch.uint8), floats_to_bytes(x[:1])], 1)
    assert bytes_to_floats(both[:, 1:], dtype).equal(x[:1])


def _expected_bits(spec, d):
    """The wire size of each registered compressor at d, float32, written out independently."""
    w = math.ceil(math.log2(d)) if d > 1 else 0
    k = max(1, math.ceil(0.01 * d))
    m = math.ceil(math.sqrt(d))
    n = math.ceil(d / m)
    return {
        "identity": 32 * d,
        "fp16": 16 * d,
        "bf16": 16 * d,
        "rand-k": 64 + 32 * k,
        "rand-k-unscaled": 64 + 32 * k,
        "top-k": k * (32 + w),
        "qsgd": 32 + 4 * d,  # s = 7: 15 signed levels in 4 bits
        "natural": 10 * d,
        "sign": d,
        "scaled-sign": 32 + d,
        "terngrad": 32 + 8 * math.ceil(d / 5),
        "powersgd": 32 * (n + m),
        "scaled-qsgd": 32 + 4 * d,
    }[spec]


@pytest.mark.parametrize("name", sorted(COMPRESSORS))
@pytest.mark.parametrize("d", [1, 7, 1000, 4099])
def test_declared_bits_match_encoded_bytes(name, d):
    C = get_compressor(name)
    assert C.bits(d) == _expected_bits(name, d)
    x = torch.randn(2, 3, d, generator=torch.Generator().manual_seed(d))
    buf = C.encode(x, torch.Generator().manual_seed(0))
    assert buf.numel() == C.nbytes(x.shape) == 6 * math.ceil(C.bits(d) / 8)
