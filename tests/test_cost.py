"""alpha-beta cost model, effective rho of schedules, DSGD time to accuracy, calibration."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from theorylab.cost import (
    CommModel,
    calibrate_alpha_beta,
    effective_rho,
    iterations_to_accuracy,
    rank_topologies,
    round_time,
    time_to_accuracy,
)
from theorylab.errors import TheorylabError, TheorylabWarning
from theorylab.rates import dsgd_bound_curve

PROBLEM = dict(target=1e-2, L=1.0, mu=0.5, sigma2=0.1, zeta2=0.5, avg_error0=1.0)


def test_round_time_sequential_and_parallel():
    m = CommModel(alpha=1e-3, beta=2e-9, nbytes=10**6, compute_s=0.05)
    assert round_time(4, m) == pytest.approx(0.05 + 4 * (1e-3 + 2e-3))
    p = CommModel(alpha=1e-3, beta=2e-9, nbytes=10**6, compute_s=0.05, sends="parallel")
    assert round_time(4, p) == pytest.approx(0.05 + 1e-3 + 4 * 2e-3)
    assert round_time(0, m) == 0.05
    assert round_time(1, m) == round_time(1, p)  # one message: the models coincide


def test_comm_model_validation():
    with pytest.raises(TheorylabError, match="alpha"):
        CommModel(alpha=-1.0)
    with pytest.raises(TheorylabError, match="sends"):
        CommModel(sends="overlapped")
    with pytest.raises(TypeError):
        round_time(2, {"alpha": 1.0})


def test_effective_rho():
    assert effective_rho(0.7, 1) == pytest.approx(0.7)
    # one-peer exponential, n = 2^tau: p = 1 over tau rounds -> 1 - rho_eff^2 = 1/tau
    for tau in (2, 3, 5):
        assert 1 - effective_rho(0.0, tau) ** 2 == pytest.approx(1 / tau)
    with pytest.raises(TheorylabError):
        effective_rho(1.0, 2)


def test_iterations_match_the_bound_curve_for_a_fixed_step():
    gamma = 0.02  # steady state 5.0e-3 < target 1e-2 (0.05 would give 3.1e-2: unreachable)
    T, g = iterations_to_accuracy(0.6, 16, gamma=gamma, **PROBLEM)
    curve = dsgd_bound_curve(gamma=gamma, L=1.0, mu=0.5, sigma2=0.1, zeta2=0.5, rho=0.6, n=16,
                             steps=int(T) + 5, avg_error0=1.0, consensus0=0.0)["error"]  # fmt: skip
    assert g == gamma
    assert curve[int(T)] <= PROBLEM["target"] < curve[int(T) - 1]


def test_iterations_monotone_in_rho_and_unreachable_is_inf():
    Ts = [iterations_to_accuracy(r, 16, **PROBLEM)[0] for r in (0.0, 0.5, 0.9, 0.99)]
    assert Ts == sorted(Ts)
    T, g = iterations_to_accuracy(0.5, 16, **{**PROBLEM, "target": 1e-9}, max_steps=50)
    assert T == math.inf and g is None


def test_time_to_accuracy_and_ranking():
    m = CommModel(alpha=1e-3, beta=1e-9, nbytes=10**6, compute_s=1e-2)
    t = time_to_accuracy(0.6, 4, 16, m, **PROBLEM)
    assert t["time_s"] == pytest.approx(t["iterations"] * round_time(4, m))
    rows = rank_topologies(
        [
            {"name": "slow", "n": 16, "rho": 0.99, "degree": 2},
            {"name": "fast", "n": 16, "rho": 0.3, "degree": 4},
            {"name": "one-peer", "n": 16, "rho": 0.0, "degree": 1, "period": 4},
        ],
        m,
        **PROBLEM,
    )
    times = [r["time_s"] for r in rows]
    assert times == sorted(times)
    with pytest.raises(TheorylabError, match="lacks"):
        rank_topologies([{"name": "x", "n": 4}], m, **PROBLEM)


def test_calibrate_recovers_alpha_beta():
    sizes = np.array([0, 1e3, 1e4, 1e5, 1e6, 4e6])
    fit = calibrate_alpha_beta(zip(sizes, 2e-5 + 8e-10 * sizes))
    assert fit.alpha == pytest.approx(2e-5, rel=1e-9)
    assert fit.beta == pytest.approx(8e-10, rel=1e-9)
    assert fit.rms_residual_s < 1e-15
    # seeded noise (5 % multiplicative, 10 repeats per size): estimates within 10 %; the
    # estimator is deterministic for this seed, so the test cannot fail at random.
    rng = np.random.default_rng(0)
    b = np.repeat(sizes, 10)
    s = (2e-5 + 8e-10 * b) * (1 + 0.05 * rng.standard_normal(b.size))
    fit = calibrate_alpha_beta(zip(b, s))
    assert fit.beta == pytest.approx(8e-10, rel=0.1)


def test_calibrate_bad_input_and_clipping():
    with pytest.raises(TheorylabError, match="two distinct"):
        calibrate_alpha_beta([(100, 1e-3), (100, 2e-3)])
    with pytest.raises(TheorylabError, match="seconds"):
        calibrate_alpha_beta([(1, 0.0), (2, 1.0)])
    with pytest.raises(TheorylabError, match="pairs"):
        calibrate_alpha_beta([1, 2, 3])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = calibrate_alpha_beta([(1e6, 1e-3), (2e6, 2.5e-3)])  # intercept -5e-4 < 0
    assert fit.alpha == 0.0 and fit.beta > 0
    assert any(issubclass(w.category, TheorylabWarning) for w in caught)


@pytest.mark.parametrize(
    "L, mu, match",
    [(0.0, 0.0, "L must be > 0"), (-1.0, 1.0, "L must be > 0"), (1.0, -1.0, "mu must be > 0"),
     (float("nan"), 0.1, "L must be finite"), (1.0, 2.0, "mu <= L")],
)  # fmt: skip
def test_iterations_to_accuracy_validates_L_and_mu(L, mu, match):
    # L + mu = 0 used to reach 2 / (L + mu) and raise ZeroDivisionError (a CLI traceback)
    with pytest.raises(TheorylabError, match=match):
        iterations_to_accuracy(
            0.5, 8, target=1e-2, L=L, mu=mu, sigma2=0.0, zeta2=0.0, avg_error0=1.0
        )
