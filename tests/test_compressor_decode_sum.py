"""``Compressor.decode_sum`` equals the left-to-right sum of the decodes, bit for bit."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from theorylab.compressors import COMPRESSORS, get_compressor, wire
from theorylab.errors import TheorylabError

SPECS = list(COMPRESSORS) + [
    "scaled(terngrad)",
    "scaled(natural)",
    "scaled(rand-k)",
    "scaled(identity)",
    "qsgd:s=2",
    "qsgd:s=3",
    "qsgd:s=200",
    "rand-k:ratio=0.7",
    "top-k:k=3",
]


def _messages(C, shape, dtype, count, seed):
    g = torch.Generator().manual_seed(seed)
    bufs = []
    for j in range(count):
        x = torch.randn(*shape, generator=g, dtype=torch.float64)
        x.view(-1)[: 3 * j] = 0.0
        bufs.append(C.encode(x.to(dtype), torch.Generator().manual_seed(seed + j)))
    return bufs


def _reference(C, bufs, shape, dtype):
    acc = C.decode(bufs[0], shape, dtype)
    for b in bufs[1:]:
        acc = acc + C.decode(b, shape, dtype)
    return acc


@pytest.mark.parametrize("spec", SPECS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16])
@pytest.mark.parametrize("shape", [(1, 1003), (3, 40), (2, 2, 17)])
def test_decode_sum_equals_the_sum_of_decodes(spec, dtype, shape, monkeypatch):
    C = get_compressor(spec)
    bufs = _messages(C, shape, dtype, 4, seed=len(spec))
    ref = _reference(C, bufs, shape, dtype)
    got = C.decode_sum(bufs, shape, dtype)
    assert got.dtype == ref.dtype and got.shape == ref.shape
    assert got.equal(ref), spec
    # small chunks: every chunk boundary inside a row, and a partial last byte
    monkeypatch.setattr(wire, "_SUM_CHUNK", 37)
    assert C.decode_sum(bufs, shape, dtype).equal(ref), spec
    # one message: decode itself
    assert C.decode_sum(bufs[:1], shape, dtype).equal(C.decode(bufs[0], shape, dtype))


@settings(max_examples=40, derandomize=True, deadline=None)
@given(
    spec=st.sampled_from(["qsgd", "terngrad", "sign", "scaled-sign", "rand-k:k=5", "top-k:k=4"]),
    n=st.integers(1, 5),
    d=st.integers(5, 90),
    seed=st.integers(0, 2**20),
)
def test_decode_sum_property(spec, n, d, seed):
    C = get_compressor(spec)
    bufs = _messages(C, (d,), torch.float32, n, seed)
    assert C.decode_sum(bufs, (d,)).equal(_reference(C, bufs, (d,), torch.float32))


def test_decode_sum_leaves_the_messages_alone():
    C = get_compressor("identity")
    bufs = _messages(C, (10,), torch.float32, 3, 0)
    copies = [b.clone() for b in bufs]
    C.decode_sum(bufs, (10,))
    assert all(b.equal(c) for b, c in zip(bufs, copies))


def test_decode_sum_bad_input():
    C = get_compressor("qsgd")
    with pytest.raises(TheorylabError, match="at least one"):
        C.decode_sum([], (10,))
    bufs = _messages(C, (10,), torch.float32, 2, 0)
    with pytest.raises(TheorylabError, match="bytes"):
        C.decode_sum([bufs[0], bufs[1][:-1]], (10,))
    with pytest.raises(TypeError):
        C.decode_sum([bufs[0].float()], (10,))
