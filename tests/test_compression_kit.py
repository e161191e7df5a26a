"""The conformance kit catches wrong compressors, and its strategies produce what they promise."""

import math

import pytest
import torch
from hypothesis import HealthCheck, find, given, settings
from hypothesis import strategies as st

from theorylab.compressors import QSGD, Compressor, RandK, ScaledSign, Sign, get_compressor
from theorylab.testing.compressors import (
    CompressorCheckError,
    check_compressor,
    check_contraction,
    check_deterministic,
    check_finite,
    check_unbiased,
    check_variance,
    check_wire,
    vectors,
)
from theorylab.wire import bytes_to_floats, floats_to_bytes

FAST = settings(
    max_examples=15, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck)
)


class L2ScaledSign(ScaledSign):
    """(||x||_2/sqrt(d)) sign(x) (DeepSpeed 1-bit Adam's scale) falsely declared B(1/d): at e_1
    its error is 2(1 - 1/sqrt(d))||x||^2 > ||x||^2, so it is not contractive."""

    name = "l2-scaled-sign"

    def _quantize(self, x, generator, dtype):
        return torch.linalg.vector_norm(x, dim=-1) / math.sqrt(x.shape[-1]), x < 0


class GraceRandK(RandK):
    """GRACE's randomk: indices with replacement, unscaled -- falsely declared unbiased."""

    def _quantize(self, x, generator, dtype):
        seeds, _ = super()._quantize(x, generator, dtype)
        return seeds, x.gather(1, self._indices(seeds, x.shape[-1], x.device))

    def _reconstruct(self, parts, d, dtype):
        seeds, values = parts
        idx = self._indices(seeds, d, values.device)
        out = torch.zeros(values.shape[0], d, dtype=values.dtype, device=values.device)
        return out.scatter_(1, idx, values)  # no d/k scale: E C(x) = (k/d) x


class Understated(QSGD):
    """QSGD declaring 0.9 times its true worst-case omega."""

    def omega(self, d):
        return 0.9 * super().omega(d)


class GlobalRNG(RandK):
    """Ignores the generator (uses torch's global RNG): not reproducible under a seed."""

    def _quantize(self, x, generator, dtype):
        return super()._quantize(x, None, dtype)


class NaNAtZero(ScaledSign):
    """Normalises by ||x||_1 without guarding x = 0."""

    def _quantize(self, x, generator, dtype):
        return x.abs().sum(-1) / x.abs().sum(-1), x < 0


class ShortWire(Sign):
    """Declares d/2 bits but sends d."""

    def payload_bits(self, d, dtype=torch.float32):
        return d // 2 + 1

    def row_bytes(self, d, dtype=torch.float32):
        return -(-d // 8)


def test_l2_scaled_sign_fails_the_contraction_check():
    e1 = torch.zeros(64)
    e1[0] = 1.0
    with pytest.raises(CompressorCheckError, match="delta"):
        check_contraction(L2ScaledSign(), e1)
    with pytest.raises(CompressorCheckError):
        check_compressor(L2ScaledSign(), e1)
    check_contraction(ScaledSign(), e1)  # the l1 scale passes, with equality


def test_l2_scaled_sign_fails_on_hypothesis_inputs():
    # hypothesis finds a failing vector by itself (one-nonzero inputs are in the strategy)
    def fails(x):
        try:
            check_contraction(L2ScaledSign(), x)
        except CompressorCheckError:
            return True
        return False

    x = find(
        vectors(min_d=2, max_d=20), fails, settings=settings(derandomize=True, max_examples=200)
    )
    assert fails(x)


def test_biased_rand_k_fails_unbiasedness():
    # E C(x) = (k/d) x: at d = 8, k = 2 the bias on x = 1 is 0.75, far above the Hoeffding
    # tolerance 4 sqrt(ln(16/1e-6)/8000) = 0.18.
    with pytest.raises(CompressorCheckError, match="unbiasedness"):
        check_unbiased(GraceRandK(k=2), torch.ones(8), samples=4000)
    check_unbiased(RandK(k=2), torch.ones(8), samples=4000)


def test_understated_omega_fails_variance_check():
    C = Understated(s=2)
    x = C.worst_case(64).float()
    with pytest.raises(CompressorCheckError, match="omega"):
        check_variance(C, x)
    check_variance(QSGD(s=2), x)


def test_monte_carlo_variance_check_detects_understatement_without_a_law():
    # same compressor with its exact law hidden: the truncated Hoeffding test must still reject.
    # True ratio 3 vs declared 2.7; cap 4 * 2.7 ||x||^2, N = 20000: the tolerance
    # 10.8 sqrt(ln(1e6)/40000) = 0.2 < 0.3, and the mean of the capped ratio is ~3.
    C = Understated(s=2)
    with pytest.raises(CompressorCheckError, match="Hoeffding"):
        check_variance(_NoLaw(C), C.worst_case(64).float(), samples=20000)


class _NoLaw:
    """Wraps a compressor, hiding its coordinate law and output bounds."""

    def __init__(self, C):
        self._C = C
        self.stochastic, self.stateful, self.unbiased = True, False, True
        self.spec = "no-law"

    def omega(self, d):
        return self._C.omega(d)

    def compress(self, x, generator=None):
        return self._C.compress(x, generator)


def test_wire_determinism_and_finiteness_checks_catch_bugs():
    x = torch.randn(17, generator=torch.Generator().manual_seed(0))
    with pytest.raises(CompressorCheckError, match="wire|bytes"):
        check_wire(ShortWire(), x)
    with pytest.raises(CompressorCheckError, match="determinism"):
        check_deterministic(GlobalRNG(k=3), x)
    with pytest.raises(CompressorCheckError, match="finite"):
        check_finite(NaNAtZero(), x)


def test_user_compressor_in_five_lines():
    # the README snippet: a user's compressor (C(x) = x/2, in B(3/4) with equality), declared
    # by subclassing Compressor, checked with the kit on hypothesis inputs
    class Halve(Compressor):
        name, tight = "halve", True

        def delta(self, d):
            return 0.75

        def payload_bits(self, d, dtype=torch.float32):
            return 32 * d

        def _quantize(self, x, generator, dtype):
            return (x / 2,)

        def _reconstruct(self, parts, d, dtype):
            return parts[0]

        def _pack(self, parts, d, dtype):
            return floats_to_bytes(parts[0])

        def _unpack(self, buf, d, dtype):
            return (bytes_to_floats(buf, torch.float32),)

    @FAST
    @given(x=vectors(), seed=st.integers(0, 2**32 - 1))
    def test(x, seed):
        check_compressor(Halve(), x, seed=seed)

    test()


def test_strategies_cover_the_edge_cases():
    s = settings(derandomize=True, max_examples=500)
    assert find(vectors(), lambda x: bool((x == 0).all()), settings=s).numel() >= 1
    assert find(vectors(), lambda x: x.numel() == 1, settings=s).numel() == 1
    assert (
        find(vectors(), lambda x: int((x != 0).sum()) == 1 and x.numel() > 3, settings=s)
        is not None
    )
    assert (
        find(
            vectors(),
            lambda x: x.numel() > 2 and bool((x.abs() == x.abs()[0]).all()) and bool(x[0] != 0),
            settings=s,
        )
        is not None
    )
    assert find(vectors(), lambda x: float(x.abs().max()) > 1e30, settings=s) is not None
    tiny = torch.finfo(torch.float32).smallest_normal
    assert (
        find(vectors(), lambda x: bool(((x != 0) & (x.abs() < tiny)).any()), settings=s) is not None
    )
    assert find(vectors(), lambda x: x.numel() % 2 == 1 and x.numel() > 1, settings=s) is not None
    # domain clipping: fp16 inputs stay in fp16's normal range
    C = get_compressor("fp16")

    @FAST
    @given(x=vectors(domain=C))
    def in_domain(x):
        a = x.abs()[x != 0]
        assert bool(((a >= 2.0**-14) & (a <= 65504)).all())

    in_domain()
