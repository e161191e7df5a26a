"""The own-model claims (verify/claims/own_model.py): their pieces against independent
computations, divergence as a failed check, and the three claims passing at the quick budget.

Known answers: the observer's ``f`` and ``||grad f||^2`` equal :meth:`ModelOracle.objective`'s;
the dense-Hessian ``L`` equals the Hessian assembled column by column from the oracle's exact
Hessian-vector products; :func:`predicted_consensus` equals the fixed point of ATC DSGD with
constant gradients, iterated directly in numpy. The claims' statistical checks hold with
probability >= 99 % each (seed 0 fixed here).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from verify.claims import CLAIMS, ClaimContext
from verify.claims.common import schedule
from verify.claims.own_model import (
    MODEL,
    dense_hessian_L,
    diverged_outcome,
    first_divergence,
    full_objective,
    lazy,
    make_oracle,
    predicted_consensus,
)

NAMES = ("own_model_bound", "own_model_speedup", "own_model_topology")


@pytest.fixture(scope="module")
def oracle():
    return make_oracle({**MODEL, "samples": 64}, 3, seed=1, alpha=0.5)


def test_full_objective_matches_the_oracle(oracle):
    g = torch.Generator().manual_seed(0)
    x = oracle.x0 + 0.1 * torch.randn((4, oracle.d), generator=g, dtype=torch.float64)
    f, g2 = full_objective(oracle, x)
    f_ref, grad_ref = oracle.objective(x)
    np.testing.assert_allclose(f.numpy(), f_ref.numpy(), rtol=1e-12)
    np.testing.assert_allclose(g2.numpy(), (grad_ref**2).sum(-1).numpy(), rtol=1e-10)


def test_dense_hessian_L_matches_hessian_vector_products(oracle):
    x = oracle.x0
    best = 0.0
    for i in range(oracle.n):
        cols = [oracle.hvp(x, torch.eye(oracle.d, dtype=x.dtype)[j], node=i) for j in
                range(oracle.d)]  # fmt: skip
        H = torch.stack(cols, dim=1)
        best = max(best, float(torch.linalg.eigvalsh(0.5 * (H + H.T)).abs().max()))
    assert dense_hessian_L(oracle, x[None].numpy()) == pytest.approx(best, rel=1e-9)


@pytest.mark.parametrize("graph", ["ring", "torus", "exponential"])
def test_predicted_consensus_is_the_atc_fixed_point(graph):
    n, d, gamma = 9, 3, 0.01
    rng = np.random.default_rng(0)
    G = rng.standard_normal((n, d))
    W = lazy(schedule(graph, n), 0.5)[0]
    X = np.zeros((n, d))
    for _ in range(3000):  # x <- W (x - gamma g), constant gradients: the exact fixed point
        X = W @ (X - gamma * G)
    dev = X - X.mean(axis=0)
    measured = float(np.sum(dev**2) / n)
    assert predicted_consensus(W, G, gamma) == pytest.approx(measured, rel=1e-9)


def test_lazy_scales_the_spectral_gap():
    from verify.claims.common import schedule_rho

    W = schedule("torus", 9)
    assert 1 - schedule_rho(lazy(W, 0.25)) == pytest.approx(0.25 * (1 - 0.4), rel=1e-9)


def test_divergence_is_located_and_reported():
    curve = np.ones((5, 3))
    curve[3, 1] = np.nan
    assert first_divergence([0, 10, 20, 30, 40], curve) == 30
    assert first_divergence([0, 1], np.ones((2, 2))) is None
    out = diverged_outcome("the run", 30)
    assert not out.passed and "step 30" in out.detail


def test_diverging_claim_fails_naming_the_step(monkeypatch):
    claim = CLAIMS["own_model_speedup"]
    # regression (half squared error) with a huge step: the iterates overflow to inf, then NaN
    small = {"task": "regression", "gamma": 1e3, "ns": [2, 3, 4], "burn_in": 2, "window": 60,
             "stride": 2, "replicas": 2, "warm_steps": 2}  # fmt: skip
    orig = type(claim).config
    monkeypatch.setattr(claim, "config", lambda budget: {**orig(claim, budget), **small})
    with ClaimContext("quick", world_size=2, seed=0) as ctx:
        result = claim.run(ctx)
    assert result.verdict == "fail"
    assert "diverged" in result.detail and "at step" in result.detail


def test_claims_are_registered_with_their_texts():
    for name in NAMES:
        claim = CLAIMS[name]
        assert claim.question and claim.plain and claim.detectable, name
        for budget in ("quick", "full"):
            assert isinstance(claim.config(budget), dict)


@pytest.mark.distributed
@pytest.mark.parametrize("name", NAMES)
def test_claim_passes_at_the_quick_budget(name):
    with ClaimContext("quick", world_size=4, seed=0) as ctx:
        result = CLAIMS[name].run(ctx)
    assert result.verdict == "pass", result.detail
    assert all(c["passed"] for c in result.checks)


def test_observer_batches_give_the_rows_of_one_step_at_a_time():
    # the observer measures in batches (two all-reduces per batch); a batch of one step at a
    # time (batch_evals=1) is the plain per-step measurement: same rows, same order
    import functools

    from verify.algorithms.psgd import PSGD
    from verify.claims.own_model import GradNormObserver, observed_curves
    from verify.run import run_simulated

    cfg = {**MODEL, "samples": 64}
    factory = functools.partial(make_oracle, cfg, 3, 1, alpha=0.5, batch_size=4)
    x0 = make_oracle(cfg, 3, 1, alpha=0.5).x0.expand(3, 2, -1).contiguous()
    W = [np.full((3, 3), 1 / 3)]
    out = []
    for evals in (1, 1 << 16, 3 * 2 * 3 * 40):  # per step, all at the end, a few per batch
        observer = GradNormObserver(stride=2, start=1, points=[5], batch_evals=evals)
        traj = run_simulated(PSGD(0.1), factory, W, x0, 12, 5, [12], observe=observer)
        out.append(observed_curves(traj))
    for steps, f, g2, points in out[1:]:
        assert steps == out[0][0] == [1, 3, 5, 7, 9, 11]
        np.testing.assert_allclose(f, out[0][1], rtol=1e-12)
        np.testing.assert_allclose(g2, out[0][2], rtol=1e-10)
        assert points.keys() == {5}
        np.testing.assert_allclose(points[5], out[0][3][5], rtol=1e-12)
