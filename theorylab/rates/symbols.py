r"""The papers' mixing symbols, translated to this package's ``rho`` in one place.

This package writes ``rho = ||W - 11^T/n||_2 = max(|lambda_2(W)|, |lambda_n(W)|)`` for a symmetric
doubly stochastic W with eigenvalues ``1 = lambda_1 > lambda_2 >= ... >= lambda_n > -1``, and
calls ``1 - rho`` the spectral gap. The papers use (shared/references/rates.md §0):

==============================================  ===============  ==============================
paper                                           symbol           in terms of this package
==============================================  ===============  ==============================
Koloskova et al. 2020 / 2021 (mixing parameter)  ``p``            ``p = 1 - rho^2``
Lian et al. 2017 (D-PSGD)                       "rho"            ``rho^2`` (a square)
Pu, Olshevsky, Paschalidis 2022                 ``rho_w``        ``rho``
Yuan, Alghunaim, Huang 2023 (ED/D^2)            ``beta``/lambda  ``rho``
Koloskova, Stich, Jaggi 2019 (CHOCO)            ``delta``        ``1 - |lambda_2(W)|`` (eigengap)
Koloskova, Stich, Jaggi 2019 (CHOCO)            ``beta``         ``||I - W||_2 = 1 - lambda_n(W)``
Laplacian weights ``W = I - a L_G``             ``l_i``          ``lambda_i(W) = 1 - a l_i``
==============================================  ===============  ==============================

Facts used by the converters (each tested): ``1 - rho <= p <= 2 (1 - rho)`` because
``p = (1 - rho)(1 + rho)``; CHOCO's eigengap equals ``1 - rho`` when ``lambda_n >= -lambda_2``
(e.g. every lazy ``(I + W)/2``) and is larger otherwise; for ``W = I - a L_G`` with Laplacian
eigenvalues ``0 = l_1 < l_2 <= ... <= l_n``, ``rho = max(|1 - a l_2|, |1 - a l_n|)``.

Every converter validates its input and raises :class:`~theorylab.errors.TheorylabError` naming
the value when it is outside the symbol's range.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from theorylab.errors import TheorylabError, check_positive

__all__ = [
    "MixingSymbols",
    "p_from_rho",
    "rho_from_p",
    "lian_rho_from_rho",
    "rho_from_lian_rho",
    "spectral_gap_from_rho",
    "rho_from_spectral_gap",
    "rho_from_eigenvalues",
    "rho_from_laplacian",
    "mixing_symbols",
]


def _unit(name: str, value, *, closed_right: bool = False) -> float:
    value = check_positive(name, value, allow_zero=True)
    if value > 1 or (value == 1 and not closed_right):
        bound = "[0, 1]" if closed_right else "[0, 1)"
        raise TheorylabError(f"{name} must lie in {bound}, got {value}")
    return value


def p_from_rho(rho: float) -> float:
    """Koloskova et al.'s mixing parameter ``p = 1 - rho^2`` from ``rho = ||W - J||_2``.

    Example
    -------
    >>> p_from_rho(0.5)
    0.75
    """
    rho = _unit("rho", rho, closed_right=True)
    return 1.0 - rho * rho


def rho_from_p(p: float) -> float:
    """Inverse of :func:`p_from_rho`: ``rho = sqrt(1 - p)``, p in [0, 1].

    Example
    -------
    >>> rho_from_p(0.75)
    0.5
    """
    p = _unit("p", p, closed_right=True)
    return math.sqrt(1.0 - p)


def lian_rho_from_rho(rho: float) -> float:
    """Lian et al. (2017)'s "rho" (``max(|lambda_2|, |lambda_n|)^2``) from this package's rho.

    Example
    -------
    >>> lian_rho_from_rho(0.5)
    0.25
    """
    rho = _unit("rho", rho, closed_right=True)
    return rho * rho


def rho_from_lian_rho(lian_rho: float) -> float:
    """Inverse of :func:`lian_rho_from_rho`: ``rho = sqrt(lian_rho)``.

    Example
    -------
    >>> rho_from_lian_rho(0.25)
    0.5
    """
    lian_rho = _unit("lian_rho", lian_rho, closed_right=True)
    return math.sqrt(lian_rho)


def spectral_gap_from_rho(rho: float) -> float:
    """Spectral gap ``1 - rho`` (this package's definition).

    Example
    -------
    >>> spectral_gap_from_rho(0.75)
    0.25
    """
    return 1.0 - _unit("rho", rho, closed_right=True)


def rho_from_spectral_gap(spectral_gap: float) -> float:
    """Inverse of :func:`spectral_gap_from_rho`: ``rho = 1 - spectral_gap``.

    Example
    -------
    >>> rho_from_spectral_gap(0.25)
    0.75
    """
    return 1.0 - _unit("spectral_gap", spectral_gap, closed_right=True)


def rho_from_eigenvalues(eigenvalues) -> float:
    """``rho = max(|lambda_2|, |lambda_n|)`` from all n eigenvalues of a symmetric stochastic W.

    The largest eigenvalue must be 1 (within 1e-9); it is removed once and the largest modulus
    of the rest is returned (0 for n = 1).

    Example
    -------
    >>> rho_from_eigenvalues([1.0, 0.5, -0.7])
    0.7
    """
    lam = np.sort(np.asarray(eigenvalues, dtype=float).ravel())[::-1]
    if lam.size == 0 or not np.all(np.isfinite(lam)):
        raise TheorylabError(f"eigenvalues must be a non-empty finite list, got {eigenvalues!r}")
    if abs(lam[0] - 1.0) > 1e-9:
        raise TheorylabError(
            f"the largest eigenvalue of a stochastic W must be 1, got {lam[0]!r}; pass the "
            "eigenvalues of W (not of its Laplacian; see rho_from_laplacian)"
        )
    if np.any(np.abs(lam) > 1 + 1e-9):
        raise TheorylabError(f"eigenvalues of a stochastic W lie in [-1, 1], got {lam.tolist()}")
    return float(np.max(np.abs(lam[1:]))) if lam.size > 1 else 0.0


def rho_from_laplacian(laplacian_eigenvalues, a: float) -> float:
    """rho of ``W = I - a L_G`` from the Laplacian's eigenvalues: ``max(|1 - a l_2|, |1 - a l_n|)``.

    ``laplacian_eigenvalues`` are the n eigenvalues of ``L_G`` (one of them 0); ``a > 0`` the
    edge weight. The graph must be connected (``l_2 > 0``).

    Example
    -------
    >>> rho_from_laplacian([0.0, 1.0, 3.0], a=1 / 3)  # path on 3 nodes, W = I - L/3
    0.6666666666666667
    """
    a = check_positive("a", a)
    lap = np.sort(np.asarray(laplacian_eigenvalues, dtype=float).ravel())
    if lap.size == 0 or not np.all(np.isfinite(lap)):
        raise TheorylabError("laplacian_eigenvalues must be a non-empty finite list")
    if abs(lap[0]) > 1e-9:
        raise TheorylabError(
            f"the smallest Laplacian eigenvalue must be 0, got {lap[0]!r} (pass L_G's eigenvalues)"
        )
    if lap.size == 1:
        return 0.0
    if lap[1] <= 1e-12:
        raise TheorylabError(
            f"the graph is disconnected (lambda_2(L_G) = {lap[1]:g}); rho would be 1"
        )
    return float(max(abs(1.0 - a * lap[1]), abs(1.0 - a * lap[-1])))


@dataclass(frozen=True)
class MixingSymbols:
    """Every paper's symbol for one symmetric doubly stochastic W (see the module table)."""

    rho: float
    spectral_gap: float
    p: float
    lian_rho: float
    choco_delta: float
    choco_beta: float
    lambda_2: float
    lambda_n: float

    def to_dict(self) -> dict:
        return asdict(self)


def mixing_symbols(W) -> MixingSymbols:
    """All the symbols of the module table for a symmetric doubly stochastic ``W``.

    Raises
    ------
    TheorylabError
        W not square, not symmetric (within 1e-10) or not doubly stochastic (within 1e-9).

    Example
    -------
    >>> s = mixing_symbols([[0.5, 0.5], [0.5, 0.5]])
    >>> s.rho, s.p, s.choco_delta, s.choco_beta
    (0.0, 1.0, 1.0, 1.0)
    """
    W = np.asarray(W, dtype=float)
    if W.ndim != 2 or W.shape[0] != W.shape[1]:
        raise TheorylabError(f"W must be a square matrix, got shape {W.shape}")
    if not np.allclose(W, W.T, atol=1e-10):
        raise TheorylabError("W must be symmetric for these symbols (they use its eigenvalues)")
    if not (np.allclose(W.sum(axis=1), 1, atol=1e-9) and np.allclose(W.sum(axis=0), 1, atol=1e-9)):
        raise TheorylabError("W must be doubly stochastic (rows and columns summing to 1)")
    lam = np.sort(np.linalg.eigvalsh(W))[::-1]
    rho = rho_from_eigenvalues(lam)
    l2 = float(lam[1]) if lam.size > 1 else 0.0
    ln = float(lam[-1]) if lam.size > 1 else 0.0
    return MixingSymbols(
        rho=rho,
        spectral_gap=1.0 - rho,
        p=1.0 - rho * rho,
        lian_rho=rho * rho,
        choco_delta=1.0 - abs(l2),
        choco_beta=float(np.linalg.norm(np.eye(W.shape[0]) - W, 2)),
        lambda_2=l2,
        lambda_n=ln,
    )
