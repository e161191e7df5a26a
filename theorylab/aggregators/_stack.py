"""Validation of a stack of n vectors and the Byzantine count f; non-finite rows; distances.

Shared by every rule and pre-aggregator of :mod:`theorylab.aggregators` (private).
"""

from __future__ import annotations

import numbers
import warnings

import torch

from theorylab.errors import TheorylabError, TheorylabWarning

__all__: list[str] = []


def check_stack(x, name: str = "x") -> torch.Tensor:
    """Return ``x`` as a floating tensor of shape (..., n, d) with n >= 1, d >= 1.

    A list/tuple of equally shaped 1-D tensors is stacked; vectors of different shapes raise
    naming the first mismatching shape.
    """
    if isinstance(x, (list, tuple)):
        if len(x) == 0:
            raise TheorylabError(f"{name} must hold at least one vector, got an empty sequence")
        shapes = [tuple(torch.as_tensor(v).shape) for v in x]
        for i, s in enumerate(shapes):
            if s != shapes[0]:
                raise TheorylabError(
                    f"{name}: all vectors must have the same shape; vector 0 has shape "
                    f"{shapes[0]} but vector {i} has shape {s}"
                )
        x = torch.stack([torch.as_tensor(v) for v in x], dim=-2)
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch tensor (..., n, d), got {type(x).__name__}")
    if x.dim() < 2:
        raise TheorylabError(
            f"{name} must have shape (..., n, d) (a stack of n vectors), got shape {tuple(x.shape)}"
        )
    if x.shape[-2] < 1 or x.shape[-1] < 1:
        raise TheorylabError(
            f"{name} needs n >= 1 vectors of dimension d >= 1, got {tuple(x.shape)}"
        )
    if not x.is_floating_point():
        x = x.to(torch.get_default_dtype())
    return x


def check_f(f, n: int, limit: str = "half", rule: str = "aggregator") -> int:
    """Validate the Byzantine count: ``0 <= f`` and the rule's own limit.

    limit: ``'half'`` or ``'krum'`` (2f < n; then Krum's n - f - 1 >= 0), ``'any'`` (f < n).
    """
    if isinstance(f, bool) or not isinstance(f, numbers.Integral):
        raise TypeError(f"f (Byzantine count) must be an integer, got {f!r}")
    f = int(f)
    if f < 0:
        raise TheorylabError(f"f (Byzantine count) must be >= 0, got f={f}")
    if limit == "any":
        if f >= n:
            raise TheorylabError(f"{rule}: need f < n, got f={f} with n={n}")
    elif 2 * f >= n:
        raise TheorylabError(
            f"{rule}: need f < n/2 (2f < n), got f={f} with n={n}; lower f or add inputs"
        )
    return f


def replace_nonfinite(x: torch.Tensor) -> torch.Tensor:
    """Rows (messages) with any NaN/inf entry are outliers: replace each by the coordinate-wise
    lower median of the finite rows of its stack.

    A Byzantine node could have sent that median itself, so every (f, kappa)-robustness guarantee
    survives the replacement as long as at most f rows are non-finite. A stack with no finite row
    gives zeros and a :class:`TheorylabWarning`. Returns ``x`` itself when every entry is finite.
    """
    # a row is non-finite iff its sum is (NaN/inf propagate; +inf + -inf = NaN): one reduction
    # pass and no (n, d) mask on the common all-finite path. A finite row whose sum overflows
    # (entries near the dtype's max) is then checked entry-wise below.
    if bool(torch.isfinite(x.sum(dim=-1)).all()):
        return x
    ok = torch.isfinite(x).all(dim=-1)  # (..., n)
    if bool(ok.all()):
        return x
    masked = torch.where(ok.unsqueeze(-1), x, torch.full_like(x, float("nan")))
    med = torch.nanmedian(masked, dim=-2, keepdim=True).values
    if not bool(torch.isfinite(med).all()):
        warnings.warn(
            "aggregator: a stack with no finite message; its output is set to 0",
            TheorylabWarning,
            stacklevel=3,
        )
        med = torch.nan_to_num(med, nan=0.0, posinf=0.0, neginf=0.0)
    return torch.where(ok.unsqueeze(-1), x, med.expand_as(x))


def pairwise_sq_dists(x: torch.Tensor) -> torch.Tensor:
    """||x_i - x_j||^2 for a stack (..., n, d), by one matrix product: (..., n, n).

    ``|x_i|^2 + |x_j|^2 - 2 <x_i, x_j>`` after subtracting the stack's mean (cuts the
    cancellation when the vectors are far from the origin), clamped at 0, diagonal exactly 0;
    NaN (overflow) is mapped to +inf.
    """
    xc = x - x.mean(dim=-2, keepdim=True)
    sq = (xc * xc).sum(dim=-1)
    g = xc @ xc.transpose(-1, -2)
    D = (sq.unsqueeze(-1) + sq.unsqueeze(-2) - 2.0 * g).clamp_min(0.0)
    D = torch.nan_to_num(D, nan=float("inf"))
    n = x.shape[-2]
    eye = torch.eye(n, dtype=torch.bool, device=x.device)
    return D.masked_fill(eye, 0.0)
