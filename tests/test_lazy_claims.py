"""The lazy-communication claims (verify/claims/lazy.py): they pass as the theory says, and each
turns red under a realistic planted bug (issue 14's standard, issue 9's "wrong averaging period"
and "lost control variate").

Each bug is patched into this process *and* into the worker processes of the distributed
executor (through :func:`planted.in_worker`), and the claim that should catch it runs at the quick
budget (seed 0): it must *fail*, not pass and not error. The detections are large (the failing
checks' details are shown on a failure): deterministic checks see the bugs at 1e-9 tolerance,
statistical ones at many standard errors.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
from planted import apply_bug, patch_ranks, restore

from verify.claims import CLAIMS, ClaimContext

LAZY = [
    "local_sgd_exact_curve",
    "local_sgd_drift_shape",
    "scaffold_no_heterogeneity_floor",
    "local_sgd_best_period",
    "event_triggered_communication",
]

# ---- the bugs ---------------------------------------------------------------------------------


def _wrong_period():
    # the round ends one local step late: averages every tau + 1 steps
    from verify.algorithms.local_sgd import LocalSGD

    orig = LocalSGD.step

    def step(self, state, ctx, k):
        tau, self.tau = self.tau, self.tau + 1
        try:
            return orig(self, state, ctx, k)
        finally:
            self.tau = tau

    return [(LocalSGD, "step", step)]


def _lost_control_variate():
    # the clients' control variates are dropped after every round (c_i = c = 0): plain FedAvg
    from verify.algorithms.scaffold import SCAFFOLD

    orig = SCAFFOLD.step

    def step(self, state, ctx, k):
        new = orig(self, state, ctx, k)
        if (k + 1) % self.tau == 0:
            new = new._replace(c_i=torch.zeros_like(new.c_i), c=torch.zeros_like(new.c))
        return new

    return [(SCAFFOLD, "step", step)]


def _exact_local_noise():
    import theorylab.exact as E

    orig = E.exact_local_sgd

    @functools.wraps(orig)
    def wrapped(problem, *args, **kwargs):
        import copy

        p = copy.copy(problem)
        p.sigma2 = problem.sigma2 * 1.05
        return orig(p, *args, **kwargs)

    return [(E, "exact_local_sgd", wrapped)]


def _exact_scaffold_is_fedavg():
    # the prediction forgets the control variates: SCAFFOLD predicted as local SGD
    import theorylab.exact as E

    orig = E.exact_local_sgd

    def wrapped(problem, gamma, tau, steps, x0, eta_g=1.0, record=None):
        return orig(problem, gamma, tau, steps, x0, eta_g=eta_g, record=record)

    return [(E, "exact_scaffold", wrapped)]


def _one_subset_for_all_replicas():
    # the sampled clients are drawn once per round and shared by every replica, so the replicas'
    # mean is one sampling path, not the expectation over the sampling
    import verify.algorithms.local_sgd as M

    orig = M.participation_mask

    def mask(seed, round_, n, S, replicas):
        return orig(seed, round_, n, S, 1).expand(n, replicas).clone()

    return [(M, "participation_mask", mask)]


def _xhat_without_sending():
    # a node records its new value as sent (xhat_i = y_i) even when the trigger kept it silent,
    # so its next change is measured from a value the others never received
    from verify.algorithms.event_triggered import EventTriggered, EventTriggeredState

    def step(self, state, ctx, k):
        y = torch.add(state.x, ctx.grad(state.x), alpha=-self.gamma)
        change = y - state.xhat
        send = (change * change).sum(dim=-1) > self.threshold_at(k)
        _, values = ctx.comm.triggered_gather(change, send.cpu())
        total = state.total + values.sum(dim=0, keepdim=True)
        sends = state.sends + send.to(state.sends.dtype)
        return EventTriggeredState(total / ctx.comm.n, y, total, sends, state.rounds + 1)

    return [(EventTriggered, "step", step)]


def _skipped_rows_counted():
    # the bytes of the rows a node did not send are counted anyway
    import verify.runtime.lazycomm as C

    def nbytes(n, send, row_bytes):
        return (
            (n - 1)
            * (send.shape[1] + send.shape[1] * int(row_bytes))
            * np.ones(send.shape[0], dtype=np.int64)
        )

    patches = [(C, "triggered_gather_bytes", nbytes)]
    import verify.runtime.distributed as D
    import verify.runtime.simulated as S

    patches += [(S, "triggered_gather_bytes", nbytes), (D, "triggered_gather_bytes", nbytes)]
    return patches


#: bug -> (its patches, the claims that must catch it)
BUGS = {
    "local SGD averages every tau + 1 steps": (
        _wrong_period, ["local_sgd_exact_curve", "local_sgd_drift_shape", "local_sgd_best_period"]),
    "SCAFFOLD loses its control variates": (
        _lost_control_variate, ["scaffold_no_heterogeneity_floor", "local_sgd_exact_curve"]),
    "exact local SGD prediction: noise term x 1.05": (
        _exact_local_noise, ["local_sgd_exact_curve"]),
    "exact SCAFFOLD prediction without control variates": (
        _exact_scaffold_is_fedavg, ["scaffold_no_heterogeneity_floor"]),
    "FedAvg: one client subset shared by all replicas": (
        _one_subset_for_all_replicas, ["local_sgd_exact_curve"]),
    "event-triggered: xhat updated without sending": (
        _xhat_without_sending, ["event_triggered_communication"]),
    "triggered gather counts the skipped rows": (
        _skipped_rows_counted, ["event_triggered_communication"]),
}  # fmt: skip


def _apply(bug: str) -> list:
    """Patch ``bug`` in; return what undoes it."""
    return apply_bug(BUGS, bug)


# ---- the suite ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ctx():
    with ClaimContext("quick", world_size=4, seed=0) as c:
        yield c


def test_the_lazy_claims_pass_at_the_quick_budget_and_draw_from_their_saved_results(ctx, tmp_path):
    import json

    from matplotlib.figure import Figure

    from figures.draw import DRAWERS, draw
    from verify.claims.base import ClaimResult
    from verify.report import save_figure

    results = [CLAIMS[name].run(ctx) for name in LAZY]
    shown = "; ".join(f"{r.claim}: {r.verdict}: {r.detail}" for r in results if not r.passed)
    assert all(r.passed for r in results), shown
    for r in results:  # every claim states what it can detect, and draws its own figure
        assert CLAIMS[r.claim].detectable and r.series.get("caption")
        assert r.claim in DRAWERS
        saved = json.loads(json.dumps(r.to_dict()))  # as written to disk
        fig = Figure()
        draw(saved, fig)
        assert len(fig.axes) >= 2 and all(ax.get_xlabel() for ax in fig.axes), r.claim
        assert save_figure(ClaimResult.from_dict(saved), tmp_path / f"{r.claim}.png").stat().st_size


@pytest.mark.parametrize("bug", list(BUGS))
def test_planted_bug_turns_its_claims_red(bug, ctx, monkeypatch):
    _, names = BUGS[bug]

    patch_ranks(ctx, monkeypatch, __name__, bug)
    undo = _apply(bug)
    try:
        results = [CLAIMS[name].run(ctx) for name in names]
    finally:
        restore(undo)
    shown = "; ".join(f"{r.claim}: {r.verdict}: {r.detail}" for r in results)
    assert all(r.verdict == "fail" for r in results), f"bug {bug!r} not caught by all: {shown}"


def test_every_bug_is_undone_cleanly():
    for bug in BUGS:
        before = {(id(o), a): o.__dict__[a] for o, a, _ in BUGS[bug][0]()}
        restore(_apply(bug))
        after = {(id(o), a): o.__dict__[a] for o, a, _ in BUGS[bug][0]()}
        assert before == after, bug
