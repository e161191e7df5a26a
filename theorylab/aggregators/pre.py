"""Pre-aggregators: maps of a stack (..., n, d) to a stack (..., n', d) applied before a rule.

Each is batched, vectorised (one matrix product where mixing is involved) and device-agnostic;
none modifies its input (ByzFL's ``Clipping`` and ``ARC`` write rows back into the caller's
array, byzantine_async.md §1.4). Non-finite messages are replaced as in
:mod:`theorylab.aggregators.rules`. The downstream rule keeps the same f.
"""

from __future__ import annotations

import torch

from theorylab.aggregators._stack import check_f, check_stack, pairwise_sq_dists, replace_nonfinite
from theorylab.errors import check_int, check_positive

__all__ = ["nnm", "bucketing", "arc", "static_clipping", "arc_count"]


def nnm(x: torch.Tensor, f: int) -> torch.Tensor:
    r"""Nearest-neighbour mixing: ``y_i = (1/(n-f)) sum_{j in N_i} x_j`` where ``N_i`` are the
    n - f inputs nearest to ``x_i`` in Euclidean distance, ``x_i`` itself included.

    Allouah et al., "Fixing by mixing", AISTATS 2023 (arXiv 2302.01772), Alg. 1; ByzFL ``NNM``
    (same definition). Guarantee (upper): if F is (f, kappa)-robust then F o NNM is
    (f, 8f/(n-f) (kappa + 1))-robust (ibid., Lemma 1), i.e. O(f/n) for every rule with
    kappa = O(1). Computed as ``y = M x`` with the 0/(1/(n-f)) selection matrix M.
    """
    x = check_stack(x)
    n = x.shape[-2]
    f = check_f(f, n, rule="nnm")
    x = replace_nonfinite(x)
    D = pairwise_sq_dists(x)
    eye = torch.eye(n, dtype=torch.bool, device=x.device)
    D = D.masked_fill(eye, -1.0)  # each input is its own nearest neighbour
    idx = torch.topk(D, n - f, dim=-1, largest=False, sorted=False).indices
    M = torch.zeros(D.shape, dtype=x.dtype, device=x.device)
    M.scatter_(-1, idx, 1.0 / (n - f))
    return M @ x


def bucketing(x: torch.Tensor, f: int = 0, *, s: int = 2, generator=None) -> torch.Tensor:
    r"""Bucketing (Karimireddy, He, Jaggi, ICLR 2022, arXiv 2006.09365, Alg. 1): a uniformly
    random permutation, then the means of consecutive groups of ``s``; ``ceil(n/s)`` buckets, a
    smaller last group averaged too. Output (..., ceil(n/s), d); each replica gets its own
    permutation, drawn from ``generator`` (a ``torch.Generator`` or an int seed; None = seed 0,
    so the result is reproducible).

    At most f buckets contain a Byzantine input, so the next rule runs with the same f on
    ceil(n/s) inputs and must allow it (2f < ceil(n/s)): the composed aggregator checks that.
    ByzFL ``Bucketing(s=1)`` has the same definition (its default s = 1 does nothing).
    Guarantee: with s = floor(delta_max/delta) it makes Krum/CM/RFA (delta_max, c)-ARAgg
    (ibid., Thm I) — an expectation over the permutation, not (f, kappa)-robustness.
    """
    x = check_stack(x)
    n = x.shape[-2]
    check_f(f, n, limit="any", rule="bucketing")
    s = check_int("s", s, minimum=1)
    x = replace_nonfinite(x)
    if s == 1:
        return x
    if generator is None or isinstance(generator, int):
        seed = 0 if generator is None else generator
        generator = torch.Generator(device="cpu").manual_seed(seed)
    batch = x.shape[:-2]
    u = torch.rand(*batch, n, generator=generator, device=generator.device)
    perm = torch.argsort(u, dim=-1).to(x.device)  # perm[..., k] = input at position k
    nb = -(-n // s)
    bucket_of_pos = torch.arange(n, device=x.device) // s
    sizes = torch.bincount(bucket_of_pos, minlength=nb).to(x.dtype)
    w = (1.0 / sizes)[bucket_of_pos]  # weight of position k: 1/size of its bucket
    P = perm.reshape(-1, n)
    M = torch.zeros(P.shape[0], nb, n, dtype=x.dtype, device=x.device)
    rows = torch.arange(P.shape[0], device=x.device).unsqueeze(-1)
    M[rows, bucket_of_pos.unsqueeze(0), P] = w.unsqueeze(0)
    return M.reshape(*batch, nb, n) @ x


def arc_count(n: int, f: int) -> int:
    """Number of inputs ARC clips: ``floor(2 (f/n) (n - f))``."""
    return int((2 * f * (n - f)) // n)


def arc(x: torch.Tensor, f: int) -> torch.Tensor:
    r"""Adaptive robust clipping: the ``k = floor(2 (f/n)(n - f))`` largest-norm inputs are
    scaled down to the norm of the (k+1)-th largest (ties by ``topk`` order).

    Allouah, Guerraoui, Gupta, Jellouli, Rizk, Stephan, "Boosting robustness by clipping
    gradients in distributed learning", 2024 (arXiv 2405.14432), Alg. 1; ByzFL ``ARC`` (same k;
    ByzFL writes the clipped rows back into its argument, this returns a new tensor).
    """
    x = check_stack(x)
    n = x.shape[-2]
    f = check_f(f, n, rule="arc")
    x = replace_nonfinite(x)
    k = arc_count(n, f)
    if k == 0:
        return x
    norms = torch.linalg.vector_norm(x, dim=-1)  # (..., n)
    c = torch.topk(norms, k + 1, dim=-1, largest=True, sorted=True).values[..., k : k + 1]
    scale = torch.clamp(c / norms.clamp_min(torch.finfo(x.dtype).tiny), max=1.0)
    return x * scale.unsqueeze(-1)


def static_clipping(x: torch.Tensor, f: int = 0, *, c: float = 2.0) -> torch.Tensor:
    r"""Static clipping ``x_i <- x_i min(1, c / ||x_i||)`` (ByzFL ``Clipping(c=2.0)``, same
    definition, but without ByzFL's in-place write-back). Not robustness-preserving on its own:
    it changes the honest mean whenever an honest norm exceeds c (kappa None).
    """
    x = check_stack(x)
    check_f(f, x.shape[-2], limit="any", rule="static_clipping")
    c = check_positive("c", c)
    x = replace_nonfinite(x)
    norms = torch.linalg.vector_norm(x, dim=-1, keepdim=True)
    return x * torch.clamp(c / norms.clamp_min(torch.finfo(x.dtype).tiny), max=1.0)
