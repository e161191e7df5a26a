"""The exact engine: mean and second moment of a declared affine system with Gaussian noise.

A family declares (:class:`LinearSystem`), per independent block ``b`` (a coordinate of a
shared Hessian eigenbasis, or the whole state) and per phase ``t = k mod p``::

    z_{k+1} = M_t z_k + c_t + noise_k,          Cov(noise_k) = Q_t,   E z_0 = m0, Cov z_0 = S0

optionally plus a multiplicative (compression) term (:class:`Multiplicative`), and named output
selectors ``C`` (value ``sum_b E||C z_k^(b)||^2``). :func:`solve` returns every output at the
recorded steps and at steady state, choosing a route:

- ``spectral``: a static block whose ``M`` is similar to a symmetric matrix by a declared
  diagonal scaling ``s`` (``diag(s) M diag(s)^-1`` symmetric): one ``eigh``, and every
  checkpoint is a quadratic form in ``lam^k``; eigenvalue-1 modes that the drift and the noise
  never excite are conserved (their component of ``m0`` stays).
- ``stepped``: the exact recursion ``m' = M m + c``, ``P' = M P M^T + Q`` (raw second moment
  ``Z`` with a multiplicative term), batched over blocks; steady state from the period map
  ``M_{p-1}...M_0`` (cyclostationary at phase 0) by a Lyapunov solve. If the period map has
  eigenvalue 1 (a conserved direction), the engine checks that neither the drift nor the noise
  excites it (else the steady state is infinite: a random walk), keeps the conserved component
  of ``m0`` and solves the Lyapunov equation in the complementary invariant subspace, where it
  is regular.
- multiplicative noise: ``p = P z + u + sqrt(sigma2) xi`` enters through ``F diag(delta) p``
  (``delta`` independent, mean 0, variance ``kappa``), adding ``kappa F diag(pi) F^T`` with
  ``pi = diag E[p p^T]`` to the second moment; steady state by a Woodbury reduction.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.linalg import solve_discrete_lyapunov

from theorylab.errors import TheorylabError
from theorylab.exact._common import _geom, _powers

__all__ = ["LinearSystem", "Multiplicative", "EngineResult", "solve"]

_UNIT = 1e-13  # |lam| >= 1 - _UNIT counts as not strictly stable
_ONE = 1e-9  # |lam - 1| < _ONE counts as an eigenvalue 1 (candidate conserved direction)


@dataclass(frozen=True)
class Multiplicative:
    r"""Multiplicative noise ``F diag(delta) p``, ``p = P z + u + sqrt(sigma2) xi``.

    ``delta`` independent across entries and steps, mean 0, variance ``kappa`` (or, with ``K``
    given, any covariance ``Cov(delta) = K (n, n)``, e.g. client sampling; the term is then
    ``F (K o E[p p^T]) F^T``); ``xi ~ N(0, I_n)``. Shapes: ``F (N, n)`` (shared),
    ``P (B, n, N)``, ``u (B, n)``. The
    additive parts of ``p`` (``E[...]`` of the compressed input) must already be in the
    declaration's ``M``, ``c`` and ``Q``: this term adds only
    ``kappa F diag(pi) F^T``, ``pi = diag(P Z P^T) + 2 (P m) o u + u^2 + sigma2``.
    """

    F: np.ndarray
    P: np.ndarray
    u: np.ndarray
    sigma2: float
    kappa: float
    K: np.ndarray | None = None

    def term(self, idx, m, Z):
        """The added second moment for blocks idx, given the mean m and raw second moment Z."""
        P, u, F = self.P[idx], self.u[idx], self.F
        if self.K is None:
            if self.kappa == 0.0:
                return 0.0
            Pm = (P @ m[:, :, None])[:, :, 0]
            pi = np.sum((P @ Z) * P, axis=2) + 2.0 * Pm * u + u * u + self.sigma2
            return self.kappa * ((F[None] * pi[:, None, :]) @ F.T)
        Pm = (P @ m[:, :, None])[:, :, 0]
        E = P @ Z @ np.swapaxes(P, 1, 2)
        E += Pm[:, :, None] * u[:, None, :] + u[:, :, None] * Pm[:, None, :]
        E += u[:, :, None] * u[:, None, :] + self.sigma2 * np.eye(u.shape[1])
        return F[None] @ (self.K[None] * E) @ F.T


@dataclass
class LinearSystem:
    r"""A declared affine system ``z' = M_t z + c_t + noise`` (see the module docstring).

    Build it with :meth:`declare`. Arrays carry a phase axis and a block axis:
    ``M (p, B, N, N)``, ``c (p, B, N)``, ``Q`` a list of ``p`` entries, each a float
    (``q I``), an ``(N, N)`` array shared by the blocks or a ``(B, N, N)`` array;
    ``m0 (B, N)``, ``S0 (B, N, N)`` or None (deterministic start); ``outputs`` maps a name to
    a selector ``C``: a float ``s`` (``s I``) or a ``(K, N)`` array; ``symmetrizer (B, N)``
    positive, with ``diag(s) M diag(s)^-1`` symmetric (static systems only), or None.
    """

    M: np.ndarray
    c: np.ndarray
    Q: list
    m0: np.ndarray
    outputs: dict
    S0: np.ndarray | None = None
    symmetrizer: np.ndarray | None = None
    mult: Multiplicative | list | None = None

    @classmethod
    def declare(
        cls,
        M,
        c,
        Q,
        m0,
        outputs: dict,
        S0=None,
        symmetrizer=None,
        mult=None,
    ) -> LinearSystem:
        """Normalise shapes. A list/tuple for ``M`` (and then for ``c`` and ``Q``) is a periodic
        schedule of phases; a 2-d ``M`` is one block, a 3-d one a stack of blocks."""
        phased = isinstance(M, (list, tuple))
        Ms = list(M) if phased else [M]
        cs = list(c) if phased else [c]
        Qs = list(Q) if phased else [Q]
        if not (len(Ms) == len(cs) == len(Qs)) or not Ms:
            raise TheorylabError(
                f"M, c and Q need the same (non-zero) number of phases, got "
                f"{len(Ms)}, {len(cs)}, {len(Qs)}"
            )
        Ms = [np.asarray(x, dtype=np.float64) for x in Ms]
        Ms = [x[None] if x.ndim == 2 else x for x in Ms]
        B, N = Ms[0].shape[0], Ms[0].shape[1]
        Marr = np.stack([np.broadcast_to(x, (B, N, N)) for x in Ms])
        carr = np.stack([np.broadcast_to(np.asarray(x, dtype=np.float64), (B, N)) for x in cs])
        Qn = []
        for q in Qs:
            if np.ndim(q) == 0:
                Qn.append(float(q))
            else:
                q = np.asarray(q, dtype=np.float64)
                if q.shape not in ((N, N), (B, N, N)):
                    raise TheorylabError(f"Q must be a float, (N, N) or (B, N, N); got {q.shape}")
                Qn.append(q)
        m0 = np.broadcast_to(np.asarray(m0, dtype=np.float64), (B, N)).copy()
        if S0 is not None:
            S0 = np.broadcast_to(np.asarray(S0, dtype=np.float64), (B, N, N)).copy()
        if symmetrizer is not None:
            symmetrizer = np.broadcast_to(np.asarray(symmetrizer, dtype=np.float64), (B, N))
        if isinstance(mult, (list, tuple)):
            if len(mult) != len(Ms):
                raise TheorylabError("mult must be one term per phase (None where there is none)")
            mult = list(mult) if any(x is not None for x in mult) else None
        return cls(Marr, carr, Qn, m0, dict(outputs), S0, symmetrizer, mult)

    def mult_of(self, t: int):
        """The multiplicative term of phase t (or None)."""
        if isinstance(self.mult, list):
            return self.mult[t]
        return self.mult

    @property
    def blocks(self) -> int:
        return self.M.shape[1]

    @property
    def size(self) -> int:
        return self.M.shape[2]

    @property
    def period(self) -> int:
        return self.M.shape[0]

    def Q_of(self, t: int, b=None) -> np.ndarray:
        """Dense noise covariance of phase t, for blocks b (all: (B, N, N))."""
        q, B, N = self.Q[t], self.blocks, self.size
        if np.ndim(q) == 0:
            out = np.broadcast_to(q * np.eye(N), (B, N, N))
        elif q.ndim == 2:
            out = np.broadcast_to(q, (B, N, N))
        else:
            out = q
        return out if b is None else out[b]


@dataclass
class EngineResult:
    """Outputs at the recorded steps (``curves``) and at steady state (``steady``, inf when not
    stable), and the route each block took (``routes``: 'spectral' or 'stepped')."""

    curves: dict
    steady: dict
    routes: list = field(default_factory=list)

    @property
    def route(self) -> str:
        kinds = sorted(set(self.routes), key=["spectral", "stepped"].index)
        return "+".join(kinds)


def solve(system: LinearSystem, rec, route: str = "auto", steady: bool = True) -> EngineResult:
    """Exact outputs of a declared system at the steps ``rec`` (increasing ints) and at steady
    state. ``route``: 'auto' (spectral where the block allows it, else stepped), 'stepped'."""
    rec = np.asarray(rec, dtype=np.int64)
    names = list(system.outputs)
    curves = {k: np.zeros(rec.size) for k in names}
    ss = {k: 0.0 for k in names}
    B = system.blocks
    routes = ["stepped"] * B
    spectral_ok = (
        route == "auto"
        and system.period == 1
        and system.symmetrizer is not None
        and system.mult is None
        and system.S0 is None
    )
    stepped = []
    for b in range(B):
        if spectral_ok and _spectral_block(system, b, rec, curves, ss):
            routes[b] = "spectral"
        else:
            stepped.append(b)
    if stepped:
        idx = np.asarray(stepped)
        if system.mult is None:
            _stepped_cov(system, idx, rec, curves)
        else:
            _stepped_raw(system, idx, rec, curves)
        if steady:
            for b in stepped:
                part = _steady_block(system, b)
                for k in names:
                    ss[k] += part[k]
    if not steady:
        ss = {k: np.nan for k in names}
    return EngineResult(curves, ss, routes)


# ---- selectors -------------------------------------------------------------------------------
def _sel(C, N):
    """(is_scalar, value): a float s means s I."""
    if np.ndim(C) == 0:
        return True, float(C)
    C = np.asarray(C, dtype=np.float64)
    if C.ndim == 1:
        C = C[None, :]
    if C.shape[1] != N:
        raise TheorylabError(f"output selector has {C.shape[1]} columns, the state has {N}")
    return False, C


# ---- spectral route --------------------------------------------------------------------------
def _spectral_block(system, b, rec, curves, ss) -> bool:
    """One static block with a diagonal symmetrizer. False when outside the route's scope
    (non-positive scaling, or a mode with |lam| >= 1 that is not a conserved, unexcited 1)."""
    s = system.symmetrizer[b]
    if not np.all(np.isfinite(s)) or np.any(s <= 1e-4):
        return False
    M, u, z0, N = system.M[0, b], system.c[0, b], system.m0[b], system.size
    ortho = bool(np.all(s == 1.0))
    if ortho:
        lam, V = np.linalg.eigh(M)
        T, Tinv = V, V.T
    else:
        lam, V = np.linalg.eigh(s[:, None] * M / s[None, :])
        T = V / s[:, None]
        Tinv = V.T * s[None, :]
    q = system.Q[0]
    qdiag = None
    if np.ndim(q) == 0 and ortho:
        qdiag = np.full(N, float(q))
        Qhat = None
    else:
        Qd = system.Q_of(0, b)
        Qhat = Tinv @ Qd @ Tinv.T
    uh = Tinv @ u
    mh0 = Tinv @ z0
    unit = np.abs(lam) >= 1.0 - _UNIT
    cons = np.zeros(N, dtype=bool)
    if np.any(unit):
        one = np.abs(lam - 1.0) < _ONE
        if np.any(unit & ~one):
            return False
        scale = max(np.max(np.abs(uh)), 1e-300)
        qrow = np.abs(qdiag[one]) if qdiag is not None else np.max(np.abs(Qhat[one]), axis=1)
        qscale = max(np.max(np.abs(qdiag if qdiag is not None else Qhat)), 1e-300)
        if np.any(np.abs(uh[one]) > 1e-12 * scale) or np.any(qrow > 1e-12 * qscale):
            return False
        cons = one
        uh = np.where(cons, 0.0, uh)
        if qdiag is not None:
            qdiag = np.where(cons, 0.0, qdiag)
        else:
            Qhat = Qhat.copy()
            Qhat[cons, :] = 0.0
            Qhat[:, cons] = 0.0
    lam_s = np.where(cons, 0.0, lam)  # conserved modes: separate, constant
    Lt = _powers(lam_s, rec)
    Mt = Lt * mh0[None, :] + _geom(lam_s[None, :], rec[:, None], Lt) * uh[None, :]
    m_inf = uh / (1.0 - lam_s)
    if np.any(cons):
        Mt[:, cons] = mh0[cons][None, :]
        m_inf[cons] = mh0[cons]
        Lt[:, cons] = 0.0
    denom = None if qdiag is not None else 1.0 - np.outer(lam_s, lam_s)
    TT = None if ortho else T.T @ T  # Gram of the eigenbasis, shared by scalar selectors
    for name, C in system.outputs.items():
        scalar, C = _sel(C, N)
        if scalar and ortho:  # everything diagonal in the orthonormal eigenbasis
            c2 = C * C
            mean = c2 * np.sum(Mt * Mt, axis=1)
            mean_ss = c2 * float(m_inf @ m_inf)
            if qdiag is not None:
                R = c2 * qdiag / (1.0 - lam_s**2)
                cov, cov_ss = R.sum() - (Lt * Lt) @ R, float(R.sum())
            else:
                R = c2 * Qhat / denom
                cov = R.sum() - np.sum((Lt @ R) * Lt, axis=1)
                cov_ss = float(np.sum(R))
        else:
            CT = C * T if scalar else C @ T
            if scalar:
                G = (C * C) * TT
                mean = np.sum((Mt @ G) * Mt, axis=1)
                mean_ss = float(m_inf @ G @ m_inf)
            else:
                MC = Mt @ CT.T
                mean = np.sum(MC * MC, axis=1)
                mean_ss = float(np.sum((CT @ m_inf) ** 2))
            if qdiag is not None:
                R = qdiag * np.sum(CT * CT, axis=0) / (1.0 - lam_s**2)
                cov, cov_ss = R.sum() - (Lt * Lt) @ R, float(R.sum())
            else:
                G = (C * C) * TT if scalar else CT.T @ CT
                R = Qhat * G / denom
                cov = R.sum() - np.sum((Lt @ R) * Lt, axis=1)
                cov_ss = float(np.sum(R))
        curves[name] += mean + cov
        ss[name] += mean_ss + cov_ss
    return True


# ---- stepped route ---------------------------------------------------------------------------
def _output(C, N, m, P):
    """sum over blocks of ||C m||^2 + tr(C P C^T) (P a covariance or raw second moment)."""
    scalar, C = _sel(C, N)
    if scalar:
        val = 0.0 if m is None else float(np.sum(m * m))
        return C * C * (val + float(np.trace(P, axis1=1, axis2=2).sum()))
    val = 0.0 if m is None else float(np.sum((m @ C.T) ** 2))
    return val + float(np.einsum("kn,bnm,km->", C, P, C))


def _stepped_cov(system, idx, rec, curves):
    """Mean and covariance stepped exactly (no multiplicative term), blocks batched."""
    N, p = system.size, system.period
    m = system.m0[idx].copy()
    P = np.zeros((idx.size, N, N)) if system.S0 is None else system.S0[idx].copy()
    Ms = np.ascontiguousarray(system.M[:, idx])
    Mts = np.ascontiguousarray(np.swapaxes(Ms, 2, 3))
    cs = system.c[:, idx]
    Qs = [system.Q_of(t, idx) for t in range(p)]
    j = 0
    for k in range(int(rec[-1]) + 1):
        if k == rec[j]:
            for name, C in system.outputs.items():
                curves[name][j] += _output(C, N, m, P)
            j += 1
            if j == rec.size:
                break
        t = k % p
        m = np.einsum("bij,bj->bi", Ms[t], m) + cs[t]
        P = Ms[t] @ P @ Mts[t] + Qs[t]


def _mult_pi(mult, idx, m, Z):
    P, u = mult.P[idx], mult.u[idx]
    Pm = (P @ m[:, :, None])[:, :, 0]
    return np.sum((P @ Z) * P, axis=2) + 2.0 * Pm * u + u * u + mult.sigma2


def _stepped_raw(system, idx, rec, curves):
    """Mean and raw second moment Z = E[z z^T] stepped exactly, with a multiplicative term."""
    N, p = system.size, system.period
    Ms = np.ascontiguousarray(system.M[:, idx])
    Mts = np.ascontiguousarray(np.swapaxes(Ms, 2, 3))
    cs = system.c[:, idx]
    Qs = [system.Q_of(t, idx) for t in range(p)]
    m = system.m0[idx].copy()
    Z = m[:, :, None] * m[:, None, :]
    if system.S0 is not None:
        Z = Z + system.S0[idx]
    j = 0
    for k in range(int(rec[-1]) + 1):
        if k == rec[j]:
            for name, C in system.outputs.items():
                curves[name][j] += _output(C, N, None, Z)
            j += 1
            if j == rec.size:
                break
        m, Z = _raw_step(system, k % p, idx, Ms, Mts, cs, Qs, m, Z)


def _raw_step(system, t, idx, Ms, Mts, cs, Qs, m, Z):
    T, v = Ms[t], cs[t]
    Tm = (T @ m[:, :, None])[:, :, 0]
    Z_next = T @ Z @ Mts[t]
    Z_next += Tm[:, :, None] * v[:, None, :]
    Z_next += v[:, :, None] * Tm[:, None, :]
    Z_next += v[:, :, None] * v[:, None, :] + Qs[t]
    mult = system.mult_of(t)
    if mult is not None:
        Z_next = Z_next + mult.term(idx, m, Z)
    return Tm + v, 0.5 * (Z_next + np.swapaxes(Z_next, 1, 2))


# ---- steady state ----------------------------------------------------------------------------
def _period_map(system, b):
    N = system.size
    Bp, up, Qp = np.eye(N), np.zeros(N), np.zeros((N, N))
    for t in range(system.period):
        M, c, Q = system.M[t, b], system.c[t, b], system.Q_of(t, b)
        Bp, up, Qp = M @ Bp, M @ up + c, M @ Qp @ M.T + Q
    return Bp, up, Qp


def _inf(system):
    return {k: np.inf for k in system.outputs}


def _steady_block(system, b) -> dict:
    """Steady-state outputs of one block (cyclostationary at phase 0)."""
    if system.mult is not None:
        if isinstance(system.mult, Multiplicative) and system.mult.K is None:
            return _steady_mult(system, b)
        return _steady_moment_map(system, b)
    N = system.size
    Bp, up, Qp = _period_map(system, b)
    lam = np.linalg.eigvals(Bp)
    if np.max(np.abs(lam)) < 1.0 - _UNIT:
        m_inf = np.linalg.solve(np.eye(N) - Bp, up)
        P_inf = solve_discrete_lyapunov(Bp, Qp)
    else:
        sol = conserved_steady_state(Bp, up, Qp, system.m0[b])
        if sol is None:
            return _inf(system)
        m_inf, P_inf = sol
    return {k: _output(C, N, m_inf[None], P_inf[None]) for k, C in system.outputs.items()}


def conserved_steady_state(Bp, up, Qp, z0, tol: float = 1e-10):
    r"""Steady mean and covariance of ``z' = Bp z + up + noise (Cov Qp)`` when ``Bp`` has an
    eigenvalue 1 that neither ``up`` nor ``Qp`` excites; None when not mean-square stable.

    With ``V1``/``U1`` right/left bases of the eigenvalue-1 eigenspace, the spectral projector
    ``Pi1 = V1 (U1^T V1)^-1 U1^T`` commutes with ``Bp``, so ``Pi1 z_k = Pi1 z_0`` for all k
    (conserved) when ``Pi1 up = 0`` and ``Pi1 Qp Pi1^T = 0``. The rest ``Pi z``, ``Pi = I - Pi1``,
    lives in the complementary invariant subspace (orthonormal basis ``Vs``), where
    ``Bs = Vs^T Bp Vs`` has spectral radius < 1 and the Lyapunov equation is regular.
    Returns ``(Pi1 z0 + Vs y, Vs Y Vs^T)``.
    """
    N = Bp.shape[0]
    lam = np.linalg.eigvals(Bp)
    one = np.abs(lam - 1.0) < _ONE
    if np.any((np.abs(lam) >= 1.0 - _UNIT) & ~one):
        return None
    r = int(np.sum(one))
    A = Bp - np.eye(N)
    _, sv, Vh = np.linalg.svd(A)
    V1 = Vh[N - r :].T  # right null space
    _, _, Uh = np.linalg.svd(A.T)
    U1 = Uh[N - r :].T  # left null space
    G = U1.T @ V1
    if np.linalg.cond(G) > 1e10 or sv[N - r] > 1e-8 * max(sv[0], 1.0):
        return None  # defective eigenvalue 1 (a Jordan block): secular growth
    Pi1 = V1 @ np.linalg.solve(G, U1.T)
    scale_u = max(np.linalg.norm(up), np.linalg.norm(Bp), 1.0)
    scale_q = max(np.linalg.norm(Qp), 1e-300)
    if np.linalg.norm(Pi1 @ up) > tol * scale_u:
        return None  # a drift along the conserved direction: linear growth
    if np.linalg.norm(Pi1 @ Qp @ Pi1.T) > tol * scale_q:
        return None  # noise along the conserved direction: a random walk
    Pi = np.eye(N) - Pi1
    Us, ss_, _ = np.linalg.svd(Pi)
    Vs = Us[:, : N - r]
    Bs = Vs.T @ Bp @ Vs
    y = np.linalg.solve(np.eye(N - r) - Bs, Vs.T @ Pi @ up)
    Qs = Vs.T @ Pi @ Qp @ Pi.T @ Vs
    Y = solve_discrete_lyapunov(Bs, 0.5 * (Qs + Qs.T))
    return Pi1 @ z0 + Vs @ y, Vs @ Y @ Vs.T


def _steady_moment_map(system, b, max_size: int = 48) -> dict:
    """Steady state of a periodic system with multiplicative terms: the period's affine map on
    ``(m, vec Z)`` (built column by column from the exact step), its fixed point (conserved
    directions kept, as in :func:`conserved_steady_state`)."""
    N, p = system.size, system.period
    if N > max_size:
        raise TheorylabError(
            f"the steady state of a periodic system with multiplicative noise is solved on the "
            f"(N + N^2)-dimensional moment map; N = {N} > {max_size} is too large"
        )
    idx = np.array([b])
    Ms = np.ascontiguousarray(system.M[:, idx])
    Mts = np.ascontiguousarray(np.swapaxes(Ms, 2, 3))
    cs = system.c[:, idx]
    Qs = [system.Q_of(t, idx) for t in range(p)]
    D = N + N * N

    def period(x, affine=True):
        m, Z = x[None, :N], x[N:].reshape(1, N, N)
        for t in range(p):
            if affine:
                m, Z = _raw_step(system, t, idx, Ms, Mts, cs, Qs, m, Z)
            else:
                m, Z = _raw_step_linear(system, t, idx, Ms, Mts, m, Z)
        return np.concatenate([m[0], Z[0].ravel()])

    b0 = period(np.zeros(D))
    A = np.column_stack([period(e, affine=False) for e in np.eye(D)])
    x0 = np.concatenate([system.m0[b], (np.outer(system.m0[b], system.m0[b])).ravel()])
    if system.S0 is not None:
        x0[N:] += system.S0[b].ravel()
    lam = np.linalg.eigvals(A)
    if np.max(np.abs(lam)) < 1.0 - _UNIT:
        x = np.linalg.solve(np.eye(D) - A, b0)
    else:
        sol = conserved_steady_state(A, b0, np.zeros((D, D)), x0)
        if sol is None:
            return _inf(system)
        x = sol[0]
    Z = x[N:].reshape(1, N, N)
    return {k: _output(C, N, None, Z) for k, C in system.outputs.items()}


def _raw_step_linear(system, t, idx, Ms, Mts, m, Z):
    """The linear part of one raw-moment step (drift, noise and constant terms dropped)."""
    T = Ms[t]
    Z_next = T @ Z @ Mts[t]
    mult = system.mult_of(t)
    if mult is not None:
        zero = Multiplicative(mult.F, mult.P, np.zeros_like(mult.u), 0.0, mult.kappa, mult.K)
        Z_next = Z_next + zero.term(idx, m, Z)
        # cross terms with the drift u of p (linear in m)
        if np.any(mult.u != 0.0):
            lin = mult.term(idx, m, Z) - mult.term(idx, np.zeros_like(m), Z)
            Z_next = Z_next + lin
    v = system.c[t, idx]
    Tm = (T @ m[:, :, None])[:, :, 0]
    Z_next = Z_next + Tm[:, :, None] * v[:, None, :] + v[:, :, None] * Tm[:, None, :]
    return Tm, Z_next


def _steady_mult(system, b) -> dict:
    r"""Woodbury on the second-moment map ``Z -> T Z T^T + kappa F diag(P Z P^T) F^T``.

    With ``L^{-1}`` the Stein solve, ``Y_l = L^{-1}(f_l f_l^T)`` and the n x n nonnegative
    ``M[j, l] = p_j^T Y_l p_j``, the recursion is mean-square stable iff ``rho(T) < 1`` and
    ``rho(kappa M) < 1``, and then ``Z = L^{-1}(C) + kappa sum_l w_l Y_l``,
    ``w = (I - kappa M)^{-1} diag(P L^{-1}(C) P^T)``.
    """
    mult, N = system.mult, system.size
    T, v = system.M[0, b], system.c[0, b]
    P, u, F, kappa = mult.P[b], mult.u[b], mult.F, mult.kappa
    n = F.shape[1]
    if np.max(np.abs(np.linalg.eigvals(T))) >= 1.0:
        return _inf(system)
    m = np.linalg.solve(np.eye(N) - T, v)
    Tm = T @ m
    pi0 = 2.0 * (P @ m) * u + u**2 + mult.sigma2
    C = (
        np.outer(Tm, v)
        + np.outer(v, Tm)
        + np.outer(v, v)
        + system.Q_of(0, b)
        + kappa * (F * pi0) @ F.T
    )
    Y0 = solve_discrete_lyapunov(T, 0.5 * (C + C.T))
    out = {}
    w = None
    if kappa != 0.0:
        Mjl, _ = stein_forms(T, P, F)
        if np.max(np.abs(np.linalg.eigvals(kappa * Mjl))) >= 1.0:
            return _inf(system)
        w0 = np.sum((P @ Y0) * P, axis=1)
        w = np.linalg.solve(np.eye(n) - kappa * Mjl, w0)
    for name, Csel in system.outputs.items():
        scalar, Cm = _sel(Csel, N)
        Cm = Cm * np.eye(N) if scalar else Cm
        val = float(np.sum((Cm @ Y0) * Cm))
        if w is not None:
            _, yc = stein_forms(T, P, F, Cm)
            val += kappa * float(w @ yc)
        out[name] = val
    return out


def stein_forms(T, P, F, C=None):
    r"""``M[j, l] = p_j^T Y_l p_j`` and ``y[l] = tr(C Y_l C^T)`` (default ``C = e_0^T``) for
    ``Y_l = sum_t T^t f_l f_l^T T^tT`` (``rho(T) < 1``).

    With ``T = V diag(lam) V^{-1}``: ``p_j^T T^t f_l = sum_a alpha_ja lam_a^t beta_al``,
    ``alpha = P V``, ``beta = V^{-1} F``, so ``M[j, l] = sum_ab alpha_ja alpha_jb beta_al
    beta_bl / (1 - lam_a lam_b)``: O(n^2 N^2) for all pairs. A defective or ill-conditioned
    eigenbasis falls back to one Stein solve per column of F.
    """
    N = T.shape[0]
    if C is None:
        C = np.eye(N)[:1]
    lam, V = np.linalg.eig(T)
    if np.linalg.cond(V) < 1e6:
        Kd = 1.0 / (1.0 - np.outer(lam, lam))
        a = P @ V  # (n, N)
        beta = np.linalg.solve(V, F.astype(complex))  # (N, n)
        W = a[:, :, None] * a[:, None, :] * Kd[None]  # (n, N, N)
        M = np.einsum("jab,al,bl->jl", W, beta, beta, optimize=True).real
        E = C @ V  # (K, N)
        Ke = np.einsum("ka,kb->ab", E, E) * Kd
        y = np.einsum("ab,al,bl->l", Ke, beta, beta, optimize=True).real
        return M, y
    Ys = np.array(
        [solve_discrete_lyapunov(T, np.outer(F[:, col], F[:, col])) for col in range(F.shape[1])]
    )
    M = np.einsum("jk,lkm,jm->jl", P, Ys, P, optimize=True)
    y = np.einsum("kn,lnm,km->l", C, Ys, C)
    return M, y
