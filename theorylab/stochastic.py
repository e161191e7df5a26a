"""Stochastic matrices: the one home of mixing-matrix and schedule validation.

The ground floor of the gossip side of theorylab: it imports nothing from theorylab but
:mod:`theorylab.errors`, and :mod:`theorylab.topology`, :mod:`theorylab.mixing`,
:mod:`theorylab.spectral`, the exact predictions and both executors of ``verify`` all validate
and normalise their W here, with the same rules and the same messages.

Convention (shared/DESIGN.md): W is n x n and row ``i`` holds node ``i``'s receive weights,
``x_i <- sum_j W_ij x_j``; ``rho = ||W - 11^T/n||_2`` and ``spectral_gap = 1 - rho``. An algorithm
declares which stochasticity it needs (:data:`STOCHASTICITY`):

========== ======================= ===========================================================
kind       condition               needed by
========== ======================= ===========================================================
row        ``W 1 = 1``             every gossip step ``x <- W x`` (consensus values are
                                   convex combinations); the minimum any executor accepts
column     ``1^T W = 1^T``         push-sum (the sender's weights sum to 1; mass is kept)
doubly     both                    DSGD, gossip averaging, gradient tracking, ... (the average
                                   ``xbar`` is preserved, Xiao-Boyd 2004, Thm 1)
========== ======================= ===========================================================

A time-varying topology is a :class:`Schedule` W^(0), ..., W^(P-1), applied as
``x^(k+1) = W^(k mod P) x^(k)``; :func:`check_schedule` turns a Schedule, a sequence of matrices
or one matrix into the validated list every consumer uses.

References
----------
Xiao, Boyd, "Fast linear iterations for distributed averaging", Systems & Control Letters 53,
2004. Kempe, Dobra, Gehrke, "Gossip-based computation of aggregate information", FOCS 2003
(push-sum, column-stochastic weights).
"""

from __future__ import annotations

from collections.abc import Sequence

import networkx as nx
import numpy as np
import scipy.sparse as sp

from theorylab.errors import TheorylabError, check_int, check_positive

__all__ = [
    "DENSE_LIMIT",
    "STOCHASTICITY",
    "check_stochasticity",
    "check_graph",
    "check_mixing_matrix",
    "check_schedule",
    "check_world_size",
    "Schedule",
    "static",
]

#: above this many nodes, generated mixing matrices are scipy.sparse.csr_array and spectral
#: quantities take the sparse route (method='auto')
DENSE_LIMIT = 2000

#: the stochasticity an algorithm may require of its W (see the module docstring)
STOCHASTICITY = ("row", "column", "doubly")

#: kind -> the kinds that satisfy it (a doubly stochastic W is also row and column stochastic)
_SATISFIES = {"row": ("row", "doubly"), "column": ("column", "doubly"), "doubly": ("doubly",)}


def check_stochasticity(kind) -> str:
    """Return ``kind`` if it is one of :data:`STOCHASTICITY`, else raise naming the choices."""
    if not isinstance(kind, str):
        raise TypeError(
            f"stochasticity must be a string, one of {STOCHASTICITY}, got {kind!r} of type "
            f"{type(kind).__name__}"
        )
    if kind not in STOCHASTICITY:
        raise TheorylabError(f"stochasticity must be one of {STOCHASTICITY}, got {kind!r}")
    return kind


def _resolve_kind(stochasticity, doubly_stochastic) -> str:
    if stochasticity is not None:
        return check_stochasticity(stochasticity)
    if not isinstance(doubly_stochastic, (bool, np.bool_)):
        raise TypeError(
            f"doubly_stochastic must be True or False, got {doubly_stochastic!r} of type "
            f"{type(doubly_stochastic).__name__}"
        )
    return "doubly" if doubly_stochastic else "row"


# ---------------------------------------------------------------------------- graphs
def check_graph(G) -> nx.Graph:
    """Validate a topology and return it with nodes labelled ``0..n-1``.

    Parameters
    ----------
    G : networkx.Graph
        Undirected simple graph (not a DiGraph or MultiGraph), at least 2 nodes, connected, no
        self-loops.

    Returns
    -------
    networkx.Graph
        ``G`` itself when its nodes already are ``0..n-1``; otherwise a relabelled copy (nodes in
        sorted order when sortable, else insertion order).

    Raises
    ------
    TypeError
        ``G`` is not an undirected simple ``networkx.Graph``.
    TheorylabError
        Fewer than 2 nodes, a self-loop, or a disconnected graph.

    Example
    -------
    >>> check_graph(nx.path_graph(["a", "b", "c"])).number_of_nodes()
    3
    """
    if not isinstance(G, nx.Graph) or G.is_directed() or G.is_multigraph():
        raise TypeError(
            f"a topology must be an undirected simple networkx.Graph, got {type(G).__name__}; "
            "convert with networkx.Graph(G) (directed gossip belongs in a Schedule of matrices)"
        )
    n = G.number_of_nodes()
    if n < 2:
        raise TheorylabError(f"a topology needs n >= 2 nodes, got n = {n}")
    loops = list(nx.selfloop_edges(G))
    if loops:
        raise TheorylabError(
            f"the graph has a self-loop at node {loops[0][0]!r}; remove self-loops "
            "(G.remove_edges_from(nx.selfloop_edges(G))): the self weight is set by the weight rule"
        )
    if not nx.is_connected(G):
        comps = nx.number_connected_components(G)
        raise TheorylabError(
            f"the graph is disconnected ({comps} components), so gossip cannot reach consensus; "
            "add edges, or keep the largest component: "
            "G.subgraph(max(nx.connected_components(G), key=len))"
        )
    nodes = list(G.nodes())
    if all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in nodes):
        if sorted(int(v) for v in nodes) == list(range(n)):
            return G
    try:
        order = sorted(nodes)
    except TypeError:
        order = nodes
    return nx.relabel_nodes(G, {v: i for i, v in enumerate(order)}, copy=True)


# ---------------------------------------------------------------------------- matrices
def check_mixing_matrix(
    W,
    graph=None,
    *,
    stochasticity=None,
    doubly_stochastic=True,
    symmetric=False,
    nonnegative=False,
    connected=True,
    atol=1e-10,
):
    """Validate a mixing matrix and return it as float64 (dense ndarray or csr_array).

    Checks: real (a complex W is a TypeError, never silently truncated), square 2-D, n >= 1,
    finite; rows sum to 1 (``W 1 = 1``) for 'row' and 'doubly', columns sum to 1
    (``1^T W = 1^T``, needed for the average to be preserved, Xiao-Boyd Thm 1) for 'column' and
    'doubly'; ``W == W^T`` when ``symmetric``; ``W >= 0`` when ``nonnegative``; ``W_ij == 0`` off
    the edges of ``graph`` (self-loops always allowed); support graph connected when ``connected``.

    Parameters
    ----------
    W : array_like or scipy.sparse matrix
    graph : networkx.Graph, optional (nodes 0..n-1)
    stochasticity : 'row', 'column' or 'doubly', optional
        What the algorithm needs (:data:`STOCHASTICITY`); overrides ``doubly_stochastic``.
    doubly_stochastic : bool
        Shorthand kept for callers: True is 'doubly', False is 'row'.
    symmetric, nonnegative, connected : bool
    atol : float > 0, absolute tolerance of every equality check

    Returns
    -------
    numpy.ndarray or scipy.sparse.csr_array (float64)

    Raises
    ------
    TypeError
        W is not numeric, or is complex.
    TheorylabError
        The first failed check, naming the offending entry / row and the expectation.

    Example
    -------
    >>> check_mixing_matrix([[0.5, 0.5], [0.5, 0.5]]).shape
    (2, 2)
    """
    kind = _resolve_kind(stochasticity, doubly_stochastic)
    atol = check_positive("atol", atol)
    W, data = _as_real_matrix(W)
    if W.ndim != 2 or W.shape[0] != W.shape[1] or W.shape[0] < 1:
        raise TheorylabError(f"W must be a square n x n matrix, got shape {W.shape}")
    n = W.shape[0]
    if not np.all(np.isfinite(data)):
        bad = np.argwhere(~np.isfinite(W.toarray() if sp.issparse(W) else W))[0]
        raise TheorylabError(
            f"W[{bad[0]}, {bad[1]}] is not finite ({float(W[bad[0], bad[1]])!r}); a mixing "
            "matrix must have no non-finite entries"
        )
    if kind in ("row", "doubly"):
        i, total = _worst_sum(W, axis=1)
        if abs(total - 1) > atol:
            raise TheorylabError(
                f"row {i} of W sums to {total!r}, expected 1 (+- {atol:g}): W must be "
                f"{kind}-stochastic, so every node's receive weights sum to 1 (normalise rows: "
                "W / W.sum(axis=1, keepdims=True), or use a weight rule such as Metropolis)"
            )
    if kind in ("column", "doubly"):
        j, total = _worst_sum(W, axis=0)
        if abs(total - 1) > atol:
            raise TheorylabError(
                f"column {j} of W sums to {total!r}, expected 1 (+- {atol:g}): W must be "
                f"{kind}-stochastic"
                + (
                    " to preserve the average (use Metropolis weights, or an algorithm that "
                    "declares row-stochastic W)"
                    if kind == "doubly"
                    else ", so every sender's weights sum to 1 (normalise columns: "
                    "W / W.sum(axis=0, keepdims=True))"
                )
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
                f"W is not symmetric: W[{a}, {b}] = {float(W[a, b])!r} but "
                f"W[{b}, {a}] = {float(W[b, a])!r} "
                f"(tolerance {atol:g}); symmetrise with (W + W.T)/2 or use a symmetric rule"
            )
    if nonnegative:
        mn = data.min() if data.size else 0.0
        if mn < -atol:
            a, b = _argwhere_first(W, lambda x: x < -atol)
            raise TheorylabError(
                f"W[{a}, {b}] = {float(W[a, b])!r} is negative; expected W >= 0 (a Markov chain)"
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
                f"W[{r[k]}, {c[k]}] = {float(Wc.data[mask][k])!r} but ({r[k]}, {c[k]}) is not an "
                "edge of the graph; W must be supported on the graph's edges and self-loops"
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


def _as_real_matrix(W):
    """``(W, values)`` as float64 dense ndarray or summed csr_array; complex W is a TypeError."""
    if sp.issparse(W):
        if W.dtype.kind == "c":
            raise TypeError(
                f"W must be a real matrix, got complex dtype {W.dtype}; a mixing matrix has real "
                "weights (take W.real explicitly if the imaginary part is rounding noise)"
            )
        W = sp.csr_array(W, dtype=np.float64)
        W.sum_duplicates()
        return W, W.data
    try:
        raw = np.asarray(W)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"W must be a numeric matrix: {exc}") from None
    if raw.dtype.kind == "c":
        raise TypeError(
            f"W must be a real matrix, got complex dtype {raw.dtype}; a mixing matrix has real "
            "weights (take W.real explicitly if the imaginary part is rounding noise)"
        )
    if raw.dtype.kind in ("U", "S", "V", "M", "m"):
        raise TypeError(f"W must be a numeric matrix, got dtype {raw.dtype}")
    try:
        W = np.asarray(raw, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"W must be a numeric matrix: {exc}") from None
    return W, W


def _worst_sum(W, axis: int) -> tuple[int, float]:
    """Index and value of the row (``axis=1``) or column (``axis=0``) sum farthest from 1."""
    sums = np.asarray(W.sum(axis=axis)).ravel()
    i = int(np.argmax(np.abs(sums - 1)))
    return i, float(sums[i])


def _argwhere_first(W, pred):
    if sp.issparse(W):
        C = sp.coo_array(W)
        k = int(np.argmax(pred(C.data)))
        return int(C.row[k]), int(C.col[k])
    a, b = np.argwhere(pred(W))[0]
    return int(a), int(b)


# ---------------------------------------------------------------------------- schedules
class Schedule:
    """A time-varying topology: mixing matrices W^(0), ..., W^(P-1), repeated with period P.

    Round k applies ``x^(k+1) = W^(k mod P) x^(k)`` (row i = node i's receive weights), so one
    period multiplies ``W^(P-1) ... W^(0)``; its rate is
    :func:`theorylab.spectral.schedule_rho` = ``||W^(P-1)...W^(0) - 11^T/n||_2^(1/P)``.

    Parameters
    ----------
    matrices : sequence of n x n arrays (numpy or scipy.sparse)
        Each checked by :func:`check_mixing_matrix` with ``stochasticity`` (a round's own support
        need not be connected).
    stochasticity : 'row', 'column' or 'doubly', optional (default from ``doubly_stochastic``)
    doubly_stochastic : bool, shorthand: True is 'doubly' (the default), False is 'row'
    name : str, optional
    atol : float, tolerance of the stochasticity checks.

    Raises
    ------
    TheorylabError
        Empty list, mismatched sizes, a non-stochastic matrix, or a union graph (all edges of one
        period) that is disconnected.

    Example
    -------
    >>> s = Schedule([[[0.5, 0.5], [0.5, 0.5]], [[1.0, 0.0], [0.0, 1.0]]])
    >>> s.period, s.n, s[3] is s[1]
    (2, 2, True)
    """

    def __init__(
        self,
        matrices: Sequence,
        *,
        stochasticity=None,
        doubly_stochastic=True,
        name=None,
        atol=1e-10,
    ):
        kind = _resolve_kind(stochasticity, doubly_stochastic)
        mats = (
            list(matrices)
            if not isinstance(matrices, np.ndarray) or matrices.ndim == 3
            else [matrices]
        )
        if not mats:
            raise TheorylabError("a Schedule needs at least one mixing matrix, got none")
        checked = []
        for k, W in enumerate(mats):
            try:
                checked.append(
                    check_mixing_matrix(W, stochasticity=kind, connected=False, atol=atol)
                )
            except TheorylabError as exc:
                raise TheorylabError(f"schedule round {k}: {exc}") from None
        n = checked[0].shape[0]
        for k, W in enumerate(checked):
            if W.shape[0] != n:
                raise TheorylabError(
                    f"schedule round {k} is {W.shape[0]} x {W.shape[0]}, round 0 is {n} x {n}; "
                    "all rounds must have the same number of nodes"
                )
        self._matrices = tuple(checked)
        self.n = n
        self.stochasticity = kind
        self.doubly_stochastic = kind == "doubly"
        self.atol = float(atol)
        self.name = name
        union = self.union_graph()
        if not nx.is_connected(union):
            raise TheorylabError(
                f"the union graph of one period ({self.period} rounds) is disconnected "
                f"({nx.number_connected_components(union)} components): the schedule can never "
                "reach consensus; add rounds or edges that join the components"
            )

    @property
    def matrices(self) -> tuple:
        """The matrices W^(0), ..., W^(P-1) of one period."""
        return self._matrices

    @property
    def period(self) -> int:
        return len(self._matrices)

    def __len__(self) -> int:
        return self.period

    def __getitem__(self, k):
        k = check_int("round k", k)
        return self._matrices[k % self.period]

    def __iter__(self):
        return iter(self._matrices)

    def __repr__(self) -> str:
        label = f"{self.name!r}, " if self.name else ""
        return f"Schedule({label}n={self.n}, period={self.period})"

    def union_graph(self) -> nx.Graph:
        """Undirected graph with an edge {i, j} when W^(k)_ij != 0 for some round k."""
        G = nx.Graph()
        G.add_nodes_from(range(self.n))
        for W in self._matrices:
            rows, cols = W.nonzero() if sp.issparse(W) else np.nonzero(W)
            G.add_edges_from((int(i), int(j)) for i, j in zip(rows, cols) if i != j)
        return G

    def product(self):
        """Dense ``W^(P-1) ... W^(0)`` (the map of one period). O(P n^3) for dense input."""
        out = None
        for W in self._matrices:
            Wd = W.toarray() if sp.issparse(W) else W
            out = Wd.copy() if out is None else Wd @ out
        return out


def static(W, **kwargs) -> Schedule:
    """A constant schedule W, W, ... (period 1)."""
    return Schedule([W], **kwargs)


def check_schedule(
    schedule, *, n=None, stochasticity="doubly", connected=False, atol=1e-10
) -> list:
    """The validated matrices ``W^(0), ..., W^(P-1)`` of ``schedule``, as a list.

    The one normalisation of "a W or a schedule" used by the theory functions and both
    executors: each matrix is checked by :func:`check_mixing_matrix` with ``stochasticity``.

    Parameters
    ----------
    schedule : Schedule, an object with ``.matrices``, a sequence of n x n matrices (dense or
        scipy.sparse), a 3-D array (one matrix per round), or one 2-D matrix (numpy or sparse)
    n : int, optional
        Required number of nodes (e.g. the problem's n or the world size).
    stochasticity : 'row', 'column' or 'doubly' (default)
        What the consumer needs (:data:`STOCHASTICITY`).
    connected : bool
        Require each round's support to be connected (a Schedule only requires its union graph).
    atol : float > 0

    Returns
    -------
    list of numpy.ndarray or scipy.sparse.csr_array (float64), all n x n, at least one.
    A :class:`Schedule` whose own stochasticity and tolerance already cover the request gives
    its matrices unchanged.

    Raises
    ------
    TypeError
        ``schedule`` is not a matrix or a sequence of matrices, or a matrix is complex.
    TheorylabError
        Empty, sizes differ or differ from ``n``, or a matrix fails the check (the message names
        the round).

    Example
    -------
    >>> [W.shape for W in check_schedule([[[0.5, 0.5], [0.5, 0.5]]])]
    [(2, 2)]
    """
    kind = check_stochasticity(stochasticity)
    if n is not None:
        n = check_int("n", n, 1)
    if (
        isinstance(schedule, Schedule)
        and schedule.stochasticity in _SATISFIES[kind]
        and schedule.atol <= atol
        and not connected
    ):
        mats, checked = list(schedule.matrices), True
    else:
        mats, checked = _as_matrix_list(schedule), False
    if not mats:
        raise TheorylabError("the schedule is empty; it needs at least one mixing matrix")
    out = []
    for k, W in enumerate(mats):
        if not checked:
            try:
                W = check_mixing_matrix(W, stochasticity=kind, connected=connected, atol=atol)
            except TheorylabError as exc:
                raise TheorylabError(f"schedule round {k}: {exc}") from None
            except TypeError as exc:
                raise TypeError(f"schedule round {k}: {exc}") from None
        expected = out[0].shape[0] if out else n
        if expected is not None and W.shape[0] != expected:
            what = "round 0 is" if out else "expected n ="
            raise TheorylabError(
                f"schedule round {k} is {W.shape[0]} x {W.shape[0]} but {what} {expected}; all "
                "rounds must have the same number of nodes as the problem / process group"
            )
        out.append(W)
    return out


def _as_matrix_list(schedule) -> list:
    if isinstance(schedule, Schedule):
        return list(schedule.matrices)
    mats = getattr(schedule, "matrices", schedule)
    if sp.issparse(mats) or (isinstance(mats, np.ndarray) and mats.ndim == 2):
        return [mats]
    if isinstance(mats, np.ndarray) and mats.ndim == 3:
        return list(mats)
    if isinstance(mats, (Sequence, np.ndarray)) and not isinstance(mats, (str, bytes)):
        return list(mats)
    raise TypeError(
        "a schedule must be an n x n matrix, a sequence of them (one per round), or a "
        f"theorylab.stochastic.Schedule, got {type(schedule).__name__}"
    )


def check_world_size(W, world_size):
    """Check that a mixing matrix or :class:`Schedule` has ``world_size`` nodes.

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
