"""Test problems with known constants: heterogeneous quadratics and logistic regression.

Every problem exposes the constants the rates need, computed exactly (quadratics) or to a stated
accuracy (logistic regression): smoothness ``L``, strong convexity ``mu``, the minimiser
``x_star``, heterogeneity at the optimum ``zeta2_star`` = (1/n) sum_i ||grad f_i(x*)||^2 (H2 in
shared/references/rates.md) and, for quadratics, its sup over a ball ``zeta2_ball(radius)``
(H1 restricted to the ball), and the gradient noise ``sigma2``.

Noise convention (quadratics): node i's stochastic gradient is ``A_i (x - b_i) + xi_i`` with
``xi_i ~ N(0, (sigma2 / d) I_d)`` independent across nodes, steps and replicas, so
``E||xi_i||^2 = sigma2`` per node and the node average has ``E||mean_i xi_i||^2 = sigma2 / n``.
"""

from __future__ import annotations

import numbers

import numpy as np
from scipy.special import expit

from theorylab.errors import SolverError, TheorylabError, check_int, check_positive

__all__ = [
    "QuadraticProblem",
    "LogisticProblem",
    "heterogeneous_quadratic",
    "logistic_regression",
]

#: Gradient norm below which a stalled Newton iteration is accepted as converged.
_NEWTON_FLOOR = 1e-9

_SYM_TOL = 1e-10


def _rows(d: int) -> int:
    """Rows per block of the blockwise (n, d) reductions: ~1e6 entries (8 MB) per block."""
    return max(1, 1_000_000 // max(d, 1))


def _as_float_array(name: str, value, ndim: int | tuple[int, ...]) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be a numeric array, got {type(value).__name__}") from exc
    dims = (ndim,) if isinstance(ndim, int) else ndim
    if arr.ndim not in dims:
        raise TheorylabError(
            f"{name} must have {' or '.join(map(str, dims))} dimensions, got shape {arr.shape}"
        )
    if not np.all(np.isfinite(arr)):
        raise TheorylabError(f"{name} must be finite; it contains NaN or inf")
    return arr


class QuadraticProblem:
    r"""Heterogeneous quadratic f(x) = (1/n) sum_i f_i(x) with exactly known constants.

    The math: ``f_i(x) = 1/2 (x - b_i)^T A_i (x - b_i)``, ``grad f_i(x) = A_i (x - b_i)``;
    stochastic gradient ``A_i (x - b_i) + xi_i``, ``xi_i ~ N(0, (sigma2/d) I_d)`` (so
    ``E||xi_i||^2 = sigma2`` per node). Minimiser of the average
    ``x* = (sum_i A_i)^{-1} sum_i A_i b_i``.

    Constants (all exact): ``L = max_i lambda_max(A_i)``; ``mu = lambda_min((1/n) sum_i A_i)``;
    ``mu_local = min_i lambda_min(A_i)``; ``zeta2_star = (1/n) sum_i ||grad f_i(x*)||^2``;
    ``zeta2_ball(r) = sup_{||x - x*|| <= r} (1/n) sum_i ||grad f_i(x) - grad f(x)||^2``.

    Parameters
    ----------
    A : array, shape (n, d, d) or (n, d)
        Symmetric positive semidefinite Hessians; shape (n, d) means diagonal Hessians
        ``diag(A[i])``.
    b : array, shape (n, d)
        Local minimisers (centres).
    sigma2 : float >= 0
        Per-node gradient-noise variance ``E||xi_i||^2``.

    Attributes
    ----------
    A : ndarray (n, d, d) float64, dense Hessians (a lazily built view for diagonal problems).
    mean_hessian : ndarray (d, d), (1/n) sum_i A_i (lazily built for diagonal problems).
    b : ndarray (n, d).
    sigma2 : float.
    n, d : int.
    x_star : ndarray (d,).
    hessian_diagonal : ndarray (n, d) when every A_i is diagonal, else None. Diagonal problems
        are stored as this (n, d) array only; every constant, oracle and ``zeta2_ball`` then
        costs O(n d).

    Raises
    ------
    TheorylabError
        Shapes disagree, A_i not symmetric or not PSD, sigma2 < 0, or the mean Hessian is
        singular (no unique minimiser).

    Example
    -------
    >>> import numpy as np
    >>> p = QuadraticProblem(np.array([[1.0], [3.0]]), np.array([[0.0], [2.0]]), sigma2=1.0)
    >>> float(p.x_star[0]), p.L, p.mu, p.zeta2_star
    (1.5, 3.0, 2.0, 2.25)
    """

    def __init__(self, A, b, sigma2: float):
        A = _as_float_array("A", A, (2, 3))
        b = _as_float_array("b", b, 2)
        self.sigma2 = check_positive("sigma2", sigma2, allow_zero=True)
        n, d = b.shape
        if n < 1 or d < 1:
            raise TheorylabError(f"b must have shape (n, d) with n, d >= 1, got {b.shape}")
        self.b = b
        self.n, self.d = n, d
        if A.ndim == 2:
            if A.shape != (n, d):
                raise TheorylabError(
                    f"diagonal Hessians A must have shape (n, d) = {(n, d)} like b, got {A.shape}"
                )
            self._init_diagonal(A.copy())
            return
        if A.shape != (n, d, d):
            raise TheorylabError(
                f"A must have shape (n, d, d) = {(n, d, d)} matching b, got {A.shape}"
            )
        off = A.copy()
        off[:, np.arange(d), np.arange(d)] = 0.0
        if not np.any(off):
            self._init_diagonal(np.diagonal(A, axis1=1, axis2=2).copy())
            return
        scale = max(1.0, float(np.max(np.abs(A))))
        if np.max(np.abs(A - np.swapaxes(A, 1, 2))) > _SYM_TOL * scale:
            raise TheorylabError("every A_i must be symmetric; symmetrise with (A + A^T)/2")
        A = 0.5 * (A + np.swapaxes(A, 1, 2))
        eig = np.linalg.eigvalsh(A)
        if eig.min() < -_SYM_TOL * scale:
            i = int(np.argmin(eig.min(axis=1)))
            raise TheorylabError(
                f"every A_i must be positive semidefinite; A[{i}] has eigenvalue {eig[i].min():.3g}"
            )
        self._A = A
        self.hessian_diagonal = None
        self._local_eig = eig
        self._mean_hessian = A.mean(axis=0)
        mean_eig = np.linalg.eigvalsh(self._mean_hessian)
        self._check_mean(mean_eig[0], scale)
        self._mean_eig = mean_eig
        rhs = np.einsum("nij,nj->i", A, b) / n
        self.x_star = np.linalg.solve(self._mean_hessian, rhs)

    def _init_diagonal(self, diag: np.ndarray) -> None:
        """Diagonal Hessians kept as the (n, d) array: every constant in O(n d) time and memory."""
        n, d = diag.shape
        lo, hi = float(diag.min()), float(diag.max())
        scale = max(1.0, abs(lo), abs(hi))  # max |A_ik| without an (n, d) temporary
        if lo < -_SYM_TOL * scale:
            i, k = np.unravel_index(int(np.argmin(diag)), diag.shape)
            raise TheorylabError(
                f"every A_i must be positive semidefinite; A[{i}] has eigenvalue {diag[i, k]:.3g}"
            )
        self._A = None  # dense (n, d, d) built on first access of .A
        self._mean_hessian = None
        self.hessian_diagonal = diag
        self._local_eig = diag  # the eigenvalues of diag(A_i) (unsorted; only min/max are read)
        mean_diag = diag.mean(axis=0)
        self._mean_diag = mean_diag
        mean_eig = np.sort(mean_diag)
        self._check_mean(mean_eig[0], scale)
        self._mean_eig = mean_eig
        # sum_i A_i b_i by row blocks (no (n, d) temporary)
        num = np.zeros(d)
        for i in range(0, n, _rows(d)):
            num += np.einsum("nk,nk->k", diag[i : i + _rows(d)], self.b[i : i + _rows(d)])
        self.x_star = num / n / mean_diag

    def _diagonal_blocks(self):
        """Row blocks ``(A_blk, grad f_blk(x*))`` of a diagonal problem, ~1e6 entries each: the
        constants in O(n d) time and O(d * block) extra memory (the (n, d) gradients at x* are
        never all held unless :attr:`grad_star` is read)."""
        n, d = self.n, self.d
        step = _rows(d)
        cached = getattr(self, "_grad_star", None)
        for i in range(0, n, step):
            A = self.hessian_diagonal[i : i + step]
            if cached is not None:
                yield A, cached[i : i + step]
            else:
                g = self.x_star - self.b[i : i + step]
                g *= A
                yield A, g

    @staticmethod
    def _check_mean(smallest: float, scale: float) -> None:
        if smallest <= 1e-12 * scale:
            raise TheorylabError(
                f"the mean Hessian (1/n) sum_i A_i is singular (smallest eigenvalue "
                f"{smallest:.3g}); the minimiser is not unique. Make the mean Hessian "
                "positive definite"
            )

    @property
    def A(self) -> np.ndarray:
        """Dense Hessians, shape (n, d, d) (built on first use for diagonal problems: n d^2
        memory; prefer :attr:`hessian_diagonal` there)."""
        if self._A is None:
            n, d = self.hessian_diagonal.shape
            A = np.zeros((n, d, d))
            A[:, np.arange(d), np.arange(d)] = self.hessian_diagonal
            self._A = A
        return self._A

    @property
    def mean_hessian(self) -> np.ndarray:
        """Dense mean Hessian (1/n) sum_i A_i, shape (d, d)."""
        if self._mean_hessian is None:
            self._mean_hessian = np.diag(self._mean_diag)
        return self._mean_hessian

    # ---- constants -------------------------------------------------------------------------
    @property
    def L(self) -> float:
        """Smoothness of every f_i: max_i lambda_max(A_i)."""
        return float(self._local_eig.max())

    @property
    def mu(self) -> float:
        """Strong convexity of the average f: lambda_min((1/n) sum_i A_i)."""
        return float(self._mean_eig[0])

    @property
    def mu_local(self) -> float:
        """Smallest local strong convexity min_i lambda_min(A_i) (may be 0)."""
        return float(max(self._local_eig.min(), 0.0))

    @property
    def grad_star(self) -> np.ndarray:
        """Local gradients at the optimum, shape (n, d), read-only (computed once); they average
        to zero."""
        if getattr(self, "_grad_star", None) is None:
            g = self.grad(self.x_star)
            g.setflags(write=False)
            self._grad_star = g
        return self._grad_star

    @property
    def zeta2_star(self) -> float:
        """Heterogeneity at the optimum (H2): (1/n) sum_i ||grad f_i(x*)||^2."""
        if getattr(self, "_zeta2_star", None) is None and self.hessian_diagonal is not None:
            total = sum(float(np.einsum("nk,nk->", g, g)) for _, g in self._diagonal_blocks())
            self._zeta2_star = total / self.n
        if getattr(self, "_zeta2_star", None) is None:
            g = self.grad_star
            # row blocks of ~1e6 entries: the same row sums as one np.sum(g**2, axis=1), without
            # an (n, d) temporary
            rows = max(1, 1_000_000 // max(self.d, 1))
            sq = np.concatenate(
                [np.sum(g[i : i + rows] ** 2, axis=1) for i in range(0, self.n, rows)]
            )
            self._zeta2_star = float(np.mean(sq))
        return self._zeta2_star

    @property
    def f_star(self) -> float:
        """Optimal value f(x*)."""
        return self.f(self.x_star)

    def zeta2_ball(self, radius: float) -> float:
        r"""Uniform heterogeneity over a ball, computed exactly.

        ``sup_{||x - x*|| <= radius} (1/n) sum_i ||grad f_i(x) - grad f(x)||^2``. With
        ``e = x - x*``, ``D_i = A_i - Abar`` and ``g_i = grad f_i(x*)`` the objective is the convex
        quadratic ``q(e) = e^T M e + 2 c^T e + zeta2_star``, ``M = (1/n) sum D_i^T D_i``,
        ``c = (1/n) sum D_i^T g_i``. Its max over the ball is attained on the sphere and solves
        the trust-region subproblem: ``e = (lam I - M)^{-1} c`` with ``lam >= lambda_max(M)`` the
        root of the secular equation ``sum_k c_k^2 / (lam - m_k)^2 = radius^2`` (eigenbasis of
        M), found by bisection to machine precision; in the hard case (``c`` orthogonal to the
        top eigenspace) ``lam = lambda_max(M)`` and the top eigenvector fills the norm.

        Parameters
        ----------
        radius : float >= 0

        Returns
        -------
        float, >= zeta2_star (equal at radius 0).
        """
        radius = check_positive("radius", radius, allow_zero=True)
        z0 = self.zeta2_star
        if self.hessian_diagonal is not None:
            # M = (1/n) sum D_i^2 and c are diagonal/elementwise: eigenbasis = coordinates
            m = np.zeros(self.d)
            c = np.zeros(self.d)
            for A, g_blk in self._diagonal_blocks():
                D = A - self._mean_diag
                m += np.einsum("nk,nk->k", D, D)
                c += np.einsum("nk,nk->k", D, g_blk)
            m /= self.n
            c /= self.n
            if radius == 0.0:
                return z0
            order = np.argsort(m, kind="stable")
            m, ct = m[order], c[order]
        else:
            g = self.grad_star
            D = self.A - self.mean_hessian
            M = np.einsum("nki,nkj->ij", D, D) / self.n
            c = np.einsum("nki,nk->i", D, g) / self.n
            if radius == 0.0:
                return z0
            m, V = np.linalg.eigh(0.5 * (M + M.T))
            ct = V.T @ c
        m_max = m[-1]
        scale = max(abs(m_max), 1e-300)
        top = m >= m_max - 1e-12 * scale
        ct_top = float(np.sum(ct[top] ** 2))
        if ct_top <= (1e-14 * max(np.linalg.norm(c), 1e-300)) ** 2:
            # possible hard case: lam = m_max if the other components fit inside the ball
            rest = ~top
            e_rest = ct[rest] / (m_max - m[rest])
            norm_rest2 = float(np.sum(e_rest**2))
            if norm_rest2 <= radius**2:
                fill2 = radius**2 - norm_rest2
                value = (
                    float(np.sum(m[rest] * e_rest**2))
                    + m_max * fill2
                    + 2.0 * float(ct[rest] @ e_rest)
                    + z0
                )
                return value

        def norm2(lam: float) -> float:
            return float(np.sum((ct / (lam - m)) ** 2))

        lo = m_max
        hi = m_max + np.linalg.norm(c) / radius + 1e-300
        # bisection on the monotone secular function; 200 halvings reach machine precision
        for _ in range(200):
            mid = 0.5 * (lo + hi)
            if mid == lo or mid == hi:
                break
            if norm2(mid) > radius**2:
                lo = mid
            else:
                hi = mid
        lam = hi
        e = ct / (lam - m)
        e *= radius / np.linalg.norm(e)  # put it exactly on the sphere
        return float(np.sum(m * e**2) + 2.0 * ct @ e + z0)

    # ---- oracles ---------------------------------------------------------------------------
    def _points(self, x) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if x.shape == (self.d,):
            return np.broadcast_to(x, (self.n, self.d))
        if x.shape == (self.n, self.d):
            return x
        raise TheorylabError(
            f"x must have shape (d,) = ({self.d},) or (n, d) = {(self.n, self.d)}, got {x.shape}"
        )

    def f(self, x) -> float:
        """Average objective f(x) = (1/n) sum_i f_i(x) at a point x of shape (d,)."""
        x = np.asarray(x, dtype=np.float64)
        if x.shape != (self.d,):
            raise TheorylabError(f"x must have shape (d,) = ({self.d},), got {x.shape}")
        if self.hessian_diagonal is not None:  # by row blocks: no (n, d) temporary
            step = _rows(self.d)
            parts = []
            for i in range(0, self.n, step):
                r = x[None, :] - self.b[i : i + step]
                parts.append(np.einsum("ni,ni,ni->n", r, self.hessian_diagonal[i : i + step], r))
            return float(0.5 * np.mean(np.concatenate(parts)))
        r = x[None, :] - self.b
        return float(0.5 * np.mean(np.einsum("ni,nij,nj->n", r, self.A, r)))

    def local_f(self, x) -> np.ndarray:
        """Local objectives f_i(x_i), shape (n,); x of shape (d,) or (n, d)."""
        r = self._points(x) - self.b
        if self.hessian_diagonal is not None:
            return 0.5 * np.einsum("ni,ni,ni->n", r, self.hessian_diagonal, r)
        return 0.5 * np.einsum("ni,nij,nj->n", r, self.A, r)

    def grad(self, x) -> np.ndarray:
        """Deterministic local gradients grad f_i(x_i) = A_i (x_i - b_i), shape (n, d)."""
        r = self._points(x) - self.b
        if self.hessian_diagonal is not None:
            r *= self.hessian_diagonal  # in place: no second (n, d) array
            return r
        return np.einsum("nij,nj->ni", self.A, r)

    def stochastic_grad(self, x, rng: np.random.Generator) -> np.ndarray:
        """One stochastic gradient per node: grad f_i(x_i) + N(0, (sigma2/d) I), shape (n, d)."""
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"rng must be a numpy Generator, got {type(rng).__name__}")
        g = self.grad(x)
        return g + rng.standard_normal(g.shape) * np.sqrt(self.sigma2 / self.d)

    def __repr__(self) -> str:
        return (
            f"QuadraticProblem(n={self.n}, d={self.d}, L={self.L:.4g}, mu={self.mu:.4g}, "
            f"sigma2={self.sigma2:.4g}, zeta2_star={self.zeta2_star:.4g})"
        )


def heterogeneous_quadratic(
    n: int,
    d: int,
    *,
    L: float = 1.0,
    mu: float = 0.1,
    zeta2: float = 1.0,
    sigma2: float = 1.0,
    diagonal: bool = True,
    shared_hessian: bool = False,
    seed: int = 0,
) -> QuadraticProblem:
    r"""Seeded heterogeneous quadratic with exactly the requested L, mu and zeta2_star.

    Construction: raw Hessians ``B_i`` have per-coordinate scales ``s_k`` geometrically spaced in
    ``[mu/L, 1]`` times node weights ``w_ik`` in [0.2, 1.8] averaging 1 over nodes (dense case:
    ``Q diag(s * w_i) Q^T`` for a shared random rotation ``Q`` plus a small node-specific PSD
    term, so the A_i do not commute). An affine map ``A_i = alpha B_i + beta I`` then makes
    ``max_i lambda_max(A_i) = L`` and ``lambda_min(mean A_i) = mu`` exactly. ``shared_hessian``
    uses one Hessian ``A_i = diag(linspace(mu, L, d))`` (rotated when not diagonal) for every
    node: this hides heterogeneity from the average iterate (rates.md §10.1). Centres
    ``b_i = x* + t (b_i^raw - x*)`` are rescaled around ``x*`` (which the rescaling leaves
    unchanged) so that ``zeta2_star == zeta2``.

    Parameters
    ----------
    n, d : int >= 1
    L, mu : float, 0 < mu <= L
    zeta2 : float >= 0, heterogeneity at the optimum (1/n) sum_i ||grad f_i(x*)||^2.
    sigma2 : float >= 0, per-node noise E||xi_i||^2.
    diagonal : bool, diagonal Hessians (coordinate-separable; fast exact predictions).
    shared_hessian : bool, identical Hessians on every node.
    seed : int, seeds a numpy Generator; same seed, same problem.

    Returns
    -------
    QuadraticProblem

    Raises
    ------
    TheorylabError
        Invalid sizes/constants, or a combination that cannot be met with PSD Hessians
        (d = 1 with a shared Hessian and L > mu; d = 1 heterogeneous with L > 1.8 mu; n = 1
        heterogeneous with d = 1).

    Example
    -------
    >>> p = heterogeneous_quadratic(8, 4, L=2.0, mu=0.5, zeta2=3.0, seed=1)
    >>> round(p.L, 12), round(p.mu, 12), round(p.zeta2_star, 12)
    (2.0, 0.5, 3.0)
    """
    n = check_int("n", n, minimum=1)
    d = check_int("d", d, minimum=1)
    L = check_positive("L", L)
    mu = check_positive("mu", mu)
    if mu > L:
        raise TheorylabError(f"need mu <= L, got mu={mu} > L={L}")
    zeta2 = check_positive("zeta2", zeta2, allow_zero=True)
    sigma2 = check_positive("sigma2", sigma2, allow_zero=True)
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed must be an integer, got {seed!r}")
    rng = np.random.default_rng(int(seed))
    if diagonal:
        A = _diagonal_hessians(n, d, L, mu, shared_hessian, rng)
    else:
        A = _dense_hessians(n, d, L, mu, shared_hessian, rng)
    b_raw = rng.standard_normal((n, d))
    raw = _problem(A, b_raw, sigma2, diagonal)
    z_raw, x_star = raw.zeta2_star, raw.x_star
    del raw  # its cached (n, d) gradients
    if zeta2 > 0 and z_raw <= 1e-300:
        raise TheorylabError("cannot create heterogeneity with these Hessians; increase n")
    t = np.sqrt(zeta2 / z_raw) if zeta2 > 0 else 0.0
    # b = x* + t (b_raw - x*), in place (the same operations, so the same values)
    b = b_raw
    b -= x_star
    b *= t
    b += x_star
    return _problem(A, b, sigma2, diagonal)


def _problem(A, b, sigma2, diagonal) -> QuadraticProblem:
    """A QuadraticProblem of generated (finite, owned) arrays; diagonal ones without a copy."""
    if not diagonal:
        return QuadraticProblem(A, b, sigma2)
    p = QuadraticProblem.__new__(QuadraticProblem)
    p.sigma2 = check_positive("sigma2", sigma2, allow_zero=True)
    p.b = b
    p.n, p.d = b.shape
    p._init_diagonal(A)
    return p


def _shared_1d_check(d, L, mu):
    if d == 1 and L > mu:
        raise TheorylabError(
            f"a shared 1-d Hessian cannot have L={L} != mu={mu}; use d >= 2 or L == mu"
        )


def _affine_map(b_max, b_min_mean, L, mu, n, d):
    """``(alpha, beta)`` with ``alpha b_max + beta = L`` and ``alpha b_min_mean + beta = mu``."""
    if b_max - b_min_mean <= 1e-12:
        raise TheorylabError(
            f"cannot make L={L} > mu={mu} with n={n}, d={d}: the Hessians do not vary; "
            "use n >= 2 or d >= 2"
        )
    alpha = (L - mu) / (b_max - b_min_mean)
    return alpha, mu - alpha * b_min_mean


def _indefinite_error(n, d, L, mu):
    return TheorylabError(
        f"n={n}, d={d}, L/mu={L / mu:.3g}: the construction gives an indefinite A_i; "
        "use d >= 2 (d = 1 heterogeneous Hessians need L <= 1.8 mu)"
    )


def _diagonal_hessians(n, d, L, mu, shared_hessian, rng) -> np.ndarray:
    """The diagonal construction of :func:`heterogeneous_quadratic` as an (n, d) array.

    Same draws and the same arithmetic on the diagonal as the dense construction with ``Q = I``
    (whose off-diagonal entries are exact zeros), in O(n d).
    """
    if shared_hessian:
        _shared_1d_check(d, L, mu)
        spectrum = np.linspace(mu, L, d) if d > 1 else np.array([L])
        return np.broadcast_to(spectrum, (n, d)).copy()
    if L == mu:
        return np.full((n, d), float(L))
    s = np.geomspace(mu / L, 1.0, d) if d > 1 else np.array([1.0])
    # in place, the same operations in the same order as the dense construction:
    # w = 1 + 0.4 (u - mean_n u) in [0.2, 1.8] (exact node mean 1); B = s w; A = alpha B + beta
    A = rng.uniform(-1.0, 1.0, size=(n, d))
    A -= A.mean(axis=0)
    A *= 0.4
    A += 1.0
    A *= s
    alpha, beta = _affine_map(float(A.max()), float(A.mean(axis=0).min()), L, mu, n, d)
    A *= alpha
    A += beta
    if A.min() < -1e-12 * L:
        raise _indefinite_error(n, d, L, mu)
    return A


def _dense_hessians(n, d, L, mu, shared_hessian, rng) -> np.ndarray:
    """The rotated (non-commuting) construction of :func:`heterogeneous_quadratic`, (n, d, d)."""
    Q = np.linalg.qr(rng.standard_normal((d, d)))[0]
    if shared_hessian:
        _shared_1d_check(d, L, mu)
        spectrum = np.linspace(mu, L, d) if d > 1 else np.array([L])
        H = (Q * spectrum) @ Q.T
        return np.broadcast_to(0.5 * (H + H.T), (n, d, d)).copy()
    if L == mu:
        return np.broadcast_to(L * np.eye(d), (n, d, d)).copy()
    s = np.geomspace(mu / L, 1.0, d) if d > 1 else np.array([1.0])
    u = rng.uniform(-1.0, 1.0, size=(n, d))
    w = 1.0 + 0.4 * (u - u.mean(axis=0))  # in [0.2, 1.8], exact node mean 1
    B = np.einsum("ik,nk,jk->nij", Q, s * w, Q)
    R = rng.standard_normal((n, d, d)) / np.sqrt(d)
    B = B + 0.1 * s[0] * np.einsum("nik,njk->nij", R, R)
    B = 0.5 * (B + np.swapaxes(B, 1, 2))
    b_max = np.linalg.eigvalsh(B).max()
    b_min_mean = np.linalg.eigvalsh(B.mean(axis=0))[0]
    alpha, beta = _affine_map(b_max, b_min_mean, L, mu, n, d)
    A = alpha * B + beta * np.eye(d)
    if np.linalg.eigvalsh(A).min() < -1e-12 * L:
        raise _indefinite_error(n, d, L, mu)
    return A


class LogisticProblem:
    r"""L2-regularised logistic regression split over n nodes, with x* to high accuracy.

    The math: ``f_i(x) = (1/m) sum_j [log(1 + exp(a_ij^T x)) - y_ij a_ij^T x] + (reg/2)||x||^2``,
    ``y_ij in {0, 1}``; ``grad f_i(x) = (1/m) A_i^T (sigmoid(A_i x) - y_i) + reg x``.
    ``L = max_i (||A_i||_2^2 / (4m) + reg)`` (an upper bound on every local smoothness),
    ``mu = reg``. ``x_star`` is computed by damped Newton (Armijo backtracking; a run that
    stalls at the floating-point floor below 1e-9 is accepted) to
    ``||grad f(x*)|| <= tol``, reported as ``grad_norm_star``.

    Attributes
    ----------
    features : ndarray (n, m, d); labels : ndarray (n, m) in {0, 1}; reg : float;
    n, m, d : int; x_star : ndarray (d,); grad_norm_star : float; newton_iterations : int.
    """

    def __init__(self, features, labels, reg: float, *, tol: float = 1e-12, max_iter: int = 100):
        X = _as_float_array("features", features, 3)
        y = _as_float_array("labels", labels, 2)
        if y.shape != X.shape[:2]:
            raise TheorylabError(
                f"labels must have shape (n, m) = {X.shape[:2]} matching features, got {y.shape}"
            )
        if not np.all((y == 0) | (y == 1)):
            raise TheorylabError("labels must be 0 or 1")
        self.reg = check_positive("reg", reg)
        self.features, self.labels = X, y
        self.n, self.m, self.d = X.shape
        self.x_star, self.grad_norm_star, self.newton_iterations = self._newton(
            check_positive("tol", tol), check_int("max_iter", max_iter, minimum=1)
        )

    @property
    def L(self) -> float:
        """max_i ||A_i||_2^2 / (4m) + reg: smoothness bound of every f_i."""
        norms = np.linalg.norm(self.features, ord=2, axis=(1, 2))
        return float(np.max(norms**2) / (4 * self.m) + self.reg)

    @property
    def mu(self) -> float:
        """Strong convexity of every f_i: reg."""
        return self.reg

    def local_f(self, x) -> np.ndarray:
        """f_i(x), shape (n,), at a shared point x (d,)."""
        z = self.features @ np.asarray(x, dtype=np.float64)
        loss = np.mean(np.logaddexp(0.0, z) - self.labels * z, axis=1)
        return loss + 0.5 * self.reg * float(np.dot(x, x))

    def f(self, x) -> float:
        """Average objective f(x)."""
        return float(np.mean(self.local_f(x)))

    def grad(self, x) -> np.ndarray:
        """Local gradients grad f_i(x), shape (n, d), at a shared point x (d,)."""
        x = np.asarray(x, dtype=np.float64)
        r = expit(self.features @ x) - self.labels
        return np.einsum("nmd,nm->nd", self.features, r) / self.m + self.reg * x

    def hessian(self, x) -> np.ndarray:
        """Hessian of the average f at x, shape (d, d)."""
        p = expit(self.features @ np.asarray(x, dtype=np.float64))
        wts = p * (1 - p)
        H = np.einsum("nmi,nm,nmj->ij", self.features, wts, self.features) / (self.n * self.m)
        return H + self.reg * np.eye(self.d)

    @property
    def f_star(self) -> float:
        return self.f(self.x_star)

    @property
    def zeta2_star(self) -> float:
        """(1/n) sum_i ||grad f_i(x*)||^2."""
        return float(np.mean(np.sum(self.grad(self.x_star) ** 2, axis=1)))

    def sigma2_star(self, batch_size: int = 1) -> float:
        """Per-node sampling noise at x* for minibatches of ``batch_size`` drawn with replacement:
        (1/n) sum_i (1/m) sum_j ||grad l_ij(x*) - grad f_i(x*)||^2 / batch_size."""
        batch_size = check_int("batch_size", batch_size, minimum=1)
        x = self.x_star
        r = expit(self.features @ x) - self.labels
        per = self.features * r[..., None]  # loss gradients without the reg term
        dev = per - per.mean(axis=1, keepdims=True)
        return float(np.mean(np.sum(dev**2, axis=2)) / batch_size)

    def _newton(self, tol: float, max_iter: int) -> tuple[np.ndarray, float, int]:
        x = np.zeros(self.d)
        best = np.inf
        for it in range(max_iter + 1):
            g = self.grad(x).mean(axis=0)
            gn = float(np.linalg.norm(g))
            if gn <= tol:
                return x, gn, it
            # Stagnation at the floating-point floor: Newton cannot shrink the gradient further
            # (seen at ~1e-11 on small problems). Accept only far below any use of x_star.
            if gn >= best and gn <= _NEWTON_FLOOR:
                return x, gn, it
            best = min(best, gn)
            if it == max_iter:
                break
            step = np.linalg.solve(self.hessian(x), g)
            fx, t = self.f(x), 1.0
            while self.f(x - t * step) > fx - 1e-4 * t * float(g @ step) and t > 1e-12:
                t *= 0.5
            x = x - t * step
        raise SolverError(
            f"Newton did not reach ||grad f|| <= {tol:g} in {max_iter} iterations "
            f"(reached {gn:.3g}); increase max_iter or tol"
        )

    def __repr__(self) -> str:
        return (
            f"LogisticProblem(n={self.n}, m={self.m}, d={self.d}, L={self.L:.4g}, "
            f"mu={self.mu:.4g}, grad_norm_star={self.grad_norm_star:.2g})"
        )


def logistic_regression(
    n: int,
    m_per_node: int,
    d: int,
    *,
    alpha: float = 0.5,
    reg: float = 1e-2,
    seed: int = 0,
    tol: float = 1e-12,
) -> LogisticProblem:
    r"""Seeded synthetic logistic regression with Dirichlet(alpha) label skew across nodes.

    Node i draws its positive-class fraction ``p_i ~ Beta(alpha, alpha)`` (a two-class
    Dirichlet(alpha)); each of its ``m_per_node`` labels is Bernoulli(p_i) and each feature vector
    is ``N(+-c, I_d)`` around class means ``+-c`` (``c`` a random direction of norm 1), scaled by
    ``1/sqrt(d)``. Small alpha means strongly skewed nodes (high heterogeneity); large alpha
    means near-iid splits.

    Parameters
    ----------
    n, m_per_node, d : int >= 1
    alpha : float > 0, Dirichlet concentration.
    reg : float > 0, L2 regularisation (= mu).
    seed : int
    tol : float, Newton's gradient-norm tolerance for x_star.

    Returns
    -------
    LogisticProblem

    Example
    -------
    >>> p = logistic_regression(4, 50, 5, alpha=0.3, reg=0.1, seed=0)
    >>> p.grad_norm_star < 1e-10
    True
    """
    n = check_int("n", n, minimum=1)
    m = check_int("m_per_node", m_per_node, minimum=1)
    d = check_int("d", d, minimum=1)
    alpha = check_positive("alpha", alpha)
    rng = np.random.default_rng(check_int("seed", seed))
    centre = rng.standard_normal(d)
    centre /= np.linalg.norm(centre)
    p = rng.dirichlet([alpha, alpha], size=n)[:, 1]
    labels = (rng.random((n, m)) < p[:, None]).astype(np.float64)
    sign = 2.0 * labels - 1.0
    features = (sign[..., None] * centre + rng.standard_normal((n, m, d))) / np.sqrt(d)
    return LogisticProblem(features, labels, reg, tol=tol)
