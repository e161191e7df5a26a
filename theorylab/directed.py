r"""Directed graphs, their one-sided (row- or column-stochastic) weights, and the Perron vector.

Convention (as everywhere in theorylab): row ``i`` of a weight matrix holds node ``i``'s
*receive* weights, so ``W_ij != 0`` means that node ``j`` sends to node ``i``; a directed graph
has an edge ``j -> i`` for that. On a directed graph the weights can be normalised on one side
only:

* **column-stochastic** ``P`` (``1^T P = 1^T``, push-sum): node ``j`` splits its value uniformly
  over itself and its out-neighbours, ``P_ij = 1/(outdeg_j + 1)`` for ``j -> i`` or ``i = j``
  (Assran et al. 2019's SGP weights). Only out-degrees are needed, and the sum ``1^T x`` is kept;
* **row-stochastic** ``A`` (``A 1 = 1``, DSGD's ``x_i <- sum_j A_ij x_j``): node ``i`` averages
  itself and its in-neighbours, ``A_ij = 1/(indeg_i + 1)``. Consensus values are kept, the
  average is not.

A row-stochastic, irreducible ``A`` has a unique **left Perron vector** ``pi``
(``pi^T A = pi^T``, ``pi > 0``, ``sum pi = 1``; :func:`perron_vector`). Applying ``pi^T`` to
DSGD's update ``x^{k+1} = A x^k - gamma grad F(x^k)`` gives
``xbar_pi^{k+1} = xbar_pi^k - gamma sum_i pi_i grad f_i(x_i^k)`` with ``xbar_pi = sum_i pi_i x_i``,
so as ``gamma -> 0`` DSGD with such weights converges to the **biased point**
``x_pi* = argmin_x sum_i pi_i f_i(x)`` (:func:`biased_optimum`), not to the minimiser of
``(1/n) sum_i f_i`` unless ``pi = 1/n`` (families.md §5.4). At a finite step the noise-free
fixed point is computed exactly by :func:`dsgd_fixed_point` (a linear solve on quadratics).
Push-sum (``w^{k+1} = P w^k``, ``z = x / w``) removes the bias: ``w`` converges to ``n`` times
the *right* Perron vector of ``P`` (:func:`perron_vector` of ``P.T``), which is what dividing by
``w`` corrects.

Strong connectivity (every node reaches every other along directed edges) is what makes the
Perron vector unique and positive; :func:`check_strongly_connected` raises naming a pair of nodes
that cannot reach each other.

Graph families (``networkx.DiGraph`` with nodes ``0..n-1``): :func:`directed_ring`
(``i -> i + 1``), :func:`directed_exponential` (``i -> i + 2^k mod n``, ``k < ceil(log2 n)``,
Ying et al. 2021's static exponential graph as a directed graph), and :func:`random_directed`
(a directed ring plus seeded random chords: strongly connected, with unequal in-degrees, so its
row-stochastic weights are not doubly stochastic). The first two are circulant, so their
uniform weights are doubly stochastic on either side; the third is not.

References
----------
D. Kempe, A. Dobra, J. Gehrke, "Gossip-based computation of aggregate information", FOCS 2003.
A. Nedic, A. Olshevsky, "Stochastic gradient-push for strongly convex functions on time-varying
directed graphs", IEEE TAC 2016, arXiv:1406.2075.
M. Assran, N. Loizou, N. Ballas, M. Rabbat, "Stochastic gradient push for distributed deep
learning", ICML 2019, arXiv:1811.10792.
R. Xin, C. Xi, U. Khan, "FROST - fast row-stochastic optimization with uncoordinated step-sizes",
EURASIP J. Adv. Signal Process. 2019 (row-stochastic weights and their Perron vector).
"""

from __future__ import annotations

import math

import networkx as nx
import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from theorylab.errors import TheorylabError, check_int, check_positive
from theorylab.problems import QuadraticProblem

__all__ = [
    "directed_ring",
    "directed_exponential",
    "random_directed",
    "check_strongly_connected",
    "column_stochastic_weights",
    "row_stochastic_weights",
    "check_column_stochastic",
    "check_row_stochastic",
    "perron_vector",
    "biased_optimum",
    "dsgd_fixed_point",
]


# ---------------------------------------------------------------------------- families
def _n(n, minimum=2) -> int:
    return check_int("n", n, minimum=minimum)


def directed_ring(n) -> nx.DiGraph:
    """Directed ring ``0 -> 1 -> ... -> n-1 -> 0`` (one out-neighbour each).

    With uniform weights (``1/2`` self, ``1/2`` to the successor) its weight matrix is circulant
    and doubly stochastic, with ``rho = ||W - 11^T/n||_2 = cos(pi/n)`` (topology.md §5).

    Example
    -------
    >>> sorted(directed_ring(3).edges())
    [(0, 1), (1, 2), (2, 0)]
    """
    n = _n(n)
    G = nx.DiGraph(name=f"directed_ring({n})")
    G.add_nodes_from(range(n))
    G.add_edges_from((i, (i + 1) % n) for i in range(n))
    return G


def directed_exponential(n) -> nx.DiGraph:
    """Static exponential graph as a directed graph: ``i -> (i + 2^k) mod n``, ``k < ceil(log2 n)``.

    Every node has ``tau = ceil(log2 n)`` out- and in-neighbours (circulant), so the uniform
    weights ``1/(tau + 1)`` are doubly stochastic; the column-stochastic matrix is the transpose
    of :func:`theorylab.topology.exponential_mixing_matrix` (there ``i`` *receives* from
    ``i + 2^k``). Ying et al. 2021.

    Example
    -------
    >>> sorted(directed_exponential(4).successors(0))
    [1, 2]
    """
    n = _n(n)
    tau = math.ceil(math.log2(n))
    G = nx.DiGraph(name=f"directed_exponential({n})")
    G.add_nodes_from(range(n))
    G.add_edges_from((i, (i + (1 << k)) % n) for i in range(n) for k in range(tau))
    return G


def random_directed(n, extra_out=1, seed=0) -> nx.DiGraph:
    """Directed ring plus ``extra_out`` random out-chords per node (seeded), strongly connected.

    Node ``i`` sends to ``i + 1`` and to ``extra_out`` further nodes drawn uniformly without
    replacement from the others (``numpy.random.default_rng(seed)``). The ring makes it strongly
    connected; the chords make in-degrees unequal, so its row-stochastic weights are not
    column-stochastic and their Perron vector is not uniform (the setting where DSGD is biased).

    Parameters
    ----------
    n : int >= 3
    extra_out : int in [0, n - 2]
    seed : int >= 0

    Example
    -------
    >>> G = random_directed(6, 1, seed=0)
    >>> G.number_of_edges(), nx.is_strongly_connected(G)
    (12, True)
    """
    n = _n(n, 3)
    extra_out = check_int("extra_out", extra_out, minimum=0, maximum=n - 2)
    seed = check_int("seed", seed, minimum=0)
    rng = np.random.default_rng(seed)
    G = nx.DiGraph(name=f"random_directed({n}, {extra_out}, seed={seed})")
    G.add_nodes_from(range(n))
    for i in range(n):
        nxt = (i + 1) % n
        G.add_edge(i, nxt)
        others = np.array([j for j in range(n) if j not in (i, nxt)])
        for j in rng.choice(others, size=extra_out, replace=False):
            G.add_edge(i, int(j))
    return G


# ---------------------------------------------------------------------------- validation
def _support_digraph(G_or_W) -> nx.DiGraph:
    """A DiGraph as given, or the support of a matrix: edge ``j -> i`` when ``W_ij != 0``."""
    if isinstance(G_or_W, nx.Graph):
        if not G_or_W.is_directed():
            G_or_W = G_or_W.to_directed()
        n = G_or_W.number_of_nodes()
        if set(G_or_W.nodes) != set(range(n)):
            raise TheorylabError(f"graph nodes must be 0..{n - 1}, got {sorted(G_or_W.nodes)[:5]}")
        return G_or_W
    W = sp.coo_array(G_or_W) if sp.issparse(G_or_W) else sp.coo_array(np.asarray(G_or_W, float))
    if W.ndim != 2 or W.shape[0] != W.shape[1]:
        raise TheorylabError(f"a weight matrix must be square n x n, got shape {W.shape}")
    G = nx.DiGraph()
    G.add_nodes_from(range(W.shape[0]))
    keep = W.data != 0
    G.add_edges_from(zip(W.col[keep].tolist(), W.row[keep].tolist()))
    return G


def check_strongly_connected(G_or_W) -> nx.DiGraph:
    """Raise unless every node reaches every other along directed edges; return the digraph.

    Parameters
    ----------
    G_or_W : networkx.DiGraph (nodes ``0..n-1``; an undirected graph counts both ways) or an
        ``n x n`` weight matrix (edge ``j -> i`` when ``W_ij != 0``).

    Raises
    ------
    TheorylabError
        Naming a node that cannot be reached from another and the number of strongly connected
        components: push-sum and DSGD need strong connectivity (a unique, positive Perron vector).

    Example
    -------
    >>> check_strongly_connected(directed_ring(4)).number_of_nodes()
    4
    """
    G = _support_digraph(G_or_W)
    n = G.number_of_nodes()
    if n < 1:
        raise TheorylabError("the directed graph has no nodes")
    if n > 1 and not nx.is_strongly_connected(G):
        comps = list(nx.strongly_connected_components(G))
        reach = nx.descendants(G, 0) | {0}
        lost = min(set(range(n)) - reach) if len(reach) < n else None
        if lost is not None:
            where = f"node {lost} cannot be reached from node 0"
        else:
            back = min(v for v in range(n) if 0 not in (nx.descendants(G, v) | {v}))
            where = f"node 0 cannot be reached from node {back}"
        raise TheorylabError(
            f"the directed graph is not strongly connected ({len(comps)} strongly connected "
            f"components; {where}): information cannot flow between all nodes, so neither "
            "consensus nor a unique Perron vector exists; add edges that close the cycle"
        )
    return G


def _one_sided(M, kind: str, atol: float):
    """``M`` validated by :func:`theorylab.stochastic.check_mixing_matrix` (the one home of the
    rules) as ``kind``-stochastic and nonnegative; when the *other* side sums to 1, the error
    says that the orientation was swapped (receive weights given as push weights or back)."""
    from theorylab.stochastic import check_mixing_matrix

    try:
        return check_mixing_matrix(M, stochasticity=kind, nonnegative=True, connected=False,
                                   atol=atol)  # fmt: skip
    except TheorylabError as exc:
        other = "column" if kind == "row" else "row"
        try:
            check_mixing_matrix(M, stochasticity=other, connected=False, atol=atol)
        except (TheorylabError, TypeError):
            raise exc from None
        hint = (
            " Its columns sum to 1: this is a column-stochastic (push-sum) matrix, indexed by "
            "the sender; row-stochastic receive weights were expected here (use push-sum, or "
            "pass the transpose if the orientation is swapped)"
            if kind == "row"
            else " Its rows sum to 1: this is a row-stochastic matrix of receive weights; "
            "push-sum needs the sender's weights, column-stochastic (e.g. "
            "column_stochastic_weights(G), or the transpose if the orientation is swapped)"
        )
        raise TheorylabError(f"{exc}.{hint}") from None


def check_row_stochastic(W, *, atol=1e-10, strongly_connected=False):
    """Validate receive weights ``W`` (rows sum to 1, ``W >= 0``); return it as float64.

    The rules and messages are :func:`theorylab.stochastic.check_mixing_matrix`'s; for a
    column-stochastic matrix the error adds that it is a push matrix (sender's weights): use
    push-sum, or pass its transpose if the orientation was swapped.

    Raises
    ------
    TheorylabError
        Rows not summing to 1 (and noting when the *columns* do, i.e. a column-stochastic
        matrix), a negative entry, or (``strongly_connected``) a support that is not strongly
        connected.

    Example
    -------
    >>> check_row_stochastic([[0.5, 0.5], [0.0, 1.0]]).shape
    (2, 2)
    """
    W = _one_sided(W, "row", check_positive("atol", atol))
    if strongly_connected:
        check_strongly_connected(W)
    return W


def check_column_stochastic(P, *, atol=1e-10, strongly_connected=False):
    """Validate push weights ``P`` (columns sum to 1, ``P >= 0``); return it as float64.

    ``P_ij`` is the share node ``j`` sends to node ``i``; ``1^T P = 1^T`` keeps the sum of the
    pushed values. Rules and messages as :func:`check_row_stochastic`, with the sides swapped
    (a row-stochastic matrix is named as receive weights).

    Raises
    ------
    TheorylabError
        Columns not summing to 1 (noting when the rows do, i.e. a row-stochastic matrix), a
        negative entry, or (``strongly_connected``) a support that is not strongly connected.

    Example
    -------
    >>> check_column_stochastic([[0.5, 0.0], [0.5, 1.0]]).shape
    (2, 2)
    """
    P = _one_sided(P, "column", check_positive("atol", atol))
    if strongly_connected:
        check_strongly_connected(P)
    return P


# ---------------------------------------------------------------------------- weights
def _degrees_and_edges(G: nx.DiGraph):
    n = G.number_of_nodes()
    src = np.array([u for u, v in G.edges() if u != v], dtype=np.int64)
    dst = np.array([v for u, v in G.edges() if u != v], dtype=np.int64)
    return n, src, dst


def column_stochastic_weights(G, *, sparse=None):
    """Push weights: ``P_ij = 1/(outdeg_j + 1)`` for ``j -> i`` and ``i = j`` (uniform over the
    sender and its out-neighbours; Assran et al. 2019). Columns sum to 1.

    Parameters
    ----------
    G : networkx.DiGraph, nodes ``0..n-1``, strongly connected (checked).
    sparse : bool, optional; default sparse when ``n > 2000``.

    Returns
    -------
    numpy.ndarray or scipy.sparse.csr_array, ``n x n`` float64.

    Example
    -------
    >>> column_stochastic_weights(directed_ring(3))
    array([[0.5, 0. , 0.5],
           [0.5, 0.5, 0. ],
           [0. , 0.5, 0.5]])
    """
    G = check_strongly_connected(G)
    n, src, dst = _degrees_and_edges(G)
    outdeg = np.bincount(src, minlength=n)
    vals = 1.0 / (outdeg + 1.0)
    rows = np.r_[np.arange(n), dst]
    cols = np.r_[np.arange(n), src]
    return _output(rows, cols, vals[cols], n, sparse)


def row_stochastic_weights(G, *, sparse=None):
    """Receive weights: ``A_ij = 1/(indeg_i + 1)`` for ``j -> i`` and ``i = j`` (uniform over the
    receiver and its in-neighbours). Rows sum to 1.

    Parameters, Returns: as :func:`column_stochastic_weights`.

    Example
    -------
    >>> row_stochastic_weights(directed_ring(3))
    array([[0.5, 0. , 0.5],
           [0.5, 0.5, 0. ],
           [0. , 0.5, 0.5]])
    """
    G = check_strongly_connected(G)
    n, src, dst = _degrees_and_edges(G)
    indeg = np.bincount(dst, minlength=n)
    vals = 1.0 / (indeg + 1.0)
    rows = np.r_[np.arange(n), dst]
    cols = np.r_[np.arange(n), src]
    return _output(rows, cols, vals[rows], n, sparse)


def _output(rows, cols, vals, n, sparse):
    M = sp.coo_array((vals, (rows, cols)), shape=(n, n)).tocsr()
    M.sum_duplicates()
    use_sparse = n > 2000 if sparse is None else bool(sparse)
    return M if use_sparse else M.toarray()


# ---------------------------------------------------------------------------- Perron vector
def perron_vector(W, *, atol=1e-10) -> np.ndarray:
    r"""Left Perron vector of a row-stochastic ``W``: ``pi^T W = pi^T``, ``pi > 0``, ``sum pi = 1``.

    The stationary weights of the Markov chain ``W``; DSGD with weights ``W`` converges (as
    ``gamma -> 0``) to ``argmin sum_i pi_i f_i`` (module docstring). For a column-stochastic
    push matrix ``P``, ``perron_vector(P.T)`` is its right Perron vector, the limit of
    ``w^k / n`` in push-sum. Computed by one linear solve,
    ``(I - W^T + 1 1^T) pi = 1``, nonsingular for an irreducible ``W`` (then the solution has
    ``1^T pi = 1`` and ``W^T pi = pi``); sparse input stays sparse.

    Guarantee: exact up to the linear solve's rounding (tested against the power method and
    against ``pi = 1/n`` for doubly stochastic ``W``).

    Parameters
    ----------
    W : (n, n) row-stochastic array or sparse matrix with a strongly connected support.
    atol : float, tolerance of the row-sum check.

    Returns
    -------
    numpy.ndarray (n,), positive, summing to 1.

    Raises
    ------
    TheorylabError
        ``W`` not row-stochastic (a column-stochastic ``W`` is named as such) or its support not
        strongly connected.

    Example
    -------
    >>> perron_vector(np.array([[0.5, 0.5], [0.25, 0.75]])).round(6).tolist()
    [0.333333, 0.666667]
    """
    W = check_row_stochastic(W, atol=atol, strongly_connected=True)
    n = W.shape[0]
    if sp.issparse(W):
        M = sp.eye_array(n, format="csc") - sp.csc_array(W.T) + sp.csc_array(np.ones((n, n)))
        pi = spla.spsolve(M, np.ones(n)) if n <= 2000 else _power(W)
    else:
        pi = np.linalg.solve(np.eye(n) - W.T + np.ones((n, n)), np.ones(n))
    pi = np.asarray(pi, dtype=np.float64)
    return pi / pi.sum()


def _power(W, iters=100000, tol=1e-15) -> np.ndarray:
    """Lazy power iteration ``pi <- (pi + W^T pi)/2`` (converges for any irreducible W)."""
    n = W.shape[0]
    pi = np.full(n, 1.0 / n)
    WT = sp.csr_array(W.T)
    for _ in range(iters):
        new = 0.5 * (pi + WT @ pi)
        if np.abs(new - pi).max() < tol:
            return new
        pi = new
    return pi


# ---------------------------------------------------------------------------- bias of DSGD
def _quadratic(problem) -> QuadraticProblem:
    if not isinstance(problem, QuadraticProblem):
        raise TypeError(
            f"problem must be a theorylab.problems.QuadraticProblem, got {type(problem).__name__}"
        )
    return problem


def biased_optimum(problem: QuadraticProblem, W) -> np.ndarray:
    r"""``x_pi* = argmin_x sum_i pi_i f_i(x)``: where DSGD with row-stochastic ``W`` converges as
    ``gamma -> 0`` (``pi`` = :func:`perron_vector` of ``W``).

    On quadratics ``f_i(x) = 1/2 (x - b_i)^T A_i (x - b_i)``:
    ``x_pi* = (sum_i pi_i A_i)^{-1} sum_i pi_i A_i b_i``. Equals ``problem.x_star`` when ``W`` is
    doubly stochastic (``pi = 1/n``). Guarantee: exact (a linear solve).

    Example
    -------
    >>> from theorylab.problems import QuadraticProblem
    >>> p = QuadraticProblem(np.ones((2, 1)), np.array([[0.0], [3.0]]), sigma2=0.0)
    >>> float(biased_optimum(p, np.array([[0.5, 0.5], [0.25, 0.75]]))[0])  # pi = (1/3, 2/3)
    2.0
    """
    problem = _quadratic(problem)
    pi = perron_vector(W)
    if pi.shape[0] != problem.n:
        raise TheorylabError(
            f"W is {pi.shape[0]} x {pi.shape[0]} but the problem has n = {problem.n}"
        )
    H = np.einsum("i,ijk->jk", pi, problem.A)
    return np.linalg.solve(H, np.einsum("i,ijk,ik->j", pi, problem.A, problem.b))


def dsgd_fixed_point(problem: QuadraticProblem, W, gamma: float, form: str = "atc") -> np.ndarray:
    r"""The noise-free fixed point ``x^oo`` (``(n, d)``) of DSGD with a static row-stochastic ``W``.

    ATC: ``x = W (x - gamma A (x - b))``; CTA: ``x = W x - gamma A (x - b)`` (``A`` block-diagonal
    of the ``A_i``), solved as one ``n d`` linear system. This is where DSGD with ``sigma2 = 0``
    converges when it converges (``gamma`` below its stability limit); with a doubly stochastic
    ``W`` its average is ``x* + O(gamma)``, with a row-stochastic one it tends to
    :func:`biased_optimum` as ``gamma -> 0``. Guarantee: exact (a linear solve, ``O((n d)^3)``).

    Raises
    ------
    TheorylabError
        ``W`` not row-stochastic or not strongly connected, ``gamma <= 0``, unknown ``form``, or
        a singular system (``gamma`` at a resonance).

    Example
    -------
    >>> from theorylab.problems import QuadraticProblem
    >>> p = QuadraticProblem(np.ones((2, 1)), np.array([[0.0], [3.0]]), sigma2=0.0)
    >>> dsgd_fixed_point(p, np.full((2, 2), 0.5), 0.5).ravel().tolist()  # W = J: exact average
    [1.5, 1.5]
    """
    problem = _quadratic(problem)
    W = check_row_stochastic(W, strongly_connected=True)
    W = W.toarray() if sp.issparse(W) else W
    gamma = check_positive("gamma", gamma)
    if form not in ("atc", "cta"):
        raise TheorylabError(f"form must be 'atc' or 'cta', got {form!r}")
    n, d = problem.n, problem.d
    if W.shape[0] != n:
        raise TheorylabError(f"W is {W.shape[0]} x {W.shape[0]} but the problem has n = {n}")
    A = np.zeros((n * d, n * d))
    for i in range(n):
        A[i * d : (i + 1) * d, i * d : (i + 1) * d] = problem.A[i]
    Ab = np.einsum("ijk,ik->ij", problem.A, problem.b).ravel()
    Wk = np.kron(W, np.eye(d))
    eye = np.eye(n * d)
    if form == "atc":
        lhs, rhs = eye - Wk @ (eye - gamma * A), -gamma * Wk @ (-Ab)
    else:
        lhs, rhs = eye - Wk + gamma * A, gamma * Ab
    try:
        x = np.linalg.solve(lhs, rhs)
    except np.linalg.LinAlgError:
        raise TheorylabError(
            f"DSGD's fixed-point system is singular at gamma={gamma}; change gamma"
        ) from None
    return x.reshape(n, d)
