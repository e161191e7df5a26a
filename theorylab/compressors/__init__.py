"""Compression operators with their proven class constants and an exact wire format.

Classes (shared/DESIGN.md):

- unbiased **U(omega)**: ``E C(x) = x`` and ``E||C(x) - x||^2 <= omega ||x||^2``;
- contractive **B(delta)**: ``E||C(x) - x||^2 <= (1 - delta) ||x||^2`` with ``delta in (0, 1]``.

If ``C`` is in U(omega) then ``C / (1 + omega)`` is in B(1 / (1 + omega)) (:class:`Scaled`), and
an unbiased ``C`` with ``omega < 1`` is also in B(1 - omega) (the default :meth:`Compressor.delta`).

Every compressor declares, as attributes (cvxpy-atom style): ``unbiased``, ``omega(d)``,
``delta(d)``, ``tight`` (the declared constant is attained by some ``x`` for every ``d``; see
``tight_at(d)`` where it depends on ``d``), ``stochastic``, ``bits(d, dtype)`` and ``name``. The
tests in ``tests/test_compressors.py`` confirm every declaration, and attain every constant
declared tight.

Shapes: the **last** dimension of ``x`` is the vector being compressed (length ``d``); leading
dimensions are a batch (nodes, replicas) and each row is compressed independently, drawing from
``generator`` in row-major order. (The dithering quantizers -- QSGD, TernGrad, natural -- with a
CPU generator draw one 62-bit seed from it per call and take their uniforms, row-major, from numpy's
SFC64 stream of that seed: about half ``torch.rand``'s CPU time, and the same values on every
device the result goes to; a CUDA generator draws with ``torch.rand`` on its device. QSGD and
TernGrad on CPU float32 use the stream's raw 32-bit words as integer thresholds instead of
floats: :func:`~theorylab.compressors.dither.dither_codes`.)

Wire format (bit order, ternary and float layout in :mod:`theorylab.wire`): one message per row,
rows concatenated. A row is ``header_bytes(dtype)`` bytes of header (e.g. the row's norm as a float
of the compute dtype) followed by the packed payload of ``payload_bits(d, dtype)`` bits rounded up
to whole bytes. So

    bits(d, dtype) = 8 * header_bytes(dtype) + payload_bits(d, dtype)      (one d-vector)
    nbytes(shape, dtype) = rows * ceil(bits(d, dtype) / 8)

and ``encode`` returns exactly ``nbytes`` bytes. ``decode(encode(x, g)) == compress(x, g')`` for
a generator ``g'`` in the same state as ``g`` (and, for stateful compressors, the same compressor
state): both run the same quantization and the same reconstruction. The receiving side of an
all-gather, ``decode_sum(bufs, shape)``, equals ``decode(bufs[0]) + decode(bufs[1]) + ...``
(added left to right) without a dense tensor per message.

Floats on the wire (values, norms, scales) are in the *compute dtype*: the input dtype for float32
and float64, float32 for float16/bfloat16 inputs.

Example
-------
>>> import torch
>>> C = get_compressor("qsgd:s=4")
>>> C.unbiased, C.omega(1024), C.bits(1024)
(True, 7.0, 4128)
>>> g = torch.Generator().manual_seed(0)
>>> x = torch.randn(3, 1024, generator=g)
>>> buf = C.encode(x, torch.Generator().manual_seed(1))
>>> buf.numel() == C.nbytes(x.shape) == 3 * 516
True
>>> y = C.decode(buf, x.shape, x.dtype, x.device)
>>> y.equal(C.compress(x, torch.Generator().manual_seed(1)))
True

References
----------
Alistarh et al., QSGD, NeurIPS 2017, arXiv:1610.02132. Stich, Cordonnier, Jaggi, Sparsified SGD
with memory, NeurIPS 2018, arXiv:1809.07599. Karimireddy et al., Error feedback fixes SignSGD,
ICML 2019, arXiv:1901.09847. Wen et al., TernGrad, NeurIPS 2017, arXiv:1705.07878. Horvath et al.,
Natural compression, MSML 2022, arXiv:1905.10988. Vogels, Karimireddy, Jaggi, PowerSGD,
NeurIPS 2019, arXiv:1905.13727. Beznosikov et al., On biased compression, arXiv:2002.12410.

Modules
-------
:mod:`~theorylab.compressors.base` (the :class:`Compressor` base class, :class:`Identity`,
:class:`Scaled`), :mod:`~theorylab.compressors.sparsifiers` (rand-k, top-k),
:mod:`~theorylab.compressors.quantizers` (casts, QSGD, TernGrad, natural, sign, scaled sign),
:mod:`~theorylab.compressors.lowrank` (PowerSGD), :mod:`~theorylab.compressors.registry` (names
and the spec parser), :mod:`~theorylab.compressors.wire` (bit packing),
:mod:`~theorylab.compressors.dither` (stochastic rounding by integer thresholds). The hashing
generator that rand-k uses is the public module :mod:`theorylab.hashrng`.
"""

import weakref  # noqa: F401  (kept as an attribute: tests patch compressors.weakref.ref)

from theorylab.compressors.base import Compressor, Identity, Scaled, check_vector
from theorylab.compressors.lowrank import PowerSGD
from theorylab.compressors.quantizers import QSGD, Cast, Natural, ScaledSign, Sign, TernGrad
from theorylab.compressors.registry import COMPRESSORS, get_compressor
from theorylab.compressors.sparsifiers import RandK, TopK

# old private names of the hashing generator (now public in theorylab.hashrng)
from theorylab.hashrng import GOLDEN as _GOLDEN  # noqa: F401
from theorylab.hashrng import MIX1 as _MIX1  # noqa: F401
from theorylab.hashrng import MIX2 as _MIX2  # noqa: F401
from theorylab.hashrng import splitmix64 as _splitmix64  # noqa: F401
from theorylab.hashrng import to_signed64 as _to_signed64  # noqa: F401

__all__ = [
    "Compressor",
    "Identity",
    "Cast",
    "RandK",
    "TopK",
    "QSGD",
    "Natural",
    "Sign",
    "ScaledSign",
    "TernGrad",
    "PowerSGD",
    "Scaled",
    "COMPRESSORS",
    "get_compressor",
    "check_vector",
]
