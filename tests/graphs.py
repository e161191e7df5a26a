"""Mixing matrices for the tests, built with plain numpy (independent of :mod:`theorylab.topology`
and :mod:`theorylab.mixing`, which they check against).

Row ``i`` holds node ``i``'s receive weights; every matrix is doubly stochastic.
"""

from __future__ import annotations

import numpy as np


def ring(n: int) -> np.ndarray:
    """Uniform weights over ``{i - 1, i, i + 1}`` (1/3 each for ``n >= 3``; 1/2 for ``n = 2``)."""
    W = np.zeros((n, n))
    for i in range(n):
        for j in {(i - 1) % n, i, (i + 1) % n}:
            W[i, j] = 1.0
        W[i] /= W[i].sum()
    return W


def lazy_ring(n: int, self_weight: float = 1 / 3) -> np.ndarray:
    """``self_weight`` on the diagonal and ``(1 - self_weight) / 2`` to each ring neighbour."""
    W = np.zeros((n, n))
    for i in range(n):
        W[i, i] = self_weight
        W[i, (i + 1) % n] += (1 - self_weight) / 2
        W[i, (i - 1) % n] += (1 - self_weight) / 2
    return W


def one_peer_exponential(n: int) -> list[np.ndarray]:
    """Schedule ``W^(t)``: node i averages with node ``i + 2^t (mod n)``, ``t = 0..log2(n) - 1``."""
    mats = []
    for k in range(int(np.log2(n))):
        W = 0.5 * np.eye(n)
        W[np.arange(n), (np.arange(n) + 2**k) % n] += 0.5
        mats.append(W)
    return mats
