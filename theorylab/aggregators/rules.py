"""Robust aggregation rules: functions of a stack ``x`` of shape (..., n, d) and the count f.

Every rule is batched over leading replica dimensions, vectorised (pairwise distances by one
matrix product, no Python loop over nodes), device-agnostic, and returns (..., d). A message
holding NaN or inf is an outlier: it is replaced by the coordinate-wise median of the finite
messages before the rule runs (see ``_stack.replace_nonfinite``), so non-finite values never
reach the output. f must satisfy ``0 <= f`` and ``2f < n`` (Krum also ``n - f - 1 >= 1``);
anything else raises :class:`~theorylab.errors.TheorylabError` naming f and n.

Where libraries disagree (shared/references/byzantine_async.md §1.2-1.3) each rule pins one
definition and says which; the robustness coefficients are in :mod:`theorylab.aggregators.kappa`.
"""

from __future__ import annotations

import itertools
import math
from typing import NamedTuple

import torch

from theorylab.aggregators._stack import check_f, check_stack, pairwise_sq_dists, replace_nonfinite
from theorylab.errors import TheorylabError, check_int, check_positive

__all__ = [
    "mean",
    "coordinate_median",
    "trimmed_mean",
    "geometric_median",
    "GeometricMedianResult",
    "krum",
    "multi_krum",
    "krum_scores",
    "centered_clipping",
    "minimum_diameter_average",
    "monna",
    "MDA_MAX_SUBSETS",
]

#: Largest number of candidate subsets C(n, f) minimum-diameter averaging enumerates.
MDA_MAX_SUBSETS = 200_000


def _prep(x, f, limit="half", rule="aggregator"):
    x = check_stack(x)
    f = check_f(f, x.shape[-2], limit=limit, rule=rule)
    return replace_nonfinite(x), f


def _row_sum(x: torch.Tensor) -> torch.Tensor:
    """sum_i x_i as a (1 x n) @ (n x d) product: ~2x faster than a dim -2 reduction on CPU."""
    ones = torch.ones(1, x.shape[-2], dtype=x.dtype, device=x.device)
    return (ones @ x).squeeze(-2)


def mean(x: torch.Tensor, f: int = 0) -> torch.Tensor:
    r"""Plain average ``(1/n) sum_i x_i`` (not robust: one input moves it arbitrarily far).

    Guarantee: none for f >= 1 (kappa = inf). Non-finite messages are replaced first (module doc).

    >>> mean(torch.tensor([[1.0], [3.0]])).tolist()
    [2.0]
    """
    x = check_stack(x)
    check_f(f, x.shape[-2], rule="mean")
    y = _row_sum(x) / x.shape[-2]
    if bool(torch.isfinite(y).all()):  # finite mean <=> every message finite (one pass)
        return y
    return replace_nonfinite(x).mean(dim=-2)


def coordinate_median(x: torch.Tensor, f: int = 0) -> torch.Tensor:
    r"""Coordinate-wise median; for even n the **average of the two middle values**.

    Pinned definition: Yin et al. 2018 (arXiv 1803.01498), with the even-n convention of ByzFL's
    torch path, fedlib and epfml. Garfield uses ``torch.median`` (the *lower* middle value).
    Guarantee (upper): (f, 4(1 + f/(n-2f))^2)-robust for 2f < n (Allouah et al. 2023,
    Table 1). ``f`` is only validated (the rule does not use it).

    >>> coordinate_median(torch.tensor([[1.0], [2.0], [3.0], [10.0]])).tolist()
    [2.5]
    """
    x, f = _prep(x, f, rule="coordinate_median")
    n = x.shape[-2]
    if n % 2 == 1:
        return torch.median(x, dim=-2).values
    # the n/2 + 1 smallest values per coordinate; the two middle ones are their two largest
    low = torch.topk(x, n // 2 + 1, dim=-2, largest=False, sorted=False).values
    return torch.topk(low, 2, dim=-2, largest=True, sorted=False).values.mean(dim=-2)


def trimmed_mean(x: torch.Tensor, f: int) -> torch.Tensor:
    r"""Coordinate-wise trimmed mean: per coordinate drop the f largest and the f smallest
    values and average the n - 2f others.

    Pinned definition: Yin et al. 2018 with trim b = f (ByzFL ``TrMean``, epfml ``TM``; same
    definition). Guarantee (upper): (f, (6f/(n-2f))(1 + f/(n-2f)))-robust for 2f < n (Allouah
    et al. 2023, Table 1 / Prop. on CWTM).

    >>> trimmed_mean(torch.tensor([[0.0], [1.0], [2.0], [100.0]]), 1).tolist()
    [1.5]
    """
    x = check_stack(x)
    f = check_f(f, x.shape[-2], rule="trimmed_mean")
    total = _row_sum(x)
    if not bool(torch.isfinite(total).all()):  # some message non-finite: replace, recompute
        x = replace_nonfinite(x)
        total = _row_sum(x)
    if f == 0:
        return total / x.shape[-2]
    top = torch.topk(x, f, dim=-2, largest=True, sorted=False).values.sum(dim=-2)
    bot = torch.topk(x, f, dim=-2, largest=False, sorted=False).values.sum(dim=-2)
    n = x.shape[-2]
    return (total - top - bot) / (n - 2 * f)


class GeometricMedianResult(NamedTuple):
    """Output of :func:`geometric_median` with ``return_info=True``.

    z: (..., d) the estimate; iterations: int; converged: bool tensor (...) per replica;
    objective: (...) the value ``sum_i ||x_i - z||``.
    """

    z: torch.Tensor
    iterations: int
    converged: torch.Tensor
    objective: torch.Tensor


def geometric_median(
    x: torch.Tensor,
    f: int = 0,
    *,
    nu: float = 1e-8,
    tol: float = 1e-6,
    max_iter: int = 200,
    return_info: bool = False,
):
    r"""Geometric median ``argmin_z sum_i ||z - x_i||`` by smoothed Weiszfeld to a tolerance.

    The math (Pillutla, Kakade, Harchaoui, "Robust aggregation for federated learning", IEEE
    TSP 2022, arXiv 1912.13445, Alg. 3 with equal weights)::

        z_0 = (1/n) sum_i x_i
        beta_i = 1 / max(nu, ||z_k - x_i||)            # nu > 0 smooths the kink at x_i
        z_{k+1} = sum_i beta_i x_i / sum_i beta_i

    stopped when the objective ``g(z) = sum_i ||z - x_i||`` decreases by at most ``tol * g``
    between two iterates (relative tolerance), or after ``max_iter`` iterations (then
    ``converged`` is False for that replica). Each step is monotone in the smoothed objective.

    Differences: ByzFL ``GeometricMedian(nu=0.1, T=3)`` and epfml ``RFA`` start from **0** and
    run a fixed T iterations with nu = 0.1 (a coarse answer whose error is not controlled);
    fedlib ``GeoMed`` starts from the mean with a relative tolerance (as here).
    Guarantee (upper, for the exact minimiser): (f, 4(1 + f/(n-2f))^2)-robust for 2f < n
    (Allouah et al. 2023, Table 1).

    Parameters
    ----------
    x : (..., n, d); f : int, 0 <= 2f < n (validated only)
    nu : float > 0; tol : float > 0; max_iter : int >= 1
    return_info : bool, return a :class:`GeometricMedianResult` instead of z.

    >>> geometric_median(torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]), tol=1e-12).shape
    torch.Size([2])
    """
    x, f = _prep(x, f, rule="geometric_median")
    nu = check_positive("nu", nu)
    tol = check_positive("tol", tol)
    max_iter = check_int("max_iter", max_iter, minimum=1)
    buf = torch.empty_like(x)  # reused for x - z (no allocation per iteration)

    def dists(z):
        torch.sub(x, z.unsqueeze(-2), out=buf)
        return torch.linalg.vector_norm(buf, dim=-1)

    z = x.mean(dim=-2)
    dist = dists(z)
    obj = dist.sum(dim=-1)
    converged = torch.zeros(obj.shape, dtype=torch.bool, device=x.device)
    it = 0
    while it < max_iter:
        it += 1
        beta = 1.0 / dist.clamp_min(nu)
        z_new = (beta.unsqueeze(-2) @ x).squeeze(-2) / beta.sum(dim=-1, keepdim=True)
        dist_new = dists(z_new)
        obj_new = dist_new.sum(dim=-1)
        # replicas converged earlier stay frozen, so a batch gives the per-replica answers
        keep = converged
        z = torch.where(keep.unsqueeze(-1), z, z_new)
        dist = torch.where(keep.unsqueeze(-1), dist, dist_new)
        converged = converged | (obj - obj_new <= tol * obj_new)
        obj = torch.where(keep, obj, obj_new)
        if bool(converged.all()):
            break
    if return_info:
        return GeometricMedianResult(z, it, converged, obj)
    return z


def krum_scores(x: torch.Tensor, f: int) -> torch.Tensor:
    r"""Krum score of every input: the sum of squared distances to its ``n - f - 1`` nearest
    other inputs, shape (..., n).

    Pinned definition: Allouah et al. 2023 and ByzFL (n - f - 1 nearest others, squared
    Euclidean distances; ByzFL averages instead of summing, which does not change the argmin).
    Blanchard et al. 2017 count n - f - 2 neighbours; Garfield uses unsquared distances; epfml
    and fedlib square twice (4th powers). See byzantine_async.md §1.3.
    """
    x = check_stack(x)
    n = x.shape[-2]
    f = check_f(f, n, limit="krum", rule="krum")
    x = replace_nonfinite(x)
    D = pairwise_sq_dists(x)
    eye = torch.eye(n, dtype=torch.bool, device=x.device)
    D = D.masked_fill(eye, float("inf"))
    k = n - f - 1
    return torch.topk(D, k, dim=-1, largest=False, sorted=False).values.sum(dim=-1)


def _gather_rows(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """x (..., n, d), idx (..., m) -> (..., m, d)."""
    return torch.gather(x, -2, idx.unsqueeze(-1).expand(*idx.shape, x.shape[-1]))


def krum(x: torch.Tensor, f: int) -> torch.Tensor:
    r"""Krum: the input with the smallest :func:`krum_scores` (ties: the lowest index).

    Blanchard, El Mhamdi, Guerraoui, Stainer, NeurIPS 2017 (arXiv 1703.02757), with the neighbour
    count of Allouah et al. 2023 / ByzFL (see :func:`krum_scores`). Needs 2f < n.
    Guarantee (upper): (f, 6(1 + f/(n-2f)))-robust (Allouah et al. 2023, Table 1).

    >>> krum(torch.tensor([[0.0], [0.1], [0.2], [9.0]]), 1).tolist()
    [0.10000000149011612]
    """
    x, f = _prep(x, f, limit="krum", rule="krum")
    s = krum_scores(x, f)
    return _gather_rows(x, s.argmin(dim=-1, keepdim=True)).squeeze(-2)


def multi_krum(x: torch.Tensor, f: int, m: int | None = None) -> torch.Tensor:
    r"""Multi-Krum: the average of the ``m`` inputs with the smallest Krum scores.

    Pinned: ``m = n - f`` by default (ByzFL ``MultiKrum``); epfml *sums* the m best, Garfield's
    default is m = n - f - 2, fedlib's m = 1. Scores as in :func:`krum_scores`. No (f, kappa)
    bound is pinned here (kappa None in the registry).
    """
    x, f = _prep(x, f, limit="krum", rule="multi_krum")
    n = x.shape[-2]
    m = n - f if m is None else check_int("m", m, minimum=1, maximum=n)
    s = krum_scores(x, f)
    idx = torch.topk(s, m, dim=-1, largest=False, sorted=False).indices
    return _gather_rows(x, idx).mean(dim=-2)


def centered_clipping(
    x: torch.Tensor,
    f: int = 0,
    *,
    tau: float = 10.0,
    n_iter: int = 3,
    center: torch.Tensor | None = None,
) -> torch.Tensor:
    r"""Centered clipping (Karimireddy, He, Jaggi, ICML 2021, arXiv 2012.10333)::

        v_0 = center (default: the coordinate-wise median of x)
        v_{l+1} = v_l + (1/n) sum_i (x_i - v_l) min(1, tau / ||x_i - v_l||),  l < n_iter

    Pinned: stateless; pass ``center`` (e.g. the previous aggregate, as in the paper) for the
    stateful use. ByzFL's ``CenteredClipping`` keeps v across calls, starts at 0 and uses
    tau = 100, one iteration; epfml uses tau = 10, 3 iterations in the bucketing paper (our
    defaults). No scale-free (f, kappa) bound (kappa None): the guarantee needs tau tuned to
    the honest spread (Karimireddy et al. 2021, Thm III).
    """
    x, f = _prep(x, f, rule="centered_clipping")
    tau = check_positive("tau", tau)
    n_iter = check_int("n_iter", n_iter, minimum=1)
    if center is None:
        v = coordinate_median(x, f)
    else:
        v = torch.as_tensor(center, dtype=x.dtype, device=x.device).expand(
            x.shape[:-2] + x.shape[-1:]
        )
    for _ in range(n_iter):
        diff = x - v.unsqueeze(-2)
        norm = torch.linalg.vector_norm(diff, dim=-1, keepdim=True)
        scale = torch.clamp(tau / norm.clamp_min(torch.finfo(x.dtype).tiny), max=1.0)
        v = v + (scale.transpose(-1, -2) @ diff).squeeze(-2) / x.shape[-2]
    return v


def minimum_diameter_average(
    x: torch.Tensor, f: int, *, max_subsets: int = MDA_MAX_SUBSETS
) -> torch.Tensor:
    r"""Minimum-diameter averaging: average of the size-(n - f) subset with the smallest
    diameter ``max_{i,j in R} ||x_i - x_j||``. Diameter ties are common (many subsets share
    the farthest pair): they are broken by the smallest ``sum_{i,j in R} ||x_i - x_j||^2``
    (then the lowest subset), which keeps the rule permutation invariant on generic inputs;
    ByzFL and Garfield keep the first subset they enumerate (order-dependent).

    El Mhamdi, Guerraoui, Rouault, ICML 2018 (arXiv 1802.07927); ByzFL ``MDA``, Garfield
    ``brute`` (same definition). Exact enumeration of all C(n, f) subsets, chunked and
    vectorised: raises when C(n, f) > ``max_subsets`` (default 2e5), naming the count.
    No (f, kappa) bound is pinned here (kappa None in the registry).
    """
    x, f = _prep(x, f, rule="minimum_diameter_average")
    n = x.shape[-2]
    count = math.comb(n, f)
    if count > max_subsets:
        raise TheorylabError(
            f"minimum_diameter_average enumerates C(n, f) = C({n}, {f}) = {count} subsets, more "
            f"than max_subsets={max_subsets}; use a smaller n or f, or another rule"
        )
    D = pairwise_sq_dists(x)
    if f == 0:
        return x.mean(dim=-2)
    # enumerate the excluded sets (size f); a kept set's diameter is the max of D over kept pairs
    excluded = torch.tensor(list(itertools.combinations(range(n), f)), device=x.device)
    keep = torch.ones(count, n, dtype=torch.bool, device=x.device)
    keep[torch.arange(count, device=x.device).unsqueeze(-1), excluded] = False
    best = None  # (diameter, spread, index) per replica
    chunk = max(1, 4_000_000 // (n * n))
    for s in range(0, count, chunk):
        kp = keep[s : s + chunk]  # (c, n)
        pair = kp.unsqueeze(-1) & kp.unsqueeze(-2)  # (c, n, n)
        Dm = D.unsqueeze(-3).masked_fill(~pair, float("-inf"))  # (..., c, n, n)
        diam = Dm.flatten(-2).amax(dim=-1)  # (..., c)
        spread = (D.unsqueeze(-3) * pair).flatten(-2).sum(dim=-1)  # (..., c)
        # lexicographic (diameter, spread): among equal diameters the smallest spread
        dmin = diam.min(dim=-1, keepdim=True).values
        sp = torch.where(diam == dmin, spread, torch.full_like(spread, float("inf")))
        idx = sp.argmin(dim=-1)
        val = dmin.squeeze(-1)
        spv = torch.gather(spread, -1, idx.unsqueeze(-1)).squeeze(-1)
        idx = idx + s
        if best is None:
            best = (val, spv, idx)
        else:
            bv, bs, bi = best
            better = (val < bv) | ((val == bv) & (spv < bs))
            best = (
                torch.where(better, val, bv),
                torch.where(better, spv, bs),
                torch.where(better, idx, bi),
            )
    best_idx = best[2]
    w = keep[best_idx].to(x.dtype) / (n - f)  # (..., n)
    return (w.unsqueeze(-2) @ x).squeeze(-2)


def monna(x: torch.Tensor, f: int, *, idx: int = 0) -> torch.Tensor:
    r"""MoNNA: the average of the ``n - f`` inputs nearest to the trusted input ``x_idx``
    (itself included; ties: lower index first via ``topk``).

    Farhadkhani, Guerraoui, Gupta, Hoang, Pinot, Stephan, "Robust collaborative learning with
    linear gradient overhead", ICML 2023 (arXiv 2209.10931); ByzFL ``MoNNA(f, idx)`` (same
    definition). Not an (f, kappa)-robust rule in the sense of Allouah et al. (it trusts
    ``x_idx``): kappa None. If ``x_idx`` is non-finite it is replaced like any outlier.
    """
    x, f = _prep(x, f, rule="monna")
    n = x.shape[-2]
    idx = check_int("idx", idx, minimum=0, maximum=n - 1)
    ref = x[..., idx : idx + 1, :]
    d2 = ((x - ref) ** 2).sum(dim=-1)
    d2 = torch.nan_to_num(d2, nan=float("inf"))
    d2[..., idx] = -1.0  # always keep the trusted input itself
    near = torch.topk(d2, n - f, dim=-1, largest=False, sorted=False).indices
    return _gather_rows(x, near).mean(dim=-2)
