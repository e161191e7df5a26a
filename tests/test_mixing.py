"""Weight rules and mixing-matrix validation (theorylab.mixing, theorylab.testing.graphs)."""

import warnings

import networkx as nx
import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings

from theorylab import mixing as M
from theorylab import topology as T
from theorylab.errors import TheorylabError, TheorylabWarning
from theorylab.spectral import rho
from theorylab.testing.graphs import (
    check_mixing_rule,
    connected_graphs,
    mixing_matrices,
    rule_guarantees_rho_below_one,
)

FAST = settings(deadline=None, max_examples=25, derandomize=True)


@FAST
@given(connected_graphs(2, 10))
def test_every_rule_conforms_on_random_connected_graphs(G):
    degs = {d for _, d in G.degree()}
    for rule in M.WEIGHT_RULES:
        if rule == "uniform" and len(degs) > 1:
            with pytest.raises(TheorylabError, match="regular"):
                M.mixing_matrix(G, rule)
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", TheorylabWarning)
            r = check_mixing_rule(rule, G)
        # Metropolis always mixes: rho < 1 on every connected graph
        if rule == "metropolis":
            assert r < 1


@FAST
@given(mixing_matrices(rule=None))
def test_strategy_gives_valid_matrices(W):
    M.check_mixing_matrix(W, doubly_stochastic=True, symmetric=True)
    assert rho(W) <= 1 + 1e-9


@pytest.mark.parametrize("G", [T.ring(6), T.ring(16), T.hypercube(8), T.torus2d(4, 4)])
@pytest.mark.parametrize("rule", ["max-degree", "local-degree"])
def test_bipartite_regular_graphs_have_rho_one(G, rule):
    # documented fact (topology.md section 0 / 4.4): self weight 0 and eigenvalue -1
    assert not rule_guarantees_rho_below_one(rule, G)
    with pytest.warns(TheorylabWarning, match="rho = 1"):
        W = M.mixing_matrix(G, rule)
    assert abs(rho(W) - 1) < 1e-12
    assert rho(M.mixing_matrix(G, rule, lazy=True)) < 1  # the documented fix
    assert rho(M.mixing_matrix(G, "metropolis")) < 1


def test_metropolis_entries():
    W = M.metropolis_weights(T.star(4))
    assert np.allclose(W[0], [0.25] * 4) and np.allclose(W[1], [0.25, 0.75, 0, 0])
    L = M.local_degree_weights(T.star(4))
    assert np.allclose(L[1], [1 / 3, 2 / 3, 0, 0]) and abs(L[0, 0]) < 1e-15


def test_sparse_matches_dense_and_default_switch():
    G = T.random_regular(30, 3, seed=0)
    for rule in M.WEIGHT_RULES:
        Wd = M.mixing_matrix(G, rule, sparse=False)
        Ws = M.mixing_matrix(G, rule, sparse=True)
        assert isinstance(Ws, sp.csr_array) and np.allclose(Ws.toarray(), Wd, atol=1e-14)
    assert sp.issparse(M.mixing_matrix(T.ring(2500)))
    assert isinstance(M.mixing_matrix(T.ring(50)), np.ndarray)


def test_best_constant_alpha():
    # star: alpha* = 2/(n + 1) (Laplacian eigenvalues 0, 1, n)
    n = 7
    W = M.best_constant_weights(T.star(n))
    assert abs(W[0, 1] - 2 / (n + 1)) < 1e-12 and W[0, 0] < 0  # negative hub self weight
    # sparse route (n > 2000) agrees with the dense formula on a ring
    n = 2100
    Ws = M.best_constant_weights(T.ring(n))
    lam = 2 - 2 * np.cos(2 * np.pi * np.arange(n) / n)
    assert abs(Ws[0, 1] - 2 / (lam.max() + np.sort(lam)[1])) < 1e-9


def test_lazy():
    W = M.metropolis_weights(T.ring(5))
    assert np.allclose(M.lazy(W), (np.eye(5) + W) / 2)
    assert np.allclose(M.lazy(sp.csr_array(W)).toarray(), (np.eye(5) + W) / 2)


# ---------------------------------------------------------------------------- validation
def test_check_mixing_matrix_accepts_and_returns_float64():
    W = M.check_mixing_matrix([[0.5, 0.5], [0.5, 0.5]])
    assert W.dtype == np.float64
    S = M.check_mixing_matrix(sp.csr_array(np.full((3, 3), 1 / 3)), symmetric=True)
    assert sp.issparse(S)


@pytest.mark.parametrize(
    "W, kwargs, match",
    [
        (np.ones((2, 3)) / 3, {}, "square"),
        (np.array([[0.5, np.nan], [0.5, 0.5]]), {}, r"W\[0, 1\] is not finite"),
        (np.array([[0.5, np.inf], [0.5, 0.5]]), {}, "not finite"),
        (np.array([[0.6, 0.5], [0.5, 0.5]]), {}, "row 0"),
        (np.array([[1.0, 0.0], [0.5, 0.5]]), {}, "column 0"),
        (
            np.array([[0.5, 0.5, 0], [0, 0.5, 0.5], [0.5, 0, 0.5]]),
            {"symmetric": True},
            "not symmetric",
        ),
        (np.array([[1.5, -0.5], [-0.5, 1.5]]), {"nonnegative": True}, "negative"),
        (np.array([[1.0, 0], [0, 1.0]]), {}, "disconnected"),
    ],
)
def test_check_mixing_matrix_errors(W, kwargs, match):
    with pytest.raises(TheorylabError, match=match):
        M.check_mixing_matrix(W, **kwargs)
    if W.shape[0] == W.shape[1] and np.all(np.isfinite(W)):
        with pytest.raises(TheorylabError, match=match):
            M.check_mixing_matrix(sp.csr_array(W), **kwargs)


def test_row_stochastic_allowed_when_asked():
    W = np.array([[1.0, 0.0], [0.5, 0.5]])
    M.check_mixing_matrix(W, doubly_stochastic=False)


def test_support_outside_graph():
    W = np.full((3, 3), 1 / 3)  # has the edge (0, 2)
    with pytest.raises(TheorylabError, match=r"\(0, 2\) is not an edge"):
        M.check_mixing_matrix(W, nx.path_graph(3))
    M.check_mixing_matrix(M.metropolis_weights(nx.path_graph(3)), nx.path_graph(3))
    with pytest.raises(TheorylabError, match="nodes"):
        M.check_mixing_matrix(W, nx.path_graph(4))


def test_not_numeric_and_world_size():
    with pytest.raises(TypeError):
        M.check_mixing_matrix([["a", "b"], ["c", "d"]])
    W = np.full((4, 4), 0.25)
    assert M.check_world_size(W, 4) is W
    with pytest.raises(TheorylabError, match="world_size = 3"):
        M.check_world_size(W, 3)
    M.check_world_size(T.one_peer_exponential(8), 8)


def test_rule_errors():
    with pytest.raises(TheorylabError, match="unknown weight rule"):
        M.mixing_matrix(T.ring(4), "nope")
    with pytest.raises(TheorylabError, match="regular"):
        M.uniform_weights(T.star(5))
    with pytest.raises(TheorylabError, match="disconnected"):
        M.metropolis_weights(nx.Graph([(0, 1), (2, 3)]))


def test_check_mixing_rule_unknown_name():
    # an unknown rule name is bad input (TheorylabError naming it), not a KeyError
    with pytest.raises(TheorylabError, match="'metropolis2'.*metropolis"):
        check_mixing_rule("metropolis2", nx.cycle_graph(5))
