"""Graph families, schedules and closed forms of theorylab.topology."""

import networkx as nx
import numpy as np
import pytest

from theorylab import topology as T
from theorylab.errors import TheorylabError
from theorylab.spectral import schedule_rho


@pytest.mark.parametrize(
    "G, n, m",
    [
        (T.ring(7), 7, 7),
        (T.path(5), 5, 4),
        (T.star(6), 6, 5),
        (T.complete(5), 5, 10),
        (T.grid2d(3, 4), 12, 17),
        (T.torus2d(3, 4), 12, 24),
        (T.hypercube(16), 16, 32),
        (T.exponential(16), 16, 16 * 7 // 2),
    ],
)
def test_family_sizes(G, n, m):
    assert sorted(G.nodes()) == list(range(n))
    assert G.number_of_edges() == m
    assert nx.is_connected(G)


def test_exponential_edges_are_powers_of_two():
    n = 12
    G = T.exponential(n)
    for u, v in G.edges():
        d = min((u - v) % n, (v - u) % n)
        assert d & (d - 1) == 0  # a power of two


def test_random_families_seeded_and_connected():
    a = T.random_regular(20, 3, seed=5)
    b = T.random_regular(20, 3, seed=5)
    assert sorted(a.edges()) == sorted(b.edges())
    assert all(d == 3 for _, d in a.degree())
    g = T.random_geometric(50, 0.35, seed=1)
    assert nx.is_connected(g)
    assert sorted(g.edges()) == sorted(T.random_geometric(50, 0.35, seed=1).edges())
    assert nx.is_connected(T.erdos_renyi(30, 0.3, seed=2))


def test_disconnected_random_graph_says_how_to_fix():
    with pytest.raises(TheorylabError, match="larger p"):
        T.erdos_renyi(50, 0.01, seed=0)
    with pytest.raises(TheorylabError, match="larger radius"):
        T.random_geometric(50, 0.05, seed=0)
    # derived-seed resampling eventually finds a connected sample
    G = T.erdos_renyi(30, 0.12, seed=0, max_tries=50)
    assert nx.is_connected(G)


@pytest.mark.parametrize(
    "call",
    [
        lambda: T.ring(2),
        lambda: T.path(1),
        lambda: T.star(1),
        lambda: T.hypercube(12),
        lambda: T.torus2d(2, 5),
        lambda: T.grid2d(1, 1),
        lambda: T.random_regular(5, 3),
        lambda: T.build("nope", 5),
        lambda: T.build("random-regular", 10),
    ],
)
def test_bad_sizes(call):
    with pytest.raises(TheorylabError):
        call()


def test_check_graph():
    G = nx.Graph([("b", "c"), ("a", "b")])
    H = T.check_graph(G)
    assert sorted(H.nodes()) == [0, 1, 2] and H.has_edge(0, 1) and H.has_edge(1, 2)
    with pytest.raises(TheorylabError, match="disconnected"):
        T.check_graph(nx.Graph([(0, 1), (2, 3)]))
    with pytest.raises(TheorylabError, match="n >= 2"):
        T.check_graph(nx.empty_graph(1))
    with pytest.raises(TheorylabError, match="self-loop"):
        T.check_graph(nx.Graph([(0, 1), (1, 1)]))
    with pytest.raises(TypeError):
        T.check_graph(nx.DiGraph([(0, 1)]))


def test_from_edgelist(tmp_path):
    lines = ["# a path", "10 20", "20 30  0.5", "", "30 40"]
    G = T.from_edgelist(lines)
    assert G.number_of_nodes() == 4 and nx.is_isomorphic(G, nx.path_graph(4))
    f = tmp_path / "g.txt"
    f.write_text("\n".join(lines))
    assert sorted(T.from_edgelist(f).edges()) == sorted(G.edges())
    with pytest.raises(TheorylabError, match="line 1"):
        T.from_edgelist(["7"])


def test_square_shape_and_build():
    assert T.square_shape(12) == (3, 4)
    assert T.square_shape(100) == (10, 10)
    assert T.build("torus", 20).number_of_nodes() == 20
    assert T.build("grid", rows=2, cols=3).number_of_edges() == 7
    with pytest.raises(TheorylabError):
        T.build("torus", 7)  # prime: 1 x 7 is not a torus


@pytest.mark.parametrize("n", [2, 4, 8, 16])
def test_one_peer_exponential_exact_averaging(n):
    s = T.one_peer_exponential(n)
    assert s.period == max(1, (n - 1).bit_length())
    for W in s.matrices:
        assert np.allclose(W.sum(0), 1) and np.allclose(W.sum(1), 1)
        assert np.count_nonzero(W - np.diag(np.diag(W)), axis=1).max() == 1  # one peer
    # the product over one period is exactly J (exact in floating point: dyadic weights)
    assert np.array_equal(s.product(), np.full((n, n), 1.0 / n))
    assert schedule_rho(s) == 0.0


@pytest.mark.parametrize("n, residual", [(6, 0.2165), (12, 0.2091), (100, 0.1916)])
def test_one_peer_exponential_not_exact_otherwise(n, residual):
    # topology.md section 2.2 / 7.2 [COMPUTED]
    s = T.one_peer_exponential(n)
    norm = np.linalg.norm(s.product() - 1.0 / n, 2)
    assert abs(norm - residual) < 5e-5
    assert abs(schedule_rho(s) - norm ** (1 / s.period)) < 1e-12


def test_one_peer_direction_and_indexing():
    s = T.one_peer_exponential(8)
    W1 = s[1]
    assert W1[0, 2] == 0.5 and W1[2, 0] == 0  # round 1: node 0 receives from 0 + 2
    assert s[4] is s[1] and len(s) == 3 and not np.allclose(W1, W1.T)


def test_schedule_validation():
    W = np.array([[0.5, 0.5, 0], [0.5, 0.5, 0], [0, 0, 1.0]])
    with pytest.raises(TheorylabError, match="union graph"):
        T.Schedule([W])
    with pytest.raises(TheorylabError, match="round 1"):
        T.Schedule([np.full((2, 2), 0.5), np.array([[1.0, 0.5], [0, 0.5]])])
    with pytest.raises(TheorylabError, match="same number"):
        T.Schedule([np.full((2, 2), 0.5), np.full((3, 3), 1 / 3)])
    with pytest.raises(TheorylabError):
        T.Schedule([])
    s = T.static(np.full((3, 3), 1 / 3))
    assert s.period == 1 and s.n == 3


def test_exponential_mixing_matrix_closed_form():
    # topology.md section 2.2: rho = (tau - 1)/(tau + 1) for even n (circulant: norm = radius)
    for n in [4, 6, 8, 12, 16, 24, 32, 48, 64, 100, 128, 1000, 1024]:
        tau = (n - 1).bit_length()
        W = T.exponential_mixing_matrix(n)
        assert abs(np.linalg.norm(W - 1.0 / n, 2) - (tau - 1) / (tau + 1)) < 1e-10
    assert abs(np.linalg.norm(T.exponential_mixing_matrix(9) - 1 / 9, 2) - 0.4418) < 1e-4
