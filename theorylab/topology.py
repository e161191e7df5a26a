"""Graph families and time-varying topologies (schedules of mixing matrices).

Static topologies are undirected ``networkx.Graph`` objects with nodes ``0..n-1`` (no
self-loops: the self weight is set by the weight rule of :mod:`theorylab.mixing`).
Time-varying topologies are :class:`~theorylab.stochastic.Schedule` objects holding the mixing
matrices of one period (``Schedule``, ``static``, ``check_graph`` and ``DENSE_LIMIT`` live in
:mod:`theorylab.stochastic` and are re-exported here).

Conventions (shared/DESIGN.md): row ``i`` of ``W`` holds node ``i``'s receive weights,
``x_i <- sum_j W_ij x_j``; ``rho = ||W - 11^T/n||_2`` and ``spectral_gap = 1 - rho``. A schedule
is applied as ``x^(k+1) = W^(k) x^(k)``, so one period multiplies ``W^(P-1) ... W^(0)``.

References
----------
Ying, Yuan, Chen, Hu, Pan, Yin, "Exponential Graph is Provably Efficient for Decentralized Deep
Training", NeurIPS 2021, arXiv:2110.13363.
Xiao, Boyd, "Fast linear iterations for distributed averaging", Systems & Control Letters 53,
2004.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable

import networkx as nx
import numpy as np
import scipy.sparse as sp

from theorylab.errors import TheorylabError, check_int, check_probability
from theorylab.stochastic import DENSE_LIMIT, Schedule, check_graph, static
from theorylab.topology_sparse import (
    _RANDOM_FAMILIES,
    _ceil_log2,
    _check_n,
    _derived_seed,
    _family_args,
    _is_power_of_two,
    _random_geometric,
    connectivity_radius,
    family_edges,
    square_shape,
)

__all__ = [
    "ring",
    "path",
    "star",
    "complete",
    "grid2d",
    "torus2d",
    "hypercube",
    "exponential",
    "random_regular",
    "erdos_renyi",
    "random_geometric",
    "from_edgelist",
    "check_graph",
    "square_shape",
    "connectivity_radius",
    "family_edges",
    "Schedule",
    "static",
    "one_peer_exponential",
    "exponential_mixing_matrix",
    "FAMILIES",
    "build",
    "closed_form_rho",
]


def _graph_from_edges(n: int, edges) -> nx.Graph:
    G = nx.Graph()
    G.add_nodes_from(range(n))
    G.add_edges_from((int(u), int(v)) for u, v in edges if u != v)
    return G


# ---------------------------------------------------------------------------- deterministic
def ring(n) -> nx.Graph:
    """Cycle C_n: node i is linked to i - 1 and i + 1 (mod n).

    With the Metropolis rule every weight is 1/3 and ``rho = max_{k != 0} |1/3 + 2/3 cos(2 pi k
    / n)|`` (tight, circulant spectrum; rho = ||W - 11^T/n||_2, gap = 1 - rho), i.e.
    ``1/3 + 2/3 cos(2 pi / n)`` for n >= 5, gap ~ 4 pi^2 / (3 n^2).

    Parameters
    ----------
    n : int, n >= 3

    Example
    -------
    >>> ring(5).number_of_edges()
    5
    """
    n = _check_n(n, 3, "a ring")
    return nx.cycle_graph(n)


def path(n) -> nx.Graph:
    """Path P_n: 0 - 1 - ... - (n-1). Metropolis rho = 1/3 + 2/3 cos(pi / n) for n >= 3.

    Parameters
    ----------
    n : int, n >= 2
    """
    n = _check_n(n, 2, "a path")
    return nx.path_graph(n)


def star(n) -> nx.Graph:
    """Star S_n: hub 0 linked to leaves 1..n-1. Metropolis rho = 1 - 1/n (tight).

    Parameters
    ----------
    n : int, n >= 2
    """
    n = _check_n(n, 2, "a star")
    return nx.star_graph(n - 1)


def complete(n) -> nx.Graph:
    """Complete graph K_n. Metropolis gives W = 11^T/n, so rho = 0.

    Parameters
    ----------
    n : int, n >= 2
    """
    n = _check_n(n, 2, "a complete graph")
    return nx.complete_graph(n)


def grid2d(rows, cols) -> nx.Graph:
    """Open 2-D grid ``rows x cols``; node ``r * cols + c`` sits at row r, column c.

    Parameters
    ----------
    rows, cols : int >= 1, with rows * cols >= 2
    """
    rows = check_int("rows", rows, 1)
    cols = check_int("cols", cols, 1)
    if rows * cols < 2:
        raise TheorylabError(f"a grid needs rows * cols >= 2, got {rows} x {cols}")
    edges = [(r * cols + c, r * cols + c + 1) for r in range(rows) for c in range(cols - 1)]
    edges += [(r * cols + c, (r + 1) * cols + c) for r in range(rows - 1) for c in range(cols)]
    return _graph_from_edges(rows * cols, edges)


def torus2d(rows, cols) -> nx.Graph:
    """Periodic 2-D grid (torus) ``rows x cols``, every node of degree 4.

    With the Metropolis rule (1/5 on self and neighbours) the eigenvalues are
    ``1/5 + 2/5 (cos 2 pi j / rows + cos 2 pi k / cols)`` and
    ``rho = 3/5 + 2/5 cos(2 pi / max(rows, cols))`` when max(rows, cols) >= 4 (tight;
    rho = ||W - 11^T/n||_2).

    Parameters
    ----------
    rows, cols : int >= 3 (smaller sides would create duplicate edges)
    """
    rows = check_int("rows", rows)
    cols = check_int("cols", cols)
    if rows < 3 or cols < 3:
        raise TheorylabError(
            f"a torus needs rows, cols >= 3 (smaller sides give duplicate edges), got "
            f"{rows} x {cols}; use grid2d or ring instead"
        )
    edges = [(r * cols + c, r * cols + (c + 1) % cols) for r in range(rows) for c in range(cols)]
    edges += [(r * cols + c, ((r + 1) % rows) * cols + c) for r in range(rows) for c in range(cols)]
    return _graph_from_edges(rows * cols, edges)


def hypercube(n) -> nx.Graph:
    """Hypercube Q_d on n = 2^d nodes: i ~ i XOR 2^k.

    With weights 1/(d + 1) (Metropolis) rho = (d - 1)/(d + 1) (tight; eigenvalues
    (d + 1 - 2k)/(d + 1) with multiplicity C(d, k)).

    Parameters
    ----------
    n : int, a power of 2, n >= 2
    """
    n = _check_n(n, 2, "a hypercube")
    if not _is_power_of_two(n):
        raise TheorylabError(
            f"a hypercube needs n a power of 2, got n = {n}; nearest: "
            f"{1 << (n.bit_length() - 1)} or {1 << n.bit_length()}"
        )
    d = n.bit_length() - 1
    return _graph_from_edges(
        n, [(i, i ^ (1 << k)) for i in range(n) for k in range(d) if i < i ^ (1 << k)]
    )


def exponential(n) -> nx.Graph:
    """Undirected static exponential graph: i ~ i +- 2^k (mod n) for 2^k < n.

    This is the symmetrised graph of Ying et al. (2021), whose directed version links i -> i + 2^k;
    degree at most 2 ceil(log2 n). The directed, uniformly weighted matrix of the paper is
    :func:`exponential_mixing_matrix`.

    Parameters
    ----------
    n : int, n >= 2

    References
    ----------
    Ying et al., NeurIPS 2021, arXiv:2110.13363.
    """
    n = _check_n(n, 2, "an exponential graph")
    offsets = [1 << k for k in range(_ceil_log2(n))]
    return _graph_from_edges(n, [(i, (i + o) % n) for i in range(n) for o in offsets])


# ---------------------------------------------------------------------------- random
def _sample_connected(make, seed, max_tries, what: str, fix: str) -> nx.Graph:
    seed = check_int("seed", seed, 0)
    max_tries = check_int("max_tries", max_tries, 1)
    for attempt in range(max_tries):
        G = make(_derived_seed(seed, attempt))
        if G.number_of_nodes() >= 2 and nx.is_connected(G):
            return G
    raise TheorylabError(
        f"{what} with seed={seed} was disconnected in all {max_tries} tries; {fix}, "
        "or allow resampling with max_tries > 1"
    )


def random_regular(n, degree, seed=0, max_tries=1) -> nx.Graph:
    """Uniform random ``degree``-regular graph (networkx pairing model), seeded.

    Connected whp for degree >= 3; rho of W = (I + A)/(d + 1) tends to (1 + 2 sqrt(d - 1))/(d + 1)
    (Friedman / Alon-Boppana, asymptotic).

    Parameters
    ----------
    n : int >= 2; degree : int, 1 <= degree < n, n * degree even; seed : int >= 0
    max_tries : int >= 1
        Attempt t > 0 resamples with the seed ``SeedSequence([seed, t]).generate_state(1)[0]``.

    Raises
    ------
    TheorylabError
        Bad sizes, or every try disconnected (use degree >= 3).
    """
    n = _check_n(n, 2, "a random regular graph")
    degree = check_int("degree", degree, 1)
    if degree >= n or (n * degree) % 2:
        raise TheorylabError(
            f"a {degree}-regular graph on {n} nodes needs degree < n and n * degree even"
        )
    return _sample_connected(
        lambda s: nx.random_regular_graph(degree, n, seed=s),
        seed,
        max_tries,
        f"random_regular(n={n}, degree={degree})",
        "use degree >= 3",
    )


def erdos_renyi(n, p, seed=0, max_tries=1) -> nx.Graph:
    """Erdos-Renyi G(n, p), seeded; must be connected (p above ln(n)/n makes that likely).

    Parameters
    ----------
    n : int >= 2; p : float in (0, 1]; seed : int >= 0
    max_tries : int >= 1, resampling with derived seeds as in :func:`random_regular`.
    """
    n = _check_n(n, 2, "an Erdos-Renyi graph")
    p = check_probability("p", p)
    gen = nx.fast_gnp_random_graph if p < 0.1 else nx.gnp_random_graph
    return _sample_connected(
        lambda s: gen(n, p, seed=s),
        seed,
        max_tries,
        f"erdos_renyi(n={n}, p={p})",
        f"use a larger p (connectivity threshold ln(n)/n = {math.log(n) / n:.3g})",
    )


def random_geometric(n, radius=None, seed=0, max_tries=1) -> nx.Graph:
    """Random geometric graph: n uniform points in the unit square, linked within ``radius``.

    The same graph as ``networkx.random_geometric_graph(n, radius, seed=s)`` (same points from
    Python's ``random.Random(s)``, drawn x then y per node; same edges ``||p_u - p_v||_2 <=
    radius``; same node attribute ``"pos"``; edges inserted in sorted order), built without
    networkx's per-node Python loops: the points come from numpy's MT19937 put in the state of
    ``random.Random(s)`` (bit-identical doubles), a k-d tree
    (``scipy.spatial.cKDTree.query_pairs``) gives the pairs as an array and connectivity is
    checked on the CSR adjacency before the networkx graph is filled
    (:func:`theorylab.topology_sparse.family_edges` stops before that step).

    Parameters
    ----------
    n : int >= 2
    radius : float > 0, optional
        Default :func:`~theorylab.topology_sparse.connectivity_radius`,
        ``sqrt(2 ln n / (pi n))``: sqrt(2) times the connectivity threshold (Penrose 1997), so a
        draw is disconnected with probability ~1/n for large n.
    seed : int >= 0
    max_tries : int >= 1, resampling with derived seeds as in :func:`random_regular`.

    Raises
    ------
    TheorylabError
        Bad sizes, or every try disconnected (use a larger radius).
    """
    return _random_geometric(n, radius, seed=seed, max_tries=max_tries).to_networkx()


def from_edgelist(path_or_lines) -> nx.Graph:
    """Read an undirected topology from ``u v`` lines (extra columns and ``#`` comments ignored).

    Parameters
    ----------
    path_or_lines : str | os.PathLike | iterable of str
        A file path, or the lines themselves.

    Returns
    -------
    networkx.Graph validated by :func:`check_graph` (nodes relabelled to ``0..n-1``; integer
    labels sort numerically).
    """
    if isinstance(path_or_lines, (str, os.PathLike)):
        with open(path_or_lines, encoding="utf-8") as fh:
            lines = fh.read().splitlines()
    elif isinstance(path_or_lines, Iterable):
        lines = list(path_or_lines)
    else:
        raise TypeError(f"expected a path or lines, got {type(path_or_lines).__name__}")
    G = nx.Graph()
    for number, line in enumerate(lines, 1):
        text = str(line).split("#", 1)[0].strip()
        if not text:
            continue
        parts = text.replace(",", " ").split()
        if len(parts) < 2:
            raise TheorylabError(f"edge list line {number}: expected 'u v', got {line!r}")
        u, v = (int(x) if x.lstrip("-").isdigit() else x for x in parts[:2])
        G.add_edge(u, v)
    return check_graph(G)


# ---------------------------------------------------------------------------- schedules
def _as_output(dense: np.ndarray | None, rows, cols, vals, n: int, sparse):
    use_sparse = n > DENSE_LIMIT if sparse is None else bool(sparse)
    M = sp.coo_array((vals, (rows, cols)), shape=(n, n)).tocsr()
    M.sum_duplicates()
    return M if use_sparse else M.toarray()


def one_peer_exponential(n, sparse=None) -> Schedule:
    """One-peer exponential graph (Ying et al. 2021): each node averages with one peer per round.

    Round k (tau = ceil(log2 n), k mod tau = j): node i **receives from** node (i + 2^j) mod n
    (and sends to i - 2^j), ``W^(k) = (I + P_j)/2`` with ``(P_j x)_i = x_{(i + 2^j) mod n}``.
    Each W^(k) is doubly stochastic and circulant, not symmetric (unless 2^j = n/2).

    Guarantee (tight, exact): for n a power of 2 the product of any tau consecutive rounds equals
    11^T/n, so :func:`theorylab.spectral.schedule_rho` is 0 (exact averaging in log2 n rounds).
    For other n the period residual is ~0.2 (n = 6: 0.2165, n = 12: 0.2091, n = 100: 0.1916).

    Parameters
    ----------
    n : int >= 2
    sparse : bool, optional (default: sparse when n > 2000)

    References
    ----------
    Ying et al., NeurIPS 2021, arXiv:2110.13363.
    """
    n = _check_n(n, 2, "a one-peer exponential graph")
    tau = _ceil_log2(n)
    i = np.arange(n)
    mats = []
    for j in range(tau):
        rows = np.r_[i, i]
        cols = np.r_[i, (i + (1 << j)) % n]
        vals = np.full(2 * n, 0.5)
        mats.append(_as_output(None, rows, cols, vals, n, sparse))
    return Schedule(mats, name="one-peer-exponential")


def exponential_mixing_matrix(n, sparse=None):
    """Directed static exponential matrix of Ying et al.: i receives from i + 2^k, k < tau.

    ``W = (I + sum_{k < tau} P_{2^k}) / (tau + 1)`` with tau = ceil(log2 n): circulant, doubly
    stochastic, not symmetric. Exact rho (= ||W - 11^T/n||_2, circulant so also the spectral
    radius) for even n: ``(tau - 1)/(tau + 1)`` (attained at frequency n/2); smaller for odd n.

    Parameters
    ----------
    n : int >= 2
    sparse : bool, optional
    """
    n = _check_n(n, 2, "an exponential graph")
    tau = _ceil_log2(n)
    i = np.arange(n)
    cols = np.concatenate([i] + [(i + (1 << k)) % n for k in range(tau)])
    rows = np.tile(i, tau + 1)
    return _as_output(None, rows, cols, np.full(rows.size, 1.0 / (tau + 1)), n, sparse)


# ---------------------------------------------------------------------------- registry
#: CLI family name -> constructor
FAMILIES = {
    "ring": ring,
    "path": path,
    "star": star,
    "complete": complete,
    "grid": grid2d,
    "torus": torus2d,
    "hypercube": hypercube,
    "exponential": exponential,
    "one-peer-exponential": one_peer_exponential,
    "random-regular": random_regular,
    "erdos-renyi": erdos_renyi,
    "random-geometric": random_geometric,
}


def build(
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
):
    """Build a family member from uniform arguments (used by the CLI).

    Returns a ``networkx.Graph``, or a :class:`Schedule` for ``'one-peer-exponential'``.
    Grid and torus take ``rows``/``cols``, or the most square factorisation of ``n``; random
    geometric graphs default to :func:`connectivity_radius`. The same graphs as arrays (no
    networkx, for large n): :func:`theorylab.topology_sparse.family_edges`.
    """
    if family not in FAMILIES:
        raise TheorylabError(f"unknown topology family {family!r}; choose from {sorted(FAMILIES)}")
    args = _family_args(family, n, rows, cols, degree, p, radius)
    if family in _RANDOM_FAMILIES:  # random geometric: radius None is connectivity_radius(n)
        return FAMILIES[family](*args, seed=seed, max_tries=max_tries)
    return FAMILIES[family](*args)


def _rho_from_eigs(eigs: np.ndarray) -> float:
    """max |lambda| over all but the eigenvalue 1 of the consensus vector (eigs[0])."""
    return float(np.max(np.abs(eigs[1:]))) if eigs.size > 1 else 0.0


def _best_constant_rho(lap: np.ndarray) -> float:
    """rho of W = I - alpha* L, alpha* = 2/(lambda_1 + lambda_{n-1}) from Laplacian eigenvalues."""
    lap = np.sort(lap)
    lam_max, lam_min = lap[-1], lap[1]
    return float((lam_max - lam_min) / (lam_max + lam_min))


def closed_form_rho(family: str, n, weights: str = "metropolis", *, rows=None, cols=None):
    """Closed-form rho (= ||W - 11^T/n||_2; gap = 1 - rho) where the literature has it, else None.

    For tests, not the code path. Exact spectra used (topology.md section 5, [COMPUTED] there and
    re-checked by tests/test_spectral.py):

    - ring, metropolis/uniform (1/3 weights): max_{k != 0} |1/3 + 2/3 cos(2 pi k / n)|;
      max-degree/local-degree (1/2 edges, 0 self): max_{k != 0} |cos(2 pi k / n)| (1 for even n);
    - path (n >= 3): metropolis 1/3 + 2/3 cos(pi/n); max-/local-degree/best-constant cos(pi/n);
    - complete: metropolis/uniform/best-constant 0, max-/local-degree 1/(n-1);
    - star: metropolis 1 - 1/n, max-/local-degree (n-2)/(n-1), best-constant (n-1)/(n+1);
    - hypercube Q_d: metropolis/uniform/best-constant (d-1)/(d+1), max-/local-degree 1;
    - torus a x b: eigenvalues 1/5 + 2/5(cos 2 pi j/a + cos 2 pi k/b) (metropolis/uniform),
      (cos + cos)/2 (max-/local-degree);
    - exponential (undirected, regular circulant): metropolis = uniform = 1/(d + 1) weights,
      eigenvalues (1 + sum_o cos(2 pi k o / n))/(d + 1) over the offsets o;
    - best-constant anywhere the Laplacian spectrum is known: (l_1 - l_{n-1})/(l_1 + l_{n-1});
    - one-peer-exponential (per-round rate of the period product): 0 when n is a power of 2.

    Returns
    -------
    float or None
    """
    n = check_int("n", n, 2)
    k = np.arange(n)
    if family == "ring" and n >= 3:
        if weights in ("metropolis", "uniform"):
            return _rho_from_eigs(1 / 3 + 2 / 3 * np.cos(2 * np.pi * k / n))
        if weights in ("max-degree", "local-degree"):
            return _rho_from_eigs(np.cos(2 * np.pi * k / n))
        if weights == "best-constant":
            return _best_constant_rho(2 - 2 * np.cos(2 * np.pi * k / n))
    if family == "path" and n >= 3:
        if weights == "metropolis":
            return 1 / 3 + 2 / 3 * math.cos(math.pi / n)
        if weights in ("max-degree", "local-degree", "best-constant"):
            return math.cos(math.pi / n)
    if family == "complete":
        if weights in ("metropolis", "uniform", "best-constant"):
            return 0.0
        if weights in ("max-degree", "local-degree"):
            return 1.0 / (n - 1)
    if family == "star" and n >= 3:
        if weights == "metropolis":
            return 1 - 1 / n
        if weights in ("max-degree", "local-degree"):
            return (n - 2) / (n - 1)
        if weights == "best-constant":
            return (n - 1) / (n + 1)
    if family == "hypercube" and _is_power_of_two(n):
        d = n.bit_length() - 1
        if weights in ("metropolis", "uniform", "best-constant"):
            return (d - 1) / (d + 1)
        if weights in ("max-degree", "local-degree"):
            return 1.0
    if family == "torus":
        if rows is None or cols is None:
            rows, cols = square_shape(n)
        if rows * cols != n or rows < 3 or cols < 3:
            return None
        cj = np.cos(2 * np.pi * np.arange(rows) / rows)[:, None]
        ck = np.cos(2 * np.pi * np.arange(cols) / cols)[None, :]
        if weights in ("metropolis", "uniform"):
            return _rho_from_eigs((1 / 5 + 2 / 5 * (cj + ck)).ravel())
        if weights in ("max-degree", "local-degree"):
            return _rho_from_eigs(((cj + ck) / 2).ravel())
        if weights == "best-constant":
            return _best_constant_rho((4 - 2 * cj - 2 * ck).ravel())
    if family == "exponential" and weights in ("metropolis", "uniform"):
        offsets = {(1 << j) % n for j in range(_ceil_log2(n))}
        offsets |= {(-o) % n for o in offsets}
        offsets.discard(0)
        phase = 2 * np.pi * np.outer(k, sorted(offsets)) / n
        return _rho_from_eigs((1 + np.cos(phase).sum(axis=1)) / (len(offsets) + 1))
    if family == "one-peer-exponential" and _is_power_of_two(n):
        return 0.0
    return None
