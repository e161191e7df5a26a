"""Graph families as edge arrays and their sparse mixing matrices, without networkx (large n).

:mod:`theorylab.topology` returns ``networkx.Graph`` objects, the package's topology currency;
filling one costs ~1 us per edge in Python, seconds at n = 1e5. This module builds the same
graphs as arrays: :func:`family_edges` gives an :class:`Edges` (``u < v``, sorted, no
duplicates) for every family of :data:`theorylab.topology.FAMILIES`, and
:func:`sparse_mixing_matrix` the weight rules of :mod:`theorylab.mixing` on it as a
``scipy.sparse.csr_array``. ``theorylab topology`` runs on these; every family has the **same
edge set** as its networkx builder for the same arguments and seed (tested), including the
random ones:

* ``random-regular``: networkx's pairing model (``random_regular_graph``) replayed on the same
  ``random.Random(seed)`` stream (the same shuffles), its pair acceptance vectorised;
* ``erdos-renyi``: networkx's geometric skipping (``fast_gnp_random_graph``, Batagelj-Brandes
  2005) for p < 0.1, and ``gnp_random_graph``'s one draw per pair otherwise, with numpy's
  MT19937 put in the state of ``random.Random(seed)`` (both turn two 32-bit words into one double
  the same way, so the uniforms are bit-identical); the skips use ``math.log`` wherever numpy's
  ``log`` could round to the other side of an integer;
* ``random-geometric``: the points of ``random.Random(seed)`` (x then y per node) and a k-d tree.

Conventions (shared/DESIGN.md): row i of W is node i's receive weights; ``rho = ||W -
11^T/n||_2``, ``spectral_gap = 1 - rho``. ``one-peer-exponential`` is a schedule, not a static
graph: :func:`one_peer_exponential_matrices` gives its rounds.

Example
-------
>>> e = family_edges("ring", 5)
>>> e.n, len(e), e.degrees().tolist()
(5, 5, [2, 2, 2, 2, 2])
>>> W = sparse_mixing_matrix(e, "metropolis")
>>> float(W[0, 1])
0.3333333333333333

References
----------
Batagelj, Brandes, "Efficient generation of large random networks", Phys. Rev. E 71, 036113,
2005. Steger, Wormald, "Generating random regular graphs quickly", Combinatorics, Probability
and Computing 8, 1999. Penrose, "The longest edge of the random minimal spanning tree", Ann.
Appl. Probab. 7(2), 1997 (connectivity radius). Xiao, Boyd, "Fast linear iterations for
distributed averaging", 2004 (weight rules).
"""

from __future__ import annotations

import math
import random
import warnings
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from theorylab.errors import (
    TheorylabError,
    TheorylabWarning,
    check_int,
    check_positive,
    check_probability,
)

__all__ = [
    "FAMILY_NAMES",
    "RULE_NAMES",
    "Edges",
    "family_edges",
    "sparse_mixing_matrix",
    "complete_mixing_coefficient",
    "one_peer_exponential_matrices",
    "lazy_csr",
    "connectivity_radius",
    "square_shape",
]

#: The families of :data:`theorylab.topology.FAMILIES` (names only: no networkx import).
FAMILY_NAMES = (
    "ring",
    "path",
    "star",
    "complete",
    "grid",
    "torus",
    "hypercube",
    "exponential",
    "one-peer-exponential",
    "random-regular",
    "erdos-renyi",
    "random-geometric",
)

#: The rules of :data:`theorylab.mixing.WEIGHT_RULES` (names only).
RULE_NAMES = ("metropolis", "max-degree", "best-constant", "uniform", "local-degree")


# ---------------------------------------------------------------------------- helpers
def _check_n(n, minimum=2, family="topology") -> int:
    n = check_int("n", n)
    if n < minimum:
        raise TheorylabError(f"{family} needs n >= {minimum} nodes, got n = {n}")
    return n


def _is_power_of_two(n: int) -> bool:
    return n >= 1 and (n & (n - 1)) == 0


def _ceil_log2(n: int) -> int:
    """Exact integer ceil(log2 n) for n >= 1 (no floating-point logarithms)."""
    return (n - 1).bit_length()


def _derived_seed(seed: int, attempt: int) -> int:
    """Seed of resampling attempt ``attempt`` (0 uses ``seed`` itself)."""
    if attempt == 0:
        return seed
    return int(np.random.SeedSequence([seed, attempt]).generate_state(1)[0])


def square_shape(n) -> tuple[int, int]:
    """The most square factorisation ``rows x cols = n`` with rows <= cols."""
    n = _check_n(n, 2)
    rows = math.isqrt(n)
    while n % rows:
        rows -= 1
    return rows, n // rows


def connectivity_radius(n) -> float:
    """Default radius of a random geometric graph on n points: ``sqrt(2 ln n / (pi n))``.

    n uniform points in the unit square, linked within r: with ``pi n r^2 = ln n + c`` the graph
    is connected with probability -> ``exp(-e^{-c})`` (Penrose 1997: the longest edge of the
    minimal spanning tree, d = 2, boundary effects negligible). ``c = ln n`` (twice the area of
    the threshold ``sqrt(ln n / (pi n))``) makes a disconnected draw asymptotically as rare as
    ``1/n``; the radius is sqrt(2) times the threshold (n = 1e5: 0.00856, mean degree ~23).

    Example
    -------
    >>> round(connectivity_radius(100000), 5)
    0.00856
    """
    n = _check_n(n, 2, "a random geometric graph")
    return math.sqrt(2.0 * math.log(n) / (math.pi * n))


def _numpy_twin(rng: random.Random) -> np.random.RandomState:
    """A numpy MT19937 in the state of ``rng``: ``random_sample`` then gives ``rng.random()``'s
    doubles bit for bit (both use genrand_res53). ``rng`` itself is not advanced."""
    state = rng.getstate()[1]
    twin = np.random.RandomState()
    twin.set_state(("MT19937", np.array(state[:624], dtype=np.uint32), state[624]))
    return twin


# ---------------------------------------------------------------------------- the edge set
@dataclass(frozen=True)
class Edges:
    """An undirected simple graph on nodes ``0..n-1`` as two int64 arrays.

    ``u[k] < v[k]`` is edge k; edges sorted by ``(u, v)``, no duplicates, no self-loops.
    ``pos`` holds the node coordinates of a random geometric graph (else None).
    """

    n: int
    u: np.ndarray
    v: np.ndarray
    pos: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.u.size)

    def degrees(self) -> np.ndarray:
        """Degree of every node, int64 (n,)."""
        return np.bincount(self.u, minlength=self.n) + np.bincount(self.v, minlength=self.n)

    def adjacency(self) -> sp.csr_array:
        """Symmetric 0/1 adjacency matrix (float64 csr_array, sorted indices)."""
        return _symmetric_csr(self.n, self.u, self.v, np.ones(len(self)), None)

    def _components(self, rows, cols, size) -> int:
        from scipy.sparse.csgraph import connected_components

        A = sp.csr_array((np.ones(rows.size, dtype=np.int8), (rows, cols)), shape=(size, size))
        return connected_components(A, directed=True, connection="weak", return_labels=False)

    def is_connected(self) -> bool:
        return self.n >= 2 and self._components(self.u, self.v, self.n) == 1

    def is_bipartite(self) -> bool:
        """Two-colourable: the bipartite double cover (nodes (i, side), edges (u, 0)-(v, 1) and
        (u, 1)-(v, 0)) has twice as many components as the graph exactly then."""
        n = self.n
        cover = self._components(np.r_[self.u, self.u + n], np.r_[self.v + n, self.v], 2 * n)
        return cover == 2 * self._components(self.u, self.v, n)

    def to_networkx(self):
        """The same graph as a ``networkx.Graph`` (nodes 0..n-1 in order; ``pos`` attributes)."""
        import networkx as nx

        G = nx.Graph()
        if self.pos is None:
            G.add_nodes_from(range(self.n))
        else:
            G.add_nodes_from(zip(range(self.n), ({"pos": p} for p in self.pos.tolist())))
        # add_edges_from's per-edge get/update costs 2x this: fill the adjacency directly (one
        # empty data dict per edge, shared by both directions, as networkx stores it)
        adj = G._adj
        for a, b in zip(self.u.tolist(), self.v.tolist()):
            adj[a][b] = adj[b][a] = {}
        return G


def _edges(n: int, a, b, pos=None, *, unique=True) -> Edges:
    """Canonical Edges from endpoint arrays (any order; self-loops dropped)."""
    a = np.asarray(a, dtype=np.int64).ravel()
    b = np.asarray(b, dtype=np.int64).ravel()
    keep = a != b
    a, b = a[keep], b[keep]
    u, v = np.minimum(a, b), np.maximum(a, b)
    key = np.sort(u * np.int64(n) + v)
    if unique and key.size:  # sort + neighbour test: numpy 2's hash-based np.unique is 10x slower
        key = key[np.r_[True, key[1:] != key[:-1]]]
    return Edges(n, key // n, key % n, pos)


def _sorted_unique(key: np.ndarray) -> np.ndarray:
    key = np.sort(key)
    return key[np.r_[True, key[1:] != key[:-1]]] if key.size else key


# ---------------------------------------------------------------------------- deterministic
def _ring(n):
    n = _check_n(n, 3, "a ring")
    i = np.arange(n)
    return _edges(n, i, (i + 1) % n)


def _path(n):
    n = _check_n(n, 2, "a path")
    i = np.arange(n - 1)
    return Edges(n, i, i + 1)


def _star(n):
    n = _check_n(n, 2, "a star")
    return Edges(n, np.zeros(n - 1, dtype=np.int64), np.arange(1, n, dtype=np.int64))


def _complete(n):
    n = _check_n(n, 2, "a complete graph")
    if n * (n - 1) // 2 > 50_000_000:
        raise TheorylabError(
            f"the complete graph on n = {n} nodes has {n * (n - 1) // 2} edges, too many to "
            "store; its mixing matrices are a I + (1 - a) 11^T/n "
            "(complete_mixing_coefficient gives a, and rho = |a|)"
        )
    u, v = np.triu_indices(n, 1)
    return Edges(n, u.astype(np.int64), v.astype(np.int64))


def _grid(rows, cols):
    rows = check_int("rows", rows, 1)
    cols = check_int("cols", cols, 1)
    if rows * cols < 2:
        raise TheorylabError(f"a grid needs rows * cols >= 2, got {rows} x {cols}")
    idx = np.arange(rows * cols).reshape(rows, cols)
    a = np.r_[idx[:, :-1].ravel(), idx[:-1, :].ravel()]
    b = np.r_[idx[:, 1:].ravel(), idx[1:, :].ravel()]
    return _edges(rows * cols, a, b)


def _torus(rows, cols):
    rows = check_int("rows", rows)
    cols = check_int("cols", cols)
    if rows < 3 or cols < 3:
        raise TheorylabError(
            f"a torus needs rows, cols >= 3 (smaller sides give duplicate edges), got "
            f"{rows} x {cols}; use grid2d or ring instead"
        )
    idx = np.arange(rows * cols).reshape(rows, cols)
    a = np.r_[idx.ravel(), idx.ravel()]
    b = np.r_[np.roll(idx, -1, axis=1).ravel(), np.roll(idx, -1, axis=0).ravel()]
    return _edges(rows * cols, a, b)


def _hypercube(n):
    n = _check_n(n, 2, "a hypercube")
    if not _is_power_of_two(n):
        raise TheorylabError(
            f"a hypercube needs n a power of 2, got n = {n}; nearest: "
            f"{1 << (n.bit_length() - 1)} or {1 << n.bit_length()}"
        )
    d = n.bit_length() - 1
    i = np.arange(n)
    a = np.concatenate([i] * d)
    b = np.concatenate([i ^ (1 << k) for k in range(d)])
    keep = a < b
    return _edges(n, a[keep], b[keep])


def _exponential(n):
    n = _check_n(n, 2, "an exponential graph")
    i = np.arange(n)
    offsets = [1 << k for k in range(_ceil_log2(n))]
    a = np.concatenate([i] * len(offsets))
    b = np.concatenate([(i + o) % n for o in offsets])
    return _edges(n, a, b)


# ---------------------------------------------------------------------------- random
def _sample_connected(make, seed, max_tries, what: str, fix: str) -> Edges:
    seed = check_int("seed", seed, 0)
    max_tries = check_int("max_tries", max_tries, 1)
    for attempt in range(max_tries):
        e = make(_derived_seed(seed, attempt))
        if e.is_connected():
            return e
    raise TheorylabError(
        f"{what} with seed={seed} was disconnected in all {max_tries} tries; {fix}, "
        "or allow resampling with max_tries > 1"
    )


def _regular_pairing(n: int, d: int, seed: int) -> Edges:
    """networkx's ``random_regular_graph(d, n, seed)`` (pairing model with restarts of the
    rejected stubs), replayed on the same ``random.Random(seed)`` stream.

    Each round shuffles the remaining stubs (``random.shuffle``, the same calls) and pairs them
    consecutively; a pair is kept unless it is a loop or repeats an edge kept earlier (in an
    earlier round or earlier in this round). The rejected pairs' endpoints, in order, are the
    next round's stubs; a round whose stubs can form no new edge restarts from scratch.
    """
    rng = random.Random(seed)
    nn = np.int64(n)
    while True:  # _try_creation
        keys = np.empty(0, dtype=np.int64)  # kept edges u * n + v, sorted
        stubs = list(range(n)) * d
        ok = True
        while stubs:
            rng.shuffle(stubs)
            s = np.array(stubs, dtype=np.int64).reshape(-1, 2)
            s1, s2 = s.min(axis=1), s.max(axis=1)
            key = s1 * nn + s2
            first = np.zeros(key.size, dtype=bool)
            first[np.unique(key, return_index=True)[1]] = True  # (few stubs after round 1)
            seen = np.isin(key, keys) if keys.size else np.zeros(key.size, dtype=bool)
            accept = (s1 != s2) & first & ~seen
            keys = _sorted_unique(np.r_[keys, key[accept]])
            rejected = np.stack([s1[~accept], s2[~accept]], axis=1).ravel().tolist()
            potential: dict[int, int] = {}
            for node in rejected:  # insertion order as networkx's defaultdict
                potential[node] = potential.get(node, 0) + 1
            if potential and not _pairable(potential, keys, nn):
                ok = False
                break
            stubs = [node for node, count in potential.items() for _ in range(count)]
        if ok:
            return Edges(n, keys // nn, keys % nn)


def _pairable(potential: dict, keys: np.ndarray, nn) -> bool:
    """networkx's ``_suitable``, statement for statement (its inner loop swaps ``s1`` and ``s2``
    in place, so later comparisons of the same row use the swapped ``s1``: replayed as is, since
    the answer decides when the sampler restarts)."""
    nodes = list(potential)
    for s1 in nodes:
        for s2 in nodes:
            if s1 == s2:
                break
            if s1 > s2:
                s1, s2 = s2, s1  # as networkx does
            k = s1 * nn + s2
            j = int(np.searchsorted(keys, k))
            if j >= keys.size or keys[j] != k:
                return True
    return False


def _gnp(n: int, p: float, seed: int) -> Edges:
    """networkx's G(n, p) for ``seed``: ``fast_gnp_random_graph`` for p < 0.1 (as
    :func:`theorylab.topology.erdos_renyi` calls it), else ``gnp_random_graph``."""
    twin = _numpy_twin(random.Random(seed))
    total = n * (n - 1) // 2
    if p >= 0.1:
        # gnp_random_graph: one draw per pair in itertools.combinations order, edge if < p
        # (p == 1: networkx returns the complete graph without drawing)
        if p >= 1:
            return _complete(n)
        if total > 50_000_000:
            raise TheorylabError(
                f"erdos-renyi with n = {n} and p = {p} has ~{int(p * total)} edges, too many"
            )
        hit = np.flatnonzero(twin.random_sample(total) < p)
        return _from_linear_upper(n, hit)
    # fast_gnp_random_graph: index l = v (v - 1)/2 + w (w < v) advances by 1 + int(lr / lp),
    # lr = log(1 - r), one draw per step; the edge (v, w) is kept while l < n (n - 1)/2
    lp = math.log(1.0 - p)
    chunk = int(p * total * 1.05) + 1024
    idx = np.empty(0, dtype=np.int64)
    last = -1
    while True:
        r = twin.random_sample(chunk)
        one_minus = 1.0 - r
        q = np.log(one_minus) / lp
        # numpy's log may differ from math.log in the last ulp: redo the ones near an integer
        near = np.flatnonzero(np.abs(q - np.rint(q)) <= 1e-9 * np.maximum(q, 1.0))
        for k in near.tolist():
            q[k] = math.log(one_minus[k]) / lp
        step = 1 + q.astype(np.int64)
        pos = last + np.cumsum(step)
        done = pos >= total
        if done.any():
            idx = np.concatenate([idx, pos[: int(np.argmax(done))]])
            break
        idx = np.concatenate([idx, pos])
        last = int(pos[-1])
    return _from_lower_linear(n, idx)


def _from_lower_linear(n: int, idx: np.ndarray) -> Edges:
    """Edges (w, v), w < v, from lower-triangle indices ``l = v (v - 1)/2 + w``."""
    v = ((1 + np.sqrt(1 + 8 * idx.astype(np.float64))) // 2).astype(np.int64)
    # exact integer correction of the floating-point square root
    v -= (v * (v - 1) // 2) > idx
    v += ((v + 1) * v // 2) <= idx
    w = idx - v * (v - 1) // 2
    return _edges(n, w, v)


def _from_linear_upper(n: int, hit: np.ndarray) -> Edges:
    """Edges from positions in ``itertools.combinations(range(n), 2)`` order."""
    u, v = np.triu_indices(n, 1)
    return _edges(n, u[hit], v[hit])


def _geometric(n: int, radius: float, seed: int) -> Edges:
    """networkx's ``random_geometric_graph(n, radius, seed)``: its points (x then y per node
    from ``random.Random(seed)``), pairs within ``radius`` from a k-d tree."""
    from scipy.spatial import cKDTree

    pos = _numpy_twin(random.Random(seed)).random_sample(2 * n).reshape(n, 2)
    pairs = cKDTree(pos).query_pairs(radius, p=2.0, output_type="ndarray")
    return _edges(n, pairs[:, 0], pairs[:, 1], pos)


def _random_regular(n, degree, seed=0, max_tries=1):
    n = _check_n(n, 2, "a random regular graph")
    degree = check_int("degree", degree, 1)
    if degree >= n or (n * degree) % 2:
        raise TheorylabError(
            f"a {degree}-regular graph on {n} nodes needs degree < n and n * degree even"
        )
    return _sample_connected(
        lambda s: _regular_pairing(n, degree, s),
        seed,
        max_tries,
        f"random_regular(n={n}, degree={degree})",
        "use degree >= 3",
    )


def _erdos_renyi(n, p, seed=0, max_tries=1):
    n = _check_n(n, 2, "an Erdos-Renyi graph")
    p = check_probability("p", p)
    return _sample_connected(
        lambda s: _gnp(n, p, s),
        seed,
        max_tries,
        f"erdos_renyi(n={n}, p={p})",
        f"use a larger p (connectivity threshold ln(n)/n = {math.log(n) / n:.3g})",
    )


def _random_geometric(n, radius=None, seed=0, max_tries=1):
    n = _check_n(n, 2, "a random geometric graph")
    radius = connectivity_radius(n) if radius is None else check_positive("radius", radius)
    threshold = math.sqrt(math.log(n) / (math.pi * n))
    return _sample_connected(
        lambda s: _geometric(n, radius, s),
        seed,
        max_tries,
        f"random_geometric(n={n}, radius={radius})",
        f"use a larger radius (connectivity threshold sqrt(ln n / (pi n)) = {threshold:.3g}; "
        f"the default sqrt(2 ln n / (pi n)) = {connectivity_radius(n):.3g} is usually enough)",
    )


# ---------------------------------------------------------------------------- registry
def _shape(family, n, rows, cols):
    """(rows, cols) of a grid or torus from ``n`` and/or ``rows``/``cols`` (as the CLI takes)."""
    if rows is None and cols is None:
        if n is None:
            raise TheorylabError(f"{family} needs n, or rows and cols")
        return square_shape(n)
    if rows is None or cols is None:
        if n is None:
            raise TheorylabError(f"{family} needs both rows and cols (or n)")
        known = rows if rows is not None else cols
        known = check_int("rows/cols", known, 1)
        n = check_int("n", n, 1)
        if n % known:
            raise TheorylabError(f"n = {n} is not divisible by {known}")
        rows, cols = (known, n // known) if rows is not None else (n // known, known)
    if n is not None and rows * cols != n:
        raise TheorylabError(f"rows x cols = {rows} x {cols} = {rows * cols} != n = {n}")
    return rows, cols


#: the families drawn at random: their builders take ``seed`` and ``max_tries``
_RANDOM_FAMILIES = ("random-regular", "erdos-renyi", "random-geometric")


def _family_args(family, n, rows, cols, degree, p, radius) -> tuple:
    """The positional arguments of ``family``'s builder from the uniform ones (as the CLI takes
    them), checked: ``(rows, cols)`` for grid and torus, ``(n, degree)``, ``(n, p)``,
    ``(n, radius)`` for the random families (``radius`` None: the default), else ``(n,)``.
    Shared by :func:`theorylab.topology.build` and :func:`family_edges`."""
    if family in ("grid", "torus"):
        return _shape(family, n, rows, cols)
    if n is None:
        raise TheorylabError(f"{family} needs n")
    if family == "random-regular":
        if degree is None:
            raise TheorylabError("random-regular needs degree (e.g. --degree 4)")
        return (n, degree)
    if family == "erdos-renyi":
        if p is None:
            raise TheorylabError("erdos-renyi needs p (e.g. --p 0.1)")
        return (n, p)
    if family == "random-geometric":
        return (n, radius)
    return (n,)


def family_edges(
    family: str,
    n=None,
    *,
    rows=None,
    cols=None,
    degree=None,
    p=None,
    radius=None,
    seed=0,
    max_tries=1,
) -> Edges:
    """The edge set of a family member, with the arguments of :func:`theorylab.topology.build`.

    The same graph as ``topology.build(family, n, ...)`` (same edge set, same seeds and
    resampling), built with numpy in O(n + m) vectorised work: ~0.1-0.5 s at n = 1e5 where the
    networkx graph takes seconds. Random geometric graphs default to
    :func:`connectivity_radius`.

    Parameters
    ----------
    family : str, one of :data:`FAMILY_NAMES` except 'one-peer-exponential' (a schedule: see
        :func:`one_peer_exponential_matrices`)
    n : int; rows, cols : int (grid, torus); degree : int (random-regular); p : float
        (erdos-renyi); radius : float (random-geometric); seed : int >= 0; max_tries : int >= 1

    Returns
    -------
    Edges

    Raises
    ------
    TheorylabError
        Unknown family, missing or invalid arguments, or every try disconnected.
    """
    if family not in FAMILY_NAMES:
        raise TheorylabError(f"unknown topology family {family!r}; choose from {FAMILY_NAMES}")
    if family == "one-peer-exponential":
        raise TheorylabError(
            "one-peer-exponential is a schedule (time-varying), not a static graph: use "
            "one_peer_exponential_matrices(n)"
        )
    args = _family_args(family, n, rows, cols, degree, p, radius)
    builders = {
        "ring": _ring,
        "path": _path,
        "star": _star,
        "complete": _complete,
        "grid": _grid,
        "torus": _torus,
        "hypercube": _hypercube,
        "exponential": _exponential,
        "random-regular": _random_regular,
        "erdos-renyi": _erdos_renyi,
        "random-geometric": _random_geometric,
    }
    if family in _RANDOM_FAMILIES:
        return builders[family](*args, seed=seed, max_tries=max_tries)
    return builders[family](*args)


# ---------------------------------------------------------------------------- weights
def _symmetric_csr(n, u, v, w, diag) -> sp.csr_array:
    """csr_array with W_uv = W_vu = w (u < v sorted) and diagonal ``diag`` (None: none)."""
    if diag is None:
        rows, cols, vals = np.r_[u, v], np.r_[v, u], np.r_[w, w]
    else:
        i = np.arange(n)
        rows, cols, vals = np.r_[u, v, i], np.r_[v, u, i], np.r_[w, w, diag]
    W = sp.coo_array((vals, (rows, cols)), shape=(n, n)).tocsr()
    W.sort_indices()
    return W


def _laplacian_extremes(edges: Edges) -> tuple[float, float]:
    """(lambda_1, lambda_{n-1}) of the graph Laplacian of ``edges`` (largest, smallest
    nonzero): :func:`laplacian_extremes` of its sparse Laplacian."""
    n, u, v = edges.n, edges.u, edges.v
    deg = edges.degrees().astype(np.float64)
    lap = _symmetric_csr(n, u, v, -np.ones(u.size), deg)
    return laplacian_extremes(lap, deg, u, v)


def laplacian_extremes(lap, deg: np.ndarray, u: np.ndarray, v: np.ndarray) -> tuple[float, float]:
    """(lambda_1, lambda_{n-1}) of a graph Laplacian ``lap`` (scipy sparse; ``deg`` its degrees,
    ``(u, v)`` its edges), as :func:`theorylab.mixing.best_constant_weights` needs them: dense
    for n <= 2000, else lambda_{n-1} as the gap of ``W0 = I - L/(2 d_max)`` (symmetric doubly
    stochastic, spectrum in [0, 1], so ``lambda_{n-1}(L) = 2 d_max (1 - lambda_2(W0))`` with no
    cancellation) and lambda_1 by Lanczos; if Lanczos does not converge, the Anderson-Morley
    bound ``lambda_1 <= max_{ij in E} (d_i + d_j)`` (a conservative step) with a warning."""
    import scipy.sparse.linalg as spla

    from theorylab import spectral
    from theorylab.stochastic import DENSE_LIMIT

    n = lap.shape[0]
    if n <= DENSE_LIMIT:
        lam = np.linalg.eigvalsh(lap.toarray())
        return float(lam[-1]), float(lam[1])
    c = 2.0 * deg.max()
    W0 = (sp.eye_array(n, format="csr") - lap / c).tocsr()
    lam_min = c * spectral.extreme_eigenvalues(W0).gap2
    try:
        top = spla.eigsh(
            lap,
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
        lam_max = float(np.max(deg[u] + deg[v]))
        warnings.warn(
            "Laplacian lambda_1 did not converge; using the Anderson-Morley bound "
            f"{lam_max:g} (best-constant step slightly conservative)",
            TheorylabWarning,
            stacklevel=3,
        )
    return lam_max, lam_min


def sparse_mixing_matrix(edges: Edges, rule: str = "metropolis", lazy: bool = False):
    """The mixing matrix of ``rule`` on ``edges`` as a csr_array (the rules of
    :mod:`theorylab.mixing`, same formulas; equal to ``mixing_matrix(G, rule, lazy)`` on the
    networkx graph to rounding).

    Rules (edge {i, j}, degrees d; self weight = 1 - the row's edge weights unless stated):
    metropolis ``1/(1 + max(d_i, d_j))``; local-degree ``1/max(d_i, d_j)``; max-degree
    ``1/d_max``; uniform ``1/(d + 1)`` with self weight ``1/(d + 1)`` (regular graphs only);
    best-constant ``2/(lambda_1(L) + lambda_{n-1}(L))``. ``lazy`` gives ``(I + W)/2``.

    Parameters
    ----------
    edges : Edges (connected, n >= 2)
    rule : str, one of :data:`RULE_NAMES`
    lazy : bool

    Returns
    -------
    scipy.sparse.csr_array, float64, n x n, symmetric, rows and columns summing to 1; a
    TheorylabWarning for max-degree / local-degree on a bipartite regular graph (rho = 1).

    Raises
    ------
    TypeError
        ``rule`` not a string or ``lazy`` not a bool.
    TheorylabError
        Unknown rule, fewer than 2 nodes, or 'uniform' on a non-regular graph.
    """
    if not isinstance(rule, str):
        raise TypeError(f"rule must be a weight rule name (one of {RULE_NAMES}), got {rule!r}")
    if rule not in RULE_NAMES:
        raise TheorylabError(f"unknown weight rule {rule!r}; choose from {sorted(RULE_NAMES)}")
    if not isinstance(lazy, (bool, np.bool_)):
        raise TypeError(f"lazy must be True or False, got {lazy!r}")
    n, u, v = edges.n, edges.u, edges.v
    if n < 2:
        raise TheorylabError(f"a topology needs n >= 2 nodes, got n = {n}")
    deg = edges.degrees().astype(np.float64)
    diag = None
    if rule == "metropolis":
        w = 1.0 / (1.0 + np.maximum(deg[u], deg[v]))
    elif rule == "local-degree":
        w = 1.0 / np.maximum(deg[u], deg[v])
    elif rule == "max-degree":
        w = np.full(u.size, 1.0 / deg.max())
    elif rule == "uniform":
        if deg.min() != deg.max():
            i, j = int(np.argmin(deg)), int(np.argmax(deg))
            raise TheorylabError(
                f"uniform weights 1/(d_i + 1) are doubly stochastic only on regular graphs; "
                f"node {i} has degree {int(deg[i])} and node {j} degree {int(deg[j])}: use "
                "rule 'metropolis'"
            )
        w = np.full(u.size, 1.0 / (deg[0] + 1))
        diag = np.full(n, 1.0 / (deg[0] + 1))
    else:  # best-constant
        lam_max, lam_min = _laplacian_extremes(edges)
        w = np.full(u.size, 2.0 / (lam_max + lam_min))
    if diag is None:
        diag = 1.0 - (np.bincount(u, w, minlength=n) + np.bincount(v, w, minlength=n))
    if rule in ("max-degree", "local-degree") and not lazy:
        if deg.min() == deg.max() and edges.is_bipartite():
            warnings.warn(
                f"rule {rule!r} on a bipartite regular graph has self weight 0 and eigenvalue -1, "
                "so rho = 1 and gossip never converges; use lazy=True or rule 'metropolis'",
                TheorylabWarning,
                stacklevel=2,
            )
    if lazy:
        w, diag = 0.5 * w, 0.5 * (1.0 + diag)
    return _symmetric_csr(n, u, v, w, diag)


def complete_mixing_coefficient(n, rule: str = "metropolis", lazy: bool = False) -> float:
    """``a`` with ``W = a I + (1 - a) 11^T/n``, the weights of ``rule`` on the complete graph K_n.

    Every rule is symmetric in the nodes there (all degrees n - 1): metropolis and uniform put
    ``1/n`` everywhere (``a = 0``, W = 11^T/n); best-constant has ``alpha* = 2/(n + n)``
    (Laplacian eigenvalues n and 0), the same W; max-degree and local-degree put ``1/(n - 1)`` on
    the edges and 0 on the diagonal, ``a = -1/(n - 1)``; lazy gives ``(1 + a)/2``. The
    eigenvalues of W are 1 (once) and ``a`` (n - 1 times), so ``rho = |a|`` exactly, for any n
    (W itself has n^2 entries).
    """
    n = _check_n(n, 2, "a complete graph")
    if rule not in RULE_NAMES:
        raise TheorylabError(f"unknown weight rule {rule!r}; choose from {sorted(RULE_NAMES)}")
    a = -1.0 / (n - 1) if rule in ("max-degree", "local-degree") else 0.0
    return 0.5 * (1.0 + a) if lazy else a


# ---------------------------------------------------------------------------- schedules
def one_peer_exponential_matrices(n) -> list:
    """The rounds ``W^(j) = (I + P_j)/2``, j < ceil(log2 n), of the one-peer exponential graph
    as csr_arrays (node i receives from (i + 2^j) mod n); the matrices of
    :func:`theorylab.topology.one_peer_exponential`, without the Schedule's validation."""
    n = _check_n(n, 2, "a one-peer exponential graph")
    i = np.arange(n)
    mats = []
    for j in range(_ceil_log2(n)):
        M = sp.coo_array(
            (np.full(2 * n, 0.5), (np.r_[i, i], np.r_[i, (i + (1 << j)) % n])), shape=(n, n)
        ).tocsr()
        M.sum_duplicates()
        mats.append(M)
    return mats


def lazy_csr(W) -> sp.csr_array:
    """``(I + W)/2`` of a sparse W, as a csr_array (the lazy version of one round)."""
    n = W.shape[0]
    return ((sp.eye_array(n, format="csr") + sp.csr_array(W)) * 0.5).tocsr()
