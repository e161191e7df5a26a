"""Topology design: the best graph family and weights under a budget, and greedy edge addition.

Conventions: ``rho = ||W - 11^T/n||_2``, ``spectral_gap = 1 - rho``; a schedule with period ``P``
has the per-period factor ``rho_P = ||W^(P-1)...W^(0) - 11^T/n||_2``. A candidate's *rounds* to
shrink the consensus error by ``eps`` are ``P * consensus_iterations(rho_P, eps)`` (tight for the
worst initial state), its *degree* is the number of messages its busiest node sends per round, and
its *round time* the alpha-beta cost of :func:`theorylab.cost.round_time`.

Budgets (one of):

* ``max_degree=K``: the busiest node sends at most K messages per round;
* ``edges=M``: at most M undirected edges (a one-peer round, n directed messages, counts n/2);
* ``cost_budget=C``: one round (compute + communication) takes at most C seconds.

Candidates: ring, 2-D torus (most square factorisation), hypercube (n a power of 2), static
exponential graph, one-peer exponential schedule, random d-regular graphs (several seeds) and the
complete graph, each with the Metropolis and best-constant weights and, when ``n <=
sdp_max_n``, the FDLA-optimal weights of :func:`theorylab.design.optimal_weights`. The ranking is
by predicted DSGD time to accuracy (:func:`theorylab.cost.time_to_accuracy`, an upper bound) when
a ``problem`` is given, else by consensus time = rounds x round time.

References
----------
Ying et al., "Exponential graph is provably efficient for decentralized deep training",
NeurIPS 2021, arXiv 2110.13363. Xiao & Boyd (2004). Koloskova et al., ICML 2020, arXiv 2003.10422.
"""

from __future__ import annotations

import math
import time
import warnings

import networkx as nx
import numpy as np

from theorylab._threads import small_dense
from theorylab.cost import CommModel, round_time, time_to_accuracy
from theorylab.errors import TheorylabError, TheorylabWarning, check_int, check_positive

__all__ = ["candidate_topologies", "choose_topology", "greedy_edge_addition"]

_RULES = ("metropolis", "best-constant")


def candidate_topologies(n: int, *, degrees=(3, 4, 6, 8), seeds=(0, 1, 2)) -> list[dict]:
    """Graphs and schedules on ``n`` nodes that :func:`choose_topology` considers.

    Returns a list of dicts with ``family``, ``name``, ``graph`` (networkx, or None for a
    schedule), ``schedule`` (a :class:`theorylab.topology.Schedule` or None), ``degree`` (messages
    the busiest node sends per round), ``edges`` (undirected edges per round) and ``period``.
    Families that do not exist at this n (hypercube for n not a power of 2, torus for a prime n
    or a side < 3, d-regular for n d odd or d >= n) are left out.

    Example
    -------
    >>> sorted({c["family"] for c in candidate_topologies(16)})[:3]
    ['complete', 'exponential', 'hypercube']
    """
    from theorylab import topology

    n = check_int("n", n, minimum=2)
    out = []

    def add(family, name, G=None, schedule=None):
        if G is not None:
            deg = max(d for _, d in G.degree())
            out.append(dict(family=family, name=name, graph=G, schedule=None, degree=deg,
                            edges=G.number_of_edges(), period=1))  # fmt: skip
        else:
            out.append(dict(family=family, name=name, graph=None, schedule=schedule, degree=1,
                            edges=n / 2, period=len(schedule)))  # fmt: skip

    if n >= 3:
        add("ring", "ring", topology.ring(n))
    rows, cols = topology.square_shape(n)
    if rows >= 3:
        add("torus", f"torus {rows}x{cols}", topology.torus2d(rows, cols))
    if n >= 4 and n & (n - 1) == 0:
        add("hypercube", "hypercube", topology.hypercube(n))
    if n >= 3:
        add("exponential", "exponential", topology.exponential(n))
        add(
            "one-peer-exponential",
            "one-peer exponential",
            schedule=topology.one_peer_exponential(n),
        )
    for d in degrees:
        if 3 <= d < n and (n * d) % 2 == 0:
            for seed in seeds:
                try:
                    G = topology.random_regular(n, d, seed=seed, max_tries=5)
                except TheorylabError:
                    continue
                add("random-regular", f"random {d}-regular (seed {seed})", G)
    add("complete", "complete", topology.complete(n))
    return out


def _within(c, model, max_degree, edges, cost_budget) -> bool:
    if max_degree is not None and c["degree"] > max_degree:
        return False
    if edges is not None and c["edges"] > edges:
        return False
    if cost_budget is not None and round_time(c["degree"], model) > cost_budget:
        return False
    return True


def _best_weights(c, sdp_max_n, solver) -> tuple[str, float, np.ndarray]:
    """(rule, per-period rho, W or None) of the best weight rule for candidate ``c``."""
    from theorylab.design import optimal_weights
    from theorylab.mixing import mixing_matrix
    from theorylab.spectral import extreme_eigenvalues, schedule_rho

    if c["schedule"] is not None:
        P = c["period"]
        return "one-peer (1/2, 1/2)", schedule_rho(c["schedule"]) ** P, None
    G = c["graph"]
    if G.number_of_edges() == G.number_of_nodes() * (G.number_of_nodes() - 1) // 2:
        return "metropolis", 0.0, None  # W = J
    best = None
    for rule in _RULES:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", TheorylabWarning)
            W = mixing_matrix(G, rule)
        r = extreme_eigenvalues(W).rho
        if best is None or r < best[1]:
            best = (rule, r, W)
    if G.number_of_nodes() <= sdp_max_n:
        res = optimal_weights(G, solver=solver)
        if res.rho < best[1]:
            best = ("optimal (FDLA)", res.rho, res.W)
    return best


@small_dense
def choose_topology(
    n: int,
    *,
    max_degree: int | None = None,
    edges: int | None = None,
    cost_budget: float | None = None,
    model: CommModel | None = None,
    problem: dict | None = None,
    eps: float = 1e-6,
    sdp_max_n: int = 64,
    solver: str = "barrier",
    degrees=(3, 4, 6, 8),
    seeds=(0, 1, 2),
) -> list[dict]:
    """Rank the candidate topologies that fit a budget (best first).

    Parameters
    ----------
    n : int >= 2
    max_degree, edges, cost_budget
        The budget (at least one): messages per node per round; undirected edges; seconds per
        round under ``model``.
    model : CommModel, optional
        alpha-beta cost model (default ``CommModel()``).
    problem : dict, optional
        ``target, L, mu, sigma2, zeta2, avg_error0`` (and optional ``gamma``) for ranking by the
        predicted DSGD time to accuracy (:func:`theorylab.cost.time_to_accuracy`); without it the
        ranking is by consensus time to ``eps``.
    eps : float in (0, 1)
        Consensus accuracy for the ``rounds`` column.
    sdp_max_n : int
        Largest n for which FDLA-optimal weights are computed (the barrier SDP takes ~5 s at
        n = 200 with ~850 edges; seconds-to-minutes beyond).
    solver : str
        Solver for :func:`theorylab.design.optimal_weights`.
    degrees, seeds
        Degrees and seeds of the random regular candidates.

    Returns
    -------
    list of dict
        One row per candidate within the budget: ``name``, ``family``, ``degree``, ``edges``,
        ``period``, ``rule``, ``rho`` (per period), ``rho_eff`` (per round), ``rounds``,
        ``round_s``, ``consensus_s`` and, with ``problem``, ``iterations``, ``gamma``,
        ``time_s``; sorted by ``time_s`` (or ``consensus_s``). Row 0 is the recommendation.

    Raises
    ------
    TheorylabError
        No budget given, or nothing fits it.

    Example
    -------
    >>> rows = choose_topology(16, max_degree=1)
    >>> rows[0]["name"], rows[0]["rounds"]  # exact averaging in log2(16) = 4 rounds
    ('one-peer exponential', 4)
    """
    from theorylab.cost import effective_rho
    from theorylab.spectral import consensus_iterations

    n = check_int("n", n, minimum=2)
    if max_degree is None and edges is None and cost_budget is None:
        raise TheorylabError("give a budget: max_degree, edges or cost_budget")
    if max_degree is not None:
        max_degree = check_int("max_degree", max_degree, minimum=1)
    if edges is not None:
        edges = check_int("edges", edges, minimum=1)
    if cost_budget is not None:
        cost_budget = check_positive("cost_budget", cost_budget)
    model = model or CommModel()
    rows = []
    for c in candidate_topologies(n, degrees=degrees, seeds=seeds):
        if not _within(c, model, max_degree, edges, cost_budget):
            continue
        t0 = time.perf_counter()
        rule, rho_p, _ = _best_weights(c, sdp_max_n, solver)
        P = c["period"]
        rounds = P * consensus_iterations(rho_p, eps) if rho_p < 1 else math.inf
        r_s = round_time(c["degree"], model)
        row = {
            "name": c["name"], "family": c["family"], "degree": c["degree"], "edges": c["edges"],
            "period": P, "rule": rule, "rho": rho_p, "rho_eff": effective_rho(rho_p, P),
            "rounds": rounds, "round_s": r_s, "consensus_s": rounds * r_s,
        }  # fmt: skip
        if problem is not None:
            pred = time_to_accuracy(rho_p, c["degree"], n, model, period=P, **problem)
            row.update(iterations=pred["iterations"], gamma=pred["gamma"], time_s=pred["time_s"])
        row["design_s"] = time.perf_counter() - t0
        rows.append(row)
    if not rows:
        raise TheorylabError(
            f"no candidate topology on n = {n} fits the budget (max_degree={max_degree}, "
            f"edges={edges}, cost_budget={cost_budget}); a connected graph needs >= n - 1 edges "
            "and degree >= 1; relax the budget"
        )
    key = "time_s" if problem is not None else "consensus_s"
    rows.sort(key=lambda r: (r[key], r["round_s"], r["rho_eff"]))
    return rows


@small_dense
def greedy_edge_addition(
    G,
    k: int,
    *,
    rule: str = "metropolis",
    candidates: int = 20,
    solver: str = "barrier",
) -> list[dict]:
    """Add ``k`` edges to ``G`` one at a time, each maximising the spectral gap ``1 - rho``.

    Step: with ``W`` the weights of ``rule`` on the current graph and ``u`` the unit eigenvector
    of its active extreme eigenvalue (``lambda_2``, the Fiedler-like vector, or ``lambda_n``), the
    first-order change of that eigenvalue from adding edge ``{i, j}`` with weight ``w`` is
    ``-w (u_i - u_j)^2`` (``+w (u_i - u_j)^2`` for ``lambda_n``), so non-edges are ranked by
    ``(u_i - u_j)^2``; the top ``candidates`` are re-evaluated exactly (the rule's W on the graph
    with the edge, and its rho) and the best is added. Heuristic: greedy is not optimal for
    k > 1, and the ranking is first order (the exact re-evaluation makes each step a true
    improvement among the candidates). Under a fixed rule an added edge can *lower* the gap
    (Metropolis on a ring: a chord lowers the ring weights at its endpoints
    from 1/3 to 1/4), reported as a negative ``gain``; with ``rule="optimal"`` the gap never
    decreases (the feasible set only grows).

    Parameters
    ----------
    G : networkx.Graph
        Connected, undirected, not complete.
    k : int >= 1
        Edges to add (fewer if the graph becomes complete).
    rule : str
        A rule of :data:`theorylab.mixing.WEIGHT_RULES`, or ``"optimal"`` (FDLA weights
        re-optimised for each candidate; SDP per candidate, small n only).
    candidates : int >= 1
        How many top-ranked non-edges to re-evaluate exactly per step.

    Returns
    -------
    list of dict
        Step 0 is the input graph; each later row has ``edge`` (node labels), ``rho``,
        ``spectral_gap``, ``gain`` (increase of the gap over the previous step) and
        ``relative_gain`` (gain / previous gap).

    Example
    -------
    >>> import networkx as nx
    >>> steps = greedy_edge_addition(nx.cycle_graph(12), 2)
    >>> [round(s["spectral_gap"], 4) for s in steps]  # Metropolis: the first chord costs gap
    [0.0893, 0.0766, 0.1246]
    """
    from theorylab.design import optimal_weights
    from theorylab.mixing import WEIGHT_RULES, mixing_matrix
    from theorylab.spectral import extreme_eigenvalues
    from theorylab.topology import check_graph

    k = check_int("k", k, minimum=1)
    candidates = check_int("candidates", candidates, minimum=1)
    if rule != "optimal" and rule not in WEIGHT_RULES:
        raise TheorylabError(
            f"unknown rule {rule!r}; choose from {sorted(WEIGHT_RULES)} or 'optimal'"
        )
    labels = list(G.nodes()) if isinstance(G, nx.Graph) else None
    H = check_graph(G).copy()
    if H is not G and labels is not None:
        try:
            labels = sorted(labels)
        except TypeError:
            pass
    n = H.number_of_nodes()

    def weights(graph):
        if rule == "optimal":
            return optimal_weights(graph, solver=solver).W
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", TheorylabWarning)
            return np.asarray(mixing_matrix(graph, rule, sparse=False), dtype=float)

    def evaluate(graph):
        W = weights(graph)
        return extreme_eigenvalues(W).rho, W

    rho, W = evaluate(H)
    steps = [{"step": 0, "edge": None, "rho": rho, "spectral_gap": 1.0 - rho, "gain": 0.0,
              "relative_gain": 0.0}]  # fmt: skip
    for step in range(1, k + 1):
        if H.number_of_edges() == n * (n - 1) // 2:
            break
        lam, V = np.linalg.eigh(W - 1.0 / n)
        # Active extreme eigenvalue(s); a degenerate one (rings, tori) sums over its eigenspace,
        # which makes the score independent of the basis LAPACK picked.
        r_now = max(lam[-1], -lam[0])
        tol = 1e-9 * max(1.0, r_now)
        hi = np.flatnonzero(lam >= r_now - tol)
        lo = np.flatnonzero(-lam >= r_now - tol)
        score = np.zeros((n, n))
        for idx in np.concatenate([hi, lo]):
            u = V[:, idx]
            score += (u[:, None] - u[None, :]) ** 2
        A = nx.to_numpy_array(H, nodelist=range(n)) > 0
        score[A] = -1.0
        np.fill_diagonal(score, -1.0)
        iu = np.triu_indices(n, 1)
        flat = score[iu]
        top = np.argsort(-flat, kind="stable")[: min(candidates, int((flat >= 0).sum()))]
        best = None
        for t in top:
            e = (int(iu[0][t]), int(iu[1][t]))
            H.add_edge(*e)
            r, Wc = evaluate(H)
            H.remove_edge(*e)
            if best is None or r < best[1] - 1e-15:
                best = (e, r, Wc)
        e, r, W = best
        H.add_edge(*e)
        prev_gap = steps[-1]["spectral_gap"]
        gap = 1.0 - r
        edge = (labels[e[0]], labels[e[1]]) if labels is not None else e
        rel = (gap - prev_gap) / prev_gap if prev_gap > 0 else math.inf
        steps.append({"step": step, "edge": edge, "rho": r, "spectral_gap": gap,
                      "gain": gap - prev_gap, "relative_gain": rel})  # fmt: skip
    return steps
