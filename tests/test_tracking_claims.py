"""The tracking family's claims at the quick budget: they pass, and each planted bug turns one
red (issue 14: every claim must be able to fail).

Each bug is patched in this process *and* in the worker processes of the distributed executor
(:func:`planted.in_worker`); the claim is run at the quick budget (seed 0) and must *fail*
(not pass, and not error). The deterministic (``sigma2 = 0``) checks see every bug below at
many orders of magnitude above their 1e-9 tolerance, so the outcome does not depend on the seed.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from planted import apply_bug, patch_ranks, restore

from verify.claims import CLAIMS, ClaimContext

NAMES = ["tracking_heterogeneity", "dsgd_topology_floor", "dsgd_transient", "push_sum_directed"]


# ---- the bugs ---------------------------------------------------------------------------------
def _tracker_wrong_sign():
    # y^{k+1} = W (y^k - (g^{k+1} - g^k)): the tracker subtracts the gradient change
    from verify.algorithms.gradient_tracking import GradientTracking, GradientTrackingState

    def step(self, state, ctx, k):
        x, y, g = state
        if self.form == "atc":
            x_new = ctx.comm.mix(torch.add(x, y, alpha=-self.gamma), k)
            g_new = ctx.grad(x_new)
            return GradientTrackingState(x_new, ctx.comm.mix(y - (g_new - g), k), g_new)
        d = x.shape[-1]
        mixed = ctx.comm.mix(torch.cat([x, y], dim=-1), k)
        x_new = torch.add(mixed[..., :d], y, alpha=-self.gamma)
        g_new = ctx.grad(x_new)
        return GradientTrackingState(x_new, mixed[..., d:] - (g_new - g), g_new)

    return [(GradientTracking, "step", step)]


def _missing_wbar():
    # exact diffusion combines with W instead of Wbar = (I + W)/2
    from verify.algorithms.exact_diffusion import ExactDiffusion

    orig = ExactDiffusion.step

    def step(self, state, ctx, k):
        form, self.form = self.form, "d2"
        try:
            return orig(self, state, ctx, k)
        finally:
            self.form = form

    return [(ExactDiffusion, "step", step)]


def _push_sum_forgets_w():
    # the weight w is not pushed (stays 1): push-sum degenerates to DSGD with column weights
    from verify.algorithms.push_sum import PushSum, PushSumState

    orig = PushSum.step

    def step(self, state, ctx, k):
        new = orig(self, state, ctx, k)
        return PushSumState(new.x, torch.ones_like(new.w))

    return [(PushSum, "step", step)]


def _push_with_receive_weights():
    # the distributed push scales by the receiver's row (P_ji) instead of the sender's column
    import verify.runtime.distributed as D

    orig = D._push_plan

    def plan(P, i):
        Pd = P.toarray() if hasattr(P, "toarray") else np.asarray(P)
        good = orig(Pd, i)
        swapped = tuple(float(Pd[i, j]) for j in good.out_nodes)  # row i: receive weights
        return dataclasses.replace(good, out_weights=swapped)

    return [(D, "_push_plan", plan)]


def _atc_runs_cta():
    from verify.algorithms.dsgd import DSGD

    orig = DSGD.step

    def step(self, state, ctx, k):
        form, self.form = self.form, "cta"
        try:
            return orig(self, state, ctx, k)
        finally:
            self.form = form

    return [(DSGD, "step", step)]


#: bug -> (its patches, the claims that must catch it)
BUGS = {
    "gradient tracking: tracker updated with the wrong sign": (
        _tracker_wrong_sign, ["tracking_heterogeneity"]),
    "exact diffusion: missing Wbar (mixes with W)": (_missing_wbar, ["tracking_heterogeneity"]),
    "push-sum forgets to push its weight": (_push_sum_forgets_w, ["push_sum_directed"]),
    "distributed push uses the receiver's weights": (
        _push_with_receive_weights, ["push_sum_directed"]),
    "DSGD runs CTA when asked for ATC": (
        _atc_runs_cta, ["dsgd_topology_floor", "dsgd_transient"]),
}  # fmt: skip


def _apply(bug: str) -> list:
    """Patch ``bug`` in; return what undoes it."""
    return apply_bug(BUGS, bug)


# ---- the suite ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ctx():
    with ClaimContext("quick", world_size=4, seed=0) as c:
        yield c


@pytest.mark.distributed
@pytest.mark.parametrize("name", NAMES)
def test_claim_passes_at_the_quick_budget(name, ctx):
    result = CLAIMS[name].run(ctx)
    failing = [f"{c['name']}: {c['detail']}" for c in result.checks if not c["passed"]]
    assert result.verdict == "pass", failing
    assert CLAIMS[name].detectable  # the minimum detectable error is declared


@pytest.mark.distributed
@pytest.mark.parametrize("bug", list(BUGS))
def test_planted_bug_turns_its_claim_red(bug, ctx, monkeypatch):
    _, names = BUGS[bug]

    patch_ranks(ctx, monkeypatch, __name__, bug)
    undo = _apply(bug)
    try:
        results = [CLAIMS[name].run(ctx) for name in names]
    finally:
        restore(undo)
    shown = "; ".join(f"{r.claim}: {r.verdict}: {r.detail}" for r in results)
    for r in results:
        assert r.verdict == "fail", f"bug {bug!r}: {shown}"


def test_every_bug_is_undone_cleanly():
    for bug in BUGS:
        before = {(id(o), a): o.__dict__[a] for o, a, _ in BUGS[bug][0]()}
        restore(_apply(bug))
        after = {(id(o), a): o.__dict__[a] for o, a, _ in BUGS[bug][0]()}
        assert before == after, bug
