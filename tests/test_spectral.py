"""rho, gaps and extreme eigenvalues: closed forms, dense vs sparse (theorylab.spectral)."""

import math

import networkx as nx
import numpy as np
import pytest
import scipy.sparse as sp

from theorylab import mixing as M
from theorylab import spectral as S
from theorylab import topology as T
from theorylab.errors import TheorylabError


@pytest.mark.parametrize(
    "family, G, rule, kw",
    [
        ("ring", T.ring(5), "metropolis", {}),
        ("ring", T.ring(8), "metropolis", {}),
        ("ring", T.ring(100), "uniform", {}),
        ("ring", T.ring(9), "max-degree", {}),
        ("ring", T.ring(16), "best-constant", {}),
        ("path", T.path(8), "metropolis", {}),
        ("path", T.path(16), "max-degree", {}),
        ("complete", T.complete(8), "metropolis", {}),
        ("complete", T.complete(8), "max-degree", {}),
        ("star", T.star(5), "metropolis", {}),
        ("star", T.star(100), "metropolis", {}),
        ("star", T.star(8), "best-constant", {}),
        ("star", T.star(8), "local-degree", {}),
        ("hypercube", T.hypercube(8), "metropolis", {}),
        ("hypercube", T.hypercube(1024), "best-constant", {}),
        ("torus", T.torus2d(5, 5), "metropolis", {}),
        ("torus", T.torus2d(8, 8), "uniform", {}),
        ("torus", T.torus2d(3, 7), "metropolis", {"rows": 3, "cols": 7}),
        ("torus", T.torus2d(4, 6), "best-constant", {"rows": 4, "cols": 6}),
        ("exponential", T.exponential(24), "metropolis", {}),
    ],
)
def test_closed_forms(family, G, rule, kw):
    W = M.mixing_matrix(G, rule)
    expected = T.closed_form_rho(family, G.number_of_nodes(), rule, **kw)
    assert expected is not None
    assert abs(S.rho(W) - expected) < 1e-10


def test_published_numbers():
    # topology.md section 5 [COMPUTED] rows, to the printed digits
    ring = {5: 0.539345, 6: 0.666667, 8: 0.804738, 16: 0.949253, 100: 0.998684}
    for n, r in ring.items():
        assert abs(S.rho(M.mixing_matrix(T.ring(n))) - r) < 1e-6
    for a, r in [(5, 0.723607), (8, 0.882843), (10, 0.923607)]:
        assert abs(S.rho(M.mixing_matrix(T.torus2d(a, a))) - r) < 1e-6
    # ring n = 1000: gap 1.3159e-5
    assert abs(S.spectral_gap(M.mixing_matrix(T.ring(1000))) - 1.3159e-5) < 1e-9


def test_closed_form_none_when_unknown():
    assert T.closed_form_rho("grid", 16) is None
    assert T.closed_form_rho("random-regular", 16) is None
    assert T.closed_form_rho("one-peer-exponential", 16) == 0.0


@pytest.mark.parametrize(
    "family, G",
    [
        ("ring", T.ring(5000)),  # tiny gap next to +1: 5.3e-7
        ("torus", T.torus2d(60, 70)),
        ("exponential", T.exponential(4096)),  # expander-like: plain Lanczos route
    ],
)
def test_sparse_matches_closed_form(family, G):
    W = M.mixing_matrix(G, "metropolis", sparse=True)
    s = S.extreme_eigenvalues(W, method="sparse")
    kw = {"rows": 60, "cols": 70} if family == "torus" else {}
    expected = T.closed_form_rho(family, G.number_of_nodes(), "metropolis", **kw)
    assert s.method.startswith("sparse") and abs(s.rho - expected) < 1e-9


@pytest.mark.parametrize(
    "G",
    [T.random_regular(2002, 4, seed=3), T.random_geometric(1500, 0.07, seed=0)],
    ids=["rr4", "rgg"],
)
def test_dense_and_sparse_agree(G):
    W = M.mixing_matrix(G, "metropolis", sparse=True)
    d = S.extreme_eigenvalues(W, method="dense")
    s = S.extreme_eigenvalues(W, method="sparse")
    assert s.method.startswith("sparse")
    assert abs(s.rho - d.rho) < 1e-9
    assert abs(s.lambda2 - d.lambda2) < 1e-9
    assert abs(s.spectral_gap - d.spectral_gap) < 1e-9
    if s.lambda_n_exact:
        assert abs(s.lambda_n - d.lambda_n) < 1e-8
    else:  # Ritz value: an upper bound that provably does not affect rho
        assert s.lambda_n >= d.lambda_n - 1e-12 and -s.lambda_n < s.lambda2


def test_sparse_plain_lanczos_both_ends():
    # max-degree (non-lazy) on a random 3-regular graph: W = A/3, lambda_2 ~ -lambda_n ~ 2 sqrt(2)/3
    # (Kesten-McKay edges), gaps ~0.06 at both ends: both come from the plain Lanczos route, and
    # rho depends on both (Gershgorin cannot exclude lambda_n), so both must match dense.
    W = M.mixing_matrix(T.random_regular(1200, 3, seed=5), "max-degree", sparse=True)
    d = S.extreme_eigenvalues(W, method="dense")
    s = S.extreme_eigenvalues(W, method="sparse")
    assert s.method == "sparse-lanczos" and s.lambda_n_exact
    assert abs(s.lambda2 - d.lambda2) < 1e-9 and abs(s.lambda_n - d.lambda_n) < 1e-9
    assert abs(s.rho - d.rho) < 1e-9


def test_sparse_lanczos_breakdown_complete_graph():
    # W = J: P W P = 0, the Krylov space is invariant after one step (exact answer 0)
    W = sp.csr_array(np.full((40, 40), 1 / 40))
    s = S.extreme_eigenvalues(W, method="sparse")
    assert s.method == "sparse-lanczos" and abs(s.rho) < 1e-12 and abs(s.lambda_n) < 1e-12


def test_sparse_ring_gap_relative_accuracy():
    n = 20000
    s = S.extreme_eigenvalues(M.mixing_matrix(T.ring(n)), method="sparse")
    gap = 2 / 3 * (1 - math.cos(2 * math.pi / n))
    assert abs(s.gap2 - gap) / gap < 1e-6
    assert abs(s.lambda_n + 1 / 3) < 1e-12


def test_sparse_bipartite_gap_at_minus_one():
    # lazy=False max-degree on an odd ring has lambda_n = cos(pi (n-1)/n) = -cos(pi/n), near -1
    n = 2501
    W = M.mixing_matrix(T.ring(n), "max-degree", sparse=True)
    s = S.extreme_eigenvalues(W, method="sparse")
    assert abs(s.rho - math.cos(math.pi / n)) < 1e-10
    assert abs(s.gapn - (1 - math.cos(math.pi / n))) < 1e-12


def test_nonsymmetric_rho():
    W = T.exponential_mixing_matrix(64)
    assert abs(S.rho(W) - 5 / 7) < 1e-12
    Ws = T.exponential_mixing_matrix(4096, sparse=True)
    s = S.extreme_eigenvalues(Ws)
    assert s.method == "sparse-svds" and abs(s.rho - 11 / 13) < 1e-9 and s.lambda2 is None
    with pytest.raises(TheorylabError, match="symmetric"):
        S.lambda2(W)
    with pytest.raises(TheorylabError, match="symmetric"):
        S.eigenvalues(W)


def test_eigenvalues_hypercube_multiplicities():
    d = 4
    eig = S.eigenvalues(M.mixing_matrix(T.hypercube(2**d)))
    expected = np.sort(
        np.concatenate([np.full(math.comb(d, k), (d + 1 - 2 * k) / (d + 1)) for k in range(d + 1)])
    )[::-1]
    assert np.allclose(eig, expected, atol=1e-12)
    W = M.mixing_matrix(T.hypercube(8))
    assert abs(S.lambda2(W) - 0.5) < 1e-12 and abs(S.lambda_n(W) + 0.5) < 1e-12


def test_schedule_rho_sparse_matches_dense():
    s = T.one_peer_exponential(12)
    assert abs(S.schedule_rho(s, "sparse") - S.schedule_rho(s, "dense")) < 1e-10
    s = T.one_peer_exponential(4096)  # sparse by default; exact averaging
    assert S.schedule_rho(s) == 0.0
    mats = [np.asarray(M.mixing_matrix(T.ring(6)))] * 2
    assert abs(S.schedule_rho(mats) - S.rho(mats[0])) < 1e-12


def test_consensus_iterations():
    assert S.consensus_iterations(0.5, 1e-3) == 10  # 0.5^10 < 1e-3 < 0.5^9
    assert S.consensus_iterations(0.1, 1e-3) == 3  # boundary: 0.1^3 == 1e-3 (floating)
    assert S.consensus_iterations(0.0, 1e-6) == 1
    assert S.consensus_iterations(0.3, 1.0) == 0
    assert S.consensus_iterations(1.0) == math.inf
    # rho > 1 (a consensus error that may grow) is an error, not inf (issue 7 item 13)
    with pytest.raises(TheorylabError, match=r"rho must be in \[0, 1\], got rho = 1.5"):
        S.consensus_iterations(1.5)
    gap = 1.3159e-9
    t = S.consensus_iterations(1 - gap, 1e-6, spectral_gap=gap)
    assert abs(t - math.log(1e6) / gap) / t < 1e-6
    with pytest.raises(TheorylabError):
        S.consensus_iterations(0.5, 0.0)


def test_spectrum_summary_keys():
    out = S.spectrum_summary(M.mixing_matrix(T.ring(8)))
    assert out["degree_max"] == 2 and out["degree_mean"] == 2.0
    assert out["mixing_time_1e-06"] == S.consensus_iterations(out["rho"], 1e-6)
    sched = S.spectrum_summary(T.one_peer_exponential(8))
    assert sched["rho"] == 0.0 and sched["period"] == 3 and sched["mixing_time_1e-06"] == 3


def test_bad_inputs():
    with pytest.raises(TheorylabError, match="row 0"):
        S.rho(np.array([[0.9, 0.0], [0.5, 0.5]]))
    with pytest.raises(TheorylabError, match="square"):
        S.rho(np.ones(3))
    with pytest.raises(TheorylabError, match="not finite"):
        S.rho(np.array([[np.nan, 1.0], [0.5, 0.5]]))
    with pytest.raises(TheorylabError, match="method"):
        S.rho(np.full((2, 2), 0.5), method="magic")
    assert S.rho(sp.csr_array(np.full((2, 2), 0.5)), method="sparse") < 1e-15


def _circulant_metropolis(n, k):
    """Metropolis W of the ring lattice C_n(1..k) (degree 2k): W = (I + sum of the 2k shifts) /
    (2k + 1), eigenvalues (1 + 2 sum_{m<=k} cos(2 pi j m / n)) / (2k + 1), j = 0..n-1."""
    return M.mixing_matrix(nx.circulant_graph(n, range(1, k + 1)), "metropolis", sparse=True)


def _lobpcg_cases():
    import theorylab.topology_sparse as ts

    rgg = ts.sparse_mixing_matrix(ts.family_edges("random-geometric", n=3000))
    return {"rgg": rgg, "circulant": _circulant_metropolis(3000, 6)}


@pytest.fixture(scope="module")
def lobpcg_cases():
    return _lobpcg_cases()


def _gap_agrees(s, d) -> bool:
    # 1e-13 absolute on the gap: catches an off-by-delta (1e-12) shift; measured agreement ~1e-15
    return abs(s.gap2 - d.gap2) < 1e-13 and abs(s.rho - d.rho) < 1e-13


@pytest.mark.parametrize("case", ["rgg", "circulant"])
def test_lobpcg_route_matches_dense(lobpcg_cases, case, monkeypatch):
    # mean degree >= 7 and a gap < 0.01: lambda_2 from preconditioned LOBPCG (issue 13 section 3),
    # taken by default from n = 15000 (SuperLU is faster below): forced here at n = 3000
    monkeypatch.setattr(S, "_LOBPCG_MIN_N", 0)
    W = lobpcg_cases[case]
    s = S.extreme_eigenvalues(W, method="sparse")
    d = S.extreme_eigenvalues(W, method="dense")
    assert s.method.startswith("sparse-lobpcg"), s.method
    assert _gap_agrees(s, d), (s.gap2, d.gap2)
    if case == "circulant":  # closed form, j = 1 (a degenerate pair j = 1, n - 1)
        n, k = 3000, 6
        lam2 = (1 + 2 * sum(math.cos(2 * math.pi * m / n) for m in range(1, k + 1))) / (2 * k + 1)
        gap = 2 * sum(1 - math.cos(2 * math.pi * m / n) for m in range(1, k + 1)) / (2 * k + 1)
        assert abs(s.lambda2 - lam2) < 1e-13 and abs(s.gap2 - gap) < 5e-14


def test_lobpcg_route_planted_shift_is_caught(lobpcg_cases, monkeypatch):
    # planted bug: L = (1 + delta) I - W with delta = 1e-12 (the shift-invert's delta, forgotten)
    monkeypatch.setattr(S, "_LOBPCG_MIN_N", 0)
    W = lobpcg_cases["rgg"]
    d = S.extreme_eigenvalues(W, method="dense")
    good = S._laplacian
    monkeypatch.setattr(
        S, "_laplacian", lambda W: good(W) + 1e-12 * sp.eye_array(W.shape[0], format="csr")
    )
    s = S.extreme_eigenvalues(W, method="sparse")
    assert s.method.startswith("sparse-lobpcg") and not _gap_agrees(s, d)
    assert abs(s.gap2 - d.gap2 - 1e-12) < 1e-13  # off by exactly the planted shift


def test_lobpcg_no_convergence_falls_back_to_shift_invert(lobpcg_cases, monkeypatch):
    # a useless preconditioner (zero): LOBPCG stalls for its 80 iterations and gives up;
    # shift-invert answers
    monkeypatch.setattr(S, "_LOBPCG_MIN_N", 0)
    W = lobpcg_cases["rgg"]
    monkeypatch.setattr(S._TwoLevel, "__call__", lambda self, R: np.zeros_like(R))
    s = S.extreme_eigenvalues(W, method="sparse")
    d = S.extreme_eigenvalues(W, method="dense")
    assert "lobpcg" not in s.method and "shift-invert" in s.method
    assert _gap_agrees(s, d)


def test_lobpcg_route_not_taken_below_its_size(lobpcg_cases):
    # n = 3000 < _LOBPCG_MIN_N: SuperLU shift-invert (faster there), same answer
    s = S.extreme_eigenvalues(lobpcg_cases["rgg"], method="sparse")
    assert "lobpcg" not in s.method and "shift-invert" in s.method


@pytest.mark.parametrize("case", ["rgg", "circulant"])
def test_aggregates_are_a_maximal_independent_set_partition(lobpcg_cases, case):
    # every node is in one aggregate; the roots (one per aggregate) are pairwise non-adjacent and
    # every node is its root or adjacent to it (so every aggregate is connected, of diameter <= 2)
    W = sp.csr_array(lobpcg_cases[case])
    agg, roots = S._aggregates(W)
    n, nc = W.shape[0], roots.size
    assert agg.shape == (n,) and np.array_equal(agg[roots], np.arange(nc))
    assert np.bincount(agg, minlength=nc).min() >= 1
    rows, cols = W.nonzero()
    off = rows != cols
    rows, cols = rows[off], cols[off]
    is_root = np.zeros(n, dtype=bool)
    is_root[roots] = True
    assert not np.any(is_root[rows] & is_root[cols])  # independent
    adjacent = set(zip(rows.tolist(), cols.tolist()))
    for i in range(n):  # each node is its aggregate's root or adjacent to it (maximality)
        assert i == roots[agg[i]] or (i, int(roots[agg[i]])) in adjacent


def test_lobpcg_route_default_at_large_n_matches_shift_invert():
    # n = 20000 >= _LOBPCG_MIN_N: the default route; shift-invert on the same matrix agrees to
    # ~1e-16 (measured 8e-17); tolerance 1e-14 (dense is out of reach here)
    import theorylab.topology_sparse as ts

    W = ts.sparse_mixing_matrix(ts.family_edges("random-geometric", n=20000))
    s = S.extreme_eigenvalues(W, method="sparse")
    assert s.method.startswith("sparse-lobpcg")
    n = W.shape[0]
    M = ((1 + S._DELTA) * sp.eye_array(n, format="csr") - sp.csr_array(W)).tocsc()
    gap_si, _ = S._gap_shift_invert(M, n, True, 1e-10, S._v0(n))
    assert abs(s.gap2 - gap_si) < 1e-14 and s.gap2 >= gap_si - 1e-15  # Rayleigh: from above


def _king_torus(a):
    """Uniform-weight W on the a x a torus where each node sees its 5 x 5 box (degree 24):
    lambda_2 is 4-fold degenerate (modes (1, 0), (0, 1) and their conjugates), beyond the block."""
    C = sp.csr_array(nx.to_scipy_sparse_array(nx.circulant_graph(a, [1, 2]), format="csr"))
    box = sp.csr_array(sp.kron(C + sp.eye_array(a), C + sp.eye_array(a)))  # includes the node
    return sp.csr_array(box / 25.0)


def test_lobpcg_route_degenerate_cluster_matches_closed_form(monkeypatch):
    # a 4-fold lambda_2 (more than the block of 3): accepted by ||r_1|| <= tol * theta_1.
    # Eigenvalues f(t1) f(t2) / 25 with f(t) = 1 + 2 cos t + 2 cos 2t, t = 2 pi j / a; the gap
    # 1 - f(2 pi / a) / 5 = (2 (1 - cos(2 pi / a)) + 2 (1 - cos(4 pi / a))) / 5, no cancellation
    monkeypatch.setattr(S, "_LOBPCG_MIN_N", 0)
    a = 80
    s = S.extreme_eigenvalues(_king_torus(a), method="sparse")
    gap = (2 * (1 - math.cos(2 * math.pi / a)) + 2 * (1 - math.cos(4 * math.pi / a))) / 5
    assert s.method.startswith("sparse-lobpcg"), s.method
    assert abs(s.gap2 - gap) < 1e-13 and abs(s.rho - (1 - gap)) < 1e-13, (s.gap2, gap)


def test_lobpcg_route_disconnected_goes_to_shift_invert(lobpcg_cases, monkeypatch):
    # two copies of a graph: gap 0; the coarse problem's upper bound (< 1e-8) sends it to
    # shift-invert, which returns ~1e-16
    monkeypatch.setattr(S, "_LOBPCG_MIN_N", 0)
    W = lobpcg_cases["rgg"]
    s = S.extreme_eigenvalues(sp.csr_array(sp.block_diag([W, W])), method="sparse")
    assert "lobpcg" not in s.method and abs(s.gap2) < 1e-13
