"""Predicted rates, as :class:`Rate` objects with named terms, kind, source and step condition.

One submodule per algorithm family; this package re-exports their public functions explicitly
(append a block per new submodule). Conventions: rho = ||W - 11^T/n||_2, spectral gap = 1 - rho;
notation of shared/references/rates.md §0.
"""

from theorylab.rates._rate import Rate, warn_step_size
from theorylab.rates.asynchronous import (
    asgd_avg_delay,
    asgd_delayed,
    asgd_max_delay,
    asgd_rates_on_trace,
    asgd_workers,
    asynchrony_bias,
    delay_adaptive_steps,
    speed_weighted_minimizer,
)
from theorylab.rates.byzantine import bucketing_momentum_sgd, byzantine_lower_bound, robust_dshb
from theorylab.rates.compression import (
    choco_consensus_step,
    choco_gossip,
    choco_sgd,
    compressed_lower_bound,
    compressed_psgd,
    compressed_psgd_randk_exact,
    ef21,
    ef_residual_bound,
    ef_sgd,
)
from theorylab.rates.decentralized import (
    dsgd,
    dsgd_bound_curve,
    gossip_consensus,
    psgd,
    transient_iterations,
)
from theorylab.rates.lazy import (
    PeriodChoice,
    best_period,
    fedavg,
    local_sgd,
    local_sgd_bound_curve,
    local_sgd_error_curve,
    local_sgd_exact_curve,
    minibatch_vs_local,
    sampling_variance_factor,
    scaffold,
    sync_time,
    time_to_target,
)
from theorylab.rates.tracking import (
    crossing_iteration,
    exact_diffusion,
    gradient_tracking,
    transient_crossing,
)

__all__ = [
    "Rate",
    "warn_step_size",
    # decentralized: PSGD, DSGD, gossip
    "psgd",
    "dsgd",
    "dsgd_bound_curve",
    "transient_iterations",
    "gossip_consensus",
    # compression: compressed PSGD, error feedback, EF21, CHOCO
    "compressed_psgd",
    "compressed_psgd_randk_exact",
    "ef_sgd",
    "ef_residual_bound",
    "ef21",
    "choco_consensus_step",
    "choco_gossip",
    "choco_sgd",
    "compressed_lower_bound",
    # lazy: local SGD / FedAvg, partial participation, SCAFFOLD, the period
    "local_sgd",
    "local_sgd_bound_curve",
    "local_sgd_error_curve",
    "local_sgd_exact_curve",
    "minibatch_vs_local",
    "sampling_variance_factor",
    "fedavg",
    "scaffold",
    "sync_time",
    "time_to_target",
    "best_period",
    "PeriodChoice",
    # tracking: gradient tracking, exact diffusion, transient crossing
    "gradient_tracking",
    "exact_diffusion",
    "crossing_iteration",
    "transient_crossing",
    # asynchronous: delayed SGD, delay-adaptive steps, speed-weighted bias
    "asgd_delayed",
    "asgd_max_delay",
    "asgd_avg_delay",
    "asgd_workers",
    "asgd_rates_on_trace",
    "delay_adaptive_steps",
    "speed_weighted_minimizer",
    "asynchrony_bias",
    # byzantine: robust D-SHB floor, bucketing + momentum, lower bound
    "robust_dshb",
    "bucketing_momentum_sgd",
    "byzantine_lower_bound",
]
