"""Exact mean and second-moment predictions for linear-Gaussian dynamics on quadratics.

On a :class:`~theorylab.problems.QuadraticProblem` with Gaussian gradient noise
``xi_i ~ N(0, (sigma2/d) I_d)`` (independent across nodes, steps and replicas), gossip, parallel
SGD (PSGD) and decentralized SGD (DSGD) are linear recursions in the error ``z = x - x*``::

    z_{k+1} = B_k z_k + u_k + noise_k,        Cov(noise_k) = Q_k,

so the mean ``m_k`` and covariance ``P_k`` follow ``m_{k+1} = B_k m_k + u_k`` and
``P_{k+1} = B_k P_k B_k^T + Q_k`` (``P_0 = 0``: x0 is deterministic and the same for every
replica). The expected metrics are then exact (no bound, no approximation):

- ``error``     = (1/n) sum_i E||x_i - x*||^2 = (||m||^2 + tr P)/n
- ``consensus`` = (1/n) sum_i E||x_i - xbar||^2 = error - avg_error
- ``avg_error`` = E||xbar - x*||^2

Update conventions (W doubly stochastic; row i of W holds node i's receive weights):

- DSGD ATC:  x_i^{k+1} = sum_j W_ij (x_j^k - gamma g_j(x_j^k))
- DSGD CTA (AWC in rates.md): x_i^{k+1} = sum_j W_ij x_j^k - gamma g_i(x_i^k)
- PSGD:      x^{k+1} = x^k - gamma (1/n) sum_i g_i(x^k)
- gossip:    x_i^{k+1} = sum_j W_ij x_j^k

Solvers (``method``):

- ``'spectral'``: coordinate-separable problems (diagonal Hessians, a shared Hessian, or any
  commuting family, after one rotation) with a static symmetric W give d independent blocks of
  size n. For CTA, ``B = W - gamma D`` is symmetric; for ATC, ``B = W S`` with
  ``S = I - gamma D > 0`` is similar to the symmetric ``S^{1/2} W S^{1/2}``. One
  eigendecomposition per block makes the covariance recursion elementwise in the eigenbasis,
  ``Phat_k[a, b] = Qhat[a, b] (1 - (lam_a lam_b)^k) / (1 - lam_a lam_b)``, and every checkpoint
  is a quadratic form in ``lam^k``: O(n^2) per block and checkpoint (a matrix product over all
  checkpoints at once).
- ``'blockwise'``: separable problems with a time-varying (periodic) or non-symmetric W, or
  ``gamma h >= 1`` in ATC: the n x n recursion per block, stepped exactly.
- ``'dense'``: the general (nd) x (nd) recursion; the reference the others are tested against.

Steady states come from the discrete Lyapunov equation ``P = B P B^T + Q`` (closed form in the
eigenbasis, ``scipy.linalg.solve_discrete_lyapunov`` otherwise); for a periodic schedule
``W^(0), ..., W^(p-1)`` they are the cyclostationary values at steps ``k = 0 mod p`` (the
period map ``B_{p-1} ... B_0``).

References
----------
Yuan, Alghunaim, Ying, Sayed, "On the influence of bias-correction on distributed stochastic
optimization", IEEE TSP 2020, arXiv 1903.10956 (steady state of diffusion/DSGD).
shared/references/rates.md §1 (PSGD exact) and §3e (DSGD exact spectral formulas).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
from scipy.linalg import solve_discrete_lyapunov

from theorylab.errors import TheorylabError, TheorylabWarning, check_int, check_positive
from theorylab.problems import QuadraticProblem

__all__ = [
    "ExactPrediction",
    "exact_dsgd",
    "exact_psgd",
    "exact_gossip",
    "steady_state_dsgd",
]

_METHODS = ("auto", "spectral", "blockwise", "dense")


@dataclass(frozen=True)
class ExactPrediction:
    """Exact expected metrics at the recorded steps, plus the steady state.

    Attributes
    ----------
    steps : ndarray of int, the recorded steps k (0 = initial point).
    error : ndarray, (1/n) sum_i E||x_i^k - x*||^2.
    consensus : ndarray, (1/n) sum_i E||x_i^k - xbar^k||^2.
    avg_error : ndarray, E||xbar^k - x*||^2.
    steady_state : dict with keys 'error', 'consensus', 'avg_error' (inf when unstable).
    algorithm : 'dsgd' | 'psgd' | 'gossip'.
    form : 'atc' | 'cta' | None.
    method : the solver used ('spectral', 'blockwise', 'dense', 'closed-form').
    """

    steps: np.ndarray
    error: np.ndarray
    consensus: np.ndarray
    avg_error: np.ndarray
    steady_state: dict = field(default_factory=dict)
    algorithm: str = "dsgd"
    form: str | None = None
    method: str = "dense"

    def to_dict(self) -> dict:
        """JSON-ready dict (lists of floats)."""
        return {
            "algorithm": self.algorithm,
            "form": self.form,
            "method": self.method,
            "steps": [int(s) for s in self.steps],
            "error": [float(v) for v in self.error],
            "consensus": [float(v) for v in self.consensus],
            "avg_error": [float(v) for v in self.avg_error],
            "steady_state": {k: float(v) for k, v in self.steady_state.items()},
        }


# ---- validation ------------------------------------------------------------------------------
def _check_problem(problem) -> QuadraticProblem:
    if not isinstance(problem, QuadraticProblem):
        raise TypeError(
            f"problem must be a theorylab.problems.QuadraticProblem, got {type(problem).__name__}"
        )
    return problem


def _check_schedule(W_or_schedule, n: int | None = None) -> list[np.ndarray]:
    """Return a non-empty list of doubly stochastic n x n float64 matrices."""
    if isinstance(W_or_schedule, np.ndarray) and W_or_schedule.ndim == 2:
        mats = [W_or_schedule]
    elif isinstance(W_or_schedule, (list, tuple)):
        mats = list(W_or_schedule)
    elif isinstance(W_or_schedule, np.ndarray) and W_or_schedule.ndim == 3:
        mats = list(W_or_schedule)
    else:
        raise TypeError(
            "W_or_schedule must be an n x n array or a list of them (a periodic schedule), got "
            f"{type(W_or_schedule).__name__}"
        )
    if not mats:
        raise TheorylabError("the schedule of mixing matrices is empty; pass at least one W")
    out = []
    for t, W in enumerate(mats):
        W = np.asarray(W, dtype=np.float64)
        if W.ndim != 2 or W.shape[0] != W.shape[1]:
            raise TheorylabError(f"W[{t}] must be a square matrix, got shape {W.shape}")
        if n is not None and W.shape[0] != n:
            raise TheorylabError(
                f"W[{t}] is {W.shape[0]} x {W.shape[0]} but the problem has n = {n} nodes"
            )
        if not np.all(np.isfinite(W)):
            raise TheorylabError(f"W[{t}] contains NaN or inf")
        rows = np.abs(W.sum(axis=1) - 1).max()
        cols = np.abs(W.sum(axis=0) - 1).max()
        if max(rows, cols) > 1e-10:
            raise TheorylabError(
                f"W[{t}] must be doubly stochastic (rows and columns sum to 1); row sums are off "
                f"by {rows:.2g} and column sums by {cols:.2g}. Use symmetric weights such as "
                "Metropolis"
            )
        out.append(W)
    if n is None and len({W.shape for W in out}) != 1:
        raise TheorylabError("all matrices of the schedule must have the same size")
    return out


def _check_record(record, steps: int) -> np.ndarray:
    if record is None:
        return np.arange(steps + 1)
    rec = np.asarray(record)
    if rec.ndim != 1 or rec.size == 0 or not np.issubdtype(rec.dtype, np.integer):
        raise TheorylabError(f"record must be a non-empty 1-d array of ints, got {record!r}")
    if rec.min() < 0 or rec.max() > steps:
        raise TheorylabError(f"record steps must lie in [0, steps={steps}], got {rec.min()}..")
    if np.any(np.diff(rec) <= 0):
        raise TheorylabError("record must be strictly increasing")
    return rec.astype(np.int64)


def _check_form(form: str) -> str:
    if not isinstance(form, str) or form.lower() not in ("atc", "cta", "awc"):
        raise TheorylabError(f"form must be 'atc' or 'cta' (alias 'awc'), got {form!r}")
    return "cta" if form.lower() in ("cta", "awc") else "atc"


def _check_x0(x0, shape: tuple[int, ...]) -> np.ndarray:
    x0 = np.asarray(x0, dtype=np.float64)
    if x0.shape != shape:
        raise TheorylabError(f"x0 must have shape {shape}, got {x0.shape}")
    if not np.all(np.isfinite(x0)):
        raise TheorylabError("x0 must be finite")
    return x0


# ---- separable form --------------------------------------------------------------------------
def _separable_form(problem: QuadraticProblem) -> np.ndarray | None:
    """Return H (n, d) and a rotation U with U^T A_i U = diag(H[i]) for all i, else None."""
    if problem.hessian_diagonal is not None:
        return problem.hessian_diagonal, None
    n, d = problem.n, problem.d
    coeffs = np.sqrt(np.arange(2, n + 2, dtype=np.float64))  # generic combination
    combo = np.einsum("n,nij->ij", coeffs, problem.A)
    _, U = np.linalg.eigh(0.5 * (combo + combo.T))
    rot = np.einsum("ki,nkl,lj->nij", U, problem.A, U)
    diag = np.diagonal(rot, axis1=1, axis2=2).copy()
    off = rot.copy()
    off[:, np.arange(d), np.arange(d)] = 0.0
    if np.max(np.abs(off)) <= 1e-12 * max(problem.L, 1e-300):
        return diag, U
    return None


def _powers(lam: np.ndarray, t: np.ndarray) -> np.ndarray:
    """lam[None, :] ** t[:, None] for real lam with |lam| < 1 and integer t >= 0.

    Uses exp(t log|lam|) with the sign of odd powers (much faster than pow for large tables).
    """
    t = np.asarray(t)
    mag = np.abs(lam)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.exp(t[:, None].astype(np.float64) * np.log(mag)[None, :])
    out[:, mag == 0] = (t == 0)[:, None].astype(np.float64)  # 0^0 = 1, 0^t = 0
    neg = lam < 0
    if np.any(neg):
        odd = (t % 2 == 1)[:, None] & neg[None, :]
        out[odd] = -out[odd]
    return out


def _geom(lam: np.ndarray, t: np.ndarray, lt: np.ndarray | None = None) -> np.ndarray:
    """sum_{s<t} lam^s, elementwise for lam (..., m) and integer t broadcast (lt = lam^t)."""
    if lt is None:
        lt = np.power(lam, t)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = (1.0 - lt) / (1.0 - lam)
    near = np.abs(1.0 - lam) < 1e-13
    return np.where(near, t * np.ones_like(lam), out)


# ---- per-block solvers -----------------------------------------------------------------------
class _Acc:
    """Accumulates error / avg_error over blocks."""

    def __init__(self, n_rec: int):
        self.err = np.zeros(n_rec)
        self.avg = np.zeros(n_rec)
        self.ss_err = 0.0
        self.ss_avg = 0.0


def _spectral_block(acc, W, h, g, z0, gamma, s2, form, rec, n):
    """Exact metrics of one n-dimensional block with static symmetric W. Returns False if the
    block is outside the method's scope (ATC with gamma h >= 1, or unstable)."""
    if form == "cta":
        lam, V = np.linalg.eigh(W - gamma * np.diag(h))
        T, Tinv = V, V.T
        Qhat = None  # gamma^2 s2 I in the eigenbasis
        u = -gamma * g
    else:
        S = 1.0 - gamma * h
        if np.any(S <= 1e-8):
            return False
        sq = np.sqrt(S)
        lam, V = np.linalg.eigh(sq[:, None] * W * sq[None, :])
        T = V / sq[:, None]
        Tinv = V.T * sq[None, :]
        WT = Tinv @ W
        Qhat = gamma**2 * s2 * (WT @ WT.T)
        u = -gamma * (W @ g)
    if np.max(np.abs(lam)) >= 1.0 - 1e-13:
        return False
    G = None if form == "cta" else T.T @ T
    a = T.T @ np.ones(n)
    uh = Tinv @ u
    mh0 = Tinv @ z0
    denom = 1.0 - np.outer(lam, lam) if Qhat is not None else None
    if Qhat is None:  # CTA: everything is diagonal in the orthonormal eigenbasis
        R = gamma**2 * s2 / (1.0 - lam**2)
        Ravg = R * a**2 / n**2
    else:
        R = Qhat * G / denom
        Ravg = Qhat * np.outer(a, a) / denom / n**2
    Lt = _powers(lam, rec)
    Mt = Lt * mh0[None, :] + _geom(lam[None, :], rec[:, None], Lt) * uh[None, :]
    mean_err = np.sum(Mt * Mt, axis=1) if G is None else np.sum((Mt @ G) * Mt, axis=1)
    mean_avg = (Mt @ a / n) ** 2
    if Qhat is None:
        L2 = Lt * Lt
        cov_err = R.sum() - L2 @ R
        cov_avg = Ravg.sum() - L2 @ Ravg
    else:
        cov_err = R.sum() - np.sum((Lt @ R) * Lt, axis=1)
        cov_avg = Ravg.sum() - np.sum((Lt @ Ravg) * Lt, axis=1)
    acc.err += (mean_err + cov_err) / n
    acc.avg += mean_avg + cov_avg
    m_inf = uh / (1.0 - lam)
    ss_mean = float(m_inf @ m_inf) if G is None else float(m_inf @ G @ m_inf)
    acc.ss_err += (ss_mean + float(np.sum(R))) / n
    acc.ss_avg += float((a @ m_inf / n) ** 2 + np.sum(Ravg))
    return True


def _stepped_block(acc, Bs, us, Qs, C, z0, rec, n):
    """Exact metrics of one block by stepping the mean/covariance recursion.

    Bs, us, Qs: per-phase matrices of a periodic schedule; C maps the block state to its
    contribution to xbar - x*.
    """
    m = z0.copy()
    P = np.zeros((z0.size, z0.size))
    p = len(Bs)
    j = 0
    for k in range(int(rec[-1]) + 1):
        if k == rec[j]:
            Cm = C @ m
            acc.err[j] += (float(m @ m) + float(np.trace(P))) / n
            acc.avg[j] += float(Cm @ Cm) + float(np.trace(C @ P @ C.T))
            j += 1
            if j == rec.size:
                break
        B, u, Q = Bs[k % p], us[k % p], Qs[k % p]
        m = B @ m + u
        P = B @ P @ B.T + Q
    # cyclostationary steady state at phase 0 via the period map
    Bp, up, Qp = np.eye(z0.size), np.zeros(z0.size), np.zeros((z0.size, z0.size))
    for B, u, Q in zip(Bs, us, Qs):
        Bp, up, Qp = B @ Bp, B @ up + u, B @ Qp @ B.T + Q
    if np.max(np.abs(np.linalg.eigvals(Bp))) >= 1.0 - 1e-13:
        acc.ss_err = acc.ss_avg = np.inf
        return
    m_inf = np.linalg.solve(np.eye(z0.size) - Bp, up)
    P_inf = solve_discrete_lyapunov(Bp, Qp)
    Cm = C @ m_inf
    acc.ss_err += (float(m_inf @ m_inf) + float(np.trace(P_inf))) / n
    acc.ss_avg += float(Cm @ Cm) + float(np.trace(C @ P_inf @ C.T))


def _block_system(Ws, D, g, gamma, s2, form):
    """Per-phase (B, u, Q) for state dimension m = D.shape[0] with mixing matrices Ws (m x m)."""
    m = D.shape[0]
    Bs, us, Qs = [], [], []
    for Wk in Ws:
        if form == "atc":
            Bs.append(Wk @ (np.eye(m) - gamma * D))
            us.append(-gamma * (Wk @ g))
            Qs.append(gamma**2 * s2 * (Wk @ Wk.T))
        else:
            Bs.append(Wk - gamma * D)
            us.append(-gamma * g)
            Qs.append(gamma**2 * s2 * np.eye(m))
    return Bs, us, Qs


def _dsgd_core(problem, Ws, gamma, x0, form, rec, method):
    n, d = problem.n, problem.d
    s2 = problem.sigma2 / d
    Z0 = x0 - problem.x_star[None, :]
    Gs = problem.grad_star
    sep = _separable_form(problem) if method != "dense" else None
    if method in ("spectral", "blockwise") and sep is None:
        raise TheorylabError(
            f"method={method!r} needs coordinate-separable Hessians (diagonal, shared or "
            "commuting); use method='dense' or 'auto'"
        )
    static_sym = len(Ws) == 1 and np.allclose(Ws[0], Ws[0].T, atol=1e-14, rtol=0)
    if method == "spectral" and not static_sym:
        raise TheorylabError(
            "method='spectral' needs a single symmetric W; use 'blockwise' for schedules"
        )
    acc = _Acc(rec.size)
    if sep is not None:
        H, U = sep
        if U is not None:
            Z0, Gs = Z0 @ U, Gs @ U
        ones_c = np.ones((1, n)) / n
        used = "spectral" if (static_sym and method in ("auto", "spectral")) else "blockwise"
        for k in range(d):
            done = False
            if used == "spectral":
                done = _spectral_block(
                    acc, Ws[0], H[:, k], Gs[:, k], Z0[:, k], gamma, s2, form, rec, n
                )
                if not done and method == "spectral":
                    raise TheorylabError(
                        "method='spectral' needs gamma * h < 1 (ATC) and a stable recursion; "
                        "use method='blockwise'"
                    )
            if not done:
                if used == "spectral":
                    used = "spectral+blockwise"
                Bs, us, Qs = _block_system(Ws, np.diag(H[:, k]), Gs[:, k], gamma, s2, form)
                _stepped_block(acc, Bs, us, Qs, ones_c, Z0[:, k], rec, n)
    else:
        used = "dense"
        Ds = np.zeros((n * d, n * d))
        for i in range(n):
            Ds[i * d : (i + 1) * d, i * d : (i + 1) * d] = problem.A[i]
        big = [np.kron(Wk, np.eye(d)) for Wk in Ws]
        Bs, us, Qs = _block_system(big, Ds, Gs.ravel(), gamma, s2, form)
        C = np.kron(np.ones((1, n)) / n, np.eye(d))
        _stepped_block(acc, Bs, us, Qs, C, Z0.ravel(), rec, n)
    return acc, used


def _finish(acc, rec, algorithm, form, method) -> ExactPrediction:
    cons = np.maximum(acc.err - acc.avg, 0.0)
    if np.isinf(acc.ss_err):
        warnings.warn(
            f"{algorithm}: the recursion is unstable (spectral radius >= 1); the steady state "
            "is infinite. Decrease gamma",
            TheorylabWarning,
            stacklevel=3,
        )
        ss = {"error": np.inf, "consensus": np.inf, "avg_error": np.inf}
    else:
        ss = {
            "error": acc.ss_err,
            "consensus": max(acc.ss_err - acc.ss_avg, 0.0),
            "avg_error": acc.ss_avg,
        }
    return ExactPrediction(rec, acc.err, cons, acc.avg, ss, algorithm, form, method)


# ---- public API ------------------------------------------------------------------------------
def exact_dsgd(
    problem: QuadraticProblem,
    W_or_schedule,
    gamma: float,
    steps: int,
    x0,
    form: str = "atc",
    record=None,
    method: str = "auto",
) -> ExactPrediction:
    r"""Exact expected error, consensus distance and average-iterate error of DSGD.

    The math (ATC): ``X_{k+1} = W_k (X_k - gamma G_k)``; (CTA): ``X_{k+1} = W_k X_k - gamma
    G_k``, with ``G_k`` the stacked stochastic gradients ``A_i (x_i - b_i) + xi_i``,
    ``xi_i ~ N(0, (sigma2/d) I)``; ``W_k = W_or_schedule[k mod p]``. In the error
    ``z = x - x*``: ATC ``B = W (I - gamma A)``, drift ``u = -gamma W grad f(x*)``, noise
    covariance ``gamma^2 (sigma2/d) W W^T``; CTA ``B = W - gamma A``, ``u = -gamma grad f(x*)``,
    noise ``gamma^2 (sigma2/d) I`` (Kronecker with I_d understood). Guarantee: **exact** (tight)
    expectations, up to floating point.

    Parameters
    ----------
    problem : QuadraticProblem
    W_or_schedule : (n, n) doubly stochastic array, or a list of them (periodic schedule).
    gamma : float > 0, step size.
    steps : int >= 0, last step to predict.
    x0 : array (n, d), deterministic initial iterates (same for every replica).
    form : 'atc' (adapt-then-combine) or 'cta' (combine-then-adapt, alias 'awc').
    record : increasing ints in [0, steps], steps to report (default all 0..steps).
    method : 'auto' | 'spectral' | 'blockwise' | 'dense' (see the module docstring).

    Returns
    -------
    ExactPrediction
        With ``steady_state`` the limit (cyclostationary at phase 0 for a schedule); inf with a
        TheorylabWarning when the recursion is unstable.

    Raises
    ------
    TheorylabError, TypeError
        Bad shapes, W not doubly stochastic, gamma <= 0, unknown form/method.

    Example
    -------
    >>> import numpy as np
    >>> from theorylab.problems import heterogeneous_quadratic
    >>> p = heterogeneous_quadratic(4, 2, L=1.0, mu=0.5, zeta2=1.0, sigma2=0.5, seed=0)
    >>> W = np.full((4, 4), 0.25)
    >>> pred = exact_dsgd(p, W, 0.1, 50, np.zeros((4, 2)))
    >>> bool(pred.consensus[-1] < 1e-2)
    True

    References
    ----------
    Lian et al., NeurIPS 2017, arXiv 1705.09056 (CTA/AWC form); Koloskova et al., ICML 2020,
    arXiv 2003.10422 (ATC form); Yuan et al., IEEE TSP 2020, arXiv 1903.10956.
    """
    problem = _check_problem(problem)
    Ws = _check_schedule(W_or_schedule, problem.n)
    gamma = check_positive("gamma", gamma)
    steps = check_int("steps", steps, minimum=0)
    x0 = _check_x0(x0, (problem.n, problem.d))
    form = _check_form(form)
    rec = _check_record(record, steps)
    if method not in _METHODS:
        raise TheorylabError(f"method must be one of {_METHODS}, got {method!r}")
    acc, used = _dsgd_core(problem, Ws, gamma, x0, form, rec, method)
    return _finish(acc, rec, "dsgd", form, used)


def steady_state_dsgd(
    problem: QuadraticProblem,
    W_or_schedule,
    gamma: float,
    form: str = "atc",
    method: str = "auto",
) -> dict:
    r"""Exact steady state of constant-step DSGD: {'error', 'consensus', 'avg_error'}.

    Solves the discrete Lyapunov equation ``P = B P B^T + Q`` and ``m = B m + u`` (see
    :func:`exact_dsgd` for B, u, Q); independent of x0. For a periodic schedule it is the
    cyclostationary value at steps ``k = 0 mod p``. Exact (tight).

    Example
    -------
    >>> import numpy as np
    >>> from theorylab.problems import QuadraticProblem
    >>> p = QuadraticProblem(np.ones((2, 1)), np.zeros((2, 1)), sigma2=1.0)
    >>> ss = steady_state_dsgd(p, np.full((2, 2), 0.5), 0.1)
    >>> round(ss['avg_error'], 10) == round(0.1 * 1.0 / (2 * 1.0 * (2 - 0.1)), 10)
    True
    """
    problem = _check_problem(problem)
    pred = exact_dsgd(
        problem,
        W_or_schedule,
        gamma,
        0,
        np.tile(problem.x_star, (problem.n, 1)),
        form=form,
        method=method,
    )
    return dict(pred.steady_state)


def exact_psgd(
    problem: QuadraticProblem, gamma: float, n_steps: int, x0, record=None
) -> ExactPrediction:
    r"""Exact E||x_k - x*||^2 of parallel (minibatch) SGD on a quadratic.

    The math: ``x_{k+1} = x_k - gamma (1/n) sum_i g_i(x_k)``, i.e.
    ``z_{k+1} = (I - gamma Abar) z_k - gamma xibar_k``, ``Cov(xibar) = sigma2/(n d) I``. In the
    eigenbasis of ``Abar = U diag(h) U^T``:
    ``E||z_k||^2 = sum_j (1 - gamma h_j)^{2k} zhat_j^2
    + gamma^2 sigma2/(n d) sum_j (1 - (1 - gamma h_j)^{2k}) / (1 - (1 - gamma h_j)^2)``.
    For ``Abar = h I`` the floor is ``gamma sigma2 / (n h (2 - gamma h))`` (rates.md §1).
    Exact (tight). ``consensus`` is 0 (one model).

    Parameters
    ----------
    problem : QuadraticProblem; gamma : float > 0; n_steps : int >= 0;
    x0 : array (d,), deterministic start; record : steps to report (default all).

    Example
    -------
    >>> import numpy as np
    >>> from theorylab.problems import QuadraticProblem
    >>> p = QuadraticProblem(np.ones((4, 1)), np.zeros((4, 1)), sigma2=2.0)
    >>> pred = exact_psgd(p, 0.1, 1000, np.zeros(1))
    >>> bool(np.isclose(pred.steady_state['error'], 0.1 * 2.0 / (4 * 1.0 * 1.9)))
    True
    """
    problem = _check_problem(problem)
    gamma = check_positive("gamma", gamma)
    n_steps = check_int("n_steps", n_steps, minimum=0)
    x0 = _check_x0(x0, (problem.d,))
    rec = _check_record(record, n_steps)
    h, U = np.linalg.eigh(problem.mean_hessian)
    zh = U.T @ (x0 - problem.x_star)
    r2 = (1.0 - gamma * h) ** 2
    q = gamma**2 * problem.sigma2 / (problem.n * problem.d)
    t = rec[:, None].astype(np.float64)
    err = np.power(r2[None, :], t) @ (zh**2) + q * np.sum(_geom(r2[None, :], rec[:, None]), axis=1)
    acc = _Acc(rec.size)
    acc.err, acc.avg = err * 1.0, err * 1.0
    if np.max(r2) >= 1.0:
        acc.ss_err = acc.ss_avg = np.inf
    else:
        acc.ss_err = acc.ss_avg = float(q * np.sum(1.0 / (1.0 - r2)))
    return _finish(acc, rec, "psgd", None, "closed-form")


def exact_gossip(W_or_schedule, x0, steps: int, record=None) -> ExactPrediction:
    r"""Consensus distance of gossip averaging ``X_{k+1} = W_k X_k`` (deterministic).

    ``consensus_k = (1/n) ||X_k - 1 xbar^T||_F^2``, ``error_k = (1/n) sum_i ||x_i^k - xbar^0||^2``
    and ``avg_error_k = ||xbar^k - xbar^0||^2`` (0 for doubly stochastic W). With a static
    symmetric ``W = sum_j lam_j u_j u_j^T``:
    ``consensus_k = (1/n) sum_{j>=2} lam_j^{2k} ||u_j^T X_0||^2 <= rho^{2k} consensus_0``,
    ``rho = ||W - 11^T/n||_2`` (spectral gap 1 - rho). Exact (tight).

    Parameters
    ----------
    W_or_schedule : doubly stochastic (n, n) array or a list (periodic schedule).
    x0 : array (n, d) or (n,); steps : int >= 0; record : steps to report.

    Example
    -------
    >>> import numpy as np
    >>> W = np.array([[0.5, 0.5], [0.5, 0.5]])
    >>> np.round(exact_gossip(W, np.array([[1.0], [-1.0]]), 2).consensus, 12).tolist()
    [1.0, 0.0, 0.0]
    """
    Ws = _check_schedule(W_or_schedule)
    n = Ws[0].shape[0]
    x0 = np.asarray(x0, dtype=np.float64)
    if x0.ndim == 1:
        x0 = x0[:, None]
    x0 = _check_x0(x0, (n, x0.shape[1] if x0.ndim == 2 else -1))
    steps = check_int("steps", steps, minimum=0)
    rec = _check_record(record, steps)
    xbar0 = x0.mean(axis=0)
    acc = _Acc(rec.size)
    if len(Ws) == 1 and np.allclose(Ws[0], Ws[0].T, atol=1e-14, rtol=0):
        lam, V = np.linalg.eigh(Ws[0])
        energy = np.sum((V.T @ (x0 - xbar0)) ** 2, axis=1)  # per mode; mode 1 carries 0
        acc.err = np.power(lam[None, :] ** 2, rec[:, None].astype(np.float64)) @ energy / n
        used = "spectral"
    else:
        X = x0 - xbar0
        j = 0
        for k in range(int(rec[-1]) + 1):
            if k == rec[j]:
                acc.err[j] = float(np.sum(X**2)) / n
                acc.avg[j] = float(np.sum(X.mean(axis=0) ** 2))
                j += 1
                if j == rec.size:
                    break
            X = Ws[k % len(Ws)] @ X
        used = "dense"
    J = np.full((n, n), 1.0 / n)
    Wp = np.eye(n)
    for Wk in Ws:
        Wp = Wk @ Wp
    converges = np.max(np.abs(np.linalg.eigvals(Wp - J))) < 1.0
    acc.ss_err = 0.0 if converges else np.inf
    acc.ss_avg = 0.0
    if not converges:
        warnings.warn(
            "gossip does not converge: the period product has rho(W - J) >= 1",
            TheorylabWarning,
            stacklevel=2,
        )
        ss_cons = np.inf
    else:
        ss_cons = 0.0
    cons = np.maximum(acc.err - acc.avg, 0.0)
    return ExactPrediction(
        rec,
        acc.err,
        cons,
        acc.avg,
        {"error": acc.ss_err, "consensus": ss_cons, "avg_error": 0.0},
        "gossip",
        None,
        used,
    )
