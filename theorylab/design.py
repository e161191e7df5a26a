"""Optimal mixing weights for a given graph: FDLA and FMMC, by SDP and by a first-order method.

Conventions (shared/DESIGN.md): ``W`` is n x n, row ``i`` holds node ``i``'s receive weights
(``x_i <- sum_j W_ij x_j``); ``rho = ||W - 11^T/n||_2`` and ``spectral_gap = 1 - rho``. For the
symmetric ``W`` computed here ``rho = max(lambda_2(W), -lambda_n(W))``.

The problems (Xiao & Boyd 2004; Boyd, Diaconis & Xiao 2004), in the edge-weight form: with ``a_e =
e_i - e_j`` for the edge ``e = {i, j}``,

    W(w) = I - sum_e w_e a_e a_e^T,

so that ``W = W^T``, ``W 1 = 1`` and the sparsity of the graph (plus the diagonal: the self
weight ``W_ii = 1 - sum_j W_ij`` is free) hold by construction. With ``zero_diagonal=True`` the
equality ``N w = 1`` (``N`` the unsigned node-edge incidence) also forces ``W_ii = 0``, the
variant without self weights used by several gossip papers.

* **FDLA** (fastest distributed linear averaging, symmetric): minimise ``rho(W(w))`` over
  ``w in R^m`` (negative weights allowed).
* **FMMC** (fastest mixing Markov chain): the same with ``W >= 0`` entrywise, i.e. ``w >= 0`` and
  ``sum_{e ni i} w_e <= 1`` for every node ``i``.

Both are SDPs: minimise ``s`` subject to ``-s I <= Q^T (W(w) - J) Q <= s I`` with ``Q`` an
orthonormal basis of ``1^perp``. The optimum is exact (tight) for the stated problem; the value is
a lower bound on the rho of every weight rule on the same graph with the same constraints (e.g.
Metropolis, max-degree and best-constant weights are all feasible for FDLA).

Solvers
-------
``"barrier"`` (default) is a log-barrier interior-point method written for this SDP: its Newton
system is the (m+1) x (m+1) matrix ``(B^T F^{-1} B)^{o2}`` (rank-one constraint matrices
``b_e b_e^T``, ``b_e = Q^T a_e``), which costs O(n m^2) per step instead of the dense
``n^2 x n^2`` scaling blocks a general-purpose solver forms, and its duality gap ``2(n-1)/t`` (plus
the count of linear constraints for FMMC) certifies the accuracy of the returned rho. Any cvxpy
solver (``"SCS"``, ``"CLARABEL"``) solves the same SDP in the sparse n x n edge form; see
``benchmarks/design.py`` for the comparison that chose the default. For graphs too large for an SDP
(n in the thousands) :func:`subgradient_weights` runs the projected subgradient method of Xiao &
Boyd (2004, Sec. 5).

Long solves. At n = 200 the plain barrier needed far more Newton steps than at n <= 100
(Erdos-Renyi n = 200, p = 0.05, FMMC: 860 steps, so the former cap of 500 made ``theorylab
weights`` fail). The cause, traced step by step: right after each increase of ``t`` the
backtracking line search accepted long damped steps that shrank the slack ``s - lambda_2(W)`` of
the top eigenvalue to 1e-3..1e-2 of its central-path value (``>= 1/t``); from there Newton took
full steps whose decrement stayed ~3 while ``s`` crept down by ~1e-6 per step (the Dikin ellipsoid
is thin in the direction that rotates the top eigenvector), for hundreds of steps per centering.
The fix: after every Newton step ``s`` alone is re-centred exactly (:func:`_center_s`, a convex
1-D problem on the eigenvalues already computed by the line search, O(n)), which restores
``t a_k >= 1`` for every slack and never increases the objective. A cap (``max_iter``, 2000),
progress lines on stderr for long solves, and a cvxpy fallback (``fallback``, SCS by default,
with a warning and a message saying so) remain as guards.

Measured (``benchmarks/design.py``, shared 2-core VM, 1 BLAS thread; rho error against the
barrier's certified lower bound): barrier 0.04-2.1 s on random geometric graphs n = 20-200 and
0.05-10.6 s on Erdos-Renyi n = 20-200 (4.3-5 s for ER n = 200 when the machine was less loaded),
rho error 5e-9 everywhere; SCS at eps 1e-6 took 2.7x (ER n = 200) to 50x (RGG n = 200) longer
with rho errors 2e-6 to 1.2e-5; Clarabel reached 6e-9 but took 441 s on ER n = 100.

References
----------
L. Xiao and S. Boyd, "Fast linear iterations for distributed averaging", Systems & Control
Letters 53 (2004) 65-78.
S. Boyd, P. Diaconis and L. Xiao, "Fastest mixing Markov chain on a graph", SIAM Review 46 (2004)
667-689.
S. Boyd, P. Diaconis, J. Sun and L. Xiao, "Fastest mixing Markov chain on a path", American
Mathematical Monthly 113 (2006) 70-74.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any

import networkx as nx
import numpy as np
import scipy.linalg
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from theorylab._threads import small_dense
from theorylab.errors import SolverError, TheorylabError, check_int, check_positive
from theorylab.spectral import consensus_iterations, extreme_eigenvalues

__all__ = [
    "WeightsResult",
    "SOLVERS",
    "DEFAULT_SOLVER",
    "optimal_weights",
    "fmmc_weights",
    "subgradient_weights",
    "edge_weights_to_matrix",
    "compare_weight_rules",
    "HEURISTIC_RULES",
]

#: Solvers accepted by :func:`optimal_weights`: the built-in barrier method and cvxpy's SDP solvers.
SOLVERS = ("barrier", "SCS", "CLARABEL")
#: Chosen by ``benchmarks/design.py``: fastest and most accurate at every size measured.
DEFAULT_SOLVER = "barrier"


@dataclasses.dataclass
class WeightsResult:
    """The result of a weight optimisation (in the style of ``scipy.optimize.OptimizeResult``).

    ``rho`` is always recomputed by an eigenvalue computation on the returned ``W``
    (``rho = ||W - 11^T/n||_2``, ``spectral_gap = 1 - rho``), never read off the solver.

    Attributes
    ----------
    W : numpy.ndarray
        The optimised symmetric doubly stochastic mixing matrix (n x n).
    rho, spectral_gap : float
        ``||W - 11^T/n||_2`` and ``1 - rho``, from the eigenvalues of ``W``.
    status : str
        ``"optimal"`` (SDP solved to tolerance), ``"converged"`` (first-order stopping rule met)
        or ``"max_iter"`` (first-order iteration cap reached; ``W`` is the best iterate).
    success : bool
        Whether the stopping criterion was met.
    message : str
        Human-readable description of how the solve ended.
    solver : str
        ``"barrier"``, a cvxpy solver name, or ``"subgradient"``.
    solve_time_s : float
        Wall-clock seconds of the solve (including problem setup).
    iterations : int
        Newton steps (barrier), solver iterations (cvxpy, when reported) or subgradient steps.
    objective_gap : float
        Solver objective minus the eigenvalue rho of ``W`` (positive: the solver's bound ``s`` is
        above the true rho; ``nan`` for the subgradient method, which has no separate objective).
    lower_bound : float
        A lower bound on the optimal rho when the method provides one (barrier: ``s`` minus the
        duality gap; closed form on the complete graph: 0), else ``nan`` (cvxpy solvers, the
        subgradient method).
    nonnegative : bool
        True for FMMC (``W >= 0``), False for FDLA.
    edges : numpy.ndarray
        (m, 2) int array of the graph's edges as indices into ``nodes``.
    edge_weights : numpy.ndarray
        (m,) the weights ``w_e``; ``W = I - sum_e w_e a_e a_e^T``.
    nodes : list
        The graph's nodes, in the order of the rows of ``W``.
    """

    W: np.ndarray
    rho: float
    spectral_gap: float
    status: str
    success: bool
    message: str
    solver: str
    solve_time_s: float
    iterations: int
    objective_gap: float
    lower_bound: float
    nonnegative: bool
    edges: np.ndarray
    edge_weights: np.ndarray
    nodes: list

    def to_dict(self, include_matrix: bool = False) -> dict[str, Any]:
        """JSON-ready dict of the scalar fields (``W``, edges, weights with ``include_matrix``)."""
        out = {
            "n": int(self.W.shape[0]),
            "m": int(len(self.edges)),
            "rho": float(self.rho),
            "spectral_gap": float(self.spectral_gap),
            "status": self.status,
            "success": bool(self.success),
            "message": self.message,
            "solver": self.solver,
            "solve_time_s": float(self.solve_time_s),
            "iterations": int(self.iterations),
            "objective_gap": float(self.objective_gap),
            "lower_bound": float(self.lower_bound),
            "nonnegative": bool(self.nonnegative),
        }
        if include_matrix:
            out["W"] = self.W.tolist()
            out["edges"] = self.edges.tolist()
            out["edge_weights"] = self.edge_weights.tolist()
        return out


# ----------------------------------------------------------------------------------------------
# Graph input and the edge-weight parametrisation


def _graph_edges(G) -> tuple[list, np.ndarray]:
    """Validate ``G`` (:func:`theorylab.topology.check_graph`) and return (nodes, edges (m, 2))."""
    from theorylab.topology import check_graph

    nodes = list(G.nodes()) if isinstance(G, nx.Graph) else None
    H = check_graph(G)
    if H is not G:  # relabelled to 0..n-1 in sorted order
        try:
            nodes = sorted(nodes)
        except TypeError:
            pass
    else:
        nodes = list(range(H.number_of_nodes()))
    edges = sorted((min(u, v), max(u, v)) for u, v in H.edges())
    return nodes, np.asarray(edges, dtype=np.int64).reshape(-1, 2)


def edge_weights_to_matrix(n: int, edges: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Return ``W = I - sum_e w_e (e_i - e_j)(e_i - e_j)^T`` (dense, symmetric, rows sum to 1).

    Parameters
    ----------
    n : int
        Number of nodes, >= 2.
    edges : array_like of shape (m, 2)
        Edge endpoints as node indices in ``[0, n)``.
    w : array_like of shape (m,)
        Edge weights ``w_e`` (``W_ij = W_ji = w_e``, ``W_ii = 1 - sum_{e ni i} w_e``).

    Example
    -------
    >>> edge_weights_to_matrix(2, [[0, 1]], [0.5]).tolist()
    [[0.5, 0.5], [0.5, 0.5]]
    """
    n = check_int("n", n, minimum=2)
    edges = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
    w = np.asarray(w, dtype=float).reshape(-1)
    if len(w) != len(edges):
        raise TheorylabError(f"w has {len(w)} entries but there are {len(edges)} edges")
    W = np.zeros((n, n))
    i, j = edges[:, 0], edges[:, 1]
    W[i, j] = w
    W[j, i] = w
    W[np.arange(n), np.arange(n)] = 1.0 - W.sum(axis=1)
    return W


def _perp_basis(n: int) -> np.ndarray:
    """Orthonormal basis (n, n-1) of the complement of the all-ones vector (a Householder map)."""
    v = -np.full(n, 1.0 / math.sqrt(n))
    v[0] += 1.0
    H = np.eye(n) - 2.0 * np.outer(v, v) / (v @ v)
    return H[:, 1:]


def _projected_incidence(n: int, edges: np.ndarray) -> np.ndarray:
    """``B = Q^T A``: column ``e`` is ``Q^T (e_i - e_j)``, shape (n-1, m)."""
    Q = _perp_basis(n)
    return (Q[edges[:, 0]] - Q[edges[:, 1]]).T


def _node_incidence(n: int, edges: np.ndarray) -> sp.csr_matrix:
    """Unsigned node-edge incidence N (n x m): ``(N w)_i = sum_{e ni i} w_e``."""
    m = len(edges)
    rows = np.concatenate([edges[:, 0], edges[:, 1]])
    cols = np.concatenate([np.arange(m), np.arange(m)])
    return sp.csr_matrix((np.ones(2 * m), (rows, cols)), shape=(n, m))


def _metropolis_edge_weights(n: int, edges: np.ndarray) -> np.ndarray:
    """Metropolis(+1) edge weights ``1/(1 + max(d_i, d_j))``: a strictly feasible FMMC point."""
    deg = np.bincount(edges.ravel(), minlength=n)
    return 1.0 / (1.0 + np.maximum(deg[edges[:, 0]], deg[edges[:, 1]]))


def _syrk(Y: np.ndarray) -> np.ndarray:
    """Upper triangle of ``Y^T Y`` (BLAS syrk); the strict lower triangle is unspecified."""
    Y = np.asfortranarray(Y)
    return scipy.linalg.blas.dsyrk(1.0, Y, trans=1)


def _finish(
    nodes, edges, w, *, nonnegative, status, message, solver, t0, iterations, objective, lower
) -> WeightsResult:
    """Polish (FMMC round-off), validate and package a solution; rho from eigenvalues of W."""
    n = len(nodes)
    w = np.array(w, dtype=float)
    if not np.all(np.isfinite(w)):
        raise SolverError(f"{solver}: the solver returned non-finite weights; W is not usable")
    if nonnegative:
        # Clean round-off: tiny negative edge weights to 0, tiny excess node sums scaled away.
        scale = max(1.0, float(np.max(np.abs(w), initial=0.0)))
        if np.min(w, initial=0.0) < -1e-6 * scale:
            raise SolverError(
                f"{solver}: FMMC solution has an edge weight {np.min(w):.3g} < 0 beyond round-off"
            )
        w = np.maximum(w, 0.0)
        sums = _node_incidence(n, edges) @ w
        if np.max(sums, initial=0.0) > 1.0 + 1e-6:
            raise SolverError(
                f"{solver}: FMMC solution has a self weight {1 - np.max(sums):.3g} < 0 "
                "beyond round-off"
            )
        over = np.maximum(sums, 1.0)
        w = w / np.maximum(over[edges[:, 0]], over[edges[:, 1]])
    W = edge_weights_to_matrix(n, edges, w)
    # Validation (by construction, but a boundary check costs nothing at these sizes).
    if not np.allclose(W, W.T, atol=1e-12) or not np.allclose(W.sum(axis=1), 1.0, atol=1e-9):
        raise SolverError(f"{solver}: the returned W is not symmetric doubly stochastic")
    if nonnegative and np.min(W) < -1e-12:
        raise SolverError(f"{solver}: the FMMC W has a negative entry {np.min(W):.3g}")
    spectrum = extreme_eigenvalues(W)
    rho, gap = spectrum.rho, spectrum.spectral_gap
    if rho >= 1.0 - 1e-12:
        raise SolverError(
            f"{solver}: the returned W has rho = {rho:.6g} >= 1 on a connected graph; "
            "the solve failed"
        )
    return WeightsResult(
        W=W,
        rho=rho,
        spectral_gap=gap,
        status=status,
        success=status in ("optimal", "converged"),
        message=message,
        solver=solver,
        solve_time_s=time.perf_counter() - t0,
        iterations=int(iterations),
        objective_gap=float(objective - rho) if objective is not None else float("nan"),
        lower_bound=float(lower) if lower is not None else float("nan"),
        nonnegative=bool(nonnegative),
        edges=edges,
        edge_weights=w,
        nodes=list(nodes),
    )


# ----------------------------------------------------------------------------------------------
# The barrier (interior-point) method for the SDP


def _progress_printer(progress, label):
    """A ``report(step, t, s, gap)`` callable from the ``progress`` argument (see optimal_weights).

    ``None``: a line on stderr every 5 s once the solve has run for 5 s; ``True``: every 2 s from
    the start; ``False``: silent; a callable receives a dict per report.
    """
    import sys

    if progress is False:
        return lambda **kw: None
    if callable(progress):
        return lambda **kw: progress(dict(kw, label=label))
    first, every = (5.0, 5.0) if progress is None else (0.0, 2.0)
    t0 = time.perf_counter()
    state = {"next": t0 + first}

    def report(**kw):
        now = time.perf_counter()
        if now >= state["next"]:
            state["next"] = now + every
            print(
                f"{label}: Newton step {kw['step']}, rho bound s = {kw['s']:.8f}, duality gap "
                f"{kw['gap']:.2e} ({now - t0:.0f} s)",
                file=sys.stderr,
                flush=True,
            )

    return report


def _zero_diagonal_start(n, edges, nonnegative):
    """Edge weights with ``N w = 1`` (zero diagonal), strictly positive for FMMC, or None.

    FDLA: the least-norm solution of ``N w = 1``. FMMC: the LP ``max tau  s.t. N w = 1, w >= tau``
    (scipy's HiGHS); the barrier needs only ``w > 0``. None when no such point exists.
    """
    N = _node_incidence(n, edges)
    m = len(edges)
    if not nonnegative:
        w, *_ = np.linalg.lstsq(N.toarray(), np.ones(n), rcond=None)
        return w if np.allclose(N @ w, 1.0, atol=1e-9) else None
    from scipy.optimize import linprog

    # variables (w, tau); minimise -tau; N w = 1; tau - w_e <= 0; tau <= 1
    c = np.zeros(m + 1)
    c[-1] = -1.0
    A_ub = sp.hstack([-sp.eye(m), sp.csr_matrix(np.ones((m, 1)))]).tocsr()
    A_eq = sp.hstack([N, sp.csr_matrix((n, 1))]).tocsr()
    res = linprog(
        c, A_ub=A_ub, b_ub=np.zeros(m), A_eq=A_eq, b_eq=np.ones(n),
        bounds=[(None, None)] * m + [(None, 1.0)], method="highs",
    )  # fmt: skip
    if res.status != 0 or res.x[-1] <= 1e-9:
        return None
    return res.x[:m]


def _barrier_solve(
    n: int,
    edges: np.ndarray,
    nonnegative: bool,
    *,
    tol: float,
    max_iter: int,
    mu: float = 10.0,
    w0: np.ndarray | None = None,
    zero_diagonal: bool = False,
    report=None,
):
    """Log-barrier method for ``min s  s.t.  (s-1) I + K(w) > 0,  (s+1) I - K(w) > 0`` [+ FMMC].

    ``K(w) = B diag(w) B^T = Q^T (I - W(w)) Q``. For FMMC the linear constraints ``w > 0`` and
    ``1 - N w > 0`` join the barrier. With ``zero_diagonal`` the equality ``N w = 1`` (every
    ``W_ii = 0``) is kept by every step: the Newton direction solves the KKT system
    ``[H A^T; A 0]`` by the Schur complement ``A H^{-1} A^T`` (n x n), starting from a point of
    :func:`_zero_diagonal_start`; the FMMC term ``1 - N w`` is then identically 0 and dropped.
    Centering by damped Newton with backtracking; the duality gap on the central path is
    ``nbar / t`` with ``nbar`` the barrier parameter.
    Returns ``(w, s, gap, newton_steps)``.
    """
    B = _projected_incidence(n, edges)
    m = len(edges)
    N = _node_incidence(n, edges) if (nonnegative or zero_diagonal) else None
    if w0 is not None:
        w = np.array(w0, dtype=float)
    elif zero_diagonal:
        w = _zero_diagonal_start(n, edges, nonnegative)
        if w is None:
            raise SolverError(
                "barrier: no strictly feasible zero-diagonal start (N w = 1"
                + (", w > 0" if nonnegative else "")
                + ") found"
            )
    else:
        w = _metropolis_edge_weights(n, edges)
    cap = nonnegative and not zero_diagonal  # the 1 - N w > 0 constraints are in the barrier
    lam = np.linalg.eigvalsh((B * w) @ B.T)
    rho0 = max(1.0 - lam[0], lam[-1] - 1.0)
    s = rho0 + 0.1 * max(1.0 - rho0, 1e-3) + 1e-3
    nbar = 2 * (n - 1) + (m if nonnegative else 0) + (n if cap else 0)
    Ndense = N.toarray() if zero_diagonal else None

    last = {}

    def phi(w, s):
        """Barrier part of the objective (without ``t s``), or inf outside the domain."""
        lam = np.linalg.eigvalsh((B * w) @ B.T)
        last["lam"] = lam
        a, b = s - 1.0 + lam, s + 1.0 - lam
        if a.min() <= 0 or b.min() <= 0:
            return math.inf
        val = -np.log(a).sum() - np.log(b).sum()
        if nonnegative:
            if w.min() <= 0:
                return math.inf
            val -= np.log(w).sum()
        if cap:
            c = 1.0 - N @ w
            if c.min() <= 0:
                return math.inf
            val -= np.log(c).sum()
        return val

    t = nbar / max(s - max(rho0 - 0.5, 0.0), 1e-3)
    steps = 0
    while True:
        # --- centering: damped Newton on phi(., ., t)
        f = phi(w, s)
        prev_dec2 = math.inf
        while True:
            if steps >= max_iter:
                raise SolverError(
                    f"barrier: no convergence within max_iter = {max_iter} Newton steps "
                    f"(duality gap {nbar / t:.3g} > tol = {tol:.3g}); raise max_iter or tol"
                )
            steps += 1
            if report is not None:
                report(step=steps, t=t, s=s, gap=nbar / t)
            lam, V = np.linalg.eigh((B * w) @ B.T)
            g1, g2 = 1.0 / (s - 1.0 + lam), 1.0 / (s + 1.0 - lam)
            C = V.T @ B
            C2 = C * C
            # P_k = C^T diag(g_k) C = B^T F_k^{-1} B; upper triangles only (syrk: half the flops).
            P1 = _syrk(np.sqrt(g1)[:, None] * C)
            P2 = _syrk(np.sqrt(g2)[:, None] * C)
            grad = np.empty(m + 1)
            grad[:m] = -np.diag(P1) + np.diag(P2)
            grad[m] = t - g1.sum() - g2.sum()
            H = np.empty((m + 1, m + 1))
            H[:m, :m] = P1 * P1 + P2 * P2
            H[:m, m] = (g1 * g1) @ C2 - (g2 * g2) @ C2
            H[m, m] = (g1 * g1).sum() + (g2 * g2).sum()
            if nonnegative:
                grad[:m] += -1.0 / w
                H[:m, :m] += np.diag(1.0 / w**2)
            if cap:
                c = 1.0 - N @ w
                grad[:m] += N.T @ (1.0 / c)
                H[:m, :m] += np.triu((N.T @ sp.diags(1.0 / c**2) @ N).toarray())
            dx = _newton_direction(H, grad, Ndense)
            dec2 = -grad @ dx
            if not np.isfinite(dec2) or dec2 / 2.0 <= 1e-9:
                break
            if dec2 / 2.0 <= 1e-6 and dec2 > 0.25 * prev_dec2:
                break  # Newton no longer converges quadratically: floating-point floor reached
            prev_dec2 = dec2
            # Backtracking (Armijo) on phi_t = t s + barrier; t s enters as its increment so
            # that large t does not swamp the comparison in floating point.
            alpha = 1.0
            while alpha >= 1e-10:
                f_new = phi(w + alpha * dx[:m], s + alpha * dx[m])
                if f_new + t * alpha * dx[m] <= f - 0.25 * alpha * dec2:
                    break
                alpha *= 0.5
            if alpha < 1e-10:
                break  # no progress possible at this t: numerical floor reached
            decrease = f - (f_new + t * alpha * dx[m])
            w, s, f = w + alpha * dx[:m], s + alpha * dx[m], f_new
            # re-centre s exactly (1-D, O(n)): keeps every eigenvalue slack >= 1/t (see above)
            s, f = _center_s(last["lam"], s, t, f)
            if decrease <= 1e-13 * max(1.0, abs(f)):
                break  # decrease below floating-point resolution: centred as well as possible
        gap = nbar / t
        if gap <= tol:
            return w, s, gap, steps
        if t > 1e14:
            raise SolverError(
                f"barrier: stalled at duality gap {gap:.3g} > tol = {tol:.3g} "
                "(numerical limit); use a larger tol"
            )
        t *= mu


def _center_s(lam, s, t, f):
    """Minimise ``t s - sum log(s - 1 + lam) - sum log(s + 1 - lam)`` over ``s`` alone (w fixed).

    The objective is convex in ``s``; its minimiser solves ``sum 1/a + sum 1/b = t`` with
    ``a = s - 1 + lam``, ``b = s + 1 - lam``, so afterwards every ``t a_k >= 1`` and ``t b_k >= 1``:
    no eigenvalue slack is left far below its central-path value. Safeguarded Newton on the
    derivative inside the bracket ``(s_lo, s_lo + 2 len(lam) / t]``. Returns ``(s, f)`` with ``f``
    the barrier part updated for the new ``s`` (the other terms do not depend on ``s``).
    """
    s_lo = max(1.0 - lam.min(), lam.max() - 1.0)
    lo, hi = s_lo, s_lo + 2.0 * len(lam) / t

    def terms(x):
        a, b = x - 1.0 + lam, x + 1.0 - lam
        return a, b

    a, b = terms(s)
    old = -np.log(a).sum() - np.log(b).sum()
    x = min(max(s, lo + 0.5 * (hi - lo) * 1e-3), hi)
    for _ in range(100):
        a, b = terms(x)
        d1 = t - (1.0 / a).sum() - (1.0 / b).sum()
        if d1 > 0:
            hi = x
        else:
            lo = x
        d2 = (1.0 / a**2).sum() + (1.0 / b**2).sum()
        nx_ = x - d1 / d2
        if not lo < nx_ < hi:
            nx_ = 0.5 * (lo + hi)
        if abs(nx_ - x) <= 1e-15 * max(1.0, abs(x)):
            x = nx_
            break
        x = nx_
    a, b = terms(x)
    if a.min() <= 0 or b.min() <= 0:
        return s, f
    new = -np.log(a).sum() - np.log(b).sum()
    if t * x + new > t * s + old:  # never worse than where it started
        return s, f
    return x, f - old + new


def _newton_direction(H, grad, Aeq=None):
    """Solve ``H dx = -grad`` (H given by its upper triangle), or with ``Aeq dx[:m] = 0``.

    The equality-constrained step is ``dx = -H^{-1} (grad + A^T nu)`` with
    ``(A H^{-1} A^T) nu = -A H^{-1} grad``, ``A = [Aeq, 0]`` (the s column is free).
    """
    try:  # H is filled in its upper triangle, which is all cho_factor reads
        fac = scipy.linalg.cho_factor(H, lower=False)

        def solve(rhs):
            return scipy.linalg.cho_solve(fac, rhs)
    except (np.linalg.LinAlgError, ValueError):
        Hs = np.triu(H) + np.triu(H, 1).T

        def solve(rhs):
            return np.linalg.lstsq(Hs, rhs, rcond=None)[0]

    if Aeq is None:
        return -solve(grad)
    A = np.hstack([Aeq, np.zeros((Aeq.shape[0], 1))])
    Hinv_g = solve(grad)
    Hinv_At = solve(A.T)
    S = A @ Hinv_At
    nu = np.linalg.lstsq(S, -A @ Hinv_g, rcond=None)[0]
    return -(Hinv_g + Hinv_At @ nu)


# ----------------------------------------------------------------------------------------------
# cvxpy


def _cvxpy_solve(n, edges, nonnegative, *, solver, tol, solver_options, zero_diagonal=False):
    """Solve the SDP in the sparse n x n edge form with a cvxpy solver; check the status."""
    import cvxpy as cp

    m = len(edges)
    A = sp.csc_matrix(
        (
            np.concatenate([np.ones(m), -np.ones(m)]),
            (np.concatenate([edges[:, 0], edges[:, 1]]), np.concatenate([np.arange(m)] * 2)),
        ),
        shape=(n, m),
    )
    w = cp.Variable(m)
    s = cp.Variable()
    X = np.eye(n) - np.full((n, n), 1.0 / n) - A @ cp.diag(w) @ A.T
    X = (X + X.T) / 2
    cons = [X << s * np.eye(n), X >> -s * np.eye(n)]
    if nonnegative:
        N = _node_incidence(n, edges)
        cons += [w >= 0, N @ w <= 1]
    if zero_diagonal:
        cons += [_node_incidence(n, edges) @ w == 1]
    prob = cp.Problem(cp.Minimize(s), cons)
    opts = dict(solver_options or {})
    name = solver.upper()
    if name == "SCS":
        opts.setdefault("eps_abs", tol)
        opts.setdefault("eps_rel", tol)
        opts.setdefault("max_iters", 100_000)
    elif name == "CLARABEL":
        opts.setdefault("tol_gap_abs", tol)
        opts.setdefault("tol_gap_rel", tol)
        opts.setdefault("tol_feas", tol)
    try:
        prob.solve(solver=name, **opts)
    except cp.error.SolverError as exc:
        raise SolverError(f"{name}: the solver failed: {exc}") from exc
    status = prob.status
    if status != cp.OPTIMAL:
        raise SolverError(
            f"{name}: solve ended with status {status!r} (expected 'optimal'); "
            "no W is returned. Try solver='barrier', another solver, or a looser tol"
        )
    if w.value is None or s.value is None:
        raise SolverError(f"{name}: status optimal but no primal values were returned")
    stats = prob.solver_stats
    iters = stats.num_iters if stats is not None and stats.num_iters is not None else 0
    lower = None
    return np.asarray(w.value, dtype=float), float(s.value), lower, iters


# ----------------------------------------------------------------------------------------------
# Public API


@small_dense
def optimal_weights(
    G,
    *,
    nonnegative: bool = False,
    zero_diagonal: bool = False,
    solver: str = DEFAULT_SOLVER,
    tol: float = 1e-8,
    max_iter: int = 2000,
    fallback: str | None = "SCS",
    progress=None,
    solver_options: dict | None = None,
) -> WeightsResult:
    """Weights minimising ``rho = ||W - 11^T/n||_2`` on the graph ``G`` (FDLA, or FMMC).

    Solves ``min_w max(lambda_2(W(w)), -lambda_n(W(w)))`` with ``W(w) = I - sum_e w_e a_e a_e^T``,
    ``a_e = e_i - e_j`` (symmetric, ``W 1 = 1``, support = edges of ``G`` plus the diagonal). With
    ``nonnegative=True`` also ``W >= 0`` (the fastest mixing Markov chain); with
    ``zero_diagonal=True`` also ``W_ii = 0`` (no self weight: each node forwards all of its value,
    the variant of several gossip papers). The result is the exact optimum (tight) up to ``tol``;
    ``spectral_gap = 1 - rho``.

    Parameters
    ----------
    G : networkx.Graph
        Connected, undirected, n >= 2 nodes, without self-loop edges (a graph with one is
        rejected: the self weight ``W_ii`` is not an edge here, it is ``1 - sum_j W_ij``, free
        unless ``zero_diagonal``).
    nonnegative : bool
        False: FDLA (negative weights allowed). True: FMMC (``W >= 0``).
    zero_diagonal : bool
        Force ``W_ii = 0`` for every node. On a bipartite graph every such W has the eigenvalue
        -1 (rho = 1), so that is rejected with a TheorylabError; so is a graph with no feasible
        zero-diagonal W (e.g. a path on 3 nodes).
    solver : {"barrier", "SCS", "CLARABEL"} or another cvxpy SDP solver name
        ``"barrier"`` is the structure-exploiting interior-point method of this module (default);
        the others go through cvxpy.
    tol : float in (0, 0.1]
        Target accuracy of rho: the barrier's duality gap, or the cvxpy solver's tolerances.
    max_iter : int >= 1
        Cap on the barrier method's Newton steps (cvxpy solvers use ``solver_options``).
    fallback : str or None
        cvxpy solver used when the barrier method stops without reaching ``tol`` (iteration cap,
        numerical stall, no strictly feasible start); the result's ``message`` says so and a
        :class:`~theorylab.errors.TheorylabWarning` is issued. None: raise SolverError instead.
    progress : None, bool or callable
        Progress of long barrier solves: None (default) writes a line to stderr every 5 s once a
        solve has run 5 s; True every 2 s from the start; False never; a callable receives a
        dict (``step``, ``t``, ``s``, ``gap``, ``label``) at every Newton step.
    solver_options : dict, optional
        Extra keyword arguments for ``cvxpy.Problem.solve``.

    Returns
    -------
    WeightsResult
        ``W`` and ``rho`` (from the eigenvalues of ``W``), with status, solver, time, iterations,
        ``objective_gap`` (solver's ``s`` minus rho) and ``lower_bound`` (barrier only).

    Raises
    ------
    TheorylabError
        ``G`` disconnected, directed, a multigraph, with a self-loop, or n < 2; bad ``tol``; a
        ``solver`` that is neither ``"barrier"`` nor an installed cvxpy solver; ``zero_diagonal``
        on a graph where no zero-diagonal W mixes.
    SolverError
        The solver (and the fallback) reported a status other than optimal (infeasible,
        unbounded, inaccurate) or returned a W that fails validation. No W is returned then.

    Example
    -------
    >>> import networkx as nx
    >>> round(optimal_weights(nx.path_graph(5)).rho, 6)  # cos(pi/5), Boyd et al. 2006
    0.809017
    >>> round(optimal_weights(nx.cycle_graph(5), zero_diagonal=True).rho, 6)  # cos(pi/5)
    0.809017

    References
    ----------
    Xiao & Boyd (2004), Sec. 3-4 (FDLA as an SDP); Boyd, Diaconis & Xiao (2004) (FMMC).
    """
    import warnings

    from theorylab.errors import TheorylabWarning

    t0 = time.perf_counter()
    tol = check_positive("tol", tol)
    if tol > 0.1:
        raise TheorylabError(f"tol must be <= 0.1 (an accuracy of rho), got {tol}")
    max_iter = check_int("max_iter", max_iter, minimum=1)
    if not isinstance(zero_diagonal, bool):
        raise TypeError(f"zero_diagonal must be True or False, got {zero_diagonal!r}")
    if not isinstance(solver, str):
        raise TypeError(f"solver must be a string such as 'barrier' or 'SCS', got {solver!r}")
    if fallback is not None and not isinstance(fallback, str):
        raise TypeError(f"fallback must be a cvxpy solver name or None, got {fallback!r}")
    for name in (solver, fallback):
        if name is not None and name.lower() != "barrier":
            import cvxpy as cp

            if name.upper() not in cp.installed_solvers():
                raise TheorylabError(
                    f"unknown solver {name!r}; use 'barrier' or an installed cvxpy solver: "
                    f"{', '.join(cp.installed_solvers())}"
                )
    nodes, edges = _graph_edges(G)
    n = len(nodes)
    kind = ("FMMC" if nonnegative else "FDLA") + (" (zero diagonal)" if zero_diagonal else "")
    if zero_diagonal:
        _check_zero_diagonal_feasible(G, n, edges, nonnegative)
    elif len(edges) == n * (n - 1) // 2:
        # Complete graph: W = J is feasible (and nonnegative) with rho = 0, the global optimum.
        w = np.full(len(edges), 1.0 / n)
        return _finish(
            nodes, edges, w, nonnegative=nonnegative, status="optimal",
            message=f"{kind}: complete graph, W = 11^T/n is optimal (rho = 0)",
            solver="closed-form", t0=t0, iterations=0, objective=0.0, lower=0.0,
        )  # fmt: skip
    note = ""
    if solver.lower() == "barrier":
        report = _progress_printer(progress, f"{kind} barrier (n = {n}, m = {len(edges)})")
        try:
            w, s, gap, steps = _barrier_solve(
                n, edges, nonnegative, tol=tol, max_iter=max_iter,
                zero_diagonal=zero_diagonal, report=report,
            )  # fmt: skip
        except SolverError as exc:
            if fallback is None:
                raise
            note = f"barrier stopped ({exc}); fell back to {fallback.upper()}. "
            warnings.warn(f"{kind}: {note}", TheorylabWarning, stacklevel=3)
            solver = fallback
        else:
            _check_mixes(zero_diagonal, s)
            return _finish(
                nodes, edges, w, nonnegative=nonnegative, status="optimal",
                message=f"{kind}: barrier method converged, duality gap {gap:.2e} <= tol {tol:.1e}",
                solver="barrier", t0=t0, iterations=steps, objective=s, lower=s - gap,
            )  # fmt: skip
    w, s, lower, iters = _cvxpy_solve(
        n, edges, nonnegative, solver=solver, tol=tol, solver_options=solver_options,
        zero_diagonal=zero_diagonal,
    )  # fmt: skip
    if zero_diagonal:
        _check_mixes(zero_diagonal, s)
        w = _polish_zero_diagonal(n, edges, w, nonnegative)
    return _finish(
        nodes, edges, w, nonnegative=nonnegative, status="optimal",
        message=f"{kind}: {note}{solver.upper()} reported status optimal",
        solver=solver.upper(), t0=t0, iterations=iters, objective=s, lower=lower,
    )  # fmt: skip


def _check_zero_diagonal_feasible(G, n, edges, nonnegative):
    """Raise TheorylabError when no zero-diagonal W (``N w = 1``) can mix on the graph."""
    from theorylab.topology import check_graph

    if nx.is_bipartite(check_graph(G)):
        raise TheorylabError(
            "zero_diagonal=True on a bipartite graph: every W with W_ii = 0 there has the "
            "eigenvalue -1 (rho = 1, no averaging); allow self weights or add an odd cycle"
        )
    N = _node_incidence(n, edges)
    w, *_ = np.linalg.lstsq(N.toarray(), np.ones(n), rcond=None)
    if not np.allclose(N @ w, 1.0, atol=1e-9):
        raise TheorylabError(
            "zero_diagonal=True: no W on this graph has W_ii = 0 for every node "
            "(N w = 1 has no solution); allow self weights"
        )
    if nonnegative and _zero_diagonal_start(n, edges, nonnegative) is None:
        from scipy.optimize import linprog

        res = linprog(np.zeros(len(edges)), A_eq=N, b_eq=np.ones(n), bounds=(0, None))
        if res.status != 0:
            raise TheorylabError(
                "zero_diagonal=True, nonnegative=True: no W >= 0 on this graph has W_ii = 0 "
                "for every node; allow self weights or negative weights"
            )


def _check_mixes(zero_diagonal, s):
    """Zero diagonal: an optimal rho bound ``s`` of 1 means no such W averages on this graph."""
    if zero_diagonal and s >= 1.0 - 1e-6:
        raise TheorylabError(
            f"zero_diagonal=True: the optimal rho on this graph is 1 (solver bound {s:.9f}): no W "
            "with W_ii = 0 averages here (e.g. a degree-1 node forces its edge weight to 1); "
            "allow self weights"
        )


def _polish_zero_diagonal(n, edges, w, nonnegative):
    """Project a solver's ``w`` onto ``N w = 1`` (removes the solver's feasibility residual)."""
    N = _node_incidence(n, edges).toarray()
    r = 1.0 - N @ w
    w = w + np.linalg.lstsq(N, r, rcond=None)[0]
    if nonnegative:
        w = np.maximum(w, 0.0)
    return w


def fmmc_weights(G, **kwargs) -> WeightsResult:
    """The fastest mixing Markov chain on ``G``: :func:`optimal_weights` with ``W >= 0``.

    ``rho = ||W - 11^T/n||_2`` is the second largest eigenvalue modulus (SLEM) of the chain.

    Example
    -------
    >>> import networkx as nx
    >>> round(fmmc_weights(nx.star_graph(7)).rho, 6)  # (n-2)/(n-1) for the star S_8
    0.857143
    """
    return optimal_weights(G, nonnegative=True, **kwargs)


# ----------------------------------------------------------------------------------------------
# First-order method


def _project_fmmc(v: np.ndarray, N: sp.csr_matrix, iters: int = 500) -> np.ndarray:
    """Euclidean projection of ``v`` onto ``{w >= 0, N w <= 1}`` by accelerated dual ascent.

    ``w(mu) = max(0, v - N^T mu)`` maximises the Lagrangian for multipliers ``mu >= 0``; the dual
    is concave with gradient ``N w(mu) - 1`` and Lipschitz constant ``<= ||N||^2 <= 2 d_max``.
    The returned point is made exactly feasible by scaling each edge by its endpoints' excess.
    """
    w = np.maximum(v, 0.0)
    if np.max(N @ w, initial=0.0) <= 1.0:
        return w
    L = 2.0 * float(np.max(N.sum(axis=1)))
    mu = np.zeros(N.shape[0])
    y, theta = mu.copy(), 1.0
    for _ in range(iters):
        w = np.maximum(v - N.T @ y, 0.0)
        mu_new = np.maximum(y + (N @ w - 1.0) / L, 0.0)
        theta_new = 0.5 * (1.0 + math.sqrt(1.0 + 4.0 * theta * theta))
        y = mu_new + ((theta - 1.0) / theta_new) * (mu_new - mu)
        mu, theta = mu_new, theta_new
        if np.max(N @ np.maximum(v - N.T @ mu, 0.0)) <= 1.0 + 1e-10:
            break
    w = np.maximum(v - N.T @ mu, 0.0)
    over = np.maximum(N @ w, 1.0)
    rows = N.tocoo()
    edge_over = np.ones(len(w))
    np.maximum.at(edge_over, rows.col, over[rows.row])
    return w / edge_over


class _Spectrum:
    """Extreme eigenpairs of ``W(w)`` on ``1^perp``: dense ``eigh`` or sparse Lanczos."""

    def __init__(self, n, edges, dense):
        self.n, self.edges, self.dense = n, edges, dense
        self.B = _projected_incidence(n, edges) if dense else None
        self.v_hi = self.v_lo = None

    def __call__(self, w):
        """Return ``(lambda_2, u, lambda_n, v)`` with unit eigenvectors in node coordinates."""
        n, edges = self.n, self.edges
        if self.dense:
            Q = _perp_basis(n)
            mu, V = np.linalg.eigh(np.eye(n - 1) - (self.B * w) @ self.B.T)
            return mu[-1], Q @ V[:, -1], mu[0], Q @ V[:, 0]
        W = sp.csr_matrix(edge_weights_to_matrix_sparse(n, edges, w))

        def matvec(x):
            x = np.asarray(x).reshape(-1)
            return W @ x - x.mean()

        op = spla.LinearOperator((n, n), matvec=matvec, dtype=float)
        rng = np.random.default_rng(0)
        v0 = self.v_hi if self.v_hi is not None else rng.standard_normal(n)
        lam_hi, U = spla.eigsh(op, k=1, which="LA", v0=v0, tol=1e-10, maxiter=20 * n)
        v0 = self.v_lo if self.v_lo is not None else rng.standard_normal(n)
        lam_lo, V = spla.eigsh(op, k=1, which="SA", v0=v0, tol=1e-10, maxiter=20 * n)
        self.v_hi, self.v_lo = U[:, 0], V[:, 0]
        return lam_hi[0], U[:, 0], lam_lo[0], V[:, 0]


def edge_weights_to_matrix_sparse(n: int, edges: np.ndarray, w: np.ndarray) -> sp.csr_matrix:
    """Sparse CSR version of :func:`edge_weights_to_matrix` (same W, O(n + m) memory)."""
    i, j = edges[:, 0], edges[:, 1]
    off = sp.coo_matrix(
        (np.concatenate([w, w]), (np.concatenate([i, j]), np.concatenate([j, i]))), shape=(n, n)
    ).tocsr()
    diag = 1.0 - np.asarray(off.sum(axis=1)).reshape(-1)
    return (off + sp.diags(diag)).tocsr()


@small_dense
def subgradient_weights(
    G,
    *,
    nonnegative: bool = False,
    w0: np.ndarray | None = None,
    max_iter: int = 5000,
    rtol: float = 1e-4,
    patience: int = 2000,
    dense_max_n: int = 400,
    time_limit_s: float | None = None,
    level_patience: int | None = None,
) -> WeightsResult:
    """Minimise ``rho(W(w))`` by the projected subgradient method (Xiao & Boyd 2004, Sec. 5).

    ``f(w) = max(lambda_2(W), -lambda_n(W)) = rho`` (``rho = ||W - 11^T/n||_2``, eigenvalues on
    ``1^perp``). If ``lambda_2`` is active with unit eigenvector ``u``, ``g_e = -(u_i - u_j)^2`` is
    a subgradient; if ``-lambda_n`` is, with ``v``, ``g_e = (v_i - v_j)^2``. Steps use Polyak's
    rule with a target level, ``w <- P(w - (f(w) - f_target) g / ||g||^2)``, the target
    ``f_best - delta`` halving ``delta`` when ``level_patience`` steps bring no progress (a
    variable-target-level method, which converges to the optimum; Goffin & Kiwiel 1999), and ``P``
    the projection onto ``{w >= 0, N w <= 1}`` for FMMC (identity for FDLA). The best iterate is
    kept. Eigenpairs: dense ``eigh`` for n <= ``dense_max_n``, else Lanczos (``eigsh``, O(m) per
    product, warm-started).

    Guarantee: ``rho`` of the result is an upper bound on the optimum; no certificate of distance
    to it (use :func:`optimal_weights` where an SDP is affordable).

    Parameters
    ----------
    G : networkx.Graph
        Connected, undirected, n >= 2.
    nonnegative : bool
        FMMC (``W >= 0``) when True, FDLA otherwise.
    w0 : array_like of shape (m,), optional
        Starting edge weights (default Metropolis, ``1/(1 + max(d_i, d_j))``).
    max_iter : int >= 1
        Iteration cap (status ``"max_iter"`` when reached).
    rtol : float > 0
        Stop (status ``"converged"``) when ``patience`` consecutive steps improve the best spectral
        gap by less than the fraction ``rtol`` of it.
    patience : int >= 10
        See ``rtol``.
    dense_max_n : int
        Largest n that uses dense eigendecompositions (n < 10 always does). A complete graph
        returns ``W = 11^T/n`` (rho = 0, optimal) without iterating.
    time_limit_s : float, optional
        Wall-clock cap; status ``"max_iter"`` when hit.
    level_patience : int >= 1, optional
        Steps without reaching the target level before ``delta`` is halved (default
        ``max_iter // 5``: measured best of 20..1000 on the benchmark graphs, where 5000 steps
        reach 99% of the optimal gap at n <= 200).

    Returns
    -------
    WeightsResult
        With ``solver="subgradient"``, ``objective_gap = nan`` and ``lower_bound = nan``.

    Raises
    ------
    TheorylabError
        Bad graph or parameters.

    Example
    -------
    >>> import networkx as nx
    >>> res = subgradient_weights(nx.path_graph(6))
    >>> abs(res.rho - 0.866025) < 1e-3  # optimum cos(pi/6)
    True

    References
    ----------
    Xiao & Boyd (2004), Sec. 5; Boyd, Diaconis & Xiao (2004), Sec. 5. J.-L. Goffin and K. C.
    Kiwiel, "Convergence of a simple subgradient level method", Math. Program. 85 (1999) 207-211.
    """
    t0 = time.perf_counter()
    max_iter = check_int("max_iter", max_iter, minimum=1)
    patience = check_int("patience", patience, minimum=10)
    rtol = check_positive("rtol", rtol)
    if level_patience is None:
        level_patience = max(1, max_iter // 5)
    level_patience = check_int("level_patience", level_patience, minimum=1)
    nodes, edges = _graph_edges(G)
    n, m = len(nodes), len(edges)
    kind = "FMMC" if nonnegative else "FDLA"
    if m == n * (n - 1) // 2:
        # Complete graph: W = J is feasible (and nonnegative) with rho = 0, the global optimum.
        return _finish(
            nodes, edges, np.full(m, 1.0 / n), nonnegative=nonnegative, status="converged",
            message=f"{kind}: complete graph, W = 11^T/n is optimal (rho = 0)",
            solver="subgradient", t0=t0, iterations=0, objective=None, lower=None,
        )  # fmt: skip
    N = _node_incidence(n, edges)
    if w0 is None:
        w = _metropolis_edge_weights(n, edges)
    else:
        w = np.asarray(w0, dtype=float).reshape(-1)
        if w.shape != (m,):
            raise TheorylabError(f"w0 must have shape ({m},) (one weight per edge), got {w.shape}")
        if nonnegative:
            w = _project_fmmc(w, N)
    # ARPACK needs a few Lanczos vectors: small graphs always take eigh (as theorylab.spectral)
    spectrum = _Spectrum(n, edges, dense=n <= max(dense_max_n, 9))
    e_i, e_j = edges[:, 0], edges[:, 1]
    lam2, u, lamn, v = spectrum(w)
    f = max(lam2, -lamn)
    w_best, f_best = w.copy(), f
    delta = 0.5 * (1.0 - f)  # target level f_best - delta
    since_best = since_target = 0
    status, k = "max_iter", 0
    while k < max_iter:
        k += 1
        # subgradient at w (average of both sides' when they tie)
        g = np.zeros(m)
        if lam2 >= -lamn - 1e-12:
            g -= (u[e_i] - u[e_j]) ** 2
        if -lamn >= lam2 - 1e-12:
            g += (v[e_i] - v[e_j]) ** 2
        gg = float(g @ g)
        if gg == 0.0:
            status = "converged"
            break
        step = (f - (f_best - delta)) / gg
        w = w - step * g
        if nonnegative:
            w = _project_fmmc(w, N)
        lam2, u, lamn, v = spectrum(w)
        f = max(lam2, -lamn)
        if f < f_best - rtol * (1.0 - f_best):
            since_best = 0
        else:
            since_best += 1
        if f < f_best:
            w_best, f_best = w.copy(), f
        if f <= f_best - 0.5 * delta or f < f_best - 0.5 * delta + 1e-15:
            since_target = 0
        else:
            since_target += 1
            if since_target >= level_patience:
                delta *= 0.5
                since_target = 0
                w = w_best.copy()  # restart from the best point with the smaller target
                lam2, u, lamn, v = spectrum(w)
                f = max(lam2, -lamn)
        if since_best >= patience:
            status = "converged"
            break
        if time_limit_s is not None and time.perf_counter() - t0 > time_limit_s:
            break
    message = (
        f"{kind} subgradient: {'stopped' if status == 'converged' else 'cap reached'} after "
        f"{k} iterations (no gain of rtol = {rtol:g} of the gap in {patience} steps)"
        if status == "converged"
        else f"{kind} subgradient: iteration or time cap reached after {k} iterations"
    )
    return _finish(
        nodes, edges, w_best, nonnegative=nonnegative, status=status, message=message,
        solver="subgradient", t0=t0, iterations=k, objective=None, lower=None,
    )  # fmt: skip


# ----------------------------------------------------------------------------------------------
# Comparison of weight rules

#: Heuristic rules compared against the optima (names of :data:`theorylab.mixing.WEIGHT_RULES`).
HEURISTIC_RULES = ("max-degree", "metropolis", "best-constant")


def _iterations(rho: float, gap: float, eps: float) -> float:
    """Gossip rounds with ``rho^t <= eps``; inf when rho is 1 to rounding (no guarantee)."""
    if gap <= 1e-12:
        return math.inf
    return consensus_iterations(rho, eps, spectral_gap=gap)


@small_dense
def compare_weight_rules(
    G,
    *,
    eps: float = 1e-6,
    rules=HEURISTIC_RULES,
    sdp: bool = True,
    solver: str = DEFAULT_SOLVER,
    tol: float = 1e-8,
) -> list[dict]:
    """rho under each weight rule on ``G``, with the FDLA and FMMC optima, as table rows.

    Each row: ``rule``, ``rho`` (``= ||W - 11^T/n||_2``), ``spectral_gap`` (``1 - rho``),
    ``iterations`` (gossip rounds to shrink the consensus error by ``eps``, from
    :func:`theorylab.spectral.consensus_iterations`), ``speedup`` (Metropolis rounds / this
    rule's rounds), ``nonneg`` (whether W >= 0) and ``time_s``. rho and the gap come from
    :func:`theorylab.spectral.extreme_eigenvalues` on the dense W. Heuristics:
    ``theorylab.mixing.WEIGHT_RULES``; optima: ``optimal-symmetric`` (FDLA) and
    ``optimal-nonnegative`` (FMMC) by :func:`optimal_weights` when ``sdp``. Every optimum is <=
    the heuristics it generalises (FDLA <= all of them; FMMC <= every rule whose W is >= 0).

    Example
    -------
    >>> import networkx as nx
    >>> rows = compare_weight_rules(nx.star_graph(7))
    >>> [round(r["rho"], 4) for r in rows]
    [0.8571, 0.875, 0.7778, 0.7778, 0.8571]
    """
    import warnings

    from theorylab.errors import TheorylabWarning
    from theorylab.mixing import mixing_matrix
    from theorylab.topology import check_graph

    G = check_graph(G)
    rows = []
    for rule in rules:
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", TheorylabWarning)  # rho = 1 is reported in the row
            W = np.asarray(mixing_matrix(G, rule, sparse=False), dtype=float)
        spectrum = extreme_eigenvalues(W)
        rows.append(
            {"rule": rule, "rho": spectrum.rho, "gap": spectrum.spectral_gap,
             "nonneg": bool(W.min() >= -1e-15), "time_s": time.perf_counter() - t0}
        )  # fmt: skip
    if sdp:
        for rule, nonneg in (("optimal-symmetric", False), ("optimal-nonnegative", True)):
            res = optimal_weights(G, nonnegative=nonneg, solver=solver, tol=tol)
            rows.append(
                {"rule": rule, "rho": res.rho, "gap": res.spectral_gap,
                 "nonneg": bool(res.W.min() >= -1e-15), "time_s": res.solve_time_s}
            )  # fmt: skip
    for r in rows:
        r["spectral_gap"] = r.pop("gap")
        r["iterations"] = _iterations(r["rho"], r["spectral_gap"], eps)
    base_it = next((r["iterations"] for r in rows if r["rule"] == "metropolis"), None)
    for r in rows:
        r["speedup"] = (
            base_it / r["iterations"]
            if base_it is not None and math.isfinite(r["iterations"]) and r["iterations"] > 0
            else None
        )
    order = ("rule", "rho", "spectral_gap", "iterations", "speedup", "nonneg", "time_s")
    return [{k: r[k] for k in order} for r in rows]
