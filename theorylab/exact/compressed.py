"""Exact second-moment predictions for compressed PSGD, EF-SGD and EF21 with random sparsifiers.

Compressed PSGD on a :class:`~theorylab.problems.QuadraticProblem` (all nodes hold the same
``x``; node ``j`` compresses its own stochastic gradient with its own randomness)::

    x_{k+1} = x_k - gamma (1/n) sum_j C_j(g_j(x_k)),    g_j(x) = A_j (x - b_j) + xi_j,

``xi_j ~ N(0, (sigma2/d) I_d)``. The supported compressors are random *diagonal* linear maps
``C(v) = Lambda v`` (``Lambda`` diagonal, drawn independently of ``v``) with exchangeable
coordinates, so that the first two moments are linear in ``v`` and ``v v^T``::

    E C(v) = alpha v,        E[C(v) C(v)^T] = a v v^T + b Diag(v v^T)      (Diag: keep diagonal)

(:func:`compressor_moments`). With the covariance kernel of ``Lambda``,
``K' = Cov(lambda_i, lambda_l) = (a - alpha^2) 1 1^T + b I`` (positive semidefinite), the error
``e = x - x*``, ``c_j = grad f_j(x*)`` (which average to 0), ``mu_j = A_j e + c_j`` and
``B = I - gamma alpha Abar``, conditioning on ``e_k`` and using independence across nodes gives
the exact recursion of the mean ``m_k = E e_k`` and second moment ``S_k = E[e_k e_k^T]``::

    m_{k+1} = B m_k
    S_{k+1} = B S_k B + gamma^2/n^2 sum_j K' o E[mu_j mu_j^T] + gamma^2 (sigma2/d) (a + b)/n I
    E[mu_j mu_j^T] = A_j S_k A_j + A_j m_k c_j^T + c_j m_k^T A_j + c_j c_j^T

(``o`` the Hadamard product; ``K' o X = (a - alpha^2) X + b Diag(X)``). ``error`` is
``E||x_k - x*||^2 = tr S_k``; one model is shared, so ``consensus = 0`` and
``avg_error = error``. For the identity compressor ``K' = 0`` and the recursion is that of
:func:`theorylab.exact.exact_psgd`.

Solvers (``method``):

- ``'diagonal'``: diagonal Hessians. The diagonal of ``K' o X`` is ``kappa diag(X)`` with
  ``kappa = a + b - alpha^2`` (``= omega`` for an unbiased compressor), so coordinate ``i`` is
  the scalar pair ``m_{k+1} = r m_k``, ``s_{k+1} = p s_k + q m_k + w`` with
  ``r = 1 - gamma alpha hbar_i``, ``p = r^2 + gamma^2 kappa/n^2 sum_j h_ji^2``,
  ``q = 2 gamma^2 kappa/n^2 sum_j h_ji c_ji``, ``w = gamma^2 (kappa/n^2 sum_j c_ji^2 +
  (sigma2/d)(a + b)/n)``; closed form ``s_k = p^k s_0 + w (1 - p^k)/(1 - p)
  + q m_0 (p^k - r^k)/(p - r)`` at every checkpoint (O(d) per checkpoint).
- ``'dense'``: any Hessians; the d x d recursion stepped exactly (O(n d^3) per step).

Steady state (``m_inf = 0`` because ``mean_j c_j = 0``): ``S = B S B + N(S) + Q0`` with
``N(S) = gamma^2/n^2 K' o sum_j A_j S A_j``. It exists iff the recursion is mean-square stable,
i.e. the positive map ``S -> B S B + N(S)`` has spectral radius < 1 (diagonal:
``max_i p_i < 1``; dense: ``rho(B) < 1`` and ``rho(L^{-1} N) < 1`` with ``L(S) = S - B S B``,
which are equivalent for positive maps). Diagonal: ``tr S = sum_i w_i/(1 - p_i)``; dense: GMRES
on ``(I - L^{-1} N) S = L^{-1} Q0``, ``L^{-1}`` applied elementwise in the eigenbasis of Abar.

Closed form (isotropic Hessians ``A_j = h I``, unbiased compressor in U(omega))::

    E||x_inf - x*||^2 = gamma ((1 + omega) sigma2 + omega zeta2_star)
                        / (n h (2 - gamma h (1 + omega/n)))

so the noise floor grows exactly by ``(1 + omega)(2 - gamma h)/(2 - gamma h (1 + omega/n))``
over uncompressed PSGD: ``1 + omega`` as ``gamma -> 0`` (rates.md §5a), and the heterogeneity
part ``omega zeta2_star`` does not vanish as ``sigma2 -> 0``.

Error feedback (:func:`exact_ef_sgd`, :func:`exact_ef21`; diagonal Hessians): each node also
keeps a memory (EF-SGD's error ``e_j``, EF21's estimator ``g_j``), so coordinate ``i`` carries the
state ``(x_i - x*_i, memory_1i, ..., memory_ni)``; with a random diagonal compressor the
coordinate blocks of the second moment still close, giving an exact (n+1) x (n+1) recursion per
coordinate (O(d n^3) per step) and a steady state by a Woodbury reduction to an n x n system.

References
----------
Alistarh et al., QSGD, NeurIPS 2017, arXiv 1610.02132 (compressed PSGD). Stich, Cordonnier,
Jaggi, Sparsified SGD with memory, NeurIPS 2018, arXiv 1809.07599 (rand-k). shared/references/
rates.md §5a-c, compression.md §3. Richtarik, Sokolov, Fatkhullin, EF21, NeurIPS 2021,
arXiv 2106.05203.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from scipy.sparse.linalg import ArpackNoConvergence, LinearOperator, eigs, gmres

from theorylab.errors import SolverError, TheorylabError, check_int, check_positive
from theorylab.exact._common import (
    ExactPrediction,
    _Acc,
    _check_problem,
    _check_record,
    _check_x0,
    _finish,
    _geom,
    _powers,
)
from theorylab.exact.engine import LinearSystem, Multiplicative, solve, stein_forms
from theorylab.problems import QuadraticProblem

__all__ = [
    "CompressorMoments",
    "compressor_moments",
    "exact_compressed_psgd",
    "exact_ef_sgd",
    "exact_ef21",
]

_CP_METHODS = ("auto", "diagonal", "dense")
_SUPPORTED = "identity, rand-k, rand-k-unscaled, and scaled(<one of these>)"


class CompressorMoments(NamedTuple):
    r"""First and second moments of a random diagonal compressor at dimension ``d``.

    ``E C(v) = alpha v`` and ``E[C(v) C(v)^T] = a v v^T + b Diag(v v^T)`` for every ``v``.
    ``kappa = a + b - alpha^2`` is the variance of one coordinate's multiplier (``= omega``,
    the U(omega) constant, when ``alpha = 1``).
    """

    alpha: float
    a: float
    b: float

    @property
    def kappa(self) -> float:
        """Per-coordinate variance ``Var(lambda_i) = a + b - alpha^2``."""
        return self.a + self.b - self.alpha**2


def compressor_moments(compressor, d: int) -> CompressorMoments:
    r"""Exact moments ``(alpha, a, b)`` of a random-sparsification compressor.

    The math: rand-k keeps a uniform ``k``-subset ``S`` (without replacement) and multiplies by
    ``s`` (``d/k`` scaled, 1 unscaled), so ``P(i in S) = k/d`` and, for ``i != l``,
    ``P(i, l in S) = k(k - 1)/(d(d - 1))``. Hence ``alpha = s k/d``,
    ``a = s^2 k(k - 1)/(d(d - 1))`` (``a = s^2`` when ``d = 1``) and ``a + b = s^2 k/d``. Scaled
    rand-k: ``alpha = 1``, ``a = d(k - 1)/(k(d - 1))``, ``b = (d/k)(d - k)/(d - 1)``,
    ``a + b = d/k = 1 + omega``. Identity: ``(1, 1, 0)``. ``scaled(C)`` = ``C/(1 + omega)``
    divides ``alpha`` by ``1 + omega`` and ``a, b`` by ``(1 + omega)^2``. Exact (tested by
    enumerating all k-subsets).

    Parameters
    ----------
    compressor : Compressor or spec string (:func:`theorylab.compressors.get_compressor`);
        one of identity, rand-k, rand-k-unscaled, scaled(<one of these>).
    d : int >= 1, the dimension.

    Returns
    -------
    CompressorMoments

    Raises
    ------
    TheorylabError
        A compressor whose second moment is not of this form (QSGD, TernGrad, natural,
        top-k, sign, PowerSGD, casts, user subclasses), or ``k > d``.

    Example
    -------
    >>> m = compressor_moments("rand-k:k=2", 4)
    >>> m.alpha, round(m.a, 12), round(m.b, 12), m.kappa
    (1.0, 0.666666666667, 1.333333333333, 1.0)
    """
    from theorylab.compressors import Compressor, Identity, RandK, Scaled, get_compressor

    d = check_int("d", d, minimum=1)
    if not isinstance(compressor, (str, Compressor)):
        raise TypeError(
            f"compressor must be a spec string or a theorylab Compressor, got "
            f"{type(compressor).__name__}"
        )
    C = get_compressor(compressor)
    factor = 1.0
    name = getattr(C, "spec", C.name)
    if type(C) is Scaled:
        factor = 1.0 + float(C.inner.omega(d))
        C = C.inner
    if type(C) is Identity:
        alpha, a, b = 1.0, 1.0, 0.0
    elif type(C) is RandK:
        k = C.k_of(d)
        s = d / k if C.scaled else 1.0
        pair = k * (k - 1) / (d * (d - 1)) if d > 1 else 1.0
        alpha = s * k / d
        a = s * s * pair
        b = s * s * k / d - a
    else:
        raise TheorylabError(
            f"exact compressed-PSGD predictions need a compressor whose second moment "
            f"E[C(v)C(v)^T] is linear in v v^T with a diagonal random multiplier; {name!r} "
            f"is not supported (QSGD, TernGrad, natural, top-k, sign and PowerSGD are not). "
            f"Use one of: {_SUPPORTED}"
        )
    return CompressorMoments(alpha / factor, a / factor**2, b / factor**2)


# ---- diagonal Hessians: closed form per coordinate -------------------------------------------
def _divided_power(p: np.ndarray, r: np.ndarray, t: np.ndarray) -> np.ndarray:
    """``(p^t - r^t)/(p - r) = sum_{u<t} p^{t-1-u} r^u`` for p >= 0, tables (len(t), d).

    Near ``p = r`` (which needs ``r > 0``) it uses ``r^{t-1} expm1(t log1p(x))/x``,
    ``x = (p - r)/r``, free of cancellation.
    """
    tt = t[:, None].astype(np.float64)
    P, Rt = _powers(p, t), _powers(r, t)
    delta = p - r
    near = np.abs(delta) <= 1e-4 * np.maximum(np.abs(p), np.abs(r))
    out = np.zeros((t.size, p.size))
    far = ~near
    if np.any(far):
        out[:, far] = (P[:, far] - Rt[:, far]) / delta[far]
    if np.any(near):
        rn = r[near]  # > 0 here: p >= 0 and |p - r| small relative to max(|p|, |r|)
        x = delta[near] / rn
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            ratio = np.where(x == 0, tt, np.expm1(tt * np.log1p(x)) / np.where(x == 0, 1.0, x))
            lead = np.exp((tt - 1.0) * np.log(rn))
        out[:, near] = np.where(tt == 0, 0.0, lead * ratio)
    return out


def _diagonal(problem, gamma, mom, e0, rec, acc):
    n = problem.n
    H = problem.hessian_diagonal  # (n, d)
    c = problem.grad_star  # (n, d), columns average to 0
    s2 = problem.sigma2 / problem.d
    kappa = mom.kappa
    g2 = gamma * gamma
    r = 1.0 - gamma * mom.alpha * H.mean(axis=0)
    p = r * r + g2 * kappa / n**2 * np.sum(H * H, axis=0)
    q = 2.0 * g2 * kappa / n**2 * np.sum(H * c, axis=0)
    w = g2 * (kappa / n**2 * np.sum(c * c, axis=0) + s2 * (mom.a + mom.b) / n)
    P = _powers(p, rec)
    s = P @ (e0 * e0) + _geom(p[None, :], rec[:, None], P) @ w
    use = q * e0 != 0.0
    if np.any(use):
        s = s + _divided_power(p[use], r[use], rec) @ (q[use] * e0[use])
    acc.err, acc.avg = s * 1.0, s * 1.0
    if np.max(p) >= 1.0:
        acc.ss_err = acc.ss_avg = np.inf
    else:
        acc.ss_err = acc.ss_avg = float(np.sum(w / (1.0 - p)))


# ---- general Hessians: the d x d recursion ---------------------------------------------------
class _DenseSystem:
    """The maps of the second-moment recursion for dense Hessians."""

    def __init__(self, problem: QuadraticProblem, gamma: float, mom: CompressorMoments):
        n, d = problem.n, problem.d
        self.A = problem.A
        self.c = problem.grad_star
        self.n, self.d = n, d
        self.g2n2 = gamma * gamma / n**2
        self.c1 = mom.a - mom.alpha**2  # off-diagonal part of K'
        self.bd = mom.b  # diagonal part of K'
        self.h, self.U = np.linalg.eigh(problem.mean_hessian)
        self.lam = 1.0 - gamma * mom.alpha * self.h  # eigenvalues of B
        self.B = (self.U * self.lam) @ self.U.T
        self.compressed = self.c1 != 0.0 or self.bd != 0.0
        Q0 = np.eye(d) * (gamma * gamma * problem.sigma2 / d * (mom.a + mom.b) / n)
        if self.compressed:
            Q0 += self.kprime(self.g2n2 * self.c.T @ self.c)
        self.Q0 = Q0

    def kprime(self, X: np.ndarray) -> np.ndarray:
        """``K' o X = c1 X + b Diag(X)``."""
        out = self.c1 * X
        out[np.diag_indices(self.d)] += self.bd * np.diagonal(X)
        return out

    def N(self, S: np.ndarray) -> np.ndarray:
        """``gamma^2/n^2 K' o sum_j A_j S A_j``."""
        if not self.compressed:
            return np.zeros_like(S)
        sigma = np.einsum("nij,njk->ik", self.A @ S, self.A)
        return self.kprime(self.g2n2 * sigma)

    def cross(self, m: np.ndarray) -> np.ndarray:
        """``gamma^2/n^2 K' o sum_j (A_j m c_j^T + c_j m^T A_j)``."""
        if not self.compressed:
            return np.zeros((self.d, self.d))
        X = np.einsum("nij,j->ni", self.A, m).T @ self.c
        return self.kprime(self.g2n2 * (X + X.T))

    def lyap_inv(self, Y: np.ndarray) -> np.ndarray:
        """Solve ``S - B S B = Y`` (needs ``rho(B) < 1``), elementwise in the eigenbasis."""
        Yh = self.U.T @ Y @ self.U
        return self.U @ (Yh / (1.0 - np.outer(self.lam, self.lam))) @ self.U.T

    def steady_state(self) -> float:
        """``tr S_inf``, or inf if the recursion is not mean-square stable."""
        if np.max(np.abs(self.lam)) >= 1.0:
            return np.inf
        d = self.d
        if not self.compressed:
            return float(np.trace(self.lyap_inv(self.Q0)))

        def op(v):  # L^{-1} N, on vec(S)
            return self.lyap_inv(self.N(v.reshape(d, d))).ravel()

        rho = self._perron_root(op)
        if rho >= 1.0:
            return np.inf
        rhs = self.lyap_inv(self.Q0).ravel()
        M = LinearOperator((d * d, d * d), matvec=lambda v: v - op(v), dtype=np.float64)
        sol, info = gmres(M, rhs, x0=rhs, rtol=1e-13, atol=0.0, restart=min(d * d, 60), maxiter=200)
        resid = np.linalg.norm(M @ sol - rhs) / max(np.linalg.norm(rhs), 1e-300)
        if info != 0 and resid > 1e-10:
            raise SolverError(
                f"GMRES did not solve the steady-state equation (info={info}, relative residual "
                f"{resid:.2g}); the recursion is close to instability (rho(L^-1 N) = {rho:.6g})"
            )
        return float(np.trace(sol.reshape(d, d)))

    def _perron_root(self, op) -> float:
        """Spectral radius of the positive map ``L^{-1} N`` (its Perron root)."""
        dd = self.d * self.d
        if dd <= 64:
            M = np.column_stack([op(e) for e in np.eye(dd)])
            return float(np.max(np.abs(np.linalg.eigvals(M))))
        lin = LinearOperator((dd, dd), matvec=op, dtype=np.float64)
        try:
            vals = eigs(
                lin,
                k=1,
                which="LM",
                v0=np.eye(self.d).ravel(),
                tol=1e-10,
                maxiter=5000,
                return_eigenvectors=False,
            )
        except ArpackNoConvergence as exc:  # pragma: no cover - ARPACK failure
            raise SolverError(f"ARPACK did not find the Perron root of L^-1 N: {exc}") from exc
        return float(np.max(np.abs(vals)))


def _dense(problem, gamma, mom, e0, rec, acc):
    sysm = _DenseSystem(problem, gamma, mom)
    m = e0.copy()
    S = np.outer(e0, e0)
    j = 0
    for k in range(int(rec[-1]) + 1):
        if k == rec[j]:
            acc.err[j] = acc.avg[j] = float(np.trace(S))
            j += 1
            if j == rec.size:
                break
        S_next = sysm.B @ S @ sysm.B + sysm.N(S) + sysm.cross(m) + sysm.Q0
        m = sysm.B @ m
        S = 0.5 * (S_next + S_next.T)
    acc.ss_err = acc.ss_avg = sysm.steady_state()


# ---- error feedback: per-coordinate linear systems with multiplicative noise -----------------
class _CoordinateSystem:
    r"""Coordinate-separable linear system with compressed node inputs (diagonal Hessians),
    declared on the engine (:class:`theorylab.exact.engine.LinearSystem` with a
    :class:`~theorylab.exact.engine.Multiplicative` term).

    Per coordinate (arrays batched over a leading axis of length d), state ``z`` in ``R^N``::

        p  = P z + u + sqrt(sigma2) xi,        xi ~ N(0, I_n)     (node j compresses p_j)
        z' = G z + E p + F Lambda p,           Lambda = alpha I + diag(delta_j), Var = kappa

    ``E`` routes the uncompressed inputs, ``F`` the compressed ones. With ``Fm = E + alpha F``,
    ``T = G + Fm P`` and ``v = Fm u`` the declared affine part is ``M = T``, ``c = v``,
    ``Q = sigma2 Fm Fm^T`` and the multiplicative part adds ``kappa F diag(pi) F^T``,
    ``pi = diag E[p p^T]`` (the diagonal of ``K' o X`` is ``kappa diag(X)``, so coordinate
    blocks close). Output ``x``: ``E z_0^2`` (the iterate's error in that coordinate).
    """

    def __init__(self, G, E, F, P, u, sigma2, alpha, kappa):
        self.F, self.P, self.u = F, P, u  # (N, n), (d, n, N), (d, n)
        self.sigma2, self.kappa = sigma2, kappa
        self.Fm = E + alpha * F
        self.T = G[None] + np.einsum("ij,djk->dik", self.Fm, P)  # (d, N, N)
        self.v = np.einsum("ij,dj->di", self.Fm, u)  # (d, N)
        self.noise = sigma2 * self.Fm @ self.Fm.T
        self.mult = Multiplicative(F, P, u, sigma2, kappa)

    def declare(self, m0, Z0) -> LinearSystem:
        """The engine declaration started from mean ``m0 (d, N)`` and second moment ``Z0``."""
        S0 = Z0 - m0[:, :, None] * m0[:, None, :]
        N = self.T.shape[1]
        sel = np.zeros((1, N))
        sel[0, 0] = 1.0
        return LinearSystem.declare(
            self.T, self.v, self.noise, m0, {"x": sel}, S0=S0, mult=self.mult
        )

    def steady_state(self) -> float:
        """Sum over coordinates of ``Z_inf[0, 0]``, or inf if not mean-square stable."""
        d, N = self.v.shape
        m0 = np.zeros((d, N))
        res = solve(self.declare(m0, np.zeros((d, N, N))), np.array([0]))
        return float(res.steady["x"])


def _stein_forms(T, P, F):
    """``M[j, l] = p_j^T Y_l p_j`` and ``Y_l[0, 0]`` (see :func:`engine.stein_forms`)."""
    return stein_forms(T, P, F)


def _run_coordinate_system(system, m, Z, rec, acc):
    res = solve(system.declare(m, Z), rec)
    acc.err, acc.avg = res.curves["x"], res.curves["x"] * 1.0
    acc.ss_err = acc.ss_avg = float(res.steady["x"])


def _psgd_system(problem, gamma, mom):
    """Compressed PSGD, state ``e_x`` (N = 1); cross-checks the closed form in the tests."""
    H, c = problem.hessian_diagonal, problem.grad_star
    n = problem.n
    P = H.T[:, :, None].copy()
    F = np.full((1, n), -gamma / n)
    return _CoordinateSystem(
        np.ones((1, 1)),
        np.zeros((1, n)),
        F,
        P,
        c.T.copy(),
        problem.sigma2 / problem.d,
        mom.alpha,
        mom.kappa,
    )


def _ef_sgd_system(problem, gamma, mom):
    """EF-SGD, state ``(e_x, e_1..e_n)``: ``p_j = gamma g_j + e_j``, ``x' = x - mean_j C(p_j)``,
    ``e_j' = p_j - C(p_j)``."""
    H, c = problem.hessian_diagonal, problem.grad_star
    n, d = problem.n, problem.d
    N, nodes = n + 1, np.arange(n)
    P = np.zeros((d, n, N))
    P[:, :, 0] = gamma * H.T
    P[:, nodes, 1 + nodes] = 1.0
    G = np.zeros((N, N))
    G[0, 0] = 1.0
    E = np.zeros((N, n))
    E[1 + nodes, nodes] = 1.0
    F = np.zeros((N, n))
    F[0, :] = -1.0 / n
    F[1 + nodes, nodes] = -1.0
    return _CoordinateSystem(
        G, E, F, P, gamma * c.T, gamma**2 * problem.sigma2 / d, mom.alpha, mom.kappa
    )


def _ef21_system(problem, gamma, mom):
    """EF21, state ``(e_x, g_1..g_n)``: ``x' = x - gamma mean_j g_j``,
    ``g_j' = g_j + C(grad_j(x') - g_j)`` with ``grad_j(x') = A_j (x' - x*) + c_j + xi_j``."""
    H, c = problem.hessian_diagonal, problem.grad_star
    n, d = problem.n, problem.d
    N, nodes = n + 1, np.arange(n)
    G = np.eye(N)
    G[0, 1:] = -gamma / n
    P = np.einsum("dj,k->djk", H.T, G[0])  # h_j (e_x - gamma gbar)
    P[:, nodes, 1 + nodes] -= 1.0  # - g_j
    F = np.zeros((N, n))
    F[1 + nodes, nodes] = 1.0
    return _CoordinateSystem(
        G, np.zeros((N, n)), F, P, c.T.copy(), problem.sigma2 / d, mom.alpha, mom.kappa
    )


def _ef21_initial(problem, mom, e0):
    """Mean and coordinate second moments of ``(e_x, g_j^0 = C(grad_j(x0)))``."""
    H, c = problem.hessian_diagonal, problem.grad_star
    n, d = problem.n, problem.d
    mu = (H * e0[None, :] + c).T  # (d, n): deterministic gradients at x0
    m = np.concatenate([e0[:, None], mom.alpha * mu], axis=1)
    Z = m[:, :, None] * m[:, None, :]
    var = mom.kappa * mu**2 + (mom.a + mom.b) * problem.sigma2 / d
    Z[:, 1 + np.arange(n), 1 + np.arange(n)] += var
    return m, Z


def _exact_ef(problem, gamma, n_steps, x0, compressor, record, algorithm):
    problem = _check_problem(problem)
    gamma = check_positive("gamma", gamma)
    n_steps = check_int("n_steps", n_steps, minimum=0)
    x0 = _check_x0(x0, (problem.d,))
    rec = _check_record(record, n_steps)
    if problem.hessian_diagonal is None:
        raise TheorylabError(
            f"exact {algorithm} predictions need diagonal Hessians A_j (the error memories "
            "then decouple across coordinates); build the problem with diagonal=True"
        )
    mom = compressor_moments(compressor, problem.d)
    e0 = x0 - problem.x_star
    n, d = problem.n, problem.d
    if algorithm == "ef_sgd":
        system = _ef_sgd_system(problem, gamma, mom)
        m = np.zeros((d, n + 1))
        m[:, 0] = e0
        Z = m[:, :, None] * m[:, None, :]
    else:
        system = _ef21_system(problem, gamma, mom)
        m, Z = _ef21_initial(problem, mom, e0)
    acc = _Acc(rec.size)
    _run_coordinate_system(system, m, Z, rec, acc)
    return acc, rec


# ---- public API ------------------------------------------------------------------------------
def exact_compressed_psgd(
    problem: QuadraticProblem,
    gamma: float,
    n_steps: int,
    x0,
    compressor="rand-k:ratio=0.25",
    record=None,
    method: str = "auto",
) -> ExactPrediction:
    r"""Exact E||x_k - x*||^2 of compressed parallel SGD with a random sparsifier.

    The math: ``x_{k+1} = x_k - gamma (1/n) sum_j C_j(A_j (x_k - b_j) + xi_j)``, node ``j``
    drawing its own compressor randomness, ``xi_j ~ N(0, (sigma2/d) I)``; the mean and the
    d x d second moment of ``e = x - x*`` follow the exact recursion in the module docstring
    (moments ``alpha, a, b`` from :func:`compressor_moments`). For isotropic Hessians
    ``A_j = h I`` and ``C`` in U(omega) the floor is
    ``gamma ((1 + omega) sigma2 + omega zeta2_star) / (n h (2 - gamma h (1 + omega/n)))``.
    Guarantee: **exact** (tight) expectations, up to floating point; the measured mean over
    seeded runs must agree within its confidence interval. The rand-k runtime draws its subset
    from hashed keys (:class:`theorylab.compressors.RandK`); the prediction assumes a uniform
    k-subset.

    Parameters
    ----------
    problem : QuadraticProblem
    gamma : float > 0, step size.
    n_steps : int >= 0, last step to predict.
    x0 : array (d,), deterministic initial point (the same on every node and replica).
    compressor : Compressor or spec string: identity, ``rand-k:k=..`` / ``rand-k:ratio=..``
        (scaled by d/k, in U(d/k - 1)), ``rand-k-unscaled`` or ``scaled(<one of these>)``.
    record : increasing ints in [0, n_steps], steps to report (default all 0..n_steps).
    method : 'auto' (diagonal when every A_j is diagonal, else dense), 'diagonal' or 'dense'.

    Returns
    -------
    ExactPrediction
        ``algorithm='compressed_psgd'``, ``method`` the solver used; ``error = avg_error``
        (one shared model), ``consensus = 0``; ``steady_state`` the limit, inf with a
        TheorylabWarning when the recursion is not mean-square stable.

    Raises
    ------
    TheorylabError, TypeError
        gamma <= 0, bad shapes, unknown method, 'diagonal' on non-diagonal Hessians, or an
        unsupported compressor (see :func:`compressor_moments`).
    SolverError
        The dense steady-state solve failed (only very close to instability).

    Example
    -------
    >>> import numpy as np
    >>> from theorylab.problems import QuadraticProblem
    >>> p = QuadraticProblem(np.ones((4, 8)), np.zeros((4, 8)), sigma2=1.0)  # A_j = I
    >>> pred = exact_compressed_psgd(p, 0.1, 100, np.zeros(8), "rand-k:k=2")
    >>> omega = 8 / 2 - 1
    >>> floor = 0.1 * (1 + omega) * 1.0 / (4 * (2 - 0.1 * (1 + omega / 4)))
    >>> bool(np.isclose(pred.steady_state["error"], floor, rtol=1e-12))
    True

    References
    ----------
    Alistarh et al., NeurIPS 2017, arXiv 1610.02132; Stich, Cordonnier, Jaggi, NeurIPS 2018,
    arXiv 1809.07599; rates.md §5a.
    """
    problem = _check_problem(problem)
    gamma = check_positive("gamma", gamma)
    n_steps = check_int("n_steps", n_steps, minimum=0)
    x0 = _check_x0(x0, (problem.d,))
    rec = _check_record(record, n_steps)
    if method not in _CP_METHODS:
        raise TheorylabError(f"method must be one of {_CP_METHODS}, got {method!r}")
    if method == "diagonal" and problem.hessian_diagonal is None:
        raise TheorylabError(
            "method='diagonal' needs diagonal Hessians A_j; use method='dense' or 'auto'"
        )
    mom = compressor_moments(compressor, problem.d)
    e0 = x0 - problem.x_star
    acc = _Acc(rec.size)
    if method != "dense" and problem.hessian_diagonal is not None:
        _diagonal(problem, gamma, mom, e0, rec, acc)
        used = "diagonal"
    else:
        _dense(problem, gamma, mom, e0, rec, acc)
        used = "dense"
    if not math.isfinite(acc.ss_err):
        acc.ss_err = acc.ss_avg = np.inf
    return _finish(acc, rec, "compressed_psgd", None, used)


def exact_ef_sgd(
    problem: QuadraticProblem,
    gamma: float,
    n_steps: int,
    x0,
    compressor="rand-k-unscaled:ratio=0.25",
    record=None,
) -> ExactPrediction:
    r"""Exact E||x_k - x*||^2 of error-feedback SGD (EF-SGD / mem-SGD) with a random sparsifier.

    The math, per node ``j`` (:class:`verify.algorithms.ef_sgd.EFSGD`)::

        p_j = gamma g_j(x) + e_j,   x <- x - (1/n) sum_j C_j(p_j),   e_j <- p_j - C_j(p_j)

    with ``e_j^0 = 0`` and ``g_j = A_j (x - b_j) + xi_j``. For diagonal Hessians and a random
    diagonal compressor (:func:`compressor_moments`) each coordinate's state
    ``(x - x*, e_1, ..., e_n)`` is a linear system with multiplicative noise whose mean and
    (n+1) x (n+1) second moment follow an exact recursion (``_CoordinateSystem``); the steady
    state solves it by a Woodbury reduction to an n x n system. Guarantee: **exact**
    expectations. With the identity compressor EF-SGD is PSGD (tested).

    Parameters
    ----------
    problem : QuadraticProblem with diagonal Hessians.
    gamma : float > 0; n_steps : int >= 0; x0 : array (d,), deterministic start.
    compressor : identity, rand-k, rand-k-unscaled (the usual EF choice, B(k/d)) or scaled(..).
    record : increasing ints in [0, n_steps] (default all).

    Returns
    -------
    ExactPrediction with ``algorithm='ef_sgd'``, ``method='diagonal'``; ``error`` is that of
    the transmitted iterate ``x`` (not the virtual one); ``consensus = 0``.

    Raises
    ------
    TheorylabError, TypeError
        Non-diagonal Hessians, unsupported compressor, bad gamma/shapes.

    Example
    -------
    >>> import numpy as np
    >>> from theorylab.problems import heterogeneous_quadratic
    >>> p = heterogeneous_quadratic(4, 6, zeta2=1.0, sigma2=0.5, seed=0)
    >>> a = exact_ef_sgd(p, 0.2, 50, np.zeros(6), "identity")
    >>> from theorylab.exact import exact_psgd
    >>> bool(np.allclose(a.error, exact_psgd(p, 0.2, 50, np.zeros(6)).error, rtol=1e-12))
    True

    References
    ----------
    Stich, Cordonnier, Jaggi, NeurIPS 2018, arXiv 1809.07599; Karimireddy et al., ICML 2019,
    arXiv 1901.09847; rates.md §5b.
    """
    acc, rec = _exact_ef(problem, gamma, n_steps, x0, compressor, record, "ef_sgd")
    return _finish(acc, rec, "ef_sgd", None, "diagonal")


def exact_ef21(
    problem: QuadraticProblem,
    gamma: float,
    n_steps: int,
    x0,
    compressor="rand-k-unscaled:ratio=0.25",
    record=None,
) -> ExactPrediction:
    r"""Exact E||x_k - x*||^2 of EF21 with stochastic gradients and a random sparsifier.

    The math (:class:`verify.algorithms.ef21.EF21`)::

        x^{t+1} = x^t - gamma (1/n) sum_j g_j^t
        g_j^{t+1} = g_j^t + C_j(A_j (x^{t+1} - b_j) + xi_j^{t+1} - g_j^t)

    initialised with ``g_j^0 = C_j(A_j (x^0 - b_j) + xi_j^0)`` (one compressed gradient). For
    diagonal Hessians each coordinate's ``(x - x*, g_1, ..., g_n)`` follows the exact
    mean/second-moment recursion of a linear system with multiplicative noise (see
    :func:`exact_ef_sgd`). Guarantee: **exact** expectations. With the identity compressor
    EF21 is PSGD (tested).

    Parameters, Returns, Raises: as :func:`exact_ef_sgd` (``algorithm='ef21'``).

    Example
    -------
    >>> import numpy as np
    >>> from theorylab.problems import heterogeneous_quadratic
    >>> p = heterogeneous_quadratic(4, 6, zeta2=1.0, sigma2=0.0, seed=0)
    >>> pred = exact_ef21(p, 0.5, 400, np.ones(6), "rand-k-unscaled:k=2")
    >>> bool(pred.error[-1] < 1e-6 * pred.error[0])  # no noise: EF21 converges linearly
    True

    References
    ----------
    Richtarik, Sokolov, Fatkhullin, NeurIPS 2021, arXiv 2106.05203; rates.md §5c.
    """
    acc, rec = _exact_ef(problem, gamma, n_steps, x0, compressor, record, "ef21")
    return _finish(acc, rec, "ef21", None, "diagonal")
