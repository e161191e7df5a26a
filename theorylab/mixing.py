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
import scipy.sparse.linalg as spla

from theorylab.errors import TheorylabError, TheorylabWarning, check_int, check_positive
from theorylab.topology import DENSE_LIMIT, Schedule, check_graph

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
    >>> metropolis_weights(nx.cycle_graph(4))[0].tolist()
    [0.3333333333333333, 0.3333333333333333, 0.0, 0.3333333333333333]
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
    """(lambda_1, lambda_{n-1}) of the Laplacian: largest and smallest nonzero eigenvalue."""
    from theorylab import spectral

    _, n, u, v, deg = _edges_degrees(G)
    if n <= DENSE_LIMIT:
        lam = np.linalg.eigvalsh(laplacian(G, sparse=False))
        return float(lam[-1]), float(lam[1])
    Lap = laplacian(G, sparse=True)
    # W0 = I - L/(2 d_max) is symmetric doubly stochastic with spectrum in [0, 1]:
    # lambda_{n-1}(L) = 2 d_max (1 - lambda_2(W0)), computed as a gap (no cancellation).
    c = 2.0 * deg.max()
    W0 = (sp.eye_array(n, format="csr") - Lap / c).tocsr()
    lam_min = c * spectral.extreme_eigenvalues(W0).gap2
    try:
        top = spla.eigsh(
            Lap,
            k=1,
            which="LA",
            tol=1e-8,
            maxiter=200,
            ncv=min(n, 40),
            v0=np.random.default_rng(0).standard_normal(n),
            return_eigenvectors=False,
        )
        lam_max = float(top[0])
    except spla.ArpackNoConvergence:
        # Anderson-Morley upper bound lambda_1 <= max_{ij in E} (d_i + d_j): a conservative step.
        lam_max = float(np.max(deg[u] + deg[v]))
        warnings.warn(
            "Laplacian lambda_1 did not converge; using the Anderson-Morley bound "
            f"{lam_max:g} (best-constant step slightly conservative)",
            TheorylabWarning,
            stacklevel=3,
        )
    return lam_max, lam_min


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

    Example
    -------
    >>> import networkx as nx
    >>> float(mixing_matrix(nx.complete_graph(4))[0, 1])
    0.25
    """
    if rule not in WEIGHT_RULES:
        raise TheorylabError(f"unknown weight rule {rule!r}; choose from {sorted(WEIGHT_RULES)}")
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


# ---------------------------------------------------------------------------- validation
def check_mixing_matrix(
    W,
    graph=None,
    *,
    doubly_stochastic=True,
    symmetric=False,
    nonnegative=False,
    connected=True,
    atol=1e-10,
):
    """Validate a mixing matrix and return it as float64 (dense ndarray or csr_array).

    Checks: square 2-D, n >= 1, finite; rows sum to 1 (``W 1 = 1``); columns sum to 1 when
    ``doubly_stochastic`` (``1^T W = 1^T``, needed for the average to be preserved, Xiao-Boyd Thm
    1); ``W == W^T`` when ``symmetric``; ``W >= 0`` when ``nonnegative``; ``W_ij == 0`` off the
    edges of ``graph`` (self-loops always allowed); support graph connected when ``connected``.

    Parameters
    ----------
    W : array_like or scipy.sparse matrix
    graph : networkx.Graph, optional (nodes 0..n-1)
    doubly_stochastic, symmetric, nonnegative, connected : bool
    atol : float > 0, absolute tolerance of every equality check

    Returns
    -------
    numpy.ndarray or scipy.sparse.csr_array (float64)

    Raises
    ------
    TypeError
        W is not numeric.
    TheorylabError
        The first failed check, naming the offending entry / row and the expectation.

    Example
    -------
    >>> check_mixing_matrix([[0.5, 0.5], [0.5, 0.5]]).shape
    (2, 2)
    """
    atol = check_positive("atol", atol)
    if sp.issparse(W):
        W = sp.csr_array(W, dtype=np.float64)
        W.sum_duplicates()
        data = W.data
    else:
        try:
            W = np.asarray(W, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"W must be a numeric matrix: {exc}") from None
        data = W
    if W.ndim != 2 or W.shape[0] != W.shape[1] or W.shape[0] < 1:
        raise TheorylabError(f"W must be a square n x n matrix, got shape {W.shape}")
    n = W.shape[0]
    if not np.all(np.isfinite(data)):
        bad = np.argwhere(~np.isfinite(W.toarray() if sp.issparse(W) else W))[0]
        raise TheorylabError(f"W[{bad[0]}, {bad[1]}] is not finite; W must be finite")
    i, total = _worst_sum(W, axis=1)
    if abs(total - 1) > atol:
        raise TheorylabError(
            f"row {i} of W sums to {total!r}, expected 1 (+- {atol:g}): every node's receive "
            "weights must sum to 1 (normalise rows: W / W.sum(axis=1, keepdims=True))"
        )
    if doubly_stochastic:
        j, total = _worst_sum(W, axis=0)
        if abs(total - 1) > atol:
            raise TheorylabError(
                f"column {j} of W sums to {total!r}, expected 1 (+- {atol:g}): W must be "
                "doubly stochastic to preserve the average (use Metropolis weights, or pass "
                "doubly_stochastic=False for push-sum style row-stochastic W)"
            )
    if symmetric:
        D = abs(W - W.T)
        if sp.issparse(D):
            dmax = float(D.max()) if D.nnz else 0.0
        else:
            dmax = float(D.max())
        if dmax > atol:
            if sp.issparse(D):
                Dc = sp.coo_array(D)
                k = int(np.argmax(Dc.data))
                a, b = int(Dc.row[k]), int(Dc.col[k])
            else:
                a, b = (int(x) for x in np.unravel_index(np.argmax(D), D.shape))
            raise TheorylabError(
                f"W is not symmetric: W[{a}, {b}] = {W[a, b]!r} but W[{b}, {a}] = {W[b, a]!r} "
                f"(tolerance {atol:g}); symmetrise with (W + W.T)/2 or use a symmetric rule"
            )
    if nonnegative:
        mn = data.min() if data.size else 0.0
        if mn < -atol:
            a, b = _argwhere_first(W, lambda x: x < -atol)
            raise TheorylabError(
                f"W[{a}, {b}] = {W[a, b]!r} is negative; expected W >= 0 (a Markov chain)"
            )
    if graph is not None:
        graph = check_graph(graph)
        if graph.number_of_nodes() != n:
            raise TheorylabError(
                f"graph has {graph.number_of_nodes()} nodes but W is {n} x {n}; sizes must match"
            )
        allowed = nx.to_scipy_sparse_array(graph, nodelist=range(n), format="csr")
        allowed = (allowed + sp.eye_array(n, format="csr")).astype(bool)
        Wc = sp.coo_array(W)
        mask = np.abs(Wc.data) > atol
        r, c = Wc.row[mask], Wc.col[mask]
        ok = np.asarray(allowed[r, c]).ravel().astype(bool)
        if not ok.all():
            k = int(np.argmin(ok))
            raise TheorylabError(
                f"W[{r[k]}, {c[k]}] = {Wc.data[mask][k]!r} but ({r[k]}, {c[k]}) is not an edge "
                "of the graph; W must be supported on the graph's edges and self-loops"
            )
    if connected and n > 1:
        S = sp.coo_array(W)
        keep = np.abs(S.data) > atol
        adj = sp.coo_array((np.ones(keep.sum()), (S.row[keep], S.col[keep])), shape=(n, n))
        ncomp, labels = sp.csgraph.connected_components(adj, directed=True, connection="weak")
        if ncomp > 1:
            lone = int(np.argmax(labels != labels[0]))
            raise TheorylabError(
                f"the support graph of W is disconnected ({ncomp} components; node {lone} is not "
                "reachable from node 0): consensus is impossible, so rho = 1"
            )
    return W


def _worst_sum(W, axis: int) -> tuple[int, float]:
    """Index and value of the row (``axis=1``) or column (``axis=0``) sum farthest from 1."""
    sums = np.asarray(W.sum(axis=axis)).ravel()
    i = int(np.argmax(np.abs(sums - 1)))
    return i, sums[i]


def _argwhere_first(W, pred):
    if sp.issparse(W):
        C = sp.coo_array(W)
        k = int(np.argmax(pred(C.data)))
        return int(C.row[k]), int(C.col[k])
    a, b = np.argwhere(pred(W))[0]
    return int(a), int(b)


def check_world_size(W, world_size):
    """Check that a mixing matrix or :class:`~theorylab.topology.Schedule` has ``world_size`` nodes.

    Returns ``W`` unchanged. Raises TheorylabError naming both sizes otherwise.
    """
    world_size = check_int("world_size", world_size, 1)
    n = W.n if isinstance(W, Schedule) else (W.shape[0] if hasattr(W, "shape") else len(W))
    if n != world_size:
        raise TheorylabError(
            f"the topology has n = {n} nodes but the process group has world_size = {world_size}; "
            "build the topology with n = world_size"
        )
    return W
