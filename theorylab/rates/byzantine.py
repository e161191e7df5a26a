"""Predicted error floors of Byzantine-robust parallel SGD with worker momentum, and the lower
bound.

Setting (shared/references/rates.md §7): n workers, f of them Byzantine, honest set H with
|H| = n - f; the server aggregates the honest workers' momenta (and f arbitrary vectors) with an
(f, kappa)-robust rule F (kappa from :mod:`theorylab.aggregators`). Heterogeneity is
(G, B)-dissimilarity on the honest set, ``(1/|H|) sum_{i in H} ||grad f_i(x) - grad f_H(x)||^2
<= G^2 + B^2 ||grad f_H(x)||^2`` for all x (so ``zeta2 = G^2`` with ``B2 = 0`` is the uniform
bound H1); ``sigma2`` the per-worker gradient noise; ``L`` smoothness; ``delta`` =
f_H(x_0) - inf f_H. The measured quantity is ``E||grad f_H(x_hat)||^2`` at a uniformly random
iterate x_hat.

The constants of the cited theorems are only known up to numerical factors here ([RECALLED] in
the references), so every rate is a *shape* (``big_o=True``): the floor is linear in
``kappa * zeta2``, proportional to f/(n-2f) for NNM-composed rules and CWTM, Theta(zeta2) for
bare Krum/GM/CWMed; the lower bound is ``f/(n-2f) * zeta2``.
"""

from __future__ import annotations

import math
import warnings

from theorylab.errors import TheorylabError, TheorylabWarning, check_int, check_positive
from theorylab.rates._rate import Rate

__all__ = ["robust_dshb", "bucketing_momentum_sgd", "byzantine_lower_bound"]

_ALLOUAH = (
    "Allouah, Farhadkhani, Guerraoui, Gupta, Pinot, Stephan, 'Fixing by mixing', AISTATS 2023, "
    "arXiv 2302.01772 (convergence of robust D-GD / D-SHB with an (f, kappa)-robust rule)"
)
_KARIMIREDDY = (
    "Karimireddy, He, Jaggi, 'Byzantine-robust learning on heterogeneous datasets via "
    "bucketing', ICLR 2022, arXiv 2006.09365 (worker momentum + ARAgg); Karimireddy, He, Jaggi, "
    "'Learning from history for Byzantine robust optimization', ICML 2021, arXiv 2012.10333"
)


def _check_nf(n, f):
    n = check_int("n", n, minimum=1)
    f = check_int("f", f, minimum=0)
    if 2 * f >= n:
        raise TheorylabError(f"need f < n/2 Byzantine workers, got f={f} with n={n}")
    return n, f


def robust_dshb(
    *,
    kappa: float,
    zeta2: float,
    n: int,
    f: int,
    sigma2: float = 0.0,
    L: float = 1.0,
    delta: float = 1.0,
    T: int | None = None,
    B2: float = 0.0,
) -> Rate:
    r"""Error of robust D-SHB (D-SGD with worker heavy-ball momentum) with an (f, kappa)-robust
    aggregation rule, **upper** bound up to constants (``big_o=True``)::

        E||grad f_H(x_hat)||^2 = O( kappa G^2 / (1 - kappa B^2)                 [heterogeneity]
                                    + sqrt((1/(n-f) + kappa) L delta sigma2 / T)  [noise]
                                    + L delta / T )                              [optimization]

    (Allouah et al. 2023; rates.md §7a; the exact constant c in ``1 - c kappa B^2`` is not
    pinned, c = 1 is used for the shape). ``T=None`` gives the floor (noise and optimization
    -> 0). With ``sigma2 = 0`` it is robust D-GD. When ``kappa B2 >= 1`` the bound does not
    apply: the heterogeneity term is inf and a :class:`TheorylabWarning` is emitted.

    Parameters
    ----------
    kappa : float >= 0, the rule's robustness coefficient (e.g. ``get_aggregator(s).kappa(n, f)``)
    zeta2 : float >= 0, G^2 of (G, B)-dissimilarity (the uniform heterogeneity bound)
    n, f : int, 0 <= 2f < n
    sigma2 : float >= 0; L : float > 0; delta : float >= 0; T : int >= 1 or None
    B2 : float >= 0

    Returns
    -------
    Rate with terms 'heterogeneity', 'noise', 'optimization'.

    Example
    -------
    >>> r = robust_dshb(kappa=0.5, zeta2=2.0, n=10, f=2)
    >>> r.total, r.kind, r.big_o
    (1.0, 'upper', True)

    References
    ----------
    Allouah et al., AISTATS 2023, arXiv 2302.01772. rates.md §7a.
    """
    kappa = check_positive("kappa", kappa, allow_zero=True)
    zeta2 = check_positive("zeta2", zeta2, allow_zero=True)
    n, f = _check_nf(n, f)
    sigma2 = check_positive("sigma2", sigma2, allow_zero=True)
    L = check_positive("L", L)
    delta = check_positive("delta", delta, allow_zero=True)
    B2 = check_positive("B2", B2, allow_zero=True)
    T = None if T is None else check_int("T", T, minimum=1)
    if kappa * B2 >= 1.0:
        warnings.warn(
            f"robust_dshb: kappa * B2 = {kappa * B2:g} >= 1; the guarantee needs kappa B^2 small "
            "(1 - c kappa B^2 > 0). Use a rule with smaller kappa (e.g. NNM) or lower B2",
            TheorylabWarning,
            stacklevel=2,
        )
        het = math.inf
    else:
        het = kappa * zeta2 / (1.0 - kappa * B2)
    if T is None:
        noise = opt = 0.0
    else:
        noise = math.sqrt((1.0 / (n - f) + kappa) * L * delta * sigma2 / T)
        opt = L * delta / T
    return Rate(
        name="byzantine/robust_dshb" + ("/floor" if T is None else ""),
        quantity="E||grad f_H(x_hat)||^2" if T is not None else "floor of E||grad f_H(x_hat)||^2",
        terms={"heterogeneity": het, "noise": noise, "optimization": opt},
        kind="upper",
        source=_ALLOUAH + "; rates.md §7a",
        assumptions=(
            "f_H L-smooth, bounded below",
            "(G, B)-dissimilarity on the honest set, G^2 = zeta2",
            "unbiased noise, variance <= sigma2 per honest worker",
            "aggregation rule (f, kappa)-robust",
            "step and momentum as in the theorem",
        ),
        big_o=True,
        extra={
            "kappa": kappa,
            "zeta2": zeta2,
            "n": n,
            "f": f,
            "sigma2": sigma2,
            "B2": B2,
            "T": T,
            "lower_bound": f / (n - 2 * f) * zeta2,
        },
    )


def bucketing_momentum_sgd(
    *,
    c: float,
    zeta2: float,
    n: int,
    f: int,
    sigma2: float = 0.0,
    L: float = 1.0,
    delta: float = 1.0,
    T: int | None = None,
) -> Rate:
    r"""Robust SGD with worker momentum and a (delta_max, c)-ARAgg rule (e.g. Krum, CM or RFA
    after bucketing), **upper** bound up to constants, with ``delta_B = f/n``::

        (1/T) sum_t E||grad f(x_t)||^2
            = O( c delta_B zeta2                              [heterogeneity]
                 + sqrt((c delta_B + 1/n) L delta sigma2 / T) [noise]
                 + L delta / T )                              [optimization]

    (Karimireddy, He, Jaggi, ICLR 2022; rates.md §7b). ``T=None`` gives the floor.

    >>> bucketing_momentum_sgd(c=2.0, zeta2=1.0, n=10, f=1).total
    0.2
    """
    c = check_positive("c", c, allow_zero=True)
    zeta2 = check_positive("zeta2", zeta2, allow_zero=True)
    n, f = _check_nf(n, f)
    sigma2 = check_positive("sigma2", sigma2, allow_zero=True)
    L = check_positive("L", L)
    delta = check_positive("delta", delta, allow_zero=True)
    T = None if T is None else check_int("T", T, minimum=1)
    dB = f / n
    if T is None:
        noise = opt = 0.0
    else:
        noise = math.sqrt((c * dB + 1.0 / n) * L * delta * sigma2 / T)
        opt = L * delta / T
    return Rate(
        name="byzantine/bucketing_momentum" + ("/floor" if T is None else ""),
        quantity="(1/T) sum_t E||grad f(x_t)||^2",
        terms={"heterogeneity": c * dB * zeta2, "noise": noise, "optimization": opt},
        kind="upper",
        source=_KARIMIREDDY + "; rates.md §7b",
        assumptions=(
            "f L-smooth, bounded below",
            "uniform heterogeneity zeta2 on the good workers",
            "aggregator (delta_max, c)-ARAgg with f/n <= delta_max",
        ),
        big_o=True,
        extra={"c": c, "zeta2": zeta2, "n": n, "f": f, "delta_B": dB},
    )


def byzantine_lower_bound(*, zeta2: float, n: int, f: int, B2: float = 0.0) -> Rate:
    r"""Lower bound on the error any robust algorithm can guarantee, **lower**, up to constants::

        Omega( f/(n - (2 + B^2) f) * zeta2 )     (B2 = 0: Omega(f/(n-2f) zeta2))

    Allouah et al. 2023 (B = 0; matched by NNM-composed rules) and the NeurIPS 2024 follow-up
    (B > 0; breakdown at f/n >= 1/(2 + B^2): then the bound is inf). It contains Karimireddy
    et al.'s Omega(delta_B zeta2), delta_B = f/n (reported in ``extra['karimireddy']``).

    >>> byzantine_lower_bound(zeta2=3.0, n=10, f=2).total
    1.0
    """
    zeta2 = check_positive("zeta2", zeta2, allow_zero=True)
    n, f = _check_nf(n, f)
    B2 = check_positive("B2", B2, allow_zero=True)
    den = n - (2.0 + B2) * f
    het = math.inf if den <= 0 else f / den * zeta2
    return Rate(
        name="byzantine/lower_bound",
        quantity="E||grad f_H(x_hat)||^2 (any algorithm, worst case)",
        terms={"heterogeneity": het},
        kind="lower",
        source=_ALLOUAH + "; Allouah et al., NeurIPS 2024 (B > 0); " + _KARIMIREDDY,
        assumptions=("(G, B)-dissimilarity on the honest set, G^2 = zeta2",),
        big_o=True,
        extra={
            "karimireddy": f / n * zeta2,
            "breakdown_fraction": 1.0 / (2.0 + B2),
            "n": n,
            "f": f,
        },
    )
