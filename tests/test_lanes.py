"""The main job's second lane (verify/lanes.py): simulator-only claims in their own process.

Real, cheap claims run here (the lane is a spawned process, so it sees the registered claims,
not a test's monkeypatches): ``dsgd_topology_floor`` and ``async_speed_weighted_fixed_point``
(simulator only, well under a second each) and ``one_peer_exact_average`` (on the ranks).
"""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from theorylab.errors import TheorylabError
from verify.claims import ClaimContext
from verify.claims.base import CLAIMS, Claim
from verify.lanes import LaneContext, SimulatedLane, default_lanes
from verify.report import run_claims

SIM = ["dsgd_topology_floor", "async_speed_weighted_fixed_point"]
RANKS = ["one_peer_exact_average"]


def _numbers(result):
    return (result.claim, result.verdict, result.predicted, result.measured,
            [c["measured"] for c in result.checks])  # fmt: skip


def test_marked_claims_exist_and_are_simulator_only():
    for name in SIM:
        assert CLAIMS[name].ranks is False
    assert CLAIMS[RANKS[0]].ranks is True
    assert all(c.ranks for c in CLAIMS.values() if c.wall_clock)  # never beside other work


def test_two_lanes_give_the_one_lane_results_in_the_same_order(tmp_path):
    names = [SIM[0], RANKS[0], SIM[1]]
    with ClaimContext(world_size=4) as ctx:
        two = run_claims(names, ctx, tmp_path / "two", figures=False, lanes=2)
    with ClaimContext(world_size=4) as ctx:
        one = run_claims(names, ctx, tmp_path / "one", figures=False, lanes=1)
    assert [r.claim for r in two] == names  # the table keeps the selection's order
    assert [_numbers(r) for r in two] == [_numbers(r) for r in one]  # same seeds, same numbers
    assert all(r.verdict == "pass" for r in two)
    for name in names:  # whoever ran it saved it
        (saved,) = [p for p in (tmp_path / "two").glob(f"{name}-*.json")]
        assert json.loads(saved.read_text())["claim"] == name


def test_lane_context_refuses_the_pool_naming_the_claim():
    ctx = LaneContext(world_size=4)
    ctx.claim = "some_claim"
    with pytest.raises(TheorylabError, match="some_claim.*ranks = True"):
        ctx.pool  # noqa: B018


def _collector():
    got = {}

    def collect(name, result, resumed):
        got[name] = result

    return got, collect


def test_main_process_takes_back_claims_the_lane_has_not_started(tmp_path):
    with ClaimContext(world_size=4) as ctx:
        lane = SimulatedLane(ctx, tmp_path, False, SIM)
        try:
            # the lane process is still starting (spawn + imports): both are still unstarted
            assert lane.take_back() == SIM[0]
            assert lane.take_back() == SIM[1]
            assert lane.take_back() is None
            got, collect = _collector()
            lane.finish(collect)  # nothing is owed: returns at once
            assert got == {}
        finally:
            lane.close()


def test_a_lane_that_dies_mid_claim_gives_an_error_result_not_a_hang(tmp_path):
    with ClaimContext(world_size=4) as ctx:
        lane = SimulatedLane(ctx, tmp_path, False, ["own_model_topology", SIM[0]])
        got, collect = _collector()
        try:
            deadline = time.monotonic() + 120
            while "own_model_topology" not in lane._running:  # wait for its start
                assert time.monotonic() < deadline, "the lane never started its first claim"
                lane.poll(collect)
                time.sleep(0.05)
            lane._proc.kill()
            t0 = time.monotonic()
            lane.finish(collect)
            assert time.monotonic() - t0 < 10
        finally:
            lane.close()
    assert got["own_model_topology"].verdict == "error"
    assert "died" in got["own_model_topology"].detail
    # the claim it never started is still the main process's to run
    assert SIM[0] not in got


def test_default_lanes(monkeypatch):
    sim, ranks, wall = CLAIMS[SIM[0]], CLAIMS[RANKS[0]], CLAIMS["psgd_dsgd_speedup"]
    ctx = ClaimContext(world_size=4)
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    monkeypatch.delenv("THEORYLAB_LANES", raising=False)
    assert default_lanes([sim, ranks], ctx) == 2
    assert default_lanes([sim], ctx) == 1  # one claim: nothing to run beside it
    assert default_lanes([ranks, CLAIMS["executors_agree"]], ctx) == 1  # no simulator-only one
    assert default_lanes([sim, ranks, wall], ctx) == 1  # wall-clock claims: machine to itself
    monkeypatch.setenv("THEORYLAB_LANES", "1")
    assert default_lanes([sim, ranks], ctx) == 1
    monkeypatch.setenv("THEORYLAB_LANES", "3")
    with pytest.raises(TheorylabError, match="THEORYLAB_LANES must be 1 or 2, got '3'"):
        default_lanes([sim, ranks], ctx)
    monkeypatch.delenv("THEORYLAB_LANES")
    monkeypatch.setattr("os.cpu_count", lambda: 1)
    assert default_lanes([sim, ranks], ctx) == 1
    with pytest.raises(TheorylabError, match="lanes must be 1 or 2"):
        run_claims([SIM[0]], ctx, "unused", lanes=3)


def test_rank_start_method(monkeypatch):
    import multiprocessing as mp

    from verify.runtime.launch import _rank_context

    monkeypatch.delenv("THEORYLAB_START_METHOD", raising=False)
    want = "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"
    assert _rank_context().get_start_method() == want
    monkeypatch.setenv("THEORYLAB_START_METHOD", "spawn")
    assert _rank_context().get_start_method() == "spawn"
    monkeypatch.setenv("THEORYLAB_START_METHOD", "fork")
    with pytest.raises(TheorylabError, match="'forkserver' or 'spawn', got 'fork'"):
        _rank_context()


def test_cli_lanes_option():
    import argparse

    from verify.cli import add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert parser.parse_args(["--lanes", "1"]).lanes == 1
    assert parser.parse_args([]).lanes is None
    with pytest.raises(SystemExit):
        parser.parse_args(["--lanes", "3"])


def _env_var(rank, world_size, name):
    import os

    return os.environ.get(name)


def test_ranks_see_the_parents_environment_not_the_fork_servers(monkeypatch):
    # the fork server freezes the environment it started with; each rank adopts the parent's
    # environment of the moment its pool starts (as a spawned process would)
    from verify.runtime.launch import WorkerPool

    with WorkerPool(2) as pool:  # the fork server is running after this
        assert pool.run(_env_var, "THEORYLAB_TEST_LATE_VAR") == [None, None]
    monkeypatch.setenv("THEORYLAB_TEST_LATE_VAR", "set-later")
    with WorkerPool(2) as pool:
        assert pool.run(_env_var, "THEORYLAB_TEST_LATE_VAR") == ["set-later", "set-later"]


class _RuntimeSimClaim(Claim):
    """A claim registered at run time (not by ``import verify.claims``): the lane cannot see
    it, so it must run in the main process even with ``ranks = False``."""

    name = "lanes_runtime_toy"
    kind = "bound"
    issue = "Foundation"
    description = "toy claim registered by a test"
    ranks = False

    def config(self, budget):
        return {"R": 4}

    def run(self, ctx):
        import os

        from verify.claims import stats

        x = np.full((4, 1), 1.0) + np.arange(4)[:, None] * 1e-3
        return self.make_result({"toy": stats.bound_rule([10.0], x)}, note=f"pid {os.getpid()}")


def test_a_claim_registered_at_run_time_runs_in_the_main_process(tmp_path, monkeypatch):
    import os

    monkeypatch.setitem(CLAIMS, _RuntimeSimClaim.name, _RuntimeSimClaim())
    with ClaimContext(world_size=4) as ctx:
        results = run_claims([_RuntimeSimClaim.name, SIM[0]], ctx, tmp_path, figures=False,
                             lanes=2)  # fmt: skip
    assert [r.verdict for r in results] == ["pass", "pass"]
    assert results[0].detail.endswith(f"pid {os.getpid()}")  # ran here, not in the lane


def test_rank_context_keeps_a_users_fork_server_preload(monkeypatch):
    # the fork server is one per process: the pool adds torch to its preload, never drops
    # what the user's own code asked for
    import multiprocessing
    from multiprocessing import forkserver

    from verify.runtime.launch import _PRELOAD, _rank_context

    if "forkserver" not in multiprocessing.get_all_start_methods():
        pytest.skip("no fork server on this platform")
    monkeypatch.delenv("THEORYLAB_START_METHOD", raising=False)
    before = list(forkserver._forkserver._preload_modules)
    try:
        # "__main__" (multiprocessing's default) would import the user's script in the server
        multiprocessing.set_forkserver_preload(["__main__", "json", "torch"])
        _rank_context()
        preload = forkserver._forkserver._preload_modules
        assert preload[0] == "json" and preload[1:] == _PRELOAD
        _rank_context()  # idempotent
        assert forkserver._forkserver._preload_modules == preload
    finally:
        multiprocessing.set_forkserver_preload(before)
