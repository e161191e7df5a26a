"""Optimal weights (FDLA / FMMC): reference values, closed forms, optimality against heuristics,
solver agreement (barrier vs cvxpy vs subgradient), failure paths and bad input.

rho = ||W - 11^T/n||_2, spectral gap = 1 - rho throughout.
"""

from __future__ import annotations

import json
import math

import networkx as nx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from theorylab import design
from theorylab.design import (
    compare_weight_rules,
    edge_weights_to_matrix,
    fmmc_weights,
    optimal_weights,
    subgradient_weights,
)
from theorylab.errors import SolverError, TheorylabError
from theorylab.mixing import mixing_matrix
from theorylab.spectral import rho as spectral_rho

# topology.md §4.4 [COMPUTED with Clarabel, 4 digits]: (graph, FMMC, FDLA)
REFERENCE = [
    ("ring C6", nx.cycle_graph(6), 0.6000, 0.6000),
    ("path P5", nx.path_graph(5), 0.8090, 0.8090),
    ("star S8", nx.star_graph(7), 0.8571, 0.7778),
    ("hypercube Q3", nx.hypercube_graph(3), 0.5000, 0.5000),
    ("torus 5x5", nx.grid_2d_graph(5, 5, periodic=True), 0.6793, 0.6793),
    ("grid 4x4", nx.grid_2d_graph(4, 4), 0.8244, 0.8244),
    ("Petersen", nx.petersen_graph(), 0.4286, 0.4286),
    ("barbell(5,0)", nx.barbell_graph(5, 0), 0.9177, 0.8944),
]


@pytest.mark.parametrize("name,G,fmmc,fdla", REFERENCE, ids=[r[0] for r in REFERENCE])
def test_reference_values(name, G, fmmc, fdla):
    assert optimal_weights(G).rho == pytest.approx(fdla, abs=5e-5)
    assert optimal_weights(G, nonnegative=True).rho == pytest.approx(fmmc, abs=5e-5)


@pytest.mark.parametrize("n", [5, 8, 16])
def test_path_closed_form(n):
    # Boyd, Diaconis, Sun, Xiao (2006): FMMC on a path has all edge weights 1/2 and
    # SLEM cos(pi/n); FDLA attains the same (topology.md §4.4 / §5).
    res = fmmc_weights(nx.path_graph(n))
    assert res.rho == pytest.approx(math.cos(math.pi / n), abs=1e-7)
    np.testing.assert_allclose(res.edge_weights, 0.5, atol=1e-4)
    assert optimal_weights(nx.path_graph(n)).rho == pytest.approx(math.cos(math.pi / n), abs=1e-7)


@pytest.mark.parametrize("n", [8, 16])
def test_even_ring_closed_form(n):
    # Edge-transitive graph: optimal weights are constant (Boyd, Diaconis, Parrilo, Xiao), so
    # FDLA = best constant = (1 + cos(2 pi/n))/(3 - cos(2 pi/n)) (topology.md §4.4).
    c = math.cos(2 * math.pi / n)
    expected = (1 + c) / (3 - c)
    assert optimal_weights(nx.cycle_graph(n)).rho == pytest.approx(expected, abs=1e-7)
    assert fmmc_weights(nx.cycle_graph(n)).rho == pytest.approx(expected, abs=1e-7)


@pytest.mark.parametrize("n", [5, 8, 16])
def test_star_closed_form(n):
    G = nx.star_graph(n - 1)  # n nodes
    assert optimal_weights(G).rho == pytest.approx((n - 1) / (n + 1), abs=1e-7)
    assert fmmc_weights(G).rho == pytest.approx((n - 2) / (n - 1), abs=1e-7)


@pytest.mark.parametrize("d", [2, 3, 4])
def test_hypercube_closed_form(d):
    assert optimal_weights(nx.hypercube_graph(d)).rho == pytest.approx((d - 1) / (d + 1), abs=1e-7)


@pytest.mark.parametrize("n", [2, 3, 7])
@pytest.mark.parametrize("nonnegative", [False, True])
def test_complete_graph_averages_in_one_step(n, nonnegative):
    res = optimal_weights(nx.complete_graph(n), nonnegative=nonnegative)
    assert res.rho == pytest.approx(0.0, abs=1e-12)
    np.testing.assert_allclose(res.W, np.full((n, n), 1.0 / n), atol=1e-12)


def test_result_is_validated_and_rho_from_eigenvalues():
    G = nx.barbell_graph(5, 0)
    for nonneg in (False, True):
        res = optimal_weights(G, nonnegative=nonneg)
        W = res.W
        np.testing.assert_allclose(W, W.T, atol=1e-14)
        np.testing.assert_allclose(W.sum(axis=1), 1.0, atol=1e-12)
        off_support = ~(nx.to_numpy_array(G, nodelist=sorted(G)) > 0) & ~np.eye(len(G), dtype=bool)
        assert np.all(W[off_support] == 0)
        if nonneg:
            assert W.min() >= 0
        # independent computation of rho: singular values of W - J
        rho = np.linalg.svd(W - 1.0 / len(G), compute_uv=False)[0]
        assert res.rho == pytest.approx(rho, abs=1e-12)
        # the barrier certifies its accuracy: rho - lower_bound <= duality gap (tol 1e-8)
        assert res.lower_bound <= res.rho <= res.lower_bound + 1e-7
        assert res.success and res.status == "optimal"
    json.dumps(res.to_dict(include_matrix=True))


def _connected_graph(n, p, seed):
    G = nx.gnp_random_graph(n, p, seed=seed)
    # make connected deterministically: chain the components
    comps = [sorted(c) for c in nx.connected_components(G)]
    for a, b in zip(comps, comps[1:]):
        G.add_edge(a[0], b[0])
    return G


@settings(deadline=None, max_examples=15, derandomize=True)
@given(
    n=st.integers(min_value=3, max_value=9),
    p=st.floats(min_value=0.2, max_value=0.8),
    seed=st.integers(min_value=0, max_value=10_000),
)
def test_optimum_beats_every_heuristic(n, p, seed):
    G = _connected_graph(n, p, seed)
    fdla = optimal_weights(G).rho
    fmmc = optimal_weights(G, nonnegative=True).rho
    tol = 1e-7  # the barrier's duality gap is <= 1e-8
    assert fdla <= fmmc + tol  # FMMC's feasible set is a subset of FDLA's
    for rule in ("metropolis", "max-degree", "best-constant", "local-degree"):
        W = np.asarray(mixing_matrix(G, rule, sparse=False), dtype=float)
        r = spectral_rho(W)
        assert fdla <= r + tol, rule
        if W.min() >= 0:  # feasible for FMMC too
            assert fmmc <= r + tol, rule


@pytest.mark.parametrize("solver", ["SCS", "CLARABEL"])
@pytest.mark.parametrize("nonnegative", [False, True])
def test_cvxpy_solvers_agree_with_barrier(solver, nonnegative):
    G = nx.barbell_graph(4, 1)
    ref = optimal_weights(G, nonnegative=nonnegative)
    res = optimal_weights(G, nonnegative=nonnegative, solver=solver, tol=1e-7)
    assert res.solver == solver
    # rho of the returned W is >= the optimum; SCS/Clarabel at 1e-7 land within 1e-5 of it
    assert ref.rho - 1e-8 <= res.rho <= ref.rho + 1e-5
    assert abs(res.objective_gap) < 1e-4


def test_subgradient_agrees_with_sdp():
    G = nx.gnp_random_graph(20, 0.4, seed=3)
    assert nx.is_connected(G)
    for nonneg in (False, True):
        sdp = optimal_weights(G, nonnegative=nonneg)
        fo = subgradient_weights(G, nonnegative=nonneg, max_iter=2000, patience=500)
        assert fo.rho >= sdp.rho - 1e-9  # the SDP is optimal
        assert fo.spectral_gap >= 0.99 * sdp.spectral_gap  # within 1% of the optimal gap
        if nonneg:
            assert fo.W.min() >= 0


def test_subgradient_sparse_eigensolver_path():
    # Lanczos (eigsh) and dense eigh give the same iterates: an independent check of both paths
    G = nx.random_regular_graph(4, 40, seed=1)
    metropolis = spectral_rho(np.asarray(mixing_matrix(G, "metropolis", sparse=False)))
    sdp = optimal_weights(G)
    sparse = subgradient_weights(G, dense_max_n=10, max_iter=50)
    dense = subgradient_weights(G, max_iter=50)
    assert sparse.rho == pytest.approx(dense.rho, abs=1e-9)
    # 50 steps only (no target-level halving yet): better than Metropolis, not yet optimal;
    # convergence to within 1% of the SDP is test_subgradient_agrees_with_sdp's job
    assert sdp.rho - 1e-9 <= sparse.rho < metropolis


def test_subgradient_iteration_cap_is_reported():
    res = subgradient_weights(nx.path_graph(10), max_iter=3)
    assert res.status == "max_iter" and not res.success and res.iterations == 3


def test_compare_weight_rules_star():
    rows = {r["rule"]: r for r in compare_weight_rules(nx.star_graph(7))}
    assert rows["metropolis"]["rho"] == pytest.approx(1 - 1 / 8)  # topology.md §5
    assert rows["best-constant"]["rho"] == pytest.approx(7 / 9)
    assert rows["optimal-symmetric"]["rho"] == pytest.approx(7 / 9, abs=1e-7)
    assert rows["optimal-nonnegative"]["rho"] == pytest.approx(6 / 7, abs=1e-7)
    assert rows["metropolis"]["speedup"] == 1
    assert rows["optimal-symmetric"]["iterations"] == math.ceil(math.log(1e-6) / math.log(7 / 9))


def test_compare_weight_rules_rho_one_gives_infinite_iterations():
    rows = {r["rule"]: r for r in compare_weight_rules(nx.cycle_graph(8), sdp=False)}
    assert rows["max-degree"]["iterations"] == math.inf  # bipartite regular: rho = 1


def test_edge_weights_to_matrix():
    W = edge_weights_to_matrix(3, [[0, 1], [1, 2]], [0.25, 0.5])
    np.testing.assert_allclose(W, [[0.75, 0.25, 0], [0.25, 0.25, 0.5], [0, 0.5, 0.5]])
    with pytest.raises(TheorylabError, match="2 edges"):
        edge_weights_to_matrix(3, [[0, 1], [1, 2]], [0.25])


# ---------------------------------------------------------------------------- failures


def _fake_solve(status):
    def solve(problem, *args, **kwargs):
        problem._status = status  # what cvxpy's Problem.status property reads

    return solve


@pytest.mark.parametrize("status", ["infeasible", "unbounded", "optimal_inaccurate"])
def test_cvxpy_failed_status_raises(monkeypatch, status):
    import cvxpy as cp

    monkeypatch.setattr(cp.Problem, "solve", _fake_solve(status))
    with pytest.raises(SolverError, match=status):
        optimal_weights(nx.cycle_graph(6), solver="SCS")


def test_cvxpy_solver_exception_raises(monkeypatch):
    import cvxpy as cp

    def boom(self, *a, **k):
        raise cp.error.SolverError("numerical trouble")

    monkeypatch.setattr(cp.Problem, "solve", boom)
    with pytest.raises(SolverError, match="numerical trouble"):
        optimal_weights(nx.cycle_graph(6), solver="CLARABEL")


def test_barrier_iteration_cap_raises_without_fallback():
    with pytest.raises(SolverError, match="max_iter"):
        optimal_weights(nx.cycle_graph(10), max_iter=3, fallback=None)


def test_barrier_iteration_cap_falls_back_to_cvxpy_and_says_so():
    from theorylab.errors import TheorylabWarning

    G = nx.cycle_graph(10)
    with pytest.warns(TheorylabWarning, match="fell back to SCS"):
        res = optimal_weights(G, max_iter=3, tol=1e-6)
    assert res.solver == "SCS" and "fell back to SCS" in res.message and res.success
    # ring C10: FDLA optimum (1 - cos(2 pi / n)) ... equals the barrier's certified value
    ref = optimal_weights(G, tol=1e-9)
    assert abs(res.rho - ref.rho) < 1e-4  # SCS at eps 1e-6: rho within 1e-4 (measured ~1e-6)


def test_progress_callable_sees_every_newton_step():
    seen = []
    res = optimal_weights(nx.path_graph(6), progress=seen.append)
    assert len(seen) == res.iterations
    assert [d["step"] for d in seen] == list(range(1, res.iterations + 1))
    assert all(d["gap"] > 0 and "FDLA barrier" in d["label"] for d in seen)


def test_progress_true_writes_to_stderr(capsys):
    optimal_weights(nx.path_graph(6), progress=True)
    err = capsys.readouterr().err
    assert "FDLA barrier (n = 6, m = 5): Newton step 1," in err


def test_self_loop_is_rejected_as_documented():
    G = nx.cycle_graph(5)
    G.add_edge(0, 0)
    with pytest.raises(TheorylabError, match="self-loop"):
        optimal_weights(G)


# ---------------------------------------------------------------------------------------------
# Zero diagonal (W_ii = 0 forced)


@pytest.mark.parametrize("n", [3, 5, 7, 9])
@pytest.mark.parametrize("nonneg", [False, True])
def test_zero_diagonal_odd_ring_known_value(n, nonneg):
    # On an odd ring N w = 1 forces w = 1/2 on every edge (the weights alternate around an odd
    # cycle), so W = (P + P^T)/2 and rho = max_k |cos(2 pi k / n)| = cos(pi / n).
    res = optimal_weights(nx.cycle_graph(n), nonnegative=nonneg, zero_diagonal=True)
    assert np.max(np.abs(np.diag(res.W))) < 1e-8
    assert np.allclose(res.edge_weights, 0.5, atol=1e-7)
    assert abs(res.rho - math.cos(math.pi / n)) < 1e-7


def test_zero_diagonal_petersen_known_value():
    # 3-regular with W_ii = 0: W = A/3 is feasible with rho = 2/3 (adjacency spectrum 3, 1, -2);
    # FMMC and FDLA both reach it (checked against Clarabel below on random graphs).
    for nonneg in (False, True):
        res = optimal_weights(nx.petersen_graph(), nonnegative=nonneg, zero_diagonal=True)
        assert abs(res.rho - 2 / 3) < 1e-7
        assert np.max(np.abs(np.diag(res.W))) < 1e-8


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("nonneg", [False, True])
def test_zero_diagonal_matches_cvxpy_with_the_constraint(seed, nonneg):
    G = nx.random_regular_graph(3, 12, seed=seed)
    G.add_edges_from([(0, 6), (1, 7)])  # irregular, so the optimum is not a scaled adjacency
    assert nx.is_connected(G) and not nx.is_bipartite(G)
    ours = optimal_weights(G, nonnegative=nonneg, zero_diagonal=True)
    ref = optimal_weights(G, nonnegative=nonneg, zero_diagonal=True, solver="CLARABEL", tol=1e-9)
    # both W satisfy the constraint; rho agrees to the solvers' accuracy (1e-8 / 1e-9 gaps)
    assert np.max(np.abs(np.diag(ours.W))) < 1e-8 and np.max(np.abs(np.diag(ref.W))) < 1e-6
    assert abs(ours.rho - ref.rho) < 1e-6
    assert ours.lower_bound <= ref.rho + 1e-7
    # forcing W_ii = 0 can only lose: rho is >= the unconstrained optimum
    free = optimal_weights(G, nonnegative=nonneg)
    assert ours.rho >= free.rho - 1e-7
    if nonneg:
        assert ours.W.min() >= -1e-12


def test_zero_diagonal_rejects_bipartite_and_infeasible_graphs():
    with pytest.raises(TheorylabError, match="bipartite"):
        optimal_weights(nx.cycle_graph(6), zero_diagonal=True)
    # a triangle with two pendants at node 0: W_33 = W_44 = 0 forces w_03 = w_04 = 1, so node 0's
    # row sums to >= 2 with nonnegative weights: no FMMC W with zero diagonal exists
    G = nx.cycle_graph(3)
    G.add_edges_from([(0, 3), (0, 4)])
    with pytest.raises(TheorylabError, match="W >= 0"):
        optimal_weights(G, nonnegative=True, zero_diagonal=True)
    # a pendant node forces its edge weight to 1: the zero-diagonal optimum is rho = 1
    with pytest.raises(TheorylabError, match="optimal rho on this graph is 1"):
        optimal_weights(nx.lollipop_graph(3, 1), zero_diagonal=True)
    with pytest.raises(TypeError, match="zero_diagonal"):
        optimal_weights(nx.cycle_graph(5), zero_diagonal="yes")


def test_invalid_solution_is_never_returned(monkeypatch):
    def bad(n, edges, nonnegative, **kw):
        return -0.2 * np.ones(len(edges)), 0.5, 1e-9, 1

    monkeypatch.setattr(design, "_barrier_solve", bad)
    with pytest.raises(SolverError, match="< 0"):
        optimal_weights(nx.cycle_graph(6), nonnegative=True)

    def diverged(n, edges, nonnegative, **kw):
        return 5.0 * np.ones(len(edges)), 0.5, 1e-9, 1  # rho >= 1

    monkeypatch.setattr(design, "_barrier_solve", diverged)
    with pytest.raises(SolverError, match="rho"):
        optimal_weights(nx.cycle_graph(6))


def test_bad_input():
    G = nx.Graph([(0, 1), (2, 3)])
    with pytest.raises(TheorylabError, match="disconnected"):
        optimal_weights(G)
    with pytest.raises(TheorylabError, match="n >= 2"):
        optimal_weights(nx.empty_graph(1))
    with pytest.raises(TypeError):
        optimal_weights(nx.DiGraph([(0, 1), (1, 0)]))
    with pytest.raises(TypeError):
        optimal_weights(np.eye(3))
    looped = nx.cycle_graph(4)
    looped.add_edge(0, 0)
    with pytest.raises(TheorylabError, match="self-loop"):
        optimal_weights(looped)
    with pytest.raises(TheorylabError, match="tol"):
        optimal_weights(nx.cycle_graph(4), tol=0.5)
    with pytest.raises(TheorylabError, match="shape"):
        subgradient_weights(nx.cycle_graph(4), w0=[0.1, 0.2])


def test_cli_weights_json_and_save(tmp_path):
    from theorylab.cli import main

    out = tmp_path / "W.npy"
    assert main(["weights", "ring", "--n", "8", "--save", str(out), "--json"]) == 0
    W = np.load(out)
    assert spectral_rho(W) == pytest.approx(0.744521, abs=1e-6)
    edges = tmp_path / "g.txt"
    edges.write_text("0 1\n1 2\n2 3\n")
    assert main(["weights", "--edgelist", str(edges), "--no-sdp"]) == 0
    assert main(["weights", "one-peer-exponential", "--n", "8"]) == 2


@pytest.mark.parametrize("G", [nx.cycle_graph(6), nx.complete_graph(4)])
def test_unknown_solver_name_is_bad_input(G):
    # a typo is bad input (TheorylabError naming it and the choices), not a solver failure;
    # also on the complete graph, whose closed form would otherwise skip the solver
    with pytest.raises(TheorylabError, match="'foo'.*barrier"):
        optimal_weights(G, solver="foo")


@pytest.mark.parametrize("dense_max_n", [400, 0])
def test_subgradient_complete_graph_is_closed_form(dense_max_n):
    # W = 11^T/n is optimal (rho = 0); the sparse route used to fail on it (W - J = 0 gives
    # ARPACK "starting vector is zero") and the dense one ran to max_iter
    for nonneg in (False, True):
        res = subgradient_weights(
            nx.complete_graph(12), nonnegative=nonneg, dense_max_n=dense_max_n
        )
        assert res.rho < 1e-12 and res.status == "converged" and res.iterations == 0
        assert np.allclose(res.W, 1 / 12)


def test_subgradient_sparse_route_small_n_matches_dense():
    # dense_max_n below n on tiny graphs: ARPACK needs n >= 10; eigh runs there (as in
    # theorylab.spectral), giving the same iterates as the dense route
    for G in (nx.cycle_graph(4), nx.path_graph(5), nx.star_graph(6)):
        sparse = subgradient_weights(G, dense_max_n=0, max_iter=40)
        dense = subgradient_weights(G, max_iter=40)
        assert sparse.rho == pytest.approx(dense.rho, abs=1e-12)


def test_cli_reports_a_solver_failure_without_traceback(monkeypatch, capsys):
    from theorylab.cli import main

    def fail(*a, **k):
        raise SolverError("barrier: stalled at duality gap 1e-3 > tol = 1e-8 (numerical limit)")

    monkeypatch.setattr(design, "compare_weight_rules", fail)
    assert main(["weights", "ring", "--n", "8"]) == 1
    err = capsys.readouterr().err
    assert "solver failed: barrier: stalled" in err and "Traceback" not in err


# The n = 200 graphs of issue 7 item 5 (the CLI's `weights erdos-renyi --n 200 --p 0.05`, seed 0,
# and benchmarks/design.py's random geometric graph): minutes per solve on a loaded 2-core
# machine, so run only with THEORYLAB_SLOW_TESTS=1. The barrier's certified interval
# [lower_bound, rho] must contain SCS's rho to SCS's accuracy at eps 1e-7 (2e-6 measured).
_SLOW = pytest.mark.skipif(
    not __import__("os").environ.get("THEORYLAB_SLOW_TESTS"), reason="set THEORYLAB_SLOW_TESTS=1"
)


def _n200_graphs():
    from theorylab import topology

    yield "ER(200, 0.05) seed 0", topology.erdos_renyi(200, 0.05, seed=0)
    G = nx.random_geometric_graph(200, math.sqrt(8 / (199 * math.pi)), seed=1000)
    yield "RGG(200) seed 1000", G


@_SLOW
@pytest.mark.parametrize("nonneg", [True, False])
def test_n200_graphs_converge_and_agree_with_scs(nonneg):
    for name, G in _n200_graphs():
        if not nx.is_connected(G):
            continue
        ours = optimal_weights(G, nonnegative=nonneg, fallback=None, progress=False)
        assert ours.solver == "barrier", name
        assert ours.rho - ours.lower_bound <= 1e-8, name
        ref = optimal_weights(G, nonnegative=nonneg, solver="SCS", tol=1e-7)
        assert abs(ref.rho - ours.rho) <= 1e-5, name
