"""The exact engine: routes agree, conserved directions, periodic and multiplicative systems
against brute-force recursions on the full dense state."""

import itertools

import numpy as np
import pytest

from theorylab.errors import TheorylabError
from theorylab.exact.engine import LinearSystem, Multiplicative, conserved_steady_state, solve
from theorylab.exact.local import sampling_covariance


def brute(Ms, cs, Qs, m0, S0, steps):
    """Plain mean/covariance recursion, one block, phases cycled."""
    m, P, out = m0.copy(), S0.copy(), []
    for k in range(steps + 1):
        out.append((m.copy(), P.copy()))
        t = k % len(Ms)
        m, P = Ms[t] @ m + cs[t], Ms[t] @ P @ Ms[t].T + Qs[t]
    return out


def test_spectral_route_equals_stepped_route():
    rng = np.random.default_rng(0)
    N, B = 6, 3
    A = rng.standard_normal((B, N, N))
    Sym = 0.2 * (A + np.swapaxes(A, 1, 2)) / np.sqrt(N)
    s = rng.uniform(0.5, 1.5, (B, N))
    M = Sym * s[:, None, :] / s[:, :, None]  # diag(s) M diag(s)^-1 = Sym
    c = rng.standard_normal((B, N))
    G = rng.standard_normal((N, N)) * 0.3
    outs = {"all": 0.7, "pair": rng.standard_normal((2, N))}
    m0 = rng.standard_normal((B, N))
    rec = np.array([0, 1, 5, 40])
    a = solve(LinearSystem.declare(M, c, G @ G.T, m0, outs, symmetrizer=s), rec)
    b = solve(LinearSystem.declare(M, c, G @ G.T, m0, outs), rec)
    assert a.route == "spectral" and b.route == "stepped"
    for k in outs:
        assert np.allclose(a.curves[k], b.curves[k], rtol=1e-12)
        assert a.steady[k] == pytest.approx(b.steady[k], rel=1e-10)


def test_conserved_direction_steady_state_vs_long_run():
    """A system with eigenvalue 1 along u (u^T M = u^T, u^T c = 0, u^T G = 0): the steady state
    keeps u's initial component and equals the limit of the brute-force recursion."""
    rng = np.random.default_rng(1)
    N = 5
    V = np.linalg.qr(rng.standard_normal((N, N)))[0]
    lam = np.array([1.0, 0.5, -0.3, 0.2, 0.7])
    M = V @ np.diag(lam) @ np.linalg.inv(V) + 0.0
    u = np.linalg.inv(V)[0]  # left eigenvector for eigenvalue 1
    proj = np.eye(N) - np.outer(V[:, 0], u)  # kills the conserved component
    c = proj @ rng.standard_normal(N)
    G = proj @ rng.standard_normal((N, 3))
    m0 = rng.standard_normal(N)
    sol = conserved_steady_state(M, c, G @ G.T, m0)
    assert sol is not None
    m_inf, P_inf = sol
    m, P = brute([M], [c], [G @ G.T], m0, np.zeros((N, N)), 400)[-1]
    assert np.allclose(m_inf, m, atol=1e-12) and np.allclose(P_inf, P, atol=1e-12)
    # excited conserved directions have no steady state
    assert conserved_steady_state(M, c + V[:, 0], G @ G.T, m0) is None
    assert conserved_steady_state(M, c, G @ G.T + np.outer(V[:, 0], V[:, 0]), m0) is None
    # through solve(): a singular plain Lyapunov, finite answer
    res = solve(LinearSystem.declare(M, c, G @ G.T, m0, {"e": 1.0}), np.array([0, 400]))
    assert res.curves["e"][-1] == pytest.approx(res.steady["e"], rel=1e-10)


def test_defective_unit_eigenvalue_is_unstable():
    M = np.array([[1.0, 1.0], [0.0, 1.0]])
    assert conserved_steady_state(M, np.zeros(2), np.zeros((2, 2)), np.ones(2)) is None


def test_periodic_multiplicative_system_vs_subset_enumeration():
    """Random client sampling (a multiplicative term with a full covariance K) in the second of
    two phases vs the exact average over all S-subsets of the full dense second moment."""
    rng = np.random.default_rng(2)
    n, S = 4, 2
    A = rng.standard_normal((n, n)) * 0.3
    M1 = np.eye(n) - 0.3 * np.diag(rng.uniform(0.2, 1.0, n))
    c1 = rng.standard_normal(n) * 0.2
    s2 = 0.3
    subsets = list(itertools.combinations(range(n), S))

    def phase2(sub):  # y <- 1 a^T (M1 y + c1 + noise), a = indicator/S
        a = np.zeros(n)
        a[list(sub)] = 1.0 / S
        return np.outer(np.ones(n), a)

    m = rng.standard_normal(n)
    Z = np.outer(m, m)
    means, seconds = [m], [Z]
    for k in range(6):
        if k % 2 == 0:
            m, Z = A @ m, A @ Z @ A.T + s2 * np.eye(n)
        else:
            Zs = Z
            mm = np.zeros(n)
            Z = np.zeros((n, n))
            for sub in subsets:
                T = phase2(sub)
                mm += (T @ (M1 @ m + c1)) / len(subsets)
                E = M1 @ Zs @ M1.T + np.outer(M1 @ m, c1) + np.outer(c1, M1 @ m)
                E += np.outer(c1, c1) + s2 * np.eye(n)
                Z += T @ E @ T.T / len(subsets)
            m = mm
        means.append(m)
        seconds.append(Z)
    J = np.full((n, n), 1.0 / n)
    F = np.ones((n, n))
    mult = Multiplicative(F, M1[None], c1[None], s2, 0.0, sampling_covariance(n, S))
    system = LinearSystem.declare(
        [A, J @ M1], [np.zeros(n), J @ c1], [s2, s2 * J @ J.T], means[0], {"e": 1.0},
        mult=[None, mult],
    )  # fmt: skip
    res = solve(system, np.arange(7))
    assert np.allclose(res.curves["e"], [np.trace(Z) for Z in seconds], rtol=1e-12)
    # steady state of the moment map vs a long run
    long = solve(system, np.array([0, 2000]), steady=False)
    assert res.steady["e"] == pytest.approx(long.curves["e"][-1], rel=1e-9)


def test_declare_checks():
    with pytest.raises(TheorylabError, match="phases"):
        LinearSystem.declare([np.eye(2)], [np.zeros(2), np.zeros(2)], [0.0], np.zeros(2), {})
    with pytest.raises(TheorylabError, match="Q must be"):
        LinearSystem.declare(np.eye(2), np.zeros(2), np.eye(3), np.zeros(2), {})
    with pytest.raises(TheorylabError, match="columns"):
        solve(LinearSystem.declare(np.eye(2), np.zeros(2), 0.0, np.zeros(2),
                                   {"e": np.ones((1, 3))}), np.array([0]))  # fmt: skip
