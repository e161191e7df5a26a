"""Hypothesis strategies for connected graphs and mixing matrices, and a weight-rule conformance
check users can run on their own rules.

Convention: rho = ||W - 11^T/n||_2, spectral gap = 1 - rho (see :mod:`theorylab.spectral`).

Example
-------
>>> from hypothesis import given, settings
>>> @settings(max_examples=5, deadline=None, derandomize=True)
... @given(connected_graphs(3, 8))
... def test_metropolis(G):
...     check_mixing_rule("metropolis", G)
>>> test_metropolis()
"""

from __future__ import annotations

import networkx as nx
import numpy as np
from hypothesis import strategies as st

from theorylab.errors import TheorylabError, check_int
from theorylab.mixing import RHO_BELOW_ONE, WEIGHT_RULES, check_mixing_matrix
from theorylab.spectral import extreme_eigenvalues

__all__ = [
    "connected_graphs",
    "mixing_matrices",
    "check_mixing_rule",
    "rule_guarantees_rho_below_one",
]


@st.composite
def connected_graphs(draw, min_n=2, max_n=12):
    """Connected undirected graphs on nodes 0..n-1, min_n <= n <= max_n.

    A random spanning tree (node i > 0 attaches to a uniformly drawn earlier node, under a drawn
    permutation) plus a drawn set of extra edges: every connected graph on n labelled nodes has
    positive probability.
    """
    min_n = check_int("min_n", min_n, 2)
    max_n = check_int("max_n", max_n, min_n)
    n = draw(st.integers(min_n, max_n))
    perm = draw(st.permutations(range(n)))
    G = nx.Graph()
    G.add_nodes_from(range(n))
    for i in range(1, n):
        j = draw(st.integers(0, i - 1))
        G.add_edge(perm[i], perm[j])
    pairs = [(i, j) for i in range(n) for j in range(i + 1, n) if not G.has_edge(i, j)]
    if pairs:
        extra = draw(st.lists(st.sampled_from(pairs), max_size=len(pairs), unique=True))
        G.add_edges_from(extra)
    return G


def rule_guarantees_rho_below_one(rule: str, G) -> bool:
    """Whether ``rule`` on the connected graph G provably gives rho < 1.

    metropolis: always (self weights > 0). best-constant: always (alpha* < 2/lambda_1(L)).
    uniform: always on the regular graphs where it is defined (self weight 1/(d+1) > 0).
    max-degree / local-degree: iff G is not bipartite or some self weight is positive; on
    bipartite graphs where every node has zero self weight, -1 is an eigenvalue (rho = 1).
    """
    if rule in RHO_BELOW_ONE or rule == "uniform":
        return True
    if not nx.is_bipartite(G):
        return True
    degs = np.array([d for _, d in G.degree()])
    if rule == "max-degree":
        return bool(degs.min() < degs.max())  # a node of degree < d_max keeps self weight > 0
    # local-degree: self weight of i is 1 - sum_j 1/max(d_i, d_j) = 0 iff every neighbour j has
    # d_j <= d_i; a zero-self-weight bipartite graph has -1 as an eigenvalue.
    for i in G.nodes():
        if any(G.degree(j) > G.degree(i) for j in G.neighbors(i)):
            return True
    return False


@st.composite
def mixing_matrices(draw, rule="metropolis", min_n=2, max_n=12, lazy=None):
    """Dense mixing matrices of ``rule`` (a drawn rule when ``rule`` is None) on connected graphs.

    Regular graphs are not drawn specifically, so 'uniform' draws fall back to the ring or the
    complete graph of the drawn size.
    """
    if rule is None:
        rule = draw(st.sampled_from(sorted(WEIGHT_RULES)))
    if rule not in WEIGHT_RULES:
        raise TheorylabError(f"unknown rule {rule!r}; choose from {sorted(WEIGHT_RULES)}")
    if rule == "uniform":
        n = draw(st.integers(max(min_n, 3), max(max_n, 3)))
        G = draw(st.sampled_from([nx.cycle_graph(n), nx.complete_graph(n)]))
    else:
        G = draw(connected_graphs(min_n, max_n))
    is_lazy = draw(st.booleans()) if lazy is None else bool(lazy)
    import warnings

    from theorylab.mixing import mixing_matrix

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mixing_matrix(G, rule, lazy=is_lazy, sparse=False)


def check_mixing_rule(rule, G, *, atol=1e-10) -> float:
    """Conformance of a weight rule on G; returns rho.

    ``rule`` is a name in :data:`theorylab.mixing.WEIGHT_RULES` or a callable ``rule(G) -> W``.
    Checks (deterministic, no false failures): W is a symmetric doubly stochastic matrix supported
    on G's edges and self-loops; rho = ||W - 11^T/n||_2 <= 1 + atol for rules with nonnegative W;
    rho < 1 whenever :func:`rule_guarantees_rho_below_one` says so (for a callable: whenever W >= 0
    and every self weight is positive, the Metropolis-type guarantee: then -1 is not an
    eigenvalue, and the support is connected).

    Raises
    ------
    TheorylabError
        An unknown rule name, or naming the failed property.
    """
    name = rule if isinstance(rule, str) else getattr(rule, "__name__", "rule")
    if isinstance(rule, str) and rule not in WEIGHT_RULES:
        raise TheorylabError(f"unknown rule {rule!r}; choose from {sorted(WEIGHT_RULES)}")
    fn = WEIGHT_RULES[rule] if isinstance(rule, str) else rule
    W = fn(G)
    W = check_mixing_matrix(W, G, doubly_stochastic=True, symmetric=True, atol=atol)
    Wd = W.toarray() if hasattr(W, "toarray") else W
    s = extreme_eigenvalues(Wd, method="dense")
    nonneg = bool(np.min(Wd) >= -atol)
    if nonneg and s.rho > 1 + 1e-9:
        raise TheorylabError(f"rule {name}: nonnegative W with rho = {s.rho} > 1 is impossible")
    if isinstance(rule, str):
        guaranteed = rule_guarantees_rho_below_one(rule, G)
    else:
        guaranteed = nonneg and float(np.min(np.diag(Wd))) > atol
    if guaranteed and not s.rho < 1 - 1e-12:
        raise TheorylabError(
            f"rule {name} on a connected graph with n = {G.number_of_nodes()} must give rho < 1, "
            f"got rho = {s.rho}"
        )
    return s.rho
