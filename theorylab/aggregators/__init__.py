"""Byzantine-robust aggregation: rules, pre-aggregators, robustness coefficients, registry.

Submodules: ``rules`` (mean, coordinate median, trimmed mean, geometric median, Krum,
Multi-Krum, centered clipping, minimum-diameter averaging, MoNNA), ``pre`` (NNM, bucketing,
ARC, static clipping), ``kappa`` ((f, kappa)-robustness: bounds and the empirical search),
``registry`` (``get_aggregator("nnm+trimmed-mean")``). Every function takes a stack of shape
(..., n, d) and the Byzantine count f; attacks are in :mod:`theorylab.attacks`.
"""

from theorylab.aggregators.kappa import (
    EmpiricalKappa,
    empirical_kappa,
    kappa_coordinate_median,
    kappa_geometric_median,
    kappa_krum,
    kappa_lower_bound,
    kappa_nnm,
    kappa_trimmed_mean,
    lower_bound_input,
    robustness_ratio,
)
from theorylab.aggregators.pre import arc, bucketing, nnm, static_clipping
from theorylab.aggregators.registry import (
    PRE_AGGREGATORS,
    RULES,
    Aggregator,
    get_aggregator,
)
from theorylab.aggregators.rules import (
    GeometricMedianResult,
    centered_clipping,
    coordinate_median,
    geometric_median,
    krum,
    krum_scores,
    mean,
    minimum_diameter_average,
    monna,
    multi_krum,
    trimmed_mean,
)

__all__ = [
    "mean",
    "coordinate_median",
    "trimmed_mean",
    "geometric_median",
    "GeometricMedianResult",
    "krum",
    "krum_scores",
    "multi_krum",
    "centered_clipping",
    "minimum_diameter_average",
    "monna",
    "nnm",
    "bucketing",
    "arc",
    "static_clipping",
    "Aggregator",
    "RULES",
    "PRE_AGGREGATORS",
    "get_aggregator",
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
