"""The CPU fast paths of theorylab.compressors agree bit for bit with the device-generic ones.

Each fast path (numpy packing, lookup-table decoding, numpy index sampling, numpy natural
codes, SFC64 uniforms) is compared with an independent or device-generic computation of the
same thing; the CUDA runs of tests/test_compressors.py cover the generic paths on a GPU.
"""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from theorylab.compressors import get_compressor, sparsifiers, wire
from theorylab.compressors.base import _uniform
from theorylab.compressors.quantizers import _natural_code_np, _natural_code_torch
from theorylab.hashrng import stream


def _bit_planes(v: torch.Tensor, width: int) -> torch.Tensor:
    """Reference packing: every value's bits, LSB first, one bit at a time."""
    shifts = torch.arange(width)
    bits = ((v.unsqueeze(-1) >> shifts) & 1).to(torch.uint8)
    return wire.pack_bits(bits.reshape(*v.shape[:-1], v.shape[-1] * width))


@settings(max_examples=60, derandomize=True, deadline=None)
@given(
    width=st.integers(1, 57).filter(lambda w: w % 8),
    n=st.integers(1, 70),
    rows=st.sampled_from([(), (1,), (3,), (2, 2)]),
    seed=st.integers(0, 2**31),
)
def test_every_packing_path_writes_the_same_bit_stream(width, n, rows, seed):
    v = torch.randint(0, 2**width, (*rows, n), generator=torch.Generator().manual_seed(seed))
    ref = _bit_planes(v, width)
    assert wire.pack_uint(v, width).equal(ref)  # numpy words (lcm <= 64) or bit planes
    assert wire.unpack_uint(ref, n, width).equal(v)  # numpy unaligned words
    if width <= 31:  # the device-generic byte-level path
        flat = v.reshape(-1, n)
        assert wire._pack_bytewise(flat, n, width).equal(ref.reshape(-1, ref.shape[-1]))
        back = wire._unpack_bytewise(ref.reshape(-1, ref.shape[-1]), n, width)
        assert back.to(torch.int64).equal(flat)
        if width < 8:
            packed8 = wire._pack_bytewise(flat.to(torch.uint8), n, width)
            assert packed8.equal(ref.reshape(-1, ref.shape[-1]))


@pytest.mark.parametrize("width", [1, 2, 4, 8, 3, 7, 10])
@pytest.mark.parametrize("rows", [1, 3])
def test_lookup_uint_equals_indexing_the_codes(width, rows):
    g = torch.Generator().manual_seed(width)
    n = 37
    v = torch.randint(0, 2**width, (rows, n), generator=g)
    table = torch.randn(rows, 2**width, generator=g)
    buf = wire.pack_uint(v, width)
    assert wire.lookup_uint(buf, n, width, table).equal(torch.gather(table, 1, v))
    shared = table[:1]
    assert wire.lookup_uint(buf, n, width, shared).equal(shared[0][v])


def test_lookup_trits_equals_indexing_the_digits():
    g = torch.Generator().manual_seed(0)
    t = torch.randint(0, 3, (3, 23), generator=g)
    table = torch.randn(3, 3, generator=g, dtype=torch.float64)
    buf = wire.pack_trits(t)
    assert wire.lookup_trits(buf, 23, table).equal(torch.gather(table, 1, t))


def test_numpy_bits_match_the_multiply_path():
    bits = torch.rand(3, 45, generator=torch.Generator().manual_seed(1)) < 0.5
    words = torch.nn.functional.pad(bits.to(torch.uint8), (0, 3)).reshape(-1).view(torch.int64)
    ref = (((words * wire._GATHER) >> 56) & 0xFF).to(torch.uint8).reshape(3, 6)
    assert wire.pack_bits(bits).equal(ref)
    assert wire.unpack_bits(ref, 45).equal(bits)


@pytest.mark.parametrize("d,k", [(10**5, 1000), (1000, 10), (100, 50), (17, 8), (2**20, 64)])
def test_one_row_index_sampling_equals_the_batched_one(d, k):
    for seed in range(5):
        one = sparsifiers._first_distinct(torch.tensor([seed * 7919 + 3]), d, k)
        both = sparsifiers._first_distinct(torch.tensor([seed * 7919 + 3, 11]), d, k)
        assert one.equal(both[:1])
    s = 2**62 - 5
    assert np.array_equal(sparsifiers._stream_row_np(s, 500), stream(torch.tensor([s]), 500)[0])


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_natural_numpy_codes_equal_the_torch_ones(dtype):
    C = get_compressor("natural")
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 400, generator=g, dtype=torch.float64)
    x *= torch.logspace(-40, 40, 400, dtype=torch.float64)
    x[0, :5], x[1, :3] = 0.0, -0.0
    x = x.to(dtype)
    hi = C.domain(dtype)[1]
    x = x.clamp(-hi, hi)
    if dtype == torch.float32:  # subnormals
        x[2, :4] = torch.tensor([1e-45, -3e-42, 1.5e-39, -1e-40])
    rows = C._rows(x)
    u = torch.rand(rows.shape, generator=g, dtype=rows.dtype)
    emin = C._exponents(dtype)[0]
    assert _natural_code_np(rows, u, emin).equal(_natural_code_torch(rows.clone(), u, emin))


@pytest.mark.parametrize("dtype,bits", [(torch.float32, 24), (torch.float64, 53)])
def test_uniforms_are_on_the_grid_and_seeded(dtype, bits):
    u = _uniform((4, 5000), torch.Generator().manual_seed(3), "cpu", dtype)
    v = _uniform((4, 5000), torch.Generator().manual_seed(3), "cpu", dtype)
    assert u.dtype == dtype and u.shape == (4, 5000) and u.equal(v)
    assert float(u.min()) >= 0 and float(u.max()) < 1
    scaled = u.double() * 2.0**bits
    assert scaled.equal(scaled.floor())
    # mean of 20000 U[0,1) draws: sd 0.002; |error| < 0.012 fails with prob < 1e-8
    assert abs(float(u.double().mean()) - 0.5) < 0.012


def test_decode_equals_compress_for_every_path():
    x = torch.randn(3, 1001, generator=torch.Generator().manual_seed(0))
    x[0, :3], x[1, :2] = 0.0, -0.0
    for spec in [
        "qsgd",
        "qsgd:s=200",
        "scaled(qsgd)",
        "terngrad",
        "scaled(terngrad)",
        "natural",
        "scaled(natural)",
        "sign",
        "scaled-sign",
        "fp16",
        "bf16",
    ]:
        C = get_compressor(spec)
        y = C.compress(x, torch.Generator().manual_seed(1))
        z = C.decode(C.encode(x, torch.Generator().manual_seed(1)), x.shape)
        assert y.equal(z), spec


@pytest.mark.parametrize("per", [2, 5, 8])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("rows", [1, 3])
def test_lookup_bytes_shared_table_equals_indexing(per, dtype, rows):
    """The gather paths (numpy's take for rows of values no integer holds, torch's
    index_select otherwise) against direct indexing, on a shared table, whole rows and the
    column slices that lookup_bytes_sum works on (the last byte's values cut at n)."""
    g = torch.Generator().manual_seed(per)
    table = torch.randn(1, 256, per, generator=g, dtype=dtype)
    buf = torch.randint(0, 256, (rows, 50001), generator=g, dtype=torch.int64).to(torch.uint8)
    n = 50001 * per - (per - 1)
    want = table[0][buf.to(torch.int64)].reshape(rows, -1)[:, :n]
    assert wire.lookup_bytes(buf, n, table).equal(want)
    assert wire.lookup_bytes(buf[:, 7:], n - 7 * per, table).equal(want[:, 7 * per :])


@pytest.mark.parametrize("shape", [(1, 1), (1, 9), (1, 70001), (3, 1001), (40, 13)])
@pytest.mark.parametrize("chunk", [None, 16])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_l1_and_sign_bits_equal_the_direct_computation(shape, chunk, dtype, monkeypatch):
    """Scaled sign's one-read pass: the bits equal pack_bits(x < 0) (-0 and 0 are not
    negative) and the row sums of |x| equal a float64 sum to float32 resolution."""
    from theorylab.compressors import quantizers

    if chunk is not None:
        monkeypatch.setattr(quantizers, "_SIGN_CHUNK", chunk)
    x = np.random.default_rng(shape[1]).standard_normal(shape).astype(dtype)
    x[0, 0] = -0.0
    s1, bits = quantizers._l1_and_sign_bits(x)
    assert np.array_equal(bits, wire.pack_bits(torch.from_numpy(x) < 0).numpy())
    ref = np.abs(x.astype(np.float64)).sum(1)
    assert np.allclose(s1, ref, rtol=1e-6 if dtype == np.float32 else 1e-13, atol=0)


def test_scaled_sign_fast_path_equals_the_formula_and_falls_back_on_overflow():
    C = get_compressor("scaled-sign")
    x = torch.randn(2, 5000, generator=torch.Generator().manual_seed(0))
    y = C.compress(x)
    scale = x.double().abs().mean(1, keepdim=True)
    want = torch.where(x < 0, -scale, scale)
    assert torch.allclose(y.double(), want, rtol=2e-7, atol=0)
    assert C.decode(C.encode(x), x.shape).equal(y)
    big = torch.full((1, 8), 3e38)  # |x|_1 overflows float32: the scaled mean
    big[0, 3] = -3e38
    assert C.compress(big).abs().eq(3e38).all() and C.compress(big)[0, 3] < 0


@pytest.mark.parametrize("dtype", [torch.float16, torch.float32, torch.float64])
def test_scaled_sign_one_pass_still_rejects_non_finite_input(dtype):
    """Scaled sign validates by its sum of |x_i| (no separate pass): NaN and inf raise with
    the generic message, in any row of any float dtype."""
    C = get_compressor("scaled-sign")
    for bad in [float("nan"), float("inf"), float("-inf")]:
        x = torch.ones(3, 70001, dtype=dtype)
        x[2, 65537] = bad
        with pytest.raises(Exception, match="NaN or infinite"):
            C.encode(x, torch.Generator().manual_seed(0))
        with pytest.raises(Exception, match="NaN or infinite"):
            C.compress(x[2, 60000:])


@pytest.mark.parametrize("spec", ["fp16", "bf16"])
def test_cast_sends_the_cast_and_checks_every_entry(spec):
    """The CPU cast with its check on the 16-bit patterns: the same halves as
    ``x.to(target)`` (float32 and float64 input, rows), and an out-of-domain, NaN or inf entry
    anywhere (first, middle, last; either sign) raises; the largest in-domain value passes."""
    C = get_compressor(spec)
    for dtype in (torch.float32, torch.float64):
        x = torch.randn(3, 1001, generator=torch.Generator().manual_seed(1), dtype=dtype) * 100
        want = x.to(C.target).view(torch.uint8).reshape(-1)
        assert C.encode(x).equal(want)
        hi = C.domain(dtype, 1001)[1]
        for pos in [0, 1500, 3002]:
            y = x.clone().reshape(-1)
            y[pos] = -hi
            C.encode(y.reshape(3, 1001))  # on the bound: passes
            big = min(hi * 1.01, float(torch.finfo(dtype).max))  # above hi, finite in dtype
            for bad in [big, -big, float("nan"), float("inf")]:
                y[pos] = bad
                with pytest.raises(Exception, match="NaN or infinite|declared for"):
                    C.encode(y.reshape(3, 1001))
