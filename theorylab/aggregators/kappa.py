r"""Robustness coefficient kappa of (f, kappa)-robust averaging, in theory and measured.

Definition (Allouah, Farhadkhani, Guerraoui, Gupta, Pinot, Stephan, "Fixing by mixing: a recipe
for optimal Byzantine ML under heterogeneity", AISTATS 2023, arXiv 2302.01772, Def. 2): F is
(f, kappa)-robust if for every input x_1..x_n and every S subset [n] with |S| = n - f::

    ||F(x) - xbar_S||^2 <= kappa (1/|S|) sum_{i in S} ||x_i - xbar_S||^2.

Lower bound (ibid., Prop. 1): every F has kappa >= f/(n - 2f). Proof (checked by
:func:`lower_bound_input`): f inputs at a, n - 2f at 0, f more at 0. The n - f zeros form a set
with zero spread, so a finite-kappa F must output 0; for S = {the f at a, the n - 2f zeros} the
ratio is exactly f/(n - 2f).

Upper bounds (ibid., Table 1 / Props. 2-5 and Lemma 1; constants checked here against the
adversarial search of :func:`empirical_kappa` — see tests/test_aggregators_kappa.py):

==================  =====================================
rule                kappa upper bound (2f < n)
==================  =====================================
trimmed mean        (6f/(n-2f)) (1 + f/(n-2f))
coordinate median   4 (1 + f/(n-2f))^2
geometric median    4 (1 + f/(n-2f))^2
Krum                6 (1 + f/(n-2f))
F o NNM             (8f/(n-f)) (kappa_F + 1)
==================  =====================================

The empirical kappa is the worst ratio a seeded adversarial search finds (a lower estimate of
the true kappa of the rule: it can only under-estimate).
"""

from __future__ import annotations

import itertools
import math
from typing import NamedTuple

import numpy as np
import torch

from theorylab.errors import TheorylabError, check_int

__all__ = [
    "kappa_lower_bound",
    "kappa_trimmed_mean",
    "kappa_coordinate_median",
    "kappa_geometric_median",
    "kappa_krum",
    "kappa_nnm",
    "robustness_ratio",
    "lower_bound_input",
    "empirical_kappa",
    "EmpiricalKappa",
]


def _nf(n, f):
    n = check_int("n", n, minimum=1)
    f = check_int("f", f, minimum=0)
    if 2 * f >= n:
        raise TheorylabError(f"(f, kappa)-robustness needs 2f < n, got f={f}, n={n}")
    return n, f


def kappa_lower_bound(n: int, f: int) -> float:
    """f/(n - 2f): no aggregation rule is (f, kappa)-robust with a smaller kappa (lower)."""
    n, f = _nf(n, f)
    return f / (n - 2 * f)


def kappa_trimmed_mean(n: int, f: int) -> float:
    """(6f/(n-2f)) (1 + f/(n-2f)) for the coordinate-wise trimmed mean (upper)."""
    n, f = _nf(n, f)
    r = f / (n - 2 * f)
    return 6.0 * r * (1.0 + r)


def kappa_coordinate_median(n: int, f: int) -> float:
    """4 (1 + f/(n-2f))^2 for the coordinate-wise median (upper)."""
    n, f = _nf(n, f)
    return 4.0 * (1.0 + f / (n - 2 * f)) ** 2


def kappa_geometric_median(n: int, f: int) -> float:
    """4 (1 + f/(n-2f))^2 for the (exact) geometric median (upper)."""
    n, f = _nf(n, f)
    return 4.0 * (1.0 + f / (n - 2 * f)) ** 2


def kappa_krum(n: int, f: int) -> float:
    """6 (1 + f/(n-2f)) for Krum with n - f - 1 neighbours (upper)."""
    n, f = _nf(n, f)
    return 6.0 * (1.0 + f / (n - 2 * f))


def kappa_nnm(n: int, f: int, kappa: float) -> float:
    """(8f/(n-f)) (kappa + 1): kappa of F o NNM when F is (f, kappa)-robust (upper)."""
    n, f = _nf(n, f)
    return 8.0 * f / (n - f) * (float(kappa) + 1.0)


def _kept_sets(n: int, f: int, device) -> torch.Tensor:
    m = math.comb(n, f)
    if m > 50_000:
        raise TheorylabError(f"robustness_ratio enumerates C(n, f) = {m} sets; use n <= ~16")
    K = torch.ones(m, n, dtype=torch.bool, device=device)
    if f:
        ex = torch.tensor(list(itertools.combinations(range(n), f)), device=device)
        K[torch.arange(m, device=device).unsqueeze(-1), ex] = False
    return K


def robustness_ratio(x: torch.Tensor, y: torch.Tensor, f: int, *, rtol: float = 1e-9):
    r"""Worst ratio over S, |S| = n - f: ``||y - xbar_S||^2 / ((1/|S|) sum_S ||x_i - xbar_S||^2)``.

    x: (..., n, d), y: (..., d) -> (...). Every S is enumerated (C(n, f) sets, small n). A set
    with zero spread (below ``rtol`` times the input scale) gives 0 if ``y`` equals its mean
    to within ``sqrt(rtol)`` of the scale, else inf.
    """
    n = x.shape[-2]
    K = _kept_sets(n, f, x.device).to(x.dtype)  # (m, n)
    m_f = n - f
    xbar = (K @ x) / m_f  # (..., m, d)
    dev = x.unsqueeze(-3) - xbar.unsqueeze(-2)  # (..., m, n, d)
    var = ((dev * dev).sum(-1) * K).sum(-1) / m_f  # (..., m)
    num = ((y.unsqueeze(-2) - xbar) ** 2).sum(-1)
    scale = (x * x).sum(-1).mean(-1, keepdim=True) + (x.std(-2) ** 2).sum(-1, keepdim=True)
    scale = scale.clamp_min(torch.finfo(x.dtype).tiny)
    degenerate = var <= rtol * scale
    ratio = num / torch.where(degenerate, torch.ones_like(var), var)
    zero_ok = num <= math.sqrt(rtol) * scale
    ratio = torch.where(
        degenerate,
        torch.where(zero_ok, torch.zeros_like(num), torch.full_like(num, math.inf)),
        ratio,
    )
    ratio = torch.nan_to_num(ratio, nan=math.inf, posinf=math.inf)
    return ratio.amax(dim=-1)


def lower_bound_input(n: int, f: int, d: int = 1, dtype=torch.float64) -> torch.Tensor:
    """The input of the lower-bound proof: f vectors at e_1, n - f at 0 (shape (n, d))."""
    n, f = _nf(n, f)
    x = torch.zeros(n, d, dtype=dtype)
    x[:f, 0] = 1.0
    return x


class EmpiricalKappa(NamedTuple):
    """Result of :func:`empirical_kappa`: the worst ratio, the input reaching it, its origin
    ('lower-bound', 'random', 'alie', 'two-clusters', 'ascent'), and the number of inputs tried."""

    kappa: float
    x: torch.Tensor
    strategy: str
    evaluations: int


def empirical_kappa(
    aggregator,
    n: int,
    f: int,
    *,
    d: int = 2,
    seed: int = 0,
    batch: int = 64,
    ascent_steps: int = 30,
) -> EmpiricalKappa:
    r"""Worst robustness ratio (:func:`robustness_ratio`) found by a seeded adversarial search.

    Candidates, evaluated in batches (one batched aggregator call each):

    1. ``lower-bound``: :func:`lower_bound_input` (reaches f/(n-2f) for every finite-kappa rule);
    2. ``random``: n - f Gaussian inputs and f Byzantine ones at Gaussian positions of scale
       10^{-1..3};
    3. ``alie``: Byzantine at ``mean + z std`` (per coordinate) of the honest ones, z in [-4, 4];
    4. ``two-clusters``: honest inputs split into two tight clusters, Byzantine near either;
    5. ``ascent``: from the 8 best candidates, coordinate ascent over all n vectors (random
       perturbations of one vector at a time, kept if the ratio grows; step halves on failure).

    ``aggregator(x, f)`` must accept (B, n, d) float64 tensors. Deterministic for a seed.
    """
    n, f = _nf(n, f)
    d = check_int("d", d, minimum=1)
    rng = np.random.default_rng(seed)
    best = [(-1.0, None, "")]
    count = 0
    pool_x, pool_r, pool_s = [], [], []

    def evaluate(X: np.ndarray, label: str):
        nonlocal count
        xt = torch.from_numpy(np.ascontiguousarray(X, dtype=np.float64))
        y = aggregator(xt, f)
        r = robustness_ratio(xt, y, f).numpy()
        count += len(X)
        pool_x.append(X)
        pool_r.append(r)
        pool_s.extend([label] * len(X))
        return r

    evaluate(lower_bound_input(n, f, d).numpy()[None], "lower-bound")
    h = n - f
    # random
    H = rng.standard_normal((batch, h, d))
    B = rng.standard_normal((batch, f, d)) * (10.0 ** rng.uniform(-1, 3, (batch, 1, 1)))
    evaluate(np.concatenate([H, B], axis=1), "random")
    # ALIE-like
    H = rng.standard_normal((batch, h, d))
    z = np.linspace(-4, 4, batch)[:, None, None]
    mu, sd = H.mean(1, keepdims=True), H.std(1, ddof=1, keepdims=True)
    evaluate(np.concatenate([H, np.repeat(mu + z * sd, f, axis=1)], axis=1), "alie")
    # two clusters
    split = rng.integers(1, max(2, h), batch)
    centers = rng.standard_normal((batch, 2, d)) * 3
    H = rng.standard_normal((batch, h, d)) * 0.05
    for b in range(batch):
        H[b, : split[b]] += centers[b, 0]
        H[b, split[b] :] += centers[b, 1]
    Bz = centers[:, rng.integers(0, 2, batch)][np.arange(batch), np.arange(batch)][:, None]
    Bz = Bz + rng.standard_normal((batch, f, d)) * 0.05
    evaluate(np.concatenate([H, Bz], axis=1), "two-clusters")
    # coordinate ascent from the best 8 finite candidates
    allx = np.concatenate(pool_x)
    allr = np.concatenate(pool_r)
    fin = np.where(np.isfinite(allr), allr, -1.0)
    order = np.argsort(-fin)[:8]
    parents = allx[order]
    pr = fin[order]
    step = np.full(len(parents), 0.5)
    per = max(1, batch // len(parents))
    for _ in range(ascent_steps):
        kids = np.repeat(parents, per, axis=0).copy()
        rows = rng.integers(0, n, len(kids))
        spread = kids.std(axis=(1, 2)) + 1e-12
        kids[np.arange(len(kids)), rows] += (
            rng.standard_normal((len(kids), d)) * (np.repeat(step, per) * spread)[:, None]
        )
        r = evaluate(kids, "ascent")
        r = np.where(np.isfinite(r), r, -1.0).reshape(len(parents), per)
        j = r.argmax(1)
        improved = r[np.arange(len(parents)), j] > pr
        for p in np.nonzero(improved)[0]:
            parents[p] = kids[p * per + j[p]]
            pr[p] = r[p, j[p]]
        step = np.where(improved, step * 1.5, step * 0.7)
    allr = np.concatenate(pool_r)
    allx = np.concatenate(pool_x)
    k = int(np.argmax(allr))
    del best
    return EmpiricalKappa(float(allr[k]), torch.from_numpy(allx[k]), pool_s[k], count)
