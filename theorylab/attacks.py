r"""Byzantine attacks: pure functions of the honest vectors that return the f Byzantine ones.

Every attack takes ``honest`` of shape (..., h, d) (h honest vectors, batched over leading
replica dimensions) and the Byzantine count ``f`` and returns (..., f, d); randomised attacks
take a seed or ``torch.Generator``. The attacker is omniscient (it reads the honest vectors),
as in Karimireddy et al. 2021/2022 and ByzFL. :func:`with_byzantine` stacks honest and
Byzantine vectors into the (..., n, d) input of an aggregator (Byzantine rows last).

Definitions pinned (byzantine_async.md §1.5 lists where libraries differ):

- sign flipping: ``-mean(honest)`` (ByzFL; Karimireddy's "BF" flips the node's own gradient);
- IPM (Xie, Koyejo, Gupta, UAI 2019, arXiv 1903.03936): ``-eps mean(honest)``, eps = 0.1
  (Karimireddy's value; ByzFL's default tau = 2.0);
- ALIE (Baruch, Baruch, Goldberg, NeurIPS 2019, arXiv 1902.06156): ``mean + z std`` per
  coordinate (std with ddof = 1), **z = Phi^{-1}((n - s)/n), s = floor(n/2 + 1) - f** (the
  paper's and Garfield's convention; Karimireddy/Blades use Phi^{-1}((n-f-s)/(n-f)) and send
  ``mean - z std``; ByzFL a fixed z = 1.5);
- optimal ALIE / IPM: the scale (z or eps) maximising ``||F(honest + byz) - mean(honest)||``
  against a given aggregator F, by a batched grid then local refinement (ByzFL's line search
  optimises the same objective);
- Gaussian: N(mu, sigma^2) per coordinate (ByzFL: mu = 0, sigma = 1);
- mimic: copies of honest vector ``idx`` (ByzFL's ``Mimic(epsilon=0)``);
- NaN / inf messages;
- label flipping is a data transform on the honest oracle's side: :func:`flip_labels`
  ``y -> C - 1 - y`` and the descriptor :data:`LABEL_FLIPPING`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import torch

from theorylab.errors import TheorylabError, check_int, check_positive

__all__ = [
    "sign_flipping",
    "ipm",
    "alie",
    "alie_z",
    "optimal_alie",
    "optimal_ipm",
    "OptimalAttack",
    "gaussian",
    "mimic",
    "nonfinite",
    "flip_labels",
    "LabelFlipping",
    "LABEL_FLIPPING",
    "with_byzantine",
    "ATTACKS",
    "get_attack",
]


def _check(honest, f):
    if not isinstance(honest, torch.Tensor) or honest.dim() < 2 or honest.shape[-2] < 1:
        raise TheorylabError(
            "honest must be a tensor (..., h, d) with h >= 1 honest vectors, got "
            f"{getattr(honest, 'shape', type(honest).__name__)}"
        )
    f = check_int("f", f, minimum=0)
    if not honest.is_floating_point():
        honest = honest.to(torch.get_default_dtype())
    return honest, f


def _repeat(v: torch.Tensor, f: int) -> torch.Tensor:
    return v.unsqueeze(-2).expand(*v.shape[:-1], f, v.shape[-1]).clone()


def _gen(generator, device):
    if isinstance(generator, torch.Generator):
        return generator
    seed = 0 if generator is None else check_int("seed", generator, minimum=0)
    return torch.Generator(device=device).manual_seed(seed)


def with_byzantine(honest: torch.Tensor, byzantine: torch.Tensor) -> torch.Tensor:
    """Stack (..., h, d) honest and (..., f, d) Byzantine vectors into (..., h + f, d)."""
    return torch.cat([honest, byzantine.to(honest.dtype)], dim=-2)


def sign_flipping(honest: torch.Tensor, f: int) -> torch.Tensor:
    """f copies of ``-mean(honest)``.

    >>> sign_flipping(torch.tensor([[1.0, 2.0], [3.0, 4.0]]), 1).tolist()
    [[-2.0, -3.0]]
    """
    honest, f = _check(honest, f)
    return _repeat(-honest.mean(dim=-2), f)


def ipm(honest: torch.Tensor, f: int, eps: float = 0.1) -> torch.Tensor:
    """Inner-product manipulation: f copies of ``-eps mean(honest)`` (eps > 0; default 0.1)."""
    honest, f = _check(honest, f)
    eps = check_positive("eps", eps)
    return _repeat(-eps * honest.mean(dim=-2), f)


def alie_z(n: int, f: int) -> float:
    """ALIE's z = Phi^{-1}((n - s)/n), s = floor(n/2 + 1) - f (Baruch et al. 2019).

    >>> round(alie_z(20, 8), 3)
    1.036
    """
    n = check_int("n", n, minimum=1)
    f = check_int("f", f, minimum=0, maximum=n)
    s = math.floor(n / 2 + 1) - f
    p = (n - s) / n
    if not 0.0 < p < 1.0:
        raise TheorylabError(f"ALIE z undefined for n={n}, f={f}: (n - s)/n = {p} not in (0, 1)")
    return NormalDist().inv_cdf(p)


def alie(honest: torch.Tensor, f: int, z: float | None = None, n: int | None = None):
    """f copies of ``mean + z std`` (per coordinate, ddof = 1; std = 0 when h = 1);
    ``z`` defaults to :func:`alie_z` (n = h + f unless given)."""
    honest, f = _check(honest, f)
    if z is None:
        z = alie_z(honest.shape[-2] + f if n is None else n, f)
    h = honest.shape[-2]
    std = honest.std(dim=-2) if h > 1 else torch.zeros_like(honest[..., 0, :])
    return _repeat(honest.mean(dim=-2) + float(z) * std, f)


def gaussian(
    honest: torch.Tensor, f: int, *, mu: float = 0.0, sigma: float = 1.0, generator=None
) -> torch.Tensor:
    """f vectors with i.i.d. N(mu, sigma^2) coordinates (seeded; ``generator`` int or Generator)."""
    honest, f = _check(honest, f)
    sigma = check_positive("sigma", sigma, allow_zero=True)
    g = _gen(generator, honest.device)
    shape = (*honest.shape[:-2], f, honest.shape[-1])
    z = torch.randn(shape, generator=g, device=g.device, dtype=honest.dtype).to(honest.device)
    return mu + sigma * z


def mimic(honest: torch.Tensor, f: int, idx: int = 0) -> torch.Tensor:
    """f copies of honest vector ``idx``."""
    honest, f = _check(honest, f)
    idx = check_int("idx", idx, minimum=0, maximum=honest.shape[-2] - 1)
    return _repeat(honest[..., idx, :], f)


def nonfinite(honest: torch.Tensor, f: int, kind: str = "nan") -> torch.Tensor:
    """f messages of NaN (``kind='nan'``), +inf (``'inf'``), -inf (``'-inf'``) or a mix of
    NaN/+inf/-inf entries (``'mixed'``) with finite ones elsewhere."""
    honest, f = _check(honest, f)
    shape = (*honest.shape[:-2], f, honest.shape[-1])
    vals = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}
    if kind in vals:
        return torch.full(shape, vals[kind], dtype=honest.dtype, device=honest.device)
    if kind == "mixed":
        out = torch.ones(shape, dtype=honest.dtype, device=honest.device)
        out[..., 0::3] = math.nan
        out[..., 1::3] = math.inf
        out[..., 2::3] = -math.inf
        return out
    raise TheorylabError(f"kind must be 'nan', 'inf', '-inf' or 'mixed', got {kind!r}")


@dataclass(frozen=True)
class OptimalAttack:
    """Result of an optimised attack (each replica gets its own scale): the Byzantine vectors
    (..., f, d), the chosen scale (...) and the damage ``||F(x) - mean(honest)||`` (...)."""

    byzantine: torch.Tensor
    scale: torch.Tensor
    damage: torch.Tensor


def _optimise(honest, f, aggregator, make, grid, refine, generator, lo=-math.inf, hi=math.inf):
    """Maximise ``||F(honest + make(scale)) - mean(honest)||`` over the scale, per replica.

    ``make(honest, f, scale)`` takes a scale tensor of the replica shape (...). Each round is
    one batched aggregator call over a (G, ...) stack of candidate scales."""
    honest, f = _check(honest, f)
    batch = honest.shape[:-2]
    mu = honest.mean(dim=-2)

    def run(x):
        return aggregator(x, f, generator=generator) if generator is not None else aggregator(x, f)

    def damage(cands):  # cands: (G, ...) -> (G, ...)
        G = cands.shape[0]
        h = honest.expand(G, *honest.shape)
        x = with_byzantine(h, make(h, f, cands))
        return torch.linalg.vector_norm(torch.nan_to_num(run(x) - mu, nan=0.0), dim=-1)

    grid = torch.as_tensor(grid, dtype=honest.dtype, device=honest.device)
    cands = grid.reshape(-1, *([1] * len(batch))).expand(len(grid), *batch)
    dmg = damage(cands)
    k = dmg.argmax(dim=0, keepdim=True)
    scale = torch.gather(cands, 0, k).squeeze(0)
    width = float((grid[1:] - grid[:-1]).abs().max()) if len(grid) > 1 else 1.0
    for _ in range(refine):
        width /= 4
        offs = torch.tensor([-2.0, -1.0, 0.0, 1.0, 2.0], dtype=honest.dtype, device=honest.device)
        cands = (scale.unsqueeze(0) + width * offs.reshape(-1, *([1] * len(batch)))).clamp(lo, hi)
        dm = damage(cands)
        k = dm.argmax(dim=0, keepdim=True)
        scale = torch.gather(cands, 0, k).squeeze(0)
    byz = make(honest, f, scale)
    out = run(with_byzantine(honest, byz))
    return OptimalAttack(byz, scale, torch.linalg.vector_norm(out - mu, dim=-1))


def _alie_scaled(h, f, z):
    std = h.std(dim=-2) if h.shape[-2] > 1 else torch.zeros_like(h[..., 0, :])
    return _repeat(h.mean(dim=-2) + z.unsqueeze(-1) * std, f)


def _ipm_scaled(h, f, eps):
    return _repeat(-eps.unsqueeze(-1) * h.mean(dim=-2), f)


def optimal_alie(
    honest, f, aggregator, *, z_max: float = 20.0, points: int = 41, refine: int = 3, generator=None
) -> OptimalAttack:
    """ALIE with z chosen in [-z_max, z_max] to maximise ``||F(x) - mean(honest)||`` against
    ``aggregator`` (a callable ``F(x, f)``, e.g. ``get_aggregator("nnm+cw-median")``): a batched
    grid of ``points`` values, then ``refine`` rounds of local refinement (step / 4 each)."""
    grid = torch.linspace(-float(z_max), float(z_max), points)
    return _optimise(
        honest, f, aggregator, _alie_scaled, grid, refine, generator, -float(z_max), float(z_max)
    )


def optimal_ipm(
    honest,
    f,
    aggregator,
    *,
    eps_max: float = 100.0,
    points: int = 41,
    refine: int = 3,
    generator=None,
) -> OptimalAttack:
    """IPM with eps chosen in (0, eps_max] (log grid) to maximise the damage against
    ``aggregator``; see :func:`optimal_alie`."""
    grid = torch.logspace(-3, math.log10(float(eps_max)), points)
    return _optimise(
        honest, f, aggregator, _ipm_scaled, grid, refine, generator, lo=0.0, hi=float(eps_max)
    )


def flip_labels(y: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Label flipping ``y -> C - 1 - y`` (ByzFL, Blades, Karimireddy with C = 10)."""
    C = check_int("num_classes", num_classes, minimum=2)
    if not isinstance(y, torch.Tensor) or y.is_floating_point():
        raise TypeError("y must be an integer label tensor")
    if bool(((y < 0) | (y >= C)).any()):
        raise TheorylabError(f"labels must lie in [0, {C - 1}] for num_classes={C}")
    return C - 1 - y


@dataclass(frozen=True)
class LabelFlipping:
    """Descriptor of the label-flipping attack for the oracle side: Byzantine nodes compute honest
    gradients on flipped labels ``transform(y, C)``; there is no message-level function."""

    name: str = "label-flipping"
    transform: object = flip_labels
    description: str = "gradients computed on labels y -> C - 1 - y"


LABEL_FLIPPING = LabelFlipping()

#: name -> attack(honest, f, **params) (the message-level attacks)
ATTACKS = {
    "sign-flipping": sign_flipping,
    "ipm": ipm,
    "alie": alie,
    "gaussian": gaussian,
    "mimic": mimic,
    "nan": lambda honest, f: nonfinite(honest, f, "nan"),
    "inf": lambda honest, f: nonfinite(honest, f, "inf"),
    "mixed-nonfinite": lambda honest, f: nonfinite(honest, f, "mixed"),
}


def get_attack(spec: str):
    """``"name"`` or ``"name:key=value,..."`` -> a callable ``attack(honest, f)``.

    >>> get_attack("ipm:eps=0.5")(torch.ones(3, 2), 1).tolist()
    [[-0.5, -0.5]]
    """
    if not isinstance(spec, str):
        raise TypeError(f"spec must be a string, got {type(spec).__name__}")
    name, _, rest = spec.strip().partition(":")
    if name not in ATTACKS:
        raise TheorylabError(f"unknown attack {name!r}; choose one of {sorted(ATTACKS)}")
    kwargs = {}
    for item in filter(None, (p.strip() for p in rest.split(","))):
        k, eq, v = item.partition("=")
        if not eq:
            raise TheorylabError(f"malformed parameter {item!r} in {spec!r}; use key=value")
        try:
            kwargs[k.strip()] = int(v)
        except ValueError:
            kwargs[k.strip()] = float(v)
    fn = ATTACKS[name]
    return lambda honest, f, **kw: fn(honest, f, **{**kwargs, **kw})
