"""Spectral quantities of mixing matrices and schedules: rho, spectral gap, extreme eigenvalues.

Convention (shared/DESIGN.md), used by every function here:

* ``rho = ||W - 11^T/n||_2`` (the per-step contraction of the consensus error
  ``||W x - xbar|| <= rho ||x - xbar||``, tight), ``spectral_gap = 1 - rho``;
* for symmetric W with eigenvalues ``1 = lambda_1 >= lambda_2 >= ... >= lambda_n``:
  ``rho = max(lambda_2, -lambda_n)``;
* a schedule W^(0..P-1) contracts by ``||W^(P-1)...W^(0) - J||_2`` per period; its per-round rate
  is that to the power 1/P (:func:`schedule_rho`).

Methods. ``method='dense'`` uses LAPACK (``eigvalsh`` of ``W - 3J``, which moves the consensus
eigenvalue 1 to -2; ``svd`` for non-symmetric W): O(n^3), exact to ~1e-15, the default for
n <= 2000. ``method='sparse'`` (default above 2000) works on the sparse W:

* symmetric W: 60 plain Lanczos steps on ``P W P`` (P = I - J) bracket the spectrum. A gap
  near +1 or -1 (1-D / 2-D-like graphs, gap down to ~1e-11) is computed directly as a gap by
  shift-invert Lanczos: ``(1 + delta) I - W`` (delta = 1e-12) is factorised once with SuperLU
  (symmetric mode, minimum-degree ordering; dense rows such as a star's hub ordered last by
  hand, where minimum degree is O(n^2)), the ones vector is projected out, and the top
  Ritz value theta of ``P ((1 + delta) I - W)^{-1} P`` gives ``1 - lambda_2 = 1/theta - delta``
  with no cancellation; a handful of iterations suffice because the eigenvalues near the pole
  are well separated. Where that LU is costly (2-D-like graphs of mean degree >= 7 and
  n >= 15000, e.g. random geometric: ~2 s of SuperLU at n = 1e5) the gap is instead the
  smallest eigenvalue of ``L = I - W`` on 1^perp by block LOBPCG (3 vectors) preconditioned by
  a two-level method (Jacobi smoothing and an aggregation coarse space, its small matrix
  factorised by SuperLU), stopped when the quadratic residual bound puts the gap within
  ``tol * gap`` (relative; the Rayleigh quotient is computed on L directly, no cancellation);
  shift-invert remains the fallback if it does not converge in 80 iterations. Expanders
  (gap > 0.01), where LU fill-in would be ruinous, continue the same plain Lanczos run (no
  restarts, no reorthogonalisation: one sparse matvec and a few O(n) passes per step, against
  ARPACK's O(n * ncv) reorthogonalisation) until the Ritz residual is <= tol * |theta|.
  ``lambda_n`` uses the same routes around -1, at the Gershgorin bound (plain
  Lanczos for 300 steps first, then shift-invert), or from the same Lanczos run; when the
  Gershgorin bound proves ``-lambda_n <= lambda_2 + 1e-13`` (so rho depends on it by at most
  1e-13; ties such as the hypercube's -lambda_n = lambda_2 included) the Lanczos run gets only
  60 more steps, and if it has not converged the reported lambda_n is the Ritz value (an upper
  bound) and ``lambda_n_exact`` is False.
* non-symmetric W: ``svds`` on the LinearOperator ``W - J`` (one matvec and one transposed
  matvec per Lanczos step; the step count grows like 1/sqrt(singular-value gap), so tiny gaps
  are slow).

References
----------
Xiao, Boyd, "Fast linear iterations for distributed averaging", 2004 (rho, Thm 1).
Lehoucq, Sorensen, Yang, ARPACK Users' Guide, SIAM 1998 (shift-invert mode).
Knyazev, "Toward the optimal preconditioned eigensolver: locally optimal block preconditioned
conjugate gradient method", SIAM J. Sci. Comput. 23(2), 2001 (LOBPCG).
Vanek, Mandel, Brezina, "Algebraic multigrid by smoothed aggregation", Computing 56, 1996
(aggregation coarse spaces).
Paige, "Accuracy and effectiveness of the Lanczos algorithm for the symmetric eigenproblem",
Linear Algebra Appl. 34, 1980 (plain Lanczos without reorthogonalisation).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass

import numpy as np
import scipy.linalg
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from theorylab._threads import small_dense
from theorylab.errors import SolverError, TheorylabError, check_positive, check_probability
from theorylab.stochastic import DENSE_LIMIT, Schedule, check_mixing_matrix, check_schedule

__all__ = [
    "Spectrum",
    "extreme_eigenvalues",
    "rho",
    "spectral_gap",
    "eigenvalues",
    "lambda2",
    "lambda_n",
    "consensus_iterations",
    "schedule_rho",
    "spectrum_summary",
    "DENSE_LIMIT",
]

_METHODS = ("auto", "dense", "sparse")
_DELTA = 1e-12  # shift distance of shift-invert: well below the gaps of interest (>= ~1e-11)
_PLAIN_GAP = 1e-2  # probe gap above which plain Lanczos is used (expanders: LU fill-in is ruinous)
_PROBE_STEPS = 60
_LANCZOS_MAX_STEPS = 20000  # plain Lanczos steps before falling back to shift-invert
_NEAR_BOUND_STEPS = 300  # Lanczos steps for lambda_n near the Gershgorin bound before shift-invert
_LOBPCG_MIN_NNZ = 8  # mean nonzeros per row of W from which a small gap goes to LOBPCG ...
_LOBPCG_MIN_N = 15000  # ... at this size and above (random geometric: SuperLU is faster below)
_LOBPCG_MIN_GAP = 1e-8  # coarse upper bound on the gap below which shift-invert is used
_TIE = 1e-13  # Gershgorin bound above lambda_2 by at most this: lambda_n cannot change rho more


@dataclass(frozen=True)
class Spectrum:
    """Extreme spectrum of a mixing matrix (rho = ||W - 11^T/n||_2, spectral_gap = 1 - rho).

    ``gap2 = 1 - lambda2`` and ``gapn = 1 + lambda_n`` are computed directly (no cancellation on
    the sparse shift-invert route); ``lambda2``, ``lambda_n``, ``gap2``, ``gapn`` are None for a
    non-symmetric W. ``lambda_n_exact`` is False only when lambda_n is a Lanczos upper bound that
    provably does not affect rho.
    """

    n: int
    rho: float
    spectral_gap: float
    lambda2: float | None
    lambda_n: float | None
    gap2: float | None
    gapn: float | None
    symmetric: bool
    method: str
    lambda_n_exact: bool = True

    def to_dict(self) -> dict:
        return asdict(self)


# ---------------------------------------------------------------------------- input handling
def _as_matrix(W):
    """Validate W (real, square, finite, rows sum to 1) and return float64 dense or csr."""
    return check_mixing_matrix(W, stochasticity="row", connected=False, atol=1e-8)


def _is_symmetric(W, atol=1e-12) -> bool:
    if sp.issparse(W):
        D = abs(W - W.T)
        return (not D.nnz) or float(D.max()) <= atol
    return bool(np.allclose(W, W.T, rtol=0.0, atol=atol))


def _choose(method: str, n: int) -> str:
    if method not in _METHODS:
        raise TheorylabError(f"method must be one of {_METHODS}, got {method!r}")
    if method == "auto":
        return "dense" if n <= DENSE_LIMIT else "sparse"
    if method == "sparse" and n < 10:
        return "dense"  # ARPACK needs k < n - 1 and a few Lanczos vectors
    return method


def _dense(W):
    return W.toarray() if sp.issparse(W) else W


def _proj(x):
    return x - x.mean()


def _v0(n: int) -> np.ndarray:
    """Fixed start vector orthogonal to 1 (deterministic results)."""
    return _proj(np.random.default_rng(0).standard_normal(n))


# ---------------------------------------------------------------------------- dense
@small_dense(size=lambda W, *a, **k: W.shape[0])
def _dense_spectrum(W, symmetric: bool) -> Spectrum:
    W = _dense(W)
    n = W.shape[0]
    if symmetric:
        # W symmetric with W1 = 1: the consensus eigenvalue 1 moves to 1 - 3 = -2, below all.
        eig = np.linalg.eigvalsh(W - 3.0 / n)[1:]
        lam2, lamn = float(eig[-1]), float(eig[0])
        rho_ = max(lam2, -lamn)
        return Spectrum(
            n, rho_, min(1 - lam2, 1 + lamn), lam2, lamn, 1 - lam2, 1 + lamn, True, "dense"
        )
    s = scipy.linalg.svdvals(W - 1.0 / n)
    rho_ = float(s[0])
    return Spectrum(n, rho_, 1 - rho_, None, None, None, None, False, "dense-svd")


# ---------------------------------------------------------------------------- sparse helpers
class _Lanczos:
    """Plain Lanczos (no reorthogonalisation, no restarts) on a symmetric operator.

    Only the tridiagonal T_m (alpha, beta) and two vectors are kept: O(n) memory and, per step,
    one matvec plus a few O(n) passes (no O(n * ncv) reorthogonalisation as in ARPACK). Loss of
    orthogonality only adds spurious copies of converged Ritz values; the extreme Ritz values
    stay inside the spectrum (Paige 1980), so the top Ritz value is a lower bound on the top
    eigenvalue and the bottom one an upper bound on the bottom eigenvalue. The residual of the
    Ritz pair (theta, y) is ``beta_m |s_m|`` (s the eigenvector of T_m), and some eigenvalue
    lies within it of theta.
    """

    def __init__(self, matvec, v0):
        self.matvec = matvec
        self.q = v0 / math.sqrt(float(np.square(v0).sum()))
        self.q_prev = np.zeros_like(self.q)
        self.alpha: list[float] = []
        self.beta: list[float] = []  # beta[k] couples step k and k + 1; beta[-1] is the residual
        self.breakdown = False

    def extend(self, m: int) -> None:
        """Run m more steps (fewer on breakdown: the Krylov space is then invariant)."""
        # inner products without BLAS: threaded level-1 BLAS is slow on small shared machines
        q, q_prev = self.q, self.q_prev
        b = self.beta[-1] if self.beta else 0.0
        for _ in range(m):
            if self.breakdown:
                break
            w = self.matvec(q)
            if b:
                w -= b * q_prev
            a = float(np.multiply(q, w).sum())
            w -= a * q
            b = math.sqrt(float(np.square(w).sum()))
            self.alpha.append(a)
            self.beta.append(b)
            if b < 1e-12:
                self.breakdown = True
                break
            q_prev, q = q, w / b
        self.q, self.q_prev = q, q_prev

    @property
    def steps(self) -> int:
        return len(self.alpha)

    def ritz(self, top: bool) -> tuple[float, float]:
        """(theta, residual bound) of the top (or bottom) Ritz pair of T_m."""
        m = self.steps
        i = m - 1 if top else 0
        theta, S = scipy.linalg.eigh_tridiagonal(
            np.array(self.alpha), np.array(self.beta[: m - 1]), select="i", select_range=(i, i)
        )
        residual = 0.0 if self.breakdown else abs(self.beta[-1] * float(S[-1, 0]))
        return float(theta[0]), residual

    def converge(self, top: bool, tol: float, max_steps: int, check_every: int = 10):
        """Extend until the Ritz pair's residual is <= tol * |theta| (ARPACK's criterion, with
        ARPACK's floor eps^(2/3) on |theta|) or max_steps; returns (theta, residual, converged).
        """
        eps = np.finfo(np.float64).eps
        tol = max(tol, eps)
        while True:
            theta, residual = self.ritz(top)
            if residual <= tol * max(abs(theta), eps ** (2 / 3)):
                return theta, residual, True
            if self.steps >= max_steps:
                return theta, residual, False
            self.extend(min(check_every, max_steps - self.steps))


class _PermutedLU:
    """``M^{-1}`` from the LU of ``M[p][:, p]`` (a symmetric permutation chosen by the caller)."""

    def __init__(self, lu, p):
        self.lu, self.p, self.nnz = lu, p, lu.nnz

    def solve(self, b):
        x = np.empty_like(b)
        x[self.p] = self.lu.solve(b[self.p])
        return x


def _splu_spd(M):
    """SuperLU of a (near) SPD matrix: symmetric mode, no pivoting; pivoting fallback.

    Ordering: minimum degree on A + A^T (MMD_AT_PLUS_A), except that dense rows (degree above
    ``max(100, 10 sqrt(n))``, e.g. a star's hub) are ordered last by hand: minimum degree with a
    dense row costs O(n^2) (a star of 1e5 nodes took 6 s), and eliminating those rows last
    gives them no fill beyond their own row and column. The other rows keep their minimum-degree
    order (from the factorisation of their block, taken as the order of the whole).
    """
    M = sp.csc_matrix(M)
    n = M.shape[0]
    counts = np.diff(M.indptr)
    dense = counts > max(100, 10 * math.sqrt(n))
    opts = {"diag_pivot_thresh": 0.0, "options": {"SymmetricMode": True}}
    try:
        if dense.any() and not dense.all():
            rest = np.flatnonzero(~dense)
            sub = M[rest][:, rest].tocsc()
            order = np.argsort(spla.splu(sub, permc_spec="MMD_AT_PLUS_A", **opts).perm_c)
            p = np.concatenate([rest[order], np.flatnonzero(dense)])
            lu = spla.splu(M[p][:, p].tocsc(), permc_spec="NATURAL", **opts)
            return _PermutedLU(lu, p)
        return spla.splu(M, permc_spec="MMD_AT_PLUS_A", **opts)
    except RuntimeError:
        return spla.splu(M)


def _gap_shift_invert(M, n, deflate, tol, v0):
    """Smallest eigenvalue mu of the PSD-on-1^perp matrix M - delta I, via shift-invert.

    ``M = A + delta I``; returns ``1/theta - delta`` with theta the top eigenvalue of
    ``P M^{-1} P`` (or ``M^{-1}`` without deflation), and the LU fill (nnz of L + U).
    """
    lu = _splu_spd(M)
    if deflate:

        def matvec(x):
            return _proj(lu.solve(_proj(np.asarray(x, dtype=np.float64).ravel())))
    else:

        def matvec(x):
            return lu.solve(np.asarray(x, dtype=np.float64).ravel())

    # the eigenvalues of the shift-inverted operator near the pole are well separated: a few
    # plain Lanczos steps converge (no restarts, no reorthogonalisation needed)
    lanczos = _Lanczos(matvec, v0)
    lanczos.extend(min(n - 1, 6))
    theta, _, converged = lanczos.converge(True, tol, min(n - 1, 300), check_every=2)
    if not converged:
        raise SolverError(
            f"shift-invert Lanczos did not converge in {lanczos.steps} steps; "
            "retry with method='dense' (O(n^3))"
        )
    return 1.0 / theta - _DELTA, lu.nnz


# ---------------------------------------------------------------------------- LOBPCG + two-level
def _laplacian(W) -> sp.csr_array:
    """``L = I - W`` (for Metropolis W a weighted graph Laplacian; its gap is 1 - lambda_2)."""
    return sp.csr_array(sp.eye_array(W.shape[0], format="csr") - W)


def _aggregates(W, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Aggregates of W's graph: a maximal independent set (Luby's rounds with a seeded random
    priority) as roots, every other node joined to its adjacent root of highest priority.

    Returns (aggregate index per node, the root of each aggregate); all vectorised (a sparse
    pattern times a vector and a segmented max per round; about five rounds on a geometric graph).
    """
    n = W.shape[0]
    pat = sp.csr_array(abs(W) + sp.eye_array(n, format="csr"))  # self included: no empty row
    pat.data[:] = 1.0
    idx, starts = pat.indices, pat.indptr[:-1]
    p = np.random.default_rng(seed).permutation(n).astype(np.float64) + 1.0  # distinct, > 0
    undecided = np.ones(n, dtype=bool)
    root = np.zeros(n, dtype=bool)
    q = p
    while undecided.any():
        new = undecided & (q >= np.maximum.reduceat(q[idx], starts))  # local maxima
        root |= new
        undecided &= ~(pat @ new.astype(np.float64) > 0)  # roots and their neighbours decided
        q = np.where(undecided, p, 0.0)
    best = np.maximum.reduceat(np.where(root[idx], p[idx], 0.0), starts)  # > 0: maximality
    roots = np.flatnonzero(root)
    of_priority = np.zeros(n + 1, dtype=np.int64)
    of_priority[p[roots].astype(np.int64)] = np.arange(roots.size)
    return of_priority[best.astype(np.int64)], roots


class _TwoLevel:
    """Symmetric two-level preconditioner for ``L = I - W`` (aggregation coarse space).

    One damped-Jacobi step (weight 2/3), the coarse correction ``P (P^T L P + s P^T P)^{-1} P^T``
    with P the piecewise-constant prolongator on :func:`_aggregates` (s = 1e-5 makes the coarse
    matrix definite; it carries the constant, which the caller projects out), one damped-Jacobi
    step: an SPD approximation of L^+ on the smooth modes, which Jacobi alone cannot reach.
    """

    _OMEGA = 2.0 / 3.0
    _SHIFT = 1e-5

    def __init__(self, L, dtype=np.float32):
        n = L.shape[0]
        # the smoothing runs in single precision (half the memory traffic of the sparse
        # products): a preconditioner needs no more, LOBPCG's residuals stay in double
        self.dtype = dtype
        self.L = L.astype(dtype)
        self.dinv = (self._OMEGA / L.diagonal()).astype(dtype)[:, None]
        agg, roots = _aggregates(L)
        nc = roots.size
        self.P = sp.csr_array((np.ones(n, dtype=dtype), (np.arange(n), agg)), shape=(n, nc))
        self.PT = sp.csr_array(self.P.T)
        sizes = sp.diags_array(np.bincount(agg, minlength=nc).astype(np.float64))
        P64 = self.P.astype(np.float64)
        coarse = sp.csc_array(P64.T @ (L @ P64) + self._SHIFT * sizes)
        self.coarse = _splu_spd(coarse)
        self._coarse_matrix, self._sizes, self.nc = coarse, sizes.diagonal(), nc

    def coarse_modes(self, k: int) -> tuple[np.ndarray, float]:
        """The k slowest non-constant modes of the coarse problem (``A_c v = mu D v``, D the
        aggregate sizes), prolongated: a start block close to L's slowest modes; and
        ``mu_2 - s``, the Rayleigh quotient of L at the first of them (P v is orthogonal to 1
        and ``(P v)^T (L + s) P v = v^T A_c v``, ``(P v)^T P v = v^T D v``): an upper bound on
        the gap, to eigsh's tolerance."""
        n_c = self.nc
        inv = spla.LinearOperator((n_c, n_c), matvec=self.coarse.solve, dtype=np.float64)
        v0 = np.random.default_rng(0).standard_normal(n_c)
        mu, V = spla.eigsh(
            self._coarse_matrix,
            k=k + 1,
            M=sp.diags_array(self._sizes),
            sigma=0.0,
            OPinv=inv,
            v0=v0,
            tol=1e-6,
        )
        order = np.argsort(mu)
        return self.P.astype(np.float64) @ V[:, order[1:]], float(mu[order[1]]) - self._SHIFT

    def __call__(self, R):
        R = R.astype(self.dtype)
        X = self.dinv * R
        Rc = np.asarray(self.PT @ (R - self.L @ X), dtype=np.float64)
        X += self.P @ self.coarse.solve(Rc).astype(self.dtype)
        X += self.dinv * (R - self.L @ X)
        return X.astype(np.float64)


def _orthonormal(S, drop=1e-12):
    """Orthonormal basis of span(S) (SVQB: eigen-decomposition of the scaled Gram matrix;
    directions below ``drop`` relative are dropped), and the transform T with basis = S T."""
    d = 1.0 / np.sqrt(np.maximum(np.einsum("ij,ij->j", S, S), 1e-300))
    G = (S.T @ S) * np.outer(d, d)
    e, V = np.linalg.eigh(G)
    keep = e > drop * e[-1]
    T = (d[:, None] * V[:, keep]) / np.sqrt(e[keep])
    return S @ T, T


@small_dense  # the dense work is on n x 3k blocks (memory-bound): one BLAS thread
def _gap_lobpcg(W, tol, k=3, max_iter=80):
    """Smallest eigenvalue of ``L = I - W`` on 1^perp (the gap 1 - lambda_2) by LOBPCG.

    Block LOBPCG (Knyazev 2001) with k vectors, orthogonal to 1, preconditioned by
    :class:`_TwoLevel`. The Ritz values theta_1 <= ... <= theta_k are Rayleigh-Ritz values, upper
    bounds on the eigenvalues. Stop test, the quadratic residual bound for a cluster (Kato-Temple
    for a block): ``|theta_1 - mu_1| <= ||R||_F^2 / eta`` with R the residual of the first k - 1
    Ritz vectors and eta their distance to the rest of the spectrum, estimated by
    ``theta_k - theta_(k-1)``; stop when this is <= ``tol * theta_1``, the gap to relative
    accuracy tol. k = 3 because the slowest two modes of a square (random geometric graphs) are
    nearly degenerate: a single vector would see only their tiny separation. Also accepted:
    ``||r_1|| <= tol * theta_1`` (some eigenvalue lies within ||r_1|| of theta_1; no gap needed,
    for clusters degenerate beyond the block, e.g. a square torus's 4-fold lambda_2). Gives up
    (None) when ``||r_1||^2`` stalls (not divided by 10 in 5 iterations) or when the coarse
    problem shows a gap below 1e-8 (disconnected or nearly: beyond a relative stop test).
    Returns the gap
    (the Rayleigh quotient of the first Ritz vector, recomputed on L), or None after max_iter
    iterations (no
    convergence: the caller falls back to shift-invert).
    """
    n = W.shape[0]
    L = _laplacian(W)
    prec = _TwoLevel(L)
    if prec.nc > 4 * k:
        try:
            X, gap_upper = prec.coarse_modes(k)
        except spla.ArpackNoConvergence:
            return None
        if gap_upper < _LOBPCG_MIN_GAP:  # (near-)disconnected: beyond a relative stop test
            return None
    else:
        X = np.random.default_rng(0).standard_normal((n, k))
    X -= X.mean(axis=0)
    X, _ = _orthonormal(X)
    AX = L @ X
    theta, C = np.linalg.eigh(X.T @ AX)
    X, AX = X @ C, AX @ C
    P = AP = None
    ratios = []  # ||r_1||^2 / (tol theta_1)^2: a stall (not /10 in 5 steps) gives up
    for _it in range(max_iter):
        R = AX - X * theta
        r2 = float(np.square(R[:, : k - 1]).sum())  # ||R||_F^2 of the cluster theta_1..k-1
        target = tol * theta[0] * (theta[-1] - theta[-2])
        r1 = float(np.square(R[:, 0]).sum())
        first_order = (tol * theta[0]) ** 2  # ||r_1|| <= tol * theta_1, gap-free (degenerate)
        ratios.append(r1 / first_order if first_order > 0 else math.inf)
        if (target > 0 and r2 <= target) or ratios[-1] <= 1:
            x = X[:, 0]
            return float(x @ (L @ x)) / float(x @ x)  # the Rayleigh quotient, recomputed
        if len(ratios) > 10 and not ratios[-1] < 0.1 * ratios[-6]:
            return None
        Z = prec(R)
        Z -= Z.mean(axis=0)
        S = Z if P is None else np.hstack([Z, P])
        AS = L @ Z if P is None else np.hstack([L @ Z, AP])
        for _twice in range(2):  # twice: the first projection may cancel most of S
            XS = X.T @ S
            S, AS = S - X @ XS, AS - AX @ XS
        S, T = _orthonormal(S)
        AS = AS @ T
        # Rayleigh-Ritz on [X, S] (orthonormal), G = [X S]^T L [X S] by blocks
        G12 = AX.T @ S
        G = np.block([[X.T @ AX, G12], [G12.T, S.T @ AS]])
        theta_all, C = np.linalg.eigh((G + G.T) / 2)
        theta, C = theta_all[:k], C[:, :k]
        P, AP = S @ C[k:], AS @ C[k:]
        X, AX = X @ C[:k] + P, AX @ C[:k] + AP
    return None


def _int32_csr(W) -> sp.csr_array:
    """W as csr with 32-bit indices where they fit (sparse products ~1.4x faster than int64)."""
    W = sp.csr_array(W)
    if W.indices.dtype != np.int32 and W.nnz < 2**31 - 1:
        W = sp.csr_array(
            (W.data, W.indices.astype(np.int32), W.indptr.astype(np.int32)), shape=W.shape
        )
    return W


def _sparse_symmetric(W, tol) -> Spectrum:
    W = _int32_csr(W)
    n = W.shape[0]
    eye = sp.eye_array(n, format="csr")
    v0 = _v0(n)

    def pwp(x):  # P W P on 1^perp (the Lanczos vectors are orthogonal to 1 up to rounding)
        w = W @ x
        w -= w.mean()
        return w

    lanczos = _Lanczos(pwp, v0)
    lanczos.extend(min(n - 1, _PROBE_STEPS))
    th_lo, th_hi = lanczos.ritz(top=False)[0], lanczos.ritz(top=True)[0]
    routes = []

    # ---- lambda_2 (top of the spectrum on 1^perp), as the gap 1 - lambda_2
    fill = None
    gap2 = None
    if th_hi < 1 - _PLAIN_GAP or th_hi > 1:
        lam2, _, converged = lanczos.converge(True, tol, max(_LANCZOS_MAX_STEPS, n // 10))
        if converged:
            gap2 = 1.0 - lam2
            routes.append("lanczos")
    if gap2 is None and n >= _LOBPCG_MIN_N and W.nnz >= _LOBPCG_MIN_NNZ * n:
        gap2 = _gap_lobpcg(W, tol)
        if gap2 is not None:
            lam2 = 1.0 - gap2
            routes.append("lobpcg")
    if gap2 is None:
        gap2, fill = _gap_shift_invert(((1 + _DELTA) * eye - W).tocsc(), n, True, tol, v0)
        lam2 = 1.0 - gap2
        routes.append("shift-invert")

    # ---- lambda_n (bottom), as the gap 1 + lambda_n where relevant
    absW = abs(W)
    diag = W.diagonal()
    g_lo = float(np.min(2 * diag - np.asarray(absW.sum(axis=1)).ravel()))  # Gershgorin
    # rho = max(lambda_2, -lambda_n) needs lambda_n only if the bound allows -lambda_n > lambda_2;
    # a tie within rounding (hypercube: -lambda_n = lambda_2 = g_lo) changes rho by <= _TIE
    need_exact = -g_lo > abs(lam2) + _TIE
    cheap_lu = fill is not None and fill <= 8 * W.nnz
    lamn = gapn = None
    exact = True
    try:
        if 1 + th_lo < _PLAIN_GAP and (need_exact or cheap_lu):
            gapn, _ = _gap_shift_invert(((1 + _DELTA) * eye + W).tocsc(), n, False, tol, v0)
            lamn = gapn - 1.0
            routes.append("shift-invert")
        elif th_lo - g_lo < _PLAIN_GAP and (need_exact or cheap_lu):
            # near the Gershgorin bound: plain Lanczos first (fast when lambda_n is separated
            # from the rest, and no LU fill-in on expanders such as hypercubes), then
            # shift-invert just below the bound
            budget = lanczos.steps + _NEAR_BOUND_STEPS
            lamn, _, converged = lanczos.converge(False, tol, budget)
            if converged:
                routes.append("lanczos")
            else:
                sigma = g_lo - _DELTA
                d, _ = _gap_shift_invert((W - sigma * eye).tocsc(), n, False, tol, v0)
                lamn = sigma + _DELTA + d
                routes.append("shift-invert")
        else:
            # rho does not depend on lambda_n unless need_exact: then only a few more steps
            budget = max(_LANCZOS_MAX_STEPS, n // 10) if need_exact else 2 * _PROBE_STEPS
            lamn, _, converged = lanczos.converge(False, tol, max(budget, lanczos.steps))
            if converged:
                routes.append("lanczos")
            elif need_exact:
                raise SolverError(
                    f"lambda_n did not converge in {lanczos.steps} Lanczos steps; "
                    "retry with method='dense' (O(n^3))"
                )
            else:  # Ritz value: an upper bound; rho does not depend on it
                exact = False
                routes.append("ritz-bound")
    except (RuntimeError, SolverError) as exc:  # SuperLU or shift-invert failure
        if need_exact:
            raise SolverError(
                f"lambda_n did not converge ({exc}); retry with method='dense' (O(n^3))"
            ) from None
        lamn, exact = th_lo, False  # Ritz value: an upper bound; rho does not depend on it
        routes.append("ritz-bound")
    if gapn is None:
        gapn = 1.0 + lamn
    rho_ = max(lam2, -lamn)
    return Spectrum(
        n,
        rho_,
        min(gap2, gapn),
        lam2,
        lamn,
        gap2,
        gapn,
        True,
        "sparse-" + "+".join(dict.fromkeys(routes)),
        exact,
    )


def _sparse_nonsymmetric(W, tol) -> Spectrum:
    W = sp.csr_array(W)
    n = W.shape[0]
    WT = W.T.tocsr()
    op = spla.LinearOperator(
        (n, n),
        matvec=lambda x: W @ x - np.mean(x),
        rmatvec=lambda x: WT @ x - x.sum() / n,
        dtype=np.float64,
    )
    try:
        s = spla.svds(
            op, k=1, which="LM", tol=tol, maxiter=20000, v0=_v0(n), return_singular_vectors=False
        )
    except spla.ArpackNoConvergence as exc:
        raise SolverError(f"svds on W - J did not converge ({exc}); try method='dense'") from None
    rho_ = float(s[0])
    return Spectrum(n, rho_, 1 - rho_, None, None, None, None, False, "sparse-svds")


# ---------------------------------------------------------------------------- public API
def extreme_eigenvalues(W, method="auto", tol=1e-10, *, symmetric=None) -> Spectrum:
    """rho, spectral gap, lambda_2 and lambda_n of a mixing matrix, dense or sparse.

    Math: ``rho = ||W - 11^T/n||_2``; for symmetric W ``rho = max(lambda_2, -lambda_n)``;
    ``spectral_gap = 1 - rho = min(1 - lambda_2, 1 + lambda_n)``. Exact (to ~1e-15 absolute
    dense; ~1e-15 absolute on the gaps via sparse shift-invert, e.g. the ring of 1e5 nodes with
    gap 1.316e-9). See the module docstring for the methods.

    Parameters
    ----------
    W : (n, n) array or scipy.sparse matrix, rows summing to 1
    method : 'auto' (dense for n <= 2000), 'dense' or 'sparse'
        'sparse' runs dense for n < 10 (too few Lanczos vectors for ARPACK);
        ``Spectrum.method`` names the route taken.
    tol : float
        ARPACK relative residual tolerance on the sparse route (0 = machine precision). On the
        plain Lanczos route the eigenvalue error is at most the residual, <= tol * |lambda|.
    symmetric : bool, optional
        Whether W is symmetric, when the caller knows it (skips the O(nnz) check ``W == W^T``;
        a wrong True gives wrong results).

    Returns
    -------
    Spectrum

    Raises
    ------
    TheorylabError
        W not square, not finite, rows not summing to 1, or unknown method.
    SolverError
        The sparse eigensolver did not converge.

    Example
    -------
    >>> import networkx as nx
    >>> from theorylab.mixing import mixing_matrix
    >>> round(extreme_eigenvalues(mixing_matrix(nx.cycle_graph(8))).rho, 6)
    0.804738
    """
    W = _as_matrix(W)
    n = W.shape[0]
    if n == 1:
        return Spectrum(1, 0.0, 1.0, None, None, None, None, True, "trivial")
    chosen = _choose(method, n)
    symmetric = _is_symmetric(W) if symmetric is None else bool(symmetric)
    if chosen == "dense":
        return _dense_spectrum(W, symmetric)
    tol = check_positive("tol", tol, allow_zero=True)
    if symmetric:
        return _sparse_symmetric(W, tol)
    return _sparse_nonsymmetric(W, tol)


def rho(W, method="auto") -> float:
    """``rho = ||W - 11^T/n||_2`` (per-step consensus contraction; tight). Spectral gap = 1 - rho.

    Example
    -------
    >>> rho([[0.5, 0.5], [0.5, 0.5]])
    0.0
    """
    return extreme_eigenvalues(W, method).rho


def spectral_gap(W, method="auto") -> float:
    """``1 - rho`` with rho = ||W - 11^T/n||_2 (computed without cancellation when possible)."""
    return extreme_eigenvalues(W, method).spectral_gap


def _require_symmetric(W, what):
    W = _as_matrix(W)
    if not _is_symmetric(W):
        raise TheorylabError(
            f"{what} needs a symmetric W (real spectrum); this W is not symmetric: use rho(W), "
            "which is ||W - 11^T/n||_2 for any W"
        )
    return W


@small_dense(size=lambda W, *a, **k: W.shape[0])
def eigenvalues(W) -> np.ndarray:
    """All eigenvalues of a symmetric W, descending (lambda_1 >= ... >= lambda_n); dense O(n^3)."""
    W = _require_symmetric(W, "eigenvalues")
    return np.linalg.eigvalsh(_dense(W))[::-1].copy()


def lambda2(W, method="auto") -> float:
    """Second largest eigenvalue of a symmetric doubly stochastic W (largest on 1^perp)."""
    _require_symmetric(W, "lambda2")
    return extreme_eigenvalues(W, method).lambda2


def lambda_n(W, method="auto") -> float:
    """Smallest eigenvalue of a symmetric W (see Spectrum.lambda_n_exact on the sparse route)."""
    _require_symmetric(W, "lambda_n")
    return extreme_eigenvalues(W, method).lambda_n


def consensus_iterations(rho, eps=1e-6, *, spectral_gap=None):
    """Smallest integer t >= 0 with ``rho^t <= eps`` (guaranteed consensus error reduction).

    Since ``||W^t x - xbar|| <= rho^t ||x - xbar||`` (rho = ||W - 11^T/n||_2, tight for the worst
    x), t steps reduce the consensus error by eps. ``t = ceil(log(eps)/log(rho))``.

    Parameters
    ----------
    rho : float in [0, 1]
        (rho > 1, a consensus error that may grow, is an error: no number of steps is
        guaranteed; rho == 1 gives ``math.inf``)
    eps : float in (0, 1]
    spectral_gap : float, optional
        ``1 - rho`` when known more precisely than rho (tiny gaps): log(rho) = log1p(-gap).

    Returns
    -------
    int, or ``math.inf`` when rho == 1 (no guaranteed consensus). rho == 0 gives 1 (W = J
    averages in one step) unless eps >= 1, which gives 0.

    Example
    -------
    >>> consensus_iterations(0.5, 1e-3)
    10
    """
    rho = check_positive("rho", rho, allow_zero=True)
    if rho > 1 + 1e-12:  # rounding above 1 counts as 1
        raise TheorylabError(
            f"rho must be in [0, 1], got rho = {rho!r}: with rho = ||W - 11^T/n||_2 > 1 the "
            "consensus error may grow, so no number of iterations is guaranteed (check W: "
            "a doubly stochastic symmetric W has rho <= 1)"
        )
    eps = check_probability("eps", eps)
    if eps >= 1:
        return 0
    if spectral_gap is not None:
        gap = check_positive("spectral_gap", spectral_gap, allow_zero=True)
        if abs((1 - gap) - rho) > 1e-9:
            raise TheorylabError(f"spectral_gap={gap} is inconsistent with rho={rho}")
        log_rho = math.log1p(-gap) if gap < 1 else -math.inf
    else:
        log_rho = math.log(rho) if rho > 0 else -math.inf
    if log_rho >= 0:
        return math.inf
    if log_rho == -math.inf:
        return 1
    t = max(1, math.ceil(math.log(eps) / log_rho))
    # guard the floating-point boundary: smallest t with t * log(rho) <= log(eps)
    while t * log_rho > math.log(eps):
        t += 1
    while t > 1 and (t - 1) * log_rho <= math.log(eps):
        t -= 1
    return t


def schedule_rho(schedule, method="auto") -> float:
    """Per-round rate of a schedule: ``||W^(P-1) ... W^(0) - 11^T/n||_2^(1/P)``.

    For P = 1 this is rho = ||W - 11^T/n||_2 (spectral gap = 1 - rho). Each period contracts the
    consensus error by at least the product norm (tight for the worst x). The one-peer
    exponential graph with n a power of 2 gives exactly 0 (its period product is 11^T/n).

    Parameters
    ----------
    schedule : theorylab.topology.Schedule, a sequence of n x n matrices, or one matrix
    method : 'auto' (dense for n <= 2000), 'dense' (O(P n^3)) or 'sparse' (svds on the product
        as a LinearOperator: P matvecs per Lanczos step)

    Example
    -------
    >>> from theorylab.topology import one_peer_exponential
    >>> schedule_rho(one_peer_exponential(16))
    0.0
    """
    mats = check_schedule(schedule, stochasticity="row", atol=1e-8)
    P = len(mats)
    if P == 1:
        return rho(mats[0], method)
    n = mats[0].shape[0]
    chosen = _choose(method, n)
    if chosen == "dense":
        prod = _dense(mats[0]).copy()
        for W in mats[1:]:
            prod = _dense(W) @ prod
        norm = float(scipy.linalg.svdvals(prod - 1.0 / n)[0])
    else:
        sm = [sp.csr_array(W) for W in mats]
        smT = [W.T.tocsr() for W in sm]

        def matvec(x):
            x = np.asarray(x, dtype=np.float64).ravel()
            y = x
            for W in sm:
                y = W @ y
            return y - x.mean()

        def rmatvec(x):
            x = np.asarray(x, dtype=np.float64).ravel()
            y = x
            for WT in reversed(smT):
                y = WT @ y
            return y - x.sum() / n

        op = spla.LinearOperator((n, n), matvec=matvec, rmatvec=rmatvec, dtype=np.float64)
        # Exact averaging (product == J, e.g. one-peer exponential with n = 2^k) makes the
        # operator zero and ARPACK's start vector vanish: a zero image of two independent
        # Gaussian vectors identifies the zero operator with probability 1.
        probes = np.random.default_rng(1).standard_normal((2, n))
        if all(np.linalg.norm(matvec(v)) <= 1e-14 * np.linalg.norm(v) for v in probes):
            return 0.0
        try:
            s = spla.svds(
                op, k=1, tol=1e-12, maxiter=20000, v0=_v0(n), return_singular_vectors=False
            )
        except spla.ArpackNoConvergence as exc:
            raise SolverError(f"svds on the period product did not converge ({exc})") from None
        norm = float(s[0])
    if norm < 1e-14:  # exact averaging up to rounding (e.g. one-peer exponential, n = 2^k)
        return 0.0
    return norm ** (1.0 / P)


def _degrees(W) -> np.ndarray:
    S = sp.coo_array(W)
    off = (S.row != S.col) & (S.data != 0)
    return np.bincount(S.row[off], minlength=W.shape[0])


def _union_degrees(mats) -> np.ndarray:
    """Degrees of the undirected union graph of the rounds' supports (no self-loops)."""
    n = mats[0].shape[0]
    rows, cols = [], []
    for M in mats:
        S = sp.coo_array(M)
        off = (S.row != S.col) & (S.data != 0)
        rows.append(S.row[off])
        cols.append(S.col[off])
    r, c = np.concatenate(rows).astype(np.int64), np.concatenate(cols).astype(np.int64)
    key = np.sort(np.minimum(r, c) * np.int64(n) + np.maximum(r, c))
    key = key[np.r_[True, key[1:] != key[:-1]]] if key.size else key
    return np.bincount(key // n, minlength=n) + np.bincount(key % n, minlength=n)


def spectrum_summary(W, method="auto", eps=1e-6, *, symmetric=None, degrees=None) -> dict:
    """Everything the CLI prints about a mixing matrix or schedule, as a dict.

    Keys: n, period, rho (per round; = ||W - 11^T/n||_2 for a static W), spectral_gap (1 - rho),
    lambda2, lambda_n (None for non-symmetric W or a schedule), lambda_n_exact, symmetric,
    degree_max, degree_mean (of the support graph; for a schedule, the largest per-round degree
    and the union graph's mean), ``mixing_time_<eps>`` (:func:`consensus_iterations`; for a
    schedule, in rounds: whole periods times P), method, time_s.

    Parameters
    ----------
    W : matrix (dense or sparse), a Schedule, or a list/tuple of matrices (a schedule's rounds)
    method, eps : as :func:`extreme_eigenvalues` and :func:`consensus_iterations`
    symmetric : bool, optional
        Whether W is symmetric, when the caller knows it (e.g. built symmetric from an edge
        list): skips the O(nnz) transpose comparison. Static W only.
    degrees : array (n,), optional
        The support graph's degrees when known (static W only).
    """
    t0 = time.perf_counter()
    eps_key = f"mixing_time_{eps:g}"
    if isinstance(W, (list, tuple)) and len(W) == 1:
        W = W[0]
    if (isinstance(W, Schedule) and W.period > 1) or isinstance(W, (list, tuple)):
        mats = list(W.matrices) if isinstance(W, Schedule) else list(W)
        period = len(mats)
        n = mats[0].shape[0]
        r = schedule_rho(mats, method)
        per_round = max(int(_degrees(M).max()) for M in mats)
        degs = _union_degrees(mats)
        return {
            "n": n,
            "period": period,
            "rho": r,
            "spectral_gap": 1.0 - r,
            "lambda2": None,
            "lambda_n": None,
            "lambda_n_exact": True,
            "symmetric": False,
            "degree_max": per_round,
            "degree_mean": float(degs.mean()),
            # whole periods: the guarantee holds at period boundaries (rho_period = r^P)
            eps_key: consensus_iterations(r**period, eps) * period if r < 1 else math.inf,
            "method": "schedule-" + _choose(method, n),
            "time_s": time.perf_counter() - t0,
        }
    if isinstance(W, Schedule):
        W = W.matrices[0]
    W = _as_matrix(W)
    s = extreme_eigenvalues(W, method, symmetric=symmetric)
    degs = _degrees(W) if degrees is None else np.asarray(degrees)
    return {
        "n": s.n,
        "period": 1,
        "rho": s.rho,
        "spectral_gap": s.spectral_gap,
        "lambda2": s.lambda2,
        "lambda_n": s.lambda_n,
        "lambda_n_exact": s.lambda_n_exact,
        "symmetric": s.symmetric,
        "degree_max": int(degs.max()),
        "degree_mean": float(degs.mean()),
        eps_key: consensus_iterations(s.rho, eps, spectral_gap=max(s.spectral_gap, 0.0))
        if s.rho < 1
        else math.inf,
        "method": s.method,
        "time_s": time.perf_counter() - t0,
    }
