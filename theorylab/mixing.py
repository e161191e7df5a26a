"""Mixing (gossip) matrices: weight rules on a graph, and their validation.

Convention (shared/DESIGN.md): W is n x n, row i holds node i's receive weights,
``x_i <- sum_j W_ij x_j``; W is doubly stochastic unless stated; ``rho = ||W - 11^T/n||_2`` and
``spectral_gap = 1 - rho`` (see :mod:`theorylab.spectral`).

Weight rules (edge {i, j} in E; self weight = 1 - sum of the row's edge weights):

=============== ====================================== =============================================
rule            w_ij                                   guarantee
=============== ====================================== =============================================
metropolis      1 / (1 + max(d_i, d_j))                rho < 1 on every connected graph (self > 0)
local-degree    1 / max(d_i, d_j)                      rho = 1 on bipartite regular graphs
max-degree      1 / d_max                              rho = 1 on bipartite regular graphs
best-constant   alpha* = 2 / (l_1(L) + l_{n-1}(L))     rho = (l_1 - l_{n-1})/(l_1 + l_{n-1}) < 1;
                                                       self weights may be negative
uniform         1 / (d_i + 1) (self 1 / (d_i + 1))     regular graphs only (else not doubly
                                                       stochastic); rho < 1 iff connected
=============== ====================================== =============================================

References
----------
Xiao, Boyd, "Fast linear iterations for distributed averaging", Systems & Control Letters 53,
2004. Xiao, Boyd, Lall, "A scheme for robust distributed sensor fusion based on average
consensus", IPSN 2005 (Metropolis weights). Boyd, Diaconis, Xiao, "Fastest mixing Markov chain on
a graph", SIAM Review 46, 2004.
"""

from __future__ import annotations

import warnings

import networkx as nx
import numpy as np
import scipy.sparse as sp

from theorylab.errors import TheorylabError, TheorylabWarning
from theorylab.stochastic import (
    DENSE_LIMIT,
    check_graph,
    check_mixing_matrix,
    check_world_size,
)

__all__ = [
    "metropolis_weights",
    "max_degree_weights",
    "best_constant_weights",
    "uniform_weights",
    "local_degree_weights",
    "lazy",
    "WEIGHT_RULES",
    "mixing_matrix",
    "check_mixing_matrix",
    "check_world_size",
    "laplacian",
]


# ---------------------------------------------------------------------------- helpers
def _edges_degrees(G):
    G = check_graph(G)
    n = G.number_of_nodes()
    e = np.array(list(G.edges()), dtype=np.int64).reshape(-1, 2)
    deg = np.bincount(e.ravel(), minlength=n).astype(np.float64)
    return G, n, e[:, 0], e[:, 1], deg


def _assemble(n, u, v, w, self_weight=None, sparse=None):
    """Symmetric W with W_uv = W_vu = w and diagonal ``self_weight`` (default: row remainder)."""
    use_sparse = n > DENSE_LIMIT if sparse is None else bool(sparse)
    off = sp.coo_array((np.r_[w, w], (np.r_[u, v], np.r_[v, u])), shape=(n, n)).tocsr()
    if self_weight is None:
        self_weight = 1.0 - np.asarray(off.sum(axis=1)).ravel()
    W = (off + sp.diags_array(np.asarray(self_weight, dtype=np.float64))).tocsr()
    W.sort_indices()
    return W if use_sparse else W.toarray()


def laplacian(G, sparse=None):
    """Graph Laplacian L = D - A of the unweighted graph (dense for n <= 2000 unless ``sparse``)."""
    G, n, u, v, deg = _edges_degrees(G)
    return _assemble(n, u, v, -np.ones(u.size), self_weight=deg, sparse=sparse)


# ---------------------------------------------------------------------------- rules
def metropolis_weights(G, sparse=None):
    """Metropolis (+1) weights: ``w_ij = 1/(1 + max(d_i, d_j))``, self weight the remainder.

    Guarantee: symmetric, doubly stochastic, nonnegative, every self weight >= 1/(1 + d_i) > 0,
    hence rho = ||W - 11^T/n||_2 < 1 on every connected graph (Xiao-Boyd-Lall 2005).

    Parameters
    ----------
    G : networkx.Graph, connected, n >= 2
    sparse : bool, optional
        csr_array when True; dense when False; default dense for n <= 2000.

    Example
    -------
    >>> import networkx as nx
    >>> [round(w, 12) for w in metropolis_weights(nx.cycle_graph(4))[0].tolist()]
    [0.333333333333, 0.333333333333, 0.0, 0.333333333333]
    """
    _, n, u, v, deg = _edges_degrees(G)
    return _assemble(n, u, v, 1.0 / (1.0 + np.maximum(deg[u], deg[v])), sparse=sparse)


def local_degree_weights(G, sparse=None):
    """Local-degree (BDX Metropolis-Hastings chain) weights ``w_ij = 1/max(d_i, d_j)``.

    Symmetric, doubly stochastic, nonnegative; self weight can be 0, and rho = 1 on bipartite
    regular graphs (even rings, hypercubes, even tori) where -1 is an eigenvalue.
    """
    _, n, u, v, deg = _edges_degrees(G)
    return _assemble(n, u, v, 1.0 / np.maximum(deg[u], deg[v]), sparse=sparse)


def max_degree_weights(G, sparse=None):
    """Max-degree weights ``w_ij = 1/d_max``, self weight ``1 - d_i/d_max``.

    Symmetric, doubly stochastic, nonnegative; rho = 1 on bipartite regular graphs.
    """
    _, n, u, v, deg = _edges_degrees(G)
    return _assemble(n, u, v, np.full(u.size, 1.0 / deg.max()), sparse=sparse)


def uniform_weights(G, sparse=None):
    """Uniform-with-self weights ``1/(d_i + 1)`` (BlueFog's default averaging); regular G only.

    On a d-regular connected graph W = (I + A)/(d + 1) is symmetric doubly stochastic with
    self weight 1/(d + 1) > 0, so rho < 1.

    Raises
    ------
    TheorylabError
        G is not regular (W would be only row stochastic): use 'metropolis' instead.
    """
    _, n, u, v, deg = _edges_degrees(G)
    if deg.min() != deg.max():
        i = int(np.argmin(deg))
        j = int(np.argmax(deg))
        raise TheorylabError(
            f"uniform weights 1/(d_i + 1) are doubly stochastic only on regular graphs; node {i} "
            f"has degree {int(deg[i])} and node {j} degree {int(deg[j])}: use rule 'metropolis'"
        )
    d = deg[0]
    return _assemble(
        n,
        u,
        v,
        np.full(u.size, 1.0 / (d + 1)),
        self_weight=np.full(n, 1.0 / (d + 1)),
        sparse=sparse,
    )


def _laplacian_extremes(G) -> tuple[float, float]:
    """(lambda_1, lambda_{n-1}) of the Laplacian: largest and smallest nonzero eigenvalue
    (:func:`theorylab.topology_sparse.laplacian_extremes`)."""
    from theorylab.topology_sparse import laplacian_extremes

    _, n, u, v, deg = _edges_degrees(G)
    return laplacian_extremes(laplacian(G, sparse=True), deg, u, v)


def best_constant_weights(G, sparse=None):
    """Best constant edge weight ``alpha* = 2/(lambda_1(L) + lambda_{n-1}(L))``, W = I - alpha* L.

    Guarantee (tight, Xiao-Boyd 2004): among all W = I - alpha L it minimises rho, with
    ``rho = (lambda_1 - lambda_{n-1})/(lambda_1 + lambda_{n-1})`` (rho = ||W - 11^T/n||_2).
    lambda_1 is the largest and lambda_{n-1} the smallest nonzero Laplacian eigenvalue. Self
    weights ``1 - alpha* d_i`` can be negative at high-degree nodes (W is then not a Markov chain).
    """
    _, n, u, v, deg = _edges_degrees(G)
    lam_max, lam_min = _laplacian_extremes(G)
    alpha = 2.0 / (lam_max + lam_min)
    return _assemble(n, u, v, np.full(u.size, alpha), sparse=sparse)


def lazy(W):
    """Lazy version ``(I + W)/2``: same eigenvectors, eigenvalues (1 + lambda)/2.

    Removes eigenvalues near -1 (bipartite graphs) at the price of a smaller gap near +1.
    """
    if sp.issparse(W):
        n = W.shape[0]
        return ((sp.eye_array(n, format="csr") + sp.csr_array(W)) * 0.5).tocsr()
    W = np.asarray(W, dtype=np.float64)
    if W.ndim != 2 or W.shape[0] != W.shape[1]:
        raise TheorylabError(f"W must be a square matrix, got shape {W.shape}")
    return 0.5 * (np.eye(W.shape[0]) + W)


_lazy = lazy


#: rule name -> function(G, sparse=None) -> W
WEIGHT_RULES = {
    "metropolis": metropolis_weights,
    "max-degree": max_degree_weights,
    "best-constant": best_constant_weights,
    "uniform": uniform_weights,
    "local-degree": local_degree_weights,
}

#: rules whose W has rho < 1 on every connected graph (best-constant: alpha* < 2/lambda_1)
RHO_BELOW_ONE = ("metropolis", "best-constant")


def mixing_matrix(G, rule="metropolis", lazy=False, sparse=None):
    """The mixing matrix of ``rule`` on ``G``, optionally lazy ``(I + W)/2``.

    Parameters
    ----------
    G : networkx.Graph, connected, n >= 2
    rule : one of :data:`WEIGHT_RULES` ('metropolis', 'max-degree', 'best-constant', 'uniform',
        'local-degree')
    lazy : bool
    sparse : bool, optional
        ``scipy.sparse.csr_array`` when True, dense numpy when False; default sparse for n > 2000.

    Returns
    -------
    numpy.ndarray or scipy.sparse.csr_array, float64, n x n, symmetric doubly stochastic.
    Bipartite regular graphs under 'max-degree' / 'local-degree' (rho = 1) emit a TheorylabWarning.

    Raises
    ------
    TypeError
        ``rule`` is not a string, or ``lazy`` is not a bool.
    TheorylabError
        Unknown rule, or an invalid graph (:func:`theorylab.stochastic.check_graph`).

    Example
    -------
    >>> import networkx as nx
    >>> float(mixing_matrix(nx.complete_graph(4))[0, 1])
    0.25
    """
    if not isinstance(rule, str):
        raise TypeError(
            f"rule must be a weight rule name (a string, one of {sorted(WEIGHT_RULES)}), got "
            f"{rule!r} of type {type(rule).__name__}"
        )
    if rule not in WEIGHT_RULES:
        raise TheorylabError(f"unknown weight rule {rule!r}; choose from {sorted(WEIGHT_RULES)}")
    if not isinstance(lazy, (bool, np.bool_)):
        raise TypeError(
            f"lazy must be True or False, got {lazy!r} of type {type(lazy).__name__} "
            "(lazy=True returns (I + W)/2)"
        )
    W = WEIGHT_RULES[rule](G, sparse=sparse)
    if rule in ("max-degree", "local-degree") and not lazy:
        degs = [d for _, d in G.degree()]
        if min(degs) == max(degs) and nx.is_bipartite(G):
            warnings.warn(
                f"rule {rule!r} on a bipartite regular graph has self weight 0 and eigenvalue -1, "
                "so rho = 1 and gossip never converges; use lazy=True or rule 'metropolis'",
                TheorylabWarning,
                stacklevel=2,
            )
    return _lazy(W) if lazy else W
