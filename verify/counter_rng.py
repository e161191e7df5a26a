r"""Counter-based random numbers: pure functions of ``(key, call, index)``, vectorised over nodes.

Node ``i``'s numbers at its ``t``-th oracle call are a pure function of ``(key_i, t, c)``, ``c``
the flat index of the draw within the call, computed for all local nodes at once with int64
torch operations. The simulator (all nodes stacked) and a rank (one node) therefore produce the
same numbers without a Python loop over nodes, and CPU and CUDA produce the same integer words.

Construction (int64 arithmetic wrapping mod 2^64; ``H`` is the SplitMix64 finaliser returning
the top 63 bits, as :func:`theorylab.hashrng.splitmix64`; ``G = 0x9E3779B97F4A7C15``;
``D = 0xBF58476D1CE4E5B9``, an arbitrary constant that keeps the node streams apart from the
index stream: without it node key 0 would give ``K_{0,0} = E_0`` and the word ``H(0) = 0``)::

    E_c       = H((c + 1) G)                 # index word: SplitMix64's stream seeded 0
    K_{i,t}   = H(H(key_i XOR D) + (t + 1) G)  # (node, call) key: SplitMix64 seeded H(key_i ^ D)
    w_{i,t,c} = H(E_c XOR K_{i,t})           # 63-bit output word

Why it is sound: ``H`` is a bijection of 64-bit words with full avalanche (Stafford's "mix13",
the finaliser of SplitMix64, Steele, Lea, Flood 2014), and its inputs ``E_c XOR K_{i,t}`` are
distinct within a call (``E`` is injective on the indices a call uses unless two 63-bit words
collide) and pairwise far apart in Hamming distance, so the outputs behave as independent
uniform words; two draws of the whole run share an input only when ``E_c XOR E_c' = K XOR K'``,
an isolated coincidence at the rate of an ideal random function with 63-bit outputs (about
``N^2 / 2^64`` pairs among ``N`` draws). Not cryptographic; the tests check mean, variance and
cross-node/replica/call correlations at the ``1/sqrt(N)`` level.

* Standard normals: ``u = ((w >> 10) | 1) 2^-53 = (k + 1/2) 2^-52`` with ``k = w >> 11`` uniform
  on ``[0, 2^52)`` (exact in float64 on every device), then ``z = Phi^{-1}(u)``
  (``torch.special.ndtri`` in float64). The grid truncates the tails at
  ``|z| <= Phi^{-1}(1 - 2^-53) ~= 8.2`` (tail mass ``~2e-16`` moved inward) and moves each
  quantile by at most ``2^-53``, far below what any run of fewer than ``2^40`` draws can detect.
* Integers in ``[0, m)``: ``w mod m`` with ``w`` uniform on ``[0, 2^63)``, so each value has
  probability within ``2^-63`` of ``1/m`` (relative bias ``< m / 2^63 < 2^-40`` for
  ``m < 2^23``, which is enforced).

Device independence: every integer step is exact and a 53-bit integer converts exactly to
float64, so ``u`` is bitwise identical on CPU and CUDA; ``ndtri`` uses each device's own
``log``/``sqrt``/``exp``, so the normals agree to a few float64 ulps (not promised bitwise).

References
----------
G. L. Steele, D. Lea, C. H. Flood, "Fast splittable pseudorandom number generators",
OOPSLA 2014. J. K. Salmon, M. A. Moraes, R. O. Dror, D. E. Shaw, "Parallel random numbers: as
easy as 1, 2, 3", SC 2011 (counter-based generators).
"""

from __future__ import annotations

import torch

from theorylab.errors import TheorylabError, check_int
from theorylab.hashrng import GOLDEN as _GOLDEN
from theorylab.hashrng import MIX1 as _MIX1
from theorylab.hashrng import MIX2 as _MIX2
from theorylab.hashrng import splitmix64 as _splitmix64
from theorylab.hashrng import to_signed64 as _to_signed64

__all__ = [
    "node_keys",
    "index_words",
    "call_keys",
    "counter_words",
    "counter_normal",
    "counter_randint",
]

_U64 = (1 << 64) - 1
_MAX_HIGH = 1 << 23
_D = _MIX1  # domain separation of the node-key streams from the index stream


def node_keys(generators, device="cpu") -> torch.Tensor:
    """The int64 keys ``key_i = generators[l].initial_seed()`` (nothing is drawn), shape (m,).

    Raises
    ------
    TypeError
        If an entry is not a ``torch.Generator``.

    Examples
    --------
    >>> node_keys([torch.Generator().manual_seed(7)]).tolist()
    [7]
    """
    seeds = []
    for l, g in enumerate(generators):
        if not isinstance(g, torch.Generator):
            raise TypeError(
                "counter-based noise needs a torch.Generator per node (its initial_seed() is the "
                f"node's key); generators[{l}] is {type(g).__name__}"
            )
        seeds.append(_to_signed64(int(g.initial_seed()) & _U64))
    return torch.tensor(seeds, dtype=torch.int64, device=device)


def index_words(count: int, device="cpu") -> torch.Tensor:
    """``E_c = H((c + 1) G)`` for ``c = 0, ..., count-1`` (int64, shape (count,)); depends on
    nothing else, so callers cache it.

    Examples
    --------
    >>> index_words(2).tolist() == index_words(3)[:2].tolist()
    True
    """
    count = check_int("count", count, minimum=0)
    c = torch.arange(1, count + 1, dtype=torch.int64, device=device)
    return _splitmix64(c.mul_(_GOLDEN))


def call_keys(keys: torch.Tensor, t: int) -> torch.Tensor:
    """``K_{i,t} = H(H(key_i XOR D) + (t + 1) G)`` for each node key, shape of ``keys``.

    Examples
    --------
    >>> k = torch.tensor([1, 2])
    >>> bool(torch.equal(call_keys(k, 0), call_keys(k, 1)))
    False
    """
    if not isinstance(keys, torch.Tensor) or keys.dtype != torch.int64 or keys.dim() != 1:
        raise TypeError(f"keys must be a 1-D int64 tensor, got {keys!r}")
    t = check_int("t", t, minimum=0)
    return _splitmix64(_splitmix64(keys ^ _D) + _to_signed64(((t + 1) * (_GOLDEN & _U64)) & _U64))


def _mix_(z: torch.Tensor, tmp: torch.Tensor) -> torch.Tensor:
    """``H`` in place on ``z`` (``tmp``: scratch of the same shape); equals ``_splitmix64(z)``.

    ``>>`` on int64 is arithmetic, so each logical shift ``z >>> s`` is ``(z >> s) & (2^(64-s)-1)``;
    the products wrap mod 2^64. In place because out-of-place ops on large CPU tensors pay a page
    fault per fresh allocation (about 5x slower here)."""
    for shift, mult in ((30, _MIX1), (27, _MIX2), (31, None)):
        torch.bitwise_right_shift(z, shift, out=tmp)
        tmp.bitwise_and_((1 << (64 - shift)) - 1)
        z.bitwise_xor_(tmp)
        if mult is not None:
            z.mul_(mult)
    return z.bitwise_right_shift_(1).bitwise_and_((1 << 63) - 1)


def counter_words(
    keys: torch.Tensor,
    t: int,
    index: torch.Tensor,
    out: torch.Tensor | None = None,
    tmp: torch.Tensor | None = None,
) -> torch.Tensor:
    """The 63-bit words ``w_{i,t,c} = H(E_c XOR K_{i,t})``, shape ``(m, count)`` int64.

    Parameters
    ----------
    keys : int64 tensor (m,)
        Node keys (:func:`node_keys`), on the device of ``index``.
    t : int >= 0
        Call index.
    index : int64 tensor (count,)
        :func:`index_words` ``(count)``.
    out, tmp : int64 tensors (m, count), optional
        Reusable buffers for the result and the scratch (allocated when ``None``).

    Returns
    -------
    int64 tensor (m, count)
        Words uniform on ``[0, 2^63)`` (``out`` when given).

    Examples
    --------
    >>> E = index_words(3)
    >>> w = counter_words(torch.tensor([1, 2]), 0, E)
    >>> bool((w >= 0).all()), bool(torch.equal(w[1:], counter_words(torch.tensor([2]), 0, E)))
    (True, True)
    """
    K = call_keys(keys, t)
    shape = (keys.shape[0], index.shape[0])
    if out is None:
        out = torch.empty(shape, dtype=torch.int64, device=index.device)
    torch.bitwise_xor(index[None, :], K[:, None], out=out)
    return _mix_(out, torch.empty_like(out) if tmp is None else tmp)


def counter_normal(
    keys: torch.Tensor,
    t: int,
    index: torch.Tensor,
    out: torch.Tensor | None = None,
    work: tuple | None = None,
) -> torch.Tensor:
    """Standard normals ``z_{i,t,c} = Phi^{-1}(u_{i,t,c})`` (construction in the module notes).

    Parameters
    ----------
    keys, t, index
        As in :func:`counter_words`.
    out : float64 tensor (m, count), optional
        Reusable output buffer.
    work : pair of int64 tensors (m, count), optional
        Reusable buffers for :func:`counter_words`.

    Returns
    -------
    float64 tensor (m, count)
        ``N(0, 1)`` draws truncated to ``|z| <= 8.21``; independent across ``(i, t, c)`` in the
        sense of the module notes.

    Examples
    --------
    >>> z = counter_normal(torch.tensor([5]), 0, index_words(4))
    >>> z.shape, z.dtype
    (torch.Size([1, 4]), torch.float64)
    """
    w = counter_words(keys, t, index, *(work or ()))
    w.bitwise_right_shift_(10).bitwise_or_(1)  # 2k + 1, k = w >> 11 < 2^52: exact in float64
    if out is None:
        out = torch.empty(w.shape, dtype=torch.float64, device=w.device)
    out.copy_(w).mul_(2.0**-53)
    return torch.special.ndtri(out, out=out)


def counter_randint(keys: torch.Tensor, t: int, high: int, index: torch.Tensor) -> torch.Tensor:
    """Integers ``w_{i,t,c} mod high``, uniform on ``[0, high)`` up to the modulo bias.

    Parameters
    ----------
    keys, t, index
        As in :func:`counter_words`.
    high : int, 1 <= high < 2^23
        Exclusive upper bound.

    Returns
    -------
    int64 tensor (m, count)
        Each value has probability within ``2^-63`` of ``1/high`` (relative ``< 2^-40``).

    Raises
    ------
    TheorylabError
        If ``high >= 2^23`` (the bias bound would no longer hold).

    Examples
    --------
    >>> v = counter_randint(torch.tensor([3]), 0, 10, index_words(4))
    >>> bool(((v >= 0) & (v < 10)).all())
    True
    """
    high = check_int("high", high, minimum=1)
    if high >= _MAX_HIGH:
        raise TheorylabError(
            f"high must be < 2^23 so that the modulo bias stays below 2^-40, got {high}"
        )
    return counter_words(keys, t, index).remainder_(high)
