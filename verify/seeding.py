"""Explicit, reproducible randomness: one torch.Generator per (seed, stream, node).

Both executors derive node ``i``'s generators from the same ``(seed, stream, i)`` triple, so a
node draws the same numbers whether it runs alone in a process (distributed executor) or stacked
with all others (simulator). Nothing here touches global RNG state.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["STREAMS", "node_seed", "node_generator", "node_generators"]

#: Named random streams; a new stream must be appended (never reordered) to keep old seeds valid.
STREAMS = ("noise", "algorithm", "init", "data", "attack", "delay")


def node_seed(seed: int, stream: str, node: int) -> int:
    """A 63-bit seed for ``(seed, stream, node)`` from numpy's SeedSequence (well mixed)."""
    if stream not in STREAMS:
        raise ValueError(f"stream must be one of {STREAMS}, got {stream!r}")
    if int(seed) < 0 or int(node) < 0:
        raise ValueError(f"seed and node must be >= 0, got seed={seed}, node={node}")
    state = np.random.SeedSequence([int(seed), STREAMS.index(stream), int(node)]).generate_state(
        2, dtype=np.uint32
    )
    return int((int(state[0]) << 31) ^ int(state[1])) & ((1 << 63) - 1)


def node_generator(seed: int, stream: str, node: int, device="cpu") -> torch.Generator:
    """A fresh ``torch.Generator`` on ``device`` for ``(seed, stream, node)``."""
    g = torch.Generator(device=device)
    g.manual_seed(node_seed(seed, stream, node))
    return g


def node_generators(seed: int, stream: str, nodes, device="cpu") -> list[torch.Generator]:
    """Generators for each node id in ``nodes`` (in that order)."""
    return [node_generator(seed, stream, int(i), device) for i in nodes]
