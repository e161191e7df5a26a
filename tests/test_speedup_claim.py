"""The lecture's first figure as a claim (``psgd_dsgd_speedup``): its model, its statistics, and
two planted bugs that must turn it red.

The claim times real gloo rounds, so whether it passes depends on the machine's load (see its
module docstring); these tests assert only what holds on any machine: the model's formulas, the
coverage of the order-statistic interval, and that each planted bug makes the claim *fail* (not
pass, not error).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from planted import apply_bug, patch_ranks, restore

from verify.claims import CLAIMS, ClaimContext
from verify.claims import speedup as S


def test_allreduce_plan_is_gloos_ring():
    # reduce-scatter + all-gather: 2 (n - 1) messages of ceil(b / n) bytes
    assert S.allreduce_plan(2, 4096) == (2, 2048)
    assert S.allreduce_plan(4, 4096) == (6, 1024)
    assert S.allreduce_plan(3, 10) == (4, 4)


def test_predicted_round_closed_forms():
    a, b, tc, nb = 1e-4, 1e-9, 2e-3, 8192
    for n in (2, 3, 4, 8, 64):
        psgd = tc + 2 * (n - 1) * (a + b * math.ceil(nb / n))
        dsgd = tc + min(2, n - 1) * (a + b * nb)
        assert math.isclose(S.predicted_round("psgd", n, tc, a, b, nb), psgd, rel_tol=1e-12)
        assert math.isclose(S.predicted_round("dsgd", n, tc, a, b, nb), dsgd, rel_tol=1e-12)
    # DSGD's speed-up n t_c / round grows linearly, PSGD's saturates in the latency regime
    sp = [n * tc / S.predicted_round("psgd", n, tc, 1e-3, 0.0, nb) for n in (8, 64)]
    sd = [n * tc / S.predicted_round("dsgd", n, tc, 1e-3, 0.0, nb) for n in (8, 64)]
    assert sd[1] / sd[0] == pytest.approx(8.0)
    assert sp[1] / sp[0] < 1.2
    with pytest.raises(ValueError, match="algorithm"):
        S.predicted_round("gossip", 4, tc, a, b, nb)


def test_quantile_ci_exact_indices_and_coverage():
    est, lo, hi = S.quantile_ci(np.arange(1.0, 101.0), 0.5, 0.95)
    assert (est, lo, hi) == (50.5, 40.0, 61.0)
    # too few samples for the level: an infinite end
    assert S.quantile_ci([1.0, 2.0, 3.0], 0.5, 0.999)[1] == -math.inf
    # coverage >= level for a skewed law (exponential, median log 2): 2000 seeded intervals at
    # level 0.9; the count of misses is Binomial(2000, <= 0.1), so > 240 misses has probability
    # < 1e-3 when the coverage holds
    rng = np.random.default_rng(0)
    misses = sum(
        not (lo <= math.log(2) <= hi)
        for _, lo, hi in (S.quantile_ci(rng.exponential(size=60), 0.5, 0.9) for _ in range(2000))
    )
    assert misses <= 240


# ---- planted bugs ------------------------------------------------------------------------------
def _dsgd_all_reduces():
    # DSGD's round calls the global all-reduce instead of the neighbour exchange
    def exchange(buf, recv, rank, n, group, timeout):
        S._global_mean(buf, group, timeout)

    return [(S, "_neighbour_exchange", exchange)]


def _allreduce_one_message():
    # the model prices the all-reduce as one message of the whole model, whatever n
    return [(S, "allreduce_plan", lambda n, nbytes: (1, int(nbytes)))]


BUGS = {
    "DSGD all-reduces": _dsgd_all_reduces,
    "all-reduce priced as one message": _allreduce_one_message,
}


def _apply(bug: str) -> list:
    """Patch ``bug`` in; return what undoes it."""
    return apply_bug(BUGS, bug)


@pytest.fixture(scope="module")
def ctx():
    with ClaimContext("quick", world_size=4, seed=0) as c:
        yield c


@pytest.mark.parametrize("bug", list(BUGS))
def test_planted_bug_turns_the_speedup_claim_red(bug, ctx, monkeypatch):
    patch_ranks(ctx, monkeypatch, __name__, bug)
    undo = _apply(bug)
    try:
        result = CLAIMS["psgd_dsgd_speedup"].run(ctx)
    finally:
        restore(undo)
    assert result.verdict == "fail", f"bug {bug!r} stayed green: {result.detail}"
    failing = [c["name"] for c in result.checks if not c["passed"]]
    # both bugs break the growth of DSGD's advantage with the ratio
    assert "DSGD's advantage grows with the ratio" in failing, result.detail


def test_the_result_holds_what_the_figure_draws(ctx):
    result = CLAIMS["psgd_dsgd_speedup"].run(ctx)
    assert result.verdict in ("pass", "fail")  # the verdict depends on the machine's load
    s = result.series
    ns = s["speedup"]["x"]
    assert ns == [2, 4]
    for algo in ("psgd", "dsgd"):
        for lab in ("small", "large"):
            for kind in ("measured", "lo", "hi", "predicted"):
                assert len(s["speedup"][f"{algo} {lab} {kind}"]) == len(ns)
            assert len(s["model"][f"{algo} {lab}"]) == len(s["model"]["x"])
    assert s["ratios"]["large"] > s["ratios"]["small"] > 0
    assert "alpha" in s["calibration"] and s["caption"]
    assert len(result.checks) == 5
