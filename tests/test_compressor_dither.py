"""Stochastic rounding by integer thresholds (QSGD's and TernGrad's CPU float32 path):
exact outcome law from the threshold, seeded Monte Carlo, and the packing it relies on."""

import math

import numpy as np
import pytest
import torch

from theorylab.compressors import get_compressor, wire
from theorylab.compressors.dither import (
    dither_codes,
    dither_codes_np,
    dither_scale,
    fixed_point_bits,
)


def _fixed(x: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Reference ``R_i = trunc(fl32(x_i c))`` as int64 (the product rounded once to float32)."""
    return np.trunc((x * c).astype(np.float32).astype(np.float64)).astype(np.int64)


def _words_from(arr: np.ndarray):
    pos = [0]

    def words(count):
        out = arr[pos[0] : pos[0] + count].copy()
        pos[0] += count
        return out

    return words


@pytest.mark.parametrize("s", [1, 2, 7, 127])
def test_threshold_law_is_exact_at_every_boundary(s):
    """For every coordinate and the random words just below and at its threshold, the code is
    ``s + sgn(x_i) (l + up)`` with ``up`` exactly as the docstring says; so among the ``2^F``
    values of ``u`` exactly ``f`` round up: P(up) = f / 2^F, E xi = |R| / 2^F exactly."""
    F = fixed_point_bits(s)
    w = 32 - F
    assert (2 * s + 1) * 2**F <= 2**32 < (2 * s + 1) * 2 ** (F + 1)
    g = torch.Generator().manual_seed(s)
    x = torch.randn(1, 300, generator=g) * torch.logspace(-12, 0, 300)
    x[0, :4] = torch.tensor([0.0, -0.0, 1e-30, -1e-30])
    norm = torch.maximum(torch.linalg.vector_norm(x), x.abs().max()).reshape(1, 1)
    c = dither_scale(s, norm)
    assert float(c) * float(norm) <= s * 2**F  # rounded down
    xn, cn = x.numpy(), c.numpy()
    R = _fixed(xn, cn)[0]
    assert np.abs(R).max() <= s * 2**F
    mag = np.abs(R)
    l, f = mag >> F, mag & (2**F - 1)
    neg = np.signbit(xn[0]) & (R != 0)  # R = 0: the code is s whatever the sign
    sgn = np.where(neg, -1, 1)
    # u at the threshold and one below it, for both signs: threshold 2^F - f (x >= 0), f (x < 0)
    thr = np.where(neg, f, 2**F - f)
    for cand in (thr - 1, thr):
        u = np.clip(cand, 0, 2**F - 1)
        words = (u.astype(np.uint64) << np.uint64(w)).astype(np.uint32)
        code = dither_codes_np(xn, cn, _words_from(words), s)[0].astype(np.int64)
        up = np.where(neg, u < f, u >= 2**F - f)
        assert np.array_equal(code, s + sgn * (l + up)), s
        assert (code[:2] == s).all()  # sgn(0) = +1: 0 and -0 give the code s


def test_threshold_law_monte_carlo():
    """Seeded: 40000 calls of the real path on 8 coordinates; the frequency of rounding up
    against f / 2^F from the threshold. Hoeffding: P(|freq - p| > 0.012) <= 2 exp(-2 n t^2)
    = 2 exp(-11.5) = 2e-5 per coordinate, < 2e-4 for the 8 (fixed seed: the outcome is
    deterministic; this is the probability a correct implementation fails for a random seed)."""
    s = 3
    F = fixed_point_bits(s)
    x = torch.tensor([[0.3, -0.3, 0.05, -0.77, 1.0, 0.0, 0.5, -0.123]])
    norm = x.abs().max().reshape(1, 1) * 1.5
    c = dither_scale(s, norm)
    R = _fixed(x.numpy(), c.numpy())[0]
    p = (np.abs(R) & (2**F - 1)) / 2**F
    l = np.abs(R) >> F
    n = 40000
    rows = x.expand(n, -1).contiguous()
    code = dither_codes(rows, c.expand(n, 1).contiguous(), s, torch.Generator().manual_seed(7))
    level = (code.numpy().astype(np.int64) - s) * np.where(np.signbit(x.numpy()[0]), -1, 1)
    assert ((level == l) | (level == l + 1)).all()
    freq = (level == l + 1).mean(0)
    assert np.abs(freq - p).max() < 0.012, (freq, p)
    # the exact mean |R| / 2^F is within float32 resolution of r = |x| c / 2^F
    r = np.abs(x.numpy()[0].astype(np.float64)) * float(c) / 2**F
    assert np.allclose(np.abs(R) / 2**F, r, rtol=2**-23, atol=2.0**-F)


def test_dither_scale_rounds_down_and_zero_rows():
    norm = torch.tensor([[3.0], [0.0], [1e-20], [7.5e30]])
    c = dither_scale(7, norm)
    top = 7 * 2 ** fixed_point_bits(7)
    for ci, ni in zip(c.reshape(-1).tolist(), norm.reshape(-1).tolist()):
        assert ci == 0.0 if ni == 0 else ci * ni <= top and ci * ni > top * (1 - 2**-22)


def test_words_are_consumed_in_order_across_chunks(monkeypatch):
    """Chunked and one-piece runs give the same codes (the stream does not depend on the
    chunking), rows shorter and longer than a chunk."""
    from theorylab.compressors import dither

    for shape in [(5, 1000), (2, 70001)]:
        x = torch.randn(*shape, generator=torch.Generator().manual_seed(1))
        c = dither_scale(7, torch.linalg.vector_norm(x, dim=-1, keepdim=True) * 1.01)
        ref = dither_codes(x, c, 7, torch.Generator().manual_seed(3))
        monkeypatch.setattr(dither, "_DITHER_CHUNK", 333)
        got = dither_codes(x, c, 7, torch.Generator().manual_seed(3))
        monkeypatch.undo()
        assert got.equal(ref)


@pytest.mark.parametrize("spec", ["qsgd", "qsgd:s=2", "terngrad", "scaled(qsgd)"])
def test_fixed_point_path_is_unbiased_in_expectation(spec):
    """The exact mean of C(x) from the threshold law (the codes' two-point laws with
    P(up) = f / 2^F, computed from the same norm and scale) equals x to float32 resolution."""
    C = get_compressor(spec)
    inner = getattr(C, "inner", C)
    x = torch.randn(1, 64, generator=torch.Generator().manual_seed(0))
    parts = inner._quantize(x, torch.Generator().manual_seed(0), torch.float32)
    norm, code = parts[:2]
    if len(parts) == 3:  # QSGD's 4-bit codes and TernGrad's digits come packed
        if getattr(inner, "s", 1) == 1:
            code = wire.unpack_trits(code, x.shape[-1]).to(torch.uint8)
        else:
            code = wire.unpack_uint(code, x.shape[-1], 4).to(torch.uint8)
    s = getattr(inner, "s", 1)
    c = dither_scale(s, norm.reshape(1, 1))
    R = _fixed(x.numpy(), c.numpy())[0]
    mean_level = np.abs(R) / 2 ** fixed_point_bits(s)
    mean = float(norm) / s * np.sign(x.numpy()[0]) * mean_level
    assert np.allclose(mean, x.numpy()[0], rtol=2**-21, atol=float(norm) * 2.0**-27)
    assert code.dtype == torch.uint8 and int(code.max()) <= 2 * s


def test_fixed_point_path_validates_its_input():
    for spec in ["qsgd", "terngrad"]:
        C = get_compressor(spec)
        for bad in [float("nan"), float("inf")]:
            x = torch.ones(10)
            x[3] = bad
            with pytest.raises(Exception, match="NaN or infinite"):
                C.encode(x, torch.Generator().manual_seed(0))
    x = torch.full((4,), 3e38)
    with pytest.raises(Exception, match="declared for"):
        get_compressor("qsgd").encode(x, torch.Generator().manual_seed(0))


@pytest.mark.parametrize("spec", ["qsgd", "terngrad"])
def test_tiny_and_zero_rows(spec):
    C = get_compressor(spec)
    x = torch.zeros(3, 50)
    x[1] = torch.linspace(-1, 1, 50) * 1e-40  # subnormal: the scale is taken at 2^64 x
    x[2] = torch.linspace(-1, 1, 50) * 1e-30
    y = C.compress(x, torch.Generator().manual_seed(0))
    assert torch.isfinite(y).all() and y[0].eq(0).all()
    ys = torch.stack([C.compress(x, torch.Generator().manual_seed(i)) for i in range(2000)])
    # every |C_i| <= m or ||x||: the mean over 2000 draws within 0.1 max|C| (Hoeffding: a
    # per-coordinate failure probability 2 exp(-2 * 2000 * 0.1^2 / 4) < 1e-4)
    for row in (1, 2):
        top = float(ys[:, row].abs().max())
        assert top > 0
        dev = (ys[:, row].mean(0) - x[row]).abs().max()
        assert float(dev) < 0.1 * top, (row, float(dev), top)


@pytest.mark.parametrize("n", [1, 2, 7, 1000, 1001])
@pytest.mark.parametrize("lead", [(), (3,)])
def test_nibble_packing_equals_the_bit_stream(n, lead):
    v = torch.randint(0, 16, (*lead, n), generator=torch.Generator().manual_seed(n))
    ref = wire.pack_uint(v, 4)  # int64 values: the generic path
    got = wire.pack_uint(v.to(torch.uint8), 4)
    assert got.equal(ref) and got.shape[-1] == math.ceil(n / 2)
    assert wire.unpack_uint(got, n, 4).equal(v)


@pytest.mark.parametrize("case", ["normal", "periodic", "ties", "few_large", "zeros"])
def test_top_k_sampled_selection_equals_a_full_selection(case):
    """The sampled-threshold selection (rows of d >= 2^15) returns exactly the set of a full
    sort, including inputs built against the stride (periodic), ties and mostly zeros."""
    from theorylab.compressors import sparsifiers

    d, k = 70000, 700
    g = torch.Generator().manual_seed(5)
    x = torch.randn(d, generator=g)
    if case == "periodic":  # the large entries avoid every sampled position
        x = torch.randn(d, generator=g) * 1e-3
        x[1 :: max(1, d // sparsifiers._SAMPLE)] = (
            5.0
            + torch.rand(d // 4 + 1, generator=g)[
                : len(range(1, d, max(1, d // sparsifiers._SAMPLE)))
            ]
        )
    elif case == "ties":
        x = torch.randint(-20, 21, (d,), generator=g).float()
    elif case == "few_large":
        x = torch.randn(d, generator=g) * 1e-6
        x[torch.randperm(d, generator=g)[:k]] = torch.randn(k, generator=g) + 10
    elif case == "zeros":
        x = torch.zeros(d)
        x[torch.randperm(d, generator=g)[: k + 3]] = torch.randn(k + 3, generator=g)
    C = get_compressor(f"top-k:k={k}")
    y = C.compress(x)
    a = x.abs()
    kth = torch.sort(a, descending=True).values[k - 1]
    if int((a >= kth).sum()) == k:  # unique set: exactly the entries >= the k-th largest
        assert y.equal(torch.where(a >= kth, x, torch.zeros_like(x)))
    else:  # ties: torch.topk breaks them; still k entries, all >= every dropped one
        kept = y != 0
        assert int(kept.sum()) <= k and float(a[~kept].max()) <= float(a[kept].min())
    idx = sparsifiers._top_k_unique(x.reshape(1, -1), k)
    a_np = a.numpy()
    full = np.flatnonzero(a_np >= np.partition(a_np, d - k)[d - k])
    assert (idx is None) == (len(full) != k)
    if idx is not None:
        assert np.array_equal(idx.numpy()[0], full)


def test_top_k_sampled_unrepresentative_sample_falls_back():
    from theorylab.compressors import sparsifiers

    d, k = 70000, 700
    stride = max(1, d // sparsifiers._SAMPLE)
    a = np.zeros(d, dtype=np.float32)
    a[::stride] = np.arange(1, len(a[::stride]) + 1)  # all the mass on sampled positions
    found, idx = sparsifiers._top_k_sampled(a, k)
    assert not found and idx is None
    got = sparsifiers._top_k_unique(torch.from_numpy(a).reshape(1, -1), k)
    assert np.array_equal(got.numpy()[0], np.sort(np.argsort(-a, kind="stable")[:k]))


@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (1, 70001), (3, 1001), (5, 10), (2, 13)])
@pytest.mark.parametrize("chunk", [None, 333, 4])
def test_packed_output_equals_packing_the_codes(shape, chunk, monkeypatch):
    from theorylab.compressors import dither

    if chunk is not None:
        monkeypatch.setattr(dither, "_DITHER_CHUNK", chunk)
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(2))
    for s, pack, ref in [(7, "nibbles", lambda v: wire.pack_uint(v.to(torch.int64), 4)),
                         (1, "trits", wire.pack_trits)]:  # fmt: skip
        c = dither_scale(s, torch.linalg.vector_norm(x, dim=-1, keepdim=True) * 1.01)
        codes = dither_codes(x, c, s, torch.Generator().manual_seed(4))
        packed = dither_codes(x, c, s, torch.Generator().manual_seed(4), pack)
        assert packed.equal(ref(codes)), pack
    with pytest.raises(ValueError, match="4-bit"):
        dither_codes(x, c, 1, torch.Generator(), "nibbles")
    with pytest.raises(ValueError, match="4-bit"):
        dither_codes(x, c, 7, torch.Generator(), "trits")


@pytest.mark.parametrize("s", [1, 2, 3, 7, 127])
@pytest.mark.parametrize("u", ["zero", "max"])
def test_extreme_sums_do_not_overflow(s, u):
    """``|R_i| = s 2^F`` (an entry equal to the norm) with the smallest and the largest ``u``:
    the int32 sum ``R_i + u_i`` reaches ``(s + 1) 2^F - 1 <= 2^31 - 1``; codes ``2s`` and 0."""
    F = fixed_point_bits(s)
    x = np.array([[1.0, -1.0, 0.0, -0.0]], dtype=np.float32)
    c = dither_scale(s, torch.ones(1, 1)).numpy()
    assert float(c[0, 0]) == s * 2.0**F  # exact: R = +-s 2^F
    word = 0 if u == "zero" else ((1 << F) - 1) << (32 - F)
    words = np.full(4, word, dtype=np.uint32)
    code = dither_codes_np(x, c, _words_from(words), s)[0]
    assert code.tolist() == [2 * s, 0, s, s]


def test_trit_bytes_for_every_digit_combination():
    """All 243 groups of five digits (deterministic: x_i in {-1, 0, 1} at scale 2^F gives
    R_i = -2^F, 0, 2^F, the digits 0, 1, 2 whatever u), in one row and across rows, against
    the generic packer; the largest byte 242 included."""
    digits = np.array([[(b // 3**j) % 3 for j in range(5)] for b in range(243)])
    x = (digits.reshape(1, -1) - 1).astype(np.float32)
    for rows in (x, x.reshape(3, -1)):
        xt = torch.from_numpy(rows.copy())
        c = dither_scale(1, torch.ones(rows.shape[0], 1))
        packed = dither_codes(xt, c, 1, torch.Generator().manual_seed(0), "trits")
        want = wire.pack_trits(torch.from_numpy(digits.reshape(rows.shape)))
        assert packed.equal(want)
    assert int(packed.max()) == 242


@pytest.mark.parametrize("seed", range(4))
def test_norm_bounds_every_entry(seed):
    """QSGD's one-pass norm: ``torch.linalg.vector_norm`` of float32 rows is >= every |x_i|
    (a rounded root of a sum of rounded squares: see QSGD._quantize_fixed), on inputs where a
    rounded norm could fall short: one entry and zeros, one entry and tiny ones, entries whose
    squares round down, equal entries; and the codes stay in [0, 2s] at the boundary."""
    g = torch.Generator().manual_seed(seed)
    cases = []
    for _ in range(200):
        a = float(torch.rand(1, generator=g)) * 2.0 ** int(torch.randint(-19, 59, (1,)))
        a = float(torch.tensor(a, dtype=torch.float32))
        d = int(torch.randint(1, 2000, (1,), generator=g))
        v = torch.zeros(1, d)
        v[0, int(torch.randint(0, d, (1,), generator=g))] = a * (-1) ** seed
        cases.append(v)
        w = torch.randn(1, d, generator=g) * a * 2.0**-40
        w[0, 0] = a
        cases.append(w)
        u = 1 + torch.randint(0, 2**23, (1, d), generator=g).float() * 2.0**-23  # 1 + k ulp
        cases.append(u * a)
        cases.append(torch.full((1, d), a))
    for v in cases:
        n = float(torch.linalg.vector_norm(v, dim=-1, keepdim=True))
        assert n >= float(v.abs().max()), (n, float(v.abs().max()))
    C = get_compressor("qsgd")
    for v in cases[:40]:
        parts = C._quantize(v, torch.Generator().manual_seed(1), torch.float32)
        codes = wire.unpack_uint(parts[1], v.shape[-1], 4)
        assert int(codes.max()) <= 14 and float(parts[0][0]) >= float(v.abs().max())
