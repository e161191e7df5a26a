"""topology.random_geometric (k-d tree + CSR build) is networkx's graph for the same seed."""

from __future__ import annotations

import networkx as nx
import pytest

from theorylab.errors import TheorylabError
from theorylab.topology import _derived_seed, random_geometric


def _networkx_reference(n, radius, seed, max_tries):
    for attempt in range(max_tries):
        H = nx.random_geometric_graph(n, radius, seed=_derived_seed(seed, attempt))
        if nx.is_connected(H):
            return H
    return None


@pytest.mark.parametrize(
    "n, radius, seed, max_tries",
    [(2, 2.0, 0, 1), (50, 0.3, 0, 1), (200, 0.15, 3, 5), (1000, 0.08, 1, 5), (3000, 0.05, 7, 5)],
)
def test_same_graph_as_networkx(n, radius, seed, max_tries):
    G = random_geometric(n, radius, seed=seed, max_tries=max_tries)
    H = _networkx_reference(n, radius, seed, max_tries)
    assert H is not None
    assert set(map(frozenset, G.edges())) == set(map(frozenset, H.edges()))
    assert list(G.edges()) == list(H.edges())  # same insertion order too
    assert list(G.nodes()) == list(H.nodes())
    assert dict(G.nodes(data="pos")) == dict(H.nodes(data="pos"))
    # the edge data dict is shared between the two directions, as networkx stores it
    u, v = next(iter(G.edges()))
    assert G.adj[u][v] is G.adj[v][u]
    G.add_edge(0, 1)  # still an ordinary, mutable networkx graph


def test_disconnected_is_an_error_naming_the_fix():
    with pytest.raises(TheorylabError, match="larger radius"):
        random_geometric(500, 0.01, seed=0, max_tries=2)
