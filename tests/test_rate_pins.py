"""Every term of every rate pinned to its formula, written out here independently (issue 14.3).

Each ``_case_*`` function returns ``(rate, expected)`` where ``expected`` maps every term name to
the value computed in this file from the formula stated in the rate function's docstring (never
through the module's private helpers), at parameter points where each term is non-negligible.
``_check_terms`` compares them at rtol 1e-12 and checks that ``total`` is the sum of the terms.
``test_halving_any_term_fails_its_pin`` shows the pins have teeth: for every case and every
non-zero term, a copy of the rate with that one term halved must fail ``_check_terms``.
Step-size conditions are pinned by their thresholds: gamma just below passes silently, just above
warns with TheorylabWarning and reports ``step_size_ok=False``.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import warnings

import numpy as np
import pytest

from theorylab.cost import CommModel
from theorylab.errors import TheorylabWarning
from theorylab.problems import QuadraticProblem
from theorylab.rates import (
    asgd_avg_delay,
    asgd_delayed,
    asgd_max_delay,
    asgd_workers,
    asynchrony_bias,
    bucketing_momentum_sgd,
    byzantine_lower_bound,
    choco_consensus_step,
    choco_gossip,
    choco_sgd,
    compressed_lower_bound,
    compressed_psgd,
    compressed_psgd_randk_exact,
    delay_adaptive_steps,
    dsgd,
    dsgd_bound_curve,
    ef21,
    ef_residual_bound,
    ef_sgd,
    exact_diffusion,
    fedavg,
    gossip_consensus,
    gradient_tracking,
    local_sgd,
    local_sgd_bound_curve,
    minibatch_vs_local,
    psgd,
    robust_dshb,
    sampling_variance_factor,
    scaffold,
    sync_time,
    transient_crossing,
    transient_iterations,
)
from theorylab.staleness import applied_shares, predicted_staleness

RTOL = 1e-12


def _check_terms(rate, expected: dict, rtol: float = RTOL) -> None:
    """Assert that ``rate`` has exactly the terms of ``expected``, each equal at ``rtol``, and
    that ``rate.total`` is their sum."""
    assert set(rate.terms) == set(expected), (sorted(rate.terms), sorted(expected))
    for name, want in expected.items():
        got = rate.terms[name]
        assert math.isclose(got, want, rel_tol=rtol, abs_tol=0.0), (
            f"{rate.name}: term {name!r} = {got!r}, expected {want!r}"
        )
    want_total = math.fsum(expected.values())
    assert math.isclose(rate.total, want_total, rel_tol=rtol, abs_tol=0.0), (
        f"{rate.name}: total {rate.total!r} != sum of the expected terms {want_total!r}"
    )


# ---------------------------------------------------------------------------------------------
# decentralized: psgd, dsgd, transient_iterations, gossip_consensus


def _psgd_sc(gamma, L, mu, sigma2, n, T, r0_sq):
    decay = 0.0 if T is None else (1 - gamma * mu) ** (2 * T)
    return {
        "optimization": decay * r0_sq,
        "noise": gamma * sigma2 / (n * mu * (2 - gamma * mu)) * (1 - decay),
    }


def _case_psgd_sc_T():
    kw = dict(gamma=0.2, L=2.0, mu=0.5, sigma2=3.0, n=4, T=7, r0_sq=5.0)
    return psgd(**kw), _psgd_sc(**kw)


def _case_psgd_sc_T2():
    kw = dict(gamma=0.05, L=1.0, mu=1.0, sigma2=0.7, n=3, T=20, r0_sq=0.4)
    return psgd(**kw), _psgd_sc(**kw)


def _case_psgd_sc_steady():
    kw = dict(gamma=0.3, L=3.0, mu=0.25, sigma2=2.0, n=8, T=None, r0_sq=1.0)
    return psgd(**kw), _psgd_sc(**kw)


def _case_psgd_nc():
    gamma, L, sigma2, n, T, delta = 0.1, 2.0, 3.0, 5, 40, 1.5
    want = {"optimization": 2 * delta / (gamma * T), "noise": gamma * L * sigma2 / n}
    return psgd(gamma=gamma, L=L, sigma2=sigma2, n=n, T=T, delta=delta), want


def _case_psgd_nc2():
    gamma, L, sigma2, n, T, delta = 0.4, 0.5, 1.0, 2, 9, 0.3
    want = {"optimization": 2 * delta / (gamma * T), "noise": gamma * L * sigma2 / n}
    return psgd(gamma=gamma, L=L, sigma2=sigma2, n=n, T=T, delta=delta), want


def _dsgd_sc_expected(gamma, L, mu, sigma2, zeta2, rho, n, T, form, e0, xi0):
    """The docstring's recursion, iterated by a scalar loop per source (T given) or solved in
    closed form for the 2x2 steady state (T None)."""
    if form == "atc":
        q = rho
        c_e = 2 * gamma**2 * rho**2 * L**2 / (1 - rho)
        c_het = 2 * gamma**2 * rho**2 * zeta2 / (1 - rho)
        c_top = gamma**2 * rho**2 * sigma2 * (1 - 1 / n)
    else:
        q = rho + gamma * L
        c_e = 2 * gamma**2 * L**2 / (1 - q)
        c_het = 2 * gamma**2 * zeta2 / (1 - q)
        c_top = gamma**2 * sigma2 * (1 - 1 / n)
    a, b, c, d = 1 - gamma * mu, gamma * L**2 / mu, c_e, q
    sources = {
        "noise": (gamma**2 * sigma2 / n, 0.0),
        "topology": (0.0, c_top),
        "heterogeneity": (0.0, c_het),
    }
    out = {}
    if T is None:
        # (I - G)^{-1} c with I - G = [[1-a, -b], [-c, 1-d]]
        det = (1 - a) * (1 - d) - b * c
        out["optimization"] = 0.0
        for name, (c0, c1) in sources.items():
            u0 = ((1 - d) * c0 + b * c1) / det
            u1 = (c * c0 + (1 - a) * c1) / det
            out[name] = u0 + u1
        return out
    u, v = e0, xi0
    for _ in range(T):
        u, v = a * u + b * v, c * u + d * v
    out["optimization"] = u + v
    for name, (c0, c1) in sources.items():
        u = v = 0.0
        for _ in range(T):
            u, v = a * u + b * v + c0, c * u + d * v + c1
        out[name] = u + v
    return out


def _dsgd_case(**kw):
    rate = dsgd(
        gamma=kw["gamma"], L=kw["L"], mu=kw["mu"], sigma2=kw["sigma2"], zeta2=kw["zeta2"],
        rho=kw["rho"], n=kw["n"], T=kw["T"], form=kw["form"], avg_error0=kw["e0"],
        consensus0=kw["xi0"],
    )  # fmt: skip
    return rate, _dsgd_sc_expected(**kw)


def _case_dsgd_atc_T():
    return _dsgd_case(
        gamma=0.05, L=1.0, mu=0.5, sigma2=2.0, zeta2=3.0, rho=0.6, n=6, T=15, form="atc",
        e0=1.0, xi0=0.5,
    )  # fmt: skip


def _case_dsgd_atc_steady():
    return _dsgd_case(
        gamma=0.1, L=1.5, mu=1.0, sigma2=1.0, zeta2=4.0, rho=0.5, n=4, T=None, form="atc",
        e0=0.0, xi0=0.0,
    )  # fmt: skip


def _case_dsgd_cta_T():
    return _dsgd_case(
        gamma=0.04, L=2.0, mu=1.0, sigma2=1.5, zeta2=2.0, rho=0.3, n=5, T=12, form="cta",
        e0=2.0, xi0=1.0,
    )  # fmt: skip


def _case_dsgd_cta_steady():
    return _dsgd_case(
        gamma=0.02, L=1.0, mu=0.5, sigma2=1.0, zeta2=1.0, rho=0.7, n=8, T=None, form="cta",
        e0=0.0, xi0=0.0,
    )  # fmt: skip


def _case_dsgd_nc_koloskova():
    L, sigma2, zeta2, rho, n, T, delta = 2.0, 3.0, 5.0, 0.8, 8, 50, 1.5
    p = 1 - rho**2
    want = {
        "noise": math.sqrt(L * delta * sigma2 / (n * T)),
        "heterogeneity": (L * delta * math.sqrt(zeta2) / (p * T)) ** (2 / 3),
        "topology": (L * delta * math.sqrt(sigma2 / p) / T) ** (2 / 3),
        "optimization": L * delta / (p * T),
    }
    rate = dsgd(gamma=0.01, L=L, sigma2=sigma2, zeta2=zeta2, rho=rho, n=n, T=T, delta=delta)
    return rate, want


def _case_dsgd_nc_lian():
    L, sigma2, rho, n, T, delta = 1.5, 4.0, 0.5, 4, 100, 2.0
    want = {
        "optimization": 8 * delta * L / T,
        "noise": (8 * delta + 4 * L) * math.sqrt(sigma2) / math.sqrt(T * n),
    }
    rate = dsgd(
        gamma=0.01, L=L, sigma2=sigma2, zeta2=1.0, rho=rho, n=n, T=T, delta=delta,
        source="lian2017",
    )  # fmt: skip
    assert rate.extra["gamma"] == pytest.approx(1 / (2 * L + math.sqrt(sigma2) * math.sqrt(T / n)))
    return rate, want


def _transient(kw, value):
    return transient_iterations(**kw), {"transient_iterations": value}


def _case_transient_sc_het():
    n, rho, L, mu, s2, z2 = 16, 0.7, 2.0, 0.1, 3.0, 5.0
    p = 1 - rho**2
    kw = dict(n=n, rho=rho, L=L, mu=mu, sigma2=s2, zeta2=z2)
    return _transient(kw, n * L * z2 / (mu * s2 * p**2))


def _case_transient_sc_iid():
    n, rho, L, mu = 9, 0.4, 1.5, 0.3
    kw = dict(n=n, rho=rho, L=L, mu=mu, heterogeneous=False)
    return _transient(kw, n * L / (mu * (1 - rho**2)))


def _case_transient_nc_het():
    n, rho, L, s2, z2, delta = 8, 0.6, 2.0, 1.5, 3.0, 0.7
    p = 1 - rho**2
    kw = dict(n=n, rho=rho, regime="nonconvex", L=L, sigma2=s2, zeta2=z2, delta=delta)
    return _transient(kw, n**3 * L * delta * z2**2 / (p**4 * s2**3))


def _case_transient_nc_iid():
    n, rho, L, s2, delta = 5, 0.9, 1.0, 2.0, 3.0
    p = 1 - rho**2
    kw = dict(n=n, rho=rho, regime="nonconvex", heterogeneous=False, L=L, sigma2=s2, delta=delta)
    return _transient(kw, n**3 * L * delta / (p**2 * s2))


def _case_transient_gt_sc():
    n, rho, L, mu, c = 10, 0.5, 2.0, 0.2, 0.6
    kw = dict(n=n, rho=rho, L=L, mu=mu, algorithm="gradient_tracking", c=c)
    return _transient(kw, n * L / (mu * (1 - rho**2) * c**2))


def _case_transient_gt_nc():
    n, rho, L, s2, delta, c = 6, 0.8, 1.5, 2.0, 0.5, 0.7
    kw = dict(
        n=n, rho=rho, regime="nonconvex", L=L, sigma2=s2, delta=delta,
        algorithm="gradient_tracking", c=c,
    )  # fmt: skip
    return _transient(kw, n**3 * L * delta / (s2 * (1 - rho**2) ** 2 * c**4))


def _case_transient_ed_sc():
    n, rho, L, mu = 12, 0.75, 3.0, 0.5
    kw = dict(n=n, rho=rho, L=L, mu=mu, algorithm="exact_diffusion")
    return _transient(kw, n * L * rho**2 / (mu * (1 - rho)))


def _case_transient_ed_nc():
    n, rho, L, s2, delta = 7, 0.6, 2.0, 0.5, 1.5
    kw = dict(
        n=n, rho=rho, regime="nonconvex", L=L, sigma2=s2, delta=delta, algorithm="exact_diffusion"
    )
    return _transient(kw, n**3 * L * delta * rho**4 / (s2 * (1 - rho) ** 2))


def _case_gossip_static():
    return gossip_consensus(0.8, 5, consensus0=3.0), {"consensus": 0.8**10 * 3.0}


def _case_gossip_varying():
    rhos = [0.9, 0.5, 0.7]
    want = 0.9**2 * 0.5**2 * 0.7**2 * 2.5
    return gossip_consensus(rhos, 3, consensus0=2.5), {"consensus": want}


# ---------------------------------------------------------------------------------------------
# compression


def _cpsgd_sc(gamma, L, mu, sigma2, zeta2, n, omega, T, r0_sq):
    q = (1 - gamma * mu) ** 2 + 2 * gamma**2 * omega * L**2 / n
    decay = 0.0 if T is None else q**T
    scale = gamma**2 / (n * (1 - q)) * (1 - decay)
    return {
        "optimization": decay * r0_sq,
        "noise": scale * (1 + omega) * sigma2,
        "heterogeneity": scale * 2 * omega * zeta2,
    }


def _case_cpsgd_sc_T():
    kw = dict(gamma=0.1, L=2.0, mu=0.5, sigma2=3.0, zeta2=1.5, n=4, omega=3.0, T=10, r0_sq=2.0)
    return compressed_psgd(**kw), _cpsgd_sc(**kw)


def _case_cpsgd_sc_steady():
    kw = dict(gamma=0.05, L=1.0, mu=1.0, sigma2=1.0, zeta2=2.0, n=2, omega=7.0, T=None, r0_sq=0)
    return compressed_psgd(**kw), _cpsgd_sc(**kw)


def _cpsgd_nc_case(gamma, L, sigma2, zeta2, n, omega, T, f_gap):
    want = {
        "optimization": 2 * f_gap / (gamma * T),
        "noise": gamma * L * (1 + omega) * sigma2 / n,
        "heterogeneity": gamma * L * omega * zeta2 / n,
    }
    rate = compressed_psgd(
        gamma=gamma, L=L, sigma2=sigma2, zeta2=zeta2, n=n, omega=omega, T=T, f_gap=f_gap
    )
    return rate, want


def _case_cpsgd_nc():
    return _cpsgd_nc_case(0.1, 2.0, 3.0, 1.5, 4, 3.0, 30, 1.2)


def _case_cpsgd_nc2():
    return _cpsgd_nc_case(0.02, 5.0, 1.0, 4.0, 8, 15.0, 200, 0.5)


def _ef_sgd_case(L, sigma2, delta, T, f_gap):
    want = {
        "sgd": (4 * f_gap + L * sigma2) / (2 * math.sqrt(T + 1)),
        "compression": 4 * L**2 * sigma2 * (1 - delta) / (delta**2 * (T + 1)),
    }
    return ef_sgd(L=L, sigma2=sigma2, delta=delta, T=T, f_gap=f_gap), want


def _case_ef_sgd():
    return _ef_sgd_case(2.0, 3.0, 0.25, 99, 1.5)


def _case_ef_sgd2():
    return _ef_sgd_case(0.5, 1.0, 0.6, 15, 4.0)


def _ef21_consts(delta):
    theta = 1 - math.sqrt(1 - delta)
    beta = (1 - delta) / (1 - math.sqrt(1 - delta))
    return theta, beta


def _case_ef21_nc():
    L, Lt, delta, T, f_gap, G0 = 2.0, 3.0, 0.3, 50, 1.5, 2.5
    theta, beta = _ef21_consts(delta)
    gamma = 1 / (L + Lt * math.sqrt(beta / theta))
    want = {"optimization": 2 * f_gap / (gamma * T), "initial_error": G0 / (theta * T)}
    rate = ef21(L=L, L_tilde=Lt, delta=delta, T=T, f_gap=f_gap, G0=G0)
    assert math.isclose(rate.extra["gamma"], gamma, rel_tol=RTOL)
    return rate, want


def _case_ef21_nc_given_gamma():
    L, Lt, delta, T, f_gap, G0, gamma = 1.0, 1.0, 0.5, 20, 3.0, 1.0, 0.1
    theta, _ = _ef21_consts(delta)
    want = {"optimization": 2 * f_gap / (gamma * T), "initial_error": G0 / (theta * T)}
    return ef21(L=L, L_tilde=Lt, delta=delta, T=T, f_gap=f_gap, G0=G0, gamma=gamma), want


def _case_ef21_pl():
    L, Lt, delta, T, f_gap, G0, mu = 2.0, 1.5, 0.4, 30, 1.0, 3.0, 0.2
    theta, beta = _ef21_consts(delta)
    gamma = min(1 / (L + Lt * math.sqrt(2 * beta / theta)), theta / (2 * mu))
    r = (1 - gamma * mu) ** T
    want = {"optimization": r * f_gap, "initial_error": r * gamma * G0 / theta}
    rate = ef21(L=L, L_tilde=Lt, delta=delta, T=T, f_gap=f_gap, G0=G0, mu=mu)
    assert math.isclose(rate.extra["gamma"], gamma, rel_tol=RTOL)
    return rate, want


def _case_ef21_pl_theta_binding():
    # here theta/(2 mu) is the smaller of the two limits
    L, Lt, delta, T, f_gap, G0, mu = 0.1, 0.1, 0.2, 10, 1.0, 3.0, 1.0
    theta, beta = _ef21_consts(delta)
    gamma = theta / (2 * mu)
    assert gamma < 1 / (L + Lt * math.sqrt(2 * beta / theta))
    r = (1 - gamma * mu) ** T
    want = {"optimization": r * f_gap, "initial_error": r * gamma * G0 / theta}
    return ef21(L=L, L_tilde=Lt, delta=delta, T=T, f_gap=f_gap, G0=G0, mu=mu), want


def _case_choco_gossip():
    g, delta, T, e0 = 0.3, 0.4, 25, 2.0
    want = {"consensus": (1 - g * g * delta / 82) ** T * e0}
    rate = choco_gossip(spectral_gap=g, beta=1.2, delta=delta, T=T, e0=e0)
    beta = 1.2
    gc = g * g * delta / (16 * g + g * g + 4 * beta**2 + 2 * g * beta**2 - 8 * g * delta)
    assert math.isclose(rate.extra["gamma"], gc, rel_tol=RTOL)
    return rate, want


def _case_choco_sgd():
    sigma2, G2, mu, L, n, g, delta, T = 2.0, 3.0, 0.5, 2.0, 4, 0.6, 0.5, 10
    c = g**2 * delta
    want = {
        "noise": sigma2 / (mu * n * T),
        "consensus": (L / mu) * G2 / (mu * c**2 * T**2),
        "higher_order": G2 / (mu * c**3 * T**3),
    }
    rate = choco_sgd(sigma2=sigma2, G2=G2, mu=mu, L=L, n=n, spectral_gap=g, delta=delta, T=T)
    return rate, want


def _case_compressed_lb_unbiased():
    L, f_gap, sigma2, n, T, omega = 2.0, 1.5, 3.0, 4, 20, 3.0
    want = {
        "statistical": math.sqrt(f_gap * L * sigma2 / (n * T)),
        "compression": (1 + omega) * f_gap * L / T,
    }
    return compressed_lower_bound(L=L, f_gap=f_gap, sigma2=sigma2, n=n, T=T, omega=omega), want


def _case_compressed_lb_contractive():
    L, f_gap, sigma2, n, T, delta = 1.0, 2.0, 1.0, 2, 50, 0.1
    want = {
        "statistical": math.sqrt(f_gap * L * sigma2 / (n * T)),
        "compression": f_gap * L / (delta * T),
    }
    return compressed_lower_bound(L=L, f_gap=f_gap, sigma2=sigma2, n=n, T=T, delta=delta), want


# ---------------------------------------------------------------------------------------------
# tracking


def _case_gt_sc():
    L, s2, n, rho, T, mu, r0, c = 2.0, 3.0, 4, 0.5, 10, 0.5, 4.0, 0.8
    p = 1 - rho**2
    want = {
        "noise": s2 / (mu * n * T),
        "topology": L * s2 / (mu**2 * p * c**2 * T**2),
        "heterogeneity": 0.0,
        "optimization": L * r0 * math.exp(-mu * p * c * T / L),
    }
    return gradient_tracking(L=L, sigma2=s2, n=n, rho=rho, T=T, mu=mu, r0_sq=r0, c=c), want


def _case_gt_nc():
    L, s2, n, rho, T, delta, c = 1.5, 2.0, 8, 0.7, 40, 3.0, 0.5
    p = 1 - rho**2
    want = {
        "noise": math.sqrt(L * delta * s2 / (n * T)),
        "topology": (L * delta * math.sqrt(s2) / (math.sqrt(p) * c * T)) ** (2 / 3),
        "heterogeneity": 0.0,
        "optimization": L * delta / (p * c * T),
    }
    return gradient_tracking(L=L, sigma2=s2, n=n, rho=rho, T=T, delta=delta, c=c), want


def _case_ed_sc():
    L, s2, n, rho, T, mu, r0 = 2.0, 3.0, 4, 0.6, 8, 0.5, 4.0
    want = {
        "noise": s2 / (mu * n * T),
        "topology": L * rho**2 * s2 / (mu**2 * (1 - rho) * T**2),
        "heterogeneity": 0.0,
        "optimization": L * r0 * math.exp(-mu * (1 - rho) * T / L),
    }
    return exact_diffusion(L=L, sigma2=s2, n=n, rho=rho, T=T, mu=mu, r0_sq=r0), want


def _case_ed_nc():
    L, s2, n, rho, T, delta = 1.5, 2.0, 8, 0.7, 40, 3.0
    want = {
        "noise": math.sqrt(L * delta * s2 / (n * T)),
        "topology": (L * delta * rho * math.sqrt(s2) / (math.sqrt(1 - rho) * T)) ** (2 / 3),
        "heterogeneity": 0.0,
        "optimization": L * delta / ((1 - rho) * T),
    }
    return exact_diffusion(L=L, sigma2=s2, n=n, rho=rho, T=T, delta=delta), want


# ---------------------------------------------------------------------------------------------
# asynchronous


def _case_asgd_delayed():
    gamma, L, s2, T, delta, tmax, tavg = 0.05, 1.5, 2.0, 200, 3.0, 4, 2.5
    want = {
        "optimization": 2 * delta / (gamma * T),
        "noise": gamma * L * s2,
        "delay": 2 * gamma**2 * L**2 * s2 * tavg,
    }
    rate = asgd_delayed(gamma=gamma, L=L, sigma2=s2, T=T, delta=delta, tau_max=tmax, tau_avg=tavg)
    return rate, want


def _case_asgd_delayed_no_delay():
    gamma, L, s2, T, delta = 0.3, 2.0, 1.0, 50, 1.0
    want = {"optimization": 2 * delta / (gamma * T), "noise": gamma * L * s2, "delay": 0.0}
    rate = asgd_delayed(gamma=gamma, L=L, sigma2=s2, T=T, delta=delta, tau_max=0, tau_avg=0)
    return rate, want


def _case_asgd_max_delay():
    L, s2, T, delta, tmax = 2.0, 3.0, 100, 1.5, 7
    want = {"noise": math.sqrt(L * delta * s2 / T), "delay": L * delta * (tmax + 1) / T}
    return asgd_max_delay(L=L, sigma2=s2, T=T, delta=delta, tau_max=tmax), want


def _case_asgd_avg_delay_constant():
    L, s2, T, delta, tmax, tavg = 2.0, 3.0, 100, 1.5, 30, 3.5
    want = {
        "noise": math.sqrt(L * delta * s2 / T),
        "delay": L * delta * math.sqrt((tmax + 1) * (tavg + 1)) / T,
    }
    return asgd_avg_delay(L=L, sigma2=s2, T=T, delta=delta, tau_max=tmax, tau_avg=tavg), want


def _case_asgd_avg_delay_adaptive():
    L, s2, T, delta, tmax, tavg = 1.0, 0.5, 60, 2.0, 30, 3.5
    want = {"noise": math.sqrt(L * delta * s2 / T), "delay": L * delta * (tavg + 1) / T}
    rate = asgd_avg_delay(
        L=L, sigma2=s2, T=T, delta=delta, tau_max=tmax, tau_avg=tavg, adaptive=True
    )
    return rate, want


def _case_asgd_workers_nc():
    L, s2, T, n, delta = 2.0, 3.0, 100, 6, 1.5
    want = {"noise": math.sqrt(L * delta * s2 / T), "delay": n * L * delta / T}
    return asgd_workers(L=L, sigma2=s2, T=T, n=n, delta=delta), want


def _case_asgd_workers_convex():
    L, s2, T, n, r0 = 1.5, 2.0, 80, 4, 3.0
    want = {"noise": math.sqrt(s2 * r0 / T), "delay": n * L * r0 / T}
    return asgd_workers(L=L, sigma2=s2, T=T, n=n, r0_sq=r0), want


def _case_asynchrony_bias():
    # two workers, diagonal Hessians in d = 2: x_p and x* per coordinate by hand
    a = [[1.0, 2.0], [3.0, 0.5]]
    b = [[0.0, 1.0], [2.0, -1.0]]
    speeds = [1.0, 3.0]
    p = [s / sum(speeds) for s in speeds]
    want = 0.0
    for j in range(2):
        xp = sum(p[i] * a[i][j] * b[i][j] for i in range(2)) / sum(p[i] * a[i][j] for i in range(2))
        xs = sum(a[i][j] * b[i][j] for i in range(2)) / sum(a[i][j] for i in range(2))
        want += 0.5 * (a[0][j] + a[1][j]) / 2 * (xp - xs) ** 2
    problem = QuadraticProblem(np.array(a), np.array(b), sigma2=0.0)
    return asynchrony_bias(problem, speeds=speeds), {"heterogeneity_bias": want}


# ---------------------------------------------------------------------------------------------
# byzantine


def _case_robust_dshb():
    kappa, z2, n, f, s2, L, delta, T, B2 = 0.4, 2.0, 10, 2, 3.0, 1.5, 2.0, 50, 0.5
    want = {
        "heterogeneity": kappa * z2 / (1 - kappa * B2),
        "noise": math.sqrt((1 / (n - f) + kappa) * L * delta * s2 / T),
        "optimization": L * delta / T,
    }
    rate = robust_dshb(kappa=kappa, zeta2=z2, n=n, f=f, sigma2=s2, L=L, delta=delta, T=T, B2=B2)
    assert math.isclose(rate.extra["lower_bound"], f / (n - 2 * f) * z2, rel_tol=RTOL)
    return rate, want


def _case_robust_dshb_floor():
    kappa, z2, n, f = 1.5, 3.0, 7, 3
    want = {"heterogeneity": kappa * z2, "noise": 0.0, "optimization": 0.0}
    return robust_dshb(kappa=kappa, zeta2=z2, n=n, f=f, sigma2=1.0), want


def _case_bucketing():
    c, z2, n, f, s2, L, delta, T = 2.0, 1.5, 12, 3, 2.0, 1.5, 2.0, 40
    dB = f / n
    want = {
        "heterogeneity": c * dB * z2,
        "noise": math.sqrt((c * dB + 1 / n) * L * delta * s2 / T),
        "optimization": L * delta / T,
    }
    rate = bucketing_momentum_sgd(c=c, zeta2=z2, n=n, f=f, sigma2=s2, L=L, delta=delta, T=T)
    return rate, want


def _case_byzantine_lb():
    z2, n, f = 3.0, 10, 2
    return byzantine_lower_bound(zeta2=z2, n=n, f=f), {"heterogeneity": f / (n - 2 * f) * z2}


def _case_byzantine_lb_B():
    z2, n, f, B2 = 2.0, 11, 2, 1.5
    return byzantine_lower_bound(zeta2=z2, n=n, f=f, B2=B2), {
        "heterogeneity": f / (n - (2 + B2) * f) * z2
    }


# ---------------------------------------------------------------------------------------------
# lazy: local SGD, minibatch vs local, FedAvg, SCAFFOLD


def _local_nc_case(gamma, L, s2, z2, n, tau, T, delta):
    d = 1 - 4 * gamma**2 * L**2 * (tau - 1) ** 2
    want = {
        "optimization": 2 * delta / (gamma * T),
        "noise": gamma * L * s2 / n,
        "drift_noise": L**2 * 2 * gamma**2 * (tau - 1) * s2 * (1 - 1 / n) / d,
        "drift_heterogeneity": L**2 * 4 * gamma**2 * (tau - 1) ** 2 * z2 / d,
    }
    rate = local_sgd(gamma=gamma, L=L, sigma2=s2, zeta2=z2, n=n, tau=tau, T=T, delta=delta)
    return rate, want


def _case_local_sgd_nc():
    return _local_nc_case(0.05, 2.0, 3.0, 2.0, 4, 4, 200, 1.0)


def _case_local_sgd_nc2():
    return _local_nc_case(0.02, 1.0, 1.0, 5.0, 8, 20, 500, 0.2)


def _case_local_sgd_koloskova():
    L, s2, z2, n, tau, T, delta = 2.0, 3.0, 2.0, 4, 5, 300, 1.5
    want = {
        "noise": math.sqrt(L * delta * s2 / (n * T)),
        "drift_heterogeneity": (L * delta * math.sqrt(z2) * tau / T) ** (2 / 3),
        "drift_noise": (L * delta * math.sqrt(s2 * tau) / T) ** (2 / 3),
        "optimization": L * delta * tau / T,
    }
    rate = local_sgd(
        gamma=0.01, L=L, sigma2=s2, zeta2=z2, n=n, tau=tau, T=T, delta=delta,
        source="koloskova2020",
    )  # fmt: skip
    return rate, want


def _local_sc_curve(gamma, L, mu, s2, z2, n, tau, steps, e0):
    """The docstring's recursion for (e_t, Xi_t), t = 0..steps, written out as a plain loop."""
    e, xi = [e0], []
    for t in range(steps + 1):
        k = t % tau
        window = range(t - k, t)
        xi.append(
            2 * gamma**2 * k * s2 * (1 - 1 / n)
            + 2 * gamma**2 * k * sum(3 * (L**2 * xi[j] + L**2 * e[j] + z2) for j in window)
        )
        if t < steps:
            e.append(
                ((1 - gamma * mu) * math.sqrt(e[t]) + gamma * L * math.sqrt(xi[t])) ** 2
                + gamma**2 * s2 / n
            )
    return e, xi


def _local_sc_expected(gamma, L, mu, s2, z2, n, tau, T, e0):
    opt_noise = _psgd_sc(gamma, L, mu, s2, n, T, e0)
    if T is None:

        def limit(z):  # iterate the round map from 0 to its fixed point (monotone increase)
            v = 0.0
            for _ in range(10_000):
                new = _local_sc_curve(gamma, L, mu, s2, z, n, tau, tau, v)[0][-1]
                if new == v:
                    break
                v = new
            return v

        tot_s, tot = limit(0.0), limit(z2)
    else:
        e, xi = _local_sc_curve(gamma, L, mu, s2, 0.0, n, tau, T, e0)
        tot_s = e[-1] + xi[-1]
        e, xi = _local_sc_curve(gamma, L, mu, s2, z2, n, tau, T, e0)
        tot = e[-1] + xi[-1]
    base = math.fsum(opt_noise.values())
    return {**opt_noise, "drift_noise": tot_s - base, "drift_heterogeneity": tot - tot_s}


def _local_sc_case(gamma, L, mu, s2, z2, n, tau, T, e0):
    rate = local_sgd(gamma=gamma, L=L, mu=mu, sigma2=s2, zeta2=z2, n=n, tau=tau, T=T, avg_error0=e0)
    return rate, _local_sc_expected(gamma, L, mu, s2, z2, n, tau, T, e0)


def _case_local_sgd_sc_T():
    return _local_sc_case(0.1, 2.0, 0.5, 3.0, 2.0, 4, 5, 23, 4.0)


def _case_local_sgd_sc_T2():
    return _local_sc_case(0.05, 1.0, 1.0, 1.0, 0.5, 8, 3, 30, 1.0)


def _case_local_sgd_sc_steady():
    return _local_sc_case(0.2, 1.0, 1.0, 1.0, 1.0, 4, 4, None, 0.0)


def _mvl(L, s2, z2, B2, M, K, R):
    rates = minibatch_vs_local(L=L, sigma2=s2, zeta2=z2, r0_sq=B2, M=M, K=K, R=R)
    noise = math.sqrt(s2) * math.sqrt(B2) / math.sqrt(M * K * R)
    mb = {"optimization": L * B2 / R, "noise": noise}
    loc = {
        "optimization": L * B2 / (K * R),
        "noise": noise,
        "drift_noise": (L * s2 * B2**2) ** (1 / 3) / (K ** (1 / 3) * R ** (2 / 3)),
        "drift_heterogeneity": (L * z2 * B2**2) ** (1 / 3) / R ** (2 / 3),
    }
    return rates, mb, loc


def _case_minibatch_vs_local_minibatch():
    rates, mb, _ = _mvl(2.0, 3.0, 1.5, 2.0, 4, 10, 8)
    return rates["minibatch"], mb


def _case_minibatch_vs_local_local():
    rates, _, loc = _mvl(2.0, 3.0, 1.5, 2.0, 4, 10, 8)
    return rates["local"], loc


def _fedavg_common(s2, S, eta_g):
    return s2 * (1 + S / eta_g**2)


def _case_fedavg_sc():
    L, s2, G2, n, S, K, R, mu, r0, B2, eta_g = 2.0, 3.0, 1.5, 20, 5, 4, 30, 0.5, 2.0, 0.5, 2.0
    want = {
        "noise": _fedavg_common(s2, S, eta_g) / (mu * R * K * S),
        "sampling": (1 - S / n) * G2 / (mu * R * S),
        "drift_heterogeneity": G2 / (mu * R**2),
        "optimization": mu * r0 * math.exp(-mu * R / (16 * (1 + B2) * L)),
    }
    rate = fedavg(L=L, sigma2=s2, G2=G2, n=n, S=S, K=K, R=R, mu=mu, r0_sq=r0, B2=B2, eta_g=eta_g)
    return rate, want


def _case_fedavg_nc():
    L, s2, G2, n, S, K, R, delta, B2, eta_g = 1.5, 2.0, 3.0, 10, 4, 5, 40, 2.0, 1.0, 1.5
    want = {
        "noise": math.sqrt(L * delta * _fedavg_common(s2, S, eta_g) / (R * K * S)),
        "sampling": math.sqrt(L * delta * (1 - S / n) * G2 / (R * S)),
        "drift_heterogeneity": (L * delta * math.sqrt(G2)) ** (2 / 3) / R ** (2 / 3),
        "optimization": (1 + B2) * L * delta / R,
    }
    rate = fedavg(L=L, sigma2=s2, G2=G2, n=n, S=S, K=K, R=R, delta=delta, B2=B2, eta_g=eta_g)
    return rate, want


def _case_scaffold_sc():
    L, s2, n, S, K, R, mu, r0, eta_g = 1.0, 2.0, 10, 4, 5, 200, 0.1, 3.0, 1.5
    want = {
        "noise": s2 * (1 + S / eta_g**2) / (mu * R * K * S),
        "optimization": mu * r0 * math.exp(-min(S / (30 * n), mu / (162 * L)) * R),
        "heterogeneity": 0.0,
    }
    rate = scaffold(L=L, sigma2=s2, n=n, S=S, K=K, R=R, eta_l=1e-4, eta_g=eta_g, mu=mu, r0_sq=r0)
    return rate, want


def _case_scaffold_sc_sampling_binding():
    # S/(30 n) < mu/(162 L): the participation limit sets the linear rate
    L, s2, n, S, K, R, mu, r0 = 1.0, 1.0, 100, 2, 3, 500, 1.0, 2.0
    assert S / (30 * n) < mu / (162 * L)
    want = {
        "noise": s2 * (1 + S) / (mu * R * K * S),
        "optimization": mu * r0 * math.exp(-S / (30 * n) * R),
        "heterogeneity": 0.0,
    }
    return scaffold(L=L, sigma2=s2, n=n, S=S, K=K, R=R, eta_l=1e-5, mu=mu, r0_sq=r0), want


def _case_scaffold_nc():
    L, s2, n, S, K, R, delta, eta_g = 1.5, 2.0, 10, 4, 5, 40, 2.0, 1.5
    want = {
        "noise": math.sqrt(L * delta * s2 * (1 + n / eta_g**2) / (R * K * S)),
        "optimization": (n / S) ** (2 / 3) * L * delta / R,
        "heterogeneity": 0.0,
    }
    rate = scaffold(L=L, sigma2=s2, n=n, S=S, K=K, R=R, eta_l=1e-4, eta_g=eta_g, delta=delta)
    return rate, want


# ---------------------------------------------------------------------------------------------
# the pins and their teeth

CASES = {
    name[len("_case_") :]: fn for name, fn in sorted(globals().items()) if name.startswith("_case_")
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_term_matches_its_formula(case):
    with warnings.catch_warnings():
        warnings.simplefilter("error", TheorylabWarning)  # every pin is inside its condition
        rate, expected = CASES[case]()
    _check_terms(rate, expected)
    assert rate.step_size_ok in (True, None)


def _halvings():
    out = []
    for case in sorted(CASES):
        rate, expected = CASES[case]()
        for term, value in expected.items():
            if value != 0.0:
                out.append((case, term))
    return out


@pytest.mark.parametrize("case,term", _halvings())
def test_halving_any_term_fails_its_pin(case, term):
    rate, expected = CASES[case]()
    half = dataclasses.replace(rate, terms={**rate.terms, term: 0.5 * rate.terms[term]})
    with pytest.raises(AssertionError):
        _check_terms(half, expected)


def test_every_pin_has_every_term_non_negligible():
    """No non-zero term is below 1e-6 of the total (so a wrong constant in it moves the total)."""
    for case in CASES:
        rate, expected = CASES[case]()
        total = math.fsum(expected.values())
        small = [k for k, v in expected.items() if v != 0.0 and v < 1e-6 * total]
        assert not small, (case, small)


# ---------------------------------------------------------------------------------------------
# step-size conditions: the threshold of each, gamma just below passes, just above warns


def _thresholds():
    """(id, threshold, call(gamma) -> Rate); thresholds written out from each docstring."""
    L, mu, n = 2.0, 0.5, 4
    out = [
        ("psgd_sc", 2 / (L + mu), lambda g: psgd(gamma=g, L=L, mu=mu, sigma2=1.0, n=n, T=5)),
        ("psgd_nc", 1 / L, lambda g: psgd(gamma=g, L=L, sigma2=1.0, n=n, T=5, delta=1.0)),
    ]
    # DSGD: steady state finite iff mu^2 (1 - q) > L^2 c_e (binding here, below 2/(L + mu))
    Ld, mud, rho = 1.0, 0.5, 0.8
    atc = mud * (1 - rho) / (math.sqrt(2) * rho * Ld**2)
    cta = (1 - rho) / (Ld * (1 + math.sqrt(2) * Ld / mud))
    assert atc < 2 / (Ld + mud) and cta < 2 / (Ld + mud)
    for form, thr in (("atc", atc), ("cta", cta)):
        out.append(
            (
                f"dsgd_{form}",
                thr,
                lambda g, form=form: dsgd(
                    gamma=g, L=Ld, mu=mud, sigma2=1.0, zeta2=1.0, rho=rho, n=n, form=form
                ),
            )
        )
    # compressed PSGD, strongly convex: q < 1 <=> gamma < 2 mu/(mu^2 + 2 omega L^2/n), which is
    # below 2/(L + mu) at this omega
    omega = 3.0
    thr_q = 2 * mu / (mu**2 + 2 * omega * L**2 / n)
    assert thr_q < 2 / (L + mu)
    out.append(
        (
            "compressed_psgd_sc",
            thr_q,
            lambda g: compressed_psgd(gamma=g, L=L, mu=mu, sigma2=1.0, n=n, omega=omega),
        )
    )
    # ... and at omega = 0 the binding limit is 2/(L + mu) (q < 1 up to 2/mu)
    out.append(
        (
            "compressed_psgd_sc_omega0",
            2 / (L + mu),
            lambda g: compressed_psgd(gamma=g, L=L, mu=mu, sigma2=1.0, n=n, omega=0.0),
        )
    )
    out.append(
        (
            "compressed_psgd_nc",
            1 / (L * (1 + omega / n)),
            lambda g: compressed_psgd(gamma=g, L=L, sigma2=1.0, n=n, omega=omega, T=5, f_gap=1.0),
        )
    )
    delta, Lt = 0.3, 3.0
    theta, beta = _ef21_consts(delta)
    out.append(
        (
            "ef21_nc",
            1 / (L + Lt * math.sqrt(beta / theta)),
            lambda g: ef21(L=L, L_tilde=Lt, delta=delta, T=5, f_gap=1.0, gamma=g),
        )
    )
    out.append(
        (
            "ef21_pl",
            min(1 / (L + Lt * math.sqrt(2 * beta / theta)), theta / (2 * mu)),
            lambda g: ef21(L=L, L_tilde=Lt, delta=delta, T=5, f_gap=1.0, gamma=g, mu=mu),
        )
    )
    rho_t, c = 0.6, 0.7
    out.append(
        (
            "gradient_tracking",
            (1 - rho_t**2) * c / L,
            lambda g: gradient_tracking(
                L=L, sigma2=1.0, n=n, rho=rho_t, T=5, delta=1.0, c=c, gamma=g
            ),
        )
    )
    out.append(
        (
            "exact_diffusion",
            (1 - rho_t) / L,
            lambda g: exact_diffusion(L=L, sigma2=1.0, n=n, rho=rho_t, T=5, mu=mu, gamma=g),
        )
    )
    # asynchronous: L gamma + 2 L^2 gamma^2 tau_max^2 = 1, solved as a quadratic in gamma
    tmax, tavg = 4.0, 2.0
    qa, qb = 2 * L**2 * tmax**2, L
    thr_async = (-qb + math.sqrt(qb**2 + 4 * qa)) / (2 * qa)
    assert math.isclose(L * thr_async + 2 * L**2 * thr_async**2 * tmax**2, 1.0, rel_tol=1e-12)
    common = dict(L=L, sigma2=1.0, T=10, delta=1.0)
    out += [
        (
            "asgd_delayed",
            thr_async,
            lambda g: asgd_delayed(gamma=g, tau_max=tmax, tau_avg=tavg, **common),
        ),
        (
            "asgd_delayed_tau0",
            1 / L,
            lambda g: asgd_delayed(gamma=g, tau_max=0, tau_avg=0, **common),
        ),
        (
            "asgd_max_delay",
            1 / (L * (tmax + 1)),
            lambda g: asgd_max_delay(gamma=g, tau_max=tmax, **common),
        ),
        (
            "asgd_avg_delay",
            1 / (L * math.sqrt((tmax + 1) * (tavg + 1))),
            lambda g: asgd_avg_delay(gamma=g, tau_max=tmax, tau_avg=tavg, **common),
        ),
        (
            "asgd_avg_delay_adaptive",
            1 / (L * (tavg + 1)),
            lambda g: asgd_avg_delay(gamma=g, tau_max=tmax, tau_avg=tavg, adaptive=True, **common),
        ),
        ("asgd_workers", 1 / (n * L), lambda g: asgd_workers(gamma=g, n=n, **common)),
    ]
    # local SGD: non-convex gamma <= 1/L and gamma < 1/(2 L (tau - 1)); strongly convex 2/(L+mu)
    kw = dict(L=L, sigma2=1.0, zeta2=1.0, n=n, T=10, delta=1.0)
    out += [
        ("local_sgd_nc_tau1", 1 / L, lambda g: local_sgd(gamma=g, tau=1, **kw)),
        ("local_sgd_nc_tau2", 1 / (2 * L), lambda g: local_sgd(gamma=g, tau=2, **kw)),
        ("local_sgd_nc_tau5", 1 / (2 * L * 4), lambda g: local_sgd(gamma=g, tau=5, **kw)),
        (
            "local_sgd_sc",
            2 / (L + mu),
            lambda g: local_sgd(
                gamma=g, L=L, mu=mu, sigma2=1.0, zeta2=0.0, n=n, tau=1, T=3, avg_error0=1.0
            ),
        ),
    ]
    # FedAvg: eta_l eta_g K L <= 1; SCAFFOLD: the recalled limits
    K, eta_g, nn, S = 4, 2.0, 10, 5
    fkw = dict(L=L, sigma2=1.0, G2=1.0, n=nn, S=S, K=K, R=10, mu=mu, eta_g=eta_g)
    out.append(("fedavg", 1 / (eta_g * K * L), lambda e: fedavg(eta_l=e, **fkw)))
    skw = dict(L=L, sigma2=1.0, n=nn, S=S, K=K, R=10, eta_g=eta_g)
    thr_s = min(1 / (81 * L * K * eta_g), S / (15 * mu * nn * K * eta_g))
    out.append(("scaffold_sc", thr_s, lambda e: scaffold(eta_l=e, mu=mu, **skw)))
    mu_big, S1 = 1.5, 1  # here S/(15 mu n K eta_g) is the smaller limit
    thr_s2 = S1 / (15 * mu_big * nn * K * eta_g)
    assert thr_s2 < 1 / (81 * L * K * eta_g)
    skw1 = {**skw, "S": S1}
    out.append(("scaffold_sc_mu_binding", thr_s2, lambda e: scaffold(eta_l=e, mu=mu_big, **skw1)))
    out.append(
        (
            "scaffold_nc",
            (S / nn) ** (2 / 3) / (24 * L * K * eta_g),
            lambda e: scaffold(eta_l=e, delta=1.0, **skw),
        )
    )
    # robust D-SHB: kappa B2 < 1
    out.append(
        (
            "robust_dshb_kappa_B2",
            1 / 0.5,
            lambda k: robust_dshb(kappa=k, zeta2=1.0, n=10, f=2, sigma2=1.0, T=10, B2=0.5),
        )
    )
    return out


THRESHOLDS = {name: (thr, call) for name, thr, call in _thresholds()}


@pytest.mark.parametrize("name", sorted(THRESHOLDS))
def test_step_size_threshold(name):
    thr, call = THRESHOLDS[name]
    with warnings.catch_warnings():
        warnings.simplefilter("error", TheorylabWarning)
        below = call(thr * (1 - 1e-6))
    # robust D-SHB's condition (kappa B2 < 1) is on the rule, not a step: it has no step_size_ok
    # and reports the violation as an infinite heterogeneity term
    assert below.step_size_ok is (None if name.startswith("robust") else True)
    assert all(math.isfinite(v) for v in below.terms.values())
    with pytest.warns(TheorylabWarning):
        above = call(thr * (1 + 1e-6))
    if name.startswith("robust"):
        assert above.terms["heterogeneity"] == math.inf
    else:
        assert above.step_size_ok is False


# ---------------------------------------------------------------------------------------------
# scalar-valued helpers of the rate modules (not Rate objects): the same pins and teeth


def _scalars():
    out = {}
    g, s2, d = 0.1, 2.0, 0.3
    out["ef_residual_bound"] = (
        ef_residual_bound(gamma=g, sigma2=s2, delta=d),
        4 * (1 - d) * g**2 * s2 / d**2,
    )
    gap, beta, d = 0.2, 1.3, 0.4
    out["choco_consensus_step"] = (
        choco_consensus_step(spectral_gap=gap, beta=beta, delta=d),
        gap**2 * d / (16 * gap + gap**2 + 4 * beta**2 + 2 * gap * beta**2 - 8 * gap * d),
    )
    # sampling: brute force over all S-subsets of n scalars D_i (the identity's definition)
    D, S = [0.3, -1.2, 2.0, 0.7, -0.4, 1.1], 3
    n = len(D)
    mean = sum(D) / n
    spread = sum((x - mean) ** 2 for x in D) / n
    subsets = list(itertools.combinations(D, S))
    without = sum((sum(c) / S - mean) ** 2 for c in subsets) / len(subsets)
    out["sampling_variance_factor"] = (sampling_variance_factor(n, S), without / spread)
    out["sampling_variance_factor_formula"] = (
        sampling_variance_factor(7, 3),
        (7 - 3) / (3 * (7 - 1)),
    )
    draws = list(itertools.product(D, repeat=2))  # with replacement, S = 2
    withr = sum((sum(c) / 2 - mean) ** 2 for c in draws) / len(draws)
    out["sampling_variance_factor_replacement"] = (
        sampling_variance_factor(n, 2, replacement=True),
        withr / spread,
    )
    m = CommModel(alpha=2e-3, beta=3e-9, nbytes=8_000_000, compute_s=0.01)
    out["sync_time_ring"] = (sync_time(5, m), 2 * 4 * (2e-3 + 3e-9 * 8_000_000 / 5))
    out["sync_time_direct"] = (sync_time(5, m, allreduce="direct"), 4 * (2e-3 + 3e-9 * 8_000_000))
    # staleness, exponential model: P(tau = k) = sum_i q_i^2 (1 - q_i)^k, tau_avg = n - 1
    speeds = [1.0, 2.0, 5.0]
    q = [v / sum(speeds) for v in speeds]
    st = predicted_staleness(speeds)
    for k in (0, 1, 4):
        out[f"predicted_staleness_pmf{k}"] = (
            float(st.pmf[k]),
            sum(qi**2 * (1 - qi) ** k for qi in q),
        )
    out["predicted_staleness_tau_avg"] = (st.tau_avg, len(speeds) - 1.0)
    for i, qi in enumerate(q):
        out[f"predicted_staleness_worker{i}"] = (float(st.per_worker_tau_avg[i]), (1 - qi) / qi)
        out[f"applied_shares{i}"] = (float(applied_shares(speeds)[i]), speeds[i] / sum(speeds))
    return out


SCALARS = _scalars()


def _check_value(got: float, want: float, rtol: float = RTOL) -> None:
    assert math.isclose(got, want, rel_tol=rtol, abs_tol=0.0), (got, want)


@pytest.mark.parametrize("name", sorted(SCALARS))
def test_scalar_matches_its_formula(name):
    got, want = SCALARS[name]
    assert want > 0
    _check_value(got, want)


@pytest.mark.parametrize("name", sorted(SCALARS))
def test_halving_a_scalar_fails_its_pin(name):
    got, want = SCALARS[name]
    with pytest.raises(AssertionError):
        _check_value(0.5 * got, want)


# ---------------------------------------------------------------------------------------------
# planted bugs inside the modules (not on the returned Rate): the pins above must catch them


def _halve_dsgd_heterogeneity(monkeypatch):
    from theorylab.rates import decentralized

    real = decentralized._dsgd_sc_system

    def planted(*args):
        G, consts, valid, stable = real(*args)
        consts = {**consts, "heterogeneity": 0.5 * consts["heterogeneity"]}
        return G, consts, valid, stable

    monkeypatch.setattr(decentralized, "_dsgd_sc_system", planted)
    return ["dsgd_atc_T", "dsgd_atc_steady", "dsgd_cta_T", "dsgd_cta_steady"]


def _halve_local_sgd_zeta2(monkeypatch):
    from theorylab.rates import lazy

    real = lazy._sc_recursion

    def planted(gamma, L, mu, sigma2, zeta2, *rest):
        return real(gamma, L, mu, sigma2, 0.5 * zeta2, *rest)

    monkeypatch.setattr(lazy, "_sc_recursion", planted)
    return ["local_sgd_sc_T", "local_sgd_sc_T2", "local_sgd_sc_steady"]


def _halve_async_step_limit(monkeypatch):
    from theorylab.rates import asynchronous

    real = asynchronous._max_step_delayed
    monkeypatch.setattr(asynchronous, "_max_step_delayed", lambda L, t: 0.5 * real(L, t))
    return ["threshold:asgd_delayed", "threshold:asgd_delayed_tau0"]


@pytest.mark.parametrize(
    "plant", [_halve_dsgd_heterogeneity, _halve_local_sgd_zeta2, _halve_async_step_limit]
)
def test_planted_bugs_in_modules_fail_the_pins(plant, monkeypatch):
    for target in plant(monkeypatch):
        # a pin fails by an AssertionError, or by the warning it turns into an error
        with pytest.raises((AssertionError, TheorylabWarning)):
            if target.startswith("threshold:"):
                test_step_size_threshold(target.split(":", 1)[1])
            else:
                test_every_term_matches_its_formula(target)


def test_compressed_psgd_condition_names_both_limits():
    """The strongly convex bound needs gamma <= 2/(L + mu) (the contraction of the gradient step)
    as well as q < 1, and the code enforces both: the stated condition must name both (it named
    only q < 1, so a warning at omega = 0 cited a condition that held)."""
    rate = compressed_psgd(gamma=0.1, L=2.0, mu=0.5, sigma2=1.0, n=4, omega=0.0)
    assert "2/(L + mu)" in rate.step_size_condition
    assert "omega L^2 / n < 1" in rate.step_size_condition


# ---------------------------------------------------------------------------------------------
# curves and crossings: the same formulas at every step


def _curves():
    out = {}
    # DSGD bound curve: the docstring's u_{k+1} = G u_k + c from (avg_error0, consensus0)
    kw = dict(gamma=0.05, L=1.0, mu=0.5, sigma2=2.0, zeta2=3.0, rho=0.6, n=6)
    for form in ("atc", "cta"):
        curve = dsgd_bound_curve(**kw, steps=12, avg_error0=1.0, consensus0=0.5, form=form)
        for T in (1, 5, 12):
            want = _dsgd_sc_expected(**kw, T=T, form=form, e0=1.0, xi0=0.5)
            out[f"dsgd_bound_curve_{form}_{T}"] = (
                float(curve["error"][T]),
                math.fsum(want.values()),
            )
    # local SGD bound curve: the docstring's (e_t, Xi_t) recursion
    lk = dict(gamma=0.1, L=2.0, mu=0.5, sigma2=3.0, zeta2=2.0, n=4, tau=5)
    curve = local_sgd_bound_curve(**lk, steps=13, avg_error0=4.0)
    e, xi = _local_sc_curve(
        lk["gamma"], lk["L"], lk["mu"], lk["sigma2"], lk["zeta2"], lk["n"], lk["tau"], 13, 4.0
    )
    for t in (1, 4, 7, 13):
        out[f"local_sgd_bound_curve_avg_{t}"] = (float(curve["avg_error"][t]), e[t])
        out[f"local_sgd_bound_curve_consensus_{t}"] = (float(curve["consensus"][t]), xi[t])
    # compressed PSGD with rand-k, exact: m_i^{t+1} = [(1 - g a_i)^2 + g^2 w a_i^2/n] m_i^t
    #                                                 + g^2 (1 + w) sigma2/(n d)
    a, e0, g, s2, n, k = [1.0, 0.5, 2.0, 0.25], [1.0, -2.0, 0.5, 3.0], 0.2, 1.5, 3, 1
    d = len(a)
    w = d / k - 1
    m = [x * x for x in e0]
    traj = [sum(m)]
    for _ in range(6):
        m = [
            ((1 - g * ai) ** 2 + g**2 * w * ai**2 / n) * mi + g**2 * (1 + w) * s2 / (n * d)
            for ai, mi in zip(a, m)
        ]
        traj.append(sum(m))
    got = compressed_psgd_randk_exact(
        hessian_diagonal=a, gamma=g, sigma2=s2, n=n, k=k, e0=e0, steps=6
    )
    for t in (1, 3, 6):
        out[f"randk_exact_{t}"] = (float(got[t]), traj[t])
    # delay-adaptive steps gamma min(1, n/tau)
    steps = delay_adaptive_steps(0.3, [0, 2, 4, 7, 12], n=4)
    for i, tau in enumerate([0, 2, 4, 7, 12]):
        out[f"delay_adaptive_{tau}"] = (float(steps[i]), 0.3 * min(1.0, 4 / tau if tau else 1.0))
    return out


CURVES = _curves()


@pytest.mark.parametrize("name", sorted(CURVES))
def test_curve_point_matches_its_formula(name):
    got, want = CURVES[name]
    assert want > 0
    _check_value(got, want)


@pytest.mark.parametrize("name", sorted(CURVES))
def test_halving_a_curve_point_fails_its_pin(name):
    got, want = CURVES[name]
    with pytest.raises(AssertionError):
        _check_value(0.5 * got, want)


@pytest.mark.parametrize(
    "algorithm,want",
    [
        # sigma2/(mu n T) + L (sigma2/p + zeta2/p^2)/(mu^2 T^2) <= factor sigma2/(mu n T)
        (
            "dsgd",
            lambda n, L, mu, s2, z2, p, rho, f: n * L * (1 / p + z2 / (s2 * p**2)) / (mu * (f - 1)),
        ),
        # ... with the topology term L sigma2/(mu^2 p c^2 T^2) (c = 1)
        ("gradient_tracking", lambda n, L, mu, s2, z2, p, rho, f: n * L / (mu * p * (f - 1))),
        # ... and L rho^2 sigma2/(mu^2 (1 - rho) T^2)
        (
            "exact_diffusion",
            lambda n, L, mu, s2, z2, p, rho, f: n * L * rho**2 / (mu * (1 - rho) * (f - 1)),
        ),
    ],
)
def test_strongly_convex_transient_crossing_closed_form(algorithm, want):
    n, L, mu, s2, z2, rho, f = 8, 1.3, 0.5, 1.7, 1.1, 0.55, 1.1
    p = 1 - rho**2
    value = want(n, L, mu, s2, z2, p, rho, f)
    assert abs(value - round(value)) > 1e-6  # away from an integer: ceil is unambiguous
    got = transient_crossing(
        algorithm, regime="strongly_convex", n=n, rho=rho, L=L, mu=mu, sigma2=s2, zeta2=z2,
        factor=f,
    )  # fmt: skip
    assert got == math.ceil(value)
    assert got != math.ceil(0.5 * value)  # the teeth: a halved transient gives another T
