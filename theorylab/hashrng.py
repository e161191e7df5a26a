"""A counter-based hashing generator: splitmix64 on int64 tensors, identical on every device.

The hash ``H(z)`` is the splitmix64 finaliser (Steele, Lea, Flood 2014) computed with wrapping
int64 arithmetic and logical shifts; it returns the top 63 bits as a non-negative int64, a
uniform key. A stream with seed ``s`` is ``H(s + j G)``, ``j = 1, 2, ...``, with the golden-ratio
increment ``G = 0x9E3779B97F4A7C15`` (as a signed int64). Because only integer operations are
used, CPU and CUDA produce the same bits, which is what lets a receiver regenerate the sender's
random choices from a seed (rand-k's indices; ``verify.counter_rng``'s noise).

Example
-------
>>> import torch
>>> keys = splitmix64(torch.tensor([0, 1, 2]) * GOLDEN)
>>> bool((keys >= 0).all())
True
>>> stream(torch.tensor([7]), 3).shape
torch.Size([1, 3])

References
----------
G. L. Steele, D. Lea, C. H. Flood, "Fast splittable pseudorandom number generators",
OOPSLA 2014.
"""

from __future__ import annotations

import torch

__all__ = ["GOLDEN", "MIX1", "MIX2", "to_signed64", "shr", "splitmix64", "stream"]


def to_signed64(v: int) -> int:
    """The int64 with the same 64-bit pattern as the unsigned ``v`` (``0 <= v < 2^64``)."""
    return v - (1 << 64) if v >= 1 << 63 else v


#: golden-ratio increment of the stream, ``0x9E3779B97F4A7C15`` as a signed int64
GOLDEN = to_signed64(0x9E3779B97F4A7C15)
#: the two multipliers of the splitmix64 finaliser, as signed int64
MIX1 = to_signed64(0xBF58476D1CE4E5B9)
MIX2 = to_signed64(0x94D049BB133111EB)


def shr(z: torch.Tensor, s: int) -> torch.Tensor:
    """Logical right shift of int64 ``z`` by ``s`` bits (``z`` read as unsigned 64-bit)."""
    return (z >> s) & ((1 << (64 - s)) - 1)


def splitmix64(z: torch.Tensor) -> torch.Tensor:
    """The splitmix64 finaliser on int64 tensors, wrapping mod 2^64; returns the top 63 bits as a
    non-negative int64 (a uniform key in ``[0, 2^63)``)."""
    z = (z ^ shr(z, 30)) * MIX1
    z = (z ^ shr(z, 27)) * MIX2
    z = z ^ shr(z, 31)
    return shr(z, 1)


def stream(seeds: torch.Tensor, count: int, start: int = 1) -> torch.Tensor:
    """Keys ``H(seed + j G)`` for ``j = start, ..., start + count - 1``: int64 ``(len(seeds),
    count)``, on ``seeds``' device."""
    j = torch.arange(start, start + count, dtype=torch.int64, device=seeds.device)
    return splitmix64(seeds.reshape(-1, 1) + j * GOLDEN)
