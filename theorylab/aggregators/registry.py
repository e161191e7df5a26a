"""Registry of aggregation rules and pre-aggregators, and the spec parser.

A spec is ``"pre+pre+rule"``, each part ``name`` or ``name:key=value,key=value``, e.g.
``"nnm+trimmed-mean"``, ``"bucketing:s=2+krum"``, ``"clip:c=5+geometric-median:tol=1e-8"``.
Pre-aggregators apply left to right; the rule runs last with the same f.

Each entry declares its properties (cvxpy-atom style): the f limit, the theoretical kappa of
(f, kappa)-robustness (None where no bound is pinned), whether it is permutation invariant and
whether it is randomised; tests/test_aggregators.py confirms every declaration.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from theorylab.aggregators import kappa as _k
from theorylab.aggregators import pre as _pre
from theorylab.aggregators import rules as _r
from theorylab.aggregators._stack import check_f, check_stack
from theorylab.errors import TheorylabError

__all__ = ["RuleInfo", "PreInfo", "Aggregator", "RULES", "PRE_AGGREGATORS", "get_aggregator"]

_ALLOUAH = "Allouah et al., AISTATS 2023, arXiv 2302.01772, Table 1"


@dataclass(frozen=True)
class RuleInfo:
    """A registered rule: ``fn(x, f, **params)``; ``kappa(n, f)`` its theoretical bound or None;
    ``limit`` 'half' (2f < n) or 'krum' (also n - f - 1 >= 1)."""

    name: str
    fn: Callable
    kappa: Callable | None = None
    kappa_source: str = ""
    limit: str = "half"
    permutation_invariant: bool = True
    uses_f: bool = True


@dataclass(frozen=True)
class PreInfo:
    """A registered pre-aggregator: ``fn(x, f, **params)`` -> (..., n', d); ``n_out(n, params)``;
    ``kappa_map(n, f, kappa)`` the bound of F o pre given F's, or None."""

    name: str
    fn: Callable
    n_out: Callable = lambda n, p: n
    kappa_map: Callable | None = None
    kappa_source: str = ""
    randomized: bool = False


def _mean_kappa(n, f):
    _k._nf(n, f)
    return 0.0 if f == 0 else float("inf")


RULES: dict[str, RuleInfo] = {
    "mean": RuleInfo(
        "mean", _r.mean, _mean_kappa, "exact (f = 0); unbounded for f >= 1", uses_f=False
    ),
    "cw-median": RuleInfo(
        "cw-median", _r.coordinate_median, _k.kappa_coordinate_median, _ALLOUAH, uses_f=False
    ),
    "trimmed-mean": RuleInfo("trimmed-mean", _r.trimmed_mean, _k.kappa_trimmed_mean, _ALLOUAH),
    "geometric-median": RuleInfo(
        "geometric-median",
        _r.geometric_median,
        _k.kappa_geometric_median,
        _ALLOUAH + " (exact minimiser)",
        uses_f=False,
    ),
    "krum": RuleInfo("krum", _r.krum, _k.kappa_krum, _ALLOUAH, limit="krum"),
    "multi-krum": RuleInfo("multi-krum", _r.multi_krum, None, "no bound pinned", limit="krum"),
    "centered-clipping": RuleInfo(
        "centered-clipping",
        _r.centered_clipping,
        None,
        "no scale-free bound (tau-dependent)",
        uses_f=False,
    ),
    "mda": RuleInfo("mda", _r.minimum_diameter_average, None, "no bound pinned"),
    "monna": RuleInfo(
        "monna",
        _r.monna,
        None,
        "trusts x_idx; not (f, kappa) in Allouah's sense",
        permutation_invariant=False,
    ),
}
_ALIASES = {
    "median": "cw-median",
    "cwmed": "cw-median",
    "cwtm": "trimmed-mean",
    "gm": "geometric-median",
    "cc": "centered-clipping",
    "average": "mean",
}

PRE_AGGREGATORS: dict[str, PreInfo] = {
    "nnm": PreInfo(
        "nnm",
        _pre.nnm,
        kappa_map=_k.kappa_nnm,
        kappa_source="Allouah et al., AISTATS 2023, Lemma 1",
    ),
    "bucketing": PreInfo(
        "bucketing", _pre.bucketing, n_out=lambda n, p: -(-n // int(p.get("s", 2))), randomized=True
    ),
    "arc": PreInfo("arc", _pre.arc),
    "clip": PreInfo("clip", _pre.static_clipping),
}


@dataclass(frozen=True)
class Aggregator:
    """A rule preceded by pre-aggregators; call as ``agg(x, f, generator=None)`` on (..., n, d).

    Attributes: ``spec``; ``rule``/``pre`` (infos with their parameters); properties
    ``permutation_invariant``, ``randomized``; methods ``max_f(n)``, ``kappa(n, f)``.
    """

    rule: RuleInfo
    rule_params: dict = field(default_factory=dict)
    pre: tuple = ()  # ((PreInfo, params), ...)

    @property
    def spec(self) -> str:
        def part(name, p):
            return name + (":" + ",".join(f"{k}={v}" for k, v in p.items()) if p else "")

        return "+".join(
            [part(i.name, p) for i, p in self.pre] + [part(self.rule.name, self.rule_params)]
        )

    @property
    def name(self) -> str:
        return self.spec

    @property
    def randomized(self) -> bool:
        return any(i.randomized for i, _ in self.pre)

    @property
    def permutation_invariant(self) -> bool:
        """Invariant to the order of the inputs (in distribution when randomised)."""
        return self.rule.permutation_invariant

    def _n_rule(self, n: int) -> int:
        for info, p in self.pre:
            n = info.n_out(n, p)
        return n

    def max_f(self, n: int) -> int:
        """Largest f the composition accepts for n inputs."""
        best = -1
        for f in range(n):
            try:
                self._check(n, f)
            except TheorylabError:
                break
            best = f
        return best

    def _check(self, n: int, f: int) -> int:
        f = check_f(f, n, rule=self.spec)
        m = self._n_rule(n)
        check_f(f, m, limit=self.rule.limit, rule=f"{self.spec} (the rule sees {m} inputs)")
        return f

    def kappa(self, n: int, f: int) -> float | None:
        """Theoretical kappa bound of the composition, or None where none is pinned."""
        self._check(n, f)
        if self.rule.kappa is None:
            return None
        m = self._n_rule(n)
        kap = self.rule.kappa(m, f)
        for info, _ in reversed(self.pre):
            if info.kappa_map is None:
                return None
            kap = info.kappa_map(n, f, kap)
        return kap

    def __call__(self, x, f: int, *, generator=None) -> torch.Tensor:
        x = check_stack(x)
        f = self._check(x.shape[-2], f)
        for info, p in self.pre:
            if info.randomized:
                x = info.fn(x, f, generator=generator, **p)
            else:
                x = info.fn(x, f, **p)
        return self.rule.fn(x, f, **self.rule_params)

    def __repr__(self) -> str:
        return f"Aggregator({self.spec!r})"


def _parse_value(v: str):
    for cast in (int, float):
        try:
            return cast(v)
        except ValueError:
            pass
    if v in ("True", "False"):
        return v == "True"
    return v


def _parse_part(text: str, spec: str):
    name, _, rest = text.strip().partition(":")
    params = {}
    for item in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, value = item.partition("=")
        if not eq:
            raise TheorylabError(f"malformed parameter {item!r} in {spec!r}; use key=value")
        params[key.strip()] = _parse_value(value.strip())
    return name.strip(), params


def get_aggregator(spec) -> Aggregator:
    """Build an :class:`Aggregator` from ``"pre+...+rule"`` (an Aggregator is returned as is).

    >>> agg = get_aggregator("nnm+trimmed-mean")
    >>> round(agg.kappa(10, 2), 6) == round(8 * 2 / 8 * (6 * 2 / 6 * (1 + 2 / 6) + 1), 6)
    True

    Raises
    ------
    TheorylabError
        Unknown name (listing the valid ones), a rule not last, malformed parameters.
    """
    if isinstance(spec, Aggregator):
        return spec
    if not isinstance(spec, str):
        raise TypeError(f"spec must be a string or Aggregator, got {type(spec).__name__}")
    parts = [p for p in spec.split("+")]
    if any(not p.strip() for p in parts):
        raise TheorylabError(f"empty part in aggregator spec {spec!r}")
    pre = []
    for text in parts[:-1]:
        name, params = _parse_part(text, spec)
        if name not in PRE_AGGREGATORS:
            raise TheorylabError(
                f"unknown pre-aggregator {name!r} in {spec!r}; choose one of "
                f"{sorted(PRE_AGGREGATORS)} (the rule comes last)"
            )
        pre.append((PRE_AGGREGATORS[name], params))
    name, params = _parse_part(parts[-1], spec)
    name = _ALIASES.get(name, name)
    if name not in RULES:
        raise TheorylabError(
            f"unknown aggregation rule {name!r} in {spec!r}; choose one of {sorted(RULES)} "
            f"(aliases {sorted(_ALIASES)})"
        )
    agg = Aggregator(RULES[name], params, tuple(pre))
    # validate parameter names now, on a tiny input
    try:
        agg(torch.zeros(3, 1, dtype=torch.float64), 0)
    except TypeError as exc:
        raise TheorylabError(f"bad parameter in {spec!r}: {exc}") from exc
    return agg
