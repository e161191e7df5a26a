"""Topology choice under a budget and greedy edge addition."""

from __future__ import annotations

import itertools
import json

import networkx as nx
import numpy as np
import pytest

from theorylab.cost import CommModel, round_time
from theorylab.errors import TheorylabError
from theorylab.mixing import mixing_matrix
from theorylab.spectral import rho as spectral_rho
from theorylab.topology_design import (
    candidate_topologies,
    choose_topology,
    greedy_edge_addition,
)


def test_candidates_declare_degree_edges_period():
    cands = candidate_topologies(16, degrees=(3, 4), seeds=(0,))
    fams = {c["family"] for c in cands}
    assert {"ring", "torus", "hypercube", "exponential", "one-peer-exponential",
            "random-regular", "complete"} <= fams  # fmt: skip
    for c in cands:
        if c["graph"] is not None:
            assert c["degree"] == max(d for _, d in c["graph"].degree())
            assert c["edges"] == c["graph"].number_of_edges()
        else:
            assert (c["degree"], c["edges"], c["period"]) == (1, 8, 4)
    # hypercube only for powers of 2; torus needs sides >= 3
    assert "hypercube" not in {c["family"] for c in candidate_topologies(12, seeds=(0,))}
    assert "torus" not in {c["family"] for c in candidate_topologies(7, seeds=(0,))}


def test_one_peer_exponential_wins_at_degree_one():
    rows = choose_topology(16, max_degree=1)
    assert rows[0]["name"] == "one-peer exponential"
    assert rows[0]["rounds"] == 4 and rows[0]["rho"] == 0.0  # exact averaging in log2 16


@pytest.mark.parametrize("budget", [{"max_degree": 3}, {"edges": 40}, {"cost_budget": 0.02}])
def test_budget_is_respected_and_rows_sorted(budget):
    model = CommModel()
    rows = choose_topology(16, model=model, seeds=(0,), **budget)
    for r in rows:
        if "max_degree" in budget:
            assert r["degree"] <= budget["max_degree"]
        if "edges" in budget:
            assert r["edges"] <= budget["edges"]
        if "cost_budget" in budget:
            assert round_time(r["degree"], model) <= budget["cost_budget"]
        assert r["consensus_s"] == pytest.approx(r["rounds"] * r["round_s"])
    keys = [r["consensus_s"] for r in rows]
    assert keys == sorted(keys)


def test_weights_chosen_are_the_best_of_the_rules():
    rows = choose_topology(16, max_degree=4, seeds=(0,), sdp_max_n=0)
    torus = next(r for r in rows if r["family"] == "torus")
    # 4x4 torus: Metropolis = best constant = 0.6 (topology.md §4.4)
    assert torus["rho"] == pytest.approx(0.6, abs=1e-9)
    rows = choose_topology(16, max_degree=4, seeds=(0,), sdp_max_n=16)
    rr = next(r for r in rows if r["family"] == "random-regular")
    assert rr["rule"] == "optimal (FDLA)"


def test_ranking_by_dsgd_time():
    problem = dict(target=1e-2, L=1.0, mu=0.5, sigma2=0.1, zeta2=0.5, avg_error0=1.0)
    rows = choose_topology(16, max_degree=4, seeds=(0,), problem=problem, sdp_max_n=0)
    times = [r["time_s"] for r in rows]
    assert times == sorted(times)


def test_no_budget_or_nothing_fits():
    with pytest.raises(TheorylabError, match="budget"):
        choose_topology(16)
    with pytest.raises(TheorylabError, match="relax"):
        choose_topology(16, edges=7)


def test_greedy_is_exact_best_single_edge():
    # with candidates >= #non-edges the step is the exact best edge: compare with brute force
    G = nx.path_graph(7)
    steps = greedy_edge_addition(G, 1, candidates=100)
    best = min(
        spectral_rho(np.asarray(mixing_matrix(nx.Graph([*G.edges(), e]), "metropolis",
                                              sparse=False)))
        for e in itertools.combinations(range(7), 2)
        if not G.has_edge(*e)
    )  # fmt: skip
    assert steps[1]["rho"] == pytest.approx(best, abs=1e-12)
    H = nx.Graph([*G.edges(), steps[1]["edge"]])
    assert spectral_rho(np.asarray(mixing_matrix(H, "metropolis", sparse=False))) == pytest.approx(
        steps[1]["rho"], abs=1e-12
    )


def test_greedy_with_optimal_weights_never_loses_gap():
    steps = greedy_edge_addition(nx.cycle_graph(10), 3, rule="optimal")
    assert all(s["gain"] >= -1e-7 for s in steps[1:])  # feasible set grows
    assert steps[-1]["spectral_gap"] > steps[0]["spectral_gap"]


def test_greedy_metropolis_chord_can_cost_gap():
    steps = greedy_edge_addition(nx.cycle_graph(12), 1)
    assert steps[1]["gain"] < 0  # documented: Metropolis lowers ring weights at the chord


def test_greedy_bad_input():
    with pytest.raises(TheorylabError, match="rule"):
        greedy_edge_addition(nx.cycle_graph(5), 1, rule="nope")
    with pytest.raises(TheorylabError, match="disconnected"):
        greedy_edge_addition(nx.Graph([(0, 1), (2, 3)]), 1)
    steps = greedy_edge_addition(nx.complete_graph(4), 2)
    assert len(steps) == 1  # nothing to add


def test_cli_design(tmp_path, capsys):
    from theorylab.cli import main

    assert main(["design", "--n", "16", "--max-degree", "2", "--json", "--sdp-max-n", "0"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["recommended"]["name"] == "one-peer exponential"
    f = tmp_path / "g.txt"
    f.write_text("\n".join(f"{i} {(i + 1) % 8}" for i in range(8)))
    assert main(["design", "--edgelist", str(f), "--add-edges", "2"]) == 0
    assert main(["design", "--n", "16"]) == 2  # no budget: clear error, exit 2
